using System.Numerics;
using System.Numerics.Tensors;

namespace TorchSharp;

public static partial class torch
{
    public partial class Tensor
    {
        // =====================================================================================
        // sum and mean. A reduction over one dim sees the tensor as (outer, n, inner): with inner = 1
        // each output is the sum of a contiguous run; otherwise whole inner rows are added in k order.
        // The order of additions is fixed by the shape alone, so the bits never depend on threads.
        // =====================================================================================

        /// <summary>Sum of all elements (a 0-dim tensor).   ∂/∂x = 1 everywhere: the gradient is g broadcast back.</summary>
        public Tensor sum()
        {
            var x = PromoteIntegral(this);
            var y = Empty([], x._dtype);
            switch (x._dtype)
            {
                case ScalarType.Float32: y.Arr<float>()[0] = SumAll<float>(x.RSpan<float>()); break;
                case ScalarType.Float64: y.Arr<double>()[0] = SumAll<double>(x.RSpan<double>()); break;
                default: y.Arr<long>()[0] = TensorPrimitives.Sum<long>(x.RSpan<long>()); break;
            }
            var shape = _shape;
            return Autograd.Record(y, "sum", x, g => g.expand(shape));
        }

        /// <summary>bool sums count (int64), as in PyTorch.</summary>
        private static Tensor PromoteIntegral(Tensor x) => x._dtype == ScalarType.Bool ? x.to_type(ScalarType.Int64) : x;

        /// <summary>Sum in fixed 16K blocks, then the block sums in order: parallel and deterministic.</summary>
        internal static T SumAll<T>(ReadOnlySpan<T> x) where T : unmanaged, INumber<T>
        {
            const int Block = 16384;
            if (x.Length <= Block) return TensorPrimitives.Sum(x);
            int blocks = (x.Length + Block - 1) / Block;
            var partial = new T[blocks];
            unsafe
            {
                fixed (T* p = x)
                {
                    var ptr = (IntPtr)p; int len = x.Length;
                    Par.For(blocks, 4, (b0, b1) =>
                    {
                        for (int b = b0; b < b1; b++)
                        {
                            int s = b * Block, n = Math.Min(Block, len - s);
                            partial[b] = TensorPrimitives.Sum(new ReadOnlySpan<T>((T*)ptr + s, n));
                        }
                    });
                }
            }
            T acc = T.Zero;
            foreach (var v in partial) acc += v;
            return acc;
        }

        public Tensor sum(long dim, bool keepdim = false, ScalarType? type = null) => sum(new[] { dim }, keepdim, type);

        /// <summary>Sum over <paramref name="dim"/> (several dims allowed).   The gradient is g, with the
        /// reduced dims restored as size 1, broadcast back over them.</summary>
        public Tensor sum(long[] dim, bool keepdim = false, ScalarType? type = null)
        {
            var x = type is ScalarType t && t != _dtype ? to_type(t) : PromoteIntegral(this);
            var dims = NormalizeDims(dim, "sum");
            Tensor y;
            using (no_grad())
            {
                y = x;
                // Reduce the largest dim index first, so the remaining indices stay valid.
                foreach (var d in dims.OrderByDescending(d => d)) y = SumDim(y, d);
                if (ReferenceEquals(y, x)) y = x.clone();
            }
            var keptShape = KeptShape(dims);
            y = keepdim ? y.detach() : y.detach().reshape(ReducedShape(dims));
            var inShape = _shape;
            return Autograd.Record(y, "sum", x, g => g.reshape(keptShape).expand(inShape));
        }

        internal int[] NormalizeDims(long[] dim, string op)
        {
            var dims = dim.Select(d => Shapes.Dim(d, Rank, op)).Distinct().ToArray();
            if (dims.Length != dim.Length) throw new ArgumentException($"{op}: dimension listed more than once in [{string.Join(", ", dim)}]");
            return dims;
        }

