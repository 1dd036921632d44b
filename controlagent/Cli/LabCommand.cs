using System.CommandLine;
using System.Net;
using FastXtr.Lab;

namespace FastXtr.Cli;

/// <summary><c>fastxtr lab up|run|down|agent|send</c>: the demonstration topology in network namespaces and its scenario.</summary>
public static class LabCommand
{
    public static Command Build(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("lab", "The demonstration lab in network namespaces: a Map-Server, three gateways (data plane + agent each) and seven agents in two groups. 'run' builds it, shows identity across a move, context-aware routing, a state change and isolation with measured figures (demo-out/summary.json, underlay.pcap, timeline.png, logs), and removes it; 'up' builds it and leaves it running; 'down' removes a lab, also one a killed run left.");
        command.Subcommands.Add(Run(stdout, stderr, up: false));
        command.Subcommands.Add(Run(stdout, stderr, up: true));
        command.Subcommands.Add(Down(stdout, stderr));
        command.Subcommands.Add(Ddt(stdout, stderr));
        command.Subcommands.Add(Agent(stderr));
        command.Subcommands.Add(Send(stdout, stderr));
        return command;
    }

    private static Option<string> PrefixOption() => new("--prefix") { Description = "prefix of every namespace, shared-memory region and socket of the lab (letters and digits, at most 8)", DefaultValueFactory = _ => "fxl" };

    private static Option<string> OutOption() => new("--out") { Description = "directory for summary.json, underlay.pcap, timeline.png and the logs", DefaultValueFactory = _ => "demo-out" };

    private static bool ValidPrefix(string prefix, TextWriter stderr)
    {
        if (prefix.Length is >= 1 and <= 8 && prefix.All(char.IsAsciiLetterOrDigit)) return true;
        stderr.WriteLine($"fastxtr lab: --prefix '{prefix}': use 1 to 8 letters or digits (namespace and interface names derive from it)");
        return false;
    }

