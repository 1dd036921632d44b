using System.Buffers.Binary;
using FastXtr.Packets;

namespace FastXtr.Packets;

/// <summary>
/// The UDP header (RFC 768). LISP data packets over IPv4 and IPv6 carry a zero checksum
/// (RFC 9300 §5.3, with RFC 6935/6936 for IPv6); control messages carry a computed one.
/// <code>
///  |          Source Port          |       Destination Port        |
///  |            Length             |           Checksum            |
/// </code>
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1051", Justification = "A decoded header is a plain record the hot path fills and reads field by field; properties would add nothing but noise")]
public struct UdpHeader
{
    public const int Length = 8;

    public ushort SourcePort;
    public ushort DestinationPort;
    public ushort TotalLength;
    public ushort Checksum;

    public static bool TryRead(ReadOnlySpan<byte> source, out UdpHeader header, out UdpHeaderError error)
    {
        header = default;
        if (source.Length < Length) { error = UdpHeaderError.Truncated; return false; }
        ushort len = BinaryPrimitives.ReadUInt16BigEndian(source[4..]);
        if (len < Length || len > source.Length) { error = UdpHeaderError.BadLength; return false; }
        header = new UdpHeader
        {
            SourcePort = BinaryPrimitives.ReadUInt16BigEndian(source),
            DestinationPort = BinaryPrimitives.ReadUInt16BigEndian(source[2..]),
            TotalLength = len,
            Checksum = BinaryPrimitives.ReadUInt16BigEndian(source[6..]),
        };
        error = UdpHeaderError.None;
        return true;
    }

    public readonly int Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination, SourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], DestinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], TotalLength);
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], Checksum);
        return Length;
    }

    /// <summary>
    /// Writes a whole IPv4 packet carrying one UDP datagram (IPv4 header without options, the UDP header with its
    /// checksum, the payload) into <paramref name="destination"/>; returns its length. For a datagram that must leave
    /// from a port no socket of ours is bound to (a raw socket sends it).
    /// </summary>
    public static int WriteIpv4Datagram(Span<byte> destination, uint source, uint target, ushort sourcePort, ushort destinationPort, ReadOnlySpan<byte> payload, byte timeToLive = 64)
    {
        int udpLength = Length + payload.Length;
        var ip = new Ipv4Header
        {
            TotalLength = checked((ushort)(Ipv4Header.MinLength + udpLength)), TimeToLive = timeToLive, Protocol = Ipv4Header.ProtocolUdp,
            SourceAddress = source, DestinationAddress = target,
        };
        int n = ip.Write(destination);
        var datagram = destination.Slice(n, udpLength);
        new UdpHeader { SourcePort = sourcePort, DestinationPort = destinationPort, TotalLength = (ushort)udpLength }.Write(datagram);
        payload.CopyTo(datagram[Length..]);
        FillChecksum(datagram, ip.PseudoHeaderSum(Ipv4Header.ProtocolUdp, udpLength));
        return n + udpLength;
    }

    /// <summary>
    /// Computes and stores the checksum of a UDP datagram (header and payload in <paramref name="datagram"/>)
    /// given the pseudo-header partial sum. A computed 0 is sent as 0xFFFF (RFC 768).
    /// </summary>
    public static void FillChecksum(Span<byte> datagram, uint pseudoHeaderSum)
    {
        datagram[6] = 0;
        datagram[7] = 0;
        ushort c = InternetChecksum.Finish(InternetChecksum.Sum(datagram, pseudoHeaderSum));
        BinaryPrimitives.WriteUInt16BigEndian(datagram[6..], c == 0 ? (ushort)0xFFFF : c);
    }
}

public enum UdpHeaderError : byte
{
    None,
    Truncated,
    BadLength,
}
