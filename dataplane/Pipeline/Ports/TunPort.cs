using System.Runtime.InteropServices;
using FastXtr.Dataplane.Buffers;
using FastXtr.NativeInterop;
using FastXtr.SharedMemory;

namespace FastXtr.Dataplane.Ports;

/// <summary>
/// The EID side through TUN devices: this worker's queue of each instance's TUN. With virtio-net headers (offloads
/// on) each read packet has its header in the buffer's headroom, and writes carry one (empty, or a super-packet's).
/// </summary>
public sealed unsafe class TunPort : IEidPort
{
    private readonly int[] _fds;
    private readonly WorkerCounters _counters;
    private readonly IoVec* _pieces;
    // An empty virtio-net header (its bytes are never written), and behind it room for a packet to be written with it in one piece.
    private readonly byte* _headerAndPacket;
    /// <summary>Packets up to this long are copied behind the header and written whole; longer ones are gathered.</summary>
    private const int CopyLimit = 2048;

    public TunPort(IReadOnlyList<TunDevice> tuns, int queue, WorkerCounters counters)
    {
        _fds = tuns.Select(t => t.QueueFd(queue)).ToArray();
        HasVnetHeader = tuns.Count > 0 && tuns.All(t => t.HasVnetHeader);
        TakesSuperPackets = HasVnetHeader && tuns.All(t => (t.Offloads & (Linux.TUN_F_TSO4 | Linux.TUN_F_TSO6)) != 0);
        _counters = counters;
        _pieces = (IoVec*)NativeMemory.AllocZeroed((nuint)(2 * sizeof(IoVec)));
        _headerAndPacket = (byte*)NativeMemory.AllocZeroed((nuint)(VirtioNetHdr.Bytes + CopyLimit));
    }

    public int InstanceCount => _fds.Length;
    public bool HasVnetHeader { get; }
    public bool CarriesSuperFrames => false;
    public bool TakesSuperPackets { get; }
    public int LinkHeaderBytes => 0;
    public SuperFrameHandler? SuperFrame { get; set; }

    public IReadOnlyList<int> PollFds => _fds;

    public int Read(int instance, PacketBuffers buffers, Span<int> lengths, ref ulong bytes, out int superFrames)
    {
        superFrames = 0;
        int fd = _fds[instance];
        int header = HasVnetHeader ? VirtioNetHdr.Bytes : 0;
        int n = 0;
        while (n < lengths.Length)
        {
            // With virtio-net headers the header lands in the headroom, the packet where it always does.
            int r = TunDevice.Read(fd, buffers.Data(n) - header, buffers.PacketBytes);
            if (r <= header) break;
            lengths[n++] = r - header;
            bytes += (ulong)(r - header);
        }
        return n;
    }

    public void FinishBatch(int instance, long now) { }

    public bool Write(int instance, byte* packet, int length)
    {
        bool ok;
        if (!HasVnetHeader) ok = TunDevice.Write(_fds[instance], packet, length);
        else if (length <= CopyLimit)
        {
            // One write of a copy behind the empty header: writev's import of an iovec array costs more than
            // copying a packet this short (measured on a TUN: 2.79 us per writev of header + 64 bytes, 2.66 us per
            // copy and write).
            Buffer.MemoryCopy(packet, _headerAndPacket + VirtioNetHdr.Bytes, length, length);
            ok = TunDevice.Write(_fds[instance], _headerAndPacket, VirtioNetHdr.Bytes + length);
        }
        else
        {
            _pieces[0] = new IoVec { Base = _headerAndPacket, Length = VirtioNetHdr.Bytes };
            _pieces[1] = new IoVec { Base = packet, Length = (nuint)length };
            ok = TunDevice.WriteGather(_fds[instance], _pieces, 2, VirtioNetHdr.Bytes + length);
        }
        if (!ok) _counters.Add(Counter.DropTunWriteFailed);
        return ok;
    }

    public bool WriteSuper(int instance, IoVec* pieces, int count, int totalLength) =>
        TakesSuperPackets && TunDevice.WriteGather(_fds[instance], pieces, count, totalLength);

    public void Flush() { }

    public void Dispose()
    {
        // The TUN descriptors belong to the host's TunDevice objects, which close them.
        NativeMemory.Free(_pieces);
        NativeMemory.Free(_headerAndPacket);
    }
}
