using System.Diagnostics;
using System.Text.RegularExpressions;
using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.EndToEnd;

/// <summary>
/// Two xTRs in network namespaces joined by a veth underlay (192.0.2.1 and 192.0.2.2), each running the real
/// <c>out/fastxtr dataplane</c> with two agent groups: IID 1000 on TUN fx1000 in the xTR's namespace, IID 2000 on
/// TUN fx2000 moved into a tenant namespace, with the same EIDs (10.1.0.1 behind A, 10.2.0.1 behind B). The
/// map-caches are written through the writer API from this process. Names carry this process's id and a random
/// tag; everything is removed on Dispose, and leftovers of killed runs are swept first. With an IPv6 or mixed
/// <see cref="LabUnderlay"/> the xTRs' RLOCs are fd00:2::1 and fd00:2::2 (see there), and IID 1000 carries IPv6 EIDs
/// as well (fd10:1::1 behind A, fd10:2::1 behind B).
/// </summary>
public sealed class TwoXtrLab : IDisposable
{
    public const uint RlocA = 0xC0000201, RlocB = 0xC0000202;
    public static readonly UInt128 Rloc6A = Ipv6("fd00:2::1"), Rloc6B = Ipv6("fd00:2::2");
    private static UInt128 Ipv6(string a) => FastXtr.Packets.Ipv6Header.ToUInt128(System.Net.IPAddress.Parse(a));
    private static readonly Regex Ours = new(@"^fxt(a|b|c|d|a2|b2|ha|hb)-(\d+)-[0-9a-f]{4}$");
    private readonly List<Process> _dataplanes = [];
    public string Tag { get; }
    public string A { get; }
    public string B { get; }
    public string A2 { get; }
    public string B2 { get; }
    public string ShmA { get; }
    public string ShmB { get; }
    public string VethA { get; }
    public string VethB { get; }

    private readonly string[] _dataplaneArgs;
    public LabUnderlay Underlay { get; }

    /// <param name="dataplaneArgs">More `fastxtr dataplane` arguments for both xTRs, e.g. --offload on.</param>
    public TwoXtrLab(params string[] dataplaneArgs) : this(LabUnderlay.Ipv4, dataplaneArgs)
    {
    }

