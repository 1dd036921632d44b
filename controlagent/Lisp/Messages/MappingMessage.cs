namespace FastXtr.Lisp.Messages;

/// <summary>
/// The body shared by Map-Register, Map-Notify and Map-Notify-Ack (RFC 9301 §5.6, §5.7): a nonce, the
/// authentication fields, mapping records, and an xTR-ID/Site-ID when the I bit is set.
/// <code>
///  |Type |  flags ...                                | Record Count  |
///  |                         Nonce . . .                           |
///  |                         . . . Nonce                           |
///  |    Key ID     | Algorithm ID  |  Authentication Data Length   |
///  ~                     Authentication Data                       ~
///  |                   Mapping records ...                         |
///  |                     xTR-ID (128 bits)                         |  (when I)
///  |                     Site-ID (64 bits)                         |  (when I)
/// </code>
/// RFC 9301 splits the 16-bit "Key ID" of RFC 6830 into Key ID and Algorithm ID; since we send Key ID 0, both
/// readings of our messages agree (see <see cref="MessageAuthentication"/>).
/// </summary>
public abstract class MappingMessage
{
    /// <summary>Offset of the Key ID byte: after the 4-byte first word and the 8-byte nonce.</summary>
    public const int KeyIdOffset = 12;
    public const int AuthenticationDataOffset = 16;
    public const int MaxAuthenticationDataLength = 64;

    private readonly byte[] _authData = new byte[MaxAuthenticationDataLength];
    private int _authLength;

    public ulong Nonce { get; set; }
    public byte KeyId { get; set; }
    public AuthenticationAlgorithm AlgorithmId { get; set; }
    public RecycledList<MappingRecord> Records { get; } = new();
    public bool XtrIdPresent { get; set; }
    public UInt128 XtrId { get; set; }
    public ulong SiteId { get; set; }

    public ReadOnlySpan<byte> AuthenticationData => _authData.AsSpan(0, _authLength);

    public void SetAuthenticationData(ReadOnlySpan<byte> data)
    {
        if (data.Length > MaxAuthenticationDataLength) throw new ArgumentException($"at most {MaxAuthenticationDataLength} bytes of authentication data", nameof(data));
        data.CopyTo(_authData);
        _authLength = data.Length;
    }

    protected abstract LispMessageType ExpectedType(byte typeNibble);
    protected abstract void ReadFlags(byte b0, byte b1, byte b2);
    protected abstract (byte B0, byte B1, byte B2) WriteFlags();

    public LispDecodeResult TryDecode(ReadOnlySpan<byte> message)
    {
        var r = new LispReader(message);
        if (!r.TryReadUInt8(out byte b0) || !r.TryReadUInt8(out byte b1) || !r.TryReadUInt8(out byte b2) || !r.TryReadUInt8(out byte count))
            return r.Result;
        if (ExpectedType((byte)(b0 >> 4)) == LispMessageType.Reserved)
            return new LispDecodeResult(LispFormatError.UnexpectedMessageType, 0, $"type {b0 >> 4} is not a {GetType().Name}");
        ReadFlags(b0, b1, b2);
        if (!r.TryReadUInt64(out ulong nonce) || !r.TryReadUInt8(out byte keyId) || !r.TryReadUInt8(out byte alg) || !r.TryReadUInt16(out ushort authLength))
            return r.Result;
        if (authLength > MaxAuthenticationDataLength)
            return new LispDecodeResult(LispFormatError.BadAuthenticationLength, 14, $"authentication data length {authLength} > {MaxAuthenticationDataLength}");
        if (!r.TryReadBytes(authLength, out var auth)) return r.Result;
        Nonce = nonce;
        KeyId = keyId;
        AlgorithmId = (AuthenticationAlgorithm)alg;
        SetAuthenticationData(auth);
        Records.Clear();
        for (int i = 0; i < count; i++)
        {
            if (!Records.AddSlot().TryRead(ref r, 0)) return r.Result;
        }
        if (XtrIdPresent)
        {
            if (!r.TryReadUInt128(out UInt128 xtrId) || !r.TryReadUInt64(out ulong siteId)) return r.Result;
            XtrId = xtrId;
            SiteId = siteId;
        }
        return r.Remaining == 0 ? LispDecodeResult.Success : new LispDecodeResult(LispFormatError.TrailingBytes, r.Position, $"{r.Remaining} bytes after the last field");
    }

