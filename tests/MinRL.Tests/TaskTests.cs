using TorchSharp;
using static TorchSharp.torch;

namespace MinRL.Tests;

public class TaskTests
{
    private static readonly CharTokenizer Tok = CharTokenizer.Instance;

    // ------------------------------------------------------------------ the generator

    [Fact]
    public void SplitMix64_matches_the_reference_sequence()
    {
        // Reference outputs of SplitMix64 seeded with 0 (Vigna's splitmix64.c; also the first
        // outputs java.util.SplittableRandom gives for seed 0 with its golden gamma).
        var r = new SplitMix64(0);
        Assert.Equal(0xE220A8397B1DCDAFUL, r.NextUInt64());
        Assert.Equal(0x6E789E6AA1B965F4UL, r.NextUInt64());
        Assert.Equal(0x06C45D188009454FUL, r.NextUInt64());
    }

    [Fact]
    public void SplitMix64_NextInt_is_uniform_and_in_range()
    {
        var r = new SplitMix64(7);
        var counts = new int[7];
        for (int i = 0; i < 70_000; i++) counts[r.NextInt(7)]++;
        // Each count is Binomial(70000, 1/7): mean 10000, sd ≈ 93; 5 sd is a loose but real bound.
        Assert.All(counts, c => Assert.InRange(c, 10_000 - 465, 10_000 + 465));
        Assert.Throws<ArgumentOutOfRangeException>(() => r.NextInt(0));
    }

    // ------------------------------------------------------------------ problems and split

    [Fact]
    public void Same_seed_gives_the_same_problems_and_split()
    {
        var a = new ArithmeticTask(seed: 3);
        var b = new ArithmeticTask(seed: 3);
        Assert.Equal(a.Problems, b.Problems);
        Assert.Equal(a.Eval, b.Eval);
        Assert.NotEqual(a.Problems, new ArithmeticTask(seed: 4).Problems);
    }

    [Fact]
    public void The_problem_set_is_pinned()
    {
        // Pinned: a cached base model is only valid for the data it was trained on, so a change to
        // the generator or the shuffle must show up here (and bump Kit.Version).
        var task = new ArithmeticTask(seed: 0);
        // The same values come from an independent Python transcription of SplitMix64 + Lemire +
        // Fisher–Yates over the 100 × 100 pairs in (a, b) order.
        Assert.Equal(new[] { "14+37", "27+44", "70+33", "14+41" }, task.Problems.Take(4).Select(p => p.ToString()));
        Assert.Equal(new[] { "27+24", "39+77" }, task.Eval.Take(2).Select(p => p.ToString()));
    }

    [Fact]
    public void Problems_are_all_pairs_and_the_held_out_set_is_disjoint()
    {
        var task = new ArithmeticTask(seed: 11);
        Assert.Equal(10_000, task.Problems.Count);
        Assert.Equal(10_000 - 512, task.Train.Count);
        Assert.Equal(512, task.Eval.Count);
        Assert.Equal(10_000, task.Problems.Distinct().Count());
        Assert.All(task.Problems, p => { Assert.InRange(p.A, 0, 99); Assert.InRange(p.B, 0, 99); });
        Assert.Empty(task.Train.Intersect(task.Eval));
        Assert.Equal(task.Problems.Skip(10_000 - 512), task.Eval); // the last 512
        // The held-out set is a fair sample: its mean operand is near 49.5 (sd of the mean ≈ 1.27).
        Assert.InRange(task.Eval.Average(p => p.A), 49.5 - 5, 49.5 + 5);
    }

