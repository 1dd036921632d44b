using System.Globalization;
using System.Net;
using System.Text;
using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;
using FastXtr.SharedMemory.MapCache;

namespace FastXtr.Agent;

public sealed record MapServerPeer(IPEndPoint Endpoint, SiteKey Key);

public sealed record DatabaseMapping(uint InstanceId, EidFamily Family, UInt128 Prefix, int Length, IReadOnlyList<(IPAddress Rloc, byte Priority, byte Weight)> Rlocs, AgentContext? Context)
{
    public bool SamePrefix(DatabaseMapping o) => InstanceId == o.InstanceId && Family == o.Family && Prefix == o.Prefix && Length == o.Length;

    public string PrefixText => $"[{InstanceId}]{EidPrefix.Format(Family, Prefix)}/{Length}";
}

/// <summary>A named constraint profile (CONTEXT-EXTENSION.md §5): sources in its prefixes resolve under these constraints.</summary>
public sealed record ConstraintProfile(string Name, AgentConstraints Constraints);

/// <summary>Sources in (IID, prefix) use the named profile.</summary>
public sealed record SourceProfile(uint InstanceId, EidFamily Family, UInt128 Prefix, int Length, string ProfileName);

/// <summary>
/// The control agent's configuration, line-oriented like the Map-Server's (see agent.example.conf):
/// <c>map-server ADDRESS[:PORT] KEY-ID sha1|sha256 SECRET</c>, <c>map-resolver ADDRESS[:PORT]</c>,
/// <c>database-mapping IID PREFIX RLOC[,PRIORITY[,WEIGHT]]... [context JSON]</c>, <c>rloc-addr</c>, <c>shm</c>,
/// <c>register-interval SECONDS</c>, <c>xtr-id HEX</c>, <c>site-id N</c>, <c>profile NAME JSON</c>,
/// <c>source-profile IID PREFIX NAME</c>, <c>api-socket PATH</c>, <c>rloc-probe-interval SECONDS</c>,
/// <c>rloc-probe-misses N</c>, <c>map-request-rate PER-SECOND [BURST]</c>, <c>subscribe on|off</c>. Refused at start with line and reason.
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
    public List<ConstraintProfile> Profiles { get; } = [];
    public List<SourceProfile> SourceProfiles { get; } = [];
    /// <summary>The local agent API's Unix socket; empty turns the API off.</summary>
    public string? ApiSocket { get; set; }
    /// <summary>Seconds between RLOC probes of each cached locator (RFC 9301 §6.3.2); 0 turns probing off.</summary>
    public TimeSpan RlocProbeInterval { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary>Consecutive unanswered probes after which a locator is marked down.</summary>
    public int RlocProbeMisses { get; set; } = 3;
    /// <summary>Subscribe (RFC 9437) to every EID resolved, so moves and state changes arrive as publications.</summary>
    public bool Subscribe { get; set; } = true;
    /// <summary>Data-driven Map-Requests per second in all, and the burst allowed above it.</summary>
    public double MapRequestRate { get; set; } = 1000;
    public double MapRequestBurst { get; set; } = 1000;

    public string EffectiveApiSocket => ApiSocket ?? $"/run/fastxtr/agent-{SharedMemoryName}.sock";

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
            else if (line.TrimStart().StartsWith("profile ", StringComparison.Ordinal) && line.IndexOf('{', StringComparison.Ordinal) is int brace and > 0)
            { contextJson = line[brace..].Trim(); line = line[..brace]; }
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
                        c.MapServers.Add(new MapServerPeer(ConfigText.ParseEndpoint(t[1], LispPorts.Control), new SiteKey(byte.Parse(t[2], CultureInfo.InvariantCulture), alg, Encoding.UTF8.GetBytes(secret))));
                        break;
                    case "map-resolver":
                        if (t.Count != 2) throw new ConfigException($"{where}: expected 'map-resolver ADDRESS[:PORT]'");
                        c.MapResolvers.Add(ConfigText.ParseEndpoint(t[1], LispPorts.Control));
                        break;
                    case "database-mapping":
                        if (t.Count < 4) throw new ConfigException($"{where}: expected 'database-mapping IID PREFIX RLOC[,PRIORITY[,WEIGHT]]... [context JSON]'");
                        uint iid = uint.Parse(t[1], CultureInfo.InvariantCulture);
                        var (family, prefix, length) = EidPrefix.Parse(t[2], "database-mapping");
                        var rlocs = t.Skip(3).Select(r =>
                        {
                            var spec = RlocSpec.Parse(r);
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
                    case "profile":
                        if (t.Count != 2 || contextJson is null) throw new ConfigException($"{where}: expected 'profile NAME {{\"agent-constraints\": {{...}}}}'");
                        if (c.Profiles.Any(p => p.Name == t[1])) throw new ConfigException($"{where}: profile '{t[1]}' is defined twice");
                        var constraints = AgentConstraints.TryParse(contextJson, out var cerr) ?? throw new ConfigException($"{where}: profile '{t[1]}': {cerr.Reason}");
                        c.Profiles.Add(new ConstraintProfile(t[1], constraints));
                        break;
                    case "source-profile":
                        if (t.Count != 4) throw new ConfigException($"{where}: expected 'source-profile IID PREFIX PROFILE-NAME'");
                        var (sf, sp, sl) = EidPrefix.Parse(t[2], "source-profile");
                        if (!c.Profiles.Any(p => p.Name == t[3])) throw new ConfigException($"{where}: no profile named '{t[3]}' (define it with a 'profile' line first)");
                        c.SourceProfiles.Add(new SourceProfile(uint.Parse(t[1], CultureInfo.InvariantCulture), sf, sp, sl, t[3]));
                        break;
                    case "api-socket": c.ApiSocket = t.Count > 1 ? t[1] : ""; break;
                    case "rloc-probe-interval": c.RlocProbeInterval = TimeSpan.FromSeconds(double.Parse(t[1], CultureInfo.InvariantCulture)); break;
                    case "rloc-probe-misses":
                        c.RlocProbeMisses = int.Parse(t[1], CultureInfo.InvariantCulture);
                        if (c.RlocProbeMisses < 1) throw new ConfigException($"{where}: rloc-probe-misses must be at least 1");
                        break;
                    case "map-request-rate":
                        if (t.Count is < 2 or > 3) throw new ConfigException($"{where}: expected 'map-request-rate PER-SECOND [BURST]'");
                        c.MapRequestRate = double.Parse(t[1], CultureInfo.InvariantCulture);
                        c.MapRequestBurst = t.Count == 3 ? double.Parse(t[2], CultureInfo.InvariantCulture) : Math.Max(1, c.MapRequestRate);
                        if (c.MapRequestRate <= 0 || c.MapRequestBurst < 1) throw new ConfigException($"{where}: map-request-rate needs a positive rate and a burst of at least 1");
                        break;
                    case "subscribe":
                        c.Subscribe = t[1] switch { "on" => true, "off" => false, _ => throw new ConfigException($"{where}: subscribe takes on or off") };
                        break;
                    default: throw new ConfigException($"{where}: unknown setting '{t[0]}' (expected map-server, map-resolver, database-mapping, rloc-addr, shm, register-interval, xtr-id, site-id, profile, source-profile, api-socket, rloc-probe-interval, rloc-probe-misses, map-request-rate, subscribe)");
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
