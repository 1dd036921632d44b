using BenchmarkDotNet.Attributes;
using FastXtr.Dataplane.Buffers;
using FastXtr.Packets;
using FastXtr.Dataplane.Decap;
using FastXtr.Dataplane.Encap;
using FastXtr.Packets;
using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;

namespace FastXtr.Perf.Micro;

/// <summary>
/// Map-cache longest-prefix match at 1M entries over 1,000 IIDs (IPv4 /32 host EIDs plus a /16 per IID, so a
/// miss on /32 falls back), for random destinations (cache-cold: every lookup touches new lines) and a hot set of
/// 64; a batch of 1024 lookups per operation.
/// </summary>
[MemoryDiagnoser]
public class MapCacheLookupBenchmarks
{
    private const int Entries = 1_000_000;
    private const int Iids = 1000;
    private const int Batch = 1024;
    private SharedRegion _region = null!;
    private MapCacheKey[] _random = [];
    private MapCacheKey[] _hot = [];
    private MapCacheKey[] _cold = [];

    [GlobalSetup]
    public void Setup()
    {
        _region = SharedRegion.CreatePrivate(new SharedRegionSizes(Entries + Iids + 16, 4096, 1, 16));
        var w = _region.CreateWriter();
        var rng = new Random(42);
        var keys = new List<MapCacheKey>(Entries);
        RlocSpec[] rlocs = [new RlocSpec(EidFamily.Ipv4, 0xC0000202, 1, 50), new RlocSpec(EidFamily.Ipv4, 0xC0000203, 1, 50)];
        for (uint iid = 1; iid <= Iids; iid++) w.Upsert(new MapCacheEntrySpec(iid, 0, EidFamily.Ipv4, 0x0A000000, 16, rlocs));
        while (keys.Count < Entries - Iids)
        {
            uint iid = (uint)rng.Next(1, Iids + 1);
            uint eid = 0x0A000000u | (uint)rng.Next(0, 1 << 24);
            if (w.Upsert(new MapCacheEntrySpec(iid, 0, EidFamily.Ipv4, eid, 32, rlocs)) == MapCacheWriteResult.Inserted)
                keys.Add(new MapCacheKey(iid, 0, EidFamily.Ipv4, eid));
        }
        _random = Enumerable.Range(0, Batch).Select(_ => keys[rng.Next(keys.Count)]).ToArray();
        _hot = Enumerable.Range(0, Batch).Select(i => keys[i % 64]).ToArray();
        _cold = Enumerable.Range(0, ColdKeys).Select(_ => keys[rng.Next(keys.Count)]).ToArray();
    }

    [GlobalCleanup]
    public void Cleanup() => _region.Dispose();

    [Benchmark(OperationsPerInvoke = Batch, Description = "LPM lookup, 1M entries, random")]
    public int LookupRandom() => Lookup(_random);

    [Benchmark(OperationsPerInvoke = Batch, Description = "LPM lookup, 1M entries, hot set of 64")]
    public int LookupHot() => Lookup(_hot);

    // Cold: every one of 1M random keys once per invocation, so neither the index nor the entries stay in cache
    // (the 1,024-key "random" set above ends up in the CPU caches after its first pass).
    private const int ColdKeys = 1 << 20;

    [Benchmark(OperationsPerInvoke = ColdKeys, Description = "LPM lookup, 1M entries, 1M random keys (cold)")]
    public int LookupCold() => Lookup(_cold);

    private int Lookup(MapCacheKey[] keys) => LookupAll(_region.MapCache, keys);

    /// <summary>Looks every key up; the sum of the hits' locator counts keeps the JIT from dropping the work.</summary>
    internal static int LookupAll(MapCacheTables cache, MapCacheKey[] keys)
    {
        int hits = 0;
        for (int i = 0; i < keys.Length; i++)
            if (cache.TryLookup(keys[i], out var e)) hits += e.RlocCount;
        return hits;
    }
}

/// <summary>
/// The map-cache before and after churn: 1M host entries over 1,000 IIDs (plus a /16 per IID), then
/// optionally 10M insert/remove pairs (a new random /32 in, a random live one out, so the table stays at 1M), as a
/// long-running ITR sees from negative entries, expiry and moves. Lookups that hit (1,024 live keys) and that miss
/// (absent destinations, probing /32 and /16) should cost the same before and after.
/// </summary>
[MemoryDiagnoser]
public class MapCacheChurnBenchmarks
{
    private const int Entries = 1_000_000;
    private const int Iids = 1000;
    private const int Batch = 1024;
    private const int Pairs = 10_000_000;
    private SharedRegion _region = null!;
    private MapCacheWriter _writer = null!;
    private MapCacheKey[] _hits = [];
    private MapCacheKey[] _misses = [];

