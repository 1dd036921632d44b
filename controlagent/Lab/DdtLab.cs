using System.Diagnostics;
using System.Text.Json.Nodes;

namespace FastXtr.Lab;

/// <summary>One process of the DDT lab: its role name (also its namespace's suffix), underlay address and job.</summary>
public sealed record DdtRole(string Name, string Address, string What, bool IsXtr);

/// <summary>One agent of the DDT lab, attached to an xTR through its API.</summary>
public sealed record DdtAgent(string Name, string Eid, uint InstanceId, string Xtr, string? Attributes);

/// <summary>
/// <c>fastxtr lab ddt up|down|stop|start</c>: a LISP-DDT mapping system (RFC 8111) in network namespaces, one process
/// per namespace on one underlay bridge (192.0.2.0/24), every name derived from one prefix:
/// <code>
///   root  192.0.2.11  DDT root: IID 1000 10.0.0.0/8 and IID 2000 10.0.0.0/8; delegates [1000]10.1.0.0/16 to msa,
///                     [1000]10.2.0.0/16 to msb1 and msb2, [2000]10.1.0.0/16 to msc; the rest of each /8 is a hole
///   msa   192.0.2.12  DDT Map-Server of site "a"   ([1000]10.1.0.0/16)
///   msb1  192.0.2.13  DDT Map-Server of site "b"   ([1000]10.2.0.0/16), peer of msb2
///   msb2  192.0.2.14  DDT Map-Server of site "b",  peer of msb1
///   msc   192.0.2.15  DDT Map-Server of site "c"   ([2000]10.1.0.0/16)
///   mr1   192.0.2.16  DDT Map-Resolver seeded with the root
///   mr2   192.0.2.17  DDT Map-Resolver seeded with the root
///   x1..x4 192.0.2.1-4 xTRs (fastxtr dataplane + agent): x1 site a, x2 and x3 site b (registering with msb1 and msb2),
///                     x4 site c; each resolves through mr1, then mr2
/// </code>
/// Agents (EIDs on the xTR's TUN, attached through the agent API): a 10.1.0.1 on x1; b 10.2.0.1 on x2 (the one that
/// moves); inf2 10.2.0.9 on x2 (no GPU) and inf3 10.2.0.9 on x3 (GPU), one EID with two contexts; t1 [2000]10.1.0.1
/// on x4 (the same address as a, another agent group). Every Map-Server proxy-replies, so a constrained request gets
/// the locators whose context fits (CONTEXT-EXTENSION.md §3) from whichever Map-Server of the hierarchy answers.
/// </summary>
public sealed class DdtLab : IDisposable
{
    public const string SecretA = "site-a-secret", SecretB = "site-b-secret", SecretC = "site-c-secret";

    public static readonly DdtRole[] Roles =
    [
        new("root", "192.0.2.11", "DDT root", false),
        new("msa", "192.0.2.12", "Map-Server, site a [1000]10.1.0.0/16", false),
        new("msb1", "192.0.2.13", "Map-Server, site b [1000]10.2.0.0/16 (peer of msb2)", false),
        new("msb2", "192.0.2.14", "Map-Server, site b [1000]10.2.0.0/16 (peer of msb1)", false),
        new("msc", "192.0.2.15", "Map-Server, site c [2000]10.1.0.0/16", false),
        new("mr1", "192.0.2.16", "DDT Map-Resolver", false),
        new("mr2", "192.0.2.17", "DDT Map-Resolver", false),
        new("x1", "192.0.2.1", "xTR of site a (IID 1000)", true),
        new("x2", "192.0.2.2", "xTR of site b (IID 1000)", true),
        new("x3", "192.0.2.3", "xTR of site b (IID 1000)", true),
        new("x4", "192.0.2.4", "xTR of site c (IID 2000)", true),
    ];

    public static readonly DdtAgent[] Agents =
    [
        new("a", "10.1.0.1", 1000, "x1", null),
        new("b", "10.2.0.1", 1000, "x2", null),
        new("inf2", "10.2.0.9", 1000, "x2", """{"hardware":[],"latency":"medium","state":"ready"}"""),
        new("inf3", "10.2.0.9", 1000, "x3", """{"hardware":["gpu"],"latency":"low","state":"ready"}"""),
        new("t1", "10.1.0.1", 2000, "x4", null),
    ];

