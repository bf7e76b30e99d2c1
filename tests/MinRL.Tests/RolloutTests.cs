using TorchSharp;
using static TorchSharp.torch;

namespace MinRL.Tests;

public class RolloutTests
{
    // Token ids (CharTokenizer): <pad> 0, <bos> 1, <eos> 2, digits 3..12, '+' 13, '=' 14, '.' 15.
    private const long Pad = 0, Bos = 1, Eos = 2, Plus = 13, Eq = 14;
    private static long D(int digit) => 3 + digit;

    /// <summary>
    /// A TinyGpt built by hand into a bigram table: the next token depends only on the current one.
    /// Every block's output projections are zeroed (so each block adds nothing to the residual stream),
    /// the position table is zero, and token v embeds as the one-hot vector e_v. After ln_f, channel v is
    /// ≈ +7.9 and every other ≈ −0.13, so lm_head.weight[next[v], v] = s makes next[v] win by ≈ 8·s nats.
    /// </summary>
    internal static TinyGpt Bigram(IReadOnlyDictionary<long, long> next, float strength = 10f)
    {
        var model = new TinyGpt(new GptConfig());
        int V = model.Config.VocabSize, C = model.Config.NEmbd;
        using var _ = no_grad();
        foreach (var (name, p) in model.named_parameters())
        {
            if (name.EndsWith("c_proj.weight") || name.EndsWith("c_proj.bias") || name == "transformer.wpe.weight" || name.StartsWith("lm_head"))
                p.zero_();
            if (name == "transformer.wte.weight")
            {
                var w = new float[V * C];
                for (int v = 0; v < V; v++) w[v * C + v] = 1f;
                p.copy_(tensor(w, [V, C]));
            }
        }
        var head = new float[V * C];
        foreach (var (from, to) in next) head[to * C + from] = strength;
        Param(model, "lm_head.weight").copy_(tensor(head, [V, C]));
        return model;
    }

    private static Tensor Param(TinyGpt model, string name) => model.named_parameters().Single(p => p.name == name).parameter;

    /// <summary>A randomly initialised model whose LM head is scaled up, so its next-token distributions are
    /// far from uniform (logits spread over a few nats) and temperature and top-k visibly matter.</summary>
    private static TinyGpt Random(long seed, float headScale = 10f, bool scalarHead = false)
    {
        manual_seed(seed);
        var model = new TinyGpt(new GptConfig { ScalarHead = scalarHead });
        using var _ = no_grad();
        Param(model, "lm_head.weight").mul_(headScale);
        return model;
    }

    private static Tensor Prompts(int n, long seed) =>
        ArithmeticTask.EncodePrompts(ArithmeticTask.Sample(new ArithmeticTask(0).Train, n, new SplitMix64(seed)));

    private static long[] Row(Tensor t, int i) => t.narrow(0, i, 1).data<long>().ToArray();
    private static float[] RowF(Tensor t, int i) => t.narrow(0, i, 1).data<float>().ToArray();

    // ------------------------------------------------------------------ masks and padding

    // The bigram script: after '1' say '5' then <eos> (EOS in the middle); after '2' cycle 7, 8, 7, ... (no EOS);
    // after '3' say <eos> at once. After <eos> the script would go on ('5'), and after <pad> say '9':
    // Generate must replace everything after the first <eos> with <pad> regardless.
    private static readonly Dictionary<long, long> Script = new()
    {
        [D(1)] = D(5), [D(5)] = Eos, [D(2)] = D(7), [D(7)] = D(8), [D(8)] = D(7), [D(3)] = Eos, [Eos] = D(5), [Pad] = D(9),
    };

    private static Tensor ScriptPrompts() => tensor(new long[] { Bos, D(4), D(1), Bos, D(4), D(2), Bos, D(4), D(3) }, [3, 3]);

