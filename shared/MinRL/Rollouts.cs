// Rollouts: what every chapter does before it can compute a loss.
//
//   1. sample completions from the policy, a batch at a time     Rollouts.Generate
//   2. score given completions token by token (log π(a_t|s_t))   Rollouts.TokenLogProbs / Score
//   3. compare the policy with a reference, per token            Kl.K1 / K2 / K3
//   4. average per-token quantities over the real tokens only    Rollouts.MaskedMean / MaskedSum
//
// Vocabulary of the book. A prompt of P tokens is the state s_0; the completion's tokens a_0, a_1, …
// are the actions; s_t = prompt + a_0..a_{t−1}. The policy π_θ(a_t | s_t) is the softmax of the
// model's logits at the last position of s_t. A completion ends at its first <eos> (that <eos> is an
// action too: choosing to stop); the tokens after it are padding, and a completion mask of 1s and
// 0s keeps them out of every sum.
//
//   position      0 … P−1        P    P+1   P+2   P+3   P+4
//   sequence     <pad>… a+b=     5    6     <eos> <pad> <pad>
//   mask                         1    1     1     0     0
//   logits used  at position P−1 predict position P, …, at L−2 predict L−1
//
// Nothing algorithm-specific lives here: no losses, no advantages (each chapter writes its own).
using TorchSharp;
using static TorchSharp.torch;

namespace MinRL;

/// <summary>
/// A batch of sampled completions (what <see cref="Rollouts.Generate"/> returns).
/// </summary>
/// <param name="Sequences">int64 (N, P + M): prompt, then completion; every token after a row's first
/// <c>&lt;eos&gt;</c> is <c>&lt;pad&gt;</c>.</param>
/// <param name="Completions">int64 (N, M): the generated part of <paramref name="Sequences"/>.</param>
/// <param name="CompletionMask">float32 (N, M): 1 on the real completion tokens — up to and including the
/// first <c>&lt;eos&gt;</c> — and 0 after it. A row with no <c>&lt;eos&gt;</c> is all 1s.</param>
/// <param name="Lengths">int64 (N): the number of 1s in each row of the mask (≥ 1).</param>
/// <param name="SampleLogProbs">float32 (N, M): log-probability of each chosen token under the distribution it
/// was drawn from (temperature-scaled, top-k-renormalised); 0 where the mask is 0. For greedy decoding
/// (temperature 0) the point mass would give 0 everywhere, so it holds the model's own T = 1 log-probs instead.</param>
/// <param name="PromptLength">P, the prompt's length: the first completion token is at position P.</param>
public sealed record Rollout(Tensor Sequences, Tensor Completions, Tensor CompletionMask, Tensor Lengths,
    Tensor SampleLogProbs, int PromptLength)
{
    /// <summary>N, the number of sequences.</summary>
    public long Count => Sequences.shape[0];

    /// <summary>M, the completion width (the maxNewTokens it was generated with).</summary>
    public long MaxNewTokens => Completions.shape[1];

    /// <summary>int64 (N, P): the prompts.</summary>
    public Tensor Prompts => Sequences.narrow(1, 0, PromptLength);

    /// <summary>Completion <paramref name="i"/> as text, through its first <c>&lt;eos&gt;</c>
    /// (e.g. <c>"56.&lt;eos&gt;"</c>).</summary>
    public string CompletionText(int i)
    {
        if (i < 0 || i >= Count)
            throw new ArgumentOutOfRangeException(nameof(i), i, $"CompletionText: row {i} is outside 0..{Count - 1}");
        var ids = Completions.narrow(0, i, 1).cpu().data<long>().ToArray();
        return CharTokenizer.Instance.Decode(ids.Take((int)Lengths.cpu().data<long>()[i]));
    }
}

