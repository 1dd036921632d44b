using System.Buffers.Binary;
using FastXtr.Dataplane.Buffers;
using FastXtr.Packets;
using FastXtr.Packets;
using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;

namespace FastXtr.Dataplane.Encap;

public enum ItrVerdict : byte
{
    /// <summary>Send the outer packet at OuterStart/OuterLength to Destination.</summary>
    Send,
    /// <summary>The outer packet exceeds the MTU and may be fragmented: send it in fragments.</summary>
    SendFragmented,
    /// <summary>
    /// The inner IPv4 packet (DF clear) does not fit an IPv6 outer header within the MTU: fragment the inner packet
    /// (<see cref="Encapsulator.FragmentInner"/>) and send each fragment through the ITR.
    /// </summary>
    FragmentInner,
    /// <summary>Answer the source with the ICMP message written into the reply buffer (RFC 9300 §7).</summary>
    ReplyTooBig,
    /// <summary>Dropped; the reason has been counted.</summary>
    Drop,
}

/// <summary>What the ITR decided for one packet.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1051", Justification = "A per-packet verdict record the ITR stage fills and the worker reads; it lives on the stack")]
public struct ItrDecision
{
    public ItrVerdict Verdict;
    /// <summary>The outer header is IPv6 (<see cref="Destination6"/>), not IPv4 (<see cref="Destination"/>).</summary>
    public bool Ipv6;
    public int OuterStart;
    public int OuterLength;
    public uint Destination;
    public UInt128 Destination6;
    /// <summary>The outer TTL (hop limit), TOS (traffic class) and UDP source and destination ports written.</summary>
    public byte Ttl, Tos;
    public ushort SourcePort, DestinationPort;
}

/// <summary>The underlay address families an xTR has an RLOC of: the locators it can send to.</summary>
[Flags]
public enum RlocFamilies : byte
{
    None = 0,
    Ipv4 = 1,
    Ipv6 = 2,
}

/// <summary>
/// The ITR's per-packet work (RFC 9300 §5, §7): parse the inner IPv4/IPv6 header, look the destination up in the
/// map-cache for the packet's Instance ID, choose an RLOC among those of a family this xTR has an RLOC of, and
/// prepend IPv4 + UDP + LISP (36 bytes) or IPv6 + UDP + LISP (56 bytes) in the buffer's headroom. The IPv6 outer
/// header carries the flow hash in its flow label (RFC 6438) and a UDP checksum (RFC 9300 §5.3: required for IPv6
/// unless both ends are configured for zero checksums, RFC 6935/6936: <c>zeroChecksum6</c>).
/// Misses are posted to the miss ring (suppressed to about one per destination per second). Every drop is counted
/// under its reason. No allocation, lock or exception per packet.
/// </summary>
public sealed unsafe class Encapsulator
{
    public const int OuterBytes = LispDataPacket.Ipv4OverheadBytes;
    public const int OuterBytes6 = LispDataPacket.Ipv6OverheadBytes;
    private readonly MapCacheTables _cache;
    private readonly uint _sourceRloc;
    private readonly UInt128 _sourceRloc6;
    private readonly RlocFamilies _families;
    private readonly bool _zeroChecksum6;
    private readonly int _outerMtu;
    private readonly WorkerCounters _counters;
    private readonly MissRing _misses;
    private readonly MissSuppressor _suppressor;
    private ulong _random;
    private ushort _ipId;
    private readonly OuterHeaders4 _outer4;

    /// <summary>The port this xTR takes LISP data on: the source port of what it sends to a NAT-traversed locator.</summary>
    public ushort DataPort { get; init; } = LispDataHeader.DataPort;

    /// <summary>
    /// The ports the outer source port is hashed into for every other locator (RFC 9300 §5.3: one flow, one port).
    /// The dynamic range by default; a worker with segmenting sockets narrows it to their ports, so that a flow's
    /// packets sent one by one and those sent in UDP GSO bursts leave from the same port and keep to one path.
    /// </summary>
    public (ushort First, int Count) FlowPorts { get; set; } = FlowHash.DynamicPorts;

    /// <summary>An ITR with an IPv4 RLOC only.</summary>
    public Encapsulator(MapCacheTables cache, uint sourceRloc, int outerMtu, WorkerCounters counters, MissRing misses, MissSuppressor suppressor, ulong seed)
        : this(cache, sourceRloc, 0, false, outerMtu, counters, misses, suppressor, seed)
    {
    }