    [Theory]
    [InlineData(0.0)]   // greedy
    [InlineData(1.0)]   // sampled: the script's margins (~80 nats) make it deterministic anyway
    public void Generate_masks_eos_in_the_middle_no_eos_and_eos_first(double temperature)
    {
        var model = Bigram(Script);
        var r = Rollouts.Generate(model, ScriptPrompts(), maxNewTokens: 5, temperature: temperature, generator: new Generator(1));

        Assert.Equal(new long[] { 3, 8 }, r.Sequences.shape);
        Assert.Equal(3, r.PromptLength);
        Assert.Equal(new long[] { D(5), Eos, Pad, Pad, Pad }, Row(r.Completions, 0));   // EOS in the middle, then padding
        Assert.Equal(new long[] { D(7), D(8), D(7), D(8), D(7) }, Row(r.Completions, 1)); // no EOS at all
        Assert.Equal(new long[] { Eos, Pad, Pad, Pad, Pad }, Row(r.Completions, 2));      // EOS as the first token
        Assert.Equal(new float[] { 1, 1, 0, 0, 0 }, RowF(r.CompletionMask, 0));
        Assert.Equal(new float[] { 1, 1, 1, 1, 1 }, RowF(r.CompletionMask, 1));
        Assert.Equal(new float[] { 1, 0, 0, 0, 0 }, RowF(r.CompletionMask, 2));
        Assert.Equal(new long[] { 2, 5, 1 }, r.Lengths.data<long>().ToArray());
        Assert.Equal(new long[] { Bos, D(4), D(1), D(5), Eos, Pad, Pad, Pad }, Row(r.Sequences, 0));
        Assert.Equal(ScriptPrompts().data<long>().ToArray(), r.Prompts.data<long>().ToArray());
        Assert.Equal("5<eos>", r.CompletionText(0));
        Assert.Equal("78787", r.CompletionText(1));
        Assert.Equal("<eos>", r.CompletionText(2));
        Assert.Equal(ScalarType.Float32, r.CompletionMask.dtype);

        // The script is (almost) certain: every real token has log-prob ≈ 0; masked positions hold exactly 0.
        var lp = r.SampleLogProbs.data<float>().ToArray();
        var m = r.CompletionMask.data<float>().ToArray();
        for (int k = 0; k < lp.Length; k++)
            if (m[k] == 0) Assert.Equal(0f, lp[k]);
            else Assert.InRange(lp[k], -1e-6f, 0f);
    }

    [Fact]
    public void CompletionMask_and_PadAfterEos_on_hand_made_completions()
    {
        var c = tensor(new long[]
        {
            D(4), D(2), Eos, D(7), Eos,      // EOS in the middle; tokens after it (even another EOS) are padded
            D(1), D(2), D(3), Plus, Eq,      // no EOS: all five count
            Eos, D(9), D(9), D(9), D(9),     // EOS first
            D(5), Eos, Pad, Pad, Pad,        // already padded
        }, [4, 5]);
        var (mask, lengths) = Rollouts.CompletionMask(c);
        Assert.Equal(new float[] { 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0 }, mask.data<float>().ToArray());
        Assert.Equal(new long[] { 3, 5, 1, 2 }, lengths.data<long>().ToArray());
        Assert.Equal(new long[]
        {
            D(4), D(2), Eos, Pad, Pad,
            D(1), D(2), D(3), Plus, Eq,
            Eos, Pad, Pad, Pad, Pad,
            D(5), Eos, Pad, Pad, Pad,
        }, Rollouts.PadAfterEos(c).data<long>().ToArray());
        Assert.Equal(new long[] { D(4), D(2), Eos, D(7), Eos }, Row(c, 0)); // the input is not modified
    }

    [Fact]
    public void Generate_mask_agrees_with_CompletionMask_and_the_task_rule()
    {
        var model = Random(3, headScale: 3f);
        var prompts = Prompts(64, 7);
        var r = Rollouts.Generate(model, prompts, ArithmeticTask.MaxCompletionLength, generator: new Generator(11));
        var (mask, lengths) = Rollouts.CompletionMask(r.Completions);
        Assert.Equal(mask.data<float>().ToArray(), r.CompletionMask.data<float>().ToArray());
        Assert.Equal(lengths.data<long>().ToArray(), r.Lengths.data<long>().ToArray());
        Assert.Equal(r.Completions.data<long>().ToArray(), Rollouts.PadAfterEos(r.Completions).data<long>().ToArray());
        var len = r.Lengths.data<long>().ToArray();
        for (int i = 0; i < 64; i++)
            Assert.Equal(len[i], ArithmeticTask.Parse(Row(r.Completions, i).AsSpan()).Length);
        // The random model does emit <eos> sometimes and not at other times, so both branches ran.
        Assert.Contains(len, n => n < 5);
        Assert.Contains(Enumerable.Range(0, 64), i => !Row(r.Completions, i).Contains(Eos));
    }

