using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MinTorch;

/// <summary>
/// General matrix multiplication, C[M×N] (= or +=) op(A)[M×K] · op(B)[K×N], for float and double,
/// where op(X) is X or Xᵀ. All matrices are row-major with a leading dimension (the distance between
/// rows), so a transposed operand is read in place: matmul's backward (g·Bᵀ and Aᵀ·g) needs no copies.
/// </summary>
/// <remarks>
/// <para>The algorithm is the one behind GotoBLAS, OpenBLAS and BLIS. The naive triple loop spends its
/// time waiting for memory; the fast one keeps the arithmetic units busy by moving each number into
/// the fastest memory once and using it many times there:</para>
/// <code>
/// for jc in N, step NC                       B's columns, a slab that fits in L3
///   for pc in K, step KC                     one slice of the sum (the order is fixed: determinism)
///     pack B[pc.., jc..] into NR-wide panels         (kc × NR each, contiguous)
///     for each chunk of M rows:
///       pack A[.., pc..] into MR-tall panels           (MR × kc each, contiguous)
///       in parallel, for each tile (MC rows × NT columns) of C:
///         for ir (an MR-row panel of A, stays in L1)
///           for jr (an NR-column panel of B, streams from L2)
///             micro-kernel: C[MR×NR] += Apanel · Bpanel      (all in registers)
/// </code>
/// <para>The micro-kernel keeps an MR×NR block of C in vector registers: 12 rows × 32 floats
/// (24 zmm registers) with AVX-512, 6 rows × 2 vectors with <see cref="Vector{T}"/> elsewhere. Each step
/// of its loop loads one row of the B panel (NR numbers), broadcasts MR numbers of the A panel and does
/// MR·NR multiply-adds — 384 floating-point multiply-adds for 44 numbers loaded.</para>
/// <para>Packing copies each block into exactly the order the micro-kernel reads it, padded with zeros
/// to whole panels, so the kernel has no edge cases: an edge tile is computed in full into a small
/// buffer and only its valid part is written to C.</para>
/// <para>Determinism: every element of C is computed by one thread, by the same sequence of
/// operations (K in KC slices, in order) whatever the number of threads, so the result is
/// bit-identical for any <c>torch.set_num_threads</c>. The blocking depends only on the sizes.</para>
/// </remarks>
internal static unsafe class Gemm
{
    // Blocking, tuned on an AMD EPYC (Zen 4, 32 KB L1d, 1 MB L2 per core, shared L3).
    internal static int KC = Env("KC", 256);   // depth of a slice: an A panel (MR × KC) fits in L1
    internal static int MC = Env("MC", 96);    // rows of a tile: a multiple of every MR (12 and 6)
    internal static int NT = Env("NT", 256);   // columns of a tile: the B panels it reads (KC × NT) fit in L2
    internal static int NC = Env("NC", 2048);  // columns of B packed at once
    internal static int KO = Env("KO", 1024);  // depth of K packed at once (a multiple of KC)
    static int Env(string n, int d) => int.TryParse(Environment.GetEnvironmentVariable("GEMM_" + n), out var v) ? v : d;
    internal static int MChunk = Env("MCH", 1024); // rows of A packed at once (bounds the packing buffer)

