using System.Buffers.Binary;
using System.IO.Compression;

namespace FastXtr.ControlAgent.Lab;

/// <summary>
/// Draws the probe timeline around the move as a PNG with no dependency: every probe's inter-arrival gap (y, ms)
/// against its arrival time since the move started (x, ms), red lines at the move's events, axes with ticks and labels in
/// a built-in 5x7 font. Encoded as 8-bit RGB, one zlib stream (System.IO.Compression), CRCs computed here.
/// </summary>
public static class TimelinePlot
{
    private const int Width = 960, Height = 400, Left = 70, Right = 20, Top = 40, Bottom = 50;

    public static void Write(string path, IReadOnlyList<(double AtMs, double GapMs)> points, IReadOnlyList<(double AtMs, string Label)> events, double outageMs, long lost)
    {
        var img = new byte[Width * Height * 3];
        Array.Fill(img, (byte)255);
        double xMin = -500, xMax = Math.Max(1500, points.Count > 0 ? Math.Ceiling(points.Max(p => p.AtMs) / 500) * 500 : 1500);
        double yMax = Math.Max(10, Math.Ceiling(Math.Max(outageMs, points.Count > 0 ? points.Max(p => p.GapMs) : 0) * 1.1 / 10) * 10);
        int plotW = Width - Left - Right, plotH = Height - Top - Bottom;
        int X(double ms) => Left + (int)Math.Round((ms - xMin) / (xMax - xMin) * plotW);
        int Y(double gap) => Top + plotH - (int)Math.Round(Math.Min(gap, yMax) / yMax * plotH);

        // Grid and axes.
        for (int i = 0; i <= 5; i++)
        {
            double gap = yMax * i / 5;
            Line(img, Left, Y(gap), Left + plotW, Y(gap), 225, 225, 225);
            Text(img, Left - 8 - 6 * Label(gap).Length, Y(gap) - 3, Label(gap), 60, 60, 60);
        }
        for (double ms = xMin; ms <= xMax; ms += 500)
        {
            Line(img, X(ms), Top, X(ms), Top + plotH, 235, 235, 235);
            Text(img, X(ms) - 3 * Label(ms).Length, Top + plotH + 8, Label(ms), 60, 60, 60);
        }
        Line(img, Left, Top, Left, Top + plotH, 0, 0, 0);
        Line(img, Left, Top + plotH, Left + plotW, Top + plotH, 0, 0, 0);
        for (int i = 0; i < events.Count; i++)
        {
            int x = X(events[i].AtMs);
            Line(img, x, Top, x, Top + plotH, 220, 30, 30);
            Text(img, x + 3, Top + 4 + 10 * i, events[i].Label, 220, 30, 30);
        }

        foreach (var (at, gap) in points)
        {
            if (at < xMin || at > xMax) continue;
            int x = X(at), y = Y(gap);
            for (int dx = -1; dx <= 1; dx++)
                for (int dy = -1; dy <= 1; dy++) Set(img, x + dx, y + dy, 30, 80, 200);
        }
        Text(img, Left, 14, $"PROBE GAP (MS) EVERY 1 MS, A TO B, AROUND THE MOVE: OUTAGE {outageMs:F1} MS, {lost} PROBES LOST", 0, 0, 0);
        Text(img, Left + plotW / 2 - 80, Height - 18, "MS SINCE THE MOVE STARTED", 0, 0, 0);

        using var file = File.Create(path);
        file.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, Width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), Height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 2; // RGB
        Chunk(file, "IHDR", ihdr);
        using var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
            for (int row = 0; row < Height; row++)
            {
                z.WriteByte(0); // filter: none
                z.Write(img, row * Width * 3, Width * 3);
            }
        Chunk(file, "IDAT", raw.ToArray());
        Chunk(file, "IEND", []);
    }

    private static string Label(double v) => Math.Abs(v - Math.Round(v)) < 1e-9 ? ((long)Math.Round(v)).ToString(System.Globalization.CultureInfo.InvariantCulture) : v.ToString("F1", System.Globalization.CultureInfo.InvariantCulture);

    private static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> head = stackalloc byte[8];
        BinaryPrimitives.WriteInt32BigEndian(head, data.Length);
        System.Text.Encoding.ASCII.GetBytes(type, head[4..]);
        s.Write(head);
        s.Write(data);
        uint crc = Crc32(Crc32(0xFFFFFFFF, head[4..]), data) ^ 0xFFFFFFFF;
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(tail, crc);
        s.Write(tail);
    }

    /// <summary>The CRC-32 of PNG chunks (ISO 3309, reflected polynomial 0xEDB88320), continued from <paramref name="crc"/>.</summary>
    private static uint Crc32(uint crc, ReadOnlySpan<byte> data)
    {
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
        }
        return crc;
    }

    private static void Set(byte[] img, int x, int y, byte r, byte g, byte b)
    {
        if (x < 0 || y < 0 || x >= Width || y >= Height) return;
        int i = (y * Width + x) * 3;
        img[i] = r;
        img[i + 1] = g;
        img[i + 2] = b;
    }

    private static void Line(byte[] img, int x0, int y0, int x1, int y1, byte r, byte g, byte b)
    {
        int steps = Math.Max(Math.Abs(x1 - x0), Math.Abs(y1 - y0));
        for (int i = 0; i <= steps; i++)
            Set(img, x0 + (steps == 0 ? 0 : (x1 - x0) * i / steps), y0 + (steps == 0 ? 0 : (y1 - y0) * i / steps), r, g, b);
    }

    private static void Text(byte[] img, int x, int y, string text, byte r, byte g, byte b)
    {
        foreach (char ch in text.ToUpperInvariant())
        {
            if (Font.TryGetValue(ch, out var rows))
                for (int row = 0; row < 7; row++)
                    for (int col = 0; col < 5; col++)
                        if ((rows[row] & (0x10 >> col)) != 0) Set(img, x + col, y + row, r, g, b);
            x += 6;
        }
    }

    // 5x7 glyphs, one byte per row, bit 4 = leftmost column.
    private static readonly Dictionary<char, byte[]> Font = new()
    {
        ['0'] = [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], ['1'] = [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        ['2'] = [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], ['3'] = [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        ['4'] = [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], ['5'] = [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        ['6'] = [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], ['7'] = [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        ['8'] = [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], ['9'] = [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        ['A'] = [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], ['B'] = [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        ['C'] = [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E], ['D'] = [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        ['E'] = [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F], ['F'] = [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        ['G'] = [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F], ['H'] = [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        ['I'] = [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], ['J'] = [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        ['K'] = [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], ['L'] = [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        ['M'] = [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11], ['N'] = [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        ['O'] = [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], ['P'] = [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        ['Q'] = [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D], ['R'] = [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        ['S'] = [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E], ['T'] = [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        ['U'] = [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], ['V'] = [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        ['W'] = [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A], ['X'] = [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        ['Y'] = [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04], ['Z'] = [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        ['.'] = [0, 0, 0, 0, 0, 0x0C, 0x0C], ['-'] = [0, 0, 0, 0x1F, 0, 0, 0], [':'] = [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        [','] = [0, 0, 0, 0, 0x0C, 0x04, 0x08], ['('] = [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02], [')'] = [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        ['/'] = [0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10],
    };
}
