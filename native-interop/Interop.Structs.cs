using System.Runtime.InteropServices;

namespace FastXtr.NativeInterop;

/// <summary>struct iovec (&lt;sys/uio.h&gt;): 16 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct IoVec
{
    public void* Base;
    public nuint Length;
}

/// <summary>struct msghdr (&lt;sys/socket.h&gt;): 56 bytes on 64-bit Linux.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MsgHdr
{
    public void* Name;
    public uint NameLength;
    public IoVec* Iov;
    public nuint IovLength;
    public void* Control;
    public nuint ControlLength;
    public int Flags;
}

/// <summary>struct mmsghdr (&lt;sys/socket.h&gt;, for sendmmsg/recvmmsg): 64 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct MMsgHdr
{
    public MsgHdr Header;
    public uint Length;
}

/// <summary>struct sockaddr_in (&lt;netinet/in.h&gt;): 16 bytes; port and address in network byte order.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct SockAddrIn
{
    public ushort Family;
    public ushort PortBigEndian;
    public uint AddressBigEndian;
    public fixed byte Zero[8];
}

/// <summary>struct sockaddr_in6 (&lt;netinet/in.h&gt;): 28 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct SockAddrIn6
{
    public ushort Family;
    public ushort PortBigEndian;
    public uint FlowInfo;
    public fixed byte Address[16];
    public uint ScopeId;
}

/// <summary>struct ifreq (&lt;net/if.h&gt;) as TUNSETIFF uses it: the name and ifr_flags; 40 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = 40)]
internal unsafe struct IfReq
{
    [FieldOffset(0)] public fixed byte Name[Linux.IFNAMSIZ];
    [FieldOffset(16)] public short Flags;
    [FieldOffset(16)] public int IntValue;
    /// <summary>ifr_addr as a struct sockaddr_in: the address after family and port (SIOCGIFADDR).</summary>
    [FieldOffset(20)] public uint AddressBigEndian;
    /// <summary>ifr_hwaddr.sa_data: the MAC address after the two-byte sa_family (SIOCGIFHWADDR).</summary>
    [FieldOffset(18)] public fixed byte HardwareAddress[6];
}

/// <summary>struct sockaddr_ll (&lt;linux/if_packet.h&gt;): 20 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct SockAddrLl
{
    public ushort Family;
    public ushort ProtocolBigEndian;
    public int InterfaceIndex;
    public ushort HardwareType;
    public byte PacketType;
    public byte AddressLength;
    public fixed byte Address[8];
}

/// <summary>struct tpacket_req (&lt;linux/if_packet.h&gt;): a TPACKET_V2 ring's geometry, 16 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TpacketReq
{
    public uint BlockSize;
    public uint BlockCount;
    public uint FrameSize;
    public uint FrameCount;
}

/// <summary>struct tpacket2_hdr (&lt;linux/if_packet.h&gt;): one frame's header in a TPACKET_V2 ring, 32 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct Tpacket2Hdr
{
    [FieldOffset(0)] public uint Status;
    [FieldOffset(4)] public uint Length;
    [FieldOffset(8)] public uint SnapLength;
    [FieldOffset(12)] public ushort MacOffset;
    [FieldOffset(14)] public ushort NetworkOffset;
    [FieldOffset(16)] public uint Seconds;
    [FieldOffset(20)] public uint Nanoseconds;
}

/// <summary>struct pollfd (&lt;poll.h&gt;): 8 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct PollFd
{
    public int Fd;
    public short Events;
    public short Revents;
}

/// <summary>
/// struct stat (&lt;sys/stat.h&gt;): 144 bytes on x86-64 glibc (arm64's 128 fit); only the identity fields are
/// named, the rest is room. The identity of a file is (st_dev, st_ino): a replaced /dev/shm region has a new inode.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 144)]
internal struct StatBuf
{
    [FieldOffset(0)] public ulong Device;
    [FieldOffset(8)] public ulong Inode;
}

/// <summary>
/// struct virtio_net_hdr (&lt;linux/virtio_net.h&gt;): 10 bytes in front of every packet on a TUN opened with
/// IFF_VNET_HDR. Little-endian fields (the TUN's vnet header is in host order on a little-endian machine).
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioNetHdr
{
    public const int Bytes = 10;
    public byte Flags;
    public byte GsoType;
    public ushort HdrLen;
    public ushort GsoSize;
    public ushort CsumStart;
    public ushort CsumOffset;
}

/// <summary>struct sockaddr_xdp (&lt;linux/if_xdp.h&gt;): 16 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct SockAddrXdp
{
    public ushort Family;
    public ushort Flags;
    public int InterfaceIndex;
    public uint QueueId;
    public uint SharedUmemFd;
}

/// <summary>struct xdp_umem_reg (&lt;linux/if_xdp.h&gt;): 32 bytes (tx_metadata_len, Linux 6.8+, left 0).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct XdpUmemReg
{
    public ulong Address;
    public ulong Length;
    public uint ChunkSize;
    public uint Headroom;
    public uint Flags;
    public uint TxMetadataLength;
}

/// <summary>struct xdp_ring_offset (&lt;linux/if_xdp.h&gt;): where a ring's indices, descriptors and flags sit in its mapping.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct XdpRingOffset
{
    public ulong Producer;
    public ulong Consumer;
    public ulong Descriptors;
    public ulong Flags;
}

/// <summary>struct xdp_mmap_offsets (&lt;linux/if_xdp.h&gt;): 128 bytes, the four rings' offsets.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct XdpMmapOffsets
{
    public XdpRingOffset Rx;
    public XdpRingOffset Tx;
    public XdpRingOffset Fill;
    public XdpRingOffset Completion;
}

/// <summary>struct xdp_desc (&lt;linux/if_xdp.h&gt;): one RX or TX descriptor, 16 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct XdpDesc
{
    public ulong Address;
    public uint Length;
    public uint Options;
}

/// <summary>struct xdp_statistics (&lt;linux/if_xdp.h&gt;): 48 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct XdpStatistics
{
    public ulong RxDropped;
    public ulong RxInvalidDescriptors;
    public ulong TxInvalidDescriptors;
    public ulong RxRingFull;
    public ulong RxFillRingEmpty;
    public ulong TxRingEmpty;
}

/// <summary>struct bpf_insn (&lt;linux/bpf.h&gt;): 8 bytes; dst_reg in the low nibble of the second byte.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct BpfInsn
{
    public byte Code;
    public byte Registers;
    public short Offset;
    public int Immediate;
}

/// <summary>struct sched_attr (&lt;linux/sched/types.h&gt;, SCHED_ATTR_SIZE_VER1).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct SchedAttr
{
    public uint Size;
    public uint Policy;
    public ulong Flags;
    public int Nice;
    public uint Priority;
    /// <summary>For SCHED_OTHER (EEVDF, Linux 6.12 on): the slice the thread asks for, in ns (0: the default).</summary>
    public ulong Runtime;
    public ulong Deadline;
    public ulong Period;
    public uint UtilMin;
    public uint UtilMax;
}

/// <summary>union bpf_attr (&lt;linux/bpf.h&gt;) as raw bytes: each command fills the fields at their C offsets.</summary>
[StructLayout(LayoutKind.Sequential, Size = 144)]
internal unsafe struct BpfAttr
{
    public fixed byte Bytes[144];
}
