namespace MinRL.Book.Tests;

/// <summary>
/// The checker itself, on a small book written for each test into a temporary folder: a well-made page passes, and
/// each kind of problem the book's test looks for is reported on a page made with it. Without these, a checker
/// that never finds anything would pass the real book too.
/// </summary>
[Collection(ChromiumCollection.Name)]
public sealed class PageCheckerTests : IDisposable
{
    readonly PageChecker checker;
    /// <summary>Stands for the repository: links may lead anywhere inside it.</summary>
    readonly string root;
    /// <summary>Stands for docs/book.</summary>
    readonly string book;
    readonly string outside;

    public PageCheckerTests(ChromiumFixture chromium)
    {
        checker = chromium.Checker;
        outside = Directory.CreateTempSubdirectory("book-check-").FullName;
        root = Path.Combine(outside, "repo");
        book = Path.Combine(root, "book");
        Directory.CreateDirectory(book);
        File.WriteAllText(Path.Combine(outside, "outside.txt"), "not the repository's");
        File.WriteAllText(Path.Combine(root, "source.txt"), "a file of the repository");
        File.WriteAllText(Path.Combine(book, "book.css"), Css);
        File.WriteAllText(Path.Combine(book, "fig.svg"),
            """<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20"/></svg>""");
        // No width or height, as a plot may be written: Chromium still gives it a natural size.
        File.WriteAllText(Path.Combine(book, "fig-viewbox.svg"),
            """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 20"><rect width="40" height="20"/></svg>""");
        File.WriteAllText(Path.Combine(book, "index.html"), Index);
        File.WriteAllText(Path.Combine(book, "01-good.html"), GoodChapter);
        File.WriteAllText(Path.Combine(book, "02-broken.html"), BrokenChapter);
        File.WriteAllText(Path.Combine(book, "03-hidden-code.html"), HiddenCodeChapter);
        File.WriteAllText(Path.Combine(book, "04-no-sections.html"), Page("<p>Nothing but prose.</p>"));
    }

    public void Dispose() => Directory.Delete(outside, recursive: true);

    Task<List<string>> Check(string page) => checker.CheckAsync(Path.Combine(book, page), root);

    [Theory]
    [InlineData("index.html")]
    [InlineData("01-good.html")]
    public async Task A_well_made_page_has_no_problems(string page)
    {
        var problems = await Check(page);
        Assert.True(problems.Count == 0, Repo.Report(page, problems));
    }

    [Fact]
    public async Task Every_problem_of_a_broken_chapter_is_reported()
    {
        var problems = await Check("02-broken.html");
        string[] expected =
        [
            "console.error: x",
            "uncaught exception: Error: boom",
            "missing.css", // the stylesheet that failed to load, as the console logs it
            "image did not load: <img src=\"missing.png\">",
            "section \"b1\": the comments are not left of the code",
            "section \"b1\": the comments and the code do not start at the same height",
            "section \"b3\": the comments and the code do not start at the same height",
            "link href=\"missing.html\": no such file",
            "link href=\"01-good.html#nope\": no element with id=\"nope\" in 01-good.html",
            "link href=\"#nowhere\": no element with id=\"nowhere\" on this page",
            "link href=\"../../outside.txt\": leads outside the repository",
            "link href=\"/etc/hostname\": an absolute path",
        ];
        var unreported = expected.Where(e => !problems.Any(p => p.Contains(e))).ToList();
        Assert.True(unreported.Count == 0,
            "not reported: " + string.Join(" | ", unreported) + "\n" + Repo.Report("02-broken.html", problems));
        // The section between them has no comments, and the good link and image are not problems.
        Assert.DoesNotContain(problems, p => p.Contains("\"b2\"") || p.Contains("fig.svg") || p.Contains("#s1"));
    }

    [Fact]
    public async Task Code_that_is_not_shown_is_reported()
    {
        var problems = await Check("03-hidden-code.html");
        Assert.Contains(problems, p => p.StartsWith("section \"h1\": the code is not shown"));
    }

