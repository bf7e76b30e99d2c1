using System.Collections;
using static TorchSharp.torch;

namespace TorchSharp.Modules;

/// <summary>
/// A list of sub-modules that registers them under their indices "0", "1", ... (TorchSharp's
/// <c>ModuleList&lt;T&gt;</c>), so a model holding a stack of blocks gets parameter names such as
/// <c>"h.0.attn.c_attn.weight"</c>.
/// </summary>
/// <remarks>Registration follows the list: adding, inserting or removing re-registers the children so
/// their names always equal their positions.</remarks>
public class ModuleList<T> : nn.Module, IList<T> where T : nn.Module
{
    private readonly List<T> _list = new();

    public ModuleList(params T[] modules) : base(nameof(ModuleList<T>))
    {
        if (modules is not null) _list.AddRange(modules);
        Sync();
    }

    /// <summary>Re-registers the children as "0", "1", ... in list order.</summary>
    private void Sync()
    {
        ClearModules();
        for (int i = 0; i < _list.Count; i++) register_module(i.ToString(System.Globalization.CultureInfo.InvariantCulture), _list[i]);
    }

    protected override void RegisterComponents() { } // the children are registered by Sync

    public T this[int index]
    {
        get => _list[index];
        set { _list[index] = value; Sync(); }
    }

    public int Count => _list.Count;
    public bool IsReadOnly => false;

    public void Add(T item) { _list.Add(item); Sync(); }

    /// <summary>Appends modules to the end of the list.</summary>
    public void append(params T[] modules) { _list.AddRange(modules); Sync(); }

    /// <summary>Appends modules from an enumeration to the end of the list.</summary>
    public void extend(IEnumerable<T> modules) { _list.AddRange(modules); Sync(); }

    public void Clear() { _list.Clear(); Sync(); }
    public bool Contains(T item) => _list.Contains(item);
    public void CopyTo(T[] array, int arrayIndex) => _list.CopyTo(array, arrayIndex);
    public int IndexOf(T item) => _list.IndexOf(item);
    public void Insert(int index, T item) { _list.Insert(index, item); Sync(); }
    public bool Remove(T item) { bool removed = _list.Remove(item); if (removed) Sync(); return removed; }
    public void RemoveAt(int index) { _list.RemoveAt(index); Sync(); }
    public IEnumerator<T> GetEnumerator() => _list.GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>
/// Runs its modules one after another, each on the previous one's output (TorchSharp's
/// <c>Sequential</c>). Children are named by their given names, or "0", "1", ... .
/// </summary>
public class Sequential : nn.Module<Tensor, Tensor>
{
    private readonly List<nn.Module<Tensor, Tensor>> _list = new();

    public Sequential(params (string name, nn.Module<Tensor, Tensor> submodule)[] modules) : base(nameof(Sequential))
    {
        foreach (var (n, m) in modules) Add(n, m);
    }

    public Sequential(params nn.Module<Tensor, Tensor>[] modules) : base(nameof(Sequential))
    {
        foreach (var m in modules) append(m);
    }

    private void Add(string name, nn.Module<Tensor, Tensor> module)
    {
        register_module(name, module);
        _list.Add(module);
    }

    /// <summary>Appends a module, named after its position.</summary>
    public void append(nn.Module<Tensor, Tensor> module) => Add(_list.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), module);

    /// <summary>Appends a module under <paramref name="name"/>.</summary>
    public void append(string name, nn.Module<Tensor, Tensor> module) => Add(name, module);

    protected override void RegisterComponents() { }

    public int Count => _list.Count;
    public nn.Module<Tensor, Tensor> this[int index] => _list[index];

    /// <summary>y = mₙ(…m₂(m₁(x))).</summary>
    public override Tensor forward(Tensor input)
    {
        var x = input;
        foreach (var m in _list) x = m.call(x);
        return x;
    }
}
