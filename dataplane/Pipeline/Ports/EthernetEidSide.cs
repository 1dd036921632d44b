using System.Buffers.Binary;
using FastXtr.Dataplane.Offload;
using FastXtr.Dataplane.Workers;
using FastXtr.Packets;
using FastXtr.NativeInterop;
using FastXtr.SharedMemory;

namespace FastXtr.Dataplane.Ports;

/// <summary>
/// What the Ethernet EID ports (af-packet, af-xdp) share: taking the IP packet out of a host's frame while learning
/// the host's MAC, framing a packet for a host's MAC, and handing a packet for a host not heard from yet to the
/// kernel, which resolves it. The kernel gets it through raw sockets bound to the instance's interface
/// (SO_BINDTODEVICE): the packet leaves where its instance's hosts are even when another instance uses the same EIDs
/// (the kernel's routing table knows one of them at most).
/// </summary>
public sealed unsafe class EthernetEidSide : IDisposable
{
    public const int HeaderBytes = 14;
    private readonly WorkerCounters _counters;
    private readonly MessageBatch _kernelRouted = new(1);
    private readonly int[] _rawFds;
    private readonly int[] _rawFds6;

    /// <param name="interfaces">Each instance's EID-facing interface.</param>
    public EthernetEidSide(WorkerCounters counters, IReadOnlyList<string> interfaces)
    {
        _counters = counters;
        _rawFds = new int[interfaces.Count];
        _rawFds6 = new int[interfaces.Count];
        Array.Fill(_rawFds, -1);
        Array.Fill(_rawFds6, -1);
        try
        {
            for (int k = 0; k < interfaces.Count; k++)
            {
                _rawFds[k] = Sockets.OpenRawIpv4Sender(0);
                Sockets.BindToDevice(_rawFds[k], interfaces[k]);
                // Without it (no IPv6 in this namespace), IPv6 packets for hosts not heard from yet are counted drops.
                try
                {
                    _rawFds6[k] = Sockets.OpenRawIpv6Sender();
                    Sockets.BindToDevice(_rawFds6[k], interfaces[k]);
                }
                catch (NativeException)
                {
                    if (_rawFds6[k] >= 0) Sockets.Close(_rawFds6[k]);
                    _rawFds6[k] = -1;
                }
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>
    /// The IP packet in a host's Ethernet frame (after its header), the sender's MAC learned; false, counted, for a
    /// frame that is not IPv4 or IPv6 without a VLAN tag.
    /// </summary>
    public bool TryTakeIp(byte* frame, int length, NeighborTable neighbors, out byte* ip, out int ipLength)
    {
        ip = frame + HeaderBytes;
        ipLength = length - HeaderBytes;
        if (length < HeaderBytes + 20) { _counters.Add(Counter.EidFramesIgnored); return false; }
        int type = BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(frame + 12, 2));
        ulong mac = 0;
        for (int b = 0; b < 6; b++) mac |= (ulong)frame[6 + b] << (8 * b);
        if (type == Linux.ETH_P_IP && ip[0] >> 4 == 4)
            neighbors.Learn(BinaryPrimitives.ReadUInt32BigEndian(new ReadOnlySpan<byte>(ip + 12, 4)), false, mac);
        else if (type == Linux.ETH_P_IPV6 && ipLength >= 40 && ip[0] >> 4 == 6)
            neighbors.Learn(BinaryPrimitives.ReadUInt128BigEndian(new ReadOnlySpan<byte>(ip + 8, 16)), true, mac);
        else
        {
            // A VLAN tag, or another protocol: not ours to carry.
            _counters.Add(type is Linux.ETH_P_IP or Linux.ETH_P_IPV6 ? Counter.DropNotIp : Counter.EidFramesIgnored);
            return false;
        }
        // A short frame from the wire carries padding up to Ethernet's 60 bytes: the packet is what its IP header says.
        // (A BIG TCP super-frame's IPv4 total length or IPv6 payload length is 0: those keep the frame's length.)
        int declared = ip[0] >> 4 == 4 ? BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(ip + 2, 2)) : BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(ip + 4, 2));
        if (declared != 0)
        {
            int total = ip[0] >> 4 == 4 ? declared : 40 + declared;
            if (total > ipLength || total < 20) { _counters.Add(Counter.DropTruncated); return false; }
            ipLength = total;
        }
        return true;
    }

