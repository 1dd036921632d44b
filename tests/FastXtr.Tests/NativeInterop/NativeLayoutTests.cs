using System.Runtime.CompilerServices;
using FastXtr.NativeInterop;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.NativeInterop;

/// <summary>
/// Our hand-written Linux structs and constants against the system's C headers: a C program compiled with gcc
/// prints sizeof, offsetof and the constants' values, and each must equal ours.
/// </summary>
[TestFixture]
public class NativeLayoutTests
{
    private const string Program = """
        #define _GNU_SOURCE
        #include <stdio.h>
        #include <stddef.h>
        #include <fcntl.h>
        #include <poll.h>
        #include <signal.h>
        #include <errno.h>
        #include <sys/ioctl.h>
        #include <sys/mman.h>
        #include <sys/stat.h>
        #include <sys/socket.h>
        #include <sys/uio.h>
        #include <sys/file.h>
        #include <netinet/in.h>
        #include <netinet/udp.h>
        #include <net/if.h>
        #include <linux/if_tun.h>
        #include <linux/virtio_net.h>
        #include <linux/if_packet.h>
        #include <linux/if_ether.h>
        #include <linux/sockios.h>
        #include <linux/if_xdp.h>
        #include <linux/if_link.h>
        #include <linux/bpf.h>
        #include <sys/syscall.h>
        #include <linux/sched.h>
        #include <linux/sched/types.h>
        #ifndef PACKET_IGNORE_OUTGOING
        #define PACKET_IGNORE_OUTGOING 23
        #endif
        /* Newer than Debian 12's headers (Linux 6.2 / 5.18): checked wherever the headers have them. */
        #ifndef TUN_F_USO4
        #define TUN_F_USO4 0x20
        #define TUN_F_USO6 0x40
        #endif
        #ifndef VIRTIO_NET_HDR_GSO_UDP_L4
        #define VIRTIO_NET_HDR_GSO_UDP_L4 5
        #endif
        #define P(name, value) printf("%s=%ld\n", name, (long)(value))
        int main(void) {
          P("sizeof iovec", sizeof(struct iovec)); P("offsetof iovec.iov_len", offsetof(struct iovec, iov_len));
          P("sizeof msghdr", sizeof(struct msghdr)); P("offsetof msghdr.msg_iov", offsetof(struct msghdr, msg_iov));
          P("offsetof msghdr.msg_control", offsetof(struct msghdr, msg_control)); P("offsetof msghdr.msg_flags", offsetof(struct msghdr, msg_flags));
          P("sizeof mmsghdr", sizeof(struct mmsghdr)); P("offsetof mmsghdr.msg_len", offsetof(struct mmsghdr, msg_len));
          P("sizeof sockaddr_in", sizeof(struct sockaddr_in)); P("offsetof sockaddr_in.sin_addr", offsetof(struct sockaddr_in, sin_addr));
          P("sizeof sockaddr_in6", sizeof(struct sockaddr_in6)); P("offsetof sockaddr_in6.sin6_addr", offsetof(struct sockaddr_in6, sin6_addr));
          P("offsetof sockaddr_in6.sin6_scope_id", offsetof(struct sockaddr_in6, sin6_scope_id));
          P("sizeof ifreq", sizeof(struct ifreq)); P("offsetof ifreq.ifr_flags", offsetof(struct ifreq, ifr_flags));
          P("sizeof pollfd", sizeof(struct pollfd)); P("offsetof pollfd.revents", offsetof(struct pollfd, revents));
          P("sizeof virtio_net_hdr", sizeof(struct virtio_net_hdr)); P("offsetof virtio_net_hdr.gso_size", offsetof(struct virtio_net_hdr, gso_size));
          P("offsetof virtio_net_hdr.csum_offset", offsetof(struct virtio_net_hdr, csum_offset));
          P("TUNSETOFFLOAD", TUNSETOFFLOAD); P("TUNSETVNETHDRSZ", TUNSETVNETHDRSZ); P("TUN_F_CSUM", TUN_F_CSUM); P("TUN_F_TSO4", TUN_F_TSO4);
          P("TUN_F_TSO6", TUN_F_TSO6); P("TUN_F_TSO_ECN", TUN_F_TSO_ECN); P("VIRTIO_NET_HDR_F_NEEDS_CSUM", VIRTIO_NET_HDR_F_NEEDS_CSUM);
          P("VIRTIO_NET_HDR_F_DATA_VALID", VIRTIO_NET_HDR_F_DATA_VALID); P("VIRTIO_NET_HDR_GSO_NONE", VIRTIO_NET_HDR_GSO_NONE);
          P("VIRTIO_NET_HDR_GSO_TCPV4", VIRTIO_NET_HDR_GSO_TCPV4); P("VIRTIO_NET_HDR_GSO_TCPV6", VIRTIO_NET_HDR_GSO_TCPV6); P("VIRTIO_NET_HDR_GSO_ECN", VIRTIO_NET_HDR_GSO_ECN);
          P("TUN_F_USO4", TUN_F_USO4); P("TUN_F_USO6", TUN_F_USO6); P("VIRTIO_NET_HDR_GSO_UDP_L4", VIRTIO_NET_HDR_GSO_UDP_L4);
          P("sizeof stat", sizeof(struct stat)); P("offsetof stat.st_ino", offsetof(struct stat, st_ino));
          P("O_RDONLY", O_RDONLY); P("O_RDWR", O_RDWR); P("O_CREAT", O_CREAT); P("O_EXCL", O_EXCL); P("O_NONBLOCK", O_NONBLOCK); P("O_CLOEXEC", O_CLOEXEC);
          P("LOCK_EX", LOCK_EX); P("LOCK_NB", LOCK_NB);
          P("PROT_READ", PROT_READ); P("PROT_WRITE", PROT_WRITE); P("MAP_SHARED", MAP_SHARED); P("MAP_POPULATE", MAP_POPULATE);
          P("AF_INET", AF_INET); P("AF_INET6", AF_INET6); P("SOCK_DGRAM", SOCK_DGRAM); P("SOCK_NONBLOCK", SOCK_NONBLOCK); P("SOCK_CLOEXEC", SOCK_CLOEXEC);
          P("SOL_SOCKET", SOL_SOCKET); P("SO_REUSEADDR", SO_REUSEADDR); P("SO_SNDBUF", SO_SNDBUF); P("SO_RCVBUF", SO_RCVBUF);
          P("SO_REUSEPORT", SO_REUSEPORT); P("SO_SNDBUFFORCE", SO_SNDBUFFORCE); P("SO_RCVBUFFORCE", SO_RCVBUFFORCE);
          P("IPPROTO_IP", IPPROTO_IP); P("IPPROTO_IPV6", IPPROTO_IPV6); P("IPPROTO_UDP", IPPROTO_UDP); P("IP_MTU_DISCOVER", IP_MTU_DISCOVER);
          P("IP_PMTUDISC_DONT", IP_PMTUDISC_DONT); P("IPV6_V6ONLY", IPV6_V6ONLY); P("SOL_UDP", SOL_UDP); P("UDP_SEGMENT", UDP_SEGMENT); P("UDP_GRO", UDP_GRO);
          P("IPV6_MTU_DISCOVER", IPV6_MTU_DISCOVER); P("IPV6_PMTUDISC_DONT", IPV6_PMTUDISC_DONT); P("IPV6_RECVHOPLIMIT", IPV6_RECVHOPLIMIT);
          P("IPV6_HOPLIMIT", IPV6_HOPLIMIT); P("IPV6_RECVTCLASS", IPV6_RECVTCLASS); P("IPV6_TCLASS", IPV6_TCLASS);
          P("UDP_NO_CHECK6_TX", UDP_NO_CHECK6_TX); P("UDP_NO_CHECK6_RX", UDP_NO_CHECK6_RX);
          P("MSG_DONTWAIT", MSG_DONTWAIT); P("MSG_TRUNC", MSG_TRUNC); P("POLLIN", POLLIN); P("POLLOUT", POLLOUT); P("POLLERR", POLLERR);
          P("EPERM", EPERM); P("ENOENT", ENOENT); P("EINTR", EINTR); P("EAGAIN", EAGAIN); P("EACCES", EACCES); P("EBUSY", EBUSY);
          P("EEXIST", EEXIST); P("ENODEV", ENODEV); P("EINVAL", EINVAL); P("EMSGSIZE", EMSGSIZE); P("EADDRINUSE", EADDRINUSE);
          P("TUNSETIFF", TUNSETIFF); P("IFF_TUN", IFF_TUN); P("IFF_NO_PI", IFF_NO_PI); P("IFF_MULTI_QUEUE", IFF_MULTI_QUEUE);
          P("IFF_VNET_HDR", IFF_VNET_HDR); P("IFNAMSIZ", IFNAMSIZ); P("IP_RECVTTL", IP_RECVTTL); P("IP_RECVTOS", IP_RECVTOS);
          P("IP_TTL", IP_TTL); P("IP_TOS", IP_TOS);
          P("AF_PACKET", AF_PACKET); P("SOCK_RAW", SOCK_RAW); P("SOL_PACKET", SOL_PACKET); P("ETH_P_ALL", ETH_P_ALL); P("ETH_P_IP", ETH_P_IP);
          P("ETH_P_IPV6", ETH_P_IPV6); P("PACKET_RX_RING", PACKET_RX_RING); P("PACKET_VERSION", PACKET_VERSION); P("PACKET_TX_RING", PACKET_TX_RING);
          P("PACKET_FANOUT", PACKET_FANOUT); P("PACKET_QDISC_BYPASS", PACKET_QDISC_BYPASS); P("PACKET_IGNORE_OUTGOING", PACKET_IGNORE_OUTGOING);
          P("TPACKET_V2", TPACKET_V2); P("PACKET_COPY_THRESH", PACKET_COPY_THRESH); P("PACKET_VNET_HDR", PACKET_VNET_HDR); P("PACKET_FANOUT_HASH", PACKET_FANOUT_HASH); P("PACKET_FANOUT_FLAG_DEFRAG", PACKET_FANOUT_FLAG_DEFRAG);
          P("PACKET_HOST", PACKET_HOST); P("TP_STATUS_KERNEL", TP_STATUS_KERNEL); P("TP_STATUS_USER", TP_STATUS_USER); P("TP_STATUS_COPY", TP_STATUS_COPY);
          P("TP_STATUS_SEND_REQUEST", TP_STATUS_SEND_REQUEST); P("TP_STATUS_SENDING", TP_STATUS_SENDING); P("TP_STATUS_WRONG_FORMAT", TP_STATUS_WRONG_FORMAT);
          P("TP_STATUS_CSUMNOTREADY", TP_STATUS_CSUMNOTREADY); P("SIOCGIFINDEX", SIOCGIFINDEX); P("SIOCGIFHWADDR", SIOCGIFHWADDR); P("SIOCGIFMTU", SIOCGIFMTU); P("SIOCSIFTXQLEN", SIOCSIFTXQLEN);
          P("MAP_LOCKED", MAP_LOCKED); P("ENETDOWN", ENETDOWN); P("ENOBUFS", ENOBUFS);
          P("sizeof sockaddr_ll", sizeof(struct sockaddr_ll)); P("offsetof sockaddr_ll.sll_ifindex", offsetof(struct sockaddr_ll, sll_ifindex));
          P("offsetof sockaddr_ll.sll_pkttype", offsetof(struct sockaddr_ll, sll_pkttype)); P("offsetof sockaddr_ll.sll_addr", offsetof(struct sockaddr_ll, sll_addr));
          P("sizeof tpacket_req", sizeof(struct tpacket_req)); P("offsetof tpacket_req.tp_frame_nr", offsetof(struct tpacket_req, tp_frame_nr));
          P("sizeof tpacket2_hdr", sizeof(struct tpacket2_hdr)); P("offsetof tpacket2_hdr.tp_status", offsetof(struct tpacket2_hdr, tp_status));
          P("offsetof tpacket2_hdr.tp_len", offsetof(struct tpacket2_hdr, tp_len)); P("offsetof tpacket2_hdr.tp_snaplen", offsetof(struct tpacket2_hdr, tp_snaplen));
          P("offsetof tpacket2_hdr.tp_mac", offsetof(struct tpacket2_hdr, tp_mac)); P("offsetof tpacket2_hdr.tp_net", offsetof(struct tpacket2_hdr, tp_net));
          P("TPACKET2_HDRLEN - sizeof sockaddr_ll", TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)); P("TPACKET_ALIGN(TPACKET2_HDRLEN + 16) - ETH_HLEN + sizeof(struct virtio_net_hdr)", TPACKET_ALIGN(TPACKET2_HDRLEN + 16) - ETH_HLEN + sizeof(struct virtio_net_hdr));
          P("offsetof ifreq.ifr_hwaddr.sa_data", offsetof(struct ifreq, ifr_hwaddr.sa_data));
          P("offsetof ifreq.ifr_addr.sin_addr", offsetof(struct ifreq, ifr_addr) + offsetof(struct sockaddr_in, sin_addr));
          P("MAP_PRIVATE", MAP_PRIVATE); P("MAP_ANONYMOUS", MAP_ANONYMOUS); P("SO_BINDTODEVICE", SO_BINDTODEVICE); P("SIOCGIFADDR", SIOCGIFADDR); P("EOPNOTSUPP", EOPNOTSUPP);
          P("AF_XDP", AF_XDP); P("SOL_XDP", SOL_XDP); P("XDP_MMAP_OFFSETS", XDP_MMAP_OFFSETS); P("XDP_RX_RING", XDP_RX_RING); P("XDP_TX_RING", XDP_TX_RING);
          P("XDP_UMEM_REG", XDP_UMEM_REG); P("XDP_UMEM_FILL_RING", XDP_UMEM_FILL_RING); P("XDP_UMEM_COMPLETION_RING", XDP_UMEM_COMPLETION_RING);
          P("XDP_STATISTICS", XDP_STATISTICS); P("XDP_OPTIONS", XDP_OPTIONS); P("XDP_SHARED_UMEM", XDP_SHARED_UMEM); P("SIGHUP", SIGHUP); P("SIG_DFL", SIG_DFL); P("XDP_COPY", XDP_COPY); P("XDP_ZEROCOPY", XDP_ZEROCOPY);
          P("XDP_USE_NEED_WAKEUP", XDP_USE_NEED_WAKEUP); P("XDP_RING_NEED_WAKEUP", XDP_RING_NEED_WAKEUP); P("XDP_OPTIONS_ZEROCOPY", XDP_OPTIONS_ZEROCOPY);
          P("XDP_PGOFF_RX_RING", XDP_PGOFF_RX_RING); P("XDP_PGOFF_TX_RING", XDP_PGOFF_TX_RING); P("XDP_UMEM_PGOFF_FILL_RING", XDP_UMEM_PGOFF_FILL_RING);
          P("XDP_UMEM_PGOFF_COMPLETION_RING", XDP_UMEM_PGOFF_COMPLETION_RING); P("XDP_PACKET_HEADROOM", XDP_PACKET_HEADROOM); P("XDP_PASS", XDP_PASS);
          P("XDP_REDIRECT", XDP_REDIRECT); P("XDP_FLAGS_SKB_MODE", XDP_FLAGS_SKB_MODE); P("XDP_FLAGS_DRV_MODE", XDP_FLAGS_DRV_MODE); P("SYS_bpf", SYS_bpf);
          P("BPF_MAP_CREATE", BPF_MAP_CREATE); P("BPF_MAP_UPDATE_ELEM", BPF_MAP_UPDATE_ELEM); P("BPF_PROG_LOAD", BPF_PROG_LOAD); P("BPF_LINK_CREATE", BPF_LINK_CREATE);
          P("BPF_MAP_TYPE_XSKMAP", BPF_MAP_TYPE_XSKMAP); P("BPF_PROG_TYPE_XDP", BPF_PROG_TYPE_XDP); P("BPF_XDP", BPF_XDP);
          P("BPF_FUNC_redirect_map", BPF_FUNC_redirect_map); P("BPF_PSEUDO_MAP_FD", BPF_PSEUDO_MAP_FD);
          P("sizeof sockaddr_xdp", sizeof(struct sockaddr_xdp)); P("offsetof sockaddr_xdp.sxdp_ifindex", offsetof(struct sockaddr_xdp, sxdp_ifindex));
          P("offsetof sockaddr_xdp.sxdp_queue_id", offsetof(struct sockaddr_xdp, sxdp_queue_id)); P("offsetof sockaddr_xdp.sxdp_shared_umem_fd", offsetof(struct sockaddr_xdp, sxdp_shared_umem_fd));
          P("sizeof xdp_umem_reg", sizeof(struct xdp_umem_reg)); P("offsetof xdp_umem_reg.chunk_size", offsetof(struct xdp_umem_reg, chunk_size));
          P("offsetof xdp_umem_reg.headroom", offsetof(struct xdp_umem_reg, headroom)); P("offsetof xdp_umem_reg.flags", offsetof(struct xdp_umem_reg, flags));
          P("sizeof xdp_ring_offset", sizeof(struct xdp_ring_offset)); P("offsetof xdp_ring_offset.flags", offsetof(struct xdp_ring_offset, flags));
          P("sizeof xdp_mmap_offsets", sizeof(struct xdp_mmap_offsets)); P("offsetof xdp_mmap_offsets.fr", offsetof(struct xdp_mmap_offsets, fr));
          P("offsetof xdp_mmap_offsets.cr", offsetof(struct xdp_mmap_offsets, cr));
          P("sizeof xdp_desc", sizeof(struct xdp_desc)); P("offsetof xdp_desc.len", offsetof(struct xdp_desc, len)); P("offsetof xdp_desc.options", offsetof(struct xdp_desc, options));
          P("sizeof xdp_statistics", sizeof(struct xdp_statistics)); P("offsetof xdp_statistics.rx_fill_ring_empty_descs", offsetof(struct xdp_statistics, rx_fill_ring_empty_descs));
          P("sizeof bpf_insn", sizeof(struct bpf_insn)); P("offsetof bpf_insn.off", offsetof(struct bpf_insn, off)); P("offsetof bpf_insn.imm", offsetof(struct bpf_insn, imm));
          P("sizeof bpf_attr", sizeof(union bpf_attr));
          P("offsetof bpf_attr.map_type", offsetof(union bpf_attr, map_type)); P("offsetof bpf_attr.key_size", offsetof(union bpf_attr, key_size));
          P("offsetof bpf_attr.value_size", offsetof(union bpf_attr, value_size)); P("offsetof bpf_attr.max_entries", offsetof(union bpf_attr, max_entries));
          P("offsetof bpf_attr.map_name", offsetof(union bpf_attr, map_name)); P("offsetof bpf_attr.map_fd", offsetof(union bpf_attr, map_fd));
          P("offsetof bpf_attr.key", offsetof(union bpf_attr, key)); P("offsetof bpf_attr.value", offsetof(union bpf_attr, value));
          P("offsetof bpf_attr.prog_type", offsetof(union bpf_attr, prog_type)); P("offsetof bpf_attr.insn_cnt", offsetof(union bpf_attr, insn_cnt));
          P("offsetof bpf_attr.insns", offsetof(union bpf_attr, insns)); P("offsetof bpf_attr.license", offsetof(union bpf_attr, license));
          P("offsetof bpf_attr.log_level", offsetof(union bpf_attr, log_level)); P("offsetof bpf_attr.log_size", offsetof(union bpf_attr, log_size));
          P("offsetof bpf_attr.log_buf", offsetof(union bpf_attr, log_buf)); P("offsetof bpf_attr.prog_name", offsetof(union bpf_attr, prog_name));
          P("offsetof bpf_attr.expected_attach_type", offsetof(union bpf_attr, expected_attach_type));
          P("offsetof bpf_attr.link_create.prog_fd", offsetof(union bpf_attr, link_create.prog_fd)); P("offsetof bpf_attr.link_create.target_ifindex", offsetof(union bpf_attr, link_create.target_ifindex));
          P("offsetof bpf_attr.link_create.attach_type", offsetof(union bpf_attr, link_create.attach_type)); P("offsetof bpf_attr.link_create.flags", offsetof(union bpf_attr, link_create.flags));
          P("SYS_sched_setattr", SYS_sched_setattr); P("SYS_sched_getattr", SYS_sched_getattr); P("SCHED_OTHER", SCHED_NORMAL); /* <sched.h>'s name; its struct sched_param clashes with the uapi header's */
          P("sizeof sched_attr", sizeof(struct sched_attr)); P("offsetof sched_attr.sched_runtime", offsetof(struct sched_attr, sched_runtime));
          return 0;
        }
        """;

