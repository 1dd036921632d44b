using System.Runtime.InteropServices;

namespace FastXtr.NativeInterop;

/// <summary>
/// One AF_XDP socket bound to one receive queue of an interface (--mode af-xdp), on a UMEM (<see cref="XdpUmem"/>) it
/// may share with the other sockets of its worker: the kernel writes received frames into chunks we lent it through
/// the fill ring and tells us where through the RX ring; we describe frames to send in the TX ring (a frame we wrote
/// into a free chunk, or one received on any socket of the UMEM and rewritten where it lies), and the kernel gives
/// their chunks back through the completion ring, to the UMEM's free pool. The four rings are shared memory indexed by
/// free-running producer and consumer counters, so nothing here makes a system call per frame: receiving needs none
/// (the kernel's receive path fills the RX ring), sending one per batch (<see cref="Kick"/>), and only where the kernel
/// asks (XDP_USE_NEED_WAKEUP). The fill ring is kept stocked from the free pool with <see cref="RxChunks"/> chunks.
/// Zero-copy binding is tried first and copy mode used where the driver does not offer it (veth).
/// </summary>
public sealed unsafe class XdpSocket : IDisposable
{
    private readonly int _fd;
    private readonly XdpUmem _umem;
    private readonly bool _ownsUmem;
    private readonly Ring _rx, _tx, _fill, _completion;
    private uint _rxCached, _rxAvailable;
    private uint _txProduced, _txFree;
    private uint _fillProduced;
    // Chunks lent to the kernel for receiving: in the fill ring, or in the RX ring not yet read.
    private int _lent;

    public int Fd => _fd;
    public string Interface { get; }
    public int Queue { get; }
    public int ChunkBytes => _umem.ChunkBytes;
    public int RxChunks { get; }
    public int TxChunks { get; }
    public bool ZeroCopy { get; }
    /// <summary>The UMEM the socket receives into and sends from (shared with the worker's other sockets, or its own).</summary>
    public XdpUmem Umem => _umem;
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

    private XdpSocket(string name, int queue, int fd, XdpUmem umem, bool ownsUmem, int rxChunks, int txChunks, Ring rx, Ring tx, Ring fill, Ring completion, bool zeroCopy)
    {
        Interface = name;
        Queue = queue;
        _fd = fd;
        _umem = umem;
        _ownsUmem = ownsUmem;
        RxChunks = rxChunks;
        TxChunks = txChunks;
        _rx = rx;
        _tx = tx;
        _fill = fill;
        _completion = completion;
        ZeroCopy = zeroCopy;
        // Every receive chunk is lent to the kernel at once.
        Refill();
    }

