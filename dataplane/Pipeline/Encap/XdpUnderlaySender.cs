using FastXtr.Dataplane.Ports;
using FastXtr.NativeInterop;
using FastXtr.SharedMemory;

namespace FastXtr.Dataplane.Encap;

/// <summary>
/// One worker's way out through AF_XDP on the underlay interface (--xdp-underlay): an encapsulated packet gets the
/// Ethernet header of its RLOC's next hop and goes into a UMEM chunk of the worker's underlay socket, sent with the
/// batch. The next hop's MAC comes from <see cref="UnderlayNextHops"/>, kept per RLOC in a worker-local cache that is
/// emptied at the end of the first batch after a new snapshot appears. A packet whose next hop is not known is left to the kernel (the caller's
/// raw socket), counted in itr-kernel-sent.
/// </summary>
public sealed unsafe class XdpUnderlaySender
{
    private const int EthernetHeaderBytes = EthernetEidSide.HeaderBytes;
    private readonly XdpSocket _socket;
    private readonly UnderlayNextHops _nextHops;
    private readonly WorkerCounters _counters;
    // RLOC -> next hop MAC, 0 for none; sized so that a gateway's usual RLOC count never makes it grow.
    private readonly Dictionary<uint, ulong> _cache = new(4096);
    private int _version = -1;
    private ulong _sent;

    public XdpUnderlaySender(XdpSocket socket, UnderlayNextHops nextHops, WorkerCounters counters)
    {
        _socket = socket;
        _nextHops = nextHops;
        _counters = counters;
    }

    /// <summary>
    /// The outer IPv4 packet (<paramref name="length"/> bytes at <paramref name="outer"/>, to <paramref name="rloc"/>)
    /// queued on the socket; false when the next hop is not known or the socket has no room: the caller sends it.
    /// </summary>
    public bool TrySend(byte* outer, int length, uint rloc)
    {
        ulong mac = NextHop(rloc);
        if (mac == 0 || length + EthernetHeaderBytes > _socket.MaxFrameBytes)
        {
            _counters.Add(Counter.ItrKernelSent);
            return false;
        }
        byte* chunk = _socket.TxChunk();
        if (chunk == null)
        {
            Flush();
            chunk = _socket.TxChunk();
            if (chunk == null) { _counters.Add(Counter.ItrKernelSent); return false; }
        }
        EthernetEidSide.WriteHeader(chunk, mac, _nextHops.Mac, ipv6: false);
        Buffer.MemoryCopy(outer, chunk + EthernetHeaderBytes, _socket.MaxFrameBytes - EthernetHeaderBytes, length);
        if (!_socket.Send(length + EthernetHeaderBytes)) { _counters.Add(Counter.ItrKernelSent); return false; }
        _sent++;
        return true;
    }

    /// <summary>
    /// The outer IPv4 packet, built in place in front of a packet received into a chunk of this socket's UMEM that the
    /// caller holds, sent where it lies: the next hop's Ethernet header written in front of it (the kernel's 256-byte
    /// receive headroom leaves room for it and the outer headers) and its address put on the TX ring; true when it
    /// went (the chunk with it). False when the next hop is not known or the TX ring stays full: the chunk is still
    /// the caller's, which sends the packet through the kernel.
    /// </summary>
    public bool TrySendHeld(byte* outer, int length, uint rloc)
    {
        ulong mac = NextHop(rloc);
        byte* frame = outer - EthernetHeaderBytes;
        if (mac == 0)
        {
            _counters.Add(Counter.ItrKernelSent);
            return false;
        }
        EthernetEidSide.WriteHeader(frame, mac, _nextHops.Mac, ipv6: false);
        if (!_socket.SendFrame(frame, length + EthernetHeaderBytes))
        {
            Flush();
            if (!_socket.SendFrame(frame, length + EthernetHeaderBytes)) { _counters.Add(Counter.ItrKernelSent); return false; }
        }
        _sent++;
        _counters.Add(Counter.XskSentInPlace);
        return true;
    }

    private ulong NextHop(uint rloc)
    {
        if (!_cache.TryGetValue(rloc, out ulong mac))
        {
            mac = _nextHops.Current.TryResolve(rloc, out ulong found) ? found : 0;
            _cache[rloc] = mac;
        }
        return mac;
    }

    /// <summary>
    /// Hands the queued frames to the kernel and counts them as sent; after a new reading of the kernel's tables the
    /// cache starts again (checked once per batch, not per packet).
    /// </summary>
    public void Flush()
    {
        int version = _nextHops.Current.Version;
        if (version != _version)
        {
            _cache.Clear();
            _version = version;
        }
        if (_sent > 0)
        {
            _counters.Add(Counter.UdpTxPackets, _sent);
            _sent = 0;
        }
        if (_socket.Kick() != 0) _counters.Add(Counter.DropSendFailed);
    }
}
