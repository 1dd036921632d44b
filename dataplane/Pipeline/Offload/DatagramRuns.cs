using System.Buffers.Binary;
using FastXtr.NativeInterop;
using FastXtr.Packets;

namespace FastXtr.Dataplane.Offload;

/// <summary>
/// Runs of encapsulated IPv4 datagrams the ITR (or an RTR) queued for its raw socket that can leave in one UDP GSO send: the
/// same outer addresses, ports, TTL and TOS (one flow to one locator: every packet of a flow gets the same outer
/// header but for its length, IP id and checksum), unfragmented with DF clear (the segmenting sockets send DF clear,
/// as the ITR's own headers have it), and payloads of one size but a shorter last (what UDP_SEGMENT cuts). The kernel
/// then carries the run as one socket buffer to the receiving host, whose UDP GRO socket takes it whole: one pass
/// through routing, the veth or NIC queue and the receiver's stack instead of one per packet.
/// </summary>
public static unsafe class DatagramRuns
{
    /// <summary>The outer IPv4 (no options) and UDP headers in front of each LISP payload.</summary>
    public const int HeaderBytes = Ipv4Header.MinLength + UdpHeader.Length;

    /// <summary>
    /// How many of the datagrams queued in <paramref name="queued"/> from <paramref name="start"/> on form one run
    /// with it (1: it goes alone), at most <paramref name="maxCount"/> datagrams and <paramref name="maxPayloadBytes"/>
    /// bytes of LISP payload; <paramref name="segment"/> is the run's payload size (the first's).
    /// </summary>
    public static int Length(MessageBatch queued, int start, int maxCount, int maxPayloadBytes, out int segment)
    {
        byte* first = queued.Data(start);
        segment = queued.QueuedLength(start) - HeaderBytes;
        if (!Gatherable(first, queued.QueuedLength(start))) return 1;
        int end = start + 1, bytes = segment;
        while (end < queued.Count && end - start < maxCount)
        {
            byte* d = queued.Data(end);
            int payload = queued.QueuedLength(end) - HeaderBytes;
            if (payload > segment || bytes + payload > maxPayloadBytes || !Gatherable(d, queued.QueuedLength(end)) || !SameFlow(first, d)) break;
            bytes += payload;
            end++;
            if (payload < segment) break; // a shorter one ends the run (UDP_SEGMENT cuts equal sizes but the last)
        }
        return end - start;
    }

    /// <summary>An IPv4 header of 20 bytes carrying UDP and a payload, unfragmented, DF clear, its total length the datagram's.</summary>
    private static bool Gatherable(byte* ip, int length) =>
        length > HeaderBytes && ip[0] == 0x45 && ip[9] == Ipv4Header.ProtocolUdp
        && (BinaryPrimitives.ReverseEndianness(*(ushort*)(ip + 6)) & (Ipv4Header.FlagDontFragment | Ipv4Header.FlagMoreFragments | 0x1FFF)) == 0
        && BinaryPrimitives.ReverseEndianness(*(ushort*)(ip + 2)) == length;

    /// <summary>TOS, TTL, both addresses and both ports equal.</summary>
    private static bool SameFlow(byte* a, byte* b) =>
        a[1] == b[1] && a[8] == b[8] && *(ulong*)(a + 12) == *(ulong*)(b + 12) && *(uint*)(a + 20) == *(uint*)(b + 20);

    /// <summary>The outer UDP source port of a datagram <see cref="Length"/> accepted.</summary>
    public static ushort SourcePort(byte* ip) => BinaryPrimitives.ReverseEndianness(*(ushort*)(ip + 20));
}
