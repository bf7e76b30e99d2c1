// compare --seeds: every chapter on several seeds, and what the book reports from them.
//
//     dotnet run -c Release --project compare -- --seeds 1-5          # seeds 1, 2, 3, 4, 5 (or "1,3,7", "1-3,9")
//
// Seed S of chapter C runs into <runs>/seed<S>/<C> — the very folder `compare --seed S` uses — so a run that
// already exists for that seed with the same options (compare writes the command it ran there, as command.txt,
// and the run's summary.json) is read, not run again. From all of them it writes, into <runs>/seeds<spec>/:
//
//     book.md                 one row per chapter: the gold metric, KL, wall time and peak memory as
//                             mean ± std over the seeds (std with n − 1), and the worst seed's gold metric
//     <chapter>.md            one row per seed, then the mean ± std and the worst seed
//     <chapter>.svg           the gold metric's learning curve: mean over seeds, shaded from min to max
//     sample-efficiency.svg   every algorithm's gold metric against the samples it generated, on one pair of axes
//                             per task, with the same bands
//     seeds.json              all of the above as numbers, for the book's pages (compare book)
//
// The learning curves read each chapter's metrics.csv: the held-out evaluation the chapter logs every
// --eval-every steps (chapter 2 logs none while it trains, so its curve is the training batch's accuracy,
// averaged over windows of 25 steps), with the base model at step 0. "Samples generated" counts completions
// sampled to make training data, as summary.json's samples_generated does: an online method's grow by the same
// number each step; an offline one (DPO) used all of its base samples before its first step, so it is one point.
using System.Globalization;
using System.Text;
using System.Text.Json;
using MinRL;

namespace Compare;

/// <summary>Where a chapter's learning curve lives in its run folder, and how its samples grow.</summary>
/// <param name="Column">the metrics.csv column of the gold metric</param>
/// <param name="Window">average this many consecutive steps into one point (1 = every logged value)</param>
/// <param name="Online">samples are generated during training (false: all before it, from the base model)</param>
/// <param name="OfflineKey">summary.json key counting the samples made before training, when it is a part</param>
public sealed record CurveSource(string Column, int Window = 1, bool Online = true, string? OfflineKey = null);

/// <summary>One chapter over the seeds: its runs, the statistics of the table, its mean curve.</summary>
public sealed record ChapterSeeds(string Chapter, List<RunSummary> Runs, Curve Curve)
{
    public Stat Base => Stat.Of(Runs.Select(r => r.Base));
    public Stat Final => Stat.Of(Runs.Select(r => r.Final));
    public Stat Kl => Stat.Of(Runs.Select(r => r.Kl));
    public Stat Wall => Stat.Of(Runs.Select(r => r.WallS));
    public Stat Peak => Stat.Of(Runs.Select(r => r.PeakMb));

    /// <summary>The run with the lowest gold metric (every gold metric here is better when higher).</summary>
    public RunSummary Worst => Runs.MinBy(r => r.Final)!;
}

/// <summary>Mean, sample standard deviation (n − 1; 0 for one value), minimum and maximum of finite values.</summary>
public sealed record Stat(double Mean, double Std, double Min, double Max, int N)
{
    public static Stat Of(IEnumerable<double> values)
    {
        var v = values.Where(double.IsFinite).ToArray();
        if (v.Length == 0) return new(double.NaN, double.NaN, double.NaN, double.NaN, 0);
        double mean = v.Average();
        double std = v.Length < 2 ? 0 : Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1));
        return new(mean, std, v.Min(), v.Max(), v.Length);
    }

    /// <summary>"0.712 ± 0.031" (to <paramref name="digits"/> decimals); "—" when there is no value.</summary>
    public string Text(int digits = 3) => N == 0 ? "—"
        : $"{Mean.ToString("F" + digits, CultureInfo.InvariantCulture)} ± " +
          Std.ToString("F" + digits, CultureInfo.InvariantCulture);
}

/// <summary>A learning curve over seeds: at each step, the samples generated so far and the gold metric's
/// mean, minimum and maximum over the seeds.</summary>
public sealed record Curve(double[] Steps, double[] Samples, double[] Mean, double[] Min, double[] Max);

