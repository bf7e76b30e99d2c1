using ActorCritic;
using TorchSharp;
using static TorchSharp.torch;
using static MinRL.Chapters.Tests.Expect;

namespace MinRL.Chapters.Tests;

/// <summary>Chapter 2's pure functions pinned to known values: GAE (published vectors, PyTorch, loop = matrix),
/// per-token rewards, advantage normalisation, the two losses and explained variance.</summary>
public class ActorCriticTests
{
    static Tensor T(double[] values, params long[] shape) => tensor(values, shape);

    /// <summary>Both GAE implementations, so every known-value test checks the loop and the matrix form.</summary>
    public static TheoryData<string> Implementations => new() { "matrix", "loop" };

    static (Tensor advantages, Tensor returns) Gae(string impl, Tensor r, Tensor v, Tensor m, double gamma, double lambda, Tensor? last = null) =>
        impl == "loop" ? A2C.GaeLoop(r, v, m, gamma, lambda, last) : A2C.Gae(r, v, m, gamma, lambda, last);

    // ------------------------------------------------------------------ GAE: published and PyTorch vectors

    [Theory, MemberData(nameof(Implementations))]
    public void Gae_of_a_terminal_episode_matches_the_issue_vector(string impl)
    {
        // λ = 0.7, γ = 0.9, values [1, 0.5, 3], rewards [0, −1.5, 2], terminal after the third step (V = 0 after it).
        // By hand: δ = [0 + 0.9·0.5 − 1, −1.5 + 0.9·3 − 0.5, 2 + 0 − 3] = [−0.55, 0.7, −1];
        // Â_2 = −1, Â_1 = 0.7 + 0.63·(−1) = 0.07, Â_0 = −0.55 + 0.63·0.07 = −0.5059.
        var (adv, ret) = Gae(impl, T([0, -1.5, 2], 1, 3), T([1, 0.5, 3], 1, 3), T([1, 1, 1], 1, 3), gamma: 0.9, lambda: 0.7);
        Close([-0.5059, 0.07, -1], adv, 1e-12, "advantages");
        Close([0.4941, 0.57, 2], ret, 1e-12, "returns");   // G^λ = Â + V
    }

    // rlax (google-deepmind/rlax, rlax/_src/multistep_test.py, TruncatedGeneralizedAdvantageEstimationTest), row 1:
    // r = [0, 0, 1, 0, −0.5], V = [1, 4, −3, −2, −1] and a bootstrap value of −1 for the state after the last step
    // (a rollout cut off mid-episode), γ = 0.99. rlax publishes these rounded and compares at atol 1e-3; the exact
    // values come from tests/reference/actor_critic_gae.py (PyTorch, float64).
    static readonly Dictionary<double, (double[] rlax, double[] exact)> RlaxRow1 = new()
    {
        [1.0] = ([-1.45118, -4.4557, 2.5396, 0.5249, -0.49], [-1.4511880549, -4.45574551, 2.539651, 0.5249, -0.49]),
        [0.7] = ([-0.676979, -5.248167, 2.4846, 0.6704, -0.49], [-0.67697949741049, -5.24816666293, 2.48460799, 0.67043, -0.49]),
        [0.4] = ([0.56731, -6.042, 2.3431, 0.815, -0.49], [0.56731873101056, -6.04212441664, 2.34312016, 0.81596, -0.49]),
    };

    [Theory]
    [InlineData("matrix", 1.0)] [InlineData("matrix", 0.7)] [InlineData("matrix", 0.4)]
    [InlineData("loop", 1.0)] [InlineData("loop", 0.7)] [InlineData("loop", 0.4)]
    public void Gae_of_a_cut_off_rollout_bootstraps_from_the_last_value_as_rlax(string impl, double lambda)
    {
        var (adv, _) = Gae(impl, T([0, 0, 1, 0, -0.5], 1, 5), T([1, 4, -3, -2, -1], 1, 5), T([1, 1, 1, 1, 1], 1, 5),
            gamma: 0.99, lambda, last: T([-1], 1));
        Close(RlaxRow1[lambda].rlax, adv, 1e-3, "rlax");
        Close(RlaxRow1[lambda].exact, adv, 1e-12, "exact");
    }

