// Chapter 3 — Trust Region Policy Optimisation (TRPO) on a+b=.
// DRAFT: header to be written after measurement.
using System.Diagnostics;
using MinRL;
using MinTorch;
using MinTorch.Modules;
using static MinTorch.torch;

namespace Trpo;

/// <summary>The chapter's hyper-parameters (one line each; --help lists them).</summary>
public sealed record Args : LabArgs
{
    [Help("TRPO updates: each samples a fresh batch and takes one trust-region step; measured here", Min = 1)]
    public override int Steps { get; init; } = 60;

    [Help("completions sampled per update, one per training prompt; measured here", Min = 2)]
    public int BatchSize { get; init; } = 256;

    [Help("δ, the trust region: the largest mean per-token KL(π_old ‖ π_θ) a step may take; Spinning Up's 0.01", Min = 0)]
    public double Delta { get; init; } = 0.01;

    [Help("λ, the damping added to the Fisher (solve (F + λI)x = g); Spinning Up's 0.1", Min = 0)]
    public double Damping { get; init; } = 0.1;

    [Help("conjugate-gradient iterations per update; Spinning Up's 10", Min = 1)]
    public int CgIters { get; init; } = 10;

    [Help("backtracking line search: shrink the step by this factor per try; Spinning Up's 0.8", Min = 0, Max = 1)]
    public double BacktrackCoef { get; init; } = 0.8;

    [Help("backtracking line search: tries before the step is rejected and θ_old kept; Spinning Up's 10", Min = 1)]
    public int BacktrackIters { get; init; } = 10;

    [Help("natural policy gradient instead of TRPO: take the full step sqrt(2δ/xᵀFx)·x with no line search (Spinning Up's algo='npg')")]
    public bool Npg { get; init; }

    [Help("share of the batch the Fisher-vector products use (TRPO paper, App. C: 0.1); measured here", Min = 0, Max = 1)]
    public double FisherFraction { get; init; } = 1.0;

    [Help("reward bonus for a well-formed answer, right or wrong (DeepSeek-R1's format reward); 0 = correctness only", Min = 0)]
    public double FormatBonus { get; init; } = 0.0;

    [Help("evaluate held-out sampled accuracy (512 problems, T = 1) every this many updates; 0 = only at the start and end", Min = 0)]
    public int EvalEvery { get; init; } = 10;
}

/// <summary>The algorithm's pure functions (tests pin them).</summary>
public static class Trpo
{
    /// <summary>KL(p ‖ q) of categorical distributions given by logits, per position: (…, V) → (…).</summary>
    public static Tensor CategoricalKl(Tensor pLogits, Tensor qLogits)
    {
        var logp = pLogits.log_softmax(-1);                                   // (…, V)
        var logq = qLogits.log_softmax(-1);                                   // (…, V)
        return (logp.exp() * (logp - logq)).sum(-1);                          // (…)
    }

    /// <summary>D̄_KL = mean over the batch's real tokens of KL(π_old(·|s_t) ‖ π_θ(·|s_t)).</summary>
    public static Tensor MeanKl(Tensor oldLogits, Tensor logits, Tensor mask)
        => Rollouts.MaskedMean(CategoricalKl(oldLogits, logits), mask);

    /// <summary>Â_i = r_i − mean(r): every token of completion i gets it.</summary>
    public static Tensor Advantages(Tensor rewards) => rewards - rewards.mean();

    /// <summary>L(θ) = (1/N) Σ_i Σ_t m_it · exp(logπ_θ − logπ_old) · Â_i.</summary>
    public static Tensor Surrogate(Tensor logp, Tensor oldLogp, Tensor advantages, Tensor mask)
    {
        var ratio = (logp - oldLogp).exp();                                   // (N, M)
        return (ratio * advantages.unsqueeze(1) * mask).sum() / advantages.shape[0];
    }

    /// <summary>The flat concatenation of tensors (gradients) into one vector.</summary>
    public static Tensor Flat(IEnumerable<Tensor> tensors) => cat(tensors.Select(t => t.reshape(-1)).ToList());

