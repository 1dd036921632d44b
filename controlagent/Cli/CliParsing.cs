using System.Net;
using System.Net.Sockets;
using FastXtr.Dataplane.Headers;
using FastXtr.Dataplane.MapCache;

namespace FastXtr.ControlAgent.Cli;

/// <summary>Parsing of the address forms the CLI accepts, with errors that say what was expected.</summary>
public static class CliParsing
{
    public static uint ParseIpv4(string text, string option)
    {
        if (!IPAddress.TryParse(text, out var a) || a.AddressFamily != AddressFamily.InterNetwork)
            throw new FormatException($"{option} '{text}': expected an IPv4 address such as 192.0.2.1");
        return Ipv4Header.ToUInt32(a);
    }

    /// <summary>"10.1.0.0/24" or "2001:db8::/48" (a bare address is a host prefix).</summary>
    public static (EidFamily Family, UInt128 Prefix, int Length) ParsePrefix(string text, string option)
    {
        string[] parts = text.Split('/');
        if (parts.Length > 2 || !IPAddress.TryParse(parts[0], out var a))
            throw new FormatException($"{option} '{text}': expected a prefix such as 10.1.0.0/24 or 2001:db8::/48");
        var family = a.AddressFamily == AddressFamily.InterNetwork ? EidFamily.Ipv4 : EidFamily.Ipv6;
        int max = MapCacheMath.MaxPrefixLength(family);
        int length = max;
        if (parts.Length == 2 && (!int.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out length) || length > max))
            throw new FormatException($"{option} '{text}': the prefix length must be 0 .. {max}");
        UInt128 value = family == EidFamily.Ipv4 ? Ipv4Header.ToUInt32(a) : Ipv6Header.ToUInt128(a);
        return (family, MapCacheMath.Mask(value, family, length), length);
    }

    /// <summary>"IID=IFNAME", e.g. "1000=fx1000".</summary>
    public static Dataplane.Workers.InstanceBinding ParseInstance(string text)
    {
        int eq = text.IndexOf('=', StringComparison.Ordinal);
        if (eq <= 0 || eq == text.Length - 1 || !uint.TryParse(text[..eq], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out uint iid))
            throw new FormatException($"--instance '{text}': expected IID=IFNAME, e.g. 1000=fx1000");
        return new Dataplane.Workers.InstanceBinding(iid, text[(eq + 1)..]);
    }

    /// <summary>"ADDRESS[,PRIORITY[,WEIGHT]]", e.g. "192.0.2.2,1,50".</summary>
    public static RlocSpec ParseRloc(string text)
    {
        string[] parts = text.Split(',');
        if (parts.Length > 3 || !IPAddress.TryParse(parts[0], out var a))
            throw new FormatException($"--rloc '{text}': expected ADDRESS[,PRIORITY[,WEIGHT]], e.g. 192.0.2.2,1,100");
        byte priority = 1, weight = 100;
        if (parts.Length > 1 && !byte.TryParse(parts[1], System.Globalization.CultureInfo.InvariantCulture, out priority)) throw new FormatException($"--rloc '{text}': priority must be 0 .. 255");
        if (parts.Length > 2 && !byte.TryParse(parts[2], System.Globalization.CultureInfo.InvariantCulture, out weight)) throw new FormatException($"--rloc '{text}': weight must be 0 .. 255");
        return a.AddressFamily == AddressFamily.InterNetwork
            ? new RlocSpec(EidFamily.Ipv4, Ipv4Header.ToUInt32(a), priority, weight)
            : new RlocSpec(EidFamily.Ipv6, Ipv6Header.ToUInt128(a), priority, weight);
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

    public static string FormatAddress(EidFamily family, UInt128 value) =>
        family == EidFamily.Ipv4 ? Ipv4Header.ToAddress((uint)value).ToString() : Ipv6Header.ToAddress(value).ToString();
}
