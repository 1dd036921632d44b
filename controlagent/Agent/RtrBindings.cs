using System.Diagnostics;
using System.Net;
using FastXtr.Common;
using FastXtr.Lisp.Messages;
using FastXtr.SharedMemory.MapCache;

namespace FastXtr.Agent;

/// <summary>One xTR behind NAT as an RTR knows it: an EID prefix and the translated address and port its data goes to.</summary>
public sealed record NatBinding(uint InstanceId, EidFamily Family, UInt128 Prefix, int Length, IPAddress Translated, ushort Port, DateTimeOffset Since, DateTimeOffset Refreshed)
{
    public string PrefixText => $"[{InstanceId}]{EidPrefix.Format(Family, Prefix)}/{Length}";
}

/// <summary>
/// fastxtr rtr: what the RTR learns of xTRs behind NAT (draft-ietf-lisp-nat-traversal §6; registering the RTR's RLOC
/// at the Map-Server and telling the RTR the binding with a request to its data port is the way lispers.net does it,
/// draft-farinacci-lisp-lispers-net-nat). An xTR behind NAT sends, from its data port to ours, an Info-Request per EID
/// prefix, signed with its site's key: the NAT translates its source, so the outer source address and port are where
/// that xTR's data must go. A binding is learnt only from a request that (1) names a prefix inside a configured
/// nat-site, (2) verifies with that site's key, and (3) carries a nonce above the last one taken for the prefix (the
/// xTR's nonces rise with its clock), so that a captured request replayed from elsewhere redirects nothing. The
/// binding goes into the map-cache as the prefix's one locator, marked NAT-traversed (sent from our data port, not
/// probed); it is refreshed by each request, removed by one with TTL 0 (the prefix left that xTR) and expires
/// <see cref="AgentConfig.NatBindingTimeout"/> after the last. Replies the RTR's own Map-Requests get for such a
/// prefix (the Map-Server hands out the RTR, which the xTR registered) never replace it: see <see cref="InstallResolved"/>.
/// Runs on the agent's loop thread; the status API reads <see cref="All"/>.
/// </summary>
internal sealed class RtrBindings(AgentIo io, MapCacheOwner cache)
{
    private sealed class State
    {
        public required NatBinding Binding;
        public ulong LastNonce;
        public long ExpiresMs;
    }

    private readonly Dictionary<(uint, EidFamily, UInt128, int), State> _states = [];
    private readonly InfoMessage _request = new();
    // A flood of Info-Requests from one source is held to the rate a Map-Server allows Map-Requests.
    private readonly RateLimiter _rate = new(100, 200, 4096);
    // Refusals are what a hostile sender causes at packet rate: one line per reason a second.
    private readonly FastXtr.Common.Logging.RateLimitedLogger _peerLog = new(io.Log);
    private volatile IReadOnlyList<NatBinding> _snapshot = [];

    /// <summary>The bindings in force, for the status API.</summary>
    public IReadOnlyList<NatBinding> All => _snapshot;

    /// <summary>
    /// Installs what the RTR resolved, unless a binding holds that prefix: checked and written under the bindings'
    /// lock, so that a binding learnt while the Map-Reply was on its way is never overwritten by it. False when skipped.
    /// </summary>
    public bool InstallResolved(MapCacheEntrySpec spec)
    {
        lock (_states)
        {
            if (_states.ContainsKey((spec.InstanceId, spec.Family, spec.Prefix, spec.PrefixLength))) return false;
            cache.Upsert(spec);
            return true;
        }
    }

