using System.Buffers.Binary;
using FastXtr.Dataplane.Buffers;
using FastXtr.Packets;
using FastXtr.Dataplane.Decap;
using FastXtr.Dataplane.Encap;
using FastXtr.Packets;
using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;
using NUnit.Framework;

namespace FastXtr.Tests.Dataplane.Pipeline;

/// <summary>The ITR and ETR stages on in-memory packets: every verdict and every drop reason, with its counter.</summary>
[TestFixture]
public unsafe class PipelineTests() : PipelineFixture(2)
{
    private const uint Iid = 1000;
    private const uint LocalRloc = 0xC0000201;  // 192.0.2.1
    private const uint RemoteRloc = 0xC0000202; // 192.0.2.2
    private Encapsulator _encap = null!;

    [SetUp]
    public void SetUp()
    {
        _encap = new Encapsulator(Region.MapCache, LocalRloc, 1500, Counters, Region.MissRing(0), new MissSuppressor(), 42);
        Writer.Upsert(new MapCacheEntrySpec(Iid, 0, EidFamily.Ipv4, 0x0A020000, 16, [new RlocSpec(EidFamily.Ipv4, RemoteRloc, 1, 100)]));
    }

    /// <summary>Writes an IPv4/UDP packet into buffer 0 after the headroom and returns its length.</summary>
    private int Ipv4Udp(uint source, uint destination, int payload, bool dontFragment = false, byte ttl = 64, byte tos = 0, ushort sourcePort = 1000)
    {
        var p = new Span<byte>(Buffers.Data(0), 28 + payload);
        p.Clear();
        var ip = new Ipv4Header { TotalLength = (ushort)(28 + payload), TimeToLive = ttl, TypeOfService = tos, Protocol = 17, SourceAddress = source, DestinationAddress = destination,
            FlagsAndFragmentOffset = dontFragment ? Ipv4Header.FlagDontFragment : (ushort)0 };
        ip.Write(p);
        BinaryPrimitives.WriteUInt16BigEndian(p[20..], sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(p[22..], 53);
        BinaryPrimitives.WriteUInt16BigEndian(p[24..], (ushort)(8 + payload));
        return 28 + payload;
    }

    private ItrDecision Encap(int length, out int replyLength, uint iid = Iid) =>
        _encap.Process(Buffers.Buffer(0), length, iid, 0, MapCacheTables.Now, Buffers.Data(1), out replyLength);

    [Test]
    public void Hit_PrependsIpv4UdpLispInTheHeadroom()
    {
        int length = Ipv4Udp(0x0A010001, 0x0A020005, 100, ttl: 33, tos: 0xb9);
        var d = Encap(length, out _);
        Assert.That(d.Verdict, Is.EqualTo(ItrVerdict.Send));
        Assert.That((d.OuterStart, d.OuterLength, d.Destination), Is.EqualTo((PacketBuffers.HeadroomBytes - 36, length + 36, RemoteRloc)));
        var outer = new ReadOnlySpan<byte>(Buffers.Buffer(0) + d.OuterStart, d.OuterLength);
        Assert.That(LispDataPacket.TryParse(outer, out var o, out var err), Is.True, err.ToString());
        Assert.That((o.Ipv4.SourceAddress, o.Ipv4.DestinationAddress, o.Ipv4.TimeToLive, o.Ipv4.TypeOfService), Is.EqualTo((LocalRloc, RemoteRloc, (byte)33, (byte)0xb9)), "TTL and DSCP/ECN copied from the inner header");
        Assert.That((o.Udp.Checksum, o.Udp.SourcePort >= 0xC000, o.Lisp.NoncePresent, o.Lisp.InstanceIdPresent, o.Lisp.InstanceId), Is.EqualTo(((ushort)0, true, true, true, Iid)));
        Assert.That(outer[o.InnerOffset..].SequenceEqual(new ReadOnlySpan<byte>(Buffers.Data(0), length)), Is.True, "the inner packet is untouched");
        Assert.That(Counters[Counter.MapCacheHits], Is.EqualTo(1UL));
    }

    [Test]
    public void SourcePort_FollowsTheFlow()
    {
        var ports = new HashSet<ushort>();
        for (ushort sp = 1; sp <= 64; sp++)
        {
            int length = Ipv4Udp(0x0A010001, 0x0A020005, 10, sourcePort: sp);
            var d = Encap(length, out _);
            ports.Add(BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(Buffers.Buffer(0) + d.OuterStart + 20, 2)));
            Encap(length, out _);
            Assert.That(ports, Does.Contain(BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(Buffers.Buffer(0) + d.OuterStart + 20, 2))), "the same flow keeps its port");
        }
        Assert.That(ports, Has.Count.GreaterThan(48), "64 flows spread over many source ports");
    }

    /// <summary>
    /// A TUN's own router solicitations (fe80::1 → ff02::2), mDNS (224.0.0.251) and the like are never resolved: no
    /// Map-Request, one counted drop each.
    /// </summary>
    [Test]
    public void LinkScopeAndMulticastDestinations_AreNeverResolved()
    {
        int v4 = Ipv4Udp(0x0A010001, 0xE00000FB, 10);
        Assert.That(Encap(v4, out _).Verdict, Is.EqualTo(ItrVerdict.Drop));
        var p = new Span<byte>(Buffers.Data(0), 48);
        p.Clear();
        p[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(p[4..], 8);
        p[6] = 58;
        p[7] = 255;
        BinaryPrimitives.WriteUInt128BigEndian(p[8..], ((UInt128)0xfe80_0000_0000_0000UL << 64) | 1);
        BinaryPrimitives.WriteUInt128BigEndian(p[24..], ((UInt128)0xff02_0000_0000_0000UL << 64) | 2);
        Assert.That(Encap(48, out _).Verdict, Is.EqualTo(ItrVerdict.Drop));
        Span<MissRecord> misses = stackalloc MissRecord[8];
        Assert.That(Region.MissRing(0).Drain(misses), Is.EqualTo(0), "no Map-Request for either");
        Assert.That((Counters[Counter.DropLinkScopeOrMulticast], Counters[Counter.DropNoMapping]), Is.EqualTo((2UL, 0UL)));
        Assert.That(Encapsulator.NeverResolved(EidFamily.Ipv4, 0xA9FE0101), Is.True, "169.254.1.1");
        Assert.That(Encapsulator.NeverResolved(EidFamily.Ipv6, ((UInt128)0xfebf_0000_0000_0000UL << 64) | 1), Is.True, "fe80::/10 ends at febf::");
        Assert.That(Encapsulator.NeverResolved(EidFamily.Ipv6, ((UInt128)0xfec0_0000_0000_0000UL << 64) | 1), Is.False);
        Assert.That(Encapsulator.NeverResolved(EidFamily.Ipv4, 0x0A090001), Is.False);
    }

    [Test]
    public void Miss_IsPostedOnce_ThenSuppressed_AndCountedAsDrop()
    {
        for (int i = 0; i < 20; i++)
        {
            int length = Ipv4Udp(0x0A010001, 0x0A090001, 10);
            Assert.That(Encap(length, out _).Verdict, Is.EqualTo(ItrVerdict.Drop));
        }
        Span<MissRecord> misses = stackalloc MissRecord[8];
        Assert.That(Region.MissRing(0).Drain(misses), Is.EqualTo(1));
        Assert.That((misses[0].Kind, misses[0].InstanceId, (uint)misses[0].DestinationEid, (uint)misses[0].SourceEid), Is.EqualTo((MissKind.Miss, Iid, 0x0A090001u, 0x0A010001u)));
        Assert.That((Counters[Counter.DropNoMapping], Counters[Counter.MissesPosted], Counters[Counter.MissesSuppressed]), Is.EqualTo((20UL, 1UL, 19UL)));
    }

    [Test]
    public void OtherInstanceId_DoesNotSeeThisInstancesEntries()
    {
        int length = Ipv4Udp(0x0A010001, 0x0A020005, 10);
        Assert.That(Encap(length, out _, iid: 2000).Verdict, Is.EqualTo(ItrVerdict.Drop));
        Assert.That(Counters[Counter.DropNoMapping], Is.EqualTo(1UL));
    }

    [TestCase(MapReplyAction.DropPolicyDenied, Counter.DropPolicyDenied)]
    [TestCase(MapReplyAction.DropAuthFailure, Counter.DropAuthFailure)]
    [TestCase(MapReplyAction.DropNoReason, Counter.DropNegativeEntry)]
    [TestCase(MapReplyAction.SendMapRequest, Counter.DropNegativeEntry)]
    [TestCase(MapReplyAction.NativelyForward, Counter.DropNativeForwardUnsupported)]
    public void NegativeEntry_DropsWithItsReason(MapReplyAction action, Counter counter)
    {
        Writer.Upsert(new MapCacheEntrySpec(Iid, 0, EidFamily.Ipv4, 0x0A030000, 16, [], action));
        int length = Ipv4Udp(0x0A010001, 0x0A030001, 10);
        Assert.That(Encap(length, out _).Verdict, Is.EqualTo(ItrVerdict.Drop));
        Assert.That(Counters[counter], Is.EqualTo(1UL));
    }

    [Test]
    public void AllLocatorsDownOrPriority255_IsNoUsableRloc_AndAnUpOneIsChosenByPriority()
    {
        Writer.Upsert(new MapCacheEntrySpec(Iid, 0, EidFamily.Ipv4, 0x0A040000, 16,
            [new RlocSpec(EidFamily.Ipv4, 1, 1, 50, Up: false), new RlocSpec(EidFamily.Ipv4, 2, 255, 50), new RlocSpec(EidFamily.Ipv4, 3, 9, 50)]));
        int length = Ipv4Udp(0x0A010001, 0x0A040001, 10);
        Assert.That(Encap(length, out _).Destination, Is.EqualTo(3u), "the down RLOC and the priority-255 one are skipped");
        Writer.SetRlocState(Iid, 0, EidFamily.Ipv4, 0x0A040000, 16, 3, up: false);
        Assert.That(Encap(length, out _).Verdict, Is.EqualTo(ItrVerdict.Drop));
        Assert.That(Counters[Counter.DropNoUsableRloc], Is.EqualTo(1UL));
        Writer.SetRlocState(Iid, 0, EidFamily.Ipv4, 0x0A040000, 16, 1, up: true);
        Assert.That(Encap(length, out _).Destination, Is.EqualTo(1u), "priority 1 wins once it is up");
    }

    [Test]
    public void Weights_SpreadFlowsInProportion()
    {
        Writer.Upsert(new MapCacheEntrySpec(Iid, 0, EidFamily.Ipv4, 0x0A050000, 16, [new RlocSpec(EidFamily.Ipv4, 1, 1, 25), new RlocSpec(EidFamily.Ipv4, 2, 1, 75)]));
        int toTwo = 0;
        for (ushort sp = 0; sp < 2000; sp++)
            if (Encap(Ipv4Udp(0x0A010001, 0x0A050001, 10, sourcePort: sp), out _).Destination == 2) toTwo++;
        Assert.That(toTwo, Is.InRange(1350, 1650), "about 75% of 2000 flows");
    }

    [Test]
    public void TooBigWithDf_RepliesWithIcmpFragmentationNeeded()
    {
        int length = Ipv4Udp(0x0A010001, 0x0A020005, 1472 - 8, dontFragment: true); // a 1492-byte packet: 1528 once encapsulated
        var d = Encap(length, out int replyLength);
        Assert.That(d.Verdict, Is.EqualTo(ItrVerdict.ReplyTooBig));
        var reply = new ReadOnlySpan<byte>(Buffers.Data(1), replyLength);
        Assert.That(Ipv4Header.TryRead(reply, out var ip, out _), Is.True);
        Assert.That((ip.Protocol, ip.DestinationAddress, reply[20], reply[21]), Is.EqualTo(((byte)1, 0x0A010001u, (byte)3, (byte)4)));
        Assert.That(BinaryPrimitives.ReadUInt16BigEndian(reply[26..]), Is.EqualTo(1464), "next-hop MTU = 1500 - 36");
        Assert.That(InternetChecksum.Compute(reply[20..]), Is.EqualTo(0), "ICMP checksum verifies");
        Assert.That((Counters[Counter.IcmpTooBigSent], Counters[Counter.DropTooBig]), Is.EqualTo((1UL, 1UL)));
    }

    [Test]
    public void TooBigIpv6_RepliesWithPacketTooBig()
    {
        Writer.Upsert(new MapCacheEntrySpec(Iid, 0, EidFamily.Ipv6, (UInt128)0x20010db8u << 96, 32, [new RlocSpec(EidFamily.Ipv4, RemoteRloc, 1, 1)]));
        var p = new Span<byte>(Buffers.Data(0), 1480);
        p.Clear();
        new Ipv6Header { PayloadLength = 1440, NextHeader = 17, HopLimit = 9, SourceAddress = ((UInt128)0x20010db9u << 96) | 1, DestinationAddress = ((UInt128)0x20010db8u << 96) | 5 }.Write(p);
        var d = _encap.Process(Buffers.Buffer(0), 1480, Iid, 0, MapCacheTables.Now, Buffers.Data(1), out int replyLength);
        Assert.That(d.Verdict, Is.EqualTo(ItrVerdict.ReplyTooBig));
        var reply = new ReadOnlySpan<byte>(Buffers.Data(1), replyLength);
        Assert.That((reply[6], reply[40]), Is.EqualTo(((byte)58, (byte)2)));
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(reply[44..]), Is.EqualTo(1464u));
    }

    [Test]
    public void TooBigWithoutDf_IsFragmentedIntoValidOuterFragments()
    {
        int length = Ipv4Udp(0x0A010001, 0x0A020005, 1472 - 8);
        var d = Encap(length, out _);
        Assert.That(d.Verdict, Is.EqualTo(ItrVerdict.SendFragmented));
        using var scratch = new PacketBuffers(4);
        var lengths = new int[4];
        int n = _encap.Fragment(new ReadOnlySpan<byte>(Buffers.Buffer(0) + d.OuterStart, d.OuterLength), scratch.Data(0), lengths);
        Assert.That(n, Is.EqualTo(2));
        var reassembled = new List<byte>();
        for (int i = 0; i < n; i++)
        {
            var f = new ReadOnlySpan<byte>(scratch.Data(0) + (long)i * PacketBuffers.MaxPacketBytes, lengths[i]);
            Assert.That(lengths[i], Is.LessThanOrEqualTo(1500));
            Assert.That(Ipv4Header.TryRead(f, out var h, out var e), Is.True, e.ToString());
            Assert.That((h.FlagsAndFragmentOffset & 0x1FFF) * 8, Is.EqualTo(reassembled.Count));
            Assert.That((h.FlagsAndFragmentOffset & Ipv4Header.FlagMoreFragments) != 0, Is.EqualTo(i < n - 1));
            reassembled.AddRange(f[20..].ToArray());
        }
        Assert.That(reassembled.ToArray(), Is.EqualTo(new ReadOnlySpan<byte>(Buffers.Buffer(0) + d.OuterStart + 20, d.OuterLength - 20).ToArray()));
    }

    [TestCase(new byte[0], Counter.DropTruncated)]
    [TestCase(new byte[] { 0x45, 0, 0 }, Counter.DropTruncated)]
    [TestCase(new byte[] { 0x15, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8 }, Counter.DropNotIp)]
    [TestCase(new byte[] { 0x60, 0, 0, 0, 0, 0, 17, 64 }, Counter.DropTruncated)]
    public void MalformedInner_IsCounted(byte[] packet, Counter counter)
    {
        packet.CopyTo(new Span<byte>(Buffers.Data(0), packet.Length));
        Assert.That(Encap(packet.Length, out _).Verdict, Is.EqualTo(ItrVerdict.Drop));
        Assert.That(Counters[counter], Is.EqualTo(1UL));
    }

    // ---- ETR ----

    private static byte[] LispPayload(LispDataHeader header, uint source, uint destination, byte ttl = 64, byte tos = 0)
    {
        byte[] b = new byte[8 + 28];
        header.Write(b);
        new Ipv4Header { TotalLength = 28, TimeToLive = ttl, TypeOfService = tos, Protocol = 17, SourceAddress = source, DestinationAddress = destination }.Write(b.AsSpan(8));
        return b;
    }

    [Test]
    public void Decap_SelectsTheInstancesTun_AndBoundsTheTtl_KeepingTheChecksumValid()
    {
        var decap = new Decapsulator([1000u, 2000u], Counters);
        byte[] p = LispPayload(LispDataHeader.WithNonce(7, 2000), 0x0A010001, 0x0A020001, ttl: 64);
        var d = decap.Process(p, RemoteRloc, outerTtl: 5, outerTos: 0);
        Assert.That((d.Deliver, d.Instance, d.InnerOffset, d.InnerLength), Is.EqualTo((true, 1, 8, 28)));
        Assert.That(p[8 + 8], Is.EqualTo(5), "inner TTL = min(inner, outer)");
        Assert.That(InternetChecksum.Compute(p.AsSpan(8, 20)), Is.EqualTo(0), "incrementally updated checksum verifies");
    }

    [Test]
    public void Decap_OuterCe_MarksAnEctInnerCe_AndDropsANotEctOne()
    {
        var decap = new Decapsulator([1000u], Counters);
        byte[] ect = LispPayload(LispDataHeader.WithNonce(1, 1000), 1, 2, tos: 0x02);
        Assert.That(decap.Process(ect, RemoteRloc, 64, 0x03).Deliver, Is.True);
        Assert.That(ect[8 + 1] & 3, Is.EqualTo(3));
        Assert.That(InternetChecksum.Compute(ect.AsSpan(8, 20)), Is.EqualTo(0));
        byte[] notEct = LispPayload(LispDataHeader.WithNonce(1, 1000), 1, 2, tos: 0x00);
        Assert.That(decap.Process(notEct, RemoteRloc, 64, 0x03).Deliver, Is.False);
        Assert.That(Counters[Counter.DropTtlExpired], Is.EqualTo(1UL));
    }

    [Test]
    public void Decap_UnknownInstanceId_IsDroppedAndCounted()
    {
        var decap = new Decapsulator([1000u], Counters);
        Assert.That(decap.Process(LispPayload(LispDataHeader.WithNonce(1, 2000), 1, 2), RemoteRloc, 64, 0).Deliver, Is.False);
        Assert.That(decap.Process(LispPayload(LispDataHeader.WithNonce(1), 1, 2), RemoteRloc, 64, 0).Deliver, Is.False, "no I bit means IID 0");
        Assert.That(Counters[Counter.DropUnknownInstanceId], Is.EqualTo(2UL));
    }

    [Test]
    public void Decap_Filter_AcceptsOnlyTheSourceEidsRegisteredRloc()
    {
        Writer.Upsert(new MapCacheEntrySpec(Iid, 0, EidFamily.Ipv4, 0x0A010000, 16, [new RlocSpec(EidFamily.Ipv4, RemoteRloc, 1, 1)]));
        var decap = new Decapsulator([Iid], Counters, Region.MapCache, decapFilter: true);
        Assert.That(decap.Process(LispPayload(LispDataHeader.WithNonce(1, Iid), 0x0A010009, 2), RemoteRloc, 64, 0).Deliver, Is.True);
        Assert.That(decap.Process(LispPayload(LispDataHeader.WithNonce(1, Iid), 0x0A010009, 2), 0xC0000299, 64, 0).Deliver, Is.False, "spoofed outer source");
        Assert.That(decap.Process(LispPayload(LispDataHeader.WithNonce(1, Iid), 0x0B000001, 2), RemoteRloc, 64, 0).Deliver, Is.False, "source EID with no mapping");
        Assert.That(Counters[Counter.DropDecapFilter], Is.EqualTo(2UL));
    }

    [Test]
    public void Decap_PacketForAMovedAwayEid_IsDeliveredAndReportedOncePerSecond()
    {
        Writer.Upsert(MapCacheEntrySpec.MovedAway(Iid, EidFamily.Ipv4, 0x0A010002, 32, ttlMinutes: 1440));
        var decap = new Decapsulator([Iid], Counters, Region.MapCache, solicits: Region.MissRing(0));
        for (int i = 0; i < 3; i++)
            Assert.That(decap.Process(LispPayload(LispDataHeader.WithNonce(1, Iid), 0x0A020005, 0x0A010002), RemoteRloc, 64, 0).Deliver, Is.True, "still delivered");
        Assert.That(decap.Process(LispPayload(LispDataHeader.WithNonce(1, Iid), 0x0A020005, 0x0A010003), RemoteRloc, 64, 0).Deliver, Is.True);
        Span<MissRecord> posted = stackalloc MissRecord[8];
        int n = Region.MissRing(0).Drain(posted);
        Assert.That(n, Is.EqualTo(1), "one report for three packets within a second; none for an EID that did not move");
        Assert.That((posted[0].Kind, posted[0].Profile, posted[0].DestinationEid, posted[0].SourceEid, posted[0].OuterSource),
            Is.EqualTo((MissKind.MovedAwayHit, (ushort)0, (UInt128)0x0A010002, (UInt128)0x0A020005, MappedIpv4.From(RemoteRloc))), "an IPv4 ITR in its mapped form");
        Assert.That((Counters[Counter.MovedEidPackets], Counters[Counter.SolicitsPosted]), Is.EqualTo((3UL, 1UL)));
    }

    [Test]
    public void Encap_SourcesInAProfile_AreLookedUpUnderThatProfile()
    {
        // Profile 1's own entry for 10.2.0.0/16 points elsewhere; only 10.1.0.7 is in profile 1.
        Writer.Upsert(new MapCacheEntrySpec(Iid, 1, EidFamily.Ipv4, 0x0A020000, 16, [new RlocSpec(EidFamily.Ipv4, 0xC0000203, 1, 100)]));
        Writer.Upsert(MapCacheEntrySpec.SourceProfile(Iid, EidFamily.Ipv4, 0x0A010007, 32, profile: 1));
        Assert.That(Encap(Ipv4Udp(0x0A010007, 0x0A020001, 10), out _).Destination, Is.EqualTo(0xC0000203u), "profiled source");
        Assert.That(Encap(Ipv4Udp(0x0A010008, 0x0A020001, 10), out _).Destination, Is.EqualTo(RemoteRloc), "other sources: profile 0");
        Writer.Remove(Iid, MapCacheEntry.SourceProfileKey, EidFamily.Ipv4, 0x0A010007, 32);
        Assert.That(Encap(Ipv4Udp(0x0A010007, 0x0A020001, 10), out _).Destination, Is.EqualTo(RemoteRloc), "profile entry removed");
    }

    [Test]
    public void Decap_MalformedPayloads_AreCounted()
    {
        var decap = new Decapsulator([Iid], Counters);
        Assert.That(decap.Process(new byte[5], RemoteRloc, 64, 0).Deliver, Is.False);
        Assert.That(decap.Process(Support.Hex.Parse("98 00 00 01 00 03 e8 00 45 00"), RemoteRloc, 64, 0).Deliver, Is.False, "N and V together");
        byte[] shortInner = LispPayload(LispDataHeader.WithNonce(1, Iid), 1, 2).AsSpan(0, 20).ToArray();
        Assert.That(decap.Process(shortInner, RemoteRloc, 64, 0).Deliver, Is.False);
        byte[] notIp = LispPayload(LispDataHeader.WithNonce(1, Iid), 1, 2);
        notIp[8] = 0x25;
        Assert.That(decap.Process(notIp, RemoteRloc, 64, 0).Deliver, Is.False);
        Assert.That((Counters[Counter.DropTruncated], Counters[Counter.DropBadOuterHeader], Counters[Counter.DropNotIp]), Is.EqualTo((2UL, 1UL, 1UL)));
    }

    [Test]
    public void RlocSelector_IsDeterministicPerFlow_AndSkipsIpv6RlocsOnThisIpv4Underlay()
    {
        var entry = new MapCacheEntry { RlocCount = 2 };
        entry.Rlocs[0] = new RlocSlot { Family = EidFamily.Ipv6, Address = 5, Priority = 1, Weight = 1, State = RlocSlot.StateUp };
        entry.Rlocs[1] = new RlocSlot { Family = EidFamily.Ipv4, Address = 6, Priority = 2, Weight = 1, State = RlocSlot.StateUp };
        Assert.That(RlocSelector.Choose(entry, 12345), Is.EqualTo(1));
    }
}