/// <summary>The result of <see cref="Rollouts.Score"/>: per-token log-probs, and what they were computed
/// from.</summary>
/// <param name="LogProbs">(N, L − P): log π(a_t | s_t) of each completion token (differentiable).</param>
/// <param name="Logits">(N, L − P, vocab): the (temperature-scaled) logits that predict each completion token.</param>
/// <param name="Hidden">(N, L, C): the final hidden states of every position, for a scalar head read in the same
/// forward pass — V(s_t) at positions P − 1 .. L − 2 for a value function, r at the <c>&lt;eos&gt;</c> position
/// for a reward model (<see cref="TinyGpt.Scalar"/>).</param>
public sealed record TokenScores(Tensor LogProbs, Tensor Logits, Tensor Hidden)
{
    /// <summary>(N, L − P): the entropy of the full next-token distribution at each completion position.</summary>
    public Tensor Entropy() => Rollouts.Entropy(Logits);
}

/// <summary>Sampling, scoring and masking for a batch of completions (see the file comment).</summary>
public static class Rollouts
{
    private static CharTokenizer Tok => CharTokenizer.Instance;

    // ------------------------------------------------------------------ sampling

    /// <summary>
    /// Samples up to <paramref name="maxNewTokens"/> tokens after each prompt, all rows at once, with the
    /// model's KV cache: the prompt is fed in one forward pass, then one token per step.
    /// </summary>
    /// <param name="model">The policy. Put in eval mode for the call (its mode is restored after); runs under
    /// no_grad.</param>
    /// <param name="prompts">int64 (N, P), left-padded to one length (see
    /// <see cref="ArithmeticTask.EncodePrompts"/>).</param>
    /// <param name="maxNewTokens">M: completion tokens at most; P + M must fit the model's block size.</param>
    /// <param name="temperature">Samples from softmax(logits / T). T → 0 sharpens towards the argmax; 0 itself is
    /// greedy decoding (argmax, first index on ties). 1 is the model's own distribution.</param>
    /// <param name="topK">When positive, only the k most likely tokens can be drawn (their probabilities
    /// renormalised; a token tied with the k-th is kept too). 0 = no cut.</param>
    /// <param name="generator">The random stream (default: MinTorch's default generator). N uniforms are
    /// drawn per step, in row order, so a seed fixes every sample whatever the thread count.</param>
    /// <remarks>
    /// <para><b>Sampling one token.</b> With z_j = logit_j / T over the allowed tokens (all, or the top k),
    /// p_j = e^(z_j − m) / S where m = max z and S = Σ e^(z_j − m) (subtracting m changes nothing but keeps
    /// exp from overflowing). The draw is inverse-CDF: u ~ U[0, 1), the token is the first j whose running sum
    /// of e^(z_j − m) exceeds u·S. Its log-probability is z_j − (m + log S).</para>
    /// <para><b>Stopping.</b> A row that emits <c>&lt;eos&gt;</c> is finished: its later tokens are
    /// <c>&lt;pad&gt;</c> (it is still fed through the model with the others, which costs little and keeps the
    /// batch rectangular).
    /// Generation stops early once every row is finished.</para>
    /// </remarks>
    public static Rollout Generate(TinyGpt model, Tensor prompts, int maxNewTokens, double temperature = 1.0,
        int topK = 0, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(prompts);
        if (prompts.dtype != ScalarType.Int64 || prompts.dim() != 2 || prompts.shape[0] < 1 || prompts.shape[1] < 1)
            throw new ArgumentException($"Generate: prompts must be int64 token ids of shape (N, P) with N, P ≥ 1, " +
                                        $"got {prompts.dtype} of shape {Str(prompts.shape)}");
        if (maxNewTokens < 1)
            throw new ArgumentOutOfRangeException(nameof(maxNewTokens), maxNewTokens,
                "Generate: maxNewTokens must be at least 1");
        if (!(temperature >= 0) || double.IsInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature,
                "Generate: temperature must be finite and ≥ 0 (0 = greedy)");
        if (topK < 0)
            throw new ArgumentOutOfRangeException(nameof(topK), topK, "Generate: topK must be ≥ 0 (0 = no cut)");
        int N = (int)prompts.shape[0], P = (int)prompts.shape[1], M = maxNewTokens, L = P + M;
        int V = model.Config.VocabSize;
        if (L > model.Config.BlockSize)
            throw new ArgumentException($"Generate: a prompt of {P} tokens plus {M} new tokens is {L} tokens, " +
                                        $"longer than the model's block size {model.Config.BlockSize}");

        var seq = new long[N * L];                            // row-major (N, L)
        var promptIds = prompts.cpu().data<long>().ToArray();
        for (int i = 0; i < N; i++)
        {
            Array.Copy(promptIds, i * P, seq, i * L, P);
            Array.Fill(seq, Tok.PadId, i * L + P, M);
        }
        var logp = new float[N * M];
        var length = new long[N];
        Array.Fill(length, M);                                // a row that never emits <eos> keeps all M tokens
        var finished = new bool[N];
        int live = N;
        var scratch = new double[V];
        var next = new long[N];

        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var _ = no_grad();
            using var scope = NewDisposeScope();             // TorchSharp: frees the cache when generation ends
            var cache = model.NewCache(N);
            Tensor input = prompts;                           // step 0 feeds the whole prompt, then one token a step
            for (int t = 0; t < M; t++)
            {
                // TorchSharp: a scope per token frees this token's activations now, not when generation ends
                // (for 2,048 rows they add up to hundreds of MiB); the next input is moved out to survive it.
                using var tokenScope = NewDisposeScope();
                var hidden = model.Hidden(input, cache);                            // (N, T, C)
                var last = hidden.narrow(1, hidden.shape[1] - 1, 1);                // (N, 1, C): the newest position
                var logits = model.Logits(last).cpu().data<float>().ToArray();      // (N·V): next-token logits
                // The uniforms come from the CPU generator whatever the device: the same seed, the same samples.
                var u = temperature > 0
                    ? rand(N, ScalarType.Float64, device: CPU, generator: generator).data<double>().ToArray() : null;
                for (int i = 0; i < N; i++)
                {
                    long token = Tok.PadId;
                    if (!finished[i])
                    {
                        var row = logits.AsSpan(i * V, V);
                        (token, logp[i * M + t]) = u is null
                            ? Greedy(row)
                            : Sample(row, temperature, topK, u[i], scratch);
                        if (token == Tok.EosId) { finished[i] = true; length[i] = t + 1; live--; }
                    }
                    seq[i * L + P + t] = token;
                    next[i] = token;
                }
                if (live == 0 || t == M - 1) break;
                input = tensor(next, [N, 1]).MoveToOuterDisposeScope();             // (N, 1)
            }
        }
        finally
        {
            if (wasTraining) model.train();
        }

