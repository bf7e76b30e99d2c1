using TorchSharp;
using static TorchSharp.torch;

namespace MinRL;

/// <summary>One problem of the arithmetic task: compute <c>A + B</c>, with A and B in 0..99.</summary>
public sealed record Problem(int A, int B)
{
    /// <summary>The true sum, 0..198.</summary>
    public int Answer => A + B;

    /// <summary>The prompt as text, before left padding: <c>"&lt;bos&gt;12+30="</c>.</summary>
    public string PromptText => $"<bos>{A}+{B}=";

    /// <summary>The reference completion: <c>"42&lt;eos&gt;"</c>, or <c>"42.&lt;eos&gt;"</c> with
    /// <paramref name="period"/>.</summary>
    public string CompletionText(bool period = false) => period ? $"{Answer}.<eos>" : $"{Answer}<eos>";

    public override string ToString() => $"{A}+{B}";
}

/// <summary>
/// What the task's rule sees in a completion: the tokens up to its first <c>&lt;eos&gt;</c>.
/// </summary>
/// <param name="Length">Tokens that count: through the first <c>&lt;eos&gt;</c> when there is one in the
/// first <see cref="ArithmeticTask.MaxCompletionLength"/> tokens, else all of those (at most 5).
/// Tokens after it are what every loss masks out.</param>
/// <param name="Terminated">An <c>&lt;eos&gt;</c> came within <see cref="ArithmeticTask.MaxCompletionLength"/>
/// tokens.</param>
/// <param name="WellFormed">Terminated, and the text before <c>&lt;eos&gt;</c> is a canonical number of 1–3
/// digits (no leading zero, except "0" itself), optionally followed by one <c>.</c>.</param>
/// <param name="Value">The number, when well-formed; null otherwise.</param>
/// <param name="Period">Terminated, and the token just before <c>&lt;eos&gt;</c> is <c>.</c> (whether or not the
/// rest is well-formed).</param>
public readonly record struct ParsedCompletion(int Length, bool Terminated, bool WellFormed, int? Value, bool Period);

/// <summary>One supervised example: the full sequence and which of its tokens are training targets.</summary>
/// <param name="Ids">The 12 token ids: the left-padded prompt (7), the completion through <c>&lt;eos&gt;</c>,
/// then <c>&lt;pad&gt;</c>.</param>
/// <param name="LossMask">True at the positions of the completion's tokens, <c>&lt;eos&gt;</c> included.
/// Position t is a target of the logits at position t − 1: predict <c>Ids[1..]</c> from <c>Ids[..^1]</c>
/// and weight by <c>LossMask[1..]</c>.</param>
public sealed record SftSequence(long[] Ids, bool[] LossMask);

/// <summary>Accuracy-style rates over a batch of completions (each in 0..1).</summary>
/// <param name="Accuracy">Share of completions that are correct.</param>
/// <param name="WellFormed">Share that are well-formed (right or wrong).</param>
/// <param name="Period">Share that end in <c>.</c> before <c>&lt;eos&gt;</c> (the preference world's style
/// feature).</param>
public sealed record TaskMetrics(double Accuracy, double WellFormed, double Period);

