using BenchmarkDotNet.Running;

namespace FastXtr.Perf;

/// <summary>
/// Micro-benchmarks: <c>dotnet run -c Release --project perf -- --filter '*'</c> (BenchmarkDotNet arguments).
/// scripts/bench-codec.sh runs them and writes perf/RESULTS.md's codec table. <c>mapserver-load ...</c> is the
/// Map-Server load generator that scripts/bench-mapserver.sh drives; <c>mapserver-reload [COUNT]</c> times a
/// Map-Server reload with COUNT registrations; <c>dataplane-chart</c> draws
/// scripts/bench-dataplane.sh's PNG.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "mapserver-load") return Load.MapServerLoad.Run(args[1..]);
        if (args.Length > 0 && args[0] == "mapserver-reload") return Load.MapServerReload.Run(args[1..]);
        if (args.Length > 0 && args[0] == "dataplane-chart") return Charts.DataplaneChart.Run(args[1..]);
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
