using System.Diagnostics;
using FastXtr.Dataplane.Shared;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.EndToEnd;

/// <summary>
/// The whole chain with real processes in namespaces: a Map-Server/Map-Resolver, two xTRs each running
/// <c>fastxtr dataplane</c> and <c>fastxtr agent</c>, on one bridged underlay. No static map-cache entries: the
/// agents register their EID prefixes, the first packets miss, the agent resolves, the rest are forwarded.
/// </summary>
[TestFixture]
[Category("netns")]
[NonParallelizable]
public class AgentResolutionTests
{
    private readonly List<Process> _processes = [];
    private string _tag = "";
    private string[] _namespaces = [];
    private string _dir = "";

    private string Ns(string role) => $"fxt{role}-{_tag}";

    [OneTimeSetUp]
    public void Start()
    {
        if (!Shell.IsRoot) Assert.Ignore("needs root for network namespaces and TUN");
        TwoXtrLab.SweepLeftovers();
        _tag = $"{Environment.ProcessId}-{Random.Shared.Next(0x10000):x4}";
        _namespaces = [Ns("a"), Ns("b"), Ns("a2"), Ns("b2")]; // a2 hosts the bridge, b2 the Map-Server (names the sweep knows)
        _dir = Path.Combine(Path.GetTempPath(), $"fxtest-agent-{_tag}");
        Directory.CreateDirectory(_dir);
        string bridgeNs = Ns("a2"), msNs = Ns("b2");
        foreach (var ns in _namespaces) Shell.Must($"ip netns add {ns} && ip -n {ns} link set lo up");
        Shell.Must($"ip -n {bridgeNs} link add br0 type bridge && ip -n {bridgeNs} link set br0 up");
        string t = _tag[^4..];
        foreach (var (ns, address, i) in new[] { (Ns("a"), "192.0.2.1", 1), (Ns("b"), "192.0.2.2", 2), (msNs, "192.0.2.10", 3) })
        {
            Shell.Must($"ip link add fxu{i}{t} netns {ns} type veth peer name fxp{i}{t} netns {bridgeNs}");
            Shell.Must($"ip -n {bridgeNs} link set fxp{i}{t} master br0 && ip -n {bridgeNs} link set fxp{i}{t} up");
            Shell.Must($"ip -n {ns} addr add {address}/24 dev fxu{i}{t} && ip -n {ns} link set fxu{i}{t} up");
        }
        File.WriteAllText(Path.Combine(_dir, "ms.conf"), $"listen 192.0.2.10:4342\ncontrol-socket {_dir}/ms.sock\nsite agents\n  key 0 sha256 \"agents-secret\"\n  eid-prefix 1000 10.0.0.0/8 accept-more-specifics\n  proxy-reply\n");
        Launch(msNs, "mapserver", "--config", Path.Combine(_dir, "ms.conf"));
        foreach (var (x, rloc, eid, prefix, peer) in new[] { ("a", "192.0.2.1", "10.1.0.1", "10.1.0.0/24", "10.2.0.0/24"), ("b", "192.0.2.2", "10.2.0.1", "10.2.0.0/24", "10.1.0.0/24") })
        {
            string shm = $"fxtest-ag{x}-{_tag}";
            Launch(Ns(x), "dataplane", "--rloc-addr", rloc, "--instance", "1000=fx1000", "--shm", shm, "--map-cache-entries", "1024");
            TwoXtrLab.WaitFor(() => Shell.Sh($"ip -n {Ns(x)} link show fx1000").Code == 0, $"the TUN of {x}");
            Shell.Must($"ip -n {Ns(x)} addr add {eid}/32 dev fx1000 && ip -n {Ns(x)} link set fx1000 up && ip -n {Ns(x)} route add {peer} dev fx1000");
            File.WriteAllText(Path.Combine(_dir, $"{x}.conf"), $"rloc-addr {rloc}\nshm {shm}\nmap-server 192.0.2.10 0 sha256 \"agents-secret\"\nmap-resolver 192.0.2.10\ndatabase-mapping 1000 {prefix} {rloc},1,100\n");
            Launch(Ns(x), "agent", "--config", Path.Combine(_dir, $"{x}.conf"));
        }
        TwoXtrLab.WaitFor(() => File.Exists($"{_dir}/ms.sock") && Shell.Sh($"{Shell.FastxtrExe()} show registrations --control-socket {_dir}/ms.sock").Out.Contains("2 registration(s)", StringComparison.Ordinal),
            "both agents to register", 20_000);
    }

