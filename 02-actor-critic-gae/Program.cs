// Chapter 2 — Advantage actor-critic with GAE(γ, λ)
// ==================================================
//
//     dotnet run -c Release --project 02-actor-critic-gae                       # the default run (λ = 0.95)
//     dotnet run -c Release --project 02-actor-critic-gae -- --gae-lambda 1     # Monte Carlo advantages
//     dotnet run -c Release --project 02-actor-critic-gae -- --help             # every option
//
// Chapter 1 pushed up the log-probability of every token of a completion by the same amount: the
// completion's reward minus a baseline. This chapter gives each token its own credit. A second
// network, the critic V_φ, learns how much reward to expect from every partial completion, and the
// policy (the actor) is pushed by the *advantage* of each token — how much better things look after
// it than before it. How far ahead each advantage looks is one knob, λ, of the generalized
// advantage estimator GAE(γ, λ) (Schulman, Moritz, Levine, Jordan, Abbeel, "High-Dimensional
// Continuous Control Using Generalized Advantage Estimation", ICLR 2016, arXiv:1506.02438).
//
// The problem (as in every chapter). A prompt x is `a+b=`; the policy π_θ writes a completion
// y = (a_0, a_1, …, a_{T−1}) one token at a time and stops at its first <eos> (so T ≤ 5). Seen as
// reinforcement learning,
//
//     state   s_t = (x, a_0, …, a_{t−1})        the prompt plus the tokens so far
//     action  a_t ~ π_θ(· | s_t)                the next token
//     reward  r_t = 0 for t < T − 1,  r_{T−1} = R(x, y) ∈ {0, 1}    the rule's score, at the end
//
// and we maximise J(θ) = E_{x, y ~ π_θ}[ Σ_t γ^t r_t ]. With γ = 1 that is the expected score.
//
// The policy gradient, with any Ψ (GAE paper §2, eq. 1):
//
//     ∇_θ J = E[ Σ_t Ψ_t ∇_θ log π_θ(a_t | s_t) ],
//
// where Ψ_t may be the whole return R (REINFORCE), R − b (chapter 1), the return-to-go
// G_t = Σ_{l≥0} γ^l r_{t+l}, the action value Q^π(s_t, a_t), or the advantage
// A^π(s_t, a_t) = Q^π(s_t, a_t) − V^π(s_t). All give the same expectation (subtracting any function
// of s_t alone changes nothing, because E_{a~π}[∇ log π(a|s)] = ∇ Σ_a π(a|s) = ∇1 = 0); they differ
// in variance, and the advantage has the least: it measures only what a_t itself changed.
//
// The critic. We do not know A^π, so we learn V_φ(s) ≈ V^π(s), a scalar for every prefix, and turn its
// values and the rewards into advantages with GAE(γ, λ) — derived step by step above A2C.GaeLoop, below:
//
//     δ_t = r_t + γ V_φ(s_{t+1}) − V_φ(s_t),        Â_t = Σ_{l≥0} (γλ)^l δ_{t+l},
//
// from one-step TD (λ = 0: biased by the critic's errors, no variance from the future) to the Monte Carlo
// return minus a baseline (λ = 1: Â_t = G_t − V_φ(s_t), unbiased, all the future's variance). The critic's
// target is the λ-return G_t^λ = Â_t + V_φ(s_t), its loss L_V(φ) = mean_t (V_φ(s_t) − G_t^λ)² over the real
// tokens.
//
// One update per batch — advantage actor-critic, the synchronous "A2C" form of Mnih et al., "Asynchronous
// Methods for Deep Reinforcement Learning", 2016. With Â held fixed (no gradient reaches the critic
// through the actor's loss),
//
//     L_π(θ) = −mean_t [ Â_t log π_θ(a_t | s_t) ]       (a mean over all real tokens of the batch)
//
// has the policy gradient above with Ψ = Â as its negative gradient. One AdamW step on L_π for the actor,
// one on L_V for the critic (its own model: see where Run builds it).
//
// The loop (Program.TrainStep), in the order it runs:
//
//   1. rollout      N completions from π_θ at T = 1; the rule's score R sits at each one's terminal token
//   2. critic       V_φ(s_t) for every completion token, read one position before the token (as π_θ(·|s_t) is)
//   3. advantages   GAE(γ, λ) on the critic's values before this step's update, normalised over the batch
//   4. actor        one AdamW step on L_π, the gradient clipped to norm --max-grad-norm
//   5. critic       one AdamW step on L_V, clipped the same way
//   6. report       reward, accuracy, KL to the base, entropy, the critic's loss and explained variance, …
//
// After training, LambdaTable measures the bias and variance of λ = 0, 0.95 and 1 on the trained policy and
// critic: the trade-off itself, in a few seconds.
//
// Key findings (docs/02-actor-critic-gae.md): trained with λ = 0 the policy collapses every time — the actor
// climbs the critic's errors instead of the reward; λ = 0.95 and λ = 1 are within seed noise of each other,
// because the critic stays weak (explained variance 0.1–0.2): to value `47+9=5` it must do the very arithmetic
// the policy is still learning. That is the case GRPO (chapter 8) makes for dropping the critic.
//
// Results, experiments and curves: docs/02-actor-critic-gae.md
using System.Diagnostics;
using MinRL;
using TorchSharp;
using static TorchSharp.torch;

