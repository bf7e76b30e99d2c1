using TorchSharp;
using Ppo;
using static TorchSharp.torch;
using static MinRL.Chapters.Tests.Expect;

namespace MinRL.Chapters.Tests;

/// <summary>Chapter 4's pure functions pinned to known values: the clipped and the penalised surrogate (with their
/// gradients), the KL estimators, the clip fraction, the value loss with and without its clip, the adaptive-β rule,
/// GAE (the same vectors as chapter 2's), advantage normalisation, explained variance and the minibatch split.</summary>
public class PpoTests
{
    static Tensor T(double[] values, params long[] shape) => tensor(values, shape);

    // ------------------------------------------------------------------ the clipped surrogate

    [Fact]
    public void Clipped_surrogate_matches_the_issue_batch_and_pytorch()
    {
        // The issue's hand-made batch: log-ratios [0.3, −0.3, 0, 0.1], advantages [1, −1, 1, −1], ε = 0.2. By hand:
        //   r = e^0.3 = 1.3499, Â = 1:   min(1.3499, 1.2)·1           → loss −1.2   (clipped: the token already gained ε)
        //   r = e^−0.3 = 0.7408, Â = −1: min(−0.7408, −0.8)            → loss 0.8    (clipped: it already lost ε)
        //   r = 1, Â = 1:                                              → loss −1
        //   r = e^0.1 = 1.1052, Â = −1:  min(−1.1052, −1.1052)         → loss 1.105171 (inside the range: unclipped)
        // Exact values and the gradient: tests/reference/ppo_known_values.py, case 1 (PyTorch 1.13, CleanRL's formula).
        var logRatio = T([0.3, -0.3, 0.0, 0.1], 4).requires_grad_();
        var adv = T([1, -1, 1, -1], 4);
        var perSample = PPO.ClippedSurrogate(logRatio, adv, 0.2);
        Close([-1.2, 0.8, -1.0, 1.1051709180756477], perSample, 1e-15, "per-sample loss");
        Close([-1.2, 0.8, -1.0, 1.105171], perSample, 5e-7, "issue's rounding");

        var loss = PPO.PolicyLoss(logRatio, adv, ones(4, dtype: ScalarType.Float64), 0.2);
        Assert.Equal(-0.07370727048108805, loss.item<double>(), 1e-15);
        Assert.Equal(-0.073707, loss.item<double>(), 5e-7);
        loss.backward();
        // The two clipped samples get exactly no gradient; the others −Â·r/4.
        Close([0.0, 0.0, -0.25, 0.27629272951891193], logRatio.grad!, 1e-15, "∂loss/∂logRatio");

        var (k1, k3) = PPO.ApproxKl(logRatio, ones(4));
        Assert.Equal(-0.025, k1, 1e-15);
        Assert.Equal(0.02396198658334219, k3, 1e-15);
        Assert.Equal(0.023962, k3, 5e-7);
        Assert.Equal(0.5, PPO.ClipFraction(logRatio, ones(4), 0.2));
    }

    [Fact]
    public void Clipped_surrogate_on_a_masked_minibatch_with_normalised_advantages_matches_pytorch()
    {
        // tests/reference/ppo_known_values.py, case 2: a (2, 3) minibatch whose last token is padding (log-ratio 9 and
        // advantage 7 there must not count), advantages normalised over the 5 real tokens, then the masked mean.
        var logRatio = T([0.25, -0.05, 0.4, -0.35, 0.1, 9.0], 2, 3).requires_grad_();
        var adv = T([0.5, -1.0, 2.0, -0.3, 1.5, 7.0], 2, 3);
        var mask = T([1, 1, 1, 1, 1, 0], 2, 3);
        var normalised = PPO.NormalizeAdvantages(adv, mask);
        Close([-0.0323064256214612, -1.2437973864262553, 1.1791845351833328, -0.6784349380506847, 0.7753542149150682, 0.0], normalised, 1e-13);
        var loss = PPO.PolicyLoss(logRatio, normalised, mask, 0.2);
        Assert.Equal(-0.10091069552098661, loss.item<double>(), 1e-13);
        loss.backward();
        Close([0.008296454324057649, 0.2366273344171478, 0.0, 0.0, -0.17137978590630182, 0.0], logRatio.grad!, 1e-13, "∂loss/∂logRatio");
        var (k1, k3) = PPO.ApproxKl(logRatio, mask);
        Assert.Equal(-0.07, k1, 1e-15);
        Assert.Equal(0.03738770932481737, k3, 1e-15);
        Assert.Equal(0.6, PPO.ClipFraction(logRatio, mask, 0.2), 1e-15);
    }

