using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Net;
using FastXtr.Lisp.Answers;
using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;

namespace FastXtr.MapServer;

/// <summary>(IID, family, prefix, length): the key of a registered EID prefix.</summary>
public readonly record struct EidKey(uint InstanceId, EidFamily Family, UInt128 Prefix, int Length)
{
    /// <summary>The key of the /<paramref name="length"/> prefix holding <paramref name="eid"/> (its host bits cleared).</summary>
    public static EidKey Masked(uint instanceId, EidFamily family, UInt128 eid, int length) => new(instanceId, family, EidPrefix.Mask(eid, family, length), length);
}

/// <summary>What one xTR (by xTR-ID) registered for one EID prefix.</summary>
/// <param name="ProxyReply">The Map-Register's P bit: this ETR asks the Map-Server to answer for it (RFC 9301 §5.6).</param>
public sealed record XtrRegistration(
    UInt128 XtrId, ulong SiteId, IPEndPoint Source, ImmutableArray<RegisteredRloc> Rlocs, bool Merge,
    uint TtlMinutes, ushort MapVersion, DateTime FirstRegistered, DateTime LastRegistered, long ExpiresAtMs, bool ProxyReply = false)
{
    /// <summary>Where this xTR's last Map-Register came from (the publisher notifies its address when the prefix moves
    /// away): moved in place by a refresh, since a NAT, or an xTR restarted on another port, changes only this.</summary>
    public IPEndPoint Source { get; internal set; } = Source;

    /// <summary>When this xTR last registered it: moved forward in place by a refresh that changes nothing else.</summary>
    public DateTime LastRegistered { get; internal set; } = LastRegistered;

    /// <summary>When it expires unless refreshed: moved forward in place by a refresh (under the store's write lock).</summary>
    public long ExpiresAtMs { get; internal set; } = ExpiresAtMs;

    /// <summary>
    /// Whether a Map-Register from the same xTR registers exactly this again (the same locator set object, which the
    /// Map-Server shares when the plain locators are unchanged, and the same flags, TTL and map-version): then only
    /// the source and times move.
    /// </summary>
    internal bool IsRefreshedBy(UInt128 xtrId, ulong siteId, ImmutableArray<RegisteredRloc> rlocs, bool merge, uint ttlMinutes, ushort mapVersion, bool proxyReply) =>
        xtrId == XtrId && siteId == SiteId && rlocs == Rlocs && merge == Merge && ttlMinutes == TtlMinutes && mapVersion == MapVersion && proxyReply == ProxyReply;

    /// <summary>A refresh: where it came from and its times move; nothing else changed (under the store's write lock).</summary>
    internal void Refresh(IPEndPoint source, DateTime lastRegistered, long expiresAtMs)
    {
        if (!Source.Equals(source)) Source = source;
        LastRegistered = lastRegistered;
        ExpiresAtMs = expiresAtMs;
    }
}

/// <summary>
/// One site's configuration as it is now. Every registration of the site holds the same binding, so a reload that
/// changes a site's keys or proxy-reply replaces one reference instead of rebinding each of its registrations
/// (measured with a million: 1.9 s and 224 MB allocated when each was rebound).
/// </summary>
public sealed class SiteBinding(SiteConfig site)
{
    private SiteConfig _current = site;
    private volatile bool _removed;

    public SiteConfig Current
    {
        get => Volatile.Read(ref _current);
        internal set => Volatile.Write(ref _current, value);
    }

    /// <summary>A reload removed the site: nothing it holds (registrations, subscriptions) may stay.</summary>
    public bool Removed
    {
        get => _removed;
        internal set => _removed = value;
    }
}

/// <summary>All registrations of one EID prefix, by xTR-ID. Immutable (but for the site binding, which a reload
/// moves on): changes replace the whole object.</summary>
public sealed record EidRegistration(EidKey Key, SiteBinding Binding, ImmutableDictionary<UInt128, XtrRegistration> ByXtr)
{
    /// <summary>The site's configuration as it is now.</summary>
    public SiteConfig Site => Binding.Current;

