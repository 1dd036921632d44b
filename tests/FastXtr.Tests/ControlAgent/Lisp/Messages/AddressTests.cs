using FastXtr.Lisp.Messages;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.Lisp;

/// <summary>AFIs and LCAFs inside a Map-Request's EID record, where any address may stand.</summary>
[TestFixture]
public class AddressTests
{
    /// <summary>A Map-Request whose only EID record carries <paramref name="eidHex"/> (AFI and address).</summary>
    private static byte[] RequestWithEid(string eidHex, byte mask = 0) => Hex.Parse(
        "10 00 00 01 00 00 00 00 00 00 00 01 00 00 00 01 c0 00 02 01 00 " + mask.ToString("x2") + " " + eidHex);

    private static LispAddress DecodeEid(string eidHex, byte mask = 0)
    {
        var m = new MapRequest();
        var result = m.TryDecode(RequestWithEid(eidHex, mask));
        Assert.That(result.Ok, Is.True, result.Describe());
        return m.Records[0].EidPrefix;
    }

    [Test]
    public void Mac_Afi16389_And_Afi6_BothDecode_AndKeepTheirAfi()
    {
        var a = DecodeEid("40 05 00 11 22 33 44 55", 48);
        var b = DecodeEid("00 06 00 11 22 33 44 55", 48);
        Assert.That(a.Kind, Is.EqualTo(LispAddressKind.Mac));
        Assert.That(b.Kind, Is.EqualTo(LispAddressKind.Mac));
        Assert.That(a.ToString(), Is.EqualTo("00:11:22:33:44:55"));
        Assert.That((a.MacAfi, b.MacAfi), Is.EqualTo((Afi.Mac, Afi.Ieee802)));
    }

    [Test]
    public void DistinguishedName_DecodesUpToNul()
    {
        var a = DecodeEid("00 11 61 67 65 6e 74 2d 61 00");
        Assert.That(a.Name, Is.EqualTo("agent-a"));
    }

    [Test]
    public void DistinguishedName_WithoutNul_IsUnterminatedNameAtItsOffset()
    {
        var result = new MapRequest().TryDecode(RequestWithEid("00 11 61 67 65"));
        Assert.That(result.Error, Is.EqualTo(LispFormatError.UnterminatedName));
        Assert.That(result.Offset, Is.EqualTo(24));
    }

    [Test]
    public void InstanceIdLcaf_KeepsMaskLengthByte()
    {
        var a = DecodeEid("40 03 00 00 02 18 00 0a 00 00 07 d0 00 01 0a 00 00 01", 32);
        Assert.That((a.InstanceIdValue, a.IidMaskLength), Is.EqualTo((2000u, (byte)24)));
        var m = new MapRequest();
        m.Decode(RequestWithEid("40 03 00 00 02 18 00 0a 00 00 07 d0 00 01 0a 00 00 01", 32));
        Assert.That(Hex.Format(m.ToArray()), Is.EqualTo(Hex.Format(RequestWithEid("40 03 00 00 02 18 00 0a 00 00 07 d0 00 01 0a 00 00 01", 32))));
    }

    [Test]
    public void KeyValueLcaf_RoundTrips()
    {
        var kv = DecodeEid("40 03 00 00 0f 00 00 0c 00 11 6b 00 00 01 0a 00 00 01 00 00");
        Assert.That(kv.Kind, Is.EqualTo(LispAddressKind.KeyValue));
        Assert.That(kv.Key.Name, Is.EqualTo("k"));
        Assert.That(kv.Value.ToString(), Is.EqualTo("10.0.0.1"));
    }

