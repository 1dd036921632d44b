using System.Buffers.Binary;
using System.Net;
using FastXtr.Dataplane.Buffers;
using FastXtr.Dataplane.Decap;
using FastXtr.Dataplane.Encap;
using FastXtr.Packets;
using FastXtr.SharedMemory;
using FastXtr.SharedMemory.MapCache;
using NUnit.Framework;

namespace FastXtr.Tests.Dataplane.Pipeline;

/// <summary>
/// The ITR and ETR over an IPv6 underlay, on in-memory packets: the IPv6 outer header (its UDP checksum, flow label,
/// hop limit, traffic class), RLOC choice by the families this xTR has, the MTU rules with 56 bytes of overhead
/// (inner fragmentation, Packet Too Big) and the decapsulation filter with IPv6 outer sources.
/// </summary>
[TestFixture]
public unsafe class Ipv6UnderlayPipelineTests() : PipelineFixture(20)
{
    private const uint Iid = 1000;
    private const uint LocalRloc = 0xC0000201, RemoteRloc = 0xC0000202;
    private static readonly UInt128 LocalRloc6 = Ipv6Header.ToUInt128(IPAddress.Parse("2001:db8::1"));
    private static readonly UInt128 RemoteRloc6 = Ipv6Header.ToUInt128(IPAddress.Parse("2001:db8::2"));

    [SetUp]
    public void SetUp()
    {
        // 10.2/16 behind an IPv6 locator (priority 1) and an IPv4 one (priority 2).
        Writer.Upsert(new MapCacheEntrySpec(Iid, 0, EidFamily.Ipv4, 0x0A020000, 16,
            [new RlocSpec(EidFamily.Ipv6, RemoteRloc6, 1, 100), new RlocSpec(EidFamily.Ipv4, RemoteRloc, 2, 100)]));
    }

    private Encapsulator Itr(uint rloc4, UInt128 rloc6, bool zeroChecksum = false, int mtu = 1500) =>
        new(Region.MapCache, rloc4, rloc6, zeroChecksum, mtu, Counters, Region.MissRing(0), new MissSuppressor(), 42);

    private int Ipv4Udp(int buffer, uint source, uint destination, int payload, bool dontFragment = false, byte ttl = 64, byte tos = 0, ushort sourcePort = 1000)
    {
        var p = new Span<byte>(Buffers.Data(buffer), 28 + payload);
        for (int i = 0; i < p.Length; i++) p[i] = (byte)(i * 7);
        var ip = new Ipv4Header
        {
            TotalLength = (ushort)(28 + payload), TimeToLive = ttl, TypeOfService = tos, Protocol = 17, SourceAddress = source, DestinationAddress = destination,
            Identification = 0x1234, FlagsAndFragmentOffset = dontFragment ? Ipv4Header.FlagDontFragment : (ushort)0,
        };
        ip.Write(p);
        BinaryPrimitives.WriteUInt16BigEndian(p[20..], sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(p[22..], 53);
        BinaryPrimitives.WriteUInt16BigEndian(p[24..], (ushort)(8 + payload));
        BinaryPrimitives.WriteUInt16BigEndian(p[26..], 0);
        return 28 + payload;
    }

    private ItrDecision Encap(Encapsulator itr, int length, out int replyLength) =>
        itr.Process(Buffers.Buffer(0), length, Iid, 0, MapCacheTables.Now, Buffers.Data(1), out replyLength);

    /// <summary>The ones' complement sum over the IPv6 pseudo-header and the UDP datagram: 0xFFFF when the checksum is right.</summary>
    private static ushort UdpSumIncludingChecksum(ReadOnlySpan<byte> outer)
    {
        int udpLength = BinaryPrimitives.ReadUInt16BigEndian(outer[4..]);
        uint sum = InternetChecksum.Sum(outer.Slice(8, 32), (uint)udpLength + 17);
        sum = InternetChecksum.Sum(outer.Slice(40, udpLength), sum);
        while ((sum >> 16) != 0) sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)sum;
    }

