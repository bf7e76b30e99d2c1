// compare book: the chapters as HTML pages, in docs/book — the derivation in one column, the code it explains
// in the other (the layout of labml.ai's annotated implementations).
//
//     dotnet run -c Release --project compare -- book                                 # regenerate docs/book
//     dotnet run -c Release --project compare -- book --results runs/compare/seeds1-5 # with new seed results
//     dotnet run -c Release --project compare -- book --check                         # are the pages current?
//
// Each chapter's Program.cs is cut into sections: a block of whole-line `//` comments and the code below it, up
// to the next such block. The comment goes to the left column as text (blank lines make paragraphs, an
// indented line is kept as it is typed — the formulas are written that way —, "* " starts a list item,
// "─── Title ───" a heading), the code to the right, highlighted here, so a page needs no script. The chapter's
// results over seeds (the table and learning curve `compare --seeds` writes, copied into docs/book/results)
// follow the section that reports the run (the one calling Lab.Finish), and the exercises at the end of the
// chapter's docs page close it, each answer folded in a <details>. Everything is local: a page opens from the
// file system with no network. A test regenerates the pages in memory and fails when the committed ones differ.
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using MinRL;

namespace Compare;

public static partial class Book
{
    /// <summary>The book's folder, relative to the repository root.</summary>
    public const string Folder = "docs/book";

    /// <summary>The seed results the pages show (what `compare --seeds` wrote), inside <see cref="Folder"/>.</summary>
    public const string ResultsFolder = "results";

    static readonly UTF8Encoding Utf8 = new(false);

    /// <summary>`compare book [--results DIR] [--check] [--screenshots]`; returns the exit code.</summary>
    public static int Run(string[] argv)
    {
        string? results = null;
        bool check = false, screenshots = false;
        for (int i = 0; i < argv.Length; i++)
            switch (argv[i])
            {
                case "--results" when i + 1 < argv.Length: results = argv[++i]; break;
                case "--check": check = true; break;
                case "--screenshots": screenshots = true; break;
                case "--help" or "-h":
                    Console.WriteLine("compare book: writes the chapters as HTML pages into docs/book\n\n" +
                        "  --results DIR    first copy the tables and figures of `compare --seeds` from DIR " +
                        "(e.g. runs/compare/seeds1-5)\n" +
                        "  --check          write nothing; exit 1 and name the pages that differ from the sources\n" +
                        "  --screenshots    also save index.png and 08-grpo.png with headless Chromium");
                    return 0;
                default:
                    Lab.Error($"compare book: unknown option '{argv[i]}' (options: --results DIR, --check, " +
                              "--screenshots, --help)");
                    return 2;
            }
        try
        {
            string root = Program.RepoRoot(), book = Path.Combine(root, Folder);
            if (results is not null) CopyResults(results, Path.Combine(book, ResultsFolder));
            var pages = Render(root);
            if (check)
            {
                var stale = Stale(root, pages);
                if (stale.Count == 0) { Lab.Print($"{Folder}: every page is current"); return 0; }
                Lab.Error($"{Folder}: stale (run `dotnet run --project compare -- book`): {string.Join(", ", stale)}");
                return 1;
            }
            foreach (var (name, text) in pages) File.WriteAllText(Path.Combine(book, name), text, Utf8);
            Lab.Print($"written: {pages.Count} files in {Folder}/ (open {Folder}/index.html)");
            if (screenshots) Screenshots(book);
            return 0;
        }
        catch (LabException e) { Lab.Error(e.Message); return 1; }
    }

    /// <summary>The pages whose committed text differs from what <see cref="Render"/> makes (or that are missing).
    /// </summary>
    public static List<string> Stale(string root, IReadOnlyDictionary<string, string>? pages = null) =>
    [
        .. (pages ?? Render(root)).Where(p =>
        {
            string path = Path.Combine(root, Folder, p.Key);
            return !File.Exists(path) || File.ReadAllText(path) != p.Value;
        }).Select(p => p.Key),
    ];

