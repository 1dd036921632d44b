using System.Diagnostics;
using NUnit.Framework;

namespace FastXtr.Tests.Support;

/// <summary>Runs Debian's tshark (an independent LISP dissector) over a capture and returns fields per frame.</summary>
public static class Tshark
{
    public static string? Path()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':'))
        {
            string p = System.IO.Path.Combine(dir, "tshark");
            if (File.Exists(p)) return p;
        }
        return null;
    }

    /// <summary>
    /// Starts tshark in namespace <paramref name="ns"/> writing what matches <paramref name="filter"/> on
    /// <paramref name="iface"/> to <paramref name="pcap"/> (at most <paramref name="count"/> packets or
    /// <paramref name="seconds"/> s), and returns once it is capturing: dumpcap creates the file after it has opened the
    /// interface. (A fixed sleep before the traffic was not enough when tshark started slowly on a busy machine: the
    /// capture then began after the traffic and held nothing.)
    /// </summary>
    public static Task<FastXtr.Lab.Shell.Result> StartCapture(string ns, string iface, string filter, int count, string pcap, int seconds = 10)
    {
        File.Delete(pcap);
        var capture = Task.Run(() => Shell.Run("ip", ["netns", "exec", ns, "bash", "-c", $"timeout {seconds} tshark -i {iface} -f '{filter}' -c {count} -w {pcap} 2>&1"], (seconds + 10) * 1000));
        Poll.Until(() => File.Exists(pcap) || capture.IsCompleted, $"tshark to start capturing on {iface}", 15_000);
        if (!File.Exists(pcap)) throw new AssertionException($"tshark did not start: {capture.Result.All}");
        return capture;
    }

    /// <summary>
    /// One dictionary per frame: field name to its values (all occurrences, comma-joined).
    /// <paramref name="decodeAs"/> adds "-d" rules, e.g. "udp.port==4342,lisp".
    /// </summary>
    public static List<Dictionary<string, string>> Fields(string pcap, IReadOnlyList<string> fields, params string[] decodeAs)
    {
        string exe = Path() ?? throw new AssertionException("tshark is not installed: scripts/test.sh installs it (apt-get install tshark)");
        var args = new List<string> { "-r", pcap, "-n", "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,", "-E", "quote=n" };
        foreach (var d in decodeAs) { args.Add("-d"); args.Add(d); }
        foreach (var f in fields) { args.Add("-e"); args.Add(f); }
        var psi = new ProcessStartInfo(exe, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment["HOME"] = System.IO.Path.GetTempPath();
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(60_000)) { p.Kill(); throw new AssertionException("tshark did not finish in 60 s"); }
        Assert.That(p.ExitCode, Is.EqualTo(0), "tshark failed: " + stderr.Result);
        var rows = new List<Dictionary<string, string>>();
        foreach (var line in stdout.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var values = line.Split('|');
            var row = new Dictionary<string, string>();
            for (int i = 0; i < fields.Count; i++) row[fields[i]] = i < values.Length ? values[i] : "";
            rows.Add(row);
        }
        return rows;
    }

    /// <summary>The full text dissection (-V), for failure messages.</summary>
    public static string Verbose(string pcap, string frameFilter)
    {
        var psi = new ProcessStartInfo(Path()!, ["-r", pcap, "-n", "-V", "-Y", frameFilter]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string text = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return text;
    }
}
