using System.Text;
using System.Text.Json;

namespace FastXtr.Lisp.Context;

/// <summary>Processing-latency class of a host (draft-wang-lisp-ai-agent-00 §6.1 Latency_SLA); ordered low &lt; medium &lt; high.</summary>
public enum LatencyClass : byte { Low = 0, Medium = 1, High = 2 }

/// <summary>Agent state (draft §6.1).</summary>
public enum AgentState : byte { Ready, Busy, Draining, Migrating, Failed, Stopped }

/// <summary>Why agent context JSON was refused; <see cref="ContextError.None"/> when it was accepted.</summary>
public readonly record struct ContextError(string? Reason)
{
    public static readonly ContextError None = new(null);
    public bool Ok => Reason is null;
    public override string ToString() => Reason ?? "ok";
}

/// <summary>
/// The context attributes of one RLOC (CONTEXT-EXTENSION.md §1), carried as
/// <c>{"agent-context": {"latency": ..., "hardware": [...], "state": ..., "security-level": n, "load": n}}</c>.
/// Every key is optional; unknown keys, inside <c>agent-context</c> and beside it, are kept as raw JSON and
/// written back unchanged. A known key with a value of the wrong type or range makes the whole object invalid.
/// </summary>
public sealed class AgentContext : IEquatable<AgentContext>
{
    public const string MemberName = "agent-context";
    public const int MaxSecurityLevel = 7;
    public const int MaxLoad = 100;
    public const int MaxHardwareTagLength = 64;

    public LatencyClass? Latency { get; init; }
    public IReadOnlyList<string> Hardware { get; init; } = [];
    public AgentState? State { get; init; }
    public int? SecurityLevel { get; init; }
    public int? Load { get; init; }

    /// <summary>Unknown members of <c>agent-context</c>, name and raw JSON value, in the order received.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> UnknownMembers { get; init; } = [];

    /// <summary>Unknown members beside <c>agent-context</c> in the top-level object.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> UnknownTopLevelMembers { get; init; } = [];

    public bool HasHardware(string tag)
    {
        foreach (var h in Hardware)
            if (string.Equals(h, tag, StringComparison.Ordinal)) return true;
        return false;
    }

    public static string LatencyName(LatencyClass l) => l switch { LatencyClass.Low => "low", LatencyClass.Medium => "medium", _ => "high" };

    public static bool TryParseLatency(string? s, out LatencyClass latency)
    {
        switch (s)
        {
            case "low": latency = LatencyClass.Low; return true;
            case "medium": latency = LatencyClass.Medium; return true;
            case "high": latency = LatencyClass.High; return true;
            default: latency = default; return false;
        }
    }

    public static string StateName(AgentState s) => s switch
    {
        AgentState.Ready => "ready",
        AgentState.Busy => "busy",
        AgentState.Draining => "draining",
        AgentState.Migrating => "migrating",
        AgentState.Failed => "failed",
        _ => "stopped",
    };

    public static bool TryParseState(string? s, out AgentState state)
    {
        switch (s)
        {
            case "ready": state = AgentState.Ready; return true;
            case "busy": state = AgentState.Busy; return true;
            case "draining": state = AgentState.Draining; return true;
            case "migrating": state = AgentState.Migrating; return true;
            case "failed": state = AgentState.Failed; return true;
            case "stopped": state = AgentState.Stopped; return true;
            default: state = default; return false;
        }
    }

    /// <summary>A hardware tag is 1–64 characters of lowercase letters, digits, '-', '_' and '.'.</summary>
    public static bool IsValidHardwareTag(string tag)
    {
        if (tag.Length is 0 or > MaxHardwareTagLength) return false;
        foreach (char c in tag)
            if (!(c is >= 'a' and <= 'z' or >= '0' and <= '9' or '-' or '_' or '.')) return false;
        return true;
    }

    /// <summary>Parses the JSON text of a JSON LCAF; on failure returns null and says why.</summary>
    public static AgentContext? TryParse(ReadOnlySpan<byte> utf8Json, out ContextError error)
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

    public static AgentContext? TryParse(string json, out ContextError error) => TryParse(Encoding.UTF8.GetBytes(json), out error);