    [Fact]
    public void A_smaller_task_is_a_prefix_of_the_same_shuffle()
    {
        var small = new ArithmeticTask(seed: 5, count: 100, heldOut: 10);
        var full = new ArithmeticTask(seed: 5);
        Assert.Equal(full.Problems.Take(100), small.Problems);
        Assert.Equal(90, small.Train.Count);
        Assert.Equal(10, small.Eval.Count);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ArithmeticTask(count: 10_001));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ArithmeticTask(count: 100, heldOut: 100));
    }

    // ------------------------------------------------------------------ encoding

    [Fact]
    public void Prompts_are_left_padded_to_seven_tokens()
    {
        var problems = new[] { new Problem(0, 0), new Problem(99, 99), new Problem(47, 9) };
        var t = ArithmeticTask.EncodePrompts(problems);
        Assert.Equal(new long[] { 3, 7 }, t.shape);
        Assert.Equal(ScalarType.Int64, t.dtype);
        Assert.Equal(new long[]
        {
            0, 0, 1, 3, 13, 3, 14,      // <pad><pad><bos>0+0=
            1, 12, 12, 13, 12, 12, 14,  // <bos>99+99=
            0, 1, 7, 10, 13, 12, 14,    // <pad><bos>47+9=
        }, t.data<long>().ToArray());
        Assert.Equal("<pad><bos>47+9=", Tok.Decode(ArithmeticTask.EncodePrompt(problems[2])));
        Assert.Throws<ArgumentOutOfRangeException>(() => ArithmeticTask.EncodePrompt(new Problem(100, 1)));
    }

    [Fact]
    public void Completions_are_cut_after_eos_and_padded_to_five()
    {
        Assert.Equal(new long[] { 8, 9, 15, 2, 0 }, ArithmeticTask.EncodeCompletion("56.<eos>"));
        Assert.Equal(new long[] { 8, 9, 2, 0, 0 }, ArithmeticTask.EncodeCompletion("56<eos>77"));
        Assert.Equal(new long[] { 4, 5, 6, 7, 8 }, ArithmeticTask.EncodeCompletion("12345"));
        var e = Assert.Throws<ArgumentException>(() => ArithmeticTask.EncodeCompletion("123456<eos>"));
        Assert.Contains("123456<eos>", e.Message);
        Assert.Equal(new long[] { 2, 5 }, ArithmeticTask.EncodeCompletions(["1<eos>", "2<eos>"]).shape);
        Assert.Equal("42<eos>", ArithmeticTask.Normalize("42<eos><pad><pad>"));
        Assert.Equal("12345", ArithmeticTask.Normalize("1234567"));
    }

    // ------------------------------------------------------------------ the rule

    public static TheoryData<int, int, string, bool, bool, bool> Completions => new()
    {
        // a, b, completion, correct, well-formed, ends with '.'
        { 20, 22, "42<eos>", true, true, false },
        { 20, 22, "42.<eos>", true, true, true },
        { 20, 22, "41<eos>", false, true, false },
        { 20, 22, "41.<eos>", false, true, true },
        { 20, 22, "42", false, false, false },              // no <eos>: never finished
        { 20, 22, "42...", false, false, false },           // no <eos> within 5 tokens
        { 20, 22, "42..<eos>", false, false, true },        // two periods
        { 20, 22, "4.2<eos>", false, false, false },
        { 20, 22, "42<eos>99.<eos>", true, true, false },   // garbage after <eos> is ignored
        { 20, 22, "4<eos>2<eos>", false, true, false },     // <eos> in the middle ends it
        { 2, 2, "4<eos>2<eos>", true, true, false },
        { 2, 3, "05<eos>", false, false, false },           // leading zero: not canonical
        { 20, 22, "042<eos>", false, false, false },
        { 0, 0, "0<eos>", true, true, false },
        { 0, 0, "0.<eos>", true, true, true },
        { 0, 0, "00<eos>", false, false, false },
        { 99, 99, "198.<eos>", true, true, true },          // the longest completion: 5 tokens
        { 20, 22, "1234<eos>", false, false, false },       // 4 digits
        { 20, 22, "1234.<eos>", false, false, false },      // <eos> is the 6th token: too late
        { 20, 22, "<eos>", false, false, false },           // empty answer
        { 20, 22, ".<eos>", false, false, true },
        { 20, 22, "<pad>42<eos>", false, false, false },
        { 20, 22, "4+2<eos>", false, false, false },
        { 20, 22, "<bos>42<eos>", false, false, false },
    };

    [Theory]
    [MemberData(nameof(Completions))]
    public void Rule_on_hand_made_completions(int a, int b, string completion, bool correct, bool wellFormed, bool period)
    {
        var p = new Problem(a, b);
        Assert.Equal(correct, ArithmeticTask.IsCorrect(p, completion));
        Assert.Equal(wellFormed, ArithmeticTask.IsWellFormed(completion));
        Assert.Equal(period, ArithmeticTask.EndsWithPeriod(completion));
        // The three input forms agree.
        var ids = Tok.EncodeToIds(completion);
        var longs = ids.Select(i => (long)i).ToArray();
        Assert.Equal(ArithmeticTask.Parse(completion), ArithmeticTask.Parse(ids));
        Assert.Equal(ArithmeticTask.Parse(completion), ArithmeticTask.Parse(longs));
        Assert.Equal(correct, ArithmeticTask.IsCorrect(p, longs));
        // reward = 1[correct] + bonus·1[well-formed]
        Assert.Equal(correct ? 1.0 : 0.0, ArithmeticTask.Reward(p, completion));
        Assert.Equal((correct ? 1.0 : 0.0) + (wellFormed ? 0.25 : 0.0), ArithmeticTask.Reward(p, ids, formatBonus: 0.25));
    }

    [Fact]
    public void Parse_reports_length_and_value()
    {
        Assert.Equal(new ParsedCompletion(4, true, true, 56, true), ArithmeticTask.Parse("56.<eos><pad>"));
        Assert.Equal(new ParsedCompletion(5, false, false, null, false), ArithmeticTask.Parse("1111111"));
        Assert.Equal(new ParsedCompletion(2, false, false, null, false), ArithmeticTask.Parse("11"));
        Assert.Throws<ArgumentOutOfRangeException>(() => ArithmeticTask.Parse(new long[] { 3, 16 }));
    }

    [Fact]
    public void Rewards_and_metrics_of_a_batch_tensor()
    {
        var problems = new[] { new Problem(20, 22), new Problem(1, 1), new Problem(5, 5), new Problem(9, 9) };
        var completions = ArithmeticTask.EncodeCompletions(["42.<eos>", "3<eos>", "10..<eos>", "18<eos>"]);
        var r = ArithmeticTask.Rewards(problems, completions, formatBonus: 0.1);
        Assert.Equal(new long[] { 4 }, r.shape);
        Assert.Equal(ScalarType.Float32, r.dtype);
        Assert.Equal(new[] { 1.1f, 0.1f, 0f, 1.1f }, r.data<float>().ToArray());
        Assert.Equal(new TaskMetrics(0.5, 0.75, 0.5), ArithmeticTask.Measure(problems, completions));

        var e = Assert.Throws<ArgumentException>(() => ArithmeticTask.Rewards(problems[..3], completions));
        Assert.Contains("(3, L)", e.Message);
        Assert.Contains("[4, 5]", e.Message);
        Assert.Throws<ArgumentException>(() => ArithmeticTask.Rewards(problems, completions.to_type(ScalarType.Float32)));
    }

    // ------------------------------------------------------------------ supervised data

    [Fact]
    public void SftExample_masks_the_completion_through_eos()
    {
        var p = new Problem(47, 9);
        var dotted = ArithmeticTask.SftExample(p, period: true);
        Assert.Equal(new long[] { 0, 1, 7, 10, 13, 12, 14, 8, 9, 15, 2, 0 }, dotted.Ids);
        Assert.Equal(new[] { false, false, false, false, false, false, false, true, true, true, true, false }, dotted.LossMask);

        var plain = ArithmeticTask.SftExample(p, period: false);
        Assert.Equal("<pad><bos>47+9=56<eos><pad><pad>", Tok.Decode(plain.Ids));
        Assert.Equal(new[] { false, false, false, false, false, false, false, true, true, true, false, false }, plain.LossMask);

        var longest = ArithmeticTask.SftExample(new Problem(99, 99), period: true);
        Assert.Equal("<bos>99+99=198.<eos>", Tok.Decode(longest.Ids));
        Assert.Equal(5, longest.LossMask.Count(m => m));
    }

    [Fact]
    public void SftBatch_is_seeded_and_half_of_its_answers_end_in_a_period()
    {
        var task = new ArithmeticTask(seed: 0);
        var problems = task.Train.Take(4000).ToArray();
        var (ids, mask) = ArithmeticTask.SftBatch(problems, seed: 9);
        Assert.Equal(new long[] { 4000, 12 }, ids.shape);
        Assert.Equal(new long[] { 4000, 12 }, mask.shape);
        Assert.Equal(ScalarType.Int64, ids.dtype);
        Assert.Equal(ScalarType.Float32, mask.dtype);
        Assert.Equal(ids.data<long>().ToArray(), ArithmeticTask.SftBatch(problems, seed: 9).ids.data<long>().ToArray());
        Assert.NotEqual(ids.data<long>().ToArray(), ArithmeticTask.SftBatch(problems, seed: 10).ids.data<long>().ToArray());

        var flat = ids.data<long>().ToArray();
        var m = mask.data<float>().ToArray();
        int periods = 0;
        for (int i = 0; i < problems.Length; i++)
        {
            var row = flat.AsSpan(i * 12, 12);
            var completion = row[7..];
            Assert.True(ArithmeticTask.IsCorrect(problems[i], completion));
            if (ArithmeticTask.EndsWithPeriod(completion)) periods++;
            Assert.Equal(ArithmeticTask.EncodePrompt(problems[i]), row[..7].ToArray());
            // The mask covers exactly the completion through <eos>.
            int len = ArithmeticTask.Parse(completion).Length;
            for (int t = 0; t < 12; t++) Assert.Equal(t >= 7 && t < 7 + len ? 1f : 0f, m[i * 12 + t]);
        }
        // Binomial(4000, 1/2): sd ≈ 32.
        Assert.InRange(periods, 2000 - 160, 2000 + 160);
    }

    [Fact]
    public void Sample_draws_from_the_pool_with_a_seed()
    {
        var task = new ArithmeticTask(seed: 0, count: 50, heldOut: 10);
        var a = ArithmeticTask.Sample(task.Train, 200, new SplitMix64(1));
        Assert.Equal(200, a.Count);
        Assert.All(a, p => Assert.Contains(p, task.Train));
        Assert.Equal(a, ArithmeticTask.Sample(task.Train, 200, new SplitMix64(1)));
    }
}

