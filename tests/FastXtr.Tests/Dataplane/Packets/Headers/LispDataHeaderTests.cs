using System.Net;
using FastXtr.Packets;
using FastXtr.Packets;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.Dataplane.Packets;

[TestFixture]
public class LispDataHeaderTests
{
    // Vectors from the RFC 9300 §5.1 diagram: flags byte N L E V I R K K, 24 bits of nonce or map-versions,
    // then IID (24) + LSBs (8) with I, or LSBs (32) without.
    [TestCase("88 12 34 56 00 03 e8 00", true, false, false, false, true, 0x123456u, 1000u, 0u)]
    [TestCase("40 00 00 00 00 00 00 03", false, true, false, false, false, 0u, 0u, 3u)]
    [TestCase("e8 ab cd ef 00 00 07 01", true, true, true, false, true, 0xabcdefu, 7u, 1u)]
    [TestCase("08 00 00 00 ff ff ff 00", false, false, false, false, true, 0u, 0xffffffu, 0u)]
    public void TryRead_Vector_GivesFlagsAndFields(string hex, bool n, bool l, bool e, bool v, bool i, uint nonce, uint iid, uint lsb)
    {
        Assert.That(LispDataHeader.TryRead(Hex.Parse(hex), out var h, out var err), Is.True, err.ToString());
        Assert.That((h.NoncePresent, h.LocatorStatusBitsEnabled, h.EchoNonceRequest, h.MapVersionPresent, h.InstanceIdPresent), Is.EqualTo((n, l, e, v, i)));
        Assert.That(h.Nonce, Is.EqualTo(nonce));
        if (i) Assert.That(h.InstanceId, Is.EqualTo(iid));
        Assert.That(h.LocatorStatusBits, Is.EqualTo(lsb));
    }

    [Test]
    public void Builders_ProduceTheVectors()
    {
        Span<byte> b = stackalloc byte[8];
        LispDataHeader.WithNonce(0x123456, instanceId: 1000).Write(b);
        Assert.That(Hex.Format(b), Is.EqualTo("88123456" + "0003e800"));
        LispDataHeader.WithNonce(0xabcdef, instanceId: 7, echoNonceRequest: true, locatorStatusBits: 1, locatorStatusBitsEnabled: true).Write(b);
        Assert.That(Hex.Format(b), Is.EqualTo("e8abcdef00000701"));
        LispDataHeader.WithMapVersions(1, 2).Write(b);
        Assert.That(Hex.Format(b), Is.EqualTo("1000100200000000"));
        LispDataHeader.Plain(locatorStatusBits: 3, locatorStatusBitsEnabled: true).Write(b);
        Assert.That(Hex.Format(b), Is.EqualTo("4000000000000003"));
    }

    [Test]
    public void MapVersions_ReadBack()
    {
        Span<byte> b = stackalloc byte[8];
        LispDataHeader.WithMapVersions(0xabc, 0x123, instanceId: 55).Write(b);
        Assert.That(LispDataHeader.TryRead(b, out var h, out _), Is.True);
        Assert.That((h.MapVersionPresent, h.SourceMapVersion, h.DestinationMapVersion, h.InstanceId), Is.EqualTo((true, (ushort)0xabc, (ushort)0x123, 55u)));
    }

    [Test]
    public void NonceAndMapVersionTogether_AreRejected()
    {
        Assert.That(LispDataHeader.TryRead(Hex.Parse("90 00 00 01 00 00 00 00"), out _, out var err), Is.False);
        Assert.That(err, Is.EqualTo(DataHeaderError.NonceAndMapVersion));
    }

    [Test]
    public void ShortInput_IsTruncated()
    {
        Assert.That(LispDataHeader.TryRead(new byte[7], out _, out var err), Is.False);
        Assert.That(err, Is.EqualTo(DataHeaderError.Truncated));
    }

