using System.Collections.Concurrent;
using System.Net;
using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;

namespace FastXtr.Agent;

/// <summary>
/// Registration (RFC 9301 §5.6, §8.2): the database (configured mappings and attached agents) registered with every
/// Map-Server independently, want-map-notify, retransmitted every second until the Map-Notify arrives, refreshed every
/// register-interval, re-registered at once on a change, withdrawn (record TTL 0) on detach, each prefix with its
/// own map-version (RFC 9302).
/// </summary>
internal sealed class Registrar(AgentIo io)
{
    private const int RegisterAttempts = 5;
    /// <summary>Sends of one Map-Register without a Map-Notify after which its Map-Server counts as unresponsive.</summary>
    public const int AttemptsToUnresponsive = 3;
    private const int RecordsPerRegister = 20;
    private readonly ConcurrentDictionary<ulong, PendingRegister> _pendingRegisters = new();
    // Map-Servers that left a Map-Register unanswered for AttemptsToUnresponsive sends and have sent no Map-Notify
    // since. They are still registered with (and so found again), but a change's confirmation does not wait for them:
    // one dead Map-Server must not hold every attach and detach for the full confirmation wait (a move is attach, then
    // detach).
    private readonly ConcurrentDictionary<IPEndPoint, bool> _unresponsive = new();

    /// <summary>The Map-Servers that currently count as unresponsive, for the status.</summary>
    public IReadOnlyList<IPEndPoint> UnresponsiveMapServers => [.. _unresponsive.Keys];

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

    /// <summary>Registers the whole database with every Map-Server (the periodic refresh), or with the ones given (a reload's new or re-keyed Map-Servers).</summary>
    public Task<bool> RegisterAll(IReadOnlyList<MapServerPeer>? only = null)
    {
        lock (_registerLock) return SendRegisters(io.Database.All.Select(m => (MappingKey.Of(m), Withdraw: false)).ToList(), changed: false, only);
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
        _versions[key] = (v, bump || !_versions.ContainsKey(key) ? AgentIo.NowMs : known.ChangedMs);
        return v;
    }

    /// <summary>
    /// Forgets the versions of prefixes that left the database a while ago (detached agents), so that months of
    /// attaching and detaching do not grow the table; one that comes back starts from the clock again, long after
    /// the Map-Server stopped comparing against the old one.
    /// </summary>
    public void ForgetOldVersions()
    {
        long cutoff = AgentIo.NowMs - (long)ForgetVersionAfter.TotalMilliseconds;
        lock (_registerLock)
            foreach (var (key, v) in _versions.Where(kv => kv.Value.ChangedMs < cutoff).ToList())
                if (io.Database.Current(key.InstanceId, key.Family, key.Prefix, key.Length) is null) _versions.Remove(key);
    }

    /// <summary>Builds and sends Map-Registers for these prefixes; the caller holds <see cref="_registerLock"/>.</summary>
    private Task<bool> SendRegisters(List<(MappingKey Key, bool Withdraw)> wanted, bool changed, IReadOnlyList<MapServerPeer>? only = null)
    {
        var records = new List<(MappingKey Key, ushort Version, bool Withdraw)>();
        foreach (var (key, withdraw) in wanted)
        {
            bool present = io.Database.Current(key.InstanceId, key.Family, key.Prefix, key.Length) is not null;
            if (present == withdraw) continue; // superseded already: attached again, or detached meanwhile
            records.Add((key, VersionOf(key, changed), withdraw));
        }
        if (records.Count == 0) return Task.FromResult(wanted.Count == 0 || !changed);
        var waits = new List<Task<bool>>();
        var servers = only ?? io.Config.MapServers;
        // Confirmation is awaited from the responsive ones; from all when none is (then the answer says false).
        bool anyResponsive = servers.Any(m => !_unresponsive.ContainsKey(m.Endpoint));
        foreach (var ms in servers)
        {
            foreach (var chunk in records.Chunk(RecordsPerRegister))
            {
                var pending = new PendingRegister
                {
                    Datagram = [], To = ms, Nonce = AgentIo.NewNonce(), Records = chunk.ToList(), NextMs = AgentIo.NowMs + 1000,
                    Done = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously),
                };
                if (!Build(pending)) continue;
                _pendingRegisters[pending.Nonce] = pending;
                if (!anyResponsive || !_unresponsive.ContainsKey(ms.Endpoint)) waits.Add(pending.Done.Task);
                io.Counters.Add(AgentCounter.MapRegistersSent);
                if (chunk.Any(c => c.Withdraw)) io.Counters.Add(AgentCounter.WithdrawalsSent, chunk.Count(c => c.Withdraw));
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
                                       || (io.Database.Current(r.Key.InstanceId, r.Key.Family, r.Key.Prefix, r.Key.Length) is null) != r.Withdraw);
        if (pending.Records.Count == 0) return false;
        var ms = pending.To;
        var m = new MapRegister
        {
            Nonce = pending.Nonce, WantMapNotify = true, MergeRequest = true,
            // Behind NAT no Map-Request reaches this ETR: the Map-Server answers for it (draft-ietf-lisp-nat-traversal
            // §6: the P bit, RFC 9301 §5.6), and its answer names the RTRs registered here.
            ProxyMapReply = io.Rtrs.Count > 0,
            XtrIdPresent = true, XtrId = io.Config.XtrId, SiteId = io.Config.SiteId, KeyId = ms.Key.KeyId, AlgorithmId = ms.Key.Algorithm,
        };
        foreach (var (key, version, withdraw) in pending.Records)
        {
            var d = withdraw ? null : io.Database.Current(key.InstanceId, key.Family, key.Prefix, key.Length);
            m.Records.Add(RegisterRecord(key, d, version));
        }
        pending.Datagram = m.ToSignedArray(ms.Key);
        BeforeRegisterSendForTests?.Invoke(m);
        return true;
    }

