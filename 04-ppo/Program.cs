// Chapter 4 — Proximal Policy Optimization (PPO)
// ==============================================
//
//     dotnet run -c Release --project 04-ppo                          # the default run (< 60 s): clipped surrogate
//     dotnet run -c Release --project 04-ppo -- --variant penalty     # PPO with the adaptive KL penalty instead
//     dotnet run -c Release --project 04-ppo -- --help                # every option
//
// Chapters 1 and 2 take ONE gradient step per batch of completions and throw the batch away: sampling
// is the expensive part, and the samples are used once. The reason is that the policy gradient is an
// expectation under the policy that drew the samples; after one step the policy has changed and the
// batch is off-policy. PPO (Schulman, Wolski, Dhariwal, Radford, Klimov, "Proximal Policy Optimization
// Algorithms", 2017, arXiv:1707.06347) re-uses each batch for several epochs of minibatch steps, by
// correcting for the change with an importance ratio and by making it pointless to change the policy
// much.
//
// The problem (as in every chapter). A prompt x is `a+b=`; the policy π_θ writes a completion
// y = (a_0, …, a_{T−1}) one token at a time and stops at its first <eos> (T ≤ 5). State s_t = (x, a_<t),
// action a_t ~ π_θ(·|s_t), reward r_t = 0 except at the last token, where the rule pays R(x, y) ∈ {0, 1}.
//
// ─── 1. From the policy gradient to a surrogate objective (paper §2) ──────────────────────────────────
//
// The policy gradient with advantages (chapter 2) is ĝ = Ê_t[∇_θ log π_θ(a_t|s_t) Â_t], Ê_t an average
// over the tokens of a batch sampled from π_θ. It is the gradient of L^PG(θ) = Ê_t[log π_θ(a_t|s_t) Â_t],
// but only AT the parameters that sampled the batch. Call those θ_old. For any θ, importance sampling
// rewrites an expectation under π_θ as one under π_θold:
//
//     E_{a∼π_θ}[Â(s, a)] = E_{a∼π_θold}[ ρ(θ) Â(s, a) ],       ρ_t(θ) = π_θ(a_t|s_t) / π_θold(a_t|s_t),
//
// which gives the "conservative policy iteration" surrogate (Kakade & Langford 2002; the paper's eq. 6)
//
//     L^CPI(θ) = Ê_t[ ρ_t(θ) Â_t ].
//
// At θ = θ_old, ρ = 1 and ∇_θ ρ_t = ρ_t ∇ log π_θ(a_t|s_t) = ∇ log π_θ(a_t|s_t): the same gradient as L^PG. So
// one step on L^CPI is one policy-gradient step. Further steps on the same batch are the point: each one
// re-weights the old samples by how much more (or less) likely the new policy makes them. In code the
// ratio is always formed from log-probabilities, ρ = exp(log π_θ − log π_θold) ("logRatio"), never as a
// quotient of probabilities that can underflow.
//
// L^CPI is only a good model of the true objective near θ_old (Â_t are advantages of π_θold, and the state
// distribution also changes with θ — TRPO's analysis, chapter 3). Maximised without a limit, it pushes ρ
// as far as it can: the ratio of a token with Â > 0 grows without bound. TRPO constrains the update by
// KL(π_θold ‖ π_θ) ≤ δ and pays for it with conjugate gradients and a line search. PPO gets most of the
// effect with first-order steps, in one of two ways.
//
// ─── 2. The objective (paper §3–§5) ──────────────────────────────────────────────────────────────────
//
// The clipped surrogate (paper eq. 7), this chapter's default:
//
//     L^CLIP(θ) = Ê_t[ min( ρ_t(θ) Â_t,  clip(ρ_t(θ), 1 − ε, 1 + ε) Â_t ) ],        ε = 0.2
//
// It takes away the incentive to move ρ_t outside [1 − ε, 1 + ε]: case by case above PPO.ClippedSurrogate.
// Or, with --variant penalty, the surrogate with an adaptive KL penalty (paper eq. 8; above PPO.PenaltyLoss,
// and the rule for β above PPO.AdaptBeta):
//
//     L^KLPEN(θ) = Ê_t[ ρ_t(θ) Â_t − β KL[π_θold(·|s_t), π_θ(·|s_t)] ],     β halved or doubled after each update.
//
// In the paper's MuJoCo comparison (its Table 1) the clipped form with ε = 0.2 scored best. The paper trains
// the policy and the value function on one objective (eq. 9),
//
//     L^{CLIP+VF+S}(θ) = Ê_t[ L^CLIP_t(θ) − c_1 L^VF_t(θ) + c_2 S[π_θ](s_t) ],
//
// L^VF_t = (V_θ(s_t) − V_t^targ)² the value function's squared error and S the entropy bonus. Here the value
// model is a separate network with its own optimiser (where Program.Run builds it, and why), so the objective
// splits into two problems:
//
//     policy π_θ       minimise  −L^CLIP − c_2 S      c_2 = 0.01 (CleanRL's ent_coef)
//     value model V_φ  minimise  L^VF                 the (clipped) ½ squared error against the λ-returns
//                                                     (PPO.ValueLoss)
//
// The entropy bonus slows the collapse of the policy's spread while the clipped objective is re-used. The
// advantages Â_t are GAE(γ, λ) from the value model's V_old, computed once per batch before any step (PPO.Gae),
// and normalised within each minibatch (PPO.NormalizeAdvantages).
//
// ─── 3. The loop (CleanRL ppo.py's order; Program.Run) ───────────────────────────────────────────────
//
//     repeat for --steps updates:
//       rollout      N completions from π_θold at T = 1; log π_θold(a_t|s_t) and V_old(s_t), no gradient
//       advantages   GAE on the batch; λ-returns G = Â + V_old
//       optimise     for --update-epochs epochs: shuffle the N completions, split them into
//                    --num-minibatches minibatches; on each, one AdamW step of the policy on
//                    pg_loss − c_2·entropy and one of the value model on the value loss, each gradient
//                    clipped to global norm --max-grad-norm (0.5); after an epoch, stop early if
//                    --target-kl is set and the epoch's approx KL (k3) exceeded it
//       report       the metrics below; the penalty variant's β rule; every --eval-every updates, held-out
//                    accuracy
//
// The learning rate decays linearly to 0 over the run (CleanRL's anneal_lr); Adam's ε is 1e-5 (CleanRL, the
// "37 details" #3, after Baselines). Minibatches are made of whole completions, so every token of a
// completion lands in the same minibatch, and the losses are means over a minibatch's real tokens.
//
// ─── What each logged number tells you ───────────────────────────────────────────────────────────────
//
//   policy_loss       −L^CLIP on the minibatch (means little by itself: Â is normalised to mean 0)
//   value_loss        the value model's (clipped) ½ squared error against the λ-returns
//   entropy           nats per token of the policy: how much it still explores; a fall to ~0 = collapse
//   approx_kl_k1/k3   sample estimates of KL(π_old ‖ π_θ) per token (PPO.ApproxKl); k3 is CleanRL's approx_kl
//   kl_old_exact      the exact KL(π_old ‖ π_θ) over the vocabulary after the update
//   clipfrac          share of tokens with |ρ − 1| > ε: how often the clip is active (PPO.ClipFraction)
//   explained_var     1 − Var[G − V_old] / Var[G]: 1 = V predicts the returns, ≤ 0 = no better than a constant
//   kl                KL(π_θ ‖ π_base) per completion (k3 summed over tokens) on the batch: the drift from the base
//
// Each is one number per update; how it is averaged, and the other columns: docs/04-ppo.md.
//
// ─── What was found ──────────────────────────────────────────────────────────────────────────────────
//
// The default run takes held-out accuracy from 0.223 to 0.65–0.66 on TorchSharp and from 0.252 to 0.60–0.63 on
// MinTorch (three seeds each), from 12,800 samples: a quarter of what chapter 2's actor-critic drew for a
// similar gain. The clip is active on about 10% of the tokens.
//
// Results, experiments and curves: docs/04-ppo.md
//
// References: J. Schulman et al., "Proximal Policy Optimization Algorithms", arXiv:1707.06347 (2017).
// S. Huang et al., "The 37 Implementation Details of Proximal Policy Optimization", ICLR blog track 2022.
// CleanRL's ppo.py (https://github.com/vwxyzjn/cleanrl). J. Schulman, "Approximating KL divergence" (2020).
// L. Engstrom et al., "Implementation Matters in Deep Policy Gradients", ICLR 2020.
using System.Diagnostics;
using MinRL;
using TorchSharp;
using static TorchSharp.torch;

