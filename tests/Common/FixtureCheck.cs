// FixtureCheck: compares tensors with the PyTorch reference fixtures, shared by tests/MinTorch.Tests and
// tests/MinRL.Tests (each project compiles this one file; see their .csproj).
using System.Globalization;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace MinRL.Testing;

/// <summary>
/// Compares tensors computed by MinTorch with PyTorch references. Each comparison that fails is
/// recorded with its worst element — the tensor's name, the element's multi-index, the expected and
/// actual values, and the error as a multiple of the tolerance — and <see cref="AssertAll"/> fails
/// with all of them, in the order they were compared (forward intermediates first, so the first
/// line points at the earliest op that went wrong).
/// </summary>
/// <remarks>
/// An element passes when |actual − expected| ≤ rtol·|expected| + atol, where
/// atol = atolFraction · max|expected| over the whole tensor. The absolute floor is for elements that
/// are near zero by cancellation (a gradient summed from terms of both signs, a logit that happens to
/// be ~0): their value is the rounding error of terms of the tensor's typical size, so only an error
/// measured against that size is meaningful.
/// </remarks>
public sealed class FixtureCheck(double rtol, double atolFraction)
{
    private readonly List<string> _failures = new();
    private int _compared;

    public double Rtol { get; } = rtol;
    public double AtolFraction { get; } = atolFraction;

    /// <summary>How many tensors have been compared so far.</summary>
    public int Compared => _compared;

    /// <summary>Compares <paramref name="actual"/> with <paramref name="expected"/>; records a failure message if they differ.</summary>
    public void Compare(string name, Tensor expected, Tensor? actual) => Compare(name, expected, actual, null);

    /// <summary>As <see cref="Compare(string, Tensor, Tensor?)"/>, but with an explicit absolute tolerance
    /// instead of the tensor-scaled floor (for values whose error has a known absolute bound).</summary>
    public void CompareAbs(string name, Tensor expected, Tensor? actual, double atol) => Compare(name, expected, actual, atol);

    private void Compare(string name, Tensor expected, Tensor? actual, double? atol)
    {
        _compared++;
        if (actual is null) { _failures.Add($"{name}: no value (null), expected shape {Str(expected.shape)}"); return; }
        if (!expected.shape.SequenceEqual(actual.shape))
        {
            _failures.Add($"{name}: shape {Str(actual.shape)}, expected {Str(expected.shape)}");
            return;
        }
        if (expected.dtype != actual.dtype) { _failures.Add($"{name}: dtype {actual.dtype}, expected {expected.dtype}"); return; }
        var (e, a) = (Doubles(expected), Doubles(actual));
        Observe(name, e, a, atol);
        var msg = Check(name, expected.shape, expected.dtype, e, a, Rtol, AtolFraction, atol);
        if (msg is not null) _failures.Add(msg);
    }

    // ------------------------------------------------------------------ statistics for the report

    /// <summary>The largest |actual − expected| / tolerance over every element compared (≤ 1 means all passed).</summary>
    public double WorstRatio { get; private set; }
    /// <summary>The tensor holding the element of <see cref="WorstRatio"/>.</summary>
    public string WorstRatioName { get; private set; } = "";
    /// <summary>The largest relative error |actual − expected| / |expected| over the elements where a relative
    /// error means something: |expected| ≥ 1e-2 · max|expected| of their tensor (not the near-zero ones the
    /// absolute floor is for).</summary>
    public double MaxRelative { get; private set; }
    /// <summary>The tensor holding the element of <see cref="MaxRelative"/>.</summary>
    public string MaxRelativeName { get; private set; } = "";

    private void Observe(string name, double[] e, double[] a, double? absoluteAtol)
    {
        double max = 0;
        foreach (var v in e) max = Math.Max(max, Math.Abs(v));
        double atol = absoluteAtol ?? AtolFraction * max;
        for (int i = 0; i < e.Length; i++)
        {
            double err = Math.Abs(a[i] - e[i]);
            double tol = Rtol * Math.Abs(e[i]) + atol;
            double ratio = tol > 0 ? err / tol : (err == 0 ? 0 : double.PositiveInfinity);
            if (ratio > WorstRatio || double.IsNaN(ratio)) { WorstRatio = double.IsNaN(ratio) ? double.PositiveInfinity : ratio; WorstRatioName = name; }
            if (Math.Abs(e[i]) >= 1e-2 * max && e[i] != 0)
            {
                double rel = err / Math.Abs(e[i]);
                if (rel > MaxRelative) { MaxRelative = rel; MaxRelativeName = name; }
            }
        }
    }

