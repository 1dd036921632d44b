using System.Runtime.Intrinsics.X86;
using FastXtr.Dataplane.Buffers;
using FastXtr.Dataplane.Encap;
using FastXtr.Dataplane.Workers;
using FastXtr.NativeInterop;
using FastXtr.SharedMemory;

namespace FastXtr.Dataplane.Ports;

/// <summary>
/// The EID side through AF_XDP (--mode af-xdp): this worker's XDP sockets on each instance's EID-facing interface, one
/// per receive queue it serves (queue q belongs to worker q mod workers, so every queue has a reader). The interface's XDP program sends only unicast IP to the socket (ARP, neighbour discovery, broadcasts
/// and the interface's own IPv4 traffic stay the kernel's), so every frame read here is a host's packet. Frames are
/// read from the UMEM and their chunks given back once the batch is copied; frames to send are written into UMEM
/// chunks and the kernel told once per batch. The hosts' MACs are learned from their frames, and a packet for a host
/// not heard from yet is handed to the kernel, which resolves it.
/// </summary>
public sealed unsafe class AfXdpPort : IEidPort
{
    private const int EthernetHeaderBytes = EthernetEidSide.HeaderBytes;
    /// <summary>Empty reads between two looks at the kernel's drop counts for the sockets.</summary>
    private const int StatisticsEvery = 4096;
    private readonly XdpSocket[][] _sockets;
    private readonly XdpSocket[] _allSockets;
    private readonly int[] _nextSocket;
    private readonly int[] _mtus;
    private readonly byte[][] _macs;
    private readonly NeighborTable[] _neighbors;
    private readonly WorkerCounters _counters;
    private readonly EthernetEidSide _ethernet;
    private readonly ulong[] _kernelDrops;
    private int _emptyReads;

    /// <param name="links">Each instance's interface, in the order of <paramref name="sockets"/>.</param>
    public AfXdpPort(IReadOnlyList<IReadOnlyList<XdpSocket>> sockets, IReadOnlyList<NetInterface> links, IReadOnlyList<NeighborTable> neighbors, WorkerCounters counters)
    {
        _sockets = sockets.Select(s => s.ToArray()).ToArray();
        _allSockets = _sockets.SelectMany(s => s).ToArray();
        _nextSocket = new int[_sockets.Length];
        _mtus = links.Select(l => l.Mtu).ToArray();
        _macs = links.Select(l => l.Mac).ToArray();
        _neighbors = neighbors.ToArray();
        _counters = counters;
        _ethernet = new EthernetEidSide(counters, links.Select(l => l.Name).ToArray());
        _kernelDrops = new ulong[_allSockets.Length];
    }

    public int InstanceCount => _sockets.Length;
    public bool HasVnetHeader => false;
    // The XDP program sees frames of at most one chunk: a veth drops its peer's GSO features while a program is
    // attached, and a NIC hands XDP single frames.
    public bool CarriesSuperFrames => false;
    public bool TakesSuperPackets => false;
    public int LinkHeaderBytes => EthernetHeaderBytes;
    public SuperFrameHandler? SuperFrame { get; set; }

    public IReadOnlyList<int> PollFds => _allSockets.Select(s => s.Fd).ToArray();

    public int Read(int instance, PacketBuffers buffers, Span<int> lengths, ref ulong bytes, out int superFrames)
    {
        superFrames = 0;
        var sockets = _sockets[instance];
        int n = 0;
        for (int q = 0, first = FirstQueue(instance); q < sockets.Length && n < lengths.Length; q++)
            n = ReadSocket(sockets[(first + q) % sockets.Length], _neighbors[instance], buffers, lengths, n, ref bytes);
        return Read(n);
    }

    /// <summary>The queue of the instance to read first: each in turn, so that none waits behind a busy one.</summary>
    private int FirstQueue(int instance)
    {
        int first = _nextSocket[instance];
        _nextSocket[instance] = first + 1 == _sockets[instance].Length ? 0 : first + 1;
        return first;
    }

