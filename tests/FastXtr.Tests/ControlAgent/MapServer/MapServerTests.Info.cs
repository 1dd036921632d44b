using System.Net;
using System.Net.Sockets;
using FastXtr.Lisp.Messages;
using FastXtr.MapServer;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.MapServer;

/// <summary>NAT discovery at the Map-Server (draft-ietf-lisp-nat-traversal §5): Info-Requests answered only when authenticated.</summary>
public partial class MapServerTests
{
    private static InfoMessage InfoRequest(uint iid, string eid, byte mask) =>
        new() { Nonce = (ulong)Random.Shared.NextInt64(), EidMaskLength = mask, EidPrefix = Eid(iid, eid) };

    private void StartWithRtrs()
    {
        TearDown();
        Start(Config.Replace("map-register-rate 100000 100000", "map-register-rate 100000 100000\nrtr 192.0.2.100\nrtr 2001:db8::100\ninfo-reply-ttl 60", StringComparison.Ordinal));
    }

    [Test]
    public void InfoRequest_IsAnsweredWithTheAddressAndPortItCameFrom_AndTheRtrs_SignedWithTheSiteKey()
    {
        StartWithRtrs();
        var key = new SiteKey(0, AuthenticationAlgorithm.HmacSha256, PlannersKey);
        var request = InfoRequest(1000, "10.1.4.0", 24);
        Send(request.ToSignedArray(key));
        byte[] bytes = Receive() ?? throw new AssertionException("no Info-Reply");
        var reply = new InfoMessage();
        Assert.That(reply.TryDecode(bytes).Ok, Is.True);
        Assert.That(MessageAuthentication.Verify(bytes, key), Is.EqualTo(AuthenticationFailure.None), "signed with the key the request was signed with");
        var client = (IPEndPoint)_client.LocalEndPoint!;
        Assert.That((reply.IsReply, reply.Nonce, reply.TtlMinutes, reply.EidMaskLength, reply.EidPrefix.ToString()),
            Is.EqualTo((true, request.Nonce, 60u, (byte)24, request.EidPrefix.ToString())));
        Assert.That((reply.GlobalEtrRloc.ToString(), (int)reply.EtrPort), Is.EqualTo((client.Address.ToString(), client.Port)), "what the Map-Server saw");
        Assert.That((reply.MsRloc.ToString(), (int)reply.MsPort), Is.EqualTo((_endpoint.Address.ToString(), _endpoint.Port)));
        Assert.That(reply.Rtrs.Select(r => r.ToString()), Is.EqualTo(new[] { "192.0.2.100", "2001:db8::100" }));
        Assert.That((_server.Counters[MsCounter.InfoRequestsReceived], _server.Counters[MsCounter.InfoRepliesSent]), Is.EqualTo((1L, 1L)));
    }

    [Test]
    public void InfoRequest_WithAWrongKey_OrForNoSite_OrAsAReply_GetsNothing()
    {
        Send(InfoRequest(1000, "10.1.4.0", 24).ToSignedArray(new SiteKey(0, AuthenticationAlgorithm.HmacSha256, "guess"u8.ToArray())));
        Send(InfoRequest(1000, "10.1.4.0", 24).ToArray()); // unauthenticated
        Send(InfoRequest(1000, "10.200.0.0", 16).ToSignedArray(new SiteKey(0, AuthenticationAlgorithm.HmacSha256, PlannersKey)));
        var reply = InfoRequest(1000, "10.1.4.0", 24);
        reply.IsReply = true;
        Send(reply.ToSignedArray(new SiteKey(0, AuthenticationAlgorithm.HmacSha256, PlannersKey)));
        Assert.That(Receive(500), Is.Null, "no reflection of addresses for anyone who asks");
        Assert.That((_server.Counters[MsCounter.InfoRequestAuthenticationFailed], _server.Counters[MsCounter.InfoRequestNoSiteForEid], _server.Counters[MsCounter.InfoRepliesSent]),
            Is.EqualTo((2L, 1L, 0L)));
    }

    [Test]
    public void InfoRequestFlood_IsHeldToTheMapRequestRate()
    {
        TearDown();
        Start(Config.Replace("map-request-rate 100000 100000", "map-request-rate 1 2", StringComparison.Ordinal));
        var key = new SiteKey(0, AuthenticationAlgorithm.HmacSha256, PlannersKey);
        for (int i = 0; i < 20; i++) Send(InfoRequest(1000, "10.1.4.0", 24).ToSignedArray(key));
        int replies = 0;
        while (Receive(300) is not null) replies++;
        Assert.That(replies, Is.InRange(1, 3), "the burst of 2, and perhaps one token refilled");
        Assert.That(_server.Counters[MsCounter.RateLimitedInfoRequest], Is.EqualTo(20 - replies));
    }
}
