using TorchSharp;
using static TorchSharp.torch;

namespace MinRL.Chapters.Tests;

/// <summary>
/// The approximate KL and the clip fractions the chapters log, on one hand-made masked batch, against PyTorch
/// (tests/reference/approx_kl_clipfrac.py). Each chapter counts the clip on purpose and names it after its reference:
/// chapter 4 logs CleanRL's clipfrac (|ρ − 1| &gt; ε), chapters 6 and 8 TRL's sign-aware region (policy/clipfrac_avg,
/// clip_ratio/region_mean); chapters 4 and 6 log CleanRL's approx_kl, (ρ − 1) − log ρ.
/// </summary>
public class LoggedDiagnosticsTests
{
    // log ρ and Â for two completions of four tokens; the second ends after three. The padding column holds values
    // that would change every answer if they were counted.
    static Tensor LogRatio() => tensor(new[] { 0.30, -0.25, 0.05, -0.10, 0.19, -0.40, 0.26, 5.0 }, [2, 4]);
    static Tensor Advantages() => tensor(new[] { 1.0, -0.5, -2.0, 0.7, -1.5, 0.3, 2.5, -9.0 }, [2, 4]);
    static Tensor Mask() => tensor(new[] { 1.0, 1, 1, 1, 1, 1, 1, 0 }, [2, 4]);
    const double Eps = 0.2;

    [Fact]
    public void Approx_kl_is_cleanrls_k3_in_chapters_4_and_6()
    {
        Assert.Equal(0.03018111934543632, Kl.OldToNew(LogRatio(), Mask()), 15);           // chapter 6's approx_kl
        var (k1, k3) = Ppo.PPO.ApproxKl(LogRatio(), Mask());                              // chapter 4's two
        Assert.Equal(-0.007142857142857137, k1, 15);
        Assert.Equal(0.03018111934543632, k3, 15);
        // What chapter 6 logged before, e^(−log ρ) − 1 + log ρ, is 0.0316 here: not a KL in either direction.
        Assert.NotEqual(0.031582771047717124, Kl.OldToNew(LogRatio(), Mask()), 6);
    }

    [Fact]
    public void Approx_kl_is_zero_when_the_policy_has_not_moved_and_float32_gives_the_same()
    {
        Assert.Equal(0.0, Kl.OldToNew(zeros(2, 4), Mask()));
        Assert.Equal(0.03018111934543632, Kl.OldToNew(LogRatio().to_type(ScalarType.Float32), Mask()), 7);
    }

    [Fact]
    public void Chapter_4_counts_cleanrls_clipfrac()
    {
        Assert.Equal(0.7142857142857143, Ppo.PPO.ClipFraction(LogRatio(), Mask(), Eps), 15);   // 5 of 7 real tokens
    }

    [Fact]
    public void Chapters_6_and_8_count_trls_sign_aware_region()
    {
        Assert.Equal(0.42857142857142855, Rlhf.RlhfMath.ClipFraction(LogRatio(), Advantages(), Mask(), Eps), 15);
        Assert.Equal(0.42857142857142855, Grpo.GroupRelative.ClipFraction(LogRatio(), Advantages(), Mask(), Eps), 15);
        // Chapter 8's advantages are one per completion, broadcast over its tokens.
        var perCompletion = tensor(new[] { 0.8, -1.2 }, [2, 1]);
        Assert.Equal(0.2857142857142857, Grpo.GroupRelative.ClipFraction(LogRatio(), perCompletion, Mask(), Eps), 15);
    }
}
