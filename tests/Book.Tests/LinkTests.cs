namespace MinRL.Book.Tests;

/// <summary>How the checker resolves a link, without a browser: relative to the page's folder, without its query
/// and fragment, percent-decoded, and a fragment looked up only in HTML targets.</summary>
public sealed class LinkTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("book-links-").FullName;
    readonly string page;

    public LinkTests()
    {
        Directory.CreateDirectory(Path.Combine(root, "docs", "book", "results"));
        Directory.CreateDirectory(Path.Combine(root, "04-ppo"));
        File.WriteAllText(Path.Combine(root, "04-ppo", "Program.cs"), "// the chapter");
        File.WriteAllText(Path.Combine(root, "docs", "04-ppo.md"), "# Chapter 4");
        File.WriteAllText(Path.Combine(root, "docs", "book", "results", "a plot.svg"), "<svg/>");
        File.WriteAllText(Path.Combine(root, "docs", "book", "04-ppo.html"),
            """<div class="section" id="s12"></div><h2 id='exercises'>Exercises</h2><p data-id="fake"></p>""");
        page = Path.Combine(root, "docs", "book", "index.html");
    }

    public void Dispose() => Directory.Delete(root, recursive: true);

    string? Problem(string href) => PageChecker.LinkProblem(page, href, ["top"], root);

    [Theory]
    [InlineData("04-ppo.html")]
    [InlineData("04-ppo.html#s12")]
    [InlineData("04-ppo.html#exercises")]
    [InlineData("./04-ppo.html?x=1#s12")]
    [InlineData("#top")]
    [InlineData("#")]
    [InlineData("")]
    [InlineData("results/a%20plot.svg")]
    [InlineData("../../04-ppo/Program.cs")]
    [InlineData("../../04-ppo/Program.cs#L10")] // not HTML: the fragment is the viewer's business
    [InlineData("../04-ppo.md#how-to-run")]
    [InlineData("../../04-ppo/")]
    [InlineData("https://example.com/missing")]
    [InlineData("HTTP://example.com/")]
    [InlineData("mailto:someone@example.com")]
    public void A_link_that_resolves_has_no_problem(string href) => Assert.Null(Problem(href));

    [Theory]
    [InlineData("05-reward-model.html", "no such file (docs/book/05-reward-model.html)")]
    [InlineData("04-ppo.html#s13", "no element with id=\"s13\" in 04-ppo.html")]
    [InlineData("04-ppo.html#fake", "no element with id=\"fake\" in 04-ppo.html")]
    [InlineData("#bottom", "no element with id=\"bottom\" on this page")]
    [InlineData("../../03-trpo/Program.cs", "no such file (03-trpo/Program.cs)")]
    [InlineData("../../../elsewhere.txt", "leads outside the repository")]
    [InlineData("/etc/hostname", "an absolute path")]
    public void A_link_that_leads_nowhere_is_reported(string href, string why)
    {
        var problem = Problem(href);
        Assert.NotNull(problem);
        Assert.Contains(why, problem);
        Assert.StartsWith($"link href=\"{href}\"", problem);
    }
}
