using System.Reflection;
using TorchSharp.Modules;

namespace TorchSharp;

/// <summary>Names the component a field registers as, instead of the field's own name
/// (TorchSharp's <c>[ComponentName(Name = "weight")]</c> on a private <c>_weight</c> field).</summary>
[AttributeUsage(AttributeTargets.Field)]
public sealed class ComponentNameAttribute : Attribute
{
    public string Name { get; set; } = "";
}

public static partial class torch
{
    public static partial class nn
    {
        /// <summary>
        /// The base class of every layer and model (TorchSharp's <c>torch.nn.Module</c>).
        /// </summary>
        /// <remarks>
        /// <para>A module owns three ordered collections: its <b>parameters</b> (learnable tensors),
        /// its <b>buffers</b> (state that is saved but not learned, such as a causal mask or running
        /// statistics) and its <b>submodules</b>. Everything else — <c>parameters()</c>,
        /// <c>state_dict()</c>, <c>train()</c>, <c>zero_grad()</c> — walks that tree: first the module's own
        /// entries in registration order, then each child's, with names joined by dots
        /// (<c>"h.0.attn.c_attn.weight"</c>). The order is deterministic, which matters: optimizers keep
        /// their state per parameter in that order, and checkpoints list tensors in it.</para>
        /// <para>A model usually declares its parts as fields and calls <see cref="RegisterComponents"/>
        /// at the end of its constructor, which registers them by field name in declaration order.</para>
        /// </remarks>
        public class Module : IDisposable
        {
            /// <summary>The module's type name (for messages), as given to the constructor.</summary>
            protected string name;

            private readonly OrderedDictionary<string, Parameter> _parameters = new();
            private readonly OrderedDictionary<string, Tensor> _buffers = new();
            private readonly HashSet<string> _nonPersistent = new();
            private readonly OrderedDictionary<string, Module> _modules = new();
            private bool _training = true;

            /// <summary>Constructor for custom modules: <paramref name="name"/> is shown in messages.</summary>
            protected Module(string name) { this.name = name; }

            public virtual string GetName() => name;

            // ------------------------------------------------------------ registration

            /// <summary>Registers <paramref name="submodule"/> under <paramref name="name"/> (null removes it).
            /// The child's own fields are registered too, if its constructor did not already.</summary>
            public virtual void register_module(string name, Module submodule)
            {
                if (submodule is null) { _modules.Remove(name); return; }
                CheckName(name, "register_module");
                if (_modules.ContainsKey(name))
                    throw new InvalidOperationException($"register_module: a sub-module named '{name}' is already registered in {this.name}");
                if (ReferenceEquals(submodule, this))
                    throw new InvalidOperationException($"register_module: {this.name} cannot be its own sub-module");
                submodule.RegisterComponents();
                _modules.Add(name, submodule);
            }

            /// <summary>Alias of <see cref="register_module"/>.</summary>
            public void add_module(string name, Module module) => register_module(name, module);

            /// <summary>Registers a learnable tensor under <paramref name="name"/>.</summary>
            public virtual void register_parameter(string name, Parameter param)
            {
                if (param is null) throw new ArgumentNullException(nameof(param), "register_parameter: a null tensor cannot be registered as a parameter");
                CheckName(name, "register_parameter");
                if (_parameters.ContainsKey(name) || _buffers.ContainsKey(name))
                    throw new InvalidOperationException($"register_parameter: '{name}' is already registered in {this.name}");
                _parameters.Add(name, param);
            }

            /// <summary>Registers a non-learnable tensor. A persistent buffer is part of <see cref="state_dict"/>;
            /// a non-persistent one (a cached mask, say) is not.</summary>
            public virtual void register_buffer(string name, Tensor tensor, bool persistent = true)
            {
                if (tensor is null) throw new ArgumentNullException(nameof(tensor), "register_buffer: a null tensor cannot be registered as a buffer");
                CheckName(name, "register_buffer");
                if (_buffers.ContainsKey(name) || _parameters.ContainsKey(name))
                    throw new InvalidOperationException($"register_buffer: '{name}' is already registered in {this.name}");
                _buffers.Add(name, tensor.DetachFromDisposeScope());   // lives as long as the module
                if (!persistent) _nonPersistent.Add(name);
            }

            private static void CheckName(string name, string op)
            {
                if (string.IsNullOrEmpty(name)) throw new ArgumentException($"{op}: the name cannot be empty");
                if (name.Contains('.')) throw new ArgumentException($"{op}: the name cannot contain \".\", got '{name}'");
            }

            /// <summary>Registers (or replaces, or with null removes) a parameter: what a layer's <c>weight</c>
            /// property setter uses.</summary>
            protected void ConditionallyRegisterParameter(string name, Tensor? value)
            {
                if (value is null) { _parameters.Remove(name); return; }
                _parameters[name] = value as Parameter ?? new Parameter(value, requires_grad: true);
            }

