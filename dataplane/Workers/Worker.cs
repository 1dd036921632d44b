using System.Diagnostics;
using FastXtr.Dataplane.Buffers;
using FastXtr.Dataplane.Decap;
using FastXtr.Dataplane.Encap;
using FastXtr.Dataplane.Shared;
using FastXtr.NativeInterop;

namespace FastXtr.Dataplane.Workers;

/// <summary>
/// One run-to-completion worker: it owns queue <c>index</c> of every instance's TUN, one UDP socket on the LISP
/// data port (SO_REUSEPORT spreads flows across workers) and one raw sending socket. Each turn it reads a batch
/// from each TUN, encapsulates and sends it with one sendmmsg, then takes a batch from the UDP socket with one
/// recvmmsg, decapsulates and writes each packet to its instance's TUN. It sleeps in poll only when a turn found
/// nothing. Nothing on this path allocates, locks, logs or throws.
/// </summary>
public sealed unsafe class Worker : IDisposable
{
    private const int MaxFragments = 16;
    private readonly int _index;
    private readonly DataplaneOptions _options;
    private readonly int[] _tunFds;
    private readonly int _udpFd;
    private readonly int _rawFd;
    private readonly PacketBuffers _itrBuffers;
    private readonly PacketBuffers _etrBuffers;
    private readonly PacketBuffers _scratch;
    private readonly MessageBatch _send;
    private readonly MessageBatch _receive;
    private readonly Encapsulator _encap;
    private readonly Decapsulator _decap;
    private readonly WorkerCounters _counters;
    private readonly int[] _lengths;
    private readonly int[] _fragmentLengths = new int[MaxFragments];
    private readonly uint[] _instanceIds;
    private volatile bool _stop;

    public Worker(int index, DataplaneOptions options, SharedRegion region, IReadOnlyList<TunDevice> tuns)
    {
        _index = index;
        _options = options;
        _tunFds = tuns.Select(t => t.QueueFd(index)).ToArray();
        _instanceIds = options.Instances.Select(i => i.InstanceId).ToArray();
        _counters = region.Counters(index);
        _udpFd = Sockets.OpenUdp4(options.RlocAddress, options.Port, reusePort: true, options.SocketBufferBytes);
        try
        {
            _rawFd = Sockets.OpenRawIpv4Sender(options.SocketBufferBytes);
        }
        catch
        {
            Sockets.Close(_udpFd);
            throw;
        }
        _itrBuffers = new PacketBuffers(options.Batch);
        _etrBuffers = new PacketBuffers(options.Batch);
        // Scratch: one ICMP reply and up to MaxFragments fragments of one packet.
        _scratch = new PacketBuffers(1 + MaxFragments);
        _send = new MessageBatch(options.Batch + MaxFragments);
        _receive = new MessageBatch(options.Batch);
        byte** rx = stackalloc byte*[options.Batch];
        for (int i = 0; i < options.Batch; i++) rx[i] = _etrBuffers.Data(i);
        _receive.PrepareReceive(rx, PacketBuffers.MaxPacketBytes);
        _lengths = new int[options.Batch];
        _encap = new Encapsulator(region.MapCache, options.RlocAddress, options.OuterMtu, _counters, region.MissRing(index),
            new MissSuppressor(), (ulong)Stopwatch.GetTimestamp() ^ ((ulong)index << 56));
        _decap = new Decapsulator(_instanceIds, _counters, region.MapCache, options.DecapFilter, region.MissRing(index));
    }

    public void Stop() => _stop = true;

    /// <summary>The worker's loop; returns when <see cref="Stop"/> is called.</summary>
    public void Run()
    {
        Span<int> fds = stackalloc int[_tunFds.Length + 1];
        _tunFds.CopyTo(fds);
        fds[^1] = _udpFd;
        while (!_stop)
        {
            int work = 0;
            for (int k = 0; k < _tunFds.Length; k++) work += Encapsulate(k);
            work += Decapsulate();
            if (work == 0) Cpu.PollReadable(fds, 100);
        }
    }

