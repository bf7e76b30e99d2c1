namespace TorchSharp;

/// <summary>
/// TorchSharp's dispose scope, as an empty shell. In TorchSharp, <c>using (torch.NewDisposeScope())</c> frees the
/// native memory of every tensor made inside it when it closes, which a training loop needs once per step. MinTorch's
/// tensors live in managed memory and the garbage collector frees them, so the scope and its methods do nothing here;
/// they exist so the chapters are the same source on both engines.
/// </summary>
public sealed class DisposeScope : IDisposable
{
    /// <summary>Keeps <paramref name="disposable"/> alive past this scope (TorchSharp moves it to the outer one).</summary>
    public T MoveToOuter<T>(T disposable) where T : IDisposable => disposable;
    /// <summary>Takes <paramref name="disposable"/> out of every scope (TorchSharp: the caller disposes it).</summary>
    public T Detach<T>(T disposable) where T : IDisposable => disposable;
    public void Dispose() { }
}
