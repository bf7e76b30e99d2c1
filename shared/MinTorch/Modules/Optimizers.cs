using System.Numerics;
using System.Runtime.InteropServices;
using static TorchSharp.torch;
using static TorchSharp.torch.optim;

namespace TorchSharp.Modules;

/// <summary>The hyperparameters of one parameter group (TorchSharp's <c>OptimizerOptions</c>).</summary>
public class OptimizerOptions
{
    public double? LearningRate { get; set; }
    public double InitialLearningRate { get; set; }
}

/// <summary>A set of parameters that share hyperparameters (TorchSharp's <c>ParamGroup</c>).</summary>
public class ParamGroup : ILearningRateController
{
    private List<Parameter> _parameters = new();

    /// <summary>The parameters, in order (the enumeration is read once, when assigned).</summary>
    public IEnumerable<Parameter> Parameters { get => _parameters; set => _parameters = value.ToList(); }

    internal List<Parameter> ParameterList => _parameters;

    public OptimizerOptions Options { get; set; } = new();

    public double LearningRate { get => Options.LearningRate!.Value; set => Options.LearningRate = value; }
    public double InitialLearningRate { get => Options.InitialLearningRate; set => Options.InitialLearningRate = value; }
}

/// <summary>A parameter group with optimizer-specific options.</summary>
public class ParamGroup<TOptions> : ParamGroup where TOptions : OptimizerOptions, new()
{
    public ParamGroup() { base.Options = new TOptions(); }

    public ParamGroup(IEnumerable<Parameter> parameters, TOptions? options = null)
    {
        Parameters = parameters;
        base.Options = options ?? new TOptions();
    }

    public new TOptions Options { get => (TOptions)base.Options; set => base.Options = value; }
}

// =========================================================================================
// SGD
// =========================================================================================

/// <summary>
/// Stochastic gradient descent with optional momentum (PyTorch's <c>torch.optim.SGD</c> update rule).
/// </summary>
/// <remarks>
/// For each parameter p with gradient g (negated when <c>maximize</c>):
/// <code>
/// g ← g + λ·p                              (weight_decay λ ≠ 0: L2 penalty)
/// b ← g                     on the first step,
/// b ← μ·b + (1 − τ)·g       afterwards     (momentum μ ≠ 0, dampening τ)
/// g ← g + μ·b  (nesterov)   or   g ← b
/// p ← p − lr·g
/// </code>
/// </remarks>
public class SGD : Optimizer, IMomentum
{
    public class Options : OptimizerOptions
    {
        public double? momentum { get; set; }
        public double? dampening { get; set; }
        public double? weight_decay { get; set; }
        public bool? nesterov { get; set; }
        public bool? maximize { get; set; }
    }

    public class ParamGroup : ParamGroup<Options>
    {
        public ParamGroup() { }
        public ParamGroup(IEnumerable<Parameter> parameters, Options? options = null) : base(parameters, options) { }
    }

    private readonly Options _defaults;
    private readonly Dictionary<Parameter, Tensor> _momentum_buffers = new(ReferenceEqualityComparer.Instance);

    public SGD(IEnumerable<Parameter> parameters, double learningRate, double momentum = 0, double dampening = 0,
        double weight_decay = 0, bool nesterov = false, bool maximize = false)
        : this(new[] { new ParamGroup(parameters) }, learningRate, momentum, dampening, weight_decay, nesterov, maximize) { }

    public SGD(IEnumerable<ParamGroup> parameters, double learningRate, double momentum = 0, double dampening = 0,
        double weight_decay = 0, bool nesterov = false, bool maximize = false)
    {
        if (learningRate < 0) throw new ArgumentException($"SGD: invalid learning rate {learningRate} (must be >= 0)");
        if (momentum < 0) throw new ArgumentException($"SGD: invalid momentum {momentum} (must be >= 0)");
        if (weight_decay < 0) throw new ArgumentException($"SGD: invalid weight_decay {weight_decay} (must be >= 0)");
        if (nesterov && (momentum <= 0 || dampening != 0))
            throw new ArgumentException("SGD: Nesterov momentum requires a momentum and zero dampening");
        _defaults = new Options
        {
            LearningRate = learningRate, InitialLearningRate = learningRate, momentum = momentum, dampening = dampening,
            weight_decay = weight_decay, nesterov = nesterov, maximize = maximize,
        };
        foreach (var g in parameters) add_param_group(g);
    }

