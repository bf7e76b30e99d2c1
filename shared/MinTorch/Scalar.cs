namespace TorchSharp;

public static partial class torch
{
    /// <summary>The element types MinTorch supports; the numeric values are TorchSharp's (and libtorch's).</summary>
    public enum ScalarType : sbyte
    {
        Int64 = 4,
        Float32 = 6,
        Float64 = 7,
        Bool = 11,
    }
}

/// <summary>A number passed to an op (`x.clamp(min: 0)`, `torch.full(shape, 1.5)`), as TorchSharp's <c>Scalar</c>.</summary>
/// <remarks>It remembers whether it was written as an integer, a floating-point number or a bool,
/// because PyTorch's type promotion depends on that: <c>int64_tensor * 2</c> stays int64,
/// <c>int64_tensor * 0.5</c> becomes float32.</remarks>
public readonly struct Scalar
{
    internal readonly double Double;
    internal readonly long Long;
    internal readonly ScalarType Type;

    private Scalar(double d, long l, ScalarType t) { Double = d; Long = l; Type = t; }

    public static implicit operator Scalar(double v) => new(v, (long)v, ScalarType.Float64);
    public static implicit operator Scalar(float v) => new(v, (long)v, ScalarType.Float64);
    public static implicit operator Scalar(long v) => new(v, v, ScalarType.Int64);
    public static implicit operator Scalar(int v) => new(v, v, ScalarType.Int64);
    public static implicit operator Scalar(bool v) => new(v ? 1 : 0, v ? 1 : 0, ScalarType.Bool);

    public double ToDouble() => Double;
    public float ToSingle() => (float)Double;
    public long ToInt64() => Type == ScalarType.Float64 ? (long)Double : Long;
    public bool ToBoolean() => Double != 0;
    internal bool IsFloatingPoint => Type == ScalarType.Float64;

    public override string ToString() => Type switch
    {
        ScalarType.Float64 => Double.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        ScalarType.Bool => Double != 0 ? "True" : "False",
        _ => Long.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}

public enum DeviceType { CPU = 0, CUDA = 1 }

public static partial class torch
{
    /// <summary>Where a tensor lives. MinTorch computes on the CPU; the type exists so a GPU backend can
    /// be added without touching the chapters. Nested in <c>torch</c>, as TorchSharp's <c>torch.Device</c> (`tensor.to(device)`, `torch.cuda.is_available()`).</summary>
    public sealed class Device
    {
        public DeviceType type { get; }
        public int index { get; }
        public Device(DeviceType type, int index = -1) { this.type = type; this.index = index; }
        public Device(string description)
        {
            var parts = description.Trim().ToLowerInvariant().Split(':');
            type = parts[0] switch
            {
                "cpu" => DeviceType.CPU,
                "cuda" => DeviceType.CUDA,
                _ => throw new ArgumentException($"unknown device '{description}': expected 'cpu' or 'cuda[:N]'"),
            };
            index = parts.Length > 1 && int.TryParse(parts[1], out var i) ? i : -1;
        }
        public override string ToString() => type == DeviceType.CPU ? "cpu" : index >= 0 ? $"cuda:{index}" : "cuda";
        public override bool Equals(object? obj) => obj is Device d && d.type == type && (d.index == index || d.index < 0 || index < 0);
        public override int GetHashCode() => (int)type;
    }
}
