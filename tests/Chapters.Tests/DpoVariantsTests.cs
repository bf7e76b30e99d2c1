using Dpo;
using TorchSharp;
using static TorchSharp.torch;
using static MinRL.Chapters.Tests.Expect;

namespace MinRL.Chapters.Tests;

/// <summary>Chapter 7's losses beyond DPO — hinge (SLiC), SimPO, ORPO, KTO — and their gradients, against
/// tests/reference/dpo_variants_known_values.py (PyTorch, float64, written the way TRL writes each loss).</summary>
public class DpoVariantsTests
{
    // Summed log-probs of three pairs under the policy and the reference, and each completion's token count.
    static readonly double[] Pc = [-2.0, -6.5, -1.2], Pr = [-3.0, -4.0, -7.5];
    static readonly double[] Rc = [-2.4, -6.0, -1.0], Rr = [-2.8, -4.6, -6.0];
    static readonly double[] Nc = [3, 5, 2], Nr = [4, 2, 5];

    static Tensor T(double[] x, bool grad = false) => tensor(x, [x.Length], requires_grad: grad);

    [Theory]
    [InlineData(0.1, new[] { 0.94, 1.1099999999999999, 0.87 }, -0.03333333333333333, -0.03333333333333333)]
    [InlineData(2.0, new[] { 0.0, 3.1999999999999993, 0.0 }, 0.0, -0.6666666666666666)]
    public void Hinge_matches_trl_on_both_sides_of_the_hinge(double beta, double[] expected, double grad0, double grad1)
    {
        var (pc, pr) = (T(Pc, grad: true), T(Pr, grad: true));
        var losses = DirectPreference.HingeLosses(pc, pr, T(Rc), T(Rr), beta);
        Close(expected, losses, 1e-14, "losses");
        losses.mean().backward();
        Close([grad0, grad1, grad0], pc.grad!, 1e-15, "∂/∂ log π(y_w)");                 // a satisfied margin: 0
        Close([-grad0, -grad1, -grad0], pr.grad!, 1e-15, "∂/∂ log π(y_l)");
    }

    [Fact]
    public void Simpo_is_reference_free_length_normalised_and_matches_trl()
    {
        var (pc, pr) = (T(Pc, grad: true), T(Pr, grad: true));
        var losses = DirectPreference.SimpoLosses(pc / T(Nc), pr / T(Nr), beta: 2.0, gamma: 1.0);
        Close([1.1942181492675368, 0.5130152523999526, 0.3711006659477777], losses, 1e-14, "losses");
        losses.mean().backward();
        Close([-0.15490206310342383, -0.0535083119850064, -0.10334183962412918], pc.grad!, 1e-14, "chosen");
        Close([0.11617654732756788, 0.133770779962516, 0.041336735849651675], pr.grad!, 1e-14, "rejected");
    }

    [Fact]
    public void Orpo_adds_the_log_odds_ratio_to_the_chosen_nll_and_matches_trl()
    {
        var (pc, pr) = (T(Pc, grad: true), T(Pr, grad: true));
        var (chosen, rejected) = (pc / T(Nc), pr / T(Nr));
        Close([0.16432789845822748, 0.872771524787546, 1.4433879094208657],
            DirectPreference.LogOddsRatio(chosen, rejected), 1e-14, "log odds ratio");
        var losses = DirectPreference.OrpoLosses(chosen, rejected, lambda: 0.1);
        Close([0.7281021564193191, 1.3349100747547016, 0.6211982641087945], losses, 1e-14, "losses");
        losses.mean().backward();
        Close([-0.12159260109510528, -0.06936715520079176, -0.17372289398566967], pc.grad!, 1e-14, "chosen");
        Close([0.007249512355221606, 0.005680003803109306, 0.0016392386451855993], pr.grad!, 1e-14, "rejected");
    }

    [Fact]
    public void Kto_judges_each_answer_alone_against_the_reference_point_as_trl_does()
    {
        var z0 = DirectPreference.KtoReferencePoint(T([-5.0, -3.5, -4.0]), T([-4.5, -4.0, -3.0]));
        Assert.Equal(0.0, z0.item<double>());                                             // clamped at 0
        var (pc, pr) = (T(Pc, grad: true), T(Pr, grad: true));
        var losses = DirectPreference.KtoLosses(pc, pr, T(Rc), T(Rr), beta: 0.1, z0);     // (2B): chosen, rejected
        Close([0.49000133312003447, 0.5124973964842103, 0.5049998333399996,
               0.49500016666000024, 0.5149955016194101, 0.4625701546562504], losses, 1e-14, "losses");
        Assert.Equal(0.4966773976466508, losses.mean().item<double>(), 14);
        losses.mean().backward();
        Close([-0.0041650004443437244, -0.004164063584685274, -0.004166250027776204], pc.grad!, 1e-15, "chosen");
        Close([0.004166250027776204, 0.004162918915519704, 0.00414331677795905], pr.grad!, 1e-15, "rejected");

        var z0Positive = DirectPreference.KtoReferencePoint(T([-3.0, -2.5, -4.0]), T([-4.5, -4.0, -3.0]));
        Assert.Equal(0.6666666666666666, z0Positive.item<double>(), 15);
        Close([0.5066662716330295, 0.5291336290720469, 0.5216531151169002,
               0.47834688488309984, 0.49833333950614545, 0.4460442452803929],
            DirectPreference.KtoLosses(T(Pc), T(Pr), T(Rc), T(Rr), 0.1, z0Positive), 1e-14, "losses, z0 > 0");
    }

    [Fact]
    public void Kto_reference_point_carries_no_gradient()
    {
        var klPolicy = T([-3.0, -2.5, -4.0], grad: true);
        var z0 = DirectPreference.KtoReferencePoint(klPolicy, T([-4.5, -4.0, -3.0]));
        Assert.False(z0.requires_grad);
    }
}
