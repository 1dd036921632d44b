namespace FastXtr.NativeInterop;

/// <summary>
/// Linux constants as the C headers name them (x86-64 and aarch64 agree on all of these). The values are
/// checked against the system headers by tests/FastXtr.Tests/Interop/NativeLayoutTests.cs, which compiles a
/// small C program with gcc.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1707", Justification = "Named exactly as the C headers name them, so that a reader can grep both and the layout test can print each by its name")]
public static class Linux
{
    // <fcntl.h>
    public const int O_RDONLY = 0x0;
    public const int O_RDWR = 0x2;
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    public const int O_NONBLOCK = 0x800;
    public const int O_CLOEXEC = 0x80000;

    // <sys/file.h>
    public const int LOCK_EX = 2;
    public const int LOCK_NB = 4;

    // <sys/mman.h>
    public const int PROT_READ = 0x1;
    public const int PROT_WRITE = 0x2;
    public const int MAP_SHARED = 0x01;
    public const int MAP_PRIVATE = 0x02;
    public const int MAP_ANONYMOUS = 0x20;
    public const int MAP_POPULATE = 0x8000;

    // <sys/socket.h>, <netinet/in.h>
    public const int AF_INET = 2;
    public const int AF_INET6 = 10;
    public const int SOCK_DGRAM = 2;
    public const int SOCK_NONBLOCK = 0x800;
    public const int SOCK_CLOEXEC = 0x80000;
    public const int SOL_SOCKET = 1;
    public const int SO_REUSEADDR = 2;
    public const int SO_SNDBUF = 7;
    public const int SO_RCVBUF = 8;
    public const int SO_REUSEPORT = 15;
    public const int SO_BINDTODEVICE = 25;
    public const int SO_SNDBUFFORCE = 32;
    public const int SO_RCVBUFFORCE = 33;
    public const int IPPROTO_IP = 0;
    public const int IPPROTO_IPV6 = 41;
    public const int IPPROTO_UDP = 17;
    public const int IP_MTU_DISCOVER = 10;
    public const int IP_TOS = 1;
    public const int IP_TTL = 2;
    public const int IP_RECVTTL = 12;
    public const int IP_RECVTOS = 13;
    public const int IP_PMTUDISC_DONT = 0;
    public const int IPV6_V6ONLY = 26;
    public const int IPV6_MTU_DISCOVER = 23;
    public const int IPV6_PMTUDISC_DONT = 0;
    public const int IPV6_RECVHOPLIMIT = 51;
    public const int IPV6_HOPLIMIT = 52;
    public const int IPV6_RECVTCLASS = 66;
    public const int IPV6_TCLASS = 67;
    /// <summary>UDP over IPv6: send a zero checksum (RFC 6935/6936 tunnels); <see cref="UDP_NO_CHECK6_RX"/> accepts one.</summary>
    public const int UDP_NO_CHECK6_TX = 101;
    public const int UDP_NO_CHECK6_RX = 102;
    public const int SOL_UDP = 17;
    public const int UDP_SEGMENT = 103;
    public const int UDP_GRO = 104;
    public const int MSG_DONTWAIT = 0x40;
    public const int MSG_TRUNC = 0x20;

    // <poll.h>
    public const short POLLIN = 0x1;
    public const short POLLOUT = 0x4;
    public const short POLLERR = 0x8;

    // <errno.h>
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int EINTR = 4;
    public const int EAGAIN = 11;
    public const int EACCES = 13;
    public const int EBUSY = 16;
    public const int EEXIST = 17;
    public const int ENODEV = 19;
    public const int EINVAL = 22;
    public const int EMSGSIZE = 90;
    public const int EADDRINUSE = 98;

    // <linux/if_tun.h>, <linux/if.h>
    public const uint TUNSETIFF = 0x400454ca;
    public const short IFF_TUN = 0x0001;
    public const short IFF_NO_PI = 0x1000;
    public const short IFF_MULTI_QUEUE = 0x0100;
    public const short IFF_VNET_HDR = 0x4000;
    public const int IFNAMSIZ = 16;
    public const uint TUNSETOFFLOAD = 0x400454d0;
    public const uint TUNSETVNETHDRSZ = 0x400454d8;
    public const uint TUN_F_CSUM = 0x01;
    public const uint TUN_F_TSO4 = 0x02;
    public const uint TUN_F_TSO6 = 0x04;
    public const uint TUN_F_TSO_ECN = 0x08;
    // Linux 6.2+; newer than Debian 12's headers, so not in the layout test: values from the kernel's if_tun.h.
    public const uint TUN_F_USO4 = 0x20;
    public const uint TUN_F_USO6 = 0x40;

    // <linux/virtio_net.h>
    public const byte VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
    public const byte VIRTIO_NET_HDR_F_DATA_VALID = 2;
    public const byte VIRTIO_NET_HDR_GSO_NONE = 0;
    public const byte VIRTIO_NET_HDR_GSO_TCPV4 = 1;
    public const byte VIRTIO_NET_HDR_GSO_TCPV6 = 4;
    public const byte VIRTIO_NET_HDR_GSO_UDP_L4 = 5; // Linux 5.18+, newer than Debian 12's headers
    public const byte VIRTIO_NET_HDR_GSO_ECN = 0x80;

