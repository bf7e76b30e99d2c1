using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace TorchSharp;

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
        Workers.Run(count, chunks, Math.Min(MaxThreads, chunks), body);
    }

    /// <summary>Number of items per chunk so that a chunk does at least ~<paramref name="minWork"/> units of work.</summary>
    public static int Grain(long workPerItem, long minWork = 32768) =>
        (int)Math.Max(1, minWork / Math.Max(1, workPerItem));
}

/// <summary>
/// The threads behind <see cref="Par.For"/>: a few dedicated workers that, after a loop, spin for a
/// moment before going to sleep, as OpenMP's do. A parallel loop then starts in about a microsecond
/// instead of the ~15 µs it takes to wake thread-pool threads, which matters for the many
/// sub-millisecond kernels of a small model. The calling thread takes chunks too; chunks are claimed
/// in order from a shared counter.
/// </summary>
internal static class Workers
{
    private sealed class Job
    {
        public required Action<int, int> Body;
        public int Count, Chunks;
        public int Next = -1;        // last chunk claimed
        public int Remaining;        // chunks not yet finished
        public int Seats;            // workers that may still join (MaxThreads − 1)
        public Exception? Error;

        public void Work()
        {
            int c;
            while ((c = Interlocked.Increment(ref Next)) < Chunks)
            {
                try
                {
                    if (Error is null)
                        Body((int)((long)c * Count / Chunks), (int)((long)(c + 1) * Count / Chunks));
                }
                catch (Exception e) { Interlocked.CompareExchange(ref Error, e, null); }
                Interlocked.Decrement(ref Remaining);
            }
        }
    }

    private static Job? _job;
    private static int _generation, _busy, _sleeping, _threadCount;
    private static readonly object _gate = new();
    [ThreadStatic] private static bool _isWorker;

    /// <summary>How long an idle worker spins, waiting for the next loop, before it sleeps.</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 5000; // 0.2 ms

    public static void Run(int count, int chunks, int threads, Action<int, int> body)
    {
        // A loop started from inside another loop (or from a second thread while one runs) is run
        // here, chunk by chunk: the same chunks, so the same result.
        if (_isWorker || Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            for (int c = 0; c < chunks; c++)
                body((int)((long)c * count / chunks), (int)((long)(c + 1) * count / chunks));
            return;
        }
        var job = new Job { Body = body, Count = count, Chunks = chunks, Remaining = chunks, Seats = threads - 1 };
        try
        {
            EnsureThreads(threads - 1);
            Volatile.Write(ref _job, job);
            Interlocked.Increment(ref _generation);
            if (Volatile.Read(ref _sleeping) > 0) lock (_gate) Monitor.PulseAll(_gate);
            job.Work();
            var spin = new SpinWait();
            while (Volatile.Read(ref job.Remaining) > 0) spin.SpinOnce(sleep1Threshold: -1);
        }
        finally
        {
            Volatile.Write(ref _job, null);
            Volatile.Write(ref _busy, 0);
        }
        if (job.Error is not null) ExceptionDispatchInfo.Capture(job.Error).Throw();
    }

    private static void EnsureThreads(int n)
    {
        n = Math.Min(n, Environment.ProcessorCount - 1); // more threads than cores would only take turns
        if (Volatile.Read(ref _threadCount) >= n) return;
        lock (_gate)
        {
            while (_threadCount < n)
            {
                new Thread(Loop) { IsBackground = true, Name = $"MinTorch worker {_threadCount + 1}" }.Start();
                _threadCount++;
            }
        }
    }

    private static void Loop()
    {
        _isWorker = true;
        int seen = Volatile.Read(ref _generation);
        while (true)
        {
            // Wait for a new loop: spin briefly (yielding the core now and then), then sleep.
            long start = Stopwatch.GetTimestamp();
            int spins = 0;
            while (Volatile.Read(ref _generation) == seen)
            {
                if (++spins % 64 == 0)
                {
                    if (Stopwatch.GetTimestamp() - start > SpinTicks)
                    {
                        Interlocked.Increment(ref _sleeping);
                        lock (_gate) { while (Volatile.Read(ref _generation) == seen) Monitor.Wait(_gate); }
                        Interlocked.Decrement(ref _sleeping);
                        break;
                    }
                    Thread.Yield();
                }
                else Thread.SpinWait(20);
            }
            seen = Volatile.Read(ref _generation);
            var job = Volatile.Read(ref _job);
            if (job is null || Interlocked.Decrement(ref job.Seats) < 0) continue;
            job.Work();
        }
    }
}
