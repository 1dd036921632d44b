using System.CommandLine;
using FastXtr.Lisp.Messages;

namespace FastXtr.Cli;

/// <summary>The single <c>fastxtr</c> executable: one subcommand per role, each role its own process (ARCHITECTURE.md).</summary>
public static class Program
{
    public const int ExitUsage = 2;

    public static int Main(string[] args) => BuildRootCommand(Console.Out, Console.Error).Parse(args).Invoke();

    /// <summary>
    /// A long-running role's log sink. When both standard streams are the systemd journal's (JOURNAL_STREAM names
    /// the process's own descriptors, not merely inherited), each line carries its syslog priority.
    /// </summary>
    public static LineLoggerProvider RoleLogs(string role, TextWriter stdout, TextWriter stderr) =>
        new(role, stdout, stderr, priorityPrefixes: ReferenceEquals(stdout, Console.Out) && ReferenceEquals(stderr, Console.Error)
            && NativeInterop.Journal.IsConnected(NativeInterop.Journal.StandardOutput) && NativeInterop.Journal.IsConnected(NativeInterop.Journal.StandardError));

    /// <summary>Blocks until SIGINT or SIGTERM (see <see cref="StopSignals"/>); SIGHUP is ignored.</summary>
    public static void WaitForStopSignal()
    {
        using var signals = new StopSignals();
        signals.Wait();
    }

    /// <summary>
    /// How every long-running role is stopped and reloaded, taken over from the runtime as the role starts, before it
    /// opens a socket or says it is ready: a signal that comes while the role is still starting is then held, not the
    /// default action. (SIGHUP's default ends the process: a reload sent as soon as a role answered on its socket, or
    /// told systemd READY=1, killed it when it came before the handler was in place — seen in the test suite under
    /// load.) SIGINT and SIGTERM end <see cref="Wait"/>; a SIGTERM during start-up makes it return at once.
    /// </summary>
    public sealed class StopSignals : IDisposable
    {
        private readonly ManualResetEventSlim _done = new();
        private readonly SemaphoreSlim _hup = new(0);
        private readonly System.Runtime.InteropServices.PosixSignalRegistration _sigint, _sigterm, _sighup;

        public StopSignals()
        {
            // Started under nohup (SIGHUP ignored, and inherited so): the runtime would never hand us a reload.
            NativeInterop.Processes.TakeBackSighup();
            _sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c => { c.Cancel = true; _done.Set(); });
            _sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; _done.Set(); });
            _sighup = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGHUP, c => { c.Cancel = true; _hup.Release(); });
        }

        /// <summary>
        /// Tells systemd READY=1 (with <paramref name="ready"/> as its status) and blocks until SIGINT or SIGTERM. With
        /// <paramref name="reload"/>, SIGHUP (what <c>systemctl reload</c> sends) runs it, one reload at a time, on this
        /// thread, systemd hearing RELOADING=1 before and READY=1 after (sd_notify); without, SIGHUP is ignored. A SIGHUP
        /// held from start-up is a reload of the configuration just read, which is harmless.
        /// </summary>
        public void Wait(Action? reload = null, string? ready = null)
        {
            if (ready is not null) Common.Systemd.ServiceNotifier.Ready(ready);
            var handles = new[] { _done.WaitHandle, _hup.AvailableWaitHandle };
            while (!_done.IsSet)
            {
                if (WaitHandle.WaitAny(handles) == 0) break;
                while (_hup.Wait(0))
                {
                    if (reload is null) continue;
                    Common.Systemd.ServiceNotifier.Reloading();
                    reload();
                    Common.Systemd.ServiceNotifier.Ready();
                }
            }
        }

        public void Dispose()
        {
            _sigint.Dispose();
            _sigterm.Dispose();
            _sighup.Dispose();
            _done.Dispose();
            _hup.Dispose();
        }
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
        root.Subcommands.Add(RtrCommand.Build(stdout, stderr));
        root.Subcommands.Add(ShowCommand.Build(stdout, stderr));
        root.Subcommands.Add(MapCacheCommand.Build(stdout, stderr));
        root.Subcommands.Add(LigCommand.Build(stdout, stderr));
        root.Subcommands.Add(LabCommand.Build(stdout, stderr));
        root.Subcommands.Add(DecodeCommand(stdout, stderr));
        return root;
    }

    /// <summary>
    /// The payload as a LISP data packet (RFC 9300 §5.3: the 8-byte LISP header, then the inner IP packet), or null when
    /// what follows the header is no whole IPv4 or IPv6 packet.
    /// </summary>
    internal static string? DescribeDataPacket(ReadOnlySpan<byte> payload)
    {
        if (!LispDataHeader.TryRead(payload, out var lisp, out _) || payload.Length < 8 + 1) return null;
        var inner = payload[8..];
        string packet;
        if (inner[0] >> 4 == 4 && Ipv4Header.TryRead(inner, out var ip, out _) && ip.TotalLength == inner.Length)
            packet = $"IPv4 {Ipv4Header.ToAddress(ip.SourceAddress)} -> {Ipv4Header.ToAddress(ip.DestinationAddress)} protocol {ip.Protocol} length {ip.TotalLength} ttl {ip.TimeToLive}";
        else if (inner[0] >> 4 == 6 && inner.Length >= 40 && System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(inner[4..]) + 40 == inner.Length)
            packet = $"IPv6 {new System.Net.IPAddress(inner.Slice(8, 16))} -> {new System.Net.IPAddress(inner.Slice(24, 16))} next-header {inner[6]} length {inner.Length} hop-limit {inner[7]}";
        else return null;
        return $"LISP data packet (UDP port {LispPorts.Data}, not a control message): {lisp}; inner {packet}";
    }

    private static Command DecodeCommand(TextWriter stdout, TextWriter stderr)
    {
        var hex = new Argument<string>("hex") { Description = "the UDP payload of a LISP control message, in hex (spaces and colons allowed)" };
        var command = new Command("decode", "Decode a LISP control message given in hex and print its fields, or the error and its offset; a LISP data packet (header and inner IP packet) is recognised as one.");
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
            bool failed = description.StartsWith("malformed", StringComparison.Ordinal) || description.StartsWith("unknown", StringComparison.Ordinal) || description.StartsWith("empty", StringComparison.Ordinal);
            if (failed && DescribeDataPacket(bytes) is string data)
            {
                // Port 4341's payload, not 4342's: a data header's flags byte can look like a control type (0x88 = N|I
                // reads as an ECM), so a payload that is no valid control message is tried as a data packet.
                stdout.WriteLine(data);
                return 0;
            }
            stdout.WriteLine(description);
            return failed ? 1 : 0;
        });
        return command;
    }
}
