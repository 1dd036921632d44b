namespace FastXtr.Lisp.Messages;

/// <summary>
/// A Locator (RLOC) record inside a mapping record (RFC 9301 §5.4).
/// <code>
///  |    Priority   |    Weight     |  M Priority   |   M Weight    |
///  |        Unused Flags     |L|p|R|           Loc-AFI             |
///  |                             Locator                           |
/// </code>
/// L: the locator is local to the sender; p: the sender probed it (RLOC-probe reply); R: reachable.
/// Priority 255 means "do not use for unicast" (RFC 9301 §5.4).
/// </summary>
public sealed class LocatorRecord
{
    public const ushort FlagLocal = 0x0004;
    public const ushort FlagProbed = 0x0002;
    public const ushort FlagReachable = 0x0001;
    public const byte PriorityDoNotUse = 255;

    public byte Priority { get; set; }
    public byte Weight { get; set; }
    public byte MulticastPriority { get; set; } = PriorityDoNotUse;
    public byte MulticastWeight { get; set; }
    public bool Local { get; set; }
    public bool Probed { get; set; }
    public bool Reachable { get; set; } = true;

    /// <summary>The locator: a plain address, or an AFI-List carrying it with agent context (CONTEXT-EXTENSION.md §1).</summary>
    public LispAddress Locator { get; set; } = LispAddress.None();

    public LocatorRecord() { }

    public LocatorRecord(LispAddress locator, byte priority, byte weight)
    {
        Locator = locator;
        Priority = priority;
        Weight = weight;
    }

    internal bool TryRead(ref LispReader r, int depth)
    {
        if (!r.TryReadUInt8(out byte p) || !r.TryReadUInt8(out byte w) || !r.TryReadUInt8(out byte mp)
            || !r.TryReadUInt8(out byte mw) || !r.TryReadUInt16(out ushort flags))
            return false;
        Priority = p;
        Weight = w;
        MulticastPriority = mp;
        MulticastWeight = mw;
        Local = (flags & FlagLocal) != 0;
        Probed = (flags & FlagProbed) != 0;
        Reachable = (flags & FlagReachable) != 0;
        return LispAddress.TryRead(ref r, Locator, depth);
    }

    internal void Write(ref LispWriter w)
    {
        w.WriteUInt8(Priority);
        w.WriteUInt8(Weight);
        w.WriteUInt8(MulticastPriority);
        w.WriteUInt8(MulticastWeight);
        w.WriteUInt16((ushort)((Local ? FlagLocal : 0) | (Probed ? FlagProbed : 0) | (Reachable ? FlagReachable : 0)));
        Locator.Write(ref w);
    }

    public bool ContentEquals(LocatorRecord o) =>
        Priority == o.Priority && Weight == o.Weight && MulticastPriority == o.MulticastPriority && MulticastWeight == o.MulticastWeight
        && Local == o.Local && Probed == o.Probed && Reachable == o.Reachable && Locator.ContentEquals(o.Locator);

    public override string ToString() =>
        $"{Locator} p{Priority}/w{Weight}" + (Reachable ? " up" : " down") + (Local ? " local" : "") + (Probed ? " probed" : "");
}
