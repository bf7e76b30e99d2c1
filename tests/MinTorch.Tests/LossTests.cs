using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using Reduction = TorchSharp.torch.nn.Reduction;

namespace TorchSharp.Tests;

public class LossTests
{
    // The inputs of the PyTorch reference values below (torch 1.13, float64).
    static Tensor Logits(bool grad = false) => tensor(new double[] { 2.0, -1.0, 0.5, 0.1, 0.2, 0.3, 1.5, 1.0, -3.0, -0.5, 2.5, 0.0 }, new long[] { 4, 3 }, requires_grad: grad);
    static Tensor Targets => tensor(new long[] { 0, 2, -100, 1 });
    static Tensor ClassWeight => tensor(new double[] { 0.2, 0.5, 1.3 });
    static Tensor L3 => (arange(12, dtype: ScalarType.Float64).reshape(2, 3, 2).cos() * 2).detach();
    static Tensor T3 => tensor(new long[] { 0, 2, 1, -100 }, new long[] { 2, 2 });
    static Tensor Probs => tensor(new double[] { 1.0, 0.0, -1.0, 0.0, 0.5, 0.5, 2.0, 1.0, 0.0, 0.3, 0.3, 0.4 }, new long[] { 4, 3 }).softmax(-1);

    // ------------------------------------------------------------------ cross_entropy vs PyTorch

    [Fact]
    public void Cross_entropy_with_weight_ignore_index_and_label_smoothing_matches_pytorch()
    {
        var w = ClassWeight;
        // F.cross_entropy(logits, t, weight=w, ignore_index=-100, reduction=..., label_smoothing=0.1)
        NnAssert.Close([0.8044635686548852], F.cross_entropy(Logits(), Targets, w, -100, Reduction.Mean, 0.1), 1e-14, what: "mean");
        NnAssert.Close([1.6089271373097704], F.cross_entropy(Logits(), Targets, w, -100, Reduction.Sum, 0.1), 1e-14, what: "sum");
        NnAssert.Close([0.17452345317543208, 1.2420693223101653, 0.0, 0.19233436182417313], F.cross_entropy(Logits(), Targets, w, -100, Reduction.None, 0.1), 1e-14, what: "none");
        var x = Logits(true);
        F.cross_entropy(x, Targets, w, label_smoothing: 0.1).backward();
        NnAssert.Close([0.003556967599344023, -0.003509449296615214, -4.751830272880796e-05, 0.18254360597829142, 0.19709245433478645, -0.37963606031307773, 0.0, 0.0, 0.0, 0.008029840742114942, -0.005097880876308107, -0.0029319598658068334], x.grad!, 1e-12, 1e-17, "grad");
    }

    [Fact]
    public void Cross_entropy_plain_and_other_shapes_match_pytorch()
    {
        NnAssert.Close([0.4557090344185895], F.cross_entropy(Logits(), Targets), 1e-14, what: "plain mean");
        NnAssert.Close([0.24131129665715703, 1.001942848229244, 0.0, 0.12387295836936733], F.cross_entropy(Logits(), Targets, reduction: Reduction.None), 1e-14, what: "plain none");
        NnAssert.Close([0.6216270724432006], F.cross_entropy(Logits(), tensor(new long[] { 0, 2, 1, 1 }), ignore_index: 1), 1e-14, what: "ignore_index=1");
        // (N, C, d) input: F.cross_entropy(l3, t3, weight=w, label_smoothing=0.2) and reduction='none'
        NnAssert.Close([1.505478729793708], F.cross_entropy(L3, T3, ClassWeight, label_smoothing: 0.2), 1e-14, what: "N-d mean");
        NnAssert.Close([0.09120450885796816, 1.0112571283594323, 2.3396624939378925, 0.0], F.cross_entropy(L3, T3, reduction: Reduction.None), 1e-14, what: "N-d none");
        Assert.Equal(new long[] { 2, 2 }, F.cross_entropy(L3, T3, reduction: Reduction.None).shape);
        // one sample: F.cross_entropy(logits[0], tensor(2))
        var one = F.cross_entropy(tensor(new double[] { 2.0, -1.0, 0.5 }), tensor(2L));
        NnAssert.Close([1.7413112966571571], one, 1e-14, what: "1-D");
        Assert.Empty(one.shape);
    }

