using System.Numerics;
using System.Numerics.Tensors;

namespace TorchSharp;

/// <summary>
/// Cross-entropy with class-index targets, fused: one pass per sample computes log Σ e^x (max-shifted),
/// the target's logit and, with label smoothing, the weighted sum of all logits. Input seen as (N, C, D):
/// N samples, C classes, D positions (1 for the usual (N, C) case).
/// </summary>
/// <remarks>
/// Per sample, with L = log Σ_c e^(x_c), target t, class weights w (all 1 without a weight), W = Σ_c w_c,
/// smoothing ε and valid = (t ≠ ignore_index):
///   ℓ = valid · [ (1 − ε)·w_t·(L − x_t) + (ε/C)·Σ_c w_c (L − x_c) ]
///   ∂ℓ/∂x_c = valid · [ ((1 − ε)w_t + (ε/C)W)·p_c − (ε/C)·w_c − (1 − ε)·w_t·[c = t] ],   p = softmax(x).
/// </remarks>
internal static class CrossEntropyKernels<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public static void Forward(T[] X, long[] tgt, T[]? Wt, int N, int C, int D, long ignore, double eps,
        T[] loss, T[] lse, double[] sampleWeight)
    {
        T e = T.CreateTruncating(eps), oneMinusE = T.One - e, eOverC = e / T.CreateTruncating(C);
        T wSum = Wt is null ? T.CreateTruncating(C) : TensorPrimitives.Sum<T>(Wt);
        Par.For(N * D, Par.Grain((long)C * 4), (s0, s1) =>
        {
            var col = D == 1 ? null : new T[C];
            for (int p = s0; p < s1; p++)
            {
                int n = p / D, j = p % D;
                ReadOnlySpan<T> x;
                if (D == 1) x = new ReadOnlySpan<T>(X, n * C, C);
                else { for (int c = 0; c < C; c++) col![c] = X[(n * C + c) * D + j]; x = col; }
                T m = TensorPrimitives.Max(x);
                T L = m + T.Log(SumExp(x, m));
                lse[p] = L;
                long t = tgt[p];
                if (t == ignore) { loss[p] = T.Zero; sampleWeight[p] = 0; continue; }
                T wt = Wt is null ? T.One : Wt[t];
                sampleWeight[p] = double.CreateTruncating(wt);
                T l = oneMinusE * wt * (L - x[(int)t]);
                if (eps > 0)
                {
                    T wx = Wt is null ? TensorPrimitives.Sum(x) : TensorPrimitives.Dot(x, Wt);
                    l += eOverC * (L * wSum - wx);
                }
                loss[p] = l;
            }
        });
    }

    private static T SumExp(ReadOnlySpan<T> x, T m)
    {
        T s = T.Zero;
        int n = x.Length, w = System.Runtime.Intrinsics.Vector256<T>.Count, i = 0;
        var vm = System.Runtime.Intrinsics.Vector256.Create(m);
        var acc = System.Runtime.Intrinsics.Vector256<T>.Zero;
        for (; i <= n - w; i += w) acc += VecMath.Exp(System.Runtime.Intrinsics.Vector256.Create(x.Slice(i, w)) - vm);
        s = System.Runtime.Intrinsics.Vector256.Sum(acc);
        for (; i < n; i++) s += T.Exp(x[i] - m);
        return s;
    }

    /// <summary>dx from the per-sample upstream gradient g (one value per sample), using the saved L.</summary>
    public static void Backward(T[] G, T[] X, long[] tgt, T[]? Wt, T[] lse, int N, int C, int D, long ignore, double eps, T[] DX)
    {
        T e = T.CreateTruncating(eps), oneMinusE = T.One - e, eOverC = e / T.CreateTruncating(C);
        T wSum = Wt is null ? T.CreateTruncating(C) : TensorPrimitives.Sum<T>(Wt);
        Par.For(N * D, Par.Grain((long)C * 4), (s0, s1) =>
        {
            for (int p = s0; p < s1; p++)
            {
                int n = p / D, j = p % D;
                long t = tgt[p];
                T g = t == ignore ? T.Zero : G[p];
                T wt = t == ignore || Wt is null ? T.One : Wt[t];
                T a = g * (oneMinusE * wt + eOverC * wSum);
                for (int c = 0; c < C; c++)
                {
                    int q = (n * C + c) * D + j;
                    T d = a * T.Exp(X[q] - lse[p]);
                    if (eps > 0) d -= g * eOverC * (Wt is null ? T.One : Wt[c]);
                    if (c == t) d -= g * oneMinusE * wt;
                    DX[q] = d;
                }
            }
        });
    }
}