    [Fact]
    public void Generate_stops_once_every_row_has_ended()
    {
        // Every prompt ends in '3', after which the script says <eos>: one step finishes every row, so exactly
        // one step's uniforms (N of them) are drawn — not M steps' worth.
        var model = Bigram(Script);
        var prompts = tensor(new long[] { Bos, D(4), D(3), Bos, D(5), D(3) }, [2, 3]);
        var gen = new Generator(5);
        var r = Rollouts.Generate(model, prompts, 5, temperature: 1.0, generator: gen);
        Assert.Equal(new long[] { Eos, Pad, Pad, Pad, Pad, Eos, Pad, Pad, Pad, Pad }, r.Completions.data<long>().ToArray());
        var reference = new Generator(5);
        rand(2, ScalarType.Float64, generator: reference);
        Assert.Equal(rand(4, ScalarType.Float64, generator: reference).data<double>().ToArray(),
                     rand(4, ScalarType.Float64, generator: gen).data<double>().ToArray());
    }

    // ------------------------------------------------------------------ sampling

    [Fact]
    public void Greedy_generation_equals_argmax_of_full_recomputation()
    {
        var model = Random(1, headScale: 3f);
        var prompts = Prompts(32, 3);
        int M = ArithmeticTask.MaxCompletionLength;
        var r = Rollouts.Generate(model, prompts, M, temperature: 0);

        // Without the cache: run the model on the whole prefix every step, take the argmax at the end.
        using var _ = no_grad();
        var seq = prompts;
        var finished = new bool[32];
        for (int t = 0; t < M; t++)
        {
            var logits = model.call(seq);                                        // (N, T, V)
            var next = logits.narrow(1, seq.shape[1] - 1, 1).argmax(-1).data<long>().ToArray();   // (N, 1)
            for (int i = 0; i < 32; i++)
            {
                if (finished[i]) next[i] = Pad;
                else if (next[i] == Eos) finished[i] = true;
            }
            seq = cat(new[] { seq, tensor(next, [32, 1]) }, 1);
        }
        Assert.Equal(seq.data<long>().ToArray(), r.Sequences.data<long>().ToArray());
        Assert.True(r.Completions.data<long>().ToArray().Distinct().Count() > 3, "the model should not be trivially constant");
    }

    [Fact]
    public void Same_seed_same_samples_different_seed_different_samples()
    {
        var model = Random(2, headScale: 2f);
        var prompts = Prompts(48, 5);
        var a = Rollouts.Generate(model, prompts, 5, generator: new Generator(123));
        var b = Rollouts.Generate(model, prompts, 5, generator: new Generator(123));
        var c = Rollouts.Generate(model, prompts, 5, generator: new Generator(124));
        Assert.Equal(a.Sequences.data<long>().ToArray(), b.Sequences.data<long>().ToArray());
        Assert.Equal(a.SampleLogProbs.data<float>().ToArray(), b.SampleLogProbs.data<float>().ToArray());
        Assert.NotEqual(a.Sequences.data<long>().ToArray(), c.Sequences.data<long>().ToArray());

        // The default generator is used when none is passed, and manual_seed fixes it.
        manual_seed(9);
        var d = Rollouts.Generate(model, prompts, 5);
        manual_seed(9);
        var e = Rollouts.Generate(model, prompts, 5);
        Assert.Equal(d.Sequences.data<long>().ToArray(), e.Sequences.data<long>().ToArray());
    }

