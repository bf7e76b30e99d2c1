using TorchSharp;
using static TorchSharp.torch;

namespace MinRL;

/// <summary>What the two completions of a pair differ in, by the gold scorer's two features.</summary>
public enum PairKind
{
    /// <summary>Same gold score (same correctness and same style, or both malformed): the label is a coin
    /// flip.</summary>
    Tie,
    /// <summary>Same correctness, one ends in <c>.</c> and the other does not: the easy, surface direction.</summary>
    StyleOnly,
    /// <summary>Same style, one correct and the other not: the reward model must verify the sum.</summary>
    CorrectnessOnly,
    /// <summary>They differ in both.</summary>
    Both,
}

/// <summary>
/// One labelled comparison: two completions of <see cref="Problem"/>, the one the (simulated) labeller
/// preferred first. Completions are text with special tokens written literally, cut after their first
/// <c>&lt;eos&gt;</c> (see <see cref="ArithmeticTask.Normalize"/>).
/// </summary>
public sealed record PreferencePair(
    Problem Problem, string Chosen, string Rejected, double GoldChosen, double GoldRejected, PairKind Kind)
{
    /// <summary>GoldChosen − GoldRejected; negative when the noisy label went against the gold scorer.</summary>
    public double GoldMargin => GoldChosen - GoldRejected;
}

/// <summary>
/// A world of human-like preferences over completions of the arithmetic task, with its hidden truth
/// known — the setting of chapters 5–7 (reward model, RLHF, DPO).
/// </summary>
/// <remarks>
/// <para><b>The gold scorer</b> (what the "humans" really value, hidden from the learner):</para>
/// <code>
///   gold(y) = 1[y correct] + 0.3 · 1[y ends in "."]     if y is well-formed
///   gold(y) = 0                                           if y is malformed
/// </code>
/// <para>Correctness is hard to learn from comparisons; the trailing <c>.</c> is a surface style the
/// base model already varies on (it was trained on both), so a learner can find it easily. That
/// asymmetry is the point: a reward model learns the style long before the arithmetic, and a policy
/// optimised hard against it gains style while correctness stalls or falls — reward over-optimisation,
/// measured in gold.</para>
/// <para><b>The labels</b> are noisy as human labels are: for completions y₁, y₂ with gold g₁, g₂, the
/// labeller prefers y₁ with the Bradley–Terry probability</para>
/// <code>
///   P(y₁ ≻ y₂) = σ((g₁ − g₂) / τ),   τ = 0.1,
/// </code>
/// <para>so a pair that differs only in style (Δ = 0.3) is labelled the gold way 95% of the time, one
/// that differs in correctness (Δ ≥ 0.7) almost always, and a tie (Δ = 0) is a coin flip.</para>
/// </remarks>
public sealed class PreferenceWorld
{
    /// <summary>The labeller's temperature τ: smaller is less noisy.</summary>
    public const double DefaultTau = 0.1;
    /// <summary>The gold value of the trailing <c>.</c>, next to 1 for a correct answer.</summary>
    public const double DefaultStyleBonus = 0.3;

    public double Tau { get; }
    public double StyleBonus { get; }

    public PreferenceWorld(double tau = DefaultTau, double styleBonus = DefaultStyleBonus)
    {
        if (!(tau > 0) || double.IsInfinity(tau))
            throw new ArgumentOutOfRangeException(nameof(tau), tau, "PreferenceWorld: tau must be positive and finite");
        Tau = tau;
        StyleBonus = styleBonus;
    }

    // ------------------------------------------------------------------ the gold scorer

    /// <summary>The two features gold is made of: correct, and styled (well-formed and ending in <c>.</c>).
    /// A malformed completion has neither.</summary>
    public static (bool correct, bool styled) Features(Problem problem, ParsedCompletion c)
        => (ArithmeticTask.IsCorrect(problem, c), c.WellFormed && c.Period);

    /// <summary>gold = 1[correct] + StyleBonus·1[ends in "."] for a well-formed completion, 0 for a malformed
    /// one.</summary>
    public double Gold(Problem problem, ParsedCompletion c)
    {
        var (correct, styled) = Features(problem, c);
        return (correct ? 1.0 : 0.0) + (styled ? StyleBonus : 0.0);
    }
    public double Gold(Problem problem, string completion) => Gold(problem, ArithmeticTask.Parse(completion));
    public double Gold(Problem problem, IReadOnlyList<int> completionIds)
        => Gold(problem, ArithmeticTask.Parse(completionIds));
    public double Gold(Problem problem, ReadOnlySpan<long> completionIds)
        => Gold(problem, ArithmeticTask.Parse(completionIds));