public static partial class torch
{
    public static partial class nn
    {
        /// <summary>How a loss reduces its per-element values (TorchSharp's <c>torch.nn.Reduction</c>).</summary>
        public enum Reduction : long
        {
            /// <summary>Return the per-element losses.</summary>
            None = 0,
            /// <summary>Their mean (for weighted class-index losses: their sum divided by the sum of the targets' weights).</summary>
            Mean = 1,
            /// <summary>Their sum.</summary>
            Sum = 2,
        }

        public static partial class functional
        {
            // =====================================================================================
            // cross_entropy = nll_loss(log_softmax(input)), fused.
            // =====================================================================================

            /// <summary>
            /// Cross-entropy between logits <paramref name="input"/> (N, C) or (N, C, d1, ...) — or (C) for one
            /// sample — and <paramref name="target"/>: int64 class indices of shape (N) / (N, d1, ...), or class
            /// probabilities of the input's shape. Semantics follow PyTorch exactly: <paramref name="weight"/>
            /// rescales each class, targets equal to <paramref name="ignore_index"/> contribute nothing, the mean
            /// divides by the summed weight of the non-ignored targets, and <paramref name="label_smoothing"/> ε
            /// mixes the one-hot target with the uniform distribution: (1 − ε)·onehot + ε/C.
            /// </summary>
            public static Tensor cross_entropy(Tensor input, Tensor target, Tensor? weight = null, long ignore_index = -100,
                Reduction reduction = Reduction.Mean, double label_smoothing = 0.0)
            {
                const string op = "cross_entropy";
                if (!input.IsFloat) throw new ArgumentException($"{op}: expected floating-point logits, got {input.dtype}");
                if (input.Rank == 0) throw new ArgumentException($"{op}: the input must have a class dimension, got a 0-dim tensor");
                if (label_smoothing < 0 || label_smoothing > 1)
                    throw new ArgumentException($"{op}: label_smoothing must be in [0, 1], got {label_smoothing}");
                int classDim = input.Rank == 1 ? 0 : 1;
                long C = input._shape[classDim];
                var w = CheckWeight(op, weight, C, input.dtype);

                if (target.IsFloat && Shapes.Equal(target._shape, input._shape))
                    return SoftTargetCrossEntropy(input, target, w, classDim, reduction, label_smoothing);

                var expected = input._shape.Where((_, i) => i != classDim).ToArray();
                if (!Shapes.Equal(target._shape, expected))
                    throw new ArgumentException($"{op}: target shape {target.ShapeString} does not match input shape {input.ShapeString}: " +
                        $"expected {Shapes.Str(expected)} for class indices, or {input.ShapeString} for class probabilities");
                if (target.dtype != ScalarType.Int64)
                    throw new ArgumentException($"{op}: class-index targets must have dtype Int64, got {target.dtype} (class probabilities must have the input's shape {input.ShapeString})");
                CheckTargets(op, target, C, ignore_index);

                var (loss, totalWeight) = CrossEntropyPerSample(input, target, w, classDim, ignore_index, label_smoothing);
                return reduction switch
                {
                    Reduction.None => loss,
                    Reduction.Sum => loss.sum(),
                    _ => loss.sum().div(totalWeight),   // 0/0 = NaN when every target is ignored, as in PyTorch
                };
            }

