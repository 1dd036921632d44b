using System.Diagnostics;
using FastXtr.Lisp.Messages;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.Lisp;

[TestFixture]
public class AuthenticationTests
{
    /// <summary>HMAC computed by openssl over the message with its authentication field zeroed.</summary>
    private static string OpensslHmac(string digest, byte[] key, byte[] message)
    {
        string file = Path.Combine(TestContext.CurrentContext.WorkDirectory, $"hmac-{Guid.NewGuid():n}.bin");
        File.WriteAllBytes(file, message);
        try
        {
            var psi = new ProcessStartInfo("openssl", ["dgst", "-" + digest, "-mac", "HMAC", "-macopt", "hexkey:" + Convert.ToHexString(key), "-r", file])
            { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi)!;
            string output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            Assert.That(p.ExitCode, Is.EqualTo(0), p.StandardError.ReadToEnd());
            return output.Split(' ')[0].Trim();
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static byte[] Zeroed(byte[] message, int authLength)
    {
        byte[] copy = (byte[])message.Clone();
        Array.Clear(copy, MappingMessage.AuthenticationDataOffset, authLength);
        return copy;
    }

    [Test]
    public void MapRegisterSha256_DigestEqualsOpenssl()
    {
        byte[] msg = GoldenVectors.MapRegister;
        string expected = OpensslHmac("sha256", GoldenVectors.HmacKey, Zeroed(msg, 32));
        Assert.That(Hex.Format(msg.AsSpan(16, 32)), Is.EqualTo(expected));
    }

    [Test]
    public void MapNotifySha1_DigestEqualsOpenssl()
    {
        byte[] msg = GoldenVectors.MapNotify;
        string expected = OpensslHmac("sha1", GoldenVectors.HmacKey, Zeroed(msg, 20));
        Assert.That(Hex.Format(msg.AsSpan(16, 20)), Is.EqualTo(expected));
    }

    [Test]
    public void Sign_WithALongKey_EqualsOpenssl()
    {
        byte[] key = Enumerable.Range(0, 100).Select(i => (byte)i).ToArray(); // longer than the SHA-256 block
        var m = new MapRegister { Nonce = 77, AlgorithmId = AuthenticationAlgorithm.HmacSha256, WantMapNotify = true };
        m.Records.Add(new MappingRecord { TtlMinutes = 3, EidMaskLength = 8, EidPrefix = LispAddress.Parse("10.0.0.0") });
        byte[] signed = m.ToSignedArray(key);
        Assert.That(Hex.Format(signed.AsSpan(16, 32)), Is.EqualTo(OpensslHmac("sha256", key, Zeroed(signed, 32))));
        Assert.That(MessageAuthentication.Verify(signed, key), Is.EqualTo(AuthenticationFailure.None));
    }

    [Test]
    public void Verify_WrongKey_IsDigestMismatch()
    {
        Assert.That(MessageAuthentication.Verify(GoldenVectors.MapRegister, "other-key"u8), Is.EqualTo(AuthenticationFailure.DigestMismatch));
    }

    [Test]
    public void Verify_AnyFlippedBit_IsDigestMismatch()
    {
        byte[] msg = GoldenVectors.MapRegister;
        for (int i = 0; i < msg.Length; i++)
        {
            if (i is >= 12 and < 16) continue; // key/algorithm/length bytes change the algorithm, tested below
            byte[] copy = (byte[])msg.Clone();
            copy[i] ^= 0x10;
            Assert.That(MessageAuthentication.Verify(copy, GoldenVectors.HmacKey), Is.Not.EqualTo(AuthenticationFailure.None), $"byte {i}");
        }
    }

    [Test]
    public void Verify_TruncatedDigest_IsAccepted()
    {
        // HMAC-SHA-1-96: the first 12 bytes of the digest, with Authentication Data Length 12.
        var m = new MapNotify { Nonce = 5, AlgorithmId = AuthenticationAlgorithm.HmacSha1 };
        m.Records.Add(new MappingRecord { TtlMinutes = 3, EidMaskLength = 8, EidPrefix = LispAddress.Parse("10.0.0.0") });
        byte[] full = m.ToSignedArray(GoldenVectors.HmacKey);
        m.SetAuthenticationData(new byte[12]);
        byte[] shortForm = m.ToArray();
        Span<byte> digest = stackalloc byte[20];
        MessageAuthentication.ComputeHmac(AuthenticationAlgorithm.HmacSha1, GoldenVectors.HmacKey, shortForm, digest);
        digest[..12].CopyTo(shortForm.AsSpan(16));
        Assert.That(MessageAuthentication.Verify(shortForm, GoldenVectors.HmacKey), Is.EqualTo(AuthenticationFailure.None));
        Assert.That(MessageAuthentication.Verify(full, GoldenVectors.HmacKey), Is.EqualTo(AuthenticationFailure.None));
    }

    [Test]
    public void KeyIdField_ReadAsOne16BitValue_MeansTheSameAlgorithm()
    {
        // Our messages carry Key ID 0: the 16-bit reading of RFC 6830 gives 0x0002 = HMAC-SHA-256 too.
        Assert.That(GoldenVectors.MapRegister[12] << 8 | GoldenVectors.MapRegister[13], Is.EqualTo(2));
        // A peer that puts the algorithm in the first byte and 0 in the second is understood by the length.
        Assert.That(MessageAuthentication.ResolveAlgorithm(2, 0, 32), Is.EqualTo(AuthenticationAlgorithm.HmacSha256));
        Assert.That(MessageAuthentication.ResolveAlgorithm(1, 0, 20), Is.EqualTo(AuthenticationAlgorithm.HmacSha1));
        Assert.That(MessageAuthentication.ResolveAlgorithm(7, 2, 32), Is.EqualTo(AuthenticationAlgorithm.HmacSha256), "RFC 9301 key-id 7");
        Assert.That(MessageAuthentication.ResolveAlgorithm(0, 0, 0), Is.EqualTo(AuthenticationAlgorithm.None));

        byte[] swapped = (byte[])GoldenVectors.MapRegister.Clone();
        swapped[12] = 2;
        swapped[13] = 0;
        // The digest was computed over Key ID 0 / Algorithm 2, so this one is re-signed as its sender would.
        Array.Clear(swapped, 16, 32);
        Span<byte> d = stackalloc byte[32];
        MessageAuthentication.ComputeHmac(AuthenticationAlgorithm.HmacSha256, GoldenVectors.HmacKey, swapped, d);
        d.CopyTo(swapped.AsSpan(16));
        Assert.That(MessageAuthentication.Verify(swapped, GoldenVectors.HmacKey, out var alg), Is.EqualTo(AuthenticationFailure.None));
        Assert.That(alg, Is.EqualTo(AuthenticationAlgorithm.HmacSha256));
    }

    [Test]
    public void Verify_RejectsMalformedAuthenticationFields()
    {
        byte[] msg = (byte[])GoldenVectors.MapRegister.Clone();
        msg[13] = 9;
        Assert.That(MessageAuthentication.Verify(msg, GoldenVectors.HmacKey), Is.EqualTo(AuthenticationFailure.UnknownAlgorithm));
        msg = (byte[])GoldenVectors.MapRegister.Clone();
        msg[15] = 31;
        Assert.That(MessageAuthentication.Verify(msg, GoldenVectors.HmacKey), Is.EqualTo(AuthenticationFailure.BadDigestLength));
        msg = (byte[])GoldenVectors.MapRegister.Clone();
        msg[13] = 0;
        msg[14] = 0;
        msg[15] = 0;
        Assert.That(MessageAuthentication.Verify(msg, GoldenVectors.HmacKey), Is.EqualTo(AuthenticationFailure.NoAuthentication));
        Assert.That(MessageAuthentication.Verify(GoldenVectors.MapRegister.AsSpan(0, 30), GoldenVectors.HmacKey), Is.EqualTo(AuthenticationFailure.Truncated));
        Assert.That(MessageAuthentication.Verify(GoldenVectors.MapRequest, GoldenVectors.HmacKey), Is.EqualTo(AuthenticationFailure.NotAnAuthenticatedMessage));
    }

    /// <summary>
    /// Signing and verifying with a site key (the thread keeps its keyed HMAC state) gives the same bytes as the
    /// one-shot HMAC, for both algorithms, with keys interleaved on one thread and on many threads at once, and a
    /// new key object with other bytes (a reload) is never answered with the old state.
    /// </summary>
    [Test]
    public void SiteKeySigning_EqualsTheOneShotHmac_AcrossKeysAndThreads()
    {
        var keys = new[]
        {
            new SiteKey(0, AuthenticationAlgorithm.HmacSha256, "first-secret"u8.ToArray()),
            new SiteKey(1, AuthenticationAlgorithm.HmacSha1, "second-secret"u8.ToArray()),
            new SiteKey(0, AuthenticationAlgorithm.HmacSha256, "first-secret-rotated"u8.ToArray()),
        };
        void Check(int seed)
        {
            var random = new Random(seed);
            for (int i = 0; i < 300; i++)
            {
                var key = keys[random.Next(keys.Length)];
                var m = new MapRegister { Nonce = (ulong)random.NextInt64(), WantMapNotify = true, AlgorithmId = key.Algorithm, KeyId = key.KeyId };
                var rec = new MappingRecord { TtlMinutes = 1440, EidMaskLength = 32, EidPrefix = LispAddress.WithInstanceId((uint)random.Next(1 << 24), LispAddress.FromIpv4((uint)random.Next())) };
                rec.Locators.Add(new LocatorRecord(LispAddress.FromIpv4((uint)random.Next()), 1, 100));
                m.Records.Add(rec);
                byte[] keyed = m.ToSignedArray(key), oneShot = m.ToSignedArray(key.Secret);
                Assert.That(keyed, Is.EqualTo(oneShot), $"message {i} with key {key.KeyId}/{key.Algorithm}");
                Assert.That(MessageAuthentication.Verify(keyed, key), Is.EqualTo(AuthenticationFailure.None));
                var other = keys.First(k => !ReferenceEquals(k, key) && k.Algorithm == key.Algorithm && !k.Secret.AsSpan().SequenceEqual(key.Secret) || k.Algorithm != key.Algorithm);
                Assert.That(MessageAuthentication.Verify(keyed, other), Is.EqualTo(AuthenticationFailure.DigestMismatch), "another key never verifies it");
            }
        }
        Check(1);
        Parallel.For(0, 4, t => Check(100 + t));
    }
}
