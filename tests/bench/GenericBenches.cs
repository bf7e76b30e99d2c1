// The generic workloads (README.md, "Generic workloads"): a plain nanoGPT written only with the public TorchSharp
// API, the way a reader writes their own model — nn.Module subclasses of nn.Linear, nn.LayerNorm and nn.Embedding
// registered with RegisterComponents, attention written out (view, transpose, split, matmul, masked_fill with a
// causal-mask buffer, softmax, contiguous().view), an exact-GELU MLP, and a KV cache grown with torch.cat.
//
// Why: MinRL's TinyGpt (TinyGptBenches.cs) calls the engines' fused paths (scaled_dot_product_attention, a cache
// written in place); this file measures the engines on ordinary TorchSharp code instead, with nothing
// engine-specific in it. Same configs, shapes, initialisation and workloads as the TinyGpt family, so the numbers
// sit side by side; torch_tinygpt.py runs the same generic_* workloads in PyTorch (its explicit attention and, for
// generic_generate_cache, a torch.cat cache too).

using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MinRL.Bench;

/// <summary>
/// generic_train, generic_generate_cache, generic_generate_nocache and generic_logprobs on <see cref="GenericGpt"/>:
/// each does what the TinyGpt workload of the same name does (<see cref="TinyGptBenches"/>), with the benchmark
/// model conventions of its remarks (every Linear with a bias, weights N(0, 0.02), biases 0, LayerNorms (1, 0),
/// untied LM head; a position table of ctx rows for training and max(ctx, 72) for generate and logprobs).
/// </summary>
public static class GenericBenches
{
    const int Prompts = TinyGptBenches.Prompts, PromptLen = TinyGptBenches.PromptLen;
    const int NewTokens = TinyGptBenches.NewTokens, SeqLen = TinyGptBenches.SeqLen;

    /// <summary>The model for a config with a position table (and causal mask) of <paramref name="blockSize"/>
    /// rows; prints its parameter count to stderr, as TinyGptBenches.Model does.</summary>
    public static GenericGpt Model(BenchConfig c, int blockSize)
    {
        var model = new GenericGpt(c.Vocab, c.DModel, c.Layers, c.Heads, blockSize);
        model.eval();
        long n = model.parameters().Sum(p => p.numel());
        Console.Error.WriteLine($"GenericGpt {c.Name}: vocab {c.Vocab}, d_model {c.DModel}, layers {c.Layers}, " +
                                $"heads {c.Heads}, block {blockSize}: {n} parameters");
        return model;
    }

    /// <summary>forward + mean cross-entropy + backward + AdamW(lr 3e-4, weight_decay 0.01) step on a
    /// (batch, ctx) batch of random tokens predicting random targets.</summary>
    public static IEnumerable<Workload> Train(Options o) => o.Configs.SelectMany(c => Train(BenchConfig.All[c]));

    static IEnumerable<Workload> Train(BenchConfig c)
    {
        manual_seed(0);
        var model = Model(c, c.Ctx);
        model.train();
        var opt = optim.AdamW(model.parameters(), lr: 3e-4, weight_decay: 0.01);
        var x = randint(0, c.Vocab, [c.Batch, c.Ctx]);
        var y = randint(0, c.Vocab, [c.Batch, c.Ctx]);
        Tensor Loss() => F.cross_entropy(model.call(x).view(-1, c.Vocab), y.view(-1));      // (B, T, V) → ()
        using (no_grad())
        {
            // A sanity check before timing: at this init the loss is about ln(vocab).
            double loss = Loss().item<float>();
            Console.Error.WriteLine($"GenericGpt {c.Name}: initial loss {loss:F4} " +
                                    $"(ln {c.Vocab} = {Math.Log(c.Vocab):F4})");
            if (!double.IsFinite(loss)) throw new InvalidOperationException($"generic_train {c.Name}: loss is {loss}");
        }
        yield return new Workload("generic_train", "generic_train", c.Name, () =>
        {
            opt.zero_grad();
            var loss = Loss();
            loss.backward();
            opt.step();
        }, $"{c.Batch}x{c.Ctx}");
    }

