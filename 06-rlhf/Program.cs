// Chapter 6 — RLHF end to end: the InstructGPT pipeline
// ======================================================
//
//     dotnet run -c Release --project 06-rlhf                    # RM once, then PPO at β = 0.2 and at β = 0.02
//     dotnet run -c Release --project 06-rlhf -- --small-beta 0  # only the moderate β
//     dotnet run -c Release --project 06-rlhf -- --adaptive-kl   # β steered towards a KL target (Ziegler et al.)
//     dotnet run -c Release --project 06-rlhf -- --help          # every option
//
// Reinforcement learning from human feedback, as Ziegler et al. ("Fine-Tuning Language Models from Human
// Preferences", 2019), Stiennon et al. ("Learning to Summarize from Human Feedback", 2020) and InstructGPT
// (Ouyang et al., "Training Language Models to Follow Instructions with Human Feedback", 2022) run it:
//
//   stage 1  SFT: supervised fine-tuning on demonstrations                         → π_SFT
//   stage 2  a reward model r_φ(x, y), trained on human comparisons of samples of π_SFT
//   stage 3  PPO: fine-tune a copy of π_SFT to maximise r_φ, minus a KL penalty that keeps it near π_SFT
//
// ─── The world: preferences with a hidden truth ───────────────────────────────────────────────────────
//
// The prompts are the book's `a+b=`. Nobody gives a reward rule here; a simulated labeller compares two
// answers and says which it prefers. What it really values — hidden from the learner, used only to judge
// the result — is the gold score
//
//     gold(y) = 1[y is the correct sum] + 0.3 · 1[y ends in "."]       (0 for a malformed y)
//
// and its labels are noisy as human labels are: P(y₁ ≻ y₂) = σ((gold(y₁) − gold(y₂)) / τ), τ = 0.1
// (Bradley–Terry). The trailing "." is a surface style the SFT model already writes half the time; the
// sum is what is hard. That asymmetry is the point of the chapter (see "over-optimisation" below).
//
// ─── Stage 1: SFT ─────────────────────────────────────────────────────────────────────────────────────
//
// The book's shared base model IS our SFT model: it was trained by supervised learning on demonstrations
// of the task (the correct sum, written plain or with a "." by a coin flip), exactly what InstructGPT's
// stage 1 does with labeller-written answers. Loading it is stage 1; every chapter starts from it.
//
// ─── Stage 2: the reward model ────────────────────────────────────────────────────────────────────────
//
// Sample two answers y₁, y₂ from π_SFT for each of a few thousand training prompts, let the labeller pick,
// and fit a scalar r_φ(x, y) so that the probability of the observed label is the Bradley–Terry one:
//
//     P_φ(y_c ≻ y_r | x) = σ(r_φ(x, y_c) − r_φ(x, y_r))
//     L_RM(φ) = −E_{(x, y_c, y_r)} [ log σ(r_φ(x, y_c) − r_φ(x, y_r)) ]      (InstructGPT eq. 1)
//
// r_φ is a copy of π_SFT with a scalar head, read at the completion's <eos>, and normalised to mean 0, std 1
// over samples of π_SFT (see TrainRewardModel). Chapter 5 studies this model at length; what matters here is
// what it learns: the "." almost perfectly, the arithmetic barely — a proxy that agrees with gold on the easy
// direction and not on the hard one.
//
// ─── Stage 3: PPO against the frozen reward model ─────────────────────────────────────────────────────
//
// The objective (Ziegler et al. §2; InstructGPT eq. 2 without its pretraining term, "PPO-ptx"):
//
//     maximise  J(θ) = E_{x ∼ D, y ∼ π_θ(·|x)} [ r_φ(x, y) − β log( π_θ(y|x) / π_ref(y|x) ) ]
//
// The second term is −β · KL(π_θ ‖ π_ref) in expectation. Four networks are held at once:
//
//   actor      π_θ    the policy being trained; starts as a copy of π_SFT.
//   critic     V_ψ    a value model for PPO's advantages (GAE); a separate network (chapter 2 explains why),
//                     initialised from the reward model as InstructGPT does — it already reads answers.
//   reward     r_φ    frozen after stage 2: the proxy for the labeller, queried on every sample.
//   reference  π_ref  a frozen copy of π_SFT, for the KL penalty.
//
// Why the reference is needed. r_φ is only an accurate proxy where it was trained: on answers that look
// like π_SFT's samples. A policy free to go anywhere finds answers r_φ scores highly for the wrong reasons
// (a "." after a wrong sum; malformed strings no labeller ever saw) — it optimises the proxy, not the
// labeller. The KL term charges β units of reward for every nat the policy moves away from π_SFT, so it
// gains only where r_φ's signal is worth the move. (It is also what keeps the text fluent and diverse;
// the optimum of J is π*(y|x) ∝ π_ref(y|x) exp(r(x, y)/β): the reference reweighted, not replaced.)
//
// One PPO iteration (RunPpo), in the order it runs:
//
//   1. rollout      one T = 1 completion per prompt from π_θ, 64 training prompts
//   2. score        without gradients: log π_old and log π_ref per token, r_φ(x, y), the critic's values V_old
//   3. rewards      r_t = −β (log π_old − log π_ref) per token, plus the score at the last token (TokenRewards)
//   4. advantages   GAE(γ = 1, λ = 0.95) with the critic's values (Gae), normalised over the batch
//                   (NormalizeAdvantages)
//   5. update       4 epochs × 2 minibatches: PPO's clipped surrogate for the actor (ClippedSurrogate,
//                   PolicyLoss), the clipped value loss for the critic (ValueLoss)
//   6. β            fixed by default; with --adaptive-kl, Ziegler et al.'s controller (AdaptiveBeta)
//   7. evaluate     every --eval-every iterations, on the 512 held-out prompts: proxy, gold and the exact KL
//                   to π_ref (Evaluate, RlhfMath.StateKl)
//
// No entropy bonus and no pretraining-mix term (InstructGPT's "PPO-ptx"): the KL penalty is the only
// regulariser, so what β does is all there is to see. The default run trains the RM once (stage 2 is the same
// for any β) and then runs stage 3 twice from the same SFT model and the same random numbers: at β = 0.2 (the
// headline: summary.json's numbers) and at β = 0.02 (--small-beta; 0 skips it). The picture needs both.
//
// ─── Over-optimisation ────────────────────────────────────────────────────────────────────────────────
//
// Gao, Schulman & Hilton ("Scaling Laws for Reward Model Overoptimization", 2022) plot, along RL training,
// the proxy RM's score and the gold score against the policy's distance from its start: the proxy rises
// without end while the gold score rises, peaks and falls — Goodhart's law, measured. curves.svg plots proxy
// and gold against KL(π_θ ‖ π_ref) for both β.
//
// What it finds (3 seeds, both engines): at β = 0.2 the gold score rises, through the "." (the one thing the RM
// got right); at β = 0.02 the policy travels much further, the proxy keeps rising, and gold peaks early and then
// falls back to the SFT model's or below as correctness collapses.
// Results, experiments and curves: docs/06-rlhf.md
using System.Diagnostics;
using MinRL;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Rlhf;


/// <summary>The chapter's hyper-parameters; every one is a command-line option (<c>--help</c> lists them).</summary>
public sealed record Args : LabArgs
{
    [Help("PPO iterations (rollout batch + update) per β (100: the default run with both β fits in two minutes)",
        Min = 1)]
    public override int Steps { get; init; } = 100;

