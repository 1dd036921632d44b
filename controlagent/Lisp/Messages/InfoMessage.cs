namespace FastXtr.Lisp.Messages;

/// <summary>
/// Info-Request and Info-Reply (type 7; the R bit tells them apart), the NAT-traversal messages of
/// draft-ietf-lisp-nat-traversal §5 (the format draft-ermagan-lisp-nat-traversal defined and lispers.net, Cisco and
/// OpenOverlayRouter send): an xTR asks its Map-Server how its address and port look from outside, and the Map-Server
/// answers with what it saw and the RTRs to use.
/// <code>
///  |Type=7 |R|                 Reserved                              |
///  |                         Nonce (64)                              |
///  |      Key ID   |  Algorithm ID |  Authentication Data Length     |
///  ~                     Authentication Data                         ~
///  |                              TTL                                |
///  |   Reserved    | EID mask-len  |        EID-prefix-AFI           |
///  |                          EID-prefix                             |
///  Info-Request:  |   AFI = 0 (nothing follows)   |
///  Info-Reply:    |   AFI = 16387 | Rsvd1 | Flags | Type = 7 | Rsvd2 | Length |
///                 |   MS UDP Port Number  |  ETR UDP Port Number  |
///                 |   AFI | Global ETR RLOC | AFI | MS RLOC | AFI | Private ETR RLOC | (AFI | RTR RLOC)...
/// </code>
/// The first three words and the authentication field sit where a Map-Register's do, so the same HMAC over the
/// whole message (authentication data zeroed) signs both (<see cref="MessageAuthentication"/>, with the site's key).
/// TTL: minutes the requester may keep the RTR list. Unknown addresses are AFI 0 (the Private ETR RLOC a Map-Server
/// does not know).
/// </summary>
public sealed class InfoMessage
{
    public const int TtlOffset = MappingMessage.AuthenticationDataOffset;
    /// <summary>At most this many RTRs in a reply (a datagram holds more; no deployment lists this many).</summary>
    public const int MaxRtrs = 32;

    private readonly byte[] _authData = new byte[MappingMessage.MaxAuthenticationDataLength];
    private int _authLength;

    /// <summary>True for an Info-Reply (the R bit).</summary>
    public bool IsReply { get; set; }
    public ulong Nonce { get; set; }
    public byte KeyId { get; set; }
    public AuthenticationAlgorithm AlgorithmId { get; set; }
    public uint TtlMinutes { get; set; }
    public byte EidMaskLength { get; set; }
    /// <summary>The EID prefix the requester registers (an Instance-ID LCAF where it has one), which picks the site and key.</summary>
    public LispAddress EidPrefix { get; set; } = LispAddress.None();

    // Info-Reply only (the NAT-Traversal LCAF).
    public ushort MsPort { get; set; }
    /// <summary>The source port the Map-Server saw the Info-Request come from: the requester's port after translation.</summary>
    public ushort EtrPort { get; set; }
    /// <summary>The source address the Map-Server saw: the requester's address after translation.</summary>
    public LispAddress GlobalEtrRloc { get; set; } = LispAddress.None();
    public LispAddress MsRloc { get; set; } = LispAddress.None();
    public LispAddress PrivateEtrRloc { get; set; } = LispAddress.None();
    public List<LispAddress> Rtrs { get; } = [];

    public ReadOnlySpan<byte> AuthenticationData => _authData.AsSpan(0, _authLength);

    public void SetAuthenticationData(ReadOnlySpan<byte> data)
    {
        if (data.Length > MappingMessage.MaxAuthenticationDataLength) throw new ArgumentException($"at most {MappingMessage.MaxAuthenticationDataLength} bytes of authentication data", nameof(data));
        data.CopyTo(_authData);
        _authLength = data.Length;
    }

