using System.Net;
using FastXtr.Common;
using FastXtr.MapServer;
using FastXtr.Lisp.Messages;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.MapServer;

/// <summary>
/// The Map-Server as a LISP-DDT node and DDT Map-Server (RFC 8111): DDT Map-Requests (ECM with the D bit) over
/// loopback, answered with Map-Referrals.
/// </summary>
public partial class MapServerTests
{
    private const string DdtConfigText = """
        listen 127.0.0.1:0
        map-request-rate 100000 100000
        map-register-rate 100000 100000
        ddt-authority 1000 10.0.0.0/8
        ddt-delegate 1000 10.2.0.0/16 node 192.0.2.20 192.0.2.21,2,50
        ddt-delegate 1000 10.4.0.0/16 map-server 192.0.2.30
        ddt-map-server-peer 192.0.2.40,1,100
        site planners
          key 0 sha256 "planners-secret"
          eid-prefix 1000 10.1.0.0/16 accept-more-specifics
          proxy-reply
        """;

    private void StartDdt(string config = DdtConfigText)
    {
        _client.Dispose();
        _server.Dispose();
        Start(config);
    }

    private byte[] DdtEcm(uint iid, string eid, ulong nonce)
    {
        var bytes = Ecm(iid, eid, nonce: nonce);
        var ecm = new EncapsulatedControlMessage();
        ecm.Decode(bytes);
        ecm.DdtOriginated = true;
        return ecm.ToArray();
    }

    /// <summary>Sends a DDT Map-Request and returns the Map-Referral with its nonce (other answers are kept aside).</summary>
    private ReferralRecord Refer(uint iid, string eid)
    {
        ulong nonce = (ulong)Random.Shared.NextInt64();
        Send(DdtEcm(iid, eid, nonce));
        for (int i = 0; i < 5; i++)
        {
            var bytes = ReceiveFromSocket(2000) ?? throw new AssertionException($"no Map-Referral for [{iid}]{eid}");
            var referral = new MapReferral();
            if (referral.TryDecode(bytes).Ok && referral.Nonce == nonce)
            {
                Assert.That(referral.Records, Has.Count.EqualTo(1));
                return referral.Records[0];
            }
            _stash.Enqueue(bytes);
        }
        throw new AssertionException("no Map-Referral with our nonce");
    }

    private static string Targets(ReferralRecord r) => string.Join(" ", r.Referrals.Select(l => $"{l.Locator},{l.Priority},{l.Weight}"));

    [Test]
    public void Ddt_RegisteredEid_IsMsAck_WithThePeers_AndTheItrIsAnsweredToo()
    {
        StartDdt();
        RegisterAndWaitForNotify(Register(1000, "10.1.0.5", 32, 1, ("192.0.2.1", 1, null)), PlannersKey);
        var r = Refer(1000, "10.1.0.5");
        Assert.That((r.Action, r.TtlMinutes, r.Authoritative, r.Incomplete, r.EidMaskLength, r.EidPrefix.ToString()),
            Is.EqualTo((MapReferralAction.MsAck, 1440u, true, false, (byte)32, "[1000]10.1.0.5")));
        Assert.That(Targets(r), Is.EqualTo("192.0.2.40,1,100"), "the configured Map-Server peers");
        // The site proxy-replies: the ITR (our client, its ITR-RLOC) gets the Map-Reply as well.
        var reply = new MapReply();
        var answered = Receive() ?? throw new AssertionException("no Map-Reply to the ITR after the MS-ACK");
        Assert.That(reply.TryDecode(answered).Ok, Is.True);
        Assert.That(reply.Records[0].Locators.Single().Locator.ToString(), Is.EqualTo("192.0.2.1"));
        Assert.That((_server.Counters[MsCounter.DdtMapRequestsReceived], _server.Counters[MsCounter.ReferralsMapServerAck], _server.Counters[MsCounter.MapReferralsSent], _server.Counters[MsCounter.MapRepliesSent]),
            Is.EqualTo((1L, 1L, 1L, 1L)));
    }

    [Test]
    public void Ddt_UnregisteredEidInASite_IsMsNotRegistered_ForTheSite_WithTheShortTtl()
    {
        StartDdt();
        var r = Refer(1000, "10.1.7.7");
        Assert.That((r.Action, r.TtlMinutes, r.Authoritative, r.Incomplete, r.EidMaskLength, r.EidPrefix.ToString()),
            Is.EqualTo((MapReferralAction.MsNotRegistered, 1u, true, false, (byte)16, "[1000]10.1.0.0")));
        Assert.That(Receive(300), Is.Null, "nothing goes to the ITR: the Map-Resolver answers it");
        // Without peers the referral set is incomplete (I bit): this server is not listed in its own answer.
        StartDdt(DdtConfigText.Replace("ddt-map-server-peer 192.0.2.40,1,100\n", "", StringComparison.Ordinal));
        var alone = Refer(1000, "10.1.7.7");
        Assert.That((alone.Action, alone.Incomplete, alone.Referrals.Count), Is.EqualTo((MapReferralAction.MsNotRegistered, true, 0)));
    }

