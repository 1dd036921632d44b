using System.Buffers.Binary;
using FastXtr.Packets;
using FastXtr.Packets;

namespace FastXtr.Dataplane.Offload;

/// <summary>
/// TCP segmentation in userspace (what a NIC does for TSO): a super-packet read from a TUN with a virtio-net header
/// is cut into segments of at most MSS payload bytes. Each segment gets a copy of the headers with its own IPv4
/// total length, identification and header checksum (or IPv6 payload length), TCP sequence number, flags (FIN and
/// PSH on the last segment only, CWR on the first only) and a complete TCP checksum. Segments are written back to
/// back, each after <c>prefixBytes</c> left for the caller (the LISP header), so that every one but the last has
/// the same length: the layout one UDP GSO send wants.
/// </summary>
public static class TcpSegmentation
{
    public const byte ProtocolTcp = 6;
    private const byte Fin = 0x01, Psh = 0x08, Cwr = 0x80;

    /// <summary>
    /// The IP + TCP header length of a TCP packet without IPv6 extension headers, with its family; 0 when the packet
    /// is not such a TCP packet or is truncated.
    /// </summary>
    public static int HeaderLength(ReadOnlySpan<byte> packet, out bool ipv6)
    {
        int ipLength = IpHeaderLength(packet, ProtocolTcp, out ipv6);
        if (ipLength == 0 || packet.Length < ipLength + 20) return 0;
        int tcpLength = (packet[ipLength + 12] >> 4) * 4;
        if (tcpLength < 20 || packet.Length < ipLength + tcpLength) return 0;
        return ipLength + tcpLength;
    }

    /// <summary>
    /// The IP header length of an unfragmented IPv4 packet or an IPv6 packet without extension headers that carries
    /// <paramref name="protocol"/>; 0 otherwise (a fragment cannot be cut).
    /// </summary>
    internal static int IpHeaderLength(ReadOnlySpan<byte> packet, byte protocol, out bool ipv6)
    {
        ipv6 = false;
        if (packet.Length < Ipv4Header.MinLength) return 0;
        if (packet[0] >> 4 == 4)
        {
            int ipLength = (packet[0] & 0xF) * 4;
            bool fragment = (BinaryPrimitives.ReadUInt16BigEndian(packet[6..]) & 0x3FFF) != 0;
            return ipLength < Ipv4Header.MinLength || packet.Length < ipLength || packet[9] != protocol || fragment ? 0 : ipLength;
        }
        if (packet[0] >> 4 != 6) return 0;
        ipv6 = true;
        return packet.Length < Ipv6Header.Length || packet[6] != protocol ? 0 : Ipv6Header.Length;
    }

    /// <summary>
    /// The payload after <paramref name="headers"/> (ending where the IP header says the packet ends; a BIG TCP
    /// IPv4 total length of 0 leaves the read length), and how many pieces of <paramref name="unit"/> bytes it makes
    /// laid out <c>prefixBytes + headers + unit</c> apart; 0 when they do not fit the output or the lengths.
    /// </summary>
    internal static int Plan(ReadOnlySpan<byte> packet, int headers, bool ipv6, int unit, int prefixBytes, int outputLength, int lengthsCapacity, out ReadOnlySpan<byte> payload)
    {
        int end = ipv6 ? Math.Min(packet.Length, Ipv6Header.Length + BinaryPrimitives.ReadUInt16BigEndian(packet[4..]))
                       : Math.Min(packet.Length, BinaryPrimitives.ReadUInt16BigEndian(packet[2..]));
        if (end < headers) end = packet.Length;
        payload = packet[headers..end];
        int count = Math.Max(1, (payload.Length + unit - 1) / unit);
        long needed = (long)(count - 1) * (prefixBytes + headers + unit) + prefixBytes + headers + (payload.Length - (count - 1) * unit);
        return count > lengthsCapacity || needed > outputLength ? 0 : count;
    }

    /// <summary>
    /// Writes piece <paramref name="k"/>: the headers, its slice of the payload, and its own IP lengths (for IPv4
    /// also identification + k and the header checksum); the transport header is the caller's to finish.
    /// </summary>
    internal static Span<byte> CopySegment(ReadOnlySpan<byte> packet, int headers, int ipLength, bool ipv6, ushort identification,
        ReadOnlySpan<byte> payload, int k, int unit, int prefixBytes, Span<byte> output)
    {
        int offset = k * unit;
        int size = Math.Min(unit, payload.Length - offset);
        Span<byte> segment = output.Slice(k * (prefixBytes + headers + unit) + prefixBytes, headers + size);
        packet[..headers].CopyTo(segment);
        payload.Slice(offset, size).CopyTo(segment[headers..]);
        FixIpHeader(segment, segment.Length, ipLength, ipv6, (ushort)(identification + k));
        return segment;
    }

