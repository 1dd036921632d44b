using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;
using FastXtr.SharedMemory.MapCache;

namespace FastXtr.Agent;

/// <summary>
/// Resolution, the ITR side (RFC 9301 §5.3, §6.1): an ECM Map-Request per miss carrying the source's constraint
/// profile and, when configured, a subscription (RFC 9437); at most one per destination and profile per second and a
/// bounded rate in all; retransmitted with failover across the Map-Resolvers; only answers to our own nonces are
/// installed. It remembers which profiles resolved what, so that publications and SMRs reach them.
/// </summary>
internal sealed class Resolver(AgentIo io, MapCacheOwner cache, ProfileTable profiles, RlocProber prober)
{
    /// <summary>A Map-Request waiting for its answer: what to install it under, and where and when it went.</summary>
    private sealed class PendingRequest
    {
        public required ushort Profile;
        public required UInt128 SourceEid;
        public required byte[] Datagram;
        public required int Resolver;
        public required long SentMs;
        public required long CreatedMs;
        public required long CreatedTicks;
        public int Attempts = 1;
        /// <summary>The request set the N bit (RFC 9437): its answer starts the record's count of publication nonces.</summary>
        public bool Subscribed;
        /// <summary>When this request was last sent to each resolver of the set it was made with.</summary>
        public required long[] AskedMs;

        public long LastAskedMs(int resolver) => (uint)resolver < (uint)AskedMs.Length ? AskedMs[resolver] : long.MinValue / 2;

        public void Asked(int resolver, long nowMs)
        {
            if ((uint)resolver < (uint)AskedMs.Length) AskedMs[resolver] = nowMs;
        }
    }

    /// <summary>
    /// How long a Map-Request waits before it is sent again to the same resolver, and the last send's wait before it
    /// is given up: RFC 9301 §5.3's at most one Map-Request per destination per second. Another resolver is asked
    /// sooner, after the first one's <see cref="MapResolverSet.FailoverMs"/>.
    /// </summary>
    private const int RequestTimeoutMs = 1000;
    /// <summary>Sends of one Map-Request at most (the first and two retransmissions).</summary>
    private const int RequestAttempts = 3;

    private readonly ConcurrentDictionary<ulong, PendingRequest> _pendingRequests = new();
    private readonly Dictionary<(uint, ushort, UInt128), long> _lastRequest = [];
    private volatile RateLimiter _requestRate = new(io.Config.MapRequestRate, io.Config.MapRequestBurst, 16);
    // Replaced whole on reload; each use takes it once, and indexes into an older set are checked (MapResolverSet).
    private volatile MapResolverSet _resolvers = new(io.Config.MapResolvers);
    // What this ITR resolved, so that publications and SMRs reach the right profiles: prefix → profile → source EID.
    private readonly ConcurrentDictionary<(uint Iid, EidFamily Family, UInt128 Prefix, int Length), ConcurrentDictionary<ushort, UInt128>> _resolved = new();
    // RFC 9437 §5: per subscribed record, where the Map-Server's count of its publication nonces started (the nonce of
    // the subscribing Map-Request last answered: the Map-Server starts each subscription's count there, and a renewal
    // restarts it) and the nonce of the last publication taken; each must be above it.
    private readonly ConcurrentDictionary<(uint Iid, EidFamily Family, UInt128 Prefix, int Length), (ulong Start, ulong Last)> _publicationNonces = new();

    /// <summary>
    /// How far above the count's start a publication's nonce may be: a count that began at a random 64-bit nonce
    /// (an earlier subscription's) lands in this window once in 2^32, so a publication made before the last renewal
    /// is told from the current count's and dropped, and cannot move the count where the current ones are refused.
    /// </summary>
    private const ulong PublicationWindow = 1UL << 32;

    /// <summary>Where a publication's nonce stands against the last one taken for its record (RFC 9437 §5).</summary>
    public enum PublicationOrder { New, Repeated, Replayed, SubscriptionAck }