    private readonly TextWriter _out;
    private readonly string _exe;
    private readonly List<Process> _processes = [];

    public string Prefix { get; }
    public string OutDir { get; }

    public DdtLab(string prefix, string outDir, TextWriter output)
    {
        Prefix = prefix;
        OutDir = Path.GetFullPath(outDir);
        _out = output;
        _exe = Environment.ProcessPath ?? throw new LabException("cannot tell where the fastxtr executable is");
    }

    public static DdtRole Role(string name) =>
        Roles.FirstOrDefault(r => r.Name == name) ?? throw new LabException($"no role '{name}' in the DDT lab (roles: {string.Join(", ", Roles.Select(r => r.Name))})");

    public string Underlay => $"{Prefix}-ul";
    public string Namespace(string role) => $"{Prefix}-{role}";
    public string Shm(string xtr) => $"{Prefix}-{xtr}";
    public string ApiSocket(string xtr) => $"/run/fastxtr/{Prefix}-{xtr}.sock";
    public string ControlSocket(string role) => $"/run/fastxtr/{Prefix}-{role}.sock";
    public string LogDir => Path.Combine(OutDir, "logs");
    public string Config(string role) => Path.Combine(OutDir, role + ".conf");
    public static uint InstanceIdOf(string xtr) => xtr == "x4" ? 2000u : 1000u;
    public static string Tun(string xtr) => $"lisp{InstanceIdOf(xtr)}";

    public IEnumerable<string> AllNamespaces => new[] { Underlay }.Concat(Roles.Select(r => Namespace(r.Name)));

    private void Say(string text) => _out.WriteLine($"fastxtr lab ddt: {text}");

    public void Up()
    {
        LabRunner.CheckPrerequisites();
        Down(Prefix, _out, quiet: true);
        Directory.CreateDirectory(LogDir);
        foreach (var f in Directory.GetFiles(LogDir)) File.Delete(f);
        foreach (var ns in AllNamespaces) Shell.Must($"ip netns add {ns} && ip -n {ns} link set lo up");
        Shell.Must($"ip -n {Underlay} link add br0 type bridge && ip -n {Underlay} link set br0 up");
        foreach (var r in Roles)
        {
            string ns = Namespace(r.Name);
            Shell.Must($"ip -n {Underlay} link add u-{r.Name} type veth peer name ul0 netns {ns}");
            Shell.Must($"ip -n {Underlay} link set u-{r.Name} master br0 up");
            Shell.Must($"ip -n {ns} addr add {r.Address}/24 dev ul0 && ip -n {ns} link set ul0 up");
        }
        WriteConfigs();
        foreach (var r in Roles.Where(r => !r.IsXtr)) Start(r.Name);
        foreach (var r in Roles.Where(r => r.IsXtr)) Start(r.Name);
        foreach (var a in Agents) Attach(a, a.Xtr);
        // Up means every agent registered by its xTR with every Map-Server of its site (inf2 and inf3 share an EID
        // prefix: each xTR's registration of it counts).
        foreach (var ms in MapServers)
            WaitFor(() => HasEveryAgent(ms), $"every agent of {ms}'s site registered there (see {LogDir}/x*-agent.log)", 20_000);
        Say($"up: a DDT root, 4 Map-Servers, 2 Map-Resolvers and 4 xTRs in {AllNamespaces.Count()} namespaces with prefix '{Prefix}'; configurations and logs in {OutDir}");
    }