    /// <summary>
    /// A TCP or UDP packet whose checksum field holds only its pseudo-header sum gets its full checksum, counted in
    /// checksums-completed. A local sender (a veth peer, a container) leaves the checksum to offload
    /// (CHECKSUM_PARTIAL, the field then holds the folded pseudo-header sum, as Linux's tcp_v4_send_check and
    /// udp4_hwcsum write it) and XDP carries no flag that says so, unlike a packet ring's TP_STATUS_CSUMNOTREADY; a
    /// frame from the wire has its full checksum, which matches its pseudo-header sum once in 65,536 packets, and
    /// recomputing an intact checksum changes nothing. IPv4 fragments, IPv6 with extension headers and UDP without a
    /// checksum are left alone.
    /// </summary>
    public void CompleteIfPartial(Span<byte> packet)
    {
        bool ipv6 = packet[0] >> 4 == 6;
        int ipLength = ipv6 ? 40 : (packet[0] & 0x0F) * 4;
        int protocol = ipv6 ? packet[6] : packet[9];
        int offset = protocol == 6 ? 16 : protocol == 17 ? 6 : -1;
        if (offset < 0 || ipLength < 20 || ipLength + offset + 2 > packet.Length) return;
        if (!ipv6 && (BinaryPrimitives.ReadUInt16BigEndian(packet[6..]) & 0x3FFF) != 0) return; // a fragment
        ushort field = BinaryPrimitives.ReadUInt16BigEndian(packet[(ipLength + offset)..]);
        if (field == 0 && protocol == 17) return;
        uint sum = TcpSegmentation.PseudoHeaderSum(packet, ipLength, ipv6, packet.Length - ipLength);
        ushort pseudo = (ushort)~InternetChecksum.Finish(sum);
        // Ones' complement has two zeros: 0x0000 and 0xFFFF.
        if (field != pseudo && !(field is 0 or 0xFFFF && pseudo is 0 or 0xFFFF)) return;
        TcpSegmentation.WriteTransportChecksum(packet, ipLength, ipv6, offset);
        _counters.Add(Counter.ChecksumsCompleted);
    }

    /// <summary>An IP packet's destination (IPv4 in the low 32 bits); false, counted, for what is not IP.</summary>
    public bool TryDestination(byte* packet, int length, out UInt128 destination, out bool ipv6)
    {
        ipv6 = length >= 40 && packet[0] >> 4 == 6;
        destination = 0;
        if (!ipv6 && (length < 20 || packet[0] >> 4 != 4)) { _counters.Add(Counter.DropNotIp); return false; }
        destination = ipv6 ? BinaryPrimitives.ReadUInt128BigEndian(new ReadOnlySpan<byte>(packet + 24, 16)) : BinaryPrimitives.ReadUInt32BigEndian(new ReadOnlySpan<byte>(packet + 16, 4));
        return true;
    }

    /// <summary>The Ethernet header of a frame from us (<paramref name="own"/>) to <paramref name="mac"/>.</summary>
    public static void WriteHeader(byte* ethernet, ulong mac, ReadOnlySpan<byte> own, bool ipv6)
    {
        for (int b = 0; b < 6; b++) ethernet[b] = (byte)(mac >> (8 * b));
        own.CopyTo(new Span<byte>(ethernet + 6, 6));
        BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(ethernet + 12, 2), (ushort)(ipv6 ? Linux.ETH_P_IPV6 : Linux.ETH_P_IP));
    }

    /// <summary>A packet for a host whose MAC is not known yet, routed by the kernel at once (it resolves the host); counted.</summary>
    public bool RouteThroughKernel(int instance, byte* packet, int length, bool ipv6, UInt128 destination)
    {
        if (ipv6)
        {
            if (_rawFds6[instance] >= 0 && Sockets.SendRawIpv6(_rawFds6[instance], packet, length) == 0) { _counters.Add(Counter.EtrKernelRouted); return true; }
            _counters.Add(Counter.DropNoNeighbor);
            return false;
        }
        _kernelRouted.Add(packet, length, (uint)destination, 0);
        if (_kernelRouted.Send(_rawFds[instance], out _) == 1) { _counters.Add(Counter.EtrKernelRouted); return true; }
        _counters.Add(Counter.DropSendFailed);
        return false;
    }

    public void Dispose()
    {
        _kernelRouted.Dispose();
        foreach (int fd in _rawFds.Concat(_rawFds6)) if (fd >= 0) Sockets.Close(fd);
    }
}
