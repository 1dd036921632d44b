using System.Runtime.InteropServices;

namespace FastXtr.Dataplane.Buffers;

/// <summary>
/// One worker's packet buffers in native memory: <see cref="Count"/> buffers of <see cref="BufferBytes"/>, each
/// with <see cref="HeadroomBytes"/> in front of where a packet is read, so that encapsulation prepends the outer
/// IPv4 + UDP + LISP header (36 bytes) in place instead of copying the payload. 128 bytes of headroom also leave
/// room for an IPv6 outer header (56 bytes) and a virtio-net header for segmentation offloads later.
/// </summary>
public sealed unsafe class PacketBuffers : IDisposable
{
    public const int HeadroomBytes = 128;
    /// <summary>Largest inner packet: a 9000-byte jumbo frame plus slack.</summary>
    public const int MaxPacketBytes = 9216;
    public const int BufferBytes = HeadroomBytes + MaxPacketBytes;

    /// <summary>Largest super-packet with offloads: 64 KB of IP packet plus a virtio-net header.</summary>
    public const int MaxSuperPacketBytes = 65536 + 16;

    private readonly byte* _memory;
    private readonly int _stride;

    /// <param name="packetBytes">Room for each packet after the headroom (<see cref="MaxPacketBytes"/>, or
    /// <see cref="MaxSuperPacketBytes"/> for offloads).</param>
    public PacketBuffers(int count, int packetBytes = MaxPacketBytes)
    {
        Count = count;
        PacketBytes = packetBytes;
        _stride = (HeadroomBytes + packetBytes + 63) & ~63;
        _memory = (byte*)NativeMemory.AlignedAlloc((nuint)((long)count * _stride), 64);
    }

    public int Count { get; }
    public int PacketBytes { get; }

    /// <summary>The start of buffer <paramref name="i"/> (its headroom begins here).</summary>
    public byte* Buffer(int i) => _memory + (long)i * _stride;

    /// <summary>Where a packet is read into buffer <paramref name="i"/>, after the headroom.</summary>
    public byte* Data(int i) => Buffer(i) + HeadroomBytes;

    public void Dispose() => NativeMemory.AlignedFree(_memory);
}
