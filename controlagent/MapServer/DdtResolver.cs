using System.Net;
using FastXtr.Lisp.Messages;

namespace FastXtr.MapServer;

/// <summary>One cached Map-Referral record (RFC 8111 §7.1: the DDT Map-Resolver's referral cache).</summary>
public sealed record CachedReferral(uint InstanceId, EidFamily Family, UInt128 Prefix, int Length, MapReferralAction Action,
    IReadOnlyList<(IPEndPoint Address, byte Priority, byte Weight)> Targets, bool Incomplete, long ExpiresMs)
{
    private IReadOnlyList<(IPEndPoint Address, byte Priority, byte Weight)>? _byPriority;
    private object? _byPriorityOf;

    /// <summary>
    /// The targets to ask, by priority (255: not to be used), the order within a priority the order given. Computed
    /// once for the targets held (every warm request starts from it; the resolver's lock guards it).
    /// </summary>
    internal IReadOnlyList<(IPEndPoint Address, byte Priority, byte Weight)> ByPriority
    {
        get
        {
            if (!ReferenceEquals(_byPriorityOf, Targets))
            {
                _byPriority = DdtResolver.ByPriority(Targets);
                _byPriorityOf = Targets;
            }
            return _byPriority!;
        }
    }
}

/// <summary>
/// The DDT Map-Resolver (RFC 8111 §7.1): an ITR's Map-Request for an EID outside this server's sites is resolved
/// through the DDT tree. The request (the ITR's own ECM, with the D bit set) goes to the most specific referral cached
/// for the EID, or to a root; each Map-Referral is cached for its TTL and followed: NODE-REFERRAL and MS-REFERRAL to
/// one of their targets (by priority, the next on timeout), MS-ACK ends it (the Map-Server answers the ITR),
/// MS-NOT-REGISTERED and DELEGATION-HOLE end it with a negative Map-Reply to the ITR for the referral's prefix, and
/// NOT-AUTHORITATIVE drops the cached referral that led there and starts again from a root (once). Loop guard: every
/// referral followed must be more specific than the one before, and at most <see cref="MaxHops"/> are followed.
/// Pending requests are kept by nonce; a Map-Referral is taken only from the address its request was sent to. Shared
/// by the Map-Server's workers (one lock: the tree is walked a few times per EID per day, not per packet).
/// </summary>
public sealed class DdtResolver
{
    public const int MaxHops = 16;
    public const int MaxPending = 65536;
    public const int MaxCached = 1 << 20;
    /// <summary>
    /// How long a referral target that let a request time out is asked last (after every target of its set that is
    /// not down). RFC 8111 §7.1.2 only says to try the next; without this memory every walk through a dead Map-Server
    /// or node would wait for the timeout again, so each new flow of its space would pay it until the referral expired.
    /// </summary>
    public const int TargetDownMs = 30_000;

    private sealed class Pending
    {
        public required byte[] Ecm;
        public required IPEndPoint Itr;
        public required uint InstanceId;
        public required EidFamily Family;
        public required UInt128 Eid;
        public required bool Lcaf;
        public IReadOnlyList<(IPEndPoint Address, byte Priority, byte Weight)> Targets = [];
        public int Next;
        public IPEndPoint? AskedAt;
        public long SentMs;
        public int Hops;
        public int LastLength = -1;
        public CachedReferral? From;
        public bool Restarted;
    }

    private readonly object _lock = new();
    private readonly Dictionary<ulong, Pending> _pending = [];
    // A referral (NODE-/MS-REFERRAL) and an answer (MS-ACK, MS-NOT-REGISTERED, DELEGATION-HOLE) for the same prefix are
    // kept apart: a short-lived negative answer must not erase the delegation that will be needed once it expires.
    private readonly Dictionary<(uint, EidFamily, int, UInt128, bool), CachedReferral> _cache = [];
    // How many cached entries have each prefix length, per family (IPv4 0..32, IPv6 0..128): a lookup probes only those.
    private readonly int[] _lengthsInUse = new int[2 * 129];
    // Sends in the order made, for the timeout scan: an entry whose request moved on or finished is skipped.
    private readonly Queue<(ulong Nonce, long SentMs)> _sentOrder = new();
    // Targets that let a request time out, by address, and until when they are asked last; removed by any referral from them.
    private readonly Dictionary<IPAddress, long> _downUntilMs = [];
    private long _nextSweepMs;
    // Every cached entry's key by its expiry (an entry replaced later is checked against the cache when popped).
    private readonly PriorityQueue<(uint, EidFamily, int, UInt128, bool), long> _expiries = new();
    private readonly MapServerCounters _counters;
    private readonly Func<MapServerConfig> _config;
    private readonly MapReply _negative = new();
    private readonly byte[] _out = new byte[LispMessage.MaxMessageLength];

