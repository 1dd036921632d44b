using System.CommandLine;
using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;
using FastXtr.Agent;

namespace FastXtr.Cli;

/// <summary><c>fastxtr show stats|map-cache</c>: reads a running data plane's shared memory (no IPC, no locks).</summary>
public static class ShowCommand
{
    public static Command Build(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("show", "Show the state of a running role: the data plane's stats and map-cache (from its shared memory), the agent's database and agents (from its API socket), the Map-Server's registrations and counters (from its control socket). Every view takes --json for scripts.");
        command.Subcommands.Add(Stats(stdout, stderr));
        command.Subcommands.Add(MapCacheView(stdout, stderr));
        command.Subcommands.Add(MapServerCommand.ShowRegistrations(stdout, stderr));
        command.Subcommands.Add(MapServerCommand.ShowReferralCache(stdout, stderr));
        command.Subcommands.Add(MapServerCommand.ShowStatus(stdout, stderr));
        command.Subcommands.Add(Database(stdout, stderr));
        command.Subcommands.Add(Agents(stdout, stderr));
        return command;
    }

    private static string Rlocs(System.Text.Json.Nodes.JsonNode m) =>
        string.Join(", ", m["rlocs"]!.AsArray().Select(r => $"{r!["address"]} p{r["priority"]}/w{r["weight"]}"));

    private static Command Database(TextWriter stdout, TextWriter stderr)
    {
        var socket = ApiSocketOption();
        var json = new Option<bool>("--json") { Description = "print the agent's JSON answer" };
        var command = new Command("database", "This xTR's EID database as its agent registers it: configured mappings and attached agents, with RLOCs and attributes (asked from the agent's API).");
        command.Options.Add(socket);
        command.Options.Add(json);
        command.SetAction(parse =>
        {
            var doc = UnixSocketClient.Get(parse.GetValue(socket)!, "/v1/database", stderr, "database");
            if (doc is null) return 1;
            if (parse.GetValue(json)) { stdout.WriteLine(doc.ToJsonString()); return 0; }
            foreach (var (kind, list) in new[] { ("configured", doc["configured"]!.AsArray()), ("agent", doc["agents"]!.AsArray()) })
                foreach (var m in list)
                    stdout.WriteLine($"[{m!["iid"]}]{m["eid"],-22} {kind,-10} {Rlocs(m)}  {(m["attributes"] is { } a ? a.ToJsonString() : "")}{(m["name"] is { } n ? $"  name {n}" : "")}");
            return 0;
        });
        return command;
    }

    private static Command Agents(TextWriter stdout, TextWriter stderr)
    {
        var socket = ApiSocketOption();
        var json = new Option<bool>("--json") { Description = "print the agent's JSON answer" };
        var command = new Command("agents", "The agents attached to this xTR through the local API (name, EID, attributes, constraint profile, since when), each Map-Server (registering, or unresponsive) and Map-Resolver (up or down, unanswered requests in a row, smoothed round-trip time, how long a request waits before the next resolver is asked), whether a NAT translates this xTR (nat-traversal on: each Map-Server's view, and the RTRs it goes through), an RTR's bindings of xTRs behind NAT, then the control agent's counters.");
        command.Options.Add(socket);
        command.Options.Add(json);
        command.SetAction(parse =>
        {
            var agents = UnixSocketClient.Get(parse.GetValue(socket)!, "/v1/agents", stderr, "agents");
            var status = agents is null ? null : UnixSocketClient.Get(parse.GetValue(socket)!, "/v1/status", stderr, "agents");
            if (agents is null || status is null) return 1;
            if (parse.GetValue(json)) { stdout.WriteLine(new System.Text.Json.Nodes.JsonObject { ["agents"] = agents.DeepClone(), ["status"] = status.DeepClone() }.ToJsonString()); return 0; }
            string rlocs = status["rlocs"] is System.Text.Json.Nodes.JsonArray all ? string.Join(" ", all.Select(r => r!.GetValue<string>())) : $"{status["rloc"]}";
            stdout.WriteLine($"agent pid {status["pid"]}  rloc {rlocs}  xtr-id {status["xtr_id"]}  {agents.AsArray().Count} attached agent(s)");
            var unresponsive = status["map_servers_unresponsive"]?.AsArray().Select(m => m!.GetValue<string>()).ToHashSet() ?? [];
            foreach (var m in status["map_servers"]?.AsArray() ?? [])
                stdout.WriteLine($"  map-server   {m,-28} {(unresponsive.Contains(m!.GetValue<string>()) ? "unresponsive (3 Map-Registers unanswered)" : "registering")}");
            foreach (var r in status["map_resolvers"]?.AsArray() ?? [])
                stdout.WriteLine($"  map-resolver {r!["address"],-28} {r["state"]}, {r["unanswered_in_a_row"]} unanswered in a row, srtt {(r["srtt_ms"] is { } srtt ? $"{srtt} ms" : "-")}, next one asked after {r["failover_ms"]} ms");
            foreach (var n in status["nat"]?.AsArray() ?? [])
                stdout.WriteLine($"  nat: {n!["map_server"]} sees this xTR as {n["translated"]}: {(n["behind_nat"]!.GetValue<bool>() ? "behind NAT" : "not behind NAT")}; RTRs offered: {(n["rtrs"]!.AsArray().Count == 0 ? "none" : string.Join(", ", n["rtrs"]!.AsArray().Select(r => r!.GetValue<string>())))}");
            if (status["through_rtrs"]?.AsArray() is { Count: > 0 } through)
                stdout.WriteLine($"  registered and sending through RTR(s) {string.Join(", ", through.Select(r => r!.GetValue<string>()))}");
            if (status["rtr_bindings"]?.AsArray() is { } bindings)
            {
                stdout.WriteLine($"  RTR: {bindings.Count} xTR binding(s) behind NAT");
                foreach (var b in bindings)
                    stdout.WriteLine($"    {b!["eid_prefix"]} -> {b["translated"]} (since {b["since"]}, refreshed {b["refreshed"]})");
            }
            foreach (var a in agents.AsArray())
                stdout.WriteLine($"  {a!["name"],-16} [{a["iid"]}]{a["eid"],-20} {(a["attributes"] is { } at ? at.ToJsonString() : "-")}  {(a["constraints"] is { } c ? $"constraints {c.ToJsonString()} (profile {a["profile"]})" : "")}  since {a["attached_at"]}");
            stdout.WriteLine("counters:");
            foreach (var (name, value) in status["counters"]!.AsObject())
                if (value!.GetValue<long>() != 0) stdout.WriteLine($"  {name,-36}{value,12}");
            return 0;
        });
        return command;
    }

