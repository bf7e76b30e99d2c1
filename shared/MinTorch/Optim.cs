using TorchSharp.Modules;

namespace TorchSharp;

public static partial class torch
{
    /// <summary>Optimizers (TorchSharp's <c>torch.optim</c>): the factories and the base class.</summary>
    public static partial class optim
    {
        /// <summary>
        /// The base class of the optimizers. An optimizer holds one or more parameter groups, each
        /// with its own hyperparameters (at least a learning rate), and per-parameter state (moment
        /// estimates, step counts) kept in the parameters' order.
        /// </summary>
        /// <remarks>
        /// A learning-rate schedule changes <c>LearningRate</c> on the groups between steps:
        /// <code>foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;</code>
        /// </remarks>
        public abstract partial class Optimizer : IDisposable
        {
            protected IList<ParamGroup> _parameter_groups = new List<ParamGroup>();

            /// <summary>The parameter groups, seen as learning-rate controllers (what schedulers use).</summary>
            public virtual IEnumerable<ILearningRateController> ParamGroups => _parameter_groups;

            /// <summary>The parameters of every group, in order.</summary>
            public virtual IEnumerable<Parameter> parameters() => _parameter_groups.SelectMany(g => g.Parameters);

            /// <summary>Adds a group of parameters (hyperparameters it leaves unset take the optimizer's defaults).</summary>
            public virtual void add_param_group(ParamGroup param_group) => _parameter_groups.Add(param_group);

            /// <summary>
            /// Fills every parameter's gradient with zeros, in place — TorchSharp's behaviour (and PyTorch 1.x's
            /// default). A parameter that then receives no gradient in the next backward pass is still
            /// updated with g = 0 (its Adam moments decay). <c>module.zero_grad()</c> instead sets the
            /// gradients to null, and a parameter whose gradient is null is skipped by <see cref="step"/>.
            /// </summary>
            public virtual void zero_grad()
            {
                foreach (var p in parameters())
                    if (p.grad is Tensor g) Array.Clear(g._storage, 0, g._numel);
            }

            /// <summary>Performs one update of every parameter that has a gradient. The optional
            /// <paramref name="closure"/> re-evaluates the loss (with grad enabled) and its value is returned.</summary>
            public abstract Tensor? step(Func<Tensor>? closure = null);

            /// <summary>Runs <paramref name="body"/> on every group with grad mode off, after evaluating the closure.</summary>
            protected Tensor? _step<T>(Action<T> body, Func<Tensor>? closure) where T : ParamGroup
            {
                Tensor? loss = null;
                if (closure is not null)
                    using (enable_grad()) loss = closure();
                using (no_grad())
                    foreach (var group in _parameter_groups) body((T)group);
                return loss;
            }

            public void Dispose() { Dispose(true); GC.SuppressFinalize(this); }
            protected virtual void Dispose(bool disposing) { }
        }

        /// <summary>What a learning-rate scheduler needs from a parameter group.</summary>
        public interface ILearningRateController
        {
            /// <summary>The current learning rate.</summary>
            double LearningRate { set; get; }

            /// <summary>The learning rate the optimizer was created with.</summary>
            double InitialLearningRate { set; get; }
        }

        /// <summary>Optimizers with a momentum coefficient.</summary>
        public interface IMomentum
        {
            double Momentum { get; set; }
        }

        /// <summary>Optimizers with Adam's (β₁, β₂).</summary>
        public interface IBetas
        {
            (double, double) Betas { get; set; }
        }

        // ------------------------------------------------------------------ factories

        /// <summary>
        /// Stochastic gradient descent, optionally with momentum, Nesterov momentum and L2 weight decay
        /// (PyTorch's update rule exactly; see <see cref="Modules.SGD"/>).
        /// </summary>
        /// <param name="parameters">The parameters to optimize.</param>
        /// <param name="learningRate">The learning rate (no default, as in TorchSharp).</param>
        /// <param name="momentum">Momentum factor μ (default 0).</param>
        /// <param name="dampening">Dampening τ of the momentum (default 0).</param>
        /// <param name="weight_decay">L2 penalty λ added to the gradient (default 0).</param>
        /// <param name="nesterov">Use Nesterov momentum (default false).</param>
        /// <param name="maximize">Ascend the objective instead of descending it (default false).</param>
        public static Modules.SGD SGD(IEnumerable<Parameter> parameters, double learningRate, double momentum = 0, double dampening = 0,
            double weight_decay = 0, bool nesterov = false, bool maximize = false)
            => new(parameters, learningRate, momentum, dampening, weight_decay, nesterov, maximize);

