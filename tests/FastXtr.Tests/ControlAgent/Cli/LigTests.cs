using System.Net;
using System.Net.Sockets;
using FastXtr.Cli;
using FastXtr.Lisp.Messages;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.Cli;

/// <summary>
/// <c>fastxtr lig</c> against a resolver that forwards the request (RFC 9301 §5.8) and an ETR on a third address that
/// answers: the answer is matched by its nonce, whoever sends it.
/// </summary>
[TestFixture]
public class LigTests
{
    [Test]
    public void AnAnswerFromTheEtr_NotTheResolver_IsShown()
    {
        using var resolver = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        resolver.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        using var etr = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        etr.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.77"), 0));
        var stray = new MapReply { Nonce = 1 }; // a reply for someone else's request, first: ignored
        var forwarder = Task.Run(() =>
        {
            byte[] buffer = new byte[65536];
            resolver.ReceiveTimeout = 5000;
            int n = resolver.Receive(buffer);
            var ecm = new EncapsulatedControlMessage();
            ecm.Decode(buffer.AsSpan(0, n));
            var request = new MapRequest();
            request.Decode(ecm.InnerMessage);
            var to = new IPEndPoint(request.ItrRlocs[0].ToIPAddress(), ecm.InnerSourcePort);
            etr.SendTo(stray.ToArray(), to);
            var reply = new MapReply { Nonce = request.Nonce };
            var record = new MappingRecord { EidPrefix = request.Records[0].EidPrefix, EidMaskLength = 32, TtlMinutes = 1440, Authoritative = true };
            record.Locators.Add(new LocatorRecord(LispAddress.Parse("192.0.2.77"), 1, 100));
            reply.Records.Add(record);
            etr.SendTo(reply.ToArray(), to);
        });
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = LigCommand.Run("10.1.0.5", 1000, (IPEndPoint)resolver.LocalEndPoint!, null, null, 3000, 1, stdout, stderr);
        Assert.That(forwarder.Wait(5000), Is.True);
        Assert.That(code, Is.EqualTo(0), stderr.ToString());
        Assert.That(stdout.ToString(), Does.Contain("Received Map-Reply from 127.0.0.77 (the ETR answered"));
        Assert.That(stdout.ToString(), Does.Contain("192.0.2.77"));
    }
}
