using System.Globalization;
using System.Net;
using System.Text;
using FastXtr.Lisp.Messages;

namespace FastXtr.MapServer;

public sealed record SiteConfig(string Name, IReadOnlyList<SiteKey> Keys, IReadOnlyList<SitePrefix> Prefixes, bool ProxyReply, string? Description);

/// <summary>
/// The Map-Server/Map-Resolver configuration (see <c>controlagent/MapServer/mapserver.example.conf</c>, which
/// documents every setting). Line-oriented: global settings, then <c>site NAME</c> blocks whose settings are
/// indented. Anything invalid is refused at start with its line number and the reason.
/// </summary>
public sealed class MapServerConfig
{
    public List<IPEndPoint> Listen { get; } = [];
    public TimeSpan RegistrationTimeout { get; set; } = TimeSpan.FromSeconds(180);
    public double MapRequestRate { get; set; } = 1000;
    public double MapRequestBurst { get; set; } = 2000;
    public double MapRegisterRate { get; set; } = 100;
    public double MapRegisterBurst { get; set; } = 200;
    public int RateLimitSources { get; set; } = 65536;
    public uint NegativeTtlMinutes { get; set; } = 15;
    public uint UnregisteredTtlMinutes { get; set; } = 1;
    public string ControlSocket { get; set; } = "/run/fastxtr/mapserver.sock";
    /// <summary>
    /// The RTRs an Info-Reply tells xTRs behind NAT to use (<c>rtr ADDRESS</c>, repeatable; draft-ietf-lisp-nat-traversal
    /// §5): re-encapsulating tunnel routers that registrations and data of those xTRs go through.
    /// </summary>
    public List<System.Net.IPAddress> Rtrs { get; } = [];
    /// <summary>How long (minutes) an xTR may keep the RTR list of an Info-Reply (<c>info-reply-ttl</c>).</summary>
    public uint InfoReplyTtlMinutes { get; set; } = 1440;
    public List<SiteConfig> Sites { get; } = [];
    /// <summary>This server's part of a LISP-DDT tree (the <c>ddt-*</c> settings); empty when it is in none.</summary>
    public DdtConfig Ddt { get; } = new();

    public static MapServerConfig Load(string path)
    {
        if (!File.Exists(path)) throw new ConfigException($"{path}: no such configuration file");
        return Parse(File.ReadAllLines(path), path);
    }

    public static MapServerConfig Parse(IReadOnlyList<string> lines, string source = "configuration")
    {
        var config = new MapServerConfig();
        SiteBuilder? site = null;
        ConfigReader.Read(lines, source, t =>
        {
            if (t.Indented && site is not null) site.Apply(t);
            else
            {
                if (t.Indented) throw t.Error($"'{t[0]}' is indented but no 'site NAME' line precedes it");
                if (site is not null) config.Sites.Add(site.Build());
                site = null;
                if (t[0] == "site")
                {
                    if (t.Count != 2) throw t.Error("expected 'site NAME'");
                    if (config.Sites.Any(s => s.Name == t[1])) throw t.Error($"site '{t[1]}' is defined twice");
                    site = new SiteBuilder(t[1], t.Number, source);
                }
                else config.ApplyGlobal(t);
            }
        });
        if (site is not null) config.Sites.Add(site.Build());
        if (config.Listen.Count == 0) config.Listen.Add(new IPEndPoint(IPAddress.Any, LispPorts.Control));
        config.CheckOverlaps(source);
        config.Ddt.Check(source);
        return config;
    }

    private void CheckOverlaps(string source)
    {
        var all = Sites.SelectMany(s => s.Prefixes.Select(p => (Site: s.Name, Prefix: p))).ToList();
        for (int i = 0; i < all.Count; i++)
            for (int j = i + 1; j < all.Count; j++)
            {
                var (a, b) = (all[i].Prefix, all[j].Prefix);
                if (a.InstanceId != b.InstanceId || a.Family != b.Family || all[i].Site == all[j].Site) continue;
                int len = Math.Min(a.Length, b.Length);
                if (EidPrefix.Mask(a.Prefix, a.Family, len) == EidPrefix.Mask(b.Prefix, b.Family, len))
                    throw new ConfigException($"{source}: sites '{all[i].Site}' ({a}) and '{all[j].Site}' ({b}) claim overlapping EID space; one site must own each EID");
            }
    }

