using System.Diagnostics;
using FastXtr.Lisp.Messages;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.Cli;

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

    /// <summary>The Map-Server configuration the process tests start with: one site, IID 1000.</summary>
    private const string PlannersSite = "site planners\n  key 0 sha256 \"s3cret\"\n  eid-prefix 1000 10.1.0.0/16 accept-more-specifics\n  proxy-reply\n";

    /// <summary>A scratch directory for one process test (the caller removes it) and a UDP/TCP port of its own.</summary>
    private static (string Dir, int Port) Scratch(string name, int portBase)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"fxtest-{name}-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        return (dir, portBase + Environment.ProcessId % 20000);
    }

    private static void Signal(Process process, string signal)
    {
        using var kill = Process.Start("kill", ["-s", signal, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
        kill.WaitForExit();
        Assert.That(kill.ExitCode, Is.EqualTo(0), $"kill -s {signal}");
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

    [Test]
    public void Lab_RefusesABadPrefix_AndDownOfANonexistentLabRemovesNothing()
    {
        var (code, _, err) = Run("lab", "run", "--prefix", "bad-prefix!");
        Assert.That((code, err), Is.EqualTo((2, "fastxtr lab: --prefix 'bad-prefix!': use 1 to 8 letters or digits (namespace and interface names derive from it)\n")));
        var down = Run("lab", "down", "--prefix", "nolab" + Random.Shared.Next(1000));
        Assert.That(down.Code, Is.EqualTo(0));
        Assert.That(down.Out, Does.Contain("removed 0 namespace(s)"));
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

        // A data packet (N and I bits: 0x88, which reads as an ECM's type) with an inner IPv4/UDP packet.
        var inner = new byte[28];
        new FastXtr.Packets.Ipv4Header { TotalLength = 28, TimeToLive = 64, Protocol = 17, SourceAddress = 0x0A010001, DestinationAddress = 0x0A020005 }.Write(inner);
        var packet = new byte[8 + 28];
        FastXtr.Packets.LispDataHeader.WithNonce(0x123456, 1000).Write(packet);
        inner.CopyTo(packet, 8);
        var data = Run("decode", Convert.ToHexString(packet));
        Assert.That(data.Code, Is.EqualTo(0));
        Assert.That(data.Out, Does.Contain("LISP data packet").And.Contains("10.1.0.1 -> 10.2.0.5").And.Contains("1000"));
    }

    [Test]
    public void DataplaneHelp_DocumentsEveryFlag()
    {
        var (code, output, _) = Run("dataplane", "--help");
        Assert.That(code, Is.EqualTo(0));
        foreach (var flag in new[] { "--workers", "--cpus", "--batch", "--mode", "--instance", "--eid-if", "--rloc-addr", "--port", "--mtu", "--shm", "--map-cache-entries", "--decap-filter", "--rx-ring", "--tx-ring", "--tun-queue-length", "--socket-buffer" })
            Assert.That(output, Does.Contain(flag), flag);
    }

    [Test]
    public void Dataplane_BadOptions_AreRefusedWithTheReason()
    {
        var missing = Run("dataplane", "--instance", "1000=fxq0");
        Assert.That(missing.Code, Is.EqualTo(1));
        Assert.That(missing.Err, Does.Contain("--rloc-addr is required"));
        var afPacket = Run("dataplane", "--mode", "af-packet", "--rloc-addr", "192.0.2.1", "--instance", "1=fxq0", "--rx-ring", "10");
        Assert.That(afPacket.Code, Is.EqualTo(1));
        Assert.That(afPacket.Err, Does.Contain("--rx-ring 10: use 64 .. 1048576 frames"));
        var eidIf = Run("dataplane", "--rloc-addr", "192.0.2.1", "--instance", "1=fxq0", "--eid-if", "eth9");
        Assert.That(eidIf.Err, Does.Contain("--eid-if names the EID-facing interface of --mode af-packet"));
        var queue = Run("dataplane", "--rloc-addr", "192.0.2.1", "--instance", "1=fxq0", "--tun-queue-length", "8");
        Assert.That((queue.Code, queue.Err.Contains("--tun-queue-length 8: use 16 .. 1048576 packets", StringComparison.Ordinal)), Is.EqualTo((1, true)), queue.Err);
        var badIid = Run("dataplane", "--rloc-addr", "192.0.2.1", "--instance", "99999999=fxq0");
        Assert.That(badIid.Err, Does.Contain("24 bits"));
        var badAddr = Run("dataplane", "--rloc-addr", "300.1.1.1", "--instance", "1=fxq0");
        Assert.That((badAddr.Code, badAddr.Err.Contains("--rloc-addr '300.1.1.1': expected a unicast IPv4 address", StringComparison.Ordinal)), Is.EqualTo((2, true)));
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
        using (FastXtr.SharedMemory.SharedRegion.Create(name, FastXtr.SharedMemory.SharedRegionSizes.Default with { EntryCapacity = 64 })) { }
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

    [Test]
    public void MapServerProcess_Lig_AndShowRegistrations()
    {
        var (dir, port) = Scratch("ms", 20000);
        string conf = Path.Combine(dir, "ms.conf"), sock = Path.Combine(dir, "ms.sock");
        File.WriteAllText(conf, PlannersSite);
        var psi = new ProcessStartInfo(Exe(), ["mapserver", "--config", conf, "--listen", $"127.0.0.1:{port}", "--control-socket", sock, "--metrics", $"127.0.0.1:{port}"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var server = Process.Start(psi)!;
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(15);
            while (!File.Exists(sock) && DateTime.UtcNow < deadline) Thread.Sleep(50);
            Assert.That(File.Exists(sock), Is.True, "the Map-Server opened its control socket");
            Assert.That(File.GetUnixFileMode(sock), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite), "other local users are kept out");

            var reg = new MapRegister { Nonce = 1, WantMapNotify = true, AlgorithmId = AuthenticationAlgorithm.HmacSha256, XtrIdPresent = true, XtrId = 0xabc, SiteId = 3 };
            var rec = new MappingRecord { TtlMinutes = 1440, EidMaskLength = 32, EidPrefix = LispAddress.WithInstanceId(1000, LispAddress.Parse("10.1.0.5")) };
            var ctx = FastXtr.Lisp.Context.AgentContext.TryParse("{\"agent-context\":{\"hardware\":[\"gpu\"],\"state\":\"ready\"}}", out _)!;
            rec.Locators.Add(new LocatorRecord(FastXtr.Lisp.Context.ContextEncoding.RlocWithContext(LispAddress.Parse("192.0.2.3"), ctx), 1, 100));
            reg.Records.Add(rec);
            using var udp = new System.Net.Sockets.UdpClient(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
            udp.Client.ReceiveTimeout = 3000;
            udp.Send(reg.ToSignedArray("s3cret"u8), new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port));
            var from = new System.Net.IPEndPoint(0, 0);
            Assert.That(LispMessage.PeekType(udp.Receive(ref from)), Is.EqualTo(LispMessageType.MapNotify));

            var lig = Run("lig", "10.1.0.5", "--iid", "1000", "--mr", $"127.0.0.1:{port}", "--constraints", "{\"agent-constraints\":{\"hardware\":[\"gpu\"]}}");
            Assert.That(lig.Code, Is.EqualTo(0), lig.Err);
            Assert.That(lig.Out, Does.Contain("[1000]10.1.0.5/32").And.Contain("192.0.2.3  priority 1  weight 100  up").And.Contain("\"gpu\""));
            var show = Run("show", "registrations", "--control-socket", sock);
            Assert.That(show.Out, Does.Contain("1 registration(s)").And.Contain("site planners  [1000] 10.1.0.5/32").And.Contain("192.0.2.3"));
            var miss = Run("lig", "10.9.9.9", "--iid", "1000", "--mr", $"127.0.0.1:{port}");
            Assert.That(miss.Out, Does.Contain("negative, action NativelyForward"));

            // Prometheus metrics on TCP at the same port number (--metrics), read at scrape time.
            using var http = new System.Net.Http.HttpClient();
            string metrics = http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/metrics")).GetAwaiter().GetResult();
            Assert.That(metrics, Does.Contain("# TYPE fastxtr_mapserver_map_registers_accepted_total counter")
                .And.Contain("# TYPE fastxtr_mapserver_publication_delay_seconds histogram"));
            Assert.That(metrics.Split('\n'), Does.Contain("fastxtr_mapserver_map_registers_accepted_total 1").And.Contain("fastxtr_mapserver_registrations 1"));
            Assert.That(metrics, Does.Contain("dotnet_collection_count_total{generation=\"2\"}").And.Contain("process_start_time_seconds"), "the runtime's figures");
            // The reference parser reads it and the names follow the rules; every counter `show mapserver` shows is
            // there with the same value (nothing is sent to the Map-Server meanwhile).
            var samples = FastXtr.Tests.Support.PrometheusText.Parse(metrics);
            using var shown = System.Text.Json.JsonDocument.Parse(Run("show", "mapserver", "--control-socket", sock, "--json").Out);
            foreach (var c in Enum.GetValues<FastXtr.MapServer.MsCounter>().Where(c => c != FastXtr.MapServer.MsCounter.Count))
            {
                string name = FastXtr.Packets.CounterNames.Kebab(c.ToString());
                Assert.That(samples[$"fastxtr_mapserver_{name.Replace('-', '_')}_total"], Is.EqualTo(shown.RootElement.GetProperty(name).GetInt64()), name);
            }
            Assert.That(samples["fastxtr_mapserver_registrations"], Is.EqualTo(shown.RootElement.GetProperty("registrations").GetInt64()));
        }
        finally
        {
            server.Kill();
            server.WaitForExit(5000);
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// A Map-Server run as systemd runs it (NOTIFY_SOCKET set): READY=1 once it listens; SIGHUP reloads a changed file
    /// between RELOADING=1 and READY=1, keeping the registration of the untouched site; a broken file is refused with
    /// its line and the running configuration kept. Started under nohup, so with SIGHUP ignored from its start (the
    /// runtime does not deliver a signal ignored when its handler is registered: the role takes SIGHUP back first).
    /// </summary>
    [Test]
    public void MapServerProcess_Sighup_ReloadsTheFile_AndTellsSystemd()
    {
        var (dir, port) = Scratch("hup", 21000);
        string conf = Path.Combine(dir, "ms.conf"), sock = Path.Combine(dir, "ms.sock"), notifyPath = Path.Combine(dir, "notify");
        File.WriteAllText(conf, PlannersSite);
        using var notify = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Unspecified);
        notify.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(notifyPath));
        notify.ReceiveTimeout = 15_000;
        string NextNotification()
        {
            byte[] buffer = new byte[4096];
            return System.Text.Encoding.UTF8.GetString(buffer, 0, notify.Receive(buffer));
        }
        var psi = new ProcessStartInfo("nohup", [Exe(), "mapserver", "--config", conf, "--listen", $"127.0.0.1:{port}", "--control-socket", sock]) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment["NOTIFY_SOCKET"] = notifyPath;
        using var server = Process.Start(psi)!;
        var stdout = server.StandardOutput.ReadToEndAsync();
        var stderr = server.StandardError.ReadToEndAsync();
        try
        {
            Assert.That(NextNotification(), Does.StartWith("READY=1\nSTATUS=1 site(s), listening on 127.0.0.1:"));
            Assert.That(File.Exists(sock), Is.True, "READY comes after the control socket is open");
            var reg = new MapRegister { Nonce = 1, WantMapNotify = true, AlgorithmId = AuthenticationAlgorithm.HmacSha256, XtrIdPresent = true, XtrId = 0xabc };
            var rec = new MappingRecord { TtlMinutes = 1440, EidMaskLength = 32, EidPrefix = LispAddress.WithInstanceId(1000, LispAddress.Parse("10.1.0.5")) };
            rec.Locators.Add(new LocatorRecord(LispAddress.Parse("192.0.2.3"), 1, 100));
            reg.Records.Add(rec);
            using var udp = new System.Net.Sockets.UdpClient(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
            udp.Client.ReceiveTimeout = 3000;
            udp.Send(reg.ToSignedArray("s3cret"u8), new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port));
            var from = new System.Net.IPEndPoint(0, 0);
            Assert.That(LispMessage.PeekType(udp.Receive(ref from)), Is.EqualTo(LispMessageType.MapNotify));

            File.WriteAllText(conf, PlannersSite + "site edge\n  key 1 sha256 \"other\"\n  eid-prefix 4000 10.4.0.0/16\n");
            Signal(server, "HUP");
            Assert.That(NextNotification(), Does.StartWith("RELOADING=1\nMONOTONIC_USEC="));
            Assert.That(NextNotification(), Does.StartWith("READY=1"));
            var status = Run("show", "mapserver", "--control-socket", sock, "--json");
            using (var doc = System.Text.Json.JsonDocument.Parse(status.Out))
                Assert.That((doc.RootElement.GetProperty("config-reloads").GetInt64(), doc.RootElement.GetProperty("registrations").GetInt64()), Is.EqualTo((1L, 1L)), status.Out);

            File.WriteAllText(conf, PlannersSite + "site edge\n  key 1 sha256 \"other\"\n  eid-prefix 4000 10.4.0.0/33\n");
            Signal(server, "HUP");
            Assert.That(NextNotification(), Does.StartWith("RELOADING=1"));
            Assert.That(NextNotification(), Does.StartWith("READY=1"), "still running, on the configuration it had");
            var table = Run("show", "mapserver", "--control-socket", sock);
            Assert.That(table.Out, Does.Match(@"config-reloads-refused\s+1\n").And.Match(@"registrations\s+1\n"), table.Out);
            Assert.That(Run("show", "registrations", "--control-socket", sock).Out, Does.Contain("site planners  [1000] 10.1.0.5/32"));
        }
        finally
        {
            if (!server.HasExited) Signal(server, "TERM");
            if (!server.WaitForExit(10_000)) server.Kill();
            Directory.Delete(dir, recursive: true);
        }
        Assert.That(stdout.Result, Does.Contain("fastxtr mapserver: configuration reloaded: 1 site(s) unchanged; added edge; 0 registration(s) removed"));
        Assert.That(stderr.Result, Does.Contain($"fastxtr mapserver: error: configuration reload refused, the running configuration stays: {conf} line 7: "));
        Assert.That(server.ExitCode, Is.EqualTo(0), "SIGTERM stops it cleanly");
    }

    /// <summary>
    /// Started the way systemd starts it with StandardOutput=journal (JOURNAL_STREAM naming the stream the process
    /// writes to), each log line carries its syslog priority for the journal.
    /// </summary>
    [Test]
    public void MapServerProcess_WritingToTheJournal_PrefixesEachLineWithItsPriority()
    {
        var (dir, port) = Scratch("journal", 22000);
        string conf = Path.Combine(dir, "ms.conf"), log = Path.Combine(dir, "log");
        File.WriteAllText(conf, PlannersSite);
        // One file for both streams, as the journal's one socket; JOURNAL_STREAM names it by device and inode.
        string script = $"exec >'{log}' 2>&1; JOURNAL_STREAM=$(stat -L -c %d:%i '{log}') exec '{Exe()}' mapserver --config '{conf}' --listen 127.0.0.1:{port} --control-socket '{dir}/ms.sock'";
        using var server = Process.Start("sh", ["-c", script])!;
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(15);
            while ((!File.Exists(log) || !File.ReadAllText(log).Contains("listening", StringComparison.Ordinal)) && DateTime.UtcNow < deadline) Thread.Sleep(50);
            Assert.That(File.ReadAllText(log), Does.StartWith("<6>fastxtr mapserver: listening on 127.0.0.1:"));
        }
        finally
        {
            Signal(server, "TERM");
            if (!server.WaitForExit(10_000)) server.Kill();
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestCase("127.0.0.1", "--metrics 127.0.0.1: give a port (ADDR:PORT)")]
    [TestCase("nowhere:80", "'nowhere:80' is not ADDRESS[:PORT] (e.g. 127.0.0.1:4342 or [::1]:4342)")]
    public void MapServer_BadMetricsAddress_ExitsWithTheReason(string at, string expected)
    {
        string conf = Path.Combine(Path.GetTempPath(), $"fxtest-metrics-{Environment.ProcessId}.conf");
        File.WriteAllText(conf, "site x\n  key 0 sha256 \"a\"\n  eid-prefix 1000 10.1.0.0/16\n");
        try
        {
            int port = 40000 + Environment.ProcessId % 20000;
            var r = Run("mapserver", "--config", conf, "--listen", $"127.0.0.1:{port}", "--control-socket", conf + ".sock", "--metrics", at);
            Assert.That((r.Code, r.Err), Is.EqualTo((2, $"fastxtr mapserver: {expected}\n")));
        }
        finally
        {
            File.Delete(conf);
        }
    }

    [Test]
    public void MapServer_BadConfiguration_ExitsWithTheLine()
    {
        string conf = Path.Combine(Path.GetTempPath(), $"fxtest-bad-{Environment.ProcessId}.conf");
        File.WriteAllText(conf, "listen 127.0.0.1:4342\nsite x\n  key 0 sha999 \"a\"\n");
        try
        {
            var r = Run("mapserver", "--config", conf);
            Assert.That(r.Code, Is.EqualTo(2));
            Assert.That(r.Err, Does.Contain("line 3: algorithm 'sha999' is not sha1 or sha256"));
        }
        finally
        {
            File.Delete(conf);
        }
    }

    [TestCase("0,1", "--cpus lists 2 CPUs for 1 workers: give one per worker")]
    [TestCase("4096", "--cpus 4096: this machine has CPUs 0 .. ")]
    [TestCase("one", "--cpus 'one': expected a comma-separated list of CPU numbers")]
    public void MapServer_BadCpus_AreRefusedBeforeListening(string cpus, string expected)
    {
        string conf = Path.Combine(Path.GetTempPath(), $"fxtest-cpus-{Environment.ProcessId}.conf");
        File.WriteAllText(conf, "listen 127.0.0.1:0\nsite x\n  key 0 sha256 \"a\"\n  eid-prefix 1 10.0.0.0/8\n");
        try
        {
            var r = Run("mapserver", "--config", conf, "--workers", "1", "--cpus", cpus);
            Assert.That(r.Code, Is.EqualTo(2));
            Assert.That(r.Err, Does.Contain(expected));
        }
        finally
        {
            File.Delete(conf);
        }
    }
}
