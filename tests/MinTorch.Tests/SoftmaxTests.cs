using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TorchSharp.Tests;

public class SoftmaxTests
{
    static Tensor A => tensor(new float[] { 1, 2, 3, -1, 0, 5 }, new long[] { 2, 3 });
    /// <summary>sin(arange(24)).reshape(2, 3, 4) * 3, float64 (the input of the PyTorch reference below).</summary>
    static Tensor B3 => (arange(24, dtype: ScalarType.Float64).reshape(2, 3, 4).sin() * 3).detach();

    // ------------------------------------------------------------------ known values (torch 1.13)

    [Fact]
    public void Softmax_log_softmax_logsumexp_match_pytorch_float32()
    {
        NnAssert.Close([0.09003057330846786, 0.2447284758090973, 0.6652409434318542, 0.0024561150930821896, 0.006676412653177977, 0.9908674955368042], A.softmax(-1), 1e-6, what: "softmax(-1)");
        NnAssert.Close([0.8807970285415649, 0.8807970285415649, 0.11920291930437088, 0.11920291930437088, 0.11920291930437088, 0.8807970285415649], A.softmax(0), 1e-6, what: "softmax(0)");
        NnAssert.Close([-2.4076058864593506, -1.4076058864593506, -0.40760594606399536, -6.009174346923828, -5.009174346923828, -0.009174452163279057], A.log_softmax(-1), 1e-6, what: "log_softmax(-1)");
        NnAssert.Close([-0.12692804634571075, -0.12692804634571075, -2.1269280910491943, -2.1269280910491943, -2.1269280910491943, -0.12692804634571075], A.log_softmax(0), 1e-6, what: "log_softmax(0)");
        NnAssert.Close([3.4076058864593506, 5.009174346923828], A.logsumexp(-1), 1e-6, what: "logsumexp(-1)");
        NnAssert.Close([1.1269280910491943, 2.1269280910491943, 5.126927852630615], A.logsumexp(0), 1e-6, what: "logsumexp(0)");
    }

    [Fact]
    public void Middle_dim_matches_pytorch_float64()
    {
        double[] sm = [0.048643576845786816, 0.7810564169523228, 0.9605744375507002, 0.1744354761122953, 0.005023426578244722, 0.0035235239311557304, 0.027150425077393583, 0.8198772884597594, 0.9463329965759684, 0.21542005911652162, 0.012275137371906353, 0.00568723542794531, 0.012426201305391757, 0.22200873746494748, 0.9476431771158155, 0.8103192962322904, 0.02620148414330516, 0.003518459152228708, 0.005099763818466795, 0.18058407727344217, 0.961372314551303, 0.7744728033828238, 0.047257059065717845, 0.00909662649426757];
        double[] lsm = [-3.023235506902396, -0.2471078949366503, -0.04022380102501912, -1.7462003701188216, -5.293642992826181, -5.648293673349755, -3.606362576098842, -0.19860059814205594, -0.05516076703225078, -1.5351653936350698, -4.400179414170173, -5.169531013950533, -4.387948027134521, -1.5050385399341475, -0.05377724302911385, -0.2103269161098833, -3.6419392231284125, -5.64973212605274, -5.278561050428753, -1.7115588075923767, -0.0393935209503335, -0.25557273480590176, -3.0521532379849368, -4.699851649106746];
        double[] lse = [3.023235506902396, 2.7715208493603396, 2.7681160815020642, 2.169560394298423, 2.7782292731332165, 2.76553965041407, 3.025599310113725, 2.1611904365812338];
        NnAssert.Close(sm, B3.softmax(1), 1e-14, what: "softmax(1)");
        NnAssert.Close(lsm, B3.log_softmax(1), 1e-14, what: "log_softmax(1)");
        NnAssert.Close(lse, B3.logsumexp(1), 1e-14, what: "logsumexp(1)");
        Assert.Equal(new long[] { 2, 1, 4 }, B3.logsumexp(1, keepdim: true).shape);
        Assert.Equal(new long[] { 2, 4 }, B3.logsumexp(-2).shape);
    }

    [Fact]
    public void Function_forms_agree_with_methods()
    {
        var x = randn(new long[] { 4, 9 }, generator: new Generator(1));
        Assert.Equal(x.softmax(-1).data<float>().ToArray(), softmax(x, -1).data<float>().ToArray());
        Assert.Equal(x.softmax(-1).data<float>().ToArray(), F.softmax(x, -1).data<float>().ToArray());
        Assert.Equal(x.log_softmax(0).data<float>().ToArray(), F.log_softmax(x, 0).data<float>().ToArray());
        Assert.Equal(x.logsumexp(1).data<float>().ToArray(), logsumexp(x, 1).data<float>().ToArray());
        var d = F.softmax(x, 1, ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, d.dtype);
        NnAssert.Close(x.to_type(ScalarType.Float64).softmax(1).data<double>().ToArray(), d, 0);
    }

    // ------------------------------------------------------------------ stability

    [Fact]
    public void Huge_logits_do_not_overflow()
    {
        Assert.Equal(new float[] { 1, 0 }, tensor(new float[] { 1000, 0 }).softmax(0).data<float>().ToArray());
        Assert.Equal(new float[] { 0, -1000 }, tensor(new float[] { 1000, 0 }).log_softmax(0).data<float>().ToArray());
        Assert.Equal(new double[] { 1, 0 }, tensor(new double[] { 1e300, 0 }).softmax(0).data<double>().ToArray());
        // PyTorch: log_softmax([[1e30, 5, -1e30], [88, 89, 90]], -1) = [[0, -1e30, -2e30], [-2.4076, -1.4076, -0.4076]]
        var big = tensor(new float[] { 1e30f, 5f, -1e30f, 88f, 89f, 90f }, new long[] { 2, 3 });
        NnAssert.Close([0, -1e30, -2e30, -2.4076058864593506, -1.4076058864593506, -0.40760594606399536], big.log_softmax(-1), 1e-6, what: "log_softmax");
        Assert.True(big.log_softmax(0).isfinite().all().ToBoolean());
        NnAssert.Close([1e30, 90.40760803222656], big.logsumexp(-1), 1e-6, what: "logsumexp");
    }

