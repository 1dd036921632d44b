using System.Runtime.InteropServices;
using FastXtr.SharedMemory.MapCache;

namespace FastXtr.SharedMemory;

/// <summary>What a <see cref="MissRecord"/> reports.</summary>
public enum MissKind : byte
{
    /// <summary>Never posted: a slot with this kind is a defect, counted and skipped by the reader.</summary>
    None = 0,
    /// <summary>The ITR found no entry for (IID, profile, destination): the agent sends a Map-Request.</summary>
    Miss = 1,
    /// <summary>The ETR delivered a packet for an EID in the moved-away table: the agent sends its ITR an SMR.</summary>
    MovedAwayHit = 2,
}

/// <summary>
/// A record posted by a worker for the control agent, of one of the kinds of <see cref="MissKind"/>: a map-cache
/// miss (which IID, profile and EIDs), or a packet that arrived from ITR <see cref="OuterSource"/> for an EID that
/// moved away (the agent answers with an SMR; <see cref="Profile"/> is 0).
/// <code>
///  0 InstanceId  4 Profile  6 Family  7 Kind  8 Timestamp  16 SourceEid  32 DestinationEid  48 OuterSource
/// </code>
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = MissRing.RecordBytes)]
public struct MissRecord
{
    [FieldOffset(0)] public uint InstanceId;
    [FieldOffset(4)] public ushort Profile;
    [FieldOffset(6)] public EidFamily Family;
    [FieldOffset(7)] public MissKind Kind;
    [FieldOffset(8)] public long Timestamp;
    [FieldOffset(16)] public UInt128 SourceEid;
    [FieldOffset(32)] public UInt128 DestinationEid;
    /// <summary>
    /// Solicit records: the outer source RLOC of the packet, an IPv6 address or an IPv4 one in its mapped form
    /// ::ffff:a.b.c.d (<c>MappedIpv4</c>), as a host-order number.
    /// </summary>
    [FieldOffset(48)] public UInt128 OuterSource;
}

/// <summary>
/// One worker's miss ring in shared memory: single producer (the worker), single consumer (the agent).
/// <code>
///   0  Head (u64, producer)      own cache line
///  64  Tail (u64, consumer)      own cache line
/// 128  Dropped (u64, producer)   posts refused because the ring was full
/// 192  slots: MissRingSlots x 64 bytes
/// </code>
/// The producer writes a slot, then publishes Head (release); the consumer reads Head (acquire), copies the slots,
/// then publishes Tail. Head and Tail only grow; slot = counter mod slots.
/// </summary>
public readonly unsafe struct MissRing
{
    public const int RecordBytes = 64;
    private const int HeaderBytes = 192;
    private readonly byte* _base;
    private readonly int _mask;

    public MissRing(byte* basePointer, int slots)
    {
        _base = basePointer;
        _mask = slots - 1;
    }

    public static long BytesFor(int slots) => HeaderBytes + (long)slots * RecordBytes;

    private ref ulong Head => ref *(ulong*)_base;
    private ref ulong Tail => ref *(ulong*)(_base + 64);
    private ref ulong DroppedRef => ref *(ulong*)(_base + 128);
    private MissRecord* Slots => (MissRecord*)(_base + HeaderBytes);

    public ulong Dropped => Volatile.Read(ref DroppedRef);
    public int Pending => (int)(Volatile.Read(ref Head) - Volatile.Read(ref Tail));

    /// <summary>Producer side. Returns false (and counts it) when the ring is full.</summary>
    public bool TryPost(in MissRecord record)
    {
        ulong head = Head;
        // Acquire: the consumer's copies of the slots we would reuse are done before we overwrite them.
        if (head - Volatile.Read(ref Tail) > (ulong)_mask)
        {
            DroppedRef++;
            return false;
        }
        Slots[head & (ulong)_mask] = record;
        // Release: the slot's contents are visible before the new head.
        Volatile.Write(ref Head, head + 1);
        return true;
    }

    /// <summary>Consumer side: copies up to <paramref name="into"/>.Length records and returns how many.</summary>
    public int Drain(Span<MissRecord> into)
    {
        ulong tail = Tail;
        ulong head = Volatile.Read(ref Head);
        int n = (int)Math.Min(head - tail, (ulong)into.Length);
        for (int i = 0; i < n; i++) into[i] = Slots[(tail + (ulong)i) & (ulong)_mask];
        // Release: the copies are taken before the producer may reuse the slots.
        Volatile.Write(ref Tail, tail + (ulong)n);
        return n;
    }
}

/// <summary>
/// Per-worker duplicate suppression for misses (RFC 9301 §5.3 asks an ITR to send at most one Map-Request per
/// destination per second): a direct-mapped table of the last post per (IID, profile, destination). Lives in the
/// worker's own memory; a flood to one unknown EID posts about one miss per second per worker.
/// </summary>
public sealed class MissSuppressor
{
    private readonly MissRecord[] _recent;
    private readonly long _interval;
    private readonly int _mask;

    public MissSuppressor(int slots = 4096, TimeSpan? interval = null)
    {
        if (slots <= 0 || (slots & (slots - 1)) != 0) throw new ArgumentException("slots must be a power of two", nameof(slots));
        _recent = new MissRecord[slots];
        _mask = slots - 1;
        _interval = (long)((interval ?? TimeSpan.FromSeconds(1)).TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
    }

    /// <summary>True when this miss should be posted now; records it as posted.</summary>
    public bool ShouldPost(in MissRecord miss)
    {
        int i = (int)MapCacheMath.Hash(miss.InstanceId, miss.Profile, miss.Family, 0, miss.DestinationEid) & _mask;
        ref MissRecord last = ref _recent[i];
        if (last.Timestamp != 0 && last.InstanceId == miss.InstanceId && last.Profile == miss.Profile && last.Family == miss.Family
            && last.DestinationEid == miss.DestinationEid && miss.Timestamp - last.Timestamp < _interval)
            return false;
        last = miss;
        return true;
    }
}
