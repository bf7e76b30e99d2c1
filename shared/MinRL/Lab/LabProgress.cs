// The progress of a long loop, shown while it runs.
//
//     using var progress = Lab.Progress(steps, "REINFORCE");
//     for (int step = 1; step <= steps; step++) { ...; progress.Update(step, ("reward", r), ("kl", kl)); }
//
// On a terminal it is a Spectre.Console live progress bar — description, bar, percentage, elapsed
// time, ETA — followed by the latest metrics, compactly (`reward 0.41  kl 0.012`; cut with an
// ellipsis when the terminal is too narrow, so the bar itself never wraps).
// When the output is not a terminal (CI, tests, a pipe into a file) it prints plain lines instead —
// one at each 10% of the work, or after 15 s without one, plus the last — with no ANSI codes.
// Update costs a microsecond or so in either mode (the live bar redraws on its own thread,
// ten times a second), so it never slows training.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace MinRL;

/// <summary>A progress display for <c>total</c> steps; see <see cref="Lab.Progress"/>.</summary>
public sealed class LabProgress : IDisposable
{
    /// <summary>In plain mode, the longest gap between two lines.</summary>
    internal static readonly TimeSpan PlainInterval = TimeSpan.FromSeconds(15);
    private static readonly long PlainIntervalTicks = (long)(PlainInterval.TotalSeconds * Stopwatch.Frequency);

    private readonly long _total;
    private readonly string[]? _show;
    private readonly int _maxShown;
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    // Plain mode.
    private readonly TextWriter? _plain;
    private long _nextDecile = 1;               // print when step reaches _nextDecile * total / 10
    private long _lastPrintTicks;
    private long _lastStep, _lastPrintedStep = -1;
    private (string Name, double Value)[] _last = [];

    // Live mode: Spectre's Progress.Start blocks, so it runs on a background thread until Dispose.
    private readonly ProgressTask? _task;
    private readonly MetricsColumn _metricsColumn = new();
    private readonly Thread? _thread;
    private readonly ManualResetEventSlim _done = new(false);
    private Exception? _liveError;

    /// <summary>Plain lines on <paramref name="plain"/> when given, else a live bar on
    /// <paramref name="console"/> (default: the terminal).</summary>
    internal LabProgress(long total, string description, TextWriter? plain, string[]? show, int maxShown = 4,
                         IAnsiConsole? console = null)
    {
        if (total < 1) throw new ArgumentException($"progress: total must be at least 1 step, got {total}");
        _total = total;
        _show = show;
        _maxShown = maxShown;
        _plain = plain;
        if (plain is not null)
        {
            plain.WriteLine($"{description}: {total.ToString(CultureInfo.InvariantCulture)} steps");
            plain.Flush();
            return;
        }

        // The columns before the metrics: description, bar (24), percentage (4), elapsed and ETA (8 each),
        // and a space between columns; the metrics get what is left of the line.
        _metricsColumn.Reserved = description.Length + 24 + 4 + 8 + 8 + 6;
        Console.CancelKeyPress += ShowCursor; // Ctrl+C mid-run must not leave the terminal without a cursor
        var started = new ManualResetEventSlim(false);
        ProgressTask? task = null;
        _thread = new Thread(() =>
        {
            try
            {
                (console ?? AnsiConsole.Console).Progress()
                    .AutoClear(false)
                    .HideCompleted(false)
                    .Columns(new TaskDescriptionColumn { Alignment = Justify.Left },
                             new ProgressBarColumn { Width = 24 },
                             new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn(), _metricsColumn)
                    .Start(ctx =>
                    {
                        task = ctx.AddTask(Markup.Escape(description), maxValue: total);
                        started.Set();
                        _done.Wait();
                        ctx.Refresh();
                    });
            }
            catch (Exception e) { _liveError = e; }
            finally { started.Set(); }
        }) { IsBackground = true, Name = "MinRL progress" };
        _thread.Start();
        started.Wait();
        _task = task;
        if (_task is null && _liveError is not null)
            throw new InvalidOperationException($"progress: the live display failed to start: {_liveError.Message}",
                                                _liveError);
    }