public class PreferenceWorldTests
{
    private static readonly PreferenceWorld World = new();
    private static readonly Problem P = new(20, 22); // answer 42

    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    [Theory]
    [InlineData("42<eos>", 1.0)]
    [InlineData("42.<eos>", 1.3)]
    [InlineData("41.<eos>", 0.3)]
    [InlineData("41<eos>", 0.0)]
    [InlineData("42..<eos>", 0.0)]   // malformed, though it ends in '.'
    [InlineData("042.<eos>", 0.0)]   // malformed: leading zero
    [InlineData("42.", 0.0)]         // never finished
    [InlineData("42.<eos>7", 1.3)]   // after <eos> does not count
    public void Gold_on_hand_made_completions(string completion, double gold)
    {
        Assert.Equal(gold, World.Gold(P, completion), 12);
        Assert.Equal(gold, World.Gold(P, ArithmeticTask.EncodeCompletion(completion)), 12);
    }

    [Fact]
    public void MeanGold_of_a_batch()
    {
        var problems = new[] { P, P, new Problem(1, 1) };
        var completions = ArithmeticTask.EncodeCompletions(["42.<eos>", "41.<eos>", "2<eos>"]);
        Assert.Equal((1.3 + 0.3 + 1.0) / 3, World.MeanGold(problems, completions), 12);
    }