public static class Seeds
{
    /// <summary>Each chapter's learning curve (see the file comment).</summary>
    public static readonly IReadOnlyDictionary<string, CurveSource> Sources = new Dictionary<string, CurveSource>
    {
        ["01-policy-gradient"] = new("eval_accuracy"),
        ["02-actor-critic-gae"] = new("accuracy", Window: 25),
        ["03-trpo"] = new("eval_accuracy"),
        ["04-ppo"] = new("eval_accuracy"),
        ["05-reward-model"] = new("eval_accuracy", Online: false),
        ["06-rlhf"] = new("gold", OfflineKey: "samples_generated_rm_pairs"),
        ["07-dpo"] = new("eval_gold", Online: false),
        ["08-grpo"] = new("eval_accuracy"),
    };

    /// <summary>The seeds of <paramref name="spec"/>: numbers and ranges separated by commas ("1-5", "1,3,7",
    /// "1-3,9"), in the order given, each once.</summary>
    public static List<long> Parse(string spec)
    {
        var seeds = new List<long>();
        foreach (var part in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var ends = part.Split('-', StringSplitOptions.TrimEntries);
            bool ok = (ends.Length is 1 or 2) && ends.All(e => long.TryParse(e, NumberStyles.None,
                CultureInfo.InvariantCulture, out _));
            long a = ok ? long.Parse(ends[0], CultureInfo.InvariantCulture) : 0;
            long b = ok ? long.Parse(ends[^1], CultureInfo.InvariantCulture) : 0;
            if (!ok || b < a || b - a > 1000)
                throw new LabUsageException($"--seeds: '{part}' is not a seed or a range like 1-5 " +
                                            "(give numbers and ranges separated by commas, e.g. 1-5 or 1,3,7)");
            for (long s = a; s <= b; s++) if (!seeds.Contains(s)) seeds.Add(s);
        }
        if (seeds.Count == 0) throw new LabUsageException("--seeds: no seed given (e.g. --seeds 1-5)");
        return seeds;
    }

    /// <summary>The chapter's gold curve in one run folder: (step, value) pairs, the base at step 0 first.</summary>
    public static List<(double Step, double Value)> ReadCurve(string runDir, CurveSource source, RunSummary summary)
    {
        var lines = File.ReadAllLines(Path.Combine(runDir, "metrics.csv"));
        var header = lines[0].Split(',');
        int col = Array.IndexOf(header, source.Column);
        if (col < 0) throw new LabException($"{runDir}/metrics.csv has no column '{source.Column}'");
        var points = new List<(double Step, double Value)>();
        foreach (var line in lines.Skip(1))
        {
            var cells = line.Split(',');
            if (col < cells.Length && double.TryParse(cells[col], NumberStyles.Float, CultureInfo.InvariantCulture,
                                                      out double v))
                points.Add((double.Parse(cells[0], CultureInfo.InvariantCulture), v));
        }
        if (source.Window > 1)   // windows of Window steps, each point at its window's last step
            points = [.. points.Chunk(source.Window).Select(w => (w[^1].Step, w.Average(p => p.Value)))];
        if (points.Count == 0 || points[0].Step > 0) points.Insert(0, (0, summary.Base));
        return points;
    }

    /// <summary>Samples generated by the end of <paramref name="step"/> of <paramref name="lastStep"/>.</summary>
    public static double SamplesAt(double step, double lastStep, CurveSource source, RunSummary summary)
    {
        double total = Number(summary, "samples_generated");
        if (!source.Online) return total;
        double offline = source.OfflineKey is null ? 0 : Number(summary, source.OfflineKey);
        return offline + (total - offline) * (lastStep > 0 ? step / lastStep : 0);
    }

    static double Number(RunSummary s, string key) =>
        s.Extra.TryGetValue(key, out var v) && v is double d ? d : double.NaN;

