using System.Buffers.Binary;
using System.Net;
using FastXtr.Packets;

namespace FastXtr.Packets;

/// <summary>
/// The IPv4 header (RFC 791 §3.1), as the outer header of LISP packets (RFC 9300 §5.1) and inside ECMs
/// (RFC 9301 §5.8). Built without options; parsed with options skipped by IHL.
/// <code>
///  |Version|  IHL  |Type of Service|          Total Length         |
///  |         Identification        |Flags|      Fragment Offset    |
///  |  Time to Live |    Protocol   |         Header Checksum       |
///  |                       Source Address                          |
///  |                    Destination Address                        |
/// </code>
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1051", Justification = "A decoded header is a plain record the hot path fills and reads field by field; properties would add nothing but noise")]
public struct Ipv4Header
{
    public const int MinLength = 20;
    public const byte ProtocolUdp = 17;
    public const ushort FlagDontFragment = 0x4000;
    public const ushort FlagMoreFragments = 0x2000;

    public int HeaderLength;
    public byte TypeOfService;
    public ushort TotalLength;
    public ushort Identification;
    /// <summary>The 3 flag bits and 13-bit fragment offset as on the wire.</summary>
    public ushort FlagsAndFragmentOffset;
    public byte TimeToLive;
    public byte Protocol;
    public ushort HeaderChecksum;
    public uint SourceAddress;
    public uint DestinationAddress;

    public readonly bool DontFragment => (FlagsAndFragmentOffset & FlagDontFragment) != 0;
    public readonly IPAddress Source => ToAddress(SourceAddress);
    public readonly IPAddress Destination => ToAddress(DestinationAddress);

    public static uint ToUInt32(IPAddress address)
    {
        Span<byte> b = stackalloc byte[4];
        if (address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork || !address.TryWriteBytes(b, out _))
            throw new ArgumentException($"{address} is not an IPv4 address", nameof(address));
        return BinaryPrimitives.ReadUInt32BigEndian(b);
    }

    public static IPAddress ToAddress(uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        return new IPAddress(b);
    }

    /// <summary>Reads and validates version, IHL, total length and checksum; returns false with a reason otherwise.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out Ipv4Header header, out IpHeaderError error)
    {
        header = default;
        if (source.Length < MinLength) { error = IpHeaderError.Truncated; return false; }
        if (source[0] >> 4 != 4) { error = IpHeaderError.WrongVersion; return false; }
        int ihl = (source[0] & 0xF) * 4;
        if (ihl < MinLength || ihl > source.Length) { error = IpHeaderError.BadHeaderLength; return false; }
        ushort total = BinaryPrimitives.ReadUInt16BigEndian(source[2..]);
        if (total < ihl || total > source.Length) { error = IpHeaderError.BadTotalLength; return false; }
        if (InternetChecksum.Compute(source[..ihl]) != 0) { error = IpHeaderError.BadChecksum; return false; }
        header = new Ipv4Header
        {
            HeaderLength = ihl,
            TypeOfService = source[1],
            TotalLength = total,
            Identification = BinaryPrimitives.ReadUInt16BigEndian(source[4..]),
            FlagsAndFragmentOffset = BinaryPrimitives.ReadUInt16BigEndian(source[6..]),
            TimeToLive = source[8],
            Protocol = source[9],
            HeaderChecksum = BinaryPrimitives.ReadUInt16BigEndian(source[10..]),
            SourceAddress = BinaryPrimitives.ReadUInt32BigEndian(source[12..]),
            DestinationAddress = BinaryPrimitives.ReadUInt32BigEndian(source[16..]),
        };
        error = IpHeaderError.None;
        return true;
    }

    /// <summary>Writes a 20-byte header (no options) with its checksum computed; returns the bytes written.</summary>
    public readonly int Write(Span<byte> destination)
    {
        Span<byte> d = destination[..MinLength];
        d[0] = 0x45;
        d[1] = TypeOfService;
        BinaryPrimitives.WriteUInt16BigEndian(d[2..], TotalLength);
        BinaryPrimitives.WriteUInt16BigEndian(d[4..], Identification);
        BinaryPrimitives.WriteUInt16BigEndian(d[6..], FlagsAndFragmentOffset);
        d[8] = TimeToLive;
        d[9] = Protocol;
        d[10] = 0;
        d[11] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(d[12..], SourceAddress);
        BinaryPrimitives.WriteUInt32BigEndian(d[16..], DestinationAddress);
        BinaryPrimitives.WriteUInt16BigEndian(d[10..], InternetChecksum.Compute(d));
        return MinLength;
    }

    /// <summary>The partial sum of the UDP/TCP pseudo-header (RFC 768) for this header's addresses.</summary>
    public readonly uint PseudoHeaderSum(byte protocol, int upperLayerLength) =>
        (SourceAddress >> 16) + (SourceAddress & 0xFFFF) + (DestinationAddress >> 16) + (DestinationAddress & 0xFFFF)
        + protocol + (uint)upperLayerLength;
}

public enum IpHeaderError : byte
{
    None,
    Truncated,
    WrongVersion,
    BadHeaderLength,
    BadTotalLength,
    BadChecksum,
}
