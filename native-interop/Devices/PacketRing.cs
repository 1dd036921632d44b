using System.Buffers.Binary;

namespace FastXtr.NativeInterop;

/// <summary>
/// An AF_PACKET socket on one Ethernet interface with a TPACKET_V3 receive ring and a transmit ring, both mapped
/// into our memory (--mode af-packet): frames arrive in blocks the kernel hands over whole, so a busy worker reads
/// many frames per wake-up and no system call per frame; frames to send are written into ring slots and the kernel
/// is told once per batch. Outgoing frames are not looped back to us (PACKET_IGNORE_OUTGOING), sends bypass the
/// qdisc, and with several workers a fanout group spreads flows across their sockets by hash.
/// </summary>
public sealed unsafe class PacketRing : IDisposable
{
    /// <summary>Bytes of one transmit slot and the receive ring's nominal frame: the tpacket header and a 2000-byte frame.</summary>
    public const int FrameBytes = 2048;
    /// <summary>Where the frame starts in a transmit slot: TPACKET_ALIGN(sizeof(struct tpacket3_hdr)).</summary>
    public const int TxDataOffset = 48;
    /// <summary>The longest Ethernet frame a transmit slot holds.</summary>
    public const int MaxTxFrameBytes = FrameBytes - TxDataOffset;
    private const int RxBlockBytes = 1 << 18;
    private const int TxBlockBytes = 1 << 16;
    /// <summary>A receive block that is not full is handed over after this long (TPACKET_V3's retire timer).</summary>
    public const int RxBlockTimeoutMs = 1;

    private readonly int _fd;
    private readonly byte* _map;
    private readonly nuint _mapBytes;
    private readonly int _rxBlocks;
    private readonly byte* _tx;
    private readonly int _txFrames;
    private int _rxBlock;
    private uint _rxLeft;
    private byte* _rxNext;
    private bool _inBlock;
    private int _txNext;
    private readonly byte[] _mac = new byte[6];

    public string Name { get; }
    public int InterfaceIndex { get; }
    public int Mtu { get; }
    public ReadOnlySpan<byte> Mac => _mac;
    public int Fd => _fd;

    private PacketRing(string name, int fd, byte* map, nuint mapBytes, int rxBlocks, int txFrames, int ifindex, int mtu, ReadOnlySpan<byte> mac)
    {
        Name = name;
        _fd = fd;
        _map = map;
        _mapBytes = mapBytes;
        _rxBlocks = rxBlocks;
        _tx = map + (nint)rxBlocks * RxBlockBytes;
        _txFrames = txFrames;
        InterfaceIndex = ifindex;
        Mtu = mtu;
        mac.CopyTo(_mac);
    }

    /// <summary>
    /// Opens the rings on <paramref name="name"/> (an existing Ethernet interface): at least <paramref name="rxFrames"/>
    /// 2 KB frames of receive ring and <paramref name="txFrames"/> transmit slots; <paramref name="fanoutGroup"/> ≥ 0
    /// joins that fanout group (one per interface, shared by the workers). Errors name the interface and the cause.
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
            IfReq req = default;
            for (int i = 0; i < name.Length; i++) req.Name[i] = (byte)name[i];
            if (Libc.ioctl_ifreq(fd, Linux.SIOCGIFINDEX, &req) != 0)
                throw new NativeException($"interface {name} (the EID-facing interface of --mode af-packet) does not exist here", Libc.LastError);
            int ifindex = req.IntValue;
            if (Libc.ioctl_ifreq(fd, Linux.SIOCGIFMTU, &req) != 0) throw new NativeException($"SIOCGIFMTU {name}", Libc.LastError);
            int mtu = req.IntValue;
            if (Libc.ioctl_ifreq(fd, Linux.SIOCGIFHWADDR, &req) != 0) throw new NativeException($"SIOCGIFHWADDR {name}", Libc.LastError);
            var mac = new ReadOnlySpan<byte>(req.HardwareAddress, 6).ToArray();

