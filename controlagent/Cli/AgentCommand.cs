using System.CommandLine;
using FastXtr.ControlAgent.Agent;
using FastXtr.ControlAgent.MapServer;
using FastXtr.Dataplane.Shared;

namespace FastXtr.ControlAgent.Cli;

/// <summary><c>fastxtr agent</c>: the xTR control agent beside a data plane (registration and resolution so far).</summary>
public static class AgentCommand
{
    public static Command Build(TextWriter stdout, TextWriter stderr)
    {
        var config = new Option<string>("--config") { Description = "configuration file: map-server, map-resolver, database-mapping, rloc-addr, shm, register-interval, xtr-id, site-id", Required = true };
        var shm = new Option<string?>("--shm") { Description = "the data plane's shared-memory name (overrides the file)" };
        var command = new Command("agent", "Run the xTR control agent: register this xTR's EID prefixes with the Map-Servers and resolve the data plane's misses into its map-cache. (The local agent API, probing, SMR and pub/sub handling are not in this build yet: issue #5.) Stops on SIGINT/SIGTERM.");
        command.Options.Add(config);
        command.Options.Add(shm);
        command.SetAction(parse =>
        {
            AgentConfig cfg;
            try
            {
                string path = parse.GetValue(config)!;
                if (!File.Exists(path)) throw new ConfigException($"{path}: no such configuration file");
                cfg = AgentConfig.Parse(File.ReadAllLines(path), path);
                if (parse.GetValue(shm) is string s) cfg.SharedMemoryName = s;
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
                try { agent = new XtrAgent(cfg, region, stdout); }
                catch (ConfigException e)
                {
                    stderr.WriteLine($"fastxtr agent: {e.Message}");
                    return 1;
                }
                Program.WaitForStopSignal();
                agent.Dispose();
            }
            stdout.WriteLine("fastxtr agent: stopped");
            return 0;
        });
        return command;
    }
}
