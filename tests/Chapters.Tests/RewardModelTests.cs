using TorchSharp;
using RewardModel;
using static TorchSharp.torch;
using static MinRL.Chapters.Tests.Expect;

namespace MinRL.Chapters.Tests;

/// <summary>Chapter 5 (the Bradley–Terry reward model): the pure functions against known values.</summary>
public class RewardModelTests
{
    // The issue's hand-made scores (tests/reference/reward_model_known_values.py).
    private static readonly double[] ChosenScores = [1.0, 0.5, -0.2];
    private static readonly double[] RejectedScores = [0.0, 0.7, -1.2];
    private static readonly double[] MarginValues = [0.5, 0.0, 1.0];

    private static Tensor T(double[] x, bool grad = false) => tensor(x, [x.Length], requires_grad: grad);

    [Fact]
    public void Bradley_Terry_loss_and_its_gradient_match_PyTorch()
    {
        var rc = T(ChosenScores, grad: true);
        var rr = T(RejectedScores, grad: true);
        var loss = BradleyTerry.Loss(rc, rr);
        Assert.Equal(0.474887, loss.item<double>(), 6);                                  // the issue's value
        Assert.Equal(0.4748874148060125, loss.item<double>(), 1e-15);                    // PyTorch 1.13, float64
        var g = autograd.grad([loss], [rc, rr]);
        // ∂L/∂r_c = −σ(−Δ)/N, ∂L/∂r_r = +σ(−Δ)/N: Δ = 1, −0.2, 1 (PyTorch).
        Close([-0.08964714045666503, -0.18327799910415932, -0.08964714045666503], g[0], 1e-15, "dL/dr_c");
        Close([0.08964714045666503, 0.18327799910415932, 0.08964714045666503], g[1], 1e-15, "dL/dr_r");
    }

    [Fact]
    public void Margin_shifts_the_difference_as_in_Llama_2()
    {
        var rc = T(ChosenScores, grad: true);
        var rr = T(RejectedScores, grad: true);
        var loss = BradleyTerry.Loss(rc, rr, T(MarginValues));
        Assert.Equal(0.655121, loss.item<double>(), 6);                                  // the issue's value
        Assert.Equal(0.6551210113738812, loss.item<double>(), 1e-15);                    // PyTorch 1.13, float64
        var g = autograd.grad([loss], [rc, rr]);
        Close([-0.1258468895993818, -0.18327799910415932, -0.16666666666666666], g[0], 1e-15, "dL/dr_c");
        Close([0.1258468895993818, 0.18327799910415932, 0.16666666666666666], g[1], 1e-15, "dL/dr_r");
        // A zero margin is the plain loss, bit for bit.
        Assert.Equal(BradleyTerry.Loss(T(ChosenScores), T(RejectedScores)).item<double>(),
            BradleyTerry.Loss(T(ChosenScores), T(RejectedScores), zeros(3, float64)).item<double>());
    }

    [Fact]
    public void Loss_is_finite_and_right_for_extreme_differences()
    {
        // −log σ(100) = log(1 + e^−100) ≈ e^−100 ≈ 0; −log σ(−100) ≈ 100 (a naive log(sigmoid) gives inf).
        var loss = BradleyTerry.Loss(T([100.0, -100.0]), T([0.0, 0.0]));
        Assert.Equal(50.0, loss.item<double>(), 1e-12);
        var f32 = BradleyTerry.Loss(tensor(new[] { -200f }, [1]), tensor(new[] { 0f }, [1]));
        Assert.Equal(200f, f32.item<float>(), 1e-3f);
    }

