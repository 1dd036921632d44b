using System.Text.Json.Nodes;
using FastXtr.Lisp.Messages;
using FastXtr.SharedMemory;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.EndToEnd;

/// <summary>
/// NAT traversal through an RTR, with real processes (draft-ietf-lisp-nat-traversal): xTR A (EIDs 10.1.0.0/24) on
/// 10.99.0.2 behind a namespace that masquerades (nftables) its traffic as 198.51.100.1, whose idle UDP bindings
/// expire after 3 s; on the public side, a bridge with the Map-Server (198.51.100.10), the public xTR C (10.2.0.0/24 at
/// 198.51.100.11) and <c>fastxtr rtr</c> (198.51.100.20), which the Map-Server offers. A finds it is behind NAT,
/// registers the RTR as its locator, sends everything through it and keeps its binding there with an Info-Request a
/// second from its data port. A second xTR, E (10.3.0.0/24 at 10.98.0.2, its region and API named "b"), sits behind
/// another NAT (198.51.100.2).
/// </summary>
[TestFixture]
[Category("netns")]
[NonParallelizable]
public class NatTraversalNamespaceTests
{
    private const string Secret = "agents-secret";
    private ProcessLab _lab = null!;
    private string _dir = "";

    private string Ns(string role) => _lab.Ns(role);

    [OneTimeSetUp]
    public void Start()
    {
        Shell.RequireRoot("needs root for network namespaces");
        if (Shell.Sh("command -v nft").Code != 0) Assert.Fail("nft is not installed: scripts/test.sh installs it (apt-get install nftables)");
        _lab = new ProcessLab("natx", "a", "b", "c", "d", "hb", "a2", "b2");
        _dir = _lab.Dir;
        string inside = Ns("a"), nat = Ns("b"), pub = Ns("c"), rtr = Ns("d");
        string t = _lab.Tag[^4..];
        Shell.Must($"ip link add fxn1{t} netns {inside} type veth peer name fxn2{t} netns {nat}");
        Shell.Must($"ip -n {inside} addr add 10.99.0.2/24 dev fxn1{t} && ip -n {inside} link set fxn1{t} up && ip -n {inside} route add default via 10.99.0.1");
        Shell.Must($"ip -n {nat} addr add 10.99.0.1/24 dev fxn2{t} && ip -n {nat} link set fxn2{t} up");
        string inside2 = Ns("a2"), nat2 = Ns("b2");
        Shell.Must($"ip link add fxn3{t} netns {inside2} type veth peer name fxn4{t} netns {nat2}");
        Shell.Must($"ip -n {inside2} addr add 10.98.0.2/24 dev fxn3{t} && ip -n {inside2} link set fxn3{t} up && ip -n {inside2} route add default via 10.98.0.1");
        Shell.Must($"ip -n {nat2} addr add 10.98.0.1/24 dev fxn4{t} && ip -n {nat2} link set fxn4{t} up");
        _lab.Bridge(Ns("hb"), (nat, ["198.51.100.1/24"]), (pub, ["198.51.100.10/24", "198.51.100.11/24"]), (rtr, ["198.51.100.20/24"]), (nat2, ["198.51.100.2/24"]));
        foreach (var (router, port) in new[] { (nat, $"fxu1{t}"), (nat2, $"fxu4{t}") })
        {
            ProcessLab.Masquerade(router, port);
            // Idle UDP bindings live 3 s (the kernel's default is 30 s, 120 s once a flow is seen both ways).
            Shell.Must($"ip netns exec {router} sysctl -qw net.netfilter.nf_conntrack_udp_timeout=3 net.netfilter.nf_conntrack_udp_timeout_stream=3");
        }

        File.WriteAllText(Path.Combine(_dir, "ms.conf"),
            $"listen 198.51.100.10:4342\ncontrol-socket {_dir}/ms.sock\nrtr 198.51.100.20\nsite agents\n  key 0 sha256 \"{Secret}\"\n  eid-prefix 1000 10.0.0.0/8 accept-more-specifics\n");
        _lab.Launch(pub, "mapserver", "--config", Path.Combine(_dir, "ms.conf"));
        File.WriteAllText(Path.Combine(_dir, "rtr.conf"),
            $"rloc-addr 198.51.100.20\nshm {_lab.Shm("d")}\nmap-resolver 198.51.100.10\nnat-site 1000 10.0.0.0/8 0 sha256 \"{Secret}\"\nnat-binding-timeout 10\n");
        _lab.Launch(rtr, "rtr", "--config", Path.Combine(_dir, "rtr.conf"));
        foreach (var (x, ns, rloc, eid, extra) in new[]
        {
            ("c", pub, "198.51.100.11", "10.2.0.1", ""),
            ("a", inside, "10.99.0.2", "10.1.0.1", "nat-traversal on\nnat-keepalive 1\n"),
            ("b", inside2, "10.98.0.2", "10.3.0.1", "nat-traversal on\nnat-keepalive 1\n"),
        })
        {
            string[] dataplane = ["dataplane", "--rloc-addr", rloc, "--instance", "1000=fx1000", "--shm", _lab.Shm(x), "--map-cache-entries", "1024"];
            // A checks that what comes through the RTR is from an RLOC of its source: its default entry's.
            _lab.Launch(ns, x == "a" ? [.. dataplane, "--decap-filter"] : dataplane);
            TwoXtrLab.WaitFor(() => Shell.Sh($"ip -n {ns} link show fx1000").Code == 0, $"the TUN of {x}");
            string prefix = eid[..^1] + "0/24";
            Shell.Must($"ip -n {ns} addr add {eid}/32 dev fx1000 && ip -n {ns} link set fx1000 up && ip -n {ns} route add 10.0.0.0/8 dev fx1000");
            File.WriteAllText(Path.Combine(_dir, $"{x}.conf"),
                $"rloc-addr {rloc}\nshm {_lab.Shm(x)}\nmap-server 198.51.100.10 0 sha256 \"{Secret}\"\nmap-resolver 198.51.100.10\ndatabase-mapping 1000 {prefix} {rloc}\nrloc-probe-interval 0\n{extra}");
            _lab.Launch(ns, "agent", "--config", Path.Combine(_dir, $"{x}.conf"));
        }
        TwoXtrLab.WaitFor(() => Binding() is not null && Binding("[1000]10.3.0.0/24") is not null, "the RTR's bindings of A's and E's EIDs", 20_000);
    }

