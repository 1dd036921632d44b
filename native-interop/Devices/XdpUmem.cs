namespace FastXtr.NativeInterop;

/// <summary>
/// The packet memory of AF_XDP sockets (a UMEM): one region of equal chunks that every socket bound to it receives
/// into and sends from. A worker's sockets share one (XDP_SHARED_UMEM; the first socket registers it, the others bind
/// to it with fill and completion rings of their own, as kernels since 5.10 allow across queues and devices), so a
/// frame received on one interface is rewritten where it lies and sent on another by its address: no copy. The chunks
/// not lent to a fill ring nor in flight in a TX ring are in the free pool here. One thread (the worker) uses it.
/// </summary>
public sealed unsafe class XdpUmem : IDisposable
{
    private readonly ulong[] _free;
    private int _freeCount;

    public byte* Base { get; }
    public nuint Bytes { get; }
    public int ChunkBytes { get; }
    public int Chunks { get; }
    /// <summary>The socket the UMEM is registered on (the others bind to it), -1 before the first.</summary>
    public int OwnerFd { get; internal set; } = -1;
    /// <summary>The owner bound in zero-copy mode; the sockets that share it use the same mode.</summary>
    public bool ZeroCopy { get; internal set; }
    private readonly List<XdpSocket> _sockets = [];

    internal void Attach(XdpSocket socket) => _sockets.Add(socket);

    /// <summary>The chunks every socket of the UMEM has sent come back to the pool (a fill ring to stock, the pool short).</summary>
    internal void ReclaimAll()
    {
        foreach (var socket in _sockets) socket.Reclaim();
    }

    /// <summary><paramref name="chunks"/> chunks of <paramref name="chunkBytes"/> (2048 or 4096), all free.</summary>
    public XdpUmem(int chunkBytes, int chunks, string label)
    {
        if (chunkBytes is not (2048 or 4096)) throw new ArgumentOutOfRangeException(nameof(chunkBytes), chunkBytes, "a UMEM chunk is 2048 or 4096 bytes");
        if (chunks < 1) throw new ArgumentOutOfRangeException(nameof(chunks), chunks, "a UMEM has at least one chunk");
        ChunkBytes = chunkBytes;
        Chunks = chunks;
        Bytes = (nuint)chunks * (nuint)chunkBytes;
        byte* region = (byte*)Libc.mmap(null, Bytes, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS | Linux.MAP_POPULATE, -1, 0);
        if (region == (byte*)-1) throw new NativeException($"UMEM of {Bytes} bytes for {label}", Libc.LastError);
        Base = region;
        _free = new ulong[chunks];
        for (int i = 0; i < chunks; i++) _free[i] = (ulong)(chunks - 1 - i) * (ulong)chunkBytes;
        _freeCount = chunks;
    }

    /// <summary>Chunks in the free pool.</summary>
    public int FreeCount => _freeCount;

    /// <summary>A free chunk (its offset in the UMEM), false when every chunk is lent or in flight.</summary>
    public bool TryTake(out ulong chunk)
    {
        if (_freeCount == 0) { chunk = 0; return false; }
        chunk = _free[--_freeCount];
        return true;
    }

    /// <summary>The free chunk <see cref="TryTake"/> would give, without taking it; false when there is none.</summary>
    public bool TryPeek(out ulong chunk)
    {
        if (_freeCount == 0) { chunk = 0; return false; }
        chunk = _free[_freeCount - 1];
        return true;
    }

    /// <summary>Back to the free pool: the chunk holding <paramref name="address"/> (any offset into it).</summary>
    public void Give(ulong address)
    {
        if (_freeCount == _free.Length) throw new InvalidOperationException("UMEM chunk given back twice");
        _free[_freeCount++] = ChunkOf(address);
    }

    /// <summary>Back to the free pool: the chunk that <paramref name="at"/> points into.</summary>
    public void Give(byte* at) => Give(AddressOf(at));

    public ulong ChunkOf(ulong address) => address & ~(ulong)(ChunkBytes - 1);

    /// <summary><paramref name="at"/> lies in this UMEM.</summary>
    public bool Contains(byte* at) => at >= Base && at < Base + Bytes;

    public ulong AddressOf(byte* at) => (ulong)(at - Base);

    public byte* At(ulong address) => Base + address;

    private bool _disposed;

    /// <summary>Unmaps the region; the sockets bound to it are closed first (the kernel keeps its pages pinned until the last is).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Libc.munmap(Base, Bytes);
    }
}
