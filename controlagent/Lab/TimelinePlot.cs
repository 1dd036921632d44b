using System.Globalization;
using ScottPlot;

namespace FastXtr.Lab;

/// <summary>
/// Draws the probe timeline around the move as a PNG (ScottPlot): every probe's inter-arrival gap (y, ms) against its
/// arrival time since the move started (x, ms), a vertical line at each of the move's events, and rings around the
/// move's outage (red) and the largest gap outside the move (orange, the path's own jitter).
/// </summary>
public static class TimelinePlot
{
    private const int Width = 960, Height = 420;

    /// <param name="outage">The move's outage: the longest gap overlapping the move, and when it ended (marked in red).</param>
    /// <param name="jitter">The longest gap outside the move (marked in orange): noise, not the move's.</param>
    public static void Write(string path, IReadOnlyList<(double AtMs, double GapMs)> points, IReadOnlyList<(double AtMs, string Label)> events,
        (double Ms, double AtMs) outage, (double Ms, double AtMs) jitter, long lost)
    {
        var red = new Color(220, 30, 30);
        var orange = new Color(240, 140, 0);
        var plot = new Plot();
        plot.Font.Set("DejaVu Sans"); // ScottPlot falls back to a face it has where this one is missing
        double xMin = -500, xMax = Math.Max(1500, points.Count > 0 ? Math.Ceiling(points.Max(p => p.AtMs) / 500) * 500 : 1500);
        double yMax = Math.Max(10, Math.Ceiling(Math.Max(outage.Ms, points.Count > 0 ? points.Max(p => p.GapMs) : 0) * 1.1 / 10) * 10);

        var shown = points.Where(p => p.AtMs >= xMin && p.AtMs <= xMax).ToArray();
        if (shown.Length > 0)
        {
            var probes = plot.Add.Markers(shown.Select(p => p.AtMs).ToArray(), shown.Select(p => p.GapMs).ToArray(), MarkerShape.FilledCircle, 4, new Color(30, 80, 200));
            probes.LegendText = "gap before each probe";
        }
        // The move's events fall within tens of milliseconds of each other: their names are stacked down the top-left
        // of each line instead of on the axis, where they would overlap.
        for (int i = 0; i < events.Count; i++)
        {
            plot.Add.VerticalLine(events[i].AtMs, 1, red, LinePattern.Dashed);
            var name = plot.Add.Text(events[i].Label, events[i].AtMs, yMax * (0.97 - 0.07 * i));
            name.LabelFontColor = red;
            name.LabelFontSize = 11;
            name.LabelAlignment = Alignment.UpperLeft;
            name.OffsetX = 3;
        }
        foreach (var (ms, at, colour, what) in new[] { (outage.Ms, outage.AtMs, red, "outage"), (jitter.Ms, jitter.AtMs, orange, "largest gap outside the move") })
        {
            if (double.IsNaN(at) || ms <= 0 || at < xMin || at > xMax) continue;
            var ring = plot.Add.Marker(at, ms, MarkerShape.OpenCircle, 16, colour);
            ring.LineWidth = 2;
            ring.LegendText = $"{what}: {ms.ToString("F1", CultureInfo.InvariantCulture)} ms";
        }
        plot.Title($"Probe gaps every 1 ms, A to B, around the move: outage {outage.Ms.ToString("F1", CultureInfo.InvariantCulture)} ms, {lost} probes lost");
        plot.XLabel("ms since the move started");
        plot.YLabel("gap (ms)");
        plot.Axes.SetLimits(xMin, xMax, 0, yMax);
        plot.Legend.Alignment = Alignment.UpperRight;
        plot.ShowLegend();
        plot.SavePng(path, Width, Height);
    }
}