    [Fact]
    public void At_ratio_one_the_clipped_loss_has_the_policy_gradient()
    {
        // Before the first step of an update r = 1 everywhere, and ∂L^CLIP/∂logRatio = −Â/n: one PPO minibatch step is a
        // plain policy-gradient step (the header's §1). The loss's value there is −mean(Â).
        var adv = T([0.3, -1.7, 2.2, 0.05, -0.9], 5);
        var logRatio = zeros(5, dtype: ScalarType.Float64).requires_grad_();
        var loss = PPO.PolicyLoss(logRatio, adv, ones(5), 0.2);
        loss.backward();
        Close([-0.06, 0.34, -0.44, -0.01, 0.18], logRatio.grad!, 1e-15);
        Assert.Equal(-(0.3 - 1.7 + 2.2 + 0.05 - 0.9) / 5, loss.item<double>(), 1e-15);
    }

    [Fact]
    public void Clipped_surrogate_is_a_pessimistic_bound_of_the_unclipped_one()
    {
        // L^CLIP ≤ L^CPI for every r and Â, so the loss (its negative) is ≥ −r·Â; equal when r is inside [1 − ε, 1 + ε].
        var rng = new Random(7);
        var lr = Enumerable.Range(0, 400).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
        var a = Enumerable.Range(0, 400).Select(_ => rng.NextDouble() * 4 - 2).ToArray();
        var loss = PPO.ClippedSurrogate(T(lr, 400), T(a, 400), 0.2).data<double>().ToArray();
        for (int i = 0; i < 400; i++)
        {
            double cpi = -Math.Exp(lr[i]) * a[i];
            Assert.True(loss[i] >= cpi - 1e-15, $"sample {i}: clipped loss {loss[i]} below the unclipped {cpi}");
            if (Math.Abs(Math.Exp(lr[i]) - 1) <= 0.2) Assert.Equal(cpi, loss[i], 1e-15);
        }
    }

    // ------------------------------------------------------------------ the penalty variant

    [Fact]
    public void Exact_kl_and_the_penalty_loss_match_pytorch()
    {
        // tests/reference/ppo_known_values.py, case 4: torch.distributions.kl_divergence of two categoricals per state,
        // and −r·Â + β·KL averaged over 2 states (β = 0.5), with its gradient wrt the new logits.
        var oldLogits = T([1.0, 0.0, -1.0, 0.5, 0.5, 2.0], 1, 2, 3);
        var newLogits = T([1.2, -0.3, -0.5, 0.0, 1.0, 2.5], 1, 2, 3).requires_grad_();
        var oldLp = oldLogits.log_softmax(-1);
        var newLp = newLogits.log_softmax(-1);
        var kl = PPO.ExactKl(oldLp, newLp);
        Close([0.02836536894660381, 0.051667537387704424], kl, 1e-15, "KL");
        var actions = tensor(new long[] { 2, 1 }, [1, 2, 1]);
        var logRatio = newLp.gather(-1, actions).squeeze(-1) - oldLp.gather(-1, actions).squeeze(-1);
        Close([0.3669896946296811, 0.10261323559418156], logRatio, 1e-15, "logRatio");
        var loss = PPO.PenaltyLoss(logRatio, T([0.7, -1.3], 1, 2), kl, ones(1, 2), beta: 0.5);
        Assert.Equal(0.23506495954771478, loss.item<double>(), 1e-15);
        loss.backward();
        Close([0.3708762133163147, 0.05868038135864573, -0.42955659467496043, -0.06814364329306304, 0.6012816334040689, -0.5331379901110058],
            newLogits.grad!, 1e-14, "∂loss/∂logits");
        // KL of a distribution with itself: 0.
        Close([0, 0], PPO.ExactKl(oldLp, oldLp), 0);
    }

    [Theory]
    // Schulman et al. 2017, §4, with d_targ = 0.01: below 0.01/1.5 = 0.00667 halve β, above 1.5·0.01 = 0.015 double it.
    [InlineData(1.0, 0.005, 0.5)]
    [InlineData(1.0, 0.0, 0.5)]
    [InlineData(1.0, 0.02, 2.0)]
    [InlineData(1.0, 0.01, 1.0)]
    [InlineData(1.0, 0.007, 1.0)]       // just inside the band
    [InlineData(1.0, 0.0149, 1.0)]
    [InlineData(1.0, 0.015, 1.0)]       // the rule is strict: d = 1.5·d_targ keeps β
    [InlineData(0.3, 0.5, 0.6)]
    [InlineData(0.3, 1e-6, 0.15)]
    public void Adaptive_beta_follows_the_papers_rule(double beta, double d, double expected) =>
        Assert.Equal(expected, PPO.AdaptBeta(beta, d, dTarget: 0.01), 1e-15);

