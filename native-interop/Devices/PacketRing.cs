using System.Buffers.Binary;

namespace FastXtr.NativeInterop;

/// <summary>
/// An AF_PACKET socket on one Ethernet interface with a TPACKET_V2 receive ring and a transmit ring, both mapped
/// into our memory (--mode af-packet): each received frame is handed over on its own, the moment the kernel has
/// written it (TPACKET_V3's blocks are only handed over when full or when their retire timer fires, which put up to
/// 1 ms into every round trip at low rates), and a busy worker still reads many frames per wake-up with no system
/// call per frame; frames to send are written into ring slots and the kernel is told once per batch. A frame longer
/// than a ring frame (a super-frame: the kernel's GRO, a veth peer's TSO) is copied by the kernel to the socket's
/// queue as well (PACKET_COPY_THRESH) and read from there whole. Every frame comes with a virtio-net header
/// (PACKET_VNET_HDR, where the kernel allows it), which tells a GSO frame's kind and segment size: a UDP one (a
/// sender using UDP_SEGMENT behind a veth) can then be cut at its datagrams, even when it fits one ring frame; and
/// every frame sent through the transmit ring starts with an empty one. Outgoing frames are not looped back to us
/// (PACKET_IGNORE_OUTGOING), sends bypass the qdisc, and with several workers a fanout group spreads flows across
/// their sockets by hash.
/// </summary>
public sealed unsafe class PacketRing : IDisposable
{
    /// <summary>Where the frame starts in a transmit slot: TPACKET2_HDRLEN - sizeof(struct sockaddr_ll).</summary>
    public const int TxDataOffset = 32;
    /// <summary>Where a received frame's struct sockaddr_ll sits: TPACKET_ALIGN(sizeof(struct tpacket2_hdr)).</summary>
    private const int RxAddressOffset = 32;
    /// <summary>
    /// The kernel puts a received frame's Ethernet header at most this far into its ring frame
    /// (TPACKET_ALIGN(TPACKET2_HDRLEN + 16) - 14, plus the virtio-net header in front of it).
    /// </summary>
    private const int RxFrameHeadroom = 66 + VirtioNetHdr.Bytes;
    private const int MinFrameBytes = 2048;
    private const int BlockBytes = 1 << 16;
    /// <summary>The longest super-frame read from the socket's queue: GSO and GRO packets are at most 64 KB unless BIG TCP is on.</summary>
    public const int MaxSuperFrameBytes = 1 << 18;
    /// <summary>Socket buffer for super-frames on their way: a few dozen 64 KB GSO packets.</summary>
    private const int SuperFrameQueueBytes = 8 << 20;

    private readonly int _fd;
    private readonly byte* _map;
    private readonly nuint _mapBytes;
    private readonly int _frameBytes;
    private readonly int _rxFrames;
    private readonly byte* _tx;
    private readonly int _txFrames;
    private readonly byte* _super;
    private readonly int _gsoFd;
    private int _rxNext;
    private Tpacket2Hdr* _rxHeld;
    private int _txNext;
    private readonly byte[] _mac = new byte[6];
    // Frames carry a virtio-net header, received and sent (0 bytes where the kernel refused PACKET_VNET_HDR).
    private readonly int _vnetBytes;

    public string Name { get; }
    public int InterfaceIndex { get; }
    public int Mtu { get; }
    public ReadOnlySpan<byte> Mac => _mac;
    public int Fd => _fd;
    /// <summary>Bytes of one ring frame: a power of two of at least 2 KB that holds a full-MTU frame with the kernel's headers.</summary>
    public int FrameBytes => _frameBytes;
    /// <summary>The longest Ethernet frame a transmit slot holds.</summary>
    public int MaxTxFrameBytes => _frameBytes - TxDataOffset - _vnetBytes;
    /// <summary>Super-frames (a virtio-net header, then a TCP GSO frame) can be sent through <see cref="SendSuper"/>.</summary>
    public bool SendsSuperFrames => _gsoFd >= 0;

    private PacketRing(string name, int fd, int gsoFd, byte* map, nuint mapBytes, int frameBytes, int rxFrames, int txFrames, int ifindex, int mtu, ReadOnlySpan<byte> mac, bool vnet)
    {
        Name = name;
        _vnetBytes = vnet ? VirtioNetHdr.Bytes : 0;
        _fd = fd;
        _gsoFd = gsoFd;
        _map = map;
        _mapBytes = mapBytes;
        _frameBytes = frameBytes;
        _rxFrames = rxFrames;
        _tx = map + (nint)rxFrames * frameBytes;
        _txFrames = txFrames;
        _super = (byte*)System.Runtime.InteropServices.NativeMemory.Alloc(MaxSuperFrameBytes);
        InterfaceIndex = ifindex;
        Mtu = mtu;
        mac.CopyTo(_mac);
    }

