// Chapter 8 — GRPO: group relative policy optimisation.
//
//     dotnet run -c Release --project 08-grpo                                   # the default run (< 60 s)
//     dotnet run -c Release --project 08-grpo -- --scale-rewards none --loss-type dr-grpo   # Dr. GRPO
//     dotnet run -c Release --project 08-grpo -- --loss-type dapo --epsilon-high 0.28 --dynamic-sampling
//                                                                               # DAPO's three changes
//     dotnet run -c Release --project 08-grpo -- --help                         # every option
//
// ─── The setting ─────────────────────────────────────────────────────────────────────────────────────
//
// As in chapter 1: a prompt q = "<bos>47+9=", the tiny GPT π_θ writes a completion o = (o_1, …, o_|o|)
// one token at a time, and a rule scores the whole completion at the end. The rule here is DeepSeek-R1's
// pair of rewards — one for being right, one for being in the expected form:
//
//     r(q, o) = 1[o is the sum, written correctly] + b · 1[o is well-formed: 1–3 digits, optional ".", <eos>]
//
// (b = --format-bonus). Chapter 4 (PPO) learned a value function V(s) to judge each token's action; that is
// a second network the size of the policy, trained alongside it. GRPO (Shao et al. 2024, DeepSeekMath §4.1)
// throws it away and asks a cheaper question: how did this completion do compared with the OTHER
// completions of the same prompt?
//
// ─── The objective ───────────────────────────────────────────────────────────────────────────────────
//
// For each prompt q, sample a group of G completions o_1 … o_G from the policy that is about to be updated,
// π_θold, and score them: r_1 … r_G. Every token of completion i gets the same advantage, its reward measured
// against the other rewards of its group (GroupRelative.Advantages derives why the group mean is a baseline, and
// what dividing by the std costs; --scale-rewards switches the divisor):
//
//     Â_{i,t} = (r_i − mean(r_1..r_G)) / (std(r_1..r_G) + ε)           (DeepSeekMath §4.1.2, "outcome supervision")
//
// With ρ_{i,t}(θ) = π_θ(o_{i,t} | q, o_{i,<t}) / π_θold(o_{i,t} | q, o_{i,<t}), DeepSeekMath's eq. 3 maximises
//
//     J(θ) = E_{q, {o_i}∼π_θold} (1/G) Σ_i (1/|o_i|) Σ_t { min[ ρ_{i,t} Â_{i,t}, clip(ρ_{i,t}, 1 − ε, 1 + ε) Â_{i,t} ]
//                                                       − β D_KL[π_θ ‖ π_ref]_{i,t} }
//
// Each part is derived beside the code that computes it:
//   * min[…] is PPO's clipped surrogate (chapter 4) with the group advantage in place of GAE, and the same samples
//     serve μ gradient steps (--iterations): GroupRelative.ClippedSurrogate (with DAPO's ε_low, ε_high);
//   * D_KL is Schulman's k3 per token, put in the LOSS rather than in the reward as in chapter 6: GroupRelative.K3;
//   * (1/G) Σ_i (1/|o_i|) Σ_t is one of three averages in use (--loss-type): GroupRelative.Aggregate, which also
//     shows why the printed loss is ≈ 0 while the model learns.
//
// What the field runs in 2025–26 changes one of these parts at a time, and each is a switch here, derived beside
// its code: the advantage (--advantage rloo, reinforce++-baseline: GroupRelative.AdvantagesOf); where the ratio
// lives (--importance-sampling-level sequence, GSPO: SequenceLogRatio); the clip (--epsilon-high, DAPO's
// clip-higher: ClippedSurrogate; --loss-type cispo, which clips the weight and never the gradient: CispoLoss);
// which samples count (--dynamic-sampling, DAPO: Program.SampleGroups); and the KL term's estimator
// (--kl-estimator k1|k2|k3, with what each one's gradient is: above PerTokenLoss), or none (--beta 0, TRL's
// default now).
//
// ─── The loop ────────────────────────────────────────────────────────────────────────────────────────
//
//   1. rollout      --prompts prompts, --group-size completions each, sampled from π_θold at T = 1, and their rewards
//   2. advantages   Â per completion, group-relative; π_ref's log-probs of the sampled tokens, once
//   3–4. update     μ = --iterations times: score the batch under π_θ, per-token loss, aggregate, one AdamW step
//   5. report       the metrics below; every --eval-every steps, the held-out sampled accuracy
//
// ─── What is logged (TRL's GRPOTrainer names) ────────────────────────────────────────────────────────
//
// Per step: reward and reward_std, the spread of the rewards within groups (the mean of the groups' stds);
// accuracy and well_formed, shares of the batch's samples; frac_reward_zero_std, the share of groups whose G rewards
// are all equal (so that all their Â are 0); loss, the loss of the first inner iteration, and kl_loss, its KL part
// (β·k3, aggregated the same way); kl, KL(π_θ ‖ π_ref) per completion (k3 summed over its tokens, as every chapter
// reports it; TRL's kl is per token); clip_ratio/region_mean, the share of tokens where the clip is active, and
// grad_norm, before clipping, both means over the μ iterations; entropy per token; completions/mean_length, in
// tokens. Every --eval-every steps: eval_accuracy, the sampled accuracy (T = 1) on the 512 held-out problems, the
// book's gold metric. Output in runs/08-grpo/seed<seed>/: metrics.csv, curves.svg, summary.json.
// Under --scale-rewards batch, TRL's reward_std is the whole batch's std (and frac_reward_zero_std 0 or 1); here both
// stay per group in every mode, because a group with equal rewards has Â = 0 whatever the divisor.
//
// Key findings: the default run lifts the held-out sampled accuracy from 0.22 to 0.65–0.72 (seeds 1–3); every
// --scale-rewards and --loss-type variant learns; about 40% of the groups have all-equal rewards (Â ≡ 0). Of the
// newer switches, dynamic sampling gains most per step (0.81–0.84) at 2.8× the samples; GSPO clips 14% of tokens
// at its ε of 3e-4 (its paper: ≈ 15%); k1 in the loss acts like β = 0 (its expected gradient is 0).
// Results, experiments and curves: docs/08-grpo.md
//
// References: Z. Shao et al., "DeepSeekMath: Pushing the limits of mathematical reasoning in open language
// models", arXiv:2402.03300 (2024), §4.1–4.2. DeepSeek-AI, "DeepSeek-R1: Incentivizing reasoning capability
// in LLMs via reinforcement learning", arXiv:2501.12948 (2025), §2.2.2 (accuracy and format rewards). Q. Yu
// et al., "DAPO: An open-source LLM reinforcement learning system at scale", arXiv:2503.14476 (2025), §3.3
// (token-level loss) and §3.2 (dynamic sampling). Z. Liu et al., "Understanding R1-Zero-like training: a
// critical perspective", arXiv:2503.20783 (2025), §3.2 (Dr. GRPO). C. Zheng et al., "Group Sequence Policy
// Optimization", arXiv:2507.18071 (2025) (GSPO). MiniMax, "MiniMax-M1", arXiv:2506.13585 (2025), §3.1 (CISPO).
// A. Ahmadian et al., "Back to basics: revisiting REINFORCE style optimization for learning from human feedback in
// LLMs", arXiv:2402.14740 (2024) (RLOO). J. Hu, "REINFORCE++", arXiv:2501.03262 (2025). J. Schulman,
// "Approximating KL divergence" (2020), http://joschu.net/blog/kl-approx.html. Hugging Face TRL, GRPOTrainer
// (trl/trainer/grpo_trainer.py: scale_rewards, loss_type, the logged metrics' names),
// https://github.com/huggingface/trl.
using System.Diagnostics;
using MinRL;
using TorchSharp;
using static TorchSharp.torch;

