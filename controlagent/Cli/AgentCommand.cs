using System.CommandLine;
using FastXtr.Agent;
using FastXtr.MapServer;
using FastXtr.SharedMemory;

namespace FastXtr.Cli;

/// <summary><c>fastxtr agent</c>: the xTR control agent beside a data plane.</summary>
public static class AgentCommand
{
    public static Command Build(TextWriter stdout, TextWriter stderr)
    {
        var config = new Option<string>("--config") { Description = "configuration file (see controlagent/Agent/agent.example.conf): map-server, map-resolver, database-mapping, rloc-addr, shm, register-interval, xtr-id, site-id, profile, source-profile, api-socket, rloc-probe-interval, rloc-probe-misses, map-request-rate, subscribe, nat-traversal (behind NAT: register the RTRs a Map-Server offers and send through them), nat-keepalive SECONDS (how often the RTRs are told this xTR's binding, default 15), data-port (the data plane's --port, where those keep-alives leave from)", Required = true };
        var shm = new Option<string?>("--shm") { Description = "the data plane's shared-memory name (overrides the file)" };
        var api = new Option<string?>("--api-socket") { Description = "the local agent API's Unix socket (overrides the file; default /run/fastxtr/agent-SHM.sock; an empty string turns the API off)" };
        var command = new Command("agent", "Run the xTR control agent beside a data plane: register this xTR's EID prefixes and attached agents with the Map-Servers (re-registered at once on any change), resolve the data plane's misses into its map-cache under the source's constraint profile, subscribe to what it resolves and apply publications, send and honour SMRs, probe locators, and serve the local agent API (HTTP+JSON on a Unix socket: GET /v1/status, /v1/database, /v1/agents; POST /v1/agents; PATCH and DELETE /v1/agents/IID/EID). Stops on SIGINT/SIGTERM; the data plane keeps forwarding meanwhile. SIGHUP (systemctl reload) re-reads the configuration: changed mappings, Map-Servers, Map-Resolvers and profiles apply at once, with re-registration only where something changed; a file that does not parse is refused with its line and reason and the running configuration kept. A data plane restarted on a fresh region (its file removed or remade) is refilled from the agent's mapping of the old one within a second.");
        command.Options.Add(config);
        command.Options.Add(shm);
        command.Options.Add(api);
        var metrics = new Option<string?>("--metrics") { Description = RoleMetrics.Help };
        command.Options.Add(metrics);
        command.SetAction(parse =>
        {
            // Before anything opens: a stop or reload signal that comes during start-up is held (Program.StopSignals).
            using var signals = new Program.StopSignals();
            // The file with the command line's overrides: read at start and again on every SIGHUP.
            AgentConfig Load()
            {
                string path = parse.GetValue(config)!;
                if (!File.Exists(path)) throw new ConfigException($"{path}: no such configuration file");
                var loaded = AgentConfig.Parse(File.ReadAllLines(path), path);
                if (parse.GetValue(shm) is string s) loaded.SharedMemoryName = s;
                if (parse.GetValue(api) is string a) loaded.ApiSocket = a;
                return loaded;
            }
            AgentConfig cfg;
            try
            {
                cfg = Load();
            }
            catch (ConfigException e)
            {
                stderr.WriteLine($"fastxtr agent: {e.Message}");
                return Program.ExitUsage;
            }
            SharedRegion region;
            try
            {
                region = File.Exists(NativeInterop.SharedMemoryMapping.PathFor(cfg.SharedMemoryName))
                    ? SharedRegion.Attach(cfg.SharedMemoryName)
                    : SharedRegion.Create(cfg.SharedMemoryName, SharedRegionSizes.Default);
            }
            catch (Exception e) when (e is SharedRegionException or NativeInterop.NativeException)
            {
                stderr.WriteLine($"fastxtr agent: {e.Message}");
                return 1;
            }
            using (region)
            {
                XtrAgent agent;
                using var logs = Program.RoleLogs("agent", stdout, stderr);
                try { agent = new XtrAgent(cfg, region, logs.CreateLogger()); }
                catch (Exception e) when (e is ConfigException or SharedRegionException)
                {
                    stderr.WriteLine($"fastxtr agent: {e.Message}");
                    return 1;
                }
                AgentApi? localApi = null;
                if (cfg.EffectiveApiSocket.Length > 0)
                {
                    try
                    {
                        localApi = AgentApi.StartAsync(agent, cfg.EffectiveApiSocket, logs.CreateLogger()).GetAwaiter().GetResult();
                        stdout.WriteLine($"fastxtr agent: local agent API on {localApi.SocketPath} (mode 0600)");
                    }
                    catch (Exception e) when (e is ConfigException or IOException or UnauthorizedAccessException)
                    {
                        stderr.WriteLine($"fastxtr agent: {e.Message}");
                        agent.Dispose();
                        return 1;
                    }
                }
                Common.Metrics.MetricsEndpoint? exporter;
                try { exporter = RoleMetrics.Start(parse.GetValue(metrics), m => RoleMetrics.Agent(m, agent)); }
                catch (Exception e) when (e is ConfigException or FormatException)
                {
                    stderr.WriteLine($"fastxtr agent: {e.Message}");
                    localApi?.DisposeAsync().AsTask().GetAwaiter().GetResult();
                    agent.Dispose();
                    return Program.ExitUsage;
                }
                if (exporter is not null) stdout.WriteLine($"fastxtr agent: metrics on http://{exporter.BoundEndpoint}/metrics");
                signals.Wait(() => agent.ReloadFrom(Load), ready: $"rloc {cfg.RlocAddress}, {cfg.Database.Count} mapping(s), region {region.Path}");
                Common.Systemd.ServiceNotifier.Stopping();
                exporter?.DisposeAsync().AsTask().GetAwaiter().GetResult();
                localApi?.DisposeAsync().AsTask().GetAwaiter().GetResult();
                agent.Dispose();
            }
            stdout.WriteLine("fastxtr agent: stopped");
            return 0;
        });
        return command;
    }
}
