// Chapter 5 — The reward model: Bradley–Terry on preference pairs.
//
//     dotnet run -c Release --project 05-reward-model                        # the default run (< 60 s)
//     dotnet run -c Release --project 05-reward-model -- --margin-scale 1    # Llama 2's margin, simulated rating
//     dotnet run -c Release --project 05-reward-model -- --center-coef 0.01  # with the reward-centring term
//     dotnet run -c Release --project 05-reward-model -- --help              # every option
//
// ─── Why a reward model ──────────────────────────────────────────────────────────────────────────────
//
// Chapters 1–4 optimised a rule: R = 1 if the sum is right. Most of what we want from a language model has
// no rule — "helpful", "polite", "well written" — but people can still say which of two answers they
// prefer. RLHF (Christiano et al. 2017; Stiennon et al. 2020; Ouyang et al. 2022, InstructGPT) turns those
// comparisons into a reward in two steps: fit a network r_θ(x, y) to the comparisons (this chapter), then
// optimise a policy against r_θ (chapter 6). The reward model is the only place human judgement enters, so
// whatever it fails to learn, the policy is free to get wrong.
//
// ─── The preference world (shared/MinRL/Tasks/PreferenceWorld.cs, in four lines) ─────────────────────
//
// A hidden gold scorer plays "what the people really value":
//
//     gold(x, y) = 1[y is the right sum] + 0.3 · 1[y ends in "."]          (0 for a malformed y).
//
// For a prompt x we draw two completions from the base model (T = 1) and a simulated labeller compares
// them. Like people, it is noisy: it prefers y₁ with probability σ((gold₁ − gold₂)/τ), τ = 0.1 — a pair
// that differs only in the "." is labelled the gold way 95% of the time, one that differs in correctness
// ~100%, and a tie (same gold) is a coin flip. The learner sees (x, y_chosen, y_rejected), never gold.
//
// ─── The objective: Bradley–Terry ────────────────────────────────────────────────────────────────────
//
// A reward model says how likely the chosen completion y_c is to be preferred to the rejected one y_r
// through the difference of two scores, P(y_c ≻ y_r) = σ(r_θ(x, y_c) − r_θ(x, y_r)) (Bradley & Terry 1952,
// derived above BradleyTerry.Loss). Maximum likelihood of the labels in D = {(x, y_c, y_r)} is minimising
// (InstructGPT §3.5, eq. 1, with K = 2)
//
//     L(θ) = −E_{(x, y_c, y_r)∼D} [ log σ( r_θ(x, y_c) − r_θ(x, y_r) ) ]        in code:  -logsigmoid(rc - rr).mean()
//
// — logistic regression on the difference of two scores. Three facts about this loss shape the chapter:
//
//   1. Only differences are identified. r_θ(x, y) + c(x), for any function c of the prompt alone, has exactly
//      the same loss (both completions of a pair share x). So the level of the scores is arbitrary, and scores
//      of completions of DIFFERENT prompts need not be comparable. We fix the level afterwards (normalisation,
//      step 4 below), or while training with the centring term. And a correlation of r with gold taken across
//      prompts is lowered by whatever c(x) the model happens to carry.
//   2. With noisy labels, even the perfect model is often "wrong". If r_θ = gold/τ exactly, σ(Δ) is the
//      labeller's own probability, and the best it can do on a pair is predict the likelier label: right with
//      probability max(p, 1 − p), p = σ(Δgold/τ). The mean of that over pairs is the NOISE CEILING (≈ 0.84
//      here, because ~27% of pairs tie and are coin flips). Held-out accuracy is read against it, not against 1.
//   3. Accuracy against noisy labels mixes up the model's errors and the labeller's. So we also measure
//      agreement with the GOLD ordering on pairs whose gold differs, split by what the pair differs in
//      (PairKind: style only, correctness only, both). That is where the lesson is.
//
// Two options change the loss, both off by default: --margin-scale, Llama 2's margin m in −log σ(r_c − r_r − m)
// fed a simulated rating (see BradleyTerry.Margins), and --center-coef, Eisenstein et al.'s centring term
// η · E[(r_c + r_r)²], which pins the level that fact 1 leaves free (see BradleyTerry.CenteringLoss).
//
// The model is the same TinyGpt with a scalar head Linear(C, 1) beside the LM head; r_θ(x, y) is the head's
// output at the completion's <eos> (see BradleyTerry.ScorePositions).
//
// ─── The program, in the order it runs (Train) ───────────────────────────────────────────────────────
//
//   1. pairs       two T = 1 base samples per training prompt, labelled by the simulated labeller; the same
//                  on the held-out prompts, which training never sees (BradleyTerry.SamplePairs)
//   2. the model   the base model's trunk plus a fresh scalar head (--init-from-base)
//   3. training    --steps AdamW steps on minibatches of pairs, reshuffled every epoch: BradleyTerry.Loss,
//                  plus BradleyTerry.CenteringLoss when on; every --eval-every steps, the held-out pairs
//   4. normalise   rescale the head so that the base's samples score mean 0, std 1 (BradleyTerry.Normalize)
//   5. report      the held-out table by pair kind, the checkpoint, curves.svg, summary.json
//
// What it logs. Per step: the loss (Bradley–Terry, and the centring term when on), the batch's accuracy, the
// mean score gap r_c − r_r and mean score (r_c + r_r)/2, the gradient norm. Every --eval-every steps, on the
// held-out pairs: accuracy against the labels, next to the noise ceiling; agreement with gold by pair kind; the
// Pearson correlation of r with gold over the held-out completions. Once, as a reference point: the same split
// for the base model's log-likelihood log π_base(y|x) used as a score. Accuracy counts an exact tie of the two
// scores as half right (BradleyTerry.Accuracy); TRL's RewardTrainer, (chosen > rejected).mean(), counts it wrong.
//
// What it finds (3 seeds on each engine): the reward model learns the surface feature, the ".", almost
// perfectly (agreement with gold 0.96–1.00 on style-only pairs) and stays close to a coin flip on correctness
// (0.49–0.63), the feature gold weighs more — so chapter 6's policy, optimising it, puts "." everywhere.
// Results, experiments and curves: docs/05-reward-model.md
//
// Output in runs/05-reward-model/seed<seed>/: metrics.csv, curves.svg, summary.json, and the trained reward
// model reward_model.safetensors (load it with the three lines in SaveRewardModel's comment).
//
// References: R. A. Bradley, M. E. Terry, "Rank analysis of incomplete block designs: I. The method of paired
// comparisons", Biometrika 39 (1952). P. Christiano et al., "Deep reinforcement learning from human
// preferences", NeurIPS 2017. D. Ziegler et al., "Fine-tuning language models from human preferences", 2019
// (github.com/openai/lm-human-preferences). N. Stiennon et al., "Learning to summarize from human feedback",
// NeurIPS 2020. L. Ouyang et al., "Training language models to follow instructions with human feedback"
// (InstructGPT), NeurIPS 2022, §3.5. H. Touvron et al., "Llama 2: Open foundation and fine-tuned chat models",
// 2023, §3.2.2. J. Eisenstein et al., "Helping or herding? Reward model ensembles mitigate but do not
// eliminate reward hacking", 2023. S. Huang et al., "The N implementation details of RLHF with PPO", ICLR
// blog track 2024.
using System.Diagnostics;
using System.Globalization;
using MinRL;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RewardModel;