    /// <summary>
    /// A publication's nonce against the last taken for the record: above it (or none taken yet) it is new, equal it
    /// is a retransmission of one taken, below it a replay. Compared in serial-number arithmetic (RFC 1982): the
    /// count starts at a random 64-bit nonce and may wrap. The count's start itself is the Map-Server's
    /// acknowledgement of the subscription (RFC 9437's subscribe procedure), come after the Map-Reply that installed
    /// the record (or again): acknowledged, not applied.
    /// </summary>
    public PublicationOrder OrderOf(uint iid, EidFamily family, UInt128 prefix, int length, ulong nonce, out ulong last)
    {
        if (!_publicationNonces.TryGetValue((iid, family, prefix, length), out var count)) { last = 0; return PublicationOrder.New; }
        last = count.Last;
        if (nonce == count.Start) return PublicationOrder.SubscriptionAck;
        if (nonce - count.Start - 1 >= PublicationWindow - 1) return PublicationOrder.Replayed; // not of the current count
        long ahead = (long)(nonce - count.Last);
        return ahead > 0 ? PublicationOrder.New : ahead == 0 ? PublicationOrder.Repeated : PublicationOrder.Replayed;
    }

    /// <summary>A publication was taken: the next for its record must have a higher nonce.</summary>
    public void TookPublication(uint iid, EidFamily family, UInt128 prefix, int length, ulong nonce) =>
        // Without a subscribing answer seen (this agent restarted while the Map-Server kept publishing), the first
        // publication starts the count.
        _publicationNonces.AddOrUpdate((iid, family, prefix, length), (nonce - 1, nonce), (_, count) => (count.Start, nonce));

    /// <summary>A subscribing Map-Request was answered: the Map-Server counts this record's publications from its nonce.</summary>
    private void Subscribed(uint iid, EidFamily family, UInt128 prefix, int length, ulong nonce) =>
        _publicationNonces[(iid, family, prefix, length)] = (nonce, nonce);

    /// <summary>An ECM Map-Request to the Map-Resolver for one destination, at most one per destination and profile per second.</summary>
    /// <param name="onEvent">A re-resolution the mapping system asked for (a publication): not held to the rate
    /// limit, which is there against floods of data-driven requests.</param>
    public void Request(uint iid, ushort profile, EidFamily family, UInt128 source, UInt128 destination, bool smrInvoked, bool onEvent = false)
    {
        if (io.Config.MapResolvers.Count == 0) return;
        long now = Stopwatch.GetTimestamp();
        var key = (iid, profile, destination);
        lock (_lastRequest)
        {
            // RFC 9301 §5.3: at most one Map-Request per destination per second.
            if (!onEvent && _lastRequest.TryGetValue(key, out long last) && now - last < Stopwatch.Frequency) return;
            // And a bounded rate in all, so that a scan of random destinations does not become a flood at the
            // Map-Resolver (draft-wang-lisp-ai-agent-00 §7). Events the mapping system asked for are not held to it.
            if (!onEvent && !smrInvoked && !_requestRate.TryAcquire(0, now)) { io.Counters.Add(AgentCounter.MapRequestsRateLimited); return; }
            _lastRequest[key] = now;
        }
        var sourceEid = EidAddress.WithInstanceId(iid, family, source);
        if (profile != 0 && profiles.Constraints(profile) is AgentConstraints constraints) sourceEid = ContextEncoding.SourceEidWithConstraints(sourceEid, constraints);
        var request = new MapRequest { Nonce = AgentIo.NewNonce(), SourceEid = sourceEid, SmrInvoked = smrInvoked, XtrIdPresent = io.Config.Subscribe, XtrId = io.Config.XtrId, SiteId = io.Config.SiteId };
        var resolvers = _resolvers;
        long nowMs = AgentIo.NowMs;
        int resolver = resolvers.Pick(nowMs);
        io.AddItrRlocs(request.ItrRlocs, resolver >= 0 && resolver < resolvers.Count ? resolvers[resolver].AddressFamily : io.Config.RlocAddress!.AddressFamily);
        request.Records.Add(new MapRequestRecord(EidAddress.WithInstanceId(iid, family, destination), (byte)EidPrefix.MaxLength(family), io.Config.Subscribe));
        var ecm = new EncapsulatedControlMessage { InnerSourcePort = LispPorts.Control };
        if (family == EidFamily.Ipv4) ecm.SetInnerAddresses(Ipv4Header.ToAddress((uint)source), Ipv4Header.ToAddress((uint)destination));
        else ecm.SetInnerAddresses(Ipv6Header.ToAddress(source), Ipv6Header.ToAddress(destination));
        ecm.SetInnerMessage(request.ToArray());
        var pending = new PendingRequest { Profile = profile, SourceEid = source, Datagram = ecm.ToArray(), Resolver = resolver, SentMs = nowMs, CreatedMs = nowMs, CreatedTicks = Stopwatch.GetTimestamp(), AskedMs = new long[resolvers.Count], Subscribed = io.Config.Subscribe };
        pending.Asked(resolver, nowMs);
        _pendingRequests[request.Nonce] = pending;
        io.Counters.Add(smrInvoked ? AgentCounter.SmrInvokedRequestsSent : AgentCounter.MapRequestsSent);
        io.SendOrThrow(pending.Datagram, resolvers[resolver]);
    }

