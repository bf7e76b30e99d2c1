namespace TorchSharp;

public static partial class torch
{
    /// <summary>
    /// One entry of a Python-style index expression, as TorchSharp's <c>torch.TensorIndex</c>:
    /// <c>x[TensorIndex.Ellipsis, TensorIndex.None]</c> is PyTorch's <c>x[..., None]</c>.
    /// </summary>
    /// <remarks>
    /// C# writes most entries directly through the implicit conversions: an integer is a single index
    /// (<c>x[0]</c>, <c>x[-1]</c>), a <see cref="System.Range"/> is a slice (<c>x[1..]</c>, <c>x[.., ..^1]</c>),
    /// a <see cref="System.Index"/> from the end is a negative index (<c>x[^1]</c> is <c>x[-1]</c>). Slices
    /// with a step need <see cref="Slice(long?, long?, long?)"/>; tensor indices (int64 positions or a
    /// bool mask) need <see cref="Tensor(torch.Tensor)"/>, or pass tensors alone: <c>x[mask]</c>.
    /// </remarks>
    public struct TensorIndex
    {
        internal enum Kind { None, Single, Null, Ellipsis, Bool, Tensor, Slice }

        internal long? startIndexOrBoolOrSingle;
        internal long? stopIndex;
        internal long? step;
        internal Kind kind;
        internal Tensor? tensor;

        /// <summary>start:stop:step, each optional, as in Python (negative start/stop count from the end; step &gt; 0).</summary>
        public static TensorIndex Slice(long? start = null, long? stop = null, long? step = null)
            => new() { startIndexOrBoolOrSingle = start, stopIndex = stop, step = step, kind = Kind.Slice };

        public static TensorIndex Slice((int? start, int? end) range) => Slice(range.start, range.end);

        /// <summary>A slice written as a C# range: <c>1..^1</c> is Python's <c>1:-1</c>.</summary>
        public static TensorIndex Slice(System.Range range)
        {
            long? start = !range.Start.IsFromEnd ? range.Start.Value : -1 * range.Start.Value;
            long? end = !range.End.IsFromEnd ? range.End.Value : range.End.Value == 0 ? null : -1 * range.End.Value;
            return Slice(start, end);
        }

        /// <summary><c>x[true]</c> adds a dim of size 1, <c>x[false]</c> a dim of size 0.</summary>
        public static TensorIndex Bool(bool value) => new() { startIndexOrBoolOrSingle = value ? 1 : 0, kind = Kind.Bool };

        /// <summary>One position of a dim (negative counts from the end); the dim is removed.</summary>
        public static TensorIndex Single(long? index) => new() { startIndexOrBoolOrSingle = index, kind = Kind.Single };

        /// <summary>An int64 tensor of positions along one dim, or a bool mask over one or more dims.</summary>
        public static TensorIndex Tensor(Tensor tensor) => new() { tensor = tensor, kind = Kind.Tensor };

        /// <summary><c>...</c>: as many full slices as needed to index every dim.</summary>
        public static readonly TensorIndex Ellipsis = new() { kind = Kind.Ellipsis };

        /// <summary>Inserts a new dim of size 1 (Python's <c>None</c> / <c>np.newaxis</c>).</summary>
        public static readonly TensorIndex None = new() { kind = Kind.None };

        /// <summary>As <see cref="None"/>.</summary>
        public static readonly TensorIndex Null = new() { kind = Kind.Null };

        /// <summary><c>:</c>, the whole dim.</summary>
        public static readonly TensorIndex Colon = Slice();

        public static implicit operator TensorIndex(long value) => Single(value);
        public static implicit operator TensorIndex(int value) => Single(value);
        public static implicit operator TensorIndex((int? start, int? end) range) => Slice((long?)range.start, (long?)range.end);
        public static implicit operator TensorIndex(System.Range range) => Slice(range);

        /// <summary><c>^k</c> is position −k.</summary>
        public static implicit operator TensorIndex(System.Index index) => Single(index.IsFromEnd ? -(long)index.Value : index.Value);

        public override readonly string ToString() => kind switch
        {
            Kind.Single => $"{startIndexOrBoolOrSingle}",
            Kind.Slice => $"{startIndexOrBoolOrSingle}:{stopIndex}" + (step is long s ? $":{s}" : ""),
            Kind.Ellipsis => "...",
            Kind.None or Kind.Null => "None",
            Kind.Bool => startIndexOrBoolOrSingle == 1 ? "True" : "False",
            _ => $"tensor {tensor?.ShapeString}",
        };
    }
}
