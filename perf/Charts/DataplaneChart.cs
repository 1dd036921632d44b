using System.Globalization;
using System.Text.Json.Nodes;
using FastXtr.Lab;

namespace FastXtr.Perf.Charts;

/// <summary>
/// <c>dataplane-chart RESULTS.json OUT.png</c>: the bar chart of scripts/bench-dataplane.sh's figures, packet rates
/// (Mpps) on the left and TCP throughput (Gbit/s) on the right, one bar per path, kernel VXLAN first, each
/// FastXtr bar labelled with its value and its ratio to VXLAN.
/// </summary>
public static class DataplaneChart
{
    // Greys for the kernel baselines, then one colour per FastXtr path (ten distinct).
    private static readonly (byte R, byte G, byte B)[] Colours =
        [(120, 120, 120), (190, 190, 190), (230, 150, 60), (200, 70, 40), (90, 160, 220), (30, 80, 200), (60, 170, 90), (20, 110, 50), (150, 90, 190), (90, 40, 130), (220, 190, 40), (140, 110, 20)];

    public static int Run(string[] args)
    {
        if (args.Length != 2)
        {
            Console.Error.WriteLine("usage: dataplane-chart RESULTS.json OUT.png   (RESULTS.json from scripts/bench-dataplane.sh --json)");
            return 2;
        }
        var figures = JsonNode.Parse(File.ReadAllText(args[0]))!.AsObject();
        // Paths: "vxlan" and every "fx<workers><offload>" prefix in the file, in a stable order.
        var paths = figures.Select(kv => kv.Key).Where(k => k.Contains('_', StringComparison.Ordinal)).Select(k => k[..k.IndexOf('_', StringComparison.Ordinal)]).Distinct()
            .OrderBy(p => p == "vxlan" ? "0" : p == "vxlanr" ? "1" : p, StringComparer.Ordinal).ToList();
        var rates = new[] { ("udp64", "UDP 64 B"), ("udp1400", "UDP 1400 B") };
        var throughputs = figures.Select(kv => kv.Key).Where(k => k.StartsWith("vxlan_tcp", StringComparison.Ordinal))
            .Select(k => k["vxlan_".Length..]).OrderBy(k => k.Length).ThenBy(k => k, StringComparer.Ordinal)
            .Select(k => (k, $"TCP {k[3..]} STREAM(S)")).ToArray();
        double Value(string path, string metric) => figures[$"{path}_{metric}"]?.GetValue<double>() ?? 0;

        var img = new PngCanvas(1100, 460);
        img.Text(20, 12, $"FASTXTR DATA PLANE AGAINST KERNEL VXLAN, SAME RUN, SAME VETH ({figures["seconds"]} S PER FIGURE)", 0, 0, 0);
        Panel(img, 20, 40, 520, 340, "MPPS", rates, paths, Value);
        Panel(img, 560, 40, 520, 340, "GBIT/S", throughputs, paths, Value);
        for (int i = 0; i < paths.Count; i++)
        {
            var c = Colours[i % Colours.Length];
            int x = 20 + i % 6 * 180, y = 422 + i / 6 * 14;
            img.Fill(x, y, x + 10, y + 8, c.R, c.G, c.B);
            img.Text(x + 16, y + 1, Describe(paths[i]), 0, 0, 0);
        }
        img.Save(args[1]);
        Console.WriteLine($"wrote {args[1]}");
        return 0;
    }

    private static string Describe(string path) => path switch
    {
        "vxlan" => "KERNEL VXLAN",
        "vxlanr" => "VXLAN ROUTED",
        _ when path.Contains("ap", StringComparison.Ordinal) => $"FASTXTR {path[2..path.IndexOf("ap", StringComparison.Ordinal)]}W AF-PACKET {path[(path.IndexOf("ap", StringComparison.Ordinal) + 2)..].ToUpperInvariant()}",
        _ => $"FASTXTR {path[2]}W TUN OFFLOAD {path[3..].ToUpperInvariant()}",
    };

    /// <summary>What a path's ratio is taken against: af-packet serves routed hosts, so the routed VXLAN run.</summary>
    private static string Baseline(string path) => path.Contains("ap", StringComparison.Ordinal) ? "vxlanr" : "vxlan";

    private static void Panel(PngCanvas img, int left, int top, int width, int height, string unit, (string Metric, string Label)[] metrics, List<string> paths, Func<string, string, double> value)
    {
        int bottom = top + height - 30, plotTop = top + 20;
        double max = Math.Max(1e-9, metrics.SelectMany(m => paths.Select(p => value(p, m.Metric))).Max()) * 1.15;
        img.Text(left, top, unit, 0, 0, 0);
        img.Line(left + 40, plotTop, left + 40, bottom, 0, 0, 0);
        img.Line(left + 40, bottom, left + width, bottom, 0, 0, 0);
        for (int t = 0; t <= 4; t++)
        {
            double v = max * t / 4;
            int y = bottom - (int)((bottom - plotTop) * t / 4.0);
            img.Line(left + 41, y, left + width, y, 230, 230, 230);
            img.Text(left, y - 3, PngCanvas.Label(Math.Round(v, v < 1 ? 3 : 1)), 60, 60, 60);
        }
        int groupWidth = (width - 60) / metrics.Length;
        int bar = Math.Max(6, (groupWidth - 20) / paths.Count);
        for (int g = 0; g < metrics.Length; g++)
        {
            int gx = left + 50 + g * groupWidth;
            for (int i = 0; i < paths.Count; i++)
            {
                double vxlan = value(Baseline(paths[i]), metrics[g].Metric);
                double v = value(paths[i], metrics[g].Metric);
                int x = gx + i * bar, y = bottom - (int)((bottom - plotTop) * v / max);
                var c = Colours[i % Colours.Length];
                img.Fill(x, y, x + bar - 3, bottom - 1, c.R, c.G, c.B);
                string text = paths[i].StartsWith("vxlan", StringComparison.Ordinal) || vxlan <= 0 ? PngCanvas.Label(v) : (v / vxlan).ToString("F2", CultureInfo.InvariantCulture) + "X";
                img.Text(x, y - 10 - (i % 2) * 9, text, 40, 40, 40);
            }
            img.Text(gx, bottom + 8, metrics[g].Label, 0, 0, 0);
        }
    }
}
