using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastXtr.Packets;

namespace FastXtr.Dataplane.Encap;

/// <summary>
/// An ITR's precomputed IPv4 + UDP + LISP outer headers (36 bytes, RFC 9300 §5.1), one per (RLOC, destination port)
/// in a direct-mapped table of <see cref="Slots"/>: what never changes between packets to a locator (version, protocol,
/// the two addresses, the destination port) is written once, with its share of the IPv4 header checksum. A packet's
/// header is the template copied, then patched for what is its own: TOS, total length, identification and TTL (the
/// checksum completed from the template's partial sum, not summed again over the header), the flow's source port,
/// the UDP length, the nonce and the Instance ID. The result is the header <see cref="LispDataPacket.WriteIpv4"/>
/// writes (tested byte for byte). One worker's; no lock, no allocation after construction.
/// </summary>
public sealed unsafe class OuterHeaders4
{
    public const int Slots = 256;
    private const int Bytes = LispDataPacket.Ipv4OverheadBytes;
    // Per slot: the 36-byte template, then the RLOC, the port and the partial checksum (64 bytes, one cache line).
    private const int SlotBytes = 64;
    private const int RlocAt = Bytes, PortAt = Bytes + 4, SumAt = Bytes + 8, ValidAt = Bytes + 12;
    // On the pinned object heap: its address never changes, and the GC frees it with the ITR.
    private readonly byte[] _slots;
    private readonly byte* _table;
    private readonly uint _source;

    /// <param name="sourceRloc">The ITR's IPv4 RLOC, the outer source address of every template.</param>
    public OuterHeaders4(uint sourceRloc)
    {
        _source = sourceRloc;
        _slots = GC.AllocateArray<byte>(Slots * SlotBytes + 64, pinned: true);
        byte* start = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_slots));
        _table = (byte*)(((nuint)start + 63) & ~(nuint)63); // each slot on a cache line of its own
    }

    /// <summary>
    /// Writes the outer header for <paramref name="innerLength"/> bytes of inner packet at <paramref name="at"/> (36
    /// bytes): to <paramref name="rloc"/>:<paramref name="destinationPort"/> from <paramref name="sourcePort"/>, with
    /// the inner packet's TTL and TOS, IPv4 identification <paramref name="identification"/> (DF clear), and the LISP
    /// header <paramref name="lisp"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write(byte* at, uint rloc, ushort destinationPort, ushort sourcePort, byte ttl, byte tos, ushort identification, in LispDataHeader lisp, int innerLength)
    {
        byte* slot = _table + (Index(rloc, destinationPort) * SlotBytes);
        if (*(uint*)(slot + RlocAt) != rloc || *(ushort*)(slot + PortAt) != destinationPort || slot[ValidAt] == 0) Build(slot, rloc, destinationPort);
        Unsafe.CopyBlockUnaligned(at, slot, Bytes);
        int udpLength = UdpHeader.Length + LispDataHeader.Length + innerLength;
        ushort total = checked((ushort)(Ipv4Header.MinLength + udpLength));
        at[1] = tos;
        BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(at + 2, 2), total);
        BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(at + 4, 2), identification);
        at[8] = ttl;
        // RFC 1071: the template's words (the checksum field 0) plus the four 16-bit words that differ per packet.
        uint sum = *(uint*)(slot + SumAt) + tos + total + identification + ((uint)ttl << 8);
        sum = (sum & 0xFFFF) + (sum >> 16);
        sum = (sum & 0xFFFF) + (sum >> 16);
        BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(at + 10, 2), (ushort)~sum);
        BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(at + Ipv4Header.MinLength, 2), sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(at + Ipv4Header.MinLength + 4, 2), (ushort)udpLength);
        lisp.Write(new Span<byte>(at + Ipv4Header.MinLength + UdpHeader.Length, LispDataHeader.Length));
    }

    private static int Index(uint rloc, ushort port) => (int)(((rloc ^ port) * 0x9E3779B1u) >> 24);

    /// <summary>The template for (RLOC, port): the header of an empty packet with TOS, lengths, identification and TTL 0.</summary>
    private void Build(byte* slot, uint rloc, ushort destinationPort)
    {
        var template = new Span<byte>(slot, Bytes);
        LispDataPacket.WriteIpv4(template, _source, rloc, 0, 0, 0, 0, dontFragment: false, default, 0, destinationPort);
        template[2] = template[3] = 0;   // total length: per packet
        template[10] = template[11] = 0; // checksum: completed per packet
        template[24] = template[25] = 0; // UDP length: per packet
        uint sum = 0;
        for (int i = 0; i < Ipv4Header.MinLength; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(template[i..]);
        *(uint*)(slot + RlocAt) = rloc;
        *(ushort*)(slot + PortAt) = destinationPort;
        *(uint*)(slot + SumAt) = sum;
        slot[ValidAt] = 1;
    }
}
