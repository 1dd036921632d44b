using FastXtr.Dataplane.Buffers;
using FastXtr.NativeInterop;

namespace FastXtr.Dataplane.Ports;

/// <summary>
/// The EID side of a worker: where the agents' packets come from and where decapsulated ones go, one per instance
/// (agent group). A port owns its framing (virtio-net headers, Ethernet, neighbours) and its descriptors; the worker's
/// ITR and ETR stages see IP packets only. A new kind of EID-side I/O (AF_XDP) is one new implementation.
/// </summary>
public unsafe interface IEidPort : IDisposable
{
    int InstanceCount { get; }

    /// <summary>The descriptors the worker polls for its instances' packets (one per instance, or more: af-xdp).</summary>
    IReadOnlyList<int> PollFds { get; }

    /// <summary>The port may hand over super-frames (longer than its link's MTU) that the worker must cut (af-packet).</summary>
    bool CarriesSuperFrames { get; }

    /// <summary>Every packet read carries a virtio-net header just in front of it (in the buffer's headroom).</summary>
    bool HasVnetHeader { get; }

    /// <summary>
    /// Reads up to <paramref name="lengths"/>.Length packets of an instance into <paramref name="buffers"/> (each at
    /// the buffer's data position, after the headroom) and their lengths; adds their bytes. Packets too large for the
    /// batch (an af-packet super-frame) go to <see cref="SuperFrame"/>, counted in <paramref name="superFrames"/>.
    /// </summary>
    int Read(int instance, PacketBuffers buffers, Span<int> lengths, ref ulong bytes, out int superFrames);

    /// <summary>Called once the worker sent a batch it read: a super-frame held back for order goes out now.</summary>
    void FinishBatch(int instance, long now);

    /// <summary>One IP packet to the instance's EID side; counts its own drop and returns false when it did not go.</summary>
    bool Write(int instance, byte* packet, int length);

    /// <summary>
    /// The port takes coalesced TCP super-packets (<see cref="WriteSuper"/>): a TUN with TSO, an af-packet interface
    /// through a packet socket with virtio-net headers.
    /// </summary>
    bool TakesSuperPackets { get; }

    /// <summary>Bytes the port writes between a super-packet's virtio-net header and its IP header (Ethernet: 14).</summary>
    int LinkHeaderBytes { get; }

    /// <summary>
    /// One super-packet gathered from <paramref name="pieces"/>: the first starts with the virtio-net header, followed
    /// by <see cref="LinkHeaderBytes"/> the port fills and the IP and TCP headers; the rest are payloads. Returns false,
    /// having sent nothing and counted nothing, when the port cannot send it whole (the caller writes the packets one
    /// by one instead).
    /// </summary>
    bool WriteSuper(int instance, IoVec* pieces, int count, int totalLength);

    /// <summary>Hands what <see cref="Write"/> queued to the kernel (one system call per instance that has any).</summary>
    void Flush();

    /// <summary>
    /// Where a super-frame the port cannot put in a batch goes: (instance, IP packet, length, the EID link's MTU, the
    /// datagram payload size of a UDP one (its sender's UDP_SEGMENT size; 0 for TCP), timestamp).
    /// </summary>
    SuperFrameHandler? SuperFrame { get; set; }
}

public unsafe delegate void SuperFrameHandler(int instance, byte* ip, int length, int linkMtu, int udpDatagramSize, long now);
