using FastXtr.SharedMemory;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.EndToEnd;

/// <summary>
/// Two real data planes in network namespaces carrying ping, TCP and LISP-encapsulated traffic: everything once with
/// segmentation offloads off and once with them on (TSO cut in userspace, UDP GSO, UDP GRO, coalesced writes).
/// </summary>
[TestFixture("off")]
[TestFixture("on")]
[Category("netns")]
[NonParallelizable]
public class DataplaneNamespaceTests(string offload)
{
    private TwoXtrLab _lab = null!;

    [OneTimeSetUp]
    public void Start()
    {
        Shell.RequireRoot("end-to-end tests build network namespaces and need root");
        _lab = new TwoXtrLab("--offload", offload, "--metrics", "127.0.0.1:9341");
    }

    [OneTimeTearDown]
    public void Stop() => _lab?.Dispose();

    private const string Py = "/usr/bin/python3";

    private FastXtr.Lab.Shell.Result Ping(string ns, int count, string extra = "") => _lab.Exec(ns, $"ping -n -c {count} -i 0.05 -W 1 {extra} -I 10.1.0.1 10.2.0.1");

    [Test, Order(2)]
    public void Metrics_ArePrometheusText_ReadFromSharedMemoryAtScrapeTime()
    {
        Assert.That(Ping(_lab.A, 3).Out, Does.Contain("3 received"));
        string Scrape() => _lab.Exec(_lab.A, $"{Py} -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9341/metrics').read().decode())\"").Out;
        string text = Scrape();
        static double Value(string text, string series) =>
            double.Parse(text.Split('\n').Single(l => l.StartsWith(series + " ", StringComparison.Ordinal))[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(text, Does.Contain("# TYPE fastxtr_dataplane_udp_tx_packets_total counter"));
        Assert.That(text, Does.Contain("# TYPE fastxtr_dataplane_drops_total counter"));
        double sent = Value(text, "fastxtr_dataplane_udp_tx_packets_total{worker=\"0\"}");
        Assert.That(sent, Is.EqualTo((double)_lab.Counter(_lab.ShmA, Counter.UdpTxPackets)).Within(3), "the worker's counter as shared memory has it");
        Assert.That(Value(text, "fastxtr_dataplane_map_cache_entries"), Is.GreaterThan(0));
        Assert.That(text, Does.Contain("dotnet_collection_count_total"), "the runtime's figures (GC) are there too");
        Assert.That(Ping(_lab.A, 2).Out, Does.Contain("2 received"));
        Assert.That(Value(Scrape(), "fastxtr_dataplane_udp_tx_packets_total{worker=\"0\"}"), Is.GreaterThanOrEqualTo(sent + 2), "read again at the next scrape");

        // The reference parser reads it and the names follow the rules; every counter of `fastxtr show stats --json`,
        // read between two scrapes, lies between the two scraped values (drop reasons as one metric with a label).
        var before = FastXtr.Tests.Support.PrometheusText.Parse(Scrape());
        var shown = Shell.Must($"{Shell.FastxtrExe()} show stats --shm {_lab.ShmA} --json");
        var after = FastXtr.Tests.Support.PrometheusText.Parse(Scrape());
        using var doc = System.Text.Json.JsonDocument.Parse(shown);
        var worker = doc.RootElement.GetProperty("workers")[0];
        int compared = 0;
        foreach (var counter in worker.EnumerateObject())
        {
            string series = counter.Name.StartsWith("drop-", StringComparison.Ordinal)
                ? $"fastxtr_dataplane_drops_total{{reason={counter.Name["drop-".Length..]},worker=0}}"
                : $"fastxtr_dataplane_{counter.Name.Replace('-', '_')}_total{{worker=0}}";
            Assert.That(before.ContainsKey(series), Is.True, series);
            Assert.That((double)counter.Value.GetUInt64(), Is.InRange(before[series], after[series]), series);
            compared++;
        }
        Assert.That(compared, Is.EqualTo(Enum.GetValues<Counter>().Length - 1), "every counter");
    }

    [Test, Order(1)]
    public void Ping_CrossesTwoDataPlanes()
    {
        ulong txBefore = _lab.Counter(_lab.ShmA, Counter.UdpTxPackets), rxBefore = _lab.Counter(_lab.ShmB, Counter.TunTxPackets);
        var r = Ping(_lab.A, 5);
        Assert.That(r.Out, Does.Contain("5 received"), r.All);
        Assert.That(_lab.Counter(_lab.ShmA, Counter.UdpTxPackets) - txBefore, Is.GreaterThanOrEqualTo(5UL), "A encapsulated the echo requests");
        Assert.That(_lab.Counter(_lab.ShmB, Counter.TunTxPackets) - rxBefore, Is.GreaterThanOrEqualTo(5UL), "B decapsulated them into its TUN");
    }


    [Test, Order(2)]
    public void UdpGsoDatagrams_ArriveWithTheirBoundaries()
    {
        // A sender using UDP_SEGMENT: 50 sends of 11,500 bytes that the kernel hands the TUN as USO super-packets
        // (offloads on) or as 500 datagrams (off). Either way B must receive 500 datagrams, each send's nine of 1,200
        // bytes and one of 700, in order. With offloads B's ETR writes each burst to its TUN as one GSO UDP_L4 packet,
        // which B's kernel cuts again at the socket: the boundaries, the short last datagram and the bytes must survive.
        ulong superBefore = _lab.Counter(_lab.ShmA, Counter.TunSuperPackets);
        ulong coalescedBefore = _lab.Counter(_lab.ShmB, Counter.UdpDatagramsCoalesced);
        ulong gatheredBefore = _lab.Counter(_lab.ShmA, Counter.ItrDatagramsGathered);
        var (client, server) = UdpGsoTransfer.Run(_lab.A, _lab.B, "10.2.0.1", "10.1.0.1", _lab.Tag, (11_500, 1200, 50));
        Assert.That(client.Code, Is.EqualTo(0), client.All);
        Assert.That(client.Out, Does.StartWith("500 [700, 1200] "));
        Assert.That(server.Out.Trim(), Is.EqualTo(client.Out.Trim()), "500 datagrams of 1,200 and 700 bytes, the sender's bytes in the sender's order");
        ulong supers = _lab.Counter(_lab.ShmA, Counter.TunSuperPackets) - superBefore;
        ulong coalesced = _lab.Counter(_lab.ShmB, Counter.UdpDatagramsCoalesced) - coalescedBefore;
        ulong gathered = _lab.Counter(_lab.ShmA, Counter.ItrDatagramsGathered) - gatheredBefore;
        if (offload == "on")
        {
            Assert.That(supers, Is.GreaterThanOrEqualTo(40UL), "the TUN handed over USO super-packets, cut by the data plane");
            Assert.That(coalesced, Is.GreaterThanOrEqualTo(250UL), "B wrote most bursts to its TUN as GSO UDP_L4 packets");
            Assert.That(gathered, Is.GreaterThanOrEqualTo(supers * 10), "A sent each super-packet's ten datagrams, encapsulated, in one UDP GSO send");
        }
        else Assert.That((supers, coalesced, gathered), Is.EqualTo((0UL, 0UL, 0UL)));
    }

    [Test, Order(3)]
    public void ATcpFlow_LeavesFromOneOuterPort_SentAloneOrInBursts()
    {
        // RFC 9300 §5.3: the outer source port is the inner flow's hash, so that a flow keeps one path through an
        // ECMP underlay. A TCP connection's handshake and short segments go out one by one, its bulk in UDP GSO
        // bursts (offloads on): every packet of it must leave from one port, else an ECMP router may reorder them.
        string pcap = $"/tmp/fxtest-{_lab.Tag}-port.pcap";
        try
        {
            var capture = Tshark.StartCapture(_lab.B, _lab.VethB, "udp dst port 4341 and src host 192.0.2.1", 300, pcap);
            var (client, server) = TcpTransfer.Run(_lab.A, _lab.B, "10.2.0.1", "10.1.0.1", _lab.Tag);
            Assert.That(server.Out.Trim(), Is.EqualTo(client.Out.Trim()));
            capture.Wait();
            var rows = Tshark.Fields(pcap, ["udp.srcport", "tcp.srcport", "tcp.dstport", "tcp.len"]).Where(r => r["tcp.dstport"] == "5299").ToList();
            Assert.That(rows, Has.Count.GreaterThanOrEqualTo(100), "the connection's packets from A");
            Assert.That(rows.Where(r => r["tcp.len"] == "0"), Is.Not.Empty, "among them some sent alone (handshake, no payload)");
            var ports = rows.Select(r => r["udp.srcport"].Split(',')[0]).Distinct().ToList();
            Assert.That(ports, Has.Count.EqualTo(1), "one outer source port for the flow: " + string.Join(" ", ports));
            if (offload == "on") Assert.That(int.Parse(ports[0], System.Globalization.CultureInfo.InvariantCulture), Is.InRange(61440, 61503), "one of the segmenting sockets' ports");
        }
        finally
        {
            File.Delete(pcap);
        }
    }

    [Test, Order(2)]
    public void TcpStream_ArrivesWhole_HashCompared()
    {
        var (client, server) = TcpTransfer.Run(_lab.A, _lab.B, "10.2.0.1", "10.1.0.1", _lab.Tag);
        Assert.That(client.Code, Is.EqualTo(0), client.All);
        Assert.That(server.Code, Is.EqualTo(0), server.All);
        Assert.That(server.Out.Trim(), Is.EqualTo(client.Out.Trim()), "byte count and SHA-256 at the receiver equal the sender's");
        Assert.That(server.Out, Does.StartWith("8388608 "));
        var offloaded = new[] { (_lab.ShmA, Counter.TunSuperPackets), (_lab.ShmA, Counter.UdpGsoSends), (_lab.ShmB, Counter.UdpGroReceives), (_lab.ShmB, Counter.SegmentsCoalesced) }
            .Select(c => _lab.Counter(c.Item1, c.Item2)).ToArray();
        if (offload == "on") Assert.That(offloaded, Has.All.GreaterThan(0UL), "super-packets read and sent with GSO at A; GRO and coalescing at B");
        else Assert.That(offloaded, Has.All.EqualTo(0UL), "no offload path without --offload on");
    }

    [Test, Order(3)]
    public void Traffic_AllocatesNothingOnTheWorkers()
    {
        // Warm-up: every path the measured traffic takes has run (and been compiled) once.
        var (client, server) = TcpTransfer.Run(_lab.A, _lab.B, "10.2.0.1", "10.1.0.1", _lab.Tag);
        Assert.That(server.Out.Trim(), Is.EqualTo(client.Out.Trim()), server.All);
        Assert.That(Ping(_lab.A, 3).Out, Does.Contain("3 received"));
        var before = WorkerAllocations();

        (client, server) = TcpTransfer.Run(_lab.A, _lab.B, "10.2.0.1", "10.1.0.1", _lab.Tag);
        Assert.That(server.Out.Trim(), Is.EqualTo(client.Out.Trim()), server.All);
        var r = Ping(_lab.A, 20, "-s 1400");
        Assert.That(r.Out, Does.Contain("20 received"), r.All);
        var after = WorkerAllocations();

        Assert.That(after, Is.EqualTo(before), "bytes allocated by A's and B's workers, before and after 8 MiB of TCP both ways and 20 pings");
    }

    /// <summary>Both workers' allocation counters, read once each has slept in poll twice (the counter is up to date).</summary>
    private (ulong A, ulong B) WorkerAllocations()
    {
        ulong sleepsA = _lab.Counter(_lab.ShmA, Counter.PollSleeps), sleepsB = _lab.Counter(_lab.ShmB, Counter.PollSleeps);
        TwoXtrLab.WaitFor(() => _lab.Counter(_lab.ShmA, Counter.PollSleeps) >= sleepsA + 2 && _lab.Counter(_lab.ShmB, Counter.PollSleeps) >= sleepsB + 2,
            "both workers idle");
        return (_lab.Counter(_lab.ShmA, Counter.WorkerAllocatedBytes), _lab.Counter(_lab.ShmB, Counter.WorkerAllocatedBytes));
    }

    [Test, Order(3)]
    public void Tshark_DecodesOurDataPackets_WithIidNonceAndPerFlowPorts()
    {
        string pcap = $"/tmp/fxtest-{_lab.Tag}.pcap";
        try
        {
            var capture = Tshark.StartCapture(_lab.B, _lab.VethB, "udp dst port 4341", 40, pcap);
            // Two flows: an ICMP echo stream and a UDP stream with changing source ports.
            Ping(_lab.A, 10);
            _lab.Exec(_lab.A, "for p in $(seq 40000 40029); do echo x > /dev/udp/10.2.0.1/$p; done 2>/dev/null; true");
            capture.Wait();
            // The inner payload is read as data (by its destination ports): the inner source port is an ephemeral one,
            // now and then a port with a registered dissector (54328: Elasticsearch, which calls "x\n" malformed). A rule
            // must not cover our outer source ports (49152 and up): it would win over LISP's 4341.
            var rows = Tshark.Fields(pcap, ["ip.src", "udp.srcport", "lisp-data.flags.nonce", "lisp-data.flags.iid", "lisp-data.iid", "lisp-data.nonce", "_ws.malformed"],
                "udp.port==40000-40029,data");
            var fromA = rows.Where(r => r["ip.src"].StartsWith("192.0.2.1,", StringComparison.Ordinal)).ToList();
            Assert.That(fromA, Has.Count.GreaterThanOrEqualTo(20));
            Assert.That(fromA.Select(r => r["lisp-data.flags.iid"]), Is.All.EqualTo("1"));
            Assert.That(fromA.Select(r => r["lisp-data.flags.nonce"]), Is.All.EqualTo("1"));
            Assert.That(fromA.Select(r => r["lisp-data.iid"]), Is.All.EqualTo("1000"));
            Assert.That(fromA.Select(r => r["_ws.malformed"]), Is.All.Empty);
            Assert.That(fromA.Select(r => r["lisp-data.nonce"]).Distinct().Count(), Is.GreaterThan(fromA.Count * 9 / 10), "a fresh nonce per packet");
            Assert.That(fromA.Select(r => r["udp.srcport"]).Distinct().Count(), Is.GreaterThan(10), "source-port entropy across flows");
        }
        finally
        {
            File.Delete(pcap);
        }
    }

    [Test, Order(4)]
    public void Isolation_SameEidsInTwoInstances_NoPacketCrosses()
    {
        ulong tenantBefore = _lab.TunRxPackets(_lab.B2, "fx2000"), mainBefore = _lab.TunRxPackets(_lab.B, "fx1000");
        Assert.That(Ping(_lab.A, 5).Out, Does.Contain("5 received"));
        Assert.That(_lab.TunRxPackets(_lab.B2, "fx2000"), Is.EqualTo(tenantBefore), "IID 1000 traffic never reached the IID 2000 tenant");
        ulong mainAfter = _lab.TunRxPackets(_lab.B, "fx1000");
        Assert.That(mainAfter - mainBefore, Is.GreaterThanOrEqualTo(5UL));

        Assert.That(Ping(_lab.A2, 5).Out, Does.Contain("5 received"), "the tenant reaches its own 10.2.0.1");
        Assert.That(_lab.TunRxPackets(_lab.B, "fx1000"), Is.EqualTo(mainAfter), "IID 2000 traffic never reached the IID 1000 agent with the same EID");
        Assert.That(_lab.TunRxPackets(_lab.B2, "fx2000") - tenantBefore, Is.GreaterThanOrEqualTo(5UL));
    }

    [Test, Order(5)]
    public void UnknownInstanceId_IsACountedDrop()
    {
        ulong before = _lab.Counter(_lab.ShmB, Counter.DropUnknownInstanceId);
        // LISP header N|I, nonce 1, IID 3000 (0x000bb8), then a 20-byte IPv4 header 10.1.0.1 -> 10.2.0.1.
        string bytes = @"\x88\x00\x00\x01\x00\x0b\xb8\x00\x45\x00\x00\x14\x00\x00\x00\x00\x40\x11\x00\x00\x0a\x01\x00\x01\x0a\x02\x00\x01";
        for (int i = 0; i < 3; i++) _lab.Exec(_lab.A, $"printf '{bytes}' > /dev/udp/192.0.2.2/4341");
        TwoXtrLab.WaitFor(() => _lab.Counter(_lab.ShmB, Counter.DropUnknownInstanceId) >= before + 3, "B to count three unknown-IID drops", 5000);
    }

    [Test, Order(6)]
    public void Miss_IsPostedOncePerDestination()
    {
        Shell.Must($"ip -n {_lab.A} route add 10.3.0.0/24 dev fx1000");
        using var region = SharedRegion.Attach(_lab.ShmA);
        Span<MissRecord> drain = stackalloc MissRecord[64];
        region.MissRing(0).Drain(drain);
        var r = _lab.Exec(_lab.A, "ping -n -c 20 -i 0.02 -W 1 -I 10.1.0.1 10.3.0.1");
        Assert.That(r.Out, Does.Contain("0 received"));
        int n = region.MissRing(0).Drain(drain);
        var misses = drain[..n].ToArray().Where(m => (uint)m.DestinationEid == 0x0A030001).ToList();
        Assert.That(misses, Has.Count.EqualTo(1), "20 packets in under a second: one miss");
        Assert.That((misses[0].InstanceId, (uint)misses[0].SourceEid), Is.EqualTo((1000u, 0x0A010001u)));
    }

    [Test, Order(7)]
    public void TooBigWithDf_GetsFragmentationNeeded_WithoutDf_IsFragmented()
    {
        // Forget any path MTU learnt earlier (the TCP test teaches the kernel 1464), so the packet is really sent.
        Shell.Must($"ip -n {_lab.A} route flush cache");
        ulong icmp = _lab.Counter(_lab.ShmA, Counter.IcmpTooBigSent);
        var df = _lab.Exec(_lab.A, "ping -n -c 1 -W 1 -M do -s 1472 -I 10.1.0.1 10.2.0.1");
        Assert.That(df.All, Does.Contain("1464"), "the source learns the MTU left after encapsulation");
        Assert.That(_lab.Counter(_lab.ShmA, Counter.IcmpTooBigSent), Is.GreaterThan(icmp));

        Shell.Must($"ip -n {_lab.A} route flush cache");
        ulong fragments = _lab.Counter(_lab.ShmA, Counter.OuterFragmentsSent);
        var frag = _lab.Exec(_lab.A, "ping -n -c 3 -i 0.1 -W 1 -M dont -s 1450 -I 10.1.0.1 10.2.0.1");
        Assert.That(frag.Out, Does.Contain("3 received"), frag.All);
        Assert.That(_lab.Counter(_lab.ShmA, Counter.OuterFragmentsSent) - fragments, Is.GreaterThanOrEqualTo(6UL), "each request went out as two outer fragments");
    }
}