namespace ActorCritic;

/// <summary>The chapter's hyper-parameters; every one is a command-line option (<c>--help</c> lists them).</summary>
public sealed record Args : LabArgs
{
    [Help("actor-critic updates, one batch of rollouts each (400 fits the one-minute run)", Min = 1)]
    public override int Steps { get; init; } = 400;

    [Help("completions sampled per step (the book's PyTorch prototype of REINFORCE: 128)", Min = 2)]
    public int BatchSize { get; init; } = 128;

    [Help("actor (policy) AdamW learning rate (the book's PyTorch prototype: 3e-4)", Min = 0)]
    public double LearningRate { get; init; } = 3e-4;

    [Help("critic AdamW learning rate (Spinning Up's vf_lr)", Min = 0)]
    public double CriticLearningRate { get; init; } = 1e-3;

    // γ = 1: a completion has at most 5 tokens and one reward, at its end; discounting would only make the
    // critic's targets depend on the length.
    [Help("discount γ (InstructGPT, TRL: 1)", Min = 0, Max = 1)]
    public double Gamma { get; init; } = 1.0;

    // λ trades the critic's bias (λ = 0) for the sampled future's variance (λ = 1); LambdaTable measures both.
    [Help("GAE λ: 0 = one-step TD, 1 = Monte Carlo return minus V (TRL: 0.95; the GAE paper: 0.92–0.98 best)",
        Min = 0, Max = 1)]
    public double GaeLambda { get; init; } = 0.95;

    [Help("normalise advantages to mean 0, std 1 over the batch's tokens (CleanRL's norm_adv, Spinning Up)")]
    public bool NormalizeAdvantages { get; init; } = true;

    [Help("clip each model's gradient to this global L2 norm, 0 = off (TRL and the HF Trainer's max_grad_norm: 1; "
        + "CleanRL's PPO: 0.5)", Min = 0)]
    public double MaxGradNorm { get; init; } = 1.0;

    [Help("reward for a well-formed answer, right or wrong, 0 = the rule alone (DeepSeek-R1-style format bonus)",
        Min = 0)]
    public double FormatBonus { get; init; } = 0.0;

    [Help("completions for the λ table at the end (0 = skip it)", Min = 0)]
    public int LambdaTableRollouts { get; init; } = 64;

    [Help("futures sampled per (state, token) for the λ table's bias and variance", Min = 2)]
    public int LambdaTableFutures { get; init; } = 32;
}

public static class Program
{
    static int Main(string[] args) =>
        Lab.Run<Args>(args, "02-actor-critic-gae", "advantage actor-critic with GAE(γ, λ) on a+b=", Train);

    const int P = ArithmeticTask.PromptLength;          // 7: the first completion token is at position P
    const int M = ArithmeticTask.MaxCompletionLength;   // 5: completion tokens at most

    /// <summary>The whole run: load the base, train actor and critic, evaluate, report. Returns the exit
    /// code.</summary>
    public static int Train(Args args)
    {
        var result = Run(args);
        Lab.Finish(result.Summary);
        return 0;
    }

    /// <summary>What a run measured (the tests read it).</summary>
    public sealed record RunResult(RunSummary Summary, MetricsLog Log, IReadOnlyList<LambdaRow> LambdaRows);

