using TorchSharp;
using Rlhf;
using static TorchSharp.torch;
using static MinRL.Chapters.Tests.Expect;

namespace MinRL.Chapters.Tests;

/// <summary>Chapter 6's pure functions pinned to known values: the Bradley–Terry loss, the per-token KL-penalised reward
/// (EOS position, missing-EOS penalty), GAE on it, whitening, PPO's clipped surrogate, the clipped value loss and the
/// adaptive KL controller. Numbers from tests/reference/rlhf_known_values.py (PyTorch, float64) unless said otherwise.</summary>
public class RlhfTests
{
    static Tensor T(double[] values, params long[] shape) => tensor(values, shape);

    [Fact]
    public void The_reward_penalty_estimators_are_k1_k2_k3_and_only_k1_can_be_a_bonus()
    {
        // log π_θ = (−1, −2), log π_ref = (−1.5, −1): x = log π_ref − log π_θ = (−0.5, 1).
        var (logp, refLogp) = (T([-1.0, -2.0], 2), T([-1.5, -1.0], 2));
        Close([0.5, -1.0], Kl.Estimate(KlEstimator.K1, logp, refLogp), 1e-15, "k1 = −x");
        Close([0.125, 0.5], Kl.Estimate(KlEstimator.K2, logp, refLogp), 1e-15, "k2 = x²/2");
        Close([Math.Exp(-0.5) + 0.5 - 1, Math.E - 2], Kl.Estimate(KlEstimator.K3, logp, refLogp), 1e-15,
            "k3 = eˣ − x − 1");
    }

    // ------------------------------------------------------------------ stage 2: the reward model's loss

    [Fact]
    public void BradleyTerryLoss_matches_the_issue_vector()
    {
        // r_c = [1, 0.5, −0.2], r_r = [0, 0.7, −1.2]: −mean log σ([1, −0.2, 1]) = 0.474887 (the issue; PyTorch 0.4748874148060125).
        var loss = RlhfMath.BradleyTerryLoss(T([1, 0.5, -0.2], 3), T([0, 0.7, -1.2], 3));
        Assert.Equal(0.4748874148060125, loss.item<double>(), 14);
    }

    [Fact]
    public void BradleyTerryLoss_gradient_is_sigma_of_minus_the_margin_and_stays_finite_far_out()
    {
        // ∂L/∂r_c = −σ(−(r_c − r_r))/N = −(1 − P(c ≻ r))/N: the gradient pushes hardest on pairs the model gets wrong.
        var rc = T([2.0, -1.0], 2).requires_grad_();
        var rr = T([0.0, 0.0], 2).requires_grad_();
        RlhfMath.BradleyTerryLoss(rc, rr).backward();
        Close([-0.5 / (1 + Math.Exp(2)), -0.5 / (1 + Math.Exp(-1))], rc.grad!, 1e-14, "∂/∂r_c");
        Close([0.5 / (1 + Math.Exp(2)), 0.5 / (1 + Math.Exp(-1))], rr.grad!, 1e-14, "∂/∂r_r");
        // A margin of −200: log σ would underflow to −∞ through log(sigmoid(·)); logsigmoid gives 200.
        Assert.Equal(200.0, RlhfMath.BradleyTerryLoss(T([-100.0], 1), T([100.0], 1)).item<double>(), 10);
    }

    // ------------------------------------------------------------------ stage 3: rewards and advantages

