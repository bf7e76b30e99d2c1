namespace TorchSharp;

using Tensor = torch.Tensor;

/// <summary>
/// Reverse-mode automatic differentiation.
/// </summary>
/// <remarks>
/// <para>Every differentiable op calls <see cref="Record(Tensor, string, Tensor, Func{Tensor, Tensor})"/>
/// with its result, its inputs and, for each input, a function that maps the gradient of the
/// result (∂L/∂y) to the gradient of that input (∂L/∂x = ∂L/∂y · ∂y/∂x). Nothing is recorded when grad
/// mode is off or when no input requires grad, so inference pays nothing.</para>
/// <para>Those backward functions are written with ordinary tensor ops. That is what makes double
/// backward work: with <c>create_graph: true</c> the backward pass runs with grad mode on, so the
/// gradients it produces are themselves recorded and can be differentiated again — TRPO's
/// Fisher-vector product ∇(∇KL · v) needs exactly this.</para>
/// </remarks>
public static class Autograd
{
    /// <summary>One recorded op: y = op(inputs), and how to send ∂L/∂y back to each input.</summary>
    public sealed class Node
    {
        public string Name { get; }
        internal readonly Tensor[] Inputs;
        internal readonly Func<Tensor, Tensor>?[] Backward;

        internal long Serial;   // its place in recording order (GraphLedger, in Storage.cs)
        internal bool Done;     // a backward pass without retain_graph has been through it

        internal Node(string name, Tensor[] inputs, Func<Tensor, Tensor>?[] backward)
        {
            Name = name; Inputs = inputs; Backward = backward;
        }
    }

    [ThreadStatic] private static int _gradDisabledDepth;
    [ThreadStatic] private static bool _gradForcedOn;

    internal static bool GradEnabled => _gradForcedOn || _gradDisabledDepth == 0;

