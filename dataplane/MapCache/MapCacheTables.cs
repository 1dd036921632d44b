using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading;

namespace FastXtr.Dataplane.MapCache;

/// <summary>
/// The map-cache's three tables inside a mapped region: entries, an open-addressing index of entry numbers
/// (linear probing; 0 empty, 0xFFFFFFFF tombstone, n+1 entry n) and the per-IID prefix-length table.
/// <para>
/// Concurrency: one writer (<see cref="MapCacheWriter"/>, in the control agent) and any number of readers
/// (data-plane workers, <c>fastxtr show</c>), in other processes. Readers never lock: an entry is read under its
/// sequence counter (see <see cref="MapCacheEntry"/>), index and IID slots are single 32/64-bit words read with
/// Volatile. The writer publishes an entry fully before it links the index slot to it, and sets a prefix-length
/// bit before the first entry of that length appears, so a reader sees either the old state or the new one.
/// </para>
/// </summary>
public sealed unsafe class MapCacheTables
{
    internal readonly MapCacheEntry* Entries;
    internal readonly uint* Index;
    internal readonly IidSlot* Iids;
    internal readonly int EntryCapacity;
    internal readonly uint IndexMask;
    internal readonly uint IidMask;
    /// <summary>The region's count of moved-away entries in all IIDs (a header word, kept by the writer).</summary>
    internal readonly uint* MovedAwayTotal;

    public MapCacheTables(byte* entries, int entryCapacity, byte* index, int indexSlots, byte* iids, int iidSlots, uint* movedAwayTotal)
    {
        MovedAwayTotal = movedAwayTotal;
        if (indexSlots <= 0 || (indexSlots & (indexSlots - 1)) != 0) throw new ArgumentException("index slots must be a power of two", nameof(indexSlots));
        if (iidSlots <= 0 || (iidSlots & (iidSlots - 1)) != 0) throw new ArgumentException("IID slots must be a power of two", nameof(iidSlots));
        Entries = (MapCacheEntry*)entries;
        Index = (uint*)index;
        Iids = (IidSlot*)iids;
        EntryCapacity = entryCapacity;
        IndexMask = (uint)indexSlots - 1;
        IidMask = (uint)iidSlots - 1;
    }

    public int Capacity => EntryCapacity;

    /// <summary>Finds the IID's slot, or null. Lock-free: a slot's Used word is published after its InstanceId.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal IidSlot* FindIid(uint iid)
    {
        uint i = (uint)MapCacheMath.Mix(iid) & IidMask;
        for (uint n = 0; n <= IidMask; n++, i = (i + 1) & IidMask)
        {
            IidSlot* s = Iids + i;
            if (Volatile.Read(ref s->Used) == 0) return null;
            if (s->InstanceId == iid) return s;
        }
        return null;
    }

    /// <summary>
    /// Copies the entry for an exact key (IID, profile, family, length, masked prefix) into <paramref name="copy"/>.
    /// Returns false when there is none.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryReadExact(uint iid, ushort profile, EidFamily family, int length, UInt128 prefix, out MapCacheEntry copy)
    {
        uint i = (uint)MapCacheMath.Hash(iid, profile, family, length, prefix) & IndexMask;
        for (uint n = 0; n <= IndexMask; n++, i = (i + 1) & IndexMask)
        {
            uint slot = Volatile.Read(ref Index[i]);
            if (slot == MapCacheMath.IndexEmpty) break;
            if (slot == MapCacheMath.IndexTombstone || slot > (uint)EntryCapacity) continue;
            if (TryReadStable(Entries + (slot - 1), out copy)
                && copy.State == MapCacheEntry.StateUsed && copy.InstanceId == iid && copy.Profile == profile
                && copy.Family == family && copy.PrefixLength == length && copy.Prefix == prefix)
                return true;
        }
        copy = default;
        return false;
    }

    /// <summary>Seqlock read: a copy taken while the counter was even and unchanged (bounded retries, then false).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool TryReadStable(MapCacheEntry* e, out MapCacheEntry copy)
    {
        for (int attempt = 0; attempt < 1000; attempt++)
        {
            // Acquire: the copy below is not read before the counter.
            uint before = Volatile.Read(ref e->Seq);
            if ((before & 1) == 0)
            {
                copy = *e;
                // Read barrier: the copy's loads complete before the second counter load (on x64 loads stay in
                // order, so this only stops the JIT from moving them; a full fence measured 3x slower lookups).
                Volatile.ReadBarrier();
                if (Volatile.Read(ref e->Seq) == before) return true;
            }
            Thread.SpinWait(1);
        }
        copy = default;
        return false;
    }