    [Fact]
    public void Centring_term_matches_a_hand_computed_case_and_is_blind_to_the_difference()
    {
        var rc = T(ChosenScores, grad: true);
        var rr = T(RejectedScores, grad: true);
        // Sums r_c + r_r = [1, 1.2, −1.4], squares [1, 1.44, 1.96], mean 4.4/3; η = 0.01.
        var centre = BradleyTerry.CenteringLoss(rc, rr, 0.01);
        Assert.Equal(0.01 * 4.4 / 3, centre.item<double>(), 1e-16);
        Assert.Equal(0.014666666666666666, centre.item<double>(), 1e-16);                // PyTorch 1.13
        // Gradient 2η(r_c + r_r)/N, the same for both scores.
        var g = autograd.grad([centre], [rc, rr]);
        Close([0.006666666666666667, 0.008, -0.009333333333333334], g[0], 1e-17, "dC/dr_c");
        Close([0.006666666666666667, 0.008, -0.009333333333333334], g[1], 1e-17, "dC/dr_r");

        // Shifting every score by c leaves Bradley–Terry exactly where it was (only differences count) and
        // moves the centring term; η = 0 is an exact zero.
        double bt = BradleyTerry.Loss(T(ChosenScores), T(RejectedScores)).item<double>();
        var shifted = (T(ChosenScores) + 3.0, T(RejectedScores) + 3.0);
        Assert.Equal(bt, BradleyTerry.Loss(shifted.Item1, shifted.Item2).item<double>(), 1e-14);
        Assert.Equal(0.01 * (49 + 51.84 + 21.16) / 3, BradleyTerry.CenteringLoss(shifted.Item1, shifted.Item2, 0.01).item<double>(), 1e-14);
        Assert.Equal(0.0, BradleyTerry.CenteringLoss(shifted.Item1, shifted.Item2, 0).item<double>());
    }

    private static Tensor Completions(params string[] rows) =>
        tensor(rows.SelectMany(r => CharTokenizer.Instance.EncodeToIds(r).Select(i => (long)i)).ToArray(), [rows.Length, 5]);

    [Fact]
    public void Score_is_read_at_the_first_eos_or_the_last_token()
    {
        var completions = Completions(
            "56<eos><pad><pad>",      // <eos> in the middle, padding after: position 7 + 2
            "123.<eos>",              // <eos> last: 7 + 4
            "<eos><pad><pad><pad><pad>", // empty answer: 7 + 0
            "4<eos>78<eos>",          // tokens after the first <eos> are not padding: still the first, 7 + 1
            "12345");                 // never stopped: its last token, 7 + 4
        Assert.Equal([9L, 11L, 7L, 8L, 11L], BradleyTerry.ScorePositions(completions, 7).data<long>().ToArray());
        Assert.Equal([2L, 4L, 0L, 1L, 4L], BradleyTerry.ScorePositions(completions, 0).data<long>().ToArray());
        Assert.Throws<ArgumentException>(() => BradleyTerry.ScorePositions(tensor(new[] { 1f, 2f }, [1, 2]), 7));
    }

    [Fact]
    public void Scores_are_the_scalar_head_at_the_read_position_and_ignore_what_follows_eos()
    {
        manual_seed(11);
        var rm = new TinyGpt(new GptConfig { ScalarHead = true });
        var problems = new[] { new Problem(47, 9), new Problem(3, 5), new Problem(60, 40) };
        var prompts = ArithmeticTask.EncodePrompts(problems);                         // (3, 7)
        var completions = Completions("56<eos><pad><pad>", "8.<eos><pad><pad>", "1001<eos>");
        var scores = BradleyTerry.Scores(rm, prompts, completions).data<float>().ToArray();

        using (no_grad())
        {
            var all = rm.Scalar(rm.Hidden(cat([prompts, completions], 1))).data<float>().ToArray();   // (3, 12)
            Assert.Equal([all[0 * 12 + 9], all[1 * 12 + 9], all[2 * 12 + 11]], scores);
        }
        // Causal attention: what comes after <eos> cannot change the score; a token before it does.
        var after = Completions("56<eos>78", "8.<eos>9<eos>", "1001<eos>");
        Assert.Equal(scores, BradleyTerry.Scores(rm, prompts, after).data<float>().ToArray());
        var before = Completions("57<eos><pad><pad>", "8<eos><pad><pad><pad>", "1001<eos>");
        var changed = BradleyTerry.Scores(rm, prompts, before).data<float>().ToArray();
        Assert.NotEqual(scores[0], changed[0]);
        Assert.NotEqual(scores[1], changed[1]);
        Assert.Equal(scores[2], changed[2]);
    }

