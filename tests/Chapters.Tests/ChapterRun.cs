using TorchSharp;
using static TorchSharp.torch;

namespace MinRL.Chapters.Tests;

/// <summary>Runs a chapter's <c>Main</c> the way a reader's <c>dotnet run</c> does, into a temporary
/// folder, and reads back what it wrote.</summary>
public static class ChapterRun
{
    /// <summary>The thread count a snapshot test compares against one thread. MinTorch promises the same bits on any
    /// count, so its tests use several; libtorch only at a given count, so on TorchSharp the second run repeats
    /// one thread (the test then checks that a seeded run reproduces itself).</summary>
    public static string ManyThreads => Kit.BitIdenticalAcrossThreads ? "3" : "1";

    /// <summary>Tests that call a chapter's code directly run with the engine's default thread count; on TorchSharp
    /// that is one, so the snapshots hold on any machine (libtorch's own default is the number of cores).</summary>
    [System.Runtime.CompilerServices.ModuleInitializer]
    internal static void UseTheEnginesDefaultThreads() => set_num_threads(Kit.DefaultThreads);

    /// <summary>Runs <paramref name="main"/> with <paramref name="argv"/> plus <c>--out</c> a fresh temporary
    /// folder (named after <paramref name="tag"/>); asserts exit code 0 and returns the metrics.csv lines
    /// and summary.json. Restores the engine's thread count and deletes the folder afterwards.</summary>
    public static (string[] Csv, RunSummary Summary) Run(Func<string[], int> main, string tag, params string[] argv)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"minrl-{tag}-" + Guid.NewGuid().ToString("N"));
        int threads = get_num_threads();
        try
        {
            Assert.Equal(0, main([.. argv, "--out", dir]));
            return (File.ReadAllLines(Path.Combine(dir, "metrics.csv")), RunSummary.Read(Path.Combine(dir, "summary.json")));
        }
        finally
        {
            set_num_threads(threads);
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}

/// <summary>Equality of doubles within an absolute tolerance, for <c>Assert.Equal(expected, actual, comparer)</c>.</summary>
public sealed class Tolerance(double tol) : IEqualityComparer<double>
{
    public bool Equals(double x, double y) => Math.Abs(x - y) <= tol;
    public int GetHashCode(double obj) => 0;
}

/// <summary>Element-wise comparisons with known values that name the element that differs.</summary>
public static class Expect
{
    /// <summary>Asserts |actual[i] − expected[i]| ≤ <paramref name="tol"/> for every i (any dtype; compared in float64).</summary>
    public static void Close(double[] expected, torch.Tensor actual, double tol, string what = "")
    {
        var a = actual.to_type(ScalarType.Float64).data<double>().ToArray();
        Assert.Equal(expected.Length, a.Length);
        for (int i = 0; i < a.Length; i++)
            Assert.True(Math.Abs(a[i] - expected[i]) <= tol, $"{what}[{i}]: expected {expected[i]:R}, got {a[i]:R} (tolerance {tol})");
    }
}
