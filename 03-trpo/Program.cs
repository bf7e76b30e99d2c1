// Chapter 3 — TRPO: trust region policy optimisation.
//
//     dotnet run -c Release --project 03-trpo                 # the default run (< 60 s)
//     dotnet run -c Release --project 03-trpo -- --npg        # natural policy gradient: the same step, no line search
//     dotnet run -c Release --project 03-trpo -- --help       # every option
//
// Schulman, Levine, Moritz, Jordan & Abbeel, "Trust Region Policy Optimization", ICML 2015 (arXiv:1502.05477),
// in the form OpenAI Spinning Up gives it (Achiam, 2018, spinup/algos/tf1/trpo/trpo.py): one natural-gradient
// step per batch, found by conjugate gradient on Fisher-vector products, then a backtracking line search.
//
// ─── The setting (chapters 1–3 share it) ─────────────────────────────────────────────────────────────
//
// A prompt x = "<bos>47+9=" is the first state s_0; the policy π_θ — the tiny GPT — picks the next token
// a_t ~ π_θ(·|s_t); the state grows by it, s_{t+1} = s_t + a_t, until <eos> (or 5 tokens). The completion earns
// one reward at the end from a rule: R = 1 if it is the sum written correctly, else 0. The objective is
//
//     J(θ) = E_x E_{τ∼π_θ(·|x)} [ R(x, τ) ].
//
// ─── Why a trust region ──────────────────────────────────────────────────────────────────────────────
//
// Chapter 1 ascends J along the gradient g = ∇_θ J with a learning rate: a step of a fixed length in
// *parameter* space. But what matters is how much the step changes the *policy*, and that is not the same
// thing: moving one weight by 0.01 may leave every next-token distribution untouched or flip the model's
// favourite answer, depending on the weight. Too small a learning rate wastes samples; too large a one
// (1e-3 here, chapter 1 measured) collapses the policy, and the next batch — sampled from the collapsed
// policy — cannot repair it. TRPO measures a step by what it does to the policy, in KL divergence, and
// takes the best step whose KL stays below δ.
//
// ─── The surrogate ───────────────────────────────────────────────────────────────────────────────────
//
// For two policies π_old and π (Kakade & Langford 2002, TRPO eq. 1, here without discount),
//
//     J(π) − J(π_old) = E_{τ∼π} [ Σ_t A_old(s_t, a_t) ],        A_old(s, a) = Q_old(s, a) − V_old(s),
//
// the new policy's gain is the old policy's advantage summed along the new policy's trajectories. We cannot
// sample from π before we have it, so TRPO keeps the old policy's states and importance-weights the action:
//
//     L(θ) = E_{s,a∼π_old} [ π_θ(a|s) / π_old(a|s) · Â(s, a) ]        (summed over a completion's tokens,
//                                                                      averaged over completions)
//
// L matches J to first order at θ_old — same gradient, ∇_θ L|θ_old = E[∇_θ log π_θ(a|s) Â] = the policy
// gradient g — and the error of trusting it elsewhere grows with how far π strays from π_old (TRPO's
// Theorem 1 bounds it by C · max_s KL). So TRPO solves, once per batch,
//
//     maximise L(θ)    subject to    D̄_KL(θ) = E_{s∼π_old} [ KL(π_old(·|s) ‖ π_θ(·|s)) ] ≤ δ,
//
// the mean over visited states standing in for the theorem's max (the paper's practical choice). Here a
// state is a prompt plus a completion prefix, so "visited states" are the batch's real completion tokens.
//
// ─── How TRPO solves it ──────────────────────────────────────────────────────────────────────────────
//
// Approximately, with three pieces, each derived above the function that implements it:
//
//   * the natural step (Trpo.NaturalGradientStep): L linearised, the KL taken to second order, ½ΔᵀFΔ with F the
//     Fisher information matrix; the best step of that model is the natural gradient direction x = F⁻¹g scaled
//     to the boundary, Δ = sqrt(2δ / xᵀFx) · x. It does not depend on the scale of g: δ, in nats, replaces the
//     learning rate;
//   * x without F (Trpo.ConjugateGradient, Trpo.FisherVectorProduct): conjugate gradient needs only products
//     v ↦ Fv, and each is two backward passes through the mean KL;
//   * a check (Trpo.BacktrackingLineSearch): the quadratic model can be wrong, so the step is shrunk until the
//     KL, measured exactly, is within δ and the surrogate has improved.
//
// ─── The loop (Program.Train), in the order it runs ──────────────────────────────────────────────────
//
//   1. rollout       --batch-size fresh problems, one completion each, from π_old = the current policy, at T = 1
//   2. advantages    Â_i = R_i − b for every token of completion i, b = 0 by default (Trpo.Advantages)
//   3. gradient      g = ∇_θ L(θ_old), the policy gradient, over the whole batch in micro-batches
//   4. natural step  x ≈ (F + λI)⁻¹g by --cg-iters CG iterations on Fisher-vector products over the first
//                    --fisher-fraction of the batch, then Δ = sqrt(2δ / xᵀFx) · x
//   5. line search   the first θ_old + 0.8^j Δ, j = 0 … 9, with D̄_KL ≤ δ and L improved, both measured on the
//                    first --line-search-fraction of the batch; if none qualifies, θ_old is kept. With --npg the
//                    full step is taken unchecked: Kakade's natural policy gradient with an adaptive step size
//                    (Spinning Up's algo='npg'), and the logged KL shows how far it overshoots
//   6. report        the metrics below; every --eval-every updates, held-out accuracy
//
// ─── What to watch ───────────────────────────────────────────────────────────────────────────────────
//
// kl — D̄_KL after the step: just under δ when the quadratic model is right (0 backtracks), lower after
// backtracking. backtracks — 0 to 9, or 10 for a rejected step. gain vs expected_gain — the measured
// surrogate improvement against the linear model's sqrt(2δ gᵀF⁻¹g)·0.8^j. cg_residual — ‖g − (F+λI)x‖
// after CG, relative to ‖g‖. accuracy — the batch's; eval_accuracy — the 512 held-out problems at T = 1.
// kl_ref — KL(π_old ‖ π_base) per completion (exact per token, summed), on the Fisher's 128 completions.
//
// ─── What was found ──────────────────────────────────────────────────────────────────────────────────
//
// In 25 updates the default run takes held-out accuracy from 0.223 to 0.59–0.62 on TorchSharp, and from 0.252 to
// 0.56–0.58 on MinTorch (three seeds each). What mattered most was conjugate gradient: with Spinning Up's 10
// iterations instead of 20 (and the line search on the whole batch), the same 25 updates gained 22.5–23.2 points
// instead of 31–33.
//
// Results, experiments and curves: docs/03-trpo.md
using System.Diagnostics;
using MinRL;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Trpo;