    private static Dictionary<string, long>? s_c;

    private static Dictionary<string, long> C()
    {
        if (s_c is not null) return s_c;
        string dir = Path.Combine(Path.GetTempPath(), $"fxtr-layout-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "layout.c"), Program);
            var build = Shell.Run("gcc", ["-O0", "-o", Path.Combine(dir, "layout"), Path.Combine(dir, "layout.c")]);
            Assert.That(build.Code, Is.EqualTo(0), "gcc failed: " + build.All);
            var run = Shell.Run(Path.Combine(dir, "layout"), []);
            Assert.That(run.Code, Is.EqualTo(0));
            s_c = run.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('='))
                .ToDictionary(p => p[0], p => long.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture));
            return s_c;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static IEnumerable<TestCaseData> Layouts()
    {
        yield return new TestCaseData("sizeof iovec", (long)Unsafe.SizeOf<IoVec>());
        yield return new TestCaseData("offsetof iovec.iov_len", 8L);
        yield return new TestCaseData("sizeof msghdr", (long)Unsafe.SizeOf<MsgHdr>());
        yield return new TestCaseData("offsetof msghdr.msg_iov", (long)System.Runtime.InteropServices.Marshal.OffsetOf<MsgHdr>(nameof(MsgHdr.Iov)));
        yield return new TestCaseData("offsetof msghdr.msg_control", (long)System.Runtime.InteropServices.Marshal.OffsetOf<MsgHdr>(nameof(MsgHdr.Control)));
        yield return new TestCaseData("offsetof msghdr.msg_flags", (long)System.Runtime.InteropServices.Marshal.OffsetOf<MsgHdr>(nameof(MsgHdr.Flags)));
        yield return new TestCaseData("sizeof mmsghdr", (long)Unsafe.SizeOf<MMsgHdr>());
        yield return new TestCaseData("offsetof mmsghdr.msg_len", (long)System.Runtime.InteropServices.Marshal.OffsetOf<MMsgHdr>(nameof(MMsgHdr.Length)));
        yield return new TestCaseData("sizeof sockaddr_in", (long)Unsafe.SizeOf<SockAddrIn>());
        yield return new TestCaseData("offsetof sockaddr_in.sin_addr", (long)System.Runtime.InteropServices.Marshal.OffsetOf<SockAddrIn>(nameof(SockAddrIn.AddressBigEndian)));
        yield return new TestCaseData("sizeof sockaddr_in6", (long)Unsafe.SizeOf<SockAddrIn6>());
        yield return new TestCaseData("offsetof sockaddr_in6.sin6_addr", 8L);
        yield return new TestCaseData("offsetof sockaddr_in6.sin6_scope_id", (long)System.Runtime.InteropServices.Marshal.OffsetOf<SockAddrIn6>(nameof(SockAddrIn6.ScopeId)));
        yield return new TestCaseData("sizeof ifreq", (long)Unsafe.SizeOf<IfReq>());
        yield return new TestCaseData("offsetof ifreq.ifr_flags", 16L);
        yield return new TestCaseData("sizeof pollfd", (long)Unsafe.SizeOf<PollFd>());
        yield return new TestCaseData("offsetof pollfd.revents", (long)System.Runtime.InteropServices.Marshal.OffsetOf<PollFd>(nameof(PollFd.Revents)));
        yield return new TestCaseData("sizeof virtio_net_hdr", (long)Unsafe.SizeOf<VirtioNetHdr>());
        yield return new TestCaseData("offsetof virtio_net_hdr.gso_size", (long)System.Runtime.InteropServices.Marshal.OffsetOf<VirtioNetHdr>(nameof(VirtioNetHdr.GsoSize)));
        yield return new TestCaseData("offsetof virtio_net_hdr.csum_offset", (long)System.Runtime.InteropServices.Marshal.OffsetOf<VirtioNetHdr>(nameof(VirtioNetHdr.CsumOffset)));
        yield return new TestCaseData("sizeof stat", (long)Unsafe.SizeOf<StatBuf>());
        yield return new TestCaseData("offsetof stat.st_ino", (long)System.Runtime.InteropServices.Marshal.OffsetOf<StatBuf>(nameof(StatBuf.Inode)));
        yield return new TestCaseData("sizeof sockaddr_ll", (long)Unsafe.SizeOf<SockAddrLl>());
        yield return new TestCaseData("offsetof sockaddr_ll.sll_ifindex", (long)System.Runtime.InteropServices.Marshal.OffsetOf<SockAddrLl>(nameof(SockAddrLl.InterfaceIndex)));
        yield return new TestCaseData("offsetof sockaddr_ll.sll_pkttype", (long)System.Runtime.InteropServices.Marshal.OffsetOf<SockAddrLl>(nameof(SockAddrLl.PacketType)));
        yield return new TestCaseData("offsetof sockaddr_ll.sll_addr", (long)System.Runtime.InteropServices.Marshal.OffsetOf<SockAddrLl>(nameof(SockAddrLl.Address)));
        yield return new TestCaseData("sizeof tpacket_req", (long)Unsafe.SizeOf<TpacketReq>());
        yield return new TestCaseData("offsetof tpacket_req.tp_frame_nr", (long)System.Runtime.InteropServices.Marshal.OffsetOf<TpacketReq>(nameof(TpacketReq.FrameCount)));
        yield return new TestCaseData("sizeof tpacket2_hdr", (long)Unsafe.SizeOf<Tpacket2Hdr>());
        yield return new TestCaseData("offsetof tpacket2_hdr.tp_status", (long)System.Runtime.InteropServices.Marshal.OffsetOf<Tpacket2Hdr>(nameof(Tpacket2Hdr.Status)));
        yield return new TestCaseData("offsetof tpacket2_hdr.tp_len", (long)System.Runtime.InteropServices.Marshal.OffsetOf<Tpacket2Hdr>(nameof(Tpacket2Hdr.Length)));
        yield return new TestCaseData("offsetof tpacket2_hdr.tp_snaplen", (long)System.Runtime.InteropServices.Marshal.OffsetOf<Tpacket2Hdr>(nameof(Tpacket2Hdr.SnapLength)));
        yield return new TestCaseData("offsetof tpacket2_hdr.tp_mac", (long)System.Runtime.InteropServices.Marshal.OffsetOf<Tpacket2Hdr>(nameof(Tpacket2Hdr.MacOffset)));
        yield return new TestCaseData("offsetof tpacket2_hdr.tp_net", (long)System.Runtime.InteropServices.Marshal.OffsetOf<Tpacket2Hdr>(nameof(Tpacket2Hdr.NetworkOffset)));
        yield return new TestCaseData("TPACKET2_HDRLEN - sizeof sockaddr_ll", (long)PacketRing.TxDataOffset);
        // A ring frame's headroom before the Ethernet header: FrameBytesFor fills a 2 KB frame exactly at MTU 1958.
        yield return new TestCaseData("TPACKET_ALIGN(TPACKET2_HDRLEN + 16) - ETH_HLEN + sizeof(struct virtio_net_hdr)", (long)PacketRing.FrameBytesFor(1958) - 1958 - 14);
        yield return new TestCaseData("offsetof ifreq.ifr_hwaddr.sa_data", (long)System.Runtime.InteropServices.Marshal.OffsetOf<IfReq>(nameof(IfReq.HardwareAddress)));
        yield return new TestCaseData("offsetof ifreq.ifr_addr.sin_addr", (long)System.Runtime.InteropServices.Marshal.OffsetOf<IfReq>(nameof(IfReq.AddressBigEndian)));
        // AF_XDP and bpf() (--mode af-xdp).
        yield return new TestCaseData("sizeof sockaddr_xdp", (long)Unsafe.SizeOf<SockAddrXdp>());
        yield return new TestCaseData("offsetof sockaddr_xdp.sxdp_ifindex", Offset<SockAddrXdp>(nameof(SockAddrXdp.InterfaceIndex)));
        yield return new TestCaseData("offsetof sockaddr_xdp.sxdp_queue_id", Offset<SockAddrXdp>(nameof(SockAddrXdp.QueueId)));
        yield return new TestCaseData("offsetof sockaddr_xdp.sxdp_shared_umem_fd", Offset<SockAddrXdp>(nameof(SockAddrXdp.SharedUmemFd)));
        yield return new TestCaseData("sizeof xdp_umem_reg", (long)Unsafe.SizeOf<XdpUmemReg>());
        yield return new TestCaseData("offsetof xdp_umem_reg.chunk_size", Offset<XdpUmemReg>(nameof(XdpUmemReg.ChunkSize)));
        yield return new TestCaseData("offsetof xdp_umem_reg.headroom", Offset<XdpUmemReg>(nameof(XdpUmemReg.Headroom)));
        yield return new TestCaseData("offsetof xdp_umem_reg.flags", Offset<XdpUmemReg>(nameof(XdpUmemReg.Flags)));
        yield return new TestCaseData("sizeof xdp_ring_offset", (long)Unsafe.SizeOf<XdpRingOffset>());
        yield return new TestCaseData("offsetof xdp_ring_offset.flags", Offset<XdpRingOffset>(nameof(XdpRingOffset.Flags)));
        yield return new TestCaseData("sizeof xdp_mmap_offsets", (long)Unsafe.SizeOf<XdpMmapOffsets>());
        yield return new TestCaseData("offsetof xdp_mmap_offsets.fr", Offset<XdpMmapOffsets>(nameof(XdpMmapOffsets.Fill)));
        yield return new TestCaseData("offsetof xdp_mmap_offsets.cr", Offset<XdpMmapOffsets>(nameof(XdpMmapOffsets.Completion)));
        yield return new TestCaseData("sizeof xdp_desc", (long)Unsafe.SizeOf<XdpDesc>());
        yield return new TestCaseData("offsetof xdp_desc.len", Offset<XdpDesc>(nameof(XdpDesc.Length)));
        yield return new TestCaseData("offsetof xdp_desc.options", Offset<XdpDesc>(nameof(XdpDesc.Options)));
        yield return new TestCaseData("sizeof xdp_statistics", (long)Unsafe.SizeOf<XdpStatistics>());
        yield return new TestCaseData("offsetof xdp_statistics.rx_fill_ring_empty_descs", Offset<XdpStatistics>(nameof(XdpStatistics.RxFillRingEmpty)));
        yield return new TestCaseData("sizeof bpf_insn", (long)Unsafe.SizeOf<BpfInsn>());
        yield return new TestCaseData("offsetof bpf_insn.off", Offset<BpfInsn>(nameof(BpfInsn.Offset)));
        yield return new TestCaseData("offsetof bpf_insn.imm", Offset<BpfInsn>(nameof(BpfInsn.Immediate)));
        yield return new TestCaseData("sizeof bpf_attr", (long)Unsafe.SizeOf<BpfAttr>());
        yield return new TestCaseData("offsetof bpf_attr.map_type", (long)BpfAttrOffset.MapType);
        yield return new TestCaseData("offsetof bpf_attr.key_size", (long)BpfAttrOffset.KeySize);
        yield return new TestCaseData("offsetof bpf_attr.value_size", (long)BpfAttrOffset.ValueSize);
        yield return new TestCaseData("offsetof bpf_attr.max_entries", (long)BpfAttrOffset.MaxEntries);
        yield return new TestCaseData("offsetof bpf_attr.map_name", (long)BpfAttrOffset.MapName);
        yield return new TestCaseData("offsetof bpf_attr.map_fd", (long)BpfAttrOffset.ElementMapFd);
        yield return new TestCaseData("offsetof bpf_attr.key", (long)BpfAttrOffset.ElementKey);
        yield return new TestCaseData("offsetof bpf_attr.value", (long)BpfAttrOffset.ElementValue);
        yield return new TestCaseData("offsetof bpf_attr.prog_type", (long)BpfAttrOffset.ProgramType);
        yield return new TestCaseData("offsetof bpf_attr.insn_cnt", (long)BpfAttrOffset.InstructionCount);
        yield return new TestCaseData("offsetof bpf_attr.insns", (long)BpfAttrOffset.Instructions);
        yield return new TestCaseData("offsetof bpf_attr.license", (long)BpfAttrOffset.License);
        yield return new TestCaseData("offsetof bpf_attr.log_level", (long)BpfAttrOffset.LogLevel);
        yield return new TestCaseData("offsetof bpf_attr.log_size", (long)BpfAttrOffset.LogSize);
        yield return new TestCaseData("offsetof bpf_attr.log_buf", (long)BpfAttrOffset.LogBuffer);
        yield return new TestCaseData("offsetof bpf_attr.prog_name", (long)BpfAttrOffset.ProgramName);
        yield return new TestCaseData("offsetof bpf_attr.expected_attach_type", (long)BpfAttrOffset.ExpectedAttachType);
        yield return new TestCaseData("offsetof bpf_attr.link_create.prog_fd", (long)BpfAttrOffset.LinkProgramFd);
        yield return new TestCaseData("offsetof bpf_attr.link_create.target_ifindex", (long)BpfAttrOffset.LinkTargetInterface);
        yield return new TestCaseData("offsetof bpf_attr.link_create.attach_type", (long)BpfAttrOffset.LinkAttachType);
        yield return new TestCaseData("offsetof bpf_attr.link_create.flags", (long)BpfAttrOffset.LinkFlags);
        yield return new TestCaseData("sizeof sched_attr", (long)Unsafe.SizeOf<SchedAttr>());
        yield return new TestCaseData("offsetof sched_attr.sched_runtime", Offset<SchedAttr>(nameof(SchedAttr.Runtime)));
    }

    private static long Offset<T>(string field) => (long)System.Runtime.InteropServices.Marshal.OffsetOf<T>(field);

    [TestCaseSource(nameof(Layouts))]
    public void StructLayout_MatchesTheCHeaders(string what, long ours) => Assert.That(ours, Is.EqualTo(C()[what]), what);

    [Test]
    public void EveryConstant_MatchesTheCHeaders()
    {
        var c = C();
        var mismatches = new List<string>();
        foreach (var field in typeof(Linux).GetFields().Where(f => f.IsLiteral))
        {
            long ours = Convert.ToInt64(field.GetRawConstantValue(), System.Globalization.CultureInfo.InvariantCulture);
            if (!c.TryGetValue(field.Name, out long theirs)) mismatches.Add($"{field.Name}: not printed by the C program");
            else if (ours != theirs && (ours & 0xFFFFFFFF) != (theirs & 0xFFFFFFFF)) mismatches.Add($"{field.Name}: ours {ours}, the headers' {theirs}");
        }
        Assert.That(mismatches, Is.Empty);
    }
}