    /// <summary>Mean, min and max over the seeds' curves, at the steps every seed logged.</summary>
    public static Curve Aggregate(IReadOnlyList<List<(double Step, double Value)>> curves,
        IReadOnlyList<RunSummary> runs, CurveSource source)
    {
        var steps = curves.Select(c => c.Select(p => p.Step).ToHashSet())
            .Aggregate((a, b) => { a.IntersectWith(b); return a; }).Order().ToArray();
        var at = steps.Select(s => curves.Select(c => c.First(p => p.Step == s).Value).ToArray()).ToArray();
        double last = steps.Length == 0 ? 0 : steps[^1];
        return new Curve(steps, [.. steps.Select(s => SamplesAt(s, last, source, runs[0]))],
            [.. at.Select(v => v.Average())], [.. at.Select(v => v.Min())], [.. at.Select(v => v.Max())]);
    }

    public static readonly string[] BookHeaders =
    [
        "chapter", "algorithm", "gold metric", "base", "final: mean ± std", "worst seed", "KL (nats)", "wall (s)",
        "peak (MiB)", "samples generated",
    ];

    /// <summary>The book table: one row per chapter.</summary>
    public static List<object?[]> BookRows(IEnumerable<ChapterSeeds> chapters) =>
    [
        .. chapters.Select(c => new object?[]
        {
            c.Chapter, Program.Algorithms.GetValueOrDefault(c.Chapter, c.Chapter), c.Runs[0].Metric,
            c.Base.Text(), c.Final.Text(),
            $"{c.Worst.Final.ToString("F3", CultureInfo.InvariantCulture)} (seed {c.Worst.Seed})",
            c.Kl.Text(2), c.Wall.Text(1), c.Peak.Text(0),
            Program.Count(c.Runs[0], "samples_generated"),
        }),
    ];

    public static readonly string[] ChapterHeaders = ["seed", "base", "final", "KL (nats)", "wall (s)", "peak (MiB)"];

    /// <summary>A chapter's table: a row per seed, then mean ± std, then the worst seed again.</summary>
    public static List<object?[]> ChapterRows(ChapterSeeds c)
    {
        static string F(double v, int d) => double.IsFinite(v) ? v.ToString("F" + d, CultureInfo.InvariantCulture)
                                                                 : "—";
        var rows = c.Runs.Select(r => new object?[]
        {
            r.Seed.ToString(CultureInfo.InvariantCulture), F(r.Base, 3), F(r.Final, 3), F(r.Kl, 2), F(r.WallS, 1),
            F(r.PeakMb, 0),
        }).ToList();
        rows.Add(["mean ± std", c.Base.Text(), c.Final.Text(), c.Kl.Text(2),
                  c.Wall.Text(1), c.Peak.Text(0)]);
        var w = c.Worst;
        rows.Add([$"worst (seed {w.Seed})", F(w.Base, 3), F(w.Final, 3), F(w.Kl, 2), F(w.WallS, 1), F(w.PeakMb, 0)]);
        return rows;
    }

    /// <summary>A chapter's learning curve: mean over seeds with the min–max band.</summary>
    public static SvgPlot CurvePlot(ChapterSeeds c, int seeds)
    {
        var plot = new SvgPlot($"{c.Chapter} — {seeds} seeds") { Columns = 1 };
        var k = c.Curve;
        string name = "mean, min–max band";
        var source = Sources[c.Chapter];
        string title = source.Window > 1                  // chapter 2 evaluates held-out prompts only at the end
            ? $"{source.Column} of the training batches (mean of {source.Window} steps)" : c.Runs[0].Metric;
        plot.Add(title, new Series(name, k.Steps, k.Mean) { Low = k.Min, High = k.Max, XLabel = "step" })
            .HLine(c.Base.Mean, "base");
        return plot;
    }