    // ---- stage 2: the reward model
    [Help("training prompts to sample preference pairs on, two SFT samples each (identical pairs dropped)", Min = 1)]
    public int RmTrainProblems { get; init; } = 4096;

    [Help("reward-model training steps (Bradley–Terry loss), one minibatch of pairs each", Min = 0)]
    public int RmSteps { get; init; } = 300;

    [Help("preference pairs per reward-model step (tests/experiments/PreferenceCheck: 64)", Min = 1)]
    public int RmBatchSize { get; init; } = 64;

    [Help("reward-model AdamW learning rate (tests/experiments/PreferenceCheck: 1e-4)", Min = 0)]
    public double RmLearningRate { get; init; } = 1e-4;

    [Help("normalise the RM to mean 0, std 1 on SFT samples, folded into its head (Ziegler et al. 2019 §2)")]
    public bool NormalizeReward { get; init; } = true;

    // ---- stage 3: PPO
    [Help("the estimator of the per-token KL penalty in the reward: k1 (Ziegler et al. 2019, TRL's default), " +
          "k2 or k3 (Schulman 2020; TRL's kl_estimator)")]
    public KlEstimator KlEstimator { get; init; } = KlEstimator.K1;

    [Help("KL coefficient β of the headline run, in units of the normalised RM (chosen by the sweep in " +
          "docs/06-rlhf.md)", Min = 0)]
    public double Beta { get; init; } = 0.2;

    [Help("a second stage-3 run at this small β, to show over-optimisation (Gao et al. 2022); 0 = skip it", Min = 0)]
    public double SmallBeta { get; init; } = 0.02;

    [Help("adaptive KL controller: steer β towards --kl-target (Ziegler et al. 2019 §2); off = fixed β " +
          "(InstructGPT)")]
    public bool AdaptiveKl { get; init; }

    [Help("KL target in nats per completion for --adaptive-kl (Ziegler et al.: 6–10 for 24-token samples; " +
          "ours are ≤ 5 tokens)", Min = 0)]
    public double KlTarget { get; init; } = 1.0;

    [Help("horizon of the adaptive KL controller, in samples (Ziegler et al.: 10,000; β moves ≤ 0.13% per batch)",
        Min = 1)]
    public double KlHorizon { get; init; } = 10_000;

    [Help("rollouts (prompts, one completion each) per PPO iteration (TRL's batch size 64)", Min = 2)]
    public int BatchSize { get; init; } = 64;

    [Help("PPO epochs over each batch (TRL's num_ppo_epochs 4; CleanRL's update_epochs 4)", Min = 1)]
    public int PpoEpochs { get; init; } = 4;

    [Help("minibatches per epoch (CleanRL's num_minibatches; TRL's default is 1)", Min = 1)]
    public int Minibatches { get; init; } = 2;

    [Help("actor AdamW learning rate (below chapters 1–2's 3e-4 for one step per batch: 8 updates per batch " +
          "here; not tuned further)", Min = 0)]
    public double LearningRate { get; init; } = 1e-4;

    [Help("critic AdamW learning rate (between the actor's and Spinning Up's vf_lr 1e-3; not tuned here)", Min = 0)]
    public double CriticLearningRate { get; init; } = 3e-4;

    [Help("PPO clip ε for the ratio (PPO paper, TRL, CleanRL: 0.2)", Min = 0)]
    public double ClipCoef { get; init; } = 0.2;

    [Help("clip ε_v of the value loss around the old values (TRL's cliprange_value 0.2); 0 = unclipped MSE", Min = 0)]
    public double ValueClip { get; init; } = 0.2;

    [Help("discount γ: 1, one score at the end of a ≤ 5-token answer (InstructGPT, TRL)", Min = 0, Max = 1)]
    public double Gamma { get; init; } = 1.0;

    [Help("GAE λ (TRL's lam 0.95; chapter 2 measured λ = 0.95 vs 1)", Min = 0, Max = 1)]
    public double GaeLambda { get; init; } = 0.95;

    [Help("subtracted from the RM score of an answer with no <eos>, in normalised RM units " +
          "(TRL's missing_eos_penalty)", Min = 0)]
    public double MissingEosPenalty { get; init; } = 1.0;

    [Help("clip each model's gradient to this global L2 norm, 0 = off (TRL's and the HF Trainer's max_grad_norm 1.0)",
        Min = 0)]
    public double MaxGradNorm { get; init; } = 1.0;

    [Help("evaluate proxy, gold and KL on the held-out prompts every this many PPO iterations " +
          "(the over-optimisation curve)", Min = 1)]
    public int EvalEvery { get; init; } = 5;
}

public static class Program
{
    static int Main(string[] args) =>
        Lab.Run<Args>(args, "06-rlhf",
            "RLHF end to end: SFT model → Bradley–Terry reward model → PPO with a per-token KL penalty", Train);

    const int P = ArithmeticTask.PromptLength;          // 7: the first completion token is at position P
    const int M = ArithmeticTask.MaxCompletionLength;   // 5: completion tokens at most

    /// <summary>The whole run: the three stages, the plot, the summary. Returns the exit code.</summary>
    public static int Train(Args args)
    {
        var result = Run(args);
        Lab.Finish(result.Summary);
        return 0;
    }

    /// <summary>One held-out measurement of a policy: T = 1 samples on the 512 held-out prompts.</summary>
    /// <param name="Step">PPO iteration (0 = before training).</param>
    /// <param name="Kl">KL(π_θ ‖ π_ref), nats per completion: the exact per-state KL summed over each sample's
    /// tokens, averaged over prompts.</param>
    /// <param name="KlK3">The same KL estimated with k3 on the sampled tokens only (the book's common estimator;
    /// noisier).</param>
    /// <param name="Proxy">Mean reward-model score (normalised, missing-EOS penalty included): what PPO
    /// maximises.</param>
    /// <param name="Gold">Mean gold score: what the labeller really values.</param>
    public sealed record Eval(int Step, double Kl, double KlK3, double Proxy, double Gold, double Accuracy,
        double Period, double WellFormed);

    /// <summary>What stage 2 produced and measured.</summary>
    public sealed record RewardModelReport(int TrainPairs, int HeldOutPairs, double HeldOutAccuracy,
        double NoiseCeiling, double StyleOnlyAccuracy, double CorrectnessOnlyAccuracy, double Mean, double Std,
        double FinalLoss, int Samples);

    /// <summary>What one stage-3 run measured: its per-iteration log and the held-out curve.</summary>
    public sealed record StageResult(double Beta, double FinalBeta, MetricsLog Log, IReadOnlyList<Eval> Curve,
        long Samples)
    {
        public Eval Base => Curve[0];
        public Eval Final => Curve[^1];
    }

    /// <summary>What a run measured (the tests read it).</summary>
    public sealed record RunResult(RunSummary Summary, RewardModelReport RewardModel, MetricsLog RmLog,
        StageResult Main, StageResult? Small);