    [Theory]
    [InlineData("42<eos>", "42.<eos>", PairKind.StyleOnly)]
    [InlineData("41<eos>", "41.<eos>", PairKind.StyleOnly)]
    [InlineData("42<eos>", "41<eos>", PairKind.CorrectnessOnly)]
    [InlineData("42.<eos>", "43.<eos>", PairKind.CorrectnessOnly)]
    [InlineData("42.<eos>", "41<eos>", PairKind.Both)]
    [InlineData("42<eos>", "41.<eos>", PairKind.Both)]
    [InlineData("41<eos>", "43<eos>", PairKind.Tie)]
    [InlineData("41<eos>", "4..<eos>", PairKind.Tie)]         // wrong vs malformed: both gold 0
    [InlineData("41.<eos>", "4..<eos>", PairKind.StyleOnly)]  // 0.3 vs 0: the malformed one has no style
    public void Pairs_are_classified_by_what_they_differ_in(string a, string b, PairKind kind)
    {
        Assert.Equal(kind, PreferenceWorld.Classify(P, a, b));
        Assert.Equal(kind, PreferenceWorld.Classify(P, b, a));
        Assert.Equal(kind == PairKind.Tie, World.Gold(P, a) == World.Gold(P, b));
    }

    private static IReadOnlyList<string> FakePolicy(IReadOnlyList<Problem> problems, SplitMix64 rng)
        => problems.Select(p => (rng.NextInt(5)) switch
        {
            0 => p.CompletionText(period: false),
            1 => p.CompletionText(period: true),
            2 => $"{p.Answer + 1}<eos>",
            3 => $"{p.Answer + 1}.<eos>",
            _ => $"{p.Answer}..<eos>",
        }).ToArray();

