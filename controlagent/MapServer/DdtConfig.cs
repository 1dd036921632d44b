using System.Globalization;
using System.Net;
using FastXtr.Common;
using FastXtr.Lisp.Messages;

namespace FastXtr.MapServer;

/// <summary>A prefix of the DDT tree: an EID prefix in one Instance ID (RFC 8111 §3, "XEID-prefix").</summary>
public sealed record DdtPrefix(uint InstanceId, EidFamily Family, UInt128 Prefix, int Length)
{
    public bool Contains(uint iid, EidFamily family, UInt128 address) =>
        iid == InstanceId && family == Family && EidPrefix.Mask(address, family, Length) == Prefix;

    /// <summary>Whether <paramref name="other"/> lies inside this prefix (or is it).</summary>
    public bool Covers(DdtPrefix other) => other.Length >= Length && Contains(other.InstanceId, other.Family, other.Prefix);

    public bool Overlaps(DdtPrefix other) => Covers(other) || other.Covers(this);

    public override string ToString() => $"{InstanceId} {EidPrefix.Format(Family, Prefix)}/{Length}";
}

/// <summary>Where a delegation points: child DDT nodes, or the DDT Map-Servers that hold the registrations.</summary>
public enum DdtDelegationKind { Node, MapServer }

/// <summary>One member of a referral set: an address with the priority and weight given to the Map-Resolver.</summary>
public sealed record DdtTarget(IPAddress Address, byte Priority, byte Weight)
{
    public override string ToString() => $"{Address},{Priority},{Weight}";
}

/// <summary>A more-specific prefix this node hands to children (RFC 8111 §3 "delegation"), with its line for errors.</summary>
public sealed record DdtDelegation(DdtPrefix Prefix, DdtDelegationKind Kind, IReadOnlyList<DdtTarget> Targets, int Line);

/// <summary>
/// This server's part of a LISP-DDT tree (RFC 8111), from the <c>ddt-*</c> settings: the prefixes it is
/// authoritative for as a DDT node with the delegations under them, and the other DDT Map-Servers that serve the
/// same sites (listed in its MS-ACK and MS-NOT-REGISTERED referrals). Empty: the server is not in a DDT tree, and
/// answers every DDT Map-Request outside its sites NOT-AUTHORITATIVE.
/// </summary>
public sealed class DdtConfig
{
    public List<(DdtPrefix Prefix, int Line)> Authorities { get; } = [];
    public List<DdtDelegation> Delegations { get; } = [];
    public List<DdtTarget> MapServerPeers { get; } = [];
    /// <summary>DDT Map-Resolver: the roots of the tree; with none, the server does not resolve through DDT.</summary>
    public List<IPEndPoint> Roots { get; } = [];
    /// <summary>DDT Map-Resolver: how long to wait for a Map-Referral before asking the next target.</summary>
    public int RequestTimeoutMs { get; set; } = 500;

    public bool IsEmpty => Authorities.Count == 0 && Delegations.Count == 0 && MapServerPeers.Count == 0 && Roots.Count == 0;

    /// <summary>Applies a <c>ddt-*</c> line; false for any other setting.</summary>
    public bool TryApply(ConfigLine t)
    {
        switch (t[0])
        {
            case "ddt-authority":
                t.Expect(3, "ddt-authority IID PREFIX");
                Authorities.Add((ParsePrefix(t, 1), t.Number));
                return true;
            case "ddt-delegate":
                if (t.Count < 5 || t[3] is not ("node" or "map-server"))
                    throw t.Error("expected 'ddt-delegate IID PREFIX node|map-server ADDRESS[,PRIORITY,WEIGHT] ...'");
                Delegations.Add(new DdtDelegation(ParsePrefix(t, 1), t[3] == "node" ? DdtDelegationKind.Node : DdtDelegationKind.MapServer,
                    t.Words.Skip(4).Select(w => ParseTarget(t, w)).ToList(), t.Number));
                if (Delegations[^1].Targets.Count > byte.MaxValue) throw t.Error("more than 255 referral targets");
                return true;
            case "ddt-root":
                t.Expect(2, "ddt-root ADDRESS[:PORT]");
                Roots.Add(ConfigReader.Endpoint(t[1], LispPorts.Control));
                return true;
            case "ddt-request-timeout":
                t.Expect(2, "ddt-request-timeout MILLISECONDS");
                RequestTimeoutMs = (int)ConfigReader.Number(t[1], 10, 60_000, "ddt-request-timeout");
                return true;
            case "ddt-map-server-peer":
                t.Expect(2, "ddt-map-server-peer ADDRESS[,PRIORITY,WEIGHT]");
                MapServerPeers.Add(ParseTarget(t, t[1]));
                return true;
            default:
                return false;
        }
    }

