using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace TorchSharp;

/// <summary>
/// General matrix multiplication, C[M×N] (= or +=) op(A)[M×K] · op(B)[K×N], for float and double,
/// where op(X) is X or Xᵀ. All matrices are row-major with a leading dimension (the distance between
/// rows), so a transposed operand is read in place: matmul's backward (G·Bᵀ and Aᵀ·G) needs no copies.
/// </summary>
/// <remarks>
/// <para>The algorithm is the one behind GotoBLAS, OpenBLAS and BLIS. A naive triple loop spends its
/// time waiting for memory; this one keeps the multiply-add units busy by bringing each number into
/// fast memory once and using it many times there:</para>
/// <code>
/// for each slab of B's columns (NC) and of K (KO), and each chunk of A's rows (MChunk):
///   in parallel, for each tile of C (about MC rows × NT columns; one thread per tile):
///     for each slice of K (KC), in order:
///       pack A[tile rows, slice] into MR-row panels     (if no other tile has done it yet)
///       pack B[slice, tile columns] into NR-wide panels (likewise)
///       for each MR-row panel of A                      (stays in L1)
///         for each NR-column panel of B                 (streams from L2)
///           micro-kernel: C[MR × NR] += A panel · B panel, in registers
/// </code>
/// <para>The micro-kernel keeps an MR×NR block of C in vector registers: 12 rows × 2 zmm registers
/// (12 × 32 floats, 24 of the 32 registers) with AVX-512, 6 rows × 2 <see cref="Vector{T}"/>s
/// elsewhere. Each step of its loop loads one row of the B panel (NR numbers), broadcasts the MR
/// numbers of one column of the A panel and does MR·NR multiply-adds: 384 of them (float, AVX-512)
/// for 44 numbers read.</para>
/// <para>Packing copies a block into exactly the order the kernel reads it, padded with zeros to
/// whole panels, so the kernel has no edge cases: a block at the edge of C is computed in full into a
/// small buffer and only its valid part is written. When A has few rows, B is not worth packing and
/// the kernel reads its rows in place. One row or one column (a matrix times a vector) is memory-bound
/// and done with dot products instead.</para>
/// <para>Determinism: every element of C is computed by one thread, with the same operations in the
/// same order (K in KC slices, each slice in k order) whatever the number of threads or the way C is
/// cut into tiles, so the result is bit-identical for any <c>torch.set_num_threads</c>.</para>
/// </remarks>
internal static unsafe class Gemm
{
    // Blocking, tuned on an AMD EPYC (Zen 4: 32 KB L1d and 1 MB L2 per core, 32 MB shared L3).
    internal const int KC = 256;     // slice of K: an A panel (12 × 256 floats, 12 KB) stays in L1
    internal const int MC = 96;      // rows of a tile (before splitting for threads): a multiple of every MR
    internal const int NT = 256;     // columns of a tile: its B block for a slice (256 × 256 floats) stays in L2
    internal const int NC = 2048;    // columns of B packed at once
    internal const int KO = 4 * KC;  // depth of K packed at once: a whole number of slices
    internal const int MChunk = 1024;  // rows of A packed at once (bounds the packing buffer)
    internal const int TilesPerThread = 3; // tiles per thread, at least, for load balance
    /// <summary>Up to this many rows of A, B (when not transposed) is read in place instead of packed.</summary>
    internal const int DirectBRows = 512;
    /// <summary>Up to this many multiply-adds, A (when not transposed) is read in place instead of packed,
    /// unless its rows are a multiple of 4 KB apart (they would all compete for one set of the L1 cache).</summary>
    internal const long DirectAWork = 1L << 25;
    /// <summary>Multiply-adds below which a product runs on one thread (a batch of them is spread over the threads).</summary>
    internal const long SmallWork = 96 * 96 * 96;

    // ------------------------------------------------------------------ entry points

    /// <summary>C[M×N] (= or +=) op(A) · op(B) for one matrix; offsets are where each matrix starts in its array.</summary>
    public static void Run<T>(int M, int N, int K,
        T[] A, int aOff, int lda, bool transA,
        T[] B, int bOff, int ldb, bool transB,
        T[] C, int cOff, int ldc, bool accumulate) where T : unmanaged
        => Batched(1, M, N, K, A, aOff, 0, lda, transA, B, bOff, 0, ldb, transB, C, cOff, 0, ldc, accumulate);

