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

    [TestCase("agent")]
    [TestCase("mapserver")]
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

    [Test]
    public void DataplaneHelp_DocumentsEveryFlag()
    {
        var (code, output, _) = Run("dataplane", "--help");
        Assert.That(code, Is.EqualTo(0));
        foreach (var flag in new[] { "--workers", "--cpus", "--batch", "--mode", "--instance", "--eid-if", "--rloc-addr", "--port", "--mtu", "--shm", "--map-cache-entries", "--decap-filter", "--rx-ring", "--tx-ring", "--socket-buffer" })
            Assert.That(output, Does.Contain(flag), flag);
    }

    [Test]
    public void Dataplane_BadOptions_AreRefusedWithTheReason()
    {
        var missing = Run("dataplane", "--instance", "1000=fxq0");
        Assert.That(missing.Code, Is.EqualTo(1));
        Assert.That(missing.Err, Does.Contain("--rloc-addr is required"));
        var afPacket = Run("dataplane", "--mode", "af-packet", "--rloc-addr", "192.0.2.1", "--instance", "1=fxq0");
        Assert.That(afPacket.Code, Is.EqualTo(1));
        Assert.That(afPacket.Err, Does.Contain("af-packet: not available in this build yet"));
        var badIid = Run("dataplane", "--rloc-addr", "192.0.2.1", "--instance", "99999999=fxq0");
        Assert.That(badIid.Err, Does.Contain("24 bits"));
        var badAddr = Run("dataplane", "--rloc-addr", "300.1.1.1", "--instance", "1=fxq0");
        Assert.That((badAddr.Code, badAddr.Err.Contains("expected an IPv4 address", StringComparison.Ordinal)), Is.EqualTo((2, true)));
        var cpus = Run("dataplane", "--rloc-addr", "192.0.2.1", "--instance", "1=fxq0", "--workers", "2", "--cpus", "0");
        Assert.That(cpus.Err, Does.Contain("give one per worker"));
    }

    [Test]
    public void ForeignSharedMemory_IsRefusedByEveryReader()
    {
        string name = $"fxtest-foreign-{Environment.ProcessId}";
        File.WriteAllBytes("/dev/shm/" + name, Enumerable.Repeat((byte)0x5a, 8192).ToArray());
        try
        {
            var show = Run("show", "stats", "--shm", name);
            Assert.That(show.Code, Is.EqualTo(1));
            Assert.That(show.Err, Does.Contain("is not a FastXtr shared-memory region"));
            var add = Run("map-cache", "add", "--shm", name, "--eid", "10.0.0.0/8");
            Assert.That(add.Code, Is.EqualTo(1));
            Assert.That(add.Err, Does.Contain("is not a FastXtr shared-memory region"));
            var absent = Run("show", "map-cache", "--shm", name + "-absent");
            Assert.That(absent.Err, Does.Contain("no shared memory region"));
        }
        finally
        {
            File.Delete("/dev/shm/" + name);
        }
    }

    [Test]
    public void MapCacheAdd_ThenShow_ThenDelete_OnAPrivateRegion()
    {
        string name = $"fxtest-cli-{Environment.ProcessId}";
        using (FastXtr.Dataplane.Shared.SharedRegion.Create(name, FastXtr.Dataplane.Shared.SharedRegionSizes.Default with { EntryCapacity = 64 })) { }
        try
        {
            Assert.That(Run("map-cache", "add", "--shm", name, "--iid", "1000", "--eid", "10.2.0.0/24", "--rloc", "192.0.2.2,1,60", "--rloc", "192.0.2.3,2,40").Code, Is.EqualTo(0));
            Assert.That(Run("map-cache", "add", "--shm", name, "--iid", "1000", "--eid", "10.9.0.0/16", "--action", "policy-denied").Code, Is.EqualTo(0));
            var show = Run("show", "map-cache", "--shm", name);
            Assert.That(show.Out, Does.Contain("2 entries").And.Contain("[1000] 10.2.0.0/24").And.Contain("192.0.2.2 p1/w60 up").And.Contain("192.0.2.3 p2/w40 up").And.Contain("negative, action DropPolicyDenied"));
            Assert.That(Run("map-cache", "del", "--shm", name, "--iid", "1000", "--eid", "10.2.0.0/24").Code, Is.EqualTo(0));
            Assert.That(Run("map-cache", "del", "--shm", name, "--iid", "1000", "--eid", "10.2.0.0/24").Code, Is.EqualTo(1), "already gone");
            Assert.That(Run("show", "map-cache", "--shm", name).Out, Does.Contain("1 entries"));
            var bad = Run("map-cache", "add", "--shm", name, "--eid", "10.0.0.0/33");
            Assert.That((bad.Code, bad.Err.Contains("prefix length", StringComparison.Ordinal)), Is.EqualTo((2, true)));
        }
        finally
        {
            FastXtr.NativeInterop.SharedMemoryMapping.Unlink(name);
        }
    }
}
