using System.Diagnostics;
using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;
using NUnit.Framework;

namespace FastXtr.Tests.Dataplane.SharedMemory;

/// <summary>
/// Readers against a writer in another process (tests/StressWriter) over a real /dev/shm region: every entry a
/// reader accepts must be one the writer wrote whole. Proven by counting, not by timing.
/// </summary>
[TestFixture]
[Category("stress")]
public class MapCacheStressTests
{
    private const int Keys = 64;

    private static bool Consistent(in MapCacheEntry e, uint key)
    {
        if (e.InstanceId != 7 || e.Family != EidFamily.Ipv4 || e.PrefixLength != 24 || e.Prefix != 0x0A000000u + (key << 8)) return false;
        uint g = (uint)e.Rlocs[0].Address - 0x0A000000u;
        if (e.MapVersion != (g & 0xFFF) || e.RlocCount != (g % 8) + 1) return false;
        // A lookup copies the locators up to RlocCount (the slots past it are not the lookup's to read).
        for (int i = 0; i < e.RlocCount; i++)
        {
            var r = e.Rlocs[i];
            if (r.Address != 0x0A000000u + g || r.Priority != g % 250 || r.Weight != (byte)(g * 7 % 256) || !r.Up) return false;
        }
        return true;
    }

    [Test]
    public void ReadersNeverSeeATornEntry_WhileAnotherProcessChurns()
    {
        string name = $"fxtr-stress-{Environment.ProcessId}-{Guid.NewGuid():n}";
        using var region = SharedRegion.Create(name, new SharedRegionSizes(1024, 16, 1, 16));
        try
        {
            string writerDll = Path.Combine(TestContext.CurrentContext.TestDirectory, "FastXtr.StressWriter.dll");
            var psi = new ProcessStartInfo("dotnet", [writerDll, name, Keys.ToString(System.Globalization.CultureInfo.InvariantCulture), "4"])
            { RedirectStandardOutput = true, RedirectStandardError = true };
            using var writer = Process.Start(psi)!;
            long reads = 0, hits = 0, torn = 0;
            var readers = Enumerable.Range(0, 2).Select(t => Task.Run(() =>
            {
                var rng = new Random(t);
                long r = 0, h = 0, bad = 0;
                while (!writer.HasExited)
                {
                    for (int i = 0; i < 10_000; i++)
                    {
                        uint key = (uint)rng.Next(Keys);
                        if (region.MapCache.TryLookup(new MapCacheKey(7, 0, EidFamily.Ipv4, 0x0A000000u + (key << 8) + 9), out var e))
                        {
                            h++;
                            if (!Consistent(e, key)) bad++;
                        }
                        r++;
                    }
                }
                Interlocked.Add(ref reads, r);
                Interlocked.Add(ref hits, h);
                Interlocked.Add(ref torn, bad);
            })).ToArray();
            Assert.That(writer.WaitForExit(60_000), Is.True, "the writer did not finish");
            Task.WaitAll(readers);
            string output = writer.StandardOutput.ReadToEnd();
            Assert.That(writer.ExitCode, Is.EqualTo(0), writer.StandardError.ReadToEnd());
            long writes = long.Parse(output.Trim(), System.Globalization.CultureInfo.InvariantCulture);
            TestContext.Out.WriteLine($"writes {writes:N0}, reads {reads:N0}, hits {hits:N0}, torn {torn}");
            Assert.That(torn, Is.EqualTo(0));
            Assert.That(writes, Is.GreaterThan(100_000), "the writer churned");
            Assert.That(reads, Is.GreaterThan(1_000_000), "millions of reads overlapped the writes");
            Assert.That(hits, Is.GreaterThan(reads / 2), "most reads found an entry");
        }
        finally
        {
            FastXtr.NativeInterop.SharedMemoryMapping.Unlink(name);
        }
    }

    [Test]
    public unsafe void WriterStoppedMidUpdate_ReadersMissInsteadOfSeeingHalfAnEntry()
    {
        using var region = SharedRegion.CreatePrivate(new SharedRegionSizes(16, 16, 1, 16));
        var w = region.CreateWriter();
        w.Upsert(new MapCacheEntrySpec(1, 0, EidFamily.Ipv4, 0x0A000000, 8, [new RlocSpec(EidFamily.Ipv4, 5, 1, 1)]));
        var key = new MapCacheKey(1, 0, EidFamily.Ipv4, 0x0A000001);
        Assert.That(region.MapCache.TryLookup(key, out _), Is.True);
        // Freeze the entry as a writer that died between BeginWrite and EndWrite would leave it: odd counter,
        // half-changed fields.
        var snapshot = region.MapCache.Snapshot();
        Assert.That(snapshot, Has.Count.EqualTo(1));
        MapCacheEntry* e = FindEntry(region);
        e->Seq++;
        e->Rlocs[0].Address = 6;
        Assert.That(region.MapCache.TryLookup(key, out _), Is.False, "an entry under change is never returned");
        e->Seq++;
        Assert.That(region.MapCache.TryLookup(key, out var after), Is.True);
        Assert.That((uint)after.Rlocs[0].Address, Is.EqualTo(6u), "once the change completes the new value is read");
    }

