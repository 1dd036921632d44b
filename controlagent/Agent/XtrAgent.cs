using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using FastXtr.Lisp.Answers;
using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;
using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;

namespace FastXtr.Agent;

/// <summary>
/// The xTR control agent (issue #5). ETR side: registers the database (configured mappings and agents attached
/// through the API) with every Map-Server, want-map-notify, retransmitted every second until the Map-Notify arrives,
/// refreshed every register-interval, re-registered at once on any change, withdrawn (record TTL 0) on detach;
/// answers forwarded Map-Requests and RLOC probes; solicits (SMR) ITRs that still send to an EID that moved away.
/// ITR side: resolves the data plane's misses with ECM Map-Requests carrying the source's constraint profile and a
/// subscription (RFC 9437), installs authenticated answers only (matching nonce), applies publications at once and
/// acknowledges them, re-resolves on an SMR, probes cached locators and marks them up or down. It is the map-cache's
/// single writer: every write happens under one lock.
/// </summary>
public sealed class XtrAgent : IDisposable
{
    /// <summary>How long a moved-away EID keeps soliciting the ITRs that still send to it.</summary>
    public static readonly TimeSpan MovedAwayLifetime = TimeSpan.FromMinutes(5);
    private const int RegisterAttempts = 5;
    private const int RecordsPerRegister = 20;

    private readonly AgentConfig _config;
    /// <summary>The region and its writer, swapped together when the data plane starts on a fresh region.</summary>
    private sealed record RegionView(SharedRegion Region, MapCacheWriter Writer);
    private volatile RegionView _view;
    private readonly SharedRegion _given;
    private readonly List<(SharedRegion Region, long RetiredMs)> _retired = [];
    private string? _regionProblem;
    private readonly object _writeLock = new();
    private readonly Socket _socket;
    private readonly TextWriter _log;
    private readonly Thread _receiver, _misses;
    private readonly Timer _register, _housekeeping, _retransmit;
    private readonly Timer? _probe;
    private volatile bool _stopping;

    private sealed class PendingRegister
    {
        public required byte[] Datagram;
        public required MapServerPeer To;
        public required ulong Nonce;
        /// <summary>What the message says, record by record, and at which version of each prefix.</summary>
        public required List<(MappingKey Key, ushort Version, bool Withdraw)> Records;
        public required TaskCompletionSource<bool> Done;
        public int Attempts = 1;
        public long NextMs;
    }

    private readonly record struct MappingKey(uint InstanceId, EidFamily Family, UInt128 Prefix, int Length)
    {
        public static MappingKey Of(DatabaseMapping m) => new(m.InstanceId, m.Family, m.Prefix, m.Length);
    }

    // Registration ordering. Every Map-Register — first send, refresh or retransmission — is built from the database
    // and sent while holding _registerLock, and every change to a prefix bumps its map-version under it too; so on
    // the wire, what we say about a prefix is never older than what we said before (a withdrawal is never overtaken
    // by a register built before it), and a retransmission whose content was superseded is not sent again.
    private readonly object _registerLock = new();
    // Each prefix's current map-version and when it last changed (Environment.TickCount64).
    private readonly Dictionary<MappingKey, (ushort Version, long ChangedMs)> _versions = [];
    /// <summary>How long the version of a prefix that left the database is remembered: well past the Map-Server's reorder window.</summary>
    private static readonly TimeSpan ForgetVersionAfter = MapVersioning.ReorderWindow * 6;

    /// <summary>Test hook: called with each Map-Register just before it is sent (under the registration lock).</summary>
    internal Action<MapRegister>? BeforeRegisterSendForTests { get; set; }

    /// <summary>A Map-Request waiting for its answer: what to install it under, and where and when it went.</summary>
    private sealed class PendingRequest
    {
        public required ushort Profile;
        public required UInt128 SourceEid;
        public required byte[] Datagram;
        public required int Resolver;
        public required long SentMs;
        public required long CreatedMs;
        public int Attempts = 1;
    }

    /// <summary>How long a Map-Request waits for its answer before it is sent again, to another resolver if one is up.</summary>
    private const int RequestTimeoutMs = 1000;
    /// <summary>Sends of one Map-Request at most (the first and two retransmissions).</summary>
    private const int RequestAttempts = 3;

    private readonly ConcurrentDictionary<ulong, PendingRegister> _pendingRegisters = new();
    private readonly ConcurrentDictionary<ulong, PendingRequest> _pendingRequests = new();
    private readonly Dictionary<(uint, ushort, UInt128), long> _lastRequest = [];
    private readonly RateLimiter _requestRate;
    private readonly MapResolverSet _resolvers;
    // What this ITR resolved, so that publications and SMRs reach the right profiles: prefix → profile → source EID.
    private readonly ConcurrentDictionary<(uint Iid, EidFamily Family, UInt128 Prefix, int Length), ConcurrentDictionary<ushort, UInt128>> _resolved = new();
    private readonly ProfileTable _profiles;
    private readonly RlocProber _prober;

    public AgentCounters Counters { get; } = new();
    public AgentDatabase Database { get; }
    public AgentConfig Config => _config;
    public IReadOnlyList<(ushort Number, string Name, AgentConstraints Constraints)> Profiles => _profiles.All;

