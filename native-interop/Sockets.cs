using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace FastXtr.NativeInterop;

/// <summary>
/// Socket helpers for the data plane: a UDP socket bound to the RLOC's LISP data port (SO_REUSEPORT, one per
/// worker) read with recvmmsg, and a raw IPv4 socket (IPPROTO_RAW, which implies IP_HDRINCL) written with
/// sendmmsg, so that each packet carries its own outer header: the UDP source port from the inner flow hash and
/// the TTL and DSCP from the inner header (RFC 9300 §5.3), which one bound UDP socket could not vary.
/// </summary>
public static unsafe class Sockets
{
    private const int IPPROTO_RAW = 255;

    public static int OpenUdp4(uint bindAddressHostOrder, ushort port, bool reusePort, int bufferBytes) =>
        OpenUdp(Linux.AF_INET, "AF_INET", fd =>
        {
            if (reusePort) SetInt(fd, Linux.SOL_SOCKET, Linux.SO_REUSEPORT, 1, "SO_REUSEPORT");
            SetInt(fd, Linux.IPPROTO_IP, Linux.IP_RECVTTL, 1, "IP_RECVTTL");
            SetInt(fd, Linux.IPPROTO_IP, Linux.IP_RECVTOS, 1, "IP_RECVTOS");
            SetBuffers(fd, bufferBytes);
            SockAddrIn sa = Ipv4Endpoint(bindAddressHostOrder, port);
            Bind(fd, &sa, (uint)sizeof(SockAddrIn), $"{FormatIpv4(bindAddressHostOrder)}:{port}");
        });

    /// <summary>
    /// The IPv6 counterpart of <see cref="OpenUdp4"/>: IPv6 only (IPV6_V6ONLY), the hop limit and traffic class of
    /// each datagram reported (IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS). With <paramref name="acceptZeroChecksum"/> it takes
    /// datagrams whose UDP checksum is 0 (UDP_NO_CHECK6_RX: RFC 6935/6936 tunnel traffic), which the kernel drops otherwise.
    /// </summary>
    public static int OpenUdp6(UInt128 bindAddressHostOrder, ushort port, bool reusePort, int bufferBytes, bool acceptZeroChecksum) =>
        OpenUdp(Linux.AF_INET6, "AF_INET6", fd =>
        {
            SetInt(fd, Linux.IPPROTO_IPV6, Linux.IPV6_V6ONLY, 1, "IPV6_V6ONLY");
            if (reusePort) SetInt(fd, Linux.SOL_SOCKET, Linux.SO_REUSEPORT, 1, "SO_REUSEPORT");
            SetInt(fd, Linux.IPPROTO_IPV6, Linux.IPV6_RECVHOPLIMIT, 1, "IPV6_RECVHOPLIMIT");
            SetInt(fd, Linux.IPPROTO_IPV6, Linux.IPV6_RECVTCLASS, 1, "IPV6_RECVTCLASS");
            if (acceptZeroChecksum) SetInt(fd, Linux.SOL_UDP, Linux.UDP_NO_CHECK6_RX, 1, "UDP_NO_CHECK6_RX");
            SetBuffers(fd, bufferBytes);
            SockAddrIn6 sa = Ipv6Endpoint(bindAddressHostOrder, port);
            Bind(fd, &sa, (uint)sizeof(SockAddrIn6), $"[{FormatIpv6(bindAddressHostOrder)}]:{port}");
        });

    /// <summary>A non-blocking UDP socket of the family, set up by <paramref name="configure"/> (closed again if that throws).</summary>
    private static int OpenUdp(int family, string familyName, Action<int> configure)
    {
        int fd = Libc.socket(family, Linux.SOCK_DGRAM | Linux.SOCK_NONBLOCK | Linux.SOCK_CLOEXEC, Linux.IPPROTO_UDP);
        if (fd < 0) throw new NativeException($"socket({familyName}, SOCK_DGRAM)", Libc.LastError);
        try
        {
            configure(fd);
            return fd;
        }
        catch
        {
            Libc.close(fd);
            throw;
        }
    }