namespace Ppo;

/// <summary>Which PPO objective the policy optimises.</summary>
public enum Variant
{
    /// <summary>L^CLIP: the clipped surrogate (paper §3) — the default, and the paper's best.</summary>
    Clip,
    /// <summary>L^KLPEN: the surrogate with an adaptive KL penalty β·KL[π_old, π_θ] (paper §4).</summary>
    Penalty,
}

/// <summary>The chapter's hyper-parameters; every one is a command-line option (<c>--help</c> lists them).</summary>
public sealed record Args : LabArgs
{
    [Help("PPO updates, each a rollout and epochs of minibatch steps (100 fit the default run in 60 s on 2 cores)",
          Min = 1)]
    public override int Steps { get; init; } = 100;

    [Help("completions sampled per update, one per prompt (chapters 1–2: 128)", Min = 2)]
    public int BatchSize { get; init; } = 128;

    [Help("minibatches per epoch (CleanRL's num_minibatches: 4)", Min = 1)]
    public int NumMinibatches { get; init; } = 4;

    [Help("epochs over each batch (CleanRL's update_epochs: 4; the paper's Atari setting: 3)", Min = 1)]
    public int UpdateEpochs { get; init; } = 4;

    [Help("the objective: clip (L^CLIP, paper §3) or penalty (the adaptive KL penalty, paper §4)")]
    public Variant Variant { get; init; } = Variant.Clip;

    [Help("ε of the clipped surrogate (CleanRL's clip_coef: 0.2, the paper's best, §6.1)", Min = 0)]
    public double ClipCoef { get; init; } = 0.2;

    [Help("policy AdamW learning rate (CleanRL: 2.5e-4)", Min = 0)]
    public double LearningRate { get; init; } = 2.5e-4;

    [Help("value model AdamW learning rate (Spinning Up's vf_lr: 1e-3, chapter 2's critic)", Min = 0)]
    public double ValueLearningRate { get; init; } = 1e-3;

    [Help("decay both learning rates linearly to 0 over the run (CleanRL's anneal_lr)")]
    public bool AnnealLr { get; init; } = true;

    [Help("Adam's ε (CleanRL: 1e-5, the 37 details #3; PyTorch's default is 1e-8)", Min = 0)]
    public double AdamEps { get; init; } = 1e-5;

