namespace FastXtr.Lisp.Messages;

/// <summary>An EID prefix a site may register, in one Instance ID.</summary>
public sealed record SitePrefix(uint InstanceId, EidFamily Family, UInt128 Prefix, int Length, bool AcceptMoreSpecifics)
{
    /// <summary>Whether a registered prefix lies inside this one (equal, or more specific when allowed).</summary>
    public bool Covers(uint iid, EidFamily family, UInt128 prefix, int length) =>
        iid == InstanceId && family == Family && length >= Length && (length == Length || AcceptMoreSpecifics)
        && EidPrefix.Mask(prefix, family, Length) == Prefix;

    public bool Contains(uint iid, EidFamily family, UInt128 address) =>
        iid == InstanceId && family == Family && EidPrefix.Mask(address, family, Length) == Prefix;

    public override string ToString() => $"[{InstanceId}]{EidPrefix.Format(Family, Prefix)}/{Length}{(AcceptMoreSpecifics ? " accept-more-specifics" : "")}";
}
