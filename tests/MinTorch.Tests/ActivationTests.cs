using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TorchSharp.Tests;

/// <summary>Assertions shared by the activation, softmax, norm, loss and stats tests.</summary>
internal static class NnAssert
{
    /// <summary>|actual − expected| ≤ rtol·|expected| + atol, elementwise, with the index in the message.</summary>
    public static void Close(double[] expected, Tensor actual, double rtol, double atol = 0, string what = "")
    {
        var a = actual.to_type(ScalarType.Float64).data<double>().ToArray();
        Assert.Equal(expected.Length, a.Length);
        for (int i = 0; i < a.Length; i++)
        {
            bool ok = double.IsNaN(expected[i]) ? double.IsNaN(a[i])
                : double.IsInfinity(expected[i]) ? a[i] == expected[i]
                : Math.Abs(a[i] - expected[i]) <= rtol * Math.Abs(expected[i]) + atol;
            Assert.True(ok, $"{what} element {i}: expected {expected[i]:R}, got {a[i]:R}");
        }
    }

    /// <summary>Runs <paramref name="f"/> with 1 thread and with more threads than cores; the results must be bit-identical.</summary>
    public static void SameBitsForAnyThreadCount(Func<Tensor[]> f)
    {
        int saved = get_num_threads();
        try
        {
            set_num_threads(1);
            var one = f().Select(t => t.to_type(ScalarType.Float64).data<double>().ToArray()).ToArray();
            set_num_threads(Math.Max(4, Environment.ProcessorCount * 2));
            var many = f().Select(t => t.to_type(ScalarType.Float64).data<double>().ToArray()).ToArray();
            Assert.Equal(one.Length, many.Length);
            for (int k = 0; k < one.Length; k++)
            {
                Assert.Equal(one[k].Length, many[k].Length);
                for (int i = 0; i < one[k].Length; i++)
                    Assert.True(BitConverter.DoubleToInt64Bits(one[k][i]) == BitConverter.DoubleToInt64Bits(many[k][i]),
                        $"output {k}, element {i}: {one[k][i]:R} with 1 thread vs {many[k][i]:R} with many");
            }
        }
        finally { set_num_threads(saved); }
    }

    public static double Ulp(double v) => Math.BitIncrement(Math.Abs(v)) - Math.Abs(v);
}

public class ActivationTests
{
    // ------------------------------------------------------------------ erf

    [Theory]
    // Reference values: 120-bit mpmath erf, rounded to double.
    [InlineData(0.5, 0.5204998778130465)]
    [InlineData(1.0, 0.8427007929497149)]
    [InlineData(2.0, 0.9953222650189527)]
    [InlineData(-3.0, -0.9999779095030014)]
    [InlineData(1e-10, 1.1283791670955126e-10)]
    [InlineData(-0.84375, -0.7672256612323416)]
    [InlineData(1.25, 0.9229001282564583)]
    [InlineData(2.857142857142857, 0.9999466876886117)]
    [InlineData(5.0, 0.9999999999984626)]
    [InlineData(27.0, 1.0)]
    [InlineData(double.NegativeInfinity, -1.0)]
    [InlineData(0.0, 0.0)]
    public void Erf_matches_reference_values_within_one_ulp(double x, double expected)
    {
        double s = VecMath.Erf(x);
        Assert.True(Math.Abs(s - expected) <= NnAssert.Ulp(expected), $"scalar erf({x:R}) = {s:R}, expected {expected:R}");
        double v = VecMath.Erf(Vector256.Create(x)).GetElement(0);
        Assert.True(Math.Abs(v - expected) <= NnAssert.Ulp(expected), $"vector erf({x:R}) = {v:R}, expected {expected:R}");
        float f = VecMath.Erf(Vector256.Create((float)x)).GetElement(0);
        double ef = VecMath.Erf((double)(float)x);
        Assert.True(Math.Abs(f - ef) <= 2 * FloatUlp(ef), $"float erf({x:R}) = {f:R}, expected {ef:R}");
    }