            Set(fd, Linux.PACKET_VERSION, Linux.TPACKET_V3, "PACKET_VERSION TPACKET_V3");
            int rxBlocks = Math.Max(2, (int)(((long)rxFrames * FrameBytes + RxBlockBytes - 1) / RxBlockBytes));
            var rx = new TpacketReq3
            {
                BlockSize = RxBlockBytes, BlockCount = (uint)rxBlocks, FrameSize = FrameBytes,
                FrameCount = (uint)(rxBlocks * (RxBlockBytes / FrameBytes)), RetireBlockTimeoutMs = RxBlockTimeoutMs,
            };
            if (Libc.setsockopt(fd, Linux.SOL_PACKET, Linux.PACKET_RX_RING, &rx, (uint)sizeof(TpacketReq3)) != 0)
                throw new NativeException($"PACKET_RX_RING on {name} ({rxBlocks} blocks of {RxBlockBytes} bytes)", Libc.LastError);
            int txBlocks = Math.Max(1, (int)(((long)txFrames * FrameBytes + TxBlockBytes - 1) / TxBlockBytes));
            int txSlots = txBlocks * (TxBlockBytes / FrameBytes);
            var tx = new TpacketReq3 { BlockSize = TxBlockBytes, BlockCount = (uint)txBlocks, FrameSize = FrameBytes, FrameCount = (uint)txSlots };
            if (Libc.setsockopt(fd, Linux.SOL_PACKET, Linux.PACKET_TX_RING, &tx, (uint)sizeof(TpacketReq3)) != 0)
                throw new NativeException($"PACKET_TX_RING on {name} ({txSlots} slots)", Libc.LastError);
            mapBytes = (nuint)rxBlocks * RxBlockBytes + (nuint)txBlocks * TxBlockBytes;
            map = (byte*)Libc.mmap(null, mapBytes, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_SHARED | Linux.MAP_POPULATE, fd, 0);
            if (map == (byte*)-1)
            {
                map = null;
                throw new NativeException($"mmap of the {name} rings ({mapBytes} bytes)", Libc.LastError);
            }
            SetOptional(fd, Linux.PACKET_QDISC_BYPASS, 1);
            SetOptional(fd, Linux.PACKET_IGNORE_OUTGOING, 1);
            SockAddrLl sll = default;
            sll.Family = Linux.AF_PACKET;
            sll.ProtocolBigEndian = BinaryPrimitives.ReverseEndianness((ushort)Linux.ETH_P_ALL);
            sll.InterfaceIndex = ifindex;
            if (Libc.bind(fd, &sll, (uint)sizeof(SockAddrLl)) != 0) throw new NativeException($"bind AF_PACKET to {name}", Libc.LastError);
            if (fanoutGroup >= 0)
                Set(fd, Linux.PACKET_FANOUT, (fanoutGroup & 0xFFFF) | ((Linux.PACKET_FANOUT_HASH | Linux.PACKET_FANOUT_FLAG_DEFRAG) << 16), $"PACKET_FANOUT group {fanoutGroup} on {name}");
            return new PacketRing(name, fd, map, mapBytes, rxBlocks, txSlots, ifindex, mtu, mac);
        }
        catch
        {
            if (map != null) Libc.munmap(map, mapBytes);
            Libc.close(fd);
            throw;
        }
    }

    private static void Set(int fd, int option, int value, string what)
    {
        if (Libc.setsockopt(fd, Linux.SOL_PACKET, option, &value, sizeof(int)) != 0) throw new NativeException(what, Libc.LastError);
    }

    private static void SetOptional(int fd, int option, int value) => Libc.setsockopt(fd, Linux.SOL_PACKET, option, &value, sizeof(int));

    /// <summary>
    /// The next received frame (from its Ethernet header), or false when the kernel has handed over nothing more.
    /// The frame stays valid until the next call; a block is given back to the kernel once all its frames were read.
    /// <paramref name="checksumPending"/>: the sender left the transport checksum to offload (a veth or local
    /// sender, TP_STATUS_CSUMNOTREADY), so the frame carries only its pseudo-header sum. A frame the ring had to cut
    /// short comes back with length 0.
    /// </summary>
    public bool TryReceive(out byte* frame, out int length, out byte packetType, out bool checksumPending)
    {
        while (true)
        {
            var block = (TpacketBlockDesc*)(_map + (nint)_rxBlock * RxBlockBytes);
            if (!_inBlock)
            {
                if ((Volatile.Read(ref block->BlockStatus) & Linux.TP_STATUS_USER) == 0)
                {
                    frame = null;
                    length = 0;
                    packetType = 0;
                    checksumPending = false;
                    return false;
                }
                _inBlock = true;
                _rxLeft = block->PacketCount;
                _rxNext = (byte*)block + block->OffsetToFirstPacket;
            }
            if (_rxLeft == 0)
            {
                Volatile.Write(ref block->BlockStatus, Linux.TP_STATUS_KERNEL);
                _inBlock = false;
                _rxBlock = (_rxBlock + 1) % _rxBlocks;
                continue;
            }
            var h = (Tpacket3Hdr*)_rxNext;
            frame = _rxNext + h->MacOffset;
            // A frame cut short by the ring (its snap length below its length) is reported as not IP-sized at all.
            length = h->SnapLength < h->Length ? 0 : (int)h->SnapLength;
            packetType = ((SockAddrLl*)(_rxNext + TxDataOffset))->PacketType;
            checksumPending = (h->Status & Linux.TP_STATUS_CSUMNOTREADY) != 0;
            _rxNext += h->NextOffset;
            _rxLeft--;
            return true;
        }
    }

    /// <summary>
    /// The next free transmit slot's frame area (<see cref="MaxTxFrameBytes"/> bytes), or null when all are in flight.
    /// <paramref name="rejected"/>: the frame this slot held last was refused by the kernel (TP_STATUS_WRONG_FORMAT).
    /// </summary>
    public byte* TxSlot(out bool rejected)
    {
        var h = (Tpacket3Hdr*)(_tx + (nint)_txNext * FrameBytes);
        uint status = Volatile.Read(ref h->Status);
        rejected = status == Linux.TP_STATUS_WRONG_FORMAT;
        return status is Linux.TP_STATUS_SEND_REQUEST or Linux.TP_STATUS_SENDING ? null : (byte*)h + TxDataOffset;
    }

    /// <summary>Hands the slot <see cref="TxSlot"/> returned, holding <paramref name="length"/> bytes, to the kernel.</summary>
    public void TxCommit(int length)
    {
        var h = (Tpacket3Hdr*)(_tx + (nint)_txNext * FrameBytes);
        h->Length = (uint)length;
        h->SnapLength = (uint)length;
        h->NextOffset = 0;
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
        Libc.munmap(_map, _mapBytes);
        Libc.close(_fd);
    }
}
