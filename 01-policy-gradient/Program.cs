// Chapter 1 — REINFORCE: the policy gradient, with and without a baseline.
//
//     dotnet run -c Release --project 01-policy-gradient                       # the default run (< 60 s)
//     dotnet run -c Release --project 01-policy-gradient -- --baseline running-mean   # the same, with a baseline
//     dotnet run -c Release --project 01-policy-gradient -- --samples-per-prompt 4 --baseline rloo   # RLOO
//     dotnet run -c Release --project 01-policy-gradient -- --help             # every option
//
// ─── The setting (chapters 1–3 share it) ─────────────────────────────────────────────────────────────
//
// A prompt x = "<bos>47+9=" is the first state s_0. The policy π_θ — the tiny GPT — picks the next token
// a_t ~ π_θ(·|s_t); the state grows by that token, s_{t+1} = s_t + a_t; the episode ends at <eos> (or after
// 5 tokens). The completion τ = (a_0, …, a_{T−1}) earns one reward, at the very end, from a rule:
// R(x, τ) = 1 if τ is the sum written correctly, else 0. The objective is the expected reward
//
//     J(θ) = E_{x∼D} E_{τ∼π_θ(·|x)} [ R(x, τ) ],        π_θ(τ|x) = Π_t π_θ(a_t | s_t).
//
// ─── The log-derivative trick ────────────────────────────────────────────────────────────────────────
//
// R is a rule, not a differentiable function of θ; what θ changes is how likely each completion is. Fix x
// (the prompt distribution does not depend on θ) and write the expectation as a sum over completions:
//
//     ∇_θ J = ∇_θ Σ_τ π_θ(τ) R(τ) = Σ_τ R(τ) ∇_θ π_θ(τ)
//           = Σ_τ R(τ) π_θ(τ) ∇_θ log π_θ(τ)                  (∇ log p = ∇p / p, so ∇p = p ∇ log p)
//           = E_{τ∼π_θ} [ R(τ) ∇_θ log π_θ(τ) ]
//           = E_{τ∼π_θ} [ R(τ) Σ_t ∇_θ log π_θ(a_t | s_t) ]   (log of a product = sum of logs; the transition
//                                                              s_{t+1} = s_t + a_t is deterministic, so no
//                                                              environment term depends on θ)
//
// The gradient of an expectation became an expectation of something we can compute: sample completions
// from the policy itself, score each one's log-probability, weight by its reward. With N samples,
//
//     ĝ = (1/N) Σ_i R_i ∇_θ log π_θ(τ_i)                           (an unbiased Monte Carlo estimate of ∇J)
//
// is exactly the gradient of the surrogate loss
//
//     L(θ) = −(1/N) Σ_i R_i · log π_θ(τ_i)            in code:   loss = -(logp * R).mean()
//
// with R_i held fixed (it is a number from the rule). Minimising L ascends J. L is not the reward and its
// value means little — it depends on how likely the samples were — only its gradient does. This is
// Williams' REINFORCE (1992): "REward Increment = Nonnegative Factor × Offset Reinforcement × Characteristic
// Eligibility", the eligibility being ∇ log π.
//
// Reward-to-go. In general each ∇ log π(a_t|s_t) need only be weighted by the rewards that come after t (an
// action cannot change rewards already received). Here the only reward is at the end, so every token's
// reward-to-go is R: the two forms are the same estimator.
//
// Which tokens. A completion ends at its first <eos> (that <eos> is an action too: the choice to stop);
// sampling pads the rest with <pad>, and the completion mask (1 up to and including the first <eos>, 0
// after) keeps the padding out of log π(τ) = Σ_t mask_t · log π(a_t|s_t).
//
// ─── The baseline, and why it does not bias the gradient ─────────────────────────────────────────────
//
// For any number b that does not depend on the sampled completion,
//
//     E_{τ∼π_θ} [ b ∇_θ log π_θ(τ) ] = b Σ_τ π_θ(τ) ∇_θ π_θ(τ) / π_θ(τ) = b ∇_θ Σ_τ π_θ(τ) = b ∇_θ 1 = 0,
//
// so E[(R − b) ∇ log π(τ)] = E[R ∇ log π(τ)] = ∇J: subtracting a baseline leaves the expected gradient
// exactly where it was. (b may depend on the prompt, as chapter 2's value function does, but not on
// the completion being scored; a mean that includes the sample's own reward is biased by O(1/N).)
//
// What it changes is the variance of the estimate, and a constant b can raise it as well as lower it: the
// constant with the least variance, b*, is the average reward weighted by how large each sample's gradient
// is (derived above OptimalBaseline, below). The classic choice is the plain average reward (Williams'
// "reinforcement comparison"): here a running mean of the rewards of PAST steps, so that b never depends on
// the samples it is subtracted from (RunningMean, below). It is close to b* when the size of the gradient
// has nothing to do with the reward.
//
// On this task it has a lot to do with it, and the program measures it: every --variance-every steps it
// computes, on one batch's own samples, the gradient's variance with b = 0, with the running mean and with
// b*. Key findings (3 seeds, docs/01-policy-gradient.md): a wrong answer is an unlikely sample with a large
// gradient, so b* stays low (median 0.12) while the mean reward climbs to 0.8; the running mean RAISES the
// variance (median 2.4×) and learns less (held-out accuracy 0.69–0.72, against 0.82 without a baseline). RLOO,
// unbiased and per prompt, does no better here: at 4 samples per prompt it raises the update variance 1.3–2.5×
// and ends at 0.62–0.64 (no baseline: 0.74–0.80).
//
// Hence this chapter's default is no baseline, and `--baseline running-mean` is the experiment to run. With
// 0/1 rewards and b = 0 the update is Σ_{correct i} ∇ log π(τ_i) / N: maximum likelihood on the policy's own
// correct samples (rejection-sampling fine-tuning), which pushes probability towards what worked and, since
// the probabilities sum to one, away from everything else. A constant b cannot remove the part of the
// variance that comes from prompts being of different difficulty; a baseline that knows the prompt — a
// learned value V(x) (chapter 2), the mean reward of a group of samples of the same prompt (chapter 8) — is
// the next step.
//
// ─── RLOO: a baseline from the other samples of the same prompt ──────────────────────────────────────
//
// That next step needs no new model. Sample k completions of each prompt (--samples-per-prompt k) and give
// sample i the mean reward of the OTHER k − 1, b_i = (1/(k−1)) Σ_{j≠i} R_j (--baseline rloo; Kool et al.
// 2019, Ahmadian et al. 2024). The k samples are drawn independently, so b_i — made of samples j ≠ i only —
// is independent of sample i given the prompt, and the argument above still gives E[b_i ∇ log π(τ_i)] = 0:
// unbiased, with a b that knows the prompt, since E[b_i] = V(x), the prompt's own expected reward. Derived
// in full above PolicyGradient.RlooBaseline. At the same --batch-size a step then holds N/k prompts × k
// completions; the variance measurement adds RLOO's coefficients R_i − b_i beside the others, and, since
// samples of one prompt are not independent, the variance of the update itself (PolicyGradient.UpdateVariance).
//
// ─── The loop (Program.Train), in the order it runs ──────────────────────────────────────────────────
//
//   1. rollout     N/k prompts, k completions of each (k = --samples-per-prompt, 1 by default), sampled from
//                  π_θ at T = 1; the rule gives each its R_i
//   2. advantages  A_i = R_i − b, with b from past steps only (b = 0 by default), or with RLOO's b_i, the mean
//                  reward of the other k − 1 completions of the same prompt
//   3. loss        log π_θ(a_t|s_t) of every sampled token, read from the logits one position earlier (the
//                  gather, derived there), then L = −mean_i A_i · Σ_t mask_t log π_θ(a_t|s_t)
//   4. update      one AdamW step on ∇L = −ĝ
//   5. report      the batch's metrics and the KL to the base; held-out accuracy every --eval-every steps;
//                  the gradient's variance every --variance-every steps (a measurement: it changes nothing)
//
// ─── What is logged ──────────────────────────────────────────────────────────────────────────────────
//
// Per step: reward, accuracy and well-formed share of the batch's samples; the running mean of past rewards
// (the b of --baseline running-mean, tracked either way); the loss; KL(π_θ ‖ π_base) per completion (k3
// estimator, against a frozen copy of the base model); the policy's entropy per token; the gradient norm;
// the mean completion length. Every --eval-every steps: sampled accuracy (T = 1) on the 512 held-out
// problems, the book's gold metric. Every --variance-every steps: the per-sample gradient variance with
// b = 0, with the running mean and with b*, their ratio, and b*; with k ≥ 2 also RLOO's and its ratio to
// b = 0, the update's variance N·Var[ĝ] with b = 0, the running mean and RLOO, and, every step, the share of
// prompts whose k rewards are all equal (RLOO gives them no gradient).
// Output in runs/01-policy-gradient/seed<seed>/: metrics.csv, curves.svg, summary.json.
//
// References: R. J. Williams, "Simple statistical gradient-following algorithms for connectionist
// reinforcement learning", Machine Learning 8 (1992). R. S. Sutton et al., "Policy gradient methods for
// reinforcement learning with function approximation", NeurIPS 1999. E. Greensmith, P. Bartlett, J. Baxter,
// "Variance reduction techniques for gradient estimates in reinforcement learning", JMLR 5 (2004).
// W. Kool, H. van Hoof, M. Welling, "Buy 4 REINFORCE samples, get a baseline for free!", ICLR workshop 2019.
// A. Ahmadian et al., "Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human
// Feedback in LLMs", ACL 2024.
// OpenAI Spinning Up, "Intro to Policy Optimization" (https://spinningup.openai.com).
//
// Results, experiments and curves: docs/01-policy-gradient.md
using System.Diagnostics;
using MinRL;
using TorchSharp;
using static TorchSharp.torch;