    /// <summary>One line: how close the compared tensors came to the tolerance.</summary>
    public string Summary() =>
        $"{Compared} tensors within rtol {R(Rtol)} + {R(AtolFraction)}·max|expected|: worst error/tolerance " +
        $"{WorstRatio.ToString("G3", CultureInfo.InvariantCulture)} ({WorstRatioName}); max relative error " +
        $"{MaxRelative.ToString("G3", CultureInfo.InvariantCulture)} ({MaxRelativeName}) over elements with |expected| ≥ 1e-2·max";

    /// <summary>Fails with every recorded mismatch (one line each).</summary>
    public void AssertAll()
    {
        Assert.True(_compared > 0, "FixtureCheck: nothing was compared");
        if (_failures.Count > 0)
            Assert.Fail($"{_failures.Count} of {_compared} tensors differ from PyTorch:\n" + string.Join("\n", _failures));
    }

    /// <summary>One comparison, asserted at once.</summary>
    public static void AssertClose(string name, Tensor expected, Tensor? actual, double rtol, double atolFraction)
    {
        var c = new FixtureCheck(rtol, atolFraction);
        c.Compare(name, expected, actual);
        c.AssertAll();
    }

    /// <summary>The failure message for the worst element, or null if every element is within tolerance.</summary>
    internal static string? Check(string name, long[] shape, ScalarType dtype, double[] e, double[] a, double rtol, double atolFraction,
        double? absoluteAtol = null)
    {
        double max = 0;
        foreach (var v in e) max = Math.Max(max, Math.Abs(v));
        double atol = absoluteAtol ?? atolFraction * max;
        int worst = -1, bad = 0;
        double worstRatio = 0;
        for (int i = 0; i < e.Length; i++)
        {
            double err = Math.Abs(a[i] - e[i]);
            double tol = rtol * Math.Abs(e[i]) + atol;
            if (err <= tol) continue; // NaN fails here: every comparison with NaN is false
            bad++;
            double ratio = double.IsNaN(err) || tol == 0 ? double.PositiveInfinity : err / tol;
            if (worst < 0 || ratio > worstRatio) { worstRatio = ratio; worst = i; }
        }
        if (bad == 0) return null;
        return $"{name} (shape {Str(shape)}, {dtype}): {bad} of {e.Length} elements out of tolerance; " +
               $"worst at {Str(Index(worst, shape))} (flat {worst}): expected {R(e[worst])}, actual {R(a[worst])}, " +
               $"|diff| {R(Math.Abs(a[worst] - e[worst]))} = {worstRatio.ToString("G3", CultureInfo.InvariantCulture)} × tolerance " +
               $"(rtol {R(rtol)}, atol {R(atol)}" +
               (absoluteAtol is null ? $" = {R(atolFraction)} × max|expected| {R(max)})" : ", absolute)");
    }

    internal static double[] Doubles(Tensor t) => t.dtype switch
    {
        ScalarType.Float32 => t.data<float>().ToArray().Select(v => (double)v).ToArray(),
        ScalarType.Float64 => t.data<double>().ToArray(),
        ScalarType.Int64 => t.data<long>().ToArray().Select(v => (double)v).ToArray(),
        _ => throw new ArgumentException($"FixtureCheck: unsupported dtype {t.dtype}"),
    };

    /// <summary>The multi-index of flat (row-major) position <paramref name="flat"/>.</summary>
    internal static long[] Index(long flat, long[] shape)
    {
        var idx = new long[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--) { idx[d] = flat % shape[d]; flat /= shape[d]; }
        return idx;
    }

    private static string Str(long[] s) => "[" + string.Join(", ", s) + "]";
    private static string R(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}
