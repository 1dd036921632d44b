using System.Buffers.Binary;
using FastXtr.Packets;
using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;

namespace FastXtr.Dataplane.Decap;

/// <summary>Where a decapsulated packet goes: the TUN of its Instance ID, or nowhere (counted).</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1051", Justification = "A per-packet verdict record the ETR stage fills and the worker reads; it lives on the stack")]
public struct EtrDecision
{
    public bool Deliver;
    /// <summary>Index of the Instance ID in the data plane's instance list (which TUN to write).</summary>
    public int Instance;
    public int InnerOffset;
    public int InnerLength;
    /// <summary>The packet's Instance ID (0 without the I bit).</summary>
    public uint InstanceId;
}

/// <summary>
/// The ETR's per-packet work (RFC 9300 §5.3): validate the LISP header, map its Instance ID to that group's TUN
/// (an unknown IID is a counted drop: groups stay isolated), optionally check that the outer source is an RLOC of
/// the inner source EID (the decapsulation filter), bound the inner TTL by the outer TTL, and carry congestion
/// marks inward (RFC 6040 normal mode). Works on the UDP payload; the kernel has checked the outer IP and UDP.
/// </summary>
public sealed class Decapsulator
{
    private readonly uint[] _instanceIds;
    private readonly WorkerCounters _counters;
    private readonly MapCacheTables? _cache;
    private readonly bool _decapFilter;
    private readonly MissRing? _solicits;
    private readonly bool _checkMovedAway;
    private readonly MissSuppressor _suppressor = new(1024);
    private readonly bool _relay;

    /// <param name="instanceIds">The Instance IDs this data plane serves, in TUN order.</param>
    /// <param name="cache">The map-cache: outer sources are checked against it (<paramref name="decapFilter"/>), and
    /// its moved-away entries make packets for a departed EID reported to <paramref name="solicits"/>.</param>
    /// <param name="solicits">Where solicit reports go (the worker's miss ring), about one per moved EID per second; null: none.</param>
    /// <param name="relay">fastxtr rtr: every Instance ID is taken (the packet is sent on in its own), the
    /// decapsulation filter is on, and an inner source it finds no mapping for is posted as a miss (so the RTR
    /// resolves it; the packet is dropped meanwhile): an RTR forwards only for sources whose registered locator sent them.</param>
    public Decapsulator(IReadOnlyList<uint> instanceIds, WorkerCounters counters, MapCacheTables? cache = null, bool decapFilter = false, MissRing? solicits = null, bool relay = false)
    {
        if (relay && (cache is null || solicits is null)) throw new ArgumentException("an RTR needs the map-cache and a miss ring", nameof(cache));
        decapFilter |= relay;
        _relay = relay;
        if (decapFilter && cache is null) throw new ArgumentException("the decapsulation filter needs the map-cache", nameof(cache));
        _instanceIds = instanceIds.ToArray();
        _counters = counters;
        _cache = cache;
        _decapFilter = decapFilter;
        _solicits = cache is null ? null : solicits;
        _checkMovedAway = _solicits is not null;
    }

    /// <summary>A packet that came over an IPv4 underlay from <paramref name="outerSource"/> (host order).</summary>
    public EtrDecision Process(Span<byte> payload, uint outerSource, int outerTtl, int outerTos) =>
        Process(payload, MappedIpv4.From(outerSource), outerTtl, outerTos);

