using FastXtr.Packets;
using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;
using NUnit.Framework;

namespace FastXtr.Tests.Dataplane.SharedMemory;

/// <summary>The map-cache against a naive reference model: random inserts, updates, deletes and lookups.</summary>
[TestFixture]
public class MapCacheModelTests
{
    private sealed record ModelEntry(uint Iid, ushort Profile, EidFamily Family, UInt128 Prefix, int Length, uint Marker);

    /// <summary>Naive longest-prefix match: scan everything.</summary>
    private static ModelEntry? ModelLookup(List<ModelEntry> model, MapCacheKey key) =>
        model.Where(e => e.Iid == key.InstanceId && e.Profile == key.Profile && e.Family == key.Family
                         && EidPrefix.Mask(key.Address, key.Family, e.Length) == e.Prefix)
             .OrderByDescending(e => e.Length).FirstOrDefault();

    private static UInt128 RandomAddress(Random rng, EidFamily family)
    {
        // A small address space (the top bits vary little) so that prefixes overlap often.
        if (family == EidFamily.Ipv4) return 0x0A000000u | (uint)rng.Next(0, 1 << 12) << 12 | (uint)rng.Next(0, 4096);
        return ((UInt128)0x20010db8u << 96) | ((UInt128)(uint)rng.Next(0, 256) << 88) | (UInt128)(ulong)rng.NextInt64();
    }

    [TestCase(1, 4000)]
    [TestCase(2, 4000)]
    [TestCase(3, 20000)]
    public void RandomOperations_AgreeWithTheReferenceModel(int seed, int operations)
    {
        var rng = new Random(seed);
        using var region = SharedRegion.CreatePrivate(new SharedRegionSizes(2048, 64, 1, 16));
        var writer = region.CreateWriter();
        var model = new List<ModelEntry>();
        uint marker = 1;
        int lookups = 0, hits = 0;
        for (int op = 0; op < operations; op++)
        {
            var family = rng.Next(3) == 0 ? EidFamily.Ipv6 : EidFamily.Ipv4;
            uint iid = (uint)rng.Next(1, 6) * 1000;
            ushort profile = (ushort)rng.Next(0, 2);
            int choice = rng.Next(10);
            if (choice < 5 && model.Count < 2000)
            {
                int max = EidPrefix.MaxLength(family);
                int length = family == EidFamily.Ipv4 ? rng.Next(8, max + 1) : rng.Next(32, max + 1);
                UInt128 prefix = EidPrefix.Mask(RandomAddress(rng, family), family, length);
                uint m = marker++;
                var result = writer.Upsert(new MapCacheEntrySpec(iid, profile, family, prefix, length, [new RlocSpec(EidFamily.Ipv4, m, 1, 100)]));
                int existing = model.FindIndex(e => e.Iid == iid && e.Profile == profile && e.Family == family && e.Prefix == prefix && e.Length == length);
                Assert.That(result, Is.EqualTo(existing >= 0 ? MapCacheWriteResult.Updated : MapCacheWriteResult.Inserted));
                if (existing >= 0) model[existing] = model[existing] with { Marker = m };
                else model.Add(new ModelEntry(iid, profile, family, prefix, length, m));
            }
            else if (choice < 7 && model.Count > 0)
            {
                var victim = model[rng.Next(model.Count)];
                Assert.That(writer.Remove(victim.Iid, victim.Profile, victim.Family, victim.Prefix, victim.Length), Is.EqualTo(MapCacheWriteResult.Removed));
                model.Remove(victim);
            }
            else
            {
                // Look up near an existing prefix half the time, anywhere otherwise.
                UInt128 address = RandomAddress(rng, family);
                if (model.Count > 0 && rng.Next(2) == 0)
                {
                    var near = model[rng.Next(model.Count)];
                    (family, iid, profile) = (near.Family, near.Iid, near.Profile);
                    address = near.Prefix | (RandomAddress(rng, family) & ~EidPrefix.Mask(UInt128.MaxValue >> (family == EidFamily.Ipv4 ? 96 : 0), family, near.Length));
                }
                var key = new MapCacheKey(iid, profile, family, address);
                var expected = ModelLookup(model, key);
                bool found = region.MapCache.TryLookup(key, out var entry);
                lookups++;
                Assert.That(found, Is.EqualTo(expected is not null), $"lookup {key} (op {op})");
                if (expected is null) continue;
                hits++;
                Assert.That((entry.PrefixLength, entry.Prefix, (uint)entry.Rlocs[0].Address), Is.EqualTo((expected.Length, expected.Prefix, expected.Marker)), $"lookup {key} (op {op})");
            }
            Assert.That(writer.Count, Is.EqualTo(model.Count));
        }
        Assert.That(hits, Is.GreaterThan(lookups / 5), "the test exercised real matches");
        Assert.That(region.Header.EntryCount, Is.EqualTo(model.Count));
    }