    [Fact]
    public void MakePairs_drops_identical_pairs_and_labels_consistently()
    {
        var problems = new ArithmeticTask(seed: 0).Train.Take(2000).ToArray();
        var rng = new SplitMix64(3);
        var pairs = World.MakePairs(problems, ps => FakePolicy(ps, rng), seed: 1);
        // Two independent draws from 5 styles are identical 1/5 of the time.
        Assert.InRange(pairs.Count, 2000 * 4 / 5 - 100, 2000 * 4 / 5 + 100);
        Assert.All(pairs, pair =>
        {
            Assert.NotEqual(pair.Chosen, pair.Rejected);
            Assert.Equal(World.Gold(pair.Problem, pair.Chosen), pair.GoldChosen);
            Assert.Equal(World.Gold(pair.Problem, pair.Rejected), pair.GoldRejected);
            Assert.Equal(PreferenceWorld.Classify(pair.Problem, pair.Chosen, pair.Rejected), pair.Kind);
        });
        // All four kinds occur.
        Assert.Equal(4, pairs.Select(p => p.Kind).Distinct().Count());

        // Identical after normalisation (what follows <eos> never counts) is identical.
        var same = World.MakePairs([P, P], ["42<eos><pad><pad>", "42<eos>"], ["42<eos>", "41<eos>"], seed: 0);
        var only = Assert.Single(same);
        Assert.Equal(new[] { "41<eos>", "42<eos>" }, new[] { only.Chosen, only.Rejected }.Order());

        var e = Assert.Throws<ArgumentException>(() => World.MakePairs([P], ["1<eos>"], [], seed: 0));
        Assert.Contains("1 problems", e.Message);
    }

    [Fact]
    public void MakePairs_from_token_tensors_matches_text()
    {
        var problems = new[] { P, P, new Problem(1, 2) };
        string[] first = ["42.<eos>", "41<eos>", "3<eos>"], second = ["42<eos>", "41<eos>", "3.<eos>"];
        var fromText = World.MakePairs(problems, first, second, seed: 3);
        var fromIds = World.MakePairs(problems, ArithmeticTask.EncodeCompletions(first), ArithmeticTask.EncodeCompletions(second), seed: 3);
        Assert.Equal(2, fromIds.Count); // the identical pair is dropped
        Assert.Equal(fromText, fromIds);
        Assert.Throws<ArgumentException>(() => World.MakePairs(problems, ArithmeticTask.EncodeCompletions(first[..2]), ArithmeticTask.EncodeCompletions(second), seed: 3));
    }