    [Theory]
    // Reference values: 120-bit mpmath erfc, rounded to double.
    [InlineData(0.1, 0.887537083981715)]
    [InlineData(0.5, 0.4795001221869535)]
    [InlineData(1.0, 0.15729920705028513)]
    [InlineData(2.0, 0.004677734981047266)]
    [InlineData(5.0, 1.537459794428035e-12)]
    [InlineData(10.0, 2.088487583762545e-45)]
    [InlineData(-1.0, 1.8427007929497148)]
    [InlineData(-3.0, 1.9999779095030015)]
    public void Erfc_keeps_relative_precision(double x, double expected)
    {
        double v = VecMath.Erfc(x);
        Assert.True(Math.Abs(v - expected) <= 2 * NnAssert.Ulp(expected), $"erfc({x:R}) = {v:R}, expected {expected:R}");
    }

    [Fact]
    public void Nan_and_infinity_pass_through_erf_and_the_normal_cdf()
    {
        Assert.True(double.IsNaN(VecMath.Erf(double.NaN)) && double.IsNaN(VecMath.Erf(Vector256.Create(double.NaN)).GetElement(0)));
        Assert.True(float.IsNaN(VecMath.Erf(Vector256.Create(float.NaN)).GetElement(0)));
        Assert.True(float.IsNaN(VecMath.NormalCdf(Vector256.Create(float.NaN)).GetElement(0)));
        Assert.Equal(0f, VecMath.NormalCdf(Vector256.Create(float.NegativeInfinity)).GetElement(0));
        Assert.Equal(1f, VecMath.NormalCdf(Vector256.Create(float.PositiveInfinity)).GetElement(0));
        Assert.Equal(-1f, VecMath.Erf(Vector256.Create(float.NegativeInfinity)).GetElement(0));
        Assert.True(float.IsNaN(tensor(new float[] { float.NaN }).gelu().item<float>()));
    }

    [Fact]
    public void Vector_erf_agrees_with_scalar_erf_across_all_branches()
    {
        var rng = new Random(7);
        for (int i = 0; i < 200_000; i++)
        {
            double x = i % 3 == 0 ? rng.NextDouble() * 16 - 8 : i % 3 == 1 ? rng.NextDouble() * 3 - 1.5 : Math.Pow(10, -12 * rng.NextDouble());
            double s = VecMath.Erf(x), v = VecMath.Erf(Vector256.Create(x)).GetElement(0);
            Assert.True(Math.Abs(v - s) <= NnAssert.Ulp(s), $"erf({x:R}): vector {v:R} vs scalar {s:R}");
            float xf = (float)x;
            double exact = VecMath.Erf((double)xf);
            float vf = VecMath.Erf(Vector256.Create(xf)).GetElement(0);
            Assert.True(Math.Abs(vf - exact) <= 2 * FloatUlp(exact), $"float erf({xf:R}): {vf:R} vs {exact:R}");
        }
    }

    static double FloatUlp(double v) { float r = Math.Abs((float)v); return MathF.BitIncrement(r) - r; }

    [Fact]
    public void Float_normal_cdf_keeps_relative_precision_in_both_tails()
    {
        // Φ(x) = ½(1 + erf(x/√2)) = ½·erfc(−x/√2): the exact value from the double erfc of the same float x.
        // The kernel carries the rounding error of x/√2 into the exponent, so the left tail stays within a few ulp.
        var rng = new Random(3);
        for (int i = 0; i < 100_000; i++)
        {
            float x = (float)(rng.NextDouble() * 14 - 8);
            double exact = 0.5 * VecMath.Erfc(-x * ActKernels.Sqrt1_2);
            double y = VecMath.NormalCdf(Vector256.Create(x)).GetElement(0);
            Assert.True(Math.Abs(y - exact) <= 8 * Math.Pow(2, -24) * exact + 1e-45, $"Φ({x:R}) = {y:R}, exact {exact:R}");
        }
    }

    [Fact]
    public void Erf_tensor_gradcheck() => GradCheck.Check(x => x[0].erf(), GradCheck.Input([3, 7], 1, 1.5));

    // ------------------------------------------------------------------ gelu

    static readonly double[] GeluX = [-10, -5, -3, -1.5, -1, -0.5, -1e-3, 0, 1e-3, 0.5, 1, 1.5, 3, 5];