    public XtrAgent(AgentConfig config, SharedRegion region, TextWriter log)
    {
        _config = config;
        _given = region;
        _log = log;
        _view = new RegionView(region, region.CreateWriter());
        if (_view.Writer.Repair.Any) log.WriteLine($"fastxtr agent: the previous map-cache writer stopped mid-update; repaired: {_view.Writer.Repair}");
        Database = new AgentDatabase(config.Database);
        _requestRate = new RateLimiter(config.MapRequestRate, config.MapRequestBurst, 16);
        _resolvers = new MapResolverSet(config.MapResolvers);
        _profiles = new ProfileTable(config.Profiles);
        _socket = new Socket(config.RlocAddress!.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try { _socket.Bind(new IPEndPoint(config.RlocAddress, LispPorts.Control)); }
        catch (SocketException e)
        {
            _socket.Dispose();
            throw new ConfigException($"cannot bind {config.RlocAddress}:{LispPorts.Control}: {e.Message}");
        }
        region.Header.AgentPid = Environment.ProcessId;
        foreach (var sp in config.SourceProfiles) InstallSourceProfile(sp.InstanceId, sp.Family, sp.Prefix, sp.Length, _profiles.Number(sp.ProfileName));
        _prober = new RlocProber(this);
        _receiver = new Thread(Receive) { IsBackground = true, Name = "agent-receive" };
        _misses = new Thread(DrainRings) { IsBackground = true, Name = "agent-misses" };
        _receiver.Start();
        _misses.Start();
        _register = new Timer(_ => Guard("register", () => RegisterAll()), null, TimeSpan.Zero, config.RegisterInterval);
        _retransmit = new Timer(_ => Guard("retransmit", () => { RetransmitRegisters(); RetransmitRequests(); }), null, 100, 100);
        _housekeeping = new Timer(_ => Guard("expiry", Housekeeping), null, 1000, 1000);
        if (config.RlocProbeInterval > TimeSpan.Zero)
            _probe = new Timer(_ => Guard("rloc-probe", _prober.Round), null, config.RlocProbeInterval, config.RlocProbeInterval);
        log.WriteLine($"fastxtr agent: rloc {config.RlocAddress}, {config.Database.Count} database mapping(s), {config.MapServers.Count} Map-Server(s), {config.MapResolvers.Count} Map-Resolver(s), {config.Profiles.Count} profile(s), shm {region.Path}");
    }

    /// <summary>Timer work never takes the agent down: a failure is reported and the next tick tries again.</summary>
    private void Guard(string what, Action work)
    {
        if (_stopping) return;
        try { work(); }
        catch (ObjectDisposedException) when (_stopping) { }
        catch (Exception e) when (e is SocketException or InvalidOperationException or ArgumentException or ConfigException or LispFormatException or IOException)
        {
            _log.WriteLine($"fastxtr agent: {what}: {e.Message}");
        }
    }

    private SharedRegion CurrentRegion => _view.Region;
    private MapCacheWriter CurrentWriter => _view.Writer;

    private static ulong NewNonce() => BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));

    private void Send(ReadOnlySpan<byte> datagram, IPEndPoint to)
    {
        try { _socket.SendTo(datagram, SocketFlags.None, to); }
        catch (SocketException e) { _log.WriteLine($"fastxtr agent: send to {to}: {e.Message}"); }
    }

    // ------------------------------------------------------------------ ETR side: registration

    /// <summary>Registers the whole database with every Map-Server (the periodic refresh).</summary>
    public Task<bool> RegisterAll()
    {
        lock (_registerLock) return SendRegisters(Database.All.Select(m => (MappingKey.Of(m), Withdraw: false)).ToList(), changed: false);
    }

    /// <summary>
    /// Registers <paramref name="mappings"/> (and withdraws <paramref name="withdrawn"/>, record TTL 0) with every
    /// Map-Server, as changes: each prefix's map-version goes up. Each record is built from the database at send time:
    /// a prefix that is no longer there is not registered, one that is there again is not withdrawn. The task
    /// completes with true once every Map-Server answered with a Map-Notify, false when one did not after
    /// <see cref="RegisterAttempts"/> sends a second apart, or when a later change superseded the whole message.
    /// </summary>
    public Task<bool> Register(IReadOnlyList<DatabaseMapping> mappings, IReadOnlyList<DatabaseMapping> withdrawn)
    {
        lock (_registerLock)
            return SendRegisters(mappings.Select(m => (MappingKey.Of(m), Withdraw: false)).Concat(withdrawn.Select(m => (MappingKey.Of(m), Withdraw: true))).ToList(), changed: true);
    }

    /// <summary>The next map-version after <paramref name="v"/>: 1..4095, wrapping past the null version 0 (RFC 9302 §3).</summary>
    private static ushort NextVersion(ushort v) => (ushort)(v >= MapVersioning.Max ? 1 : v + 1);

    /// <summary>
    /// A prefix's map-version. The first one of this process is taken from the clock (two seconds a step), so that an
    /// agent restarted within the Map-Server's reorder window still sends versions newer than its predecessor's.
    /// </summary>
    private ushort VersionOf(MappingKey key, bool bump)
    {
        ushort v;
        if (!_versions.TryGetValue(key, out var known))
            v = (ushort)(DateTimeOffset.UtcNow.ToUnixTimeSeconds() / 2 % MapVersioning.Max + 1);
        else v = bump ? NextVersion(known.Version) : known.Version;
        _versions[key] = (v, bump || !_versions.ContainsKey(key) ? NowMs : known.ChangedMs);
        return v;
    }

    /// <summary>
    /// Forgets the versions of prefixes that left the database a while ago (detached agents), so that months of
    /// attaching and detaching do not grow the table; one that comes back starts from the clock again, long after
    /// the Map-Server stopped comparing against the old one.
    /// </summary>
    private void ForgetOldVersions()
    {
        long cutoff = NowMs - (long)ForgetVersionAfter.TotalMilliseconds;
        lock (_registerLock)
            foreach (var (key, v) in _versions.Where(kv => kv.Value.ChangedMs < cutoff).ToList())
                if (Database.Current(key.InstanceId, key.Family, key.Prefix, key.Length) is null) _versions.Remove(key);
    }

    /// <summary>Builds and sends Map-Registers for these prefixes; the caller holds <see cref="_registerLock"/>.</summary>
    private Task<bool> SendRegisters(List<(MappingKey Key, bool Withdraw)> wanted, bool changed)
    {
        var records = new List<(MappingKey Key, ushort Version, bool Withdraw)>();
        foreach (var (key, withdraw) in wanted)
        {
            bool present = Database.Current(key.InstanceId, key.Family, key.Prefix, key.Length) is not null;
            if (present == withdraw) continue; // superseded already: attached again, or detached meanwhile
            records.Add((key, VersionOf(key, changed), withdraw));
        }
        if (records.Count == 0) return Task.FromResult(wanted.Count == 0 || !changed);
        var waits = new List<Task<bool>>();
        foreach (var ms in _config.MapServers)
        {
            foreach (var chunk in records.Chunk(RecordsPerRegister))
            {
                var pending = new PendingRegister
                {
                    Datagram = [], To = ms, Nonce = NewNonce(), Records = chunk.ToList(), NextMs = NowMs + 1000,
                    Done = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously),
                };
                if (!Build(pending)) continue;
                _pendingRegisters[pending.Nonce] = pending;
                waits.Add(pending.Done.Task);
                Counters.Add(AgentCounter.MapRegistersSent);
                if (chunk.Any(c => c.Withdraw)) Counters.Add(AgentCounter.WithdrawalsSent, chunk.Count(c => c.Withdraw));
                SendRegister(pending);
            }
        }
        return Task.WhenAll(waits).ContinueWith(t => t.Result.All(ok => ok), TaskScheduler.Default);
    }

    /// <summary>
    /// (Re)builds a pending register's datagram from the database as it is now, keeping only records whose version is
    /// still the prefix's current one. False when none is left: the message was superseded.
    /// </summary>
    private bool Build(PendingRegister pending)
    {
        pending.Records.RemoveAll(r => _versions.GetValueOrDefault(r.Key).Version != r.Version
                                       || (Database.Current(r.Key.InstanceId, r.Key.Family, r.Key.Prefix, r.Key.Length) is null) != r.Withdraw);
        if (pending.Records.Count == 0) return false;
        var ms = pending.To;
        var m = new MapRegister
        {
            Nonce = pending.Nonce, WantMapNotify = true, MergeRequest = true,
            XtrIdPresent = true, XtrId = _config.XtrId, SiteId = _config.SiteId, KeyId = ms.Key.KeyId, AlgorithmId = ms.Key.Algorithm,
        };
        foreach (var (key, version, withdraw) in pending.Records)
        {
            var d = withdraw ? null : Database.Current(key.InstanceId, key.Family, key.Prefix, key.Length);
            m.Records.Add(RegisterRecord(key, d, version));
        }
        pending.Datagram = m.ToSignedArray(ms.Key.Secret);
        BeforeRegisterSendForTests?.Invoke(m);
        return true;
    }

    private void SendRegister(PendingRegister pending) => Send(pending.Datagram, pending.To.Endpoint);

    /// <summary>One record: the mapping with its locators and agent context, or a withdrawal (TTL 0) when null.</summary>
    private MappingRecord RegisterRecord(MappingKey key, DatabaseMapping? d, ushort version)
    {
        var rec = new MappingRecord
        {
            TtlMinutes = d is null ? 0u : 1440, EidMaskLength = (byte)key.Length, Authoritative = true, MapVersion = version,
            EidPrefix = EidAddress.WithInstanceId(key.InstanceId, key.Family, key.Prefix),
        };
        if (d is null) return rec;
        foreach (var (rloc, priority, weight) in d.Rlocs)
        {
            var address = LispAddress.FromIp(rloc);
            rec.Locators.Add(new LocatorRecord(d.Context is null ? address : ContextEncoding.RlocWithContext(address, d.Context), priority, weight) { Local = rloc.Equals(_config.RlocAddress) });
        }
        return rec;
    }

    private void RetransmitRegisters()
    {
        long now = NowMs;
        lock (_registerLock)
            foreach (var (nonce, p) in _pendingRegisters)
            {
                if (p.NextMs > now) continue;
                if (p.Attempts >= RegisterAttempts)
                {
                    if (_pendingRegisters.TryRemove(nonce, out _))
                    {
                        Counters.Add(AgentCounter.RegistrationsUnacknowledged);
                        _log.WriteLine($"fastxtr agent: no Map-Notify from {p.To.Endpoint} after {RegisterAttempts} Map-Registers a second apart; the next refresh is in {_config.RegisterInterval.TotalSeconds:F0} s");
                        p.Done.TrySetResult(false);
                    }
                    continue;
                }
                // A retransmission says what the prefixes are now: superseded records are left out (a later message
                // carries them), and a message with nothing left is not sent again.
                if (!Build(p))
                {
                    if (_pendingRegisters.TryRemove(nonce, out _))
                    {
                        Counters.Add(AgentCounter.RegistersSuperseded);
                        p.Done.TrySetResult(false);
                    }
                    continue;
                }
                p.Attempts++;
                p.NextMs = now + 1000;
                Counters.Add(AgentCounter.MapRegisterRetransmissions);
                SendRegister(p);
            }
    }

    // ------------------------------------------------------------------ the local agent API's operations

    /// <summary>Attaches an agent: registers it at once, stops soliciting for it, installs its source profile.</summary>
    public (AttachedAgent? Agent, string? Conflict, Task<bool> Registered) Attach(string name, DatabaseMapping mapping, AgentConstraints? constraints)
    {
        ushort profile = constraints is null ? (ushort)0 : _profiles.NumberFor(constraints);
        var now = DateTime.UtcNow;
        var agent = Database.Attach(new AttachedAgent(name, mapping, constraints, profile, now, now), out var conflict);
        if (agent is null) return (null, conflict, Task.FromResult(false));
        lock (_writeLock)
        {
            CurrentWriter.Remove(mapping.InstanceId, MapCacheEntry.SolicitKey, mapping.Family, mapping.Prefix, mapping.Length);
            // A cached mapping of its old home would send this xTR's own traffic for it away.
            foreach (var p in _profiles.NumbersInUse()) CurrentWriter.Remove(mapping.InstanceId, p, mapping.Family, mapping.Prefix, mapping.Length);
        }
        _resolved.TryRemove((mapping.InstanceId, mapping.Family, mapping.Prefix, mapping.Length), out _);
        if (profile != 0) InstallSourceProfile(mapping.InstanceId, mapping.Family, mapping.Prefix, mapping.Length, profile);
        _log.WriteLine($"fastxtr agent: attached '{name}' {mapping.PrefixText}{(profile != 0 ? $" (profile {profile})" : "")}");
        return (agent, null, Register([mapping], []));
    }

    /// <summary>Replaces an attached agent's attributes in place: the same RLOCs re-registered at once (no withdrawal).</summary>
    public (AttachedAgent? Agent, Task<bool> Registered) Update(AttachedAgent current, AgentContext? context)
    {
        var updated = current with { Mapping = current.Mapping with { Context = context }, UpdatedAt = DateTime.UtcNow };
        if (Database.Replace(updated) is null) return (null, Task.FromResult(false));
        _log.WriteLine($"fastxtr agent: updated '{current.Name}' {current.Mapping.PrefixText}: {context?.ToString() ?? "no attributes"}");
        return (updated, Register([updated.Mapping], []));
    }

    /// <summary>
    /// Detaches an agent: withdraws its registration, and marks its EID moved-away so that packets still arriving
    /// for it make their ITRs re-resolve (SMR).
    /// </summary>
    public (AttachedAgent? Agent, Task<bool> Withdrawn) Detach(uint iid, EidFamily family, UInt128 prefix, int length)
    {
        var gone = Database.Detach(iid, family, prefix, length);
        if (gone is null) return (null, Task.FromResult(false));
        lock (_writeLock)
        {
            if (gone.Profile != 0) CurrentWriter.Remove(iid, MapCacheEntry.SourceProfileKey, family, prefix, length);
            Upsert(new MapCacheEntrySpec(iid, MapCacheEntry.SolicitKey, family, prefix, length, [], MapReplyAction.NoAction, (uint)MovedAwayLifetime.TotalMinutes));
        }
        _log.WriteLine($"fastxtr agent: detached '{gone.Name}' {gone.Mapping.PrefixText}; withdrawing it and soliciting ITRs that still send to it");
        return (gone, Register([], [gone.Mapping]));
    }

    private void InstallSourceProfile(uint iid, EidFamily family, UInt128 prefix, int length, ushort profile)
    {
        lock (_writeLock)
            Upsert(new MapCacheEntrySpec(iid, MapCacheEntry.SourceProfileKey, family, prefix, length, [], MapReplyAction.NoAction, uint.MaxValue, AssignedProfile: profile));
    }

    private void Upsert(MapCacheEntrySpec spec)
    {
        var r = CurrentWriter.Upsert(spec);
        if (r is MapCacheWriteResult.Full or MapCacheWriteResult.IidTableFull)
        {
            Counters.Add(AgentCounter.MapCacheFull);
            _log.WriteLine($"fastxtr agent: map-cache full ({r}); [{spec.InstanceId}]{EidPrefix.Format(spec.Family, spec.Prefix)}/{spec.PrefixLength} not installed");
        }
    }

    // ------------------------------------------------------------------ ITR side: resolution

    private void DrainRings()
    {
        Span<MissRecord> batch = stackalloc MissRecord[64];
        while (!_stopping)
        {
            bool any = false;
            var region = CurrentRegion;
            for (int w = 0; w < region.Sizes.Workers; w++)
            {
                int n = region.MissRing(w).Drain(batch);
                any |= n > 0;
                for (int i = 0; i < n; i++)
                {
                    try
                    {
                        if (batch[i].Profile == MapCacheEntry.SolicitKey) SendSmr(batch[i]);
                        else Request(batch[i].InstanceId, batch[i].Profile, batch[i].Family, batch[i].SourceEid, batch[i].DestinationEid, smrInvoked: false);
                    }
                    catch (SocketException e) { _log.WriteLine($"fastxtr agent: Map-Request: {e.Message}"); }
                    catch (ObjectDisposedException) { return; }
                }
            }
            if (!any) Thread.Sleep(2);
        }
    }

    /// <summary>An ECM Map-Request to the Map-Resolver for one destination, at most one per destination and profile per second.</summary>
    /// <param name="onEvent">A re-resolution the mapping system asked for (a publication): not held to the rate
    /// limit, which is there against floods of data-driven requests.</param>
    private void Request(uint iid, ushort profile, EidFamily family, UInt128 source, UInt128 destination, bool smrInvoked, bool onEvent = false)
    {
        if (_config.MapResolvers.Count == 0) return;
        long now = Stopwatch.GetTimestamp();
        var key = (iid, profile, destination);
        lock (_lastRequest)
        {
            // RFC 9301 §5.3: at most one Map-Request per destination per second.
            if (!onEvent && _lastRequest.TryGetValue(key, out long last) && now - last < Stopwatch.Frequency) return;
            // And a bounded rate in all, so that a scan of random destinations does not become a flood at the
            // Map-Resolver (draft-wang-lisp-ai-agent-00 §7). Events the mapping system asked for are not held to it.
            if (!onEvent && !smrInvoked && !_requestRate.TryAcquire(0, now)) { Counters.Add(AgentCounter.MapRequestsRateLimited); return; }
            _lastRequest[key] = now;
        }
        var sourceEid = EidAddress.WithInstanceId(iid, family, source);
        if (profile != 0 && _profiles.Constraints(profile) is AgentConstraints constraints) sourceEid = ContextEncoding.SourceEidWithConstraints(sourceEid, constraints);
        var request = new MapRequest { Nonce = NewNonce(), SourceEid = sourceEid, SmrInvoked = smrInvoked, XtrIdPresent = _config.Subscribe, XtrId = _config.XtrId, SiteId = _config.SiteId };
        request.ItrRlocs.Add(LispAddress.FromIp(_config.RlocAddress!));
        request.Records.Add(new MapRequestRecord(EidAddress.WithInstanceId(iid, family, destination), (byte)EidPrefix.MaxLength(family), _config.Subscribe));
        var ecm = new EncapsulatedControlMessage { InnerSourcePort = LispPorts.Control };
        if (family == EidFamily.Ipv4) ecm.SetInnerAddresses(Ipv4Header.ToAddress((uint)source), Ipv4Header.ToAddress((uint)destination));
        else ecm.SetInnerAddresses(Ipv6Header.ToAddress(source), Ipv6Header.ToAddress(destination));
        ecm.SetInnerMessage(request.ToArray());
        long nowMs = NowMs;
        int resolver = _resolvers.Pick(nowMs);
        var pending = new PendingRequest { Profile = profile, SourceEid = source, Datagram = ecm.ToArray(), Resolver = resolver, SentMs = nowMs, CreatedMs = nowMs };
        _pendingRequests[request.Nonce] = pending;
        Counters.Add(smrInvoked ? AgentCounter.SmrInvokedRequestsSent : AgentCounter.MapRequestsSent);
        _socket.SendTo(pending.Datagram, _resolvers[resolver]);
    }

    /// <summary>
    /// Map-Requests unanswered for a second are sent again (same nonce), to another Map-Resolver when one is up; the one
    /// that let it go unanswered counts a timeout and is marked down after <see cref="MapResolverSet.TimeoutsToMarkDown"/>
    /// in a row. Retransmissions take tokens from the same rate limit as first sends, so a dead resolver never
    /// multiplies what the mapping system receives.
    /// </summary>
    private void RetransmitRequests()
    {
        long nowMs = NowMs;
        foreach (var (nonce, p) in _pendingRequests)
        {
            if (nowMs - p.SentMs < RequestTimeoutMs) continue;
            Counters.Add(AgentCounter.MapResolverTimeouts);
            if (_resolvers.OnTimeout(p.Resolver, nowMs))
            {
                Counters.Add(AgentCounter.MapResolversMarkedDown);
                _log.WriteLine($"fastxtr agent: Map-Resolver {_resolvers[p.Resolver]} left {MapResolverSet.TimeoutsToMarkDown} Map-Requests in a row unanswered: marked down for {MapResolverSet.DownFor.TotalSeconds:F0} s" +
                               (_resolvers.Count > 1 ? "; asking the next one" : ""));
            }
            if (p.Attempts >= RequestAttempts || !_requestRate.TryAcquire(0, Stopwatch.GetTimestamp()))
            {
                if (_pendingRequests.TryRemove(nonce, out _)) Counters.Add(AgentCounter.MapRequestsUnanswered);
                continue;
            }
            p.Resolver = _resolvers.Pick(nowMs, avoid: p.Resolver);
            p.Attempts++;
            p.SentMs = nowMs;
            Counters.Add(AgentCounter.MapRequestRetransmissions);
            try { _socket.SendTo(p.Datagram, _resolvers[p.Resolver]); }
            catch (SocketException e) { _log.WriteLine($"fastxtr agent: Map-Request to {_resolvers[p.Resolver]}: {e.Message}"); }
        }
    }

    /// <summary>The Map-Resolvers with their state, for the status API.</summary>
    public List<(IPEndPoint Endpoint, bool Up, int UnansweredInARow)> MapResolverStates() => _resolvers.Snapshot(NowMs);

    /// <summary>
    /// An SMR (RFC 9301 §6.6.2) to the ITR that sent a packet for an EID that moved away. The data plane already limits
    /// these to about one per EID per second.
    /// </summary>
    private void SendSmr(in MissRecord solicit)
    {
        var smr = BuildSmr(solicit.InstanceId, solicit.Family, solicit.DestinationEid, solicit.SourceEid, LispAddress.FromIp(_config.RlocAddress!), NewNonce());
        Counters.Add(AgentCounter.SmrsSent);
        Send(smr.ToArray(), new IPEndPoint(Ipv4Header.ToAddress(solicit.OuterSource), LispPorts.Control));
    }

    /// <summary>
    /// The SMR layout deployed xTRs use (OpenOverlayRouter's <c>xtr_build_and_send_smr_mreq</c>, lispers.net): a
    /// Map-Request with the S bit whose Source-EID is the EID whose mapping changed (<paramref name="movedEid"/>, the
    /// one the ITR must look up again) and whose EID record names the ITR's own EID (the source of the packet that
    /// arrived here, <paramref name="itrEid"/>), which such an ITR checks against its database before it obeys.
    /// </summary>
    internal static MapRequest BuildSmr(uint iid, EidFamily family, UInt128 movedEid, UInt128 itrEid, LispAddress itrRloc, ulong nonce)
    {
        var smr = new MapRequest { Nonce = nonce, SolicitMapRequest = true, SourceEid = EidAddress.WithInstanceId(iid, family, movedEid) };
        smr.ItrRlocs.Add(itrRloc);
        smr.Records.Add(new MapRequestRecord(EidAddress.WithInstanceId(iid, family, itrEid), (byte)EidPrefix.MaxLength(family)));
        return smr;
    }

    /// <summary>
    /// An SMR arrived: re-resolve, through the mapping system, the EID it names for every profile that cached it. The
    /// changed EID is the Source-EID in the layout RFC 9301 and deployed xTRs use (see <see cref="BuildSmr"/>); some
    /// senders (FastXtr before it followed them) put it in the EID record instead, so both are looked up in what this
    /// ITR resolved, and whichever it has cached is asked for again.
    /// </summary>
    private void OnSmr(MapRequest smr)
    {
        Counters.Add(AgentCounter.SmrsReceived);
        var named = new List<LispAddress>(smr.Records.Count + 1) { smr.SourceEid };
        foreach (var asked in smr.Records) named.Add(asked.EidPrefix);
        var done = new HashSet<(uint, EidFamily, UInt128)>();
        foreach (var address in named)
        {
            if (!EidAddress.TryRead(address, out uint iid, out var family, out var eid) || !done.Add((iid, family, eid))) continue;
            foreach (var (key, profiles) in _resolved)
            {
                if (key.Iid != iid || key.Family != family || EidPrefix.Mask(eid, family, key.Length) != key.Prefix) continue;
                foreach (var (profile, source) in profiles) Request(iid, profile, family, source, eid, smrInvoked: true);
            }
        }
    }

    private void Receive()
    {
        byte[] buffer = new byte[65536];
        var reply = new MapReply();
        var notify = new MapNotify();
        var ecm = new EncapsulatedControlMessage();
        var request = new MapRequest();
        EndPoint from = new IPEndPoint(IPAddress.Any, 0);
        while (!_stopping)
        {
            int n;
            try { n = _socket.ReceiveFrom(buffer, ref from); }
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
                        if (notify.TryDecode(message).Ok) OnMapNotify(message, notify, source);
                        else Counters.Add(AgentCounter.MalformedMessages);
                        break;
                    case LispMessageType.MapReply:
                        if (reply.TryDecode(message).Ok) OnMapReply(reply);
                        else Counters.Add(AgentCounter.MalformedMessages);
                        break;
                    case LispMessageType.EncapsulatedControlMessage:
                        // A Map-Request the Map-Server forwarded to this ETR (no proxy-reply for our site).
                        if (ecm.TryDecode(message).Ok && LispMessage.PeekType(ecm.InnerMessage) == LispMessageType.MapRequest && request.TryDecode(ecm.InnerMessage).Ok)
                            AnswerAsEtr(request, ecm.InnerSourcePort, source);
                        else Counters.Add(AgentCounter.MalformedMessages);
                        break;
                    case LispMessageType.MapRequest:
                        if (!request.TryDecode(message).Ok) { Counters.Add(AgentCounter.MalformedMessages); break; }
                        // An SMR (S bit) or an RLOC probe / direct request (RFC 9301 §6.3.2), answered with the probe bit echoed.
                        if (request.SolicitMapRequest) OnSmr(request);
                        else AnswerAsEtr(request, source.Port, source);
                        break;
                    default:
                        Counters.Add(AgentCounter.MalformedMessages);
                        break;
                }
            }
            catch (LispFormatException) { Counters.Add(AgentCounter.MalformedMessages); }
            catch (SocketException e) { _log.WriteLine($"fastxtr agent: {e.Message}"); }
        }
    }

    private void OnMapReply(MapReply reply)
    {
        if (reply.Probe && _prober.OnReply(reply.Nonce)) return;
        // Only answers to our own requests are installed: a Map-Reply with an unknown nonce is dropped (RFC 9301 §5.4).
        if (!_pendingRequests.TryRemove(reply.Nonce, out var pending)) { Counters.Add(AgentCounter.MapRepliesUnsolicited); return; }
        _resolvers.OnAnswer(pending.Resolver);
        foreach (var rec in reply.Records) Install(rec, pending.Profile, pending.SourceEid, publication: false);
    }

    /// <summary>
    /// A Map-Notify: the answer to one of our Map-Registers, or a publication (RFC 9437) of a record we subscribed to,
    /// or a move notification to this ETR about an EID that left it. Authenticated with a Map-Server's key first.
    /// </summary>
    private void OnMapNotify(ReadOnlySpan<byte> message, MapNotify notify, IPEndPoint from)
    {
        MapServerPeer? peer = null;
        // The Map-Server the notify came from first, then any other (a publication may come from another address).
        foreach (var ms in _config.MapServers.OrderBy(ms => ms.Endpoint.Address.Equals(from.Address) ? 0 : 1))
            if (MessageAuthentication.Verify(message, ms.Key.Secret) == AuthenticationFailure.None) { peer = ms; break; }
        if (peer is null)
        {
            Counters.Add(AgentCounter.MapNotifyAuthenticationFailed);
            _log.WriteLine($"fastxtr agent: Map-Notify from {from} failed authentication with every Map-Server key; dropped");
            return;
        }
        if (_pendingRegisters.TryRemove(notify.Nonce, out var pending))
        {
            // The Map-Notify confirms what was registered (RFC 9301 §5.7): a record it leaves out was refused.
            int refused, sent;
            // Under the registration lock: a retransmission may be rebuilding this pending's records right now.
            lock (_registerLock)
            {
                sent = pending.Records.Count;
                refused = pending.Records.Count(r => !notify.Records.Any(n => n.EidMaskLength == r.Key.Length
                    && EidAddress.TryRead(n.EidPrefix, out uint iid, out var family, out var prefix)
                    && iid == r.Key.InstanceId && family == r.Key.Family && EidPrefix.Mask(prefix, family, r.Key.Length) == r.Key.Prefix));
            }
            if (refused > 0)
            {
                Counters.Add(AgentCounter.RegisterRecordsRefused, refused);
                _log.WriteLine($"fastxtr agent: {from} confirmed {sent - refused} of {sent} records of a Map-Register; the others were refused (see the Map-Server's log)");
            }
            Counters.Add(AgentCounter.RegistrationsAcknowledged);
            pending.Done.TrySetResult(refused == 0);
            return;
        }
        foreach (var rec in notify.Records)
        {
            if (!EidAddress.TryRead(rec.EidPrefix, out uint iid, out var family, out var prefix)) continue;
            if (Database.All.Any(d => d.InstanceId == iid && d.Family == family && d.Prefix == prefix && d.Length == rec.EidMaskLength)) continue;
            var key = (iid, family, EidPrefix.Mask(prefix, family, rec.EidMaskLength), (int)rec.EidMaskLength);
            if (_resolved.TryGetValue(key, out var profiles) && !profiles.IsEmpty)
            {
                // Publications carry the record filtered for the latest subscription's constraints: one profile takes it
                // as is; with several, each re-resolves under its own constraints (one round trip).
                if (profiles.Count == 1)
                {
                    var (profile, source) = profiles.First();
                    Install(rec, profile, source, publication: true);
                }
                else foreach (var (profile, source) in profiles) Request(iid, profile, family, source, prefix, smrInvoked: false, onEvent: true);
                Counters.Add(AgentCounter.PublicationsApplied);
            }
            else
            {
                // A move notification: this ETR learns the EID's new home, so packets that still arrive here go on.
                Install(rec, 0, 0, publication: true);
                Counters.Add(AgentCounter.MoveNotifiesApplied);
            }
        }
        var ack = new MapNotify(isAck: true) { Nonce = notify.Nonce, KeyId = peer.Key.KeyId, AlgorithmId = peer.Key.Algorithm, XtrIdPresent = notify.XtrIdPresent, XtrId = notify.XtrId, SiteId = notify.SiteId };
        foreach (var rec in notify.Records) ack.Records.Add(rec);
        Counters.Add(AgentCounter.MapNotifyAcksSent);
        Send(ack.ToSignedArray(peer.Key.Secret), from);
    }

    private void Install(MappingRecord rec, ushort profile, UInt128 sourceEid, bool publication)
    {
        if (!EidAddress.TryRead(rec.EidPrefix, out uint iid, out var family, out var prefix)) return;
        prefix = EidPrefix.Mask(prefix, family, rec.EidMaskLength);
        // Our own EIDs are never cached: this xTR delivers them itself.
        if (Database.Covering(iid, family, prefix) is DatabaseMapping own && own.Length <= rec.EidMaskLength) return;
        var rlocs = new List<RlocSpec>();
        foreach (var l in rec.Locators)
        {
            var a = ContextEncoding.ReadLocator(l.Locator, out _, out _);
            if (a.Kind == LispAddressKind.Ipv4) rlocs.Add(new RlocSpec(EidFamily.Ipv4, a.Ipv4Value, l.Priority, l.Weight, l.Reachable && !_prober.IsDown(a.Ipv4Value)));
            else if (a.Kind == LispAddressKind.Ipv6) rlocs.Add(new RlocSpec(EidFamily.Ipv6, a.Ipv6Value, l.Priority, l.Weight, l.Reachable));
            if (rlocs.Count == MapCacheEntry.MaxRlocs) break;
        }
        var action = rec.IsNegative ? rec.Action : MapReplyAction.NoAction;
        var spec = new MapCacheEntrySpec(iid, profile, family, prefix, rec.EidMaskLength, rlocs, action, rec.TtlMinutes == 0 ? 1 : rec.TtlMinutes, rec.MapVersion);
        lock (_writeLock) Upsert(spec);
        if (!publication || profile != 0 || _resolved.ContainsKey((iid, family, prefix, rec.EidMaskLength)))
            _resolved.GetOrAdd((iid, family, prefix, rec.EidMaskLength), _ => new()).AddOrUpdate(profile, sourceEid, (_, _) => sourceEid);
        Counters.Add(rec.IsNegative ? AgentCounter.NegativeRepliesInstalled : AgentCounter.MapRepliesInstalled);
    }

    private void Housekeeping()
    {
        FollowReplacedRegion();
        long now = MapCacheTables.Now;
        lock (_writeLock) CurrentWriter.RemoveExpired(now, Forget);
        ForgetOldVersions();
        long nowMs = NowMs;
        foreach (var (nonce, p) in _pendingRequests)
            if (nowMs - p.CreatedMs > 10_000) _pendingRequests.TryRemove(nonce, out _);
        lock (_lastRequest)
            foreach (var key in _lastRequest.Where(kv => now - kv.Value > 10 * Stopwatch.Frequency).Select(kv => kv.Key).ToList())
                _lastRequest.Remove(key);
    }

    /// <summary>
    /// A data plane restarted on a fresh region (its file removed, or made for other sizes) replaced the file this agent
    /// maps: the agent attaches to the new one and refills it from the old mapping, which still holds every entry it
    /// wrote (resolutions with their expiry and locator states, source-profile and moved-away entries). The old mapping
    /// is released some seconds later, when no thread can still be reading it.
    /// </summary>
    private void FollowReplacedRegion()
    {
        long nowMs = NowMs;
        foreach (var r in _retired.Where(r => nowMs - r.RetiredMs > 10_000).ToList())
        {
            _retired.Remove(r);
            if (!ReferenceEquals(r.Region, _given)) r.Region.Dispose();
        }
        var old = _view;
        if (old.Region.Path is null || old.Region.IsCurrent) return;
        SharedRegion fresh;
        try { fresh = SharedRegion.Attach(_config.SharedMemoryName); }
        catch (Exception e) when (e is SharedRegionException or NativeInterop.NativeException)
        {
            // Gone, or being created right now: reported once per cause, tried again every second.
            if (_regionProblem != e.Message) _log.WriteLine($"fastxtr agent: {old.Region.Path} was replaced or removed; waiting for the data plane's new region ({e.Message})");
            _regionProblem = e.Message;
            return;
        }
        MapCacheWriter writer;
        try { writer = fresh.CreateWriter(); }
        catch (SharedRegionException e)
        {
            fresh.Dispose();
            if (_regionProblem != e.Message) _log.WriteLine($"fastxtr agent: {old.Region.Path} was replaced; cannot write the new region: {e.Message}");
            _regionProblem = e.Message;
            return;
        }
        _regionProblem = null;
        int restored = 0, failed = 0;
        lock (_writeLock)
        {
            foreach (var e in old.Region.MapCache.Snapshot())
                if (writer.Restore(e) is MapCacheWriteResult.Inserted or MapCacheWriteResult.Updated) restored++;
                else failed++;
            fresh.Header.AgentPid = Environment.ProcessId;
            _view = new RegionView(fresh, writer);
        }
        old.Writer.Dispose(); // the replaced file's lease: nobody else writes there any more
        _retired.Add((old.Region, nowMs));
        Counters.Add(AgentCounter.RegionsFollowed);
        Counters.Add(AgentCounter.EntriesRestored, restored);
        if (failed > 0) Counters.Add(AgentCounter.MapCacheFull, failed);
        _log.WriteLine($"fastxtr agent: the data plane's region {fresh.Path} is new: attached and restored {restored} map-cache entr{(restored == 1 ? "y" : "ies")}" +
                       (failed > 0 ? $", {failed} did not fit (map-cache full)" : ""));
    }

    /// <summary>A resolution the map-cache no longer holds is not followed any more (publications, SMRs).</summary>
    private void Forget(MapCacheEntry gone)
    {
        var key = (gone.InstanceId, gone.Family, gone.Prefix, (int)gone.PrefixLength);
        if (_resolved.TryGetValue(key, out var profiles) && profiles.TryRemove(gone.Profile, out _) && profiles.IsEmpty)
            _resolved.TryRemove(key, out _);
    }

    // ------------------------------------------------------------------ ETR side: answering

    /// <summary>
    /// Answers a Map-Request for one of this xTR's EID prefixes from the database, authoritatively, with the same
    /// context rules as the Map-Server (CONTEXT-EXTENSION.md §3: "the same rules apply whether the Map-Server
    /// proxy-replies or forwards"), to the requester's ITR-RLOC.
    /// </summary>
    private readonly AnswerBuilder _etrAnswers = new();
    /// <summary>The TTL of an ETR's own answers: a day, as RFC 9301 §5.4 suggests.</summary>
    private const uint EtrAnswerTtlMinutes = 1440;

    private void AnswerAsEtr(MapRequest request, int replyPort, IPEndPoint from)
    {
        var constraints = ContextEncoding.ReadConstraints(request.SourceEid, out _);
        var reply = new MapReply { Nonce = request.Nonce, Probe = request.Probe };
        foreach (var asked in request.Records)
        {
            if (!EidAddress.TryRead(asked.EidPrefix, out uint iid, out var family, out var eid)) continue;
            var d = Database.Covering(iid, family, eid);
            if (d is null) continue;
            var record = new MappingRecord();
            // Every locator as this ETR registers it (DatabaseMapping.Rlocs), the mapping's context on each.
            var rlocs = d.Rlocs.Select(r => new RegisteredRloc(LispAddress.FromIp(r.Rloc), r.Priority, r.Weight, LocatorRecord.PriorityDoNotUse, 0, true, d.Context)).ToArray();
            lock (_etrAnswers)
                _etrAnswers.Fill(record, new AnswerFor(d.InstanceId, d.Family, d.Prefix, d.Length, EtrAnswerTtlMinutes, MapVersioning.Null, WithInstanceId: true),
                                 rlocs, constraints, local: a => a.Kind is LispAddressKind.Ipv4 or LispAddressKind.Ipv6 && a.ToIPAddress().Equals(_config.RlocAddress), probe: request.Probe);
            reply.Records.Add(record);
        }
        // A probe for a prefix this xTR no longer has is still answered (empty), so the locator counts as up.
        if (reply.Records.Count == 0 && !request.Probe) return;
        byte[] datagram = reply.ToArray();
        IPAddress to = from.Address;
        foreach (var itr in request.ItrRlocs)
            if (itr.PlainAddress.Kind is LispAddressKind.Ipv4 or LispAddressKind.Ipv6) { to = itr.PlainAddress.ToIPAddress(); break; }
        // Counted before sending: whoever sees the datagram sees the count.
        Counters.Add(AgentCounter.EtrRequestsAnswered);
        Send(datagram, new IPEndPoint(to, replyPort));
    }

    // ------------------------------------------------------------------ RLOC probing

    /// <summary>
    /// RLOC probing (RFC 9301 §6.3.2): every interval, one Map-Request with the P bit to each locator the map-cache
    /// uses (not our own); a locator that leaves <see cref="AgentConfig.RlocProbeMisses"/> probes in a row unanswered is
    /// marked down in every entry, and up again on its next answer.
    /// </summary>
    private sealed class RlocProber(XtrAgent agent)
    {
        private readonly ConcurrentDictionary<ulong, uint> _outstanding = new();
        private readonly ConcurrentDictionary<uint, int> _misses = new();
        private readonly ConcurrentDictionary<uint, bool> _down = new();
        private readonly MapCacheEntry[] _chunk = new MapCacheEntry[256]; // the probing round's walk of the map-cache (one round at a time)

        public bool IsDown(uint rloc) => _down.ContainsKey(rloc);

        private int _walking;

        /// <summary>One probing round; skipped while the previous one is still walking a large map-cache.</summary>
        public void Round()
        {
            if (Interlocked.Exchange(ref _walking, 1) == 1) return;
            try { ProbeAll(); }
            finally { Volatile.Write(ref _walking, 0); }
        }

        private void ProbeAll()
        {
            // Probes of the last round still outstanding count as misses.
            foreach (var (nonce, rloc) in _outstanding)
            {
                if (!_outstanding.TryRemove(nonce, out _)) continue;
                int missed = _misses.AddOrUpdate(rloc, 1, (_, m) => m + 1);
                if (missed >= agent._config.RlocProbeMisses && _down.TryAdd(rloc, true))
                {
                    agent.Counters.Add(AgentCounter.LocatorsMarkedDown);
                    agent._log.WriteLine($"fastxtr agent: locator {Ipv4Header.ToAddress(rloc)} marked down ({missed} RLOC probes unanswered)");
                    SetState(rloc, up: false);
                }
            }
            uint own = agent._config.RlocAddress!.AddressFamily == AddressFamily.InterNetwork ? Ipv4Header.ToUInt32(agent._config.RlocAddress) : 0;
            var targets = new Dictionary<uint, MapCacheEntry>();
            var cache = agent.CurrentRegion.MapCache;
            for (int next = 0, n; (n = cache.ReadUsed(ref next, _chunk)) > 0;)
                foreach (var e in _chunk.AsSpan(0, n))
                {
                    if (e.Profile >= MapCacheEntry.SolicitKey) continue;
                    for (int i = 0; i < e.RlocCount; i++)
                        if (e.Rlocs[i].Family == EidFamily.Ipv4 && (uint)e.Rlocs[i].Address != own) targets.TryAdd((uint)e.Rlocs[i].Address, e);
                }
            foreach (var (rloc, entry) in targets)
            {
                var probe = new MapRequest { Nonce = NewNonce(), Probe = true, SourceEid = LispAddress.None() };
                probe.ItrRlocs.Add(LispAddress.FromIp(agent._config.RlocAddress!));
                probe.Records.Add(new MapRequestRecord(EidAddress.WithInstanceId(entry.InstanceId, entry.Family, entry.Prefix), entry.PrefixLength));
                _outstanding[probe.Nonce] = rloc;
                agent.Counters.Add(AgentCounter.RlocProbesSent);
                agent.Send(probe.ToArray(), new IPEndPoint(Ipv4Header.ToAddress(rloc), LispPorts.Control));
            }
            foreach (var gone in _misses.Keys.Where(r => !targets.ContainsKey(r)).ToList())
            {
                _misses.TryRemove(gone, out _);
                _down.TryRemove(gone, out _);
            }
        }

        public bool OnReply(ulong nonce)
        {
            if (!_outstanding.TryRemove(nonce, out uint rloc)) return false;
            agent.Counters.Add(AgentCounter.RlocProbeRepliesReceived);
            _misses[rloc] = 0;
            if (_down.TryRemove(rloc, out _))
            {
                agent.Counters.Add(AgentCounter.LocatorsMarkedUp);
                agent._log.WriteLine($"fastxtr agent: locator {Ipv4Header.ToAddress(rloc)} answered a probe: marked up");
                SetState(rloc, up: true);
            }
            return true;
        }

        private void SetState(uint rloc, bool up)
        {
            var chunk = new MapCacheEntry[256]; // its own: Round and a probe answer may run at once
            lock (agent._writeLock)
            {
                var cache = agent.CurrentRegion.MapCache;
                for (int next = 0, n; (n = cache.ReadUsed(ref next, chunk)) > 0;)
                    foreach (var e in chunk.AsSpan(0, n))
                        for (int i = 0; i < e.RlocCount; i++)
                            if (e.Rlocs[i].Family == EidFamily.Ipv4 && (uint)e.Rlocs[i].Address == rloc)
                                agent.CurrentWriter.SetRlocState(e.InstanceId, e.Profile, e.Family, e.Prefix, e.PrefixLength, rloc, up);
            }
        }
    }

    private static long NowMs => Environment.TickCount64;

    public void Dispose()
    {
        _stopping = true;
        foreach (var timer in new[] { _register, _housekeeping, _retransmit, _probe })
            if (timer is not null)
                using (var done = new ManualResetEvent(false))
                    if (timer.Dispose(done)) done.WaitOne(3000);
        _socket.Dispose();
        _receiver.Join(2000);
        _misses.Join(2000);
        foreach (var p in _pendingRegisters.Values) p.Done.TrySetResult(false);
        if (CurrentRegion.Header.AgentPid == Environment.ProcessId) CurrentRegion.Header.AgentPid = 0;
        lock (_writeLock) CurrentWriter.Dispose();
        // The region given at construction belongs to the caller; the ones followed since belong to the agent.
        foreach (var r in _retired.Select(r => r.Region).Append(CurrentRegion))
            if (!ReferenceEquals(r, _given)) r.Dispose();
        _retired.Clear();
    }
}

