using TorchSharp;
using static TorchSharp.torch;

namespace TorchSharp.Tests;

public class StatsTests
{
    static Tensor S => tensor(new double[] { 1, 2, 3, 4, 2, 4, 6, 9 }, new long[] { 2, 4 });

    // ------------------------------------------------------------------ max / min / argmax / argmin

    [Fact]
    public void Max_min_values_and_indexes()
    {
        var x = tensor(new float[] { 1, 3, 3, 5, 2, 5 }, new long[] { 2, 3 });
        Assert.Equal(5f, x.max().item<float>());
        Assert.Equal(1f, x.min().item<float>());
        var (v, i) = x.max(1);
        Assert.Equal(new float[] { 3, 5 }, v.data<float>().ToArray());
        Assert.Equal(new long[] { 1, 0 }, i.data<long>().ToArray());       // the first maximum, as PyTorch
        var (v0, i0) = x.min(0, keepdim: true);
        Assert.Equal(new long[] { 1, 3 }, v0.shape);
        Assert.Equal(new float[] { 1, 2, 3 }, v0.data<float>().ToArray());
        Assert.Equal(new long[] { 0, 1, 0 }, i0.data<long>().ToArray());
        Assert.Equal(3L, x.argmax().item<long>());
        Assert.Equal(0L, x.argmin().item<long>());
        Assert.Equal(new long[] { 1, 0 }, x.argmax(1).data<long>().ToArray());
        Assert.Equal(new long[] { 2, 1 }, x.argmax(-1, keepdim: true).shape);
        Assert.Equal(new long[] { 0, 1 }, x.argmin(1).data<long>().ToArray());
        Assert.Equal(ScalarType.Int64, x.argmax(0).dtype);
        var (tv, ti) = torch.max(x, 0);
        Assert.Equal(new float[] { 5, 3, 5 }, tv.data<float>().ToArray());
        Assert.Equal(new long[] { 1, 0, 1 }, ti.data<long>().ToArray());
        Assert.Equal(7L, tensor(new long[] { 3, 7, -2 }).max().item<long>());
        Assert.Equal(new long[] { 1 }, tensor(new long[] { 3, 7, -2 }, new long[] { 1, 3 }).argmax(1).data<long>().ToArray());
    }

    [Fact]
    public void Nan_propagates_through_max_and_min()
    {
        // PyTorch: tensor([1, nan, 3]).max() is nan; max(dim) returns nan at index 1
        var x = tensor(new float[] { 1, float.NaN, 3 });
        Assert.True(float.IsNaN(x.max().item<float>()));
        Assert.True(float.IsNaN(x.min().item<float>()));
        var (v, i) = x.reshape(1, 3).max(1);
        Assert.True(float.IsNaN(v.data<float>()[0]));
        Assert.Equal(1L, i.data<long>()[0]);
    }

    [Fact]
    public void Full_max_shares_the_gradient_among_ties_as_pytorch()
    {
        // torch.autograd.grad(x.max(), x) with x = [1, 3, 3, 2] gives [0, 0.5, 0.5, 0]
        var x = tensor(new double[] { 1, 3, 3, 2 }, requires_grad: true);
        x.max().backward();
        Assert.Equal(new double[] { 0, 0.5, 0.5, 0 }, x.grad!.data<double>().ToArray());
        // max(dim) sends it to the first maximum only: [[1, 3, 3], [5, 2, 5]].max(1) → grad [[0, 1, 0], [1, 0, 0]]
        var y = tensor(new double[] { 1, 3, 3, 5, 2, 5 }, new long[] { 2, 3 }, requires_grad: true);
        y.max(1).values.sum().backward();
        Assert.Equal(new double[] { 0, 1, 0, 1, 0, 0 }, y.grad!.data<double>().ToArray());
    }

    static Tensor In(params long[] shape) => GradCheck.Input(shape, seed: shape.Sum() * 3 + 1);

    [Fact] public void Max_min_full_gradcheck() => GradCheck.Check(x => x[0].max() * 2 + x[0].min(), In(3, 4));

    [Theory, InlineData(0, false), InlineData(1, true), InlineData(1, false), InlineData(-1, true), InlineData(-1, false)]
    public void Max_dim_gradcheck(int dim, bool keepdim) => GradCheck.Check(x => x[0].max(dim, keepdim).values, In(3, 4, 5));

    [Theory, InlineData(0), InlineData(1), InlineData(2)]
    public void Min_dim_gradcheck(int dim) => GradCheck.Check(x => x[0].min(dim).values, In(3, 4, 5));

