using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace MinRL.Book.Tests;

/// <summary>
/// Renders one page of the book in a fresh Chromium tab and lists what a reader would find wrong with it: errors in
/// the console (scripts, and resources that failed to load), images that did not load, internal links that lead
/// nowhere, and on chapter pages comments and code that are not side by side.
/// </summary>
sealed partial class PageChecker(Cdp cdp)
{
    /// <summary>Wide enough for the two-column layout of a chapter page.</summary>
    const int ViewportWidth = 1400, ViewportHeight = 1000;

    public static readonly TimeSpan PageTimeout = TimeSpan.FromSeconds(30);

    /// <summary>A chapter page: 01-policy-gradient.html ... 08-grpo.html.</summary>
    [GeneratedRegex(@"^\d\d-.+\.html$")]
    public static partial Regex ChapterPage();

    [GeneratedRegex("""(?<=\s)id\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+))""", RegexOptions.IgnoreCase)]
    private static partial Regex IdAttribute();

    /// <summary>The problems of the page at <paramref name="page"/>, one line each (empty: none). Links may lead
    /// anywhere inside <paramref name="root"/> (the repository), never outside it.</summary>
    public async Task<List<string>> CheckAsync(string page, string root)
    {
        if (!File.Exists(page)) return [$"the page does not exist ({page})"];
        using var timeout = new CancellationTokenSource(PageTimeout);
        var errors = new ConcurrentQueue<string>();
        string? targetId = null;
        try
        {
            var target = await cdp.SendAsync("Target.createTarget", new { url = "about:blank" }, null, timeout.Token);
            targetId = target.GetProperty("targetId").GetString();
            var attached = await cdp.SendAsync("Target.attachToTarget", new { targetId, flatten = true }, null,
                timeout.Token);
            var session = attached.GetProperty("sessionId").GetString()!;
            void Listen(string method, string? sessionId, JsonElement p)
            {
                if (sessionId == session && ErrorOf(method, p) is { } error) errors.Enqueue(error);
            }
            cdp.Event += Listen;
            try
            {
                var facts = await Render(page, session, timeout.Token);
                var problems = new List<string>();
                if (facts.NavigationError != null)
                    problems.Add($"the page did not load: {facts.NavigationError}");
                problems.AddRange(errors.Distinct());
                if (facts.NavigationError != null) return problems;
                problems.AddRange(ImageProblems(facts));
                if (ChapterPage().IsMatch(Path.GetFileName(page))) problems.AddRange(ColumnProblems(facts));
                problems.AddRange(facts.Links.Select(href => LinkProblem(page, href, facts.Ids, root))
                                             .OfType<string>().Distinct());
                return problems;
            }
            finally { cdp.Event -= Listen; }
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            return [$"the page did not finish loading and rendering within {PageTimeout.TotalSeconds} s",
                    .. errors.Distinct()];
        }
        finally
        {
            if (targetId != null) await Close(targetId);
        }
    }

    async Task Close(string targetId)
    {
        try
        {
            using var quick = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await cdp.SendAsync("Target.closeTarget", new { targetId }, null, quick.Token);
        }
        catch (Exception) { } // a tab that will not close costs memory, not correctness
    }

    /// <summary>An error a reader would see in the console, or null for any other event.</summary>
    static string? ErrorOf(string method, JsonElement p) => method switch
    {
        "Runtime.exceptionThrown" => "uncaught exception: " + ExceptionText(p.GetProperty("exceptionDetails")),
        "Runtime.consoleAPICalled" when p.GetProperty("type").GetString() is "error" or "assert" =>
            $"console.{p.GetProperty("type").GetString()}: "
            + string.Join(" ", p.GetProperty("args").EnumerateArray().Select(ValueText)),
        "Log.entryAdded" when p.GetProperty("entry").GetProperty("level").GetString() == "error" =>
            $"console error: {p.GetProperty("entry").GetProperty("text").GetString()}"
            + (p.GetProperty("entry").TryGetProperty("url", out var url) ? $" ({url.GetString()})" : ""),
        _ => null,
    };

    static string ExceptionText(JsonElement details) =>
        details.TryGetProperty("exception", out var e) && e.TryGetProperty("description", out var d)
            ? d.GetString()! : details.GetProperty("text").GetString()!;

