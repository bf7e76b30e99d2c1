namespace TorchSharp;

/// <summary>
/// The entry point, shaped like TorchSharp's static class <c>torch</c>: creation functions, dtypes,
/// devices, grad mode, random seeding; nested <c>torch.nn</c>, <c>torch.optim</c>, <c>torch.autograd</c>, ...
/// </summary>
public static partial class torch
{
    // ------------------------------------------------------------------ dtypes (mutable statics, as in TorchSharp)
    public static ScalarType float32 = ScalarType.Float32;
    public static ScalarType float64 = ScalarType.Float64;
    public static ScalarType int64 = ScalarType.Int64;
    public static ScalarType @bool = ScalarType.Bool;
    public static ScalarType @float = ScalarType.Float32;
    public static ScalarType @double = ScalarType.Float64;
    public static ScalarType @long = ScalarType.Int64;

    /// <summary>The dtype floating-point creation functions use when none is given.</summary>
    public static ScalarType get_default_dtype() => ScalarType.Float32;

    // ------------------------------------------------------------------ devices
    public static Device CPU = new(DeviceType.CPU);
    public static Device CUDA = new(DeviceType.CUDA, 0);
    public static Device device(string description) => new(description);
    public static Device device(DeviceType type, int index = -1) => new(type, index);

    public static class cuda
    {
        /// <summary>MinTorch has no GPU backend yet, so this is false on every machine.</summary>
        public static bool is_available() => false;
        public static int device_count() => 0;
        internal static Exception NotAvailable() => new InvalidOperationException(
            "CUDA is not available: MinTorch computes on the CPU only (torch.cuda.is_available() is false); use torch.CPU");
    }

    /// <summary>TorchSharp loads libtorch's backend for a device type here. MinTorch has only the CPU: CUDA is
    /// refused with a clear message.</summary>
    public static void InitializeDeviceType(DeviceType deviceType)
    {
        if (deviceType != DeviceType.CPU) throw cuda.NotAvailable();
    }
    public static bool TryInitializeDeviceType(DeviceType deviceType) => deviceType == DeviceType.CPU;

    /// <summary>The device factories (zeros, arange, tensor, ...) create tensors on: always the CPU here.</summary>
    public static Device get_default_device() => CPU;
    public static void set_default_device(Device device) => CheckDevice(device);

    // ------------------------------------------------------------------ threads
    /// <summary>The number of threads parallel kernels may use. Results do not depend on it.</summary>
    public static void set_num_threads(int num) => Par.MaxThreads = Math.Max(1, num);
    public static int get_num_threads() => Par.MaxThreads;

    // ------------------------------------------------------------------ grad mode
    /// <summary>Turns gradient recording off until the returned object is disposed: <c>using (torch.no_grad()) { ... }</c>.</summary>
    public static IDisposable no_grad() => new Autograd.GradMode(false);
    /// <summary>Turns gradient recording back on inside a <c>no_grad</c> block.</summary>
    public static IDisposable enable_grad(bool enabled = true) => new Autograd.GradMode(enabled);
    public static bool is_grad_enabled() => Autograd.GradEnabled;
    public static void set_grad_enabled(bool enabled) => _ = new Autograd.GradMode(enabled);

    /// <summary>Opens a dispose scope: every tensor made while it is open is disposed with it, unless moved out
    /// (<see cref="Tensor.MoveToOuterDisposeScope"/>). TorchSharp frees native memory there; MinTorch hands large
    /// float tensors' storage back to its pool for the next step to reuse (see <see cref="DisposeScope"/>).</summary>
    public static DisposeScope NewDisposeScope() => new();

    public static partial class autograd
    {
        /// <summary>
        /// Gradients of <paramref name="outputs"/> with respect to <paramref name="inputs"/>, returned (not
        /// accumulated into <c>.grad</c>). With <paramref name="create_graph"/> the returned gradients are
        /// themselves differentiable (double backward). Unless <paramref name="retain_graph"/> or
        /// <paramref name="create_graph"/> is set, the graph is done with afterwards (as in PyTorch): going back
        /// through it again is an error.
        /// </summary>
        public static IList<Tensor> grad(IList<Tensor> outputs, IList<Tensor> inputs, IList<Tensor>? grad_outputs = null,
            bool retain_graph = false, bool create_graph = false, bool allow_unused = false)
            => Autograd.Grad(outputs, inputs, grad_outputs, retain_graph || create_graph, create_graph, allow_unused);
    }

