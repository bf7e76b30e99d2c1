using Grpo;
using TorchSharp;
using static TorchSharp.torch;
using static MinRL.Chapters.Tests.Expect;

namespace MinRL.Chapters.Tests;

/// <summary>Chapter 8's switches beyond GRPO — RLOO and REINFORCE++-baseline advantages, DAPO's clip-higher, GSPO's
/// sequence ratio, CISPO, and the k1/k2/k3 KL terms — against tests/reference/grpo_family_known_values.py (PyTorch,
/// float64, written as TRL writes each one).</summary>
public class GrpoFamilyTests
{
    static Tensor T(double[] x, params long[] shape) => tensor(x, shape);
    static Tensor Logp(bool grad = false) => tensor(new[] { -0.5, -1.2, -0.3, -2.0, -0.9, -0.1, -0.7, -0.4,
        -1.5, -0.6, -0.2, -0.8 }, [3, 4], requires_grad: grad);
    static Tensor Old() => T([-0.7, -1.0, -0.3, -1.0, -0.6, -0.3, -0.9, -0.2, -1.1, -0.6, -0.5, -0.9], 3, 4);
    static Tensor Ref() => T([-0.6, -1.1, -0.4, -1.5, -0.8, -0.2, -0.8, -0.3, -1.3, -0.7, -0.3, -0.7], 3, 4);
    static Tensor Mask() => T([1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0, 0], 3, 4);
    static Tensor Adv() => T([0.8, -1.1, 0.5], 3);

    [Fact]
    public void Rloo_and_reinforce_plus_plus_baseline_advantages_match_the_references()
    {
        var r = T([1.0, 0.0, 0.1, 1.1, 1.1, 0.0], 6);
        Close([0.95, -0.55, -0.4, 0.55, 0.55, -1.1],
            GroupRelative.AdvantagesOf(AdvantageKind.Rloo, r, 3, ScaleRewards.Group), 1e-15, "rloo");
        Close([1.1910044091476741, -0.6895288684539167, -0.5014755406937577, 0.6895288684539167, 0.6895288684539167,
               -1.3790577369078334],
            GroupRelative.AdvantagesOf(AdvantageKind.ReinforcePlusPlusBaseline, r, 3, ScaleRewards.Group), 1e-14,
            "reinforce++-baseline");
        // grpo is the existing function, untouched
        Assert.Equal(GroupRelative.Advantages(r, 3, ScaleRewards.None).data<double>().ToArray(),
            GroupRelative.AdvantagesOf(AdvantageKind.Grpo, r, 3, ScaleRewards.None).data<double>().ToArray());
    }

    static (double loss, Tensor grad) Run(Func<Tensor, Tensor> perToken)
    {
        var logp = Logp(grad: true);
        var loss = GroupRelative.Aggregate(perToken(logp), Mask(), LossType.Dapo, 4);
        loss.backward();
        return (loss.item<double>(), logp.grad!);
    }

    [Theory]
    [InlineData(0.0, 0.13528280787310543, new[] { 0.0, -0.07277606694026506, -0.08888888888888889, 0.0, 0.0,
        0.14928255933068743, 0.14928255933068743, 0.10006709204286446, -0.03724000255753552, -0.05555555555555555,
        0.0, 0.0 })]
    [InlineData(0.28, 0.13338034048109032, new[] { -0.10856913405868177, -0.07277606694026506, -0.08888888888888889,
        0.0, 0.0, 0.14928255933068743, 0.14928255933068743, 0.10006709204286446, -0.03724000255753552,
        -0.05555555555555555, 0.0, 0.0 })]
    public void Clip_higher_frees_the_first_token_that_the_symmetric_clip_held(double epsilonHigh, double loss,
        double[] grad)
    {
        var (l, g) = Run(lp => GroupRelative.PerTokenLoss(lp, Old(), Ref(), Adv(), 0.2, beta: 0,
            epsilonHigh: epsilonHigh));
        Assert.Equal(loss, l, 14);
        Close(grad, g, 1e-15, "∂L/∂log π");
    }

    [Fact]
    public void Gspo_clips_whole_completions_by_their_geometric_mean_ratio()
    {
        Close([1.0, 0.9753099120283326, 0.8187307530779819],
            GroupRelative.SequenceLogRatio(Logp() - Old(), Mask()).exp(), 1e-15, "s_i");
        var (l, g) = Run(lp => GroupRelative.PerTokenLoss(lp, Old(), Ref(), Adv(), 3e-4, beta: 0, epsilonHigh: 4e-4,
            level: ImportanceSamplingLevel.Sequence, mask: Mask()));
        Assert.Equal(0.13110547188022428, l, 14);
        // completion 2 (s = 0.975, Â < 0) is clipped as a whole: none of its tokens gets a gradient
        Close([-0.08888888888888889, -0.08888888888888889, -0.08888888888888889, 0, 0, 0, 0, 0,
               -0.04548504183766566, -0.04548504183766566, 0, 0], g, 1e-15, "∂L/∂log π");
    }

    [Fact]
    public void Cispo_keeps_a_gradient_on_every_token_weighted_by_the_capped_ratio()
    {
        var (l, g) = Run(lp => GroupRelative.PerTokenLoss(lp, Old(), Ref(), Adv(), 0.2, beta: 0,
            lossType: LossType.Cispo));
        Assert.Equal(0.017674443072486598, l, 14);
        Close([-0.10666666666666666, -0.07277606694026506, -0.08888888888888889, 0, 0.09054444919443218,
               0.14666666666666667, 0.14666666666666667, 0.10006709204286446, -0.03724000255753552,
               -0.05555555555555555, 0, 0], g, 1e-15, "∂L/∂log π");
    }

    [Theory]
    [InlineData(KlEstimator.K1, 2.7755575615628914e-17, new[] { 0.1111111111111111, 0.1111111111111111,
        0.1111111111111111, 0, 0.1111111111111111, 0.1111111111111111, 0.1111111111111111, 0.1111111111111111,
        0.1111111111111111, 0.1111111111111111, 0, 0 })]
    [InlineData(KlEstimator.K2, 0.0066666666666666645, new[] { 0.011111111111111108, -0.011111111111111096,
        0.011111111111111115, 0, -0.011111111111111108, 0.011111111111111112, 0.01111111111111112,
        -0.011111111111111115, -0.022222222222222216, 0.011111111111111108, 0, 0 })]
    [InlineData(KlEstimator.K3, 0.006789178062990089, new[] { 0.010573620218226706, -0.011685657563960838,
        0.01057362021822672, 0, -0.011685657563960838, 0.01057362021822672, 0.01057362021822672,
        -0.011685657563960852, -0.024600306462241095, 0.010573620218226706, 0, 0 })]
    public void Kl_terms_and_their_gradients_match_the_references(KlEstimator estimator, double loss, double[] grad)
    {
        var (l, g) = Run(lp => Kl.Estimate(estimator, lp, Ref()));
        Assert.Equal(loss, l, 14);
        Close(grad, g, 1e-15, "∂KL/∂log π");
    }
}
