using FastXtr.SharedMemory;
using FastXtr.SharedMemory.MapCache;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.EndToEnd;

/// <summary>
/// The mapping system over a dual-stack underlay, with real processes in namespaces: a Map-Server listening on
/// 192.0.2.10 and fd00:2::10, xTR A with only an IPv6 RLOC (fd00:2::1, registering and resolving over IPv6), B with
/// both (192.0.2.2 and fd00:2::2, registering both locators), C with only IPv4 (192.0.2.3). No static map-cache
/// entries: A and C resolve B and each reaches it over the family it has; A probes B's IPv6 locator over IPv6;
/// A and C share no family, so A's packets to C are a counted drop (no usable locator), never a send that fails.
/// </summary>
[TestFixture]
[Category("netns")]
[NonParallelizable]
public class Ipv6ControlPlaneNamespaceTests
{
    private ProcessLab _lab = null!;
    private string _dir = "";

    private string Ns(string role) => _lab.Ns(role);

    [OneTimeSetUp]
    public void Start()
    {
        _lab = new ProcessLab("agent6", "a", "b", "c", "a2", "b2"); // a2 hosts the bridge, b2 the Map-Server
        _dir = _lab.Dir;
        string bridgeNs = Ns("a2"), msNs = Ns("b2");
        _lab.Bridge(bridgeNs, (Ns("a"), ["fd00:2::1/64"]), (Ns("b"), ["192.0.2.2/24", "fd00:2::2/64"]), (msNs, ["192.0.2.10/24", "fd00:2::10/64"]), (Ns("c"), ["192.0.2.3/24"]));
        File.WriteAllText(Path.Combine(_dir, "ms.conf"),
            $"listen 192.0.2.10:4342\nlisten [fd00:2::10]:4342\ncontrol-socket {_dir}/ms.sock\nsite agents\n  key 0 sha256 \"agents-secret\"\n  eid-prefix 1000 10.0.0.0/8 accept-more-specifics\n  proxy-reply\n");
        Launch(msNs, "mapserver", "--config", Path.Combine(_dir, "ms.conf"));
        foreach (var (x, rlocs, ms, eid, prefix) in new[]
                 {
                     ("a", new[] { "fd00:2::1" }, "[fd00:2::10]", "10.1.0.1", "10.1.0.0/24"),
                     ("b", new[] { "192.0.2.2", "fd00:2::2" }, "192.0.2.10", "10.2.0.1", "10.2.0.0/24"),
                     ("c", new[] { "192.0.2.3" }, "192.0.2.10", "10.3.0.1", "10.3.0.0/24"),
                 })
        {
            string shm = _lab.Shm(x);
            Launch(Ns(x), ["dataplane", .. rlocs.SelectMany(r => new[] { "--rloc-addr", r }), "--instance", "1000=fx1000", "--shm", shm, "--map-cache-entries", "1024"]);
            TwoXtrLab.WaitFor(() => Shell.Sh($"ip -n {Ns(x)} link show fx1000").Code == 0, $"the TUN of {x}");
            Shell.Must($"ip -n {Ns(x)} addr add {eid}/32 dev fx1000 && ip -n {Ns(x)} link set fx1000 up && ip -n {Ns(x)} route add 10.0.0.0/8 dev fx1000");
            string itr = x == "a" ? "rloc-probe-interval 0.4\nrloc-probe-misses 2\nregister-interval 1\n" : "";
            File.WriteAllText(Path.Combine(_dir, $"{x}.conf"),
                string.Concat(rlocs.Select(r => $"rloc-addr {r}\n"))
                + $"shm {shm}\nmap-server {ms} 0 sha256 \"agents-secret\"\nmap-resolver {ms}\ndatabase-mapping 1000 {prefix} {string.Join(' ', rlocs.Select(r => r + ",1,100"))}\n{itr}");
            Launch(Ns(x), "agent", "--config", Path.Combine(_dir, $"{x}.conf"));
        }
        TwoXtrLab.WaitFor(() => File.Exists($"{_dir}/ms.sock") && Shell.Sh($"{Shell.FastxtrExe()} show registrations --control-socket {_dir}/ms.sock").Out.Contains("3 registration(s)", StringComparison.Ordinal),
            "the three agents to register (A over IPv6)", 20_000);
    }

    private void Launch(string ns, params string[] args) => _lab.Launch(ns, args);

    [OneTimeTearDown]
    public void Stop() => _lab?.Dispose();

    [Test]
    public void DualStackRegistration_CarriesBothLocators()
    {
        string shown = Shell.Must($"{Shell.FastxtrExe()} show registrations --control-socket {_dir}/ms.sock");
        // Each registration: a "site" line, then one line per locator.
        var blocks = shown.Split("site ", StringSplitOptions.RemoveEmptyEntries);
        string[] Locators(string prefix) => blocks.Single(b => b.Contains(prefix, StringComparison.Ordinal)).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Skip(1).Select(l => l.Trim().Split(' ')[0]).Where(l => l.Length > 0).ToArray();
        Assert.That(Locators("10.2.0.0/24"), Is.EqualTo(new[] { "192.0.2.2", "fd00:2::2" }), shown);
        Assert.That(Locators("10.1.0.0/24"), Is.EqualTo(new[] { "fd00:2::1" }), shown);
        Assert.That(blocks.Single(b => b.Contains("10.1.0.0/24", StringComparison.Ordinal)), Does.Contain("from [fd00:2::1]:4342"), "A registered over IPv6");
    }

