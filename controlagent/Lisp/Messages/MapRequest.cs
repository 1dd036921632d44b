namespace FastXtr.Lisp.Messages;

/// <summary>
/// Map-Request (RFC 9301 §5.2; the I bit, N bit and xTR-ID/Site-ID from RFC 9437 §4).
/// <code>
///  |Type=1 |A|M|P|S|p|s|R|I|  Rsvd   |L|D|   IRC   | Record Count  |
///  |                         Nonce . . .                           |
///  |                         . . . Nonce                           |
///  |         Source-EID-AFI        |   Source EID Address  ...     |
///  |         ITR-RLOC-AFI 1        |    ITR-RLOC Address 1  ...    |
///  |                              ...                              |
///  |         ITR-RLOC-AFI n        |    ITR-RLOC Address n  ...    |
///  |N|   Reserved  | EID mask-len  |        EID-Prefix-AFI         |  (per record)
///  |                       EID-Prefix  ...                         |
///  |                   Map-Reply Record  ...                       |  (when M)
///  |                     xTR-ID (128 bits)                         |  (when I)
///  |                     Site-ID (64 bits)                         |  (when I)
/// </code>
/// IRC is the number of ITR-RLOCs minus one. A: authoritative; M: a Map-Reply record follows; P: RLOC-probe;
/// S: Solicit-Map-Request; p: sent by a PITR; s: SMR-invoked; R: the bit RFC 9301 leaves reserved (the mobile-node
/// bit of older drafts), kept to pass on; I: xTR-ID present; L: to a local xTR; D: do not send a Map-Reply.
/// N (per EID record): the requester subscribes to the record (RFC 9437).
/// The Source-EID may carry agent constraints in an AFI-List (CONTEXT-EXTENSION.md §2).
/// </summary>
public sealed class MapRequest
{
    public const int MaxItrRlocs = 32;

    public bool Authoritative { get; set; }
    public bool MapDataPresent { get; set; }
    public bool Probe { get; set; }
    public bool SolicitMapRequest { get; set; }
    public bool Pitr { get; set; }
    public bool SmrInvoked { get; set; }
    public bool ReservedR { get; set; }
    public bool XtrIdPresent { get; set; }
    public bool LocalXtr { get; set; }
    public bool DontMapReply { get; set; }
    public ulong Nonce { get; set; }

    public LispAddress SourceEid { get; set; } = LispAddress.None();
    public RecycledList<LispAddress> ItrRlocs { get; } = new();
    public RecycledList<MapRequestRecord> Records { get; } = new();

    /// <summary>The requester's own mapping, present when <see cref="MapDataPresent"/> (RFC 9301 §5.2).</summary>
    public MappingRecord MapReplyRecord { get; set; } = new();

    public UInt128 XtrId { get; set; }
    public ulong SiteId { get; set; }

    public LispDecodeResult TryDecode(ReadOnlySpan<byte> message)
    {
        var r = new LispReader(message);
        if (!r.TryReadUInt8(out byte b0) || !r.TryReadUInt8(out byte b1) || !r.TryReadUInt8(out byte b2) || !r.TryReadUInt8(out byte recordCount))
            return r.Result;
        if (b0 >> 4 != (int)LispMessageType.MapRequest)
            return new LispDecodeResult(LispFormatError.UnexpectedMessageType, 0, $"type {b0 >> 4} is not a Map-Request");
        Authoritative = (b0 & 0x08) != 0;
        MapDataPresent = (b0 & 0x04) != 0;
        Probe = (b0 & 0x02) != 0;
        SolicitMapRequest = (b0 & 0x01) != 0;
        Pitr = (b1 & 0x80) != 0;
        SmrInvoked = (b1 & 0x40) != 0;
        ReservedR = (b1 & 0x20) != 0;
        XtrIdPresent = (b1 & 0x10) != 0;
        LocalXtr = (b2 & 0x40) != 0;
        DontMapReply = (b2 & 0x20) != 0;
        int itrCount = (b2 & 0x1F) + 1;
        if (!r.TryReadUInt64(out ulong nonce)) return r.Result;
        Nonce = nonce;
        if (!LispAddress.TryRead(ref r, SourceEid)) return r.Result;
        ItrRlocs.Clear();
        for (int i = 0; i < itrCount; i++)
        {
            if (!LispAddress.TryRead(ref r, ItrRlocs.AddSlot())) return r.Result;
        }
        Records.Clear();
        for (int i = 0; i < recordCount; i++)
        {
            if (!Records.AddSlot().TryRead(ref r)) return r.Result;
        }
        if (MapDataPresent && !MapReplyRecord.TryRead(ref r, 0)) return r.Result;
        if (XtrIdPresent)
        {
            if (!r.TryReadUInt128(out UInt128 xtrId) || !r.TryReadUInt64(out ulong siteId)) return r.Result;
            XtrId = xtrId;
            SiteId = siteId;
        }
        return r.Remaining == 0 ? LispDecodeResult.Success : new LispDecodeResult(LispFormatError.TrailingBytes, r.Position, $"{r.Remaining} bytes after the last field");
    }