/// <summary>The chapter's hyper-parameters: one command-line option each (<c>--delta 0.02</c>).</summary>
public sealed record Args : LabArgs
{
    [Help("TRPO updates, each on a fresh batch (25 fit the default run in 60 s on 2 cores)", Min = 1)]
    public override int Steps { get; init; } = 25;

    [Help("completions sampled per update, one per prompt", Min = 2)]
    public int BatchSize { get; init; } = 2048;

    [Help("share of the batch the Fisher-vector products use, 1/16 = 128 completions " +
          "(the TRPO paper, appendix C: 0.1)", Min = 0, Max = 1)]
    public double FisherFraction { get; init; } = 0.0625;

    [Help("share of the batch, its first completions, on which the line search measures D̄_KL and the surrogate " +
          "gain, 1/4 = 512 completions (1 = the whole batch)", Min = 0, Max = 1)]
    public double LineSearchFraction { get; init; } = 0.25;

    [Help("δ, the trust region: the largest mean per-token KL(π_old ‖ π_θ) a step may take (Spinning Up: 0.01)",
          Min = 0)]
    public double Delta { get; init; } = 0.05;

    [Help("λ, the damping of the Fisher: CG solves (F + λI)x = g (Spinning Up: 0.1)", Min = 0)]
    public double Damping { get; init; } = 0.1;

    [Help("conjugate-gradient iterations per update (Spinning Up: 10; why 20 here: docs/03-trpo.md)", Min = 1)]
    public int CgIters { get; init; } = 20;

    [Help("backtracking line search: each try shrinks the step by this factor (Spinning Up: 0.8)", Min = 0, Max = 1)]
    public double BacktrackCoef { get; init; } = 0.8;

    [Help("backtracking line search: tries before the step is rejected and θ_old kept (Spinning Up: 10)", Min = 1)]
    public int BacktrackIters { get; init; } = 10;

    [Help("natural policy gradient instead of TRPO: the full step sqrt(2δ/xᵀFx)·x, no line search " +
          "(Spinning Up's algo='npg')")]
    public bool Npg { get; init; }

    [Help("the baseline b in Â = R − b: none (b = 0) or the batch's mean reward")]
    public BaselineKind Baseline { get; init; } = BaselineKind.None;

    [Help("reward bonus for a well-formed answer, right or wrong, 0 = the rule alone (DeepSeek-R1's format reward)",
          Min = 0)]
    public double FormatBonus { get; init; } = 0.0;

    [Help("completions per forward-backward pass when computing g (memory only: the result is the same up to " +
          "float rounding)", Min = 1)]
    public int MicroBatch { get; init; } = 512;

    [Help("evaluate sampled accuracy (T = 1) on the 512 held-out problems every this many updates " +
          "(0 = only at the start and end)", Min = 0)]
    public int EvalEvery { get; init; } = 5;
}