    /// <summary>A read of <paramref name="n"/> frames done: after many empty ones, the kernel's drop counts are looked at.</summary>
    private int Read(int n)
    {
        if (n == 0 && ++_emptyReads >= StatisticsEvery)
        {
            _emptyReads = 0;
            CountKernelDrops();
        }
        return n;
    }

    /// <summary>
    /// Reads up to <paramref name="lengths"/>.Length packets of an instance where they lie in the UMEM: their IP
    /// headers' addresses in <paramref name="packets"/> (a chunk's frame sits behind the kernel's 256-byte headroom,
    /// room for the outer headers). Their chunks are the caller's from here: sent on in place, or given back to the
    /// UMEM (<see cref="XdpUmem.Give(byte*)"/>); frames not passed on (a host's frame the port learns from only, or
    /// too long) are given back here.
    /// </summary>
    public int ReadHeld(int instance, nint* packets, Span<int> lengths, ref ulong bytes)
    {
        var sockets = _sockets[instance];
        var neighbors = _neighbors[instance];
        int n = 0;
        for (int q = 0, first = FirstQueue(instance); q < sockets.Length && n < lengths.Length; q++)
        {
            var socket = sockets[(first + q) % sockets.Length];
            while (n < lengths.Length && socket.TryReceiveHeld(out byte* frame, out int length))
            {
                if (!_ethernet.TryTakeIp(frame, length, neighbors, out byte* ip, out int ipLength)) { socket.Umem.Give(frame); continue; }
                if (ipLength > PacketBuffers.MaxPacketBytes) { _counters.Add(Counter.DropTooBig); socket.Umem.Give(frame); continue; }
                _ethernet.CompleteIfPartial(new Span<byte>(ip, ipLength));
                // The outer headers go into the chunk's headroom, a cache line in front of the frame that the kernel
                // did not write (the frame starts on a line boundary): fetched now for the whole batch, it is in the
                // cache by the time the ITR writes there, instead of a miss on every packet.
                if (Sse.IsSupported) Sse.Prefetch0(ip - Encapsulator.OuterBytes6 - EthernetHeaderBytes);
                packets[n] = (nint)ip;
                lengths[n++] = ipLength;
                bytes += (ulong)ipLength;
            }
            socket.ReleaseReceived();
        }
        return Read(n);
    }

    /// <summary>Tops the fill rings of an instance's sockets up from the UMEM (after a batch gave its chunks back).</summary>
    public void Refill(int instance)
    {
        foreach (var socket in _sockets[instance]) socket.Refill();
    }

    /// <summary>
    /// The UMEM every socket of the port shares with <paramref name="others"/> (the worker's underlay sockets), or
    /// null when they do not all share one: then frames are copied between sockets.
    /// </summary>
    public XdpUmem? SharedUmem(IReadOnlyList<XdpSocket> others)
    {
        var umem = _allSockets[0].Umem;
        return _allSockets.Concat(others).All(s => s.Umem == umem) ? umem : null;
    }

    private int ReadSocket(XdpSocket socket, NeighborTable neighbors, PacketBuffers buffers, Span<int> lengths, int n, ref ulong bytes)
    {
        while (n < lengths.Length && socket.TryReceive(out byte* frame, out int length))
        {
            if (!_ethernet.TryTakeIp(frame, length, neighbors, out byte* ip, out int ipLength)) continue;
            if (ipLength > buffers.PacketBytes) { _counters.Add(Counter.DropTooBig); continue; }
            Buffer.MemoryCopy(ip, buffers.Data(n), buffers.PacketBytes, ipLength);
            _ethernet.CompleteIfPartial(new Span<byte>(buffers.Data(n), ipLength));
            lengths[n++] = ipLength;
            bytes += (ulong)ipLength;
        }
        socket.ReleaseReceived();
        return n;
    }

