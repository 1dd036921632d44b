using System.Buffers.Binary;
using FastXtr.Packets;
using FastXtr.NativeInterop;

namespace FastXtr.Dataplane.Offload;

/// <summary>
/// Receive-side coalescing in userspace (what GRO does): consecutive decapsulated TCP segments of one flow become
/// one super-packet written to the TUN with a virtio-net header (GSO TCPV4/TCPV6, checksum left partial), so the
/// kernel's TCP takes 64 KB at a time instead of 45 packets. A run continues while each segment follows the last
/// exactly: same headers except lengths, IPv4 identification (+1 each, unless DF) and sequence number (+ the last
/// payload), only ACK (and PSH on the last) set, payloads equal to the first's with a shorter one allowed last.
/// <para>
/// Every packet of a run has its own checksum verified (the first once a second joins it: a packet written alone is
/// left to the receiving stack, which checks it), as the kernel's GRO checks before it merges. The run's checksum is
/// computed afresh (left partial for the kernel), so a packet corrupted on the way would otherwise be delivered as
/// sound wherever nothing else checked its bytes: an ITR that sends the outer UDP checksum as zero, as RFC 9300 §5.3
/// lets it (OOR and Cisco do for IPv4).
/// </para>
/// <para>
/// Consecutive UDP datagrams of one flow likewise become one GSO UDP_L4 super-packet (the kernel's UDP GRO in
/// forwarding mode): same headers but for lengths, checksum and the IPv4 identification rule above, payloads equal to
/// the first's with a shorter one allowed last, at most <see cref="MaxUdpSegments"/>. The kernel cuts it again at the
/// receiving socket (or hands it whole to one that asked for UDP_GRO) with each datagram's boundary and a checksum of
/// its own: one TUN write for a burst of small datagrams instead of one each. A datagram without a checksum (IPv4's 0)
/// never joins one: the run would vouch for bytes nobody checked.
/// </para>
/// Anything else is written as it came. The packets stay where they were received: the run is gathered with writev.
/// </summary>
public sealed unsafe class Coalescer
{
    private const byte Ack = 0x10, Psh = 0x08;
    private const byte ProtocolUdp = 17;
    private const int UdpHeaderBytes = 8;
    /// <summary>A super-packet's IP total length must fit 16 bits.</summary>
    public const int MaxRunBytes = 65535;
    /// <summary>The most datagrams the kernel takes in one GSO UDP_L4 packet from a TUN (UDP_MAX_SEGMENTS, checked in virtio_net_hdr_to_skb).</summary>
    public const int MaxUdpSegments = 64;
    private readonly byte*[] _packets;
    private readonly int[] _lengths;
    private int _headers, _ipLength, _payload, _total;
    private bool _ipv6, _open, _udp;

    public Coalescer(int maxSegments = 64)
    {
        _packets = new byte*[maxSegments];
        _lengths = new int[maxSegments];
    }

    /// <summary>Packets in the pending run.</summary>
    public int Count { get; private set; }
    /// <summary>The instance (TUN) of the pending run.</summary>
    public int Instance { get; private set; }
    /// <summary>Whether the pending run is UDP datagrams (else TCP segments, or one packet of anything).</summary>
    public bool IsUdp => _udp && Count > 1;

    public void Clear() => Count = 0;

    /// <summary>
    /// Adds a decapsulated inner packet for TUN <paramref name="instance"/>: true when it starts a run (the run was
    /// empty) or continues it; false when it does not continue it, and the caller writes the run out and offers the
    /// packet again. The packet's memory must stay untouched until the run is written.
    /// </summary>
    public bool TryAppend(byte* packet, int length, int instance)
    {
        var p = new ReadOnlySpan<byte>(packet, length);
        if (Count == 0)
        {
            _packets[0] = packet;
            _lengths[0] = length;
            Count = 1;
            Instance = instance;
            _headers = Startable(p, out _ipv6);
            _udp = false;
            if (_headers == 0)
            {
                _headers = UdpStartable(p, out _ipv6);
                _udp = _headers > 0;
            }
            _open = _headers > 0;
            if (_open)
            {
                _ipLength = _ipv6 ? Ipv6Header.Length : (packet[0] & 0xF) * 4;
                _payload = length - _headers;
                _total = length;
            }
            return true;
        }
        if (!_open || instance != Instance || Count == _packets.Length || _total + length - _headers > MaxRunBytes) return false;
        var first = new ReadOnlySpan<byte>(_packets[0], _lengths[0]);
        var last = new ReadOnlySpan<byte>(_packets[Count - 1], _lengths[Count - 1]);
        if (_udp ? Count == MaxUdpSegments || !UdpFollows(first, last, p, _headers, _ipLength, _ipv6, _payload)
                 : !Follows(first, last, p, _headers, _ipLength, _ipv6, _payload)) return false;
        if (Count == 1 && !Verifies(first, _ipLength, _ipv6))
        {
            // The first was corrupted: it goes alone, and the packet offered starts the next run.
            _open = false;
            return false;
        }
        _packets[Count] = packet;
        _lengths[Count] = length;
        Count++;
        _total += length - _headers;
        // A shorter segment, or PSH, ends the run: nothing may follow it.
        if (length - _headers < _payload || (!_udp && (p[_ipLength + 13] & Psh) != 0)) _open = false;
        return true;
    }