    private int Encapsulate(int instance)
    {
        int fd = _tunFds[instance];
        int n = 0;
        ulong bytes = 0;
        while (n < _options.Batch)
        {
            int r = TunDevice.Read(fd, _itrBuffers.Data(n), PacketBuffers.MaxPacketBytes);
            if (r <= 0) break;
            _lengths[n++] = r;
            bytes += (ulong)r;
        }
        if (n == 0) return 0;
        _counters.Add(Counter.TunRxPackets, (ulong)n);
        _counters.Add(Counter.TunRxBytes, bytes);
        long now = Stopwatch.GetTimestamp();
        uint iid = _instanceIds[instance];
        byte* reply = _scratch.Data(0);
        ulong sentBytes = 0;
        for (int i = 0; i < n; i++)
        {
            byte* buffer = _itrBuffers.Buffer(i);
            var d = _encap.Process(buffer, _lengths[i], iid, 0, now, reply, out int replyLength);
            switch (d.Verdict)
            {
                case ItrVerdict.Send:
                    _send.Add(buffer + d.OuterStart, d.OuterLength, d.Destination, 0);
                    sentBytes += (ulong)d.OuterLength;
                    break;
                case ItrVerdict.SendFragmented:
                    // Flush what is queued so the fragment scratch can be reused by this packet.
                    Flush();
                    int count = _encap.Fragment(new ReadOnlySpan<byte>(buffer + d.OuterStart, d.OuterLength), _scratch.Data(1), _fragmentLengths);
                    for (int f = 0; f < count; f++) _send.Add(_scratch.Data(1) + (long)f * PacketBuffers.MaxPacketBytes, _fragmentLengths[f], d.Destination, 0);
                    if (count == 0) _counters.Add(Counter.DropTooBig);
                    Flush();
                    break;
                case ItrVerdict.ReplyTooBig:
                    if (!TunDevice.Write(fd, reply, replyLength)) _counters.Add(Counter.DropTunWriteFailed);
                    break;
            }
        }
        _counters.Add(Counter.UdpTxBytes, sentBytes);
        Flush();
        _counters.Add(Counter.Batches);
        return n;
    }

    private void Flush()
    {
        if (_send.Count == 0) return;
        int sent = _send.Send(_rawFd, out int failed);
        _counters.Add(Counter.UdpTxPackets, (ulong)sent);
        if (failed > 0) _counters.Add(Counter.DropSendFailed, (ulong)failed);
    }

    private int Decapsulate()
    {
        int m = _receive.Receive(_udpFd);
        if (m == 0) return 0;
        ulong rxBytes = 0, txBytes = 0, txPackets = 0;
        for (int i = 0; i < m; i++)
        {
            int length = _receive.Length(i);
            rxBytes += (ulong)length;
            var (ttl, tos) = _receive.OuterTtlTos(i);
            byte* data = _etrBuffers.Data(i);
            var d = _decap.Process(new Span<byte>(data, length), _receive.SourceAddress(i), ttl, tos);
            if (!d.Deliver) continue;
            if (TunDevice.Write(_tunFds[d.Instance], data + d.InnerOffset, d.InnerLength))
            {
                txPackets++;
                txBytes += (ulong)d.InnerLength;
            }
            else
            {
                _counters.Add(Counter.DropTunWriteFailed);
            }
        }
        _counters.Add(Counter.UdpRxPackets, (ulong)m);
        _counters.Add(Counter.UdpRxBytes, rxBytes);
        _counters.Add(Counter.TunTxPackets, txPackets);
        _counters.Add(Counter.TunTxBytes, txBytes);
        return m;
    }

    public void Dispose()
    {
        Sockets.Close(_udpFd);
        Sockets.Close(_rawFd);
        _send.Dispose();
        _receive.Dispose();
        _itrBuffers.Dispose();
        _etrBuffers.Dispose();
        _scratch.Dispose();
    }
}