    [Test]
    public void Ddt_DelegatedSpace_IsReferredToItsNodesOrMapServers()
    {
        StartDdt();
        var node = Refer(1000, "10.2.3.4");
        Assert.That((node.Action, node.TtlMinutes, node.Authoritative, node.EidMaskLength, node.EidPrefix.ToString(), Targets(node)),
            Is.EqualTo((MapReferralAction.NodeReferral, 1440u, true, (byte)16, "[1000]10.2.0.0", "192.0.2.20,1,100 192.0.2.21,2,50")));
        var ms = Refer(1000, "10.4.200.1");
        Assert.That((ms.Action, ms.EidMaskLength, ms.EidPrefix.ToString(), Targets(ms)),
            Is.EqualTo((MapReferralAction.MsReferral, (byte)16, "[1000]10.4.0.0", "192.0.2.30,1,100")));
        Assert.That(_server.Counters[MsCounter.ReferralsDelegation], Is.EqualTo(2));
    }

    [Test]
    public void Ddt_UndelegatedAuthoritativeSpace_IsADelegationHole_ThatStopsShortOfDelegationsAndSites()
    {
        StartDdt();
        // 10.200.0.1 shares 8 bits with 10.1/16 (the site), 10.2/16 and 10.4/16: the hole is 10.128.0.0/9.
        var wide = Refer(1000, "10.200.0.1");
        Assert.That((wide.Action, wide.TtlMinutes, wide.Authoritative, wide.EidMaskLength, wide.EidPrefix.ToString(), wide.Referrals.Count),
            Is.EqualTo((MapReferralAction.DelegationHole, 15u, true, (byte)9, "[1000]10.128.0.0", 0)));
        // 10.3.1.1 shares 15 bits with 10.2/16: the hole is 10.3.0.0/16.
        var near = Refer(1000, "10.3.1.1");
        Assert.That((near.Action, near.EidMaskLength, near.EidPrefix.ToString()), Is.EqualTo((MapReferralAction.DelegationHole, (byte)16, "[1000]10.3.0.0")));
        // 10.0.0.1 shares 15 bits with the site's 10.1/16, which the hole must not cover: 10.0.0.0/16.
        var low = Refer(1000, "10.0.0.1");
        Assert.That((low.Action, low.EidMaskLength, low.EidPrefix.ToString()), Is.EqualTo((MapReferralAction.DelegationHole, (byte)16, "[1000]10.0.0.0")));
    }

    [Test]
    public void Ddt_SpaceOutsideTheAuthority_IsNotAuthoritative_AndNeverCached()
    {
        StartDdt();
        foreach (var (iid, eid) in new[] { (1000u, "172.16.0.1"), (4000u, "10.1.0.5") })
        {
            var r = Refer(iid, eid);
            Assert.That((r.Action, r.TtlMinutes, r.Authoritative, r.EidMaskLength, r.Referrals.Count),
                Is.EqualTo((MapReferralAction.NotAuthoritative, 0u, false, (byte)32, 0)), $"[{iid}]{eid}");
        }
        // A server with no DDT settings answers every DDT request outside its sites this way.
        StartDdt(Config);
        Assert.That(Refer(1000, "10.9.0.1").Action, Is.EqualTo(MapReferralAction.NotAuthoritative));
        Assert.That(_server.Counters[MsCounter.ReferralsNotAuthoritative], Is.EqualTo(1));
    }

    [TestCase("ddt-delegate 1000 10.9.0.0/16 node 192.0.2.9", "line 1: ddt-delegate 1000 10.9.0.0/16 lies outside every ddt-authority")]
    [TestCase("ddt-authority 1000 10.0.0.0/8\nddt-delegate 1000 10.0.0.0/8 node 192.0.2.9", "line 2: ddt-delegate 1000 10.0.0.0/8 lies outside every ddt-authority")]
    [TestCase("ddt-authority 1000 10.0.0.0/8\nddt-delegate 1000 10.2.0.0/16 node 192.0.2.9\nddt-delegate 1000 10.2.128.0/17 map-server 192.0.2.8", "line 3: ddt-delegate 1000 10.2.128.0/17 overlaps the delegation on line 2")]
    [TestCase("ddt-authority 1000 10.0.0.0/8\nddt-authority 1000 10.5.0.0/16", "line 2: ddt-authority 1000 10.5.0.0/16 overlaps the one on line 1")]
    [TestCase("ddt-authority 1000 10.0.0.0/8\nddt-delegate 1000 10.2.0.0/16 resolver 192.0.2.9", "line 2: expected 'ddt-delegate IID PREFIX node|map-server")]
    [TestCase("ddt-authority 1000 10.0.0.0/8\nddt-delegate 1000 10.2.0.0/16 node 192.0.2.9,1", "line 2: '192.0.2.9,1' is not ADDRESS or ADDRESS,PRIORITY,WEIGHT")]
    [TestCase("ddt-map-server-peer 192.0.2.9,1,300", "line 1: weight '300' must be a number from 0 to 255")]
    public void Ddt_ConfigurationErrors_AreRefusedWithLineAndReason(string text, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => MapServerConfig.Parse(text.Split('\n'), "ddt.conf"))!;
        Assert.That(e.Message, Does.Contain("ddt.conf " + expected));
    }
}