    /// <summary>Trains and evaluates; returns the summary, the per-step log and the λ table.</summary>
    public static RunResult Run(Args args)
    {
        int steps = args.StepsOr(quickSteps: 60);
        manual_seed(args.Seed);                                   // Lab.Run did too; this makes Run reproducible alone
        var task = new ArithmeticTask();                          // the book's split: 9,488 train, 512 held out
        var baseConfig = new BaseModelConfig();                   // the shared base every chapter starts from
        var reference = BaseModel.Load(baseConfig);               // π_ref: frozen, for the KL we report
        var policy = BaseModel.Load(baseConfig, TextWriter.Null); // π_θ: the actor, starts as the base

        // The critic is its OWN model, not a value head on the policy's trunk: a copy of the base model with a
        // scalar head, Linear(C, 1).
        //  (a) The two losses cannot fight over shared features, so what λ does to the policy is not mixed up
        //      with a value-loss coefficient. (A value head on the policy's trunk, CleanRL's shared-trunk design,
        //      learned nothing here: docs/02-actor-critic-gae.md.)
        //  (b) The critic learns at its own rate, 1e-3 (Spinning Up's vf_lr), which would wreck the policy: the
        //      book's PyTorch prototype measured policy-gradient training at lr 1e-3 collapsing to 0%.
        //  (c) It is what InstructGPT (a value model initialised from the reward model) and TRL's PPO trainer do
        //      for language models.
        // The price is a second forward and backward pass per step: about a third of the step's time. The critic
        // starts from the base model's weights, not from scratch: the base already reads `a+b=` and the digits
        // written so far, which is what a value function needs (a critic from random weights measured worse).
        //
        // Its LM head comes along with the copied weights but is never used. The scalar head starts at zero, so
        // V_φ ≡ 0 at first: with the kit's N(0, 0.02) init it would output noise of std ≈ 0.16 here (0.02 · √64
        // over unit-scale LayerNorm features), comparable to the rewards, and every λ < 1 would pass that noise
        // to the actor as advantages on tokens that earned nothing.
        var critic = new TinyGpt(baseConfig.Model with { ScalarHead = true });
        critic.load_state_dict(reference.state_dict(), strict: false);        // everything but scalar_head.*
        using (no_grad())
            foreach (var (name, p) in critic.named_parameters())
                if (name.StartsWith("scalar_head.")) p.zero_();
        foreach (var p in reference.parameters()) p.requires_grad_(false);

        // Two optimizers, one per model (TorchSharp's AdamW default weight_decay is 0, kept: decay would pull the
        // policy towards zero rather than towards the base). Expect the KL to the base to jump to ≈ 0.5 nats
        // within the first ~10 steps and then grow slowly: Adam's first updates move every weight by about lr
        // whatever the size of its gradient, and this small model is sensitive to that (measured: one AdamW step
        // at 3e-4 on random advantages moved some logits by up to 4.5).
        var actorOptimizer = optim.AdamW(policy.parameters(), lr: args.LearningRate);
        var criticOptimizer = optim.AdamW(critic.parameters(), lr: args.CriticLearningRate);

        // Held-out accuracy before training, sampled at T = 1. The final evaluation draws from a generator with
        // the same seed, so base and final face the same random numbers and their difference is less noisy.
        var baseEval = BaseModel.Evaluate(policy, task.Eval, temperature: 1,
            generator: new Generator(BaseModel.EvalSeed));
        Lab.Print($"base model, held-out sampled (T = 1): {baseEval}");

        var problemsRng = new SplitMix64(args.Seed);              // which training problems each step
        using var log = new MetricsLog(Path.Combine(args.Out, "metrics.csv"));
        using (var progress = Lab.Progress(steps, "actor-critic", "reward", "kl", "value_loss", "explained_var"))
        {
            for (int step = 1; step <= steps; step++)
            {
                using var scope = NewDisposeScope();   // TorchSharp: this step's tensors are freed at its end
                var clock = Stopwatch.StartNew();
                var m = TrainStep(args, policy, critic, reference, actorOptimizer, criticOptimizer,
                    ArithmeticTask.Sample(task.Train, args.BatchSize, problemsRng), step);
                log.Add(step, [.. m, ("step_ms", clock.Elapsed.TotalMilliseconds)]);
                progress.Update(step, m);
            }
        }

        var finalEval = BaseModel.Evaluate(policy, task.Eval, temperature: 1,
            generator: new Generator(BaseModel.EvalSeed));
        double finalKl = Kl.HeldOut(policy, reference, task.Eval, new Generator((ulong)args.Seed + 1));
        Lab.Print($"trained policy, held-out sampled (T = 1): {finalEval}");

        var lambdaClock = Stopwatch.StartNew();
        var lambdaRows = args.LambdaTableRollouts > 0
            ? LambdaTable(policy, critic,
                ArithmeticTask.Sample(task.Train, args.LambdaTableRollouts, problemsRng), args)
            : [];
        if (lambdaRows.Count > 0)
        {
            Lab.Table($"G^λ = Â + V as an estimate of Q^π(s_t, a_t): {lambdaRows[0].StateActions} tokens " +
                      $"of {args.LambdaTableRollouts} rollouts of the trained policy, {args.LambdaTableFutures} " +
                      $"futures each, γ = {Lab.Fmt(args.Gamma)} ({Lab.Fmt(lambdaClock.Elapsed.TotalSeconds)} s)",
                ["λ", "bias²", "variance", "bias² + variance"],
                lambdaRows.Select(r => new object?[]
                    { r.Lambda, r.BiasSquared, r.Variance, r.BiasSquared + r.Variance }));
            File.WriteAllLines(Path.Combine(args.Out, "lambda_table.csv"),
                lambdaRows.Select(r => FormattableString.Invariant(
                        $"{r.Lambda:R},{r.BiasSquared:R},{r.Variance:R},{r.StateActions}"))
                    .Prepend("lambda,bias2,variance,tokens"));
        }

        var plot = SvgPlot.Curves(log, $"02-actor-critic-gae (λ = {Lab.Fmt(args.GaeLambda)}), seed {args.Seed}",
            "reward", "accuracy", "kl", "entropy", "grad_norm", "value_loss", "explained_var", "value_mean",
            "critic_grad_norm");
        plot.Smoothing = 0.9;
        plot.Write(Path.Combine(args.Out, "curves.svg"));

        var summary = new RunSummary
        {
            Metric = "held-out accuracy (sampled, T = 1)",
            Base = baseEval.Accuracy,
            Final = finalEval.Accuracy,
            Kl = finalKl,
            Extra =
            {
                ["steps"] = steps,
                ["gamma"] = args.Gamma,
                ["gae_lambda"] = args.GaeLambda,
                ["kl_estimator"] = "k3 summed over each completion, held-out prompts",
                ["value_loss_last50"] = log.Column("value_loss").TakeLast(50).Average(),
                ["explained_var_last50"] = log.Column("explained_var").TakeLast(50).Average(),
                ["mean_step_ms"] = log.Column("step_ms").Average(),
                ["models_held"] = 3,                                    // actor, critic (its own trunk), frozen
                                                                        // base for the KL
                ["trainable_params"] = policy.NumParameters() + critic.NumParameters(),
                ["samples_generated"] = (long)steps * args.BatchSize,   // completions sampled for training
            },
        };
        return new RunResult(summary, log, lambdaRows);
    }

