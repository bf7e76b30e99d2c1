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
/// still waiting for its backward pass (<see cref="GraphLedger.NothingRecordedSince"/>); a backward pass without
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

/// <summary>Arrays of float32 and float64 storage kept for reuse.</summary>
/// <remarks>Arrays are sized in classes: a request is rounded up to the next multiple of an eighth of its power of
/// two (at most 12.5% unused), so a sequence that grows by one token a step still finds last step's arrays. A tensor
/// may therefore sit on an array longer than its elements; every kernel reads and writes <c>numel</c> elements from
/// its offsets, never the array's length. When more than <see cref="MaxPooledBytes"/> wait, the sizes asked for
/// least recently go first.</remarks>
internal static class StoragePool
{
    /// <summary>Arrays shorter than this are left to the garbage collector: they die young and cheaply.</summary>
    internal const int MinLength = 4096;
    /// <summary>At most this many bytes wait in the pool: an eighth of the memory the process may use, at least
    /// 512 MiB (a step at the bench's L config keeps about 1 GB of tensors until its scope closes).</summary>
    internal static readonly long MaxPooledBytes =
        Math.Max(512L << 20, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 8);

    private sealed class Bucket
    {
        internal readonly Stack<Array> Arrays = new();
        internal long LastUse;
    }

    private static readonly object Lock = new();
    private static readonly Dictionary<(bool Double, int Length), Bucket> Free = new();
    private static readonly ConditionalWeakTable<Array, Storage> Owners = new();
    private static long _pooledBytes, _clock;

    /// <summary>For tests: how many times an array was handed out again.</summary>
    internal static long Reused;

    /// <summary>The array length that serves <paramref name="n"/> elements: n rounded up to a multiple of 2^(k-3),
    /// where 2^k ≤ n &lt; 2^(k+1).</summary>
    internal static int Capacity(int n)
    {
        int step = Math.Max(1, (int)(System.Numerics.BitOperations.RoundUpToPowerOf2((uint)n + 1) >> 4));
        long c = ((long)n + step - 1) / step * step;
        return c > Array.MaxLength ? n : (int)c;
    }

    /// <summary>A storage for a float32 or float64 tensor of <paramref name="n"/> elements, or null when the pool
    /// does not serve it (too small, another dtype, no dispose scope open); contents are whatever the array held
    /// before.</summary>
    internal static Array? Rent(ScalarType dtype, int n)
    {
        // Without an open scope nothing will give the array back: a plain one dies young and cheaply.
        if (n < MinLength || dtype is not (ScalarType.Float32 or ScalarType.Float64) || DisposeScope.Current is null)
            return null;
        bool dbl = dtype == ScalarType.Float64;
        int length = Capacity(n);
        Array? data = null;
        lock (Lock)
        {
            if (!Free.TryGetValue((dbl, length), out var bucket)) Free[(dbl, length)] = bucket = new Bucket();
            bucket.LastUse = ++_clock;
            // This size, else the next sizes up to twice as long: a sequence growing by a token a step, or a new
            // batch starting short again, takes what the longer steps before it gave back.
            for (int c = length; c <= 2L * length && data is null; c = Capacity(c + 1))
                if (Free.TryGetValue((dbl, c), out var b) && b.Arrays.Count > 0)
                {
                    data = b.Arrays.Pop();
                    _pooledBytes -= Bytes(data);
                    Reused++;
                }
        }
        // A new array goes on the pinned-object heap: pooled arrays live long, and there the collector never
        // copies them (in the young generations it copied the live ones at every collection).
        data ??= dbl ? GC.AllocateUninitializedArray<double>(length, pinned: true)
                   : GC.AllocateUninitializedArray<float>(length, pinned: true);
        Owners.AddOrUpdate(data, new Storage(data, GraphLedger.RecordCount));
        return data;
    }

    /// <summary>The pool's record of <paramref name="data"/>, or null for an array the pool did not hand out.</summary>
    internal static Storage? OwnerOf(Array data) => Owners.TryGetValue(data, out var s) && !s.Released ? s : null;

    /// <summary>One tensor holding <paramref name="s"/> let go of it; the last one sends it back to the pool when no
    /// recorded op that may have captured it is still waiting for its backward pass.</summary>
    internal static void Release(Storage s)
    {
        if (Interlocked.Decrement(ref s.Handles) > 0 || s.Released) return;
        if (!GraphLedger.NothingRecordedSince(s.Birth)) return;   // a waiting op may have captured it
        s.Released = true;
        long bytes = Bytes(s.Data);
        lock (Lock)
        {
            var key = (s.Data is double[], s.Data.Length);
            if (!Free.TryGetValue(key, out var bucket)) Free[key] = bucket = new Bucket { LastUse = ++_clock };
            while (_pooledBytes + bytes > MaxPooledBytes && EvictOldest(bucket)) { }
            if (_pooledBytes + bytes > MaxPooledBytes) return;
            bucket.Arrays.Push(s.Data);
            _pooledBytes += bytes;
        }
    }