    private readonly MapServerCore.Sender _sendRequest;

    /// <param name="config">The configuration in force (roots, timeout and TTLs follow a reload).</param>
    /// <param name="sendRequest">
    /// Sends a DDT Map-Request from the resolver's own socket, so that the Map-Referrals come back there and never
    /// queue behind the ITRs' requests on the listening sockets (a flood of those would otherwise drop them). The
    /// timeout retries go this way; <see cref="Start"/> and <see cref="OnReferral"/> may be given their caller's
    /// batch to the same socket instead.
    /// </param>
    public DdtResolver(MapServerCounters counters, Func<MapServerConfig> config, MapServerCore.Sender sendRequest)
    {
        _counters = counters;
        _config = config;
        _sendRequest = sendRequest;
    }

    public int PendingCount { get { lock (_lock) return _pending.Count; } }

    /// <summary>Entries held in the referral cache, expired ones not yet swept included.</summary>
    public int CachedCount { get { lock (_lock) return _cache.Count; } }

    /// <summary>The referral cache, most specific last, without expired entries.</summary>
    public IReadOnlyList<CachedReferral> CacheSnapshot(long nowMs)
    {
        lock (_lock) return _cache.Values.Where(c => c.ExpiresMs > nowMs).OrderBy(c => c.InstanceId).ThenBy(c => c.Family).ThenBy(c => c.Prefix).ThenBy(c => c.Length).ToList();
    }

    /// <summary>
    /// Starts resolving an ITR's Map-Request (its ECM, <paramref name="ecm"/>) for one EID; the answer reaches the
    /// ITR at <paramref name="itr"/> from the Map-Server or as our negative Map-Reply. False when nothing was sent
    /// (too many pending requests, or the same nonce already pending: a retransmission of the ITR).
    /// </summary>
    /// <param name="send">Carries a negative Map-Reply to the ITR.</param>
    /// <param name="sendRequest">Carries the DDT Map-Request (null: the resolver's own sender).</param>
    public bool Start(ReadOnlySpan<byte> ecm, ulong nonce, uint iid, EidFamily family, UInt128 eid, bool lcaf, IPEndPoint itr, long nowMs, MapServerCore.Sender send,
        MapServerCore.Sender? sendRequest = null)
    {
        var config = _config();
        var p = new Pending { Ecm = ecm.ToArray(), Itr = itr, InstanceId = iid, Family = family, Eid = eid, Lcaf = lcaf };
        // The D bit: a DDT-originated request (RFC 8111 §6.2); not to an ETR, not to a Map-Server's M role.
        p.Ecm[0] = (byte)((p.Ecm[0] | 0x04) & ~0x03);
        (byte[] Bytes, IPEndPoint To)? first;
        lock (_lock)
        {
            if (_pending.ContainsKey(nonce)) { _counters.Add(MsCounter.DdtRequestsRetransmitted); return false; }
            if (_pending.Count >= MaxPending) { _counters.Add(MsCounter.DdtRequestsRefused); return false; }
            var cached = Lookup(iid, family, eid, nowMs);
            if (cached is not null && cached.Action is MapReferralAction.MsNotRegistered or MapReferralAction.DelegationHole)
            {
                // Known to have no mapping: answered from the cache, no DDT traffic.
                _counters.Add(MsCounter.DdtAnsweredFromCache);
                SendNegative(p, nonce, cached.Prefix, cached.Length, (uint)Math.Max(1, (cached.ExpiresMs - nowMs) / 60_000), send);
                return true;
            }
            _counters.Add(MsCounter.DdtRequestsStarted);
            if (cached is not null)
            {
                p.From = cached;
                p.LastLength = cached.Length;
                p.Targets = Order(cached, nowMs);
            }
            else p.Targets = RootTargets(config, nowMs);
            _pending[nonce] = p;
            first = NextSend(p, nonce, nowMs);
        }
        if (first is var (bytes, to)) (sendRequest ?? _sendRequest)(bytes, to);
        return true;
    }