namespace Reinforce;

/// <summary>What is subtracted from the reward before it weights ∇ log π.</summary>
public enum BaselineKind
{
    /// <summary>b = 0: the plain REINFORCE estimator R · ∇ log π(τ).</summary>
    None,
    /// <summary>b = a running mean of the rewards of past steps (see <see cref="RunningMean"/>).</summary>
    RunningMean,
    /// <summary>b_i = the mean reward of the other k − 1 samples of the same prompt (see
    /// <see cref="PolicyGradient.RlooBaseline"/>).</summary>
    Rloo,
}

/// <summary>The chapter's hyper-parameters: one command-line option each (<c>--batch-size 64</c>).</summary>
public sealed record Args : LabArgs
{
    [Help("policy-gradient steps (chosen so that the default run fits in 60 s on 2 cores)", Min = 1)]
    public override int Steps { get; init; } = 500;

    [Help("completions sampled per step, --samples-per-prompt of each prompt (the book's PyTorch prototype: 128)",
        Min = 2)]
    public int BatchSize { get; init; } = 128;

    [Help("completions k sampled per prompt, so a step draws --batch-size / k prompts (Kool et al. 2019: "
        + "k samples give each one a baseline for free)", Min = 1)]
    public int SamplesPerPrompt { get; init; } = 1;

