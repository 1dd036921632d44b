using System.Diagnostics;
using FastXtr.SharedMemory;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.EndToEnd;

/// <summary>A data plane that cannot start says exactly why and exits non-zero; it never half-starts.</summary>
[TestFixture]
[Category("netns")]
[NonParallelizable]
public class DataplaneStartupErrorTests
{
    [Test]
    public void OlderSharedMemoryLayout_IsRefusedNamingBothVersions()
    {
        string name = $"fxtest-old-{Environment.ProcessId}";
        using (var region = SharedRegion.Create(name, SharedRegionSizes.Default with { EntryCapacity = 64 })) region.Header.LayoutVersion = 0;
        try
        {
            var r = Shell.Run(Shell.FastxtrExe(), ["dataplane", "--rloc-addr", "192.0.2.1", "--instance", "1=fxold0", "--shm", name, "--map-cache-entries", "64"]);
            Assert.That(r.Code, Is.EqualTo(1));
            Assert.That(r.Err, Does.Contain($"layout version 0, this fastxtr uses {SharedHeader.CurrentLayoutVersion}"));
        }
        finally
        {
            FastXtr.NativeInterop.SharedMemoryMapping.Unlink(name);
        }
    }

    [Test]
    public void BusyTun_SharedRegion_AndAMissingAddress_AreNamed()
    {
        Shell.RequireRoot("needs root for network namespaces and TUN");
        string ns = $"fxta-{Environment.ProcessId}-{Random.Shared.Next(0x10000):x4}";
        string shmA = $"fxtest-busy-a-{Environment.ProcessId}", shmB = $"fxtest-busy-b-{Environment.ProcessId}";
        Process? first = null;
        try
        {
            Shell.Must($"ip netns add {ns} && ip -n {ns} link set lo up && ip -n {ns} addr add 192.0.2.1/32 dev lo");
            first = Shell.StartInNamespace(ns, "dataplane", "--rloc-addr", "192.0.2.1", "--instance", "1=fxbusy0", "--shm", shmA, "--map-cache-entries", "64");
            TwoXtrLab.WaitFor(() => Shell.Sh($"ip -n {ns} link show fxbusy0").Code == 0, "the first data plane's TUN");
            var tun = Shell.Run("ip", ["netns", "exec", ns, Shell.FastxtrExe(), "dataplane", "--rloc-addr", "192.0.2.1", "--instance", "1=fxbusy0", "--shm", shmB, "--map-cache-entries", "64"]);
            Assert.That(tun.Code, Is.EqualTo(1));
            Assert.That(tun.Err, Does.Contain("fxbusy0").And.Contain("busy").Or.Contain("invalid request"));
            // The workers share the LISP port through SO_REUSEPORT; a second data plane must not join them.
            var samePort = Shell.Run("ip", ["netns", "exec", ns, Shell.FastxtrExe(), "dataplane", "--rloc-addr", "192.0.2.1", "--instance", "1=fxbusy1", "--shm", shmB, "--map-cache-entries", "64"]);
            Assert.That(samePort.Code, Is.EqualTo(1));
            Assert.That(samePort.Err, Does.Contain("bind UDP 192.0.2.1:4341: the port is in use"));
            var sameRegion = Shell.Run("ip", ["netns", "exec", ns, Shell.FastxtrExe(), "dataplane", "--rloc-addr", "192.0.2.1", "--instance", "1=fxbusy2", "--shm", shmA, "--map-cache-entries", "64"]);
            Assert.That(sameRegion.Code, Is.EqualTo(1));
            Assert.That(sameRegion.Err, Does.Contain($"is in use by data plane pid"));
            var noAddress = Shell.Run("ip", ["netns", "exec", ns, Shell.FastxtrExe(), "dataplane", "--rloc-addr", "198.51.100.7", "--instance", "1=fxbusy3", "--shm", shmB + "x", "--map-cache-entries", "64"]);
            Assert.That(noAddress.Code, Is.EqualTo(1));
            Assert.That(noAddress.Err, Does.Contain("bind UDP 198.51.100.7:4341").And.Contain("is the address configured on an interface?"));
        }
        finally
        {
            if (first is not null && !first.HasExited) { first.Kill(entireProcessTree: true); first.WaitForExit(5000); }
            Shell.Run("pkill", ["-f", shmB]);
            Shell.Run("ip", ["netns", "del", ns]);
            foreach (var s in new[] { shmA, shmB, shmB + "x" }) FastXtr.NativeInterop.SharedMemoryMapping.Unlink(s);
        }
    }
}