    /// <summary>
    /// Opens the rings on <paramref name="name"/> (an existing Ethernet interface): at least <paramref name="rxFrames"/>
    /// frames of receive ring and <paramref name="txFrames"/> transmit slots (2 KB each, more for an MTU above 1,900);
    /// <paramref name="fanoutGroup"/> ≥ 0 joins that fanout group (one per interface, shared by the workers). Errors
    /// name the interface and the cause.
    /// </summary>
    public static PacketRing Open(string name, int rxFrames, int txFrames, int fanoutGroup)
    {
        if (string.IsNullOrEmpty(name) || name.Length >= Linux.IFNAMSIZ) throw new NativeException($"'{name}' is not an interface name");
        int fd = Libc.socket(Linux.AF_PACKET, Linux.SOCK_RAW | Linux.SOCK_CLOEXEC, BinaryPrimitives.ReverseEndianness((ushort)Linux.ETH_P_ALL));
        if (fd < 0)
        {
            int e = Libc.LastError;
            throw e is Linux.EPERM or Linux.EACCES
                ? new NativeException($"AF_PACKET socket for {name}: needs CAP_NET_RAW (run as root)", e)
                : new NativeException($"AF_PACKET socket for {name}", e);
        }
        byte* map = null;
        nuint mapBytes = 0;
        try
        {
            var link = NetInterface.Query(fd, name, "the EID-facing interface of --mode af-packet");
            int ifindex = link.Index, mtu = link.Mtu;
            var mac = link.Mac;

            int frameBytes = FrameBytesFor(mtu);
            int framesPerBlock = Math.Max(1, BlockBytes / frameBytes);
            int blockBytes = framesPerBlock * frameBytes;
            Set(fd, Linux.PACKET_VERSION, Linux.TPACKET_V2, "PACKET_VERSION TPACKET_V2");
            // Before the rings (the kernel refuses it after): every frame, both ways, with a virtio-net header.
            int one = 1;
            bool vnet = Libc.setsockopt(fd, Linux.SOL_PACKET, Linux.PACKET_VNET_HDR, &one, sizeof(int)) == 0;
            int rxBlocks = Math.Max(2, (rxFrames + framesPerBlock - 1) / framesPerBlock);
            var rx = new TpacketReq { BlockSize = (uint)blockBytes, BlockCount = (uint)rxBlocks, FrameSize = (uint)frameBytes, FrameCount = (uint)(rxBlocks * framesPerBlock) };
            if (Libc.setsockopt(fd, Linux.SOL_PACKET, Linux.PACKET_RX_RING, &rx, (uint)sizeof(TpacketReq)) != 0)
                throw new NativeException($"PACKET_RX_RING on {name} ({rx.FrameCount} frames of {frameBytes} bytes)", Libc.LastError);
            int txBlocks = Math.Max(1, (txFrames + framesPerBlock - 1) / framesPerBlock);
            var tx = new TpacketReq { BlockSize = (uint)blockBytes, BlockCount = (uint)txBlocks, FrameSize = (uint)frameBytes, FrameCount = (uint)(txBlocks * framesPerBlock) };
            if (Libc.setsockopt(fd, Linux.SOL_PACKET, Linux.PACKET_TX_RING, &tx, (uint)sizeof(TpacketReq)) != 0)
                throw new NativeException($"PACKET_TX_RING on {name} ({tx.FrameCount} slots of {frameBytes} bytes)", Libc.LastError);
            mapBytes = (nuint)(rxBlocks + txBlocks) * (nuint)blockBytes;
            map = (byte*)Libc.mmap(null, mapBytes, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_SHARED | Linux.MAP_POPULATE, fd, 0);
            if (map == (byte*)-1)
            {
                map = null;
                throw new NativeException($"mmap of the {name} rings ({mapBytes} bytes)", Libc.LastError);
            }
            // A frame longer than a ring frame is cut in the ring and queued whole on the socket (TP_STATUS_COPY).
            Set(fd, Linux.PACKET_COPY_THRESH, 1, $"PACKET_COPY_THRESH on {name}");
            int queue = SuperFrameQueueBytes;
            if (Libc.setsockopt(fd, Linux.SOL_SOCKET, Linux.SO_RCVBUFFORCE, &queue, sizeof(int)) != 0)
                Libc.setsockopt(fd, Linux.SOL_SOCKET, Linux.SO_RCVBUF, &queue, sizeof(int));
            SetOptional(fd, Linux.PACKET_QDISC_BYPASS, 1);
            SetOptional(fd, Linux.PACKET_IGNORE_OUTGOING, 1);
            SockAddrLl sll = default;
            sll.Family = Linux.AF_PACKET;
            sll.ProtocolBigEndian = BinaryPrimitives.ReverseEndianness((ushort)Linux.ETH_P_ALL);
            sll.InterfaceIndex = ifindex;
            if (Libc.bind(fd, &sll, (uint)sizeof(SockAddrLl)) != 0) throw new NativeException($"bind AF_PACKET to {name}", Libc.LastError);
            if (fanoutGroup >= 0)
                Set(fd, Linux.PACKET_FANOUT, (fanoutGroup & 0xFFFF) | ((Linux.PACKET_FANOUT_HASH | Linux.PACKET_FANOUT_FLAG_DEFRAG) << 16), $"PACKET_FANOUT group {fanoutGroup} on {name}");
            return new PacketRing(name, fd, OpenSuperFrameSender(ifindex), map, mapBytes, frameBytes, (int)rx.FrameCount, (int)tx.FrameCount, ifindex, mtu, mac, vnet);
        }
        catch
        {
            if (map != null) Libc.munmap(map, mapBytes);
            Libc.close(fd);
            throw;
        }
    }