/// <summary>What is subtracted from the reward to make the advantage Â.</summary>
public enum BaselineKind
{
    /// <summary>b = the mean reward of the batch: Â_i = R_i − mean_j R_j.</summary>
    BatchMean,
    /// <summary>b = 0: Â_i = R_i.</summary>
    None,
}

/// <summary>TRPO's pieces as pure functions: the surrogate, the KL, the Fisher-vector product, conjugate
/// gradient, the natural step and the line search (the tests pin each one).</summary>
public static class Trpo
{
    // ─── Advantages ─────────────────────────────────────────────────────────────────────────────────────
    //
    // The reward arrives once, at the end, and there is no discount, so the return from every token of
    // completion i is its reward R_i: a Monte Carlo estimate of Q(s_t, a_t). Every token of completion i gets
    // the same advantage,
    //
    //     Â_i = R_i − b,        b = 0 (the default)   or   b = (1/N) Σ_j R_j   (--baseline batch-mean).
    //
    // A baseline that does not depend on the action leaves the gradient unbiased (chapter 1). TRPO's step
    // ignores the advantages' *scale* (see NaturalGradientStep), but not their *offset*: b changes the direction
    // of g. Chapter 1 measured why the obvious b, the mean reward, is the wrong one on this task: a wrong answer
    // is an unlikely sample with a large score ‖∇ log π(τ)‖, a right one a confident sample with a small one, so
    // the variance-minimising constant b* = E[R‖s‖²]/E[‖s‖²] sits near 0, and the mean reward raises the
    // variance. TRPO agrees (docs/03-trpo.md). With b = 0 and 0/1 rewards, g = (1/N) Σ_{correct i} ∇ log π(τ_i):
    // the natural step raises the likelihood of the batch's correct completions, as far as the trust region
    // allows. (The batch mean contains R_i itself, a 1/N bias that the leave-one-out mean avoids — but that is
    // N/(N−1) · Â_i, and TRPO's step ignores the scale, so the two give the very same step. Spinning Up also
    // divides by the standard deviation; for TRPO that only changes the units the surrogate is reported in —
    // we keep reward units, so the surrogate gain reads as a predicted change of the mean reward.) The paper
    // fits a value-function baseline instead; chapter 2 does that, and this chapter keeps to the step. The
    // price is variance: most of what one batch "wants" is noise (docs/03-trpo.md), so TRPO needs large
    // batches, and each step is expensive.

    /// <summary>Â_i = R_i − b for each completion: (N) → (N), b = the batch's mean reward or 0.</summary>
    public static Tensor Advantages(Tensor rewards, BaselineKind baseline)
        => baseline == BaselineKind.BatchMean ? rewards - rewards.mean() : rewards.clone();

    /// <summary>
    /// The surrogate L(θ) = (1/N) Σ_i Σ_t m_it · exp(log π_θ(a_it|s_it) − log π_old(a_it|s_it)) · Â_i: the
    /// importance-weighted advantage, summed over each completion's real tokens (mask m) and averaged over the
    /// N completions. At θ = θ_old every ratio is 1 and its gradient is the policy gradient.
    /// </summary>
    /// <param name="logp">(N, M) log π_θ of the sampled tokens (differentiable).</param>
    /// <param name="oldLogp">(N, M) log π_old of the same tokens (constants).</param>
    /// <param name="advantages">(N) Â_i.</param>
    /// <param name="mask">(N, M) 1 on real completion tokens, 0 after &lt;eos&gt;.</param>
    public static Tensor Surrogate(Tensor logp, Tensor oldLogp, Tensor advantages, Tensor mask)
    {
        var ratio = (logp - oldLogp).exp();                                     // (N, M) π_θ / π_old
        return (ratio * advantages.unsqueeze(1) * mask).sum() / advantages.shape[0];
    }

    /// <summary>
    /// KL(p ‖ q) = Σ_a p_a (log p_a − log q_a) between the categorical distributions softmax(pLogits) and
    /// softmax(qLogits), at every position: (…, V), (…, V) → (…). Exact (a sum over the vocabulary), not a
    /// sampled estimate. Differentiable in both.
    /// </summary>
    public static Tensor CategoricalKl(Tensor pLogits, Tensor qLogits)
    {
        var logp = pLogits.log_softmax(-1);                                     // (…, V)
        var logq = qLogits.log_softmax(-1);                                     // (…, V)
        return (logp.exp() * (logp - logq)).sum(-1);                            // (…)
    }

    /// <summary>
    /// D̄_KL = the mean over the batch's real completion tokens of KL(π_old(·|s_t) ‖ π_θ(·|s_t)): TRPO's
    /// constraint. oldLogits and logits are (N, M, V), mask (N, M).
    /// </summary>
    public static Tensor MeanKl(Tensor oldLogits, Tensor logits, Tensor mask)
        => Rollouts.MaskedMean(CategoricalKl(oldLogits, logits), mask);

