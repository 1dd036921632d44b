using System.Net;
using System.Text.RegularExpressions;
using FastXtr.SharedMemory;
using FastXtr.SharedMemory.MapCache;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.EndToEnd;

/// <summary>
/// The DDT lab (<c>fastxtr lab ddt up</c>, <see cref="FastXtr.Lab.DdtLab"/>) with real processes: a root delegating
/// [1000]10.1.0.0/16 to msa, [1000]10.2.0.0/16 to the peers msb1 and msb2, [2000]10.1.0.0/16 to msc; two
/// Map-Resolvers seeded only with the root; xTRs registering their agents with their site's Map-Servers and resolving
/// through mr1, then mr2. The failover tests kill a process as a crash would (<c>lab ddt stop</c>) and start it again
/// afterwards, so they run last, in order.
/// </summary>
[TestFixture]
[Category("netns")]
[NonParallelizable]
public class DdtLabTests
{
    private string _prefix = "", _out = "";

    private const string Mr1 = "192.0.2.16", Mr2 = "192.0.2.17", Root = "192.0.2.11", MsA = "192.0.2.12", MsB1 = "192.0.2.13", MsB2 = "192.0.2.14";

    [OneTimeSetUp]
    public void Up()
    {
        Shell.RequireRoot("the DDT lab needs root (namespaces, TUN)");
        // Leftovers of a killed earlier test process (its id gone) with our letter.
        LabRun.SweepLeftovers(new Regex(@"^d(\d+)-ul$"), prefix => ["lab", "ddt", "down", "--prefix", prefix]);
        _prefix = $"d{Environment.ProcessId}";
        _out = Path.Combine(Path.GetTempPath(), $"fastxtr-ddtlab-{Environment.ProcessId}-{Guid.NewGuid():N}");
        var up = Lab("up");
        TestContext.Progress.WriteLine(up.All);
        if (up.Code != 0)
        {
            Down();
            Assert.Fail($"lab ddt up failed: {up.All}");
        }
    }

    [OneTimeTearDown]
    public void Down()
    {
        if (_prefix.Length > 0) Lab("down");
        if (_out.Length > 0 && Directory.Exists(_out)) Directory.Delete(_out, recursive: true);
    }

    private FastXtr.Lab.Shell.Result Lab(params string[] args) =>
        Shell.Run(Shell.FastxtrExe(), ["lab", "ddt", .. args, "--prefix", _prefix, "--out", _out], 120_000);

    private string Ns(string role) => $"{_prefix}-{role}";

    private string Socket(string role) => $"/run/fastxtr/{_prefix}-{role}.sock";

    private FastXtr.Lab.Shell.Result Lig(string eid, uint iid, string resolver, params string[] more) =>
        Shell.Run("ip", ["netns", "exec", Ns("x1"), Shell.FastxtrExe(), "lig", eid, "--iid", $"{iid}", "--map-resolver", resolver, "--timeout", "1500", .. more]);

    /// <summary>A Map-Server's counter (its status is the flat counter table), -1 when it does not answer.</summary>
    private long Counter(string role, string name) => FastXtr.Lab.DdtLab.Status(Socket(role))?[name]?.GetValue<long>() ?? -1;

    /// <summary>Where xTR <paramref name="x"/>'s map-cache sends [1000]<paramref name="eid"/>: its locators, or "none".</summary>
    private string Cached(string x, string eid)
    {
        using var r = SharedRegion.Attach($"{_prefix}-{x}");
        if (!r.MapCache.TryLookup(new MapCacheKey(1000, 0, EidFamily.Ipv4, FastXtr.Packets.Ipv4Header.ToUInt32(IPAddress.Parse(eid))), out var e) || e.IsNegative) return "none";
        return string.Join(",", Enumerable.Range(0, e.RlocCount).Select(i => FastXtr.Packets.Ipv4Header.ToAddress((uint)e.Rlocs[i].Address).ToString()));
    }

