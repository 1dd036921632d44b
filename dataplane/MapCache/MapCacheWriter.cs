using FastXtr.Dataplane.Headers;
using System.Threading;

namespace FastXtr.Dataplane.MapCache;

/// <summary>A locator to install: address (host-order, IPv4 in the low 32 bits), priority, weight, reachability.</summary>
public readonly record struct RlocSpec(EidFamily Family, UInt128 Address, byte Priority, byte Weight, bool Up = true);

/// <summary>What to install for one (IID, profile, EID prefix).</summary>
public sealed record MapCacheEntrySpec(
    uint InstanceId, ushort Profile, EidFamily Family, UInt128 Prefix, int PrefixLength,
    IReadOnlyList<RlocSpec> Rlocs, MapReplyAction Action = MapReplyAction.NoAction, uint TtlMinutes = 1440, ushort MapVersion = 0,
    ushort AssignedProfile = 0);

public enum MapCacheWriteResult
{
    Inserted,
    Updated,
    Removed,
    NotFound,
    Full,
    IidTableFull,
}

/// <summary>
/// The single writer of a map-cache (the control agent's side of the shared-memory contract). Not thread-safe:
/// one writer per region, by contract. Updates in place under the entry's sequence counter, so an entry that
/// changes (new RLOCs, a locator marked down) never disappears for a reader in between.
/// </summary>
public sealed unsafe class MapCacheWriter
{
    private readonly MapCacheTables _t;
    private readonly Stack<int> _free = new();
    private readonly Action? _changed;

    /// <param name="changed">Called after every change (the region bumps its generation there).</param>
    public MapCacheWriter(MapCacheTables tables, Action? changed = null)
    {
        _t = tables;
        _changed = changed;
        // Rebuild the free list from the entries themselves: a restarted agent picks up where the last one left.
        for (int i = tables.EntryCapacity - 1; i >= 0; i--)
            if (tables.Entries[i].State != MapCacheEntry.StateUsed) _free.Push(i);
        Count = tables.EntryCapacity - _free.Count;
    }

    public int Count { get; private set; }

    public MapCacheWriteResult Upsert(MapCacheEntrySpec spec, long nowTimestamp = 0)
    {
        long expires = spec.TtlMinutes == uint.MaxValue ? 0
            : (nowTimestamp == 0 ? MapCacheTables.Now : nowTimestamp) + (long)spec.TtlMinutes * 60 * System.Diagnostics.Stopwatch.Frequency;
        return UpsertAt(spec, expires);
    }

    /// <summary>
    /// Writes a copy of an entry read from another map-cache (a region that was replaced), keeping its expiry, its
    /// locators' up/down states and its map-version: what a restarted data plane's fresh region is refilled with.
    /// </summary>
    public MapCacheWriteResult Restore(in MapCacheEntry entry)
    {
        var rlocs = new RlocSpec[entry.RlocCount];
        for (int i = 0; i < rlocs.Length; i++)
        {
            RlocSlot r = entry.Rlocs[i];
            rlocs[i] = new RlocSpec(r.Family, r.Address, r.Priority, r.Weight, r.State == RlocSlot.StateUp);
        }
        var spec = new MapCacheEntrySpec(entry.InstanceId, entry.Profile, entry.Family, entry.Prefix, entry.PrefixLength, rlocs,
            entry.Action, entry.TtlMinutes, entry.MapVersion, (ushort)entry.AssignedProfile);
        return UpsertAt(spec, entry.ExpiresAt);
    }

    private MapCacheWriteResult UpsertAt(MapCacheEntrySpec spec, long expires)
    {
        Validate(spec);
        UInt128 prefix = MapCacheMath.Mask(spec.Prefix, spec.Family, spec.PrefixLength);

        if (FindSlot(spec.InstanceId, spec.Profile, spec.Family, spec.PrefixLength, prefix, out uint slotIndex, out uint insertAt))
        {
            MapCacheEntry* existing = _t.Entries + (_t.Index[slotIndex] - 1);
            Write(existing, spec, prefix, expires);
            _changed?.Invoke();
            return MapCacheWriteResult.Updated;
        }
        if (_free.Count == 0 || insertAt == uint.MaxValue) return MapCacheWriteResult.Full;
        IidSlot* iid = FindOrAddIid(spec.InstanceId);
        if (iid == null) return MapCacheWriteResult.IidTableFull;

        // 1. The prefix length becomes visible first: a reader probing it before the entry exists just misses.
        SetLengthBit(iid, spec.Family, spec.PrefixLength);
        // 2. The entry is written completely while no index slot points to it.
        int entry = _free.Pop();
        Write(_t.Entries + entry, spec, prefix, expires);
        // 3. Publishing the index slot (release) makes the entry reachable.
        Volatile.Write(ref _t.Index[insertAt], (uint)entry + 1);
        AdjustSpecialCount(iid, spec.Profile, +1);
        Count++;
        _changed?.Invoke();
        return MapCacheWriteResult.Inserted;
    }

