using BenchmarkDotNet.Running;

namespace FastXtr.Perf;

/// <summary>
/// Micro-benchmarks: <c>dotnet run -c Release --project perf -- --filter '*'</c> (BenchmarkDotNet arguments).
/// scripts/bench-codec.sh runs them and writes perf/RESULTS.md's codec table.
/// </summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