    /// <summary>
    /// A Map-Referral for a pending request: cached and followed. Counted and ignored when no request with its nonce
    /// is pending or it comes from another address than the one asked. <paramref name="send"/> carries negative
    /// Map-Replies to the ITRs, <paramref name="sendRequest"/> the next DDT Map-Request (null: the resolver's own sender).
    /// </summary>
    public void OnReferral(MapReferral referral, IPEndPoint from, long nowMs, MapServerCore.Sender send, MapServerCore.Sender? sendRequest = null)
    {
        (byte[] Bytes, IPEndPoint To)? next = null;
        lock (_lock)
        {
            if (!_pending.TryGetValue(referral.Nonce, out var p) || p.AskedAt is null || !SameAddress(p.AskedAt, from))
            {
                _counters.Add(MsCounter.DdtReferralsUnexpected);
                return;
            }
            _counters.Add(MsCounter.DdtReferralsReceived);
            if (_downUntilMs.Count > 0 && _downUntilMs.Remove(Plain(from.Address))) _counters.Add(MsCounter.DdtTargetsUp);
            var r = referral.Records.Count > 0 ? referral.Records[0] : null;
            if (r is null || !EidAddress.TryRead(r.EidPrefix, out uint iid, out var family, out var prefix) || iid != p.InstanceId || family != p.Family
                || EidPrefix.Mask(p.Eid, family, r.EidMaskLength) != EidPrefix.Mask(prefix, family, r.EidMaskLength))
            {
                // A referral that does not hold the EID asked for: the node is wrong; try the next target.
                _counters.Add(MsCounter.DdtReferralsUnexpected);
                next = NextSend(p, referral.Nonce, nowMs);
            }
            else
            {
                next = Follow(p, referral.Nonce, r, family, EidPrefix.Mask(prefix, family, r.EidMaskLength), from, nowMs, send);
            }
        }
        if (next is var (bytes, to)) (sendRequest ?? _sendRequest)(bytes, to);
    }

    /// <summary>Retries requests whose referral did not come in time with the next target; gives up after the last.</summary>
    public void Tick(long nowMs)
    {
        List<(byte[], IPEndPoint)>? sends = null;
        lock (_lock)
        {
            int timeout = _config().Ddt.RequestTimeoutMs;
            // Oldest sends first; the scan stops at the first that is still within its time.
            while (_sentOrder.TryPeek(out var head) && nowMs - head.SentMs >= timeout)
            {
                _sentOrder.Dequeue();
                if (!_pending.TryGetValue(head.Nonce, out var p) || p.SentMs != head.SentMs) continue; // answered, or sent again since
                _counters.Add(MsCounter.DdtRequestTimeouts);
                if (p.AskedAt is not null && _downUntilMs.TryAdd(Plain(p.AskedAt.Address), nowMs + TargetDownMs)) _counters.Add(MsCounter.DdtTargetsMarkedDown);
                if (NextSend(p, head.Nonce, nowMs) is { } s) (sends ??= []).Add(s);
            }
            if (nowMs >= _nextSweepMs)
            {
                // Expired referrals are never used (lookups check the time); they are removed once a second, the
                // soonest to expire first, so that a sweep costs what expired and not the size of the cache (it
                // holds the lock the ITRs' requests wait for).
                _nextSweepMs = nowMs + 1000;
                while (_expiries.TryPeek(out var key, out long expires) && expires <= nowMs)
                {
                    _expiries.Dequeue();
                    if (_cache.TryGetValue(key, out var entry) && entry.ExpiresMs <= nowMs) Uncache(entry);
                }
                foreach (var (address, until) in _downUntilMs.Where(d => d.Value <= nowMs).ToList()) _downUntilMs.Remove(address);
            }
        }
        if (sends is not null) foreach (var (b, to) in sends) _sendRequest(b, to);
    }

