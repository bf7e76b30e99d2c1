using System.Numerics.Tensors;
using TorchSharp.Modules;

namespace TorchSharp;

public static partial class torch
{
    /// <summary>Neural-network building blocks (TorchSharp's <c>torch.nn</c>): layer factories,
    /// <c>init</c> and <c>utils</c>. The layer classes live in <c>TorchSharp.Modules</c>.</summary>
    public static partial class nn
    {
        // ------------------------------------------------------------------ factories

        /// <summary>Wraps <paramref name="data"/> (sharing its storage) as a learnable parameter.</summary>
        public static Parameter Parameter(Tensor data, bool requires_grad = true) => new(data, requires_grad);

        /// <summary>A list of sub-modules registered as "0", "1", ... .</summary>
        public static ModuleList<T> ModuleList<T>(params T[] modules) where T : Module => new(modules);

        /// <summary>A list of sub-modules of any kind, registered as "0", "1", ... .</summary>
        public static ModuleList<Module> ModuleList(params Module[] modules) => new(modules);

        /// <summary>Runs the modules one after another, naming them "0", "1", ... .</summary>
        public static Sequential Sequential(params Module<Tensor, Tensor>[] modules) => new(modules);

        /// <summary>Runs the modules one after another under the given names.</summary>
        public static Sequential Sequential(params (string name, Module<Tensor, Tensor> submodule)[] modules) => new(modules);

        /// <summary>Runs the modules one after another under the given names.</summary>
        public static Sequential Sequential(IEnumerable<(string name, Module<Tensor, Tensor> submodule)> modules) => new(modules.ToArray());

        /// <summary>A fully connected layer y = x·Wᵀ + b with W [<paramref name="outputSize"/>, <paramref name="inputSize"/>],
        /// initialised from U(−1/√in, 1/√in) as in PyTorch.</summary>
        public static Linear Linear(long inputSize, long outputSize, bool hasBias = true, Device? device = null, ScalarType? dtype = null)
            => new(inputSize, outputSize, hasBias, device, dtype);

        /// <summary>A fully connected layer with the given weight ([out, in]) and optional bias.</summary>
        public static Linear Linear(Parameter weight, Parameter? bias = null) => new(weight, bias);

        /// <summary>Layer normalisation over the last dimension (of size <paramref name="normalized_shape"/>),
        /// with a learnable weight (ones) and bias (zeros) unless <paramref name="elementwise_affine"/> is false.</summary>
        public static LayerNorm LayerNorm(long normalized_shape, double eps = 1e-05, bool elementwise_affine = true, bool bias = true,
            Device? device = null, ScalarType? dtype = null)
            => new([normalized_shape], eps, elementwise_affine, bias, device, dtype);

        /// <summary>Layer normalisation over the last <c>normalized_shape.Length</c> dimensions.</summary>
        public static LayerNorm LayerNorm(long[] normalized_shape, double eps = 1e-05, bool elementwise_affine = true, bool bias = true,
            Device? device = null, ScalarType? dtype = null)
            => new(normalized_shape, eps, elementwise_affine, bias, device, dtype);

        /// <summary>The GELU activation, y = x·Φ(x), as a module.</summary>
        public static GELU GELU(bool inplace = false) => new(inplace);

        /// <summary>
        /// A lookup table mapping int64 ids of any shape [*] to vectors, [*, <paramref name="embedding_dims"/>];
        /// the table is initialised from N(0, 1).
        /// </summary>
        /// <remarks><paramref name="padding_idx"/>, <paramref name="max_norm"/>, <paramref name="scale_grad_by_freq"/> and
        /// <paramref name="sparse"/> are TorchSharp's parameters but are not supported by MinTorch (an error says so).</remarks>
        public static Embedding Embedding(long num_embeddings, long embedding_dims, long? padding_idx = null, double? max_norm = null,
            double norm_type = 2.0, bool scale_grad_by_freq = false, bool sparse = false, Device? device = null, ScalarType? dtype = null)
        {
            if (padding_idx is not null) throw new NotSupportedException("Embedding: padding_idx is not supported by MinTorch");
            if (max_norm is not null) throw new NotSupportedException("Embedding: max_norm is not supported by MinTorch");
            if (scale_grad_by_freq) throw new NotSupportedException("Embedding: scale_grad_by_freq is not supported by MinTorch");
            if (sparse) throw new NotSupportedException("Embedding: sparse gradients are not supported by MinTorch");
            return new(num_embeddings, embedding_dims, device, dtype);
        }