    /// <summary>
    /// An unanswered Map-Request is sent again (same nonce): to another Map-Resolver that is up once the one asked has
    /// taken longer than its failover timeout (its answer times, at most a second), to the same one after a second
    /// (never sooner: RFC 9301 §5.3). The one that let it go unanswered counts a timeout and is marked down after
    /// <see cref="MapResolverSet.TimeoutsToMarkDown"/> in a row. Every send waits a second before the request is given
    /// up. Retransmissions take tokens from the same rate limit as first sends, so a dead resolver never multiplies
    /// what the mapping system receives.
    /// </summary>
    public void RetransmitRequests()
    {
        long nowMs = AgentIo.NowMs;
        var resolvers = _resolvers;
        foreach (var (nonce, p) in _pendingRequests)
        {
            int next = -1;
            if (p.Attempts < RequestAttempts && resolvers.Count > 1)
            {
                next = resolvers.Pick(nowMs, avoid: p.Resolver);
                // Another resolver not asked this request in the last second: after the failover timeout.
                if (next == p.Resolver || nowMs - p.LastAskedMs(next) < RequestTimeoutMs || nowMs - p.SentMs < resolvers.FailoverMs(p.Resolver)) next = -1;
            }
            if (next < 0 && nowMs - p.SentMs < RequestTimeoutMs) continue;
            io.Counters.Add(AgentCounter.MapResolverTimeouts);
            if (resolvers.Count == 0)
            {
                // A reload took every Map-Resolver away.
                if (_pendingRequests.TryRemove(nonce, out _)) io.Counters.Add(AgentCounter.MapRequestsUnanswered);
                continue;
            }
            if (resolvers.OnTimeout(p.Resolver, nowMs))
            {
                io.Counters.Add(AgentCounter.MapResolversMarkedDown);
                AgentLog.ResolverDown(io.Log, resolvers[p.Resolver], MapResolverSet.TimeoutsToMarkDown, MapResolverSet.DownFor.TotalSeconds,
                    resolvers.Count > 1 ? "; asking the next one" : "");
            }
            if (p.Attempts >= RequestAttempts || !_requestRate.TryAcquire(0, Stopwatch.GetTimestamp()))
            {
                if (_pendingRequests.TryRemove(nonce, out _)) io.Counters.Add(AgentCounter.MapRequestsUnanswered);
                continue;
            }
            p.Resolver = next >= 0 ? next : resolvers.Pick(nowMs, avoid: p.Resolver);
            p.Attempts++;
            p.SentMs = nowMs;
            p.Asked(p.Resolver, nowMs);
            io.Counters.Add(AgentCounter.MapRequestRetransmissions);
            try { io.SendOrThrow(p.Datagram, resolvers[p.Resolver]); }
            catch (SocketException e) { AgentLog.MapRequestSendFailed(io.Log, resolvers[p.Resolver], e.Message); }
        }
    }

    /// <summary>
    /// A reload's Map-Resolvers and request rate: a changed resolver list starts afresh (requests in flight are
    /// retransmitted to the new list); a changed rate gets a new bucket. True when something changed.
    /// </summary>
    public bool Apply(AgentConfig fresh, AgentConfig running)
    {
        bool changed = false;
        if (!fresh.MapResolvers.SequenceEqual(running.MapResolvers))
        {
            _resolvers = new MapResolverSet(fresh.MapResolvers);
            foreach (var p in _pendingRequests.Values) { p.Resolver = 0; p.AskedMs = new long[fresh.MapResolvers.Count]; }
            changed = true;
        }
        if (fresh.MapRequestRate != running.MapRequestRate || fresh.MapRequestBurst != running.MapRequestBurst)
        {
            _requestRate = new RateLimiter(fresh.MapRequestRate, fresh.MapRequestBurst, 16);
            changed = true;
        }
        return changed;
    }

