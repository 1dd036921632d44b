using FastXtr.Lisp.Context;

namespace FastXtr.Agent;

/// <summary>An agent attached through the local agent API: its EID mapping, name and source constraints.</summary>
public sealed record AttachedAgent(string Name, DatabaseMapping Mapping, AgentConstraints? Constraints, ushort Profile, DateTime AttachedAt, DateTime UpdatedAt);

/// <summary>
/// What this xTR registers: the configuration's database mappings plus the agents attached through the API. Agents
/// are keyed by (IID, EID prefix); an agent may be more specific than a configured prefix but never the same one.
/// Thread-safe: changes take one lock and readers get snapshots.
/// </summary>
public sealed class AgentDatabase
{
    private List<DatabaseMapping> _configured;
    private readonly Dictionary<(uint, EidFamily, UInt128, int), AttachedAgent> _agents = [];
    private readonly object _lock = new();

    public AgentDatabase(IEnumerable<DatabaseMapping> configured) => _configured = configured.ToList();

    private static (uint, EidFamily, UInt128, int) Key(DatabaseMapping m) => (m.InstanceId, m.Family, m.Prefix, m.Length);

    public IReadOnlyList<DatabaseMapping> Configured { get { lock (_lock) return _configured; } }

    /// <summary>
    /// A reload's database mappings; null (and the reason) when one has the prefix of an attached agent. Returns the
    /// mappings that are new or changed (locators or context) and those that are gone.
    /// </summary>
    public (List<DatabaseMapping> Registered, List<DatabaseMapping> Withdrawn)? ReplaceConfigured(IReadOnlyList<DatabaseMapping> configured, out string? conflict)
    {
        lock (_lock)
        {
            conflict = configured.Where(m => _agents.ContainsKey(Key(m))).Select(m => $"{m.PrefixText} is attached through the API (agent '{_agents[Key(m)].Name}'); detach it first").FirstOrDefault();
            if (conflict is not null) return null;
            var registered = configured.Where(m => _configured.FirstOrDefault(o => o.SamePrefix(m)) is not DatabaseMapping o || !SameMapping(o, m)).ToList();
            var withdrawn = _configured.Where(o => !configured.Any(m => m.SamePrefix(o))).ToList();
            _configured = configured.ToList();
            return (registered, withdrawn);
        }
    }

    private static bool SameMapping(DatabaseMapping a, DatabaseMapping b) =>
        a.Rlocs.SequenceEqual(b.Rlocs) && Equals(a.Context, b.Context);

    public IReadOnlyList<AttachedAgent> Agents
    {
        get { lock (_lock) return _agents.Values.OrderBy(a => a.Mapping.InstanceId).ThenBy(a => a.Mapping.Prefix).ToList(); }
    }

    /// <summary>Everything to register: configured mappings and attached agents.</summary>
    public IReadOnlyList<DatabaseMapping> All
    {
        get { lock (_lock) return _configured.Concat(_agents.Values.Select(a => a.Mapping)).ToList(); }
    }

    /// <summary>The mapping (configured or attached) with exactly this prefix now, or null.</summary>
    public DatabaseMapping? Current(uint iid, EidFamily family, UInt128 prefix, int length)
    {
        lock (_lock)
            return _agents.TryGetValue((iid, family, prefix, length), out var a) ? a.Mapping
                : _configured.FirstOrDefault(m => m.InstanceId == iid && m.Family == family && m.Prefix == prefix && m.Length == length);
    }

    public AttachedAgent? Find(uint iid, EidFamily family, UInt128 prefix, int length)
    {
        lock (_lock) return _agents.GetValueOrDefault((iid, family, prefix, length));
    }

    /// <summary>The most specific mapping (configured or attached) that covers an EID, for answering Map-Requests.</summary>
    public DatabaseMapping? Covering(uint iid, EidFamily family, UInt128 eid) =>
        All.Where(m => m.InstanceId == iid && m.Family == family && EidPrefix.Mask(eid, family, m.Length) == m.Prefix).MaxBy(m => m.Length);

    /// <summary>Adds an agent; null when its prefix is already attached or configured (the reason in <paramref name="conflict"/>).</summary>
    public AttachedAgent? Attach(AttachedAgent agent, out string? conflict)
    {
        lock (_lock)
        {
            conflict = null;
            if (_configured.Any(m => m.SamePrefix(agent.Mapping))) conflict = $"{agent.Mapping.PrefixText} is a configured database mapping";
            else if (_agents.TryGetValue(Key(agent.Mapping), out var existing)) conflict = $"{agent.Mapping.PrefixText} is already attached (agent '{existing.Name}')";
            if (conflict is not null) return null;
            _agents[Key(agent.Mapping)] = agent;
            return agent;
        }
    }

    public AttachedAgent? Replace(AttachedAgent agent)
    {
        lock (_lock)
        {
            if (!_agents.ContainsKey(Key(agent.Mapping))) return null;
            _agents[Key(agent.Mapping)] = agent;
            return agent;
        }
    }

    public AttachedAgent? Detach(uint iid, EidFamily family, UInt128 prefix, int length)
    {
        lock (_lock) return _agents.Remove((iid, family, prefix, length), out var gone) ? gone : null;
    }
}
