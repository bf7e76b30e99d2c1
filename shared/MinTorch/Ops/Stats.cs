using System.Numerics;
using System.Numerics.Tensors;

namespace TorchSharp;

public static partial class torch
{
    public partial class Tensor
    {
        // =====================================================================================
        // max / min. Over all elements the gradient is shared evenly among the tied maxima (as PyTorch
        // does); along a dim it goes to the index returned in `indexes` (the first maximum).
        // NaN counts as larger (and smaller) than everything, so it propagates, as in PyTorch.
        // =====================================================================================

        /// <summary>The largest element (a 0-dim tensor).   Gradient: g/k to each of the k elements equal to the max.</summary>
        public Tensor max() => Extreme(isMax: true, "max");

        /// <summary>The smallest element (a 0-dim tensor).   Gradient: g/k to each of the k elements equal to the min.</summary>
        public Tensor min() => Extreme(isMax: false, "min");

        private Tensor Extreme(bool isMax, string op)
        {
            if (_numel == 0) throw new ArgumentException($"{op}: the tensor is empty (shape {ShapeString}); there is no {op} to return");
            var y = Empty([], _dtype);
            switch (_dtype)
            {
                case ScalarType.Float32: y.Arr<float>()[0] = ExtremeAll(Arr<float>(), _numel, isMax); break;
                case ScalarType.Float64: y.Arr<double>()[0] = ExtremeAll(Arr<double>(), _numel, isMax); break;
                case ScalarType.Int64: y.Arr<long>()[0] = ExtremeAll(Arr<long>(), _numel, isMax); break;
                default:
                    var b = RSpan<bool>();
                    y.Arr<bool>()[0] = isMax ? b.Contains(true) : !b.Contains(false);
                    break;
            }
            var x = this;
            return Autograd.Record(y, op, x, g =>
            {
                var tied = x.eq(y).to_type(x._dtype);       // constant: which elements attain the extreme
                return tied.mul(g.div(tied.sum()));
            });
        }

        /// <summary>Max or min of a span, in fixed blocks (max and min are exact, so the split cannot change the result).</summary>
        private static T ExtremeAll<T>(T[] arr, int len, bool isMax) where T : unmanaged, INumber<T>
        {
            const int Block = 65536;
            if (len <= Block) return isMax ? TensorPrimitives.Max<T>(arr.AsSpan(0, len)) : TensorPrimitives.Min<T>(arr.AsSpan(0, len));
            int blocks = (len + Block - 1) / Block;
            var partial = new T[blocks];
            Par.For(blocks, 1, (b0, b1) =>
            {
                for (int b = b0; b < b1; b++)
                {
                    var s = arr.AsSpan(b * Block, Math.Min(Block, len - b * Block));
                    partial[b] = isMax ? TensorPrimitives.Max<T>(s) : TensorPrimitives.Min<T>(s);
                }
            });
            return isMax ? TensorPrimitives.Max<T>(partial) : TensorPrimitives.Min<T>(partial);
        }

        /// <summary>Maximum along <paramref name="dim"/> and the index of the (first) maximum.
        ///   Gradient of values: g goes to that index, zero elsewhere.</summary>
        public (Tensor values, Tensor indexes) max(long dim, bool keepdim = false) => ExtremeDim(dim, keepdim, isMax: true, "max");

        /// <summary>Minimum along <paramref name="dim"/> and the index of the (first) minimum.</summary>
        public (Tensor values, Tensor indexes) min(long dim, bool keepdim = false) => ExtremeDim(dim, keepdim, isMax: false, "min");

