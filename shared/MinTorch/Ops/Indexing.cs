using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace TorchSharp;

public static partial class torch
{
    public partial class Tensor
    {
        // =====================================================================================
        // Index tensors: int64 positions, checked before any kernel runs (so a bad index is a clear
        // error, never a wrong read).
        // =====================================================================================

        /// <summary>A copy of the values with its own storage, outside the graph.</summary>
        private Tensor DataCopy()
        {
            var y = Empty(_shape, _dtype);
            Array.Copy(_storage, y._storage, _numel);
            return y;
        }

        private static ReadOnlySpan<long> IndexValues(Tensor index, string op)
        {
            if (index._dtype != ScalarType.Int64)
                throw new ArgumentException($"{op}: the index tensor must have dtype int64 (torch.int64), got {index._dtype}; convert it with .to_type(torch.int64)");
            return index.RSpan<long>();
        }

        private static void CheckBounds(ReadOnlySpan<long> idx, long size, int dim, string op)
        {
            foreach (var v in idx)
                if ((ulong)v >= (ulong)size)
                    throw new ArgumentOutOfRangeException("index", $"{op}: index {v} is out of bounds for dimension {dim} with size {size}");
        }

        // =====================================================================================
        // gather / scatter / scatter_add: one index per element. For dim d,
        //   gather:      y[i, j, k]              = x[i, index[i, j, k], k]        (d = 1, 3-D)
        //   scatter_add: x[i, index[i, j, k], k] += src[i, j, k]
        // gather's adjoint is scatter_add into zeros and vice versa.
        // =====================================================================================

        /// <summary>Picks, along <paramref name="dim"/>, the elements named by <paramref name="index"/> (int64, same number of
        /// dims as the input, no larger in the other dims); the result has the index's shape.
        /// Backward: g scatter-added into zeros of the input's shape at the gathered positions
        /// (an element picked twice receives both gradients).</summary>
        public Tensor gather(long dim, Tensor index)
        {
            int d = CheckGatherShapes(index, _shape, dim, "gather");
            CheckBounds(IndexValues(index, "gather"), _shape[d], d, "gather");
            var y = Empty(index._shape, _dtype);
            RunGatherScatter(this, index, y, d, GS.Gather);
            var inShape = _shape;
            return Autograd.Record(y, "gather", this, g => ScatterAddInto(inShape, d, index, g));
        }

        /// <summary>z = zeros(shape); z[…, index[…, j, …], …] += src[…, j, …] along d.   ∂L/∂src = gather of ∂L/∂z.</summary>
        internal static Tensor ScatterAddInto(long[] shape, int d, Tensor index, Tensor src)
        {
            var z = Zeros(shape, src._dtype);
            RunGatherScatter(z, index, src, d, GS.ScatterAdd);
            return Autograd.Record(z, "scatter_add", src, g => g.gather(d, index));
        }

        /// <summary>A copy of this tensor with <paramref name="src"/>'s elements added at the positions <paramref name="index"/>
        /// names along <paramref name="dim"/> (src may be larger than the index; its extra elements are unused).
        /// Backward: g for the input; g gathered at the same positions for src.</summary>
        public Tensor scatter_add(long dim, Tensor index, Tensor src)
        {
            var (d, s) = PrepareScatter(dim, index, src, "scatter_add");
            var y = DataCopy();
            RunGatherScatter(y, index, s, d, GS.ScatterAdd);
            return Autograd.Record(y, "scatter_add", this, s, g => g, g => g.gather(d, index));
        }

        /// <summary>A copy of this tensor with <paramref name="src"/>'s elements written at the positions <paramref name="index"/>
        /// names along <paramref name="dim"/> (when two elements land on the same position, the later one in
        /// row-major order wins). Backward: g with the overwritten positions zeroed for the input; g gathered
        /// at the positions for src.</summary>
        public Tensor scatter(long dim, Tensor index, Tensor src)
        {
            var (d, s) = PrepareScatter(dim, index, src, "scatter");
            var y = DataCopy();
            RunGatherScatter(y, index, s, d, GS.Scatter);
            return Autograd.Record(y, "scatter", this, s, g => g.scatter(d, index, zeros_like(s)), g => g.gather(d, index));
        }

        /// <summary>In-place <see cref="scatter(long, Tensor, Tensor)"/> (refused on tensors in the autograd graph).</summary>
        public Tensor scatter_(long dim, Tensor index, Tensor src)
        {
            CheckInPlace("scatter_");
            var (d, s) = PrepareScatter(dim, index, src, "scatter_");
            RunGatherScatter(this, index, s, d, GS.Scatter);
            return this;
        }

        /// <summary>In-place <see cref="scatter_add(long, Tensor, Tensor)"/> (refused on tensors in the autograd graph).</summary>
        public Tensor scatter_add_(long dim, Tensor index, Tensor src)
        {
            CheckInPlace("scatter_add_");
            var (d, s) = PrepareScatter(dim, index, src, "scatter_add_");
            RunGatherScatter(this, index, s, d, GS.ScatterAdd);
            return this;
        }