    private EidRegistration(EidRegistration original)
    {
        Key = original.Key;
        Binding = original.Binding;
        ByXtr = original.ByXtr;
        _proxyReply = -1;
        _effective = default;
        _ttlMinutes = -1;
        _mapVersion = -1;
        // A copy made with `with` (some xTRs removed) expires no earlier than the original: the entry the store's
        // expiry queue holds for the prefix serves it too.
        ScheduledExpiryMs = original.ScheduledExpiryMs;
        // Written out so that a copy made with `with` is a new version whose earliest expiry is computed afresh.
    }

    private long _earliestExpiryMs = long.MinValue;

    /// <summary>
    /// When the store's expiry queue next looks at this prefix (<see cref="long.MaxValue"/>: not queued); never later
    /// than <see cref="EarliestExpiryMs"/>. Read and written under the store's write lock.
    /// </summary>
    internal long ScheduledExpiryMs = long.MaxValue;

    /// <summary>
    /// The refresh every xTR sends each minute for each of its agents (and the draft's frequent ones), moved in place
    /// under the store's write lock: true when <paramref name="xtrId"/> alone registered this prefix and registers
    /// exactly the same again; its source and times then moved, and nothing is allocated or published. With one xTR
    /// only: where several registered without merging, the most recent one's locators answer, and which one that is
    /// must go through the store's comparison.
    /// </summary>
    internal bool TryRefresh(UInt128 xtrId, ulong siteId, ImmutableArray<RegisteredRloc> rlocs, bool merge, uint ttlMinutes, ushort mapVersion, bool proxyReply,
        IPEndPoint source, DateTime now, long expiresAtMs)
    {
        if (ByXtr.Count != 1 || !ByXtr.TryGetValue(xtrId, out var same) || !same.IsRefreshedBy(xtrId, siteId, rlocs, merge, ttlMinutes, mapVersion, proxyReply)) return false;
        same.Refresh(source, now, expiresAtMs);
        // Its only xTR's time is the earliest: known without walking ByXtr (the expiry queue asks at every refresh).
        _earliestExpiryMs = expiresAtMs;
        return true;
    }
    private int _proxyReply = -1;

    /// <summary>Whether an ETR of this prefix asked for proxy Map-Replies (the P bit); computed once.</summary>
    public bool ProxyReplyRequested
    {
        get
        {
            if (_proxyReply < 0)
            {
                bool any = false;
                foreach (var x in ByXtr) any |= x.Value.ProxyReply;
                _proxyReply = any ? 1 : 0;
            }
            return _proxyReply == 1;
        }
    }

    /// <summary>When the first of its xTR registrations expires; computed once, and set by a refresh in place.</summary>
    public long EarliestExpiryMs
    {
        get
        {
            if (_earliestExpiryMs == long.MinValue)
            {
                long min = long.MaxValue;
                foreach (var x in ByXtr) min = Math.Min(min, x.Value.ExpiresAtMs);
                _earliestExpiryMs = min;
            }
            return _earliestExpiryMs;
        }
    }

    /// <summary>
    /// The RLOC set an answer uses: every xTR's locators merged when any of them asked for merging (the a bit,
    /// RFC 9301 §5.6); otherwise the most recent registration's.
    /// </summary>
    public ImmutableArray<RegisteredRloc> EffectiveRlocs()
    {
        // Computed once per version, like the values below: every answer asks, and walking the immutable dictionary
        // through LINQ allocated about 300 bytes per Map-Request. (Only a refresh moves anything in place, and only
        // where one xTR registered, whose locator set is the answer whatever its times.)
        if (_effective.IsDefault)
        {
            if (ByXtr.Count == 1)
            {
                foreach (var x in ByXtr) _effective = x.Value.Rlocs;
            }
            else if (ByXtr.Values.Any(x => x.Merge))
                _effective = ByXtr.Values.OrderBy(x => x.FirstRegistered).SelectMany(x => x.Rlocs).ToImmutableArray();
            else _effective = ByXtr.Values.MaxBy(x => x.LastRegistered)!.Rlocs;
        }
        return _effective;
    }
    private ImmutableArray<RegisteredRloc> _effective;