    public override void add_param_group(Modules.ParamGroup param_group)
    {
        if (param_group.Options is not Options opt) param_group.Options = opt = new Options { LearningRate = param_group.Options?.LearningRate };
        opt.LearningRate ??= _defaults.LearningRate;
        if (opt.InitialLearningRate == 0) opt.InitialLearningRate = opt.LearningRate!.Value;
        opt.momentum ??= _defaults.momentum;
        opt.dampening ??= _defaults.dampening;
        opt.weight_decay ??= _defaults.weight_decay;
        opt.nesterov ??= _defaults.nesterov;
        opt.maximize ??= _defaults.maximize;
        base.add_param_group(param_group);
    }

    public double Momentum { get => _defaults.momentum!.Value; set { foreach (var g in _parameter_groups) ((Options)g.Options).momentum = value; _defaults.momentum = value; } }

    public override Tensor? step(Func<Tensor>? closure = null) => _step<Modules.ParamGroup>(group =>
    {
        var o = (Options)group.Options;
        double lr = o.LearningRate!.Value, mu = o.momentum!.Value, tau = o.dampening!.Value, wd = o.weight_decay!.Value;
        bool nesterov = o.nesterov!.Value, maximize = o.maximize!.Value;
        foreach (var p in group.ParameterList)
        {
            var g = p.grad;
            if (g is null) continue;
            OptimKernels.CheckGrad(p, g, "SGD");
            Tensor? buf = null;
            bool first = false;
            if (mu != 0 && !_momentum_buffers.TryGetValue(p, out buf))
            {
                buf = Tensor.Empty(p._shape, p._dtype).DetachFromDisposeScope();   // state outlives the step's scope
                _momentum_buffers[p] = buf;
                first = true;
            }
            if (buf is not null) OptimKernels.CheckState(p, buf, "SGD");
            if (p._dtype == ScalarType.Float32)
                OptimKernels.Sgd(p.Arr<float>(), g.Arr<float>(), buf?.Arr<float>(), p._numel, (float)lr, (float)mu, (float)(1 - tau), (float)wd, nesterov, maximize, first);
            else
                OptimKernels.Sgd(p.Arr<double>(), g.Arr<double>(), buf?.Arr<double>(), p._numel, lr, mu, 1 - tau, wd, nesterov, maximize, first);
        }
    }, closure);
}

// =========================================================================================
// Adam and AdamW
// =========================================================================================

/// <summary>The per-parameter state of Adam and AdamW.</summary>
internal sealed class AdamState
{
    public long step;
    public required Tensor exp_avg;
    public required Tensor exp_avg_sq;
    public Tensor? max_exp_avg_sq;
}

/// <summary>
/// Adam (PyTorch's <c>torch.optim.Adam</c>, single-tensor implementation, computed in the parameter's dtype).
/// </summary>
/// <remarks>
/// For each parameter p with gradient g (negated when <c>maximize</c>), at step t:
/// <code>
/// g  ← g + λ·p                               (weight_decay λ: L2 penalty, coupled to the gradient)
/// m  ← β₁·m + (1 − β₁)·g                     first moment
/// v  ← β₂·v + (1 − β₂)·g²                    second moment
/// v̂  ← max(v̂, v)  (amsgrad)  or  v̂ ← v
/// p  ← p − (lr / (1 − β₁ᵗ)) · m / (√v̂ / √(1 − β₂ᵗ) + ε)
/// </code>
/// which is p − lr·m̂/(√v̂ₜ + ε) with the bias-corrected m̂ = m/(1 − β₁ᵗ), v̂ₜ = v̂/(1 − β₂ᵗ), written in the
/// order PyTorch evaluates it so float32 results agree with PyTorch's to rounding.
/// </remarks>
public class Adam : Optimizer, IBetas
{
    public class Options : OptimizerOptions
    {
        public double? beta1 { get; set; }
        public double? beta2 { get; set; }
        public double? eps { get; set; }
        public double? weight_decay { get; set; }
        public bool? amsgrad { get; set; }
        public bool? maximize { get; set; }
    }