    private static Option<string> ShmOption() => new("--shm") { Description = "the data plane's shared-memory name", DefaultValueFactory = _ => "fastxtr" };

    private static SharedRegion? Attach(string shm, TextWriter stderr, string what)
    {
        try { return SharedRegion.Attach(shm); }
        catch (SharedRegionException e) { stderr.WriteLine($"fastxtr show {what}: {e.Message}"); }
        catch (FastXtr.NativeInterop.NativeException e) { stderr.WriteLine($"fastxtr show {what}: {e.Message}"); }
        return null;
    }

    private static Command Stats(TextWriter stdout, TextWriter stderr)
    {
        var shm = ShmOption();
        var json = new Option<bool>("--json") { Description = "print one JSON object instead of a table" };
        var command = new Command("stats", "Per-worker packet, byte and drop-reason counters of a running data plane.");
        command.Options.Add(shm);
        command.Options.Add(json);
        command.SetAction(parse =>
        {
            using var region = Attach(parse.GetValue(shm)!, stderr, "stats");
            if (region is null) return 1;
            int workers = region.ReportingWorkers;
            var counters = Enumerable.Range(0, workers).Select(region.Counters).ToArray();
            var all = Enum.GetValues<Counter>().Where(c => c != Counter.Count).ToArray();
            if (parse.GetValue(json))
            {
                var total = all.ToDictionary(WorkerCounters.Name, c => counters.Aggregate(0UL, (s, w) => s + w[c]));
                var doc = new Dictionary<string, object>
                {
                    ["shm"] = region.Path!, ["dataplane_pid"] = region.Header.DataplanePid, ["map_cache_writer_pid"] = region.Header.WriterPid, ["map_cache_entries"] = region.Header.EntryCount,
                    ["total"] = total,
                    ["workers"] = counters.Select(w => all.ToDictionary(WorkerCounters.Name, c => w[c])).ToArray(),
                };
                stdout.WriteLine(System.Text.Json.JsonSerializer.Serialize(doc));
                return 0;
            }
            stdout.WriteLine($"shm {region.Path}  data plane pid {region.Header.DataplanePid}  map-cache writer {(region.Header.WriterPid == 0 ? "none" : $"pid {region.Header.WriterPid}{(NativeInterop.Processes.IsRunning(region.Header.WriterPid) ? "" : " (gone; the next writer repairs what it left)")}")}  map-cache entries {region.Header.EntryCount}/{region.Sizes.EntryCapacity}");
            stdout.WriteLine($"{"counter",-32}{"total",16}" + string.Concat(Enumerable.Range(0, workers).Select(w => $"{"worker " + w,16}")));
            foreach (var c in all)
            {
                ulong sum = counters.Aggregate(0UL, (s, w) => s + w[c]);
                if (sum == 0 && WorkerCounters.IsDrop(c)) continue; // drop reasons that never happened stay quiet
                stdout.WriteLine($"{WorkerCounters.Name(c),-32}{sum,16}" + string.Concat(counters.Select(w => $"{w[c],16}")));
            }
            return 0;
        });
        return command;
    }

