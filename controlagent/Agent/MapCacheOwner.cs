using FastXtr.SharedMemory;
using FastXtr.SharedMemory.MapCache;

namespace FastXtr.Agent;

/// <summary>
/// The map-cache's single writer: every write the agent makes (resolutions, source profiles, moved-away entries,
/// locator states, expiry) goes through here under one lock, and when the data plane restarts on a fresh region this
/// follows it and refills it.
/// </summary>
internal sealed class MapCacheOwner : IDisposable
{
    /// <summary>The region and its writer, swapped together when the data plane starts on a fresh region.</summary>
    private sealed record RegionView(SharedRegion Region, MapCacheWriter Writer);

    private readonly AgentIo _io;
    private readonly SharedRegion _given;
    private readonly List<(SharedRegion Region, long RetiredMs)> _retired = [];
    private readonly object _writeLock = new();
    private volatile RegionView _view;
    private string? _regionProblem;

    public MapCacheOwner(AgentIo io, SharedRegion region)
    {
        _io = io;
        _given = region;
        _view = new RegionView(region, region.CreateWriter());
        if (_view.Writer.Repair.Any) AgentLog.WriterRepaired(io.Log, _view.Writer.Repair.ToString());
        region.Header.AgentPid = Environment.ProcessId;
    }

    /// <summary>The region the data plane uses now (readers walk its map-cache and miss rings).</summary>
    public SharedRegion Region => _view.Region;

    /// <summary>Installs or replaces an entry; a full map-cache is counted and logged.</summary>
    public void Upsert(MapCacheEntrySpec spec)
    {
        lock (_writeLock) UpsertLocked(spec);
    }

    /// <summary>Several changes that belong together, under the write lock.</summary>
    public void Write(Action<MapCacheWriter> change)
    {
        lock (_writeLock) change(_view.Writer);
    }

    private void UpsertLocked(MapCacheEntrySpec spec)
    {
        var r = _view.Writer.Upsert(spec);
        if (r is MapCacheWriteResult.Full or MapCacheWriteResult.IidTableFull)
        {
            _io.Counters.Add(AgentCounter.MapCacheFull);
            AgentLog.MapCacheFull(_io.Log, r.ToString(), $"[{spec.InstanceId}]{EidPrefix.Format(spec.Family, spec.Prefix)}/{spec.PrefixLength}");
        }
    }

    /// <summary>Removes expired entries; <paramref name="forget"/> hears of each.</summary>
    public void RemoveExpired(long now, Action<MapCacheEntry> forget)
    {
        lock (_writeLock) _view.Writer.RemoveExpired(now, forget);
    }

    /// <summary>Marks a locator up or down in every entry that lists it.</summary>
    public void SetRlocState(EidFamily family, UInt128 rloc, bool up)
    {
        var chunk = new MapCacheEntry[256]; // its own: a probing round and a probe answer may run at once
        lock (_writeLock)
        {
            var cache = _view.Region.MapCache;
            for (int next = 0, n; (n = cache.ReadUsed(ref next, chunk)) > 0;)
                foreach (var e in chunk.AsSpan(0, n))
                    for (int i = 0; i < e.RlocCount; i++)
                        if (e.Rlocs[i].Family == family && e.Rlocs[i].Address == rloc)
                            _view.Writer.SetRlocState(e.InstanceId, e.Profile, e.Family, e.Prefix, e.PrefixLength, rloc, up);
        }
    }

    /// <summary>
    /// A data plane restarted on a fresh region (its file removed, or made for other sizes) replaced the file this agent
    /// maps: the agent attaches to the new one and refills it from the old mapping, which still holds every entry it
    /// wrote (resolutions with their expiry and locator states, source-profile and moved-away entries). The old mapping
    /// is released some seconds later, when no thread can still be reading it.
    /// </summary>
    public void FollowReplacedRegion()
    {
        long nowMs = AgentIo.NowMs;
        foreach (var r in _retired.Where(r => nowMs - r.RetiredMs > 10_000).ToList())
        {
            _retired.Remove(r);
            if (!ReferenceEquals(r.Region, _given)) r.Region.Dispose();
        }
        var old = _view;
        if (old.Region.Path is null || old.Region.IsCurrent) return;
        SharedRegion fresh;
        try { fresh = SharedRegion.Attach(_io.Config.SharedMemoryName); }
        catch (Exception e) when (e is SharedRegionException or NativeInterop.NativeException)
        {
            // Gone, or being created right now: reported once per cause, tried again every second.
            if (_regionProblem != e.Message) AgentLog.RegionGone(_io.Log, old.Region.Path, e.Message);
            _regionProblem = e.Message;
            return;
        }
        MapCacheWriter writer;
        try { writer = fresh.CreateWriter(); }
        catch (SharedRegionException e)
        {
            fresh.Dispose();
            if (_regionProblem != e.Message) AgentLog.RegionNotWritable(_io.Log, old.Region.Path, e.Message);
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
        _io.Counters.Add(AgentCounter.RegionsFollowed);
        _io.Counters.Add(AgentCounter.EntriesRestored, restored);
        if (failed > 0) _io.Counters.Add(AgentCounter.MapCacheFull, failed);
        AgentLog.RegionFollowed(_io.Log, fresh.Path, restored, failed > 0 ? $", {failed} did not fit (map-cache full)" : "");
    }

    public void Dispose()
    {
        if (Region.Header.AgentPid == Environment.ProcessId) Region.Header.AgentPid = 0;
        lock (_writeLock) _view.Writer.Dispose();
        // The region given at construction belongs to the caller; the ones followed since belong to the agent.
        foreach (var r in _retired.Select(r => r.Region).Append(Region))
            if (!ReferenceEquals(r, _given)) r.Dispose();
        _retired.Clear();
    }
}
