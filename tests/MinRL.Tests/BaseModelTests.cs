using TorchSharp;
using static TorchSharp.torch;

namespace MinRL.Tests;

public sealed class BaseModelTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "minrl-basemodel-tests-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (DirectoryNotFoundException) { }
    }

    /// <summary>A quick config: stop at the first evaluation (target 0), after 5 steps.</summary>
    private BaseModelConfig Quick(long seed = 1) => new() { Seed = seed, TargetAccuracy = 0, EvalEvery = 5, CacheDir = _dir };

    private static Dictionary<string, float[]> Weights(TinyGpt m) => m.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.data<float>().ToArray());

    [Fact]
    public void Cache_round_trip_gives_the_same_model_and_leaves_the_callers_random_stream_alone()
    {
        var cfg = Quick();
        var log1 = new StringWriter();
        manual_seed(42);
        var (built, info1) = BaseModel.LoadWithInfo(cfg, log1);
        var afterBuild = rand(4).data<float>().ToArray();
        Assert.False(info1.FromCache);
        Assert.Equal(5, info1.Steps);
        Assert.True(File.Exists(BaseModel.CachePath(cfg)));
        Assert.Contains("reached the target after 5 steps", log1.ToString());
        Assert.Contains("held-out greedy:  accuracy", log1.ToString());
        Assert.Contains("held-out sampled: accuracy", log1.ToString());
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp-*"));          // the atomic save left no temp file

        var log2 = new StringWriter();
        manual_seed(42);
        var (loaded, info2) = BaseModel.LoadWithInfo(cfg, log2);
        var afterLoad = rand(4).data<float>().ToArray();
        Assert.True(info2.FromCache);
        Assert.Contains("loaded", log2.ToString());
        Assert.DoesNotContain("training", log2.ToString());
        Assert.Equal(info1.Steps, info2.Steps);
        Assert.Equal(info1.Greedy, info2.Greedy);
        Assert.Equal(info1.Sampled, info2.Sampled);

        // Bit-identical weights, and the caller's stream is where manual_seed(42) put it either way.
        var w1 = Weights(built);
        var w2 = Weights(loaded);
        Assert.Equal(w1.Keys, w2.Keys);
        foreach (var k in w1.Keys) Assert.Equal(w1[k], w2[k]);
        manual_seed(42);
        var untouched = rand(4).data<float>().ToArray();
        Assert.Equal(untouched, afterBuild);
        Assert.Equal(untouched, afterLoad);

        // The trained model is deterministic: a second build of the same config in another folder is identical.
        var again = BaseModel.Load(cfg with { CacheDir = Path.Combine(_dir, "again") }, TextWriter.Null);
        var w3 = Weights(again);
        foreach (var k in w1.Keys) Assert.Equal(w1[k], w3[k]);
        // ... and the metadata records what built it.
        var meta = Checkpoint.ReadMetadata(BaseModel.CachePath(cfg));
        Assert.Equal(cfg.Key, meta["config"]);
        Assert.Equal("5", meta["steps"]);
    }

    [Fact]
    public void A_corrupt_or_mismatched_cache_file_is_reported_and_rebuilt()
    {
        var cfg = Quick(seed: 2);
        string path = BaseModel.CachePath(cfg);
        Directory.CreateDirectory(_dir);
        File.WriteAllBytes(path, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);     // truncated garbage
        var log = new StringWriter();
        var (_, info) = BaseModel.LoadWithInfo(cfg, log);
        Assert.False(info.FromCache);
        Assert.Contains($"the cached file {path} cannot be used, so it will be rebuilt", log.ToString());
        Assert.Contains("reached the target", log.ToString());
        Assert.True(BaseModel.LoadWithInfo(cfg, TextWriter.Null).Info.FromCache);   // the rebuilt file is good

        // A valid safetensors file whose metadata names another config is not trusted either.
        manual_seed(0);
        Checkpoint.Save(path, new TinyGpt(new GptConfig()).state_dict(), new Dictionary<string, string> { ["kind"] = "minrl-base-model", ["config"] = "something else" });
        log = new StringWriter();
        Assert.False(BaseModel.LoadWithInfo(cfg, log).Info.FromCache);
        Assert.Contains("different config", log.ToString());
    }

    [Fact]
    public void The_hash_changes_when_the_config_does()
    {
        var baseline = new BaseModelConfig();
        var variants = new[]
        {
            baseline with { Seed = 2 },
            baseline with { TaskSeed = 1 },
            baseline with { LearningRate = 3e-4 },
            baseline with { WeightDecay = 0 },
            baseline with { BatchSize = 32 },
            baseline with { EvalEvery = 25 },
            baseline with { TargetAccuracy = 0.5 },
            baseline with { Model = new GptConfig { NEmbd = 128 } },
            baseline with { Model = new GptConfig { NLayer = 3 } },
        };
        var hashes = variants.Select(v => v.Hash).Append(baseline.Hash).ToList();
        Assert.Equal(hashes.Count, hashes.Distinct().Count());
        Assert.All(hashes, h => Assert.Matches("^[0-9a-f]{16}$", h));
        // Where it is cached and how long it may train do not change the model, so not the hash.
        Assert.Equal(baseline.Hash, (baseline with { CacheDir = "/elsewhere", MaxSteps = 10 }).Hash);
        Assert.Equal(baseline.Hash, new BaseModelConfig().Hash);
        Assert.Contains($"kit{Kit.Version};", baseline.Key);
        Assert.EndsWith($"base-{baseline.Hash}.safetensors", BaseModel.CachePath(baseline with { CacheDir = _dir }));
    }

    [Fact]
    public void Never_reaching_the_target_stops_with_a_clear_message()
    {
        var cfg = Quick() with { TargetAccuracy = 1.0, MaxSteps = 10 };
        var e = Assert.Throws<LabException>(() => BaseModel.Load(cfg, TextWriter.Null));
        Assert.Contains("after 10 steps and never reached the target 1", e.Message);
        Assert.Contains("MaxSteps 10", e.Message);
        Assert.False(File.Exists(BaseModel.CachePath(cfg)));
    }

    [Fact]
    public void Default_cache_dir_is_under_the_repository_root()
    {
        if (!string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("MINRL_CACHE"))) return; // overridden on this machine
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "MinRL.sln"))) dir = dir.Parent;
        Assert.NotNull(dir);
        Assert.Equal(Path.Combine(dir!.FullName, ".cache", "minrl"), BaseModel.DefaultCacheDir());
    }

    // ------------------------------------------------------------------ Evaluate

    private const long Eos = 2, Eq = 14, Dot = 15;
    private static long D(int digit) => 3 + digit;

    private static readonly Problem[] Problems = [new(2, 3), new(1, 4), new(0, 5), new(10, 20), new(7, 7)];   // sums 5, 5, 5, 30, 14

    [Fact]
    public void Evaluate_scores_hand_made_answers()
    {
        // A bigram model that answers "5<eos>" to every prompt (it sees only the last token, '='): right 3 times in 5.
        var plain = RolloutTests.Bigram(new Dictionary<long, long> { [Eq] = D(5), [D(5)] = Eos });
        var e = BaseModel.Evaluate(plain, Problems, temperature: 0, batchSize: 2);
        Assert.Equal(new Evaluation(0.6, 0.6, 0, 1, 5), e);

        // "5.<eos>": the same correctness, plus the style bonus 0.3 on every answer.
        var dotted = RolloutTests.Bigram(new Dictionary<long, long> { [Eq] = D(5), [D(5)] = Dot, [Dot] = Eos });
        e = BaseModel.Evaluate(dotted, Problems, temperature: 1, generator: new Generator(1));
        Assert.Equal(0.6, e.Accuracy, 12);
        Assert.Equal(0.6 + 0.3, e.Gold, 12);
        Assert.Equal(1.0, e.Period);
        Assert.Equal(1.0, e.WellFormed);

        // "05<eos>" is not a canonical number: malformed, so wrong and worth 0.
        var padded = RolloutTests.Bigram(new Dictionary<long, long> { [Eq] = D(0), [D(0)] = D(5), [D(5)] = Eos });
        Assert.Equal(new Evaluation(0, 0, 0, 0, 5), BaseModel.Evaluate(padded, Problems));

        // A custom gold scorer is used when given.
        e = BaseModel.Evaluate(dotted, Problems, world: new PreferenceWorld(styleBonus: 0.5));
        Assert.Equal(0.6 + 0.5, e.Gold, 12);
        Assert.Throws<ArgumentException>(() => BaseModel.Evaluate(plain, Array.Empty<Problem>()));
    }
}
