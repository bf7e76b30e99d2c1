// Chapter 6 — RLHF end to end: the InstructGPT pipeline
// ======================================================
//
//     dotnet run -c Release --project 06-rlhf                      # RM once, then PPO at β = 0.2 and at β = 0.02
//     dotnet run -c Release --project 06-rlhf -- --small-beta 0    # only the moderate β
//     dotnet run -c Release --project 06-rlhf -- --adaptive-kl     # β steered towards a KL target (Ziegler et al.)
//     dotnet run -c Release --project 06-rlhf -- --help            # every option
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
// r_φ is a copy of π_SFT with a scalar head (Linear(C, 1)) instead of using the LM head, read at the
// completion's <eos> token: the last position, where the model has seen the whole answer. (InstructGPT
// also starts its RM from the SFT model.) A Bradley–Terry score is only defined up to a constant, and its
// scale depends on the training run, so — as Ziegler et al. do — it is then normalised to mean 0 and std 1
// over samples of π_SFT: a gain and a bias folded into the head, r ← (r − μ)/σ. β then means the same
// thing whatever the RM's scale. Chapter 5 studies this model at length; what matters here is what it
// learns: the "." almost perfectly, the arithmetic barely (it is right on ~0.55–0.6 of the pairs that differ
// only in correctness) — a proxy that agrees with gold on the easy direction and not on the hard one.
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
// The reward per token. As an RL problem, each token a_t of y is an action; the penalty is spread over the
// tokens with the per-token log-ratio (the k1 estimator of the KL, unbiased for y ∼ π_θ), and the RM's
// score is paid at the last token (Ziegler et al.; TRL's PPOTrainer):
//
//     r_t = −β ( log π_θ(a_t | s_t) − log π_ref(a_t | s_t) )  +  1[t = T−1] · score(x, y)
//
//     score(x, y) = r_φ(x, y)                            when y ends with <eos>
//                 = r_φ(x, y) − missing_eos_penalty      when it ran out of tokens first (TRL's missing_eos_penalty)
//
// Σ_t r_t = score − β log(π_θ(y)/π_ref(y)): summed over the episode it is J's integrand, so with γ = 1
// (no discount: every sequence is at most 5 tokens; InstructGPT and TRL use γ = 1) maximising the return
// maximises J. The log-probs in r_t are those of the policy that sampled y (frozen for the update): the
// penalty is a reward, not a loss term.
//
// Advantages: GAE(γ = 1, λ = 0.95) on those rewards with the critic's values (chapter 2), whitened over the
// batch. The update: PPO's clipped surrogate (Schulman et al. 2017, eq. 7), per token, with ρ_t the ratio
// of the new to the old (sampling) policy:
//
//     L_CLIP(θ) = −E_t [ min( ρ_t Â_t, clip(ρ_t, 1 − ε, 1 + ε) Â_t ) ],    ρ_t = π_θ(a_t|s_t) / π_θ_old(a_t|s_t)
//
// for several epochs over minibatches of each batch of rollouts, and for the critic the clipped value loss
// of OpenAI's baselines / TRL: ½ E_t[ max((V − G)², (V_old + clip(V − V_old, −ε_v, ε_v) − G)²) ].
//
// β, fixed or adaptive. Fixed β is the default. With --adaptive-kl, β follows Ziegler et al.'s
// proportional controller (§2; lm-human-preferences' AdaptiveKLController), which raises β when the KL
// overshoots a target and lowers it when it falls short:
//
//     e = clip( KL / KL_target − 1, −0.2, 0.2 ),     β ← β · (1 + e · n_steps / horizon)
//
// with n_steps the samples in the batch and KL the batch's mean Σ_t k1_t.
//
// ─── Over-optimisation ────────────────────────────────────────────────────────────────────────────────
//
// Gao, Schulman & Hilton ("Scaling Laws for Reward Model Overoptimization", 2022) plot, along RL training,
// the proxy RM's score and the gold score against the policy's distance from its start: the proxy rises
// without end while the gold score rises, peaks and falls — Goodhart's law, measured. The default run
// shows it here with two β from one reward model: at the moderate β the gold score rises with the proxy
// (through the "." the RM learned correctly, and little more); at the small β the policy travels much
// further, the proxy keeps rising, and the gold score falls: correctness collapses while the RM, which
// cannot check sums, keeps paying. curves.svg plots proxy and gold against KL(π_θ ‖ π_ref) for both.
//
// ─── Design decisions ─────────────────────────────────────────────────────────────────────────────────
//
//  * One reward model, two PPO runs. The default run trains the RM once (stage 2 is the same for any β) and then runs
//    stage 3 twice from the same SFT model and the same random numbers: at β = 0.2 (the headline: summary.json's
//    numbers) and at β = 0.02 (--small-beta; 0 skips it). The picture needs both on one plot.
//  * β is in units of the normalised RM (std 1 over SFT samples). Measured (seed 1, 100 iterations, one RM): β = 0.01
//    over-optimises (gold 0.40 → 0.10), β = 0.1 gains +0.06 but already loses correctness (0.24 → 0.18), β = 0.2 gains
//    +0.11 with correctness held (0.24 → 0.22), β = 0.3 gains +0.10 at a smaller KL. 0.2 and 0.02 are also the
//    prototype's two values (DESIGN.md).
//  * The critic starts from the reward model (InstructGPT's appendix on RLHF training: the value function is initialised
//    from the RM), a
//    separate network as in chapter 2. Its explained variance starts negative (an RM score of a half-written answer is
//    not the value of finishing it) and climbs to ≈ 0.3–0.5 within ~20 iterations.
//  * PPO: 64 rollouts per iteration, 4 epochs × 2 minibatches, clip 0.2, value clip 0.2, advantages whitened, gradients
//    clipped to norm 1 (TRL's defaults where TRL has one). Actor lr 1e-4: the policy is updated 8 times per batch, so
//    more cautiously than chapter 2's single 3e-4 step (whose first steps already jump the KL, see there).
//  * No entropy bonus and no pretraining-mix term (InstructGPT's "PPO-ptx"): the KL penalty is the only regulariser, so
//    what β does is all there is to see.
//  * The missing-EOS penalty (1 normalised RM unit) is subtracted from the score of an answer that never wrote <eos> in
//    its 5 tokens: the RM has seen few unfinished answers and should not be trusted to score them (TRL's
//    missing_eos_penalty). The RM still reads such an answer at its last token.
//  * The over-optimisation curve is measured on the 512 held-out prompts every 5 iterations, one T = 1 sample each with
//    the same random numbers every time, and the KL on its x-axis is the exact per-state KL summed along each sample
//    (RlhfMath.StateKl): unbiased like k1/k3 and far less noisy — k3's eʳ term explodes on the rare token the policy
//    samples that the reference likes much more than the policy does. summary.json's "kl" is the k3 estimate on the same
//    samples (the estimator the other chapters report), "kl_exact" the exact one. Measured at β = 0.2 (3 seeds): k3 reads
//    1.55, 1.23, 0.54 where the exact KL is 0.86, 0.95, 0.73 — a few samples carry most of k3, so it swings either way.
//
// ─── Measured ─────────────────────────────────────────────────────────────────────────────────────────
//
// On TorchSharp, the default engine (libtorch 2.10, 1 thread; 2026-12-03, seeds 1 / 2 / 3, `dotnet run -c Release
// --project compare -- --seed N`): gold 0.363 → 0.545 / 0.508 / 0.485 at β = 0.2; at β = 0.02 gold peaks at 0.457 /
// 0.432 / 0.445 and ends at 0.364 / 0.247 / 0.321 (correctness → 0.066 / 0.037 / 0.023); 45–48 s. The numbers that
// follow were measured on MinTorch (`-p:Engine=MinTorch`), which trains its own base model from the same seed.
//
// The default run (`dotnet run -c Release --project 06-rlhf -- --seed N`), 512 held-out prompts, one T = 1 sample each
// (the book's eval seed, so every run and chapter scores the same SFT model: gold 0.420, correct 0.252, '.' share 0.56);
// gold = mean gold score, proxy = mean normalised RM score, KL = the exact per-state KL in nats per completion. On 2
// quiet cores: 36.5 / 38.7 / 36.9 s of wall time for seeds 1 / 2 / 3 (both β, the RM's 300 steps included;
// `dotnet run -c Release --project compare -- --seed N`, 2026-11-22); 67–74 s of CPU time per run.
//
//   seed  RM held-out acc.     β      KL     proxy          gold                    correct   '.' share  well-formed
//         (style / correct.)                                final  (peak)
//   1     0.71 (0.94 / 0.65)   0.2    0.86   −0.06 → 0.79   0.420 → 0.525           0.236     0.99       0.97
//                              0.02   4.51   −0.06 → 0.95   0.420 → 0.254 (0.486)   0.068     0.99       0.62
//   2     0.66 (0.94 / 0.52)   0.2    0.95   −0.07 → 0.76   0.420 → 0.485           0.195     0.99       0.97
//                              0.02   5.05   −0.07 → 0.94   0.420 → 0.231 (0.448)   0.045     0.98       0.62
//   3     0.68 (0.93 / 0.60)   0.2    0.73   −0.04 → 0.68   0.420 → 0.525           0.234     0.99       0.98
//                              0.02   3.32   −0.04 → 0.75   0.420 → 0.383 (0.484)   0.096     0.99       0.96
//
// At β = 0.2 RLHF raises the gold score by +0.07 to +0.11, all of it through the "." (the one thing the RM got right:
// '.' share 0.56 → 0.99); correctness slips by 2 to 6 points, as the RM (right on 52–65% of the correctness-only pairs)
// gives it little signal either way. At β = 0.02 the policy travels 4–6× further, the proxy keeps climbing, and gold
// peaks early (0.45–0.49, at KL ≈ 1) and then falls below the SFT model's as correctness collapses (to 4–10%) and, in
// seeds 1 and 2, answers turn malformed (well-formed 0.98 → 0.62): the RM pays for "." on anything, `36+31=118.` included.
// That is Gao et al.'s picture: the gold-vs-KL curve rises, peaks and falls while the proxy-vs-KL curve does not.
using System.Diagnostics;
using MinRL;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Rlhf;