    /// <summary>
    /// Millions of inserts, removals and expiries with overlapping prefixes in 16 IIDs, two profiles and both
    /// families, every step followed by a lookup checked against a model: the index keeps exactly its slots minus its
    /// entries empty (no tombstones), its longest probe stays short, and only lengths that have entries are probed.
    /// </summary>
    [TestCase(11, 1_500_000)]
    [TestCase(12, 1_500_000)]
    public void Churn_KeepsLookupsRight_AndTheIndexHealthy(int seed, int operations)
    {
        var rng = new Random(seed);
        const int capacity = 4096;
        using var region = SharedRegion.CreatePrivate(new SharedRegionSizes(capacity, 64, 1, 16));
        using var writer = region.CreateWriter();
        // The model: exact keys with their marker and expiry (in minutes of a clock the test advances).
        var model = new Dictionary<(uint Iid, ushort Profile, EidFamily Family, int Length, UInt128 Prefix), (uint Marker, long Expires)>();
        var keys = new List<(uint Iid, ushort Profile, EidFamily Family, int Length, UInt128 Prefix)>();
        long minute = System.Diagnostics.Stopwatch.Frequency * 60, clock = 1_000 * minute;
        uint marker = 1;
        int hits = 0, longest = 0;
        int[] v4Lengths = [8, 12, 16, 20, 24, 28, 30, 32];
        int[] v6Lengths = [32, 48, 64, 96, 112, 128];
        for (int op = 0; op < operations; op++)
        {
            var family = rng.Next(4) == 0 ? EidFamily.Ipv6 : EidFamily.Ipv4;
            uint iid = (uint)rng.Next(1, 17);
            ushort profile = (ushort)rng.Next(0, 2);
            // Inserts lead below half fill and removals above it, so the index churns around 50% full.
            int choice = rng.Next(100), inserts = model.Count < capacity / 2 ? 60 : 39;
            if (choice < inserts)
            {
                int length = family == EidFamily.Ipv4 ? v4Lengths[rng.Next(v4Lengths.Length)] : v6Lengths[rng.Next(v6Lengths.Length)];
                var key = (iid, profile, family, length, EidPrefix.Mask(RandomAddress(rng, family), family, length));
                uint ttl = (uint)rng.Next(60, 6000);
                uint m = marker++;
                var result = writer.Upsert(new MapCacheEntrySpec(iid, profile, family, key.Item5, length, [new RlocSpec(EidFamily.Ipv4, m, 1, 100)], TtlMinutes: ttl), clock);
                Assert.That(result, Is.EqualTo(model.ContainsKey(key) ? MapCacheWriteResult.Updated : MapCacheWriteResult.Inserted), $"op {op}");
                if (!model.ContainsKey(key)) keys.Add(key);
                model[key] = (m, clock + ttl * minute);
            }
            else if (choice < 99 && keys.Count > 0)
            {
                int at = rng.Next(keys.Count);
                var key = keys[at];
                Assert.That(writer.Remove(key.Iid, key.Profile, key.Family, key.Prefix, key.Length), Is.EqualTo(MapCacheWriteResult.Removed), $"op {op}");
                model.Remove(key);
                keys[at] = keys[^1];
                keys.RemoveAt(keys.Count - 1);
            }
            else
            {
                clock += minute;
                int expired = writer.RemoveExpired(clock);
                int before = keys.Count;
                keys.RemoveAll(k => model[k].Expires <= clock);
                foreach (var k in model.Keys.Where(k => model[k].Expires <= clock).ToList()) model.Remove(k);
                Assert.That(expired, Is.EqualTo(before - keys.Count), $"expiry at op {op}");
            }

            // A lookup next to a live key half the time (so that it hits, often through a shorter prefix), anywhere otherwise.
            UInt128 address = RandomAddress(rng, family);
            if (keys.Count > 0 && rng.Next(2) == 0)
            {
                var near = keys[rng.Next(keys.Count)];
                (family, iid, profile) = (near.Family, near.Iid, near.Profile);
                int bits = EidPrefix.MaxLength(family);
                address = near.Prefix | (RandomAddress(rng, family) & ~EidPrefix.Mask(bits == 32 ? uint.MaxValue : UInt128.MaxValue, family, near.Length));
            }
            var lookup = new MapCacheKey(iid, profile, family, address);
            bool found = region.MapCache.TryLookup(lookup, out var entry);
            (uint Marker, long Expires)? expected = null;
            int expectedLength = -1;
            for (int len = EidPrefix.MaxLength(family); len >= 0 && expected is null; len--)
                if (model.TryGetValue((iid, profile, family, len, EidPrefix.Mask(address, family, len)), out var hit)) { expected = hit; expectedLength = len; }
            Assert.That(found, Is.EqualTo(expected is not null), $"lookup {lookup} at op {op}");
            if (expected is not null)
            {
                hits++;
                Assert.That((entry.PrefixLength, (uint)entry.Rlocs[0].Address), Is.EqualTo((expectedLength, expected.Value.Marker)), $"lookup {lookup} at op {op}");
            }
            if (op % 100_000 == 99_999)
            {
                Assert.That(writer.EmptyIndexSlots(), Is.EqualTo(region.Sizes.IndexSlots - model.Count), $"no slot is lost to deletions (op {op})");
                longest = Math.Max(longest, writer.LongestProbe());
                Assert.That(longest, Is.LessThanOrEqualTo(48), "probe runs stay short at a quarter of the index in use");
                foreach (var f in new[] { EidFamily.Ipv4, EidFamily.Ipv6 })
                    for (uint i = 1; i <= 16; i++)
                        Assert.That(region.MapCache.ProbedLengths(i, f), Is.EqualTo(model.Keys.Where(k => k.Iid == i && k.Family == f).Select(k => k.Length).Distinct().Count()),
                            $"IID {i} {f}: only lengths with entries are probed (op {op})");
            }
        }
        Assert.That(writer.Count, Is.EqualTo(model.Count));
        Assert.That(hits, Is.GreaterThan(operations / 5), "the lookups found real matches");
        TestContext.Out.WriteLine($"{operations:N0} operations, {hits:N0} hits, longest probe {longest}, {model.Count} entries at the end");
    }

