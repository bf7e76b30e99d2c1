using TorchSharp;
using static TorchSharp.torch;

namespace TorchSharp.Tests;

public class CoreTests
{
    static Tensor In(params long[] shape) => GradCheck.Input(shape, seed: shape.Sum() + shape.Length);

    [Fact] public void Add_broadcast() => GradCheck.Check(x => x[0] + x[1], In(3, 4, 5), GradCheck.Input([4, 1], 7));
    [Fact] public void Sub_broadcast() => GradCheck.Check(x => x[0] - x[1], In(2, 1, 5), GradCheck.Input([3, 5], 8));
    [Fact] public void Mul_broadcast() => GradCheck.Check(x => x[0] * x[1], In(3, 4, 5), GradCheck.Input([5], 9));
    [Fact] public void Div_broadcast() => GradCheck.Check(x => x[0] / x[1], In(3, 4), GradCheck.Input([3, 1], 10, 0.3, 2.0));
    [Fact] public void Pow_tensor() => GradCheck.Check(x => x[0].pow(x[1]), GradCheck.Input([3, 4], 3, 0.2, 1.5), GradCheck.Input([4], 4, 0.5));
    [Fact] public void Pow_scalar() => GradCheck.Check(x => x[0].pow(3.0) + x[0].pow(2) + x[0].abs().add(0.5).pow(-1.5), In(3, 4));
    [Fact] public void Maximum_minimum() => GradCheck.Check(x => x[0].maximum(x[1]) + x[0].minimum(x[1]) * 2, In(4, 5), GradCheck.Input([5], 11));
    [Fact] public void Scalar_ops() => GradCheck.Check(x => (2.0 - x[0]) * 3 + 1.5 / (x[0].square() + 1) - x[0] / 4 + x[0] * 0.5, In(6));
    [Fact] public void Exp_log() => GradCheck.Check(x => x[0].exp() + x[0].abs().add(0.1).log() + x[0].abs().log1p(), In(3, 4));
    [Fact] public void Sqrt_rsqrt_reciprocal() => GradCheck.Check(x => x[0].sqrt() + x[0].rsqrt() + x[0].reciprocal(), GradCheck.Input([3, 4], 5, 0.2, 2.0));
    [Fact] public void Sigmoid_tanh_relu() => GradCheck.Check(x => x[0].sigmoid() + x[0].tanh() * 2 + x[0].relu() * 3, In(4, 5));
    [Fact] public void Neg_abs_sin_cos() => GradCheck.Check(x => -x[0] + x[0].abs() * 2 + x[0].sin() + x[0].cos(), In(4, 5));
    [Fact] public void Clamp() => GradCheck.Check(x => x[0].clamp(-0.5, 0.7) + x[0].clamp(min: 0.1) * 2 + x[0].clamp(max: -0.2) * 3, In(5, 6));
    [Fact] public void Sum_all_and_dims() => GradCheck.Check(x => x[0].sum() + x[0].sum(1).sum() * 2 + x[0].sum(new long[] { 0, 2 }, keepdim: true).sum() * 3, In(3, 4, 5));
    [Fact] public void Sum_dim_values() => GradCheck.Check(x => x[0].sum(1, keepdim: true) * x[0] + x[0].sum(-1).unsqueeze(-1), In(3, 4, 5));
    [Fact] public void Mean_dims() => GradCheck.Check(x => x[0].mean(new long[] { -1 }, keepdim: true) * x[0].mean(), In(3, 4, 5));
    [Fact] public void Reshape_expand() => GradCheck.Check(x => x[0].reshape(4, 3).expand(2, 4, 3) * x[1], In(3, 4), GradCheck.Input([2, 1, 3], 4));
    [Fact] public void To_type_roundtrip() => GradCheck.Check(x => x[0].to_type(ScalarType.Float32).to_type(ScalarType.Float64).mul(x[0]), GradCheck.Input([3], 2, 1e-3));

    [Fact]
    public void Second_order_through_elementwise_ops() =>
        GradCheck.CheckSecondOrder(x => (x[0] * x[1]).tanh().exp() / (x[1].square() + 1) + x[0].sigmoid().pow(3.0), In(3, 4), GradCheck.Input([4], 6));

    [Fact]
    public void Sum_matches_known_values()
    {
        var x = tensor(new float[] { 1, 2, 3, 4, 5, 6 }, new long[] { 2, 3 });
        Assert.Equal(21f, x.sum().item<float>());
        Assert.Equal(new float[] { 5, 7, 9 }, x.sum(0).data<float>().ToArray());
        Assert.Equal(new float[] { 6, 15 }, x.sum(1).data<float>().ToArray());
        Assert.Equal(new long[] { 2, 1 }, x.sum(1, keepdim: true).shape);
        Assert.Equal(3.5f, x.mean().item<float>());
    }

    [Fact]
    public void Broadcast_add_known_values()
    {
        var a = tensor(new float[] { 1, 2, 3 }, new long[] { 3, 1 });
        var b = tensor(new float[] { 10, 20 }, new long[] { 1, 2 });
        Assert.Equal(new float[] { 11, 21, 12, 22, 13, 23 }, (a + b).data<float>().ToArray());
        Assert.Equal(new long[] { 3, 2 }, (a + b).shape);
    }

