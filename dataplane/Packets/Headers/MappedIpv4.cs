namespace FastXtr.Packets;

/// <summary>
/// An IPv4 address inside the 128-bit numbers that carry an address of either family (an outer source, a solicit
/// record's ITR): the IPv4-mapped form ::ffff:a.b.c.d of RFC 4291 §2.5.5.2, which no IPv6 RLOC can be (RFC 4291
/// reserves it for this, and an IPv6 packet never carries it on the wire, RFC 4038 §4.2).
/// </summary>
public static class MappedIpv4
{
    private const uint Marker = 0xFFFF;

    public static UInt128 From(uint ipv4HostOrder) => ((UInt128)Marker << 32) | ipv4HostOrder;

    public static bool IsMapped(UInt128 address) => (address >> 32) == Marker;

    public static uint Ipv4Of(UInt128 address) => (uint)address;

    /// <summary>An address of either family as one 128-bit number: IPv4 (also written IPv4-mapped) in its mapped form.</summary>
    public static UInt128 FromAddress(System.Net.IPAddress address) =>
        address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? From(Ipv4Header.ToUInt32(address))
        : address.IsIPv4MappedToIPv6 ? From(Ipv4Header.ToUInt32(address.MapToIPv4())) : Ipv6Header.ToUInt128(address);

    /// <summary>The address a 128-bit number of either family stands for: IPv4 when mapped, else IPv6.</summary>
    public static System.Net.IPAddress ToAddress(UInt128 address) =>
        IsMapped(address) ? Ipv4Header.ToAddress(Ipv4Of(address)) : Ipv6Header.ToAddress(address);
}