    private static void SetBuffers(int fd, int bufferBytes)
    {
        if (bufferBytes <= 0) return;
        // FORCE variants pass rmem_max/wmem_max when we are root; fall back to the plain ones otherwise.
        if (!TrySetInt(fd, Linux.SOL_SOCKET, Linux.SO_RCVBUFFORCE, bufferBytes)) TrySetInt(fd, Linux.SOL_SOCKET, Linux.SO_RCVBUF, bufferBytes);
        if (!TrySetInt(fd, Linux.SOL_SOCKET, Linux.SO_SNDBUFFORCE, bufferBytes)) TrySetInt(fd, Linux.SOL_SOCKET, Linux.SO_SNDBUF, bufferBytes);
    }

    private static void Bind(int fd, void* address, uint length, string what)
    {
        if (Libc.bind(fd, address, length) == 0) return;
        int e = Libc.LastError;
        throw e == Linux.EADDRINUSE
            ? new NativeException($"bind UDP {what}: the port is in use (another data plane, or a LISP daemon, holds it)", e)
            : new NativeException($"bind UDP {what} (is the address configured on an interface?)", e);
    }

    /// <summary>
    /// Fails with a clear error when another process already holds a UDP address and port. Our own sockets share a
    /// port through SO_REUSEPORT (one per worker), and the kernel would quietly let a second process of the same
    /// user join that group and take a share of the traffic; a probe bound without the option finds any holder.
    /// </summary>
    public static void EnsureUdp4PortFree(uint bindAddressHostOrder, ushort port, string holderHint)
    {
        int fd = Libc.socket(Linux.AF_INET, Linux.SOCK_DGRAM | Linux.SOCK_CLOEXEC, Linux.IPPROTO_UDP);
        if (fd < 0) throw new NativeException("socket(AF_INET, SOCK_DGRAM)", Libc.LastError);
        try
        {
            SockAddrIn sa = Ipv4Endpoint(bindAddressHostOrder, port);
            if (Libc.bind(fd, &sa, (uint)sizeof(SockAddrIn)) != 0 && Libc.LastError == Linux.EADDRINUSE)
                throw new NativeException($"bind UDP {FormatIpv4(bindAddressHostOrder)}:{port}: the port is in use ({holderHint})", Linux.EADDRINUSE);
            // Any other failure (no such address) is reported by the real bind that follows, with its own words.
        }
        finally
        {
            Libc.close(fd);
        }
    }

    /// <summary>The IPv6 counterpart of <see cref="EnsureUdp4PortFree"/>.</summary>
    public static void EnsureUdp6PortFree(UInt128 bindAddressHostOrder, ushort port, string holderHint)
    {
        int fd = Libc.socket(Linux.AF_INET6, Linux.SOCK_DGRAM | Linux.SOCK_CLOEXEC, Linux.IPPROTO_UDP);
        if (fd < 0) throw new NativeException("socket(AF_INET6, SOCK_DGRAM)", Libc.LastError);
        try
        {
            TrySetInt(fd, Linux.IPPROTO_IPV6, Linux.IPV6_V6ONLY, 1);
            SockAddrIn6 sa = Ipv6Endpoint(bindAddressHostOrder, port);
            if (Libc.bind(fd, &sa, (uint)sizeof(SockAddrIn6)) != 0 && Libc.LastError == Linux.EADDRINUSE)
                throw new NativeException($"bind UDP [{FormatIpv6(bindAddressHostOrder)}]:{port}: the port is in use ({holderHint})", Linux.EADDRINUSE);
        }
        finally
        {
            Libc.close(fd);
        }
    }