    private static PreferencePair Pair(int a, int b, string chosen, string rejected)
    {
        var world = new PreferenceWorld();
        var p = new Problem(a, b);
        return new PreferencePair(p, chosen, rejected, world.Gold(p, chosen), world.Gold(p, rejected), PreferenceWorld.Classify(p, chosen, rejected));
    }

    [Fact]
    public void Margins_are_the_gold_gap_when_the_label_agrees_with_gold_and_zero_otherwise()
    {
        var pairs = new[]
        {
            Pair(2, 3, "5.<eos>", "5<eos>"),    // style only, with gold: 1.3 − 1 = 0.3
            Pair(2, 3, "5<eos>", "6.<eos>"),    // both, with gold: 1 − 0.3 = 0.7
            Pair(2, 3, "6<eos>", "5.<eos>"),    // against gold: 0
            Pair(2, 3, "7<eos>", "6<eos>"),     // tie: 0
            Pair(2, 3, "5.<eos>", "05<eos>"),   // malformed rejected ("05" is not canonical, gold 0): 1.3
        };
        Close([0.6, 1.4, 0, 0, 2.6], BradleyTerry.Margins(pairs, 2.0), 1e-6, "margins");
        Assert.All(BradleyTerry.Margins(pairs, 0).data<float>().ToArray(), m => Assert.Equal(0f, m));
    }

    [Fact]
    public void Style_against_correctness_marks_the_both_pairs_whose_period_is_on_the_wrong_answer()
    {
        // 2 + 3 = 5.
        Assert.False(BradleyTerry.StyleAgainstCorrectness(Pair(2, 3, "5.<eos>", "6<eos>")));   // "." on the correct one
        Assert.False(BradleyTerry.StyleAgainstCorrectness(Pair(2, 3, "6<eos>", "5.<eos>")));   // the same pair, labelled the other way
        Assert.True(BradleyTerry.StyleAgainstCorrectness(Pair(2, 3, "5<eos>", "6.<eos>")));    // "." on the wrong one
        Assert.True(BradleyTerry.StyleAgainstCorrectness(Pair(2, 3, "6.<eos>", "5<eos>")));
        Assert.False(BradleyTerry.StyleAgainstCorrectness(Pair(2, 3, "5<eos>", "5.<eos>")));   // style only
        Assert.False(BradleyTerry.StyleAgainstCorrectness(Pair(2, 3, "5<eos>", "6<eos>")));    // correctness only
    }

