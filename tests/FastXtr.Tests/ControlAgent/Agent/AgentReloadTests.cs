using System.Net;
using FastXtr.Agent;
using FastXtr.MapServer;
using FastXtr.Lisp.Messages;
using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.Agent;

/// <summary>
/// Reloading the agent's configuration (SIGHUP) in process, against real Map-Servers on loopback: only what changed
/// is registered, a new Map-Server gets the whole database, profiles keep their numbers' meaning, and a reload that
/// cannot apply changes nothing.
/// </summary>
[TestFixture]
[NonParallelizable]
public class AgentReloadTests
{
    private const string Secret = "planners-secret";
    private const string Rloc = "127.0.0.61";
    private readonly List<IDisposable> _cleanup = [];

    [TearDown]
    public void Stop()
    {
        foreach (var d in Enumerable.Reverse(_cleanup)) d.Dispose();
        _cleanup.Clear();
    }

    private MapServerHost StartMapServer(string address = "127.0.0.71")
    {
        var cfg = MapServerConfig.Parse($"listen {address}\nsite planners\n  key 0 sha256 \"{Secret}\"\n  eid-prefix 1000 10.1.0.0/16 accept-more-specifics\n  proxy-reply\n".Split('\n'));
        var server = new MapServerHost(cfg, 1, NullLogger.Instance, controlSocket: false);
        _cleanup.Add(server);
        return server;
    }

    private static string[] Lines(MapServerHost ms, params string[] extra) =>
        [$"rloc-addr {Rloc}", $"map-server {ms.BoundEndpoints[0]} 0 sha256 \"{Secret}\"", $"map-resolver {ms.BoundEndpoints[0]}", "rloc-probe-interval 0", .. extra];

    private (XtrAgent Agent, SharedRegion Region) StartAgent(string[] lines)
    {
        var region = SharedRegion.CreatePrivate(new SharedRegionSizes(256, 16, 1, 64));
        _cleanup.Add(region);
        var agent = new XtrAgent(AgentConfig.Parse(lines), region, NullLogger.Instance);
        _cleanup.Add(agent);
        return (agent, region);
    }

    private static string? Registered(MapServerHost ms, string eid) =>
        ms.Store.TryGet(new EidKey(1000, EidFamily.Ipv4, Ipv4Header.ToUInt32(IPAddress.Parse(eid)), 32), out var reg)
            ? string.Join(",", reg.EffectiveRlocs().Select(r => r.Address.ToString())) : null;


    [Test]
    public void Reload_RegistersWhatChanged_WithdrawsWhatWentAway_AndLeavesTheRestAlone()
    {
        var ms = StartMapServer();
        var (agent, _) = StartAgent(Lines(ms, "database-mapping 1000 10.1.0.5/32 192.0.2.5", "database-mapping 1000 10.1.0.6/32 192.0.2.6", "database-mapping 1000 10.1.0.8/32 192.0.2.8"));
        Poll.Until(() => Registered(ms, "10.1.0.5") is not null && Registered(ms, "10.1.0.6") is not null && Registered(ms, "10.1.0.8") is not null, "the first registration");
        var sent = new System.Collections.Concurrent.ConcurrentBag<string>();
        agent.BeforeRegisterSendForTests = m => { foreach (var r in m.Records) sent.Add($"{r.EidPrefix}/{r.EidMaskLength} ttl {r.TtlMinutes}"); };

        var result = agent.Reload(AgentConfig.Parse(Lines(ms,
            "database-mapping 1000 10.1.0.5/32 192.0.2.5",
            "database-mapping 1000 10.1.0.6/32 192.0.2.66",
            "database-mapping 1000 10.1.0.7/32 192.0.2.7 context {\"agent-context\":{\"hardware\":[\"gpu\"]}}")));

        Assert.That((result.MappingsRegistered, result.MappingsWithdrawn), Is.EqualTo((new[] { "[1000]10.1.0.6/32", "[1000]10.1.0.7/32" }, new[] { "[1000]10.1.0.8/32" })), result.ToString());
        Assert.That((result.MapServersRegisteredWith, result.MapResolversChanged, result.NeedRestart), Is.EqualTo((Array.Empty<string>(), false, Array.Empty<string>())));
        Poll.Until(() => Registered(ms, "10.1.0.6") == "192.0.2.66" && Registered(ms, "10.1.0.7") == "192.0.2.7" && Registered(ms, "10.1.0.8") is null, "the changes reached the Map-Server");
        Assert.That(Registered(ms, "10.1.0.5"), Is.EqualTo("192.0.2.5"));
        Assert.That(sent, Has.None.Contains("10.1.0.5"), "an unchanged mapping is not re-registered: " + string.Join("; ", sent));
        Assert.That(sent, Has.Some.Contains("10.1.0.8/32 ttl 0"), "the removed one is withdrawn (TTL 0)");
        Assert.That(agent.Database.Configured.Select(m => m.PrefixText), Is.EqualTo(new[] { "[1000]10.1.0.5/32", "[1000]10.1.0.6/32", "[1000]10.1.0.7/32" }));
        Assert.That(agent.Counters[AgentCounter.ConfigReloads], Is.EqualTo(1));
    }

