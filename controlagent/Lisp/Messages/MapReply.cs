namespace FastXtr.Lisp.Messages;

/// <summary>
/// Map-Reply (RFC 9301 §5.4).
/// <code>
///  |Type=2 |P|E|S|          Reserved               | Record Count  |
///  |                         Nonce . . .                           |
///  |                         . . . Nonce                           |
///  |                   Mapping records ...                         |
/// </code>
/// P: a reply to an RLOC-probe; E: the ETR echoes nonces (RFC 9300 §10.1); S: LISP-SEC data follows the
/// records (RFC 9303; carried opaquely here). A record with no locators is a negative Map-Reply whose ACT
/// (actions 0–5) tells the ITR what to do.
/// </summary>
public sealed class MapReply
{
    public bool Probe { get; set; }
    public bool EchoNonceCapable { get; set; }
    public bool Security { get; set; }
    public ulong Nonce { get; set; }
    public RecycledList<MappingRecord> Records { get; } = new();

    private byte[] _securityData = [];
    private int _securityLength;

    /// <summary>The LISP-SEC bytes after the records when S is set (RFC 9303 §6.6), uninterpreted.</summary>
    public ReadOnlySpan<byte> SecurityData => _securityData.AsSpan(0, _securityLength);

    public void SetSecurityData(ReadOnlySpan<byte> data)
    {
        if (_securityData.Length < data.Length) _securityData = new byte[data.Length];
        data.CopyTo(_securityData);
        _securityLength = data.Length;
    }

    /// <summary>A negative Map-Reply for one prefix (RFC 9301 §8.1).</summary>
    public static MapReply Negative(ulong nonce, LispAddress eidPrefix, byte maskLength, MapReplyAction action, uint ttlMinutes, bool authoritative = true)
    {
        var reply = new MapReply { Nonce = nonce };
        reply.Records.Add(new MappingRecord { EidPrefix = eidPrefix, EidMaskLength = maskLength, Action = action, TtlMinutes = ttlMinutes, Authoritative = authoritative });
        return reply;
    }

    public LispDecodeResult TryDecode(ReadOnlySpan<byte> message)
    {
        var r = new LispReader(message);
        if (!r.TryReadUInt8(out byte b0) || !r.TryReadUInt16(out _) || !r.TryReadUInt8(out byte count) || !r.TryReadUInt64(out ulong nonce))
            return r.Result;
        if (b0 >> 4 != (int)LispMessageType.MapReply)
            return new LispDecodeResult(LispFormatError.UnexpectedMessageType, 0, $"type {b0 >> 4} is not a Map-Reply");
        Probe = (b0 & 0x08) != 0;
        EchoNonceCapable = (b0 & 0x04) != 0;
        Security = (b0 & 0x02) != 0;
        Nonce = nonce;
        Records.Clear();
        for (int i = 0; i < count; i++)
        {
            if (!Records.AddSlot().TryRead(ref r, 0)) return r.Result;
        }
        _securityLength = 0;
        if (Security)
        {
            r.TryReadBytes(r.Remaining, out var sec);
            SetSecurityData(sec);
        }
        return r.Remaining == 0 ? LispDecodeResult.Success : new LispDecodeResult(LispFormatError.TrailingBytes, r.Position, $"{r.Remaining} bytes after the last record");
    }

    public void Decode(ReadOnlySpan<byte> message) => TryDecode(message).ThrowIfFailed();

    public int TryEncode(Span<byte> destination)
    {
        if (Records.Count > byte.MaxValue) throw new LispFormatException(LispFormatError.TooManyItems, 3, "more than 255 records");
        var w = new LispWriter(destination);
        w.WriteUInt8((byte)((int)LispMessageType.MapReply << 4 | (Probe ? 0x08 : 0) | (EchoNonceCapable ? 0x04 : 0) | (Security ? 0x02 : 0)));
        w.WriteUInt16(0);
        w.WriteUInt8((byte)Records.Count);
        w.WriteUInt64(Nonce);
        for (int i = 0; i < Records.Count; i++) Records[i].Write(ref w);
        if (Security) w.WriteBytes(SecurityData);
        return w.Overflowed ? -1 : w.Position;
    }

    public byte[] ToArray() => LispMessage.EncodeToArray(TryEncode);

    public override string ToString() =>
        $"Map-Reply nonce=0x{Nonce:x16}" + (Probe ? " probe" : "") + (EchoNonceCapable ? " echo-nonce" : "") + $" records=[{string.Join(" | ", Records)}]";
}