    public LispDecodeResult TryDecode(ReadOnlySpan<byte> message)
    {
        var r = new LispReader(message);
        if (!r.TryReadUInt32(out uint first)) return r.Result;
        if ((first >> 28) != (uint)LispMessageType.InfoRequest)
            return new LispDecodeResult(LispFormatError.UnexpectedMessageType, 0, $"type {first >> 28} is not an Info-Request or Info-Reply");
        IsReply = (first & 0x0800_0000) != 0;
        if (!r.TryReadUInt64(out ulong nonce) || !r.TryReadUInt8(out byte keyId) || !r.TryReadUInt8(out byte alg) || !r.TryReadUInt16(out ushort authLength))
            return r.Result;
        if (authLength > MappingMessage.MaxAuthenticationDataLength)
            return new LispDecodeResult(LispFormatError.BadAuthenticationLength, 14, $"authentication data length {authLength} > {MappingMessage.MaxAuthenticationDataLength}");
        if (!r.TryReadBytes(authLength, out var auth) || !r.TryReadUInt32(out uint ttl) || !r.TryReadUInt8(out _) || !r.TryReadUInt8(out byte maskLength))
            return r.Result;
        var eid = LispAddress.None();
        if (!LispAddress.TryRead(ref r, eid)) return r.Result;
        if (maskLength > eid.AddressBits)
            return new LispDecodeResult(LispFormatError.BadMaskLength, r.Position, $"EID mask-len {maskLength} for a {eid.AddressBits}-bit prefix");
        Nonce = nonce;
        KeyId = keyId;
        AlgorithmId = (AuthenticationAlgorithm)alg;
        SetAuthenticationData(auth);
        TtlMinutes = ttl;
        EidMaskLength = maskLength;
        EidPrefix = eid;
        Rtrs.Clear();
        (MsPort, EtrPort, GlobalEtrRloc, MsRloc, PrivateEtrRloc) = ((ushort)0, (ushort)0, LispAddress.None(), LispAddress.None(), LispAddress.None());
        int afiAt = r.Position;
        if (!r.TryReadUInt16(out ushort afi)) return r.Result;
        if (!IsReply)
        {
            // An Info-Request ends with AFI 0 and nothing after it.
            if (afi != Afi.None) return new LispDecodeResult(LispFormatError.InvalidField, afiAt, $"an Info-Request ends with AFI 0, not {afi}");
            return r.Remaining == 0 ? LispDecodeResult.Success : new LispDecodeResult(LispFormatError.TrailingBytes, r.Position, $"{r.Remaining} bytes after the last field");
        }
        if (afi != Afi.Lcaf) return new LispDecodeResult(LispFormatError.InvalidField, afiAt, $"an Info-Reply carries the NAT-Traversal LCAF (AFI {Afi.Lcaf}), not AFI {afi}");
        if (!r.TryReadUInt8(out _) || !r.TryReadUInt8(out _) || !r.TryReadUInt8(out byte type) || !r.TryReadUInt8(out _) || !r.TryReadUInt16(out ushort length))
            return r.Result;
        if (type != LcafType.NatTraversal) return new LispDecodeResult(LispFormatError.InvalidField, afiAt + 4, $"LCAF type {type} where the NAT-Traversal LCAF (7) belongs");
        int end = r.Position + length;
        if (length < 4 || end > message.Length) return new LispDecodeResult(LispFormatError.BadLcafLength, afiAt + 6, $"NAT-Traversal LCAF length {length}");
        if (!r.TryReadUInt16(out ushort msPort) || !r.TryReadUInt16(out ushort etrPort)) return r.Result;
        var addresses = new LispAddress[3];
        for (int i = 0; i < 3; i++)
        {
            addresses[i] = LispAddress.None();
            if (r.Position >= end) return new LispDecodeResult(LispFormatError.BadLcafLength, r.Position, "the NAT-Traversal LCAF ends before its Global ETR, MS and Private ETR RLOCs");
            if (!LispAddress.TryRead(ref r, addresses[i])) return r.Result;
        }
        while (r.Position < end)
        {
            if (Rtrs.Count == MaxRtrs) return new LispDecodeResult(LispFormatError.TooManyItems, r.Position, $"more than {MaxRtrs} RTRs");
            var rtr = LispAddress.None();
            if (!LispAddress.TryRead(ref r, rtr)) return r.Result;
            Rtrs.Add(rtr);
        }
        if (r.Position != end) return new LispDecodeResult(LispFormatError.BadLcafLength, r.Position, "the last RTR runs past the NAT-Traversal LCAF's length");
        (MsPort, EtrPort, GlobalEtrRloc, MsRloc, PrivateEtrRloc) = (msPort, etrPort, addresses[0], addresses[1], addresses[2]);
        return r.Remaining == 0 ? LispDecodeResult.Success : new LispDecodeResult(LispFormatError.TrailingBytes, r.Position, $"{r.Remaining} bytes after the last field");
    }

