// PreferenceCheck: is the preference world of chapters 5–7 learnable, and what does a reward model learn?
//
// Chapters 5–7 build on this preference world: if you change it, measure it this way first. This program
//   1. loads (or builds) the base model,
//   2. draws two T = 1 samples per problem from it and labels each pair with PreferenceWorld
//      (Bradley–Terry on the gold score, τ = 0.1), on training problems and on held-out problems,
//   3. prints the pair-kind mix and the noise ceiling (the best accuracy any model can expect),
//   4. trains a Bradley–Terry reward model for a fixed wall-clock budget:
//         r_θ(x, y) = the scalar head read at the <eos> position of prompt x + completion y
//         L(θ) = −E[ log σ(r_θ(x, y_chosen) − r_θ(x, y_rejected)) ]
//      (TinyGpt with a scalar head, initialised from the base model's weights, AdamW),
//   5. reports held-out pair accuracy overall and by pair kind, and the correlation of r with gold.
//
//   dotnet run -c Release --project tests/experiments/PreferenceCheck -- --seed 1 [--seconds 40 | --steps 800]
//
// Measured (2 shared cores under load, 40 s each, lr 1e-4, batch 64, RM initialised from the base;
// ~3,700 training pairs, ~1,850 held-out pairs):
//
//   seed  noise ceiling  Tie / StyleOnly / CorrectnessOnly / Both   RM acc  style-only  correctness-only  corr(r, gold)
//   1       0.840        0.29 / 0.35 / 0.19 / 0.17                 0.683   0.938       0.603             0.33
//   2       0.859        0.25 / 0.38 / 0.20 / 0.18                 0.672   0.938       0.537             0.26
//   3       0.852        0.26 / 0.37 / 0.19 / 0.18                 0.680   0.905       0.604             0.26
//
// (accuracies against the noisy held-out labels; the style-only ceiling is 0.953, and against the gold
// ordering style-only pairs are 0.94–0.98 right). The reward model learns the `.` and barely the sum.
using System.Diagnostics;
using System.Globalization;
using MinRL;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

return Lab.Run<Args>(args, "preference-check", "measures the preference world and a quick Bradley–Terry reward model", Run);