/// <summary>
/// The verifiable task every chapter trains on: <c>a+b=</c>, answer the sum.
/// </summary>
/// <remarks>
/// <para><b>Sequences.</b> A prompt is <c>&lt;bos&gt;a+b=</c> left-padded with <c>&lt;pad&gt;</c> to
/// <see cref="PromptLength"/> = 7 tokens, so the first completion token is always at position 7 and
/// no attention mask is needed. A completion is the sum's digits, optionally a <c>.</c>, then
/// <c>&lt;eos&gt;</c>: at most 3 + 1 + 1 = <see cref="MaxCompletionLength"/> = 5 tokens. Every sequence is
/// 12 tokens long.</para>
/// <code>
///   position   0     1     2     3  4  5  6    7  8  9  10    11
///   tokens   &lt;pad&gt; &lt;pad&gt; &lt;bos&gt;  4  7  +  9 =   5  6  .  &lt;eos&gt; &lt;pad&gt;
/// </code>
/// <para><b>Problems.</b> The 100 × 100 = 10,000 pairs (a, b) with a, b in 0..99, in an order shuffled
/// by the seed; the last 512 are held out for evaluation. Each problem's a and b are therefore
/// uniform in 0..99, and — unlike 10,000 independent draws, which would repeat about a third of the
/// pairs — no held-out problem appears in the training set: held-out accuracy measures
/// generalisation (carrying), not memory.</para>
/// <para><b>The rule</b> (what makes the task "verifiable", as in DeepSeek-R1's rule-based rewards):
/// a completion is read up to its first <c>&lt;eos&gt;</c> (anything after it is ignored, as every loss
/// masks it out); it is <i>correct</i> when that text is the sum written canonically — no leading
/// zeros, so "05" is not 5 — with at most one trailing <c>.</c>. A completion with no <c>&lt;eos&gt;</c> in its
/// 5 tokens never finished and is wrong. Canonical numbers give every problem exactly two correct
/// completions ("56&lt;eos&gt;" and "56.&lt;eos&gt;"), both of which the base model is trained on.</para>
/// <para><b>Reward</b> = 1[correct] + formatBonus·1[well-formed]. The optional format bonus (default 0)
/// rewards the shape of an answer whether or not its value is right, like R1's format reward.</para>
/// </remarks>
public sealed class ArithmeticTask
{
    /// <summary>Largest operand: a and b are in 0..MaxOperand.</summary>
    public const int MaxOperand = 99;
    /// <summary>Prompt tokens, after left padding.</summary>
    public const int PromptLength = 7;
    /// <summary>Most completion tokens: 3 digits, <c>.</c>, <c>&lt;eos&gt;</c>.</summary>
    public const int MaxCompletionLength = 5;
    /// <summary>Tokens in every sequence: <see cref="PromptLength"/> + <see cref="MaxCompletionLength"/>.</summary>
    public const int SequenceLength = PromptLength + MaxCompletionLength;
    /// <summary>All (a, b) pairs: (MaxOperand + 1)².</summary>
    public const int DefaultCount = (MaxOperand + 1) * (MaxOperand + 1);
    /// <summary>Problems held out for evaluation.</summary>
    public const int DefaultHeldOut = 512;

    private static CharTokenizer Tok => CharTokenizer.Instance;
    private static readonly int DotId = CharTokenizer.Instance.EncodeToIds(".")[0];

    /// <summary>The seed that shuffled the problems.</summary>
    public long Seed { get; }
    /// <summary>All problems, training ones first, then the held-out ones.</summary>
    public IReadOnlyList<Problem> Problems { get; }
    /// <summary>The training problems (the first Count − HeldOut).</summary>
    public IReadOnlyList<Problem> Train { get; }
    /// <summary>The held-out problems (the last HeldOut), for evaluation only.</summary>
    public IReadOnlyList<Problem> Eval { get; }

    /// <summary>The tokenizer the task's sequences use.</summary>
    public static CharTokenizer Tokenizer => Tok;

    /// <param name="seed">Shuffles the problems, so it decides the split. Keep it fixed across a study
    /// (and across chapters) so every run evaluates on the same held-out set.</param>
    /// <param name="count">How many of the 10,000 (a, b) pairs to use (fewer for quick tests).</param>
    /// <param name="heldOut">How many of them, from the end, to hold out.</param>
    public ArithmeticTask(long seed = 0, int count = DefaultCount, int heldOut = DefaultHeldOut)
    {
        if (count < 2 || count > DefaultCount)
            throw new ArgumentOutOfRangeException(nameof(count), count,
                $"ArithmeticTask: count must be in 2..{DefaultCount} (there are {DefaultCount} distinct problems)");
        if (heldOut < 1 || heldOut >= count)
            throw new ArgumentOutOfRangeException(nameof(heldOut), heldOut,
                $"ArithmeticTask: heldOut must be in 1..{count - 1} (count is {count})");
        Seed = seed;
        var all = new List<Problem>(DefaultCount);
        for (int a = 0; a <= MaxOperand; a++)
            for (int b = 0; b <= MaxOperand; b++)
                all.Add(new Problem(a, b));
        new SplitMix64(seed).Shuffle(all);
        var problems = all.GetRange(0, count).ToArray();
        Problems = problems;
        Train = problems[..(count - heldOut)];
        Eval = problems[(count - heldOut)..];
    }

