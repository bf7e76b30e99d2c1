namespace MinRL.Book.Tests;

/// <summary>The tests that render pages share one Chromium (starting it costs more than checking a page; CI has two
/// cores), so they form one collection and run one after another.</summary>
[CollectionDefinition(Name)]
public sealed class ChromiumCollection : ICollectionFixture<ChromiumFixture>
{
    public const string Name = "Chromium";
}

/// <summary>Starts the browser once for the collection and closes it at the end. A browser that cannot start fails
/// every test that needs it, with the reason (never a skip: a book nobody checked must not pass).</summary>
public sealed class ChromiumFixture : IAsyncLifetime
{
    static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    Chromium? browser;
    Exception? failure;

    public async Task InitializeAsync()
    {
        try { browser = await Chromium.StartAsync(StartTimeout); }
        catch (Exception e) { failure = e; }
    }

    internal PageChecker Checker => browser != null
        ? new PageChecker(browser.Cdp)
        : throw new InvalidOperationException("Chromium did not start: " + failure?.Message, failure);

    public async Task DisposeAsync()
    {
        if (browser != null) await browser.DisposeAsync();
    }
}
