using System.Globalization;
using System.Net;
using System.Text;
using FastXtr.ControlAgent.Cli;
using FastXtr.ControlAgent.Context;
using FastXtr.ControlAgent.MapServer;
using FastXtr.ControlAgent.Messages;
using FastXtr.Dataplane.MapCache;

namespace FastXtr.ControlAgent.Agent;

public sealed record MapServerPeer(IPEndPoint Endpoint, SiteKey Key);

public sealed record DatabaseMapping(uint InstanceId, EidFamily Family, UInt128 Prefix, int Length, IReadOnlyList<(IPAddress Rloc, byte Priority, byte Weight)> Rlocs, AgentContext? Context);

/// <summary>
/// The control agent's configuration, line-oriented like the Map-Server's (see agent.example.conf):
/// <c>map-server ADDRESS[:PORT] KEY-ID sha1|sha256 SECRET</c>, <c>map-resolver ADDRESS[:PORT]</c>,
/// <c>database-mapping IID PREFIX RLOC[,PRIORITY[,WEIGHT]]... [context JSON]</c>, <c>rloc-addr</c>, <c>shm</c>,
/// <c>register-interval SECONDS</c>, <c>xtr-id HEX</c>, <c>site-id N</c>. Refused at start with line and reason.
/// </summary>
public sealed class AgentConfig
{
    public List<MapServerPeer> MapServers { get; } = [];
    public List<IPEndPoint> MapResolvers { get; } = [];
    public List<DatabaseMapping> Database { get; } = [];
    public IPAddress? RlocAddress { get; set; }
    public string SharedMemoryName { get; set; } = "fastxtr";
    public TimeSpan RegisterInterval { get; set; } = TimeSpan.FromSeconds(60);
    public UInt128 XtrId { get; set; }
    public ulong SiteId { get; set; }

    public static AgentConfig Parse(IReadOnlyList<string> lines, string source = "configuration")
    {
        var c = new AgentConfig();
        for (int n = 0; n < lines.Count; n++)
        {
            string line = lines[n];
            int hash = line.IndexOf('#', StringComparison.Ordinal);
            int contextAt = line.TrimStart().StartsWith("database-mapping", StringComparison.Ordinal) ? line.IndexOf(" context ", StringComparison.Ordinal) : -1;
            string? contextJson = null;
            if (contextAt >= 0) { contextJson = line[(contextAt + 9)..].Trim(); line = line[..contextAt]; }
            else if (hash >= 0) line = line[..hash];
            var t = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).ToList();
            if (t.Count == 0) continue;
            string where = $"{source} line {n + 1}";
            try
            {
                switch (t[0])
                {
                    case "map-server":
                        if (t.Count != 5) throw new ConfigException($"{where}: expected 'map-server ADDRESS[:PORT] KEY-ID sha1|sha256 SECRET'");
                        var alg = t[3] switch { "sha1" => AuthenticationAlgorithm.HmacSha1, "sha256" => AuthenticationAlgorithm.HmacSha256, _ => throw new ConfigException($"{where}: algorithm '{t[3]}' is not sha1 or sha256") };
                        string secret = t[4].Trim('"');
                        c.MapServers.Add(new MapServerPeer(MapServerConfig.ParseEndpoint(t[1]), new SiteKey(byte.Parse(t[2], CultureInfo.InvariantCulture), alg, Encoding.UTF8.GetBytes(secret))));
                        break;
                    case "map-resolver":
                        if (t.Count != 2) throw new ConfigException($"{where}: expected 'map-resolver ADDRESS[:PORT]'");
                        c.MapResolvers.Add(MapServerConfig.ParseEndpoint(t[1]));
                        break;
                    case "database-mapping":
                        if (t.Count < 4) throw new ConfigException($"{where}: expected 'database-mapping IID PREFIX RLOC[,PRIORITY[,WEIGHT]]... [context JSON]'");
                        uint iid = uint.Parse(t[1], CultureInfo.InvariantCulture);
                        var (family, prefix, length) = CliParsing.ParsePrefix(t[2], "database-mapping");
                        var rlocs = t.Skip(3).Select(r =>
                        {
                            var spec = CliParsing.ParseRloc(r);
                            return (IPAddress.Parse(r.Split(',')[0]), spec.Priority, spec.Weight);
                        }).ToList();
                        AgentContext? ctx = null;
                        if (contextJson is not null && (ctx = AgentContext.TryParse(contextJson, out var err)) is null) throw new ConfigException($"{where}: context: {err.Reason}");
                        c.Database.Add(new DatabaseMapping(iid, family, prefix, length, rlocs, ctx));
                        break;
                    case "rloc-addr": c.RlocAddress = IPAddress.Parse(t[1]); break;
                    case "shm": c.SharedMemoryName = t[1]; break;
                    case "register-interval": c.RegisterInterval = TimeSpan.FromSeconds(double.Parse(t[1], CultureInfo.InvariantCulture)); break;
                    case "xtr-id": c.XtrId = UInt128.Parse(t[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture); break;
                    case "site-id": c.SiteId = ulong.Parse(t[1], CultureInfo.InvariantCulture); break;
                    default: throw new ConfigException($"{where}: unknown setting '{t[0]}' (expected map-server, map-resolver, database-mapping, rloc-addr, shm, register-interval, xtr-id, site-id)");
                }
            }
            catch (Exception e) when (e is FormatException or OverflowException or IndexOutOfRangeException or ArgumentOutOfRangeException)
            {
                throw new ConfigException($"{where}: {e.Message}");
            }
        }
        if (c.RlocAddress is null) throw new ConfigException($"{source}: 'rloc-addr' is required (the address Map-Replies and Map-Notifies come back to)");
        // Stable across restarts unless configured: derived from the RLOC, so a restarted agent replaces its own
        // registrations instead of adding a second xTR.
        if (c.XtrId == 0) c.XtrId = ((UInt128)0x4658545200000000UL << 64) | (UInt128)BitConverter.ToUInt32(c.RlocAddress.MapToIPv4().GetAddressBytes());
        return c;
    }
}