    /// <summary><paramref name="n"/> problems drawn uniformly, with replacement, from
    /// <paramref name="pool"/>.</summary>
    public static IReadOnlyList<Problem> Sample(IReadOnlyList<Problem> pool, int n, SplitMix64 rng)
    {
        if (pool.Count == 0) throw new ArgumentException("Sample: the pool of problems is empty", nameof(pool));
        var batch = new Problem[n];
        for (int i = 0; i < n; i++) batch[i] = pool[rng.NextInt(pool.Count)];
        return batch;
    }

    // ------------------------------------------------------------------ encoding

    /// <summary>The prompt's 7 ids: <c>&lt;pad&gt;</c>s, then <c>&lt;bos&gt;a+b=</c>.</summary>
    public static long[] EncodePrompt(Problem problem)
    {
        if (problem.A is < 0 or > MaxOperand || problem.B is < 0 or > MaxOperand)
            throw new ArgumentOutOfRangeException(nameof(problem), problem,
                $"EncodePrompt: operands must be in 0..{MaxOperand}, got {problem.A}+{problem.B}");
        var ids = Tok.EncodeToIds(problem.PromptText);
        var padded = new long[PromptLength];
        int pad = PromptLength - ids.Count; // ≥ 2: the longest prompt, <bos>99+99=, has 7 tokens
        for (int i = 0; i < ids.Count; i++) padded[pad + i] = ids[i];
        for (int i = 0; i < pad; i++) padded[i] = Tok.PadId;
        return padded;
    }

    /// <summary>The prompts as an int64 tensor of shape (N, 7), left-padded.</summary>
    public static torch.Tensor EncodePrompts(IReadOnlyList<Problem> problems)
    {
        var ids = new long[problems.Count * PromptLength];
        for (int i = 0; i < problems.Count; i++) EncodePrompt(problems[i]).CopyTo(ids, i * PromptLength);
        return torch.tensor(ids, [problems.Count, PromptLength]);
    }

    /// <summary>
    /// A completion as 5 ids: its text (special tokens written literally, e.g. <c>"56.&lt;eos&gt;"</c>),
    /// cut after its first <c>&lt;eos&gt;</c>, then padded with <c>&lt;pad&gt;</c>. Throws if it has more than 5
    /// tokens before that cut.
    /// </summary>
    public static long[] EncodeCompletion(string completion)
    {
        var ids = Tok.EncodeToIds(completion);
        int eos = IndexOfEos(ids);
        int n = eos >= 0 ? eos + 1 : ids.Count;
        if (n > MaxCompletionLength)
            throw new ArgumentException($"EncodeCompletion: \"{completion}\" has {n} tokens before its end, " +
                                        $"more than the {MaxCompletionLength} a completion may have",
                                        nameof(completion));
        var padded = new long[MaxCompletionLength];
        for (int i = 0; i < MaxCompletionLength; i++) padded[i] = i < n ? ids[i] : Tok.PadId;
        return padded;
    }

    /// <summary>Completions as an int64 tensor of shape (N, 5) (see <see cref="EncodeCompletion"/>).</summary>
    public static torch.Tensor EncodeCompletions(IReadOnlyList<string> completions)
    {
        var ids = new long[completions.Count * MaxCompletionLength];
        for (int i = 0; i < completions.Count; i++)
            EncodeCompletion(completions[i]).CopyTo(ids, i * MaxCompletionLength);
        return torch.tensor(ids, [completions.Count, MaxCompletionLength]);
    }

    /// <summary>The part of a completion the rule reads, as text: through its first <c>&lt;eos&gt;</c> within
    /// 5 tokens, else its first 5 tokens. <c>"42&lt;eos&gt;&lt;pad&gt;&lt;pad&gt;"</c> →
    /// <c>"42&lt;eos&gt;"</c>.</summary>
    public static string Normalize(string completion)
    {
        var ids = Tok.EncodeToIds(completion);
        return Tok.Decode(ids.Take(Parse(ids).Length));
    }

    private static int IndexOfEos(IReadOnlyList<int> ids)
    {
        for (int i = 0; i < ids.Count; i++) if (ids[i] == Tok.EosId) return i;
        return -1;
    }

    // ------------------------------------------------------------------ the rule