    /// <param name="outerSource">The outer source: an IPv6 address, or an IPv4 one in its mapped form (<see cref="MappedIpv4"/>).</param>
    /// <param name="outerTtl">The outer TTL or hop limit, -1 when unknown.</param>
    /// <param name="outerTos">The outer TOS or traffic class, -1 when unknown.</param>
    // Compiled on its own, never inlined into the caller: inlined (through the IPv4 overload) it exhausted the caller's
    // inlining budget and left BinaryPrimitives calls out of line. EncapDecapBenchmarks, one sitting: 17.6 ns before the
    // IPv6 outer source, 26.3 ns with it inlined, 13.5 ns with it not.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    public EtrDecision Process(Span<byte> payload, in UInt128 outerSource, int outerTtl, int outerTos)
    {
        var d = new EtrDecision();
        if (!LispDataHeader.TryRead(payload, out var lisp, out var error))
        {
            _counters.Add(error == DataHeaderError.Truncated ? Counter.DropTruncated : Counter.DropBadOuterHeader);
            return d;
        }
        // Without the I bit the packet belongs to Instance ID 0 (RFC 9300 §5.3).
        uint iid = lisp.InstanceIdPresent ? lisp.InstanceId : 0;
        int instance = _relay ? 0 : Array.IndexOf(_instanceIds, iid);
        if (instance < 0) { _counters.Add(Counter.DropUnknownInstanceId); return d; }

        Span<byte> inner = payload[LispDataHeader.Length..];
        if (inner.IsEmpty) { _counters.Add(Counter.DropTruncated); return d; }
        int version = inner[0] >> 4;
        if (version == 4)
        {
            if (inner.Length < Ipv4Header.MinLength || BinaryPrimitives.ReadUInt16BigEndian(inner[2..]) > inner.Length)
            { _counters.Add(Counter.DropTruncated); return d; }
            if (_decapFilter && !SourceAllowed(iid, EidFamily.Ipv4, BinaryPrimitives.ReadUInt32BigEndian(inner[12..]), BinaryPrimitives.ReadUInt32BigEndian(inner[16..]), outerSource))
            { _counters.Add(Counter.DropDecapFilter); return d; }
            if (!AdjustIpv4(inner, outerTtl, outerTos)) { _counters.Add(Counter.DropTtlExpired); return d; }
            if (_checkMovedAway && _cache!.AnyMovedAway && _cache.HasMovedAway(iid, EidFamily.Ipv4, BinaryPrimitives.ReadUInt32BigEndian(inner[16..])))
                Solicit(iid, EidFamily.Ipv4, BinaryPrimitives.ReadUInt32BigEndian(inner[12..]), BinaryPrimitives.ReadUInt32BigEndian(inner[16..]), outerSource);
        }
        else if (version == 6)
        {
            if (inner.Length < Ipv6Header.Length) { _counters.Add(Counter.DropTruncated); return d; }
            if (_decapFilter && !SourceAllowed(iid, EidFamily.Ipv6, BinaryPrimitives.ReadUInt128BigEndian(inner[8..]), BinaryPrimitives.ReadUInt128BigEndian(inner[24..]), outerSource))
            { _counters.Add(Counter.DropDecapFilter); return d; }
            if (!AdjustIpv6(inner, outerTtl, outerTos)) { _counters.Add(Counter.DropTtlExpired); return d; }
            if (_checkMovedAway && _cache!.AnyMovedAway && _cache.HasMovedAway(iid, EidFamily.Ipv6, BinaryPrimitives.ReadUInt128BigEndian(inner[24..])))
                Solicit(iid, EidFamily.Ipv6, BinaryPrimitives.ReadUInt128BigEndian(inner[8..]), BinaryPrimitives.ReadUInt128BigEndian(inner[24..]), outerSource);
        }
        else
        {
            _counters.Add(Counter.DropNotIp);
            return d;
        }
        d.Deliver = true;
        d.Instance = instance;
        d.InstanceId = iid;
        d.InnerOffset = LispDataHeader.Length;
        d.InnerLength = version == 4 ? BinaryPrimitives.ReadUInt16BigEndian(inner[2..]) : Math.Min(inner.Length, Ipv6Header.Length + BinaryPrimitives.ReadUInt16BigEndian(inner[4..]));
        return d;
    }

    /// <summary>
    /// A packet for an EID that moved away: still delivered (the host may forward it on), and reported so the agent
    /// sends the ITR an SMR.
    /// </summary>
    private void Solicit(uint iid, EidFamily family, UInt128 source, UInt128 destination, in UInt128 outerSource)
    {
        _counters.Add(Counter.MovedEidPackets);
        var record = new MissRecord
        {
            Kind = MissKind.MovedAwayHit, InstanceId = iid, Family = family, SourceEid = source, DestinationEid = destination,
            OuterSource = outerSource, Timestamp = MapCacheTables.Now,
        };
        if (!_suppressor.ShouldPost(record)) return;
        if (_solicits!.Value.TryPost(record)) _counters.Add(Counter.SolicitsPosted);
        else _counters.Add(Counter.MissRingFull);
    }

