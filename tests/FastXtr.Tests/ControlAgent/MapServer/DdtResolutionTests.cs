using System.Net;
using System.Net.Sockets;
using FastXtr.Lisp.Messages;
using FastXtr.MapServer;
using FastXtr.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.MapServer;

/// <summary>
/// A DDT tree of three Map-Servers on loopback addresses (RFC 8111; referrals carry addresses only, so each listens
/// on port 4342 of its own 127.0.1.x): a root node delegating 10.1.0.0/16 to a DDT Map-Server and 10.2.0.0/16 to
/// a Map-Server that does not answer, and a Map-Resolver with the root as its ddt-root. An ITR (the test's socket)
/// asks the Map-Resolver and gets its answer from the Map-Server, or a negative one from the Map-Resolver.
/// </summary>
[TestFixture]
[NonParallelizable]
public class DdtResolutionTests
{
    private static readonly IPAddress Root = IPAddress.Parse("127.0.1.1"), Ms = IPAddress.Parse("127.0.1.2"), Mr = IPAddress.Parse("127.0.1.3");
    private MapServerHost _root = null!, _ms = null!, _mr = null!;
    private Socket _itr = null!;

    [SetUp]
    public void SetUp()
    {
        _root = Host($"""
            listen {Root}:4342
            ddt-authority 1000 10.0.0.0/8
            ddt-delegate 1000 10.1.0.0/16 map-server {Ms}
            ddt-delegate 1000 10.2.0.0/16 map-server 127.0.1.9 {Ms},2,100
            """);
        _ms = Host($"""
            listen {Ms}:4342
            site planners
              key 0 sha256 "planners-secret"
              eid-prefix 1000 10.1.0.0/16 accept-more-specifics
              proxy-reply
            """);
        _mr = Host($"""
            listen {Mr}:4342
            ddt-root {Root}
            ddt-request-timeout 1000
            """);
        _itr = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        _itr.Bind(new IPEndPoint(IPAddress.Loopback, 0));
    }

    private static MapServerHost Host(string config) => new(MapServerConfig.Parse(config.Split('\n')), workers: 1, NullLogger.Instance, controlSocket: false);

    [TearDown]
    public void TearDown()
    {
        _itr?.Dispose();
        _mr?.Dispose();
        _ms?.Dispose();
        _root?.Dispose();
    }

    private byte[] Ecm(string eid, ulong nonce, string? constraints = null)
    {
        var local = (IPEndPoint)_itr.LocalEndPoint!;
        var source = LispAddress.WithInstanceId(1000, LispAddress.Parse("10.9.9.9"));
        var request = new MapRequest
        {
            Nonce = nonce,
            SourceEid = constraints is null ? source : FastXtr.Lisp.Context.ContextEncoding.SourceEidWithConstraints(source, FastXtr.Lisp.Context.AgentConstraints.TryParse(constraints, out _)!),
        };
        request.ItrRlocs.Add(LispAddress.FromIp(local.Address));
        request.Records.Add(new MapRequestRecord(LispAddress.WithInstanceId(1000, LispAddress.Parse(eid)), 32));
        var ecm = new EncapsulatedControlMessage { InnerSourcePort = (ushort)local.Port };
        ecm.SetInnerAddresses(IPAddress.Parse("10.9.9.9"), IPAddress.Parse(eid));
        ecm.SetInnerMessage(request.ToArray());
        return ecm.ToArray();
    }