    /// <summary>Reads a completion (its token ids) the way the rule does; see <see cref="ParsedCompletion"/>.</summary>
    public static ParsedCompletion Parse(IReadOnlyList<int> completionIds)
    {
        // Find <eos> within the first MaxCompletionLength tokens; a later one does not count.
        int limit = Math.Min(completionIds.Count, MaxCompletionLength);
        int eos = -1;
        for (int i = 0; i < limit; i++) if (completionIds[i] == Tok.EosId) { eos = i; break; }
        if (eos < 0) return new ParsedCompletion(limit, false, false, null, false);

        // The body before <eos>: digits, then at most one '.'.
        bool period = eos > 0 && completionIds[eos - 1] == DotId;
        int digits = period ? eos - 1 : eos;
        bool wellFormed = digits is >= 1 and <= 3;
        int value = 0;
        for (int i = 0; i < digits && wellFormed; i++)
        {
            int d = completionIds[i] - CharTokenizer.DigitId(0);
            if (d is < 0 or > 9) wellFormed = false;
            else value = 10 * value + d;
        }
        // Canonical numbers only: "05" is not a way of writing 5.
        if (wellFormed && digits > 1 && completionIds[0] == CharTokenizer.DigitId(0)) wellFormed = false;
        return new ParsedCompletion(eos + 1, true, wellFormed, wellFormed ? value : null, period);
    }

    /// <summary>Reads a completion given as int64 ids (a row of a token tensor).</summary>
    public static ParsedCompletion Parse(ReadOnlySpan<long> completionIds)
    {
        var ids = new int[completionIds.Length];
        for (int i = 0; i < ids.Length; i++)
            ids[i] = completionIds[i] >= 0 && completionIds[i] < Tok.VocabSize
                ? (int)completionIds[i]
                : throw new ArgumentOutOfRangeException(nameof(completionIds), completionIds[i],
                    $"Parse: token id {completionIds[i]} at position {i} " +
                    $"is outside the vocabulary (0..{Tok.VocabSize - 1})");
        return Parse(ids);
    }

    /// <summary>Reads a completion given as text, special tokens written literally (<c>"56.&lt;eos&gt;"</c>).</summary>
    public static ParsedCompletion Parse(string completion) => Parse(Tok.EncodeToIds(completion));

    /// <summary>The rule: well-formed and equal to the sum.</summary>
    public static bool IsCorrect(Problem problem, ParsedCompletion c) => c.WellFormed && c.Value == problem.Answer;
    public static bool IsCorrect(Problem problem, string completion) => IsCorrect(problem, Parse(completion));
    public static bool IsCorrect(Problem problem, IReadOnlyList<int> completionIds)
        => IsCorrect(problem, Parse(completionIds));
    public static bool IsCorrect(Problem problem, ReadOnlySpan<long> completionIds)
        => IsCorrect(problem, Parse(completionIds));

    /// <summary>1–3 canonical digits, an optional <c>.</c>, then <c>&lt;eos&gt;</c> within 5 tokens.</summary>
    public static bool IsWellFormed(string completion) => Parse(completion).WellFormed;
    public static bool IsWellFormed(IReadOnlyList<int> completionIds) => Parse(completionIds).WellFormed;
    public static bool IsWellFormed(ReadOnlySpan<long> completionIds) => Parse(completionIds).WellFormed;

    /// <summary>The token before the first <c>&lt;eos&gt;</c> is <c>.</c> (says nothing about the rest).</summary>
    public static bool EndsWithPeriod(string completion) => Parse(completion).Period;
    public static bool EndsWithPeriod(IReadOnlyList<int> completionIds) => Parse(completionIds).Period;
    public static bool EndsWithPeriod(ReadOnlySpan<long> completionIds) => Parse(completionIds).Period;

    /// <summary>1[correct] + <paramref name="formatBonus"/>·1[well-formed].</summary>
    public static double Reward(Problem problem, ParsedCompletion c, double formatBonus = 0)
        => (IsCorrect(problem, c) ? 1.0 : 0.0) + (c.WellFormed ? formatBonus : 0.0);
    public static double Reward(Problem problem, string completion, double formatBonus = 0)
        => Reward(problem, Parse(completion), formatBonus);
    public static double Reward(Problem problem, IReadOnlyList<int> completionIds, double formatBonus = 0)
        => Reward(problem, Parse(completionIds), formatBonus);
    public static double Reward(Problem problem, ReadOnlySpan<long> completionIds, double formatBonus = 0)
        => Reward(problem, Parse(completionIds), formatBonus);