    /// <summary>
    /// A writer process killed inside an update (an entry half-written, or a removal half-way through moving index
    /// slots): while it is stopped, readers in this process see no torn entry and every lookup returns; a second writer
    /// is refused while it lives; once it is killed the next writer takes the lease, repairs, and every entry it did
    /// not touch is found again whole.
    /// </summary>
    [TestCase("entry")]
    [TestCase("index")]
    public void AWriterKilledMidUpdate_IsRepairedByTheNext_AndReadersNeverSeeATornEntry(string point)
    {
        const int keys = 200;
        string name = $"fxtr-crash-{Environment.ProcessId}-{Guid.NewGuid():n}";
        using var region = SharedRegion.Create(name, new SharedRegionSizes(256, 16, 1, 16));
        Process? writer = null;
        try
        {
            string writerDll = Path.Combine(TestContext.CurrentContext.TestDirectory, "FastXtr.StressWriter.dll");
            writer = Process.Start(new ProcessStartInfo("dotnet", [writerDll, "crash", name, keys.ToString(System.Globalization.CultureInfo.InvariantCulture), point])
            { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var touched = new HashSet<int>();
            string? line;
            while ((line = writer.StandardOutput.ReadLine()) is not null && line != "stopped")
                if (line.StartsWith("removing ", StringComparison.Ordinal)) touched.Add(int.Parse(line[9..], System.Globalization.CultureInfo.InvariantCulture));
            Assert.That(line, Is.EqualTo("stopped"), () => "the writer reached its crash point: " + writer.StandardError.ReadToEnd());
            if (point == "entry") touched.Add(0);
            int stoppedInside = touched.Max(); // the key whose update never finished

            // Stopped mid-update: every lookup returns, and what it returns is whole.
            for (int round = 0; round < 50; round++)
                for (int k = 0; k < keys; k++)
                    if (region.MapCache.TryLookup(Key(k), out var e))
                        Assert.That(Consistent(e, (uint)k), Is.True, $"key {k} read whole while the writer is stopped");
            if (point == "entry") Assert.That(region.MapCache.TryLookup(Key(0), out _), Is.False, "the entry under change is not returned");
            else Assert.That(region.Header.IndexSeq & 1, Is.EqualTo(1u), "the writer stopped with index slots moving");

            var refused = Assert.Throws<SharedRegionException>(() => region.CreateWriter());
            Assert.That(refused!.Message, Does.Contain($"already has a writer (pid {writer.Id}"));

            writer.Kill();
            Assert.That(writer.WaitForExit(10_000), Is.True);
            using var next = region.CreateWriter();
            if (point == "entry") Assert.That(next.Repair, Is.EqualTo(new MapCacheRepair(1, true, 0)), "the half-written entry was cleared");
            else Assert.That(next.Repair.IndexRebuilt, Is.True, "the index left mid-shift was rebuilt");
            Assert.That(region.Header.IndexSeq & 1, Is.EqualTo(0u));
            for (int k = 0; k < keys; k++)
            {
                bool found = region.MapCache.TryLookup(Key(k), out var e);
                if (!touched.Contains(k)) Assert.That(found, Is.True, $"key {k}, untouched by the crash, is found");
                else if (k != stoppedInside) Assert.That(found, Is.False, $"key {k} was removed before the crash");
                if (found) Assert.That(Consistent(e, (uint)k), Is.True, $"key {k} is whole after the repair");
            }
            Assert.That(next.EmptyIndexSlots(), Is.EqualTo(region.Sizes.IndexSlots - next.Count), "every live entry is linked once");
            Assert.That(next.Count, Is.EqualTo(region.MapCache.Snapshot().Count));
            Assert.That(next.Upsert(FastXtr.StressWriter.Program.Spec(stoppedInside, 9000)), Is.AnyOf(MapCacheWriteResult.Inserted, MapCacheWriteResult.Updated));
            Assert.That(region.MapCache.TryLookup(Key(stoppedInside), out var rewritten) && Consistent(rewritten, (uint)stoppedInside), Is.True, "the repaired map-cache takes writes");
        }
        finally
        {
            if (writer is { HasExited: false }) writer.Kill();
            writer?.Dispose();
            FastXtr.NativeInterop.SharedMemoryMapping.Unlink(name);
        }
    }

    private static MapCacheKey Key(int k) => new(7, 0, EidFamily.Ipv4, 0x0A000000u + ((uint)k << 8) + 9);

    private static unsafe MapCacheEntry* FindEntry(SharedRegion region)
    {
        byte* entries = region.BaseForTests + region.Header.EntriesOffset;
        for (int i = 0; i < region.Sizes.EntryCapacity; i++)
        {
            var e = (MapCacheEntry*)(entries + (long)i * MapCacheEntry.Bytes);
            if (e->State == MapCacheEntry.StateUsed) return e;
        }
        throw new AssertionException("no entry");
    }
}
