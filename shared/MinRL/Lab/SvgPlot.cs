// Training curves as an SVG file — hand-written, no plotting library.
//
//     var plot = new SvgPlot("01-policy-gradient — seed 1") { Smoothing = 0.9 };
//     plot.Add("reward", log.Series("reward")).HLine(baseReward, "base");
//     plot.Add("gold vs proxy", log.Series("gold"), log.Series("proxy"));
//     plot.Add("gold vs KL", log.Series("gold", x: "kl"));      // x need not be the step
//     plot.Write(Path.Combine(args.Out, "curves.svg"));
//
// A figure is a grid of small panels; each panel is a line chart with a frame, grid lines, tick
// labels on both axes, a title, an x-axis label and (for two or more series) a legend. Each series
// is one <path> (NaN and ±inf points are skipped and break the line; a lone point shows as a ring).
// The legend goes in the corner where it hides the fewest points.
// A constant series gets a small range around its value so it draws as a flat line mid-panel.
// With Smoothing > 0 each series is drawn twice: faint raw values, then a TensorBoard-style
// exponential moving average on top.
using System.Globalization;
using System.Text;

namespace MinRL;

/// <summary>One curve: y against x, drawn in one panel. <see cref="XLabel"/> names the x values
/// (the panel's x-axis label when set).</summary>
public sealed record Series(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y)
{
    /// <summary>What the x values are ("step", "kl", ...).</summary>
    public string? XLabel { get; init; }

    /// <summary>Draw dots instead of a line (for a scatter such as reward against KL).</summary>
    public bool Points { get; init; }

    /// <summary>Draw a dashed line.</summary>
    public bool Dashed { get; init; }

    /// <summary>A shaded band from <see cref="Low"/> to <see cref="High"/> under the line (e.g. the min and
    /// max over seeds), one value per x; null = no band.</summary>
    public IReadOnlyList<double>? Low { get; init; }

    /// <summary>The band's upper edge; see <see cref="Low"/>.</summary>
    public IReadOnlyList<double>? High { get; init; }

    /// <summary>y against 0, 1, 2, ... (for a curve that is not from a <see cref="MetricsLog"/>).</summary>
    public static Series Of(string name, IReadOnlyList<double> y) =>
        new(name, Enumerable.Range(0, y.Count).Select(i => (double)i).ToArray(), y) { XLabel = "index" };
}

/// <summary>One panel of an <see cref="SvgPlot"/>: a title, its series and optional horizontal
/// reference lines (e.g. the base model's value).</summary>
public sealed class SvgPanel(string title, IEnumerable<Series> series)
{
    public string Title { get; set; } = title;
    public List<Series> Series { get; } = [.. series];

    /// <summary>The x-axis label; by default the first series' <see cref="MinRL.Series.XLabel"/> or "step".</summary>
    public string? XLabel { get; set; }

    /// <summary>Optional y-axis label (the title usually says it).</summary>
    public string? YLabel { get; set; }

    /// <summary>Where the x-axis starts at the latest (e.g. 0, so that curves starting later show where they
    /// start); null = at the first point.</summary>
    public double? XMin { get; set; }

    public List<(double Y, string Label)> HLines { get; } = [];

    /// <summary>Adds a dashed horizontal line at <paramref name="y"/> (shown in the legend).</summary>
    public SvgPanel HLine(double y, string label) { HLines.Add((y, label)); return this; }
}

/// <summary>A figure of small line charts, written as a standalone SVG file.</summary>
public sealed class SvgPlot(string title = "")
{
    // Sizes in SVG user units (= pixels).
    private const double PanelW = 380, PanelH = 250;
    private const double PadLeft = 58, PadRight = 14, PadTop = 28, PadBottom = 40;
    private const double TitleH = 34;

    /// <summary>matplotlib's "tab10" colours, in order.</summary>
    private static readonly string[] Palette =
        ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

    public string Title { get; set; } = title;

    /// <summary>Panels per row; 0 = choose (1, 2 or 3).</summary>
    public int Columns { get; set; }

    /// <summary>Exponential-moving-average weight in [0, 1) for a smoothed line over the raw one
    /// (TensorBoard's slider; 0.9 suits noisy RL rewards). 0 = raw values only. Like any moving
    /// average it lags a trend by about 1/(1 − weight) points.</summary>
    public double Smoothing { get; set; }

    public List<SvgPanel> Panels { get; } = [];