    public uint TtlMinutes
    {
        get
        {
            if (_ttlMinutes < 0)
            {
                uint min = uint.MaxValue;
                foreach (var x in ByXtr) min = Math.Min(min, x.Value.TtlMinutes);
                _ttlMinutes = min;
            }
            return (uint)_ttlMinutes;
        }
    }
    private long _ttlMinutes = -1;

    /// <summary>What an answer for this registration says about the prefix (<paramref name="lcaf"/>: the requester used an IID LCAF).</summary>
    public AnswerFor AnswerFor(bool lcaf) => new(Key.InstanceId, Key.Family, Key.Prefix, Key.Length, TtlMinutes, MapVersion, lcaf);

    public ushort MapVersion
    {
        get
        {
            if (_mapVersion < 0)
            {
                int max = 0;
                foreach (var x in ByXtr) max = Math.Max(max, x.Value.MapVersion);
                _mapVersion = max;
            }
            return (ushort)_mapVersion;
        }
    }
    private int _mapVersion = -1;
}

/// <summary>
/// Registered EID prefixes with longest-prefix match per (IID, family). Lookups are lock-free reads of a
/// concurrent dictionary whose values are immutable, so concurrent Map-Requests see a registration either before or
/// after a change, never half of it; an attribute update replaces the value in one step and the prefix never
/// resolves negatively in between. Writers (Map-Registers, expiry) take one lock for the ordered index that the
/// negative-reply computation needs.
/// </summary>
public sealed class RegistrationStore
{
    private readonly ConcurrentDictionary<EidKey, EidRegistration> _byKey = new();
    private readonly ConcurrentDictionary<(uint, EidFamily), LengthSet> _lengths = new();
    private readonly Dictionary<(uint, EidFamily), SortedSet<UInt128>> _ordered = [];
    // How many registered prefixes (of any length) start at each address: the ordered set holds addresses once.
    private readonly Dictionary<(uint, EidFamily, UInt128), int> _addressUses = [];
    private readonly object _write = new();
    // Which site each xTR-ID registered with, and for how many prefixes: a subscription needs the subscriber's site.
    private readonly Dictionary<UInt128, (SiteBinding Site, int Prefixes)> _xtrSites = [];
    // Each site's binding by name. Before any reload a name seen for the first time gets one; after a reload the
    // names are exactly the configured sites', and a Map-Register for a site that is gone is refused.
    private readonly Dictionary<string, SiteBinding> _bindings = [];
    private bool _sitesApplied;
    // Each registered prefix by when expiry next looks at it (its EidRegistration.ScheduledExpiryMs; an entry whose
    // time is no longer the prefix's is left over from an earlier schedule and skipped). Under the write lock.
    private readonly PriorityQueue<QueuedKey, long> _expiryQueue = new();

    /// <summary>
    /// A prefix's key as the expiry queue holds it: 24 bytes where an <see cref="EidKey"/> takes 48 (its UInt128 is
    /// aligned to 16), so a million queued prefixes take 32 MB instead of 64.
    /// </summary>
    private readonly record struct QueuedKey(ulong Low, ulong High, uint InstanceId, EidFamily Family, byte Length)
    {
        public static QueuedKey Of(EidKey k) => new((ulong)k.Prefix, (ulong)(k.Prefix >> 64), k.InstanceId, k.Family, (byte)k.Length);
        public EidKey Key => new(InstanceId, Family, new UInt128(High, Low), Length);
    }

    /// <summary>
    /// How many prefixes one <see cref="Expire"/> call looks at, at most (the host calls it every 10 ms): a
    /// burst of expiries (an xTR with many prefixes gone) is spread over calls, so expiry holds the write lock and a
    /// core for short slices only, which would otherwise show up in the Map-Request latency.
    /// </summary>
    public const int ExpiryScanPerCall = 500;

    /// <summary>
    /// Prefixes the expiry has looked at since the start: one when a registration is due, or was due before a
    /// refresh moved it (then it is queued again for its new time); nothing for the others. (The scan this replaced
    /// walked the whole table, 50,000 registrations a second: 3-5% of a core with a million, profiled on 2026-12-07.)
    /// </summary>
    public long ExpiryChecks { get; private set; }