namespace Grpo;

/// <summary>What the group-relative advantage divides by (TRL's <c>scale_rewards</c>).</summary>
public enum ScaleRewards
{
    /// <summary>(r − mean_group) / (std_group + ε): DeepSeekMath's GRPO.</summary>
    Group,
    /// <summary>(r − mean_group) / (std_batch + ε): one scale for the whole batch (REINFORCE++, TRL's "batch").
    /// </summary>
    Batch,
    /// <summary>r − mean_group, unscaled: Dr. GRPO.</summary>
    None,
}

/// <summary>How the advantage of each completion is made from the rewards of its group.</summary>
public enum AdvantageKind
{
    /// <summary>r_i − mean_group, divided as <see cref="ScaleRewards"/> says: GRPO (DeepSeekMath).</summary>
    Grpo,
    /// <summary>r_i − mean of the other G − 1 rewards: RLOO (Ahmadian et al. 2024; Kool et al. 2019).</summary>
    Rloo,
    /// <summary>r_i − mean_group, divided by the std of those over the whole batch: REINFORCE++-baseline (Hu 2025).
    /// </summary>
    ReinforcePlusPlusBaseline,
}

/// <summary>Where the importance ratio lives (TRL's <c>importance_sampling_level</c>).</summary>
public enum ImportanceSamplingLevel
{
    /// <summary>One ratio per token, π_θ(o_t)/π_θold(o_t): GRPO, PPO.</summary>
    Token,
    /// <summary>One ratio per completion, the geometric mean of its tokens' ratios: GSPO (Zheng et al. 2025).
    /// </summary>
    Sequence,
}

/// <summary>How the per-token losses are averaged into one number (TRL's <c>loss_type</c>).</summary>
public enum LossType
{
    /// <summary>Mean over each completion's tokens, then over completions: DeepSeekMath's eq. 3.</summary>
    Grpo,
    /// <summary>Mean over all tokens of the batch: DAPO's token-level loss.</summary>
    Dapo,
    /// <summary>Sum over all tokens ÷ (completions × longest possible completion): Dr. GRPO's constant
    /// normaliser.</summary>
    DrGrpo,
    /// <summary>CISPO's loss (MiniMax-M1, 2025): −sg(min(ρ, 1 + ε_high)) Â log π_θ, a mean over all tokens.</summary>
    Cispo,
}

/// <summary>The chapter's hyper-parameters: one command-line option each (<c>--group-size 8</c>).</summary>
public sealed record Args : LabArgs
{
    [Help("GRPO steps, each sampling one batch of groups and taking --iterations gradient steps on it " +
          "(chosen so that the default run fits in 60 s on 2 cores)", Min = 1)]
    public override int Steps { get; init; } = 450;

    [Help("prompts per step, each answered --group-size times (32 × G 4 = 128 samples a step: chapter 1's batch)",
          Min = 1)]
    public int Prompts { get; init; } = 32;

    [Help("G, the completions sampled per prompt, at least 2 for a std " +
          "(TRL's num_generations default: 8; DeepSeekMath: 64)", Min = 2)]
    public int GroupSize { get; init; } = 4;

    [Help("μ, the gradient steps taken on each batch of samples " +
          "(TRL's num_iterations default: 1, as DeepSeekMath §4.2)", Min = 1)]
    public int Iterations { get; init; } = 2;

    [Help("ε of the clipped ratio, clip(ρ, 1 − ε, 1 + ε) (DeepSeekMath, PPO and TRL: 0.2)", Min = 0)]
    public double ClipEpsilon { get; init; } = 0.2;

    [Help("β, weight of the per-token k3 KL to the reference in the loss (DeepSeekMath §4.2: 0.04)", Min = 0)]
    public double Beta { get; init; } = 0.04;

    [Help("what the group-centred rewards are divided by: group, batch or none (TRL's scale_rewards; " +
          "DeepSeekMath: group, REINFORCE++: batch, Dr. GRPO: none)")]
    public ScaleRewards ScaleRewards { get; init; } = ScaleRewards.Group;

    [Help("the loss and how its per-token terms are averaged: grpo per completion, dapo per token, dr-grpo by a " +
          "constant, cispo (clipped, detached IS weights; MiniMax-M1) per token (TRL's loss_type; DeepSeekMath: grpo)")]
    public LossType LossType { get; init; } = LossType.Grpo;

    [Help("how advantages are made: grpo (group mean, then --scale-rewards), rloo (the mean of the other G − 1; " +
          "Ahmadian et al. 2024) or reinforce++-baseline (group mean, then the batch's std; Hu 2025)")]
    public AdvantageKind Advantage { get; init; } = AdvantageKind.Grpo;

    [Help("token: a ratio per token; sequence: one per completion, the geometric mean of its tokens' " +
          "(GSPO, Zheng et al. 2025, with --clip-epsilon 3e-4 --epsilon-high 4e-4)")]
    public ImportanceSamplingLevel ImportanceSamplingLevel { get; init; } = ImportanceSamplingLevel.Token;

    [Help("ε_high, the upper clip 1 + ε_high (and CISPO's weight cap), 0 = the same as --clip-epsilon " +
          "(DAPO's clip-higher: 0.28 with ε 0.2)", Min = 0)]
    public double EpsilonHigh { get; init; } = 0;

    [Help("drop the groups whose rewards are all equal and sample more prompts until the batch is full " +
          "(DAPO's dynamic sampling)")]
    public bool DynamicSampling { get; init; }

    [Help("the estimator of the loss's per-token KL term: k1, k2 or k3 (Schulman 2020; DeepSeekMath: k3)")]
    public KlEstimator KlEstimator { get; init; } = KlEstimator.K3;

    [Help("AdamW learning rate (tuned here: docs/08-grpo.md)", Min = 0)]
    public double LearningRate { get; init; } = 3e-4;

    [Help("AdamW weight decay, 0 because decay pulls the weights towards 0 rather than back to the base model " +
          "(the Hugging Face Trainer's default: 0)", Min = 0)]
    public double WeightDecay { get; init; } = 0.0;