        private (int d, Tensor src) PrepareScatter(long dim, Tensor index, Tensor src, string op)
        {
            int d = CheckGatherShapes(index, _shape, dim, op);
            CheckBounds(IndexValues(index, op), _shape[d], d, op);
            if (src._dtype != _dtype)
                throw new ArgumentException($"{op}: src has dtype {src._dtype} but the tensor has dtype {_dtype}; they must match");
            if (src.Rank != index.Rank)
                throw new ArgumentException($"{op}: src (shape {src.ShapeString}) must have as many dimensions as the index (shape {index.ShapeString})");
            for (int a = 0; a < src.Rank; a++)
            {
                if (src._shape[a] < index._shape[a])
                    throw new ArgumentException($"{op}: src (shape {src.ShapeString}) is smaller than the index (shape {index.ShapeString}) in dimension {a}");
                if (src._shape[a] > index._shape[a]) src = src.narrow(a, 0, index._shape[a]);
            }
            return (d, src);
        }

        private static int CheckGatherShapes(Tensor index, long[] xShape, long dim, string op)
        {
            IndexValues(index, op);
            if (xShape.Length == 0) throw new ArgumentException($"{op}: expects a tensor with at least one dimension, got shape []");
            if (index.Rank != xShape.Length)
                throw new ArgumentException($"{op}: the index must have as many dimensions as the input, but the index has shape {index.ShapeString} and the input {Shapes.Str(xShape)}");
            int d = Shapes.Dim(dim, xShape.Length, op);
            for (int a = 0; a < xShape.Length; a++)
                if (a != d && index._shape[a] > xShape[a])
                    throw new ArgumentException($"{op}: the index (shape {index.ShapeString}) is larger than the input (shape {Shapes.Str(xShape)}) in dimension {a}");
            return d;
        }

        private enum GS { Gather, Scatter, ScatterAdd }

        /// <summary>What happens to one (x position, e position) pair: e is shaped like the index.</summary>
        private interface IGatherScatter<T> { static abstract void Apply(T[] x, int xi, T[] e, int ei); }
        private struct GatherOp<T> : IGatherScatter<T> { public static void Apply(T[] x, int xi, T[] e, int ei) => e[ei] = x[xi]; }
        private struct ScatterOp<T> : IGatherScatter<T> { public static void Apply(T[] x, int xi, T[] e, int ei) => x[xi] = e[ei]; }
        private struct AddOp<T> : IGatherScatter<T> where T : INumber<T> { public static void Apply(T[] x, int xi, T[] e, int ei) => x[xi] += e[ei]; }

        private static void RunGatherScatter(Tensor x, Tensor index, Tensor e, int d, GS mode)
        {
            switch (x._dtype, mode)
            {
                case (ScalarType.Float32, GS.Gather): GatherScatterKernel<float, GatherOp<float>>(x, index, e, d); break;
                case (ScalarType.Float32, GS.Scatter): GatherScatterKernel<float, ScatterOp<float>>(x, index, e, d); break;
                case (ScalarType.Float32, GS.ScatterAdd): GatherScatterKernel<float, AddOp<float>>(x, index, e, d); break;
                case (ScalarType.Float64, GS.Gather): GatherScatterKernel<double, GatherOp<double>>(x, index, e, d); break;
                case (ScalarType.Float64, GS.Scatter): GatherScatterKernel<double, ScatterOp<double>>(x, index, e, d); break;
                case (ScalarType.Float64, GS.ScatterAdd): GatherScatterKernel<double, AddOp<double>>(x, index, e, d); break;
                case (ScalarType.Int64, GS.Gather): GatherScatterKernel<long, GatherOp<long>>(x, index, e, d); break;
                case (ScalarType.Int64, GS.Scatter): GatherScatterKernel<long, ScatterOp<long>>(x, index, e, d); break;
                case (ScalarType.Int64, GS.ScatterAdd): GatherScatterKernel<long, AddOp<long>>(x, index, e, d); break;
                case (ScalarType.Bool, GS.Gather): GatherScatterKernel<bool, GatherOp<bool>>(x, index, e, d); break;
                case (ScalarType.Bool, GS.Scatter): GatherScatterKernel<bool, ScatterOp<bool>>(x, index, e, d); break;
                default: throw new ArgumentException($"scatter_add: adding is not defined for {x._dtype} tensors");
            }
        }