    [Params(false, true)]
    public bool Churned { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _region = SharedRegion.CreatePrivate(new SharedRegionSizes(Entries + Iids + 16, 4096, 1, 16));
        _writer = _region.CreateWriter();
        var rng = new Random(42);
        var live = new List<MapCacheKey>(Entries);
        RlocSpec[] rlocs = [new RlocSpec(EidFamily.Ipv4, 0xC0000202, 1, 50), new RlocSpec(EidFamily.Ipv4, 0xC0000203, 1, 50)];
        for (uint iid = 1; iid <= Iids; iid++) _writer.Upsert(new MapCacheEntrySpec(iid, 0, EidFamily.Ipv4, 0x0A000000, 16, rlocs));
        MapCacheKey NewKey() => new((uint)rng.Next(1, Iids + 1), 0, EidFamily.Ipv4, 0x0A000000u | (uint)rng.Next(1 << 16, 1 << 24));
        while (live.Count < Entries - Iids)
        {
            var k = NewKey();
            if (_writer.Upsert(new MapCacheEntrySpec(k.InstanceId, 0, EidFamily.Ipv4, k.Address, 32, rlocs)) == MapCacheWriteResult.Inserted) live.Add(k);
        }
        if (Churned)
        {
            for (int pair = 0; pair < Pairs; pair++)
            {
                int victim = rng.Next(live.Count);
                var gone = live[victim];
                _writer.Remove(gone.InstanceId, 0, EidFamily.Ipv4, gone.Address, 32);
                MapCacheKey k;
                do k = NewKey(); while (_writer.Upsert(new MapCacheEntrySpec(k.InstanceId, 0, EidFamily.Ipv4, k.Address, 32, rlocs)) != MapCacheWriteResult.Inserted);
                live[victim] = k;
            }
            Console.WriteLine($"// after {Pairs:N0} insert/remove pairs: {_writer.Count:N0} entries, longest probe {_writer.LongestProbe()}, {_writer.EmptyIndexSlots():N0} empty index slots");
        }
        _hits = Enumerable.Range(0, Batch).Select(_ => live[rng.Next(live.Count)]).ToArray();
        // 11.0.0.0/8 is in no entry: each miss probes /32 and /16 of its IID.
        _misses = Enumerable.Range(0, Batch).Select(_ => new MapCacheKey((uint)rng.Next(1, Iids + 1), 0, EidFamily.Ipv4, 0x0B000000u | (uint)rng.Next(0, 1 << 24))).ToArray();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _writer.Dispose();
        _region.Dispose();
    }

    [Benchmark(OperationsPerInvoke = Batch, Description = "lookup hit, 1M entries")]
    public int Hit() => Lookup(_hits);

    [Benchmark(OperationsPerInvoke = Batch, Description = "lookup miss, 1M entries")]
    public int Miss() => Lookup(_misses);

    private int Lookup(MapCacheKey[] keys) => MapCacheLookupBenchmarks.LookupAll(_region.MapCache, keys);
}

/// <summary>The Internet checksum, scalar against the Vector256 twin, at header, packet and super-packet sizes.</summary>
[MemoryDiagnoser]
public class ChecksumBenchmarks
{
    private byte[] _data = [];

    [Params(20, 1500, 65536)]
    public int Bytes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[Bytes];
        new Random(1).NextBytes(_data);
    }

    [Benchmark(Baseline = true, Description = "scalar")]
    public ushort Scalar() => InternetChecksum.Finish(InternetChecksum.Sum(_data));

    [Benchmark(Description = "SIMD")]
    public ushort Simd() => InternetChecksum.Finish(InternetChecksumSimd.Sum(_data));
}

/// <summary>One packet through the ITR stage (lookup, RLOC choice, outer header in the headroom) and the ETR stage.</summary>
[MemoryDiagnoser]
public unsafe class EncapDecapBenchmarks
{
    private SharedRegion _region = null!;
    private PacketBuffers _buffers = null!;
    private Encapsulator _encap = null!;
    private Decapsulator _decap = null!;
    private Decapsulator _plainDecap = null!;
    private byte[] _lispPayload = [];
    private int _length;

    [GlobalSetup]
    public void Setup()
    {
        _region = SharedRegion.CreatePrivate(new SharedRegionSizes(1024, 16, 1, 16));
        _region.CreateWriter().Upsert(new MapCacheEntrySpec(1000, 0, EidFamily.Ipv4, 0x0A020000, 16, [new RlocSpec(EidFamily.Ipv4, 0xC0000202, 1, 100)]));
        _buffers = new PacketBuffers(2);
        _length = 64;
        var p = new Span<byte>(_buffers.Data(0), _length);
        new Ipv4Header { TotalLength = (ushort)_length, TimeToLive = 64, Protocol = 17, SourceAddress = 0x0A010001, DestinationAddress = 0x0A020005 }.Write(p);
        _encap = new Encapsulator(_region.MapCache, 0xC0000201, 1500, _region.Counters(0), _region.MissRing(0), new MissSuppressor(), 7);
        // As a worker builds it: the moved-away check on, no decapsulation filter.
        _decap = new Decapsulator([1000u], _region.Counters(0), _region.MapCache, solicits: _region.MissRing(0));
        _plainDecap = new Decapsulator([1000u], _region.Counters(0));
        _lispPayload = new byte[8 + _length];
        LispDataHeader.WithNonce(1, 1000).Write(_lispPayload);
        p.CopyTo(_lispPayload.AsSpan(8));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _buffers.Dispose();
        _region.Dispose();
    }

    [Benchmark(Description = "ITR: encapsulate one 64-byte packet")]
    public int Encapsulate() => _encap.Process(_buffers.Buffer(0), _length, 1000, 0, 1, _buffers.Data(1), out _).OuterLength;

    [Benchmark(Description = "ETR: decapsulate one 64-byte packet")]
    public int Decapsulate() => _decap.Process(_lispPayload, 0xC0000202, 64, 0).InnerLength;

    [Benchmark(Description = "ETR: decapsulate, no map-cache (no moved-away check)")]
    public int DecapsulatePlain() => _plainDecap.Process(_lispPayload, 0xC0000202, 64, 0).InnerLength;
}
