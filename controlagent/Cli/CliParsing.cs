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