    [Fact]
    public async Task A_chapter_page_without_sections_is_reported()
    {
        var problems = await Check("04-no-sections.html");
        Assert.Equal(new[] { "a chapter page with no <div class=\"section\">" }, problems);
    }

    [Fact]
    public async Task A_missing_page_is_reported()
    {
        var problems = await Check("05-not-written.html");
        Assert.Single(problems);
        Assert.StartsWith("the page does not exist", problems[0]);
    }

    /// <summary>Two columns as the book lays them out: comments left, code right, tops aligned.</summary>
    const string Css = """
        body { margin: 0; font: 15px sans-serif; }
        .section { display: flex; align-items: flex-start; }
        .docs { box-sizing: border-box; width: 40%; padding: 0 20px; }
        .code { box-sizing: border-box; width: 60%; padding: 0 20px; background: #f5f5f5; }
        pre { margin: 0; }
        """;

    static string Page(string body, string head = "") => $"""
        <!DOCTYPE html>
        <html><head><meta charset="utf-8"><title>fixture</title><link rel="stylesheet" href="book.css">{head}</head>
        <body>
        {body}
        </body></html>
        """;

    static readonly string Index = Page("""
        <h1 id="top">The book</h1>
        <table><tr><td><a href="01-good.html">Chapter 1</a></td><td><a href="01-good.html#s3">its end</a></td></tr>
        </table>
        <p><img src="fig.svg" alt="a figure"> <img src="fig-viewbox.svg" alt="a figure" loading="lazy"></p>
        <p><a href="../source.txt?plain=1#L1">the source</a>, <a href="#top">top</a>, <a href="">here</a>,
        <a href="https://example.com/">the web</a>, <a href="mailto:someone@example.com">mail</a></p>
        """);

    static readonly string GoodChapter = Page("""
        <div class="section" id="s1">
          <div class="docs"><p>First comment, see <a href="index.html#top">the index</a>.</p></div>
          <div class="code"><pre>var x = 1;</pre></div>
        </div>
        <div class="section" id="s2"><div class="docs"></div><div class="code"><pre>x++;</pre></div></div>
        <div class="section" id="s3">
          <div class="docs"><p>Last comment: <a href="#s1">back</a>, <a href="../source.txt">the source</a>.</p>
            <img src="fig.svg" alt="a figure"></div>
          <div class="code"><pre>return x;</pre></div>
        </div>
        """);

    /// <summary>One of each problem: a missing stylesheet and image, a logged error and an uncaught exception,
    /// the first commented section stacked and the last one's code pushed down, and five links to nowhere.</summary>
    static readonly string BrokenChapter = Page("""
        <div class="section" id="b1">
          <div class="docs"><p>Stacked: <a href="missing.html">a page never written</a>,
            <a href="01-good.html#nope">a missing anchor</a>, <a href="#nowhere">another</a>.</p></div>
          <div class="code"><pre>var x = 1;</pre></div>
        </div>
        <div class="section" id="b2"><div class="docs"> </div><div class="code"><pre>x++;</pre></div></div>
        <div class="section" id="b3">
          <div class="docs"><p>Drifted: <a href="../../outside.txt">outside</a>, <a href="/etc/hostname">absolute</a>,
            <a href="01-good.html#s1">fine</a>.</p><img src="missing.png" alt="gone"><img src="fig.svg" alt="ok"></div>
          <div class="code"><pre>return x;</pre></div>
        </div>
        <script>console.error('x')</script>
        <script>throw new Error('boom')</script>
        """, head: """
        <link rel="stylesheet" href="missing.css">
        <style>#b1 { display: block; } #b3 .code { margin-top: 40px; }</style>
        """);

    static readonly string HiddenCodeChapter = Page("""
        <div class="section" id="h1">
          <div class="docs"><p>The code is hidden.</p></div>
          <div class="code" style="display: none"><pre>var x = 1;</pre></div>
        </div>
        """);
}