            private static Tensor? CheckWeight(string op, Tensor? weight, long C, ScalarType dtype)
            {
                if (weight is null) return null;
                if (weight.Rank != 1 || weight._shape[0] != C)
                    throw new ArgumentException($"{op}: weight must be a 1-D tensor with one entry per class ({C}), got shape {weight.ShapeString}");
                return weight._dtype == dtype ? weight.detach() : weight.detach().to_type(dtype);
            }

            private static void CheckTargets(string op, Tensor target, long C, long ignore)
            {
                foreach (var t in target.RSpan<long>())
                    if (t != ignore && (t < 0 || t >= C))
                        throw new ArgumentException($"{op}: target {t} is out of bounds for {C} classes (valid targets are 0..{C - 1}, or ignore_index {ignore})");
            }

            /// <summary>The per-sample losses (shape of the target) as one recorded op, and Σ valid·w_t.</summary>
            private static (Tensor loss, double totalWeight) CrossEntropyPerSample(Tensor x, Tensor target, Tensor? w, int classDim, long ignore, double eps)
            {
                int C = (int)x._shape[classDim];
                int N = classDim == 0 ? 1 : (int)x._shape[0];
                int D = C == 0 ? 0 : x._numel / Math.Max(1, N * C);
                var lossShape = target._shape;
                var loss = Tensor.Empty(lossShape, x._dtype);
                var lse = Tensor.Empty(lossShape, x._dtype);
                var sw = new double[target._numel];
                var tg = target.Arr<long>();
                if (x._dtype == ScalarType.Float32)
                    CrossEntropyKernels<float>.Forward(x.Arr<float>(), tg, w?.Arr<float>(), N, C, D, ignore, eps, loss.Arr<float>(), lse.Arr<float>(), sw);
                else
                    CrossEntropyKernels<double>.Forward(x.Arr<double>(), tg, w?.Arr<double>(), N, C, D, ignore, eps, loss.Arr<double>(), lse.Arr<double>(), sw);
                double total = 0;
                foreach (var v in sw) total += v;

                loss = Autograd.Record(loss, "cross_entropy", x, g =>
                {
                    if (!is_grad_enabled())
                    {
                        if (g._dtype != x._dtype) g = g.to_type(x._dtype);
                        var dx = Tensor.Empty(x._shape, x._dtype);
                        if (x._dtype == ScalarType.Float32)
                            CrossEntropyKernels<float>.Backward(g.Arr<float>(), x.Arr<float>(), tg, w?.Arr<float>(), lse.Arr<float>(), N, C, D, ignore, eps, dx.Arr<float>());
                        else
                            CrossEntropyKernels<double>.Backward(g.Arr<double>(), x.Arr<double>(), tg, w?.Arr<double>(), lse.Arr<double>(), N, C, D, ignore, eps, dx.Arr<double>());
                        return dx;
                    }
                    return CrossEntropyGradComposite(g, x, target, w, N, C, D, ignore, eps);
                });
                return (loss, total);
            }

            /// <summary>∂ℓ/∂x from differentiable ops (for create_graph): a·softmax(x) − (ε/C)·g·w − place((1 − ε)·g·w_t at t).</summary>
            private static Tensor CrossEntropyGradComposite(Tensor g, Tensor x, Tensor target, Tensor? w, int N, int C, int D, long ignore, double eps)
            {
                var x3 = x.reshape(N, C, D);
                var g3 = g.reshape(N, 1, D);
                var tg = target.RSpan<long>();
                var valid = Tensor.Empty([N, 1, D], x._dtype);
                var wt = Tensor.Empty([N, 1, D], x._dtype);
                var idx = Tensor.Empty([N, 1, D], ScalarType.Int64);
                double wSum = w is null ? C : w.sum().ToDouble();
                for (int p = 0; p < tg.Length; p++)
                {
                    bool ok = tg[p] != ignore;
                    double wv = !ok ? 0 : w is null ? 1 : w.GetDouble((int)tg[p]);
                    SetD(valid, p, ok ? 1 : 0); SetD(wt, p, wv);
                    idx.Arr<long>()[p] = ok ? tg[p] : 0;
                }
                var gv = g3.mul(valid);
                var dx = gv.mul(wt.mul(1 - eps).add(valid.mul(eps / C * wSum))).mul(x3.softmax(1));
                dx = dx.sub(Tensor.PlaceAlong(gv.mul(wt).mul(1 - eps), 1, idx, C));
                if (eps > 0)
                {
                    var wb = w is null ? ones([1, C, 1], x._dtype) : w.reshape(1, C, 1);
                    dx = dx.sub(gv.mul(wb).mul(eps / C));
                }
                return dx.reshape(x._shape);
            }

