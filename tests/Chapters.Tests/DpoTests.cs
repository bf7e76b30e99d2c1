using Dpo;
using TorchSharp;
using static TorchSharp.torch;

namespace MinRL.Chapters.Tests;

/// <summary>Chapter 7 (DPO): the losses and metrics against PyTorch-computed values.</summary>
/// <remarks>Expected values: tests/reference/dpo_known_values.py (PyTorch 1.13, float64), which follows Hugging
/// Face TRL's DPOTrainer.dpo_loss (trl/trainer/dpo_trainer.py): "sigmoid" with label_smoothing for DPO and cDPO,
/// "ipo" = (logits − 1/(2β))² on length-normalised log-probs (average_log_prob), chosen_rewards =
/// β(policy_chosen_logps − reference_chosen_logps); and Rafailov et al. 2023, appendix A.3, for Plackett–Luce.</remarks>
public class DpoTests
{
    private static Tensor T(params double[] x) => tensor(x, [x.Length]);
    private static Tensor T(double[] x, long rows, long cols, bool grad = false) => tensor(x, [rows, cols], requires_grad: grad);

    // The case: summed log-probs of 3 pairs.
    private static readonly double[] PolicyChosen = [-0.5, -10, -1], PolicyRejected = [-0.1, -30, -21];
    private static readonly double[] RefChosen = [-0.5, -10.1, -0.1], RefRejected = [-0.1, -20.1, -0.1];

    [Fact]
    public void Dpo_losses_rewards_and_margins_match_the_known_values()
    {
        var losses = DirectPreference.DpoLosses(T(PolicyChosen), T(PolicyRejected), T(RefChosen), T(RefRejected), beta: 0.1);
        Assert.Equal([0.6931471805599453, 0.31326168751822286, 0.1269280110429725], losses.data<double>().ToArray(), new Tolerance(1e-14));

        // The same through the (B, K) path the program uses: column 0 chosen, column 1 rejected.
        var policy = stack([T(PolicyChosen), T(PolicyRejected)], 1);                   // (3, 2)
        var reference = stack([T(RefChosen), T(RefRejected)], 1);
        Assert.Equal(losses.data<double>().ToArray(), DirectPreference.Losses(LossKind.Dpo, policy, reference, 0.1, 0.1).data<double>().ToArray());

        var (chosen, rejected) = DirectPreference.ImplicitRewards(policy, reference, 0.1);
        Assert.Equal([0.0, 0.009999999999999966, -0.09000000000000001], chosen.data<double>().ToArray(), new Tolerance(1e-15));
        Assert.Equal([0.0, -0.9899999999999999, -2.09], rejected.data<double>().ToArray(), new Tolerance(1e-15));
        Assert.Equal([0.0, 1.0, 2.0], (chosen - rejected).data<double>().ToArray(), new Tolerance(1e-15));

        var stats = DirectPreference.RewardStats(policy, reference, 0.1);
        Assert.Equal((0.01 - 0.09) / 3, stats.Chosen, 1e-15);
        Assert.Equal((-0.99 - 2.09) / 3, stats.Rejected, 1e-15);
        Assert.Equal(1.0, stats.Margin, 1e-15);
        Assert.Equal(2.0 / 3, stats.Accuracy, 1e-15);                                 // pair 0 ties: not counted as right (TRL's strict >)
    }

    [Fact]
    public void Dpo_gradient_is_minus_beta_sigma_of_the_wrong_order_on_the_winner_and_plus_on_the_loser()
    {
        var pc = tensor(PolicyChosen, [3], requires_grad: true);
        var pr = tensor(PolicyRejected, [3], requires_grad: true);
        DirectPreference.DpoLosses(pc, pr, T(RefChosen), T(RefRejected), 0.1).mean().backward();
        // PyTorch: d mean(loss) / d policy_chosen_logps, d / d policy_rejected_logps.
        double[] expected = [-0.016666666666666666, -0.008964714045666502, -0.003973430734070585];
        Assert.Equal(expected, pc.grad!.data<double>().ToArray(), new Tolerance(1e-16));
        Assert.Equal(expected.Select(x => -x).ToArray(), pr.grad!.data<double>().ToArray(), new Tolerance(1e-16));
        // The closed form of the file header: −β σ(−βh) / B, with h = 0, 10, 20.
        double[] h = [0, 10, 20];
        Assert.Equal(h.Select(x => -0.1 / (1 + Math.Exp(0.1 * x)) / 3).ToArray(), pc.grad!.data<double>().ToArray(), new Tolerance(1e-16));
    }

