namespace TorchSharp;

using Tensor = torch.Tensor;

/// <summary>
/// TorchSharp's dispose scope: <c>using (torch.NewDisposeScope())</c> disposes, when it closes, every tensor made
/// while it was the innermost open scope on this thread, except those moved out
/// (<see cref="Tensor.MoveToOuterDisposeScope"/>) or detached (<see cref="Tensor.DetachFromDisposeScope"/>).
/// </summary>
/// <remarks>
/// In TorchSharp this frees native memory, and a training loop needs it once per step. In MinTorch it hands the
/// large float tensors' storage back to the pool (<c>Storage.cs</c>), so the next step reuses memory that is still
/// in cache instead of asking the garbage collector for more. Only those tensors join a scope: the others are
/// managed arrays that the garbage collector frees, so disposing them would change nothing.
/// </remarks>
public sealed class DisposeScope : IDisposable
{
    [ThreadStatic] private static DisposeScope? _current;

    /// <summary>The innermost open scope on this thread, or null.</summary>
    internal static DisposeScope? Current => _current;

    /// <summary>The scope that was innermost when this one opened.</summary>
    internal DisposeScope? Outer { get; }

    private readonly List<Tensor> _tensors = [];
    private bool _disposed;

    internal DisposeScope()
    {
        Outer = _current;
        _current = this;
    }

    internal void Add(Tensor t)
    {
        t.Scope = this;
        _tensors.Add(t);
    }

    /// <summary>Keeps <paramref name="disposable"/> alive past this scope (it joins the next one out).</summary>
    public T MoveToOuter<T>(T disposable) where T : IDisposable
    {
        if (disposable is Tensor t && t.Scope == this) t.MoveToOuterDisposeScope();
        return disposable;
    }

    /// <summary>Takes <paramref name="disposable"/> out of every scope (the caller disposes it).</summary>
    public T Detach<T>(T disposable) where T : IDisposable
    {
        if (disposable is Tensor t && t.Scope == this) t.DetachFromDisposeScope();
        return disposable;
    }

    /// <summary>Disposes the tensors still in this scope and closes it.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        // Scopes close innermost first; one left open inside this one (a missing using) closes with it.
        for (var s = _current; s is not null && s != this; s = s.Outer)
            if (s.Outer == this) { s.Dispose(); break; }
        if (_current == this) _current = Outer;
        foreach (var t in _tensors)
            if (t.Scope == this) t.Dispose();   // a tensor moved out or detached has another scope, or none
        _tensors.Clear();
    }
}
