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

    public ProfileTable(IEnumerable<ConstraintProfile> configured)
    {
        foreach (var p in configured) _profiles.Add(((ushort)(_profiles.Count + 1), p.Name, p.Constraints));
    }

    public IReadOnlyList<(ushort Number, string Name, AgentConstraints Constraints)> All { get { lock (_lock) return _profiles.ToList(); } }

    public ushort Number(string name)
    {
        lock (_lock) return _profiles.First(p => p.Name == name).Number;
    }

    public ushort NumberFor(AgentConstraints constraints)
    {
        lock (_lock)
        {
            foreach (var p in _profiles) if (p.Constraints.Equals(constraints)) return p.Number;
            if (_profiles.Count >= MapCacheEntry.MaxConstraintProfile) throw new InvalidOperationException("no constraint profile numbers left");
            var number = (ushort)(_profiles.Count + 1);
            _profiles.Add((number, $"api-{number}", constraints));
            return number;
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