    [Help("AdamW learning rate (the book's PyTorch prototype: 3e-4)", Min = 0)]
    public double LearningRate { get; init; } = 3e-4;

    [Help("AdamW weight decay, which pulls the weights towards 0, not back to the base (Hugging Face Trainer: 0)",
        Min = 0)]
    public double WeightDecay { get; init; } = 0.0;

    [Help("the baseline b subtracted from the reward: none, a running mean of past rewards (Williams 1992), or rloo, "
        + "the mean reward of the prompt's other k − 1 samples (Ahmadian et al. 2024)")]
    public BaselineKind Baseline { get; init; } = BaselineKind.None;

    [Help("decay β of the running-mean baseline, b ← βb + (1 − β)·mean reward (0.9 ≈ the last 10 steps: "
        + "a common choice, not tuned)", Min = 0, Max = 0.9999)]
    public double BaselineDecay { get; init; } = 0.9;

    [Help("clip the gradient's global norm to this before each step, 0 = no clipping (REINFORCE has none)", Min = 0)]
    public double MaxGradNorm { get; init; } = 0.0;

    [Help("reward bonus for a well-formed answer, right or wrong, 0 = the rule alone (DeepSeek-R1's format reward)",
        Min = 0)]
    public double FormatBonus { get; init; } = 0.0;

    [Help("evaluate sampled accuracy (T = 1) on the 512 held-out problems every this many steps (0 = at the end)",
        Min = 0)]
    public int EvalEvery { get; init; } = 50;

    [Help("measure the gradient's variance with b = 0, the running mean, b* and (k ≥ 2) RLOO every this many steps "
        + "(0 = never; Greensmith et al. 2004)", Min = 0)]
    public int VarianceEvery { get; init; } = 50;

    [Help("per-sample gradients in each variance measurement: the batch's first ones, at most --batch-size", Min = 2)]
    public int VarianceSamples { get; init; } = 64;
}

public static class Program
{
    public static int Main(string[] args) => Lab.Run<Args>(args, "01-policy-gradient",
        "REINFORCE on a+b=: the policy gradient, with and without a baseline", Train);

