using System.Net;
using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.Lisp;

/// <summary>Decoding each golden vector gives the fields of its annotation; encoding those fields gives the same bytes.</summary>
[TestFixture]
public class GoldenVectorTests
{
    private static LispAddress Eid(uint iid, string ip) => LispAddress.WithInstanceId(iid, LispAddress.Parse(ip));

    [Test]
    public void MapRequest_Decode_GivesAnnotatedFields()
    {
        var m = new MapRequest();
        Assert.That(m.TryDecode(GoldenVectors.MapRequest).Ok, Is.True);
        Assert.That(m.Nonce, Is.EqualTo(0x0102030405060708UL));
        Assert.That(m.Authoritative || m.MapDataPresent || m.Probe || m.SolicitMapRequest || m.Pitr || m.SmrInvoked || m.XtrIdPresent, Is.False);
        Assert.That(m.SourceEid.Kind, Is.EqualTo(LispAddressKind.InstanceId));
        Assert.That(m.SourceEid.InstanceIdValue, Is.EqualTo(1000u));
        Assert.That(m.SourceEid.Inner.ToIPAddress(), Is.EqualTo(IPAddress.Parse("10.1.0.1")));
        Assert.That(m.ItrRlocs, Has.Count.EqualTo(1));
        Assert.That(m.ItrRlocs[0].ToIPAddress(), Is.EqualTo(IPAddress.Parse("192.0.2.1")));
        Assert.That(m.Records, Has.Count.EqualTo(1));
        Assert.That(m.Records[0].EidMaskLength, Is.EqualTo(32));
        Assert.That(m.Records[0].Subscribe, Is.False);
        Assert.That(m.Records[0].EidPrefix.ContentEquals(Eid(1000, "10.1.0.5")), Is.True);
    }

    [Test]
    public void MapRequest_Encode_GivesVectorBytes()
    {
        var m = new MapRequest { Nonce = 0x0102030405060708UL, SourceEid = Eid(1000, "10.1.0.1") };
        m.ItrRlocs.Add(LispAddress.Parse("192.0.2.1"));
        m.Records.Add(new MapRequestRecord(Eid(1000, "10.1.0.5"), 32));
        Assert.That(Hex.Format(m.ToArray()), Is.EqualTo(Hex.Format(GoldenVectors.MapRequest)));
    }

    [Test]
    public void MapRequestAllFlags_Decode_GivesEveryFlagAndTrailer()
    {
        var m = new MapRequest();
        Assert.That(m.TryDecode(GoldenVectors.MapRequestAllFlags).Describe(), Is.EqualTo("ok"));
        Assert.That(new[] { m.Authoritative, m.MapDataPresent, m.Probe, m.SolicitMapRequest, m.Pitr, m.SmrInvoked, m.XtrIdPresent, m.LocalXtr, m.DontMapReply }, Is.All.True);
        Assert.That(m.ReservedR, Is.False);
        Assert.That(m.Nonce, Is.EqualTo(42UL));
        Assert.That(m.SourceEid.Kind, Is.EqualTo(LispAddressKind.None));
        Assert.That(m.ItrRlocs.Select(a => a.ToIPAddress().ToString()), Is.EqualTo(new[] { "192.0.2.1", "2001:db8::1" }));
        Assert.That(m.Records[0].Subscribe, Is.True);
        Assert.That(m.Records[0].EidMaskLength, Is.EqualTo(24));
        Assert.That(m.MapReplyRecord.TtlMinutes, Is.EqualTo(60u));
        Assert.That(m.MapReplyRecord.Locators[0].Local, Is.True);
        Assert.That(m.XtrId, Is.EqualTo(UInt128.Parse("000102030405060708090a0b0c0d0e0f", System.Globalization.NumberStyles.HexNumber)));
        Assert.That(m.SiteId, Is.EqualTo(7UL));
    }

