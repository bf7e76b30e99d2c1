using System.Globalization;
using System.Text.Json;
using MinTorch;
using static MinTorch.torch;

namespace MinTorch.Tests;

/// <summary>
/// Loads the PyTorch reference fixtures written by <c>tests/reference/engine_fixtures.py</c>.
/// </summary>
/// <remarks>
/// A fixture is one JSON object: name → <c>{"shape": [...], "dtype": "float32" | "float64" | "int64",
/// "data": [flat row-major values]}</c>. Entries whose names start with <c>_</c> (e.g. <c>_meta</c>)
/// are descriptions, not tensors, and are skipped. float32 values are stored as the shortest decimal
/// that round-trips to the same float32 and are parsed straight to float (not via double), so the
/// tensors hold exactly the bits PyTorch produced.
/// </remarks>
public static class Fixtures
{
    /// <summary>The fixture directory as copied next to the test assembly (see the csproj).</summary>
    public static string Dir(string sub = "engine") => Path.Combine(AppContext.BaseDirectory, "fixtures", sub);

    /// <summary>Loads <paramref name="file"/> (e.g. <c>"attention_block_f32.json"</c>) from <see cref="Dir"/>.</summary>
    public static Dictionary<string, Tensor> Load(string file, string sub = "engine")
    {
        var path = Path.Combine(Dir(sub), file);
        if (!File.Exists(path))
            throw new FileNotFoundException(
                $"fixture {file} not found at {path}; regenerate with /usr/bin/python3 tests/reference/engine_fixtures.py " +
                "and check that the test csproj copies fixtures/** to the output directory", path);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var result = new Dictionary<string, Tensor>();
        foreach (var entry in doc.RootElement.EnumerateObject())
        {
            if (entry.Name.StartsWith('_')) continue;
            try { result[entry.Name] = Parse(entry.Value); }
            catch (Exception e) when (e is not InvalidDataException)
            {
                throw new InvalidDataException($"fixture {file}: entry '{entry.Name}' is malformed: {e.Message}", e);
            }
        }
        return result;
    }

    /// <summary>One <c>{"shape", "dtype", "data"}</c> entry as a tensor.</summary>
    public static Tensor Parse(JsonElement e)
    {
        var shape = e.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
        var dtype = e.GetProperty("dtype").GetString();
        var data = e.GetProperty("data");
        int n = data.GetArrayLength();
        long expected = shape.Aggregate(1L, (a, b) => a * b);
        if (n != expected)
            throw new InvalidDataException($"{n} values cannot fill the shape [{string.Join(", ", shape)}] ({expected} elements)");
        int i = 0;
        switch (dtype)
        {
            case "float32":
                var f = new float[n];
                // GetSingle parses the text directly as a float: correctly rounded, no double rounding.
                foreach (var v in data.EnumerateArray()) f[i++] = v.GetSingle();
                return tensor(f, shape);
            case "float64":
                var d = new double[n];
                foreach (var v in data.EnumerateArray()) d[i++] = v.GetDouble();
                return tensor(d, shape);
            case "int64":
                var l = new long[n];
                foreach (var v in data.EnumerateArray()) l[i++] = v.GetInt64();
                return tensor(l, shape);
            default:
                throw new InvalidDataException($"unsupported dtype '{dtype}' (expected float32, float64 or int64)");
        }
    }
}

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
        var msg = Check(name, expected.shape, expected.dtype, Doubles(expected), Doubles(actual), Rtol, AtolFraction, atol);
        if (msg is not null) _failures.Add(msg);
    }

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