    [Help("the global gradient norm is clipped to this before each step, 0 = no clipping " +
          "(the Hugging Face Trainer's default: 1.0)", Min = 0)]
    public double MaxGradNorm { get; init; } = 1.0;

    [Help("b, the reward bonus for a well-formed answer, right or wrong, kept small so that correctness dominates " +
          "(DeepSeek-R1's format reward)", Min = 0)]
    public double FormatBonus { get; init; } = 0.1;

    [Help("evaluate the sampled accuracy (T = 1) on the 512 held-out problems every this many steps " +
          "(0 = only at the end)", Min = 0)]
    public int EvalEvery { get; init; } = 50;
}

public static class Program
{
    public static int Main(string[] args) => Lab.Run<Args>(args, "08-grpo",
        "GRPO on a+b=: group-relative advantages, clipped ratio, k3 KL to the reference", Train);

    /// <summary>The whole chapter: load the base, then rollout → advantages → loss → update → report, repeated.
    /// </summary>
    public static int Train(Args args)
    {
        int steps = args.StepsOr(quickSteps: 40);
        int N = args.Prompts * args.GroupSize;                        // completions per step

        // ─── the policy, its frozen reference, the task ──────────────────────────────────────────────
        // Two networks and no critic: the policy π_θ (trained) and the reference π_ref (a frozen copy of the
        // base model), which the KL term of the loss pulls towards.
        var task = new ArithmeticTask();                              // 9,488 training problems, 512 held out
        var policy = BaseModel.Load(new BaseModelConfig());
        var reference = BaseModel.Load(new BaseModelConfig(), TextWriter.Null);
        reference.eval();
        foreach (var p in reference.parameters()) p.requires_grad = false;

        var optimizer = optim.AdamW(policy.parameters(), lr: args.LearningRate, weight_decay: args.WeightDecay);
        var problemStream = new SplitMix64(args.Seed);  // which prompts each step; the samples use torch's generator
        const int P = ArithmeticTask.PromptLength, M = ArithmeticTask.MaxCompletionLength;

        using var log = new MetricsLog(Path.Combine(args.Out, "metrics.csv"),
            "reward", "reward_std", "accuracy", "well_formed", "frac_reward_zero_std", "loss", "kl_loss", "kl",
            "clip_ratio/region_mean", "grad_norm", "entropy", "completions/mean_length", "eval_accuracy");
        // Every held-out evaluation samples with the book's fixed seed: base and trained policy face the same random
        // numbers, so their difference is not sampling noise.
        var baseEval = BaseModel.Evaluate(policy, task.Eval, temperature: 1,
            generator: new Generator(BaseModel.EvalSeed));
        var baseGreedy = BaseModel.Evaluate(policy, task.Eval, temperature: 0);
        log.Add(0, ("eval_accuracy", baseEval.Accuracy));
        Lab.Print($"base model: held-out sampled accuracy {Lab.Fmt(baseEval.Accuracy)} (T = 1), " +
                  $"greedy {Lab.Fmt(baseGreedy.Accuracy)}");

        var final = baseEval;
        long samplesDrawn = 0;                                       // completions sampled for training
        var clock = Stopwatch.StartNew();
        using (var progress = Lab.Progress(steps, "GRPO",
                   "reward", "eval_accuracy", "kl", "loss", "grad_norm", "frac_reward_zero_std"))
        {
            for (int step = 1; step <= steps; step++)
            {
                using var scope = NewDisposeScope();   // TorchSharp: this step's tensors are freed at its end
                // ─── 1. rollout: B prompts, G completions each, sampled from π_θold at T = 1 ─────────
                // Rows are grouped: rows g·G … g·G + G − 1 answer prompt g.
                var (problems, rollout, drawn) = SampleGroups(policy, task, args, problemStream);     // (N, P + M)
                samplesDrawn += drawn;                                       // > N only with --dynamic-sampling
                var mask = rollout.CompletionMask;                            // (N, M): 1 through the first <eos>
                // r = 1[correct] + b·1[well-formed], one per completion
                var rewards = ArithmeticTask.Rewards(problems, rollout.Completions, args.FormatBonus);      // (N)

                // ─── 2. advantages: (r − mean_group) / (std + ε), the same for every token of a completion ──
                var advantages = GroupRelative.AdvantagesOf(args.Advantage, rewards, args.GroupSize,
                    args.ScaleRewards);                                                   // (N)
                double zeroStdFrac = GroupRelative.ZeroStdFraction(rewards, args.GroupSize);    // groups with Â ≡ 0

                // The reference's log-probs of the sampled tokens: fixed for this batch, so computed once.
                Tensor refLogp;                                                           // (N, M)
                using (no_grad()) refLogp = Rollouts.TokenLogProbs(reference, rollout);

                // ─── 3–4. μ gradient steps on the clipped objective, all on the same samples ─────────
                policy.train();
                Tensor? oldLogp = null;                                                   // (N, M): log π_θold(o_{i,t})
                double loss1 = 0, klLoss1 = 0, kl = 0, entropy = 0, clipFrac = 0, gradNorm = 0;
                for (int k = 1; k <= args.Iterations; k++)
                {
                    var scored = Rollouts.Score(policy, rollout.Sequences, P);            // one forward pass
                    var logp = scored.LogProbs;                           // (N, M): log π_θ(o_{i,t}), differentiable
                    // θold is the θ that sampled the batch: before the first step, θ = θold, so the first pass's
                    // log-probs ARE log π_θold (no extra forward pass needed; ρ = 1 exactly in iteration 1).
                    oldLogp ??= logp.detach();

                    var perToken = GroupRelative.PerTokenLoss(logp, oldLogp, refLogp, advantages,
                        args.ClipEpsilon, args.Beta, args.EpsilonHigh, args.LossType, args.ImportanceSamplingLevel,
                        args.KlEstimator, mask);                                          // (N, M)
                    var loss = GroupRelative.Aggregate(perToken, mask, args.LossType, M); // scalar
                    Lab.CheckFinite(loss, "loss", step);

                    optimizer.zero_grad();
                    loss.backward();
                    gradNorm += Grad.ClipNorm(policy.parameters(), args.MaxGradNorm)      // the norm before clipping
                                / args.Iterations;
                    optimizer.step();

                    using (no_grad())
                    {
                        clipFrac += GroupRelative.ClipFraction(logp.detach() - oldLogp, advantages.unsqueeze(1),
                                        mask, args.ClipEpsilon) / args.Iterations;
                        if (k == 1)
                        {
                            // At θold: the loss that is ≈ 0 by construction (see GroupRelative.Aggregate), its KL
                            // part, and the KL per completion (k3 summed over the completion's tokens, as every
                            // chapter reports it).
                            var k3 = GroupRelative.K3(logp.detach(), refLogp);                         // (N, M)
                            loss1 = loss.ToDouble();
                            klLoss1 = args.Beta * GroupRelative.Aggregate(k3, mask, args.LossType, M).ToDouble();
                            kl = (k3 * mask).sum(1).mean().ToDouble();
                            entropy = Rollouts.MaskedMean(scored.Entropy(), mask).ToDouble();          // nats per token
                        }
                    }
                }

                // ─── 5. report ───────────────────────────────────────────────────────────────────────
                // reward_std is the mean of the groups' stds under every --scale-rewards (TRL, under "batch", logs
                // the whole batch's std instead): the spread within groups is what the advantages are made of.
                var batch = ArithmeticTask.Measure(problems, rollout.Completions);
                var metrics = new List<(string, double)>
                {
                    ("reward", rewards.mean().ToDouble()),
                    ("reward_std", rewards.view(-1, args.GroupSize).std(1).mean().ToDouble()),
                    ("accuracy", batch.Accuracy), ("well_formed", batch.WellFormed),
                    ("frac_reward_zero_std", zeroStdFrac),
                    ("loss", loss1), ("kl_loss", klLoss1), ("kl", kl), ("clip_ratio/region_mean", clipFrac),
                    ("grad_norm", gradNorm), ("entropy", entropy),
                    ("completions/mean_length", rollout.Lengths.to_type(float32).mean().ToDouble()),
                };
                if (step == steps || args.EvalEvery > 0 && step % args.EvalEvery == 0)
                {
                    // The gold metric, on the same random numbers as the base model's (the last one is the final
                    // score).
                    final = BaseModel.Evaluate(policy, task.Eval, temperature: 1,
                        generator: new Generator(BaseModel.EvalSeed));
                    metrics.Add(("eval_accuracy", final.Accuracy));
                }
                log.Add(step, [.. metrics]);
                progress.Update(step, [.. metrics]);
            }
        }
        double trainSeconds = clock.Elapsed.TotalSeconds;

        var finalGreedy = BaseModel.Evaluate(policy, task.Eval, temperature: 0);
        // Same generator seed and batch as the final evaluation: the KL is measured on the very samples that were
        // scored.
        double finalKl = Kl.HeldOut(policy, reference, task.Eval, new Generator(BaseModel.EvalSeed));

        string variant = $"advantage {Name(args.Advantage)}, scale-rewards {Name(args.ScaleRewards)}, " +
                         $"loss-type {Name(args.LossType)}";
        var plot = new SvgPlot($"08-grpo — GRPO ({variant}), seed {args.Seed}") { Smoothing = 0.9 };
        plot.Add("held-out accuracy (T = 1)", log.Dots("eval_accuracy")).HLine(baseEval.Accuracy, "base");
        plot.Add("reward (batch) and its spread within groups", log.Series("reward"), log.Series("reward_std"));
        plot.Add("share of groups with all rewards equal (Â = 0)", log.Series("frac_reward_zero_std"));
        plot.Add("loss (first inner step) and its KL part", log.Series("loss"), log.Series("kl_loss"));
        plot.Add("gradient norm (before clipping)", log.Series("grad_norm"));
        plot.Add("KL to reference (nats / completion)", log.Series("kl"));
        plot.Add("clip fraction", log.Series("clip_ratio/region_mean"));
        plot.Add("completion length (tokens)", log.Series("completions/mean_length"));
        plot.Write(Path.Combine(args.Out, "curves.svg"));

        Lab.Finish(new RunSummary
        {
            Metric = "held-out accuracy (sampled, T = 1)",
            Base = baseEval.Accuracy,
            Final = final.Accuracy,
            Kl = finalKl,
            Extra =
            {
                ["greedy_base"] = baseGreedy.Accuracy,
                ["greedy_final"] = finalGreedy.Accuracy,
                ["scale_rewards"] = Name(args.ScaleRewards),
                ["loss_type"] = Name(args.LossType),
                ["kl_estimator"] = "k3 summed over the tokens of each completion, one T = 1 sample per held-out prompt",
                ["models_held"] = 2,                                   // the policy and the frozen reference; no critic
                ["trainable_params"] = policy.parameters().Where(p => p.requires_grad).Sum(p => p.numel()),
                ["samples_generated"] = samplesDrawn,
                ["dynamic_sampling_extra_samples"] = samplesDrawn - (long)N * steps,   // dropped with their group
                ["advantage"] = Name(args.Advantage),
                ["importance_sampling_level"] = args.ImportanceSamplingLevel.ToString().ToLowerInvariant(),
                ["epsilon_high"] = args.EpsilonHigh > 0 ? args.EpsilonHigh : args.ClipEpsilon,
                ["kl_estimator_loss"] = args.KlEstimator.ToString().ToLowerInvariant(),
                ["beta"] = args.Beta,
                ["zero_std_fraction"] = log.Column("frac_reward_zero_std").Where(double.IsFinite).Average(),
                ["clip_fraction"] = log.Column("clip_ratio/region_mean").Where(double.IsFinite).Average(),
                ["steps"] = steps,
                ["prompts_per_step"] = args.Prompts,
                ["group_size"] = args.GroupSize,
                ["iterations"] = args.Iterations,
                ["train_s"] = trainSeconds,
                ["ms_per_step"] = 1000 * trainSeconds / steps,
            },
        });
        return 0;
    }

