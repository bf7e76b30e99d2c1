// Chapter 7 — DPO: direct preference optimisation (and its IPO, cDPO and Plackett–Luce variants).
//
//     dotnet run -c Release --project 07-dpo                               # the default run (< 60 s)
//     dotnet run -c Release --project 07-dpo -- --loss ipo                  # a variant: ipo, cdpo, plackett-luce
//     dotnet run -c Release --project 07-dpo -- --help                      # every option
//
// ─── The setting (chapters 5–7 share it) ─────────────────────────────────────────────────────────────
//
// A prompt x = "<bos>47+9=" and completions y such as "56<eos>", "56.<eos>", "57.<eos>". Somewhere there is
// a judge whose taste we want the policy to learn, but it only ever answers one kind of question: "which of
// these two do you prefer?". Here the judge is simulated (MinRL's PreferenceWorld), so we also know the
// truth it hides — the gold score
//
//     gold(x, y) = 1[y is the correct sum] + 0.3 · 1[y ends in "."]        (0 if y is malformed),
//
// and its answers are noisy the way people's are: it prefers y₁ to y₂ with the Bradley–Terry probability
// σ((gold₁ − gold₂)/τ), τ = 0.1. A pair that differs only in style is labelled the gold way 95% of the
// time; a tie (same gold) is a coin flip.
//
// The data. Before training, the base model (the SFT policy every chapter starts from) answers each of
// 4,096 training prompts twice at T = 1; pairs whose two answers are identical are dropped, and the judge
// labels the rest: a fixed set D = {(x, y_w, y_l)} of ≈ 3,700 preference pairs, y_w the winner (the run prints
// the shares of ties, style-only, correctness-only and both-ways pairs). That is the whole of DPO's contact with
// the world: it never samples from the policy it trains, and never sees a reward — it is offline, like supervised
// learning (summary.json's samples_generated counts the 2 × 4,096 base samples behind the pairs, as chapters 5
// and 6 count theirs; none is drawn from the policy being trained).
//
// ─── The objective ───────────────────────────────────────────────────────────────────────────────────
//
// Chapter 6 fits a reward model r_φ to D and then maximises, with PPO, the KL-regularised objective
//
//     max_π  E_{x∼D, y∼π(·|x)} [ r(x, y) ]  −  β · KL( π(·|x) ‖ π_ref(·|x) ).                          (1)
//
// DPO (Rafailov et al. 2023) solves (1) in closed form — its optimal policy is π_ref re-weighted by exp(r/β) —
// and reads the solution backwards: every reward is, up to a term in x alone, β log π*(y|x)/π_ref(y|x), and that
// term cancels in the Bradley–Terry probability of a preference. So instead of fitting a reward model and then a
// policy, fit the policy directly, by maximising the likelihood of the labels (DirectPreference.DpoLosses
// derives it):
//
//     L_DPO(θ) = −E_{(x, y_w, y_l)∼D} log σ( β [ (log π_θ(y_w|x) − log π_ref(y_w|x))
//                                             − (log π_θ(y_l|x) − log π_ref(y_l|x)) ] ).               (4)
//
//     in code:  h = (logp_chosen − ref_chosen) − (logp_rejected − ref_rejected);  loss = −logsigmoid(β·h)
//
// log π(y|x) is the log-probability of the whole completion (DirectPreference.CompletionLogProbs), and β sets how
// far from π_ref the implicit reward r̂_θ(x, y) = β log π_θ(y|x)/π_ref(y|x) lets the policy go: the same β as in (1).
//
// The variants (--loss), each derived above the function that computes it:
//   dpo            (4): DirectPreference.DpoLosses.
//   cdpo           "conservative DPO" (Mitchell 2023), labels flipped with probability ε:
//                  L = −(1 − ε) log σ(βh) − ε log σ(−βh) (TRL: label_smoothing = ε): DirectPreference.DpoLosses.
//   ipo            Azar et al. 2023: L = (h − 1/(2β))², on per-token mean log-probs: DirectPreference.IpoLosses.
//   plackett-luce  Rafailov et al. 2023, appendix A.3: rankings of K > 2 completions, the Plackett–Luce likelihood
//                  with the implicit reward: DirectPreference.PlackettLuceLosses.
//   hinge          SLiC (Zhao et al. 2023): max(0, 1 − βh), which stops pushing a pair once βh ≥ 1: HingeLosses.
//   simpo          SimPO (Meng et al. 2024): no π_ref in the loss; the reward is β times the policy's mean log-prob
//                  per token, and the winner must lead by a margin γ: SimpoLosses (use --beta 2, the paper's).
//   orpo           ORPO (Hong et al. 2024): no π_ref; the winner's NLL (SFT) plus λ times a log-odds-ratio
//                  penalty: OrpoLosses.
//   kto            KTO (Ethayarajh et al. 2024): each answer judged alone, winners as desirable and losers as
//                  undesirable, against a reference point z₀ estimated on mismatched pairs: KtoLosses.
// Every loss trains the policy alone; π_ref stays in memory for the KL the chapter reports, and all but simpo
// and orpo also read its log-probs in the loss (summary.json: reference_in_loss).
//
// ─── The loop ────────────────────────────────────────────────────────────────────────────────────────
//
//   1. data     the base model answers --train-prompts prompts twice at T = 1 (K times for plackett-luce), and
//               the judge labels the answers: D, made once, before training
//   2. π_ref    its log-probs of every completion in D, computed once (it is frozen)
//   3. batch    --batch-size tuples from shuffled passes over D, one forward pass of the policy
//   4. loss     log π summed over the completion tokens (averaged for ipo), then the chosen --loss
//   5. update   one AdamW step, the gradient norm clipped to --max-grad-norm
//   6. report   the metrics below; every --eval-every steps, the held-out evaluation
//
// ─── What is logged (TRL's DPOTrainer names) ─────────────────────────────────────────────────────────
//
// Per step, on the batch: the loss; rewards/chosen = mean β(log π_θ(y_w) − log π_ref(y_w)) (the implicit
// reward of the winners), rewards/rejected (of the losers), rewards/accuracies = share of pairs with
// rewards/chosen > rewards/rejected (strictly: 0 at step 1, where π_θ = π_ref), rewards/margins = their
// mean difference; logps/chosen and logps/rejected (summed log-probs under π_θ); the gradient norm. For
// Plackett–Luce "chosen" is the top of each ranking and "rejected" its bottom. Every --eval-every steps, on the
// 512 held-out prompts: the gold metric — the mean gold score of the policy's own T = 1 samples — with its two
// parts ('.' share and correctness), the well-formed share, and KL(π_θ ‖ π_ref) per completion (k3 per token,
// summed, on those samples); and the implicit reward model's accuracy on held-out pairs (pairs built the same way
// from the held-out prompts). Output in runs/07-dpo/seed<seed>/: metrics.csv, curves.svg, summary.json.
//
// Key findings: DPO learns the '.' within ≈ 50 steps (gold 0.36 → 0.56–0.61, seeds 1–3); with the DPO paper's
// β = 0.1 the policy then drifts at twice the KL and loses arithmetic, hence β 0.5 here; and the winners'
// log-likelihood falls while the preference accuracy rises (DirectPreference.DpoLosses says why). Hinge and KTO
// gain as much; the reference-free losses less: SimPO drifts twice as far, ORPO barely leaves the base.
// Results, experiments and curves: docs/07-dpo.md
//
// References: R. Rafailov, A. Sharma, E. Mitchell, S. Ermon, C. D. Manning, C. Finn, "Direct Preference
// Optimization: Your Language Model is Secretly a Reward Model", NeurIPS 2023 (arXiv:2305.18290), incl.
// appendix A.3 (Plackett–Luce). M. G. Azar et al., "A General Theoretical Paradigm to Understand Learning
// from Human Preferences", 2023 (arXiv:2310.12036) — IPO. E. Mitchell, "A note on DPO with noisy
// preferences & relationship to IPO", 2023 — cDPO. Hugging Face TRL, DPOTrainer (trl/trainer/dpo_trainer.py:
// dpo_loss, get_batch_logps, the rewards/* metric names).
using System.Diagnostics;
using MinRL;
using TorchSharp;
using static TorchSharp.torch;

