using System.Diagnostics;
using System.Text.Json.Nodes;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.EndToEnd;

/// <summary>
/// Reload without loss, with real processes in namespaces: a Map-Server with two sites (xTR A's and xTR B's) and both
/// xTRs' data planes and agents; traffic makes each resolve and subscribe to the other. The Map-Server is reloaded
/// (SIGHUP) with a third site added and B's key changed, and B's agent with the new key: A's registration is never
/// touched, B re-registers with its new key, the subscriptions stay and a publication still arrives; a broken file
/// is refused and the running configuration kept.
/// </summary>
[TestFixture]
[Category("netns")]
[NonParallelizable]
public class ReloadNamespaceTests
{
    private readonly List<Process> _processes = [];
    private string _tag = "";
    private string[] _namespaces = [];
    private string _dir = "";
    // The Map-Server ("ms") and the agents ("a", "b") among _processes, for their signals.
    private readonly Dictionary<string, Process> _roles = [];

    private string Ns(string role) => $"fxt{role}-{_tag}";

    private static string MapServerConf(string bKey, string extra = "") =>
        $"site gateway-a\n  key 0 sha256 \"a-secret\"\n  eid-prefix 1000 10.1.0.0/16 accept-more-specifics\n  proxy-reply\n" +
        $"site gateway-b\n  key 0 sha256 \"{bKey}\"\n  eid-prefix 1000 10.2.0.0/16 accept-more-specifics\n  proxy-reply\n{extra}";

    private static string AgentConf(string x, string rloc, string shm, string prefix, string key, string extra = "") =>
        $"rloc-addr {rloc}\nshm {shm}\nmap-server 192.0.2.10 0 sha256 \"{key}\"\nmap-resolver 192.0.2.10\ndatabase-mapping 1000 {prefix} {rloc},1,100 {extra}\nrloc-probe-interval 0\n" +
        // No periodic refresh during the test: every Map-Register it sees is one a reload caused.
        "register-interval 3600\n";

    [OneTimeSetUp]
    public void Start()
    {
        Shell.RequireRoot("needs root for network namespaces and TUN");
        TwoXtrLab.SweepLeftovers();
        _tag = $"{Environment.ProcessId}-{Random.Shared.Next(0x10000):x4}";
        _namespaces = [Ns("a"), Ns("b"), Ns("c")]; // c hosts the Map-Server
        _dir = Path.Combine(Path.GetTempPath(), $"fxtest-reload-{_tag}");
        Directory.CreateDirectory(_dir);
        foreach (var ns in _namespaces) Shell.Must($"ip netns add {ns} && ip -n {ns} link set lo up");
        string t = _tag[^4..];
        Shell.Must($"ip -n {Ns("c")} link add br0 type bridge && ip -n {Ns("c")} link set br0 up && ip -n {Ns("c")} addr add 192.0.2.10/24 dev br0");
        foreach (var (x, address, i) in new[] { ("a", "192.0.2.1", 1), ("b", "192.0.2.2", 2) })
        {
            Shell.Must($"ip link add fxu{i}{t} netns {Ns(x)} type veth peer name fxp{i}{t} netns {Ns("c")}");
            Shell.Must($"ip -n {Ns("c")} link set fxp{i}{t} master br0 && ip -n {Ns("c")} link set fxp{i}{t} up");
            Shell.Must($"ip -n {Ns(x)} addr add {address}/24 dev fxu{i}{t} && ip -n {Ns(x)} link set fxu{i}{t} up");
        }
        File.WriteAllText(Path.Combine(_dir, "ms.conf"), MapServerConf("b-secret"));
        _roles["ms"] = Launch(Ns("c"), "mapserver", "--config", Path.Combine(_dir, "ms.conf"), "--listen", "192.0.2.10:4342", "--control-socket", $"{_dir}/ms.sock", "--metrics", "127.0.0.1:9342");
        foreach (var (x, rloc, eid, prefix, peer, key) in new[]
                 {
                     ("a", "192.0.2.1", "10.1.0.1", "10.1.0.0/24", "10.2.0.0/24", "a-secret"), ("b", "192.0.2.2", "10.2.0.1", "10.2.0.0/24", "10.1.0.0/16", "b-secret"),
                 })
        {
            string shm = $"fxtest-rl{x}-{_tag}";
            Launch(Ns(x), "dataplane", "--rloc-addr", rloc, "--instance", "1000=fx1000", "--shm", shm, "--map-cache-entries", "1024");
            TwoXtrLab.WaitFor(() => Shell.Sh($"ip -n {Ns(x)} link show fx1000").Code == 0, $"the TUN of {x}");
            Shell.Must($"ip -n {Ns(x)} addr add {eid}/32 dev fx1000 && ip -n {Ns(x)} link set fx1000 up && ip -n {Ns(x)} route add {peer} dev fx1000");
            File.WriteAllText(Path.Combine(_dir, $"{x}.conf"), AgentConf(x, rloc, shm, prefix, key));
            _roles[x] = Launch(Ns(x), "agent", "--config", Path.Combine(_dir, $"{x}.conf"), "--api-socket", $"{_dir}/{x}.sock", "--metrics", "127.0.0.1:9343");
        }
        TwoXtrLab.WaitFor(() => File.Exists($"{_dir}/ms.sock") && Registrations().Count == 2, "both agents to register", 20_000);
        // Each resolves (and subscribes to) the other.
        var ping = Shell.Sh($"ip netns exec {Ns("b")} ping -n -c 10 -i 0.2 -W 1 -I 10.2.0.1 10.1.0.1");
        Assert.That(ping.Out, Does.Match(@"[1-9]\d* received"), ping.All);
        TwoXtrLab.WaitFor(() => MapServer("subscriptions") == 2, "A and B to subscribe to each other", 10_000);
    }