    public MapCacheWriteResult Remove(uint instanceId, ushort profile, EidFamily family, UInt128 prefix, int prefixLength)
    {
        prefix = MapCacheMath.Mask(prefix, family, prefixLength);
        if (!FindSlot(instanceId, profile, family, prefixLength, prefix, out uint slotIndex, out _)) return MapCacheWriteResult.NotFound;
        uint entry = _t.Index[slotIndex] - 1;
        // Unlink first, then retire the entry under its counter; a reader holding the old slot number sees the
        // entry change state and rejects it.
        Volatile.Write(ref _t.Index[slotIndex], MapCacheMath.IndexTombstone);
        MapCacheEntry* e = _t.Entries + entry;
        BeginWrite(e);
        e->State = MapCacheEntry.StateFree;
        EndWrite(e);
        _free.Push((int)entry);
        AdjustSpecialCount(_t.FindIid(instanceId), profile, -1);
        Count--;
        _changed?.Invoke();
        return MapCacheWriteResult.Removed;
    }

    /// <summary>Marks one locator of an entry up or down (RLOC probing), in place.</summary>
    public MapCacheWriteResult SetRlocState(uint instanceId, ushort profile, EidFamily family, UInt128 prefix, int prefixLength, UInt128 rloc, bool up)
    {
        prefix = MapCacheMath.Mask(prefix, family, prefixLength);
        if (!FindSlot(instanceId, profile, family, prefixLength, prefix, out uint slotIndex, out _)) return MapCacheWriteResult.NotFound;
        MapCacheEntry* e = _t.Entries + (_t.Index[slotIndex] - 1);
        bool found = false;
        for (int i = 0; i < e->RlocCount; i++)
            found |= e->Rlocs[i].Address == rloc;
        if (!found) return MapCacheWriteResult.NotFound;
        BeginWrite(e);
        for (int i = 0; i < e->RlocCount; i++)
            if (e->Rlocs[i].Address == rloc) e->Rlocs[i].State = up ? RlocSlot.StateUp : RlocSlot.StateDown;
        EndWrite(e);
        _changed?.Invoke();
        return MapCacheWriteResult.Updated;
    }

    /// <summary>Removes every entry whose expiry has passed; returns how many, each also given to <paramref name="removed"/>.</summary>
    public int RemoveExpired(long nowTimestamp, Action<MapCacheEntry>? removed = null)
    {
        int count = 0;
        for (int i = 0; i < _t.EntryCapacity; i++)
        {
            MapCacheEntry* e = _t.Entries + i;
            if (e->State != MapCacheEntry.StateUsed || e->ExpiresAt == 0 || e->ExpiresAt > nowTimestamp) continue;
            MapCacheEntry gone = *e; // the writer's own entry: no reader races with this copy's meaning
            if (Remove(gone.InstanceId, gone.Profile, gone.Family, gone.Prefix, gone.PrefixLength) != MapCacheWriteResult.Removed) continue;
            count++;
            removed?.Invoke(gone);
        }
        return count;
    }

    /// <summary>Keeps the IID's counts of source-profile and moved-away entries, which let readers skip those lookups.</summary>
    private void AdjustSpecialCount(IidSlot* iid, ushort profile, int delta)
    {
        if (iid == null) return;
        if (profile == MapCacheEntry.SourceProfileKey) Volatile.Write(ref iid->SourceProfileEntries, (uint)Math.Max(0, iid->SourceProfileEntries + delta));
        else if (profile == MapCacheEntry.SolicitKey)
        {
            // The IID's count rises before the region's and falls after it, so a reader that passes the region's
            // gate always finds the IID's.
            if (delta > 0) Volatile.Write(ref iid->SolicitEntries, iid->SolicitEntries + 1);
            Volatile.Write(ref *_t.MovedAwayTotal, (uint)Math.Max(0, *_t.MovedAwayTotal + delta));
            if (delta < 0) Volatile.Write(ref iid->SolicitEntries, (uint)Math.Max(0, iid->SolicitEntries - 1));
        }
    }

    private static void Validate(MapCacheEntrySpec spec)
    {
        int max = MapCacheMath.MaxPrefixLength(spec.Family);
        if (spec.Family is not (EidFamily.Ipv4 or EidFamily.Ipv6)) throw new ArgumentException($"unknown family {spec.Family}", nameof(spec));
        if (spec.PrefixLength < 0 || spec.PrefixLength > max) throw new ArgumentOutOfRangeException(nameof(spec), $"prefix length {spec.PrefixLength} outside 0..{max}");
        if (spec.Rlocs.Count > MapCacheEntry.MaxRlocs) throw new ArgumentOutOfRangeException(nameof(spec), $"at most {MapCacheEntry.MaxRlocs} RLOCs per entry, not {spec.Rlocs.Count}");
        if (spec.Family == EidFamily.Ipv4 && spec.Prefix > uint.MaxValue) throw new ArgumentOutOfRangeException(nameof(spec), "an IPv4 prefix has 32 bits");
        foreach (var r in spec.Rlocs)
            if (r.Family == EidFamily.Ipv4 && r.Address > uint.MaxValue) throw new ArgumentOutOfRangeException(nameof(spec), "an IPv4 RLOC has 32 bits");
    }

