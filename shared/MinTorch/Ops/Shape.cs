using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace TorchSharp;

/// <summary>
/// A strided window onto a contiguous buffer: element (i₀, …, iₖ₋₁) of the view is
/// <c>buffer[Offset + Σ iₐ·Strides[a]]</c>. Every MinTorch tensor is contiguous, but transpose, permute,
/// narrow, flip, cat and basic indexing are all "read (or write) the elements of a strided view in
/// row-major order", so one copy kernel (<see cref="Strided.Copy"/>) serves them all.
/// </summary>
/// <remarks>Strides may be negative (flip) or zero (a size-1 dim inserted by None).</remarks>
internal readonly record struct View(long Offset, long[] Sizes, long[] Strides)
{
    /// <summary>The whole of a contiguous tensor of this shape.</summary>
    public static View Of(long[] shape) => new(0, (long[])shape.Clone(), Shapes.Strides(shape));
}

/// <summary>The copy kernel behind the shape ops.</summary>
internal static class Strided
{
    /// <summary>
    /// Copies between a contiguous tensor <paramref name="dense"/> (whose shape is the view's sizes) and
    /// the view <paramref name="v"/> of <paramref name="strided"/>: gather reads the view into dense,
    /// scatter writes dense into the view. Both tensors must have the same dtype.
    /// </summary>
    public static void Copy(torch.Tensor dense, torch.Tensor strided, View v, bool gather)
    {
        switch (dense._dtype)
        {
            case ScalarType.Float32: Copy(dense.Arr<float>(), strided.Arr<float>(), v, gather); break;
            case ScalarType.Float64: Copy(dense.Arr<double>(), strided.Arr<double>(), v, gather); break;
            case ScalarType.Int64: Copy(dense.Arr<long>(), strided.Arr<long>(), v, gather); break;
            default: Copy(dense.Arr<bool>(), strided.Arr<bool>(), v, gather); break;
        }
    }

    /// <summary>
    /// Simplifies the view first: size-1 dims are dropped, and neighbouring dims that are also neighbours
    /// in memory (stride[a] = stride[a+1]·size[a+1]) are merged. What is left picks the loop:
    /// <list type="bullet">
    /// <item>innermost stride 1 — copy whole rows (permutes that keep the last dim, e.g. the (B, T, H, D) ↔
    /// (B, H, T, D) shuffle in attention, narrow, cat);</item>
    /// <item>another dim has stride 1 — a 2-D transpose between that dim and the innermost one, in 32×32
    /// tiles so that both the reads and the writes stay in cache;</item>
    /// <item>otherwise an element loop (stepped slices, flips).</item>
    /// </list>
    /// Work is split over rows or tiles with <see cref="Par.For"/>; each chunk writes its own elements,
    /// so the result never depends on the thread count.
    /// </summary>
    private static void Copy<T>(T[] D, T[] S, View v, bool gather)
    {
        var sizeList = new List<int>(); var strideList = new List<int>();
        for (int a = 0; a < v.Sizes.Length; a++)
        {
            if (v.Sizes[a] == 0) return;
            if (v.Sizes[a] == 1) continue;
            int size = (int)v.Sizes[a], stride = (int)v.Strides[a];
            int last = sizeList.Count - 1;
            if (last >= 0 && strideList[last] == stride * size) { sizeList[last] *= size; strideList[last] = stride; continue; }
            sizeList.Add(size); strideList.Add(stride);
        }
        // The kernels index without bounds checks, so check once that the whole view lies inside S.
        long lo = v.Offset, hi = v.Offset;
        for (int a = 0; a < sizeList.Count; a++)
        {
            long span = (long)(sizeList[a] - 1) * strideList[a];
            if (span < 0) lo += span; else hi += span;
        }
        long count = 1;
        foreach (var size in sizeList) count *= size;
        if (lo < 0 || hi >= S.Length || count > D.Length)
            throw new InvalidOperationException($"internal: strided view [{lo}, {hi}] outside a buffer of {S.Length} elements");
        int off = (int)v.Offset;
        int n = sizeList.Count;
        if (n == 0) { if (gather) D[0] = S[off]; else S[off] = D[0]; return; }
        var sizes = sizeList.ToArray(); var strides = strideList.ToArray();

        int inner = sizes[n - 1], sInner = strides[n - 1];
        if (sInner != 1)
        {
            int k = n >= 2 ? Array.LastIndexOf(strides, 1, n - 2) : -1;
            if (k >= 0) { Tiled(D, S, off, sizes, strides, k, gather); return; }
        }

        int rows = 1;
        for (int a = 0; a < n - 1; a++) rows *= sizes[a];
        bool rowCopy = sInner == 1 && inner >= 8;
        Par.For(rows, Par.Grain(inner, 32768), (r0, r1) =>
        {
            // Odometer over the outer dims: idx is the position of row r, so is its start in S.
            var idx = new int[n - 1];
            int so = off;
            long rem = r0;
            for (int a = n - 2; a >= 0; a--) { idx[a] = (int)(rem % sizes[a]); rem /= sizes[a]; so += idx[a] * strides[a]; }
            for (int r = r0; r < r1; r++)
            {
                int dOff = r * inner;
                if (rowCopy)
                {
                    if (gather) S.AsSpan(so, inner).CopyTo(D.AsSpan(dOff, inner));
                    else D.AsSpan(dOff, inner).CopyTo(S.AsSpan(so, inner));
                }
                else if (gather) for (int j = 0, p = so; j < inner; j++, p += sInner) D[dOff + j] = S[p];
                else for (int j = 0, p = so; j < inner; j++, p += sInner) S[p] = D[dOff + j];
                for (int a = n - 2; a >= 0; a--)
                {
                    idx[a]++; so += strides[a];
                    if (idx[a] < sizes[a]) break;
                    so -= strides[a] * sizes[a]; idx[a] = 0;
                }
            }
        });
    }

