using CsCheck;
using FastXtr.Lisp.Messages;

namespace FastXtr.Tests.Support;

/// <summary>CsCheck generators for every part of a control message, nesting LCAFs up to three deep.</summary>
public static class Generators
{
    private static readonly Gen<string> Name = Gen.Char["abcdefghijklmnopqrstuvwxyz0123456789-."].Array[1, 24].Select(c => new string(c));

    public static readonly Gen<LispAddress> Plain = Gen.OneOf(
        Gen.UInt.Select(LispAddress.FromIpv4),
        Gen.Select(Gen.ULong, Gen.ULong, (hi, lo) => LispAddress.FromIpv6(new UInt128(hi, lo))),
        Gen.Select(Gen.Byte.Array[6], Gen.Bool, (mac, old) => LispAddress.FromMac(mac, old ? Afi.Ieee802 : Afi.Mac)),
        Name.Select(LispAddress.FromName),
        Gen.Const(0).Select(_ => LispAddress.None()));

    private static readonly byte[] UnknownTypes = Enumerable.Range(0, 256).Where(t => t is not (1 or 2 or 14 or 15)).Select(t => (byte)t).ToArray();

    public static Gen<LispAddress> Address(int depth = 0)
    {
        if (depth >= 3) return Plain;
        var inner = Address(depth + 1);
        return Gen.Frequency(
            (4, Plain),
            (3, Gen.Select(Gen.UInt, Gen.Byte, Plain, (iid, mask, a) => LispAddress.WithInstanceId(iid, a, mask))),
            (2, inner.Array[0, 4].Select(items => LispAddress.AfiList(items))),
            (2, Gen.Select(Gen.Byte.Array[0, 80], Plain, Gen.Bool, (json, trailing, binary) => LispAddress.Json(json, trailing, binary))),
            (1, Gen.Select(inner, inner, LispAddress.KeyValue)),
            (1, Gen.Select(Gen.Int[0, UnknownTypes.Length - 1], Gen.Byte.Array[0, 24], Gen.Byte, Gen.Byte, (t, body, f, r) => LispAddress.UnknownLcaf(UnknownTypes[t], body, f, r))));
    }

    public static readonly Gen<LocatorRecord> Locator = Gen.Select(Gen.Byte, Gen.Byte, Gen.Byte, Gen.Byte, Gen.Bool, Gen.Bool, Gen.Bool, Address(1),
        (p, w, mp, mw, l, pr, r, a) => new LocatorRecord(a, p, w) { MulticastPriority = mp, MulticastWeight = mw, Local = l, Probed = pr, Reachable = r });

    public static readonly Gen<MappingRecord> Record =
        Gen.Select(Gen.UInt, Gen.Int[0, 7], Gen.Bool, Gen.UShort[0, 0xFFF], Address(1), Locator.Array[0, 4])
            .SelectMany(t => MaskFor(t.Item5).Select(mask => Build(t.Item1, t.Item2, t.Item3, t.Item4, t.Item5, t.Item6, mask)));

    private static Gen<byte> MaskFor(LispAddress eid) => eid.AddressBits >= 0 ? Gen.Byte[0, (byte)eid.AddressBits] : Gen.Byte;

    private static MappingRecord Build(uint ttl, int action, bool auth, ushort version, LispAddress eid, LocatorRecord[] locators, byte mask)
    {
        var r = new MappingRecord { TtlMinutes = ttl, Action = (MapReplyAction)action, Authoritative = auth, MapVersion = version, EidPrefix = eid, EidMaskLength = mask };
        foreach (var l in locators) r.Locators.Add(l);
        return r;
    }

    public static readonly Gen<MapRequestRecord> RequestRecord =
        Gen.Select(Address(1), Gen.Bool).SelectMany(t => MaskFor(t.Item1).Select(m => new MapRequestRecord(t.Item1, m, t.Item2)));

    public static readonly Gen<MapRequest> MapRequest =
        Gen.Select(Gen.UInt, Gen.ULong, Address(), Address(1).Array[1, 4], RequestRecord.Array[0, 3], Record, Gen.Select(Gen.ULong, Gen.ULong, Gen.ULong))
            .Select(t =>
            {
                uint f = t.Item1;
                var m = new MapRequest
                {
                    Authoritative = (f & 1) != 0, MapDataPresent = (f & 2) != 0, Probe = (f & 4) != 0, SolicitMapRequest = (f & 8) != 0,
                    Pitr = (f & 16) != 0, SmrInvoked = (f & 32) != 0, ReservedR = (f & 64) != 0, XtrIdPresent = (f & 128) != 0,
                    LocalXtr = (f & 256) != 0, DontMapReply = (f & 512) != 0, Nonce = t.Item2, SourceEid = t.Item3, MapReplyRecord = t.Item6,
                    XtrId = (f & 128) != 0 ? new UInt128(t.Item7.Item1, t.Item7.Item2) : 0, SiteId = (f & 128) != 0 ? t.Item7.Item3 : 0,
                };
                foreach (var a in t.Item4) m.ItrRlocs.Add(a);
                foreach (var r in t.Item5) m.Records.Add(r);
                return m;
            });