    [Fact]
    public void Infinite_inputs_follow_pytorch()
    {
        float ninf = float.NegativeInfinity;
        // A masked position (−∞) gets probability 0; a row that is entirely −∞ gives NaN (0/0), as in PyTorch.
        Assert.Equal(new float[] { 0.5f, 0, 0.5f }, tensor(new float[] { 1, ninf, 1 }).softmax(0).data<float>().ToArray());
        Assert.True(float.IsNaN(tensor(new float[] { ninf, ninf }).softmax(0).data<float>()[0]));
        // logsumexp treats an infinite max as 0 before shifting: all −∞ → −∞, any +∞ → +∞.
        Assert.Equal(ninf, tensor(new float[] { ninf, ninf }).logsumexp(0).item<float>());
        Assert.Equal(float.PositiveInfinity, tensor(new float[] { 1, float.PositiveInfinity }).logsumexp(0).item<float>());
        Assert.True(float.IsNaN(tensor(new float[] { 1, float.NaN, 2 }).softmax(0).data<float>()[0]));
    }

    [Fact]
    public void Softmax_rows_sum_to_one()
    {
        var x = randn(new long[] { 37, 513 }, generator: new Generator(4)) * 10;
        var s = x.softmax(-1).sum(-1).data<float>().ToArray();
        Assert.All(s, v => Assert.InRange(v, 1 - 1e-5f, 1 + 1e-5f));
        var s0 = x.softmax(0).sum(0).data<float>().ToArray();
        Assert.All(s0, v => Assert.InRange(v, 1 - 1e-5f, 1 + 1e-5f));
    }

    // ------------------------------------------------------------------ gradients: every dim, keepdim both ways

    static Tensor In(params long[] shape) => GradCheck.Input(shape, seed: shape.Sum() * 7 + shape.Length, scale: 2.0);

    [Theory, InlineData(0), InlineData(1), InlineData(-1)]
    public void Softmax_gradcheck(int dim) => GradCheck.Check(x => x[0].softmax(dim), In(3, 4, 5));

    [Theory, InlineData(0), InlineData(1), InlineData(-1)]
    public void Log_softmax_gradcheck(int dim) => GradCheck.Check(x => x[0].log_softmax(dim), In(3, 4, 5));

    [Theory, InlineData(0, false), InlineData(1, true), InlineData(1, false), InlineData(-1, true), InlineData(-1, false)]
    public void Logsumexp_gradcheck(int dim, bool keepdim) => GradCheck.Check(x => x[0].logsumexp(dim, keepdim), In(3, 4, 5));

    [Theory, InlineData(0), InlineData(1), InlineData(-1)]
    public void Softmax_second_order(int dim) => GradCheck.CheckSecondOrder(x => x[0].softmax(dim) * x[1], In(2, 3, 4), GradCheck.Input([4], 5));

    [Theory, InlineData(0), InlineData(-1)]
    public void Log_softmax_second_order(int dim) => GradCheck.CheckSecondOrder(x => x[0].log_softmax(dim).square(), In(3, 4));

    [Theory, InlineData(0), InlineData(1)]
    public void Logsumexp_second_order(int dim) => GradCheck.CheckSecondOrder(x => x[0].logsumexp(dim).exp(), In(3, 4));

    [Fact]
    public void Fused_backward_equals_the_differentiable_formula()
    {
        // The fused kernels run when the backward is not recorded; the composite ops when it is (create_graph).
        foreach (var dim in new long[] { 0, 1, 2 })
            foreach (var log in new[] { false, true })
            {
                var x = GradCheck.Input([4, 5, 300], 30 + dim);
                var g = randn(new long[] { 4, 5, 300 }, dtype: ScalarType.Float64, generator: new Generator(9));
                Tensor Y() => log ? x.log_softmax(dim) : x.softmax(dim);
                var fused = autograd.grad([Y()], [x], [g])[0];
                var composite = autograd.grad([Y()], [x], [g], create_graph: true)[0];
                NnAssert.Close(composite.data<double>().ToArray(), fused, 1e-12, 1e-15, $"dim {dim}, log {log}");
            }
    }

    // ------------------------------------------------------------------ determinism and errors

    [Fact]
    public void Large_softmax_is_identical_for_any_thread_count()
    {
        var x = randn(new long[] { 64, 33, 1001 }, generator: new Generator(21)) * 4;
        var g = randn(new long[] { 64, 33, 1001 }, generator: new Generator(22));
        NnAssert.SameBitsForAnyThreadCount(() =>
        {
            var xr = x.detach().requires_grad_();
            var y = xr.softmax(-1);
            var dx = autograd.grad([y], [xr], [g])[0];
            return [y, dx, x.softmax(1), x.log_softmax(-1), x.log_softmax(0), x.logsumexp(1), x.logsumexp(-1)];
        });
    }

    [Fact]
    public void Bad_dim_and_dtype_are_reported()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => ones(2, 3).softmax(2));
        Assert.Contains("softmax", ex.Message);
        Assert.Contains("[-2, 1]", ex.Message);
        var ex2 = Assert.Throws<ArgumentException>(() => tensor(new long[] { 1, 2 }).log_softmax(0));
        Assert.Contains("log_softmax", ex2.Message);
        Assert.Contains("Int64", ex2.Message);
    }
}