    /// <summary>
    /// One actor-critic update: sample a batch, score it, compute GAE advantages and λ-returns, take one AdamW
    /// step for the actor and one for the critic. Returns the step's metrics.
    /// </summary>
    public static (string Name, double Value)[] TrainStep(Args args, TinyGpt policy, TinyGpt critic,
        TinyGpt reference, optim.Optimizer actorOptimizer, optim.Optimizer criticOptimizer,
        IReadOnlyList<Problem> problems, long step)
    {
        // ---- rollout: N completions from the current policy, at T = 1 (the policy's own distribution).
        var rollout = Rollouts.Generate(policy, ArithmeticTask.EncodePrompts(problems), M);
        var sequences = rollout.Sequences;                                     // (N, P+M) int64
        var mask = rollout.CompletionMask;                                     // (N, M): 1 through the first <eos>
        var scores = ArithmeticTask.Rewards(problems, rollout.Completions, args.FormatBonus);   // (N): R(x, y)
        var rewards = A2C.TokenRewards(scores, rollout.Lengths, M);   // (N, M): R at the terminal token, else 0

        // ---- critic: V_φ(s_t) for t = 0 … M−1. The state s_t ends at position P−1+t (the token just before
        // a_t), so the values are the scalar head read at positions P−1 … P+M−2 — the same positions whose
        // logits give π(a_t | s_t).
        critic.train();
        var values = critic.Scalar(critic.Hidden(sequences)).narrow(1, P - 1, M);   // (N, M), differentiable

        // ---- advantages: GAE(γ, λ) on the critic's values before this step's update (no gradient through
        // them), then normalised over the batch's tokens (CleanRL, Spinning Up).
        var (advantages, returns) =
            A2C.Gae(rewards, values.detach(), mask, args.Gamma, args.GaeLambda);   // (N, M) each
        var pgAdvantages = args.NormalizeAdvantages ? A2C.NormalizeAdvantages(advantages, mask) : advantages;

        // ---- actor loss: L_π = −mean_t Â_t log π_θ(a_t | s_t), over the real tokens.
        policy.train();
        var scored = Rollouts.Score(policy, sequences, P);    // one forward: log-probs and logits, as chapter 1
                                                              // derives them (the gather at positions P − 1 …)
        var logp = scored.LogProbs;                                            // (N, M)
        var policyLoss = A2C.PolicyLoss(logp, pgAdvantages, mask);
        Lab.CheckFinite(policyLoss, "policy loss", step);
        actorOptimizer.zero_grad();
        policyLoss.backward();
        double gradNorm = Grad.ClipNorm(policy.parameters(), args.MaxGradNorm);
        actorOptimizer.step();

        // ---- critic loss: L_V = mean_t (V_φ(s_t) − G_t^λ)², the λ-returns fixed as targets.
        var valueLoss = A2C.ValueLoss(values, returns, mask);
        Lab.CheckFinite(valueLoss, "value loss", step, "try a smaller --critic-learning-rate");
        criticOptimizer.zero_grad();
        valueLoss.backward();
        double criticGradNorm = Grad.ClipNorm(critic.parameters(), args.MaxGradNorm);
        criticOptimizer.step();

        // ---- report (all from the batch just used, before the update took effect).
        using var _ = no_grad();
        var refLogp = Rollouts.TokenLogProbs(reference, sequences, P);        // (N, M): log π_ref(a_t | s_t)
        double kl = Rollouts.MaskedSum(Kl.K3(logp.detach(), refLogp), mask, 1)
            .mean().ToDouble();                                                // nats per completion
        double entropy = Rollouts.MaskedMean(scored.Entropy(), mask).ToDouble();
        var measured = ArithmeticTask.Measure(problems, rollout.Completions);
        return
        [
            ("reward", scores.mean().ToDouble()),
            ("accuracy", measured.Accuracy),
            ("kl", kl),
            ("entropy", entropy),
            ("grad_norm", gradNorm),
            ("policy_loss", policyLoss.ToDouble()),
            ("value_loss", valueLoss.ToDouble()),
            ("explained_var", A2C.ExplainedVariance(values.detach(), returns, mask)),
            ("value_mean", Rollouts.MaskedMean(values.detach(), mask).ToDouble()),
            ("advantage_mean", Rollouts.MaskedMean(advantages, mask).ToDouble()),       // before normalisation
            ("advantage_std", Math.Sqrt(Rollouts.MaskedMean(
                (advantages - Rollouts.MaskedMean(advantages, mask)).square(), mask).ToDouble())),
            ("critic_grad_norm", criticGradNorm),
            ("length", rollout.Lengths.to_type(ScalarType.Float64).mean().ToDouble()),
        ];
    }


    // ==================================================================== the λ table