    private static Command Run(TextWriter stdout, TextWriter stderr, bool up)
    {
        var prefix = PrefixOption();
        var output = OutOption();
        var nat = new Option<bool>("--nat") { Description = "put gateway 3 behind NAT (a namespace masquerading it with nftables) and run fastxtr rtr at 192.0.2.20 for it: B's move in step 2 is then a move onto a gateway behind NAT, with its session kept (needs nft)" };
        var quick = new Option<bool>("--quick") { Description = "shorter waits and fewer messages per step (the test suite's run)" };
        var moves = new Option<int>("--extra-moves") { Description = "after step 2, move B back and forth this many more times (even) and report the outage's median and p99 (the mobility benchmark)" };
        var style = new Option<string>("--move-style")
        {
            Description = "how B moves in step 2 (and the extra moves): make-before-break (linked and attached at the new gateway before it leaves the old one, as an orchestrator migrates) or break-before-make (detached, re-linked, attached: the worst case)",
            DefaultValueFactory = _ => "make-before-break",
        };
        style.AcceptOnlyFromAmong("make-before-break", "break-before-make");
        var command = up
            ? new Command("up", "Build the lab and leave it running (agents attached, no scenario); remove it with 'fastxtr lab down'.")
            : new Command("run", "Build the lab, run the four-step scenario with live narration, write demo-out/, and remove the lab (also on error or Ctrl-C). Exit 0 when every step passed, 1 otherwise.");
        command.Options.Add(prefix);
        command.Options.Add(output);
        command.Options.Add(nat);
        if (!up) { command.Options.Add(quick); command.Options.Add(moves); command.Options.Add(style); }
        command.SetAction(parse =>
        {
            if (!ValidPrefix(parse.GetValue(prefix)!, stderr)) return Program.ExitUsage;
            var topology = new LabTopology(parse.GetValue(prefix)!, parse.GetValue(output)!, parse.GetValue(nat));
            LabRunner runner;
            var moveStyle = parse.GetValue(style) == "break-before-make" ? MoveStyle.BreakBeforeMake : MoveStyle.MakeBeforeBreak;
            try { runner = new LabRunner(topology, stdout, parse.GetValue(quick), up ? 0 : parse.GetValue(moves), moveStyle); }
            catch (LabException e)
            {
                stderr.WriteLine($"fastxtr lab: {e.Message}");
                return Program.ExitUsage;
            }
            using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c =>
            {
                stderr.WriteLine("fastxtr lab: interrupted; removing the lab");
                runner.Dispose();
            });
            try
            {
                if (up)
                {
                    runner.Up();
                    stdout.WriteLine($"fastxtr lab: up (prefix {topology.Prefix}); 'ip netns exec {topology.Prefix}-a ping 10.1.0.2' reaches B; 'fastxtr lab down --prefix {topology.Prefix}' removes it");
                    return 0;
                }
                bool pass = runner.Run();
                return pass ? 0 : 1;
            }
            catch (LabException e)
            {
                stderr.WriteLine($"fastxtr lab: {e.Message}");
                if (up) runner.Dispose();
                return 1;
            }
            finally
            {
                if (!up) runner.Dispose();
            }
        });
        return command;
    }

    private static Command Down(TextWriter stdout, TextWriter stderr)
    {
        var prefix = PrefixOption();
        var command = new Command("down", "Remove the lab with this prefix: its processes, namespaces, shared memory and sockets, whether it runs or a killed run left it.");
        command.Options.Add(prefix);
        command.SetAction(parse =>
        {
            if (!ValidPrefix(parse.GetValue(prefix)!, stderr)) return Program.ExitUsage;
            LabRunner.Down(new LabTopology(parse.GetValue(prefix)!, "demo-out"), stdout, quiet: false);
            DdtLab.Down(parse.GetValue(prefix)!, stdout, quiet: true);
            return 0;
        });
        return command;
    }

    private static Command Ddt(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("ddt", "A LISP-DDT mapping system (RFC 8111) in network namespaces, for trying referrals and failover: a DDT root delegating [1000]10.1.0.0/16 to Map-Server msa, [1000]10.2.0.0/16 to the peers msb1 and msb2, and [2000]10.1.0.0/16 to msc; two DDT Map-Resolvers (mr1, mr2) seeded with the root; four xTRs (x1..x4, data plane + agent) registering their agents with their site's Map-Servers and resolving through mr1, then mr2. 'up' prints what to try; 'stop ROLE' kills a role's processes as a crash would and 'start ROLE' brings them back; 'move AGENT XTR' moves an agent; 'down' removes it all.");
        Command Sub(string name, string description, Argument<string>[] arguments, Func<DdtLab, System.CommandLine.ParseResult, string> act)
        {
            var prefix = new Option<string>("--prefix") { Description = "prefix of every namespace, region and socket of the DDT lab (letters and digits, at most 8)", DefaultValueFactory = _ => "fxd" };
            var output = new Option<string>("--out") { Description = "directory for the configurations and logs", DefaultValueFactory = _ => "ddt-out" };
            var sub = new Command(name, description);
            sub.Options.Add(prefix);
            sub.Options.Add(output);
            foreach (var a in arguments) sub.Arguments.Add(a);
            sub.SetAction(parse =>
            {
                if (!ValidPrefix(parse.GetValue(prefix)!, stderr)) return Program.ExitUsage;
                using var lab = new DdtLab(parse.GetValue(prefix)!, parse.GetValue(output)!, stdout);
                try
                {
                    stdout.Write(act(lab, parse));
                    return 0;
                }
                catch (LabException e)
                {
                    stderr.WriteLine($"fastxtr lab ddt {name}: {e.Message}");
                    if (name == "up") DdtLab.Down(lab.Prefix, stdout, quiet: true);
                    return 1;
                }
            });
            return sub;
        }
        var role = new Argument<string>("ROLE") { Description = "root, msa, msb1, msb2, msc, mr1, mr2, x1, x2, x3 or x4" };
        var agent = new Argument<string>("AGENT") { Description = "a, b, inf2, inf3 or t1" };
        var xtr = new Argument<string>("XTR") { Description = "the xTR to move it to (x1..x4, one serving its Instance ID)" };
        command.Subcommands.Add(Sub("up", "Build the DDT lab, attach the agents, wait until every one is registered, and print what to try. It keeps running until 'fastxtr lab ddt down'.", [], (lab, _) =>
        {
            lab.Up();
            return lab.Guide();
        }));
        command.Subcommands.Add(Sub("down", "Remove the DDT lab with this prefix: processes, namespaces, shared memory and sockets.", [], (lab, _) =>
        {
            int n = DdtLab.Down(lab.Prefix, TextWriter.Null, quiet: true);
            return $"fastxtr lab ddt down: removed {n} namespace(s) of DDT lab '{lab.Prefix}'\n";
        }));
        command.Subcommands.Add(Sub("stop", "Kill a role's processes (SIGKILL: nothing is withdrawn, as in a crash).", [role], (lab, parse) =>
        {
            lab.Stop(parse.GetValue(role)!);
            return $"fastxtr lab ddt: {parse.GetValue(role)} stopped\n";
        }));
        command.Subcommands.Add(Sub("start", "Start a stopped role again with its configuration (an xTR's agents must then be attached again).", [role], (lab, parse) =>
        {
            lab.Start(parse.GetValue(role)!);
            return $"fastxtr lab ddt: {parse.GetValue(role)} started\n";
        }));
        command.Subcommands.Add(Sub("move", "Move an agent to another xTR, make-before-break (attached there, then detached where it was).", [agent, xtr], (lab, parse) =>
        {
            string from = lab.Move(parse.GetValue(agent)!, parse.GetValue(xtr)!);
            return $"fastxtr lab ddt: {parse.GetValue(agent)} moved from {from} to {parse.GetValue(xtr)}\n";
        }));
        return command;
    }

    private static Command Agent(TextWriter stderr)
    {
        var name = new Option<string>("--name") { Required = true, Description = "the agent's name (how receivers count its messages)" };
        var eid = new Option<string>("--eid") { Required = true, Description = "the agent's EID (already on lo of its namespace)" };
        var report = new Option<string>("--report") { Required = true, Description = "JSON file its counts are written to every 100 ms" };
        var connect = new Option<string?>("--connect") { Description = "EID:PORT of a peer to keep a TCP task session with" };
        var probe = new Option<string?>("--probe") { Description = "EID:PORT to send a probe datagram to every millisecond" };
        var interval = new Option<int>("--task-interval-ms") { DefaultValueFactory = _ => 10, Description = "milliseconds between task messages" };
        var command = new Command("agent", "A demo agent (run inside its namespace by 'lab run'): serves TCP tasks on 7000 and counts datagrams on 7001; optionally keeps a task session and a probe stream to a peer.");
        foreach (var o in new Option[] { name, eid, report, connect, probe, interval }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            IPEndPoint? Endpoint(string? text) => text is null ? null : IPEndPoint.Parse(text);
            using var agent = new DemoAgent(parse.GetValue(name)!, IPAddress.Parse(parse.GetValue(eid)!), parse.GetValue(report)!);
            try { agent.Start(Endpoint(parse.GetValue(connect)), parse.GetValue(interval), Endpoint(parse.GetValue(probe))); }
            catch (Exception e) when (e is System.Net.Sockets.SocketException or FormatException)
            {
                stderr.WriteLine($"fastxtr lab agent: {e.Message}");
                return 1;
            }
            Program.WaitForStopSignal();
            return 0;
        });
        return command;
    }

    private static Command Send(TextWriter stdout, TextWriter stderr)
    {
        var from = new Option<string>("--from") { Required = true, Description = "the sender's name, carried in each datagram" };
        var to = new Option<string>("--to") { Required = true, Description = "EID:PORT" };
        var count = new Option<int>("--count") { DefaultValueFactory = _ => 20, Description = "datagrams to send" };
        var interval = new Option<int>("--interval-ms") { DefaultValueFactory = _ => 10, Description = "milliseconds between datagrams" };
        var command = new Command("send", "Send numbered datagrams from this namespace (run by 'lab run'); prints what was sent as JSON.");
        foreach (var o in new Option[] { from, to, count, interval }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            if (!IPEndPoint.TryParse(parse.GetValue(to)!, out var endpoint)) { stderr.WriteLine($"fastxtr lab send: --to '{parse.GetValue(to)}' is not ADDRESS:PORT"); return Program.ExitUsage; }
            stdout.WriteLine(DemoAgent.Send(parse.GetValue(from)!, endpoint, parse.GetValue(count), parse.GetValue(interval)).ToJsonString());
            return 0;
        });
        return command;
    }
}