namespace Dpo;

/// <summary>Which preference loss trains the policy (each is derived above its function in
/// <see cref="DirectPreference"/>).</summary>
public enum LossKind
{
    /// <summary>−log σ(β h): Rafailov et al. 2023, eq. 7 (TRL's "sigmoid").</summary>
    Dpo,
    /// <summary>−(1 − ε) log σ(β h) − ε log σ(−β h): conservative DPO, labels flipped with probability ε.
    /// </summary>
    Cdpo,
    /// <summary>(h − 1/(2β))² on length-normalised log-probs: Azar et al. 2023, eq. 17.</summary>
    Ipo,
    /// <summary>The Plackett–Luce likelihood of rankings of K completions: Rafailov et al. 2023, appendix A.3.
    /// </summary>
    PlackettLuce,
    /// <summary>max(0, 1 − β h): SLiC's hinge, Zhao et al. 2023 (TRL's "hinge").</summary>
    Hinge,
    /// <summary>−log σ(β (mean log π_θ(y_w) − mean log π_θ(y_l)) − γ): SimPO, Meng et al. 2024; no π_ref.</summary>
    Simpo,
    /// <summary>NLL of y_w − λ log σ(log odds ratio): ORPO, Hong et al. 2024; no π_ref.</summary>
    Orpo,
    /// <summary>Each answer alone against a reference point: KTO, Ethayarajh et al. 2024.</summary>
    Kto,
}

/// <summary>The chapter's hyper-parameters: one command-line option each (<c>--beta 0.1</c>).</summary>
public sealed record Args : LabArgs
{
    [Help("optimiser steps, ≈ 3.4 passes over the ≈ 3,700 pairs at the default batch size", Min = 1)]
    public override int Steps { get; init; } = 200;

    [Help("the loss: dpo, cdpo (label smoothing), ipo (squared, length-normalised), plackett-luce (rankings " +
          "of --ranking-size), hinge (SLiC), simpo and orpo (no reference model), or kto (answers judged alone)")]
    public LossKind Loss { get; init; } = LossKind.Dpo;

    [Help("β, the KL strength of the implicit reward β·log π/π_ref " +
          "(tuned here: docs/07-dpo.md; the DPO paper's and TRL's default: 0.1)", Min = 0)]
    public double Beta { get; init; } = 0.5;

    [Help("ε of --loss cdpo, the assumed probability that a label is flipped " +
          "(Mitchell 2023's example: 0.1; TRL's label_smoothing)", Min = 0, Max = 0.5)]
    public double LabelSmoothing { get; init; } = 0.1;

    [Help("γ of --loss simpo, the target margin of the length-normalised reward " +
          "(SimPO paper: 0.5–1.6 with β 2–2.5; TRL: γ/β = 0.5)", Min = 0)]
    public double SimpoGamma { get; init; } = 1.0;

    [Help("λ of --loss orpo, the weight of the odds-ratio term beside the chosen answer's NLL " +
          "(ORPO paper and TRL's beta: 0.1)", Min = 0)]
    public double OrpoLambda { get; init; } = 0.1;

    [Help("K, the completions ranked per prompt for --loss plackett-luce, where K = 2 would be DPO (not tuned)",
          Min = 2, Max = 8)]
    public int RankingSize { get; init; } = 4;

    [Help("pairs (or rankings) per optimiser step (the DPO paper's batch size: 64)", Min = 1)]
    public int BatchSize { get; init; } = 64;

    [Help("AdamW learning rate (the book's PyTorch prototype's: 1e-4)", Min = 0)]
    public double LearningRate { get; init; } = 1e-4;

    [Help("AdamW weight decay, 0 because decay pulls towards 0 rather than towards π_ref " +
          "(the Hugging Face Trainer's default: 0)", Min = 0)]
    public double WeightDecay { get; init; } = 0.0;

    [Help("the global gradient norm is clipped to this before each step, 0 = no clipping (the DPO authors' code, " +
          "eric-mitchell/direct-preference-optimization config.yaml: max_grad_norm 10)", Min = 0)]
    public double MaxGradNorm { get; init; } = 10.0;

    [Help("training prompts the base model answers to make the preference data " +
          "(2 answers each, K for plackett-luce)", Min = 8, Max = 9488)]
    public int TrainPrompts { get; init; } = 4096;

    [Help("evaluate on the 512 held-out prompts every this many steps (0 = only at the start and the end)",
          Min = 0)]
    public int EvalEvery { get; init; } = 50;
}

public static class Program
{
    public static int Main(string[] args) => Lab.Run<Args>(args, "07-dpo",
        "DPO on a+b= preferences: the policy is its own reward model", Train);