    /// <summary>
    /// A UDP socket bound to <paramref name="port"/> for segmentation-offload sends: datagrams leave with that source
    /// port and DF clear, and one <see cref="SendSegmented"/> hands the kernel many equal datagrams at once (UDP GSO).
    /// Returns -1 (and closes it) when this kernel lacks UDP_SEGMENT.
    /// </summary>
    public static int OpenUdp4Segmenting(uint bindAddressHostOrder, ushort port, int bufferBytes)
    {
        int fd = OpenUdp4(bindAddressHostOrder, port, reusePort: true, bufferBytes);
        if (!TrySetInt(fd, Linux.IPPROTO_IP, Linux.IP_MTU_DISCOVER, Linux.IP_PMTUDISC_DONT) || !TrySetInt(fd, Linux.SOL_UDP, Linux.UDP_SEGMENT, 0))
        {
            Libc.close(fd);
            return -1;
        }
        return fd;
    }

    /// <summary>
    /// The IPv6 counterpart of <see cref="OpenUdp4Segmenting"/>: the kernel fragments nothing it is given (the
    /// segments are cut to fit), and with <paramref name="zeroChecksum"/> the datagrams leave with UDP checksum 0
    /// (UDP_NO_CHECK6_TX, RFC 6935). Returns -1 when this kernel lacks UDP_SEGMENT.
    /// </summary>
    public static int OpenUdp6Segmenting(UInt128 bindAddressHostOrder, ushort port, int bufferBytes, bool zeroChecksum)
    {
        int fd = OpenUdp6(bindAddressHostOrder, port, reusePort: true, bufferBytes, acceptZeroChecksum: false);
        if (!TrySetInt(fd, Linux.IPPROTO_IPV6, Linux.IPV6_MTU_DISCOVER, Linux.IPV6_PMTUDISC_DONT) || !TrySetInt(fd, Linux.SOL_UDP, Linux.UDP_SEGMENT, 0)
            || (zeroChecksum && !TrySetInt(fd, Linux.SOL_UDP, Linux.UDP_NO_CHECK6_TX, 1)))
        {
            Libc.close(fd);
            return -1;
        }
        return fd;
    }

    /// <summary>Asks the kernel to coalesce received datagrams of one flow (UDP_GRO); false when it cannot.</summary>
    public static bool EnableGro(int fd) => TrySetInt(fd, Linux.SOL_UDP, Linux.UDP_GRO, 1);

    /// <summary>
    /// Sends <paramref name="length"/> bytes as datagrams of <paramref name="segmentBytes"/> each (the last may be
    /// shorter) to an IPv4 destination with one sendmsg (UDP_SEGMENT), all with the given TTL and TOS. Returns 0, or
    /// the errno (EAGAIN after a short wait for room).
    /// </summary>
    public static int SendSegmented(int fd, byte* data, int length, uint destinationHostOrder, ushort port, int segmentBytes, int ttl, int tos)
    {
        SockAddrIn to = Ipv4Endpoint(destinationHostOrder, port);
        return SendSegmented(fd, &to, (uint)sizeof(SockAddrIn), Linux.IPPROTO_IP, Linux.IP_TTL, Linux.IP_TOS, data, length, segmentBytes, ttl, tos);
    }

    /// <summary>The IPv6 counterpart of the IPv4 <see cref="SendSegmented(int, byte*, int, uint, ushort, int, int, int)"/>: hop limit and traffic class.</summary>
    public static int SendSegmented(int fd, byte* data, int length, UInt128 destinationHostOrder, ushort port, int segmentBytes, int hopLimit, int trafficClass)
    {
        SockAddrIn6 to = Ipv6Endpoint(destinationHostOrder, port);
        return SendSegmented(fd, &to, (uint)sizeof(SockAddrIn6), Linux.IPPROTO_IPV6, Linux.IPV6_HOPLIMIT, Linux.IPV6_TCLASS, data, length, segmentBytes, hopLimit, trafficClass);
    }

    /// <summary>
    /// <see cref="SendSegmented(int, byte*, int, uint, ushort, int, int, int)"/> gathered from <paramref name="count"/>
    /// pieces of <paramref name="length"/> bytes in all (each datagram's headers and payload from where they lie): the
    /// kernel copies them into one buffer and cuts it every <paramref name="segmentBytes"/> as ever.
    /// </summary>
    public static int SendSegmented(int fd, IoVec* pieces, int count, int length, uint destinationHostOrder, ushort port, int segmentBytes, int ttl, int tos)
    {
        SockAddrIn to = Ipv4Endpoint(destinationHostOrder, port);
        return SendSegmented(fd, &to, (uint)sizeof(SockAddrIn), Linux.IPPROTO_IP, Linux.IP_TTL, Linux.IP_TOS, pieces, count, length, segmentBytes, ttl, tos);
    }