    [Fact]
    public void Conservative_dpo_matches_the_known_values_and_stops_at_a_finite_margin()
    {
        var pc = tensor(PolicyChosen, [3], requires_grad: true);
        var losses = DirectPreference.DpoLosses(pc, T(PolicyRejected), T(RefChosen), T(RefRejected), 0.1, labelSmoothing: 0.1);
        Assert.Equal([0.6931471805599453, 0.4132616875182229, 0.32692801104297253], losses.data<double>().ToArray(), new Tolerance(1e-14));
        losses.mean().backward();
        Assert.Equal([-0.013333333333333332, -0.00563138071233317, -0.0006400974007372512], pc.grad!.data<double>().ToArray(), new Tolerance(1e-16));

        // The cDPO loss is minimised where σ(βh) = 1 − ε: βh = log((1 − ε)/ε). Its gradient vanishes there,
        // and points back towards it from beyond (plain DPO's never vanishes).
        double eps = 0.1, beta = 0.5, hStar = Math.Log((1 - eps) / eps) / beta;
        foreach (var (hv, sign) in new[] { (hStar, 0), (hStar + 1, 1), (hStar - 1, -1) })
        {
            var x = tensor(new[] { hv }, [1], requires_grad: true);
            DirectPreference.DpoLosses(x, T(0), T(0), T(0), beta, eps).sum().backward();
            double g = x.grad!.ToDouble();
            if (sign == 0) Assert.Equal(0.0, g, 1e-15);
            else Assert.Equal(sign, Math.Sign(g));
        }
    }

    // A hand-made batch of per-token log-probs: B = 3 pairs, M = 4 tokens, completions of different lengths.
    private static readonly double[] TokPc = [-0.2, -1.1, -0.3, -0.05, -2.0, -0.7, -0.9, -1.5, -0.4, -0.6, -0.1, -0.8];
    private static readonly double[] TokPr = [-0.9, -1.4, -0.2, -0.6, -1.0, -0.3, -0.2, -0.4, -2.5, -1.7, -0.3, -0.2];
    private static readonly double[] TokRc = [-0.3, -1.0, -0.4, -0.1, -1.8, -0.6, -1.0, -1.2, -0.5, -0.9, -0.2, -0.7];
    private static readonly double[] TokRr = [-0.7, -1.2, -0.3, -0.5, -1.1, -0.4, -0.3, -0.6, -1.9, -1.5, -0.4, -0.1];
    private static readonly double[] MaskC = [1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0, 0];
    private static readonly double[] MaskR = [1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0];

    [Theory]
    [InlineData(0.1, new[] { 22.72111111111111, 27.5625, 20.854444444444443 })]
    [InlineData(0.5, new[] { 0.5877777777777777, 1.5625, 0.32111111111111107 })]
    public void Ipo_on_length_normalised_log_probs_matches_PyTorch(double beta, double[] expected)
    {
        Tensor Avg(double[] tok, double[] mask) => DirectPreference.CompletionLogProbs(T(tok, 3, 4), T(mask, 3, 4), average: true);
        Assert.Equal([-0.5333333333333333, -1.275, -0.5], Avg(TokPc, MaskC).data<double>().ToArray(), new Tolerance(1e-15));
        Assert.Equal([-1.15, -0.475, -1.5], Avg(TokPr, MaskR).data<double>().ToArray(), new Tolerance(1e-15));
        var losses = DirectPreference.IpoLosses(Avg(TokPc, MaskC), Avg(TokPr, MaskR), Avg(TokRc, MaskC), Avg(TokRr, MaskR), beta);
        Assert.Equal(expected, losses.data<double>().ToArray(), new Tolerance(1e-12));
    }