    /// <summary>Runs the three stages (stage 3 once per β) and returns what they measured.</summary>
    public static RunResult Run(Args args)
    {
        int steps = args.StepsOr(quickSteps: 20);
        var rmArgs = args.Quick && !args.IsGiven(nameof(args.RmSteps)) ? args with { RmSteps = 60 } : args;
        manual_seed(args.Seed);
        var task = new ArithmeticTask();                                       // the book's split: 9,488 / 512
        var world = new PreferenceWorld();                                     // the labeller, its hidden gold

        // ================================================================ stage 1: SFT
        // The shared base model was trained by supervised fine-tuning on demonstrations: it is π_SFT.
        var baseConfig = new BaseModelConfig();
        var sft = BaseModel.Load(baseConfig);                                  // π_SFT, frozen from here on
        foreach (var p in sft.parameters()) p.requires_grad_(false);

        // ================================================================ stage 2: the reward model
        using var rmLog = new MetricsLog(Path.Combine(args.Out, "rm_metrics.csv"));
        var (rm, rmReport) = TrainRewardModel(rmArgs, sft, task, world, rmLog);
        Lab.Print($"reward model: {rmReport.TrainPairs} training pairs, " +
                  $"held-out accuracy {Lab.Fmt(rmReport.HeldOutAccuracy)} " +
                  $"(noise ceiling {Lab.Fmt(rmReport.NoiseCeiling)}; " +
                  $"style-only pairs {Lab.Fmt(rmReport.StyleOnlyAccuracy)}, " +
                  $"correctness-only pairs {Lab.Fmt(rmReport.CorrectnessOnlyAccuracy)}); " +
                  $"normalised by μ {Lab.Fmt(rmReport.Mean)}, σ {Lab.Fmt(rmReport.Std)}");

        // ================================================================ stage 3: PPO, once per β
        var main = RunPpo(args, args.Beta, steps, sft, rm, task, world, Path.Combine(args.Out, "metrics.csv"),
            "β " + Lab.Fmt(args.Beta));
        StageResult? small = args.SmallBeta > 0
            ? RunPpo(args, args.SmallBeta, steps, sft, rm, task, world,
                Path.Combine(args.Out, "metrics_small_beta.csv"), "β " + Lab.Fmt(args.SmallBeta))
            : null;

        // ================================================================ report
        var stages = small is null ? new[] { main } : new[] { main, small };
        Lab.Table("held-out T = 1 samples (512 prompts): before → after PPO",
            ["β", "KL exact", "KL k3", "proxy", "gold", "correct", "'.' share", "well-formed"],
            stages.SelectMany(s => new[]
            {
                new object?[] { $"{Lab.Fmt(s.Beta)}: SFT", s.Base.Kl, s.Base.KlK3, s.Base.Proxy, s.Base.Gold,
                    s.Base.Accuracy, s.Base.Period, s.Base.WellFormed },
                new object?[] { $"{Lab.Fmt(s.Beta)}: RLHF", s.Final.Kl, s.Final.KlK3, s.Final.Proxy, s.Final.Gold,
                    s.Final.Accuracy, s.Final.Period, s.Final.WellFormed },
            }));
        string CsvRow(double beta, Eval e) =>
            FormattableString.Invariant($"{beta:R},{e.Step},{e.Kl:R},{e.KlK3:R},{e.Proxy:R},{e.Gold:R},") +
            FormattableString.Invariant($"{e.Accuracy:R},{e.Period:R},{e.WellFormed:R}");
        File.WriteAllLines(Path.Combine(args.Out, "overoptimisation.csv"),
            stages.SelectMany(s => s.Curve.Select(e => CsvRow(s.Beta, e)))
            .Prepend("beta,step,kl,kl_k3,proxy,gold,accuracy,period,well_formed"));
        WritePlot(args, main, small);

        long rmParams = rm.NumParameters();
        long stage3Params = sft.NumParameters() + rmParams;                   // actor (π_SFT) + critic (the RM's)
        var summary = new RunSummary
        {
            Metric = "held-out gold score (sampled, T = 1)",
            Base = main.Base.Gold,
            Final = main.Final.Gold,
            Kl = main.Final.KlK3,
            Extra =
            {
                ["beta"] = main.Beta,
                ["kl_penalty_estimator"] = args.KlEstimator.ToString().ToLowerInvariant(),
                ["beta_final"] = main.FinalBeta,
                ["adaptive_kl"] = args.AdaptiveKl,
                ["steps"] = steps,
                ["models_held"] = 4,
                ["trainable_params"] = stage3Params + rmParams,
                ["trainable_params_stage3"] = stage3Params,
                ["samples_generated"] = rmReport.Samples + main.Samples,
                ["samples_generated_rm_pairs"] = rmReport.Samples,
                ["kl_estimator"] = "k3 summed over each completion's tokens, one T = 1 sample per held-out prompt " +
                                   "(the reward uses k1)",
                ["kl_exact"] = main.Final.Kl,                                  // exact per-state KL: the plot's x
                ["proxy_base"] = main.Base.Proxy,
                ["proxy_final"] = main.Final.Proxy,
                ["gold_base"] = main.Base.Gold,
                ["gold_final"] = main.Final.Gold,
                ["correct_base"] = main.Base.Accuracy,
                ["correct_final"] = main.Final.Accuracy,
                ["period_share_base"] = main.Base.Period,
                ["period_share_final"] = main.Final.Period,
                ["well_formed_final"] = main.Final.WellFormed,
                ["rm_heldout_accuracy"] = rmReport.HeldOutAccuracy,
                ["rm_noise_ceiling"] = rmReport.NoiseCeiling,
                ["rm_style_only_accuracy"] = rmReport.StyleOnlyAccuracy,
                ["rm_correctness_only_accuracy"] = rmReport.CorrectnessOnlyAccuracy,
                ["mean_ppo_iteration_ms"] = main.Log.Column("step_ms").Average(),
            },
        };
        if (small is not null)
        {
            summary.Extra["small_beta"] = small.Beta;
            summary.Extra["small_beta_kl_final"] = small.Final.KlK3;
            summary.Extra["small_beta_kl_exact_final"] = small.Final.Kl;
            summary.Extra["small_beta_proxy_final"] = small.Final.Proxy;
            summary.Extra["small_beta_gold_final"] = small.Final.Gold;
            summary.Extra["small_beta_gold_peak"] = small.Curve.Max(e => e.Gold);
            summary.Extra["small_beta_correct_final"] = small.Final.Accuracy;
            summary.Extra["small_beta_period_share_final"] = small.Final.Period;
            summary.Extra["small_beta_samples_generated"] = small.Samples;
        }
        return new RunResult(summary, rmReport, rmLog, main, small);
    }

    // ==================================================================== stage 2: the reward model

