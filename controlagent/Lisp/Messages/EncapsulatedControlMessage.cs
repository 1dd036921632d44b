using FastXtr.Packets;

namespace FastXtr.Lisp.Messages;

/// <summary>
/// Encapsulated Control Message (RFC 9301 §5.8): a LISP control message (normally a Map-Request) inside an
/// IP and UDP header, sent to a Map-Resolver or forwarded by a Map-Server to an ETR.
/// <code>
///  |Type=8 |S|D|E|M|            Reserved                           |
///  |                       IPv4 or IPv6 Header                     |
///  |                  (uses RLOC or EID addresses)                 |
///  |                         UDP Header                            |
///  |                     LISP Control Message                      |
/// </code>
/// S: LISP-SEC information present; D: sent by a DDT node; E: forwarded to an ETR; M: sent to a Map-Server.
/// The inner source address is the ITR's EID or RLOC, the destination is the EID being looked up, and the inner
/// destination port is 4342.
/// </summary>
public sealed class EncapsulatedControlMessage
{
    public const int HeaderLength = 4;
    private const byte NextHeaderUdp = 17;

    private byte[] _inner = [];
    private int _innerLength;

    public bool Security { get; set; }
    public bool DdtOriginated { get; set; }
    public bool ToEtr { get; set; }
    public bool ToMapServer { get; set; }

    public bool InnerIsIpv6 { get; set; }
    public UInt128 InnerSource { get; set; }
    public UInt128 InnerDestination { get; set; }
    public byte InnerTimeToLive { get; set; } = 64;
    public ushort InnerSourcePort { get; set; } = LispPorts.Control;
    public ushort InnerDestinationPort { get; set; } = LispPorts.Control;

    /// <summary>The encapsulated control message.</summary>
    public ReadOnlySpan<byte> InnerMessage => _inner.AsSpan(0, _innerLength);

    public void SetInnerMessage(ReadOnlySpan<byte> message)
    {
        if (_inner.Length < message.Length) _inner = new byte[Math.Max(message.Length, 512)];
        message.CopyTo(_inner);
        _innerLength = message.Length;
    }

    public System.Net.IPAddress InnerSourceAddress => InnerIsIpv6 ? Ipv6Header.ToAddress(InnerSource) : Ipv4Header.ToAddress((uint)InnerSource);
    public System.Net.IPAddress InnerDestinationAddress => InnerIsIpv6 ? Ipv6Header.ToAddress(InnerDestination) : Ipv4Header.ToAddress((uint)InnerDestination);

    public void SetInnerAddresses(System.Net.IPAddress source, System.Net.IPAddress destination)
    {
        if (source.AddressFamily != destination.AddressFamily) throw new ArgumentException("inner source and destination must be of one family");
        InnerIsIpv6 = source.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
        InnerSource = InnerIsIpv6 ? Ipv6Header.ToUInt128(source) : Ipv4Header.ToUInt32(source);
        InnerDestination = InnerIsIpv6 ? Ipv6Header.ToUInt128(destination) : Ipv4Header.ToUInt32(destination);
    }