    [Fact]
    public void Gelu_float64_matches_pytorch()
    {
        // torch.nn.functional.gelu (float64), torch 1.13
        double[] expected = [-0.0, -1.4332578593401202e-06, -0.00404969409489031, -0.10021080190328704, -0.15865525393145702, -0.15426876936299344, -0.000499601057786089, 0.0, 0.000500398942213911, 0.34573123063700656, 0.841344746068543, 1.399789198096713, 2.99595030590511, 4.999998566742141];
        NnAssert.Close(expected, tensor(GeluX).gelu(), rtol: 4e-16, atol: 1e-300, "gelu");
        Assert.Equal(expected, F.gelu(tensor(GeluX)).data<double>().ToArray(), (a, b) => Math.Abs(a - b) <= 4e-16 * Math.Abs(a));
    }

    [Fact]
    public void Gelu_float32_is_close_to_the_exact_value_even_in_the_left_tail()
    {
        // Exact values: PyTorch's float64 gelu of the float32-rounded inputs. The float32 kernel computes Φ's left
        // tail from erfc, so gelu(−5) is accurate (PyTorch's float32 gelu(−5) is −1.4901161193847656e-06, the true value
        // −1.4332578593401202e-06). Bound: 8·2⁻²⁴ relative.
        var xf = tensor(GeluX.Select(v => (float)v).ToArray());
        var exact = tensor(GeluX.Select(v => (double)(float)v).ToArray()).gelu().data<double>().ToArray();
        var y = xf.gelu().data<float>().ToArray();
        for (int i = 0; i < y.Length; i++)
        {
            double x = GeluX[i], tol = 8 * Math.Pow(2, -24) * Math.Abs(exact[i]);
            if (x == -10) tol = 1e-20;                                     // exact −7.6e-23; float gives −7.6e-23 or 0
            Assert.True(Math.Abs(y[i] - exact[i]) <= tol, $"gelu({x}) = {y[i]:R}, exact {exact[i]:R}");
        }
    }

    [Fact]
    public void Gelu_gradient_matches_pytorch()
    {
        // torch.autograd.grad(F.gelu(x).sum(), x), float64
        double[] expected = [-7.694598626706419e-22, -7.1469460018034646e-06, -0.01194564720418392, -0.1274691922299796, -0.08331547058768635, 0.13250487534383712, 0.4992021157051586, 0.5, 0.5007978842948414, 0.8674951246561629, 1.0833154705876864, 1.1274691922299795, 1.011945647204184, 1.000007146946002];
        var x = tensor(GeluX, requires_grad: true);
        x.gelu().sum().backward();
        NnAssert.Close(expected, x.grad!, rtol: 1e-14, atol: 1e-300, "gelu'");
    }

    // Inputs spread over all four erf intervals of x/√2 (|x| up to ~9).
    [Fact] public void Gelu_gradcheck() => GradCheck.Check(x => x[0].gelu(), GradCheck.Input([4, 6], 2, 3.0));
    [Fact] public void Gelu_second_order() => GradCheck.CheckSecondOrder(x => x[0].gelu() * x[1], GradCheck.Input([3, 5], 3, 2.0), GradCheck.Input([5], 4));
    [Fact] public void Gelu_third_order_through_its_derivative() => GradCheck.CheckSecondOrder(x => x[0].GeluDerivative(), GradCheck.Input([2, 5], 5, 2.0));

    // ------------------------------------------------------------------ log_sigmoid, softplus, silu

    static readonly double[] LsX = [-1000, -50, -1, 0, 1, 50, 1000];

    [Fact]
    public void Logsigmoid_matches_pytorch_and_is_stable()
    {
        // F.logsigmoid, float64 and float32, torch 1.13
        double[] e64 = [-1000.0, -50.0, -1.3132616875182228, -0.6931471805599453, -0.31326168751822286, -1.9287498479639178e-22, 0.0];
        double[] e32 = [-1000.0, -50.0, -1.3132617473602295, -0.6931471824645996, -0.3132616877555847, -1.9287498933537385e-22, 0.0];
        NnAssert.Close(e64, F.logsigmoid(tensor(LsX)), rtol: 1e-15, what: "logsigmoid64");
        NnAssert.Close(e32, F.logsigmoid(tensor(LsX.Select(v => (float)v).ToArray())), rtol: 2e-7, what: "logsigmoid32");
        Assert.Equal(-1000f, F.logsigmoid(tensor(-1000f)).item<float>());
    }