    private const int Tile = 32;

    /// <summary>The transposing case: dense dim <paramref name="k"/> is contiguous in S, the innermost dense dim
    /// is not. Each work item is one 32-row band of dim k for one combination of the other dims.</summary>
    private static void Tiled<T>(T[] D, T[] S, int off, int[] sizes, int[] strides, int k, bool gather)
    {
        int n = sizes.Length, a = n - 1;
        int A = sizes[a], sa = strides[a], K = sizes[k];
        var dStrides = new int[n];
        for (int d = n - 1, acc = 1; d >= 0; d--) { dStrides[d] = acc; acc *= sizes[d]; }
        int dk = dStrides[k];
        var outer = Enumerable.Range(0, n).Where(d => d != k && d != a).ToArray();
        int outerCount = 1;
        foreach (var d in outer) outerCount *= sizes[d];
        int bands = (K + Tile - 1) / Tile;

        Par.For(outerCount * bands, Par.Grain((long)Tile * A, 32768), (w0, w1) =>
        {
            for (int w = w0; w < w1; w++)
            {
                int o = w / bands, band = w % bands;
                int dBase = 0, sBase = off, rem = o;
                for (int i = outer.Length - 1; i >= 0; i--)
                {
                    int d = outer[i], c = rem % sizes[d]; rem /= sizes[d];
                    dBase += c * dStrides[d]; sBase += c * strides[d];
                }
                int k0 = band * Tile, k1 = Math.Min(K, k0 + Tile);
                // Bounds were settled when the view was built; index through refs to skip per-element checks.
                ref T d0 = ref MemoryMarshal.GetArrayDataReference(D);
                ref T s0 = ref MemoryMarshal.GetArrayDataReference(S);
                for (int a0 = 0; a0 < A; a0 += Tile)
                {
                    int a1 = Math.Min(A, a0 + Tile);
                    for (int i = k0; i < k1; i++)
                    {
                        ref T dRow = ref Unsafe.Add(ref d0, dBase + i * dk);
                        ref T sRow = ref Unsafe.Add(ref s0, sBase + i);
                        if (gather) for (int j = a0; j < a1; j++) Unsafe.Add(ref dRow, j) = Unsafe.Add(ref sRow, j * sa);
                        else for (int j = a0; j < a1; j++) Unsafe.Add(ref sRow, j * sa) = Unsafe.Add(ref dRow, j);
                    }
                }
            }
        });
    }
}

public static partial class torch
{
    public partial class Tensor
    {
        // =====================================================================================
        // Reading and writing strided views, as differentiable ops. y = x[view] copies the viewed
        // elements out; its adjoint puts g back at those positions in a zero tensor of x's shape.
        // The two are each other's backward, so any depth of derivative works.
        // =====================================================================================

