using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MinRL.Tests;

/// <summary>
/// TinyGpt against a PyTorch nanoGPT (<c>tests/reference/tinygpt_reference.py</c>).
/// </summary>
/// <remarks>
/// <para>The flow goes C# → PyTorch → C#. This class builds two seeded TinyGpt models (without and with
/// the scalar head) and saves them with <see cref="Checkpoint.Save"/> into
/// <c>fixtures/tinygpt/model.safetensors</c> and <c>model_scalar.safetensors</c> (run with
/// <c>MINRL_WRITE_FIXTURES=1</c> to rewrite them). The Python script loads those checkpoints into a
/// PyTorch module with the same structure and parameter names — which proves that a MinRL checkpoint
/// opens in PyTorch — runs a fixed batch in float32 and float64, and writes the logits, the loss and
/// every parameter's gradient as safetensors (<c>lm_f32</c>, <c>lm_f64</c>, <c>scalar_f32</c>,
/// <c>scalar_f64</c>). The tests here load the same checkpoints, run the same batch and compare.</para>
/// <para>Tolerances (as in MinTorch's PyTorchFixtureTests): an element passes when
/// |actual − expected| ≤ rtol·|expected| + atolFraction·max|expected of that tensor|. float32:
/// rtol 1e-5, atolFraction 1e-6; float64: rtol 1e-10, atolFraction 1e-12. The absolute floor is for
/// elements that are near zero by cancellation — a gradient summed from terms of both signs, or one
/// that is zero in exact arithmetic, like the key part of every c_attn bias (adding a constant to
/// every key shifts a query's scores by a constant, which softmax ignores): such an element is the
/// rounding error of terms of the tensor's typical size, so only an error measured against that size
/// means anything. The script checks that PyTorch's own float32 run is within half of the float32
/// tolerance of its float64 run, so the float32 test does not ask for more than float32 has.</para>
/// </remarks>
public class TinyGptReferenceTests(ITestOutputHelper output)
{
    const string Sub = "tinygpt";
    const string WriteEnv = "MINRL_WRITE_FIXTURES";
    const double Rtol32 = 1e-5, AtolFraction32 = 1e-6;
    const double Rtol64 = 1e-10, AtolFraction64 = 1e-12;

    /// <summary>The book's model (d_model 64, 2 layers, 4 heads, a 12-token context, ~103k parameters), spelled
    /// out so that a change of the defaults does not silently change the fixtures.</summary>
    static readonly GptConfig LmConfig = new() { VocabSize = 16, BlockSize = 12, NLayer = 2, NHead = 4, NEmbd = 64 };
    static readonly GptConfig ScalarConfig = LmConfig with { ScalarHead = true };
    const long LmSeed = 1001, ScalarSeed = 1002;

    static (string file, GptConfig config, long seed)[] FixtureModels =>
    [
        ("model.safetensors", LmConfig, LmSeed),
        ("model_scalar.safetensors", ScalarConfig, ScalarSeed),
    ];

    /// <summary>
    /// A seeded TinyGpt with its weights redrawn at a scale where every part of the model does real work.
    /// </summary>
    /// <remarks>
    /// nanoGPT's initialisation (weights N(0, 0.02), biases 0, LayerNorms (1, 0)) would make a weak
    /// reference: the attention scores are ~1e-3, so every softmax is nearly uniform and a wrong causal
    /// mask or scale would barely move the logits; GELU and the heads work in their linear regime; and
    /// with zero biases and unit LayerNorm gains, a forgotten bias or gain would not show at all. So,
    /// as in engine_fixtures.py: embeddings N(0, 1), Linear weights N(0, 1/fan_in) (pre-activations of
    /// order 1, attention scores of order 1), biases N(0, 0.1²), LayerNorm gains 1 + N(0, 0.2²).
    /// </remarks>
    internal static TinyGpt BuildModel(GptConfig config, long seed)
    {
        manual_seed(seed);
        var model = new TinyGpt(config);
        using (no_grad())
        {
            foreach (var (name, p) in model.named_parameters())
            {
                // One generator per parameter, seeded from the seed and the name, so a tensor's values do not
                // depend on the order the parameters are registered in.
                var z = randn(p.shape, generator: new Generator(unchecked((ulong)seed * 1_000_003UL + Fnv1a(name))));
                Tensor value;
                if (name.EndsWith(".bias")) value = z * 0.1;
                else if (name.StartsWith("transformer.wte") || name.StartsWith("transformer.wpe")) value = z;
                else if (name.Contains(".ln_")) value = z * 0.2 + 1.0;
                else value = z / Math.Sqrt(p.shape[1]);
                p.copy_(value);
            }
        }
        return model;
    }

