using static TorchSharp.torch;

namespace TorchSharp.Modules;

/// <summary>
/// A fully connected layer y = x·Wᵀ + b (TorchSharp's <c>Linear</c>), with W of shape [out, in].
/// </summary>
/// <remarks>
/// Initialised as PyTorch does: W and b ~ U(−1/√in, 1/√in) (<c>kaiming_uniform_</c> with a = √5 reduces
/// to that bound), drawn from the default generator — weight first, then bias.
/// </remarks>
public sealed class Linear : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = nameof(weight))] private Parameter? _weight;
    [ComponentName(Name = nameof(bias))] private Parameter? _bias;

    public long in_features { get; set; }
    public long out_features { get; set; }

    internal Linear(long inputSize, long outputSize, bool hasBias = true, Device? device = null, ScalarType? dtype = null) : base(nameof(Linear))
    {
        CheckDevice(device);
        if (inputSize < 0 || outputSize < 0) throw new ArgumentException($"Linear: sizes must be non-negative, got in {inputSize}, out {outputSize}");
        in_features = inputSize;
        out_features = outputSize;
        weight = new Parameter(empty(outputSize, inputSize, dtype));
        if (hasBias) bias = new Parameter(empty(outputSize, dtype));
        reset_parameters();
    }

    internal Linear(Parameter weight, Parameter? bias = null) : base(nameof(Linear))
    {
        if (weight.Rank != 2) throw new ArgumentException($"Linear: the weight must be 2-D [out, in], got shape {weight.ShapeString}");
        in_features = weight._shape[1];
        out_features = weight._shape[0];
        this.weight = weight;
        if (bias is not null) this.bias = bias;
    }

    /// <summary>Redraws W and b from U(−1/√in, 1/√in).</summary>
    public void reset_parameters()
    {
        nn.init.kaiming_uniform_(weight, a: Math.Sqrt(5));
        if (_bias is not null)
        {
            var (fanIn, _) = nn.init.CalculateFanInAndFanOut(weight);
            double bound = fanIn > 0 ? 1 / Math.Sqrt(fanIn) : 0;
            nn.init.uniform_(_bias, -bound, bound);
        }
    }

    /// <summary>y = x·Wᵀ + b over the last dimension of x.</summary>
    public override Tensor forward(Tensor tensor) => nn.functional.linear(tensor, weight, _bias);

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
