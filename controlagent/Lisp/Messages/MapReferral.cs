namespace FastXtr.Lisp.Messages;

/// <summary>What a DDT node or DDT Map-Server tells the Map-Resolver about an EID-prefix (RFC 8111 §6.4, "ACT").</summary>
public enum MapReferralAction : byte
{
    /// <summary>The referral set are DDT nodes, more specific in the tree: ask one of them.</summary>
    NodeReferral = 0,
    /// <summary>The referral set are DDT Map-Servers for the prefix: ask one of them.</summary>
    MsReferral = 1,
    /// <summary>A DDT Map-Server has the EID registered and forwarded (or answered) the request.</summary>
    MsAck = 2,
    /// <summary>A DDT Map-Server is authoritative for the space but nothing is registered for the EID.</summary>
    MsNotRegistered = 3,
    /// <summary>The EID falls in space the node is authoritative for but has not delegated.</summary>
    DelegationHole = 4,
    /// <summary>The node is not authoritative for the EID (a misconfigured or stale referral).</summary>
    NotAuthoritative = 5,
}

/// <summary>
/// One record of a Map-Referral (RFC 8111 §6.4): a mapping record whose locators are the referral set.
/// <code>
///  |                          Record TTL                           |
///  | Referral Count| EID mask-len  | ACT |A|I|     Reserved        |
///  |SigCnt |   Map Version Number  |            EID-AFI            |
///  |                          EID-Prefix ...                       |
///  |    Priority   |    Weight     |  M Priority   |   M Weight    |   (Referral Count times)
///  |        Unused Flags         |R|         Loc/LCAF-AFI          |
///  |                             Locator ...                       |
///  |                  Sig sections (SigCnt times)                  |
/// </code>
/// A: the sender is authoritative for the prefix; I: the referral set is incomplete (not every node or Map-Server
/// that serves the prefix is listed), so the Map-Resolver caches the record for a short time only. Referral set
/// entries reuse <see cref="LocatorRecord"/> (its L and p flags are unused here and sent as 0). A sig section
/// (§6.4.1) is a 20-byte head — original Record TTL, signature expiration and inception, key tag, Sig Length,
/// algorithm — and Sig Length bytes of signature; they are carried as they came and re-sent unchanged.
/// </summary>
public sealed class ReferralRecord
{
    public const uint TtlInfinite = MappingRecord.TtlInfinite;
    private const ushort FlagAuthoritative = 0x1000, FlagIncomplete = 0x0800;
    private const int SigHeadLength = 20;

    public uint TtlMinutes { get; set; }
    public byte EidMaskLength { get; set; }
    public MapReferralAction Action { get; set; }
    public bool Authoritative { get; set; }
    public bool Incomplete { get; set; }
    public ushort MapVersion { get; set; }
    public LispAddress EidPrefix { get; set; } = new();
    public RecycledList<LocatorRecord> Referrals { get; } = new();

    private readonly List<byte[]> _signatures = [];

    /// <summary>The record's sig sections, each whole (head and signature), as received.</summary>
    public IReadOnlyList<byte[]> Signatures => _signatures;

    public void AddSignature(ReadOnlySpan<byte> section)
    {
        if (section.Length < SigHeadLength || System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(section[14..]) != section.Length - SigHeadLength)
            throw new ArgumentException($"a sig section is a {SigHeadLength}-byte head whose Sig Length counts the bytes after it", nameof(section));
        _signatures.Add(section.ToArray());
    }

    internal bool TryRead(ref LispReader r, int depth)
    {
        int start = r.Position;
        if (!r.TryReadUInt32(out uint ttl) || !r.TryReadUInt8(out byte referralCount) || !r.TryReadUInt8(out byte maskLength)
            || !r.TryReadUInt16(out ushort actFlags) || !r.TryReadUInt16(out ushort version))
            return false;
        TtlMinutes = ttl;
        EidMaskLength = maskLength;
        Action = (MapReferralAction)(actFlags >> 13);
        Authoritative = (actFlags & FlagAuthoritative) != 0;
        Incomplete = (actFlags & FlagIncomplete) != 0;
        int sigCount = version >> 12;
        MapVersion = (ushort)(version & MappingRecord.MaxMapVersion);
        if (!LispAddress.TryRead(ref r, EidPrefix, depth)) return false;
        int bits = EidPrefix.AddressBits;
        if (bits >= 0 && maskLength > bits)
            return r.Fail(LispFormatError.BadMaskLength, start + 5, $"EID mask-len {maskLength} on a {bits}-bit address");
        Referrals.Clear();
        for (int i = 0; i < referralCount; i++)
        {
            if (!Referrals.AddSlot().TryRead(ref r, depth)) return false;
        }
        _signatures.Clear();
        for (int i = 0; i < sigCount; i++)
        {
            int at = r.Position;
            if (!r.TryReadBytes(SigHeadLength, out var head)) return false;
            int length = System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(head[14..]);
            if (!r.TryReadBytes(length, out _)) return false;
            _signatures.Add(r.Buffer.Slice(at, SigHeadLength + length).ToArray());
        }
        return true;
    }