        /// <summary>An embedding whose table is <paramref name="embeddings"/> ([num_embeddings, embedding_dims], shared,
        /// not copied); with <paramref name="freeze"/> the table is not trained.</summary>
        public static Embedding Embedding_from_pretrained(Tensor embeddings, bool freeze = true, long? padding_idx = null, double? max_norm = null,
            double norm_type = 2.0, bool scale_grad_by_freq = false, bool sparse = false, Device? device = null, ScalarType? dtype = null)
        {
            if (padding_idx is not null || max_norm is not null || scale_grad_by_freq || sparse)
                throw new NotSupportedException("Embedding_from_pretrained: padding_idx, max_norm, scale_grad_by_freq and sparse are not supported by MinTorch");
            CheckDevice(device);
            var w = dtype is ScalarType d && d != embeddings.dtype ? embeddings.to_type(d) : embeddings;
            return new(new Parameter(w, requires_grad: !freeze));
        }

        /// <summary>Zeroes each element with probability <paramref name="p"/> in training mode (scaling the rest
        /// by 1/(1 − p)); the identity in evaluation mode.</summary>
        public static Dropout Dropout(double p = 0.5, bool inplace = false) => new(p, inplace);

        // ------------------------------------------------------------------ torch.nn.init

        /// <summary>
        /// Weight initialisation, in place and without recording gradients (TorchSharp's <c>torch.nn.init</c>).
        /// Random fills draw from the default generator unless one is given.
        /// </summary>
        public static class init
        {
            public enum NonlinearityType
            {
                Linear = 0, Conv1D = 1, Conv2D = 2, Conv3D = 3, ConvTranspose1D = 4, ConvTranspose2D = 5, ConvTranspose3D = 6,
                Sigmoid = 7, Tanh = 8, ReLU = 9, LeakyReLU = 10,
            }

            public enum FanInOut { FanIn = 0, FanOut = 1 }

            /// <summary>The gain that keeps activations' variance stable through <paramref name="nonlinearity"/>:
            /// 1 for linear/conv/sigmoid, 5/3 for tanh, √2 for ReLU, √(2/(1 + a²)) for leaky ReLU with slope a = <paramref name="param"/>.</summary>
            public static double calculate_gain(NonlinearityType nonlinearity, double param = 0.0) => nonlinearity switch
            {
                NonlinearityType.Tanh => 5.0 / 3,
                NonlinearityType.ReLU => Math.Sqrt(2.0),
                NonlinearityType.LeakyReLU => Math.Sqrt(2.0 / (1 + param * param)),
                _ => 1.0,
            };

            /// <summary>Fills with 1.</summary>
            public static Tensor ones_(Tensor tensor) => constant_(tensor, 1);

            /// <summary>Fills with 0.</summary>
            public static Tensor zeros_(Tensor tensor) => constant_(tensor, 0);

            /// <summary>Fills with <paramref name="val"/>.</summary>
            public static Tensor constant_(Tensor tensor, Scalar val)
            {
                using (no_grad()) tensor.fill_(val);
                return tensor;
            }

            /// <summary>Fills a 2-D tensor with the identity matrix (ones on the diagonal).</summary>
            public static Tensor eye_(Tensor tensor)
            {
                if (tensor.Rank != 2) throw new ArgumentException($"init.eye_: only 2-D tensors are supported, got shape {tensor.ShapeString}");
                using (no_grad())
                {
                    tensor.zero_();
                    long cols = tensor._shape[1];
                    for (long i = 0; i < Math.Min(tensor._shape[0], cols); i++) SetElement(tensor, (int)(i * cols + i), 1.0);
                }
                return tensor;
            }

            /// <summary>Fills with samples of U(<paramref name="low"/>, <paramref name="high"/>).</summary>
            public static Tensor uniform_(Tensor tensor, double low = 0, double high = 1, Generator? generator = null)
            {
                var g = generator ?? default_generator;
                Fill(tensor, "uniform_", () => low + (high - low) * g.NextDouble());
                return tensor;
            }

            /// <summary>Fills with samples of N(<paramref name="mean"/>, <paramref name="std"/>²).</summary>
            public static Tensor normal_(Tensor tensor, double mean = 0, double std = 1, Generator? generator = null)
            {
                var g = generator ?? default_generator;
                Fill(tensor, "normal_", () => mean + std * g.NextNormal());
                return tensor;
            }