/// <summary>The chapter's hyper-parameters; every one is a command-line option (<c>--help</c> lists them).</summary>
public sealed record Args : LabArgs
{
    [Help("PPO iterations (rollout batch + update) per β (fits the two-minute run with both β, measured)", Min = 1)]
    public override int Steps { get; init; } = 100;

    // ---- stage 2: the reward model
    [Help("training prompts to sample preference pairs on (two SFT samples each; identical pairs dropped; ≈ 75% kept)", Min = 1)]
    public int RmTrainProblems { get; init; } = 4096;

    [Help("reward-model training steps (Bradley–Terry loss), one minibatch of pairs each", Min = 0)]
    public int RmSteps { get; init; } = 300;

    [Help("preference pairs per reward-model step (PreferenceCheck, tests/experiments)", Min = 1)]
    public int RmBatchSize { get; init; } = 64;

    [Help("reward-model AdamW learning rate (measured in tests/experiments/PreferenceCheck)", Min = 0)]
    public double RmLearningRate { get; init; } = 1e-4;

    [Help("normalise the RM to mean 0, std 1 on SFT samples, folded into its head (Ziegler et al. 2019 §2)")]
    public bool NormalizeReward { get; init; } = true;

    // ---- stage 3: PPO
    [Help("KL coefficient β of the headline run (moderate: gold rises; measured here)", Min = 0)]
    public double Beta { get; init; } = 0.2;

