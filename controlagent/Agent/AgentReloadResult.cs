namespace FastXtr.Agent;

/// <summary>What an agent reload changed (<see cref="XtrAgent.Reload"/>), for the log line and the caller.</summary>
public sealed record AgentReloadResult(
    IReadOnlyList<string> MappingsRegistered, IReadOnlyList<string> MappingsWithdrawn,
    IReadOnlyList<string> MapServersRegisteredWith, IReadOnlyList<string> MapServersRemoved, bool MapResolversChanged,
    IReadOnlyList<string> ProfilesAdded, IReadOnlyList<string> ProfilesChanged, IReadOnlyList<string> ProfilesRemoved,
    IReadOnlyList<string> NeedRestart)
{
    public override string ToString()
    {
        var parts = new List<string>();
        void Add(string what, IReadOnlyList<string> items) { if (items.Count > 0) parts.Add($"{what} {string.Join(", ", items)}"); }
        Add("registered", MappingsRegistered);
        Add("withdrawn", MappingsWithdrawn);
        Add("whole database registered with", MapServersRegisteredWith);
        Add("no longer registering with", MapServersRemoved);
        if (MapResolversChanged) parts.Add("Map-Resolvers or request rate changed");
        Add("profiles added", ProfilesAdded);
        Add("profiles changed (new numbers)", ProfilesChanged);
        Add("profiles removed", ProfilesRemoved);
        Add("not applied until a restart:", NeedRestart);
        return parts.Count == 0 ? "nothing to re-register" : string.Join("; ", parts);
    }
}