    /// <summary>The tensors flattened and concatenated, in order, into one vector: how a list of per-parameter
    /// gradients becomes the vector g that CG works with (the order of <c>parameters()</c>, as
    /// <c>parameters_to_vector</c> uses).</summary>
    public static Tensor Flat(IEnumerable<Tensor> tensors) => cat(tensors.Select(t => t.reshape(-1)).ToList());

    // ─── The Fisher-vector product, by double backward ─────────────────────────────────────────────────
    //
    // At one state let z be the logits, p = softmax(z) the policy, p_old the (constant) old policy, and
    // J = ∂z/∂θ:
    //
    //     KL = Σ_a p_old,a (log p_old,a − log p_a)
    //     ∂KL/∂z = p − p_old                    so  ∇_θ KL  = Jᵀ(p − p_old)
    //     ∂²KL/∂z² = diag(p) − ppᵀ =: M_p       so  ∇²_θ KL = JᵀM_pJ + Σ_a (p − p_old)_a ∇²_θ z_a.
    //
    // At θ_old, p = p_old and the second term vanishes: the Hessian of the KL is exactly the Gauss–Newton
    // matrix JᵀM_pJ, and that is the Fisher, because M_p = Σ_a p_a (e_a − p)(e_a − p)ᵀ and
    // ∂ log p_a/∂z = e_a − p:
    //
    //     JᵀM_pJ = Σ_a p_a ∇_θ log p_a ∇_θ log p_aᵀ = E_{a∼π} [ ∇ log π(a|s) ∇ log π(a|s)ᵀ ] = F(s).
    //
    // So Fv is a Hessian-vector product of D̄_KL, which reverse mode gives for the price of two backward passes
    // (Pearlmutter 1994): take ∇_θ D̄_KL with create_graph: true — the gradient, itself recorded as a function
    // of θ (it is 0 at θ_old, but its derivative is not) — dot it with the constant v, and differentiate again:
    //
    //     Fv = ∇_θ ( (∇_θ D̄_KL)ᵀ v ),        then  + λv  for the damping.
    //
    // The first gradient's graph is built once per update and reused by all 21 products (20 CG iterations and
    // xᵀFx). Each product costs about three forward-backward passes: it also differentiates the second term
    // above, which is zero at θ_old — work a forward-mode Jacobian-vector product (the exact Gauss–Newton form
    // JᵀM_p(Jv)) would skip, but MinTorch, like TorchSharp, has no forward mode. The tests build F column by
    // column for a 300-parameter TinyGpt from the definition above and check the product against it.
    //
    // Products on a subsample. The Fisher only has to be a good enough metric, so — as the TRPO paper does
    // (its appendix C: 10% of the data) — the products use the first --fisher-fraction of the batch (the
    // batch's order is random). The gradient g uses every completion.

    /// <summary>
    /// Returns v ↦ (F + λI)v, where F is the Hessian of <paramref name="meanKl"/> at the current parameters —
    /// the Fisher, when meanKl = D̄_KL(θ_old detached, θ) is evaluated at θ = θ_old.
    /// </summary>
    /// <remarks>The parameters must not change while the returned function is in use.</remarks>
    public static Func<Tensor, Tensor> FisherVectorProduct(Tensor meanKl, IReadOnlyList<Parameter> parameters,
                                                           double damping)
    {
        IList<Tensor> ps = [.. parameters];
        // retain_graph: the products below differentiate this graph again and again (PyTorch keeps it by default
        // with create_graph; TorchSharp does not, and a freed graph would be an error at the second product).
        var gradKl = Flat(autograd.grad([meanKl], ps, retain_graph: true, create_graph: true));   // (n) ∇_θ D̄_KL
        return v =>
        {
            var gradKlDotV = (gradKl * v).sum();                                // (∇_θ D̄_KL)ᵀ v, v a constant
            var fv = Flat(autograd.grad([gradKlDotV], ps, retain_graph: true));  // (n) ∇_θ of it = F v
            return fv + damping * v;                                            // (n) (F + λI) v
        };
    }

    /// <summary>What <see cref="ConjugateGradient"/> returns: the solution, the iterations it ran and the
    /// norm of its final residual ‖b − Ax‖.</summary>
    public sealed record CgResult(Tensor X, int Iterations, double ResidualNorm);

