using Grpo;
using TorchSharp;
using static TorchSharp.torch;

namespace MinRL.Chapters.Tests;

/// <summary>Chapter 8 (GRPO): the pure functions against known values (PyTorch, following TRL's GRPOTrainer).</summary>
public class GrpoTests
{
    private static Tensor T(params double[] x) => tensor(x, [x.LongLength]);

    private static double[] Values(Tensor t) => t.to_type(float64).data<double>().ToArray();

    [Fact]
    public void Group_advantages_match_known_values()
    {
        // PyTorch 1.13, float64 (tests/reference/grpo_known_values.py): (r − mean) / (std + 1e-4), Bessel std.
        Assert.Equal([0.8658754297607016, -0.8658754297607016, -0.8658754297607016, 0.8658754297607016],
            Values(GroupRelative.Advantages(T(1, 0, 0, 1), 4, ScaleRewards.Group)), new Tolerance(1e-15));
        Assert.Equal([-1.161805010833055, -0.3872683369443517, 0.3872683369443517, 1.161805010833055],
            Values(GroupRelative.Advantages(T(0, 1, 2, 3), 4, ScaleRewards.Group)), new Tolerance(1e-15));
        // The rounded values, and the same in float32 (the dtype of a run's rewards).
        var f32 = GroupRelative.Advantages(tensor(new[] { 1f, 0f, 0f, 1f }, [4]), 4, ScaleRewards.Group);
        Assert.Equal(ScalarType.Float32, f32.dtype);
        Assert.Equal([0.865875, -0.865875, -0.865875, 0.865875], Values(f32), new Tolerance(1e-6));
    }

    [Fact]
    public void Dr_grpo_advantages_are_centred_but_not_scaled()
    {
        Assert.Equal([0.75, -0.25, -0.25, -0.25], Values(GroupRelative.Advantages(T(1, 0, 0, 0), 4, ScaleRewards.None)), new Tolerance(1e-15));
    }

    [Fact]
    public void Batch_scaling_uses_the_group_mean_and_the_batch_std()
    {
        // PyTorch: two groups, centred on their own means, divided by the std of all 8 rewards (+ 1e-4).
        Assert.Equal([0.46766342743879763, -0.46766342743879763, -0.46766342743879763, 0.46766342743879763,
                      -1.402990282316393, -0.46766342743879763, 0.46766342743879763, 1.402990282316393],
            Values(GroupRelative.Advantages(T(1, 0, 0, 1, 0, 1, 2, 3), 4, ScaleRewards.Batch)), new Tolerance(1e-14));
    }

    [Theory]
    [InlineData(ScaleRewards.Group)]
    [InlineData(ScaleRewards.Batch)]
    [InlineData(ScaleRewards.None)]
    public void A_group_of_equal_rewards_gets_zero_advantage_and_no_NaN(ScaleRewards scale)
    {
        // Rewards with the format bonus: a group that differs only in format, then an all-correct group.
        var rewards = tensor(new[] { 1.1f, 0.1f, 0.1f, 0f, 1.1f, 1.1f, 1.1f, 1.1f }, [8]);
        var a = Values(GroupRelative.Advantages(rewards, 4, scale));
        Assert.All(a, x => Assert.True(double.IsFinite(x)));
        Assert.Equal([0.0, 0.0, 0.0, 0.0], a[4..]);
        Assert.True(Math.Abs(a[0]) > 0.1);                                      // the first group still learns
        // Every group's advantages sum to zero (what makes the printed loss ≈ 0, see the next test).
        Assert.Equal(0.0, a[..4].Sum(), 1e-6);
        Assert.Equal(0.5, GroupRelative.ZeroStdFraction(rewards, 4));
        // Groups of 2 that are each all-equal: zero advantages under every scaling.
        Assert.All(Values(GroupRelative.Advantages(tensor(new[] { 1f, 1f, 0f, 0f }, [4]), 2, scale)), x => Assert.Equal(0.0, x));
        Assert.Equal(1.0, GroupRelative.ZeroStdFraction(tensor(new[] { 1f, 1f, 0f, 0f }, [4]), 2));
    }

    [Fact]
    public void Group_rewards_match_the_pytorch_group_with_a_format_only_group()
    {
        // PyTorch, float64: [1.1, 0.1, 0.1, 0 | 1, 1, 1, 1], scale "group".
        Assert.Equal([1.4935073462122692, -0.4335989069648524, -0.4335989069648524, -0.6263095322825646, 0, 0, 0, 0],
            Values(GroupRelative.Advantages(T(1.1, 0.1, 0.1, 0, 1, 1, 1, 1), 4, ScaleRewards.Group)), new Tolerance(1e-15));
    }

