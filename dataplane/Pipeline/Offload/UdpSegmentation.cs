using System.Buffers.Binary;
using FastXtr.Packets;

namespace FastXtr.Dataplane.Offload;

/// <summary>
/// UDP segmentation in userspace (USO, what the kernel does for a socket with UDP_SEGMENT): a UDP super-packet read
/// from a TUN is cut into datagrams of the virtio-net header's size exactly (the sender's datagram boundaries; a UDP
/// payload is never re-cut), each with its own IP and UDP lengths, IPv4 identification and header checksum, and a
/// complete UDP checksum. Datagrams are written back to back, each after <c>prefixBytes</c> left for the caller.
/// </summary>
public static class UdpSegmentation
{
    public const byte ProtocolUdp = 17;
    private const int UdpHeaderBytes = 8;

    /// <summary>The IP + UDP header length of a UDP packet without IPv6 extension headers, or 0.</summary>
    public static int HeaderLength(ReadOnlySpan<byte> packet, out bool ipv6)
    {
        int ipLength = TcpSegmentation.IpHeaderLength(packet, ProtocolUdp, out ipv6);
        return ipLength == 0 || packet.Length < ipLength + UdpHeaderBytes ? 0 : ipLength + UdpHeaderBytes;
    }

    /// <summary>
    /// Cuts <paramref name="packet"/> into datagrams of <paramref name="datagramPayload"/> bytes (the last may be
    /// shorter). Datagram k starts at <c>k * (prefixBytes + headers + datagramPayload)</c>; its length (prefix included)
    /// goes to <paramref name="lengths"/>[k]. Returns the count, or 0 when it cannot cut the packet.
    /// </summary>
    public static int Segment(ReadOnlySpan<byte> packet, int datagramPayload, int prefixBytes, Span<byte> output, Span<int> lengths)
    {
        int headers = HeaderLength(packet, out bool ipv6);
        if (headers == 0 || datagramPayload < 1) return 0;
        int ipLength = headers - UdpHeaderBytes;
        int count = TcpSegmentation.Plan(packet, headers, ipv6, datagramPayload, prefixBytes, output.Length, lengths.Length, out var payload);
        if (count == 0) return 0;
        ushort identification = ipv6 ? (ushort)0 : BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
        for (int k = 0; k < count; k++)
        {
            Span<byte> datagram = TcpSegmentation.CopySegment(packet, headers, ipLength, ipv6, identification, payload, k, datagramPayload, prefixBytes, output);
            int size = datagram.Length - headers;
            BinaryPrimitives.WriteUInt16BigEndian(datagram[(ipLength + 4)..], (ushort)(UdpHeaderBytes + size));
            TcpSegmentation.WriteTransportChecksum(datagram, ipLength, ipv6, checksumOffset: 6);
            lengths[k] = prefixBytes + headers + size;
        }
        return count;
    }
}
