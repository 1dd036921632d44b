using System.Runtime.InteropServices;

namespace FastXtr.NativeInterop;

/// <summary>
/// One AF_XDP socket bound to one receive queue of an interface, with a UMEM of its own (--mode af-xdp): the kernel
/// writes received frames into UMEM chunks we lent it through the fill ring and tells us where through the RX ring;
/// we put frames to send into chunks of our own and describe them in the TX ring, and the kernel gives the chunks back
/// through the completion ring. The four rings are shared memory indexed by free-running producer and consumer
/// counters, so nothing here makes a system call per frame: receiving needs none (the kernel's receive path fills
/// the RX ring), sending one per batch (<see cref="Kick"/>), and only where the kernel asks (XDP_USE_NEED_WAKEUP).
/// Chunks [0, RxChunks) circulate between the fill and RX rings, the rest between a free list, the TX ring and the
/// completion ring. Zero-copy binding is tried first and copy mode used where the driver does not offer it (veth).
/// </summary>
public sealed unsafe class XdpSocket : IDisposable
{
    private readonly int _fd;
    private readonly byte* _umem;
    private readonly nuint _umemBytes;
    private readonly Ring _rx, _tx, _fill, _completion;
    private readonly ulong[] _freeTx;
    private int _freeCount;
    private uint _rxCached, _rxAvailable;
    private uint _txProduced, _txFree;
    private uint _fillProduced;

    public int Fd => _fd;
    public string Interface { get; }
    public int Queue { get; }
    public int ChunkBytes { get; }
    public int RxChunks { get; }
    public int TxChunks { get; }
    public bool ZeroCopy { get; }
    /// <summary>The longest frame a chunk holds: the chunk less the kernel's receive headroom.</summary>
    public int MaxFrameBytes => ChunkBytes - Linux.XDP_PACKET_HEADROOM;

    /// <summary>A frame waits in the TX ring, told to the kernel on the next <see cref="Kick"/>.</summary>
    public bool TxPending { get; private set; }

    private struct Ring
    {
        public uint* Producer;
        public uint* Consumer;
        public uint* Flags;
        public byte* Descriptors;
        public uint Mask;
        public uint Size;
        public byte* Map;
        public nuint MapBytes;
    }

    private XdpSocket(string name, int queue, int fd, byte* umem, nuint umemBytes, int chunkBytes, int rxChunks, int txChunks, Ring rx, Ring tx, Ring fill, Ring completion, bool zeroCopy)
    {
        Interface = name;
        Queue = queue;
        _fd = fd;
        _umem = umem;
        _umemBytes = umemBytes;
        ChunkBytes = chunkBytes;
        RxChunks = rxChunks;
        TxChunks = txChunks;
        _rx = rx;
        _tx = tx;
        _fill = fill;
        _completion = completion;
        ZeroCopy = zeroCopy;
        _freeTx = new ulong[txChunks];
        for (int i = 0; i < txChunks; i++) _freeTx[i] = (ulong)(rxChunks + i) * (ulong)chunkBytes;
        _freeCount = txChunks;
        // Every receive chunk is lent to the kernel at once.
        for (uint i = 0; i < (uint)rxChunks; i++) ((ulong*)_fill.Descriptors)[i & _fill.Mask] = (ulong)i * (ulong)chunkBytes;
        _fillProduced = (uint)rxChunks;
        Volatile.Write(ref *_fill.Producer, _fillProduced);
    }

