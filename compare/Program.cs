// The book's side-by-side comparison: every chapter, one seed, the same base model, one table.
//
//     dotnet run -c Release --project compare                          # all chapters, seed 1
//     dotnet run -c Release --project compare -- --chapters 04,07      # a subset
//     dotnet run -c Release --project compare -- --table-only          # re-print the table of the last runs
//     dotnet run -c Release --project compare -- --chapters 07 --variants "--loss dpo; --loss hinge; --loss kto"
//                                                                      # one chapter's options side by side
//     dotnet run -c Release --project compare -- --seeds 1-5           # every chapter on 5 seeds (Seeds.cs)
//     dotnet run -c Release --project compare -- book                  # the HTML book in docs/book (Book.cs)
//
// Each chapter runs in its own process (`dotnet run -c Release --project <chapter> -- --seed S --out
// <out>/<chapter>`), one after the other — never two at once, so each gets the whole machine and its
// wall time and peak memory are its own. Every chapter starts from the same cached base model
// (BaseModel.Load(new BaseModelConfig())), so the "base" column is the same model measured by each
// chapter's own gold metric. The table is read from the summary.json each chapter writes:
//
//     algorithm        the chapter's method
//     models held      networks in memory while training (policy, reference, critic, reward model)
//     trainable        parameters the optimiser updates
//     samples          completions sampled for training (0 for offline methods: DPO, the reward model)
//     gold metric      what the chapter is judged by: sampled accuracy on held-out problems for the
//                      verifiable task, mean hidden gold score for the preference chapters, preference
//                      accuracy for the reward model
//     base → final     that metric before and after training
//     KL               KL(π_θ ‖ π_ref) per completion at the end, nats
//     wall, peak       seconds and MiB of the chapter's process
//
// The table is printed, and written beside the runs as comparison.md (the README's copy) and
// comparison.json.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using MinRL;

namespace Compare;

public sealed record Args : LabArgs
{
    [Help("not used: each chapter runs its own default number of steps (giving it is an error)")]
    public override int Steps { get; init; } = 1;

    [Help("chapters to run: all, or a comma-separated list of numbers or folder names (e.g. 01,4,07-dpo)")]
    public string Chapters { get; init; } = "all";

    [Help("run nothing: read the summary.json files already under --out and print the table")]
    public bool TableOnly { get; init; }

    [Help("variants of each chosen chapter to run side by side: their options, separated by ';' " +
          "(e.g. \"--loss dpo; --loss simpo --beta 2\"); empty = each chapter's defaults once")]
    public string Variants { get; init; } = "";

    [Help("run every chapter on each of these seeds (e.g. 1-5, or 1,3,7) into <out>/seed<N>/<chapter>, reusing " +
          "runs already there with the same options, and report mean ± std over them; empty = just --seed")]
    public string Seeds { get; init; } = "";
}

public static class Program
{
    static int Main(string[] argv) => argv is ["book", .. var rest]
        ? Book.Run(rest)
        : Lab.Run<Args>(argv, "compare", "every chapter on the same base model, side by side", Run);

    /// <summary>The method each chapter implements, as the table names it.</summary>
    public static readonly IReadOnlyDictionary<string, string> Algorithms = new Dictionary<string, string>
    {
        ["01-policy-gradient"] = "REINFORCE",
        ["02-actor-critic-gae"] = "actor-critic + GAE",
        ["03-trpo"] = "TRPO",
        ["04-ppo"] = "PPO",
        ["05-reward-model"] = "reward model (Bradley–Terry)",
        ["06-rlhf"] = "RLHF (PPO on a reward model)",
        ["07-dpo"] = "DPO",
        ["08-grpo"] = "GRPO",
    };

    public static readonly string[] Headers =
    [
        "algorithm", "models held", "trainable params", "samples generated", "gold metric", "base → final",
        "KL (nats)", "wall (s)", "peak (MiB)",
    ];

    static int Run(Args args)
    {
        if (args.IsGiven(nameof(args.Steps)))
            throw new LabUsageException("compare: --steps would mean something different to every chapter; " +
                                        "run one chapter with its own --steps instead");
        if (args.Seeds.Length > 0) return RunSeeds(args);
        string root = RepoRoot();
        var chapters = Chapters(root, args.Chapters);
        var variants = ParseVariants(args.Variants);
        var summaries = new List<RunSummary>();
        var rows = new List<object?[]>();
        var failed = new List<string>();
        foreach (var chapter in chapters)
            foreach (var variant in variants)
            {
                string label = string.Join(' ', variant);
                string outDir = variant.Length == 0 ? Path.Combine(args.Out, chapter)
                                                    : Path.Combine(args.Out, chapter, Slug(label));
                string name = variant.Length == 0 ? chapter : $"{chapter} {label}";
                if (!args.TableOnly)
                {
                    Lab.Print($"── {name} ──────────────────────────────────────────");
                    int code = RunChapter(root, chapter, args, args.Seed, outDir, variant);
                    if (code != 0) { failed.Add($"{name} (exit code {code})"); continue; }
                }
                string path = Path.Combine(outDir, "summary.json");
                if (!File.Exists(path)) { failed.Add($"{name} (no {path})"); continue; }
                var summary = RunSummary.Read(path);
                summaries.Add(summary);
                rows.Add(Row(summary, variant.Length == 0 ? null : label));
            }

        Lab.Table($"MinRL side by side, seed {args.Seed.ToString(CultureInfo.InvariantCulture)}", Headers, rows);
        File.WriteAllText(Path.Combine(args.Out, "comparison.md"), Markdown(Headers, rows), new UTF8Encoding(false));
        File.WriteAllText(Path.Combine(args.Out, "comparison.json"),
            "[\n" + string.Join(",\n", summaries.Select(s => s.ToJson().TrimEnd())) + "\n]\n", new UTF8Encoding(false));
        Lab.Print($"written: {Path.Combine(args.Out, "comparison.md")}, comparison.json");
        if (failed.Count == 0) return 0;
        Lab.Error("not in the table: " + string.Join("; ", failed));
        return 1;
    }

