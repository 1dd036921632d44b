using System.Text.Json.Nodes;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.EndToEnd;

/// <summary>
/// The demonstration lab with gateway 3 behind NAT (<c>fastxtr lab run --quick --nat --extra-moves 2</c>): B's move in
/// step 2 goes onto a gateway behind a masquerading namespace, reached through <c>fastxtr rtr</c>, and two more moves
/// take it back to the public gateway 2 and again behind NAT. Checked from the demo agents' own counts, the RTR's
/// counters and the underlay capture, not from the lab's summary alone.
/// </summary>
[TestFixture]
[NonParallelizable]
public class LabNatTests() : LabFixture('n', "--nat", "--extra-moves", "2")
{
    protected override void CheckPrerequisites()
    {
        if (Shell.Sh("command -v nft").Code != 0) Assert.Fail("nft is not installed: scripts/test.sh installs it (apt-get install nftables)");
    }

    [Test]
    public void EveryStepPasses_WithGateway3BehindNat_AndNothingIsLeftBehind()
    {
        Assert.That(Run.Code, Is.EqualTo(0), Run.All);
        Assert.That(Run.Out, Does.Contain("gateway 3 behind NAT through the RTR").And.Contain("step 4 PASS"));
        var summary = Lab.Summary();
        Assert.That((summary["gateway3_behind_nat"]!.GetValue<bool>(), summary["pass"]!.GetValue<bool>()), Is.EqualTo((true, true)));
        // After the move gateway 1 sends B's traffic to the RTR, not to gateway 3's private address or its NAT.
        Assert.That(summary["steps"]![1]!["facts"]!["gw1_map_cache_10.1.0.2"]!.GetValue<string>(), Is.EqualTo("192.0.2.20"));
        Assert.That(Shell.Sh("ip netns list").Out, Does.Not.Contain(Prefix + "-"), "no namespace left");
        Assert.That(Directory.GetFiles("/dev/shm", Prefix + "-*"), Is.Empty, "no shared memory left, the RTR's included");
    }

    [Test]
    public void TheTaskSession_SurvivesMovesOntoAndOffTheGatewayBehindNat_WithNothingLost()
    {
        // Step 2 (public gateway 2 -> gateway 3 behind NAT), then back to gateway 2 and behind NAT again.
        Assert.That(Run.Out, Does.Contain("3 moves (make-before-break)"), Run.Out);
        var tasks = Report("A")["tasks"]!;
        Assert.That(tasks["answered"]!.GetValue<long>(), Is.GreaterThan(100));
        Assert.That((tasks["lost"]!.GetValue<long>(), tasks["duplicated"]!.GetValue<long>(), tasks["reordered"]!.GetValue<long>(), tasks["session_breaks"]!.GetValue<long>()),
            Is.EqualTo((0L, 0L, 0L, 0L)), "the TCP task session of A with B kept through every move");
        var arrivals = Report("B")["probes"]!.AsArray().Select(p => p![0]!.GetValue<double>()).ToList();
        double longest = arrivals.Zip(arrivals.Skip(1), (a, b) => b - a).Max();
        TestContext.Progress.WriteLine($"longest probe gap at B: {longest:F1} ms");
        Assert.That(longest, Is.LessThan(2000), "each move's outage, as B saw it");
        var links = Report("B")["probes"]!.AsArray().Select(p => p![2]!.GetValue<int>()).ToList();
        int switches = links.Zip(links.Skip(1), (a, b) => a != b ? 1 : 0).Sum();
        Assert.That(switches, Is.GreaterThanOrEqualTo(3), "the probe stream followed B onto each new link");
    }

    [Test]
    public void TheUnderlay_CarriesGateway3sTrafficThroughTheRtr_AndNeverItsPrivateAddress()
    {
        if (Shell.Sh("command -v tshark").Code != 0) Assert.Ignore("tshark is not installed (scripts/test.sh installs it)");
        string pcap = Path.Combine(Out, "underlay.pcap");
        Assert.That(File.Exists(pcap), Is.True, "the lab captured the underlay");
        string toRtr = Shell.Must($"tshark -r {pcap} -Y 'udp.dstport == 4341 && ip.dst == 192.0.2.20 && ip.src == 192.0.2.3' -T fields -e frame.number");
        string fromRtr = Shell.Must($"tshark -r {pcap} -Y 'udp.srcport == 4341 && ip.src == 192.0.2.20 && ip.dst == 192.0.2.3' -T fields -e frame.number");
        Assert.That((toRtr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length > 0, fromRtr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length > 0), Is.EqualTo((true, true)),
            "LISP data between the NAT's address and the RTR both ways, the RTR's from its data port");
        // The keep-alives: Info-Requests (first byte 0x70) from gateway 3's data port, translated, to the RTR's.
        string keepalives = Shell.Must($"tshark -r {pcap} -Y 'udp.dstport == 4341 && ip.dst == 192.0.2.20 && ip.src == 192.0.2.3 && udp.payload[0] == 0x70' -T fields -e frame.number");
        Assert.That(keepalives.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.Not.Empty, "Info-Requests to the RTR's data port");
        Assert.That(Shell.Must($"tshark -r {pcap} -Y 'ip.addr == 10.200.0.2' -T fields -e frame.number").Trim(), Is.Empty, "gateway 3's private address never reaches the underlay");
    }
}
