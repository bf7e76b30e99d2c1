// The Lab: how every chapter talks to its reader.
//
// A chapter's whole entry point is one call,
//
//     return Lab.Run<Args>(args, "01-policy-gradient", "REINFORCE on a+b=", Train);
//
// which parses the command line into the chapter's Args record (--help lists every option), makes
// the output folder, seeds MinTorch, runs `Train`, and turns the errors a user can cause — a bad
// option, NaN in a loss, a corrupt checkpoint, a wrong shape — into one clear line instead of a
// stack trace. Inside, the chapter shows progress (Lab.Progress), logs metrics (MetricsLog), draws
// its curves (SvgPlot) and ends with Lab.Finish(summary): a table on screen and summary.json on disk.
//
// Output adapts to where it goes: on a terminal, Spectre.Console's live bar and tables; redirected
// (CI, tests, `| tee log`), plain lines and markdown tables with no ANSI codes.
//
// Exit codes: 0 success (and --help), 1 a run-time error, 2 a command-line error.
using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json;
using TorchSharp;
using Spectre.Console;

namespace MinRL;

/// <summary>Command line, progress, tables, summary and guards for the chapters (see the file comment).</summary>
public static class Lab
{
    private static long _start = Stopwatch.GetTimestamp();
    private static bool? _interactive;

    /// <summary>The current run's chapter (set by Parse; the program's name before that).</summary>
    public static string Chapter { get; private set; } = Assembly.GetEntryAssembly()?.GetName().Name ?? "unknown";

    /// <summary>The current run's seed (set by Parse).</summary>
    public static long Seed { get; private set; }

    /// <summary>The current run's output folder (set by Parse), or null before.</summary>
    /// <summary>The device of the current run (<c>--device</c>); models go there when they are loaded. (Read lazily:
    /// touching <c>torch</c> loads libtorch, and a failure there must reach Run's clear message, not this type's
    /// initialiser.)</summary>
    public static torch.Device Device => _device ?? torch.CPU;
    private static torch.Device? _device;

    public static string? OutDir { get; private set; }