    /// <summary>
    /// Samples pairs from π_SFT, labels them with the simulated labeller, trains r_φ with the Bradley–Terry loss,
    /// measures it on held-out pairs and normalises it on SFT samples. Returns the frozen, normalised reward
    /// model.
    /// </summary>
    static (TinyGpt rm, RewardModelReport report) TrainRewardModel(Args args, TinyGpt sft, ArithmeticTask task,
        PreferenceWorld world, MetricsLog log)
    {
        var clock = Stopwatch.StartNew();
        var sampler = new Generator((ulong)args.Seed + 1000);                 // the SFT samples the labeller compares
        var dataRng = new SplitMix64(args.Seed + 2000);
        (IReadOnlyList<PreferencePair> pairs, Tensor firstCompletions) MakePairs(IReadOnlyList<Problem> problems,
            long labelSeed)
        {
            var prompts = ArithmeticTask.EncodePrompts(problems);                                 // (N, P)
            var y1 = Rollouts.Generate(sft, prompts, M, generator: sampler).Completions;         // (N, M)
            var y2 = Rollouts.Generate(sft, prompts, M, generator: sampler).Completions;         // (N, M)
            return (world.MakePairs(problems, y1, y2, labelSeed), y1);
        }
        var trainProblems = ArithmeticTask.Sample(task.Train, args.RmTrainProblems, dataRng);
        var (trainPairs, sftSamples) = MakePairs(trainProblems, args.Seed + 3000);
        var (heldOutPairs, _) = MakePairs(task.Eval, args.Seed + 4000);      // held-out prompts: the RM's test set

        // r_φ: π_SFT's weights plus a scalar head Linear(C, 1) (its LM head comes along unused), read at the
        // completion's <eos>, the last position, where the model has seen the whole answer (RewardAtEnd).
        // InstructGPT also starts its RM from the SFT model.
        var rm = new TinyGpt(sft.Config with { ScalarHead = true });
        rm.load_state_dict(sft.state_dict(), strict: false);                  // everything but scalar_head.*
        var optimizer = optim.AdamW(rm.parameters(), lr: args.RmLearningRate);
        var (prompts, chosen, rejected) = PreferenceWorld.Encode(trainPairs); // (N, P), (N, M), (N, M)
        var chosenSeq = cat([prompts, chosen], 1);                             // (N, L)
        var rejectedSeq = cat([prompts, rejected], 1);                         // (N, L)
        var chosenLen = Rollouts.CompletionMask(chosen).lengths;               // (N)
        var rejectedLen = Rollouts.CompletionMask(rejected).lengths;           // (N)

        int B = Math.Min(args.RmBatchSize, trainPairs.Count);
        var epochs = new Epochs(trainPairs.Count, dataRng);                    // shuffled passes, no pair skipped
        double loss = double.NaN;
        rm.train();
        for (int step = 1; step <= args.RmSteps; step++)
        {
            using var scope = NewDisposeScope();   // TorchSharp: this step's tensors are freed at its end
            var idx = epochs.Next(B);                                          // (B) row indices
            // Chosen and rejected in one forward pass: (2B, L) → (2B) scores.
            var both = RewardAtEnd(rm, cat([chosenSeq.index_select(0, idx), rejectedSeq.index_select(0, idx)], 0),
                                       cat([chosenLen.index_select(0, idx), rejectedLen.index_select(0, idx)], 0));
            var rmLoss = RlhfMath.BradleyTerryLoss(both.narrow(0, 0, B), both.narrow(0, B, B));
            Lab.CheckFinite(rmLoss, "reward-model loss", step, "try a smaller --rm-learning-rate");
            optimizer.zero_grad();
            rmLoss.backward();
            optimizer.step();
            loss = rmLoss.ToDouble();
            log.Add(step, ("rm_loss", loss),
                ("rm_batch_accuracy", (both.narrow(0, 0, B) > both.narrow(0, B, B)).to_type(ScalarType.Float64)
                    .mean().ToDouble()));                                      // a tie counts wrong, as in TRL
        }
        rm.eval();
        foreach (var p in rm.parameters()) p.requires_grad_(false);

        // Held-out accuracy against the noisy labels, overall and by what the two answers differ in. A tie of the
        // two scores counts as wrong, as in TRL's RewardTrainer (chapter 5 counts it half).
        using var _ = no_grad();
        var (hp, hc, hr) = PreferenceWorld.Encode(heldOutPairs);
        var rc = RewardAtEnd(rm, cat([hp, hc], 1), Rollouts.CompletionMask(hc).lengths)
            .cpu().data<float>().ToArray();
        var rr = RewardAtEnd(rm, cat([hp, hr], 1), Rollouts.CompletionMask(hr).lengths)
            .cpu().data<float>().ToArray();
        double Accuracy(Func<PreferencePair, bool> which)
        {
            var idx = Enumerable.Range(0, heldOutPairs.Count).Where(i => which(heldOutPairs[i])).ToArray();
            return idx.Length == 0 ? double.NaN : idx.Count(i => rc[i] > rr[i]) / (double)idx.Length;
        }

        // Normalise (Ziegler et al. §2). A Bradley–Terry score is only defined up to a constant, and its scale
        // depends on the training run; so μ, σ of r_φ over SFT samples (one per training prompt) are folded into
        // the head, a gain and a bias:
        //   r' = (w·h + b − μ)/σ = (w/σ)·h + (b − μ)/σ.
        // β then means the same thing whatever the RM's scale: rewards are in units of the RM's spread over π_SFT.
        var sftSeq = cat([ArithmeticTask.EncodePrompts(trainProblems), sftSamples], 1);
        var scores = RewardAtEnd(rm, sftSeq, Rollouts.CompletionMask(sftSamples).lengths);   // (N)
        double mean = scores.mean().ToDouble(), std = scores.std().ToDouble();
        if (args.NormalizeReward)
        {
            var head = rm.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            head["scalar_head.weight"].div_(std);
            head["scalar_head.bias"].sub_(mean).div_(std);
        }
        var report = new RewardModelReport(trainPairs.Count, heldOutPairs.Count, Accuracy(_ => true),
            world.NoiseCeiling(heldOutPairs), Accuracy(p => p.Kind == PairKind.StyleOnly),
            Accuracy(p => p.Kind == PairKind.CorrectnessOnly), mean, std, loss, Samples: 2 * trainProblems.Count);
        Lab.Print($"reward model trained in {Lab.Fmt(clock.Elapsed.TotalSeconds)} s " +
                  $"({args.RmSteps} steps, final loss {Lab.Fmt(loss)})");
        return (rm, report);
    }

    /// <summary>
    /// r(x, y): a model's scalar head read at each completion's last real token — its &lt;eos&gt;, or the 5th token
    /// when it has none. sequences int64 (N, L), lengths int64 (N) (tokens through &lt;eos&gt;) → (N).
    /// </summary>
    public static Tensor RewardAtEnd(TinyGpt model, Tensor sequences, Tensor lengths)
    {
        var r = model.Scalar(model.Hidden(sequences));                         // (N, L): a score at every position
        return r.gather(1, (lengths + (P - 1)).unsqueeze(1)).squeeze(1);       // (N): at position P − 1 + length
    }

    // ==================================================================== stage 3: PPO against the reward model