    // The map-versions of recent withdrawals, by (prefix, xTR-ID): a register built before a withdrawal that arrives
    // after it must not bring the prefix back. Pruned as they leave the reorder window.
    private readonly ConcurrentDictionary<(EidKey, UInt128), (ushort Version, long AtMs)> _withdrawnVersions = new();
    private long _lastPruneMs;

    /// <summary>Raised after a registration changed (new, RLOCs or attributes changed, or removed): old, new.</summary>
    public event Action<EidRegistration?, EidRegistration?>? Changed;

    private sealed class LengthSet
    {
        // Bit n of word n/64: some prefix of length n exists. Written under the store's lock, read lock-free.
        public readonly long[] Words = new long[3];
    }

    public int Count => _byKey.Count;

    public IEnumerable<EidRegistration> All => _byKey.Values;

    public bool TryGet(EidKey key, out EidRegistration registration) => _byKey.TryGetValue(key, out registration!);

    /// <summary>Longest-prefix match of an EID.</summary>
    public bool TryLookup(uint iid, EidFamily family, UInt128 eid, out EidRegistration registration)
    {
        if (_lengths.TryGetValue((iid, family), out var set))
        {
            int max = EidPrefix.MaxLength(family);
            for (int len = max; len >= 0; len--)
            {
                if ((Volatile.Read(ref set.Words[len >> 6]) & (1L << (len & 63))) == 0) continue;
                if (_byKey.TryGetValue(EidKey.Masked(iid, family, eid, len), out registration!)) return true;
            }
        }
        registration = null!;
        return false;
    }

    /// <summary>
    /// The refresh <see cref="Register"/> would move in place, checked before the caller builds a registration object:
    /// true when this xTR alone registered the prefix with exactly these locators (the same set object), flags, TTL
    /// and map-version, for the site as it is now; its source and times then moved. False asks for
    /// <see cref="Register"/>. Allocates nothing: at 100,000 refreshes a second, each object made is a collection
    /// sooner, and a collection with a million registrations in the heap pauses the worker for milliseconds.
    /// </summary>
    public bool TryRefresh(EidKey key, SiteConfig site, UInt128 xtrId, ulong siteId, IPEndPoint source, ImmutableArray<RegisteredRloc> rlocs,
        bool merge, uint ttlMinutes, ushort mapVersion, bool proxyReply, DateTime now, long expiresAtMs)
    {
        lock (_write)
        {
            if (!_byKey.TryGetValue(key, out var old) || !_bindings.TryGetValue(site.Name, out var binding) || !ReferenceEquals(binding.Current, site)
                || !old.TryRefresh(xtrId, siteId, rlocs, merge, ttlMinutes, mapVersion, proxyReply, source, now, expiresAtMs)) return false;
            ScheduleExpiry(old);
            return true;
        }
    }

    /// <summary>
    /// Stores (or replaces) one xTR's registration of a prefix; returns what changed: the previous EID
    /// registration and the new one.
    /// </summary>
    public (EidRegistration? Old, EidRegistration? New) Register(EidKey key, SiteConfig site, XtrRegistration xtr)
    {
        EidRegistration? old;
        EidRegistration updated;
        lock (_write)
        {
            _byKey.TryGetValue(key, out old);
            if (!_bindings.TryGetValue(site.Name, out var binding))
            {
                if (_sitesApplied) return (old, null); // a reload removed the site this Map-Register was checked against
                _bindings[site.Name] = binding = new SiteBinding(site);
            }
            // Checked against a site that a reload has just replaced: the site as it is now decides.
            else if (!ReferenceEquals(binding.Current, site) && !SiteComparison.Covers(binding.Current, key)) return (old, null);
            var byXtr = (old?.ByXtr ?? ImmutableDictionary<UInt128, XtrRegistration>.Empty);
            if (old is not null && old.TryRefresh(xtr.XtrId, xtr.SiteId, xtr.Rlocs, xtr.Merge, xtr.TtlMinutes, xtr.MapVersion, xtr.ProxyReply, xtr.Source, xtr.LastRegistered, xtr.ExpiresAtMs))
            {
                ScheduleExpiry(old);
                return (old, old);
            }
            if (old is not null && byXtr.TryGetValue(xtr.XtrId, out var previous)) xtr = xtr with { FirstRegistered = previous.FirstRegistered };
            else _xtrSites[xtr.XtrId] = (binding, _xtrSites.GetValueOrDefault(xtr.XtrId).Prefixes + 1);
            updated = new EidRegistration(key, binding, byXtr.SetItem(xtr.XtrId, xtr)) { ScheduledExpiryMs = old?.ScheduledExpiryMs ?? long.MaxValue };
            ScheduleExpiry(updated);
            if (old is null)
            {
                var set = _lengths.GetOrAdd((key.InstanceId, key.Family), _ => new LengthSet());
                // The length bit goes up before the entry exists, so a concurrent lookup finds it once it does.
                Volatile.Write(ref set.Words[key.Length >> 6], set.Words[key.Length >> 6] | (1L << (key.Length & 63)));
                if (!_ordered.TryGetValue((key.InstanceId, key.Family), out var ordered)) _ordered[(key.InstanceId, key.Family)] = ordered = [];
                ordered.Add(key.Prefix);
                _addressUses[(key.InstanceId, key.Family, key.Prefix)] = _addressUses.GetValueOrDefault((key.InstanceId, key.Family, key.Prefix)) + 1;
            }
            _byKey[key] = updated;
        }
        if (!SameAnswer(old, updated)) Changed?.Invoke(old, updated);
        return (old, updated);
    }