    private void WriteConfigs()
    {
        string Ms(string role) => Role(role).Address;
        File.WriteAllText(Config("root"), $"""
            # The DDT root: authoritative for 10.0.0.0/8 in both agent groups; delegates three /16s to DDT Map-Servers.
            # Everything else under 10.0.0.0/8 is a DELEGATION-HOLE; other space is NOT-AUTHORITATIVE.
            listen {Ms("root")}:4342
            control-socket {ControlSocket("root")}
            ddt-authority 1000 10.0.0.0/8
            ddt-authority 2000 10.0.0.0/8
            ddt-delegate 1000 10.1.0.0/16 map-server {Ms("msa")}
            ddt-delegate 1000 10.2.0.0/16 map-server {Ms("msb1")} {Ms("msb2")}
            ddt-delegate 2000 10.1.0.0/16 map-server {Ms("msc")}
            """);
        void MapServer(string role, string site, string secret, string iidPrefix, string? peer) => File.WriteAllText(Config(role), $"""
            # DDT Map-Server of site {site}: answers the resolvers' DDT requests with MS-ACK (and the Map-Reply) or MS-NOT-REGISTERED.
            listen {Ms(role)}:4342
            control-socket {ControlSocket(role)}
            registration-timeout 30
            {(peer is null ? "# no peer: its referrals carry the I bit (incomplete)" : $"ddt-map-server-peer {Ms(peer)}")}
            site {site}
              key 0 sha256 "{secret}"
              eid-prefix {iidPrefix} accept-more-specifics
              proxy-reply
            """);
        MapServer("msa", "a", SecretA, "1000 10.1.0.0/16", null);
        MapServer("msb1", "b", SecretB, "1000 10.2.0.0/16", "msb2");
        MapServer("msb2", "b", SecretB, "1000 10.2.0.0/16", "msb1");
        MapServer("msc", "c", SecretC, "2000 10.1.0.0/16", null);
        foreach (var mr in new[] { "mr1", "mr2" })
            File.WriteAllText(Config(mr), $"""
                # A DDT Map-Resolver: no sites; every request is resolved through the tree from the root.
                listen {Ms(mr)}:4342
                control-socket {ControlSocket(mr)}
                ddt-root {Ms("root")}
                # The lab's underlay answers in microseconds: a dead Map-Server is passed over after 300 ms (default 500).
                ddt-request-timeout 300
                """);
        foreach (var (x, site, secret, servers) in new[]
                 {
                     ("x1", "a", SecretA, new[] { "msa" }), ("x2", "b", SecretB, new[] { "msb1", "msb2" }),
                     ("x3", "b", SecretB, new[] { "msb1", "msb2" }), ("x4", "c", SecretC, new[] { "msc" }),
                 })
        {
            File.WriteAllText(Config(x), $"""
                # xTR {x} of site {site}: registers its attached agents with {string.Join(" and ", servers)}, resolves through mr1, then mr2.
                rloc-addr {Role(x).Address}
                shm {Shm(x)}
                api-socket {ApiSocket(x)}
                {string.Join("\n", servers.Select(s => $"map-server {Ms(s)} 0 sha256 \"{secret}\""))}
                map-resolver {Ms("mr1")}
                map-resolver {Ms("mr2")}
                register-interval 5
                rloc-probe-interval 5
                site-id {x[1..]}
                """);
        }
    }

    /// <summary>(Re)starts a role's process(es): a mapping server, or an xTR's data plane and agent.</summary>
    public void Start(string role)
    {
        var r = Role(role);
        string ns = Namespace(role);
        if (!r.IsXtr)
        {
            Spawn(ns, role, $"mapserver --config {Config(role)}");
            WaitFor(() => Status(ControlSocket(role)) is not null, $"{role}'s control socket (see {LogDir}/{role}.log)");
            return;
        }
        string tun = Tun(role);
        Spawn(ns, $"{role}-dataplane", $"dataplane --rloc-addr {r.Address} --instance {InstanceIdOf(role)}={tun} --shm {Shm(role)} --workers 1");
        WaitFor(() => Shell.Sh($"ip -n {ns} link show {tun}").Code == 0, $"{role}'s TUN (see {LogDir}/{role}-dataplane.log)");
        Shell.Must($"ip -n {ns} link set {tun} up && ip -n {ns} route replace 10.0.0.0/8 dev {tun}");
        Spawn(ns, $"{role}-agent", $"agent --config {Config(role)}");
        WaitFor(() => Status(ApiSocket(role)) is not null, $"{role}'s agent API (see {LogDir}/{role}-agent.log)");
    }