        /// <summary>y = x[view].   ∂L/∂x = g placed at the viewed positions, zero elsewhere (a view never
        /// names the same element twice, so nothing needs summing).</summary>
        internal static Tensor GatherView(Tensor x, View v, string name)
        {
            var y = Empty(v.Sizes, x._dtype);
            Strided.Copy(y, x, v, gather: true);
            var inShape = x._shape;
            return Autograd.Record(y, name, x, g => ScatterView(g, inShape, v, name + "_backward"));
        }

        /// <summary>z = zeros(shape) with z[view] = g.   ∂L/∂g = (∂L/∂z)[view].</summary>
        internal static Tensor ScatterView(Tensor g, long[] shape, View v, string name)
        {
            var z = Zeros(shape, g._dtype);
            Strided.Copy(g, z, v, gather: false);
            return Autograd.Record(z, name, g, gg => GatherView(gg, v, name.Replace("_backward", "")));
        }

        // =====================================================================================
        // transpose, permute. The result is a copy (MinTorch tensors are contiguous): y's dim i is x's
        // dim perm[i], so y is the view of x with sizes and strides permuted.
        // =====================================================================================

        /// <summary>Swaps dims <paramref name="dim0"/> and <paramref name="dim1"/> (a copy).
        /// Backward: transpose g back (swapping the same two dims again).</summary>
        public Tensor transpose(long dim0, long dim1)
        {
            int d0 = Shapes.Dim(dim0, Rank, "transpose"), d1 = Shapes.Dim(dim1, Rank, "transpose");
            var perm = Enumerable.Range(0, Rank).ToArray();
            if (Rank > 0) (perm[d0], perm[d1]) = (perm[d1], perm[d0]);
            return Permuted(perm, "transpose", g => g.transpose(d0, d1));
        }

        /// <summary>Reorders the dims: result dim i is input dim <paramref name="permutation"/>[i] (a copy).
        /// Backward: permute g by the inverse permutation.</summary>
        public Tensor permute(params long[] permutation)
        {
            if (permutation.Length != Rank)
                throw new ArgumentException($"permute: the permutation [{string.Join(", ", permutation)}] has {permutation.Length} dims but the tensor has {Rank} (shape {ShapeString})");
            var perm = permutation.Select(p => Shapes.Dim(p, Rank, "permute")).ToArray();
            if (perm.Distinct().Count() != perm.Length)
                throw new ArgumentException($"permute: a dimension appears more than once in [{string.Join(", ", permutation)}]");
            var inverse = new long[Rank];
            for (int i = 0; i < Rank; i++) inverse[perm[i]] = i;
            return Permuted(perm, "permute", g => g.permute(inverse));
        }

        private Tensor Permuted(int[] perm, string name, Func<Tensor, Tensor> backward)
        {
            var strides = Shapes.Strides(_shape);
            var view = new View(0, perm.Select(p => _shape[p]).ToArray(), perm.Select(p => strides[p]).ToArray());
            var y = Empty(view.Sizes, _dtype);
            Strided.Copy(y, this, view, gather: true);
            return Autograd.Record(y, name, this, backward);
        }

        /// <summary>The transpose of a matrix: dims 0 and 1 swapped. A 0-D or 1-D tensor comes back as it is
        /// (sharing storage, as PyTorch's view does).</summary>
        public Tensor t()
        {
            if (Rank > 2)
                throw new ArgumentException($"t: expects a tensor with at most 2 dimensions, but got shape {ShapeString}; use transpose(dim0, dim1)");
            return Rank < 2 ? reshape(_shape) : transpose(0, 1);
        }

        /// <summary>The last two dims swapped (a batch of matrices transposed).</summary>
        public Tensor mT => Rank >= 2 ? transpose(-2, -1)
            : throw new InvalidOperationException($"mT: expects a matrix or a batch of matrices, but got shape {ShapeString}");

        // =====================================================================================
        // narrow, chunk, split: slices along one dim.
        // =====================================================================================