    /// <summary>v ↦ (F + λI)v, by double backward through the mean KL.</summary>
    public static Func<Tensor, Tensor> FisherVectorProduct(Tensor meanKl, IReadOnlyList<Parameter> parameters, double damping)
    {
        IList<Tensor> ps = [.. parameters];
        var gradKl = Flat(autograd.grad([meanKl], ps, create_graph: true));  // (n): ∇_θ D̄_KL, differentiable
        return v =>
        {
            var gradKlDotV = (gradKl * v).sum();                              // scalar (∇D̄_KL)ᵀv
            var fv = Flat(autograd.grad([gradKlDotV], ps));                   // (n): ∇_θ((∇D̄_KL)ᵀv) = F v
            return fv + damping * v;
        };
    }

    /// <summary>What <see cref="ConjugateGradient"/> found.</summary>
    public sealed record CgResult(Tensor X, int Iterations, double ResidualNorm);

    /// <summary>Solves A x = b for SPD A given only v ↦ A v.</summary>
    public static CgResult ConjugateGradient(Func<Tensor, Tensor> Avp, Tensor b, int iterations, double residualTol = 1e-10)
    {
        var x = zeros_like(b);
        var r = b.clone();
        var p = b.clone();
        double rr = Dot(r, r);
        int k = 0;
        for (; k < iterations && rr > residualTol; k++)
        {
            var Ap = Avp(p);
            double alpha = rr / Dot(p, Ap);
            x = x + alpha * p;
            r = r - alpha * Ap;
            double rrNew = Dot(r, r);
            p = r + (rrNew / rr) * p;
            rr = rrNew;
        }
        return new CgResult(x, k, Math.Sqrt(rr));
    }

    public static double Dot(Tensor a, Tensor b) => (a * b).sum().ToDouble();

    /// <summary>The natural-gradient step of a trust region.</summary>
    public sealed record NaturalStep(Tensor FullStep, double StepSize, double XFx, double ExpectedGain, int CgIterations, double CgResidual);

    public static NaturalStep NaturalGradientStep(Func<Tensor, Tensor> fvp, Tensor g, double delta, int cgIters)
    {
        var cg = ConjugateGradient(fvp, g, cgIters);
        double xFx = Dot(cg.X, fvp(cg.X));
        double stepSize = Math.Sqrt(2 * delta / xFx);
        var fullStep = stepSize * cg.X;
        return new NaturalStep(fullStep, stepSize, xFx, Dot(g, fullStep), cg.Iterations, cg.ResidualNorm);
    }

    /// <summary>What the line search did.</summary>
    public sealed record LineSearchResult(bool Accepted, int Backtracks, double Fraction, double Kl, double Gain);

    /// <summary>Backtracking line search: tries fractions coef^j, j = 0..iters−1, of the full step.</summary>
    public static LineSearchResult BacktrackingLineSearch(Func<double, (double kl, double gain)> tryStep, double delta, double coef, int iters)
    {
        double kl = double.NaN, gain = double.NaN;
        for (int j = 0; j < iters; j++)
        {
            double fraction = Math.Pow(coef, j);
            (kl, gain) = tryStep(fraction);
            if (kl <= delta && gain > 0) return new LineSearchResult(true, j, fraction, kl, gain);
        }
        return new LineSearchResult(false, iters, 0, kl, gain);
    }
}

public static class Program
{
    static int Main(string[] args) => Lab.Run<Args>(args, "03-trpo", "TRPO on a+b=: natural gradient by conjugate gradient, KL trust region, line search", Train);

