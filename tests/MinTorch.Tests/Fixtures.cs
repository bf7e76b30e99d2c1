using System.Globalization;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchSharp.Tests;

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

