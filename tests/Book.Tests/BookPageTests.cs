namespace MinRL.Book.Tests;

/// <summary>
/// The HTML book in docs/book, read in a browser: every page loads without console errors, shows all its images,
/// has no internal link that leads nowhere, and (a chapter) shows comments and code side by side.
/// </summary>
[Collection(ChromiumCollection.Name)]
public class BookPageTests(ChromiumFixture chromium)
{
    /// <summary>The pages the generator promises: the index and one page per chapter.</summary>
    static readonly string[] PromisedPages =
    [
        "index.html", "01-policy-gradient.html", "02-actor-critic-gae.html", "03-trpo.html", "04-ppo.html",
        "05-reward-model.html", "06-rlhf.html", "07-dpo.html", "08-grpo.html",
    ];

    /// <summary>The promised pages, whether they exist or not (a missing one fails its own case), then any other
    /// page found in docs/book.</summary>
    public static TheoryData<string> Pages()
    {
        IEnumerable<string> found = [];
        if (Directory.Exists(Repo.BookDir))
            found = Directory.EnumerateFiles(Repo.BookDir, "*.html", SearchOption.AllDirectories)
                .Select(f => Path.GetRelativePath(Repo.BookDir, f).Replace(Path.DirectorySeparatorChar, '/'))
                .Order(StringComparer.Ordinal);
        var pages = new TheoryData<string>();
        foreach (var page in PromisedPages.Union(found)) pages.Add(page);
        return pages;
    }

    [Fact]
    public void The_book_has_its_index_its_chapters_and_its_stylesheet()
    {
        var missing = PromisedPages.Append("book.css")
            .Where(f => !File.Exists(Path.Combine(Repo.BookDir, f))).ToList();
        Assert.True(missing.Count == 0,
            $"missing from docs/book (the book generator writes them): {string.Join(", ", missing)}");
    }

    [Theory]
    [MemberData(nameof(Pages))]
    public async Task The_page_reads_as_it_should(string page)
    {
        var problems = await chromium.Checker.CheckAsync(Path.Combine(Repo.BookDir, page), Repo.Root);
        Assert.True(problems.Count == 0, Repo.Report("docs/book/" + page, problems));
    }
}
