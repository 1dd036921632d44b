using System.Diagnostics;
using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.EndToEnd;

/// <summary>
/// --mode af-xdp for real: EID hosts in namespaces of their own behind two xTRs whose EID-facing interfaces are veths
/// with our XDP program and AF_XDP sockets (copy mode: veth offers no zero-copy). Instance 1000 joins host A
/// (10.1.0.2, fd01::2) and host B (10.2.0.2, fd02::2); instance 2000 joins two more hosts with the same IPv4 EIDs
/// on interfaces of their own. A runs two workers on two-queue veths (a queue each), B one worker that reads both
/// queues of its two-queue veth to host B (which sends on either, by the CPU it runs on). B also receives its LISP
/// data through AF_XDP on its underlay interface (--xdp-underlay), in batches of up to 128; A through the kernel's UDP
/// socket.
/// <code>  hA  --ia(2 queues)-- xA ==underlay 192.0.2.0/24== xB --ib(2 queues)-- hB      (IID 1000)
///   hA2 --ja(2 queues)-- xA                           xB --jb-- hB2     (IID 2000, the same EIDs)</code>
/// </summary>
[TestFixture]
[Category("netns")]
[NonParallelizable]
public class AfXdpNamespaceTests
{
    private string _tag = "", _t = "";
    private string _hA = "", _xA = "", _xB = "", _hB = "", _hA2 = "", _hB2 = "", _shmA = "", _shmB = "";
    // [0] A's data plane, [1] B's (restarted by the last test).
    private readonly Process?[] _dataplanes = new Process?[2];

    [OneTimeSetUp]
    public void Start()
    {
        Shell.RequireRoot("end-to-end tests build network namespaces and need root");
        TwoXtrLab.SweepLeftovers();
        _tag = $"{Environment.ProcessId}-{Random.Shared.Next(0x10000):x4}";
        (_hA, _xA, _xB, _hB, _hA2, _hB2) = ($"fxtha-{_tag}", $"fxta-{_tag}", $"fxtb-{_tag}", $"fxthb-{_tag}", $"fxthc-{_tag}", $"fxthd-{_tag}");
        (_shmA, _shmB) = ($"fxtest-xa-{_tag}", $"fxtest-xb-{_tag}");
        try
        {
            foreach (var ns in new[] { _hA, _xA, _xB, _hB, _hA2, _hB2 }) Shell.Must($"ip netns add {ns} && ip -n {ns} link set lo up");
            string t = _t = _tag[^4..];
            // XDP on a veth wants the peer's transmit queues no more than its own receive queues.
            Shell.Must($"ip link add ea{t} numtxqueues 2 numrxqueues 2 netns {_hA} type veth peer name ia{t} numtxqueues 2 numrxqueues 2 netns {_xA}");
            Shell.Must($"ip link add ec{t} numtxqueues 2 numrxqueues 2 netns {_hA2} type veth peer name ja{t} numtxqueues 2 numrxqueues 2 netns {_xA}");
            Shell.Must($"ip link add ua{t} netns {_xA} type veth peer name ub{t} netns {_xB}");
            Shell.Must($"ip link add ib{t} numtxqueues 2 numrxqueues 2 netns {_xB} type veth peer name eb{t} numtxqueues 2 numrxqueues 2 netns {_hB}");
            Shell.Must($"ip link add jb{t} netns {_xB} type veth peer name ed{t} netns {_hB2}");
            Shell.Must($"ip -n {_hA} addr add 10.1.0.2/24 dev ea{t} && ip -n {_hA} link set ea{t} up && ip -n {_hA} route add default via 10.1.0.1");
            Shell.Must($"ip -n {_hA2} addr add 10.1.0.2/24 dev ec{t} && ip -n {_hA2} link set ec{t} up && ip -n {_hA2} route add default via 10.1.0.1");
            Shell.Must($"ip -n {_xA} addr add 10.1.0.1/24 dev ia{t} && ip -n {_xA} link set ia{t} up && ip -n {_xA} addr add 192.0.2.1/24 dev ua{t} && ip -n {_xA} link set ua{t} up");
            // The second group's gateway address without a subnet route: the kernel answers ARP for it on ja/jb,
            // and the data plane hands its first packets to the kernel on that interface (SO_BINDTODEVICE).
            Shell.Must($"ip -n {_xA} addr add 10.1.0.1/32 dev ja{t} && ip -n {_xA} link set ja{t} up");
            Shell.Must($"ip -n {_xB} addr add 10.2.0.1/24 dev ib{t} && ip -n {_xB} link set ib{t} up && ip -n {_xB} addr add 192.0.2.2/24 dev ub{t} && ip -n {_xB} link set ub{t} up");
            Shell.Must($"ip -n {_xB} addr add 10.2.0.1/32 dev jb{t} && ip -n {_xB} link set jb{t} up");
            Shell.Must($"ip -n {_hB} addr add 10.2.0.2/24 dev eb{t} && ip -n {_hB} link set eb{t} up && ip -n {_hB} route add default via 10.2.0.1");
            Shell.Must($"ip -n {_hB2} addr add 10.2.0.2/24 dev ed{t} && ip -n {_hB2} link set ed{t} up && ip -n {_hB2} route add default via 10.2.0.1");
            Shell.Must($"ip -n {_hA} addr add fd01::2/64 dev ea{t} nodad && ip -n {_xA} addr add fd01::1/64 dev ia{t} nodad && ip -n {_hA} -6 route add default via fd01::1");
            Shell.Must($"ip -n {_hB} addr add fd02::2/64 dev eb{t} nodad && ip -n {_xB} addr add fd02::1/64 dev ib{t} nodad && ip -n {_hB} -6 route add default via fd02::1");
            _dataplanes[0] = Shell.StartInNamespace(_xA, "dataplane", "--mode", "af-xdp", "--rloc-addr", "192.0.2.1", "--instance", $"1000=ia{t}", "--instance", $"2000=ja{t}", "--workers", "2", "--shm", _shmA, "--map-cache-entries", "1024", "--rx-ring", "512", "--tx-ring", "512");
            _dataplanes[1] = StartB();
            foreach (var shm in new[] { _shmA, _shmB })
                TwoXtrLab.WaitFor(() => File.Exists($"/dev/shm/{shm}") && ActiveWorkers(shm) > 0, $"the data plane on {shm}");
            foreach (uint iid in new uint[] { 1000, 2000 })
            {
                Upsert(_shmA, iid, EidFamily.Ipv4, 0x0A020000, 24, TwoXtrLab.RlocB);
                Upsert(_shmB, iid, EidFamily.Ipv4, 0x0A010000, 24, TwoXtrLab.RlocA);
            }
            Upsert(_shmA, 1000, EidFamily.Ipv6, (UInt128)0xfd02 << 112, 64, TwoXtrLab.RlocB);
            Upsert(_shmB, 1000, EidFamily.Ipv6, (UInt128)0xfd01 << 112, 64, TwoXtrLab.RlocA);
        }
        catch
        {
            Stop();
            throw;
        }
    }

