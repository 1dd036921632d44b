using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;

namespace FastXtr.StressWriter;

/// <summary>
/// <c>FastXtr.StressWriter SHM KEYS SECONDS</c>: attaches to a region and, for SECONDS, rewrites, removes and
/// re-inserts entries for KEYS destinations (IID 7, 10.0.k.0/24). Every entry it writes is self-consistent by
/// construction: generation g gives MapVersion g &amp; 0xFFF, (g % 8) + 1 RLOCs, each with address 0x0A000000 + g,
/// priority g % 250 and weight (g * 7) % 256. A reader that ever sees an entry breaking that rule saw a torn write.
/// Prints the number of writes on exit.
/// <para>
/// <c>FastXtr.StressWriter crash SHM KEYS entry|index</c>: writes KEYS entries by the same rule (generation k + 1 for
/// key k), prints "ready", then stops for good at the writer's crash point: "entry" rewrites key 0 and stops half-way
/// through its fields; "index" removes keys 0, 1, 2 … (printing "removing K" before each) until a removal moves an
/// index slot, and stops there. It prints "stopped" and waits to be killed.
/// </para>
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length == 4 && args[0] == "crash") return Crash(args[1], int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture), args[3]);
        if (args.Length != 3) { Console.Error.WriteLine("usage: FastXtr.StressWriter SHM KEYS SECONDS | crash SHM KEYS entry|index"); return 2; }
        using var region = SharedRegion.Attach(args[0]);
        var writer = region.CreateWriter();
        int keys = int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture);
        var until = DateTime.UtcNow.AddSeconds(double.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture));
        var rng = new Random(1234);
        long writes = 0;
        uint generation = 1;
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
                    writer.Upsert(Spec(k, generation++));
                }
                writes++;
            }
        }
        Console.WriteLine(writes);
        return 0;
    }

    public static MapCacheEntrySpec Spec(int key, uint g)
    {
        int count = (int)(g % 8) + 1;
        var rlocs = new RlocSpec[count];
        for (int i = 0; i < count; i++) rlocs[i] = new RlocSpec(EidFamily.Ipv4, 0x0A000000u + g, (byte)(g % 250), (byte)(g * 7 % 256));
        return new MapCacheEntrySpec(7, 0, EidFamily.Ipv4, 0x0A000000u + ((uint)key << 8), 24, rlocs, MapVersion: (ushort)(g & 0xFFF));
    }

    private static int Crash(string shm, int keys, string point)
    {
        using var region = SharedRegion.Attach(shm);
        var writer = region.CreateWriter();
        for (int k = 0; k < keys; k++) writer.Upsert(Spec(k, (uint)k + 1));
        Console.WriteLine("ready");
        MapCacheWriter.CrashPointForTests = where =>
        {
            if (where != point) return;
            Console.WriteLine("stopped");
            Console.Out.Flush();
            Thread.Sleep(Timeout.Infinite);
        };
        if (point == "entry") writer.Upsert(Spec(0, 5000));
        else
            for (int k = 0; k < keys; k++)
            {
                Console.WriteLine($"removing {k}");
                Console.Out.Flush();
                writer.Remove(7, 0, EidFamily.Ipv4, 0x0A000000u + ((uint)k << 8), 24);
            }
        Console.WriteLine("no crash point reached");
        return 1;
    }
}
