using static TorchSharp.torch;

namespace TorchSharp.Modules;

/// <summary>
/// Layer normalisation over the last dimensions (TorchSharp's <c>LayerNorm</c>):
/// y = (x − mean) / √(var + eps) · weight + bias, with the statistics over <c>normalized_shape</c>.
/// weight starts at 1 and bias at 0.
/// </summary>
public sealed class LayerNorm : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = nameof(weight))] private Parameter? _weight;
    [ComponentName(Name = nameof(bias))] private Parameter? _bias;

    public long[] normalized_shape { get; set; }
    public double eps { get; set; }
    public bool elementwise_affine { get; set; }

    internal LayerNorm(long[] normalized_shape, double eps, bool elementwise_affine, bool bias, Device? device, ScalarType? dtype) : base(nameof(LayerNorm))
    {
        CheckDevice(device);
        this.normalized_shape = (long[])normalized_shape.Clone();
        this.eps = eps;
        this.elementwise_affine = elementwise_affine;
        if (elementwise_affine)
        {
            weight = new Parameter(empty(normalized_shape, dtype));
            if (bias) this.bias = new Parameter(empty(normalized_shape, dtype));
        }
        reset_parameters();
    }

    /// <summary>weight ← 1, bias ← 0.</summary>
    public void reset_parameters()
    {
        if (_weight is not null) nn.init.ones_(_weight);
        if (_bias is not null) nn.init.zeros_(_bias);
    }

    public override Tensor forward(Tensor tensor) => nn.functional.layer_norm(tensor, normalized_shape, _weight, _bias, eps);

    public Parameter? bias
    {
        get => _bias;
        set { _bias = value; ConditionallyRegisterParameter(nameof(bias), value); }
    }

    public Parameter weight
    {
        get => _weight!;
        set { _weight = value; ConditionallyRegisterParameter(nameof(weight), value); }
    }
}
