using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TorchSharp.Tests;

public class NormTests
{
    static Tensor X(bool grad = false) => tensor(new double[] { 0.5, -1.0, 2.0, 3.5, 1.0, 1.0, 1.5, -2.0 }, new long[] { 2, 4 }, requires_grad: grad);
    static Tensor W(bool grad = false) => tensor(new double[] { 1.5, -0.5, 2.0, 1.0 }, requires_grad: grad);
    static Tensor B(bool grad = false) => tensor(new double[] { 0.1, 0.2, -0.3, 0.0 }, requires_grad: grad);

    [Fact]
    public void Forward_and_gradients_match_pytorch()
    {
        // F.layer_norm(x, (4,), w, b, 1e-5) and torch.autograd.grad((y * r).sum(), [x, w, b]), float64, torch 1.13
        var x = X(true); var w = W(true); var b = B(true);
        var r = tensor(new double[] { 1.0, -2.0, 0.5, 3.0, 0.25, 1.0, -1.0, 2.0 }, new long[] { 2, 4 });
        var y = F.layer_norm(x, [4], w, b);
        NnAssert.Close([-0.5708192006835291, 0.8708192006835291, 0.594425600911372, 1.3416384013670581, 0.7762504666520551, -0.02541682221735167, 1.323001119964932, -1.713167848851873], y, 1e-14, what: "y");
        var grads = autograd.grad([(y * r).sum()], [x, w, b]);
        NnAssert.Close([0.08944197706022594, 0.11925499769544912, -0.5366547775159118, 0.327957802760237, 0.7081365401967075, 0.07696943798812281, -0.672955571603845, -0.11215040658098527], grads[0], 1e-12, what: "dx");
        NnAssert.Close([-0.3345043893470102, 3.1341104471688195, -0.587894159754623, 0.5985795063974284], grads[1], 1e-13, what: "dw");
        NnAssert.Close([1.25, -1.0, -0.5, 5.0], grads[2], 1e-15, what: "db");
    }

    [Fact]
    public void Without_affine_and_over_two_dims_match_pytorch()
    {
        // F.layer_norm(x, (4,)) and F.layer_norm(x, (2, 4)), float64
        NnAssert.Close([-0.44721280045568607, -1.3416384013670581, 0.447212800455686, 1.3416384013670581, 0.45083364443470336, 0.45083364443470336, 0.8115005599824661, -1.713167848851873], F.layer_norm(X(), [4]), 1e-14, what: "no affine");
        NnAssert.Close([-0.19536578450799608, -1.1331215501463774, 0.7423899811303851, 1.6801457467687664, 0.11721947070479766, 0.11721947070479766, 0.4298047259175914, -1.7582920605719647], F.layer_norm(X(), [2, 4]), 1e-14, what: "(2, 4)");
    }

    [Fact]
    public void Float32_keeps_accuracy_with_a_large_mean()
    {
        // Rows of 1000 + N(0, 1): the variance is 10⁶ times smaller than the mean², which float32 sums of x² would lose.
        var x64 = randn(new long[] { 16, 256 }, dtype: ScalarType.Float64, generator: new Generator(3)) + 1000;
        var x32 = x64.to_type(ScalarType.Float32);
        var exact = F.layer_norm(x32.to_type(ScalarType.Float64), [256]).data<double>().ToArray();
        // x·rstd − μ·rstd is what PyTorch computes too; each product ≈ 1000·rstd carries a float rounding of ~1e-4
        NnAssert.Close(exact, F.layer_norm(x32, [256]), 0, 3e-4, "float32 vs float64");
        var centered = x32 - 1000f;
        NnAssert.Close(F.layer_norm(centered.to_type(ScalarType.Float64), [256]).data<double>().ToArray(), F.layer_norm(centered, [256]), 0, 2e-6, "centred");
    }

    // ------------------------------------------------------------------ gradchecks (fused backward: create_graph is false)

