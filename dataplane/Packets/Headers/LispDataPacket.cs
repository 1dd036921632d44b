using System.Buffers.Binary;

namespace FastXtr.Packets;

/// <summary>
/// Builds and parses the whole outer encapsulation of a LISP data packet (RFC 9300 §5.1, §5.2):
/// outer IPv4 or IPv6 header, UDP header with destination port 4341 and checksum 0 (§5.3), LISP header.
/// </summary>
public static class LispDataPacket
{
    public const int Ipv4OverheadBytes = Ipv4Header.MinLength + UdpHeader.Length + LispDataHeader.Length;
    public const int Ipv6OverheadBytes = Ipv6Header.Length + UdpHeader.Length + LispDataHeader.Length;
    private const byte NextHeaderUdp = 17;

    /// <summary>
    /// Writes the 36 bytes of IPv4 + UDP + LISP in front of an inner packet of <paramref name="innerLength"/> bytes.
    /// The UDP checksum is 0 (RFC 9300 §5.3).
    /// </summary>
    public static int WriteIpv4(Span<byte> destination, uint sourceRloc, uint destinationRloc, ushort sourcePort,
        byte timeToLive, byte typeOfService, ushort identification, bool dontFragment, in LispDataHeader lisp, int innerLength,
        ushort destinationPort = LispDataHeader.DataPort)
    {
        int udpLength = UdpHeader.Length + LispDataHeader.Length + innerLength;
        var ip = new Ipv4Header
        {
            TypeOfService = typeOfService,
            TotalLength = checked((ushort)(Ipv4Header.MinLength + udpLength)),
            Identification = identification,
            FlagsAndFragmentOffset = dontFragment ? Ipv4Header.FlagDontFragment : (ushort)0,
            TimeToLive = timeToLive,
            Protocol = Ipv4Header.ProtocolUdp,
            SourceAddress = sourceRloc,
            DestinationAddress = destinationRloc,
        };
        int n = ip.Write(destination);
        n += new UdpHeader { SourcePort = sourcePort, DestinationPort = destinationPort, TotalLength = (ushort)udpLength }.Write(destination[n..]);
        lisp.Write(destination[n..]);
        return n + LispDataHeader.Length;
    }

    /// <summary>
    /// Writes the 56 bytes of IPv6 + UDP + LISP with UDP checksum 0, which RFC 9300 §5.3 permits only where both ends
    /// are configured for it (RFC 6935, RFC 6936); otherwise follow with <see cref="WriteUdpChecksum6"/> once the
    /// inner packet is in place.
    /// </summary>
    public static int WriteIpv6(Span<byte> destination, UInt128 sourceRloc, UInt128 destinationRloc, ushort sourcePort,
        byte hopLimit, byte trafficClass, uint flowLabel, in LispDataHeader lisp, int innerLength, ushort destinationPort = LispDataHeader.DataPort)
    {
        int udpLength = UdpHeader.Length + LispDataHeader.Length + innerLength;
        var ip = new Ipv6Header
        {
            TrafficClass = trafficClass,
            FlowLabel = flowLabel,
            PayloadLength = checked((ushort)udpLength),
            NextHeader = NextHeaderUdp,
            HopLimit = hopLimit,
            SourceAddress = sourceRloc,
            DestinationAddress = destinationRloc,
        };
        int n = ip.Write(destination);
        n += new UdpHeader { SourcePort = sourcePort, DestinationPort = destinationPort, TotalLength = (ushort)udpLength }.Write(destination[n..]);
        lisp.Write(destination[n..]);
        return n + LispDataHeader.Length;
    }