        /// <summary>
        /// The loop shared by gather, scatter and scatter_add. When the index has the input's size in every dim
        /// but d (the usual case), index and input split as (outer, m, inner) and (outer, n, inner), and
        /// element (o, j, k) pairs with x[o, index[o, j, k], k]. Work is divided by o (or, when there are few
        /// o, by k): each output element of scatter_add is then updated by one thread, in j order, so sums do
        /// not depend on the thread count.
        /// </summary>
        private static void GatherScatterKernel<T, TOp>(Tensor x, Tensor index, Tensor e, int d) where TOp : IGatherScatter<T>
        {
            T[] X = x.Arr<T>(), E = e.Arr<T>();
            long[] I = index.Arr<long>();
            var iShape = index._shape; var xShape = x._shape;
            if (index._numel == 0) return;
            bool sameOuter = true;
            for (int a = 0; a < xShape.Length; a++) if (a != d && iShape[a] != xShape[a]) sameOuter = false;
            if (!sameOuter)
            {
                // The index covers only a corner of x: walk it with an odometer (rare; kept simple and serial).
                var xStrides = Shapes.Strides(xShape);
                var c = new long[iShape.Length];
                for (int ei = 0; ei < index._numel; ei++)
                {
                    long xi = 0;
                    for (int a = 0; a < c.Length; a++) xi += (a == d ? I[ei] : c[a]) * xStrides[a];
                    TOp.Apply(X, (int)xi, E, ei);
                    for (int a = c.Length - 1; a >= 0; a--) { if (++c[a] < iShape[a]) break; c[a] = 0; }
                }
                return;
            }
            var (outer, m, inner) = Shapes.Split(iShape, d);
            int n = (int)xShape[d];
            void Lines(int o, int k0, int k1)
            {
                int xBase = o * n * inner;
                for (int j = 0; j < m; j++)
                {
                    int eb = (o * m + j) * inner;
                    for (int k = k0; k < k1; k++) TOp.Apply(X, xBase + (int)I[eb + k] * inner + k, E, eb + k);
                }
            }
            if (outer >= 4 || inner == 1)
                Par.For(outer, Par.Grain((long)m * inner), (o0, o1) => { for (int o = o0; o < o1; o++) Lines(o, 0, inner); });
            else
                for (int o = 0; o < outer; o++) { int oo = o; Par.For(inner, Par.Grain(m), (k0, k1) => Lines(oo, k0, k1)); }
        }

        // =====================================================================================
        // index_select / index_add: whole slices along a dim. Embedding is index_select(0, ids) on a
        // (vocab, C) table, and its gradient is index_add of the (B·T, C) output gradient.
        // =====================================================================================

        /// <summary>The slices of dim <paramref name="dim"/> named by the 1-D int64 <paramref name="index"/>, in that order
        /// (repeats allowed). Backward: g's slices added back into zeros of the input's shape (index_add).</summary>
        public Tensor index_select(long dim, Tensor index)
        {
            var idx = IndexValues(index, "index_select");
            if (index.Rank > 1) throw new ArgumentException($"index_select: the index must be a 0-D or 1-D tensor, got shape {index.ShapeString}");
            if (Rank == 0) throw new ArgumentException("index_select: expects a tensor with at least one dimension, got shape []");
            int d = Shapes.Dim(dim, Rank, "index_select");
            CheckBounds(idx, _shape[d], d, "index_select");
            var outShape = (long[])_shape.Clone(); outShape[d] = index._numel;
            var y = Empty(outShape, _dtype);
            switch (_dtype)
            {
                case ScalarType.Float32: IndexSelectKernel<float>(this, index, y, d); break;
                case ScalarType.Float64: IndexSelectKernel<double>(this, index, y, d); break;
                case ScalarType.Int64: IndexSelectKernel<long>(this, index, y, d); break;
                default: IndexSelectKernel<bool>(this, index, y, d); break;
            }
            var inShape = _shape;
            return Autograd.Record(y, "index_select", this, g => IndexAddInto(inShape, d, index, g));
        }

        /// <summary>Row r = (o, j) of the output is row (o, index[j]) of the input; rows are copied whole.</summary>
        private static void IndexSelectKernel<T>(Tensor x, Tensor index, Tensor y, int d)
        {
            T[] X = x.Arr<T>(), Y = y.Arr<T>();
            long[] I = index.Arr<long>();
            var (outer, n, inner) = Shapes.Split(x._shape, d);
            int m = index._numel;
            Par.For(outer * m, Par.Grain(inner, 32768), (r0, r1) =>
            {
                for (int r = r0; r < r1; r++)
                {
                    int o = r / m, j = r % m;
                    int src = (o * n + (int)I[j]) * inner;
                    if (inner == 1) Y[r] = X[src];
                    else X.AsSpan(src, inner).CopyTo(Y.AsSpan(r * inner, inner));
                }
            });
        }

        /// <summary>z = zeros(shape); z's slice index[j] along d += src's slice j.   ∂L/∂src = index_select of ∂L/∂z.</summary>
        internal static Tensor IndexAddInto(long[] shape, int d, Tensor index, Tensor src)
        {
            var z = Zeros(shape, src._dtype);
            RunIndexAdd(z, index, src, d);
            return Autograd.Record(z, "index_add", src, g => g.index_select(d, index));
        }