    /// <summary>
    /// The rewards of a batch of sampled completions: <paramref name="completions"/> is int64 of shape
    /// (N, L) (the generated tokens only, L ≥ 1), row i answering <paramref name="problems"/>[i].
    /// Returns float32 of shape (N).
    /// </summary>
    public static torch.Tensor Rewards(IReadOnlyList<Problem> problems, torch.Tensor completions,
                                       double formatBonus = 0)
    {
        var rows = Rows(problems, completions, "Rewards");
        var r = new float[problems.Count];
        for (int i = 0; i < r.Length; i++) r[i] = (float)Reward(problems[i], rows[i], formatBonus);
        return torch.tensor(r, [r.LongLength]);
    }

    /// <summary>Accuracy, well-formed share and period share of a batch of completions, int64 (N, L).</summary>
    public static TaskMetrics Measure(IReadOnlyList<Problem> problems, torch.Tensor completions)
    {
        var rows = Rows(problems, completions, "Measure");
        int correct = 0, formed = 0, period = 0;
        for (int i = 0; i < rows.Length; i++)
        {
            if (IsCorrect(problems[i], rows[i])) correct++;
            if (rows[i].WellFormed) formed++;
            if (rows[i].Period) period++;
        }
        double n = Math.Max(1, rows.Length);
        return new TaskMetrics(correct / n, formed / n, period / n);
    }

    private static ParsedCompletion[] Rows(IReadOnlyList<Problem> problems, torch.Tensor completions, string op)
    {
        var shape = completions.shape;
        if (completions.dtype != ScalarType.Int64 || shape.Length != 2 || shape[0] != problems.Count)
            throw new ArgumentException($"{op}: completions must be int64 of shape ({problems.Count}, L) " +
                "— one row per problem — " +
                $"but got {completions.dtype} of shape [{string.Join(", ", shape)}]", nameof(completions));
        var ids = completions.cpu().data<long>().ToArray();
        int L = (int)shape[1];
        var rows = new ParsedCompletion[problems.Count];
        for (int i = 0; i < rows.Length; i++) rows[i] = Parse(ids.AsSpan(i * L, L));
        return rows;
    }

    // ------------------------------------------------------------------ supervised data for the base model

    /// <summary>The full 12-token sequence of a problem and its reference answer (with or without the
    /// trailing <c>.</c>), and the mask of its completion tokens.</summary>
    public static SftSequence SftExample(Problem problem, bool period)
    {
        var ids = new long[SequenceLength];
        var mask = new bool[SequenceLength];
        EncodePrompt(problem).CopyTo(ids, 0);
        var completion = EncodeCompletion(problem.CompletionText(period));
        completion.CopyTo(ids, PromptLength);
        int n = Parse(completion).Length; // through <eos>
        for (int i = 0; i < n; i++) mask[PromptLength + i] = true;
        return new SftSequence(ids, mask);
    }

    /// <summary>
    /// A supervised batch: ids int64 (N, 12) and lossMask float32 (N, 12) (1 on completion tokens, so it
    /// multiplies per-token losses directly). Each answer ends in <c>.</c> or not by a fair coin from
    /// <paramref name="rng"/>: the base model must vary on that style, so that the preference world's
    /// style bonus has a direction the reward model and DPO can find.
    /// </summary>
    public static (torch.Tensor ids, torch.Tensor lossMask) SftBatch(IReadOnlyList<Problem> problems, SplitMix64 rng)
    {
        var ids = new long[problems.Count * SequenceLength];
        var mask = new float[problems.Count * SequenceLength];
        for (int i = 0; i < problems.Count; i++)
        {
            var ex = SftExample(problems[i], period: rng.NextBool());
            ex.Ids.CopyTo(ids, i * SequenceLength);
            for (int t = 0; t < SequenceLength; t++) mask[i * SequenceLength + t] = ex.LossMask[t] ? 1f : 0f;
        }
        return (torch.tensor(ids, [problems.Count, SequenceLength]),
                torch.tensor(mask, [problems.Count, SequenceLength]));
    }

    /// <summary><see cref="SftBatch(IReadOnlyList{Problem}, SplitMix64)"/> with a fresh generator seeded by
    /// <paramref name="seed"/>.</summary>
    public static (torch.Tensor ids, torch.Tensor lossMask) SftBatch(IReadOnlyList<Problem> problems, long seed)
        => SftBatch(problems, new SplitMix64(seed));
}