    private static void BeginWrite(MapCacheEntry* e) =>
        // Full fence: the counter turns odd before any field changes.
        Interlocked.Increment(ref e->Seq);

    private static void EndWrite(MapCacheEntry* e) =>
        // Full fence: every field change is visible before the counter turns even again.
        Interlocked.Increment(ref e->Seq);

    private static void Write(MapCacheEntry* e, MapCacheEntrySpec spec, UInt128 prefix, long expires)
    {
        BeginWrite(e);
        e->State = MapCacheEntry.StateUsed;
        e->Family = spec.Family;
        e->PrefixLength = (byte)spec.PrefixLength;
        e->Action = spec.Action;
        e->InstanceId = spec.InstanceId;
        e->Profile = spec.Profile;
        e->RlocCount = (byte)spec.Rlocs.Count;
        e->Flags = 0;
        e->Prefix = prefix;
        e->ExpiresAt = expires;
        e->MapVersion = spec.MapVersion;
        e->AssignedProfile = spec.AssignedProfile;
        e->TtlMinutes = (ushort)Math.Min(spec.TtlMinutes, ushort.MaxValue);
        for (int i = 0; i < MapCacheEntry.MaxRlocs; i++)
        {
            e->Rlocs[i] = i < spec.Rlocs.Count
                ? new RlocSlot { Address = spec.Rlocs[i].Address, Family = spec.Rlocs[i].Family, Priority = spec.Rlocs[i].Priority, Weight = spec.Rlocs[i].Weight, State = spec.Rlocs[i].Up ? RlocSlot.StateUp : RlocSlot.StateDown }
                : default;
        }
        EndWrite(e);
    }

    /// <summary>
    /// Finds the index slot of a key (true), or where to insert it: the first tombstone or empty slot on its probe
    /// path (false). The writer reads without the seqlock: nobody else writes.
    /// </summary>
    private bool FindSlot(uint iid, ushort profile, EidFamily family, int length, UInt128 prefix, out uint found, out uint insertAt)
    {
        uint mask = _t.IndexMask;
        uint i = (uint)MapCacheMath.Hash(iid, profile, family, length, prefix) & mask;
        insertAt = uint.MaxValue;
        for (uint n = 0; n <= mask; n++, i = (i + 1) & mask)
        {
            uint slot = _t.Index[i];
            if (slot == MapCacheMath.IndexEmpty)
            {
                if (insertAt == uint.MaxValue) insertAt = i;
                break;
            }
            if (slot == MapCacheMath.IndexTombstone)
            {
                if (insertAt == uint.MaxValue) insertAt = i;
                continue;
            }
            MapCacheEntry* e = _t.Entries + (slot - 1);
            if (e->InstanceId == iid && e->Profile == profile && e->Family == family && e->PrefixLength == length && e->Prefix == prefix)
            {
                found = i;
                return true;
            }
        }
        found = uint.MaxValue;
        return false;
    }

    private IidSlot* FindOrAddIid(uint iid)
    {
        IidSlot* existing = _t.FindIid(iid);
        if (existing != null) return existing;
        uint i = (uint)MapCacheMath.Mix(iid) & _t.IidMask;
        for (uint n = 0; n <= _t.IidMask; n++, i = (i + 1) & _t.IidMask)
        {
            IidSlot* s = _t.Iids + i;
            if (s->Used != 0) continue;
            s->InstanceId = iid;
            s->Ipv4Lengths = s->Ipv6Lengths0 = s->Ipv6Lengths1 = s->Ipv6Lengths2 = 0;
            // Release: the IID and empty bitmaps are visible before the slot counts as used.
            Volatile.Write(ref s->Used, 1);
            return s;
        }
        return null;
    }

    private static void SetLengthBit(IidSlot* s, EidFamily family, int length)
    {
        if (family == EidFamily.Ipv4) Volatile.Write(ref s->Ipv4Lengths, s->Ipv4Lengths | (1UL << length));
        else if (length < 64) Volatile.Write(ref s->Ipv6Lengths0, s->Ipv6Lengths0 | (1UL << length));
        else if (length < 128) Volatile.Write(ref s->Ipv6Lengths1, s->Ipv6Lengths1 | (1UL << (length - 64)));
        else Volatile.Write(ref s->Ipv6Lengths2, s->Ipv6Lengths2 | 1UL);
    }
}