    /// <summary>The Map-Resolvers with their state, for the status API.</summary>
    public List<MapResolverSet.State> MapResolverStates() => _resolvers.Snapshot(AgentIo.NowMs);

    /// <summary>An answer to one of our Map-Requests (by nonce) is installed; any other is counted and dropped.</summary>
    public void OnMapReply(MapReply reply)
    {
        // Only answers to our own requests are installed: a Map-Reply with an unknown nonce is dropped (RFC 9301 §5.4).
        if (!_pendingRequests.TryRemove(reply.Nonce, out var pending)) { io.Counters.Add(AgentCounter.MapRepliesUnsolicited); return; }
        Answered(pending, reply.Nonce, reply.Records);
    }

    /// <summary>
    /// A Map-Notify whose nonce is that of one of our subscribing Map-Requests: RFC 9437 §4's acknowledgement of the
    /// subscription, which a Map-Server that follows it sends instead of a Map-Reply, with the record to install.
    /// False (nothing done) for any other nonce.
    /// </summary>
    public bool TryTakeSubscriptionAck(MapNotify notify)
    {
        if (!_pendingRequests.TryGetValue(notify.Nonce, out var pending) || !pending.Subscribed || !_pendingRequests.TryRemove(notify.Nonce, out _)) return false;
        Answered(pending, notify.Nonce, notify.Records);
        return true;
    }

    private void Answered(PendingRequest pending, ulong nonce, RecycledList<MappingRecord> records)
    {
        var elapsed = Stopwatch.GetElapsedTime(pending.CreatedTicks);
        _resolvers.OnAnswer(pending.Resolver, pending.Attempts == 1 ? elapsed.TotalMilliseconds : null);
        io.MapRequestAnswered?.Invoke(elapsed.TotalSeconds);
        foreach (var rec in records)
        {
            Install(rec, pending.Profile, pending.SourceEid, publication: false);
            // A subscribing request answered: the Map-Server counts this record's publications from its nonce on.
            if (pending.Subscribed && EidAddress.TryRead(rec.EidPrefix, out uint iid, out var family, out var prefix))
                Subscribed(iid, family, EidPrefix.Mask(prefix, family, rec.EidMaskLength), rec.EidMaskLength, nonce);
        }
    }


    /// <summary>Installs one answer record in the map-cache under the profile that asked, and remembers who resolved it.</summary>
    public void Install(MappingRecord rec, ushort profile, UInt128 sourceEid, bool publication)
    {
        if (!EidAddress.TryRead(rec.EidPrefix, out uint iid, out var family, out var prefix)) return;
        prefix = EidPrefix.Mask(prefix, family, rec.EidMaskLength);
        // Our own EIDs are never cached: this xTR delivers them itself.
        if (io.Database.Covering(iid, family, prefix) is DatabaseMapping own && own.Length <= rec.EidMaskLength) return;
        // Behind NAT everything goes through the RTRs (the default entries): a locator reached directly would see our
        // traffic come from the NAT's address, which no mapping lists.
        if (io.Rtrs.Count > 0) return;
        // An RTR keeps the bindings xTRs behind NAT told it (the Map-Server's answer for their prefixes is this RTR):
        // RtrBindings.InstallResolved below skips a bound prefix.
        var rtr = io.Rtr;
        var rlocs = new List<RlocSpec>();
        foreach (var l in rec.Locators)
        {
            var a = ContextEncoding.ReadLocator(l.Locator, out _, out _);
            if (rtr is not null && (a.Kind is LispAddressKind.Ipv4 or LispAddressKind.Ipv6) && io.Config.RlocAddresses.Contains(a.ToIPAddress()))
            {
                io.Counters.Add(AgentCounter.RtrOwnLocatorsSkipped);
                continue;
            }
            if (a.Kind == LispAddressKind.Ipv4) rlocs.Add(new RlocSpec(EidFamily.Ipv4, a.Ipv4Value, l.Priority, l.Weight, l.Reachable && !prober.IsDown(EidFamily.Ipv4, a.Ipv4Value)));
            else if (a.Kind == LispAddressKind.Ipv6) rlocs.Add(new RlocSpec(EidFamily.Ipv6, a.Ipv6Value, l.Priority, l.Weight, l.Reachable && !prober.IsDown(EidFamily.Ipv6, a.Ipv6Value)));
            if (rlocs.Count == MapCacheEntry.MaxRlocs) break;
        }
        var action = rec.IsNegative ? rec.Action : MapReplyAction.NoAction;
        uint ttl = rec.TtlMinutes == 0 ? 1 : rec.TtlMinutes;
        // An RTR left with none (the prefix is behind NAT at this RTR, and its binding not told yet, or expired): a
        // negative entry for a minute, so that its packets are counted drops and not a Map-Request a second.
        if (rtr is not null && rlocs.Count == 0 && !rec.IsNegative) ttl = 1;
        var spec = new MapCacheEntrySpec(iid, profile, family, prefix, rec.EidMaskLength, rlocs, action, ttl, rec.MapVersion);
        if (rtr is null) cache.Upsert(spec);
        else if (!rtr.InstallResolved(spec)) return;
        if (!publication || profile != 0 || _resolved.ContainsKey((iid, family, prefix, rec.EidMaskLength)))
            _resolved.GetOrAdd((iid, family, prefix, rec.EidMaskLength), _ => new()).AddOrUpdate(profile, sourceEid, (_, _) => sourceEid);
        io.Counters.Add(rec.IsNegative ? AgentCounter.NegativeRepliesInstalled : AgentCounter.MapRepliesInstalled);
    }

