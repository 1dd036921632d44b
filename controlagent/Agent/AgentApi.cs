using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using FastXtr.Lisp.Context;
using FastXtr.SharedMemory.MapCache;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using FastXtr.Common.Api;
using Microsoft.Extensions.Logging;

namespace FastXtr.Agent;

/// <summary>
/// The local agent API: HTTP/1.1 with JSON bodies on a Unix socket (mode 0600, so only root and the agent's user
/// reach it), for the agents on this host and their orchestrators. <c>curl --unix-socket PATH http://x/v1/agents</c>.
/// <code>
/// GET    /v1/status                       the agent: RLOC, xTR-ID, Map-Servers, profiles, counters
/// GET    /v1/database                     configured mappings and attached agents
/// GET    /v1/agents                       attached agents
/// POST   /v1/agents                       attach {"name","iid","eid","attributes"?,"constraints"?,"priority"?,"weight"?}
/// GET    /v1/agents/{iid}/{eid}[/{len}]   one agent
/// PATCH  /v1/agents/{iid}/{eid}[/{len}]   change attributes {"attributes": {"state": "draining"}} (null removes a key)
/// DELETE /v1/agents/{iid}/{eid}[/{len}]   detach: withdraw the registration
/// </code>
/// Changes are registered at once; the answer says whether every Map-Server confirmed within
/// <see cref="ConfirmWait"/> ("registered": true) or the agent is still retransmitting (false). A Map-Server that has
/// left a Map-Register unanswered for three sends (status "map_servers_unresponsive") is still registered with but not
/// waited for, so that one dead Map-Server does not hold every attach and detach for the whole wait.
/// </summary>
public sealed class AgentApi : IAsyncDisposable
{
    public static readonly TimeSpan ConfirmWait = TimeSpan.FromSeconds(3);
    private static readonly JsonSerializerOptions Json = UnixSocketApi.Json;
    private readonly UnixSocketApi _api;
    public string SocketPath => _api.SocketPath;

    private AgentApi(UnixSocketApi api) => _api = api;

    /// <summary>Starts listening; a socket file left by a dead agent is replaced, one in use is an error.</summary>
    public static async Task<AgentApi> StartAsync(XtrAgent agent, string path, ILogger log) =>
        new(await UnixSocketApi.StartAsync(path, log, "another agent answers there: stop it, or give this one another 'api-socket'", app => Map(app, agent)).ConfigureAwait(false));

    private static IResult Error(int status, string message) => UnixSocketApi.Error(status, message);

