using System.Buffers.Binary;
using System.Runtime.InteropServices;
using FastXtr.Dataplane.Offload;
using FastXtr.NativeInterop;
using NUnit.Framework;

namespace FastXtr.Tests.Dataplane.Pipeline;

/// <summary>
/// Userspace TSO and GRO against plain reference implementations written here: random TCP super-packets (IPv4 with
/// and without options, IPv6, TCP options, odd sizes, a short last segment) must be cut into exactly the bytes that
/// per-packet processing would put on the wire, and coalescing those segments must give back one super-packet whose
/// re-segmentation is byte-for-byte the input.
/// </summary>
[TestFixture]
public unsafe class OffloadTests
{
    private const byte Fin = 0x01, Psh = 0x08, Ack = 0x10, Cwr = 0x80;

    /// <summary>A TCP packet: IPv4 (with <paramref name="ipOptions"/> bytes of options) or IPv6, checksums left as junk.</summary>
    private static byte[] TcpPacket(Random rng, bool ipv6, int ipOptions, int tcpOptions, int payload, byte flags, bool dontFragment = true)
    {
        int ip = ipv6 ? 40 : 20 + ipOptions, tcp = 20 + tcpOptions;
        var p = new byte[ip + tcp + payload];
        rng.NextBytes(p);
        if (ipv6)
        {
            p[0] = 0x60;
            BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), (ushort)(tcp + payload));
            p[6] = 6;
        }
        else
        {
            p[0] = (byte)(0x40 | (ip / 4));
            BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)Math.Min(65535, p.Length));
            BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(6), dontFragment ? (ushort)0x4000 : (ushort)0);
            p[9] = 6;
        }
        p[ip + 12] = (byte)((tcp / 4) << 4);
        p[ip + 13] = flags;
        return p;
    }

    private static ushort NaiveChecksum(IEnumerable<byte> bytes)
    {
        var b = bytes.ToArray();
        long sum = 0;
        for (int i = 0; i < b.Length; i += 2) sum += (b[i] << 8) | (i + 1 < b.Length ? b[i + 1] : 0);
        while (sum >> 16 != 0) sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)~sum;
    }

    private static byte[] Pseudo(byte[] p, bool ipv6, int transportLength)
    {
        var l = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(l, transportLength);
        byte protocol = ipv6 ? p[6] : p[9];
        return ipv6 ? [.. p[8..40], .. l, 0, 0, 0, protocol] : [.. p[12..20], 0, protocol, l[2], l[3]];
    }

    /// <summary>The segments per-packet TCP would have sent, built the obvious way.</summary>
    private static List<byte[]> ReferenceSegments(byte[] super, int mss, bool ipv6)
    {
        int ip = ipv6 ? 40 : (super[0] & 0xF) * 4, headers = ip + (super[ip + 12] >> 4) * 4;
        var payload = super[headers..];
        int count = Math.Max(1, (payload.Length + mss - 1) / mss);
        var list = new List<byte[]>();
        for (int k = 0; k < count; k++)
        {
            var chunk = payload.Skip(k * mss).Take(mss).ToArray();
            var s = super[..headers].Concat(chunk).ToArray();
            if (ipv6) BinaryPrimitives.WriteUInt16BigEndian(s.AsSpan(4), (ushort)(s.Length - 40));
            else
            {
                BinaryPrimitives.WriteUInt16BigEndian(s.AsSpan(2), (ushort)s.Length);
                BinaryPrimitives.WriteUInt16BigEndian(s.AsSpan(4), (ushort)(BinaryPrimitives.ReadUInt16BigEndian(super.AsSpan(4)) + k));
                s[10] = s[11] = 0;
                BinaryPrimitives.WriteUInt16BigEndian(s.AsSpan(10), NaiveChecksum(s[..ip]));
            }
            BinaryPrimitives.WriteUInt32BigEndian(s.AsSpan(ip + 4), BinaryPrimitives.ReadUInt32BigEndian(super.AsSpan(ip + 4)) + (uint)(k * mss));
            byte f = super[ip + 13];
            if (k < count - 1) f &= unchecked((byte)~(Fin | Psh));
            if (k > 0) f &= unchecked((byte)~Cwr);
            s[ip + 13] = f;
            s[ip + 16] = s[ip + 17] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(s.AsSpan(ip + 16), NaiveChecksum(Pseudo(s, ipv6, s.Length - ip).Concat(s[ip..])));
            list.Add(s);
        }
        return list;
    }

    private static List<byte[]> Cut(byte[] super, int mss, int prefix = 0)
    {
        var output = new byte[super.Length * 2 + 256 * (prefix + 120)];
        var lengths = new int[256];
        int count = TcpSegmentation.Segment(super, mss, prefix, output, lengths);
        int headers = TcpSegmentation.HeaderLength(super, out _);
        return Enumerable.Range(0, count).Select(k => output.AsSpan(k * (prefix + headers + mss) + prefix, lengths[k] - prefix).ToArray()).ToList();
    }

    /// <summary>Segments given by SegmentHeaders, each its headers from the header output then its slice of the packet's payload.</summary>
    private static List<byte[]> Gather(byte[] super, int mss, int prefix)
    {
        const int stride = 128;
        var headerOutput = new byte[256 * stride];
        var lengths = new int[256];
        int count = TcpSegmentation.SegmentHeaders(super, mss, prefix, headerOutput, stride, lengths, out int payloadOffset);
        int headers = TcpSegmentation.HeaderLength(super, out _);
        if (count > 0) Assert.That(payloadOffset, Is.EqualTo(headers));
        return Enumerable.Range(0, count).Select(k => headerOutput.AsSpan(k * stride + prefix, headers).ToArray()
            .Concat(super.AsSpan(payloadOffset + k * mss, lengths[k] - prefix - headers).ToArray()).ToArray()).ToList();
    }

    /// <summary>400 random TCP super-packets: IPv4 (with IP options) and IPv6, TCP options, FIN/PSH/CWR, MSS 300-1460, prefix 8 or 0.</summary>
    private static IEnumerable<(byte[] Super, int Mss, bool Ipv6, int Prefix, string Case)> RandomSuperPackets(int seed)
    {
        var rng = new Random(seed);
        for (int i = 0; i < 400; i++)
        {
            bool ipv6 = i % 3 == 0;
            int ipOptions = ipv6 ? 0 : 4 * rng.Next(0, 3), tcpOptions = 4 * rng.Next(0, 6);
            int payload = i < 20 ? i + 1 : rng.Next(1, 64_000);
            int mss = rng.Next(300, 1461); // at most 214 segments: a worker takes 256
            byte flags = (byte)(Ack | (rng.Next(2) == 0 ? Psh : 0) | (rng.Next(4) == 0 ? Fin : 0) | (rng.Next(4) == 0 ? Cwr : 0));
            yield return (TcpPacket(rng, ipv6, ipOptions, tcpOptions, payload, flags), mss, ipv6, i % 2 == 0 ? 8 : 0,
                $"case {i} ({(ipv6 ? "IPv6" : "IPv4")}, payload {payload}, mss {mss})");
        }
    }

    private static void AssertPerPacketBytes(List<byte[]> ours, (byte[] Super, int Mss, bool Ipv6, int Prefix, string Case) c)
    {
        var reference = ReferenceSegments(c.Super, c.Mss, c.Ipv6);
        Assert.That(ours, Has.Count.EqualTo(reference.Count), c.Case);
        for (int k = 0; k < ours.Count; k++) Assert.That(ours[k], Is.EqualTo(reference[k]), $"{c.Case}, segment {k}");
    }

    [Test]
    public void Segmentation_GivesExactlyThePerPacketBytes_OnRandomSuperPackets()
    {
        foreach (var c in RandomSuperPackets(9300)) AssertPerPacketBytes(Cut(c.Super, c.Mss, c.Prefix), c);
    }

    [Test]
    public void SegmentHeaders_WithThePayloadGathered_GivesExactlyThePerPacketBytes()
    {
        // What a gathering sender puts on the wire: each segment's prefix and headers from the header output, then its
        // slice of the packet's own payload. It must equal the per-packet reference, as Segment's copies do.
        foreach (var c in RandomSuperPackets(9301)) AssertPerPacketBytes(Gather(c.Super, c.Mss, c.Prefix), c);
        var rng = new Random(9302);
        var tcp = TcpPacket(rng, false, 0, 40, 1000, Ack);
        Assert.That(TcpSegmentation.SegmentHeaders(tcp, 100, 8, new byte[16 * 64], 64, new int[16], out _), Is.Zero, "headers (80 bytes) longer than the stride");
        Assert.That(TcpSegmentation.SegmentHeaders(tcp, 100, 8, new byte[5 * 128], 128, new int[16], out _), Is.Zero, "10 segments, room for 5 headers");
        Assert.That(TcpSegmentation.SegmentHeaders(tcp, 100, 8, new byte[16 * 128], 128, new int[5], out _), Is.Zero, "10 segments, 5 lengths");
    }

    [Test]
    public void UdpSegmentation_KeepsTheSendersDatagrams_AndChecksumsEach()
    {
        var rng = new Random(768);
        for (int i = 0; i < 200; i++)
        {
            bool ipv6 = i % 2 == 0;
            int size = rng.Next(1, 1473), payload = rng.Next(1, 60_000);
            int ip = ipv6 ? 40 : 20;
            var super = new byte[ip + 8 + payload];
            rng.NextBytes(super);
            if (ipv6) { super[0] = 0x60; super[6] = 17; BinaryPrimitives.WriteUInt16BigEndian(super.AsSpan(4), (ushort)Math.Min(65535, 8 + payload)); }
            else { super[0] = 0x45; super[9] = 17; BinaryPrimitives.WriteUInt16BigEndian(super.AsSpan(2), (ushort)super.Length); BinaryPrimitives.WriteUInt16BigEndian(super.AsSpan(6), 0); }
            var output = new byte[super.Length * 2 + 256 * 64];
            var lengths = new int[256];
            int count = UdpSegmentation.Segment(super, size, 0, output, lengths);
            int expected = (payload + size - 1) / size;
            if (expected > 256) { Assert.That(count, Is.Zero); continue; }
            Assert.That(count, Is.EqualTo(expected), $"case {i}");
            for (int k = 0; k < count; k++)
            {
                var d = output.AsSpan(k * (ip + 8 + size), lengths[k]).ToArray();
                int chunk = Math.Min(size, payload - k * size);
                Assert.That(d[(ip + 8)..], Is.EqualTo(super.AsSpan(ip + 8 + k * size, chunk).ToArray()), $"case {i} datagram {k}: its payload");
                Assert.That(BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(ip + 4)), Is.EqualTo(8 + chunk), "UDP length");
                if (!ipv6)
                {
                    Assert.That(BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(2)), Is.EqualTo(d.Length));
                    Assert.That(BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(4)), Is.EqualTo((ushort)(BinaryPrimitives.ReadUInt16BigEndian(super.AsSpan(4)) + k)));
                    Assert.That(NaiveChecksum(d[..20]), Is.Zero, "the IPv4 header checksum verifies");
                }
                else Assert.That(BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(4)), Is.EqualTo(8 + chunk));
                // A receiver's check: the sum over pseudo-header and datagram, checksum included, is all ones.
                Assert.That(NaiveChecksum(Pseudo(d, ipv6, d.Length - ip).Concat(d[ip..])), Is.Zero, $"case {i} datagram {k}: the UDP checksum verifies");
                Assert.That(BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(ip + 6)), Is.Not.Zero, "never the 'no checksum' value");
            }
        }
    }

    [Test]
    public void Segmentation_RefusesWhatItCannotCut()
    {
        var rng = new Random(1);
        var udp = TcpPacket(rng, false, 0, 0, 100, Ack);
        udp[9] = 17;
        Assert.That(Cut(udp, 50), Is.Empty, "not TCP");
        var fragment = TcpPacket(rng, false, 0, 0, 100, Ack);
        fragment[6] = 0x20; // more fragments
        Assert.That(Cut(fragment, 50), Is.Empty, "an IPv4 fragment");
        Assert.That(Cut(TcpPacket(rng, false, 0, 0, 100, Ack)[..30], 50), Is.Empty, "truncated TCP header");
        var small = new int[1];
        Assert.That(TcpSegmentation.Segment(TcpPacket(rng, true, 0, 0, 1000, Ack), 100, 0, new byte[100_000], small), Is.Zero, "more segments than lengths given");
    }

    [Test]
    public void CompleteChecksum_FinishesWhatTheKernelLeftPartial()
    {
        var rng = new Random(5);
        for (int i = 0; i < 200; i++)
        {
            bool ipv6 = i % 2 == 0;
            var p = TcpPacket(rng, ipv6, 0, 4 * rng.Next(0, 4), rng.Next(1, 3000), Ack);
            int ip = ipv6 ? 40 : 20;
            var expected = (byte[])p.Clone();
            expected[ip + 16] = expected[ip + 17] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(expected.AsSpan(ip + 16), NaiveChecksum(Pseudo(expected, ipv6, p.Length - ip).Concat(expected[ip..])));
            // The kernel's partial form: the folded pseudo-header sum, not complemented, in the checksum field.
            BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(ip + 16), (ushort)~NaiveChecksum(Pseudo(p, ipv6, p.Length - ip)));
            Assert.That(TcpSegmentation.CompleteChecksum(p, ip, 16), Is.True);
            Assert.That(p, Is.EqualTo(expected), $"case {i}");
        }
        Assert.That(TcpSegmentation.CompleteChecksum(new byte[40], 30, 16), Is.False, "offsets past the end");
    }

    /// <summary>
    /// Feeds packets (copied to native memory, as the receive buffer is) and returns what would be written to the TUN,
    /// or with <paramref name="link"/> bytes of link header, to a packet socket (without the link header's room).
    /// </summary>
    private static List<(VirtioNetHdr Vnet, byte[] Packet)> Coalesce(IEnumerable<(byte[] Packet, int Instance)> packets, int link = 0)
    {
        var input = packets.ToList();
        var writes = new List<(VirtioNetHdr, byte[])>();
        var coalescer = new Coalescer();
        int total = input.Sum(p => p.Packet.Length);
        byte* memory = (byte*)NativeMemory.Alloc((nuint)Math.Max(1, total));
        byte* scratch = (byte*)NativeMemory.Alloc(256);
        IoVec* pieces = (IoVec*)NativeMemory.Alloc((nuint)(70 * sizeof(IoVec)));
        try
        {
            void WriteOut()
            {
                if (coalescer.Count == 0) return;
                int n = coalescer.Build(scratch, pieces, out int bytes, link);
                var all = new List<byte>();
                for (int i = 0; i < n; i++) all.AddRange(new ReadOnlySpan<byte>(pieces[i].Base, (int)pieces[i].Length).ToArray());
                Assert.That(all, Has.Count.EqualTo(bytes));
                writes.Add((MemoryMarshal.Read<VirtioNetHdr>(all.ToArray()), all.Skip(VirtioNetHdr.Bytes + link).ToArray()));
                coalescer.Clear();
            }
            long offset = 0;
            foreach (var (packet, instance) in input)
            {
                byte* at = memory + offset;
                packet.CopyTo(new Span<byte>(at, packet.Length));
                offset += packet.Length;
                if (!coalescer.TryAppend(at, packet.Length, instance))
                {
                    WriteOut();
                    Assert.That(coalescer.TryAppend(at, packet.Length, instance), Is.True, "an empty run takes any packet");
                }
            }
            WriteOut();
        }
        finally
        {
            NativeMemory.Free(memory);
            NativeMemory.Free(scratch);
            NativeMemory.Free(pieces);
        }
        return writes;
    }

    [Test]
    public void Coalescing_ThenSegmentingAgain_GivesBackTheSegments()
    {
        var rng = new Random(6040);
        for (int i = 0; i < 150; i++)
        {
            bool ipv6 = i % 2 == 1;
            int mss = rng.Next(200, 1449);
            int payload = rng.Next(mss + 1, Math.Min(60_000, 60 * mss));
            var super = TcpPacket(rng, ipv6, ipv6 ? 0 : 4 * rng.Next(0, 2), 4 * rng.Next(0, 4), payload, (byte)(Ack | (rng.Next(2) == 0 ? Psh : 0)), dontFragment: i % 3 != 0);
            var segments = ReferenceSegments(super, mss, ipv6);
            // For a TUN (no link header) and for an af-packet socket (an Ethernet header, which the offsets count).
            int link = i % 4 < 2 ? 0 : 14;
            var writes = Coalesce(segments.Select(s => (s, 0)), link);
            Assert.That(writes, Has.Count.EqualTo(1), $"case {i}: one flow in order is one super-packet");
            var (vnet, merged) = writes[0];
            int ip = ipv6 ? 40 : (super[0] & 0xF) * 4, headers = TcpSegmentation.HeaderLength(super, out _);
            Assert.That((vnet.Flags, vnet.GsoType, vnet.HdrLen, vnet.GsoSize, vnet.CsumStart, vnet.CsumOffset),
                Is.EqualTo((Linux.VIRTIO_NET_HDR_F_NEEDS_CSUM, ipv6 ? Linux.VIRTIO_NET_HDR_GSO_TCPV6 : Linux.VIRTIO_NET_HDR_GSO_TCPV4, (ushort)(link + headers), (ushort)mss, (ushort)(link + ip), (ushort)16)), $"case {i}");
            Assert.That(merged.Length, Is.EqualTo(headers + payload));
            Assert.That(merged[headers..], Is.EqualTo(super[headers..]), "the payload, whole and in order");
            Assert.That(merged[ip + 13], Is.EqualTo(super[ip + 13]), "the flags of the burst (PSH from its last segment)");
            // The partial checksum: completing it gives the super-packet's true checksum.
            var completed = (byte[])merged.Clone();
            TcpSegmentation.CompleteChecksum(completed, ip, 16);
            Assert.That(BinaryPrimitives.ReadUInt16BigEndian(completed.AsSpan(ip + 16)),
                Is.EqualTo(NaiveChecksum(Pseudo(merged, ipv6, merged.Length - ip).Concat(merged[ip..(ip + 16)]).Concat(new byte[2]).Concat(merged[(ip + 18)..]))));
            var again = Cut(merged, vnet.GsoSize);
            Assert.That(again, Has.Count.EqualTo(segments.Count));
            for (int k = 0; k < again.Count; k++) Assert.That(again[k], Is.EqualTo(segments[k]), $"case {i}, segment {k}");
        }
    }

    /// <summary>Writes a TCP segment's checksum again after a test changed it.</summary>
    private static void Rechecksum(byte[] s, bool ipv6)
    {
        int ip = ipv6 ? 40 : (s[0] & 0xF) * 4;
        s[ip + 16] = s[ip + 17] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(s.AsSpan(ip + 16), NaiveChecksum(Pseudo(s, ipv6, s.Length - ip).Concat(s[ip..])));
    }

    /// <summary>
    /// One flow's UDP datagrams as a sender's stack makes them: <paramref name="count"/> of <paramref name="size"/>
    /// payload bytes, the last <paramref name="last"/>; IPv4 identification counting up (or DF), checksums right.
    /// </summary>
    private static List<byte[]> UdpDatagrams(Random rng, bool ipv6, int count, int size, int last, bool dontFragment = true)
    {
        int ip = ipv6 ? 40 : 20;
        var template = new byte[ip + 8];
        rng.NextBytes(template);
        ushort id = (ushort)rng.Next(65536);
        var list = new List<byte[]>();
        for (int k = 0; k < count; k++)
        {
            int payload = k == count - 1 ? last : size;
            var d = new byte[ip + 8 + payload];
            template.CopyTo(d, 0);
            rng.NextBytes(d.AsSpan(ip + 8));
            if (ipv6)
            {
                d[0] = (byte)(0x60 | (d[0] & 0x0F));
                BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(4), (ushort)(8 + payload));
                d[6] = 17;
            }
            else
            {
                d[0] = 0x45;
                BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(2), (ushort)d.Length);
                BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(4), (ushort)(id + k));
                BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(6), dontFragment ? (ushort)0x4000 : (ushort)0);
                d[9] = 17;
                d[10] = d[11] = 0;
                BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(10), NaiveChecksum(d[..20]));
            }
            BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(ip + 4), (ushort)(8 + payload));
            d[ip + 6] = d[ip + 7] = 0;
            ushort checksum = NaiveChecksum(Pseudo(d, ipv6, d.Length - ip).Concat(d[ip..]));
            BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(ip + 6), checksum == 0 ? (ushort)0xFFFF : checksum);
            list.Add(d);
        }
        return list;
    }

    /// <summary>
    /// UDP coalescing against the reference the kernel applies to what we write (its segmentation, here our ITR's
    /// UdpSegmentation, which a test above holds to per-datagram checksums): a burst of one flow's datagrams becomes one
    /// GSO UDP_L4 super-packet whose cutting gives back every datagram byte for byte, checksums and identification included.
    /// </summary>
    [Test]
    public void UdpCoalescing_ThenSegmentingAgain_GivesBackTheDatagrams()
    {
        var rng = new Random(9301);
        for (int i = 0; i < 200; i++)
        {
            bool ipv6 = i % 2 == 1;
            int size = rng.Next(1, 1473);
            int count = Math.Min(rng.Next(2, Coalescer.MaxUdpSegments + 1), 65_000 / (size + 48));
            if (count < 2) { size = 500; count = 2; }
            int last = rng.Next(1, size + 1);
            var datagrams = UdpDatagrams(rng, ipv6, count, size, last, dontFragment: i % 3 != 0);
            int link = i % 4 < 2 ? 0 : 14;
            var writes = Coalesce(datagrams.Select(d => (d, 0)), link);
            Assert.That(writes, Has.Count.EqualTo(1), $"case {i}: one flow's burst is one super-packet");
            var (vnet, merged) = writes[0];
            int ip = ipv6 ? 40 : 20;
            Assert.That((vnet.Flags, vnet.GsoType, vnet.HdrLen, vnet.GsoSize, vnet.CsumStart, vnet.CsumOffset),
                Is.EqualTo((Linux.VIRTIO_NET_HDR_F_NEEDS_CSUM, Linux.VIRTIO_NET_HDR_GSO_UDP_L4, (ushort)(link + ip + 8), (ushort)size, (ushort)(link + ip), (ushort)6)), $"case {i}");
            Assert.That(BinaryPrimitives.ReadUInt16BigEndian(merged.AsSpan(ip + 4)), Is.EqualTo(merged.Length - ip), "the UDP length covers the run, as the partial checksum's pseudo-header does");
            // The partial checksum: completing it gives the super-packet's true checksum.
            var completed = (byte[])merged.Clone();
            TcpSegmentation.CompleteChecksum(completed, ip, 6);
            Assert.That(NaiveChecksum(Pseudo(completed, ipv6, completed.Length - ip).Concat(completed[ip..])), Is.Zero, $"case {i}: the completed checksum verifies");
            var output = new byte[merged.Length * 2 + 256 * 64];
            var lengths = new int[256];
            int n = UdpSegmentation.Segment(completed, vnet.GsoSize, 0, output, lengths);
            Assert.That(n, Is.EqualTo(count), $"case {i}");
            for (int k = 0; k < n; k++)
                Assert.That(output.AsSpan(k * (ip + 8 + size), lengths[k]).ToArray(), Is.EqualTo(datagrams[k]), $"case {i}, datagram {k}");
        }
    }

    [Test]
    public void UdpCoalescing_KeepsApartWhatMustNotMerge()
    {
        var rng = new Random(768);
        var a = UdpDatagrams(rng, false, 6, 100, 100);
        static byte[] Types(List<(VirtioNetHdr Vnet, byte[] Packet)> w) => w.Select(x => x.Vnet.GsoType).ToArray();
        const byte None = Linux.VIRTIO_NET_HDR_GSO_NONE, Udp = Linux.VIRTIO_NET_HDR_GSO_UDP_L4;
        Assert.That(Types(Coalesce(a.Select(d => (d, 0)))), Is.EqualTo(new[] { Udp }));
        // A datagram whose checksum does not verify is written alone, for the receiving stack to drop; the run ends there.
        var corrupt = a.Select(d => (byte[])d.Clone()).ToList();
        corrupt[2][40] ^= 0x01;
        Assert.That(Types(Coalesce(corrupt.Select(d => (d, 0)))), Is.EqualTo(new[] { Udp, None, Udp }));
        // IPv4's "no checksum": nothing vouches for the bytes, so no run vouches for them either.
        var unchecked0 = a.Select(d => { var c = (byte[])d.Clone(); c[26] = c[27] = 0; return c; }).ToList();
        Assert.That(Types(Coalesce(unchecked0.Select(d => (d, 0)))), Is.EqualTo(Enumerable.Repeat(None, 6)));
        // Another flow (ports), a longer datagram after a shorter one, a gap in the IPv4 identification without DF,
        // another TUN: each starts a new write.
        var b = UdpDatagrams(rng, false, 2, 100, 100);
        Assert.That(Coalesce(a.Take(3).Concat(b).Select(d => (d, 0))), Has.Count.EqualTo(2));
        var shortFirst = UdpDatagrams(rng, false, 3, 100, 40);
        Assert.That(Coalesce(shortFirst.Concat(UdpDatagrams(rng, false, 1, 100, 100)).Select(d => (d, 0))), Has.Count.EqualTo(2));
        var noDf = UdpDatagrams(rng, false, 4, 100, 100, dontFragment: false);
        Assert.That(Types(Coalesce(noDf.Where((_, k) => k != 1).Select(d => (d, 0)))), Is.EqualTo(new[] { None, Udp }));
        Assert.That(Coalesce(a.Select((d, k) => (d, k < 3 ? 0 : 1))), Has.Count.EqualTo(2));
        // At most UDP_MAX_SEGMENTS datagrams in one write (the kernel refuses more).
        var many = UdpDatagrams(rng, true, Coalescer.MaxUdpSegments + 6, 20, 20);
        Assert.That(Coalesce(many.Select(d => (d, 0))).Select(w => (w.Packet.Length - 48) / 20), Is.EqualTo(new[] { Coalescer.MaxUdpSegments, 6 }));
        // TCP does not join a UDP run, nor UDP a TCP one.
        var tcp = ReferenceSegments(TcpPacket(rng, false, 0, 0, 3000, Ack), 1000, false);
        Assert.That(Types(Coalesce(a.Take(2).Concat(tcp).Concat(a.Skip(2)).Select(d => (d, 0)))), Is.EqualTo(new[] { Udp, Linux.VIRTIO_NET_HDR_GSO_TCPV4, Udp }));
    }

    [Test]
    public void Coalescing_KeepsApartWhatMustNotMerge()
    {
        var rng = new Random(7);
        var a = ReferenceSegments(TcpPacket(rng, false, 0, 12, 5000, Ack), 1000, false);
        var b = ReferenceSegments(TcpPacket(rng, false, 0, 12, 5000, Ack), 1000, false);
        // Two flows interleaved: every packet is its own write.
        var interleaved = Coalesce(a.Zip(b).SelectMany(p => new[] { (p.First, 0), (p.Second, 0) }));
        Assert.That(interleaved, Has.Count.EqualTo(10));
        Assert.That(interleaved.All(w => w.Vnet.GsoType == Linux.VIRTIO_NET_HDR_GSO_NONE && w.Vnet.Flags == 0), Is.True, "single packets get an empty virtio-net header");
        // A gap in the sequence: two runs.
        Assert.That(Coalesce(a.Where((_, k) => k != 2).Select(s => (s, 0))), Has.Count.EqualTo(2));
        // Another TUN (instance) starts another run.
        Assert.That(Coalesce(a.Select((s, k) => (s, k < 3 ? 0 : 1))).Select(w => w.Vnet.GsoType), Is.EqualTo(new[] { Linux.VIRTIO_NET_HDR_GSO_TCPV4, Linux.VIRTIO_NET_HDR_GSO_TCPV4 }));
        // PSH ends a run; SYN/FIN never start or join one.
        var pushed = a.Select(s => (byte[])s.Clone()).ToList();
        pushed[1][33] |= Psh;
        Rechecksum(pushed[1], false);
        Assert.That(Coalesce(pushed.Select(s => (s, 0))).Select(w => w.Packet.Length - 52), Is.EqualTo(new[] { 2000, 3000 }));
        var fin = a.Select(s => (byte[])s.Clone()).ToList();
        fin[2][33] |= Fin;
        Assert.That(Coalesce(fin.Select(s => (s, 0))), Has.Count.EqualTo(3), "run, FIN alone, run");
        // A segment whose checksum does not verify (a bit flipped on the way, where no outer UDP checksum caught it):
        // written alone, for the receiving stack to drop; the run ends before it and starts again after it.
        var corrupt = a.Select(s => (byte[])s.Clone()).ToList();
        corrupt[2][60] ^= 0x10;
        Assert.That(Coalesce(corrupt.Select(s => (s, 0))).Select(w => w.Vnet.GsoType), Is.EqualTo(new[] { Linux.VIRTIO_NET_HDR_GSO_TCPV4, Linux.VIRTIO_NET_HDR_GSO_NONE, Linux.VIRTIO_NET_HDR_GSO_TCPV4 }));
        corrupt[0][61] ^= 0x01;
        Assert.That(Coalesce(corrupt.Take(2).Select(s => (s, 0))), Has.Count.EqualTo(2), "nor does a run start with one");
        // Not TCP: written alone.
        var udp = (byte[])a[0].Clone();
        udp[9] = 17;
        Assert.That(Coalesce(new[] { (udp, 0), (a[1], 0), (a[2], 0) }).Select(w => w.Vnet.GsoType), Is.EqualTo(new[] { Linux.VIRTIO_NET_HDR_GSO_NONE, Linux.VIRTIO_NET_HDR_GSO_TCPV4 }));
    }
}