    /// <summary>A resolution the map-cache no longer holds is not followed any more (publications, SMRs).</summary>
    public void Forget(MapCacheEntry gone)
    {
        var key = (gone.InstanceId, gone.Family, gone.Prefix, (int)gone.PrefixLength);
        if (_resolved.TryGetValue(key, out var profiles) && profiles.TryRemove(gone.Profile, out _) && profiles.IsEmpty)
        {
            _resolved.TryRemove(key, out _);
            _publicationNonces.TryRemove(key, out _);
        }
    }

    /// <summary>The profiles (with the source EID each asked for) that resolved exactly this prefix.</summary>
    public ConcurrentDictionary<ushort, UInt128>? ResolvedBy(uint iid, EidFamily family, UInt128 prefix, int length) =>
        _resolved.TryGetValue((iid, family, prefix, length), out var p) && !p.IsEmpty ? p : null;

    /// <summary>Every (prefix length, profile, source EID) this ITR resolved that covers <paramref name="eid"/>.</summary>
    public IEnumerable<(ushort Profile, UInt128 Source)> ResolvedCovering(uint iid, EidFamily family, UInt128 eid)
    {
        foreach (var (key, byProfile) in _resolved)
        {
            if (key.Iid != iid || key.Family != family || EidPrefix.Mask(eid, family, key.Length) != key.Prefix) continue;
            foreach (var (profile, source) in byProfile) yield return (profile, source);
        }
    }

    /// <summary>Every resolution leaves the map-cache (an xTR that found itself behind NAT sends through its RTRs from now on).</summary>
    public void DropResolved()
    {
        var all = _resolved.ToArray();
        _resolved.Clear();
        _publicationNonces.Clear();
        cache.Write(w =>
        {
            foreach (var (k, byProfile) in all)
                foreach (var profile in byProfile.Keys) w.Remove(k.Iid, profile, k.Family, k.Prefix, k.Length);
        });
    }

    /// <summary>A prefix that became this xTR's own (an agent attached here) is not followed as a resolution any more.</summary>
    public void StopFollowing(uint iid, EidFamily family, UInt128 prefix, int length)
    {
        _resolved.TryRemove((iid, family, prefix, length), out _);
        _publicationNonces.TryRemove((iid, family, prefix, length), out _);
    }

    /// <summary>Drops requests that will never be answered and forgets old per-destination send times.</summary>
    public void Prune(long nowTicks)
    {
        long nowMs = AgentIo.NowMs;
        foreach (var (nonce, p) in _pendingRequests)
            if (nowMs - p.CreatedMs > 10_000) _pendingRequests.TryRemove(nonce, out _);
        lock (_lastRequest)
            foreach (var key in _lastRequest.Where(kv => nowTicks - kv.Value > 10 * Stopwatch.Frequency).Select(kv => kv.Key).ToList())
                _lastRequest.Remove(key);
    }
}
