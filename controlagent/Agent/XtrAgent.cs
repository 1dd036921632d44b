using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;
using FastXtr.SharedMemory;
using FastXtr.SharedMemory.MapCache;

namespace FastXtr.Agent;

/// <summary>
/// The xTR control agent: a small root that composes components with one job each over the control socket and the
/// shared region — <see cref="Registrar"/> (the ETR's registrations), <see cref="Resolver"/> (the ITR's Map-Requests
/// and what they install), <see cref="Notifications"/> (Map-Notifies, publications, SMRs), <see cref="EtrResponder"/>
/// (the ETR's answers), <see cref="RlocProber"/> and <see cref="MapCacheOwner"/> (the map-cache's single writer) — and
/// runs them on two threads: a receive thread that dispatches control messages, and one loop that drains the data
/// plane's miss rings and runs the periodic work in turn (registration refresh, retransmissions, expiry and region
/// following, RLOC probing), so that no two ticks ever overlap. The local agent API's operations are here.
/// </summary>
public sealed class XtrAgent : IDisposable
{
    /// <summary>How long a moved-away EID keeps soliciting the ITRs that still send to it.</summary>
    public static readonly TimeSpan MovedAwayLifetime = TimeSpan.FromMinutes(5);

    private readonly AgentIo _io;
    // The control sockets: UDP 4342 on each RLOC (one per family).
    private readonly List<Socket> _sockets = [];
    private readonly ILogger _log;
    private readonly MapCacheOwner _cache;
    private readonly ProfileTable _profiles;
    private readonly RlocProber _prober;
    private readonly Registrar _registrar;
    private readonly Resolver _resolver;
    private readonly Notifications _notifications;
    private readonly EtrResponder _etr;
    private readonly NatDiscovery _nat;
    private readonly NatKeepalive _keepalive;
    // fastxtr rtr: the bindings of xTRs behind NAT, and the data plane workers' inboxes of Info-Requests.
    private readonly RtrBindings? _rtr;
    private readonly IReadOnlyList<FastXtr.SharedMemory.ControlInbox> _inboxes;
    private readonly Thread _receiver, _loop;
    private readonly List<Periodic> _periodic;
    private readonly object _reloadLock = new();
    private volatile bool _stopping;

    /// <summary>Periodic work of the loop: due again <see cref="PeriodMs"/> after it last ran (missed ticks are not made up).</summary>
    private sealed class Periodic(string name, long periodMs, long firstDueMs, Action work)
    {
        public string Name { get; } = name;
        /// <summary>Changed by a reload (register-interval, rloc-probe-interval); takes effect from the next run.</summary>
        public long PeriodMs { get; set; } = periodMs;
        public long DueMs { get; set; } = firstDueMs;
        public Action Work { get; } = work;
    }

    public AgentCounters Counters { get; } = new();
    /// <summary>What each Map-Server's latest Info-Reply said of this xTR's address (NAT discovery).</summary>
    public IReadOnlyCollection<NatState> NatStates => _nat.States;
    /// <summary>Behind NAT: the RTRs this xTR registers and sends through (empty otherwise).</summary>
    public IReadOnlyList<IPAddress> ThroughRtrs => _io.Rtrs;
    /// <summary>fastxtr rtr: the NAT bindings in force (empty for an xTR).</summary>
    public IReadOnlyList<NatBinding> RtrBindings => _rtr?.All ?? [];
    public AgentDatabase Database { get; }
    /// <summary>The configuration in force (replaced by <see cref="Reload"/>).</summary>
    public AgentConfig Config => _io.Config;
    public IReadOnlyList<(ushort Number, string Name, AgentConstraints Constraints)> Profiles => _profiles.All;

    /// <summary>Test hook: called with each Map-Register just before it is sent (under the registration lock).</summary>
    internal Action<MapRegister>? BeforeRegisterSendForTests
    {
        get => _registrar.BeforeRegisterSendForTests;
        set => _registrar.BeforeRegisterSendForTests = value;
    }