    /// <summary>The options' spellings on the command line.</summary>
    private static string Name(ScaleRewards s) => s.ToString().ToLowerInvariant();
    private static string Name(LossType t) =>
        t switch { LossType.Grpo => "grpo", LossType.Dapo => "dapo", LossType.Cispo => "cispo", _ => "dr-grpo" };
    private static string Name(AdvantageKind a) =>
        a switch { AdvantageKind.Grpo => "grpo", AdvantageKind.Rloo => "rloo", _ => "reinforce++-baseline" };

    // ─── DAPO's dynamic sampling (--dynamic-sampling) ──────────────────────────────────────────────────
    //
    // A group whose G rewards are all equal has Â = 0 on every completion (GroupRelative.ZeroStdFraction): it costs
    // G samples and a forward and backward pass, and moves nothing but the KL term. DAPO (Yu et al. 2025, §3.2)
    // drops such groups and samples more prompts until the batch is full again, so every step's gradient comes
    // from B informative groups. The price is the extra sampling, which summary.json counts
    // (dynamic_sampling_extra_samples). Without the switch one round is drawn and kept whatever it holds.

    /// <summary>One batch of B groups of G completions: the prompts, their rollout (rows grouped by prompt), and how
    /// many completions were sampled to get it (N, or more with <c>--dynamic-sampling</c>, which gives up after 8
    /// rounds and keeps what it has).</summary>
    public static (Problem[] Problems, Rollout Rollout, int Drawn) SampleGroups(TinyGpt policy, ArithmeticTask task,
        Args args, SplitMix64 problemStream)
    {
        const int M = ArithmeticTask.MaxCompletionLength, MaxRounds = 8;
        int G = args.GroupSize, wanted = args.Prompts * G, drawn = 0;
        var keptProblems = new List<Problem>();
        var keptRollouts = new List<Rollout>();
        for (int round = 0; round < MaxRounds && keptProblems.Count < wanted; round++)
        {
            var prompts = ArithmeticTask.Sample(task.Train, args.Prompts, problemStream);
            var problems = GroupRelative.Repeat(prompts, G);                          // B·G problems
            var rollout = Rollouts.Generate(policy, ArithmeticTask.EncodePrompts(problems), M);  // (B·G, P + M)
            drawn += problems.Length;
            if (!args.DynamicSampling) return (problems, rollout, drawn);
            var rewards = ArithmeticTask.Rewards(problems, rollout.Completions, args.FormatBonus)
                .to_type(float64).cpu().data<double>().ToArray();
            var rows = new List<long>();
            for (int g = 0; g < args.Prompts && keptProblems.Count + rows.Count < wanted; g++)
                if (Enumerable.Range(1, G - 1).Any(j => rewards[g * G + j] != rewards[g * G]))   // an informative group
                    for (int j = 0; j < G; j++) rows.Add(g * G + j);
            if (rows.Count == 0) continue;
            keptProblems.AddRange(rows.Select(r => problems[r]));
            keptRollouts.Add(Rows(rollout, tensor(rows.ToArray(), [rows.Count])));
        }
        if (keptRollouts.Count == 0)                                     // nothing informative in 8 rounds: draw again
        {
            var plainArgs = args with { DynamicSampling = false };
            var (plain, rollout, more) = SampleGroups(policy, task, plainArgs, problemStream);
            return (plain, rollout, drawn + more);
        }
        var sequences = cat(keptRollouts.Select(r => r.Sequences).ToArray(), 0);
        int P = keptRollouts[0].PromptLength;
        return ([.. keptProblems], new Rollout(sequences, sequences.narrow(1, P, M),
            cat(keptRollouts.Select(r => r.CompletionMask).ToArray(), 0),
            cat(keptRollouts.Select(r => r.Lengths).ToArray(), 0),
            cat(keptRollouts.Select(r => r.SampleLogProbs).ToArray(), 0), P), drawn);
    }