    // ─── Conjugate gradient: F⁻¹g without F ─────────────────────────────────────────────────────────────
    //
    // TinyGpt has n ≈ 103k parameters; F is n × n (40 GB in float32) and is never built. Conjugate gradient
    // (Hestenes & Stiefel 1952) solves Fx = g using only products v ↦ Fv: after k iterations x is the best
    // solution in the Krylov space span{g, Fg, …, F^{k−1}g} (best in the F-norm), so a few products already
    // capture the directions of largest curvature, which are the ones that matter for the KL. Spinning Up runs
    // 10 iterations from x = 0; we run 20, because here the later iterations are the ones that pay
    // (docs/03-trpo.md). F estimated from a batch is singular (its rank is at most the number of states
    // times vocab − 1), so CG solves the damped system (F + λI)x = g, λ = 0.1: in directions the batch says
    // nothing about, the step falls back to a plain gradient step of size g/λ.
    //
    // The code is Spinning Up's cg plus one early exit: it stops once ‖r‖² ≤ 1e-10 (the residual_tol of
    // modular_rl's and OpenAI Baselines' cg). Once the residual is ~0 there is nothing left to solve, and the
    // next step's α = ‖r‖² / pᵀAp would divide ~0 by ~0 (exactly 0/0 when r = 0, since then p = 0 too). Spinning
    // Up guards that division by adding 1e-8 to the denominator instead; this code has no such term.

    /// <summary>
    /// Solves A x = b for a symmetric positive-definite A known only through v ↦ Av, from x = 0, for at most
    /// <paramref name="iterations"/> iterations or until ‖r‖² ≤ <paramref name="residualTol"/>.
    /// </summary>
    public static CgResult ConjugateGradient(Func<Tensor, Tensor> Avp, Tensor b, int iterations,
                                             double residualTol = 1e-10)
    {
        // Invariants: r = b − Ax is the residual (the negative gradient of ½xᵀAx − bᵀx), and the search
        // directions p are A-conjugate (p_iᵀ A p_j = 0 for i ≠ j), so each step's exact line minimisation never
        // undoes an earlier one: after k steps x minimises the error in the A-norm over the Krylov space.
        var x = zeros_like(b);                                                  // (n)
        var r = b.clone();                                                      // (n) r = b − A·0
        var p = b.clone();                                                      // (n) first direction: the residual
        double rr = Dot(r, r);
        int k = 0;
        for (; k < iterations && rr > residualTol; k++)
        {
            var Ap = Avp(p);                                                    // (n) the only use of A
            double alpha = rr / Dot(p, Ap);                                     // exact minimiser along p
            x = x + alpha * p;
            r = r - alpha * Ap;
            double rrNew = Dot(r, r);
            p = r + (rrNew / rr) * p;                                           // next direction, A-conjugate
            rr = rrNew;
        }
        return new CgResult(x, k, Math.Sqrt(rr));
    }

    /// <summary>aᵀb of two vectors, as a double.</summary>
    public static double Dot(Tensor a, Tensor b) => (a * b).sum().ToDouble();

    /// <summary>The natural-gradient step of one update (see <see cref="NaturalGradientStep"/>).</summary>
    /// <param name="FullStep">Δ = sqrt(2δ / xᵀFx) · x, the step to the edge of the quadratic trust region.</param>
    /// <param name="XFx">xᵀ(F + λI)x.</param>
    /// <param name="ExpectedGain">gᵀΔ: the surrogate improvement the linear model predicts for the full step.</param>
    /// <param name="CgIterations">Iterations CG ran.</param>
    /// <param name="CgResidual">‖g − (F + λI)x‖ after CG.</param>
    public sealed record NaturalStep(Tensor FullStep, double XFx, double ExpectedGain, int CgIterations,
                                     double CgResidual);

    // ─── The step: natural gradient, sized to the trust region ─────────────────────────────────────────
    //
    // Expand the surrogate and the constraint around θ_old, Δ = θ − θ_old:
    //
    //     L(θ_old + Δ) ≈ L(θ_old) + gᵀΔ
    //     D̄_KL(θ_old + Δ) ≈ ½ ΔᵀFΔ         (the KL is 0 at θ_old and so is its gradient — θ_old is its minimum —
    //                                        so the first term that survives is the quadratic one; its
    //                                        Hessian F is the Fisher information matrix, see FisherVectorProduct)
    //
    // Maximising gᵀΔ subject to ½ΔᵀFΔ = δ (Lagrange: g = βFΔ) gives the natural gradient direction F⁻¹g
    // (Amari 1998; Kakade 2002), scaled to the boundary:
    //
    //     Δ = sqrt(2δ / xᵀFx) · x,    x = F⁻¹g,         predicted gain gᵀΔ = sqrt(2δ · gᵀF⁻¹g).
    //
    // The step does not depend on the scale of g (double g and x doubles, the square root halves): the
    // advantages' units drop out. That is why TRPO needs no learning rate — δ replaces it, in nats.