        var mask = new float[N * M];
        for (int i = 0; i < N; i++) Array.Fill(mask, 1f, i * M, (int)length[i]);
        var sequences = tensor(seq, [N, L]);
        return new Rollout(sequences, sequences.narrow(1, P, M), tensor(mask, [N, M]), tensor(length, [N]),
            tensor(logp, [N, M]), P);
    }

    /// <summary>The argmax (first on ties) and its log-probability under softmax(logits), T = 1.</summary>
    private static (long token, float logp) Greedy(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int j = 1; j < logits.Length; j++) if (logits[j] > logits[best]) best = j;
        double m = logits[best], s = 0;
        foreach (float z in logits) s += Math.Exp(z - m);
        return (best, (float)(-Math.Log(s)));                 // log p_best = (z_best − m) − log S, and z_best = m
    }

    /// <summary>One draw from softmax(logits / T), restricted to the top k when k &gt; 0; see Generate's
    /// remarks.</summary>
    private static (long token, float logp) Sample(ReadOnlySpan<float> logits, double temperature, int topK, double u,
                                                   double[] scratch)
    {
        int V = logits.Length;
        // z_j = logit_j / T; tokens below the k-th largest z are not allowed (their z becomes −∞).
        var z = scratch.AsSpan(0, V);
        for (int j = 0; j < V; j++) z[j] = logits[j] / temperature;
        double cut = double.NegativeInfinity;
        if (topK > 0 && topK < V) cut = KthLargest(z, topK);
        double m = double.NegativeInfinity;
        foreach (double zj in z) if (zj > m) m = zj;
        double S = 0;
        for (int j = 0; j < V; j++) if (z[j] >= cut) S += Math.Exp(z[j] - m);
        // Inverse CDF: the first allowed token whose running sum passes u·S.
        double target = u * S, acc = 0;
        int token = -1, lastAllowed = -1;
        for (int j = 0; j < V; j++)
        {
            if (z[j] < cut) continue;
            lastAllowed = j;
            acc += Math.Exp(z[j] - m);
            if (acc > target) { token = j; break; }
        }
        if (token < 0) token = lastAllowed;                   // u·S rounded up to the total
        return (token, (float)(z[token] - m - Math.Log(S)));
    }

    /// <summary>The k-th largest of <paramref name="z"/> (1-based), by a small selection sort: V is tiny.</summary>
    private static double KthLargest(ReadOnlySpan<double> z, int k)
    {
        Span<double> top = k <= 64 ? stackalloc double[k] : new double[k];   // the k largest so far, descending
        int n = 0;
        foreach (double v in z)
        {
            if (n == k && v <= top[k - 1]) continue;
            int pos = n < k ? n++ : k - 1;
            while (pos > 0 && top[pos - 1] < v) { top[pos] = top[pos - 1]; pos--; }
            top[pos] = v;
        }
        return top[k - 1];
    }

    /// <summary>
    /// The completion mask of given completions, int64 (N, M) (generated tokens only, e.g. the chosen and
    /// rejected answers of preference pairs): float32 (N, M), 1 up to and including each row's first
    /// <c>&lt;eos&gt;</c> and 0 after it (all 1s when a row has none), and the lengths int64 (N) — the same
    /// rule <see cref="Generate"/> applies to its samples.
    /// </summary>
    public static (Tensor mask, Tensor lengths) CompletionMask(Tensor completions)
    {
        var (ids, N, M) = Rows(completions, "CompletionMask");
        var mask = new float[N * M];
        var lengths = new long[N];
        for (int i = 0; i < N; i++)
        {
            int n = M;
            for (int t = 0; t < M; t++) if (ids[i * M + t] == Tok.EosId) { n = t + 1; break; }
            lengths[i] = n;
            Array.Fill(mask, 1f, i * M, n);
        }
        return (tensor(mask, [N, M]), tensor(lengths, [N]));
    }

    /// <summary>A copy of int64 (N, M) completions with every token after each row's first <c>&lt;eos&gt;</c>
    /// replaced by <c>&lt;pad&gt;</c> (what <see cref="Generate"/> does to its samples).</summary>
    public static Tensor PadAfterEos(Tensor completions)
    {
        var (ids, N, M) = Rows(completions, "PadAfterEos");
        for (int i = 0; i < N; i++)
        {
            int t = 0;
            while (t < M && ids[i * M + t] != Tok.EosId) t++;
            for (t++; t < M; t++) ids[i * M + t] = Tok.PadId;
        }
        return tensor(ids, [N, M]);
    }

    private static (long[] ids, int N, int M) Rows(Tensor completions, string op)
    {
        ArgumentNullException.ThrowIfNull(completions);
        if (completions.dtype != ScalarType.Int64 || completions.dim() != 2)
            throw new ArgumentException($"{op}: completions must be int64 token ids of shape (N, M), " +
                                        $"got {completions.dtype} of shape {Str(completions.shape)}");
        return (completions.cpu().data<long>().ToArray(), (int)completions.shape[0], (int)completions.shape[1]);
    }

    // ------------------------------------------------------------------ scoring given completions

    /// <summary>
    /// log π(a_t | s_t) of every completion token: (N, L) sequences → (N, L − P), differentiable (chapters
    /// backpropagate through it). Row i, column t is the log-probability the model gives token
    /// sequences[i, P + t] after seeing sequences[i, ..P + t]: a gather over log_softmax of the logits at
    /// positions P − 1 .. L − 2. Multiply by a completion mask before summing: the columns after
    /// <c>&lt;eos&gt;</c> score padding.
    /// </summary>
    /// <param name="model">The model to score with (its current train/eval and grad modes apply).</param>
    /// <param name="sequences">int64 (N, L): prompts of <paramref name="promptLength"/> tokens, then
    /// completions.</param>
    /// <param name="promptLength">P: the first completion token is at position P.</param>
    /// <param name="temperature">Scores under softmax(logits / T), to match samples drawn at that temperature
    /// (default 1).</param>
    public static Tensor TokenLogProbs(TinyGpt model, Tensor sequences, int promptLength, double temperature = 1.0)
        => Score(model, sequences, promptLength, temperature).LogProbs;

    /// <summary><see cref="TokenLogProbs(TinyGpt, Tensor, int, double)"/> of a rollout's sequences.</summary>
    public static Tensor TokenLogProbs(TinyGpt model, Rollout rollout, double temperature = 1.0)
        => TokenLogProbs(model, rollout.Sequences, rollout.PromptLength, temperature);

    /// <summary>
    /// One forward pass that returns the per-token log-probs together with the logits they came from (for
    /// <see cref="TokenScores.Entropy"/>) and the hidden states of every position (for a value or reward head).
    /// Runs in whatever mode (train/eval, grad/no_grad) the caller is in.
    /// </summary>
    public static TokenScores Score(TinyGpt model, Tensor sequences, int promptLength, double temperature = 1.0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sequences);
        if (sequences.dtype != ScalarType.Int64 || sequences.dim() != 2)
            throw new ArgumentException($"TokenLogProbs: sequences must be int64 token ids of shape (N, L), " +
                                        $"got {sequences.dtype} of shape {Str(sequences.shape)}");
        long L = sequences.shape[1], P = promptLength;
        if (P < 1 || P >= L)
            throw new ArgumentException($"TokenLogProbs: promptLength must be in 1..{L - 1} " +
                                        $"for sequences of length {L} " +
                                        $"(at least one prompt and one completion token), got {P}");
        if (!(temperature > 0) || double.IsInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature,
                "TokenLogProbs: temperature must be positive and finite");

        var hidden = model.Hidden(sequences);                                   // (N, L, C)
        // The logits at positions P − 1 .. L − 2: position t predicts token t + 1.
        var logits = model.Logits(hidden.narrow(1, P - 1, L - P));              // (N, L−P, V)
        if (temperature != 1.0) logits = logits / temperature;
        var actions = sequences.narrow(1, P, L - P).unsqueeze(-1);             // (N, L−P, 1)
        var logp = logits.log_softmax(-1).gather(2, actions).squeeze(-1);      // (N, L−P)
        return new TokenScores(logp, logits, hidden);
    }

    /// <summary>
    /// Entropy of each categorical distribution over the last dim of <paramref name="logits"/>:
    /// H = −Σ_j p_j log p_j with log p = log_softmax(logits). (…, V) → (…). Differentiable.
    /// </summary>
    public static Tensor Entropy(Tensor logits)
    {
        var logp = logits.log_softmax(-1);
        return -(logp.exp() * logp).sum(-1);
    }

    // ------------------------------------------------------------------ masked reductions

    /// <summary>Σ x·mask over every element: a scalar. <paramref name="mask"/> holds 0s and 1s and broadcasts
    /// against x.</summary>
    public static Tensor MaskedSum(Tensor x, Tensor mask) => (x * mask).sum();

    /// <summary>Σ x·mask along <paramref name="dim"/>: with dim 1 on (N, M), one sum per sequence, shape (N).</summary>
    public static Tensor MaskedSum(Tensor x, Tensor mask, long dim) => (x * mask).sum(dim);

    /// <summary>
    /// Σ x·mask / Σ mask over every element: the mean over all real tokens of the batch (each token weighs the
    /// same, so long completions weigh more than short ones). An all-zero mask gives 0, not NaN.
    /// </summary>
    public static Tensor MaskedMean(Tensor x, Tensor mask) => (x * mask).sum() / Count(x, mask).sum().clamp(min: 1);

    /// <summary>
    /// Σ x·mask / Σ mask along <paramref name="dim"/>: with dim 1 on (N, M), the mean over each sequence's real
    /// tokens, shape (N). Averaging those (<c>.mean()</c>) weighs every sequence the same instead. A row whose
    /// mask is all 0 gives 0.
    /// </summary>
    public static Tensor MaskedMean(Tensor x, Tensor mask, long dim) =>
        (x * mask).sum(dim) / Count(x, mask).sum(dim).clamp(min: 1);

    /// <summary>The mask broadcast to x's shape (so the denominator counts what the numerator sums).</summary>
    private static Tensor Count(Tensor x, Tensor mask)
    {
        using var _ = no_grad();
        return mask.shape.SequenceEqual(x.shape) ? mask.detach() : (mask * ones_like(x)).detach();
    }

    private static string Str(long[] shape) => $"[{string.Join(", ", shape)}]";
}