    public TwoXtrLab(LabUnderlay underlay, params string[] dataplaneArgs)
    {
        Underlay = underlay;
        _dataplaneArgs = dataplaneArgs;
        SweepLeftovers();
        Tag = $"{Environment.ProcessId}-{Random.Shared.Next(0x10000):x4}";
        (A, B, A2, B2) = ($"fxta-{Tag}", $"fxtb-{Tag}", $"fxta2-{Tag}", $"fxtb2-{Tag}");
        (ShmA, ShmB) = ($"fxtest-a-{Tag}", $"fxtest-b-{Tag}");
        string t = Tag[^4..];
        (VethA, VethB) = ($"fxva{t}", $"fxvb{t}");
        try
        {
            Build();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void Build()
    {
        foreach (var ns in new[] { A, B, A2, B2 }) Shell.Must($"ip netns add {ns} && ip -n {ns} link set lo up");
        Shell.Must($"ip link add {VethA} netns {A} type veth peer name {VethB} netns {B}");
        bool v4A = Underlay != LabUnderlay.Ipv6, v6A = Underlay == LabUnderlay.Ipv6, v4B = Underlay != LabUnderlay.Ipv6, v6B = Underlay != LabUnderlay.Ipv4;
        if (v4A) Shell.Must($"ip -n {A} addr add 192.0.2.1/24 dev {VethA}");
        if (v6A) Shell.Must($"ip -n {A} addr add fd00:2::1/64 dev {VethA} nodad");
        if (v4B) Shell.Must($"ip -n {B} addr add 192.0.2.2/24 dev {VethB}");
        if (v6B) Shell.Must($"ip -n {B} addr add fd00:2::2/64 dev {VethB} nodad");
        Shell.Must($"ip -n {A} link set {VethA} up && ip -n {B} link set {VethB} up");
        StartDataplane(A, [.. v4A ? new[] { "192.0.2.1" } : [], .. v6A ? new[] { "fd00:2::1" } : []], ShmA);
        StartDataplane(B, [.. v4B ? new[] { "192.0.2.2" } : [], .. v6B ? new[] { "fd00:2::2" } : []], ShmB);
        foreach (var (ns, tenant, eid, peer) in new[] { (A, A2, "10.1.0.1", "10.2.0.0/24"), (B, B2, "10.2.0.1", "10.1.0.0/24") })
        {
            WaitFor(() => Shell.Sh($"ip -n {ns} link show fx1000 && ip -n {ns} link show fx2000").Code == 0, $"the TUNs of {ns}");
            // The data plane keeps its file descriptor when its TUN moves to the tenant's namespace.
            Shell.Must($"ip -n {ns} link set fx2000 netns {tenant}");
            Shell.Must($"ip -n {ns} addr add {eid}/32 dev fx1000 && ip -n {ns} link set fx1000 up && ip -n {ns} route add {peer} dev fx1000");
            Shell.Must($"ip -n {tenant} addr add {eid}/32 dev fx2000 && ip -n {tenant} link set fx2000 up && ip -n {tenant} route add {peer} dev fx2000");
            if (Underlay != LabUnderlay.Ipv4)
            {
                var (eid6, peer6) = ns == A ? ("fd10:1::1", "fd10:2::/64") : ("fd10:2::1", "fd10:1::/64");
                Shell.Must($"ip -n {ns} addr add {eid6}/128 dev fx1000 nodad && ip -n {ns} route add {peer6} dev fx1000");
            }
        }
        // Where A sends B's EIDs, where B sends A's: the locators each lists (IPv6 first where the peer has one), at the
        // data port both data planes were given (--port), when not 4341.
        int at = Array.IndexOf(_dataplaneArgs, "--port");
        ushort port = at >= 0 ? ushort.Parse(_dataplaneArgs[at + 1], System.Globalization.CultureInfo.InvariantCulture) : (ushort)0;
        RlocSpec[] toB = Underlay switch
        {
            LabUnderlay.Ipv6 => [new RlocSpec(EidFamily.Ipv6, Rloc6B, 1, 100, Port: port)],
            LabUnderlay.Mixed => [new RlocSpec(EidFamily.Ipv6, Rloc6B, 1, 100, Port: port), new RlocSpec(EidFamily.Ipv4, RlocB, 2, 100, Port: port)],
            _ => [new RlocSpec(EidFamily.Ipv4, RlocB, 1, 100, Port: port)],
        };
        RlocSpec[] toA = Underlay == LabUnderlay.Ipv6 ? [new RlocSpec(EidFamily.Ipv6, Rloc6A, 1, 100, Port: port)] : [new RlocSpec(EidFamily.Ipv4, RlocA, 1, 100, Port: port)];
        using (var a = SharedRegion.Attach(ShmA))
        {
            using var w = a.CreateWriter();
            w.Upsert(new MapCacheEntrySpec(1000, 0, EidFamily.Ipv4, 0x0A020000, 24, toB));
            w.Upsert(new MapCacheEntrySpec(2000, 0, EidFamily.Ipv4, 0x0A020000, 24, toB));
            if (Underlay != LabUnderlay.Ipv4) w.Upsert(new MapCacheEntrySpec(1000, 0, EidFamily.Ipv6, Ipv6("fd10:2::"), 64, toB));
        }
        using (var b = SharedRegion.Attach(ShmB))
        {
            using var w = b.CreateWriter();
            w.Upsert(new MapCacheEntrySpec(1000, 0, EidFamily.Ipv4, 0x0A010000, 24, toA));
            w.Upsert(new MapCacheEntrySpec(2000, 0, EidFamily.Ipv4, 0x0A010000, 24, toA));
            if (Underlay != LabUnderlay.Ipv4) w.Upsert(new MapCacheEntrySpec(1000, 0, EidFamily.Ipv6, Ipv6("fd10:1::"), 64, toA));
        }
    }

    private void StartDataplane(string ns, string[] rlocs, string shm) =>
        _dataplanes.Add(Shell.StartInNamespace(ns, ["dataplane", .. rlocs.SelectMany(r => new[] { "--rloc-addr", r }), "--instance", "1000=fx1000", "--instance", "2000=fx2000", "--shm", shm, "--map-cache-entries", "1024", .. _dataplaneArgs]));

    public static void WaitFor(Func<bool> condition, string what, int timeoutMs = 15_000) => Poll.Until(condition, what, timeoutMs);

    // A lab used after Dispose runs commands in namespaces that are gone: refuse it instead of failing obscurely.
    private bool _disposed;

    public FastXtr.Lab.Shell.Result Exec(string ns, string command, int timeoutMs = 30_000)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return Shell.Run("ip", ["netns", "exec", ns, "bash", "-c", command], timeoutMs);
    }

    public ulong Counter(string shm, Counter c)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return ReadCounter(shm, c);
    }

