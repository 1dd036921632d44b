using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.EndToEnd;

/// <summary>
/// The whole chain with real processes in namespaces: a Map-Server/Map-Resolver, three xTRs each running
/// <c>fastxtr dataplane</c> and <c>fastxtr agent</c>, on one bridged underlay. No static map-cache entries: the
/// agents register their EID prefixes, the first packets miss, the agent resolves, the rest are forwarded. A does
/// not subscribe (so a move reaches it by SMR alone) and probes locators every 0.4 s; B and C host agents that move
/// between them or are reachable through both.
/// </summary>
[TestFixture]
[Category("netns")]
[NonParallelizable]
public class AgentResolutionTests
{
    private ProcessLab _lab = null!;
    private string _tag = "";
    private string _dir = "";

    private string Ns(string role) => _lab.Ns(role);

    [OneTimeSetUp]
    public void Start()
    {
        _lab = new ProcessLab("agent", "a", "b", "c", "a2", "b2"); // a2 hosts the bridge, b2 the Map-Server (names the sweep knows)
        (_tag, _dir) = (_lab.Tag, _lab.Dir);
        string bridgeNs = Ns("a2"), msNs = Ns("b2");
        // Member 2 (B) is fxu2/fxp2: a test below takes B's bridge port down.
        _lab.Bridge(bridgeNs, (Ns("a"), ["192.0.2.1/24"]), (Ns("b"), ["192.0.2.2/24"]), (msNs, ["192.0.2.10/24"]), (Ns("c"), ["192.0.2.3/24"]));
        File.WriteAllText(Path.Combine(_dir, "ms.conf"), $"listen 192.0.2.10:4342\ncontrol-socket {_dir}/ms.sock\nsite agents\n  key 0 sha256 \"agents-secret\"\n  eid-prefix 1000 10.0.0.0/8 accept-more-specifics\n  proxy-reply\n");
        Launch(msNs, "mapserver", "--config", Path.Combine(_dir, "ms.conf"));
        foreach (var (x, rloc, eid, prefix, peer) in new[]
                 {
                     ("a", "192.0.2.1", "10.1.0.1", "10.1.0.0/24", "10.0.0.0/8"), ("b", "192.0.2.2", "10.2.0.1", "10.2.0.0/24", "10.1.0.0/24"),
                     ("c", "192.0.2.3", "10.3.0.1", "10.3.0.0/24", "10.1.0.0/24"),
                 })
        {
            string shm = $"fxtest-ag{x}-{_tag}";
            Launch(Ns(x), "dataplane", "--rloc-addr", rloc, "--instance", "1000=fx1000", "--shm", shm, "--map-cache-entries", "1024");
            TwoXtrLab.WaitFor(() => Shell.Sh($"ip -n {Ns(x)} link show fx1000").Code == 0, $"the TUN of {x}");
            Shell.Must($"ip -n {Ns(x)} addr add {eid}/32 dev fx1000 && ip -n {Ns(x)} link set fx1000 up && ip -n {Ns(x)} route add {peer} dev fx1000");
            string itr = x == "a" ? "subscribe off\nrloc-probe-interval 0.4\nrloc-probe-misses 2\n" : "";
            File.WriteAllText(Path.Combine(_dir, $"{x}.conf"), $"rloc-addr {rloc}\nshm {shm}\nmap-server 192.0.2.10 0 sha256 \"agents-secret\"\nmap-resolver 192.0.2.10\ndatabase-mapping 1000 {prefix} {rloc},1,100\n{itr}");
            Launch(Ns(x), "agent", "--config", Path.Combine(_dir, $"{x}.conf"));
        }
        TwoXtrLab.WaitFor(() => File.Exists($"{_dir}/ms.sock") && Shell.Sh($"{Shell.FastxtrExe()} show registrations --control-socket {_dir}/ms.sock").Out.Contains("3 registration(s)", StringComparison.Ordinal),
            "the three agents to register", 20_000);
    }

    private void Launch(string ns, params string[] args) => _lab.Launch(ns, args);

    [OneTimeTearDown]
    public void Stop() => _lab?.Dispose();