    public class ParamGroup : ParamGroup<Options>
    {
        public ParamGroup() { }
        public ParamGroup(IEnumerable<Parameter> parameters, Options? options = null) : base(parameters, options) { }
    }

    private readonly Options _defaults;
    internal readonly Dictionary<Parameter, AdamState> _state = new(ReferenceEqualityComparer.Instance);

    public Adam(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        double weight_decay = 0, bool amsgrad = false, bool maximize = false)
        : this(new[] { new ParamGroup(parameters) }, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize) { }

    public Adam(IEnumerable<ParamGroup> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        double weight_decay = 0, bool amsgrad = false, bool maximize = false)
    {
        _defaults = OptimKernels.AdamDefaults<Options>("Adam", lr, beta1, beta2, eps, weight_decay, amsgrad, maximize);
        foreach (var g in parameters) add_param_group(g);
    }

    public override void add_param_group(Modules.ParamGroup param_group)
    {
        OptimKernels.FillAdamOptions(param_group, _defaults);
        base.add_param_group(param_group);
    }

    public (double, double) Betas
    {
        get => (_defaults.beta1!.Value, _defaults.beta2!.Value);
        set { foreach (var g in _parameter_groups) { var o = (Options)g.Options; (o.beta1, o.beta2) = value; } (_defaults.beta1, _defaults.beta2) = value; }
    }

    public override Tensor? step(Func<Tensor>? closure = null) => _step<Modules.ParamGroup>(group =>
    {
        var o = (Options)group.Options;
        OptimKernels.AdamGroup(group.ParameterList, _state, o.LearningRate!.Value, o.beta1!.Value, o.beta2!.Value, o.eps!.Value,
            l2: o.weight_decay!.Value, decoupled: 0, o.amsgrad!.Value, o.maximize!.Value, "Adam");
    }, closure);
}

/// <summary>
/// AdamW (PyTorch's <c>torch.optim.AdamW</c>): Adam with decoupled weight decay — first p ← p·(1 − lr·λ),
/// then the Adam step without an L2 term.
/// </summary>
/// <remarks><b>TorchSharp's <c>AdamW</c> defaults to <c>weight_decay = 0</c>; PyTorch's defaults to 0.01.</b>
/// MinTorch keeps TorchSharp's default, so pass the decay explicitly.</remarks>
public class AdamW : Optimizer, IBetas
{
    public class Options : OptimizerOptions
    {
        public double? beta1 { get; set; }
        public double? beta2 { get; set; }
        public double? eps { get; set; }
        public double? weight_decay { get; set; }
        public bool? amsgrad { get; set; }
        public bool? maximize { get; set; }
    }

    public class ParamGroup : ParamGroup<Options>
    {
        public ParamGroup() { }
        public ParamGroup(IEnumerable<Parameter> parameters, Options? options = null) : base(parameters, options) { }
    }

    private readonly Options _defaults;
    internal readonly Dictionary<Parameter, AdamState> _state = new(ReferenceEqualityComparer.Instance);

    public AdamW(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        double weight_decay = 0, bool amsgrad = false, bool maximize = false)
        : this(new[] { new ParamGroup(parameters) }, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize) { }

    public AdamW(IEnumerable<ParamGroup> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        double weight_decay = 0, bool amsgrad = false, bool maximize = false)
    {
        _defaults = OptimKernels.AdamDefaults<Options>("AdamW", lr, beta1, beta2, eps, weight_decay, amsgrad, maximize);
        foreach (var g in parameters) add_param_group(g);
    }