    [Test]
    public void OutOfRangeFields_AreRefusedByTheBuilders()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => LispDataHeader.WithNonce(0x1000000));
        Assert.Throws<ArgumentOutOfRangeException>(() => LispDataHeader.WithNonce(1, instanceId: 0x1000000));
        Assert.Throws<ArgumentOutOfRangeException>(() => LispDataHeader.WithMapVersions(0x1000, 0));
    }

    [Test]
    public void Ipv4Encapsulation_BuildsAndParsesBack()
    {
        byte[] inner = [0x45, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 10, 1, 0, 1, 10, 1, 0, 5];
        byte[] packet = new byte[LispDataPacket.Ipv4OverheadBytes + inner.Length];
        int n = LispDataPacket.WriteIpv4(packet, Ipv4Header.ToUInt32(IPAddress.Parse("192.0.2.1")), Ipv4Header.ToUInt32(IPAddress.Parse("192.0.2.2")),
            50000, 63, 0xb8, 7, true, LispDataHeader.WithNonce(5, instanceId: 1000), inner.Length);
        inner.CopyTo(packet, n);
        Assert.That(n, Is.EqualTo(36));
        Assert.That(InternetChecksum.Compute(packet.AsSpan(0, 20)), Is.EqualTo(0), "outer IPv4 checksum verifies");
        Assert.That(packet.AsSpan(26, 2).ToArray(), Is.EqualTo(new byte[] { 0, 0 }), "UDP checksum is zero (RFC 9300 §5.3)");
        Assert.That(LispDataPacket.TryParse(packet, out var o, out var err), Is.True, err.ToString());
        Assert.That((o.IsIpv6, o.Ipv4.TimeToLive, o.Ipv4.TypeOfService, o.Ipv4.DontFragment, o.Udp.SourcePort, o.Udp.DestinationPort), Is.EqualTo((false, (byte)63, (byte)0xb8, true, (ushort)50000, (ushort)4341)));
        Assert.That((o.Lisp.InstanceId, o.Lisp.Nonce, o.InnerOffset, o.InnerLength), Is.EqualTo((1000u, 5u, 36, inner.Length)));
        Assert.That(o.Ipv4.Source, Is.EqualTo(IPAddress.Parse("192.0.2.1")));
    }

    [Test]
    public void Ipv6Encapsulation_BuildsAndParsesBack()
    {
        byte[] packet = new byte[LispDataPacket.Ipv6OverheadBytes + 10];
        int n = LispDataPacket.WriteIpv6(packet, Ipv6Header.ToUInt128(IPAddress.Parse("2001:db8::1")), Ipv6Header.ToUInt128(IPAddress.Parse("2001:db8::2")),
            40000, 64, 0x20, 0xabcde, LispDataHeader.Plain(instanceId: 9), 10);
        Assert.That(n, Is.EqualTo(56));
        Assert.That(LispDataPacket.TryParse(packet, out var o, out var err), Is.True, err.ToString());
        Assert.That((o.IsIpv6, o.Ipv6.FlowLabel, o.Ipv6.TrafficClass, o.Ipv6.HopLimit, o.Lisp.InstanceId, o.InnerLength), Is.EqualTo((true, 0xabcdeu, (byte)0x20, (byte)64, 9u, 10)));
        Assert.That(o.Ipv6.Destination, Is.EqualTo(IPAddress.Parse("2001:db8::2")));
    }

    [Test]
    public void Parse_RejectsCorruptChecksumWrongPortAndShortUdp()
    {
        byte[] packet = new byte[LispDataPacket.Ipv4OverheadBytes];
        LispDataPacket.WriteIpv4(packet, 1, 2, 1, 64, 0, 0, false, LispDataHeader.Plain(), 0);
        byte[] bad = (byte[])packet.Clone();
        bad[8] ^= 1;
        Assert.That(LispDataPacket.TryParse(bad, out _, out var e1), Is.False);
        Assert.That(e1, Is.EqualTo(DataPacketError.BadIpHeader));
        bad = (byte[])packet.Clone();
        bad[23] = 0x42; // destination port 4342 is control, not data
        Assert.That(LispDataPacket.TryParse(bad, out _, out var e2), Is.False);
        Assert.That(e2, Is.EqualTo(DataPacketError.NotLispPort));
        Assert.That(LispDataPacket.TryParse(packet.AsSpan(0, 30), out _, out var e3), Is.False);
        Assert.That(e3, Is.Not.EqualTo(DataPacketError.None));
    }

    [Test]
    public void InternetChecksum_MatchesRfc1071Example()
    {
        // RFC 1071 §3 example: the words 0001 f203 f4f5 f6f7 sum to ddf2, whose complement is 220d.
        Assert.That(InternetChecksum.Compute(Hex.Parse("00 01 f2 03 f4 f5 f6 f7")), Is.EqualTo(0x220d));
        Assert.That(InternetChecksum.Compute(Hex.Parse("00 01 f2 03 f4 f5 f6 f7 00")), Is.EqualTo(0x220d), "an odd zero byte pads");
    }
}