/// <summary>The chapter's hyper-parameters: one command-line option each (<c>--batch-size 64</c>).</summary>
public sealed record Args : LabArgs
{
    [Help("optimizer steps, one batch of pairs each (600: ≈ 10 epochs of the default pairs, < 60 s on 2 cores)",
        Min = 1)]
    public override int Steps { get; init; } = 600;

    [Help("pairs per step (InstructGPT and Stiennon et al. 2020: batches of 64 comparisons)", Min = 1)]
    public int BatchSize { get; init; } = 64;

    [Help("AdamW learning rate (tests/experiments/PreferenceCheck used 1e-4; both compared in docs/05-reward-model.md)",
        Min = 0)]
    public double LearningRate { get; init; } = 3e-4;

    [Help("AdamW weight decay (TorchSharp's default 0: decay would pull the trunk towards 0, not the base)", Min = 0)]
    public double WeightDecay { get; init; } = 0.0;

    [Help("clip the gradient's global norm to this before each step, 0 = no clipping (the norm is logged either way)",
        Min = 0)]
    public double MaxGradNorm { get; init; } = 0.0;

    [Help("training problems to draw pairs on, two base samples (T = 1) each, identical pairs dropped (of 9,488)",
        Min = 1, Max = 9488)]
    public int TrainProblems { get; init; } = 4096;

    [Help("held-out pairs: two base samples on each of the 512 held-out problems, this many times", Min = 1)]
    public int EvalRepeats { get; init; } = 4;

    [Help("the labeller's temperature τ: P(y₁ ≻ y₂) = σ((gold₁ − gold₂)/τ) (the preference world's 0.1)", Min = 1e-6)]
    public double Tau { get; init; } = PreferenceWorld.DefaultTau;

    [Help("scale of Llama 2's margin m = scale · max(0, gold_c − gold_r), a simulated rating " +
          "(0 = the plain Bradley–Terry loss)", Min = 0)]
    public double MarginScale { get; init; } = 0.0;

    [Help("η of the reward-centring term η·(r_c + r_r)² (Eisenstein et al. 2023 use 0.01; 0 = off)", Min = 0)]
    public double CenterCoef { get; init; } = 0.0;

    [Help("start the reward model's trunk from the base model, false = nanoGPT's random initialisation " +
          "(InstructGPT §3.5 starts from the SFT model)")]
    public bool InitFromBase { get; init; } = true;

    [Help("evaluate on the held-out pairs every this many steps (0 = only at the start and the end)", Min = 0)]
    public int EvalEvery { get; init; } = 50;
}

public static class Program
{
    public static int Main(string[] args) =>
        Lab.Run<Args>(args, "05-reward-model", "a Bradley–Terry reward model on the preference world's pairs", Train);

    /// <summary>The file name of the trained reward model in the run's output folder.</summary>
    public const string CheckpointName = "reward_model.safetensors";

