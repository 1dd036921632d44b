using System.Buffers.Binary;

namespace FastXtr.Packets;

/// <summary>
/// The 8-byte LISP data-plane header (RFC 9300 §5.1, field rules in §5.3), carried after the outer UDP header
/// on port 4341.
/// <code>
///   0                   1                   2                   3
///   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///  |N|L|E|V|I|R|K|K|            Nonce/Map-Version                  |
///  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///  |                 Instance ID/Locator-Status-Bits               |
///  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// </code>
/// With V set, the 24 bits after the flags are Source Map-Version (12) and Dest Map-Version (12)
/// (RFC 9302). With I set, the second word is a 24-bit Instance ID and 8 locator-status bits;
/// otherwise all 32 bits are locator-status bits.
/// </summary>
public readonly struct LispDataHeader : IEquatable<LispDataHeader>
{
    public const int Length = 8;
    public const ushort DataPort = 4341;

    public const byte FlagN = 0x80; // nonce present
    public const byte FlagL = 0x40; // locator-status bits in use
    public const byte FlagE = 0x20; // echo-nonce request
    public const byte FlagV = 0x10; // map-version present
    public const byte FlagI = 0x08; // Instance ID present
    public const byte ReservedFlagsMask = 0x07; // R, K, K: sent as 0 (§5.3)

    public const uint MaxInstanceId = 0xFFFFFF;
    public const uint MaxNonce = 0xFFFFFF;
    public const ushort MaxMapVersion = 0xFFF;

    private readonly uint _word0;
    private readonly uint _word1;

    private LispDataHeader(uint word0, uint word1)
    {
        _word0 = word0;
        _word1 = word1;
    }

    public byte Flags => (byte)(_word0 >> 24);
    public bool NoncePresent => (Flags & FlagN) != 0;
    public bool LocatorStatusBitsEnabled => (Flags & FlagL) != 0;
    public bool EchoNonceRequest => (Flags & FlagE) != 0;
    public bool MapVersionPresent => (Flags & FlagV) != 0;
    public bool InstanceIdPresent => (Flags & FlagI) != 0;

    /// <summary>The 24-bit nonce; meaningful when <see cref="NoncePresent"/>.</summary>
    public uint Nonce => _word0 & 0xFFFFFF;
    public ushort SourceMapVersion => (ushort)((_word0 >> 12) & 0xFFF);
    public ushort DestinationMapVersion => (ushort)(_word0 & 0xFFF);

    /// <summary>The 24-bit Instance ID; meaningful when <see cref="InstanceIdPresent"/>.</summary>
    public uint InstanceId => _word1 >> 8;

    /// <summary>Locator-status bits: the low 8 bits with I set, all 32 without.</summary>
    public uint LocatorStatusBits => InstanceIdPresent ? _word1 & 0xFF : _word1;

    /// <summary>A header with the N bit and a 24-bit nonce (RFC 9300 §5.3), optionally the I bit with an Instance ID.</summary>
    public static LispDataHeader WithNonce(uint nonce, uint? instanceId = null, bool echoNonceRequest = false, uint locatorStatusBits = 0, bool locatorStatusBitsEnabled = false)
    {
        if (nonce > MaxNonce) throw new ArgumentOutOfRangeException(nameof(nonce), "a data-plane nonce has 24 bits");
        byte flags = (byte)(FlagN | (echoNonceRequest ? FlagE : 0) | (locatorStatusBitsEnabled ? FlagL : 0));
        return Create(flags, nonce, instanceId, locatorStatusBits);
    }

    /// <summary>A header with the V bit and source/destination map-versions (RFC 9302 §3); N and V are exclusive.</summary>
    public static LispDataHeader WithMapVersions(ushort sourceMapVersion, ushort destinationMapVersion, uint? instanceId = null, uint locatorStatusBits = 0, bool locatorStatusBitsEnabled = false)
    {
        if (sourceMapVersion > MaxMapVersion) throw new ArgumentOutOfRangeException(nameof(sourceMapVersion), "a map-version has 12 bits");
        if (destinationMapVersion > MaxMapVersion) throw new ArgumentOutOfRangeException(nameof(destinationMapVersion), "a map-version has 12 bits");
        byte flags = (byte)(FlagV | (locatorStatusBitsEnabled ? FlagL : 0));
        return Create(flags, ((uint)sourceMapVersion << 12) | destinationMapVersion, instanceId, locatorStatusBits);
    }

    /// <summary>A header with neither nonce nor map-version.</summary>
    public static LispDataHeader Plain(uint? instanceId = null, uint locatorStatusBits = 0, bool locatorStatusBitsEnabled = false) =>
        Create((byte)(locatorStatusBitsEnabled ? FlagL : 0), 0, instanceId, locatorStatusBits);

    private static LispDataHeader Create(byte flags, uint low24, uint? instanceId, uint locatorStatusBits)
    {
        uint word1;
        if (instanceId is uint iid)
        {
            if (iid > MaxInstanceId) throw new ArgumentOutOfRangeException(nameof(instanceId), "the data-plane Instance ID has 24 bits (RFC 9300 §5.3)");
            if (locatorStatusBits > 0xFF) throw new ArgumentOutOfRangeException(nameof(locatorStatusBits), "with the I bit only 8 locator-status bits remain");
            flags |= FlagI;
            word1 = (iid << 8) | locatorStatusBits;
        }
        else
        {
            word1 = locatorStatusBits;
        }
        return new LispDataHeader(((uint)flags << 24) | low24, word1);
    }

    /// <summary>
    /// Reads a header. Fails (returns false with a reason) when fewer than 8 bytes remain or when N and V are both
    /// set, which RFC 9300 §5.3 forbids. Reserved flag bits are ignored on receipt, as §5.3 asks.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out LispDataHeader header, out DataHeaderError error)
    {
        if (source.Length < Length)
        {
            header = default;
            error = DataHeaderError.Truncated;
            return false;
        }
        uint w0 = BinaryPrimitives.ReadUInt32BigEndian(source);
        if ((w0 & ((uint)(FlagN | FlagV) << 24)) == ((uint)(FlagN | FlagV) << 24))
        {
            header = default;
            error = DataHeaderError.NonceAndMapVersion;
            return false;
        }
        header = new LispDataHeader(w0, BinaryPrimitives.ReadUInt32BigEndian(source[4..]));
        error = DataHeaderError.None;
        return true;
    }

    /// <summary>Writes the 8 bytes; the caller guarantees the space (a data-plane buffer always has the headroom).</summary>
    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, _word0);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], _word1);
    }

    public bool Equals(LispDataHeader other) => _word0 == other._word0 && _word1 == other._word1;
    public override bool Equals(object? obj) => obj is LispDataHeader other && Equals(other);
    public override int GetHashCode() => HashCode.Combine(_word0, _word1);
    public static bool operator ==(LispDataHeader left, LispDataHeader right) => left.Equals(right);
    public static bool operator !=(LispDataHeader left, LispDataHeader right) => !left.Equals(right);

    public override string ToString()
    {
        var parts = new List<string>();
        if (NoncePresent) parts.Add($"N nonce=0x{Nonce:x6}");
        if (MapVersionPresent) parts.Add($"V src-ver={SourceMapVersion} dst-ver={DestinationMapVersion}");
        if (EchoNonceRequest) parts.Add("E");
        if (LocatorStatusBitsEnabled) parts.Add($"L lsb=0x{LocatorStatusBits:x}");
        if (InstanceIdPresent) parts.Add($"I iid={InstanceId}");
        return parts.Count == 0 ? "LISP data (no flags)" : "LISP data " + string.Join(' ', parts);
    }
}

public enum DataHeaderError : byte
{
    None,
    Truncated,
    NonceAndMapVersion,
}
