using System.Diagnostics;

namespace FastXtr.Lab;

/// <summary>A command that could not be run, ran too long or failed where it had to succeed.</summary>
public sealed class ShellException(string message) : LabException(message);

/// <summary>
/// Runs commands (ip, sysctl, tcpdump, ping...) with a time limit, capturing their output: how the lab builds its
/// namespaces, and what the end-to-end tests build theirs with. A command that outlives its limit is killed with
/// its children.
/// </summary>
public static class Shell
{
    public sealed record Result(int Code, string Out, string Err)
    {
        public string All => Out + Err;
    }

    public static Result Run(string file, IEnumerable<string> args, int timeoutMs = 30_000)
    {
        var list = args.ToList();
        var psi = new ProcessStartInfo(file, list) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi) ?? throw new ShellException($"could not start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutMs))
        {
            try { p.Kill(entireProcessTree: true); }
            catch (InvalidOperationException) { } // it ended meanwhile
            throw new ShellException($"`{file} {string.Join(' ', list)}` did not finish in {timeoutMs} ms");
        }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>A bash command line.</summary>
    public static Result Sh(string command, int timeoutMs = 30_000) => Run("/bin/bash", ["-c", command], timeoutMs);

    /// <summary>A bash command line that must succeed: its standard output, or a <see cref="ShellException"/> with all it printed.</summary>
    public static string Must(string command, int timeoutMs = 30_000)
    {
        var r = Sh(command, timeoutMs);
        if (r.Code != 0) throw new ShellException($"`{command}` failed ({r.Code}): {r.All.Trim()}");
        return r.Out;
    }
}