    /// <summary>
    /// One stage-3 run at KL coefficient <paramref name="beta"/>: a fresh actor (π_SFT's copy) and critic (the
    /// RM's copy), <paramref name="steps"/> PPO iterations, held-out evaluations along the way. Each iteration
    /// samples a batch from the actor, scores it (reference, reward model, critic), builds the per-token
    /// KL-penalised rewards and GAE advantages, then runs several epochs of clipped-surrogate updates on
    /// minibatches.
    /// </summary>
    static StageResult RunPpo(Args args, double beta, int steps, TinyGpt sft, TinyGpt rm, ArithmeticTask task,
        PreferenceWorld world, string csv, string label)
    {
        manual_seed(args.Seed);                                                // the same random state for each β
        double initialBeta = beta;
        var reference = sft;                                                   // π_ref: π_SFT itself, frozen
        var actor = new TinyGpt(sft.Config);                                   // π_θ ← π_SFT
        actor.load_state_dict(sft.state_dict());
        foreach (var p in actor.parameters()) p.requires_grad_(true);
        // The critic starts from the reward model (InstructGPT's appendix on RLHF training: the value function is
        // initialised from the RM), a separate network as in chapter 2. An RM score of a half-written answer is
        // not the value of finishing it, so its explained variance starts negative and climbs as it learns.
        var critic = new TinyGpt(rm.Config);                                   // V_ψ ← r_φ (normalised)
        critic.load_state_dict(rm.state_dict());
        foreach (var p in critic.parameters()) p.requires_grad_(true);
        var actorOptimizer = optim.AdamW(actor.parameters(), lr: args.LearningRate);
        var criticOptimizer = optim.AdamW(critic.parameters(), lr: args.CriticLearningRate);

        var problemsRng = new SplitMix64(args.Seed + 5000);                    // which training prompts each iteration
        var minibatchRng = new SplitMix64(args.Seed + 6000);                   // minibatch order
        var rolloutGen = new Generator((ulong)args.Seed + 7000);               // the actor's samples
        var curve = new List<Eval> { Evaluate(actor, reference, rm, world, task.Eval, 0, args) };
        Lab.Print($"stage 3 ({label}): SFT policy on held-out prompts: KL {Lab.Fmt(curve[0].Kl)}, " +
                  $"proxy {Lab.Fmt(curve[0].Proxy)}, gold {Lab.Fmt(curve[0].Gold)}, " +
                  $"correct {Lab.Fmt(curve[0].Accuracy)}, '.' share {Lab.Fmt(curve[0].Period)}");

        var log = new MetricsLog(csv);
        using (var progress = Lab.Progress(steps, $"PPO, {label}", "score", "kl", "gold", "policy/clipfrac_avg"))
        {
            for (int step = 1; step <= steps; step++)
            {
                using var scope = NewDisposeScope();   // TorchSharp: this step's tensors are freed at its end
                var clock = Stopwatch.StartNew();
                var problems = ArithmeticTask.Sample(task.Train, args.BatchSize, problemsRng);

                // ---- 1. rollout: one completion per prompt from the current policy, T = 1.
                var rollout = Rollouts.Generate(actor, ArithmeticTask.EncodePrompts(problems), M,
                    generator: rolloutGen);
                var sequences = rollout.Sequences;                                 // (N, L) int64
                var mask = rollout.CompletionMask;                                 // (N, M): 1 through the <eos>
                var lengths = rollout.Lengths;                                     // (N)
                var hasEos = RlhfMath.EndsWithEos(rollout.Completions, lengths);   // (N) bool
                int N = problems.Count;

                // ---- 2. score the batch with the four models, no gradients (the quantities PPO holds fixed),
                // then 3. the per-token rewards (TokenRewards) and 4. the advantages (Gae, NormalizeAdvantages).
                Tensor oldLogp, refLogp, scores, oldValues, rewards, klPerToken, advantages, returns;
                using (no_grad())
                {
                    actor.eval(); critic.eval();
                    oldLogp = Rollouts.TokenLogProbs(actor, sequences, P);         // (N, M): log π_θ_old(a_t|s_t)
                    refLogp = Rollouts.TokenLogProbs(reference, sequences, P);     // (N, M): log π_ref(a_t|s_t)
                    scores = RewardAtEnd(rm, sequences, lengths);                  // (N): r_φ(x, y), normalised
                    // V(s_t) is read where a_t is predicted: position P − 1 + t.
                    oldValues = critic.Scalar(critic.Hidden(sequences)).narrow(1, P - 1, M);   // (N, M): V(s_t)
                    klPerToken = Kl.Estimate(args.KlEstimator, oldLogp, refLogp) * mask;   // (N, M): k1 by default
                    rewards = RlhfMath.TokenRewards(scores, klPerToken, mask, lengths, hasEos, beta,
                        args.MissingEosPenalty);                                   // (N, M)
                    (advantages, returns) = RlhfMath.Gae(rewards, oldValues, mask, args.Gamma,
                        args.GaeLambda);                                           // (N, M) each
                    advantages = RlhfMath.NormalizeAdvantages(advantages, mask);   // (N, M)
                }

                // ---- 5. PPO epochs: minibatches of the rollouts, the clipped surrogate for the actor
                // (RlhfMath.ClippedSurrogate), the clipped value loss for the critic (RlhfMath.ValueLoss).
                actor.train(); critic.train();
                double pgLossSum = 0, vLossSum = 0, clipFracSum = 0, approxKlSum = 0, gradSum = 0;
                int updates = 0;
                for (int epoch = 0; epoch < args.PpoEpochs; epoch++)
                {
                    foreach (var rows in Sampling.Minibatches(N, args.Minibatches, minibatchRng))
                    {
                        using var minibatchScope = NewDisposeScope();   // TorchSharp: one minibatch's tensors
                        var idx = tensor(rows, [rows.Length]);
                        var seq = sequences.index_select(0, idx);                  // (mb, L)
                        var m = mask.index_select(0, idx);                         // (mb, M)
                        var adv = advantages.index_select(0, idx);                 // (mb, M)

                        var newLogp = Rollouts.TokenLogProbs(actor, seq, P);       // (mb, M), differentiable
                        var logRatio = newLogp - oldLogp.index_select(0, idx);     // (mb, M): log ρ_t
                        var pgLoss = RlhfMath.PolicyLoss(logRatio, adv, m, args.ClipCoef);
                        Lab.CheckFinite(pgLoss, "policy loss", step);
                        actorOptimizer.zero_grad();
                        pgLoss.backward();
                        gradSum += Grad.ClipNorm(actor.parameters(), args.MaxGradNorm);
                        actorOptimizer.step();

                        var values = critic.Scalar(critic.Hidden(seq)).narrow(1, P - 1, M);   // (mb, M), differentiable
                        var vLoss = RlhfMath.ValueLoss(values, oldValues.index_select(0, idx),
                            returns.index_select(0, idx), m, args.ValueClip);
                        Lab.CheckFinite(vLoss, "value loss", step, "try a smaller --critic-learning-rate");
                        criticOptimizer.zero_grad();
                        vLoss.backward();
                        Grad.ClipNorm(critic.parameters(), args.MaxGradNorm);
                        criticOptimizer.step();

                        using (no_grad())
                        {
                            var lr = logRatio.detach();
                            pgLossSum += pgLoss.ToDouble();
                            vLossSum += vLoss.ToDouble();
                            clipFracSum += RlhfMath.ClipFraction(lr, adv, m, args.ClipCoef);   // TRL's clip region
                            approxKlSum += Kl.OldToNew(lr, m);                     // (ρ − 1) − log ρ: KL(π_old ‖ π_θ)
                        }
                        updates++;
                    }
                }

                // ---- log the batch as sampled (before this iteration's updates); 6. β.
                var measured = ArithmeticTask.Measure(problems, rollout.Completions);
                // Σ_t log π/π_ref, mean: the k1 value whatever the penalty uses (the adaptive β reads it)
                double klK1 = Rollouts.MaskedSum(Kl.K1(oldLogp, refLogp), mask, 1).mean().ToDouble();
                var row = new List<(string Name, double Value)>
                {
                    ("score", scores.mean().ToDouble()),                           // r_φ of the samples: the proxy
                    ("kl_k1", klK1),
                    ("kl", Rollouts.MaskedSum(Kl.K3(oldLogp, refLogp), mask, 1).mean().ToDouble()),
                    ("return", rewards.sum(1).mean().ToDouble()),                  // score − β·k1 summed: J's integrand
                    ("train_gold", world.MeanGold(problems, rollout.Completions)),
                    ("train_accuracy", measured.Accuracy),
                    ("train_period", measured.Period),
                    ("missing_eos", 1 - hasEos.to_type(ScalarType.Float64).mean().ToDouble()),
                    ("policy_loss", pgLossSum / updates),
                    ("value_loss", vLossSum / updates),
                    ("policy/clipfrac_avg", clipFracSum / updates),                // TRL's PPO name: see ClipFraction
                    ("approx_kl", approxKlSum / updates),                          // CleanRL's: see Kl.OldToNew
                    ("grad_norm", gradSum / updates),
                    ("explained_var", RlhfMath.ExplainedVariance(oldValues, returns, mask)),
                    ("length", lengths.to_type(ScalarType.Float64).mean().ToDouble()),
                };
                if (args.AdaptiveKl)                                               // β ← β(1 + e · n_steps / horizon)
                    beta = RlhfMath.AdaptiveBeta(beta, klK1, args.KlTarget, args.BatchSize, args.KlHorizon);
                row.Add(("beta", beta));

                // ---- 7. the held-out measurement: proxy, gold and KL to π_ref on the same 512 prompts.
                if (step % args.EvalEvery == 0 || step == steps)
                {
                    var e = Evaluate(actor, reference, rm, world, task.Eval, step, args);
                    curve.Add(e);
                    row.AddRange([("eval_kl", e.Kl), ("eval_proxy", e.Proxy), ("gold", e.Gold),
                        ("eval_accuracy", e.Accuracy), ("eval_period", e.Period)]);
                }
                row.Add(("step_ms", clock.Elapsed.TotalMilliseconds));
                log.Add(step, [.. row]);
                progress.Update(step, [.. row]);
            }
        }
        log.Dispose();
        var last = curve[^1];
        Lab.Print($"stage 3 ({label}): after {steps} iterations: KL {Lab.Fmt(last.Kl)}, " +
                  $"proxy {Lab.Fmt(last.Proxy)}, gold {Lab.Fmt(last.Gold)}, correct {Lab.Fmt(last.Accuracy)}, " +
                  $"'.' share {Lab.Fmt(last.Period)}, well-formed {Lab.Fmt(last.WellFormed)}");
        return new StageResult(initialBeta, beta, log, curve, (long)steps * args.BatchSize);
    }