    [OneTimeTearDown]
    public void Stop() => _lab?.Dispose();

    private JsonNode? Status(string x) => _lab.AgentStatus(x);

    /// <summary>What the RTR holds for A's prefix: "198.51.100.1:PORT", or null.</summary>
    private string? Binding(string prefix = "[1000]10.1.0.0/24") =>
        Status("d")?["rtr_bindings"]?.AsArray().FirstOrDefault(b => b!["eid_prefix"]!.GetValue<string>() == prefix)?["translated"]?.GetValue<string>();

    private long RtrCounter(string name) => _lab.AgentCounter("d", name);

    /// <summary>Pings until one answer came back (the first packets of a flow may go while the RTR resolves its ends), then <paramref name="count"/> more.</summary>
    private static int PingAfterWarmUp(string ns, string from, string to, int count)
    {
        TwoXtrLab.WaitFor(() => ProcessLab.Received(ProcessLab.Ping(ns, from, to, 1, 0.2)) == 1, $"a first answer from {to} to {from}", 15_000);
        return ProcessLab.Received(ProcessLab.Ping(ns, from, to, count, 0.05));
    }

    [Test]
    public void TheXtrBehindNat_RegistersTheRtr_AndTheRtrLearnsItsTranslatedBinding()
    {
        Assert.That(Binding(), Does.StartWith("198.51.100.1:"), "the NAT's public address, from A's authenticated Info-Request");
        var a = Status("a")!;
        Assert.That(a["through_rtrs"]!.AsArray().Select(r => r!.GetValue<string>()), Is.EqualTo(new[] { "198.51.100.20" }));
        Assert.That(a["counters"]!["nat-keepalives-sent"]!.GetValue<long>(), Is.GreaterThan(0));
        // What the mapping system hands out for A's EID is the RTR, not A's private address.
        var lig = Shell.Run("ip", ["netns", "exec", Ns("c"), Shell.FastxtrExe(), "lig", "10.1.0.1", "--iid", "1000", "--map-resolver", "198.51.100.10"], 20_000);
        Assert.That(lig.Code, Is.EqualTo(0), lig.Out + lig.Err);
        Assert.That(lig.Out, Does.Contain("198.51.100.20").And.Not.Contain("10.99.0.2"), lig.Out);
        // A sends everything to the RTR: its default entry is marked as reached across the NAT.
        string cache = Shell.Must($"{Shell.FastxtrExe()} show map-cache --shm {_lab.Shm("a")}");
        Assert.That(cache, Does.Contain("0.0.0.0/0").And.Contain("198.51.100.20 p1/w100 up nat"), cache);
        Assert.That(RtrCounter("rtr-bindings-learned"), Is.GreaterThanOrEqualTo(1));
    }

    [Test]
    public void Ping_FromBehindNat_AndToBehindNat_GoesThroughTheRtr()
    {
        ulong before = TwoXtrLab.ReadCounter(_lab.Shm("d"), Counter.RtrReencapsulated);
        Assert.That(PingAfterWarmUp(Ns("a"), "10.1.0.1", "10.2.0.1", 20), Is.EqualTo(20), "A (behind NAT) to C");
        Assert.That(PingAfterWarmUp(Ns("c"), "10.2.0.1", "10.1.0.1", 20), Is.EqualTo(20), "C to A (behind NAT)");
        // Each exchange crosses the RTR twice (request and reply).
        Assert.That(TwoXtrLab.ReadCounter(_lab.Shm("d"), Counter.RtrReencapsulated) - before, Is.GreaterThanOrEqualTo(80UL));
    }