    /// <summary>One row of the λ table: mean squared bias and mean variance of G^λ as an estimate of
    /// Q^π(s_t, a_t).</summary>
    public sealed record LambdaRow(double Lambda, double BiasSquared, double Variance, int StateActions);

    /// <summary>
    /// Bias and variance of GAE(γ, λ) for λ = 0, 0.95, 1 (and the λ trained with), measured on the trained policy
    /// and critic.
    /// </summary>
    /// <remarks>
    /// <para>The policy gradient only needs Â_t up to a function of s_t (an estimator whose expectation is
    /// Q^π − b(s_t) is "γ-just" and gives an unbiased gradient: GAE paper §3, Proposition 1), so what matters is
    /// the λ-return G_t^λ = Â_t + V_φ(s_t) as an estimate of Q^π(s_t, a_t) = E[G_t | s_t, a_t]. For each
    /// non-terminal token a_t of N sampled completions we keep the prefix (s_t, a_t) fixed, sample K futures from
    /// the policy, and compute G_t^λ on each future with the critic. Over the K futures:</para>
    /// <code>
    ///   variance  Var[G^λ | s_t, a_t]       the spread the policy gradient sees from this token
    ///   bias      E[G^λ − G^1 | s_t, a_t]   G^1 = G_t is the sampled return, unbiased for Q^π by definition
    /// </code>
    /// <para>averaged over the tokens. The bias is estimated from the mean of D = G^λ − G^1 over K futures, whose
    /// square overestimates bias² by Var[D]/K; that Monte Carlo noise is subtracted (an unbiased estimate of
    /// bias², which can come out slightly negative when the bias is ~0). Terminal tokens are left out: there
    /// every λ gives the reward itself (bias 0, variance 0). Three full trainings (one per λ) compare what the
    /// λ's do to learning, but would not fit the one-minute run (their measured results are in
    /// docs/02-actor-critic-gae.md); this measures the trade-off itself, in seconds.</para>
    /// </remarks>
    public static List<LambdaRow> LambdaTable(TinyGpt policy, TinyGpt critic, IReadOnlyList<Problem> problems,
        Args args)
    {
        double[] lambdas = [.. new[] { 0.0, 0.95, 1.0, args.GaeLambda }.Distinct().Order()];
        int K = args.LambdaTableFutures;
        var rollout = Rollouts.Generate(policy, ArithmeticTask.EncodePrompts(problems), M);
        var lengths = rollout.Lengths.cpu().data<long>().ToArray();
        var seqs = rollout.Sequences.cpu().data<long>().ToArray();
        int L = P + M, N = problems.Count;

        var sumBias2 = new double[lambdas.Length];
        var sumVar = new double[lambdas.Length];
        int count = 0;
        using var _ = no_grad();
        critic.eval();
        // Group the state-actions by t: the prefixes (s_t, a_t) all have P + t + 1 tokens, so one Generate call
        // continues them all.
        for (int t = 0; t < M - 1; t++)
        {
            using var scope = NewDisposeScope();   // TorchSharp: this t's futures are freed at the end of it
            var rows = Enumerable.Range(0, N).Where(i => lengths[i] > t + 1).ToArray();   // a_t is not terminal
            if (rows.Length == 0) continue;
            int prefix = P + t + 1;
            var prefixIds = new long[rows.Length * K * prefix];
            var futureProblems = new Problem[rows.Length * K];
            for (int r = 0; r < rows.Length; r++)
                for (int k = 0; k < K; k++)
                {
                    Array.Copy(seqs, rows[r] * L, prefixIds, (r * K + k) * prefix, prefix);
                    futureProblems[r * K + k] = problems[rows[r]];
                }
            var futures = Rollouts.Generate(policy, tensor(prefixIds, [rows.Length * K, prefix]), M - t - 1);
            var completions = futures.Sequences.narrow(1, P, M);    // (R·K, M): a_0 … a_t, then the future
            var (mask, lens) = Rollouts.CompletionMask(completions);
            var rewards = A2C.TokenRewards(
                ArithmeticTask.Rewards(futureProblems, completions, args.FormatBonus), lens, M);
            var values = critic.Scalar(critic.Hidden(futures.Sequences)).narrow(1, P - 1, M);   // (R·K, M)

            var monteCarlo = ReturnAt(A2C.Gae(rewards, values, mask, args.Gamma, 1.0).returns,
                t, rows.Length, K);                                                            // G^1 = G_t
            for (int j = 0; j < lambdas.Length; j++)
            {
                var estimates = ReturnAt(A2C.Gae(rewards, values, mask, args.Gamma, lambdas[j]).returns,
                    t, rows.Length, K);                                                        // G^λ
                var (bias2, variance) = A2C.BiasAndVariance(estimates, monteCarlo);
                sumBias2[j] += bias2 * rows.Length;
                sumVar[j] += variance * rows.Length;
            }
            count += rows.Length;
        }
        return lambdas.Select((l, j) => new LambdaRow(l, sumBias2[j] / Math.Max(1, count),
            sumVar[j] / Math.Max(1, count), count)).ToList();
    }

