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
/// <c>database-mapping IID PREFIX RLOC[,PRIORITY[,WEIGHT]]... [context JSON]</c>, <c>rloc-addr</c> (one per family), <c>shm</c>,
/// <c>register-interval SECONDS</c>, <c>xtr-id HEX</c>, <c>site-id N</c>, <c>profile NAME JSON</c>,
/// <c>source-profile IID PREFIX NAME</c>, <c>api-socket PATH</c>, <c>rloc-probe-interval SECONDS</c>,
/// <c>rloc-probe-misses N</c>, <c>map-request-rate PER-SECOND [BURST]</c>, <c>subscribe on|off</c>, <c>nat-traversal on|off</c>,
/// <c>nat-keepalive SECONDS</c>, <c>data-port PORT</c>; for <c>fastxtr rtr</c> also <c>nat-site</c> and
/// <c>nat-binding-timeout</c>. Refused at start with line and reason.
/// </summary>
public sealed class AgentConfig
{
    public List<MapServerPeer> MapServers { get; } = [];
    public List<IPEndPoint> MapResolvers { get; } = [];
    public List<DatabaseMapping> Database { get; } = [];
    /// <summary>
    /// This xTR's RLOCs, at most one per family (<c>rloc-addr</c> given once or twice): the control socket binds each,
    /// Map-Requests list them all as ITR-RLOCs, and each peer is reached from the one of its own family.
    /// </summary>
    public List<IPAddress> RlocAddresses { get; set; } = [];
    /// <summary>The first <c>rloc-addr</c> given: what names this xTR in logs and derives its default xTR-ID.</summary>
    public IPAddress? RlocAddress => RlocAddresses.Count > 0 ? RlocAddresses[0] : null;

    /// <summary>This xTR's RLOC of a family, or null when it has none of it.</summary>
    public IPAddress? RlocOf(System.Net.Sockets.AddressFamily family) => RlocAddresses.Find(a => a.AddressFamily == family);
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
    /// <summary>
    /// NAT discovery (<c>nat-traversal on</c>): Info-Requests to every Map-Server at start and every 20 s, which tell
    /// whether a NAT translates this xTR's address and keep its binding alive. Off by default: a gateway with a public
    /// address gains nothing from it.
    /// </summary>
    public bool NatTraversal { get; set; }
    /// <summary>
    /// Behind NAT (<c>nat-traversal on</c>, and a Map-Server named RTRs): how often an authenticated Info-Request per
    /// EID prefix goes to each RTR's data port from this xTR's data port (<c>nat-keepalive SECONDS</c>). It tells the RTR
    /// the translated address and port to send this xTR's traffic to, and keeps that NAT binding alive: shorter than
    /// the NAT's idle timeout for UDP (30 s on many, RFC 4787 REQ-5 asks for at least 2 minutes).
    /// </summary>
    public TimeSpan NatKeepalive { get; set; } = TimeSpan.FromSeconds(15);
    /// <summary>The UDP port the data plane takes LISP data on (its <c>--port</c>): where keep-alives to RTRs leave from.</summary>
    public ushort DataPort { get; set; } = LispDataHeader.DataPort;

    /// <summary>
    /// fastxtr rtr: the EID prefixes whose xTRs may use this RTR from behind NAT, each with the key their Info-Requests
    /// are signed with (<c>nat-site IID PREFIX KEY-ID sha1|sha256 SECRET</c>: their site's key at the Map-Server).
    /// </summary>
    public List<(SitePrefix Prefix, SiteKey Key)> NatSites { get; } = [];
    /// <summary>fastxtr rtr: how long a NAT binding is kept after its last authenticated Info-Request (<c>nat-binding-timeout SECONDS</c>).</summary>
    public TimeSpan NatBindingTimeout { get; set; } = TimeSpan.FromSeconds(60);
    /// <summary>True when <c>fastxtr rtr</c> runs this configuration (set by the command, not by a line).</summary>
    public bool Rtr { get; set; }

    /// <summary>Data-driven Map-Requests per second in all, and the burst allowed above it.</summary>
    public double MapRequestRate { get; set; } = 1000;
    public double MapRequestBurst { get; set; } = 1000;

    public string EffectiveApiSocket => ApiSocket ?? $"/run/fastxtr/agent-{SharedMemoryName}.sock";