    /// <summary>Records that <paramref name="step"/> (1-based: the number of steps done) is finished,
    /// with its metrics; the display shows the first few (or the ones chosen when it was created).</summary>
    public void Update(long step, params ReadOnlySpan<(string Name, double Value)> metrics)
    {
        _lastStep = step;
        if (_task is not null)
        {
            _metricsColumn.Text = Line(metrics);
            _task.Value = Math.Min(step, _total);
            return;
        }
        // Plain mode: a small copy, a comparison and a clock read per step; a line only at each 10%
        // or after a quiet spell.
        _last = metrics.ToArray();
        long now = _clock.ElapsedTicks;
        bool due = _lastPrintedStep < 0 || step >= _total || step * 10 >= _nextDecile * _total
                   || now - _lastPrintTicks >= PlainIntervalTicks;
        if (due) PrintPlain(now);
    }

    private void PrintPlain(long now)
    {
        long step = _lastStep;
        while (_nextDecile <= 10 && step * 10 >= _nextDecile * _total) _nextDecile++;
        _lastPrintTicks = now;
        _lastPrintedStep = step;
        double elapsed = _clock.Elapsed.TotalSeconds;
        string eta = step > 0 && step < _total ? $", ~{Seconds(elapsed / step * (_total - step))} left" : "";
        int pct = (int)Math.Min(100, step * 100 / _total);
        string metrics = Line(_last);
        _plain!.WriteLine($"[{pct,3}%] step {step}/{_total}  {(metrics.Length > 0 ? metrics + "  " : "")}" +
                          $"({Seconds(elapsed)}{eta})");
        _plain.Flush();
    }

    /// <summary>"reward 0.412  kl 0.0123": the shown metrics, compactly.</summary>
    private string Line(ReadOnlySpan<(string Name, double Value)> metrics)
    {
        var sb = new StringBuilder();
        int shown = 0;
        foreach (var (name, value) in metrics)
        {
            if (_show is not null ? Array.IndexOf(_show, name) < 0 : shown >= _maxShown) continue;
            if (sb.Length > 0) sb.Append("  ");
            sb.Append(name).Append(' ').Append(Lab.Fmt(value));
            shown++;
        }
        return sb.ToString();
    }

    private static string Seconds(double s) =>
        s < 60 ? s.ToString("0.0", CultureInfo.InvariantCulture) + " s"
        : s < 3600 ? $"{(int)(s / 60)} min {(int)(s % 60):00} s"
        : $"{(int)(s / 3600)} h {(int)(s % 3600 / 60):00} min";

    private static void ShowCursor(object? sender, ConsoleCancelEventArgs e) => Console.Out.Write("\x1b[?25h");

    /// <summary>The metrics after the bar: plain text, one line, cut with "…" when too long.</summary>
    private sealed class MetricsColumn : ProgressColumn
    {
        public volatile string Text = "";
        public int Reserved;
        protected override bool NoWrap => true;
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime)
        {
            string text = Text;
            int width = Math.Max(8, options.ConsoleSize.Width - Reserved - 1);
            return new Text(text.Length <= width ? text : text[..(width - 1)] + "…");
        }
    }

    /// <summary>Ends the display: the live bar stops (left on screen); in plain mode the last update is
    /// printed if it was not.</summary>
    public void Dispose()
    {
        if (_plain is not null)
        {
            if (_lastPrintedStep >= 0 && _lastStep != _lastPrintedStep) PrintPlain(_clock.ElapsedTicks);
            return;
        }
        if (_done.IsSet) return;
        _done.Set();
        _thread?.Join();
        Console.CancelKeyPress -= ShowCursor;
    }
}