    [Test]
    public void MapRequestAllFlags_Encode_GivesVectorBytes()
    {
        var m = new MapRequest
        {
            Authoritative = true, MapDataPresent = true, Probe = true, SolicitMapRequest = true, Pitr = true, SmrInvoked = true,
            XtrIdPresent = true, LocalXtr = true, DontMapReply = true, Nonce = 42,
            XtrId = UInt128.Parse("000102030405060708090a0b0c0d0e0f", System.Globalization.NumberStyles.HexNumber), SiteId = 7,
        };
        m.ItrRlocs.Add(LispAddress.Parse("192.0.2.1"));
        m.ItrRlocs.Add(LispAddress.Parse("2001:db8::1"));
        m.Records.Add(new MapRequestRecord(LispAddress.Parse("10.2.0.0"), 24, subscribe: true));
        m.MapReplyRecord = new MappingRecord { TtlMinutes = 60, EidMaskLength = 32, Authoritative = true, EidPrefix = LispAddress.Parse("10.1.0.1") };
        m.MapReplyRecord.Locators.Add(new LocatorRecord(LispAddress.Parse("192.0.2.1"), 1, 100) { Local = true });
        Assert.That(Hex.Format(m.ToArray()), Is.EqualTo(Hex.Format(GoldenVectors.MapRequestAllFlags)));
    }

    [Test]
    public void MapReply_RoundTrip_MatchesVector()
    {
        var m = new MapReply();
        m.Decode(GoldenVectors.MapReply);
        Assert.That(m.Nonce, Is.EqualTo(0xa1a2a3a4a5a6a7a8UL));
        var rec = m.Records[0];
        Assert.That((rec.TtlMinutes, rec.EidMaskLength, rec.Action, rec.Authoritative, rec.MapVersion), Is.EqualTo((1440u, (byte)24, MapReplyAction.NoAction, true, (ushort)0)));
        Assert.That(rec.EidPrefix.ContentEquals(Eid(1000, "10.1.0.0")), Is.True);
        Assert.That(rec.Locators.Select(l => (l.Locator.ToString(), l.Priority, l.Weight, l.MulticastPriority, l.Local, l.Reachable)),
            Is.EqualTo(new[] { ("192.0.2.2", (byte)1, (byte)50, (byte)255, false, true), ("2001:db8::2", (byte)2, (byte)50, (byte)255, true, true) }));

        var built = new MapReply { Nonce = 0xa1a2a3a4a5a6a7a8UL };
        var r = new MappingRecord { TtlMinutes = 1440, EidMaskLength = 24, Authoritative = true, EidPrefix = Eid(1000, "10.1.0.0") };
        r.Locators.Add(new LocatorRecord(LispAddress.Parse("192.0.2.2"), 1, 50));
        r.Locators.Add(new LocatorRecord(LispAddress.Parse("2001:db8::2"), 2, 50) { Local = true });
        built.Records.Add(r);
        Assert.That(Hex.Format(built.ToArray()), Is.EqualTo(Hex.Format(GoldenVectors.MapReply)));
    }

