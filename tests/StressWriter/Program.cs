using FastXtr.Dataplane.MapCache;
using FastXtr.Dataplane.Shared;

namespace FastXtr.StressWriter;

/// <summary>
/// <c>FastXtr.StressWriter SHM KEYS SECONDS</c>: attaches to a region and, for SECONDS, rewrites, removes and
/// re-inserts entries for KEYS destinations (IID 7, 10.0.k.0/24). Every entry it writes is self-consistent by
/// construction: generation g gives MapVersion g &amp; 0xFFF, (g % 8) + 1 RLOCs, each with address 0x0A000000 + g,
/// priority g % 250 and weight (g * 7) % 256. A reader that ever sees an entry breaking that rule saw a torn write.
/// Prints the number of writes on exit.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length != 3) { Console.Error.WriteLine("usage: FastXtr.StressWriter SHM KEYS SECONDS"); return 2; }
        using var region = SharedRegion.Attach(args[0]);
        var writer = region.CreateWriter();
        int keys = int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture);
        var until = DateTime.UtcNow.AddSeconds(double.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture));
        var rng = new Random(1234);
        long writes = 0;
        uint generation = 1;
        var rlocs = new RlocSpec[8];
        while (DateTime.UtcNow < until)
        {
            for (int batch = 0; batch < 1000; batch++)
            {
                int k = rng.Next(keys);
                UInt128 prefix = 0x0A000000u + ((uint)k << 8);
                if (rng.Next(10) == 0)
                {
                    writer.Remove(7, 0, EidFamily.Ipv4, prefix, 24);
                }
                else
                {
                    uint g = generation++;
                    int count = (int)(g % 8) + 1;
                    for (int i = 0; i < count; i++) rlocs[i] = new RlocSpec(EidFamily.Ipv4, 0x0A000000u + g, (byte)(g % 250), (byte)(g * 7 % 256));
                    writer.Upsert(new MapCacheEntrySpec(7, 0, EidFamily.Ipv4, prefix, 24, rlocs.AsSpan(0, count).ToArray(), MapVersion: (ushort)(g & 0xFFF)));
                }
                writes++;
            }
        }
        Console.WriteLine(writes);
        return 0;
    }
}