    /// <param name="sourceRloc">This xTR's IPv4 RLOC, 0 when it has none (no IPv4 locator is chosen then).</param>
    /// <param name="sourceRloc6">This xTR's IPv6 RLOC (host-order number), 0 when it has none.</param>
    /// <param name="zeroChecksum6">Send IPv6 outer packets with UDP checksum 0 (RFC 6935; the ETRs must accept it).</param>
    public Encapsulator(MapCacheTables cache, uint sourceRloc, UInt128 sourceRloc6, bool zeroChecksum6, int outerMtu, WorkerCounters counters, MissRing misses, MissSuppressor suppressor, ulong seed)
    {
        if (outerMtu < 576 || outerMtu > PacketBuffers.MaxPacketBytes) throw new ArgumentOutOfRangeException(nameof(outerMtu), outerMtu, $"outer MTU must be 576 .. {PacketBuffers.MaxPacketBytes}");
        if (sourceRloc6 != 0 && outerMtu < 1280) throw new ArgumentOutOfRangeException(nameof(outerMtu), outerMtu, "an IPv6 underlay's MTU is at least 1280 (RFC 8200 §5)");
        _cache = cache;
        _sourceRloc = sourceRloc;
        _sourceRloc6 = sourceRloc6;
        _zeroChecksum6 = zeroChecksum6;
        _families = (sourceRloc != 0 ? RlocFamilies.Ipv4 : 0) | (sourceRloc6 != 0 ? RlocFamilies.Ipv6 : 0);
        _outerMtu = outerMtu;
        _counters = counters;
        _misses = misses;
        _suppressor = suppressor;
        _random = seed | 1;
        _outer4 = new OuterHeaders4(sourceRloc);
    }

    /// <summary>The largest inner packet that fits the outer MTU once encapsulated in IPv4.</summary>
    public int InnerMtu => _outerMtu - OuterBytes;

    /// <summary>The largest outer header this ITR may write: 56 bytes with an IPv6 RLOC, else 36.</summary>
    public int MaxOuterBytes => (_families & RlocFamilies.Ipv6) != 0 ? OuterBytes6 : OuterBytes;

    private uint NextNonce()
    {
        // xorshift64*: a fresh 24-bit nonce per packet without a system call.
        _random ^= _random >> 12;
        _random ^= _random << 25;
        _random ^= _random >> 27;
        return (uint)((_random * 0x2545F4914F6CDD1DUL) >> 40);
    }