    /// <summary>The whole chapter: load the base, then rollout → advantages → loss → update → report,
    /// repeated.</summary>
    public static int Train(Args args)
    {
        CheckOptions(args);
        int steps = args.StepsOr(quickSteps: 60);
        int k = args.SamplesPerPrompt;                                // completions of each prompt
        int varianceSamples = Math.Min(args.VarianceSamples, args.BatchSize);

        // ─── the policy, its frozen reference, the task ──────────────────────────────────────────────
        // Every chapter starts from the same supervised base model (cached after its first build). The
        // policy is trained; a second, frozen copy is the reference π_base for the KL we report.
        var task = new ArithmeticTask();                              // 9,488 training problems, 512 held out
        var policy = BaseModel.Load(new BaseModelConfig());
        var reference = BaseModel.Load(new BaseModelConfig(), TextWriter.Null);
        reference.eval();
        foreach (var p in reference.parameters()) p.requires_grad = false;

        var optimizer = optim.AdamW(policy.parameters(), lr: args.LearningRate, weight_decay: args.WeightDecay);
        var problemStream = new SplitMix64(args.Seed);                // which prompts each step (the samples
                                                                      // use torch's generator)
        var baseline = new RunningMean(args.BaselineDecay);
        const int P = ArithmeticTask.PromptLength, M = ArithmeticTask.MaxCompletionLength;

        string[] columns =
        [
            "reward", "accuracy", "well_formed", "running_mean", "loss", "kl", "entropy", "grad_norm", "length",
            "eval_accuracy", "grad_var_none", "grad_var_baseline", "grad_var_ratio", "baseline_optimal",
            "grad_var_optimal",
        ];
        if (k >= 2)
            columns = [.. columns, "frac_reward_zero_std", "grad_var_rloo", "grad_var_rloo_ratio",
                       "grad_var_update_none", "grad_var_update_baseline", "grad_var_update_rloo"];
        using var log = new MetricsLog(Path.Combine(args.Out, "metrics.csv"), columns);
        // Every held-out evaluation samples with the book's fixed seed: base and trained policy face the same
        // random numbers, so their difference is not sampling noise.
        var baseEval = BaseModel.Evaluate(policy, task.Eval, temperature: 1,
            generator: new Generator(BaseModel.EvalSeed));
        var baseGreedy = BaseModel.Evaluate(policy, task.Eval, temperature: 0);
        log.Add(0, ("eval_accuracy", baseEval.Accuracy));
        Lab.Print($"base model: held-out sampled accuracy {Lab.Fmt(baseEval.Accuracy)} (T = 1), " +
                  $"greedy {Lab.Fmt(baseGreedy.Accuracy)}");

        var final = baseEval;
        var clock = Stopwatch.StartNew();
        using (var progress = Lab.Progress(steps, "REINFORCE", "reward", "eval_accuracy", "kl", "entropy"))
        {
            for (int step = 1; step <= steps; step++)
            {
                using var scope = NewDisposeScope();   // TorchSharp: this step's tensors are freed at its end
                // ─── 1. rollout: N/k prompts, k completions of each, sampled from π_θ at T = 1 ───────
                // Each prompt k times in a row, [a, a, …, b, b, …]: rows g·k … g·k + k − 1 share a prompt. With
                // k = 1 this draws the same prompts from the same stream as one prompt per completion.
                var problems = ArithmeticTask.Sample(task.Train, args.BatchSize / k, problemStream)
                    .SelectMany(p => Enumerable.Repeat(p, k)).ToArray();
                var rollout = Rollouts.Generate(policy, ArithmeticTask.EncodePrompts(problems), M);
                var sequences = rollout.Sequences;                            // (N, P + M): prompt, then completion
                var mask = rollout.CompletionMask;                            // (N, M): 1 through the first <eos>
                var rewards = ArithmeticTask.Rewards(problems, rollout.Completions, args.FormatBonus); // (N): R_i

                // ─── 2. advantages: R_i − b, with b from past steps only, or RLOO's R_i − b_i ─────────
                double b = baseline.Value;                                    // 0 before the first step
                var advantages = args.Baseline == BaselineKind.Rloo
                    ? PolicyGradient.Advantages(rewards, PolicyGradient.RlooBaseline(rewards, k))   // (N)
                    : PolicyGradient.Advantages(rewards,
                        args.Baseline == BaselineKind.RunningMean ? b : 0.0);  // (N)

                // ─── 3. loss: −mean_i (R_i − b) log π_θ(τ_i) ─────────────────────────────────────────
                // First log π_θ(a_t|s_t) of every sampled token, from one forward pass over whole sequences.
                // A row of L = P + M tokens holds the prompt at positions 0 … P − 1 and the completion at
                // P … L − 1. The model is causal and was trained to predict the next token: its output at
                // position j has seen tokens 0 … j and is the distribution of token j + 1. Completion token
                // a_t sits at position P + t; its state s_t is the prefix 0 … P + t − 1, which ends at
                // position P − 1 + t. So π_θ(·|s_t) is read one position before a_t, and the logits at
                // positions P − 1 … L − 2 predict the completion tokens at P … L − 1. (Read one position off,
                // the loss would train on the wrong tokens and nothing would crash.) log_softmax turns each
                // position's logits into log-probabilities over the vocabulary; gather picks, at each
                // position, the entry of the token that was actually sampled.
                //
                // Rollouts.Score and Rollouts.TokenLogProbs (shared/MinRL/Rollouts.cs) do exactly this at their
                // default temperature, 1: the KL and the per-sample scores below, and every later chapter, call
                // them.
                policy.train();
                long L = sequences.shape[1];                                  // P + M
                var hidden = policy.Hidden(sequences);                        // (N, L, C): the trunk's output
                var logits = policy.Logits(hidden.narrow(1, P - 1, L - P));   // (N, M, V): positions P − 1 … L − 2
                var actions = sequences.narrow(1, P, L - P).unsqueeze(-1);    // (N, M, 1): a_t, positions P … L − 1
                var tokenLogp = logits.log_softmax(-1).gather(2, actions).squeeze(-1);  // (N, M): log π_θ(a_t|s_t)
                var loss = PolicyGradient.Loss(tokenLogp, mask, advantages);  // scalar
                Lab.CheckFinite(loss, "loss", step);

                // (measurement only) the gradient's variance with and without b, on these same samples,
                // at the parameters that drew them: the per-sample scores s_i of the first n samples, then
                // tr Cov[g] with g_i = c_i s_i for c_i = R_i, R_i − b and R_i − b* (GradientVariance,
                // OptimalBaseline), and with k ≥ 2 also c_i = R_i − b_i, RLOO's, whatever --baseline says. It
                // draws no random numbers and changes no weights or gradients, so turning it on or off leaves
                // the run bit-identical.
                var variance = new List<(string, double)>();
                if (args.VarianceEvery > 0 && (step == 1 || step % args.VarianceEvery == 0))
                {
                    var rows = Enumerable.Range(0, varianceSamples).ToArray();  // prompts are i.i.d.: the first
                                                                                // n are a random subset (whole
                                                                                // groups of k when k divides n)
                    var scores = PolicyGradient.PerSampleScores(policy, rollout, rows);  // (n, D): ∇ log π(τ_i)
                    var r = rewards.narrow(0, 0, varianceSamples).to_type(float64);     // (n)
                    double bStar = PolicyGradient.OptimalBaseline(scores, r);
                    double varNone = PolicyGradient.GradientVariance(scores, r);         // coefficients R_i
                    double varBase = PolicyGradient.GradientVariance(scores, r - b);     // coefficients R_i − b
                    double varOpt = PolicyGradient.GradientVariance(scores, r - bStar);  // coefficients R_i − b*
                    variance = [("grad_var_none", varNone), ("grad_var_baseline", varBase),
                                ("grad_var_ratio", varBase / varNone),
                                ("baseline_optimal", bStar), ("grad_var_optimal", varOpt)];
                    if (k >= 2)
                    {
                        // b_i from the whole group, also when the first n rows end inside one.
                        var all = rewards.to_type(float64);                                         // (N)
                        var rloo = (all - PolicyGradient.RlooBaseline(all, k)).narrow(0, 0, varianceSamples);
                        double varRloo = PolicyGradient.GradientVariance(scores, rloo);  // coefficients R_i − b_i
                        variance.AddRange([("grad_var_rloo", varRloo), ("grad_var_rloo_ratio", varRloo / varNone)]);
                        // N · Var[ĝ], samples of one prompt counted together, on the whole groups among the n.
                        int whole = varianceSamples / k * k;
                        if (whole >= 2 * k)
                        {
                            var s = scores.narrow(0, 0, whole);
                            variance.AddRange([
                                ("grad_var_update_none", PolicyGradient.UpdateVariance(s, r.narrow(0, 0, whole), k)),
                                ("grad_var_update_baseline",
                                    PolicyGradient.UpdateVariance(s, (r - b).narrow(0, 0, whole), k)),
                                ("grad_var_update_rloo", PolicyGradient.UpdateVariance(s, rloo.narrow(0, 0, whole), k)),
                            ]);
                        }
                    }
                }

                // ─── 4. update: one AdamW step on ∇L = −ĝ ────────────────────────────────────────────
                optimizer.zero_grad();
                loss.backward();
                double gradNorm = Grad.ClipNorm(policy.parameters(), args.MaxGradNorm);   // the norm before clipping
                optimizer.step();
                double meanReward = rewards.mean().item<float>();
                baseline.Update(meanReward);                                  // after use: b never sees the
                                                                              // rewards it is subtracted from

                // ─── 5. report ───────────────────────────────────────────────────────────────────────
                double kl, entropy, length;
                using (no_grad())
                {
                    // KL(π_θ ‖ π_base) per completion, at the parameters that drew the samples: k3 per token
                    // (an unbiased, non-negative estimate of that position's KL), summed over the completion's
                    // tokens — by the chain rule of KL the sum estimates the KL between the two distributions
                    // over whole completions.
                    var refLogp = Rollouts.TokenLogProbs(reference, sequences, P);                       // (N, M)
                    kl = PolicyGradient.SequenceKl(tokenLogp.detach(), refLogp, mask).mean().item<float>();
                    entropy = Rollouts.MaskedMean(Rollouts.Entropy(logits), mask).item<float>();          // nats/token
                    length = rollout.Lengths.to_type(float32).mean().item<float>();
                }
                var batch = ArithmeticTask.Measure(problems, rollout.Completions);
                var metrics = new List<(string, double)>
                {
                    ("reward", meanReward), ("accuracy", batch.Accuracy), ("well_formed", batch.WellFormed),
                    ("running_mean", b), ("loss", loss.item<float>()), ("kl", kl), ("entropy", entropy),
                    ("grad_norm", gradNorm), ("length", length),
                };
                if (k >= 2)                            // prompts whose k rewards are equal: R_i − b_i = 0 for each
                    metrics.Add(("frac_reward_zero_std", PolicyGradient.ZeroStdFraction(rewards, k)));
                if (step == steps || args.EvalEvery > 0 && step % args.EvalEvery == 0)
                {
                    // The gold metric, on the same random numbers as the base model's (the last one is the
                    // final score).
                    final = BaseModel.Evaluate(policy, task.Eval, temperature: 1,
                        generator: new Generator(BaseModel.EvalSeed));
                    metrics.Add(("eval_accuracy", final.Accuracy));
                }
                metrics.AddRange(variance);
                log.Add(step, [.. metrics]);
                progress.Update(step, [.. metrics]);
            }
        }
        double trainSeconds = clock.Elapsed.TotalSeconds;

        var finalGreedy = BaseModel.Evaluate(policy, task.Eval, temperature: 0);
        // Same generator seed and batch as the final evaluation: the KL is measured on the very samples that
        // were scored.
        double finalKl = Kl.HeldOut(policy, reference, task.Eval, new Generator(BaseModel.EvalSeed));

        var plot = new SvgPlot($"01-policy-gradient — REINFORCE, baseline {BaselineName(args.Baseline)}, " +
                               (k >= 2 ? $"k = {k}, " : "") + $"seed {args.Seed}") { Smoothing = 0.9 };
        // Dense per-step metrics are drawn smoothed; the sparse ones (every k steps) as dots, unsmoothed.
        plot.Add("held-out accuracy (T = 1)", log.Dots("eval_accuracy")).HLine(baseEval.Accuracy, "base");
        plot.Add("reward (batch) and baselines", log.Series("reward"),
            log.Series("running_mean", label: "running mean b"), log.Dots("baseline_optimal", "b* (min. variance)"));
        plot.Add("KL to base (nats / completion)", log.Series("kl"));
        plot.Add("entropy (nats / token)", log.Series("entropy"));
        plot.Add("gradient norm", log.Series("grad_norm"));
        Series[] varianceRatios =
        [
            log.Dots("grad_var_ratio", "running mean b"), log.Dots("grad_var_optimal", "b*", divideBy: "grad_var_none"),
            .. k >= 2
                ? [log.Dots("grad_var_rloo_ratio", "RLOO b_i"),
                   log.Dots("grad_var_update_rloo", "RLOO b_i, N·Var[ĝ]", divideBy: "grad_var_update_none")]
                : Array.Empty<Series>(),
        ];
        plot.Add("gradient variance ÷ variance at b = 0", varianceRatios).HLine(1, "b = 0");
        plot.Write(Path.Combine(args.Out, "curves.svg"));

        var (ratios, at) = (log.Column("grad_var_ratio"), log.Column("step"));
        var varRatios = Enumerable.Range(0, ratios.Length)
            .Where(i => at[i] > 1 && double.IsFinite(ratios[i]))      // at step 1, b = 0: ratio 1
            .Select(i => ratios[i]).Order().ToArray();
        double Median(IEnumerable<double> xs)
        {
            var sorted = xs.Where(double.IsFinite).Order().ToArray();
            return sorted.Length > 0 ? sorted[sorted.Length / 2] : double.NaN;
        }
        double[] Ratio(string a, string over) => k >= 2
            ? log.Column(a).Zip(log.Column(over), (x, y) => x / y).ToArray()
            : [];
        var later = at.Select(step => step > 1).ToArray();            // at step 1 the running mean is 0
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
                ["baseline"] = BaselineName(args.Baseline),
                ["steps"] = steps,
                ["samples_per_step"] = args.BatchSize,
                ["train_s"] = trainSeconds,
                ["ms_per_step"] = 1000 * trainSeconds / steps,
                ["grad_var_ratio_median"] = varRatios.Length > 0 ? varRatios[varRatios.Length / 2] : double.NaN,
                ["samples_per_prompt"] = k,
                ["grad_var_rloo_ratio_median"] = Median(Ratio("grad_var_rloo", "grad_var_none")),
                ["grad_var_update_ratio_median"] =
                    Median(Ratio("grad_var_update_baseline", "grad_var_update_none").Where((_, i) => later[i])),
                ["grad_var_update_rloo_ratio_median"] = Median(Ratio("grad_var_update_rloo", "grad_var_update_none")),
                ["models_held"] = 2,                                    // the policy, and the frozen base for the KL
                ["trainable_params"] = policy.NumParameters(),
                ["samples_generated"] = (long)steps * args.BatchSize,   // completions sampled for training
            },
        });
        return 0;
    }

    /// <summary>The option's spelling on the command line: "none", "running-mean" or "rloo".</summary>
    private static string BaselineName(BaselineKind b) => b switch
    {
        BaselineKind.None => "none",
        BaselineKind.RunningMean => "running-mean",
        _ => "rloo",
    };

    /// <summary>The checks no single option can make, as usage errors (exit code 2), before anything
    /// loads.</summary>
    public static void CheckOptions(Args args)
    {
        int k = args.SamplesPerPrompt;
        if (args.Baseline == BaselineKind.Rloo && k < 2)
            throw new LabUsageException(
                $"--baseline rloo needs --samples-per-prompt 2 or more, got {k}: each sample's baseline is the mean " +
                "reward of the OTHER samples of its prompt; e.g. --samples-per-prompt 4 --baseline rloo");
        if (args.BatchSize % k != 0)
            throw new LabUsageException(
                $"--batch-size {args.BatchSize} is not a multiple of --samples-per-prompt {k}: a step draws " +
                $"--batch-size / k prompts and samples k completions of each; e.g. --batch-size " +
                $"{Math.Max(k, args.BatchSize / k * k)}");
    }
}

