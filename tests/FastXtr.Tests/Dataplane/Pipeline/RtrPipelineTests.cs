using System.Buffers.Binary;
using FastXtr.Dataplane.Buffers;
using FastXtr.Dataplane.Decap;
using FastXtr.Dataplane.Encap;
using FastXtr.Dataplane.Workers;
using FastXtr.Packets;
using FastXtr.SharedMemory;
using FastXtr.SharedMemory.MapCache;
using NUnit.Framework;

namespace FastXtr.Tests.Dataplane.Pipeline;

/// <summary>
/// The pieces of NAT traversal on the packet path: a locator across a NAT is sent to from the data port; an RTR's ETR
/// stage takes every Instance ID, forwards only for sources whose mapping lists the outer source and asks for the
/// mapping of a source it does not know; the RTR hop lowers the inner TTL; the inbox of Info-Requests.
/// </summary>
[TestFixture]
public unsafe class RtrPipelineTests() : PipelineFixture(2)
{
    private const uint Iid = 1000;
    private const uint LocalRloc = 0xC6336414;   // 198.51.100.20, the RTR
    private const uint NatAddress = 0xC6336401;  // 198.51.100.1, a NAT's public address

    private static Span<byte> Ipv4(byte* at, uint source, uint destination, byte ttl = 64)
    {
        var p = new Span<byte>(at, 28);
        p.Clear();
        new Ipv4Header { TotalLength = 28, TimeToLive = ttl, Protocol = 17, SourceAddress = source, DestinationAddress = destination }.Write(p);
        BinaryPrimitives.WriteUInt16BigEndian(p[20..], 1000);
        BinaryPrimitives.WriteUInt16BigEndian(p[22..], 53);
        BinaryPrimitives.WriteUInt16BigEndian(p[24..], 8);
        return p;
    }

