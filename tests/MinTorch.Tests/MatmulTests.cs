using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TorchSharp.Tests;

public class MatmulTests
{
    static Tensor In(long seed, params long[] shape) => GradCheck.Input(shape, seed);

    // ------------------------------------------------------------------ gradients (float64, finite differences)

    [Fact] public void Grad_2d() => GradCheck.Check(x => x[0].matmul(x[1]), In(1, 3, 4), In(2, 4, 5));
    [Fact] public void Grad_1d_times_2d() => GradCheck.Check(x => x[0].matmul(x[1]), In(3, 4), In(4, 4, 5));
    [Fact] public void Grad_2d_times_1d() => GradCheck.Check(x => x[0].matmul(x[1]), In(5, 3, 4), In(6, 4));
    [Fact] public void Grad_dot() => GradCheck.Check(x => x[0].matmul(x[1]), In(7, 6), In(8, 6));
    [Fact] public void Grad_batched_3d() => GradCheck.Check(x => x[0].matmul(x[1]), In(9, 2, 3, 4), In(10, 2, 4, 5));
    [Fact] public void Grad_3d_times_2d_folded() => GradCheck.Check(x => x[0].matmul(x[1]), In(11, 2, 3, 4), In(12, 4, 5));
    [Fact] public void Grad_2d_times_3d_broadcast() => GradCheck.Check(x => x[0].matmul(x[1]), In(13, 3, 4), In(14, 2, 4, 5));
    [Fact] public void Grad_1d_times_3d() => GradCheck.Check(x => x[0].matmul(x[1]), In(15, 4), In(16, 2, 4, 3));
    [Fact] public void Grad_3d_times_1d() => GradCheck.Check(x => x[0].matmul(x[1]), In(17, 2, 3, 4), In(18, 4));
    [Fact] public void Grad_4d_broadcast_batch() => GradCheck.Check(x => x[0].matmul(x[1]), In(19, 2, 1, 3, 4), In(20, 3, 4, 5));
    [Fact] public void Grad_4d_broadcast_both_sides() => GradCheck.Check(x => x[0].matmul(x[1]), In(21, 2, 1, 3, 4), In(22, 1, 3, 4, 2));
    [Fact] public void Grad_mm() => GradCheck.Check(x => x[0].mm(x[1]), In(23, 5, 3), In(24, 3, 2));
    [Fact] public void Grad_bmm() => GradCheck.Check(x => torch.bmm(x[0], x[1]), In(25, 3, 2, 4), In(26, 3, 4, 3));
    [Fact] public void Grad_linear_3d_with_bias() => GradCheck.Check(x => F.linear(x[0], x[1], x[2]), In(27, 2, 3, 4), In(28, 5, 4), In(29, 5));
    [Fact] public void Grad_linear_3d_without_bias() => GradCheck.Check(x => F.linear(x[0], x[1]), In(30, 2, 3, 4), In(31, 5, 4));
    [Fact] public void Grad_linear_1d_input() => GradCheck.Check(x => F.linear(x[0], x[1], x[2]), In(32, 4), In(33, 3, 4), In(34, 3));
    [Fact] public void Grad_linear_broadcast_bias() => GradCheck.Check(x => F.linear(x[0], x[1], x[2]), In(35, 2, 3, 4), In(36, 5, 4), In(37, 3, 1));

    /// <summary>The internal op with every combination of transpose flags, batched with a broadcast operand.</summary>
    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void Grad_transposed_operands(bool transA, bool transB)
    {
        long M = 3, K = 4, N = 5;
        var a = In(40, transA ? [2, K, M] : [2, M, K]);
        var b = In(41, transB ? [N, K] : [K, N]);
        GradCheck.Check(x => Tensor.MatmulT(x[0], x[1], transA, transB, "matmul"), a, b);
        GradCheck.CheckSecondOrder(x => Tensor.MatmulT(x[0], x[1], transA, transB, "matmul"), a, b);
    }