    [Test]
    public void Overlapping_LongestPrefixWins_AndRemovalFallsBackToTheShorter()
    {
        using var region = SharedRegion.CreatePrivate(new SharedRegionSizes(64, 16, 1, 16));
        var w = region.CreateWriter();
        w.Upsert(new MapCacheEntrySpec(1000, 0, EidFamily.Ipv4, 0x0A010000, 16, [new RlocSpec(EidFamily.Ipv4, 16, 1, 1)]));
        w.Upsert(new MapCacheEntrySpec(1000, 0, EidFamily.Ipv4, 0x0A010100, 24, [new RlocSpec(EidFamily.Ipv4, 24, 1, 1)]));
        w.Upsert(new MapCacheEntrySpec(2000, 0, EidFamily.Ipv4, 0x0A010105, 32, [new RlocSpec(EidFamily.Ipv4, 32, 1, 1)]));
        Assert.That(region.MapCache.TryLookup(new MapCacheKey(1000, 0, EidFamily.Ipv4, 0x0A010105), out var e) ? (uint)e.Rlocs[0].Address : 0, Is.EqualTo(24u));
        Assert.That(region.MapCache.TryLookup(new MapCacheKey(2000, 0, EidFamily.Ipv4, 0x0A010105), out e) ? (uint)e.Rlocs[0].Address : 0, Is.EqualTo(32u), "IIDs are separate tables");
        Assert.That(region.MapCache.TryLookup(new MapCacheKey(3000, 0, EidFamily.Ipv4, 0x0A010105), out _), Is.False);
        w.Remove(1000, 0, EidFamily.Ipv4, 0x0A010100, 24);
        Assert.That(region.MapCache.TryLookup(new MapCacheKey(1000, 0, EidFamily.Ipv4, 0x0A010105), out e) ? (uint)e.Rlocs[0].Address : 0, Is.EqualTo(16u));
    }