    /// <summary>Column t of (R·K, M) returns as an R × K array.</summary>
    static double[,] ReturnAt(Tensor returns, int t, int rows, int K)
    {
        var column = returns.narrow(1, t, 1).to_type(ScalarType.Float64).cpu().data<double>().ToArray();
        var g = new double[rows, K];
        for (int r = 0; r < rows; r++) for (int k = 0; k < K; k++) g[r, k] = column[r * K + k];
        return g;
    }
}

/// <summary>
/// The pure functions of advantage actor-critic with GAE — rewards per token, GAE (a plain loop and a tensor
/// version), advantage normalisation, the two losses, explained variance — pinned by tests to known values.
/// </summary>
public static class A2C
{
    // Terminal vs cut off. Each completion's terminal token is its first <eos>; the reward sits there and V = 0
    // after it. A completion with no <eos> in its 5 tokens is TERMINAL at the 5th token, with the rule's score
    // (0: it never finished) — not bootstrapped from V(s_5). Pardo et al. ("Time Limits in Reinforcement
    // Learning", ICML 2018) separate the two cases: a limit that is part of the task, and visible to the agent,
    // ends the episode; one imposed only to cut rollouts short must be bootstrapped. Here the rule ends every
    // episode at 5 tokens, nothing later can earn a reward, and the model sees its position. Bootstrapping would
    // also hide the penalty for never finishing. Gae still takes a bootstrap value for cut-off rollouts (tested
    // against rlax's vectors); this task never needs it.

    /// <summary>
    /// Per-token rewards from one score per completion: r_t = R at the completion's last real token (its
    /// <c>&lt;eos&gt;</c>, or its last token when it has none), 0 everywhere else. scores (N), lengths int64 (N)
    /// → (N, T).
    /// </summary>
    public static Tensor TokenRewards(Tensor scores, Tensor lengths, long T)
    {
        var positions = arange(T, dtype: ScalarType.Int64).unsqueeze(0);     // (1, T)
        var isLast = positions.eq((lengths - 1).unsqueeze(1));                // (N, T): true at t = length − 1
        return isLast.to_type(scores.dtype) * scores.unsqueeze(1);            // (N, T)
    }

    // ─── GAE(γ, λ), derived (Schulman et al. 2016, §3–4) ─────────────────────────────────────────────────
    //
    // The TD error. From the critic's values V_φ(s) ≈ V^π(s) form the temporal-difference residual
    //
    //     δ_t = r_t + γ V_φ(s_{t+1}) − V_φ(s_t),        V_φ(s_T) = 0 after the terminal token.
    //
    // If V_φ = V^π then E[δ_t | s_t, a_t] = r_t + γ E[V^π(s_{t+1})] − V^π(s_t) = Q^π(s_t, a_t) − V^π(s_t):
    // δ_t is an unbiased advantage estimate that looks only one token ahead. If V_φ is wrong, it is biased by
    // V_φ's error at s_{t+1}.
    //
    // k-step estimates. Summing k discounted δ's telescopes (every inner V cancels):
    //
    //     Â_t^(k) = Σ_{l=0}^{k−1} γ^l δ_{t+l}
    //             = −V_φ(s_t) + r_t + γ r_{t+1} + … + γ^{k−1} r_{t+k−1} + γ^k V_φ(s_{t+k}).
    //
    // Larger k trusts the critic less (its value enters discounted by γ^k) and the sampled rewards more: less
    // bias, more variance. With k = ∞ (to the end of the completion) it is G_t − V_φ(s_t): the critic is only a
    // baseline, and the estimate is unbiased whatever V_φ is.
    //
    // GAE: an exponentially weighted average of all k, weights (1 − λ) λ^{k−1} (GAE eqs. 16–18):
    //
    //     Â_t^GAE(γ,λ) = (1 − λ)(Â_t^(1) + λ Â_t^(2) + λ² Â_t^(3) + …) = Σ_{l≥0} (γλ)^l δ_{t+l}
    //
    //     λ = 0:  Â_t = δ_t                               one-step TD: no variance from the future, biased by V_φ
    //     λ = 1:  Â_t = Σ_l γ^l δ_{t+l} = G_t − V_φ(s_t)  Monte Carlo: unbiased, all the future's variance
    //
    // computed backwards in one pass: Â_t = δ_t + γλ Â_{t+1}, with Â_T = 0 (GaeLoop; Gae computes the same sum
    // as one matrix product). The critic's target is the λ-return G_t^λ = Â_t + V_φ(s_t), the same mixture of
    // k-step returns.

