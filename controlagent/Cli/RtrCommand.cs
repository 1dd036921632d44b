using System.CommandLine;
using System.Net.Sockets;
using FastXtr.Agent;
using FastXtr.Dataplane.Workers;
using FastXtr.MapServer;
using FastXtr.Packets;

namespace FastXtr.Cli;

/// <summary><c>fastxtr rtr</c>: a re-encapsulating tunnel router for xTRs behind NAT, data plane and control in one process.</summary>
public static class RtrCommand
{
    public static Command Build(TextWriter stdout, TextWriter stderr)
    {
        var config = new Option<string>("--config")
        {
            Description = "configuration file: rloc-addr (the RTR's public address, one per family; the one a Map-Server's 'rtr' line names), "
                + "map-resolver (where the RTR resolves the destinations of what it carries), nat-site IID PREFIX KEY-ID sha1|sha256 SECRET "
                + "(the EID prefixes whose xTRs may use this RTR from behind NAT, with their site's key: repeat per site), "
                + "nat-binding-timeout SECONDS (default 60: a binding not refreshed that long is dropped), shm, api-socket, "
                + "map-request-rate, subscribe, rloc-probe-interval, rloc-probe-misses",
            Required = true,
        };
        var workers = new Option<int>("--workers") { Description = "data plane workers (each its own UDP socket on the data port, SO_REUSEPORT)", DefaultValueFactory = _ => 1 };
        var cpus = new Option<string?>("--cpus") { Description = "CPUs to pin the workers to, one per worker, e.g. 0,1 (default: not pinned)" };
        var batch = new Option<int>("--batch") { Description = "packets per receive/send batch", DefaultValueFactory = _ => DataplaneOptions.DefaultBatch };
        var port = new Option<int>("--port") { Description = "the UDP port the RTR takes LISP data (and the Info-Requests of xTRs behind NAT) on", DefaultValueFactory = _ => LispDataHeader.DataPort };
        var mtu = new Option<int>("--mtu") { Description = "underlay path MTU (RFC 9300 §7): larger outer packets are fragmented (IPv4) or their inner packets cut (inner IPv4 to an IPv6 locator)", DefaultValueFactory = _ => 1500 };
        var busyPoll = new Option<int>("--busy-poll-us") { Description = "how long a worker that ran out of packets keeps checking before it sleeps in poll (microseconds; 0 sleeps at once)", DefaultValueFactory = _ => DataplaneOptions.DefaultBusyPollMicroseconds };
        var metrics = new Option<string?>("--metrics") { Description = RoleMetrics.Help + " (the data plane's counters and the control's)" };
        var command = new Command("rtr",
            "Run a re-encapsulating tunnel router (RTR, draft-ietf-lisp-nat-traversal) for xTRs behind NAT: it takes LISP data on its data port, "
            + "checks that the inner source's mapping lists the outer source (an xTR that did not authenticate is never forwarded for), and "
            + "encapsulates the packet again to the inner destination's locator in its own Instance ID. An xTR behind NAT (agent 'nat-traversal on', "
            + "told this RTR by its Map-Server) registers the RTR's RLOC as its own and sends the RTR, from its data port, an Info-Request per EID "
            + "prefix signed with its site's key: the RTR learns from it the address and port the NAT translated that data port to, and sends that "
            + "prefix's traffic there from its own data port (the binding the keep-alives hold open). Destinations that are not behind NAT are "
            + "resolved through the Map-Resolver, as an ITR does. Bindings and counters: GET /v1/status on the API socket (fastxtr show agents). "
            + "Stops on SIGINT/SIGTERM.");
        foreach (var o in new Option[] { config, workers, cpus, batch, port, mtu, busyPoll, metrics }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            // Before anything opens: a stop or reload signal that comes during start-up is held (Program.StopSignals).
            using var signals = new Program.StopSignals();
            AgentConfig cfg;
            DataplaneOptions options;
            try
            {
                string path = parse.GetValue(config)!;
                if (!File.Exists(path)) throw new ConfigException($"{path}: no such configuration file");
                cfg = AgentConfig.Parse(File.ReadAllLines(path), path);
                cfg.Rtr = true;
                var problems = RtrProblems(cfg, path);
                if (problems.Count > 0) throw new ConfigException(string.Join(Environment.NewLine, problems));
                cfg.DataPort = (ushort)Math.Clamp(parse.GetValue(port), 1, 65535);
                var rloc4 = cfg.RlocOf(AddressFamily.InterNetwork);
                var rloc6 = cfg.RlocOf(AddressFamily.InterNetworkV6);
                options = new DataplaneOptions
                {
                    Rtr = true,
                    Workers = parse.GetValue(workers),
                    Cpus = CliParsing.ParseCpus(parse.GetValue(cpus)),
                    Batch = parse.GetValue(batch),
                    RlocAddress = rloc4 is null ? 0 : Ipv4Header.ToUInt32(rloc4),
                    RlocAddress6 = rloc6 is null ? 0 : Ipv6Header.ToUInt128(rloc6),
                    Port = cfg.DataPort,
                    OuterMtu = parse.GetValue(mtu),
                    SharedMemoryName = cfg.SharedMemoryName,
                    DecapFilter = true,
                    BusyPollMicroseconds = parse.GetValue(busyPoll),
                };
            }
            catch (Exception e) when (e is ConfigException or FormatException)
            {
                foreach (var line in e.Message.Split(Environment.NewLine)) stderr.WriteLine($"fastxtr rtr: {line}");
                return Program.ExitUsage;
            }
            using var logs = Program.RoleLogs("rtr", stdout, stderr);
            DataplaneHost host;
            try { host = DataplaneHost.Start(options, logs.CreateLogger()); }
            catch (DataplaneStartException e)
            {
                foreach (var line in e.Message.Split(Environment.NewLine)) stderr.WriteLine($"fastxtr rtr: {line}");
                return 1;
            }
            XtrAgent agent;
            try { agent = new XtrAgent(cfg, host.Region, logs.CreateLogger(), host.ControlInboxes); }
            catch (ConfigException e)
            {
                stderr.WriteLine($"fastxtr rtr: {e.Message}");
                host.Dispose();
                return 1;
            }
            AgentApi? api = null;
            Common.Metrics.MetricsEndpoint? exporter = null;
            try
            {
                if (cfg.EffectiveApiSocket.Length > 0)
                {
                    api = AgentApi.StartAsync(agent, cfg.EffectiveApiSocket, logs.CreateLogger()).GetAwaiter().GetResult();
                    stdout.WriteLine($"fastxtr rtr: API on {api.SocketPath} (mode 0600)");
                }
                exporter = RoleMetrics.Start(parse.GetValue(metrics), m =>
                {
                    RoleMetrics.Dataplane(m, host.Region);
                    RoleMetrics.Agent(m, agent);
                });
                if (exporter is not null) stdout.WriteLine($"fastxtr rtr: metrics on http://{exporter.BoundEndpoint}/metrics");
            }
            catch (Exception e) when (e is ConfigException or FormatException or IOException or UnauthorizedAccessException)
            {
                stderr.WriteLine($"fastxtr rtr: {e.Message}");
                api?.DisposeAsync().AsTask().GetAwaiter().GetResult();
                agent.Dispose();
                host.Dispose();
                return 1;
            }
            signals.Wait(ready: $"RTR at {string.Join(" and ", cfg.RlocAddresses)}, {cfg.NatSites.Count} nat-site(s)");
            Common.Systemd.ServiceNotifier.Stopping();
            exporter?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            api?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            agent.Dispose();
            host.Dispose();
            stdout.WriteLine("fastxtr rtr: stopped");
            return 0;
        });
        return command;
    }

    /// <summary>What an RTR's configuration must and must not have, each a sentence for the operator.</summary>
    public static List<string> RtrProblems(AgentConfig c, string source)
    {
        var p = new List<string>();
        if (c.NatSites.Count == 0) p.Add($"{source}: no 'nat-site IID PREFIX KEY-ID sha1|sha256 SECRET' line: no xTR could authenticate to this RTR");
        if (c.MapResolvers.Count == 0) p.Add($"{source}: no 'map-resolver ADDRESS': the RTR could not resolve the destinations of what it carries");
        if (c.Database.Count > 0) p.Add($"{source}: an RTR has no EIDs of its own: remove the database-mapping lines");
        if (c.MapServers.Count > 0) p.Add($"{source}: an RTR registers nothing: remove the map-server lines");
        if (c.NatTraversal) p.Add($"{source}: nat-traversal is for xTRs behind NAT, not for the RTR (which must have a public address)");
        return p;
    }
}