    [Help("a second stage-3 run at this small β, to show over-optimisation (Gao et al. 2022); 0 = skip it", Min = 0)]
    public double SmallBeta { get; init; } = 0.02;

    [Help("adaptive KL controller: steer β towards --kl-target (Ziegler et al. 2019 §2); off = fixed β (InstructGPT)")]
    public bool AdaptiveKl { get; init; }

    [Help("KL target in nats per completion for --adaptive-kl (Ziegler et al. used 6–10 for 24-token samples; our answers are ≤ 5 tokens)", Min = 0)]
    public double KlTarget { get; init; } = 1.0;

    [Help("horizon of the adaptive KL controller, in samples (Ziegler et al.: 10,000; β moves ≤ 0.13% per 64-sample batch)", Min = 1)]
    public double KlHorizon { get; init; } = 10_000;

    [Help("rollouts (prompts, one completion each) per PPO iteration (TRL's batch size 64)", Min = 2)]
    public int BatchSize { get; init; } = 64;

    [Help("PPO epochs over each batch (TRL's num_ppo_epochs 4; CleanRL's update_epochs 4)", Min = 1)]
    public int PpoEpochs { get; init; } = 4;

    [Help("minibatches per epoch (CleanRL's num_minibatches; TRL's default is 1)", Min = 1)]
    public int Minibatches { get; init; } = 2;

    [Help("actor AdamW learning rate: 8 updates per batch here, so below chapters 1–2's 3e-4 for one step per batch (not tuned further)", Min = 0)]
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

    [Help("subtracted from the RM score of an answer with no <eos> (TRL's missing_eos_penalty), in normalised RM units", Min = 0)]
    public double MissingEosPenalty { get; init; } = 1.0;

    [Help("clip each model's gradient to this global L2 norm (TRL's and the HF Trainer's max_grad_norm 1.0); 0 = off", Min = 0)]
    public double MaxGradNorm { get; init; } = 1.0;

    [Help("evaluate proxy, gold and KL on the held-out prompts every this many PPO iterations (the over-optimisation curve)", Min = 1)]
    public int EvalEvery { get; init; } = 5;
}

public static class Program
{
    static int Main(string[] args) =>
        Lab.Run<Args>(args, "06-rlhf", "RLHF end to end: SFT model → Bradley–Terry reward model → PPO with a per-token KL penalty", Train);

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
    /// <param name="Kl">KL(π_θ ‖ π_ref), nats per completion: the exact per-state KL summed over each sample's tokens, averaged over prompts.</param>
    /// <param name="KlK3">The same KL estimated with k3 on the sampled tokens only (the book's common estimator; noisier).</param>
    /// <param name="Proxy">Mean reward-model score (normalised, missing-EOS penalty included): what PPO maximises.</param>
    /// <param name="Gold">Mean gold score: what the labeller really values.</param>
    public sealed record Eval(int Step, double Kl, double KlK3, double Proxy, double Gold, double Accuracy, double Period, double WellFormed);

    /// <summary>What stage 2 produced and measured.</summary>
    public sealed record RewardModelReport(int TrainPairs, int HeldOutPairs, double HeldOutAccuracy, double NoiseCeiling,
        double StyleOnlyAccuracy, double CorrectnessOnlyAccuracy, double Mean, double Std, double FinalLoss, int Samples);

    /// <summary>What one stage-3 run measured: its per-iteration log and the held-out curve.</summary>
    public sealed record StageResult(double Beta, double FinalBeta, MetricsLog Log, IReadOnlyList<Eval> Curve, long Samples)
    {
        public Eval Base => Curve[0];
        public Eval Final => Curve[^1];
    }

    /// <summary>What a run measured (the tests read it).</summary>
    public sealed record RunResult(RunSummary Summary, RewardModelReport RewardModel, MetricsLog RmLog, StageResult Main, StageResult? Small);