    /// <summary>Mean gold of a batch of completions, int64 of shape (N, L), row i answering problems[i].</summary>
    public double MeanGold(IReadOnlyList<Problem> problems, torch.Tensor completions)
    {
        var shape = completions.shape;
        if (completions.dtype != ScalarType.Int64 || shape.Length != 2 || shape[0] != problems.Count)
            throw new ArgumentException($"MeanGold: completions must be int64 of shape ({problems.Count}, L) " +
                                        $"but got {completions.dtype} of shape [{string.Join(", ", shape)}]",
                                        nameof(completions));
        var ids = completions.cpu().data<long>().ToArray();
        int L = (int)shape[1];
        double sum = 0;
        for (int i = 0; i < problems.Count; i++) sum += Gold(problems[i], ids.AsSpan(i * L, L));
        return problems.Count == 0 ? 0 : sum / problems.Count;
    }

    /// <summary>What two completions of one problem differ in (see <see cref="PairKind"/>).</summary>
    public static PairKind Classify(Problem problem, string first, string second)
    {
        var (c1, s1) = Features(problem, ArithmeticTask.Parse(first));
        var (c2, s2) = Features(problem, ArithmeticTask.Parse(second));
        return (c1 != c2, s1 != s2) switch
        {
            (false, false) => PairKind.Tie,
            (false, true) => PairKind.StyleOnly,
            (true, false) => PairKind.CorrectnessOnly,
            _ => PairKind.Both,
        };
    }

    // ------------------------------------------------------------------ the labeller

    /// <summary>Bradley–Terry: the probability that the labeller prefers the first completion,
    /// σ((goldFirst − goldSecond) / τ).</summary>
    public double PreferenceProbability(double goldFirst, double goldSecond) => Sigmoid((goldFirst - goldSecond) / Tau);