    [Fact] public void Logsigmoid_gradcheck() => GradCheck.Check(x => x[0].log_sigmoid(), GradCheck.Input([4, 5], 6, 4.0));
    [Fact] public void Logsigmoid_second_order() => GradCheck.CheckSecondOrder(x => F.logsigmoid(x[0] * x[1]), GradCheck.Input([3, 4], 7, 2.0), GradCheck.Input([4], 8));

    [Fact]
    public void Logsigmoid_gradient_of_very_negative_input_is_one()
    {
        var x = tensor(new double[] { -1000, 1000 }, requires_grad: true);
        x.log_sigmoid().sum().backward();
        Assert.Equal(new double[] { 1, 0 }, x.grad!.data<double>().ToArray());
    }

    [Fact]
    public void Softplus_matches_pytorch()
    {
        double[] xs = [-30, -1, 0, 1, 2.4, 2.6, 19, 21, 30];
        // F.softplus(x) and F.softplus(x, beta=2, threshold=5), float64
        double[] e1 = [9.357622968839737e-14, 0.31326168751822286, 0.6931471805599453, 1.3132616875182228, 2.4868361521539497, 2.67164469196767, 19.000000005602796, 21.0, 30.0];
        double[] e2 = [4.37825538134826e-27, 0.06346400552148625, 0.34657359027997264, 1.0634640055214863, 2.404098033669134, 2.6, 19.0, 21.0, 30.0];
        NnAssert.Close(e1, F.softplus(tensor(xs)), rtol: 1e-15, what: "softplus");
        NnAssert.Close(e2, F.softplus(tensor(xs), beta: 2, threshold: 5), rtol: 1e-15, what: "softplus β=2");
    }

    // Inputs away from the threshold (where the function switches formula).
    [Fact] public void Softplus_gradcheck() => GradCheck.Check(x => x[0].softplus() + x[0].softplus(2.0, 3.0), GradCheck.Input([4, 5], 9, 0.8));
    [Fact] public void Softplus_second_order() => GradCheck.CheckSecondOrder(x => x[0].softplus(1.5), GradCheck.Input([3, 4], 10));
    [Fact] public void Silu_gradcheck() => GradCheck.Check(x => F.silu(x[0]), GradCheck.Input([3, 5], 11, 2.0));

    // ------------------------------------------------------------------ functional forms and in-place variants

    [Fact]
    public void Functional_forms_match_tensor_methods()
    {
        var x = randn(new long[] { 5, 7 }, generator: new Generator(3));
        Assert.Equal(x.sigmoid().data<float>().ToArray(), F.sigmoid(x).data<float>().ToArray());
        Assert.Equal(x.relu().data<float>().ToArray(), F.relu(x).data<float>().ToArray());
        Assert.Equal(x.tanh().data<float>().ToArray(), F.tanh(x).data<float>().ToArray());
        Assert.Equal(x.gelu().data<float>().ToArray(), F.gelu(x, false).data<float>().ToArray());
        var expectedRelu = x.relu().data<float>().ToArray();
        var same = F.relu(x, inplace: true);
        Assert.Same(x, same);
        Assert.Equal(expectedRelu, x.data<float>().ToArray());
    }

    [Fact]
    public void In_place_activation_on_a_tensor_that_requires_grad_is_refused()
    {
        var x = randn(new long[] { 3 }, requires_grad: true);
        var ex = Assert.Throws<InvalidOperationException>(() => F.relu(x, inplace: true));
        Assert.Contains("relu_", ex.Message);
        Assert.Throws<InvalidOperationException>(() => x.gelu_());
    }

    [Fact]
    public void Activation_of_an_integer_tensor_names_the_op_and_dtype()
    {
        var ex = Assert.Throws<ArgumentException>(() => tensor(new long[] { 1, 2 }).gelu());
        Assert.Contains("gelu", ex.Message);
        Assert.Contains("Int64", ex.Message);
    }

    [Fact]
    public void Gelu_and_logsigmoid_are_identical_for_any_thread_count()
    {
        var x = randn(new long[] { 300_001 }, generator: new Generator(12)) * 3;
        var xd = x.to_type(ScalarType.Float64);
        NnAssert.SameBitsForAnyThreadCount(() => [x.gelu(), x.GeluDerivative(), x.log_sigmoid(), xd.gelu(), xd.softplus()]);
    }
}