    [Test]
    public void TwoXtrsBehindDifferentNats_ReachEachOther_ThroughTheRtr()
    {
        Assert.That(Binding("[1000]10.3.0.0/24"), Does.StartWith("198.51.100.2:"), "E's binding: the second NAT's address");
        ulong before = TwoXtrLab.ReadCounter(_lab.Shm("d"), Counter.RtrReencapsulated);
        Assert.That(PingAfterWarmUp(Ns("a"), "10.1.0.1", "10.3.0.1", 20), Is.EqualTo(20), "A to E, both behind NAT");
        Assert.That(PingAfterWarmUp(Ns("a2"), "10.3.0.1", "10.1.0.1", 20), Is.EqualTo(20), "E to A");
        Assert.That(TwoXtrLab.ReadCounter(_lab.Shm("d"), Counter.RtrReencapsulated) - before, Is.GreaterThanOrEqualTo(80UL), "every packet through the RTR");
    }

    [Test]
    public void TheXtrBehindNat_SendsItsBulkFromItsDataPort_ThroughOneBinding()
    {
        // The NAT lets in only what answers the binding A's data port made, and that binding is the one the RTR
        // learnt from A's Info-Requests. A's TCP bulk leaves in UDP GSO bursts (offloads are on by default): they must
        // leave from the data port as its lone packets do, so everything from A reaches the RTR from one translated port.
        PingAfterWarmUp(Ns("a"), "10.1.0.1", "10.2.0.1", 1);
        string pcap = $"/tmp/fxtest-{_lab.Tag}-nat.pcap";
        try
        {
            var capture = Tshark.StartCapture(Ns("d"), $"fxu3{_lab.Tag[^4..]}", "udp dst port 4341 and src host 198.51.100.1", 300, pcap);
            ulong gso = TwoXtrLab.ReadCounter(_lab.Shm("a"), Counter.UdpGsoSends);
            var (tx, rx) = TcpTransfer.Run(Ns("a"), Ns("c"), "10.2.0.1", "10.1.0.1", _lab.Tag);
            Assert.That(rx.Out.Trim(), Is.EqualTo(tx.Out.Trim()).And.StartWith("8388608 "));
            capture.Wait();
            Assert.That(TwoXtrLab.ReadCounter(_lab.Shm("a"), Counter.UdpGsoSends), Is.GreaterThan(gso), "A sent its bulk in UDP GSO bursts");
            var ports = Tshark.Fields(pcap, ["udp.srcport"]).Select(r => r["udp.srcport"].Split(',')[0]).ToList();
            Assert.That(ports, Has.Count.GreaterThanOrEqualTo(100));
            Assert.That(ports.Distinct(), Is.EquivalentTo(new[] { ports[0] }), "one translated port: " + string.Join(" ", ports.Distinct()));
        }
        finally
        {
            File.Delete(pcap);
        }
    }

    [TestCase("a", "c", "10.2.0.1", "10.1.0.1")]
    [TestCase("c", "a", "10.1.0.1", "10.2.0.1")]
    public void TcpStream_BothWays_ArrivesWhole_HashCompared(string client, string server, string serverEid, string clientEid)
    {
        PingAfterWarmUp(Ns(client), clientEid, serverEid, 1);
        ulong runs = TwoXtrLab.ReadCounter(_lab.Shm("d"), Counter.UdpGsoSends);
        var (tx, rx) = TcpTransfer.Run(Ns(client), Ns(server), serverEid, clientEid, _lab.Tag);
        Assert.That(tx.Code, Is.EqualTo(0), tx.Err);
        Assert.That(rx.Code, Is.EqualTo(0), rx.Err);
        Assert.That(rx.Out.Trim(), Is.EqualTo(tx.Out.Trim()).And.StartWith("8388608 "), "byte count and SHA-256 of what was sent and what arrived");
        // Toward A (behind NAT) the RTR sends runs of segments with UDP_SEGMENT: the hash above is their correctness.
        Assert.That(TwoXtrLab.ReadCounter(_lab.Shm("d"), Counter.UdpGsoSends), Is.GreaterThan(runs), "runs to A's NAT binding sent with UDP_SEGMENT");
    }

