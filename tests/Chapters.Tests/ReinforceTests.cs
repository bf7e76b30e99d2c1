using TorchSharp;
using Reinforce;
using static TorchSharp.torch;

namespace MinRL.Chapters.Tests;

/// <summary>Chapter 1 (REINFORCE): the pure functions against known values and exact expectations.</summary>
public class ReinforceTests
{
    // The hand-made batch of tests/reference/reinforce_known_values.py: N = 3 completions of
    // M = 4 tokens over V = 5 tokens, logits from a formula, row 0 ends at its 3rd token, row 2 at its 1st.
    private const int N = 3, M = 4, V = 5;
    private static readonly long[] Actions = [1, 4, 2, 0, 3, 3, 0, 2, 2, 0, 0, 0];
    private static readonly double[] MaskValues = [1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0];

    private static Tensor Logits(Func<int, int, int, double> f, bool requiresGrad)
    {
        var x = new double[N * M * V];
        for (int i = 0; i < N; i++)
            for (int t = 0; t < M; t++)
                for (int v = 0; v < V; v++)
                    x[(i * M + t) * V + v] = f(i, t, v);
        return tensor(x, [N, M, V], requires_grad: requiresGrad);
    }

    private static Tensor TokenLogProbs(Tensor logits) =>
        logits.log_softmax(-1).gather(2, tensor(Actions, [N, M]).unsqueeze(-1)).squeeze(-1);    // (N, M)

    private static Tensor Mask() => tensor(MaskValues, [N, M]);