    [Help("discount γ (InstructGPT, TRL: 1; CleanRL's 0.99 is for long episodes)", Min = 0, Max = 1)]
    public double Gamma { get; init; } = 1.0;

    [Help("GAE λ (CleanRL's gae_lambda: 0.95)", Min = 0, Max = 1)]
    public double GaeLambda { get; init; } = 0.95;

    [Help("normalise advantages to mean 0, std 1 within each minibatch (CleanRL's norm_adv)")]
    public bool NormAdv { get; init; } = true;

    [Help("clip the value loss around the rollout's values, by ±clip-coef (CleanRL's clip_vloss)")]
    public bool ClipValueLoss { get; init; } = true;

    [Help("entropy bonus c_2 (CleanRL's ent_coef: 0.01)", Min = 0)]
    public double EntCoef { get; init; } = 0.01;

    [Help("clip each model's gradient to this global L2 norm, 0 = off (CleanRL's max_grad_norm: 0.5)", Min = 0)]
    public double MaxGradNorm { get; init; } = 0.5;

    [Help("stop an update's epochs early once an epoch's approx KL (k3) exceeds this, 0 = off " +
          "(CleanRL's target_kl: None)", Min = 0)]
    public double TargetKl { get; init; } = 0.0;

    [Help("penalty variant: the initial β (the paper: 'not important in practice because the algorithm quickly " +
          "adjusts it')", Min = 0)]
    public double KlBeta { get; init; } = 1.0;

    [Help("penalty variant: d_targ, the KL per update that β adapts towards (the paper's best adaptive setting: " +
          "0.01)", Min = 0)]
    public double KlTarget { get; init; } = 0.01;

    [Help("reward for a well-formed answer, right or wrong, 0 = the rule alone (DeepSeek-R1-style format bonus)",
          Min = 0)]
    public double FormatBonus { get; init; } = 0.0;

    [Help("evaluate held-out sampled accuracy (T = 1) every this many updates (0 = only at the end)", Min = 0)]
    public int EvalEvery { get; init; } = 25;
}

public static class Program
{
    static int Main(string[] args) =>
        Lab.Run<Args>(args, "04-ppo", "proximal policy optimisation (clipped surrogate or adaptive KL penalty) on a+b=",
                      Train);

    const int P = ArithmeticTask.PromptLength;          // 7: the first completion token is at position P
    const int M = ArithmeticTask.MaxCompletionLength;   // 5: completion tokens at most

    /// <summary>The whole run: train, evaluate, report. Returns the exit code.</summary>
    public static int Train(Args args)
    {
        var result = Run(args);
        Lab.Finish(result.Summary);
        return 0;
    }

    /// <summary>What a run measured (the tests read it).</summary>
    public sealed record RunResult(RunSummary Summary, MetricsLog Log);

