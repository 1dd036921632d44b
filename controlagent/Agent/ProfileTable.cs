using FastXtr.Lisp.Context;
using FastXtr.SharedMemory.MapCache;

namespace FastXtr.Agent;

/// <summary>
/// Constraint profiles by number (CONTEXT-EXTENSION.md §5): the configured ones are 1..N in file order; constraints
/// that agents bring through the API get the next free numbers, shared by agents with equal constraints.
/// </summary>
public sealed class ProfileTable
{
    private readonly List<(ushort Number, string Name, AgentConstraints Constraints)> _profiles = [];
    private readonly object _lock = new();
    // The configuration's profiles in force, by name (the API's and retired ones are not here).
    private readonly Dictionary<string, ushort> _configured = [];

    public ProfileTable(IEnumerable<ConstraintProfile> configured)
    {
        foreach (var p in configured) _configured[p.Name] = Add(p.Name, p.Constraints);
    }

    private ushort Add(string name, AgentConstraints constraints)
    {
        if (_profiles.Count >= MapCacheEntry.MaxConstraintProfile) throw new InvalidOperationException("no constraint profile numbers left");
        var number = (ushort)(_profiles.Count + 1);
        _profiles.Add((number, name, constraints));
        return number;
    }

    public IReadOnlyList<(ushort Number, string Name, AgentConstraints Constraints)> All { get { lock (_lock) return _profiles.ToList(); } }

    /// <summary>
    /// A reload's profiles. A profile number always means the same constraints (map-cache entries and attached agents
    /// hold numbers), so a profile whose constraints changed gets a new number and the old one stays behind under a
    /// retired name for whoever still holds it; an unchanged profile keeps its number; a removed one is retired the
    /// same way. Returns the names of the added, changed and removed profiles.
    /// </summary>
    public (List<string> Added, List<string> Changed, List<string> Removed) ApplyConfigured(IReadOnlyList<ConstraintProfile> configured)
    {
        var added = new List<string>();
        var changed = new List<string>();
        var removed = new List<string>();
        lock (_lock)
        {
            foreach (var (name, number) in _configured.ToList())
            {
                var constraints = _profiles[number - 1].Constraints;
                var wanted = configured.FirstOrDefault(p => p.Name == name);
                if (wanted is not null && wanted.Constraints.Equals(constraints)) continue;
                (wanted is null ? removed : changed).Add(name);
                _profiles[number - 1] = (number, $"{name} (retired at reload)", constraints);
                _configured.Remove(name);
            }
            foreach (var p in configured)
            {
                if (_configured.ContainsKey(p.Name)) continue;
                _configured[p.Name] = Add(p.Name, p.Constraints);
                if (!changed.Contains(p.Name)) added.Add(p.Name);
            }
        }
        return (added, changed, removed);
    }

    /// <summary>The number of a configured profile in force.</summary>
    public ushort Number(string name)
    {
        lock (_lock) return _configured[name];
    }

    public ushort NumberFor(AgentConstraints constraints)
    {
        lock (_lock)
        {
            foreach (var p in _profiles) if (p.Constraints.Equals(constraints)) return p.Number;
            return Add($"api-{_profiles.Count + 1}", constraints);
        }
    }

    public AgentConstraints? Constraints(ushort number)
    {
        lock (_lock) return number >= 1 && number <= _profiles.Count ? _profiles[number - 1].Constraints : null;
    }

    /// <summary>Profile 0 (no constraints) and every defined profile.</summary>
    public IEnumerable<ushort> NumbersInUse()
    {
        lock (_lock) return [0, .. _profiles.Select(p => p.Number)];
    }
}