/// <summary>Which of <see cref="Kl"/>'s estimators a chapter's KL term uses (its --kl-estimator option).</summary>
public enum KlEstimator { K1, K2, K3 }

/// <summary>
/// Per-token estimators of KL(π ‖ π_ref) from samples of π (Schulman, "Approximating KL divergence", 2020,
/// http://joschu.net/blog/kl-approx.html).
/// </summary>
/// <remarks>
/// <para>Given the log-probabilities of the SAMPLED tokens under the policy (logp) and under the reference
/// (refLogp), let r = refLogp − logp = log(π_ref(a)/π(a)), a ~ π. The exact divergence is
/// KL(π ‖ π_ref) = E_{a~π}[log π(a) − log π_ref(a)] = E[−r], which a sample can only estimate.</para>
/// <code>
///   k1 = −r                 unbiased; high variance, and negative for about half the samples
///   k2 = ½ r²               biased, low variance, ≥ 0; close to KL when π and π_ref are close
///   k3 = (eʳ − 1) − r       unbiased, low variance, ≥ 0 (GRPO's per-token KL)
/// </code>
/// <para><b>Why k3 is unbiased.</b> eʳ = π_ref(a)/π(a), so E_{a~π}[eʳ] = Σ_a π(a)·π_ref(a)/π(a) = Σ_a π_ref(a) = 1
/// (where π covers π_ref's support). Hence E[eʳ − 1] = 0: k3 is k1 plus a control variate of mean zero,
/// E[k3] = E[−r] = KL(π ‖ π_ref). The control variate is negatively correlated with k1 (when r is very
/// negative, −r is large but eʳ − 1 ≈ −1 small), so it cancels much of k1's variance.</para>
/// <para><b>Why k3 ≥ 0.</b> The exponential lies above its tangent at 0: eʳ ≥ 1 + r for every real r, so
/// (eʳ − 1) − r ≥ 0, with equality only at r = 0 (π(a) = π_ref(a)). Each sample's estimate is therefore a
/// non-negative "distance", like the divergence itself — k1 is not.</para>
/// <para><b>k2</b> is the f-divergence E[f(π_ref/π)] with f(x) = ½(log x)², whose second derivative at x = 1 matches
/// KL's f(x) = −log x; for nearby distributions the two agree to second order.</para>
/// <para>All three are differentiable tensor expressions: a chapter may use them in a loss (as GRPO does with k3)
/// or only report them.</para>
/// </remarks>
public static class Kl
{
    /// <summary>k1 = −r = logp − refLogp, elementwise.</summary>
    public static Tensor K1(Tensor logp, Tensor refLogp) => logp - refLogp;