    /// <summary>
    /// A reload's new sites (by name). Each site keeps its binding, which now holds its new configuration: a changed
    /// key or proxy-reply costs one reference, whatever the number of registrations. Only when a site is gone, or no
    /// longer holds every prefix it held, is the table walked, without the lock (Map-Registers go on meanwhile), and
    /// each registration of such a site that its site no longer covers removed under the lock, its subscribers told
    /// as for an expiry. Registrations of a site whose keys changed stay: they were authenticated when they arrived,
    /// and the next refresh must use the new key. A Map-Register checked against the old sites while this runs is
    /// re-checked against the new ones when it is stored. Returns how many prefixes were removed; one caller at a time.
    /// </summary>
    public int ApplySites(IReadOnlyDictionary<string, SiteConfig> sites)
    {
        var gone = new HashSet<SiteBinding>(ReferenceEqualityComparer.Instance);
        var narrowed = new HashSet<SiteBinding>(ReferenceEqualityComparer.Instance);
        lock (_write)
        {
            _sitesApplied = true;
            foreach (var (name, binding) in _bindings.ToList())
            {
                if (!sites.TryGetValue(name, out var site))
                {
                    binding.Removed = true;
                    gone.Add(binding);
                    _bindings.Remove(name);
                }
                else if (!ReferenceEquals(binding.Current, site))
                {
                    if (!binding.Current.Prefixes.All(site.Prefixes.Contains)) narrowed.Add(binding);
                    binding.Current = site;
                }
            }
            foreach (var (name, site) in sites)
                if (!_bindings.ContainsKey(name)) _bindings[name] = new SiteBinding(site);
        }
        if (gone.Count == 0 && narrowed.Count == 0) return 0;
        var changes = new List<(EidRegistration Old, EidRegistration? New)>();
        foreach (var (key, seen) in _byKey)
        {
            if (!gone.Contains(seen.Binding) && !narrowed.Contains(seen.Binding)) continue;
            lock (_write)
            {
                // Looked at again under the lock: the prefix may have been re-registered meanwhile.
                if (!_byKey.TryGetValue(key, out var reg)) continue;
                if (gone.Contains(reg.Binding) || (narrowed.Contains(reg.Binding) && !SiteComparison.Covers(reg.Site, key)))
                    RemoveWhere(key, _ => true, changes);
            }
        }
        foreach (var (o, n) in changes) Changed?.Invoke(o, n);
        return changes.Count;
    }

