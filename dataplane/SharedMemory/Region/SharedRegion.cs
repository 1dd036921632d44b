using System.Runtime.CompilerServices;
using FastXtr.SharedMemory.MapCache;
using FastXtr.NativeInterop;

namespace FastXtr.SharedMemory;

/// <summary>Why a region could not be attached; each names its cause for the operator.</summary>
public sealed class SharedRegionException : Exception
{
    public SharedRegionException(string message) : base(message) { }
    public SharedRegionException() { }
    public SharedRegionException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>
/// The shared-memory region of one xTR: header, map-cache tables, miss rings and counters (layout in
/// <see cref="SharedHeader"/>). Created by whichever of data plane and agent starts first; the other attaches and
/// checks magic, layout version and sizes, refusing a foreign or older region with a message that says which.
/// </summary>
public sealed unsafe class SharedRegion : IDisposable
{
    public const int CacheLine = 64;
    private readonly SharedMemoryMapping? _mapping;
    private readonly byte* _base;
    private readonly long _length;
    private readonly void* _owned;

    private SharedRegion(SharedMemoryMapping? mapping, byte* basePointer, long length, void* owned)
    {
        _mapping = mapping;
        _base = basePointer;
        _length = length;
        _owned = owned;
        ref SharedHeader h = ref Header;
        MapCache = new MapCacheTables(_base + h.EntriesOffset, (int)h.EntryCapacity, _base + h.IndexOffset, (int)h.IndexSlots, _base + h.IidTableOffset, (int)h.IidSlots,
            (uint*)Unsafe.AsPointer(ref h.MovedAwayEntries), (uint*)Unsafe.AsPointer(ref h.IndexSeq));
        Sizes = new SharedRegionSizes((int)h.EntryCapacity, (int)h.IidSlots, (int)h.Workers, (int)h.MissRingSlots);
    }

    public ref SharedHeader Header => ref Unsafe.AsRef<SharedHeader>(_base);
    public MapCacheTables MapCache { get; }
    public SharedRegionSizes Sizes { get; }

    /// <summary>
    /// The workers whose counters mean something: those of the running data plane, or every one of the region's when
    /// none runs (the counters of the last run).
    /// </summary>
    public int ReportingWorkers => Header.ActiveWorkers is > 0 and var active && active <= Sizes.Workers ? (int)active : Sizes.Workers;
    public string? Path => _mapping?.Path;
    /// <summary>False once the region's file was removed or replaced (a private region is always current).</summary>
    public bool IsCurrent => _mapping?.IsCurrent() ?? true;
    public long Length => _length;
    /// <summary>The mapped base, for tests that freeze a writer mid-update.</summary>
    public byte* BaseForTests => _base;

    public static long RequiredBytes(SharedRegionSizes s)
    {
        long offset = SharedHeader.Bytes;
        offset += Align((long)s.EntryCapacity * MapCacheEntry.Bytes);
        offset += Align((long)s.IndexSlots * sizeof(uint));
        offset += Align((long)s.IidSlots * IidSlot.Bytes);
        offset += Align((long)s.Workers * FastXtr.SharedMemory.MissRing.BytesFor(s.MissRingSlots));
        offset += Align((long)s.Workers * WorkerCounters.BlockBytes);
        return offset;
    }

    private static long Align(long v) => (v + 4095) & ~4095L;

    /// <summary>Creates a region file (<c>/dev/shm/NAME</c>) with these sizes.</summary>
    public static SharedRegion Create(string name, SharedRegionSizes sizes)
    {
        sizes.Validate();
        var mapping = SharedMemoryMapping.Create(name, RequiredBytes(sizes));
        try
        {
            // Initialised before it has its name: whoever attaches finds a complete header, never a half-written one.
            Initialise(mapping.Base, mapping.Length, sizes);
            mapping.Publish();
        }
        catch
        {
            mapping.Dispose();
            throw;
        }
        return new SharedRegion(mapping, mapping.Base, mapping.Length, null);
    }

    /// <summary>Attaches to an existing region, checking that it is ours and of this layout.</summary>
    public static SharedRegion Attach(string name)
    {
        SharedMemoryMapping mapping;
        try
        {
            mapping = SharedMemoryMapping.Attach(name);
        }
        catch (NativeException e) when (e.Errno == Linux.ENOENT)
        {
            throw new SharedRegionException($"no shared memory region {SharedMemoryMapping.PathFor(name)}: start `fastxtr dataplane --shm {name}` first, or pass the --shm name it uses");
        }
        try
        {
            Check(mapping.Base, mapping.Length, mapping.Path);
            return new SharedRegion(mapping, mapping.Base, mapping.Length, null);
        }
        catch
        {
            mapping.Dispose();
            throw;
        }
    }