    /// <summary>Trains and evaluates; returns the summary and the per-update log.</summary>
    public static RunResult Run(Args args)
    {
        int updates = args.StepsOr(quickSteps: 30);
        if (args.BatchSize < args.NumMinibatches)
            throw new ArgumentException(
                $"--batch-size {args.BatchSize} cannot be split into --num-minibatches {args.NumMinibatches}");
        manual_seed(args.Seed);                                // (Lab.Run did too; this makes Run reproducible alone)

        // ─── the three models ────────────────────────────────────────────────────────────────────────
        // π_θ (trained), V_φ (trained), π_base (frozen: only for the KL we report).
        var task = new ArithmeticTask();                       // the book's split: 9,488 train, 512 held out
        var baseConfig = new BaseModelConfig();                // the shared base every chapter starts from
        var reference = BaseModel.Load(baseConfig);
        var policy = BaseModel.Load(baseConfig, TextWriter.Null);

        // The value model is SEPARATE: its own copy of the base model with a scalar head, its own AdamW —
        // chapter 2's design, for chapter 2's measured reason: a value head on the policy's trunk (CleanRL's
        // shared design, loss L_π + 0.5 L_V, one optimiser) ended at an explained variance of ≈ 0 on this task,
        // against 0.17 for a separate critic, for a similar accuracy gain. The paper writes one θ because its
        // Atari networks share a trunk between policy and value (CleanRL's ppo.py does too, with
        // c_1 = vf_coef = 0.5). With two models the objective splits into two independent problems and c_1
        // disappears (Adam is invariant to a loss's scale, so c_1 would only change the grad-norm clip).
        // InstructGPT and TRL's PPO trainer also keep the value model separate, and so does CleanRL's own
        // ppo_continuous_action.py (two networks, one optimiser; the 37 details, #13, on shared vs separate). It
        // costs one more model in memory (3 held: policy, value model, frozen reference for the reported KL) and
        // one more forward/backward per minibatch.
        //
        // V_φ is the base's trunk + Linear(C, 1), the head zero so V ≡ 0 at first (chapter 2: the N(0, 0.02)
        // init would feed noise of std ≈ 0.16, comparable to the rewards, into the first advantages). The copied
        // LM head is frozen (V never reads it), so trainable_params counts only what the optimisers update.
        var critic = new TinyGpt(baseConfig.Model with { ScalarHead = true });
        critic.load_state_dict(reference.state_dict(), strict: false);        // everything but scalar_head.*
        using (no_grad())
            foreach (var (name, p) in critic.named_parameters())
                if (name.StartsWith("scalar_head.")) p.zero_();
                else if (name.StartsWith("lm_head.")) p.requires_grad_(false);   // copied along, never used by V
        reference.eval();
        foreach (var p in reference.parameters()) p.requires_grad_(false);

        var policyOptimizer = optim.AdamW(policy.parameters(), lr: args.LearningRate, eps: args.AdamEps);
        var criticOptimizer = optim.AdamW(critic.parameters().Where(p => p.requires_grad), lr: args.ValueLearningRate,
                                          eps: args.AdamEps);

        // Held-out accuracy before training, at T = 1; every evaluation uses a generator with the same seed, so the
        // base and the trained policy face the same random numbers and their difference is less noisy.
        var baseEval = BaseModel.Evaluate(policy, task.Eval, temperature: 1,
                                          generator: new Generator(BaseModel.EvalSeed));
        Lab.Print($"base model, held-out sampled (T = 1): {baseEval}");

        var problemsRng = new SplitMix64(args.Seed);                           // which training problems each update
        var shuffleRng = new SplitMix64(args.Seed + 1_000_003);                // minibatch order
        double beta = args.KlBeta;                                             // the penalty variant's β (adapted)
        var final = baseEval;
        using var log = new MetricsLog(Path.Combine(args.Out, "metrics.csv"));
        using (var progress = Lab.Progress(updates, $"PPO ({Name(args.Variant)})",
                                           "reward", "eval_accuracy", "approx_kl_k3", "clipfrac"))
        {
            for (int update = 1; update <= updates; update++)
            {
                using var scope = NewDisposeScope();   // TorchSharp: this update's tensors are freed at its end
                var clock = Stopwatch.StartNew();
                // CleanRL's anneal_lr: lr_k = (1 − (k − 1)/K) · lr, so the first update uses the full rate and the
                // last 1/K of it.
                double frac = args.AnnealLr ? 1.0 - (update - 1.0) / updates : 1.0;
                foreach (var g in policyOptimizer.ParamGroups) g.LearningRate = frac * args.LearningRate;
                foreach (var g in criticOptimizer.ParamGroups) g.LearningRate = frac * args.ValueLearningRate;

                // ─── 1. rollout: N completions from π_θold at T = 1, and everything about them that θ_old fixes ─
                var problems = ArithmeticTask.Sample(task.Train, args.BatchSize, problemsRng);
                var rollout = Rollouts.Generate(policy, ArithmeticTask.EncodePrompts(problems), M);
                var sequences = rollout.Sequences;                           // (N, P+M) int64
                var mask = rollout.CompletionMask;                           // (N, M): 1 through the first <eos>
                var scores = ArithmeticTask.Rewards(problems, rollout.Completions, args.FormatBonus);   // (N) R(x, y)
                var rewards = PPO.TokenRewards(scores, rollout.Lengths, M);  // (N, M): R at the terminal token, else 0

                Tensor oldLogp, oldLogProbsAll, oldValues, refLogp;
                using (no_grad())
                {
                    // log π_θold(a_t|s_t), and π_θold's whole next-token distribution (the penalty's exact KL and
                    // the logged one). Recomputed by a forward pass rather than taken from the sampler, so that
                    // ρ = 1 exactly before the first step.
                    var old = Rollouts.Score(policy, sequences, P);
                    oldLogp = old.LogProbs;                                     // (N, M)
                    oldLogProbsAll = old.Logits.log_softmax(-1);                // (N, M, V)
                    // V_old(s_t): the value model read at the positions whose logits give π(a_t|s_t), P−1 … P+M−2.
                    oldValues = critic.Scalar(critic.Hidden(sequences)).narrow(1, P - 1, M);   // (N, M)
                    refLogp = Rollouts.TokenLogProbs(reference, sequences, P);  // (N, M): for the KL to the base
                }

                // ─── 2. advantages: GAE(γ, λ) from V_old, once per batch; the value targets are the λ-returns ──
                var (advantages, returns) = PPO.Gae(rewards, oldValues, mask, args.Gamma, args.GaeLambda);   // (N, M)

                // ─── 3. optimise: epochs × shuffled minibatches, one step of each model per minibatch ──────────
                int N = args.BatchSize;
                var sums = new Dictionary<string, double>();               // the last epoch's minibatch means
                int epochsRun = 0;
                double clipSum = 0, gradNormSum = 0, criticGradNormSum = 0;   // over all the update's minibatches
                policy.train();
                critic.train();
                for (int epoch = 0; epoch < args.UpdateEpochs; epoch++)
                {
                    sums.Clear();
                    var minibatches = Sampling.Minibatches(N, args.NumMinibatches, shuffleRng);
                    foreach (var indices in minibatches)
                    {
                        using var minibatchScope = NewDisposeScope();          // TorchSharp: one minibatch's tensors
                        var idx = tensor(indices, [indices.Length]);           // (B) rows of this minibatch
                        var mbMask = mask.index_select(0, idx);                // (B, M)
                        var mbSeq = sequences.index_select(0, idx);            // (B, P+M)

                        // The policy: new log-probs, ρ_t = exp(log π_θ − log π_θold).
                        var scored = Rollouts.Score(policy, mbSeq, P);
                        var logRatio = scored.LogProbs - oldLogp.index_select(0, idx);   // (B, M)
                        var mbAdv = advantages.index_select(0, idx);                     // (B, M)
                        if (args.NormAdv) mbAdv = PPO.NormalizeAdvantages(mbAdv, mbMask);

                        var (k1, k3) = PPO.ApproxKl(logRatio, mbMask);                   // before this minibatch's step
                        clipSum += PPO.ClipFraction(logRatio, mbMask, args.ClipCoef);

                        // L = pg_loss − c_2·S: the clipped surrogate (or the KL-penalised one) and the entropy bonus.
                        var entropy = Rollouts.MaskedMean(scored.Entropy(), mbMask);   // scalar, nats per token
                        Tensor pgLoss = args.Variant == Variant.Clip
                            ? PPO.PolicyLoss(logRatio, mbAdv, mbMask, args.ClipCoef)
                            : PPO.PenaltyLoss(logRatio, mbAdv,
                                PPO.ExactKl(oldLogProbsAll.index_select(0, idx), scored.Logits.log_softmax(-1)),
                                mbMask, beta);
                        var loss = pgLoss - args.EntCoef * entropy;
                        Lab.CheckFinite(loss, "policy loss", update);
                        policyOptimizer.zero_grad();
                        loss.backward();
                        gradNormSum += Grad.ClipNorm(policy.parameters(), args.MaxGradNorm);
                        policyOptimizer.step();

                        // The value model: its own loss, its own optimiser.
                        var newValues = critic.Scalar(critic.Hidden(mbSeq)).narrow(1, P - 1, M);   // (B, M)
                        var valueLoss = PPO.ValueLoss(newValues, oldValues.index_select(0, idx),
                            returns.index_select(0, idx), mbMask, args.ClipValueLoss ? args.ClipCoef : null);
                        Lab.CheckFinite(valueLoss, "value loss", update, "try a smaller --value-learning-rate");
                        criticOptimizer.zero_grad();
                        valueLoss.backward();
                        criticGradNormSum += Grad.ClipNorm(critic.parameters(), args.MaxGradNorm);
                        criticOptimizer.step();

                        Add(sums, "policy_loss", pgLoss.ToDouble());
                        Add(sums, "value_loss", valueLoss.ToDouble());
                        Add(sums, "entropy", entropy.ToDouble());
                        Add(sums, "approx_kl_k1", k1);
                        Add(sums, "approx_kl_k3", k3);
                    }
                    epochsRun++;
                    // CleanRL's early stop: once an epoch has moved the policy more than target_kl from π_old, the
                    // rest of the batch's epochs are skipped (measured with k3 over the epoch's minibatches).
                    if (args.TargetKl > 0 && sums["approx_kl_k3"] / minibatches.Count > args.TargetKl) break;
                }
                int minibatchesRun = epochsRun * args.NumMinibatches;   // steps of each model in this update

                // ─── 4. report, and the penalty variant's β rule ──────────────────────────────────────────────
                List<(string Name, double Value)> metrics;
                double d;
                using (no_grad())
                {
                    // d = Ê_t[KL[π_old(·|s_t), π_θ(·|s_t)]] after the update, exact over the vocabulary (the
                    // paper's d).
                    var after = Rollouts.Score(policy, sequences, P);
                    d = Rollouts.MaskedMean(PPO.ExactKl(oldLogProbsAll, after.Logits.log_softmax(-1)), mask)
                        .ToDouble();
                    double klToBase = Rollouts.MaskedSum(Kl.K3(oldLogp, refLogp), mask, 1).mean().ToDouble(); // nats
                    var measured = ArithmeticTask.Measure(problems, rollout.Completions);
                    metrics = new List<(string, double)>
                    {
                        ("reward", scores.mean().ToDouble()),
                        ("accuracy", measured.Accuracy),
                        ("policy_loss", sums["policy_loss"] / args.NumMinibatches),
                        ("value_loss", sums["value_loss"] / args.NumMinibatches),
                        ("entropy", sums["entropy"] / args.NumMinibatches),
                        ("approx_kl_k1", sums["approx_kl_k1"] / args.NumMinibatches),
                        ("approx_kl_k3", sums["approx_kl_k3"] / args.NumMinibatches),
                        ("kl_old_exact", d),
                        ("clipfrac", clipSum / minibatchesRun),
                        ("explained_var", PPO.ExplainedVariance(oldValues, returns, mask)),
                        ("kl", klToBase),
                        ("epochs", epochsRun),
                        ("beta", beta),                                        // the β this update used
                        ("grad_norm", gradNormSum / minibatchesRun),
                        ("critic_grad_norm", criticGradNormSum / minibatchesRun),
                        ("value_mean", Rollouts.MaskedMean(oldValues, mask).ToDouble()),
                        ("length", rollout.Lengths.to_type(ScalarType.Float64).mean().ToDouble()),
                    };
                }
                if (args.Variant == Variant.Penalty) beta = PPO.AdaptBeta(beta, d, args.KlTarget);

                metrics.Add(("lr", frac * args.LearningRate));
                if (update == updates || args.EvalEvery > 0 && update % args.EvalEvery == 0)
                {
                    final = BaseModel.Evaluate(policy, task.Eval, temperature: 1,
                                               generator: new Generator(BaseModel.EvalSeed));
                    metrics.Add(("eval_accuracy", final.Accuracy));
                }
                metrics.Add(("step_ms", clock.Elapsed.TotalMilliseconds));
                log.Add(update, [.. metrics]);
                progress.Update(update, [.. metrics]);
            }
        }
        Lab.Print($"trained policy, held-out sampled (T = 1): {final}");
        double finalKl = Kl.HeldOut(policy, reference, task.Eval, new Generator(BaseModel.EvalSeed));   // same samples

        var plot = new SvgPlot($"04-ppo ({Name(args.Variant)}), seed {args.Seed}") { Smoothing = 0.8 };
        plot.Add("held-out accuracy (T = 1)", log.Dots("eval_accuracy")).HLine(baseEval.Accuracy, "base");
        plot.Add("reward (batch)", log.Series("reward"));
        plot.Add("approx KL(π_old ‖ π_θ) per token", log.Series("approx_kl_k1", label: "k1"),
            log.Series("approx_kl_k3", label: "k3"), log.Series("kl_old_exact", label: "exact, after the update"));
        plot.Add("clip fraction", log.Series("clipfrac"));
        plot.Add("entropy (nats / token)", log.Series("entropy"));
        plot.Add("value loss", log.Series("value_loss"));
        plot.Add("explained variance", log.Series("explained_var"));
        plot.Add("KL to base (nats / completion)", log.Series("kl"));
        if (args.Variant == Variant.Penalty) plot.Add("β (adaptive KL penalty)", log.Series("beta"));
        plot.Write(Path.Combine(args.Out, "curves.svg"));

        long trainable = policy.parameters().Concat(critic.parameters()).Where(p => p.requires_grad)
                               .Sum(p => p.numel());
        var summary = new RunSummary
        {
            Metric = "held-out accuracy (sampled, T = 1)",
            Base = baseEval.Accuracy,
            Final = final.Accuracy,
            Kl = finalKl,
            Extra =
            {
                ["kl_estimator"] = "k3 summed over each completion's tokens, one T = 1 sample per held-out prompt",
                ["models_held"] = 3,
                ["models"] = "policy, separate value model (base trunk + scalar head), frozen base for the KL",
                ["trainable_params"] = trainable,
                ["samples_generated"] = (long)updates * args.BatchSize,
                ["variant"] = Name(args.Variant),
                ["updates"] = updates,
                ["gradient_steps"] = (long)log.Column("epochs").Sum() * args.NumMinibatches,
                ["final_beta"] = args.Variant == Variant.Penalty ? beta : double.NaN,
                ["clipfrac_mean"] = log.Column("clipfrac").Average(),
                ["approx_kl_k3_mean"] = log.Column("approx_kl_k3").Average(),
                ["explained_var_last25"] = log.Column("explained_var").TakeLast(25).Average(),
                ["mean_update_ms"] = log.Column("step_ms").Average(),
            },
        };
        return new RunResult(summary, log);
    }