            /// <summary>Registers (or replaces, or with null removes) a buffer.</summary>
            protected void ConditionallyRegisterBuffer(string name, Tensor? value)
            {
                if (value is null) { _buffers.Remove(name); _nonPersistent.Remove(name); return; }
                _buffers[name] = value;
            }

            /// <summary>Drops every registered sub-module (containers use it to re-register theirs).</summary>
            protected void ClearModules() => _modules.Clear();

            /// <summary>
            /// Registers the instance fields of the derived classes, in declaration order (base classes
            /// first): a <see cref="Module"/> field becomes a sub-module, a <see cref="Parameter"/> field a
            /// parameter, any other <see cref="Tensor"/> field a buffer — each named after its field
            /// (or its <see cref="ComponentNameAttribute"/>; an auto-property's backing field is named after
            /// the property). Null fields and names already registered are skipped, so calling it twice is
            /// harmless. Call it at the end of your constructor.
            /// </summary>
            protected virtual void RegisterComponents()
            {
                foreach (var field in ComponentFields(GetType()))
                {
                    var value = field.GetValue(this);
                    if (value is null || ReferenceEquals(value, this)) continue;
                    var fieldName = ComponentName(field);
                    if (_modules.ContainsKey(fieldName) || _parameters.ContainsKey(fieldName) || _buffers.ContainsKey(fieldName)) continue;
                    switch (value)
                    {
                        case Module module: register_module(fieldName, module); break;
                        case Parameter param: register_parameter(fieldName, param); break; // before Tensor: a Parameter is a Tensor
                        case Tensor tensor: register_buffer(fieldName, tensor); break;
                    }
                }
            }

            /// <summary>Instance fields declared below <see cref="Module"/>, base classes first, each class's
            /// fields in declaration order (metadata order).</summary>
            private static IEnumerable<FieldInfo> ComponentFields(Type type)
            {
                var chain = new List<Type>();
                for (var t = type; t is not null && t != typeof(Module); t = t.BaseType) chain.Add(t);
                chain.Reverse();
                const BindingFlags flags = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;
                return chain.SelectMany(t => t.GetFields(flags).OrderBy(f => f.MetadataToken));
            }

            private static string ComponentName(FieldInfo field)
            {
                var attr = field.GetCustomAttribute<ComponentNameAttribute>();
                if (attr is not null && attr.Name.Length > 0) return attr.Name;
                var n = field.Name;
                // `public Linear fc { get; }` is stored in a field called "<fc>k__BackingField".
                if (n.StartsWith('<') && n.EndsWith(">k__BackingField", StringComparison.Ordinal)) return n[1..n.IndexOf('>')];
                return n;
            }

            // ------------------------------------------------------------ walking the tree

            /// <summary>The parameters with their dotted names: this module's own first, then each
            /// sub-module's, recursively. A tensor shared by two modules (tied weights) appears once,
            /// under the first name that reaches it.</summary>
            public virtual IEnumerable<(string name, Parameter parameter)> named_parameters(bool recurse = true)
            {
                var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
                foreach (var (n, p) in NamedParametersAll(recurse, ""))
                    if (seen.Add(p)) yield return (n, p);
            }

            private IEnumerable<(string, Parameter)> NamedParametersAll(bool recurse, string prefix)
            {
                foreach (var kv in _parameters) yield return (prefix + kv.Key, kv.Value);
                if (!recurse) yield break;
                foreach (var kv in _modules)
                    foreach (var item in kv.Value.NamedParametersAll(true, prefix + kv.Key + "."))
                        yield return item;
            }

            /// <summary>The parameters in the order of <see cref="named_parameters"/>.</summary>
            public virtual IEnumerable<Parameter> parameters(bool recurse = true) => named_parameters(recurse).Select(np => np.parameter);

            /// <summary>The buffers with their dotted names (shared tensors once), persistent or not.</summary>
            public virtual IEnumerable<(string name, Tensor buffer)> named_buffers(bool recurse = true, bool include_nonpersistent = true)
            {
                var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
                foreach (var (n, b, persistent) in NamedBuffersAll(recurse, ""))
                    if ((persistent || include_nonpersistent) && seen.Add(b)) yield return (n, b);
            }

            private IEnumerable<(string, Tensor, bool)> NamedBuffersAll(bool recurse, string prefix)
            {
                foreach (var kv in _buffers) yield return (prefix + kv.Key, kv.Value, !_nonPersistent.Contains(kv.Key));
                if (!recurse) yield break;
                foreach (var kv in _modules)
                    foreach (var item in kv.Value.NamedBuffersAll(true, prefix + kv.Key + "."))
                        yield return item;
            }

