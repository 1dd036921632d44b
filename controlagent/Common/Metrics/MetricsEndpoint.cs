using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using FastXtr.Common.Api;
using Prometheus;

namespace FastXtr.Common.Metrics;

/// <summary>
/// A role's Prometheus endpoint (<c>--metrics ADDR:PORT</c>, <c>GET /metrics</c>, text format 0.0.4), built on
/// prometheus-net: each role's own registry holds its metrics and the .NET runtime's (GC collections and pause time,
/// memory, threads), and the role's counters are read at scrape time, so nothing is added to any packet or message path.
/// </summary>
public sealed class MetricsEndpoint : IAsyncDisposable
{
    private readonly WebApplication _app;

    public CollectorRegistry Registry { get; }
    public IMetricFactory Factory { get; }
    public IPEndPoint BoundEndpoint { get; }

    private MetricsEndpoint(WebApplication app, CollectorRegistry registry, IPEndPoint bound)
    {
        _app = app;
        Registry = registry;
        Factory = Prometheus.Metrics.WithCustomRegistry(registry);
        BoundEndpoint = bound;
    }

    /// <summary>Listens on <paramref name="at"/> (port 0 picks one; see <see cref="BoundEndpoint"/>).</summary>
    public static async Task<MetricsEndpoint> StartAsync(IPEndPoint at)
    {
        var registry = Prometheus.Metrics.NewCustomRegistry();
        DotNetStats.Register(registry);
        var app = SlimKestrel.Build(k => k.Listen(at));
        app.MapGet("/metrics", async (HttpContext context) =>
        {
            context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await registry.CollectAndExportAsTextAsync(context.Response.Body, context.RequestAborted).ConfigureAwait(false);
        });
        app.MapFallback((HttpContext c) => Results.Text($"no such resource: {c.Request.Path} (the metrics are at /metrics)\n", statusCode: 404));
        await SlimKestrel.StartAsync(app, $"--metrics {at}").ConfigureAwait(false);
        var bound = at;
        if (at.Port == 0)
        {
            // Port 0: the kernel chose one; Kestrel reports it as the listening address.
            var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
            bound = new IPEndPoint(at.Address, new Uri(addresses.First()).Port);
        }
        var endpoint = new MetricsEndpoint(app, registry, bound);
        // What DotNetStats does not have: the time the garbage collector paused the process, where a latency tail
        // of the Map-Server or the agent comes from.
        var pause = endpoint.Factory.CreateCounter("dotnet_gc_pause_seconds_total", "Time the process was paused by garbage collections");
        registry.AddBeforeCollectCallback(() => pause.IncTo(GC.GetTotalPauseDuration().TotalSeconds));
        return endpoint;
    }

    /// <summary>
    /// Exports every counter of <paramref name="counters"/> as <c>fastxtr_ROLE_NAME_total</c> (the kebab-case name in
    /// snake case), read when Prometheus scrapes.
    /// </summary>
    public void AddCounters(string role, Func<Dictionary<string, long>> read)
    {
        var metrics = new Dictionary<string, Counter>();
        foreach (var name in read().Keys)
            metrics[name] = Factory.CreateCounter($"fastxtr_{role}_{Snake(name)}_total", $"{role} counter {name}");
        Registry.AddBeforeCollectCallback(() =>
        {
            foreach (var (name, value) in read())
                if (metrics.TryGetValue(name, out var counter)) counter.IncTo(value);
        });
    }

    /// <summary>A gauge read when Prometheus scrapes.</summary>
    public void AddGauge(string name, string help, Func<double> read)
    {
        var gauge = Factory.CreateGauge(name, help);
        Registry.AddBeforeCollectCallback(() => gauge.Set(read()));
    }

    public static string Snake(string kebab) => kebab.Replace('-', '_');

    public ValueTask DisposeAsync() => SlimKestrel.StopAsync(_app);
}
