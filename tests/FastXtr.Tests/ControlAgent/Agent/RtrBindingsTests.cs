using System.Net;
using FastXtr.Agent;
using FastXtr.Lisp.Messages;
using FastXtr.Packets;
using FastXtr.SharedMemory;
using FastXtr.SharedMemory.MapCache;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.Agent;

/// <summary>
/// The RTR's bindings without sockets: what an authenticated Info-Request installs, what is refused, and that a
/// Map-Reply for a bound prefix (the Map-Server hands out the RTR itself) never replaces the binding.
/// </summary>
[TestFixture]
public class RtrBindingsTests
{
    private static readonly SiteKey Key = new(0, AuthenticationAlgorithm.HmacSha256, "site-secret"u8.ToArray());
    private static readonly IPAddress Nat = IPAddress.Parse("198.51.100.1");
    private SharedRegion _region = null!;
    private AgentCounters _counters = null!;
    private MapCacheOwner _cache = null!;
    private RtrBindings _rtr = null!;

    [SetUp]
    public void SetUp()
    {
        var config = AgentConfig.Parse(["rloc-addr 198.51.100.20", "map-resolver 198.51.100.10", "nat-site 1000 10.0.0.0/8 0 sha256 \"site-secret\"", "nat-binding-timeout 2"]);
        config.Rtr = true;
        _region = SharedRegion.CreatePrivate(new SharedRegionSizes(256, 16, 1, 16));
        _counters = new AgentCounters();
        var io = new AgentIo(config, new AgentDatabase(config.Database), _counters, NullLogger.Instance, []);
        _cache = new MapCacheOwner(io, _region);
        _rtr = new RtrBindings(io, _cache);
        io.Rtr = _rtr;
    }

    [TearDown]
    public void TearDown()
    {
        _cache.Dispose();
        _region.Dispose();
    }

    private static byte[] Request(string prefix, ulong nonce, SiteKey key, uint ttl = 1) => new InfoMessage
    {
        Nonce = nonce, TtlMinutes = ttl, EidMaskLength = 24,
        EidPrefix = EidAddress.WithInstanceId(1000, EidFamily.Ipv4, Ipv4Header.ToUInt32(IPAddress.Parse(prefix))),
    }.ToSignedArray(key);

    private RlocSlot? Locator(string eid) =>
        _region.MapCache.TryLookup(new MapCacheKey(1000, 0, EidFamily.Ipv4, Ipv4Header.ToUInt32(IPAddress.Parse(eid))), out var e) && e.RlocCount > 0 ? e.Rlocs[0] : null;

    private static MapCacheEntrySpec Resolved(string prefix) =>
        new(1000, 0, EidFamily.Ipv4, Ipv4Header.ToUInt32(IPAddress.Parse(prefix)), 24, [], TtlMinutes: 1);

    [Test]
    public void AnAuthenticatedRequest_InstallsTheTranslatedBinding_SentFromTheDataPort_AndAReplyNeverReplacesIt()
    {
        _rtr.OnInfoRequest(Request("10.1.0.0", 100, Key), Nat, 61001);
        var slot = Locator("10.1.0.5");
        Assert.That((slot?.Address, slot?.Port, slot?.NatTraversed), Is.EqualTo(((UInt128)Ipv4Header.ToUInt32(Nat), (ushort)61001, true)));
        Assert.That(_rtr.All.Single().PrefixText, Is.EqualTo("[1000]10.1.0.0/24"));
        Assert.That(_rtr.InstallResolved(Resolved("10.1.0.0")), Is.False, "the Map-Server's answer for a bound prefix is the RTR itself: skipped");
        Assert.That(Locator("10.1.0.5")?.NatTraversed, Is.True, "the binding stays");
        Assert.That(_rtr.InstallResolved(Resolved("10.2.0.0")), Is.True, "a prefix nobody is bound to is installed");
        // The NAT gave the binding a new port: the locator follows (a later nonce).
        _rtr.OnInfoRequest(Request("10.1.0.0", 101, Key), Nat, 61002);
        Assert.That(Locator("10.1.0.5")?.Port, Is.EqualTo((ushort)61002));
        Assert.That((_counters[AgentCounter.RtrInfoRequestsTaken], _counters[AgentCounter.RtrBindingsLearned]), Is.EqualTo((2L, 2L)));
    }

    [Test]
    public void ForgedReplayedAndForeignRequests_MoveNothing()
    {
        _rtr.OnInfoRequest(Request("10.1.0.0", 100, Key), Nat, 61001);
        var other = IPAddress.Parse("203.0.113.9");
        _rtr.OnInfoRequest(Request("10.1.0.0", 200, new SiteKey(0, AuthenticationAlgorithm.HmacSha256, "wrong"u8.ToArray())), other, 4341);
        _rtr.OnInfoRequest(Request("10.1.0.0", 100, Key), other, 4341);
        _rtr.OnInfoRequest(Request("192.168.0.0", 300, Key), other, 4341);
        _rtr.OnInfoRequest([0x70, 0, 0], other, 4341);
        Assert.That(Locator("10.1.0.5")?.Address, Is.EqualTo((UInt128)Ipv4Header.ToUInt32(Nat)), "still the NAT the xTR's own request came from");
        Assert.That((_counters[AgentCounter.RtrInfoRequestsAuthenticationFailed], _counters[AgentCounter.RtrInfoRequestsReplayed],
            _counters[AgentCounter.RtrInfoRequestsNoSite], _counters[AgentCounter.RtrInfoRequestsMalformed]), Is.EqualTo((1L, 1L, 1L, 1L)));
    }

    [Test]
    public void ABinding_IsWithdrawnByTtlZero_AndExpiresWithoutKeepalives()
    {
        _rtr.OnInfoRequest(Request("10.1.0.0", 100, Key), Nat, 61001);
        _rtr.OnInfoRequest(Request("10.1.0.0", 101, Key, ttl: 0), Nat, 61001);
        Assert.That((Locator("10.1.0.5"), _rtr.All.Count), Is.EqualTo(((RlocSlot?)null, 0)), "withdrawn at once");
        _rtr.OnInfoRequest(Request("10.1.0.0", 102, Key), Nat, 61001);
        _rtr.Expire();
        Assert.That(Locator("10.1.0.5"), Is.Not.Null, "fresh: kept");
        Thread.Sleep(2100); // nat-binding-timeout 2
        _rtr.Expire();
        Assert.That((Locator("10.1.0.5"), _rtr.All.Count, _counters[AgentCounter.RtrBindingsExpired]), Is.EqualTo(((RlocSlot?)null, 0, 1L)));
    }
}