    /// <summary>The IPv6 counterpart of the gathering IPv4 <see cref="SendSegmented(int, IoVec*, int, int, uint, ushort, int, int, int)"/>.</summary>
    public static int SendSegmented(int fd, IoVec* pieces, int count, int length, UInt128 destinationHostOrder, ushort port, int segmentBytes, int hopLimit, int trafficClass)
    {
        SockAddrIn6 to = Ipv6Endpoint(destinationHostOrder, port);
        return SendSegmented(fd, &to, (uint)sizeof(SockAddrIn6), Linux.IPPROTO_IPV6, Linux.IPV6_HOPLIMIT, Linux.IPV6_TCLASS, pieces, count, length, segmentBytes, hopLimit, trafficClass);
    }

    private static int SendSegmented(int fd, void* to, uint toLength, int level, int ttlType, int tosType, byte* data, int length, int segmentBytes, int ttl, int tos)
    {
        IoVec iov = new() { Base = data, Length = (nuint)length };
        return SendSegmented(fd, to, toLength, level, ttlType, tosType, &iov, 1, length, segmentBytes, ttl, tos);
    }

    private static int SendSegmented(int fd, void* to, uint toLength, int level, int ttlType, int tosType, IoVec* pieces, int count, int length, int segmentBytes, int ttl, int tos)
    {
        // Three control messages of CMSG_SPACE 24 each: UDP_SEGMENT (u16), the TTL or hop limit (int), TOS or traffic class (int).
        byte* control = stackalloc byte[72];
        new Span<byte>(control, 72).Clear();
        WriteControl(control, Linux.SOL_UDP, Linux.UDP_SEGMENT, 2, (ushort)segmentBytes);
        WriteControl(control + 24, level, ttlType, 4, ttl);
        WriteControl(control + 48, level, tosType, 4, tos);
        var msg = new MsgHdr { Name = to, NameLength = toLength, Iov = pieces, IovLength = (nuint)count, Control = control, ControlLength = 72 };
        for (int spins = 0; ; spins++)
        {
            if (Libc.sendmsg(fd, &msg, 0) == length) return 0;
            int e = Libc.LastError;
            if ((e != Linux.EAGAIN && e != Linux.EINTR) || spins == 64) return e;
            var p = new PollFd { Fd = fd, Events = Linux.POLLOUT };
            Libc.poll(&p, 1, 1);
        }
    }

    private static void WriteControl(byte* c, int level, int type, int dataBytes, int value)
    {
        // struct cmsghdr { size_t len; int level; int type; } then the data (CMSG_LEN = 16 + data).
        *(nuint*)c = (nuint)(16 + dataBytes);
        *(int*)(c + 8) = level;
        *(int*)(c + 12) = type;
        if (dataBytes == 2) *(ushort*)(c + 16) = (ushort)value;
        else *(int*)(c + 16) = value;
    }

    public static int OpenRawIpv4Sender(int bufferBytes)
    {
        int fd = OpenRaw(Linux.AF_INET, "AF_INET");
        if (bufferBytes > 0 && !TrySetInt(fd, Linux.SOL_SOCKET, Linux.SO_SNDBUFFORCE, bufferBytes)) TrySetInt(fd, Linux.SOL_SOCKET, Linux.SO_SNDBUF, bufferBytes);
        return fd;
    }