/// <summary>
/// Constraint profiles by number (CONTEXT-EXTENSION.md §5): the configured ones are 1..N in file order; constraints
/// that agents bring through the API get the next free numbers, shared by agents with equal constraints.
/// </summary>
public sealed class ProfileTable
{
    private readonly List<(ushort Number, string Name, AgentConstraints Constraints)> _profiles = [];
    private readonly object _lock = new();

    public ProfileTable(IEnumerable<ConstraintProfile> configured)
    {
        foreach (var p in configured) _profiles.Add(((ushort)(_profiles.Count + 1), p.Name, p.Constraints));
    }

    public IReadOnlyList<(ushort Number, string Name, AgentConstraints Constraints)> All { get { lock (_lock) return _profiles.ToList(); } }

    public ushort Number(string name)
    {
        lock (_lock) return _profiles.First(p => p.Name == name).Number;
    }

    public ushort NumberFor(AgentConstraints constraints)
    {
        lock (_lock)
        {
            foreach (var p in _profiles) if (p.Constraints.Equals(constraints)) return p.Number;
            if (_profiles.Count >= MapCacheEntry.SolicitKey - 1) throw new InvalidOperationException("no constraint profile numbers left");
            var number = (ushort)(_profiles.Count + 1);
            _profiles.Add((number, $"api-{number}", constraints));
            return number;
        }
    }

    public AgentConstraints? Constraints(ushort number)
    {
        lock (_lock) return number >= 1 && number <= _profiles.Count ? _profiles[number - 1].Constraints : null;
    }

    /// <summary>Profile 0 (no constraints) and every defined profile.</summary>
    public IEnumerable<ushort> NumbersInUse()
    {
        lock (_lock) return [0, .. _profiles.Select(p => p.Number)];
    }
}
