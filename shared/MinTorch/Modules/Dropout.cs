using static TorchSharp.torch;

namespace TorchSharp.Modules;

/// <summary>
/// Dropout (TorchSharp's <c>Dropout</c>): in training mode each element is zeroed with probability
/// <c>p</c> and the survivors are scaled by 1/(1 − p), so the expected output equals the input; in
/// evaluation mode it is the identity.
/// </summary>
/// <remarks>
/// y = x ⊙ m / (1 − p) with mᵢ ~ Bernoulli(1 − p) drawn from the default generator.
/// ∂y/∂x = m / (1 − p): the same mask scales the gradient. <c>inplace</c> is accepted for
/// TorchSharp compatibility; the result is always a new tensor.
/// </remarks>
public sealed class Dropout : nn.Module<Tensor, Tensor>
{
    public double p { get; }
    public bool inplace { get; }

    public Dropout(double p = 0.5, bool inplace = false) : base(nameof(Dropout))
    {
        if (p < 0 || p > 1) throw new ArgumentOutOfRangeException(nameof(p), $"Dropout: the probability must be in [0, 1], got {p}");
        this.p = p;
        this.inplace = inplace;
    }

    public override Tensor forward(Tensor input)
    {
        if (!training || p == 0) return input;
        if (!input.IsFloat) throw new ArgumentException($"Dropout: the input must be floating point, got {input.dtype}");
        if (p == 1) return input.mul(0.0);
        var mask = rand_like(input); // u ~ U[0, 1); keep where u < 1 − p
        double keep = 1 - p, scale = 1 / keep;
        switch (mask._dtype)
        {
            case ScalarType.Float32:
                var f = mask.Span<float>();
                for (int i = 0; i < f.Length; i++) f[i] = f[i] < keep ? (float)scale : 0f;
                break;
            default:
                var d = mask.Span<double>();
                for (int i = 0; i < d.Length; i++) d[i] = d[i] < keep ? scale : 0.0;
                break;
        }
        return input.mul(mask);
    }
}
