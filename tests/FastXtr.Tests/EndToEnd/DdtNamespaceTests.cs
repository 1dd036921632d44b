using System.Diagnostics;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.EndToEnd;

/// <summary>
/// A DDT tree of real <c>fastxtr mapserver</c> processes in a namespace of its own (each on port 4342 of its own
/// loopback address, as referrals carry addresses only): a root node delegating 10.1.0.0/16 to a DDT Map-Server,
/// and a Map-Resolver with the root as its ddt-root. <c>fastxtr lig</c> asks the Map-Resolver, <c>fastxtr show
/// referral-cache</c> shows what it learned, and <c>fastxtr lig --trace</c> walks the tree itself.
/// </summary>
[TestFixture]
[NonParallelizable]
public class DdtNamespaceTests
{
    private string _ns = "", _dir = "";
    private readonly List<Process> _servers = [];

    [OneTimeSetUp]
    public void Start()
    {
        Shell.RequireRoot("the DDT tree runs in a network namespace");
        _ns = $"fxddt-{Environment.ProcessId}-{Random.Shared.Next(0x10000):x4}";
        _dir = Directory.CreateTempSubdirectory("fxddt-").FullName;
        try
        {
            Shell.Must($"ip netns add {_ns} && ip -n {_ns} link set lo up");
            File.WriteAllText(Path.Combine(_dir, "root.conf"), $"""
                listen 127.0.1.1:4342
                control-socket {_dir}/root.sock
                ddt-authority 1000 10.0.0.0/8
                ddt-delegate 1000 10.1.0.0/16 map-server 127.0.1.2
                """);
            File.WriteAllText(Path.Combine(_dir, "ms.conf"), $"""
                listen 127.0.1.2:4342
                control-socket {_dir}/ms.sock
                site planners
                  key 0 sha256 "planners-secret"
                  eid-prefix 1000 10.1.0.0/16 accept-more-specifics
                """);
            File.WriteAllText(Path.Combine(_dir, "mr.conf"), $"""
                listen 127.0.1.3:4342
                control-socket {_dir}/mr.sock
                ddt-root 127.0.1.1
                """);
            foreach (var name in new[] { "root", "ms", "mr" })
                _servers.Add(Shell.StartInNamespace(_ns, "mapserver", "--config", Path.Combine(_dir, name + ".conf")));
            foreach (var name in new[] { "root", "ms", "mr" })
                Poll.Until(() => File.Exists(Path.Combine(_dir, name + ".sock")), $"the {name} Map-Server's control socket");
        }
        catch
        {
            Stop();
            throw;
        }
    }

    [OneTimeTearDown]
    public void Stop()
    {
        foreach (var p in _servers)
        {
            try { if (!p.HasExited) { p.Kill(entireProcessTree: true); p.WaitForExit(5000); } }
            catch (InvalidOperationException) { }
            p.Dispose();
        }
        if (_ns.Length > 0) Shell.Sh($"ip netns del {_ns} 2>/dev/null");
        if (_dir.Length > 0) Directory.Delete(_dir, recursive: true);
    }

    [Test]
    public void Lig_ThroughTheResolver_GetsTheHoleFromTheRoot_AndTheReferralCacheShowsIt()
    {
        var lig = Shell.Run("ip", ["netns", "exec", _ns, Shell.FastxtrExe(), "lig", "10.200.0.1", "--iid", "1000", "--map-resolver", "127.0.1.3:4342"]);
        Assert.That(lig.Code, Is.EqualTo(0), lig.All);
        Assert.That(lig.Out, Does.Contain("Received Map-Reply from 127.0.1.3"));
        Assert.That(lig.Out, Does.Contain("[1000]10.128.0.0/9  ttl 15 min, authoritative, negative"), "DELEGATION-HOLE: the root's undelegated /9");

        var cache = Shell.Run(Shell.FastxtrExe(), ["show", "referral-cache", "--control-socket", Path.Combine(_dir, "mr.sock")]);
        Assert.That(cache.Code, Is.EqualTo(0), cache.All);
        Assert.That(cache.Out, Does.StartWith("1 referral(s)"));
        Assert.That(cache.Out, Does.Contain("[1000] 10.128.0.0/9  DELEGATION-HOLE  expires in"));

        // 10.1.0.5 is in the Map-Server's site but not registered: MS-NOT-REGISTERED, a negative answer for the site.
        var site = Shell.Run("ip", ["netns", "exec", _ns, Shell.FastxtrExe(), "lig", "10.1.0.5", "--iid", "1000", "--map-resolver", "127.0.1.3:4342"]);
        Assert.That(site.Out, Does.Contain("[1000]10.1.0.0/16  ttl 1 min, authoritative, negative"), site.All);
        var json = Shell.Run(Shell.FastxtrExe(), ["show", "referral-cache", "--json", "--control-socket", Path.Combine(_dir, "mr.sock")]);
        Assert.That(json.Out, Does.Contain("\"action\":\"MS-REFERRAL\"").And.Contain("\"address\":\"127.0.1.2\"").And.Contain("\"action\":\"MS-NOT-REGISTERED\""), json.All);
    }

    [Test]
    public void LigTrace_WalksTheTreeFromTheRoot_HopByHop()
    {
        var trace = Shell.Run("ip", ["netns", "exec", _ns, Shell.FastxtrExe(), "lig", "10.1.0.5", "--iid", "1000", "--map-resolver", "127.0.1.1:4342", "--trace"]);
        Assert.That(trace.Code, Is.EqualTo(0), trace.All);
        var hops = trace.Out.Split('\n').Where(l => l.StartsWith("   ", StringComparison.Ordinal)).Select(l => l.Trim()).ToList();
        Assert.That(hops, Has.Count.EqualTo(2), trace.Out);
        Assert.That(hops[0], Does.StartWith("1  127.0.1.1  MS-REFERRAL  [1000]10.1.0.0/16  ttl 1440 min  -> 127.0.1.2 p1/w100"));
        Assert.That(hops[1], Does.StartWith("2  127.0.1.2  MS-NOT-REGISTERED  [1000]10.1.0.0/16  ttl 1 min, incomplete"));
        Assert.That(trace.Out, Does.Contain("No mapping"));
        var outside = Shell.Run("ip", ["netns", "exec", _ns, Shell.FastxtrExe(), "lig", "172.16.0.1", "--iid", "1000", "--map-resolver", "127.0.1.1:4342", "--trace"]);
        Assert.That((outside.Code, outside.Err.Contains("127.0.1.1 is not authoritative for [1000]172.16.0.1", StringComparison.Ordinal)), Is.EqualTo((1, true)), outside.All);
    }
}