    [Test]
    public void Reload_ANewMapServer_GetsTheWholeDatabase_AndTheOldOneHearsNothing()
    {
        var first = StartMapServer();
        var second = StartMapServer("127.0.0.72");
        var (agent, _) = StartAgent(Lines(first, "database-mapping 1000 10.1.0.5/32 192.0.2.5", "database-mapping 1000 10.1.0.6/32 192.0.2.6"));
        Poll.Until(() => first.Counters[MsCounter.MapRegistersAccepted] >= 1 && agent.Counters[AgentCounter.RegistrationsAcknowledged] >= 1, "registered with the first");
        long before = first.Counters[MsCounter.MapRegistersAccepted];

        var result = agent.Reload(AgentConfig.Parse([.. Lines(first, "database-mapping 1000 10.1.0.5/32 192.0.2.5", "database-mapping 1000 10.1.0.6/32 192.0.2.6"),
            $"map-server {second.BoundEndpoints[0]} 0 sha256 \"{Secret}\"", $"map-resolver {second.BoundEndpoints[0]}"]));

        Assert.That((result.MapServersRegisteredWith, result.MapResolversChanged), Is.EqualTo((new[] { second.BoundEndpoints[0].ToString() }, true)), result.ToString());
        Poll.Until(() => Registered(second, "10.1.0.5") is not null && Registered(second, "10.1.0.6") is not null, "the new Map-Server has the whole database");
        Assert.That(agent.MapResolverStates().Select(r => r.Endpoint), Is.EqualTo(new[] { first.BoundEndpoints[0], second.BoundEndpoints[0] }));
        Thread.Sleep(300);
        Assert.That(first.Counters[MsCounter.MapRegistersAccepted], Is.EqualTo(before), "nothing changed for the first Map-Server");
    }

    [Test]
    public void Reload_AChangedProfile_GetsANewNumber_AndItsSourcePrefixMovesToIt()
    {
        var ms = StartMapServer();
        const string gpu = "profile gpu {\"agent-constraints\":{\"hardware\":[\"gpu\"]}}";
        var (agent, region) = StartAgent(Lines(ms, gpu, "source-profile 1000 10.1.1.0/24 gpu"));
        ushort Assigned() => region.MapCache.TryLookup(new MapCacheKey(1000, MapCacheEntry.SourceProfileKey, EidFamily.Ipv4, Ipv4Header.ToUInt32(IPAddress.Parse("10.1.1.9"))), out var e) ? (ushort)e.AssignedProfile : (ushort)0;
        Assert.That(Assigned(), Is.EqualTo(1));

        var result = agent.Reload(AgentConfig.Parse(Lines(ms, "profile gpu {\"agent-constraints\":{\"hardware\":[\"gpu\"],\"max-latency\":\"low\"}}", "source-profile 1000 10.1.1.0/24 gpu")));

        Assert.That(result.ProfilesChanged, Is.EqualTo(new[] { "gpu" }), result.ToString());
        Assert.That(Assigned(), Is.EqualTo(2), "the source prefix resolves under the new number");
        Assert.That(agent.Profiles.Select(p => (p.Number, p.Name)), Is.EqualTo(new[] { ((ushort)1, "gpu (retired at reload)"), ((ushort)2, "gpu") }),
            "number 1 still means the old constraints, for whoever holds it");

        agent.Reload(AgentConfig.Parse(Lines(ms)));
        Assert.That(Assigned(), Is.EqualTo(0), "a removed source-profile line leaves the map-cache");
    }

    [Test]
    public void Reload_ThatCannotApply_ChangesNothing_AndSaysWhy()
    {
        var ms = StartMapServer();
        var (agent, _) = StartAgent(Lines(ms, "database-mapping 1000 10.1.0.5/32 192.0.2.5"));
        Assert.That(agent.Attach("planner", new DatabaseMapping(1000, EidFamily.Ipv4, Ipv4Header.ToUInt32(IPAddress.Parse("10.1.0.9")), 32, [(IPAddress.Parse(Rloc), 1, 100)], null), null).Registered.Wait(5000), Is.True);
        var running = agent.Config;

        Assert.That(agent.ReloadFrom(() => AgentConfig.Parse(Lines(ms, "database-mapping 1000 10.1.0.9/32 192.0.2.9"))), Is.Null);
        Assert.That(agent.ReloadFrom(() => AgentConfig.Parse(Lines(ms, "database-mapping 1000 10.1.0.5/40 192.0.2.5"), "agent.conf")), Is.Null);
        Assert.That(agent.Counters[AgentCounter.ConfigReloadsRefused], Is.EqualTo(2));
        Assert.That(agent.Config, Is.SameAs(running));
        Assert.That(agent.Database.Configured.Select(m => m.PrefixText), Is.EqualTo(new[] { "[1000]10.1.0.5/32" }));
        Assert.That(Assert.Throws<ConfigException>(() => agent.Reload(AgentConfig.Parse(Lines(ms, "database-mapping 1000 10.1.0.9/32 192.0.2.9"))))!.Message,
            Does.Contain("[1000]10.1.0.9/32 is attached through the API (agent 'planner')"));

        var moved = agent.Reload(AgentConfig.Parse([.. Lines(ms, "database-mapping 1000 10.1.0.5/32 192.0.2.5").Select(l => l.Replace(Rloc, "127.0.0.62", StringComparison.Ordinal))]));
        Assert.That(moved.NeedRestart, Has.Count.EqualTo(2), moved.ToString());
        Assert.That(moved.NeedRestart[0], Is.EqualTo($"rloc-addr 127.0.0.62 (still {Rloc})"));
        Assert.That(moved.NeedRestart[1], Does.StartWith("xtr-id ").And.EndWith($"(still {agent.Config.XtrId})"), "derived from the RLOC when not configured");
        Assert.That(agent.Config.RlocAddress!.ToString(), Is.EqualTo(Rloc), "bound at start: kept");
    }
}
