using System.Net;
using System.Net.Sockets;
using FastXtr.Packets;
using FastXtr.SharedMemory.MapCache;

namespace FastXtr.Cli;

/// <summary>Parsing of the address forms the CLI accepts, with errors that say what was expected.</summary>
public static class CliParsing
{
    public static uint ParseIpv4(string text, string option)
    {
        if (!IPAddress.TryParse(text, out var a) || a.AddressFamily != AddressFamily.InterNetwork)
            throw new FormatException($"{option} '{text}': expected an IPv4 address such as 192.0.2.1");
        return Ipv4Header.ToUInt32(a);
    }

    /// <summary>
    /// The RLOCs of a repeatable option: at most one IPv4 and one IPv6 address (host-order numbers, 0 for a family
    /// not given). IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are refused: give the IPv4 address itself.
    /// </summary>
    public static (uint Ipv4, UInt128 Ipv6) ParseRlocs(IReadOnlyList<string> texts, string option)
    {
        uint v4 = 0;
        UInt128 v6 = 0;
        foreach (string text in texts)
        {
            if (!IPAddress.TryParse(text, out var a) || !EidPrefix.IsUsableRloc(a))
                throw new FormatException($"{option} '{text}': expected a unicast IPv4 address or an IPv6 one that is not link-local, such as 192.0.2.1 or 2001:db8::1");
            if (a.AddressFamily == AddressFamily.InterNetwork)
            {
                if (v4 != 0) throw new FormatException($"{option} '{text}': a second IPv4 address (give one per family)");
                v4 = Ipv4Header.ToUInt32(a);
            }
            else
            {
                if (v6 != 0) throw new FormatException($"{option} '{text}': a second IPv6 address (give one per family)");
                v6 = Ipv6Header.ToUInt128(a);
            }
        }
        return (v4, v6);
    }

    /// <summary>"IID=IFNAME", e.g. "1000=fx1000".</summary>
    public static Dataplane.Workers.InstanceBinding ParseInstance(string text)
    {
        int eq = text.IndexOf('=', StringComparison.Ordinal);
        if (eq <= 0 || eq == text.Length - 1 || !uint.TryParse(text[..eq], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out uint iid))
            throw new FormatException($"--instance '{text}': expected IID=IFNAME, e.g. 1000=fx1000");
        return new Dataplane.Workers.InstanceBinding(iid, text[(eq + 1)..]);
    }

    public static IReadOnlyList<int> ParseCpus(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return [];
        var list = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int cpu))
                throw new FormatException($"--cpus '{text}': expected a comma-separated list of CPU numbers, e.g. 0,1");
            list.Add(cpu);
        }
        return list;
    }
}