    private (byte[], IPEndPoint)? Follow(Pending p, ulong nonce, ReferralRecord r, EidFamily family, UInt128 prefix, IPEndPoint from, long nowMs, MapServerCore.Sender send)
    {
        if (r.Action == MapReferralAction.MsAck && p.From is { Action: MapReferralAction.MsReferral } via && Names(via, from))
        {
            // The commonest referral of all, every warm request's: the Map-Server that the cached MS-REFERRAL led to
            // acknowledges. Nothing to cache (below), so nothing is built.
            _counters.Add(MsCounter.DdtResolvedByMapServer);
            _pending.Remove(nonce);
            return null;
        }
        var config = _config();
        var targets = new List<(IPEndPoint, byte, byte)>(r.Referrals.Count);
        foreach (var l in r.Referrals)
            if (l.Locator.PlainAddress is { Kind: LispAddressKind.Ipv4 or LispAddressKind.Ipv6 } address)
                targets.Add((new IPEndPoint(address.ToIPAddress(), LispPorts.Control), l.Priority, l.Weight));
        var entry = new CachedReferral(p.InstanceId, family, prefix, r.EidMaskLength, r.Action, targets, r.Incomplete, nowMs + (long)r.TtlMinutes * 60_000);
        switch (r.Action)
        {
            case MapReferralAction.NodeReferral:
            case MapReferralAction.MsReferral:
                if (r.EidMaskLength <= p.LastLength || ++p.Hops > MaxHops)
                {
                    _counters.Add(MsCounter.DdtReferralLoops);
                    _pending.Remove(nonce);
                    return null;
                }
                Cache(entry, nowMs);
                p.LastLength = r.EidMaskLength;
                p.From = entry;
                p.Targets = Order(targets, nowMs);
                p.Next = 0;
                return NextSend(p, nonce, nowMs);
            case MapReferralAction.MsAck:
                // The Map-Server answers the ITR (or its ETR does); next time we ask that Map-Server directly. (When
                // the referral that led here already names it, that referral is what the next walk will use, and the
                // start of this method returned: an entry per acknowledged EID would add nothing but a cache of one
                // entry per EID ever asked, a million for a million agents, to hold and expire.)
                Cache(entry with { Targets = [(new IPEndPoint(from.Address, from.Port), (byte)0, (byte)100), .. targets] }, nowMs);
                _counters.Add(MsCounter.DdtResolvedByMapServer);
                _pending.Remove(nonce);
                return null;
            case MapReferralAction.MsNotRegistered:
            case MapReferralAction.DelegationHole:
                Cache(entry, nowMs);
                _counters.Add(MsCounter.DdtNegativeRepliesSent);
                _pending.Remove(nonce);
                SendNegative(p, nonce, prefix, r.EidMaskLength, Math.Max(1u, r.TtlMinutes), send);
                return null;
            default: // NOT-AUTHORITATIVE (or an unknown action): what led here is stale
                _counters.Add(MsCounter.DdtNotAuthoritative);
                if (p.From is not null) Uncache(p.From);
                if (p.Restarted || config.Ddt.Roots.Count == 0)
                {
                    _pending.Remove(nonce);
                    _counters.Add(MsCounter.DdtNegativeRepliesSent);
                    SendNegative(p, nonce, p.Eid, EidPrefix.MaxLength(family), config.UnregisteredTtlMinutes, send);
                    return null;
                }
                p.Restarted = true;
                p.From = null;
                p.LastLength = -1;
                p.Targets = RootTargets(config, nowMs);
                p.Next = 0;
                return NextSend(p, nonce, nowMs);
        }
    }

    /// <summary>The request to the next target in the set, or null (and the request dropped) when none is left.</summary>
    private (byte[], IPEndPoint)? NextSend(Pending p, ulong nonce, long nowMs)
    {
        if (p.Next >= p.Targets.Count)
        {
            _counters.Add(MsCounter.DdtRequestsAbandoned);
            _pending.Remove(nonce);
            return null;
        }
        var target = p.Targets[p.Next++].Address;
        p.AskedAt = target;
        p.SentMs = nowMs;
        _sentOrder.Enqueue((nonce, nowMs));
        _counters.Add(MsCounter.DdtMapRequestsSent);
        return (p.Ecm, target);
    }

    private void SendNegative(Pending p, ulong nonce, UInt128 prefix, int length, uint ttlMinutes, MapServerCore.Sender send)
    {
        var reply = _negative;
        reply.Nonce = nonce;
        reply.Records.Clear();
        var record = reply.Records.AddSlot();
        EidAddress.Assign(record.EidPrefix, p.InstanceId, p.Family, EidPrefix.Mask(prefix, p.Family, length), p.Lcaf || p.InstanceId != 0);
        record.EidMaskLength = (byte)length;
        record.TtlMinutes = ttlMinutes;
        record.Action = MapReplyAction.NativelyForward;
        record.Authoritative = true;
        record.MapVersion = 0;
        record.Locators.Clear();
        int n = reply.TryEncode(_out);
        if (n > 0) send(_out.AsSpan(0, n), p.Itr);
    }

    private List<(IPEndPoint, byte, byte)> RootTargets(MapServerConfig config, long nowMs) => Order(config.Ddt.Roots.Select(r => (r, (byte)0, (byte)100)).ToList(), nowMs);