    /// <summary>
    /// Frames the kernel could not give the sockets (RX ring full, no chunk in the fill ring), from their
    /// XDP_STATISTICS, added to drop-xsk-ring as they grow.
    /// </summary>
    private void CountKernelDrops()
    {
        for (int k = 0; k < _allSockets.Length; k++)
        {
            var s = _allSockets[k].Statistics();
            ulong total = s.RxDropped + s.RxRingFull + s.RxFillRingEmpty;
            if (total > _kernelDrops[k]) _counters.Add(Counter.DropXskRing, total - _kernelDrops[k]);
            _kernelDrops[k] = total;
        }
    }

    public void FinishBatch(int instance, long now) { }

    /// <summary>
    /// One packet framed for the EID host's MAC into a UMEM chunk, sent with the batch (<see cref="Flush"/>); for a
    /// host not heard from yet, routed by the kernel at once.
    /// </summary>
    public bool Write(int instance, byte* packet, int length)
    {
        // Any of the instance's sockets sends on its interface; the first does.
        var socket = _sockets[instance][0];
        if (!_ethernet.TryDestination(packet, length, out UInt128 destination, out bool ipv6)) return false;
        if (!_neighbors[instance].TryGet(destination, ipv6, out ulong mac)) return _ethernet.RouteThroughKernel(instance, packet, length, ipv6, destination);
        if (length > _mtus[instance] || length + EthernetHeaderBytes > socket.MaxFrameBytes) { _counters.Add(Counter.DropTooBig); return false; }
        byte* chunk = socket.TxChunk();
        if (chunk == null)
        {
            // Every chunk is in flight: have the kernel send what is queued, then try once more.
            Kick(socket);
            chunk = socket.TxChunk();
            if (chunk == null) { _counters.Add(Counter.DropTxRingFull); return false; }
        }
        EthernetEidSide.WriteHeader(chunk, mac, _macs[instance], ipv6);
        Buffer.MemoryCopy(packet, chunk + EthernetHeaderBytes, socket.MaxFrameBytes - EthernetHeaderBytes, length);
        if (!socket.Send(length + EthernetHeaderBytes)) { _counters.Add(Counter.DropTxRingFull); return false; }
        return true;
    }

    /// <summary>
    /// One IP packet that lies in a held chunk of the port's UMEM (a decapsulated frame; the worker forwards in place
    /// only when every socket shares it, <see cref="SharedUmem"/>) sent where it lies: the host's Ethernet
    /// header written in front of it (over the outer headers) and its address put on the instance's TX ring, the chunk
    /// passing with it (<paramref name="consumed"/>). A host not heard from yet is routed by the kernel from a copy; a
    /// packet over the MTU is a counted drop; in both the chunk stays the caller's. Returns whether the packet went.
    /// </summary>
    public bool WriteHeld(int instance, byte* packet, int length, out bool consumed)
    {
        consumed = false;
        var socket = _sockets[instance][0];
        if (!_ethernet.TryDestination(packet, length, out UInt128 destination, out bool ipv6)) return false;
        if (!_neighbors[instance].TryGet(destination, ipv6, out ulong mac)) return _ethernet.RouteThroughKernel(instance, packet, length, ipv6, destination);
        if (length > _mtus[instance]) { _counters.Add(Counter.DropTooBig); return false; }
        // A decapsulated packet sits behind the outer headers it came with: its Ethernet header goes over them.
        byte* frame = packet - EthernetHeaderBytes;
        EthernetEidSide.WriteHeader(frame, mac, _macs[instance], ipv6);
        if (!socket.SendFrame(frame, length + EthernetHeaderBytes))
        {
            Kick(socket);
            if (!socket.SendFrame(frame, length + EthernetHeaderBytes)) { _counters.Add(Counter.DropTxRingFull); return false; }
        }
        consumed = true;
        _counters.Add(Counter.XskSentInPlace);
        return true;
    }

    public bool WriteSuper(int instance, IoVec* pieces, int count, int totalLength) => false;

    public void Flush()
    {
        foreach (var socket in _sockets) Kick(socket[0]);
    }

    private void Kick(XdpSocket socket)
    {
        if (socket.Kick() != 0) _counters.Add(Counter.DropSendFailed);
    }

    public void Dispose()
    {
        foreach (var socket in _allSockets) socket.Dispose();
        _ethernet.Dispose();
    }
}