    [Theory, MemberData(nameof(Implementations))]
    public void Gae_of_rlax_row_2_a_terminal_episode_then_a_cut_off_step(string impl)
    {
        // rlax row 2: r = [0, 0, 0, 0, 1], V = [−3, −2, −1, 0, 5] + bootstrap −1, discount [0.9, 0.9, 0.9, 0, 0.9]:
        // the 0 discount ends an episode after step 3, and step 4 starts another that is cut off and bootstrapped.
        // rlax expects (λ = 0.7) [2.2899, 1.73, 1, 0, −4.9]. With one episode per row that is a terminal row of 4 steps
        // (padded to width 5: its bootstrap value and the garbage under its padding must be ignored) ...
        var (adv, _) = Gae(impl, T([0, 0, 0, 0, 0], 1, 5), T([-3, -2, -1, 0, 123], 1, 5), T([1, 1, 1, 1, 0], 1, 5),
            gamma: 0.9, lambda: 0.7, last: T([77], 1));
        Close([2.2899, 1.73, 1, 0, 0], adv, 1e-12);
        // ... and a one-step row that runs to its last column, bootstrapped from −1: δ = 1 + 0.9·(−1) − 5.
        var (cut, _) = Gae(impl, T([1], 1, 1), T([5], 1, 1), T([1], 1, 1), gamma: 0.9, lambda: 0.7, last: T([-1], 1));
        Close([-4.9], cut, 1e-12);
        // The same step in a wider batch, where its row ends before the last column, is terminal instead: δ = 1 − 5.
        var (ended, _) = Gae(impl, T([1, 0, 0], 1, 3), T([5, 0, 0], 1, 3), T([1, 0, 0], 1, 3), gamma: 0.9, lambda: 0.7, last: T([-1], 1));
        Close([-4, 0, 0], ended, 1e-12);
    }

    [Theory, MemberData(nameof(Implementations))]
    public void Gae_matches_pytorch_on_a_batch_with_a_cut_off_row_and_a_terminal_row(string impl)
    {
        // tests/reference/actor_critic_gae.py, case 1 (γ 0.9, λ 0.8): row 0 runs to the last column and is bootstrapped
        // from 0.25; row 1 ends at t = 1, so its last value (9.0) must be ignored.
        var (adv, ret) = Gae(impl, T([0, 0, 0, 1, 0, 0.7, 0, 0], 2, 4), T([0.5, 0.2, -0.1, 0.4, 0.3, 0.6, 0, 0], 2, 4),
            T([1, 1, 1, 1, 1, 1, 0, 0], 2, 4), gamma: 0.9, lambda: 0.8, last: T([0.25, 9.0], 2));
        Close([0.0175936, 0.46888, 1.054, 0.825, 0.312, 0.1, 0, 0], adv, 1e-12, "advantages");
        Close([0.5175936, 0.66888, 0.954, 1.225, 0.612, 0.7, 0, 0], ret, 1e-12, "returns");
    }

    // ------------------------------------------------------------------ GAE: loop = matrix, and the two limits

    /// <summary>A random batch: lengths 1..T (some full), rewards and values anywhere, garbage after each row's end.</summary>
    static (Tensor r, Tensor v, Tensor m, Tensor last) RandomBatch(int seed, int N, int width, ScalarType dtype)
    {
        var rng = new Random(seed);
        var r = new double[N * width]; var v = new double[N * width]; var m = new double[N * width]; var last = new double[N];
        for (int i = 0; i < N; i++)
        {
            int length = rng.Next(1, width + 1);
            last[i] = rng.NextDouble() * 4 - 2;
            for (int t = 0; t < width; t++)
            {
                r[i * width + t] = rng.NextDouble() * 2 - 1;
                v[i * width + t] = rng.NextDouble() * 2 - 1;
                m[i * width + t] = t < length ? 1 : 0;
            }
        }
        return (T(r, N, width).to_type(dtype), T(v, N, width).to_type(dtype), T(m, N, width).to_type(dtype), T(last, N).to_type(dtype));
    }

