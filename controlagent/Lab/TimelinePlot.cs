namespace FastXtr.ControlAgent.Lab;

/// <summary>
/// Draws the probe timeline around the move as a PNG with no dependency: every probe's inter-arrival gap (y, ms)
/// against its arrival time since the move started (x, ms), red lines at the move's events, axes with ticks and labels in
/// a built-in 5x7 font (<see cref="PngCanvas"/>).
/// </summary>
public static class TimelinePlot
{
    private const int Width = 960, Height = 400, Left = 70, Right = 20, Top = 40, Bottom = 50;

    public static void Write(string path, IReadOnlyList<(double AtMs, double GapMs)> points, IReadOnlyList<(double AtMs, string Label)> events, double outageMs, long lost)
    {
        var img = new PngCanvas(Width, Height);
        double xMin = -500, xMax = Math.Max(1500, points.Count > 0 ? Math.Ceiling(points.Max(p => p.AtMs) / 500) * 500 : 1500);
        double yMax = Math.Max(10, Math.Ceiling(Math.Max(outageMs, points.Count > 0 ? points.Max(p => p.GapMs) : 0) * 1.1 / 10) * 10);
        int plotW = Width - Left - Right, plotH = Height - Top - Bottom;
        int X(double ms) => Left + (int)Math.Round((ms - xMin) / (xMax - xMin) * plotW);
        int Y(double gap) => Top + plotH - (int)Math.Round(Math.Min(gap, yMax) / yMax * plotH);

        // Grid and axes.
        for (int i = 0; i <= 5; i++)
        {
            double gap = yMax * i / 5;
            img.Line(Left, Y(gap), Left + plotW, Y(gap), 225, 225, 225);
            img.Text(Left - 8 - 6 * PngCanvas.Label(gap).Length, Y(gap) - 3, PngCanvas.Label(gap), 60, 60, 60);
        }
        for (double ms = xMin; ms <= xMax; ms += 500)
        {
            img.Line(X(ms), Top, X(ms), Top + plotH, 235, 235, 235);
            img.Text(X(ms) - 3 * PngCanvas.Label(ms).Length, Top + plotH + 8, PngCanvas.Label(ms), 60, 60, 60);
        }
        img.Line(Left, Top, Left, Top + plotH, 0, 0, 0);
        img.Line(Left, Top + plotH, Left + plotW, Top + plotH, 0, 0, 0);
        for (int i = 0; i < events.Count; i++)
        {
            int x = X(events[i].AtMs);
            img.Line(x, Top, x, Top + plotH, 220, 30, 30);
            img.Text(x + 3, Top + 4 + 10 * i, events[i].Label, 220, 30, 30);
        }

        foreach (var (at, gap) in points)
        {
            if (at < xMin || at > xMax) continue;
            int x = X(at), y = Y(gap);
            for (int dx = -1; dx <= 1; dx++)
                for (int dy = -1; dy <= 1; dy++) img.Set(x + dx, y + dy, 30, 80, 200);
        }
        img.Text(Left, 14, $"PROBE GAP (MS) EVERY 1 MS, A TO B, AROUND THE MOVE: OUTAGE {outageMs:F1} MS, {lost} PROBES LOST", 0, 0, 0);
        img.Text(Left + plotW / 2 - 80, Height - 18, "MS SINCE THE MOVE STARTED", 0, 0, 0);

        img.Save(path);
    }
}