    /// <summary>
    /// The held-out measurement behind the over-optimisation picture: one T = 1 sample per held-out prompt (the
    /// same random numbers every time, so two checkpoints differ by their policies only), scored by the reward
    /// model (proxy), the hidden gold scorer, and the KL to the reference.
    /// </summary>
    /// <remarks>The KL on the picture's x-axis is the exact per-state KL summed along each sample
    /// (<see cref="RlhfMath.StateKl"/>): unbiased like k1 and k3 and far less noisy — k3's eʳ term explodes on the
    /// rare token the policy samples that the reference likes much more than the policy does, so a few samples
    /// carry most of k3 and it swings either way. summary.json's "kl" is the k3 estimate on the same samples (the
    /// estimator the other chapters report), "kl_exact" the exact one.</remarks>
    static Eval Evaluate(TinyGpt actor, TinyGpt reference, TinyGpt rm, PreferenceWorld world,
        IReadOnlyList<Problem> problems, int step, Args args)
    {
        using var scope = NewDisposeScope();   // TorchSharp: frees the rollouts, logits and scores on return
        var rollout = Rollouts.Generate(actor, ArithmeticTask.EncodePrompts(problems), M,
            generator: new Generator(BaseModel.EvalSeed));
        using var _ = no_grad();
        bool wasTraining = actor.training;
        actor.eval();
        var logits = Rollouts.Score(actor, rollout.Sequences, P).Logits;        // (N, M, V)
        var refLogits = Rollouts.Score(reference, rollout.Sequences, P).Logits; // (N, M, V)
        if (wasTraining) actor.train();
        double kl = Rollouts.MaskedSum(RlhfMath.StateKl(logits, refLogits), rollout.CompletionMask, 1)
            .mean().ToDouble();
        var logp = logits.log_softmax(-1).gather(2, rollout.Completions.unsqueeze(-1)).squeeze(-1);         // (N, M)
        var refLogp = refLogits.log_softmax(-1).gather(2, rollout.Completions.unsqueeze(-1)).squeeze(-1);   // (N, M)
        double klK3 = Rollouts.MaskedSum(Kl.K3(logp, refLogp), rollout.CompletionMask, 1).mean().ToDouble();
        var hasEos = RlhfMath.EndsWithEos(rollout.Completions, rollout.Lengths);
        var score = RewardAtEnd(rm, rollout.Sequences, rollout.Lengths)
                    - args.MissingEosPenalty * (~hasEos).to_type(ScalarType.Float32);
        var measured = ArithmeticTask.Measure(problems, rollout.Completions);
        return new Eval(step, kl, klK3, score.mean().ToDouble(), world.MeanGold(problems, rollout.Completions),
            measured.Accuracy, measured.Period, measured.WellFormed);
    }

    /// <summary>curves.svg: proxy and gold against KL for each β (Gao et al.'s picture), then the training
    /// curves.</summary>
    static void WritePlot(Args args, StageResult main, StageResult? small)
    {
        var stages = small is null ? new[] { main } : new[] { main, small };
        Series Against(StageResult s, Func<Eval, double> y, string what) =>
            new($"{what}, β {Lab.Fmt(s.Beta)}", s.Curve.Select(e => e.Kl).ToArray(), s.Curve.Select(y).ToArray())
            {
                XLabel = "KL(π_θ ‖ π_ref), nats", Points = true,
            };
        var plot = new SvgPlot($"06-rlhf, seed {args.Seed}: the reward model's score (proxy) and the hidden gold " +
                               "score against KL to the reference");
        plot.Add("proxy: reward-model score vs KL", stages.Select(s => Against(s, e => e.Proxy, "proxy")).ToArray());
        plot.Add("gold score vs KL", stages.Select(s => Against(s, e => e.Gold, "gold")).ToArray())
            .HLine(main.Base.Gold, "SFT");
        plot.Add("correct share vs KL", stages.Select(s => Against(s, e => e.Accuracy, "correct")).ToArray());
        Series AlongSteps(StageResult s, Func<Eval, double> y) =>
            new($"β {Lab.Fmt(s.Beta)}", s.Curve.Select(e => (double)e.Step).ToArray(), s.Curve.Select(y).ToArray())
            {
                XLabel = "PPO iteration",
            };
        plot.Add("held-out KL to the reference (nats)", stages.Select(s => AlongSteps(s, e => e.Kl)).ToArray());
        plot.Add("held-out gold score", stages.Select(s => AlongSteps(s, e => e.Gold)).ToArray())
            .HLine(main.Base.Gold, "SFT");
        plot.Add("held-out '.' share", stages.Select(s => AlongSteps(s, e => e.Period)).ToArray());
        foreach (var metric in new[] { "score", "explained_var", "policy/clipfrac_avg" })
            plot.Add($"{metric} (training batches)",
                stages.Select(s => s.Log.Series(metric, label: $"β {Lab.Fmt(s.Beta)}")).ToArray());
        plot.Write(Path.Combine(args.Out, "curves.svg"));
    }
}