/// <summary>The algorithm's pure functions, pinned by tests/Chapters.Tests/ReinforceTests.cs.</summary>
public static class PolicyGradient
{
    /// <summary>
    /// log π_θ(τ_i) = Σ_t mask_{i,t} · log π_θ(a_{i,t} | s_{i,t}): float (N, M) per-token log-probs and the
    /// completion mask → (N). The mask drops the padding after each completion's first <c>&lt;eos&gt;</c>.
    /// </summary>
    public static Tensor SequenceLogProbs(Tensor tokenLogProbs, Tensor mask) => (tokenLogProbs * mask).sum(1);

    /// <summary>
    /// The weight of each sample's ∇ log π: A_i = R_i − b. With a terminal reward and no critic, the
    /// "advantage" of a whole completion is its reward relative to the baseline (b = 0 for plain REINFORCE).
    /// </summary>
    public static Tensor Advantages(Tensor rewards, double baseline) => rewards - baseline;

    /// <summary>A_i = R_i − b_i with one baseline per sample, (N) and (N) → (N): for RLOO's
    /// <see cref="RlooBaseline"/>.</summary>
    public static Tensor Advantages(Tensor rewards, Tensor baselines) => rewards - baselines;

    // ─── RLOO: the leave-one-out baseline ────────────────────────────────────────────────────────────
    //
    // The best baseline knows the prompt: b(x) = V(x) = E_{τ∼π_θ(·|x)}[R(x, τ)] takes away the part of R that
    // only says how easy x is. No constant can, and a learned V (chapter 2) is a second model. Instead, sample
    // k completions τ_1 … τ_k of the same x, independently, and estimate V(x) for sample i from the others:
    //
    //     b_i = (1/(k−1)) Σ_{j≠i} R_j,        A_i = R_i − b_i.
    //
    // Unbiased. b_i is a function of τ_j, j ≠ i, only; given x these are independent of τ_i, so the
    // expectation of the product splits, and the file header's argument (E[∇ log π(τ)] = 0) finishes it:
    //
    //     E[b_i ∇ log π(τ_i) | x] = E[b_i | x] · E[∇ log π(τ_i) | x] = V(x) · 0 = 0,
    //
    // hence E[(R_i − b_i) ∇ log π(τ_i)] = E[R_i ∇ log π(τ_i)] = ∇J, for every k ≥ 2 (k = 1 leaves nothing
    // to average: --baseline rloo requires k ≥ 2). The plain group mean R̄ = (1/k) Σ_j R_j would include
    // R_i itself, and the same computation gives (1 − 1/k) ∇J: the right direction, shrunk (chapter 8).
    // The two are one rescaling apart,
    //
    //     R_i − b_i = R_i − (k R̄ − R_i)/(k − 1) = (k/(k−1)) (R_i − R̄),
    //
    // so a group whose k rewards are all equal — every answer right, or every one wrong — gives A_i = 0 to
    // all of its samples: it says nothing about which completion was better, and it moves nothing.
    //
    // What it costs. E[b_i | x] = V(x), but b_i is an estimate: its own noise, Var(R | x)/(k − 1), adds to
    // the variance of R_i − b_i, so a small k buys a noisy baseline. And at the same number of samples per
    // step the batch holds k times fewer distinct prompts. Kool et al. (2019) named it: "Buy 4 REINFORCE
    // samples, get a baseline for free!"; Ahmadian et al. (2024) use it as RLOO for RLHF; TRL's RLOOTrainer
    // writes it, on rewards laid out as (k, N/k), as baseline = (r.sum(0) − r) / (k − 1), which is the code
    // below with the groups along dimension 1 instead.