    [Test, Order(1)]
    public void EverySpace_ResolvesThroughTheMapResolver_AndHolesAreAnsweredNegatively()
    {
        var a = Lig("10.1.0.1", 1000, Mr1);
        Assert.That(a.Out, Does.Contain("[1000]10.1.0.1/32  ttl 1440 min, authoritative").And.Contain("192.0.2.1  priority 1"), a.All);
        Assert.That(a.Out, Does.Contain("Received Map-Reply from 192.0.2.12"), "msa answered (MS-ACK to the resolver)");
        var b = Lig("10.2.0.1", 1000, Mr1);
        Assert.That(b.Out, Does.Contain("192.0.2.2  priority 1"), b.All);
        Assert.That(b.Out, Does.Match("Received Map-Reply from 192.0.2.1[34]"), "msb1 or msb2 answered");
        // The same address in the other agent group is another agent, on another xTR, held by another Map-Server.
        var t1 = Lig("10.1.0.1", 2000, Mr2);
        Assert.That(t1.Out, Does.Contain("[2000]10.1.0.1/32").And.Contain("192.0.2.4  priority 1").And.Contain("Received Map-Reply from 192.0.2.15"), t1.All);

        var hole = Lig("10.7.0.1", 1000, Mr1);
        Assert.That(hole.Out, Does.Contain($"Received Map-Reply from {Mr1}").And.Contain("[1000]10.4.0.0/14  ttl 15 min, authoritative, negative"),
            "DELEGATION-HOLE: the root's largest undelegated prefix holding the EID: " + hole.All);
        var unregistered = Lig("10.2.0.77", 1000, Mr1);
        // MS-NOT-REGISTERED: the least specific prefix around the EID that holds no registration of the site
        // (10.2.0.1 and 10.2.0.9 are registered), with the short TTL.
        Assert.That(unregistered.Out, Does.Contain("[1000]10.2.0.64/26  ttl 1 min, authoritative, negative"), unregistered.All);
        // IID 3000 is nobody's: the root answers NOT-AUTHORITATIVE, the resolver walks once more from the root and
        // then answers negatively for the EID alone.
        var foreign = Lig("10.1.0.1", 3000, Mr1);
        Assert.That(foreign.Out, Does.Contain("[3000]10.1.0.1/32  ttl 1 min, authoritative, negative"), foreign.All);
        Assert.That(Counter("mr1", "ddt-not-authoritative"), Is.EqualTo(2L));
        var trace = Shell.Run("ip", ["netns", "exec", Ns("x1"), Shell.FastxtrExe(), "lig", "10.1.0.1", "--iid", "3000", "--map-resolver", Root, "--trace"]);
        Assert.That(trace.Code, Is.EqualTo(1), trace.All);
        Assert.That(trace.Err, Does.Contain("192.0.2.11 is not authoritative for [3000]10.1.0.1"));
    }

    [Test, Order(2)]
    public void TheSecondRequest_UsesTheReferralCache_AndTsharkReadsTheReferrals()
    {
        if (Tshark.Path() is null) Assert.Ignore("tshark is not installed (scripts/test.sh installs it)");
        string pcap = Path.Combine(_out, "ddt.pcap");
        var capture = Tshark.StartCapture(Ns("ul"), "br0", "udp port 4342", 200, pcap, seconds: 6);
        // 10.2.0.9 was never asked for: the resolver knows [1000]10.2.0.0/16 from the first test, so the walk goes
        // straight to msb1 or msb2 (no new referral from the root); the second ask goes to the Map-Server that acked.
        long rootRequests = Counter("root", "ddt-map-requests-received");
        long timeouts = Counter("mr1", "ddt-request-timeouts"), abandoned = Counter("mr1", "ddt-requests-abandoned");
        var first = Lig("10.2.0.9", 1000, Mr1);
        var again = Lig("10.2.0.9", 1000, Mr1);
        // A walk the resolver has never made: [2000]10.1.0.1 from mr1 (test 1 asked mr2) goes through the root.
        var fresh = Lig("10.1.0.1", 2000, Mr1);
        Assert.That((first.Code, again.Code, fresh.Code), Is.EqualTo((0, 0, 0)), first.All + again.All + fresh.All);
        // On a busy machine a Map-Server or the root may answer after the lab's 300 ms ddt-request-timeout: the
        // resolver then asks the next target (for the root, none: the walk is abandoned and lig asks again). Each
        // such timeout may add one request and one late Map-Referral; without one the counts below are exact.
        long late = Counter("mr1", "ddt-request-timeouts") - timeouts, retried = Counter("mr1", "ddt-requests-abandoned") - abandoned;
        long asked = Counter("root", "ddt-map-requests-received") - rootRequests;
        Assert.That(asked, Is.EqualTo(1 + retried), "only the fresh walk asked the root (again only after an abandoned walk)");
        capture.Wait();
        var rows = Tshark.Fields(pcap, ["ip.src", "ip.dst", "lisp.type", "lisp.mapping.act", "_ws.malformed"]);
        Assert.That(rows.Select(r => r["_ws.malformed"]), Is.All.Empty);
        var referrals = rows.Where(r => r["lisp.type"] == "6").ToList();
        Assert.That(referrals.Where(r => r["ip.src"] == Root).Select(r => r["ip.dst"]), Is.EqualTo(Enumerable.Repeat(Mr1, (int)asked)), "the root's Map-Referrals, for the fresh walk only");
        Assert.That(referrals.Count(r => r["ip.src"] == "192.0.2.15"), Is.InRange(1, 1 + late), "msc's MS-ACK");
        Assert.That(referrals.Count(r => r["ip.src"] is MsB1 or MsB2), Is.InRange(2, 2 + late), "one MS-ACK for each ask of 10.2.0.9, straight from a site-b Map-Server");
    }