    public LispDecodeResult TryDecode(ReadOnlySpan<byte> message)
    {
        if (message.Length < HeaderLength + 1) return new LispDecodeResult(LispFormatError.Truncated, message.Length, "shorter than an ECM header");
        byte b0 = message[0];
        if (b0 >> 4 != (int)LispMessageType.EncapsulatedControlMessage)
            return new LispDecodeResult(LispFormatError.UnexpectedMessageType, 0, $"type {b0 >> 4} is not an ECM");
        Security = (b0 & 0x08) != 0;
        DdtOriginated = (b0 & 0x04) != 0;
        ToEtr = (b0 & 0x02) != 0;
        ToMapServer = (b0 & 0x01) != 0;
        ReadOnlySpan<byte> ip = message[HeaderLength..];
        int ipLength, end;
        switch (ip[0] >> 4)
        {
            case 4:
                if (!Ipv4Header.TryRead(ip, out var v4, out var e4))
                    return new LispDecodeResult(e4 == IpHeaderError.Truncated ? LispFormatError.Truncated : LispFormatError.BadInnerHeader, HeaderLength, $"inner IPv4 header: {e4}");
                if (v4.Protocol != Ipv4Header.ProtocolUdp) return new LispDecodeResult(LispFormatError.BadInnerHeader, HeaderLength + 9, $"inner protocol {v4.Protocol} is not UDP");
                InnerIsIpv6 = false;
                InnerSource = v4.SourceAddress;
                InnerDestination = v4.DestinationAddress;
                InnerTimeToLive = v4.TimeToLive;
                ipLength = v4.HeaderLength;
                end = v4.TotalLength;
                break;
            case 6:
                if (!Ipv6Header.TryRead(ip, out var v6, out var e6))
                    return new LispDecodeResult(e6 == IpHeaderError.Truncated ? LispFormatError.Truncated : LispFormatError.BadInnerHeader, HeaderLength, $"inner IPv6 header: {e6}");
                if (v6.NextHeader != NextHeaderUdp) return new LispDecodeResult(LispFormatError.BadInnerHeader, HeaderLength + 6, $"inner next header {v6.NextHeader} is not UDP");
                InnerIsIpv6 = true;
                InnerSource = v6.SourceAddress;
                InnerDestination = v6.DestinationAddress;
                InnerTimeToLive = v6.HopLimit;
                ipLength = Ipv6Header.Length;
                end = Ipv6Header.Length + v6.PayloadLength;
                break;
            default:
                return new LispDecodeResult(LispFormatError.BadInnerHeader, HeaderLength, $"inner IP version {ip[0] >> 4}");
        }
        if (!UdpHeader.TryRead(ip[ipLength..end], out var udp, out var eu))
            return new LispDecodeResult(eu == UdpHeaderError.Truncated ? LispFormatError.Truncated : LispFormatError.BadInnerHeader, HeaderLength + ipLength, $"inner UDP header: {eu}");
        InnerSourcePort = udp.SourcePort;
        InnerDestinationPort = udp.DestinationPort;
        int innerStart = HeaderLength + ipLength + UdpHeader.Length;
        int innerLength = udp.TotalLength - UdpHeader.Length;
        if (innerLength == 0) return new LispDecodeResult(LispFormatError.Truncated, innerStart, "no encapsulated message");
        SetInnerMessage(message.Slice(innerStart, innerLength));
        int consumed = innerStart + innerLength;
        return consumed == message.Length ? LispDecodeResult.Success : new LispDecodeResult(LispFormatError.TrailingBytes, consumed, $"{message.Length - consumed} bytes after the inner datagram");
    }

    public void Decode(ReadOnlySpan<byte> message) => TryDecode(message).ThrowIfFailed();

    /// <summary>Encodes the ECM with inner IP and UDP headers (UDP checksum computed); returns bytes written or -1.</summary>
    public int TryEncode(Span<byte> destination)
    {
        int ipLength = InnerIsIpv6 ? Ipv6Header.Length : Ipv4Header.MinLength;
        int udpLength = UdpHeader.Length + _innerLength;
        int total = HeaderLength + ipLength + udpLength;
        if (total > destination.Length) return -1;
        destination[0] = (byte)((int)LispMessageType.EncapsulatedControlMessage << 4 | (Security ? 0x08 : 0) | (DdtOriginated ? 0x04 : 0) | (ToEtr ? 0x02 : 0) | (ToMapServer ? 0x01 : 0));
        destination[1..HeaderLength].Clear();
        Span<byte> ip = destination[HeaderLength..total];
        uint pseudo;
        if (InnerIsIpv6)
        {
            var h = new Ipv6Header { PayloadLength = (ushort)udpLength, NextHeader = NextHeaderUdp, HopLimit = InnerTimeToLive, SourceAddress = InnerSource, DestinationAddress = InnerDestination };
            h.Write(ip);
            pseudo = h.PseudoHeaderSum(NextHeaderUdp, udpLength);
        }
        else
        {
            var h = new Ipv4Header { TotalLength = (ushort)(ipLength + udpLength), TimeToLive = InnerTimeToLive, Protocol = Ipv4Header.ProtocolUdp, SourceAddress = (uint)InnerSource, DestinationAddress = (uint)InnerDestination };
            h.Write(ip);
            pseudo = h.PseudoHeaderSum(Ipv4Header.ProtocolUdp, udpLength);
        }
        Span<byte> udp = ip[ipLength..];
        new UdpHeader { SourcePort = InnerSourcePort, DestinationPort = InnerDestinationPort, TotalLength = (ushort)udpLength }.Write(udp);
        InnerMessage.CopyTo(udp[UdpHeader.Length..]);
        UdpHeader.FillChecksum(udp, pseudo);
        return total;
    }

    public byte[] ToArray() => LispMessage.EncodeToArray(TryEncode);

    public override string ToString() =>
        $"ECM{(Security ? " S" : "")}{(DdtOriginated ? " D" : "")}{(ToEtr ? " E" : "")}{(ToMapServer ? " M" : "")} inner {InnerSourceAddress}:{InnerSourcePort} -> {InnerDestinationAddress}:{InnerDestinationPort} ({_innerLength} bytes)";
}
