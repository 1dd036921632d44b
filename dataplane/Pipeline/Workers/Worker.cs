using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastXtr.Dataplane.Buffers;
using FastXtr.Dataplane.Decap;
using FastXtr.Dataplane.Encap;
using FastXtr.Packets;
using FastXtr.Dataplane.Offload;
using FastXtr.Dataplane.Ports;
using FastXtr.SharedMemory;
using FastXtr.NativeInterop;

namespace FastXtr.Dataplane.Workers;

/// <summary>
/// One run-to-completion worker: it owns its EID-side port (<see cref="TunPort"/>: queue <c>index</c> of every
/// instance's TUN, <see cref="AfPacketPort"/>: a ring pair per instance, or <see cref="AfXdpPort"/>: the AF_XDP sockets
/// on the queues q = <c>index</c> mod workers of each instance's interface), one UDP socket on the LISP data port
/// (SO_REUSEPORT spreads flows across workers) and one raw sending socket. Each turn it reads a batch from each
/// instance, runs the ITR over it and sends it with one sendmmsg, then takes a batch from the UDP socket with one
/// recvmmsg, runs the ETR and hands each packet to its instance's port. It sleeps in poll only when a turn found
/// nothing. Nothing on this path allocates, locks, logs or throws. It also drives the segmentation offloads: TCP and
/// UDP super-packets cut and sent with UDP GSO, received LISP coalesced into TUN super-packets. In an RTR (no EID
/// side) what it receives is sent on re-encapsulated (<see cref="Reencapsulate"/>).
/// </summary>
public sealed unsafe class Worker : IDisposable
{
    private const int MaxFragments = 16;
    private readonly int _index;
    private readonly DataplaneOptions _options;
    private readonly IEidPort _port;
    // The TUN port when the EID side is TUN: the coalesced runs are written through it.
    // The underlay sockets of each family this xTR has an RLOC of (-1 for a family it has not).
    private readonly int _udpFd = -1;
    private readonly int _rawFd = -1;
    private readonly int _udp6Fd = -1;
    private readonly int _raw6Fd = -1;
    private readonly PacketBuffers _itrBuffers;
    private readonly PacketBuffers _etrBuffers;
    private readonly PacketBuffers _scratch;
    private readonly MessageBatch _send;
    private readonly MessageBatch _send6;
    private readonly MessageBatch _receive;
    private readonly Encapsulator _encap;
    private readonly Decapsulator _decap;
    private readonly WorkerCounters _counters;
    private readonly int[] _lengths;
    private readonly int[] _fragmentLengths = new int[MaxFragments];
    private readonly uint[] _instanceIds;
    private volatile bool _stop;
    // --xdp-underlay: LISP data read from AF_XDP sockets on the underlay interface (the UDP socket takes the rest).
    private readonly XdpSocket[] _underlay;
    private readonly XdpUnderlaySender? _underlayTx;
    // --mode af-xdp with every socket of the worker on one UMEM: packets are encapsulated and decapsulated where they
    // were received and sent on by address (null: copied into the worker's buffers, and into a chunk to send).
    private readonly AfXdpPort? _xdp;
    private readonly XdpUmem? _inPlace;
    // The held packets of the batch (their IP headers in the UMEM), 0 once sent on with their chunk.
    private readonly nint* _held;
    // Set by Dispatch when the packet went out of its own chunk (the chunk with it).
    private bool _heldSent;
    // fastxtr rtr: received LISP data is sent on (no EID side), and Info-Requests on the data port go to the control.
    private readonly bool _relay;
    private readonly ControlInbox? _inbox;
    /// <summary>
    /// The first byte of an Info-Request (type 7, R bit clear), which an xTR behind NAT sends to an RTR's data port. As
    /// a LISP data header it would set E without N, which RFC 9300 §5.3 does not give a meaning; lispers.net's RTR
    /// tells Info-Requests from data on its data port by the same byte.
    /// </summary>
    private const byte InfoRequestFirstByte = 0x70;


    // Segmentation offloads (--offload on, when the kernel has them): SendSuperPacket, SendUdpSuperPacket, WriteRun.
    private readonly bool _tso, _gro, _coalesce;
    private readonly bool _vnet;
    private readonly int[] _gsoFds = [];
    private readonly int[] _gso6Fds = [];
    private readonly PacketBuffers? _superBuffers;
    private readonly PacketBuffers? _groBuffers;
    private readonly byte* _gsoOut;
    private readonly int[] _segmentLengths = new int[MaxSegments];
    private readonly Coalescer _coalescer = new();
    private readonly IoVec* _pieces;
    private readonly byte* _vnetScratch;
    // UDP GSO sends of TCP super-packets (_tso): each segment's LISP and inner headers, HeaderStride apart (a send's
    // pieces, each segment's headers then its payload where the TUN read put it, go in _pieces).
    private readonly byte* _segmentHeaders;
    /// <summary>Room for a segment's LISP header and its inner IP and TCP headers (at most 8 + 60 + 60 bytes).</summary>
    private const int HeaderStride = 128;
    /// <summary>
    /// Sockets for UDP GSO sends, one per outer source port (61440 + k). With them the ITR hashes every flow's source
    /// port into these (<see cref="Encapsulator.FlowPorts"/>), so the packets of a flow it sends one by one and those
    /// it sends in bursts share one port: 64 of them, for ECMP in the underlay to spread flows over.
    /// </summary>
    public const int GsoSourcePorts = 64;
    public const ushort GsoSourcePortBase = 61440;
    private const int MaxSegments = 256;
    private const int GsoOutBytes = 2 * PacketBuffers.MaxSuperPacketBytes;
    /// <summary>One UDP GSO send: at most 64 datagrams (the kernel's UDP_MAX_SEGMENTS) in one 64 KB IPv4 datagram.</summary>
    private const int GsoMaxSegments = 64, GsoMaxBytes = 65507;
    // The ITR's queued IPv4 datagrams go in UDP GSO bursts where consecutive ones share a flow (SendGathered): with
    // the segmenting sockets (_tso), and in an RTR, whose runs to a NAT-traversed locator leave from the data port.
    private readonly bool _gather;
    private readonly IoVec* _runPieces;