        /// <summary>The input shape with the reduced dims set to 1 (keepdim: true).</summary>
        internal long[] KeptShape(int[] dims)
        {
            var s = (long[])_shape.Clone();
            foreach (var d in dims) if (Rank > 0) s[d] = 1;
            return s;
        }

        /// <summary>The input shape with the reduced dims removed (keepdim: false).</summary>
        internal long[] ReducedShape(int[] dims) => _shape.Where((_, i) => !dims.Contains(i)).ToArray();

        /// <summary>Sum over one dim, keeping it as size 1. Forward only.</summary>
        private static Tensor SumDim(Tensor x, int dim)
        {
            if (x.Rank == 0) return x.clone();
            var (outer, n, inner) = Shapes.Split(x._shape, dim);
            var shape = (long[])x._shape.Clone(); shape[dim] = 1;
            var y = Zeros(shape, x._dtype);
            switch (x._dtype)
            {
                case ScalarType.Float32: SumDimKernel<float>(x.Arr<float>(), y.Arr<float>(), outer, n, inner); break;
                case ScalarType.Float64: SumDimKernel<double>(x.Arr<double>(), y.Arr<double>(), outer, n, inner); break;
                default: SumDimKernel<long>(x.Arr<long>(), y.Arr<long>(), outer, n, inner); break;
            }
            return y;
        }

        private static void SumDimKernel<T>(T[] X, T[] Y, int outer, int n, int inner) where T : unmanaged, INumber<T>
        {
            if (inner == 1)
            {
                Par.For(outer, Par.Grain(n), (o0, o1) =>
                {
                    for (int o = o0; o < o1; o++) Y[o] = TensorPrimitives.Sum<T>(X.AsSpan(o * n, n));
                });
                return;
            }
            if (outer >= 4 || outer * n * inner < 65536)
            {
                Par.For(outer, Par.Grain((long)n * inner), (o0, o1) =>
                {
                    for (int o = o0; o < o1; o++)
                    {
                        var yr = Y.AsSpan(o * inner, inner);
                        for (int k = 0; k < n; k++) TensorPrimitives.Add<T>(yr, X.AsSpan((o * n + k) * inner, inner), yr);
                    }
                });
                return;
            }
            // Few outer rows (e.g. summing a (B·T, C) gradient over dim 0): split the inner dim instead.
            for (int o = 0; o < outer; o++)
            {
                int oo = o;
                Par.For(inner, Par.Grain(n), (i0, i1) =>
                {
                    var yr = Y.AsSpan(oo * inner + i0, i1 - i0);
                    for (int k = 0; k < n; k++) TensorPrimitives.Add<T>(yr, X.AsSpan((oo * n + k) * inner + i0, i1 - i0), yr);
                });
            }
        }

        /// <summary>Mean of all elements.</summary>
        public Tensor mean()
        {
            if (!IsFloat) throw new ArgumentException($"mean: expected a floating-point tensor, got {_dtype}");
            return sum().div(Math.Max(1, _numel));
        }

        /// <summary>Mean over <paramref name="dimensions"/> (TorchSharp takes a long[] here).</summary>
        public Tensor mean(long[] dimensions, bool keepdim = false, ScalarType? type = null)
        {
            var x = type is ScalarType t ? to_type(t) : this;
            if (!x.IsFloat) throw new ArgumentException($"mean: expected a floating-point tensor, got {x._dtype}");
            var dims = NormalizeDims(dimensions, "mean");
            long count = 1;
            foreach (var d in dims) count *= Rank == 0 ? 1 : _shape[d];
            return x.sum(dimensions, keepdim).div(Math.Max(1, count));
        }

        // =====================================================================================
        // reshape / view / expand: the shape ops every other op's backward relies on.
        // =====================================================================================

        /// <summary>The same elements in a new shape (one dim may be -1). Shares storage.   Backward: reshape g back.</summary>
        public Tensor reshape(params long[] shape)
        {
            var s = InferShape(shape, "reshape");
            var y = new Tensor(_storage, s, _dtype);
            var inShape = _shape;
            return Autograd.Record(y, "reshape", this, g => g.reshape(inShape));
        }

