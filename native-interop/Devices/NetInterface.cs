namespace FastXtr.NativeInterop;

/// <summary>What the Ethernet EID ports need to know of an interface: index, MTU, MAC, IPv4 address, receive queues.</summary>
public sealed record NetInterface(string Name, int Index, int Mtu, byte[] Mac, uint Ipv4Address, int RxQueues)
{
    /// <summary>
    /// Queries <paramref name="name"/> through <paramref name="fd"/> (any socket). <paramref name="role"/> names what the
    /// interface is for in the error when it does not exist (e.g. "the EID-facing interface of --mode af-packet").
    /// </summary>
    public static unsafe NetInterface Query(int fd, string name, string role)
    {
        if (string.IsNullOrEmpty(name) || name.Length >= Linux.IFNAMSIZ) throw new NativeException($"'{name}' is not an interface name");
        IfReq req = default;
        for (int i = 0; i < name.Length; i++) req.Name[i] = (byte)name[i];
        if (Libc.ioctl_ifreq(fd, Linux.SIOCGIFINDEX, &req) != 0)
            throw new NativeException($"interface {name} ({role}) does not exist here", Libc.LastError);
        int ifindex = req.IntValue;
        if (Libc.ioctl_ifreq(fd, Linux.SIOCGIFMTU, &req) != 0) throw new NativeException($"SIOCGIFMTU {name}", Libc.LastError);
        int mtu = req.IntValue;
        if (Libc.ioctl_ifreq(fd, Linux.SIOCGIFHWADDR, &req) != 0) throw new NativeException($"SIOCGIFHWADDR {name}", Libc.LastError);
        var mac = new ReadOnlySpan<byte>(req.HardwareAddress, 6).ToArray();
        // No IPv4 address is not an error (an IPv6-only EID side).
        uint address = Libc.ioctl_ifreq(fd, Linux.SIOCGIFADDR, &req) == 0 ? System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(req.AddressBigEndian) : 0;
        return new NetInterface(name, ifindex, mtu, mac, address, CountRxQueues(name));
    }

    /// <summary>As <see cref="Query(int, string, string)"/>, through a datagram socket of its own.</summary>
    public static NetInterface Query(string name, string role)
    {
        int fd = Libc.socket(Linux.AF_INET, Linux.SOCK_DGRAM | Linux.SOCK_CLOEXEC, 0);
        if (fd < 0) throw new NativeException($"a socket to query {name}", Libc.LastError);
        try { return Query(fd, name, role); }
        finally { Libc.close(fd); }
    }

    /// <summary>The interface's receive queues as sysfs lists them (1 where it cannot be read).</summary>
    private static int CountRxQueues(string name)
    {
        try { return Math.Max(1, Directory.GetDirectories($"/sys/class/net/{name}/queues", "rx-*").Length); }
        catch (IOException) { return 1; }
        catch (UnauthorizedAccessException) { return 1; }
    }
}