    public void Decode(ReadOnlySpan<byte> message) => TryDecode(message).ThrowIfFailed();

    /// <summary>Encodes into <paramref name="destination"/>; returns the bytes written, or -1 when it does not fit.</summary>
    public int TryEncode(Span<byte> destination)
    {
        if (ItrRlocs.Count is < 1 or > MaxItrRlocs) throw new LispFormatException(LispFormatError.InvalidField, 2, $"a Map-Request carries 1 to {MaxItrRlocs} ITR-RLOCs, not {ItrRlocs.Count}");
        if (Records.Count > byte.MaxValue) throw new LispFormatException(LispFormatError.TooManyItems, 3, "more than 255 EID records");
        var w = new LispWriter(destination);
        w.WriteUInt8((byte)((int)LispMessageType.MapRequest << 4 | (Authoritative ? 0x08 : 0) | (MapDataPresent ? 0x04 : 0) | (Probe ? 0x02 : 0) | (SolicitMapRequest ? 0x01 : 0)));
        w.WriteUInt8((byte)((Pitr ? 0x80 : 0) | (SmrInvoked ? 0x40 : 0) | (ReservedR ? 0x20 : 0) | (XtrIdPresent ? 0x10 : 0)));
        w.WriteUInt8((byte)((LocalXtr ? 0x40 : 0) | (DontMapReply ? 0x20 : 0) | (ItrRlocs.Count - 1)));
        w.WriteUInt8((byte)Records.Count);
        w.WriteUInt64(Nonce);
        SourceEid.Write(ref w);
        for (int i = 0; i < ItrRlocs.Count; i++) ItrRlocs[i].Write(ref w);
        for (int i = 0; i < Records.Count; i++) Records[i].Write(ref w);
        if (MapDataPresent) MapReplyRecord.Write(ref w);
        if (XtrIdPresent)
        {
            w.WriteUInt128(XtrId);
            w.WriteUInt64(SiteId);
        }
        return w.Overflowed ? -1 : w.Position;
    }

    public byte[] ToArray() => LispMessage.EncodeToArray(TryEncode);

    public override string ToString()
    {
        var flags = string.Concat(Authoritative ? "A" : "", MapDataPresent ? "M" : "", Probe ? "P" : "", SolicitMapRequest ? "S" : "",
            Pitr ? "p" : "", SmrInvoked ? "s" : "", XtrIdPresent ? "I" : "", LocalXtr ? "L" : "", DontMapReply ? "D" : "");
        return $"Map-Request nonce=0x{Nonce:x16} flags={(flags.Length == 0 ? "-" : flags)} source-eid={SourceEid} itr-rlocs=[{string.Join(", ", ItrRlocs)}] eids=[{string.Join(", ", Records)}]";
    }
}

/// <summary>An EID record of a Map-Request: the prefix asked for, and the RFC 9437 N (subscribe) bit.</summary>
public sealed class MapRequestRecord
{
    public bool Subscribe { get; set; }
    public byte EidMaskLength { get; set; }
    public LispAddress EidPrefix { get; set; } = new();

    public MapRequestRecord() { }

    public MapRequestRecord(LispAddress eidPrefix, byte maskLength, bool subscribe = false)
    {
        EidPrefix = eidPrefix;
        EidMaskLength = maskLength;
        Subscribe = subscribe;
    }

    internal bool TryRead(ref LispReader r)
    {
        int start = r.Position;
        if (!r.TryReadUInt8(out byte reserved) || !r.TryReadUInt8(out byte mask)) return false;
        Subscribe = (reserved & 0x80) != 0;
        EidMaskLength = mask;
        if (!LispAddress.TryRead(ref r, EidPrefix)) return false;
        int bits = EidPrefix.AddressBits;
        if (bits >= 0 && mask > bits) return r.Fail(LispFormatError.BadMaskLength, start + 1, $"EID mask-len {mask} on a {bits}-bit address");
        return true;
    }

    internal void Write(ref LispWriter w)
    {
        w.WriteUInt8((byte)(Subscribe ? 0x80 : 0));
        w.WriteUInt8(EidMaskLength);
        EidPrefix.Write(ref w);
    }

    public bool ContentEquals(MapRequestRecord o) => Subscribe == o.Subscribe && EidMaskLength == o.EidMaskLength && EidPrefix.ContentEquals(o.EidPrefix);

    public override string ToString() => $"{EidPrefix}/{EidMaskLength}" + (Subscribe ? " subscribe" : "");
}