            private static void SetD(Tensor t, int i, double v)
            {
                if (t._dtype == ScalarType.Float32) t.Arr<float>()[i] = (float)v; else t.Arr<double>()[i] = v;
            }

            /// <summary>Probability targets: ℓ = −Σ_c w_c·t_c·log softmax(x)_c with t ← (1 − ε)t + ε/C; the mean divides by the number of samples.</summary>
            private static Tensor SoftTargetCrossEntropy(Tensor x, Tensor target, Tensor? w, int classDim, Reduction reduction, double eps)
            {
                long C = x._shape[classDim];
                var t = target._dtype == x._dtype ? target : target.to_type(x._dtype);
                if (eps > 0) t = t.mul(1 - eps).add(eps / C);
                var prod = x.log_softmax(classDim).mul(t);
                if (w is not null)
                {
                    var wshape = Enumerable.Repeat(1L, x.Rank).ToArray(); wshape[classDim] = C;
                    prod = prod.mul(w.reshape(wshape));
                }
                var loss = prod.sum(classDim).neg();
                return reduction switch
                {
                    Reduction.None => loss,
                    Reduction.Sum => loss.sum(),
                    _ => loss.sum().div(Math.Max(1, loss._numel)),
                };
            }

            /// <summary>
            /// Negative log-likelihood of class-index targets given log-probabilities <paramref name="input"/> (N, C, ...):
            /// ℓ = −w_t·input[t]; targets equal to −100 are ignored (PyTorch's default ignore_index); the mean
            /// divides by the summed weight of the non-ignored targets.   ∂ℓ/∂input = −w_t at the target, 0 elsewhere.
            /// </summary>
            public static Tensor nll_loss(Tensor input, Tensor target, Tensor? weight = null, Reduction reduction = Reduction.Mean)
            {
                const string op = "nll_loss";
                const long ignore = -100;
                if (!input.IsFloat) throw new ArgumentException($"{op}: expected floating-point log-probabilities, got {input.dtype}");
                if (input.Rank == 0) throw new ArgumentException($"{op}: the input must have a class dimension, got a 0-dim tensor");
                int classDim = input.Rank == 1 ? 0 : 1;
                long C = input._shape[classDim];
                var w = CheckWeight(op, weight, C, input.dtype);
                var expected = input._shape.Where((_, i) => i != classDim).ToArray();
                if (!Shapes.Equal(target._shape, expected))
                    throw new ArgumentException($"{op}: target shape {target.ShapeString} does not match input shape {input.ShapeString} (expected {Shapes.Str(expected)})");
                if (target.dtype != ScalarType.Int64)
                    throw new ArgumentException($"{op}: targets must have dtype Int64, got {target.dtype}");
                CheckTargets(op, target, C, ignore);
                var keptShape = input._shape.ToArray(); keptShape[classDim] = 1;
                var idx = Tensor.Empty(keptShape, ScalarType.Int64);
                var coef = Tensor.Empty(target._shape, input._dtype);        // −w_t, or 0 where ignored
                var tg = target.RSpan<long>();
                double total = 0;
                for (int p = 0; p < tg.Length; p++)
                {
                    bool ok = tg[p] != ignore;
                    double wv = !ok ? 0 : w is null ? 1 : w.GetDouble((int)tg[p]);
                    total += wv;
                    idx.Arr<long>()[p] = ok ? tg[p] : 0;
                    SetD(coef, p, -wv);
                }
                var picked = Tensor.PickAlong(input, classDim, idx).reshape(target._shape);
                var loss = picked.mul(coef);
                return reduction switch
                {
                    Reduction.None => loss,
                    Reduction.Sum => loss.sum(),
                    _ => loss.sum().div(total),
                };
            }