    /// <summary>
    /// Computes the UDP checksum of a whole outer IPv6 packet written by <see cref="WriteIpv6"/> (inner packet
    /// included) and stores it: over the IPv6 pseudo-header, the UDP header and the payload (RFC 8200 §8.1), a result
    /// of 0 sent as 0xFFFF (RFC 768).
    /// </summary>
    public static void WriteUdpChecksum6(Span<byte> packet)
    {
        Span<byte> udp = packet[Ipv6Header.Length..];
        int udpLength = BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
        udp = udp[..udpLength];
        udp[6] = 0;
        udp[7] = 0;
        // The pseudo-header: both addresses, the upper-layer length and the next header.
        uint sum = InternetChecksumSimd.Sum(packet.Slice(8, 32), (uint)udpLength + NextHeaderUdp);
        ushort checksum = InternetChecksum.Finish(InternetChecksumSimd.Sum(udp, sum));
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], checksum == 0 ? (ushort)0xFFFF : checksum);
    }

    /// <summary>
    /// Parses an outer IPv4/IPv6 + UDP + LISP header. Succeeds only for a UDP datagram to port 4341 whose
    /// lengths are consistent with the buffer; <paramref name="innerOffset"/> is where the inner packet starts.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> packet, out OuterHeaders outer, out DataPacketError error) =>
        TryParse(packet, LispDataHeader.DataPort, out outer, out error);

    /// <summary>As <see cref="TryParse(ReadOnlySpan{byte}, out OuterHeaders, out DataPacketError)"/>, for a data plane listening on <paramref name="dataPort"/>.</summary>
    public static bool TryParse(ReadOnlySpan<byte> packet, ushort dataPort, out OuterHeaders outer, out DataPacketError error)
    {
        outer = default;
        if (packet.IsEmpty) { error = DataPacketError.Truncated; return false; }
        int ipLength;
        int end;
        switch (packet[0] >> 4)
        {
            case 4:
                if (!Ipv4Header.TryRead(packet, out outer.Ipv4, out var e4)) { error = Map(e4); return false; }
                if (outer.Ipv4.Protocol != Ipv4Header.ProtocolUdp) { error = DataPacketError.NotUdp; return false; }
                if ((outer.Ipv4.FlagsAndFragmentOffset & 0x3FFF) != 0) { error = DataPacketError.Fragment; return false; }
                ipLength = outer.Ipv4.HeaderLength;
                end = outer.Ipv4.TotalLength;
                outer.IsIpv6 = false;
                break;
            case 6:
                if (!Ipv6Header.TryRead(packet, out outer.Ipv6, out var e6)) { error = Map(e6); return false; }
                if (outer.Ipv6.NextHeader != NextHeaderUdp) { error = DataPacketError.NotUdp; return false; }
                ipLength = Ipv6Header.Length;
                end = Ipv6Header.Length + outer.Ipv6.PayloadLength;
                outer.IsIpv6 = true;
                break;
            default:
                error = DataPacketError.NotIp;
                return false;
        }
        ReadOnlySpan<byte> udp = packet[ipLength..end];
        if (!UdpHeader.TryRead(udp, out outer.Udp, out _)) { error = DataPacketError.BadUdp; return false; }
        if (outer.Udp.DestinationPort != dataPort) { error = DataPacketError.NotLispPort; return false; }
        if (!LispDataHeader.TryRead(udp[UdpHeader.Length..outer.Udp.TotalLength], out outer.Lisp, out var el))
        {
            error = el == DataHeaderError.Truncated ? DataPacketError.Truncated : DataPacketError.BadLispHeader;
            return false;
        }
        outer.InnerOffset = ipLength + UdpHeader.Length + LispDataHeader.Length;
        outer.InnerLength = outer.Udp.TotalLength - UdpHeader.Length - LispDataHeader.Length;
        error = DataPacketError.None;
        return true;
    }

    private static DataPacketError Map(IpHeaderError e) => e == IpHeaderError.Truncated ? DataPacketError.Truncated : DataPacketError.BadIpHeader;
}

[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1051", Justification = "The decoded outer headers are a plain record filled once per packet and read by the ETR stage")]
public struct OuterHeaders
{
    public bool IsIpv6;
    public Ipv4Header Ipv4;
    public Ipv6Header Ipv6;
    public UdpHeader Udp;
    public LispDataHeader Lisp;
    public int InnerOffset;
    public int InnerLength;
}

public enum DataPacketError : byte
{
    None,
    Truncated,
    NotIp,
    BadIpHeader,
    NotUdp,
    Fragment,
    BadUdp,
    NotLispPort,
    BadLispHeader,
}
