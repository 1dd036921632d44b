using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;

namespace FastXtr.Lisp.Messages;

public enum AuthenticationFailure : byte
{
    None,
    NotAnAuthenticatedMessage,
    Truncated,
    NoAuthentication,
    UnknownAlgorithm,
    BadDigestLength,
    DigestMismatch,
}

/// <summary>One authentication key of a site: Key ID, algorithm and shared secret (RFC 9301 §5.6).</summary>
public sealed record SiteKey(byte KeyId, AuthenticationAlgorithm Algorithm, byte[] Secret)
{
    /// <summary>Same key-id, algorithm and secret bytes (the record's own equality compares the secret by reference).</summary>
    public bool SameAs(SiteKey other) => KeyId == other.KeyId && Algorithm == other.Algorithm && Secret.AsSpan().SequenceEqual(other.Secret);

    /// <summary>The algorithm a configuration names: sha1 or sha256 (or hmac-sha1, hmac-sha256); null for anything else.</summary>
    public static AuthenticationAlgorithm? AlgorithmNamed(string name) => name switch
    {
        "sha1" or "hmac-sha1" => AuthenticationAlgorithm.HmacSha1,
        "sha256" or "hmac-sha256" => AuthenticationAlgorithm.HmacSha256,
        _ => null,
    };
}

/// <summary>
/// Authentication of Map-Register, Map-Notify, Map-Notify-Ack (RFC 9301 §5.6, §8.2) and Info-Request/Info-Reply
/// (draft-ietf-lisp-nat-traversal §5, the same field at the same offsets): an HMAC over the whole
/// message with the Authentication Data field set to zeros, keyed with the site's shared secret.
/// <para>
/// Interoperability (what deployed implementations do, not only what the RFC names):
/// the digests travel at full length, 20 bytes for HMAC-SHA-1 and 32 for HMAC-SHA-256, although the RFC names
/// them "-96" and "-128"; we send full length and accept either full or truncated ones. RFC 6830 read Key ID and
/// Algorithm ID as one 16-bit "Key ID" whose value was the algorithm; we send Key ID 0 so that 0x0001 and 0x0002
/// mean the same under both readings, and on receipt an Algorithm ID of 0 with authentication data present is
/// read the other way, with the algorithm taken from the Key ID byte when the digest length agrees.
/// Digests are compared in constant time.
/// </para>
/// </summary>
public static class MessageAuthentication
{
    public const int Sha1DigestLength = 20;
    public const int Sha256DigestLength = 32;
    /// <summary>The truncated lengths the RFC's algorithm names imply (HMAC-SHA-1-96, HMAC-SHA-256-128).</summary>
    public const int Sha1TruncatedLength = 12;
    public const int Sha256TruncatedLength = 16;

    public static int DigestLength(AuthenticationAlgorithm algorithm) => algorithm switch
    {
        AuthenticationAlgorithm.None => 0,
        AuthenticationAlgorithm.HmacSha1 => Sha1DigestLength,
        AuthenticationAlgorithm.HmacSha256 => Sha256DigestLength,
        _ => throw new ArgumentOutOfRangeException(nameof(algorithm), algorithm, "unknown authentication algorithm"),
    };

    /// <summary>Computes the HMAC of <paramref name="message"/> into <paramref name="digest"/>; returns its length.</summary>
    public static int ComputeHmac(AuthenticationAlgorithm algorithm, ReadOnlySpan<byte> key, ReadOnlySpan<byte> message, Span<byte> digest) => algorithm switch
    {
        // RFC 9301 §5.6 (Key ID 1) lists HMAC-SHA-1-96 and deployed peers (Cisco IOS-XE, OOR, lispers.net) still
        // sign with it; HMAC-SHA-1 is not broken as a MAC the way SHA-1 is as a hash. Sites choose SHA-256 per key.
#pragma warning disable CA5350
        AuthenticationAlgorithm.HmacSha1 => HMACSHA1.HashData(key, message, digest),
#pragma warning restore CA5350
        AuthenticationAlgorithm.HmacSha256 => HMACSHA256.HashData(key, message, digest),
        _ => throw new ArgumentOutOfRangeException(nameof(algorithm), algorithm, "no HMAC for this algorithm"),
    };

