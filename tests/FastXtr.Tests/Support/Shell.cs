using System.Diagnostics;
using NUnit.Framework;

namespace FastXtr.Tests.Support;

/// <summary>Runs commands for end-to-end tests, with a time limit, capturing output.</summary>
public static class Shell
{
    // Commands run through the lab's helper (FastXtr.Lab.Shell), so the lab and these tests build namespaces the same
    // way; what only tests need (root or skip, the fastxtr under test, output into the test log) is here.
    public static global::FastXtr.Lab.Shell.Result Run(string file, IEnumerable<string> args, int timeoutMs = 30_000) => global::FastXtr.Lab.Shell.Run(file, args, timeoutMs);

    public static global::FastXtr.Lab.Shell.Result Sh(string command, int timeoutMs = 30_000) => global::FastXtr.Lab.Shell.Sh(command, timeoutMs);

    /// <summary>Runs a command and fails the test with its output when it exits non-zero.</summary>
    public static string Must(string command, int timeoutMs = 30_000) => global::FastXtr.Lab.Shell.Must(command, timeoutMs);

    /// <summary>
    /// Starts <c>out/fastxtr ARGS</c> inside namespace <paramref name="ns"/>, its output copied to the test log with
    /// a prefix; the caller stops it.
    /// </summary>
    public static Process StartInNamespace(string ns, params string[] args)
    {
        var p = Process.Start(new ProcessStartInfo("ip", new[] { "netns", "exec", ns, FastxtrExe() }.Concat(args)) { RedirectStandardOutput = true, RedirectStandardError = true })
                ?? throw new AssertionException($"could not start fastxtr {string.Join(' ', args)} in {ns}");
        string prefix = $"[{ns} {args[0]}] ";
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) TestContext.Progress.WriteLine(prefix + e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) TestContext.Progress.WriteLine(prefix + e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    public static bool IsRoot => Environment.UserName == "root" || FastXtr.NativeInterop.Privileges.IsRoot;

    /// <summary>
    /// Tests that build namespaces and TUNs need root. Outside CI they are skipped without it (a developer's laptop);
    /// under CI=true they fail instead, so that a CI without root can never pass with them silently skipped.
    /// </summary>
    public static void RequireRoot(string why)
    {
        if (IsRoot) return;
        if (Environment.GetEnvironmentVariable("CI") == "true") Assert.Fail($"{why}, and CI=true: this run must be able to run them");
        Assert.Ignore(why);
    }

    public static string FastxtrExe()
    {
        string? path = Environment.GetEnvironmentVariable("FASTXTR_EXE");
        if (string.IsNullOrEmpty(path))
        {
            string dir = TestContext.CurrentContext.TestDirectory;
            while (dir.Length > 1 && !File.Exists(Path.Combine(dir, "FastXtr.sln"))) dir = Path.GetDirectoryName(dir)!;
            path = Path.Combine(dir, "out", "fastxtr");
        }
        if (!File.Exists(path)) throw new AssertionException($"{path} does not exist: run scripts/build.sh (scripts/test.sh does)");
        return path;
    }
}