    [Fact]
    public void Pair_evaluation_separates_label_accuracy_from_agreement_with_gold()
    {
        var pairs = new[]
        {
            Pair(2, 3, "5.<eos>", "5<eos>"),     // style only, label with gold;     scores 1 > 0: right both ways
            Pair(2, 3, "5<eos>", "5.<eos>"),     // style only, label against gold;  scores 0 < 1: wrong label, right by gold
            Pair(2, 3, "5<eos>", "6<eos>"),      // correctness only;                scores tie: half
            Pair(2, 3, "5<eos>", "6.<eos>"),     // both, "." on the wrong answer;   scores 0 < 1: wrong
            Pair(2, 3, "7<eos>", "6<eos>"),      // gold tie: counts for the labels, not for gold
        };
        var e = new PairEvaluation(pairs, new PreferenceWorld(), [1f, 0f, 0.2f, 0f, 1f], [0f, 1f, 0.2f, 1f, 0f]);
        Assert.Equal((1 + 0 + 0.5 + 0 + 1) / 5, e.Accuracy, 1e-15);
        Assert.Equal((1 + 1 + 0.5 + 0) / 4, e.GoldAgreement(null), 1e-15);
        Assert.Equal(0.5, e.LabelAccuracy(PairKind.StyleOnly));
        Assert.Equal(1.0, e.GoldAgreement(PairKind.StyleOnly));
        Assert.Equal(0.5, e.GoldAgreement(PairKind.CorrectnessOnly));
        Assert.Equal(0.0, e.BothAgreement(styleAgainstCorrectness: true));
        Assert.True(double.IsNaN(e.BothAgreement(styleAgainstCorrectness: false)));   // no such pair here
        Assert.True(double.IsNaN(e.GoldAgreement(PairKind.Tie)));
        Assert.Equal(0.5, e.Ceiling(PairKind.Tie));
        Assert.Equal((5, 2, 1), (e.Count(null), e.Count(PairKind.StyleOnly), e.BothCount(true)));
        // Scores that are gold itself: every gold-ordered pair right, and correlation 1.
        var gold = new PairEvaluation(pairs, new PreferenceWorld(),
            pairs.Select(p => (float)p.GoldChosen).ToArray(), pairs.Select(p => (float)p.GoldRejected).ToArray());
        Assert.Equal(1.0, gold.GoldAgreement(null));
        Assert.Equal(1.0, gold.GoldCorrelation, 1e-6);
    }

    [Fact]
    public void Accuracy_counts_ties_as_half_and_Pearson_matches_PyTorch()
    {
        Assert.Equal(0.625, BradleyTerry.Accuracy([1f, 0f, 2f, 3f], [0f, 0f, 3f, 1f]));   // right, tie, wrong, right
        Assert.True(double.IsNaN(BradleyTerry.Accuracy([], [])));
        Assert.Throws<ArgumentException>(() => BradleyTerry.Accuracy([1f], [1f, 2f]));
        // torch.corrcoef (PyTorch 1.13, reward_model_known_values.py).
        Assert.Equal(0.5278632693377103, BradleyTerry.Pearson([0.3, -1.2, 2.5, 0.0, 0.7], [1.3, 0.0, 1.0, 0.3, 0.0]), 1e-14);
        Assert.Equal(1.0, BradleyTerry.Pearson([1, 2, 3], [10, 20, 30]), 1e-15);
        Assert.True(double.IsNaN(BradleyTerry.Pearson([1, 1, 1], [1, 2, 3])));
    }

    [Fact]
    public void Normalize_gives_the_reference_completions_mean_0_and_std_1_without_changing_any_order()
    {
        manual_seed(5);
        var rm = new TinyGpt(new GptConfig { ScalarHead = true });
        var problems = new ArithmeticTask().Train.Take(64).ToArray();
        var prompts = ArithmeticTask.EncodePrompts(problems);
        var samples = Rollouts.Generate(rm, prompts, 5, generator: new Generator(9)).Completions;
        float[] Score() => BradleyTerry.ScoreAll((p, c) => BradleyTerry.Scores(rm, p, c), prompts, samples);
        var before = Score();
        var (mu, sigma) = BradleyTerry.Normalize(rm, prompts, samples);
        var after = Score();
        Assert.Equal(0.0, after.Average(v => (double)v), 1e-5);
        Assert.Equal(1.0, Math.Sqrt(after.Average(v => (double)v * v)), 1e-5);
        for (int i = 0; i < before.Length; i++) Assert.Equal((before[i] - mu) / sigma, after[i], 1e-4);
        var rank = (float[] x) => Enumerable.Range(0, x.Length).OrderBy(i => x[i]).ToArray();
        Assert.Equal(rank(before), rank(after));
    }
}