    /// <summary>
    /// A send-only packet socket on the interface whose frames start with a virtio-net header (PACKET_VNET_HDR), so a
    /// coalesced TCP run goes out as one GSO frame that the kernel (or the NIC) segments only if it must; -1 where
    /// the kernel refuses the option. Protocol 0: it receives nothing.
    /// </summary>
    private static int OpenSuperFrameSender(int ifindex)
    {
        int fd = Libc.socket(Linux.AF_PACKET, Linux.SOCK_RAW | Linux.SOCK_CLOEXEC, 0);
        if (fd < 0) return -1;
        int one = 1;
        SockAddrLl sll = default;
        sll.Family = Linux.AF_PACKET;
        sll.InterfaceIndex = ifindex;
        if (Libc.setsockopt(fd, Linux.SOL_PACKET, Linux.PACKET_VNET_HDR, &one, sizeof(int)) != 0
            || Libc.bind(fd, &sll, (uint)sizeof(SockAddrLl)) != 0)
        {
            Libc.close(fd);
            return -1;
        }
        SetOptional(fd, Linux.PACKET_QDISC_BYPASS, 1);
        return fd;
    }

    /// <summary>
    /// One super-frame gathered from pieces (the virtio-net header, the Ethernet header, the IP and TCP headers, the
    /// payloads); true when the kernel took all of it. Send what the transmit ring holds first (<see cref="Flush"/>)
    /// to keep the order.
    /// </summary>
    public bool SendSuper(IoVec* pieces, int count, int totalLength)
    {
        if (_gsoFd < 0) return false;
        var message = new MsgHdr { Iov = pieces, IovLength = (nuint)count };
        return Libc.sendmsg(_gsoFd, &message, Linux.MSG_DONTWAIT) == totalLength;
    }