    /// <summary>A counter summed over every worker of the data plane on region <paramref name="shm"/>.</summary>
    public static ulong ReadCounter(string shm, Counter c)
    {
        using var r = SharedRegion.Attach(shm);
        ulong sum = 0;
        for (int w = 0; w < r.Sizes.Workers; w++) sum += r.Counters(w)[c];
        return sum;
    }

    public ulong TunRxPackets(string ns, string tun) => ulong.Parse(Exec(ns, $"cat /sys/class/net/{tun}/statistics/rx_packets").Out.Trim(), System.Globalization.CultureInfo.InvariantCulture);

    public void Dispose()
    {
        _disposed = true;
        foreach (var p in _dataplanes)
        {
            try
            {
                if (!p.HasExited)
                {
                    Shell.Sh($"kill -TERM {p.Id} 2>/dev/null; pkill -TERM -P {p.Id} 2>/dev/null");
                    if (!p.WaitForExit(5000)) p.Kill(entireProcessTree: true);
                }
            }
            catch (InvalidOperationException) { }
            p.Dispose();
        }
        foreach (var ns in new[] { A, B, A2, B2 }) if (ns is not null) Shell.Sh($"ip netns del {ns} 2>/dev/null");
        foreach (var shm in new[] { ShmA, ShmB }) if (shm is not null) FastXtr.NativeInterop.SharedMemoryMapping.Unlink(shm);
    }

    /// <summary>Removes namespaces and regions that a killed earlier run (whose process is gone) left behind.</summary>
    public static void SweepLeftovers()
    {
        foreach (var line in Shell.Sh("ip netns list").Out.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string name = line.Split(' ')[0];
            var m = Ours.Match(name);
            if (m.Success && !Directory.Exists($"/proc/{m.Groups[2].Value}")) Shell.Sh($"ip netns del {name}");
        }
        foreach (var file in Directory.GetFiles("/dev/shm", "fxtest-*"))
        {
            var parts = Path.GetFileName(file).Split('-');
            if (parts.Length >= 4 && !Directory.Exists($"/proc/{parts[2]}")) File.Delete(file);
        }
        // API sockets of killed agents: agent-fxtest-agX-PID-TAG.sock
        if (Directory.Exists("/run/fastxtr"))
            foreach (var file in Directory.GetFiles("/run/fastxtr", "agent-fxtest-*.sock"))
            {
                var parts = Path.GetFileName(file).Split('-');
                if (parts.Length >= 5 && !Directory.Exists($"/proc/{parts[3]}")) File.Delete(file);
            }
    }
}

/// <summary>The underlay of a <see cref="TwoXtrLab"/>.</summary>
public enum LabUnderlay
{
    /// <summary>192.0.2.1 and 192.0.2.2.</summary>
    Ipv4,
    /// <summary>IPv6 only: fd00:2::1 and fd00:2::2, and no IPv4 address on the underlay.</summary>
    Ipv6,
    /// <summary>A has IPv4 only (192.0.2.1); B has both (192.0.2.2 and fd00:2::2), and A's map-cache lists B's IPv6 locator first.</summary>
    Mixed,
}