    /// <summary>
    /// Encapsulates the inner packet at <c>buffer + HeadroomBytes</c> (<paramref name="length"/> bytes) read from the
    /// TUN of Instance ID <paramref name="instanceId"/>. The outer packet is built in place in the headroom.
    /// </summary>
    public ItrDecision Process(byte* buffer, int length, uint instanceId, ushort profile, long now, byte* reply, out int replyLength)
    {
        replyLength = 0;
        var inner = new Span<byte>(buffer + PacketBuffers.HeadroomBytes, length);
        var decision = new ItrDecision { Verdict = ItrVerdict.Drop };
        if (length < 1) { _counters.Add(Counter.DropTruncated); return decision; }
        int version = inner[0] >> 4;
        EidFamily family;
        UInt128 destination, source;
        bool dontFragment;
        byte ttl, tos;
        if (version == 4)
        {
            if (length < Ipv4Header.MinLength || (inner[0] & 0xF) < 5 || BinaryPrimitives.ReadUInt16BigEndian(inner[2..]) > length)
            { _counters.Add(Counter.DropTruncated); return decision; }
            family = EidFamily.Ipv4;
            source = BinaryPrimitives.ReadUInt32BigEndian(inner[12..]);
            destination = BinaryPrimitives.ReadUInt32BigEndian(inner[16..]);
            dontFragment = (inner[6] & 0x40) != 0;
            ttl = inner[8];
            tos = inner[1];
        }
        else if (version == 6)
        {
            if (length < Ipv6Header.Length) { _counters.Add(Counter.DropTruncated); return decision; }
            family = EidFamily.Ipv6;
            source = BinaryPrimitives.ReadUInt128BigEndian(inner[8..]);
            destination = BinaryPrimitives.ReadUInt128BigEndian(inner[24..]);
            dontFragment = true; // IPv6 routers never fragment (RFC 8200 §5)
            ttl = inner[7];
            tos = (byte)(BinaryPrimitives.ReadUInt16BigEndian(inner) >> 4);
        }
        else
        {
            _counters.Add(Counter.DropNotIp);
            return decision;
        }

        MapCacheEntry entry;
        bool hit = profile == 0
            ? _cache.TryLookupFromSource(instanceId, family, source, destination, out profile, out entry)
            : _cache.TryLookup(new MapCacheKey(instanceId, profile, family, destination), out entry);
        if (!hit)
        {
            _counters.Add(Counter.MapCacheMisses);
            if (NeverResolved(family, destination)) { _counters.Add(Counter.DropLinkScopeOrMulticast); return decision; }
            PostMiss(instanceId, profile, family, source, destination, now);
            _counters.Add(Counter.DropNoMapping);
            return decision;
        }
        _counters.Add(Counter.MapCacheHits);
        if (entry.ExpiresAt != 0 && entry.ExpiresAt <= now)
            PostMiss(instanceId, profile, family, source, destination, now); // keep forwarding while the agent refreshes it
        if (entry.IsNegative)
        {
            switch (entry.Action)
            {
                case MapReplyAction.SendMapRequest:
                    PostMiss(instanceId, profile, family, source, destination, now);
                    _counters.Add(Counter.DropNegativeEntry);
                    break;
                case MapReplyAction.DropPolicyDenied: _counters.Add(Counter.DropPolicyDenied); break;
                case MapReplyAction.DropAuthFailure: _counters.Add(Counter.DropAuthFailure); break;
                case MapReplyAction.NativelyForward: _counters.Add(Counter.DropNativeForwardUnsupported); break;
                default: _counters.Add(Counter.DropNegativeEntry); break;
            }
            return decision;
        }
        uint hash = FlowHash.Compute(inner);
        int chosen = RlocSelector.Choose(entry, hash, _families);
        if (chosen < 0) { _counters.Add(Counter.DropNoUsableRloc); return decision; }
        bool outer6 = entry.Rlocs[chosen].Family == EidFamily.Ipv6;
        int outerBytes = outer6 ? OuterBytes6 : OuterBytes;
        int innerMtu = _outerMtu - outerBytes;

        if (length + outerBytes > _outerMtu)
        {
            if (dontFragment)
            {
                replyLength = family == EidFamily.Ipv4
                    ? IcmpTooBig.WriteIpv4(inner, (uint)destination, innerMtu, new Span<byte>(reply, PacketBuffers.MaxPacketBytes))
                    : IcmpTooBig.WriteIpv6(inner, Math.Max(1280, innerMtu), new Span<byte>(reply, PacketBuffers.MaxPacketBytes));
                _counters.Add(Counter.DropTooBig);
                if (replyLength > 0)
                {
                    _counters.Add(Counter.IcmpTooBigSent);
                    decision.Verdict = ItrVerdict.ReplyTooBig;
                }
                return decision;
            }
            // An IPv4 outer packet is fragmented (RFC 9300 §7.1, stateless); an IPv6 one cannot be, by a router, so
            // the ITR fragments the inner IPv4 packet, as any router on its path may (RFC 791), and encapsulates the pieces.
            decision.Verdict = outer6 ? ItrVerdict.FragmentInner : ItrVerdict.SendFragmented;
            if (outer6) return decision;
        }
        else
        {
            decision.Verdict = ItrVerdict.Send;
        }

        // A locator across a NAT is sent from the data port: the NAT passes only what comes from the port its binding
        // was made toward (draft-ietf-lisp-nat-traversal: the RTR sends to the xTR's translated 4341 from 4341).
        ushort sourcePort = entry.Rlocs[chosen].NatTraversed ? DataPort : FlowHash.SourcePort(hash, FlowPorts.First, FlowPorts.Count);
        ushort destinationPort = entry.Rlocs[chosen].Port == 0 ? LispDataHeader.DataPort : entry.Rlocs[chosen].Port;
        var lisp = LispDataHeader.WithNonce(NextNonce(), instanceId & LispDataHeader.MaxInstanceId);
        int start = PacketBuffers.HeadroomBytes - outerBytes;
        if (outer6)
        {
            UInt128 rloc6 = entry.Rlocs[chosen].Address;
            LispDataPacket.WriteIpv6(new Span<byte>(buffer + start, outerBytes), _sourceRloc6, rloc6, sourcePort, ttl, tos, hash & 0xFFFFF, lisp, length, destinationPort);
            if (!_zeroChecksum6) LispDataPacket.WriteUdpChecksum6(new Span<byte>(buffer + start, length + outerBytes));
            decision.Ipv6 = true;
            decision.Destination6 = rloc6;
        }
        else
        {
            uint rloc = (uint)entry.Rlocs[chosen].Address;
            _outer4.Write(buffer + start, rloc, destinationPort, sourcePort, ttl, tos, ++_ipId, lisp, length);
            decision.Destination = rloc;
        }
        decision.OuterStart = start;
        decision.OuterLength = length + outerBytes;
        decision.Ttl = ttl;
        decision.Tos = tos;
        decision.SourcePort = sourcePort;
        decision.DestinationPort = destinationPort;
        return decision;
    }