    /// <summary>The rows <paramref name="index"/> of a rollout.</summary>
    static Rollout Rows(Rollout r, Tensor index) =>
        new(r.Sequences.index_select(0, index), r.Completions.index_select(0, index),
            r.CompletionMask.index_select(0, index), r.Lengths.index_select(0, index),
            r.SampleLogProbs.index_select(0, index), r.PromptLength);
}

/// <summary>The algorithm's pure functions, pinned by tests/Chapters.Tests/GrpoTests.cs.</summary>
public static class GroupRelative
{
    /// <summary>TRL's ε in (r − mean) / (std + ε): keeps an all-equal group at 0 / ε = 0 instead of 0 / 0.</summary>
    public const double StdEpsilon = 1e-4;

    /// <summary>Each problem <paramref name="groupSize"/> times in a row: [a, a, …, b, b, …] (the group layout).
    /// </summary>
    public static Problem[] Repeat(IReadOnlyList<Problem> prompts, int groupSize) =>
        prompts.SelectMany(p => Enumerable.Repeat(p, groupSize)).ToArray();

    // ─── Group-relative advantages ─────────────────────────────────────────────────────────────────────
    //
    // Why the group mean works: chapter 1 showed that subtracting a baseline b leaves the policy gradient unbiased
    // when b does not depend on the sample, and that the best b knows the prompt. The group mean IS a per-prompt
    // baseline, estimated by Monte Carlo instead of by a critic. It includes r_i itself, which costs a little:
    //
    //   E[(r_i − r̄) ∇log π(o_i)] = E[r_i ∇log π(o_i)] − (1/G) E[r_i ∇log π(o_i)] − (1/G) Σ_{j≠i} E[r_j] E[∇log π(o_i)]
    //                            = (1 − 1/G) ∇J                     (samples are independent and E[∇log π] = 0)
    //
    // — the right direction, shrunk by 1 − 1/G (leave-one-out, RLOO, removes even that). Dividing by the group's
    // std is a different matter. It makes every prompt's advantages unit-size whatever the spread of its rewards,
    // so a prompt the model nearly always gets right (rewards 1,1,1,1,1,1,1,0: std 0.35) pushes as hard as a
    // coin-flip one (std 0.53) — and a group that differs only in FORMAT (b = 0.1 for some, 0 for others) is scaled
    // up to push as hard as one that differs in correctness. Liu et al. 2025 ("Understanding R1-Zero-like
    // training", Dr. GRPO) call this a question-level difficulty bias and drop the division; TRL also offers the
    // std of the whole batch instead (Hu 2025, REINFORCE++). The switch: --scale-rewards group | batch | none.
    // The std is Bessel-corrected (÷ (G − 1), torch.std's default) and ε = 1e-4, as in TRL's GRPOTrainer.

    /// <summary>
    /// The group-relative advantage of each completion:
    ///
    ///     group:  Â_i = (r_i − mean_g) / (std_g + ε)       std_g Bessel-corrected over the completion's own group
    ///     batch:  Â_i = (r_i − mean_g) / (std_B + ε)       std_B Bessel-corrected over the whole batch
    ///     none:   Â_i =  r_i − mean_g                       Dr. GRPO
    ///
    /// The mean is always the group's. A group whose rewards are all equal gets Â = 0 exactly (0 / (0 + ε)).
    /// </summary>
    /// <param name="rewards">(B·G) rewards, grouped: rows g·G … g·G + G − 1 share a prompt.</param>
    /// <param name="groupSize">G ≥ 2.</param>
    /// <returns>(B·G) advantages, in the rewards' dtype.</returns>
    public static Tensor Advantages(Tensor rewards, int groupSize, ScaleRewards scale, double eps = StdEpsilon)
    {
        if (groupSize < 2)
            throw new ArgumentOutOfRangeException(nameof(groupSize), groupSize,
                "Advantages: a group needs at least 2 completions for a std");
        if (rewards.dim() != 1 || rewards.shape[0] % groupSize != 0)
            throw new ArgumentException($"Advantages: rewards must have shape (B·G) with G = {groupSize}, " +
                                        $"got [{string.Join(", ", rewards.shape)}]");
        var grouped = rewards.view(-1, groupSize);                                  // (B, G)
        var centred = grouped - grouped.mean([1], keepdim: true);                   // (B, G): r_i − mean_g
        var advantages = scale switch
        {
            ScaleRewards.Group => centred / (grouped.std(1, keepdim: true) + eps),  // ÷ (std_g + ε), std_g: (B, 1)
            ScaleRewards.Batch => centred / (rewards.std() + eps),                  // ÷ (std_B + ε), one number
            _ => centred,
        };
        return advantages.reshape(-1);                                              // (B·G)
    }

