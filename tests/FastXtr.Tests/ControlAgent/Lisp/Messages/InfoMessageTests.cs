using FastXtr.Lisp.Messages;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.Lisp;

/// <summary>Info-Request and Info-Reply (draft-ietf-lisp-nat-traversal §5): golden vectors, round trips, signing, and malformed input.</summary>
[TestFixture]
public class InfoMessageTests
{
    private static InfoMessage GoldenReply()
    {
        var m = new InfoMessage
        {
            IsReply = true, Nonce = 0x0102030405060708, TtlMinutes = 1440, EidMaskLength = 24, EidPrefix = LispAddress.Parse("10.1.0.0"),
            MsPort = 4342, EtrPort = 61001, GlobalEtrRloc = LispAddress.Parse("198.51.100.7"), MsRloc = LispAddress.Parse("192.0.2.10"),
        };
        m.Rtrs.Add(LispAddress.Parse("192.0.2.100"));
        return m;
    }

    [Test]
    public void GoldenVectors_EncodeAndDecode()
    {
        var request = new InfoMessage { Nonce = 0x0102030405060708, EidMaskLength = 24, EidPrefix = LispAddress.Parse("10.1.0.0") };
        Assert.That(request.ToArray(), Is.EqualTo(GoldenVectors.InfoRequest));
        Assert.That(GoldenReply().ToArray(), Is.EqualTo(GoldenVectors.InfoReply));

        var decoded = new InfoMessage();
        Assert.That(decoded.TryDecode(GoldenVectors.InfoReply).Ok, Is.True);
        Assert.That((decoded.IsReply, decoded.Nonce, decoded.TtlMinutes, decoded.EidMaskLength, decoded.MsPort, decoded.EtrPort),
            Is.EqualTo((true, 0x0102030405060708UL, 1440u, (byte)24, (ushort)4342, (ushort)61001)));
        Assert.That((decoded.GlobalEtrRloc.ToString(), decoded.MsRloc.ToString(), decoded.PrivateEtrRloc.Kind, decoded.Rtrs.Single().ToString()),
            Is.EqualTo(("198.51.100.7", "192.0.2.10", LispAddressKind.None, "192.0.2.100")));
        Assert.That(decoded.TryDecode(GoldenVectors.InfoRequest).Ok && !decoded.IsReply && decoded.Rtrs.Count == 0, Is.True, "the same instance decodes a request after a reply");
        Assert.That(LispMessage.Describe(GoldenVectors.InfoReply), Does.StartWith("Info-Reply").And.Contain("global-etr=198.51.100.7"));
    }

    [Test]
    public void RoundTrip_WithIpv6AndInstanceIds_AndManyRtrs()
    {
        var m = GoldenReply();
        m.EidPrefix = LispAddress.WithInstanceId(1000, LispAddress.Parse("fd10:1::"));
        m.EidMaskLength = 64;
        m.GlobalEtrRloc = LispAddress.Parse("2001:db8::7");
        m.PrivateEtrRloc = LispAddress.Parse("10.0.0.2");
        for (int i = 0; i < 10; i++) m.Rtrs.Add(LispAddress.Parse($"2001:db8::{i + 1:x}"));
        var back = new InfoMessage();
        Assert.That(back.TryDecode(m.ToArray()).Ok, Is.True);
        Assert.That(back.ToArray(), Is.EqualTo(m.ToArray()));
        Assert.That((back.EidPrefix.ToString(), back.Rtrs.Count, back.PrivateEtrRloc.ToString()), Is.EqualTo((m.EidPrefix.ToString(), 11, "10.0.0.2")));
    }

    [Test]
    public void Signed_VerifiesWithTheSiteKey_AndNotWithAnother()
    {
        var key = new SiteKey(3, AuthenticationAlgorithm.HmacSha256, "site"u8.ToArray());
        byte[] signed = GoldenReply().ToSignedArray(key);
        Assert.That(MessageAuthentication.Verify(signed, key), Is.EqualTo(AuthenticationFailure.None));
        Assert.That(MessageAuthentication.Verify(signed, new SiteKey(3, AuthenticationAlgorithm.HmacSha256, "other"u8.ToArray())), Is.EqualTo(AuthenticationFailure.DigestMismatch));
        signed[^1] ^= 1;
        Assert.That(MessageAuthentication.Verify(signed, key), Is.EqualTo(AuthenticationFailure.DigestMismatch), "a changed RTR breaks the signature");
        var decoded = new InfoMessage();
        Assert.That(decoded.TryDecode(signed).Ok && decoded.KeyId == 3 && decoded.AlgorithmId == AuthenticationAlgorithm.HmacSha256 && decoded.AuthenticationData.Length == 32, Is.True);
    }

    [TestCase("70 00 00", LispFormatError.Truncated)]
    [TestCase("10 00 00 00 01 02 03 04 05 06 07 08 00 00 00 00", LispFormatError.UnexpectedMessageType)]
    [TestCase("70 00 00 00 01 02 03 04 05 06 07 08 00 00 00 00 00 00 00 00 00 18 00 01 0a 01 00 00 00 01", LispFormatError.InvalidField)]
    [TestCase("70 00 00 00 01 02 03 04 05 06 07 08 00 00 00 00 00 00 00 00 00 21 00 01 0a 01 00 00 00 00", LispFormatError.BadMaskLength)]
    [TestCase("70 00 00 00 01 02 03 04 05 06 07 08 00 00 00 00 00 00 00 00 00 18 00 01 0a 01 00 00 00 00 ff", LispFormatError.TrailingBytes)]
    [TestCase("78 00 00 00 01 02 03 04 05 06 07 08 00 00 00 00 00 00 00 00 00 18 00 01 0a 01 00 00 00 00", LispFormatError.InvalidField)]
    [TestCase("78 00 00 00 01 02 03 04 05 06 07 08 00 00 00 00 00 00 00 00 00 18 00 01 0a 01 00 00 40 03 00 00 02 00 00 04 00 00 00 00", LispFormatError.InvalidField)]
    [TestCase("78 00 00 00 01 02 03 04 05 06 07 08 00 00 00 00 00 00 00 00 00 18 00 01 0a 01 00 00 40 03 00 00 07 00 00 40 10 f6 ee 49", LispFormatError.BadLcafLength)]
    [TestCase("78 00 00 00 01 02 03 04 05 06 07 08 00 00 00 00 00 00 00 00 00 18 00 01 0a 01 00 00 40 03 00 00 07 00 00 06 10 f6 ee 49 00 00", LispFormatError.BadLcafLength)]
    public void Malformed_IsACleanFailure(string hex, LispFormatError expected)
    {
        var m = new InfoMessage();
        var r = m.TryDecode(Hex.Parse(hex));
        Assert.That(r.Error, Is.EqualTo(expected), r.Describe());
    }
}