    [Test]
    public void MapReferral_RoundTrip_MatchesVector()
    {
        var m = new MapReferral();
        m.Decode(GoldenVectors.MapReferral);
        Assert.That((m.Nonce, m.Records.Count), Is.EqualTo((0x0102030405060708UL, 2)));
        var referral = m.Records[0];
        Assert.That((referral.TtlMinutes, referral.EidMaskLength, referral.Action, referral.Authoritative, referral.Incomplete, referral.Signatures.Count),
            Is.EqualTo((1440u, (byte)16, MapReferralAction.MsReferral, true, false, 0)));
        Assert.That(referral.EidPrefix.ContentEquals(Eid(1000, "10.1.0.0")), Is.True);
        Assert.That(referral.Referrals.Select(l => (l.Locator.ToString(), l.Priority, l.Weight, l.Reachable)),
            Is.EqualTo(new[] { ("192.0.2.10", (byte)1, (byte)50, true), ("192.0.2.11", (byte)2, (byte)50, true) }));
        var hole = m.Records[1];
        Assert.That((hole.TtlMinutes, hole.EidMaskLength, hole.Action, hole.Authoritative, hole.Incomplete, hole.Referrals.Count),
            Is.EqualTo((15u, (byte)24, MapReferralAction.DelegationHole, true, true, 0)));
        Assert.That(hole.EidPrefix.ToString(), Is.EqualTo("10.9.0.0"));
        Assert.That(Hex.Format(hole.Signatures.Single()), Is.EqualTo(Hex.Format(GoldenVectors.MapReferral.AsSpan(^24).ToArray())), "the sig section, whole");
        Assert.That(LispMessage.Describe(GoldenVectors.MapReferral), Does.Contain("MS-REFERRAL").And.Contain("DELEGATION-HOLE").And.Contain("incomplete"));

        var built = new MapReferral { Nonce = 0x0102030405060708UL };
        var r = new ReferralRecord { TtlMinutes = 1440, EidMaskLength = 16, Action = MapReferralAction.MsReferral, Authoritative = true, EidPrefix = Eid(1000, "10.1.0.0") };
        r.Referrals.Add(new LocatorRecord(LispAddress.Parse("192.0.2.10"), 1, 50));
        r.Referrals.Add(new LocatorRecord(LispAddress.Parse("192.0.2.11"), 2, 50));
        built.Records.Add(r);
        var h = new ReferralRecord { TtlMinutes = 15, EidMaskLength = 24, Action = MapReferralAction.DelegationHole, Authoritative = true, Incomplete = true, EidPrefix = LispAddress.Parse("10.9.0.0") };
        h.AddSignature(GoldenVectors.MapReferral.AsSpan(^24));
        built.Records.Add(h);
        Assert.That(Hex.Format(built.ToArray()), Is.EqualTo(Hex.Format(GoldenVectors.MapReferral)));
        Assert.Throws<ArgumentException>(() => h.AddSignature(new byte[21]), "a sig section whose Sig Length does not match its bytes");
    }

    [Test]
    public void MapReferral_EachAction_SitsInTheTopThreeBitsBesideAAndI()
    {
        foreach (var action in Enum.GetValues<MapReferralAction>())
        {
            var m = new MapReferral();
            m.Records.Add(new ReferralRecord { Action = action, Incomplete = true, EidPrefix = LispAddress.Parse("10.0.0.0"), EidMaskLength = 8 });
            byte[] b = m.ToArray();
            Assert.That(b[18], Is.EqualTo((byte)((int)action << 5 | 0x08)), $"{action}");
            Assert.That(new MapReferral().TryDecode(b).Ok, Is.True);
        }
        Assert.That(new MapReferral().TryDecode(GoldenVectors.MapReply).Error, Is.EqualTo(LispFormatError.UnexpectedMessageType));
        Assert.That(new MapReferral().TryDecode(GoldenVectors.MapReferral.AsSpan(..^1)).Error, Is.EqualTo(LispFormatError.Truncated), "a sig section cut short");
    }

    [Test]
    public void NegativeMapReply_RoundTrip_MatchesVector()
    {
        var m = new MapReply();
        m.Decode(GoldenVectors.NegativeMapReply);
        Assert.That(m.Records[0].IsNegative, Is.True);
        Assert.That(m.Records[0].Action, Is.EqualTo(MapReplyAction.DropPolicyDenied));
        Assert.That(m.Records[0].TtlMinutes, Is.EqualTo(1u));
        var built = MapReply.Negative(9, LispAddress.Parse("10.1.0.0"), 16, MapReplyAction.DropPolicyDenied, 1);
        Assert.That(Hex.Format(built.ToArray()), Is.EqualTo(Hex.Format(GoldenVectors.NegativeMapReply)));
    }