    // RLOO and REINFORCE++-baseline (--advantage). The group mean above includes r_i itself, which shrinks the
    // expected gradient by 1 − 1/G (see the derivation above). Leave it out and the baseline no longer depends on
    // sample i at all — the unbiased per-prompt baseline of chapter 1, estimated from the other samples of the same
    // prompt (Kool et al. 2019; Ahmadian et al. 2024, TRL's RLOOTrainer):
    //
    //   Â_i = r_i − (1/(G − 1)) Σ_{j≠i} r_j  =  (G/(G − 1)) (r_i − r̄)
    //
    // — GRPO's centred reward, scaled up by G/(G − 1), and not divided by any std. REINFORCE++-baseline (Hu 2025)
    // centres by the group mean too, then divides by ONE number: the std of those centred rewards over the whole
    // batch (its "global batch normalisation"), so a group where everyone is nearly right is not blown up to unit
    // scale as GRPO's per-group std does. (TRL's scale_rewards="batch" divides by the std of the raw rewards instead.)

    /// <summary>The advantages of <paramref name="kind"/>: GRPO's (<see cref="Advantages"/>, scaled per
    /// <paramref name="scale"/>), RLOO's leave-one-out (unscaled) or REINFORCE++-baseline's. (B·G) → (B·G).</summary>
    public static Tensor AdvantagesOf(AdvantageKind kind, Tensor rewards, int groupSize, ScaleRewards scale,
        double eps = StdEpsilon)
    {
        if (kind == AdvantageKind.Grpo) return Advantages(rewards, groupSize, scale, eps);
        if (kind == AdvantageKind.Rloo) return rewards - RlooBaseline(rewards, groupSize);   // r_i − b_i
        var grouped = rewards.view(-1, groupSize);                                  // (B, G)
        var centred = grouped - grouped.mean([1], keepdim: true);                   // (B, G): r_i − mean_group
        return (centred / (centred.std() + eps)).reshape(-1);                       // ÷ (std over the batch + ε)
    }

    /// <summary>RLOO's baseline b_i = (1/(G − 1)) Σ_{j≠i} r_j for rewards grouped G at a time: (N) → (N). Restated
    /// word for word from chapter 1 (PolicyGradient.RlooBaseline, which derives it); a test keeps the two the same.
    /// </summary>
    public static Tensor RlooBaseline(Tensor rewards, int k)
    {
        if (k < 2)
            throw new ArgumentOutOfRangeException(nameof(k), k, "RlooBaseline: leave-one-out needs k ≥ 2 samples");
        if (rewards.dim() != 1 || rewards.shape[0] % k != 0)
            throw new ArgumentException($"RlooBaseline: rewards must have shape (N) with N a multiple of k = {k}, " +
                                        $"got [{string.Join(", ", rewards.shape)}]");
        var grouped = rewards.view(-1, k);                                     // (N/k, k): one prompt per row
        var others = grouped.sum([1], keepdim: true) - grouped;               // (N/k, k): Σ_{j≠i} R_j
        return (others / (k - 1)).reshape(-1);                                 // (N): b_i
    }

    // When all G rewards are equal — every sample right, or every sample wrong — r_i − r̄ = 0 for all i, the std is
    // 0, and Â = 0 / (0 + ε) = 0: the group teaches nothing (only the KL term acts on it), and no NaN appears. Such
    // groups are common at both ends — all-wrong ones while the policy is weak, all-right ones as it improves — so
    // the program logs their share, frac_reward_zero_std. DAPO (Yu et al. 2025) re-samples until the batch has none
    // ("dynamic sampling", --dynamic-sampling: Program.SampleGroups); by default they are kept. The share is counted
    // per group under every --scale-rewards, since Â = 0 in such a group whatever the divisor (TRL, under "batch",
    // tests the whole batch's std instead).

    /// <summary>The share of groups whose G rewards are all equal (so that every Â in them is 0): TRL's
    /// frac_reward_zero_std.</summary>
    public static double ZeroStdFraction(Tensor rewards, int groupSize)
    {
        var r = rewards.to_type(float64).cpu().data<double>().ToArray();
        int groups = r.Length / groupSize, equal = 0;
        for (int g = 0; g < groups; g++)
        {
            bool same = true;
            for (int j = 1; j < groupSize && same; j++) same = r[g * groupSize + j] == r[g * groupSize];
            if (same) equal++;
        }
        return groups == 0 ? 0 : (double)equal / groups;
    }

    // ─── The policy term ───────────────────────────────────────────────────────────────────────────────
    //
    // min[ρ Â, clip(ρ, 1 − ε, 1 + ε) Â] is PPO's clipped surrogate, which chapter 4 derives (PPO.ClippedSurrogate in
    // 04-ppo/Program.cs), with the group advantage in place of GAE. The same samples are used for μ gradient steps
    // (--iterations); ρ measures how far θ has moved from θold on each sampled token, and min/clip removes the
    // incentive to move it beyond 1 ± ε: once a token's ratio is past the edge on the side its advantage favours,
    // its gradient is exactly 0 (ClipFraction below counts such tokens). With μ = 1 the only step is taken at
    // θ = θold, where ρ = 1 and nothing is clipped: the objective is then the plain policy gradient with a group
    // baseline, and its gradient is (1/G) Σ_i Â_i (1/|o_i|) Σ_t ∇log π_θ(o_{i,t}) (∇ρ = ρ ∇log π).

    /// <summary>
    /// PPO's clipped surrogate per token, as a loss, with DAPO's decoupled clip range (chapter 4's
    /// PPO.ClippedSurrogate when ε_low = ε_high): max(−Â ρ, −Â clip(ρ, 1 − ε_low, 1 + ε_high)), ρ = exp(logRatio).
    /// </summary>
    public static Tensor ClippedSurrogate(Tensor logRatio, Tensor advantages, double clipLow, double clipHigh)
    {
        var ratio = logRatio.exp();                                               // ρ_t = π_θ / π_θold
        var unclipped = -advantages * ratio;                                      // −Â ρ
        var clipped = -advantages * ratio.clamp(1 - clipLow, 1 + clipHigh);       // −Â clip(ρ, 1 − ε_low, 1 + ε_high)
        return maximum(unclipped, clipped);                                       // = −min(Â ρ, Â clip(ρ))
    }

    // DAPO's clip-higher (--epsilon-high; Yu et al. 2025, §3.1). With one ε, a token the old policy gave
    // probability 0.01 may rise to 0.012 at most in one batch, one it gave 0.9 to 1.08: the upper clip limits rare
    // tokens far more than common ones, and exploration (entropy) collapses. Raising only the upper edge (ε_high
    // 0.28, ε_low 0.2) lets unlikely good tokens grow faster, and keeps the lower edge where it was, so a bad
    // token is still not pushed to probability 0 in one step.
    //
    // GSPO (--importance-sampling-level sequence; Zheng et al. 2025). The reward is given per completion, yet GRPO
    // corrects per token: each token's ratio is one noisy sample, and over a long answer their product drifts far
    // from 1. GSPO uses one ratio per completion, the geometric mean of its tokens' ratios,
    //
    //   s_i(θ) = ( π_θ(o_i|q) / π_θold(o_i|q) )^{1/|o_i|}  =  exp( (1/|o_i|) Σ_t log ρ_{i,t} ),
    //
    // clipped per completion with the same min/clip, so a whole completion is in or out of the trust region. A mean
    // of |o_i| log-ratios moves far less than one token's: hence GSPO's ε of 3e-4 / 4e-4, about a thousand times
    // smaller than GRPO's 0.2, to clip about as often (the paper reports a clipped share of ≈ 15%).

