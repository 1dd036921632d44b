using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using FastXtr.Agent;
using FastXtr.Common.Metrics;
using FastXtr.MapServer;
using FastXtr.SharedMemory;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.Packaging;

/// <summary>
/// packaging/grafana/fastxtr-dashboard.json: valid dashboard JSON whose every query names only metrics that the
/// three roles export (scraped here from a data-plane region, an agent and a Map-Server in process), so that no panel
/// stays empty because a name drifted.
/// </summary>
[TestFixture]
[NonParallelizable]
public partial class GrafanaDashboardTests
{
    private static string Dashboard()
    {
        string dir = TestContext.CurrentContext.TestDirectory;
        while (dir.Length > 1 && !File.Exists(Path.Combine(dir, "FastXtr.sln"))) dir = Path.GetDirectoryName(dir)!;
        return Path.Combine(dir, "packaging", "grafana", "fastxtr-dashboard.json");
    }

    [GeneratedRegex(@"\b(?:fastxtr|dotnet)_[a-z0-9_]+")]
    private static partial Regex MetricName();

    private static async Task<HashSet<string>> Scrape(Action<MetricsEndpoint> define)
    {
        await using var m = await MetricsEndpoint.StartAsync(new IPEndPoint(IPAddress.Loopback, 0));
        define(m);
        using var http = new HttpClient();
        var samples = PrometheusText.Parse(await http.GetStringAsync(new Uri($"http://{m.BoundEndpoint}/metrics")));
        // Sample names to metric names: labels off, a histogram's series suffixes off.
        return samples.Keys.Select(k => k.Split('{')[0]).SelectMany(n => new[] { n, Regex.Replace(n, "_(bucket|sum|count)$", "") }).ToHashSet();
    }

    [Test]
    public async Task EveryQuery_NamesMetricsTheRolesExport()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Dashboard()));
        var root = doc.RootElement;
        Assert.That(root.GetProperty("uid").GetString(), Is.EqualTo("fastxtr"));
        var panels = root.GetProperty("panels").EnumerateArray().ToList();
        var exprs = panels.Where(p => p.TryGetProperty("targets", out _)).SelectMany(p => p.GetProperty("targets").EnumerateArray().Select(t => t.GetProperty("expr").GetString()!)).ToList();
        Assert.That(exprs, Has.Count.GreaterThanOrEqualTo(30));
        Assert.That(panels.Select(p => p.GetProperty("id").GetInt32()), Is.Unique);

        var exported = new HashSet<string>();
        using (var region = SharedRegion.CreatePrivate(new SharedRegionSizes(256, 16, 2, 64)))
            exported.UnionWith(await Scrape(m => FastXtr.Cli.RoleMetrics.Dataplane(m, region)));
        var cfg = MapServerConfig.Parse("listen 127.0.0.81\nsite s\n  key 0 sha256 \"k\"\n  eid-prefix 1000 10.1.0.0/16\n".Split('\n'));
        using (var server = new MapServerHost(cfg, 1, NullLogger.Instance, controlSocket: false))
        {
            exported.UnionWith(await Scrape(m => FastXtr.Cli.RoleMetrics.MapServer(m, server)));
            using var agentRegion = SharedRegion.CreatePrivate(new SharedRegionSizes(256, 16, 1, 64));
            using var agent = new XtrAgent(AgentConfig.Parse(["rloc-addr 127.0.0.82", $"map-server {server.BoundEndpoints[0]} 0 sha256 \"k\"", $"map-resolver {server.BoundEndpoints[0]}", "rloc-probe-interval 0"]), agentRegion, NullLogger.Instance);
            exported.UnionWith(await Scrape(m => FastXtr.Cli.RoleMetrics.Agent(m, agent)));
        }

        var used = exprs.SelectMany(e => MetricName().Matches(e).Select(m => m.Value)).ToHashSet();
        Assert.That(used, Has.Count.GreaterThanOrEqualTo(25));
        Assert.That(used.Where(u => !exported.Contains(u)), Is.Empty, "every metric a panel queries is exported by some role");
        Assert.That(exprs.Where(e => !e.Contains("instance=~\"$instance\"", StringComparison.Ordinal)), Is.Empty, "every query follows the instance selector");
    }
}