    private void ApplyGlobal(ConfigLine t)
    {
        if (Ddt.TryApply(t)) return;
        switch (t[0])
        {
            case "listen":
                t.Expect(2, "listen ADDRESS[:PORT]");
                Listen.Add(ParseEndpoint(t[1]));
                break;
            case "registration-timeout":
                t.Expect(2, "registration-timeout SECONDS");
                RegistrationTimeout = TimeSpan.FromSeconds(ConfigReader.Number(t[1], 1, 86400, "registration-timeout"));
                break;
            case "map-request-rate":
                t.Expect(3, "map-request-rate PER-SECOND BURST");
                MapRequestRate = ConfigReader.Number(t[1], 0.1, 1e7, "rate");
                MapRequestBurst = ConfigReader.Number(t[2], 1, 1e8, "burst");
                break;
            case "map-register-rate":
                t.Expect(3, "map-register-rate PER-SECOND BURST");
                MapRegisterRate = ConfigReader.Number(t[1], 0.1, 1e7, "rate");
                MapRegisterBurst = ConfigReader.Number(t[2], 1, 1e8, "burst");
                break;
            case "rate-limit-sources":
                t.Expect(2, "rate-limit-sources COUNT");
                RateLimitSources = (int)ConfigReader.Number(t[1], 16, 1 << 24, "rate-limit-sources");
                break;
            case "negative-ttl":
                t.Expect(2, "negative-ttl MINUTES");
                NegativeTtlMinutes = (uint)ConfigReader.Number(t[1], 1, 1440, "negative-ttl");
                break;
            case "control-socket":
                t.Expect(2, "control-socket PATH");
                ControlSocket = t[1];
                break;
            case "rtr":
                t.Expect(2, "rtr ADDRESS");
                if (!System.Net.IPAddress.TryParse(t[1], out var rtr) || rtr.IsIPv4MappedToIPv6) throw t.Error($"rtr '{t[1]}': expected an IPv4 or IPv6 address");
                if (Rtrs.Contains(rtr)) throw t.Error($"rtr {rtr} is listed twice");
                Rtrs.Add(rtr);
                break;
            case "info-reply-ttl":
                t.Expect(2, "info-reply-ttl MINUTES");
                InfoReplyTtlMinutes = (uint)ConfigReader.Number(t[1], 1, 10080, "info-reply-ttl");
                break;
            default:
                throw t.Error($"unknown setting '{t[0]}' (expected listen, registration-timeout, map-request-rate, map-register-rate, rate-limit-sources, negative-ttl, control-socket, rtr, info-reply-ttl, ddt-authority, ddt-delegate, ddt-map-server-peer, ddt-root, ddt-request-timeout or site)");
        }
    }

    public static IPEndPoint ParseEndpoint(string text) => ConfigReader.Endpoint(text, LispPorts.Control);

    private sealed class SiteBuilder(string name, int line, string source)
    {
        private readonly List<SiteKey> _keys = [];
        private readonly List<SitePrefix> _prefixes = [];
        private bool _proxyReply;
        private string? _description;

        public void Apply(ConfigLine t)
        {
            switch (t[0])
            {
                case "key":
                    if (t.Count != 4) throw t.Error($"expected 'key KEY-ID sha1|sha256 SECRET' (SECRET as \"text\" or hex:...)");
                    byte keyId = (byte)ConfigReader.Number(t[1], 0, 255, "key-id");
                    var alg = SiteKey.AlgorithmNamed(t[2]) ?? throw t.Error($"algorithm '{t[2]}' is not sha1 or sha256");
                    byte[] secret = t[3].StartsWith("hex:", StringComparison.Ordinal) ? FromHex(t[3][4..], t) : Encoding.UTF8.GetBytes(t[3]);
                    if (secret.Length == 0) throw t.Error($"the secret is empty");
                    if (_keys.Any(k => k.KeyId == keyId)) throw t.Error($"key-id {keyId} appears twice in site '{name}'");
                    _keys.Add(new SiteKey(keyId, alg, secret));
                    break;
                case "eid-prefix":
                    if (t.Count is < 3 or > 4 || (t.Count == 4 && t[3] != "accept-more-specifics"))
                        throw t.Error($"expected 'eid-prefix IID PREFIX [accept-more-specifics]'");
                    uint iid = (uint)ConfigReader.Number(t[1], 0, 0xFFFFFF, "Instance ID");
                    var (family, prefix, length) = EidPrefix.Parse(t[2], "eid-prefix");
                    _prefixes.Add(new SitePrefix(iid, family, prefix, length, t.Count == 4));
                    break;
                case "proxy-reply":
                    t.Expect(1, "proxy-reply");
                    _proxyReply = true;
                    break;
                case "description":
                    t.Expect(2, "description \"TEXT\"");
                    _description = t[1];
                    break;
                default:
                    throw t.Error($"unknown site setting '{t[0]}' (expected key, eid-prefix, proxy-reply or description)");
            }
        }

        private static byte[] FromHex(string hex, ConfigLine t)
        {
            try { return Convert.FromHexString(hex); }
            catch (FormatException) { throw t.Error($"'hex:{hex}' is not an even number of hex digits"); }
        }

        public SiteConfig Build()
        {
            if (_keys.Count == 0) throw new ConfigException($"{source} line {line}: site '{name}' has no key: its ETRs could not authenticate");
            if (_prefixes.Count == 0) throw new ConfigException($"{source} line {line}: site '{name}' has no eid-prefix: it could register nothing");
            return new SiteConfig(name, _keys, _prefixes, _proxyReply, _description);
        }
    }
}