    /// <summary>Multiply-adds below which one matrix is done on one thread (and batches are split across threads).</summary>
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
            if (work <= SmallWork)
            {
                // Small matrices: one thread each, the batch spread over the threads.
                Par.For(batch, Par.Grain(work, 1 << 17), (s, e) =>
                {
                    for (int b = s; b < e; b++)
                        Single((T*)a0 + b * strideA, lda, transA, (T*)b0 + b * strideB, ldb, transB,
                               (T*)c0 + b * strideC, ldc, M, N, K, accumulate, parallel: false);
                });
            }
            else
            {
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

    private static void Single<T>(T* A, nint lda, bool transA, T* B, nint ldb, bool transB, T* C, nint ldc,
        int M, int N, int K, bool accumulate, bool parallel) where T : unmanaged
    {
        if (K == 0)
        {
            if (!accumulate) for (int i = 0; i < M; i++) new Span<T>(C + i * ldc, N).Clear();
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
                };
                for (int jc = 0; jc < N; jc += NC)
                {
                    job.j0 = jc; job.nc = Math.Min(NC, N - jc);
                    job.nTiles = (job.nc + NT - 1) / NT;
                    for (int pc = 0; pc < K; pc += KO)
                    {
                        job.p0 = pc; job.kc = Math.Min(KO, K - pc);
                        job.slices = (job.kc + KC - 1) / KC;
                        job.accumulate = accumulate || pc > 0;
                        job.bPacked = new int[job.nTiles * job.slices];
                        for (int ic = 0; ic < M; ic += MChunk)
                        {
                            job.i0 = ic; job.mc = Math.Min(MChunk, M - ic);
                            job.mTiles = (job.mc + MC - 1) / MC;
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

    /// <summary>
    /// One parallel step: the tiles of C[i0.., j0..] over K[p0 .. p0+kc]. Each tile is owned by one task;
    /// the packed blocks of A and B it needs are packed by whichever task needs them first (the others
    /// wait for it), so packing is spread over the threads without a separate parallel loop.
    /// </summary>
    private sealed class Job<T> where T : unmanaged
    {
        public T* A, B, C, Ap, Bp;
        public nint lda, ldb, ldc;
        public bool transA, transB, accumulate;
        public int M, mr, nr;
        public int i0, mc, j0, nc, p0, kc;     // this step's block of C and slice of K
        public int mTiles, nTiles, slices;
        public int[] aPacked = [], bPacked = []; // per (tile, KC slice): 0 to do, 1 being packed, 2 done

        public void Run(int start, int end)
        {
            for (int t = start; t < end; t++)
            {
                int ti = t / nTiles, tj = t % nTiles;
                int ri = ti * MC, rows = Math.Min(MC, mc - ri);      // the tile, relative to (i0, j0)
                int cj = tj * NT, cols = Math.Min(NT, nc - cj);
                for (int s = 0; s < slices; s++)
                {
                    int ks = s * KC, kcs = Math.Min(KC, kc - ks);
                    // Packed A of this step: [slice][row panel][kcs × mr]; packed B: [slice][column panel][kcs × nr].
                    T* a = Ap + (long)ks * RoundUp(mc, mr) + (long)ri * kcs;
                    T* b = Bp + (long)ks * RoundUp(nc, nr) + (long)cj * kcs;
                    ref int aState = ref aPacked[ti * slices + s], bState = ref bPacked[tj * slices + s];
                    if (Claim(ref aState)) { PackAPanels(i0 + ri, rows, p0 + ks, kcs, a); Volatile.Write(ref aState, 2); }
                    if (Claim(ref bState)) { PackBPanels(j0 + cj, cols, p0 + ks, kcs, b); Volatile.Write(ref bState, 2); }
                    Tile(a, b, C + (long)(i0 + ri) * ldc + j0 + cj, ldc, rows, cols, kcs, accumulate || s > 0);
                }
            }
        }

        private void PackAPanels(int i, int rows, int p, int k, T* dst)
        {
            for (int r = 0; r < rows; r += mr, dst += mr * k)
                PackA(A, lda, transA, i + r, p, Math.Min(mr, rows - r), k, mr, dst);
        }

        private void PackBPanels(int j, int cols, int p, int k, T* dst)
        {
            for (int q = 0; q < cols; q += nr, dst += nr * k)
                PackB(B, ldb, transB, p, j + q, k, Math.Min(nr, cols - q), nr, dst);
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

    /// <summary>C[rows × cols] (+)= Ap · Bp for packed panels (rows, cols need not be whole panels).</summary>
    private static void Tile<T>(T* Ap, T* Bp, T* C, nint ldc, int rows, int cols, int kc, bool acc) where T : unmanaged
    {
        int mr = MR, nr = NR<T>();
        T* tmp = stackalloc T[12 * 64];
        for (int i = 0; i < rows; i += mr)
        {
            int h = Math.Min(mr, rows - i);
            T* a = Ap + (long)i * kc;
            for (int j = 0; j < cols; j += nr)
            {
                int w = Math.Min(nr, cols - j);
                T* b = Bp + (long)j * kc;
                T* c = C + i * ldc + j;
                if (h == mr && w == nr) Kernel(kc, a, b, c, ldc, acc);
                else
                {
                    // An edge: compute the whole block into tmp, keep the part inside C.
                    Kernel(kc, a, b, tmp, nr, false);
                    for (int r = 0; r < h; r++)
                        for (int q = 0; q < w; q++)
                            c[r * ldc + q] = acc ? Add(c[r * ldc + q], tmp[r * nr + q]) : tmp[r * nr + q];
                }
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
    private static void Kernel<T>(int kc, T* a, T* b, T* c, nint ldc, bool acc) where T : unmanaged
    {
        if (Vector512.IsHardwareAccelerated) Kernel12x2<T>(kc, a, b, c, ldc, acc);
        else Kernel6x2<T>(kc, a, b, c, ldc, acc);
    }

    // ------------------------------------------------------------------ packing

    /// <summary>
    /// Packs op(A)[i.., p..] (rows × kc) into one MR-tall panel: for each k, MR consecutive numbers
    /// (the panel's column k), rows beyond <paramref name="rows"/> zero.
    /// </summary>
    private static void PackA<T>(T* A, nint lda, bool trans, int i, int p, int rows, int kc, int mr, T* dst) where T : unmanaged
    {
        if (trans)
        {
            // op(A)[i, p] = A[p, i]: each column of the panel is contiguous in A.
            T* src = A + p * lda + i;
            for (int k = 0; k < kc; k++, src += lda, dst += mr)
            {
                for (int r = 0; r < rows; r++) dst[r] = src[r];
                for (int r = rows; r < mr; r++) dst[r] = default;
            }
        }
        else
        {
            // Row r of the panel is contiguous in A; write it down column r of the panel.
            for (int r = 0; r < rows; r++)
            {
                T* src = A + (i + r) * lda + p;
                T* d = dst + r;
                for (int k = 0; k < kc; k++) d[k * mr] = src[k];
            }
            for (int r = rows; r < mr; r++)
                for (int k = 0; k < kc; k++) dst[k * mr + r] = default;
        }
    }

    /// <summary>Packs op(B)[p.., j..] (kc × cols) into one NR-wide panel: for each k, NR consecutive numbers.</summary>
    private static void PackB<T>(T* B, nint ldb, bool trans, int p, int j, int kc, int cols, int nr, T* dst) where T : unmanaged
    {
        if (!trans)
        {
            T* src = B + p * ldb + j;
            if (cols == nr)
            {
                for (int k = 0; k < kc; k++, src += ldb, dst += nr)
                    new ReadOnlySpan<T>(src, nr).CopyTo(new Span<T>(dst, nr));
            }
            else
            {
                for (int k = 0; k < kc; k++, src += ldb, dst += nr)
                {
                    for (int q = 0; q < cols; q++) dst[q] = src[q];
                    for (int q = cols; q < nr; q++) dst[q] = default;
                }
            }
        }
        else
        {
            // op(B)[p, j] = B[j, p]: column q of the panel is contiguous in B.
            for (int q = 0; q < cols; q++)
            {
                T* src = B + (j + q) * ldb + p;
                T* d = dst + q;
                for (int k = 0; k < kc; k++) d[k * nr] = src[k];
            }
            for (int q = cols; q < nr; q++)
                for (int k = 0; k < kc; k++) dst[k * nr + q] = default;
        }
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
    private static void Kernel12x2<T>(int kc, T* a, T* b, T* c, nint ldc, bool acc) where T : unmanaged
    {
        int V = Vector512<T>.Count;
        Vector512<T> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
                     c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default,
                     c60 = default, c61 = default, c70 = default, c71 = default, c80 = default, c81 = default,
                     c90 = default, c91 = default, cA0 = default, cA1 = default, cB0 = default, cB1 = default;
        for (int k = 0; k < kc; k++, a += 12, b += 2 * V)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + V);
            Vector512<T> x;
            x = Vector512.Create(a[0]); c00 = Fma(x, b0, c00); c01 = Fma(x, b1, c01);
            x = Vector512.Create(a[1]); c10 = Fma(x, b0, c10); c11 = Fma(x, b1, c11);
            x = Vector512.Create(a[2]); c20 = Fma(x, b0, c20); c21 = Fma(x, b1, c21);
            x = Vector512.Create(a[3]); c30 = Fma(x, b0, c30); c31 = Fma(x, b1, c31);
            x = Vector512.Create(a[4]); c40 = Fma(x, b0, c40); c41 = Fma(x, b1, c41);
            x = Vector512.Create(a[5]); c50 = Fma(x, b0, c50); c51 = Fma(x, b1, c51);
            x = Vector512.Create(a[6]); c60 = Fma(x, b0, c60); c61 = Fma(x, b1, c61);
            x = Vector512.Create(a[7]); c70 = Fma(x, b0, c70); c71 = Fma(x, b1, c71);
            x = Vector512.Create(a[8]); c80 = Fma(x, b0, c80); c81 = Fma(x, b1, c81);
            x = Vector512.Create(a[9]); c90 = Fma(x, b0, c90); c91 = Fma(x, b1, c91);
            x = Vector512.Create(a[10]); cA0 = Fma(x, b0, cA0); cA1 = Fma(x, b1, cA1);
            x = Vector512.Create(a[11]); cB0 = Fma(x, b0, cB0); cB1 = Fma(x, b1, cB1);
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

    /// <summary>Portable micro-kernel (AVX2, NEON, ...): C[6 × 2V] (+)= Apanel[6 × kc] · Bpanel[kc × 2V] with <see cref="Vector{T}"/>.</summary>
    private static void Kernel6x2<T>(int kc, T* a, T* b, T* c, nint ldc, bool acc) where T : unmanaged
    {
        int V = Vector<T>.Count;
        Vector<T> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
                  c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int k = 0; k < kc; k++, a += 6, b += 2 * V)
        {
            var b0 = Vector.Load(b);
            var b1 = Vector.Load(b + V);
            Vector<T> x;
            x = new Vector<T>(a[0]); c00 = Fma(x, b0, c00); c01 = Fma(x, b1, c01);
            x = new Vector<T>(a[1]); c10 = Fma(x, b0, c10); c11 = Fma(x, b1, c11);
            x = new Vector<T>(a[2]); c20 = Fma(x, b0, c20); c21 = Fma(x, b1, c21);
            x = new Vector<T>(a[3]); c30 = Fma(x, b0, c30); c31 = Fma(x, b1, c31);
            x = new Vector<T>(a[4]); c40 = Fma(x, b0, c40); c41 = Fma(x, b1, c41);
            x = new Vector<T>(a[5]); c50 = Fma(x, b0, c50); c51 = Fma(x, b1, c51);
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
}