        /// <summary>A copy of this tensor with <paramref name="alpha"/>·<paramref name="source"/>'s slices added at the slices
        /// <paramref name="index"/> names along <paramref name="dim"/> (repeated indices accumulate).
        /// Backward: g for the input; alpha·g.index_select(dim, index) for source.</summary>
        public Tensor index_add(long dim, Tensor index, Tensor source, Scalar alpha)
        {
            var (d, s) = PrepareIndexAdd(dim, index, source, alpha, "index_add");
            var y = DataCopy();
            RunIndexAdd(y, index, s, d);
            return Autograd.Record(y, "index_add", this, source, g => g, g => g.index_select(d, index).mul(alpha));
        }

        /// <summary>In-place <see cref="index_add(long, Tensor, Tensor, Scalar)"/> (refused on tensors in the autograd graph).</summary>
        public Tensor index_add_(long dim, Tensor index, Tensor source, Scalar alpha)
        {
            CheckInPlace("index_add_");
            var (d, s) = PrepareIndexAdd(dim, index, source, alpha, "index_add_");
            RunIndexAdd(this, index, s, d);
            return this;
        }

        private (int d, Tensor scaled) PrepareIndexAdd(long dim, Tensor index, Tensor source, Scalar alpha, string op)
        {
            var idx = IndexValues(index, op);
            if (index.Rank > 1) throw new ArgumentException($"{op}: the index must be a 0-D or 1-D tensor, got shape {index.ShapeString}");
            if (Rank == 0) throw new ArgumentException($"{op}: expects a tensor with at least one dimension, got shape []");
            int d = Shapes.Dim(dim, Rank, op);
            CheckBounds(idx, _shape[d], d, op);
            var want = (long[])_shape.Clone(); want[d] = index._numel;
            if (!Shapes.Equal(source._shape, want))
                throw new ArgumentException($"{op}: source has shape {source.ShapeString}, but a tensor of shape {ShapeString} indexed by {index._numel} positions along dimension {d} needs {Shapes.Str(want)}");
            if (source._dtype != _dtype)
                throw new ArgumentException($"{op}: source has dtype {source._dtype} but the tensor has dtype {_dtype}; they must match");
            Tensor s;
            using (no_grad()) s = alpha.ToDouble() == 1 ? source : source.mul(alpha);
            return (d, s);
        }

        private static void RunIndexAdd(Tensor z, Tensor index, Tensor src, int d)
        {
            switch (z._dtype)
            {
                case ScalarType.Float32: IndexAddKernel<float>(z, index, src, d); break;
                case ScalarType.Float64: IndexAddKernel<double>(z, index, src, d); break;
                case ScalarType.Int64: IndexAddKernel<long>(z, index, src, d); break;
                default: throw new ArgumentException($"index_add: adding is not defined for {z._dtype} tensors");
            }
        }

        /// <summary>
        /// Slice j of src is added to slice index[j] of z. With one outer block (dim 0: the embedding
        /// gradient), the source rows are first bucketed by destination (a stable counting sort), then
        /// destination rows are processed in parallel, each summing its sources in ascending j — the same
        /// additions, in the same order, as the serial loop, so the result is bit-identical for any thread
        /// count and repeated tokens need no atomics.
        /// </summary>
        private static void IndexAddKernel<T>(Tensor z, Tensor index, Tensor src, int d) where T : unmanaged, INumber<T>
        {
            T[] Z = z.Arr<T>(), S = src.Arr<T>();
            long[] I = index.Arr<long>();
            var (outer, n, inner) = Shapes.Split(z._shape, d);
            int m = index._numel;
            if (m == 0 || inner == 0) return;
            if (outer == 1)
            {
                var start = new int[n + 1];
                for (int j = 0; j < m; j++) start[I[j] + 1]++;
                for (int r = 0; r < n; r++) start[r + 1] += start[r];
                var order = new int[m];
                var fill = (int[])start.Clone();
                for (int j = 0; j < m; j++) order[fill[I[j]]++] = j;
                Par.For(n, Par.Grain((long)inner * Math.Max(1, m / Math.Max(1, n)), 32768), (r0, r1) =>
                {
                    for (int r = r0; r < r1; r++)
                    {
                        var zr = Z.AsSpan(r * inner, inner);
                        for (int p = start[r]; p < start[r + 1]; p++) TensorPrimitives.Add<T>(zr, S.AsSpan(order[p] * inner, inner), zr);
                    }
                });
                return;
            }
            Par.For(outer, Par.Grain((long)m * inner, 32768), (o0, o1) =>
            {
                for (int o = o0; o < o1; o++)
                    for (int j = 0; j < m; j++)
                    {
                        var zr = Z.AsSpan((o * n + (int)I[j]) * inner, inner);
                        TensorPrimitives.Add<T>(zr, S.AsSpan((o * m + j) * inner, inner), zr);
                    }
            });
        }

        // =====================================================================================
        // masked_fill and where: elementwise selection with broadcasting.
        // =====================================================================================

