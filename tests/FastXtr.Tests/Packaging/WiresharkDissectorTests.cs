using System.Net;
using System.Text;
using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.Packaging;

/// <summary>
/// packaging/wireshark/fastxtr-context.lua in tshark: the agent context and constraints of messages our codec wrote
/// become filterable fields, and a JSON LCAF whose JSON is broken or whose values have the wrong type is flagged,
/// never an error of the dissector.
/// </summary>
[TestFixture]
public class WiresharkDissectorTests
{
    private static readonly uint Src = Ipv4Header.ToUInt32(IPAddress.Parse("192.0.2.1"));
    private static readonly uint Dst = Ipv4Header.ToUInt32(IPAddress.Parse("192.0.2.2"));

    public static string Script()
    {
        string dir = TestContext.CurrentContext.TestDirectory;
        while (dir.Length > 1 && !File.Exists(Path.Combine(dir, "FastXtr.sln"))) dir = Path.GetDirectoryName(dir)!;
        return Path.Combine(dir, "packaging", "wireshark", "fastxtr-context.lua");
    }

    private static byte[] Register(string context)
    {
        var m = new MapRegister { Nonce = 7, WantMapNotify = true, AlgorithmId = AuthenticationAlgorithm.HmacSha256, XtrIdPresent = true, XtrId = 0x55, SiteId = 1 };
        var rec = new MappingRecord { TtlMinutes = 1440, EidMaskLength = 32, Authoritative = true, EidPrefix = LispAddress.WithInstanceId(1000, LispAddress.Parse("10.1.0.50")) };
        rec.Locators.Add(new LocatorRecord(ContextEncoding.RlocWithContext(LispAddress.Parse("192.0.2.3"), AgentContext.TryParse(context, out var e) ?? throw new ArgumentException(e.Reason)), 1, 100));
        m.Records.Add(rec);
        return m.ToSignedArray("k"u8.ToArray());
    }

    private static byte[] Request(string constraints)
    {
        var request = new MapRequest { Nonce = 9 };
        request.SourceEid = ContextEncoding.SourceEidWithConstraints(LispAddress.WithInstanceId(1000, LispAddress.Parse("10.1.0.1")), AgentConstraints.TryParse(constraints, out _)!);
        request.ItrRlocs.Add(LispAddress.Parse("192.0.2.1"));
        request.Records.Add(new MapRequestRecord(LispAddress.WithInstanceId(1000, LispAddress.Parse("10.1.0.50")), 32, false));
        var ecm = new EncapsulatedControlMessage { InnerSourcePort = LispPorts.Control };
        ecm.SetInnerAddresses(IPAddress.Parse("10.1.0.1"), IPAddress.Parse("10.1.0.50"));
        ecm.SetInnerMessage(request.ToArray());
        return ecm.ToArray();
    }

    /// <summary>Replaces text of the same length inside a message (the LCAF lengths stay right; the JSON goes wrong).</summary>
    private static byte[] Patch(byte[] message, string from, string to)
    {
        Assert.That(to.Length, Is.EqualTo(from.Length));
        int at = message.AsSpan().IndexOf(Encoding.ASCII.GetBytes(from));
        Assert.That(at, Is.GreaterThan(0), $"'{from}' is in the message");
        var copy = (byte[])message.Clone();
        Encoding.ASCII.GetBytes(to).CopyTo(copy, at);
        return copy;
    }

    private static string[] Rows(string pcap, string filter, params string[] fields)
    {
        var args = new List<string> { "-X", $"lua_script:{Script()}", "-r", pcap, "-n", "-Y", filter, "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=," };
        foreach (var f in fields) { args.Add("-e"); args.Add(f); }
        var r = Shell.Run(Tshark.Path() ?? throw new AssertionException("tshark is not installed: scripts/test.sh installs it"), args, 60_000);
        Assert.That(r.Code, Is.EqualTo(0), r.All);
        Assert.That(r.Err, Does.Not.Contain("Lua: Error").And.Not.Contain("lua_script"), "the script loads and runs without errors");
        return r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    [Test]
    public void ContextAndConstraints_BecomeFields_AndBrokenJsonIsFlagged()
    {
        string pcap = Path.Combine(TestContext.CurrentContext.WorkDirectory, $"dissector-{Environment.ProcessId}.pcap");
        var gpu = Register("{\"agent-context\":{\"hardware\":[\"gpu\",\"gpu-a100\"],\"latency\":\"low\",\"state\":\"ready\",\"security-level\":3,\"load\":35,\"rack\":\"r7\"}}");
        using (var w = new PcapWriter(pcap))
        {
            w.WriteUdp(Src, Dst, LispPorts.Control, LispPorts.Control, gpu);                                                     // 1
            w.WriteUdp(Src, Dst, LispPorts.Control, LispPorts.Control, Register("{\"agent-context\":{\"hardware\":[],\"state\":\"busy\"}}")); // 2
            w.WriteUdp(Src, Dst, 50000, LispPorts.Control, Request("{\"agent-constraints\":{\"hardware\":[\"gpu\"],\"max-latency\":\"medium\",\"min-security-level\":2,\"states\":[\"ready\"]}}")); // 3
            w.WriteUdp(Src, Dst, LispPorts.Control, LispPorts.Control, Patch(gpu, "\"r7\"}}", "\"r7\"  "));                  // 4: JSON cut short
            w.WriteUdp(Src, Dst, LispPorts.Control, LispPorts.Control, Patch(gpu, "\"ready\"", "1234567"));                 // 5: state is a number
            w.WriteUdp(Src, Dst, LispPorts.Data, LispPorts.Data, gpu);                                                       // 6: not control traffic
        }
        Assert.That(Rows(pcap, "agent-context.hardware == \"gpu\"", "frame.number", "agent-context.rloc", "agent-context.hardware", "agent-context.latency", "agent-context.state", "agent-context.security-level", "agent-context.load", "agent-context.other"),
            Is.EqualTo(new[] { "1|192.0.2.3|gpu,gpu-a100|low|ready|3|35|rack = r7", "5|192.0.2.3|gpu,gpu-a100|low||3|35|rack = r7" }));
        Assert.That(Rows(pcap, "agent-context.state == \"busy\"", "frame.number"), Is.EqualTo(new[] { "2" }));
        Assert.That(Rows(pcap, "agent-constraints", "frame.number", "agent-constraints.hardware", "agent-constraints.max-latency", "agent-constraints.min-security-level", "agent-constraints.states"),
            Is.EqualTo(new[] { "3|gpu|medium|2|ready" }));
        Assert.That(Rows(pcap, "agent-context.malformed", "frame.number"), Is.EqualTo(new[] { "4" }));
        Assert.That(Rows(pcap, "agent-context.wrong_type", "frame.number"), Is.EqualTo(new[] { "5" }));
        Assert.That(Rows(pcap, "agent-context || agent-constraints", "frame.number"), Has.None.EqualTo("6"), "port 4341 is data, not control");
    }
}