    [Fact] public void Max_dim_second_order() => GradCheck.CheckSecondOrder(x => x[0].max(1).values.square(), In(3, 4));

    [Fact]
    public void Max_dim_is_identical_for_any_thread_count()
    {
        var x = randn(new long[] { 300, 257 }, generator: new Generator(3));
        NnAssert.SameBitsForAnyThreadCount(() => [x.max(1).values, x.max(0).indexes, x.argmin(1), x.max(), x.reshape(-1).max()]);
    }

    // ------------------------------------------------------------------ var / std

    [Fact]
    public void Std_and_var_match_pytorch()
    {
        // s.std(), s.std(1), s.var(0, unbiased=False), s.std((0, 1), keepdim=True), float64
        NnAssert.Close([2.5877458475338284], S.std(), 1e-15, what: "std()");
        NnAssert.Close([1.2909944487358056, 2.9860788111948193], S.std(1), 1e-15, what: "std(1)");
        NnAssert.Close([0.25, 1.0, 2.25, 6.25], S.var(0, unbiased: false), 1e-15, what: "var(0, biased)");
        var k = S.std(new long[] { 0, 1 }, keepdim: true);
        NnAssert.Close([2.5877458475338284], k, 1e-15, what: "std((0,1), keepdim)");
        Assert.Equal(new long[] { 1, 1 }, k.shape);
        NnAssert.Close([Math.Pow(2.5877458475338284, 2)], torch.var(S), 1e-14, what: "torch.var");
        Assert.Equal(new long[] { 2, 1 }, S.var(-1, keepdim: true).shape);
        Assert.True(double.IsNaN(tensor(new double[] { 3.0 }).std().ToDouble()));       // one sample, Bessel: 0/0
    }

    [Fact] public void Var_all_gradcheck() => GradCheck.Check(x => x[0].var() + x[0].std(unbiased: false), In(3, 4));

    [Theory, InlineData(0, true, false), InlineData(1, false, true), InlineData(-1, true, true), InlineData(-1, false, false)]
    public void Var_std_dim_gradcheck(int dim, bool unbiased, bool keepdim) =>
        GradCheck.Check(x => x[0].var(dim, unbiased, keepdim) + x[0].std(dim, unbiased, keepdim), In(3, 4, 5));

    [Fact] public void Std_multi_dim_gradcheck() => GradCheck.Check(x => x[0].std(new long[] { 0, 2 }, keepdim: true), In(3, 4, 5));
    [Fact] public void Std_second_order() => GradCheck.CheckSecondOrder(x => x[0].std(1), In(3, 5));

    [Fact]
    public void Var_of_an_integer_tensor_is_refused()
    {
        var ex = Assert.Throws<ArgumentException>(() => tensor(new long[] { 1, 2 }).var());
        Assert.Contains("var", ex.Message);
        Assert.Contains("Int64", ex.Message);
    }

    // ------------------------------------------------------------------ cumsum

    [Fact]
    public void Cumsum_values()
    {
        // torch.tensor([[1., 2.], [3., 4.], [5., 6.]]).cumsum(0)
        var x = tensor(new float[] { 1, 2, 3, 4, 5, 6 }, new long[] { 3, 2 });
        Assert.Equal(new float[] { 1, 2, 4, 6, 9, 12 }, x.cumsum(0).data<float>().ToArray());
        Assert.Equal(new float[] { 1, 3, 3, 7, 5, 11 }, x.cumsum(-1).data<float>().ToArray());
        Assert.Equal(new long[] { 1, 3, 6 }, tensor(new long[] { 1, 2, 3 }).cumsum(0).data<long>().ToArray());
        var b = tensor(new bool[] { true, false, true }).cumsum(0);
        Assert.Equal(ScalarType.Int64, b.dtype);
        Assert.Equal(new long[] { 1, 1, 2 }, b.data<long>().ToArray());
        Assert.Equal(ScalarType.Float64, x.cumsum(1, ScalarType.Float64).dtype);
    }

    [Theory, InlineData(0), InlineData(1), InlineData(-1)]
    public void Cumsum_gradcheck(int dim) => GradCheck.Check(x => x[0].cumsum(dim), In(3, 4, 5));

    [Fact] public void Cumsum_second_order() => GradCheck.CheckSecondOrder(x => x[0].cumsum(1).square(), In(3, 4));

    [Fact]
    public void Reducing_an_empty_tensor_is_refused()
    {
        var ex = Assert.Throws<ArgumentException>(() => zeros(0).max());
        Assert.Contains("max", ex.Message);
        Assert.Contains("[0]", ex.Message);
    }
}
