using System.Globalization;
using System.Text.Json.Nodes;
using ScottPlot;

namespace FastXtr.Perf.Charts;

/// <summary>
/// <c>dataplane-chart RESULTS.json OUT.png</c>: the bar chart of scripts/bench-dataplane.sh's figures (ScottPlot),
/// packet rates (Mpps) on the left and TCP throughput (Gbit/s) on the right, one bar per path, kernel VXLAN first,
/// each FastXtr bar labelled with its ratio to the VXLAN run it is compared with.
/// </summary>
public static class DataplaneChart
{
    // Greys for the kernel baselines, then one colour per FastXtr path (ten distinct).
    private static readonly Color[] Colours =
    [
        new(120, 120, 120), new(190, 190, 190), new(230, 150, 60), new(200, 70, 40), new(90, 160, 220), new(30, 80, 200),
        new(60, 170, 90), new(20, 110, 50), new(150, 90, 190), new(90, 40, 130), new(220, 190, 40), new(140, 110, 20),
    ];

    public static int Run(string[] args)
    {
        if (args.Length != 2)
        {
            Console.Error.WriteLine("usage: dataplane-chart RESULTS.json OUT.png   (RESULTS.json from scripts/bench-dataplane.sh --json)");
            return 2;
        }
        var figures = JsonNode.Parse(File.ReadAllText(args[0]))!.AsObject();
        // Paths: "vxlan" and every "fx<workers><offload>" prefix with a packet-rate figure, in a stable order (the
        // request/response keys, <path>_rr..., and the plain underlay's have their own panel).
        var paths = figures.Select(kv => kv.Key).Where(k => k.EndsWith("_udp64", StringComparison.Ordinal)).Select(k => k[..k.IndexOf('_', StringComparison.Ordinal)]).Distinct()
            .OrderBy(p => p == "vxlan" ? "0" : p == "vxlanr" ? "1" : p, StringComparer.Ordinal).ToList();
        var rates = new[] { ("udp64", "UDP 64 B"), ("udp1400", "UDP 1400 B") };
        var throughputs = figures.Select(kv => kv.Key).Where(k => k.StartsWith("vxlan_tcp", StringComparison.Ordinal))
            .Select(k => k["vxlan_".Length..]).OrderBy(k => k.Length).ThenBy(k => k, StringComparer.Ordinal)
            .Select(k => (k, $"TCP, {k[3..]} stream(s)")).ToArray();
        double Value(string path, string metric) => figures[$"{path}_{metric}"]?.GetValue<double>() ?? 0;

        // Request/response round trips (one request outstanding), when the run measured them.
        var exchanges = new[] { ("rr_udp64_p50_us", "UDP 64 B p50"), ("rr_udp64_p99_us", "UDP 64 B p99"), ("rr_tcp1k_p50_us", "TCP 1 KB p50"), ("rr_tcp1k_p99_us", "TCP 1 KB p99") }
            .Where(e => figures.ContainsKey($"vxlan_{e.Item1}")).ToArray();
        var chart = new Multiplot();
        chart.AddPlots(exchanges.Length > 0 ? 3 : 2);
        chart.Layout = new ScottPlot.MultiplotLayouts.Columns();
        Panel(chart.GetPlot(0), $"Packet rate, Mpps ({figures["seconds"]} s per figure)", rates, paths, Value, legend: false);
        Panel(chart.GetPlot(1), "TCP throughput, Gbit/s (labels: ratio to VXLAN between the same hosts)", throughputs, paths, Value, legend: exchanges.Length == 0);
        if (exchanges.Length > 0)
            Panel(chart.GetPlot(2), "Request/response round trip, µs, 1 outstanding (lower is better)", exchanges, paths, Value, legend: true);
        chart.SavePng(args[1], exchanges.Length > 0 ? 2000 : 1400, 520);
        Console.WriteLine($"wrote {args[1]}");
        return 0;
    }

    private static string Describe(string path) => path switch
    {
        "vxlan" => "kernel VXLAN",
        "vxlanr" => "VXLAN, routed hosts",
        _ when path.EndsWith("xdp", StringComparison.Ordinal) => $"FastXtr {path[2..^3]}w af-xdp",
        _ when path.EndsWith("xdpu", StringComparison.Ordinal) => $"FastXtr {path[2..^4]}w af-xdp, underlay too",
        _ when path.Contains("ap", StringComparison.Ordinal) => $"FastXtr {path[2..path.IndexOf("ap", StringComparison.Ordinal)]}w af-packet {path[(path.IndexOf("ap", StringComparison.Ordinal) + 2)..]}",
        _ => $"FastXtr {path[2]}w TUN offload {path[3..]}",
    };

    /// <summary>What a path's ratio is taken against: af-packet and af-xdp serve routed hosts, so the routed VXLAN run.</summary>
    private static string Baseline(string path) => path.Contains("ap", StringComparison.Ordinal) || path.Contains("xdp", StringComparison.Ordinal) ? "vxlanr" : "vxlan";

    private static void Panel(Plot plot, string title, (string Metric, string Label)[] metrics, List<string> paths, Func<string, string, double> value, bool legend)
    {
        plot.Font.Set("DejaVu Sans"); // ScottPlot falls back to a face it has where this one is missing
        var bars = new List<Bar>();
        double groupWidth = paths.Count + 1;
        for (int g = 0; g < metrics.Length; g++)
            for (int i = 0; i < paths.Count; i++)
            {
                double v = value(paths[i], metrics[g].Metric), baseline = value(Baseline(paths[i]), metrics[g].Metric);
                bool isBaseline = paths[i].StartsWith("vxlan", StringComparison.Ordinal) || baseline <= 0;
                bars.Add(new Bar
                {
                    Position = g * groupWidth + i, Value = v, FillColor = Colours[i % Colours.Length],
                    Label = isBaseline ? v.ToString(v < 1 ? "F3" : "F1", CultureInfo.InvariantCulture) : (v / baseline).ToString("F2", CultureInfo.InvariantCulture) + "x",
                });
            }
        var plotted = plot.Add.Bars(bars);
        plotted.ValueLabelStyle.FontSize = 10;
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            metrics.Select((_, g) => g * groupWidth + (paths.Count - 1) / 2.0).ToArray(), metrics.Select(m => m.Label).ToArray());
        plot.Axes.Margins(bottom: 0, top: 0.12);
        plot.Title(title, size: 14);
        if (!legend) return;
        for (int i = 0; i < paths.Count; i++)
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = Describe(paths[i]), FillColor = Colours[i % Colours.Length] });
        plot.ShowLegend(Edge.Right);
    }
}