    /// <summary>Stops a role's process(es) with SIGKILL, as a crash or a pulled cable would (nothing is withdrawn).</summary>
    public void Stop(string role)
    {
        Role(role);
        string ns = Namespace(role);
        Shell.Sh($"pids=$(ip netns pids {ns}); [ -n \"$pids\" ] && kill -KILL $pids; true");
        WaitFor(() => Shell.Sh($"ip netns pids {ns}").Out.Trim().Length == 0, $"{role}'s processes to exit");
        if (File.Exists(ControlSocket(role))) File.Delete(ControlSocket(role));
    }

    /// <summary>Attaches an agent at <paramref name="xtr"/>: its EID on the xTR's TUN, then POST /v1/agents.</summary>
    public void Attach(DdtAgent a, string xtr)
    {
        Shell.Must($"ip -n {Namespace(xtr)} addr replace {a.Eid}/32 dev {Tun(xtr)}");
        var body = new JsonObject { ["name"] = a.Name, ["iid"] = a.InstanceId, ["eid"] = a.Eid };
        if (a.Attributes is not null) body["attributes"] = JsonNode.Parse(a.Attributes);
        var (status, reply) = FastXtr.Common.Api.UnixSocketClient.Send(ApiSocket(xtr), HttpMethod.Post, "/v1/agents", body.ToJsonString());
        if (status != 201) throw new LabException($"attaching {a.Name} at {xtr} failed ({status}): {reply?.ToJsonString()}");
    }

    /// <summary>Detaches an agent from <paramref name="xtr"/> (DELETE /v1/agents/IID/EID) and removes its EID there.</summary>
    public void Detach(DdtAgent a, string xtr)
    {
        var (status, reply) = FastXtr.Common.Api.UnixSocketClient.Send(ApiSocket(xtr), HttpMethod.Delete, $"/v1/agents/{a.InstanceId}/{a.Eid}");
        if (status != 200) throw new LabException($"detaching {a.Name} from {xtr} failed ({status}): {reply?.ToJsonString()}");
        Shell.Sh($"ip -n {Namespace(xtr)} addr del {a.Eid}/32 dev {Tun(xtr)}");
    }

    /// <summary>
    /// Moves an agent to <paramref name="toXtr"/>, make-before-break: attached there first, then detached from the
    /// xTR that has it. Returns where it was.
    /// </summary>
    public string Move(string agentName, string toXtr)
    {
        var a = Agents.FirstOrDefault(x => x.Name == agentName) ?? throw new LabException($"no agent '{agentName}' (agents: {string.Join(", ", Agents.Select(x => x.Name))})");
        if (!Role(toXtr).IsXtr) throw new LabException($"{toXtr} is not an xTR");
        if (InstanceIdOf(toXtr) != a.InstanceId) throw new LabException($"{toXtr} does not serve Instance ID {a.InstanceId}");
        string? from = Roles.Where(r => r.IsXtr && r.Name != toXtr).Select(r => r.Name).FirstOrDefault(x =>
            FastXtr.Common.Api.UnixSocketClient.Send(ApiSocket(x), HttpMethod.Get, "/v1/agents").Body?.AsArray().Any(n => n?["name"]?.GetValue<string>() == a.Name) == true);
        if (from is null) throw new LabException($"{a.Name} is attached nowhere but {toXtr} (or there already)");
        Attach(a, toXtr);
        Detach(a, from);
        return from;
    }

    /// <summary>GET /v1/status on a control or API socket, or null while nothing answers there.</summary>
    public static JsonNode? Status(string socket) => FastXtr.Common.Api.UnixSocketClient.Send(socket, HttpMethod.Get, "/v1/status").Body;

    public int Registrations(string mapServer) => Status(ControlSocket(mapServer))?["registrations"]?.GetValue<int>() ?? -1;

    /// <summary>The DDT Map-Servers, each with the xTRs of its site.</summary>
    public static readonly (string MapServer, string[] Xtrs)[] Sites = [("msa", ["x1"]), ("msb1", ["x2", "x3"]), ("msb2", ["x2", "x3"]), ("msc", ["x4"])];

    public static IEnumerable<string> MapServers => Sites.Select(s => s.MapServer);