        /// <summary>Elements <paramref name="start"/> .. <paramref name="start"/> + <paramref name="length"/> − 1 of
        /// dim <paramref name="dim"/> (a copy; <paramref name="start"/> may be negative, counting from the end).
        /// Backward: a zero tensor of the input's shape with g placed in that slice.</summary>
        public Tensor narrow(long dim, long start, long length)
        {
            if (Rank == 0) throw new ArgumentException("narrow: cannot narrow a 0-dimensional tensor");
            int d = Shapes.Dim(dim, Rank, "narrow");
            long n = _shape[d];
            long s = start < 0 ? start + n : start;
            if (s < 0 || s > n)
                throw new ArgumentOutOfRangeException(nameof(start), $"narrow: start {start} is out of range for dimension {d} of size {n} (shape {ShapeString})");
            if (length < 0 || s + length > n)
                throw new ArgumentOutOfRangeException(nameof(length), $"narrow: start ({s}) + length ({length}) exceeds the size ({n}) of dimension {d} (shape {ShapeString})");
            return GatherView(this, SliceView(_shape, d, s, length), "narrow");
        }

        /// <summary>The view of elements [start, start + length) of dim d of a contiguous tensor of this shape.</summary>
        internal static View SliceView(long[] shape, int d, long start, long length)
        {
            var strides = Shapes.Strides(shape);
            var sizes = (long[])shape.Clone(); sizes[d] = length;
            return new View(start * strides[d], sizes, strides);
        }

        /// <summary>Splits dim <paramref name="dim"/> into <paramref name="chunks"/> pieces of ⌈n / chunks⌉ elements
        /// (the last one smaller; fewer pieces when n is small), each a copy.</summary>
        public Tensor[] chunk(long chunks, long dim = 0)
        {
            if (chunks <= 0) throw new ArgumentException($"chunk: chunks must be greater than 0, got {chunks}");
            if (Rank == 0) throw new ArgumentException("chunk: cannot chunk a 0-dimensional tensor");
            int d = Shapes.Dim(dim, Rank, "chunk");
            long n = _shape[d];
            if (n == 0) return Enumerable.Range(0, (int)chunks).Select(_ => narrow(d, 0, 0)).ToArray();
            return split((n + chunks - 1) / chunks, d);
        }

        /// <summary>Splits dim <paramref name="dim"/> into pieces of <paramref name="size"/> elements (the last one
        /// smaller), each a copy. (TorchSharp declares <paramref name="dim"/> as int here.)</summary>
        public Tensor[] split(long size, int dim = 0)
        {
            if (Rank == 0) throw new ArgumentException("split: cannot split a 0-dimensional tensor");
            int d = Shapes.Dim(dim, Rank, "split");
            long n = _shape[d];
            if (size <= 0 && n > 0) throw new ArgumentException($"split: split size must be positive, got {size}");
            if (n == 0) return [narrow(d, 0, 0)];
            var pieces = new List<Tensor>();
            for (long s = 0; s < n; s += size) pieces.Add(narrow(d, s, Math.Min(size, n - s)));
            return pieces.ToArray();
        }

        /// <summary>Splits dim <paramref name="dim"/> into pieces of the given sizes, which must add up to its size.</summary>
        public Tensor[] split(long[] sizes, long dim = 0)
        {
            if (Rank == 0) throw new ArgumentException("split: cannot split a 0-dimensional tensor");
            int d = Shapes.Dim(dim, Rank, "split");
            if (sizes.Any(s => s < 0) || sizes.Sum() != _shape[d])
                throw new ArgumentException($"split: the sizes [{string.Join(", ", sizes)}] must be non-negative and add up to {_shape[d]}, the size of dimension {d} (shape {ShapeString})");
            var pieces = new Tensor[sizes.Length];
            long start = 0;
            for (int i = 0; i < sizes.Length; i++) { pieces[i] = narrow(d, start, sizes[i]); start += sizes[i]; }
            return pieces;
        }

        /// <summary>Splits dim 0 into pieces of the given sizes.</summary>
        public Tensor[] split(params long[] sizes) => split(sizes, 0L);

        // =====================================================================================
        // repeat, flip, tril, triu.
        // =====================================================================================