    /// <summary>The whole chapter: pairs → reward model → Bradley–Terry training → held-out report →
    /// checkpoint.</summary>
    public static int Train(Args args)
    {
        int steps = args.StepsOr(quickSteps: 60);
        int trainProblems = args.Quick && !args.IsGiven(nameof(args.TrainProblems)) ? 1024 : args.TrainProblems;

        // ─── 1. the preference data: two base samples per prompt, labelled by the simulated labeller ──────
        // The base model plays the policy whose outputs people compare (InstructGPT's labellers compared its
        // SFT model's samples). Its T = 1 samples end in "." about half the time and are right about a quarter
        // of the time, so the pairs mix every kind. Each random stream gets its own seed from the run's seed.
        var seeds = new SplitMix64(args.Seed);
        var sampler = new Generator(seeds.NextUInt64());                         // the base model's samples
        long trainLabelSeed = (long)seeds.NextUInt64(), evalLabelSeed = (long)seeds.NextUInt64();
        var data = new SplitMix64((long)seeds.NextUInt64());                     // which problems, and batch order

        var task = new ArithmeticTask();                                         // the book's split: 9,488 / 512
        var world = new PreferenceWorld(args.Tau);
        var baseModel = BaseModel.Load(new BaseModelConfig());                   // every chapter's shared base

        var dataClock = Stopwatch.StartNew();
        var pool = task.Train.ToList();
        data.Shuffle(pool);
        var trainSet = BradleyTerry.SamplePairs(baseModel, world, pool.Take(trainProblems).ToArray(), sampler,
            trainLabelSeed);
        var evalProblems = Enumerable.Range(0, args.EvalRepeats).SelectMany(_ => task.Eval).ToArray();
        var evalSet = BradleyTerry.SamplePairs(baseModel, world, evalProblems, sampler, evalLabelSeed);
        var trainPairs = trainSet.Pairs;
        var evalPairs = evalSet.Pairs;
        if (trainPairs.Count < args.BatchSize)
            throw new LabException($"only {trainPairs.Count} training pairs for a batch of {args.BatchSize}: " +
                "raise --train-problems or lower --batch-size");
        var (trP, trC, trR) = PreferenceWorld.Encode(trainPairs);                // (N, 7), (N, 5), (N, 5)
        var margins = BradleyTerry.Margins(trainPairs, args.MarginScale);        // (N): 0 unless --margin-scale
        var evalData = PreferenceWorld.Encode(evalPairs);

        var kinds = Enum.GetValues<PairKind>();
        Lab.Print($"pairs: {trainPairs.Count} for training " +
                  $"(from {trainProblems} training problems, 2 base samples each), " +
                  $"{evalPairs.Count} held out (the 512 held-out problems × {args.EvalRepeats}); " +
                  $"sampled in {Lab.Fmt(dataClock.Elapsed.TotalSeconds)} s");
        Lab.Table("preference pairs: share of each kind, and the noise ceiling " +
                  "(the best accuracy any model can expect)",
            ["set", .. kinds.Select(k => k.ToString()), "noise ceiling", "labels against gold"],
            new[] { ("train", trainPairs), ("held-out", evalPairs) }.Select(s => new object?[] { s.Item1 }
                .Concat(kinds.Select(k => (object?)(s.Item2.Count(p => p.Kind == k) / (double)s.Item2.Count)))
                .Append(world.NoiseCeiling(s.Item2))
                .Append(s.Item2.Count(p => p.GoldMargin < 0) / (double)s.Item2.Count).ToArray()));

        // A reference point, before any training: the base model's own log-likelihood log π_base(y|x) as a score.
        // It was never trained on preferences, but it was trained to write correct sums.
        var likelihood = BradleyTerry.EvaluateScorer(evalPairs, world, evalData,
            (p, c) => BradleyTerry.LogLikelihood(baseModel, p, c));

        // ─── 2. the reward model: the base model's trunk plus a fresh scalar head ─────────────────────────
        // The reward model starts from the base model's weights, as InstructGPT's starts from its SFT model "with
        // the final unembedding layer removed" (§3.5): the base already reads a+b= and writes sums (held-out
        // greedy accuracy 0.44), the reasoning goes, so its hidden states hold what it knows about the sum and a
        // reward model built on them need not learn arithmetic from a few thousand noisy bits (at this scale it
        // does not pay off: docs/05-reward-model.md). The head is new, initialised N(0, 1/(d+1)) as in OpenAI's
        // lm-human-preferences (the untrained scores have unit scale), bias 0. The LM head is carried along but
        // unused.
        var rm = new TinyGpt(baseModel.Config with { ScalarHead = true });      // initial weights: torch's generator
        if (args.InitFromBase) rm.load_state_dict(baseModel.state_dict(), strict: false);   // all but scalar_head.*
        using (no_grad())
            foreach (var (name, p) in rm.named_parameters())
                if (name == "scalar_head.weight")
                    nn.init.normal_(p, 0, 1 / Math.Sqrt(rm.Config.NEmbd + 1));  // lm-human-preferences
                else if (name == "scalar_head.bias") p.zero_();
        // The LM head is not part of r_θ: leave it out of the optimizer (and of trainable_params).
        var trainable = rm.named_parameters().Where(np => !np.name.StartsWith("lm_head."))
            .Select(np => np.parameter).ToList();
        long trainableParams = trainable.Sum(p => p.numel());
        var optimizer = optim.AdamW(trainable, lr: args.LearningRate, weight_decay: args.WeightDecay);

        using var log = new MetricsLog(Path.Combine(args.Out, "metrics.csv"),
            "loss", "bt_loss", "center_loss", "accuracy", "score_gap", "score_mean", "grad_norm",
            "eval_accuracy", "eval_gold_agreement", "acc_style_only", "acc_correctness_only", "acc_both",
            "acc_both_style_with_correctness", "acc_both_style_against_correctness", "gold_correlation");
        var baseEval = BradleyTerry.Evaluate(rm, evalPairs, world, evalData);
        log.Add(0, baseEval.Metrics());
        // Accuracy here and below counts a tie of the two scores as half right; TRL counts it wrong (see
        // BradleyTerry.Accuracy).
        Lab.Print($"untrained reward model: held-out accuracy {Lab.Fmt(baseEval.Accuracy)} " +
                  $"(noise ceiling {Lab.Fmt(baseEval.NoiseCeiling)})");

        // ─── 3. training: minibatches of pairs, reshuffled every epoch ────────────────────────────────────
        int B = args.BatchSize;
        var epochs = new Epochs(trainPairs.Count, data);                       // shuffled passes over the pairs
        var final = baseEval;
        var clock = Stopwatch.StartNew();
        rm.train();
        using (var progress = Lab.Progress(steps, "reward model", "loss", "accuracy", "eval_accuracy",
                   "acc_style_only"))
        {
            for (int step = 1; step <= steps; step++)
            {
                using var scope = NewDisposeScope();   // TorchSharp: this step's tensors are freed at its end
                var idx = epochs.Next(B);                                        // (B) row indices
                var prompts = trP.index_select(0, idx);                          // (B, 7)

                // Chosen and rejected through the model in one batch of 2B: the same weights, one forward pass.
                var r = BradleyTerry.Scores(rm, cat([prompts, prompts], 0),
                    cat([trC.index_select(0, idx), trR.index_select(0, idx)], 0)); // (2B)
                var rChosen = r.narrow(0, 0, B);                                   // (B)
                var rRejected = r.narrow(0, B, B);                                 // (B)

                var btLoss = BradleyTerry.Loss(rChosen, rRejected,
                    args.MarginScale > 0 ? margins.index_select(0, idx) : null);
                var centerLoss = BradleyTerry.CenteringLoss(rChosen, rRejected, args.CenterCoef);
                var loss = btLoss + centerLoss;
                Lab.CheckFinite(loss, "loss", step);

                optimizer.zero_grad();
                loss.backward();
                double gradNorm = Grad.ClipNorm(trainable, args.MaxGradNorm);
                optimizer.step();

                var metrics = new List<(string, double)>();
                using (no_grad())
                {
                    var rc = rChosen.detach().cpu().data<float>().ToArray();
                    var rr = rRejected.detach().cpu().data<float>().ToArray();
                    metrics.AddRange([
                        ("loss", loss.item<float>()), ("bt_loss", btLoss.item<float>()),
                        ("center_loss", centerLoss.item<float>()),
                        ("accuracy", BradleyTerry.Accuracy(rc, rr)),            // a tie counts half; TRL: wrong
                        ("score_gap", rc.Zip(rr, (a, b) => (double)a - b).Average()),        // mean r_c − r_r
                        ("score_mean", rc.Zip(rr, (a, b) => 0.5 * ((double)a + b)).Average()), // the unseen level
                        ("grad_norm", gradNorm),
                    ]);
                }
                if (step == steps || args.EvalEvery > 0 && step % args.EvalEvery == 0)
                {
                    final = BradleyTerry.Evaluate(rm, evalPairs, world, evalData);
                    metrics.AddRange(final.Metrics());
                }
                log.Add(step, [.. metrics]);
                progress.Update(step, [.. metrics]);
            }
        }
        double trainSeconds = clock.Elapsed.TotalSeconds;

        // ─── 4. normalise: the base's samples score mean 0, std 1 (a change of units; no ordering changes) ─
        // lm-human-preferences normalises its reward model this way; InstructGPT shifts its bias so that
        // demonstrations score 0 on average. Chapter 6 gets a reward on a known scale, centred on where its
        // policy starts.
        var (mu, sigma) = BradleyTerry.Normalize(rm, trainSet.Prompts, trainSet.Samples);
        final = BradleyTerry.Evaluate(rm, evalPairs, world, evalData);

        // ─── 5. report ───────────────────────────────────────────────────────────────────────────────────
        // One row per kind of pair; the pairs that differ in both are split by whether the "." sits on the correct
        // completion (style and correctness agree) or on the wrong one (they disagree: gold says correct wins).
        // Both columns count a tie of the two scores as half right (BradleyTerry.Accuracy; TRL counts it wrong).
        object?[] Row(string name, Func<PairEvaluation, double> gold, int count, double? ceiling, double? labels) =>
            [name, count, ceiling, labels, gold(final), gold(baseEval), gold(likelihood)];
        var rows = new List<object?[]>
        {
            Row("all", e => e.GoldAgreement(null), final.Count(null), final.NoiseCeiling, final.Accuracy),
        };
        foreach (var k in new[] { PairKind.StyleOnly, PairKind.CorrectnessOnly, PairKind.Both })
            rows.Add(Row(k.ToString(), e => e.GoldAgreement(k), final.Count(k), final.Ceiling(k),
                final.LabelAccuracy(k)));
        rows.Add(Row("  Both: '.' on the correct one", e => e.BothAgreement(false), final.BothCount(false),
            null, null));
        rows.Add(Row("  Both: '.' on the wrong one", e => e.BothAgreement(true), final.BothCount(true), null, null));
        rows.Add(["Tie", final.Count(PairKind.Tie), final.Ceiling(PairKind.Tie), final.LabelAccuracy(PairKind.Tie),
            null, null, null]);
        Lab.Table($"held-out pairs after {steps} steps ({Lab.Fmt(steps * (double)B / trainPairs.Count)} epochs): " +
                  "the reward model, the untrained one, and log π_base(y|x) as a score",
            ["pairs", "count", "noise ceiling", "RM: vs labels", "RM: agrees with gold", "untrained: vs gold",
             "log π_base: vs gold"], rows);
        Lab.Print($"correlation of r with gold over the held-out completions: {Lab.Fmt(final.GoldCorrelation)} " +
                  $"(untrained {Lab.Fmt(baseEval.GoldCorrelation)}; log π_base {Lab.Fmt(likelihood.GoldCorrelation)})");

        string checkpoint = Path.Combine(args.Out, CheckpointName);
        SaveRewardModel(rm, checkpoint, args, final, mu, sigma, steps);
        Lab.Print($"reward model saved: {checkpoint} (scores of the base's samples: mean 0, std 1; " +
                  $"raw mean was {Lab.Fmt(mu)}, std {Lab.Fmt(sigma)})");

        var plot = new SvgPlot($"05-reward-model — Bradley–Terry, seed {args.Seed}") { Smoothing = 0.9 };
        plot.Add("held-out accuracy vs labels", log.Dots("eval_accuracy"))
            .HLine(final.NoiseCeiling, "noise ceiling").HLine(0.5, "chance");
        plot.Add("held-out agreement with gold, by pair kind", log.Dots("acc_style_only", "style only"),
            log.Dots("acc_correctness_only", "correctness only"),
            log.Dots("acc_both_style_with_correctness", "both, '.' on the correct one"),
            log.Dots("acc_both_style_against_correctness", "both, '.' on the wrong one")).HLine(0.5, "chance");
        plot.Add("correlation of r with gold (held-out)", log.Dots("gold_correlation"));
        plot.Add("loss (batch)", log.Series("loss"), log.Series("bt_loss")).HLine(Math.Log(2), "log 2");
        plot.Add("score gap r_c − r_r and level (r_c + r_r)/2", log.Series("score_gap"), log.Series("score_mean"));
        plot.Add("gradient norm", log.Series("grad_norm"));
        plot.Write(Path.Combine(args.Out, "curves.svg"));

        Lab.Finish(new RunSummary
        {
            Metric = "held-out preference accuracy (vs the labels)",
            Base = baseEval.Accuracy,
            Final = final.Accuracy,
            Kl = double.NaN,                                                     // a reward model has no policy
            Extra =
            {
                ["noise_ceiling"] = final.NoiseCeiling,
                ["gold_correlation"] = final.GoldCorrelation,
                ["acc_style_only"] = final.GoldAgreement(PairKind.StyleOnly),
                ["acc_correctness_only"] = final.GoldAgreement(PairKind.CorrectnessOnly),
                ["acc_both"] = final.GoldAgreement(PairKind.Both),
                ["acc_both_style_with_correctness"] = final.BothAgreement(false),
                ["acc_both_style_against_correctness"] = final.BothAgreement(true),
                ["acc_gold"] = final.GoldAgreement(null),
                ["label_acc_style_only"] = final.LabelAccuracy(PairKind.StyleOnly),
                ["label_acc_correctness_only"] = final.LabelAccuracy(PairKind.CorrectnessOnly),
                ["loglik_acc_correctness_only"] = likelihood.GoldAgreement(PairKind.CorrectnessOnly),
                ["loglik_acc_style_only"] = likelihood.GoldAgreement(PairKind.StyleOnly),
                ["pairs_train"] = trainPairs.Count,
                ["pairs_eval"] = evalPairs.Count,
                ["models_held"] = 1,
                ["trainable_params"] = trainableParams,
                ["samples_generated"] = (long)trainSet.Samples.shape[0],     // base samples behind the training pairs
                ["steps"] = steps,
                ["epochs"] = steps * (double)B / trainPairs.Count,
                ["train_s"] = trainSeconds,
                ["ms_per_step"] = 1000 * trainSeconds / steps,
                ["reward_raw_mean"] = mu,
                ["reward_raw_std"] = sigma,
                ["checkpoint"] = checkpoint,
            },
        });
        return 0;
    }

