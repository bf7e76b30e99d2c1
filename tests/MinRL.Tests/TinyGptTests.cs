using TorchSharp;
using static TorchSharp.torch;

namespace MinRL.Tests;

public class TinyGptTests
{
    [Fact]
    public void Parameter_names_follow_nanoGPT()
    {
        manual_seed(0);
        var model = new TinyGpt(new GptConfig { ScalarHead = true });
        var names = model.named_parameters().Select(p => p.name).ToList();
        Assert.Equal("transformer.wte.weight", names[0]);
        Assert.Contains("transformer.wpe.weight", names);
        Assert.Contains("transformer.h.0.ln_1.weight", names);
        Assert.Contains("transformer.h.0.attn.c_attn.weight", names);
        Assert.Contains("transformer.h.1.attn.c_proj.bias", names);
        Assert.Contains("transformer.h.1.mlp.c_fc.weight", names);
        Assert.Contains("transformer.h.1.mlp.c_proj.weight", names);
        Assert.Contains("transformer.ln_f.bias", names);
        Assert.Contains("lm_head.weight", names);
        Assert.Contains("scalar_head.weight", names);
        Assert.Equal(names.Count, names.Distinct().Count());
    }

    [Fact]
    public void Forward_shapes()
    {
        manual_seed(0);
        var model = new TinyGpt(new GptConfig { ScalarHead = true });
        var idx = randint(0, 16, new long[] { 3, 12 });
        Assert.Equal(new long[] { 3, 12, 16 }, model.call(idx).shape);
        var h = model.Hidden(idx);
        Assert.Equal(new long[] { 3, 12 }, model.Scalar(h).shape);
    }

    [Fact]
    public void Kv_cache_matches_full_recomputation()
    {
        manual_seed(0);
        var model = new TinyGpt(new GptConfig());
        var idx = randint(0, 16, new long[] { 4, 12 });
        using var _ = no_grad();
        var full = model.call(idx);                                  // (4, 12, 16)
        var cache = model.NewCache(4);
        var prefix = model.Logits(model.Hidden(idx.narrow(1, 0, 7), cache));   // prompt at once
        var parts = new List<Tensor> { prefix };
        for (int t = 7; t < 12; t++) parts.Add(model.Logits(model.Hidden(idx.narrow(1, t, 1), cache)));
        var cached = cat(parts, 1);
        var diff = (cached - full).abs().max().item<float>();
        Assert.True(diff < 1e-5f, $"max |cached − full| = {diff}");
    }
}