    /// <param name="rings">--mode af-packet: this worker's ring on each instance's EID-facing interface (else empty).</param>
    /// <param name="neighbors">--mode af-packet: each instance's neighbour table, shared by the workers.</param>
    /// <param name="xsks">--mode af-xdp: this worker's AF_XDP sockets on each instance's interface (else empty); the port takes them over.</param>
    /// <param name="links">--mode af-xdp: each instance's interface.</param>
    /// <param name="underlay">--xdp-underlay: this worker's AF_XDP sockets on the underlay interface (owned from here on).</param>
    /// <param name="nextHops">--xdp-underlay: the kernel's next hops on the underlay interface; the ITR sends through the first socket.</param>
    /// <param name="inbox">fastxtr rtr (<see cref="DataplaneOptions.Rtr"/>): where this worker puts the Info-Requests it receives.</param>
    public Worker(int index, DataplaneOptions options, SharedRegion region, IReadOnlyList<TunDevice> tuns,
        IReadOnlyList<PacketRing>? rings = null, IReadOnlyList<NeighborTable>? neighbors = null,
        IReadOnlyList<IReadOnlyList<XdpSocket>>? xsks = null, IReadOnlyList<NetInterface>? links = null,
        IReadOnlyList<XdpSocket>? underlay = null, UnderlayNextHops? nextHops = null, ControlInbox? inbox = null)
    {
        _index = index;
        _relay = options.Rtr;
        _inbox = options.Rtr ? inbox ?? throw new ArgumentNullException(nameof(inbox), "an RTR worker needs its control inbox") : null;
        _options = options;
        _underlay = underlay?.ToArray() ?? [];
        _instanceIds = options.Instances.Select(i => i.InstanceId).ToArray();
        _counters = region.Counters(index);
        try
        {
            if (options.RlocAddress != 0)
            {
                _udpFd = Sockets.OpenUdp4(options.RlocAddress, options.Port, reusePort: true, options.SocketBufferBytes);
                _rawFd = Sockets.OpenRawIpv4Sender(options.SocketBufferBytes);
            }
            if (options.RlocAddress6 != 0)
            {
                _udp6Fd = Sockets.OpenUdp6(options.RlocAddress6, options.Port, reusePort: true, options.SocketBufferBytes, options.ZeroChecksum6);
                _raw6Fd = Sockets.OpenRawIpv6Sender(options.SocketBufferBytes);
            }
        }
        catch
        {
            foreach (int fd in new[] { _udpFd, _rawFd, _udp6Fd, _raw6Fd }) Sockets.Close(fd);
            throw;
        }
        _port = xsks is { Count: > 0 } ? new AfXdpPort(xsks, links ?? [], neighbors ?? [], _counters)
            : rings is { Count: > 0 } ? new AfPacketPort(rings, neighbors ?? [], _counters)
            : new TunPort(tuns, index, _counters);
        _port.SuperFrame = SendRingSuperFrame;
        _itrBuffers = new PacketBuffers(options.Batch);
        _etrBuffers = new PacketBuffers(options.Batch);
        // Scratch: one ICMP reply and up to MaxFragments fragments of one packet.
        _scratch = new PacketBuffers(1 + MaxFragments);
        _send = new MessageBatch(options.Batch + Math.Max(MaxFragments, MaxSegments));
        _send6 = new MessageBatch(options.Batch + Math.Max(MaxFragments, MaxSegments));
        _receive = new MessageBatch(options.Batch);
        byte** rx = stackalloc byte*[options.Batch];
        for (int i = 0; i < options.Batch; i++) rx[i] = _etrBuffers.Data(i);
        _receive.PrepareReceive(rx, PacketBuffers.MaxPacketBytes);
        _lengths = new int[options.Batch];
        _encap = new Encapsulator(region.MapCache, options.RlocAddress, options.RlocAddress6, options.ZeroChecksum6, options.OuterMtu, _counters, region.MissRing(index),
            new MissSuppressor(), (ulong)Stopwatch.GetTimestamp() ^ ((ulong)index << 56)) { DataPort = options.Port };
        _decap = new Decapsulator(_instanceIds, _counters, region.MapCache, options.DecapFilter, region.MissRing(index), relay: options.Rtr);
        if (_underlay.Length > 0 && nextHops is not null) _underlayTx = new XdpUnderlaySender(_underlay[0], nextHops, _counters);
        if (_port is AfXdpPort xdp && xdp.SharedUmem(_underlay) is { } umem)
        {
            _xdp = xdp;
            _inPlace = umem;
            _held = (nint*)NativeMemory.AllocZeroed((nuint)(options.Batch * sizeof(nint)));
        }

        _vnet = _port.HasVnetHeader;
        // A coalesced run's pieces (ETR), or a UDP GSO send's (ITR: 2 per segment, at most 2 * GsoMaxSegments).
        _pieces = (IoVec*)NativeMemory.AllocZeroed((nuint)((MaxSegments + 2) * sizeof(IoVec)));
        _vnetScratch = (byte*)NativeMemory.AllocZeroed(256);
        _runPieces = (IoVec*)NativeMemory.Alloc((nuint)(GsoMaxSegments * sizeof(IoVec)));
        _gather = options.Rtr && _udpFd >= 0;
        // af-packet: a TCP super-frame (the kernel's GRO, or a veth peer's TSO, hands those to the ring) is cut here.
        if (_port.CarriesSuperFrames) _gsoOut = (byte*)NativeMemory.AlignedAlloc(GsoOutBytes, 64);
        if (!options.Offload) return;
        bool tunTso = _vnet && _port.TakesSuperPackets;
        // The ETR coalesces where the port takes super-packets back: a TUN with TSO, af-packet through its
        // virtio-net packet socket.
        _coalesce = _port.TakesSuperPackets;
        if (tunTso || _port.CarriesSuperFrames)
        {
            if (tunTso) _superBuffers = new PacketBuffers(options.Batch, PacketBuffers.MaxSuperPacketBytes);
            if (_gsoOut == null) _gsoOut = (byte*)NativeMemory.AlignedAlloc(GsoOutBytes, 64);
            int[]? v4 = options.RlocAddress == 0 ? [] : OpenGsoSockets(k => Sockets.OpenUdp4Segmenting(options.RlocAddress, (ushort)(GsoSourcePortBase + k), options.SocketBufferBytes));
            int[]? v6 = options.RlocAddress6 == 0 || v4 is null ? [] : OpenGsoSockets(k => Sockets.OpenUdp6Segmenting(options.RlocAddress6, (ushort)(GsoSourcePortBase + k), options.SocketBufferBytes, options.ZeroChecksum6));
            // Without UDP_SEGMENT the super-packets are still cut here, and sent one by one.
            _tso = v4 is not null && v6 is not null;
            if (_tso)
            {
                _gsoFds = v4!;
                _gso6Fds = v6!;
                _segmentHeaders = (byte*)NativeMemory.AlignedAlloc(MaxSegments * HeaderStride, 64);
                _encap.FlowPorts = (GsoSourcePortBase, GsoSourcePorts);
                _gather = true;
            }
            else foreach (int fd in (v4 ?? []).Concat(v6 ?? [])) Sockets.Close(fd);
        }
        _gro = (tunTso || _port.CarriesSuperFrames)
            && (_udpFd < 0 || Sockets.EnableGro(_udpFd)) && (_udp6Fd < 0 || Sockets.EnableGro(_udp6Fd));
        if (_gro)
        {
            _groBuffers = new PacketBuffers(options.Batch, PacketBuffers.MaxSuperPacketBytes);
            byte** gro = stackalloc byte*[options.Batch];
            for (int i = 0; i < options.Batch; i++) gro[i] = _groBuffers.Data(i);
            _receive.PrepareReceive(gro, PacketBuffers.MaxSuperPacketBytes);
        }
    }