    [Theory]
    [InlineData(1.0, 0.95)]
    [InlineData(1.0, 0.0)]
    [InlineData(1.0, 1.0)]
    [InlineData(0.99, 0.95)]
    [InlineData(0.5, 0.3)]
    [InlineData(0.0, 0.7)]
    public void Gae_loop_and_matrix_agree_on_random_inputs(double gamma, double lambda)
    {
        for (int seed = 0; seed < 4; seed++)
        {
            var (r, v, m, last) = RandomBatch(seed, N: 33, width: 9, ScalarType.Float64);
            foreach (var bootstrap in new[] { null, last })
            {
                var (a1, g1) = A2C.GaeLoop(r, v, m, gamma, lambda, bootstrap);
                var (a2, g2) = A2C.Gae(r, v, m, gamma, lambda, bootstrap);
                Close(a1.data<double>().ToArray(), a2, 1e-12, $"advantages (seed {seed}, float64)");
                Close(g1.data<double>().ToArray(), g2, 1e-12, $"returns (seed {seed}, float64)");
            }
            // float32, as in training: the same numbers to float32 precision (values are O(1), sums of ≤ 9 terms).
            var (r32, v32, m32, last32) = RandomBatch(seed, N: 33, width: 9, ScalarType.Float32);
            var (b1, _) = A2C.GaeLoop(r32, v32, m32, gamma, lambda, last32);
            var (b2, _) = A2C.Gae(r32, v32, m32, gamma, lambda, last32);
            Assert.Equal(ScalarType.Float32, b2.dtype);
            Close(b1.to_type(ScalarType.Float64).data<double>().ToArray(), b2, 1e-5, $"advantages (seed {seed}, float32)");
        }
    }

    [Fact]
    public void Gae_with_lambda_0_is_the_td_error_and_with_lambda_1_the_return_minus_the_value()
    {
        var (r, v, m, _) = RandomBatch(seed: 11, N: 20, width: 6, ScalarType.Float64);
        double gamma = 0.9;
        var rr = r.data<double>().ToArray(); var vv = v.data<double>().ToArray(); var mm = m.data<double>().ToArray();
        var td = new double[rr.Length];
        var mc = new double[rr.Length];
        for (int i = 0; i < 20; i++)
        {
            double G = 0;
            for (int t = 5; t >= 0; t--)
            {
                int at = i * 6 + t;
                if (mm[at] == 0) continue;
                double next = t < 5 && mm[at + 1] == 1 ? vv[at + 1] : 0;   // terminal after the last real token
                td[at] = rr[at] + gamma * next - vv[at];                       // δ_t
                G = rr[at] + gamma * G;                                       // G_t = Σ γ^l r_{t+l}
                mc[at] = G - vv[at];
            }
        }
        Close(td, A2C.Gae(r, v, m, gamma, 0.0).advantages, 1e-12, "λ = 0");
        Close(mc, A2C.Gae(r, v, m, gamma, 1.0).advantages, 1e-12, "λ = 1");
    }

    [Fact]
    public void Gae_ignores_everything_after_each_rows_end()
    {
        var (r, v, m, last) = RandomBatch(seed: 3, N: 16, width: 5, ScalarType.Float32);
        var (a, g) = A2C.Gae(r, v, m, 1.0, 0.95, last);
        var noise = rand(16, 5) * 100;
        var (a2, g2) = A2C.Gae(r + noise * (1 - m), v + noise * (1 - m), m, 1.0, 0.95, last);
        Assert.Equal(a.data<float>().ToArray(), a2.data<float>().ToArray());
        Assert.Equal(g.data<float>().ToArray(), g2.data<float>().ToArray());
        Assert.Equal(0f, (a * (1 - m)).abs().max().item<float>());
    }

    [Fact]
    public void Gae_explains_bad_inputs()
    {
        var ok = zeros(2, 3);
        var e = Assert.Throws<ArgumentException>(() => A2C.Gae(ok, zeros(2, 4), ones(2, 3), 1, 0.95));
        Assert.Contains("[2, 3]", e.Message);
        Assert.Contains("[2, 4]", e.Message);
        e = Assert.Throws<ArgumentException>(() => A2C.Gae(ok, ok, T([1, 0, 1, 1, 1, 1], 2, 3), 1, 0.95));
        Assert.Contains("1s then 0s", e.Message);
        Assert.Contains("row 0", e.Message);
        e = Assert.Throws<ArgumentException>(() => A2C.GaeLoop(ok, ok, ones(2, 3), 1, 0.95, zeros(3)));
        Assert.Contains("lastValues", e.Message);
    }

    [Fact]
    public void DiscountMatrix_is_lower_triangular_powers_and_the_identity_at_0()
    {
        Close([1, 0, 0, 0.5, 1, 0, 0.25, 0.5, 1], A2C.DiscountMatrix(3, 0.5, ScalarType.Float64), 0);
        Close([1, 0, 0, 0, 1, 0, 0, 0, 1], A2C.DiscountMatrix(3, 0.0, ScalarType.Float64), 0);
        Close([1, 0, 1, 1], A2C.DiscountMatrix(2, 1.0, ScalarType.Float64), 0);
    }

