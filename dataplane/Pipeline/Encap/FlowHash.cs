using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace FastXtr.Dataplane.Encap;

/// <summary>
/// A hash of the inner flow (addresses, protocol and, for unfragmented TCP/UDP/SCTP, ports). It picks among
/// equal-priority RLOCs by weight and gives the outer UDP source port its entropy (RFC 9300 §5.3), so one flow
/// keeps one path and different flows spread.
/// </summary>
public static class FlowHash
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Compute(ReadOnlySpan<byte> inner)
    {
        ulong h;
        if ((inner[0] >> 4) == 4)
        {
            int ihl = (inner[0] & 0xF) * 4;
            byte proto = inner[9];
            h = BinaryPrimitives.ReadUInt64LittleEndian(inner[12..]) ^ ((ulong)proto << 56);
            bool fragment = (BinaryPrimitives.ReadUInt16BigEndian(inner[6..]) & 0x3FFF) != 0;
            if (!fragment && proto is 6 or 17 or 132 && inner.Length >= ihl + 4)
                h ^= (ulong)BinaryPrimitives.ReadUInt32LittleEndian(inner[ihl..]) << 13;
        }
        else
        {
            byte next = inner[6];
            h = BinaryPrimitives.ReadUInt64LittleEndian(inner[8..]) ^ BinaryPrimitives.ReadUInt64LittleEndian(inner[16..])
                ^ BinaryPrimitives.ReadUInt64LittleEndian(inner[24..]) ^ BinaryPrimitives.ReadUInt64LittleEndian(inner[32..]) ^ ((ulong)next << 56);
            if (next is 6 or 17 or 132 && inner.Length >= 44)
                h ^= (ulong)BinaryPrimitives.ReadUInt32LittleEndian(inner[40..]) << 13;
        }
        h = FastXtr.SharedMemory.MapCache.MapCacheMath.Mix(h);
        return (uint)(h ^ (h >> 32));
    }

    /// <summary>The outer UDP source port: the flow hash folded into the dynamic range 49152–65535.</summary>
    public static ushort SourcePort(uint hash) => SourcePort(hash, DynamicPorts.First, DynamicPorts.Count);

    /// <summary>The dynamic port range (RFC 6335 §6), where the ITR's outer source ports are taken from by default.</summary>
    public static readonly (ushort First, int Count) DynamicPorts = (0xC000, 0x4000);

    /// <summary>The outer UDP source port from <paramref name="count"/> ports starting at <paramref name="first"/>.</summary>
    public static ushort SourcePort(uint hash, ushort first, int count) => (ushort)(first + hash % (uint)count);
}