    private static AgentContext? TryParse(JsonElement root, out ContextError error)
    {
        if (root.ValueKind != JsonValueKind.Object) { error = new ContextError("the JSON is not an object"); return null; }
        JsonElement? body = null;
        var topUnknown = new List<KeyValuePair<string, string>>();
        foreach (var p in root.EnumerateObject())
        {
            if (p.NameEquals(MemberName))
            {
                if (body is not null) { error = new ContextError($"\"{MemberName}\" appears twice"); return null; }
                body = p.Value;
            }
            else topUnknown.Add(new(p.Name, p.Value.GetRawText()));
        }
        if (body is not JsonElement b) { error = new ContextError($"no \"{MemberName}\" member"); return null; }
        if (b.ValueKind != JsonValueKind.Object) { error = new ContextError($"\"{MemberName}\" is not an object"); return null; }

        LatencyClass? latency = null;
        AgentState? state = null;
        int? security = null, load = null;
        var hardware = new List<string>();
        var unknown = new List<KeyValuePair<string, string>>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in b.EnumerateObject())
        {
            if (!seen.Add(p.Name)) { error = new ContextError($"key \"{p.Name}\" appears twice"); return null; }
            switch (p.Name)
            {
                case "latency":
                    if (p.Value.ValueKind != JsonValueKind.String || !TryParseLatency(p.Value.GetString(), out var l))
                    { error = new ContextError($"\"latency\" must be \"low\", \"medium\" or \"high\", not {p.Value.GetRawText()}"); return null; }
                    latency = l;
                    break;
                case "hardware":
                    if (p.Value.ValueKind != JsonValueKind.Array) { error = new ContextError($"\"hardware\" must be an array of tags, not {p.Value.GetRawText()}"); return null; }
                    foreach (var t in p.Value.EnumerateArray())
                    {
                        if (t.ValueKind != JsonValueKind.String || !IsValidHardwareTag(t.GetString()!))
                        { error = new ContextError($"hardware tag {t.GetRawText()} is not a lowercase tag of letters, digits, '-', '_' or '.'"); return null; }
                        string tag = t.GetString()!;
                        if (!hardware.Contains(tag)) hardware.Add(tag);
                    }
                    break;
                case "state":
                    if (p.Value.ValueKind != JsonValueKind.String || !TryParseState(p.Value.GetString(), out var s))
                    { error = new ContextError($"\"state\" must be one of ready, busy, draining, migrating, failed, stopped, not {p.Value.GetRawText()}"); return null; }
                    state = s;
                    break;
                case "security-level":
                    if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int sl) || sl is < 0 or > MaxSecurityLevel)
                    { error = new ContextError($"\"security-level\" must be an integer 0..{MaxSecurityLevel}, not {p.Value.GetRawText()}"); return null; }
                    security = sl;
                    break;
                case "load":
                    if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int ld) || ld is < 0 or > MaxLoad)
                    { error = new ContextError($"\"load\" must be an integer 0..{MaxLoad}, not {p.Value.GetRawText()}"); return null; }
                    load = ld;
                    break;
                default:
                    unknown.Add(new(p.Name, p.Value.GetRawText()));
                    break;
            }
        }
        error = ContextError.None;
        return new AgentContext
        {
            Latency = latency, Hardware = hardware, State = state, SecurityLevel = security, Load = load,
            UnknownMembers = unknown, UnknownTopLevelMembers = topUnknown,
        };
    }

    /// <summary>
    /// Whether <see cref="TryParse(ReadOnlySpan{byte}, out ContextError)"/> of <paramref name="utf8Json"/> would give
    /// a context equal to this one, read without allocating: a Map-Server takes an agent's periodic re-registration with
    /// unchanged attributes as a refresh without parsing it. Conservative: false for anything it does not follow to the
    /// end (unknown members on either side, a repeated key, malformed or invalid JSON), and the caller then parses.
    /// </summary>
    public bool Matches(ReadOnlySpan<byte> utf8Json)
    {
        if (UnknownMembers.Count > 0 || UnknownTopLevelMembers.Count > 0) return false;
        try
        {
            var r = new Utf8JsonReader(utf8Json, new JsonReaderOptions { MaxDepth = 16 });
            if (!r.Read() || r.TokenType != JsonTokenType.StartObject) return false;
            // The top level holds agent-context and nothing else (anything else would be an unknown member).
            if (!r.Read() || r.TokenType != JsonTokenType.PropertyName || !r.ValueTextEquals(MemberName)) return false;
            if (!r.Read() || r.TokenType != JsonTokenType.StartObject) return false;
            int seen = 0, hardware = 0;
            while (true)
            {
                if (!r.Read()) return false;
                if (r.TokenType == JsonTokenType.EndObject) break;
                if (r.TokenType != JsonTokenType.PropertyName) return false;
                int bit = r.ValueTextEquals("latency") ? 1 : r.ValueTextEquals("hardware") ? 2 : r.ValueTextEquals("state") ? 4
                    : r.ValueTextEquals("security-level") ? 8 : r.ValueTextEquals("load") ? 16 : 0;
                if (bit == 0 || (seen & bit) != 0) return false; // unknown, or twice
                seen |= bit;
                if (!r.Read()) return false;
                switch (bit)
                {
                    case 1:
                        if (Latency is not LatencyClass l || r.TokenType != JsonTokenType.String || !r.ValueTextEquals(LatencyName(l))) return false;
                        break;
                    case 4:
                        if (State is not AgentState st || r.TokenType != JsonTokenType.String || !r.ValueTextEquals(StateName(st))) return false;
                        break;
                    case 8:
                        if (SecurityLevel is not int sl || r.TokenType != JsonTokenType.Number || !r.TryGetInt32(out int v) || v != sl) return false;
                        break;
                    case 16:
                        if (Load is not int ld || r.TokenType != JsonTokenType.Number || !r.TryGetInt32(out int w) || w != ld) return false;
                        break;
                    default:
                        // Hardware: the tags in order, a repeat of an earlier one dropped (as the parser does).
                        if (r.TokenType != JsonTokenType.StartArray) return false;
                        while (true)
                        {
                            if (!r.Read()) return false;
                            if (r.TokenType == JsonTokenType.EndArray) break;
                            if (r.TokenType != JsonTokenType.String) return false;
                            bool repeat = false;
                            for (int k = 0; k < hardware && !repeat; k++) repeat = r.ValueTextEquals(Hardware[k]);
                            if (repeat) continue;
                            if (hardware == Hardware.Count || !r.ValueTextEquals(Hardware[hardware])) return false;
                            hardware++;
                        }
                        break;
                }
            }
            // Every attribute this context has was present (an absent one would parse as unset), and nothing follows.
            int expected = (Latency is null ? 0 : 1) | (Hardware.Count == 0 ? 0 : 2) | (State is null ? 0 : 4) | (SecurityLevel is null ? 0 : 8) | (Load is null ? 0 : 16);
            if ((seen & ~2) != (expected & ~2) || hardware != Hardware.Count) return false;
            if (!r.Read() || r.TokenType != JsonTokenType.EndObject) return false;
            return !r.Read();
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>The JSON text, keys in a fixed order (latency, hardware, state, security-level, load, unknown ones).</summary>
    public byte[] ToUtf8Json()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteStartObject(MemberName);
            if (Latency is LatencyClass l) w.WriteString("latency", LatencyName(l));
            if (Hardware.Count > 0)
            {
                w.WriteStartArray("hardware");
                foreach (var h in Hardware) w.WriteStringValue(h);
                w.WriteEndArray();
            }
            if (State is AgentState s) w.WriteString("state", StateName(s));
            if (SecurityLevel is int sl) w.WriteNumber("security-level", sl);
            if (Load is int ld) w.WriteNumber("load", ld);
            foreach (var (k, v) in UnknownMembers)
            {
                w.WritePropertyName(k);
                w.WriteRawValue(v, skipInputValidation: true);
            }
            w.WriteEndObject();
            foreach (var (k, v) in UnknownTopLevelMembers)
            {
                w.WritePropertyName(k);
                w.WriteRawValue(v, skipInputValidation: true);
            }
            w.WriteEndObject();
        }
        return stream.ToArray();
    }

    public override string ToString() => Encoding.UTF8.GetString(ToUtf8Json());

    public bool Equals(AgentContext? other) =>
        other is not null && Latency == other.Latency && State == other.State && SecurityLevel == other.SecurityLevel && Load == other.Load
        && Hardware.SequenceEqual(other.Hardware) && UnknownMembers.SequenceEqual(other.UnknownMembers) && UnknownTopLevelMembers.SequenceEqual(other.UnknownTopLevelMembers);

    public override bool Equals(object? obj) => obj is AgentContext o && Equals(o);
    public override int GetHashCode() => HashCode.Combine(Latency, State, SecurityLevel, Load, Hardware.Count);
}
