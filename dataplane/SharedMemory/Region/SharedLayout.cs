using System.Runtime.InteropServices;

namespace FastXtr.SharedMemory;

/// <summary>
/// The header of the shared-memory region that a data plane and its control agent both map (ARCHITECTURE.md,
/// "The shared-memory contract"). Everything after it is addressed by offsets from the region's start, never by
/// pointers, so each process may map the region at its own address.
/// <code>
///  offset  size  field
///       0     8  Magic "FXTRSHM\0"
///       8     4  LayoutVersion        (a mismatch is refused with both versions named)
///      12     4  HeaderBytes
///      16     8  RegionBytes
///      24     4  EntryCapacity        map-cache entries
///      28     4  IndexSlots           power of two, 2 x EntryCapacity rounded up
///      32     4  IidSlots             power of two
///      36     4  Workers              miss rings and counter blocks
///      40     4  MissRingSlots        per worker, power of two
///      44     4  ActiveWorkers        workers of the running data plane (0 when none)
///      48     8  EntriesOffset        EntryCapacity x MapCacheLayout.EntryBytes
///      56     8  IndexOffset          IndexSlots x 4 bytes
///      64     8  IidTableOffset       IidSlots x MapCacheLayout.IidSlotBytes
///      72     8  MissRingsOffset      Workers x (MissRingHeaderBytes + MissRingSlots x MissRecordBytes)
///      80     8  CountersOffset       Workers x CounterBlockBytes
///      88     4  DataplanePid         0 when no data plane is attached
///      92     4  AgentPid             0 when no agent is attached
///      96     8  Generation           bumped by the writer on every change (readers may watch it)
///     104     8  EntryCount           live entries, maintained by the writer
///     112     4  MovedAwayEntries     moved-away entries in all IIDs; 0 lets the ETR skip its check with one load
///     116     4  WriterPid            the map-cache writer holding the lease (flock on the region file); 0 when none
///     120     8  Reserved0
///     128     4  IndexSeq             odd while the writer moves index slots (a removal's backward shift, a repair);
///                                     on a cache line of its own, read by every lookup, written only by removals
///     132     4  Reserved1
/// </code>
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 8)]
public struct SharedHeader
{
    public const ulong MagicValue = 0x004D485352545846; // "FXTRSHM\0" little-endian
    // 2: source-profile entries (AssignedProfile, SourceProfileEntries); 3: no index tombstones (backward-shift
    // deletion under IndexSeq), the writer lease (WriterPid); 4: miss records carry their kind (MissRecord.Kind);
    // 5: a miss record's outer source holds an IPv6 address (or a mapped IPv4 one), its kind moved to offset 7
    public const uint CurrentLayoutVersion = 5;
    public const int Bytes = 4096;

    public ulong Magic;
    public uint LayoutVersion;
    public uint HeaderBytes;
    public ulong RegionBytes;
    public uint EntryCapacity;
    public uint IndexSlots;
    public uint IidSlots;
    public uint Workers;
    public uint MissRingSlots;
    public uint ActiveWorkers;
    public long EntriesOffset;
    public long IndexOffset;
    public long IidTableOffset;
    public long MissRingsOffset;
    public long CountersOffset;
    public int DataplanePid;
    public int AgentPid;
    public long Generation;
    public long EntryCount;
    public uint MovedAwayEntries;
    public int WriterPid;
    public ulong Reserved0;
    public uint IndexSeq;
    public uint Reserved1;
}

/// <summary>Sizes of a region, chosen at creation (<c>fastxtr dataplane --map-cache-entries</c> and friends).</summary>
public readonly record struct SharedRegionSizes(int EntryCapacity, int IidSlots, int Workers, int MissRingSlots)
{
    public static readonly SharedRegionSizes Default = new(65536, 4096, 2, 1024);

    public void Validate()
    {
        if (EntryCapacity is < 16 or > 16 << 20) throw new ArgumentOutOfRangeException(nameof(EntryCapacity), EntryCapacity, "map-cache entries must be 16 .. 16M");
        if (IidSlots < 16 || !IsPowerOfTwo(IidSlots) || IidSlots > 1 << 20) throw new ArgumentOutOfRangeException(nameof(IidSlots), IidSlots, "IID slots must be a power of two, 16 .. 1M");
        if (Workers is < 1 or > 64) throw new ArgumentOutOfRangeException(nameof(Workers), Workers, "1 .. 64 workers");
        if (MissRingSlots < 16 || !IsPowerOfTwo(MissRingSlots) || MissRingSlots > 1 << 20) throw new ArgumentOutOfRangeException(nameof(MissRingSlots), MissRingSlots, "miss-ring slots must be a power of two, 16 .. 1M");
    }

    private static bool IsPowerOfTwo(int v) => v > 0 && (v & (v - 1)) == 0;

    /// <summary>Index slots: at least twice the entries, a power of two, so linear probes stay short.</summary>
    public int IndexSlots => (int)Math.Min(1u << 30, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)EntryCapacity * 2));
}
