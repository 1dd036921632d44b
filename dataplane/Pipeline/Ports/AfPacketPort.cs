using System.Buffers.Binary;
using System.Diagnostics;
using FastXtr.Dataplane.Buffers;
using FastXtr.Dataplane.Offload;
using FastXtr.Dataplane.Workers;
using FastXtr.NativeInterop;
using FastXtr.SharedMemory;

namespace FastXtr.Dataplane.Ports;

/// <summary>
/// The EID side through AF_PACKET: this worker's TPACKET_V2 ring pair on each instance's EID-facing Ethernet
/// interface. Frames are read from mapped blocks and written into mapped slots, one system call per batch; the EID
/// hosts' MACs are learned from their frames, and a packet for a host not heard from yet is handed to the kernel,
/// which resolves it (through raw sockets bound to the instance's interface).
/// </summary>
public sealed unsafe class AfPacketPort : IEidPort
{
    private const int EthernetHeaderBytes = EthernetEidSide.HeaderBytes;
    private readonly PacketRing[] _rings;
    private readonly NeighborTable[] _neighbors;
    private readonly bool[] _pending;
    private readonly WorkerCounters _counters;
    private readonly EthernetEidSide _ethernet;
    // A super-frame met after other frames of the batch: cut and sent once they are (it stays valid in the ring).
    private byte* _heldSuper;
    private int _heldSuperLength, _heldSuperUdpSize;

    public AfPacketPort(IReadOnlyList<PacketRing> rings, IReadOnlyList<NeighborTable> neighbors, WorkerCounters counters)
    {
        _rings = rings.ToArray();
        _neighbors = neighbors.ToArray();
        _pending = new bool[_rings.Length];
        _counters = counters;
        _ethernet = new EthernetEidSide(counters, _rings.Select(r => r.Name).ToArray());
    }

    public int InstanceCount => _rings.Length;
    public bool HasVnetHeader => false;
    public bool CarriesSuperFrames => true;
    public bool TakesSuperPackets => _rings.All(r => r.SendsSuperFrames);
    public int LinkHeaderBytes => EthernetHeaderBytes;
    public SuperFrameHandler? SuperFrame { get; set; }

    public IReadOnlyList<int> PollFds => _rings.Select(r => r.Fd).ToArray();

    /// <summary>
    /// Up to a batch of frames from the instance's receive ring into the ITR's buffers (the IP packet, behind the usual
    /// headroom). Frames not addressed to us or not IP are left to the kernel and counted; the sender's MAC is learned
    /// for the ETR's way back. A super-frame (the kernel's GRO, a veth peer's TSO) goes to <see cref="SuperFrame"/>:
    /// at once when it is the first, else after the frames before it (<see cref="FinishBatch"/>), so a flow keeps its order.
    /// So does every UDP GSO frame (a veth peer's sender using UDP_SEGMENT), even one short enough for the link: its
    /// datagrams must be cut apart at their sender's size, not sent on as one.
    /// </summary>
    public int Read(int instance, PacketBuffers buffers, Span<int> lengths, ref ulong bytes, out int superFrames)
    {
        var ring = _rings[instance];
        var neighbors = _neighbors[instance];
        int n = 0;
        superFrames = 0;
        while (n < lengths.Length && ring.TryReceive(out byte* frame, out int length, out byte packetType, out bool checksumPending, out byte gsoType, out int gsoSize))
        {
            if (length == 0) { _counters.Add(Counter.DropTruncated); continue; }
            if (packetType != Linux.PACKET_HOST) { _counters.Add(Counter.EidFramesIgnored); continue; }
            if (!_ethernet.TryTakeIp(frame, length, neighbors, out byte* ip, out int ipLength)) continue;
            int udpSize = gsoType == Linux.VIRTIO_NET_HDR_GSO_UDP_L4 ? gsoSize : 0;
            if (ipLength > ring.Mtu || udpSize > 0)
            {
                if (n > 0)
                {
                    // Kept (in the ring, or in the ring's super-frame buffer) until FinishBatch releases it.
                    _heldSuper = ip;
                    _heldSuperLength = ipLength;
                    _heldSuperUdpSize = udpSize;
                    return n;
                }
                SuperFrame?.Invoke(instance, ip, ipLength, ring.Mtu, udpSize, Stopwatch.GetTimestamp());
                superFrames++;
                continue;
            }
            if (ipLength > buffers.PacketBytes) { _counters.Add(Counter.DropTooBig); continue; }
            Buffer.MemoryCopy(ip, buffers.Data(n), buffers.PacketBytes, ipLength);
            if (checksumPending && !CompleteTransportChecksum(new Span<byte>(buffers.Data(n), ipLength))) { _counters.Add(Counter.DropBadVnetHeader); continue; }
            lengths[n++] = ipLength;
            bytes += (ulong)ipLength;
        }
        ring.Release();
        return n;
    }

