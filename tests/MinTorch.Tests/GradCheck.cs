using TorchSharp;
using static TorchSharp.torch;

namespace TorchSharp.Tests;

/// <summary>
/// Central finite differences in float64, compared with what autograd computes.
/// </summary>
/// <remarks>
/// For an op f and inputs x, we check the gradient of L(x) = Σ f(x) ⊙ w for a fixed random w
/// (so every output element matters, with its own weight). Numerically,
/// ∂L/∂xᵢ ≈ (L(x + h eᵢ) − L(x − h eᵢ)) / 2h with h = 1e-6, whose error is O(h²) — about 1e-12 —
/// plus rounding of order 1e-16·|L|/h ≈ 1e-10·|L|. The check passes when
/// |analytic − numeric| ≤ rtol·|numeric| + atol with rtol = 1e-6.
/// </remarks>
public static class GradCheck
{
    public const double Rtol = 1e-6;
    public const double Atol = 1e-8;
    public const double H = 1e-6;

    /// <summary>Checks first derivatives of <paramref name="f"/> with respect to every float64 input that requires grad.</summary>
    public static void Check(Func<Tensor[], Tensor> f, params Tensor[] inputs)
    {
        foreach (var x in inputs)
            if (x.requires_grad) Assert.Equal(ScalarType.Float64, x.dtype);
        var gen = new Generator(12345);
        var y0 = f(inputs);
        var w = randn(y0.shape, dtype: ScalarType.Float64, generator: gen);
        double L(Tensor[] xs) { using (no_grad()) return (f(xs).to_type(ScalarType.Float64) * w).sum().item<double>(); }

        foreach (var x in inputs) x.grad = null;
        (y0.to_type(ScalarType.Float64) * w).sum().backward();

        for (int k = 0; k < inputs.Length; k++)
        {
            var x = inputs[k];
            if (!x.requires_grad) continue;
            Assert.True(x.grad is not null, $"input {k}: no gradient was computed");
            var analytic = x.grad!.data<double>().ToArray();
            var numeric = Numeric(L, inputs, x);
            Compare(analytic, numeric, $"input {k} (shape [{string.Join(", ", x.shape)}])");
        }
    }

    /// <summary>
    /// Checks second derivatives (double backward): for a random v, the gradient of
    /// φ(x) = ⟨∇ₓL(x), v⟩ computed with create_graph: true must match finite differences of φ.
    /// </summary>
    public static void CheckSecondOrder(Func<Tensor[], Tensor> f, params Tensor[] inputs)
    {
        var gen = new Generator(777);
        var diff = inputs.Where(x => x.requires_grad).ToArray();
        var w = randn(f(inputs).shape, dtype: ScalarType.Float64, generator: gen);
        var vs = diff.Select(x => randn(x.shape, dtype: ScalarType.Float64, generator: gen)).ToArray();

        Tensor Phi(Tensor[] xs, bool createGraph)
        {
            var L = (f(xs) * w).sum();
            var grads = autograd.grad([L], diff, create_graph: createGraph);
            Tensor phi = zeros(Array.Empty<long>(), ScalarType.Float64);
            for (int i = 0; i < diff.Length; i++) phi = phi + (grads[i] * vs[i]).sum();
            return phi;
        }

        var phi = Phi(inputs, true);
        Assert.True(phi.requires_grad, "the first gradient was not recorded (create_graph: true produced a constant)");
        var analytic = autograd.grad([phi], diff, allow_unused: true);
        for (int k = 0; k < diff.Length; k++)
        {
            var x = diff[k];
            var numeric = Numeric(xs => Phi(xs, false).item<double>(), inputs, x);
            var a = analytic[k] is null ? new double[x.numel()] : analytic[k].data<double>().ToArray();
            Compare(a, numeric, $"second order, input {k} (shape [{string.Join(", ", x.shape)}])", rtol: 1e-5, atol: 1e-7);
        }
    }

    private static double[] Numeric(Func<Tensor[], double> L, Tensor[] inputs, Tensor x)
    {
        var data = x.Arr<double>();
        var numeric = new double[x.numel()];
        for (int i = 0; i < numeric.Length; i++)
        {
            double orig = data[i];
            data[i] = orig + H; double plus = L(inputs);
            data[i] = orig - H; double minus = L(inputs);
            data[i] = orig;
            numeric[i] = (plus - minus) / (2 * H);
        }
        return numeric;
    }

    public static void Compare(double[] analytic, double[] numeric, string what, double rtol = Rtol, double atol = Atol)
    {
        Assert.Equal(numeric.Length, analytic.Length);
        for (int i = 0; i < numeric.Length; i++)
        {
            double err = Math.Abs(analytic[i] - numeric[i]);
            Assert.True(err <= rtol * Math.Abs(numeric[i]) + atol,
                $"{what}, element {i}: autograd {analytic[i]:R} vs finite differences {numeric[i]:R} (|diff| {err:E2})");
        }
    }

    /// <summary>A float64 leaf of the given shape with values drawn from N(0, 1) (seeded), requiring grad.</summary>
    public static Tensor Input(long[] shape, long seed = 1, double scale = 1.0, double shift = 0.0)
    {
        var t = randn(shape, dtype: ScalarType.Float64, generator: new Generator((ulong)seed));
        using (no_grad()) t = (t * scale + shift).detach();
        return t.requires_grad_();
    }
}