    /// <summary><c>--seeds</c>: each chapter on each seed (reusing finished runs made with the same command),
    /// then Seeds.Report's tables and figures.</summary>
    static int RunSeeds(Args args)
    {
        if (args.IsGiven(nameof(args.Seed)))
            throw new LabUsageException("compare: give --seed (one seed) or --seeds (several), not both");
        if (args.Variants.Length > 0)
            throw new LabUsageException("compare: --variants runs one seed; give it without --seeds");
        string root = RepoRoot();
        var chapters = Chapters(root, args.Chapters);
        var seeds = Seeds.Parse(args.Seeds);
        string quick = args.Quick ? "-quick" : "";
        // By default next to compare's own seed folders: runs/compare/seed<N>, as `compare --seed N` writes them.
        string runs = args.IsGiven(nameof(args.Out)) ? args.Out : Path.Combine("runs", "compare");
        string RunDir(long seed, string chapter) =>
            Path.Combine(runs, $"seed{seed.ToString(CultureInfo.InvariantCulture)}{quick}", chapter);
        if (!args.TableOnly)
            foreach (long seed in seeds)
                foreach (var chapter in chapters)
                {
                    string outDir = RunDir(seed, chapter);
                    string name = $"{chapter}, seed {seed.ToString(CultureInfo.InvariantCulture)}";
                    string stamp = string.Join(' ', ChapterArguments(root, chapter, args, seed, outDir, []));
                    if (Reusable(outDir, stamp))
                    {
                        Lab.Print($"── {name}: reused {outDir} (same seed and options)");
                        continue;
                    }
                    Lab.Print($"── {name} ──────────────────────────────────────────");
                    int code = RunChapter(root, chapter, args, seed, outDir, []);
                    if (code != 0)
                    {
                        Lab.Error($"{name} failed (exit code {code}); its folder is left as it is: {outDir}");
                        return 1;
                    }
                }
        string spec = string.Join(',', seeds.Select(s => s.ToString(CultureInfo.InvariantCulture)));
        string dir = Path.Combine(runs, $"seeds{Slug(args.Seeds)}{quick}");
        var missing = seeds.SelectMany(s => chapters.Select(c => RunDir(s, c)))
            .Where(d => !File.Exists(Path.Combine(d, "summary.json"))).ToList();
        if (missing.Count > 0)
            throw new LabException($"compare: no summary.json in {string.Join(", ", missing)} (run without " +
                                   "--table-only to make them)");
        var report = Seeds.Report(chapters, seeds, RunDir, dir);
        Lab.Table($"MinRL over seeds {spec}: mean ± std (n − 1), and the worst seed", Seeds.BookHeaders,
                  Seeds.BookRows(report));
        Lab.Print($"written: {dir}/book.md, seeds.json, sample-efficiency.svg, and a table and a figure per chapter");
        return 0;
    }

    /// <summary>The chapter folders of the repository at <paramref name="root"/> that <paramref name="spec"/> names
    /// (see <see cref="Select"/>).</summary>
    public static List<string> Chapters(string root, string spec) =>
        Select(spec, Directory.GetDirectories(root).Select(Path.GetFileName).OfType<string>());