/// <summary>Chapter 5 run end to end: a seeded snapshot (bit-stable), the checkpoint, and a quick run that must learn.</summary>
[Collection("chapters")]
public class RewardModelRunTests
{
    /// <summary>Runs the chapter's Main into a temporary folder; returns metrics.csv, summary.json and the checkpoint's bytes.</summary>
    private static (string[] Csv, RunSummary Summary, byte[] Checkpoint, IReadOnlyDictionary<string, string> Metadata) Run(params string[] argv)
    {
        string dir = Path.Combine(Path.GetTempPath(), "minrl-ch05-" + Guid.NewGuid().ToString("N"));
        int threads = get_num_threads();
        try
        {
            Assert.Equal(0, RewardModel.Program.Main([.. argv, "--out", dir]));
            string ckpt = Path.Combine(dir, RewardModel.Program.CheckpointName);
            // The checkpoint loads, strictly, into a TinyGpt with a scalar head (what chapter 6 does).
            var rm = new TinyGpt(new GptConfig { ScalarHead = true });
            var loaded = Checkpoint.LoadInto(ckpt, rm.state_dict());
            return (File.ReadAllLines(Path.Combine(dir, "metrics.csv")), RunSummary.Read(Path.Combine(dir, "summary.json")),
                File.ReadAllBytes(ckpt), loaded.Metadata);
        }
        finally
        {
            set_num_threads(threads);
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_short_seeded_run_matches_its_snapshot_bit_for_bit_with_any_thread_count()
    {
        string[] common = ["--seed", "3", "--steps", "6", "--batch-size", "16", "--train-problems", "256", "--eval-repeats", "1",
                           "--eval-every", "3", "--center-coef", "0.01", "--margin-scale", "1"];
        var one = Run([.. common, "--threads", "1"]);
        var three = Run([.. common, "--threads", ChapterRun.ManyThreads]);
        Assert.Equal(one.Csv, three.Csv);
        Assert.Equal(one.Checkpoint, three.Checkpoint);                 // the saved weights, byte for byte
        Assert.Equal((one.Summary.Base, one.Summary.Final), (three.Summary.Base, three.Summary.Final));
        Assert.True(double.IsNaN(one.Summary.Kl));                      // a reward model has no policy
        Assert.Equal("minrl-reward-model", one.Metadata["kind"]);
        Assert.Equal(one.Summary.Final.ToString("R", System.Globalization.CultureInfo.InvariantCulture), one.Metadata["heldout_accuracy"]);
        var x = one.Summary.Extra;
        Snapshot.Match(perEngine: true, value: new
        {
            metrics = one.Csv, one.Summary.Base, one.Summary.Final,
            noise_ceiling = x["noise_ceiling"], gold_correlation = x["gold_correlation"], acc_style_only = x["acc_style_only"],
            acc_correctness_only = x["acc_correctness_only"], pairs_train = x["pairs_train"], pairs_eval = x["pairs_eval"],
            trainable_params = x["trainable_params"], samples_generated = x["samples_generated"],
        });
    }

    [Fact]
    public void A_quick_run_learns_the_style_and_beats_chance_on_held_out_pairs()
    {
        var (_, summary, _, _) = Run("--steps", "120", "--train-problems", "2048", "--eval-repeats", "2", "--eval-every", "0");
        var x = summary.Extra;
        double ceiling = (double)x["noise_ceiling"]!, style = (double)x["acc_style_only"]!, correctness = (double)x["acc_correctness_only"]!;
        Assert.InRange(summary.Base, 0.4, 0.6);                         // the untrained head: a coin flip
        Assert.True(summary.Final >= 0.62, $"held-out accuracy {summary.Base} → {summary.Final}: expected at least 0.62 (noise ceiling {ceiling})");
        Assert.True(summary.Final <= ceiling + 0.03, $"held-out accuracy {summary.Final} above the noise ceiling {ceiling}: the held-out labels leaked?");
        Assert.True(style >= 0.9, $"style-only pairs: {style} agree with gold, expected ≥ 0.9");
        // The chapter's lesson, as measured: the surface feature is learned far better than correctness.
        Assert.True(style - correctness >= 0.2, $"style-only {style} vs correctness-only {correctness}: expected a gap of at least 0.2");
        Assert.Equal(1.0, (double)x["models_held"]!);
    }
}