    [Fact]
    public void Advantages_reject_groups_too_small_for_a_std_and_ragged_batches()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => GroupRelative.Advantages(T(1, 0), 1, ScaleRewards.Group));
        var e = Assert.Throws<ArgumentException>(() => GroupRelative.Advantages(T(1, 0, 1), 2, ScaleRewards.Group));
        Assert.Contains("[3]", e.Message);
    }

    [Fact]
    public void K3_matches_its_known_value_and_is_zero_only_at_equality()
    {
        // exp(ref − logp) − (ref − logp) − 1 at logp = −1, ref = −2: e^−1 − (−1) − 1 = e^−1 (PyTorch: 0.36787944117144233).
        Assert.Equal(0.36787944117144233, GroupRelative.K3(T(-1), T(-2)).item<double>(), 1e-16);
        Assert.Equal(0.0, GroupRelative.K3(T(-0.7), T(-0.7)).item<double>());
        // Never negative, even where float32 rounding of e^x − x − 1 would go below 0.
        var lp = tensor(new[] { -1f, -1.0000001f, -0.3f, -2f }, [4]);
        var rf = tensor(new[] { -1.0000001f, -1f, -2.3f, -0.1f }, [4]);
        Assert.All(GroupRelative.K3(lp, rf).data<float>().ToArray(), x => Assert.True(x >= 0));
    }

    // ---------------------------------------------------------------- the loss on a hand-made ragged batch

    // tests/reference/grpo_known_values.py: one group of 4 completions (rewards 1, 0, 0, 1), M = 5, lengths 5, 2, 4, 1.
    private const int N = 4, M = 5;
    private static readonly double[] LogpValues =
        [-0.5, -1.2, -0.3, -2.0, -0.7, -1.0, -0.4, -3.0, -0.2, -0.9, -0.6, -0.8, -1.5, -0.1, -2.2, -0.3, -1.1, -0.5, -0.6, -1.3];
    private static readonly double[] Delta =                                      // log π_θold − log π_θ
        [0.1, -0.3, 0.25, 0.0, -0.05, -0.4, 0.15, 0.0, 0.3, -0.2, 0.05, 0.35, -0.25, 0.1, 0.0, -0.3, 0.2, 0.1, -0.15, 0.05];
    private static readonly double[] RefValues =
        [-0.9, -1.0, -0.8, -1.5, -0.7, -0.6, -0.9, -2.0, -0.5, -1.4, -1.1, -0.5, -1.2, -0.4, -1.8, -0.2, -1.6, -0.9, -0.3, -1.0];
    private static readonly double[] MaskValues = [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0];

    private static Tensor Logp() => tensor(LogpValues, [N, M], requires_grad: true);
    private static Tensor OldLogp() => tensor(LogpValues.Zip(Delta, (a, b) => a + b).ToArray(), [N, M]);
    private static Tensor RefLogp() => tensor(RefValues, [N, M]);
    private static Tensor Mask() => tensor(MaskValues, [N, M]);
    private static Tensor Adv() => GroupRelative.Advantages(T(1, 0, 0, 1), 4, ScaleRewards.Group);

    public static TheoryData<LossType, double, double[]> Aggregations => new()
    {
        // PyTorch 1.13, float64, TRL's loss_type "grpo", "bnpo" (TRL's "dapo" on one device), "dr_grpo"; ε 0.2, β 0.04.
        { LossType.Grpo, -0.003206515278320554,
          [-0.03851446450234379, -0.0004428055163203399, -0.03293028445642145, -0.04459121402943534, -0.0455134906184797,
           0.1590076704115141, 0.09512558282462569, 0, 0, 0,
           0.05246156002200471, -0.0008746470189400081, 0.06861323169969512, 0.04961523496113634, 0,
           -0.0010517091807564754, 0, 0, 0, 0] },
        { LossType.Dapo, 0.014038732846504512,
          [-0.06419077417057298, -0.0007380091938672326, -0.05488380742736908, -0.07431869004905889, -0.07585581769746615,
           0.10600511360767605, 0.06341705521641712, 0, 0, 0,
           0.06994874669600627, -0.001166196025253344, 0.09148430893292682, 0.06615364661484845, 0,
           -0.00035056972691882484, 0, 0, 0, 0] },
        { LossType.DrGrpo, 0.008423239707902708,
          [-0.03851446450234379, -0.0004428055163203399, -0.03293028445642145, -0.04459121402943534, -0.0455134906184797,
           0.06360306816460563, 0.03805023312985028, 0, 0, 0,
           0.04196924801760377, -0.0006997176151520065, 0.0548905853597561, 0.03969218796890907, 0,
           -0.00021034183615129508, 0, 0, 0, 0] },
    };

    [Theory]
    [MemberData(nameof(Aggregations))]
    public void Each_aggregation_matches_PyTorch_on_a_ragged_batch(LossType type, double expectedLoss, double[] expectedGrad)
    {
        var logp = Logp();
        var perToken = GroupRelative.PerTokenLoss(logp, OldLogp(), RefLogp(), Adv(), clipEpsilon: 0.2, beta: 0.04);
        var loss = GroupRelative.Aggregate(perToken, Mask(), type, maxCompletionLength: 5);
        Assert.Equal(expectedLoss, loss.item<double>(), 1e-15);
        loss.backward();
        var grad = logp.grad!.data<double>().ToArray();
        Assert.Equal(expectedGrad, grad, new Tolerance(1e-15));
        // The padding after each <eos> gets exactly no gradient.
        for (int k = 0; k < N * M; k++) if (MaskValues[k] == 0) Assert.Equal(0.0, grad[k]);
    }

    [Fact]
    public void Clip_fraction_counts_the_tokens_whose_policy_gradient_is_cut()
    {
        // PyTorch: 3 of the 12 real tokens (TRL's region: ρ < 0.8 with Â < 0, or ρ > 1.2 with Â > 0).
        Assert.Equal(0.25, GroupRelative.ClipFraction(Logp().detach() - OldLogp(), Adv().unsqueeze(1), Mask(), 0.2), 1e-15);

        // Without the KL term, exactly those tokens get a zero gradient, and every other real token does not.
        var logp = Logp();
        GroupRelative.Aggregate(GroupRelative.PerTokenLoss(logp, OldLogp(), RefLogp(), Adv(), 0.2, beta: 0), Mask(), LossType.Dapo, 5).backward();
        var grad = logp.grad!.data<double>().ToArray();
        double[] A = [1, -1, -1, 1];
        int cut = 0;
        for (int k = 0; k < N * M; k++)
        {
            if (MaskValues[k] == 0) continue;
            double ratio = Math.Exp(-Delta[k]);
            bool clipped = ratio < 0.8 && A[k / M] < 0 || ratio > 1.2 && A[k / M] > 0;
            if (clipped) { cut++; Assert.Equal(0.0, grad[k]); }
            else Assert.NotEqual(0.0, grad[k]);
        }
        Assert.Equal(3, cut);
    }

    [Theory]
    [InlineData(LossType.Grpo)]
    [InlineData(LossType.Dapo)]
    [InlineData(LossType.DrGrpo)]
    public void At_the_sampling_policy_the_loss_is_the_KL_term_alone_under_grpo_but_the_gradient_is_not_zero(LossType type)
    {
        // First inner iteration: θ = θold, so ρ = 1 and the policy term of completion i is −Â_i on each token.
        var logp = Logp();
        var adv = Adv();
        var loss = GroupRelative.Aggregate(GroupRelative.PerTokenLoss(logp, logp.detach(), RefLogp(), adv, 0.2, beta: 0), Mask(), type, 5);
        var grad = autograd.grad([loss], [logp])[0].data<double>().ToArray();
        // ∂L/∂log π(o_{i,t}) = −Â_i × the token's weight: 1/(N·|o_i|) under grpo, 1/Σ|o| under dapo, 1/(N·L_max) under dr-grpo.
        int[] lengths = [5, 2, 4, 1];
        var a = Values(adv);
        for (int k = 0; k < N * M; k++)
        {
            int i = k / M;
            double weight = MaskValues[k] == 0 ? 0 : type switch { LossType.Grpo => 1.0 / (N * lengths[i]), LossType.Dapo => 1.0 / 12, _ => 1.0 / 20 };
            Assert.Equal(-a[i] * weight, grad[k], 1e-15);
        }
        Assert.True(grad.Max(Math.Abs) > 0.04, "the gradient of the near-zero loss is a real gradient");
        if (type == LossType.Grpo)
            Assert.Equal(0.0, loss.item<double>(), 1e-15);                      // −(1/N) Σ_i Â_i, and Σ_i Â_i = 0
        else
        {
            // Token-weighted: −Σ_i |o_i| Â_i / normaliser, not zero when a group's lengths differ (5, 2, 4, 1 here).
            double A = 0.8658754297607016, weighted = -(5 * A - 2 * A - 4 * A + 1 * A);
            Assert.Equal(weighted / (type == LossType.Dapo ? 12.0 : 20.0), loss.item<double>(), 1e-15);
        }
        // With β > 0 the loss at θold is β times the aggregated k3, under every aggregation.
        var withKl = GroupRelative.Aggregate(GroupRelative.PerTokenLoss(logp, logp.detach(), RefLogp(), adv, 0.2, beta: 0.04), Mask(), type, 5);
        var kl = GroupRelative.Aggregate(GroupRelative.K3(logp.detach(), RefLogp()), Mask(), type, 5);
        Assert.Equal(loss.item<double>() + 0.04 * kl.item<double>(), withKl.item<double>(), 1e-15);
    }

    [Fact]
    public void Repeat_lays_out_groups_prompt_by_prompt()
    {
        var prompts = new ArithmeticTask().Train.Take(3).ToArray();
        var rows = GroupRelative.Repeat(prompts, 4);
        Assert.Equal(12, rows.Length);
        for (int i = 0; i < 12; i++) Assert.Equal(prompts[i / 4], rows[i]);
    }

}