            public virtual IEnumerable<Tensor> buffers(bool recurse = true, bool include_nonpersistent = true) =>
                named_buffers(recurse, include_nonpersistent).Select(nb => nb.buffer);

            /// <summary>The direct sub-modules, in registration order.</summary>
            public virtual IEnumerable<(string name, Module module)> named_children()
            {
                foreach (var kv in _modules) yield return (kv.Key, kv.Value);
            }

            public virtual IEnumerable<Module> children() => named_children().Select(nc => nc.module);

            /// <summary>Every descendant with its dotted name: the children first, then each child's
            /// descendants (TorchSharp's order; the module itself is not included).</summary>
            public virtual IEnumerable<(string name, Module module)> named_modules()
            {
                foreach (var kv in _modules) yield return (kv.Key, kv.Value);
                foreach (var kv in _modules)
                    foreach (var (n, m) in kv.Value.named_modules())
                        yield return ($"{kv.Key}.{n}", m);
            }

            public virtual IEnumerable<Module> modules() => named_modules().Select(nm => nm.module);

            /// <summary>Applies <paramref name="fn"/> to every sub-module (depth first) and then to this one.</summary>
            public virtual Module apply(Action<Module> fn)
            {
                foreach (var kv in _modules) kv.Value.apply(fn);
                fn(this);
                return this;
            }

            /// <summary>The parameter with this dotted name, or null.</summary>
            public virtual Parameter? get_parameter(string target) =>
                named_parameters().Where(np => np.name == target).Select(np => np.parameter).FirstOrDefault();

            /// <summary>The buffer with this dotted name, or null.</summary>
            public virtual Tensor? get_buffer(string target) =>
                named_buffers().Where(nb => nb.name == target).Select(nb => nb.buffer).FirstOrDefault();

            public virtual bool has_parameter(string target) => get_parameter(target) is not null;
            public virtual bool has_buffer(string target) => get_buffer(target) is not null;

            // ------------------------------------------------------------ modes and gradients

            /// <summary>Whether the module is in training mode (dropout active) or evaluation mode.</summary>
            public virtual bool training => _training;

            /// <summary>Sets training mode on this module and every descendant.</summary>
            public virtual void train(bool train = true)
            {
                _training = train;
                foreach (var kv in _modules) kv.Value.train(train);
            }

            /// <summary>Evaluation mode: <c>train(false)</c>.</summary>
            public virtual void eval() => train(false);

            /// <summary>Clears every parameter's gradient: sets it to null (PyTorch's default,
            /// <c>set_to_none</c>), or with <paramref name="set_to_none"/> false fills it with zeros.</summary>
            public virtual void zero_grad(bool set_to_none = true)
            {
                foreach (var p in parameters())
                {
                    if (p.grad is null) continue;
                    if (set_to_none) p.grad = null;
                    else Array.Clear(p.grad._storage, 0, p.grad._numel);
                }
            }

            // ------------------------------------------------------------ checkpoints

            /// <summary>
            /// Every parameter and persistent buffer by dotted name: this module's own entries (parameters,
            /// then buffers), then each child's, recursively — PyTorch's order. The values are the module's
            /// own tensors (not copies), as in TorchSharp. Tied tensors appear under every name.
            /// </summary>
            public virtual Dictionary<string, Tensor> state_dict(Dictionary<string, Tensor>? destination = null, string? prefix = null)
            {
                destination ??= new Dictionary<string, Tensor>();
                string pre = string.IsNullOrEmpty(prefix) ? "" : prefix + ".";
                foreach (var kv in _parameters) destination.TryAdd(pre + kv.Key, kv.Value);
                foreach (var kv in _buffers)
                    if (!_nonPersistent.Contains(kv.Key)) destination.TryAdd(pre + kv.Key, kv.Value);
                foreach (var kv in _modules) kv.Value.state_dict(destination, pre + kv.Key);
                return destination;
            }

