using static TorchSharp.torch;

namespace TorchSharp.Modules;

/// <summary>The GELU activation as a module (TorchSharp's <c>GELU</c>): y = x·Φ(x), see <c>nn.functional.gelu</c>.</summary>
public sealed class GELU : nn.Module<Tensor, Tensor>
{
    public bool inplace { get; set; }

    internal GELU(bool inplace) : base(nameof(GELU)) { this.inplace = inplace; }

    public override Tensor forward(Tensor tensor) => inplace ? nn.functional.gelu(tensor, inplace: true) : nn.functional.gelu(tensor);
}