    internal sealed class GradMode : IDisposable
    {
        private readonly int _savedDepth;
        private readonly bool _savedForced;
        private bool _disposed;
        public GradMode(bool enabled)
        {
            _savedDepth = _gradDisabledDepth; _savedForced = _gradForcedOn;
            if (enabled) { _gradForcedOn = true; } else { _gradDisabledDepth++; _gradForcedOn = false; }
        }
        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            _gradDisabledDepth = _savedDepth; _gradForcedOn = _savedForced;
        }
    }

    // ------------------------------------------------------------------ recording

    /// <summary>Records a one-input op.</summary>
    public static Tensor Record(Tensor result, string name, Tensor a, Func<Tensor, Tensor> da)
    {
        if (!GradEnabled || !a.requires_grad) return result;
        return Attach(result, new Node(name, [a], [da]));
    }

    /// <summary>Records a two-input op; a backward function is only called for an input that requires grad.</summary>
    public static Tensor Record(Tensor result, string name, Tensor a, Tensor b, Func<Tensor, Tensor> da, Func<Tensor, Tensor> db)
    {
        if (!GradEnabled || !(a.requires_grad || b.requires_grad)) return result;
        return Attach(result, new Node(name, [a, b], [a.requires_grad ? da : null, b.requires_grad ? db : null]));
    }

    /// <summary>Records an op with any number of inputs.</summary>
    public static Tensor Record(Tensor result, string name, Tensor[] inputs, Func<Tensor, Tensor>?[] backward)
    {
        if (!GradEnabled) return result;
        bool any = false;
        var fns = new Func<Tensor, Tensor>?[inputs.Length];
        for (int i = 0; i < inputs.Length; i++)
            if (inputs[i].requires_grad) { any = true; fns[i] = backward[i]; }
        if (!any) return result;
        return Attach(result, new Node(name, inputs, fns));
    }

    private static Tensor Attach(Tensor result, Node node)
    {
        if (!result.IsFloat)
            return result; // integer and bool results (argmax, comparisons) carry no gradient
        GraphLedger.Recorded(node);
        result.grad_fn = node;
        result.SetRequiresGradUnchecked(true);
        return result;
    }

    // ------------------------------------------------------------------ the backward pass

    /// <summary><c>loss.backward()</c>: accumulate ∂root/∂leaf into each leaf's <c>.grad</c>.</summary>
    internal static void Backward(Tensor root, Tensor? gradient, bool retain_graph, bool create_graph)
    {
        if (!root.requires_grad)
            throw new InvalidOperationException(
                $"backward: the tensor (shape {root.ShapeString}) does not require grad and has no grad_fn — " +
                "nothing it was computed from requires grad (did you compute it under torch.no_grad(), or detach() it?)");
        var seed = SeedGradient(root, gradient, "backward");
        Run([root], [seed], retain_graph, create_graph, inputs: null);
    }

    /// <summary><c>torch.autograd.grad</c>: the gradients of <paramref name="outputs"/> with respect to
    /// <paramref name="inputs"/>, returned rather than accumulated into <c>.grad</c>.</summary>
    internal static IList<Tensor> Grad(IList<Tensor> outputs, IList<Tensor> inputs, IList<Tensor>? grad_outputs,
        bool retain_graph, bool create_graph, bool allow_unused)
    {
        var seeds = new Tensor[outputs.Count];
        for (int i = 0; i < outputs.Count; i++)
        {
            if (!outputs[i].requires_grad)
                throw new InvalidOperationException($"autograd.grad: output {i} (shape {outputs[i].ShapeString}) does not require grad and has no grad_fn");
            seeds[i] = SeedGradient(outputs[i], grad_outputs?[i], "autograd.grad");
        }
        foreach (var x in inputs)
            if (!x.requires_grad)
                throw new InvalidOperationException($"autograd.grad: an input (shape {x.ShapeString}) does not require grad");
        var found = Run([.. outputs], seeds, retain_graph, create_graph, inputs);
        var result = new Tensor[inputs.Count];
        for (int i = 0; i < inputs.Count; i++)
        {
            if (found!.TryGetValue(inputs[i], out var g)) result[i] = g;
            else if (allow_unused) result[i] = null!;
            else throw new InvalidOperationException(
                $"autograd.grad: input {i} (shape {inputs[i].ShapeString}) was not used to compute the outputs; pass allow_unused: true if that is intended");
        }
        return result;
    }

    private static Tensor SeedGradient(Tensor root, Tensor? gradient, string op)
    {
        if (gradient is null)
        {
            if (root.numel() != 1)
                throw new InvalidOperationException(
                    $"{op}: grad can be implicitly created only for scalar outputs, but the output has shape {root.ShapeString}; " +
                    "reduce it to a scalar (e.g. .sum() or .mean()) or pass a gradient of the same shape");
            return torch.ones_like(root);
        }
        if (!Shapes.Equal(gradient._shape, root._shape))
            throw new ArgumentException($"{op}: the gradient has shape {gradient.ShapeString} but the output has shape {root.ShapeString}");
        return gradient;
    }

    /// <summary>
    /// The engine. Orders the graph so that every tensor comes after the tensors computed from it
    /// (reverse topological order), then hands each tensor's total gradient to its node's backward
    /// functions and sums what they return into the inputs' gradients.
    /// </summary>
    /// <remarks>The <c>memory?.</c> calls only hand storage back for reuse (<see cref="PassMemory"/> in Storage.cs):
    /// a node's temporaries when the node is done, a gradient once nothing needs it. Without
    /// <paramref name="retain_graph"/> each node is marked done, as PyTorch frees what it saved.</remarks>
    private static Dictionary<Tensor, Tensor>? Run(Tensor[] roots, Tensor[] seeds, bool retain_graph, bool create_graph,
        IList<Tensor>? inputs)
    {
        var order = TopologicalOrder(roots);
        var grads = new Dictionary<Tensor, Tensor>(ReferenceEqualityComparer.Instance);
        using var memory = create_graph ? null : new PassMemory();    // with create_graph every tensor is kept
        for (int i = 0; i < roots.Length; i++) Accumulate(grads, null, memory, roots[i], seeds[i]);
        // Sums this pass created and has not handed to a backward function yet: nothing else can see them,
        // so a third (fourth, ...) contribution is added into them in place. Not with create_graph, where
        // every sum must be recorded.
        var owned = create_graph ? null : new HashSet<Tensor>(ReferenceEqualityComparer.Instance);

        var wanted = inputs is null ? null : new HashSet<Tensor>(inputs, ReferenceEqualityComparer.Instance);
        var found = inputs is null ? null : new Dictionary<Tensor, Tensor>(ReferenceEqualityComparer.Instance);

        using var mode = new GradMode(create_graph);
        for (int k = order.Count - 1; k >= 0; k--)
        {
            var t = order[k];
            if (!grads.Remove(t, out var g)) continue; // nothing flowed here
            owned?.Remove(g);
            if (wanted is not null && wanted.Contains(t)) found![t] = memory?.Give(g) ?? g;
            var node = t.grad_fn;
            if (node is null)
            {
                if (wanted is null && t.requires_grad) AccumulateLeaf(t, g, create_graph);
            }
            else
            {
                var gxs = new Tensor?[node.Inputs.Length];
                using (memory?.NodeTemporaries())
                {
                    for (int i = 0; i < node.Inputs.Length; i++)
                    {
                        var fn = node.Backward[i];
                        if (fn is null) continue;
                        var x = node.Inputs[i];
                        var gx = fn(g);
                        if (!Shapes.Equal(gx._shape, x._shape))
                            throw new InvalidOperationException(
                                $"internal: backward of {node.Name} returned a gradient of shape {gx.ShapeString} " +
                                $"for an input of shape {x.ShapeString}");
                        if (gx._dtype != x._dtype) gx = gx.to_type(x._dtype);
                        gxs[i] = memory?.Keep(gx) ?? gx;
                    }
                }
                for (int i = 0; i < gxs.Length; i++)
                    if (gxs[i] is Tensor gx) Accumulate(grads, owned, memory, node.Inputs[i], gx);
                if (!retain_graph) GraphLedger.Done(node);
            }
            memory?.LetGo(g);
        }
        return found;
    }

    /// <summary>grads[t] += g: the first contribution is kept as it is, the second makes a new sum, later ones
    /// are added into that sum in place when this pass owns it (<paramref name="owned"/>).</summary>
    private static void Accumulate(Dictionary<Tensor, Tensor> grads, HashSet<Tensor>? owned, PassMemory? memory,
        Tensor t, Tensor g)
    {
        if (!grads.TryGetValue(t, out var existing))
        {
            grads[t] = memory?.Hold(g) ?? g;
            return;
        }
        if (owned is not null && owned.Contains(existing) && existing._dtype == g._dtype && Shapes.Equal(existing._shape, g._shape))
        {
            AddInto(existing, g);
            memory?.Used(g);
            return;
        }
        var sum = existing + g;
        grads[t] = memory?.Hold(sum) ?? sum;
        owned?.Add(sum);
        memory?.LetGo(existing);
        memory?.Used(g);
    }

    /// <summary>acc += g elementwise (same shape and float dtype); chunks are independent, so any split gives the same bits.</summary>
    private static void AddInto(Tensor acc, Tensor g)
    {
        int n = acc._numel;
        if (acc._dtype == ScalarType.Float32)
        {
            var a = acc.Arr<float>(); var b = g.Arr<float>();
            Par.For(n, 1 << 16, (s, e) => System.Numerics.Tensors.TensorPrimitives.Add(a.AsSpan(s, e - s), b.AsSpan(s, e - s), a.AsSpan(s, e - s)));
        }
        else
        {
            var a = acc.Arr<double>(); var b = g.Arr<double>();
            Par.For(n, 1 << 15, (s, e) => System.Numerics.Tensors.TensorPrimitives.Add(a.AsSpan(s, e - s), b.AsSpan(s, e - s), a.AsSpan(s, e - s)));
        }
    }

    private static void AccumulateLeaf(Tensor leaf, Tensor g, bool create_graph)
    {
        if (leaf.grad is null)
        {
            // A backward function may return its incoming gradient object itself (add, clone, ...), so the
            // same storage could reach two leaves; each .grad gets its own copy, so in-place edits such as
            // clip_grad_norm_ touch one parameter only.
            if (create_graph) { leaf.grad = g; return; }
            var copy = Tensor.Empty(g._shape, g._dtype, pooled: false);  // outlives the pass and its scopes
            Array.Copy(g._storage, copy._storage, g._numel);
            leaf.grad = copy;
        }
        else if (create_graph || leaf.grad._dtype != g._dtype || !Shapes.Equal(leaf.grad._shape, g._shape))
        {
            leaf.grad = create_graph ? leaf.grad + g : (leaf.grad.detach() + g).detach();
        }
        else
        {
            var sum = Tensor.Empty(g._shape, g._dtype, pooled: false);     // a new .grad: old one + g
            Array.Copy(leaf.grad._storage, sum._storage, g._numel);
            AddInto(sum, g);
            leaf.grad = sum;
        }
    }

    /// <summary>Depth-first post-order over the graph: each tensor appears after all of its inputs.</summary>
    private static List<Tensor> TopologicalOrder(Tensor[] roots)
    {
        var order = new List<Tensor>();
        var visited = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<(Tensor t, int next)>();
        foreach (var root in roots)
        {
            if (!visited.Add(root)) continue;
            stack.Push((root, 0));
            while (stack.Count > 0)
            {
                var (t, next) = stack.Pop();
                if (t.grad_fn is { Done: true } done)
                    throw new InvalidOperationException(
                        $"backward: trying to go back through the graph a second time (through {done.Name}, shape " +
                        $"{t.ShapeString}): a backward pass frees what the graph saved. Pass retain_graph: true to " +
                        "the first backward() or autograd.grad() if you need to go through it again");
                var inputs = t.grad_fn?.Inputs;
                if (inputs is not null && next < inputs.Length)
                {
                    stack.Push((t, next + 1));
                    var child = inputs[next];
                    if (t.grad_fn!.Backward[next] is not null && visited.Add(child)) stack.Push((child, 0));
                }
                else order.Add(t);
            }
        }
        return order;
    }
}
