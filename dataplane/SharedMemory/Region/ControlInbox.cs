namespace FastXtr.SharedMemory;

/// <summary>
/// fastxtr rtr: the control messages one worker found on the LISP data port (Info-Requests from xTRs behind NAT,
/// which must come to 4341 so that the NAT's binding is the one data uses), handed to the RTR's control thread. A
/// ring of fixed slots with one producer (the worker) and one consumer: nothing allocated or locked per message, and a
/// flood fills it and is counted (DropRtrInboxFull), never queued without bound.
/// </summary>
public sealed class ControlInbox
{
    /// <summary>The longest message kept: an Info-Request is under 100 bytes.</summary>
    public const int SlotBytes = 512;
    public const int Slots = 256;

    private readonly byte[] _data = new byte[Slots * SlotBytes];
    private readonly int[] _lengths = new int[Slots];
    private readonly UInt128[] _sources = new UInt128[Slots];
    private readonly ushort[] _ports = new ushort[Slots];
    private long _head; // next slot the producer writes
    private long _tail; // next slot the consumer reads

    /// <summary>The worker's side: copies the message in; false when it is too long or the ring is full.</summary>
    /// <param name="source">The outer source: IPv6, or IPv4 in its mapped form (<see cref="FastXtr.Packets.MappedIpv4"/>).</param>
    public bool TryPost(ReadOnlySpan<byte> message, in UInt128 source, ushort sourcePort)
    {
        if (message.Length > SlotBytes) return false;
        long head = _head;
        if (head - Volatile.Read(ref _tail) >= Slots) return false;
        int slot = (int)(head % Slots);
        message.CopyTo(_data.AsSpan(slot * SlotBytes, SlotBytes));
        _lengths[slot] = message.Length;
        _sources[slot] = source;
        _ports[slot] = sourcePort;
        Volatile.Write(ref _head, head + 1);
        return true;
    }

    /// <summary>The control thread's side: the oldest message, copied into <paramref name="into"/> (at least <see cref="SlotBytes"/>).</summary>
    public bool TryTake(Span<byte> into, out int length, out UInt128 source, out ushort sourcePort)
    {
        long tail = _tail;
        if (tail == Volatile.Read(ref _head)) { length = 0; source = 0; sourcePort = 0; return false; }
        int slot = (int)(tail % Slots);
        length = _lengths[slot];
        _data.AsSpan(slot * SlotBytes, length).CopyTo(into);
        source = _sources[slot];
        sourcePort = _ports[slot];
        Volatile.Write(ref _tail, tail + 1);
        return true;
    }
}