    private void SendRegister(PendingRegister pending) => io.Send(pending.Datagram, pending.To.Endpoint);

    /// <summary>One record: the mapping with its locators and agent context, or a withdrawal (TTL 0) when null.</summary>
    private MappingRecord RegisterRecord(MappingKey key, DatabaseMapping? d, ushort version)
    {
        var rec = new MappingRecord
        {
            TtlMinutes = d is null ? 0u : 1440, EidMaskLength = (byte)key.Length, Authoritative = true, MapVersion = version,
            EidPrefix = EidAddress.WithInstanceId(key.InstanceId, key.Family, key.Prefix),
        };
        if (d is null) return rec;
        // Behind NAT this xTR's own locators are not reachable from outside: the RTRs stand in for them, with their
        // priority, weight and context (draft-ietf-lisp-nat-traversal §6; lispers.net registers its RTRs the same way).
        var rtrs = io.Rtrs;
        var listed = new HashSet<System.Net.IPAddress>();
        foreach (var (rloc, priority, weight) in d.Rlocs)
        {
            bool own = io.Config.RlocAddresses.Contains(rloc);
            foreach (var locator in own && rtrs.Count > 0 ? rtrs : [rloc])
            {
                if (!listed.Add(locator)) continue;
                var address = LispAddress.FromIp(locator);
                rec.Locators.Add(new LocatorRecord(d.Context is null ? address : ContextEncoding.RlocWithContext(address, d.Context), priority, weight) { Local = own && rtrs.Count == 0 });
            }
        }
        return rec;
    }

    public void RetransmitRegisters()
    {
        long now = AgentIo.NowMs;
        lock (_registerLock)
            foreach (var (nonce, p) in _pendingRegisters)
            {
                if (p.NextMs > now) continue;
                if (p.Attempts >= RegisterAttempts)
                {
                    if (_pendingRegisters.TryRemove(nonce, out _))
                    {
                        io.Counters.Add(AgentCounter.RegistrationsUnacknowledged);
                        AgentLog.RegistrationUnacknowledged(io.Log, p.To.Endpoint, RegisterAttempts, io.Config.RegisterInterval.TotalSeconds);
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
                        io.Counters.Add(AgentCounter.RegistersSuperseded);
                        p.Done.TrySetResult(false);
                    }
                    continue;
                }
                p.Attempts++;
                p.NextMs = now + 1000;
                io.Counters.Add(AgentCounter.MapRegisterRetransmissions);
                if (p.Attempts == AttemptsToUnresponsive && _unresponsive.TryAdd(p.To.Endpoint, true))
                {
                    io.Counters.Add(AgentCounter.MapServersUnresponsive);
                    AgentLog.MapServerUnresponsive(io.Log, p.To.Endpoint, AttemptsToUnresponsive - 1);
                }
                SendRegister(p);
            }
    }

    /// <summary>
    /// The Map-Notify that answers one of our Map-Registers, if it is one (by nonce): it confirms what was registered
    /// (RFC 9301 §5.7), and a record it leaves out was refused.
    /// </summary>
    public bool TryAcknowledge(MapNotify notify, IPEndPoint from)
    {
        if (!_pendingRegisters.TryRemove(notify.Nonce, out var pending)) return false;
        if (!_unresponsive.IsEmpty && _unresponsive.TryRemove(pending.To.Endpoint, out _)) AgentLog.MapServerResponsive(io.Log, pending.To.Endpoint);
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
            io.Counters.Add(AgentCounter.RegisterRecordsRefused, refused);
            AgentLog.RecordsRefused(io.Log, from, sent - refused, sent);
        }
        io.Counters.Add(AgentCounter.RegistrationsAcknowledged);
        pending.Done.TrySetResult(refused == 0);
        return true;
    }

    /// <summary>Every registration still waiting completes as unacknowledged (the agent stops).</summary>
    public void Abandon()
    {
        foreach (var p in _pendingRegisters.Values) p.Done.TrySetResult(false);
    }
}