    /// <summary>
    /// The header length (IP + 8) of a UDP datagram that can start a run: unfragmented IPv4 or IPv6 without extension
    /// headers, a payload, lengths exact, and a checksum (not IPv4's "no checksum", 0); 0 otherwise. Whether the
    /// checksum verifies is checked once the datagram has a run to join.
    /// </summary>
    public static int UdpStartable(ReadOnlySpan<byte> p, out bool ipv6)
    {
        int ipLength = TcpSegmentation.IpHeaderLength(p, ProtocolUdp, out ipv6);
        if (ipLength == 0 || p.Length <= ipLength + UdpHeaderBytes) return 0;
        int declared = ipv6 ? Ipv6Header.Length + BinaryPrimitives.ReadUInt16BigEndian(p[4..]) : BinaryPrimitives.ReadUInt16BigEndian(p[2..]);
        if (declared != p.Length || BinaryPrimitives.ReadUInt16BigEndian(p[(ipLength + 4)..]) != p.Length - ipLength) return 0;
        return BinaryPrimitives.ReadUInt16BigEndian(p[(ipLength + 6)..]) == 0 ? 0 : ipLength + UdpHeaderBytes;
    }

    private static bool UdpFollows(ReadOnlySpan<byte> first, ReadOnlySpan<byte> last, ReadOnlySpan<byte> next, int headers, int ipLength, bool ipv6, int firstPayload)
    {
        if (UdpStartable(next, out bool v6) != headers || v6 != ipv6) return false;
        if (next.Length - headers > firstPayload || last.Length - headers != firstPayload) return false;
        if (!SameIpFlow(first, last, next, ipLength, ipv6)) return false;
        // Ports; the checksum last.
        return first.Slice(ipLength, 4).SequenceEqual(next.Slice(ipLength, 4)) && Verifies(next, ipLength, ipv6);
    }

    /// <summary>
    /// The IP headers of one flow's run: equal but for lengths, checksum and an IPv4 identification that counts up by
    /// one (which the kernel's segmentation gives the pieces back), unless DF makes it meaningless.
    /// </summary>
    private static bool SameIpFlow(ReadOnlySpan<byte> first, ReadOnlySpan<byte> last, ReadOnlySpan<byte> next, int ipLength, bool ipv6)
    {
        if (ipv6)
        {
            // Version, traffic class, flow label; next header and hop limit; both addresses.
            return first[..4].SequenceEqual(next[..4]) && first.Slice(6, 34).SequenceEqual(next.Slice(6, 34));
        }
        if (first[1] != next[1] || first[6] != next[6] || first[8] != next[8] || !first.Slice(12, ipLength - 12).SequenceEqual(next.Slice(12, ipLength - 12))) return false;
        bool dontFragment = (first[6] & 0x40) != 0;
        return dontFragment || (ushort)(BinaryPrimitives.ReadUInt16BigEndian(last[4..]) + 1) == BinaryPrimitives.ReadUInt16BigEndian(next[4..]);
    }

    /// <summary>
    /// The header length of a packet that can start a run (TCP, payload, only ACK or ACK|PSH set, no IPv4
    /// fragment, exact length); 0 otherwise. Whether its checksum verifies is checked once it has a run to join.
    /// </summary>
    public static int Startable(ReadOnlySpan<byte> p, out bool ipv6)
    {
        int headers = TcpSegmentation.HeaderLength(p, out ipv6);
        if (headers == 0 || p.Length <= headers) return 0;
        int ipLength = ipv6 ? Ipv6Header.Length : (p[0] & 0xF) * 4;
        int declared = ipv6 ? Ipv6Header.Length + BinaryPrimitives.ReadUInt16BigEndian(p[4..]) : BinaryPrimitives.ReadUInt16BigEndian(p[2..]);
        if (declared != p.Length) return 0;
        byte flags = p[ipLength + 13];
        return (flags & ~Psh) == Ack ? headers : 0;
    }

    /// <summary>Whether the transport checksum (TCP or UDP, over the pseudo-header and the rest of the packet) verifies.</summary>
    private static bool Verifies(ReadOnlySpan<byte> p, int ipLength, bool ipv6) =>
        InternetChecksum.Finish(InternetChecksumSimd.Sum(p[ipLength..], TcpSegmentation.PseudoHeaderSum(p, ipLength, ipv6, p.Length - ipLength))) == 0;