    /// <summary>The chapter folders named by <paramref name="spec"/> ("all", or numbers / folder names
    /// separated by commas), in book order. An unknown name is an error listing the chapters.</summary>
    public static List<string> Select(string spec, IEnumerable<string> folders)
    {
        var known = folders.Where(Algorithms.ContainsKey).Order(StringComparer.Ordinal).ToList();
        if (spec.Trim() == "all") return known;
        var picked = new List<string>();
        foreach (var raw in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string? hit = int.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out int n)
                ? known.FirstOrDefault(f => f.StartsWith(n.ToString("00", CultureInfo.InvariantCulture) + "-",
                                                         StringComparison.Ordinal))
                : known.FirstOrDefault(f => f == raw);
            if (hit is null)
                throw new LabUsageException($"--chapters: no chapter '{raw}' (there are: {string.Join(", ", known)})");
            if (!picked.Contains(hit)) picked.Add(hit);
        }
        return [.. picked.Order(StringComparer.Ordinal)];
    }

    /// <summary>The variants of <c>--variants</c>: each one's options, split on white space; none given is one
    /// variant with no options (each chapter's defaults).</summary>
    public static List<string[]> ParseVariants(string spec)
    {
        var variants = spec.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(v => v.Split(' ', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            .ToList();
        if (variants.Any(v => v.Any(a => a is "--seed" or "--out")))
            throw new LabUsageException("--variants: --seed and --out are compare's own; give them once, outside");
        return variants.Count == 0 ? [[]] : variants;
    }

    /// <summary>A folder name for a variant: "--loss simpo --beta 2" → "loss-simpo-beta-2".</summary>
    public static string Slug(string label) =>
        string.Join('-', label.ToLowerInvariant()
            .Split(label.Where(c => !char.IsLetterOrDigit(c) && c != '.').Distinct().ToArray(),
                   StringSplitOptions.RemoveEmptyEntries));

    /// <summary>One table row from a chapter's summary (missing extra keys print as "—"); a variant's options
    /// follow the algorithm's name.</summary>
    public static object?[] Row(RunSummary s, string? variant = null) =>
    [
        (Algorithms.TryGetValue(s.Chapter, out var name) ? name : s.Chapter) + (variant is null ? "" : $" ({variant})"),
        Count(s, "models_held"),
        Count(s, "trainable_params"),
        Count(s, "samples_generated"),
        s.Metric,
        $"{Lab.Fmt(s.Base)} → {Lab.Fmt(s.Final)}",
        double.IsNaN(s.Kl) ? "—" : Lab.Fmt(s.Kl),
        Math.Round(s.WallS, 1),
        Math.Round(s.PeakMb),
    ];

    public static object Count(RunSummary s, string key) =>
        s.Extra.TryGetValue(key, out var v) && v is double d ? (long)Math.Round(d) : "—";

    /// <summary>A GitHub-flavoured markdown table (numbers as <see cref="Lab.Fmt"/> prints them).</summary>
    public static string Markdown(string[] headers, IEnumerable<object?[]> rows)
    {
        var sb = new StringBuilder();
        sb.Append("| ").AppendJoin(" | ", headers).Append(" |\n");
        sb.Append('|').AppendJoin("|", headers.Select(_ => "---")).Append("|\n");
        foreach (var r in rows)
            sb.Append("| ").AppendJoin(" | ", r.Select(Text)).Append(" |\n");
        return sb.ToString();
    }

    static string Text(object? v) => v switch
    {
        null => "—",
        long l => l.ToString("N0", CultureInfo.InvariantCulture),
        double d => Lab.Fmt(d),
        _ => Convert.ToString(v, CultureInfo.InvariantCulture) ?? "",
    };

    /// <summary>Whether <paramref name="outDir"/> holds a finished run (summary.json) made by exactly
    /// <paramref name="command"/> (its command.txt, which compare writes after a run succeeds).</summary>
    public static bool Reusable(string outDir, string command)
    {
        string stamp = Path.Combine(outDir, "command.txt");
        return File.Exists(Path.Combine(outDir, "summary.json")) && File.Exists(Path.Combine(outDir, "metrics.csv"))
               && File.Exists(stamp) && File.ReadAllText(stamp).Trim() == command;
    }

    /// <summary>What compare passes to `dotnet`: run the chapter on compare's engine, seed and options.</summary>
    static List<string> ChapterArguments(string root, string chapter, Args args, long seed, string outDir,
        string[] variant)
    {
        // The chapters run on the engine compare was built with (-p:Engine=...).
        var list = new List<string> { "run", "-c", "Release", $"-p:Engine={Kit.Engine}",
                                      "--project", Path.Combine(root, chapter), "--",
                                      "--seed", seed.ToString(CultureInfo.InvariantCulture), "--out", outDir };
        list.AddRange(variant);
        if (args.Quick) list.Add("--quick");
        if (args.Device != ComputeDevice.Cpu) list.AddRange(["--device", "cuda"]);
        if (args.Threads > 0) list.AddRange(["--threads", args.Threads.ToString(CultureInfo.InvariantCulture)]);
        return list;
    }

    static int RunChapter(string root, string chapter, Args args, long seed, string outDir, string[] variant)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            UseShellExecute = false, WorkingDirectory = Directory.GetCurrentDirectory(),
        };
        var arguments = ChapterArguments(root, chapter, args, seed, outDir, variant);
        foreach (var a in arguments) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("compare: could not start 'dotnet'");
        p.WaitForExit();
        // The command, beside the run: --seeds reads it to tell a finished run with the same options.
        if (p.ExitCode == 0 && Directory.Exists(outDir))
            File.WriteAllText(Path.Combine(outDir, "command.txt"), string.Join(' ', arguments) + "\n");
        return p.ExitCode;
    }

    /// <summary>The folder holding MinRL.sln, from the current directory upwards.</summary>
    public static string RepoRoot()
    {
        for (var d = new DirectoryInfo(Directory.GetCurrentDirectory()); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "MinRL.sln"))) return d.FullName;
        throw new LabException("compare: run it from inside the MinRL repository " +
                               "(no MinRL.sln above the current folder)");
    }
}
