using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MinRL.Chapters.Tests;

/// <summary>
/// A small Verify-style snapshot check (Verify.Xunit does not restore on this project's registry).
/// </summary>
/// <remarks>
/// <c>Snapshot.Match(value)</c> serialises <paramref name="value"/> to indented JSON and compares it with
/// <c>snapshots/&lt;Class&gt;.&lt;Method&gt;.verified.json</c> next to the test file. Doubles are written in
/// their shortest round-trip form, so a snapshot pins numbers bit for bit. On a mismatch, or when no
/// verified file exists yet, the new output is written beside it as <c>.received.json</c> (git-ignored)
/// and the test fails with the first differing lines; accept a change by renaming received → verified.
/// </remarks>
public static class Snapshot
{
    private static readonly JsonSerializerOptions Options = new() { WriteIndented = true };

    /// <param name="perEngine">One snapshot per engine (<c>&lt;Class&gt;.&lt;Method&gt;.&lt;Engine&gt;.verified.json</c>):
    /// for training runs, whose last bits differ between MinTorch's and libtorch's kernels.</param>
    public static void Match(object value, [CallerFilePath] string file = "", [CallerMemberName] string member = "",
        string? name = null, bool perEngine = false)
    {
        var dir = Path.Combine(Path.GetDirectoryName(file)!, "snapshots");
        var cls = Path.GetFileNameWithoutExtension(file);
        var stem = Path.Combine(dir, $"{cls}.{name ?? member}{(perEngine ? "." + Kit.Engine : "")}");
        var verified = stem + ".verified.json";
        var received = stem + ".received.json";
        var text = JsonSerializer.Serialize(value, Options).Replace("\r\n", "\n") + "\n";

        if (File.Exists(verified) && File.ReadAllText(verified).Replace("\r\n", "\n") == text)
        {
            if (File.Exists(received)) File.Delete(received);
            return;
        }
        Directory.CreateDirectory(dir);
        File.WriteAllText(received, text);
        if (!File.Exists(verified))
            Assert.Fail($"No verified snapshot {Path.GetFileName(verified)} yet. Review {received} and rename it to .verified.json.");
        Assert.Fail($"Snapshot {Path.GetFileName(verified)} differs (new output in {Path.GetFileName(received)}):\n" + Diff(File.ReadAllText(verified), text));
    }

    /// <summary>The first few differing lines, old (−) above new (+).</summary>
    internal static string Diff(string expected, string actual, int max = 12)
    {
        var a = expected.Replace("\r\n", "\n").Split('\n');
        var b = actual.Split('\n');
        var lines = new List<string>();
        for (int i = 0; i < Math.Max(a.Length, b.Length) && lines.Count < max; i++)
        {
            var x = i < a.Length ? a[i] : "<end>";
            var y = i < b.Length ? b[i] : "<end>";
            if (x != y) { lines.Add($"line {i + 1}:"); lines.Add("  - " + x.Trim()); lines.Add("  + " + y.Trim()); }
        }
        return string.Join("\n", lines);
    }
}

/// <summary>Chapter runs are CPU-heavy and share the cached base model: run them one at a time.</summary>
[CollectionDefinition("chapters", DisableParallelization = true)]
public sealed class ChaptersCollection { }