    public void FinishBatch(int instance, long now)
    {
        if (_heldSuper == null) return;
        byte* ip = _heldSuper;
        _heldSuper = null;
        SuperFrame?.Invoke(instance, ip, _heldSuperLength, _rings[instance].Mtu, _heldSuperUdpSize, now);
        _rings[instance].Release();
    }

    /// <summary>
    /// One packet framed for the EID host's MAC into a transmit slot, sent with the batch (<see cref="Flush"/>); for a
    /// host not heard from yet, routed by the kernel at once (the packet may sit in scratch memory the next reuses).
    /// </summary>
    public bool Write(int instance, byte* packet, int length)
    {
        var ring = _rings[instance];
        if (!_ethernet.TryDestination(packet, length, out UInt128 destination, out bool ipv6)) return false;
        if (!_neighbors[instance].TryGet(destination, ipv6, out ulong mac)) return _ethernet.RouteThroughKernel(instance, packet, length, ipv6, destination);
        // Longer than the interface carries (or a slot holds): the kernel would refuse the frame.
        if (length > ring.Mtu || length + EthernetHeaderBytes > ring.MaxTxFrameBytes) { _counters.Add(Counter.DropTooBig); return false; }
        byte* slot = ring.TxSlot(out bool rejected);
        if (slot == null)
        {
            // Every slot is waiting to be sent: have the kernel send them, then try once more.
            ring.Flush();
            _pending[instance] = false;
            slot = ring.TxSlot(out rejected);
            if (slot == null) { _counters.Add(Counter.DropTxRingFull); return false; }
        }
        if (rejected) _counters.Add(Counter.DropSendFailed); // the frame sent from this slot before was refused
        EthernetEidSide.WriteHeader(slot, mac, ring.Mac, ipv6);
        Buffer.MemoryCopy(packet, slot + EthernetHeaderBytes, ring.MaxTxFrameBytes - EthernetHeaderBytes, length);
        ring.TxCommit(length + EthernetHeaderBytes);
        _pending[instance] = true;
        return true;
    }

    /// <summary>
    /// A coalesced TCP run as one GSO frame for the EID host's MAC, through the ring's virtio-net packet socket: the
    /// receiving host takes 64 KB at a time instead of 45 frames. What the transmit ring holds goes first. False (and
    /// nothing sent) for a host not heard from yet and for segments the link's MTU would not carry: the caller
    /// writes the packets one by one, which routes or counts them.
    /// </summary>
    public bool WriteSuper(int instance, IoVec* pieces, int count, int totalLength)
    {
        var ring = _rings[instance];
        byte* lead = (byte*)pieces[0].Base;
        var vnet = (VirtioNetHdr*)lead;
        byte* ip = lead + VirtioNetHdr.Bytes + EthernetHeaderBytes;
        bool ipv6 = ip[0] >> 4 == 6;
        UInt128 destination = ipv6 ? BinaryPrimitives.ReadUInt128BigEndian(new ReadOnlySpan<byte>(ip + 24, 16)) : BinaryPrimitives.ReadUInt32BigEndian(new ReadOnlySpan<byte>(ip + 16, 4));
        if (vnet->HdrLen - EthernetHeaderBytes + vnet->GsoSize > ring.Mtu || !_neighbors[instance].TryGet(destination, ipv6, out ulong mac)) return false;
        EthernetEidSide.WriteHeader(lead + VirtioNetHdr.Bytes, mac, ring.Mac, ipv6);
        if (_pending[instance])
        {
            _pending[instance] = false;
            if (ring.Flush() != 0) _counters.Add(Counter.DropSendFailed);
        }
        return ring.SendSuper(pieces, count, totalLength);
    }

    public void Flush()
    {
        for (int k = 0; k < _rings.Length; k++)
        {
            if (!_pending[k]) continue;
            _pending[k] = false;
            if (_rings[k].Flush() != 0) _counters.Add(Counter.DropSendFailed);
        }
    }

    /// <summary>
    /// A TCP or UDP packet whose sender left the checksum to offload (a veth peer does): the full checksum is
    /// written here, since nothing downstream will. False for what cannot be completed (another protocol, an IPv6
    /// extension header, a truncated header).
    /// </summary>
    private bool CompleteTransportChecksum(Span<byte> packet)
    {
        bool ipv6 = packet[0] >> 4 == 6;
        int ipLength = ipv6 ? 40 : (packet[0] & 0x0F) * 4;
        int protocol = ipv6 ? packet[6] : packet[9];
        int offset = protocol == 6 ? 16 : protocol == 17 ? 6 : -1;
        if (offset < 0 || ipLength < 20 || ipLength + offset + 2 > packet.Length) return false;
        TcpSegmentation.WriteTransportChecksum(packet, ipLength, ipv6, offset);
        _counters.Add(Counter.ChecksumsCompleted);
        return true;
    }

    public void Dispose()
    {
        foreach (var ring in _rings) ring.Dispose();
        _ethernet.Dispose();
    }
}