    [Test]
    public void FirstPacketsResolve_ThenTrafficFlows_WithoutStaticEntries()
    {
        var r = PingA("10.2.0.1", 15, 0.2);
        int received = Received(r);
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
        PingA("10.2.0.1", 5, 0.2);
        var agentA = _lab.Running("agent", Ns("a"));
        // 60 pings 50 ms apart; the agent is killed (SIGKILL: no clean shutdown) 1 s in and restarted 1 s later.
        var ping = Task.Run(() => PingA("10.2.0.1", 60, 0.05));
        Thread.Sleep(1000);
        agentA.Kill();
        agentA.WaitForExit(5000);
        Thread.Sleep(1000);
        Launch(Ns("a"), "agent", "--config", Path.Combine(_dir, "a.conf"));
        var r = ping.Result;
        int received = Received(r);
        Assert.That(received, Is.EqualTo(60), "the data plane forwards from its map-cache while the agent is away: " + r.Out);
        using var a = SharedRegion.Attach($"fxtest-aga-{_tag}");
        TwoXtrLab.WaitFor(() => a.Header.AgentPid != 0 && a.Header.AgentPid != agentA.Id, "the restarted agent to attach to the region");
        Assert.That(a.MapCache.Snapshot().Any(e => e.Prefix == 0x0A020000 && e.PrefixLength == 24), Is.True, "the map-cache survived the agent");
        // The new process registered again (its own counter, through its API) and replaced, not added, its registration.
        TwoXtrLab.WaitFor(() => Shell.Sh($"{Shell.FastxtrExe()} show agents --json --api-socket /run/fastxtr/agent-fxtest-aga-{_tag}.sock").Out
            .Contains("\"registrations-acknowledged\":1", StringComparison.Ordinal), "the restarted agent's Map-Notify");
        Assert.That(Shell.Sh($"{Shell.FastxtrExe()} show registrations --control-socket {_dir}/ms.sock").Out, Does.Contain("3 registration(s)"));
    }

    [Test]
    public void RestartingTheDataPlane_KeepsItsMapCache_WhileTheAgentRuns()
    {
        string shm = RestartDataplaneA(freshRegion: false, entries: 1024);
        using var a = SharedRegion.Attach(shm);
        var r = PingA("10.2.0.1", 10, 0.1);
        int received = Received(r);
        Assert.That(received, Is.EqualTo(10), "the restarted data plane forwards from the map-cache the agent wrote (a miss would drop the first): " + r.Out);
        Assert.That(a.MapCache.Snapshot().Any(e => e.Prefix == 0x0A020000 && e.PrefixLength == 24), Is.True, "the entry outlived the data plane");
        Assert.That(a.Header.AgentPid, Is.Not.EqualTo(0), "the agent stayed attached");
    }

    [Test]
    public void RestartingTheDataPlane_OnAFreshRegion_IsRefilledByTheAgent()
    {
        // The operator removes the region (say, to give the map-cache another size): the new data plane starts empty.
        string shm = RestartDataplaneA(freshRegion: true, entries: 2048);
        TwoXtrLab.WaitFor(() => File.Exists($"/dev/shm/{shm}") && AgentCounter("a", "regions-followed") >= 1, "the agent to follow the new region");
        using var a = SharedRegion.Attach(shm);
        Assert.That(a.Sizes.EntryCapacity, Is.EqualTo(2048), "this is the new region");
        Assert.That(a.MapCache.Snapshot().Any(e => e.Prefix == 0x0A020000 && e.PrefixLength == 24 && (uint)e.Rlocs[0].Address == 0xC0000202), Is.True,
            "the agent wrote its resolution of [1000]10.2.0.0/24 into the new region");
        Assert.That(a.Header.AgentPid, Is.Not.EqualTo(0), "the agent is the new region's writer");
        Assert.That(AgentCounter("a", "entries-restored"), Is.GreaterThanOrEqualTo(1));
        var r = PingA("10.2.0.1", 10, 0.1);
        Assert.That(Received(r), Is.EqualTo(10), "forwarded from the restored entry from the first packet on (a miss drops the packet): " + r.Out);
    }