    /// <summary>One UDP GSO socket per source port, or null (none kept open) when the kernel refuses one.</summary>
    private static int[]? OpenGsoSockets(Func<int, int> open)
    {
        var fds = new int[GsoSourcePorts];
        for (int k = 0; k < GsoSourcePorts; k++)
        {
            fds[k] = open(k);
            if (fds[k] >= 0) continue;
            for (int j = 0; j < k; j++) Sockets.Close(fds[j]);
            return null;
        }
        return fds;
    }

    /// <summary>What this worker's offloads came to (for the start-up log line).</summary>
    public string OffloadSummary =>
        !_options.Offload ? "off"
        : (_port.CarriesSuperFrames ? "super-frames from the rings " : "")
          + $"tso {(_tso ? "on, sent with UDP GSO" : _gsoOut != null ? "on, segments sent one by one (no UDP_SEGMENT)" : "off (the TUN refused TSO)")}, gro {(_gro ? "on" : "off (no UDP_GRO)")}"
          + (_port.CarriesSuperFrames ? (_coalesce ? ", TCP runs sent to the hosts as GSO frames" : ", segments written to the transmit ring one frame each (no PACKET_VNET_HDR)") : "");

    public void Stop() => _stop = true;

    /// <summary>The worker's loop; returns when <see cref="Stop"/> is called.</summary>
    public void Run()
    {
        int instances = _port.InstanceCount;
        int[] fds = [.. _port.PollFds, .. new[] { _udpFd, _udp6Fd }.Where(fd => fd >= 0), .. _underlay.Select(u => u.Fd)];
        // Bounded busy-polling (--busy-poll-us): after the last batch, keep checking for that long, yielding the core
        // between checks, before sleeping in poll; the answer to what just went out usually comes back within it.
        long spin = Stopwatch.Frequency * _options.BusyPollMicroseconds / 1_000_000;
        long lastWork = long.MinValue / 2;
        bool spinning = false;
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        int turns = 0;
        while (!_stop)
        {
            if (++turns == 4096)
            {
                turns = 0;
                NoteAllocations(ref allocated);
            }
            int work = 0;
            for (int k = 0; k < instances; k++) work += Encapsulate(k);
            if (_udpFd >= 0) work += Decapsulate(_udpFd, ipv6: false);
            if (_udp6Fd >= 0) work += Decapsulate(_udp6Fd, ipv6: true);
            if (_underlay.Length > 0) work += DecapsulateFromUnderlaySockets();
            if (work != 0)
            {
                if (spinning) _counters.Add(Counter.BusyPollHits);
                spinning = false;
                if (spin > 0) lastWork = Stopwatch.GetTimestamp();
                continue;
            }
            if (spin > 0 && Stopwatch.GetTimestamp() - lastWork < spin)
            {
                spinning = true;
                Thread.Yield();
                continue;
            }
            spinning = false;
            _counters.Add(Counter.PollSleeps);
            NoteAllocations(ref allocated);
            Cpu.PollReadable(fds, 100);
        }
    }

    /// <summary>Adds what this thread allocated since <paramref name="seen"/> to <see cref="Counter.WorkerAllocatedBytes"/>.</summary>
    private void NoteAllocations(ref long seen)
    {
        long now = GC.GetAllocatedBytesForCurrentThread();
        if (now == seen) return;
        _counters.Add(Counter.WorkerAllocatedBytes, (ulong)(now - seen));
        seen = now;
    }