    /// <summary>The hand-made case: three completions of width 5.
    /// row 0 "56&lt;eos&gt;": length 3, ends with &lt;eos&gt;, score 0.8 (and garbage KL on its two padding columns);
    /// row 1 "1234." style: 5 tokens and no &lt;eos&gt;, score 0.5 → 0.5 − 1 (missing-EOS penalty);
    /// row 2 "123.&lt;eos&gt;": length 5 with its &lt;eos&gt; in the last column, score −0.3, no penalty.</summary>
    static (Tensor scores, Tensor kl, Tensor mask, Tensor lengths, Tensor hasEos) HandMadeCase()
    {
        var kl = T([0.5, -0.2, 0.1, 0.7, 0.3,
                    0.3, 0.0, -0.4, 0.2, 1.0,
                    0.0, 0.0, 0.0, 0.0, 0.0], 3, 5);
        var lengths = tensor(new long[] { 3, 5, 5 }, [3]);
        var mask = T([1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 3, 5);
        var hasEos = tensor(new[] { true, false, true }, [3]);
        return (T([0.8, 0.5, -0.3], 3), kl, mask, lengths, hasEos);
    }

    [Fact]
    public void TokenRewards_spreads_the_kl_penalty_and_pays_the_score_at_the_eos_with_the_missing_eos_penalty()
    {
        var (scores, kl, mask, lengths, hasEos) = HandMadeCase();
        var r = RlhfMath.TokenRewards(scores, kl, mask, lengths, hasEos, beta: 0.1, missingEosPenalty: 1.0);
        // By hand, r_t = −0.1·kl_t, plus the score at t = length − 1:
        //   row 0: [−0.05, 0.02, −0.01 + 0.8, 0, 0]             (the padding's KL is ignored)
        //   row 1: [−0.03, 0, 0.04, −0.02, −0.1 + (0.5 − 1)]    (no <eos>: the score is lowered by the penalty)
        //   row 2: [0, 0, 0, 0, −0.3]                           (its <eos> is the 5th token: no penalty)
        Close([-0.05, 0.02, 0.79, 0, 0,
               -0.03, 0, 0.04, -0.02, -0.6,
               0, 0, 0, 0, -0.3], r, 1e-15, "r_t");
        // Summed over a completion: score − β Σ_t kl_t − penalty, the objective's integrand.
        Close([0.8 - 0.1 * 0.4, 0.5 - 0.1 * 1.1 - 1.0, -0.3], r.sum(1), 1e-15, "Σ_t r_t");
    }

    [Fact]
    public void EndsWithEos_reads_the_last_real_token()
    {
        int eos = CharTokenizer.Instance.EosId, pad = CharTokenizer.Instance.PadId, five = CharTokenizer.DigitId(5);
        var completions = tensor(new long[] { five, five, eos, pad, pad,  five, five, five, five, five,  five, five, five, five, eos }, [3, 5]);
        var (_, lengths) = Rollouts.CompletionMask(completions);
        Assert.Equal([true, false, true], RlhfMath.EndsWithEos(completions, lengths).data<bool>().ToArray());
    }

    [Fact]
    public void Gae_on_the_hand_made_rewards_matches_pytorch()
    {
        // The rewards above, γ = 1, λ = 0.95, values with garbage (5.0) under row 0's padding.
        var (scores, kl, mask, lengths, hasEos) = HandMadeCase();
        var r = RlhfMath.TokenRewards(scores, kl, mask, lengths, hasEos, 0.1, 1.0);
        var v = T([0.2, 0.1, -0.1, 5.0, 5.0, 0.0, 0.3, 0.2, -0.2, 0.4, 0.1, 0.1, 0.1, 0.1, 0.1], 3, 5);
        var (adv, ret) = RlhfMath.Gae(r, v, mask, gamma: 1.0, lambda: 0.95);
        Close([0.4822249999999999, 0.6655, 0.89, 0, 0,
               -0.46712874999999976, -0.7759249999999998, -0.7114999999999998, -0.3699999999999999, -1.0,
               -0.32580249999999994, -0.34295, -0.361, -0.38, -0.4], adv, 1e-14, "Â");
        Close([0.6822249999999999, 0.7655, 0.79, 0, 0,
               -0.46712874999999976, -0.47592499999999976, -0.5114999999999998, -0.5699999999999998, -0.6,
               -0.22580249999999993, -0.24294999999999997, -0.261, -0.28, -0.30000000000000004], ret, 1e-14, "G^λ");
    }

    [Fact]
    public void Gae_matches_chapter_2s_hand_vector()
    {
        // Chapter 2's (and the issue's) vector: λ = 0.7, γ = 0.9, V = [1, 0.5, 3], r = [0, −1.5, 2], terminal after the third
        // step. δ = [−0.55, 0.7, −1]; Â_2 = −1, Â_1 = 0.7 + 0.63·(−1) = 0.07, Â_0 = −0.55 + 0.63·0.07 = −0.5059.
        var (adv, ret) = RlhfMath.Gae(T([0, -1.5, 2], 1, 3), T([1, 0.5, 3], 1, 3), T([1, 1, 1], 1, 3), gamma: 0.9, lambda: 0.7);
        Close([-0.5059, 0.07, -1], adv, 1e-12, "Â");
        Close([0.4941, 0.57, 2], ret, 1e-12, "G^λ");
    }

    [Fact]
    public void Gae_with_lambda_1_and_gamma_1_is_the_return_to_go_minus_the_value()
    {
        var (scores, kl, mask, lengths, hasEos) = HandMadeCase();
        var r = RlhfMath.TokenRewards(scores, kl, mask, lengths, hasEos, 0.1, 1.0);
        var v = rand(3, 5, dtype: ScalarType.Float64);
        var (adv, _) = RlhfMath.Gae(r, v, mask, 1.0, 1.0);
        // Σ_{k ≥ t} r_k: a reverse cumulative sum, by hand from the rewards above.
        var toGo = T([0.76, 0.81, 0.79, 0, 0,
                      -0.61, -0.58, -0.58, -0.62, -0.6,
                      -0.3, -0.3, -0.3, -0.3, -0.3], 3, 5);
        Close(((toGo - v) * mask).data<double>().ToArray(), adv, 1e-14, "λ = 1");
    }

    [Fact]
    public void NormalizeAdvantages_matches_pytorch_over_the_real_tokens()
    {
        // CleanRL's norm_adv, (A − mean) / (std + 1e-8), unbiased std over the 4 real tokens; 0 on padding
        // (tests/reference/actor_critic_gae.py, case 3; chapters 2 and 4 pin the same numbers).
        var w = RlhfMath.NormalizeAdvantages(T([1, -2, 0.5, 3, 9, 9], 2, 3), T([1, 1, 1, 1, 0, 0], 2, 3));
        Close([0.18234920126975, -1.276444408888248, -0.060783067089917, 1.154878274708415, 0, 0], w, 1e-12);
    }

    // ------------------------------------------------------------------ stage 3: the PPO losses

    [Fact]
    public void ClippedSurrogate_matches_the_issue_vector()
    {
        // log-ratios [0.3, −0.3, 0, 0.1], advantages [1, −1, 1, −1], ε = 0.2 → [−1.2, 0.8, −1.0, 1.105171], mean −0.073707.
        var logRatio = T([0.3, -0.3, 0, 0.1], 4).requires_grad_();
        var adv = T([1, -1, 1, -1], 4);
        var per = RlhfMath.ClippedSurrogate(logRatio, adv, 0.2);
        Close([-1.2, 0.8, -1.0, 1.1051709180756477], per, 1e-15, "per sample");
        var loss = RlhfMath.PolicyLoss(logRatio, adv, ones(4, dtype: ScalarType.Float64), 0.2);
        Assert.Equal(-0.07370727048108805, loss.item<double>(), 15);
        // Clipped samples pass no gradient; the others pass −Â ρ / N (PyTorch autograd: [0, 0, −0.25, 0.276293]).
        loss.backward();
        Close([0, 0, -0.25, 0.27629272951891193], logRatio.grad!, 1e-15, "∂L/∂log ρ");
    }

    [Fact]
    public void PolicyLoss_averages_over_real_tokens_only_and_passes_no_gradient_to_the_advantages()
    {
        var logRatio = T([0.3, -0.3, 0, 0.1, 5, 5], 2, 3).requires_grad_();
        var adv = T([1, -1, 1, -1, 9, 9], 2, 3).requires_grad_();
        var loss = RlhfMath.PolicyLoss(logRatio, adv, T([1, 1, 1, 1, 0, 0], 2, 3), 0.2);
        Assert.Equal(-0.07370727048108805, loss.item<double>(), 15);
        loss.backward();
        Assert.Null(adv.grad);
        Close([0, 0, -0.25, 0.27629272951891193, 0, 0], logRatio.grad!, 1e-15);
    }

    [Fact]
    public void ValueLoss_clips_around_the_old_values_as_baselines_and_trl()
    {
        // V = [1, 0.5, −0.2, 2], V_old = [0.8, 0.9, 0, 1], G = [1.5, 0, 0.3, 0.5], ε_v = 0.2:
        // unclipped (V − G)² = [0.25, 0.25, 0.25, 2.25]; clipped V = [1.0, 0.7, −0.2, 1.2] → [0.25, 0.49, 0.25, 0.49];
        // ½ mean of the max = ½ · 3.24/4 = 0.405. Unclipped: ½ · 3/4 = 0.375.
        var v = T([1.0, 0.5, -0.2, 2.0], 4);
        var old = T([0.8, 0.9, 0.0, 1.0], 4);
        var g = T([1.5, 0.0, 0.3, 0.5], 4);
        var m = ones(4, dtype: ScalarType.Float64);
        Assert.Equal(0.405, RlhfMath.ValueLoss(v, old, g, m, 0.2).item<double>(), 14);
        Assert.Equal(0.375, RlhfMath.ValueLoss(v, old, g, m, 0.0).item<double>(), 14);
    }

    [Fact]
    public void StateKl_matches_pytorch_kl_div_and_is_0_for_equal_distributions()
    {
        // F.kl_div(log q, log p, reduction="none", log_target=True).sum(-1) = Σ p (log p − log q).
        var logits = T([1.0, 2.0, 0.5, 0.0, 0.0, 0.0], 2, 3);
        var refLogits = T([0.5, 1.0, 1.0, 1.0, 0.0, -1.0], 2, 3);
        Close([0.16767278027888147, 0.3089936757762706], RlhfMath.StateKl(logits, refLogits), 1e-15);
        Close([0, 0], RlhfMath.StateKl(logits, logits + 3.0), 1e-15, "shifted logits are the same distribution");
    }

    // ------------------------------------------------------------------ the adaptive KL controller

    [Theory]
    [InlineData(2.0, 0.100128)]                 // KL twice the target: the error clips at +0.2, β · (1 + 0.2 · 64/10000)
    [InlineData(0.5, 0.09987200000000002)]      // half the target: clips at −0.2
    [InlineData(1.1, 0.100064)]                 // 10% over: e = 0.1, inside the clip
    [InlineData(1.0, 0.1)]                      // on target: β unchanged
    public void AdaptiveBeta_matches_lm_human_preferences(double kl, double expected)
    {
        // openai/lm-human-preferences AdaptiveKLController.update(current, n_steps), β 0.1, target 1, horizon 10,000, 64 samples.
        Assert.Equal(expected, RlhfMath.AdaptiveBeta(0.1, kl, klTarget: 1.0, nSteps: 64, horizon: 10_000), 15);
    }

    [Fact]
    public void AdaptiveBeta_over_three_batches_matches_lm_human_preferences()
    {
        // Ziegler et al.'s own setting: β₀ 0.2, target 6 nats, horizon 10,000, batches of 512; KL 8, 7, 3 in turn.
        double beta = 0.2;
        foreach (double kl in new[] { 8.0, 7.0, 3.0 }) beta = RlhfMath.AdaptiveBeta(beta, kl, 6.0, 512, 10_000);
        Assert.Equal(0.201685516189696, beta, 14);
    }
}

/// <summary>Chapter 6 end to end: a short seeded run is bit-stable (snapshot, any thread count), and a quick run learns.</summary>
[Collection("chapters")]
public class RlhfRunTests
{
    static string TempOut(string name) => Path.Combine(Path.GetTempPath(), "minrl-tests", "06-rlhf", name + "-" + Environment.ProcessId);

