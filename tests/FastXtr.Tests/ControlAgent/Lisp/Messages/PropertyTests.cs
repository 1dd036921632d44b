using CsCheck;
using FastXtr.Lisp.Messages;
using FastXtr.Packets;
using FastXtr.Fuzz;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.Lisp;

/// <summary>
/// Round trips for every codec over generated messages, and hostile input (random bytes and mutations of the golden
/// vectors) into every decoder: decoding must fail cleanly or round-trip exactly, and never throw.
/// </summary>
[TestFixture]
public class PropertyTests
{
    private const int Iterations = 2000;

    private static void AssertRoundTrip<T>(T original, Func<T, byte[]> encode, Func<T> fresh, Func<T, byte[], LispDecodeResult> decode, Func<T, T, bool>? equal = null)
    {
        byte[] bytes = encode(original);
        T decoded = fresh();
        var result = decode(decoded, bytes);
        if (!result.Ok) throw new AssertionException($"our encoding of {original} does not decode: {result.Describe()}\n{Hex.Format(bytes)}");
        byte[] again = encode(decoded);
        if (!bytes.AsSpan().SequenceEqual(again)) throw new AssertionException($"re-encoding differs:\n{Hex.Format(bytes)}\n{Hex.Format(again)}");
        if (equal is not null && !equal(original, decoded)) throw new AssertionException($"decoded fields differ from {original}");
    }

    private static bool RecordsEqual(RecycledList<MappingRecord> a, RecycledList<MappingRecord> b) => a.Count == b.Count && a.Zip(b).All(p => p.First.ContentEquals(p.Second));

    [Test]
    public void MapRequest_RoundTrips() => Generators.MapRequest.Sample(m => AssertRoundTrip(m, x => x.ToArray(), () => new MapRequest(), (x, b) => x.TryDecode(b),
        (a, b) => a.Nonce == b.Nonce && a.SourceEid.ContentEquals(b.SourceEid) && a.ItrRlocs.Count == b.ItrRlocs.Count
                  && a.Records.Zip(b.Records).All(p => p.First.ContentEquals(p.Second)) && (!a.MapDataPresent || a.MapReplyRecord.ContentEquals(b.MapReplyRecord))
                  && a.XtrId == b.XtrId && a.SiteId == b.SiteId), iter: Iterations);

    [Test]
    public void MapReply_RoundTrips() => Generators.MapReply.Sample(m => AssertRoundTrip(m, x => x.ToArray(), () => new MapReply(), (x, b) => x.TryDecode(b),
        (a, b) => a.Nonce == b.Nonce && a.Probe == b.Probe && RecordsEqual(a.Records, b.Records) && a.SecurityData.SequenceEqual(b.SecurityData)), iter: Iterations);

    [Test]
    public void MapReferral_RoundTrips() => Generators.MapReferral.Sample(m => AssertRoundTrip(m, x => x.ToArray(), () => new MapReferral(), (x, b) => x.TryDecode(b),
        (a, b) => a.Nonce == b.Nonce && a.Records.Count == b.Records.Count && a.Records.Zip(b.Records).All(p => p.First.ContentEquals(p.Second))), iter: Iterations);

    [Test]
    public void MapRegister_RoundTrips() => Generators.MapRegister.Sample(m => AssertRoundTrip(m, x => x.ToArray(), () => new MapRegister(), (x, b) => x.TryDecode(b),
        (a, b) => a.Nonce == b.Nonce && a.KeyId == b.KeyId && a.AlgorithmId == b.AlgorithmId && a.AuthenticationData.SequenceEqual(b.AuthenticationData)
                  && a.WantMapNotify == b.WantMapNotify && a.MergeRequest == b.MergeRequest && RecordsEqual(a.Records, b.Records) && a.XtrId == b.XtrId), iter: Iterations);

    [Test]
    public void MapNotify_RoundTrips() => Generators.MapNotify.Sample(m => AssertRoundTrip(m, x => x.ToArray(), () => new MapNotify(), (x, b) => x.TryDecode(b),
        (a, b) => a.IsAck == b.IsAck && a.Nonce == b.Nonce && RecordsEqual(a.Records, b.Records) && a.SiteId == b.SiteId), iter: Iterations);

    [Test]
    public void SignedMessages_VerifyWithTheirKey_AndFailWithAnother() =>
        Gen.Select(Generators.MapRegister, Gen.Byte.Array[1, 80], Gen.Bool).Sample(t =>
        {
            var (m, key, sha1) = t;
            m.AlgorithmId = sha1 ? AuthenticationAlgorithm.HmacSha1 : AuthenticationAlgorithm.HmacSha256;
            byte[] signed = m.ToSignedArray(key);
            Assert.That(MessageAuthentication.Verify(signed, key), Is.EqualTo(AuthenticationFailure.None));
            byte[] other = key.Append((byte)1).ToArray();
            Assert.That(MessageAuthentication.Verify(signed, other), Is.EqualTo(AuthenticationFailure.DigestMismatch));
        }, iter: 300);

    [Test]
    public void Ecm_RoundTrips() =>
        Gen.Select(Generators.MapRequest, Gen.Bool, Gen.UInt, Gen.UInt, Gen.Int[0, 15]).Sample(t =>
        {
            var (inner, v6, s, d, flags) = t;
            var ecm = new EncapsulatedControlMessage { Security = (flags & 8) != 0, DdtOriginated = (flags & 4) != 0, ToEtr = (flags & 2) != 0, ToMapServer = (flags & 1) != 0 };
            ecm.InnerIsIpv6 = v6;
            ecm.InnerSource = v6 ? new UInt128(s, d) : s;
            ecm.InnerDestination = v6 ? new UInt128(d, s) : d;
            ecm.SetInnerMessage(inner.ToArray());
            AssertRoundTrip(ecm, x => x.ToArray(), () => new EncapsulatedControlMessage(), (x, b) => x.TryDecode(b),
                (a, b) => a.InnerSource == b.InnerSource && a.InnerDestination == b.InnerDestination && a.InnerMessage.SequenceEqual(b.InnerMessage) && a.ToEtr == b.ToEtr);
        }, iter: 500);