    [Test]
    public void DualStackItr_TakesTheIpv6Locator_WithAChecksummedIpv6UdpLispHeader()
    {
        var itr = Itr(LocalRloc, LocalRloc6);
        int length = Ipv4Udp(0, 0x0A010001, 0x0A020005, 333, ttl: 33, tos: 0xb9);
        var d = Encap(itr, length, out _);
        Assert.That((d.Verdict, d.Ipv6, d.Destination6, d.OuterStart, d.OuterLength), Is.EqualTo((ItrVerdict.Send, true, RemoteRloc6, PacketBuffers.HeadroomBytes - 56, length + 56)));
        var outer = new ReadOnlySpan<byte>(Buffers.Buffer(0) + d.OuterStart, d.OuterLength);
        Assert.That(LispDataPacket.TryParse(outer, out var o, out var err), Is.True, err.ToString());
        Assert.That(o.IsIpv6, Is.True);
        Assert.That((o.Ipv6.SourceAddress, o.Ipv6.DestinationAddress, o.Ipv6.HopLimit, o.Ipv6.TrafficClass), Is.EqualTo((LocalRloc6, RemoteRloc6, (byte)33, (byte)0xb9)),
            "hop limit and traffic class from the inner header (RFC 9300 §5.3)");
        Assert.That(o.Ipv6.PayloadLength, Is.EqualTo(length + 16));
        Assert.That(o.Udp.Checksum, Is.Not.Zero);
        Assert.That(UdpSumIncludingChecksum(outer), Is.EqualTo(0xFFFF), "the UDP checksum verifies over the pseudo-header and the whole datagram");
        Assert.That((o.Udp.SourcePort, d.SourcePort, d.Ttl, d.Tos), Is.EqualTo((d.SourcePort, FlowHash.SourcePort(FlowHash.Compute(outer[56..])), (byte)33, (byte)0xb9)));
        Assert.That(o.Ipv6.FlowLabel, Is.EqualTo(FlowHash.Compute(outer[56..]) & 0xFFFFF), "the flow label is the inner flow's hash (RFC 6438)");
        Assert.That(outer[o.InnerOffset..].SequenceEqual(new ReadOnlySpan<byte>(Buffers.Data(0), length)), Is.True, "the inner packet is untouched");
    }

    [Test]
    public void FlowLabel_DiffersBetweenFlows_AndStaysWithinAFlow()
    {
        var itr = Itr(0, LocalRloc6);
        var labels = new HashSet<uint>();
        for (ushort port = 1000; port < 1032; port++)
        {
            var d = Encap(itr, Ipv4Udp(0, 0x0A010001, 0x0A020005, 10, sourcePort: port), out _);
            Assert.That(LispDataPacket.TryParse(new ReadOnlySpan<byte>(Buffers.Buffer(0) + d.OuterStart, d.OuterLength), out var o, out _), Is.True);
            labels.Add(o.Ipv6.FlowLabel);
            var again = Encap(itr, Ipv4Udp(0, 0x0A010001, 0x0A020005, 10, sourcePort: port), out _);
            Assert.That(LispDataPacket.TryParse(new ReadOnlySpan<byte>(Buffers.Buffer(0) + again.OuterStart, again.OuterLength), out var o2, out _), Is.True);
            Assert.That(o2.Ipv6.FlowLabel, Is.EqualTo(o.Ipv6.FlowLabel));
        }
        Assert.That(labels, Has.Count.GreaterThan(28));
    }

    [Test]
    public void ZeroChecksum_WhenConfigured_LeavesTheUdpChecksumZero()
    {
        var d = Encap(Itr(0, LocalRloc6, zeroChecksum: true), Ipv4Udp(0, 0x0A010001, 0x0A020005, 100), out _);
        Assert.That(LispDataPacket.TryParse(new ReadOnlySpan<byte>(Buffers.Buffer(0) + d.OuterStart, d.OuterLength), out var o, out _), Is.True);
        Assert.That(o.Udp.Checksum, Is.Zero);
    }