    /// <summary>Runs the three stages (stage 3 once per β) and returns what they measured.</summary>
    public static RunResult Run(Args args)
    {
        int steps = args.StepsOr(quickSteps: 20);
        var rmArgs = args.Quick && !args.IsGiven(nameof(args.RmSteps)) ? args with { RmSteps = 60 } : args;
        manual_seed(args.Seed);
        var task = new ArithmeticTask();                                       // the book's split: 9,488 train, 512 held out
        var world = new PreferenceWorld();                                     // the labeller and its hidden gold scorer

        // ================================================================ stage 1: SFT
        // The shared base model was trained by supervised fine-tuning on demonstrations: it is π_SFT.
        var baseConfig = new BaseModelConfig();
        var sft = BaseModel.Load(baseConfig);                                  // π_SFT, frozen from here on
        foreach (var p in sft.parameters()) p.requires_grad_(false);

        // ================================================================ stage 2: the reward model
        using var rmLog = new MetricsLog(Path.Combine(args.Out, "rm_metrics.csv"));
        var (rm, rmReport) = TrainRewardModel(rmArgs, sft, task, world, rmLog);
        Lab.Print($"reward model: {rmReport.TrainPairs} training pairs, held-out accuracy {Lab.Fmt(rmReport.HeldOutAccuracy)} " +
                  $"(noise ceiling {Lab.Fmt(rmReport.NoiseCeiling)}; style-only pairs {Lab.Fmt(rmReport.StyleOnlyAccuracy)}, " +
                  $"correctness-only pairs {Lab.Fmt(rmReport.CorrectnessOnlyAccuracy)}); normalised by μ {Lab.Fmt(rmReport.Mean)}, σ {Lab.Fmt(rmReport.Std)}");

        // ================================================================ stage 3: PPO, once per β
        var main = RunPpo(args, args.Beta, steps, sft, rm, task, world, Path.Combine(args.Out, "metrics.csv"), "β " + Lab.Fmt(args.Beta));
        StageResult? small = args.SmallBeta > 0
            ? RunPpo(args, args.SmallBeta, steps, sft, rm, task, world, Path.Combine(args.Out, "metrics_small_beta.csv"), "β " + Lab.Fmt(args.SmallBeta))
            : null;

        // ================================================================ report
        var stages = small is null ? new[] { main } : new[] { main, small };
        Lab.Table("held-out T = 1 samples (512 prompts): before → after PPO",
            ["β", "KL exact", "KL k3", "proxy", "gold", "correct", "'.' share", "well-formed"],
            stages.SelectMany(s => new[]
            {
                new object?[] { $"{Lab.Fmt(s.Beta)}: SFT", s.Base.Kl, s.Base.KlK3, s.Base.Proxy, s.Base.Gold, s.Base.Accuracy, s.Base.Period, s.Base.WellFormed },
                new object?[] { $"{Lab.Fmt(s.Beta)}: RLHF", s.Final.Kl, s.Final.KlK3, s.Final.Proxy, s.Final.Gold, s.Final.Accuracy, s.Final.Period, s.Final.WellFormed },
            }));
        File.WriteAllLines(Path.Combine(args.Out, "overoptimisation.csv"), stages.SelectMany(s => s.Curve.Select(e => FormattableString.Invariant(
            $"{s.Beta:R},{e.Step},{e.Kl:R},{e.KlK3:R},{e.Proxy:R},{e.Gold:R},{e.Accuracy:R},{e.Period:R},{e.WellFormed:R}")))
            .Prepend("beta,step,kl,kl_k3,proxy,gold,accuracy,period,well_formed"));
        WritePlot(args, main, small);

        long rmParams = rm.NumParameters();
        long stage3Params = sft.NumParameters() + rmParams;                   // actor (π_SFT's shape) + critic (the RM's shape)
        var summary = new RunSummary
        {
            Metric = "held-out gold score (sampled, T = 1)",
            Base = main.Base.Gold,
            Final = main.Final.Gold,
            Kl = main.Final.KlK3,
            Extra =
            {
                ["beta"] = main.Beta,
                ["beta_final"] = main.FinalBeta,
                ["adaptive_kl"] = args.AdaptiveKl,
                ["steps"] = steps,
                ["models_held"] = 4,
                ["trainable_params"] = stage3Params + rmParams,
                ["trainable_params_stage3"] = stage3Params,
                ["samples_generated"] = rmReport.Samples + main.Samples,
                ["samples_generated_rm_pairs"] = rmReport.Samples,
                ["kl_estimator"] = "k3 summed over each completion's tokens, one T = 1 sample per held-out prompt (the reward uses k1)",
                ["kl_exact"] = main.Final.Kl,                                  // the exact per-state KL on the same samples (the plot's x)
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
    /// measures it on held-out pairs and normalises it on SFT samples. Returns the frozen, normalised reward model.
    /// </summary>
    static (TinyGpt rm, RewardModelReport report) TrainRewardModel(Args args, TinyGpt sft, ArithmeticTask task, PreferenceWorld world, MetricsLog log)
    {
        var clock = Stopwatch.StartNew();
        var sampler = new Generator((ulong)args.Seed + 1000);                 // the SFT samples the labeller compares
        var dataRng = new SplitMix64(args.Seed + 2000);
        (IReadOnlyList<PreferencePair> pairs, Tensor firstCompletions) MakePairs(IReadOnlyList<Problem> problems, long labelSeed)
        {
            var prompts = ArithmeticTask.EncodePrompts(problems);                                 // (N, P)
            var y1 = Rollouts.Generate(sft, prompts, M, generator: sampler).Completions;         // (N, M)
            var y2 = Rollouts.Generate(sft, prompts, M, generator: sampler).Completions;         // (N, M)
            return (world.MakePairs(problems, y1, y2, labelSeed), y1);
        }
        var trainProblems = ArithmeticTask.Sample(task.Train, args.RmTrainProblems, dataRng);
        var (trainPairs, sftSamples) = MakePairs(trainProblems, args.Seed + 3000);
        var (heldOutPairs, _) = MakePairs(task.Eval, args.Seed + 4000);      // held-out prompts: the RM's test set

        // r_φ: π_SFT's weights plus a scalar head Linear(C, 1) (its LM head comes along unused).
        var rm = new TinyGpt(sft.Config with { ScalarHead = true });
        rm.load_state_dict(sft.state_dict(), strict: false);                  // everything but scalar_head.*
        var optimizer = optim.AdamW(rm.parameters(), lr: args.RmLearningRate);
        var (prompts, chosen, rejected) = PreferenceWorld.Encode(trainPairs); // (N, P), (N, M), (N, M)
        var chosenSeq = cat([prompts, chosen], 1);                             // (N, L)
        var rejectedSeq = cat([prompts, rejected], 1);                         // (N, L)
        var chosenLen = Rollouts.CompletionMask(chosen).lengths;               // (N)
        var rejectedLen = Rollouts.CompletionMask(rejected).lengths;           // (N)

        int B = Math.Min(args.RmBatchSize, trainPairs.Count);
        var epochs = new Epochs(trainPairs.Count, dataRng);                    // shuffled passes over the pairs
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
                ("rm_batch_accuracy", (both.narrow(0, 0, B) > both.narrow(0, B, B)).to_type(ScalarType.Float64).mean().ToDouble()));
        }
        rm.eval();
        foreach (var p in rm.parameters()) p.requires_grad_(false);

        // Held-out accuracy against the noisy labels, overall and by what the two answers differ in.
        using var _ = no_grad();
        var (hp, hc, hr) = PreferenceWorld.Encode(heldOutPairs);
        var rc = RewardAtEnd(rm, cat([hp, hc], 1), Rollouts.CompletionMask(hc).lengths).cpu().data<float>().ToArray();
        var rr = RewardAtEnd(rm, cat([hp, hr], 1), Rollouts.CompletionMask(hr).lengths).cpu().data<float>().ToArray();
        double Accuracy(Func<PreferencePair, bool> which)
        {
            var idx = Enumerable.Range(0, heldOutPairs.Count).Where(i => which(heldOutPairs[i])).ToArray();
            return idx.Length == 0 ? double.NaN : idx.Count(i => rc[i] > rr[i]) / (double)idx.Length;
        }

        // Normalise (Ziegler et al. §2): μ, σ of r_φ over SFT samples (one per training prompt), folded into the head,
        //   r' = (w·h + b − μ)/σ = (w/σ)·h + (b − μ)/σ.
        var sftSeq = cat([ArithmeticTask.EncodePrompts(trainProblems), sftSamples], 1);
        var scores = RewardAtEnd(rm, sftSeq, Rollouts.CompletionMask(sftSamples).lengths);   // (N)
        double mean = scores.mean().ToDouble(), std = scores.std().ToDouble();
        if (args.NormalizeReward)
        {
            var head = rm.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            head["scalar_head.weight"].div_(std);
            head["scalar_head.bias"].sub_(mean).div_(std);
        }
        var report = new RewardModelReport(trainPairs.Count, heldOutPairs.Count, Accuracy(_ => true), world.NoiseCeiling(heldOutPairs),
            Accuracy(p => p.Kind == PairKind.StyleOnly), Accuracy(p => p.Kind == PairKind.CorrectnessOnly), mean, std, loss,
            Samples: 2 * trainProblems.Count);
        Lab.Print($"reward model trained in {Lab.Fmt(clock.Elapsed.TotalSeconds)} s ({args.RmSteps} steps, final loss {Lab.Fmt(loss)})");
        return (rm, report);
    }

    /// <summary>
    /// r(x, y): a model's scalar head read at each completion's last real token — its &lt;eos&gt;, or the 5th token when
    /// it has none. sequences int64 (N, L), lengths int64 (N) (tokens through &lt;eos&gt;) → (N).
    /// </summary>
    public static Tensor RewardAtEnd(TinyGpt model, Tensor sequences, Tensor lengths)
    {
        var r = model.Scalar(model.Hidden(sequences));                         // (N, L): a score at every position
        return r.gather(1, (lengths + (P - 1)).unsqueeze(1)).squeeze(1);       // (N): at position P − 1 + length
    }

    // ==================================================================== stage 3: PPO against the reward model

    /// <summary>
    /// One stage-3 run at KL coefficient <paramref name="beta"/>: a fresh actor (π_SFT's copy) and critic (the RM's copy),
    /// <paramref name="steps"/> PPO iterations, held-out evaluations along the way.
    /// </summary>
    static StageResult RunPpo(Args args, double beta, int steps, TinyGpt sft, TinyGpt rm, ArithmeticTask task, PreferenceWorld world,
        string csv, string label)
    {
        manual_seed(args.Seed);                                                // each β's run starts from the same random state
        double initialBeta = beta;
        var reference = sft;                                                   // π_ref: π_SFT itself, frozen
        var actor = new TinyGpt(sft.Config);                                   // π_θ ← π_SFT
        actor.load_state_dict(sft.state_dict());
        foreach (var p in actor.parameters()) p.requires_grad_(true);
        var critic = new TinyGpt(rm.Config);                                   // V_ψ ← r_φ (normalised), as in InstructGPT
        critic.load_state_dict(rm.state_dict());
        foreach (var p in critic.parameters()) p.requires_grad_(true);
        var actorOptimizer = optim.AdamW(actor.parameters(), lr: args.LearningRate);
        var criticOptimizer = optim.AdamW(critic.parameters(), lr: args.CriticLearningRate);

        var problemsRng = new SplitMix64(args.Seed + 5000);                    // which training prompts each iteration
        var minibatchRng = new SplitMix64(args.Seed + 6000);                   // minibatch order
        var rolloutGen = new Generator((ulong)args.Seed + 7000);               // the actor's samples
        var curve = new List<Eval> { Evaluate(actor, reference, rm, world, task.Eval, 0, args) };
        Lab.Print($"stage 3 ({label}): SFT policy on held-out prompts: KL {Lab.Fmt(curve[0].Kl)}, proxy {Lab.Fmt(curve[0].Proxy)}, " +
                  $"gold {Lab.Fmt(curve[0].Gold)}, correct {Lab.Fmt(curve[0].Accuracy)}, '.' share {Lab.Fmt(curve[0].Period)}");

        var log = new MetricsLog(csv);
        using (var progress = Lab.Progress(steps, $"PPO, {label}", "score", "kl", "gold", "policy/clipfrac_avg"))
        {
            for (int step = 1; step <= steps; step++)
            {
                using var scope = NewDisposeScope();   // TorchSharp: this step's tensors are freed at its end
                var clock = Stopwatch.StartNew();
                var problems = ArithmeticTask.Sample(task.Train, args.BatchSize, problemsRng);
                var m = PpoIteration(args, beta, actor, critic, rm, reference, actorOptimizer, criticOptimizer, problems, world,
                    rolloutGen, minibatchRng, step);
                var row = m.ToList();
                if (args.AdaptiveKl)                                            // β ← β(1 + e · n_steps / horizon)
                    beta = RlhfMath.AdaptiveBeta(beta, m.First(x => x.Name == "kl_k1").Value, args.KlTarget, args.BatchSize, args.KlHorizon);
                row.Add(("beta", beta));
                if (step % args.EvalEvery == 0 || step == steps)
                {
                    var e = Evaluate(actor, reference, rm, world, task.Eval, step, args);
                    curve.Add(e);
                    row.AddRange([("eval_kl", e.Kl), ("eval_proxy", e.Proxy), ("gold", e.Gold), ("eval_accuracy", e.Accuracy), ("eval_period", e.Period)]);
                }
                row.Add(("step_ms", clock.Elapsed.TotalMilliseconds));
                log.Add(step, [.. row]);
                progress.Update(step, [.. row]);
            }
        }
        log.Dispose();
        var last = curve[^1];
        Lab.Print($"stage 3 ({label}): after {steps} iterations: KL {Lab.Fmt(last.Kl)}, proxy {Lab.Fmt(last.Proxy)}, gold {Lab.Fmt(last.Gold)}, " +
                  $"correct {Lab.Fmt(last.Accuracy)}, '.' share {Lab.Fmt(last.Period)}, well-formed {Lab.Fmt(last.WellFormed)}");
        return new StageResult(initialBeta, beta, log, curve, (long)steps * args.BatchSize);
    }

    /// <summary>
    /// One PPO iteration: sample a batch from the actor, score it (reference, reward model, critic), build the per-token
    /// KL-penalised rewards and GAE advantages, then several epochs of clipped-surrogate updates on minibatches.
    /// </summary>
    public static (string Name, double Value)[] PpoIteration(Args args, double beta, TinyGpt actor, TinyGpt critic, TinyGpt rm,
        TinyGpt reference, optim.Optimizer actorOptimizer, optim.Optimizer criticOptimizer, IReadOnlyList<Problem> problems,
        PreferenceWorld world, Generator rolloutGen, SplitMix64 minibatchRng, long step)
    {
        // ---- rollout: one completion per prompt from the current policy, T = 1.
        var rollout = Rollouts.Generate(actor, ArithmeticTask.EncodePrompts(problems), M, generator: rolloutGen);
        var sequences = rollout.Sequences;                                     // (N, L) int64
        var mask = rollout.CompletionMask;                                     // (N, M): 1 through the first <eos>
        var lengths = rollout.Lengths;                                         // (N)
        var hasEos = RlhfMath.EndsWithEos(rollout.Completions, lengths);      // (N) bool
        int N = problems.Count;

        // ---- score the batch with the four models, no gradients: the quantities PPO holds fixed.
        Tensor oldLogp, refLogp, scores, oldValues, rewards, klPerToken, advantages, returns;
        using (no_grad())
        {
            actor.eval(); critic.eval();
            oldLogp = Rollouts.TokenLogProbs(actor, sequences, P);             // (N, M): log π_θ_old(a_t|s_t)
            refLogp = Rollouts.TokenLogProbs(reference, sequences, P);         // (N, M): log π_ref(a_t|s_t)
            scores = RewardAtEnd(rm, sequences, lengths);                      // (N): r_φ(x, y), normalised
            oldValues = critic.Scalar(critic.Hidden(sequences)).narrow(1, P - 1, M);   // (N, M): V(s_t), read where a_t is predicted
            klPerToken = Kl.K1(oldLogp, refLogp) * mask;                       // (N, M): log π_θ/π_ref per token
            rewards = RlhfMath.TokenRewards(scores, klPerToken, mask, lengths, hasEos, beta, args.MissingEosPenalty);   // (N, M)
            (advantages, returns) = RlhfMath.Gae(rewards, oldValues, mask, args.Gamma, args.GaeLambda);               // (N, M) each
            advantages = RlhfMath.NormalizeAdvantages(advantages, mask);
        }

        // ---- PPO epochs: minibatches of the rollouts, clipped surrogate for the actor, clipped value loss for the critic.
        actor.train(); critic.train();
        double pgLossSum = 0, vLossSum = 0, clipFracSum = 0, approxKlSum = 0, gradSum = 0;
        int updates = 0;
        for (int epoch = 0; epoch < args.PpoEpochs; epoch++)
        {
            foreach (var rows in Sampling.Minibatches(N, args.Minibatches, minibatchRng))
            {
                using var minibatchScope = NewDisposeScope();                  // TorchSharp: one minibatch's tensors
                var idx = tensor(rows, [rows.Length]);
                var seq = sequences.index_select(0, idx);                      // (mb, L)
                var m = mask.index_select(0, idx);                             // (mb, M)
                var adv = advantages.index_select(0, idx);                     // (mb, M)

                var newLogp = Rollouts.TokenLogProbs(actor, seq, P);           // (mb, M), differentiable
                var logRatio = newLogp - oldLogp.index_select(0, idx);         // log ρ_t
                var pgLoss = RlhfMath.PolicyLoss(logRatio, adv, m, args.ClipCoef);
                Lab.CheckFinite(pgLoss, "policy loss", step);
                actorOptimizer.zero_grad();
                pgLoss.backward();
                gradSum += Grad.ClipNorm(actor.parameters(), args.MaxGradNorm);
                actorOptimizer.step();

                var values = critic.Scalar(critic.Hidden(seq)).narrow(1, P - 1, M);   // (mb, M), differentiable
                var vLoss = RlhfMath.ValueLoss(values, oldValues.index_select(0, idx), returns.index_select(0, idx), m, args.ValueClip);
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
                    clipFracSum += RlhfMath.ClipFraction(lr, adv, m, args.ClipCoef);
                    approxKlSum += Kl.OldToNew(lr, m);                              // KL(π_old ‖ π_θ) per token
                }
                updates++;
            }
        }

        // ---- report (the batch as sampled, before this iteration's updates).
        var measured = ArithmeticTask.Measure(problems, rollout.Completions);
        return
        [
            ("score", scores.mean().ToDouble()),                               // r_φ of the samples: the proxy
            ("kl_k1", Rollouts.MaskedSum(klPerToken, mask, 1).mean().ToDouble()),   // Σ_t log π/π_ref, batch mean
            ("kl", Rollouts.MaskedSum(Kl.K3(oldLogp, refLogp), mask, 1).mean().ToDouble()),
            ("return", rewards.sum(1).mean().ToDouble()),                     // score − β·k1 summed: J's integrand
            ("train_gold", world.MeanGold(problems, rollout.Completions)),
            ("train_accuracy", measured.Accuracy),
            ("train_period", measured.Period),
            ("missing_eos", 1 - hasEos.to_type(ScalarType.Float64).mean().ToDouble()),
            ("policy_loss", pgLossSum / updates),
            ("value_loss", vLossSum / updates),
            ("policy/clipfrac_avg", clipFracSum / updates),   // TRL's PPO name: see RlhfMath.ClipFraction
            ("approx_kl", approxKlSum / updates),
            ("grad_norm", gradSum / updates),
            ("explained_var", RlhfMath.ExplainedVariance(oldValues, returns, mask)),
            ("length", lengths.to_type(ScalarType.Float64).mean().ToDouble()),
        ];
    }