    [TestCase(MapReplyAction.NoAction, 0x10)]
    [TestCase(MapReplyAction.NativelyForward, 0x30)]
    [TestCase(MapReplyAction.SendMapRequest, 0x50)]
    [TestCase(MapReplyAction.DropNoReason, 0x70)]
    [TestCase(MapReplyAction.DropPolicyDenied, 0x90)]
    [TestCase(MapReplyAction.DropAuthFailure, 0xb0)]
    public void NegativeMapReply_EachAction_SitsInTheTopThreeBitsBesideA(MapReplyAction action, int expectedByte)
    {
        byte[] bytes = MapReply.Negative(1, LispAddress.Parse("10.0.0.0"), 8, action, 15).ToArray();
        // Header (4) + nonce (8) + TTL (4) + locator count + mask-len, then the ACT|A byte.
        Assert.That(bytes[18], Is.EqualTo(expectedByte));
        var m = new MapReply();
        m.Decode(bytes);
        Assert.That(m.Records[0].Action, Is.EqualTo(action));
    }

    private static MappingRecord RegisteredRecord()
    {
        var r = new MappingRecord { TtlMinutes = 1440, EidMaskLength = 32, Authoritative = true, EidPrefix = Eid(1000, "10.1.0.5") };
        var ctx = AgentContext.TryParse("""{"agent-context":{"state":"ready"}}""", out _)!;
        r.Locators.Add(new LocatorRecord(ContextEncoding.RlocWithContext(LispAddress.Parse("192.0.2.2"), ctx), 1, 100) { Local = true });
        return r;
    }

    private static readonly UInt128 XtrId = UInt128.Parse("000102030405060708090a0b0c0d0e0f", System.Globalization.NumberStyles.HexNumber);

    [Test]
    public void MapRegister_Decode_GivesAnnotatedFieldsAndContext()
    {
        var m = new MapRegister();
        m.Decode(GoldenVectors.MapRegister);
        Assert.That((m.ProxyMapReply, m.SecurityCapable, m.XtrIdPresent, m.EidNotify, m.UseTtlForTimeout, m.MergeRequest, m.WantMapNotify),
            Is.EqualTo((false, false, true, false, false, true, true)));
        Assert.That((m.KeyId, m.AlgorithmId, m.AuthenticationData.Length), Is.EqualTo(((byte)0, AuthenticationAlgorithm.HmacSha256, 32)));
        Assert.That((m.XtrId, m.SiteId), Is.EqualTo((XtrId, 1UL)));
        var locator = ContextEncoding.ReadLocator(m.Records[0].Locators[0].Locator, out var ctx, out var err);
        Assert.That(err.Ok, Is.True, err.ToString());
        Assert.That(locator.ToString(), Is.EqualTo("192.0.2.2"));
        Assert.That(ctx!.State, Is.EqualTo(AgentState.Ready));
        Assert.That(MessageAuthentication.Verify(GoldenVectors.MapRegister, GoldenVectors.HmacKey), Is.EqualTo(AuthenticationFailure.None));
    }