    // Keyed HMAC states of the site keys this thread has used, by secret: keying an HMAC hashes the key into its inner
    // and outer pads and sets up an OpenSSL context, which a reused state does once (measured on this machine: a
    // 120-byte message costs 2.1-2.3 µs with the one-shot call and 0.8-1.3 µs with a reused state). A reload that
    // replaces a key leaves its entry to the garbage collector with the old secret.
    [ThreadStatic] private static ConditionalWeakTable<byte[], IncrementalHash?[]>? t_keyed;

    /// <summary>The HMAC with <paramref name="key"/>'s secret, through this thread's keyed state for it.</summary>
    private static int ComputeHmac(AuthenticationAlgorithm algorithm, SiteKey key, ReadOnlySpan<byte> message, Span<byte> digest)
    {
        if (algorithm is not (AuthenticationAlgorithm.HmacSha1 or AuthenticationAlgorithm.HmacSha256))
            throw new ArgumentOutOfRangeException(nameof(algorithm), algorithm, "no HMAC for this algorithm");
        var states = (t_keyed ??= new ConditionalWeakTable<byte[], IncrementalHash?[]>()).GetValue(key.Secret, static _ => new IncrementalHash?[3]);
        // See ComputeHmac above for why HMAC-SHA-1 is still offered.
        ref var state = ref states[(int)algorithm];
        state ??= IncrementalHash.CreateHMAC(algorithm == AuthenticationAlgorithm.HmacSha1 ? HashAlgorithmName.SHA1 : HashAlgorithmName.SHA256, key.Secret);
        state.AppendData(message);
        return state.GetHashAndReset(digest);
    }

    /// <summary>
    /// Signs an encoded Map-Register/Map-Notify in place: its Authentication Data field, already sized for the
    /// full digest, is zeroed and then filled with the HMAC of the whole message.
    /// </summary>
    public static void Sign(Span<byte> message, AuthenticationAlgorithm algorithm, ReadOnlySpan<byte> key) => Sign(message, algorithm, key, null);

    /// <summary>As <see cref="Sign(Span{byte}, AuthenticationAlgorithm, ReadOnlySpan{byte})"/>, with a site key whose keyed HMAC state this thread keeps.</summary>
    public static void Sign(Span<byte> message, AuthenticationAlgorithm algorithm, SiteKey key) => Sign(message, algorithm, key.Secret, key);

    private static void Sign(Span<byte> message, AuthenticationAlgorithm algorithm, ReadOnlySpan<byte> key, SiteKey? keyed)
    {
        int length = DigestLength(algorithm);
        if (message.Length < MappingMessage.AuthenticationDataOffset + length
            || BinaryPrimitives.ReadUInt16BigEndian(message[(MappingMessage.KeyIdOffset + 2)..]) != length)
            throw new ArgumentException("the message's authentication field is not sized for this algorithm", nameof(message));
        Span<byte> field = message.Slice(MappingMessage.AuthenticationDataOffset, length);
        field.Clear();
        Span<byte> digest = stackalloc byte[Sha256DigestLength];
        if (keyed is null) ComputeHmac(algorithm, key, message, digest);
        else ComputeHmac(algorithm, keyed, message, digest);
        digest[..length].CopyTo(field);
    }

    /// <summary>Reads the algorithm a received message uses, under both readings of the Key ID field (see the class notes).</summary>
    public static AuthenticationAlgorithm ResolveAlgorithm(byte keyId, byte algorithmId, int authenticationLength)
    {
        if (algorithmId is (byte)AuthenticationAlgorithm.HmacSha1 or (byte)AuthenticationAlgorithm.HmacSha256)
            return (AuthenticationAlgorithm)algorithmId;
        if (algorithmId == 0 && authenticationLength > 0)
        {
            if (keyId == 1 && authenticationLength is Sha1DigestLength or Sha1TruncatedLength) return AuthenticationAlgorithm.HmacSha1;
            if (keyId == 2 && authenticationLength is Sha256DigestLength or Sha256TruncatedLength) return AuthenticationAlgorithm.HmacSha256;
        }
        return algorithmId == 0 ? AuthenticationAlgorithm.None : (AuthenticationAlgorithm)algorithmId;
    }