    [Fact]
    public void Type_promotion_follows_pytorch()
    {
        var f = ones(2); var d = ones(2, dtype: ScalarType.Float64); var l = ones(2, dtype: ScalarType.Int64);
        Assert.Equal(ScalarType.Float64, (f + d).dtype);
        Assert.Equal(ScalarType.Float32, (f + l).dtype);
        Assert.Equal(ScalarType.Int64, (l * 2).dtype);
        Assert.Equal(ScalarType.Float32, (l * 0.5).dtype);
        Assert.Equal(ScalarType.Float32, (l / l).dtype);
        Assert.Equal(ScalarType.Float32, (f * tensor(2.0, ScalarType.Float64)).dtype);
        Assert.Equal(ScalarType.Bool, (f > 0).dtype);
    }

    [Fact]
    public void Broadcast_error_names_op_and_shapes()
    {
        var ex = Assert.Throws<ArgumentException>(() => ones(2, 3) + ones(4));
        Assert.Contains("add", ex.Message);
        Assert.Contains("[2, 3]", ex.Message);
        Assert.Contains("[4]", ex.Message);
    }

    [Fact]
    public void Backward_on_non_scalar_says_so()
    {
        var x = ones(new long[] { 2, 3 }, requires_grad: true);
        var ex = Assert.Throws<InvalidOperationException>(() => (x * 2).backward());
        Assert.Contains("scalar", ex.Message);
        Assert.Contains("[2, 3]", ex.Message);
    }

    [Fact]
    public void Backward_without_grad_says_so()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => ones(3).sum().backward());
        Assert.Contains("does not require grad", ex.Message);
    }

    [Fact]
    public void No_grad_records_nothing()
    {
        var x = ones(new long[] { 3 }, requires_grad: true);
        Tensor y;
        using (no_grad()) y = x * 2;
        Assert.False(y.requires_grad);
        Assert.True((x * 2).requires_grad);
    }

    [Fact]
    public void Gradients_accumulate_on_leaves()
    {
        var x = tensor(new double[] { 1, 2 }, requires_grad: true);
        (x * x).sum().backward();
        (x * 3).sum().backward();
        Assert.Equal(new double[] { 5, 7 }, x.grad!.data<double>().ToArray());
    }

    [Fact]
    public void Each_leaf_gets_its_own_grad_storage()
    {
        var a = tensor(new double[] { 1, 2 }, requires_grad: true);
        var b = tensor(new double[] { 3, 4 }, requires_grad: true);
        (a + b).sum().backward();
        using (no_grad()) a.grad!.mul_(10);
        Assert.Equal(new double[] { 1, 1 }, b.grad!.data<double>().ToArray());
    }

    [Fact]
    public void Autograd_grad_returns_without_accumulating()
    {
        var x = tensor(new double[] { 1, 2, 3 }, requires_grad: true);
        var y = (x * x * x).sum();
        var g = autograd.grad([y], [x], create_graph: true)[0];        // 3x²
        Assert.Equal(new double[] { 3, 12, 27 }, g.data<double>().ToArray());
        Assert.Null(x.grad);
        var h = autograd.grad([g.sum()], [x])[0];                       // 6x
        Assert.Equal(new double[] { 6, 12, 18 }, h.data<double>().ToArray());
    }

    [Fact]
    public void In_place_on_a_graph_tensor_is_refused()
    {
        var x = ones(new long[] { 3 }, requires_grad: true);
        var ex = Assert.Throws<InvalidOperationException>(() => x.add_(1));
        Assert.Contains("add_", ex.Message);
        using (no_grad()) x.add_(1);
        Assert.Equal(2f, x.data<float>()[0]);
    }

    [Fact]
    public void Same_seed_same_numbers()
    {
        var a = randn(new long[] { 1000 }, generator: new Generator(42)).data<float>().ToArray();
        var b = randn(new long[] { 1000 }, generator: new Generator(42)).data<float>().ToArray();
        Assert.Equal(a, b);
        manual_seed(3); var c = rand(100).data<float>().ToArray();
        manual_seed(3); var d = rand(100).data<float>().ToArray();
        Assert.Equal(c, d);
        Assert.InRange(randn(new long[] { 20000 }, generator: new Generator(1)).mean().item<float>(), -0.03f, 0.03f);
    }

    [Fact]
    public void Large_sum_is_identical_with_one_thread_or_all()
    {
        var x = randn(new long[] { 1_000_003 }, generator: new Generator(5));
        var y = randn(new long[] { 64, 512, 33 }, generator: new Generator(6));
        int saved = get_num_threads();
        try
        {
            set_num_threads(1);
            var s1 = x.sum().item<float>(); var d1 = y.sum(1).data<float>().ToArray(); var e1 = (y * 3 + y.exp()).data<float>().ToArray();
            set_num_threads(Environment.ProcessorCount * 2);
            var s2 = x.sum().item<float>(); var d2 = y.sum(1).data<float>().ToArray(); var e2 = (y * 3 + y.exp()).data<float>().ToArray();
            Assert.Equal(BitConverter.SingleToInt32Bits(s1), BitConverter.SingleToInt32Bits(s2));
            Assert.Equal(d1, d2);
            Assert.Equal(e1, e2);
        }
        finally { set_num_threads(saved); }
    }
}
