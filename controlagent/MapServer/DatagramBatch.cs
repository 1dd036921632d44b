using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using FastXtr.NativeInterop;

namespace FastXtr.MapServer;

/// <summary>
/// One IPv4 worker's batched socket I/O: up to <see cref="ReceiveSlots"/> datagrams per recvmmsg, and the replies
/// they caused queued (copied, since the core reuses its output buffer) and sent with one sendmmsg when the batch
/// is handled. Two system calls per batch instead of two per message; at 230 ns a call and .NET's per-call socket
/// work, that is most of what a Map-Request costs besides the answer itself.
/// </summary>
internal sealed unsafe class DatagramBatch : IDisposable
{
    public const int ReceiveSlots = 32;
    private const int SlotBytes = 65536; // the largest UDP payload fits: nothing is ever truncated
    private const int SendSlots = 64;
    private const int ArenaBytes = 1 << 20;

    private readonly int _fd;
    private readonly byte* _receiveMemory;
    private readonly byte** _slots;
    private readonly byte* _arena;
    private readonly MessageBatch _incoming = new(ReceiveSlots);
    private readonly MessageBatch _outgoing = new(SendSlots);
    private int _arenaUsed;

    /// <param name="receive">False for a sender only (the Map-Server's publisher): no receive slots are allocated.</param>
    public DatagramBatch(Socket socket, bool receive = true)
    {
        _fd = (int)socket.Handle;
        _arena = (byte*)NativeMemory.Alloc(ArenaBytes);
        if (!receive) return;
        _receiveMemory = (byte*)NativeMemory.Alloc((nuint)ReceiveSlots * SlotBytes);
        _slots = (byte**)NativeMemory.Alloc((nuint)(ReceiveSlots * sizeof(byte*)));
        for (int i = 0; i < ReceiveSlots; i++) _slots[i] = _receiveMemory + (nint)i * SlotBytes;
        _incoming.PrepareReceive(_slots, SlotBytes);
    }

    /// <summary>Replies that could not be sent (EAGAIN after a wait, or refused by the kernel), since the start.</summary>
    public long SendFailures { get; private set; }

    /// <summary>Receives what is waiting, without blocking; 0 when nothing is.</summary>
    public int Receive() => _incoming.Receive(_fd);

    /// <summary>Waits up to <paramref name="timeoutMs"/> for the socket to become readable.</summary>
    public void Wait(int timeoutMs) => Cpu.PollReadable([_fd], timeoutMs);

    public ReadOnlySpan<byte> Datagram(int i) => new(_slots[i], _incoming.Length(i));

    /// <summary>
    /// Where datagram <paramref name="i"/> came from. The last one made is handed out again for the same address and
    /// port (an xTR sends its refreshes from one): no two objects a datagram for the commonest case. Callers keep it
    /// (a registration's source) and never change it.
    /// </summary>
    public IPEndPoint Source(int i)
    {
        uint address = _incoming.SourceAddress(i);
        ushort port = _incoming.SourcePort(i);
        if (_lastSource is null || address != _lastAddress || port != _lastPort)
        {
            _lastSource = new IPEndPoint(new IPAddress((long)System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(address)), port);
            (_lastAddress, _lastPort) = (address, port);
        }
        return _lastSource;
    }

    private IPEndPoint? _lastSource;
    private uint _lastAddress;
    private ushort _lastPort;

    /// <summary>Queues one reply; false when it is not for an IPv4 destination (the caller sends it itself).</summary>
    public bool Queue(ReadOnlySpan<byte> datagram, IPEndPoint destination)
    {
        var address = destination.Address;
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        if (address.AddressFamily != AddressFamily.InterNetwork) return false;
        if (_outgoing.Count == SendSlots || _arenaUsed + datagram.Length > ArenaBytes) Flush();
        byte* at = _arena + _arenaUsed;
        datagram.CopyTo(new Span<byte>(at, datagram.Length));
        _arenaUsed += datagram.Length;
        _outgoing.Add(at, datagram.Length, Ipv4Header.ToUInt32(address), (ushort)destination.Port);
        return true;
    }

    /// <summary>Sends every queued reply.</summary>
    public void Flush()
    {
        if (_outgoing.Count > 0)
        {
            _outgoing.Send(_fd, out int failed);
            SendFailures += failed;
        }
        _arenaUsed = 0;
    }

    public void Dispose()
    {
        _incoming.Dispose();
        _outgoing.Dispose();
        NativeMemory.Free(_receiveMemory);
        NativeMemory.Free(_slots);
        NativeMemory.Free(_arena);
    }
}