    [Fact] public void Second_order_matmul_2d() => GradCheck.CheckSecondOrder(x => x[0].matmul(x[1]).tanh(), In(50, 3, 4), In(51, 4, 2));
    [Fact] public void Second_order_matmul_batched_broadcast() => GradCheck.CheckSecondOrder(x => x[0].matmul(x[1]).sigmoid(), In(52, 2, 1, 3, 4), In(53, 2, 4, 2));
    [Fact] public void Second_order_matmul_vector() => GradCheck.CheckSecondOrder(x => x[0].matmul(x[1]).matmul(x[0]).exp(), In(54, 3, 3), In(55, 3));
    [Fact] public void Second_order_linear() => GradCheck.CheckSecondOrder(x => F.linear(x[0], x[1], x[2]).tanh(), In(56, 2, 3, 4), In(57, 5, 4), In(58, 5));
    [Fact] public void Second_order_linear_without_bias() => GradCheck.CheckSecondOrder(x => F.linear(x[0].tanh(), x[1]).square(), In(59, 3, 4), In(60, 2, 4));

    // ------------------------------------------------------------------ values and shapes

    [Fact]
    public void Known_values_2x2()
    {
        var a = tensor(new float[] { 1, 2, 3, 4 }, new long[] { 2, 2 });
        var b = tensor(new float[] { 5, 6, 7, 8 }, new long[] { 2, 2 });
        Assert.Equal(new float[] { 19, 22, 43, 50 }, a.matmul(b).data<float>().ToArray());
        Assert.Equal(new float[] { 23, 34, 31, 46 }, b.matmul(a).data<float>().ToArray());
        Assert.Equal(new float[] { 17, 39 }, a.matmul(tensor(new float[] { 5, 6 })).data<float>().ToArray());
        Assert.Equal(new float[] { 23, 34 }, tensor(new float[] { 5, 6 }).matmul(a).data<float>().ToArray());
        Assert.Equal(17f, tensor(new float[] { 1, 2 }).matmul(tensor(new float[] { 5, 6 })).item<float>());
    }

    [Fact]
    public void Linear_known_values()
    {
        // torch.nn.functional.linear(x, W, b) in PyTorch 1.13 gives [[-1.5, 8.5], [-1.5, 19.0]] for these, and
        // [[-2.0, 5.5], [-2.0, 16.0]] without the bias.
        var x = tensor(new float[] { 1, 2, 3, 4, 5, 6 }, new long[] { 2, 3 });
        var w = tensor(new float[] { 1, 0, -1, 2, 1, 0.5f }, new long[] { 2, 3 });
        var b = tensor(new float[] { 0.5f, 3 });
        Assert.Equal(new float[] { -1.5f, 8.5f, -1.5f, 19f }, F.linear(x, w, b).data<float>().ToArray());
        Assert.Equal(new float[] { -2f, 5.5f, -2f, 16f }, F.linear(x, w).data<float>().ToArray());
    }

    [Theory]
    [InlineData(new long[] { 4 }, new long[] { 4 }, new long[] { })]
    [InlineData(new long[] { 3, 4 }, new long[] { 4 }, new long[] { 3 })]
    [InlineData(new long[] { 4 }, new long[] { 4, 5 }, new long[] { 5 })]
    [InlineData(new long[] { 4 }, new long[] { 2, 4, 5 }, new long[] { 2, 5 })]
    [InlineData(new long[] { 2, 3, 4 }, new long[] { 4 }, new long[] { 2, 3 })]
    [InlineData(new long[] { 2, 3, 4 }, new long[] { 4, 5 }, new long[] { 2, 3, 5 })]
    [InlineData(new long[] { 3, 4 }, new long[] { 2, 4, 5 }, new long[] { 2, 3, 5 })]
    [InlineData(new long[] { 2, 1, 3, 4 }, new long[] { 3, 4, 5 }, new long[] { 2, 3, 3, 5 })]
    [InlineData(new long[] { 2, 1, 3, 4 }, new long[] { 1, 5, 4, 2 }, new long[] { 2, 5, 3, 2 })]
    public void Matmul_shapes_follow_pytorch(long[] sa, long[] sb, long[] expected)
    {
        var y = randn(sa).matmul(randn(sb));
        Assert.Equal(expected, y.shape);
    }

