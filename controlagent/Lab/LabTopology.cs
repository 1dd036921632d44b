namespace FastXtr.Lab;

/// <summary>One demo agent: its namespace, EID, agent group, gateway and context.</summary>
public sealed record LabAgent(string Name, string Eid, uint InstanceId, int Gateway, string? Attributes, string? Constraints)
{
    public string Interface => "ve-" + Name.ToLowerInvariant();
}

/// <summary>
/// The lab's topology, every name derived from one prefix so that two labs never meet and
/// <c>fastxtr lab down</c> finds every leftover:
/// <code>
///   PREFIX-ul   underlay: bridge br0, 192.0.2.0/24
///   PREFIX-ms   Map-Server/Map-Resolver 192.0.2.10
///   PREFIX-gwN  gateway N (192.0.2.N): fastxtr dataplane + fastxtr agent, TUNs lisp1000 and lisp2000,
///               one routing table per Instance ID (policy rules by incoming interface)
///   PREFIX-NAME one namespace per demo agent, its EID on lo, linked to its gateway by a veth
/// </code>
/// With <see cref="Nat"/> (<c>fastxtr lab run --nat</c>) gateway 3 sits behind NAT: its RLOC is 10.200.0.2 on a link
/// to PREFIX-nat, which masquerades it as 192.0.2.3, and <c>fastxtr rtr</c> in PREFIX-rtr (192.0.2.20) carries its
/// traffic; the Map-Server offers that RTR, so the others reach gateway 3's agents at 192.0.2.20.
/// </summary>
public sealed class LabTopology
{
    public const string Secret = "lab-secret";
    public const string MapServerRloc = "192.0.2.10";
    public static readonly uint[] InstanceIds = [1000, 2000];

    public string Prefix { get; }
    public string OutDir { get; }

    public const string RtrRloc = "192.0.2.20";
    /// <summary>--nat: gateway 3's own (private) address, on its link to the NAT.</summary>
    public const string NatInsideRloc = "10.200.0.2";
    public const string NatInsideRouter = "10.200.0.1";

    public LabTopology(string prefix, string outDir, bool nat = false)
    {
        Prefix = prefix;
        OutDir = Path.GetFullPath(outDir);
        Nat = nat;
    }

    /// <summary>Gateway 3 behind NAT, reached through an RTR (<c>--nat</c>).</summary>
    public bool Nat { get; }

    /// <summary>
    /// Group "planners" (IID 1000): A on gateway 1 (requires a GPU), C on gateway 1 (no constraints), B on gateway 2
    /// (moves to 3); the inference service 10.1.0.9 behind gateway 2 (no GPU, medium latency) and gateway 3 (GPU, low
    /// latency). Group "tenants" (IID 2000) reuses A's and B's EIDs: T1 on gateway 3, T2 on gateway 2. Only the
    /// inference replicas carry attributes, so A's GPU constraint shapes its path to them and nothing else
    /// (CONTEXT-EXTENSION.md §3 filters registrations that have attributes).
    /// </summary>
    public IReadOnlyList<LabAgent> Agents { get; } =
    [
        new("A", "10.1.0.1", 1000, 1, null, """{"hardware":["gpu"]}"""),
        new("C", "10.1.0.3", 1000, 1, null, null),
        new("B", "10.1.0.2", 1000, 2, null, null),
        new("inf2", "10.1.0.9", 1000, 2, """{"hardware":[],"latency":"medium","state":"ready"}""", null),
        new("inf3", "10.1.0.9", 1000, 3, """{"hardware":["gpu"],"latency":"low","state":"ready"}""", null),
        new("T1", "10.1.0.1", 2000, 3, null, null),
        new("T2", "10.1.0.2", 2000, 2, null, null),
    ];

    public LabAgent Agent(string name) => Agents.Single(a => a.Name == name);

    public string Underlay => $"{Prefix}-ul";
    public string MapServer => $"{Prefix}-ms";
    public string Gateway(int n) => $"{Prefix}-gw{n}";
    public string Namespace(LabAgent a) => $"{Prefix}-{a.Name.ToLowerInvariant()}";
    public static string GatewayRloc(int n) => $"192.0.2.{n}";
    /// <summary>The address gateway <paramref name="n"/> has itself: its RLOC, or behind NAT its private address.</summary>
    public string OwnRloc(int n) => Nat && n == 3 ? NatInsideRloc : GatewayRloc(n);
    /// <summary>The locator the others send gateway <paramref name="n"/>'s agents' traffic to: its RLOC, or the RTR.</summary>
    public string Locator(int n) => Nat && n == 3 ? RtrRloc : GatewayRloc(n);
    public string NatRouter => $"{Prefix}-nat";
    public string RtrNamespace => $"{Prefix}-rtr";
    public string RtrShm => $"{Prefix}-rtr";
    public string RtrApiSocket => $"/run/fastxtr/{Prefix}-rtr.sock";
    public string Shm(int n) => $"{Prefix}-gw{n}";
    public string ApiSocket(int n) => $"/run/fastxtr/{Prefix}-gw{n}.sock";
    public string LogDir => Path.Combine(OutDir, "logs");
    public string ReportDir => Path.Combine(OutDir, "agents");
    public string Report(LabAgent a) => Path.Combine(ReportDir, a.Name + ".json");
    public string Pcap => Path.Combine(OutDir, "underlay.pcap");

    public IEnumerable<string> AllNamespaces =>
        new[] { Underlay, MapServer, Gateway(1), Gateway(2), Gateway(3), NatRouter, RtrNamespace }.Concat(Agents.Select(Namespace));
}