    /// <summary>True for the live terminal display (Spectre.Console), false for plain text. Decided
    /// once: a terminal that Spectre finds interactive, stdout not redirected, and MINRL_PLAIN unset.
    /// Tests and tools may set it.</summary>
    public static bool Interactive
    {
        get => _interactive ??= !Console.IsOutputRedirected
                                && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("MINRL_PLAIN"))
                                && AnsiConsole.Profile.Capabilities.Interactive;
        set => _interactive = value;
    }

    /// <summary>Seconds since the run started (Parse, or process start if Parse was not called).</summary>
    public static double WallSeconds => Stopwatch.GetElapsedTime(_start).TotalSeconds;

    /// <summary>Peak memory of this process in MiB: <see cref="Process.PeakWorkingSet64"/>, which on
    /// Linux is the peak resident set size (VmHWM in /proc/self/status) — the memory the run really
    /// occupied at its worst, managed heap, native buffers and runtime together.</summary>
    public static double PeakMegabytes
    {
        get { using var p = Process.GetCurrentProcess(); return p.PeakWorkingSet64 / (1024.0 * 1024.0); }
    }

    // ---------------------------------------------------------------- command line

    /// <summary>Parses <paramref name="argv"/> into <typeparamref name="TArgs"/> and makes it the current
    /// run (chapter, seed, output folder, clock). Throws <see cref="LabUsageException"/> on bad input, and
    /// for --help (with the help text as its message and ExitCode 0).</summary>
    public static TArgs Parse<TArgs>(string[] argv, string chapter, string description = "")
        where TArgs : LabArgs, new()
    {
        var args = Options.Parse<TArgs>(argv, chapter, description);
        Chapter = chapter;
        Seed = args.Seed;
        OutDir = args.Out;
        _start = Stopwatch.GetTimestamp();
        return args;
    }

    /// <summary>What --help prints for <typeparamref name="TArgs"/>.</summary>
    public static string HelpText<TArgs>(string chapter, string description = "") where TArgs : LabArgs, new() =>
        Options.HelpText(Options.Of<TArgs>(), chapter, description);

    /// <summary>A chapter's entry point: parse, prepare the run, call <paramref name="main"/>, report
    /// errors cleanly. Returns the process exit code (use it as Main's return value).</summary>
    public static int Run<TArgs>(string[] argv, string chapter, string description, Func<TArgs, int> main)
        where TArgs : LabArgs, new()
    {
        TArgs args;
        try { args = Parse<TArgs>(argv, chapter, description); }
        catch (LabUsageException e) when (e.IsHelp) { Console.Out.WriteLine(e.Message); return 0; }
        catch (LabUsageException e)
        {
            Error(e.Message);
            Console.Error.WriteLine($"usage: dotnet run --project {chapter} -- [options]   (--help lists them)");
            return 2;
        }

        try
        {
            // The engine first: a libtorch that will not load, or a device that is not there, is one clear
            // message here, not a crash inside the first tensor operation.
            Kit.InitializeEngine(args.Device);
            _device = args.Device == ComputeDevice.Cuda ? torch.CUDA : torch.CPU;
            torch.set_default_device(Device);                 // factories (zeros, arange, tensor) create on it
            torch.set_num_threads(args.Threads > 0 ? args.Threads : Kit.DefaultThreads);
            Directory.CreateDirectory(args.Out);
            torch.manual_seed(args.Seed);
            WriteArgs(args, Path.Combine(args.Out, "args.json"));
            Print(StartLine(args, chapter));
            return main(args);
        }
        catch (Exception e) { return Report(e); }
    }

    /// <summary><see cref="Run{TArgs}(string[], string, string, Func{TArgs, int})"/> for a body that returns
    /// nothing (exit code 0).</summary>
    public static int Run<TArgs>(string[] argv, string chapter, string description, Action<TArgs> main)
        where TArgs : LabArgs, new() =>
        Run<TArgs>(argv, chapter, description, a => { main(a); return 0; });

    /// <summary>Prints an exception the way <see cref="Run{TArgs}(string[], string, string, Func{TArgs, int})"/> does
    /// and returns the exit code: errors a user can cause get their message only (set MINRL_TRACE=1
    /// for the stack trace); anything else — a bug — its type, message and stack trace.</summary>
    internal static int Report(Exception e)
    {
        while (e is TargetInvocationException or AggregateException { InnerExceptions.Count: 1 }
               && e.InnerException is not null)
            e = e.InnerException;
        bool trace = Environment.GetEnvironmentVariable("MINRL_TRACE") is "1" or "true";
        switch (e)
        {
            case LabUsageException u:
                Error(u.Message);
                return 2;
            case LabException or ArgumentException or InvalidOperationException or IOException or InvalidDataException
                or UnauthorizedAccessException:
                Error(e.Message);
                if (trace) Console.Error.WriteLine(e.ToString());
                else if (e is not LabException)
                    Console.Error.WriteLine("(set MINRL_TRACE=1 to see where it came from)");
                return 1;
            default:
                Error($"{e.GetType().Name}: {e.Message}");
                Console.Error.WriteLine("This looks like a bug in the program, not in your input. Stack trace:");
                Console.Error.WriteLine(e.StackTrace);
                return 1;
        }
    }

    private static string StartLine(LabArgs args, string chapter)
    {
        var sb = new StringBuilder($"{chapter}  seed {args.Seed.ToString(CultureInfo.InvariantCulture)}");
        if (args.Quick) sb.Append("  (quick)");
        sb.Append($"  {Kit.Engine} on {Device.type.ToString().ToLowerInvariant()}, " +
                  $"{torch.get_num_threads()} thread(s)");
        sb.Append($"  → {args.Out}");
        var given = OptionValues(args)
            .Where(kv => args.IsGiven(kv.Property)
                         && kv.Property is not nameof(LabArgs.Seed) and not nameof(LabArgs.Out)
                                           and not nameof(LabArgs.Quick))
            .ToList();
        if (given.Count > 0)
            sb.Append("  [")
              .Append(string.Join(" ", given.Select(kv => $"{kv.Name} {Options.Format(kv.Value)}")))
              .Append(']');
        return sb.ToString();
    }

    private static IEnumerable<(string Property, string Name, object? Value)> OptionValues(LabArgs args)
    {
        foreach (var o in Options.Of(args.GetType()))
            yield return (o.Property.Name, o.Name, o.Property.GetValue(args));
    }

    /// <summary>The run's options as JSON (kebab-case names, as typed), so a run folder records how it was
    /// made.</summary>
    private static void WriteArgs(LabArgs args, string path)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("chapter", Chapter);
            foreach (var (_, name, value) in OptionValues(args))
            {
                w.WritePropertyName(name[2..]);
                switch (value)
                {
                    case bool b: w.WriteBooleanValue(b); break;
                    case int or long: w.WriteRawValue(Convert.ToString(value, CultureInfo.InvariantCulture)!); break;
                    case double d when double.IsFinite(d): w.WriteNumberValue(d); break;
                    case float f when float.IsFinite(f): w.WriteNumberValue(f); break;
                    default: w.WriteStringValue(Options.Format(value)); break;
                }
            }
            w.WriteEndObject();
        }
        File.WriteAllText(path, Encoding.UTF8.GetString(stream.ToArray()) + "\n", new UTF8Encoding(false));
    }

    // ---------------------------------------------------------------- output

    /// <summary>A progress display for <paramref name="total"/> steps (see <see cref="LabProgress"/>);
    /// <paramref name="show"/> picks the metrics it shows (default: the first four given).</summary>
    public static LabProgress Progress(long total, string description, params string[] show) =>
        new(total, description, Interactive ? null : Console.Out, show.Length > 0 ? show : null);

    /// <summary>Prints a line; safe while a live progress bar is on screen.</summary>
    public static void Print(string line)
    {
        if (Interactive) AnsiConsole.Console.WriteLine(line);
        else Console.Out.WriteLine(line);
    }

    /// <summary>A number for people: 4 significant digits, no trailing zeros, invariant culture
    /// (0.41234 → 0.4123, 0.5 → 0.5, 1234.56 → 1235, 3e-05 → 3e-05, NaN → NaN).</summary>
    public static string Fmt(double v)
    {
        if (double.IsNaN(v)) return "NaN";
        if (double.IsInfinity(v)) return v > 0 ? "inf" : "-inf";
        double a = Math.Abs(v);
        if (a == 0) return "0";
        if (a >= 1e5 || a < 1e-3) return v.ToString("0.###e+00", CultureInfo.InvariantCulture);
        int decimals = Math.Max(0, 3 - (int)Math.Floor(Math.Log10(a)));
        string s = Math.Round(v, decimals).ToString("F" + decimals, CultureInfo.InvariantCulture);
        if (s.Contains('.')) s = s.TrimEnd('0').TrimEnd('.');
        return s == "-0" ? "0" : s;
    }

    private static string Cell(object? v) => v switch
    {
        null => "",
        double d => Fmt(d),
        float f => Fmt(f),
        string s => s,
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };

    private static bool IsNumeric(object? v) => v is double or float or int or long or decimal or short;

    /// <summary>Prints a small table: a Spectre table on a terminal, a markdown table otherwise (paste it
    /// into the README as is). Numbers are shown with <see cref="Fmt"/>; numeric columns align right.</summary>
    public static void Table(string title, string[] headers, IEnumerable<object?[]> rows)
    {
        var data = rows.ToList();
        foreach (var r in data)
            if (r.Length != headers.Length)
                throw new ArgumentException(
                    $"table '{title}': a row has {r.Length} cells but there are {headers.Length} headers");
        var right = Enumerable.Range(0, headers.Length)
            .Select(c => data.Count > 0 && data.All(r => r[c] is null || IsNumeric(r[c]))).ToArray();
        var cells = data.Select(r => r.Select(Cell).ToArray()).ToList();

        if (Interactive)
        {
            var table = new Spectre.Console.Table().RoundedBorder();
            if (!string.IsNullOrEmpty(title)) table.Title($"[bold]{Markup.Escape(title)}[/]");
            for (int c = 0; c < headers.Length; c++)
                table.AddColumn(new TableColumn(Markup.Escape(headers[c]))
                {
                    Alignment = right[c] ? Justify.Right : Justify.Left,
                });
            foreach (var r in cells) table.AddRow(r.Select(Markup.Escape).ToArray());
            AnsiConsole.Write(table);
            return;
        }
        Console.Out.Write(MarkdownTable(title, headers, cells, right));
    }

    internal static string MarkdownTable(string title, string[] headers, List<string[]> cells, bool[] right)
    {
        var width = headers.Select((h, c) => Math.Max(3, cells.Select(r => r[c].Length).Append(h.Length).Max()))
            .ToArray();
        var sb = new StringBuilder();
        if (!string.IsNullOrEmpty(title)) sb.AppendLine().AppendLine(title).AppendLine();
        string Row(IEnumerable<string> r) =>
            "| " + string.Join(" | ", r.Select((s, c) => right[c] ? s.PadLeft(width[c]) : s.PadRight(width[c]))) + " |";
        sb.AppendLine(Row(headers));
        sb.AppendLine("|" + string.Join("|", width.Select((w, c) =>
            right[c] ? new string('-', w + 1) + ":" : new string('-', w + 2))) + "|");
        foreach (var r in cells) sb.AppendLine(Row(r));
        return sb.ToString();
    }

    /// <summary>Ends a run: prints the summary as a table, writes it to &lt;out&gt;/summary.json, and lists
    /// the files in the output folder. Returns the path of summary.json.</summary>
    public static string Finish(RunSummary summary, string? outDir = null)
    {
        string dir = outDir ?? OutDir
            ?? throw new InvalidOperationException(
                "Lab.Finish: no output folder: call it inside Lab.Run (or after Lab.Parse), or pass outDir");
        string path = Path.Combine(dir, "summary.json");
        summary.Extra.TryAdd("engine", Kit.Engine);                 // which engine and threads made these numbers
        summary.Extra.TryAdd("threads", torch.get_num_threads());
        summary.Write(path);

        double delta = summary.Final - summary.Base;
        var rows = new List<object?[]>
        {
            new object?[] { "gold metric", summary.Metric },
            new object?[] { "base model", Fmt(summary.Base) },
            new object?[] { "after training", $"{Fmt(summary.Final)} ({(delta >= 0 ? "+" : "")}{Fmt(delta)})" },
            new object?[] { "KL to reference", double.IsNaN(summary.Kl) ? "—" : Fmt(summary.Kl) + " nats" },
            new object?[] { "wall time", $"{Fmt(summary.WallS)} s" },
            new object?[] { "peak memory", $"{Fmt(summary.PeakMb)} MiB" },
        };
        foreach (var (k, v) in summary.Extra)
            rows.Add([k, v switch
            {
                double or float or string or null => Cell(v),
                Enum e => Options.Kebab(e.ToString()),          // as on the command line, not its number
                _ => JsonSerializer.Serialize(v, v.GetType()),
            }]);
        Table($"{summary.Chapter}, seed {summary.Seed.ToString(CultureInfo.InvariantCulture)}", ["", "value"], rows);

        var files = Directory.GetFiles(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Print($"results in {dir}{Path.DirectorySeparatorChar}: {string.Join(", ", files)}");
        return path;
    }

    /// <summary>Prints an error line on stderr: red on a terminal, "error: ..." otherwise.</summary>
    public static void Error(string message)
    {
        if (!Console.IsErrorRedirected && Interactive)
        {
            var err = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
            err.MarkupLine($"[red bold]error:[/] [red]{Markup.Escape(message)}[/]");
        }
        else Console.Error.WriteLine("error: " + message);
    }

    // ---------------------------------------------------------------- guards

    /// <summary>Stops the run with a clear message when <paramref name="value"/> is NaN or infinite:
    /// "loss became NaN at step 37 — try a smaller --learning-rate".</summary>
    public static void CheckFinite(double value, string name, long step, string hint = "try a smaller --learning-rate")
    {
        if (double.IsFinite(value)) return;
        string what = double.IsNaN(value) ? "NaN" : value > 0 ? "+inf" : "-inf";
        throw new LabException($"{name} became {what} at step {step.ToString(CultureInfo.InvariantCulture)}" +
                               $"{(hint.Length > 0 ? " — " + hint : "")}");
    }

    /// <summary>The tensor form: every element must be finite. A one-element tensor reads like the
    /// scalar form; a larger one says how many elements went bad.</summary>
    public static void CheckFinite(torch.Tensor tensor, string name, long step,
                                   string hint = "try a smaller --learning-rate")
    {
        long n = tensor.numel();
        if (!tensor.is_floating_point()) return; // integer and bool tensors are always finite
        if (n == 1) { CheckFinite(tensor.ToDouble(), name, step, hint); return; }
        long nan = 0, inf = 0;
        if (tensor.dtype == torch.float32)
            foreach (float v in tensor.cpu().data<float>())
            {
                if (float.IsNaN(v)) nan++; else if (float.IsInfinity(v)) inf++;
            }
        else
            foreach (double v in tensor.cpu().data<double>())
            {
                if (double.IsNaN(v)) nan++; else if (double.IsInfinity(v)) inf++;
            }
        if (nan + inf == 0) return;
        var parts = new List<string>();
        if (nan > 0) parts.Add($"{nan} NaN");
        if (inf > 0) parts.Add($"{inf} infinite");
        throw new LabException($"{name} has {string.Join(" and ", parts)} of its {n} values " +
                               $"at step {step.ToString(CultureInfo.InvariantCulture)}" +
                               $"{(hint.Length > 0 ? " — " + hint : "")}");
    }
}