    [Fact]
    public void Summed_log_probs_drop_the_masked_tokens()
    {
        var sum = DirectPreference.CompletionLogProbs(T(TokPc, 3, 4), T(MaskC, 3, 4), average: false);
        Assert.Equal([-1.6, -5.1, -1.0], sum.data<double>().ToArray(), new Tolerance(1e-15));
        Tensor Sum(double[] tok, double[] mask) => DirectPreference.CompletionLogProbs(T(tok, 3, 4), T(mask, 3, 4), average: false);
        var losses = DirectPreference.DpoLosses(Sum(TokPc, MaskC), Sum(TokPr, MaskR), Sum(TokRc, MaskC), Sum(TokRr, MaskR), 0.1);
        Assert.Equal([0.6684596480132863, 0.7443966600735709, 0.639658918622423], losses.data<double>().ToArray(), new Tolerance(1e-14));
    }

    [Theory]
    [InlineData(0.1, new[] { 1.654066991312765, 1.7679557732548878 },
        new[] { -0.03133937550075139, -0.008313781824213351, 0.039653157324964744, -0.03447881132734972, -0.003550677479676673, 0.03802948880702638 })]
    [InlineData(1.0, new[] { 0.7804326964092532, 2.366472777264857 },
        new[] { -0.131937637843703, -0.10664452058652879, 0.23858215843023178, -0.44674651054039966, 0.3338915600697404, 0.11285495047065919 })]
    public void Plackett_luce_on_rankings_of_three_matches_PyTorch(double beta, double[] expected, double[] expectedGrad)
    {
        var policy = T([-1.0, -3.0, -2.0, -4.0, -0.5, -6.0], 2, 3, grad: true);       // log π of each ranked completion, best first
        var reference = T([-2.0, -2.5, -1.0, -3.0, -1.5, -5.0], 2, 3);
        var losses = DirectPreference.PlackettLuceLosses(policy, reference, beta);
        Assert.Equal(expected, losses.data<double>().ToArray(), new Tolerance(1e-14));
        losses.mean().backward();
        Assert.Equal(expectedGrad, policy.grad!.data<double>().ToArray(), new Tolerance(1e-15));
        // The gradient of each ranking sums to 0: adding a constant to all K log-ratios changes no probability.
        var g = policy.grad!.data<double>().ToArray();
        Assert.Equal(0.0, g[0] + g[1] + g[2], 1e-15);                                  // exact 0, up to rounding of three numbers ≈ 0.2
    }

    [Fact]
    public void Plackett_luce_of_four_matches_PyTorch_and_of_two_is_dpo()
    {
        var four = DirectPreference.PlackettLuceLosses(T([-1.5, -0.8, -2.2, -4.0], 1, 4), T([-1.0, -1.0, -2.0, -2.0], 1, 4), 0.5);
        Assert.Equal(2.506890034031999, four.ToDouble(), 1e-14);

        var policy = stack([T(PolicyChosen), T(PolicyRejected)], 1);                   // (3, 2)
        var reference = stack([T(RefChosen), T(RefRejected)], 1);
        var pl = DirectPreference.Losses(LossKind.PlackettLuce, policy, reference, 0.1, 0);
        Assert.Equal([0.6931471805599453, 0.3132616875182229, 0.12692801104297252], pl.data<double>().ToArray(), new Tolerance(1e-14));
    }