    [Fact]
    public void Adaptive_beta_over_a_sequence_of_updates()
    {
        // β = 1, d_targ = 0.01, measured d per update: 0.001 (halve), 0.001 (halve), 0.03 (double), 0.012 (keep), 0.1 (double).
        double beta = 1;
        var trace = new List<double>();
        foreach (double d in new[] { 0.001, 0.001, 0.03, 0.012, 0.1 }) trace.Add(beta = PPO.AdaptBeta(beta, d, 0.01));
        Assert.Equal([0.5, 0.25, 0.5, 0.5, 1.0], trace);
    }

    // ------------------------------------------------------------------ the value loss

    [Fact]
    public void Value_loss_with_and_without_the_clip_matches_pytorch()
    {
        // tests/reference/ppo_known_values.py, case 3 (CleanRL's clip_vloss branch, ε = 0.2). Token 0: V moved 0.2 → 0.5
        // towards G = 1, past the clip; the clipped value 0.4 has the larger error (0.36 > 0.25), so the max keeps it and
        // the gradient is 0 (the value may not move further from V_old on this batch). Token 2 likewise. The last token is
        // padding (V = 5 there must not count).
        var v = T([0.5, 0.1, 0.9, 0.3, -0.4, 5.0], 2, 3).requires_grad_();
        var old = T([0.2, 0.2, 0.6, 0.3, 0.0, 0.0], 2, 3);
        var g = T([1.0, 0.0, 1.0, 0.0, 0.5, 0.0], 2, 3);
        var mask = T([1, 1, 1, 1, 1, 0], 2, 3);
        var clipped = PPO.ValueLoss(v, old, g, mask, clipCoef: 0.2);
        Assert.Equal(0.131, clipped.item<double>(), 1e-15);
        clipped.backward();
        Close([0.0, 0.02, 0.0, 0.06, -0.18, 0.0], v.grad!, 1e-15, "clipped ∂/∂V");

        var v2 = T([0.5, 0.1, 0.9, 0.3, -0.4, 5.0], 2, 3).requires_grad_();
        var plain = PPO.ValueLoss(v2, old, g, mask, clipCoef: null);
        Assert.Equal(0.117, plain.item<double>(), 1e-15);
        plain.backward();
        Close([-0.1, 0.02, -0.02, 0.06, -0.18, 0.0], v2.grad!, 1e-15, "plain ∂/∂V");
    }

    [Fact]
    public void ExplainedVariance_matches_pytorch_and_its_limits()
    {
        // The same case as chapter 2's (tests/reference/actor_critic_gae.py, case 5).
        var m = T([1, 1, 1, 1, 0, 0], 2, 3);
        var g = T([1.0, 0.0, 1.0, 0.5, 0.0, 0.0], 2, 3);
        Assert.Equal(-0.11636363636363645, PPO.ExplainedVariance(T([0.2, 0.4, 0.9, 0.1, 5.0, 5.0], 2, 3), g, m), 12);
        Assert.Equal(1.0, PPO.ExplainedVariance(g + 7 * (1 - m), g, m), 12);
        Assert.Equal(0.0, PPO.ExplainedVariance(full(new long[] { 2, 3 }, 0.625, ScalarType.Float64), g, m), 12);
        Assert.True(double.IsNaN(PPO.ExplainedVariance(g, ones(2, 3, dtype: ScalarType.Float64), m)));
    }

    // ------------------------------------------------------------------ GAE: chapter 2's vectors

    [Fact]
    public void Gae_of_a_terminal_episode_matches_the_issue_vector()
    {
        // λ = 0.7, γ = 0.9, values [1, 0.5, 3], rewards [0, −1.5, 2], terminal after the third step.
        // δ = [0 + 0.9·0.5 − 1, −1.5 + 0.9·3 − 0.5, 2 − 3] = [−0.55, 0.7, −1]; Â_2 = −1, Â_1 = 0.7 − 0.63 = 0.07,
        // Â_0 = −0.55 + 0.63·0.07 = −0.5059.
        var (adv, ret) = PPO.Gae(T([0, -1.5, 2], 1, 3), T([1, 0.5, 3], 1, 3), T([1, 1, 1], 1, 3), gamma: 0.9, lambda: 0.7);
        Close([-0.5059, 0.07, -1], adv, 1e-12, "advantages");
        Close([0.4941, 0.57, 2], ret, 1e-12, "returns");
    }