    /// <summary>k2 = ½ r², r = refLogp − logp, elementwise.</summary>
    public static Tensor K2(Tensor logp, Tensor refLogp)
    {
        var r = refLogp - logp;
        return 0.5 * r * r;
    }

    /// <summary>k3 = (eʳ − 1) − r, r = refLogp − logp, elementwise; ≥ 0 and unbiased (see the class remarks).</summary>
    /// <remarks>Near r = 0, k3 ≈ r²/2 is the small difference of numbers near 1, so float32 would keep only
    /// a few of its digits and rounding could even make it a hair negative. It is therefore computed in
    /// float64 and clamped at 0 (where the exact value is 0 to within rounding), then returned in the
    /// inputs' dtype; gradients flow through both conversions.</remarks>
    public static Tensor K3(Tensor logp, Tensor refLogp)
    {
        var r = (refLogp - logp).to_type(ScalarType.Float64);
        return (r.exp() - 1 - r).clamp(min: 0).to_type(logp.dtype);
    }

    /// <summary>The estimator <paramref name="estimator"/> of KL(π_θ ‖ π_ref) per sampled token, elementwise.
    /// What each one is worth in a loss or in a reward, each chapter that offers the switch derives.</summary>
    public static Tensor Estimate(KlEstimator estimator, Tensor logp, Tensor refLogp) => estimator switch
    {
        KlEstimator.K1 => K1(logp, refLogp),                                 // log π_θ − log π_ref
        KlEstimator.K2 => K2(logp, refLogp),                                 // ½ (log π_ref − log π_θ)²
        _ => K3(logp, refLogp),                                              // e^x − x − 1, x = log π_ref − log π_θ
    };