    /// <summary>
    /// <paramref name="batch"/> independent products: matrix b of A starts at aOff + b·strideA, and so on.
    /// A stride of 0 broadcasts that operand (the same matrix for every batch item); C's must not be 0.
    /// </summary>
    public static void Batched<T>(int batch, int M, int N, int K,
        T[] A, int aOff, long strideA, int lda, bool transA,
        T[] B, int bOff, long strideB, int ldb, bool transB,
        T[] C, int cOff, long strideC, int ldc, bool accumulate) where T : unmanaged
    {
        if (typeof(T) != typeof(float) && typeof(T) != typeof(double))
            throw new NotSupportedException($"gemm: only float and double are supported, not {typeof(T).Name}");
        if (batch <= 0 || M <= 0 || N <= 0) return;
        if (batch > 1 && strideC == 0) throw new ArgumentException("internal: gemm: C's batch stride must not be 0");
        fixed (T* pa = A, pb = B, pc = C)
        {
            nint a0 = (nint)(pa + aOff), b0 = (nint)(pb + bOff), c0 = (nint)(pc + cOff);
            long work = (long)M * N * Math.Max(K, 1);
            if (work <= SmallWork || batch >= 2 * Par.MaxThreads)
            {
                // Small matrices, or many of them: one thread per matrix, the batch spread over the threads.
                Par.For(batch, Par.Grain(work, 1 << 17), (s, e) =>
                {
                    for (int b = s; b < e; b++)
                        Single((T*)a0 + b * strideA, lda, transA, (T*)b0 + b * strideB, ldb, transB,
                               (T*)c0 + b * strideC, ldc, M, N, K, accumulate, parallel: false);
                });
            }
            else
            {
                // Large matrices: one after the other, each cut into tiles for the threads.
                for (int b = 0; b < batch; b++)
                    Single((T*)a0 + b * strideA, lda, transA, (T*)b0 + b * strideB, ldb, transB,
                           (T*)c0 + b * strideC, ldc, M, N, K, accumulate, parallel: true);
            }
        }
    }

    // ------------------------------------------------------------------ the blocked algorithm

    /// <summary>Rows of the micro-kernel's C block.</summary>
    private static int MR => Vector512.IsHardwareAccelerated ? 12 : 6;
    /// <summary>Columns of the micro-kernel's C block: two vectors.</summary>
    private static int NR<T>() where T : unmanaged => Vector512.IsHardwareAccelerated ? 2 * Vector512<T>.Count : 2 * Vector<T>.Count;

    /// <summary>One product, on the calling thread or (<paramref name="parallel"/>) on all threads.</summary>
    private static void Single<T>(T* A, nint lda, bool transA, T* B, nint ldb, bool transB, T* C, nint ldc,
        int M, int N, int K, bool accumulate, bool parallel) where T : unmanaged
    {
        if (K == 0)
        {
            if (!accumulate) for (int i = 0; i < M; i++) new Span<T>(C + i * ldc, N).Clear();
            return;
        }
        if (N == 1 || M == 1)
        {
            Gemv(A, lda, transA, B, ldb, transB, C, ldc, M, N, K, accumulate, parallel);
            return;
        }
        int mr = MR, nr = NR<T>();
        int kSlab = Math.Min(K, KO), mChunk = Math.Min(M, MChunk), nSlab = Math.Min(N, NC);
        var aBuf = ArrayPool<T>.Shared.Rent(RoundUp(mChunk, mr) * kSlab);
        var bBuf = ArrayPool<T>.Shared.Rent(RoundUp(nSlab, nr) * kSlab);
        try
        {
            fixed (T* Ap = aBuf, Bp = bBuf)
            {
                var job = new Job<T>
                {
                    A = A, lda = lda, transA = transA, B = B, ldb = ldb, transB = transB, C = C, ldc = ldc,
                    M = M, Ap = Ap, Bp = Bp, mr = mr, nr = nr,
                    directA = !transA && lda * sizeof(T) % 4096 != 0 && (long)M * N * K <= DirectAWork,
                    directB = !transB && M <= DirectBRows,
                };
                // Enough tiles to keep every thread busy (how C is cut into tiles does not change the result).
                int target = parallel ? TilesPerThread * Par.MaxThreads : 1;
                for (int jc = 0; jc < N; jc += NC)
                {
                    job.j0 = jc; job.nc = Math.Min(NC, N - jc);
                    job.nTiles = TileCounts(mChunk, job.nc, mr, nr, target).n;
                    for (int pc = 0; pc < K; pc += KO)
                    {
                        job.p0 = pc; job.kc = Math.Min(KO, K - pc);
                        job.slices = (job.kc + KC - 1) / KC;
                        job.accumulate = accumulate || pc > 0;
                        job.bPacked = new int[job.nTiles * job.slices];
                        for (int ic = 0; ic < M; ic += MChunk)
                        {
                            job.i0 = ic; job.mc = Math.Min(MChunk, M - ic);
                            job.mTiles = TileCounts(job.mc, job.nc, mr, nr, target, job.nTiles).m;
                            job.aPacked = new int[job.mTiles * job.slices];
                            int tiles = job.mTiles * job.nTiles;
                            if (parallel && tiles > 1) Par.For(tiles, 1, job.Run);
                            else job.Run(0, tiles);
                        }
                    }
                }
            }
        }
        finally
        {
            ArrayPool<T>.Shared.Return(aBuf);
            ArrayPool<T>.Shared.Return(bBuf);
        }
    }