    /// <summary>The chunks a socket needs of its UMEM: its fill ring's and its TX ring's, each rounded up to a power of two.</summary>
    public static int ChunksFor(int rxChunks, int txChunks) =>
        (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)rxChunks) + (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)txChunks);

    /// <summary>
    /// A socket with a UMEM of its own: on queue <paramref name="queue"/> of interface <paramref name="ifindex"/>, with
    /// <paramref name="rxChunks"/> and <paramref name="txChunks"/> chunks of <paramref name="chunkBytes"/> (2048 or
    /// 4096) rounded up to powers of two. Errors name the interface, the queue and the cause.
    /// </summary>
    public static XdpSocket Open(string name, int ifindex, int queue, int chunkBytes, int rxChunks, int txChunks)
    {
        var umem = new XdpUmem(chunkBytes, ChunksFor(rxChunks, txChunks), $"{name} queue {queue}");
        try { return Open(name, ifindex, queue, umem, rxChunks, txChunks, ownsUmem: true, out _)!; }
        catch { umem.Dispose(); throw; }
    }

    /// <summary>
    /// A socket on <paramref name="umem"/>: it registers the UMEM if no socket has yet, else binds to it
    /// (XDP_SHARED_UMEM) with fill and completion rings of its own. Null, with the kernel's errno in
    /// <paramref name="refused"/> and nothing left open, where the kernel or the driver cannot share the UMEM across
    /// these devices (EINVAL, EOPNOTSUPP: a NIC in zero-copy mode and a veth): the caller may open the socket with a
    /// UMEM of its own. The UMEM must have <see cref="ChunksFor"/> free chunks for the socket.
    /// </summary>
    public static XdpSocket? OpenShared(string name, int ifindex, int queue, XdpUmem umem, int rxChunks, int txChunks, out int refused) =>
        Open(name, ifindex, queue, umem, rxChunks, txChunks, ownsUmem: false, out refused);

    private static XdpSocket? Open(string name, int ifindex, int queue, XdpUmem umem, int rxChunks, int txChunks, bool ownsUmem, out int refused)
    {
        refused = 0;
        rxChunks = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)rxChunks);
        txChunks = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)txChunks);
        if (umem.FreeCount < rxChunks)
            throw new InvalidOperationException($"the UMEM for {name} queue {queue} has {umem.FreeCount} free chunks, fewer than the {rxChunks} of its fill ring");
        int fd = Libc.socket(Linux.AF_XDP, Linux.SOCK_RAW | Linux.SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            int e = Libc.LastError;
            throw e is Linux.EPERM or Linux.EACCES
                ? new NativeException($"AF_XDP socket for {name}: needs CAP_NET_RAW (run as root)", e)
                : new NativeException($"AF_XDP socket for {name} (kernel without CONFIG_XDP_SOCKETS?)", e);
        }
        bool shared = umem.OwnerFd >= 0;
        Ring rx = default, tx = default, fill = default, completion = default;
        try
        {
            if (!shared)
            {
                var reg = new XdpUmemReg { Address = (ulong)umem.Base, Length = umem.Bytes, ChunkSize = (uint)umem.ChunkBytes };
                if (Libc.setsockopt(fd, Linux.SOL_XDP, Linux.XDP_UMEM_REG, &reg, (uint)sizeof(XdpUmemReg)) != 0)
                {
                    int e = Libc.LastError;
                    throw e is Linux.EPERM or Linux.ENOBUFS
                        ? new NativeException($"registering the UMEM ({umem.Bytes} bytes) for {name} queue {queue}: locked memory over RLIMIT_MEMLOCK (run as root, or raise the limit)", e)
                        : new NativeException($"registering the UMEM ({umem.Bytes} bytes) for {name} queue {queue}", e);
                }
            }
            // A socket sharing a UMEM on another queue or device has fill and completion rings of its own (set before bind).
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

            bool zeroCopy;
            if (shared)
            {
                // The mode (zero-copy or copy, need-wakeup) is the owner's; no other flag may be given.
                if (Bind(fd, ifindex, queue, Linux.XDP_SHARED_UMEM, (uint)umem.OwnerFd) != 0)
                {
                    int e = Libc.LastError;
                    if (e is not (Linux.EINVAL or Linux.EOPNOTSUPP)) throw BindError(e, name, queue);
                    foreach (var r in new[] { rx, tx, fill, completion }) Libc.munmap(r.Map, r.MapBytes);
                    Libc.close(fd);
                    refused = e;
                    return null;
                }
                zeroCopy = umem.ZeroCopy;
            }
            else
            {
                zeroCopy = Bind(fd, ifindex, queue, (ushort)(Linux.XDP_ZEROCOPY | Linux.XDP_USE_NEED_WAKEUP), 0) == 0;
                if (!zeroCopy && Bind(fd, ifindex, queue, (ushort)(Linux.XDP_COPY | Linux.XDP_USE_NEED_WAKEUP), 0) != 0)
                    throw BindError(Libc.LastError, name, queue);
                umem.OwnerFd = fd;
                umem.ZeroCopy = zeroCopy;
            }
            var socket = new XdpSocket(name, queue, fd, umem, ownsUmem, rxChunks, txChunks, rx, tx, fill, completion, zeroCopy);
            umem.Attach(socket);
            return socket;
        }
        catch
        {
            foreach (var r in new[] { rx, tx, fill, completion })
                if (r.Map != null) Libc.munmap(r.Map, r.MapBytes);
            Libc.close(fd);
            throw;
        }
    }

    private static NativeException BindError(int e, string name, int queue) => e == Linux.EINVAL
        ? new NativeException($"binding an AF_XDP socket to queue {queue} of {name}: the interface has no such receive queue (fewer queues than --workers?)", e)
        : e == Linux.EBUSY
            ? new NativeException($"binding an AF_XDP socket to queue {queue} of {name}: another AF_XDP socket holds the queue", e)
            : new NativeException($"binding an AF_XDP socket to queue {queue} of {name}", e);

    private static int Bind(int fd, int ifindex, int queue, ushort flags, uint sharedUmemFd)
    {
        var sxdp = new SockAddrXdp { Family = Linux.AF_XDP, Flags = flags, InterfaceIndex = ifindex, QueueId = (uint)queue, SharedUmemFd = sharedUmemFd };
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
    /// read in place and its chunk goes straight back to the fill ring: the frame stays valid until
    /// <see cref="ReleaseReceived"/> hands the ring to the kernel.
    /// </summary>
    public bool TryReceive(out byte* frame, out int length)
    {
        if (!TryNext(out ulong address, out length)) { frame = null; return false; }
        frame = _umem.At(address);
        // The fill ring has room for every receive chunk, so the chunk goes straight back on it; the kernel sees it
        // only when ReleaseReceived publishes the producer.
        ((ulong*)_fill.Descriptors)[_fillProduced & _fill.Mask] = _umem.ChunkOf(address);
        _fillProduced++;
        return true;
    }

    /// <summary>
    /// The next received frame, its chunk now the caller's: it is sent where it lies (<see cref="SendFrame"/> on any
    /// socket of the UMEM) or given back to the UMEM's pool (<see cref="XdpUmem.Give(byte*)"/>); the fill ring is
    /// stocked again from the pool by <see cref="Refill"/>.
    /// </summary>
    public bool TryReceiveHeld(out byte* frame, out int length)
    {
        if (!TryNext(out ulong address, out length)) { frame = null; return false; }
        frame = _umem.At(address);
        _lent--;
        return true;
    }

    private bool TryNext(out ulong address, out int length)
    {
        if (_rxAvailable == 0)
        {
            _rxAvailable = Volatile.Read(ref *_rx.Producer) - _rxCached;
            if (_rxAvailable == 0) { address = 0; length = 0; return false; }
        }
        var d = (XdpDesc*)_rx.Descriptors + (_rxCached & _rx.Mask);
        address = d->Address;
        length = (int)d->Length;
        _rxCached++;
        _rxAvailable--;
        return true;
    }

    /// <summary>
    /// The frames read are done with: the RX ring's slots go back to the kernel, and the fill ring with them: the
    /// chunks of the frames read in place, and free chunks for those held (<see cref="Refill"/>).
    /// </summary>
    public void ReleaseReceived()
    {
        Volatile.Write(ref *_rx.Consumer, _rxCached);
        Refill();
    }

    /// <summary>
    /// Tops the fill ring up to <see cref="RxChunks"/> lent chunks from the UMEM's free pool (after chunks that were
    /// held and sent on, or while the pool was empty) and publishes it; wakes the driver where it asks.
    /// </summary>
    public void Refill()
    {
        // Frames this worker sent on another socket of the UMEM may have left: their chunks are the ones to lend.
        if (_umem.FreeCount < RxChunks - _lent) _umem.ReclaimAll();
        while (_lent < RxChunks && _umem.TryTake(out ulong chunk))
        {
            ((ulong*)_fill.Descriptors)[_fillProduced & _fill.Mask] = chunk;
            _fillProduced++;
            _lent++;
        }
        Volatile.Write(ref *_fill.Producer, _fillProduced);
        // Zero-copy drivers ask to be woken when their fill ring ran dry; copy mode never does.
        if ((Volatile.Read(ref *_fill.Flags) & Linux.XDP_RING_NEED_WAKEUP) != 0)
            Libc.recvfrom(_fd, null, 0, Linux.MSG_DONTWAIT, null, null);
    }

    /// <summary>
    /// A free chunk of the UMEM to write a frame into, at the kernel's headroom (<see cref="MaxFrameBytes"/> at most),
    /// or null when every chunk is lent or in flight; <see cref="Send"/> queues it.
    /// </summary>
    public byte* TxChunk()
    {
        if (!_umem.TryPeek(out ulong chunk))
        {
            Reclaim();
            if (!_umem.TryPeek(out chunk)) return null;
        }
        return _umem.At(chunk);
    }

    /// <summary>Queues the frame written into the chunk <see cref="TxChunk"/> returned; false when the TX ring is full.</summary>
    public bool Send(int length)
    {
        if (!HasTxRoom()) return false;
        _umem.TryTake(out ulong chunk);
        Enqueue(chunk, length);
        return true;
    }

    /// <summary>
    /// Queues a frame that lies anywhere in the socket's UMEM (a received frame rewritten in place, its chunk held:
    /// <see cref="TryReceiveHeld"/>); the chunk returns to the pool once sent. False when the TX ring is full (the
    /// chunk is still the caller's).
    /// </summary>
    public bool SendFrame(byte* frame, int length)
    {
        if (!HasTxRoom()) return false;
        Enqueue(_umem.AddressOf(frame), length);
        return true;
    }

    private bool HasTxRoom()
    {
        if (_txFree == 0)
        {
            _txFree = _tx.Size - (_txProduced - Volatile.Read(ref *_tx.Consumer));
            if (_txFree == 0) return false;
        }
        return true;
    }

    private void Enqueue(ulong address, int length)
    {
        var d = (XdpDesc*)_tx.Descriptors + (_txProduced & _tx.Mask);
        d->Address = address;
        d->Length = (uint)length;
        d->Options = 0;
        _txProduced++;
        _txFree--;
        TxPending = true;
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

    /// <summary>Chunks the kernel has sent come back to the UMEM's free pool.</summary>
    public void Reclaim()
    {
        uint consumer = *_completion.Consumer;
        uint done = Volatile.Read(ref *_completion.Producer) - consumer;
        for (uint i = 0; i < done; i++) _umem.Give(((ulong*)_completion.Descriptors)[(consumer + i) & _completion.Mask]);
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
        if (_ownsUmem) _umem.Dispose();
    }
}