    [Test]
    public void ALocatorAcrossANat_IsSentToFromTheDataPort_AtItsTranslatedPort()
    {
        var encap = new Encapsulator(Region.MapCache, LocalRloc, 1500, Counters, Region.MissRing(0), new MissSuppressor(), 42) { DataPort = 4341 };
        Writer.Upsert(new MapCacheEntrySpec(Iid, 0, EidFamily.Ipv4, 0x0A010000, 24, [new RlocSpec(EidFamily.Ipv4, NatAddress, 1, 100, Port: 61001, NatTraversed: true)]));
        Writer.Upsert(new MapCacheEntrySpec(Iid, 0, EidFamily.Ipv4, 0x0A020000, 24, [new RlocSpec(EidFamily.Ipv4, 0xC633640B, 1, 100)]));
        for (ushort flow = 1; flow <= 16; flow++)
        {
            Ipv4(Buffers.Data(0), 0x0A020001, 0x0A010001);
            BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(Buffers.Data(0) + 20, 2), flow);
            var d = encap.Process(Buffers.Buffer(0), 28, Iid, 0, MapCacheTables.Now, Buffers.Data(1), out _);
            Assert.That((d.Verdict, d.Destination, d.SourcePort, d.DestinationPort), Is.EqualTo((ItrVerdict.Send, NatAddress, (ushort)4341, (ushort)61001)),
                "every flow from the data port: the NAT passes only what comes from the port its binding was made toward");
        }
        var ports = new HashSet<ushort>();
        for (ushort flow = 1; flow <= 16; flow++)
        {
            Ipv4(Buffers.Data(0), 0x0A010001, 0x0A020001);
            BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(Buffers.Data(0) + 20, 2), flow);
            ports.Add(encap.Process(Buffers.Buffer(0), 28, Iid, 0, MapCacheTables.Now, Buffers.Data(1), out _).SourcePort);
        }
        Assert.That(ports, Has.Count.GreaterThan(8), "a public locator still gets the flow hash as source port");
        Assert.That(Region.MapCache.TryLookup(new MapCacheKey(Iid, 0, EidFamily.Ipv4, 0x0A010001), out var entry) && entry.Rlocs[0].NatTraversed, Is.True, "the flag is kept in the entry");
    }

    /// <summary>The LISP header and inner packet of a datagram an RTR receives, in buffer 0.</summary>
    private Span<byte> Received(uint iid, uint source, uint destination, byte ttl = 64)
    {
        var payload = new Span<byte>(Buffers.Data(0), 8 + 28);
        LispDataHeader.WithNonce(7, iid).Write(payload);
        Ipv4(Buffers.Data(0) + 8, source, destination, ttl);
        return payload;
    }

    [Test]
    public void AnRtr_TakesEveryInstanceId_ButOnlyFromTheSourcesRegisteredLocator()
    {
        var decap = new Decapsulator([], Counters, Region.MapCache, decapFilter: false, Region.MissRing(0), relay: true);
        Writer.Upsert(new MapCacheEntrySpec(77, 0, EidFamily.Ipv4, 0x0A010000, 24, [new RlocSpec(EidFamily.Ipv4, NatAddress, 1, 100, Port: 61001, NatTraversed: true)]));
        var d = decap.Process(Received(77, 0x0A010001, 0x0A020001), NatAddress, 60, 0);
        Assert.That((d.Deliver, d.InstanceId, d.InnerOffset, d.InnerLength), Is.EqualTo((true, 77u, 8, 28)), "an Instance ID no --instance named, from the locator its source's mapping lists");
        d = decap.Process(Received(77, 0x0A010001, 0x0A020001), 0xC633640A, 60, 0);
        Assert.That(d.Deliver, Is.False, "the same source EID from another address");
        Assert.That(Counters[Counter.DropDecapFilter], Is.EqualTo(1UL));
    }

    [Test]
    public void AnRtr_AsksForTheMappingOfASourceItDoesNotKnow_OncePerSecond()
    {
        var decap = new Decapsulator([], Counters, Region.MapCache, decapFilter: true, Region.MissRing(0), relay: true);
        for (int i = 0; i < 10; i++)
            Assert.That(decap.Process(Received(Iid, 0x0A020001, 0x0A010001), 0xC633640B, 60, 0).Deliver, Is.False);
        Span<MissRecord> misses = stackalloc MissRecord[4];
        Assert.That(Region.MissRing(0).Drain(misses), Is.EqualTo(1));
        Assert.That((misses[0].Kind, misses[0].InstanceId, (uint)misses[0].DestinationEid, (uint)misses[0].SourceEid), Is.EqualTo((MissKind.Miss, Iid, 0x0A020001u, 0x0A010001u)),
            "the unknown inner source is what gets resolved");
        Assert.That((Counters[Counter.DropDecapFilter], Counters[Counter.RtrSourcesResolved]), Is.EqualTo((10UL, 1UL)));
    }

    [Test]
    public void AnXtrsDecapsulator_StillRefusesInstanceIdsItDoesNotServe()
    {
        var decap = new Decapsulator([Iid], Counters, Region.MapCache);
        Assert.That(decap.Process(Received(77, 0x0A010001, 0x0A020001), NatAddress, 60, 0).Deliver, Is.False);
        Assert.That(Counters[Counter.DropUnknownInstanceId], Is.EqualTo(1UL));
    }

    [Test]
    public void TheRtrHop_LowersTheTtl_KeepsTheChecksumRight_AndStopsAtOne()
    {
        var ip = Ipv4(Buffers.Data(0), 0x0A010001, 0x0A020001, ttl: 9);
        for (byte ttl = 9; ttl > 1; ttl--)
        {
            Assert.That(Worker.DecrementHopLimit(ip), Is.True);
            Assert.That((ip[8], InternetChecksum.Compute(ip[..20])), Is.EqualTo((checked((byte)(ttl - 1)), (ushort)0)), "TTL one lower, header checksum still verifies");
        }
        Assert.That(Worker.DecrementHopLimit(ip), Is.False, "a packet at TTL 1 goes no further");
        Span<byte> v6 = stackalloc byte[40];
        v6[0] = 0x60;
        v6[7] = 2;
        Assert.That((Worker.DecrementHopLimit(v6), v6[7]), Is.EqualTo((true, (byte)1)));
        Assert.That(Worker.DecrementHopLimit(v6), Is.False);
    }

    [Test]
    public void TheInbox_HandsOverInOrder_AndRefusesWhenFullOrTooLong()
    {
        var inbox = new ControlInbox();
        var into = new byte[ControlInbox.SlotBytes];
        for (int i = 0; i < ControlInbox.Slots; i++)
            Assert.That(inbox.TryPost([0x70, (byte)i], MappedIpv4.From(NatAddress), (ushort)(5000 + i)), Is.True);
        Assert.That(inbox.TryPost([0x70], MappedIpv4.From(NatAddress), 1), Is.False, "full: dropped and counted by the worker, never queued without bound");
        Assert.That(inbox.TryPost(new byte[ControlInbox.SlotBytes + 1], 0, 1), Is.False, "longer than a slot");
        for (int i = 0; i < ControlInbox.Slots; i++)
        {
            Assert.That(inbox.TryTake(into, out int length, out var source, out ushort port), Is.True);
            Assert.That((length, into[1], source, port), Is.EqualTo((2, (byte)i, MappedIpv4.From(NatAddress), (ushort)(5000 + i))));
        }
        Assert.That(inbox.TryTake(into, out _, out _, out _), Is.False);
        Assert.That(inbox.TryPost([0x70, 1, 2], 5, 6), Is.True, "room again once taken");
    }
}