    [TestCase(LcafType.GeoCoordinates)]
    [TestCase(LcafType.NatTraversal)]
    [TestCase(LcafType.ExplicitLocatorPath)]
    [TestCase(LcafType.SourceDestKey)]
    [TestCase((byte)200)]
    [TestCase((byte)255)]
    public void UnknownLcaf_InEveryAddressPosition_IsSkippedByLength(byte type)
    {
        string lcaf = $"40 03 00 00 {type:x2} 00 00 05 de ad be ef 99";
        // Source-EID, ITR-RLOC, EID-prefix and a Map-Reply record's locator all unknown LCAFs.
        var bytes = Hex.Parse($"""
            14 00 00 01 00 00 00 00 00 00 00 01
            {lcaf}
            {lcaf}
            00 00 {lcaf}
            00 00 00 01 01 00 00 00 00 00 {lcaf}
            01 01 ff 00 00 01 {lcaf}
            """);
        var m = new MapRequest();
        var result = m.TryDecode(bytes);
        Assert.That(result.Ok, Is.True, result.Describe());
        foreach (var a in new[] { m.SourceEid, m.ItrRlocs[0], m.Records[0].EidPrefix, m.MapReplyRecord.Locators[0].Locator })
        {
            Assert.That(a.Kind, Is.EqualTo(LispAddressKind.UnknownLcaf));
            Assert.That(a.LcafTypeValue, Is.EqualTo(type));
            Assert.That(Hex.Format(a.Data), Is.EqualTo("deadbeef99"));
        }
        Assert.That(Hex.Format(m.ToArray()), Is.EqualTo(Hex.Format(bytes)), "unknown LCAFs pass on unchanged");
    }

    [Test]
    public void LcafLongerThanMessage_IsBadLcafLengthAtTheLengthField()
    {
        var result = new MapRequest().TryDecode(RequestWithEid("40 03 00 00 02 00 00 ff 00 00 00 01"));
        Assert.That(result.Error, Is.EqualTo(LispFormatError.BadLcafLength));
        Assert.That(result.Offset, Is.EqualTo(28));
    }

    [Test]
    public void IidLcafWhoseInnerAddressOverrunsIt_IsRejected()
    {
        // Length 8 covers the IID and AFI 1 and two bytes of the address, which runs past the LCAF.
        var result = new MapRequest().TryDecode(RequestWithEid("40 03 00 00 02 00 00 08 00 00 00 01 00 01 0a 00 00 01"));
        Assert.That(result.Error, Is.EqualTo(LispFormatError.BadLcafLength));
    }

    [Test]
    public void DeeplyNestedLcafs_StopAtTheNestingLimit()
    {
        // 20 IID LCAFs each wrapping the next: a hostile input that would recurse without a bound.
        string eid = "00 01 0a 00 00 01";
        for (int i = 0; i < 20; i++)
        {
            int len = 4 + eid.Replace(" ", "").Length / 2;
            eid = $"40 03 00 00 02 00 {len >> 8:x2} {len & 0xff:x2} 00 00 00 01 " + eid;
        }
        var result = new MapRequest().TryDecode(RequestWithEid(eid));
        Assert.That(result.Error, Is.EqualTo(LispFormatError.NestingTooDeep));
    }

    [Test]
    public void UnsupportedAfi_IsReportedWithItsNumberAndOffset()
    {
        var result = new MapRequest().TryDecode(RequestWithEid("00 07 01 02 03 04"));
        Assert.That(result.Error, Is.EqualTo(LispFormatError.UnsupportedAfi));
        Assert.That(result.Offset, Is.EqualTo(22));
        Assert.That(result.Detail, Does.Contain("AFI 7"));
    }

    [Test]
    public void MaskLongerThanAddress_IsBadMaskLength()
    {
        var result = new MapRequest().TryDecode(RequestWithEid("00 01 0a 00 00 00", 33));
        Assert.That(result.Error, Is.EqualTo(LispFormatError.BadMaskLength));
    }

    [Test]
    public void TrailingGarbage_IsTrailingBytes()
    {
        var bytes = RequestWithEid("00 01 0a 00 00 00", 8).Concat(new byte[] { 1, 2 }).ToArray();
        var result = new MapRequest().TryDecode(bytes);
        Assert.That(result.Error, Is.EqualTo(LispFormatError.TrailingBytes));
        Assert.That(result.Offset, Is.EqualTo(bytes.Length - 2));
    }

    [Test]
    public void Decode_ThrowsOnlyTheCodecsException()
    {
        var e = Assert.Throws<LispFormatException>(() => new MapReply().Decode(new byte[] { 0x20, 0, 0, 1, 0 }));
        Assert.That(e!.Error, Is.EqualTo(LispFormatError.Truncated));
        Assert.That(e.Message, Does.Contain("offset"));
    }
}