    /// <summary>
    /// x ≈ (F + λI)⁻¹g by <paramref name="cgIters"/> CG iterations, then Δ = sqrt(2δ / xᵀFx) · x, the step whose
    /// quadratic KL model ½ΔᵀFΔ equals δ. <paramref name="fvp"/> includes the damping.
    /// </summary>
    public static NaturalStep NaturalGradientStep(Func<Tensor, Tensor> fvp, Tensor g, double delta, int cgIters)
    {
        var cg = ConjugateGradient(fvp, g, cgIters);                            // x ≈ F⁻¹g
        double xFx = Dot(cg.X, fvp(cg.X));                                      // one more product, as Spinning Up
        var fullStep = Math.Sqrt(2 * delta / xFx) * cg.X;                       // (n) ½ΔᵀFΔ = δ
        return new NaturalStep(fullStep, xFx, Dot(g, fullStep), cg.Iterations, cg.ResidualNorm);
    }

    /// <summary>What the line search did: whether it accepted a step, how many times it shrank it (10 =
    /// rejected), the fraction 0.8^j of the full step taken (0 when rejected), and the KL and surrogate gain
    /// of the last step tried.</summary>
    public sealed record LineSearchResult(bool Accepted, int Backtracks, double Fraction, double Kl, double Gain);

    // ─── Line search ───────────────────────────────────────────────────────────────────────────────────
    //
    // The quadratic model can be wrong — the true KL of Δ can exceed δ, or L can fail to improve (the linear
    // model overshoots). So TRPO tries θ_old + 0.8^j Δ for j = 0, 1, …, 9 and takes the first with D̄_KL ≤ δ
    // *and* L(θ) > L(θ_old), both measured exactly — on the first quarter of the batch (--line-search-fraction:
    // each try is a forward pass, and 512 completions measure a mean KL well enough); if none qualifies, it
    // keeps θ_old.

    /// <summary>
    /// TRPO's backtracking line search: for j = 0 … iters − 1, try the fraction coef^j of the full step and
    /// accept the first whose measured KL is at most δ and whose surrogate gain is positive.
    /// <paramref name="tryStep"/> sets θ = θ_old + fraction·Δ and returns (D̄_KL, L(θ) − L(θ_old)); when every
    /// try fails the caller must restore θ_old.
    /// </summary>
    public static LineSearchResult BacktrackingLineSearch(Func<double, (double kl, double gain)> tryStep,
                                                          double delta, double coef, int iters)
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

/// <summary>The chapter's program: rollout → advantages → policy gradient → natural step → line search →
/// report.</summary>
public static class Program
{
    static int Main(string[] args) =>
        Lab.Run<Args>(args, "03-trpo", "TRPO on a+b=: conjugate gradient on Fisher-vector products, " +
                      "a KL trust region, a line search", Train);