    [Fact]
    public void Generate_restores_training_mode_and_records_no_graph()
    {
        var model = Random(4);
        model.train();
        var r = Rollouts.Generate(model, Prompts(4, 1), 3);
        Assert.True(model.training);
        Assert.False(r.SampleLogProbs.requires_grad);
        model.eval();
        Rollouts.Generate(model, Prompts(4, 1), 3);
        Assert.False(model.training);
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(0.5)]
    public void Sample_frequencies_match_the_temperature_scaled_softmax(double temperature)
    {
        // One new token after a one-token prompt, many times: the frequencies must match softmax(logits / T).
        var model = Random(5, headScale: 6f);
        const int n = 6000;
        var prompts = full(n, 1, Bos, dtype: ScalarType.Int64);
        var r = Rollouts.Generate(model, prompts, 1, temperature, generator: new Generator(77));

        Tensor probs;
        using (no_grad()) probs = (model.call(prompts.narrow(0, 0, 1)) / temperature).softmax(-1);     // (1, 1, V)
        var p = probs.data<float>().ToArray();
        var counts = new int[p.Length];
        foreach (long tok in r.Completions.data<long>().ToArray()) counts[tok]++;
        Assert.True(p.Max() < 0.9 && p.Count(x => x > 0.02) >= 3, $"the test needs a spread-out distribution: {string.Join(", ", p)}");
        for (int v = 0; v < p.Length; v++)
        {
            double sigma = Math.Sqrt(p[v] * (1 - p[v]) / n);
            Assert.True(Math.Abs(counts[v] / (double)n - p[v]) <= 4.5 * sigma + 1e-9,
                $"token {v}: frequency {counts[v] / (double)n:F4}, probability {p[v]:F4} (σ {sigma:F4})");
        }
        // SampleLogProbs is log softmax(logits / T) of the chosen token.
        var lp = r.SampleLogProbs.data<float>().ToArray();
        var tok0 = r.Completions.data<long>().ToArray();
        for (int i = 0; i < 50; i++) Assert.Equal(Math.Log(p[tok0[i]]), lp[i], 1e-4);
    }

    [Fact]
    public void Top_k_never_samples_outside_the_top_k()
    {
        var model = Random(6, headScale: 4f);
        var prompts = Prompts(200, 9);
        int P = ArithmeticTask.PromptLength, M = 5, K = 3;
        var withK = Rollouts.Generate(model, prompts, M, topK: K, generator: new Generator(8));
        var without = Rollouts.Generate(model, prompts, M, generator: new Generator(8));

        int outside = 0;
        foreach (var (r, k) in new[] { (withK, K), (without, 0) })
        {
            Tensor logits;
            using (no_grad()) logits = model.call(r.Sequences);                // (N, L, V)
            var lg = logits.data<float>().ToArray();
            var seq = r.Sequences.data<long>().ToArray();
            var mask = r.CompletionMask.data<float>().ToArray();
            var lp = r.SampleLogProbs.data<float>().ToArray();
            int L = P + M, V = 16;
            for (int i = 0; i < 200; i++)
                for (int t = 0; t < M; t++)
                {
                    if (mask[i * M + t] == 0) continue;
                    var row = lg.AsSpan((i * L + P - 1 + t) * V, V).ToArray();
                    long a = seq[i * L + P + t];
                    int rank = row.Count(z => z > row[a]);
                    if (k > 0)
                    {
                        Assert.True(rank < k, $"row {i}, step {t}: token {a} has rank {rank}, outside the top {k}");
                        // Its log-prob is renormalised over the top k only.
                        var top = row.OrderByDescending(z => z).Take(k).ToArray();
                        double lse = top.Max() + Math.Log(top.Sum(z => Math.Exp(z - top.Max())));
                        Assert.Equal(row[a] - lse, lp[i * M + t], 1e-4);
                    }
                    else if (rank >= K) outside++;
                }
        }
        Assert.True(outside > 20, $"without top-k the model samples outside its top {K} ({outside} times): the test can fail");

        // top-k = 1 is greedy.
        var greedy = Rollouts.Generate(model, prompts, M, temperature: 0);
        var k1 = Rollouts.Generate(model, prompts, M, topK: 1, generator: new Generator(3));
        Assert.Equal(greedy.Sequences.data<long>().ToArray(), k1.Sequences.data<long>().ToArray());
    }