    [Test]
    public void AnAgentThatMoves_IsFoundAgainThroughSmr_WithoutSubscription()
    {
        // 10.8.0.1 lives behind B; A (which does not subscribe) resolves it and pings it.
        Shell.Must($"ip -n {Ns("b")} addr add 10.8.0.1/32 dev fx1000");
        Assert.That(Api("b", HttpMethod.Post, "/v1/agents", """{"name":"mover","iid":1000,"eid":"10.8.0.1"}""").Status, Is.EqualTo(201));
        try
        {
            Assert.That(Received(PingA("10.8.0.1", 5, 0.2)), Is.GreaterThanOrEqualTo(3), "reachable at B first");
            Assert.That(CacheRloc("10.8.0.1"), Is.EqualTo(0xC0000202u));
            long smrsBefore = AgentCounter("a", "smrs-received");
            ulong cBefore = TunTx("c");
            // A stream long enough that the move's own steps (shell and API calls, slow on a loaded machine) never
            // leave too little of it for C: what is asserted is where it goes and how much the move loses.
            const int Count = 200;
            var ping = Task.Run(() => PingA("10.8.0.1", Count, 0.05));
            Thread.Sleep(500);
            // The move, make-before-break as an orchestrator migrates: attached at C, then detached from B (withdrawn;
            // B keeps a moved-away entry). Detaching first would let A's SMR-invoked request meet the gap and cache
            // the Map-Server's negative answer for a minute: without a subscription nothing would correct it sooner.
            Shell.Must($"ip -n {Ns("c")} addr add 10.8.0.1/32 dev fx1000");
            Assert.That(Api("c", HttpMethod.Post, "/v1/agents", """{"name":"mover","iid":1000,"eid":"10.8.0.1"}""").Status, Is.EqualTo(201));
            Assert.That(Api("b", HttpMethod.Delete, "/v1/agents/1000/10.8.0.1").Status, Is.EqualTo(200));
            Shell.Must($"ip -n {Ns("b")} addr del 10.8.0.1/32 dev fx1000");
            TwoXtrLab.WaitFor(() => TunTx("c") - cBefore >= 30, "C delivering A's packets to the moved agent", 8_000);
            int received = Received(ping.Result);
            Assert.That(CacheRloc("10.8.0.1"), Is.EqualTo(0xC0000203u), "A re-resolved to C");
            Assert.That(AgentCounter("b", "smrs-sent"), Is.GreaterThanOrEqualTo(1), "B answered A's packets for the departed EID with an SMR");
            Assert.That(AgentCounter("a", "smrs-received") - smrsBefore, Is.GreaterThanOrEqualTo(1));
            Assert.That(AgentCounter("a", "smr-invoked-requests-sent"), Is.GreaterThanOrEqualTo(1));
            Assert.That(AgentCounter("a", "publications-applied"), Is.Zero, "A does not subscribe: the SMR alone moved it");
            Assert.That(TunTx("c") - cBefore, Is.GreaterThanOrEqualTo(30UL), "C delivered A's packets to the moved agent");
            Assert.That(received, Is.GreaterThanOrEqualTo(Count - 10), "the stream resumed through C, at most 10 lost in the move: " + ping.Result.Out);
        }
        finally
        {
            Api("b", HttpMethod.Delete, "/v1/agents/1000/10.8.0.1");
            Api("c", HttpMethod.Delete, "/v1/agents/1000/10.8.0.1");
        }
    }