    /// <summary>The whole chapter: load the base, then rollout → advantages → gradient → natural step → line
    /// search → report, repeated.</summary>
    public static int Train(Args args)
    {
        int steps = args.StepsOr(3);
        int batch = args.Quick && !args.IsGiven(nameof(Args.BatchSize)) ? 256 : args.BatchSize;
        const int P = ArithmeticTask.PromptLength, M = ArithmeticTask.MaxCompletionLength;
        int nFisher = Math.Clamp((int)Math.Round(batch * args.FisherFraction), 1, batch);
        int nSearch = Math.Clamp((int)Math.Round(batch * args.LineSearchFraction), 1, batch);

        var task = new ArithmeticTask();                                        // the book's split: 512 held out
        var policy = BaseModel.Load(new BaseModelConfig());                     // π_θ, starts as the SFT base
        var reference = BaseModel.Load(new BaseModelConfig(), TextWriter.Null); // the base, frozen, for kl_ref
        var ps = policy.parameters().ToList();
        IList<Tensor> psT = [.. ps];
        var data = new SplitMix64(args.Seed);                                   // which problems each batch holds

        // Held-out accuracy at T = 1, always with the same random stream, so base and trained models are
        // compared on the same draws (common random numbers) and the difference is not sampling noise.
        Evaluation Evaluate(TinyGpt model) =>
            BaseModel.Evaluate(model, task.Eval, temperature: 1, generator: new Generator(BaseModel.EvalSeed));
        var baseEval = Evaluate(policy);
        Lab.Print($"base model, held-out sampled: {baseEval}");
        Lab.Print($"TRPO: {steps} updates of {batch} completions, Fisher on {nFisher}, δ {args.Delta}, " +
                  $"λ {args.Damping}, {args.CgIters} CG iterations{(args.Npg ? ", npg (no line search)" : "")}");

        using var log = new MetricsLog(Path.Combine(args.Out, "metrics.csv"),
            "reward", "accuracy", "eval_accuracy", "kl", "backtracks", "gain", "expected_gain", "entropy", "kl_ref");
        log.Add(0, ("eval_accuracy", baseEval.Accuracy));
        int rejected = 0;
        double secondsInSteps = 0;

        using (var progress = Lab.Progress(steps, args.Npg ? "NPG" : "TRPO",
                                           "accuracy", "eval_accuracy", "kl", "backtracks"))
        {
            for (int step = 1; step <= steps; step++)
            {
                using var scope = NewDisposeScope();   // TorchSharp: this step's tensors are freed at its end
                long t0 = Stopwatch.GetTimestamp();

                // ─── 1. rollout: N fresh problems, one completion each, from π_old = the current policy ───────
                var problems = ArithmeticTask.Sample(task.Train, batch, data);
                var rollout = Rollouts.Generate(policy, ArithmeticTask.EncodePrompts(problems), M);   // T = 1
                var rewards = ArithmeticTask.Rewards(problems, rollout.Completions, args.FormatBonus); // (N)
                var mask = rollout.CompletionMask;                                                    // (N, M)
                var sequences = rollout.Sequences;                                                    // (N, P + M)

                // ─── 2. advantages: R_i − b (b = 0 by default), for every token of completion i ───────────
                var advantages = Trpo.Advantages(rewards, args.Baseline);                             // (N)

                // ─── 3. the policy gradient g = ∇_θ L(θ_old), and π_old's distributions ────────────────────
                // L and its gradient are sums over completions, so they are accumulated over micro-batches
                // (L = Σ_chunks (n_c/N)·L_c); only one micro-batch's graph is alive at a time.
                var g = zeros(ps.Sum(p => p.numel()));                                                // (n)
                var oldLogitsParts = new List<Tensor>();
                var oldLogpParts = new List<Tensor>();
                for (int start = 0; start < batch; start += args.MicroBatch)
                {
                    int len = Math.Min(args.MicroBatch, batch - start);
                    var s = Rollouts.Score(policy, sequences.narrow(0, start, len), P);  // logits (n_c, M, V)
                    var oldLogp = s.LogProbs.detach();                                   // (n_c, M) log π_old
                    var surrogate = Trpo.Surrogate(s.LogProbs, oldLogp, advantages.narrow(0, start, len),
                                                   mask.narrow(0, start, len)) * ((double)len / batch);
                    g = g + Trpo.Flat(autograd.grad([surrogate], psT));
                    oldLogitsParts.Add(s.Logits.detach());
                    oldLogpParts.Add(oldLogp);
                }
                var oldLogits = cat(oldLogitsParts);                                                  // (N, M, V)
                var oldLogpAll = cat(oldLogpParts);                                                   // (N, M)
                Lab.CheckFinite(g, "policy gradient", step);

                // ─── 4. natural step: x ≈ (F + λI)⁻¹g by CG on Fisher-vector products, sized to δ ───────────
                // The Fisher is the Hessian of D̄_KL(θ_old, θ) at θ = θ_old, on the first nFisher completions.
                // It is differentiated twice, so attention is written out here: libtorch's fused CPU kernel has no
                // double backward (see TinyGpt.FusedAttention).
                policy.FusedAttention = false;
                var fisherScores = Rollouts.Score(policy, sequences.narrow(0, 0, nFisher), P);
                policy.FusedAttention = true;
                var meanKl = Trpo.MeanKl(fisherScores.Logits.detach(), fisherScores.Logits, mask.narrow(0, 0, nFisher));
                var fvp = Trpo.FisherVectorProduct(meanKl, ps, args.Damping);
                var natural = Trpo.NaturalGradientStep(fvp, g, args.Delta, args.CgIters);
                Lab.CheckFinite(natural.FullStep, "natural-gradient step", step,
                                "the Fisher-vector products overflowed — try a larger --damping");

                // ─── 5. line search: the first θ_old + 0.8^j Δ with D̄_KL ≤ δ and L improved ──────────────
                var thetaOld = nn.utils.parameters_to_vector(ps).detach().clone();                   // (n)
                var lsSeq = sequences.narrow(0, 0, nSearch);
                var lsMask = mask.narrow(0, 0, nSearch);
                var lsOldLogits = oldLogits.narrow(0, 0, nSearch);
                var lsOldLogp = oldLogpAll.narrow(0, 0, nSearch);
                var lsAdv = advantages.narrow(0, 0, nSearch);
                double lsSurrogateOld = Trpo.Surrogate(lsOldLogp, lsOldLogp, lsAdv, lsMask).ToDouble();
                (double kl, double gain) TryStep(double fraction)
                {
                    nn.utils.vector_to_parameters(thetaOld + fraction * natural.FullStep, ps);
                    using var _ = no_grad();
                    var s = Rollouts.Score(policy, lsSeq, P);
                    return (Trpo.MeanKl(lsOldLogits, s.Logits, lsMask).ToDouble(),
                            Trpo.Surrogate(s.LogProbs, lsOldLogp, lsAdv, lsMask).ToDouble() - lsSurrogateOld);
                }
                Trpo.LineSearchResult search;
                if (args.Npg)
                {
                    var (kl, gain) = TryStep(1.0);                                  // take it, only measure it
                    search = new Trpo.LineSearchResult(true, 0, 1.0, kl, gain);
                }
                else
                {
                    search = Trpo.BacktrackingLineSearch(TryStep, args.Delta, args.BacktrackCoef, args.BacktrackIters);
                    if (!search.Accepted) { nn.utils.vector_to_parameters(thetaOld, ps); rejected++; }
                }
                double stepSeconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                secondsInSteps += stepSeconds;

                // ─── 6. report ───────────────────────────────────────────────────────────────────────────
                double entropy, klRef;
                using (no_grad())
                {
                    entropy = Rollouts.MaskedMean(Rollouts.Entropy(oldLogits), mask).ToDouble(); // nats/token, π_old
                    // kl_ref on the Fisher's subsample only: a running diagnostic, not worth a forward pass of
                    // the whole batch
                    var refLogits = Rollouts.Score(reference, sequences.narrow(0, 0, nFisher), P).Logits; // (n_F, M, V)
                    klRef = Rollouts.MaskedSum(Trpo.CategoricalKl(oldLogits.narrow(0, 0, nFisher), refLogits),
                                               mask.narrow(0, 0, nFisher)).ToDouble() / nFisher;
                }
                var metrics = new List<(string, double)>
                {
                    ("reward", rewards.mean().ToDouble()),
                    ("accuracy", ArithmeticTask.Measure(problems, rollout.Completions).Accuracy),
                    ("kl", search.Kl), ("backtracks", search.Backtracks), ("accepted", search.Accepted ? 1 : 0),
                    ("gain", search.Gain), ("expected_gain", natural.ExpectedGain * search.Fraction),
                    ("g_norm", Math.Sqrt(Trpo.Dot(g, g))),
                    ("cg_residual", natural.CgResidual / Math.Sqrt(Trpo.Dot(g, g))),
                    ("xFx", natural.XFx), ("entropy", entropy), ("kl_ref", klRef), ("step_s", stepSeconds),
                };
                if (args.EvalEvery > 0 && step % args.EvalEvery == 0 && step < steps)
                    metrics.Add(("eval_accuracy", Evaluate(policy).Accuracy));
                log.Add(step, [.. metrics]);
                progress.Update(step, [.. metrics]);
            }
        }

        // ─── the summary: held-out accuracy, KL to the base per completion, cost ───────────────────────
        var finalEval = Evaluate(policy);
        log.Add(steps, ("eval_accuracy", finalEval.Accuracy));
        double klToBase = SequenceKl(policy, reference, task, BaseModel.EvalSeed);
        SvgPlot.Curves(log, $"TRPO on a+b= (δ {args.Delta}, batch {batch})",
                       "accuracy", "eval_accuracy", "kl", "backtracks", "gain", "kl_ref")
            .Write(Path.Combine(args.Out, "curves.svg"));
        Lab.Finish(new RunSummary
        {
            Metric = "held-out accuracy (sampled, T = 1)",
            Base = baseEval.Accuracy,
            Final = finalEval.Accuracy,
            Kl = klToBase,
            Extra =
            {
                ["steps"] = steps, ["batch_size"] = batch, ["fisher_batch"] = nFisher, ["delta"] = args.Delta,
                ["npg"] = args.Npg, ["rejected_steps"] = rejected,
                ["mean_backtracks"] =
                    log.Column("backtracks").Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average(),
                ["s_per_step"] = secondsInSteps / steps,
                ["well_formed_final"] = finalEval.WellFormed,
                ["models_held"] = 2,                        // the policy, and the frozen base for kl_ref and kl
                ["trainable_params"] = ps.Sum(p => p.numel()),
                ["samples_generated"] = (long)steps * batch,
                ["kl_estimator"] = "exact per-token KL (sum over the vocabulary) summed over each completion, " +
                                   "one sample per held-out prompt",
            },
        });
        return 0;
    }

    /// <summary>
    /// KL(π_θ ‖ π_base) per completion, in nats: sample one completion per held-out prompt from π_θ and sum the
    /// exact per-token KL over its real tokens — by the chain rule, an unbiased estimate of the KL between the
    /// two policies' distributions over whole completions.
    /// </summary>
    public static double SequenceKl(TinyGpt policy, TinyGpt reference, ArithmeticTask task, ulong seed)
    {
        using var scope = NewDisposeScope();   // TorchSharp: frees the rollouts and logits on return
        var r = Rollouts.Generate(policy, ArithmeticTask.EncodePrompts(task.Eval), ArithmeticTask.MaxCompletionLength,
                                  generator: new Generator(seed + 1));
        using var _ = no_grad();
        var kl = Trpo.CategoricalKl(Rollouts.Score(policy, r.Sequences, r.PromptLength).Logits,
                                    Rollouts.Score(reference, r.Sequences, r.PromptLength).Logits);   // (N, M)
        return Rollouts.MaskedSum(kl, r.CompletionMask).ToDouble() / r.Count;
    }
}