    /// <summary>A raw sending socket of the family, IPPROTO_RAW (each packet carries its own IP header).</summary>
    private static int OpenRaw(int family, string familyName)
    {
        int fd = Libc.socket(family, Linux.SOCK_RAW | Linux.SOCK_NONBLOCK | Linux.SOCK_CLOEXEC, IPPROTO_RAW);
        if (fd >= 0) return fd;
        int e = Libc.LastError;
        throw e is Linux.EPERM or Linux.EACCES
            ? new NativeException($"socket({familyName}, SOCK_RAW): permission denied (the data plane needs root or CAP_NET_RAW)", e)
            : new NativeException($"socket({familyName}, SOCK_RAW)", e);
    }

    private static void SetInt(int fd, int level, int name, int value, string what)
    {
        if (!TrySetInt(fd, level, name, value)) throw new NativeException($"setsockopt {what}", Libc.LastError);
    }

    /// <summary>
    /// A raw IPv6 socket whose packets carry their own IPv6 header (IPPROTO_RAW implies IPV6_HDRINCL): how the
    /// af-packet ETR hands an inner IPv6 packet to the kernel, which routes it and resolves the neighbour.
    /// </summary>
    public static int OpenRawIpv6Sender(int bufferBytes = 0)
    {
        int fd = OpenRaw(Linux.AF_INET6, "AF_INET6");
        if (bufferBytes > 0 && !TrySetInt(fd, Linux.SOL_SOCKET, Linux.SO_SNDBUFFORCE, bufferBytes)) TrySetInt(fd, Linux.SOL_SOCKET, Linux.SO_SNDBUF, bufferBytes);
        return fd;
    }

    /// <summary>
    /// Restricts a socket to one interface (SO_BINDTODEVICE): what it sends leaves there, treated as on-link where no
    /// route says otherwise, whatever the routing table says of the destination elsewhere.
    /// </summary>
    public static void BindToDevice(int fd, string name)
    {
        byte[] bytes = System.Text.Encoding.ASCII.GetBytes(name + "\0");
        fixed (byte* p = bytes)
            if (Libc.setsockopt(fd, Linux.SOL_SOCKET, Linux.SO_BINDTODEVICE, p, (uint)bytes.Length) != 0)
                throw new NativeException($"SO_BINDTODEVICE {name}", Libc.LastError);
    }

    /// <summary>Sends one whole IPv4 packet (its header included) through a raw IPv4 socket to the address in its header; 0 or the errno.</summary>
    public static int SendRawIpv4(int fd, ReadOnlySpan<byte> packet)
    {
        SockAddrIn to = Ipv4Endpoint(BinaryPrimitives.ReadUInt32BigEndian(packet[16..]), 0);
        fixed (byte* p = packet)
            return Libc.sendto(fd, p, (nuint)packet.Length, Linux.MSG_DONTWAIT, &to, (uint)sizeof(SockAddrIn)) == packet.Length ? 0 : Libc.LastError;
    }

    /// <summary>Sends one whole IPv6 packet through a raw IPv6 socket to the address in its header; 0 or the errno.</summary>
    public static int SendRawIpv6(int fd, byte* packet, int length)
    {
        SockAddrIn6 to = default;
        to.Family = Linux.AF_INET6;
        new ReadOnlySpan<byte>(packet + 24, 16).CopyTo(new Span<byte>(to.Address, 16));
        return Libc.sendto(fd, packet, (nuint)length, Linux.MSG_DONTWAIT, &to, (uint)sizeof(SockAddrIn6)) == length ? 0 : Libc.LastError;
    }

    /// <summary>A struct sockaddr_in for an IPv4 address and port given in host order.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal static SockAddrIn Ipv4Endpoint(uint addressHostOrder, ushort port)
    {
        SockAddrIn sa = default;
        sa.Family = Linux.AF_INET;
        sa.PortBigEndian = BinaryPrimitives.ReverseEndianness(port);
        sa.AddressBigEndian = BinaryPrimitives.ReverseEndianness(addressHostOrder);
        return sa;
    }