        private static void CheckMask(Tensor mask, string op)
        {
            if (mask._dtype != ScalarType.Bool)
                throw new ArgumentException($"{op}: the mask must be a bool tensor, got {mask._dtype} (build one with a comparison such as x > 0, or .to_type(torch.@bool))");
        }

        /// <summary>y = x where the mask is false, <paramref name="value"/> where it is true (the mask broadcasts against x).
        /// Backward: g with zeros where the mask is true, summed back to x's shape.</summary>
        public Tensor masked_fill(Tensor mask, Scalar value)
        {
            CheckMask(mask, "masked_fill");
            var outShape = Shapes.Equal(mask._shape, _shape) ? _shape : Shapes.Broadcast(_shape, mask._shape, "masked_fill");
            var y = Empty(outShape, _dtype);
            RunMaskedFill(this, mask, y, value);
            var x = this;
            return Autograd.Record(y, "masked_fill", x, g => g.masked_fill(mask, 0).sum_to(x));
        }

        /// <summary>In-place <see cref="masked_fill"/>; the mask must broadcast to this tensor's shape.</summary>
        public Tensor masked_fill_(Tensor mask, Scalar value)
        {
            CheckInPlace("masked_fill_");
            CheckMask(mask, "masked_fill_");
            if (!Shapes.Equal(Shapes.Broadcast(_shape, mask._shape, "masked_fill_"), _shape))
                throw new ArgumentException($"masked_fill_: the mask of shape {mask.ShapeString} cannot be broadcast to the tensor's shape {ShapeString}");
            RunMaskedFill(this, mask, this, value);
            return this;
        }

        private static void RunMaskedFill(Tensor x, Tensor mask, Tensor y, Scalar value)
        {
            switch (x._dtype)
            {
                case ScalarType.Float32: MaskedFillKernel(x, mask, y, value.ToSingle()); break;
                case ScalarType.Float64: MaskedFillKernel(x, mask, y, value.ToDouble()); break;
                case ScalarType.Int64: MaskedFillKernel(x, mask, y, value.ToInt64()); break;
                default: MaskedFillKernel(x, mask, y, value.ToBoolean()); break;
            }
        }

        private static void MaskedFillKernel<T>(Tensor x, Tensor mask, Tensor y, T v)
        {
            T[] X = x.Arr<T>(), Y = y.Arr<T>();
            bool[] M = mask.Arr<bool>();
            if (x._numel == y._numel && mask._numel == y._numel)
            {
                Par.For(y._numel, 65536, (s, e) =>
                {
                    if (!ReferenceEquals(X, Y)) X.AsSpan(s, e - s).CopyTo(Y.AsSpan(s, e - s));
                    FillRuns(M.AsSpan(s, e - s), Y.AsSpan(s, e - s), v);
                });
                return;
            }
            // Broadcasting: cut the output into rows along which x and the mask are each contiguous or constant.
            var plan = Elementwise.RowPlan.Make(x._shape, mask._shape, y._shape);
            int inner = plan.Inner;
            Par.For(plan.Rows, Par.Grain(inner, 65536), (r0, r1) =>
            {
                for (int r = r0; r < r1; r++)
                {
                    plan.Offsets(r, out int xo, out int mo);
                    var yr = Y.AsSpan(r * inner, inner);
                    if (!plan.BInner && M[mo]) { yr.Fill(v); continue; }
                    if (plan.AInner) { if (!ReferenceEquals(X, Y) || xo != r * inner) X.AsSpan(xo, inner).CopyTo(yr); }
                    else yr.Fill(X[xo]);
                    if (plan.BInner) FillRuns(M.AsSpan(mo, inner), yr, v);
                }
            });
        }

        /// <summary>y[i] = v wherever mask[i]. Masks come in runs (causal, padding), so find each run of trues
        /// with the vectorised IndexOf and fill it whole.</summary>
        private static void FillRuns<T>(ReadOnlySpan<bool> mask, Span<T> y, T v)
        {
            int i = 0;
            while (i < mask.Length)
            {
                int start = mask[i..].IndexOf(true);
                if (start < 0) return;
                start += i;
                int end = mask[start..].IndexOf(false);
                end = end < 0 ? mask.Length : start + end;
                y[start..end].Fill(v);
                i = end;
            }
        }

