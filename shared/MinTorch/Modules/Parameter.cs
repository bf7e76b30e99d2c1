namespace TorchSharp.Modules;

using Tensor = TorchSharp.torch.Tensor;

/// <summary>
/// A tensor that is a learnable weight of a module (TorchSharp's <c>TorchSharp.Modules.Parameter</c>).
/// </summary>
/// <remarks>
/// <para>A parameter is an ordinary leaf tensor with one extra meaning: when it is stored in a field of
/// a <see cref="torch.nn.Module"/>, <c>RegisterComponents()</c> registers it as a parameter (so it shows
/// up in <c>parameters()</c>, the optimizer and the checkpoint) rather than as a buffer.</para>
/// <para>It shares the storage of the tensor it is made from — no copy — and is always a leaf: whatever
/// graph produced <c>data</c> is forgotten, exactly like <c>nn.Parameter(t)</c> in PyTorch.</para>
/// </remarks>
public class Parameter : Tensor
{
    /// <summary>Wraps <paramref name="data"/> (sharing its storage) as a leaf that requires grad.</summary>
    public Parameter(Tensor data, bool requires_grad = true) : base(data)
    {
        this.requires_grad = requires_grad;
        DetachFromDisposeScope();   // a module's parameter lives as long as the module, past any dispose scope
    }
}
