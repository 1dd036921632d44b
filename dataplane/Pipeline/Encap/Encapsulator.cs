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
    public int OuterStart;
    public int OuterLength;
    public uint Destination;
}

/// <summary>
/// The ITR's per-packet work (RFC 9300 §5, §7): parse the inner IPv4/IPv6 header, look the destination up in the
/// map-cache for the packet's Instance ID, choose an RLOC, and prepend IPv4 + UDP + LISP in the buffer's headroom.
/// Misses are posted to the miss ring (suppressed to about one per destination per second). Every drop is counted
/// under its reason. No allocation, lock or exception per packet.
/// </summary>
public sealed unsafe class Encapsulator
{
    public const int OuterBytes = LispDataPacket.Ipv4OverheadBytes;
    private readonly MapCacheTables _cache;
    private readonly uint _sourceRloc;
    private readonly int _outerMtu;
    private readonly WorkerCounters _counters;
    private readonly MissRing _misses;
    private readonly MissSuppressor _suppressor;
    private ulong _random;
    private ushort _ipId;

    public Encapsulator(MapCacheTables cache, uint sourceRloc, int outerMtu, WorkerCounters counters, MissRing misses, MissSuppressor suppressor, ulong seed)
    {
        if (outerMtu < 576 || outerMtu > PacketBuffers.MaxPacketBytes) throw new ArgumentOutOfRangeException(nameof(outerMtu), outerMtu, $"outer MTU must be 576 .. {PacketBuffers.MaxPacketBytes}");
        _cache = cache;
        _sourceRloc = sourceRloc;
        _outerMtu = outerMtu;
        _counters = counters;
        _misses = misses;
        _suppressor = suppressor;
        _random = seed | 1;
    }

    /// <summary>The largest inner packet that fits the outer MTU once encapsulated.</summary>
    public int InnerMtu => _outerMtu - OuterBytes;

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
        int chosen = RlocSelector.Choose(entry, hash);
        if (chosen < 0) { _counters.Add(Counter.DropNoUsableRloc); return decision; }

        if (length + OuterBytes > _outerMtu)
        {
            if (dontFragment)
            {
                replyLength = family == EidFamily.Ipv4
                    ? IcmpTooBig.WriteIpv4(inner, (uint)destination, InnerMtu, new Span<byte>(reply, PacketBuffers.MaxPacketBytes))
                    : IcmpTooBig.WriteIpv6(inner, Math.Max(1280, InnerMtu), new Span<byte>(reply, PacketBuffers.MaxPacketBytes));
                _counters.Add(Counter.DropTooBig);
                if (replyLength > 0)
                {
                    _counters.Add(Counter.IcmpTooBigSent);
                    decision.Verdict = ItrVerdict.ReplyTooBig;
                }
                return decision;
            }
            decision.Verdict = ItrVerdict.SendFragmented;
        }
        else
        {
            decision.Verdict = ItrVerdict.Send;
        }

        uint rloc = (uint)entry.Rlocs[chosen].Address;
        int start = PacketBuffers.HeadroomBytes - OuterBytes;
        LispDataPacket.WriteIpv4(new Span<byte>(buffer + start, OuterBytes), _sourceRloc, rloc, FlowHash.SourcePort(hash),
            ttl, tos, ++_ipId, dontFragment: false, LispDataHeader.WithNonce(NextNonce(), instanceId & LispDataHeader.MaxInstanceId), length);
        decision.OuterStart = start;
        decision.OuterLength = length + OuterBytes;
        decision.Destination = rloc;
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
    /// Splits an outer IPv4 packet into fragments of at most the outer MTU (RFC 791; RFC 9300 §7.1's stateless
    /// approach). Returns the number written to <paramref name="fragments"/> (each <see cref="PacketBuffers.MaxPacketBytes"/>
    /// apart), with their lengths in <paramref name="lengths"/>.
    /// </summary>
    public int Fragment(ReadOnlySpan<byte> outer, byte* fragments, Span<int> lengths)
    {
        const int header = Ipv4Header.MinLength;
        int chunk = (_outerMtu - header) & ~7;
        ReadOnlySpan<byte> payload = outer[header..];
        int count = 0;
        for (int offset = 0; offset < payload.Length; offset += chunk)
        {
            if (count == lengths.Length) return 0;
            int size = Math.Min(chunk, payload.Length - offset);
            bool more = offset + size < payload.Length;
            var f = new Span<byte>(fragments + (long)count * PacketBuffers.MaxPacketBytes, header + size);
            outer[..header].CopyTo(f);
            BinaryPrimitives.WriteUInt16BigEndian(f[2..], (ushort)(header + size));
            BinaryPrimitives.WriteUInt16BigEndian(f[6..], (ushort)((more ? Ipv4Header.FlagMoreFragments : 0) | (offset >> 3)));
            f[10] = 0;
            f[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(f[10..], InternetChecksum.Compute(f[..header]));
            payload.Slice(offset, size).CopyTo(f[header..]);
            lengths[count++] = header + size;
        }
        _counters.Add(Counter.OuterFragmentsSent, (ulong)count);
        return count;
    }
}