        /// <summary>out = this where <paramref name="condition"/> is true, <paramref name="y"/> where it is false; all three
        /// broadcast together and the values are promoted to a common dtype (TorchSharp's method form of
        /// torch.where). Backward: g masked to each side, summed back to that side's shape.</summary>
        public Tensor where(Tensor condition, Tensor y)
        {
            if (condition._dtype != ScalarType.Bool)
                throw new ArgumentException($"where: the condition must be a bool tensor, got {condition._dtype}");
            var type = Promote(this, y);
            var a = to_type(type); var b = y.to_type(type);
            var shape = Shapes.Broadcast(Shapes.Broadcast(condition._shape, a._shape, "where"), b._shape, "where");
            var r = Empty(shape, type);
            Tensor ce, ae, be;
            using (no_grad()) { ce = condition.expand(shape); ae = a.detach().expand(shape); be = b.detach().expand(shape); }
            switch (type)
            {
                case ScalarType.Float32: WhereKernel<float>(ce, ae, be, r); break;
                case ScalarType.Float64: WhereKernel<double>(ce, ae, be, r); break;
                case ScalarType.Int64: WhereKernel<long>(ce, ae, be, r); break;
                default: WhereKernel<bool>(ce, ae, be, r); break;
            }
            return Autograd.Record(r, "where", a, b,
                g => g.masked_fill(condition.logical_not(), 0).sum_to(a),
                g => g.masked_fill(condition, 0).sum_to(b));
        }

        private static void WhereKernel<T>(Tensor c, Tensor a, Tensor b, Tensor r)
        {
            bool[] C = c.Arr<bool>(); T[] A = a.Arr<T>(), B = b.Arr<T>(), R = r.Arr<T>();
            Par.For(r._numel, 65536, (s, e) => { for (int i = s; i < e; i++) R[i] = C[i] ? A[i] : B[i]; });
        }

        // =====================================================================================
        // Python-style indexing: x[0], x[.., -1], x[1.., ..^1], x[TensorIndex.Ellipsis, TensorIndex.None],
        // x[mask], x[TensorIndex.Tensor(ids)].
        //
        // Ints, slices, None and the ellipsis ("basic" indices) pick a strided view of x, read with the
        // same kernel as transpose and narrow. A tensor index (int64 positions or a bool mask — one per
        // expression) is first turned into an index_select along its dim. Every step is differentiable.
        // =====================================================================================

        [IndexerName("TensorItems")]
        public Tensor this[params TensorIndex[] indices]
        {
            get => index(indices);
            set => index_put_(value, indices);
        }

        [IndexerName("TensorItems")]
        public Tensor this[params Tensor[] indices]
        {
            get => index(indices);
            set => index_put_(value, indices);
        }

        /// <summary>The elements picked by a Python-style index expression (a copy). Backward: g put back at
        /// those positions in a zero tensor of this shape (summing where a tensor index repeats a position).</summary>
        public Tensor index(params TensorIndex[] indices)
        {
            var adv = FindAdvanced(ref indices, "index");
            if (adv is null) return GatherView(this, BasicPlan(_shape, indices, -1, "index").view, "index");
            // x[…, ids, …]: select the slices first, then apply the basic indices around the new dim.
            var x = adv.Flattened is null ? this : reshape(adv.Flattened);
            x = x.index_select(adv.Dim, tensor(adv.Positions));
            var (view, at) = BasicPlan(x._shape, indices, adv.At, "index");
            var y = IsWhole(view, x._shape) ? x : GatherView(x, view, "index");
            var shape = view.Sizes.Take(at).Concat(adv.Shape).Concat(view.Sizes.Skip(at + 1)).ToArray();
            return y.reshape(shape);
        }

        public Tensor index(params Tensor[] indices) => index(indices.Select(TensorIndex.Tensor).ToArray());

        /// <summary>Writes <paramref name="value"/> (broadcast to the indexed shape, converted to this dtype) into the
        /// positions the index expression picks, in place. Refused on tensors in the autograd graph.
        /// With a tensor index that repeats a position, the last write wins.</summary>
        public Tensor index_put_(Tensor value, params TensorIndex[] indices)
        {
            CheckInPlace("index_put_");
            var adv = FindAdvanced(ref indices, "index_put_");
            using var _ = no_grad();
            if (adv is null)
            {
                var view = BasicPlan(_shape, indices, -1, "index_put_").view;
                Strided.Copy(FitValue(value, view.Sizes), this, view, gather: false);
                return this;
            }
            var x = adv.Flattened is null ? this : reshape(adv.Flattened); // shares this tensor's storage
            var (v, at) = BasicPlan(x._shape, indices, adv.At, "index_put_");
            var shape = v.Sizes.Take(at).Concat(adv.Shape).Concat(v.Sizes.Skip(at + 1)).ToArray();
            var perPosition = v.Sizes.Take(at).Append(adv.Positions.Length).Concat(v.Sizes.Skip(at + 1)).ToArray();
            var values = FitValue(value, shape).reshape(perPosition);
            var sizes = v.Sizes.Where((_, i) => i != at).ToArray();
            var strides = v.Strides.Where((_, i) => i != at).ToArray();
            for (int j = 0; j < adv.Positions.Length; j++)
                Strided.Copy(values.narrow(at, j, 1), x, new View(v.Offset + adv.Positions[j] * v.Strides[at], sizes, strides), gather: false);
            return this;
        }