        private (Tensor values, Tensor indexes) ExtremeDim(long dim, bool keepdim, bool isMax, string op)
        {
            var src = _dtype == ScalarType.Bool ? to_type(ScalarType.Int64) : this;
            int d = Shapes.Dim(dim, Rank, op);
            var (outer, n, inner) = Shapes.Split(_shape, d);
            if (n == 0) throw new ArgumentException($"{op}: cannot reduce over dimension {dim} of size 0 (shape {ShapeString})");
            var kept = KeptShape([d]);
            var values = Empty(kept, src._dtype);
            var indexes = Empty(kept, ScalarType.Int64);
            var I = indexes.Arr<long>();
            switch (src._dtype)
            {
                case ScalarType.Float32: ArgExtreme(src.Arr<float>(), values.Arr<float>(), I, outer, n, inner, isMax); break;
                case ScalarType.Float64: ArgExtreme(src.Arr<double>(), values.Arr<double>(), I, outer, n, inner, isMax); break;
                default: ArgExtreme(src.Arr<long>(), values.Arr<long>(), I, outer, n, inner, isMax); break;
            }
            if (_dtype == ScalarType.Bool) values = values.to_type(ScalarType.Bool);
            var idxKept = indexes;
            if (!keepdim)
            {
                var reduced = ReducedShape([d]);
                values = new Tensor(values._storage, reduced, values._dtype);
                indexes = new Tensor(indexes._storage, reduced, ScalarType.Int64);
            }
            var x = this;
            values = Autograd.Record(values, op, x, g => PlaceAlong(g.reshape(kept), d, idxKept, n));
            return (values, indexes);
        }

        /// <summary>For every (outer, inner) position: the extreme over k and its first index (NaN wins).</summary>
        private static void ArgExtreme<T>(T[] X, T[] V, long[] I, int outer, int n, int inner, bool isMax) where T : unmanaged, INumber<T>
        {
            Par.For(outer * inner, Par.Grain(n), (s, e) =>
            {
                for (int p = s; p < e; p++)
                {
                    int o = p / inner, i = p % inner, b = o * n * inner + i;
                    T best = X[b]; int bi = 0;
                    if (!T.IsNaN(best))
                        for (int k = 1; k < n; k++)
                        {
                            T v = X[b + k * inner];
                            if (T.IsNaN(v)) { best = v; bi = k; break; }
                            if (isMax ? v > best : v < best) { best = v; bi = k; }
                        }
                    V[p] = best; I[p] = bi;
                }
            });
        }

        /// <summary>Index of the largest element of the flattened tensor (int64, 0-dim).</summary>
        public Tensor argmax() => reshape(-1).ArgIndex(0, false, isMax: true, "argmax");
        /// <summary>Indexes of the largest elements along <paramref name="dim"/> (int64).</summary>
        public Tensor argmax(long dim, bool keepdim = false) => ArgIndex(dim, keepdim, isMax: true, "argmax");
        /// <summary>Index of the smallest element of the flattened tensor (int64, 0-dim).</summary>
        public Tensor argmin() => reshape(-1).ArgIndex(0, false, isMax: false, "argmin");
        /// <summary>Indexes of the smallest elements along <paramref name="dim"/> (int64).</summary>
        public Tensor argmin(long dim, bool keepdim = false) => ArgIndex(dim, keepdim, isMax: false, "argmin");

        private Tensor ArgIndex(long dim, bool keepdim, bool isMax, string op)
        {
            using (no_grad()) return ExtremeDim(dim, keepdim, isMax, op).indexes;
        }

        // =====================================================================================
        // Routing a gradient to chosen indices, and back. PickAlong(x, d, idx)[.., j, ..] = x[.., idx[.., j, ..], ..]
        // (a gather) and PlaceAlong(s, d, idx, n) puts s[.., j, ..] at position idx[.., j, ..] of a zero
        // tensor with size n along d (a scatter-add). Each is the other's adjoint, so each one's backward
        // is the other, to any order.
        // =====================================================================================

        internal static Tensor PickAlong(Tensor x, int dim, Tensor index)
        {
            var (outer, n, inner) = Shapes.Split(x._shape, dim);
            var (_, m, _) = Shapes.Split(index._shape, dim);
            var y = Empty(index._shape, x._dtype);
            var I = index.Arr<long>();
            switch (x._dtype)
            {
                case ScalarType.Float32: Route(x.Arr<float>(), y.Arr<float>(), I, outer, n, m, inner, pick: true); break;
                case ScalarType.Float64: Route(x.Arr<double>(), y.Arr<double>(), I, outer, n, m, inner, pick: true); break;
                default: Route(x.Arr<long>(), y.Arr<long>(), I, outer, n, m, inner, pick: true); break;
            }
            return Autograd.Record(y, "pick", x, g => PlaceAlong(g, dim, index, n));
        }