    private static DdtPrefix ParsePrefix(ConfigLine t, int at)
    {
        uint iid = (uint)ConfigReader.Number(t[at], 0, 0xFFFFFF, "Instance ID");
        var (family, prefix, length) = EidPrefix.Parse(t[at + 1], t[0]);
        return new DdtPrefix(iid, family, prefix, length);
    }

    private static DdtTarget ParseTarget(ConfigLine t, string word)
    {
        var parts = word.Split(',');
        if (parts.Length is not (1 or 3) || !IPAddress.TryParse(parts[0], out var address))
            throw t.Error($"'{word}' is not ADDRESS or ADDRESS,PRIORITY,WEIGHT");
        byte priority = parts.Length == 3 ? (byte)ConfigReader.Number(parts[1], 0, 255, "priority") : (byte)1;
        byte weight = parts.Length == 3 ? (byte)ConfigReader.Number(parts[2], 0, 255, "weight") : (byte)100;
        return new DdtTarget(address, priority, weight);
    }

    /// <summary>
    /// Refuses what RFC 8111 §3 does not allow a node to say: a delegation outside its authority, and two
    /// delegations (or two authorities) over the same space, each error with its lines.
    /// </summary>
    public void Check(string source)
    {
        for (int i = 0; i < Authorities.Count; i++)
            for (int j = i + 1; j < Authorities.Count; j++)
                if (Authorities[i].Prefix.Overlaps(Authorities[j].Prefix))
                    throw new ConfigException($"{source} line {Authorities[j].Line}: ddt-authority {Authorities[j].Prefix} overlaps the one on line {Authorities[i].Line} ({Authorities[i].Prefix})");
        foreach (var d in Delegations)
        {
            if (!Authorities.Any(a => a.Prefix.Covers(d.Prefix) && a.Prefix.Length < d.Prefix.Length))
                throw new ConfigException($"{source} line {d.Line}: ddt-delegate {d.Prefix} lies outside every ddt-authority of this node (a delegation must be more specific than a prefix the node is authoritative for)");
        }
        for (int i = 0; i < Delegations.Count; i++)
            for (int j = i + 1; j < Delegations.Count; j++)
                if (Delegations[i].Prefix.Overlaps(Delegations[j].Prefix))
                    throw new ConfigException($"{source} line {Delegations[j].Line}: ddt-delegate {Delegations[j].Prefix} overlaps the delegation on line {Delegations[i].Line} ({Delegations[i].Prefix}); each EID has one delegation");
    }

    /// <summary>The delegation that holds the EID, if any.</summary>
    public DdtDelegation? DelegationFor(uint iid, EidFamily family, UInt128 eid) =>
        Delegations.FirstOrDefault(d => d.Prefix.Contains(iid, family, eid));

    /// <summary>
    /// For an EID in this node's authority but in no delegation, the DELEGATION-HOLE's prefix length: the least
    /// specific prefix inside the authority that holds the EID and no delegated space (like a negative Map-Reply's,
    /// RFC 9301 §8.1); -1 when the node is not authoritative for the EID.
    /// </summary>
    public int HoleLength(uint iid, EidFamily family, UInt128 eid)
    {
        var authority = Authorities.FirstOrDefault(a => a.Prefix.Contains(iid, family, eid)).Prefix;
        if (authority is null) return -1;
        int bits = EidPrefix.MaxLength(family), length = authority.Length;
        foreach (var d in Delegations)
            if (authority.Covers(d.Prefix))
                length = Math.Max(length, RegistrationStore.CommonPrefixLength(eid, d.Prefix.Prefix, bits) + 1);
        return Math.Min(bits, length);
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Authorities.Count} authorities, {Delegations.Count} delegations, {MapServerPeers.Count} Map-Server peers, {Roots.Count} roots");
}
