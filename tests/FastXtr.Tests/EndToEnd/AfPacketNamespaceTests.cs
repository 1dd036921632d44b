using System.Diagnostics;
using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.EndToEnd;

/// <summary>
/// --mode af-packet for real: EID hosts in namespaces of their own behind two xTRs whose EID-facing interfaces are
/// veths read and written through TPACKET_V3 rings; host A (10.1.0.2) reaches host B (10.2.0.2) through both.
/// <code>  hA --veth-- xA (ring on ia) ==underlay 192.0.2.0/24== xB (ring on ib) --veth-- hB  </code>
/// Everything once with offloads off (super-frames cut and sent one by one) and once on (sent with UDP GSO, received
/// with UDP GRO).
/// </summary>
[TestFixture("off")]
[TestFixture("on")]
[Category("netns")]
[NonParallelizable]
public class AfPacketNamespaceTests(string offload)
{
    private string _tag = "";
    private string _hA = "", _xA = "", _xB = "", _hB = "", _shmA = "", _shmB = "";
    private readonly List<Process> _dataplanes = [];

    [OneTimeSetUp]
    public void Start()
    {
        Shell.RequireRoot("end-to-end tests build network namespaces and need root");
        TwoXtrLab.SweepLeftovers();
        _tag = $"{Environment.ProcessId}-{Random.Shared.Next(0x10000):x4}";
        (_hA, _xA, _xB, _hB) = ($"fxtha-{_tag}", $"fxta-{_tag}", $"fxtb-{_tag}", $"fxthb-{_tag}");
        (_shmA, _shmB) = ($"fxtest-pa-{_tag}", $"fxtest-pb-{_tag}");
        try
        {
            foreach (var ns in new[] { _hA, _xA, _xB, _hB }) Shell.Must($"ip netns add {ns} && ip -n {ns} link set lo up");
            string t = _tag[^4..];
            Shell.Must($"ip link add ea{t} netns {_hA} type veth peer name ia{t} netns {_xA}");
            Shell.Must($"ip link add ua{t} netns {_xA} type veth peer name ub{t} netns {_xB}");
            Shell.Must($"ip link add ib{t} netns {_xB} type veth peer name eb{t} netns {_hB}");
            Shell.Must($"ip -n {_hA} addr add 10.1.0.2/24 dev ea{t} && ip -n {_hA} link set ea{t} up && ip -n {_hA} route add default via 10.1.0.1");
            Shell.Must($"ip -n {_xA} addr add 10.1.0.1/24 dev ia{t} && ip -n {_xA} link set ia{t} up && ip -n {_xA} addr add 192.0.2.1/24 dev ua{t} && ip -n {_xA} link set ua{t} up");
            Shell.Must($"ip -n {_xB} addr add 10.2.0.1/24 dev ib{t} && ip -n {_xB} link set ib{t} up && ip -n {_xB} addr add 192.0.2.2/24 dev ub{t} && ip -n {_xB} link set ub{t} up");
            Shell.Must($"ip -n {_hB} addr add 10.2.0.2/24 dev eb{t} && ip -n {_hB} link set eb{t} up && ip -n {_hB} route add default via 10.2.0.1");
            // IPv6 EIDs too. The gateways' kernels see every packet as well: a route for the remote EIDs (here a
            // silent blackhole; on a real gateway the default route) keeps them from answering with "no route".
            Shell.Must($"ip -n {_hA} addr add fd01::2/64 dev ea{t} nodad && ip -n {_xA} addr add fd01::1/64 dev ia{t} nodad && ip -n {_hA} -6 route add default via fd01::1");
            Shell.Must($"ip -n {_hB} addr add fd02::2/64 dev eb{t} nodad && ip -n {_xB} addr add fd02::1/64 dev ib{t} nodad && ip -n {_hB} -6 route add default via fd02::1");
            Shell.Must($"ip -n {_xA} -6 route add blackhole fd02::/64 && ip -n {_xB} -6 route add blackhole fd01::/64");
            // A with two workers (a fanout group on its interface) that sleep in poll as soon as they run out of
            // packets; B with one, --eid-if, and a busy-poll window long enough that a TCP stream's next batch always
            // comes within it.
            _dataplanes.Add(Shell.StartInNamespace(_xA, "dataplane", "--mode", "af-packet", "--rloc-addr", "192.0.2.1", "--instance", $"1000=ia{t}", "--workers", "2", "--shm", _shmA, "--map-cache-entries", "1024", "--offload", offload, "--busy-poll-us", "0"));
            _dataplanes.Add(Shell.StartInNamespace(_xB, "dataplane", "--mode", "af-packet", "--rloc-addr", "192.0.2.2", "--instance", "1000", "--eid-if", $"ib{t}", "--shm", _shmB, "--map-cache-entries", "1024", "--offload", offload, "--busy-poll-us", "10000"));
            foreach (var shm in new[] { _shmA, _shmB })
                TwoXtrLab.WaitFor(() => File.Exists($"/dev/shm/{shm}") && ActiveWorkers(shm) > 0, $"the data plane on {shm}");
            Upsert(_shmA, EidFamily.Ipv4, 0x0A020000, 24, TwoXtrLab.RlocB);
            Upsert(_shmB, EidFamily.Ipv4, 0x0A010000, 24, TwoXtrLab.RlocA);
            Upsert(_shmA, EidFamily.Ipv6, (UInt128)0xfd02 << 112, 64, TwoXtrLab.RlocB);
            Upsert(_shmB, EidFamily.Ipv6, (UInt128)0xfd01 << 112, 64, TwoXtrLab.RlocA);
        }
        catch
        {
            Stop();
            throw;
        }
    }