    [Fact]
    public void Cross_entropy_with_probability_targets_matches_pytorch()
    {
        // F.cross_entropy(logits, probs) and F.cross_entropy(logits, probs, weight=w, label_smoothing=0.3, reduction='none')
        NnAssert.Close([1.296411456822479], F.cross_entropy(Logits(), Probs), 1e-14, what: "soft mean");
        NnAssert.Close([0.8360327278810724, 0.7463130481545392, 1.24309262180174, 1.4144024818773675], F.cross_entropy(Logits(), Probs, ClassWeight, reduction: Reduction.None, label_smoothing: 0.3), 1e-14, what: "soft none");
    }

    [Fact]
    public void Cross_entropy_in_float32_matches_float64()
    {
        var x = randn(new long[] { 50, 17 }, generator: new Generator(5)) * 3;
        var t = randint(17, new long[] { 50 }, generator: new Generator(6));
        var e = F.cross_entropy(x.to_type(ScalarType.Float64), t, label_smoothing: 0.05).ToDouble();
        Assert.Equal(e, F.cross_entropy(x, t, label_smoothing: 0.05).ToDouble(), 5);
    }

    [Fact]
    public void All_targets_ignored_gives_nan_mean_and_zero_gradient()
    {
        var x = Logits(true);
        var loss = F.cross_entropy(x, tensor(new long[] { -100, -100, -100, -100 }));
        Assert.True(double.IsNaN(loss.ToDouble()));
        F.cross_entropy(x, tensor(new long[] { -100, -100, -100, -100 }), reduction: Reduction.Sum).backward();
        Assert.All(x.grad!.data<double>().ToArray(), v => Assert.Equal(0.0, v));
    }

    // ------------------------------------------------------------------ cross_entropy gradients

    static Tensor In(long[] shape, long seed) => GradCheck.Input(shape, seed, 1.5);

    [Fact] public void Cross_entropy_gradcheck_plain() => GradCheck.Check(x => F.cross_entropy(x[0], tensor(new long[] { 3, 0, 4, 1, 1 })), In([5, 6], 1));
    [Fact] public void Cross_entropy_gradcheck_weight_ignore_smoothing_none() => GradCheck.Check(x => F.cross_entropy(x[0], Targets, ClassWeight, -100, Reduction.None, 0.25), In([4, 3], 2));
    [Fact] public void Cross_entropy_gradcheck_weight_smoothing_sum() => GradCheck.Check(x => F.cross_entropy(x[0], Targets, ClassWeight, -100, Reduction.Sum, 0.4), In([4, 3], 3));
    [Fact] public void Cross_entropy_gradcheck_n_dimensional() => GradCheck.Check(x => F.cross_entropy(x[0], T3, ClassWeight, label_smoothing: 0.1), In([2, 3, 2], 4));
    [Fact] public void Cross_entropy_gradcheck_probability_targets() => GradCheck.Check(x => F.cross_entropy(x[0], Probs, ClassWeight, label_smoothing: 0.2), In([4, 3], 5));

    [Fact] public void Cross_entropy_second_order_plain() => GradCheck.CheckSecondOrder(x => F.cross_entropy(x[0], tensor(new long[] { 3, 0, 4, 1, 1 })), In([5, 6], 6));
    [Fact] public void Cross_entropy_second_order_weight_ignore_smoothing() => GradCheck.CheckSecondOrder(x => F.cross_entropy(x[0] * x[1], Targets, ClassWeight, -100, Reduction.None, 0.3), In([4, 3], 7), In([3], 8));
    [Fact] public void Cross_entropy_second_order_n_dimensional() => GradCheck.CheckSecondOrder(x => F.cross_entropy(x[0], T3, ClassWeight, label_smoothing: 0.1), In([2, 3, 2], 9));