        internal static Tensor PlaceAlong(Tensor src, int dim, Tensor index, int n)
        {
            var (outer, m, inner) = Shapes.Split(src._shape, dim);
            var shape = (long[])src._shape.Clone(); shape[dim] = n;
            var y = Zeros(shape, src._dtype);
            var I = index.Arr<long>();
            switch (src._dtype)
            {
                case ScalarType.Float32: Route(y.Arr<float>(), src.Arr<float>(), I, outer, n, m, inner, pick: false); break;
                case ScalarType.Float64: Route(y.Arr<double>(), src.Arr<double>(), I, outer, n, m, inner, pick: false); break;
                default: Route(y.Arr<long>(), src.Arr<long>(), I, outer, n, m, inner, pick: false); break;
            }
            return Autograd.Record(y, "place", src, g => PickAlong(g, dim, index));
        }

        /// <summary>pick: S[o, j, i] = Big[o, I[o, j, i], i];  place: Big[o, I[o, j, i], i] += S[o, j, i].
        /// Serial over j for each (o, i), so duplicate indices add up in a fixed order.</summary>
        private static void Route<T>(T[] Big, T[] S, long[] I, int outer, int n, int m, int inner, bool pick) where T : INumber<T>
        {
            foreach (var k in I.AsSpan(0, outer * m * inner))
                if ((ulong)k >= (ulong)n) throw new IndexOutOfRangeException($"internal: index {k} is out of range for a dimension of size {n}");
            Par.For(outer, Par.Grain((long)m * inner), (o0, o1) =>
            {
                for (int o = o0; o < o1; o++)
                    for (int j = 0; j < m; j++)
                        for (int i = 0; i < inner; i++)
                        {
                            int p = (o * m + j) * inner + i;
                            int q = (o * n + (int)I[p]) * inner + i;
                            if (pick) S[p] = Big[q]; else Big[q] += S[p];
                        }
            });
        }

        // =====================================================================================
        // var and std, from differentiable ops: var = Σ(x − μ)² / (N − c), c = 1 when unbiased (Bessel).
        //   ∂var/∂x = 2(x − μ)/(N − c)   (the −∂μ/∂x terms sum to zero);   std = √var, ∂std = ∂var/(2·std).
        // =====================================================================================

        /// <summary>Variance of all elements (Bessel-corrected unless <paramref name="unbiased"/> is false).</summary>
        public Tensor var(bool unbiased = true) => reshape(-1).var(new long[] { 0 }, unbiased, false);

        /// <summary>Variance along <paramref name="dim"/>.</summary>
        public Tensor var(long dim, bool unbiased = true, bool keepdim = false, ScalarType? type = null) => var(new[] { dim }, unbiased, keepdim, type);

        /// <summary>Variance over <paramref name="dimensions"/>.</summary>
        public Tensor var(long[] dimensions, bool unbiased = true, bool keepdim = false, ScalarType? type = null)
        {
            var x = type is ScalarType t && t != _dtype ? to_type(t) : this;
            if (!x.IsFloat) throw new ArgumentException($"var: expected a floating-point tensor, got {x._dtype} (convert with .to_type(torch.float32))");
            var dims = x.NormalizeDims(dimensions, "var");
            long count = 1;
            foreach (var d in dims) count *= x.Rank == 0 ? 1 : x._shape[d];
            var centered = x.sub(x.mean(dimensions, keepdim: true));
            return centered.square().sum(dimensions, keepdim).div(Math.Max(0, count - (unbiased ? 1 : 0)));
        }

        /// <summary>Standard deviation of all elements.</summary>
        public Tensor std(bool unbiased = true) => var(unbiased).sqrt();

        /// <summary>Standard deviation along <paramref name="dim"/>.</summary>
        public Tensor std(long dim, bool unbiased = true, bool keepdim = false, ScalarType? type = null) => var(dim, unbiased, keepdim, type).sqrt();

        /// <summary>Standard deviation over <paramref name="dimensions"/>.</summary>
        public Tensor std(long[] dimensions, bool unbiased = true, bool keepdim = false, ScalarType? type = null) => var(dimensions, unbiased, keepdim, type).sqrt();

