using System.Buffers.Binary;

namespace FastXtr.Packets;

/// <summary>
/// The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of 16-bit big-endian
/// words. <see cref="Sum"/> returns the folded, not yet complemented sum so that callers can chain a
/// pseudo-header and a payload.
/// </summary>
public static class InternetChecksum
{
    /// <summary>Adds <paramref name="data"/> to <paramref name="initial"/> (an unfolded 32-bit partial sum); an odd last byte is padded with zero.</summary>
    public static uint Sum(ReadOnlySpan<byte> data, uint initial = 0)
    {
        ulong sum = initial;
        int i = 0;
        // Eight bytes at a time into a 64-bit accumulator: big-endian 32-bit words add the same 16-bit columns
        // as 16-bit words do, and carries are folded at the end.
        for (; i + 8 <= data.Length; i += 8)
        {
            sum += BinaryPrimitives.ReadUInt32BigEndian(data[i..]);
            sum += BinaryPrimitives.ReadUInt32BigEndian(data[(i + 4)..]);
        }
        for (; i + 2 <= data.Length; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if (i < data.Length)
            sum += (uint)data[i] << 8;
        while ((sum >> 32) != 0) sum = (sum & 0xFFFFFFFF) + (sum >> 32);
        return (uint)sum;
    }

    /// <summary>Folds a 32-bit partial sum to 16 bits and complements it.</summary>
    public static ushort Finish(uint sum)
    {
        while ((sum >> 16) != 0) sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)~sum;
    }

    public static ushort Compute(ReadOnlySpan<byte> data) => Finish(Sum(data));
}
