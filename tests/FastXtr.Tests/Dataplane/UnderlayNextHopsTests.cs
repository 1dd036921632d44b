using FastXtr.Dataplane.Encap;
using NUnit.Framework;

namespace FastXtr.Tests.Dataplane;

/// <summary>The next hops of --xdp-underlay, read from the text of /proc/net/route and /proc/net/arp as Linux prints them.</summary>
public class UnderlayNextHopsTests
{
    // eth1: 192.0.2.0/24 connected, 10.0.0.0/8 via 192.0.2.9, default via 192.0.2.254 (metric 100) and via
    // 192.0.2.253 (metric 200); eth0: 172.16.0.0/16 connected. A route that is down is ignored.
    private const string Routes = """
        Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
        eth1	00000000	FD0200C0	0003	0	0	200	00000000	0	0	0
        eth1	00000000	FE0200C0	0003	0	0	100	00000000	0	0	0
        eth1	000200C0	00000000	0001	0	0	0	00FFFFFF	0	0	0
        eth1	0000000A	090200C0	0003	0	0	0	000000FF	0	0	0
        eth0	000010AC	00000000	0001	0	0	0	0000FFFF	0	0	0
        eth1	006433C6	00000000	0000	0	0	0	00FFFFFF	0	0	0
        """;

    private const string Neighbors = """
        IP address       HW type     Flags       HW address            Mask     Device
        192.0.2.254      0x1         0x2         02:00:00:00:00:fe     *        eth1
        192.0.2.253      0x1         0x2         02:00:00:00:00:fd     *        eth1
        192.0.2.7        0x1         0x2         02:00:00:00:00:07     *        eth1
        192.0.2.9        0x1         0x0         00:00:00:00:00:00     *        eth1
        172.16.0.5       0x1         0x2         02:00:00:00:00:05     *        eth0
        """;

    private static UnderlayNextHops.Snapshot Snapshot() => UnderlayNextHops.Parse(Routes.Replace("        ", "", StringComparison.Ordinal), Neighbors, "eth1", 1);

    private static uint Ip(string s) => System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(System.Net.IPAddress.Parse(s).GetAddressBytes());

    private static ulong Mac(byte last) => 0x02UL | ((ulong)last << 40);

    [TestCase("192.0.2.7", (byte)0x07, TestName = "A connected RLOC: its own MAC")]
    [TestCase("198.51.100.1", (byte)0xfe, TestName = "Anything else: the default route with the lowest metric")]
    public void Resolves(string rloc, byte last)
    {
        Assert.That(Snapshot().TryResolve(Ip(rloc), out ulong mac), Is.True);
        Assert.That(mac, Is.EqualTo(Mac(last)));
    }

    [TestCase("10.1.2.3", TestName = "A next hop the kernel has not resolved (incomplete entry)")]
    [TestCase("192.0.2.8", TestName = "A connected RLOC with no neighbour entry")]
    [TestCase("172.16.0.5", TestName = "An RLOC whose best route leaves through another interface")]
    public void LeavesToTheKernel(string rloc) => Assert.That(Snapshot().TryResolve(Ip(rloc), out _), Is.False);

    [Test]
    public void KeepsOnlyRoutesThatAreUp_AndNeighboursOfTheInterface()
    {
        var s = Snapshot();
        Assert.That((s.RouteCount, s.NeighborCount, s.Version), Is.EqualTo((5, 3, 1)));
    }

    [Test]
    public void GarbageLines_AreSkipped()
    {
        var s = UnderlayNextHops.Parse("header\nnot a route\neth1 zz\n", "header\n1.2.3 0x1 0x2 xx eth1\n", "eth1", 2);
        Assert.That((s.RouteCount, s.NeighborCount, s.TryResolve(Ip("192.0.2.7"), out _)), Is.EqualTo((0, 0, false)));
    }
}
