using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.EndToEnd;

/// <summary>
/// The demonstration lab, shortened (<c>fastxtr lab run --quick</c>), in its own namespaces (prefix "t" + this
/// process's id). The lab's own summary is not trusted: every step is checked from the demo agents' own counts and
/// from the underlay capture read with tshark.
/// </summary>
[TestFixture]
[NonParallelizable]
public class LabTests() : LabFixture('t')
{

    private long From(string agent, string sender) => Report(agent)["datagrams_by_sender"]![sender]?.GetValue<long>() ?? 0;

    [Test]
    public void TheRunSucceeds_AndLeavesNothingBehind()
    {
        Assert.That(Run.Code, Is.EqualTo(0), Run.All);
        Assert.That(Run.Out, Does.Contain("step 1 PASS").And.Contain("step 2 PASS").And.Contain("step 3 PASS").And.Contain("step 4 PASS"));
        Assert.That(Shell.Sh("ip netns list").Out, Does.Not.Contain(Prefix + "-"), "no namespace left");
        Assert.That(Directory.GetFiles("/dev/shm", Prefix + "-*"), Is.Empty, "no shared memory left");
        var summary = Lab.Summary();
        Assert.That(summary["steps"]!.AsArray().Count, Is.EqualTo(4));
        byte[] png = File.ReadAllBytes(Path.Combine(Out, "timeline.png"));
        Assert.That(png.Take(8), Is.EqualTo(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }));
        Assert.That(png.Length, Is.GreaterThan(2000));
        // The capture the wire checks below read holds every packet tcpdump was given: it hands packets over one at a
        // time (a ring block still open at the stop used to be lost), and is stopped after the senders, once it has
        // caught up. Its final counts, as it prints them when it exits.
        string log = File.ReadAllText(Path.Combine(Out, "logs", "tcpdump.log"));
        var final = Regex.Match(log, @"^(\d+) packets captured\n(\d+) packets received by filter", RegexOptions.Multiline);
        Assert.That(final.Success, Is.True, log);
        long captured = long.Parse(final.Groups[1].Value, CultureInfo.InvariantCulture);
        long received = long.Parse(final.Groups[2].Value, CultureInfo.InvariantCulture);
        Assert.That(received, Is.GreaterThan(1000), log);
        Assert.That(captured, Is.EqualTo(received), log);
    }

    [Test]
    public void TheTaskSession_SurvivesTheMove_WithNothingLost()
    {
        var tasks = Report("A")["tasks"]!;
        Assert.That(tasks["answered"]!.GetValue<long>(), Is.GreaterThan(100));
        Assert.That((tasks["lost"]!.GetValue<long>(), tasks["duplicated"]!.GetValue<long>(), tasks["reordered"]!.GetValue<long>(), tasks["session_breaks"]!.GetValue<long>()),
            Is.EqualTo((0L, 0L, 0L, 0L)));
        Assert.That(Report("B")["tasks"]!["served"]!.GetValue<long>(), Is.GreaterThanOrEqualTo(tasks["answered"]!.GetValue<long>()));
        // B's own record of the 1 ms probe stream: the longest silence, measured by B, not by the lab.
        var arrivals = Report("B")["probes"]!.AsArray().Select(p => p![0]!.GetValue<double>()).ToList();
        double longest = arrivals.Zip(arrivals.Skip(1), (a, b) => b - a).Max();
        TestContext.Progress.WriteLine($"longest probe gap at B: {longest:F1} ms");
        Assert.That(longest, Is.LessThan(2000), "the move's outage stays under OpenOverlayRouter's 2.1 s with SMR");
        // B also recorded the link each probe came in on: gateway 2's before the move, gateway 3's after it.
        var links = Report("B")["probes"]!.AsArray().Select(p => p![2]!.GetValue<int>()).ToList();
        Assert.That(links.First(), Is.Not.EqualTo(links.Last()), "the probe stream reached B over its new link in the end");
        int switches = links.Zip(links.Skip(1), (a, b) => a != b ? 1 : 0).Sum();
        Assert.That(switches, Is.InRange(1, 3), "the stream changed links at the move (a merged answer may share it briefly), not back and forth");
    }

    [Test]
    public void ContextAndState_ChooseTheReplica()
    {
        // The replicas' own counts: before draining both A and C reach the GPU replica; after, C reaches gateway 2's.
        Assert.That(From("inf3", "A"), Is.GreaterThanOrEqualTo(16), "A (requires a GPU) reached gateway 3's replica");
        Assert.That(From("inf2", "A"), Is.EqualTo(0), "A never reached the replica without a GPU");
        Assert.That(From("inf3", "C"), Is.GreaterThanOrEqualTo(16), "C went by priority (low latency first) before the drain");
        Assert.That(From("inf2", "C"), Is.GreaterThanOrEqualTo(16), "after the drain C moved to gateway 2");
        Assert.That(From("inf3", "A") + From("inf3", "C"), Is.LessThanOrEqualTo(40), "nothing reached the draining replica after the drain");
    }

    [Test]
    public void Groups_StayIsolated_OnTheAgentsAndOnTheWire()
    {
        Assert.That(From("T2", "T1"), Is.GreaterThanOrEqualTo(16), "T1 reaches its own group's 10.1.0.2");
        Assert.That(From("B", "T1") + From("inf2", "T1") + From("inf3", "T1"), Is.EqualTo(0), "T1 never reaches group 1000");
        Assert.That(From("T2", "A"), Is.EqualTo(0), "A never reaches group 2000");
        Assert.That(From("B", "A"), Is.GreaterThanOrEqualTo(16));

        if (Tshark.Path() is null) Assert.Fail("tshark is not installed: scripts/test.sh installs it (apt-get install tshark)");
        string pcap = Path.Combine(Out, "underlay.pcap");
        Assert.That(File.Exists(pcap), Is.True, "tcpdump captured the underlay");
        var lines = Shell.Must($"tshark -r {pcap} -Y 'lisp-data.iid == 2000' -T fields -e ip.src -e ip.dst").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines.Length, Is.GreaterThanOrEqualTo(16));
        Assert.That(lines.All(l => l.StartsWith("192.0.2.3,10.1.0.1\t192.0.2.2,10.1.0.2", StringComparison.Ordinal)), Is.True,
            "every IID 2000 packet on the wire is T1→T2, gateway 3 to gateway 2: " + string.Join(" | ", lines.Distinct().Take(5)));
        // Publications: the Map-Server told gateway 1 of B's move with Map-Notifies (type 4) it acknowledged (type 5).
        string notifies = Shell.Must($"tshark -r {pcap} -Y 'lisp.type == 4 && ip.dst == 192.0.2.1' -T fields -e frame.number");
        string acks = Shell.Must($"tshark -r {pcap} -Y 'lisp.type == 5 && ip.src == 192.0.2.1 && ip.dst == 192.0.2.10' -T fields -e frame.number");
        Assert.That(notifies.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length, Is.GreaterThanOrEqualTo(3), "registration notifies and publications to gateway 1");
        Assert.That(acks.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length, Is.GreaterThanOrEqualTo(1), "gateway 1 acknowledged a publication");
    }

    /// <summary>The demo's capture through our Wireshark dissector: the GPU gateway's context, and the drain, as fields.</summary>
    [Test]
    public void DemoCapture_WithTheDissector_ShowsTheAgentContextAsFields()
    {
        if (Tshark.Path() is null) Assert.Fail("tshark is not installed: scripts/test.sh installs it (apt-get install tshark)");
        string pcap = Path.Combine(Out, "underlay.pcap");
        string lua = FastXtr.Tests.Packaging.WiresharkDissectorTests.Script();
        var gpu = Shell.Must($"tshark -X lua_script:{lua} -r {pcap} -Y 'agent-context.hardware == \"gpu\"' -T fields -e lisp.type -e agent-context.rloc -e agent-context.state")
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).Distinct().ToList();
        Assert.That(gpu, Has.Member("3\t192.0.2.3\tready").And.Member("3\t192.0.2.3\tdraining"), "gateway 3's Map-Registers, before and after the drain: " + string.Join(" | ", gpu));
        Assert.That(gpu, Has.Some.StartsWith("2\t192.0.2.3\t"), "Map-Replies to constrained requesters carry the context");
        var constrained = Shell.Must($"tshark -X lua_script:{lua} -r {pcap} -Y 'agent-constraints.hardware == \"gpu\"' -T fields -e lisp.type");
        Assert.That(constrained.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.Not.Empty.And.All.EqualTo("8,1"), "the ECM Map-Requests of sources under the gpu profile");
    }
}