    private static void Map(WebApplication app, XtrAgent agent)
    {
        app.MapGet("/v1/status", () => Results.Json(Status(agent), Json));
        app.MapGet("/v1/database", () => Results.Json(new Dictionary<string, object>
        {
            ["configured"] = agent.Database.Configured.Select(m => MappingView(m)).ToList(),
            ["agents"] = agent.Database.Agents.Select(AgentView).ToList(),
        }, Json));
        app.MapGet("/v1/agents", () => Results.Json(agent.Database.Agents.Select(AgentView).ToList(), Json));
        app.MapPost("/v1/agents", async (HttpRequest request) =>
        {
            var body = await ReadBody(request).ConfigureAwait(false);
            if (body.Error is not null) return Error(400, body.Error);
            var o = body.Node!;
            string? eidText = Text(o, "eid");
            if (eidText is null) return Error(400, "\"eid\" is required, e.g. \"10.1.0.2\" or \"10.1.0.0/24\"");
            if (!TryUInt(o, "iid", out uint iid, out string? iidError)) return Error(400, iidError!);
            if (iid > LispDataHeader.MaxInstanceId) return Error(400, $"\"iid\" {iid}: the Instance ID has 24 bits (max {LispDataHeader.MaxInstanceId})");
            EidFamily family; UInt128 prefix; int length;
            try { (family, prefix, length) = EidPrefix.Parse(eidText.Contains('/', StringComparison.Ordinal) ? eidText : eidText + (eidText.Contains(':', StringComparison.Ordinal) ? "/128" : "/32"), "eid"); }
            catch (Exception e) when (e is FormatException or ArgumentException) { return Error(400, $"\"eid\": {e.Message}"); }
            string name = Text(o, "name") ?? EidPrefix.Format(family, prefix);
            if (!TryByte(o, "priority", 1, out byte priority, out string? pe)) return Error(400, pe!);
            if (!TryByte(o, "weight", 100, out byte weight, out string? we)) return Error(400, we!);
            AgentContext? context = null;
            if (o["attributes"] is JsonNode attrs)
            {
                context = AgentContext.TryParse(new JsonObject { [AgentContext.MemberName] = attrs.DeepClone() }.ToJsonString(), out var err);
                if (context is null) return Error(400, $"\"attributes\": {err.Reason}");
            }
            AgentConstraints? constraints = null;
            if (o["constraints"] is JsonNode cons)
            {
                constraints = AgentConstraints.TryParse(new JsonObject { [AgentConstraints.MemberName] = cons.DeepClone() }.ToJsonString(), out var err);
                if (constraints is null) return Error(400, $"\"constraints\": {err.Reason}");
            }
            var mapping = new DatabaseMapping(iid, family, prefix, length, agent.Config.RlocAddresses.Select(r => (r, priority, weight)).ToList(), context);
            var (attached, conflict, registered) = agent.Attach(name, mapping, constraints);
            if (attached is null) return Error(409, conflict!);
            var view = AgentView(attached);
            view["registered"] = await Confirmed(registered).ConfigureAwait(false);
            return Results.Json(view, Json, statusCode: 201);
        });
        foreach (string route in new[] { "/v1/agents/{iid}/{eid}", "/v1/agents/{iid}/{eid}/{len}" })
        {
            app.MapGet(route, (string iid, string eid, string? len) =>
                Find(agent, iid, eid, len, out var found, out var error) ? Results.Json(AgentView(found!), Json) : error!);
            app.MapPatch(route, async (string iid, string eid, string? len, HttpRequest request) =>
            {
                if (!Find(agent, iid, eid, len, out var found, out var error)) return error!;
                var body = await ReadBody(request).ConfigureAwait(false);
                if (body.Error is not null) return Error(400, body.Error);
                if (body.Node!["attributes"] is not JsonObject patch) return Error(400, "expected {\"attributes\": {...}}: the attribute keys to change (null removes one)");
                var merged = found!.Mapping.Context is AgentContext current
                    ? (JsonNode.Parse(current.ToString())![AgentContext.MemberName]?.DeepClone() as JsonObject ?? new JsonObject())
                    : new JsonObject();
                foreach (var (key, value) in patch)
                {
                    if (value is null) merged.Remove(key);
                    else merged[key] = value.DeepClone();
                }
                var context = AgentContext.TryParse(new JsonObject { [AgentContext.MemberName] = merged }.ToJsonString(), out var err);
                if (context is null) return Error(400, $"\"attributes\": {err.Reason}");
                var (updated, registered) = agent.Update(found, context);
                if (updated is null) return Error(404, "the agent was detached meanwhile");
                var view = AgentView(updated);
                view["registered"] = await Confirmed(registered).ConfigureAwait(false);
                return Results.Json(view, Json);
            });
            app.MapDelete(route, async (string iid, string eid, string? len) =>
            {
                if (!Find(agent, iid, eid, len, out var found, out var error)) return error!;
                var (gone, withdrawn) = agent.Detach(found!.Mapping.InstanceId, found.Mapping.Family, found.Mapping.Prefix, found.Mapping.Length);
                if (gone is null) return Error(404, "the agent was detached meanwhile");
                var view = AgentView(gone);
                view["withdrawn"] = await Confirmed(withdrawn).ConfigureAwait(false);
                return Results.Json(view, Json);
            });
        }
        UnixSocketApi.MapNotFound(app, "GET /v1/status, /v1/database, /v1/agents");
    }

    private static async Task<bool> Confirmed(Task<bool> registration)
    {
        var first = await Task.WhenAny(registration, Task.Delay(ConfirmWait)).ConfigureAwait(false);
        return first == registration && registration.Result;
    }

    private static bool Find(XtrAgent agent, string iidText, string eidText, string? lenText, out AttachedAgent? found, out IResult? error)
    {
        found = null;
        error = null;
        if (!uint.TryParse(iidText, out uint iid)) { error = Error(400, $"'{iidText}' is not an Instance ID"); return false; }
        string eid = Uri.UnescapeDataString(eidText);
        if (lenText is not null) eid += "/" + lenText;
        else if (!eid.Contains('/', StringComparison.Ordinal)) eid += eid.Contains(':', StringComparison.Ordinal) ? "/128" : "/32";
        try
        {
            var (family, prefix, length) = EidPrefix.Parse(eid, "eid");
            found = agent.Database.Find(iid, family, prefix, length);
        }
        catch (Exception e) when (e is FormatException or ArgumentException) { error = Error(400, $"'{eid}': {e.Message}"); return false; }
        if (found is null) { error = Error(404, $"no agent attached with EID [{iid}]{eid}"); return false; }
        return true;
    }

    private static async Task<(JsonObject? Node, string? Error)> ReadBody(HttpRequest request)
    {
        try
        {
            var node = await JsonNode.ParseAsync(request.Body).ConfigureAwait(false);
            return node is JsonObject o ? (o, null) : (null, "the body must be a JSON object");
        }
        catch (JsonException e) { return (null, $"the body is not valid JSON: {e.Message}"); }
        catch (BadHttpRequestException e) { return (null, e.Message); }
    }

