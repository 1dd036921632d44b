namespace FastXtr.Lisp.Messages;

/// <summary>
/// An EID-to-RLOC mapping record, as carried by Map-Reply, Map-Register, Map-Notify and the Map-Reply record
/// of a Map-Request (RFC 9301 §5.4).
/// <code>
///  |                          Record TTL                           |
///  | Locator Count | EID mask-len  | ACT |A|      Reserved         |
///  | Rsvd  |  Map-Version Number   |       EID-Prefix-AFI          |
///  |                          EID-Prefix                           |
///  |                     Locator records ...                       |
/// </code>
/// Record TTL is in minutes (0xFFFFFFFF: no timeout). A record with no locators is a negative mapping whose
/// ACT says what to do with packets for the prefix.
/// </summary>
public sealed class MappingRecord
{
    public const uint TtlInfinite = 0xFFFFFFFF;
    public const ushort MaxMapVersion = 0xFFF;
    public const int MinimumLength = 12;

    public uint TtlMinutes { get; set; }
    public byte EidMaskLength { get; set; }
    public MapReplyAction Action { get; set; }
    public bool Authoritative { get; set; }
    public ushort MapVersion { get; set; }

    /// <summary>The EID-prefix, usually an Instance-ID LCAF around an IPv4/IPv6 address (RFC 8060 §4.1).</summary>
    public LispAddress EidPrefix { get; set; } = new();

    public RecycledList<LocatorRecord> Locators { get; } = new();

    public bool IsNegative => Locators.Count == 0;

    internal bool TryRead(ref LispReader r, int depth)
    {
        int start = r.Position;
        if (!r.TryReadUInt32(out uint ttl) || !r.TryReadUInt8(out byte locatorCount) || !r.TryReadUInt8(out byte maskLength)
            || !r.TryReadUInt16(out ushort actFlags) || !r.TryReadUInt16(out ushort version))
            return false;
        TtlMinutes = ttl;
        EidMaskLength = maskLength;
        Action = (MapReplyAction)(actFlags >> 13);
        Authoritative = (actFlags & 0x1000) != 0;
        MapVersion = (ushort)(version & MaxMapVersion);
        if (!LispAddress.TryRead(ref r, EidPrefix, depth)) return false;
        int bits = EidPrefix.AddressBits;
        if (bits >= 0 && maskLength > bits)
            return r.Fail(LispFormatError.BadMaskLength, start + 5, $"EID mask-len {maskLength} on a {bits}-bit address");
        Locators.Clear();
        for (int i = 0; i < locatorCount; i++)
        {
            if (!Locators.AddSlot().TryRead(ref r, depth)) return false;
        }
        return true;
    }

    internal void Write(ref LispWriter w)
    {
        if (Locators.Count > byte.MaxValue) throw new LispFormatException(LispFormatError.TooManyItems, 0, "more than 255 locators in one record");
        w.WriteUInt32(TtlMinutes);
        w.WriteUInt8((byte)Locators.Count);
        w.WriteUInt8(EidMaskLength);
        w.WriteUInt16((ushort)(((int)Action & 0x7) << 13 | (Authoritative ? 0x1000 : 0)));
        w.WriteUInt16((ushort)(MapVersion & MaxMapVersion));
        EidPrefix.Write(ref w);
        for (int i = 0; i < Locators.Count; i++) Locators[i].Write(ref w);
    }

    public bool ContentEquals(MappingRecord o)
    {
        if (TtlMinutes != o.TtlMinutes || EidMaskLength != o.EidMaskLength || Action != o.Action || Authoritative != o.Authoritative
            || MapVersion != o.MapVersion || !EidPrefix.ContentEquals(o.EidPrefix) || Locators.Count != o.Locators.Count)
            return false;
        for (int i = 0; i < Locators.Count; i++)
            if (!Locators[i].ContentEquals(o.Locators[i])) return false;
        return true;
    }

    public override string ToString() =>
        $"{EidPrefix}/{EidMaskLength} ttl={TtlMinutes}m" + (IsNegative ? $" negative action={Action}" : $" {string.Join("; ", Locators)}")
        + (Authoritative ? " auth" : "") + (MapVersion != 0 ? $" ver={MapVersion}" : "");
}