    public override void add_param_group(Modules.ParamGroup param_group)
    {
        OptimKernels.FillAdamOptions(param_group, _defaults);
        base.add_param_group(param_group);
    }

    public (double, double) Betas
    {
        get => (_defaults.beta1!.Value, _defaults.beta2!.Value);
        set { foreach (var g in _parameter_groups) { var o = (Options)g.Options; (o.beta1, o.beta2) = value; } (_defaults.beta1, _defaults.beta2) = value; }
    }

    public override Tensor? step(Func<Tensor>? closure = null) => _step<Modules.ParamGroup>(group =>
    {
        var o = (Options)group.Options;
        OptimKernels.AdamGroup(group.ParameterList, _state, o.LearningRate!.Value, o.beta1!.Value, o.beta2!.Value, o.eps!.Value,
            l2: 0, decoupled: o.weight_decay!.Value, o.amsgrad!.Value, o.maximize!.Value, "AdamW");
    }, closure);
}

// =========================================================================================
// The update kernels: one fused pass over each parameter (memory-bound: read p, g, m, v; write p, m, v).
// Each element is independent, so chunks run in parallel and the result cannot depend on the thread count.
// =========================================================================================

internal static class OptimKernels
{
    private const int Grain = 32768;

    internal static void CheckGrad(Parameter p, Tensor g, string op)
    {
        if (!Shapes.Equal(p._shape, g._shape))
            throw new InvalidOperationException($"{op}: a parameter of shape {p.ShapeString} has a gradient of shape {g.ShapeString}");
        if (p._dtype != g._dtype)
            throw new InvalidOperationException($"{op}: a parameter of dtype {p._dtype} has a gradient of dtype {g._dtype}");
        if (!p.IsFloat)
            throw new InvalidOperationException($"{op}: only floating-point parameters can be optimized, got {p._dtype}");
    }

    /// <summary>The state was created for this parameter; refuse to go on if its dtype was changed since (module.to(...)).</summary>
    internal static void CheckState(Parameter p, Tensor state, string op)
    {
        if (state._dtype != p._dtype)
            throw new InvalidOperationException($"{op}: a parameter of shape {p.ShapeString} is now {p._dtype} but its optimizer state is {state._dtype}; " +
                                                "convert the model before creating the optimizer");
    }

    internal static TOptions AdamDefaults<TOptions>(string op, double lr, double beta1, double beta2, double eps, double weight_decay, bool amsgrad, bool maximize)
        where TOptions : OptimizerOptions, new()
    {
        if (lr < 0) throw new ArgumentException($"{op}: invalid learning rate {lr} (must be >= 0)");
        if (eps < 0) throw new ArgumentException($"{op}: invalid eps {eps} (must be >= 0)");
        if (beta1 < 0 || beta1 >= 1) throw new ArgumentException($"{op}: invalid beta1 {beta1} (must be in [0, 1))");
        if (beta2 < 0 || beta2 >= 1) throw new ArgumentException($"{op}: invalid beta2 {beta2} (must be in [0, 1))");
        if (weight_decay < 0) throw new ArgumentException($"{op}: invalid weight_decay {weight_decay} (must be >= 0)");
        var o = new TOptions { LearningRate = lr, InitialLearningRate = lr };
        Set(o, beta1, beta2, eps, weight_decay, amsgrad, maximize, overwrite: true);
        return o;
    }

    /// <summary>Fills the options a group left unset from the optimizer's defaults.</summary>
    internal static void FillAdamOptions<TOptions>(ParamGroup group, TOptions defaults) where TOptions : OptimizerOptions, new()
    {
        if (group.Options is not TOptions opt) group.Options = opt = new TOptions { LearningRate = group.Options?.LearningRate };
        opt.LearningRate ??= defaults.LearningRate;
        if (opt.InitialLearningRate == 0) opt.InitialLearningRate = opt.LearningRate!.Value;
        var d = Get(defaults);
        Set(opt, d.b1, d.b2, d.eps, d.wd, d.ams, d.max, overwrite: false);
    }