    private Process StartB() =>
        Shell.StartInNamespace(_xB, "dataplane", "--mode", "af-xdp", "--rloc-addr", "192.0.2.2", "--instance", $"1000=ib{_t}", "--instance", $"2000=jb{_t}", "--xdp-underlay", $"ub{_t}", "--shm", _shmB, "--map-cache-entries", "1024", "--batch", "128");

    /// <summary>The UDP datagrams the kernel of <paramref name="ns"/> has received (/proc/net/snmp, Udp InDatagrams).</summary>
    private static long UdpInDatagrams(string ns)
    {
        var lines = Exec(ns, "grep '^Udp:' /proc/net/snmp").Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var names = lines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var values = lines[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return long.Parse(values[Array.IndexOf(names, "InDatagrams")], System.Globalization.CultureInfo.InvariantCulture);
    }

    private static uint ActiveWorkers(string shm)
    {
        using var r = SharedRegion.Attach(shm);
        return r.Header.ActiveWorkers;
    }

    /// <summary>The data plane <paramref name="process"/> has taken the region (a killed one leaves its pid behind).</summary>
    private static bool Serving(string shm, Process process)
    {
        using var r = SharedRegion.Attach(shm);
        return r.Header.DataplanePid == process.Id && r.Header.ActiveWorkers > 0;
    }

    private static void Upsert(string shm, uint iid, EidFamily family, UInt128 prefix, int length, uint rloc)
    {
        using var r = SharedRegion.Attach(shm);
        using var w = r.CreateWriter();
        w.Upsert(new MapCacheEntrySpec(iid, 0, family, prefix, length, [new RlocSpec(EidFamily.Ipv4, rloc, 1, 100)]));
    }

    private static ulong Read(string shm, Counter c) => TwoXtrLab.ReadCounter(shm, c);

    private static FastXtr.Lab.Shell.Result Exec(string ns, string command, int timeoutMs = 30_000) => Shell.Run("ip", ["netns", "exec", ns, "bash", "-c", command], timeoutMs);

    private static long RxPackets(string ns, string device) => long.Parse(Exec(ns, $"cat /sys/class/net/{device}/statistics/rx_packets").Out.Trim(), System.Globalization.CultureInfo.InvariantCulture);

    private static string XdpOn(string ns, string device) => Exec(ns, $"ip link show dev {device}").Out;

    [OneTimeTearDown]
    public void Stop()
    {
        foreach (var p in _dataplanes)
        {
            if (p is null) continue;
            try
            {
                if (!p.HasExited) { p.Kill(entireProcessTree: true); p.WaitForExit(5000); }
            }
            catch (InvalidOperationException) { }
            p.Dispose();
        }
        foreach (var ns in new[] { _hA, _xA, _xB, _hB, _hA2, _hB2 }) if (ns.Length > 0) Shell.Sh($"ip netns del {ns} 2>/dev/null");
        foreach (var shm in new[] { _shmA, _shmB }) if (shm.Length > 0) FastXtr.NativeInterop.SharedMemoryMapping.Unlink(shm);
    }

    [Test, Order(1)]
    public void Ping_HostToHost_ThroughBothSockets_WithArpLeftToTheKernel()
    {
        Assert.That(XdpOn(_xA, $"ia{_t}"), Does.Contain("fastxtr_eid"), "our program is attached to A's interface");
        Assert.That(XdpOn(_xB, $"ub{_t}"), Does.Contain("fastxtr_rloc"), "and the underlay's to B's underlay interface");
        long udpB = UdpInDatagrams(_xB), udpA = UdpInDatagrams(_xA);
        var r = Exec(_hA, "ping -n -c 20 -i 0.05 -W 1 10.2.0.2");
        Assert.That(r.Out, Does.Contain("20 received"), r.All);
        // B took the echo requests' LISP packets from its underlay sockets, A the replies from the kernel's UDP.
        Assert.That(UdpInDatagrams(_xB) - udpB, Is.LessThan(5L), "B's kernel did not receive the LISP data");
        Assert.That(UdpInDatagrams(_xA) - udpA, Is.GreaterThanOrEqualTo(20L), "A's kernel did");
        // B had never heard from host B when the first echo request arrived: the kernel resolved that one; host B's
        // replies taught B its MAC, and the rest went out through B's socket.
        Assert.That(Read(_shmB, Counter.EtrKernelRouted), Is.InRange(1UL, 3UL), "only the first packets before B learned host B's MAC");
        Assert.That(Read(_shmB, Counter.TunTxPackets), Is.GreaterThanOrEqualTo(20UL));
        Assert.That(Read(_shmA, Counter.UdpTxPackets), Is.GreaterThanOrEqualTo(20UL), "A encapsulated what its sockets read");
        // Host A resolved its gateway with ARP: the program passed ARP to the kernel, and no frame that is not IP
        // reached a socket.
        Assert.That(Read(_shmA, Counter.EidFramesIgnored) + Read(_shmA, Counter.DropNotIp), Is.EqualTo(0UL), "only IP reaches the sockets");
        Assert.That(Exec(_hA, "ip neigh show 10.1.0.1").Out, Does.Contain("lladdr"), "the gateway's kernel answered ARP");
        Assert.That(Read(_shmA, Counter.DropXskRing) + Read(_shmB, Counter.DropXskRing), Is.EqualTo(0UL));
    }

    [Test, Order(2)]
    public void Ipv6Ping_HostToHost_WithNeighbourDiscoveryLeftToTheKernel()
    {
        ulong kernelBefore = Read(_shmB, Counter.EtrKernelRouted);
        var r = Exec(_hA, "ping -6 -n -c 20 -i 0.05 -W 1 fd02::2");
        Assert.That(r.Out, Does.Contain("20 received"), r.All);
        Assert.That(Read(_shmB, Counter.EtrKernelRouted) - kernelBefore, Is.GreaterThanOrEqualTo(1UL), "the first request reached host B through the kernel");
        Assert.That(Read(_shmB, Counter.DropNoNeighbor), Is.EqualTo(0UL));
        Assert.That(Exec(_hA, "ip -6 neigh show fd01::1").Out, Does.Contain("lladdr"), "the gateway's kernel answered neighbour solicitations");
    }

    [Test, Order(3)]
    public void TheGatewaysOwnAddress_IsStillTheKernels()
    {
        ulong before = Read(_shmA, Counter.TunRxPackets);
        var r = Exec(_hA, "ping -n -c 5 -i 0.05 -W 1 10.1.0.1");
        Assert.That(r.Out, Does.Contain("5 received"), r.All);
        Assert.That(Read(_shmA, Counter.TunRxPackets), Is.EqualTo(before), "the program passed the gateway's own traffic to its kernel");
    }

    [Test, Order(4)]
    public void TcpStream_ArrivesWhole_WithChecksumsLeftToOffloadCompleted()
    {
        // B's ITR reads its kernel's neighbour table once a second, and sends to A through the kernel until it has read
        // A's entry: pings until a burst of them leaves B through AF_XDP (the tests ordered before this one have
        // done it; run alone, this one must).
        TwoXtrLab.WaitFor(() =>
        {
            ulong sentByKernel = Read(_shmB, Counter.ItrKernelSent);
            Exec(_hA, "ping -n -c 3 -i 0.05 -W 1 10.2.0.2");
            return Read(_shmB, Counter.ItrKernelSent) == sentByKernel;
        }, "B's ITR sending to A through AF_XDP");
        ulong kernelSentBefore = Read(_shmB, Counter.ItrKernelSent), sentBefore = Read(_shmB, Counter.UdpTxPackets);
        // Host A's veth leaves TCP checksums to offload and XDP carries no flag saying so: A completes them.
        var (client, server) = TcpTransfer.Run(_hA, _hB, "10.2.0.2", null, _tag);
        Assert.That(client.Code, Is.EqualTo(0), client.All);
        Assert.That(server.Out.Trim(), Is.EqualTo(client.Out.Trim()), "byte count and SHA-256 at host B equal host A's");
        Assert.That(server.Out, Does.StartWith("8388608 "));
        Assert.That(Read(_shmA, Counter.ChecksumsCompleted), Is.GreaterThan(1000UL), "the data segments' checksums were completed at A");
        Assert.That(Read(_shmB, Counter.ChecksumsCompleted), Is.GreaterThan(100UL), "the ACKs' at B");
        // Full-size frames (1500 bytes with DF) no longer fit once encapsulated: each is answered with ICMP
        // "fragmentation needed" (RFC 9300 §7) and the host lowers its path MTU; nothing else is dropped.
        Assert.That(Read(_shmA, Counter.DropTooBig), Is.EqualTo(Read(_shmA, Counter.IcmpTooBigSent)));
        Assert.That(Read(_shmB, Counter.DropTxRingFull) + Read(_shmB, Counter.DropNoNeighbor) + Read(_shmA, Counter.DropTruncated), Is.EqualTo(0UL));
        // B's ITR sent the ACKs through its underlay socket, to A's MAC from B's kernel tables.
        ulong acks = Read(_shmB, Counter.UdpTxPackets) - sentBefore;
        Assert.That(acks, Is.GreaterThan(500UL));
        Assert.That(Read(_shmB, Counter.ItrKernelSent) - kernelSentBefore, Is.LessThan(acks / 10), "B's ACKs left through AF_XDP");
        Assert.That(Read(_shmA, Counter.ItrKernelSent), Is.EqualTo(0UL), "A has no underlay sockets: nothing is counted there");
        // B's sockets (EID side and underlay) share one UMEM: what B sent through AF_XDP, data to host B and ACKs to
        // A, went from the chunk it was received into, rewritten in place. A sends and receives LISP data through
        // its kernel, which copies: nothing of A's is sent in place.
        ulong throughXsk = Read(_shmB, Counter.TunTxPackets) - Read(_shmB, Counter.EtrKernelRouted) + Read(_shmB, Counter.UdpTxPackets) - Read(_shmB, Counter.ItrKernelSent);
        Assert.That(Read(_shmB, Counter.XskSentInPlace), Is.GreaterThan(throughXsk * 9 / 10).And.LessThanOrEqualTo(throughXsk), "B forwarded in place");
        Assert.That(Read(_shmA, Counter.XskSentInPlace), Is.EqualTo(0UL));
        Assert.That(Read(_shmA, Counter.DropXskRing) + Read(_shmB, Counter.DropXskRing), Is.EqualTo(0UL), "the fill rings were kept stocked");
    }

    [Test, Order(4)]
    public void AUdpBurst_LongerThanOneWakeUpSends_ArrivesWhole_WithNothingAfterIt()
    {
        // B reads up to 128 frames per batch and writes them all to host B's socket, whose copy mode sends at most
        // 32 frames per wake-up: the rest must not wait for traffic that never comes.
        string dir = Path.Combine(Path.GetTempPath(), $"fxtest-burst-{_tag}");
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "rx.py"), """
                import socket
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
                s.bind(("10.2.0.2", 5300)); s.settimeout(3)
                n = 0
                try:
                    while True: s.recv(2048); n += 1
                except socket.timeout: pass
                print(n)
                """.Replace("                ", "", StringComparison.Ordinal));
            File.WriteAllText(Path.Combine(dir, "tx.py"), """
                import socket
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                for i in range(300): s.sendto(b"x" * 200, ("10.2.0.2", 5300))
                """.Replace("                ", "", StringComparison.Ordinal));
            var receiver = Task.Run(() => Exec(_hB, $"/usr/bin/python3 {dir}/rx.py", 20_000));
            Thread.Sleep(500);
            // B stopped while the burst arrives: its frames wait in B's RX ring (the XDP program keeps redirecting),
            // and once B runs again it reads them 128 at a time and writes each batch to host B with one kick.
            var b = _dataplanes[1]!;
            Shell.Must($"kill -STOP {b.Id}");
            try
            {
                Assert.That(Exec(_hA, $"/usr/bin/python3 {dir}/tx.py").Code, Is.EqualTo(0));
                Thread.Sleep(300);
            }
            finally { Shell.Must($"kill -CONT {b.Id}"); }
            var got = receiver.Result;
            Assert.That(int.Parse(got.Out.Trim(), System.Globalization.CultureInfo.InvariantCulture), Is.EqualTo(300), "every datagram of the burst reached host B: " + got.All);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Test, Order(5)]
    public void TwoInstances_WithTheSameEids_StayApart()
    {
        long hostB = RxPackets(_hB, $"eb{_t}"), hostB2 = RxPackets(_hB2, $"ed{_t}");
        var r = Exec(_hA2, "ping -n -c 10 -i 0.05 -W 1 10.2.0.2");
        Assert.That(r.Out, Does.Contain("10 received"), r.All);
        Assert.That(RxPackets(_hB2, $"ed{_t}") - hostB2, Is.GreaterThanOrEqualTo(10L), "instance 2000's host B answered");
        // Host B of instance 1000 has the same address and hears none of it, not even the packet the kernel routed
        // before B knew host B2's MAC (it leaves on instance 2000's interface).
        Assert.That(RxPackets(_hB, $"eb{_t}") - hostB, Is.LessThan(5L), "none of instance 2000's echo requests reached instance 1000's host (a neighbour probe of its gateway may)");
        var again = Exec(_hA, "ping -n -c 5 -i 0.05 -W 1 10.2.0.2");
        Assert.That(again.Out, Does.Contain("5 received"), "instance 1000 unaffected: " + again.All);
    }

    [Test, Order(6)]
    public void Refusals_AreClear_AndLeaveNothingBehind()
    {
        string t = _t;
        FastXtr.Lab.Shell.Result Dataplane(string ns, params string[] args) =>
            Shell.Run("ip", new[] { "netns", "exec", ns, Shell.FastxtrExe(), "dataplane", "--mode", "af-xdp", "--shm", _shmB + "x", "--map-cache-entries", "64", "--port", "4399" }.Concat(args).ToArray());
        var missing = Dataplane(_xB, "--rloc-addr", "192.0.2.2", "--instance", "1000=nosuch0");
        Assert.That(missing.Code, Is.EqualTo(1));
        Assert.That(missing.Err, Does.Contain("interface nosuch0 (the EID-facing interface of --mode af-xdp) does not exist here"), missing.All);
        var queues = Dataplane(_xB, "--rloc-addr", "192.0.2.2", "--instance", $"1000=ub{t}", "--workers", "2");
        Assert.That(queues.Code, Is.EqualTo(1));
        Assert.That(queues.Err, Does.Contain($"ub{t} has 1 receive queue(s), fewer than --workers 2"), queues.All);
        var notXdp = Shell.Run(Shell.FastxtrExe(), ["dataplane", "--mode", "af-packet", "--rloc-addr", "192.0.2.2", "--instance", "1000=x0", "--xdp-underlay", "u0"]);
        Assert.That((notXdp.Code, notXdp.Err.Contains("--xdp-underlay is for --mode af-xdp", StringComparison.Ordinal)), Is.EqualTo((1, true)), notXdp.All);
        var busy = Dataplane(_xB, "--rloc-addr", "192.0.2.2", "--instance", $"1000=ib{t}");
        Assert.That(busy.Code, Is.EqualTo(1));
        Assert.That(busy.Err, Does.Contain($"interface ib{t} already has an XDP program attached"), busy.All);
        // Without privileges (nobody, no capabilities): the first thing that needs them names them.
        var unprivileged = Shell.Run("ip", ["netns", "exec", _xB, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
            "env", "HOME=/tmp", "DOTNET_BUNDLE_EXTRACT_BASE_DIR=/tmp", Shell.FastxtrExe(), "dataplane", "--mode", "af-xdp", "--rloc-addr", "192.0.2.2", "--instance", $"1000=jb{t}", "--shm", _shmB + "x", "--map-cache-entries", "64", "--port", "4399"]);
        Assert.That(unprivileged.Code, Is.EqualTo(1), unprivileged.All);
        Assert.That(unprivileged.Err, Does.Contain($"creating the XSKMAP for jb{t}: needs CAP_BPF and CAP_NET_ADMIN (run as root)"), unprivileged.All);
        // A veth pair of its own with jumbo frames (one that carries traffic keeps its MTU).
        Shell.Must($"ip -n {_xB} link add jz{t} mtu 9000 type veth peer name jy{t} mtu 9000 && ip -n {_xB} link set jz{t} up && ip -n {_xB} link set jy{t} up");
        var jumbo = Dataplane(_xB, "--rloc-addr", "192.0.2.2", "--instance", $"1000=jz{t}");
        Assert.That(jumbo.Code, Is.EqualTo(1));
        Assert.That(jumbo.Err, Does.Contain($"jz{t} has MTU 9000; --mode af-xdp takes frames of at most one 4 KB UMEM chunk (MTU up to 3826)"), jumbo.All);
        Assert.That(XdpOn(_xB, $"jz{t}"), Does.Not.Contain("prog/xdp"), "no program left on an interface a refused start touched");
        Assert.That(XdpOn(_xB, $"ub{t}"), Does.Contain("fastxtr_rloc"), "B's own underlay program untouched by the refused starts");
        Assert.That(File.Exists($"/dev/shm/{_shmB}x"), Is.False, "a start that failed leaves no region it made behind");
    }

    [Test, Order(7)]
    public void TheProgram_IsDetachedOnStop_AndAfterSigkill_SoTheNextStartAttaches()
    {
        string ib = $"ib{_t}";
        // A normal stop (SIGTERM) detaches the program.
        var b = _dataplanes[1]!;
        Shell.Must($"kill -TERM {b.Id}");
        Assert.That(b.WaitForExit(10_000), Is.True, "B stopped on SIGTERM");
        Assert.That(XdpOn(_xB, ib), Does.Not.Contain("prog/xdp"), "detached after a normal stop");
        b.Dispose();
        b = _dataplanes[1] = StartB();
        TwoXtrLab.WaitFor(() => Serving(_shmB, b), "B again");
        Assert.That(XdpOn(_xB, ib), Does.Contain("fastxtr_eid"));
        // SIGKILL: the kernel closes the BPF link with the process, and the program goes with it.
        b.Kill();
        Assert.That(b.WaitForExit(10_000), Is.True);
        TwoXtrLab.WaitFor(() => !XdpOn(_xB, ib).Contains("prog/xdp", StringComparison.Ordinal), "the program detached after SIGKILL");
        b.Dispose();
        b = _dataplanes[1] = StartB();
        TwoXtrLab.WaitFor(() => Serving(_shmB, b), "B after the SIGKILL");
        var r = Exec(_hA, "ping -n -c 10 -i 0.05 -W 1 10.2.0.2");
        Assert.That(r.Out, Does.Contain("10 received"), "traffic flows through the restarted data plane (the map-cache kept in its region): " + r.All);
    }
}