    [Test]
    public void MapRegister_EncodeSigned_GivesVectorBytes()
    {
        var m = new MapRegister { Nonce = 0x1122334455667788UL, XtrIdPresent = true, MergeRequest = true, WantMapNotify = true, AlgorithmId = AuthenticationAlgorithm.HmacSha256, XtrId = XtrId, SiteId = 1 };
        m.Records.Add(RegisteredRecord());
        Assert.That(Hex.Format(m.ToSignedArray(GoldenVectors.HmacKey)), Is.EqualTo(Hex.Format(GoldenVectors.MapRegister)));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void MapNotify_EncodeSigned_GivesVectorBytes(bool ack)
    {
        var m = new MapNotify(ack) { Nonce = 0x1122334455667788UL, XtrIdPresent = true, AlgorithmId = AuthenticationAlgorithm.HmacSha1, XtrId = XtrId, SiteId = 1 };
        m.Records.Add(RegisteredRecord());
        byte[] expected = ack ? GoldenVectors.MapNotifyAck : GoldenVectors.MapNotify;
        Assert.That(Hex.Format(m.ToSignedArray(GoldenVectors.HmacKey)), Is.EqualTo(Hex.Format(expected)));

        var decoded = new MapNotify();
        decoded.Decode(expected);
        Assert.That(decoded.IsAck, Is.EqualTo(ack));
        Assert.That(decoded.XtrIdPresent, Is.True);
        Assert.That(decoded.Records[0].ContentEquals(m.Records[0]), Is.True);
        Assert.That(MessageAuthentication.Verify(expected, GoldenVectors.HmacKey), Is.EqualTo(AuthenticationFailure.None));
    }

    [Test]
    public void Ecm_RoundTrip_MatchesVector()
    {
        var ecm = new EncapsulatedControlMessage();
        ecm.Decode(GoldenVectors.EcmMapRequest);
        Assert.That(ecm.InnerIsIpv6, Is.False);
        Assert.That(ecm.InnerSourceAddress, Is.EqualTo(IPAddress.Parse("10.1.0.1")));
        Assert.That(ecm.InnerDestinationAddress, Is.EqualTo(IPAddress.Parse("10.1.0.5")));
        Assert.That((ecm.InnerSourcePort, ecm.InnerDestinationPort), Is.EqualTo(((ushort)4342, (ushort)4342)));
        Assert.That(Hex.Format(ecm.InnerMessage), Is.EqualTo(Hex.Format(GoldenVectors.MapRequest)));

        var built = new EncapsulatedControlMessage();
        built.SetInnerAddresses(IPAddress.Parse("10.1.0.1"), IPAddress.Parse("10.1.0.5"));
        built.SetInnerMessage(GoldenVectors.MapRequest);
        Assert.That(Hex.Format(built.ToArray()), Is.EqualTo(Hex.Format(GoldenVectors.EcmMapRequest)));
    }

    [Test]
    public void Ecm_Ipv6Inner_RoundTripsWithFlags()
    {
        var built = new EncapsulatedControlMessage { ToEtr = true, ToMapServer = true, DdtOriginated = true, Security = true, InnerSourcePort = 61000 };
        built.SetInnerAddresses(IPAddress.Parse("2001:db8::1"), IPAddress.Parse("2001:db8:1::5"));
        built.SetInnerMessage(GoldenVectors.MapRequest);
        byte[] bytes = built.ToArray();
        Assert.That(bytes[0], Is.EqualTo(0x8F));
        var ecm = new EncapsulatedControlMessage();
        ecm.Decode(bytes);
        Assert.That((ecm.ToEtr, ecm.ToMapServer, ecm.DdtOriginated, ecm.Security, ecm.InnerIsIpv6, ecm.InnerSourcePort), Is.EqualTo((true, true, true, true, true, (ushort)61000)));
        Assert.That(ecm.InnerDestinationAddress, Is.EqualTo(IPAddress.Parse("2001:db8:1::5")));
        Assert.That(Hex.Format(ecm.InnerMessage), Is.EqualTo(Hex.Format(GoldenVectors.MapRequest)));
    }

    [Test]
    public void Describe_EveryVector_NamesItsType()
    {
        Assert.That(LispMessage.Describe(GoldenVectors.MapRequest), Does.StartWith("Map-Request"));
        Assert.That(LispMessage.Describe(GoldenVectors.MapReply), Does.StartWith("Map-Reply"));
        Assert.That(LispMessage.Describe(GoldenVectors.MapRegister), Does.StartWith("Map-Register"));
        Assert.That(LispMessage.Describe(GoldenVectors.MapNotify), Does.StartWith("Map-Notify "));
        Assert.That(LispMessage.Describe(GoldenVectors.MapNotifyAck), Does.StartWith("Map-Notify-Ack"));
        Assert.That(LispMessage.Describe(GoldenVectors.EcmMapRequest), Does.StartWith("ECM").And.Contains(":: Map-Request"));
    }
}