    [Test]
    public void Ipv6OnlyXtr_ResolvesOverIpv6_AndReachesTheDualStackOne()
    {
        var r = Ping("a", "10.1.0.1", "10.2.0.1", 15, 0.2);
        Assert.That(Received(r), Is.GreaterThanOrEqualTo(12), "after resolution on the first packets, the rest arrive: " + r.Out);
        var entry = Entry("a", 0x0A020000);
        Assert.That(Enumerable.Range(0, entry.RlocCount).Select(i => entry.Rlocs[i].Family), Is.EquivalentTo(new[] { EidFamily.Ipv4, EidFamily.Ipv6 }), "both of B's locators");
        Assert.That(TwoXtrLab.ReadCounter(_lab.Shm("b"), Counter.Ipv6UnderlayRxPackets), Is.GreaterThan(0UL), "B received A's packets over IPv6");
    }

    [Test]
    public void Ipv4OnlyXtr_ReachesTheDualStackOne_OverIpv4()
    {
        ulong before = TwoXtrLab.ReadCounter(_lab.Shm("c"), Counter.Ipv6UnderlayRxPackets);
        var r = Ping("c", "10.3.0.1", "10.2.0.1", 15, 0.2);
        Assert.That(Received(r), Is.GreaterThanOrEqualTo(12), r.Out);
        Assert.That(TwoXtrLab.ReadCounter(_lab.Shm("c"), Counter.Ipv6UnderlayRxPackets), Is.EqualTo(before), "C has no IPv6 socket: B answered over IPv4");
    }

    [Test]
    public void XtrsWithNoFamilyInCommon_DropAndCountInsteadOfSending()
    {
        Ping("a", "10.1.0.1", "10.3.0.1", 3, 0.3); // resolves C's IPv4-only mapping
        ulong before = TwoXtrLab.ReadCounter(_lab.Shm("a"), Counter.DropNoUsableRloc);
        var r = Ping("a", "10.1.0.1", "10.3.0.1", 5, 0.1);
        Assert.That(Received(r), Is.Zero);
        Assert.That(TwoXtrLab.ReadCounter(_lab.Shm("a"), Counter.DropNoUsableRloc) - before, Is.GreaterThanOrEqualTo(5UL));
        Assert.That(TwoXtrLab.ReadCounter(_lab.Shm("a"), Counter.DropSendFailed), Is.Zero);
    }

    [Test]
    public void RlocProbes_GoOverIpv6_AndAreAnswered()
    {
        Ping("a", "10.1.0.1", "10.2.0.1", 3, 0.2);
        long replies = AgentCounter("a", "rloc-probe-replies-received");
        TwoXtrLab.WaitFor(() => AgentCounter("a", "rloc-probe-replies-received") >= replies + 2, "B to answer two of A's probes over IPv6", 10_000);
        Assert.That(AgentCounter("a", "locators-marked-down"), Is.Zero, "B's IPv6 locator stays up (its IPv4 one is not probed: A cannot use it)");
    }

    [Test]
    public void Tshark_DecodesTheControlMessagesOverIpv6()
    {
        Ping("a", "10.1.0.1", "10.2.0.1", 3, 0.2); // B is resolved: A probes it
        string pcap = Path.Combine(_dir, "control6.pcap");
        // On the bridge: A's Map-Registers (every second) and their Map-Notifies, A's probes of B and B's answers.
        var capture = Task.Run(() => Shell.Run("ip", ["netns", "exec", Ns("a2"), "timeout", "4", "tshark", "-i", "br0", "-f", "ip6 and udp port 4342", "-w", pcap], 20_000));
        capture.Wait();
        var rows = Tshark.Fields(pcap, ["ipv6.src", "ipv6.dst", "lisp.type", "lisp.mreq.flags.probe", "lisp.mreq.itr_rloc_ipv6", "lisp.loc.locator", "_ws.malformed"]);
        Assert.That(rows.Select(r => r["_ws.malformed"]), Is.All.Empty);
        var fromA = rows.Where(r => r["ipv6.src"] == "fd00:2::1").ToList();
        Assert.That(fromA.Any(r => r["lisp.type"] == "3" && r["ipv6.dst"] == "fd00:2::10" && r["lisp.loc.locator"] == "fd00:2::1"), Is.True, "a Map-Register over IPv6 with A's IPv6 locator");
        Assert.That(rows.Any(r => r["lisp.type"] == "4" && r["ipv6.src"] == "fd00:2::10" && r["ipv6.dst"] == "fd00:2::1"), Is.True, "its Map-Notify");
        Assert.That(fromA.Any(r => r["lisp.type"] == "1" && r["lisp.mreq.flags.probe"] == "1" && r["ipv6.dst"] == "fd00:2::2" && r["lisp.mreq.itr_rloc_ipv6"] == "fd00:2::1"), Is.True, "an RLOC probe of B's IPv6 locator");
        Assert.That(rows.Any(r => r["lisp.type"] == "2" && r["ipv6.src"] == "fd00:2::2" && r["ipv6.dst"] == "fd00:2::1"), Is.True, "B's probe reply over IPv6");
    }

    private MapCacheEntry Entry(string x, uint prefix)
    {
        using var region = SharedRegion.Attach(_lab.Shm(x));
        return region.MapCache.Snapshot().First(e => e.Kind == MapCacheKind.Destination && e.InstanceId == 1000 && e.Family == EidFamily.Ipv4 && (uint)e.Prefix == prefix);
    }

    private FastXtr.Lab.Shell.Result Ping(string x, string from, string to, int count, double interval) => ProcessLab.Ping(Ns(x), from, to, count, interval);

    private static int Received(FastXtr.Lab.Shell.Result ping) => ProcessLab.Received(ping);

    private long AgentCounter(string x, string name) => _lab.AgentCounter(x, name);
}