        /// <summary>Tiles the tensor <paramref name="sizes"/>[i] times along dim i (leading dims are added when
        /// more sizes than dims are given). Written as a composite: view x as (1, n₀, 1, n₁, …), expand to
        /// (r₀, n₀, r₁, n₁, …) and flatten the pairs, so the gradient (summing over the copies) comes
        /// from expand's backward.</summary>
        public Tensor repeat(params long[] sizes)
        {
            if (sizes.Length < Rank)
                throw new ArgumentException($"repeat: the number of repeat sizes ({sizes.Length}) cannot be smaller than the number of dimensions ({Rank}, shape {ShapeString})");
            if (sizes.Any(r => r < 0)) throw new ArgumentException($"repeat: repeat sizes must be non-negative, got [{string.Join(", ", sizes)}]");
            int m = sizes.Length;
            var own = new long[m];
            for (int i = 0; i < m; i++) own[i] = i < m - Rank ? 1 : _shape[i - (m - Rank)];
            var pairs = new long[2 * m]; var expanded = new long[2 * m]; var final = new long[m];
            for (int i = 0; i < m; i++)
            {
                pairs[2 * i] = 1; pairs[2 * i + 1] = own[i];
                expanded[2 * i] = sizes[i]; expanded[2 * i + 1] = own[i];
                final[i] = sizes[i] * own[i];
            }
            var y = reshape(pairs).expand(expanded).reshape(final);
            return sizes.All(r => r == 1) ? y.clone() : y;
        }

        /// <summary>Reverses the order of the elements along each of <paramref name="dims"/> (a copy): the view
        /// starts at the last element of those dims and walks them with negated strides.
        /// Backward: flip g along the same dims.</summary>
        public Tensor flip(params long[] dims)
        {
            var ds = dims.Select(d => Shapes.Dim(d, Rank, "flip")).ToArray();
            if (ds.Distinct().Count() != ds.Length)
                throw new ArgumentException($"flip: a dimension appears more than once in [{string.Join(", ", dims)}]");
            var strides = Shapes.Strides(_shape);
            long offset = 0;
            foreach (var d in ds) { if (_shape[d] > 0) offset += (_shape[d] - 1) * strides[d]; strides[d] = -strides[d]; }
            var view = new View(offset, (long[])_shape.Clone(), strides);
            var y = Empty(_shape, _dtype);
            Strided.Copy(y, this, view, gather: true);
            return Autograd.Record(y, "flip", this, g => g.flip(dims));
        }

        /// <summary>The lower triangle of each matrix (the last two dims): element (i, j) is kept when
        /// j − i ≤ <paramref name="diagonal"/>, zeroed otherwise. Backward: the same mask applied to g.</summary>
        public Tensor tril(long diagonal = 0) => Triangle(diagonal, lower: true, "tril");

        /// <summary>The upper triangle of each matrix: element (i, j) is kept when j − i ≥ <paramref name="diagonal"/>.
        /// Backward: the same mask applied to g.</summary>
        public Tensor triu(long diagonal = 0) => Triangle(diagonal, lower: false, "triu");

        private Tensor Triangle(long diagonal, bool lower, string name)
        {
            if (Rank < 2) throw new ArgumentException($"{name}: expects a matrix or a batch of matrices (at least 2 dimensions), but got shape {ShapeString}");
            var y = Zeros(_shape, _dtype);
            int rows = (int)_shape[^2], cols = (int)_shape[^1];
            int count = rows == 0 || cols == 0 ? 0 : _numel / cols;
            // Row r of the flattened (…, rows, cols) tensor is row i = r mod rows of its matrix; it keeps
            // columns [0, i + k] (tril) or [i + k, cols) (triu).
            Par.For(count, Par.Grain(cols, 32768), (r0, r1) =>
            {
                for (int r = r0; r < r1; r++)
                {
                    long i = r % rows;
                    int from = lower ? 0 : (int)Math.Clamp(i + diagonal, 0, cols);
                    int to = lower ? (int)Math.Clamp(i + diagonal + 1, 0, cols) : cols;
                    if (to > from) Array.Copy(_storage, (long)r * cols + from, y._storage, (long)r * cols + from, to - from);
                }
            });
            return Autograd.Record(y, name, this, g => lower ? g.tril(diagonal) : g.triu(diagonal));
        }
    }

    // =====================================================================================
    // cat and stack.
    // =====================================================================================

