using System.Buffers.Binary;
using System.Globalization;

namespace FastXtr.Dataplane.Encap;

/// <summary>
/// How the kernel reaches RLOCs through one underlay interface, for an ITR that sends through AF_XDP there
/// (--xdp-underlay): the IPv4 main routing table (/proc/net/route) and the neighbour table (/proc/net/arp), read
/// again every second by the host and read by the workers without locks (an immutable snapshot behind a volatile
/// reference). An RLOC's next hop is the gateway of the longest matching route through the interface (the RLOC itself
/// for a connected route), and its MAC the complete neighbour entry of that next hop. An RLOC whose best route leaves
/// through another interface, and a next hop the kernel has not resolved yet, are sent through the kernel, which
/// resolves it for a later snapshot. Policy routing rules and tables other than main are not read.
/// </summary>
public sealed class UnderlayNextHops
{
    private const int RtfUp = 0x1, RtfGateway = 0x2, AtfComplete = 0x2;
    private Snapshot _current;

    public UnderlayNextHops(string interfaceName, ReadOnlySpan<byte> mac)
    {
        Interface = interfaceName;
        Mac = mac.ToArray();
        _current = new Snapshot(0, [], []);
    }

    public string Interface { get; }
    /// <summary>The interface's own MAC: the source of every frame sent through it.</summary>
    public byte[] Mac { get; }
    public Snapshot Current => Volatile.Read(ref _current);

    /// <summary>Reads the kernel's tables again; false (the last snapshot kept) when they cannot be read.</summary>
    public bool Refresh()
    {
        try
        {
            var next = Parse(File.ReadAllText("/proc/net/route"), File.ReadAllText("/proc/net/arp"), Interface, _current.Version + 1);
            Volatile.Write(ref _current, next);
            return true;
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    /// <summary>A snapshot from the text of /proc/net/route and /proc/net/arp; neighbours of <paramref name="interfaceName"/> only.</summary>
    public static Snapshot Parse(string routeText, string arpText, string interfaceName, int version)
    {
        var routes = new List<Route>();
        foreach (var line in routeText.Split('\n').Skip(1))
        {
            var f = line.Split((char[])['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 8) continue;
            if (!uint.TryParse(f[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint destination)
                || !uint.TryParse(f[2], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint gateway)
                || !int.TryParse(f[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int flags)
                || !int.TryParse(f[6], NumberStyles.Integer, CultureInfo.InvariantCulture, out int metric)
                || !uint.TryParse(f[7], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint mask)) continue;
            if ((flags & RtfUp) == 0) continue;
            // The kernel prints the addresses' network-order bytes as a host-order (little-endian) number.
            // Routes through other interfaces are kept too: a more specific one of those means "not ours to send".
            routes.Add(new Route(BinaryPrimitives.ReverseEndianness(destination), BinaryPrimitives.ReverseEndianness(mask),
                (flags & RtfGateway) != 0 ? BinaryPrimitives.ReverseEndianness(gateway) : 0, metric, f[0] == interfaceName));
        }
        // Longest mask first, then the lowest metric: the first match is the kernel's choice within the main table.
        routes.Sort((a, b) => a.Mask != b.Mask ? b.Mask.CompareTo(a.Mask) : a.Metric.CompareTo(b.Metric));
        var neighbors = new Dictionary<uint, ulong>();
        foreach (var line in arpText.Split('\n').Skip(1))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 6 || f[5] != interfaceName) continue;
            if (!System.Net.IPAddress.TryParse(f[0], out var ip) || ip.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork) continue;
            if (!int.TryParse(f[2].Replace("0x", "", StringComparison.Ordinal), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int flags) || (flags & AtfComplete) == 0) continue;
            var octets = f[3].Split(':');
            if (octets.Length != 6) continue;
            ulong mac = 0;
            bool ok = true;
            for (int b = 0; b < 6; b++)
            {
                if (!byte.TryParse(octets[b], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out byte v)) { ok = false; break; }
                mac |= (ulong)v << (8 * b);
            }
            if (ok && mac != 0) neighbors[BinaryPrimitives.ReadUInt32BigEndian(ip.GetAddressBytes())] = mac;
        }
        return new Snapshot(version, routes.ToArray(), neighbors);
    }

    public readonly record struct Route(uint Prefix, uint Mask, uint Gateway, int Metric, bool ThroughInterface);

    /// <summary>One reading of the kernel's tables; <see cref="Version"/> grows with each.</summary>
    public sealed class Snapshot(int version, Route[] routes, Dictionary<uint, ulong> neighbors)
    {
        public int Version { get; } = version;
        public int RouteCount => routes.Length;
        public int NeighborCount => neighbors.Count;

        /// <summary>The MAC of <paramref name="rloc"/>'s next hop through the interface (the layout of <c>NeighborTable</c>: byte b in bits 8b..8b+7).</summary>
        public bool TryResolve(uint rloc, out ulong mac)
        {
            foreach (var r in routes)
            {
                if ((rloc & r.Mask) != (r.Prefix & r.Mask)) continue;
                if (!r.ThroughInterface) break;
                return neighbors.TryGetValue(r.Gateway != 0 ? r.Gateway : rloc, out mac);
            }
            mac = 0;
            return false;
        }
    }
}