    // <linux/if_packet.h>, <linux/if_ether.h>, <sys/mman.h>, <linux/sockios.h>: AF_PACKET rings (--mode af-packet).
    public const int AF_PACKET = 17;
    public const int SOCK_RAW = 3;
    public const int SOL_PACKET = 263;
    public const int ETH_P_ALL = 0x0003;
    public const int ETH_P_IP = 0x0800;
    public const int ETH_P_IPV6 = 0x86DD;
    public const int PACKET_RX_RING = 5;
    public const int PACKET_VERSION = 10;
    public const int PACKET_COPY_THRESH = 7;
    public const int PACKET_TX_RING = 13;
    public const int PACKET_VNET_HDR = 15;
    public const int PACKET_FANOUT = 18;
    public const int PACKET_QDISC_BYPASS = 20;
    public const int PACKET_IGNORE_OUTGOING = 23;
    public const int TPACKET_V2 = 1;
    public const int PACKET_FANOUT_HASH = 0;
    public const int PACKET_FANOUT_FLAG_DEFRAG = 0x8000;
    public const int PACKET_HOST = 0;
    public const uint TP_STATUS_KERNEL = 0;
    public const uint TP_STATUS_USER = 1;
    public const uint TP_STATUS_COPY = 2;
    public const uint TP_STATUS_SEND_REQUEST = 1;
    public const uint TP_STATUS_SENDING = 2;
    public const uint TP_STATUS_WRONG_FORMAT = 4;
    public const uint TP_STATUS_CSUMNOTREADY = 8;
    public const uint SIOCGIFINDEX = 0x8933;
    public const uint SIOCGIFHWADDR = 0x8927;
    public const uint SIOCGIFMTU = 0x8921;
    public const uint SIOCGIFADDR = 0x8915;
    public const uint SIOCSIFTXQLEN = 0x8943;
    public const int MAP_LOCKED = 0x2000;
    public const int ENETDOWN = 100;
    public const int ENOBUFS = 105;

    // <linux/if_xdp.h>, <linux/bpf.h>, <linux/if_link.h>: AF_XDP sockets and their XDP program (--mode af-xdp).
    public const int AF_XDP = 44;
    public const int SOL_XDP = 283;
    public const int XDP_MMAP_OFFSETS = 1;
    public const int XDP_RX_RING = 2;
    public const int XDP_TX_RING = 3;
    public const int XDP_UMEM_REG = 4;
    public const int XDP_UMEM_FILL_RING = 5;
    public const int XDP_UMEM_COMPLETION_RING = 6;
    public const int XDP_STATISTICS = 7;
    public const int XDP_OPTIONS = 8;
    public const ushort XDP_SHARED_UMEM = 1 << 0;
    public const int SIGHUP = 1;
    public const int SIG_DFL = 0;
    public const ushort XDP_COPY = 1 << 1;
    public const ushort XDP_ZEROCOPY = 1 << 2;
    public const ushort XDP_USE_NEED_WAKEUP = 1 << 3;
    public const uint XDP_RING_NEED_WAKEUP = 1;
    public const uint XDP_OPTIONS_ZEROCOPY = 1;
    public const long XDP_PGOFF_RX_RING = 0;
    public const long XDP_PGOFF_TX_RING = 0x80000000;
    public const long XDP_UMEM_PGOFF_FILL_RING = 0x100000000;
    public const long XDP_UMEM_PGOFF_COMPLETION_RING = 0x180000000;
    /// <summary>Room the kernel keeps in front of a received frame in its UMEM chunk (XDP_PACKET_HEADROOM).</summary>
    public const int XDP_PACKET_HEADROOM = 256;
    public const int XDP_PASS = 2;
    public const int XDP_REDIRECT = 4;
    public const uint XDP_FLAGS_SKB_MODE = 1 << 1;
    public const uint XDP_FLAGS_DRV_MODE = 1 << 2;
    public const long SYS_bpf = 321; // x86-64 (aarch64: 280)
    public const long SYS_sched_setattr = 314; // x86-64 (aarch64: 274)
    public const long SYS_sched_getattr = 315; // x86-64 (aarch64: 275)
    public const int SCHED_OTHER = 0;
    public const int BPF_MAP_CREATE = 0;
    public const int BPF_MAP_UPDATE_ELEM = 2;
    public const int BPF_PROG_LOAD = 5;
    public const int BPF_LINK_CREATE = 28;
    public const int BPF_MAP_TYPE_XSKMAP = 17;
    public const int BPF_PROG_TYPE_XDP = 6;
    public const int BPF_XDP = 37;
    public const int BPF_FUNC_redirect_map = 51;
    public const int BPF_PSEUDO_MAP_FD = 1;
    public const int EOPNOTSUPP = 95;
}