    private static uint ActiveWorkers(string shm)
    {
        using var r = SharedRegion.Attach(shm);
        return r.Header.ActiveWorkers;
    }

    private static void Upsert(string shm, EidFamily family, UInt128 prefix, int length, uint rloc)
    {
        using var r = SharedRegion.Attach(shm);
        using var w = r.CreateWriter();
        w.Upsert(new MapCacheEntrySpec(1000, 0, family, prefix, length, [new RlocSpec(EidFamily.Ipv4, rloc, 1, 100)]));
    }

    private static ulong Read(string shm, Counter c) => TwoXtrLab.ReadCounter(shm, c);

    private static FastXtr.Lab.Shell.Result Exec(string ns, string command, int timeoutMs = 30_000) => Shell.Run("ip", ["netns", "exec", ns, "bash", "-c", command], timeoutMs);

    [OneTimeTearDown]
    public void Stop()
    {
        foreach (var p in _dataplanes)
        {
            try
            {
                if (!p.HasExited) { p.Kill(entireProcessTree: true); p.WaitForExit(5000); }
            }
            catch (InvalidOperationException) { }
            p.Dispose();
        }
        foreach (var ns in new[] { _hA, _xA, _xB, _hB }) if (ns.Length > 0) Shell.Sh($"ip netns del {ns} 2>/dev/null");
        foreach (var shm in new[] { _shmA, _shmB }) if (shm.Length > 0) FastXtr.NativeInterop.SharedMemoryMapping.Unlink(shm);
    }

    [Test, Order(1)]
    public void Ping_HostToHost_ThroughBothRings()
    {
        var r = Exec(_hA, "ping -n -c 20 -i 0.05 -W 1 10.2.0.2");
        Assert.That(r.Out, Does.Contain("20 received"), r.All);
        // B had never heard from host B when the first echo request arrived: the kernel resolved that one; host B's
        // replies taught B its MAC, and the rest went out through B's transmit ring.
        ulong kernel = Read(_shmB, Counter.EtrKernelRouted), delivered = Read(_shmB, Counter.TunTxPackets);
        Assert.That(kernel, Is.InRange(1UL, 3UL), "only the first packets before B learned host B's MAC");
        Assert.That(delivered, Is.GreaterThanOrEqualTo(20UL));
        Assert.That(Read(_shmA, Counter.UdpTxPackets), Is.GreaterThanOrEqualTo(20UL), "A encapsulated what its ring read");
        Assert.That(Read(_shmA, Counter.EidFramesIgnored), Is.GreaterThan(0UL), "host A's ARP reached A's ring and was left to the kernel");
    }

