using System.Text;
using System.Text.Json;

namespace FastXtr.Lisp.Context;

/// <summary>
/// The constraints an ITR sends in a Map-Request's Source-EID (CONTEXT-EXTENSION.md §2):
/// <c>{"agent-constraints": {"hardware": [...], "max-latency": ..., "min-security-level": n, "states": [...]}}</c>.
/// Unknown constraint keys are ignored and counted in <see cref="UnknownKeyCount"/>. A malformed object makes the
/// Map-Resolver answer as if no constraints were sent (the caller counts it).
/// </summary>
public sealed class AgentConstraints : IEquatable<AgentConstraints>
{
    public const string MemberName = "agent-constraints";

    /// <summary>The states an RLOC may be in when no <c>states</c> constraint is given.</summary>
    public static readonly IReadOnlyList<AgentState> DefaultStates = [AgentState.Ready, AgentState.Busy];

    /// <summary>No constraint at all (but context-aware answers asked for): <c>{"agent-constraints": {}}</c>.</summary>
    public static readonly AgentConstraints Empty = new();

    public IReadOnlyList<string> Hardware { get; init; } = [];
    public LatencyClass? MaxLatency { get; init; }
    public int? MinSecurityLevel { get; init; }

    /// <summary>The states asked for, or null for the default (ready, busy).</summary>
    public IReadOnlyList<AgentState>? States { get; init; }

    public int UnknownKeyCount { get; init; }

    public IReadOnlyList<AgentState> EffectiveStates => States ?? DefaultStates;

    public static AgentConstraints? TryParse(ReadOnlySpan<byte> utf8Json, out ContextError error)
    {
        try
        {
            using var doc = JsonDocument.Parse(utf8Json.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
            return TryParse(doc.RootElement, out error);
        }
        catch (JsonException e)
        {
            error = new ContextError($"not valid JSON: {e.Message}");
            return null;
        }
    }

    public static AgentConstraints? TryParse(string json, out ContextError error) => TryParse(Encoding.UTF8.GetBytes(json), out error);

    private static AgentConstraints? TryParse(JsonElement root, out ContextError error)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty(MemberName, out var b))
        { error = new ContextError($"no \"{MemberName}\" object"); return null; }
        if (b.ValueKind != JsonValueKind.Object) { error = new ContextError($"\"{MemberName}\" is not an object"); return null; }
        var hardware = new List<string>();
        LatencyClass? maxLatency = null;
        int? minSecurity = null;
        List<AgentState>? states = null;
        int unknown = 0;
        foreach (var p in b.EnumerateObject())
        {
            switch (p.Name)
            {
                case "hardware":
                    if (p.Value.ValueKind != JsonValueKind.Array) { error = new ContextError("\"hardware\" must be an array of tags"); return null; }
                    foreach (var t in p.Value.EnumerateArray())
                    {
                        if (t.ValueKind != JsonValueKind.String || !AgentContext.IsValidHardwareTag(t.GetString()!))
                        { error = new ContextError($"hardware tag {t.GetRawText()} is not a lowercase tag"); return null; }
                        if (!hardware.Contains(t.GetString()!)) hardware.Add(t.GetString()!);
                    }
                    break;
                case "max-latency":
                    if (p.Value.ValueKind != JsonValueKind.String || !AgentContext.TryParseLatency(p.Value.GetString(), out var l))
                    { error = new ContextError($"\"max-latency\" must be \"low\", \"medium\" or \"high\", not {p.Value.GetRawText()}"); return null; }
                    maxLatency = l;
                    break;
                case "min-security-level":
                    if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int s) || s is < 0 or > AgentContext.MaxSecurityLevel)
                    { error = new ContextError($"\"min-security-level\" must be an integer 0..{AgentContext.MaxSecurityLevel}, not {p.Value.GetRawText()}"); return null; }
                    minSecurity = s;
                    break;
                case "states":
                    if (p.Value.ValueKind != JsonValueKind.Array) { error = new ContextError("\"states\" must be an array of states"); return null; }
                    states = [];
                    foreach (var t in p.Value.EnumerateArray())
                    {
                        if (t.ValueKind != JsonValueKind.String || !AgentContext.TryParseState(t.GetString(), out var st))
                        { error = new ContextError($"state {t.GetRawText()} is not one of ready, busy, draining, migrating, failed, stopped"); return null; }
                        if (!states.Contains(st)) states.Add(st);
                    }
                    break;
                default:
                    unknown++;
                    break;
            }
        }
        error = ContextError.None;
        return new AgentConstraints { Hardware = hardware, MaxLatency = maxLatency, MinSecurityLevel = minSecurity, States = states, UnknownKeyCount = unknown };
    }

    public byte[] ToUtf8Json()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteStartObject(MemberName);
            if (Hardware.Count > 0)
            {
                w.WriteStartArray("hardware");
                foreach (var h in Hardware) w.WriteStringValue(h);
                w.WriteEndArray();
            }
            if (MaxLatency is LatencyClass l) w.WriteString("max-latency", AgentContext.LatencyName(l));
            if (MinSecurityLevel is int s) w.WriteNumber("min-security-level", s);
            if (States is not null)
            {
                w.WriteStartArray("states");
                foreach (var st in States) w.WriteStringValue(AgentContext.StateName(st));
                w.WriteEndArray();
            }
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return stream.ToArray();
    }

    public override string ToString() => Encoding.UTF8.GetString(ToUtf8Json());

    public bool Equals(AgentConstraints? other) =>
        other is not null && MaxLatency == other.MaxLatency && MinSecurityLevel == other.MinSecurityLevel && Hardware.SequenceEqual(other.Hardware)
        && (States is null ? other.States is null : other.States is not null && States.SequenceEqual(other.States));

    public override bool Equals(object? obj) => obj is AgentConstraints o && Equals(o);
    public override int GetHashCode() => HashCode.Combine(MaxLatency, MinSecurityLevel, Hardware.Count, States?.Count);
}