    [Fact]
    public void BiasAndVariance_by_hand_and_for_an_unbiased_estimator()
    {
        // One case, K = 2: X = [1, 3], Y = [0, 0]. D = X − Y has mean 2 and sample variance 2, so the unbiased bias²
        // is 2² − 2/2 = 3; Var[X] = 2.
        var (b2, v) = A2C.BiasAndVariance(new double[,] { { 1, 3 } }, new double[,] { { 0, 0 } });
        Assert.Equal(3.0, b2, 12);
        Assert.Equal(2.0, v, 12);
        // Two cases average: the second, X = Y = [5, 5, 5], has bias 0 and variance 0 (K must match: use K = 2).
        (b2, v) = A2C.BiasAndVariance(new double[,] { { 1, 3 }, { 5, 5 } }, new double[,] { { 0, 0 }, { 5, 5 } });
        Assert.Equal(1.5, b2, 12);
        Assert.Equal(1.0, v, 12);
        // An estimator equal to the target sample by sample has bias² exactly 0, whatever its variance.
        var x = new double[,] { { 0, 1, 1, 0 }, { 1, 1, 0, 1 } };
        (b2, v) = A2C.BiasAndVariance(x, x);
        Assert.Equal(0.0, b2);
        Assert.Equal((1.0 / 3 + 0.25) / 2, v, 12);   // sample variances 1/3 and 1/4
        Assert.Throws<ArgumentException>(() => A2C.BiasAndVariance(new double[1, 1], new double[1, 1]));
    }

    [Fact]
    public void BiasAndVariance_removes_the_monte_carlo_noise_from_bias_squared()
    {
        // X = Y + 0.3 + noise: the true bias² is 0.09. Without the correction the estimate would be ≈ 0.09 + Var[noise]/K.
        var rng = new Random(1);
        int R = 4000, K = 4;
        var X = new double[R, K]; var Y = new double[R, K];
        for (int r = 0; r < R; r++)
            for (int k = 0; k < K; k++)
            {
                Y[r, k] = rng.NextDouble();
                X[r, k] = Y[r, k] + 0.3 + (rng.NextDouble() - 0.5) * 2;   // noise variance 1/3
            }
        var (b2, _) = A2C.BiasAndVariance(X, Y);
        Assert.True(Math.Abs(b2 - 0.09) < 0.01, $"bias² {b2}, expected 0.09 (uncorrected it would be ≈ {0.09 + 1.0 / 3 / K:F3})");
    }

    // ------------------------------------------------------------------ rewards, normalisation, losses

    [Fact]
    public void TokenRewards_puts_each_score_on_its_last_real_token()
    {
        var r = A2C.TokenRewards(T([1, 0.5, 2], 3), tensor(new long[] { 3, 1, 5 }, [3]), 5);
        Close([0, 0, 1, 0, 0, 0.5, 0, 0, 0, 0, 0, 0, 0, 0, 2], r, 0);
    }

    [Fact]
    public void NormalizeAdvantages_matches_pytorch_over_the_real_tokens()
    {
        // tests/reference/actor_critic_gae.py, case 3: (A − mean) / (std + 1e-8) over the 4 real tokens, 0 elsewhere.
        var n = A2C.NormalizeAdvantages(T([1, -2, 0.5, 3, 9, 9], 2, 3), T([1, 1, 1, 1, 0, 0], 2, 3));
        Close([0.18234920126975, -1.276444408888248, -0.060783067089917, 1.154878274708415, 0, 0], n, 1e-12);
    }

    [Fact]
    public void PolicyLoss_and_its_gradient_match_pytorch()
    {
        // tests/reference/actor_critic_gae.py, case 4: −Σ Â log π m / Σ m; ∂/∂log π = −Â m / Σ m. No gradient reaches Â.
        var logp = T([-0.1, -2.3, -0.7, -1.2, -0.4, -3.0], 2, 3).requires_grad_();
        var adv = T([0.5, -1.0, 2.0, -0.3, 7.0, 7.0], 2, 3).requires_grad_();
        var loss = A2C.PolicyLoss(logp, adv, T([1, 1, 1, 1, 0, 0], 2, 3));
        loss.backward();
        Assert.Equal(-0.3025, loss.item<double>(), 12);
        Close([-0.125, 0.25, -0.5, 0.075, 0, 0], logp.grad!, 1e-12);
        Assert.Null(adv.grad);
    }