    static void Add(Dictionary<string, double> sums, string key, double value) =>
        sums[key] = sums.GetValueOrDefault(key) + value;

    /// <summary>The option's spelling on the command line.</summary>
    static string Name(Variant v) => v == Variant.Clip ? "clip" : "penalty";
}

/// <summary>
/// PPO's pure functions, in the order an update uses them: GAE and advantage normalisation; the clipped and the
/// penalised surrogate, with the exact KL; the value loss with its clip; the diagnostics (approx KL, clip fraction,
/// explained variance); the penalty's β rule. tests/Chapters.Tests/PpoTests.cs pins them to known values.
/// </summary>
public static class PPO
{
    // ------------------------------------------------------------------ advantages

    /// <summary>
    /// Per-token rewards from one score per completion: r_t = R at the completion's last real token, 0 elsewhere.
    /// scores (N), lengths int64 (N) → (N, T).
    /// </summary>
    public static Tensor TokenRewards(Tensor scores, Tensor lengths, long T)
    {
        var positions = arange(T, dtype: ScalarType.Int64).unsqueeze(0);     // (1, T)
        var isLast = positions.eq((lengths - 1).unsqueeze(1));                // (N, T): true at t = length − 1
        return isLast.to_type(scores.dtype) * scores.unsqueeze(1);            // (N, T)
    }

