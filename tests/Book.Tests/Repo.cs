namespace MinRL.Book.Tests;

static class Repo
{
    /// <summary>The repository's root: the first folder above the test's bin/ folder that holds MinRL.sln.</summary>
    public static readonly string Root = FindRoot();

    /// <summary>Where the book generator writes the HTML book.</summary>
    public static string BookDir => Path.Combine(Root, "docs", "book");

    static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MinRL.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no MinRL.sln in any folder above {AppContext.BaseDirectory}");
    }

    /// <summary>A page's problems as one assertion message: which page, and each problem on its own line.</summary>
    public static string Report(string page, IReadOnlyList<string> problems) =>
        $"{page}: {problems.Count} problem{(problems.Count == 1 ? "" : "s")}:\n"
        + string.Join("\n", problems.Select(p => "  - " + p));
}