    [Fact]
    public void Generate_errors_name_the_problem()
    {
        var model = Random(0);
        var e = Assert.Throws<ArgumentException>(() => Rollouts.Generate(model, Prompts(2, 0), 6));
        Assert.Contains("block size 12", e.Message);
        Assert.Contains("13 tokens", e.Message);
        e = Assert.Throws<ArgumentException>(() => Rollouts.Generate(model, zeros(2, 7), 5));
        Assert.Contains("int64", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Rollouts.Generate(model, Prompts(2, 0), 5, temperature: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Rollouts.Generate(model, Prompts(2, 0), 5, topK: -2));
        Assert.Throws<ArgumentOutOfRangeException>(() => Rollouts.Generate(model, Prompts(2, 0), 0));
    }

    // ------------------------------------------------------------------ scoring

    [Fact]
    public void TokenLogProbs_equals_a_manual_log_softmax_and_gather()
    {
        var model = Random(7, headScale: 3f);
        var r = Rollouts.Generate(model, Prompts(8, 4), 5, generator: new Generator(2));
        int P = 7, M = 5, L = 12, V = 16;
        var lp = Rollouts.TokenLogProbs(model, r).data<float>().ToArray();
        Assert.Equal(new long[] { 8, 5 }, Rollouts.TokenLogProbs(model, r.Sequences, P).shape);

        Tensor logits;
        using (no_grad()) logits = model.call(r.Sequences);
        var lg = logits.data<float>().ToArray();
        var seq = r.Sequences.data<long>().ToArray();
        for (int i = 0; i < 8; i++)
            for (int t = 0; t < M; t++)
            {
                // log p(a) = z_a − log Σ_j e^{z_j}, from the logits at the position before the token.
                var row = lg.AsSpan((i * L + P - 1 + t) * V, V).ToArray();
                double m = row.Max(), lse = m + Math.Log(row.Sum(z => Math.Exp(z - m)));
                Assert.Equal(row[seq[i * L + P + t]] - lse, lp[i * M + t], 1e-5);
            }

        // Sampling log-probs (T = 1) are the same numbers, on the real tokens (cache vs full forward).
        var sample = r.SampleLogProbs.data<float>().ToArray();
        var mask = r.CompletionMask.data<float>().ToArray();
        for (int k = 0; k < sample.Length; k++) Assert.Equal(mask[k] * lp[k], sample[k], 1e-5);
    }

    [Theory]
    [InlineData(0.7)]
    [InlineData(0.0)]
    public void SampleLogProbs_match_TokenLogProbs_at_the_sampling_temperature(double temperature)
    {
        var model = Random(8, headScale: 3f);
        var r = Rollouts.Generate(model, Prompts(16, 6), 5, temperature, generator: new Generator(4));
        // Greedy records the model's own (T = 1) log-probs.
        var lp = Rollouts.TokenLogProbs(model, r, temperature > 0 ? temperature : 1.0).data<float>().ToArray();
        var sample = r.SampleLogProbs.data<float>().ToArray();
        var mask = r.CompletionMask.data<float>().ToArray();
        for (int k = 0; k < sample.Length; k++) Assert.Equal(mask[k] * lp[k], sample[k], 1e-5);
    }

    [Fact]
    public void TokenLogProbs_is_differentiable_with_the_softmax_gradient()
    {
        // ∂/∂b_v Σ_{i,t} log p(a_it) = Σ_{i,t} (1[a_it = v] − p_v(i, t)) for the LM head's bias b.
        var model = Random(9, headScale: 2f);
        var r = Rollouts.Generate(model, Prompts(6, 8), 5, generator: new Generator(6));
        var logp = Rollouts.TokenLogProbs(model, r);
        Assert.True(logp.requires_grad);
        logp.sum().backward();
        var grad = Param(model, "lm_head.bias").grad!.data<float>().ToArray();

        Tensor probs;
        using (no_grad()) probs = model.call(r.Sequences).narrow(1, 6, 5).softmax(-1);     // (N, 5, V)
        var p = probs.data<float>().ToArray();
        var a = r.Completions.data<long>().ToArray();
        var expected = new double[16];
        for (int k = 0; k < a.Length; k++)
            for (int v = 0; v < 16; v++) expected[v] += (a[k] == v ? 1 : 0) - p[k * 16 + v];
        for (int v = 0; v < 16; v++) Assert.Equal(expected[v], grad[v], 1e-4);
    }

    [Fact]
    public void Score_returns_hidden_states_for_a_scalar_head_and_entropies()
    {
        var model = Random(10, scalarHead: true);
        var r = Rollouts.Generate(model, Prompts(5, 2), 5, generator: new Generator(1));
        var s = Rollouts.Score(model, r.Sequences, r.PromptLength);
        Assert.Equal(new long[] { 5, 12, 64 }, s.Hidden.shape);
        Assert.Equal(new long[] { 5, 5, 16 }, s.Logits.shape);
        Assert.Equal(Rollouts.TokenLogProbs(model, r).data<float>().ToArray(), s.LogProbs.data<float>().ToArray());
        Assert.Equal(model.Scalar(model.Hidden(r.Sequences)).data<float>().ToArray(), model.Scalar(s.Hidden).data<float>().ToArray());
        Assert.Equal(new long[] { 5, 5 }, s.Entropy().shape);
        Assert.All(s.Entropy().data<float>().ToArray(), h => Assert.InRange(h, 0f, (float)Math.Log(16) + 1e-5f));
    }

    [Fact]
    public void Entropy_known_values()
    {
        // p = (1/2, 1/4, 1/4): H = ½ ln 2 + 2·¼ ln 4 = 1.5 ln 2. Uniform over 4: ln 4. Near one-hot: ≈ 0.
        var logits = tensor(new float[] { (float)Math.Log(0.5), (float)Math.Log(0.25), (float)Math.Log(0.25), -1e4f,
                                          3, 3, 3, 3,
                                          50, 0, 0, 0 }, [3, 4]);
        var h = Rollouts.Entropy(logits).data<float>().ToArray();
        Assert.Equal(1.5 * Math.Log(2), h[0], 1e-6);
        Assert.Equal(Math.Log(4), h[1], 1e-6);
        Assert.Equal(0, h[2], 1e-6);
    }

    [Fact]
    public void TokenLogProbs_errors_name_the_problem()
    {
        var model = Random(0);
        var seq = Prompts(2, 0);
        var e = Assert.Throws<ArgumentException>(() => Rollouts.TokenLogProbs(model, seq, 7));
        Assert.Contains("promptLength must be in 1..6", e.Message);
        e = Assert.Throws<ArgumentException>(() => Rollouts.TokenLogProbs(model, zeros(2, 7), 3));
        Assert.Contains("int64", e.Message);
    }

    // ------------------------------------------------------------------ masked reductions

    [Fact]
    public void Masked_sums_and_means()
    {
        var x = tensor(new float[] { 1, 2, 3, 4, 5, 6 }, [2, 3]);
        var mask = tensor(new float[] { 1, 1, 0, 1, 0, 0 }, [2, 3]);
        Assert.Equal(7f, Rollouts.MaskedSum(x, mask).item<float>());
        Assert.Equal(new float[] { 3, 4 }, Rollouts.MaskedSum(x, mask, 1).data<float>().ToArray());
        Assert.Equal(7f / 3f, Rollouts.MaskedMean(x, mask).item<float>(), 1e-6f);
        Assert.Equal(new float[] { 1.5f, 4 }, Rollouts.MaskedMean(x, mask, 1).data<float>().ToArray());
        // An empty row (or an empty mask) gives 0, not NaN.
        var empty = tensor(new float[] { 0, 0, 0, 1, 1, 1 }, [2, 3]);
        Assert.Equal(new float[] { 0, 5 }, Rollouts.MaskedMean(x, empty, 1).data<float>().ToArray());
        Assert.Equal(0f, Rollouts.MaskedMean(x, zeros(2, 3)).item<float>());
        // A (N, 1) mask broadcasts over the tokens; the denominator counts the broadcast elements.
        var rows = tensor(new float[] { 0, 1 }, [2, 1]);
        Assert.Equal(5f, Rollouts.MaskedMean(x, rows).item<float>());
        // The gradient of the mean reaches the masked-in elements only: 1/3 each.
        var xg = x.detach().requires_grad_();
        Rollouts.MaskedMean(xg, mask).backward();
        Assert.Equal(new[] { 1 / 3f, 1 / 3f, 0, 1 / 3f, 0, 0 }, xg.grad!.data<float>().ToArray());
    }

    // ------------------------------------------------------------------ KL estimators

    [Fact]
    public void Kl_estimators_known_values()
    {
        // logp = −1, refLogp = −2: r = −1, k1 = 1, k2 = ½, k3 = e⁻¹ − 1 + 1 = 0.367879.
        var logp = tensor(new float[] { -1f, -2f, -0.5f }, [3]);
        var refLogp = tensor(new float[] { -2f, -1f, -0.5f }, [3]);
        var k1 = Kl.K1(logp, refLogp).data<float>().ToArray();
        var k2 = Kl.K2(logp, refLogp).data<float>().ToArray();
        var k3 = Kl.K3(logp, refLogp).data<float>().ToArray();
        Assert.Equal(new float[] { 1f, -1f, 0f }, k1);                     // k1 goes negative
        Assert.Equal(new float[] { 0.5f, 0.5f, 0f }, k2);
        Assert.Equal(Math.Exp(-1), k3[0], 1e-6);                           // r = −1
        Assert.Equal(Math.E - 2, k3[1], 1e-6);                             // r = +1: e − 1 − 1
        Assert.Equal(0f, k3[2]);
        Assert.Equal(ScalarType.Float32, Kl.K3(logp, refLogp).dtype);
    }

    [Fact]
    public void K3_is_never_negative()
    {
        // Wide and tiny log-ratios, where float32 rounding of e^r − 1 − r alone would go below 0.
        var gen = new Generator(3);
        var logp = randn(20000, generator: gen) * 3;
        var refLogp = logp + randn(20000, generator: gen) * tensor(new float[] { 1e-7f, 1e-4f, 1e-2f, 1f, 5f }).repeat(4000);
        var k3 = Kl.K3(logp, refLogp).data<float>().ToArray();
        Assert.All(k3, v => Assert.True(v >= 0, $"k3 = {v}"));
        // And for r = 1e-3 it is r²/2 to float precision (float32 arithmetic would keep ~1 digit).
        var small = Kl.K3(tensor(new float[] { 0f }), tensor(new float[] { 1e-3f })).item<float>();
        Assert.Equal(0.5e-6 + 1e-9 / 6, small, 1e-11);
    }

    [Fact]
    public void Kl_estimators_are_differentiable()
    {
        // d k3 / d logp = −(e^r − 1)·(−1)... with r = ref − logp: dk3/dlogp = 1 − e^r; dk1/dlogp = 1; dk2/dlogp = −r.
        var logp = tensor(new float[] { -1f, -0.2f }).requires_grad_();
        var refLogp = tensor(new float[] { -2f, -0.1f });
        Kl.K3(logp, refLogp).sum().backward();
        var g = logp.grad!.data<float>().ToArray();
        Assert.Equal(1 - Math.Exp(-1), g[0], 1e-6);
        Assert.Equal(1 - Math.Exp(0.1), g[1], 1e-6);
        logp.grad = null;
        Kl.K2(logp, refLogp).sum().backward();
        g = logp.grad!.data<float>().ToArray();
        Assert.Equal(1.0, g[0], 1e-6);        // −r = 1
        Assert.Equal(-0.1, g[1], 1e-6);
    }

    [Fact]
    public void Monte_carlo_means_of_k1_and_k3_approach_the_exact_kl()
    {
        // π = (0.5, 0.3, 0.15, 0.05), π_ref uniform; samples a ~ π.
        double[] p = { 0.5, 0.3, 0.15, 0.05 }, q = { 0.25, 0.25, 0.25, 0.25 };
        var far = Check(p, q);
        // k2 is biased: for this far pair its expectation (≈ 0.209) is visibly off the KL (≈ 0.244).
        Assert.True(Math.Abs(far.ek2 - far.kl) > 0.02, $"E[k2] {far.ek2} vs KL {far.kl}");
        // A close pair, where k3's variance is far below k1's (Schulman's point).
        var close = Check(p, new[] { 0.45, 0.32, 0.16, 0.07 });
        Assert.True(close.sd3 < close.sd1 / 4, $"std k3 {close.sd3} vs std k1 {close.sd1}");

        static (double sd1, double sd3, double kl, double ek2) Check(double[] p, double[] q)
        {
            const int n = 200_000;
            double kl = 0, ek2 = 0;
            for (int j = 0; j < p.Length; j++)
            {
                kl += p[j] * Math.Log(p[j] / q[j]);
                ek2 += p[j] * 0.5 * Math.Pow(Math.Log(q[j] / p[j]), 2);
            }
            var a = tensor(p.Select(v => (float)v).ToArray()).multinomial(n, replacement: true, generator: new Generator(17));
            var logp = tensor(p.Select(v => (float)Math.Log(v)).ToArray()).gather(0, a);
            var refLogp = tensor(q.Select(v => (float)Math.Log(v)).ToArray()).gather(0, a);
            foreach (var (k, expected) in new[] { (Kl.K1(logp, refLogp), kl), (Kl.K3(logp, refLogp), kl), (Kl.K2(logp, refLogp), ek2) })
            {
                var v = k.to_type(ScalarType.Float64);
                double mean = v.mean().item<double>(), se = v.std().item<double>() / Math.Sqrt(n);
                Assert.True(Math.Abs(mean - expected) < 4 * se + 1e-6, $"mean {mean} vs {expected} (se {se})");
            }
            return (Kl.K1(logp, refLogp).std().item<float>(), Kl.K3(logp, refLogp).std().item<float>(), kl, ek2);
        }
    }
}