    // ─── GAE(γ, λ) (Schulman et al. 2016, arXiv:1506.02438; derived in chapter 2) ──────────────────────
    //
    //     δ_t = r_t + γ V(s_{t+1}) − V(s_t)   (V = 0 after the terminal token),    Â_t = δ_t + γλ Â_{t+1},
    //
    // with γ = 1 (one reward at the end of a ≤ 5-token completion: discounting would only make the targets
    // depend on the length; InstructGPT, TRL) and λ = 0.95 (CleanRL's gae_lambda; chapter 2 measured λ = 0.95
    // and λ = 1 within seed noise of each other on this task, and λ = 0 collapsing). Advantages are computed
    // ONCE per batch, from V_old, before any update (they belong to π_θold). The value model's targets are the
    // λ-returns G_t = Â_t + V_old(s_t).

    /// <summary>
    /// GAE(γ, λ) advantages and λ-returns, written as CleanRL's ppo.py writes it: a backward loop over time, each
    /// step vectorised over the batch. V(s_{t+1}) = 0 after a row's terminal token (its mask is 0 from there on)
    /// and, past the last column, the bootstrap value of a cut-off rollout (<paramref name="lastValues"/>,
    /// default 0: terminal).
    /// </summary>
    /// <param name="rewards">(N, T) r_t, 0 after each row's end.</param>
    /// <param name="values">(N, T) V(s_t) (constants).</param>
    /// <param name="mask">(N, T) 1 on each row's real tokens, then 0s.</param>
    /// <param name="gamma">γ.</param>
    /// <param name="lambda">λ.</param>
    /// <param name="lastValues">(N), optional: V(s_T) for rows that run to the last column without ending.</param>
    /// <returns>Â and G, (N, T) each, 0 where the mask is 0.</returns>
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

    /// <summary>Â normalised to mean 0 and (unbiased) std 1 over the real tokens, 0 elsewhere (CleanRL's norm_adv:
    /// (A − mean)/(std + 1e-8)). The loop applies it within each minibatch.</summary>
    public static Tensor NormalizeAdvantages(Tensor advantages, Tensor mask)
    {
        var n = mask.sum();
        var mean = (advantages * mask).sum() / n;
        var variance = ((advantages - mean).square() * mask).sum() / (n - 1).clamp(min: 1);
        return (advantages - mean) / (variance.sqrt() + 1e-8) * mask;
    }