    /// <summary>
    /// Writes the reward model as safetensors with what a reader needs to use it. To load it (chapter 6, or any
    /// program with MinRL):
    /// <code>
    ///   var rm = new TinyGpt(new GptConfig { ScalarHead = true });
    ///   Checkpoint.LoadInto(path, rm.state_dict());                 // strict: every tensor, shapes checked
    ///   // r(x, y) = rm.Scalar(rm.Hidden(prompt ++ completion)) at the completion's first &lt;eos&gt;
    ///   //           (its last token if it has none)
    /// </code>
    /// The scores are normalised: the base model's T = 1 samples score mean 0, std 1. The file holds the whole
    /// TinyGpt state dict (the LM head is the base's, unused); its metadata say how it was made.
    /// </summary>
    public static void SaveRewardModel(TinyGpt rm, string path, Args args, PairEvaluation final, double mu,
        double sigma, int steps)
    {
        string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        var metadata = new Dictionary<string, string>
        {
            ["kind"] = "minrl-reward-model",
            ["config"] = rm.Config.Key,
            ["kit_version"] = Kit.Version,
            ["base_model"] = Path.GetFileName(BaseModel.CachePath(new BaseModelConfig())),
            ["read_at"] = "the first <eos> of the completion (its last token if it has none); " +
                          "prompt left-padded to 7 tokens",
            ["normalization"] = "scores of the base model's T = 1 samples on the training prompts: mean 0, std 1",
            ["raw_mean"] = F(mu),
            ["raw_std"] = F(sigma),
            ["seed"] = args.Seed.ToString(CultureInfo.InvariantCulture),
            ["steps"] = steps.ToString(CultureInfo.InvariantCulture),
            ["tau"] = F(args.Tau),
            ["heldout_accuracy"] = F(final.Accuracy),
            ["noise_ceiling"] = F(final.NoiseCeiling),
            ["acc_style_only"] = F(final.GoldAgreement(PairKind.StyleOnly)),
            ["acc_correctness_only"] = F(final.GoldAgreement(PairKind.CorrectnessOnly)),
            ["gold_correlation"] = F(final.GoldCorrelation),
        };
        Checkpoint.Save(path, rm.state_dict(), metadata);                       // atomic: temp file, then rename
    }

}

