using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;
using FastXtr.Packets;

namespace FastXtr.Fuzz;

/// <summary>
/// One fuzz target per decoder. Each feeds arbitrary bytes to the decoder; a decoded message is encoded again and
/// that encoding must decode and re-encode to itself. Anything but a clean failure or a stable round trip throws
/// <see cref="FuzzFindingException"/>, and any other exception escaping is a finding too (the fuzzer reports it as a crash).
/// The test suite replays every seed in corpus/&lt;target&gt;/ through the same functions.
/// </summary>
public static class FuzzTargets
{
    public static readonly IReadOnlyDictionary<string, Action<ReadOnlySpan<byte>>> All = new Dictionary<string, Action<ReadOnlySpan<byte>>>
    {
        ["map-request"] = MapRequestTarget,
        ["map-reply"] = MapReplyTarget,
        ["map-register"] = MapRegisterTarget,
        ["map-notify"] = MapNotifyTarget,
        ["ecm"] = EcmTarget,
        ["map-referral"] = MapReferralTarget,
        ["data-header"] = DataHeaderTarget,
        ["data-packet"] = DataPacketTarget,
        ["agent-context"] = AgentContextTarget,
        ["info"] = InfoTarget,
    };

    private static readonly byte[] Key = "fuzz-key"u8.ToArray();
    private static readonly byte[] Scratch = new byte[LispMessage.MaxMessageLength];
    private static readonly byte[] Scratch2 = new byte[LispMessage.MaxMessageLength];

    /// <summary>
    /// Messages reused across runs, as a server reuses them: decoding into dirty instances must still be exact.
    /// A nested class, so that they are built on first use, after SharpFuzz has set up its coverage map (an
    /// instrumented constructor run before that crashes).
    /// </summary>
    private static class Reused
    {
        public static readonly MapRequest Request = new(), Request2 = new();
        public static readonly MapReply Reply = new(), Reply2 = new();
        public static readonly MapRegister Register = new(), Register2 = new();
        public static readonly MapNotify Notify = new(), Notify2 = new();
        public static readonly EncapsulatedControlMessage Ecm = new(), Ecm2 = new();
        public static readonly MapReferral Referral = new(), Referral2 = new();
        public static readonly InfoMessage Info = new(), Info2 = new();
    }

    public static void MapRequestTarget(ReadOnlySpan<byte> data) => RoundTrip(data, Reused.Request, Reused.Request2, (m, d) => m.TryDecode(d), (m, s) => m.TryEncode(s));
    public static void MapReplyTarget(ReadOnlySpan<byte> data) => RoundTrip(data, Reused.Reply, Reused.Reply2, (m, d) => m.TryDecode(d), (m, s) => m.TryEncode(s));

    public static void MapReferralTarget(ReadOnlySpan<byte> data) => RoundTrip(data, Reused.Referral, Reused.Referral2, (m, d) => m.TryDecode(d), (m, s) => m.TryEncode(s));

    public static void InfoTarget(ReadOnlySpan<byte> data)
    {
        MessageAuthentication.Verify(data, Key);
        RoundTrip(data, Reused.Info, Reused.Info2, (m, d) => m.TryDecode(d), (m, s) => m.TryEncode(s));
    }

    public static void MapRegisterTarget(ReadOnlySpan<byte> data)
    {
        MessageAuthentication.Verify(data, Key);
        RoundTrip(data, Reused.Register, Reused.Register2, (m, d) => m.TryDecode(d), (m, s) => m.TryEncode(s));
    }

    public static void MapNotifyTarget(ReadOnlySpan<byte> data)
    {
        MessageAuthentication.Verify(data, Key);
        RoundTrip(data, Reused.Notify, Reused.Notify2, (m, d) => m.TryDecode(d), (m, s) => m.TryEncode(s));
    }

    public static void EcmTarget(ReadOnlySpan<byte> data)
    {
        RoundTrip(data, Reused.Ecm, Reused.Ecm2, (m, d) => m.TryDecode(d), (m, s) => m.TryEncode(s));
        if (Reused.Ecm.TryDecode(data).Ok) MapRequestTarget(Reused.Ecm.InnerMessage);
    }

    public static void DataHeaderTarget(ReadOnlySpan<byte> data)
    {
        if (!LispDataHeader.TryRead(data, out var h, out _)) return;
        Span<byte> b = stackalloc byte[LispDataHeader.Length];
        h.Write(b);
        if (!LispDataHeader.TryRead(b, out var h2, out _) || h2 != h) throw new FuzzFindingException("data header does not round-trip");
    }

    public static void DataPacketTarget(ReadOnlySpan<byte> data)
    {
        if (!LispDataPacket.TryParse(data, out var o, out _)) return;
        if (o.InnerOffset + o.InnerLength > data.Length || o.InnerLength < 0) throw new FuzzFindingException("inner packet outside the buffer");
    }

    public static void AgentContextTarget(ReadOnlySpan<byte> data)
    {
        var c = AgentContext.TryParse(data, out var e);
        if (c is null == e.Ok) throw new FuzzFindingException("context parse result and error disagree");
        if (c is not null && !c.Equals(AgentContext.TryParse(c.ToUtf8Json(), out _))) throw new FuzzFindingException("agent-context does not round-trip");
        var k = AgentConstraints.TryParse(data, out var e2);
        if (k is null == e2.Ok) throw new FuzzFindingException("constraints parse result and error disagree");
        if (k is not null && !k.Equals(AgentConstraints.TryParse(k.ToUtf8Json(), out _))) throw new FuzzFindingException("agent-constraints do not round-trip");
    }

    private delegate LispDecodeResult Decoder<T>(T message, ReadOnlySpan<byte> data);

    private static void RoundTrip<T>(ReadOnlySpan<byte> data, T first, T second, Decoder<T> decode, Func<T, byte[], int> encode)
    {
        var result = decode(first, data);
        if (!result.Ok)
        {
            if (result.Offset < 0 || result.Offset > data.Length) throw new FuzzFindingException($"error offset {result.Offset} outside a {data.Length}-byte input");
            return;
        }
        int n = encode(first, Scratch);
        if (n < 0) throw new FuzzFindingException("a decoded message does not fit the largest datagram");
        var again = decode(second, Scratch.AsSpan(0, n));
        if (!again.Ok) throw new FuzzFindingException($"our own encoding does not decode: {again.Describe()}");
        int m = encode(second, Scratch2);
        if (m != n || !Scratch.AsSpan(0, n).SequenceEqual(Scratch2.AsSpan(0, m))) throw new FuzzFindingException("encoding is not stable across a round trip");
    }
}

/// <summary>A fuzz finding: a decoder misbehaved without crashing.</summary>
public sealed class FuzzFindingException : Exception
{
    public FuzzFindingException() { }
    public FuzzFindingException(string message) : base(message) { }
    public FuzzFindingException(string message, Exception inner) : base(message, inner) { }
}