    /// <summary>Concatenates <paramref name="tensors"/> along <paramref name="dim"/>. All must have the same shape
    /// except in that dim; dtypes are promoted to a common one. As in TorchSharp, a list of one tensor
    /// returns that tensor itself. Backward: each input gets its slice of g (a narrow).</summary>
    public static Tensor cat(IList<Tensor> tensors, long dim = 0)
    {
        switch (tensors.Count)
        {
            case 0: throw new ArgumentException("cat: expected a non-empty list of tensors");
            case 1: return tensors[0];
        }
        var first = tensors[0];
        if (first.Rank == 0) throw new ArgumentException("cat: zero-dimensional tensors cannot be concatenated (tensor 0 has shape [])");
        int d = Shapes.Dim(dim, first.Rank, "cat");
        var type = first._dtype;
        for (int i = 1; i < tensors.Count; i++)
        {
            var t = tensors[i];
            bool match = t.Rank == first.Rank;
            for (int a = 0; match && a < t.Rank; a++) match = a == d || t._shape[a] == first._shape[a];
            if (!match)
                throw new ArgumentException($"cat: the shapes must match except in dimension {d}, but tensor 0 has shape {first.ShapeString} and tensor {i} has shape {t.ShapeString}");
            type = PromoteTypes(type, t._dtype);
        }
        var inputs = tensors.Select(t => t.to_type(type)).ToArray();
        var outShape = (long[])first._shape.Clone();
        outShape[d] = inputs.Sum(t => t._shape[d]);
        var y = Tensor.Empty(outShape, type);
        var backward = new Func<Tensor, Tensor>?[inputs.Length];
        long offset = 0;
        for (int i = 0; i < inputs.Length; i++)
        {
            long start = offset, length = inputs[i]._shape[d];
            Strided.Copy(inputs[i], y, Tensor.SliceView(outShape, d, start, length), gather: false);
            backward[i] = g => g.narrow(d, start, length);
            offset += length;
        }
        return Autograd.Record(y, "cat", inputs, backward);
    }

    /// <summary>The wider of two dtypes (bool &lt; int64 &lt; float32 &lt; float64), as PyTorch promotes tensors of equal rank.</summary>
    internal static ScalarType PromoteTypes(ScalarType a, ScalarType b)
    {
        static int Order(ScalarType t) => t switch { ScalarType.Bool => 0, ScalarType.Int64 => 1, ScalarType.Float32 => 2, _ => 3 };
        return Order(a) >= Order(b) ? a : b;
    }

    /// <summary>The same as <see cref="cat"/>.</summary>
    public static Tensor concat(IList<Tensor> tensors, long dim = 0) => cat(tensors, dim);

    /// <summary>Stacks equal-shaped tensors along a new dim <paramref name="dim"/>: unsqueeze each, then cat.</summary>
    public static Tensor stack(IEnumerable<Tensor> tensors, long dim = 0)
    {
        var list = tensors.ToList();
        if (list.Count == 0) throw new ArgumentException("stack: expected a non-empty list of tensors");
        for (int i = 1; i < list.Count; i++)
            if (!Shapes.Equal(list[i]._shape, list[0]._shape))
                throw new ArgumentException($"stack: expects each tensor to be equal size, but got {list[0].ShapeString} at entry 0 and {list[i].ShapeString} at entry {i}");
        int d = Shapes.Dim(dim, list[0].Rank + 1, "stack");
        if (list.Count == 1) return list[0].unsqueeze(d).clone();
        return cat(list.Select(t => t.unsqueeze(d)).ToList(), d);
    }

    public static Tensor transpose(Tensor input, long dim0, long dim1) => input.transpose(dim0, dim1);
    public static Tensor t(Tensor input) => input.t();
    public static Tensor permute(Tensor input, params long[] permutation) => input.permute(permutation);
    public static Tensor narrow(Tensor input, long dim, long start, long length) => input.narrow(dim, start, length);
    public static Tensor[] chunk(Tensor input, long chunks, long dim = 0) => input.chunk(chunks, dim);
    public static Tensor[] split(Tensor tensor, long[] split_size_or_sections, long dim = 0L) => tensor.split(split_size_or_sections, dim);
    public static Tensor flip(Tensor input, params long[] dims) => input.flip(dims);
    public static Tensor tril(Tensor input, long diagonal = 0) => input.tril(diagonal);
    public static Tensor triu(Tensor input, long diagonal = 0) => input.triu(diagonal);
}