    /// <summary>
    /// The held-out measurement behind the over-optimisation picture: one T = 1 sample per held-out prompt (the same
    /// random numbers every time, so two checkpoints differ by their policies only), scored by the reward model (proxy),
    /// the hidden gold scorer, and the KL to the reference.
    /// </summary>
    static Eval Evaluate(TinyGpt actor, TinyGpt reference, TinyGpt rm, PreferenceWorld world, IReadOnlyList<Problem> problems, int step, Args args)
    {
        using var scope = NewDisposeScope();   // TorchSharp: frees the rollouts, logits and scores on return
        var rollout = Rollouts.Generate(actor, ArithmeticTask.EncodePrompts(problems), M, generator: new Generator(BaseModel.EvalSeed));
        using var _ = no_grad();
        bool wasTraining = actor.training;
        actor.eval();
        var logits = Rollouts.Score(actor, rollout.Sequences, P).Logits;        // (N, M, V)
        var refLogits = Rollouts.Score(reference, rollout.Sequences, P).Logits; // (N, M, V)
        if (wasTraining) actor.train();
        double kl = Rollouts.MaskedSum(RlhfMath.StateKl(logits, refLogits), rollout.CompletionMask, 1).mean().ToDouble();
        var logp = logits.log_softmax(-1).gather(2, rollout.Completions.unsqueeze(-1)).squeeze(-1);         // (N, M)
        var refLogp = refLogits.log_softmax(-1).gather(2, rollout.Completions.unsqueeze(-1)).squeeze(-1);   // (N, M)
        double klK3 = Rollouts.MaskedSum(Kl.K3(logp, refLogp), rollout.CompletionMask, 1).mean().ToDouble();
        var hasEos = RlhfMath.EndsWithEos(rollout.Completions, rollout.Lengths);
        var score = RewardAtEnd(rm, rollout.Sequences, rollout.Lengths) - args.MissingEosPenalty * (~hasEos).to_type(ScalarType.Float32);
        var measured = ArithmeticTask.Measure(problems, rollout.Completions);
        return new Eval(step, kl, klK3, score.mean().ToDouble(), world.MeanGold(problems, rollout.Completions),
            measured.Accuracy, measured.Period, measured.WellFormed);
    }