/// <summary>
/// The pure functions of RLHF — the reward model's loss, the KL-penalised per-token rewards, GAE, the PPO losses
/// and the adaptive KL controller — pinned by tests to known values.
/// </summary>
public static class RlhfMath
{
    /// <summary>
    /// Bradley–Terry loss of a reward model: −mean log σ(r_c − r_r), chosen scores (N) against rejected scores (N)
    /// (InstructGPT eq. 1; chapter 5 derives it). logsigmoid, not log(sigmoid(·)): for a large negative margin σ
    /// underflows to 0 and its log to −∞.
    /// </summary>
    public static Tensor BradleyTerryLoss(Tensor chosen, Tensor rejected) => -F.logsigmoid(chosen - rejected).mean();

    /// <summary>True for each completion whose last real token is &lt;eos&gt;: completions int64 (N, M), lengths (N)
    /// → bool (N).</summary>
    public static Tensor EndsWithEos(Tensor completions, Tensor lengths) =>
        completions.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1).eq(CharTokenizer.Instance.EosId);

    // The reward per token. As an RL problem, each token a_t of y is an action; the penalty of J is spread over the
    // tokens with the per-token log-ratio (the k1 estimator of the KL, unbiased for y ∼ π_θ), and the RM's score
    // is paid at the last token (Ziegler et al.; TRL's PPOTrainer):
    //
    //     r_t = −β ( log π_θ(a_t | s_t) − log π_ref(a_t | s_t) )  +  1[t = T−1] · score(x, y)
    //
    //     score(x, y) = r_φ(x, y)                            when y ends with <eos>
    //                 = r_φ(x, y) − missing_eos_penalty      when it ran out of tokens first
    //
    // Σ_t r_t = score − β log(π_θ(y)/π_ref(y)): summed over the episode it is J's integrand, so with γ = 1 (no
    // discount: every sequence is at most 5 tokens; InstructGPT and TRL use γ = 1) maximising the return
    // maximises J. The log-probs in r_t are those of the policy that sampled y (frozen for the update): the
    // penalty is a reward, not a loss term. β is in units of the normalised RM (std 1 over SFT samples).
    //
    // The missing-EOS penalty (TRL's missing_eos_penalty; 1 normalised RM unit by default) is subtracted from the
    // score of an answer that never wrote <eos> in its 5 tokens: the RM has seen few unfinished answers and
    // should not be trusted to score them. The RM still reads such an answer at its last token.

    // The penalty's estimator (--kl-estimator). In the REWARD, unlike in a loss (chapter 8's PerTokenLoss), only the
    // penalty's VALUE matters: the reward is a constant to the policy gradient. All three estimate
    // KL(π_θ ‖ π_ref) per token on tokens π_θ sampled, with x = log π_ref − log π_θ: k1 = −x is unbiased but
    // negative wherever π_θ finds a token less likely than π_ref (a BONUS for moving away there), k2 = ½x² and
    // k3 = eˣ − x − 1 are never negative (k3 unbiased, k2 biased by O(x³)). Ziegler et al. and TRL use k1; TRL's
    // kl_estimator offers k3 too. docs/06-rlhf.md measures what each does to over-optimisation. (The estimators
    // are MinRL's Kl.K1, K2, K3; Kl.Estimate picks one.)

    /// <summary>
    /// The per-token rewards of RLHF: r_t = −β·kl_t on every real token, plus the score at the last one, the score
    /// lowered by <paramref name="missingEosPenalty"/> where the completion has no &lt;eos&gt;:
    /// <code>
    ///   r_t = −β kl_t + 1[t = length − 1] · (score − missingEosPenalty · 1[no &lt;eos&gt;])
    /// </code>
    /// scores (N), klPerToken (N, M) (log π_θ − log π_ref, the k1 estimator), mask (N, M), lengths int64 (N),
    /// hasEos bool (N) → (N, M), 0 after each completion's end.
    /// </summary>
    public static Tensor TokenRewards(Tensor scores, Tensor klPerToken, Tensor mask, Tensor lengths, Tensor hasEos,
        double beta, double missingEosPenalty)
    {
        long T = mask.shape[1];
        var penalised = scores - missingEosPenalty * (~hasEos).to_type(scores.dtype);                // (N)
        var isLast = arange(T, dtype: ScalarType.Int64).unsqueeze(0).eq((lengths - 1).unsqueeze(1));  // (N, T)
        return (-beta * klPerToken + isLast.to_type(scores.dtype) * penalised.unsqueeze(1)) * mask;   // (N, T)
    }

    /// <summary>
    /// GAE(γ, λ) (Schulman et al. 2016) over variable-length completions, as the backward recursion, one column at a
    /// time — chapter 4's code, word for word (chapter 2 derives it):
    /// <code>
    ///   δ_t = r_t + γ V(s_{t+1}) − V(s_t)      V = 0 after the last real token (the episode ends there)
    ///   Â_t = δ_t + γλ Â_{t+1}                  Â = 0 after the last real token
    ///   G_t = Â_t + V(s_t)                      the λ-return: the critic's target
    /// </code>
    /// rewards, values, mask (N, T) → (advantages, returns) (N, T), 0 where the mask is 0. Here γ = 1, λ = 0.95
    /// (TRL's defaults), and RunPpo passes no <paramref name="lastValues"/>: an answer cut off at 5 tokens ends
    /// there too, its score lowered by the missing-EOS penalty.
    /// </summary>
    public static (Tensor advantages, Tensor returns) Gae(Tensor rewards, Tensor values, Tensor mask,
        double gamma, double lambda, Tensor? lastValues = null)
    {
        if (rewards.dim() != 2 || !rewards.shape.SequenceEqual(values.shape)
            || !rewards.shape.SequenceEqual(mask.shape))
            throw new ArgumentException("Gae: rewards, values and mask must share one (N, T) shape, got " +
                $"[{string.Join(", ", rewards.shape)}], [{string.Join(", ", values.shape)}] and " +
                $"[{string.Join(", ", mask.shape)}]");
        long N = rewards.shape[0], T = rewards.shape[1];
        values = values.detach();
        Tensor Col(Tensor x, long t) => x.narrow(1, t, 1).squeeze(1);        // (N): column t
        var nextAdvantage = zeros(N, dtype: values.dtype);                    // Â_T = 0
        var columns = new Tensor[T];
        for (long t = T - 1; t >= 0; t--)
        {
            var nextValue = t < T - 1
                ? Col(values, t + 1) * Col(mask, t + 1)                        // V(s_{t+1}), 0 once the row has ended
                : lastValues?.to_type(values.dtype) ?? zeros(N, dtype: values.dtype);   // past the end: bootstrap or 0
            var delta = (Col(rewards, t) + gamma * nextValue - Col(values, t)) * Col(mask, t);   // δ_t (0 on padding)
            nextAdvantage = delta + gamma * lambda * nextAdvantage;           // Â_t = δ_t + γλ Â_{t+1}
            columns[t] = nextAdvantage;
        }
        var advantages = stack(columns, 1) * mask;                             // (N, T)
        return (advantages, (advantages + values) * mask);                     // G^λ = Â + V
    }

    /// <summary>Advantages normalised to mean 0, std 1 over the real tokens, 0 elsewhere: CleanRL's norm_adv,
    /// (A − mean) / (std + 1e-8), the same text as chapters 2 and 4. (TRL's masked_whiten, which this chapter
    /// does not use, multiplies by rsqrt(var + 1e-8) instead.)</summary>
    public static Tensor NormalizeAdvantages(Tensor advantages, Tensor mask)
    {
        var n = mask.sum();
        var mean = (advantages * mask).sum() / n;
        var variance = ((advantages - mean).square() * mask).sum() / (n - 1).clamp(min: 1);
        return (advantages - mean) / (variance.sqrt() + 1e-8) * mask;
    }

    /// <summary>
    /// PPO's clipped surrogate per token, as a loss (Schulman et al. 2017, eq. 7):
    /// <code>
    ///   ℓ_t = max( −Â_t ρ_t, −Â_t clip(ρ_t, 1 − ε, 1 + ε) ),    ρ_t = exp(logRatio_t)
    /// </code>
    /// the negative of min(ρÂ, clip(ρ)Â): with Â &gt; 0 the gain stops at ρ = 1 + ε, with Â &lt; 0 at ρ = 1 − ε, and a
    /// move the other way (making things worse) is never clipped. Elementwise; differentiable in logRatio.
    /// </summary>
    public static Tensor ClippedSurrogate(Tensor logRatio, Tensor advantages, double clipCoef)
    {
        var ratio = logRatio.exp();                                               // ρ_t = π_θ / π_θold
        var unclipped = -advantages * ratio;                                      // −Â ρ
        var clipped = -advantages * ratio.clamp(1 - clipCoef, 1 + clipCoef);      // −Â clip(ρ, 1 − ε, 1 + ε)
        return maximum(unclipped, clipped);                                       // = −min(Â ρ, Â clip(ρ))
    }

    /// <summary>L_CLIP: <see cref="ClippedSurrogate"/> averaged over the real tokens of the minibatch.</summary>
    public static Tensor PolicyLoss(Tensor logRatio, Tensor advantages, Tensor mask, double clipCoef) =>
        Rollouts.MaskedMean(ClippedSurrogate(logRatio, advantages.detach(), clipCoef), mask);

    /// <summary>
    /// The share of real tokens where the clip is active, so that the policy term's gradient is 0: ρ &lt; 1 − ε
    /// with Â &lt; 0, or ρ &gt; 1 + ε with Â &gt; 0 — TRL's PPO (policy/clipfrac_avg: the clipped loss term is the
    /// larger). Chapter 4 logs CleanRL's |ρ − 1| &gt; ε instead, which also counts moves the clip does not stop.
    /// Chapter 8 restates it (TRL's GRPO, clip_ratio/region_mean). logRatio (N, M), advantages broadcastable. No
    /// gradient.
    /// </summary>
    public static double ClipFraction(Tensor logRatio, Tensor advantages, Tensor mask, double clipCoef)
    {
        using var _ = no_grad();
        var ratio = logRatio.detach().to_type(ScalarType.Float64).exp();         // ρ_t
        var low = ratio.lt(1 - clipCoef).logical_and(advantages.lt(0));          // pushed down as far as allowed
        var high = ratio.gt(1 + clipCoef).logical_and(advantages.gt(0));         // pushed up as far as allowed
        return Rollouts.MaskedMean(low.logical_or(high).to_type(ScalarType.Float64), mask.to_type(ScalarType.Float64))
            .ToDouble();
    }

    /// <summary>
    /// The critic's loss, clipped around the values at sampling time (OpenAI baselines' PPO2, TRL's cliprange_value):
    /// <code>
    ///   L_V = ½ mean_t max( (V_t − G_t)², (V_old,t + clip(V_t − V_old,t, −ε_v, ε_v) − G_t)² )
    /// </code>
    /// over the real tokens; ε_v = 0 gives ½ mean (V − G)² (no clipping).
    /// </summary>
    public static Tensor ValueLoss(Tensor values, Tensor oldValues, Tensor returns, Tensor mask, double valueClip)
    {
        var target = returns.detach();
        var unclipped = (values - target).square();
        if (valueClip <= 0) return 0.5 * Rollouts.MaskedMean(unclipped, mask);
        var old = oldValues.detach();
        var clippedValues = old + (values - old).clamp(-valueClip, valueClip);
        return 0.5 * Rollouts.MaskedMean(maximum(unclipped, (clippedValues - target).square()), mask);
    }

    /// <summary>
    /// Ziegler et al.'s adaptive KL controller (2019, §2; lm-human-preferences' AdaptiveKLController):
    /// <code>
    ///   e = clip(KL / KL_target − 1, −0.2, 0.2),     β ← β (1 + e · n_steps / horizon)
    /// </code>
    /// a proportional controller in log β, whose error is clipped so one bad batch cannot swing β by much. It
    /// raises β when the KL overshoots the target and lowers it when it falls short. RunPpo passes n_steps = the
    /// samples in the batch and KL = the batch's mean Σ_t k1_t (metric kl_k1).
    /// </summary>
    public static double AdaptiveBeta(double beta, double kl, double klTarget, double nSteps, double horizon)
    {
        double error = Math.Clamp(kl / klTarget - 1, -0.2, 0.2);
        return beta * (1 + error * nSteps / horizon);
    }

    /// <summary>
    /// The exact KL between the two next-token distributions at every position, KL(π(·|s_t) ‖ π_ref(·|s_t)) =
    /// Σ_v π(v|s_t) (log π(v|s_t) − log π_ref(v|s_t)): logits (…, V) and refLogits (…, V) → (…).
    /// </summary>
    /// <remarks>The KL between two distributions over whole completions is, by the chain rule,
    /// KL(π ‖ π_ref) = E_{y∼π}[ Σ_t KL(π(·|s_t) ‖ π_ref(·|s_t)) ]: summed over the states a sample visits, this is
    /// an unbiased estimate of the sequence KL, like k1 and k3, but it averages over every token the policy could
    /// have written at each state instead of the one it drew, so its variance is far lower. It needs both models'
    /// full logits, which the evaluation has; the reward's per-token penalty uses k1 (only the sampled token's
    /// log-probs), as Ziegler et al.</remarks>
    public static Tensor StateKl(Tensor logits, Tensor refLogits)
    {
        var logp = logits.log_softmax(-1);                                      // (…, V)
        var refLogp = refLogits.log_softmax(-1);                                // (…, V)
        return (logp.exp() * (logp - refLogp)).sum(-1);                         // (…)
    }

    /// <summary>1 − Var[G − V] / Var[G] over the real tokens (CleanRL's explained_variance); NaN when the returns
    /// are constant.</summary>
    public static double ExplainedVariance(Tensor values, Tensor returns, Tensor mask)
    {
        using var _ = no_grad();
        var n = mask.sum();
        double Var(Tensor x)                                                   // population variance, real tokens
        {
            var mean = (x * mask).sum() / n;
            return (((x - mean).square() * mask).sum() / n).ToDouble();
        }
        double varReturns = Var(returns);
        return varReturns == 0 ? double.NaN : 1 - Var(returns - values) / varReturns;
    }
}