        // =====================================================================================
        // cumsum: y_k = Σ_{j ≤ k} x_j.   ∂L/∂x_j = Σ_{k ≥ j} g_k: the cumulative sum of g taken from the end.
        // =====================================================================================

        /// <summary>Cumulative sum along <paramref name="dim"/> (bool counts as int64, as in PyTorch).</summary>
        public Tensor cumsum(long dim, ScalarType? type = null)
        {
            var x = type is ScalarType t && t != _dtype ? to_type(t) : _dtype == ScalarType.Bool ? to_type(ScalarType.Int64) : this;
            int d = Shapes.Dim(dim, Rank, "cumsum");
            return CumSum(x, d, reverse: false);
        }

        private static Tensor CumSum(Tensor x, int d, bool reverse)
        {
            var (outer, n, inner) = Shapes.Split(x._shape, d);
            var y = Empty(x._shape, x._dtype);
            switch (x._dtype)
            {
                case ScalarType.Float32: Scan(x.Arr<float>(), y.Arr<float>(), outer, n, inner, reverse); break;
                case ScalarType.Float64: Scan(x.Arr<double>(), y.Arr<double>(), outer, n, inner, reverse); break;
                default: Scan(x.Arr<long>(), y.Arr<long>(), outer, n, inner, reverse); break;
            }
            return Autograd.Record(y, reverse ? "cumsum_reverse" : "cumsum", x, g => CumSum(g, d, !reverse));
        }

        private static void Scan<T>(T[] X, T[] Y, int outer, int n, int inner, bool reverse) where T : unmanaged, INumber<T>
        {
            if (n == 0) return;
            Par.For(outer, Par.Grain((long)n * inner), (o0, o1) =>
            {
                for (int o = o0; o < o1; o++)
                {
                    int first = reverse ? n - 1 : 0, step = reverse ? -1 : 1;
                    Array.Copy(X, (o * n + first) * inner, Y, (o * n + first) * inner, inner);
                    for (int c = 1; c < n; c++)
                    {
                        int k = first + c * step, prev = k - step;
                        TensorPrimitives.Add<T>(new ReadOnlySpan<T>(Y, (o * n + prev) * inner, inner), new ReadOnlySpan<T>(X, (o * n + k) * inner, inner), new Span<T>(Y, (o * n + k) * inner, inner));
                    }
                }
            });
        }
    }

    public static Tensor max(Tensor input) => input.max();
    public static (Tensor values, Tensor indexes) max(Tensor input, long dim, bool keepdim = false) => input.max(dim, keepdim);
    public static Tensor min(Tensor input) => input.min();
    public static (Tensor values, Tensor indexes) min(Tensor input, long dim, bool keepdim = false) => input.min(dim, keepdim);
    public static Tensor argmax(Tensor input) => input.argmax();
    public static Tensor argmax(Tensor input, long dim, bool keepdim = false) => input.argmax(dim, keepdim);
    public static Tensor argmin(Tensor input) => input.argmin();
    public static Tensor argmin(Tensor input, long dim, bool keepdim = false) => input.argmin(dim, keepdim);
    public static Tensor std(Tensor input, bool unbiased = true) => input.std(unbiased);
    public static Tensor std(Tensor input, long dimensions, bool unbiased = true, bool keepdim = false, ScalarType? type = null) => input.std(dimensions, unbiased, keepdim, type);
    public static Tensor std(Tensor input, long[] dimensions, bool unbiased = true, bool keepdim = false, ScalarType? type = null) => input.std(dimensions, unbiased, keepdim, type);
    public static Tensor var(Tensor input, bool unbiased = true) => input.var(unbiased);
    public static Tensor var(Tensor input, long dimensions, bool unbiased = true, bool keepdim = false, ScalarType? type = null) => input.var(dimensions, unbiased, keepdim, type);
    public static Tensor var(Tensor input, long[] dimensions, bool unbiased = true, bool keepdim = false, ScalarType? type = null) => input.var(dimensions, unbiased, keepdim, type);
    public static Tensor cumsum(Tensor input, long dim, ScalarType? type = null) => input.cumsum(dim, type);
}