    /// <summary>Drops the arrays of the size asked for least recently (not <paramref name="keep"/>'s).</summary>
    private static bool EvictOldest(Bucket keep)
    {
        Bucket? oldest = null;
        foreach (var b in Free.Values)
            if (b != keep && b.Arrays.Count > 0 && (oldest is null || b.LastUse < oldest.LastUse)) oldest = b;
        if (oldest is null) return false;
        while (oldest.Arrays.Count > 0) _pooledBytes -= Bytes(oldest.Arrays.Pop());
        return true;
    }

    private static long Bytes(Array a) => (long)a.Length * (a is double[] ? 8 : 4);
}

/// <summary>Which recorded ops still wait for their backward pass (see <see cref="Storage"/>).</summary>
internal static class GraphLedger
{
    // A backward function may read tensors it captured when its op ran, so their storage must not go back to the
    // pool while that op still waits for its backward pass. Ops are numbered in recording order; a storage
    // allocated when RecordCount was b can only have been captured by ops numbered above b, so it may be reused
    // when none of those still waits. Waiting ops are kept as one bit each in blocks of 64 numbers. A graph that is
    // never back-propagated keeps its bits forever: the storages made before it are then left to the garbage
    // collector, as they were before the pool.
    private static readonly Dictionary<long, ulong> _waiting = new();   // block → bit i: op 64·block + i waits
    private static long _recorded;

    /// <summary>How many ops have been recorded so far, in all threads.</summary>
    internal static long RecordCount => Interlocked.Read(ref _recorded);

    /// <summary>True when every op recorded after <paramref name="birth"/> has been back-propagated (or none
    /// was).</summary>
    internal static bool NothingRecordedSince(long birth)
    {
        lock (_waiting)
        {
            long first = birth >> 6, last = RecordCount >> 6;
            if (last - first > 4096) return false;        // too far back to check cheaply: let the GC have it
            for (long b = last; b > first; b--)
                if (_waiting.ContainsKey(b)) return false;
            int after = (int)(birth & 63) + 1;             // in birth's own block, only the ops numbered above it
            return after == 64 || !_waiting.TryGetValue(first, out var bits) || bits >> after == 0;
        }
    }

    /// <summary>Numbers a newly recorded op and marks it waiting.</summary>
    internal static void Recorded(Autograd.Node node)
    {
        node.Serial = Interlocked.Increment(ref _recorded);
        lock (_waiting) { _waiting[node.Serial >> 6] = _waiting.GetValueOrDefault(node.Serial >> 6) | Bit(node); }
    }

    /// <summary>A backward pass without retain_graph has been through <paramref name="node"/>.</summary>
    internal static void Done(Autograd.Node node)
    {
        if (node.Done) return;
        node.Done = true;
        long block = node.Serial >> 6;
        lock (_waiting)
        {
            ulong bits = _waiting[block] & ~Bit(node);
            if (bits == 0) _waiting.Remove(block); else _waiting[block] = bits;
        }
    }

    private static ulong Bit(Autograd.Node node) => 1UL << (int)(node.Serial & 63);
}

/// <summary>
/// The storage of one backward pass without <c>create_graph</c> (<c>Autograd.Run</c>). Nothing the pass makes is
/// recorded then, so the pass knows when it is done with each tensor it made: a backward function's temporaries when
/// its node is done, a gradient when no slot of the pass's table holds it any longer. Only the leaves' <c>.grad</c>
/// (copies, taken out of every scope) and what <c>autograd.grad</c> returns (moved to the caller's scope) leave it.
/// </summary>
internal sealed class PassMemory : IDisposable
{
    private readonly DisposeScope _pass = new();                   // every tensor the pass makes joins it first
    private readonly Dictionary<torch.Tensor, int> _slots = new(ReferenceEqualityComparer.Instance);
    private DisposeScope? _node;

    /// <summary>A scope for one node's backward functions: what they make and do not return goes with it.</summary>
    internal IDisposable NodeTemporaries() => _node = new DisposeScope();

    /// <summary>A gradient a backward function returned: it outlives its node's temporaries.</summary>
    internal torch.Tensor Keep(torch.Tensor gx)
    {
        if (gx.Scope == _node) gx.MoveToOuterDisposeScope();
        return gx;
    }

    /// <summary><paramref name="g"/> takes a slot in the table of pending gradients.</summary>
    internal torch.Tensor Hold(torch.Tensor g)
    {
        _slots[g] = _slots.GetValueOrDefault(g) + 1;
        return g;
    }

    /// <summary>A slot lets go of <paramref name="g"/>.</summary>
    internal void LetGo(torch.Tensor g)
    {
        int n = _slots.GetValueOrDefault(g) - 1;
        if (n > 0) _slots[g] = n;
        else { _slots.Remove(g); Used(g); }
    }

    /// <summary><paramref name="g"/> has been used: disposed when no slot holds it and the pass made it (not a
    /// caller's seed, not a tensor of the forward pass, not a result already given out).</summary>
    internal void Used(torch.Tensor g)
    {
        if (!_slots.ContainsKey(g) && g.Scope == _pass) g.Dispose();
    }

    /// <summary>A result of <c>autograd.grad</c>: the caller's now.</summary>
    internal torch.Tensor Give(torch.Tensor g)
    {
        if (g.Scope == _pass) g.MoveToOuterDisposeScope();
        return g;
    }

    public void Dispose() => _pass.Dispose();
}