    /// <summary>An Info-Request that arrived on the data port from <paramref name="source"/>:<paramref name="sourcePort"/>.</summary>
    public void OnInfoRequest(ReadOnlySpan<byte> message, IPAddress source, ushort sourcePort)
    {
        if (!_rate.TryAcquire(FastXtr.Packets.MappedIpv4.FromAddress(source), Stopwatch.GetTimestamp())) { io.Counters.Add(AgentCounter.RtrInfoRequestsRateLimited); return; }
        if (!_request.TryDecode(message).Ok || _request.IsReply
            || !EidAddress.TryRead(_request.EidPrefix, out uint iid, out var family, out var eid) || _request.EidMaskLength > EidPrefix.MaxLength(family))
        {
            io.Counters.Add(AgentCounter.RtrInfoRequestsMalformed);
            return;
        }
        int length = _request.EidMaskLength;
        var prefix = EidPrefix.Mask(eid, family, length);
        var site = io.Config.NatSites.Find(n => n.Prefix.Covers(iid, family, prefix, length));
        if (site.Key is null)
        {
            io.Counters.Add(AgentCounter.RtrInfoRequestsNoSite);
            _peerLog.Warning("rtr-no-site", $"RTR: Info-Request from {new IPEndPoint(source, sourcePort)} for [{iid}]{EidPrefix.Format(family, prefix)}/{length} refused: no nat-site covers it");
            return;
        }
        if (MessageAuthentication.Verify(message, site.Key, out var algorithm) != AuthenticationFailure.None || algorithm != site.Key.Algorithm)
        {
            io.Counters.Add(AgentCounter.RtrInfoRequestsAuthenticationFailed);
            _peerLog.Warning("rtr-auth", $"RTR: Info-Request from {new IPEndPoint(source, sourcePort)} for [{iid}]{EidPrefix.Format(family, prefix)}/{length} refused: authentication failed");
            return;
        }
        var key = (iid, family, prefix, length);
        long now = AgentIo.NowMs;
        lock (_states)
        {
            _states.TryGetValue(key, out var state);
            if (state is not null && _request.Nonce <= state.LastNonce)
            {
                io.Counters.Add(AgentCounter.RtrInfoRequestsReplayed);
                return;
            }
            io.Counters.Add(AgentCounter.RtrInfoRequestsTaken);
            if (_request.TtlMinutes == 0)
            {
                if (state is null) return;
                _states.Remove(key);
                cache.Write(w => w.Remove(iid, 0, family, prefix, length));
                io.Counters.Add(AgentCounter.RtrBindingsWithdrawn);
                AgentLog.RtrBindingGone(io.Log, state.Binding.PrefixText, "withdrawn by its xTR");
                Publish();
                return;
            }
            var at = DateTimeOffset.UtcNow;
            bool moved = state is null || !state.Binding.Translated.Equals(source) || state.Binding.Port != sourcePort;
            var binding = moved
                ? new NatBinding(iid, family, prefix, length, source, sourcePort, at, at)
                : state!.Binding with { Refreshed = at };
            _states[key] = new State { Binding = binding, LastNonce = _request.Nonce, ExpiresMs = now + (long)io.Config.NatBindingTimeout.TotalMilliseconds };
            // The translated address is the locator, reached at the translated port from our data port. Written on
            // every request, not only on a change: the entry is then back within a keep-alive whatever removed it
            // (a data plane restarted on a fresh region).
            var locator = RlocSpec.Of(source, 1, 100, sourcePort, natTraversed: true);
            cache.Upsert(new MapCacheEntrySpec(iid, 0, family, prefix, length, [locator], TtlMinutes: uint.MaxValue));
            if (!moved) return;
            io.Counters.Add(AgentCounter.RtrBindingsLearned);
            AgentLog.RtrBindingLearned(io.Log, binding.PrefixText, new IPEndPoint(source, sourcePort));
            Publish();
        }
    }

    /// <summary>Bindings not refreshed within the timeout leave the map-cache (called every second).</summary>
    public void Expire()
    {
        long now = AgentIo.NowMs;
        lock (_states)
        {
            var gone = _states.Where(s => s.Value.ExpiresMs <= now).ToList();
            foreach (var (key, state) in gone)
            {
                _states.Remove(key);
                var (iid, family, prefix, length) = key;
                cache.Write(w => w.Remove(iid, 0, family, prefix, length));
                io.Counters.Add(AgentCounter.RtrBindingsExpired);
                AgentLog.RtrBindingGone(io.Log, state.Binding.PrefixText, $"no Info-Request for {io.Config.NatBindingTimeout.TotalSeconds:0} s");
            }
            if (gone.Count > 0) Publish();
        }
    }

    private void Publish() => _snapshot = _states.Values.Select(s => s.Binding).OrderBy(b => b.PrefixText, StringComparer.Ordinal).ToList();

}