        public Tensor index_put_(Tensor value, params Tensor[] indices) => index_put_(value, indices.Select(TensorIndex.Tensor).ToArray());
        public Tensor index_put_(Scalar value, params TensorIndex[] indices) => index_put_(ScalarTensor(value, _dtype), indices);
        public Tensor index_put_(Scalar value, params Tensor[] indices) => index_put_(ScalarTensor(value, _dtype), indices);

        /// <summary>The value to write, broadcast to <paramref name="shape"/>, in this dtype, not sharing this tensor's storage.</summary>
        private Tensor FitValue(Tensor value, long[] shape)
        {
            var v = value.detach();
            // As PyTorch: leading size-1 dims of the value are ignored (x[0] = ones(1) fills a single element).
            while (v.Rank > shape.Length && v._shape[0] == 1) v = v.reshape(v._shape[1..]);
            if (!Shapes.Equal(v._shape, shape))
            {
                if (!Shapes.Equal(Shapes.Broadcast(v._shape, shape, "index_put_"), shape))
                    throw new ArgumentException($"index_put_: the value of shape {v.ShapeString} cannot be broadcast to the indexed shape {Shapes.Str(shape)}");
                v = v.expand(shape);
            }
            v = v.to_type(_dtype);
            return ReferenceEquals(v._storage, _storage) ? v.clone() : v;
        }

        private static bool IsWhole(View v, long[] shape) =>
            v.Offset == 0 && Shapes.Equal(v.Sizes, shape) && Shapes.Equal(v.Strides, Shapes.Strides(shape));

        /// <summary>A tensor index, resolved: along dim <see cref="Dim"/> (of the tensor reshaped to
        /// <see cref="Flattened"/> when a mask spans several dims) take <see cref="Positions"/>; the result
        /// dim becomes <see cref="Shape"/>. <see cref="At"/> is its place in the index expression.</summary>
        private sealed record Advanced(int At, int Dim, long[] Positions, long[] Shape, long[]? Flattened);

        /// <summary>Finds the (at most one) tensor index, resolves it to positions and replaces it by a full slice.</summary>
        private Advanced? FindAdvanced(ref TensorIndex[] indices, string op)
        {
            indices = (TensorIndex[])indices.Clone();
            int at = -1;
            for (int p = 0; p < indices.Length; p++)
            {
                if (indices[p].kind != TensorIndex.Kind.Tensor) continue;
                var t = indices[p].tensor ?? throw new ArgumentException($"{op}: TensorIndex.Tensor was given a null tensor");
                if (t._dtype == ScalarType.Bool && t.Rank == 0) { indices[p] = TensorIndex.Bool(t.Arr<bool>()[0]); continue; }
                if (t._dtype is not (ScalarType.Int64 or ScalarType.Bool))
                    throw new ArgumentException($"{op}: tensor indices must be int64 (positions) or bool (a mask), got {t._dtype}");
                if (at >= 0)
                    throw new NotSupportedException($"{op}: MinTorch supports one tensor index per index expression; this one has more (positions {at} and {p}). Index in two steps instead.");
                at = p;
            }
            int ellipsisDims = EllipsisDims(indices, op);
            if (at < 0) return null;

            int dim = 0;
            for (int p = 0; p < at; p++) dim += Consumed(indices[p], ellipsisDims);
            var ix = indices[at].tensor!;
            indices[at] = TensorIndex.Colon;
            if (ix._dtype == ScalarType.Int64)
            {
                long n = _shape[dim];
                var positions = ix.RSpan<long>().ToArray();
                for (int i = 0; i < positions.Length; i++)
                {
                    long w = positions[i] < 0 ? positions[i] + n : positions[i];
                    if (w < 0 || w >= n)
                        throw new ArgumentOutOfRangeException("index", $"{op}: index {positions[i]} is out of bounds for dimension {dim} with size {n}");
                    positions[i] = w;
                }
                return new Advanced(at, dim, positions, ix.shape, null);
            }
            // A bool mask over dims dim .. dim + k − 1: those dims are merged into one, and the mask becomes
            // the (row-major) positions of its true elements.
            int k = ix.Rank;
            if (!Shapes.Equal(ix._shape, _shape.AsSpan(dim, k)))
                throw new ArgumentException($"{op}: the mask of shape {ix.ShapeString} does not match the indexed shape {Shapes.Str(_shape.AsSpan(dim, k))} (dimensions {dim}..{dim + k - 1} of {ShapeString})");
            var mask = ix.Arr<bool>();
            var hits = new List<long>();
            for (int i = 0; i < ix._numel; i++) if (mask[i]) hits.Add(i);
            long[]? flattened = null;
            if (k != 1)
            {
                long merged = 1;
                for (int a = dim; a < dim + k; a++) merged *= _shape[a];
                flattened = _shape.Take(dim).Append(merged).Concat(_shape.Skip(dim + k)).ToArray();
            }
            return new Advanced(at, dim, hits.ToArray(), [hits.Count], flattened);
        }