/// <summary>Labelled pairs and the base samples they were made from.</summary>
/// <param name="Pairs">The pairs (identical completions dropped), labelled by the preference world.</param>
/// <param name="Prompts">int64 (2N, 7): the prompt of every sample, first samples then second samples.</param>
/// <param name="Samples">int64 (2N, 5): every completion sampled, including those of dropped pairs.</param>
public sealed record PairSet(IReadOnlyList<PreferencePair> Pairs, Tensor Prompts, Tensor Samples);

/// <summary>
/// A scorer measured on held-out pairs: for each pair, the two scores; from them accuracy against the labels,
/// agreement with the gold ordering, both by <see cref="PairKind"/>, and the correlation with gold.
/// </summary>
public sealed class PairEvaluation
{
    private readonly IReadOnlyList<PreferencePair> _pairs;
    private readonly PreferenceWorld _world;

    /// <summary>Score of each pair's chosen and rejected completion.</summary>
    public float[] Chosen { get; }
    public float[] Rejected { get; }

    public PairEvaluation(IReadOnlyList<PreferencePair> pairs, PreferenceWorld world, float[] chosen, float[] rejected)
    {
        if (chosen.Length != pairs.Count || rejected.Length != pairs.Count)
            throw new ArgumentException($"PairEvaluation: {pairs.Count} pairs but {chosen.Length} chosen and " +
                $"{rejected.Length} rejected scores");
        (_pairs, _world, Chosen, Rejected) = (pairs, world, chosen, rejected);
    }

    private IEnumerable<int> Of(PairKind? kind) =>
        Enumerable.Range(0, _pairs.Count).Where(i => kind is null || _pairs[i].Kind == kind);