    // ------------------------------------------------------------------ creation from data
    public static Tensor tensor(float[] rawArray, ReadOnlySpan<long> dimensions, ScalarType? dtype = null, Device? device = null, bool requires_grad = false)
        => FromArray(rawArray, dimensions, ScalarType.Float32, dtype, device, requires_grad);
    public static Tensor tensor(double[] rawArray, ReadOnlySpan<long> dimensions, ScalarType? dtype = null, Device? device = null, bool requires_grad = false)
        => FromArray(rawArray, dimensions, ScalarType.Float64, dtype, device, requires_grad);
    public static Tensor tensor(long[] rawArray, ReadOnlySpan<long> dimensions, ScalarType? dtype = null, Device? device = null, bool requires_grad = false)
        => FromArray(rawArray, dimensions, ScalarType.Int64, dtype, device, requires_grad);
    public static Tensor tensor(int[] rawArray, ReadOnlySpan<long> dimensions, ScalarType? dtype = null, Device? device = null, bool requires_grad = false)
        => FromArray(Array.ConvertAll(rawArray, v => (long)v), dimensions, ScalarType.Int64, dtype, device, requires_grad);
    public static Tensor tensor(bool[] rawArray, ReadOnlySpan<long> dimensions, ScalarType? dtype = null, Device? device = null, bool requires_grad = false)
        => FromArray(rawArray, dimensions, ScalarType.Bool, dtype, device, requires_grad);

    public static Tensor tensor(float[] rawArray, ScalarType? dtype = null, Device? device = null, bool requires_grad = false)
        => tensor(rawArray, [rawArray.LongLength], dtype, device, requires_grad);
    public static Tensor tensor(double[] rawArray, ScalarType? dtype = null, Device? device = null, bool requires_grad = false)
        => tensor(rawArray, [rawArray.LongLength], dtype, device, requires_grad);
    public static Tensor tensor(long[] rawArray, ScalarType? dtype = null, Device? device = null, bool requires_grad = false)
        => tensor(rawArray, [rawArray.LongLength], dtype, device, requires_grad);
    public static Tensor tensor(int[] rawArray, ScalarType? dtype = null, Device? device = null, bool requires_grad = false)
        => tensor(rawArray, [rawArray.LongLength], dtype, device, requires_grad);
    public static Tensor tensor(bool[] rawArray, ScalarType? dtype = null, Device? device = null, bool requires_grad = false)
        => tensor(rawArray, [rawArray.LongLength], dtype, device, requires_grad);

    public static Tensor tensor(float scalar, Device? device = null, bool requires_grad = false)
        => FromArray(new[] { scalar }, [], ScalarType.Float32, null, device, requires_grad);
    public static Tensor tensor(double scalar, ScalarType? dtype = null, Device? device = null, bool requires_grad = false)
        => FromArray(new[] { scalar }, [], ScalarType.Float64, dtype, device, requires_grad);
    public static Tensor tensor(long scalar, ScalarType? dtype = null, Device? device = null, bool requires_grad = false)
        => FromArray(new[] { scalar }, [], ScalarType.Int64, dtype, device, requires_grad);
    public static Tensor tensor(bool scalar, ScalarType? dtype = null, Device? device = null, bool requires_grad = false)
        => FromArray(new[] { scalar }, [], ScalarType.Bool, dtype, device, requires_grad);

    private static Tensor FromArray<T>(T[] data, ReadOnlySpan<long> dimensions, ScalarType natural, ScalarType? dtype, Device? device, bool requires_grad)
    {
        CheckDevice(device);
        var shape = dimensions.ToArray();
        long n = Shapes.Numel(shape);
        if (n != data.LongLength)
            throw new ArgumentException($"tensor: {data.LongLength} values cannot fill the shape {Shapes.Str(shape)} ({n} elements)");
        var t = new Tensor((T[])data.Clone(), shape, natural);
        if (dtype is ScalarType d && d != natural) t = t.to_type(d);
        if (requires_grad) t.requires_grad_();
        return t;
    }

    internal static void CheckDevice(Device? device)
    {
        if (device is not null && device.type != DeviceType.CPU) throw cuda.NotAvailable();
    }

    // ------------------------------------------------------------------ filled tensors
    private static Tensor Filled(long[] size, ScalarType? dtype, Device? device, bool requires_grad, Scalar? value, ScalarType natural = ScalarType.Float32)
    {
        CheckDevice(device);
        var t = Tensor.Zeros((long[])size.Clone(), dtype ?? natural);
        if (value is Scalar v && v.ToDouble() != 0) t.fill_(v);
        if (requires_grad) t.requires_grad_();
        return t;
    }

