using System.Net;
using System.Net.Sockets;
using FastXtr.Agent;
using FastXtr.Lisp.Context;
using FastXtr.MapServer;
using FastXtr.Lisp.Messages;
using FastXtr.SharedMemory;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.Agent;

/// <summary>
/// The control agent as an ETR, in process over loopback: it registers with a Map-Server whose site does not
/// proxy-reply, so Map-Requests are forwarded to it and it answers them itself; it also answers RLOC probes.
/// </summary>
[TestFixture]
[NonParallelizable]
public class EtrAnswerTests
{
    [Test]
    public void ForwardedRequestsAndProbes_AreAnsweredByTheEtr()
    {
        var cfg = MapServerConfig.Parse("listen 127.0.0.1:0\nsite relay\n  key 0 sha256 \"relay-secret\"\n  eid-prefix 3000 10.3.0.0/16 accept-more-specifics\n".Split('\n'));
        using var server = new MapServerHost(cfg, 1, NullLogger.Instance, controlSocket: false);
        var ms = server.BoundEndpoints[0];
        var agentConfig = AgentConfig.Parse([
            "rloc-addr 127.0.0.31", $"map-server {ms} 0 sha256 \"relay-secret\"", $"map-resolver {ms}",
            "database-mapping 3000 10.3.0.0/24 127.0.0.31,1,100 context {\"agent-context\":{\"hardware\":[\"gpu\"],\"state\":\"ready\"}}",
        ]);
        using var region = SharedRegion.CreatePrivate(new SharedRegionSizes(64, 16, 1, 16));
        using var agent = new XtrAgent(agentConfig, region, NullLogger.Instance);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        // The Map-Server stores the registration before it sends the Map-Notify the agent counts: wait for both.
        while ((server.Store.Count == 0 || agent.Counters[AgentCounter.RegistrationsAcknowledged] == 0) && DateTime.UtcNow < deadline) Thread.Sleep(50);
        Assert.That(server.Store.Count, Is.EqualTo(1), "the agent registered");
        Assert.That(agent.Counters[AgentCounter.RegistrationsAcknowledged], Is.GreaterThanOrEqualTo(1));

        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        client.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        client.ReceiveTimeout = 3000;
        var local = (IPEndPoint)client.LocalEndPoint!;
        var request = new MapRequest { Nonce = 99, SourceEid = ContextEncoding.SourceEidWithConstraints(LispAddress.WithInstanceId(3000, LispAddress.Parse("10.9.0.1")), AgentConstraints.TryParse("{\"agent-constraints\":{\"hardware\":[\"gpu\"]}}", out _)!) };
        request.ItrRlocs.Add(LispAddress.FromIp(local.Address));
        request.Records.Add(new MapRequestRecord(LispAddress.WithInstanceId(3000, LispAddress.Parse("10.3.0.7")), 32));
        var ecm = new EncapsulatedControlMessage { InnerSourcePort = (ushort)local.Port };
        ecm.SetInnerAddresses(IPAddress.Parse("10.9.0.1"), IPAddress.Parse("10.3.0.7"));
        ecm.SetInnerMessage(request.ToArray());
        client.SendTo(ecm.ToArray(), ms);
        byte[] buffer = new byte[65536];
        var reply = new MapReply();
        reply.Decode(buffer.AsSpan(0, client.Receive(buffer)));
        Assert.That(reply.Nonce, Is.EqualTo(99UL));
        Assert.That((reply.Records[0].EidMaskLength, reply.Records[0].Authoritative), Is.EqualTo(((byte)24, true)));
        var address = ContextEncoding.ReadLocator(reply.Records[0].Locators[0].Locator, out var ctx, out _);
        Assert.That((address.ToString(), ctx?.HasHardware("gpu"), reply.Records[0].Locators[0].Local), Is.EqualTo(("127.0.0.31", (bool?)true, true)), "the ETR's own answer, with attributes for a constrained requester");
        Assert.That(server.Counters[MsCounter.MapRequestsForwarded], Is.EqualTo(1));

        var probe = new MapRequest { Nonce = 7, Probe = true };
        probe.ItrRlocs.Add(LispAddress.FromIp(local.Address));
        probe.Records.Add(new MapRequestRecord(LispAddress.WithInstanceId(3000, LispAddress.Parse("10.3.0.0")), 24));
        client.SendTo(probe.ToArray(), new IPEndPoint(IPAddress.Parse("127.0.0.31"), LispPorts.Control));
        reply.Decode(buffer.AsSpan(0, client.Receive(buffer)));
        Assert.That((reply.Nonce, reply.Probe, reply.Records[0].Locators[0].Probed), Is.EqualTo((7UL, true, true)), "an RLOC-probe reply (RFC 9301 §6.3.2)");
        Assert.That(agent.Counters[AgentCounter.EtrRequestsAnswered], Is.EqualTo(2));
    }
}