    private int Encapsulate(int instance)
    {
        if (_inPlace is not null) return EncapsulateInPlace(instance);
        ulong bytes = 0;
        var buffers = _superBuffers ?? _itrBuffers;
        int n = _port.Read(instance, buffers, _lengths, ref bytes, out int superFrames);
        if (n == 0)
        {
            // Only super-frames (already cut and sent) or frames left to the kernel: still work done.
            if (superFrames > 0) _port.Flush();
            return superFrames;
        }
        _counters.Add(Counter.TunRxPackets, (ulong)n);
        _counters.Add(Counter.TunRxBytes, bytes);
        long now = Stopwatch.GetTimestamp();
        uint iid = _instanceIds[instance];
        ulong sentBytes = 0;
        for (int i = 0; i < n; i++)
        {
            if (_vnet)
            {
                var v = (VirtioNetHdr*)(buffers.Data(i) - VirtioNetHdr.Bytes);
                var packet = new Span<byte>(buffers.Data(i), _lengths[i]);
                if ((v->GsoType & ~Linux.VIRTIO_NET_HDR_GSO_ECN) is Linux.VIRTIO_NET_HDR_GSO_TCPV4 or Linux.VIRTIO_NET_HDR_GSO_TCPV6)
                {
                    Flush();
                    sentBytes += SendSuperPacket(packet, v->GsoSize, iid, now, instance);
                    continue;
                }
                if (v->GsoType == Linux.VIRTIO_NET_HDR_GSO_UDP_L4)
                {
                    Flush();
                    sentBytes += SendUdpSuperPacket(packet, v->GsoSize, iid, now, instance);
                    continue;
                }
                if (v->GsoType != Linux.VIRTIO_NET_HDR_GSO_NONE) { _counters.Add(Counter.DropBadVnetHeader); continue; }
                if ((v->Flags & Linux.VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0)
                {
                    if (!TcpSegmentation.CompleteChecksum(packet, v->CsumStart, v->CsumOffset)) { _counters.Add(Counter.DropBadVnetHeader); continue; }
                    _counters.Add(Counter.ChecksumsCompleted);
                }
            }
            sentBytes += EncapsulateOne(buffers.Buffer(i), _lengths[i], iid, now, instance);
        }
        _port.FinishBatch(instance, now); // a held-back super-frame: its handler sends the batch's packets first
        _counters.Add(Counter.UdpTxBytes, sentBytes);
        Flush();
        _port.Flush();
        _counters.Add(Counter.Batches);
        return n;
    }

    /// <summary>
    /// --mode af-xdp on one UMEM: a batch of the instance's packets encapsulated where they were received (the outer
    /// headers in the chunk's headroom) and sent by address through the underlay's AF_XDP socket; what goes through
    /// the kernel instead (an unknown next hop, IPv6, fragments) is sent from the chunk before the chunks not sent on
    /// are given back to the UMEM.
    /// </summary>
    private int EncapsulateInPlace(int instance)
    {
        ulong bytes = 0;
        int n = _xdp!.ReadHeld(instance, _held, _lengths, ref bytes);
        if (n == 0) return 0;
        _counters.Add(Counter.TunRxPackets, (ulong)n);
        _counters.Add(Counter.TunRxBytes, bytes);
        long now = Stopwatch.GetTimestamp();
        uint iid = _instanceIds[instance];
        ulong sentBytes = 0;
        byte* reply = _scratch.Data(0);
        for (int i = 0; i < n; i++)
        {
            // The packet's buffer as the ITR sees it: its headroom is the chunk's, in front of the IP header.
            byte* buffer = (byte*)_held[i] - PacketBuffers.HeadroomBytes;
            var d = _encap.Process(buffer, _lengths[i], iid, 0, now, reply, out int replyLength);
            _heldSent = false;
            sentBytes += Dispatch(d, buffer, _lengths[i], iid, now, instance, reply, replyLength, held: true);
            if (_heldSent) _held[i] = 0;
        }
        _counters.Add(Counter.UdpTxBytes, sentBytes);
        Flush();
        _port.Flush();
        for (int i = 0; i < n; i++)
            if (_held[i] != 0) _inPlace!.Give((byte*)_held[i]);
        _xdp.Refill(instance);
        _counters.Add(Counter.Batches);
        return n;
    }

    /// <summary>One packet through the ITR: queued for the batch send, fragmented, or answered with ICMP.</summary>
    private ulong EncapsulateOne(byte* buffer, int length, uint iid, long now, int instance)
    {
        byte* reply = _scratch.Data(0);
        var d = _encap.Process(buffer, length, iid, 0, now, reply, out int replyLength);
        return Dispatch(d, buffer, length, iid, now, instance, reply, replyLength);
    }

    /// <summary>
    /// Acts on the ITR's decision for one packet: queued for the batch send, fragmented, or answered with ICMP.
    /// <paramref name="held"/>: the packet lies in a UMEM chunk the worker holds; sent through AF_XDP it goes from
    /// there, with its chunk (<see cref="_heldSent"/>).
    /// </summary>
    private ulong Dispatch(in ItrDecision d, byte* buffer, int length, uint iid, long now, int instance, byte* reply, int replyLength, bool held = false)
    {
        switch (d.Verdict)
        {
            case ItrVerdict.Send:
                if (d.Ipv6) _send6.Add(buffer + d.OuterStart, d.OuterLength, d.Destination6, 0);
                else if (held && _underlayTx is not null && _underlayTx.TrySendHeld(buffer + d.OuterStart, d.OuterLength, d.Destination)) _heldSent = true;
                else if (held || _underlayTx is null || !_underlayTx.TrySend(buffer + d.OuterStart, d.OuterLength, d.Destination))
                    _send.Add(buffer + d.OuterStart, d.OuterLength, d.Destination, 0);
                return (ulong)d.OuterLength;
            case ItrVerdict.FragmentInner:
                return EncapsulateInnerFragments(buffer, length, iid, now, instance);
            case ItrVerdict.SendFragmented:
                // Flush what is queued so the fragment scratch can be reused by this packet.
                Flush();
                int count = _encap.Fragment(new ReadOnlySpan<byte>(buffer + d.OuterStart, d.OuterLength), _scratch.Data(1), _fragmentLengths);
                for (int f = 0; f < count; f++) _send.Add(_scratch.Data(1) + (long)f * PacketBuffers.MaxPacketBytes, _fragmentLengths[f], d.Destination, 0);
                if (count == 0) _counters.Add(Counter.DropTooBig);
                Flush();
                return (ulong)d.OuterLength;
            case ItrVerdict.ReplyTooBig:
                // (An RTR has no EID side to return it on: the packet is a counted drop-too-big.)
                if (instance >= 0) _port.Write(instance, reply, replyLength);
                return 0;
            default:
                return 0;
        }
    }

    /// <summary>
    /// An inner IPv4 packet too long for its IPv6 outer header: cut into inner fragments in the scratch buffers (each
    /// with a headroom), and each sent through the ITR as a packet of its own.
    /// </summary>
    private ulong EncapsulateInnerFragments(byte* buffer, int length, uint iid, long now, int instance)
    {
        Flush(); // the scratch buffers are reused for this packet's pieces
        var inner = new ReadOnlySpan<byte>(buffer + PacketBuffers.HeadroomBytes, length);
        // Each piece is sized for an IPv6 outer header, so it never needs the fragment scratch again (an IPv4 one is shorter).
        int stride = (int)(_scratch.Buffer(2) - _scratch.Buffer(1));
        int count = _encap.FragmentInner(inner, _scratch.Buffer(1), stride, PacketBuffers.HeadroomBytes, _fragmentLengths.AsSpan(0, MaxFragments));
        if (count == 0) return Drop(Counter.DropTooBig);
        ulong sent = 0;
        for (int f = 0; f < count; f++) sent += EncapsulateOne(_scratch.Buffer(1 + f), _fragmentLengths[f], iid, now, instance);
        Flush();
        return sent;
    }

    /// <summary>
    /// A TCP super-packet (TSO): cut into segments that fit the outer MTU once encapsulated, the first routed
    /// through the ITR as any packet (lookup, RLOC choice, outer header), the rest given its LISP header, and all
    /// sent to the chosen RLOC with as few UDP GSO sends as the kernel's limits allow, from the socket whose port is
    /// the flow hash's. Without UDP GSO the segments go one by one through the ordinary path.
    /// </summary>
    private ulong SendSuperPacket(Span<byte> packet, int gsoSize, uint iid, long now, int instance)
    {
        _counters.Add(Counter.TunSuperPackets);
        int headers = TcpSegmentation.HeaderLength(packet, out _);
        // Cut for the longest outer header this xTR writes (an IPv6 one where it has an IPv6 RLOC): the RLOC is
        // chosen after the cut, and every segment must fit whichever family it is.
        int fit = _options.OuterMtu - _encap.MaxOuterBytes - headers;
        int mss = gsoSize > 0 ? Math.Min(gsoSize, fit) : fit;
        if (headers == 0 || mss < 1) return Drop(Counter.DropBadVnetHeader);
        if (!_tso)
        {
            // The TUN took TSO but the sockets cannot GSO: the segments go one by one through the ordinary path,
            // each cut with a headroom in front for its outer header.
            int cut = TcpSegmentation.Segment(packet, mss, PacketBuffers.HeadroomBytes, new Span<byte>(_gsoOut, GsoOutBytes), _segmentLengths);
            return EncapsulateCut(cut, PacketBuffers.HeadroomBytes + headers + mss, iid, now, instance);
        }
        // Segment k's 8-byte prefix (its LISP header) and inner headers go to the header table, HeaderStride apart;
        // its payload stays where the TUN read put it, and each UDP GSO send gathers the two (no copy of the payload
        // here: the kernel's copy into its buffer is the only one).
        int count = TcpSegmentation.SegmentHeaders(packet, mss, LispDataHeader.Length, new Span<byte>(_segmentHeaders, MaxSegments * HeaderStride), HeaderStride, _segmentLengths, out int payloadOffset);
        if (count == 0) return Drop(Counter.DropBadVnetHeader);
        _counters.Add(Counter.SegmentsCut, (ulong)count);
        int headerBytes = LispDataHeader.Length + headers;
        byte* payload = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(packet)) + payloadOffset;
        // The ITR's decision for the first segment holds for all: laid out whole one headroom into the output (its
        // inner packet after the prefix), so that the ITR builds its headers in front of it as in every packet buffer.
        // The segments were cut to fit the outer MTU, so it is Send or a drop the ITR has counted (no mapping, policy...).
        byte* first = _gsoOut + PacketBuffers.HeadroomBytes;
        Buffer.MemoryCopy(_segmentHeaders, first, headerBytes, headerBytes);
        Buffer.MemoryCopy(payload, first + headerBytes, _segmentLengths[0] - headerBytes, _segmentLengths[0] - headerBytes);
        var d = _encap.Process(first + LispDataHeader.Length - PacketBuffers.HeadroomBytes, _segmentLengths[0] - LispDataHeader.Length, iid, 0, now, _scratch.Data(0), out _);
        if (d.Verdict != ItrVerdict.Send) return 0;
        int socket = SegmentingSocket(d.SourcePort, d.Ipv6);
        if (socket < 0)
        {
            _counters.Add(Counter.DropSendFailed, (ulong)count); // a port no socket of this worker has: every segment lost, counted
            return 0;
        }
        int stride = _segmentLengths[0];
        for (int k = 0; k < count; k++) Buffer.MemoryCopy(first, _segmentHeaders + (long)k * HeaderStride, LispDataHeader.Length, LispDataHeader.Length);
        ulong bytes = 0;
        for (int start = 0; start < count;)
        {
            int take = Math.Min(count - start, Math.Min(GsoMaxSegments, GsoMaxBytes / stride));
            int length = (take - 1) * stride + _segmentLengths[start + take - 1];
            for (int k = 0; k < take; k++)
            {
                int segment = start + k;
                _pieces[2 * k] = new IoVec { Base = _segmentHeaders + (long)segment * HeaderStride, Length = (nuint)headerBytes };
                _pieces[2 * k + 1] = new IoVec { Base = payload + (long)segment * mss, Length = (nuint)(_segmentLengths[segment] - headerBytes) };
            }
            // To the locator's data port (4341, or its own): --port is where this xTR listens, not where its peers do.
            int e = d.Ipv6
                ? Sockets.SendSegmented(socket, _pieces, 2 * take, length, d.Destination6, d.DestinationPort, stride, d.Ttl, d.Tos)
                : Sockets.SendSegmented(socket, _pieces, 2 * take, length, d.Destination, d.DestinationPort, stride, d.Ttl, d.Tos);
            if (e == 0)
            {
                _counters.Add(Counter.UdpGsoSends);
                _counters.Add(Counter.UdpTxPackets, (ulong)take);
                bytes += (ulong)(length + take * (d.OuterLength - _segmentLengths[0]));
            }
            else _counters.Add(Counter.DropSendFailed, (ulong)take);
            start += take;
        }
        return bytes;
    }