    /// <summary>
    /// Destinations no mapping system answers for (their scope ends at the link, or they are groups): IPv4 multicast
    /// 224.0.0.0/4, link-local 169.254.0.0/16 and the limited broadcast; IPv6 multicast ff00::/8 and link-local
    /// fe80::/10. A miss on one is dropped and counted without a Map-Request.
    /// </summary>
    public static bool NeverResolved(EidFamily family, UInt128 destination)
    {
        if (family == EidFamily.Ipv4)
        {
            uint d = (uint)destination;
            return (d >> 28) == 0xE || (d >> 16) == 0xA9FE || d == uint.MaxValue;
        }
        return (destination >> 120) == 0xFF || (destination >> 118) == (0xFE80 >> 6);
    }

    private void PostMiss(uint iid, ushort profile, EidFamily family, UInt128 source, UInt128 destination, long now)
    {
        var miss = new MissRecord { Kind = MissKind.Miss, InstanceId = iid, Profile = profile, Family = family, SourceEid = source, DestinationEid = destination, Timestamp = now };
        if (!_suppressor.ShouldPost(miss)) { _counters.Add(Counter.MissesSuppressed); return; }
        if (_misses.TryPost(miss)) _counters.Add(Counter.MissesPosted);
        else _counters.Add(Counter.MissRingFull);
    }

    /// <summary>
    /// Splits an inner IPv4 packet (DF clear) that does not fit an IPv6 outer header into fragments of at most
    /// <see cref="InnerMtu6"/> bytes (RFC 791: the header, options included, in each; the packet may itself be a
    /// fragment, whose offset and MF the pieces keep). Fragment k is written at <c>output + k * stride + headroom</c>
    /// so that each has a headroom for its outer header; returns the count, 0 when they do not fit (counted by the caller).
    /// </summary>
    public int FragmentInner(ReadOnlySpan<byte> inner, byte* output, int stride, int headroom, Span<int> lengths)
    {
        int header = (inner[0] & 0xF) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(inner[2..]);
        if (header < Ipv4Header.MinLength || total > inner.Length || total <= header) return 0;
        int chunk = (InnerMtu6 - header) & ~7;
        if (chunk < 8 || stride < headroom + header + chunk) return 0;
        int count = Cut(inner[..total], header, chunk, output + headroom, stride, lengths);
        _counters.Add(Counter.InnerFragmentsSent, (ulong)count);
        return count;
    }

    /// <summary>
    /// Cuts an IPv4 packet into fragments (RFC 791) of <paramref name="header"/> bytes of its header each (options
    /// included) and at most <paramref name="chunk"/> bytes of its payload, fragment k at <c>output + k * stride</c>.
    /// A packet that is a fragment already passes its offset and, to the last piece, its MF bit on. Returns the count,
    /// 0 when there are more pieces than <paramref name="lengths"/> holds.
    /// </summary>
    private static int Cut(ReadOnlySpan<byte> packet, int header, int chunk, byte* output, long stride, Span<int> lengths)
    {
        ushort flags = BinaryPrimitives.ReadUInt16BigEndian(packet[6..]);
        int baseOffset = (flags & 0x1FFF) << 3;
        bool lastMore = (flags & Ipv4Header.FlagMoreFragments) != 0;
        ReadOnlySpan<byte> payload = packet[header..];
        int count = 0;
        for (int offset = 0; offset < payload.Length; offset += chunk)
        {
            if (count == lengths.Length) return 0;
            int size = Math.Min(chunk, payload.Length - offset);
            bool more = offset + size < payload.Length || lastMore;
            var f = new Span<byte>(output + count * stride, header + size);
            packet[..header].CopyTo(f);
            BinaryPrimitives.WriteUInt16BigEndian(f[2..], (ushort)(header + size));
            BinaryPrimitives.WriteUInt16BigEndian(f[6..], (ushort)((more ? Ipv4Header.FlagMoreFragments : 0) | ((baseOffset + offset) >> 3)));
            f[10] = 0;
            f[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(f[10..], InternetChecksum.Compute(f[..header]));
            payload.Slice(offset, size).CopyTo(f[header..]);
            lengths[count++] = header + size;
        }
        return count;
    }

    /// <summary>The largest inner packet that fits the outer MTU once encapsulated in IPv6.</summary>
    public int InnerMtu6 => _outerMtu - OuterBytes6;

    /// <summary>
    /// Splits an outer IPv4 packet into fragments of at most the outer MTU (RFC 791; RFC 9300 §7.1's stateless
    /// approach). Returns the number written to <paramref name="fragments"/> (each <see cref="PacketBuffers.MaxPacketBytes"/>
    /// apart), with their lengths in <paramref name="lengths"/>.
    /// </summary>
    public int Fragment(ReadOnlySpan<byte> outer, byte* fragments, Span<int> lengths)
    {
        int count = Cut(outer, Ipv4Header.MinLength, (_outerMtu - Ipv4Header.MinLength) & ~7, fragments, PacketBuffers.MaxPacketBytes, lengths);
        _counters.Add(Counter.OuterFragmentsSent, (ulong)count);
        return count;
    }
}