            /// <summary>Fills with N(mean, std²) samples redrawn until they fall in [<paramref name="a"/>, <paramref name="b"/>].</summary>
            public static Tensor trunc_normal_(Tensor tensor, double mean = 0.0, double std = 1.0, double a = -2.0, double b = 2.0, Generator? generator = null)
            {
                if (!(a < b)) throw new ArgumentException($"init.trunc_normal_: the interval [{a}, {b}] is empty");
                var g = generator ?? default_generator;
                Fill(tensor, "trunc_normal_", () =>
                {
                    for (int attempt = 0; attempt < 1_000_000; attempt++)
                    {
                        double x = mean + std * g.NextNormal();
                        if (x >= a && x <= b) return x;
                    }
                    throw new InvalidOperationException($"init.trunc_normal_: N({mean}, {std}²) almost never falls in [{a}, {b}]");
                });
                return tensor;
            }

            /// <summary>
            /// He initialisation, uniform: U(−bound, bound) with bound = gain·√(3 / fan), gain from
            /// <see cref="calculate_gain"/>. With <c>a = √5</c> (what <c>Linear</c> uses) the bound is 1/√fan_in.
            /// </summary>
            public static Tensor kaiming_uniform_(Tensor tensor, double a = 0, FanInOut mode = FanInOut.FanIn, NonlinearityType nonlinearity = NonlinearityType.LeakyReLU)
            {
                double fan = Fan(tensor, mode, "kaiming_uniform_");
                if (fan == 0) return tensor;
                double std = calculate_gain(nonlinearity, a) / Math.Sqrt(fan);
                double bound = Math.Sqrt(3.0) * std;
                return uniform_(tensor, -bound, bound);
            }

            /// <summary>He initialisation, normal: N(0, std²) with std = gain / √fan.</summary>
            public static Tensor kaiming_normal_(Tensor tensor, double a = 0, FanInOut mode = FanInOut.FanIn, NonlinearityType nonlinearity = NonlinearityType.LeakyReLU)
            {
                double fan = Fan(tensor, mode, "kaiming_normal_");
                if (fan == 0) return tensor;
                return normal_(tensor, 0, calculate_gain(nonlinearity, a) / Math.Sqrt(fan));
            }

            /// <summary>Glorot initialisation, uniform: U(−bound, bound), bound = gain·√(6 / (fan_in + fan_out)).</summary>
            public static Tensor xavier_uniform_(Tensor tensor, double gain = 1.0)
            {
                var (fanIn, fanOut) = CalculateFanInAndFanOut(tensor);
                double bound = gain * Math.Sqrt(6.0 / (fanIn + fanOut));
                return uniform_(tensor, -bound, bound);
            }

            /// <summary>Glorot initialisation, normal: N(0, std²), std = gain·√(2 / (fan_in + fan_out)).</summary>
            public static Tensor xavier_normal_(Tensor tensor, double gain = 1.0)
            {
                var (fanIn, fanOut) = CalculateFanInAndFanOut(tensor);
                return normal_(tensor, 0, gain * Math.Sqrt(2.0 / (fanIn + fanOut)));
            }

            public static Tensor glorot_uniform_(Tensor tensor, double gain = 1.0) => xavier_uniform_(tensor, gain);
            public static Tensor glorot_normal_(Tensor tensor, double gain = 1.0) => xavier_normal_(tensor, gain);

            /// <summary>(fan_in, fan_out) of a weight: for a [out, in] matrix (in, out); for higher ranks each
            /// is multiplied by the receptive-field size (the product of the dims after the first two).</summary>
            public static (long fanIn, long fanOut) CalculateFanInAndFanOut(Tensor tensor)
            {
                if (tensor.Rank < 2)
                    throw new ArgumentException($"init: fan in and fan out cannot be computed for a tensor with fewer than 2 dimensions (shape {tensor.ShapeString})");
                long receptive = 1;
                for (int i = 2; i < tensor.Rank; i++) receptive *= tensor._shape[i];
                return (tensor._shape[1] * receptive, tensor._shape[0] * receptive);
            }

            private static double Fan(Tensor tensor, FanInOut mode, string op)
            {
                if (tensor._numel == 0) return 0; // PyTorch: initialising a zero-element tensor is a no-op
                var (fanIn, fanOut) = CalculateFanInAndFanOut(tensor);
                return mode == FanInOut.FanIn ? fanIn : fanOut;
            }