    /// <summary>
    /// A UDP super-packet (USO): cut at the sender's datagram size, never re-cut, and each datagram sent through the
    /// ordinary path, whose MTU rules (fragments, or ICMP when the datagram no longer fits) apply to it as to any.
    /// </summary>
    private ulong SendUdpSuperPacket(Span<byte> packet, int datagramPayload, uint iid, long now, int instance)
    {
        _counters.Add(Counter.TunSuperPackets);
        if (_gsoOut == null) return Drop(Counter.DropBadVnetHeader);
        int cut = UdpSegmentation.Segment(packet, datagramPayload, PacketBuffers.HeadroomBytes, new Span<byte>(_gsoOut, GsoOutBytes), _segmentLengths);
        return EncapsulateCut(cut, PacketBuffers.HeadroomBytes + UdpSegmentation.HeaderLength(packet, out _) + datagramPayload, iid, now, instance);
    }

    /// <summary>
    /// Sends <paramref name="count"/> pieces cut into the segment buffer <paramref name="step"/> bytes apart, each
    /// with a headroom in front, one by one through the ordinary ITR path; 0 pieces is a counted bad header.
    /// </summary>
    private ulong EncapsulateCut(int count, int step, uint iid, long now, int instance)
    {
        if (count == 0) return Drop(Counter.DropBadVnetHeader);
        _counters.Add(Counter.SegmentsCut, (ulong)count);
        ulong sent = 0;
        for (int k = 0; k < count; k++)
        {
            sent += EncapsulateOne(_gsoOut + (long)k * step, _segmentLengths[k] - PacketBuffers.HeadroomBytes, iid, now, instance);
            if (_send.Count >= _send.Capacity - MaxFragments) Flush();
        }
        Flush();
        return sent;
    }