    /// <summary>
    /// Verifies a received Map-Register, Map-Notify or Map-Notify-Ack against <paramref name="key"/>.
    /// Allocates nothing for messages up to a UDP datagram (the zeroed copy comes from a shared pool).
    /// </summary>
    public static AuthenticationFailure Verify(ReadOnlySpan<byte> message, ReadOnlySpan<byte> key) => Verify(message, key, out _);

    public static AuthenticationFailure Verify(ReadOnlySpan<byte> message, ReadOnlySpan<byte> key, out AuthenticationAlgorithm algorithm) =>
        Verify(message, key, null, out algorithm);

    /// <summary>As <see cref="Verify(ReadOnlySpan{byte}, ReadOnlySpan{byte})"/>, with a site key whose keyed HMAC state this thread keeps.</summary>
    public static AuthenticationFailure Verify(ReadOnlySpan<byte> message, SiteKey key) => Verify(message, key.Secret, key, out _);

    public static AuthenticationFailure Verify(ReadOnlySpan<byte> message, SiteKey key, out AuthenticationAlgorithm algorithm) =>
        Verify(message, key.Secret, key, out algorithm);

    private static AuthenticationFailure Verify(ReadOnlySpan<byte> message, ReadOnlySpan<byte> key, SiteKey? keyed, out AuthenticationAlgorithm algorithm)
    {
        algorithm = AuthenticationAlgorithm.None;
        if (message.Length < MappingMessage.AuthenticationDataOffset) return AuthenticationFailure.Truncated;
        int type = message[0] >> 4;
        // Info-Request/Info-Reply carry the field at the same offsets (draft-ietf-lisp-nat-traversal §5).
        if (type is not ((int)LispMessageType.MapRegister or (int)LispMessageType.MapNotify or (int)LispMessageType.MapNotifyAck or (int)LispMessageType.InfoRequest))
            return AuthenticationFailure.NotAnAuthenticatedMessage;
        byte keyId = message[MappingMessage.KeyIdOffset];
        byte algId = message[MappingMessage.KeyIdOffset + 1];
        int authLength = BinaryPrimitives.ReadUInt16BigEndian(message[(MappingMessage.KeyIdOffset + 2)..]);
        if (message.Length < MappingMessage.AuthenticationDataOffset + authLength) return AuthenticationFailure.Truncated;
        algorithm = ResolveAlgorithm(keyId, algId, authLength);
        int full, truncated;
        switch (algorithm)
        {
            case AuthenticationAlgorithm.None:
                return AuthenticationFailure.NoAuthentication;
            case AuthenticationAlgorithm.HmacSha1:
                (full, truncated) = (Sha1DigestLength, Sha1TruncatedLength);
                break;
            case AuthenticationAlgorithm.HmacSha256:
                (full, truncated) = (Sha256DigestLength, Sha256TruncatedLength);
                break;
            default:
                return AuthenticationFailure.UnknownAlgorithm;
        }
        if (authLength != full && authLength != truncated) return AuthenticationFailure.BadDigestLength;

        byte[] copy = ArrayPool<byte>.Shared.Rent(message.Length);
        try
        {
            Span<byte> zeroed = copy.AsSpan(0, message.Length);
            message.CopyTo(zeroed);
            zeroed.Slice(MappingMessage.AuthenticationDataOffset, authLength).Clear();
            Span<byte> digest = stackalloc byte[Sha256DigestLength];
            if (keyed is null) ComputeHmac(algorithm, key, zeroed, digest);
            else ComputeHmac(algorithm, keyed, zeroed, digest);
            bool equal = CryptographicOperations.FixedTimeEquals(digest[..authLength], message.Slice(MappingMessage.AuthenticationDataOffset, authLength));
            return equal ? AuthenticationFailure.None : AuthenticationFailure.DigestMismatch;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(copy);
        }
    }
}