    [Test]
    public void NegativeEntry_AndRlocState_AndExpiry()
    {
        using var region = SharedRegion.CreatePrivate(new SharedRegionSizes(64, 16, 1, 16));
        var w = region.CreateWriter();
        w.Upsert(new MapCacheEntrySpec(5, 0, EidFamily.Ipv6, (UInt128)0x20010db8u << 96, 32, [], MapReplyAction.DropPolicyDenied, TtlMinutes: 1));
        Assert.That(region.MapCache.TryLookup(new MapCacheKey(5, 0, EidFamily.Ipv6, ((UInt128)0x20010db8u << 96) | 77), out var e), Is.True);
        Assert.That((e.IsNegative, e.Action), Is.EqualTo((true, MapReplyAction.DropPolicyDenied)));
        w.Upsert(new MapCacheEntrySpec(5, 0, EidFamily.Ipv4, 0x0A000000, 8, [new RlocSpec(EidFamily.Ipv4, 1, 1, 50), new RlocSpec(EidFamily.Ipv4, 2, 1, 50)]));
        Assert.That(w.SetRlocState(5, 0, EidFamily.Ipv4, 0x0A000000, 8, 2, up: false), Is.EqualTo(MapCacheWriteResult.Updated));
        region.MapCache.TryLookup(new MapCacheKey(5, 0, EidFamily.Ipv4, 0x0A0A0A0A), out e);
        Assert.That((e.Rlocs[0].Up, e.Rlocs[1].Up), Is.EqualTo((true, false)));
        long later = MapCacheTables.Now + 2L * 60 * System.Diagnostics.Stopwatch.Frequency;
        Assert.That(w.RemoveExpired(later), Is.EqualTo(1), "the 1-minute negative entry has expired, the 1-day one has not");
        Assert.That(w.Count, Is.EqualTo(1));
        Assert.That(region.MapCache.TryLookup(new MapCacheKey(5, 0, EidFamily.Ipv6, ((UInt128)0x20010db8u << 96) | 77), out _), Is.False);
    }

    [Test]
    public void ReadUsed_WalksEveryLiveEntryOnce_InChunks()
    {
        using var region = SharedRegion.CreatePrivate(new SharedRegionSizes(1024, 64, 1, 16));
        var w = region.CreateWriter();
        for (uint i = 0; i < 600; i++) w.Upsert(new MapCacheEntrySpec(1, 0, EidFamily.Ipv4, 0x0A000000u | i << 8, 24, []));
        for (uint i = 0; i < 600; i += 3) w.Remove(1, 0, EidFamily.Ipv4, 0x0A000000u | i << 8, 24); // holes
        var seen = new List<UInt128>();
        Span<MapCacheEntry> chunk = new MapCacheEntry[7];
        int calls = 0;
        for (int next = 0, n; (n = region.MapCache.ReadUsed(ref next, chunk)) > 0; calls++)
            foreach (var e in chunk[..n]) seen.Add(e.Prefix);
        Assert.That(seen, Has.Count.EqualTo(400));
        Assert.That(seen.Distinct().Count(), Is.EqualTo(400));
        Assert.That(calls, Is.EqualTo((400 + 6) / 7), "full chunks until the last");
        Assert.That(region.MapCache.Snapshot().Select(e => e.Prefix), Is.EquivalentTo(seen));
    }