    static string ValueText(JsonElement arg) =>
        arg.TryGetProperty("value", out var v) ? v.ToString()
        : arg.TryGetProperty("description", out var d) ? d.GetString()! : arg.GetProperty("type").GetString()!;

    /// <summary>Loads the page in the tab and collects what the checks need, once it and its images have loaded.
    /// </summary>
    async Task<PageFacts> Render(string page, string session, CancellationToken ct)
    {
        Task<JsonElement> Send(string method, object? parameters = null) =>
            cdp.SendAsync(method, parameters, session, ct);
        // Listen before navigating, so nothing the page logs while loading is missed.
        await Send("Runtime.enable");
        await Send("Log.enable");
        await Send("Page.enable");
        await Send("Emulation.setDeviceMetricsOverride",
            new { width = ViewportWidth, height = ViewportHeight, deviceScaleFactor = 1, mobile = false });
        var url = new Uri(page).AbsoluteUri;
        var navigated = await Send("Page.navigate", new { url });
        if (navigated.TryGetProperty("errorText", out var error))
            return new PageFacts { NavigationError = error.GetString() };
        // Polled rather than waiting for Page.loadEventFired: the blank tab's own load event may arrive late and
        // be taken for this page's.
        const string loaded = "String(location.href !== 'about:blank' && document.readyState === 'complete')";
        while (!await Answers(Send, loaded, "true")) await Task.Delay(25, ct);
        var json = (string?)await Evaluate(Send, FactsScript)
                   ?? throw new InvalidOperationException("the page's facts came back empty");
        // Failed loads are logged by the browser, so let its last messages arrive before reading them.
        await Task.Delay(100, ct);
        return JsonSerializer.Deserialize<PageFacts>(json, new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
    }

    /// <summary>Whether the expression gives that answer now; no while the page is between documents.</summary>
    static async Task<bool> Answers(Func<string, object?, Task<JsonElement>> send, string expression, string answer)
    {
        try { return (string?)await Evaluate(send, expression) == answer; }
        catch (CdpException) { return false; } // e.g. the blank page's context was destroyed by the navigation
    }

    static async Task<object?> Evaluate(Func<string, object?, Task<JsonElement>> send, string expression)
    {
        var reply = await send("Runtime.evaluate", new { expression, returnByValue = true, awaitPromise = true });
        if (reply.TryGetProperty("exceptionDetails", out var details))
            throw new InvalidOperationException("the checking script failed in the page: " + ExceptionText(details));
        var value = reply.GetProperty("result");
        return value.TryGetProperty("value", out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
    }

    /// <summary>Run in the page once it has loaded: makes lazy images load, then reports the sections' boxes, the
    /// images, the links and the ids (all as JSON).</summary>
    const string FactsScript = """
        (async () => {
          await Promise.all([...document.images].filter(i => !i.complete).map(i => new Promise(done => {
            i.addEventListener('load', done); i.addEventListener('error', done); setTimeout(done, 10000);
            i.loading = 'eager';
          })));
          const box = e => {
            if (!e) return null;
            const r = e.getBoundingClientRect();
            return { left: r.left, right: r.right, top: r.top, width: r.width, height: r.height };
          };
          return JSON.stringify({
            sections: [...document.querySelectorAll('div.section')].map(s => {
              const docs = s.querySelector('div.docs'), code = s.querySelector('div.code');
              return { id: s.id, hasText: !!docs && docs.textContent.trim().length > 0,
                       docs: box(docs), code: box(code), hasPre: !!code && !!code.querySelector('pre') };
            }),
            images: [...document.images].map(i =>
              ({ src: i.getAttribute('src') ?? '', complete: i.complete, naturalWidth: i.naturalWidth })),
            links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
            ids: [...document.querySelectorAll('[id]')].map(e => e.id),
          });
        })()
        """;

    static IEnumerable<string> ImageProblems(PageFacts facts) =>
        facts.Images.Where(i => !i.Complete || i.NaturalWidth <= 0)
            .Select(i => $"image did not load: <img src=\"{i.Src}\">");

    /// <summary>The comments (docs) must sit left of their code with the same top, for the first and the last
    /// section that has comments: enough to catch a layout that stacks them or lets them drift apart.</summary>
    static IEnumerable<string> ColumnProblems(PageFacts facts)
    {
        var withText = facts.Sections.Where(s => s.HasText).ToList();
        if (facts.Sections.Count == 0) yield return "a chapter page with no <div class=\"section\">";
        else if (withText.Count == 0) yield return "no section has comments in its <div class=\"docs\">";
        foreach (var s in withText.Take(1).Concat(withText.Skip(1).TakeLast(1)))
        {
            var name = $"section \"{s.Id}\"";
            if (s.Docs == null || s.Code == null)
            {
                yield return $"{name} lacks its <div class=\"{(s.Docs == null ? "docs" : "code")}\">";
                continue;
            }
            if (s.Docs.Width <= 0 || s.Docs.Height <= 0) yield return $"{name}: the comments are not shown ({s.Docs})";
            if (s.Code.Width <= 0 || s.Code.Height <= 0) yield return $"{name}: the code is not shown ({s.Code})";
            if (!s.HasPre) yield return $"{name}: the code is not inside a <pre>";
            if (s.Docs.Right > s.Code.Left + 1)
                yield return $"{name}: the comments are not left of the code (comments {s.Docs}, code {s.Code})";
            if (Math.Abs(s.Docs.Top - s.Code.Top) > 2)
                yield return $"{name}: the comments and the code do not start at the same height "
                             + $"(comments {s.Docs}, code {s.Code})";
        }
    }

    /// <summary>Why the link <paramref name="href"/> on <paramref name="page"/> leads nowhere, or null when it
    /// resolves: a file (or folder) inside <paramref name="root"/>, and for an .html target with a #fragment, an
    /// element with that id there (<paramref name="pageIds"/> for the page itself). Web and mail links are not
    /// followed.</summary>
    public static string? LinkProblem(string page, string href, IReadOnlyCollection<string> pageIds, string root)
    {
        if (IsExternal(href)) return null;
        var hash = href.IndexOf('#');
        var fragment = hash >= 0 ? Uri.UnescapeDataString(href[(hash + 1)..]) : null;
        var path = hash >= 0 ? href[..hash] : href;
        var query = path.IndexOf('?');
        if (query >= 0) path = path[..query];
        var link = $"link href=\"{href}\"";
        if (path == "")
            return fragment is null or "" || pageIds.Contains(fragment)
                ? null : $"{link}: no element with id=\"{fragment}\" on this page";
        if (Path.IsPathRooted(path)) return $"{link}: an absolute path, which breaks when the book moves";
        var target = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(page)!, Uri.UnescapeDataString(path)));
        var fullRoot = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        if (target != fullRoot && !target.StartsWith(fullRoot + Path.DirectorySeparatorChar))
            return $"{link}: leads outside the repository ({target})";
        if (!File.Exists(target) && !Directory.Exists(target))
            return $"{link}: no such file ({Path.GetRelativePath(fullRoot, target)})";
        if (fragment is null or "" || !target.EndsWith(".html", StringComparison.OrdinalIgnoreCase)) return null;
        var ids = Path.GetFullPath(page) == target ? pageIds : IdsIn(target);
        return ids.Contains(fragment)
            ? null : $"{link}: no element with id=\"{fragment}\" in {Path.GetFileName(target)}";
    }