    static void CopyResults(string from, string to)
    {
        if (!File.Exists(Path.Combine(from, "book.md")))
            throw new LabException($"compare book: no book.md in {from} (run `compare -- --seeds 1-5` first)");
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from).Where(f => f.EndsWith(".md") || f.EndsWith(".svg")
                                                                || f.EndsWith(".json")))
            File.Copy(f, Path.Combine(to, Path.GetFileName(f)), overwrite: true);
        Lab.Print($"copied the seed results of {from} into {to}");
    }

    // ------------------------------------------------------------------------------------------- the pages

    /// <summary>Every file of the book (name in docs/book → text): index.html, a page per chapter, book.css.</summary>
    public static SortedDictionary<string, string> Render(string root)
    {
        var chapters = Program.Select("all", Directory.GetDirectories(root).Select(Path.GetFileName)
            .OfType<string>());
        string results = Path.Combine(root, Folder, ResultsFolder);
        var pages = new SortedDictionary<string, string>(StringComparer.Ordinal) { ["book.css"] = Css };
        var titles = new List<string>();
        for (int i = 0; i < chapters.Count; i++)
        {
            string c = chapters[i];
            var sections = Sections(File.ReadAllText(Path.Combine(root, c, "Program.cs")));
            string title = sections[0].Doc.FirstOrDefault() ?? c;       // the chapter's first comment line
            titles.Add(title);
            pages[c + ".html"] = ChapterPage(c, title, sections, ReadOrEmpty(Path.Combine(root, "docs", c + ".md")),
                ReadOrEmpty(Path.Combine(results, c + ".md")),
                i > 0 ? chapters[i - 1] : null, i + 1 < chapters.Count ? chapters[i + 1] : null);
        }
        pages["index.html"] = IndexPage(chapters, titles, ReadOrEmpty(Path.Combine(results, "book.md")),
            ReadOrEmpty(Path.Combine(results, "seeds.json")));
        return pages;
    }

    static string ReadOrEmpty(string path) => File.Exists(path) ? File.ReadAllText(path).Replace("\r\n", "\n") : "";

    /// <summary>One section of a chapter: the comment lines (without "//") and the code lines below them.</summary>
    public sealed record Section(List<string> Doc, List<string> Code);

    /// <summary>Cuts C# source into sections: each run of whole-line `//` comments (not `///` doc comments,
    /// which stay with their code) starts one; the code below it, to the next run, is its code.</summary>
    public static List<Section> Sections(string source)
    {
        var sections = new List<Section>();
        Section? current = null;
        foreach (var line in source.Replace("\r\n", "\n").TrimEnd('\n').Split('\n'))
        {
            string t = line.TrimStart();
            bool comment = t.StartsWith("//", StringComparison.Ordinal)
                           && !t.StartsWith("///", StringComparison.Ordinal);
            if (comment && (current is null || current.Code.Count > 0))
                sections.Add(current = new Section([], []));
            if (current is null) sections.Add(current = new Section([], []));
            if (comment) current.Doc.Add(t.Length > 2 && t[2] == ' ' ? t[3..] : t[2..]);
            else if (current.Code.Count > 0 || line.Trim().Length > 0) current.Code.Add(line);
        }
        foreach (var s in sections)
            while (s.Code.Count > 0 && s.Code[^1].Trim().Length == 0) s.Code.RemoveAt(s.Code.Count - 1);
        return sections;
    }

    static string ChapterPage(string chapter, string title, List<Section> sections, string docsPage,
        string resultsTable, string? previous, string? next)
    {
        var body = new StringBuilder();
        body.Append(Nav(previous, next));
        bool resultsShown = resultsTable.Length == 0;
        for (int i = 0; i < sections.Count; i++)
        {
            var s = sections[i];
            // The first comment line is the chapter's title (underlined with "===" in some chapters).
            string heading = i == 0 ? $"<h1>{Inline(title)}</h1>\n" : "";
            var doc = i == 0 ? [.. s.Doc.Skip(1).SkipWhile(l => l.Length > 0 && l.Trim('=').Length == 0)] : s.Doc;
            // Strip common indentation so a method's code starts at the left edge of its column.
            int indent = s.Code.Where(l => l.Trim().Length > 0).Select(l => l.Length - l.TrimStart().Length)
                .DefaultIfEmpty(0).Min();
            string code = string.Join('\n', s.Code.Select(l => l.Length >= indent ? l[indent..] : l.TrimStart()));
            body.Append($"<div class=\"section\" id=\"s{i}\">\n<div class=\"docs\">{heading}{Doc(doc)}</div>\n")
                .Append($"<div class=\"code\"><pre>{Highlight(code)}</pre></div>\n</div>\n");
            if (!resultsShown && s.Code.Any(l => l.Contains("Lab.Finish(", StringComparison.Ordinal)))
            {
                body.Append(Results(chapter, resultsTable));
                resultsShown = true;
            }
        }
        if (!resultsShown) body.Append(Results(chapter, resultsTable));
        body.Append(Exercises(docsPage));
        body.Append(Nav(previous, next));
        return Html(title, body.ToString());
    }

    static string Nav(string? previous, string? next) =>
        "<nav>" + (previous is null ? "<span></span>" : $"<a href=\"{previous}.html\">← {previous}</a>") +
        "<a href=\"index.html\">contents</a>" +
        (next is null ? "<span></span>" : $"<a href=\"{next}.html\">{next} →</a>") + "</nav>\n";

    static string Results(string chapter, string table) =>
        $"<div class=\"results\" id=\"results\">\n<h2>Measured over seeds</h2>\n" +
        $"<p>The run above, with its default options, on each seed (<code>dotnet run -c Release --project compare " +
        $"-- --seeds 1-5</code>); the chapter's own page, <a href=\"../{chapter}.md\">docs/{chapter}.md</a>, has " +
        $"its experiments.</p>\n{MarkdownTable(table)}" +
        $"<img src=\"{ResultsFolder}/{chapter}.svg\" alt=\"{chapter}: learning curve over seeds, mean and " +
        "min–max band\">\n</div>\n";

    static string Exercises(string docsPage)
    {
        int start = docsPage.IndexOf("\n## Exercises", StringComparison.Ordinal);
        if (start < 0) return "";
        string text = docsPage[(start + 1)..];
        int end = text.IndexOf("\n## ", 3, StringComparison.Ordinal);
        if (end >= 0) text = text[..end];
        return "<div class=\"exercises\" id=\"exercises\">\n" + Markdown(text.Split('\n')) + "</div>\n";
    }

    static string IndexPage(List<string> chapters, List<string> titles, string bookTable, string seedsJson)
    {
        var body = new StringBuilder();
        body.Append("<h1>MinRL — reinforcement learning for language models, in C#</h1>\n<p>Eight algorithms, " +
            "each one commented program that trains the same tiny GPT on the same tasks. Each page below puts the " +
            "chapter's derivation beside the code that computes it, ends with what its runs measured, and with " +
            "exercises. The <a href=\"../../README.md\">README</a> says how to run them.</p>\n<ol class=\"toc\">\n");
        for (int i = 0; i < chapters.Count; i++)
            body.Append($"<li><a href=\"{chapters[i]}.html\">{Esc(titles[i])}</a></li>\n");
        body.Append("</ol>\n");
        if (bookTable.Length > 0)
        {
            // seeds.json, as Seeds.Report writes it: which seeds, on which engine, on which day.
            using var json = JsonDocument.Parse(seedsJson.Length > 0 ? seedsJson : "{}");
            var top = json.RootElement;
            string seedList = top.TryGetProperty("seeds", out var seeds)
                ? string.Join(", ", seeds.EnumerateArray().Select(x => x.GetInt64())) : "";
            string engine = top.TryGetProperty("engine", out var e) ? e.GetString() ?? "" : "";
            string date = top.TryGetProperty("date", out var d) ? d.GetString() ?? "" : "";
            body.Append($"<h2 id=\"results\">The book over seeds {Esc(seedList)}</h2>\n<p>Every chapter with its " +
                $"default options on each seed (<code>dotnet run -c Release --project compare -- --seeds 1-5</code>; " +
                $"{Esc(engine)}, {Esc(date)}): the gold metric after training as mean ± std over the seeds (std with " +
                "n − 1) and the worst seed, KL(π_θ ‖ π_ref) per completion at the end, wall time and peak memory of " +
                "the chapter's process.</p>\n");
            body.Append(MarkdownTable(bookTable));
            body.Append("<p>Sample efficiency: every algorithm's gold metric against the completions it sampled " +
                "to make training data, mean of the seeds with the band from the lowest to the highest. DPO learns " +
                "offline from pairs sampled once from the base model, so it is one bar: its final score over the " +
                "seeds at the number of samples behind its pairs. Chapter 2's curve is the accuracy of its training " +
                "batches (it scores held-out prompts only at the end). The reward model (chapter 5) is left out: its " +
                "metric is preference accuracy.</p>\n" +
                $"<img src=\"{ResultsFolder}/sample-efficiency.svg\" alt=\"gold metric against samples generated, " +
                "every algorithm\">\n");
        }
        return Html("MinRL — the book", body.ToString());
    }

    static string Html(string title, string body) =>
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n" +
        $"<title>{Esc(title)}</title>\n<link rel=\"stylesheet\" href=\"book.css\">\n</head>\n<body>\n" +
        "<!-- Generated by `dotnet run --project compare -- book` from the chapters' Program.cs; do not edit. -->\n" +
        body + "</body>\n</html>\n";

    // ------------------------------------------------------------------------------------------- comment text

    /// <summary>A comment block as HTML: "─── Title ───" is a heading, "* " a list item (its continuation lines
    /// indented under it), a line indented by two or more spaces is kept as typed, the rest are paragraphs.</summary>
    public static string Doc(List<string> lines)
    {
        var html = new StringBuilder();
        var para = new List<string>();
        var pre = new List<string>();
        var items = new List<string>();
        void Flush()
        {
            if (para.Count > 0) html.Append("<p>").Append(Inline(string.Join(' ', para))).Append("</p>\n");
            if (items.Count > 0)
                html.Append("<ul>").AppendJoin("", items.Select(i => $"<li>{Inline(i)}</li>")).Append("</ul>\n");
            if (pre.Count > 0)
            {
                int cut = pre.Min(l => l.Length - l.TrimStart().Length);
                html.Append("<pre>").Append(Esc(string.Join('\n', pre.Select(l => l[cut..])))).Append("</pre>\n");
            }
            para.Clear(); pre.Clear(); items.Clear();
        }
        int itemIndent = -1;
        foreach (var line in lines)
        {
            string t = line.TrimStart();
            int indent = line.Length - t.Length;
            if (t.Length == 0) { Flush(); itemIndent = -1; continue; }
            if (HeadingRule().Match(line) is { Success: true } h)
            {
                Flush(); itemIndent = -1;
                html.Append($"<h3>{Inline(h.Groups[1].Value.Trim())}</h3>\n");
            }
            else if (t.StartsWith("* ", StringComparison.Ordinal) && indent <= 4)
            {
                if (para.Count > 0 || pre.Count > 0) { var keep = items.ToList(); Flush(); items.AddRange(keep); }
                items.Add(t[2..]);
                itemIndent = indent;
            }
            else if (itemIndent >= 0 && indent > itemIndent) items[^1] += " " + t;
            else if (indent >= 2)
            {
                if (para.Count > 0 || items.Count > 0) Flush();
                itemIndent = -1;
                pre.Add(line);
            }
            else
            {
                if (pre.Count > 0 || items.Count > 0) Flush();
                itemIndent = -1;
                para.Add(t);
            }
        }
        Flush();
        return html.ToString();
    }

    [GeneratedRegex("^─+ (.+?) ─+$")]
    private static partial Regex HeadingRule();

    /// <summary>Inline text: `code`, **bold**, [text](link) (a relative link from a docs/ page is made relative to
    /// docs/book/), everything else escaped.</summary>
    public static string Inline(string text, bool fromDocs = false)
    {
        var sb = new StringBuilder();
        var parts = text.Split('`');
        for (int i = 0; i < parts.Length; i++)
        {
            if (i % 2 == 1 && i < parts.Length - 1)
            {
                sb.Append("<code>").Append(Esc(parts[i])).Append("</code>");
                continue;
            }
            string s = Esc(i % 2 == 1 ? "`" + parts[i] : parts[i]);
            s = Bold().Replace(s, "<b>$1</b>");
            s = Link().Replace(s, m =>
            {
                string url = WebUtility.HtmlDecode(m.Groups[2].Value);
                if (fromDocs && !url.Contains(':') && !url.StartsWith('#')) url = "../" + url;
                return $"<a href=\"{Esc(url)}\">{m.Groups[1].Value}</a>";
            });
            sb.Append(s);
        }
        return sb.ToString();
    }

    [GeneratedRegex(@"\*\*(.+?)\*\*")]
    private static partial Regex Bold();

    [GeneratedRegex(@"\[([^\]]+)\]\(([^)\s]+)\)")]
    private static partial Regex Link();

    /// <summary>The little markdown the exercises use: ### headings, paragraphs, "- " lists, fenced code, and the
    /// &lt;details&gt; / &lt;summary&gt; lines that fold an answer, passed through.</summary>
    public static string Markdown(IEnumerable<string> lines)
    {
        var html = new StringBuilder();
        var para = new List<string>();
        var items = new List<string>();
        List<string>? fence = null;
        string language = "";
        void Flush()
        {
            if (para.Count > 0) html.Append("<p>").Append(Inline(string.Join(' ', para), true)).Append("</p>\n");
            if (items.Count > 0)
                html.Append("<ul>").AppendJoin("", items.Select(i => $"<li>{Inline(i, true)}</li>")).Append("</ul>\n");
            para.Clear(); items.Clear();
        }
        int exercise = 0;
        foreach (var line in lines)
        {
            if (fence is not null)
            {
                if (line.TrimStart().StartsWith("```", StringComparison.Ordinal))
                {
                    string code = string.Join('\n', fence);
                    html.Append($"<pre class=\"{language}\">")
                        .Append(language == "csharp" ? Highlight(code) : Esc(code)).Append("</pre>\n");
                    fence = null;
                }
                else fence.Add(line);
                continue;
            }
            string t = line.Trim();
            if (t.StartsWith("```", StringComparison.Ordinal)) { Flush(); fence = []; language = t[3..]; }
            else if (t.Length == 0) Flush();
            else if (t.StartsWith("## ", StringComparison.Ordinal))
            {
                Flush();
                html.Append($"<h2>{Inline(t[3..])}</h2>\n");
            }
            else if (t.StartsWith("### ", StringComparison.Ordinal))
            {
                Flush();
                html.Append($"<h3 id=\"exercise-{++exercise}\">{Inline(t[4..], true)}</h3>\n");
            }
            else if (t.StartsWith("<details>", StringComparison.Ordinal) || t == "</details>")
            {
                Flush();
                html.Append(t).Append('\n');
            }
            else if (t.StartsWith("- ", StringComparison.Ordinal)) { if (para.Count > 0) Flush(); items.Add(t[2..]); }
            else if (items.Count > 0 && line.StartsWith("  ", StringComparison.Ordinal)) items[^1] += " " + t;
            else para.Add(t);
        }
        Flush();
        return html.ToString();
    }

    /// <summary>A GitHub markdown table (as compare writes them) as an HTML table; "" for "".</summary>
    public static string MarkdownTable(string markdown)
    {
        var rows = markdown.Split('\n').Where(l => l.StartsWith('|')).Select(l => l.Trim().Trim('|').Split('|')
            .Select(c => c.Trim()).ToArray()).ToList();
        if (rows.Count < 2) return "";
        var html = new StringBuilder("<table>\n<tr>");
        html.AppendJoin("", rows[0].Select(h => $"<th>{Inline(h)}</th>")).Append("</tr>\n");
        foreach (var r in rows.Skip(2))
            html.Append("<tr>").AppendJoin("", r.Select(c => $"<td>{Inline(c)}</td>")).Append("</tr>\n");
        return html.Append("</table>\n").ToString();
    }

    static string Esc(string s) =>
        s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&quot;");

    // ------------------------------------------------------------------------------------------- highlighting

    static readonly HashSet<string> Keywords =
    [
        "abstract", "as", "base", "bool", "break", "case", "catch", "char", "checked", "class", "const", "continue",
        "default", "delegate", "do", "double", "else", "enum", "false", "finally", "fixed", "float", "for",
        "foreach", "if", "in", "init", "int", "internal", "is", "long", "namespace", "new", "not", "null", "object",
        "or", "and", "out", "override", "params", "private", "protected", "public", "readonly", "record", "ref",
        "required", "return", "sealed", "static", "string", "struct", "switch", "this", "throw", "true", "try",
        "typeof", "uint", "ulong", "using", "var", "virtual", "void", "when", "while", "with", "yield", "get", "set",
        "byte", "sbyte", "short", "ushort", "decimal", "nameof", "operator", "implicit", "explicit", "interface",
    ];

    /// <summary>C# source as HTML with spans for comments (c), strings and characters (s), numbers (n), keywords
    /// (k) and capitalised names — types and methods (t). A hand-written scanner: it only has to colour the
    /// book's own code.</summary>
    public static string Highlight(string code)
    {
        var html = new StringBuilder();
        int i = 0;
        void Span(string cls, int end) { html.Append($"<span class=\"{cls}\">{Esc(code[i..end])}</span>"); i = end; }
        while (i < code.Length)
        {
            char ch = code[i];
            if (ch == '/' && i + 1 < code.Length && code[i + 1] == '/')
            {
                int end = code.IndexOf('\n', i);
                Span("c", end < 0 ? code.Length : end);
            }
            else if (ch == '"' || (ch is '$' or '@' && i + 1 < code.Length && code[i + 1] is '"' or '$' or '@'))
                Span("s", StringEnd(code, i));
            else if (ch == '\'' && CharEnd(code, i) is int charEnd and > 0) Span("s", charEnd);
            else if (char.IsDigit(ch) && (i == 0 || !IsWord(code[i - 1])))
                Span("n", i + NumberRule().Match(code, i).Length);
            else if (char.IsLetter(ch) || ch == '_')
            {
                int end = i;
                while (end < code.Length && IsWord(code[end])) end++;
                string word = code[i..end];
                if (Keywords.Contains(word)) Span("k", end);
                else if (char.IsUpper(word[0])) Span("t", end);
                else { html.Append(Esc(word)); i = end; }
            }
            else { html.Append(Esc(ch.ToString())); i++; }
        }
        return html.ToString();
    }

    static bool IsWord(char c) => char.IsLetterOrDigit(c) || c == '_';

    [GeneratedRegex(@"\G(0[xX][0-9a-fA-F_]+|[0-9][0-9_]*(\.[0-9][0-9_]*)?([eE][+-]?[0-9]+)?)[fFdDmMlLuU]*")]
    private static partial Regex NumberRule();

    /// <summary>The index after a string literal starting at <paramref name="i"/>: "…" with escapes, @"…" with "",
    /// $"…{holes}…" (holes may hold strings), and """raw""".</summary>
    static int StringEnd(string code, int i)
    {
        bool verbatim = false, interpolated = false;
        while (code[i] != '"') { verbatim |= code[i] == '@'; interpolated |= code[i] == '$'; i++; }
        if (code.AsSpan(i).StartsWith("\"\"\""))
        {
            int close = code.IndexOf("\"\"\"", i + 3, StringComparison.Ordinal);
            return close < 0 ? code.Length : close + 3;
        }
        i++;
        while (i < code.Length)
        {
            char c = code[i];
            if (c == '\\' && !verbatim) i += 2;
            else if (c == '"' && verbatim && i + 1 < code.Length && code[i + 1] == '"') i += 2;
            else if (c == '"') return i + 1;
            else if (c == '\n' && !verbatim) return i;
            else if (c == '{' && interpolated && i + 1 < code.Length && code[i + 1] == '{') i += 2;
            else if (c == '{' && interpolated)
            {
                // A hole: skip to its closing brace, over any strings and braces inside it.
                int depth = 1;
                i++;
                while (i < code.Length && depth > 0)
                {
                    if (code[i] == '"' || (code[i] is '$' or '@' && i + 1 < code.Length && code[i + 1] == '"'))
                        i = StringEnd(code, i);
                    else { depth += code[i] == '{' ? 1 : code[i] == '}' ? -1 : 0; i++; }
                }
            }
            else i++;
        }
        return code.Length;
    }

    static int CharEnd(string code, int i)
    {
        if (i + 2 < code.Length && code[i + 1] != '\\' && code[i + 2] == '\'') return i + 3;
        if (i + 3 < code.Length && code[i + 1] == '\\' && code[i + 3] == '\'') return i + 4;
        if (i + 1 < code.Length && code[i + 1] == '\\')
        {
            int close = code.IndexOf('\'', i + 2);
            if (close > 0 && close - i < 10) return close + 1;
        }
        return -1;
    }

    // ------------------------------------------------------------------------------------------- screenshots

    static void Screenshots(string book)
    {
        foreach (var page in new[] { "index", "08-grpo" })
        {
            var psi = new ProcessStartInfo("chromium") { UseShellExecute = false, RedirectStandardError = true };
            foreach (var a in new[] { "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                      "--window-size=1400,1000", $"--screenshot={Path.Combine(book, page + ".png")}",
                                      new Uri(Path.Combine(book, page + ".html")).AbsoluteUri })
                psi.ArgumentList.Add(a);
            try
            {
                using var p = Process.Start(psi)!;
                p.StandardError.ReadToEnd();
                p.WaitForExit();
                if (p.ExitCode != 0) throw new LabException($"chromium exited with code {p.ExitCode}");
            }
            catch (System.ComponentModel.Win32Exception)
            {
                throw new LabException("compare book --screenshots needs Chromium on the PATH " +
                                       "(Debian: apt-get install chromium)");
            }
            Lab.Print($"written: {Path.Combine(Folder, page + ".png")}");
        }
    }

    // ------------------------------------------------------------------------------------------- style

    const string Css = """
        /* MinRL book: labml-style two columns, the derivation on the left, the code on the right. */
        body { margin: 0; font: 15px/1.5 Georgia, "DejaVu Serif", serif; color: #222; background: #fff; }
        nav { display: flex; justify-content: space-between; padding: 10px 24px; background: #f3f3f3;
              font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 14px; }
        nav a { color: #1f5fa8; text-decoration: none; }
        h1, h2, h3 { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; }
        body > h1, body > h2, body > p, body > ol, body > table, body > img { margin-left: 24px; margin-right: 24px; }
        .section { display: flex; align-items: stretch; border-bottom: 1px solid #f0f0f0; }
        .docs { box-sizing: border-box; width: 38%; flex: none; padding: 8px 20px 8px 24px; }
        .docs p { margin: 0 0 8px; }
        .docs h1 { margin: 6px 0 10px; font-size: 22px; line-height: 1.25; }
        .docs h3 { margin: 14px 0 6px; font-size: 16px; }
        .docs pre { font: 12px/1.45 "DejaVu Sans Mono", Menlo, Consolas, monospace; background: #fbfbf4;
                    padding: 6px 8px; overflow-x: auto; white-space: pre; margin: 0 0 8px; }
        .docs ul { margin: 0 0 8px; padding-left: 20px; }
        .code { box-sizing: border-box; width: 62%; flex: none; background: #f7f7f9; padding: 8px 16px;
                border-left: 1px solid #e4e4e8; overflow-x: auto; }
        .code pre { margin: 0; font: 12.5px/1.45 "DejaVu Sans Mono", Menlo, Consolas, monospace; }
        code { font: 13px "DejaVu Sans Mono", Menlo, Consolas, monospace; background: #f3f3f3; padding: 0 3px; }
        .k { color: #0033b3; } .t { color: #1d6b73; } .s { color: #067d17; } .n { color: #1750eb; }
        .c { color: #8c8c8c; font-style: italic; }
        .results, .exercises { padding: 8px 24px 16px; border-top: 2px solid #ddd; }
        .exercises pre { font: 12.5px/1.45 "DejaVu Sans Mono", Menlo, Consolas, monospace; background: #f7f7f9;
                         padding: 8px 12px; overflow-x: auto; }
        details { margin: 6px 0 16px; padding: 4px 12px; background: #f6f8fa; border-left: 3px solid #9ab; }
        summary { cursor: pointer; font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; }
        table { border-collapse: collapse; font: 13px "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 8px 0; }
        th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
        th { background: #f3f3f3; }
        img { max-width: 100%; }
        ol.toc li { margin: 4px 0; }

        """;
}
