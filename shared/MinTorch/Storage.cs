using System.Runtime.CompilerServices;

namespace TorchSharp;

/// <summary>
/// A pooled storage array and the number of tensors that still hold it.
/// </summary>
/// <remarks>
/// <para>Why a pool: a training step allocates a few hundred MB of activations and gradients, each a fresh managed
/// array. The garbage collector then copies the arrays that are still alive (a step's activations live until its
/// backward pass) and hands freed memory back to the operating system, so the next step pays page faults to touch
/// it again: at the generic train M benchmark that was 40% of the step and a third of the CPU time in the kernel.
/// libtorch frees a tensor's memory the moment its last reference goes, and its allocator reuses it while it is
/// still in cache. MinTorch does the same for the tensors whose end it knows:</para>
/// <list type="bullet">
/// <item>a tensor disposed by its dispose scope (or by <c>Dispose()</c>), once every tensor sharing its storage
/// (views, <c>detach()</c>) has been disposed too;</item>
/// <item>the gradients and temporaries of a backward pass, once the pass has used them.</item>
/// </list>
/// <para>One more condition keeps a recorded graph correct: a backward function may have captured the storage (a
/// saved input, mask or output). A storage goes back to the pool only when no op recorded after it was allocated is
/// still waiting for its backward pass (<see cref="Autograd.NothingRecordedSince"/>); a backward pass without
/// <c>retain_graph</c> marks the ops it has been through as done, as PyTorch frees their saved tensors. Everything
/// else (tensors never disposed, small tensors, integer tensors) is left to the garbage collector as before.</para>
/// <para>Arrays come back out of the pool with old contents; <c>Tensor.Empty</c> never promised zeros and
/// <c>Tensor.Zeros</c> clears them. Which array a tensor gets never changes a result, so results stay bit-identical
/// on any thread count.</para>
/// </remarks>
internal sealed class Storage
{
    internal readonly Array Data;
    internal readonly long Birth;       // Autograd's record count when the array was handed out
    internal int Handles;               // tensors holding Data that are not disposed
    internal bool Released;             // back in the pool: tensors still pointing at Data must not read it

    internal Storage(Array data, long birth) { Data = data; Birth = birth; }
}

/// <summary>Arrays of float32 and float64 storage kept for reuse, by exact length (a training loop asks for the same
/// sizes step after step).</summary>
internal static class StoragePool
{
    /// <summary>Arrays shorter than this are left to the garbage collector: they die young and cheaply.</summary>
    internal const int MinLength = 4096;
    /// <summary>At most this many bytes wait in the pool; beyond it a released array is dropped.</summary>
    internal const long MaxPooledBytes = 1L << 30;

    private static readonly object Lock = new();
    private static readonly Dictionary<(bool Double, int Length), Stack<Array>> Free = new();
    private static readonly ConditionalWeakTable<Array, Storage> Owners = new();
    private static long _pooledBytes;

    /// <summary>Statistics for tests: arrays handed out again and arrays returned.</summary>
    internal static long Reused, Returned;

    /// <summary>A storage for a float32 or float64 tensor of <paramref name="n"/> elements, or null when the pool
    /// does not serve it (too small, another dtype); contents are whatever the array held before.</summary>
    internal static Array? Rent(ScalarType dtype, int n)
    {
        if (n < MinLength || dtype is not (ScalarType.Float32 or ScalarType.Float64)) return null;
        bool dbl = dtype == ScalarType.Float64;
        Array? data = null;
        lock (Lock)
        {
            if (Free.TryGetValue((dbl, n), out var stack) && stack.Count > 0)
            {
                data = stack.Pop();
                _pooledBytes -= Bytes(data);
                Reused++;
            }
        }
        data ??= dbl ? GC.AllocateUninitializedArray<double>(n) : GC.AllocateUninitializedArray<float>(n);
        Owners.AddOrUpdate(data, new Storage(data, Autograd.RecordCount));
        return data;
    }

    /// <summary>The pool's record of <paramref name="data"/>, or null for an array the pool did not hand out.</summary>
    internal static Storage? OwnerOf(Array data) => Owners.TryGetValue(data, out var s) && !s.Released ? s : null;

    /// <summary>One tensor holding <paramref name="s"/> let go of it; the last one sends it back to the pool when no
    /// recorded op that may have captured it is still waiting for its backward pass.</summary>
    internal static void Release(Storage s)
    {
        if (Interlocked.Decrement(ref s.Handles) > 0 || s.Released || !Autograd.NothingRecordedSince(s.Birth)) return;
        s.Released = true;
        long bytes = Bytes(s.Data);
        lock (Lock)
        {
            Returned++;
            if (_pooledBytes + bytes > MaxPooledBytes) return;
            var key = (s.Data is double[], s.Data.Length);
            if (!Free.TryGetValue(key, out var stack)) Free[key] = stack = new Stack<Array>();
            stack.Push(s.Data);
            _pooledBytes += bytes;
        }
    }

    private static long Bytes(Array a) => (long)a.Length * (a is double[] ? 8 : 4);
}