    /// <summary>Longest-prefix match of (IID, profile, address).</summary>
    public bool TryLookup(in MapCacheKey key, out MapCacheEntry entry)
    {
        IidSlot* s = FindIid(key.InstanceId);
        if (s == null) { entry = default; return false; }
        return Lpm(s, key, out entry);
    }

    /// <summary>
    /// The ITR's lookup: the destination under the profile of the packet's source (CONTEXT-EXTENSION.md §5). When
    /// the IID has no source-profile entries (the usual case) this costs one load more than <see cref="TryLookup"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryLookupFromSource(uint iid, EidFamily family, UInt128 source, UInt128 destination, out ushort profile, out MapCacheEntry entry)
    {
        profile = 0;
        IidSlot* s = FindIid(iid);
        if (s == null) { entry = default; return false; }
        if (Volatile.Read(ref s->SourceProfileEntries) != 0 && Lpm(s, new MapCacheKey(iid, MapCacheEntry.SourceProfileKey, family, source), out entry))
            profile = (ushort)entry.AssignedProfile;
        return Lpm(s, new MapCacheKey(iid, profile, family, destination), out entry);
    }

    /// <summary>
    /// Whether the region has any moved-away entry: the ETR's one-load gate before <see cref="HasMovedAway"/>.
    /// </summary>
    public bool AnyMovedAway
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Volatile.Read(ref *MovedAwayTotal) != 0;
    }

    /// <summary>
    /// The ETR's check for SMR: true when <paramref name="destination"/> lies in a moved-away entry of the IID. Costs
    /// one load while the region has none (the usual case), one IID probe while the IID has none.
    /// </summary>
    public bool HasMovedAway(uint iid, EidFamily family, UInt128 destination)
    {
        if (!AnyMovedAway) return false;
        IidSlot* s = FindIid(iid);
        return s != null && Volatile.Read(ref s->SolicitEntries) != 0 && Lpm(s, new MapCacheKey(iid, MapCacheEntry.SolicitKey, family, destination), out _);
    }

    private bool Lpm(IidSlot* s, in MapCacheKey key, out MapCacheEntry entry)
    {
        if (key.Family == EidFamily.Ipv4)
        {
            ulong lengths = Volatile.Read(ref s->Ipv4Lengths);
            while (lengths != 0)
            {
                int len = 63 - System.Numerics.BitOperations.LeadingZeroCount(lengths);
                if (TryReadExact(key.InstanceId, key.Profile, EidFamily.Ipv4, len, MapCacheMath.Mask(key.Address, EidFamily.Ipv4, len), out entry)) return true;
                lengths &= ~(1UL << len);
            }
        }
        else
        {
            if (Search(ref s->Ipv6Lengths2, 128, key, out entry)) return true;
            if (Search(ref s->Ipv6Lengths1, 64, key, out entry)) return true;
            if (Search(ref s->Ipv6Lengths0, 0, key, out entry)) return true;
        }
        entry = default;
        return false;
    }

    private bool Search(ref ulong word, int baseLength, in MapCacheKey key, out MapCacheEntry entry)
    {
        ulong lengths = Volatile.Read(ref word);
        while (lengths != 0)
        {
            int bit = 63 - System.Numerics.BitOperations.LeadingZeroCount(lengths);
            int len = baseLength + bit;
            if (TryReadExact(key.InstanceId, key.Profile, EidFamily.Ipv6, len, MapCacheMath.Mask(key.Address, EidFamily.Ipv6, len), out entry)) return true;
            lengths &= ~(1UL << bit);
        }
        entry = default;
        return false;
    }

    /// <summary>Copies every live entry (for <c>fastxtr show map-cache</c> and for a restarting agent).</summary>
    public List<MapCacheEntry> Snapshot()
    {
        var list = new List<MapCacheEntry>();
        Span<MapCacheEntry> chunk = new MapCacheEntry[256];
        for (int next = 0, n; (n = ReadUsed(ref next, chunk)) > 0;)
            foreach (var e in chunk[..n]) list.Add(e);
        return list;
    }

    /// <summary>
    /// Copies the next live entries from entry slot <paramref name="next"/> on into <paramref name="into"/>, advancing
    /// <paramref name="next"/>; returns how many (0 at the end). A walk in fixed chunks: a million-entry map-cache
    /// is read without a copy of all of it.
    /// </summary>
    public int ReadUsed(ref int next, Span<MapCacheEntry> into)
    {
        int n = 0;
        for (; next < EntryCapacity && n < into.Length; next++)
            if (TryReadStable(Entries + next, out var e) && e.State == MapCacheEntry.StateUsed) into[n++] = e;
        return n;
    }

    public static long Now => Stopwatch.GetTimestamp();
}
