

namespace FastXtr.Lisp.Messages;

/// <summary>
/// Between the codec's addresses and the (IID, family, value) form the map-cache, the registration store and the
/// agent's database use: one place for reading an EID out of an Instance-ID LCAF (or AFI-List) and for building one.
/// </summary>
public static class EidAddress
{
    /// <summary>The IID (0 without an Instance-ID LCAF), family and value of an IPv4/IPv6 EID; false for a name or MAC.</summary>
    public static bool TryRead(LispAddress address, out uint iid, out EidFamily family, out UInt128 value)
    {
        iid = address.InstanceIdOrNull ?? 0;
        var plain = address.PlainAddress;
        switch (plain.Kind)
        {
            case LispAddressKind.Ipv4: family = EidFamily.Ipv4; value = plain.Ipv4Value; return true;
            case LispAddressKind.Ipv6: family = EidFamily.Ipv6; value = plain.Ipv6Value; return true;
            default: family = default; value = 0; return false;
        }
    }

    public static LispAddress Plain(EidFamily family, UInt128 value) =>
        family == EidFamily.Ipv4 ? LispAddress.FromIpv4((uint)value) : LispAddress.FromIpv6(value);

    /// <summary>The EID inside an Instance-ID LCAF (RFC 8060 §4.1).</summary>
    public static LispAddress WithInstanceId(uint iid, EidFamily family, UInt128 value) =>
        LispAddress.WithInstanceId(iid, Plain(family, value));

    /// <summary>
    /// Writes an EID into an encode-only scratch address in place (no allocation): inside an Instance-ID LCAF when
    /// <paramref name="withInstanceId"/>, plain otherwise.
    /// </summary>
    public static void Assign(LispAddress into, uint iid, EidFamily family, UInt128 value, bool withInstanceId)
    {
        var plain = withInstanceId ? into.AssignInstanceId(iid) : into;
        plain.AssignIp(family == EidFamily.Ipv6, value);
    }
}