    private bool SourceAllowed(uint iid, EidFamily family, UInt128 sourceEid, UInt128 destinationEid, in UInt128 outerSource)
    {
        if (!_cache!.TryLookup(new MapCacheKey(iid, 0, family, sourceEid), out var entry))
        {
            if (_relay) ResolveSource(iid, family, sourceEid, destinationEid);
            return false;
        }
        bool mapped = MappedIpv4.IsMapped(outerSource);
        for (int i = 0; i < entry.RlocCount; i++)
        {
            ref readonly var r = ref entry.Rlocs[i];
            if (mapped ? r.Family == EidFamily.Ipv4 && (uint)r.Address == MappedIpv4.Ipv4Of(outerSource)
                       : r.Family == EidFamily.Ipv6 && r.Address == outerSource) return true;
        }
        return false;
    }

    /// <summary>An RTR that does not know an inner source yet asks for its mapping (about once a second per source).</summary>
    private void ResolveSource(uint iid, EidFamily family, UInt128 sourceEid, UInt128 destinationEid)
    {
        var record = new MissRecord
        {
            Kind = MissKind.Miss, InstanceId = iid, Family = family, SourceEid = destinationEid, DestinationEid = sourceEid, Timestamp = MapCacheTables.Now,
        };
        if (!_suppressor.ShouldPost(record)) return;
        _counters.Add(Counter.RtrSourcesResolved);
        if (_solicits!.Value.TryPost(record)) _counters.Add(Counter.MissesPosted);
        else _counters.Add(Counter.MissRingFull);
    }

    /// <summary>
    /// Inner TTL = min(inner, outer) (RFC 9300 §5.3) and CE from the outer ECN field (RFC 6040 §4.2), with the header
    /// checksum updated incrementally (RFC 1624). False when the packet must be dropped.
    /// </summary>
    private static bool AdjustIpv4(Span<byte> ip, int outerTtl, int outerTos)
    {
        ushort oldWord4 = BinaryPrimitives.ReadUInt16BigEndian(ip[8..]);
        ushort oldWord0 = BinaryPrimitives.ReadUInt16BigEndian(ip);
        if (outerTtl >= 0 && outerTtl < ip[8]) ip[8] = (byte)outerTtl;
        if (ip[8] == 0) return false;
        if (outerTos >= 0 && (outerTos & 3) == 3)
        {
            if ((ip[1] & 3) == 0) return false; // CE outside, Not-ECT inside: RFC 6040 says drop
            ip[1] |= 3;
        }
        ushort newWord4 = BinaryPrimitives.ReadUInt16BigEndian(ip[8..]);
        ushort newWord0 = BinaryPrimitives.ReadUInt16BigEndian(ip);
        if (newWord4 != oldWord4 || newWord0 != oldWord0)
        {
            uint sum = (uint)(ushort)~BinaryPrimitives.ReadUInt16BigEndian(ip[10..]);
            sum += (uint)(ushort)~oldWord4 + newWord4 + (uint)(ushort)~oldWord0 + newWord0;
            while ((sum >> 16) != 0) sum = (sum & 0xFFFF) + (sum >> 16);
            BinaryPrimitives.WriteUInt16BigEndian(ip[10..], (ushort)~sum);
        }
        return true;
    }

    private static bool AdjustIpv6(Span<byte> ip, int outerTtl, int outerTos)
    {
        if (outerTtl >= 0 && outerTtl < ip[7]) ip[7] = (byte)outerTtl;
        if (ip[7] == 0) return false;
        if (outerTos >= 0 && (outerTos & 3) == 3)
        {
            int ecn = (ip[1] >> 4) & 3;
            if (ecn == 0) return false;
            ip[1] |= 0x30;
        }
        return true;
    }
}