    /// <summary>
    /// RLOO's leave-one-out baselines b_i = (1/(k−1)) Σ_{j≠i} R_j, the mean reward of the other k − 1 samples
    /// of the same prompt (derived above). (N) rewards grouped as (N/k, k) — rows g·k … g·k + k − 1 share a
    /// prompt — → (N) baselines, in the rewards' dtype.
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

    /// <summary>The share of prompts whose k rewards are all equal, so that RLOO gives each of them A = 0 (TRL's
    /// frac_reward_zero_std). Restated word for word from chapter 8 (GroupRelative.ZeroStdFraction).</summary>
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

    /// <summary>
    /// The REINFORCE surrogate loss L(θ) = −(1/N) Σ_i A_i · log π_θ(τ_i), whose gradient is minus the
    /// policy-gradient estimate ĝ = (1/N) Σ_i A_i ∇ log π_θ(τ_i) (see the file header). The advantages are
    /// constants: they carry no gradient.
    /// </summary>
    /// <param name="tokenLogProbs">(N, M) log π_θ(a_t|s_t) of the sampled tokens, differentiable.</param>
    /// <param name="mask">(N, M) completion mask: 1 through the first <c>&lt;eos&gt;</c>, 0 after.</param>
    /// <param name="advantages">(N) R_i − b.</param>
    public static Tensor Loss(Tensor tokenLogProbs, Tensor mask, Tensor advantages)
    {
        var logp = SequenceLogProbs(tokenLogProbs, mask);             // (N): log π_θ(τ_i)
        return -(logp * advantages.detach()).mean();                  // loss = -(logp * R).mean()
    }