    /// <summary>The ring frame for an interface MTU: room for the kernel's headers and a full frame, a power of two, at least 2 KB.</summary>
    public static int FrameBytesFor(int mtu) =>
        (int)Math.Max(MinFrameBytes, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(0, mtu) + RxFrameHeadroom + 14));

    private static void Set(int fd, int option, int value, string what)
    {
        if (Libc.setsockopt(fd, Linux.SOL_PACKET, option, &value, sizeof(int)) != 0) throw new NativeException(what, Libc.LastError);
    }

    private static void SetOptional(int fd, int option, int value) => Libc.setsockopt(fd, Linux.SOL_PACKET, option, &value, sizeof(int));

    /// <summary>
    /// The next received frame (from its Ethernet header), or false when the kernel has handed over nothing more.
    /// The frame stays valid until the next call or <see cref="Release"/>, which give its ring frame back to the
    /// kernel. <paramref name="checksumPending"/>: the sender left the transport checksum to offload (a veth or local
    /// sender, TP_STATUS_CSUMNOTREADY), so the frame carries only its pseudo-header sum. A frame that could not be
    /// read whole (longer than a ring frame with the socket's queue full, or than <see cref="MaxSuperFrameBytes"/>)
    /// comes back with length 0. <paramref name="gsoType"/> and <paramref name="gsoSize"/>: a GSO frame's kind
    /// (VIRTIO_NET_HDR_GSO_*) and segment payload size, from its virtio-net header (NONE and 0 for a plain frame, and
    /// where the kernel refused PACKET_VNET_HDR).
    /// </summary>
    public bool TryReceive(out byte* frame, out int length, out byte packetType, out bool checksumPending, out byte gsoType, out int gsoSize)
    {
        Release();
        var h = (Tpacket2Hdr*)(_map + (nint)_rxNext * _frameBytes);
        uint status = Volatile.Read(ref h->Status);
        gsoType = Linux.VIRTIO_NET_HDR_GSO_NONE;
        gsoSize = 0;
        if ((status & Linux.TP_STATUS_USER) == 0)
        {
            frame = null;
            length = 0;
            packetType = 0;
            checksumPending = false;
            return false;
        }
        _rxHeld = h;
        _rxNext = _rxNext + 1 == _rxFrames ? 0 : _rxNext + 1;
        packetType = ((SockAddrLl*)((byte*)h + RxAddressOffset))->PacketType;
        checksumPending = (status & Linux.TP_STATUS_CSUMNOTREADY) != 0;
        if ((status & Linux.TP_STATUS_COPY) != 0)
        {
            // The ring holds the head only; the whole frame is the oldest on the socket's queue (queued with this slot).
            SockAddrLl from;
            uint fromLength = (uint)sizeof(SockAddrLl);
            // With PACKET_VNET_HDR the socket hands the header first, and counts it in what it returns.
            long got = Libc.recvfrom(_fd, _super, MaxSuperFrameBytes, Linux.MSG_DONTWAIT | Linux.MSG_TRUNC, &from, &fromLength);
            frame = _super + _vnetBytes;
            length = got >= _vnetBytes && got <= MaxSuperFrameBytes ? (int)got - _vnetBytes : 0;
            if (length > 0 && _vnetBytes > 0) ReadGso((VirtioNetHdr*)_super, out gsoType, out gsoSize);
            return true;
        }
        frame = (byte*)h + h->MacOffset;
        // A frame cut short by the ring without a whole copy (the socket's queue was full) is reported as unreadable.
        length = h->SnapLength < h->Length ? 0 : (int)h->SnapLength;
        // The header sits right in front of the frame (tpacket_rcv: netoff counts it in).
        if (_vnetBytes > 0) ReadGso((VirtioNetHdr*)(frame - VirtioNetHdr.Bytes), out gsoType, out gsoSize);
        return true;
    }

    private static void ReadGso(VirtioNetHdr* v, out byte gsoType, out int gsoSize)
    {
        gsoType = (byte)(v->GsoType & ~Linux.VIRTIO_NET_HDR_GSO_ECN);
        gsoSize = gsoType == Linux.VIRTIO_NET_HDR_GSO_NONE ? 0 : v->GsoSize;
    }

    /// <summary>Gives the frame <see cref="TryReceive"/> returned last back to the kernel (it is no longer read).</summary>
    public void Release()
    {
        if (_rxHeld == null) return;
        Volatile.Write(ref _rxHeld->Status, Linux.TP_STATUS_KERNEL);
        _rxHeld = null;
    }

    /// <summary>
    /// The next free transmit slot's frame area (<see cref="MaxTxFrameBytes"/> bytes), or null when all are in flight.
    /// <paramref name="rejected"/>: the frame this slot held last was refused by the kernel (TP_STATUS_WRONG_FORMAT).
    /// </summary>
    public byte* TxSlot(out bool rejected)
    {
        var h = (Tpacket2Hdr*)(_tx + (nint)_txNext * _frameBytes);
        uint status = Volatile.Read(ref h->Status);
        rejected = status == Linux.TP_STATUS_WRONG_FORMAT;
        // Behind the slot's virtio-net header, which stays empty (no GSO, checksum complete): the kernel hands out the
        // ring's pages zeroed (alloc_one_pg_vec_page asks __GFP_ZERO), and neither it nor we write there.
        return status is Linux.TP_STATUS_SEND_REQUEST or Linux.TP_STATUS_SENDING ? null : (byte*)h + TxDataOffset + _vnetBytes;
    }

    /// <summary>Hands the slot <see cref="TxSlot"/> returned, holding <paramref name="length"/> bytes, to the kernel.</summary>
    public void TxCommit(int length)
    {
        var h = (Tpacket2Hdr*)(_tx + (nint)_txNext * _frameBytes);
        h->Length = (uint)(length + _vnetBytes);
        h->SnapLength = (uint)(length + _vnetBytes);
        Volatile.Write(ref h->Status, Linux.TP_STATUS_SEND_REQUEST);
        _txNext = (_txNext + 1) % _txFrames;
    }

    /// <summary>Tells the kernel to send what was committed; returns 0 or the errno.</summary>
    public int Flush()
    {
        if (Libc.sendto(_fd, null, 0, Linux.MSG_DONTWAIT, null, 0) >= 0) return 0;
        int e = Libc.LastError;
        return e == Linux.EAGAIN ? 0 : e; // EAGAIN: the kernel is still sending; the slots stay queued
    }

    public void Dispose()
    {
        System.Runtime.InteropServices.NativeMemory.Free(_super);
        if (_gsoFd >= 0) Libc.close(_gsoFd);
        Libc.munmap(_map, _mapBytes);
        Libc.close(_fd);
    }
}