    /// <summary>Everything a short run reports, minus timings.</summary>
    static object Record(Program.RunResult r)
    {
        object Stage(Program.StageResult? s) => s is null ? "none" : new
        {
            s.Beta,
            s.FinalBeta,
            curve = s.Curve,
            // NaN marks the iterations without a held-out evaluation (JSON has no NaN: null).
            metrics = s.Log.Columns.Where(c => c != "step_ms").ToDictionary(c => c, c => s.Log.Column(c).Select(v => double.IsNaN(v) ? (double?)null : v)),
        };
        return new
        {
            reward_model = r.RewardModel,
            rm_loss = r.RmLog.Column("rm_loss"),
            main = Stage(r.Main),
            small = Stage(r.Small),
            gold = new[] { r.Summary.Base, r.Summary.Final },
            kl = r.Summary.Kl,
        };
    }

    [Fact]
    public void A_short_seeded_run_matches_its_snapshot_with_1_thread_and_with_all()
    {
        var args = new Args
        {
            RmTrainProblems = 96, RmSteps = 4, RmBatchSize = 16, Steps = 2, BatchSize = 16, EvalEvery = 2, AdaptiveKl = true,
            Seed = 5, Out = TempOut("snapshot"),
        };
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
    public void A_quick_run_at_a_moderate_beta_raises_the_gold_score()
    {
        // The default reward model (a weaker one, 120 steps on 2,048 prompts, over-optimised within 20 PPO steps on
        // MinTorch once its pairs were drawn by the shared Epochs sampler: gold 0.420 → 0.464 at step 10, 0.407 at 20).
        var r = Program.Run(new Args { Steps = 20, SmallBeta = 0, Seed = 1, Out = TempOut("learns") });
        // Measured (seed 1, these settings, 2026-12-04): RM style-only accuracy 0.935 (MinTorch) / 0.963 (TorchSharp);
        // proxy −0.07 → 0.76 / −0.06 → 0.96; gold 0.420 → 0.484 (+0.064) / 0.363 → 0.514 (+0.151); '.' share
        // 0.56 → 0.98 / 0.47 → 0.99; KL 1.19 / 0.95 nats. The bars sit below the smaller gain.
        var (b, f) = (r.Main.Base, r.Main.Final);
        Assert.True(r.RewardModel.StyleOnlyAccuracy > 0.85, $"the reward model did not learn the style: style-only pairs {r.RewardModel.StyleOnlyAccuracy}");
        Assert.True(f.Proxy - b.Proxy > 0.3, $"proxy {b.Proxy} → {f.Proxy}: PPO did not raise the reward model's score");
        Assert.True(f.Gold - b.Gold >= 0.045, $"gold {b.Gold} → {f.Gold}: RLHF did not raise the gold score");
        Assert.True(f.Period - b.Period > 0.2, $"'.' share {b.Period} → {f.Period}");
        Assert.True(f.Kl is > 0.1 and < 5, $"KL to the reference {f.Kl}");
    }
}
