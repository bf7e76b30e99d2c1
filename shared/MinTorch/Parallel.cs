namespace MinTorch;

/// <summary>
/// Deterministic parallel loops. Work is cut into chunks whose boundaries depend only on the problem
/// size (never on the thread count), each chunk writes its own outputs, and any reduction across
/// chunks happens afterwards in chunk order. So the result is bit-identical with 1 thread or 64.
/// </summary>
internal static class Par
{
    internal static int MaxThreads = Environment.ProcessorCount;

    /// <summary>Runs body(start, end) over [0, count) in chunks of about <paramref name="grain"/> items.</summary>
    public static void For(int count, int grain, Action<int, int> body)
    {
        if (count <= 0) return;
        grain = Math.Max(1, grain);
        int chunks = (count + grain - 1) / grain;
        if (chunks == 1 || MaxThreads == 1) { body(0, count); return; }
        // Chunk boundaries are a function of (count, grain) only.
        var options = new ParallelOptions { MaxDegreeOfParallelism = MaxThreads };
        Parallel.For(0, chunks, options, c =>
        {
            int start = (int)((long)c * count / chunks);
            int end = (int)((long)(c + 1) * count / chunks);
            body(start, end);
        });
    }

    /// <summary>Number of items per chunk so that a chunk does at least ~<paramref name="minWork"/> units of work.</summary>
    public static int Grain(long workPerItem, long minWork = 32768) =>
        (int)Math.Max(1, minWork / Math.Max(1, workPerItem));
}