        /// <summary>As <see cref="reshape"/>; every MinTorch tensor is contiguous, so a view always exists.</summary>
        public Tensor view(params long[] shape) => reshape(shape);

        public Tensor view_as(Tensor other) => reshape(other._shape);
        public Tensor reshape_as(Tensor other) => reshape(other._shape);

        private long[] InferShape(long[] shape, string op)
        {
            var s = (long[])shape.Clone();
            int infer = -1; long known = 1;
            for (int i = 0; i < s.Length; i++)
            {
                if (s[i] == -1)
                {
                    if (infer >= 0) throw new ArgumentException($"{op}: only one dimension can be -1, got {Shapes.Str(shape)}");
                    infer = i;
                }
                else if (s[i] < 0) throw new ArgumentException($"{op}: invalid size {s[i]} in {Shapes.Str(shape)}");
                else known *= s[i];
            }
            if (infer >= 0)
            {
                if (known == 0 || _numel % known != 0)
                    throw new ArgumentException($"{op}: shape {Shapes.Str(shape)} is invalid for input of size {_numel} (shape {ShapeString})");
                s[infer] = _numel / known;
            }
            else if (known != _numel)
                throw new ArgumentException($"{op}: shape {Shapes.Str(shape)} is invalid for input of size {_numel} (shape {ShapeString})");
            return s;
        }

        /// <summary>Repeats size-1 dims (and adds leading dims) to reach <paramref name="sizes"/>; -1 keeps a size.
        /// A copy in MinTorch.   Backward: sum g over the repeated dims (sum_to).</summary>
        public Tensor expand(params long[] sizes)
        {
            if (sizes.Length < Rank)
                throw new ArgumentException($"expand: the target shape {Shapes.Str(sizes)} has fewer dimensions than the tensor's shape {ShapeString}");
            var target = (long[])sizes.Clone();
            int lead = target.Length - Rank;
            for (int i = 0; i < target.Length; i++)
            {
                long own = i >= lead ? _shape[i - lead] : 1;
                if (target[i] == -1)
                {
                    if (i < lead) throw new ArgumentException($"expand: -1 is not allowed for a new leading dimension in {Shapes.Str(sizes)}");
                    target[i] = own;
                }
                else if (own != 1 && own != target[i])
                    throw new ArgumentException($"expand: the tensor's shape {ShapeString} cannot be expanded to {Shapes.Str(sizes)} (dimension {i}: {own} vs {target[i]})");
            }
            if (Shapes.Equal(target, _shape)) return this;
            var y = Empty(target, _dtype);
            switch (_dtype)
            {
                case ScalarType.Float32: ExpandKernel<float>(this, y); break;
                case ScalarType.Float64: ExpandKernel<double>(this, y); break;
                case ScalarType.Int64: ExpandKernel<long>(this, y); break;
                default: ExpandKernel<bool>(this, y); break;
            }
            var x = this;
            return Autograd.Record(y, "expand", x, g => g.sum_to(x._shape));
        }

        public Tensor expand_as(Tensor other) => expand(other._shape);

        private static void ExpandKernel<T>(Tensor x, Tensor y)
        {
            var X = x.Arr<T>(); var Y = y.Arr<T>();
            var plan = Elementwise.RowPlan.Make(x._shape, x._shape.Length == 0 ? [] : [1], y._shape);
            int inner = plan.Inner;
            Par.For(plan.Rows, Par.Grain(inner, 65536), (r0, r1) =>
            {
                for (int r = r0; r < r1; r++)
                {
                    plan.Offsets(r, out int xo, out _);
                    if (plan.AInner) X.AsSpan(xo, inner).CopyTo(Y.AsSpan(r * inner, inner));
                    else Y.AsSpan(r * inner, inner).Fill(X[xo]);
                }
            });
        }
    }

    public static Tensor sum(Tensor input) => input.sum();
    public static Tensor mean(Tensor input) => input.mean();
}