    internal void Write(ref LispWriter w)
    {
        if (Referrals.Count > byte.MaxValue) throw new LispFormatException(LispFormatError.TooManyItems, 0, "more than 255 referrals in one record");
        if (_signatures.Count > 15) throw new LispFormatException(LispFormatError.TooManyItems, 0, "more than 15 sig sections in one record");
        w.WriteUInt32(TtlMinutes);
        w.WriteUInt8((byte)Referrals.Count);
        w.WriteUInt8(EidMaskLength);
        w.WriteUInt16((ushort)(((int)Action & 0x7) << 13 | (Authoritative ? FlagAuthoritative : 0) | (Incomplete ? FlagIncomplete : 0)));
        w.WriteUInt16((ushort)(_signatures.Count << 12 | (MapVersion & MappingRecord.MaxMapVersion)));
        EidPrefix.Write(ref w);
        for (int i = 0; i < Referrals.Count; i++) Referrals[i].Write(ref w);
        foreach (var s in _signatures) w.WriteBytes(s);
    }

    public bool ContentEquals(ReferralRecord o)
    {
        if (TtlMinutes != o.TtlMinutes || EidMaskLength != o.EidMaskLength || Action != o.Action || Authoritative != o.Authoritative
            || Incomplete != o.Incomplete || MapVersion != o.MapVersion || !EidPrefix.ContentEquals(o.EidPrefix)
            || Referrals.Count != o.Referrals.Count || _signatures.Count != o._signatures.Count)
            return false;
        for (int i = 0; i < Referrals.Count; i++)
            if (!Referrals[i].ContentEquals(o.Referrals[i])) return false;
        for (int i = 0; i < _signatures.Count; i++)
            if (!_signatures[i].AsSpan().SequenceEqual(o._signatures[i])) return false;
        return true;
    }

    public override string ToString() =>
        $"{EidPrefix}/{EidMaskLength} ttl={TtlMinutes}m {ActionName(Action)}"
        + (Referrals.Count > 0 ? $" [{string.Join("; ", Referrals)}]" : "")
        + (Authoritative ? " auth" : "") + (Incomplete ? " incomplete" : "") + (MapVersion != 0 ? $" ver={MapVersion}" : "")
        + (_signatures.Count > 0 ? $" sigs={_signatures.Count}" : "");

    /// <summary>The action as RFC 8111 writes it (NODE-REFERRAL, MS-ACK, ...).</summary>
    public static string ActionName(MapReferralAction action) => action switch
    {
        MapReferralAction.NodeReferral => "NODE-REFERRAL",
        MapReferralAction.MsReferral => "MS-REFERRAL",
        MapReferralAction.MsAck => "MS-ACK",
        MapReferralAction.MsNotRegistered => "MS-NOT-REGISTERED",
        MapReferralAction.DelegationHole => "DELEGATION-HOLE",
        MapReferralAction.NotAuthoritative => "NOT-AUTHORITATIVE",
        _ => $"action-{(int)action}",
    };
}

/// <summary>
/// Map-Referral (RFC 8111 §6.4): a DDT node's or DDT Map-Server's answer to a DDT Map-Request (an ECM with the D
/// bit set, <see cref="EncapsulatedControlMessage.DdtOriginated"/>), echoing its nonce.
/// <code>
///  |Type=6 |                Reserved               | Record Count  |
///  |                         Nonce . . .                           |
///  |                         . . . Nonce                           |
///  |                      Referral records ...                     |
/// </code>
/// </summary>
public sealed class MapReferral
{
    public ulong Nonce { get; set; }
    public RecycledList<ReferralRecord> Records { get; } = new();

    public LispDecodeResult TryDecode(ReadOnlySpan<byte> message)
    {
        var r = new LispReader(message);
        if (!r.TryReadUInt8(out byte b0) || !r.TryReadUInt16(out _) || !r.TryReadUInt8(out byte count) || !r.TryReadUInt64(out ulong nonce))
            return r.Result;
        if (b0 >> 4 != (int)LispMessageType.MapReferral)
            return new LispDecodeResult(LispFormatError.UnexpectedMessageType, 0, $"type {b0 >> 4} is not a Map-Referral");
        Nonce = nonce;
        Records.Clear();
        for (int i = 0; i < count; i++)
        {
            if (!Records.AddSlot().TryRead(ref r, 0)) return r.Result;
        }
        return r.Remaining == 0 ? LispDecodeResult.Success : new LispDecodeResult(LispFormatError.TrailingBytes, r.Position, $"{r.Remaining} bytes after the last record");
    }

    public void Decode(ReadOnlySpan<byte> message) => TryDecode(message).ThrowIfFailed();

    public int TryEncode(Span<byte> destination)
    {
        if (Records.Count > byte.MaxValue) throw new LispFormatException(LispFormatError.TooManyItems, 3, "more than 255 records");
        var w = new LispWriter(destination);
        w.WriteUInt8((int)LispMessageType.MapReferral << 4);
        w.WriteUInt16(0);
        w.WriteUInt8((byte)Records.Count);
        w.WriteUInt64(Nonce);
        for (int i = 0; i < Records.Count; i++) Records[i].Write(ref w);
        return w.Overflowed ? -1 : w.Position;
    }

    public byte[] ToArray() => LispMessage.EncodeToArray(TryEncode);

    public override string ToString() => $"Map-Referral nonce=0x{Nonce:x16} records=[{string.Join(" | ", Records)}]";
}