    /// <summary>
    /// How far an update moved the policy from the one that sampled the batch: with ρ = π_θ / π_old per sampled
    /// token (<paramref name="logRatio"/> = log ρ), the mean over the real tokens of (ρ − 1) − log ρ. That is k3 with
    /// the roles of the two policies swapped: on samples from π_old, E[ρ] = 1, so it is unbiased for
    /// KL(π_old ‖ π_θ), and it is ≥ 0 (CleanRL's approx_kl, Schulman 2020). A diagnostic: no gradient.
    /// </summary>
    public static double OldToNew(Tensor logRatio, Tensor mask)
    {
        using var _ = no_grad();
        var lr = logRatio.detach().to_type(ScalarType.Float64);
        return Rollouts.MaskedMean((lr.exp() - 1) - lr, mask.to_type(ScalarType.Float64)).ToDouble();
    }

    /// <summary>
    /// KL(π_θ ‖ π_ref) in nats per completion on held-out prompts: one completion per prompt sampled from π_θ at T = 1
    /// with <paramref name="generator"/>, k3 per token summed over the completion, averaged over the prompts. Pass
    /// a generator with a fixed seed so that two checkpoints are measured on the same random numbers.
    /// </summary>
    public static double HeldOut(TinyGpt policy, TinyGpt reference, IReadOnlyList<Problem> problems,
                                 Generator generator)
    {
        using var scope = NewDisposeScope();                               // TorchSharp: frees the rollouts on return
        using var _ = no_grad();
        var rollout = Rollouts.Generate(policy, ArithmeticTask.EncodePrompts(problems),
            ArithmeticTask.MaxCompletionLength, generator: generator);
        var logp = Rollouts.TokenLogProbs(policy, rollout);               // (N, M)
        var refLogp = Rollouts.TokenLogProbs(reference, rollout);         // (N, M)
        return Rollouts.MaskedSum(K3(logp, refLogp), rollout.CompletionMask, 1).mean().ToDouble();
    }
}