    static bool IsExternal(string href) =>
        new[] { "http:", "https:", "mailto:" }.Any(s => href.StartsWith(s, StringComparison.OrdinalIgnoreCase));

    /// <summary>The id attributes written in an HTML file (its text, not its DOM: a page not rendered here).
    /// </summary>
    static HashSet<string> IdsIn(string htmlFile) =>
        IdAttribute().Matches(File.ReadAllText(htmlFile))
            .Select(m => System.Net.WebUtility.HtmlDecode(
                m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Success ? m.Groups[2].Value : m.Groups[3].Value))
            .ToHashSet();
}

/// <summary>What <see cref="PageChecker.FactsScript"/> reports about a page.</summary>
sealed class PageFacts
{
    public string? NavigationError { get; init; }
    public List<SectionFacts> Sections { get; init; } = [];
    public List<ImageFacts> Images { get; init; } = [];
    public List<string> Links { get; init; } = [];
    public List<string> Ids { get; init; } = [];
}

sealed record SectionFacts(string Id, bool HasText, Box? Docs, Box? Code, bool HasPre);

sealed record ImageFacts(string Src, bool Complete, int NaturalWidth);

sealed record Box(double Left, double Right, double Top, double Width, double Height)
{
    public override string ToString() => $"x {Left:0}–{Right:0}, top {Top:0}, {Width:0}×{Height:0}";
}