    [Fact]
    public void MakePairs_is_deterministic_in_its_seed()
    {
        var problems = Enumerable.Repeat(P, 500).ToArray();
        var first = Enumerable.Repeat("42.<eos>", 500).ToArray();
        var second = Enumerable.Repeat("42<eos>", 500).ToArray();
        var a = World.MakePairs(problems, first, second, seed: 5);
        Assert.Equal(a, World.MakePairs(problems, first, second, seed: 5));
        Assert.NotEqual(a, World.MakePairs(problems, first, second, seed: 6));
    }

    [Theory]
    [InlineData("42.<eos>", "42<eos>", 0.1)]    // Δ = 0.3: σ(3) ≈ 0.953
    [InlineData("42<eos>", "42.<eos>", 0.1)]    // Δ = −0.3: σ(−3) ≈ 0.047
    [InlineData("41<eos>", "43<eos>", 0.1)]     // Δ = 0: a coin flip
    [InlineData("42.<eos>", "42<eos>", 0.3)]    // Δ = 0.3 at τ = 0.3: σ(1) ≈ 0.731
    [InlineData("41.<eos>", "42<eos>", 1.0)]    // Δ = −0.7 at τ = 1: σ(−0.7) ≈ 0.332
    public void Labels_follow_Bradley_Terry(string first, string second, double tau)
    {
        var world = new PreferenceWorld(tau);
        const int n = 20_000;
        var pairs = world.MakePairs(Enumerable.Repeat(P, n).ToArray(), Enumerable.Repeat(first, n).ToArray(),
            Enumerable.Repeat(second, n).ToArray(), seed: 42);
        Assert.Equal(n, pairs.Count);
        double expected = Sigmoid((world.Gold(P, first) - world.Gold(P, second)) / tau);
        Assert.Equal(expected, world.PreferenceProbability(world.Gold(P, first), world.Gold(P, second)), 12);
        double observed = pairs.Count(p => p.Chosen == first) / (double)n;
        double sd = Math.Sqrt(expected * (1 - expected) / n);
        Assert.InRange(observed, expected - 5 * sd, expected + 5 * sd);
    }

    [Fact]
    public void Noise_ceiling_of_hand_made_pairs()
    {
        // Gold margins 1, 0.3, 0 and 0.7 at τ = 0.1: mean of σ(10), σ(3), 0.5, σ(7).
        var pairs = new[]
        {
            new PreferencePair(P, "42<eos>", "41<eos>", 1.0, 0.0, PairKind.CorrectnessOnly),
            new PreferencePair(P, "42<eos>", "42.<eos>", 1.0, 1.3, PairKind.StyleOnly), // labelled against gold
            new PreferencePair(P, "41<eos>", "43<eos>", 0.0, 0.0, PairKind.Tie),
            new PreferencePair(P, "42<eos>", "41.<eos>", 1.0, 0.3, PairKind.Both),
        };
        // σ(10) = 0.9999546021312976, σ(3) = 0.9525741268224334, σ(7) = 0.9990889488055994
        double expected = (0.9999546021312976 + 0.9525741268224334 + 0.5 + 0.9990889488055994) / 4;
        Assert.Equal(0.8629044194398326, expected, 15);
        Assert.Equal(expected, World.NoiseCeiling(pairs), 12);
        Assert.Equal(0.5, World.NoiseCeiling(pairs[2..3]), 12);
        Assert.True(double.IsNaN(World.NoiseCeiling([])));
    }