    private static bool Follows(ReadOnlySpan<byte> first, ReadOnlySpan<byte> last, ReadOnlySpan<byte> next, int headers, int ipLength, bool ipv6, int firstPayload)
    {
        if (Startable(next, out bool v6) != headers || v6 != ipv6) return false;
        int payload = next.Length - headers;
        if (payload > firstPayload || last.Length - headers != firstPayload) return false;
        if (!SameIpFlow(first, last, next, ipLength, ipv6)) return false;
        ReadOnlySpan<byte> a = first[ipLength..headers], b = next[ipLength..headers], l = last[ipLength..];
        // Ports; acknowledgement number, data offset, window; options (timestamps equal within one burst).
        if (!a[..4].SequenceEqual(b[..4]) || !a.Slice(8, 5).SequenceEqual(b.Slice(8, 5)) || !a.Slice(14, 2).SequenceEqual(b.Slice(14, 2)) || !a[20..].SequenceEqual(b[20..])) return false;
        if ((l[13] & Psh) != 0) return false;
        uint expected = BinaryPrimitives.ReadUInt32BigEndian(l[4..]) + (uint)(last.Length - headers);
        return BinaryPrimitives.ReadUInt32BigEndian(b[4..]) == expected && Verifies(next, ipLength, ipv6);
    }

    /// <summary>The pending run's packet <paramref name="index"/> as it was appended.</summary>
    public byte* Packet(int index, out int length)
    {
        length = _lengths[index];
        return _packets[index];
    }

    /// <summary>
    /// Describes the pending run as writev pieces: <paramref name="scratch"/> (at least 10 + <paramref name="linkHeaderBytes"/>
    /// + 120 bytes) receives the virtio-net header, then <paramref name="linkHeaderBytes"/> left for the caller's link
    /// header (an af-packet port's Ethernet header; 0 for a TUN), and for a run of several the merged headers; the
    /// payloads are pointed to where they lie. The header's offsets count from the link header, as a packet socket's
    /// do. Returns the number of pieces; <paramref name="totalBytes"/> is what writev must report written.
    /// </summary>
    public int Build(byte* scratch, IoVec* pieces, out int totalBytes, int linkHeaderBytes = 0)
    {
        var vnet = (VirtioNetHdr*)scratch;
        *vnet = default;
        int lead = VirtioNetHdr.Bytes + linkHeaderBytes;
        if (Count == 1)
        {
            pieces[0] = new IoVec { Base = scratch, Length = (nuint)lead };
            pieces[1] = new IoVec { Base = _packets[0], Length = (nuint)_lengths[0] };
            totalBytes = lead + _lengths[0];
            return 2;
        }
        var header = new Span<byte>(scratch + lead, _headers);
        new ReadOnlySpan<byte>(_packets[0], _headers).CopyTo(header);
        int payload = _total - _headers;
        if (_ipv6)
        {
            BinaryPrimitives.WriteUInt16BigEndian(header[4..], (ushort)(_headers - Ipv6Header.Length + payload));
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(header[2..], (ushort)_total);
            header[10] = 0;
            header[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(header[10..], InternetChecksum.Compute(header[.._ipLength]));
        }
        Span<byte> transport = header[_ipLength..];
        // The UDP length covers the whole run, as the partial checksum's pseudo-header does: the kernel's segmentation
        // puts each datagram's own length in both (__udp_gso_segment).
        if (_udp) BinaryPrimitives.WriteUInt16BigEndian(transport[4..], (ushort)(_total - _ipLength));
        else transport[13] = (byte)(transport[13] | (_packets[Count - 1][_ipLength + 13] & Psh));
        int checksumOffset = _udp ? 6 : 16;
        // Partial checksum: the folded pseudo-header sum, not complemented; the kernel completes it if it must.
        ushort pseudo = (ushort)~InternetChecksum.Finish(TcpSegmentation.PseudoHeaderSum(header, _ipLength, _ipv6, _total - _ipLength));
        BinaryPrimitives.WriteUInt16BigEndian(transport[checksumOffset..], pseudo);
        vnet->Flags = Linux.VIRTIO_NET_HDR_F_NEEDS_CSUM;
        vnet->GsoType = _udp ? Linux.VIRTIO_NET_HDR_GSO_UDP_L4 : _ipv6 ? Linux.VIRTIO_NET_HDR_GSO_TCPV6 : Linux.VIRTIO_NET_HDR_GSO_TCPV4;
        vnet->HdrLen = (ushort)(linkHeaderBytes + _headers);
        vnet->GsoSize = (ushort)_payload;
        vnet->CsumStart = (ushort)(linkHeaderBytes + _ipLength);
        vnet->CsumOffset = (ushort)checksumOffset;
        pieces[0] = new IoVec { Base = scratch, Length = (nuint)(lead + _headers) };
        for (int i = 0; i < Count; i++)
            pieces[i + 1] = new IoVec { Base = _packets[i] + _headers, Length = (nuint)(_lengths[i] - _headers) };
        totalBytes = lead + _total;
        return Count + 1;
    }
}
