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

    private readonly byte* _memory;

    public PacketBuffers(int count)
    {
        Count = count;
        _memory = (byte*)NativeMemory.AlignedAlloc((nuint)((long)count * BufferBytes), 64);
    }

    public int Count { get; }

    /// <summary>The start of buffer <paramref name="i"/> (its headroom begins here).</summary>
    public byte* Buffer(int i) => _memory + (long)i * BufferBytes;

    /// <summary>Where a packet is read into buffer <paramref name="i"/>, after the headroom.</summary>
    public byte* Data(int i) => Buffer(i) + HeadroomBytes;

    public void Dispose() => NativeMemory.AlignedFree(_memory);
}