    /// <summary>
    /// Whether a record from <paramref name="xtrId"/> for <paramref name="key"/> carrying <paramref name="mapVersion"/>
    /// is older (RFC 9302 §3) than the version of that xTR's registration or withdrawal of the prefix accepted within
    /// the <see cref="MapVersioning.ReorderWindow"/>: a leftover that must not undo what came after it. Records without a version
    /// (0, as most deployed xTRs send) are never stale.
    /// </summary>
    public bool IsStale(EidKey key, UInt128 xtrId, ushort mapVersion, DateTime now, long nowMs)
    {
        if (mapVersion == MapVersioning.Null) return false;
        if (_byKey.TryGetValue(key, out var reg) && reg.ByXtr.TryGetValue(xtrId, out var x)
            && now - x.LastRegistered < MapVersioning.ReorderWindow && MapVersioning.IsNewer(x.MapVersion, mapVersion)) return true;
        return _withdrawnVersions.TryGetValue((key, xtrId), out var w)
               && nowMs - w.AtMs < (long)MapVersioning.ReorderWindow.TotalMilliseconds && MapVersioning.IsNewer(w.Version, mapVersion);
    }

    /// <summary>The site an xTR-ID has registered prefixes with; false when it has none registered now.</summary>
    public bool TryGetSiteOf(UInt128 xtrId, out SiteBinding site)
    {
        lock (_write)
        {
            bool found = _xtrSites.TryGetValue(xtrId, out var entry);
            site = entry.Site;
            return found;
        }
    }

    /// <summary>
    /// Removes xTR registrations whose expiry has passed, looking at up to <paramref name="budget"/> prefixes queued
    /// for a time that has come (the rest wait for the next call); returns how many prefixes lost a registration. A
    /// prefix refreshed since it was queued is queued again for its new time, so each registration is looked at
    /// about once per registration timeout, not once per pass over the table. The write lock is taken per prefix.
    /// </summary>
    public int Expire(long nowMs, int budget = ExpiryScanPerCall)
    {
        if (!_withdrawnVersions.IsEmpty && nowMs - _lastPruneMs > 1000)
        {
            _lastPruneMs = nowMs;
            foreach (var (k, w) in _withdrawnVersions)
                if (nowMs - w.AtMs >= (long)MapVersioning.ReorderWindow.TotalMilliseconds) _withdrawnVersions.TryRemove(k, out _);
        }
        int removed = 0;
        List<(EidRegistration Old, EidRegistration? New)>? changes = null;
        for (int looked = 0; looked < budget; looked++)
        {
            lock (_write)
            {
                if (!_expiryQueue.TryPeek(out var queued, out long at) || at > nowMs) break;
                _expiryQueue.Dequeue();
                var key = queued.Key;
                // Left over from an earlier schedule (the prefix was queued again for an earlier time, or is gone).
                if (!_byKey.TryGetValue(key, out var reg) || reg.ScheduledExpiryMs != at) continue;
                ExpiryChecks++;
                reg.ScheduledExpiryMs = long.MaxValue;
                if (reg.EarliestExpiryMs <= nowMs && RemoveWhere(key, x => x.ExpiresAtMs <= nowMs, changes ??= []))
                {
                    removed++;
                    // What is left of the prefix (other xTRs' registrations) holds a copy of the entry just used up.
                    if (_byKey.TryGetValue(key, out var left)) ScheduleExpiry(left);
                }
                else ScheduleExpiry(reg); // refreshed in place since it was queued: its new time
            }
        }
        if (changes is not null) foreach (var (o, n) in changes) Changed?.Invoke(o, n);
        return removed;
    }

    /// <summary>Queues a prefix for its earliest expiry when it is not queued for that time or sooner (under the write lock).</summary>
    private void ScheduleExpiry(EidRegistration reg)
    {
        long at = reg.EarliestExpiryMs;
        if (at >= reg.ScheduledExpiryMs) return;
        reg.ScheduledExpiryMs = at;
        _expiryQueue.Enqueue(QueuedKey.Of(reg.Key), at);
    }

    /// <summary>
    /// Withdraws one xTR's registration of a prefix (a Map-Register record with TTL 0): the prefix keeps the other
    /// xTRs' RLOCs, or is gone when it had none. Returns false when that xTR had not registered it.
    /// </summary>
    public bool Withdraw(EidKey key, UInt128 xtrId, ushort mapVersion = MapVersioning.Null, long nowMs = 0)
    {
        if (mapVersion != MapVersioning.Null) _withdrawnVersions[(key, xtrId)] = (mapVersion, nowMs);
        var changes = new List<(EidRegistration Old, EidRegistration? New)>(1);
        if (!RemoveWhere(key, x => x.XtrId == xtrId, changes)) return false;
        foreach (var (o, n) in changes) Changed?.Invoke(o, n);
        return true;
    }