    private ulong Drop(Counter reason)
    {
        _counters.Add(reason);
        return 0;
    }

    /// <summary>
    /// A TCP super-frame the port handed over (af-packet), cut into segments that fit both the EID link's MTU and the
    /// outer MTU once encapsulated (each with its full checksum), sent one by one through the ordinary ITR path. A UDP
    /// one (<paramref name="udpDatagramSize"/> &gt; 0) is cut at its sender's datagram size, each datagram with its own
    /// checksum, and each goes through the ITR as any packet (too long for the underlay: fragmented, or answered with
    /// ICMP). Anything else this long is a counted drop.
    /// </summary>
    private void SendRingSuperFrame(int instance, byte* ip, int length, int linkMtu, int udpDatagramSize, long now)
    {
        Flush(); // what the batch queued before it goes first
        _counters.Add(Counter.TunRxPackets);
        _counters.Add(Counter.TunRxBytes, (ulong)length);
        var packet = new Span<byte>(ip, length);
        if (udpDatagramSize > 0)
        {
            _counters.Add(Counter.UdpTxBytes, SendUdpSuperPacket(packet, udpDatagramSize, _instanceIds[instance], now, instance));
            return;
        }
        int headers = TcpSegmentation.HeaderLength(packet, out _);
        int mss = Math.Min(linkMtu, _options.OuterMtu - _encap.MaxOuterBytes) - headers;
        if (headers == 0 || mss < 1) { _counters.Add(Counter.DropTooBig); return; }
        if (_tso)
        {
            // --offload on: cut and sent to the RLOC in bursts with UDP GSO, as a TUN's super-packets are.
            _counters.Add(Counter.UdpTxBytes, SendSuperPacket(packet, mss, _instanceIds[instance], now, instance));
            return;
        }
        _counters.Add(Counter.TunSuperPackets);
        int cut = TcpSegmentation.Segment(packet, mss, PacketBuffers.HeadroomBytes, new Span<byte>(_gsoOut, GsoOutBytes), _segmentLengths);
        _counters.Add(Counter.UdpTxBytes, EncapsulateCut(cut, PacketBuffers.HeadroomBytes + headers + mss, _instanceIds[instance], now, instance));
    }

    private void Flush()
    {
        _underlayTx?.Flush();
        if (_send.Count > 0)
        {
            if (_gather) SendGathered();
            else Send(_send, _rawFd);
        }
        if (_send6.Count > 0) Send(_send6, _raw6Fd);
    }

    /// <summary>
    /// The socket that sends UDP GSO bursts from outer source port <paramref name="sourcePort"/>: the segmenting
    /// socket bound to it, or the data port's for a NAT-traversed locator (the NAT passes only what comes from the port
    /// its binding was made toward); -1 for a port neither (not one of this worker's).
    /// </summary>
    private int SegmentingSocket(ushort sourcePort, bool ipv6)
    {
        int k = sourcePort - GsoSourcePortBase;
        int[] fds = ipv6 ? _gso6Fds : _gsoFds; // empty without segmenting sockets (an RTR with offloads off)
        if ((uint)k < (uint)fds.Length) return fds[k];
        return sourcePort == _options.Port ? (ipv6 ? _udp6Fd : _udpFd) : -1;
    }

