using FastXtr.Dataplane.Encap;
using FastXtr.Packets;
using NUnit.Framework;

namespace FastXtr.Tests.Dataplane.Pipeline;

/// <summary>
/// The ITR's precomputed outer headers are the header <see cref="LispDataPacket.WriteIpv4"/> writes, byte for byte,
/// whatever the per-packet fields, across many locators and ports that share and evict each other's slots.
/// </summary>
[TestFixture]
public unsafe class OuterHeaders4Tests
{
    [Test]
    public void EveryHeader_EqualsTheReferenceWriters_AcrossLocatorsThatShareSlots()
    {
        const uint source = 0xC0000201;
        var headers = new OuterHeaders4(source);
        var random = new Random(7);
        // 2,000 locators in 256 slots, each visited again later: collisions rebuild, revisits hit.
        var rlocs = Enumerable.Range(0, 2000).Select(_ => (uint)random.NextInt64(1, uint.MaxValue)).ToArray();
        byte* ours = stackalloc byte[LispDataPacket.Ipv4OverheadBytes];
        var reference = new byte[LispDataPacket.Ipv4OverheadBytes];
        for (int i = 0; i < 20_000; i++)
        {
            uint rloc = rlocs[random.Next(i < 2000 ? i + 1 : rlocs.Length)];
            ushort port = random.Next(4) == 0 ? (ushort)random.Next(1, 65536) : LispDataHeader.DataPort;
            ushort sourcePort = (ushort)random.Next(65536);
            byte ttl = (byte)random.Next(256), tos = (byte)random.Next(256);
            ushort id = (ushort)random.Next(65536);
            var lisp = LispDataHeader.WithNonce((uint)random.Next(1 << 24), (uint)random.Next(1 << 24));
            // Inner lengths up to the largest that still fits the 16-bit total length.
            int inner = random.Next(2) == 0 ? random.Next(20, 1500) : random.Next(20, 65535 - LispDataPacket.Ipv4OverheadBytes + 1);
            headers.Write(ours, rloc, port, sourcePort, ttl, tos, id, lisp, inner);
            LispDataPacket.WriteIpv4(reference, source, rloc, sourcePort, ttl, tos, id, dontFragment: false, lisp, inner, port);
            var got = new ReadOnlySpan<byte>(ours, LispDataPacket.Ipv4OverheadBytes);
            if (!got.SequenceEqual(reference))
                Assert.Fail($"packet {i} to {rloc:x8}:{port}: {Convert.ToHexString(got)} instead of {Convert.ToHexString(reference)}");
        }
        Assert.That(InternetChecksum.Compute(new ReadOnlySpan<byte>(ours, Ipv4Header.MinLength)), Is.EqualTo(0), "the header checksum verifies");
    }

    [Test]
    public void AnInnerPacketTooLongForTheTotalLength_IsRefused()
    {
        var headers = new OuterHeaders4(0xC0000201);
        byte* at = stackalloc byte[LispDataPacket.Ipv4OverheadBytes];
        Assert.That(() => headers.Write(at, 0xC0000202, LispDataHeader.DataPort, 1, 64, 0, 1, LispDataHeader.WithNonce(1, 1), 65535 - LispDataPacket.Ipv4OverheadBytes + 1),
            Throws.InstanceOf<OverflowException>());
    }
}