    [Test]
    public void ALocatorThatStopsAnsweringProbes_IsMarkedDown_AndTrafficMovesToTheOther()
    {
        // 10.9.0.1 is reachable through B (priority 1) and C (priority 2): the service has two gateways.
        foreach (var (x, priority) in new[] { ("b", 1), ("c", 2) })
        {
            Shell.Must($"ip -n {Ns(x)} addr add 10.9.0.1/32 dev fx1000");
            Assert.That(Api(x, HttpMethod.Post, "/v1/agents", $$"""{"name":"service","iid":1000,"eid":"10.9.0.1","priority":{{priority}}}""").Status, Is.EqualTo(201));
        }
        string bPort = $"fxp2{_tag[^4..]}";
        // B and C resolve their way back to A before they are needed, so that no answer is lost to a miss.
        foreach (var (x, eid) in new[] { ("b", "10.2.0.1"), ("c", "10.3.0.1") })
            Shell.Run("ip", ["netns", "exec", Ns(x), "ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", "-I", eid, "10.1.0.1"], 30_000);
        try
        {
            TwoXtrLab.WaitFor(() => { PingA("10.9.0.1", 1, 0.2); return CacheRlocCount("10.9.0.1") == 2; }, "A to resolve both locators of 10.9.0.1");
            ulong bBefore = TunTx("b"), cBefore = TunTx("c");
            Assert.That(Received(PingA("10.9.0.1", 10, 0.05)), Is.EqualTo(10));
            Assert.That(TunTx("b") - bBefore, Is.GreaterThanOrEqualTo(10UL), "priority 1: B carries the traffic");
            Assert.That(TunTx("c") - cBefore, Is.Zero, "C is the standby");
            long downBefore = AgentCounter("a", "locators-marked-down");

            // B's underlay port goes dark: its probes go unanswered.
            Shell.Must($"ip -n {Ns("a2")} link set {bPort} down");
            TwoXtrLab.WaitFor(() => AgentCounter("a", "locators-marked-down") > downBefore, "A's prober to mark 192.0.2.2 down", 10_000);
            Assert.That(RlocUp("10.9.0.1", 0xC0000202), Is.False, "the map-cache entry says B's locator is down");
            cBefore = TunTx("c");
            var r = PingA("10.9.0.1", 20, 0.05);
            Assert.That(Received(r), Is.EqualTo(20), "every ping answered through C: " + r.Out);
            Assert.That(TunTx("c") - cBefore, Is.GreaterThanOrEqualTo(20UL), "the traffic moved to the priority-2 locator");

            // B comes back: its next probe answer marks it up, and traffic returns to priority 1.
            long upBefore = AgentCounter("a", "locators-marked-up");
            Shell.Must($"ip -n {Ns("a2")} link set {bPort} up");
            TwoXtrLab.WaitFor(() => AgentCounter("a", "locators-marked-up") > upBefore, "A's prober to mark 192.0.2.2 up again", 10_000);
            bBefore = TunTx("b");
            Assert.That(Received(PingA("10.9.0.1", 10, 0.05)), Is.EqualTo(10));
            Assert.That(TunTx("b") - bBefore, Is.GreaterThanOrEqualTo(10UL), "back on B");
        }
        finally
        {
            Shell.Sh($"ip -n {Ns("a2")} link set {bPort} up");
            foreach (var x in new[] { "b", "c" })
            {
                Api(x, HttpMethod.Delete, "/v1/agents/1000/10.9.0.1");
                Shell.Sh($"ip -n {Ns(x)} addr del 10.9.0.1/32 dev fx1000");
            }
        }
    }

    [Test]
    public void ANegativeAnswer_IsCachedForItsTtl_ThenExpires_AndIsAskedAgain()
    {
        // 10.7.0.1 is inside the site's 10.0.0.0/8 but nobody registered it: the Map-Server answers negative
        // (natively-forward, 1-minute TTL for unregistered site space), which A caches and obeys.
        long requestsBefore = AgentCounter("a", "map-requests-sent"), negativeBefore = AgentCounter("a", "negative-replies-installed");
        PingA("10.7.0.1", 3, 0.3);
        TwoXtrLab.WaitFor(() => NegativeEntryFor(0x0A070001) is not null, "A's negative entry for 10.7.0.1");
        var entry = NegativeEntryFor(0x0A070001)!.Value;
        Assert.That(entry.Action, Is.EqualTo(FastXtr.Packets.MapReplyAction.NativelyForward));
        Assert.That(entry.PrefixLength, Is.InRange(9, 16), "the least-specific prefix that covers 10.7.0.1 and no registration");
        Assert.That(AgentCounter("a", "negative-replies-installed") - negativeBefore, Is.EqualTo(1));
        long requests = AgentCounter("a", "map-requests-sent");
        Assert.That(requests - requestsBefore, Is.EqualTo(1), "one Map-Request for the first packets");
        ulong dropsBefore = DataplaneCounter("a", Counter.DropNativeForwardUnsupported);
        PingA("10.7.0.9", 5, 0.2); // the same negative prefix
        Assert.That(DataplaneCounter("a", Counter.DropNativeForwardUnsupported) - dropsBefore, Is.GreaterThanOrEqualTo(5UL), "dropped by the negative entry, counted");
        Assert.That(AgentCounter("a", "map-requests-sent"), Is.EqualTo(requests), "no new Map-Request while the negative entry lives");
        // After its minute the entry goes, and the next packet asks again.
        TwoXtrLab.WaitFor(() => NegativeEntryFor(0x0A070001) is null, "the negative entry to expire", 75_000);
        PingA("10.7.0.1", 1, 0.2);
        TwoXtrLab.WaitFor(() => AgentCounter("a", "map-requests-sent") > requests, "a new Map-Request after the expiry", 5_000);
    }

