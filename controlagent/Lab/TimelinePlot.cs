namespace FastXtr.Lab;

/// <summary>
/// Draws the probe timeline around the move as a PNG with no dependency: every probe's inter-arrival gap (y, ms)
/// against its arrival time since the move started (x, ms), red lines at the move's events, axes with ticks and labels in
/// a built-in 5x7 font (<see cref="PngCanvas"/>).
/// </summary>
public static class TimelinePlot
{
    private const int Width = 960, Height = 400, Left = 70, Right = 20, Top = 40, Bottom = 50;

    /// <param name="outage">The move's outage: the longest gap overlapping the move, and when it ended (marked in red).</param>
    /// <param name="jitter">The longest gap outside the move (marked in orange): noise, not the move's.</param>
    public static void Write(string path, IReadOnlyList<(double AtMs, double GapMs)> points, IReadOnlyList<(double AtMs, string Label)> events,
        (double Ms, double AtMs) outage, (double Ms, double AtMs) jitter, long lost)
    {
        double outageMs = outage.Ms;
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
        // Rings around the two gaps the caption names.
        foreach (var (ms, at, r, g, b) in new[] { (outage.Ms, outage.AtMs, 220, 30, 30), (jitter.Ms, jitter.AtMs, 240, 140, 0) })
        {
            if (double.IsNaN(at) || ms <= 0 || at < xMin || at > xMax) continue;
            int cx = X(at), cy = Y(ms);
            for (int k = 0; k < 64; k++)
            {
                double angle = k * Math.PI / 32;
                for (int radius = 6; radius <= 7; radius++) img.Set(cx + (int)Math.Round(radius * Math.Cos(angle)), cy + (int)Math.Round(radius * Math.Sin(angle)), (byte)r, (byte)g, (byte)b);
            }
        }
        img.Text(Left, 14, $"PROBE GAP (MS) EVERY 1 MS, A TO B, AROUND THE MOVE: OUTAGE {outageMs:F1} MS (RED), {lost} PROBES LOST", 0, 0, 0);
        img.Text(Left, 26, $"LARGEST GAP OUTSIDE THE MOVE (JITTER, ORANGE): {jitter.Ms:F1} MS", 240, 140, 0);
        img.Text(Left + plotW / 2 - 80, Height - 18, "MS SINCE THE MOVE STARTED", 0, 0, 0);

        img.Save(path);
    }
}
