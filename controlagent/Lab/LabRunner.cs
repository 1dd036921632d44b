using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;

namespace FastXtr.Lab;

public class LabException(string message) : Exception(message);

/// <summary>How the lab moves an agent between gateways (<c>--move-style</c>).</summary>
public enum MoveStyle { MakeBeforeBreak, BreakBeforeMake }

/// <summary>
/// Builds the lab in network namespaces, runs the demonstration scenario (see LabRunner.Scenario.cs) with live narration, and tears it all down.
/// Every fact in the summary comes from an observer other than the xTRs' own claims: the demo agents' counts, the
/// data planes' shared-memory counters and map-caches, and the underlay capture.
/// </summary>
public sealed partial class LabRunner : IDisposable
{
    private readonly LabTopology _t;
    private readonly TextWriter _out;
    private readonly string _exe;
    private readonly bool _quick;
    private readonly int _extraMoves;
    private readonly MoveStyle _style;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<Process> _processes = [];
    private Process? _capture;
    private readonly JsonArray _steps = [];
    private readonly JsonObject _figures = [];

    public LabRunner(LabTopology topology, TextWriter output, bool quick, int extraMoves = 0, MoveStyle style = MoveStyle.MakeBeforeBreak)
    {
        _style = style;
        if (extraMoves < 0 || extraMoves % 2 != 0) throw new LabException($"--extra-moves {extraMoves}: give an even number, so that B ends on gateway 3");
        _extraMoves = extraMoves;
        _t = topology;
        _out = output;
        _quick = quick;
        _exe = Environment.ProcessPath ?? throw new LabException("cannot tell where the fastxtr executable is");
    }

    public static string StyleName(MoveStyle s) => s == MoveStyle.MakeBeforeBreak ? "make-before-break" : "break-before-make";

    private void Say(string text) => _out.WriteLine($"[{_clock.Elapsed.TotalSeconds,6:F1}s] {text}");

    private Process Start(string ns, string logName, string arguments)
    {
        var p = StartLogged(_exe, ns, Path.Combine(_t.LogDir, logName + ".log"), arguments);
        _processes.Add(p);
        return p;
    }

    /// <summary>Starts <c>fastxtr ARGUMENTS</c> in namespace <paramref name="ns"/>, its output appended to <paramref name="log"/>.</summary>
    internal static Process StartLogged(string exe, string ns, string log, string arguments) =>
        Process.Start(new ProcessStartInfo("/bin/bash", ["-c", $"exec ip netns exec {ns} {exe} {arguments} >>{log} 2>&1"]))
        ?? throw new LabException($"cannot start {Path.GetFileNameWithoutExtension(log)}");