    [Test]
    public void ChecksumThatSumsToZero_IsSentAsAllOnes()
    {
        // RFC 768: a computed checksum of 0 is transmitted as 0xFFFF (0 means "none"). Search the payload byte that
        // makes the sum come out 0, then check what is written.
        var itr = Itr(0, LocalRloc6);
        for (int b = 0; b < 256 * 256; b++)
        {
            int length = Ipv4Udp(0, 0x0A010001, 0x0A020005, 8);
            BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(Buffers.Data(0) + 28, 2), (ushort)b);
            var d = Encap(itr, length, out _);
            var outer = new ReadOnlySpan<byte>(Buffers.Buffer(0) + d.OuterStart, d.OuterLength);
            if (BinaryPrimitives.ReadUInt16BigEndian(outer[46..]) != 0xFFFF) continue;
            Assert.That(UdpSumIncludingChecksum(outer), Is.EqualTo(0xFFFF));
            return;
        }
        Assert.Fail("no payload made the checksum 0xFFFF");
    }

    [Test]
    public void Ipv4OnlyItr_SkipsTheIpv6Locator_AndIpv6OnlyItr_TheIpv4One()
    {
        var v4 = Encap(Itr(LocalRloc, 0), Ipv4Udp(0, 0x0A010001, 0x0A020005, 10), out _);
        Assert.That((v4.Verdict, v4.Ipv6, v4.Destination), Is.EqualTo((ItrVerdict.Send, false, RemoteRloc)));
        Writer.Upsert(new MapCacheEntrySpec(Iid, 0, EidFamily.Ipv4, 0x0A030000, 16, [new RlocSpec(EidFamily.Ipv4, RemoteRloc, 1, 100), new RlocSpec(EidFamily.Ipv6, RemoteRloc6, 2, 100)]));
        var v6 = Encap(Itr(0, LocalRloc6), Ipv4Udp(0, 0x0A010001, 0x0A030005, 10), out _);
        Assert.That((v6.Verdict, v6.Ipv6, v6.Destination6), Is.EqualTo((ItrVerdict.Send, true, RemoteRloc6)), "priority 2, but the only one of its family");
        Writer.Upsert(new MapCacheEntrySpec(Iid, 0, EidFamily.Ipv4, 0x0A040000, 16, [new RlocSpec(EidFamily.Ipv4, RemoteRloc, 1, 100)]));
        var none = Encap(Itr(0, LocalRloc6), Ipv4Udp(0, 0x0A010001, 0x0A040005, 10), out _);
        Assert.That((none.Verdict, Counters[Counter.DropNoUsableRloc]), Is.EqualTo((ItrVerdict.Drop, 1UL)), "no locator of our family: a counted drop");
    }

    [Test]
    public void EqualPriorities_SpreadFlowsOverBothFamilies_ByWeight()
    {
        Writer.Upsert(new MapCacheEntrySpec(Iid, 0, EidFamily.Ipv4, 0x0A050000, 16, [new RlocSpec(EidFamily.Ipv4, RemoteRloc, 1, 50), new RlocSpec(EidFamily.Ipv6, RemoteRloc6, 1, 50)]));
        var itr = Itr(LocalRloc, LocalRloc6);
        int six = 0;
        for (ushort port = 1000; port < 1400; port++) six += Encap(itr, Ipv4Udp(0, 0x0A010001, 0x0A050005, 10, sourcePort: port), out _).Ipv6 ? 1 : 0;
        Assert.That(six, Is.InRange(140, 260), "about half of 400 flows");
    }

    [Test]
    public void TooBigForIpv6_WithDf_AnswersWithTheMtuLeft_WithoutDf_FragmentsTheInnerPacket()
    {
        var itr = Itr(0, LocalRloc6);
        var df = Encap(itr, Ipv4Udp(0, 0x0A010001, 0x0A020005, 1500 - 28 - 40, dontFragment: true), out int replyLength);
        Assert.That(df.Verdict, Is.EqualTo(ItrVerdict.ReplyTooBig));
        var icmp = new ReadOnlySpan<byte>(Buffers.Data(1), replyLength);
        Assert.That((icmp[20], icmp[21], BinaryPrimitives.ReadUInt16BigEndian(icmp[26..])), Is.EqualTo(((byte)3, (byte)4, (ushort)1444)), "fragmentation needed, next-hop MTU 1500 - 56");

        int length = Ipv4Udp(0, 0x0A010001, 0x0A020005, 3000);
        var d = Encap(itr, length, out _);
        Assert.That(d.Verdict, Is.EqualTo(ItrVerdict.FragmentInner));
        int stride = (int)(Buffers.Buffer(3) - Buffers.Buffer(2));
        Span<int> lengths = stackalloc int[16];
        int count = itr.FragmentInner(new ReadOnlySpan<byte>(Buffers.Data(0), length), Buffers.Buffer(2), stride, PacketBuffers.HeadroomBytes, lengths);
        Assert.That(count, Is.EqualTo(3));
        var original = new ReadOnlySpan<byte>(Buffers.Data(0), length);
        var reassembled = new byte[length - 20];
        for (int k = 0; k < count; k++)
        {
            var f = new ReadOnlySpan<byte>(Buffers.Data(2 + k), lengths[k]);
            Assert.That(lengths[k], Is.LessThanOrEqualTo(1444));
            Assert.That(InternetChecksum.Compute(f[..20]), Is.Zero, "each fragment's header checksum");
            ushort flags = BinaryPrimitives.ReadUInt16BigEndian(f[6..]);
            Assert.That((flags & Ipv4Header.FlagMoreFragments) != 0, Is.EqualTo(k < count - 1));
            Assert.That(BinaryPrimitives.ReadUInt16BigEndian(f[4..]), Is.EqualTo(0x1234), "the identification is kept");
            f[20..].CopyTo(reassembled.AsSpan((flags & 0x1FFF) * 8));
            // Each piece goes through the ITR to the IPv6 locator as a packet that fits.
            var piece = itr.Process(Buffers.Buffer(2 + k), lengths[k], Iid, 0, MapCacheTables.Now, Buffers.Data(1), out _);
            Assert.That((piece.Verdict, piece.Ipv6), Is.EqualTo((ItrVerdict.Send, true)));
        }
        Assert.That(reassembled.AsSpan().SequenceEqual(original[20..]), Is.True, "the pieces reassemble into the original payload");
        Assert.That(Counters[Counter.InnerFragmentsSent], Is.EqualTo(3UL));
    }

    [Test]
    public void InnerFragment_OfAFragment_KeepsItsOffsetAndMoreFragmentsBit()
    {
        var itr = Itr(0, LocalRloc6);
        int length = Ipv4Udp(0, 0x0A010001, 0x0A020005, 2000 - 28);
        var p = new Span<byte>(Buffers.Data(0), length);
        BinaryPrimitives.WriteUInt16BigEndian(p[6..], (ushort)(Ipv4Header.FlagMoreFragments | 100)); // offset 800, more to come
        Span<int> lengths = stackalloc int[16];
        int stride = (int)(Buffers.Buffer(3) - Buffers.Buffer(2));
        int count = itr.FragmentInner(p, Buffers.Buffer(2), stride, PacketBuffers.HeadroomBytes, lengths);
        Assert.That(count, Is.EqualTo(2));
        var first = new ReadOnlySpan<byte>(Buffers.Data(2), lengths[0]);
        var last = new ReadOnlySpan<byte>(Buffers.Data(3), lengths[1]);
        Assert.That(BinaryPrimitives.ReadUInt16BigEndian(first[6..]), Is.EqualTo(Ipv4Header.FlagMoreFragments | 100));
        Assert.That(BinaryPrimitives.ReadUInt16BigEndian(last[6..]), Is.EqualTo(Ipv4Header.FlagMoreFragments | (100 + (lengths[0] - 20) / 8)), "the last piece keeps the original MF");
    }

    [Test]
    public void InnerIpv6_TooBigForIpv6_GetsPacketTooBigWith1444()
    {
        var itr = Itr(0, LocalRloc6);
        Writer.Upsert(new MapCacheEntrySpec(Iid, 0, EidFamily.Ipv6, Ipv6Header.ToUInt128(IPAddress.Parse("fd10:2::")), 64, [new RlocSpec(EidFamily.Ipv6, RemoteRloc6, 1, 100)]));
        var p = new Span<byte>(Buffers.Data(0), 1500);
        p.Clear();
        new Ipv6Header
        {
            PayloadLength = 1460, NextHeader = 17, HopLimit = 64,
            SourceAddress = Ipv6Header.ToUInt128(IPAddress.Parse("fd10:1::1")), DestinationAddress = Ipv6Header.ToUInt128(IPAddress.Parse("fd10:2::1")),
        }.Write(p);
        var d = Encap(itr, 1500, out int replyLength);
        Assert.That(d.Verdict, Is.EqualTo(ItrVerdict.ReplyTooBig));
        var icmp = new ReadOnlySpan<byte>(Buffers.Data(1), replyLength);
        Assert.That((icmp[40], BinaryPrimitives.ReadUInt32BigEndian(icmp[44..])), Is.EqualTo(((byte)2, 1444u)));
    }

    [Test]
    public void DecapFilter_ComparesIpv6OuterSourcesWithIpv6Locators()
    {
        Writer.Upsert(new MapCacheEntrySpec(Iid, 0, EidFamily.Ipv4, 0x0A010000, 16, [new RlocSpec(EidFamily.Ipv6, RemoteRloc6, 1, 100)]));
        var decap = new Decapsulator([Iid], Counters, Region.MapCache, decapFilter: true);
        byte[] Payload()
        {
            var b = new byte[8 + 20];
            LispDataHeader.WithNonce(1, Iid).Write(b);
            new Ipv4Header { TotalLength = 20, TimeToLive = 64, Protocol = 17, SourceAddress = 0x0A010009, DestinationAddress = 0x0A020001 }.Write(b.AsSpan(8));
            return b;
        }
        Assert.That(decap.Process(Payload(), RemoteRloc6, 64, 0).Deliver, Is.True, "the IPv6 locator of the source EID");
        Assert.That(decap.Process(Payload(), LocalRloc6, 64, 0).Deliver, Is.False, "another IPv6 source");
        Assert.That(decap.Process(Payload(), MappedIpv4.From((uint)RemoteRloc6), 64, 0).Deliver, Is.False, "an IPv4 source with the IPv6 locator's low bits");
        Assert.That(Counters[Counter.DropDecapFilter], Is.EqualTo(2UL));
    }

    [Test]
    public void MappedIpv4_IsTheRfc4291Form()
    {
        Assert.That(Ipv6Header.ToAddress(MappedIpv4.From(0xC0000201)), Is.EqualTo(IPAddress.Parse("::ffff:192.0.2.1")));
        Assert.That((MappedIpv4.IsMapped(MappedIpv4.From(1)), MappedIpv4.IsMapped(RemoteRloc6), MappedIpv4.Ipv4Of(MappedIpv4.From(0xC0000201))), Is.EqualTo((true, false, 0xC0000201u)));
    }

    [Test]
    public void ALocatorWithItsOwnPort_GetsLispDataThere_InEitherFamily()
    {
        Writer.Upsert(new MapCacheEntrySpec(Iid, 0, EidFamily.Ipv4, 0x0A060000, 16, [new RlocSpec(EidFamily.Ipv4, RemoteRloc, 1, 100, Port: 5000)]));
        Writer.Upsert(new MapCacheEntrySpec(Iid, 0, EidFamily.Ipv4, 0x0A070000, 16, [new RlocSpec(EidFamily.Ipv6, RemoteRloc6, 1, 100, Port: 6000)]));
        var itr = Itr(LocalRloc, LocalRloc6);
        foreach (var (destination, port) in new[] { (0x0A060005u, (ushort)5000), (0x0A070005u, (ushort)6000), (0x0A020005u, (ushort)4341) })
        {
            var d = Encap(itr, Ipv4Udp(0, 0x0A010001, destination, 10), out _);
            var outer = new ReadOnlySpan<byte>(Buffers.Buffer(0) + d.OuterStart, d.OuterLength);
            Assert.That(LispDataPacket.TryParse(outer, port, out var o, out var error), Is.True, error.ToString());
            Assert.That((o.Udp.DestinationPort, d.DestinationPort), Is.EqualTo((port, port)));
            if (d.Ipv6) Assert.That(UdpSumIncludingChecksum(outer), Is.EqualTo(0xFFFF), "the checksum covers the port");
        }
    }

    [TestCase("192.0.2.2:5000,2,50", EidFamily.Ipv4, (ushort)5000, (byte)2)]
    [TestCase("[2001:db8::2]:6000", EidFamily.Ipv6, (ushort)6000, (byte)1)]
    [TestCase("2001:db8::2,3", EidFamily.Ipv6, (ushort)0, (byte)3)]
    [TestCase("192.0.2.2:4341", EidFamily.Ipv4, (ushort)0, (byte)1)]
    public void RlocSpec_ParsesAnOptionalPort(string text, EidFamily family, ushort port, byte priority)
    {
        var spec = RlocSpec.Parse(text);
        Assert.That((spec.Family, spec.Port, spec.Priority), Is.EqualTo((family, port, priority)));
    }

    [Test]
    public void RestoredEntries_KeepTheirLocatorsPorts()
    {
        Writer.Upsert(new MapCacheEntrySpec(Iid, 0, EidFamily.Ipv4, 0x0A060000, 16, [new RlocSpec(EidFamily.Ipv6, RemoteRloc6, 1, 100, Port: 6000)]));
        var entry = Region.MapCache.Snapshot().Single(e => e.Prefix == 0x0A060000);
        Assert.That(entry.Rlocs[0].Port, Is.EqualTo(6000));
        using var other = SharedRegion.CreatePrivate(new SharedRegionSizes(256, 16, 1, 16));
        using var w = other.CreateWriter();
        w.Restore(entry);
        Assert.That(other.MapCache.Snapshot().Single().Rlocs[0].Port, Is.EqualTo(6000));
    }
}