    /// <summary>Adds a panel and returns it (to set labels or reference lines).</summary>
    public SvgPanel Add(string title, params Series[] series)
    {
        var panel = new SvgPanel(title, series);
        Panels.Add(panel);
        return panel;
    }

    /// <summary>One panel per metric, each against the step: the usual training-curves figure.</summary>
    public static SvgPlot Curves(MetricsLog log, string title, params string[] metrics)
    {
        var plot = new SvgPlot(title);
        foreach (var m in metrics) plot.Add(m, log.Series(m));
        return plot;
    }

    /// <summary>Writes the figure to <paramref name="path"/> (creating its folder) and returns the path.</summary>
    public string Write(string path)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        File.WriteAllText(path, Render(), new UTF8Encoding(false));
        return path;
    }

    /// <summary>The SVG document as text.</summary>
    public string Render()
    {
        if (Smoothing is < 0 or >= 1 || double.IsNaN(Smoothing))
            throw new ArgumentException($"SvgPlot: Smoothing must be in [0, 1), got {Smoothing}");
        int n = Math.Max(1, Panels.Count);
        int cols = Columns > 0 ? Columns : n <= 3 ? n : n == 4 ? 2 : 3;
        int rows = (n + cols - 1) / cols;
        double top = string.IsNullOrEmpty(Title) ? 8 : TitleH;
        double width = cols * PanelW, height = top + rows * PanelH + 6;

        var svg = new StringBuilder();
        svg.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{F(width)}\" height=\"{F(height)}\" " +
                   $"viewBox=\"0 0 {F(width)} {F(height)}\" ")
           .Append("font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"11\">\n");
        svg.Append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
        if (!string.IsNullOrEmpty(Title))
            svg.Append($"<text x=\"{F(width / 2)}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" " +
                       $"font-weight=\"bold\">{Esc(Title)}</text>\n");
        for (int i = 0; i < Panels.Count; i++)
            RenderPanel(svg, Panels[i], (i % cols) * PanelW, top + (i / cols) * PanelH);
        svg.Append("</svg>\n");
        return svg.ToString();
    }

    private void RenderPanel(StringBuilder svg, SvgPanel panel, double ox, double oy)
    {
        double x0 = PadLeft, x1 = PanelW - PadRight, y0 = PadTop, y1 = PanelH - PadBottom; // plot area
        svg.Append($"<g class=\"panel\" transform=\"translate({F(ox)},{F(oy)})\">\n");
        svg.Append($"<text x=\"{F((x0 + x1) / 2)}\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">" +
                   $"{Esc(panel.Title)}</text>\n");

        // Data ranges over the finite points (and the reference lines, so they stay in view).
        var (xmin, xmax) = Range(panel.Series.SelectMany(s => Finite(s).Select(p => p.x)));
        var (ymin, ymax) = Range(panel.Series.SelectMany(s => Finite(s).Select(p => p.y))
                                 .Concat(panel.Series.SelectMany(s => (s.Low ?? []).Concat(s.High ?? []))
                                     .Where(double.IsFinite))
                                 .Concat(panel.HLines.Select(h => h.Y).Where(double.IsFinite)));
        bool empty = double.IsNaN(xmin) || double.IsNaN(ymin);
        if (empty) { xmin = 0; xmax = 1; ymin = 0; ymax = 1; }
        if (panel.XMin is { } from && from < xmin) xmin = from;
        (xmin, xmax) = Widen(xmin, xmax, pad: 0.0);
        (ymin, ymax) = Widen(ymin, ymax, pad: 0.05);
        double Sx(double x) => x0 + (x - xmin) / (xmax - xmin) * (x1 - x0);
        double Sy(double y) => y1 - (y - ymin) / (ymax - ymin) * (y1 - y0);

        // Grid lines and tick labels.
        // Whole-number x values (steps): no tick at 2.5.
        bool integerX = panel.Series.SelectMany(s => Finite(s)).All(p => p.x == Math.Round(p.x));
        var (xt, xstep) = Ticks(xmin, xmax, 6, minStep: integerX ? 1 : 0);
        var (yt, ystep) = Ticks(ymin, ymax, 5);
        svg.Append("<g class=\"grid\" stroke=\"#e5e5e5\" stroke-width=\"1\">\n");
        foreach (var t in xt)
            svg.Append($"<line x1=\"{F(Sx(t))}\" y1=\"{F(y0)}\" x2=\"{F(Sx(t))}\" y2=\"{F(y1)}\"/>\n");
        foreach (var t in yt)
            svg.Append($"<line x1=\"{F(x0)}\" y1=\"{F(Sy(t))}\" x2=\"{F(x1)}\" y2=\"{F(Sy(t))}\"/>\n");
        svg.Append("</g>\n<g class=\"ticks\" fill=\"#444\">\n");
        foreach (var t in xt)
            svg.Append($"<text x=\"{F(Sx(t))}\" y=\"{F(y1 + 14)}\" text-anchor=\"middle\">{Tick(t, xstep)}</text>\n");
        foreach (var t in yt)
            svg.Append($"<text x=\"{F(x0 - 5)}\" y=\"{F(Sy(t) + 4)}\" text-anchor=\"end\">{Tick(t, ystep)}</text>\n");
        svg.Append("</g>\n");
        svg.Append($"<rect class=\"frame\" x=\"{F(x0)}\" y=\"{F(y0)}\" " +
                   $"width=\"{F(x1 - x0)}\" height=\"{F(y1 - y0)}\" fill=\"none\" stroke=\"#888\"/>\n");
        string xlabel = panel.XLabel ?? panel.Series.Select(s => s.XLabel).FirstOrDefault(l => l is not null) ?? "step";
        svg.Append($"<text x=\"{F((x0 + x1) / 2)}\" y=\"{F(PanelH - 8)}\" text-anchor=\"middle\" fill=\"#444\">" +
                   $"{Esc(xlabel)}</text>\n");
        if (panel.YLabel is { } yl)
            svg.Append($"<text transform=\"translate(13,{F((y0 + y1) / 2)}) rotate(-90)\" " +
                       $"text-anchor=\"middle\" fill=\"#444\">{Esc(yl)}</text>\n");
        if (empty)
            svg.Append($"<text x=\"{F((x0 + x1) / 2)}\" y=\"{F((y0 + y1) / 2)}\" text-anchor=\"middle\" " +
                       "fill=\"#999\">no finite values</text>\n");

        // Reference lines, then the series.
        foreach (var (y, label) in panel.HLines.Where(h => double.IsFinite(h.Y)))
            svg.Append($"<line class=\"hline\" x1=\"{F(x0)}\" y1=\"{F(Sy(y))}\" x2=\"{F(x1)}\" y2=\"{F(Sy(y))}\" " +
                       "stroke=\"#555\" stroke-width=\"1\" stroke-dasharray=\"5,4\">" +
                       $"<title>{Esc(label)}</title></line>\n");
        for (int i = 0; i < panel.Series.Count; i++)
            if (panel.Series[i] is { Low: { } low, High: { } high } banded)
                svg.Append(BandElement(banded, low, high, Palette[i % Palette.Length], Sx, Sy));
        for (int i = 0; i < panel.Series.Count; i++)
        {
            var s = panel.Series[i];
            string color = Palette[i % Palette.Length];
            if (Smoothing > 0 && !s.Points)
            {
                svg.Append(PathElement(s, s.Y, color, Sx, Sy, "raw", opacity: 0.25));
                svg.Append(PathElement(s, Ema(s.Y, Smoothing), color, Sx, Sy, "series", opacity: 1));
            }
            else svg.Append(PathElement(s, s.Y, color, Sx, Sy, "series", opacity: 1));
        }

        // Legend (top-right, inside the plot area) when there is more than one thing to tell apart.
        var entries = panel.Series
            .Select((s, i) => (s.Name, Color: Palette[i % Palette.Length], Dashed: s.Dashed, Points: s.Points))
            .Concat(panel.HLines.Select(h => (Name: h.Label, Color: "#555", Dashed: true, Points: false))).ToList();
        if (entries.Count > 1)
        {
            double lw = Math.Min(x1 - x0 - 8, 30 + 6.4 * entries.Max(e => e.Name.Length));
            double lh = 6 + 14 * entries.Count;
            // Put it in the corner that hides the fewest points (top-right on a tie).
            // Each point and the midpoint of each segment (a line between sparse points hides under a legend too).
            var pts = panel.Series.SelectMany(s => Finite(s).Concat(Finite(s).Zip(Finite(s).Skip(1),
                    (a, b) => (x: (a.x + b.x) / 2, y: (a.y + b.y) / 2)))).Select(p => (x: Sx(p.x), y: Sy(p.y)))
                .Concat(panel.Series.Where(s => s.Low is not null && s.High is not null).SelectMany(s =>
                    s.X.Zip(s.Low!, s.High!).SelectMany(p => new[] { (x: Sx(p.First), y: Sy(p.Second)),
                                                                     (x: Sx(p.First), y: Sy(p.Third)) })))
                .Where(p => double.IsFinite(p.x) && double.IsFinite(p.y))
                .Concat(panel.HLines.Where(h => double.IsFinite(h.Y))
                    .SelectMany(h => Enumerable.Range(0, 21).Select(k => (x: x0 + k * (x1 - x0) / 20, y: Sy(h.Y)))))
                .ToList();
            (double lx, double ly) =
                new[] { (x1 - lw - 4, y0 + 4), (x0 + 4, y0 + 4), (x1 - lw - 4, y1 - lh - 4), (x0 + 4, y1 - lh - 4) }
                .MinBy(c => pts.Count(p => p.x >= c.Item1 - 3 && p.x <= c.Item1 + lw + 3
                                           && p.y >= c.Item2 - 3 && p.y <= c.Item2 + lh + 3));
            svg.Append($"<g class=\"legend\"><rect x=\"{F(lx)}\" y=\"{F(ly)}\" width=\"{F(lw)}\" height=\"{F(lh)}\" " +
                       "fill=\"white\" fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n");
            for (int i = 0; i < entries.Count; i++)
            {
                var e = entries[i];
                double cy = ly + 11 + 14 * i;
                if (e.Points)
                    svg.Append($"<circle cx=\"{F(lx + 16)}\" cy=\"{F(cy)}\" r=\"2.5\" fill=\"{e.Color}\"/>");
                else
                    svg.Append($"<line x1=\"{F(lx + 6)}\" y1=\"{F(cy)}\" x2=\"{F(lx + 26)}\" y2=\"{F(cy)}\" " +
                               $"stroke=\"{e.Color}\" stroke-width=\"2\"" +
                               $"{(e.Dashed ? " stroke-dasharray=\"5,4\"" : "")}/>");
                svg.Append($"<text x=\"{F(lx + 31)}\" y=\"{F(cy + 4)}\">{Esc(e.Name)}</text>\n");
            }
            svg.Append("</g>\n");
        }
        svg.Append("</g>\n");
    }

    /// <summary>One series as a single path element: line segments between finite points (a gap
    /// wherever a point is NaN or infinite), or a dot per point.</summary>
    private static string PathElement(Series s, IReadOnlyList<double> ys, string color,
        Func<double, double> sx, Func<double, double> sy, string cls, double opacity)
    {
        var d = new StringBuilder();
        bool pen = false;
        int n = Math.Min(s.X.Count, ys.Count);
        for (int i = 0; i < n; i++)
        {
            double x = s.X[i], y = ys[i];
            if (!double.IsFinite(x) || !double.IsFinite(y)) { pen = false; continue; }
            double px = sx(x), py = sy(y);
            if (s.Points)
                d.Append($"M{F(px - 2)},{F(py)}a2,2 0 1,0 4,0a2,2 0 1,0 -4,0");
            else
            {
                // A point with no finite neighbour would be an invisible zero-length line: draw a small ring.
                bool lone = !pen && (i + 1 >= n || !double.IsFinite(s.X[i + 1]) || !double.IsFinite(ys[i + 1]));
                if (lone) { d.Append($"M{F(px - 1.5)},{F(py)}a1.5,1.5 0 1,0 3,0a1.5,1.5 0 1,0 -3,0"); continue; }
                d.Append(pen ? 'L' : 'M').Append(F(px)).Append(',').Append(F(py));
                pen = true;
            }
        }
        string style = s.Points
            ? $"fill=\"{color}\" stroke=\"none\""
            : $"fill=\"none\" stroke=\"{color}\" stroke-width=\"{(cls == "raw" ? "1" : "1.6")}\" " +
              "stroke-linejoin=\"round\" stroke-linecap=\"round\"" +
              $"{(s.Dashed ? " stroke-dasharray=\"6,4\"" : "")}";
        string op = opacity < 1 ? $" opacity=\"{F(opacity)}\"" : "";
        return $"<path class=\"{cls}\" {style}{op} d=\"{d}\"><title>{Esc(s.Name)}</title></path>\n";
    }

    /// <summary>A series' band as one filled polygon: along <paramref name="high"/> left to right, back along
    /// <paramref name="low"/> (points where x or either edge is not finite are left out).</summary>
    private static string BandElement(Series s, IReadOnlyList<double> low, IReadOnlyList<double> high, string color,
        Func<double, double> sx, Func<double, double> sy)
    {
        var idx = Enumerable.Range(0, Math.Min(s.X.Count, Math.Min(low.Count, high.Count)))
            .Where(i => double.IsFinite(s.X[i]) && double.IsFinite(low[i]) && double.IsFinite(high[i])).ToList();
        var pts = idx.Select(i => (sx(s.X[i]), sy(high[i])))
            .Concat(Enumerable.Reverse(idx).Select(i => (sx(s.X[i]), sy(low[i]))));
        string points = string.Join(' ', pts.Select(p => $"{F(p.Item1)},{F(p.Item2)}"));
        return $"<polygon class=\"band\" fill=\"{color}\" fill-opacity=\"0.18\" stroke=\"none\" " +
               $"points=\"{points}\"><title>{Esc(s.Name)}: min–max</title></polygon>\n";
    }

    /// <summary>TensorBoard's smoothing: an exponential moving average, debiased so the first values
    /// are not pulled towards zero; NaN points are skipped (and stay NaN).</summary>
    internal static double[] Ema(IReadOnlyList<double> y, double weight)
    {
        var result = new double[y.Count];
        double last = 0;
        int count = 0;
        for (int i = 0; i < y.Count; i++)
        {
            if (!double.IsFinite(y[i])) { result[i] = double.NaN; continue; }
            last = last * weight + (1 - weight) * y[i];
            count++;
            result[i] = last / (1 - Math.Pow(weight, count));
        }
        return result;
    }

    private static IEnumerable<(double x, double y)> Finite(Series s)
    {
        int n = Math.Min(s.X.Count, s.Y.Count);
        for (int i = 0; i < n; i++)
            if (double.IsFinite(s.X[i]) && double.IsFinite(s.Y[i])) yield return (s.X[i], s.Y[i]);
    }

    private static (double min, double max) Range(IEnumerable<double> values)
    {
        double min = double.PositiveInfinity, max = double.NegativeInfinity;
        foreach (var v in values) { if (v < min) min = v; if (v > max) max = v; }
        return min > max ? (double.NaN, double.NaN) : (min, max);
    }

    /// <summary>Pads a range by a fraction of its width; a zero-width range (a constant series, or a
    /// single point) becomes a small range around its value.</summary>
    private static (double, double) Widen(double min, double max, double pad)
    {
        double w = max - min;
        if (w <= Math.Abs(max) * 1e-12 || w == 0)
        {
            double h = min == 0 ? 1 : Math.Abs(min) * 0.1;
            return (min - h, max + h);
        }
        return (min - pad * w, max + pad * w);
    }

    /// <summary>"Nice" tick values (1, 2 or 5 times a power of ten, and at least <paramref name="minStep"/>
    /// apart) inside [min, max], about <paramref name="target"/> of them, and the spacing.</summary>
    internal static (List<double> ticks, double step) Ticks(double min, double max, int target, double minStep = 0)
    {
        double raw = (max - min) / target;
        double mag = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double step = Math.Max(minStep, mag * (raw / mag < 1.5 ? 1 : raw / mag < 3 ? 2 : raw / mag < 7 ? 5 : 10));
        var ticks = new List<double>();
        for (double k = Math.Ceiling(min / step - 1e-9); k * step <= max + step * 1e-9; k++)
            ticks.Add(Math.Abs(k * step) < step * 1e-9 ? 0 : k * step); // no "-0"
        return (ticks, step);
    }

    /// <summary>A tick label with just enough decimals for the tick spacing (0.05 → "0.15"; 100 → "300").</summary>
    internal static string Tick(double v, double step)
    {
        double a = Math.Abs(v);
        if (a != 0 && (a >= 1e6 || a < 1e-4) || step < 1e-4)
            return v.ToString("0.##E+0", CultureInfo.InvariantCulture);
        int decimals = Math.Max(0, (int)-Math.Floor(Math.Log10(step) + 1e-9));
        return v.ToString("F" + decimals, CultureInfo.InvariantCulture);
    }

    private static string F(double v) => Math.Round(v, 1).ToString("0.#", CultureInfo.InvariantCulture);

    private static string Esc(string s) =>
        s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&quot;");
}
