using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading;

namespace FastXtr.SharedMemory.MapCache;

/// <summary>
/// The map-cache's three tables inside a mapped region: entries, an open-addressing index of entry numbers
/// (linear probing; 0 empty, n+1 entry n; no tombstones: a removal shifts the rest of its probe run back, so the
/// index stays as healthy after years of churn as on its first day) and the per-IID prefix-length table.
/// <para>
/// Concurrency: one writer (<see cref="MapCacheWriter"/>, in the control agent, holding the region's writer lease)
/// and any number of readers (data-plane workers, <c>fastxtr show</c>), in other processes. Readers never lock: an
/// entry is read under its sequence counter (see <see cref="MapCacheEntry"/>), index and IID slots are single
/// 32/64-bit words read with Volatile. The writer publishes an entry fully before it links the index slot to it, and
/// sets a prefix-length bit before the first entry of that length appears, so a reader sees either the old state or
/// the new one. A removal moves index slots; it does so with the region's <c>IndexSeq</c> odd, and a lookup that saw
/// that counter change (or odd) starts again, so a key moved past a reader's probe is never reported missing.
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
    /// <summary>The region's index sequence counter (a header word): odd while the writer moves index slots.</summary>
    internal readonly uint* IndexSeq;

    /// <summary>How many times a lookup starts again while index slots move under it, before it answers anyway.</summary>
    private const int LookupAttempts = 8;

    public MapCacheTables(byte* entries, int entryCapacity, byte* index, int indexSlots, byte* iids, int iidSlots, uint* movedAwayTotal, uint* indexSeq)
    {
        MovedAwayTotal = movedAwayTotal;
        IndexSeq = indexSeq;
        if (indexSlots <= 0 || (indexSlots & (indexSlots - 1)) != 0) throw new ArgumentException("index slots must be a power of two", nameof(indexSlots));
        if (iidSlots <= 0 || (iidSlots & (iidSlots - 1)) != 0) throw new ArgumentException("IID slots must be a power of two", nameof(iidSlots));
        if (indexSlots <= entryCapacity) throw new ArgumentException("the index needs more slots than there are entries", nameof(indexSlots));
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
        uint i = (uint)MapCacheMath.Fold(iid) & IidMask;
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
    /// Returns false when there is none. Entries passed on the probe path are compared in place, not copied; the match
    /// is copied up to its last locator (<see cref="CopyUsed"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryReadExact(uint iid, ushort profile, EidFamily family, int length, UInt128 prefix, out MapCacheEntry copy)
    {
        uint i = (uint)MapCacheMath.Hash(iid, profile, family, length, prefix) & IndexMask;
        ulong keyWord = KeyWord(iid, family, length);
        for (uint n = 0; n <= IndexMask; n++, i = (i + 1) & IndexMask)
        {
            uint slot = Volatile.Read(ref Index[i]);
            if (slot == MapCacheMath.IndexEmpty) break;
            if (slot > (uint)EntryCapacity) continue; // only a crashed writer leaves such a word; the next one repairs it
            if (TryReadIfMatches(Entries + (slot - 1), keyWord, profile, prefix, out copy)) return true;
        }
        Unsafe.SkipInit(out copy);
        return false;
    }

    /// <summary>
    /// The entry's bytes 4..11 as one word (State, Family, PrefixLength, Action, InstanceId, little-endian) for a live
    /// entry of this key, Action masked out by <see cref="KeyWordMask"/>: one comparison instead of four.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong KeyWord(uint iid, EidFamily family, int length) =>
        MapCacheEntry.StateUsed | (ulong)(byte)family << 8 | (ulong)(byte)length << 16 | (ulong)iid << 32;

    private const ulong KeyWordMask = 0xFFFF_FFFF_00FF_FFFFUL;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Matches(MapCacheEntry* e, ulong keyWord, ushort profile, UInt128 prefix) =>
        (*(ulong*)((byte*)e + 4) & KeyWordMask) == keyWord && e->Prefix == prefix && e->Profile == profile;

    /// <summary>
    /// Seqlock read of one entry that is copied only when its key is the one asked for: the key fields are compared
    /// in place and the comparison, like the copy, counts only when the counter was even and unchanged around it.
    /// An entry that stays odd (a writer died inside it) is given up on after bounded retries: a miss, never a wait.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool TryReadIfMatches(MapCacheEntry* e, ulong keyWord, ushort profile, UInt128 prefix, out MapCacheEntry copy)
    {
        Unsafe.SkipInit(out copy);
        // The common case inline: the counter even and unchanged around one comparison (and copy).
        if (ReadOnce(e, keyWord, profile, prefix, ref copy, out bool same)) return same;
        return TryReadIfMatchesRetrying(e, keyWord, profile, prefix, ref copy);
    }

    /// <summary>The entry is being written (or its writer died inside it): bounded retries, then a miss.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool TryReadIfMatchesRetrying(MapCacheEntry* e, ulong keyWord, ushort profile, UInt128 prefix, ref MapCacheEntry copy)
    {
        for (int attempt = 0; attempt < 1000; attempt++)
        {
            Thread.SpinWait(1);
            if (ReadOnce(e, keyWord, profile, prefix, ref copy, out bool same)) return same;
        }
        return false;
    }

    /// <summary>
    /// One seqlock attempt: true when the counter was even and unchanged around the comparison (and the copy of a
    /// match), with the comparison's result in <paramref name="same"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool ReadOnce(MapCacheEntry* e, ulong keyWord, ushort profile, UInt128 prefix, ref MapCacheEntry copy, out bool same)
    {
        uint before = Volatile.Read(ref e->Seq);
        same = false;
        if ((before & 1) != 0) return false;
        same = Matches(e, keyWord, profile, prefix);
        if (same) CopyUsed(e, ref copy);
        Volatile.ReadBarrier();
        return Volatile.Read(ref e->Seq) == before;
    }

    /// <summary>
    /// Copies the entry's fixed part and at least its <see cref="MapCacheEntry.RlocCount"/> locators (2, 4 or all 8
    /// slots): what a lookup's caller uses. Slots past the count are undefined in a lookup's result; a count torn by a
    /// concurrent write only changes how much is copied, and the caller's counter check rejects the copy.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyUsed(MapCacheEntry* e, ref MapCacheEntry copy)
    {
        // Fixed-size block copies (unrolled into vector moves by the JIT): a variable length would call memmove,
        // which measured slower than copying the whole entry.
        ref byte to = ref Unsafe.As<MapCacheEntry, byte>(ref copy);
        int rlocs = e->RlocCount;
        if (rlocs <= 2) Unsafe.CopyBlockUnaligned(ref to, ref *(byte*)e, MapCacheEntry.FixedBytes + 2 * RlocBytes);
        else if (rlocs <= 4) Unsafe.CopyBlockUnaligned(ref to, ref *(byte*)e, MapCacheEntry.FixedBytes + 4 * RlocBytes);
        else Unsafe.CopyBlockUnaligned(ref to, ref *(byte*)e, MapCacheEntry.Bytes);
    }

    private const int RlocBytes = 24;

    /// <summary>Seqlock read: a whole copy taken while the counter was even and unchanged (bounded retries, then false).</summary>
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

    /// <summary>
    /// Longest-prefix match of (IID, profile, address). The result's locator slots past its RlocCount are undefined
    /// (only what a caller uses is copied); <see cref="Snapshot"/> and <see cref="ReadUsed"/> copy whole entries.
    /// </summary>
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
        return s != null && Volatile.Read(ref s->MovedAwayEntries) != 0 && Lpm(s, new MapCacheKey(iid, MapCacheEntry.MovedAwayKey, family, destination), out _);
    }

    /// <summary>
    /// Longest-prefix match within one IID, repeated while the writer moved index slots under it: a removal's backward
    /// shift can carry a longer prefix's slot past this reader's probe, and answering from the shorter one (or a miss)
    /// would be wrong. The counter lives on its own cache line and changes only on removals, so a lookup that races
    /// none pays two loads of a line that stays shared. A counter left odd by a writer that died is accepted after two
    /// equal reads: the data plane keeps forwarding until the next writer repairs the index.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool Lpm(IidSlot* s, in MapCacheKey key, out MapCacheEntry entry)
    {
        uint before = Volatile.Read(ref *IndexSeq);
        bool found = LpmOnce(s, key, out entry);
        Volatile.ReadBarrier();
        if (Volatile.Read(ref *IndexSeq) == before && (before & 1) == 0) return found;
        return LpmRetrying(s, key, out entry);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool LpmRetrying(IidSlot* s, in MapCacheKey key, out MapCacheEntry entry)
    {
        for (int attempt = 1; ; attempt++)
        {
            Thread.SpinWait(1);
            uint before = Volatile.Read(ref *IndexSeq);
            bool found = LpmOnce(s, key, out entry);
            Volatile.ReadBarrier();
            uint after = Volatile.Read(ref *IndexSeq);
            if (before == after && ((before & 1) == 0 || attempt >= 2)) return found;
            if (attempt >= LookupAttempts) return found;
        }
    }

    private bool LpmOnce(IidSlot* s, in MapCacheKey key, out MapCacheEntry entry)
    {
        if (key.Family == EidFamily.Ipv4)
        {
            ulong lengths = Volatile.Read(ref s->Ipv4Lengths);
            while (lengths != 0)
            {
                int len = 63 - System.Numerics.BitOperations.LeadingZeroCount(lengths);
                if (TryReadExact(key.InstanceId, key.Profile, EidFamily.Ipv4, len, EidPrefix.Mask(key.Address, EidFamily.Ipv4, len), out entry)) return true;
                lengths &= ~(1UL << len);
            }
        }
        else
        {
            if (Search(ref s->Ipv6Lengths2, 128, key, out entry)) return true;
            if (Search(ref s->Ipv6Lengths1, 64, key, out entry)) return true;
            if (Search(ref s->Ipv6Lengths0, 0, key, out entry)) return true;
        }
        Unsafe.SkipInit(out entry);
        return false;
    }

    private bool Search(ref ulong word, int baseLength, in MapCacheKey key, out MapCacheEntry entry)
    {
        ulong lengths = Volatile.Read(ref word);
        while (lengths != 0)
        {
            int bit = 63 - System.Numerics.BitOperations.LeadingZeroCount(lengths);
            int len = baseLength + bit;
            if (TryReadExact(key.InstanceId, key.Profile, EidFamily.Ipv6, len, EidPrefix.Mask(key.Address, EidFamily.Ipv6, len), out entry)) return true;
            lengths &= ~(1UL << bit);
        }
        Unsafe.SkipInit(out entry);
        return false;
    }

    /// <summary>How many prefix lengths a lookup in (IID, family) probes: those that have entries, in any profile.</summary>
    public int ProbedLengths(uint iid, EidFamily family)
    {
        IidSlot* s = FindIid(iid);
        if (s == null) return 0;
        return family == EidFamily.Ipv4 ? System.Numerics.BitOperations.PopCount(Volatile.Read(ref s->Ipv4Lengths))
            : System.Numerics.BitOperations.PopCount(Volatile.Read(ref s->Ipv6Lengths0)) + System.Numerics.BitOperations.PopCount(Volatile.Read(ref s->Ipv6Lengths1))
              + System.Numerics.BitOperations.PopCount(Volatile.Read(ref s->Ipv6Lengths2));
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