    // Adam.Options and AdamW.Options are distinct types (as in TorchSharp) with the same properties.
    private static (double b1, double b2, double eps, double wd, bool ams, bool max) Get(OptimizerOptions o) => o switch
    {
        Adam.Options a => (a.beta1!.Value, a.beta2!.Value, a.eps!.Value, a.weight_decay!.Value, a.amsgrad!.Value, a.maximize!.Value),
        AdamW.Options a => (a.beta1!.Value, a.beta2!.Value, a.eps!.Value, a.weight_decay!.Value, a.amsgrad!.Value, a.maximize!.Value),
        _ => throw new InvalidOperationException($"internal: unexpected options type {o.GetType().Name}"),
    };

    private static void Set(OptimizerOptions o, double b1, double b2, double eps, double wd, bool ams, bool max, bool overwrite)
    {
        switch (o)
        {
            case Adam.Options a:
                if (overwrite || a.beta1 is null) a.beta1 = b1;
                if (overwrite || a.beta2 is null) a.beta2 = b2;
                if (overwrite || a.eps is null) a.eps = eps;
                if (overwrite || a.weight_decay is null) a.weight_decay = wd;
                if (overwrite || a.amsgrad is null) a.amsgrad = ams;
                if (overwrite || a.maximize is null) a.maximize = max;
                break;
            case AdamW.Options a:
                if (overwrite || a.beta1 is null) a.beta1 = b1;
                if (overwrite || a.beta2 is null) a.beta2 = b2;
                if (overwrite || a.eps is null) a.eps = eps;
                if (overwrite || a.weight_decay is null) a.weight_decay = wd;
                if (overwrite || a.amsgrad is null) a.amsgrad = ams;
                if (overwrite || a.maximize is null) a.maximize = max;
                break;
        }
    }

    /// <summary>One Adam/AdamW step for every parameter of a group that has a gradient.</summary>
    /// <summary>A zero state tensor shaped like <paramref name="p"/>; it lives as long as the optimizer, past the
    /// dispose scope of the step that made it.</summary>
    static Tensor State(Parameter p) => Tensor.Zeros(p._shape, p._dtype).DetachFromDisposeScope();

    internal static void AdamGroup(List<Parameter> ps, Dictionary<Parameter, AdamState> states, double lr, double beta1, double beta2,
        double eps, double l2, double decoupled, bool amsgrad, bool maximize, string op)
    {
        foreach (var p in ps)
        {
            var g = p.grad;
            if (g is null) continue;
            CheckGrad(p, g, op);
            if (!states.TryGetValue(p, out var s))
            {
                s = new AdamState { exp_avg = State(p), exp_avg_sq = State(p) };
                if (amsgrad) s.max_exp_avg_sq = State(p);
                states[p] = s;
            }
            if (amsgrad) s.max_exp_avg_sq ??= State(p);
            CheckState(p, s.exp_avg, op);
            s.step++;
            // The scalars, computed in double as PyTorch does in Python, then rounded to the parameter's dtype.
            double bias_correction1 = 1 - Math.Pow(beta1, s.step);
            double bias_correction2 = 1 - Math.Pow(beta2, s.step);
            double step_size = lr / bias_correction1;
            double bias_correction2_sqrt = Math.Sqrt(bias_correction2);
            double decay = 1 - lr * decoupled;
            if (p._dtype == ScalarType.Float32)
                Adam(p.Arr<float>(), g.Arr<float>(), s.exp_avg.Arr<float>(), s.exp_avg_sq.Arr<float>(), amsgrad ? s.max_exp_avg_sq!.Arr<float>() : null, p._numel,
                    new AdamCoefficients<float>((float)beta1, (float)(1 - beta1), (float)beta2, (float)(1 - beta2), (float)l2, (float)decay,
                        (float)-step_size, (float)bias_correction2_sqrt, (float)eps, maximize, l2 != 0, decoupled != 0));
            else
                Adam(p.Arr<double>(), g.Arr<double>(), s.exp_avg.Arr<double>(), s.exp_avg_sq.Arr<double>(), amsgrad ? s.max_exp_avg_sq!.Arr<double>() : null, p._numel,
                    new AdamCoefficients<double>(beta1, 1 - beta1, beta2, 1 - beta2, l2, decay, -step_size, bias_correction2_sqrt, eps, maximize, l2 != 0, decoupled != 0));
        }
    }