    /// <summary>GSPO's sequence log-ratio, (1/|o_i|) Σ_t m_{i,t} log ρ_{i,t}: (N, M), (N, M) → (N, 1), the same
    /// for every token of a completion (TRL's importance_sampling_level="sequence").</summary>
    public static Tensor SequenceLogRatio(Tensor logRatio, Tensor mask) =>
        ((logRatio * mask).sum(1) / mask.sum(1).clamp(min: 1)).unsqueeze(1);

    // CISPO (--loss-type cispo; MiniMax-M1, 2025). The clip above zeroes the gradient of every token outside the
    // trust region — in long reasoning, often the rare "reflection" tokens that matter most. CISPO clips the
    // importance WEIGHT instead and never the gradient: each token contributes the REINFORCE term log π_θ Â,
    // weighted by its ratio capped at 1 + ε_high and treated as a constant,
    //
    //   ℓ_{i,t} = −sg( min(ρ_{i,t}, 1 + ε_high) ) · Â_i · log π_θ(o_{i,t}),   ∇ℓ = −sg(min(ρ, 1 + ε_high)) Â ∇log π,
    //
    // so every token keeps a gradient (at θ = θold, ρ = 1, it is the plain policy gradient), and the cap bounds how
    // much an off-policy token can weigh. It is averaged over all tokens, as dapo (TRL's loss_type="cispo").

    /// <summary>CISPO's per-token loss −sg(min(ρ, 1 + ε_high)) Â log π_θ: (N, M) log-probs, (N, M) or (N, 1)
    /// log-ratios, advantages broadcastable → (N, M).</summary>
    public static Tensor CispoLoss(Tensor logp, Tensor logRatio, Tensor advantages, double clipHigh)
    {
        var weight = logRatio.detach().exp().clamp(max: 1 + clipHigh);              // sg(min(ρ, 1 + ε_high))
        return -weight * advantages * logp;
    }

    // ─── The KL term ───────────────────────────────────────────────────────────────────────────────────
    //
    // The second term keeps π_θ near the reference π_ref — the frozen base model. GRPO puts it in the LOSS, per
    // token, instead of into the reward as RLHF-PPO does (chapter 6), so the advantages stay the rule's alone. Its
    // estimator (DeepSeekMath eq. 4) is Schulman's k3, unbiased for the KL and never negative:
    //
    //   D_KL[π_θ ‖ π_ref]_{i,t} ≈ k3 = π_ref/π_θ − log(π_ref/π_θ) − 1 = e^x − x − 1,
    //                                  x = log π_ref(o_{i,t}) − log π_θ(o_{i,t})
    //
    // (E_{π_θ}[e^x] = Σ_a π_ref(a) = 1, so E[k3] = E[−x] = KL; and e^x ≥ 1 + x, so k3 ≥ 0.) Note what its GRADIENT
    // is: ∂k3/∂log π_θ = 1 − e^x, so on tokens drawn from π_θ (μ = 1)
    //
    //   E_{a∼π_θ}[(1 − π_ref(a)/π_θ(a)) ∇log π_θ(a)] = 0 − Σ_a π_ref(a) ∇log π_θ(a) = ∇_θ KL(π_ref ‖ π_θ),
    //
    // the gradient of the KL taken the OTHER way round (at each visited state; the effect of θ on which states are
    // visited is ignored, as in every per-token penalty). It still pulls π_θ towards π_ref; it is just not the
    // gradient of the number it estimates. β = 0.04 is DeepSeekMath's (§4.2).

    /// <summary>
    /// Schulman's k3 estimator of KL(π_θ ‖ π_ref) per sampled token, DeepSeekMath's eq. 4:
    /// k3 = e^x − x − 1 with x = log π_ref − log π_θ. Elementwise, differentiable, ≥ 0. Restated from MinRL's
    /// <see cref="Kl.K3"/> (shared/MinRL/Rollouts.cs), so that this chapter reads alone; a test keeps the two the same.
    /// </summary>
    /// <remarks>Near x = 0, k3 ≈ x²/2 is the difference of numbers near 1: computed in float32 it would keep
    /// only a few digits and could come out a hair below 0. It is computed in float64 (and clamped at 0, where the
    /// exact value is 0 to within rounding), then returned in the inputs' dtype; gradients flow through both.
    /// </remarks>
    public static Tensor K3(Tensor logp, Tensor refLogp)
    {
        var r = (refLogp - logp).to_type(ScalarType.Float64);
        return (r.exp() - 1 - r).clamp(min: 0).to_type(logp.dtype);
    }

    // The KL term's estimator (--kl-estimator). Each of Schulman's estimators is unbiased (k1, k3) or nearly so
    // (k2) for the VALUE of KL(π_θ ‖ π_ref) on tokens sampled from π_θ; in a loss what matters is their GRADIENT.
    // With x = log π_ref − log π_θ on a token a ∼ π_θ (at θ = θold):
    //
    //   k1 = −x            ∇k1 = ∇log π_θ(a)              E[∇k1] = Σ_a ∇π_θ(a) = 0: no pull at all, only noise
    //   k2 = ½ x²          ∇k2 = −x ∇log π_θ(a)           E[∇k2] = ∇_θ KL(π_θ ‖ π_ref): the KL it estimates
    //   k3 = eˣ − x − 1    ∇k3 = (1 − eˣ) ∇log π_θ(a)     E[∇k3] = ∇_θ KL(π_ref ‖ π_θ): the reverse KL (above)
    //
    // (the middle line: E_π[log(π/π_ref) ∇log π] = Σ_a ∇π(a) log(π(a)/π_ref(a)) = ∇KL(π ‖ π_ref), since the
    // Σ_a π ∇log π term that ∇ of the log adds is 0). So k1 in the loss is a KL penalty in name only, k2 is the
    // one whose gradient is that of the KL it reports, and k3, DeepSeekMath's, pulls towards π_ref through the
    // reverse KL. The chapter logs the k3 value whichever the loss uses.

