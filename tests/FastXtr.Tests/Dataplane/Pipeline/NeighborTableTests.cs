using FastXtr.Dataplane.Workers;
using NUnit.Framework;

namespace FastXtr.Tests.Dataplane.Pipeline;

/// <summary>The af-packet ETR's learned MAC addresses: lookups, changes, families, eviction, and no torn reads.</summary>
[TestFixture]
public class NeighborTableTests
{
    [Test]
    public void Learned_AddressesAreFound_ByAddressAndFamily()
    {
        var t = new NeighborTable();
        t.Learn(0x0A010002, ipv6: false, 0x0000_5E00_5301);
        t.Learn(0x0A010002, ipv6: true, 0x0000_5E00_5302); // the same number as an IPv6 address is another host
        Assert.That(t.TryGet(0x0A010002, false, out ulong v4) ? v4 : 0, Is.EqualTo(0x0000_5E00_5301UL));
        Assert.That(t.TryGet(0x0A010002, true, out ulong v6) ? v6 : 0, Is.EqualTo(0x0000_5E00_5302UL));
        Assert.That(t.TryGet(0x0A010003, false, out _), Is.False);
        t.Learn(0x0A010002, false, 0x0000_5E00_53FF);
        Assert.That(t.TryGet(0x0A010002, false, out ulong changed) ? changed : 0, Is.EqualTo(0x0000_5E00_53FFUL), "a host's new MAC replaces the old");
        Assert.That(t.Count, Is.EqualTo(2));
    }

    [Test]
    public void AFullTable_StillAnswersForWhatItHolds_AndForgetsNoRecentAddress()
    {
        var t = new NeighborTable();
        var rng = new Random(6);
        var all = Enumerable.Range(0, 3 * NeighborTable.Slots).Select(_ => (UInt128)(uint)rng.Next()).Distinct().ToList();
        foreach (var a in all) t.Learn(a, false, (ulong)a & 0xFFFF_FFFF_FFFFUL);
        // Whatever it still holds maps to the right MAC; the last address learned is always there.
        foreach (var a in all)
            if (t.TryGet(a, false, out ulong mac)) Assert.That(mac, Is.EqualTo((ulong)a & 0xFFFF_FFFF_FFFFUL));
        Assert.That(t.TryGet(all[^1], false, out _), Is.True);
        Assert.That(t.Count, Is.LessThanOrEqualTo(NeighborTable.Slots));
    }

    [Test]
    public void ConcurrentLearning_NeverShowsATornEntry()
    {
        // Learners churn far more hosts than the table holds, so slots are rewritten with other addresses all the
        // time; every MAC encodes its host's address, so a reader that mixed one host's address with another's MAC
        // (a torn read) would see a MAC that does not match. Misses are allowed (evicted, or being written).
        var t = new NeighborTable();
        static ulong Mac(uint host, int version) => ((ulong)(version & 0xFF) << 40) | host;
        const int Hosts = 4 * NeighborTable.Slots;
        using var stop = new CancellationTokenSource();
        long hits = 0, torn = 0;
        // Threads of their own: four pool tasks on a 2-core machine would run the learners alone.
        var learners = Enumerable.Range(0, 2).Select(k => new Thread(() =>
        {
            var rng = new Random(k);
            for (int v = 0; !stop.IsCancellationRequested; v++)
            {
                uint h = (uint)rng.Next(Hosts);
                t.Learn(h, false, Mac(h, v));
            }
        })).ToArray();
        var readers = Enumerable.Range(0, 2).Select(k => new Thread(() =>
        {
            var rng = new Random(100 + k);
            while (!stop.IsCancellationRequested)
            {
                uint h = (uint)rng.Next(Hosts);
                if (!t.TryGet(h, false, out ulong mac)) continue;
                Interlocked.Increment(ref hits);
                if ((uint)mac != h) Interlocked.Increment(ref torn);
            }
        })).ToArray();
        foreach (var th in learners.Concat(readers)) th.Start();
        Thread.Sleep(1500);
        stop.Cancel();
        foreach (var th in learners.Concat(readers)) th.Join();
        Assert.That(Interlocked.Read(ref torn), Is.EqualTo(0), "a read mixed one host's address with another's MAC");
        Assert.That(Interlocked.Read(ref hits), Is.GreaterThan(100_000));
    }
}
