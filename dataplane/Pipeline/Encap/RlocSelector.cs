using FastXtr.SharedMemory.MapCache;

namespace FastXtr.Dataplane.Encap;

/// <summary>
/// RLOC choice (RFC 9300 §5.3, RFC 9301 §5.4): among usable locators (up, priority not 255) take the lowest
/// priority; among those, spread flows by weight with the flow hash (all weights 0: spread evenly). Only locators of
/// a family this xTR has an RLOC of count (RFC 9301 §5.4 leaves the choice among usable locators to the ITR; one it
/// cannot reach from its own addresses is not usable to it): an IPv4-only xTR skips IPv6 locators and the reverse.
/// </summary>
public static class RlocSelector
{
    /// <summary>The index of the chosen RLOC, or -1 when none is usable.</summary>
    public static int Choose(in MapCacheEntry entry, uint flowHash) => Choose(entry, flowHash, RlocFamilies.Ipv4);

    /// <summary>The index of the chosen RLOC among those of <paramref name="families"/>, or -1 when none is usable.</summary>
    public static int Choose(in MapCacheEntry entry, uint flowHash, RlocFamilies families)
    {
        bool v4 = (families & RlocFamilies.Ipv4) != 0, v6 = (families & RlocFamilies.Ipv6) != 0;
        int best = 256;
        int count = 0;
        uint totalWeight = 0;
        for (int i = 0; i < entry.RlocCount; i++)
        {
            ref readonly RlocSlot r = ref entry.Rlocs[i];
            if (!r.Usable || !(r.Family == EidFamily.Ipv4 ? v4 : r.Family == EidFamily.Ipv6 && v6)) continue;
            if (r.Priority < best)
            {
                best = r.Priority;
                count = 0;
                totalWeight = 0;
            }
            if (r.Priority == best)
            {
                count++;
                totalWeight += r.Weight;
            }
        }
        if (count == 0) return -1;
        uint pick = totalWeight == 0 ? flowHash % (uint)count : flowHash % totalWeight;
        uint acc = 0;
        int seen = 0;
        for (int i = 0; i < entry.RlocCount; i++)
        {
            ref readonly RlocSlot r = ref entry.Rlocs[i];
            if (!r.Usable || !(r.Family == EidFamily.Ipv4 ? v4 : r.Family == EidFamily.Ipv6 && v6) || r.Priority != best) continue;
            if (totalWeight == 0)
            {
                if (seen++ == pick) return i;
                continue;
            }
            acc += r.Weight;
            if (pick < acc) return i;
        }
        return -1;
    }
}