    [Fact]
    public void Pair_losses_refuse_rankings_of_more_than_two()
    {
        var x = zeros(4, 3, float64);
        var e = Assert.Throws<ArgumentException>(() => DirectPreference.Losses(LossKind.Dpo, x, x, 0.1, 0));
        Assert.Contains("(B, 2)", e.Message);
        Assert.Contains("[4, 3]", e.Message);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void Preference_data_holds_the_prompts_and_ranked_completions_with_their_masks(int K)
    {
        manual_seed(11);
        var sampler = new TinyGpt(new GptConfig());                                     // a random model: varied, often malformed answers
        var world = new PreferenceWorld();
        var problems = new ArithmeticTask().Train.Take(40).ToArray();
        var data = Preferences.Make(sampler, world, problems, K, seed: 5);
        Assert.InRange(data.Count, 20, 40);
        Assert.Equal([data.Count, K, 12], data.Sequences.shape);
        Assert.Equal([data.Count, K, 5], data.Masks.shape);
        Assert.Equal(K == 2, data.Kinds is not null);
        var ids = data.Sequences.data<long>().ToArray();
        var mask = data.Masks.data<float>().ToArray();
        var tok = CharTokenizer.Instance;
        for (int i = 0; i < data.Count; i++)
        {
            var completions = new List<string>();
            for (int k = 0; k < K; k++)
            {
                var row = ids.AsSpan((i * K + k) * 12, 12).ToArray();
                Assert.Equal(ArithmeticTask.EncodePrompt(data.Problems[i]), row[..7]);
                var completion = ArithmeticTask.Normalize(tok.Decode(row[7..].Select(x => (int)x)));
                completions.Add(completion);
                int length = ArithmeticTask.Parse(completion).Length;
                for (int t = 0; t < 5; t++) Assert.Equal(t < length ? 1f : 0f, mask[(i * K + k) * 5 + t]);
            }
            Assert.Equal(K, completions.Distinct().Count());                              // identical completions were dropped
        }
        // Seeded: the same data again.
        var again = Preferences.Make(sampler, world, problems, K, seed: 5);
        Assert.Equal(ids, again.Sequences.data<long>().ToArray());
    }

}

/// <summary>Chapter 7 run end to end: a seeded snapshot (bit-stable) and a quick run that must learn.</summary>
[Collection("chapters")]
public class DpoRunTests
{
    private static (string[] Csv, RunSummary Summary) Run(params string[] argv) => ChapterRun.Run(Dpo.Program.Main, "ch07", argv);

    [Fact]
    public void A_short_seeded_run_matches_its_snapshot_bit_for_bit_with_any_thread_count()
    {
        string[] common = ["--seed", "5", "--steps", "4", "--batch-size", "16", "--train-prompts", "256", "--eval-every", "2"];
        var one = Run([.. common, "--threads", "1"]);
        var three = Run([.. common, "--threads", ChapterRun.ManyThreads]);
        Assert.Equal(one.Csv, three.Csv);
        Assert.Equal((one.Summary.Base, one.Summary.Final, one.Summary.Kl), (three.Summary.Base, three.Summary.Final, three.Summary.Kl));
        // The Plackett–Luce variant, 2 steps, pinned too.
        var pl = Run([.. common[..2], "--steps", "2", "--batch-size", "8", "--train-prompts", "128", "--eval-every", "0",
                      "--loss", "plackett-luce", "--ranking-size", "3"]);
        Snapshot.Match(perEngine: true, value: new { metrics = one.Csv, one.Summary.Base, one.Summary.Final, one.Summary.Kl, plackett_luce = pl.Csv });
    }

    [Fact]
    public void A_quick_run_raises_the_gold_score_of_its_samples()
    {
        var (_, summary) = Run("--quick", "--eval-every", "0");
        Assert.InRange(summary.Base, 0.34, 0.46);   // the base model's T = 1 samples (0.42 on MinTorch, 0.36 on TorchSharp)
        Assert.True(summary.Final >= summary.Base + 0.06, $"gold {summary.Base} → {summary.Final}: expected a rise of at least 0.06");
        var period = (double)summary.Extra["period_final"]!;
        Assert.True(period >= 0.85, $"'.' share after training {period}: DPO should have learned the style (base ≈ 0.56)");
        Assert.InRange(summary.Kl, 0.3, 5.0);
    }
}