        private static int Consumed(TensorIndex ix, int ellipsisDims) => ix.kind switch
        {
            TensorIndex.Kind.Single or TensorIndex.Kind.Slice => 1,
            TensorIndex.Kind.Tensor => ix.tensor!._dtype == ScalarType.Bool ? ix.tensor.Rank : 1,
            TensorIndex.Kind.Ellipsis => ellipsisDims,
            _ => 0,
        };

        /// <summary>How many dims the ellipsis stands for (all the dims no other index consumes).</summary>
        private int EllipsisDims(TensorIndex[] indices, string op)
        {
            if (indices.Count(ix => ix.kind == TensorIndex.Kind.Ellipsis) > 1)
                throw new ArgumentException($"{op}: an index can only have a single ellipsis ('...')");
            int consumed = indices.Sum(ix => Consumed(ix, 0));
            if (consumed > Rank)
                throw new ArgumentException($"{op}: too many indices for a tensor of dimension {Rank} (shape {ShapeString}): [{string.Join(", ", indices)}] indexes {consumed} dimensions");
            return Rank - consumed;
        }

        /// <summary>
        /// Turns basic indices into a view: an int fixes a dim (moving the offset), a slice keeps the dim with
        /// size ⌈(stop − start)/step⌉ and stride step·stride, None adds a size-1 dim, the ellipsis and any
        /// dims left over at the end are kept whole. Also returns where the index at position
        /// <paramref name="track"/> lands among the result's dims.
        /// </summary>
        private static (View view, int at) BasicPlan(long[] shape, TensorIndex[] indices, int track, string op)
        {
            var strides = Shapes.Strides(shape);
            int consumed = indices.Sum(ix => Consumed(ix, 0));
            int ellipsisDims = shape.Length - consumed;
            var sizes = new List<long>(); var steps = new List<long>();
            long offset = 0; int dim = 0, at = -1;
            for (int p = 0; p < indices.Length; p++)
            {
                var ix = indices[p];
                switch (ix.kind)
                {
                    case TensorIndex.Kind.Ellipsis:
                        for (int e = 0; e < ellipsisDims; e++, dim++) { sizes.Add(shape[dim]); steps.Add(strides[dim]); }
                        break;
                    case TensorIndex.Kind.None:
                    case TensorIndex.Kind.Null:
                        sizes.Add(1); steps.Add(0);
                        break;
                    case TensorIndex.Kind.Bool:
                        sizes.Add(ix.startIndexOrBoolOrSingle == 1 ? 1 : 0); steps.Add(0);
                        break;
                    case TensorIndex.Kind.Single:
                    {
                        long n = shape[dim];
                        long i = ix.startIndexOrBoolOrSingle ?? throw new ArgumentException($"{op}: TensorIndex.Single was given no index");
                        long w = i < 0 ? i + n : i;
                        if (w < 0 || w >= n)
                            throw new ArgumentOutOfRangeException("index", $"{op}: index {i} is out of bounds for dimension {dim} with size {n}");
                        offset += w * strides[dim];
                        dim++;
                        break;
                    }
                    case TensorIndex.Kind.Slice:
                    {
                        long n = shape[dim];
                        long step = ix.step ?? 1;
                        if (step <= 0) throw new ArgumentException($"{op}: slice step must be positive, got {step}");
                        long start = Clamp(ix.startIndexOrBoolOrSingle ?? 0, n), stop = Clamp(ix.stopIndex ?? n, n);
                        long length = stop > start ? (stop - start + step - 1) / step : 0;
                        if (p == track) at = sizes.Count;
                        sizes.Add(length); steps.Add(step * strides[dim]);
                        if (length > 0) offset += start * strides[dim];
                        dim++;
                        break;
                    }
                }
            }
            for (; dim < shape.Length; dim++) { sizes.Add(shape[dim]); steps.Add(strides[dim]); }
            return (new View(offset, sizes.ToArray(), steps.ToArray()), at);

            // Python's slice bounds: negative counts from the end, then clamp into [0, n].
            static long Clamp(long i, long n) => Math.Clamp(i < 0 ? i + n : i, 0, n);
        }
    }

    /// <summary>Elements of <paramref name="x"/> where <paramref name="condition"/> is true, of <paramref name="y"/> elsewhere.</summary>
    public static Tensor where(Tensor condition, Tensor x, Tensor y) => x.where(condition, y);
    public static Tensor gather(Tensor input, long dim, Tensor index) => input.gather(dim, index);
    public static Tensor index_select(Tensor input, long dim, Tensor index) => input.index_select(dim, index);
    public static Tensor scatter(Tensor input, long dim, Tensor index, Tensor src) => input.scatter(dim, index, src);
    public static Tensor scatter_add(Tensor input, long dim, Tensor index, Tensor src) => input.scatter_add(dim, index, src);
    public static Tensor index_add(Tensor input, long dim, Tensor index, Tensor source, Scalar alpha) => input.index_add(dim, index, source, alpha);
}
