using System.Runtime.CompilerServices;

namespace MinRL.Chapters.Tests;

/// <summary>What a reader of the source can rely on: lines fit in 120 columns (.editorconfig says so) and nothing
/// points to a file outside the repository.</summary>
public class SourceStyleTests
{
    static readonly string Root = RootOf();

    /// <summary>The book's own C# sources: the chapters, compare, and the kit in shared/MinRL.</summary>
    static IEnumerable<string> BookSources() =>
        Directory.GetDirectories(Root, "0*").Append(Path.Combine(Root, "compare"))
            .Append(Path.Combine(Root, "shared", "MinRL"))
            .SelectMany(d => Directory.EnumerateFiles(d, "*.cs", SearchOption.AllDirectories))
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}")
                     && !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}"));

    [Fact]
    public void No_line_is_longer_than_120_characters()
    {
        var longLines = BookSources()
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (f, i, line)))
            .Where(x => x.line.Length > 120)
            .Select(x => $"{Path.GetRelativePath(Root, x.f)}:{x.i + 1} ({x.line.Length})")
            .ToList();
        Assert.True(longLines.Count == 0,
            $"{longLines.Count} lines over 120 characters:\n" + string.Join("\n", longLines.Take(30)));
    }

    [Fact]
    public void The_editorconfig_sets_the_limit_the_test_checks()
    {
        var config = File.ReadAllText(Path.Combine(Root, ".editorconfig"));
        Assert.Contains("max_line_length = 120", config);
    }

    [Fact]
    public void Nothing_refers_to_the_design_notes_readers_do_not_have()
    {
        string[] kinds = ["*.cs", "*.md", "*.py", "*.csproj", "*.props", "*.targets", "run"];
        var hits = kinds.SelectMany(k => Directory.EnumerateFiles(Root, k, SearchOption.AllDirectories))
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}")
                     && !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}")
                     && !f.Contains($"{Path.DirectorySeparatorChar}.git{Path.DirectorySeparatorChar}")
                     && !f.EndsWith(nameof(SourceStyleTests) + ".cs"))
            .Where(f => File.ReadAllText(f).Contains("DESIGN" + ".md"))
            .Select(f => Path.GetRelativePath(Root, f))
            .ToList();
        Assert.True(hits.Count == 0, "references to a file outside the repository: " + string.Join(", ", hits));
    }

    static string RootOf([CallerFilePath] string here = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(here)!, "..", ".."));
}