    /// <summary>A struct sockaddr_in6 for an IPv6 address given as a host-order number.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal static SockAddrIn6 Ipv6Endpoint(UInt128 addressHostOrder, ushort port)
    {
        SockAddrIn6 sa = default;
        sa.Family = Linux.AF_INET6;
        sa.PortBigEndian = BinaryPrimitives.ReverseEndianness(port);
        BinaryPrimitives.WriteUInt128BigEndian(new Span<byte>(sa.Address, 16), addressHostOrder);
        return sa;
    }

    public static string FormatIpv6(UInt128 hostOrder)
    {
        Span<byte> b = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(b, hostOrder);
        return new System.Net.IPAddress(b).ToString();
    }

    public static bool TrySetInt(int fd, int level, int name, int value) => Libc.setsockopt(fd, level, name, &value, sizeof(int)) == 0;

    public static string FormatIpv4(uint hostOrder) => $"{hostOrder >> 24}.{(hostOrder >> 16) & 0xFF}.{(hostOrder >> 8) & 0xFF}.{hostOrder & 0xFF}";

    public static void Close(int fd)
    {
        if (fd >= 0) Libc.close(fd);
    }
}

/// <summary>
/// Preallocated sendmmsg/recvmmsg state for one worker: message headers, iovecs, addresses and control buffers in
/// native memory, reused for every batch (no allocation per packet).
/// </summary>
public sealed unsafe class MessageBatch : IDisposable
{
    public const int ControlBytes = 96; // IP_TTL, IP_TOS and UDP_GRO (or their IPv6 kin): three CMSG_SPACEs of 24
    private readonly MMsgHdr* _msgs;
    private readonly IoVec* _iov;
    // Room for either family's address in each slot: a sockaddr_in6 (28 bytes) holds a sockaddr_in's 16.
    private readonly SockAddrIn6* _addrs;
    private readonly byte* _control;