    /// <summary>curves.svg: proxy and gold against KL for each β (Gao et al.'s picture), then the training curves.</summary>
    static void WritePlot(Args args, StageResult main, StageResult? small)
    {
        var stages = small is null ? new[] { main } : new[] { main, small };
        Series Against(StageResult s, Func<Eval, double> y, string what) =>
            new($"{what}, β {Lab.Fmt(s.Beta)}", s.Curve.Select(e => e.Kl).ToArray(), s.Curve.Select(y).ToArray()) { XLabel = "KL(π_θ ‖ π_ref), nats", Points = true };
        var plot = new SvgPlot($"06-rlhf, seed {args.Seed}: the reward model's score (proxy) and the hidden gold score against KL to the reference");
        plot.Add("proxy: reward-model score vs KL", stages.Select(s => Against(s, e => e.Proxy, "proxy")).ToArray());
        plot.Add("gold score vs KL", stages.Select(s => Against(s, e => e.Gold, "gold")).ToArray()).HLine(main.Base.Gold, "SFT");
        plot.Add("correct share vs KL", stages.Select(s => Against(s, e => e.Accuracy, "correct")).ToArray());
        Series AlongSteps(StageResult s, Func<Eval, double> y) =>
            new($"β {Lab.Fmt(s.Beta)}", s.Curve.Select(e => (double)e.Step).ToArray(), s.Curve.Select(y).ToArray()) { XLabel = "PPO iteration" };
        plot.Add("held-out KL to the reference (nats)", stages.Select(s => AlongSteps(s, e => e.Kl)).ToArray());
        plot.Add("held-out gold score", stages.Select(s => AlongSteps(s, e => e.Gold)).ToArray()).HLine(main.Base.Gold, "SFT");
        plot.Add("held-out '.' share", stages.Select(s => AlongSteps(s, e => e.Period)).ToArray());
        foreach (var metric in new[] { "score", "explained_var", "policy/clipfrac_avg" })
            plot.Add($"{metric} (training batches)", stages.Select(s => s.Log.Series(metric, label: $"β {Lab.Fmt(s.Beta)}")).ToArray());
        plot.Write(Path.Combine(args.Out, "curves.svg"));
    }
}