    /// <summary>A sig section (RFC 8111 §6.4.1): 20-byte head whose Sig Length counts the signature after it.</summary>
    private static readonly Gen<byte[]> SigSection = Gen.Select(Gen.Byte.Array[14], Gen.Byte.Array[0, 40], Gen.Byte.Array[4], (head, sig, tail) =>
    {
        var s = new byte[20 + sig.Length];
        head.CopyTo(s, 0);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(s.AsSpan(14), (ushort)sig.Length);
        tail.CopyTo(s, 16);
        sig.CopyTo(s, 20);
        return s;
    });

    public static readonly Gen<ReferralRecord> ReferralRecord =
        Gen.Select(Gen.UInt, Gen.Int[0, 7], Gen.Int[0, 3], Gen.UShort[0, 0xFFF], Address(1), Locator.Array[0, 4], SigSection.Array[0, 2])
            .SelectMany(t => MaskFor(t.Item5).Select(mask =>
            {
                var r = new ReferralRecord
                {
                    TtlMinutes = t.Item1, Action = (MapReferralAction)t.Item2, Authoritative = (t.Item3 & 1) != 0, Incomplete = (t.Item3 & 2) != 0,
                    MapVersion = t.Item4, EidPrefix = t.Item5, EidMaskLength = mask,
                };
                foreach (var l in t.Item6) r.Referrals.Add(l);
                foreach (var s in t.Item7) r.AddSignature(s);
                return r;
            }));

    public static readonly Gen<MapReferral> MapReferral =
        Gen.Select(Gen.ULong, ReferralRecord.Array[0, 3]).Select(t =>
        {
            var m = new MapReferral { Nonce = t.Item1 };
            foreach (var r in t.Item2) m.Records.Add(r);
            return m;
        });

    public static readonly Gen<MapReply> MapReply =
        Gen.Select(Gen.Int[0, 7], Gen.ULong, Record.Array[0, 3], Gen.Byte.Array[0, 40]).Select(t =>
        {
            var m = new MapReply { Probe = (t.Item1 & 1) != 0, EchoNonceCapable = (t.Item1 & 2) != 0, Security = (t.Item1 & 4) != 0, Nonce = t.Item2 };
            foreach (var r in t.Item3) m.Records.Add(r);
            if (m.Security) m.SetSecurityData(t.Item4);
            return m;
        });

    private static T Fill<T>(T m, ulong nonce, byte keyId, int alg, byte[] auth, MappingRecord[] records, bool xtr, UInt128 xtrId, ulong siteId) where T : MappingMessage
    {
        m.Nonce = nonce;
        m.KeyId = keyId;
        m.AlgorithmId = (AuthenticationAlgorithm)alg;
        m.SetAuthenticationData(auth);
        foreach (var r in records) m.Records.Add(r);
        m.XtrIdPresent = xtr;
        if (xtr)
        {
            m.XtrId = xtrId;
            m.SiteId = siteId;
        }
        return m;
    }

    public static readonly Gen<MapRegister> MapRegister =
        Gen.Select(Gen.UInt, Gen.ULong, Gen.Byte, Gen.Int[0, 3], Gen.Byte.Array[0, 32], Record.Array[0, 3], Gen.Select(Gen.ULong, Gen.ULong, Gen.ULong))
            .Select(t => Fill(new MapRegister
            {
                ProxyMapReply = (t.Item1 & 1) != 0, SecurityCapable = (t.Item1 & 2) != 0, EidNotify = (t.Item1 & 4) != 0, UseTtlForTimeout = (t.Item1 & 8) != 0,
                MergeRequest = (t.Item1 & 16) != 0, ReservedR = (t.Item1 & 32) != 0, WantMapNotify = (t.Item1 & 64) != 0,
            }, t.Item2, t.Item3, t.Item4, t.Item5, t.Item6, (t.Item1 & 128) != 0, new UInt128(t.Item7.Item1, t.Item7.Item2), t.Item7.Item3));

    public static readonly Gen<MapNotify> MapNotify =
        Gen.Select(Gen.UInt, Gen.ULong, Gen.Byte, Gen.Int[0, 3], Gen.Byte.Array[0, 32], Record.Array[0, 3], Gen.Select(Gen.ULong, Gen.ULong, Gen.ULong))
            .Select(t => Fill(new MapNotify { IsAck = (t.Item1 & 1) != 0, ToRtr = (t.Item1 & 2) != 0 },
                t.Item2, t.Item3, t.Item4, t.Item5, t.Item6, (t.Item1 & 4) != 0, new UInt128(t.Item7.Item1, t.Item7.Item2), t.Item7.Item3));
}
