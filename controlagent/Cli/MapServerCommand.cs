using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using FastXtr.MapServer;

namespace FastXtr.Cli;

/// <summary><c>fastxtr mapserver</c> and <c>fastxtr show registrations</c>.</summary>
public static class MapServerCommand
{
    public static Command Build(TextWriter stdout, TextWriter stderr)
    {
        var config = new Option<string>("--config") { Description = "configuration file (sites, keys, EID prefixes, rate limits); see controlagent/MapServer/mapserver.example.conf", Required = true };
        var listen = new Option<string[]>("--listen") { Description = "ADDRESS[:PORT] to listen on, replacing the file's listen lines (repeatable; default 0.0.0.0:4342)", Arity = ArgumentArity.ZeroOrMore };
        var workers = new Option<int>("--workers") { Description = "receive sockets (SO_REUSEPORT) and threads per listen address", DefaultValueFactory = _ => 1 };
        var cpus = new Option<string?>("--cpus") { Description = "CPUs to pin the receive workers to, one per worker, e.g. 0 or 0,1 (default: not pinned). Pins only the workers: helper threads (expiry, publications, the runtime's) stay free to run elsewhere, which `taskset` on the whole process would not allow" };
        var control = new Option<string?>("--control-socket") { Description = "Unix socket of the control API, HTTP/JSON: GET /v1/registrations, GET /v1/status (overrides the file)" };
        var command = new Command("mapserver", "Run a Map-Server and Map-Resolver (RFC 9301) with the agent context extension: authenticated Map-Registers, context-filtered Map-Replies, negative replies, per-source rate limits. Stops on SIGINT/SIGTERM. SIGHUP (systemctl reload) re-reads the configuration: sites, keys, prefixes, rate limits and TTLs change without a restart, registrations of unchanged sites and every subscription stay; a file that does not parse is refused with its line and reason and the running configuration kept; listen and control-socket changes wait for a restart.");
        var metrics = new Option<string?>("--metrics") { Description = RoleMetrics.Help };
        foreach (var o in new Option[] { config, listen, workers, cpus, control, metrics }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            // Before anything opens: a stop or reload signal that comes during start-up is held (Program.StopSignals).
            using var signals = new Program.StopSignals();
            // The file with the command line's overrides: read at start and again on every SIGHUP.
            MapServerConfig Load()
            {
                var loaded = MapServerConfig.Load(parse.GetValue(config)!);
                var l = parse.GetValue(listen) ?? [];
                if (l.Length > 0)
                {
                    loaded.Listen.Clear();
                    foreach (var e in l) loaded.Listen.Add(MapServerConfig.ParseEndpoint(e));
                }
                if (parse.GetValue(control) is string c) loaded.ControlSocket = c;
                return loaded;
            }
            MapServerConfig cfg;
            try
            {
                cfg = Load();
            }
            catch (Exception e) when (e is ConfigException or FormatException)
            {
                stderr.WriteLine($"fastxtr mapserver: {e.Message}");
                return Program.ExitUsage;
            }
            int w = parse.GetValue(workers);
            if (w is < 1 or > 64) { stderr.WriteLine("fastxtr mapserver: --workers must be 1 .. 64"); return Program.ExitUsage; }
            IReadOnlyList<int> pins;
            try { pins = CliParsing.ParseCpus(parse.GetValue(cpus)); }
            catch (FormatException e) { stderr.WriteLine($"fastxtr mapserver: {e.Message}"); return Program.ExitUsage; }
            if (pins.Count > 0 && pins.Count != w) { stderr.WriteLine($"fastxtr mapserver: --cpus lists {pins.Count} CPUs for {w} workers: give one per worker"); return Program.ExitUsage; }
            if (pins.FirstOrDefault(c => c < 0 || c >= Environment.ProcessorCount, -1) is int bad and >= 0) { stderr.WriteLine($"fastxtr mapserver: --cpus {bad}: this machine has CPUs 0 .. {Environment.ProcessorCount - 1}"); return Program.ExitUsage; }
            MapServerHost host;
            using var logs = Program.RoleLogs("mapserver", stdout, stderr);
            try { host = new MapServerHost(cfg, w, logs.CreateLogger(), cpus: pins); }
            catch (Exception e) when (e is ConfigException or SocketException or IOException or UnauthorizedAccessException)
            {
                stderr.WriteLine($"fastxtr mapserver: {e.Message}");
                return 1;
            }
            Common.Metrics.MetricsEndpoint? exporter;
            try { exporter = RoleMetrics.Start(parse.GetValue(metrics), m => RoleMetrics.MapServer(m, host)); }
            catch (Exception e) when (e is ConfigException or FormatException)
            {
                stderr.WriteLine($"fastxtr mapserver: {e.Message}");
                host.Dispose();
                return Program.ExitUsage;
            }
            if (exporter is not null) stdout.WriteLine($"fastxtr mapserver: metrics on http://{exporter.BoundEndpoint}/metrics");
            signals.Wait(() => host.ReloadFrom(Load), ready: $"{host.Config.Sites.Count} site(s), listening on {string.Join(", ", host.BoundEndpoints.Distinct())}");
            Common.Systemd.ServiceNotifier.Stopping();
            exporter?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            host.Dispose();
            stdout.WriteLine("fastxtr mapserver: stopped");
            return 0;
        });
        return command;
    }

    /// <summary><c>fastxtr show mapserver</c>: a running Map-Server's counters and table sizes, over its control socket.</summary>
    public static Command ShowStatus(TextWriter stdout, TextWriter stderr)
    {
        var socketPath = new Option<string>("--control-socket") { Description = "the Map-Server's control socket", DefaultValueFactory = _ => "/run/fastxtr/mapserver.sock" };
        var json = new Option<bool>("--json") { Description = "print the JSON the Map-Server returned" };
        var all = new Option<bool>("--all") { Description = "also counters that are zero" };
        var command = new Command("mapserver", "A running Map-Server's counters (messages, refusals by reason, publications, reloads), registrations, subscriptions and runtime figures.");
        command.Options.Add(socketPath);
        command.Options.Add(json);
        command.Options.Add(all);
        command.SetAction(parse =>
        {
            var reply = UnixSocketClient.Get(parse.GetValue(socketPath)!, "/v1/status", stderr, "mapserver", role: "mapserver", option: "--control-socket");
            if (reply is null) return 1;
            if (parse.GetValue(json)) { stdout.WriteLine(reply.ToJsonString()); return 0; }
            foreach (var (name, value) in reply.AsObject())
                if (parse.GetValue(all) || value!.GetValue<long>() != 0) stdout.WriteLine($"{name,-40}{value,16}");
            return 0;
        });
        return command;
    }

    /// <summary><c>fastxtr show referral-cache</c>: the DDT Map-Resolver's cached Map-Referrals, over the control socket.</summary>
    public static Command ShowReferralCache(TextWriter stdout, TextWriter stderr) =>
        TableView("referral-cache", "The DDT Map-Resolver's referral cache of a running Map-Server (ddt-root set): each cached Map-Referral's IID and prefix, action, referral set with priorities and weights, incomplete bit and expiry.",
            "/v1/referral-cache", "referral(s)", stdout, stderr, r =>
            {
                string targets = string.Join(" ", r.GetProperty("targets").EnumerateArray().Select(t => $"{t.GetProperty("address").GetString()} p{t.GetProperty("priority").GetInt32()}/w{t.GetProperty("weight").GetInt32()}"));
                stdout.WriteLine($"[{r.GetProperty("iid").GetUInt32()}] {r.GetProperty("eid").GetString()}  {r.GetProperty("action").GetString()}{(r.GetProperty("incomplete").GetBoolean() ? " incomplete" : "")}  expires in {r.GetProperty("expires_in_s").GetInt64()}s{(targets.Length > 0 ? "  -> " + targets : "")}");
            });

    /// <summary><c>fastxtr show registrations</c>: reads the running Map-Server's table over its control socket.</summary>
    public static Command ShowRegistrations(TextWriter stdout, TextWriter stderr) =>
        TableView("registrations", "Registrations of a running Map-Server: per site, IID and EID prefix, each xTR's RLOCs with attributes, xTR-ID, age and expiry.",
            "/v1/registrations", "registration(s)", stdout, stderr, r =>
            {
                stdout.WriteLine($"site {r.GetProperty("site").GetString()}  [{r.GetProperty("iid").GetUInt32()}] {r.GetProperty("eid").GetString()}  xtr-id {r.GetProperty("xtr_id").GetString()}  from {r.GetProperty("source").GetString()}  age {r.GetProperty("age_s").GetInt32()}s  expires in {r.GetProperty("expires_in_s").GetInt64()}s");
                foreach (var l in r.GetProperty("rlocs").EnumerateArray())
                {
                    string attrs = l.GetProperty("attributes").ValueKind == JsonValueKind.Null ? "" : "  " + l.GetProperty("attributes").GetRawText();
                    stdout.WriteLine($"    {l.GetProperty("address").GetString()} p{l.GetProperty("priority").GetInt32()}/w{l.GetProperty("weight").GetInt32()} {(l.GetProperty("reachable").GetBoolean() ? "up" : "down")}{attrs}");
                }
            });

    /// <summary>A <c>show</c> view of a list the Map-Server's control API returns: a count line, then one entry each (or the JSON).</summary>
    private static Command TableView(string name, string description, string path, string noun, TextWriter stdout, TextWriter stderr, Action<JsonElement> print)
    {
        var socketPath = new Option<string>("--control-socket") { Description = "the Map-Server's control socket", DefaultValueFactory = _ => "/run/fastxtr/mapserver.sock" };
        var json = new Option<bool>("--json") { Description = "print the JSON the Map-Server returned" };
        var command = new Command(name, description);
        command.Options.Add(socketPath);
        command.Options.Add(json);
        command.SetAction(parse =>
        {
            var reply = UnixSocketClient.Get(parse.GetValue(socketPath)!, path, stderr, name, role: "mapserver", option: "--control-socket");
            if (reply is null) return 1;
            if (parse.GetValue(json)) { stdout.WriteLine(reply.ToJsonString()); return 0; }
            using var doc = JsonDocument.Parse(reply.ToJsonString());
            var rows = doc.RootElement.EnumerateArray().ToList();
            stdout.WriteLine($"{rows.Count} {noun}");
            foreach (var r in rows) print(r);
            return 0;
        });
        return command;
    }
}
