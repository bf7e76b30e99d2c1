using System.Net;
using System.Text.RegularExpressions;
using Compare;

namespace MinRL.Chapters.Tests;

/// <summary>compare --seeds (Seeds.cs) and compare book (Book.cs): the statistics, the curves, the reuse of runs,
/// the pages' parts, and that the committed pages in docs/book are what the sources make.</summary>
public class BookTests
{
    static string Root()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "MinRL.sln"))) return d.FullName;
        throw new InvalidOperationException("no MinRL.sln above the test's folder");
    }

    static readonly string[] ChapterNames = Compare.Program.Algorithms.Keys.Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public void The_committed_pages_are_what_the_sources_make()
    {
        var stale = Book.Stale(Root());
        Assert.True(stale.Count == 0, "docs/book is stale; run `dotnet run -c Release --project compare -- book`: " +
                                      string.Join(", ", stale));
    }

    [Theory]
    [InlineData("1-5", new long[] { 1, 2, 3, 4, 5 })]
    [InlineData("1,3,7", new long[] { 1, 3, 7 })]
    [InlineData(" 1-3, 9 ,2", new long[] { 1, 2, 3, 9 })]
    [InlineData("4", new long[] { 4 })]
    public void Seeds_parse_lists_and_ranges_each_seed_once(string spec, long[] expected) =>
        Assert.Equal(expected, Seeds.Parse(spec));

    [Theory]
    [InlineData("5-1")]
    [InlineData("a")]
    [InlineData("1-2-3")]
    [InlineData(",")]
    [InlineData("-3")]
    public void Seeds_parse_names_a_bad_part(string spec)
    {
        var e = Assert.Throws<LabUsageException>(() => Seeds.Parse(spec));
        Assert.Contains("--seeds", e.Message);
    }

    [Fact]
    public void Stat_is_the_mean_and_the_sample_std_over_finite_values()
    {
        var s = Stat.Of([1, 2, 3, 4, double.NaN]);
        Assert.Equal(2.5, s.Mean, 12);
        Assert.Equal(Math.Sqrt(5.0 / 3.0), s.Std, 12);                      // Σ(x − 2.5)² = 5, over n − 1 = 3
        Assert.Equal((1.0, 4.0, 4), (s.Min, s.Max, s.N));
        Assert.Equal("2.500 ± 1.291", s.Text());
        Assert.Equal(0, Stat.Of([0.7]).Std);
        Assert.Equal("—", Stat.Of([double.NaN]).Text());
    }

    static RunSummary Summary(long seed, double final, double samples, double? offline = null)
    {
        var s = new RunSummary
        {
            Chapter = "06-rlhf", Seed = seed, Metric = "gold", Base = 0.3, Final = final, Kl = 1, WallS = 10,
            PeakMb = 500, Extra = { ["samples_generated"] = samples },
        };
        if (offline is double o) s.Extra["samples_generated_rm_pairs"] = o;
        return s;
    }

    [Fact]
    public void Samples_grow_linearly_after_the_offline_part_and_an_offline_method_is_one_point()
    {
        var online = new CurveSource("gold", OfflineKey: "samples_generated_rm_pairs");
        var s = Summary(1, 0.5, samples: 9000, offline: 1000);
        Assert.Equal(1000, Seeds.SamplesAt(0, 100, online, s));
        Assert.Equal(5000, Seeds.SamplesAt(50, 100, online, s));
        Assert.Equal(9000, Seeds.SamplesAt(100, 100, online, s));
        Assert.Equal(9000, Seeds.SamplesAt(0, 100, new CurveSource("eval_gold", Online: false), s));
    }

    [Fact]
    public void A_curve_reads_its_column_puts_the_base_at_step_0_and_averages_windows()
    {
        string dir = Directory.CreateTempSubdirectory("minrl-curve").FullName;
        try
        {
            File.WriteAllLines(Path.Combine(dir, "metrics.csv"),
                ["step,loss,acc", "1,0.5,0.1", "2,0.4,", "3,0.3,0.3", "4,0.2,0.5", "5,0.1,0.7"]);
            var s = Summary(1, 0.7, 500);
            Assert.Equal([(0, 0.3), (1, 0.1), (3, 0.3), (4, 0.5), (5, 0.7)],
                         Seeds.ReadCurve(dir, new CurveSource("acc"), s));
            var windows = Seeds.ReadCurve(dir, new CurveSource("acc", Window: 2), s);
            Assert.Equal([0, 3, 5], windows.Select(p => p.Step));
            Assert.Equal([0.3, 0.2, 0.6], windows.Select(p => Math.Round(p.Value, 12)));   // (0.1+0.3)/2, (0.5+0.7)/2
            Assert.Throws<LabException>(() => Seeds.ReadCurve(dir, new CurveSource("gold"), s));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Aggregate_takes_the_steps_every_seed_logged_and_their_mean_min_and_max()
    {
        List<(double, double)> a = [(0, 0.2), (10, 0.4), (20, 0.6)], b = [(0, 0.2), (10, 0.8), (15, 0.1), (20, 0.7)];
        var runs = new[] { Summary(1, 0.6, 2000), Summary(2, 0.7, 2000) };
        var k = Seeds.Aggregate([a, b], runs, new CurveSource("gold"));
        Assert.Equal([0, 10, 20], k.Steps);
        Assert.Equal([0, 1000, 2000], k.Samples);
        Assert.Equal([0.2, 0.6, 0.65], k.Mean.Select(v => Math.Round(v, 12)));
        Assert.Equal([0.2, 0.4, 0.6], k.Min);
        Assert.Equal([0.2, 0.8, 0.7], k.Max);
    }

    [Fact]
    public void The_chapter_table_has_a_row_per_seed_then_mean_and_worst()
    {
        var runs = new List<RunSummary> { Summary(1, 0.6, 10), Summary(2, 0.5, 10), Summary(3, 0.7, 10) };
        var c = new ChapterSeeds("06-rlhf", runs, new Curve([], [], [], [], []));
        var rows = Seeds.ChapterRows(c);
        Assert.Equal(5, rows.Count);
        Assert.Equal("0.600 ± 0.100", rows[3][2]);
        Assert.Equal("worst (seed 2)", rows[4][0]);
        Assert.Equal("0.500", rows[4][2]);
        Assert.Equal("0.500 (seed 2)", Seeds.BookRows([c])[0][5]);
    }

    [Fact]
    public void A_run_is_reused_only_when_it_finished_with_the_same_command()
    {
        string dir = Directory.CreateTempSubdirectory("minrl-reuse").FullName;
        try
        {
            Assert.False(Compare.Program.Reusable(dir, "run --seed 2"));
            File.WriteAllText(Path.Combine(dir, "summary.json"), "{}");
            File.WriteAllText(Path.Combine(dir, "metrics.csv"), "step\n");
            Assert.False(Compare.Program.Reusable(dir, "run --seed 2"));              // no command.txt: not compare's
            File.WriteAllText(Path.Combine(dir, "command.txt"), "run --seed 2\n");
            Assert.True(Compare.Program.Reusable(dir, "run --seed 2"));
            Assert.False(Compare.Program.Reusable(dir, "run --seed 2 --quick"));      // other options
            File.Delete(Path.Combine(dir, "summary.json"));
            Assert.False(Compare.Program.Reusable(dir, "run --seed 2"));              // unfinished
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Sections_put_each_comment_block_beside_the_code_below_it()
    {
        var sections = Book.Sections(
            "// Title.\n//\n//     x = 1\nusing System;\n\n    // Why.\n    int a = 1;   // trailing\n" +
            "    /// <summary>doc</summary>\n    int b;\n\n// End.\n");
        Assert.Equal(3, sections.Count);
        Assert.Equal(["Title.", "", "    x = 1"], sections[0].Doc);
        Assert.Equal(["using System;"], sections[0].Code);
        Assert.Equal(["Why."], sections[1].Doc);
        Assert.Equal(["    int a = 1;   // trailing", "    /// <summary>doc</summary>", "    int b;"],
                     sections[1].Code);
        Assert.Equal(["End."], sections[2].Doc);
        Assert.Empty(sections[2].Code);
    }

    [Theory]
    [MemberData(nameof(Chapters))]
    public void Sections_keep_every_line_of_a_chapter(string chapter)
    {
        string source = File.ReadAllText(Path.Combine(Root(), chapter, "Program.cs")).Replace("\r\n", "\n");
        var kept = Book.Sections(source).SelectMany(s => s.Doc.Concat(s.Code))
            .Select(l => l.Trim().TrimStart('/').Trim()).Where(l => l.Length > 0);
        var all = source.Split('\n').Select(l => l.Trim().TrimStart('/').Trim()).Where(l => l.Length > 0);
        Assert.Equal(all, kept);
    }

    public static TheoryData<string> Chapters() => [.. ChapterNames];

    [Theory]
    [MemberData(nameof(Chapters))]
    public void Highlighting_a_chapter_only_adds_spans(string chapter)
    {
        string source = File.ReadAllText(Path.Combine(Root(), chapter, "Program.cs")).Replace("\r\n", "\n");
        string html = Book.Highlight(source);
        Assert.Equal(source, WebUtility.HtmlDecode(Regex.Replace(html, "<[^>]+>", "")));
        Assert.DoesNotMatch("<span[^>]*>[^<]*<span", html);                                   // no nesting
    }

    [Fact]
    public void Highlighting_tells_keywords_strings_numbers_and_comments_apart()
    {
        string html = Book.Highlight("var s = $\"{F(\"x\")} y\"; // note\nint n = 3e-4;");
        Assert.Equal("<span class=\"k\">var</span> s = <span class=\"s\">$&quot;{F(&quot;x&quot;)} y&quot;</span>; " +
                     "<span class=\"c\">// note</span>\n" +
                     "<span class=\"k\">int</span> n = <span class=\"n\">3e-4</span>;",
                     html);
    }

    [Fact]
    public void A_comment_block_becomes_headings_paragraphs_lists_and_formulas()
    {
        string html = Book.Doc(["─── The loss ───", "", "We minimise", "the `loss`:", "", "    L = −log σ(Δ)", "",
                                "* one", "  more", "* two"]);
        Assert.Equal("<h3>The loss</h3>\n<p>We minimise the <code>loss</code>:</p>\n<pre>L = −log σ(Δ)</pre>\n" +
                     "<ul><li>one more</li><li>two</li></ul>\n", html);
    }

    [Fact]
    public void Exercise_markdown_folds_answers_and_makes_links_relative_to_the_book()
    {
        string html = Book.Markdown(["### 1. Clip less", "", "See [PPO](04-ppo.md).", "", "```bash", "dotnet run <x>",
                                     "```", "", "<details><summary>Answer</summary>", "", "- **0.41** vs 0.65",
                                     "", "</details>"]);
        Assert.Equal("<h3 id=\"exercise-1\">1. Clip less</h3>\n<p>See <a href=\"../04-ppo.md\">PPO</a>.</p>\n" +
                     "<pre class=\"bash\">dotnet run &lt;x&gt;</pre>\n<details><summary>Answer</summary>\n" +
                     "<ul><li><b>0.41</b> vs 0.65</li></ul>\n</details>\n", html);
    }

    [Fact]
    public void A_markdown_table_becomes_an_html_table()
    {
        Assert.Equal("<table>\n<tr><th>a</th><th>b</th></tr>\n<tr><td>1</td><td><code>x</code></td></tr>\n</table>\n",
                     Book.MarkdownTable("| a | b |\n|---|---|\n| 1 | `x` |\n"));
    }
}