    /// <summary>
    /// Agreement with gold on the pairs that differ in both features, split by whether the style points the
    /// same way as correctness (the correct completion is also the one ending in ".") or against it (the wrong
    /// one has the "."). A scorer that only sees the style gets the first kind right and the second wrong.
    /// </summary>
    public double BothAgreement(bool styleAgainstCorrectness)
        => Agreement(Of(PairKind.Both)
            .Where(i => BradleyTerry.StyleAgainstCorrectness(_pairs[i]) == styleAgainstCorrectness));

    /// <summary>How many pairs <see cref="BothAgreement"/> averages over.</summary>
    public int BothCount(bool styleAgainstCorrectness) =>
        Of(PairKind.Both).Count(i => BradleyTerry.StyleAgainstCorrectness(_pairs[i]) == styleAgainstCorrectness);

    /// <summary>Pairs of this kind (all when null).</summary>
    public int Count(PairKind? kind) => Of(kind).Count();

    /// <summary>Share of pairs whose chosen completion scores higher: what the loss fits. A tie counts half
    /// (<see cref="BradleyTerry.Accuracy"/>; TRL's RewardTrainer counts it wrong).</summary>
    public double LabelAccuracy(PairKind? kind)
    {
        var idx = Of(kind).ToArray();
        return idx.Length == 0
            ? double.NaN
            : BradleyTerry.Accuracy(idx.Select(i => Chosen[i]).ToArray(), idx.Select(i => Rejected[i]).ToArray());
    }

    /// <summary>Share of pairs with different gold whose higher-gold completion scores higher (a tie counts half).
    /// Not limited by the labels' noise: a scorer that knew gold would get 1.</summary>
    public double GoldAgreement(PairKind? kind) => Agreement(Of(kind));

    /// <summary>Agreement with gold on the given pairs, skipping gold ties: the higher-gold completion put first,
    /// then counted as <see cref="BradleyTerry.Accuracy"/> counts.</summary>
    private double Agreement(IEnumerable<int> pairs)
    {
        var idx = pairs.Where(i => _pairs[i].GoldMargin != 0).ToArray();
        if (idx.Length == 0) return double.NaN;
        var better = idx.Select(i => _pairs[i].GoldMargin > 0 ? Chosen[i] : Rejected[i]).ToArray();
        var worse = idx.Select(i => _pairs[i].GoldMargin > 0 ? Rejected[i] : Chosen[i]).ToArray();
        return BradleyTerry.Accuracy(better, worse);
    }

    /// <summary>The noise ceiling of these pairs (see <see cref="PreferenceWorld.NoiseCeiling"/>).</summary>
    public double Ceiling(PairKind? kind) => _world.NoiseCeiling(Of(kind).Select(i => _pairs[i]));

    /// <summary>Held-out accuracy against the labels, logged as eval_accuracy (a tie counts half).</summary>
    public double Accuracy => LabelAccuracy(null);
    public double NoiseCeiling => Ceiling(null);

    /// <summary>Pearson correlation of the score with gold over every held-out completion (both sides of each
    /// pair).</summary>
    public double GoldCorrelation => BradleyTerry.Pearson(
        Chosen.Concat(Rejected).Select(v => (double)v).ToArray(),
        _pairs.Select(p => p.GoldChosen).Concat(_pairs.Select(p => p.GoldRejected)).ToArray());

    /// <summary>The metrics the program logs at an evaluation.</summary>
    public (string, double)[] Metrics() =>
    [
        ("eval_accuracy", Accuracy), ("eval_gold_agreement", GoldAgreement(null)),
        ("acc_style_only", GoldAgreement(PairKind.StyleOnly)),
        ("acc_correctness_only", GoldAgreement(PairKind.CorrectnessOnly)),
        ("acc_both", GoldAgreement(PairKind.Both)), ("acc_both_style_with_correctness", BothAgreement(false)),
        ("acc_both_style_against_correctness", BothAgreement(true)), ("gold_correlation", GoldCorrelation),
    ];
}

/// <summary>The algorithm's pure functions, pinned by tests/Chapters.Tests/RewardModelTests.cs.</summary>
public static class BradleyTerry
{
    // Where the reward is read. The scalar head gives a score at every position; the reward is the score at the
    // completion's <eos>:
    //
    //     position     0 … 6          7    8    9     10     11
    //     tokens      <pad>… 47+9=    5    6    .     <eos>  <pad>
    //     r_θ(x, y)                                   ↑ read here
    //
    // Attention is causal, so the hidden state at position t has seen tokens 0..t: the <eos> position is the
    // first that has seen the whole completion, including the decision to stop. Positions after it see only
    // padding added after it, and a completion that never emitted <eos> (truncated, so malformed) is read at
    // its last token. (InstructGPT and Hugging Face's sequence classifiers read "the last non-padding token";
    // here that token is <eos>.)

    /// <summary>
    /// Where the reward is read: for each completion (int64 (N, M), generated tokens only), the position of its
    /// first <c>&lt;eos&gt;</c> in the full sequence, P + t_eos — or P + M − 1, its last token, when it has none.
    /// (N) int64. Tokens after the first <c>&lt;eos&gt;</c> (padding, or anything else) never move the read
    /// position.
    /// </summary>
    public static Tensor ScorePositions(Tensor completions, int promptLength)
    {
        if (completions.dtype != ScalarType.Int64 || completions.dim() != 2)
            throw new ArgumentException("ScorePositions: completions must be int64 of shape (N, M), got " +
                $"{completions.dtype} of shape [{string.Join(", ", completions.shape)}]");
        var ids = completions.cpu().data<long>().ToArray();
        int N = (int)completions.shape[0], M = (int)completions.shape[1];
        long eos = CharTokenizer.Instance.EosId;
        var at = new long[N];
        for (int i = 0; i < N; i++)
        {
            int t = 0;
            while (t < M - 1 && ids[i * M + t] != eos) t++;                     // the first <eos>, or the last token
            at[i] = promptLength + t;
        }
        return tensor(at, [N]);
    }