    /// <summary>The whole chapter: make the preference data, score it once under π_ref, then loss → update →
    /// report, repeated.</summary>
    public static int Train(Args args)
    {
        int steps = args.StepsOr(quickSteps: 80);
        int K = args.Loss == LossKind.PlackettLuce ? args.RankingSize : 2;
        const int P = ArithmeticTask.PromptLength, M = ArithmeticTask.MaxCompletionLength;

        // ─── the policy, its frozen reference, the task, the judge ───────────────────────────────────
        var task = new ArithmeticTask();                              // 9,488 training problems, 512 held out
        var world = new PreferenceWorld();                 // gold = 1[correct] + 0.3·1[ends in "."], τ = 0.1
        var policy = BaseModel.Load(new BaseModelConfig());
        var reference = BaseModel.Load(new BaseModelConfig(), TextWriter.Null);
        reference.eval();
        foreach (var p in reference.parameters()) p.requires_grad = false;

        // ─── 1. the preference data: base samples, labelled by the judge (offline, before training) ──
        var clock = Stopwatch.StartNew();
        var trainPrompts = task.Train.Take(args.TrainPrompts).ToArray();
        var train = Preferences.Make(reference, world, trainPrompts, K, seed: args.Seed);
        var heldOut = Preferences.Make(reference, world, task.Eval, K, seed: args.Seed + 1_000_003);
        Lab.Print($"preference data: {train.Count} {(K == 2 ? "pairs" : $"rankings of {K}")} " +
                  $"from {trainPrompts.Length} training prompts ({Describe(train)}), {heldOut.Count} held out; " +
                  $"made in {Lab.Fmt(clock.Elapsed.TotalSeconds)} s");

        // ─── 2. π_ref's log-probs of every completion, computed once ─────────────────────────────────
        // π_ref is frozen, so its log-probabilities of D's completions never change: they are computed ONCE, before
        // training, and kept in a table (TRL's precompute_ref_log_probs). A training step runs one model.
        var refTrain = Preferences.TokenLogProbs(reference, train);  // (N, K, M), frozen for the whole run
        var refHeldOut = Preferences.TokenLogProbs(reference, heldOut);

        var optimizer = optim.AdamW(policy.parameters(), lr: args.LearningRate, weight_decay: args.WeightDecay);
        var order = new Epochs(train.Count, new SplitMix64(args.Seed));               // shuffled passes over the data

        using var log = new MetricsLog(Path.Combine(args.Out, "metrics.csv"),
            "loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
            "logps/chosen", "logps/rejected",
            "grad_norm", "eval_gold", "eval_period", "eval_accuracy", "eval_well_formed", "eval_kl",
            "eval_rewards/accuracies", "eval_rewards/margins");
        var baseEval = Evaluate(policy, reference, task.Eval);
        var baseHeldOut = HeldOutRewards(policy, heldOut, refHeldOut, args);
        log.Add(0, [.. baseEval.Metrics(), .. baseHeldOut.Metrics("eval_")]);
        Lab.Print($"base model, held-out T = 1 samples: gold {Lab.Fmt(baseEval.Gold)}, " +
                  $"'.' share {Lab.Fmt(baseEval.Period)}, accuracy {Lab.Fmt(baseEval.Accuracy)}");

        var final = baseEval;
        var finalHeldOut = baseHeldOut;
        var trainClock = Stopwatch.StartNew();
        using (var progress = Lab.Progress(steps, $"{LossName(args.Loss)}",
                   "loss", "rewards/accuracies", "eval_gold", "eval_kl"))
        {
            for (int step = 1; step <= steps; step++)
            {
                using var scope = NewDisposeScope();   // TorchSharp: this step's tensors are freed at its end
                // ─── 3. a batch of B preference tuples, one forward pass of the policy ───────────────
                var rows = order.Next(args.BatchSize);                                      // B row indices into D
                var batch = train.Select(rows);
                var refTok = refTrain.index_select(0, rows);                                // (B, K, M)
                policy.train();
                var tok = Rollouts.TokenLogProbs(policy, batch.Sequences.reshape(-1, P + M), P)   // (B·K, M)
                                  .reshape(-1, K, M);                                       // (B, K, M)

                // ─── 4. the loss: log π summed over completion tokens (averaged for IPO, SimPO, ORPO) ──
                bool average = DirectPreference.Averages(args.Loss);
                // log π_θ(y_k|x) and log π_ref(y_k|x) of the K completions of each tuple
                var logp = DirectPreference.CompletionLogProbs(tok, batch.Masks, average);        // (B, K)
                var refLogp = DirectPreference.CompletionLogProbs(refTok, batch.Masks, average);  // (B, K)
                // KTO's reference point z₀: the KL on mismatched pairs (each prompt with the next tuple's winner).
                Tensor? z0 = args.Loss == LossKind.Kto ? KtoReferencePoint(policy, reference, batch) : null;
                var losses = DirectPreference.Losses(args.Loss, logp, refLogp, args.Beta, args.LabelSmoothing,
                    args.SimpoGamma, args.OrpoLambda, z0);                                    // (B), (2B) for KTO
                var loss = losses.mean();
                Lab.CheckFinite(loss, "loss", step);

                // ─── 5. update ──────────────────────────────────────────────────────────────────────
                optimizer.zero_grad();
                loss.backward();
                double gradNorm = Grad.ClipNorm(policy.parameters(), args.MaxGradNorm);   // the norm before clipping
                optimizer.step();

                // ─── 6. report ──────────────────────────────────────────────────────────────────────
                var stats = DirectPreference.RewardStats(logp, refLogp, args.Beta);
                var sums = DirectPreference.CompletionLogProbs(tok.detach(), batch.Masks, average: false);   // (B, K)
                List<(string, double)> metrics =
                [
                    ("loss", loss.item<float>()), .. stats.Metrics(""),
                    ("logps/chosen", DirectPreference.Place(sums, 0).mean().item<float>()),
                    ("logps/rejected", DirectPreference.Place(sums, K - 1).mean().item<float>()),
                    ("grad_norm", gradNorm),
                ];
                if (step == steps || args.EvalEvery > 0 && step % args.EvalEvery == 0)
                {
                    final = Evaluate(policy, reference, task.Eval);
                    finalHeldOut = HeldOutRewards(policy, heldOut, refHeldOut, args);
                    metrics.AddRange(final.Metrics());
                    metrics.AddRange(finalHeldOut.Metrics("eval_"));
                }
                log.Add(step, [.. metrics]);
                progress.Update(step, [.. metrics]);
            }
        }
        double trainSeconds = trainClock.Elapsed.TotalSeconds;

        var plot = new SvgPlot($"07-dpo — {LossName(args.Loss)}, β {Lab.Fmt(args.Beta)}, seed {args.Seed}")
            { Smoothing = 0.9 };
        plot.Add("gold of the policy's samples (held out, T = 1)", log.Dots("eval_gold")).HLine(baseEval.Gold, "base");
        plot.Add("'.' share and correctness (held out)",
            log.Dots("eval_period", "'.' share"), log.Dots("eval_accuracy", "correct"));
        plot.Add("implicit rewards β log π/π_ref (batch)",
            log.Series("rewards/chosen", label: "chosen"), log.Series("rewards/rejected", label: "rejected"));
        plot.Add("preference accuracy of the implicit reward", log.Series("rewards/accuracies", label: "batch"),
            log.Dots("eval_rewards/accuracies", "held-out pairs")).HLine(train.NoiseCeiling, "noise ceiling");
        plot.Add("log π_θ of the completions (nats, batch)",
            log.Series("logps/chosen", label: "chosen"), log.Series("logps/rejected", label: "rejected"));
        plot.Add("KL to reference (nats / completion)", log.Dots("eval_kl"));
        plot.Write(Path.Combine(args.Out, "curves.svg"));

        Lab.Finish(new RunSummary
        {
            Metric = "held-out gold score (sampled, T = 1)",
            Base = baseEval.Gold,
            Final = final.Gold,
            Kl = final.Kl,
            Extra =
            {
                ["loss"] = LossName(args.Loss),
                ["beta"] = args.Beta,
                ["period_base"] = baseEval.Period,
                ["period_final"] = final.Period,
                ["accuracy_base"] = baseEval.Accuracy,
                ["accuracy_final"] = final.Accuracy,
                ["well_formed_final"] = final.WellFormed,
                ["heldout_pair_accuracy"] = finalHeldOut.Accuracy,
                ["heldout_style_only_accuracy"] =
                    HeldOutAccuracyOf(policy, heldOut, refHeldOut, args, PairKind.StyleOnly),
                ["heldout_correctness_only_accuracy"] =
                    HeldOutAccuracyOf(policy, heldOut, refHeldOut, args, PairKind.CorrectnessOnly),
                ["noise_ceiling"] = train.NoiseCeiling,
                ["kl_estimator"] = "k3 per token, summed over the completion",
                ["models_held"] = 2,                                  // π_θ and π_ref (for the reported KL)
                ["reference_in_loss"] = args.Loss is not (LossKind.Simpo or LossKind.Orpo),
                ["trainable_params"] = policy.NumParameters(),
                ["samples_generated"] = (long)trainPrompts.Length * K,   // base samples behind the data (offline)
                ["pairs"] = train.Count,
                ["pairs_source"] = $"{K} T=1 samples of the base model per training prompt " +
                                   $"({trainPrompts.Length} prompts), " +
                                   (K == 2 ? "identical pairs dropped, labelled by Bradley–Terry on gold (τ 0.1)"
                                           : "prompts with a repeated completion dropped, " +
                                             "ranked by Plackett–Luce on gold (τ 0.1)"),
                ["steps"] = steps,
                ["epochs"] = (double)steps * args.BatchSize / train.Count,
                ["train_s"] = trainSeconds,
                ["ms_per_step"] = 1000 * trainSeconds / steps,
            },
        });
        return 0;
    }