    private static Command MapCacheView(TextWriter stdout, TextWriter stderr)
    {
        var shm = ShmOption();
        var json = new Option<bool>("--json") { Description = "print one JSON array of entries instead of lines" };
        var command = new Command("map-cache", "Every map-cache entry: (IID, profile, EID prefix), RLOCs with priority/weight/state, action, TTL, expiry.");
        command.Options.Add(shm);
        command.Options.Add(json);
        command.SetAction(parse =>
        {
            using var region = Attach(parse.GetValue(shm)!, stderr, "map-cache");
            if (region is null) return 1;
            var entries = region.MapCache.Snapshot().OrderBy(e => e.InstanceId).ThenBy(e => e.Profile).ThenBy(e => e.Family).ThenBy(e => e.Prefix).ToList();
            long now = MapCacheTables.Now;
            if (parse.GetValue(json))
            {
                stdout.WriteLine(System.Text.Json.JsonSerializer.Serialize(entries.Select(e => new Dictionary<string, object?>
                {
                    ["iid"] = e.InstanceId,
                    ["eid"] = $"{EidPrefix.Format(e.Family, e.Prefix)}/{e.PrefixLength}",
                    ["kind"] = e.Kind.ToString(),
                    ["profile"] = e.Kind == MapCacheKind.Destination ? e.Profile : null,
                    ["assigned_profile"] = e.Kind == MapCacheKind.SourceProfile ? e.AssignedProfile : null,
                    ["negative"] = e.Kind == MapCacheKind.Destination && e.IsNegative,
                    ["action"] = e.Kind == MapCacheKind.Destination && e.IsNegative ? e.Action.ToString() : null,
                    ["ttl_minutes"] = e.TtlMinutes,
                    ["expires_in_s"] = e.ExpiresAt == 0 ? null : Math.Max(0, (e.ExpiresAt - now) / System.Diagnostics.Stopwatch.Frequency),
                    ["map_version"] = e.MapVersion,
                    ["rlocs"] = Enumerable.Range(0, e.Kind == MapCacheKind.Destination ? e.RlocCount : 0).Select(i => new Dictionary<string, object>
                    {
                        ["address"] = EidPrefix.Format(e.Rlocs[i].Family, e.Rlocs[i].Address), ["port"] = e.Rlocs[i].Port == 0 ? LispDataHeader.DataPort : e.Rlocs[i].Port,
                        ["priority"] = e.Rlocs[i].Priority, ["weight"] = e.Rlocs[i].Weight, ["up"] = e.Rlocs[i].Up,
                    }).ToList(),
                })));
                return 0;
            }
            stdout.WriteLine($"{entries.Count} entries");
            foreach (var e in entries)
            {
                string expiry = e.ExpiresAt == 0 ? "never" : $"{Math.Max(0, (e.ExpiresAt - now) / System.Diagnostics.Stopwatch.Frequency)}s";
                if (e.Kind == MapCacheKind.SourceProfile)
                {
                    stdout.WriteLine($"[{e.InstanceId}] {EidPrefix.Format(e.Family, e.Prefix)}/{e.PrefixLength}  source profile: sources here resolve under profile {e.AssignedProfile}");
                    continue;
                }
                if (e.Kind == MapCacheKind.MovedAway)
                {
                    stdout.WriteLine($"[{e.InstanceId}] {EidPrefix.Format(e.Family, e.Prefix)}/{e.PrefixLength}  moved away: packets still arriving for it get their ITR an SMR; expires {expiry}");
                    continue;
                }
                string rlocs = e.IsNegative ? $"negative, action {e.Action}" : string.Join(", ", Enumerable.Range(0, e.RlocCount).Select(i =>
                {
                    var r = e.Rlocs[i];
                    string address = EidPrefix.Format(r.Family, r.Address);
                    if (r.Port != 0) address = r.Family == EidFamily.Ipv6 ? $"[{address}]:{r.Port}" : $"{address}:{r.Port}";
                    return $"{address} p{r.Priority}/w{r.Weight} {(r.Up ? "up" : "down")}{(r.NatTraversed ? " nat" : "")}";
                }));
                stdout.WriteLine($"[{e.InstanceId}]{(e.Profile != 0 ? $"(profile {e.Profile})" : "")} {EidPrefix.Format(e.Family, e.Prefix)}/{e.PrefixLength}  ttl {e.TtlMinutes}m  expires {expiry}  ver {e.MapVersion}  {rlocs}");
            }
            return 0;
        });
        return command;
    }

    private static Option<string> ApiSocketOption() => new("--api-socket")
    {
        Description = "the agent's API socket (default /run/fastxtr/agent-fastxtr.sock, the agent's default for --shm fastxtr)",
        DefaultValueFactory = _ => "/run/fastxtr/agent-fastxtr.sock",
    };
}