    [Fact]
    public void Cross_entropy_fused_backward_equals_the_differentiable_formula()
    {
        var x = In([6, 300], 10);
        var t = tensor(new long[] { 5, 299, -100, 0, 17, 150 });
        var w = GradCheck.Input([300], 11, 0.3, 1.0).detach();
        foreach (var eps in new[] { 0.0, 0.15 })
        {
            var g = randn(new long[] { 6 }, dtype: ScalarType.Float64, generator: new Generator(12));
            Tensor L() => F.cross_entropy(x, t, w, -100, Reduction.None, eps);
            var fused = autograd.grad([L()], [x], [g])[0];
            var composite = autograd.grad([L()], [x], [g], create_graph: true)[0];
            NnAssert.Close(composite.data<double>().ToArray(), fused, 1e-12, 1e-16, $"ε = {eps}");
        }
    }

    [Fact]
    public void Cross_entropy_is_identical_for_any_thread_count()
    {
        var x = randn(new long[] { 2048, 257 }, generator: new Generator(13)) * 2;
        var t = randint(257, new long[] { 2048 }, generator: new Generator(14));
        NnAssert.SameBitsForAnyThreadCount(() =>
        {
            var xr = x.detach().requires_grad_();
            var loss = F.cross_entropy(xr, t, label_smoothing: 0.1);
            return [loss, autograd.grad([loss], [xr])[0]];
        });
    }

    // ------------------------------------------------------------------ nll, mse, BCE with logits, KL

    static Tensor Xi => tensor(new double[] { 0.5, -1.0, 2.0, 3.0, 0.0, -0.5 }, new long[] { 2, 3 });
    static Tensor Ti => tensor(new double[] { 1.0, 0.0, 1.0, 0.0, 0.5, 1.0 }, new long[] { 2, 3 });

    [Fact]
    public void Other_losses_match_pytorch()
    {
        // F.nll_loss(log_softmax(logits), t, weight=w)
        NnAssert.Close([0.7063622206070662], F.nll_loss(Logits().log_softmax(-1), Targets, ClassWeight), 1e-14, what: "nll");
        // F.binary_cross_entropy_with_logits(xi, ti, reduction='none') and with weight=[[1],[0.5]], pos_weight=[2, 0.5, 1]
        NnAssert.Close([0.4740769841801067, 0.31326168751822286, 0.1269280110429726, 3.048587351573742, 0.6931471805599453, 0.9740769841801067], F.binary_cross_entropy_with_logits(Xi, Ti, reduction: Reduction.None), 1e-14, what: "bce");
        NnAssert.Close([0.6099343379180521], F.binary_cross_entropy_with_logits(Xi, Ti, tensor(new double[] { 1.0, 0.5 }, new long[] { 2, 1 }), pos_weights: tensor(new double[] { 2.0, 0.5, 1.0 })), 1e-14, what: "bce weighted");
        NnAssert.Close([2.2916666666666665], F.mse_loss(Xi, Ti), 1e-15, what: "mse mean");
        NnAssert.Close([13.75], F.mse_loss(Xi, Ti, Reduction.Sum), 1e-15, what: "mse sum");
        // F.kl_div(log_softmax(xi), log_softmax(ti), reduction='mean', log_target=True)
        NnAssert.Close([0.34575730510591485], F.kl_div(Xi.log_softmax(-1), Ti.log_softmax(-1)), 1e-14, what: "kl log_target");
        // F.kl_div(log_softmax(xi), q, reduction='none', log_target=False), q = [[0.5, 0, 0.5], [0.2, 0.3, 0.5]]
        var q = tensor(new double[] { 0.5, 0.0, 0.5, 0.2, 0.3, 0.5 }, new long[] { 2, 3 });
        NnAssert.Close([0.5240820580486059, 0.0, -0.22591794195139414, -0.30649825357843485, 0.5618921520647969, 1.4418997319909903], F.kl_div(Xi.log_softmax(-1), q, log_target: false, reduction: Reduction.None), 1e-14, what: "kl prob");
    }