    // ------------------------------------------------------------------ evaluation

    /// <summary>What the policy's own samples on the held-out prompts are worth: one T = 1 completion per prompt
    /// (the same random numbers every time), scored by the gold scorer and compared with the reference.</summary>
    public sealed record PolicyEval(double Gold, double Period, double Accuracy, double WellFormed, double Kl)
    {
        public (string, double)[] Metrics() =>
            [("eval_gold", Gold), ("eval_period", Period), ("eval_accuracy", Accuracy),
             ("eval_well_formed", WellFormed), ("eval_kl", Kl)];
    }

    /// <summary>Samples the held-out prompts once at T = 1 and measures gold, its parts, and KL(π_θ ‖ π_ref) per
    /// completion (k3 per token, summed over the completion's tokens, averaged over prompts).</summary>
    public static PolicyEval Evaluate(TinyGpt policy, TinyGpt reference, IReadOnlyList<Problem> problems)
    {
        using var scope = NewDisposeScope();   // TorchSharp: frees the rollouts and their log-probs on return
        using var _ = no_grad();
        var rollout = Rollouts.Generate(policy, ArithmeticTask.EncodePrompts(problems),
            ArithmeticTask.MaxCompletionLength, generator: new Generator(BaseModel.EvalSeed));
        var measured = ArithmeticTask.Measure(problems, rollout.Completions);
        double gold = new PreferenceWorld().MeanGold(problems, rollout.Completions);
        var logp = Rollouts.TokenLogProbs(policy, rollout);                    // (N, M)
        var refLogp = Rollouts.TokenLogProbs(reference, rollout);              // (N, M)
        double kl = (Kl.K3(logp, refLogp) * rollout.CompletionMask).sum(1).mean().ToDouble();
        return new PolicyEval(gold, measured.Period, measured.Accuracy, measured.WellFormed, kl);
    }

    /// <summary>The implicit reward model's statistics on the held-out preference data.</summary>
    private static RewardStats HeldOutRewards(TinyGpt policy, Preferences data, Tensor refTok, Args args)
    {
        using var _ = no_grad();
        var logp = Preferences.CompletionLogProbs(policy, data, DirectPreference.Averages(args.Loss));
        var refLogp = DirectPreference.CompletionLogProbs(refTok, data.Masks, DirectPreference.Averages(args.Loss));
        return DirectPreference.RewardStats(logp, refLogp, args.Beta);
    }

    /// <summary>Held-out accuracy of the implicit reward on the pairs of one kind (NaN for rankings or no such
    /// pair).</summary>
    private static double HeldOutAccuracyOf(TinyGpt policy, Preferences data, Tensor refTok, Args args, PairKind kind)
    {
        if (data.Kinds is null) return double.NaN;
        var rows = Enumerable.Range(0, data.Count).Where(i => data.Kinds[i] == kind).Select(i => (long)i).ToArray();
        if (rows.Length == 0) return double.NaN;
        var index = tensor(rows, [rows.Length]);
        return HeldOutRewards(policy, data.Select(index), refTok.index_select(0, index), args).Accuracy;
    }

    private static string Describe(Preferences d)
    {
        if (d.Kinds is null) return $"noise ceiling of adjacent places {Lab.Fmt(d.NoiseCeiling)}";
        string Share(PairKind k) => Lab.Fmt((double)d.Kinds.Count(x => x == k) / d.Count);
        return $"ties {Share(PairKind.Tie)}, style only {Share(PairKind.StyleOnly)}, " +
               $"correctness only {Share(PairKind.CorrectnessOnly)}, " +
               $"both {Share(PairKind.Both)}; noise ceiling {Lab.Fmt(d.NoiseCeiling)}";
    }

    /// <summary>The option's spelling on the command line.</summary>
    public static string LossName(LossKind loss) => loss switch
    {
        LossKind.Dpo => "dpo",
        LossKind.Cdpo => "cdpo",
        LossKind.Ipo => "ipo",
        LossKind.PlackettLuce => "plackett-luce",
        LossKind.Hinge => "hinge",
        LossKind.Simpo => "simpo",
        LossKind.Orpo => "orpo",
        _ => "kto",
    };