    /// <summary>
    /// The per-token loss ℓ_{i,t} = −min[ρ Â, clip(ρ, 1 − ε_low, 1 + ε_high) Â] + β KL_{i,t}, with
    /// ρ = exp(log π_θ − log π_θold) per token, or GSPO's one ratio per completion; CISPO's −sg(min(ρ, 1 + ε_high))
    /// Â log π_θ in place of the clipped term with <see cref="LossType.Cispo"/>. All inputs but
    /// <paramref name="logp"/> are constants (detached).
    /// </summary>
    /// <param name="logp">(N, M) log π_θ of the sampled tokens, differentiable.</param>
    /// <param name="oldLogp">(N, M) log π_θold: the policy that sampled them.</param>
    /// <param name="refLogp">(N, M) log π_ref: the frozen reference.</param>
    /// <param name="advantages">(N) Â_i, one per completion, broadcast over its tokens.</param>
    /// <param name="clipEpsilon">ε, or ε_low when <paramref name="epsilonHigh"/> is given.</param>
    /// <param name="epsilonHigh">ε_high (DAPO's clip-higher; CISPO's cap); 0 = the same as ε.</param>
    /// <param name="mask">(N, M) completion mask, needed for the sequence-level ratio.</param>
    /// <returns>(N, M); the columns after each completion's <c>&lt;eos&gt;</c> are garbage until masked.</returns>
    public static Tensor PerTokenLoss(Tensor logp, Tensor oldLogp, Tensor refLogp, Tensor advantages,
        double clipEpsilon, double beta, double epsilonHigh = 0, LossType lossType = LossType.Grpo,
        ImportanceSamplingLevel level = ImportanceSamplingLevel.Token, KlEstimator klEstimator = KlEstimator.K3,
        Tensor? mask = null)
    {
        var A = advantages.detach().unsqueeze(1);                                   // (N, 1): Â_i on every token
        double high = epsilonHigh > 0 ? epsilonHigh : clipEpsilon;
        var logRatio = logp - oldLogp.detach();                                     // (N, M): log ρ_{i,t}
        if (level == ImportanceSamplingLevel.Sequence)
            logRatio = SequenceLogRatio(logRatio, mask ?? throw new ArgumentNullException(nameof(mask),
                "PerTokenLoss: the sequence-level ratio needs the completion mask"));    // (N, 1): log s_i
        var perToken = lossType == LossType.Cispo
            ? CispoLoss(logp, logRatio, A, high)                                    // (N, M)
            : ClippedSurrogate(logRatio, A, clipEpsilon, high);                     // (N, M) or (N, 1)
        if (beta != 0) perToken = perToken + beta * Kl.Estimate(klEstimator, logp, refLogp.detach());   // + β · KL
        // GSPO's (N, 1) loss on every token of its completion, so that every level returns (N, M)
        return level == ImportanceSamplingLevel.Sequence ? perToken.expand(logp.shape) : perToken;
    }

    // ─── Three ways to average: --loss-type ────────────────────────────────────────────────────────────
    //
    // Write ℓ_{i,t} = −min[…] + β k3 for the per-token loss and m_{i,t} for the completion mask (1 through the
    // first <eos>). TRL's GRPOTrainer (_compute_loss, loss_type) names the three ways people average it:
    //
    //   grpo      L = (1/N) Σ_i  Σ_t m_{i,t} ℓ_{i,t} / Σ_t m_{i,t}        each COMPLETION weighs the same (the paper)
    //   dapo      L = Σ_i Σ_t m_{i,t} ℓ_{i,t} / Σ_i Σ_t m_{i,t}          each TOKEN weighs the same (DAPO §3.3)
    //   dr-grpo   L = Σ_i Σ_t m_{i,t} ℓ_{i,t} / (N · L_max)             a constant normaliser (Dr. GRPO §3.2)
    //
    // with N = prompts × G completions and L_max = 5, the longest a completion can be. Under `grpo` a token of a
    // short completion weighs more than one of a long completion: a wrong answer (Â < 0) is punished less per
    // token the longer it is, and a right one rewarded more the shorter it is — Dr. GRPO's length bias, which on
    // long chain-of-thought answers lets wrong answers grow. DAPO weights tokens equally; Dr. GRPO divides by a
    // number that does not depend on the samples at all, so the loss is an honest (scaled) sum. (TRL's `dapo`
    // divides by the token count of the whole generation batch across devices and accumulation steps; on one
    // device with one update per batch, as here, that is the token count above — TRL's `bnpo`.) Answers here
    // are 2–5 tokens long, so the three differ less than on long reasoning traces (docs/08-grpo.md compares them).
    //
    // Why the printed loss is ≈ 0 while the model learns. At the first inner iteration θ = θold, so ρ = 1 exactly
    // and the policy term of completion i is −Â_i on each of its tokens. Under `grpo` the loss is then
    // −(1/N) Σ_i Â_i, and every group's advantages sum to zero (r_i − r̄ sums to 0, and dividing a group by one
    // number keeps it so): the policy term is 0 up to rounding, at every step, whatever the model has learned.
    // What is left is β × the KL estimate, which starts at 0 and stays small. Yet the GRADIENT,
    // (1/N) Σ_i Â_i (1/|o_i|) Σ_t ∇log π(o_{i,t}), is not zero: the Â_i cancel, the ∇log π they multiply do not.
    // The loss of a policy-gradient method is a device for getting a gradient from autograd, not a measure of
    // progress — watch grad_norm (logged before clipping) and the reward. In the first step of the test snapshots
    // (tests/Chapters.Tests/snapshots/GrpoTests.*) the loss is 2.5·10⁻⁹ on TorchSharp and 7·10⁻⁹ on MinTorch (the
    // KL is still 0), the gradient norm 5.7 and 4.9. (Under `dapo` and `dr-grpo` long completions weigh more, so
    // the policy term is a small non-zero number; and in the later inner iterations, not logged, ρ has moved and
    // the loss goes below zero: that is what each step gained.)

    /// <summary>
    /// The per-token losses (N, M) averaged into the scalar loss, over the mask's tokens only:
    /// grpo = mean over completions of each one's token mean; dapo = mean over all tokens; dr-grpo = sum over all
    /// tokens ÷ (N · <paramref name="maxCompletionLength"/>). TRL's GRPOTrainer._compute_loss, loss_type
    /// "grpo" / "bnpo" (= "dapo" on one device) / "dr_grpo".
    /// </summary>
    public static Tensor Aggregate(Tensor perToken, Tensor mask, LossType type, int maxCompletionLength)
    {
        var masked = perToken * mask;                                               // (N, M): 0 after each <eos>
        return type switch
        {
            LossType.Grpo => (masked.sum(1) / mask.sum(1).clamp(min: 1)).mean(),    // (N) → scalar
            LossType.Dapo or LossType.Cispo => masked.sum() / mask.sum().clamp(min: 1),
            _ => masked.sum() / (perToken.shape[0] * (double)maxCompletionLength),
        };
    }

    /// <summary>
    /// The share of real tokens whose clipped term is active — where the gradient of the policy term is 0:
    /// ρ &lt; 1 − ε with Â &lt; 0, or ρ &gt; 1 + ε with Â &gt; 0 (TRL's clip_ratio/region_mean). No gradient.
    /// Chapter 6 holds the same text (TRL's PPO, policy/clipfrac_avg).
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

}