    private bool RemoveWhere(EidKey key, Func<XtrRegistration, bool> remove, List<(EidRegistration Old, EidRegistration? New)> changes)
    {
        lock (_write)
        {
            if (!_byKey.TryGetValue(key, out var reg)) return false;
            var stale = reg.ByXtr.Values.Where(remove).Select(x => x.XtrId).ToList();
            if (stale.Count == 0) return false;
            var left = reg.ByXtr.RemoveRange(stale);
            foreach (var id in stale)
            {
                var entry = _xtrSites[id];
                if (entry.Prefixes <= 1) _xtrSites.Remove(id);
                else _xtrSites[id] = (entry.Site, entry.Prefixes - 1);
            }
            if (left.Count == 0)
            {
                _byKey.TryRemove(key, out _);
                var address = (key.InstanceId, key.Family, key.Prefix);
                if (_addressUses.TryGetValue(address, out int uses) && uses <= 1)
                {
                    _addressUses.Remove(address);
                    _ordered[(key.InstanceId, key.Family)].Remove(key.Prefix);
                }
                else if (uses > 1) _addressUses[address] = uses - 1;
                changes.Add((reg, null));
            }
            else
            {
                var updated = reg with { ByXtr = left };
                _byKey[key] = updated;
                changes.Add((reg, updated));
            }
            return true;
        }
    }

    /// <summary>
    /// The least-specific prefix that covers <paramref name="eid"/> without covering any registered prefix of its
    /// (IID, family): one bit longer than the longest common prefix between the EID and any registered prefix. The
    /// registered prefix sharing the most leading bits is a neighbour of the EID in address order, so two ordered
    /// look-ups suffice.
    /// </summary>
    public int NegativePrefixLength(uint iid, EidFamily family, UInt128 eid)
    {
        int bits = EidPrefix.MaxLength(family);
        int longest = -1;
        lock (_write)
        {
            if (_ordered.TryGetValue((iid, family), out var ordered) && ordered.Count > 0)
            {
                // A view's Min and Max walk one path of the tree; its Count would walk the whole view (at a million
                // registrations, milliseconds per negative answer), so emptiness is decided by the set's own ends.
                UInt128 min = ordered.Min, max = ordered.Max;
                if (min <= eid) longest = Math.Max(longest, CommonPrefixLength(eid, ordered.GetViewBetween(min, eid).Max, bits));
                if (max > eid) longest = Math.Max(longest, CommonPrefixLength(eid, ordered.GetViewBetween(eid + 1, max).Min, bits));
            }
        }
        return Math.Min(bits, longest + 1);
    }

    /// <summary>How many leading bits two addresses of a family (<paramref name="bits"/> long) share.</summary>
    public static int CommonPrefixLength(UInt128 a, UInt128 b, int bits)
    {
        UInt128 x = a ^ b;
        if (bits == 32) return x == 0 ? 32 : (int)UInt128.LeadingZeroCount(x) - 96;
        return (int)UInt128.LeadingZeroCount(x);
    }

    private static bool SameAnswer(EidRegistration? a, EidRegistration b)
    {
        if (a is null) return false;
        var x = a.EffectiveRlocs();
        var y = b.EffectiveRlocs();
        if (x == y) return true;
        if (x.Length != y.Length) return false;
        // A loop, not Zip/All: every registration that is not a refresh (each attribute update among them) comes here,
        // and LINQ over ImmutableArray boxes it and allocates enumerators and a closure.
        for (int i = 0; i < x.Length; i++)
        {
            var (p, q) = (x[i], y[i]);
            if (!p.Address.ContentEquals(q.Address) || p.Priority != q.Priority || p.Weight != q.Weight || p.Reachable != q.Reachable
                || !Equals(p.Context, q.Context)) return false;
        }
        return true;
    }
}