    [Test]
    public void TheNatBinding_OutlivesTheNatsIdleTimeout_ByKeepalives()
    {
        PingAfterWarmUp(Ns("c"), "10.2.0.1", "10.1.0.1", 1);
        string binding = Binding()!;
        long keepalives = _lab.AgentCounter("a", "nat-keepalives-sent");
        // Nothing but keep-alives for more than twice the NAT's 3 s idle timeout.
        Thread.Sleep(8000);
        Assert.That(_lab.AgentCounter("a", "nat-keepalives-sent") - keepalives, Is.GreaterThanOrEqualTo(5), "about one a second");
        Assert.That(Binding(), Is.EqualTo(binding), "the same translated port: the NAT kept the binding");
        // The first packet from outside gets through the RTR and the NAT at once.
        Assert.That(ProcessLab.Received(ProcessLab.Ping(Ns("c"), "10.2.0.1", "10.1.0.1", 1, 0.2)), Is.EqualTo(1), "C reaches A behind NAT after the idle period");
    }

    [Test]
    public void TheRtr_RefusesUnauthenticatedAndReplayedInfoRequests_AndForwardsNothingFromAnUnknownSource()
    {
        string binding = Binding()!;
        long authFailed = RtrCounter("rtr-info-requests-authentication-failed"), replayed = RtrCounter("rtr-info-requests-replayed");
        // Claims A's prefix from the public side, signed with a key the site does not have.
        SendFromPublicSide(InfoRequestFor("10.1.0.0", nonce: ulong.MaxValue, "not-the-secret"), 4341);
        TwoXtrLab.WaitFor(() => RtrCounter("rtr-info-requests-authentication-failed") > authFailed, "the RTR refusing the forged Info-Request");
        // Signed with the right key but an old nonce: what a captured request replayed from elsewhere looks like.
        SendFromPublicSide(InfoRequestFor("10.1.0.0", nonce: 1, Secret), 4341);
        TwoXtrLab.WaitFor(() => RtrCounter("rtr-info-requests-replayed") > replayed, "the RTR refusing the replayed Info-Request");
        Assert.That(Binding(), Is.EqualTo(binding), "neither moved A's binding");

        // LISP data claiming A's EID as its source, from an address that is no locator of it: a counted drop.
        ulong filtered = TwoXtrLab.ReadCounter(_lab.Shm("d"), Counter.DropDecapFilter);
        ulong relayed = TwoXtrLab.ReadCounter(_lab.Shm("d"), Counter.RtrReencapsulated);
        SendFromPublicSide(LispDataFrom("10.1.0.1", "10.2.0.1"), 4341);
        TwoXtrLab.WaitFor(() => TwoXtrLab.ReadCounter(_lab.Shm("d"), Counter.DropDecapFilter) > filtered, "the RTR's decapsulation filter dropping it");
        Assert.That(TwoXtrLab.ReadCounter(_lab.Shm("d"), Counter.RtrReencapsulated), Is.EqualTo(relayed), "nothing forwarded for it");
    }

    private static byte[] InfoRequestFor(string prefix, ulong nonce, string secret)
    {
        var request = new InfoMessage
        {
            Nonce = nonce, TtlMinutes = 1, EidMaskLength = 24,
            EidPrefix = EidAddress.WithInstanceId(1000, FastXtr.Packets.EidFamily.Ipv4, FastXtr.Packets.Ipv4Header.ToUInt32(System.Net.IPAddress.Parse(prefix))),
        };
        return request.ToSignedArray(new SiteKey(0, AuthenticationAlgorithm.HmacSha256, System.Text.Encoding.UTF8.GetBytes(secret)));
    }

    /// <summary>A LISP data packet (IID 1000) carrying an ICMP echo request from <paramref name="source"/> to <paramref name="destination"/>.</summary>
    private static byte[] LispDataFrom(string source, string destination)
    {
        var packet = new byte[8 + 28];
        packet[0] = 0x88; // N and I bits
        packet[3] = 0x01;
        packet[4] = 0x00; packet[5] = 0x03; packet[6] = 0xE8; // Instance ID 1000
        var ip = new FastXtr.Packets.Ipv4Header
        {
            TotalLength = 28, TimeToLive = 64, Protocol = 1,
            SourceAddress = FastXtr.Packets.Ipv4Header.ToUInt32(System.Net.IPAddress.Parse(source)),
            DestinationAddress = FastXtr.Packets.Ipv4Header.ToUInt32(System.Net.IPAddress.Parse(destination)),
        };
        ip.Write(packet.AsSpan(8));
        packet[28] = 8; // echo request
        return packet;
    }

    /// <summary>One datagram from the public side (198.51.100.10, the Map-Server's address) to the RTR's port.</summary>
    private void SendFromPublicSide(byte[] datagram, int port)
    {
        string file = Path.Combine(_dir, $"datagram-{Guid.NewGuid():N}.bin");
        File.WriteAllBytes(file, datagram);
        Shell.Must($"ip netns exec {Ns("c")} bash -c 'exec 3<>/dev/udp/198.51.100.20/{port} && cat {file} >&3'");
    }
}