    /// <summary>
    /// KTO's reference point for a batch: each prompt x_i paired with the next tuple's winner y_{i+1} (TRL's KL
    /// dataset shifts the completions the same way), scored by both models without gradient, then
    /// <see cref="DirectPreference.KtoReferencePoint"/>. One more forward pass of each model per step.
    /// </summary>
    public static Tensor KtoReferencePoint(TinyGpt policy, TinyGpt reference, Preferences batch)
    {
        const int P = ArithmeticTask.PromptLength, M = ArithmeticTask.MaxCompletionLength;
        using var _ = no_grad();
        long B = batch.Sequences.shape[0];
        var winners = batch.Sequences.narrow(1, 0, 1).squeeze(1);                  // (B, P + M): x_i, y_w,i
        var next = tensor(Enumerable.Range(0, (int)B).Select(i => (long)((i + 1) % B)).ToArray(), [B]);
        var mismatched = cat([winners.narrow(1, 0, P), winners.index_select(0, next).narrow(1, P, M)], 1);
        var mask = batch.Masks.narrow(1, 0, 1).squeeze(1).index_select(0, next);   // (B, M)
        var policyLogp = DirectPreference.CompletionLogProbs(Rollouts.TokenLogProbs(policy, mismatched, P), mask,
            average: false);                                                          // (B)
        var refLogp = DirectPreference.CompletionLogProbs(Rollouts.TokenLogProbs(reference, mismatched, P), mask,
            average: false);                                                          // (B)
        return DirectPreference.KtoReferencePoint(policyLogp, refLogp);
    }
}

/// <summary>Implicit-reward statistics of a batch (TRL's rewards/* metrics); "chosen" is the first place of each
/// tuple and "rejected" the last.</summary>
public sealed record RewardStats(double Chosen, double Rejected, double Accuracy, double Margin)
{
    public (string, double)[] Metrics(string prefix) =>
        [($"{prefix}rewards/chosen", Chosen), ($"{prefix}rewards/rejected", Rejected),
         ($"{prefix}rewards/accuracies", Accuracy), ($"{prefix}rewards/margins", Margin)];
}

/// <summary>The algorithm's pure functions, pinned by tests/Chapters.Tests/DpoTests.cs.</summary>
public static class DirectPreference
{
    /// <summary>
    /// log π(y|x) of each completion from its per-token log-probs. For DPO, the log-probability of the WHOLE
    /// completion, Σ_t mask_t · log π(y_t | x, y_&lt;t), summed over its tokens up to and including
    /// <c>&lt;eos&gt;</c> (the mask drops the padding after it); for IPO, when <paramref name="average"/>, that sum
    /// divided by the number of real tokens (TRL's average_log_prob). (…, M) log-probs and a mask of the same
    /// shape → (…).
    /// </summary>
    public static Tensor CompletionLogProbs(Tensor tokenLogProbs, Tensor mask, bool average)
    {
        var sum = (tokenLogProbs * mask).sum(-1);                                 // (…)
        return average ? sum / mask.sum(-1).clamp(min: 1) : sum;
    }

    /// <summary>
    /// h = (log π_θ(y_w) − log π_ref(y_w)) − (log π_θ(y_l) − log π_ref(y_l)): how much more the policy than the
    /// reference prefers the winner, in nats (TRL's "logits"). (B) each → (B).
    /// </summary>
    public static Tensor LogRatioMargin(Tensor policyChosen, Tensor policyRejected, Tensor refChosen,
        Tensor refRejected) => (policyChosen - refChosen) - (policyRejected - refRejected);

    // ─── From the RLHF objective to a classification loss ──────────────────────────────────────────────
    //
    // The header's objective (1) can be solved in closed form. For one prompt x, write it as a sum over
    // completions and bring it under one logarithm:
    //
    //   Σ_y π(y) [ r(y) − β log(π(y)/π_ref(y)) ]  =  −β Σ_y π(y) log[ π(y) / (π_ref(y) e^{r(y)/β}) ]
    //                                             =  −β KL( π ‖ π* )  +  β log Z(x),
    //
    //   π*(y|x) = π_ref(y|x) · exp(r(x, y)/β) / Z(x),       Z(x) = Σ_y π_ref(y|x) exp(r(x, y)/β).            (2)
    //
    // Z(x) does not depend on π, and KL ≥ 0 with equality only at π = π* (Gibbs' inequality): the optimal policy
    // of (1) is the reference re-weighted by exp(reward/β). Now read (2) backwards — solve it for r:
    //
    //   r(x, y) = β log( π*(y|x) / π_ref(y|x) )  +  β log Z(x).                                            (3)
    //
    // Every reward function is, up to a term that depends on x alone, the log-ratio of its optimal policy to the
    // reference — the "implicit reward" r̂_θ(x, y) = β log π_θ(y|x)/π_ref(y|x) of a policy π_θ. And the preference
    // model only ever looks at reward DIFFERENCES on the same prompt, where β log Z(x) cancels:
    //
    //   P(y_w ≻ y_l | x) = σ( r(x, y_w) − r(x, y_l) )                                 (Bradley–Terry)
    //                    = σ( β log π*(y_w|x)/π_ref(y_w|x)  −  β log π*(y_l|x)/π_ref(y_l|x) ).
    //
    // So put π_θ in the place of π* and maximise the likelihood of the labels — binary cross-entropy, the
    // reward-model loss of chapter 5 with r̂_θ as the reward model: the header's (4), −log σ(βh) per pair, with h
    // the LogRatioMargin above.
    //
    // What the gradient does (differentiate −log σ(βh), σ' = σ(1 − σ)):
    //
    //   ∇_θ L = −β · σ( r̂_θ(y_l) − r̂_θ(y_w) ) · [ ∇ log π_θ(y_w|x) − ∇ log π_θ(y_l|x) ].
    //
    // Raise the winner, lower the loser — weighted by σ(r̂_l − r̂_w), the probability the implicit reward model
    // gives to the WRONG order. Pairs it already ranks right by a wide margin stop mattering; that weight is what
    // keeps DPO from the degenerate "unlikelihood" solution of lowering y_l without limit.
    //
    // Why log π(y_w) can fall while the accuracy rises. The loss sees only the difference h of two log-ratios, so
    // it is indifferent to moving both log-probs down together; what it asks is that y_l fall FASTER than y_w. And
    // the two are tied together: here y_w and y_l usually share their digits ("56.<eos>" vs "56<eos>" — a
    // style-only pair), so the gradient that lowers y_l lowers the shared prefix "56" for y_w too, and the
    // probability that leaves both goes to completions that are in neither (other sums, other styles). Summed over
    // a dataset in which most completions appear both as winners and as losers of different pairs, the usual
    // outcome is that logps/chosen and logps/rejected both fall, the rejected faster — margins and accuracy up,
    // chosen likelihood down, as the default run shows (docs/07-dpo.md), and far more so at β = 0.1, where the
    // probability that leaves the data lands on completions no pair covered and correctness falls. It is why
    // DPO's log-likelihood of the chosen completions is not a progress measure, and the motivation for variants
    // that add an SFT term on y_w (RPO; "DPO-positive").
    //
    // cdpo, "conservative DPO" (Mitchell 2023): if each label is flipped with probability ε, the likelihood of the
    // observed label is (1 − ε)σ(βh) + ε σ(−βh); its cross-entropy surrogate is
    //
    //   L = −(1 − ε) log σ(βh) − ε log σ(−βh)                                        (TRL: label_smoothing = ε).
    //
    // (4) is minimised only as h → ∞; this one at the finite βh = log((1 − ε)/ε) (2.2 for ε = 0.1): it stops
    // pushing pairs that are already well separated.