    [Theory]
    // rlax (google-deepmind/rlax, multistep_test.py, TruncatedGeneralizedAdvantageEstimationTest) row 1, γ = 0.99, a
    // bootstrap value −1 after the last step; exact values from tests/reference/actor_critic_gae.py (as in chapter 2).
    [InlineData(1.0, new[] { -1.4511880549, -4.45574551, 2.539651, 0.5249, -0.49 })]
    [InlineData(0.7, new[] { -0.67697949741049, -5.24816666293, 2.48460799, 0.67043, -0.49 })]
    [InlineData(0.4, new[] { 0.56731873101056, -6.04212441664, 2.34312016, 0.81596, -0.49 })]
    public void Gae_of_a_cut_off_rollout_bootstraps_as_rlax(double lambda, double[] expected)
    {
        var (adv, _) = PPO.Gae(T([0, 0, 1, 0, -0.5], 1, 5), T([1, 4, -3, -2, -1], 1, 5), T([1, 1, 1, 1, 1], 1, 5),
            gamma: 0.99, lambda, lastValues: T([-1], 1));
        Close(expected, adv, 1e-12);
    }

    [Fact]
    public void Gae_matches_pytorch_on_a_batch_with_a_cut_off_row_and_a_terminal_row()
    {
        // Chapter 2's case (tests/reference/actor_critic_gae.py, case 1; γ 0.9, λ 0.8): row 0 is bootstrapped from 0.25,
        // row 1 ends at t = 1 so its values after that (and its bootstrap 9.0) must be ignored.
        var (adv, ret) = PPO.Gae(T([0, 0, 0, 1, 0, 0.7, 0, 0], 2, 4), T([0.5, 0.2, -0.1, 0.4, 0.3, 0.6, 0, 0], 2, 4),
            T([1, 1, 1, 1, 1, 1, 0, 0], 2, 4), gamma: 0.9, lambda: 0.8, lastValues: T([0.25, 9.0], 2));
        Close([0.0175936, 0.46888, 1.054, 0.825, 0.312, 0.1, 0, 0], adv, 1e-12, "advantages");
        Close([0.5175936, 0.66888, 0.954, 1.225, 0.612, 0.7, 0, 0], ret, 1e-12, "returns");
    }

    [Fact]
    public void Gae_with_gamma_1_and_a_terminal_reward_is_the_reward_minus_the_value_at_lambda_1()
    {
        // The chapter's setting: γ = 1, one reward at the last real token. At λ = 1, Â_t = R − V(s_t) on every real token.
        var rewards = PPO.TokenRewards(T([1, 0], 2), tensor(new long[] { 3, 2 }, [2]), 4);
        Close([0, 0, 1, 0, 0, 0, 0, 0], rewards, 0, "token rewards");
        var values = T([0.2, 0.5, 0.9, 7, 0.4, 0.1, 7, 7], 2, 4);
        var mask = T([1, 1, 1, 0, 1, 1, 0, 0], 2, 4);
        var (adv, ret) = PPO.Gae(rewards, values, mask, gamma: 1, lambda: 1);
        Close([0.8, 0.5, 0.1, 0, -0.4, -0.1, 0, 0], adv, 1e-12);
        Close([1, 1, 1, 0, 0, 0, 0, 0], ret, 1e-12);
    }

    [Fact]
    public void NormalizeAdvantages_matches_pytorch_over_the_real_tokens()
    {
        // Chapter 2's case (tests/reference/actor_critic_gae.py, case 3).
        var n = PPO.NormalizeAdvantages(T([1, -2, 0.5, 3, 9, 9], 2, 3), T([1, 1, 1, 1, 0, 0], 2, 3));
        Close([0.18234920126975, -1.276444408888248, -0.060783067089917, 1.154878274708415, 0, 0], n, 1e-12);
    }
}

/// <summary>Chapter 4 end to end: short seeded runs are bit-stable (snapshot, 1 thread vs all), the early stop and the
/// β rule act in a run, and a quick run learns.</summary>
[Collection("chapters")]
public class PpoRunTests
{
    static string TempOut(string name) => Path.Combine(Path.GetTempPath(), "minrl-tests", "04-ppo", name + "-" + Environment.ProcessId);

