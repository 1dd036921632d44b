using System.CommandLine;
using FastXtr.ControlAgent.Messages;

namespace FastXtr.ControlAgent.Cli;

/// <summary>The single <c>fastxtr</c> executable: one subcommand per role, each role its own process (ARCHITECTURE.md).</summary>
public static class Program
{
    public const int ExitUsage = 2;

    public static int Main(string[] args) => BuildRootCommand(Console.Out, Console.Error).Parse(args).Invoke();

    /// <summary>Blocks until SIGINT or SIGTERM: how every long-running role is stopped.</summary>
    public static void WaitForStopSignal()
    {
        using var done = new ManualResetEventSlim();
        using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c => { c.Cancel = true; done.Set(); });
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; done.Set(); });
        done.Wait();
    }

    public static RootCommand BuildRootCommand(TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand(
            "FastXtr: a LISP (RFC 9300/9301) network substrate for AI agents, per draft-wang-lisp-ai-agent-00.\n" +
            "Agents keep stable EIDs across hosts, agent groups are isolated by Instance IDs, and the mapping system\n" +
            "picks locators by the agents' context (latency, hardware, state). Each role below runs as its own process.");

        root.Subcommands.Add(DataplaneCommand.Build(stdout, stderr));
        root.Subcommands.Add(AgentCommand.Build(stdout, stderr));
        root.Subcommands.Add(MapServerCommand.Build(stdout, stderr));
        root.Subcommands.Add(ShowCommand.Build(stdout, stderr));
        root.Subcommands.Add(MapCacheCommand.Build(stdout, stderr));
        root.Subcommands.Add(LigCommand.Build(stdout, stderr));
        root.Subcommands.Add(LabCommand.Build(stdout, stderr));
        root.Subcommands.Add(DecodeCommand(stdout, stderr));
        return root;
    }

    private static Command DecodeCommand(TextWriter stdout, TextWriter stderr)
    {
        var hex = new Argument<string>("hex") { Description = "the UDP payload of a LISP control message, in hex (spaces and colons allowed)" };
        var command = new Command("decode", "Decode a LISP control message given in hex and print its fields, or the error and its offset.");
        command.Arguments.Add(hex);
        command.SetAction(parse =>
        {
            string text = new string(parse.GetValue(hex)!.Where(c => !char.IsWhiteSpace(c) && c != ':').ToArray());
            byte[] bytes;
            try
            {
                bytes = Convert.FromHexString(text);
            }
            catch (FormatException)
            {
                stderr.WriteLine("fastxtr decode: the argument is not an even number of hex digits");
                return ExitUsage;
            }
            string description = LispMessage.Describe(bytes);
            stdout.WriteLine(description);
            return description.StartsWith("malformed", StringComparison.Ordinal) || description.StartsWith("unknown", StringComparison.Ordinal) || description.StartsWith("empty", StringComparison.Ordinal) ? 1 : 0;
        });
        return command;
    }
}
