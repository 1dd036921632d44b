using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using FastXtr.Lisp.Messages;
using FastXtr.SharedMemory.MapCache;

namespace FastXtr.Agent;

/// <summary>
/// RLOC probing (RFC 9301 §6.3.2): every interval, one Map-Request with the P bit to each locator the map-cache
/// uses (not our own); a locator that leaves <see cref="AgentConfig.RlocProbeMisses"/> probes in a row unanswered is
/// marked down in every entry, and up again on its next answer.
/// </summary>
internal sealed class RlocProber(AgentIo io, MapCacheOwner cache)
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
            if (missed >= io.Config.RlocProbeMisses && _down.TryAdd(rloc, true))
            {
                // The map-cache first, then the count and the log line: whoever sees the count sees the state.
                cache.SetRlocState(rloc, up: false);
                io.Counters.Add(AgentCounter.LocatorsMarkedDown);
                AgentLog.LocatorDown(io.Log, Ipv4Header.ToAddress(rloc), missed);
            }
        }
        uint own = io.Config.RlocAddress!.AddressFamily == AddressFamily.InterNetwork ? Ipv4Header.ToUInt32(io.Config.RlocAddress) : 0;
        var targets = new Dictionary<uint, MapCacheEntry>();
        var entries = cache.Region.MapCache;
        for (int next = 0, n; (n = entries.ReadUsed(ref next, _chunk)) > 0;)
            foreach (var e in _chunk.AsSpan(0, n))
            {
                if (e.Kind != MapCacheKind.Destination) continue;
                for (int i = 0; i < e.RlocCount; i++)
                    if (e.Rlocs[i].Family == EidFamily.Ipv4 && (uint)e.Rlocs[i].Address != own) targets.TryAdd((uint)e.Rlocs[i].Address, e);
            }
        foreach (var (rloc, entry) in targets)
        {
            var probe = new MapRequest { Nonce = AgentIo.NewNonce(), Probe = true, SourceEid = LispAddress.None() };
            probe.ItrRlocs.Add(LispAddress.FromIp(io.Config.RlocAddress!));
            probe.Records.Add(new MapRequestRecord(EidAddress.WithInstanceId(entry.InstanceId, entry.Family, entry.Prefix), entry.PrefixLength));
            _outstanding[probe.Nonce] = rloc;
            io.Counters.Add(AgentCounter.RlocProbesSent);
            io.Send(probe.ToArray(), new IPEndPoint(Ipv4Header.ToAddress(rloc), LispPorts.Control));
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
        io.Counters.Add(AgentCounter.RlocProbeRepliesReceived);
        _misses[rloc] = 0;
        if (_down.TryRemove(rloc, out _))
        {
            cache.SetRlocState(rloc, up: true);
            io.Counters.Add(AgentCounter.LocatorsMarkedUp);
            AgentLog.LocatorUp(io.Log, Ipv4Header.ToAddress(rloc));
        }
        return true;
    }
}