    private static int RoundUp(int x, int m) => (x + m - 1) / m * m;

    // ------------------------------------------------------------------ matrix × vector

    /// <summary>
    /// A product with one row or one column (a value head, a matrix times a vector): memory-bound, so
    /// it is computed as dot products of contiguous rows or as row updates y += s·x, not by the
    /// micro-kernel (which would compute 32 columns to keep one).
    /// </summary>
    private static void Gemv<T>(T* A, nint lda, bool transA, T* B, nint ldb, bool transB, T* C, nint ldc,
        int M, int N, int K, bool accumulate, bool parallel) where T : unmanaged
    {
        // Orient it as y[n] (+)= Σ_k x[k]·Mat(n, k), the vector x and the matrix Mat being A or B.
        // Mat(n, k) is either at mat[n·ld + k] (rows: a dot product per output) or at mat[k·ld + n]
        // (columns: y accumulates one row of the matrix per k).
        bool yIsColumn = N == 1;
        int n = yIsColumn ? M : N;
        nint yStride = yIsColumn ? ldc : 1;
        T* x; nint xStride; T* mat; nint ld; bool dots;
        if (yIsColumn) { x = B; xStride = transB ? 1 : ldb; mat = A; ld = lda; dots = !transA; }
        else { x = A; xStride = transA ? lda : 1; mat = B; ld = ldb; dots = transB; }

        T[]? xCopy = null, yTmp = null;
        try
        {
            if (xStride != 1)
            {
                xCopy = ArrayPool<T>.Shared.Rent(K);
                for (int k = 0; k < K; k++) xCopy[k] = x[k * xStride];
            }
            if (!dots && yStride != 1) yTmp = ArrayPool<T>.Shared.Rent(n);
            fixed (T* xc = xCopy, yt = yTmp)
            {
                nint xv = (nint)(xCopy is null ? x : xc), m = (nint)mat, y = (nint)C, yb = (nint)yt;
                int grain = Par.Grain(K, 32768);
                Loop(parallel, n, dots ? grain : Math.Max(grain, 256), (s, e) =>
                {
                    if (dots)
                    {
                        for (int i = s; i < e; i++)
                        {
                            T* yi = (T*)y + i * yStride;
                            T d = Dot((T*)m + i * ld, (T*)xv, K);
                            *yi = accumulate ? Add(*yi, d) : d;
                        }
                        return;
                    }
                    // y[s..e] = (y or 0) + Σ_k x[k]·Mat[k, s..e], in k order.
                    T* acc = yb != 0 ? (T*)yb + s : (T*)y + s;
                    int len = e - s;
                    if (yb != 0 && accumulate) for (int i = 0; i < len; i++) acc[i] = ((T*)y)[(s + i) * yStride];
                    else if (!accumulate) new Span<T>(acc, len).Clear();
                    for (int k = 0; k < K; k++) Axpy(((T*)xv)[k], (T*)m + k * ld + s, acc, len);
                    if (yb != 0) for (int i = 0; i < len; i++) ((T*)y)[(s + i) * yStride] = acc[i];
                });
            }
        }
        finally
        {
            if (xCopy is not null) ArrayPool<T>.Shared.Return(xCopy);
            if (yTmp is not null) ArrayPool<T>.Shared.Return(yTmp);
        }
    }

    private static void Loop(bool parallel, int count, int grain, Action<int, int> body)
    {
        if (parallel) Par.For(count, grain, body);
        else if (count > 0) body(0, count);
    }

    /// <summary>x · y over n numbers.</summary>
    private static T Dot<T>(T* x, T* y, int n) where T : unmanaged
    {
        if (typeof(T) == typeof(float))
        {
            float d = TensorPrimitives.Dot(new ReadOnlySpan<float>(x, n), new ReadOnlySpan<float>(y, n));
            return Unsafe.As<float, T>(ref d);
        }
        double dd = TensorPrimitives.Dot(new ReadOnlySpan<double>(x, n), new ReadOnlySpan<double>(y, n));
        return Unsafe.As<double, T>(ref dd);
    }