    public static AgentConfig Parse(IReadOnlyList<string> lines, string source = "configuration")
    {
        var c = new AgentConfig();
        ConfigReader.Read(lines, source, t => c.Apply(t));
        if (c.RlocAddress is null) throw new ConfigException($"{source}: 'rloc-addr' is required (the address Map-Replies and Map-Notifies come back to)");
        // Stable across restarts unless configured: derived from the RLOC, so a restarted agent replaces its own
        // registrations instead of adding a second xTR.
        // An IPv4 RLOC is its low 32 bits (as before); an IPv6 one is 96 bits of its SHA-256, so xTRs whose IPv6 RLOCs
        // differ only in their prefix do not share an ID.
        if (c.XtrId == 0)
            c.XtrId = c.RlocAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork
                ? ((UInt128)0x4658545200000000UL << 64) | (UInt128)BitConverter.ToUInt32(c.RlocAddress.GetAddressBytes())
                : ((UInt128)0x46585452U << 96) | (System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(System.Security.Cryptography.SHA256.HashData(c.RlocAddress.GetAddressBytes())) >> 32);
        return c;
    }

    private void Apply(ConfigLine t)
    {
        // The agent's settings are all top-level; indentation is allowed and means nothing.
        switch (t[0])
        {
            case "map-server":
                if (t.Count != 5) throw t.Error("expected 'map-server ADDRESS[:PORT] KEY-ID sha1|sha256 SECRET'");
                var alg = SiteKey.AlgorithmNamed(t[3]) ?? throw t.Error($"algorithm '{t[3]}' is not sha1 or sha256");
                MapServers.Add(new MapServerPeer(ConfigReader.Endpoint(t[1], LispPorts.Control), new SiteKey(byte.Parse(t[2], CultureInfo.InvariantCulture), alg, Encoding.UTF8.GetBytes(t[4]))));
                break;
            case "map-resolver":
                if (t.Count != 2) throw t.Error("expected 'map-resolver ADDRESS[:PORT]'");
                MapResolvers.Add(ConfigReader.Endpoint(t[1], LispPorts.Control));
                break;
            case "database-mapping":
                // database-mapping IID PREFIX RLOC... [context {JSON}]: the word "context" introduces the line's JSON.
                var words = t.Words.Count > 0 && t.Words[^1] == "context" && t.Json is not null ? t.Words[..^1] : t.Words;
                if (words.Count < 4 || (t.Json is not null && words.Count == t.Count)) throw t.Error("expected 'database-mapping IID PREFIX RLOC[,PRIORITY[,WEIGHT]]... [context JSON]'");
                uint iid = uint.Parse(words[1], CultureInfo.InvariantCulture);
                var (family, prefix, length) = EidPrefix.Parse(words[2], "database-mapping");
                var rlocs = words.Skip(3).Select(r =>
                {
                    var spec = RlocSpec.Parse(r);
                    // A Map-Register's locator carries no port (RFC 9301 §5.6): ETRs take LISP data on 4341.
                    if (spec.Port != 0) throw t.Error($"database-mapping locator '{r}': a registered locator has no port (ETRs take LISP data on {LispDataHeader.DataPort})");
                    return (spec.ToIPAddress(), spec.Priority, spec.Weight);
                }).ToList();
                AgentContext? ctx = null;
                if (t.Json is not null && (ctx = AgentContext.TryParse(t.Json, out var err)) is null) throw t.Error($"context: {err.Reason}");
                Database.Add(new DatabaseMapping(iid, family, prefix, length, rlocs, ctx));
                break;
            case "rloc-addr":
                if (t.Count != 2 || !IPAddress.TryParse(t[1], out var rloc) || !EidPrefix.IsUsableRloc(rloc))
                    throw t.Error("expected 'rloc-addr ADDRESS': a unicast IPv4 address or an IPv6 one that is not link-local (give the line twice, one per family, for a dual-stack xTR)");
                if (RlocOf(rloc.AddressFamily) is { } earlier) throw t.Error($"a second {(rloc.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? "IPv4" : "IPv6")} rloc-addr ({earlier} is given already): one per family");
                RlocAddresses.Add(rloc);
                break;
            case "shm": SharedMemoryName = t[1]; break;
            case "register-interval":
                t.Expect(2, "register-interval SECONDS");
                RegisterInterval = TimeSpan.FromSeconds(ConfigReader.Number(t[1], 1, 86400, "register-interval"));
                break;
            case "xtr-id": XtrId = UInt128.Parse(t[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture); break;
            case "site-id": SiteId = ulong.Parse(t[1], CultureInfo.InvariantCulture); break;
            case "profile":
                if (t.Count != 2 || t.Json is null) throw t.Error("expected 'profile NAME {\"agent-constraints\": {...}}'");
                if (Profiles.Any(p => p.Name == t[1])) throw t.Error($"profile '{t[1]}' is defined twice");
                var constraints = AgentConstraints.TryParse(t.Json, out var cerr) ?? throw t.Error($"profile '{t[1]}': {cerr.Reason}");
                Profiles.Add(new ConstraintProfile(t[1], constraints));
                break;
            case "source-profile":
                if (t.Count != 4) throw t.Error("expected 'source-profile IID PREFIX PROFILE-NAME'");
                var (sf, sp, sl) = EidPrefix.Parse(t[2], "source-profile");
                if (!Profiles.Any(p => p.Name == t[3])) throw t.Error($"no profile named '{t[3]}' (define it with a 'profile' line first)");
                SourceProfiles.Add(new SourceProfile(uint.Parse(t[1], CultureInfo.InvariantCulture), sf, sp, sl, t[3]));
                break;
            case "api-socket": ApiSocket = t.Count > 1 ? t[1] : ""; break;
            case "rloc-probe-interval":
                t.Expect(2, "rloc-probe-interval SECONDS");
                RlocProbeInterval = TimeSpan.FromSeconds(ConfigReader.Number(t[1], 0, 86400, "rloc-probe-interval"));
                break;
            case "rloc-probe-misses":
                RlocProbeMisses = int.Parse(t[1], CultureInfo.InvariantCulture);
                if (RlocProbeMisses < 1) throw t.Error("rloc-probe-misses must be at least 1");
                break;
            case "map-request-rate":
                if (t.Count is < 2 or > 3) throw t.Error("expected 'map-request-rate PER-SECOND [BURST]'");
                MapRequestRate = double.Parse(t[1], CultureInfo.InvariantCulture);
                MapRequestBurst = t.Count == 3 ? double.Parse(t[2], CultureInfo.InvariantCulture) : Math.Max(1, MapRequestRate);
                if (MapRequestRate <= 0 || MapRequestBurst < 1) throw t.Error("map-request-rate needs a positive rate and a burst of at least 1");
                break;
            case "subscribe": Subscribe = ConfigReader.OnOff(t, 1, "subscribe"); break;
            case "nat-traversal": NatTraversal = ConfigReader.OnOff(t, 1, "nat-traversal"); break;
            case "nat-keepalive":
                t.Expect(2, "nat-keepalive SECONDS");
                NatKeepalive = TimeSpan.FromSeconds(ConfigReader.Number(t[1], 1, 3600, "nat-keepalive"));
                break;
            case "data-port":
                t.Expect(2, "data-port PORT");
                DataPort = (ushort)ConfigReader.Number(t[1], 1, 65535, "data-port");
                break;
            case "nat-site":
                if (t.Count != 6) throw t.Error("expected 'nat-site IID PREFIX KEY-ID sha1|sha256 SECRET'");
                uint natIid = (uint)ConfigReader.Number(t[1], 0, 0xFFFFFF, "Instance ID");
                var (natFamily, natPrefix, natLength) = EidPrefix.Parse(t[2], "nat-site");
                var natAlg = SiteKey.AlgorithmNamed(t[4]) ?? throw t.Error($"algorithm '{t[4]}' is not sha1 or sha256");
                if (t[5].Length == 0) throw t.Error("the secret is empty");
                var natSite = new SitePrefix(natIid, natFamily, natPrefix, natLength, AcceptMoreSpecifics: true);
                if (NatSites.Any(n => n.Prefix.Covers(natIid, natFamily, natPrefix, natLength) || natSite.Covers(n.Prefix.InstanceId, n.Prefix.Family, n.Prefix.Prefix, n.Prefix.Length)))
                    throw t.Error($"nat-site {natSite} overlaps one given before: one key for each EID");
                NatSites.Add((natSite, new SiteKey((byte)ConfigReader.Number(t[3], 0, 255, "key-id"), natAlg, Encoding.UTF8.GetBytes(t[5]))));
                break;
            case "nat-binding-timeout":
                t.Expect(2, "nat-binding-timeout SECONDS");
                NatBindingTimeout = TimeSpan.FromSeconds(ConfigReader.Number(t[1], 2, 86400, "nat-binding-timeout"));
                break;
            default: throw t.Error($"unknown setting '{t[0]}' (expected map-server, map-resolver, database-mapping, rloc-addr, shm, register-interval, xtr-id, site-id, profile, source-profile, api-socket, rloc-probe-interval, rloc-probe-misses, map-request-rate, subscribe, nat-traversal, nat-keepalive, data-port, nat-site, nat-binding-timeout)");
        }
    }
}