    private MapCacheEntry? NegativeEntryFor(uint address)
    {
        using var a = SharedRegion.Attach($"fxtest-aga-{_tag}");
        return a.MapCache.TryLookup(new MapCacheKey(1000, 0, EidFamily.Ipv4, address), out var e) && e.IsNegative ? e : null;
    }

    private ulong DataplaneCounter(string x, Counter c)
    {
        using var r = SharedRegion.Attach($"fxtest-ag{x}-{_tag}");
        ulong sum = 0;
        for (int w = 0; w < r.Sizes.Workers; w++) sum += r.Counters(w)[c];
        return sum;
    }

    /// <summary>
    /// Resolves 10.2.0.1 at A, kills A's data plane (SIGKILL), optionally removes its region, starts a new one and
    /// gives its new TUN the address and route again, as an operator's unit would. Returns the region's name.
    /// </summary>
    private string RestartDataplaneA(bool freshRegion, int entries)
    {
        PingA("10.2.0.1", 3, 0.2);
        string shm = $"fxtest-aga-{_tag}";
        var dataplane = _lab.Running("dataplane", Ns("a"));
        dataplane.Kill();
        dataplane.WaitForExit(5000);
        if (freshRegion) FastXtr.NativeInterop.SharedMemoryMapping.Unlink(shm);
        Launch(Ns("a"), "dataplane", "--rloc-addr", "192.0.2.1", "--instance", "1000=fx1000", "--shm", shm, "--map-cache-entries", $"{entries}");
        TwoXtrLab.WaitFor(() => Shell.Sh($"ip -n {Ns("a")} link show fx1000").Code == 0, "the new TUN");
        Shell.Must($"ip -n {Ns("a")} addr add 10.1.0.1/32 dev fx1000 && ip -n {Ns("a")} link set fx1000 up && ip -n {Ns("a")} route add 10.0.0.0/8 dev fx1000");
        return shm;
    }

    private FastXtr.Lab.Shell.Result PingA(string destination, int count, double interval) => ProcessLab.Ping(Ns("a"), "10.1.0.1", destination, count, interval);

    private static int Received(FastXtr.Lab.Shell.Result ping) => ProcessLab.Received(ping);

    private (int Status, System.Text.Json.Nodes.JsonNode? Body) Api(string x, HttpMethod method, string path, string? json = null) =>
        FastXtr.Common.Api.UnixSocketClient.Send($"/run/fastxtr/agent-fxtest-ag{x}-{_tag}.sock", method, path, json);

    private long AgentCounter(string x, string name) => _lab.AgentCounter(x, name);

    /// <summary>Packets the xTR's data plane wrote to its TUN (the kernel's rx count on that device).</summary>
    private ulong TunTx(string x) => ulong.Parse(Shell.Must($"ip netns exec {Ns(x)} cat /sys/class/net/fx1000/statistics/rx_packets").Trim(), System.Globalization.CultureInfo.InvariantCulture);

    private MapCacheEntry? CacheEntry(string eid)
    {
        using var a = SharedRegion.Attach($"fxtest-aga-{_tag}");
        uint address = FastXtr.Packets.Ipv4Header.ToUInt32(System.Net.IPAddress.Parse(eid));
        return a.MapCache.Snapshot().Where(e => e.Profile == 0 && e.InstanceId == 1000 && e.Family == EidFamily.Ipv4 && e.PrefixLength == 32 && (uint)e.Prefix == address)
            .Select(e => (MapCacheEntry?)e).FirstOrDefault();
    }

    private uint CacheRloc(string eid) => CacheEntry(eid) is { RlocCount: > 0 } e ? (uint)e.Rlocs[0].Address : 0;

    private int CacheRlocCount(string eid) => CacheEntry(eid)?.RlocCount ?? 0;

    private bool RlocUp(string eid, uint rloc)
    {
        var e = CacheEntry(eid) ?? throw new AssertionException($"no map-cache entry for {eid}");
        for (int i = 0; i < e.RlocCount; i++)
            if ((uint)e.Rlocs[i].Address == rloc) return e.Rlocs[i].State == RlocSlot.StateUp;
        throw new AssertionException($"{eid}'s entry has no locator {rloc:x8}");
    }
}
