using SharpFuzz;

namespace FastXtr.Fuzz;

/// <summary>
/// SharpFuzz entry point. <c>FastXtr.Fuzz TARGET</c> runs under libFuzzer (libfuzzer-dotnet);
/// <c>FastXtr.Fuzz TARGET --afl</c> under AFL++ (afl-fuzz ... -- dotnet FastXtr.Fuzz.dll TARGET --afl);
/// <c>FastXtr.Fuzz TARGET --replay DIR</c> runs every file of DIR once and reports the first finding.
/// Instrument the codec first: <c>sharpfuzz fastxtr.dll</c> (tests/fuzz/README.md).
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length == 0 || !FuzzTargets.All.TryGetValue(args[0], out var target))
        {
            Console.Error.WriteLine($"usage: FastXtr.Fuzz TARGET [--afl | --replay DIR]; targets: {string.Join(", ", FuzzTargets.All.Keys)}");
            return 2;
        }
        if (args.Length >= 3 && args[1] == "--replay")
        {
            int count = 0;
            foreach (var file in Directory.EnumerateFiles(args[2]))
            {
                target(File.ReadAllBytes(file));
                count++;
            }
            Console.WriteLine($"{args[0]}: {count} inputs replayed, no finding");
            return 0;
        }
        if (args.Length >= 2 && args[1] == "--afl")
        {
            Fuzzer.OutOfProcess.Run(stream =>
            {
                using var ms = new MemoryStream();
                stream.CopyTo(ms);
                target(ms.ToArray());
            });
            return 0;
        }
        Fuzzer.LibFuzzer.Run(span => target(span));
        return 0;
    }
}
