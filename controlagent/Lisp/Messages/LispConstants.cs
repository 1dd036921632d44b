namespace FastXtr.Lisp.Messages;

/// <summary>LISP control-message types (RFC 9301 §5.1, IANA "LISP Packet Types").</summary>
public enum LispMessageType : byte
{
    Reserved = 0,
    MapRequest = 1,
    MapReply = 2,
    MapRegister = 3,
    MapNotify = 4,
    MapNotifyAck = 5,
    MapReferral = 6,
    /// <summary>Info-Request, and Info-Reply with the R bit (draft-ietf-lisp-nat-traversal §5: NAT discovery).</summary>
    InfoRequest = 7,
    EncapsulatedControlMessage = 8,
}

/// <summary>Address Family Identifiers used by LISP (IANA "Address Family Numbers"; RFC 8060 for LCAF).</summary>
public static class Afi
{
    /// <summary>No address (RFC 9301 §5.2: an absent Source-EID; RFC 8060: the trailing AFI of a JSON LCAF).</summary>
    public const ushort None = 0;
    public const ushort Ipv4 = 1;
    public const ushort Ipv6 = 2;
    /// <summary>IEEE 802 (the IANA number some implementations use for a MAC address).</summary>
    public const ushort Ieee802 = 6;
    /// <summary>Distinguished Name: a NUL-terminated ASCII string (RFC 8060 §3, RFC 9735).</summary>
    public const ushort DistinguishedName = 17;
    /// <summary>The LISP Canonical Address Format (RFC 8060 §3).</summary>
    public const ushort Lcaf = 16387;
    /// <summary>48-bit MAC address (IANA).</summary>
    public const ushort Mac = 16389;
}

/// <summary>LCAF types (RFC 8060 §3 and the IANA "LISP LCAF Type" registry).</summary>
public static class LcafType
{
    public const byte Null = 0;
    public const byte AfiList = 1;
    public const byte InstanceId = 2;
    public const byte AsNumber = 3;
    public const byte ApplicationData = 4;
    public const byte GeoCoordinates = 5;
    public const byte OpaqueKey = 6;
    public const byte NatTraversal = 7;
    public const byte NonceLocator = 8;
    public const byte MulticastInfo = 9;
    public const byte ExplicitLocatorPath = 10;
    public const byte SecurityKey = 11;
    public const byte SourceDestKey = 12;
    public const byte ReplicationListEntry = 13;
    public const byte Json = 14;
    public const byte KeyValueAddressPair = 15;
    public const byte EncapsulationFormat = 16;
}

/// <summary>Authentication algorithms of Map-Register/Map-Notify (RFC 9301 §5.6, "Algorithm ID").</summary>
public enum AuthenticationAlgorithm : byte
{
    None = 0,
    /// <summary>HMAC-SHA-1-96 in the RFC's name; deployed implementations send the full 20-byte digest.</summary>
    HmacSha1 = 1,
    /// <summary>HMAC-SHA-256-128 in the RFC's name; deployed implementations send the full 32-byte digest.</summary>
    HmacSha256 = 2,
}

public static class LispPorts
{
    /// <summary>The LISP data port (RFC 9300 §5.1).</summary>
    public const ushort Data = 4341;
    /// <summary>The LISP control port (RFC 9301 §5).</summary>
    public const ushort Control = 4342;
}

/// <summary>
/// Map-Versions (RFC 9302 §3): 12-bit numbers, 0 the Null Map-Version ("no version"), 1..4095 compared in serial
/// arithmetic: V1 is newer than V2 when (V1 &gt; V2 and V1 − V2 ≤ 2^11) or (V2 &gt; V1 and V2 − V1 &gt; 2^11).
/// </summary>
public static class MapVersioning
{
    public const ushort Null = 0;
    public const ushort Max = 4095;
    private const int Half = 2048;

    /// <summary>
    /// How long a map-version accepted from an xTR for a prefix (or the version of its withdrawal) stands against an
    /// older one arriving later: two Map-Registers of one xTR reordered on the wire, or a delayed retransmission. Past
    /// it, an older version is taken as the xTR's restart and accepted.
    /// </summary>
    public static readonly TimeSpan ReorderWindow = TimeSpan.FromSeconds(10);

    /// <summary>True when <paramref name="a"/> is newer than <paramref name="b"/>; never for the Null Map-Version.</summary>
    public static bool IsNewer(ushort a, ushort b)
    {
        if (a == Null || b == Null || a == b) return false;
        return a > b ? a - b <= Half : b - a > Half;
    }
}