    /// <summary>
    /// r_θ(x, y) for a batch: the scalar head at each completion's read position (see
    /// <see cref="ScorePositions"/>). prompts int64 (N, P), completions int64 (N, M) → (N), differentiable.
    /// </summary>
    public static Tensor Scores(TinyGpt rm, Tensor prompts, Tensor completions)
    {
        var sequences = cat([prompts, completions], 1);                            // (N, P + M)
        var at = ScorePositions(completions, (int)prompts.shape[1]);              // (N)
        var r = rm.Scalar(rm.Hidden(sequences));                                   // (N, P + M): every position
        return r.gather(1, at.unsqueeze(1)).squeeze(1);                            // (N)
    }

    // The Bradley–Terry loss. Bradley & Terry (1952) modelled paired comparisons by giving each item a positive
    // strength π_i:
    //
    //     P(i ≻ j) = π_i / (π_i + π_j).
    //
    // Write the strength as an exponentiated score, π_i = e^{r_i}, divide through by e^{r_i}:
    //
    //     P(i ≻ j) = e^{r_i} / (e^{r_i} + e^{r_j}) = 1 / (1 + e^{−(r_i − r_j)}) = σ(r_i − r_j).
    //
    // A reward model is this with the score computed by a network, r_i = r_θ(x, y_i), and the negative
    // log-likelihood of the labels is L(θ) = −E[ log σ(r_c − r_r) ]. Its gradient says what each pair does (per
    // pair, before the mean's 1/N):
    //
    //     ∂L/∂r_c = −σ(−Δ) = −(1 − σ(Δ)),   ∂L/∂r_r = +σ(−Δ),      Δ = r_c − r_r,
    //
    // i.e. push the chosen score up and the rejected one down, in proportion to the probability the model
    // currently gives the WRONG order. Pairs it already orders confidently stop contributing; that will matter.
    //
    // Llama 2 (Touvron et al. 2023, §3.2.2, eq. 2) asks labellers HOW MUCH better the chosen answer is (four
    // levels, "significantly better" … "negligibly better / unsure") and turns the rating into a margin m ≥ 0:
    //
    //     L(θ) = −E [ log σ( r_c − r_r − m ) ]
    //
    // so a pair rated "much better" is not satisfied until its scores are at least m apart (the gradient
    // σ(−(Δ − m)) stays large until Δ > m). Margins below makes m from a simulated rating.

    /// <summary>
    /// The Bradley–Terry loss, −mean log σ(r_c − r_r − m): the negative log-likelihood of the labels when
    /// P(y_c ≻ y_r) = σ(r_c − r_r). <paramref name="margin"/> (N), optional, is Llama 2's margin m ≥ 0; without
    /// it m = 0. −log σ(z) is computed as −logsigmoid(z), stable for any z.
    /// </summary>
    public static Tensor Loss(Tensor rChosen, Tensor rRejected, Tensor? margin = null)
    {
        var diff = rChosen - rRejected;                                            // (N): Δ = r_c − r_r
        if (margin is not null) diff = diff - margin;                              // (N): Δ − m
        return -F.logsigmoid(diff).mean();
    }

    // The centring term. Eisenstein et al. 2023 ("Helping or Herding?", §2) add an auxiliary term that removes
    // the freedom of the level (fact 1 of the file header, r_θ(x, y) + c(x) has the same loss):
    //
    //     L_centre(θ) = η · E [ ( r_c + r_r )² ],     η = 0.01,
    //
    // which is zero when each pair's two scores are centred on 0 and costs nothing in the differences (it only
    // moves r_c + r_r, to which the Bradley–Terry term is blind). Without it the level of the scores drifts
    // wherever the optimiser takes it. Off by default (the normalisation after training fixes the level);
    // --center-coef 0.01 turns it on (TRL's RewardTrainer calls it center_rewards_coefficient).

    /// <summary>
    /// The reward-centring term of Eisenstein et al. (2023), η · mean (r_c + r_r)²: zero when every pair's scores
    /// sum to zero, blind to their difference. η = 0 gives an exact 0 (and no gradient).
    /// </summary>
    public static Tensor CenteringLoss(Tensor rChosen, Tensor rRejected, double coef)
    {
        if (coef == 0) return zeros([], dtype: rChosen.dtype);
        var sum = rChosen + rRejected;                                             // (N)
        return coef * (sum * sum).mean();
    }

    /// <summary>
    /// Llama 2's margin from a simulated rating: m_i = scale · max(0, gold_c − gold_r) per pair, float32 (N) —
    /// how much better the labeller found its choice, 0 when the choice went against gold or the pair ties.
    /// </summary>
    /// <remarks>Our labeller says only which, so --margin-scale feeds the margin this rating: the gold gap when the
    /// label agrees with gold, 0 when the label went against it (a labeller who picked the worse answer would not
    /// call it "much better"). It leaks a little gold into training, as real ratings leak the raters'
    /// confidence.</remarks>
    public static Tensor Margins(IReadOnlyList<PreferencePair> pairs, double scale)
        => tensor(pairs.Select(p => (float)(scale * Math.Max(0, p.GoldMargin))).ToArray(), [pairs.Count]);

    /// <summary>For a pair that differs in both correctness and style: true when the incorrect completion is the
    /// one ending in "." (the surface feature points the wrong way), false when the correct one has it.</summary>
    public static bool StyleAgainstCorrectness(PreferencePair pair)
    {
        var (chosenCorrect, chosenStyled) =
            PreferenceWorld.Features(pair.Problem, ArithmeticTask.Parse(pair.Chosen));
        var (rejectedCorrect, rejectedStyled) =
            PreferenceWorld.Features(pair.Problem, ArithmeticTask.Parse(pair.Rejected));
        return chosenCorrect != rejectedCorrect && chosenStyled != rejectedStyled && chosenCorrect != chosenStyled;
    }