    internal readonly record struct AdamCoefficients<T>(T Beta1, T OneMinusBeta1, T Beta2, T OneMinusBeta2, T L2, T Decay,
        T NegStepSize, T BiasCorrection2Sqrt, T Eps, bool Maximize, bool HasL2, bool HasDecay);

    /// <summary>
    /// The fused Adam update over elements [0, n), element by element, in PyTorch's order:
    /// g ← ±g (+ λ·p);  p ← p·decay;  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g·g;  v̂ ← max(v̂, v);
    /// p ← p + (−step_size)·m / (√v̂ / √bc₂ + ε).
    /// </summary>
    /// <remarks>PyTorch's CPU kernel for <c>a.add(b, alpha)</c> computes a + α·b as one fused multiply-add
    /// (one rounding); the same steps here use <see cref="Fma{T}(T, T, T)"/>, which makes the float32
    /// results agree with PyTorch's bit for bit in our reference tests, not just to rounding.</remarks>
    internal static void Adam<T>(T[] p, T[] g, T[] m, T[] v, T[]? vmax, int n, AdamCoefficients<T> c)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Par.For(n, Grain, (start, end) => AdamRange(p, g, m, v, vmax, start, end, c));
    }

    private static void AdamRange<T>(T[] P, T[] G, T[] M, T[] V, T[]? VMax, int start, int end, AdamCoefficients<T> c)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = start;
        if (Vector.IsHardwareAccelerated && end - start >= Vector<T>.Count)
        {
            ref T p = ref MemoryMarshal.GetArrayDataReference(P);
            ref T g = ref MemoryMarshal.GetArrayDataReference(G);
            ref T m = ref MemoryMarshal.GetArrayDataReference(M);
            ref T v = ref MemoryMarshal.GetArrayDataReference(V);
            var b1 = new Vector<T>(c.Beta1); var omb1 = new Vector<T>(c.OneMinusBeta1);
            var b2 = new Vector<T>(c.Beta2); var omb2 = new Vector<T>(c.OneMinusBeta2);
            var l2 = new Vector<T>(c.L2); var decay = new Vector<T>(c.Decay);
            var negStep = new Vector<T>(c.NegStepSize); var bc2 = new Vector<T>(c.BiasCorrection2Sqrt); var eps = new Vector<T>(c.Eps);
            for (; i <= end - Vector<T>.Count; i += Vector<T>.Count)
            {
                nuint k = (nuint)i;
                var gi = Vector.LoadUnsafe(ref g, k);
                if (c.Maximize) gi = -gi;
                var pi = Vector.LoadUnsafe(ref p, k);
                if (c.HasL2) gi = Fma(pi, l2, gi);
                if (c.HasDecay) pi *= decay;
                var mi = Fma(gi, omb1, Vector.LoadUnsafe(ref m, k) * b1);
                var vi = Vector.LoadUnsafe(ref v, k) * b2 + omb2 * gi * gi;
                mi.StoreUnsafe(ref m, k);
                vi.StoreUnsafe(ref v, k);
                if (VMax is not null)
                {
                    ref T vm = ref MemoryMarshal.GetArrayDataReference(VMax);
                    vi = Vector.Max(Vector.LoadUnsafe(ref vm, k), vi);
                    vi.StoreUnsafe(ref vm, k);
                }
                var denom = Vector.SquareRoot(vi) / bc2 + eps;
                (pi + negStep * mi / denom).StoreUnsafe(ref p, k);
            }
        }
        for (; i < end; i++)
        {
            T gi = c.Maximize ? -G[i] : G[i];
            T pi = P[i];
            if (c.HasL2) gi = Fma(pi, c.L2, gi);
            if (c.HasDecay) pi *= c.Decay;
            T mi = Fma(gi, c.OneMinusBeta1, M[i] * c.Beta1);
            T vi = V[i] * c.Beta2 + c.OneMinusBeta2 * gi * gi;
            M[i] = mi; V[i] = vi;
            if (VMax is not null) { vi = T.Max(VMax[i], vi); VMax[i] = vi; }
            T denom = T.Sqrt(vi) / c.BiasCorrection2Sqrt + c.Eps;
            P[i] = pi + c.NegStepSize * mi / denom;
        }
    }

    /// <summary>
    /// The fused SGD update: d ← ±g (+ λ·p); with momentum b ← d (first step) or b ← μb + (1−τ)d, then
    /// d ← d + μb (Nesterov) or d ← b; finally p ← p − lr·d. Each "x + α·y" is one fused multiply-add, as in PyTorch.
    /// </summary>
    internal static void Sgd<T>(T[] P, T[] G, T[]? B, int n, T lr, T mu, T oneMinusDampening, T wd, bool nesterov, bool maximize, bool first)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T negLr = -lr;
        Par.For(n, Grain, (start, end) =>
        {
            int i = start;
            if (Vector.IsHardwareAccelerated && end - start >= Vector<T>.Count)
            {
                ref T p = ref MemoryMarshal.GetArrayDataReference(P);
                ref T g = ref MemoryMarshal.GetArrayDataReference(G);
                var vwd = new Vector<T>(wd); var vmu = new Vector<T>(mu); var vomd = new Vector<T>(oneMinusDampening); var vlr = new Vector<T>(negLr);
                for (; i <= end - Vector<T>.Count; i += Vector<T>.Count)
                {
                    nuint k = (nuint)i;
                    var d = Vector.LoadUnsafe(ref g, k);
                    if (maximize) d = -d;
                    var pi = Vector.LoadUnsafe(ref p, k);
                    if (wd != T.Zero) d = Fma(pi, vwd, d);
                    if (B is not null)
                    {
                        ref T b = ref MemoryMarshal.GetArrayDataReference(B);
                        var bi = first ? d : Fma(d, vomd, Vector.LoadUnsafe(ref b, k) * vmu);
                        bi.StoreUnsafe(ref b, k);
                        d = nesterov ? Fma(bi, vmu, d) : bi;
                    }
                    Fma(d, vlr, pi).StoreUnsafe(ref p, k);
                }
            }
            for (; i < end; i++)
            {
                T d = maximize ? -G[i] : G[i];
                if (wd != T.Zero) d = Fma(P[i], wd, d);
                if (B is not null)
                {
                    T b = first ? d : Fma(d, oneMinusDampening, B[i] * mu);
                    B[i] = b;
                    d = nesterov ? Fma(b, mu, d) : b;
                }
                P[i] = Fma(d, negLr, P[i]);
            }
        });
    }

    /// <summary>x·y + z with a single rounding.</summary>
    private static T Fma<T>(T x, T y, T z) where T : IFloatingPointIeee754<T> => T.FusedMultiplyAdd(x, y, z);

    /// <summary>x·y + z with a single rounding, lane by lane.</summary>
    private static Vector<T> Fma<T>(Vector<T> x, Vector<T> y, Vector<T> z) where T : unmanaged
    {
        if (typeof(T) == typeof(float))
            return Vector.FusedMultiplyAdd(x.As<T, float>(), y.As<T, float>(), z.As<T, float>()).As<float, T>();
        if (typeof(T) == typeof(double))
            return Vector.FusedMultiplyAdd(x.As<T, double>(), y.As<T, double>(), z.As<T, double>()).As<double, T>();
        throw new NotSupportedException($"internal: FusedMultiplyAdd for {typeof(T).Name}");
    }
}
