using System.Buffers.Binary;
using System.Net;
using FastXtr.Packets;

namespace FastXtr.Packets;

/// <summary>
/// The fixed IPv6 header (RFC 8200 §3), as an outer LISP header (RFC 9300 §5.2) and inside ECMs.
/// <code>
///  |Version| Traffic Class |           Flow Label                  |
///  |         Payload Length        |  Next Header  |   Hop Limit   |
///  |                    Source Address (128 bits)                  |
///  |                 Destination Address (128 bits)                |
/// </code>
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1051", Justification = "A decoded header is a plain record the hot path fills and reads field by field; properties would add nothing but noise")]
public struct Ipv6Header
{
    public const int Length = 40;

    public byte TrafficClass;
    public uint FlowLabel;
    public ushort PayloadLength;
    public byte NextHeader;
    public byte HopLimit;
    public UInt128 SourceAddress;
    public UInt128 DestinationAddress;

    public readonly IPAddress Source => ToAddress(SourceAddress);
    public readonly IPAddress Destination => ToAddress(DestinationAddress);

    public static UInt128 ToUInt128(IPAddress address)
    {
        Span<byte> b = stackalloc byte[16];
        if (address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6 || !address.TryWriteBytes(b, out _))
            throw new ArgumentException($"{address} is not an IPv6 address", nameof(address));
        return BinaryPrimitives.ReadUInt128BigEndian(b);
    }

    public static IPAddress ToAddress(UInt128 value)
    {
        Span<byte> b = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(b, value);
        return new IPAddress(b);
    }

    public static bool TryRead(ReadOnlySpan<byte> source, out Ipv6Header header, out IpHeaderError error)
    {
        header = default;
        if (source.Length < Length) { error = IpHeaderError.Truncated; return false; }
        uint w0 = BinaryPrimitives.ReadUInt32BigEndian(source);
        if (w0 >> 28 != 6) { error = IpHeaderError.WrongVersion; return false; }
        ushort payload = BinaryPrimitives.ReadUInt16BigEndian(source[4..]);
        if (Length + payload > source.Length) { error = IpHeaderError.BadTotalLength; return false; }
        header = new Ipv6Header
        {
            TrafficClass = (byte)(w0 >> 20),
            FlowLabel = w0 & 0xFFFFF,
            PayloadLength = payload,
            NextHeader = source[6],
            HopLimit = source[7],
            SourceAddress = BinaryPrimitives.ReadUInt128BigEndian(source[8..]),
            DestinationAddress = BinaryPrimitives.ReadUInt128BigEndian(source[24..]),
        };
        error = IpHeaderError.None;
        return true;
    }

    public readonly int Write(Span<byte> destination)
    {
        Span<byte> d = destination[..Length];
        BinaryPrimitives.WriteUInt32BigEndian(d, (6u << 28) | ((uint)TrafficClass << 20) | (FlowLabel & 0xFFFFF));
        BinaryPrimitives.WriteUInt16BigEndian(d[4..], PayloadLength);
        d[6] = NextHeader;
        d[7] = HopLimit;
        BinaryPrimitives.WriteUInt128BigEndian(d[8..], SourceAddress);
        BinaryPrimitives.WriteUInt128BigEndian(d[24..], DestinationAddress);
        return Length;
    }

    /// <summary>The partial sum of the IPv6 upper-layer pseudo-header (RFC 8200 §8.1).</summary>
    public readonly uint PseudoHeaderSum(byte nextHeader, int upperLayerLength)
    {
        Span<byte> b = stackalloc byte[32];
        BinaryPrimitives.WriteUInt128BigEndian(b, SourceAddress);
        BinaryPrimitives.WriteUInt128BigEndian(b[16..], DestinationAddress);
        return InternetChecksum.Sum(b, nextHeader + (uint)upperLayerLength);
    }
}