    // ------------------------------------------------------------------ the policy's objective

    // ─── The clipped surrogate (paper §3, eq. 7) ───────────────────────────────────────────────────────
    //
    //     L^CLIP(θ) = Ê_t[ min( ρ_t(θ) Â_t,  clip(ρ_t(θ), 1 − ε, 1 + ε) Â_t ) ],        ε = 0.2
    //
    // The second term removes the incentive to move ρ_t outside [1 − ε, 1 + ε]; the min makes L^CLIP a
    // pessimistic bound on L^CPI (L^CLIP ≤ L^CPI everywhere, equal to first order at ρ = 1). Case by case:
    //
    //     Â > 0:  min(ρÂ, clip(ρ)Â) = min(ρ, 1 + ε)·Â      flat (zero gradient) once ρ > 1 + ε: no more credit
    //                                                       for making a good token even more likely;
    //                                                       for ρ < 1 − ε the unclipped ρÂ is the min: the
    //                                                       gradient still pulls a good token back up.
    //     Â < 0:  min(ρÂ, clip(ρ)Â) = max(ρ, 1 − ε)·Â      flat once ρ < 1 − ε; for ρ > 1 + ε (a bad token that
    //                                                       became MORE likely) the gradient still pushes it down.
    //
    // So a sample stops contributing to the gradient exactly when it has already moved ε in the direction its
    // advantage wants. The loss minimised in code is the negative, per token (CleanRL's pg_loss before the mean;
    // PolicyLoss then averages it over a minibatch's real tokens):
    //
    //     max(−Â·ρ, −Â·clip(ρ, 1 − ε, 1 + ε)) = −min(ρ·Â, clip(ρ, 1 − ε, 1 + ε)·Â),     ρ = exp(logRatio).
    //
    // Its gradient is −Â·ρ·∇logRatio where the unclipped term is the one chosen, and exactly 0 where the clipped
    // (constant) term is.

    /// <summary>The clipped surrogate per token, as a loss (see above). Any shape; elementwise.</summary>
    public static Tensor ClippedSurrogate(Tensor logRatio, Tensor advantages, double clipCoef)
    {
        var ratio = logRatio.exp();                                               // ρ_t = π_θ / π_θold
        var unclipped = -advantages * ratio;                                      // −Â ρ
        var clipped = -advantages * ratio.clamp(1 - clipCoef, 1 + clipCoef);      // −Â clip(ρ, 1 − ε, 1 + ε)
        return maximum(unclipped, clipped);                                       // = −min(Â ρ, Â clip(ρ))
    }

    /// <summary>−L^CLIP: the clipped surrogate averaged over the real tokens. logRatio, advantages, mask: (B, M).
    /// </summary>
    public static Tensor PolicyLoss(Tensor logRatio, Tensor advantages, Tensor mask, double clipCoef) =>
        Rollouts.MaskedMean(ClippedSurrogate(logRatio, advantages.detach(), clipCoef), mask);

    // ─── The adaptive KL penalty (paper §4, eq. 8; --variant penalty) ──────────────────────────────────
    //
    //     L^KLPEN(θ) = Ê_t[ ρ_t(θ) Â_t − β KL[π_θold(·|s_t), π_θ(·|s_t)] ],
    //
    // the KL here taken EXACTLY, over the 15-token vocabulary at every state (ExactKl, below; we keep π_old's
    // whole next-token distribution from the rollout: it is small). There is no clip: the penalty alone keeps
    // π_θ near π_old, and β is adapted after each update so that the KL an update takes stays near a target
    // (AdaptBeta, at the end of this class).

    /// <summary>
    /// −L^KLPEN = mean over the real tokens of −ρ·Â + β·KL[π_old(·|s_t), π_θ(·|s_t)]. <paramref name="kl"/> (B, M)
    /// is the per-state KL, differentiable in θ (see <see cref="ExactKl"/>).
    /// </summary>
    public static Tensor PenaltyLoss(Tensor logRatio, Tensor advantages, Tensor kl, Tensor mask, double beta) =>
        Rollouts.MaskedMean(-advantages.detach() * logRatio.exp() + beta * kl, mask);

    /// <summary>
    /// KL[π_old(·|s), π_θ(·|s)] = Σ_a π_old(a|s) (log π_old(a|s) − log π_θ(a|s)) at each state, from the two full
    /// log-probability tables (…, V) → (…). Exact: no sampling. Differentiable in <paramref name="newLogProbs"/>.
    /// </summary>
    public static Tensor ExactKl(Tensor oldLogProbs, Tensor newLogProbs) =>
        (oldLogProbs.exp() * (oldLogProbs - newLogProbs)).sum(-1);

    // ------------------------------------------------------------------ the value model's objective

    // ─── The value loss, and value clipping ────────────────────────────────────────────────────────────
    //
    // L^VF_t = (V_φ(s_t) − V_t^targ)², the target V_t^targ = G_t = Â_t + V_old(s_t) the λ-return (Gae, above).
    // CleanRL's ppo.py halves it and, with clip_vloss, clips it:
    //
    //     ½ max( (V − G)²,  (V_old + clip(V − V_old, −ε, ε) − G)² ).mean()
    //
    // Value clipping keeps the value model near the values the advantages were computed from, the same
    // trust-region idea as the policy clip (Baselines' PPO2, CleanRL's default): the max picks the larger,
    // pessimistic, error, so the gradient stops once V has moved more than ε from V_old in a direction that does
    // not help. The 37 details (#9) add that Engstrom et al. 2020 found no evidence that it helps and
    // Andrychowicz et al. 2021 that it can hurt: `--clip-value-loss false` turns it off.