    /// <summary>The book's figure: gold metric against samples generated, one panel per task, every algorithm
    /// in it, each with its band; an offline method is one point with a bar from min to max.</summary>
    public static SvgPlot SampleEfficiency(IReadOnlyList<ChapterSeeds> chapters, int seeds)
    {
        var plot = new SvgPlot($"Sample efficiency — mean of {seeds} seeds, band min–max") { Columns = 2 };
        foreach (var (title, picks) in new[]
                 {
                     ("verifiable task: held-out accuracy", new[] { "01", "02", "03", "04", "08" }),
                     ("preference task: held-out gold score", new[] { "06", "07" }),
                 })
        {
            var series = new List<Series>();
            foreach (var c in chapters.Where(c => picks.Any(p => c.Chapter.StartsWith(p, StringComparison.Ordinal))))
            {
                var k = c.Curve;
                var source = Sources[c.Chapter];
                string name = Program.Algorithms.GetValueOrDefault(c.Chapter, c.Chapter)
                              + (source.Window > 1 ? " (batches)" : "");
                series.Add(source.Online
                    ? new Series(name, k.Samples, k.Mean) { Low = k.Min, High = k.Max, XLabel = "samples generated" }
                    : new Series(name + " (offline: final)", [k.Samples[^1], k.Samples[^1]], [c.Final.Min, c.Final.Max])
                      { XLabel = "samples generated" });
            }
            // From 0 samples: RLHF's curve starts where its reward model's pairs were sampled, not at the left.
            if (series.Count > 0) plot.Add(title, [.. series]).XMin = 0;
        }
        return plot;
    }

    /// <summary>Reads the runs of every chapter and seed and writes the tables, figures and seeds.json into
    /// <paramref name="dir"/>; returns the chapters read.</summary>
    public static List<ChapterSeeds> Report(IEnumerable<string> chapters, IReadOnlyList<long> seeds,
        Func<long, string, string> runDir, string dir)
    {
        Directory.CreateDirectory(dir);
        var utf8 = new UTF8Encoding(false);
        var all = new List<ChapterSeeds>();
        foreach (var chapter in chapters)
        {
            var source = Sources[chapter];
            var runs = seeds.Select(s => RunSummary.Read(Path.Combine(runDir(s, chapter), "summary.json"))).ToList();
            var curves = seeds.Select((s, i) => ReadCurve(runDir(s, chapter), source, runs[i])).ToList();
            var c = new ChapterSeeds(chapter, runs, Aggregate(curves, runs, source));
            all.Add(c);
            File.WriteAllText(Path.Combine(dir, chapter + ".md"), Program.Markdown(ChapterHeaders, ChapterRows(c)),
                              utf8);
            CurvePlot(c, seeds.Count).Write(Path.Combine(dir, chapter + ".svg"));
        }
        File.WriteAllText(Path.Combine(dir, "book.md"), Program.Markdown(BookHeaders, BookRows(all)), utf8);
        SampleEfficiency(all, seeds.Count).Write(Path.Combine(dir, "sample-efficiency.svg"));
        File.WriteAllText(Path.Combine(dir, "seeds.json"), Json(all, seeds), utf8);
        return all;
    }

    static string Json(List<ChapterSeeds> all, IReadOnlyList<long> seeds)
    {
        static object? N(double v) => double.IsFinite(v) ? Math.Round(v, 6) : null;
        static object S(Stat s) => new { mean = N(s.Mean), std = N(s.Std), min = N(s.Min), max = N(s.Max) };
        var doc = new
        {
            seeds,
            engine = Kit.Engine,
            date = DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
            chapters = all.Select(c => new
            {
                chapter = c.Chapter, metric = c.Runs[0].Metric,
                final = S(c.Final), kl = S(c.Kl), wall_s = S(c.Wall), peak_mb = S(c.Peak),
                worst_seed = c.Worst.Seed,
                runs = c.Runs.Select(r => new
                {
                    seed = r.Seed, @base = N(r.Base), final = N(r.Final), kl = N(r.Kl), wall_s = N(r.WallS),
                    peak_mb = N(r.PeakMb),
                }),
                curve = new
                {
                    steps = c.Curve.Steps, samples = c.Curve.Samples.Select(N), mean = c.Curve.Mean.Select(N),
                    min = c.Curve.Min.Select(N), max = c.Curve.Max.Select(N),
                },
            }),
        };
        return JsonSerializer.Serialize(doc, new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }
}