    /// <summary>
    /// GAE as the backward recursion of the paper, one sequence at a time, in plain loops (float64 inside):
    /// <code>
    ///   for t = T−1 … 0:   δ_t = r_t + γ V(s_{t+1}) − V(s_t);   Â_t = δ_t + γλ Â_{t+1}
    /// </code>
    /// The readable definition; <see cref="Gae"/> computes the same numbers with tensor ops (a test checks that
    /// they agree). Arguments and results as in <see cref="Gae"/>.
    /// </summary>
    public static (Tensor advantages, Tensor returns) GaeLoop(Tensor rewards, Tensor values, Tensor mask,
        double gamma, double lambda, Tensor? lastValues = null)
    {
        var (N, T) = CheckGae(rewards, values, mask, lastValues);
        var r = rewards.to_type(ScalarType.Float64).cpu().data<double>().ToArray();
        var v = values.to_type(ScalarType.Float64).cpu().data<double>().ToArray();
        var m = mask.to_type(ScalarType.Float64).cpu().data<double>().ToArray();
        var last = lastValues?.to_type(ScalarType.Float64).cpu().data<double>().ToArray();
        var adv = new double[N * T];
        var ret = new double[N * T];
        for (int i = 0; i < N; i++)
        {
            double nextValue = last?[i] ?? 0.0;   // V(s_T) past the last column: the bootstrap value, or 0 (terminal)
            double nextAdvantage = 0.0;           // Â_T = 0
            for (int t = T - 1; t >= 0; t--)
            {
                int at = i * T + t;
                // After the terminal token: V = 0, Â = 0.
                if (m[at] == 0) { nextValue = 0; nextAdvantage = 0; continue; }
                double delta = r[at] + gamma * nextValue - v[at];                  // δ_t
                nextAdvantage = delta + gamma * lambda * nextAdvantage;            // Â_t = δ_t + γλ Â_{t+1}
                adv[at] = nextAdvantage;
                ret[at] = nextAdvantage + v[at];                                   // G_t^λ = Â_t + V(s_t)
                nextValue = v[at];
            }
        }
        return (tensor(adv, [N, T]).to_type(rewards.dtype), tensor(ret, [N, T]).to_type(rewards.dtype));
    }

    /// <summary>
    /// GAE(γ, λ) advantages and λ-returns for a batch of variable-length sequences, with tensor ops only.
    /// </summary>
    /// <param name="rewards">(N, T): r_t (0 after a sequence's end).</param>
    /// <param name="values">(N, T): V(s_t) (no gradient needed; pass values.detach()).</param>
    /// <param name="mask">(N, T): 1 on each sequence's real tokens, then 0s (each row: 1s, then 0s).</param>
    /// <param name="gamma">Discount γ.</param>
    /// <param name="lambda">GAE λ.</param>
    /// <param name="lastValues">(N), optional: V(s_T) for rows that run to the last column without ending — a
    /// cut-off rollout, bootstrapped. Null means every row ends at its last real token (terminal: V = 0 after
    /// it).</param>
    /// <returns>Â (N, T) and G^λ = Â + V (N, T), both 0 where the mask is 0.</returns>
    /// <remarks>
    /// <para>Written as a matrix product instead of a loop over t. With δ_t = 0 past each row's end,
    /// Â_t = Σ_{k≥t} (γλ)^{k−t} δ_k for every t at once is A = δ W with the (T, T) discount matrix
    /// W[k, t] = (γλ)^{k−t} for k ≥ t and 0 above the diagonal:</para>
    /// <code>
    ///          ⎡ 1                ⎤     column t of W weights δ_t, δ_{t+1}, … by 1, γλ, (γλ)², …
    ///   W  =   ⎢ γλ    1          ⎥
    ///          ⎢ (γλ)² γλ    1    ⎥
    ///          ⎣ (γλ)³ (γλ)² γλ  1 ⎦
    /// </code>
    /// <para>That is O(T²) work instead of O(T), but with no sequential dependence, and T ≤ 5 here. (A reverse
    /// cumulative sum of (γλ)^k δ_k divided by (γλ)^t also works, but divides by 0 at λ = 0 and overflows for
    /// long T.)</para>
    /// </remarks>
    public static (Tensor advantages, Tensor returns) Gae(Tensor rewards, Tensor values, Tensor mask,
        double gamma, double lambda, Tensor? lastValues = null)
    {
        var (N, T) = CheckGae(rewards, values, mask, lastValues);
        // V(s_{t+1}): the next column's value while that token is real, 0 after the terminal token, and after the
        // last column the bootstrap value (0 when none is given).
        var bootstrap = lastValues is null
            ? zeros(N, 1, dtype: values.dtype)
            : lastValues.to_type(values.dtype).reshape(N, 1);                                  // (N, 1)
        var nextValues = cat([values.narrow(1, 1, T - 1) * mask.narrow(1, 1, T - 1), bootstrap], 1);  // (N, T)
        var deltas = (rewards + gamma * nextValues - values) * mask;                           // (N, T): δ_t
        var advantages = deltas.matmul(DiscountMatrix(T, gamma * lambda, values.dtype));       // (N, T): Â_t
        var returns = (advantages + values) * mask;                                            // (N, T): G^λ
        return (advantages, returns);
    }

    /// <summary>W[k, t] = c^(k−t) for k ≥ t, else 0: (T, T), lower triangular, ones on the diagonal (0⁰ = 1, so
    /// c = 0 gives I).</summary>
    public static Tensor DiscountMatrix(long T, double c, ScalarType dtype = ScalarType.Float32)
    {
        var index = arange(T, dtype: ScalarType.Float64);                    // (T)
        var lag = index.unsqueeze(1) - index.unsqueeze(0);                     // (T, T): lag[k, t] = k − t
        var powers = full(new[] { T, T }, c, dtype: ScalarType.Float64)
            .pow(lag.clamp(min: 0));                                           // c^max(k − t, 0)
        return powers.tril().to_type(dtype);                                   // zero above the diagonal (k < t)
    }