    [Fact]
    public void Noise_ceiling_is_what_the_gold_oracle_scores()
    {
        // The Bayes-optimal predictor prefers the higher-gold completion (ties: either). Over many
        // labelled pairs its accuracy must match the ceiling computed from the margins alone.
        var problems = new ArithmeticTask(seed: 0).Train.ToArray();
        var rng = new SplitMix64(8);
        var pairs = World.MakePairs(problems, ps => FakePolicy(ps, rng), seed: 2);
        var nonTies = pairs.Where(p => p.Kind != PairKind.Tie).ToArray();
        double oracle = nonTies.Count(p => p.GoldChosen > p.GoldRejected) / (double)nonTies.Length;
        double ceiling = World.NoiseCeiling(nonTies);
        Assert.InRange(oracle, ceiling - 0.01, ceiling + 0.01);
        Assert.InRange(World.NoiseCeiling(pairs), 0.5, ceiling);
    }

    [Fact]
    public void Plackett_Luce_first_places_follow_the_softmax_of_gold()
    {
        double[] golds = [1.3, 1.0, 0.3, 0.0];
        const double tau = 0.5; // not 1, so a sampler that forgot to divide by τ fails
        var rng = new SplitMix64(4);
        var first = new int[4];
        var secondGivenFirst0 = new int[4];
        int firstWas0 = 0;
        const int n = 40_000;
        for (int i = 0; i < n; i++)
        {
            var order = PreferenceWorld.SampleRanking(golds, tau, rng);
            Assert.Equal(new[] { 0, 1, 2, 3 }, order.Order());
            first[order[0]]++;
            if (order[0] == 0) { firstWas0++; secondGivenFirst0[order[1]]++; }
        }
        double z = golds.Sum(g => Math.Exp(g / tau));
        for (int k = 0; k < 4; k++)
        {
            double p = Math.Exp(golds[k] / tau) / z;
            Assert.InRange(first[k] / (double)n, p - 5 * Math.Sqrt(p * (1 - p) / n), p + 5 * Math.Sqrt(p * (1 - p) / n));
        }
        // The second place is drawn the same way from the rest.
        double z1 = z - Math.Exp(golds[0] / tau);
        for (int k = 1; k < 4; k++)
        {
            double p = Math.Exp(golds[k] / tau) / z1;
            double sd = Math.Sqrt(p * (1 - p) / firstWas0);
            Assert.InRange(secondGivenFirst0[k] / (double)firstWas0, p - 5 * sd, p + 5 * sd);
        }
    }

    [Fact]
    public void Plackett_Luce_edge_cases()
    {
        var rng = new SplitMix64(0);
        // A tiny τ ranks by gold, without overflow.
        Assert.Equal(new[] { 1, 3, 2, 0 }, PreferenceWorld.SampleRanking([0.0, 1.3, 0.3, 1.0], 1e-6, rng));
        Assert.Empty(PreferenceWorld.SampleRanking([], 0.1, rng));
        Assert.Equal(new[] { 0 }, PreferenceWorld.SampleRanking([5.0], 0.1, rng));
        Assert.Throws<ArgumentOutOfRangeException>(() => PreferenceWorld.SampleRanking([1.0, 2.0], 0, rng));
        // K = 2 is Bradley–Terry: P(0 first) = σ(Δ/τ) = σ(3).
        int wins = 0;
        for (int i = 0; i < 20_000; i++) if (World.SampleRanking([1.3, 1.0], rng)[0] == 0) wins++;
        double p = Sigmoid(3), sd = Math.Sqrt(p * (1 - p) / 20_000);
        Assert.InRange(wins / 20_000.0, p - 5 * sd, p + 5 * sd);
    }

    [Fact]
    public void Pairs_encode_to_token_tensors()
    {
        var pairs = World.MakePairs([P, new Problem(1, 2)], ["42.<eos>", "3<eos>"], ["41<eos>", "4.<eos>"], seed: 0);
        var (prompts, chosen, rejected) = PreferenceWorld.Encode(pairs);
        Assert.Equal(new long[] { 2, 7 }, prompts.shape);
        Assert.Equal(new long[] { 2, 5 }, chosen.shape);
        Assert.Equal(new long[] { 2, 5 }, rejected.shape);
        var c = chosen.data<long>().ToArray();
        Assert.Equal(pairs[0].Chosen, CharTokenizer.Instance.Decode(c[..5].Where(id => id != 0)));
    }
}
