using BenchmarkDotNet.Running;

namespace FastXtr.Perf;

/// <summary>
/// Micro-benchmarks: <c>dotnet run -c Release --project perf -- --filter '*'</c> (BenchmarkDotNet arguments).
/// scripts/bench-codec.sh runs them and writes perf/RESULTS.md's codec table. <c>mapserver-load ...</c> is the
/// Map-Server load generator that scripts/bench-mapserver.sh drives.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "mapserver-load") return Load.MapServerLoad.Run(args[1..]);
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