    internal static void WaitFor(Func<bool> condition, string what, int timeoutMs = 15_000)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.ElapsedMilliseconds > timeoutMs) throw new LabException($"timed out after {timeoutMs / 1000.0:F0} s waiting for {what}");
            Thread.Sleep(25);
        }
    }

    // ------------------------------------------------------------------ up

    public static void CheckPrerequisites()
    {
        if (Environment.UserName != "root" && !NativeInterop.Privileges.IsRoot)
            throw new LabException("the lab creates network namespaces and TUN devices: run it as root");
        if (Shell.Sh("command -v ip").Code != 0) throw new LabException("'ip' (iproute2) is not installed: apt-get install iproute2");
        if (!File.Exists("/dev/net/tun")) throw new LabException("/dev/net/tun is missing: the kernel needs TUN support (modprobe tun)");
    }

    public void Up()
    {
        CheckPrerequisites();
        Down(_t, _out, quiet: true);
        Directory.CreateDirectory(_t.LogDir);
        Directory.CreateDirectory(_t.ReportDir);
        foreach (var f in Directory.GetFiles(_t.ReportDir)) File.Delete(f);
        foreach (var f in Directory.GetFiles(_t.LogDir)) File.Delete(f);
        Say($"building the lab: {_t.AllNamespaces.Count()} network namespaces with prefix '{_t.Prefix}'");
        foreach (var ns in _t.AllNamespaces) Shell.Must($"ip netns add {ns} && ip -n {ns} link set lo up");
        // An agent linked to two gateways during a move takes packets from either link.
        foreach (var a in _t.Agents) Shell.Must($"ip netns exec {_t.Namespace(a)} sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0");
        Shell.Must($"ip -n {_t.Underlay} link add br0 type bridge && ip -n {_t.Underlay} link set br0 up");
        void Underlay(string ns, string name, string address)
        {
            Shell.Must($"ip -n {_t.Underlay} link add u-{name} type veth peer name ul0 netns {ns}");
            Shell.Must($"ip -n {_t.Underlay} link set u-{name} master br0 up");
            Shell.Must($"ip -n {ns} addr add {address}/24 dev ul0 && ip -n {ns} link set ul0 up");
        }
        Underlay(_t.MapServer, "ms", LabTopology.MapServerRloc);
        for (int g = 1; g <= 3; g++) Underlay(_t.Nat && g == 3 ? _t.NatRouter : _t.Gateway(g), $"gw{g}", LabTopology.GatewayRloc(g));
        if (_t.Nat) NatUp(Underlay);

        if (Shell.Sh("command -v tcpdump").Code == 0)
        {
            // --immediate-mode: without it libpcap hands packets over a ring block at a time (a block is given up after
            // up to a second), and the block still open when tcpdump is stopped is lost: the run's last 0.5-0.8 s
            // (500-800 packets: "captured" short of "received by filter" in tcpdump.log), step 4 included.
            var p = Process.Start(new ProcessStartInfo("/bin/bash", ["-c", $"exec ip netns exec {_t.Underlay} tcpdump -i br0 --immediate-mode -U -n -w {_t.Pcap} udp port 4341 or udp port 4342 >>{Path.Combine(_t.LogDir, "tcpdump.log")} 2>&1"]))!;
            _capture = p;
            WaitFor(() => File.Exists(_t.Pcap), "tcpdump to start", 5000);
        }
        else Say("tcpdump is not installed: no underlay capture (apt-get install tcpdump)");

        File.WriteAllText(Path.Combine(_t.OutDir, "mapserver.conf"), $"""
            # The lab's Map-Server/Map-Resolver: one site for the three gateways, both agent groups.
            listen {LabTopology.MapServerRloc}:4342
            registration-timeout 180
            control-socket /run/fastxtr/{_t.Prefix}-ms.sock
            {(_t.Nat ? $"rtr {LabTopology.RtrRloc}" : "# (with --nat: rtr 192.0.2.20)")}
            site lab
              key 0 sha256 "{LabTopology.Secret}"
              eid-prefix 1000 10.1.0.0/16 accept-more-specifics
              eid-prefix 2000 10.1.0.0/16 accept-more-specifics
              proxy-reply
            """);
        Start(_t.MapServer, "mapserver", $"mapserver --config {Path.Combine(_t.OutDir, "mapserver.conf")}");

        for (int g = 1; g <= 3; g++)
        {
            string gw = _t.Gateway(g);
            Shell.Must($"ip netns exec {gw} sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.all.send_redirects=0");
            Start(gw, $"gw{g}-dataplane", $"dataplane --rloc-addr {_t.OwnRloc(g)} --instance 1000=lisp1000 --instance 2000=lisp2000 --shm {_t.Shm(g)} --workers 1");
        }
        for (int g = 1; g <= 3; g++)
        {
            string gw = _t.Gateway(g);
            WaitFor(() => Shell.Sh($"ip -n {gw} link show lisp1000 && ip -n {gw} link show lisp2000").Code == 0, $"gateway {g}'s TUNs (see {_t.LogDir}/gw{g}-dataplane.log)");
            foreach (uint iid in LabTopology.InstanceIds)
            {
                Shell.Must($"ip -n {gw} link set lisp{iid} up && ip -n {gw} route add 10.1.0.0/16 dev lisp{iid} table {iid}");
                Shell.Must($"ip -n {gw} rule add iif lisp{iid} lookup {iid}");
            }
            File.WriteAllText(Path.Combine(_t.OutDir, $"gw{g}-agent.conf"), $"""
                # Gateway {g}'s control agent. Its agents attach through the API; nothing is configured statically.
                rloc-addr {_t.OwnRloc(g)}
                shm {_t.Shm(g)}
                map-server {LabTopology.MapServerRloc} 0 sha256 "{LabTopology.Secret}"
                map-resolver {LabTopology.MapServerRloc}
                site-id {g}
                api-socket {_t.ApiSocket(g)}
                rloc-probe-interval 5
                {(_t.Nat && g == 3 ? "nat-traversal on\nnat-keepalive 5" : "")}
                """);
            Start(gw, $"gw{g}-agent", $"agent --config {Path.Combine(_t.OutDir, $"gw{g}-agent.conf")}");
        }
        for (int g = 1; g <= 3; g++)
        {
            int n = g;
            WaitFor(() => File.Exists(_t.ApiSocket(n)) && Api(n, HttpMethod.Get, "/v1/status", null).Status == 200, $"gateway {g}'s agent API (see {_t.LogDir}/gw{g}-agent.log)");
        }

        foreach (var a in _t.Agents)
        {
            Link(a, a.Gateway);
            var (status, body) = Attach(a, a.Gateway);
            if (status != 201) throw new LabException($"attaching {a.Name} to gateway {a.Gateway} failed ({status}): {body?.ToJsonString()}");
        }
        if (_t.Nat)
        {
            // Gateway 3 finds it is behind NAT, registers the RTR for its agents and tells the RTR their binding.
            int behind = _t.Agents.Count(a => a.Gateway == 3);
            WaitFor(() => Api(3, HttpMethod.Get, "/v1/status", null).Body?["through_rtrs"]?.AsArray().Count > 0, $"gateway 3 to find it is behind NAT (see {_t.LogDir}/gw3-agent.log)");
            WaitFor(() => RtrBindings() >= behind, $"the RTR to learn gateway 3's {behind} agents (see {_t.LogDir}/rtr.log)");
        }
        Say($"up: Map-Server, 3 gateways (data plane + agent each){(_t.Nat ? ", gateway 3 behind NAT through the RTR" : "")}, {_t.Agents.Count} agents attached through the local API");
    }

    /// <summary>
    /// --nat: gateway 3 on a private link to PREFIX-nat (10.200.0.0/24), which masquerades it as 192.0.2.3 on the
    /// underlay (nftables), and <c>fastxtr rtr</c> in PREFIX-rtr at 192.0.2.20 for the agent groups' EIDs.
    /// </summary>
    private void NatUp(Action<string, string, string> underlay)
    {
        if (Shell.Sh("command -v nft").Code != 0) throw new LabException("--nat masquerades gateway 3 with nftables: apt-get install nftables");
        string nat = _t.NatRouter, gw3 = _t.Gateway(3);
        Shell.Must($"ip -n {nat} link add in0 type veth peer name ul0 netns {gw3}");
        Shell.Must($"ip -n {nat} addr add {LabTopology.NatInsideRouter}/24 dev in0 && ip -n {nat} link set in0 up");
        Shell.Must($"ip -n {gw3} addr add {LabTopology.NatInsideRloc}/24 dev ul0 && ip -n {gw3} link set ul0 up && ip -n {gw3} route add default via {LabTopology.NatInsideRouter}");
        Masquerade(nat, "ul0");
        underlay(_t.RtrNamespace, "rtr", LabTopology.RtrRloc);
        File.WriteAllText(Path.Combine(_t.OutDir, "rtr.conf"), $"""
            # The lab's RTR: the agent groups' xTRs behind NAT authenticate with the site's key.
            rloc-addr {LabTopology.RtrRloc}
            shm {_t.RtrShm}
            api-socket {_t.RtrApiSocket}
            map-resolver {LabTopology.MapServerRloc}
            rloc-probe-interval 5
            nat-site 1000 10.1.0.0/16 0 sha256 "{LabTopology.Secret}"
            nat-site 2000 10.1.0.0/16 0 sha256 "{LabTopology.Secret}"
            """);
        Start(_t.RtrNamespace, "rtr", $"rtr --config {Path.Combine(_t.OutDir, "rtr.conf")}");
        WaitFor(() => File.Exists(_t.RtrApiSocket), $"the RTR's API (see {_t.LogDir}/rtr.log)");
    }

    /// <summary>Makes <paramref name="ns"/> a NAT router: it forwards, and masquerades (nftables) what leaves through <paramref name="outside"/>.</summary>
    public static void Masquerade(string ns, string outside)
    {
        Shell.Must($"ip netns exec {ns} sysctl -qw net.ipv4.ip_forward=1");
        Shell.Must($"ip netns exec {ns} nft add table ip nat");
        Shell.Must($"ip netns exec {ns} nft add chain ip nat post '{{ type nat hook postrouting priority 100 ; }}'");
        Shell.Must($"ip netns exec {ns} nft add rule ip nat post oifname {outside} masquerade");
    }

    /// <summary>--nat: how many bindings of xTRs behind NAT the RTR holds.</summary>
    private int RtrBindings() =>
        FastXtr.Common.Api.UnixSocketClient.Send(_t.RtrApiSocket, HttpMethod.Get, "/v1/status").Body?["rtr_bindings"]?.AsArray().Count ?? 0;

    /// <summary>
    /// Connects an agent's namespace to a gateway: a veth, the EID on lo (so re-linking never touches the agent's
    /// sockets), a default route to the gateway's link address 169.254.1.1 (the same on every gateway, so a moved agent
    /// needs no new configuration), and the EID in the gateway's table for the agent's IID.
    /// </summary>
    private void Link(LabAgent a, int gateway, bool defaultRoute = true)
    {
        string ns = _t.Namespace(a), gw = _t.Gateway(gateway), dev = AgentSide(gateway);
        if (Shell.Sh($"ip -n {ns} addr show dev lo | grep -q ' {a.Eid}/32'").Code != 0) Shell.Must($"ip -n {ns} addr add {a.Eid}/32 dev lo");
        Shell.Must($"ip -n {gw} link add {a.Interface} type veth peer name {dev} netns {ns}");
        Shell.Must($"ip -n {gw} addr add {LinkAddress}/32 dev {a.Interface} && ip -n {gw} link set {a.Interface} up && ip netns exec {gw} sysctl -qw net.ipv4.conf.{a.Interface}.rp_filter=0");
        Shell.Must($"ip -n {ns} link set {dev} up" + (defaultRoute ? $" && ip -n {ns} route replace default via {LinkAddress} dev {dev} onlink src {a.Eid}" : ""));
        Shell.Must($"ip -n {gw} route add {a.Eid}/32 dev {a.Interface} table {a.InstanceId} && ip -n {gw} rule add iif {a.Interface} lookup {a.InstanceId}");
    }

    /// <summary>The agent's end of its link to a gateway: one name per gateway, so that it can be linked to two at once.</summary>
    private static string AgentSide(int gateway) => $"gw{gateway}";

    private void RouteVia(LabAgent a, int gateway) =>
        Shell.Must($"ip -n {_t.Namespace(a)} route replace default via {LinkAddress} dev {AgentSide(gateway)} onlink src {a.Eid}");

    private int InterfaceIndex(LabAgent a, int gateway) =>
        int.Parse(Shell.Must($"ip netns exec {_t.Namespace(a)} cat /sys/class/net/{AgentSide(gateway)}/ifindex").Trim(), CultureInfo.InvariantCulture);

    /// <summary>The gateway's address on every agent link.</summary>
    private const string LinkAddress = "169.254.1.1";

    private void Unlink(LabAgent a, int gateway)
    {
        string gw = _t.Gateway(gateway);
        Shell.Sh($"ip -n {gw} rule del iif {a.Interface} lookup {a.InstanceId}");
        Shell.Must($"ip -n {gw} link del {a.Interface}"); // takes the peer and the routes with it
    }

    private (int Status, JsonNode? Body) Attach(LabAgent a, int gateway)
    {
        var body = new JsonObject { ["name"] = a.Name, ["iid"] = a.InstanceId, ["eid"] = a.Eid };
        if (a.Attributes is not null) body["attributes"] = JsonNode.Parse(a.Attributes);
        if (a.Constraints is not null) body["constraints"] = JsonNode.Parse(a.Constraints);
        return Api(gateway, HttpMethod.Post, "/v1/agents", body.ToJsonString());
    }

    private (int Status, JsonNode? Body) Api(int gateway, HttpMethod method, string path, string? json) =>
        FastXtr.Common.Api.UnixSocketClient.Send(_t.ApiSocket(gateway), method, path, json);

    // ------------------------------------------------------------------ observation

    private JsonNode ReportOf(string agent)
    {
        string path = _t.Report(_t.Agent(agent));
        for (int attempt = 0; attempt < 50; attempt++)
        {
            try { if (File.Exists(path)) return JsonNode.Parse(File.ReadAllText(path))!; }
            catch (Exception e) when (e is IOException or System.Text.Json.JsonException) { }
            Thread.Sleep(20);
        }
        throw new LabException($"demo agent {agent} wrote no report at {path} (see {_t.LogDir}/agent-{agent}.log)");
    }

    private long Received(string agent, string sender) => ReportOf(agent)["datagrams_by_sender"]![sender]?.GetValue<long>() ?? 0;

    private ulong Counter(int gateway, Counter c)
    {
        using var r = SharedRegion.Attach(_t.Shm(gateway));
        ulong sum = 0;
        for (int w = 0; w < r.Sizes.Workers; w++) sum += r.Counters(w)[c];
        return sum;
    }

    /// <summary>
    /// Where gateway <paramref name="gateway"/>'s data plane sends a packet from <paramref name="source"/> to
    /// <paramref name="eid"/> (the lookup under the source's profile, as the workers do), or the negative action.
    /// </summary>
    private string CacheView(int gateway, uint iid, string source, string eid)
    {
        using var r = SharedRegion.Attach(_t.Shm(gateway));
        if (!r.MapCache.TryLookupFromSource(iid, EidFamily.Ipv4, Ipv4Header.ToUInt32(IPAddress.Parse(source)), Ipv4Header.ToUInt32(IPAddress.Parse(eid)), out _, out var e)) return "none";
        if (e.IsNegative) return $"negative {e.Action}";
        return string.Join(",", Enumerable.Range(0, e.RlocCount).Select(i => Ipv4Header.ToAddress((uint)e.Rlocs[i].Address).ToString()));
    }

    private JsonObject SendFrom(string agent, string to, int count, int intervalMs = 10)
    {
        var a = _t.Agent(agent);
        var sent = Shell.Sh($"ip netns exec {_t.Namespace(a)} {_exe} lab send --from {agent} --to {to}:{DemoAgent.DatagramPort} --count {count} --interval-ms {intervalMs}", 60_000);
        if (sent.Code != 0) throw new LabException($"lab send from {agent} failed: {sent.All}");
        return JsonNode.Parse(sent.Out)!.AsObject();
    }

    private void Step(int number, string name, bool pass, JsonObject facts, string figure)
    {
        facts["pass"] = pass;
        _steps.Add(new JsonObject { ["step"] = number, ["name"] = name, ["pass"] = pass, ["figure"] = figure, ["facts"] = facts });
        Say($"step {number} {(pass ? "PASS" : "FAIL")}: {figure}");
    }

    // ------------------------------------------------------------------ down

    public void Dispose()
    {
        Stop(_processes);
        // The capture last, once nothing sends any more and it has written what it was given: stopped while behind
        // (a loaded machine), it would lose what still waits in its ring.
        if (_capture is not null)
        {
            DrainCapture(_capture);
            Stop([_capture]);
        }
        Down(_t, _out, quiet: true);
    }

    /// <summary>
    /// Waits (at most 10 s) until tcpdump has captured every packet the kernel passed it: its counts, which it writes to
    /// tcpdump.log on SIGUSR1, are equal. Returns at once when tcpdump is gone or has no log (teardown goes on).
    /// </summary>
    private void DrainCapture(Process capture)
    {
        string log = Path.Combine(_t.LogDir, "tcpdump.log");
        for (int i = 0; i < 100 && !capture.HasExited && File.Exists(log); i++)
        {
            Shell.Sh($"kill -USR1 {capture.Id} 2>/dev/null");
            Thread.Sleep(100);
            var counts = CaptureCounts().Matches(File.ReadAllText(log));
            if (counts.Count > 0 && counts[^1].Groups[1].Value == counts[^1].Groups[2].Value) return;
        }
    }

    [GeneratedRegex(@"(\d+) packets captured, (\d+) packets received by filter")]
    private static partial Regex CaptureCounts();

    private static void Stop(List<Process> processes)
    {
        foreach (var p in processes)
        {
            try { if (!p.HasExited) Shell.Sh($"kill -TERM {p.Id} 2>/dev/null"); }
            catch (InvalidOperationException) { }
        }
        foreach (var p in processes)
        {
            try { if (!p.WaitForExit(3000)) p.Kill(entireProcessTree: true); }
            catch (InvalidOperationException) { }
            p.Dispose();
        }
    }

    /// <summary>Stops what runs in namespace <paramref name="ns"/> (TERM, then KILL) and deletes it; false when there was none.</summary>
    internal static bool RemoveNamespace(string ns)
    {
        if (Shell.Sh($"ip netns list | grep -qw '^{ns}'").Code != 0) return false;
        Shell.Sh($"pids=$(ip netns pids {ns}); [ -n \"$pids\" ] && kill -TERM $pids; sleep 0.2; pids=$(ip netns pids {ns}); [ -n \"$pids\" ] && kill -KILL $pids; true");
        Shell.Sh($"ip netns del {ns}");
        return true;
    }

    /// <summary>Removes every namespace, process, region and socket of a lab with this prefix, running or left by a killed run.</summary>
    public static int Down(LabTopology t, TextWriter output, bool quiet)
    {
        int removed = t.AllNamespaces.Count(RemoveNamespace);
        for (int g = 1; g <= 3; g++)
        {
            NativeInterop.SharedMemoryMapping.Unlink(t.Shm(g));
            if (File.Exists(t.ApiSocket(g))) File.Delete(t.ApiSocket(g));
        }
        NativeInterop.SharedMemoryMapping.Unlink(t.RtrShm);
        if (File.Exists(t.RtrApiSocket)) File.Delete(t.RtrApiSocket);
        if (!quiet) output.WriteLine($"fastxtr lab down: removed {removed} namespace(s) of lab '{t.Prefix}' and its shared memory");
        return removed;
    }
}