/// <summary>Chapter 8 run end to end: a seeded snapshot (bit-stable) and a quick run that must learn.</summary>
[Collection("chapters")]
public class GrpoRunTests
{
    private static (string[] Csv, RunSummary Summary) Run(params string[] argv) => ChapterRun.Run(Grpo.Program.Main, "ch08", argv);

    [Fact]
    public void Dynamic_sampling_fills_the_batch_with_informative_groups_and_counts_what_it_drew()
    {
        var r = Run("--seed", "3", "--steps", "2", "--prompts", "8", "--group-size", "4", "--iterations", "1",
                    "--dynamic-sampling", "--eval-every", "0");
        long drawn = Convert.ToInt64(r.Summary.Extra["samples_generated"]?.ToString());
        long extra = Convert.ToInt64(r.Summary.Extra["dynamic_sampling_extra_samples"]?.ToString());
        Assert.Equal(8L * 4 * 2, drawn - extra);                                          // full batches
        Assert.True(extra > 0, "the base model answers some groups all alike: more prompts had to be drawn");
        int zero = Array.IndexOf(r.Csv[0].Split(','), "frac_reward_zero_std");
        Assert.All(r.Csv.Skip(2), row => Assert.Equal("0", row.Split(',')[zero]));     // no group without signal
    }