    /// <summary>FNV-1a, a stable string hash (string.GetHashCode is randomised per process).</summary>
    static ulong Fnv1a(string s)
    {
        ulong h = 14695981039346656037UL;
        foreach (char c in s) { h ^= c; h *= 1099511628211UL; }
        return h;
    }

    static Dictionary<string, string> Metadata(GptConfig config, long seed) => new()
    {
        ["generator"] = "tests/MinRL.Tests/TinyGptReferenceTests.cs (BuildModel)",
        ["config"] = config.Key,
        ["seed"] = seed.ToString(),
    };

    // ------------------------------------------------------------------ the checkpoints C# hands to PyTorch

    /// <summary>
    /// With <c>MINRL_WRITE_FIXTURES=1</c>, (re)writes the two checkpoints into the source tree. Otherwise
    /// checks that the committed ones hold, bit for bit, what the seeded builder makes now: the seed fixes
    /// the weights on every run and machine. If this fails after a deliberate change of the initialisation
    /// or the random number generator, regenerate (tests/reference/README.md).
    /// </summary>
    [MinTorchFact("the fixtures' weights were drawn by MinTorch's generator")]
    public void Committed_checkpoints_are_what_the_seeded_builder_makes()
    {
        bool write = Environment.GetEnvironmentVariable(WriteEnv) == "1";
        foreach (var (file, config, seed) in FixtureModels)
        {
            var model = BuildModel(config, seed);
            if (write)
            {
                var path = Path.Combine(Fixtures.SourceDir(Sub), file);
                Checkpoint.Save(path, model.state_dict(), Metadata(config, seed));
                output.WriteLine($"wrote {path} ({model.NumParameters()} parameters)");
                continue;
            }
            var committed = Checkpoint.Load(Fixtures.PathOf(file, Sub));
            Assert.Equal(Metadata(config, seed), committed.Metadata);
            var state = model.state_dict();
            Assert.Equal(state.Keys.Order(), committed.Tensors.Keys.Order());   // by name: the order is checked below
            foreach (var (name, t) in state)
            {
                Assert.Equal(t.shape, committed.Tensors[name].shape);
                Assert.True(t.data<float>().ToArray().SequenceEqual(committed.Tensors[name].data<float>().ToArray()),
                    $"{file}: '{name}' differs from what BuildModel({config.Key}, seed {seed}) makes now");
            }
        }
    }

    // ------------------------------------------------------------------ logits, loss and every gradient vs PyTorch

    /// <summary>The model of <paramref name="scalarHead"/>'s fixture, loaded from the committed checkpoint.</summary>
    static TinyGpt LoadFixtureModel(bool scalarHead, ScalarType dtype)
    {
        var config = scalarHead ? ScalarConfig : LmConfig;
        manual_seed(0);
        var model = new TinyGpt(config);   // its own initial weights are all overwritten below
        var result = Checkpoint.LoadInto(Fixtures.PathOf(scalarHead ? "model_scalar.safetensors" : "model.safetensors", Sub), model.state_dict());
        Assert.Empty(result.MissingKeys);
        Assert.Empty(result.UnexpectedKeys);
        Assert.Equal(config.Key, result.Metadata["config"]);
        if (dtype != ScalarType.Float32) model.to(dtype);
        return model;
    }