    /// <summary>
    /// The queued IPv4 datagrams, in order: runs of one flow (<see cref="DatagramRuns"/>) each in one UDP GSO send
    /// from the socket of its source port, the datagrams between them with sendmmsg through the raw socket.
    /// </summary>
    private void SendGathered()
    {
        int count = _send.Count;
        int alone = 0; // the first datagram not sent yet that goes through the raw socket
        for (int i = 0; i < count;)
        {
            int run = DatagramRuns.Length(_send, i, GsoMaxSegments, GsoMaxBytes, out int segment);
            int socket = run > 1 ? SegmentingSocket(DatagramRuns.SourcePort(_send.Data(i)), ipv6: false) : -1;
            if (socket < 0)
            {
                i += run; // alone, or a run from a port that is not ours: through the raw socket as ever
                continue;
            }
            if (alone < i) Send(_send, _rawFd, alone, i);
            int bytes = 0;
            for (int k = 0; k < run; k++)
            {
                int payload = _send.QueuedLength(i + k) - DatagramRuns.HeaderBytes;
                _runPieces[k] = new IoVec { Base = _send.Data(i + k) + DatagramRuns.HeaderBytes, Length = (nuint)payload };
                bytes += payload;
            }
            byte* ip = _send.Data(i);
            uint destination = BinaryPrimitives.ReadUInt32BigEndian(new ReadOnlySpan<byte>(ip + 16, 4));
            ushort port = BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(ip + 22, 2));
            if (Sockets.SendSegmented(socket, _runPieces, run, bytes, destination, port, segment, ip[8], ip[1]) == 0)
            {
                _counters.Add(Counter.UdpGsoSends);
                _counters.Add(Counter.ItrDatagramsGathered, (ulong)run);
                _counters.Add(Counter.UdpTxPackets, (ulong)run);
            }
            // Refused (its socket's buffer full for long, a limit of the kernel's): one by one through the raw socket,
            // which sends what it can and counts the rest, as before there were bursts.
            else Send(_send, _rawFd, i, i + run);
            i += run;
            alone = i;
        }
        if (alone < count) Send(_send, _rawFd, alone, count);
        _send.Clear();
    }

    private void Send(MessageBatch batch, int fd)
    {
        Send(batch, fd, 0, batch.Count);
        batch.Clear();
    }

    /// <summary>The queued datagrams <paramref name="from"/> up to <paramref name="to"/>, with sendmmsg; what fails is counted.</summary>
    private void Send(MessageBatch batch, int fd, int from, int to)
    {
        int sent = batch.SendRange(fd, from, to, out int failed);
        _counters.Add(Counter.UdpTxPackets, (ulong)sent);
        if (failed > 0) _counters.Add(Counter.DropSendFailed, (ulong)failed);
    }

    /// <summary>A batch of LISP data from the UDP socket of one family through the ETR to the EID side.</summary>
    private int Decapsulate(int fd, bool ipv6)
    {
        int m = _receive.Receive(fd);
        if (m == 0) return 0;
        var buffers = _groBuffers ?? _etrBuffers;
        ulong rxPackets = 0, rxBytes = 0, txBytes = 0, txPackets = 0;
        long now = _relay ? Stopwatch.GetTimestamp() : 0;
        for (int i = 0; i < m; i++)
        {
            int length = _receive.Length(i);
            // With UDP GRO one message may hold several datagrams of one flow, all of this size but the last.
            int segment = _gro ? _receive.SegmentBytes(i) : length;
            if (segment <= 0 || segment > length) segment = length;
            if (segment < length) _counters.Add(Counter.UdpGroReceives);
            var (ttl, tos) = _receive.OuterTtlTos(i);
            UInt128 source = ipv6 ? _receive.SourceAddress6(i) : MappedIpv4.From(_receive.SourceAddress(i));
            byte* data = buffers.Data(i);
            for (int offset = 0; offset < length; offset += segment)
            {
                int datagram = Math.Min(segment, length - offset);
                rxPackets++;
                rxBytes += (ulong)datagram;
                if (_inbox is not null && data[offset] == InfoRequestFirstByte)
                {
                    _counters.Add(_inbox.TryPost(new ReadOnlySpan<byte>(data + offset, datagram), source, _receive.SourcePort(i)) ? Counter.RtrControlMessages : Counter.DropRtrInboxFull);
                    continue;
                }
                var d = _decap.Process(new Span<byte>(data + offset, datagram), source, ttl, tos);
                if (!d.Deliver) continue;
                byte* inner = data + offset + d.InnerOffset;
                if (_relay)
                {
                    // No GRO on an RTR (it has no EID side to coalesce for): each datagram has its own buffer, so the
                    // new outer header goes over the old one, in front of the inner packet.
                    txBytes += Reencapsulate(inner, d.InnerLength, d.InstanceId, now);
                    continue;
                }
                if (!_coalesce)
                {
                    if (_port.Write(d.Instance, inner, d.InnerLength)) { txPackets++; txBytes += (ulong)d.InnerLength; }
                    continue;
                }
                if (!_coalescer.TryAppend(inner, d.InnerLength, d.Instance))
                {
                    WriteRun(ref txPackets, ref txBytes);
                    _coalescer.TryAppend(inner, d.InnerLength, d.Instance);
                }
            }
        }
        // The run may span messages: their buffers stay untouched until the next receive.
        if (_coalesce) WriteRun(ref txPackets, ref txBytes);
        if (_relay)
        {
            Flush();
            _counters.Add(Counter.UdpTxBytes, txBytes);
            txBytes = 0;
        }
        _port.Flush();
        _counters.Add(Counter.UdpRxPackets, rxPackets);
        if (ipv6) _counters.Add(Counter.Ipv6UnderlayRxPackets, rxPackets);
        _counters.Add(Counter.UdpRxBytes, rxBytes);
        _counters.Add(Counter.TunTxPackets, txPackets);
        _counters.Add(Counter.TunTxBytes, txBytes);
        return m;
    }

    /// <summary>
    /// fastxtr rtr: a decapsulated packet (its inner header checked by the ETR stage, the decapsulation filter passed)
    /// sent on through the ITR stage to its destination's locator, in its own Instance ID. The RTR is a hop: the inner
    /// TTL or hop limit goes down by one (a packet at 1 is a counted drop), so that two RTRs whose mappings point at
    /// each other cannot pass a packet back and forth for ever. Returns the bytes queued.
    /// </summary>
    private ulong Reencapsulate(byte* inner, int length, uint iid, long now)
    {
        if (!DecrementHopLimit(new Span<byte>(inner, length))) return Drop(Counter.DropTtlExpired);
        // The packet buffer's headroom is in front of the inner packet, as the ITR expects (see Decapsulate).
        byte* buffer = inner - PacketBuffers.HeadroomBytes;
        byte* reply = _scratch.Data(0);
        var d = _encap.Process(buffer, length, iid, 0, now, reply, out int replyLength);
        // Consecutive packets to one NAT-traversed locator leave from the data port in one UDP GSO burst (Flush).
        ulong sent = Dispatch(d, buffer, length, iid, now, instance: -1, reply, replyLength);
        if (sent > 0) _counters.Add(Counter.RtrReencapsulated);
        // No room check: a receive takes at most a batch of datagrams, each queues at most one packet (fragments
        // are flushed on the spot), and the send batches hold a batch and more.
        return sent;
    }

    /// <summary>TTL (IPv4, with the header checksum updated incrementally, RFC 1624) or hop limit minus one; false when it would reach 0.</summary>
    internal static bool DecrementHopLimit(Span<byte> ip)
    {
        if ((ip[0] >> 4) == 6)
        {
            if (ip[7] <= 1) return false;
            ip[7]--;
            return true;
        }
        if (ip[8] <= 1) return false;
        ip[8]--;
        // The TTL is the high byte of the word at offset 8: the checksum goes up by 0x0100 (one's complement).
        uint sum = (uint)BinaryPrimitives.ReadUInt16BigEndian(ip[10..]) + 0x0100;
        sum = (sum & 0xFFFF) + (sum >> 16);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], (ushort)sum);
        return true;
    }

    /// <summary>
    /// --xdp-underlay: up to a batch of LISP frames from the underlay's AF_XDP sockets through the ETR. What the kernel's
    /// IP and UDP layers check on the socket path is checked here: the outer IPv4 header (its checksum and lengths,
    /// LispDataPacket) and a non-zero UDP checksum (a bad one is a counted drop, as the kernel's UDP would drop it).
    /// </summary>
    private int DecapsulateFromUnderlaySockets()
    {
        int frames = 0;
        ulong rxBytes = 0, txPackets = 0, txBytes = 0;
        foreach (var socket in _underlay)
        {
            if (_inPlace is not null)
            {
                // On one UMEM: the inner packet goes to its host from where it was received, its chunk with it.
                while (frames < _options.Batch && socket.TryReceiveHeld(out byte* frame, out int length))
                {
                    frames++;
                    bool consumed = false;
                    if (TryOuterUdp(frame, length, out int payload, out int payloadLength, out uint source, out int ttl, out int tos))
                    {
                        rxBytes += (ulong)payloadLength;
                        var d = _decap.Process(new Span<byte>(frame + payload, payloadLength), source, ttl, tos);
                        if (d.Deliver && _xdp!.WriteHeld(d.Instance, frame + payload + d.InnerOffset, d.InnerLength, out consumed)) { txPackets++; txBytes += (ulong)d.InnerLength; }
                    }
                    if (!consumed) _inPlace.Give(frame);
                }
                socket.ReleaseReceived();
                continue;
            }
            while (frames < _options.Batch && socket.TryReceive(out byte* frame, out int length))
            {
                frames++;
                if (!TryOuterUdp(frame, length, out int payload, out int payloadLength, out uint source, out int ttl, out int tos)) continue;
                rxBytes += (ulong)payloadLength;
                var d = _decap.Process(new Span<byte>(frame + payload, payloadLength), source, ttl, tos);
                if (d.Deliver && _port.Write(d.Instance, frame + payload + d.InnerOffset, d.InnerLength)) { txPackets++; txBytes += (ulong)d.InnerLength; }
            }
            socket.ReleaseReceived();
        }
        if (frames == 0) return 0;
        _port.Flush();
        _counters.Add(Counter.UdpRxPackets, (ulong)frames);
        _counters.Add(Counter.UdpRxBytes, rxBytes);
        _counters.Add(Counter.TunTxPackets, txPackets);
        _counters.Add(Counter.TunTxBytes, txBytes);
        return frames;
    }

    /// <summary>The UDP payload of an Ethernet frame carrying LISP data; false, counted, for what does not check out.</summary>
    private bool TryOuterUdp(byte* frame, int length, out int payload, out int payloadLength, out uint source, out int ttl, out int tos)
    {
        payload = payloadLength = ttl = tos = 0;
        source = 0;
        const int Ethernet = EthernetEidSide.HeaderBytes;
        if (length < Ethernet) { _counters.Add(Counter.DropTruncated); return false; }
        var packet = new Span<byte>(frame + Ethernet, length - Ethernet);
        if (!LispDataPacket.TryParse(packet, _options.Port, out var outer, out var error) || outer.IsIpv6)
        {
            _counters.Add(error == DataPacketError.Truncated ? Counter.DropTruncated : Counter.DropBadOuterHeader);
            return false;
        }
        int udp = outer.Ipv4.HeaderLength;
        if (outer.Udp.Checksum != 0)
        {
            var datagram = packet.Slice(udp, outer.Udp.TotalLength);
            if (InternetChecksum.Finish(InternetChecksumSimd.Sum(datagram, outer.Ipv4.PseudoHeaderSum(Ipv4Header.ProtocolUdp, datagram.Length))) != 0)
            {
                _counters.Add(Counter.DropBadOuterHeader);
                return false;
            }
        }
        payload = Ethernet + udp + UdpHeader.Length;
        payloadLength = outer.Udp.TotalLength - UdpHeader.Length;
        source = outer.Ipv4.SourceAddress;
        ttl = outer.Ipv4.TimeToLive;
        tos = outer.Ipv4.TypeOfService;
        return true;
    }

    /// <summary>
    /// Writes the coalescer's pending run to its EID side: one super-packet, or the one packet it holds; where the
    /// port cannot take the super-packet (an af-packet host not heard from yet), its packets one by one.
    /// </summary>
    private void WriteRun(ref ulong packets, ref ulong bytes)
    {
        int count = _coalescer.Count;
        if (count == 0) return;
        int instance = _coalescer.Instance;
        bool udp = _coalescer.IsUdp;
        int pieces = _coalescer.Build(_vnetScratch, _pieces, out int total, _port.LinkHeaderBytes);
        if (count > 1 && _port.WriteSuper(instance, _pieces, pieces, total))
        {
            packets += (ulong)count;
            bytes += (ulong)(total - VirtioNetHdr.Bytes - _port.LinkHeaderBytes);
            _counters.Add(Counter.TunSuperPacketsWritten);
            _counters.Add(Counter.SegmentsCoalesced, (ulong)count);
            if (udp) _counters.Add(Counter.UdpDatagramsCoalesced, (ulong)count);
        }
        else
        {
            for (int i = 0; i < count; i++)
            {
                byte* packet = _coalescer.Packet(i, out int length);
                if (_port.Write(instance, packet, length)) { packets++; bytes += (ulong)length; }
            }
        }
        _coalescer.Clear();
    }

    public void Dispose()
    {
        Sockets.Close(_udpFd);
        Sockets.Close(_rawFd);
        Sockets.Close(_udp6Fd);
        Sockets.Close(_raw6Fd);
        _send.Dispose();
        _send6.Dispose();
        _receive.Dispose();
        _itrBuffers.Dispose();
        _etrBuffers.Dispose();
        _scratch.Dispose();
        foreach (int fd in _gsoFds.Concat(_gso6Fds)) Sockets.Close(fd);
        _port.Dispose();
        foreach (var socket in _underlay) socket.Dispose();
        _superBuffers?.Dispose();
        _groBuffers?.Dispose();
        if (_gsoOut != null) NativeMemory.AlignedFree(_gsoOut);
        NativeMemory.Free(_pieces);
        NativeMemory.Free(_runPieces);
        NativeMemory.Free(_vnetScratch);
        if (_held != null) NativeMemory.Free(_held);
        if (_segmentHeaders != null) NativeMemory.AlignedFree(_segmentHeaders);
    }
}