    /// <param name="inboxes">fastxtr rtr (<see cref="AgentConfig.Rtr"/>): the data plane workers' Info-Requests from the data port.</param>
    public XtrAgent(AgentConfig config, SharedRegion region, ILogger log, IReadOnlyList<FastXtr.SharedMemory.ControlInbox>? inboxes = null)
    {
        _inboxes = inboxes ?? [];
        _log = log;
        Database = new AgentDatabase(config.Database);
        foreach (var rloc in config.RlocAddresses)
        {
            var socket = new Socket(rloc.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            _sockets.Add(socket);
            try
            {
                if (rloc.AddressFamily == AddressFamily.InterNetworkV6) socket.DualMode = false;
                socket.Bind(new IPEndPoint(rloc, LispPorts.Control));
            }
            catch (SocketException e)
            {
                foreach (var s in _sockets) s.Dispose();
                throw new ConfigException($"cannot bind {new IPEndPoint(rloc, LispPorts.Control)}: {e.Message}");
            }
        }
        _io = new AgentIo(config, Database, Counters, log, _sockets);
        _cache = new MapCacheOwner(_io, region);
        _profiles = new ProfileTable(config.Profiles);
        _prober = new RlocProber(_io, _cache);
        _registrar = new Registrar(_io);
        _resolver = new Resolver(_io, _cache, _profiles, _prober);
        _notifications = new Notifications(_io, _registrar, _resolver);
        _etr = new EtrResponder(_io);
        _nat = new NatDiscovery(_io) { RtrsChanged = OnRtrsChanged };
        _keepalive = new NatKeepalive(_io);
        if (config.Rtr) _io.Rtr = _rtr = new RtrBindings(_io, _cache);
        foreach (var sp in config.SourceProfiles) InstallSourceProfile(sp.InstanceId, sp.Family, sp.Prefix, sp.Length, _profiles.Number(sp.ProfileName));
        long now = AgentIo.NowMs;
        var periodic = _periodic = new List<Periodic>
        {
            new("register", (long)config.RegisterInterval.TotalMilliseconds, now, () => _registrar.RegisterAll()),
            new("retransmit", 100, now + 100, () => { _registrar.RetransmitRegisters(); _resolver.RetransmitRequests(); }),
            new("expiry", 1000, now + 1000, Housekeeping),
        };
        if (config.NatTraversal)
        {
            periodic.Add(new("nat-discovery", (long)NatDiscovery.Interval.TotalMilliseconds, now, _nat.Round));
            periodic.Add(new("nat-discovery-retransmit", 100, now + 100, _nat.RetransmitUnanswered));
            periodic.Add(new("nat-keepalive", (long)config.NatKeepalive.TotalMilliseconds, now, _keepalive.Round));
        }
        if (_rtr is not null) periodic.Add(new("rtr-expiry", 1000, now + 1000, _rtr.Expire));
        if (config.RlocProbeInterval > TimeSpan.Zero)
            periodic.Add(new("rloc-probe", (long)config.RlocProbeInterval.TotalMilliseconds, now + (long)config.RlocProbeInterval.TotalMilliseconds, _prober.Round));
        _receiver = new Thread(Receive) { IsBackground = true, Name = "agent-receive" };
        _loop = new Thread(() => Loop(periodic)) { IsBackground = true, Name = "agent-loop" };
        _receiver.Start();
        _loop.Start();
        AgentLog.Started(log, config.RlocAddress!, config.Database.Count, config.MapServers.Count, config.MapResolvers.Count, config.Profiles.Count, region.Path);
    }

    /// <summary>
    /// Applies a re-read configuration without a restart (SIGHUP). Database mappings that are new or changed
    /// (locators, context) are registered and removed ones withdrawn, with every Map-Server; a Map-Server that is new or
    /// whose key changed gets the whole database (the others hear nothing: nothing changed for them); a removed
    /// Map-Server is no longer registered with, and what it holds expires there. Map-Resolvers, the Map-Request rate,
    /// register and probe intervals, probe misses and subscribe take effect at once. A profile whose constraints
    /// changed gets a new number (a number always means the same constraints), and its source prefixes move to it.
    /// Settings bound at start (rloc-addr, shm, api-socket, xtr-id, site-id, turning probing on or off) keep their
    /// running values and are reported as waiting for a restart. A database mapping with the prefix of an attached
    /// agent refuses the whole reload (<see cref="ConfigException"/>), changing nothing.
    /// </summary>
    public AgentReloadResult Reload(AgentConfig fresh)
    {
        lock (_reloadLock)
        {
            var running = _io.Config;
            var needRestart = new List<string>();
            void Keep<T>(string what, T now, T wanted, Action restore)
            {
                if (EqualityComparer<T>.Default.Equals(now, wanted)) return;
                needRestart.Add($"{what} {wanted} (still {now})");
                restore();
            }
            Keep("rloc-addr", string.Join(' ', running.RlocAddresses), string.Join(' ', fresh.RlocAddresses), () => fresh.RlocAddresses = running.RlocAddresses);
            Keep("shm", running.SharedMemoryName, fresh.SharedMemoryName, () => fresh.SharedMemoryName = running.SharedMemoryName);
            Keep("api-socket", running.EffectiveApiSocket, fresh.EffectiveApiSocket, () => fresh.ApiSocket = running.ApiSocket);
            Keep("xtr-id", running.XtrId, fresh.XtrId, () => fresh.XtrId = running.XtrId);
            Keep("site-id", running.SiteId, fresh.SiteId, () => fresh.SiteId = running.SiteId);
            Keep("nat-traversal", running.NatTraversal ? "on" : "off", fresh.NatTraversal ? "on" : "off", () => fresh.NatTraversal = running.NatTraversal);
            Keep("rloc-probing", running.RlocProbeInterval > TimeSpan.Zero ? "on" : "off", fresh.RlocProbeInterval > TimeSpan.Zero ? "on" : "off",
                () => fresh.RlocProbeInterval = running.RlocProbeInterval);

            var oldSources = running.SourceProfiles.ToDictionary(sp => (sp.InstanceId, sp.Family, sp.Prefix, sp.Length), sp => _profiles.Number(sp.ProfileName));
            var database = Database.ReplaceConfigured(fresh.Database, out string? conflict) ?? throw new ConfigException($"database-mapping {conflict}");
            var (profilesAdded, profilesChanged, profilesRemoved) = _profiles.ApplyConfigured(fresh.Profiles);
            _io.Config = fresh;

            var newSources = fresh.SourceProfiles.ToDictionary(sp => (sp.InstanceId, sp.Family, sp.Prefix, sp.Length), sp => _profiles.Number(sp.ProfileName));
            foreach (var (k, _) in oldSources.Where(o => !newSources.ContainsKey(o.Key)))
                _cache.Write(w => w.Remove(k.InstanceId, MapCacheEntry.SourceProfileKey, k.Family, k.Prefix, k.Length));
            foreach (var (k, number) in newSources.Where(n => oldSources.GetValueOrDefault(n.Key) != n.Value))
                InstallSourceProfile(k.InstanceId, k.Family, k.Prefix, k.Length, number);

            var mapServersNew = fresh.MapServers.Where(m => !running.MapServers.Any(o => o.Endpoint.Equals(m.Endpoint) && o.Key.SameAs(m.Key))).ToList();
            var mapServersRemoved = running.MapServers.Where(o => !fresh.MapServers.Any(m => m.Endpoint.Equals(o.Endpoint))).ToList();
            bool resolvers = _resolver.Apply(fresh, running);
            foreach (var p in _periodic)
            {
                if (p.Name == "register") p.PeriodMs = (long)fresh.RegisterInterval.TotalMilliseconds;
                else if (p.Name == "rloc-probe") p.PeriodMs = (long)fresh.RlocProbeInterval.TotalMilliseconds;
            }

            if (database.Registered.Count + database.Withdrawn.Count > 0) _registrar.Register(database.Registered, database.Withdrawn);
            if (mapServersNew.Count > 0) _registrar.RegisterAll(mapServersNew);
            Counters.Add(AgentCounter.ConfigReloads);
            var result = new AgentReloadResult(
                database.Registered.Select(m => m.PrefixText).ToList(), database.Withdrawn.Select(m => m.PrefixText).ToList(),
                mapServersNew.Select(m => m.Endpoint.ToString()).ToList(), mapServersRemoved.Select(m => m.Endpoint.ToString()).ToList(),
                resolvers, profilesAdded, profilesChanged, profilesRemoved, needRestart);
            AgentLog.Reloaded(_log, result.ToString());
            return result;
        }
    }

    /// <summary>Reads the configuration again with <paramref name="load"/> and applies it; one that does not load (or is refused) leaves the running one. Null when refused.</summary>
    public AgentReloadResult? ReloadFrom(Func<AgentConfig> load)
    {
        try { return Reload(load()); }
        catch (Exception e) when (e is ConfigException or FormatException or IOException or UnauthorizedAccessException or OverflowException)
        {
            Counters.Add(AgentCounter.ConfigReloadsRefused);
            AgentLog.ReloadRefused(_log, e.Message);
            return null;
        }
    }

    /// <summary>Periodic work never takes the agent down: a failure is reported and the next tick tries again.</summary>
    private void Guard(string what, Action work)
    {
        if (_stopping) return;
        try { work(); }
        catch (ObjectDisposedException) when (_stopping) { }
        catch (Exception e) when (e is SocketException or InvalidOperationException or ArgumentException or ConfigException or LispFormatException or IOException)
        {
            AgentLog.TaskFailed(_log, what, e.Message);
        }
    }

    /// <summary>Called with the seconds each answered Map-Request took from its first send (retransmissions included).</summary>
    public Action<double>? MapRequestAnswered
    {
        get => _io.MapRequestAnswered;
        set => _io.MapRequestAnswered = value;
    }

    /// <summary>Registers the whole database with every Map-Server now (what the refresh timer does).</summary>
    public Task<bool> RegisterAll() => _registrar.RegisterAll();

    /// <summary>The Map-Resolvers with their state, for the status API.</summary>
    public List<MapResolverSet.State> MapResolverStates() => _resolver.MapResolverStates();

    /// <summary>Configured Map-Servers that left a Map-Register unanswered for three sends and have not answered since.</summary>
    public IReadOnlyList<IPEndPoint> UnresponsiveMapServers() =>
        [.. Config.MapServers.Select(m => m.Endpoint).Where(e => _registrar.UnresponsiveMapServers.Contains(e))];

    // ------------------------------------------------------------------ the local agent API's operations

    /// <summary>Attaches an agent: registers it at once, stops soliciting for it, installs its source profile.</summary>
    public (AttachedAgent? Agent, string? Conflict, Task<bool> Registered) Attach(string name, DatabaseMapping mapping, AgentConstraints? constraints)
    {
        ushort profile = constraints is null ? (ushort)0 : _profiles.NumberFor(constraints);
        var now = DateTime.UtcNow;
        var agent = Database.Attach(new AttachedAgent(name, mapping, constraints, profile, now, now), out var conflict);
        if (agent is null) return (null, conflict, Task.FromResult(false));
        _cache.Write(w =>
        {
            w.Remove(mapping.InstanceId, MapCacheEntry.MovedAwayKey, mapping.Family, mapping.Prefix, mapping.Length);
            // A cached mapping of its old home would send this xTR's own traffic for it away.
            foreach (var p in _profiles.NumbersInUse()) w.Remove(mapping.InstanceId, p, mapping.Family, mapping.Prefix, mapping.Length);
        });
        _resolver.StopFollowing(mapping.InstanceId, mapping.Family, mapping.Prefix, mapping.Length);
        if (profile != 0) InstallSourceProfile(mapping.InstanceId, mapping.Family, mapping.Prefix, mapping.Length, profile);
        if (_io.Rtrs.Count > 0)
        {
            InstallRtrDefaults(_io.Rtrs);
            _keepalive.Announce(mapping);
        }
        AgentLog.Attached(_log, name, mapping.PrefixText, profile != 0 ? $" (profile {profile})" : "");
        return (agent, null, _registrar.Register([mapping], []));
    }

    /// <summary>Replaces an attached agent's attributes in place: the same RLOCs re-registered at once (no withdrawal).</summary>
    public (AttachedAgent? Agent, Task<bool> Registered) Update(AttachedAgent current, AgentContext? context)
    {
        var updated = current with { Mapping = current.Mapping with { Context = context }, UpdatedAt = DateTime.UtcNow };
        if (Database.Replace(updated) is null) return (null, Task.FromResult(false));
        AgentLog.Updated(_log, current.Name, current.Mapping.PrefixText, context?.ToString() ?? "no attributes");
        return (updated, _registrar.Register([updated.Mapping], []));
    }

    /// <summary>
    /// Detaches an agent: withdraws its registration, and marks its EID moved-away so that packets still arriving
    /// for it make their ITRs re-resolve (SMR).
    /// </summary>
    public (AttachedAgent? Agent, Task<bool> Withdrawn) Detach(uint iid, EidFamily family, UInt128 prefix, int length)
    {
        var gone = Database.Detach(iid, family, prefix, length);
        if (gone is null) return (null, Task.FromResult(false));
        if (gone.Profile != 0) _cache.Write(w => w.Remove(iid, MapCacheEntry.SourceProfileKey, family, prefix, length));
        _cache.Upsert(MapCacheEntrySpec.MovedAway(iid, family, prefix, length, (uint)MovedAwayLifetime.TotalMinutes));
        _keepalive.Withdraw(gone.Mapping);
        AgentLog.Detached(_log, gone.Name, gone.Mapping.PrefixText);
        return (gone, _registrar.Register([], [gone.Mapping]));
    }

    /// <summary>
    /// NAT discovery changed the RTRs to go through (on the receive thread): behind NAT, every resolution is dropped and
    /// default entries send each Instance ID's traffic to the RTRs, the database is registered again with the RTRs as
    /// its locators, and the RTRs are told this xTR's binding at once; out from behind NAT, the reverse.
    /// </summary>
    private void OnRtrsChanged()
    {
        var rtrs = _io.Rtrs;
        if (rtrs.Count > 0)
        {
            AgentLog.ThroughRtrs(_log, string.Join(", ", rtrs), _io.Config.NatKeepalive.TotalSeconds, _io.Config.DataPort);
            _resolver.DropResolved();
            InstallRtrDefaults(rtrs);
        }
        else RemoveRtrDefaults();
        _ = _registrar.RegisterAll();
        _keepalive.Round();
    }

    /// <summary>
    /// Behind NAT: for each Instance ID of the database, 0.0.0.0/0 and ::/0 to the RTRs (equal priority, weights
    /// shared), marked NAT-traversed: sent from the data port, through the binding the keep-alives hold, and not probed.
    /// </summary>
    private void InstallRtrDefaults(IReadOnlyList<IPAddress> rtrs)
    {
        var locators = rtrs.Select(r => RlocSpec.Of(r, 1, (byte)Math.Max(1, 100 / rtrs.Count), natTraversed: true)).ToList();
        foreach (uint iid in Database.All.Select(m => m.InstanceId).Distinct())
            foreach (var family in new[] { EidFamily.Ipv4, EidFamily.Ipv6 })
                _cache.Upsert(new MapCacheEntrySpec(iid, 0, family, 0, 0, locators, TtlMinutes: uint.MaxValue));
    }

    private void RemoveRtrDefaults() => _cache.Write(w =>
    {
        foreach (uint iid in Database.All.Select(m => m.InstanceId).Distinct())
            foreach (var family in new[] { EidFamily.Ipv4, EidFamily.Ipv6 }) w.Remove(iid, 0, family, 0, 0);
    });

    private void InstallSourceProfile(uint iid, EidFamily family, UInt128 prefix, int length, ushort profile) =>
        _cache.Upsert(MapCacheEntrySpec.SourceProfile(iid, family, prefix, length, profile));

    // ------------------------------------------------------------------ the threads and the housekeeping tick

    /// <summary>
    /// The agent's loop: the miss rings, then whatever periodic work is due, again and again; it sleeps 2 ms only
    /// when a turn found no miss.
    /// </summary>
    private void Loop(List<Periodic> periodic)
    {
        Span<MissRecord> batch = stackalloc MissRecord[64];
        while (!_stopping)
        {
            bool any;
            try { any = DrainRings(batch) | DrainInboxes(); }
            catch (ObjectDisposedException) { return; }
            long now = AgentIo.NowMs;
            foreach (var p in periodic)
            {
                if (now < p.DueMs || _stopping) continue;
                Guard(p.Name, p.Work);
                p.DueMs = AgentIo.NowMs + p.PeriodMs;
            }
            if (!any) Thread.Sleep(2);
        }
    }

    /// <summary>One pass over every worker's miss ring; true when it found something.</summary>
    private bool DrainRings(Span<MissRecord> batch)
    {
        bool any = false;
        var region = _cache.Region;
        for (int w = 0; w < region.Sizes.Workers; w++)
        {
            int n = region.MissRing(w).Drain(batch);
            any |= n > 0;
            for (int i = 0; i < n; i++)
            {
                try
                {
                    switch (batch[i].Kind)
                    {
                        case MissKind.MovedAwayHit: _notifications.SendSmr(batch[i]); break;
                        case MissKind.Miss: _resolver.Request(batch[i].InstanceId, batch[i].Profile, batch[i].Family, batch[i].SourceEid, batch[i].DestinationEid, smrInvoked: false); break;
                        default: Counters.Add(AgentCounter.MissRecordsMalformed); break;
                    }
                }
                catch (SocketException e) { AgentLog.MapRequestFailed(_log, e.Message); }
            }
        }
        return any;
    }

    private readonly byte[] _inboxBuffer = new byte[FastXtr.SharedMemory.ControlInbox.SlotBytes];

    /// <summary>fastxtr rtr: the Info-Requests the workers took from the data port; true when there were any.</summary>
    private bool DrainInboxes()
    {
        if (_rtr is null) return false;
        bool any = false;
        foreach (var inbox in _inboxes)
            while (inbox.TryTake(_inboxBuffer, out int length, out var source, out ushort port))
            {
                any = true;
                var from = FastXtr.Packets.MappedIpv4.IsMapped(source) ? FastXtr.Packets.MappedIpv4.ToAddress(source) : FastXtr.Packets.Ipv6Header.ToAddress(source);
                try { _rtr.OnInfoRequest(_inboxBuffer.AsSpan(0, length), from, port); }
                catch (LispFormatException) { Counters.Add(AgentCounter.RtrInfoRequestsMalformed); }
            }
        return any;
    }

    private void Receive()
    {
        byte[] buffer = new byte[65536];
        var reply = new MapReply();
        var notify = new MapNotify();
        var ecm = new EncapsulatedControlMessage();
        var request = new MapRequest();
        EndPoint from4 = new IPEndPoint(IPAddress.Any, 0), from6 = new IPEndPoint(IPAddress.IPv6Any, 0);
        var readable = new List<Socket>(_sockets.Count);
        int turn = 0;
        while (!_stopping)
        {
            // One thread for every socket, so the handlers below never run concurrently.
            Socket socket;
            if (_sockets.Count == 1) socket = _sockets[0];
            else
            {
                readable.Clear();
                readable.AddRange(_sockets);
                try { Socket.Select(readable, null, null, 200_000); }
                catch (SocketException) when (_stopping) { return; }
                catch (ObjectDisposedException) { return; }
                if (readable.Count == 0) continue;
                socket = readable[turn++ % readable.Count]; // both readable: they take turns
            }
            int n;
            EndPoint from = socket.AddressFamily == AddressFamily.InterNetworkV6 ? from6 : from4;
            try { n = socket.ReceiveFrom(buffer, ref from); }
            catch (SocketException) when (_stopping) { return; }
            catch (ObjectDisposedException) { return; }
            catch (SocketException) { continue; }
            var message = buffer.AsSpan(0, n);
            var source = (IPEndPoint)from;
            try
            {
                switch (LispMessage.PeekType(message))
                {
                    case LispMessageType.MapNotify:
                        if (notify.TryDecode(message).Ok) _notifications.OnMapNotify(message, notify, source);
                        else Counters.Add(AgentCounter.MalformedMessages);
                        break;
                    case LispMessageType.MapReply:
                        if (!reply.TryDecode(message).Ok) Counters.Add(AgentCounter.MalformedMessages);
                        else if (!reply.Probe || !_prober.OnReply(reply.Nonce)) _resolver.OnMapReply(reply);
                        break;
                    case LispMessageType.EncapsulatedControlMessage:
                        // A Map-Request the Map-Server forwarded to this ETR (no proxy-reply for our site).
                        if (ecm.TryDecode(message).Ok && LispMessage.PeekType(ecm.InnerMessage) == LispMessageType.MapRequest && request.TryDecode(ecm.InnerMessage).Ok)
                            _etr.Answer(request, ecm.InnerSourcePort, source);
                        else Counters.Add(AgentCounter.MalformedMessages);
                        break;
                    case LispMessageType.InfoRequest:
                        _nat.OnInfoReply(message, source);
                        break;
                    case LispMessageType.MapRequest:
                        if (!request.TryDecode(message).Ok) { Counters.Add(AgentCounter.MalformedMessages); break; }
                        // An SMR (S bit) or an RLOC probe / direct request (RFC 9301 §6.3.2), answered with the probe bit echoed.
                        if (request.SolicitMapRequest) _notifications.OnSmr(request);
                        else _etr.Answer(request, source.Port, source);
                        break;
                    default:
                        Counters.Add(AgentCounter.MalformedMessages);
                        break;
                }
            }
            catch (LispFormatException) { Counters.Add(AgentCounter.MalformedMessages); }
            catch (SocketException e) { AgentLog.ReceiveFailed(_log, e.Message); }
        }
    }

    private void Housekeeping()
    {
        _cache.FollowReplacedRegion();
        long now = MapCacheTables.Now;
        _cache.RemoveExpired(now, _resolver.Forget);
        _registrar.ForgetOldVersions();
        _resolver.Prune(now);
    }

    public void Dispose()
    {
        _stopping = true;
        _loop.Join(3000); // a tick in progress finishes before the sockets go
        foreach (var socket in _sockets) socket.Dispose();
        _receiver.Join(2000);
        _keepalive.Dispose();
        _registrar.Abandon();
        _cache.Dispose();
    }
}