    /// <summary>
    /// A socket on queue <paramref name="queue"/> of interface <paramref name="ifindex"/>, with
    /// <paramref name="rxChunks"/> and <paramref name="txChunks"/> chunks of <paramref name="chunkBytes"/> (2048 or
    /// 4096) rounded up to powers of two. Errors name the interface, the queue and the cause.
    /// </summary>
    public static XdpSocket Open(string name, int ifindex, int queue, int chunkBytes, int rxChunks, int txChunks)
    {
        rxChunks = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)rxChunks);
        txChunks = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)txChunks);
        int fd = Libc.socket(Linux.AF_XDP, Linux.SOCK_RAW | Linux.SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            int e = Libc.LastError;
            throw e is Linux.EPERM or Linux.EACCES
                ? new NativeException($"AF_XDP socket for {name}: needs CAP_NET_RAW (run as root)", e)
                : new NativeException($"AF_XDP socket for {name} (kernel without CONFIG_XDP_SOCKETS?)", e);
        }
        nuint umemBytes = (nuint)(rxChunks + txChunks) * (nuint)chunkBytes;
        byte* umem = null;
        Ring rx = default, tx = default, fill = default, completion = default;
        try
        {
            umem = (byte*)Libc.mmap(null, umemBytes, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS | Linux.MAP_POPULATE, -1, 0);
            if (umem == (byte*)-1)
            {
                umem = null;
                throw new NativeException($"UMEM of {umemBytes} bytes for {name} queue {queue}", Libc.LastError);
            }
            var reg = new XdpUmemReg { Address = (ulong)umem, Length = umemBytes, ChunkSize = (uint)chunkBytes };
            if (Libc.setsockopt(fd, Linux.SOL_XDP, Linux.XDP_UMEM_REG, &reg, (uint)sizeof(XdpUmemReg)) != 0)
            {
                int e = Libc.LastError;
                throw e is Linux.EPERM or Linux.ENOBUFS
                    ? new NativeException($"registering the UMEM ({umemBytes} bytes) for {name} queue {queue}: locked memory over RLIMIT_MEMLOCK (run as root, or raise the limit)", e)
                    : new NativeException($"registering the UMEM ({umemBytes} bytes) for {name} queue {queue}", e);
            }
            SetRingSize(fd, Linux.XDP_UMEM_FILL_RING, rxChunks, name);
            SetRingSize(fd, Linux.XDP_UMEM_COMPLETION_RING, txChunks, name);
            SetRingSize(fd, Linux.XDP_RX_RING, rxChunks, name);
            SetRingSize(fd, Linux.XDP_TX_RING, txChunks, name);
            XdpMmapOffsets off;
            uint optlen = (uint)sizeof(XdpMmapOffsets);
            if (Libc.getsockopt(fd, Linux.SOL_XDP, Linux.XDP_MMAP_OFFSETS, &off, &optlen) != 0)
                throw new NativeException($"XDP_MMAP_OFFSETS for {name}", Libc.LastError);
            rx = MapRing(fd, off.Rx, Linux.XDP_PGOFF_RX_RING, (uint)rxChunks, sizeof(XdpDesc), name);
            tx = MapRing(fd, off.Tx, Linux.XDP_PGOFF_TX_RING, (uint)txChunks, sizeof(XdpDesc), name);
            fill = MapRing(fd, off.Fill, Linux.XDP_UMEM_PGOFF_FILL_RING, (uint)rxChunks, sizeof(ulong), name);
            completion = MapRing(fd, off.Completion, Linux.XDP_UMEM_PGOFF_COMPLETION_RING, (uint)txChunks, sizeof(ulong), name);

            bool zeroCopy = Bind(fd, ifindex, queue, (ushort)(Linux.XDP_ZEROCOPY | Linux.XDP_USE_NEED_WAKEUP)) == 0;
            if (!zeroCopy && Bind(fd, ifindex, queue, (ushort)(Linux.XDP_COPY | Linux.XDP_USE_NEED_WAKEUP)) != 0)
            {
                int e = Libc.LastError;
                throw e == Linux.EINVAL
                    ? new NativeException($"binding an AF_XDP socket to queue {queue} of {name}: the interface has no such receive queue (fewer queues than --workers?)", e)
                    : e == Linux.EBUSY
                        ? new NativeException($"binding an AF_XDP socket to queue {queue} of {name}: another AF_XDP socket holds the queue", e)
                        : new NativeException($"binding an AF_XDP socket to queue {queue} of {name}", e);
            }
            return new XdpSocket(name, queue, fd, umem, umemBytes, chunkBytes, rxChunks, txChunks, rx, tx, fill, completion, zeroCopy);
        }
        catch
        {
            foreach (var r in new[] { rx, tx, fill, completion })
                if (r.Map != null) Libc.munmap(r.Map, r.MapBytes);
            if (umem != null) Libc.munmap(umem, umemBytes);
            Libc.close(fd);
            throw;
        }
    }

    private static int Bind(int fd, int ifindex, int queue, ushort flags)
    {
        var sxdp = new SockAddrXdp { Family = Linux.AF_XDP, Flags = flags, InterfaceIndex = ifindex, QueueId = (uint)queue };
        return Libc.bind(fd, &sxdp, (uint)sizeof(SockAddrXdp));
    }

    private static void SetRingSize(int fd, int option, int entries, string name)
    {
        if (Libc.setsockopt(fd, Linux.SOL_XDP, option, &entries, sizeof(int)) != 0)
            throw new NativeException($"AF_XDP ring option {option} ({entries} entries) for {name}", Libc.LastError);
    }

    private static Ring MapRing(int fd, XdpRingOffset off, long pgoff, uint entries, int entryBytes, string name)
    {
        nuint bytes = (nuint)(off.Descriptors + (ulong)entries * (ulong)entryBytes);
        byte* map = (byte*)Libc.mmap(null, bytes, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_SHARED | Linux.MAP_POPULATE, fd, pgoff);
        if (map == (byte*)-1) throw new NativeException($"mapping an AF_XDP ring of {name}", Libc.LastError);
        return new Ring
        {
            Producer = (uint*)(map + off.Producer),
            Consumer = (uint*)(map + off.Consumer),
            Flags = (uint*)(map + off.Flags),
            Descriptors = map + off.Descriptors,
            Mask = entries - 1,
            Size = entries,
            Map = map,
            MapBytes = bytes,
        };
    }

    /// <summary>
    /// The next received frame: its start in the UMEM and its length; false when the RX ring is empty. The frame is
    /// ours until <see cref="ReleaseReceived"/> gives the chunks read so far back to the kernel.
    /// </summary>
    public bool TryReceive(out byte* frame, out int length)
    {
        if (_rxAvailable == 0)
        {
            _rxAvailable = Volatile.Read(ref *_rx.Producer) - _rxCached;
            if (_rxAvailable == 0) { frame = null; length = 0; return false; }
        }
        var d = (XdpDesc*)_rx.Descriptors + (_rxCached & _rx.Mask);
        frame = _umem + d->Address;
        length = (int)d->Length;
        ulong chunk = d->Address - d->Address % (ulong)ChunkBytes;
        _rxCached++;
        _rxAvailable--;
        // The fill ring has room for every receive chunk, so the chunk goes straight back on it; the kernel sees it
        // only when ReleaseReceived publishes the producer.
        ((ulong*)_fill.Descriptors)[_fillProduced & _fill.Mask] = chunk;
        _fillProduced++;
        return true;
    }

    /// <summary>The frames read are done with: the RX ring's slots and their chunks go back to the kernel.</summary>
    public void ReleaseReceived()
    {
        Volatile.Write(ref *_rx.Consumer, _rxCached);
        Volatile.Write(ref *_fill.Producer, _fillProduced);
        // Zero-copy drivers ask to be woken when their fill ring ran dry; copy mode never does.
        if ((Volatile.Read(ref *_fill.Flags) & Linux.XDP_RING_NEED_WAKEUP) != 0)
            Libc.recvfrom(_fd, null, 0, Linux.MSG_DONTWAIT, null, null);
    }

    /// <summary>
    /// A chunk to write a frame into (<see cref="MaxFrameBytes"/> at most), or null when every transmit chunk is in
    /// flight; <see cref="Send"/> queues it.
    /// </summary>
    public byte* TxChunk()
    {
        if (_freeCount == 0)
        {
            Reclaim();
            if (_freeCount == 0) return null;
        }
        return _umem + _freeTx[_freeCount - 1];
    }

    /// <summary>Queues the frame written into the chunk <see cref="TxChunk"/> returned; false when the TX ring is full.</summary>
    public bool Send(int length)
    {
        if (_txFree == 0)
        {
            _txFree = _tx.Size - (_txProduced - Volatile.Read(ref *_tx.Consumer));
            if (_txFree == 0) return false;
        }
        var d = (XdpDesc*)_tx.Descriptors + (_txProduced & _tx.Mask);
        d->Address = _freeTx[--_freeCount];
        d->Length = (uint)length;
        d->Options = 0;
        _txProduced++;
        _txFree--;
        TxPending = true;
        return true;
    }

    /// <summary>
    /// Publishes the queued frames and has the kernel send them: a sendto only where it asks (copy mode always
    /// does), repeated while frames remain (copy mode sends at most 32 per wake-up, and a frame left in the ring would
    /// wait for the next batch, however late); returns 0, or the errno of a failed wake-up other than "busy, try
    /// later".
    /// </summary>
    public int Kick()
    {
        if (!TxPending) return 0;
        TxPending = false;
        Volatile.Write(ref *_tx.Producer, _txProduced);
        int error = 0;
        for (int wakeups = 0; wakeups < MaxWakeupsPerKick && Volatile.Read(ref *_tx.Consumer) != _txProduced; wakeups++)
        {
            if ((Volatile.Read(ref *_tx.Flags) & Linux.XDP_RING_NEED_WAKEUP) == 0) break; // the driver sends on its own
            if (Libc.sendto(_fd, null, 0, Linux.MSG_DONTWAIT, null, 0) >= 0) continue;
            int e = Libc.LastError;
            if (e is not (Linux.EAGAIN or Linux.EBUSY or Linux.ENOBUFS)) { error = e == Linux.ENETDOWN ? 0 : e; break; }
            Reclaim(); // the completion ring was full: make room and wake it again
        }
        Reclaim();
        // Frames the kernel has not taken yet go with the next kick.
        TxPending = Volatile.Read(ref *_tx.Consumer) != _txProduced && (Volatile.Read(ref *_tx.Flags) & Linux.XDP_RING_NEED_WAKEUP) != 0;
        return error;
    }

    /// <summary>Enough wake-ups for a TX ring of 4,096 frames at 32 per wake-up, and a bound if the kernel stops taking them.</summary>
    private const int MaxWakeupsPerKick = 128;

    /// <summary>Chunks the kernel has sent come back to the free list.</summary>
    private void Reclaim()
    {
        uint consumer = *_completion.Consumer;
        uint done = Volatile.Read(ref *_completion.Producer) - consumer;
        for (uint i = 0; i < done; i++) _freeTx[_freeCount++] = ((ulong*)_completion.Descriptors)[(consumer + i) & _completion.Mask];
        if (done > 0) Volatile.Write(ref *_completion.Consumer, consumer + done);
    }

    /// <summary>The kernel's counts for this socket (drops for a full RX ring or an empty fill ring, bad descriptors).</summary>
    public XdpStatistics Statistics()
    {
        XdpStatistics s = default;
        uint length = (uint)sizeof(XdpStatistics);
        Libc.getsockopt(_fd, Linux.SOL_XDP, Linux.XDP_STATISTICS, &s, &length);
        return s;
    }

    public void Dispose()
    {
        Libc.close(_fd);
        foreach (var r in new[] { _rx, _tx, _fill, _completion }) Libc.munmap(r.Map, r.MapBytes);
        Libc.munmap(_umem, _umemBytes);
    }
}
