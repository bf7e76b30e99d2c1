namespace TorchSharp;

/// <summary>Shape arithmetic shared by the ops: element counts, dim wrapping, broadcasting.</summary>
internal static class Shapes
{
    public static long Numel(ReadOnlySpan<long> shape)
    {
        long n = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new ArgumentException($"invalid shape {Str(shape)}: negative dimension {d}");
            n *= d;
        }
        return n;
    }

    public static string Str(ReadOnlySpan<long> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    public static bool Equal(ReadOnlySpan<long> a, ReadOnlySpan<long> b) => a.SequenceEqual(b);

    /// <summary>Wraps a possibly negative dim into [0, rank) or throws naming the op.</summary>
    public static int Dim(long dim, int rank, string op)
    {
        int r = Math.Max(rank, 1);
        if (dim < -r || dim >= r)
            throw new ArgumentOutOfRangeException(nameof(dim), $"{op}: dimension {dim} is out of range for a tensor with {rank} dimension(s) (expected to be in [{-r}, {r - 1}])");
        return (int)(dim < 0 ? dim + r : dim);
    }

    /// <summary>PyTorch's broadcasting: align shapes on the right; each pair of sizes must be equal or one of them 1.</summary>
    public static long[] Broadcast(ReadOnlySpan<long> a, ReadOnlySpan<long> b, string op)
    {
        int n = Math.Max(a.Length, b.Length);
        var result = new long[n];
        for (int i = 0; i < n; i++)
        {
            long da = i < n - a.Length ? 1 : a[i - (n - a.Length)];
            long db = i < n - b.Length ? 1 : b[i - (n - b.Length)];
            if (da != db && da != 1 && db != 1)
                throw new ArgumentException($"{op}: shapes {Str(a)} and {Str(b)} cannot be broadcast together (dimension {i}: {da} vs {db})");
            result[i] = da == 1 ? db : da;
        }
        return result;
    }

    /// <summary>Row-major strides of a contiguous tensor.</summary>
    public static long[] Strides(ReadOnlySpan<long> shape)
    {
        var s = new long[shape.Length];
        long acc = 1;
        for (int i = shape.Length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]; }
        return s;
    }

    /// <summary>Strides of <paramref name="shape"/> read as if broadcast to <paramref name="outShape"/> (0 on broadcast dims).</summary>
    public static long[] BroadcastStrides(ReadOnlySpan<long> shape, ReadOnlySpan<long> outShape)
    {
        var s = new long[outShape.Length];
        var own = Strides(shape);
        int off = outShape.Length - shape.Length;
        for (int i = 0; i < shape.Length; i++) s[i + off] = shape[i] == 1 ? 0 : own[i];
        return s;
    }

    /// <summary>Splits a shape around <paramref name="dim"/> into (outer, size, inner) element counts.</summary>
    public static (int outer, int n, int inner) Split(ReadOnlySpan<long> shape, int dim)
    {
        long outer = 1, inner = 1;
        for (int i = 0; i < dim; i++) outer *= shape[i];
        for (int i = dim + 1; i < shape.Length; i++) inner *= shape[i];
        return ((int)outer, shape.Length == 0 ? 1 : (int)shape[dim], (int)inner);
    }
}
