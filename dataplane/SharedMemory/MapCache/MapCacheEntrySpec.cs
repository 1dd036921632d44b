using System.Net;
using System.Net.Sockets;
using FastXtr.Packets;

namespace FastXtr.SharedMemory.MapCache;

/// <summary>
/// A locator to install: address (host-order, IPv4 in the low 32 bits), priority, weight, reachability, and the UDP
/// port it takes LISP data on (0: 4341, <see cref="RlocSlot.Port"/>), and whether it is reached across a NAT
/// (<see cref="RlocSlot.FlagNatTraversed"/>).
/// </summary>
public readonly record struct RlocSpec(EidFamily Family, UInt128 Address, byte Priority, byte Weight, bool Up = true, ushort Port = 0, bool NatTraversed = false)
{
    /// <summary>
    /// "ADDRESS[,PRIORITY[,WEIGHT]]", e.g. "192.0.2.2,1,50", where ADDRESS may name a data port other than 4341:
    /// "192.0.2.2:5000" or "[2001:db8::2]:5000".
    /// </summary>
    public static RlocSpec Parse(string text)
    {
        string[] parts = text.Split(',');
        ushort port = 0;
        IPAddress? a = null;
        // IPEndPoint reads "192.0.2.2", "192.0.2.2:5000", "2001:db8::2" and "[2001:db8::2]:5000" (IPAddress would
        // take the last and drop its port).
        if (parts.Length <= 3 && IPEndPoint.TryParse(parts[0], out var ep))
            (a, port) = (ep.Address, (ushort)ep.Port);
        if (parts.Length > 3 || a is null)
            throw new FormatException($"--rloc '{text}': expected ADDRESS[:PORT][,PRIORITY[,WEIGHT]], e.g. 192.0.2.2,1,100 or [2001:db8::2]:5000,1,100");
        byte priority = 1, weight = 100;
        if (parts.Length > 1 && !byte.TryParse(parts[1], System.Globalization.CultureInfo.InvariantCulture, out priority)) throw new FormatException($"--rloc '{text}': priority must be 0 .. 255");
        if (parts.Length > 2 && !byte.TryParse(parts[2], System.Globalization.CultureInfo.InvariantCulture, out weight)) throw new FormatException($"--rloc '{text}': weight must be 0 .. 255");
        return Of(a, priority, weight, port);
    }

    /// <summary>A locator at an address of either family; a <paramref name="port"/> of 4341 is kept as 0 (the data port).</summary>
    public static RlocSpec Of(IPAddress a, byte priority, byte weight, ushort port = 0, bool natTraversed = false)
    {
        ushort p = port == LispDataHeader.DataPort ? (ushort)0 : port;
        return a.AddressFamily == AddressFamily.InterNetwork
            ? new RlocSpec(EidFamily.Ipv4, Ipv4Header.ToUInt32(a), priority, weight, Port: p, NatTraversed: natTraversed)
            : new RlocSpec(EidFamily.Ipv6, Ipv6Header.ToUInt128(a), priority, weight, Port: p, NatTraversed: natTraversed);
    }

    public IPAddress ToIPAddress() => EidPrefix.ToAddress(Family, Address);
}

/// <summary>What to install for one (IID, profile, EID prefix).</summary>
public sealed record MapCacheEntrySpec(
    uint InstanceId, ushort Profile, EidFamily Family, UInt128 Prefix, int PrefixLength,
    IReadOnlyList<RlocSpec> Rlocs, MapReplyAction Action = MapReplyAction.NoAction, uint TtlMinutes = 1440, ushort MapVersion = 0,
    ushort AssignedProfile = 0)
{
    /// <summary>Which of the map-cache's tables the entry goes to.</summary>
    public MapCacheKind Kind => MapCacheEntry.KindOf(Profile);

    /// <summary>A source-profile entry: packets from this source prefix are looked up under <paramref name="profile"/>.</summary>
    public static MapCacheEntrySpec SourceProfile(uint instanceId, EidFamily family, UInt128 prefix, int prefixLength, ushort profile) =>
        new(instanceId, MapCacheEntry.SourceProfileKey, family, prefix, prefixLength, [], TtlMinutes: uint.MaxValue, AssignedProfile: profile);

    /// <summary>A moved-away entry: this EID prefix left this xTR; packets still arriving for it solicit their ITR.</summary>
    public static MapCacheEntrySpec MovedAway(uint instanceId, EidFamily family, UInt128 prefix, int prefixLength, uint ttlMinutes) =>
        new(instanceId, MapCacheEntry.MovedAwayKey, family, prefix, prefixLength, [], TtlMinutes: ttlMinutes);
}

public enum MapCacheWriteResult
{
    Inserted,
    Updated,
    Removed,
    NotFound,
    Full,
    IidTableFull,
}

/// <summary>What a writer found to mend when it took over a region (all zero after a clean handover).</summary>
public readonly record struct MapCacheRepair(int EntriesHalfWritten, bool IndexRebuilt, int DuplicatesDropped)
{
    public bool Any => EntriesHalfWritten > 0 || IndexRebuilt || DuplicatesDropped > 0;

    public override string ToString() =>
        $"{EntriesHalfWritten} half-written entr{(EntriesHalfWritten == 1 ? "y" : "ies")} cleared, index {(IndexRebuilt ? "rebuilt" : "intact")}" +
        (DuplicatesDropped > 0 ? $", {DuplicatesDropped} duplicate entr{(DuplicatesDropped == 1 ? "y" : "ies")} dropped" : "");
}