    public void Decode(ReadOnlySpan<byte> message) => TryDecode(message).ThrowIfFailed();

    /// <summary>Encodes with the authentication data as it stands; returns the bytes written, or -1 when it does not fit.</summary>
    public int TryEncode(Span<byte> destination)
    {
        if (Records.Count > byte.MaxValue) throw new LispFormatException(LispFormatError.TooManyItems, 3, "more than 255 records");
        var w = new LispWriter(destination);
        var (b0, b1, b2) = WriteFlags();
        w.WriteUInt8(b0);
        w.WriteUInt8(b1);
        w.WriteUInt8(b2);
        w.WriteUInt8((byte)Records.Count);
        w.WriteUInt64(Nonce);
        w.WriteUInt8(KeyId);
        w.WriteUInt8((byte)AlgorithmId);
        w.WriteUInt16((ushort)_authLength);
        w.WriteBytes(AuthenticationData);
        for (int i = 0; i < Records.Count; i++) Records[i].Write(ref w);
        if (XtrIdPresent)
        {
            w.WriteUInt128(XtrId);
            w.WriteUInt64(SiteId);
        }
        return w.Overflowed ? -1 : w.Position;
    }

    /// <summary>
    /// Encodes and authenticates: the authentication field is sized for <see cref="AlgorithmId"/> (full-length
    /// digest), zeroed, and the HMAC over the whole message is written into it (RFC 9301 §5.6).
    /// </summary>
    public int TryEncodeSigned(Span<byte> destination, ReadOnlySpan<byte> key) => TryEncodeSigned(destination, key, null);

    /// <summary>As <see cref="TryEncodeSigned(Span{byte}, ReadOnlySpan{byte})"/> with a site key (its keyed HMAC state is kept per thread).</summary>
    public int TryEncodeSigned(Span<byte> destination, SiteKey key) => TryEncodeSigned(destination, key.Secret, key);

    /// <summary>
    /// Encodes with the authentication field sized for <see cref="AlgorithmId"/> (full-length digest) and zero: the
    /// form the HMAC is computed over, e.g. a template signed later per recipient.
    /// </summary>
    public int TryEncodeForSigning(Span<byte> destination)
    {
        Span<byte> zeros = stackalloc byte[MessageAuthentication.DigestLength(AlgorithmId)];
        zeros.Clear();
        SetAuthenticationData(zeros);
        return TryEncode(destination);
    }

    private int TryEncodeSigned(Span<byte> destination, ReadOnlySpan<byte> key, SiteKey? keyed)
    {
        int digestLength = MessageAuthentication.DigestLength(AlgorithmId);
        int n = TryEncodeForSigning(destination);
        if (n < 0) return -1;
        if (keyed is null) MessageAuthentication.Sign(destination[..n], AlgorithmId, key);
        else MessageAuthentication.Sign(destination[..n], AlgorithmId, keyed);
        SetAuthenticationData(destination.Slice(AuthenticationDataOffset, digestLength));
        return n;
    }

    public byte[] ToArray() => LispMessage.EncodeToArray(TryEncode);

    public byte[] ToSignedArray(ReadOnlySpan<byte> key) => ToSignedArray(key, null);

    /// <summary>As <see cref="ToSignedArray(ReadOnlySpan{byte})"/> with a site key (its keyed HMAC state is kept per thread).</summary>
    public byte[] ToSignedArray(SiteKey key) => ToSignedArray(key.Secret, key);

