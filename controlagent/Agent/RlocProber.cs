using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using FastXtr.Lisp.Messages;
using FastXtr.SharedMemory.MapCache;

namespace FastXtr.Agent;

/// <summary>
/// RLOC probing (RFC 9301 §6.3.2): every interval, one Map-Request with the P bit to each locator the map-cache
/// uses (not our own, nor one across a NAT: <see cref="RlocSlot.FlagNatTraversed"/>); a locator that leaves <see cref="AgentConfig.RlocProbeMisses"/> probes in a row unanswered is
/// marked down in every entry, and up again on its next answer. Locators of both families are probed, each from this
/// xTR's RLOC of its family; one of a family this xTR has no RLOC of is not (it could not be used either).
/// </summary>
internal sealed class RlocProber(AgentIo io, MapCacheOwner cache)
{
    private readonly ConcurrentDictionary<ulong, Locator> _outstanding = new();
    private readonly ConcurrentDictionary<Locator, int> _misses = new();
    private readonly ConcurrentDictionary<Locator, bool> _down = new();
    private readonly MapCacheEntry[] _chunk = new MapCacheEntry[256]; // the probing round's walk of the map-cache (one round at a time)

    public bool IsDown(EidFamily family, UInt128 rloc) => _down.ContainsKey(new Locator(family, rloc));

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
            if (missed >= io.Config.RlocProbeMisses && _down.TryAdd(rloc, true))
            {
                // The map-cache first, then the count and the log line: whoever sees the count sees the state.
                cache.SetRlocState(rloc.Family, rloc.Address, up: false);
                io.Counters.Add(AgentCounter.LocatorsMarkedDown);
                AgentLog.LocatorDown(io.Log, rloc.ToIPAddress(), missed);
            }
        }
        var own = io.Config.RlocAddresses.Select(Locator.Of).ToHashSet();
        bool v4 = own.Any(o => o.Family == EidFamily.Ipv4), v6 = own.Any(o => o.Family == EidFamily.Ipv6);
        var targets = new Dictionary<Locator, MapCacheEntry>();
        var entries = cache.Region.MapCache;
        for (int next = 0, n; (n = entries.ReadUsed(ref next, _chunk)) > 0;)
            foreach (var e in _chunk.AsSpan(0, n))
            {
                if (e.Kind != MapCacheKind.Destination) continue;
                for (int i = 0; i < e.RlocCount; i++)
                {
                    // A locator across a NAT is not probed: its control port is not reachable through the binding.
                    if (e.Rlocs[i].NatTraversed) continue;
                    var l = new Locator(e.Rlocs[i].Family, e.Rlocs[i].Address);
                    if ((l.Family == EidFamily.Ipv4 ? v4 : v6) && !own.Contains(l)) targets.TryAdd(l, e);
                }
            }
        foreach (var (rloc, entry) in targets)
        {
            var to = rloc.ToIPAddress();
            var probe = new MapRequest { Nonce = AgentIo.NewNonce(), Probe = true, SourceEid = LispAddress.None() };
            io.AddItrRlocs(probe.ItrRlocs, to.AddressFamily);
            probe.Records.Add(new MapRequestRecord(EidAddress.WithInstanceId(entry.InstanceId, entry.Family, entry.Prefix), entry.PrefixLength));
            _outstanding[probe.Nonce] = rloc;
            io.Counters.Add(AgentCounter.RlocProbesSent);
            io.Send(probe.ToArray(), new IPEndPoint(to, LispPorts.Control));
        }
        foreach (var gone in _misses.Keys.Where(r => !targets.ContainsKey(r)).ToList())
        {
            _misses.TryRemove(gone, out _);
            _down.TryRemove(gone, out _);
        }
    }

    public bool OnReply(ulong nonce)
    {
        if (!_outstanding.TryRemove(nonce, out var rloc)) return false;
        io.Counters.Add(AgentCounter.RlocProbeRepliesReceived);
        _misses[rloc] = 0;
        if (_down.TryRemove(rloc, out _))
        {
            cache.SetRlocState(rloc.Family, rloc.Address, up: true);
            io.Counters.Add(AgentCounter.LocatorsMarkedUp);
            AgentLog.LocatorUp(io.Log, rloc.ToIPAddress());
        }
        return true;
    }
}

/// <summary>A locator as the map-cache holds it: its family and its address as a host-order number.</summary>
internal readonly record struct Locator(EidFamily Family, UInt128 Address)
{
    public static Locator Of(IPAddress a) => a.AddressFamily == AddressFamily.InterNetwork
        ? new(EidFamily.Ipv4, Ipv4Header.ToUInt32(a))
        : new(EidFamily.Ipv6, Ipv6Header.ToUInt128(a));

    public IPAddress ToIPAddress() => EidPrefix.ToAddress(Family, Address);
}