/// <summary>
/// The pure functions of RLHF — the reward model's loss, the KL-penalised per-token rewards, GAE, the PPO losses and the
/// adaptive KL controller — pinned by tests to known values.
/// </summary>
public static class RlhfMath
{
    /// <summary>
    /// Bradley–Terry loss of a reward model: −mean log σ(r_c − r_r), chosen scores (N) against rejected scores (N).
    /// logsigmoid, not log(sigmoid(·)): for a large negative margin σ underflows to 0 and its log to −∞.
    /// </summary>
    public static Tensor BradleyTerryLoss(Tensor chosen, Tensor rejected) => -F.logsigmoid(chosen - rejected).mean();

    /// <summary>True for each completion whose last real token is &lt;eos&gt;: completions int64 (N, M), lengths (N) → bool (N).</summary>
    public static Tensor EndsWithEos(Tensor completions, Tensor lengths) =>
        completions.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1).eq(CharTokenizer.Instance.EosId);

    /// <summary>
    /// The per-token rewards of RLHF: r_t = −β·kl_t on every real token, plus the score at the last one, the score lowered
    /// by <paramref name="missingEosPenalty"/> where the completion has no &lt;eos&gt;:
    /// <code>
    ///   r_t = −β kl_t + 1[t = length − 1] · (score − missingEosPenalty · 1[no &lt;eos&gt;])
    /// </code>
    /// scores (N), klPerToken (N, M) (log π_θ − log π_ref, the k1 estimator), mask (N, M), lengths int64 (N), hasEos bool (N)
    /// → (N, M), 0 after each completion's end.
    /// </summary>
    public static Tensor TokenRewards(Tensor scores, Tensor klPerToken, Tensor mask, Tensor lengths, Tensor hasEos, double beta,
        double missingEosPenalty)
    {
        long T = mask.shape[1];
        var penalised = scores - missingEosPenalty * (~hasEos).to_type(scores.dtype);                // (N)
        var isLast = arange(T, dtype: ScalarType.Int64).unsqueeze(0).eq((lengths - 1).unsqueeze(1));  // (N, T)
        return (-beta * klPerToken + isLast.to_type(scores.dtype) * penalised.unsqueeze(1)) * mask;   // (N, T)
    }

    /// <summary>
    /// GAE(γ, λ) (Schulman et al. 2016) over variable-length completions, as the backward recursion, one column at a time:
    /// <code>
    ///   δ_t = r_t + γ V(s_{t+1}) − V(s_t)      V = 0 after the last real token (the episode ends there)
    ///   Â_t = δ_t + γλ Â_{t+1}                  Â = 0 after the last real token
    ///   G_t = Â_t + V(s_t)                      the λ-return: the critic's target
    /// </code>
    /// rewards, values, mask (N, T) → (advantages, returns) (N, T), 0 where the mask is 0. Chapter 2 derives it.
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
    /// (A − mean) / (std + 1e-8), the same text as chapters 2 and 4 (TRL's masked_whiten multiplies by rsqrt(var + 1e-8)).</summary>
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
    /// The share of real tokens where the clip is active, so that the policy term's gradient is 0: ρ &lt; 1 − ε with
    /// Â &lt; 0, or ρ &gt; 1 + ε with Â &gt; 0 — TRL's PPO (policy/clipfrac_avg: the clipped loss term is the larger).
    /// Chapter 8 restates it (TRL's GRPO, clip_ratio/region_mean). logRatio (N, M), advantages broadcastable. No gradient.
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
    /// a proportional controller in log β, whose error is clipped so one bad batch cannot swing β by much.
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
    /// KL(π ‖ π_ref) = E_{y∼π}[ Σ_t KL(π(·|s_t) ‖ π_ref(·|s_t)) ]: summed over the states a sample visits, this is an
    /// unbiased estimate of the sequence KL, like k1 and k3, but it averages over every token the policy could have written
    /// at each state instead of the one it drew, so its variance is far lower. It needs both models' full logits, which the
    /// evaluation has; the reward's per-token penalty uses k1 (only the sampled token's log-probs), as Ziegler et al.</remarks>
    public static Tensor StateKl(Tensor logits, Tensor refLogits)
    {
        var logp = logits.log_softmax(-1);                                      // (…, V)
        var refLogp = refLogits.log_softmax(-1);                                // (…, V)
        return (logp.exp() * (logp - refLogp)).sum(-1);                         // (…)
    }

    /// <summary>1 − Var[G − V] / Var[G] over the real tokens (CleanRL's explained_variance); NaN when the returns are constant.</summary>
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
