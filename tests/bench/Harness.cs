using System.Diagnostics;
using System.Text.Json.Nodes;

namespace MinRL.Bench;

/// <summary>
/// One thing to time. <see cref="Step"/> runs one repetition (build its inputs before, outside the
/// closure). <see cref="Config"/> is "S"/"M"/"L" for TinyGpt workloads and "-" for micro-benchmarks,
/// which do not depend on it. <see cref="Flops"/>, when known, adds a GFLOP/s figure to the output.
/// </summary>
public sealed record Workload(string Bench, string Name, string Config, Action Step, string? Shape = null, double Flops = 0);

/// <summary>
/// Warm-up and timing, the same method as torch_micro.py: run the workload for about
/// <c>--warmup</c> seconds (at least 2 calls) so the JIT has tiered the hot code up to its optimised
/// version, collect garbage once, then time <c>--reps</c> single calls with a Stopwatch — fewer (but at
/// least 3) when the timed calls have taken <c>--budget</c> seconds — and report the median (and the
/// minimum). One JSON line per workload.
/// </summary>
public static class Harness
{
    /// <summary>Untimed calls at least, however long they take (the JIT has compiled everything after one).</summary>
    public const int MinWarmupCalls = 2;
    /// <summary>Timed calls at least, whatever the budget.</summary>
    public const int MinReps = 3;

    /// <summary>One call of the workload inside a dispose scope, as a chapter runs a step: on TorchSharp the call's
    /// tensors are freed when it ends (as PyTorch frees them by reference count), not whenever the garbage collector
    /// finalises them; on MinTorch the scope does nothing.</summary>
    private static void Call(Workload w)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        w.Step();
    }

    public static JsonObject Measure(Workload w, Options o)
    {
        // Warm-up. Tiered compilation promotes a method after ~30 calls plus a profiling phase, and replaces
        // long-running loops on the fly (OSR); a small workload needs a few hundred calls to reach its steady
        // state (train at S: ~300 calls, 5 s — see README.md, "Warm-up, then medians").
        var clock = Stopwatch.StartNew();
        int calls = 0;
        while (calls < MinWarmupCalls || clock.Elapsed.TotalSeconds < o.WarmupSeconds)
        {
            Call(w);
            calls++;
        }
        GC.Collect();
        GC.WaitForPendingFinalizers();

        var times = new List<double>(o.Reps);
        double spent = 0;
        int[] gcBefore = [GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2)];
        var pauseBefore = GC.GetTotalPauseDuration();
        long allocBefore = GC.GetTotalAllocatedBytes();
        for (int r = 0; r < o.Reps && (r < MinReps || spent < o.BudgetSeconds * 1000); r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            Call(w);
            times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            spent += times[^1];
        }
        double median = Median(times);
        // Garbage collections per timed call, by generation (a gen2 collection also costs the finalizer thread
        // a trim of every shared ArrayPool): where a median strays far above the minimum, look here first.
        var gcPerCall = Enumerable.Range(0, 3).Select(g => Math.Round((GC.CollectionCount(g) - gcBefore[g]) / (double)times.Count, 3)).ToArray();

        // Time the collector paused the program and bytes allocated, per timed call: what a storage pool saves.
        double pauseMs = (GC.GetTotalPauseDuration() - pauseBefore).TotalMilliseconds / times.Count;
        double allocMb = (GC.GetTotalAllocatedBytes() - allocBefore) / 1048576.0 / times.Count;

        var line = new JsonObject
        {
            ["bench"] = w.Bench,
            ["workload"] = w.Name,
            ["config"] = w.Config,
            ["impl"] = Kit.Engine.ToLowerInvariant(),          // "mintorch" or "torchsharp": the build's engine
            ["threads"] = o.Threads,
            ["reps"] = times.Count,
            ["median_ms"] = Math.Round(median, 4),
            ["min_ms"] = Math.Round(times.Min(), 4),
            ["warmup_calls"] = calls,
            ["gc_per_call"] = new JsonArray(gcPerCall.Select(v => (JsonNode?)v).ToArray()),
            ["gc_pause_ms_per_call"] = Math.Round(pauseMs, 3),
            ["alloc_mb_per_call"] = Math.Round(allocMb, 2),
        };
        if (w.Shape is not null) line["shape"] = w.Shape;
        if (w.Flops > 0) line["gflops"] = Math.Round(w.Flops / median / 1e6, 3);
        return line;
    }

    /// <summary>The middle value; the mean of the two middle values for an even count (as Python's statistics.median).</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        var s = values.Order().ToArray();
        int n = s.Length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }
}