    /// <summary>
    /// By priority (255: not to be used), the order within a priority the order given; targets marked down (a timeout
    /// in the last <see cref="TargetDownMs"/>) after all the others, so they are still tried when nothing else is left.
    /// </summary>
    private List<(IPEndPoint Address, byte Priority, byte Weight)> Order(IReadOnlyList<(IPEndPoint Address, byte Priority, byte Weight)> targets, long nowMs) =>
        _downUntilMs.Count == 0 ? ByPriority(targets) : DownLast(ByPriority(targets), nowMs);

    /// <summary>A cached referral's targets in the order to ask them (<see cref="Order"/>), sorted by priority once.</summary>
    private IReadOnlyList<(IPEndPoint Address, byte Priority, byte Weight)> Order(CachedReferral referral, long nowMs) =>
        _downUntilMs.Count == 0 ? referral.ByPriority : DownLast(referral.ByPriority, nowMs);

    /// <summary>The usable targets (priority 255: not to be used) by priority, the order within a priority the order given.</summary>
    internal static List<(IPEndPoint Address, byte Priority, byte Weight)> ByPriority(IReadOnlyList<(IPEndPoint Address, byte Priority, byte Weight)> targets) =>
        targets.Where(t => t.Priority != 255).OrderBy(t => t.Priority).ToList();

    /// <summary>Targets in priority order with those marked down moved after the others (a stable sort keeps the rest as they are).</summary>
    private List<(IPEndPoint Address, byte Priority, byte Weight)> DownLast(IReadOnlyList<(IPEndPoint Address, byte Priority, byte Weight)> ordered, long nowMs) =>
        ordered.OrderBy(t => IsDown(t.Address, nowMs)).ToList();

    private static bool Names(CachedReferral referral, IPEndPoint target)
    {
        foreach (var t in referral.Targets)
            if (SameAddress(t.Address, target)) return true;
        return false;
    }

    private bool IsDown(IPEndPoint target, long nowMs) =>
        _downUntilMs.Count > 0 && _downUntilMs.TryGetValue(Plain(target.Address), out long until) && until > nowMs;

    /// <summary>Targets that timed out recently and are asked last, for the status.</summary>
    public IReadOnlyList<(IPAddress Address, long DownForMs)> DownTargets(long nowMs)
    {
        lock (_lock) return _downUntilMs.Where(d => d.Value > nowMs).Select(d => (d.Key, d.Value - nowMs)).OrderBy(d => d.Key.ToString()).ToList();
    }

    private static IPAddress Plain(IPAddress a) => a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a;

    private CachedReferral? Lookup(uint iid, EidFamily family, UInt128 eid, long nowMs)
    {
        int row = family == EidFamily.Ipv4 ? 0 : 129;
        for (int length = EidPrefix.MaxLength(family); length >= 0; length--)
        {
            if (_lengthsInUse[row + length] == 0) continue;
            var prefix = EidPrefix.Mask(eid, family, length);
            if (_cache.TryGetValue((iid, family, length, prefix, true), out var answer) && answer.ExpiresMs > nowMs) return answer;
            if (_cache.TryGetValue((iid, family, length, prefix, false), out var referral) && referral.ExpiresMs > nowMs) return referral;
        }
        return null;
    }

    /// <summary>Keeps a referral for its TTL; one with TTL 0 (NOT-AUTHORITATIVE, or a peer's choice) is followed, not kept.</summary>
    private void Cache(CachedReferral entry, long nowMs)
    {
        var key = Key(entry);
        bool known = _cache.ContainsKey(key);
        if (entry.ExpiresMs <= nowMs || (_cache.Count >= MaxCached && !known)) return;
        _cache[key] = entry;
        _expiries.Enqueue(key, entry.ExpiresMs);
        if (!known) _lengthsInUse[(entry.Family == EidFamily.Ipv4 ? 0 : 129) + entry.Length]++;
    }

    private void Uncache(CachedReferral entry)
    {
        if (_cache.Remove(Key(entry))) _lengthsInUse[(entry.Family == EidFamily.Ipv4 ? 0 : 129) + entry.Length]--;
    }

    private static (uint, EidFamily, int, UInt128, bool) Key(CachedReferral c) =>
        (c.InstanceId, c.Family, c.Length, c.Prefix, c.Action is not (MapReferralAction.NodeReferral or MapReferralAction.MsReferral));

    private static bool SameAddress(IPEndPoint a, IPEndPoint b) => Plain(a.Address).Equals(Plain(b.Address));
}