    [Fact]
    public void ValueLoss_and_its_gradient_match_pytorch()
    {
        // tests/reference/actor_critic_gae.py, case 4: Σ (V − G)² m / Σ m; ∂/∂V = 2 (V − G) m / Σ m. The targets are constants.
        var v = T([0.2, 0.4, 0.9, 0.1, 5.0, 5.0], 2, 3).requires_grad_();
        var g = T([1.0, 0.0, 1.0, 0.5, 0.0, 0.0], 2, 3).requires_grad_();
        var loss = A2C.ValueLoss(v, g, T([1, 1, 1, 1, 0, 0], 2, 3));
        loss.backward();
        Assert.Equal(0.24250000000000005, loss.item<double>(), 12);
        Close([-0.4, 0.2, -0.05, -0.2, 0, 0], v.grad!, 1e-12);
        Assert.Null(g.grad);
    }

    [Fact]
    public void ExplainedVariance_matches_pytorch_and_its_limits()
    {
        var m = T([1, 1, 1, 1, 0, 0], 2, 3);
        var g = T([1.0, 0.0, 1.0, 0.5, 0.0, 0.0], 2, 3);
        // tests/reference/actor_critic_gae.py, case 5.
        Assert.Equal(-0.11636363636363645, A2C.ExplainedVariance(T([0.2, 0.4, 0.9, 0.1, 5.0, 5.0], 2, 3), g, m), 12);
        Assert.Equal(1.0, A2C.ExplainedVariance(g + 7 * (1 - m), g, m), 12);                   // perfect on the real tokens
        Assert.Equal(0.0, A2C.ExplainedVariance(full(new long[] { 2, 3 }, 0.625, ScalarType.Float64), g, m), 12);   // the mean
        Assert.True(double.IsNaN(A2C.ExplainedVariance(g, ones(2, 3, dtype: ScalarType.Float64), m)));             // constant returns
    }
}

/// <summary>Chapter 2 end to end: a short seeded run is bit-stable (snapshot, any thread count), and a quick run learns.</summary>
[Collection("chapters")]
public class ActorCriticRunTests
{
    static string TempOut(string name) => Path.Combine(Path.GetTempPath(), "minrl-tests", "02-actor-critic-gae", name + "-" + Environment.ProcessId);

    /// <summary>Everything a short run reports, minus timings.</summary>
    static object Record(Program.RunResult r)
    {
        var metrics = r.Log.Columns.Where(c => c != "step_ms").ToDictionary(c => c, c => r.Log.Column(c));
        return new
        {
            base_accuracy = r.Summary.Base,
            final_accuracy = r.Summary.Final,
            kl = r.Summary.Kl,
            metrics,
            lambda_table = r.LambdaRows,
        };
    }

    [Fact]
    public void A_short_seeded_run_matches_its_snapshot_with_1_thread_and_with_all()
    {
        var args = new Args { Steps = 3, BatchSize = 16, LambdaTableRollouts = 4, LambdaTableFutures = 4, Seed = 5, Out = TempOut("snapshot") };
        int threads = torch.get_num_threads();
        object one, all;
        try
        {
            torch.set_num_threads(1);
            one = Record(Program.Run(args));
        }
        finally { torch.set_num_threads(threads); }
        all = Record(Program.Run(args));
        var json = (object o) => System.Text.Json.JsonSerializer.Serialize(o);
        Assert.Equal(json(one), json(all));
        Snapshot.Match(all, perEngine: true);
    }

    [Fact]
    public void A_quick_run_learns()
    {
        var r = Program.Run(new Args { Steps = 120, LambdaTableRollouts = 0, Seed = 1, Out = TempOut("learns") });
        // Measured (seed 1): sampled accuracy 0.240 → 0.434 (+19 points), KL 0.76 nats, explained variance ≈ 0 over the
        // first 10 steps (the critic's head starts at zero) and 0.05 over the last 50. The bars are about half of that.
        Assert.True(r.Summary.Final - r.Summary.Base >= 0.10, $"accuracy {r.Summary.Base} → {r.Summary.Final}: it did not learn");
        Assert.True(r.Summary.Kl > 0.1, $"KL to the base {r.Summary.Kl}: the policy did not move");
        var ev = r.Log.Column("explained_var");
        Assert.True(ev.TakeLast(50).Average() > 0.02, $"the critic explains no variance (last 50 steps: {ev.TakeLast(50).Average()})");
    }
}