    public static int Train(Args args)
    {
        int steps = args.StepsOr(5);
        var task = new ArithmeticTask();
        var policy = BaseModel.Load(new BaseModelConfig());
        var reference = BaseModel.Load(new BaseModelConfig(), TextWriter.Null);
        var ps = policy.parameters().ToList();
        IList<Tensor> psT = [.. ps];
        var data = new SplitMix64(args.Seed);
        const int P = ArithmeticTask.PromptLength, M = ArithmeticTask.MaxCompletionLength;
        ulong evalSeed = (ulong)args.Seed + 1000;
        Evaluation Eval() => BaseModel.Evaluate(policy, task.Eval, temperature: 1, generator: new Generator(evalSeed));

        var sw = Stopwatch.StartNew();
        var baseEval = Eval();
        Lab.Print($"base: {baseEval} ({sw.Elapsed.TotalSeconds:F2} s)");
        using var log = new MetricsLog(Path.Combine(args.Out, "metrics.csv"));
        log.Add(0, ("eval_accuracy", baseEval.Accuracy));
        int nFisher = Math.Max(1, (int)Math.Round(args.BatchSize * args.FisherFraction));

        using (var progress = Lab.Progress(steps, args.Npg ? "NPG" : "TRPO", "reward", "eval_accuracy", "kl", "backtracks"))
        {
            for (int step = 1; step <= steps; step++)
            {
                var t0 = Stopwatch.GetTimestamp();
                var cpu0 = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
                var problems = ArithmeticTask.Sample(task.Train, args.BatchSize, data);
                var rollout = Rollouts.Generate(policy, ArithmeticTask.EncodePrompts(problems), M);
                var rewards = ArithmeticTask.Rewards(problems, rollout.Completions, args.FormatBonus);   // (N)
                var mask = rollout.CompletionMask;                                                    // (N, M)
                var adv = Trpo.Advantages(rewards);                                                  // (N)
                var tGen = Stopwatch.GetTimestamp();

                var scores = Rollouts.Score(policy, rollout.Sequences, P);
                var oldLogits = scores.Logits.detach();
                var oldLogp = scores.LogProbs.detach();
                var surr = Trpo.Surrogate(scores.LogProbs, oldLogp, adv, mask);
                double surrOld = surr.ToDouble();
                var g = Trpo.Flat(autograd.grad([surr], psT));
                var tGrad = Stopwatch.GetTimestamp();

                Tensor klForFisher;
                if (nFisher >= args.BatchSize) klForFisher = Trpo.MeanKl(oldLogits, scores.Logits, mask);
                else
                {
                    var fs = Rollouts.Score(policy, rollout.Sequences.narrow(0, 0, nFisher), P);
                    klForFisher = Trpo.MeanKl(fs.Logits.detach(), fs.Logits, mask.narrow(0, 0, nFisher));
                }
                var fvp = Trpo.FisherVectorProduct(klForFisher, ps, args.Damping);
                var nat = Trpo.NaturalGradientStep(fvp, g, args.Delta, args.CgIters);
                var tCg = Stopwatch.GetTimestamp();

                var thetaOld = nn.utils.parameters_to_vector(ps).detach().clone();
                (double kl, double gain) TryStep(double fraction)
                {
                    nn.utils.vector_to_parameters(thetaOld + fraction * nat.FullStep, ps);
                    using var _ = no_grad();
                    var s = Rollouts.Score(policy, rollout.Sequences, P);
                    return (Trpo.MeanKl(oldLogits, s.Logits, mask).ToDouble(),
                            Trpo.Surrogate(s.LogProbs, oldLogp, adv, mask).ToDouble() - surrOld);
                }
                Trpo.LineSearchResult ls;
                if (args.Npg) { var (k, gn) = TryStep(1); ls = new(true, 0, 1, k, gn); }
                else
                {
                    ls = Trpo.BacktrackingLineSearch(TryStep, args.Delta, args.BacktrackCoef, args.BacktrackIters);
                    if (!ls.Accepted) nn.utils.vector_to_parameters(thetaOld, ps);
                }
                var tLs = Stopwatch.GetTimestamp();

                double S(long a, long b) => (b - a) / (double)Stopwatch.Frequency;
                double reward = rewards.mean().ToDouble();
                var metrics = new List<(string, double)>
                {
                    ("reward", reward), ("kl", ls.Kl), ("gain", ls.Gain), ("expected_gain", nat.ExpectedGain * ls.Fraction),
                    ("backtracks", ls.Backtracks), ("accepted", ls.Accepted ? 1 : 0), ("g_norm", Math.Sqrt(Trpo.Dot(g, g))),
                    ("xFx", nat.XFx), ("cg_residual", nat.CgResidual),
                    ("t_gen", S(t0, tGen)), ("t_grad", S(tGen, tGrad)), ("t_cg", S(tGrad, tCg)), ("t_ls", S(tCg, tLs)), ("cpu", System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds - cpu0),
                };
                if (args.EvalEvery > 0 && step % args.EvalEvery == 0 && step != steps)
                    metrics.Add(("eval_accuracy", Eval().Accuracy));
                log.Add(step, [.. metrics]);
                progress.Update(step, [.. metrics]);
            }
        }
        var finalEval = Eval();
        log.Add(steps, ("eval_accuracy", finalEval.Accuracy));
        Lab.Finish(new RunSummary { Metric = "accuracy (sampled, T = 1)", Base = baseEval.Accuracy, Final = finalEval.Accuracy, Kl = double.NaN });
        return 0;
    }
}
