using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace FastXtr.Packets;

/// <summary>The address family of an EID (and of a locator): the numbers are the IP versions.</summary>
public enum EidFamily : byte
{
    Ipv4 = 4,
    Ipv6 = 6,
}

/// <summary>
/// Prefix arithmetic on addresses held as host-order numbers (IPv4 in the low 32 bits of a UInt128): the one
/// definition the map-cache, the Map-Server's store, the agent's database and the CLI share.
/// </summary>
public static class EidPrefix
{
    public static int MaxLength(EidFamily family) => family == EidFamily.Ipv4 ? 32 : 128;

    /// <summary>The address with every bit after the first <paramref name="length"/> of its family cleared.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static UInt128 Mask(UInt128 address, EidFamily family, int length)
    {
        if (family == EidFamily.Ipv4)
        {
            // 32-bit arithmetic: the map-cache lookup's hot path (UInt128 shifts cost several instructions each).
            if (length >= 32) return (uint)address;
            return length <= 0 ? 0 : (uint)address & (uint.MaxValue << (32 - length));
        }
        if (length >= 128) return address;
        if (length <= 0) return 0;
        ulong hi = (ulong)(address >> 64), lo = (ulong)address;
        if (length <= 64) return new UInt128(hi & (ulong.MaxValue << (64 - length)), 0);
        return new UInt128(hi, lo & (ulong.MaxValue << (128 - length)));
    }

    /// <summary>Parses "10.1.0.0/24" or "2001:db8::/48" (a bare address is a host prefix).</summary>
    public static (EidFamily Family, UInt128 Prefix, int Length) Parse(string text, string option)
    {
        string[] parts = text.Split('/');
        if (parts.Length > 2 || !IPAddress.TryParse(parts[0], out var a))
            throw new FormatException($"{option} '{text}': expected a prefix such as 10.1.0.0/24 or 2001:db8::/48");
        var family = a.AddressFamily == AddressFamily.InterNetwork ? EidFamily.Ipv4 : EidFamily.Ipv6;
        int max = MaxLength(family);
        int length = max;
        if (parts.Length == 2 && (!int.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out length) || length > max))
            throw new FormatException($"{option} '{text}': the prefix length must be 0 .. {max}");
        UInt128 value = family == EidFamily.Ipv4 ? Ipv4Header.ToUInt32(a) : Ipv6Header.ToUInt128(a);
        return (family, Mask(value, family, length), length);
    }

    /// <summary>The address of a family given as a host-order number (IPv4 in the low 32 bits).</summary>
    public static System.Net.IPAddress ToAddress(EidFamily family, UInt128 value) =>
        family == EidFamily.Ipv4 ? Ipv4Header.ToAddress((uint)value) : Ipv6Header.ToAddress(value);

    /// <summary>The address as text ("10.1.0.1", "2001:db8::1").</summary>
    public static string Format(EidFamily family, UInt128 value) => ToAddress(family, value).ToString();

    /// <summary>
    /// Whether an address can be an RLOC of this xTR (<c>--rloc-addr</c>, the agent's <c>rloc-addr</c>): unicast, not
    /// unspecified, not IPv4-mapped (give the IPv4 address itself), not IPv6 link-local or scoped (a raw send would
    /// need the interface).
    /// </summary>
    public static bool IsUsableRloc(System.Net.IPAddress a) =>
        !a.IsIPv4MappedToIPv6 && !a.IsIPv6LinkLocal && !a.Equals(System.Net.IPAddress.Any) && !a.Equals(System.Net.IPAddress.IPv6Any)
        && !(a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && a.ScopeId != 0);
}