    internal static double Sigmoid(double x) => x >= 0 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x) / (1 + Math.Exp(x));

    /// <summary>
    /// Labelled pairs from two completions per problem drawn from a policy: <paramref name="sample"/> is
    /// called twice on <paramref name="problems"/> and must return one completion (text, special tokens
    /// literal) per problem each time. See the overload that takes the completions.
    /// </summary>
    public IReadOnlyList<PreferencePair> MakePairs(IReadOnlyList<Problem> problems,
        Func<IReadOnlyList<Problem>, IReadOnlyList<string>> sample, long seed)
        => MakePairs(problems, sample(problems), sample(problems), seed);

    /// <summary>
    /// Labelled pairs from given completions: pair i compares <paramref name="first"/>[i] with
    /// <paramref name="second"/>[i]. Each completion is cut after its first <c>&lt;eos&gt;</c>; pairs whose
    /// two completions are then identical are dropped (there is nothing to compare). The label is drawn
    /// from Bradley–Terry with a generator seeded by <paramref name="seed"/>, one draw per kept pair in order.
    /// </summary>
    public IReadOnlyList<PreferencePair> MakePairs(IReadOnlyList<Problem> problems,
        IReadOnlyList<string> first, IReadOnlyList<string> second, long seed)
    {
        if (first.Count != problems.Count || second.Count != problems.Count)
            throw new ArgumentException("MakePairs: need one completion per problem in each list, " +
                $"got {problems.Count} problems, {first.Count} first and {second.Count} second completions");
        var rng = new SplitMix64(seed);
        var pairs = new List<PreferencePair>(problems.Count);
        for (int i = 0; i < problems.Count; i++)
        {
            var p = problems[i];
            string y1 = ArithmeticTask.Normalize(first[i]), y2 = ArithmeticTask.Normalize(second[i]);
            if (y1 == y2) continue;
            double g1 = Gold(p, y1), g2 = Gold(p, y2);
            bool firstWins = rng.NextDouble() < PreferenceProbability(g1, g2);
            var kind = Classify(p, y1, y2);
            pairs.Add(firstWins
                ? new PreferencePair(p, y1, y2, g1, g2, kind)
                : new PreferencePair(p, y2, y1, g2, g1, kind));
        }
        return pairs;
    }

    /// <summary>Labelled pairs from sampled token ids: <paramref name="first"/> and <paramref name="second"/>
    /// are int64 of shape (N, L) (generated tokens only), row i answering <paramref name="problems"/>[i].</summary>
    public IReadOnlyList<PreferencePair> MakePairs(IReadOnlyList<Problem> problems,
        torch.Tensor first, torch.Tensor second, long seed)
        => MakePairs(problems, DecodeRows(problems, first, "first"), DecodeRows(problems, second, "second"), seed);

    private static string[] DecodeRows(IReadOnlyList<Problem> problems, torch.Tensor completions, string which)
    {
        var shape = completions.shape;
        if (completions.dtype != ScalarType.Int64 || shape.Length != 2 || shape[0] != problems.Count)
            throw new ArgumentException($"MakePairs: {which} completions must be int64 " +
                                        $"of shape ({problems.Count}, L) " +
                                        $"but got {completions.dtype} of shape [{string.Join(", ", shape)}]");
        var ids = completions.cpu().data<long>().ToArray();
        int L = (int)shape[1];
        var rows = new string[problems.Count];
        for (int i = 0; i < rows.Length; i++) rows[i] = CharTokenizer.Instance.Decode(ids.Skip(i * L).Take(L));
        return rows;
    }

    /// <summary>
    /// The noise ceiling: the accuracy of the Bayes-optimal labeller-predictor on these pairs, the mean
    /// over pairs of max(p, 1 − p) with p = σ(Δgold / τ).
    /// </summary>
    /// <remarks>
    /// A reward model is scored by how often it prefers the pair's chosen completion. Even one that knew
    /// the gold scorer exactly could only predict the more likely label, and is right with probability
    /// max(p, 1 − p) on each pair: no reward model can expect to beat this accuracy on these labels. Ties
    /// contribute 0.5 each, which is why the ceiling sits well below 1 when many pairs tie.
    /// </remarks>
    public double NoiseCeiling(IEnumerable<PreferencePair> pairs)
    {
        double sum = 0;
        int n = 0;
        foreach (var pair in pairs)
        {
            double p = PreferenceProbability(pair.GoldChosen, pair.GoldRejected);
            sum += Math.Max(p, 1 - p);
            n++;
        }
        return n == 0 ? double.NaN : sum / n;
    }

    /// <summary>The pairs as int64 tensors: prompts (N, 7), chosen (N, 5) and rejected (N, 5) completions,
    /// padded with <c>&lt;pad&gt;</c> after <c>&lt;eos&gt;</c>.</summary>
    public static (torch.Tensor prompts, torch.Tensor chosen, torch.Tensor rejected) Encode(
        IReadOnlyList<PreferencePair> pairs)
        => (ArithmeticTask.EncodePrompts(pairs.Select(p => p.Problem).ToArray()),
            ArithmeticTask.EncodeCompletions(pairs.Select(p => p.Chosen).ToArray()),
            ArithmeticTask.EncodeCompletions(pairs.Select(p => p.Rejected).ToArray()));

    // ------------------------------------------------------------------ rankings of K > 2 completions

    /// <summary>
    /// A ranking of K completions with gold scores <paramref name="golds"/>, drawn from the
    /// Plackett–Luce model (the K-way Bradley–Terry): the first place goes to i with probability
    /// exp(gᵢ/τ) / Σⱼ exp(gⱼ/τ), the second is drawn the same way from the rest, and so on.
    /// Returns the indices into <paramref name="golds"/>, most preferred first. For K = 2 it is the
    /// Bradley–Terry label: P(0 first) = σ((g₀ − g₁)/τ).
    /// </summary>
    public static int[] SampleRanking(IReadOnlyList<double> golds, double tau, SplitMix64 rng)
    {
        if (!(tau > 0)) throw new ArgumentOutOfRangeException(nameof(tau), tau, "SampleRanking: tau must be positive");
        var left = Enumerable.Range(0, golds.Count).ToList();
        var order = new int[golds.Count];
        var w = new double[golds.Count];
        for (int place = 0; place < order.Length; place++)
        {
            // Weights exp((g − max)/τ): the same distribution, without overflow for small τ.
            double max = double.NegativeInfinity;
            foreach (int i in left) max = Math.Max(max, golds[i]);
            double total = 0;
            for (int k = 0; k < left.Count; k++) total += w[k] = Math.Exp((golds[left[k]] - max) / tau);
            double u = rng.NextDouble() * total;
            int pick = left.Count - 1; // rounding can leave u just past the last cumulative sum
            for (int k = 0; k < left.Count; k++)
            {
                u -= w[k];
                if (u < 0) { pick = k; break; }
            }
            order[place] = left[pick];
            left.RemoveAt(pick);
        }
        return order;
    }

    /// <summary><see cref="SampleRanking(IReadOnlyList{double}, double, SplitMix64)"/> at this world's τ.</summary>
    public int[] SampleRanking(IReadOnlyList<double> golds, SplitMix64 rng) => SampleRanking(golds, Tau, rng);
}