    public MessageBatch(int capacity)
    {
        if (capacity is < 1 or > 1024) throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "1 .. 1024 messages per batch");
        Capacity = capacity;
        _msgs = (MMsgHdr*)NativeMemory.AllocZeroed((nuint)(capacity * sizeof(MMsgHdr)));
        _iov = (IoVec*)NativeMemory.AllocZeroed((nuint)(capacity * sizeof(IoVec)));
        _addrs = (SockAddrIn6*)NativeMemory.AllocZeroed((nuint)(capacity * sizeof(SockAddrIn6)));
        _control = (byte*)NativeMemory.AllocZeroed((nuint)(capacity * ControlBytes));
    }

    public int Capacity { get; }
    public int Count { get; private set; }

    public void Clear() => Count = 0;

    /// <summary>Queues one datagram to an IPv4 destination (host order). The buffer must stay valid until Send.</summary>
    public void Add(byte* data, int length, uint destinationHostOrder, ushort port)
    {
        int i = Count++;
        *(SockAddrIn*)&_addrs[i] = Sockets.Ipv4Endpoint(destinationHostOrder, port);
        Queue(i, data, length, (uint)sizeof(SockAddrIn));
    }

    /// <summary>Queues one datagram to an IPv6 destination (host-order number). The buffer must stay valid until Send.</summary>
    public void Add(byte* data, int length, UInt128 destinationHostOrder, ushort port)
    {
        int i = Count++;
        _addrs[i] = Sockets.Ipv6Endpoint(destinationHostOrder, port);
        Queue(i, data, length, (uint)sizeof(SockAddrIn6));
    }

    private void Queue(int i, byte* data, int length, uint nameLength)
    {
        _iov[i].Base = data;
        _iov[i].Length = (nuint)length;
        ref MsgHdr h = ref _msgs[i].Header;
        h.Name = &_addrs[i];
        h.NameLength = nameLength;
        h.Iov = &_iov[i];
        h.IovLength = 1;
        h.Control = null;
        h.ControlLength = 0;
        h.Flags = 0;
    }

    /// <summary>
    /// Sends the queued datagrams with as few sendmmsg calls as the kernel allows. Returns how many were sent; the
    /// rest failed (EAGAIN after a short wait, or an error for that datagram, which is skipped and counted).
    /// </summary>
    public int Send(int fd, out int failed)
    {
        int sent = SendRange(fd, 0, Count, out failed);
        Count = 0;
        return sent;
    }

    /// <summary>
    /// <see cref="Send"/> for the queued datagrams <paramref name="from"/> up to (not including) <paramref name="to"/>;
    /// the queue is left as it is (<see cref="Clear"/> it when every range has gone).
    /// </summary>
    public int SendRange(int fd, int from, int to, out int failed)
    {
        int sent = 0;
        failed = 0;
        int spins = 0;
        while (from + sent + failed < to)
        {
            int n = Libc.sendmmsg(fd, _msgs + from + sent + failed, (uint)(to - from - sent - failed), 0);
            if (n > 0)
            {
                sent += n;
                spins = 0;
                continue;
            }
            int e = Libc.LastError;
            if ((e == Linux.EAGAIN || e == Linux.EINTR) && spins++ < 64)
            {
                var p = new PollFd { Fd = fd, Events = Linux.POLLOUT };
                Libc.poll(&p, 1, 1);
                continue;
            }
            failed++; // this datagram cannot go (e.g. EMSGSIZE, no route): skip it, keep the rest of the batch
            spins = 0;
        }
        return sent;
    }

    /// <summary>Prepares every slot to receive into the given buffers (call once; buffers are fixed per worker).</summary>
    public void PrepareReceive(byte** buffers, int bufferBytes)
    {
        for (int i = 0; i < Capacity; i++)
        {
            _iov[i].Base = buffers[i];
            _iov[i].Length = (nuint)bufferBytes;
        }
    }

    /// <summary>recvmmsg without waiting; returns the number of datagrams (0 when none), lengths via <see cref="Length"/>.</summary>
    public int Receive(int fd)
    {
        for (int i = 0; i < Capacity; i++)
        {
            ref MsgHdr h = ref _msgs[i].Header;
            h.Name = &_addrs[i];
            h.NameLength = (uint)sizeof(SockAddrIn6);
            h.Iov = &_iov[i];
            h.IovLength = 1;
            h.Control = _control + i * ControlBytes;
            h.ControlLength = ControlBytes;
            h.Flags = 0;
        }
        int n = Libc.recvmmsg(fd, _msgs, (uint)Capacity, Linux.MSG_DONTWAIT, null);
        Count = n > 0 ? n : 0;
        return Count;
    }

    public int Length(int i) => (int)_msgs[i].Length;
    /// <summary>Where queued datagram <paramref name="i"/> lies, and how long it is (for a send: <see cref="Length"/> is what recvmmsg received).</summary>
    public byte* Data(int i) => (byte*)_iov[i].Base;
    public int QueuedLength(int i) => (int)_iov[i].Length;
    /// <summary>The IPv4 source of a datagram received on an IPv4 socket (host order).</summary>
    public uint SourceAddress(int i) => BinaryPrimitives.ReverseEndianness(((SockAddrIn*)&_addrs[i])->AddressBigEndian);
    /// <summary>The IPv6 source of a datagram received on an IPv6 socket (host-order number).</summary>
    public UInt128 SourceAddress6(int i) => BinaryPrimitives.ReadUInt128BigEndian(new ReadOnlySpan<byte>(_addrs[i].Address, 16));
    public ushort SourcePort(int i) => BinaryPrimitives.ReverseEndianness(_addrs[i].PortBigEndian);

    /// <summary>
    /// The outer TTL and TOS the kernel reported in the control messages (IP_RECVTTL, IP_RECVTOS; on an IPv6 socket
    /// the hop limit and traffic class, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS); -1 if absent.
    /// </summary>
    public (int Ttl, int Tos) OuterTtlTos(int i)
    {
        ReadControl(i, out int ttl, out int tos, out _);
        return (ttl, tos);
    }

    /// <summary>
    /// With UDP_GRO on: the size of each of the datagrams the kernel coalesced into message <paramref name="i"/> (the
    /// last may be shorter), or the message's length when it holds one datagram.
    /// </summary>
    public int SegmentBytes(int i)
    {
        ReadControl(i, out _, out _, out int gro);
        return gro > 0 ? gro : Length(i);
    }

    private void ReadControl(int i, out int ttl, out int tos, out int gro)
    {
        byte* c = _control + i * ControlBytes;
        nuint length = _msgs[i].Header.ControlLength;
        ttl = tos = gro = -1;
        nuint offset = 0;
        // struct cmsghdr { size_t len; int level; int type; } followed by data, each aligned to 8 bytes.
        while (offset + 16 <= length)
        {
            nuint len = *(nuint*)(c + offset);
            int level = *(int*)(c + offset + 8);
            int type = *(int*)(c + offset + 12);
            if (len < 16 || offset + len > length) break;
            if (level == Linux.IPPROTO_IP && type == Linux.IP_TTL) ttl = *(int*)(c + offset + 16);
            else if (level == Linux.IPPROTO_IP && type == Linux.IP_TOS) tos = *(c + offset + 16);
            else if (level == Linux.IPPROTO_IPV6 && type == Linux.IPV6_HOPLIMIT) ttl = *(int*)(c + offset + 16);
            else if (level == Linux.IPPROTO_IPV6 && type == Linux.IPV6_TCLASS) tos = *(int*)(c + offset + 16) & 0xFF;
            else if (level == Linux.SOL_UDP && type == Linux.UDP_GRO) gro = len >= 20 ? *(int*)(c + offset + 16) : *(ushort*)(c + offset + 16);
            offset += (len + 7) & ~(nuint)7;
        }
    }

    public void Dispose()
    {
        NativeMemory.Free(_msgs);
        NativeMemory.Free(_iov);
        NativeMemory.Free(_addrs);
        NativeMemory.Free(_control);
    }
}