            // =====================================================================================
            // Elementwise losses, composed from differentiable ops (so every order of derivative works).
            // =====================================================================================

            private static void CheckSameShapeAndType(string op, Tensor input, Tensor target)
            {
                if (!Shapes.Equal(input._shape, target._shape))
                    throw new ArgumentException($"{op}: target shape {target.ShapeString} does not match input shape {input.ShapeString} " +
                        "(MinTorch does not broadcast loss targets: a silently broadcast target is a common bug)");
                if (input._dtype != target._dtype)
                    throw new ArgumentException($"{op}: target dtype {target.dtype} does not match input dtype {input.dtype}");
                if (!input.IsFloat) throw new ArgumentException($"{op}: expected floating-point tensors, got {input.dtype}");
            }

            private static Tensor Reduce(Tensor loss, Reduction reduction) => reduction switch
            {
                Reduction.None => loss,
                Reduction.Sum => loss.sum(),
                _ => loss.mean(),
            };

            /// <summary>Mean squared error: ℓ = (input − target)².   ∂ℓ/∂input = 2(input − target) = −∂ℓ/∂target.</summary>
            public static Tensor mse_loss(Tensor input, Tensor target, Reduction reduction = Reduction.Mean)
            {
                CheckSameShapeAndType("mse_loss", input, target);
                return Reduce(input.sub(target).square(), reduction);
            }

            /// <summary>
            /// Binary cross-entropy on logits: ℓ = −w·[p·t·log σ(x) + (1 − t)·log(1 − σ(x))], p = <paramref name="pos_weights"/>
            /// (broadcast over the last dim), computed stably as ℓ = w·[(1 − t)·x − (1 + (p − 1)·t)·log σ(x)],
            /// using log(1 − σ(x)) = log σ(x) − x.   ∂ℓ/∂x = w·[(1 + (p − 1)t)·σ(x) − p·t].
            /// </summary>
            public static Tensor binary_cross_entropy_with_logits(Tensor input, Tensor target, Tensor? weight = null,
                Reduction reduction = Reduction.Mean, Tensor? pos_weights = null)
            {
                CheckSameShapeAndType("binary_cross_entropy_with_logits", input, target);
                var logWeight = pos_weights is null ? null : pos_weights.sub(1).mul(target).add(1);
                var ls = input.log_sigmoid();
                var loss = target.rsub(1).mul(input).sub(logWeight is null ? ls : logWeight.mul(ls));
                if (weight is not null) loss = loss.mul(weight);
                return Reduce(loss, reduction);
            }

            /// <summary>
            /// Kullback–Leibler divergence KL(target ‖ input) pointwise, with <paramref name="input"/> given as
            /// log-probabilities. TorchSharp's default is <paramref name="log_target"/> = true (PyTorch's is false):
            /// then ℓ = e^t·(t − x); otherwise ℓ = t·(log t − x), with 0·log 0 = 0. Mean averages over all elements.
            /// </summary>
            public static Tensor kl_div(Tensor input, Tensor target, bool log_target = true, Reduction reduction = Reduction.Mean)
            {
                CheckSameShapeAndType("kl_div", input, target);
                Tensor loss;
                if (log_target) loss = target.exp().mul(target.sub(input));
                else
                {
                    var zero = target.eq(0).to_type(target._dtype);            // log of 1 where t = 0, so that 0·log 0 = 0
                    loss = target.mul(target.add(zero).log().sub(input));
                }
                return Reduce(loss, reduction);
            }
        }
    }
}
