// The result of a run in one record: what a chapter measured (its gold metric for the base model
// and after training, the KL to the reference model) and what it cost (wall time, peak memory).
// `Lab.Finish(summary)` prints it as a table and writes it as <out>/summary.json for tools:
//
//     {"chapter":"01-policy-gradient","seed":1,"metric":"accuracy (T = 1)","base":0.23,"final":0.75,
//      "kl":0.41,"wall_s":45.2,"peak_mb":312.5, ...extra keys}
//
// The keys are exactly these eight, in this order, followed by the chapter's extra fields (flat,
// snake_case by convention). NaN or infinite numbers are written as null (JSON has no NaN): a
// chapter with no reference model (the reward model) reports kl = NaN → "kl": null.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MinRL;

/// <summary>A run's headline numbers; see the file comment. Chapter, seed, wall time and peak memory
/// default to the current run's (as set by <see cref="Lab.Run{TArgs}(string[], string, string, Func{TArgs, int})"/>),
/// taken when the record is created.</summary>
public sealed record RunSummary
{
    /// <summary>The keys every summary.json has, in order.</summary>
    public static readonly IReadOnlyList<string> RequiredKeys =
        ["chapter", "seed", "metric", "base", "final", "kl", "wall_s", "peak_mb"];

    public string Chapter { get; init; } = Lab.Chapter;
    public long Seed { get; init; } = Lab.Seed;

    /// <summary>The gold metric's name, e.g. "accuracy (sampled, T = 1)".</summary>
    public required string Metric { get; init; }

    /// <summary>The gold metric of the base model (before this chapter's training).</summary>
    public required double Base { get; init; }

    /// <summary>The gold metric after training.</summary>
    public required double Final { get; init; }

    /// <summary>KL(policy ‖ reference) at the end, in nats per completion (NaN when the chapter has no
    /// reference).</summary>
    public required double Kl { get; init; }

    /// <summary>Seconds since the run started (since <c>Lab.Parse</c>), when the summary was made.</summary>
    public double WallS { get; init; } = Lab.WallSeconds;

    /// <summary>Peak memory of the process in MiB; see <see cref="Lab.PeakMegabytes"/>.</summary>
    public double PeakMb { get; init; } = Lab.PeakMegabytes;

    /// <summary>Anything else worth keeping (written after the required keys, in insertion order):
    /// numbers, strings, bools, arrays. Use snake_case names.</summary>
    public Dictionary<string, object?> Extra { get; init; } = [];

    /// <summary>The summary as JSON text (indented).</summary>
    public string ToJson()
    {
        foreach (var key in Extra.Keys)
            if (RequiredKeys.Contains(key))
                throw new ArgumentException(
                    $"summary: extra field '{key}' would overwrite the required key of that name; rename it");
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("chapter", Chapter);
            w.WriteNumber("seed", Seed);
            w.WriteString("metric", Metric);
            Number(w, "base", Base);
            Number(w, "final", Final);
            Number(w, "kl", Kl);
            Number(w, "wall_s", WallS);
            Number(w, "peak_mb", PeakMb);
            foreach (var (key, value) in Extra)
            {
                w.WritePropertyName(key);
                Value(w, value);
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    /// <summary>Writes <see cref="ToJson"/> to <paramref name="path"/> (creating its folder).</summary>
    public void Write(string path)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        File.WriteAllText(path, ToJson(), new UTF8Encoding(false));
    }

    /// <summary>Reads a summary.json back (null numbers become NaN; extra numbers become double,
    /// other extra values stay JsonElement).</summary>
    public static RunSummary Read(string path)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllText(path)); }
        catch (JsonException e)
        {
            throw new InvalidDataException($"summary: {path} is not valid JSON ({e.Message})", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            foreach (var key in RequiredKeys)
                if (!root.TryGetProperty(key, out _))
                    throw new InvalidDataException($"summary: {path} has no \"{key}\" " +
                                                   $"(a summary.json has {string.Join(", ", RequiredKeys)})");
            double D(string k) =>
                root.GetProperty(k).ValueKind == JsonValueKind.Null ? double.NaN : root.GetProperty(k).GetDouble();
            var extra = new Dictionary<string, object?>();
            foreach (var p in root.EnumerateObject())
                if (!RequiredKeys.Contains(p.Name))
                    extra[p.Name] = p.Value.ValueKind switch
                    {
                        JsonValueKind.Number => p.Value.GetDouble(),
                        JsonValueKind.String => p.Value.GetString(),
                        JsonValueKind.True => true,
                        JsonValueKind.False => false,
                        JsonValueKind.Null => null,
                        _ => p.Value.Clone(),
                    };
            return new RunSummary
            {
                Chapter = root.GetProperty("chapter").GetString() ?? "",
                Seed = root.GetProperty("seed").GetInt64(),
                Metric = root.GetProperty("metric").GetString() ?? "",
                Base = D("base"), Final = D("final"), Kl = D("kl"), WallS = D("wall_s"), PeakMb = D("peak_mb"),
                Extra = extra,
            };
        }
    }

    private static void Number(Utf8JsonWriter w, string key, double v)
    {
        if (double.IsFinite(v)) w.WriteNumber(key, v); else w.WriteNull(key);
    }

    private static void Value(Utf8JsonWriter w, object? value)
    {
        switch (value)
        {
            case null: w.WriteNullValue(); break;
            case double d: if (double.IsFinite(d)) w.WriteNumberValue(d); else w.WriteNullValue(); break;
            case float f: if (float.IsFinite(f)) w.WriteNumberValue(f); else w.WriteNullValue(); break;
            case int or long or short or byte or uint or ulong or decimal:
                w.WriteRawValue(Convert.ToString(value, CultureInfo.InvariantCulture)!); break;
            case bool b: w.WriteBooleanValue(b); break;
            case string s: w.WriteStringValue(s); break;
            case Enum e: w.WriteStringValue(Options.Kebab(e.ToString())); break;
            case JsonElement je: je.WriteTo(w); break;
            case System.Collections.IDictionary dict:
                w.WriteStartObject();
                foreach (System.Collections.DictionaryEntry kv in dict)
                {
                    w.WritePropertyName(kv.Key.ToString()!);
                    Value(w, kv.Value);
                }
                w.WriteEndObject();
                break;
            case System.Collections.IEnumerable list:
                w.WriteStartArray();
                foreach (var item in list) Value(w, item);
                w.WriteEndArray();
                break;
            default: JsonSerializer.Serialize(w, value, value.GetType()); break;
        }
    }
}
