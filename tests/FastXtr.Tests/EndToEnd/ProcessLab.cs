using System.Diagnostics;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.EndToEnd;

/// <summary>
/// Network namespaces and real <c>fastxtr</c> processes for an end-to-end test: a tag unique to this run, namespaces
/// named <c>fxt&lt;role&gt;-PID-TAG</c> (roles the leftover sweep knows: a, b, c, d, a2, b2, ha, hb), a scratch directory,
/// processes started in the namespaces, and <see cref="Dispose"/> removing all of it — the processes, the namespaces,
/// the agents' regions (<see cref="Shm"/>) and API sockets, the directory — even when the test failed.
/// </summary>
public sealed class ProcessLab : IDisposable
{
    private readonly string[] _roles;

    public string Tag { get; }
    public string Dir { get; }
    public List<Process> Processes { get; } = [];

    /// <param name="what">A word for the scratch directory's name.</param>
    /// <param name="roles">The namespaces to create, by role.</param>
    public ProcessLab(string what, params string[] roles)
    {
        Shell.RequireRoot("needs root for network namespaces");
        TwoXtrLab.SweepLeftovers();
        Tag = $"{Environment.ProcessId}-{Random.Shared.Next(0x10000):x4}";
        _roles = roles;
        Dir = Path.Combine(Path.GetTempPath(), $"fxtest-{what}-{Tag}");
        Directory.CreateDirectory(Dir);
        foreach (var role in roles) Shell.Must($"ip netns add {Ns(role)} && ip -n {Ns(role)} link set lo up");
    }

    public string Ns(string role) => $"fxt{role}-{Tag}";

    /// <summary>The shared-memory region of xTR <paramref name="x"/> (a name the sweep knows), and so its agent's API socket.</summary>
    public string Shm(string x) => $"fxtest-ag{x}-{Tag}";

    public string AgentApiSocket(string x) => $"/run/fastxtr/agent-{Shm(x)}.sock";

    /// <summary>
    /// A bridge br0 in <paramref name="bridgeNs"/> and, for member i (from 1), a veth fxu&lt;i&gt;&lt;tag&gt; in its
    /// namespace with the given addresses (CIDR; IPv6 ones without duplicate address detection) whose peer
    /// fxp&lt;i&gt;&lt;tag&gt; is a port of the bridge.
    /// </summary>
    public void Bridge(string bridgeNs, params (string Ns, string[] Addresses)[] members)
    {
        Shell.Must($"ip -n {bridgeNs} link add br0 type bridge && ip -n {bridgeNs} link set br0 up");
        string t = Tag[^4..];
        for (int i = 1; i <= members.Length; i++)
        {
            var (ns, addresses) = members[i - 1];
            Shell.Must($"ip link add fxu{i}{t} netns {ns} type veth peer name fxp{i}{t} netns {bridgeNs}");
            Shell.Must($"ip -n {bridgeNs} link set fxp{i}{t} master br0 && ip -n {bridgeNs} link set fxp{i}{t} up");
            foreach (var address in addresses) Shell.Must($"ip -n {ns} addr add {address} dev fxu{i}{t}{(address.Contains(':', StringComparison.Ordinal) ? " nodad" : "")}");
            Shell.Must($"ip -n {ns} link set fxu{i}{t} up");
        }
    }

    public void Launch(string ns, params string[] args) => Processes.Add(Shell.StartInNamespace(ns, args));

    /// <summary>Makes <paramref name="ns"/> a NAT router, as the lab's --nat does (<see cref="FastXtr.Lab.LabRunner.Masquerade"/>).</summary>
    public static void Masquerade(string ns, string outside) => FastXtr.Lab.LabRunner.Masquerade(ns, outside);

    /// <summary>The running process of <paramref name="command"/> (agent, dataplane...) in <paramref name="ns"/>.</summary>
    public Process Running(string command, string ns) =>
        Processes.Single(p => !p.HasExited && p.StartInfo.ArgumentList.Contains(command) && p.StartInfo.ArgumentList.Contains(ns));

    /// <summary>GET /v1/status of xTR <paramref name="x"/>'s agent, or null while its API is not listening (yet).</summary>
    public System.Text.Json.Nodes.JsonNode? AgentStatus(string x) =>
        FastXtr.Common.Api.UnixSocketClient.Send(AgentApiSocket(x), HttpMethod.Get, "/v1/status").Body;

    /// <summary>One of xTR <paramref name="x"/>'s agent counters, -1 when it does not answer.</summary>
    public long AgentCounter(string x, string name) => AgentStatus(x)?["counters"]?[name]?.GetValue<long>() ?? -1;

    public static FastXtr.Lab.Shell.Result Ping(string ns, string from, string to, int count, double interval) =>
        Shell.Run("ip", ["netns", "exec", ns, "ping", "-n", "-c", $"{count}", "-i", interval.ToString(System.Globalization.CultureInfo.InvariantCulture), "-W", "1", "-I", from, to], 60_000);

    public static int Received(FastXtr.Lab.Shell.Result ping) =>
        int.Parse(System.Text.RegularExpressions.Regex.Match(ping.Out, @"(\d+) received").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

    public void Dispose()
    {
        foreach (var p in Processes)
        {
            try { if (!p.HasExited) { p.Kill(entireProcessTree: true); p.WaitForExit(5000); } }
            catch (InvalidOperationException) { }
            p.Dispose();
        }
        foreach (var role in _roles) Shell.Run("ip", ["netns", "del", Ns(role)]);
        foreach (var x in new[] { "a", "b", "c", "d" })
        {
            FastXtr.NativeInterop.SharedMemoryMapping.Unlink(Shm(x));
            File.Delete(AgentApiSocket(x)); // the agents were killed: nobody else removes it
        }
        if (Directory.Exists(Dir)) Directory.Delete(Dir, recursive: true);
    }
}
