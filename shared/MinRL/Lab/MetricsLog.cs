// The metrics of a run, one row per step, in <out>/metrics.csv — and in memory, for the plot.
//
//     using var log = new MetricsLog(Path.Combine(args.Out, "metrics.csv"));
//     log.Add(step, ("loss", loss), ("reward", reward), ("kl", kl));
//
// The columns are `step` and then the metric names in the order they first appear (or the order
// declared up front). A row that lacks a metric leaves its cell blank; a metric that first appears
// in a later row adds a column (the file is rewritten once with the wider header, so it stays one
// valid CSV). Numbers use the invariant culture ('.' decimals) and the shortest text that reads back
// to the same value. Every row is flushed to disk as it is written, so a run that crashes keeps
// everything it logged up to the crash.
using System.Globalization;
using System.Text;

namespace MinRL;

/// <summary>A per-step metrics table, written to a CSV file as it grows and kept in memory.</summary>
public sealed class MetricsLog : IDisposable
{
    private readonly List<string> _columns = [];                 // metric names, without "step"
    private readonly Dictionary<string, int> _index = new(StringComparer.Ordinal);
    private readonly List<long> _steps = [];
    private readonly List<double?[]> _rows = [];                 // null = not logged in that row
    private StreamWriter? _writer;

    /// <summary>The CSV file's path, or null for an in-memory log.</summary>
    public string? Path { get; }

    /// <summary>Creates (or overwrites) the CSV at <paramref name="path"/>; pass null to keep the log in
    /// memory only. <paramref name="columns"/> fixes the first columns' order up front (optional).</summary>
    public MetricsLog(string? path, params string[] columns)
    {
        Path = path;
        foreach (var c in columns) AddColumn(c);
        if (path is not null)
        {
            string? dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
            if (dir is not null) Directory.CreateDirectory(dir);
            Rewrite();
        }
    }

    /// <summary>Metric names in column order (the CSV has <c>step</c> before them).</summary>
    public IReadOnlyList<string> Columns => _columns;

    /// <summary>The steps logged, in order.</summary>
    public IReadOnlyList<long> Steps => _steps;

    /// <summary>Number of rows.</summary>
    public int Count => _rows.Count;

    /// <summary>Appends one row: the step and its metrics (name, value) in any order.</summary>
    public void Add(long step, params ReadOnlySpan<(string Name, double Value)> metrics)
    {
        bool widened = false;
        foreach (var (name, _) in metrics)
            if (!_index.ContainsKey(name)) { AddColumn(name); widened = true; }

        var row = new double?[_columns.Count];
        foreach (var (name, value) in metrics) row[_index[name]] = value;
        _steps.Add(step);
        _rows.Add(row);

        if (_writer is null) return;
        if (widened) Rewrite(); // a new column: write the file again with the wider header
        else { _writer.WriteLine(FormatRow(_rows.Count - 1)); _writer.Flush(); }
    }

    /// <summary>The values of one metric, one per row (NaN where a row did not log it).</summary>
    public double[] Column(string name)
    {
        if (name == "step") return _steps.Select(s => (double)s).ToArray();
        if (!_index.TryGetValue(name, out int c))
            throw new ArgumentException($"metrics: no metric named '{name}' was logged " +
                                        $"(logged: step, {string.Join(", ", _columns)})");
        var result = new double[_rows.Count];
        for (int r = 0; r < _rows.Count; r++)
            result[r] = c < _rows[r].Length && _rows[r][c] is double v ? v : double.NaN;
        return result;
    }

    /// <summary>The last value logged for a metric (NaN if never).</summary>
    public double Last(string name)
    {
        if (!_index.TryGetValue(name, out int c)) return double.NaN;
        for (int r = _rows.Count - 1; r >= 0; r--)
            if (c < _rows[r].Length && _rows[r][c] is double v) return v;
        return double.NaN;
    }

    /// <summary>A series for <see cref="SvgPlot"/>: <paramref name="y"/> against <paramref name="x"/>
    /// (default: the step), named <paramref name="label"/> (default: the metric's name).</summary>
    public Series Series(string y, string x = "step", string? label = null) =>
        new(label ?? y, Column(x), Column(y)) { XLabel = x };

    /// <summary>A metric logged only on some steps (an evaluation every k steps) as dots against the step: the rows
    /// where it is missing (NaN) are left out. With <paramref name="divideBy"/>, each value is divided by that
    /// metric's value on the same row.</summary>
    public Series Dots(string y, string? label = null, string? divideBy = null)
    {
        var steps = Column("step");
        var values = Column(y);
        var divisors = divideBy is null ? null : Column(divideBy);
        var keep = Enumerable.Range(0, values.Length).Where(i => double.IsFinite(values[i])).ToArray();
        return new Series(label ?? y, keep.Select(i => steps[i]).ToArray(),
            keep.Select(i => divisors is null ? values[i] : values[i] / divisors[i]).ToArray())
        {
            Points = true, XLabel = "step",
        };
    }

    /// <summary>The whole log as CSV text (what the file holds).</summary>
    public string ToCsv()
    {
        var sb = new StringBuilder();
        sb.AppendLine(Header());
        for (int r = 0; r < _rows.Count; r++) sb.AppendLine(FormatRow(r));
        return sb.ToString();
    }

    public void Dispose()
    {
        _writer?.Dispose();
        _writer = null;
    }

    private void AddColumn(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name == "step")
            throw new ArgumentException(
                $"metrics: '{name}' cannot be a metric name (empty, or the reserved column 'step')");
        if (_index.ContainsKey(name)) return;
        _index[name] = _columns.Count;
        _columns.Add(name);
    }

    private void Rewrite()
    {
        _writer?.Dispose();
        _writer = new StreamWriter(Path!, append: false, new UTF8Encoding(false)) { NewLine = "\n" };
        _writer.Write(ToCsv());
        _writer.Flush();
    }

    private string Header() => string.Join(",", _columns.Prepend("step").Select(Quote));

    private string FormatRow(int r)
    {
        var sb = new StringBuilder();
        sb.Append(_steps[r].ToString(CultureInfo.InvariantCulture));
        var row = _rows[r];
        for (int c = 0; c < _columns.Count; c++)
        {
            sb.Append(',');
            if (c < row.Length && row[c] is double v) sb.Append(Number(v));
        }
        return sb.ToString();
    }

    /// <summary>Shortest round-trip text, invariant culture. A value that is exactly a float (most
    /// metrics come from float32 tensors) prints as the float: 0.1f shows as 0.1, not 0.10000000149011612.</summary>
    internal static string Number(double v)
    {
        if (double.IsNaN(v)) return "NaN";
        if (double.IsPositiveInfinity(v)) return "inf";
        if (double.IsNegativeInfinity(v)) return "-inf";
        float f = (float)v;
        return (double)f == v && float.IsFinite(f)
            ? f.ToString("R", CultureInfo.InvariantCulture)
            : v.ToString("R", CultureInfo.InvariantCulture);
    }

    private static string Quote(string s) =>
        s.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;
}
