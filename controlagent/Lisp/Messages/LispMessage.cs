namespace FastXtr.Lisp.Messages;

/// <summary>Entry points that work on any control message: its type, and a printable decode.</summary>
public static class LispMessage
{
    /// <summary>The largest control message we build: an IPv4 UDP datagram's payload.</summary>
    public const int MaxMessageLength = 65507;

    public delegate int Encoder(Span<byte> destination);

    /// <summary>The message type in the first nibble, or <see cref="LispMessageType.Reserved"/> for an empty message.</summary>
    public static LispMessageType PeekType(ReadOnlySpan<byte> message) => message.IsEmpty ? LispMessageType.Reserved : (LispMessageType)(message[0] >> 4);

    internal static byte[] EncodeToArray(Encoder encode)
    {
        // A pooled scratch buffer: a fresh 64 KB array per message would land on the large-object heap.
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(MaxMessageLength);
        try
        {
            int n = encode(buffer);
            if (n < 0) throw new LispFormatException(LispFormatError.DestinationTooSmall, 0, "message larger than a UDP datagram");
            return buffer.AsSpan(0, n).ToArray();
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Decodes any control message and returns a one-line description, or the error with its offset.</summary>
    public static string Describe(ReadOnlySpan<byte> message)
    {
        switch (PeekType(message))
        {
            case LispMessageType.MapRequest: { var m = new MapRequest(); var r = m.TryDecode(message); return r.Ok ? m.ToString() : "malformed Map-Request: " + r.Describe(); }
            case LispMessageType.MapReply: { var m = new MapReply(); var r = m.TryDecode(message); return r.Ok ? m.ToString() : "malformed Map-Reply: " + r.Describe(); }
            case LispMessageType.MapRegister: { var m = new MapRegister(); var r = m.TryDecode(message); return r.Ok ? m.ToString() : "malformed Map-Register: " + r.Describe(); }
            case LispMessageType.MapReferral: { var m = new MapReferral(); var r = m.TryDecode(message); return r.Ok ? m.ToString() : "malformed Map-Referral: " + r.Describe(); }
            case LispMessageType.InfoRequest: { var m = new InfoMessage(); var r = m.TryDecode(message); return r.Ok ? m.ToString() : "malformed Info-Request/Info-Reply: " + r.Describe(); }
            case LispMessageType.MapNotify:
            case LispMessageType.MapNotifyAck: { var m = new MapNotify(); var r = m.TryDecode(message); return r.Ok ? m.ToString() : "malformed Map-Notify: " + r.Describe(); }
            case LispMessageType.EncapsulatedControlMessage:
            {
                var m = new EncapsulatedControlMessage();
                var r = m.TryDecode(message);
                return r.Ok ? m + " :: " + Describe(m.InnerMessage) : "malformed ECM: " + r.Describe();
            }
            default:
                return message.IsEmpty ? "empty message" : $"unknown message type {message[0] >> 4}";
        }
    }
}
