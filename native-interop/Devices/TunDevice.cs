namespace FastXtr.NativeInterop;

/// <summary>
/// A Linux TUN device (IFF_TUN | IFF_NO_PI, and IFF_MULTI_QUEUE with more than one queue): one non-blocking file
/// descriptor per queue, so each data-plane worker reads and writes its own queue without sharing.
/// </summary>
public sealed unsafe class TunDevice : IDisposable
{
    private readonly int[] _fds;

    private TunDevice(string name, int[] fds, uint offloads, bool vnetHeader)
    {
        Name = name;
        _fds = fds;
        Offloads = offloads;
        HasVnetHeader = vnetHeader;
    }

    public string Name { get; }
    /// <summary>The TUN_F_* offloads the kernel accepted (0 without offloads).</summary>
    public uint Offloads { get; }
    /// <summary>Every read and write carries a <see cref="VirtioNetHdr"/> in front of the packet (IFF_VNET_HDR).</summary>
    public bool HasVnetHeader { get; }

    /// <summary>
    /// What the data plane asks for with offloads on: unchecksummed packets, TSO for IPv4 and IPv6 (with ECN), and USO
    /// (Linux 6.2+), asked for in that order of fallback.
    /// </summary>
    public const uint WantedOffloads = Linux.TUN_F_CSUM | Linux.TUN_F_TSO4 | Linux.TUN_F_TSO6 | Linux.TUN_F_TSO_ECN | Linux.TUN_F_USO4 | Linux.TUN_F_USO6;
    public int QueueCount => _fds.Length;
    public int QueueFd(int queue) => _fds[queue];

    /// <summary>
    /// Opens (creating if needed) TUN <paramref name="name"/> with <paramref name="queues"/> queues. With
    /// <paramref name="offload"/> the TUN carries virtio-net headers and hands over TSO and USO super-packets and
    /// unchecksummed packets; a kernel without USO gets TSO, one that refuses TSO checksum offload only, one that refuses
    /// TUNSETOFFLOAD altogether none (<see cref="Offloads"/> says which).
    /// </summary>
    public static TunDevice Open(string name, int queues, bool offload = false)
    {
        if (string.IsNullOrEmpty(name) || name.Length >= Linux.IFNAMSIZ || name.Any(c => c is '/' or ' ' or ':' || c > 0x7e))
            throw new ArgumentException($"'{name}' is not a valid interface name (1-15 printable characters, no '/', ':' or space)", nameof(name));
        if (queues is < 1 or > 256) throw new ArgumentOutOfRangeException(nameof(queues), queues, "1 .. 256 queues");
        var fds = new List<int>();
        try
        {
            for (int q = 0; q < queues; q++)
            {
                int fd = Libc.open("/dev/net/tun", Linux.O_RDWR | Linux.O_NONBLOCK | Linux.O_CLOEXEC, 0);
                if (fd < 0)
                {
                    int e = Libc.LastError;
                    throw e == Linux.ENOENT
                        ? new NativeException("open /dev/net/tun: the tun driver is missing (modprobe tun)", e)
                        : e is Linux.EACCES or Linux.EPERM
                            ? new NativeException("open /dev/net/tun: permission denied (the data plane needs root or CAP_NET_ADMIN)", e)
                            : new NativeException("open /dev/net/tun", e);
                }
                fds.Add(fd);
                IfReq req = default;
                for (int i = 0; i < name.Length; i++) req.Name[i] = (byte)name[i];
                req.Flags = (short)(Linux.IFF_TUN | Linux.IFF_NO_PI | (queues > 1 ? Linux.IFF_MULTI_QUEUE : 0) | (offload ? Linux.IFF_VNET_HDR : 0));
                if (Libc.ioctl_ifreq(fd, Linux.TUNSETIFF, &req) != 0)
                {
                    int e = Libc.LastError;
                    throw e switch
                    {
                        Linux.EPERM or Linux.EACCES => new NativeException($"TUNSETIFF {name}: permission denied (the data plane needs root or CAP_NET_ADMIN)", e),
                        Linux.EBUSY => new NativeException($"TUNSETIFF {name}: the device is busy (another process holds it, or it exists with other flags, e.g. not multi-queue)", e),
                        Linux.EINVAL => new NativeException($"TUNSETIFF {name}: invalid request (an existing {name} is not a TUN device, or has a different queue mode)", e),
                        _ => new NativeException($"TUNSETIFF {name}", e),
                    };
                }
            }
            uint accepted = 0;
            if (offload)
            {
                int size = VirtioNetHdr.Bytes;
                if (Libc.ioctl_int(fds[0], Linux.TUNSETVNETHDRSZ, &size) != 0) throw new NativeException($"TUNSETVNETHDRSZ {name}", Libc.LastError);
                foreach (uint flags in new[] { WantedOffloads, WantedOffloads & ~(Linux.TUN_F_USO4 | Linux.TUN_F_USO6), Linux.TUN_F_CSUM })
                {
                    if (Libc.ioctl_value(fds[0], Linux.TUNSETOFFLOAD, flags) == 0) { accepted = flags; break; }
                }
            }
            return new TunDevice(name, fds.ToArray(), accepted, offload);
        }
        catch
        {
            foreach (int fd in fds) Libc.close(fd);
            throw;
        }
    }

    /// <summary>
    /// Sets the device's transmit queue length (txqueuelen): how many packets the kernel holds for the data plane to
    /// read before it drops (counted as TX dropped in <c>ip -s link</c>). The TUN default of 500 is 5 ms at 100 kpps,
    /// shorter than one scheduling gap of a worker sharing its core.
    /// </summary>
    public void SetQueueLength(int packets)
    {
        int s = Libc.socket(Linux.AF_INET, Linux.SOCK_DGRAM | Linux.SOCK_CLOEXEC, 0);
        if (s < 0) throw new NativeException($"socket for SIOCSIFTXQLEN {Name}", Libc.LastError);
        try
        {
            IfReq req = default;
            for (int i = 0; i < Name.Length; i++) req.Name[i] = (byte)Name[i];
            req.IntValue = packets;
            if (Libc.ioctl_ifreq(s, Linux.SIOCSIFTXQLEN, &req) != 0) throw new NativeException($"SIOCSIFTXQLEN {Name} {packets}", Libc.LastError);
        }
        finally { Libc.close(s); }
    }

    /// <summary>Reads one packet; returns its length, 0 when none is waiting, -errno on error.</summary>
    public static int Read(int fd, byte* buffer, int capacity)
    {
        long n = Libc.read(fd, buffer, (nuint)capacity);
        if (n >= 0) return (int)n;
        int e = Libc.LastError;
        return e is Linux.EAGAIN or Linux.EINTR ? 0 : -e;
    }

    /// <summary>Writes one packet; returns true when the kernel took it.</summary>
    public static bool Write(int fd, byte* packet, int length) => Libc.write(fd, packet, (nuint)length) == length;

    /// <summary>Writes one packet gathered from <paramref name="count"/> pieces (a virtio-net header, headers, payloads).</summary>
    public static bool WriteGather(int fd, IoVec* pieces, int count, int totalLength) => Libc.writev(fd, pieces, count) == totalLength;

    public void Dispose()
    {
        for (int i = 0; i < _fds.Length; i++)
        {
            if (_fds[i] >= 0) Libc.close(_fds[i]);
            _fds[i] = -1;
        }
    }
}