    [Theory]
    [InlineData(false, ScalarType.Float32)]
    [InlineData(false, ScalarType.Float64)]
    [InlineData(true, ScalarType.Float32)]
    [InlineData(true, ScalarType.Float64)]
    public void Matches_pytorch(bool scalarHead, ScalarType dtype)
    {
        string file = $"{(scalarHead ? "scalar" : "lm")}_{(dtype == ScalarType.Float32 ? "f32" : "f64")}.safetensors";
        var fx = Fixtures.Load(file, Sub);
        var model = LoadFixtureModel(scalarHead, dtype);
        foreach (var p in model.parameters()) Assert.Equal(dtype, p.dtype);

        var idx = fx["idx"];                                    // (3, 12) int64
        var targets = fx["targets"];                            // (3, 12) int64, some -100
        Assert.Equal(new long[] { 3, 12 }, idx.shape);
        Assert.Contains(-100L, targets.data<long>().ToArray());
        long V = model.Config.VocabSize;

        Tensor logits, loss;
        Tensor? values = null, ce = null;
        if (!scalarHead)
        {
            logits = model.call(idx);                                              // (B, T, V)
            loss = F.cross_entropy(logits.view(-1, V), targets.view(-1));
        }
        else
        {
            var h = model.Hidden(idx);                                             // (B, T, C)
            logits = model.Logits(h);                                              // (B, T, V)
            values = model.Scalar(h);                                              // (B, T)
            ce = F.cross_entropy(logits.view(-1, V), targets.view(-1));
            loss = ce + 0.5 * values.pow(2).mean();
        }
        model.zero_grad();
        loss.backward();

        var check = dtype == ScalarType.Float32 ? new FixtureCheck(Rtol32, AtolFraction32) : new FixtureCheck(Rtol64, AtolFraction64);
        check.Compare("logits", fx["logits"], logits.detach());
        check.Compare("loss", fx["loss"], loss.detach());
        if (scalarHead)
        {
            check.Compare("values", fx["values"], values!.detach());
            check.Compare("ce", fx["ce"], ce!.detach());
        }
        var names = new List<string>();
        foreach (var (name, p) in model.named_parameters())
        {
            names.Add(name);
            check.Compare("grad." + name, fx["grad." + name], p.grad);
        }
        // Every parameter was compared, and the fixture has no gradient the model lacks.
        Assert.Equal(fx.Keys.Where(k => k.StartsWith("grad.")).Order(), names.Select(n => "grad." + n).Order());
        Assert.Equal(scalarHead ? 32 : 30, names.Count);
        output.WriteLine($"{file}: {check.Summary()}");

        if (dtype == ScalarType.Float32)
        {
            // PyTorch's float32 numbers are themselves float32 approximations. Compared with PyTorch's float64
            // run (the exact answer to ~1e-13), MinTorch's float32 run must meet the same float32 criterion on
            // its own — as PyTorch's float32 run does (tinygpt_reference.py checks that, with a factor 2 to spare).
            var exact = Fixtures.Load(file.Replace("_f32", "_f64"), Sub);
            var vsExact = new FixtureCheck(Rtol32, AtolFraction32);
            Tensor D(Tensor t) => t.detach().to_type(ScalarType.Float64);
            vsExact.Compare("logits", exact["logits"], D(logits));
            vsExact.Compare("loss", exact["loss"], D(loss));
            if (scalarHead) vsExact.Compare("values", exact["values"], D(values!));
            foreach (var (name, p) in model.named_parameters()) vsExact.Compare("grad." + name, exact["grad." + name], D(p.grad!));
            output.WriteLine($"float32 vs PyTorch's float64: {vsExact.Summary()}");
            vsExact.AssertAll();
        }
        check.AssertAll();
    }

    /// <summary>
    /// The parameters come in PyTorch's order too (the fixture lists its gradients in the PyTorch model's
    /// <c>named_parameters()</c> order; <see cref="Checkpoint.Load"/> keeps the header's order). Loading is by
    /// name, so the comparisons above do not depend on it; a flat parameter vector
    /// (<c>parameters_to_vector</c>, TRPO) or an optimizer's per-parameter state does.
    /// </summary>
    [Fact]
    public void Parameters_come_in_the_pytorch_order()
    {
        var fx = Checkpoint.Load(Fixtures.PathOf("scalar_f32.safetensors", Sub)).Tensors;
        var torchOrder = fx.Keys.Where(k => k.StartsWith("grad.")).Select(k => k["grad.".Length..]).ToList();
        var model = LoadFixtureModel(scalarHead: true, ScalarType.Float32);
        Assert.Equal(torchOrder, model.named_parameters().Select(p => p.name).ToList());
    }

    // ------------------------------------------------------------------ KV cache: generation equals full recomputation

    /// <summary>The fixture's weights in a model whose position table has 40 rows, so 8 prompt tokens and 32
    /// generated ones fit.</summary>
    static readonly GptConfig LongConfig = LmConfig with { BlockSize = 40 };

