using FastXtr.Packets;
using System.Threading;

namespace FastXtr.SharedMemory.MapCache;

/// <summary>
/// The single writer of a map-cache (the control agent's side of the shared-memory contract). Not thread-safe, and
/// one per region: <see cref="SharedRegion.CreateWriter"/> hands it out only with the region's writer lease.
/// Updates in place under the entry's sequence counter, so an entry that changes (new RLOCs, a locator marked down)
/// never disappears for a reader in between. Removals shift the rest of their probe run back (no tombstones), and
/// each prefix length is counted per IID so that a length whose last entry went is no longer probed.
/// <para>
/// On construction it takes over whatever the previous writer left, which may have been killed at any instruction:
/// entries left odd are cleared, an index that is not exactly "every live entry once, reachable on its probe path"
/// is rebuilt, and the derived state (length bits, source-profile and moved-away counts) is recomputed.
/// </para>
/// </summary>
public sealed unsafe class MapCacheWriter : IDisposable
{
    private readonly MapCacheTables _t;
    private readonly Stack<int> _free = new();
    private readonly Action? _changed;
    private readonly IDisposable? _lease;
    // Per IID: how many entries of each prefix length (IPv4 0..32, IPv6 0..128), whatever their profile.
    private readonly Dictionary<uint, (int[] V4, int[] V6)> _lengthCounts = [];

    /// <summary>
    /// Crash points for tests: called with "entry" half-way through writing an entry's fields (counter odd) and with
    /// "index" half-way through a removal's shift (IndexSeq odd). A test process blocks there and is killed.
    /// </summary>
    public static Action<string>? CrashPointForTests { get; set; }

    /// <param name="changed">Called after every change (the region bumps its generation there).</param>
    /// <param name="lease">The region's writer lease, released with this writer.</param>
    public MapCacheWriter(MapCacheTables tables, Action? changed = null, IDisposable? lease = null)
    {
        _t = tables;
        _changed = changed;
        _lease = lease;
        Repair = TakeOver();
        // Rebuild the free list from the entries themselves: a restarted agent picks up where the last one left.
        for (int i = tables.EntryCapacity - 1; i >= 0; i--)
            if (tables.Entries[i].State != MapCacheEntry.StateUsed) _free.Push(i);
        Count = tables.EntryCapacity - _free.Count;
    }

    public int Count { get; private set; }

    /// <summary>What this writer mended when it took over the region.</summary>
    public MapCacheRepair Repair { get; }

    /// <summary>The longest probe run in the index (from a key's home slot to its slot): the index's health.</summary>
    public int LongestProbe()
    {
        int longest = 0;
        for (uint i = 0; i <= _t.IndexMask; i++)
        {
            uint slot = _t.Index[i];
            if (slot == MapCacheMath.IndexEmpty) continue;
            longest = Math.Max(longest, (int)((i - Home(_t.Entries + (slot - 1))) & _t.IndexMask) + 1);
        }
        return longest;
    }