    /// <summary>
    /// The DPO loss of each pair, −log σ(β h) (Rafailov et al. 2023, eq. 7); with label smoothing ε &gt; 0 the
    /// conservative form −(1 − ε) log σ(β h) − ε log σ(−β h) (Mitchell 2023; TRL's label_smoothing). (B) → (B).
    /// </summary>
    public static Tensor DpoLosses(Tensor policyChosen, Tensor policyRejected, Tensor refChosen, Tensor refRejected,
        double beta, double labelSmoothing = 0.0)
    {
        var h = LogRatioMargin(policyChosen, policyRejected, refChosen, refRejected);   // (B)
        var losses = -nn.functional.logsigmoid(beta * h);                            // −log σ(βh)
        if (labelSmoothing == 0) return losses;
        return losses * (1 - labelSmoothing) - nn.functional.logsigmoid(-beta * h) * labelSmoothing;
    }

    // ipo, Azar et al. 2023 (ΨPO with Ψ = identity). With deterministic or near-deterministic labels, (4) drives
    // h → ∞ whatever β is, and the KL leash stops holding. IPO instead regresses h onto a finite target,
    //
    //   L = ( h − 1/(2β) )²                                                    (their eq. 17, β = their τ),
    //
    // with log π the MEAN per-token log-prob of a completion, as in TRL (average_log_prob). At the default β = 0.5
    // the target is a margin of 1 nat per token.

    /// <summary>
    /// The IPO loss of each pair, (h − 1/(2β))² (Azar et al. 2023, eq. 17, β = their τ; TRL's "ipo"). Pass
    /// length-normalised log-probs (<see cref="CompletionLogProbs"/> with average: true), as TRL does. (B) → (B).
    /// </summary>
    public static Tensor IpoLosses(Tensor policyChosen, Tensor policyRejected, Tensor refChosen, Tensor refRejected,
        double beta)
    {
        var h = LogRatioMargin(policyChosen, policyRejected, refChosen, refRejected);   // (B)
        return (h - 1 / (2 * beta)).pow(2);
    }

    // plackett-luce, Rafailov et al. 2023, appendix A.3: rankings of K > 2 completions τ(1) ≻ … ≻ τ(K). The
    // Plackett–Luce model picks the best with probability ∝ exp(r), then the best of the rest, and so on; with the
    // implicit reward r̂ = β log π_θ/π_ref, Z(x) again cancels:
    //
    //   L = −Σ_{k=1..K} log [ exp(r̂_τ(k)) / Σ_{j=k..K} exp(r̂_τ(j)) ].
    //
    // For K = 2 it is (4). The data: K base samples per prompt (prompts with a repeated completion dropped), ranked
    // by the judge's Plackett–Luce draw at the same τ (Preferences.Make).

    /// <summary>
    /// The Plackett–Luce loss of each ranking (Rafailov et al. 2023, appendix A.3): with r̂_k = β(log π_θ(y_k) −
    /// log π_ref(y_k)) and the completions in ranked order (best first),
    ///
    ///     L = −Σ_{k=1..K} [ r̂_k − log Σ_{j=k..K} exp(r̂_j) ].
    ///
    /// The k = K term is always 0 (one completion left: it is picked with probability 1). For K = 2 this is
    /// −log σ(r̂_1 − r̂_2), the DPO loss. (B, K) log-probs, ranked → (B).
    /// </summary>
    public static Tensor PlackettLuceLosses(Tensor policy, Tensor reference, double beta)
    {
        var r = beta * (policy - reference);                                // (B, K): implicit rewards, best first
        long K = r.shape[1];
        var total = zeros_like(Place(r, 0));                                    // (B)
        for (long k = 0; k < K - 1; k++)
        {
            var rest = r.narrow(1, k, K - k);                                      // (B, K − k): places k..K
            total = total + (Place(r, k) - rest.logsumexp(1));                  // log P(y_k first among the rest)
        }
        return -total;
    }

    /// <summary>Column <paramref name="k"/> of a (B, K) tensor: (B). (TorchSharp's <c>x.select(1, k)</c>.)</summary>
    public static Tensor Place(Tensor x, long k) => x.narrow(1, k, 1).squeeze(1);

    // ─── Beyond DPO: four more losses on the same pairs (--loss hinge / simpo / orpo / kto) ────────────────
    //
    // Every loss above compares the policy's preference for y_w over y_l with the reference's. The four below
    // change what is compared, or drop the reference from the loss. Each is written as TRL writes it.

    /// <summary>
    /// SLiC's hinge (Zhao et al. 2023; TRL's DPO loss_type "hinge"): L = max(0, 1 − β h) on the same margin h as DPO.
    /// Where DPO's −log σ(βh) keeps pushing h up forever (its gradient −β σ(−βh) never reaches 0), the hinge stops
    /// once βh ≥ 1: a pair whose margin is already 1/β contributes nothing. Summed log-probs; (B) each → (B).
    /// </summary>
    public static Tensor HingeLosses(Tensor policyChosen, Tensor policyRejected, Tensor refChosen, Tensor refRejected,
        double beta)
    {
        var h = LogRatioMargin(policyChosen, policyRejected, refChosen, refRejected);   // (B)
        return nn.functional.relu(1 - beta * h);                                     // max(0, 1 − βh)
    }