            /// <summary>Writes sample() into every element in order (so the stream does not depend on threads).</summary>
            private static void Fill(Tensor tensor, string op, Func<double> sample)
            {
                switch (tensor._dtype)
                {
                    case ScalarType.Float32:
                        var f = tensor.Span<float>();
                        for (int i = 0; i < f.Length; i++) f[i] = (float)sample();
                        break;
                    case ScalarType.Float64:
                        var d = tensor.Span<double>();
                        for (int i = 0; i < d.Length; i++) d[i] = sample();
                        break;
                    default:
                        throw new ArgumentException($"init.{op}: the tensor must be floating point, got {tensor._dtype}");
                }
            }

            private static void SetElement(Tensor t, int i, double value)
            {
                switch (t._dtype)
                {
                    case ScalarType.Float32: t.Arr<float>()[i] = (float)value; break;
                    case ScalarType.Float64: t.Arr<double>()[i] = value; break;
                    case ScalarType.Int64: t.Arr<long>()[i] = (long)value; break;
                    default: t.Arr<bool>()[i] = value != 0; break;
                }
            }
        }

        // ------------------------------------------------------------------ torch.nn.utils

        /// <summary>Gradient clipping and flat parameter vectors (TorchSharp's <c>torch.nn.utils</c>).</summary>
        public static partial class utils
        {
            /// <summary>
            /// Rescales the gradients so that their joint norm — the norm of all gradients concatenated into one
            /// vector — is at most <paramref name="max_norm"/>, in place, and returns that norm as it was
            /// before clipping. As PyTorch: coef = max_norm / (total_norm + 1e-6), and every gradient is
            /// multiplied by min(coef, 1). Parameters without a gradient are ignored.
            /// </summary>
            /// <param name="tensors">The parameters whose gradients are clipped.</param>
            /// <param name="max_norm">The largest allowed norm.</param>
            /// <param name="norm_type">The p of the p-norm (2 by default; <c>double.PositiveInfinity</c> for the max norm).</param>
            public static double clip_grad_norm_(IEnumerable<Parameter> tensors, double max_norm, double norm_type = 2.0)
            {
                var grads = tensors.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToList();
                if (grads.Count == 0) return 0.0;
                double total = GradNorm(grads, norm_type);
                double coef = max_norm / (total + 1e-6);
                if (coef < 1)
                    foreach (var g in grads)
                    {
                        if (g._dtype == ScalarType.Float32) TensorPrimitives.Multiply(g.RSpan<float>(), (float)coef, g.Span<float>());
                        else TensorPrimitives.Multiply(g.RSpan<double>(), coef, g.Span<double>());
                    }
                return total;
            }

            /// <summary>Clamps every gradient element into [−<paramref name="clip_value"/>, <paramref name="clip_value"/>], in place.</summary>
            public static void clip_grad_value_(IEnumerable<Parameter> tensors, double clip_value)
            {
                foreach (var p in tensors)
                {
                    var g = p.grad;
                    if (g is null) continue;
                    if (g._dtype == ScalarType.Float32) TensorPrimitives.Clamp(g.RSpan<float>(), (float)-clip_value, (float)clip_value, g.Span<float>());
                    else TensorPrimitives.Clamp(g.RSpan<double>(), -clip_value, clip_value, g.Span<double>());
                }
            }

            /// <summary>‖all gradients‖ₚ, accumulated in double in a fixed order.</summary>
            private static double GradNorm(List<Tensor> grads, double p)
            {
                if (double.IsPositiveInfinity(p))
                {
                    double max = 0;
                    foreach (var g in grads)
                    {
                        if (g._numel == 0) continue;
                        double m = g._dtype == ScalarType.Float32 ? TensorPrimitives.MaxMagnitude(g.RSpan<float>()) : TensorPrimitives.MaxMagnitude(g.RSpan<double>());
                        max = Math.Max(max, Math.Abs(m));
                    }
                    return max;
                }
                if (p <= 0) throw new ArgumentException($"clip_grad_norm_: norm_type must be positive or infinity, got {p}");
                double sum = 0;
                foreach (var g in grads)
                {
                    if (p == 2)
                    {
                        // Sum of squares per 4K block (vectorised, in the gradient's dtype), blocks summed in double.
                        const int Block = 4096;
                        for (int s = 0; s < g._numel; s += Block)
                        {
                            int n = Math.Min(Block, g._numel - s);
                            sum += g._dtype == ScalarType.Float32
                                ? TensorPrimitives.SumOfSquares(g.RSpan<float>().Slice(s, n))
                                : TensorPrimitives.SumOfSquares(g.RSpan<double>().Slice(s, n));
                        }
                    }
                    else
                        for (int i = 0; i < g._numel; i++) sum += Math.Pow(Math.Abs(g.GetDouble(i)), p);
                }
                return p == 2 ? Math.Sqrt(sum) : Math.Pow(sum, 1 / p);
            }