    [Test, Order(2)]
    public void Ipv6Ping_HostToHost_ThroughBothRings()
    {
        ulong kernelBefore = Read(_shmB, Counter.EtrKernelRouted);
        var r = Exec(_hA, "ping -6 -n -c 20 -i 0.05 -W 1 fd02::2");
        Assert.That(r.Out, Does.Contain("20 received"), r.All);
        Assert.That(r.Out, Does.Not.Contain("errors"), "no ICMPv6 error from either gateway's kernel");
        // The first request reached host B through the kernel (raw IPv6 socket), before B had heard from it.
        Assert.That(Read(_shmB, Counter.EtrKernelRouted) - kernelBefore, Is.GreaterThanOrEqualTo(1UL));
        Assert.That(Read(_shmB, Counter.DropNoNeighbor), Is.EqualTo(0UL));
    }

    [Test, Order(3)]
    public void TcpStream_ArrivesWhole_AndSuperFramesAreCut()
    {
        // The hosts' veths hand over TCP super-frames (TSO) with their checksums left to offload: A must cut and
        // checksum them.
        var (client, server) = TcpTransfer.Run(_hA, _hB, "10.2.0.2", null, _tag);
        Assert.That(client.Code, Is.EqualTo(0), client.All);
        Assert.That(server.Out.Trim(), Is.EqualTo(client.Out.Trim()), "byte count and SHA-256 at host B equal host A's");
        Assert.That(server.Out, Does.StartWith("8388608 "));
        Assert.That(Read(_shmA, Counter.ChecksumsCompleted), Is.GreaterThan(0UL), "offloaded checksums were completed");
        Assert.That(Read(_shmA, Counter.TunSuperPackets), Is.GreaterThan(0UL), "super-frames were cut");
        // Super-frames are longer than a ring frame: each was read whole from the socket's queue, none cut short.
        Assert.That(Read(_shmA, Counter.DropTruncated) + Read(_shmB, Counter.DropTruncated), Is.EqualTo(0UL), "super-frames read whole");
        var offloaded = new[] { Read(_shmA, Counter.UdpGsoSends), Read(_shmB, Counter.UdpGroReceives), Read(_shmB, Counter.TunSuperPacketsWritten) };
        if (offload == "on") Assert.That(offloaded, Has.All.GreaterThan(0UL), "segments sent with UDP GSO at A, received with UDP GRO at B and sent to host B as GSO frames");
        else Assert.That(offloaded, Has.All.EqualTo(0UL));
        // How the workers waited: A never kept checking, B found batches while it did.
        Assert.That((Read(_shmA, Counter.BusyPollHits), Read(_shmA, Counter.PollSleeps) > 0), Is.EqualTo((0UL, true)), "A sleeps in poll at once");
        Assert.That(Read(_shmB, Counter.BusyPollHits), Is.GreaterThan(0UL), "B caught the stream's batches while busy-polling");
        // Full-size frames (1500 bytes with DF) no longer fit once encapsulated: each is answered with ICMP
        // "fragmentation needed" (RFC 9300 §7) and the host lowers its path MTU; nothing else is dropped.
        Assert.That(Read(_shmA, Counter.DropTooBig), Is.EqualTo(Read(_shmA, Counter.IcmpTooBigSent)));
        Assert.That(Read(_shmB, Counter.DropTxRingFull) + Read(_shmB, Counter.DropNoNeighbor) + Read(_shmA, Counter.DropBadVnetHeader), Is.EqualTo(0UL));
    }