    /// <summary>Â normalised to mean 0 and (unbiased) std 1 over the real tokens, 0 elsewhere (CleanRL:
    /// (A − mean)/(std + 1e-8)).</summary>
    public static Tensor NormalizeAdvantages(Tensor advantages, Tensor mask)
    {
        var n = mask.sum();
        var mean = (advantages * mask).sum() / n;
        var variance = ((advantages - mean).square() * mask).sum() / (n - 1).clamp(min: 1);
        return (advantages - mean) / (variance.sqrt() + 1e-8) * mask;
    }

    /// <summary>L_π = −Σ_t Â_t log π(a_t|s_t) m_t / Σ_t m_t: the policy-gradient loss, a mean over the batch's
    /// real tokens. Â is detached: no gradient reaches the critic through the actor's loss.</summary>
    public static Tensor PolicyLoss(Tensor logp, Tensor advantages, Tensor mask) =>
        -Rollouts.MaskedMean(advantages.detach() * logp, mask);

    /// <summary>L_V = Σ_t (V(s_t) − G_t^λ)² m_t / Σ_t m_t: the critic's mean squared error over the real tokens,
    /// the λ-returns held fixed as targets.</summary>
    public static Tensor ValueLoss(Tensor values, Tensor returns, Tensor mask) =>
        Rollouts.MaskedMean((values - returns.detach()).square(), mask);

    /// <summary>
    /// 1 − Var[G − V] / Var[G] over the real tokens (CleanRL's explained_variance): 1 when the critic predicts
    /// the returns perfectly, 0 when it does no better than their mean, negative when worse; NaN when the returns
    /// are constant.
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

    /// <summary>
    /// How well an estimator tracks a target it should equal in expectation: for R cases × K independent
    /// samples, <paramref name="estimates"/>[r, k] (e.g. G^λ) and <paramref name="unbiased"/>[r, k] (e.g. the
    /// return G, computed on the same sample), returns the mean over the cases of
    /// <code>
    ///   bias²     (E[X − Y])²   estimated without bias: mean(D)² − s²_D / K,  D = X − Y
    ///   variance  Var[X]        the sample variance of X over the K samples (unbiased, K − 1)
    /// </code>
    /// mean(D)² alone would overstate bias² by Var[D]/K (the Monte Carlo noise of the mean); subtracting the
    /// estimate of that makes the bias² estimate unbiased, so it can come out slightly negative when the true
    /// bias is about 0.
    /// </summary>
    public static (double biasSquared, double variance) BiasAndVariance(double[,] estimates, double[,] unbiased)
    {
        int R = estimates.GetLength(0), K = estimates.GetLength(1);
        if (unbiased.GetLength(0) != R || unbiased.GetLength(1) != K || K < 2)
            throw new ArgumentException($"BiasAndVariance: both arrays must be R × K with K ≥ 2, got {R} × {K} " +
                $"and {unbiased.GetLength(0)} × {unbiased.GetLength(1)}");
        double bias2 = 0, variance = 0;
        for (int r = 0; r < R; r++)
        {
            double meanX = 0, meanD = 0;
            for (int k = 0; k < K; k++)
            {
                meanX += estimates[r, k];
                meanD += estimates[r, k] - unbiased[r, k];
            }
            meanX /= K; meanD /= K;
            double varX = 0, varD = 0;
            for (int k = 0; k < K; k++)
            {
                varX += Math.Pow(estimates[r, k] - meanX, 2);
                varD += Math.Pow(estimates[r, k] - unbiased[r, k] - meanD, 2);
            }
            varX /= K - 1; varD /= K - 1;
            bias2 += meanD * meanD - varD / K;                                 // E[mean(D)²] = bias² + Var[D]/K
            variance += varX;
        }
        return (bias2 / R, variance / R);
    }

    private static (int N, int T) CheckGae(Tensor rewards, Tensor values, Tensor mask, Tensor? lastValues)
    {
        if (rewards.dim() != 2 || !rewards.shape.SequenceEqual(values.shape)
            || !rewards.shape.SequenceEqual(mask.shape))
            throw new ArgumentException("Gae: rewards, values and mask must share one (N, T) shape, " +
                $"got [{string.Join(", ", rewards.shape)}], " +
                $"[{string.Join(", ", values.shape)}] and [{string.Join(", ", mask.shape)}]");
        int N = (int)rewards.shape[0], T = (int)rewards.shape[1];
        if (lastValues is not null && (lastValues.dim() != 1 || lastValues.shape[0] != N))
            throw new ArgumentException($"Gae: lastValues must have shape [{N}] (one bootstrap value per row), " +
                $"got [{string.Join(", ", lastValues.shape)}]");
        var m = mask.to_type(ScalarType.Float64).cpu().data<double>().ToArray();
        for (int i = 0; i < N; i++)
            for (int t = 0; t < T; t++)
                if (m[i * T + t] is not (0 or 1) || t > 0 && m[i * T + t] > m[i * T + t - 1])
                    throw new ArgumentException("Gae: each row of the mask must be 1s then 0s (real tokens, " +
                        $"then padding); row {i} is not");
        return (N, T);
    }
}