    /// <summary>
    /// SimPO (Meng et al. 2024; TRL's CPOTrainer with loss_type "simpo" and cpo_alpha 0), reference-free:
    /// <code>
    ///   L = −log σ( β/|y_w| · log π_θ(y_w|x) − β/|y_l| · log π_θ(y_l|x) − γ )
    /// </code>
    /// The implicit reward is the policy's own mean log-prob per token, β · (1/|y|) log π_θ(y|x): no π_ref in the
    /// loss (the model it would need is gone), and no reward for length (a longer answer is not a likelier one per
    /// token). γ is a target margin: the winner must beat the loser by γ/β nats per token before the loss relaxes.
    /// The paper's settings are β ≈ 2, γ ≈ 1 (TRL: γ/β = 0.5), far from DPO's β. Mean log-probs per token; (B) → (B).
    /// </summary>
    public static Tensor SimpoLosses(Tensor policyChosenAvg, Tensor policyRejectedAvg, double beta, double gamma)
    {
        var logits = policyChosenAvg - policyRejectedAvg - gamma / beta;               // (B): TRL's logits
        return -nn.functional.logsigmoid(beta * logits);
    }

    /// <summary>
    /// The log odds ratio of ORPO (Hong et al. 2024): with p = exp(mean log π_θ(y|x)) the policy's per-token
    /// likelihood of y and odds(y) = p / (1 − p),
    /// <code>
    ///   log [odds(y_w) / odds(y_l)] = (log p_w − log p_l) − (log(1 − p_w) − log(1 − p_l)).
    /// </code>
    /// log(1 − p) is computed as log1p(−exp(log p)). Mean log-probs per token; (B) each → (B).
    /// </summary>
    public static Tensor LogOddsRatio(Tensor policyChosenAvg, Tensor policyRejectedAvg) =>
        (policyChosenAvg - policyRejectedAvg)
        - ((-policyChosenAvg.exp()).log1p() - (-policyRejectedAvg.exp()).log1p());

    /// <summary>
    /// ORPO (Hong et al. 2024; TRL's ORPOTrainer): supervised fine-tuning and preference in one loss, without a
    /// reference model,
    /// <code>
    ///   L = −(1/|y_w|) log π_θ(y_w|x)  −  λ · log σ( log odds(y_w) / odds(y_l) )
    /// </code>
    /// the chosen answer's negative log-likelihood per token (the SFT loss) plus a penalty that grows when the loser's
    /// odds come near the winner's. λ is TRL's beta (0.1). Mean log-probs per token; (B) each → (B).
    /// </summary>
    public static Tensor OrpoLosses(Tensor policyChosenAvg, Tensor policyRejectedAvg, double lambda) =>
        -policyChosenAvg - lambda * nn.functional.logsigmoid(LogOddsRatio(policyChosenAvg, policyRejectedAvg));

    /// <summary>
    /// KTO's reference point z₀ (Ethayarajh et al. 2024; TRL's KTOTrainer): an estimate of KL(π_θ ‖ π_ref) from
    /// mismatched pairs — each prompt with another tuple's answer, which neither model has reason to prefer —
    /// z₀ = max(0, mean(log π_θ(y'|x) − log π_ref(y'|x))), held constant (no gradient), as TRL does. (B) each → ().
    /// </summary>
    public static Tensor KtoReferencePoint(Tensor policyMismatched, Tensor refMismatched)
    {
        using var _ = no_grad();
        return (policyMismatched - refMismatched).mean().clamp(min: 0).detach();
    }

    /// <summary>
    /// KTO (Ethayarajh et al. 2024; TRL's KTOTrainer.kto_loss), which needs no pairs: each answer is judged alone,
    /// desirable or undesirable, by how its implicit reward r = log π_θ(y|x) − log π_ref(y|x) compares with the
    /// reference point z₀ — a prospect-theory value, saturating in both directions:
    /// <code>
    ///   desirable y:    λ_D · (1 − σ(β (r − z₀)))         undesirable y:    λ_U · (1 − σ(β (z₀ − r)))
    /// </code>
    /// Here, as TRL does with paired data, every chosen answer is desirable and every rejected one undesirable, with
    /// λ_D = λ_U = 1. Summed log-probs; (B) each → (2B): the chosen answers' losses, then the rejected ones'.
    /// </summary>
    public static Tensor KtoLosses(Tensor policyChosen, Tensor policyRejected, Tensor refChosen, Tensor refRejected,
        double beta, Tensor referencePoint)
    {
        var chosen = 1 - (beta * ((policyChosen - refChosen) - referencePoint)).sigmoid();         // (B)
        var rejected = 1 - (beta * (referencePoint - (policyRejected - refRejected))).sigmoid();   // (B)
        return cat([chosen, rejected], 0);                                                          // (2B)
    }

    /// <summary>Whether the loss reads log-probs averaged per token (IPO, SimPO, ORPO, as TRL) or summed.</summary>
    public static bool Averages(LossKind kind) => kind is LossKind.Ipo or LossKind.Simpo or LossKind.Orpo;

    /// <summary>The chosen loss on (B, K) log-probs of ranked completions (K = 2: chosen, rejected): (B), or (2B)
    /// for KTO, which judges each answer alone (its <paramref name="ktoReferencePoint"/> is required).</summary>
    public static Tensor Losses(LossKind kind, Tensor policy, Tensor reference, double beta, double labelSmoothing,
        double simpoGamma = 1.0, double orpoLambda = 0.1, Tensor? ktoReferencePoint = null)
    {
        if (kind == LossKind.PlackettLuce) return PlackettLuceLosses(policy, reference, beta);
        if (policy.shape[1] != 2)
            throw new ArgumentException($"Losses: {kind} compares pairs, so the log-probs must be (B, 2), " +
                                        $"got [{string.Join(", ", policy.shape)}]");
        var (pc, pr) = (Place(policy, 0), Place(policy, 1));                      // (B) each: chosen, rejected
        var (rc, rr) = (Place(reference, 0), Place(reference, 1));
        return kind switch
        {
            LossKind.Dpo => DpoLosses(pc, pr, rc, rr, beta),
            LossKind.Cdpo => DpoLosses(pc, pr, rc, rr, beta, labelSmoothing),
            LossKind.Ipo => IpoLosses(pc, pr, rc, rr, beta),
            LossKind.Hinge => HingeLosses(pc, pr, rc, rr, beta),
            LossKind.Simpo => SimpoLosses(pc, pr, beta, simpoGamma),
            LossKind.Orpo => OrpoLosses(pc, pr, orpoLambda),
            LossKind.Kto => KtoLosses(pc, pr, rc, rr, beta, ktoReferencePoint
                ?? throw new ArgumentNullException(nameof(ktoReferencePoint), "Losses: kto needs its reference point")),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Losses: unknown loss"),
        };
    }