    private void Launch(string ns, params string[] args) => _processes.Add(Shell.StartInNamespace(ns, args));

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
        foreach (var x in new[] { "a", "b" }) FastXtr.NativeInterop.SharedMemoryMapping.Unlink($"fxtest-ag{x}-{_tag}");
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    [Test]
    public void FirstPacketsResolve_ThenTrafficFlows_WithoutStaticEntries()
    {
        var r = Shell.Run("ip", ["netns", "exec", Ns("a"), "ping", "-n", "-c", "15", "-i", "0.2", "-W", "1", "-I", "10.1.0.1", "10.2.0.1"], 30_000);
        int received = int.Parse(System.Text.RegularExpressions.Regex.Match(r.Out, @"(\d+) received").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(received, Is.GreaterThanOrEqualTo(12), "after resolution on the first packets, the rest arrive: " + r.Out);
        using var a = SharedRegion.Attach($"fxtest-aga-{_tag}");
        var entries = a.MapCache.Snapshot();
        Assert.That(entries.Any(e => e.InstanceId == 1000 && e.Prefix == 0x0A020000 && e.PrefixLength == 24 && (uint)e.Rlocs[0].Address == 0xC0000202), Is.True,
            "A's map-cache learnt [1000]10.2.0.0/24 -> 192.0.2.2 from the Map-Resolver");
        Assert.That(a.Header.AgentPid, Is.Not.EqualTo(0), "the agent is attached as the map-cache's writer");
    }

    [Test]
    public void KillingAndRestartingTheAgent_LosesNoPackets_AndItRegistersAgain()
    {
        // Resolved first (the test above may or may not have run).
        Shell.Run("ip", ["netns", "exec", Ns("a"), "ping", "-n", "-c", "5", "-i", "0.2", "-W", "1", "-I", "10.1.0.1", "10.2.0.1"], 30_000);
        var agentA = _processes.Single(p => !p.HasExited && p.StartInfo.ArgumentList.Contains("agent") && p.StartInfo.ArgumentList.Contains(Ns("a")));
        // 60 pings 50 ms apart; the agent is killed (SIGKILL: no clean shutdown) 1 s in and restarted 1 s later.
        var ping = Task.Run(() => Shell.Run("ip", ["netns", "exec", Ns("a"), "ping", "-n", "-c", "60", "-i", "0.05", "-W", "1", "-I", "10.1.0.1", "10.2.0.1"], 30_000));
        Thread.Sleep(1000);
        agentA.Kill();
        agentA.WaitForExit(5000);
        Thread.Sleep(1000);
        Launch(Ns("a"), "agent", "--config", Path.Combine(_dir, "a.conf"));
        var r = ping.Result;
        int received = int.Parse(System.Text.RegularExpressions.Regex.Match(r.Out, @"(\d+) received").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(received, Is.EqualTo(60), "the data plane forwards from its map-cache while the agent is away: " + r.Out);
        using var a = SharedRegion.Attach($"fxtest-aga-{_tag}");
        TwoXtrLab.WaitFor(() => a.Header.AgentPid != 0 && a.Header.AgentPid != agentA.Id, "the restarted agent to attach to the region");
        Assert.That(a.MapCache.Snapshot().Any(e => e.Prefix == 0x0A020000 && e.PrefixLength == 24), Is.True, "the map-cache survived the agent");
        // The new process registered again (its own counter, through its API) and replaced, not added, its registration.
        TwoXtrLab.WaitFor(() => Shell.Sh($"{Shell.FastxtrExe()} show agents --json --api-socket /run/fastxtr/agent-fxtest-aga-{_tag}.sock").Out
            .Contains("\"registrations-acknowledged\":1", StringComparison.Ordinal), "the restarted agent's Map-Notify");
        Assert.That(Shell.Sh($"{Shell.FastxtrExe()} show registrations --control-socket {_dir}/ms.sock").Out, Does.Contain("2 registration(s)"));
    }

    [Test]
    public void RestartingTheDataPlane_KeepsItsMapCache_WhileTheAgentRuns()
    {
        Shell.Run("ip", ["netns", "exec", Ns("a"), "ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", "-I", "10.1.0.1", "10.2.0.1"], 30_000);
        string shm = $"fxtest-aga-{_tag}";
        var dataplane = _processes.Single(p => !p.HasExited && p.StartInfo.ArgumentList.Contains("dataplane") && p.StartInfo.ArgumentList.Contains(Ns("a")));
        dataplane.Kill();
        dataplane.WaitForExit(5000);
        Launch(Ns("a"), "dataplane", "--rloc-addr", "192.0.2.1", "--instance", "1000=fx1000", "--shm", shm, "--map-cache-entries", "1024");
        // The TUN is new (the old one went with the old process): address and route again, as an operator's unit would.
        TwoXtrLab.WaitFor(() => Shell.Sh($"ip -n {Ns("a")} link show fx1000").Code == 0, "the new TUN");
        Shell.Must($"ip -n {Ns("a")} addr add 10.1.0.1/32 dev fx1000 && ip -n {Ns("a")} link set fx1000 up && ip -n {Ns("a")} route add 10.2.0.0/24 dev fx1000");
        using var a = SharedRegion.Attach(shm);
        var r = Shell.Run("ip", ["netns", "exec", Ns("a"), "ping", "-n", "-c", "10", "-i", "0.1", "-W", "1", "-I", "10.1.0.1", "10.2.0.1"], 30_000);
        int received = int.Parse(System.Text.RegularExpressions.Regex.Match(r.Out, @"(\d+) received").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(received, Is.EqualTo(10), "the restarted data plane forwards from the map-cache the agent wrote (a miss would drop the first): " + r.Out);
        Assert.That(a.MapCache.Snapshot().Any(e => e.Prefix == 0x0A020000 && e.PrefixLength == 24), Is.True, "the entry outlived the data plane");
        Assert.That(a.Header.AgentPid, Is.Not.EqualTo(0), "the agent stayed attached");
    }
}