            /// <summary>
            /// Copies the tensors of <paramref name="source"/> into this module's parameters and buffers, in
            /// place (so optimizers holding the parameters keep working). With <paramref name="strict"/>, a key
            /// the module lacks or a key the source lacks is an error that lists them. A shape mismatch is
            /// always an error naming the key and both shapes. Values are converted to the parameter's dtype.
            /// Keys in <paramref name="skip"/> are ignored.
            /// </summary>
            /// <returns>The keys the source lacked and the keys the module lacked (TorchSharp's tuple names).</returns>
            public virtual (IList<string> missing_keys, IList<string> unexpected_keyes) load_state_dict(
                Dictionary<string, Tensor> source, bool strict = true, IList<string>? skip = null)
            {
                skip ??= Array.Empty<string>();
                var destination = state_dict();
                var missing = destination.Keys.Where(k => !skip.Contains(k) && !source.ContainsKey(k)).ToList();
                var unexpected = source.Keys.Where(k => !skip.Contains(k) && !destination.ContainsKey(k)).ToList();
                var errors = new List<string>();
                if (strict && missing.Count > 0)
                    errors.Add("missing key(s) in state_dict: " + string.Join(", ", missing.Select(k => $"\"{k}\"")));
                if (strict && unexpected.Count > 0)
                    errors.Add("unexpected key(s) in state_dict: " + string.Join(", ", unexpected.Select(k => $"\"{k}\"")));
                foreach (var (key, src) in source)
                {
                    if (skip.Contains(key) || !destination.TryGetValue(key, out var dst)) continue;
                    if (!Shapes.Equal(src._shape, dst._shape))
                        errors.Add($"size mismatch for {key}: copying a tensor with shape {src.ShapeString} from the checkpoint, " +
                                   $"the shape in the current model is {dst.ShapeString}");
                }
                if (errors.Count > 0)
                    throw new InvalidOperationException($"load_state_dict: error(s) in loading state_dict for {name}: " + string.Join("; ", errors));

                using (no_grad())
                    foreach (var (key, src) in source)
                        if (!skip.Contains(key) && destination.TryGetValue(key, out var dst) && !ReferenceEquals(src, dst))
                            dst.copy_(src);
                return (missing, unexpected);
            }

            // ------------------------------------------------------------ dtype and device

            /// <summary>Converts every parameter and buffer to <paramref name="dtype"/> in place (the tensor
            /// objects stay the same, so references held elsewhere see the change). Gradients are dropped.</summary>
            internal void ConvertTo(ScalarType dtype)
            {
                foreach (var t in parameters().Cast<Tensor>().Concat(buffers()))
                {
                    if (t._dtype == dtype || !t.IsFloat) continue;
                    Tensor converted;
                    using (no_grad()) converted = t.detach().to_type(dtype);
                    t.ShareStorage(converted);
                    t._dtype = dtype;
                    t.grad = null;
                }
            }

            // ------------------------------------------------------------ disposal

            /// <summary>Tensors are garbage collected; Dispose exists for TorchSharp compatibility.</summary>
            public void Dispose() { Dispose(true); GC.SuppressFinalize(this); }

            protected virtual void Dispose(bool disposing)
            {
                if (!disposing) return;
                foreach (var kv in _modules) kv.Value.Dispose();
            }

            public override string ToString() => name;
        }

        /// <summary>A module whose forward takes one argument (TorchSharp's <c>IModule&lt;T, TResult&gt;</c>).</summary>
        public interface IModule<T, TResult>
        {
            TResult call(T input1);
        }

        /// <summary>A module whose forward takes two arguments.</summary>
        public interface IModule<T1, T2, TResult>
        {
            TResult call(T1 input1, T2 input2);
        }

        /// <summary>A module with a one-argument <c>forward</c>: derive from it and override <c>forward</c>.</summary>
        public abstract class Module<T, TResult> : Module, IModule<T, TResult>
        {
            protected Module(string name) : base(name) { }

            /// <summary>The computation of the module.</summary>
            public abstract TResult forward(T input);

            /// <summary>Runs the module: <c>model.call(x)</c> (TorchSharp's spelling of PyTorch's <c>model(x)</c>).</summary>
            public virtual TResult call(T input) => forward(input);
        }

        /// <summary>A module with a two-argument <c>forward</c>.</summary>
        public abstract class Module<T1, T2, TResult> : Module, IModule<T1, T2, TResult>
        {
            protected Module(string name) : base(name) { }

            public abstract TResult forward(T1 input1, T2 input2);

            public virtual TResult call(T1 input1, T2 input2) => forward(input1, input2);
        }
    }
}

/// <summary>TorchSharp's extension methods for moving and converting modules.</summary>
public static class ModuleExtensionMethods
{
    /// <summary>Converts the module's floating-point parameters and buffers to <paramref name="type"/>, in place.</summary>
    public static T to<T>(this T module, ScalarType type) where T : torch.nn.Module
    {
        module.ConvertTo(type);
        return module;
    }

    /// <summary>Moves the module to <paramref name="device"/>: MinTorch computes on the CPU only, so CUDA is refused.</summary>
    public static T to<T>(this T module, Device device) where T : torch.nn.Module
    {
        torch.CheckDevice(device);
        return module;
    }

    public static T to<T>(this T module, Device device, ScalarType type) where T : torch.nn.Module => module.to(device).to(type);
    public static T cpu<T>(this T module) where T : torch.nn.Module => module;
    public static T cuda<T>(this T module) where T : torch.nn.Module => throw torch.cuda.NotAvailable();
}