    /// <summary>
    /// The implicit rewards r̂ = β(log π_θ(y) − log π_ref(y)) of the first (chosen) and last (rejected)
    /// completion of each tuple, detached: TRL's chosen_rewards and rejected_rewards. (B, K) → (B), (B).
    /// </summary>
    public static (Tensor chosen, Tensor rejected) ImplicitRewards(Tensor policy, Tensor reference, double beta)
    {
        var r = (beta * (policy - reference)).detach();                            // (B, K)
        return (Place(r, 0), Place(r, r.shape[1] - 1));
    }

    /// <summary>rewards/chosen, rewards/rejected, rewards/accuracies (chosen &gt; rejected, strictly, as TRL) and
    /// rewards/margins, averaged over the batch.</summary>
    public static RewardStats RewardStats(Tensor policy, Tensor reference, double beta)
    {
        var (chosen, rejected) = ImplicitRewards(policy, reference, beta);
        return new RewardStats(chosen.mean().ToDouble(), rejected.mean().ToDouble(),
            chosen.gt(rejected).to_type(float64).mean().ToDouble(), (chosen - rejected).mean().ToDouble());
    }
}

/// <summary>
/// A fixed set of preference tuples: for each prompt, K completions in preferred order (K = 2: chosen, rejected).
/// </summary>
/// <param name="Problems">The N prompts.</param>
/// <param name="Sequences">int64 (N, K, P + M): prompt then completion, best completion first.</param>
/// <param name="Masks">float32 (N, K, M): completion masks (1 through the first <c>&lt;eos&gt;</c>).</param>
/// <param name="Kinds">For pairs, what the two completions differ in; null for rankings.</param>
/// <param name="NoiseCeiling">The best accuracy any model can expect on these labels (pairs), or on adjacent
/// places of the rankings.</param>
public sealed record Preferences(IReadOnlyList<Problem> Problems, Tensor Sequences, Tensor Masks, PairKind[]? Kinds,
    double NoiseCeiling)
{
    public int Count => Problems.Count;

    /// <summary>The tuples at <paramref name="rows"/> (int64 (B)).</summary>
    public Preferences Select(Tensor rows)
    {
        var r = rows.cpu().data<long>().ToArray();
        return new Preferences(r.Select(i => Problems[(int)i]).ToArray(),
            Sequences.index_select(0, rows), Masks.index_select(0, rows),
            Kinds is null ? null : r.Select(i => Kinds[(int)i]).ToArray(), NoiseCeiling);
    }

    /// <summary>
    /// The preference data of the file header: <paramref name="sampler"/> (the base model) answers every
    /// problem K times at T = 1; for K = 2 the judge labels each pair by Bradley–Terry (identical pairs
    /// dropped, <see cref="PreferenceWorld.MakePairs(IReadOnlyList{Problem}, IReadOnlyList{string},
    /// IReadOnlyList{string}, long)"/>), for K &gt; 2 it ranks the K by Plackett–Luce (prompts with a repeated
    /// completion dropped).
    /// </summary>
    public static Preferences Make(TinyGpt sampler, PreferenceWorld world, IReadOnlyList<Problem> problems, int K,
        long seed)
    {
        var generator = new Generator((ulong)seed);
        var prompts = ArithmeticTask.EncodePrompts(problems);
        var answers = new List<string[]>();
        for (int k = 0; k < K; k++)
        {
            var rollout = Rollouts.Generate(sampler, prompts, ArithmeticTask.MaxCompletionLength, generator: generator);
            answers.Add(Enumerable.Range(0, problems.Count).Select(rollout.CompletionText).ToArray());
        }

        var kept = new List<Problem>();
        var ranked = new List<string[]>();
        PairKind[]? kinds = null;
        double ceiling;
        if (K == 2)
        {
            var pairs = world.MakePairs(problems, answers[0], answers[1], seed);
            foreach (var pair in pairs) { kept.Add(pair.Problem); ranked.Add([pair.Chosen, pair.Rejected]); }
            kinds = pairs.Select(p => p.Kind).ToArray();
            ceiling = world.NoiseCeiling(pairs);
        }
        else
        {
            var rng = new SplitMix64(seed);
            double sum = 0;
            int places = 0;
            for (int i = 0; i < problems.Count; i++)
            {
                var ys = answers.Select(a => ArithmeticTask.Normalize(a[i])).ToArray();
                if (ys.Distinct().Count() < K) continue;
                var golds = ys.Select(y => world.Gold(problems[i], y)).ToArray();
                var order = world.SampleRanking(golds, rng);
                kept.Add(problems[i]);
                ranked.Add(order.Select(j => ys[j]).ToArray());
                for (int k = 0; k + 1 < K; k++)
                {
                    double p = world.PreferenceProbability(golds[order[k]], golds[order[k + 1]]);
                    sum += Math.Max(p, 1 - p);
                    places++;
                }
            }
            ceiling = places == 0 ? double.NaN : sum / places;
        }

        int N = kept.Count, P = ArithmeticTask.PromptLength, M = ArithmeticTask.MaxCompletionLength;
        var ids = new long[N * K * (P + M)];
        for (int i = 0; i < N; i++)
        {
            var prompt = ArithmeticTask.EncodePrompt(kept[i]);
            for (int k = 0; k < K; k++)
            {
                int at = (i * K + k) * (P + M);
                prompt.CopyTo(ids, at);
                ArithmeticTask.EncodeCompletion(ranked[i][k]).CopyTo(ids, at + P);
            }
        }
        var sequences = tensor(ids, [N, K, P + M]);
        var (mask, _) = Rollouts.CompletionMask(sequences.reshape(N * K, P + M).narrow(1, P, M));
        return new Preferences(kept, sequences, mask.reshape(N, K, M), kinds, ceiling);
    }

    /// <summary>Per-token log-probs of every completion under <paramref name="model"/>, without gradient:
    /// (N, K, M). Used once for π_ref (its log-probs never change).</summary>
    public static Tensor TokenLogProbs(TinyGpt model, Preferences data)
    {
        using var _ = no_grad();
        int P = ArithmeticTask.PromptLength, M = ArithmeticTask.MaxCompletionLength;
        long K = data.Sequences.shape[1];
        return Rollouts.TokenLogProbs(model, data.Sequences.reshape(-1, P + M), P).reshape(-1, K, M);
    }

    /// <summary>log π(y|x) of every completion (summed, or averaged per token): (N, K), under the caller's grad
    /// mode.</summary>
    public static Tensor CompletionLogProbs(TinyGpt model, Preferences data, bool average)
    {
        int P = ArithmeticTask.PromptLength, M = ArithmeticTask.MaxCompletionLength;
        long K = data.Sequences.shape[1];
        var tok = Rollouts.TokenLogProbs(model, data.Sequences.reshape(-1, P + M), P).reshape(-1, K, M);
        return DirectPreference.CompletionLogProbs(tok, data.Masks, average);
    }
}