    private byte[] ToSignedArray(ReadOnlySpan<byte> key, SiteKey? keyed)
    {
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(LispMessage.MaxMessageLength);
        try
        {
            int n = TryEncodeSigned(buffer, key, keyed);
            if (n < 0) throw new LispFormatException(LispFormatError.DestinationTooSmall, 0, "message larger than a UDP datagram");
            return buffer.AsSpan(0, n).ToArray();
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    protected string BodyToString() =>
        $"nonce=0x{Nonce:x16} key-id={KeyId} alg={AlgorithmId} auth-len={_authLength}" + (XtrIdPresent ? $" xtr-id=0x{XtrId:x32} site-id={SiteId}" : "")
        + $" records=[{string.Join(" | ", Records)}]";
}

/// <summary>
/// Map-Register (RFC 9301 §5.6).
/// <code>
///  |Type=3 |P|S|I|        Reserved               |E|T|a|R|M| Record Count  |
/// </code>
/// P: proxy Map-Reply requested; S: LISP-SEC capable; I: xTR-ID/Site-ID present; E: EID-notify (from a
/// first-hop router); T: time registrations out by the Record TTL; a: merge registrations of several xTRs;
/// R: reserved, passed on; M: want-map-notify.
/// </summary>
public sealed class MapRegister : MappingMessage
{
    public bool ProxyMapReply { get; set; }
    public bool SecurityCapable { get; set; }
    public bool EidNotify { get; set; }
    public bool UseTtlForTimeout { get; set; }
    public bool MergeRequest { get; set; }
    public bool ReservedR { get; set; }
    public bool WantMapNotify { get; set; }

    protected override LispMessageType ExpectedType(byte typeNibble) => typeNibble == (byte)LispMessageType.MapRegister ? LispMessageType.MapRegister : LispMessageType.Reserved;

    protected override void ReadFlags(byte b0, byte b1, byte b2)
    {
        ProxyMapReply = (b0 & 0x08) != 0;
        SecurityCapable = (b0 & 0x04) != 0;
        XtrIdPresent = (b0 & 0x02) != 0;
        EidNotify = (b2 & 0x10) != 0;
        UseTtlForTimeout = (b2 & 0x08) != 0;
        MergeRequest = (b2 & 0x04) != 0;
        ReservedR = (b2 & 0x02) != 0;
        WantMapNotify = (b2 & 0x01) != 0;
    }

    protected override (byte B0, byte B1, byte B2) WriteFlags() => (
        (byte)((int)LispMessageType.MapRegister << 4 | (ProxyMapReply ? 0x08 : 0) | (SecurityCapable ? 0x04 : 0) | (XtrIdPresent ? 0x02 : 0)),
        0,
        (byte)((EidNotify ? 0x10 : 0) | (UseTtlForTimeout ? 0x08 : 0) | (MergeRequest ? 0x04 : 0) | (ReservedR ? 0x02 : 0) | (WantMapNotify ? 0x01 : 0)));

    public override string ToString()
    {
        var flags = string.Concat(ProxyMapReply ? "P" : "", SecurityCapable ? "S" : "", XtrIdPresent ? "I" : "", EidNotify ? "E" : "",
            UseTtlForTimeout ? "T" : "", MergeRequest ? "a" : "", WantMapNotify ? "M" : "");
        return $"Map-Register flags={(flags.Length == 0 ? "-" : flags)} " + BodyToString();
    }
}

/// <summary>
/// Map-Notify (type 4) and Map-Notify-Ack (type 5) (RFC 9301 §5.7; RFC 9437 uses both for publications).
/// <code>
///  |Type=4 |I|R|          Reserved                 | Record Count  |
/// </code>
/// I: xTR-ID/Site-ID present; R: sent to an RTR.
/// </summary>
public sealed class MapNotify : MappingMessage
{
    public MapNotify() { }

    public MapNotify(bool isAck) => IsAck = isAck;

    /// <summary>True for a Map-Notify-Ack (type 5).</summary>
    public bool IsAck { get; set; }
    public bool ToRtr { get; set; }

    public LispMessageType Type => IsAck ? LispMessageType.MapNotifyAck : LispMessageType.MapNotify;

    protected override LispMessageType ExpectedType(byte typeNibble)
    {
        switch (typeNibble)
        {
            case (byte)LispMessageType.MapNotify: IsAck = false; return LispMessageType.MapNotify;
            case (byte)LispMessageType.MapNotifyAck: IsAck = true; return LispMessageType.MapNotifyAck;
            default: return LispMessageType.Reserved;
        }
    }

    protected override void ReadFlags(byte b0, byte b1, byte b2)
    {
        XtrIdPresent = (b0 & 0x08) != 0;
        ToRtr = (b0 & 0x04) != 0;
    }

    protected override (byte B0, byte B1, byte B2) WriteFlags() =>
        ((byte)((int)Type << 4 | (XtrIdPresent ? 0x08 : 0) | (ToRtr ? 0x04 : 0)), 0, 0);

    public override string ToString() => (IsAck ? "Map-Notify-Ack " : "Map-Notify ") + BodyToString();
}