    /// <summary>
    /// A segment's own IP lengths (for a segment of <paramref name="segmentLength"/> bytes), and for IPv4 its
    /// identification (the burst's + k) and header checksum; <paramref name="ip"/> starts with its IP header.
    /// </summary>
    private static void FixIpHeader(Span<byte> ip, int segmentLength, int ipLength, bool ipv6, ushort identification)
    {
        if (ipv6)
        {
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)(segmentLength - Ipv6Header.Length));
            return;
        }
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)segmentLength);
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], identification);
        ip[10] = 0;
        ip[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], InternetChecksum.Compute(ip[..ipLength]));
    }

    /// <summary>
    /// Finishes segment k's TCP header in <paramref name="headers"/> (the segment's IP and TCP headers, its IP lengths
    /// already its own): sequence number, flags (FIN and PSH on the last segment only, CWR on the first only) and the
    /// complete checksum over the TCP header and the segment's <paramref name="payload"/>, wherever that lies.
    /// </summary>
    private static void FinishTcpHeader(Span<byte> headers, int ipLength, bool ipv6, uint sequence, byte flags, int k, int count, ReadOnlySpan<byte> payload)
    {
        Span<byte> tcp = headers[ipLength..];
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], sequence);
        byte f = flags;
        if (k != count - 1) f = (byte)(f & ~(Fin | Psh));
        if (k != 0) f = (byte)(f & ~Cwr);
        tcp[13] = f;
        WriteTransportChecksum(headers, ipLength, ipv6, checksumOffset: 16, payload);
    }

    /// <summary>
    /// Cuts <paramref name="packet"/> into segments of at most <paramref name="mss"/> payload bytes. Segment k starts at
    /// <c>k * (prefixBytes + headers + mss)</c> in <paramref name="output"/> and its length (prefix included) goes to
    /// <paramref name="lengths"/>[k]. Returns the number of segments, or 0 when the packet is not a TCP packet this
    /// can cut, or the output is too small.
    /// </summary>
    public static int Segment(ReadOnlySpan<byte> packet, int mss, int prefixBytes, Span<byte> output, Span<int> lengths)
    {
        int headers = HeaderLength(packet, out bool ipv6);
        if (headers == 0 || mss < 1) return 0;
        int ipLength = ipv6 ? Ipv6Header.Length : (packet[0] & 0xF) * 4;
        int count = Plan(packet, headers, ipv6, mss, prefixBytes, output.Length, lengths.Length, out var payload);
        if (count == 0) return 0;

        uint sequence = BinaryPrimitives.ReadUInt32BigEndian(packet[(ipLength + 4)..]);
        ushort identification = ipv6 ? (ushort)0 : BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
        byte flags = packet[ipLength + 13];
        for (int k = 0; k < count; k++)
        {
            int offset = k * mss;
            Span<byte> segment = CopySegment(packet, headers, ipLength, ipv6, identification, payload, k, mss, prefixBytes, output);
            int size = segment.Length - headers;
            FinishTcpHeader(segment[..headers], ipLength, ipv6, sequence + (uint)offset, flags, k, count, payload.Slice(offset, size));
            lengths[k] = prefixBytes + headers + size;
        }
        return count;
    }

    /// <summary>
    /// <see cref="Segment"/> without copying the payload, for a sender that gathers (one iovec for each segment's
    /// headers, one for its payload): segment k's <paramref name="prefixBytes"/> and headers (IP lengths,
    /// identification and checksum, sequence number, flags, and the TCP checksum over its payload) go to
    /// <paramref name="headerOutput"/> at <c>k * headerStride</c>, and its payload is the packet's bytes from
    /// <paramref name="payloadOffset"/> + k * <paramref name="mss"/>, <paramref name="lengths"/>[k] - prefix - headers of
    /// them (<paramref name="lengths"/>[k] is what <see cref="Segment"/> gives). Returns the number of segments, or 0
    /// when <see cref="Segment"/> would, or the headers do not fit the stride or the output.
    /// </summary>
    public static int SegmentHeaders(ReadOnlySpan<byte> packet, int mss, int prefixBytes, Span<byte> headerOutput, int headerStride, Span<int> lengths, out int payloadOffset)
    {
        payloadOffset = 0;
        int headers = HeaderLength(packet, out bool ipv6);
        if (headers == 0 || mss < 1 || prefixBytes + headers > headerStride) return 0;
        int ipLength = ipv6 ? Ipv6Header.Length : (packet[0] & 0xF) * 4;
        int count = Plan(packet, headers, ipv6, mss, prefixBytes, int.MaxValue, lengths.Length, out var payload);
        if (count == 0 || (long)count * headerStride > headerOutput.Length) return 0;

        uint sequence = BinaryPrimitives.ReadUInt32BigEndian(packet[(ipLength + 4)..]);
        ushort identification = ipv6 ? (ushort)0 : BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
        byte flags = packet[ipLength + 13];
        for (int k = 0; k < count; k++)
        {
            int offset = k * mss;
            int size = Math.Min(mss, payload.Length - offset);
            Span<byte> h = headerOutput.Slice(k * headerStride + prefixBytes, headers);
            packet[..headers].CopyTo(h);
            FixIpHeader(h, headers + size, ipLength, ipv6, (ushort)(identification + k));
            FinishTcpHeader(h, ipLength, ipv6, sequence + (uint)offset, flags, k, count, payload.Slice(offset, size));
            lengths[k] = prefixBytes + headers + size;
        }
        payloadOffset = headers;
        return count;
    }

    /// <summary>
    /// Writes the complete TCP or UDP checksum of a packet (pseudo-header, transport header and payload) at
    /// <paramref name="checksumOffset"/> within the transport header.
    /// </summary>
    public static void WriteTransportChecksum(Span<byte> packet, int ipLength, bool ipv6, int checksumOffset) =>
        WriteTransportChecksum(packet, ipLength, ipv6, checksumOffset, []);

    /// <summary>
    /// The same for a packet whose transport payload continues in <paramref name="rest"/>, wherever that lies (a
    /// segment gathered from its headers and its slice of a super-packet): <paramref name="packet"/>'s transport part
    /// must be a whole number of 16-bit words, as a TCP or UDP header is.
    /// </summary>
    private static void WriteTransportChecksum(Span<byte> packet, int ipLength, bool ipv6, int checksumOffset, ReadOnlySpan<byte> rest)
    {
        Span<byte> transport = packet[ipLength..];
        transport[checksumOffset] = 0;
        transport[checksumOffset + 1] = 0;
        uint sum = PseudoHeaderSum(packet, ipLength, ipv6, transport.Length + rest.Length);
        ushort checksum = InternetChecksum.Finish(InternetChecksumSimd.Sum(rest, InternetChecksumSimd.Sum(transport, sum)));
        // UDP sends an all-zero result as all ones (RFC 768); for TCP 0 and 0xFFFF are the same in ones' complement.
        BinaryPrimitives.WriteUInt16BigEndian(transport[checksumOffset..], checksum == 0 && packet[ipv6 ? 6 : 9] == 17 ? (ushort)0xFFFF : checksum);
    }

    /// <summary>The unfolded sum of the IPv4 or IPv6 pseudo-header for a transport segment of that length.</summary>
    public static uint PseudoHeaderSum(ReadOnlySpan<byte> packet, int ipLength, bool ipv6, int transportLength)
    {
        if (ipv6)
        {
            uint s = InternetChecksum.Sum(packet.Slice(8, 32));
            return s + (uint)(transportLength >> 16) + (uint)(transportLength & 0xFFFF) + packet[6];
        }
        uint v4 = InternetChecksum.Sum(packet.Slice(12, 8));
        return v4 + packet[9] + (uint)transportLength;
    }

    /// <summary>
    /// Completes a checksum the kernel left partial (virtio-net NEEDS_CSUM): the ones' complement of the sum from
    /// <paramref name="start"/> to the end, where the field at <c>start + offset</c> already holds the pseudo-header
    /// sum. False when the offsets do not fit the packet.
    /// </summary>
    public static bool CompleteChecksum(Span<byte> packet, int start, int offset)
    {
        if (start < 0 || offset < 0 || start + offset + 2 > packet.Length) return false;
        ushort checksum = InternetChecksum.Finish(InternetChecksumSimd.Sum(packet[start..]));
        bool udp = packet.Length > 9 && (packet[0] >> 4 == 4 ? packet[9] : packet[6]) == 17;
        BinaryPrimitives.WriteUInt16BigEndian(packet[(start + offset)..], checksum == 0 && udp ? (ushort)0xFFFF : checksum);
        return true;
    }
}