    /// <summary>y[0..n) += s·x[0..n).</summary>
    private static void Axpy<T>(T s, T* x, T* y, int n) where T : unmanaged
    {
        if (typeof(T) == typeof(float))
        {
            var ys = new Span<float>(y, n);
            TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(x, n), Unsafe.As<T, float>(ref s), ys, ys);
        }
        else
        {
            var ys = new Span<double>(y, n);
            TensorPrimitives.MultiplyAdd(new ReadOnlySpan<double>(x, n), Unsafe.As<T, double>(ref s), ys, ys);
        }
    }

    // ------------------------------------------------------------------ tiles

    /// <summary>
    /// How many tiles to cut an mc × nc block of C into: tiles of about MC × NT (cache-sized), split
    /// further — along whichever side is longer — until there are at least <paramref name="target"/>.
    /// </summary>
    private static (int m, int n) TileCounts(int mc, int nc, int mr, int nr, int target, int fixedN = 0)
    {
        int mPanels = (mc + mr - 1) / mr, nPanels = (nc + nr - 1) / nr;
        int m = Math.Min(mPanels, (mc + MC - 1) / MC);
        int n = fixedN > 0 ? fixedN : Math.Min(nPanels, (nc + NT - 1) / NT);
        while (m * n < target)
        {
            bool canM = m < mPanels, canN = fixedN == 0 && n < nPanels;
            if (!canM && !canN) break;
            if (canM && (!canN || (double)mc / m >= (double)nc / n)) m++; else n++;
        }
        return (m, n);
    }

    /// <summary>Start of part <paramref name="t"/> of <paramref name="parts"/> when <paramref name="panels"/> panels of
    /// <paramref name="size"/> are shared out as evenly as possible.</summary>
    private static int PartStart(int t, int parts, int panels, int size) => (int)((long)t * panels / parts) * size;

    /// <summary>
    /// One parallel step: the tiles of C[i0.., j0..] over K[p0 .. p0+kc]. Each tile is owned by one task;
    /// the packed blocks of A and B it needs are packed by whichever task needs them first (the others
    /// wait for it), so packing is spread over the threads without a separate parallel loop.
    /// </summary>
    private sealed class Job<T> where T : unmanaged
    {
        public T* A, B, C, Ap, Bp;
        public nint lda, ldb, ldc;
        public bool transA, transB, accumulate, directA, directB;
        public int M, mr, nr;
        public int i0, mc, j0, nc, p0, kc;     // this step's block of C and slice of K
        public int mTiles, nTiles, slices;
        public int[] aPacked = [], bPacked = []; // per (tile, KC slice): 0 to do, 1 being packed, 2 done

        public void Run(int start, int end)
        {
            for (int t = start; t < end; t++)
            {
                // Tile order: the first mTiles tasks take different rows and columns of tiles, so
                // threads starting together pack different blocks instead of waiting for each other.
                int ti = t % mTiles, tj = (t / mTiles + ti) % nTiles;
                // The tile, relative to (i0, j0): whole panels, shared out evenly.
                int mPanels = (mc + mr - 1) / mr, nPanels = (nc + nr - 1) / nr;
                int ri = PartStart(ti, mTiles, mPanels, mr), rows = Math.Min(mc, PartStart(ti + 1, mTiles, mPanels, mr)) - ri;
                int cj = PartStart(tj, nTiles, nPanels, nr), cols = Math.Min(nc, PartStart(tj + 1, nTiles, nPanels, nr)) - cj;
                for (int s = 0; s < slices; s++)
                {
                    int ks = s * KC, kcs = Math.Min(KC, kc - ks);
                    // Packed A of this step: [slice][row panel][kcs × mr]; packed B: [slice][column panel][kcs × nr].
                    T* a = Ap + (long)ks * RoundUp(mc, mr) + (long)ri * kcs;
                    T* b = Bp + (long)ks * RoundUp(nc, nr) + (long)cj * kcs;
                    ref int aState = ref aPacked[ti * slices + s], bState = ref bPacked[tj * slices + s];
                    if (Claim(ref aState)) { PackAPanels(i0 + ri, rows, p0 + ks, kcs, a); Volatile.Write(ref aState, 2); }
                    if (Claim(ref bState)) { PackBPanels(j0 + cj, cols, p0 + ks, kcs, b); Volatile.Write(ref bState, 2); }
                    T* ad = directA ? A + (i0 + ri) * lda + p0 + ks : null;
                    T* bd = directB ? B + (p0 + ks) * ldb + j0 + cj : null;
                    Tile(a, ad, lda, b, bd, ldb, C + (long)(i0 + ri) * ldc + j0 + cj, ldc, rows, cols, kcs, accumulate || s > 0);
                }
            }
        }

        /// <summary>Packs op(A)[i.., p..] (rows × k) as MR-tall panels: for each k, MR numbers (one per row).</summary>
        private void PackAPanels(int i, int rows, int p, int k, T* dst)
        {
            // Read in place, whole panels need no packing: only a partial last one.
            int r0 = directA ? rows / mr * mr : 0;
            dst += r0 * k;
            for (int r = r0; r < rows; r += mr, dst += mr * k)
            {
                int h = Math.Min(mr, rows - r);
                if (transA) PackRows(A + p * lda + i + r, lda, k, h, mr, dst);   // op(A)[i, p] = A[p, i]
                else PackColumns(A + (i + r) * lda + p, lda, k, h, mr, dst);
            }
        }

        /// <summary>Packs op(B)[p.., j..] (k × cols) as NR-wide panels: for each k, NR numbers (one per column).</summary>
        private void PackBPanels(int j, int cols, int p, int k, T* dst)
        {
            if (transB)
            {
                for (int q = 0; q < cols; q += nr, dst += nr * k)                 // op(B)[p, j] = B[j, p]
                    PackColumns(B + (j + q) * ldb + p, ldb, k, Math.Min(nr, cols - q), nr, dst);
                return;
            }
            T* src = B + p * ldb + j;
            int full = cols / nr;
            if (directB)
            {
                // The kernel reads whole panels (and a last one of exactly NR/2) straight from B; only
                // another partial last panel is packed, zero-padded.
                int rest = cols - full * nr;
                if (rest > 0 && rest != nr / 2) PackRows(src + full * nr, ldb, k, rest, nr, dst + full * nr * k);
                return;
            }
            // Row by row across all the panels, so B is read in order.
            for (int kk = 0; kk < k; kk++, src += ldb)
            {
                T* d = dst + kk * nr;
                for (int q = 0; q < full; q++, d += nr * k) Copy(src + q * nr, d, nr);
                if (full * nr < cols) PackRows(src + full * nr, ldb, 1, cols - full * nr, nr, d);
            }
        }

        /// <summary>True if the caller should pack this block (and then set the state to 2); otherwise
        /// waits until whoever claimed it has finished.</summary>
        private static bool Claim(ref int state)
        {
            if (Volatile.Read(ref state) == 2) return false;
            if (Interlocked.CompareExchange(ref state, 1, 0) == 0) return true;
            var spin = new SpinWait();
            while (Volatile.Read(ref state) != 2) spin.SpinOnce(sleep1Threshold: -1);
            return false;
        }
    }

    /// <summary>C[rows × cols] (+)= A · B over one slice of K, one MR × NR block at a time. A panels come from Ap (packed)
    /// or, when Ad is given, straight from A; B panels likewise from Bp or Bd. rows and cols need not be whole panels.</summary>
    [SkipLocalsInit]
    private static void Tile<T>(T* Ap, T* Ad, nint lda, T* Bp, T* Bd, nint ldb, T* C, nint ldc, int rows, int cols, int kc, bool acc) where T : unmanaged
    {
        int mr = MR, nr = NR<T>();
        T* tmp = stackalloc T[mr * nr];
        for (int i = 0; i < rows; i += mr)
        {
            int h = Math.Min(mr, rows - i);
            // The A panel: packed (row r, column k at a[r + k·mr]) or, for a whole panel when allowed,
            // read in place (at a[r·lda + k]).
            T* a = Ap + (long)i * kc; nint rs = 1, ks = mr;
            if (Ad != null && h == mr) { a = Ad + i * lda; rs = lda; ks = 1; }
            for (int j = 0; j < cols; j += nr)
            {
                int w = Math.Min(nr, cols - j);
                // A last panel at most one vector wide (e.g. 16 columns of a 32-wide panel) takes the
                // one-vector kernel, so narrow matrices (an attention head's 16 values) waste nothing.
                bool half = w <= nr / 2;
                T* b = Bp + (long)j * kc; nint rsB = nr;
                if (Bd != null && w == (half ? nr / 2 : nr)) { b = Bd + j; rsB = ldb; }   // read in place
                T* c = C + i * ldc + j;
                if (h == mr && w == (half ? nr / 2 : nr))
                {
                    if (half) KernelHalf(kc, a, rs, ks, b, rsB, c, ldc, acc); else Kernel(kc, a, rs, ks, b, rsB, c, ldc, acc);
                    continue;
                }
                // An edge: compute the whole block into tmp, keep the part inside C.
                if (half) KernelHalf(kc, a, rs, ks, b, rsB, tmp, nr, false); else Kernel(kc, a, rs, ks, b, rsB, tmp, nr, false);
                for (int r = 0; r < h; r++)
                    for (int q = 0; q < w; q++)
                        c[r * ldc + q] = acc ? Add(c[r * ldc + q], tmp[r * nr + q]) : tmp[r * nr + q];
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static T Add<T>(T x, T y) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return (T)(object)((float)(object)x + (float)(object)y);
        return (T)(object)((double)(object)x + (double)(object)y);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Kernel<T>(int kc, T* a, nint rs, nint ks, T* b, nint rsB, T* c, nint ldc, bool acc) where T : unmanaged
    {
        if (Vector512.IsHardwareAccelerated) Kernel12x2<T>(kc, a, rs, ks, b, rsB, c, ldc, acc);
        else Kernel6x2<T>(kc, a, rs, ks, b, rsB, c, ldc, acc);
    }

    /// <summary>The kernel for a block one vector wide (NR/2 columns).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void KernelHalf<T>(int kc, T* a, nint rs, nint ks, T* b, nint rsB, T* c, nint ldc, bool acc) where T : unmanaged
    {
        if (Vector512.IsHardwareAccelerated) Kernel12x1<T>(kc, a, rs, ks, b, rsB, c, ldc, acc);
        else Kernel6x1<T>(kc, a, rs, ks, b, rsB, c, ldc, acc);
    }

    // ------------------------------------------------------------------ packing
    // A packed panel has `width` numbers for each k (MR rows of A, or NR columns of B), padded with
    // zeros. The source either has those numbers side by side (PackRows: element (k, c) at
    // src[k·ld + c]) or in separate lines (PackColumns: element (k, c) at src[c·ld + k]).

    /// <summary>dst[k·width + c] = src[k·ld + c] for c &lt; cols, 0 for cols ≤ c &lt; width.</summary>
    private static void PackRows<T>(T* src, nint ld, int kc, int cols, int width, T* dst) where T : unmanaged
    {
        for (int k = 0; k < kc; k++, src += ld, dst += width)
        {
            Copy(src, dst, cols);
            if (cols < width) new Span<T>(dst + cols, width - cols).Clear();
        }
    }

    /// <summary>dst[k·width + c] = src[c·ld + k] for c &lt; cols, 0 for cols ≤ c &lt; width: a transpose.</summary>
    private static void PackColumns<T>(T* src, nint ld, int kc, int cols, int width, T* dst) where T : unmanaged
    {
        int k = 0;
        if (typeof(T) == typeof(float) && Sse.IsSupported && cols >= 4)
        {
            // Four lines × four k at a time: load 4×4, transpose in registers, store.
            int c4 = cols & ~3;
            for (; k + 4 <= kc; k += 4)
            {
                float* d = (float*)dst + k * width;
                for (int c = 0; c < c4; c += 4)
                {
                    float* s = (float*)src + c * ld + k;
                    Transpose4(Sse.LoadVector128(s), Sse.LoadVector128(s + ld), Sse.LoadVector128(s + 2 * ld), Sse.LoadVector128(s + 3 * ld),
                               d + c, width);
                }
                for (int kk = k; kk < k + 4; kk++)
                    for (int c = c4; c < width; c++) dst[kk * width + c] = c < cols ? src[c * ld + kk] : default;
            }
        }
        for (; k < kc; k++)
        {
            T* s = src + k;
            T* d = dst + k * width;
            for (int c = 0; c < cols; c++, s += ld) d[c] = *s;
            for (int c = cols; c < width; c++) d[c] = default;
        }
    }

    /// <summary>Writes the transpose of the 4×4 block with rows x0..x3 to d, d + stride, d + 2·stride, d + 3·stride.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose4(Vector128<float> x0, Vector128<float> x1, Vector128<float> x2, Vector128<float> x3, float* d, int stride)
    {
        var t0 = Sse.UnpackLow(x0, x1);   // x0[0] x1[0] x0[1] x1[1]
        var t1 = Sse.UnpackLow(x2, x3);   // x2[0] x3[0] x2[1] x3[1]
        var t2 = Sse.UnpackHigh(x0, x1);  // x0[2] x1[2] x0[3] x1[3]
        var t3 = Sse.UnpackHigh(x2, x3);  // x2[2] x3[2] x2[3] x3[3]
        Sse.Store(d, Sse.MoveLowToHigh(t0, t1));              // column 0
        Sse.Store(d + stride, Sse.MoveHighToLow(t1, t0));     // column 1
        Sse.Store(d + 2 * stride, Sse.MoveLowToHigh(t2, t3)); // column 2
        Sse.Store(d + 3 * stride, Sse.MoveHighToLow(t3, t2)); // column 3
    }

    /// <summary>Copies n numbers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Copy<T>(T* src, T* dst, int n) where T : unmanaged
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
            for (; i + Vector<T>.Count <= n; i += Vector<T>.Count) Vector.Load(src + i).Store(dst + i);
        for (; i < n; i++) dst[i] = src[i];
    }

    // ------------------------------------------------------------------ micro-kernels

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<T> Fma<T>(Vector512<T> x, Vector512<T> y, Vector512<T> z) where T : unmanaged
    {
        if (typeof(T) == typeof(float))
            return Vector512.FusedMultiplyAdd(x.AsSingle(), y.AsSingle(), z.AsSingle()).As<float, T>();
        return Vector512.FusedMultiplyAdd(x.AsDouble(), y.AsDouble(), z.AsDouble()).As<double, T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<T> Fma<T>(Vector<T> x, Vector<T> y, Vector<T> z) where T : unmanaged
    {
        if (typeof(T) == typeof(float))
            return Vector.FusedMultiplyAdd(x.As<T, float>(), y.As<T, float>(), z.As<T, float>()).As<float, T>();
        return Vector.FusedMultiplyAdd(x.As<T, double>(), y.As<T, double>(), z.As<T, double>()).As<double, T>();
    }

    /// <summary>
    /// AVX-512 micro-kernel: C[12 × 2V] (+)= Apanel[12 × kc] · Bpanel[kc × 2V], V = numbers per zmm register.
    /// 24 accumulators stay in registers for the whole loop; each step loads one B row (2 vectors)
    /// and does 24 fused multiply-adds with broadcast A values.
    /// </summary>
    private static void Kernel12x2<T>(int kc, T* a, nint rs, nint ks, T* b, nint rsB, T* c, nint ldc, bool acc) where T : unmanaged
    {
        int V = Vector512<T>.Count;
        Vector512<T> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
                     c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default,
                     c60 = default, c61 = default, c70 = default, c71 = default, c80 = default, c81 = default,
                     c90 = default, c91 = default, cA0 = default, cA1 = default, cB0 = default, cB1 = default;
        T* a4 = a + 4 * rs, a8 = a + 8 * rs;
        for (int k = 0; k < kc; k++, a += ks, a4 += ks, a8 += ks, b += rsB)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + V);
            Vector512<T> x;
            x = Vector512.Create(a[0]); c00 = Fma(x, b0, c00); c01 = Fma(x, b1, c01);
            x = Vector512.Create(a[rs]); c10 = Fma(x, b0, c10); c11 = Fma(x, b1, c11);
            x = Vector512.Create(a[2 * rs]); c20 = Fma(x, b0, c20); c21 = Fma(x, b1, c21);
            x = Vector512.Create(a[3 * rs]); c30 = Fma(x, b0, c30); c31 = Fma(x, b1, c31);
            x = Vector512.Create(a4[0]); c40 = Fma(x, b0, c40); c41 = Fma(x, b1, c41);
            x = Vector512.Create(a4[rs]); c50 = Fma(x, b0, c50); c51 = Fma(x, b1, c51);
            x = Vector512.Create(a4[2 * rs]); c60 = Fma(x, b0, c60); c61 = Fma(x, b1, c61);
            x = Vector512.Create(a4[3 * rs]); c70 = Fma(x, b0, c70); c71 = Fma(x, b1, c71);
            x = Vector512.Create(a8[0]); c80 = Fma(x, b0, c80); c81 = Fma(x, b1, c81);
            x = Vector512.Create(a8[rs]); c90 = Fma(x, b0, c90); c91 = Fma(x, b1, c91);
            x = Vector512.Create(a8[2 * rs]); cA0 = Fma(x, b0, cA0); cA1 = Fma(x, b1, cA1);
            x = Vector512.Create(a8[3 * rs]); cB0 = Fma(x, b0, cB0); cB1 = Fma(x, b1, cB1);
        }
        Store(c + 0 * ldc, c00, c01, V, acc); Store(c + 1 * ldc, c10, c11, V, acc);
        Store(c + 2 * ldc, c20, c21, V, acc); Store(c + 3 * ldc, c30, c31, V, acc);
        Store(c + 4 * ldc, c40, c41, V, acc); Store(c + 5 * ldc, c50, c51, V, acc);
        Store(c + 6 * ldc, c60, c61, V, acc); Store(c + 7 * ldc, c70, c71, V, acc);
        Store(c + 8 * ldc, c80, c81, V, acc); Store(c + 9 * ldc, c90, c91, V, acc);
        Store(c + 10 * ldc, cA0, cA1, V, acc); Store(c + 11 * ldc, cB0, cB1, V, acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<T>(T* c, Vector512<T> x0, Vector512<T> x1, int V, bool acc) where T : unmanaged
    {
        if (acc) { x0 += Vector512.Load(c); x1 += Vector512.Load(c + V); }
        x0.Store(c); x1.Store(c + V);
    }

    /// <summary>AVX-512, one vector wide: C[12 × V] (+)= Apanel[12 × kc] · Bpanel[kc × V].</summary>
    private static void Kernel12x1<T>(int kc, T* a, nint rs, nint ks, T* b, nint rsB, T* c, nint ldc, bool acc) where T : unmanaged
    {
        Vector512<T> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default,
                     c6 = default, c7 = default, c8 = default, c9 = default, cA = default, cB = default;
        T* a4 = a + 4 * rs, a8 = a + 8 * rs;
        for (int k = 0; k < kc; k++, a += ks, a4 += ks, a8 += ks, b += rsB)
        {
            var b0 = Vector512.Load(b);
            c0 = Fma(Vector512.Create(a[0]), b0, c0); c1 = Fma(Vector512.Create(a[rs]), b0, c1);
            c2 = Fma(Vector512.Create(a[2 * rs]), b0, c2); c3 = Fma(Vector512.Create(a[3 * rs]), b0, c3);
            c4 = Fma(Vector512.Create(a4[0]), b0, c4); c5 = Fma(Vector512.Create(a4[rs]), b0, c5);
            c6 = Fma(Vector512.Create(a4[2 * rs]), b0, c6); c7 = Fma(Vector512.Create(a4[3 * rs]), b0, c7);
            c8 = Fma(Vector512.Create(a8[0]), b0, c8); c9 = Fma(Vector512.Create(a8[rs]), b0, c9);
            cA = Fma(Vector512.Create(a8[2 * rs]), b0, cA); cB = Fma(Vector512.Create(a8[3 * rs]), b0, cB);
        }
        Store(c + 0 * ldc, c0, acc); Store(c + 1 * ldc, c1, acc); Store(c + 2 * ldc, c2, acc);
        Store(c + 3 * ldc, c3, acc); Store(c + 4 * ldc, c4, acc); Store(c + 5 * ldc, c5, acc);
        Store(c + 6 * ldc, c6, acc); Store(c + 7 * ldc, c7, acc); Store(c + 8 * ldc, c8, acc);
        Store(c + 9 * ldc, c9, acc); Store(c + 10 * ldc, cA, acc); Store(c + 11 * ldc, cB, acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<T>(T* c, Vector512<T> x, bool acc) where T : unmanaged
    {
        if (acc) x += Vector512.Load(c);
        x.Store(c);
    }

    /// <summary>Portable micro-kernel (AVX2, NEON, ...): C[6 × 2V] (+)= Apanel[6 × kc] · Bpanel[kc × 2V] with <see cref="Vector{T}"/>.</summary>
    private static void Kernel6x2<T>(int kc, T* a, nint rs, nint ks, T* b, nint rsB, T* c, nint ldc, bool acc) where T : unmanaged
    {
        int V = Vector<T>.Count;
        Vector<T> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
                  c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        T* a4 = a + 4 * rs;
        for (int k = 0; k < kc; k++, a += ks, a4 += ks, b += rsB)
        {
            var b0 = Vector.Load(b);
            var b1 = Vector.Load(b + V);
            Vector<T> x;
            x = new Vector<T>(a[0]); c00 = Fma(x, b0, c00); c01 = Fma(x, b1, c01);
            x = new Vector<T>(a[rs]); c10 = Fma(x, b0, c10); c11 = Fma(x, b1, c11);
            x = new Vector<T>(a[2 * rs]); c20 = Fma(x, b0, c20); c21 = Fma(x, b1, c21);
            x = new Vector<T>(a[3 * rs]); c30 = Fma(x, b0, c30); c31 = Fma(x, b1, c31);
            x = new Vector<T>(a4[0]); c40 = Fma(x, b0, c40); c41 = Fma(x, b1, c41);
            x = new Vector<T>(a4[rs]); c50 = Fma(x, b0, c50); c51 = Fma(x, b1, c51);
        }
        Store(c + 0 * ldc, c00, c01, V, acc); Store(c + 1 * ldc, c10, c11, V, acc);
        Store(c + 2 * ldc, c20, c21, V, acc); Store(c + 3 * ldc, c30, c31, V, acc);
        Store(c + 4 * ldc, c40, c41, V, acc); Store(c + 5 * ldc, c50, c51, V, acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<T>(T* c, Vector<T> x0, Vector<T> x1, int V, bool acc) where T : unmanaged
    {
        if (acc) { x0 += Vector.Load(c); x1 += Vector.Load(c + V); }
        x0.Store(c); x1.Store(c + V);
    }

    /// <summary>Portable, one vector wide: C[6 × V] (+)= Apanel[6 × kc] · Bpanel[kc × V].</summary>
    private static void Kernel6x1<T>(int kc, T* a, nint rs, nint ks, T* b, nint rsB, T* c, nint ldc, bool acc) where T : unmanaged
    {
        Vector<T> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default;
        T* a4 = a + 4 * rs;
        for (int k = 0; k < kc; k++, a += ks, a4 += ks, b += rsB)
        {
            var b0 = Vector.Load(b);
            c0 = Fma(new Vector<T>(a[0]), b0, c0); c1 = Fma(new Vector<T>(a[rs]), b0, c1);
            c2 = Fma(new Vector<T>(a[2 * rs]), b0, c2); c3 = Fma(new Vector<T>(a[3 * rs]), b0, c3);
            c4 = Fma(new Vector<T>(a4[0]), b0, c4); c5 = Fma(new Vector<T>(a4[rs]), b0, c5);
        }
        Store(c + 0 * ldc, c0, acc); Store(c + 1 * ldc, c1, acc); Store(c + 2 * ldc, c2, acc);
        Store(c + 3 * ldc, c3, acc); Store(c + 4 * ldc, c4, acc); Store(c + 5 * ldc, c5, acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<T>(T* c, Vector<T> x, bool acc) where T : unmanaged
    {
        if (acc) x += Vector.Load(c);
        x.Store(c);
    }
}