    /// <summary>Empty index slots (with backward-shift deletion: slots minus live entries, always).</summary>
    public int EmptyIndexSlots()
    {
        int empty = 0;
        for (uint i = 0; i <= _t.IndexMask; i++) if (_t.Index[i] == MapCacheMath.IndexEmpty) empty++;
        return empty;
    }

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
            rlocs[i] = new RlocSpec(r.Family, r.Address, r.Priority, r.Weight, r.State == RlocSlot.StateUp, r.Port, r.NatTraversed);
        }
        var spec = new MapCacheEntrySpec(entry.InstanceId, entry.Profile, entry.Family, entry.Prefix, entry.PrefixLength, rlocs,
            entry.Action, entry.TtlMinutes, entry.MapVersion, (ushort)entry.AssignedProfile);
        return UpsertAt(spec, entry.ExpiresAt);
    }

    private MapCacheWriteResult UpsertAt(MapCacheEntrySpec spec, long expires)
    {
        Validate(spec);
        UInt128 prefix = EidPrefix.Mask(spec.Prefix, spec.Family, spec.PrefixLength);

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
        if (CountLength(spec.InstanceId, spec.Family, spec.PrefixLength, +1) == 1) SetLengthBit(iid, spec.Family, spec.PrefixLength, true);
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
        prefix = EidPrefix.Mask(prefix, family, prefixLength);
        if (!FindSlot(instanceId, profile, family, prefixLength, prefix, out uint slotIndex, out _)) return MapCacheWriteResult.NotFound;
        uint entry = _t.Index[slotIndex] - 1;
        // Unlink first (the rest of the probe run shifts back over the slot), then retire the entry under its
        // counter; a reader holding the old slot number sees the entry change state and rejects it.
        BeginIndexMove();
        DeleteIndexSlot(slotIndex);
        EndIndexMove();
        MapCacheEntry* e = _t.Entries + entry;
        BeginWrite(e);
        e->State = MapCacheEntry.StateFree;
        EndWrite(e);
        _free.Push((int)entry);
        IidSlot* iid = _t.FindIid(instanceId);
        // The length's bit goes once its last entry is unreachable: lookups stop probing it.
        if (iid != null && CountLength(instanceId, family, prefixLength, -1) == 0) SetLengthBit(iid, family, prefixLength, false);
        AdjustSpecialCount(iid, profile, -1);
        Count--;
        _changed?.Invoke();
        return MapCacheWriteResult.Removed;
    }

    /// <summary>Marks one locator of an entry up or down (RLOC probing), in place.</summary>
    public MapCacheWriteResult SetRlocState(uint instanceId, ushort profile, EidFamily family, UInt128 prefix, int prefixLength, UInt128 rloc, bool up)
    {
        prefix = EidPrefix.Mask(prefix, family, prefixLength);
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
        var kind = MapCacheEntry.KindOf(profile);
        if (kind == MapCacheKind.SourceProfile) Volatile.Write(ref iid->SourceProfileEntries, (uint)Math.Max(0, iid->SourceProfileEntries + delta));
        else if (kind == MapCacheKind.MovedAway)
        {
            // The IID's count rises before the region's and falls after it, so a reader that passes the region's
            // gate always finds the IID's.
            if (delta > 0) Volatile.Write(ref iid->MovedAwayEntries, iid->MovedAwayEntries + 1);
            Volatile.Write(ref *_t.MovedAwayTotal, (uint)Math.Max(0, *_t.MovedAwayTotal + delta));
            if (delta < 0) Volatile.Write(ref iid->MovedAwayEntries, (uint)Math.Max(0, iid->MovedAwayEntries - 1));
        }
    }

    private static void Validate(MapCacheEntrySpec spec)
    {
        int max = EidPrefix.MaxLength(spec.Family);
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
        CrashPointForTests?.Invoke("entry");
        e->ExpiresAt = expires;
        e->MapVersion = spec.MapVersion;
        e->AssignedProfile = spec.AssignedProfile;
        e->TtlMinutes = (ushort)Math.Min(spec.TtlMinutes, ushort.MaxValue);
        for (int i = 0; i < MapCacheEntry.MaxRlocs; i++)
        {
            e->Rlocs[i] = i < spec.Rlocs.Count
                ? new RlocSlot { Address = spec.Rlocs[i].Address, Family = spec.Rlocs[i].Family, Priority = spec.Rlocs[i].Priority, Weight = spec.Rlocs[i].Weight, State = spec.Rlocs[i].Up ? RlocSlot.StateUp : RlocSlot.StateDown, Port = spec.Rlocs[i].Port, Flags = spec.Rlocs[i].NatTraversed ? RlocSlot.FlagNatTraversed : (byte)0 }
                : default;
        }
        EndWrite(e);
    }

    /// <summary>
    /// Finds the index slot of a key (true), or where to insert it: the empty slot that ends its probe run (false).
    /// The writer reads without the seqlock: nobody else writes.
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
                insertAt = i;
                break;
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
        uint i = (uint)MapCacheMath.Fold(iid) & _t.IidMask;
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

    private static void SetLengthBit(IidSlot* s, EidFamily family, int length, bool on)
    {
        ref ulong word = ref family == EidFamily.Ipv4 ? ref s->Ipv4Lengths
            : ref length < 64 ? ref s->Ipv6Lengths0 : ref length < 128 ? ref s->Ipv6Lengths1 : ref s->Ipv6Lengths2;
        ulong bit = 1UL << (family == EidFamily.Ipv4 ? length : length & 63);
        Volatile.Write(ref word, on ? word | bit : word & ~bit);
    }

    /// <summary>Adds <paramref name="delta"/> to the IID's count of entries of this length; returns the new count.</summary>
    private int CountLength(uint iid, EidFamily family, int length, int delta)
    {
        if (!_lengthCounts.TryGetValue(iid, out var counts)) _lengthCounts[iid] = counts = (new int[33], new int[129]);
        int[] c = family == EidFamily.Ipv4 ? counts.V4 : counts.V6;
        return c[length] = Math.Max(0, c[length] + delta);
    }

    private uint Home(MapCacheEntry* e) =>
        (uint)MapCacheMath.Hash(e->InstanceId, e->Profile, e->Family, e->PrefixLength, e->Prefix) & _t.IndexMask;

    /// <summary>
    /// Backward-shift deletion (linear probing): empties <paramref name="hole"/> and moves each later slot of the run
    /// whose home is not between the hole and itself back into the hole, so that no key's probe path ever crosses an
    /// empty slot and no tombstone is ever needed. Called with IndexSeq odd: a slot may briefly be in two places, and a
    /// reader passing by is told to look again.
    /// </summary>
    private void DeleteIndexSlot(uint hole)
    {
        uint mask = _t.IndexMask;
        for (uint i = (hole + 1) & mask; ; i = (i + 1) & mask)
        {
            uint slot = _t.Index[i];
            if (slot == MapCacheMath.IndexEmpty) break;
            uint home = Home(_t.Entries + (slot - 1));
            // The slot may fill the hole when its home lies cyclically outside (hole, i].
            if (((i - home) & mask) >= ((i - hole) & mask))
            {
                Volatile.Write(ref _t.Index[hole], slot);
                CrashPointForTests?.Invoke("index");
                hole = i;
            }
        }
        Volatile.Write(ref _t.Index[hole], MapCacheMath.IndexEmpty);
    }

    private void BeginIndexMove() => Interlocked.Increment(ref *_t.IndexSeq); // full fence: odd before any slot moves

    private void EndIndexMove() => Interlocked.Increment(ref *_t.IndexSeq); // full fence: every move visible first

    // ------------------------------------------------------------------ taking over from the previous writer

    /// <summary>
    /// Makes the region consistent for this writer, whatever instruction the previous one died at (the lease says
    /// it is gone): entries left odd are cleared (their content is half old, half new), the index is checked and
    /// rebuilt unless it holds every live entry exactly once on its probe path, and the per-IID length bits and counts
    /// of special entries are recomputed from the live entries. Readers keep reading meanwhile: an odd entry becomes
    /// free under its own counter, and the rebuild runs with IndexSeq odd so that lookups look again.
    /// </summary>
    private MapCacheRepair TakeOver()
    {
        bool indexMoving = (Volatile.Read(ref *_t.IndexSeq) & 1) != 0;
        if (indexMoving) Interlocked.Increment(ref *_t.IndexSeq); // even again; the rebuild below marks itself
        int halfWritten = 0;
        for (int i = 0; i < _t.EntryCapacity; i++)
        {
            MapCacheEntry* e = _t.Entries + i;
            if ((Volatile.Read(ref e->Seq) & 1) == 0) continue;
            // The counter is odd: the entry stays rejected while it becomes free, then turns even.
            e->State = MapCacheEntry.StateFree;
            Interlocked.Increment(ref e->Seq);
            halfWritten++;
        }
        bool rebuild = indexMoving || halfWritten > 0 || !IndexIsExact();
        int duplicates = rebuild ? RebuildIndex() : 0;
        RecomputeDerived();
        return new MapCacheRepair(halfWritten, rebuild, duplicates);
    }

    /// <summary>True when the index links every live entry exactly once, each on its own probe path, and nothing else.</summary>
    private bool IndexIsExact()
    {
        var seen = new System.Collections.BitArray(_t.EntryCapacity);
        int linked = 0;
        for (uint i = 0; i <= _t.IndexMask; i++)
        {
            uint slot = _t.Index[i];
            if (slot == MapCacheMath.IndexEmpty) continue;
            if (slot > (uint)_t.EntryCapacity || seen[(int)slot - 1]) return false;
            MapCacheEntry* e = _t.Entries + (slot - 1);
            if (e->State != MapCacheEntry.StateUsed) return false;
            // Reachable: no empty slot between its home and here.
            for (uint j = Home(e); j != i; j = (j + 1) & _t.IndexMask)
                if (_t.Index[j] == MapCacheMath.IndexEmpty) return false;
            seen[(int)slot - 1] = true;
            linked++;
        }
        int used = 0;
        for (int i = 0; i < _t.EntryCapacity; i++) if (_t.Entries[i].State == MapCacheEntry.StateUsed) used++;
        return used == linked;
    }

    /// <summary>Empties the index and links every live entry again; a second entry with the same key is freed.</summary>
    private int RebuildIndex()
    {
        BeginIndexMove();
        for (uint i = 0; i <= _t.IndexMask; i++) Volatile.Write(ref _t.Index[i], MapCacheMath.IndexEmpty);
        int duplicates = 0;
        for (int n = 0; n < _t.EntryCapacity; n++)
        {
            MapCacheEntry* e = _t.Entries + n;
            if (e->State != MapCacheEntry.StateUsed) continue;
            if (FindSlot(e->InstanceId, e->Profile, e->Family, e->PrefixLength, e->Prefix, out _, out uint insertAt) || insertAt == uint.MaxValue)
            {
                BeginWrite(e);
                e->State = MapCacheEntry.StateFree;
                EndWrite(e);
                duplicates++;
                continue;
            }
            Volatile.Write(ref _t.Index[insertAt], (uint)n + 1);
        }
        EndIndexMove();
        return duplicates;
    }

    /// <summary>Length counts and bits, and the counts of special entries, from the live entries.</summary>
    private void RecomputeDerived()
    {
        _lengthCounts.Clear();
        var sources = new Dictionary<uint, uint>();
        var movedAwayPerIid = new Dictionary<uint, uint>();
        uint movedAway = 0;
        for (int n = 0; n < _t.EntryCapacity; n++)
        {
            MapCacheEntry* e = _t.Entries + n;
            if (e->State != MapCacheEntry.StateUsed) continue;
            CountLength(e->InstanceId, e->Family, e->PrefixLength, +1);
            if (e->Kind == MapCacheKind.SourceProfile) sources[e->InstanceId] = sources.GetValueOrDefault(e->InstanceId) + 1;
            if (e->Kind == MapCacheKind.MovedAway) { movedAwayPerIid[e->InstanceId] = movedAwayPerIid.GetValueOrDefault(e->InstanceId) + 1; movedAway++; }
        }
        for (uint i = 0; i <= _t.IidMask; i++)
        {
            IidSlot* s = _t.Iids + i;
            if (Volatile.Read(ref s->Used) == 0) continue;
            _lengthCounts.TryGetValue(s->InstanceId, out var counts);
            // Bits of lengths that exist go up before bits of lengths that do not come down: never a live one missing.
            foreach (bool on in new[] { true, false })
            {
                for (int l = 0; l <= 32; l++) if ((counts.V4?[l] > 0) == on) SetLengthBit(s, EidFamily.Ipv4, l, on);
                for (int l = 0; l <= 128; l++) if ((counts.V6?[l] > 0) == on) SetLengthBit(s, EidFamily.Ipv6, l, on);
            }
            Volatile.Write(ref s->SourceProfileEntries, sources.GetValueOrDefault(s->InstanceId));
            Volatile.Write(ref s->MovedAwayEntries, movedAwayPerIid.GetValueOrDefault(s->InstanceId));
        }
        Volatile.Write(ref *_t.MovedAwayTotal, movedAway);
    }

    /// <summary>Releases the writer lease; the region's content stays for the next writer.</summary>
    public void Dispose() => _lease?.Dispose();
}
