using System.Buffers.Binary;
using FastXtr.Packets;
using FastXtr.Packets;

namespace FastXtr.Dataplane.Encap;

/// <summary>
/// The ICMP messages an ITR returns when an encapsulated packet would exceed the path MTU (RFC 9300 §7.2):
/// "fragmentation needed" (ICMP 3/4, RFC 1191) for IPv4 with DF set, "packet too big" (ICMPv6 2, RFC 4443) for IPv6,
/// each quoting the start of the offending packet and naming the MTU the source should use. Both are sent from
/// the address the packet was going to: the xTR has no address of its own in the EID space, and its RLOC is a
/// local address of the gateway, which the kernel would discard as a martian source on the TUN.
/// </summary>
public static class IcmpTooBig
{
    private const int QuoteIpv4 = 28;   // IPv4 header (20, no options quoted) + 8 bytes, as RFC 792 asks
    private const int MaxIcmpv6 = 1280;

    /// <summary>Writes an IPv4 packet carrying ICMP fragmentation-needed from <paramref name="fromAddress"/> to the inner source; returns its length.</summary>
    public static int WriteIpv4(ReadOnlySpan<byte> offending, uint fromAddress, int mtu, Span<byte> reply)
    {
        int ihl = (offending[0] & 0xF) * 4;
        int quote = Math.Min(offending.Length, ihl + 8);
        int total = Ipv4Header.MinLength + 8 + quote;
        if (reply.Length < total || quote < QuoteIpv4 - 8) return 0;
        var ip = new Ipv4Header
        {
            TotalLength = (ushort)total, TimeToLive = 64, Protocol = 1,
            SourceAddress = fromAddress, DestinationAddress = BinaryPrimitives.ReadUInt32BigEndian(offending[12..]),
        };
        ip.Write(reply);
        Span<byte> icmp = reply[Ipv4Header.MinLength..total];
        icmp[0] = 3; // destination unreachable
        icmp[1] = 4; // fragmentation needed and DF set
        icmp[2] = 0; icmp[3] = 0;
        icmp[4] = 0; icmp[5] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(icmp[6..], (ushort)mtu);
        offending[..quote].CopyTo(icmp[8..]);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], InternetChecksum.Compute(icmp));
        return total;
    }

    /// <summary>Writes an IPv6 packet carrying ICMPv6 packet-too-big to the inner source; returns its length.</summary>
    public static int WriteIpv6(ReadOnlySpan<byte> offending, int mtu, Span<byte> reply)
    {
        int quote = Math.Min(offending.Length, MaxIcmpv6 - Ipv6Header.Length - 8);
        int icmpLength = 8 + quote;
        int total = Ipv6Header.Length + icmpLength;
        if (reply.Length < total) return 0;
        var ip = new Ipv6Header
        {
            PayloadLength = (ushort)icmpLength, NextHeader = 58, HopLimit = 64,
            SourceAddress = BinaryPrimitives.ReadUInt128BigEndian(offending[24..]),
            DestinationAddress = BinaryPrimitives.ReadUInt128BigEndian(offending[8..]),
        };
        ip.Write(reply);
        Span<byte> icmp = reply[Ipv6Header.Length..total];
        icmp[0] = 2; // packet too big
        icmp[1] = 0;
        icmp[2] = 0; icmp[3] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(icmp[4..], (uint)mtu);
        offending[..quote].CopyTo(icmp[8..]);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], InternetChecksum.Finish(InternetChecksum.Sum(icmp, ip.PseudoHeaderSum(58, icmpLength))));
        return total;
    }
}
