using FastXtr.SharedMemory;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.EndToEnd;

/// <summary>
/// Two data planes that take LISP data on port 5000 (<c>--port 5000</c>), each listing the other's locator with that
/// port (<c>--rloc ADDRESS:5000</c>), offloads on: every path — single packets through the raw socket and TCP
/// super-packets through UDP GSO — sends to the locator's port, over IPv4 and IPv6.
/// </summary>
[TestFixture(LabUnderlay.Ipv4)]
[TestFixture(LabUnderlay.Ipv6)]
[Category("netns")]
[NonParallelizable]
public sealed class DataPortNamespaceTests(LabUnderlay underlay)
{
    private TwoXtrLab _lab = null!;

    [OneTimeSetUp]
    public void Start()
    {
        Shell.RequireRoot("end-to-end tests build network namespaces and need root");
        _lab = new TwoXtrLab(underlay, "--offload", "on", "--port", "5000");
    }

    [OneTimeTearDown]
    public void Stop() => _lab?.Dispose();

    [Test]
    public void PingAndTcp_ReachTheLocatorsPort()
    {
        var ping = _lab.Exec(_lab.A, "ping -n -c 3 -i 0.05 -W 1 -I 10.1.0.1 10.2.0.1");
        Assert.That(ping.Out, Does.Contain("3 received"), ping.All);
        ulong gso = _lab.Counter(_lab.ShmA, Counter.UdpGsoSends);
        var (tx, rx) = TcpTransfer.Run(_lab.A, _lab.B, "10.2.0.1", "10.1.0.1", _lab.Tag);
        Assert.That(rx.Out.Trim(), Is.EqualTo(tx.Out.Trim()), tx.All + rx.All);
        Assert.That(rx.Out, Does.StartWith("8388608 "));
        Assert.That(_lab.Counter(_lab.ShmA, Counter.UdpGsoSends), Is.GreaterThan(gso), "the super-packets left with UDP GSO, to port 5000");
        string shown = Shell.Must($"{Shell.FastxtrExe()} show map-cache --shm {_lab.ShmA}");
        Assert.That(shown, Does.Contain(underlay == LabUnderlay.Ipv6 ? "[fd00:2::2]:5000 p1/w100 up" : "192.0.2.2:5000 p1/w100 up"), shown);
    }
}