    /// <summary>Everything a short run reports, minus timings.</summary>
    static object Record(Ppo.Program.RunResult r) => new
    {
        base_accuracy = r.Summary.Base,
        final_accuracy = r.Summary.Final,
        kl = r.Summary.Kl,
        // Sparse columns (eval_accuracy) are NaN on the rows that did not log them: null in JSON.
        metrics = r.Log.Columns.Where(c => c != "step_ms")
            .ToDictionary(c => c, c => r.Log.Column(c).Select(x => double.IsNaN(x) ? (double?)null : x).ToArray()),
    };

    static Args Short(string name, Variant variant) => new()
    {
        Steps = 3, BatchSize = 16, NumMinibatches = 2, UpdateEpochs = 2, EvalEvery = 0, Variant = variant, Seed = 5, Out = TempOut(name),
    };

    [Fact]
    public void A_short_seeded_run_of_each_variant_matches_its_snapshot_with_1_thread_and_with_all()
    {
        int threads = get_num_threads();
        object one, all;
        try
        {
            set_num_threads(1);
            one = new { clip = Record(Ppo.Program.Run(Short("clip", Variant.Clip))), penalty = Record(Ppo.Program.Run(Short("penalty", Variant.Penalty))) };
        }
        finally { set_num_threads(threads); }
        var clip = Ppo.Program.Run(Short("clip", Variant.Clip));
        var penalty = Ppo.Program.Run(Short("penalty", Variant.Penalty));
        all = new { clip = Record(clip), penalty = Record(penalty) };
        var json = (object o) => System.Text.Json.JsonSerializer.Serialize(o);
        Assert.Equal(json(one), json(all));
        Snapshot.Match(all, perEngine: true);

        // The first minibatch of every update is measured at r = 1 (π_θ = π_old), the rest after steps: the KL estimates
        // are positive but small, and the β rule moved β by a factor of 2 each update (the KL of a 16-completion
        // update is far from d_targ).
        Assert.All(clip.Log.Column("approx_kl_k3"), k => Assert.InRange(k, 1e-9, 0.5));
        var beta = penalty.Log.Column("beta");
        Assert.Equal(1.0, beta[0]);
        for (int i = 1; i < beta.Length; i++) Assert.Contains(beta[i] / beta[i - 1], new[] { 0.5, 1.0, 2.0 });
    }

    [Fact]
    public void Target_kl_stops_the_epochs_early()
    {
        // With a tiny target every update stops after its first epoch (the epoch's mean k3 is > 0 once one step was taken).
        var r = Ppo.Program.Run(Short("target-kl", Variant.Clip) with { UpdateEpochs = 4, TargetKl = 1e-9 });
        Assert.All(r.Log.Column("epochs"), e => Assert.Equal(1.0, e));
        // Without it, all 4 run.
        var full = Ppo.Program.Run(Short("no-target-kl", Variant.Clip) with { Steps = 1, UpdateEpochs = 4 });
        Assert.All(full.Log.Column("epochs"), e => Assert.Equal(4.0, e));
    }

    [Fact]
    public void A_quick_run_learns()
    {
        var r = Ppo.Program.Run(new Args { Steps = 40, EvalEvery = 0, Seed = 1, Out = TempOut("learns") });
        // Measured (seed 1, `--steps 40 --eval-every 0`): sampled accuracy 0.252 → 0.443 (+19 points), KL 0.50 nats, the
        // value model's explained variance 0.06 over the last 10 updates (0 at the first: its head starts at zero), mean
        // clip fraction 0.11. The bars are about half of that.
        Assert.True(r.Summary.Final - r.Summary.Base >= 0.10, $"accuracy {r.Summary.Base} → {r.Summary.Final}: it did not learn");
        Assert.True(r.Summary.Kl > 0.2, $"KL to the base {r.Summary.Kl}: the policy did not move");
        var ev = r.Log.Column("explained_var");
        Assert.True(ev.TakeLast(10).Average() > 0.03, $"the value model explains no variance (last 10 updates: {ev.TakeLast(10).Average()})");
        var clipfrac = r.Log.Column("clipfrac");
        Assert.True(clipfrac.Average() is > 0.01 and < 0.5, $"clip fraction {clipfrac.Average()}: the clip is never or always active");
    }
}