    /// <summary>A region in private memory, for tests and benchmarks that need no second process.</summary>
    public static SharedRegion CreatePrivate(SharedRegionSizes sizes)
    {
        sizes.Validate();
        long bytes = RequiredBytes(sizes);
        void* p = System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)bytes, 4096);
        System.Runtime.InteropServices.NativeMemory.Clear(p, (nuint)bytes);
        Initialise((byte*)p, bytes, sizes);
        return new SharedRegion(null, (byte*)p, bytes, p);
    }

    private static void Initialise(byte* b, long length, SharedRegionSizes s)
    {
        ref SharedHeader h = ref Unsafe.AsRef<SharedHeader>(b);
        long offset = SharedHeader.Bytes;
        h.EntriesOffset = offset; offset += Align((long)s.EntryCapacity * MapCacheEntry.Bytes);
        h.IndexOffset = offset; offset += Align((long)s.IndexSlots * sizeof(uint));
        h.IidTableOffset = offset; offset += Align((long)s.IidSlots * IidSlot.Bytes);
        h.MissRingsOffset = offset; offset += Align((long)s.Workers * FastXtr.SharedMemory.MissRing.BytesFor(s.MissRingSlots));
        h.CountersOffset = offset;
        h.HeaderBytes = SharedHeader.Bytes;
        h.RegionBytes = (ulong)length;
        h.EntryCapacity = (uint)s.EntryCapacity;
        h.IndexSlots = (uint)s.IndexSlots;
        h.IidSlots = (uint)s.IidSlots;
        h.Workers = (uint)s.Workers;
        h.MissRingSlots = (uint)s.MissRingSlots;
        h.LayoutVersion = SharedHeader.CurrentLayoutVersion;
        // Release: an attaching process that sees the magic sees every field above.
        Volatile.Write(ref h.Magic, SharedHeader.MagicValue);
    }

    private static void Check(byte* b, long length, string path)
    {
        if (length < SharedHeader.Bytes) throw new SharedRegionException($"{path} is {length} bytes, smaller than a FastXtr region header: not a FastXtr region");
        ref SharedHeader h = ref Unsafe.AsRef<SharedHeader>(b);
        if (Volatile.Read(ref h.Magic) != SharedHeader.MagicValue) throw new SharedRegionException($"{path} is not a FastXtr shared-memory region (magic 0x{h.Magic:x16})");
        if (h.LayoutVersion != SharedHeader.CurrentLayoutVersion)
            throw new SharedRegionException($"{path} has layout version {h.LayoutVersion}, this fastxtr uses {SharedHeader.CurrentLayoutVersion}: stop the process that made it and remove the file (or use another --shm name)");
        var sizes = new SharedRegionSizes((int)h.EntryCapacity, (int)h.IidSlots, (int)h.Workers, (int)h.MissRingSlots);
        try { sizes.Validate(); }
        catch (ArgumentException e) { throw new SharedRegionException($"{path} has an invalid header: {e.Message}"); }
        if ((ulong)length != h.RegionBytes || RequiredBytes(sizes) != length || h.IndexSlots != sizes.IndexSlots)
            throw new SharedRegionException($"{path} is {length} bytes but its header describes {h.RegionBytes}: a damaged or foreign region");
    }

    public MissRing MissRing(int worker) =>
        (uint)worker < Header.Workers ? new MissRing(_base + Header.MissRingsOffset + (long)worker * FastXtr.SharedMemory.MissRing.BytesFor((int)Header.MissRingSlots), (int)Header.MissRingSlots)
                                      : throw new ArgumentOutOfRangeException(nameof(worker));

    public WorkerCounters Counters(int worker) =>
        (uint)worker < Header.Workers ? new WorkerCounters((ulong*)(_base + Header.CountersOffset + (long)worker * WorkerCounters.BlockBytes))
                                      : throw new ArgumentOutOfRangeException(nameof(worker));

    private int _privateLease; // a private region's lease: no file to flock

    /// <summary>
    /// The map-cache's writer, holding the region's writer lease (flock on the region file; the kernel drops it when
    /// the holder dies, however it dies) until it is disposed. A second writer while one lives is refused with the
    /// holder's pid; the new one repairs whatever a killed predecessor left half-done before it writes anything.
    /// Every change bumps the region's generation.
    /// </summary>
    public MapCacheWriter CreateWriter()
    {
        IDisposable lease;
        if (_mapping is null)
        {
            if (Interlocked.Exchange(ref _privateLease, 1) == 1)
                throw new SharedRegionException("this map-cache already has a writer: there is one writer per region");
            lease = new PrivateLease(this);
        }
        else
        {
            lease = FileLease.TryTake(_mapping.Path) ?? throw new SharedRegionException(
                $"the map-cache in {_mapping.Path} already has a writer (pid {Volatile.Read(ref Header.WriterPid)}; a running `fastxtr agent` is one): " +
                "there is one writer per region. Stop it first, or change the map-cache through it");
        }
        MapCacheWriter? writer = null;
        try
        {
            writer = new MapCacheWriter(MapCache, () =>
            {
                Volatile.Write(ref Header.EntryCount, writer!.Count);
                Interlocked.Increment(ref Header.Generation);
            }, new WriterLease(this, lease));
        }
        catch
        {
            lease.Dispose();
            throw;
        }
        Volatile.Write(ref Header.WriterPid, Environment.ProcessId);
        Volatile.Write(ref Header.EntryCount, writer.Count);
        return writer;
    }

    private sealed class PrivateLease(SharedRegion region) : IDisposable
    {
        public void Dispose() => Volatile.Write(ref region._privateLease, 0);
    }

    /// <summary>Clears the header's writer pid (when it is still ours) before the lease goes.</summary>
    private sealed class WriterLease(SharedRegion region, IDisposable inner) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 1) return;
            if (!region._disposed) Interlocked.CompareExchange(ref region.Header.WriterPid, 0, Environment.ProcessId);
            inner.Dispose();
        }
    }

    private volatile bool _disposed;

    public void Dispose()
    {
        _disposed = true;
        _mapping?.Dispose();
        if (_owned != null) System.Runtime.InteropServices.NativeMemory.AlignedFree(_owned);
    }
}