    /// <summary>Share of pairs whose chosen score is higher; an exact tie counts as half right (a coin flip). TRL's
    /// RewardTrainer counts a tie as wrong (its accuracy is (chosen &gt; rejected).mean()), so the two differ by
    /// half the share of exact ties.</summary>
    public static double Accuracy(IReadOnlyList<float> chosen, IReadOnlyList<float> rejected)
    {
        if (chosen.Count != rejected.Count)
            throw new ArgumentException($"Accuracy: {chosen.Count} chosen but {rejected.Count} rejected scores");
        if (chosen.Count == 0) return double.NaN;
        double right = 0;
        for (int i = 0; i < chosen.Count; i++)
            right += chosen[i] > rejected[i] ? 1 : chosen[i] == rejected[i] ? 0.5 : 0;
        return right / chosen.Count;
    }

    /// <summary>Pearson's correlation, Σ(x − x̄)(y − ȳ) / √(Σ(x − x̄)² Σ(y − ȳ)²); NaN when either is
    /// constant.</summary>
    public static double Pearson(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        if (x.Count != y.Count) throw new ArgumentException($"Pearson: {x.Count} x values but {y.Count} y values");
        double mx = x.Average(), my = y.Average(), sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < x.Count; i++)
        {
            double dx = x[i] - mx, dy = y[i] - my;
            sxy += dx * dy; sxx += dx * dx; syy += dy * dy;
        }
        return sxx == 0 || syy == 0 ? double.NaN : sxy / Math.Sqrt(sxx * syy);
    }

    /// <summary>
    /// Two T = 1 samples from <paramref name="policy"/> for each problem, labelled by <paramref name="world"/>
    /// (pairs of identical completions are dropped). Returns the pairs and every sample (for normalisation).
    /// </summary>
    public static PairSet SamplePairs(TinyGpt policy, PreferenceWorld world, IReadOnlyList<Problem> problems,
        Generator generator, long labelSeed)
    {
        const int M = ArithmeticTask.MaxCompletionLength;
        var prompts = ArithmeticTask.EncodePrompts(problems);                                   // (N, 7)
        var first = Rollouts.Generate(policy, prompts, M, 1.0, generator: generator);           // (N, 5)
        var second = Rollouts.Generate(policy, prompts, M, 1.0, generator: generator);          // (N, 5)
        var pairs = world.MakePairs(problems, first.Completions, second.Completions, labelSeed);
        return new PairSet(pairs, cat([prompts, prompts], 0), cat([first.Completions, second.Completions], 0));
    }

    /// <summary>Scores of many (prompt, completion) rows, in chunks of <paramref name="chunk"/>, without gradients:
    /// float[N]. (TinyGpt has no dropout, so train and eval mode score alike.)</summary>
    public static float[] ScoreAll(Func<Tensor, Tensor, Tensor> scorer, Tensor prompts, Tensor completions,
        int chunk = 1024)
    {
        using var _ = no_grad();
        long N = prompts.shape[0];
        var result = new float[N];
        for (long s = 0; s < N; s += chunk)
        {
            using var scope = NewDisposeScope();                 // TorchSharp: this chunk's tensors
            long n = Math.Min(chunk, N - s);
            scorer(prompts.narrow(0, s, n), completions.narrow(0, s, n)).cpu().data<float>().ToArray()
                .CopyTo(result, s);
        }
        return result;
    }

    /// <summary>The reward model on held-out pairs (see <see cref="PairEvaluation"/>).</summary>
    public static PairEvaluation Evaluate(TinyGpt rm, IReadOnlyList<PreferencePair> pairs, PreferenceWorld world,
        (Tensor prompts, Tensor chosen, Tensor rejected) data)
        => EvaluateScorer(pairs, world, data, (p, c) => Scores(rm, p, c));

    /// <summary>Any scorer (prompts, completions) → (N) on held-out pairs.</summary>
    public static PairEvaluation EvaluateScorer(IReadOnlyList<PreferencePair> pairs, PreferenceWorld world,
        (Tensor prompts, Tensor chosen, Tensor rejected) data, Func<Tensor, Tensor, Tensor> scorer)
        => new(pairs, world, ScoreAll(scorer, data.prompts, data.chosen),
            ScoreAll(scorer, data.prompts, data.rejected));

    /// <summary>log π(y|x) = Σ_t mask_t log π(y_t | x, y_&lt;t) of each completion, through its first
    /// &lt;eos&gt;: (N).</summary>
    public static Tensor LogLikelihood(TinyGpt policy, Tensor prompts, Tensor completions)
    {
        var (mask, _) = Rollouts.CompletionMask(completions);                                            // (N, M)
        var logp = Rollouts.TokenLogProbs(policy, cat([prompts, completions], 1), (int)prompts.shape[1]); // (N, M)
        return (logp * mask).sum(1);                                                                      // (N)
    }

    /// <summary>
    /// Rescales the scalar head in place so that the scores of <paramref name="completions"/> (the base model's
    /// samples) have mean 0 and standard deviation 1: w ← w/σ, b ← (b − μ)/σ, which maps every score r to
    /// (r − μ)/σ. Orderings, accuracy and correlations are unchanged. Returns the raw (μ, σ).
    /// </summary>
    public static (double mean, double std) Normalize(TinyGpt rm, Tensor prompts, Tensor completions)
    {
        var r = ScoreAll((p, c) => Scores(rm, p, c), prompts, completions).Select(v => (double)v).ToArray();
        double mu = r.Average();
        double sigma = Math.Sqrt(r.Select(v => (v - mu) * (v - mu)).Average());
        if (!(sigma > 0))
            throw new LabException("Normalize: every sample has the same score; the reward model is constant");
        using (no_grad())
            foreach (var (name, p) in rm.named_parameters())
                if (name == "scalar_head.weight") p.copy_(p / sigma);
                else if (name == "scalar_head.bias") p.copy_((p - mu) / sigma);
        return (mu, sigma);
    }
}