    [Test]
    public void Restore_CopiesEveryEntryWithItsExpiryStatesAndSpecialCounts()
    {
        using var old = SharedRegion.CreatePrivate(new SharedRegionSizes(64, 16, 1, 16));
        using var fresh = SharedRegion.CreatePrivate(new SharedRegionSizes(128, 16, 1, 16));
        var w = old.CreateWriter();
        w.Upsert(new MapCacheEntrySpec(7, 0, EidFamily.Ipv4, 0x0A000000, 8, [new RlocSpec(EidFamily.Ipv4, 1, 1, 50), new RlocSpec(EidFamily.Ipv4, 2, 2, 50)], TtlMinutes: 3, MapVersion: 9));
        w.SetRlocState(7, 0, EidFamily.Ipv4, 0x0A000000, 8, 1, up: false);
        w.Upsert(new MapCacheEntrySpec(7, 0, EidFamily.Ipv6, (UInt128)0x20010db8u << 96, 32, [], MapReplyAction.DropPolicyDenied, TtlMinutes: 1));
        w.Upsert(MapCacheEntrySpec.SourceProfile(7, EidFamily.Ipv4, 0x0A010000, 16, profile: 3));
        w.Upsert(MapCacheEntrySpec.MovedAway(7, EidFamily.Ipv4, 0x0A020005, 32, ttlMinutes: 2));

        var copier = fresh.CreateWriter();
        foreach (var e in old.MapCache.Snapshot()) Assert.That(copier.Restore(e), Is.EqualTo(MapCacheWriteResult.Inserted));

        static string Key(MapCacheEntry e) => $"{e.InstanceId}/{e.Profile}/{e.Family}/{e.Prefix:x}/{e.PrefixLength}";
        var before = old.MapCache.Snapshot().ToDictionary(Key);
        var after = fresh.MapCache.Snapshot().ToDictionary(Key);
        Assert.That(after.Keys, Is.EquivalentTo(before.Keys));
        Assert.That(after.Values.GroupBy(e => e.Kind).ToDictionary(g => g.Key, g => g.Count()),
            Is.EquivalentTo(new Dictionary<MapCacheKind, int> { [MapCacheKind.Destination] = 2, [MapCacheKind.SourceProfile] = 1, [MapCacheKind.MovedAway] = 1 }));
        foreach (var (key, b) in before)
        {
            var a = after[key];
            Assert.That((a.ExpiresAt, a.Action, a.MapVersion, a.AssignedProfile, a.RlocCount), Is.EqualTo((b.ExpiresAt, b.Action, b.MapVersion, b.AssignedProfile, b.RlocCount)), key);
            for (int i = 0; i < b.RlocCount; i++)
                Assert.That((a.Rlocs[i].Address, a.Rlocs[i].Priority, a.Rlocs[i].Weight, a.Rlocs[i].Up), Is.EqualTo((b.Rlocs[i].Address, b.Rlocs[i].Priority, b.Rlocs[i].Weight, b.Rlocs[i].Up)), key);
        }
        Assert.That(fresh.MapCache.TryLookupFromSource(7, EidFamily.Ipv4, 0x0A010101, 0x0A0A0A0A, out ushort profile, out _), Is.False,
            "profile 3 has no entry for the destination: the source-profile entry was found and steered the lookup");
        Assert.That(profile, Is.EqualTo(3));
        Assert.That(fresh.MapCache.AnyMovedAway && fresh.MapCache.HasMovedAway(7, EidFamily.Ipv4, 0x0A020005), Is.True, "the moved-away entry and the region's gate");
    }

    [Test]
    public void Full_IsReportedNotThrown_AndInvalidSpecsAreRefused()
    {
        using var region = SharedRegion.CreatePrivate(new SharedRegionSizes(16, 16, 1, 16));
        var w = region.CreateWriter();
        for (uint i = 0; i < 16; i++) Assert.That(w.Upsert(new MapCacheEntrySpec(1, 0, EidFamily.Ipv4, i << 8, 24, [])), Is.EqualTo(MapCacheWriteResult.Inserted));
        Assert.That(w.Upsert(new MapCacheEntrySpec(1, 0, EidFamily.Ipv4, 99u << 8, 24, [])), Is.EqualTo(MapCacheWriteResult.Full));
        Assert.Throws<ArgumentOutOfRangeException>(() => w.Upsert(new MapCacheEntrySpec(1, 0, EidFamily.Ipv4, 0, 33, [])));
        Assert.Throws<ArgumentOutOfRangeException>(() => w.Upsert(new MapCacheEntrySpec(1, 0, EidFamily.Ipv4, 0, 24, Enumerable.Repeat(new RlocSpec(EidFamily.Ipv4, 1, 1, 1), 9).ToArray())));
    }

    [Test]
    public void RestartedWriter_FindsTheEntriesAndFreeSlots()
    {
        using var region = SharedRegion.CreatePrivate(new SharedRegionSizes(32, 16, 1, 16));
        var first = region.CreateWriter();
        for (uint i = 0; i < 10; i++) first.Upsert(new MapCacheEntrySpec(1, 0, EidFamily.Ipv4, i << 8, 24, []));
        first.Remove(1, 0, EidFamily.Ipv4, 3u << 8, 24);
        var refused = Assert.Throws<SharedRegionException>(() => region.CreateWriter());
        Assert.That(refused!.Message, Does.Contain("already has a writer"), "one writer per region while the first lives");
        first.Dispose();
        using var second = region.CreateWriter();
        Assert.That(second.Count, Is.EqualTo(9));
        Assert.That(second.Upsert(new MapCacheEntrySpec(1, 0, EidFamily.Ipv4, 4u << 8, 24, [])), Is.EqualTo(MapCacheWriteResult.Updated));
        for (uint i = 10; i < 33; i++) second.Upsert(new MapCacheEntrySpec(1, 0, EidFamily.Ipv4, i << 8, 24, []));
        Assert.That(second.Count, Is.EqualTo(32));
        Assert.That(region.MapCache.Snapshot(), Has.Count.EqualTo(32));
    }
}