    private Process Launch(string ns, params string[] args)
    {
        var p = Shell.StartInNamespace(ns, args);
        _processes.Add(p);
        return p;
    }

    [OneTimeTearDown]
    public void Stop()
    {
        foreach (var p in _processes)
        {
            try { if (!p.HasExited) { p.Kill(entireProcessTree: true); p.WaitForExit(5000); } }
            catch (InvalidOperationException) { }
            p.Dispose();
        }
        foreach (var ns in _namespaces) Shell.Run("ip", ["netns", "del", ns]);
        foreach (var x in new[] { "a", "b" }) FastXtr.NativeInterop.SharedMemoryMapping.Unlink($"fxtest-rl{x}-{_tag}");
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private static void Hup(Process p) => Shell.Must($"kill -HUP {p.Id}");

    private JsonArray Registrations() =>
        JsonNode.Parse(Shell.Must($"{Shell.FastxtrExe()} show registrations --json --control-socket {_dir}/ms.sock"))!.AsArray();

    private long MapServer(string counter) =>
        JsonNode.Parse(Shell.Must($"{Shell.FastxtrExe()} show mapserver --json --control-socket {_dir}/ms.sock"))![counter]!.GetValue<long>();

    private long Agent(string x, string counter) =>
        JsonNode.Parse(Shell.Must($"{Shell.FastxtrExe()} show agents --json --api-socket {_dir}/{x}.sock"))!["status"]!["counters"]![counter]!.GetValue<long>();

    /// <summary>A role's /metrics, scraped inside its namespace and read by the reference parser.</summary>
    private static Dictionary<string, double> Scrape(string ns, int port) =>
        PrometheusText.Parse(Shell.Must($"ip netns exec {ns} /usr/bin/python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics').read().decode())\""));

    /// <summary>
    /// The Map-Server's and an agent's metrics while their traffic runs: every counter their status shows lies
    /// between two scrapes taken around it, and the counters moved with the traffic.
    /// </summary>
    [Test]
    public void Metrics_OfTheMapServerAndTheAgents_MatchTheirStatus_AndMoveWithTheTraffic()
    {
        var msBefore = Scrape(Ns("c"), 9342);
        var agentBefore = Scrape(Ns("b"), 9343);
        var ping = Shell.Sh($"ip netns exec {Ns("b")} ping -n -c 5 -i 0.2 -W 1 -I 10.2.0.1 10.1.1.7");
        Assert.That(ping.Out, Does.Contain("5 packets transmitted"), ping.All);
        var msStatus = JsonNode.Parse(Shell.Must($"{Shell.FastxtrExe()} show mapserver --json --control-socket {_dir}/ms.sock"))!.AsObject();
        var agentStatus = JsonNode.Parse(Shell.Must($"{Shell.FastxtrExe()} show agents --json --api-socket {_dir}/b.sock"))!["status"]!["counters"]!.AsObject();
        var msAfter = Scrape(Ns("c"), 9342);
        var agentAfter = Scrape(Ns("b"), 9343);
        foreach (var c in Enum.GetValues<FastXtr.MapServer.MsCounter>().Where(c => c != FastXtr.MapServer.MsCounter.Count))
        {
            string name = FastXtr.Packets.CounterNames.Kebab(c.ToString()), series = $"fastxtr_mapserver_{name.Replace('-', '_')}_total";
            Assert.That(msStatus[name]!.GetValue<double>(), Is.InRange(msBefore[series], msAfter[series]), series);
        }
        foreach (var (name, value) in agentStatus)
        {
            string series = $"fastxtr_agent_{name.Replace('-', '_')}_total";
            Assert.That(value!.GetValue<double>(), Is.InRange(agentBefore[series], agentAfter[series]), series);
        }
        // 10.1.1.7 lies in site gateway-a but outside A's registered 10.1.0.0/24: B's miss is asked of the Map-Server,
        // which answers negatively.
        Assert.That(agentAfter["fastxtr_agent_map_requests_sent_total"], Is.GreaterThan(agentBefore["fastxtr_agent_map_requests_sent_total"]));
        Assert.That(msAfter["fastxtr_mapserver_map_requests_received_total"], Is.GreaterThan(msBefore["fastxtr_mapserver_map_requests_received_total"]));
        Assert.That(agentAfter["fastxtr_agent_map_request_duration_seconds_count"], Is.GreaterThan(agentBefore["fastxtr_agent_map_request_duration_seconds_count"]), "the latency histogram saw the answer");
        Assert.That(msAfter["fastxtr_mapserver_registrations"], Is.EqualTo(msStatus["registrations"]!.GetValue<double>()));
    }

    private JsonNode Registration(string site) => Registrations().Single(r => r!["site"]!.GetValue<string>() == site)!;

    [Test]
    public void MapServerAndAgentReload_KeepUntouchedRegistrationsAndSubscriptions_AndRefuseABrokenFile()
    {
        var aBefore = Registration("gateway-a");
        long registersFromA = Agent("a", "map-registers-sent");
        long bAcknowledged = Agent("b", "registrations-acknowledged");

        // The Map-Server: a third site, and B's key changed; then B's agent with the new key.
        File.WriteAllText(Path.Combine(_dir, "ms.conf"), MapServerConf("b-rotated", "site gateway-c\n  key 0 sha256 \"c-secret\"\n  eid-prefix 1000 10.3.0.0/16\n"));
        Hup(_roles["ms"]);
        TwoXtrLab.WaitFor(() => MapServer("config-reloads") == 1, "the Map-Server to reload");
        File.WriteAllText(Path.Combine(_dir, "b.conf"), AgentConf("b", "192.0.2.2", $"fxtest-rlb-{_tag}", "10.2.0.0/24", "b-rotated"));
        Hup(_roles["b"]);
        TwoXtrLab.WaitFor(() => Agent("b", "config-reloads") == 1 && Agent("b", "registrations-acknowledged") > bAcknowledged, "B to re-register with its new key", 10_000);

        var aAfter = Registration("gateway-a");
        Assert.That(aAfter["xtr_id"]!.GetValue<string>(), Is.EqualTo(aBefore["xtr_id"]!.GetValue<string>()));
        Assert.That(aAfter["age_s"]!.GetValue<int>(), Is.GreaterThanOrEqualTo(aBefore["age_s"]!.GetValue<int>()), "A's registration was never removed and made again");
        Assert.That(Agent("a", "map-registers-sent"), Is.EqualTo(registersFromA), "nothing changed for A: it sent nothing");
        Assert.That(MapServer("registrations-removed-by-reload"), Is.EqualTo(0));
        Assert.That(MapServer("register-authentication-failed"), Is.EqualTo(0), "B's agent signed with the new key");
        Assert.That(MapServer("subscriptions"), Is.EqualTo(2), "both subscriptions outlived the reload");

        // A publication still reaches B: A's mapping gains attributes (A's agent reloaded), B is told.
        long publications = Agent("b", "publications-applied");
        File.WriteAllText(Path.Combine(_dir, "a.conf"), AgentConf("a", "192.0.2.1", $"fxtest-rla-{_tag}", "10.1.0.0/24", "a-secret", "context {\"agent-context\":{\"hardware\":[\"gpu\"]}}"));
        Hup(_roles["a"]);
        TwoXtrLab.WaitFor(() => Agent("b", "publications-applied") > publications, "the Map-Server to publish A's change to B", 10_000);
        Assert.That(Registration("gateway-a")["rlocs"]![0]!["attributes"]!["hardware"]![0]!.GetValue<string>(), Is.EqualTo("gpu"));

        // A broken file: refused, and everything stays.
        File.WriteAllText(Path.Combine(_dir, "ms.conf"), MapServerConf("b-rotated", "site gateway-c\n  key 0 sha999 \"c-secret\"\n"));
        Hup(_roles["ms"]);
        TwoXtrLab.WaitFor(() => MapServer("config-reloads-refused") == 1, "the Map-Server to refuse the broken file");
        Assert.That(MapServer("config-reloads"), Is.EqualTo(1));
        Assert.That(Registrations().Count, Is.EqualTo(2));
        Assert.That(MapServer("subscriptions"), Is.EqualTo(2));
        Assert.That(_roles["ms"].HasExited, Is.False);
    }
}