    [Fact] public void Gradcheck_weight_and_bias() => GradCheck.Check(x => F.layer_norm(x[0], [5], x[1], x[2]), GradCheck.Input([3, 5], 1), GradCheck.Input([5], 2), GradCheck.Input([5], 3));
    [Fact] public void Gradcheck_two_normalized_dims() => GradCheck.Check(x => F.layer_norm(x[0], [3, 4], x[1], x[2], eps: 1e-3), GradCheck.Input([2, 3, 4], 4), GradCheck.Input([3, 4], 5), GradCheck.Input([3, 4], 6));
    [Fact] public void Gradcheck_no_affine() => GradCheck.Check(x => F.layer_norm(x[0], [4]), GradCheck.Input([2, 3, 4], 7, 3.0, 1.0));
    [Fact] public void Gradcheck_weight_only() => GradCheck.Check(x => F.layer_norm(x[0], [6], x[1]), GradCheck.Input([4, 6], 8), GradCheck.Input([6], 9));
    [Fact] public void Gradcheck_bias_only_and_constant_weight() => GradCheck.Check(x => F.layer_norm(x[0], [6], W6, x[1]), GradCheck.Input([4, 6], 10), GradCheck.Input([6], 11));
    static Tensor W6 => tensor(new double[] { 1, 2, -1, 0.5, 3, 1 });

    // ------------------------------------------------------------------ second order (the composite backward)

    [Fact]
    public void Second_order_with_weight_and_bias() =>
        GradCheck.CheckSecondOrder(x => F.layer_norm(x[0], [5], x[1], x[2]).tanh(), GradCheck.Input([3, 5], 12), GradCheck.Input([5], 13), GradCheck.Input([5], 14));

    [Fact]
    public void Second_order_without_affine() => GradCheck.CheckSecondOrder(x => F.layer_norm(x[0], [2, 3]).square(), GradCheck.Input([2, 2, 3], 15));

    [Fact]
    public void Fused_backward_equals_the_differentiable_formula()
    {
        var x = GradCheck.Input([7, 37], 16, 2.0, 0.5);
        var w = GradCheck.Input([37], 17);
        var b = GradCheck.Input([37], 18);
        var g = randn(new long[] { 7, 37 }, dtype: ScalarType.Float64, generator: new Generator(19));
        var fused = autograd.grad([F.layer_norm(x, [37], w, b)], [x, w, b], [g]);
        var composite = autograd.grad([F.layer_norm(x, [37], w, b)], [x, w, b], [g], create_graph: true);
        for (int i = 0; i < 3; i++) NnAssert.Close(composite[i].data<double>().ToArray(), fused[i], 1e-12, 1e-14, $"input {i}");
    }

    [Fact]
    public void Forward_and_backward_are_identical_for_any_thread_count()
    {
        var x = randn(new long[] { 64, 129, 256 }, generator: new Generator(20)) * 2 + 0.5f;
        var w = randn(new long[] { 256 }, generator: new Generator(21));
        var b = randn(new long[] { 256 }, generator: new Generator(22));
        var g = randn(new long[] { 64, 129, 256 }, generator: new Generator(23));
        NnAssert.SameBitsForAnyThreadCount(() =>
        {
            var xr = x.detach().requires_grad_(); var wr = w.detach().requires_grad_(); var br = b.detach().requires_grad_();
            var y = F.layer_norm(xr, [256], wr, br);
            var grads = autograd.grad([y], [xr, wr, br], [g]);
            return [y, grads[0], grads[1], grads[2]];
        });
    }

    [Fact]
    public void Gradients_accumulate_into_parameters()
    {
        var x = X(true); var w = W(true); var b = B(true);
        F.layer_norm(x, [4], w, b).sum().backward();
        Assert.NotNull(x.grad); Assert.NotNull(w.grad); Assert.NotNull(b.grad);
        NnAssert.Close([2, 2, 2, 2], b.grad!, 0);
    }

    // ------------------------------------------------------------------ errors

    [Fact]
    public void Shape_and_dtype_errors_name_the_problem()
    {
        var ex = Assert.Throws<ArgumentException>(() => F.layer_norm(ones(2, 5), [4]));
        Assert.Contains("layer_norm", ex.Message);
        Assert.Contains("[4]", ex.Message);
        Assert.Contains("[2, 5]", ex.Message);
        var ex2 = Assert.Throws<ArgumentException>(() => F.layer_norm(ones(2, 4), [4], ones(3)));
        Assert.Contains("weight", ex2.Message);
        Assert.Contains("[3]", ex2.Message);
        var ex3 = Assert.Throws<ArgumentException>(() => F.layer_norm(ones(2, 4), [4], ones(4, dtype: ScalarType.Float64)));
        Assert.Contains("Float64", ex3.Message);
        Assert.Contains("Float32", ex3.Message);
    }
}