    [Test, Order(3)]
    public void UdpGsoBursts_AreCutAtTheSendersSize_AndArriveWithTheirBoundaries()
    {
        // Host A sends with UDP_SEGMENT: 50 sends of 11,500 bytes (nine datagrams of 1,200 bytes and one of 700),
        // which reach A's ring as UDP GSO super-frames longer than a ring frame, and 20 sends of 1,000 bytes in
        // datagrams of 500, GSO frames short enough for one ring frame that must still be cut in two. A cuts them at
        // the sender's size (the virtio-net header tells it); with offloads B writes what arrives together to host B's
        // veth as one GSO UDP_L4 frame, which host B's kernel cuts again at the socket. Host B must receive 540
        // datagrams, boundaries, sizes and bytes as sent.
        // B sends to host B through its ring (and so as GSO frames) only once it has heard from host B: a ping's
        // replies teach it host B's MAC whatever ran before.
        var ping = Exec(_hA, "ping -n -c 3 -i 0.05 -W 1 10.2.0.2");
        Assert.That(ping.Out, Does.Contain("3 received"), ping.All);
        ulong coalescedBefore = Read(_shmB, Counter.UdpDatagramsCoalesced), cutBefore = Read(_shmA, Counter.SegmentsCut);
        ulong gatheredBefore = Read(_shmA, Counter.ItrDatagramsGathered);
        var (client, server) = UdpGsoTransfer.Run(_hA, _hB, "10.2.0.2", "10.1.0.2", _tag, (11_500, 1200, 50), (1000, 500, 20));
        Assert.That(client.Code, Is.EqualTo(0), client.All);
        Assert.That(client.Out, Does.StartWith("540 [500, 700, 1200] "));
        Assert.That(server.Out.Trim(), Is.EqualTo(client.Out.Trim()), "540 datagrams of 1,200, 700 and 500 bytes, the sender's bytes in the sender's order");
        Assert.That(Read(_shmA, Counter.SegmentsCut) - cutBefore, Is.EqualTo(540UL), "A cut every GSO frame at its sender's datagrams");
        ulong coalesced = Read(_shmB, Counter.UdpDatagramsCoalesced) - coalescedBefore;
        ulong gathered = Read(_shmA, Counter.ItrDatagramsGathered) - gatheredBefore;
        if (offload == "on")
        {
            Assert.That(coalesced, Is.GreaterThan(0UL), "B sent bursts to host B as GSO UDP_L4 frames");
            Assert.That(gathered, Is.EqualTo(540UL), "A sent each frame's datagrams, encapsulated, in one UDP GSO send");
        }
        else Assert.That((coalesced, gathered), Is.EqualTo((0UL, 0UL)));
    }

    [Test, Order(4)]
    public void AMissingInterface_ATinyRing_AndANegativeBusyPoll_AreRefused()
    {
        var missing = Shell.Run("ip", ["netns", "exec", _xA, Shell.FastxtrExe(), "dataplane", "--mode", "af-packet", "--rloc-addr", "192.0.2.1", "--instance", "1000=nosuch0", "--shm", _shmA + "x", "--map-cache-entries", "64", "--port", "4399"]);
        Assert.That(missing.Code, Is.EqualTo(1));
        Assert.That(missing.Err, Does.Contain("interface nosuch0 (the EID-facing interface of --mode af-packet) does not exist here"));
        Assert.That(File.Exists($"/dev/shm/{_shmA}x"), Is.False, "a start that failed leaves no region it made behind");
        var small = Shell.Run(Shell.FastxtrExe(), ["dataplane", "--mode", "af-packet", "--rloc-addr", "192.0.2.1", "--instance", "1000=ia0", "--tx-ring", "8"]);
        Assert.That(small.Code, Is.EqualTo(1));
        Assert.That(small.Err, Does.Contain("--tx-ring 8: use 64 .."));
        var spin = Shell.Run(Shell.FastxtrExe(), ["dataplane", "--mode", "af-packet", "--rloc-addr", "192.0.2.1", "--instance", "1000=ia0", "--busy-poll-us", "-5"]);
        Assert.That((spin.Code, spin.Err.Contains("--busy-poll-us -5: use 0 (off) .. 10000 microseconds", StringComparison.Ordinal)), Is.EqualTo((1, true)), spin.All);
        FastXtr.NativeInterop.SharedMemoryMapping.Unlink(_shmA + "x");
    }
}