    [Fact]
    public void Loss_and_its_gradient_match_PyTorch_on_a_hand_made_batch()
    {
        var logits = Logits((i, t, v) => 2.0 * Math.Sin(1 + 7 * i + 3 * t + v), requiresGrad: true);
        var tokenLogp = TokenLogProbs(logits);
        var rewards = tensor(new[] { 1.0, 0.0, 1.0 }, [N]);
        var advantages = PolicyGradient.Advantages(rewards, baseline: 0.4);
        Assert.Equal([0.6, -0.4, 0.6], advantages.data<double>().ToArray(), new Tolerance(1e-15));

        // Expected values: PyTorch 1.13, float64 (reinforce_known_values.py).
        var logp = PolicyGradient.SequenceLogProbs(tokenLogp, Mask());
        Assert.Equal([-3.055382049602479, -7.74845553326184, -3.706535036229699], logp.data<double>().ToArray(), new Tolerance(1e-13));

        var loss = PolicyGradient.Loss(tokenLogp, Mask(), advantages);
        Assert.Equal(0.31925601273152354, loss.item<double>(), 1e-13);

        loss.backward();
        double[] expected =
        [
            0.08130367069800301, -0.10688418419509342, 0.020035169656843956, 0.0033255803669910216, 0.00221976347325547,
            0.003701497556744302, 0.002470681254424047, 0.00961679911563059, 0.0625718609140447, -0.07836083884084363,
            0.05429343193027746, 0.10554596618954552, -0.16672963590069054, 0.004915472294628456, 0.0019747654862390922,
            0.0, 0.0, 0.0, 0.0, 0.0,
            -0.09338544566662003, -0.029437105851350648, -0.004349134196862084, 0.13158609123894277, -0.004414405524110002,
            -0.001315490021574243, -0.0033235843142701026, -0.022522700753133975, 0.06284802041692245, -0.035686245327944136,
            0.05176887445812114, -0.04129554327032201, -0.00632412869485084, -0.0016444137191203622, -0.0025047887738279123,
            -0.0014704485993640242, -0.002239803220656783, 0.11975986639183586, -0.0624429293438054, -0.053606685228009626,
            0.12336568512437475, 0.018892606985405277, -0.19508750317778242, 0.007482768325685076, 0.04534644274231734,
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        var grad = logits.grad!.data<double>().ToArray();
        Assert.Equal(expected, grad, new Tolerance(1e-14));
        // The tokens after each completion's <eos> get exactly no gradient: the mask, not a small weight.
        for (int i = 0; i < N; i++)
            for (int t = 0; t < M; t++)
                if (MaskValues[i * M + t] == 0)
                    for (int v = 0; v < V; v++) Assert.Equal(0.0, grad[(i * M + t) * V + v]);
    }

    [Fact]
    public void Advantages_carry_no_gradient_into_the_loss()
    {
        // A reward (or baseline) computed from the policy's own outputs must act as a constant weight.
        var logits = Logits((i, t, v) => Math.Cos(i + t + 0.5 * v), requiresGrad: true);
        var tokenLogp = TokenLogProbs(logits);
        var advantages = PolicyGradient.SequenceLogProbs(tokenLogp, Mask());     // depends on the logits
        PolicyGradient.Loss(tokenLogp, Mask(), advantages).backward();
        var withDetachedWeights = logits.grad!.data<double>().ToArray();

        var logits2 = Logits((i, t, v) => Math.Cos(i + t + 0.5 * v), requiresGrad: true);
        var tokenLogp2 = TokenLogProbs(logits2);
        var constants = PolicyGradient.SequenceLogProbs(tokenLogp2, Mask()).detach();
        PolicyGradient.Loss(tokenLogp2, Mask(), constants).backward();
        Assert.Equal(logits2.grad!.data<double>().ToArray(), withDetachedWeights);
    }

    /// <summary>
    /// The log-derivative trick and the baseline-invariance argument, checked exactly: for a two-token
    /// autoregressive policy over 3 tokens (a logit table for a_0 and one for a_1 given a_0), the expectation
    /// of the REINFORCE estimator over all 9 completions, Σ_τ π(τ)(R(τ) − b) ∇log π(τ), equals the true
    /// gradient ∇ Σ_τ π(τ) R(τ) — for every baseline b.
    /// </summary>
    [Theory]
    [InlineData(0.0)]
    [InlineData(0.3)]
    [InlineData(0.9)]
    [InlineData(-2.5)]
    public void The_expected_estimator_is_the_true_gradient_for_any_baseline(double b)
    {
        const int K = 3;
        var theta0 = tensor(new[] { 0.2, -0.7, 1.1 }, [K], requires_grad: true);                                 // logits of a_0
        var theta1 = tensor(new[] { 0.5, 0.1, -0.4, -1.2, 0.8, 0.3, 0.0, 0.9, -0.6 }, [K, K], requires_grad: true); // logits of a_1 | a_0
        double[] reward = [1, 0, 0, 0, 1, 0.5, 0, 0.25, 1];                                                     // R(a_0, a_1)
        var first = tensor(Enumerable.Range(0, K * K).Select(k => (long)(k / K)).ToArray(), [K * K]);       // a_0 of each completion
        var second = tensor(Enumerable.Range(0, K * K).Select(k => (long)(k % K)).ToArray(), [K * K]);      // a_1

        Tensor TokenLogp()                                                                                       // (9, 2)
        {
            var lp0 = theta0.log_softmax(0).gather(0, first);                                                    // (9)
            var lp1 = theta1.log_softmax(1).index_select(0, first).gather(1, second.unsqueeze(1)).squeeze(1);     // (9)
            return stack([lp0, lp1], 1);
        }

        // The true gradient of J = Σ_τ π(τ) R(τ).
        var pi = TokenLogp().sum(1).exp();                                                                       // (9): π(τ)
        var J = (pi * tensor(reward, [K * K])).sum();
        var trueGrad = autograd.grad([J], [theta0, theta1]).SelectMany(g => g.data<double>().ToArray()).ToArray();
        Assert.True(trueGrad.Max(Math.Abs) > 0.05);                                                             // a real gradient to match

        // The estimator's expectation: the loss with each completion weighted by N·π(τ) (so that .mean() becomes
        // Σ_τ π(τ) ·), advantages R − b, and a mask of ones.
        var tokenLogp = TokenLogp();
        var weights = (pi.detach() * (K * K)) * PolicyGradient.Advantages(tensor(reward, [K * K]), b);
        var loss = PolicyGradient.Loss(tokenLogp, ones(K * K, 2, float64), weights);
        var estimator = autograd.grad([loss], [theta0, theta1]).SelectMany(g => g.data<double>().ToArray()).Select(x => -x).ToArray();
        Assert.Equal(trueGrad, estimator, new Tolerance(1e-14));
    }

    [Fact]
    public void Rloo_baselines_and_loss_gradient_match_TRLs_formula_in_PyTorch()
    {
        // The hand-made batch of tests/reference/rloo_known_values.py: 3 prompts × k = 3 completions, prompt-major;
        // the third prompt's rewards are all equal.
        const int k = 3, n = 9, m = 2;
        var rewards = tensor(new[] { 1.0, 0.0, 1.0, 0.1, 0.0, 1.1, 1.0, 1.0, 1.0 }, [n]);
        var baselines = PolicyGradient.RlooBaseline(rewards, k);
        // Expected values: PyTorch 1.13, float64, TRL's baseline = (r.sum(0) − r) / (k − 1) on the (k, prompts)
        // layout (rloo_known_values.py).
        Assert.Equal([0.5, 1.0, 0.5, 0.55, 0.6000000000000001, 0.050000000000000044, 1.0, 1.0, 1.0],
            baselines.data<double>().ToArray(), new Tolerance(1e-15));
        var advantages = PolicyGradient.Advantages(rewards, baselines);
        Assert.Equal([0.5, -1.0, 0.5, -0.45000000000000007, -0.6000000000000001, 1.05, 0.0, 0.0, 0.0],
            advantages.data<double>().ToArray(), new Tolerance(1e-15));
        // R_i − b_i = (k/(k−1)) (R_i − R̄): the group-centred reward, rescaled; an all-equal group gets exactly 0.
        var grouped = rewards.view(-1, k);
        var centred = ((grouped - grouped.mean([1], keepdim: true)) * (k / (k - 1.0))).reshape(-1);
        Assert.Equal(centred.data<double>().ToArray(), advantages.data<double>().ToArray(), new Tolerance(1e-15));
        Assert.All(advantages.narrow(0, 6, 3).data<double>().ToArray(), a => Assert.Equal(0.0, a));

        // The REINFORCE loss on token log-probs from a formula, rows 1, 4 and 8 ending after their first token.
        var x = new double[n * m];
        for (int i = 0; i < n; i++)
            for (int t = 0; t < m; t++) x[i * m + t] = -0.3 - 0.1 * i - 0.7 * t;
        var tokenLogp = tensor(x, [n, m], requires_grad: true);
        var maskValues = Enumerable.Repeat(1.0, n * m).ToArray();
        foreach (int i in new[] { 1, 4, 8 }) maskValues[i * m + 1] = 0;
        var loss = PolicyGradient.Loss(tokenLogp, tensor(maskValues, [n, m]), advantages);
        Assert.Equal(0.2488888888888889, loss.item<double>(), 1e-15);
        loss.backward();
        double[] expected =
        [
            -0.05555555555555555, -0.05555555555555555, 0.1111111111111111, 0.0, -0.05555555555555555,
            -0.05555555555555555, 0.05, 0.05, 0.06666666666666668, 0.0, -0.11666666666666667, -0.11666666666666667,
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        Assert.Equal(expected, tokenLogp.grad!.data<double>().ToArray(), new Tolerance(1e-15));
    }

    [Fact]
    public void Update_variance_counts_samples_of_one_prompt_together_and_matches_PyTorch()
    {
        var scores = tensor(new[] { 1.0, -2.0, 0.5, 0.0, 3.0, -1.0, 2.0, 1.0, 1.0, -1.0, 0.5, 2.0, 0.5, 0.5, -1.5, 1.5, -1.0, 0.0 },
                            [6, 3]);
        var r = tensor(new[] { 1.0, 0.0, 1.0, 0.0, 0.0, 1.0 }, [6]);
        // With k = 1 it is the per-sample variance.
        Assert.Equal(PolicyGradient.GradientVariance(scores, r), PolicyGradient.UpdateVariance(scores, r, 1), 1e-13);
        Assert.Equal(PolicyGradient.GradientVariance(scores, r - 0.5), PolicyGradient.UpdateVariance(scores, r - 0.5, 1), 1e-13);
        // PyTorch 1.13: k · ((c·s) grouped by k, mean over the group).var(0, unbiased=True).sum() (rloo_known_values.py).
        Assert.Equal(2.0166666666666666, PolicyGradient.UpdateVariance(scores, r, 1), 1e-13);
        Assert.Equal(1.0833333333333335, PolicyGradient.UpdateVariance(scores, r - 0.5, 1), 1e-13);
        Assert.Equal(1.4166666666666667, PolicyGradient.UpdateVariance(scores, r, 2), 1e-13);
        Assert.Equal(1.3958333333333335, PolicyGradient.UpdateVariance(scores, r - 0.5, 2), 1e-13);
        Assert.Equal(5.583333333333334, PolicyGradient.UpdateVariance(scores, r - PolicyGradient.RlooBaseline(r, 2), 2), 1e-13);
        Assert.Equal(0.75, PolicyGradient.UpdateVariance(scores, r, 3), 1e-13);
        Assert.Equal(0.5833333333333334, PolicyGradient.UpdateVariance(scores, r - 0.5, 3), 1e-13);
        Assert.Equal(1.3437500000000002, PolicyGradient.UpdateVariance(scores, r - PolicyGradient.RlooBaseline(r, 3), 3), 1e-13);
        // Two whole groups are the least it needs.
        Assert.Throws<ArgumentException>(() => PolicyGradient.UpdateVariance(scores, r, 4));
        Assert.Throws<ArgumentException>(() => PolicyGradient.UpdateVariance(scores, r, 6));
    }

    [Fact]
    public void Rloo_needs_two_samples_per_prompt_and_whole_groups()
    {
        var rewards = tensor(new[] { 1.0, 0.0, 1.0, 0.0, 1.0, 1.0 }, [6]);
        Assert.Throws<ArgumentOutOfRangeException>(() => PolicyGradient.RlooBaseline(rewards, 1));
        Assert.Throws<ArgumentException>(() => PolicyGradient.RlooBaseline(rewards, 4));        // 6 is not 4·g
        Assert.Equal([0.0, 1.0, 0.0, 1.0, 1.0, 1.0], PolicyGradient.RlooBaseline(rewards, 2).data<double>().ToArray());
    }

    [Fact]
    public void Baseline_rloo_with_one_sample_per_prompt_is_a_clear_usage_error()
    {
        var e = Assert.Throws<LabUsageException>(() => Reinforce.Program.CheckOptions(new Args { Baseline = BaselineKind.Rloo }));
        Assert.Contains("--baseline rloo needs --samples-per-prompt 2 or more, got 1", e.Message);
        Assert.False(e.IsHelp);
        var ragged = Assert.Throws<LabUsageException>(() => Reinforce.Program.CheckOptions(new Args { BatchSize = 30, SamplesPerPrompt = 4 }));
        Assert.Contains("--batch-size 30 is not a multiple of --samples-per-prompt 4", ragged.Message);
        Reinforce.Program.CheckOptions(new Args { BatchSize = 32, SamplesPerPrompt = 4, Baseline = BaselineKind.Rloo });
        Reinforce.Program.CheckOptions(new Args());                                               // the defaults pass
    }

    /// <summary>
    /// RLOO is unbiased, checked exactly: on the two-token policy above, the expectation of the estimator
    /// (1/k) Σ_i (R_i − b_i) ∇log π(τ_i) over every group of k independent completions — 9^k groups, each weighted
    /// by its probability Π_i π(τ_i) — equals the true gradient. The plain group mean, which includes R_i, gives
    /// (1 − 1/k) times it.
    /// </summary>
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void The_expected_rloo_estimator_is_the_true_gradient_and_the_group_mean_shrinks_it(int k)
    {
        const int K = 3, C = K * K;                                                                              // 9 completions
        var theta0 = tensor(new[] { 0.2, -0.7, 1.1 }, [K], requires_grad: true);
        var theta1 = tensor(new[] { 0.5, 0.1, -0.4, -1.2, 0.8, 0.3, 0.0, 0.9, -0.6 }, [K, K], requires_grad: true);
        var reward = tensor(new double[] { 1, 0, 0, 0, 1, 0.5, 0, 0.25, 1 }, [C]);
        var first = tensor(Enumerable.Range(0, C).Select(c => (long)(c / K)).ToArray(), [C]);
        var second = tensor(Enumerable.Range(0, C).Select(c => (long)(c % K)).ToArray(), [C]);
        Tensor TokenLogp() => stack([theta0.log_softmax(0).gather(0, first),
            theta1.log_softmax(1).index_select(0, first).gather(1, second.unsqueeze(1)).squeeze(1)], 1);       // (9, 2)
        Tensor[] Params() => [theta0, theta1];

        var pi = TokenLogp().sum(1).exp();                                                                       // (9): π(τ)
        var trueGrad = autograd.grad([(pi * reward).sum()], Params()).SelectMany(g => g.data<double>().ToArray()).ToArray();
        Assert.True(trueGrad.Max(Math.Abs) > 0.05);

        // Every group of k completions, group-major: group g holds completions (g mod 9, g/9 mod 9, …).
        int groups = (int)Math.Pow(C, k);
        var members = new long[groups * k];
        for (int g = 0; g < groups; g++)
            for (int i = 0, rest = g; i < k; i++, rest /= C) members[g * k + i] = rest % C;
        var idx = tensor(members, [groups * k]);
        var r = reward.index_select(0, idx);                                                                     // (G·k)
        var groupProb = TokenLogp().sum(1).detach().index_select(0, idx).view(-1, k).sum([1]).exp();             // (G): Π_i π(τ_i)
        // Loss averages over G·k rows; weighting row i of group g by G·P(g) makes it Σ_g P(g) (1/k) Σ_i.
        var weight = (groupProb * groups).unsqueeze(1).expand(-1, k).reshape(-1);                                // (G·k)

        double[] Expected(Tensor advantages)
        {
            var tokenLogp = TokenLogp().index_select(0, idx);                                                   // (G·k, 2)
            var loss = PolicyGradient.Loss(tokenLogp, ones(groups * k, 2, float64), weight * advantages);
            return autograd.grad([loss], Params()).SelectMany(g => g.data<double>().ToArray()).Select(x => -x).ToArray();
        }

        var rloo = Expected(PolicyGradient.Advantages(r, PolicyGradient.RlooBaseline(r, k)));
        Assert.Equal(trueGrad, rloo, new Tolerance(1e-14));
        var grouped = r.view(-1, k);
        var groupMean = Expected((grouped - grouped.mean([1], keepdim: true)).reshape(-1));
        Assert.Equal(trueGrad.Select(x => (1 - 1.0 / k) * x).ToArray(), groupMean, new Tolerance(1e-14));
    }

    [Fact]
    public void Sequence_kl_is_k3_summed_over_real_tokens_and_matches_PyTorch()
    {
        var tokenLogp = TokenLogProbs(Logits((i, t, v) => 2.0 * Math.Sin(1 + 7 * i + 3 * t + v), requiresGrad: false));
        var refLogp = TokenLogProbs(Logits((i, t, v) => 1.5 * Math.Cos(2 + 5 * i + 2 * t + v), requiresGrad: false));
        var kl = PolicyGradient.SequenceKl(tokenLogp, refLogp, Mask());
        // PyTorch 1.13, float64 (reinforce_known_values.py).
        Assert.Equal([3.0209473530457283, 2.804059481116096, 2.7249097820097057], kl.data<double>().ToArray(), new Tolerance(1e-13));
        // Against itself: exactly zero.
        Assert.All(PolicyGradient.SequenceKl(tokenLogp, tokenLogp, Mask()).data<double>().ToArray(), x => Assert.Equal(0.0, x));
    }

    [Fact]
    public void Gradient_variance_and_optimal_baseline_match_known_values()
    {
        var scores = tensor(new[] { 1.0, -2.0, 0.5, 0.0, 3.0, -1.0, 2.0, 1.0, 1.0, -1.0, 0.5, 2.0 }, [4, 3]);
        var rewards = tensor(new[] { 1.0, 0.0, 1.0, 0.0 }, [4]);
        // PyTorch 1.13: ((c − b)·s).var(0, unbiased=True).sum() (reinforce_known_values.py).
        Assert.Equal(2.7291666666666665, PolicyGradient.GradientVariance(scores, rewards), 1e-13);
        Assert.Equal(1.4479166666666665, PolicyGradient.GradientVariance(scores, rewards - 0.5), 1e-13);
        // b* = Σ R‖s‖² / Σ ‖s‖² with ‖s‖² = 5.25, 10, 6, 5.25: (5.25 + 6) / 26.5.
        Assert.Equal(11.25 / 26.5, PolicyGradient.OptimalBaseline(scores, rewards), 1e-15);
        // Two samples are the least a variance needs.
        Assert.Throws<ArgumentException>(() => PolicyGradient.GradientVariance(scores.narrow(0, 0, 1), rewards.narrow(0, 0, 1)));
    }

    [Fact]
    public void Running_mean_is_an_exponential_average_with_bias_correction()
    {
        var m = new RunningMean(0.9);
        Assert.Equal(0.0, m.Value);                        // no rewards yet: b = 0
        m.Update(1.0);
        Assert.Equal(1.0, m.Value, 1e-15);                 // 0.1 / (1 − 0.9): the first reward itself, not 0.1
        m.Update(0.0);
        Assert.Equal(0.09 / 0.19, m.Value, 1e-15);
        m.Update(1.0);
        Assert.Equal(0.181 / 0.271, m.Value, 1e-15);
        var last = new RunningMean(0.0);                   // β = 0: the last value
        last.Update(0.3);
        last.Update(0.7);
        Assert.Equal(0.7, last.Value, 1e-15);
        Assert.Throws<ArgumentOutOfRangeException>(() => new RunningMean(1.0));
    }

    [Fact]
    public void Per_sample_scores_add_up_to_the_batch_gradient()
    {
        // On a small random TinyGpt: (1/n) Σ_i c_i ∇log π(τ_i), from one backward pass per sample, equals minus
        // the gradient of the batch loss with advantages c.
        manual_seed(7);
        var model = new TinyGpt(new GptConfig());
        var problems = new ArithmeticTask().Train.Take(6).ToArray();
        var rollout = Rollouts.Generate(model, ArithmeticTask.EncodePrompts(problems), ArithmeticTask.MaxCompletionLength,
            generator: new Generator(3));
        var c = tensor(new[] { 1.0f, -0.5f, 0.25f, 0f, 2f, -1f }, [6]);

        var scores = PolicyGradient.PerSampleScores(model, rollout, Enumerable.Range(0, 6).ToArray());            // (6, D)
        Assert.Equal([6, model.NumParameters()], scores.shape);
        var fromScores = (c.to_type(float64).unsqueeze(1) * scores).mean([0]).data<double>().ToArray();

        var loss = PolicyGradient.Loss(Rollouts.TokenLogProbs(model, rollout), rollout.CompletionMask, c);
        var grads = autograd.grad([loss], model.parameters().Cast<Tensor>().ToList());
        var batch = grads.SelectMany(g => g.data<float>().ToArray()).Select(x => -(double)x).ToArray();
        double scale = batch.Max(Math.Abs);
        Assert.True(scale > 1e-3);
        for (int k = 0; k < batch.Length; k++) Assert.Equal(batch[k], fromScores[k], 2e-5 * scale);
    }

}

/// <summary>Chapter 1 run end to end: a seeded snapshot (bit-stable) and a quick run that must learn.</summary>
[Collection("chapters")]
public class ReinforceRunTests
{
    private static (string[] Csv, RunSummary Summary) Run(params string[] argv) => ChapterRun.Run(Reinforce.Program.Main, "ch01", argv);

    [Fact]
    public void A_short_seeded_run_matches_its_snapshot_bit_for_bit_with_any_thread_count()
    {
        string[] common = ["--seed", "5", "--steps", "4", "--batch-size", "32", "--baseline", "running-mean",
                           "--eval-every", "2", "--variance-samples", "8"];
        var one = Run([.. common, "--variance-every", "2", "--threads", "1"]);
        var three = Run([.. common, "--variance-every", "2", "--threads", ChapterRun.ManyThreads]);
        Assert.Equal(one.Csv, three.Csv);
        Assert.Equal((one.Summary.Base, one.Summary.Final, one.Summary.Kl), (three.Summary.Base, three.Summary.Final, three.Summary.Kl));
        Snapshot.Match(perEngine: true, value: new { metrics = one.Csv, one.Summary.Base, one.Summary.Final, one.Summary.Kl });

        // Measuring the gradient variance draws no random numbers and touches no weights: without it, every
        // other number of the run is the same.
        var quiet = Run([.. common, "--variance-every", "0"]);
        var header = one.Csv[0].Split(',');
        var training = header.Select((name, k) => (name, k)).Where(c => !c.name.StartsWith("grad_var") && c.name != "baseline_optimal").Select(c => c.k).ToArray();
        var quietHeader = quiet.Csv[0].Split(',');
        Assert.Equal(one.Csv.Length, quiet.Csv.Length);
        for (int r = 0; r < one.Csv.Length; r++)
        {
            var a = one.Csv[r].Split(',');
            var b = quiet.Csv[r].Split(',');
            foreach (int k in training) Assert.Equal(a[k], b[Array.IndexOf(quietHeader, header[k])]);
        }
        Assert.Equal(one.Summary.Final, quiet.Summary.Final);
    }

    [Fact]
    public void A_short_rloo_run_logs_the_leave_one_out_variance_beside_the_others()
    {
        // 32 samples (8 groups) per variance measurement: with 8 (2 groups) the base model of one engine answered
        // every one wrong, and with all rewards 0 every variance is 0.
        var (csv, summary) = Run("--seed", "3", "--steps", "2", "--batch-size", "32", "--samples-per-prompt", "4",
                                 "--baseline", "rloo", "--eval-every", "0", "--variance-every", "1",
                                 "--variance-samples", "32");
        var header = csv[0].Split(',');
        foreach (var name in new[] { "grad_var_none", "grad_var_baseline", "grad_var_rloo", "grad_var_rloo_ratio", "frac_reward_zero_std",
                                     "grad_var_update_none", "grad_var_update_baseline", "grad_var_update_rloo" })
            Assert.Contains(name, header);
        foreach (var row in csv.Skip(1).Select(l => l.Split(',')).Where(c => c[0] != "0"))
        {
            double none = double.Parse(row[Array.IndexOf(header, "grad_var_none")], System.Globalization.CultureInfo.InvariantCulture);
            double rloo = double.Parse(row[Array.IndexOf(header, "grad_var_rloo")], System.Globalization.CultureInfo.InvariantCulture);
            double ratio = double.Parse(row[Array.IndexOf(header, "grad_var_rloo_ratio")], System.Globalization.CultureInfo.InvariantCulture);
            double equal = double.Parse(row[Array.IndexOf(header, "frac_reward_zero_std")], System.Globalization.CultureInfo.InvariantCulture);
            double update = double.Parse(row[Array.IndexOf(header, "grad_var_update_rloo")], System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(none > 0 && rloo >= 0 && update >= 0, $"variances {none}, {rloo}, {update} (step {row[0]})");
            Assert.Equal(rloo / none, ratio, 1e-6 * Math.Max(1, ratio));
            Assert.InRange(equal, 0, 1);
        }
        Assert.Equal("rloo", summary.Extra["baseline"]);
        Assert.Equal(4.0, summary.Extra["samples_per_prompt"]);
    }

    [Fact]
    public void Rloo_with_one_sample_per_prompt_stops_with_exit_code_2()
    {
        string dir = Path.Combine(Path.GetTempPath(), "minrl-ch01-rloo-" + Guid.NewGuid().ToString("N"));
        int threads = get_num_threads();
        try { Assert.Equal(2, Reinforce.Program.Main(["--baseline", "rloo", "--out", dir])); }
        finally
        {
            set_num_threads(threads);
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_quick_run_raises_held_out_accuracy()
    {
        var (_, summary) = Run("--steps", "120", "--eval-every", "0", "--variance-every", "0");
        Assert.InRange(summary.Base, 0.2, 0.3);                    // the book's base model, sampled at T = 1
        Assert.True(summary.Final >= summary.Base + 0.12, $"held-out accuracy {summary.Base} → {summary.Final}: expected a rise of at least 0.12");
        Assert.InRange(summary.Kl, 0.05, 5.0);                     // it moved away from the base, but not absurdly
    }
}