    /// <summary>64 prompts of 8 random tokens, 64 new tokens each sampled at temperature 1: with the torch.cat KV
    /// cache (the prompt once, then one position a step) and without it (the whole growing sequence every step).
    /// Only the last position goes through the LM head, as in nanoGPT.</summary>
    public static IEnumerable<Workload> Generate(Options o) => o.Configs.SelectMany(c => Generate(BenchConfig.All[c]));

    static IEnumerable<Workload> Generate(BenchConfig c)
    {
        manual_seed(0);
        var model = Model(c, Math.Max(c.Ctx, SeqLen));
        var prompts = randint(0, c.Vocab, [Prompts, PromptLen]);
        string shape = $"{Prompts}x{PromptLen}, {NewTokens} new";
        yield return new Workload("generic_generate", "generic_generate_cache", c.Name,
                                  () => GenerateCached(model, prompts), shape);
        yield return new Workload("generic_generate", "generic_generate_nocache", c.Name,
                                  () => GenerateUncached(model, prompts), shape);
    }

    /// <summary>Samples the next token from the last position's hidden state: (B, C) → (B, 1) ids.</summary>
    static Tensor Sample(GenericGpt model, Tensor lastHidden)
    {
        var logits = model.lm_head.call(lastHidden);                                       // (B, V)
        return (logits / TinyGptBenches.Temperature).softmax(-1).multinomial(1);           // (B, 1)
    }

    // Each step runs in its own dispose scope, as TorchSharp code must to free a step's activations when the step
    // ends (PyTorch frees them by reference count); what the next step needs is moved out. MinTorch hands the
    // step's storage back to its pool there, for the next step to reuse.

    public static Tensor GenerateCached(GenericGpt model, Tensor prompts)
    {
        using var _ = no_grad();
        var cache = model.NewCache();
        var tokens = new List<Tensor>(NewTokens);
        var input = prompts;                                                               // (B, 8), then (B, 1)
        for (int s = 0; s < NewTokens; s++)
        {
            using var step = NewDisposeScope();
            var h = model.Hidden(input, cache);                                            // (B, T, C)
            foreach (var layer in cache) layer.MoveToOuterDisposeScope();
            input = Sample(model, h.narrow(1, -1, 1).squeeze(1)).MoveToOuterDisposeScope(); // (B, 1)
            tokens.Add(input);
        }
        return cat(tokens, 1);                                                             // (B, 64)
    }

    public static Tensor GenerateUncached(GenericGpt model, Tensor prompts)
    {
        using var _ = no_grad();
        var seq = prompts;                                                                 // (B, 8)
        for (int s = 0; s < NewTokens; s++)
        {
            using var step = NewDisposeScope();
            var h = model.Hidden(seq);                                                     // (B, t, C)
            seq = cat([seq, Sample(model, h.narrow(1, -1, 1).squeeze(1))], 1).MoveToOuterDisposeScope(); // (B, t + 1)
        }
        return seq.narrow(1, PromptLen, NewTokens);                                        // (B, 64)
    }

    /// <summary>No-grad log-probs of the 64 completion tokens of 64 random sequences of 72 tokens: one forward
    /// over the whole sequence, log_softmax over the 64 positions that predict the completion, gather of the
    /// tokens that were there.</summary>
    public static IEnumerable<Workload> Logprobs(Options o) => o.Configs.SelectMany(c => Logprobs(BenchConfig.All[c]));

    static IEnumerable<Workload> Logprobs(BenchConfig c)
    {
        manual_seed(0);
        var model = Model(c, Math.Max(c.Ctx, SeqLen));
        var seqs = randint(0, c.Vocab, [Prompts, SeqLen]);
        yield return new Workload("generic_logprobs", "generic_logprobs", c.Name, () => LogProbs(model, seqs),
                                  $"{Prompts}x{SeqLen}");
    }