public static unsafe class Cpu
{
    /// <summary>Pins the calling thread to one CPU (sched_setaffinity); false with errno when the kernel refuses.</summary>
    public static bool TryPinCurrentThread(int cpu, out int errno)
    {
        errno = 0;
        if (cpu is < 0 or >= 1024) { errno = Linux.EINVAL; return false; }
        if (Libc.sched_setaffinity_one(cpu) == 0) return true;
        errno = Libc.LastError;
        return false;
    }

    /// <summary>
    /// Asks the scheduler for a shorter time slice for the calling thread (sched_setattr's sched_runtime for
    /// SCHED_OTHER, Linux 6.12 on, which clamps it to 0.1–100 ms): under EEVDF a thread with a shorter slice gets an
    /// earlier deadline, so when it wakes on a busy CPU it runs before the thread there finishes its own slice (3 ms by
    /// default). Its nice value and policy stay. False with errno when the kernel refuses (older kernels ignore the
    /// field and succeed), or EINVAL when the thread is not SCHED_OTHER.
    /// </summary>
    public static bool TryRequestSlice(TimeSpan slice, out int errno)
    {
        errno = 0;
        SchedAttr attr = default;
        if (Libc.syscall_sched_attr(Linux.SYS_sched_getattr, 0, &attr, (uint)sizeof(SchedAttr), 0) != 0) { errno = Libc.LastError; return false; }
        if (attr.Policy != Linux.SCHED_OTHER) { errno = Linux.EINVAL; return false; }
        attr.Size = (uint)sizeof(SchedAttr);
        attr.Flags = 0;
        attr.Runtime = (ulong)(slice.Ticks * 100);
        if (Libc.syscall_sched_attr(Linux.SYS_sched_setattr, 0, &attr, 0, 0) == 0) return true;
        errno = Libc.LastError;
        return false;
    }

    /// <summary>Waits until one of the descriptors is readable or <paramref name="timeoutMs"/> passes.</summary>
    public static int PollReadable(ReadOnlySpan<int> fds, int timeoutMs)
    {
        PollFd* p = stackalloc PollFd[fds.Length];
        for (int i = 0; i < fds.Length; i++) p[i] = new PollFd { Fd = fds[i], Events = Linux.POLLIN };
        return Libc.poll(p, (nuint)fds.Length, timeoutMs);
    }
}