    [Fact] public void Nll_gradcheck() => GradCheck.Check(x => F.nll_loss(x[0], Targets, ClassWeight), In([4, 3], 20));
    [Fact] public void Mse_gradcheck() => GradCheck.Check(x => F.mse_loss(x[0], x[1]) + F.mse_loss(x[0], x[1], Reduction.None).sum(), In([3, 4], 21), In([3, 4], 22));
    [Fact] public void Mse_second_order() => GradCheck.CheckSecondOrder(x => F.mse_loss(x[0].tanh(), x[1]), In([3, 4], 23), In([3, 4], 24));
    [Fact] public void Bce_with_logits_gradcheck() => GradCheck.Check(x => F.binary_cross_entropy_with_logits(x[0], x[1].sigmoid(), tensor(new double[] { 1.0, 0.5 }, new long[] { 2, 1 }), pos_weights: tensor(new double[] { 2.0, 0.5, 1.0 })), In([2, 3], 25), In([2, 3], 26));
    [Fact] public void Bce_with_logits_second_order() => GradCheck.CheckSecondOrder(x => F.binary_cross_entropy_with_logits(x[0], Ti, reduction: Reduction.Sum), In([2, 3], 27));
    [Fact] public void Kl_div_gradcheck() => GradCheck.Check(x => F.kl_div(x[0].log_softmax(-1), x[1].log_softmax(-1)) + F.kl_div(x[0].log_softmax(-1), x[1].softmax(-1), log_target: false, reduction: Reduction.Sum), In([3, 4], 28), In([3, 4], 29));

    [Fact]
    public void Bce_with_logits_is_stable_for_huge_logits()
    {
        var l = F.binary_cross_entropy_with_logits(tensor(new float[] { 1000, -1000 }), tensor(new float[] { 0, 1 }), reduction: Reduction.None);
        Assert.Equal(new float[] { 1000, 1000 }, l.data<float>().ToArray());
    }

    // ------------------------------------------------------------------ errors

    [Fact]
    public void Target_shape_mismatch_names_op_and_both_shapes()
    {
        var ex = Assert.Throws<ArgumentException>(() => F.cross_entropy(ones(4, 3), tensor(new long[] { 0, 1, 2 })));
        Assert.Contains("cross_entropy", ex.Message);
        Assert.Contains("[3]", ex.Message);
        Assert.Contains("[4, 3]", ex.Message);
        var ex2 = Assert.Throws<ArgumentException>(() => F.mse_loss(ones(4, 1), ones(4)));
        Assert.Contains("mse_loss", ex2.Message);
        Assert.Contains("[4, 1]", ex2.Message);
        Assert.Contains("[4]", ex2.Message);
    }

    [Fact]
    public void Target_dtype_mismatch_names_both_dtypes()
    {
        var ex = Assert.Throws<ArgumentException>(() => F.cross_entropy(ones(4, 3), ones(4)));
        Assert.Contains("Int64", ex.Message);
        Assert.Contains("Float32", ex.Message);
        var ex2 = Assert.Throws<ArgumentException>(() => F.mse_loss(ones(3), ones(3, dtype: ScalarType.Float64)));
        Assert.Contains("Float32", ex2.Message);
        Assert.Contains("Float64", ex2.Message);
    }

    [Fact]
    public void Target_out_of_range_names_the_value_and_the_class_count()
    {
        var ex = Assert.Throws<ArgumentException>(() => F.cross_entropy(ones(2, 5), tensor(new long[] { 1, 7 })));
        Assert.Contains("7", ex.Message);
        Assert.Contains("5 classes", ex.Message);
        Assert.Throws<ArgumentException>(() => F.cross_entropy(ones(2, 5), tensor(new long[] { -1, 0 })));
        var ex2 = Assert.Throws<ArgumentException>(() => F.cross_entropy(ones(2, 5), tensor(new long[] { 0, 1 }), ones(4)));
        Assert.Contains("weight", ex2.Message);
    }
}
