namespace FastXtr.Dataplane.Workers;

/// <summary>
/// EID hosts' MAC addresses on one EID-facing interface (--mode af-packet), learned from the frames they send: the
/// ETR needs the destination MAC to put a decapsulated packet on the wire. Shared by the interface's workers:
/// readers never lock (a sequence number per slot, odd while it is written, lets them discard a torn read);
/// a learner locks only when it inserts or changes an address, which a steady flow never does. 4,096 slots,
/// 8-way probing; a full neighbourhood evicts its first slot. Entries do not expire: a host's next frame
/// corrects a changed MAC, and a host never heard from is reached through the kernel instead.
/// </summary>
public sealed class NeighborTable
{
    public const int Slots = 4096;
    private const int Probe = 8;

    private struct Slot
    {
        public int Sequence;
        public UInt128 Address;
        /// <summary>Bits 0-47 the MAC (first byte lowest), bit 62 IPv6, bit 63 in use.</summary>
        public ulong Value;
    }

    private const ulong Used = 1UL << 63;
    private const ulong Ipv6 = 1UL << 62;
    private readonly Slot[] _slots = new Slot[Slots];
    private readonly object _write = new();

    public int Count { get; private set; }

    private static int Home(UInt128 address, bool ipv6)
    {
        ulong h = (ulong)address * 0x9E3779B97F4A7C15UL ^ (ulong)(address >> 64) * 0xC2B2AE3D27D4EB4FUL ^ (ipv6 ? 1UL : 0UL);
        return (int)(h >> 52) & (Slots - 1);
    }

    /// <summary>The MAC last seen from <paramref name="address"/>, packed (first byte lowest); false when unknown.</summary>
    public bool TryGet(UInt128 address, bool ipv6, out ulong mac)
    {
        int home = Home(address, ipv6);
        for (int i = 0; i < Probe; i++)
        {
            ref Slot s = ref _slots[(home + i) & (Slots - 1)];
            for (int attempt = 0; attempt < 4; attempt++)
            {
                int before = Volatile.Read(ref s.Sequence);
                if ((before & 1) != 0) continue;
                UInt128 a = s.Address;
                ulong v = s.Value;
                Interlocked.MemoryBarrier();
                if (Volatile.Read(ref s.Sequence) != before) continue;
                if ((v & Used) == 0) { mac = 0; return false; }
                if (a == address && ((v & Ipv6) != 0) == ipv6)
                {
                    mac = v & 0xFFFF_FFFF_FFFFUL;
                    return true;
                }
                break;
            }
        }
        mac = 0;
        return false;
    }

    /// <summary>Records that <paramref name="address"/> is at <paramref name="mac"/>; cheap when nothing changed.</summary>
    public void Learn(UInt128 address, bool ipv6, ulong mac)
    {
        if (TryGet(address, ipv6, out ulong known) && known == mac) return;
        lock (_write)
        {
            int home = Home(address, ipv6);
            int target = home;
            for (int i = 0; i < Probe; i++)
            {
                int k = (home + i) & (Slots - 1);
                ref Slot s = ref _slots[k];
                if ((s.Value & Used) == 0 || (s.Address == address && ((s.Value & Ipv6) != 0) == ipv6)) { target = k; break; }
            }
            ref Slot t = ref _slots[target];
            if ((t.Value & Used) == 0) Count++;
            Volatile.Write(ref t.Sequence, t.Sequence + 1);
            Interlocked.MemoryBarrier();
            t.Address = address;
            t.Value = Used | (ipv6 ? Ipv6 : 0) | (mac & 0xFFFF_FFFF_FFFFUL);
            Interlocked.MemoryBarrier();
            Volatile.Write(ref t.Sequence, t.Sequence + 1);
        }
    }
}