    /// <summary>
    /// KL(π_θ ‖ π_ref) per completion, from samples of π_θ: the k3 estimator per token,
    /// k3 = (e^r − 1) − r with r = log π_ref(a_t|s_t) − log π_θ(a_t|s_t) (unbiased for the KL of the next-token
    /// distributions at s_t, and never negative; Schulman 2020), summed over each completion's real tokens.
    /// (N, M) log-probs of the sampled tokens under both models and the mask → (N), in nats.
    /// </summary>
    public static Tensor SequenceKl(Tensor logp, Tensor refLogp, Tensor mask) => (Kl.K3(logp, refLogp) * mask).sum(1);

    /// <summary>
    /// The per-sample score vectors s_i = ∇_θ log π_θ(τ_i) of the given rows of a rollout, each flattened over
    /// all parameters: float64 (n, D). One forward and backward pass per sample — the price of per-sample
    /// gradients without vectorised autograd — so the program measures only every few steps, on a few samples.
    /// </summary>
    public static Tensor PerSampleScores(TinyGpt policy, Rollout rollout, IReadOnlyList<int> rows)
    {
        var parameters = policy.parameters().Cast<Tensor>().ToList();
        var scores = new List<Tensor>(rows.Count);
        foreach (int i in rows)
        {
            using var scope = NewDisposeScope();                            // TorchSharp: frees this sample's graph
            var sequence = rollout.Sequences.narrow(0, i, 1);                          // (1, P + M)
            var mask = rollout.CompletionMask.narrow(0, i, 1);                         // (1, M)
            var tokenLogp = Rollouts.TokenLogProbs(policy, sequence, rollout.PromptLength);   // (1, M)
            var logp = SequenceLogProbs(tokenLogp, mask).sum();                        // scalar: log π(τ_i)
            var grads = autograd.grad([logp], parameters);                             // ∂ log π(τ_i) / ∂ θ_k
            scores.Add(cat(grads.Select(g => g.reshape(-1)).ToList(), 0).to_type(float64)
                .MoveToOuterDisposeScope());                                           // (D), kept
        }
        return stack(scores);                                                          // (n, D)
    }

    /// <summary>
    /// The variance of a per-sample policy-gradient estimator, summed over parameters:
    ///
    ///     g_i = c_i · s_i   (c_i = R_i for no baseline, R_i − b with one; s_i = ∇ log π(τ_i)),
    ///     tr Cov[g] ≈ (1 / (n − 1)) Σ_i ‖g_i − ḡ‖²,   ḡ = (1/n) Σ_i g_i,
    ///
    /// the unbiased sample variance of each coordinate, added up. The update averages N such g_i, so its own
    /// variance is this divided by N — when they are independent, one per prompt (k ≥ 2: see
    /// <see cref="UpdateVariance"/>). Computed on the same samples for each choice of c, the numbers differ
    /// only by the baseline — which is what the ratio logged by the program isolates.
    /// </summary>
    /// <remarks>Computed without forming the n × D matrix of the g_i: Σ_i ‖g_i − ḡ‖² = Σ_i ‖g_i‖² − n‖ḡ‖²
    /// = Σ_i c_i² ‖s_i‖² − ‖Σ_i c_i s_i‖² / n.</remarks>
    /// <param name="scores">(n, D) per-sample score vectors (see <see cref="PerSampleScores"/>), n ≥ 2.</param>
    /// <param name="coefficients">(n) the c_i.</param>
    public static double GradientVariance(Tensor scores, Tensor coefficients)
    {
        long n = scores.shape[0];
        if (n < 2) throw new ArgumentException($"GradientVariance: need at least 2 samples for a variance, got {n}");
        var c = coefficients.to_type(scores.dtype);                            // (n)
        var squaredNorms = scores.pow(2).sum(1);                               // (n): ‖s_i‖²
        var sum = c.unsqueeze(0).matmul(scores);                               // (1, D): Σ_i c_i s_i = n ḡ
        var spread = (c * c * squaredNorms).sum() - sum.pow(2).sum() / n;     // Σ_i ‖g_i − ḡ‖²
        return spread.ToDouble() / (n - 1);
    }