    [Test]
    public void DataHeader_RoundTrips() =>
        Gen.Select(Gen.UInt[0, 0xFFFFFF], Gen.UInt[0, 0xFFFFFF], Gen.Int[0, 2], Gen.Bool, Gen.UInt[0, 255]).Sample(t =>
        {
            var (a, iid, kind, withIid, lsb) = t;
            uint? i = withIid ? iid : null;
            var h = kind switch
            {
                0 => LispDataHeader.WithNonce(a, i, locatorStatusBits: lsb, locatorStatusBitsEnabled: true),
                1 => LispDataHeader.WithMapVersions((ushort)(a & 0xFFF), (ushort)(a >> 12), i, lsb),
                _ => LispDataHeader.Plain(i, lsb),
            };
            Span<byte> b = stackalloc byte[8];
            h.Write(b);
            Assert.That(LispDataHeader.TryRead(b, out var back, out _), Is.True);
            Assert.That(back, Is.EqualTo(h));
            if (withIid) Assert.That(back.InstanceId, Is.EqualTo(iid));
            if (kind == 0) Assert.That(back.Nonce, Is.EqualTo(a));
        }, iter: Iterations);

    private static readonly (string Target, byte[] Seed)[] Seeds =
    [
        ("map-request", GoldenVectors.MapRequest), ("map-request", GoldenVectors.MapRequestAllFlags), ("map-reply", GoldenVectors.MapReply),
        ("map-reply", GoldenVectors.NegativeMapReply), ("map-register", GoldenVectors.MapRegister), ("map-notify", GoldenVectors.MapNotify),
        ("map-notify", GoldenVectors.MapNotifyAck), ("ecm", GoldenVectors.EcmMapRequest),
        ("map-referral", GoldenVectors.MapReferral),
    ];

    [Test]
    public void RandomBytes_IntoEveryDecoder_FailCleanlyOrRoundTrip()
    {
        var rng = new Random(9301);
        byte[] buffer = new byte[400];
        foreach (var (name, target) in FuzzTargets.All)
        {
            for (int i = 0; i < 5000; i++)
            {
                int n = rng.Next(0, buffer.Length);
                rng.NextBytes(buffer.AsSpan(0, n));
                // Keep the type nibble plausible half the time so the decoders get past the first byte.
                if (n > 0 && (i & 1) == 0) buffer[0] = (byte)((buffer[0] & 0x0F) | (rng.Next(1, 9) << 4));
                RunTarget(name, target, buffer.AsSpan(0, n));
            }
        }
    }

    [Test]
    public void MutatedGoldenVectors_IntoEveryDecoder_FailCleanlyOrRoundTrip()
    {
        var rng = new Random(9300);
        foreach (var (name, seed) in Seeds)
        {
            var target = FuzzTargets.All[name];
            for (int i = 0; i < 4000; i++)
            {
                byte[] m = Mutate(seed, rng);
                RunTarget(name, target, m);
            }
            for (int cut = 0; cut <= seed.Length; cut++) RunTarget(name, target, seed.AsSpan(0, cut));
        }
    }

    private static byte[] Mutate(byte[] seed, Random rng)
    {
        var list = seed.ToList();
        int edits = rng.Next(1, 5);
        for (int e = 0; e < edits; e++)
        {
            int at = rng.Next(0, Math.Max(1, list.Count));
            switch (rng.Next(5))
            {
                case 0 when list.Count > 0: list[at] ^= (byte)(1 << rng.Next(8)); break;
                case 1 when list.Count > 0: list[at] = (byte)rng.Next(256); break;
                case 2: list.Insert(Math.Min(at, list.Count), (byte)rng.Next(256)); break;
                case 3 when list.Count > 0: list.RemoveAt(at); break;
                default: if (list.Count > 0) list.RemoveRange(at, list.Count - at); break;
            }
        }
        return list.ToArray();
    }

    private static void RunTarget(string name, Action<ReadOnlySpan<byte>> target, ReadOnlySpan<byte> input)
    {
        try
        {
            target(input);
        }
        catch (Exception e)
        {
            throw new AssertionException($"{name} on {Hex.Format(input)}: {e}");
        }
    }

    [Test]
    public void Decode_OnHostileInput_ThrowsOnlyLispFormatException()
    {
        var rng = new Random(6830);
        int attempts = 0, rejected = 0, accepted = 0;
        foreach (var (_, seed) in Seeds)
        {
            for (int i = 0; i < 2000; i++)
            {
                byte[] m = Mutate(seed, rng);
                foreach (var decode in new Action<byte[]>[] { b => new MapRequest().Decode(b), b => new MapReply().Decode(b), b => new MapRegister().Decode(b), b => new MapNotify().Decode(b), b => new EncapsulatedControlMessage().Decode(b), b => new MapReferral().Decode(b) })
                {
                    attempts++;
                    try { decode(m); accepted++; }
                    catch (LispFormatException e) when (e.Offset >= 0 && e.Offset <= m.Length) { rejected++; }
                }
            }
        }
        // Any other exception, or an error offset outside the input, escapes the loop and fails the test.
        Assert.That(accepted + rejected, Is.EqualTo(attempts));
        Assert.That(rejected, Is.GreaterThan(attempts / 2), "most mutations are malformed for most decoders");
    }
}
