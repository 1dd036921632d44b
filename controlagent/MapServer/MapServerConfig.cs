using System.Globalization;
using System.Net;
using System.Text;
using FastXtr.Lisp.Messages;

namespace FastXtr.MapServer;


/// <summary>An EID prefix a site may register, in one Instance ID.</summary>
public sealed record SitePrefix(uint InstanceId, EidFamily Family, UInt128 Prefix, int Length, bool AcceptMoreSpecifics)
{
    /// <summary>Whether a registered prefix lies inside this one (equal, or more specific when allowed).</summary>
    public bool Covers(uint iid, EidFamily family, UInt128 prefix, int length) =>
        iid == InstanceId && family == Family && length >= Length && (length == Length || AcceptMoreSpecifics)
        && EidPrefix.Mask(prefix, family, Length) == Prefix;

    public bool Contains(uint iid, EidFamily family, UInt128 address) =>
        iid == InstanceId && family == Family && EidPrefix.Mask(address, family, Length) == Prefix;

    public override string ToString() => $"[{InstanceId}]{EidPrefix.Format(Family, Prefix)}/{Length}{(AcceptMoreSpecifics ? " accept-more-specifics" : "")}";
}

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
    public List<SiteConfig> Sites { get; } = [];

    public static MapServerConfig Load(string path)
    {
        if (!File.Exists(path)) throw new ConfigException($"{path}: no such configuration file");
        return Parse(File.ReadAllLines(path), path);
    }

    public static MapServerConfig Parse(IReadOnlyList<string> lines, string source = "configuration")
    {
        var config = new MapServerConfig();
        SiteBuilder? site = null;
        for (int n = 0; n < lines.Count; n++)
        {
            string raw = lines[n];
            var tokens = ConfigText.Tokenize(raw, source, n + 1);
            if (tokens.Count == 0) continue;
            bool indented = raw.Length > 0 && char.IsWhiteSpace(raw[0]);
            string Where() => $"{source} line {n + 1}";
            try
            {
                if (indented && site is not null) site.Apply(tokens, Where);
                else
                {
                    if (indented) throw new ConfigException($"{Where()}: '{tokens[0]}' is indented but no 'site NAME' line precedes it");
                    if (site is not null) config.Sites.Add(site.Build(Where));
                    site = null;
                    if (tokens[0] == "site")
                    {
                        if (tokens.Count != 2) throw new ConfigException($"{Where()}: expected 'site NAME'");
                        if (config.Sites.Any(s => s.Name == tokens[1])) throw new ConfigException($"{Where()}: site '{tokens[1]}' is defined twice");
                        site = new SiteBuilder(tokens[1], n + 1, source);
                    }
                    else config.ApplyGlobal(tokens, Where);
                }
            }
            catch (FormatException e)
            {
                throw new ConfigException($"{Where()}: {e.Message}");
            }
        }
        if (site is not null) config.Sites.Add(site.Build(() => $"{source} line {lines.Count}"));
        if (config.Listen.Count == 0) config.Listen.Add(new IPEndPoint(IPAddress.Any, LispPorts.Control));
        config.CheckOverlaps(source);
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

    private void ApplyGlobal(List<string> t, Func<string> where)
    {
        switch (t[0])
        {
            case "listen":
                Expect(t, 2, "listen ADDRESS[:PORT]", where);
                Listen.Add(ParseEndpoint(t[1]));
                break;
            case "registration-timeout":
                Expect(t, 2, "registration-timeout SECONDS", where);
                RegistrationTimeout = TimeSpan.FromSeconds(Number(t[1], 1, 86400, "registration-timeout"));
                break;
            case "map-request-rate":
                Expect(t, 3, "map-request-rate PER-SECOND BURST", where);
                MapRequestRate = Number(t[1], 0.1, 1e7, "rate");
                MapRequestBurst = Number(t[2], 1, 1e8, "burst");
                break;
            case "map-register-rate":
                Expect(t, 3, "map-register-rate PER-SECOND BURST", where);
                MapRegisterRate = Number(t[1], 0.1, 1e7, "rate");
                MapRegisterBurst = Number(t[2], 1, 1e8, "burst");
                break;
            case "rate-limit-sources":
                Expect(t, 2, "rate-limit-sources COUNT", where);
                RateLimitSources = (int)Number(t[1], 16, 1 << 24, "rate-limit-sources");
                break;
            case "negative-ttl":
                Expect(t, 2, "negative-ttl MINUTES", where);
                NegativeTtlMinutes = (uint)Number(t[1], 1, 1440, "negative-ttl");
                break;
            case "control-socket":
                Expect(t, 2, "control-socket PATH", where);
                ControlSocket = t[1];
                break;
            default:
                throw new ConfigException($"{where()}: unknown setting '{t[0]}' (expected listen, registration-timeout, map-request-rate, map-register-rate, rate-limit-sources, negative-ttl, control-socket or site)");
        }
    }

    internal static void Expect(List<string> t, int count, string form, Func<string> where)
    {
        if (t.Count != count) throw new ConfigException($"{where()}: expected '{form}'");
    }

    internal static double Number(string s, double min, double max, string what)
    {
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || v < min || v > max)
            throw new FormatException($"{what} '{s}' must be a number from {min.ToString(CultureInfo.InvariantCulture)} to {max.ToString(CultureInfo.InvariantCulture)}");
        return v;
    }

    public static IPEndPoint ParseEndpoint(string text) => ConfigText.ParseEndpoint(text, LispPorts.Control);

    private sealed class SiteBuilder(string name, int line, string source)
    {
        private readonly List<SiteKey> _keys = [];
        private readonly List<SitePrefix> _prefixes = [];
        private bool _proxyReply;
        private string? _description;

        public void Apply(List<string> t, Func<string> where)
        {
            switch (t[0])
            {
                case "key":
                    if (t.Count != 4) throw new ConfigException($"{where()}: expected 'key KEY-ID sha1|sha256 SECRET' (SECRET as \"text\" or hex:...)");
                    byte keyId = (byte)Number(t[1], 0, 255, "key-id");
                    var alg = t[2] switch
                    {
                        "sha1" or "hmac-sha1" => AuthenticationAlgorithm.HmacSha1,
                        "sha256" or "hmac-sha256" => AuthenticationAlgorithm.HmacSha256,
                        _ => throw new ConfigException($"{where()}: algorithm '{t[2]}' is not sha1 or sha256"),
                    };
                    byte[] secret = t[3].StartsWith("hex:", StringComparison.Ordinal) ? FromHex(t[3][4..], where) : Encoding.UTF8.GetBytes(t[3]);
                    if (secret.Length == 0) throw new ConfigException($"{where()}: the secret is empty");
                    if (_keys.Any(k => k.KeyId == keyId)) throw new ConfigException($"{where()}: key-id {keyId} appears twice in site '{name}'");
                    _keys.Add(new SiteKey(keyId, alg, secret));
                    break;
                case "eid-prefix":
                    if (t.Count is < 3 or > 4 || (t.Count == 4 && t[3] != "accept-more-specifics"))
                        throw new ConfigException($"{where()}: expected 'eid-prefix IID PREFIX [accept-more-specifics]'");
                    uint iid = (uint)Number(t[1], 0, 0xFFFFFF, "Instance ID");
                    var (family, prefix, length) = EidPrefix.Parse(t[2], "eid-prefix");
                    _prefixes.Add(new SitePrefix(iid, family, prefix, length, t.Count == 4));
                    break;
                case "proxy-reply":
                    Expect(t, 1, "proxy-reply", where);
                    _proxyReply = true;
                    break;
                case "description":
                    Expect(t, 2, "description \"TEXT\"", where);
                    _description = t[1];
                    break;
                default:
                    throw new ConfigException($"{where()}: unknown site setting '{t[0]}' (expected key, eid-prefix, proxy-reply or description)");
            }
        }

        private static byte[] FromHex(string hex, Func<string> where)
        {
            try { return Convert.FromHexString(hex); }
            catch (FormatException) { throw new ConfigException($"{where()}: 'hex:{hex}' is not an even number of hex digits"); }
        }

        public SiteConfig Build(Func<string> where)
        {
            if (_keys.Count == 0) throw new ConfigException($"{source} line {line}: site '{name}' has no key: its ETRs could not authenticate");
            if (_prefixes.Count == 0) throw new ConfigException($"{source} line {line}: site '{name}' has no eid-prefix: it could register nothing");
            return new SiteConfig(name, _keys, _prefixes, _proxyReply, _description);
        }
    }
}