    [Fact]
    public void A_short_seeded_run_matches_its_snapshot_bit_for_bit_with_any_thread_count()
    {
        string[] common = ["--seed", "5", "--steps", "3", "--prompts", "6", "--group-size", "4", "--iterations", "2"];
        var one = Run([.. common, "--threads", "1"]);
        var three = Run([.. common, "--threads", ChapterRun.ManyThreads]);
        Assert.Equal(one.Csv, three.Csv);
        Assert.Equal((one.Summary.Base, one.Summary.Final, one.Summary.Kl), (three.Summary.Base, three.Summary.Final, three.Summary.Kl));
        Assert.Equal(6L * 4 * 3, Convert.ToInt64(one.Summary.Extra["samples_generated"]?.ToString()));
        Snapshot.Match(perEngine: true, value: new { metrics = one.Csv, one.Summary.Base, one.Summary.Final, one.Summary.Kl });
    }

    [Fact]
    public void Dr_grpo_variant_runs_and_differs_from_grpo()
    {
        string[] common = ["--seed", "5", "--steps", "2", "--prompts", "6", "--group-size", "4"];
        var grpo = Run(common);
        var dr = Run([.. common, "--scale-rewards", "none", "--loss-type", "dr-grpo"]);
        // Same samples at step 1 (same seed, same θ: rows 0 and 1 of the log are step 0 and step 1), then a
        // different update: the step-1 rewards agree, the step-2 losses do not.
        var header = grpo.Csv[0].Split(',');
        int reward = Array.IndexOf(header, "reward"), loss = Array.IndexOf(header, "loss");
        Assert.Equal(grpo.Csv[2].Split(',')[reward], dr.Csv[2].Split(',')[reward]);
        Assert.NotEqual(grpo.Csv[3].Split(',')[loss], dr.Csv[3].Split(',')[loss]);
        Assert.Equal("dr-grpo", dr.Summary.Extra["loss_type"]?.ToString());
    }

    [Fact]
    public void A_quick_run_raises_held_out_accuracy()
    {
        var (_, summary) = Run("--steps", "120", "--eval-every", "0");
        Assert.InRange(summary.Base, 0.2, 0.3);                    // the book's base model, sampled at T = 1
        Assert.True(summary.Final >= summary.Base + 0.12, $"held-out accuracy {summary.Base} → {summary.Final}: expected a rise of at least 0.12");
        Assert.InRange(summary.Kl, 0.05, 5.0);                     // it moved away from the base, but not absurdly
    }
}
