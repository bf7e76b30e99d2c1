using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MinRL.Bench;

/// <summary>
/// The TinyGpt workloads (README.md, "TinyGpt workloads"): a training step, generation with and without the
/// KV cache, and log-prob scoring, on the S/M/L configs. torch_tinygpt.py runs the same workloads on
/// the same shapes in PyTorch; keep the two files in step.
/// </summary>
/// <remarks>
/// The benchmark model: every Linear (LM head included) has a bias, weights N(0, 0.02), biases 0,
/// LayerNorms (1, 0), no dropout, an untied LM head. For generate and logprobs the position table
/// has max(ctx, 72) rows (8 prompt tokens + 64 new ones).
/// </remarks>
public static class TinyGptBenches
{
    /// <summary>Prompts, new tokens and sequence length of the generate and logprobs workloads.</summary>
    public const int Prompts = 64, PromptLen = 8, NewTokens = 64, SeqLen = PromptLen + NewTokens;
    public const double Temperature = 1.0;

    /// <summary>The model for a config with a position table of <paramref name="blockSize"/> rows,
    /// re-initialised as torch_tinygpt.py does it: every weight N(0, 0.02) (c_proj included), biases 0.</summary>
    public static TinyGpt Model(BenchConfig c, int blockSize)
    {
        var model = new TinyGpt(new MinRL.GptConfig
        {
            VocabSize = c.Vocab, NEmbd = c.DModel, NLayer = c.Layers, NHead = c.Heads, BlockSize = blockSize,
        });
        using (no_grad())
        {
            foreach (var (name, p) in model.named_parameters())
            {
                if (name.EndsWith(".bias")) nn.init.zeros_(p);
                else if (name.Contains(".ln_")) nn.init.ones_(p);
                else nn.init.normal_(p, 0, 0.02);
            }
        }
        model.eval();
        Console.Error.WriteLine($"TinyGpt {c.Name}: vocab {c.Vocab}, d_model {c.DModel}, layers {c.Layers}, heads {c.Heads}, " +
                                $"block {blockSize}: {model.NumParameters()} parameters");
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
        yield return new Workload("train", "train", c.Name, () =>
        {
            opt.zero_grad();
            var logits = model.call(x);                                                  // (B, T, V)
            var loss = F.cross_entropy(logits.view(-1, c.Vocab), y.view(-1));
            loss.backward();
            opt.step();
        }, $"{c.Batch}x{c.Ctx}");
    }

    /// <summary>64 prompts of 8 random tokens, 64 new tokens each sampled at temperature 1: with the KV
    /// cache (the prompt once, then one position a step) and without it (the whole growing sequence
    /// recomputed every step). Only the last position goes through the LM head, as in nanoGPT.</summary>
    public static IEnumerable<Workload> Generate(Options o) => o.Configs.SelectMany(c => Generate(BenchConfig.All[c]));

    static IEnumerable<Workload> Generate(BenchConfig c)
    {
        manual_seed(0);
        var model = Model(c, Math.Max(c.Ctx, SeqLen));
        var prompts = randint(0, c.Vocab, [Prompts, PromptLen]);
        yield return new Workload("generate", "generate_cache", c.Name, () => GenerateCached(model, prompts), $"{Prompts}x{PromptLen}, {NewTokens} new");
        yield return new Workload("generate", "generate_nocache", c.Name, () => GenerateUncached(model, prompts), $"{Prompts}x{PromptLen}, {NewTokens} new");
    }

    /// <summary>Samples the next token from the last position's hidden state: (B, C) → (B, 1) ids.</summary>
    static Tensor Sample(TinyGpt model, Tensor lastHidden)
    {
        var logits = model.Logits(lastHidden);                                             // (B, V)
        return (logits / Temperature).softmax(-1).multinomial(1);                          // (B, 1)
    }

    public static Tensor GenerateCached(TinyGpt model, Tensor prompts)
    {
        using var _ = no_grad();
        var cache = model.NewCache(prompts.shape[0]);
        var h = model.Hidden(prompts, cache);                                              // (B, 8, C)
        var tokens = new List<Tensor>(NewTokens);
        for (int s = 0; s < NewTokens; s++)
        {
            var next = Sample(model, h.narrow(1, -1, 1).squeeze(1));                                     // (B, 1)
            tokens.Add(next);
            if (s < NewTokens - 1) h = model.Hidden(next, cache);                          // (B, 1, C)
        }
        return cat(tokens, 1);                                                             // (B, 64)
    }

    public static Tensor GenerateUncached(TinyGpt model, Tensor prompts)
    {
        using var _ = no_grad();
        var seq = prompts;
        for (int s = 0; s < NewTokens; s++)
        {
            var h = model.Hidden(seq);                                                     // (B, t, C)
            seq = cat([seq, Sample(model, h.narrow(1, -1, 1).squeeze(1))], 1);                           // (B, t + 1)
        }
        return seq.narrow(1, PromptLen, NewTokens);                                        // (B, 64)
    }

    /// <summary>No-grad log-probs of the 64 completion tokens of 64 random sequences of 72 tokens: one
    /// forward over the whole sequence, log_softmax over the 64 positions that predict the completion,
    /// gather of the tokens that were there.</summary>
    public static IEnumerable<Workload> Logprobs(Options o) => o.Configs.SelectMany(c => Logprobs(BenchConfig.All[c]));

    static IEnumerable<Workload> Logprobs(BenchConfig c)
    {
        manual_seed(0);
        var model = Model(c, Math.Max(c.Ctx, SeqLen));
        var seqs = randint(0, c.Vocab, [Prompts, SeqLen]);
        yield return new Workload("logprobs", "logprobs", c.Name, () => LogProbs(model, seqs), $"{Prompts}x{SeqLen}");
    }

    public static Tensor LogProbs(TinyGpt model, Tensor seqs)
    {
        using var _ = no_grad();
        var logits = model.call(seqs);                                                     // (B, 72, V)
        var pred = logits.narrow(1, PromptLen - 1, NewTokens);                             // (B, 64, V): positions 7..70
        var targets = seqs.narrow(1, PromptLen, NewTokens).unsqueeze(-1);                  // (B, 64, 1)
        return pred.log_softmax(-1).gather(-1, targets).squeeze(-1);                       // (B, 64)
    }
}