    private static string? Text(JsonObject o, string key) =>
        o[key] is JsonValue v && v.TryGetValue(out string? s) ? s : null;

    private static bool TryUInt(JsonObject o, string key, out uint value, out string? error)
    {
        error = null;
        value = 0;
        if (o[key] is JsonValue v && v.TryGetValue(out long l) && l >= 0 && l <= uint.MaxValue) { value = (uint)l; return true; }
        error = $"\"{key}\" must be a non-negative integer";
        return false;
    }

    private static bool TryByte(JsonObject o, string key, byte fallback, out byte value, out string? error)
    {
        error = null;
        value = fallback;
        if (o[key] is null) return true;
        if (o[key] is JsonValue v && v.TryGetValue(out long l) && l is >= 0 and <= 255) { value = (byte)l; return true; }
        error = $"\"{key}\" must be an integer 0..255";
        return false;
    }

    private static Dictionary<string, object?> MappingView(DatabaseMapping m) => new()
    {
        ["iid"] = m.InstanceId,
        ["eid"] = $"{EidPrefix.Format(m.Family, m.Prefix)}/{m.Length}",
        ["rlocs"] = m.Rlocs.Select(r => new Dictionary<string, object> { ["address"] = r.Rloc.ToString(), ["priority"] = r.Priority, ["weight"] = r.Weight }).ToList(),
        ["attributes"] = m.Context is null ? null : JsonNode.Parse(m.Context.ToString())![AgentContext.MemberName]?.DeepClone(),
    };

    private static Dictionary<string, object?> AgentView(AttachedAgent a)
    {
        var view = MappingView(a.Mapping);
        view["name"] = a.Name;
        view["constraints"] = a.Constraints is null ? null : JsonNode.Parse(a.Constraints.ToString())![AgentConstraints.MemberName]?.DeepClone();
        view["profile"] = a.Profile;
        view["attached_at"] = a.AttachedAt.ToString("O");
        view["updated_at"] = a.UpdatedAt.ToString("O");
        return view;
    }

    private static Dictionary<string, object?> Status(XtrAgent agent) => new()
    {
        ["pid"] = Environment.ProcessId,
        ["rloc"] = agent.Config.RlocAddress!.ToString(),
        ["rlocs"] = new JsonArray(agent.Config.RlocAddresses.Select(r => (JsonNode)r.ToString()).ToArray()),
        ["xtr_id"] = agent.Config.XtrId.ToString("x32"),
        ["site_id"] = agent.Config.SiteId,
        ["map_servers"] = agent.Config.MapServers.Select(m => m.Endpoint.ToString()).ToList(),
        ["map_servers_unresponsive"] = agent.UnresponsiveMapServers().Select(e => e.ToString()).ToList(),
        ["map_resolvers"] = agent.MapResolverStates().Select(r => new Dictionary<string, object?>
        {
            ["address"] = r.Endpoint.ToString(), ["state"] = r.Up ? "up" : "down", ["unanswered_in_a_row"] = r.UnansweredInARow,
            ["srtt_ms"] = r.SrttMs, ["failover_ms"] = r.FailoverMs,
        }).ToList(),
        ["nat"] = agent.NatStates.Select(n => new Dictionary<string, object?>
        {
            ["map_server"] = n.MapServer.ToString(), ["behind_nat"] = n.BehindNat, ["translated"] = new IPEndPoint(n.TranslatedAddress, n.TranslatedPort).ToString(),
            ["rtrs"] = n.Rtrs.Select(r => r.ToString()).ToList(), ["at"] = n.At.ToString("O"),
        }).ToList(),
        ["through_rtrs"] = agent.ThroughRtrs.Select(r => r.ToString()).ToList(),
        ["rtr_bindings"] = agent.Config.Rtr ? agent.RtrBindings.Select(b => new Dictionary<string, object?>
        {
            ["eid_prefix"] = b.PrefixText, ["translated"] = new IPEndPoint(b.Translated, b.Port).ToString(), ["since"] = b.Since.ToString("O"), ["refreshed"] = b.Refreshed.ToString("O"),
        }).ToList() : null,
        ["database_mappings"] = agent.Database.Configured.Count,
        ["agents"] = agent.Database.Agents.Count,
        ["profiles"] = agent.Profiles.Select(p => new Dictionary<string, object?>
        {
            ["number"] = p.Number, ["name"] = p.Name, ["constraints"] = JsonNode.Parse(p.Constraints.ToString())![AgentConstraints.MemberName]?.DeepClone(),
        }).ToList(),
        ["counters"] = agent.Counters.ToDictionary(),
    };

    public ValueTask DisposeAsync() => _api.DisposeAsync();
}