    /// <summary>
    /// Whether a Map-Server holds every agent of its site, each EID registered by as many of the site's xTRs as there
    /// are agents with it (inf2's and inf3's 10.2.0.9 by two; an agent moved since still counts once): what a restarted
    /// Map-Server must have again before it answers as it did.
    /// </summary>
    public bool HasEveryAgent(string mapServer)
    {
        var xtrs = Sites.Single(s => s.MapServer == mapServer).Xtrs;
        if (FastXtr.Common.Api.UnixSocketClient.Send(ControlSocket(mapServer), HttpMethod.Get, "/v1/registrations").Body is not JsonArray registrations) return false;
        return Agents.Where(a => xtrs.Contains(a.Xtr)).GroupBy(a => (a.InstanceId, a.Eid)).All(g => registrations.Count(r =>
            r!["iid"]?.GetValue<uint>() == g.Key.InstanceId && r["eid"]?.GetValue<string>() == $"{g.Key.Eid}/32"
            && (r["rlocs"]?.AsArray().Any(l => xtrs.Any(x => Role(x).Address == l!["address"]?.GetValue<string>())) ?? false)) >= g.Count());
    }

    private void Spawn(string ns, string logName, string arguments) =>
        _processes.Add(LabRunner.StartLogged(_exe, ns, Path.Combine(LogDir, logName + ".log"), arguments));

    private static void WaitFor(Func<bool> condition, string what, int timeoutMs = 15_000) => LabRunner.WaitFor(condition, what, timeoutMs);

    /// <summary>What to try once it is up, printed by <c>fastxtr lab ddt up</c>.</summary>
    public string Guide()
    {
        var w = new StringWriter();
        w.WriteLine("roles (namespace = PREFIX-ROLE, logs in " + LogDir + "):");
        foreach (var r in Roles) w.WriteLine($"  {r.Name,-5} {r.Address,-11} {r.What}");
        w.WriteLine("agents: " + string.Join(", ", Agents.Select(a => $"{a.Name} [{a.InstanceId}]{a.Eid} on {a.Xtr}")));
        w.WriteLine("try:");
        w.WriteLine($"  ip netns exec {Namespace("x1")} ping -I 10.1.0.1 10.2.0.1                         # a -> b, resolved through mr1 and the tree");
        w.WriteLine($"  ip netns exec {Namespace("x1")} fastxtr lig 10.2.0.1 --iid 1000 --map-resolver 192.0.2.11 --trace   # walk the tree from the root");
        w.WriteLine($"  ip netns exec {Namespace("x1")} fastxtr lig 10.2.0.9 --iid 1000 --map-resolver 192.0.2.16 --constraints '{{\"agent-constraints\":{{\"hardware\":[\"gpu\"]}}}}'");
        w.WriteLine($"  fastxtr show referral-cache --control-socket {ControlSocket("mr1")}");
        w.WriteLine($"  fastxtr show registrations --control-socket {ControlSocket("msb2")}");
        w.WriteLine($"  fastxtr lab ddt stop msb1 --prefix {Prefix}     # kill a Map-Server (or mr1, or an xTR); 'start' brings it back");
        w.WriteLine($"  fastxtr lab ddt down --prefix {Prefix}");
        return w.ToString();
    }

    /// <summary>The processes this object started go with the namespaces when the lab is taken down; here only the handles.</summary>
    public void Dispose()
    {
        foreach (var p in _processes) p.Dispose();
    }

    /// <summary>Removes every namespace, process, region and socket of a DDT lab with this prefix.</summary>
    public static int Down(string prefix, TextWriter output, bool quiet)
    {
        var lab = new DdtLab(prefix, ".", output);
        int removed = lab.AllNamespaces.Count(LabRunner.RemoveNamespace);
        foreach (var r in Roles)
        {
            if (r.IsXtr)
            {
                NativeInterop.SharedMemoryMapping.Unlink(lab.Shm(r.Name));
                if (File.Exists(lab.ApiSocket(r.Name))) File.Delete(lab.ApiSocket(r.Name));
            }
            else if (File.Exists(lab.ControlSocket(r.Name))) File.Delete(lab.ControlSocket(r.Name));
        }
        if (!quiet) output.WriteLine($"fastxtr lab ddt down: removed {removed} namespace(s) of DDT lab '{prefix}' and its shared memory");
        return removed;
    }
}
