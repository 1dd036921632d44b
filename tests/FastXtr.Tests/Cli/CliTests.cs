using System.Diagnostics;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.Cli;

/// <summary>The published out/fastxtr executable, run as a user would (scripts/test.sh builds it first).</summary>
[TestFixture]
public class CliTests
{
    private static string Exe()
    {
        string? path = Environment.GetEnvironmentVariable("FASTXTR_EXE");
        if (string.IsNullOrEmpty(path))
        {
            string dir = TestContext.CurrentContext.TestDirectory;
            while (dir.Length > 1 && !File.Exists(Path.Combine(dir, "FastXtr.sln"))) dir = Path.GetDirectoryName(dir)!;
            path = Path.Combine(dir, "out", "fastxtr");
        }
        if (!File.Exists(path)) Assert.Fail($"{path} does not exist: run scripts/build.sh (scripts/test.sh does)");
        return path;
    }

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var psi = new ProcessStartInfo(Exe(), args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(30_000)) { p.Kill(); Assert.Fail("fastxtr did not exit within 30 s"); }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [Test]
    public void Help_ListsEveryRole()
    {
        var (code, output, _) = Run("--help");
        Assert.That(code, Is.EqualTo(0));
        foreach (var role in new[] { "dataplane", "agent", "mapserver", "show", "lig", "lab" })
            Assert.That(output, Does.Contain("  " + role), role);
    }

    [TestCase("dataplane")]
    [TestCase("agent")]
    [TestCase("mapserver")]
    [TestCase("show")]
    [TestCase("lig")]
    [TestCase("lab")]
    public void UnimplementedRole_ExitsNonZeroAndSaysSo(string role)
    {
        var (code, _, err) = Run(role, "--workers", "2");
        Assert.That(code, Is.EqualTo(3));
        Assert.That(err, Does.Contain("not implemented"));
    }

    [Test]
    public void Decode_PrintsTheMessage_AndFailsOnGarbage()
    {
        var (code, output, _) = Run("decode", Hex.Format(GoldenVectors.MapRegister));
        Assert.That(code, Is.EqualTo(0));
        Assert.That(output, Does.Contain("Map-Register").And.Contains("alg=HmacSha256").And.Contains("[1000]10.1.0.5/32"));
        var bad = Run("decode", "10 00 00 01 00");
        Assert.That(bad.Code, Is.EqualTo(1));
        Assert.That(bad.Out, Does.Contain("Truncated at offset"));
        Assert.That(Run("decode", "xyz").Code, Is.EqualTo(2));
    }
}