            /// <summary>
            /// The parameters flattened and concatenated into one 1-D tensor, in order. Differentiable (also
            /// twice): the gradient of the vector flows back to each parameter reshaped — TRPO builds its
            /// flat gradients and Fisher-vector products with it.
            /// </summary>
            public static Tensor parameters_to_vector(IEnumerable<Parameter> tensors) => FlatVector.Cat(tensors.Cast<Tensor>().ToList(), "parameters_to_vector");

            /// <summary>
            /// Copies consecutive slices of the 1-D <paramref name="vec"/> into the parameters, in place and
            /// without recording gradients (the inverse of <see cref="parameters_to_vector"/>). The vector's length
            /// must equal the parameters' total element count.
            /// </summary>
            public static void vector_to_parameters(Tensor vec, IEnumerable<Parameter> tensors)
            {
                var ps = tensors.ToList();
                if (vec.Rank != 1) throw new ArgumentException($"vector_to_parameters: expected a 1-D vector, got shape {vec.ShapeString}");
                long total = ps.Sum(p => (long)p._numel);
                if (total != vec._numel)
                    throw new ArgumentException($"vector_to_parameters: the vector has {vec._numel} elements but the parameters have {total} " +
                                                $"(shapes {string.Join(", ", ps.Select(p => p.ShapeString))})");
                int offset = 0;
                foreach (var p in ps)
                {
                    var src = vec._dtype == p._dtype ? vec : vec.detach().to_type(p._dtype);
                    Array.Copy(src._storage, offset, p._storage, 0, p._numel);
                    offset += p._numel;
                }
            }
        }
    }
}

/// <summary>
/// Concatenation and slicing of flattened tensors, the two ops behind <c>parameters_to_vector</c>. Each is
/// the other's adjoint, and both backward functions are built from these same recorded ops, so gradients
/// flow through them to any order.
/// </summary>
internal static class FlatVector
{
    /// <summary>y = [x₀.flatten(), x₁.flatten(), …].   ∂L/∂xᵢ = (∂L/∂y)[oᵢ : oᵢ + nᵢ] reshaped to xᵢ's shape.</summary>
    internal static torch.Tensor Cat(IList<torch.Tensor> xs, string op)
    {
        if (xs.Count == 0) return torch.zeros(0);
        var dtype = xs[0]._dtype;
        foreach (var x in xs)
            if (x._dtype != dtype) throw new ArgumentException($"{op}: all tensors must have the same dtype, got {dtype} and {x._dtype}");
        long total = xs.Sum(x => (long)x._numel);
        var y = torch.Tensor.Empty([total], dtype);
        var backward = new Func<torch.Tensor, torch.Tensor>?[xs.Count];
        int offset = 0;
        for (int i = 0; i < xs.Count; i++)
        {
            var x = xs[i];
            Array.Copy(x._storage, 0, y._storage, offset, x._numel);
            int o = offset, n = x._numel; var shape = x._shape;
            backward[i] = g => Slice(g, o, n).reshape(shape);
            offset += n;
        }
        return Autograd.Record(y, op, xs.ToArray(), backward);
    }

    /// <summary>y = x[offset : offset + length] of a 1-D x.   ∂L/∂x = ∂L/∂y placed at offset, zeros elsewhere.</summary>
    internal static torch.Tensor Slice(torch.Tensor x, int offset, int length)
    {
        var y = torch.Tensor.Empty([length], x._dtype);
        Array.Copy(x._storage, offset, y._storage, 0, length);
        int total = x._numel;
        return Autograd.Record(y, "slice", x, g =>
        {
            var parts = new List<torch.Tensor>();
            if (offset > 0) parts.Add(torch.zeros(offset, g._dtype));
            parts.Add(g);
            if (total - offset - length > 0) parts.Add(torch.zeros(total - offset - length, g._dtype));
            return Cat(parts, "slice_backward");
        });
    }
}