    /// <summary>
    /// Sampling 32 tokens for a batch of 4 prompts (8 tokens each): with the cache (the prompt in one call,
    /// then one token a call) and by running the whole sequence again at every step. At every step the
    /// last position's logits agree within the float32 (or float64) tolerance, and two generators with the
    /// same seed — one per path, temperature 1, <c>multinomial(softmax(logits))</c> — draw the same tokens.
    /// </summary>
    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void Kv_cache_generation_matches_full_recomputation(ScalarType dtype)
    {
        const int Batch = 4, Prompt = 8, Steps = 32;
        var model = BuildModel(LongConfig, 77).to(dtype);
        model.eval();
        var prompts = randint(0, 16, new long[] { Batch, Prompt }, generator: new Generator(5));
        var check = dtype == ScalarType.Float32 ? new FixtureCheck(Rtol32, AtolFraction32) : new FixtureCheck(Rtol64, AtolFraction64);
        var genCached = new Generator(4242);
        var genFull = new Generator(4242);

        using var _ = no_grad();
        var cache = model.NewCache(Batch);
        var cachedLast = model.Logits(model.Hidden(prompts, cache)).narrow(1, Prompt - 1, 1).squeeze(1);   // (B, V)
        var seq = prompts;                                                                   // (B, Prompt + s)
        var sampled = new List<long[]>();
        for (int s = 0; s < Steps; s++)
        {
            var fullLast = model.call(seq).narrow(1, seq.shape[1] - 1, 1).squeeze(1);                    // (B, V)
            check.Compare($"step {s} logits", fullLast, cachedLast);
            var nextFull = fullLast.softmax(-1).multinomial(1, generator: genFull);         // (B, 1)
            var nextCached = cachedLast.softmax(-1).multinomial(1, generator: genCached);   // (B, 1)
            Assert.Equal(nextFull.data<long>().ToArray(), nextCached.data<long>().ToArray());
            sampled.Add(nextCached.data<long>().ToArray());
            seq = cat(new[] { seq, nextFull }, 1);
            if (s + 1 < Steps) cachedLast = model.Logits(model.Hidden(nextCached, cache)).squeeze(1);
        }
        Assert.Equal(Prompt + Steps - 1, cache.Length);
        Assert.Equal(Prompt + Steps, seq.shape[1]);
        // The samples are not degenerate (a constant token would hide a sampler that ignores its input).
        Assert.True(sampled.SelectMany(x => x).Distinct().Count() >= 8, "the sampled tokens should vary");
        output.WriteLine($"{dtype}: {check.Summary()}");
        check.AssertAll();
    }

    /// <summary>Feeding the cache several tokens at a time (T &gt; 1 after a prefix: the offset causal mask
    /// <c>ones(T, L).tril(L − T)</c>) gives every position the logits of the full forward.</summary>
    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void Kv_cache_fed_in_chunks_matches_the_full_forward(ScalarType dtype)
    {
        var model = BuildModel(LongConfig, 78).to(dtype);
        var ids = randint(0, 16, new long[] { 3, 40 }, generator: new Generator(6));
        var check = dtype == ScalarType.Float32 ? new FixtureCheck(Rtol32, AtolFraction32) : new FixtureCheck(Rtol64, AtolFraction64);
        using var _ = no_grad();
        var full = model.call(ids);                                                          // (3, 40, V)
        var cache = model.NewCache(3);
        long start = 0;
        foreach (long len in new long[] { 5, 1, 3, 7, 1, 2, 11, 10 })                        // 40 in all
        {
            var part = model.Logits(model.Hidden(ids.narrow(1, start, len), cache));       // (3, len, V)
            check.Compare($"positions {start}..{start + len - 1}", full.narrow(1, start, len), part);
            start += len;
        }
        Assert.Equal(40, cache.Length);
        output.WriteLine($"{dtype}: {check.Summary()}");
        check.AssertAll();
    }

    // ------------------------------------------------------------------ errors a user can act on

    [Fact]
    public void A_sequence_longer_than_the_block_size_is_refused()
    {
        var model = BuildModel(LmConfig, 1);
        var e = Assert.Throws<ArgumentException>(() => model.call(zeros(new long[] { 2, 13 }, ScalarType.Int64)));
        Assert.Contains("13 tokens", e.Message);
        Assert.Contains("block size 12", e.Message);

        // With a cache, what counts is what the cache holds plus the new tokens.
        var cache = model.NewCache(2);
        using var _ = no_grad();
        model.Hidden(zeros(new long[] { 2, 10 }, ScalarType.Int64), cache);
        e = Assert.Throws<ArgumentException>(() => model.Hidden(zeros(new long[] { 2, 3 }, ScalarType.Int64), cache));
        Assert.Contains("13 tokens", e.Message);
        Assert.Contains("block size 12", e.Message);
        Assert.Equal(10, cache.Length);   // the refused call left the cache as it was
        model.Hidden(zeros(new long[] { 2, 2 }, ScalarType.Int64), cache);   // exactly the block size is fine
        Assert.Equal(12, cache.Length);
    }

