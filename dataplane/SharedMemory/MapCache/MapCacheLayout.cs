using FastXtr.Packets;
using System.Runtime.InteropServices;

namespace FastXtr.SharedMemory.MapCache;

/// <summary>
/// One locator of an entry, 24 bytes in shared memory. The address is a host-order number (IPv4 in the low 32
/// bits) kept as two 64-bit halves, so the slot needs only 8-byte alignment. Priority 255 means "never use"
/// (RFC 9301 §5.4); <see cref="Up"/> is the reachability the agent learnt by probing; <see cref="Port"/> is where
/// the locator takes LISP data, 0 for the data port of RFC 9300 (4341).
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 24)]
public struct RlocSlot
{
    [FieldOffset(0)] public ulong AddressLow;
    [FieldOffset(8)] public ulong AddressHigh;
    [FieldOffset(16)] public EidFamily Family;
    [FieldOffset(17)] public byte Priority;
    [FieldOffset(18)] public byte Weight;
    [FieldOffset(19)] public byte State;
    /// <summary>
    /// The UDP port this locator receives LISP data on; 0 means 4341 (RFC 9300 §5.3). Another port: an ETR configured
    /// with one (a static entry), or, for NAT traversal, the port a NAT translated an xTR's 4341 to.
    /// </summary>
    [FieldOffset(20)] public ushort Port;
    /// <summary><see cref="FlagNatTraversed"/>; the other bits are 0 (a region written before the field had 0 here).</summary>
    [FieldOffset(22)] public byte Flags;

    /// <summary>
    /// The locator is an xTR's NAT binding (an RTR learned it from the xTR's authenticated Info-Request, or it is the
    /// RTR an xTR behind NAT sends through): packets to it leave from the data port, so that they travel the binding
    /// the NAT keeps between the two data ports (a NAT filters by the remote port too: RFC 4787 §5), and it is not
    /// RLOC-probed (a probe to its control port would not cross the NAT).
    /// </summary>
    public const byte FlagNatTraversed = 1;

    public readonly bool NatTraversed => (Flags & FlagNatTraversed) != 0;

    public UInt128 Address
    {
        readonly get => new(AddressHigh, AddressLow);
        set
        {
            AddressLow = (ulong)value;
            AddressHigh = (ulong)(value >> 64);
        }
    }

    public const byte StateUp = 1;
    public const byte StateDown = 0;

    public readonly bool Up => State == StateUp;
    public readonly bool Usable => State == StateUp && Priority != 255;
}

[System.Runtime.CompilerServices.InlineArray(MapCacheEntry.MaxRlocs)]
public struct RlocArray
{
    private RlocSlot _element;
}

/// <summary>
/// A map-cache entry as it sits in shared memory: 240 bytes, guarded by a sequence counter (<see cref="Seq"/>):
/// odd while the writer is changing it, even when stable. Readers copy it and accept the copy only when the
/// counter was even and unchanged across the copy, so they never act on a torn entry.
/// <code>
///  0 Seq        4 State Family PrefixLength Action   8 InstanceId   12 Profile RlocCount Flags
/// 16 Prefix (16)   32 ExpiresAt (Stopwatch ticks, 0 = never)   40 MapVersion TtlMinutes AssignedProfile
/// 48 Rlocs: 8 x 24 bytes
/// </code>
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = Bytes)]
public struct MapCacheEntry
{
    public const int Bytes = 240;
    /// <summary>The bytes before the locators: what every lookup copies, plus 24 per locator in use.</summary>
    public const int FixedBytes = 48;
    public const int MaxRlocs = 8;
    public const byte StateFree = 0;
    public const byte StateUsed = 1;
    // One LPM holds three tables, told apart by the profile field of the key (MapCacheKind): constraint profiles
    // 0..MaxConstraintProfile are destinations, and two reserved values name the other two tables.
    /// <summary>The largest profile number of a destination entry; the values above it name the other tables.</summary>
    public const ushort MaxConstraintProfile = 0xFFFD;
    /// <summary>
    /// The key profile of the source-profile table (<see cref="MapCacheKind.SourceProfile"/>): an entry (IID,
    /// SourceProfileKey, source prefix) says that packets from that prefix are looked up under profile
    /// <see cref="AssignedProfile"/>.
    /// </summary>
    public const ushort SourceProfileKey = 0xFFFF;
    /// <summary>
    /// The key profile of the moved-away table (<see cref="MapCacheKind.MovedAway"/>): an entry (IID, MovedAwayKey,
    /// EID prefix) says that EID left this xTR, so the ETR side reports packets still arriving for it and the agent
    /// solicits their ITRs (SMR, RFC 9301 §6.6.2).
    /// </summary>
    public const ushort MovedAwayKey = 0xFFFE;