    /// <summary>
    /// The value loss over the real tokens: ½ (V − G)², or the clipped form above when
    /// <paramref name="clipCoef"/> is given.
    /// </summary>
    /// <param name="values">(B, M) V_φ(s_t), differentiable.</param>
    /// <param name="oldValues">(B, M) V_old(s_t), constants.</param>
    /// <param name="returns">(B, M) G_t, constants.</param>
    /// <param name="mask">(B, M) real tokens.</param>
    /// <param name="clipCoef">ε for the clipped form, null for the plain one.</param>
    public static Tensor ValueLoss(Tensor values, Tensor oldValues, Tensor returns, Tensor mask, double? clipCoef)
    {
        var target = returns.detach();
        var unclipped = (values - target).square();                          // (V − G)²
        if (clipCoef is not double eps) return 0.5 * Rollouts.MaskedMean(unclipped, mask);
        var old = oldValues.detach();
        var clippedValues = old + (values - old).clamp(-eps, eps);           // V_old + clip(V − V_old, −ε, ε)
        var clipped = (clippedValues - target).square();
        return 0.5 * Rollouts.MaskedMean(maximum(unclipped, clipped), mask);
    }

    // ------------------------------------------------------------------ diagnostics

    // ─── How far the policy has moved: approx KL (Schulman, "Approximating KL divergence", 2020) ───────
    //
    // With logRatio = log ρ = log π_θ(a) − log π_old(a) on tokens a ~ π_old, two sample estimates of
    // KL(π_old ‖ π_θ) = E_old[−log ρ], both logged, as CleanRL logs them:
    //
    //   k1 = mean(−log ρ)                 "old_approx_kl": unbiased, noisy, can be negative
    //   k3 = mean((ρ − 1) − log ρ)        "approx_kl": unbiased too (E_old[ρ] = 1), ≥ 0, lower variance
    //
    // MinRL's Kl class derives both. The loop measures them on each minibatch before its step, as CleanRL does,
    // and k3 drives --target-kl's early stop.

    /// <summary>k1 and k3 (see above) of <paramref name="logRatio"/> over the real tokens. No gradient.</summary>
    public static (double k1, double k3) ApproxKl(Tensor logRatio, Tensor mask)
    {
        using var _ = no_grad();
        var lr = logRatio.detach().to_type(ScalarType.Float64);
        var m = mask.to_type(ScalarType.Float64);
        double k1 = Rollouts.MaskedMean(-lr, m).ToDouble();
        double k3 = Kl.OldToNew(logRatio, mask);                           // (ρ − 1) − log ρ, the shared text
        return (k1, k3);
    }

    // ─── The clip fraction (CleanRL's clipfracs) ───────────────────────────────────────────────────────
    //
    // The share of real tokens whose ratio is outside [1 − ε, 1 + ε], |ρ − 1| > ε: how often the clip is active.
    // ~0 means PPO is plain policy gradient here; a large share (≳ 0.3) means the epochs are pushing against the
    // trust region. Like CleanRL's, it ignores the sign of Â, so it also counts the tokens whose gradient the
    // clip leaves alone (Â > 0 with ρ < 1 − ε, Â < 0 with ρ > 1 + ε: see ClippedSurrogate).

    /// <summary>The share of real tokens with |ρ − 1| &gt; ε (see above). No gradient.</summary>
    public static double ClipFraction(Tensor logRatio, Tensor mask, double clipCoef)
    {
        using var _ = no_grad();
        var outside = (logRatio.detach().to_type(ScalarType.Float64).exp() - 1).abs().gt(clipCoef)
            .to_type(ScalarType.Float64);                                     // 1 where |ρ − 1| > ε
        return Rollouts.MaskedMean(outside, mask.to_type(ScalarType.Float64)).ToDouble();
    }

    /// <summary>
    /// 1 − Var[G − V] / Var[G] over the real tokens (CleanRL's explained_var): 1 when the values predict the
    /// returns, 0 when no better than their mean, negative when worse; NaN when the returns are constant.
    /// </summary>
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

    // ------------------------------------------------------------------ the penalty's β rule

    // ─── The β rule (paper §4) ─────────────────────────────────────────────────────────────────────────
    //
    // After each update, with d = Ê_t[KL[π_θold(·|s_t), π_θ(·|s_t)]] measured on the batch (exactly: the
    // logged kl_old_exact):
    //
    //     d < d_targ / 1.5  →  β ← β / 2          the policy barely moved: penalise less
    //     d > d_targ × 1.5  →  β ← β × 2          it moved too far: penalise more
    //
    // (The paper: "the parameters 1.5 and 2 above are chosen heuristically, but the algorithm is not very
    // sensitive to them"; the initial β "is not important in practice because the algorithm quickly adjusts
    // it".) Among the paper's adaptive-penalty settings, d_targ = 0.01 scored best in its MuJoCo comparison
    // (its Table 1).

    /// <summary>The β for the next update, after one that moved the policy by d (the rule above).</summary>
    public static double AdaptBeta(double beta, double d, double dTarget) =>
        d < dTarget / 1.5 ? beta / 2 : d > dTarget * 1.5 ? beta * 2 : beta;
}