    [Test, Order(3)]
    public void AgentConstraints_ReachTheAnsweringMapServer_ThroughTheTree()
    {
        var gpu = Lig("10.2.0.9", 1000, Mr2, "--constraints", """{"agent-constraints":{"hardware":["gpu"]}}""");
        Assert.That(gpu.Out, Does.Contain("192.0.2.3  priority 1").And.Not.Contain("192.0.2.2  "), "only inf3 (x3) has a GPU: " + gpu.All);
        var any = Lig("10.2.0.9", 1000, Mr2);
        Assert.That(any.Out, Does.Contain("192.0.2.3  priority 1").And.Contain("192.0.2.2  priority 2"), any.All);
    }

    [Test, Order(4)]
    public void AgentsReachEachOther_ResolvedThroughTheTree()
    {
        var ping = ProcessLab.Ping(Ns("x1"), "10.1.0.1", "10.2.0.1", 10, 0.1);
        Assert.That(ProcessLab.Received(ping), Is.GreaterThanOrEqualTo(7), ping.All);
        Assert.That(Cached("x1", "10.2.0.1"), Is.EqualTo("192.0.2.2"));
    }

    [Test, Order(10)]
    public void AMapServerDies_ItsPeerAnswers()
    {
        Assert.That(Lab("stop", "msb1").Code, Is.Zero);
        try
        {
            // Each of these walks has a referral listing msb1: the first asks it, times out (ddt-request-timeout
            // 300 ms) and asks msb2; the next ones ask msb2 first (msb1 is marked down).
            foreach (string eid in new[] { "10.2.0.1", "10.2.0.9", "10.2.0.1" })
            {
                var r = Lig(eid, 1000, Mr1);
                Assert.That(r.Out, Does.Contain($"Received Map-Reply from {MsB2}").And.Contain("authoritative"), r.All);
                Assert.That(r.Out, Does.Not.Contain("negative"), r.All);
            }
            Assert.That(Counter("mr1", "ddt-targets-marked-down"), Is.GreaterThanOrEqualTo(1L));
            Assert.That(Counter("mr1", "ddt-request-timeouts"), Is.LessThanOrEqualTo(1L), "one timeout at most: later walks skip the dead Map-Server");
        }
        finally { Restart("msb1"); }
    }