    public static Tensor zeros(long[] size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => Filled(size, dtype, device, requires_grad, null);
    public static Tensor zeros(ReadOnlySpan<long> size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => zeros(size.ToArray(), dtype, device, requires_grad);
    public static Tensor zeros(long size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => zeros(new[] { size }, dtype, device, requires_grad);
    public static Tensor zeros(long rows, long columns, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => zeros(new[] { rows, columns }, dtype, device, requires_grad);
    public static Tensor zeros(long dim0, long dim1, long dim2, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => zeros(new[] { dim0, dim1, dim2 }, dtype, device, requires_grad);
    public static Tensor zeros(long dim0, long dim1, long dim2, long dim3, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => zeros(new[] { dim0, dim1, dim2, dim3 }, dtype, device, requires_grad);

    public static Tensor ones(long[] size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => Filled(size, dtype, device, requires_grad, 1);
    public static Tensor ones(ReadOnlySpan<long> size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => ones(size.ToArray(), dtype, device, requires_grad);
    public static Tensor ones(long size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => ones(new[] { size }, dtype, device, requires_grad);
    public static Tensor ones(long rows, long columns, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => ones(new[] { rows, columns }, dtype, device, requires_grad);
    public static Tensor ones(long dim0, long dim1, long dim2, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => ones(new[] { dim0, dim1, dim2 }, dtype, device, requires_grad);
    public static Tensor ones(long dim0, long dim1, long dim2, long dim3, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => ones(new[] { dim0, dim1, dim2, dim3 }, dtype, device, requires_grad);

    /// <summary>Uninitialised in libtorch; zero-filled here (a managed array costs little more).</summary>
    public static Tensor empty(long[] size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => zeros(size, dtype, device, requires_grad);
    public static Tensor empty(long size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => zeros(size, dtype, device, requires_grad);
    public static Tensor empty(long rows, long columns, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => zeros(rows, columns, dtype, device, requires_grad);

    /// <summary>A tensor filled with <paramref name="value"/>; its dtype follows the value (float → float32, integer → int64, bool → bool) unless given.</summary>
    public static Tensor full(long[] size, Scalar value, ScalarType? dtype = null, Device? device = null, bool requires_grad = false)
        => Filled(size, dtype, device, requires_grad, value, value.Type switch { ScalarType.Float64 => ScalarType.Float32, var t => t });
    public static Tensor full(long size, Scalar value, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => full(new[] { size }, value, dtype, device, requires_grad);
    public static Tensor full(long rows, long columns, Scalar value, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => full(new[] { rows, columns }, value, dtype, device, requires_grad);

    public static Tensor zeros_like(Tensor input, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => zeros(input._shape, dtype ?? input.dtype, device, requires_grad);
    public static Tensor ones_like(Tensor input, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => ones(input._shape, dtype ?? input.dtype, device, requires_grad);
    public static Tensor full_like(Tensor input, Scalar value, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => Filled(input._shape, dtype ?? input.dtype, device, requires_grad, value);
    public static Tensor empty_like(Tensor input, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => zeros_like(input, dtype, device, requires_grad);

    /// <summary>Values from <paramref name="start"/> to <paramref name="stop"/> (exclusive) by <paramref name="step"/>;
    /// int64 when all three are integers, else float32.</summary>
    public static Tensor arange(Scalar start, Scalar stop, Scalar step, ScalarType? dtype = null, Device? device = null, bool requires_grad = false)
    {
        CheckDevice(device);
        bool isFloat = start.IsFloatingPoint || stop.IsFloatingPoint || step.IsFloatingPoint;
        var type = dtype ?? (isFloat ? ScalarType.Float32 : ScalarType.Int64);
        double s = start.ToDouble(), e = stop.ToDouble(), d = step.ToDouble();
        if (d == 0) throw new ArgumentException("arange: step must be nonzero");
        long n = (long)Math.Ceiling((e - s) / d);
        if (n < 0) throw new ArgumentException($"arange: the range [{start}, {stop}) with step {step} goes the wrong way");
        var t = Tensor.Zeros([n], type);
        for (int i = 0; i < n; i++)
        {
            switch (type)
            {
                case ScalarType.Float32: t.Arr<float>()[i] = (float)(s + i * d); break;
                case ScalarType.Float64: t.Arr<double>()[i] = s + i * d; break;
                case ScalarType.Int64: t.Arr<long>()[i] = isFloat ? (long)(s + i * d) : start.ToInt64() + i * step.ToInt64(); break;
                default: throw new ArgumentException($"arange: dtype {type} is not supported");
            }
        }
        if (requires_grad) t.requires_grad_();
        return t;
    }
    public static Tensor arange(Scalar start, Scalar stop, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => arange(start, stop, 1, dtype, device, requires_grad);
    public static Tensor arange(Scalar stop, ScalarType? dtype = null, Device? device = null, bool requires_grad = false) => arange(0, stop, 1, dtype, device, requires_grad);

    // ------------------------------------------------------------------ random
    private static Tensor Random(long[] size, ScalarType? dtype, Device? device, bool requires_grad, Generator? generator, bool normal)
    {
        CheckDevice(device);
        var type = dtype ?? ScalarType.Float32;
        var g = generator ?? default_generator;
        var t = Tensor.Empty((long[])size.Clone(), type);
        switch (type)
        {
            case ScalarType.Float32:
                var f = t.Arr<float>();
                for (int i = 0; i < t._numel; i++) f[i] = normal ? (float)g.NextNormal() : g.NextSingle();
                break;
            case ScalarType.Float64:
                var d = t.Arr<double>();
                for (int i = 0; i < t._numel; i++) d[i] = normal ? g.NextNormal() : g.NextDouble();
                break;
            default: throw new ArgumentException($"{(normal ? "randn" : "rand")}: dtype must be floating point, got {type}");
        }
        if (requires_grad) t.requires_grad_();
        return t;
    }

    /// <summary>Uniform samples in [0, 1).</summary>
    public static Tensor rand(long[] size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false, Generator? generator = null) => Random(size, dtype, device, requires_grad, generator, false);
    public static Tensor rand(long size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false, Generator? generator = null) => rand(new[] { size }, dtype, device, requires_grad, generator);
    public static Tensor rand(long rows, long columns, ScalarType? dtype = null, Device? device = null, bool requires_grad = false, Generator? generator = null) => rand(new[] { rows, columns }, dtype, device, requires_grad, generator);
    public static Tensor rand(long dim0, long dim1, long dim2, ScalarType? dtype = null, Device? device = null, bool requires_grad = false, Generator? generator = null) => rand(new[] { dim0, dim1, dim2 }, dtype, device, requires_grad, generator);

    /// <summary>Standard normal samples.</summary>
    public static Tensor randn(long[] size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false, Generator? generator = null) => Random(size, dtype, device, requires_grad, generator, true);
    public static Tensor randn(long size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false, Generator? generator = null) => randn(new[] { size }, dtype, device, requires_grad, generator);
    public static Tensor randn(long rows, long columns, ScalarType? dtype = null, Device? device = null, bool requires_grad = false, Generator? generator = null) => randn(new[] { rows, columns }, dtype, device, requires_grad, generator);
    public static Tensor randn(long dim0, long dim1, long dim2, ScalarType? dtype = null, Device? device = null, bool requires_grad = false, Generator? generator = null) => randn(new[] { dim0, dim1, dim2 }, dtype, device, requires_grad, generator);
    public static Tensor randn(long dim0, long dim1, long dim2, long dim3, ScalarType? dtype = null, Device? device = null, bool requires_grad = false, Generator? generator = null) => randn(new[] { dim0, dim1, dim2, dim3 }, dtype, device, requires_grad, generator);

    public static Tensor rand_like(Tensor input, ScalarType? dtype = null, Device? device = null, bool requires_grad = false, Generator? generator = null) => rand(input._shape, dtype ?? input.dtype, device, requires_grad, generator);
    public static Tensor randn_like(Tensor input, ScalarType? dtype = null, Device? device = null, bool requires_grad = false, Generator? generator = null) => randn(input._shape, dtype ?? input.dtype, device, requires_grad, generator);

    /// <summary>Uniform integers in [<paramref name="low"/>, <paramref name="high"/>), int64 by default.</summary>
    public static Tensor randint(long low, long high, long[] size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false, Generator? generator = null)
    {
        CheckDevice(device);
        if (high <= low) throw new ArgumentException($"randint: high ({high}) must be greater than low ({low})");
        var g = generator ?? default_generator;
        var t = Tensor.Empty((long[])size.Clone(), ScalarType.Int64);
        var a = t.Arr<long>();
        for (int i = 0; i < t._numel; i++) a[i] = g.NextLong(low, high);
        return dtype is ScalarType d && d != ScalarType.Int64 ? t.to_type(d) : t;
    }
    public static Tensor randint(long high, long[] size, ScalarType? dtype = null, Device? device = null, bool requires_grad = false, Generator? generator = null)
        => randint(0, high, size, dtype, device, requires_grad, generator);

    /// <summary>A random permutation of 0..n-1 (Fisher–Yates), int64.</summary>
    public static Tensor randperm(long n, ScalarType? dtype = null, Device? device = null, bool requires_grad = false, Generator? generator = null)
    {
        CheckDevice(device);
        var g = generator ?? default_generator;
        var p = new long[n];
        for (long i = 0; i < n; i++) p[i] = i;
        for (long i = n - 1; i > 0; i--) { long j = g.NextLong(0, i + 1); (p[i], p[j]) = (p[j], p[i]); }
        var t = new Tensor(p, [n], ScalarType.Int64);
        return dtype is ScalarType d && d != ScalarType.Int64 ? t.to_type(d) : t;
    }
}