static int Run(Args a)
{
    const int P = ArithmeticTask.PromptLength, M = ArithmeticTask.MaxCompletionLength;
    var (baseModel, info) = BaseModel.LoadWithInfo(new BaseModelConfig { Seed = a.Seed });
    var task = new ArithmeticTask(0);
    var world = new PreferenceWorld();

    // ---- pairs: two base samples (T = 1) per problem, labelled by the simulated labeller.
    var gen = new Generator((ulong)(1000 + a.Seed));
    var dataRng = new SplitMix64(2000 + a.Seed);
    IReadOnlyList<PreferencePair> Pairs(IReadOnlyList<Problem> problems, long labelSeed)
    {
        var prompts = ArithmeticTask.EncodePrompts(problems);
        var first = Rollouts.Generate(baseModel, prompts, M, temperature: 1.0, generator: gen);
        var second = Rollouts.Generate(baseModel, prompts, M, temperature: 1.0, generator: gen);
        return world.MakePairs(problems, first.Completions, second.Completions, labelSeed);
    }
    var clock = Stopwatch.StartNew();
    var trainPairs = Pairs(ArithmeticTask.Sample(task.Train, a.TrainProblems, dataRng), 3000 + a.Seed);
    var evalProblems = Enumerable.Range(0, a.EvalRepeats).SelectMany(_ => task.Eval).ToArray();
    var evalPairs = Pairs(evalProblems, 4000 + a.Seed);
    Lab.Print($"pairs: {trainPairs.Count} for training (from {a.TrainProblems} training problems), {evalPairs.Count} held out " +
              $"(the {task.Eval.Count} held-out problems × {a.EvalRepeats}); sampled in {Lab.Fmt(clock.Elapsed.TotalSeconds)} s");

    var kinds = Enum.GetValues<PairKind>();
    Lab.Table("pair kinds (share of pairs) and noise ceiling", ["set", .. kinds.Select(k => k.ToString()), "noise ceiling", "labels against gold"],
        new[] { ("train", trainPairs), ("held-out", evalPairs) }.Select(s => new object?[] { s.Item1 }
            .Concat(kinds.Select(k => (object?)(s.Item2.Count(p => p.Kind == k) / (double)s.Item2.Count)))
            .Append(world.NoiseCeiling(s.Item2))
            .Append(s.Item2.Count(p => p.GoldMargin < 0) / (double)s.Item2.Count).ToArray()));
    Lab.Table("noise ceiling by kind (held-out)", ["kind", "pairs", "noise ceiling"],
        kinds.Select(k => new object?[] { k.ToString(), evalPairs.Count(p => p.Kind == k), world.NoiseCeiling(evalPairs.Where(p => p.Kind == k)) }));

    // ---- the reward model: TinyGpt with a scalar head, initialised from the base (its LM head goes unused).
    manual_seed(a.Seed);
    var rm = new TinyGpt(new GptConfig { ScalarHead = true });
    if (a.InitFromBase)
    {
        using var _ = no_grad();
        var source = baseModel.state_dict();
        foreach (var (name, p) in rm.named_parameters())
            if (source.TryGetValue(name, out var w)) p.copy_(w);
    }
    var optimizer = optim.AdamW(rm.parameters(), lr: a.LearningRate, weight_decay: 0.01);
    var (trP, trC, trR) = PreferenceWorld.Encode(trainPairs);
    var (evP, evC, evR) = PreferenceWorld.Encode(evalPairs);

    // r(x, y) read at the <eos> (or, for an unfinished completion, the last) token.
    Tensor Reward(Tensor prompts, Tensor completions)                     // (N, 7), (N, 5) → (N)
    {
        var seq = cat(new[] { prompts, completions }, 1);                 // (N, 12)
        var (_, lengths) = Rollouts.CompletionMask(completions);          // (N)
        var r = rm.Scalar(rm.Hidden(seq));                                // (N, 12)
        return r.gather(1, (lengths + (P - 1)).unsqueeze(1)).squeeze(1);  // (N)
    }

    // Accuracy against the noisy labels (what the loss sees; bounded by the noise ceiling), and agreement with
    // the gold ordering on pairs whose gold differs (what the labels are noisy measurements of; can reach 1).
    (double acc, Dictionary<PairKind, double> byKind, Dictionary<PairKind, double> goldByKind, double goldAll, double corr) Evaluate()
    {
        rm.eval();
        using var _ = no_grad();
        var rc = Reward(evP, evC).data<float>().ToArray();
        var rr = Reward(evP, evR).data<float>().ToArray();
        rm.train();
        var right = evalPairs.Select((p, i) => rc[i] > rr[i]).ToArray();
        var byKind = kinds.ToDictionary(k => k, k =>
        {
            var idx = Enumerable.Range(0, evalPairs.Count).Where(i => evalPairs[i].Kind == k).ToArray();
            return idx.Length == 0 ? double.NaN : idx.Count(i => right[i]) / (double)idx.Length;
        });
        var agrees = evalPairs.Select((p, i) => p.GoldMargin == 0 ? (bool?)null : (rc[i] > rr[i]) == (p.GoldMargin > 0)).ToArray();
        double Share(IEnumerable<int> idx) { var a = idx.Where(i => agrees[i] is not null).ToArray(); return a.Length == 0 ? double.NaN : a.Count(i => agrees[i] == true) / (double)a.Length; }
        var goldByKind = kinds.ToDictionary(k => k, k => Share(Enumerable.Range(0, evalPairs.Count).Where(i => evalPairs[i].Kind == k)));
        var rewards = rc.Concat(rr).Select(v => (double)v).ToArray();
        var golds = evalPairs.Select(p => p.GoldChosen).Concat(evalPairs.Select(p => p.GoldRejected)).ToArray();
        return (right.Count(x => x) / (double)right.Length, byKind, goldByKind, Share(Enumerable.Range(0, evalPairs.Count)), Pearson(rewards, golds));
    }

    var rng = new SplitMix64(5000 + a.Seed);
    int n = trainPairs.Count, step = 0;
    double lossEma = double.NaN;
    var order = Enumerable.Range(0, n).ToArray();
    int cursor = n;
    var train = Stopwatch.StartNew();
    double nextReport = a.Seconds / 4.0;
    // A wall-clock budget by default (40 s, as in the measured table above); --steps N trains exactly N steps instead,
    // which makes the run reproducible bit for bit.
    bool bySteps = a.IsGiven(nameof(a.Steps));
    Lab.Print($"reward model: AdamW lr {a.LearningRate.ToString(CultureInfo.InvariantCulture)}, batch {a.BatchSize} pairs, " +
              $"{(bySteps ? $"{a.Steps} steps" : $"{a.Seconds} s")}, initialised from {(a.InitFromBase ? "the base model" : "scratch")}");
    while (bySteps ? step < a.Steps : train.Elapsed.TotalSeconds < a.Seconds)
    {
        if (cursor + a.BatchSize > n) { rng.Shuffle(order); cursor = 0; }
        var idx = tensor(order.Skip(cursor).Take(a.BatchSize).Select(i => (long)i).ToArray(), [a.BatchSize]);
        cursor += a.BatchSize;
        var prompts = trP.index_select(0, idx);
        var both = Reward(cat(new[] { prompts, prompts }, 0), cat(new[] { trC.index_select(0, idx), trR.index_select(0, idx) }, 0));   // (2B)
        var margin = both.narrow(0, 0, a.BatchSize) - both.narrow(0, a.BatchSize, a.BatchSize);                                    // r_c − r_r
        var loss = -F.logsigmoid(margin).mean();
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        step++;
        double l = loss.item<float>();
        lossEma = double.IsNaN(lossEma) ? l : 0.98 * lossEma + 0.02 * l;
        if (bySteps ? step % Math.Max(1, a.Steps / 4) == 0 : train.Elapsed.TotalSeconds >= nextReport)
        {
            nextReport += a.Seconds / 4.0;
            var (acc, _, _, _, corr) = Evaluate();
            Lab.Print($"  step {step,5}  {Lab.Fmt(train.Elapsed.TotalSeconds),5} s  loss {Lab.Fmt(lossEma)}  held-out accuracy {Lab.Fmt(acc)}  corr(r, gold) {Lab.Fmt(corr)}");
        }
    }
    var final = Evaluate();
    Lab.Table($"reward model after {step} steps ({Lab.Fmt(train.Elapsed.TotalSeconds)} s, {Lab.Fmt(step * (double)a.BatchSize / n)} epochs), held-out pairs",
        ["", "accuracy (labels)", "noise ceiling", "agrees with gold", "pairs"],
        new[] { new object?[] { "all", final.acc, world.NoiseCeiling(evalPairs), final.goldAll, evalPairs.Count } }
            .Concat(kinds.Select(k => new object?[] { k.ToString(), final.byKind[k], world.NoiseCeiling(evalPairs.Where(p => p.Kind == k)),
                k == PairKind.Tie ? null : final.goldByKind[k], evalPairs.Count(p => p.Kind == k) })));
    Lab.Print($"correlation of the learned reward with gold (held-out completions): {Lab.Fmt(final.corr)}");
    Lab.Print($"base model: steps {info.Steps}, greedy {info.Greedy.Accuracy:F3}, sampled {info.Sampled.Accuracy:F3}, " +
              $"gold {info.Sampled.Gold:F3}, '.' share {info.Sampled.Period:F3}");
    return 0;
}

static double Pearson(double[] x, double[] y)
{
    double mx = x.Average(), my = y.Average(), sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < x.Length; i++) { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) * (x[i] - mx); syy += (y[i] - my) * (y[i] - my); }
    return sxy / Math.Sqrt(sxx * syy);
}

sealed record Args : LabArgs
{
    [Help("training problems to sample pairs on (two base samples each; identical pairs are dropped)", Min = 1)]
    public int TrainProblems { get; init; } = 4096;
    [Help("held-out pairs: each of the 512 held-out problems this many times", Min = 1)]
    public int EvalRepeats { get; init; } = 4;
    [Help("wall-clock seconds of reward-model training (unless --steps is given)", Min = 1)]
    public double Seconds { get; init; } = 40;
    [Help("AdamW learning rate of the reward model")]
    public double LearningRate { get; init; } = 1e-4;
    [Help("pairs per step", Min = 1)]
    public int BatchSize { get; init; } = 64;
    [Help("initialise the reward model from the base model's weights (else from scratch)")]
    public bool InitFromBase { get; init; } = true;
}