        public static Modules.SGD SGD(IEnumerable<(string name, Parameter parameter)> parameters, double learningRate, double momentum = 0,
            double dampening = 0, double weight_decay = 0, bool nesterov = false, bool maximize = false)
            => new(parameters.Select(np => np.parameter), learningRate, momentum, dampening, weight_decay, nesterov, maximize);

        public static Modules.SGD SGD(IEnumerable<Modules.SGD.ParamGroup> parameters, double learningRate, double momentum = 0,
            double dampening = 0, double weight_decay = 0, bool nesterov = false, bool maximize = false)
            => new(parameters, learningRate, momentum, dampening, weight_decay, nesterov, maximize);

        /// <summary>
        /// Adam (Kingma &amp; Ba, 2014) with PyTorch's update rule; <paramref name="weight_decay"/> is an L2
        /// penalty added to the gradient (coupled). See <see cref="Modules.Adam"/>.
        /// </summary>
        /// <param name="parameters">The parameters to optimize.</param>
        /// <param name="lr">Learning rate (default 1e-3).</param>
        /// <param name="beta1">Decay rate of the first-moment estimate (default 0.9).</param>
        /// <param name="beta2">Decay rate of the second-moment estimate (default 0.999).</param>
        /// <param name="eps">Added to the denominator for numerical stability (default 1e-8).</param>
        /// <param name="weight_decay">L2 penalty (default 0).</param>
        /// <param name="amsgrad">Use the AMSGrad variant (default false).</param>
        /// <param name="maximize">Ascend the objective instead of descending it (default false).</param>
        public static Modules.Adam Adam(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
            double eps = 1e-8, double weight_decay = 0, bool amsgrad = false, bool maximize = false)
            => new(parameters, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize);

        public static Modules.Adam Adam(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1e-3, double beta1 = 0.9,
            double beta2 = 0.999, double eps = 1e-8, double weight_decay = 0, bool amsgrad = false, bool maximize = false)
            => new(parameters.Select(np => np.parameter), lr, beta1, beta2, eps, weight_decay, amsgrad, maximize);

        public static Modules.Adam Adam(IEnumerable<Modules.Adam.ParamGroup> parameters, double lr = 1e-3, double beta1 = 0.9,
            double beta2 = 0.999, double eps = 1e-8, double weight_decay = 0, bool amsgrad = false, bool maximize = false)
            => new(parameters, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize);

        /// <summary>
        /// AdamW (Loshchilov &amp; Hutter, 2017): Adam with decoupled weight decay, p ← p·(1 − lr·λ) before
        /// the Adam step. See <see cref="Modules.AdamW"/>.
        /// </summary>
        /// <remarks><b>The default <paramref name="weight_decay"/> is 0, as in TorchSharp — PyTorch's is 0.01.</b>
        /// Pass it explicitly when porting PyTorch code that relies on the default.</remarks>
        /// <param name="parameters">The parameters to optimize.</param>
        /// <param name="lr">Learning rate (default 1e-3).</param>
        /// <param name="beta1">Decay rate of the first-moment estimate (default 0.9).</param>
        /// <param name="beta2">Decay rate of the second-moment estimate (default 0.999).</param>
        /// <param name="eps">Added to the denominator for numerical stability (default 1e-8).</param>
        /// <param name="weight_decay">Decoupled weight decay λ (default 0 — TorchSharp's, not PyTorch's 0.01).</param>
        /// <param name="amsgrad">Use the AMSGrad variant (default false).</param>
        /// <param name="maximize">Ascend the objective instead of descending it (default false).</param>
        public static Modules.AdamW AdamW(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
            double eps = 1e-8, double weight_decay = 0, bool amsgrad = false, bool maximize = false)
            => new(parameters, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize);

        public static Modules.AdamW AdamW(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1e-3, double beta1 = 0.9,
            double beta2 = 0.999, double eps = 1e-8, double weight_decay = 0, bool amsgrad = false, bool maximize = false)
            => new(parameters.Select(np => np.parameter), lr, beta1, beta2, eps, weight_decay, amsgrad, maximize);

        public static Modules.AdamW AdamW(IEnumerable<Modules.AdamW.ParamGroup> parameters, double lr = 1e-3, double beta1 = 0.9,
            double beta2 = 0.999, double eps = 1e-8, double weight_decay = 0, bool amsgrad = false, bool maximize = false)
            => new(parameters, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize);
    }
}