    /// <summary>
    /// The constant baseline with the smallest variance (Greensmith, Bartlett &amp; Baxter 2004, §3). Write
    /// s = ∇ log π(τ) (the "score"; E[s] = 0 by the argument of the file header). The per-sample estimate
    /// g = (R − b) s has
    ///
    ///     tr Cov[g] = E[(R − b)² ‖s‖²] − ‖∇J‖²,
    ///
    /// and only the first term depends on b: a parabola in b, lowest at
    ///
    ///     b* = E[R ‖s‖²] / E[‖s‖²],
    ///
    /// estimated here by sample averages over the given per-sample scores s_i and rewards R_i. It is the
    /// average reward weighted by how large each sample's gradient is: when the samples with low reward have
    /// the large gradients, b* sits below the plain average reward, and the plain average — the running mean —
    /// can give more variance than no baseline at all.
    /// </summary>
    /// <param name="scores">(n, D) per-sample score vectors.</param>
    /// <param name="rewards">(n) their rewards.</param>
    public static double OptimalBaseline(Tensor scores, Tensor rewards)
    {
        var squaredNorms = scores.pow(2).sum(1);                                  // (n): ‖s_i‖²
        return (rewards.to_type(scores.dtype) * squaredNorms).sum().ToDouble() / squaredNorms.sum().ToDouble();
    }

    // ─── The variance of the update when samples share a prompt ──────────────────────────────────────
    //
    // GradientVariance treats the g_i as independent, and the update ĝ = (1/N) Σ_i g_i then has variance
    // tr Cov[g] / N. With k completions of each prompt they are not: samples of one prompt share its
    // difficulty and often its very completion (a confident model answers 47+9= the same way four times), and
    // under RLOO each A_i is made of the others' rewards. The groups are still independent of each other, so
    // take the group as the unit: G_g = (1/k) Σ_{i∈g} g_i, ĝ = (k/N) Σ_g G_g, and
    //
    //     N · Var[ĝ] = k · tr Cov[G],
    //
    // estimated by the sample variance of the G_g (N/k of them, ÷ (N/k − 1)) times k. For k = 1 it is
    // GradientVariance exactly; for k ≥ 2 it adds the covariances between samples of the same prompt, which
    // the per-sample number leaves out — the number to compare across baselines and values of k at the same
    // samples per step.

    /// <summary>
    /// N · Var[ĝ] for a batch of groups of k samples of the same prompt: k times the summed sample variance of
    /// the group means G_g = (1/k) Σ_{i∈g} c_i s_i (derived above). Rows g·k … g·k + k − 1 form group g.
    /// </summary>
    /// <param name="scores">(n, D) per-sample score vectors, n a multiple of k with n/k ≥ 2 groups.</param>
    /// <param name="coefficients">(n) the c_i.</param>
    /// <param name="k">samples per prompt.</param>
    public static double UpdateVariance(Tensor scores, Tensor coefficients, int k)
    {
        long n = scores.shape[0];
        if (k < 1 || n % k != 0 || n / k < 2)
            throw new ArgumentException($"UpdateVariance: need at least 2 whole groups of k = {k}, got {n} samples");
        long groups = n / k;
        var c = coefficients.to_type(scores.dtype);                                        // (n)
        var member = new double[groups * n];                                               // (n/k, n): 1/k if i ∈ g
        for (long i = 0; i < n; i++) member[i / k * n + i] = 1.0 / k;
        var average = tensor(member, [groups, n]).to_type(scores.dtype).to(scores.device);
        var means = (average * c.unsqueeze(0)).matmul(scores);                             // (n/k, D): G_g
        var spread = means.pow(2).sum() - means.sum([0]).pow(2).sum() / groups;          // Σ_g ‖G_g − Ḡ‖²
        return k * spread.ToDouble() / (groups - 1);
    }
}

/// <summary>
/// The running-mean baseline: an exponential moving average of the mean reward of past steps,
///
///     m_k = β m_{k−1} + (1 − β) R̄_k,  m_0 = 0,      b = m_k / (1 − β^k)  (0 before any step),
///
/// with Adam's bias correction, so the first steps' b is the average of the rewards seen so far rather than
/// a number dragged towards the arbitrary start 0. β = 0.9 averages roughly the last 10 steps: long enough
/// to smooth one batch's noise, short enough to follow the policy as it improves (a plain mean of all past
/// rewards would lag far behind).
/// </summary>
public sealed class RunningMean(double decay)
{
    private double _m;
    private int _count;

    /// <summary>β, the weight of the past.</summary>
    public double Decay { get; } = decay is >= 0 and < 1
        ? decay
        : throw new ArgumentOutOfRangeException(nameof(decay), decay, "RunningMean: decay must be in [0, 1)");

    /// <summary>The bias-corrected mean: the baseline b (0 before the first update).</summary>
    public double Value => _count == 0 ? 0.0 : _m / (1 - Math.Pow(Decay, _count));

    /// <summary>Folds in one step's mean reward.</summary>
    public void Update(double x)
    {
        _m = Decay * _m + (1 - Decay) * x;
        _count++;
    }
}