    /// <summary>Every batched layout against a plain loop over the broadcast batch (float64, exact to rounding).</summary>
    [Fact]
    public void Broadcast_batches_match_per_matrix_products()
    {
        var a = randn(new long[] { 2, 1, 3, 4 }, ScalarType.Float64);
        var b = randn(new long[] { 1, 5, 4, 2 }, ScalarType.Float64);
        var y = a.matmul(b);
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 5; j++)
            {
                var ai = a.Arr<double>().AsSpan(i * 12, 12).ToArray();
                var bj = b.Arr<double>().AsSpan(j * 8, 8).ToArray();
                var yij = y.Arr<double>().AsSpan((i * 5 + j) * 6, 6).ToArray();
                var expect = Naive(3, 2, 4, ai, 4, false, bj, 2, false);
                for (int q = 0; q < 6; q++) Assert.Equal(expect[q], yij[q], 1e-12);
            }
    }

    static double[] Naive(int M, int N, int K, double[] A, int lda, bool tA, double[] B, int ldb, bool tB)
    {
        var C = new double[M * N];
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
            {
                double s = 0;
                for (int p = 0; p < K; p++) s += (tA ? A[p * lda + i] : A[i * lda + p]) * (tB ? B[j * ldb + p] : B[p * ldb + j]);
                C[i * N + j] = s;
            }
        return C;
    }

    static double[] AbsScale(int M, int N, int K, double[] A, int lda, bool tA, double[] B, int ldb, bool tB)
    {
        var absA = A.Select(Math.Abs).ToArray(); var absB = B.Select(Math.Abs).ToArray();
        return Naive(M, N, K, absA, lda, tA, absB, ldb, tB);
    }

    public static IEnumerable<object[]> GemmSizes()
    {
        var sizes = new (int M, int N, int K)[]
        {
            (1, 1, 1), (7, 13, 5), (65, 130, 97), (300, 257, 129), (12, 32, 256), (13, 33, 257),
            (24, 48, 37), (20, 57, 9), (24, 40, 11), // last panel: exactly one vector, wider, narrower
            (25, 37, 1024), (301, 259, 450), // A packed, not read in place: rows 4 KB apart; a larger product
            (Gemm.MC + 5, 3, 2), (2, Gemm.NT + 3, 4), (Gemm.DirectBRows + 7, 70, 40),
            (Gemm.MChunk + 7, 9, 5), (5, Gemm.NC + 9, 3), (6, 7, Gemm.KO + 11),
            (1, 300, 77), (300, 1, 77), (1, 5000, 40), (3000, 1, 50), (1, 1, 1000), // matrix × vector
        };
        foreach (var (M, N, K) in sizes)
            foreach (var tA in new[] { false, true })
                foreach (var tB in new[] { false, true })
                    yield return [M, N, K, tA, tB];
    }

    /// <summary>
    /// The GEMM kernel against a triple loop in float64, at sizes that hit every edge: partial
    /// micro-tiles in M and N, K across several KC slices, more rows than one packed chunk, more
    /// columns than one B slab; with transposes, leading dimensions wider than the matrix, and
    /// accumulation. Float64 must match to rounding (1e-12 of Σ|a||b|), float32 to 1e-5 of it.
    /// </summary>
    [Theory]
    [MemberData(nameof(GemmSizes))]
    public void Gemm_matches_naive_loop(int M, int N, int K, bool tA, bool tB)
    {
        var rng = new Random(M * 1000003 + N * 1009 + K * 7 + (tA ? 1 : 0) + (tB ? 2 : 0));
        int pad = K == 1024 ? 0 : 3;
        int lda = (tA ? M : K) + pad, ldb = (tB ? K : N) + pad, ldc = N + pad;
        int aRows = tA ? K : M, bRows = tB ? N : K;
        var A = new double[aRows * lda]; var B = new double[bRows * ldb];
        for (int i = 0; i < A.Length; i++) A[i] = rng.NextDouble() * 2 - 1;
        for (int i = 0; i < B.Length; i++) B[i] = rng.NextDouble() * 2 - 1;
        var C0 = new double[M * ldc];
        for (int i = 0; i < C0.Length; i++) C0[i] = rng.NextDouble();
        var expect = Naive(M, N, K, A, lda, tA, B, ldb, tB);
        var scale = AbsScale(M, N, K, A, lda, tA, B, ldb, tB);

        foreach (var accumulate in new[] { false, true })
        {
            var C = (double[])C0.Clone();
            Gemm.Run(M, N, K, A, 0, lda, tA, B, 0, ldb, tB, C, 0, ldc, accumulate);
            var Cf = C0.Select(v => (float)v).ToArray();
            Gemm.Run(M, N, K, A.Select(v => (float)v).ToArray(), 0, lda, tA, B.Select(v => (float)v).ToArray(), 0, ldb, tB, Cf, 0, ldc, accumulate);
            for (int i = 0; i < M; i++)
            {
                for (int j = 0; j < N; j++)
                {
                    double want = expect[i * N + j] + (accumulate ? C0[i * ldc + j] : 0);
                    double tol = scale[i * N + j] + (accumulate ? C0[i * ldc + j] : 0) + 1e-300;
                    double e64 = Math.Abs(C[i * ldc + j] - want), e32 = Math.Abs(Cf[i * ldc + j] - want);
                    if (e64 > 1e-12 * tol || e32 > 1e-5 * tol)
                        Assert.Fail($"{M}×{N}×{K} tA={tA} tB={tB} acc={accumulate}: C[{i},{j}] float64 {C[i * ldc + j]:R}, float32 {Cf[i * ldc + j]:R}, expected {want:R}");
                }
                // The padding between rows of C is never written.
                for (int j = N; j < ldc; j++)
                {
                    Assert.Equal(C0[i * ldc + j], C[i * ldc + j]);
                    Assert.Equal((float)C0[i * ldc + j], Cf[i * ldc + j]);
                }
            }
        }
    }

    [Fact]
    public void Gemm_with_zero_depth_clears_or_keeps_C()
    {
        var C = new float[] { 1, 2, 3, 4, 5, 6 };
        Gemm.Run(2, 3, 0, Array.Empty<float>(), 0, 0, false, Array.Empty<float>(), 0, 3, false, C, 0, 3, accumulate: true);
        Assert.Equal(new float[] { 1, 2, 3, 4, 5, 6 }, C);
        Gemm.Run(2, 3, 0, Array.Empty<float>(), 0, 0, false, Array.Empty<float>(), 0, 3, false, C, 0, 3, accumulate: false);
        Assert.Equal(new float[6], C);
        var y = zeros(new long[] { 2, 0 }).matmul(zeros(new long[] { 0, 3 }));
        Assert.Equal(new long[] { 2, 3 }, y.shape);
        Assert.All(y.data<float>().ToArray(), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Float32_matmul_agrees_with_float64()
    {
        var a = randn(new long[] { 3, 70, 90 }, ScalarType.Float64, generator: new Generator(5));
        var b = randn(new long[] { 90, 45 }, ScalarType.Float64, generator: new Generator(6));
        var y64 = a.matmul(b).data<double>().ToArray();
        var y32 = a.to_type(ScalarType.Float32).matmul(b.to_type(ScalarType.Float32)).data<float>().ToArray();
        var scale = a.abs().matmul(b.abs()).data<double>().ToArray();
        for (int i = 0; i < y64.Length; i++)
            Assert.True(Math.Abs(y32[i] - y64[i]) <= 1e-5 * scale[i], $"element {i}: float32 {y32[i]} vs float64 {y64[i]}");
    }

    [Fact]
    public void Linear_equals_matmul_with_transposed_weight()
    {
        var x = randn(new long[] { 4, 7, 33 }, ScalarType.Float64, generator: new Generator(7));
        var w = randn(new long[] { 19, 33 }, ScalarType.Float64, generator: new Generator(8));
        var b = randn(new long[] { 19 }, ScalarType.Float64, generator: new Generator(9));
        var y = F.linear(x, w, b).data<double>().ToArray();
        var wt = Tensor.MatmulT(eye(33), w, false, true, "t"); // Wᵀ built with the same kernel's transpose
        var z = (x.matmul(wt) + b).data<double>().ToArray();
        Assert.Equal(new long[] { 4, 7, 19 }, F.linear(x, w, b).shape);
        for (int i = 0; i < y.Length; i++) Assert.Equal(z[i], y[i], 1e-12);

        static Tensor eye(long n)
        {
            var e = zeros(n, n, ScalarType.Float64);
            for (int i = 0; i < n; i++) e.Arr<double>()[i * n + i] = 1;
            return e;
        }
    }

    // ------------------------------------------------------------------ errors

    [Fact]
    public void Shape_mismatch_names_op_shapes_and_sizes()
    {
        var ex = Assert.Throws<ArgumentException>(() => ones(2, 3).matmul(ones(4, 5)));
        Assert.Equal("matmul: shapes [2, 3] and [4, 5] cannot be multiplied (3 vs 4)", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => ones(3).matmul(ones(4)));
        Assert.Contains("[3] and [4]", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => ones(2, 3, 4).matmul(ones(5)));
        Assert.Contains("(4 vs 5)", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => ones(2, 3, 4).matmul(ones(3, 4, 5)));
        Assert.Contains("batch dimensions [2] and [3]", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => torch.mm(ones(2, 3), ones(4, 5)));
        Assert.StartsWith("mm: shapes [2, 3] and [4, 5]", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => ones(2, 2, 3).mm(ones(3, 2)));
        Assert.Contains("mm: expected two 2-D tensors", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => ones(2, 2, 3).bmm(ones(3, 3, 2)));
        Assert.Contains("bmm", ex.Message); Assert.Contains("(2 vs 3)", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => ones(2, 2, 3).bmm(ones(2, 4, 2)));
        Assert.Contains("(3 vs 4)", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => torch.tensor(1f).matmul(ones(2)));
        Assert.Contains("at least 1 dimension", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => F.linear(ones(2, 3, 5), ones(4, 3)));
        Assert.StartsWith("linear: shapes [2, 3, 5] and [4, 3] cannot be multiplied (5 vs 3)", ex.Message);
    }

    [Fact]
    public void Dtype_mismatch_names_both_dtypes()
    {
        var ex = Assert.Throws<ArgumentException>(() => ones(2, 3).matmul(ones(3, 2, ScalarType.Float64)));
        Assert.Contains("matmul", ex.Message); Assert.Contains("Float32", ex.Message); Assert.Contains("Float64", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => F.linear(ones(2, 3), ones(4, 3, ScalarType.Float64)));
        Assert.Contains("Float32", ex.Message); Assert.Contains("Float64", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => ones(2, 3, ScalarType.Int64).matmul(ones(3, 2, ScalarType.Int64)));
        Assert.Contains("Int64", ex.Message);
    }

    // ------------------------------------------------------------------ determinism

    static T WithThreads<T>(int n, Func<T> f)
    {
        int saved = get_num_threads();
        set_num_threads(n);
        try { return f(); } finally { set_num_threads(saved); }
    }

    [Theory]
    [InlineData(1, 512, 384, 640, false, false)]
    [InlineData(1, 200, 150, 1024, false, false)]
    [InlineData(1, 700, 1300, 300, true, false)]
    [InlineData(1, 300, 200, 1100, false, true)]
    [InlineData(24, 32, 64, 48, false, true)]   // small matrices: parallel over the batch
    [InlineData(3, 200, 300, 250, true, true)]  // large matrices, one after the other
    [InlineData(1, 4000, 1, 300, false, false)] // matrix × vector: dot products
    [InlineData(1, 1, 5000, 300, true, false)]  // vector × matrix: row updates
    public void Bitwise_identical_for_any_thread_count(int batch, int M, int N, int K, bool tA, bool tB)
    {
        var a = randn(new long[] { batch, tA ? K : M, tA ? M : K }, generator: new Generator(11));
        var b = randn(new long[] { batch, tB ? N : K, tB ? K : N }, generator: new Generator(12));
        float[] Run() => Tensor.MatmulT(a, b, tA, tB, "matmul").data<float>().ToArray();
        var one = WithThreads(1, Run);
        var many = WithThreads(Math.Max(8, Environment.ProcessorCount), Run);
        var three = WithThreads(3, Run);
        Assert.Equal(one, many);
        Assert.Equal(one, three);
    }

    [Fact]
    public void Matmul_gradients_are_deterministic_across_thread_counts()
    {
        var x = randn(new long[] { 4, 64, 96 }, generator: new Generator(13)).requires_grad_();
        var w = randn(new long[] { 80, 96 }, generator: new Generator(14)).requires_grad_();
        (float[], float[], float[]) Run()
        {
            x.grad = null; w.grad = null;
            var y = F.linear(x, w).matmul(w);
            (y * y).sum().backward();
            return (y.data<float>().ToArray(), x.grad!.data<float>().ToArray(), w.grad!.data<float>().ToArray());
        }
        var one = WithThreads(1, Run);
        var many = WithThreads(Math.Max(8, Environment.ProcessorCount), Run);
        Assert.Equal(one.Item1, many.Item1);
        Assert.Equal(one.Item2, many.Item2);
        Assert.Equal(one.Item3, many.Item3);
    }
}