    public static Tensor LogProbs(GenericGpt model, Tensor seqs)
    {
        using var _ = no_grad();
        var logits = model.call(seqs);                                                     // (B, 72, V)
        var pred = logits.narrow(1, PromptLen - 1, NewTokens);                             // (B, 64, V): pos. 7..70
        var targets = seqs.narrow(1, PromptLen, NewTokens).unsqueeze(-1);                  // (B, 64, 1)
        return pred.log_softmax(-1).gather(-1, targets).squeeze(-1);                       // (B, 64)
    }
}

/// <summary>
/// nanoGPT as a reader writes it in TorchSharp: token + learned position embeddings, pre-LN blocks (causal
/// self-attention written out, 4×d exact-GELU MLP), a final LayerNorm, an untied LM head; every Linear has a bias.
/// Same parameters, in the same order and under the same names but the <c>transformer.</c> prefix, as TinyGpt.
/// </summary>
public sealed class GenericGpt : nn.Module<Tensor, Tensor>
{
    private readonly Embedding wte, wpe;
    private readonly ModuleList<Block> h;
    private readonly LayerNorm ln_f;
    public readonly Linear lm_head;

    public GenericGpt(long vocab, long d, int layers, long heads, long block) : base(nameof(GenericGpt))
    {
        wte = nn.Embedding(vocab, d);
        wpe = nn.Embedding(block, d);
        h = new ModuleList<Block>(Enumerable.Range(0, layers).Select(_ => new Block(d, heads, block)).ToArray());
        ln_f = nn.LayerNorm(d);
        lm_head = nn.Linear(d, vocab);
        RegisterComponents();
        // The benchmark init: Linear and Embedding weights N(0, 0.02), biases 0; LayerNorms keep their (1, 0).
        using var _ = no_grad();
        apply(m =>
        {
            if (m is Linear linear)
            {
                nn.init.normal_(linear.weight!, 0, 0.02);
                nn.init.zeros_(linear.bias!);
            }
            else if (m is Embedding embedding) nn.init.normal_(embedding.weight!, 0, 0.02);
        });
    }

    /// <summary>Next-token logits for every position: (B, T) ids → (B, T, V).</summary>
    public override Tensor forward(Tensor idx) => lm_head.call(Hidden(idx));

    /// <summary>The hidden states after ln_f: (B, T) ids → (B, T, C). With a cache, the ids are the positions
    /// after those it holds, and their keys and values are appended to it.</summary>
    public Tensor Hidden(Tensor idx, LayerCache[]? cache = null)
    {
        long T = idx.shape[1];
        long start = cache?[0].Length ?? 0;
        var pos = arange(start, start + T, dtype: ScalarType.Int64);                       // (T)
        var x = wte.call(idx) + wpe.call(pos);                                             // (B, T, C)
        for (int i = 0; i < h.Count; i++)
            x = cache is null ? h[i].call(x) : h[i].Forward(x, cache[i]);                  // (B, T, C)
        return ln_f.call(x);                                                               // (B, T, C)
    }

    /// <summary>An empty KV cache, one <see cref="LayerCache"/> per block.</summary>
    public LayerCache[] NewCache() => h.Select(_ => new LayerCache()).ToArray();

    /// <summary>One layer's keys and values so far, (B, H, t, D) each; null before the first call.</summary>
    public sealed class LayerCache
    {
        public Tensor? K, V;
        public long Length => K?.shape[2] ?? 0;

        /// <summary>Appends this call's k, v (B, H, T, D) and returns everything so far, (B, H, t + T, D).</summary>
        public (Tensor k, Tensor v) Append(Tensor k, Tensor v)
        {
            if (K is not null)
            {
                (k, v) = (cat([K, k], 2), cat([V!, v], 2));
                K.Dispose();                                   // TorchSharp: the old ones are not needed any more
                V!.Dispose();
            }
            (K, V) = (k, v);
            return (k, v);
        }