    [Fact]
    public void Token_ids_of_the_wrong_dtype_or_shape_are_refused()
    {
        var model = BuildModel(LmConfig, 1);
        var e = Assert.Throws<ArgumentException>(() => model.call(zeros(2, 5)));              // float32 ids
        Assert.Contains("int64", e.Message);
        Assert.Contains("Float32", e.Message);
        Assert.Contains("[2, 5]", e.Message);
        e = Assert.Throws<ArgumentException>(() => model.call(zeros(new long[] { 5 }, ScalarType.Int64)));   // no batch dim
        Assert.Contains("(B, T)", e.Message);
        Assert.Contains("[5]", e.Message);
        e = Assert.Throws<ArgumentException>(() => model.Hidden(zeros(new long[] { 2, 3, 4 }, ScalarType.Int64)));
        Assert.Contains("[2, 3, 4]", e.Message);
    }

    [Theory]
    [InlineData(16L)]
    [InlineData(-1L)]
    public void A_token_id_outside_the_vocabulary_is_refused(long bad)
    {
        var model = BuildModel(LmConfig, 1);
        var ids = tensor(new long[] { 3, 1, bad, 0 }, new long[] { 2, 2 });
        var e = Assert.ThrowsAny<ArgumentException>(() => model.call(ids));
        Assert.Contains("token ids must be in 0..15", e.Message);        // checked before libtorch sees them
        Assert.Contains($"got {Math.Min(bad, 0)}..{Math.Max(bad, 3)}", e.Message);
    }

    [Fact]
    public void A_cache_made_for_another_batch_size_is_refused()
    {
        var model = BuildModel(LmConfig, 1);
        var cache = model.NewCache(4);
        using var _ = no_grad();
        var e = Assert.Throws<ArgumentException>(() => model.Hidden(zeros(new long[] { 3, 2 }, ScalarType.Int64), cache));
        Assert.Contains("batch of 4", e.Message);
        Assert.Contains("got 3", e.Message);
    }

    [Fact]
    public void The_scalar_head_of_a_model_without_one_is_refused()
    {
        var model = BuildModel(LmConfig, 1);
        var e = Assert.Throws<InvalidOperationException>(() => model.Scalar(model.Hidden(zeros(new long[] { 1, 3 }, ScalarType.Int64))));
        Assert.Contains("ScalarHead", e.Message);
    }

    [Theory]
    [InlineData(40, 64, "transformer.wpe.weight", "[12, 64]", "[40, 64]")]   // only the position table differs
    [InlineData(12, 32, "transformer.wte.weight", "[16, 64]", "[16, 32]")]   // every tensor differs: the first is named
    public void Loading_a_checkpoint_of_another_config_names_the_tensor_and_both_shapes(int blockSize, int nEmbd, string tensor, string inFile, string inModel)
    {
        var model = BuildModel(LmConfig with { BlockSize = blockSize, NEmbd = nEmbd }, 3);
        var before = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.data<float>().ToArray());
        var path = Fixtures.PathOf("model.safetensors", Sub);
        var e = Assert.Throws<InvalidOperationException>(() => Checkpoint.LoadInto(path, model.state_dict()));
        Assert.Contains($"'{tensor}'", e.Message);
        Assert.Contains($"{inFile} in the file", e.Message);
        Assert.Contains($"{inModel} in the model", e.Message);
        Assert.Contains("model.safetensors", e.Message);
        // Nothing was copied, not even the tensors whose shapes agree.
        foreach (var (name, t) in model.state_dict()) Assert.Equal(before[name], t.data<float>().ToArray());
    }

    [Fact]
    public void Loading_a_checkpoint_with_or_without_the_scalar_head_into_the_other_model_names_the_head()
    {
        var withHead = BuildModel(ScalarConfig, 3);
        var e = Assert.Throws<InvalidOperationException>(() => Checkpoint.LoadInto(Fixtures.PathOf("model.safetensors", Sub), withHead.state_dict()));
        Assert.Contains("missing from the file: scalar_head.weight, scalar_head.bias", e.Message);
        var without = BuildModel(LmConfig, 3);
        e = Assert.Throws<InvalidOperationException>(() => Checkpoint.LoadInto(Fixtures.PathOf("model_scalar.safetensors", Sub), without.state_dict()));
        Assert.Contains("in the file but not in the model: scalar_head.weight, scalar_head.bias", e.Message);
    }
}