    /// <summary>Asks the Map-Resolver as an ITR does and returns the Map-Reply with our nonce and who sent it.</summary>
    private (MapReply Reply, IPEndPoint From) Ask(string eid, int timeoutMs = 3000, string? constraints = null)
    {
        ulong nonce = (ulong)Random.Shared.NextInt64();
        _itr.SendTo(Ecm(eid, nonce, constraints), new IPEndPoint(Mr, 4342));
        var buffer = new byte[65536];
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (DateTime.UtcNow < deadline)
        {
            _itr.ReceiveTimeout = Math.Max(1, (int)(deadline - DateTime.UtcNow).TotalMilliseconds);
            EndPoint from = new IPEndPoint(IPAddress.Any, 0);
            int n;
            try { n = _itr.ReceiveFrom(buffer, ref from); }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut) { break; }
            var reply = new MapReply();
            if (reply.TryDecode(buffer.AsSpan(0, n)).Ok && reply.Nonce == nonce) return (reply, (IPEndPoint)from);
        }
        throw new AssertionException($"no Map-Reply for {eid}; resolver counters: {Counters(_mr)}");
    }

    private static string Counters(MapServerHost h) => string.Join(", ", h.Counters.ToDictionary().Where(kv => kv.Value != 0 && kv.Key.StartsWith("ddt", StringComparison.Ordinal)).Select(kv => $"{kv.Key}={kv.Value}"));

    private void Register(string eid, string rloc)
    {
        var m = new MapRegister { Nonce = 5, WantMapNotify = true, AlgorithmId = AuthenticationAlgorithm.HmacSha256, XtrIdPresent = true, XtrId = 7, SiteId = 1 };
        var rec = new MappingRecord { TtlMinutes = 1440, EidMaskLength = 32, Authoritative = true, EidPrefix = LispAddress.WithInstanceId(1000, LispAddress.Parse(eid)) };
        rec.Locators.Add(new LocatorRecord(LispAddress.Parse(rloc), 1, 100));
        m.Records.Add(rec);
        _itr.SendTo(m.ToSignedArray("planners-secret"u8.ToArray()), new IPEndPoint(Ms, 4342));
        Poll.Until(() => _ms.Store.TryLookup(1000, EidFamily.Ipv4, Ipv4(eid), out _), "the registration at the Map-Server");
    }

    private static UInt128 Ipv4(string a) => FastXtr.Packets.Ipv4Header.ToUInt32(IPAddress.Parse(a));

    [Test]
    public void RegisteredEid_IsAnsweredByTheMapServer_ThroughTheTree_AndTheNextAskGoesStraightToIt()
    {
        Register("10.1.0.5", "192.0.2.55");
        var (reply, from) = Ask("10.1.0.5");
        Assert.That(from.Address, Is.EqualTo(Ms), "the DDT Map-Server answered the ITR itself (MS-ACK to the resolver)");
        Assert.That(reply.Records[0].Locators.Single().Locator.ToString(), Is.EqualTo("192.0.2.55"));
        // The MS-ACK to the resolver and the Map-Reply to us leave the Map-Server together: wait for the first.
        Poll.Until(() => _mr.Resolver.PendingCount == 0, "the MS-ACK ends the walk");
        Assert.That((_mr.Counters[MsCounter.DdtRequestsStarted], _mr.Counters[MsCounter.DdtMapRequestsSent], _mr.Counters[MsCounter.DdtResolvedByMapServer]), Is.EqualTo((1L, 2L, 1L)),
            "root, then the Map-Server");
        var cache = _mr.Resolver.CacheSnapshot(MapServerCore.NowMs);
        // The MS-ACK is not cached beside the MS-REFERRAL that already names the Map-Server that sent it: one entry
        // per EID asked would grow the cache to the number of agents ever resolved, for nothing.
        Assert.That(cache.Select(c => (c.Action, c.Length)), Is.EquivalentTo(new[] { (MapReferralAction.MsReferral, 16) }));

        // Cached: the second walk asks the Map-Server at once.
        var (again, from2) = Ask("10.1.0.5");
        Assert.That((from2.Address, again.Records[0].Locators.Count), Is.EqualTo((Ms, 1)));
        Assert.That(_mr.Counters[MsCounter.DdtMapRequestsSent], Is.EqualTo(3L), "one more request, straight to the Map-Server");
        Assert.That(_root.Counters[MsCounter.DdtMapRequestsReceived], Is.EqualTo(1L));
    }

    [Test]
    public void AgentConstraints_PassThroughTheTree_ToTheMapServerThatAnswers()
    {
        Register("10.1.0.5", "192.0.2.55");
        // The resolver sends the ITR's own Map-Request on: the Source-EID with its agent constraints reaches the
        // Map-Server that answers, which applies them (CONTEXT-EXTENSION.md §3) as for a request it got directly.
        var (reply, from) = Ask("10.1.0.5", constraints: """{"agent-constraints":{"hardware":["gpu"]}}""");
        Assert.That((from.Address, reply.Records.Count), Is.EqualTo((Ms, 1)));
        Assert.That((_ms.Counters[MsCounter.ConstraintsReceived], _ms.Counters[MsCounter.ConstraintsMalformed], _mr.Counters[MsCounter.ConstraintsReceived]), Is.EqualTo((1L, 0L, 1L)),
            "read intact at the Map-Server (and seen, not changed, by the resolver)");
    }

    [Test]
    public void UnregisteredEid_AndUndelegatedSpace_AreAnsweredNegativelyByTheResolver_AndCached()
    {
        var (notRegistered, from) = Ask("10.1.7.7");
        Assert.That(from.Address, Is.EqualTo(Mr));
        var r = notRegistered.Records[0];
        Assert.That((r.IsNegative, r.EidMaskLength, r.TtlMinutes, r.EidPrefix.ToString()), Is.EqualTo((true, (byte)16, 1u, "[1000]10.1.0.0")), "MS-NOT-REGISTERED: the site, 1 minute");

        var (hole, _) = Ask("10.200.0.1");
        var h = hole.Records[0];
        Assert.That((h.IsNegative, h.EidMaskLength, h.TtlMinutes, h.EidPrefix.ToString()), Is.EqualTo((true, (byte)9, 15u, "[1000]10.128.0.0")), "DELEGATION-HOLE from the root");
        long sent = _mr.Counters[MsCounter.DdtMapRequestsSent];
        var (cached, _) = Ask("10.130.1.1");
        Assert.That((cached.Records[0].IsNegative, cached.Records[0].EidMaskLength), Is.EqualTo((true, (byte)9)));
        Assert.That((_mr.Counters[MsCounter.DdtMapRequestsSent], _mr.Counters[MsCounter.DdtAnsweredFromCache]), Is.EqualTo((sent, 1L)), "answered from the referral cache");

        // Expired entries leave the cache, each at its own TTL: MS-NOT-REGISTERED after a minute, the hole after 15,
        // the MS-REFERRAL (a day) stays.
        long now = MapServerCore.NowMs;
        Assert.That(_mr.Resolver.CachedCount, Is.EqualTo(3));
        _mr.Resolver.Tick(now + 2 * 60_000);
        Assert.That(_mr.Resolver.CachedCount, Is.EqualTo(2));
        _mr.Resolver.Tick(now + 16 * 60_000);
        Assert.That(_mr.Resolver.CachedCount, Is.EqualTo(1));
    }

    [Test]
    public void ADeadTarget_IsSkippedAfterTheTimeout_ForTheNextOne()
    {
        // 10.2.0.0/16 is delegated to 127.0.1.9 (nobody there) first, then to the Map-Server: after a second the
        // resolver asks the Map-Server, which holds no site there and answers NOT-AUTHORITATIVE. The resolver drops
        // the referral that led there and walks once more from the root: the dead target, marked down by its
        // timeout, is now asked after the Map-Server, which answers NOT-AUTHORITATIVE again; the resolver then
        // answers the ITR negatively for the EID alone, with the short TTL. One timeout in all, not two.
        var (reply, from) = Ask("10.2.0.1", timeoutMs: 10_000);
        Assert.That(from.Address, Is.EqualTo(Mr));
        var r = reply.Records[0];
        Assert.That((r.IsNegative, r.EidMaskLength, r.TtlMinutes), Is.EqualTo((true, (byte)32, 1u)));
        Assert.That((_mr.Counters[MsCounter.DdtRequestTimeouts], _mr.Counters[MsCounter.DdtTargetsMarkedDown], _mr.Counters[MsCounter.DdtNotAuthoritative], _ms.Counters[MsCounter.ReferralsNotAuthoritative]),
            Is.EqualTo((1L, 1L, 2L, 2L)));
        Assert.That(_mr.Resolver.DownTargets(MapServerCore.NowMs).Select(d => d.Address.ToString()), Is.EqualTo(new[] { "127.0.1.9" }));
        Assert.That(_mr.Resolver.CacheSnapshot(MapServerCore.NowMs).Where(c => c.Length == 16), Is.Empty, "the referral to the dead target was dropped");
    }

    [Test]
    public void ATargetThatTimedOut_IsAskedLast_ByTheNextWalks_UntilItAnswersAgain()
    {
        // The root is dead for the first walk: one timeout, then no target is left (abandoned).
        _root.Dispose();
        _itr.SendTo(Ecm("10.1.0.5", 11), new IPEndPoint(Mr, 4342));
        Poll.Until(() => _mr.Counters[MsCounter.DdtRequestsAbandoned] == 1, "the walk abandoned after the root's timeout", 5000);
        Assert.That(_mr.Counters[MsCounter.DdtTargetsMarkedDown], Is.EqualTo(1L));
        // The only root is still asked (a down target is asked last, not never), and once it answers it is up again.
        _root = Host($"""
            listen {Root}:4342
            ddt-authority 1000 10.0.0.0/8
            ddt-delegate 1000 10.1.0.0/16 map-server {Ms}
            """);
        Register("10.1.0.5", "192.0.2.55");
        var (reply, from) = Ask("10.1.0.5");
        Assert.That((from.Address, reply.Records[0].IsNegative), Is.EqualTo((Ms, false)));
        Assert.That((_mr.Counters[MsCounter.DdtTargetsUp], _mr.Resolver.DownTargets(MapServerCore.NowMs).Count), Is.EqualTo((1L, 0)));
    }

    [Test]
    public void ReferralsFromElsewhere_AndOnesThatDoNotNarrow_AreNotFollowed()
    {
        // A Map-Referral for a nonce nobody asked about, from the ITR's socket: counted, ignored.
        var stray = new MapReferral { Nonce = 42 };
        stray.Records.Add(new ReferralRecord { Action = MapReferralAction.NodeReferral, EidPrefix = LispAddress.WithInstanceId(1000, LispAddress.Parse("10.0.0.0")), EidMaskLength = 8, TtlMinutes = 1440 });
        _itr.SendTo(stray.ToArray(), new IPEndPoint(Mr, 4342));
        Poll.Until(() => _mr.Counters[MsCounter.DdtReferralsUnexpected] == 1, "the stray referral counted");
        Assert.That(_mr.Resolver.CacheSnapshot(MapServerCore.NowMs), Is.Empty);

        // A root that refers back to itself for the same prefix: the loop guard stops the walk.
        _root.Dispose();
        _root = new MapServerHost(MapServerConfig.Parse($"""
            listen {Root}:4342
            ddt-authority 1000 10.0.0.0/8
            ddt-delegate 1000 10.4.0.0/16 node {Root}
            """.Split('\n')), workers: 1, NullLogger.Instance, controlSocket: false);
        ulong nonce = 77;
        _itr.SendTo(Ecm("10.4.0.1", nonce), new IPEndPoint(Mr, 4342));
        Poll.Until(() => _mr.Counters[MsCounter.DdtReferralLoops] == 1, "the loop detected");
        Assert.That(_mr.Resolver.PendingCount, Is.Zero);
    }
}