    /// <summary>Encodes with the authentication data as it stands; returns the bytes written, or -1 when it does not fit.</summary>
    public int TryEncode(Span<byte> destination)
    {
        if (Rtrs.Count > MaxRtrs) throw new LispFormatException(LispFormatError.TooManyItems, 0, $"more than {MaxRtrs} RTRs");
        var w = new LispWriter(destination);
        w.WriteUInt32(((uint)LispMessageType.InfoRequest << 28) | (IsReply ? 0x0800_0000u : 0));
        w.WriteUInt64(Nonce);
        w.WriteUInt8(KeyId);
        w.WriteUInt8((byte)AlgorithmId);
        w.WriteUInt16((ushort)_authLength);
        w.WriteBytes(AuthenticationData);
        w.WriteUInt32(TtlMinutes);
        w.WriteUInt8(0);
        w.WriteUInt8(EidMaskLength);
        EidPrefix.Write(ref w);
        if (!IsReply)
        {
            w.WriteUInt16(Afi.None);
            return w.Overflowed ? -1 : w.Position;
        }
        w.WriteUInt16(Afi.Lcaf);
        w.WriteUInt8(0);
        w.WriteUInt8(0);
        w.WriteUInt8(LcafType.NatTraversal);
        w.WriteUInt8(0);
        int length = w.ReserveUInt16();
        w.WriteUInt16(MsPort);
        w.WriteUInt16(EtrPort);
        GlobalEtrRloc.Write(ref w);
        MsRloc.Write(ref w);
        PrivateEtrRloc.Write(ref w);
        foreach (var rtr in Rtrs) rtr.Write(ref w);
        w.PatchLength(length, length + 2);
        return w.Overflowed ? -1 : w.Position;
    }

    /// <summary>Encodes and authenticates with <paramref name="key"/> (its Key ID and algorithm set on the message), as a Map-Register is.</summary>
    public byte[] ToSignedArray(SiteKey key)
    {
        KeyId = key.KeyId;
        AlgorithmId = key.Algorithm;
        Span<byte> zeros = stackalloc byte[MessageAuthentication.DigestLength(key.Algorithm)];
        zeros.Clear();
        SetAuthenticationData(zeros);
        byte[] bytes = LispMessage.EncodeToArray(TryEncode);
        MessageAuthentication.Sign(bytes, key.Algorithm, key);
        SetAuthenticationData(bytes.AsSpan(MappingMessage.AuthenticationDataOffset, zeros.Length));
        return bytes;
    }

    public byte[] ToArray() => LispMessage.EncodeToArray(TryEncode);

    public override string ToString() =>
        (IsReply ? "Info-Reply" : "Info-Request") + $" nonce=0x{Nonce:x16} key-id={KeyId} alg={AlgorithmId} auth-len={_authLength} ttl={TtlMinutes} eid={EidPrefix}/{EidMaskLength}"
        + (IsReply ? $" ms-port={MsPort} etr-port={EtrPort} global-etr={GlobalEtrRloc} ms={MsRloc} private-etr={PrivateEtrRloc} rtrs=[{string.Join(", ", Rtrs)}]" : "");
}