    [Test, Order(11)]
    public void AMapResolverDies_NewFlowsResolveThroughTheOther()
    {
        Assert.That(Lab("stop", "mr1").Code, Is.Zero);
        try
        {
            // 10.2.0.9 is a flow x1's data plane has not resolved yet.
            Assert.That(Cached("x1", "10.2.0.9"), Is.EqualTo("none"));
            // Both directions resolve through mr1 first (x3 answers for 10.2.0.9 and resolves 10.1.0.1 only when the
            // first echo request reaches it), each asked of mr2 after mr1's failover timeout (its answer times, at
            // least 200 ms, at most the RFC's second), one after the other. The last 5 of 25 echoes, sent from 4 s
            // on, must all be answered.
            var ping = ProcessLab.Ping(Ns("x1"), "10.1.0.1", "10.2.0.9", 25, 0.2);
            var answered = Regex.Matches(ping.Out, @"icmp_seq=(\d+) ").Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToHashSet();
            Assert.That(Enumerable.Range(21, 5).Where(answered.Contains).Count(), Is.EqualTo(5), "resolved through mr2 after mr1's timeout: " + ping.All);
            TestContext.Progress.WriteLine($"mr1 dead: the first echo of a new flow answered was #{answered.Min()} (sent {(answered.Min() - 1) * 200} ms after the first)");
            Assert.That(Cached("x1", "10.2.0.9"), Does.Contain("192.0.2.3"));
            // One flow: its request to mr1 went unanswered once and was sent on to mr2 (a second unanswered one in a
            // row would mark mr1 down for 30 s).
            var status = FastXtr.Lab.DdtLab.Status(Socket("x1"))!;
            var resolvers = status["map_resolvers"]!.AsArray();
            Assert.That(resolvers[0]!["unanswered_in_a_row"]!.GetValue<int>(), Is.GreaterThanOrEqualTo(1), status.ToJsonString());
            Assert.That($"{resolvers[1]!["address"]} {resolvers[1]!["state"]} {resolvers[1]!["unanswered_in_a_row"]}", Is.EqualTo($"{Mr2}:4342 up 0"), status.ToJsonString());
            // x1's earlier answers through mr1 were timed, so its request waited mr1's failover timeout (a few times that
            // round trip, at least 200 ms) before mr2 was asked; mr2's one answer, to a retransmission, was not (Karn).
            Assert.That(resolvers[0]!["srtt_ms"]?.GetValue<double>(), Is.Not.Null, status.ToJsonString());
            // The operator's view of the same.
            var shown = Shell.Run(Shell.FastxtrExe(), ["show", "agents", "--api-socket", Socket("x1")]);
            Assert.That(shown.Out, Does.Match($@"map-resolver {Regex.Escape(Mr1)}:4342 +(up|down), [1-9]\d* unanswered in a row").And.Match($@"map-resolver {Regex.Escape(Mr2)}:4342 +up, 0 unanswered in a row, srtt (-|[\d.]+ ms), next one asked after \d+ ms"), shown.All);
            Assert.That(shown.Out, Does.Contain($"map-server   {MsA}:4342"), shown.All);
        }
        finally { Restart("mr1"); }
    }

    [Test, Order(12)]
    public void AnAgentMoves_WhileAMapServerIsDead_AndItsPeersConverge()
    {
        Assert.That(Lab("stop", "msb1").Code, Is.Zero);
        try
        {
            var ping = ProcessLab.Ping(Ns("x1"), "10.1.0.1", "10.2.0.1", 5, 0.1);
            Assert.That(Cached("x1", "10.2.0.1"), Is.EqualTo("192.0.2.2"), ping.All);
            // x2 and x3 find msb1 unresponsive on their next refreshes (register-interval 5 s; three sends without a
            // Map-Notify), after which an attach or detach waits for msb2's confirmation only.
            foreach (var x in new[] { "x2", "x3" })
                Poll.Until(() => FastXtr.Lab.DdtLab.Status(Socket(x))?["map_servers_unresponsive"]?.AsArray().Count == 1, $"{x} to find msb1 unresponsive", 15_000);
            // a keeps sending to b while b moves from x2 to x3; x3 can register with msb2 only.
            var stream = Task.Run(() => ProcessLab.Ping(Ns("x1"), "10.1.0.1", "10.2.0.1", 100, 0.05));
            Thread.Sleep(500);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var move = Lab("move", "b", "x3");
            long moved = clock.ElapsedMilliseconds;
            Assert.That(move.Out, Does.Contain("b moved from x2 to x3"), move.All);
            Poll.Until(() => Cached("x1", "10.2.0.1") == "192.0.2.3", "x1 to send b's traffic to x3", 10_000);
            // Measured, not asserted (speed is the benchmarks'): reported in the issue's note.
            TestContext.Progress.WriteLine($"move with msb1 dead: 'lab ddt move' took {moved} ms; x1 sent to x3 {clock.ElapsedMilliseconds} ms after it began");
            var after = stream.Result;
            Assert.That(ProcessLab.Received(after), Is.GreaterThanOrEqualTo(60), "most of the 100 packets: " + after.All);
            var ping2 = ProcessLab.Ping(Ns("x1"), "10.1.0.1", "10.2.0.1", 5, 0.1);
            Assert.That(ProcessLab.Received(ping2), Is.EqualTo(5), ping2.All);
        }
        finally { Restart("msb1"); }
    }

    /// <summary>Starts a killed role again and, for a Map-Server, waits until its site's xTRs have registered with it.</summary>
    private void Restart(string role)
    {
        var start = Lab("start", role);
        Assert.That(start.Code, Is.Zero, start.All);
        if (role.StartsWith("ms", StringComparison.Ordinal))
            Poll.Until(() => new FastXtr.Lab.DdtLab(_prefix, _out, TextWriter.Null).HasEveryAgent(role), $"{role} to have every xTR's registrations back (both of 10.2.0.9's)", 15_000);
    }
}