    /// <summary>Which of the three tables a key profile belongs to.</summary>
    public static MapCacheKind KindOf(ushort profile) => profile switch
    {
        SourceProfileKey => MapCacheKind.SourceProfile,
        MovedAwayKey => MapCacheKind.MovedAway,
        _ => MapCacheKind.Destination,
    };

    /// <summary>Which table this entry belongs to.</summary>
    public readonly MapCacheKind Kind => KindOf(Profile);

    [FieldOffset(0)] public uint Seq;
    [FieldOffset(4)] public byte State;
    [FieldOffset(5)] public EidFamily Family;
    [FieldOffset(6)] public byte PrefixLength;
    [FieldOffset(7)] public MapReplyAction Action;
    [FieldOffset(8)] public uint InstanceId;
    [FieldOffset(12)] public ushort Profile;
    [FieldOffset(14)] public byte RlocCount;
    [FieldOffset(15)] public byte Flags;
    [FieldOffset(16)] public UInt128 Prefix;
    [FieldOffset(32)] public long ExpiresAt;
    [FieldOffset(40)] public ushort MapVersion;
    [FieldOffset(42)] public ushort TtlMinutes;
    /// <summary>Source-profile entries only (<see cref="SourceProfileKey"/>): the constraint profile of the sources in
    /// this prefix (CONTEXT-EXTENSION.md §5). 0 in ordinary entries.</summary>
    [FieldOffset(44)] public uint AssignedProfile;
    [FieldOffset(48)] public RlocArray Rlocs;

    public readonly bool IsNegative => RlocCount == 0;
}

/// <summary>The three tables that share the map-cache's LPM, told apart by the key's profile field.</summary>
public enum MapCacheKind : byte
{
    /// <summary>Destination EID prefix → locators, under a constraint profile (0 = no constraints).</summary>
    Destination,
    /// <summary>Source EID prefix → the constraint profile its packets are looked up under.</summary>
    SourceProfile,
    /// <summary>EID prefixes that moved away from this xTR: packets for them make the agent send an SMR.</summary>
    MovedAway,
}

/// <summary>A slot of the per-IID table: which prefix lengths exist in that Instance ID, so lookups probe only those.</summary>
[StructLayout(LayoutKind.Explicit, Size = Bytes)]
public struct IidSlot
{
    public const int Bytes = 48;

    [FieldOffset(0)] public uint Used;
    [FieldOffset(4)] public uint InstanceId;
    /// <summary>Bit n set: some IPv4 entry of this IID has prefix length n (0..32).</summary>
    [FieldOffset(8)] public ulong Ipv4Lengths;
    /// <summary>Bits for IPv6 prefix lengths 0..63, 64..127 and 128.</summary>
    [FieldOffset(16)] public ulong Ipv6Lengths0;
    [FieldOffset(24)] public ulong Ipv6Lengths1;
    [FieldOffset(32)] public ulong Ipv6Lengths2;
    /// <summary>How many source-profile entries this IID has; 0 (the usual case) skips the source lookup.</summary>
    [FieldOffset(40)] public uint SourceProfileEntries;
    /// <summary>How many moved-away entries (<see cref="MapCacheEntry.MovedAwayKey"/>) this IID has; 0 skips the ETR's check.</summary>
    [FieldOffset(44)] public uint MovedAwayEntries;
}

/// <summary>The lookup key: (IID, constraint profile, family, destination address).</summary>
public readonly record struct MapCacheKey(uint InstanceId, ushort Profile, EidFamily Family, UInt128 Address);

public static class MapCacheMath
{
    public const uint IndexEmpty = 0;

    /// <summary>
    /// The index hash of a key. The prefix's upper half is mixed in only when it is not zero (every IPv4 key), which
    /// saves IPv4 lookups a round; reader and writer share this one definition.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static ulong Hash(uint iid, ushort profile, EidFamily family, int length, UInt128 prefix)
    {
        ulong h = ((ulong)iid << 32) ^ ((ulong)profile << 16) ^ ((ulong)family << 8) ^ (uint)length;
        h = Fold(h ^ (ulong)prefix);
        ulong high = (ulong)(prefix >> 64);
        if (high != 0) h = Fold(h ^ high);
        return h;
    }

    /// <summary>
    /// One multiply and one fold: every input bit reaches the low bits the index masks with (the low half of the
    /// product holds the low input bits, the high half all of them). Half the cost of <see cref="Mix"/>, measured in
    /// the lookup benchmark; the churn test bounds the probe runs it yields.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static ulong Fold(ulong x)
    {
        x *= 0x9E3779B97F4A7C15UL;
        return x ^ (x >> 32);
    }

    public static ulong Mix(ulong x)
    {
        // SplitMix64's finaliser: every input bit affects every output bit.
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9UL;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebUL;
        return x ^ (x >> 31);
    }
}