        /// <summary>Keeps the keys and values past the caller's dispose scope.</summary>
        public void MoveToOuterDisposeScope() => (K, V) = (K?.MoveToOuterDisposeScope(), V?.MoveToOuterDisposeScope());
    }

    /// <summary>x + attn(ln_1(x)), then x + mlp(ln_2(x)).</summary>
    public sealed class Block : nn.Module<Tensor, Tensor>
    {
        private readonly LayerNorm ln_1;
        private readonly CausalSelfAttention attn;
        private readonly LayerNorm ln_2;
        private readonly Mlp mlp;

        public Block(long d, long heads, long block) : base(nameof(Block))
        {
            ln_1 = nn.LayerNorm(d);
            attn = new CausalSelfAttention(d, heads, block);
            ln_2 = nn.LayerNorm(d);
            mlp = new Mlp(d);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => Forward(x, null);

        public Tensor Forward(Tensor x, LayerCache? cache)
        {
            x = x + attn.Forward(ln_1.call(x), cache);                                     // (B, T, C)
            return x + mlp.call(ln_2.call(x));                                             // (B, T, C)
        }
    }

    /// <summary>Multi-head causal self-attention, written out: softmax(q kᵀ / √D, causal mask) v per head.</summary>
    public sealed class CausalSelfAttention : nn.Module<Tensor, Tensor>
    {
        private readonly Linear c_attn, c_proj;
        private readonly Tensor bias;                          // (1, 1, block, block) causal mask: true where j ≤ i
        private readonly long nHead;

        public CausalSelfAttention(long d, long heads, long block) : base(nameof(CausalSelfAttention))
        {
            nHead = heads;
            c_attn = nn.Linear(d, 3 * d);
            c_proj = nn.Linear(d, d);
            bias = ones(block, block, dtype: ScalarType.Bool).tril().view(1, 1, block, block);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => Forward(x, null);

        public Tensor Forward(Tensor x, LayerCache? cache)
        {
            long B = x.shape[0], T = x.shape[1], C = x.shape[2], H = nHead, D = C / H;
            var qkv = c_attn.call(x).split(C, 2);                                          // 3 × (B, T, C)
            var q = qkv[0].view(B, T, H, D).transpose(1, 2);                               // (B, H, T, D)
            var k = qkv[1].view(B, T, H, D).transpose(1, 2);                               // (B, H, T, D)
            var v = qkv[2].view(B, T, H, D).transpose(1, 2);                               // (B, H, T, D)
            if (cache is not null) (k, v) = cache.Append(k, v);                            // (B, H, L, D)
            long L = k.shape[2];
            var att = q.matmul(k.transpose(-2, -1)) * (1.0 / Math.Sqrt(D));                // (B, H, T, L)
            if (T > 1)                                                     // query i sits at position L - T + i
            {
                var mask = bias.narrow(2, L - T, T).narrow(3, 0, L);                       // (1, 1, T, L)
                att = att.masked_fill(mask.logical_not(), double.NegativeInfinity);
            }
            att = att.softmax(-1);
            var y = att.matmul(v);                                                         // (B, H, T, D)
            y = y.transpose(1, 2).contiguous().view(B, T, C);                              // (B, T, C)
            return c_proj.call(y);                                                         // (B, T, C)
        }
    }

    /// <summary>C → 4C, exact (erf) GELU, 4C → C.</summary>
    public sealed class Mlp : nn.Module<Tensor, Tensor>
    {
        private readonly Linear c_fc, c_proj;

        public Mlp(long d) : base(nameof(Mlp))
        {
            c_fc = nn.Linear(d, 4 * d);
            c_proj = nn.Linear(4 * d, d);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => c_proj.call(F.gelu(c_fc.call(x)));   // (B, T, C)
    }
}
