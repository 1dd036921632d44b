using System.Net;
using FastXtr.Agent;
using FastXtr.Common.Metrics;
using FastXtr.MapServer;
using FastXtr.SharedMemory;

namespace FastXtr.Cli;

/// <summary>
/// What each role exports on <c>--metrics ADDR:PORT</c> (Prometheus text format at <c>/metrics</c>), every value read at
/// scrape time: the data plane's per-worker counters from shared memory (drop reasons as one metric with a
/// <c>reason</c> label), the agent's and the Map-Server's counters, table sizes, and the .NET runtime's figures.
/// </summary>
public static class RoleMetrics
{
    /// <summary>The Map-Server's histogram of publication delays (load generators read it too).</summary>
    public const string PublicationDelayMetric = "fastxtr_mapserver_publication_delay_seconds";

    public static readonly string Help = "serve Prometheus metrics at http://ADDR:PORT/metrics (e.g. 127.0.0.1:9341); off when not given";

    /// <summary>Parses the flag and starts the endpoint; null when the flag is absent.</summary>
    public static MetricsEndpoint? Start(string? at, Action<MetricsEndpoint> define)
    {
        if (at is null) return null;
        var endpoint = ConfigReader.Endpoint(at, 0);
        if (endpoint.Port == 0) throw new FormatException($"--metrics {at}: give a port (ADDR:PORT)");
        var metrics = MetricsEndpoint.StartAsync(endpoint).GetAwaiter().GetResult();
        define(metrics);
        return metrics;
    }

    public static void Dataplane(MetricsEndpoint m, SharedRegion region)
    {
        var all = Enum.GetValues<Counter>().Where(c => c != Counter.Count).ToArray();
        var drops = m.Factory.CreateCounter("fastxtr_dataplane_drops_total", "Packets dropped by the data plane, by reason and worker", ["reason", "worker"]);
        var others = all.Where(c => !WorkerCounters.IsDrop(c)).ToDictionary(c => c,
            c => m.Factory.CreateCounter($"fastxtr_dataplane_{MetricsEndpoint.Snake(WorkerCounters.Name(c))}_total", $"data plane counter {WorkerCounters.Name(c)}, per worker", ["worker"]));
        m.Registry.AddBeforeCollectCallback(() =>
        {
            for (int w = 0; w < region.ReportingWorkers; w++)
            {
                var counters = region.Counters(w);
                string worker = w.ToString(System.Globalization.CultureInfo.InvariantCulture);
                foreach (var c in all)
                {
                    if (WorkerCounters.IsDrop(c)) drops.WithLabels(WorkerCounters.Name(c)["drop-".Length..], worker).IncTo(counters[c]);
                    else others[c].WithLabels(worker).IncTo(counters[c]);
                }
            }
        });
        m.AddGauge("fastxtr_dataplane_map_cache_entries", "Entries in the map-cache", () => region.Header.EntryCount);
        m.AddGauge("fastxtr_dataplane_map_cache_capacity_entries", "Entries the map-cache can hold", () => region.Sizes.EntryCapacity);
        m.AddGauge("fastxtr_dataplane_workers", "Workers of the running data plane", () => region.Header.ActiveWorkers);
    }

    public static void Agent(MetricsEndpoint m, XtrAgent agent)
    {
        m.AddCounters("agent", () => agent.Counters.ToDictionary());
        m.AddGauge("fastxtr_agent_attached_agents", "Agents attached through the local API", () => agent.Database.Agents.Count);
        m.AddGauge("fastxtr_agent_map_resolvers_up", "Map-Resolvers not marked down", () => agent.MapResolverStates().Count(r => r.Up));
        m.AddGauge("fastxtr_agent_map_servers_unresponsive", "Map-Servers that left a Map-Register unanswered for three sends", () => agent.UnresponsiveMapServers().Count);
        var resolution = m.Factory.CreateHistogram("fastxtr_agent_map_request_duration_seconds",
            "Time from a Map-Request's first send to its Map-Reply, retransmissions included",
            new Prometheus.HistogramConfiguration { Buckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
        agent.MapRequestAnswered = resolution.Observe;
    }

    public static void MapServer(MetricsEndpoint m, MapServerHost host)
    {
        m.AddCounters("mapserver", () => host.Counters.ToDictionary());
        m.AddGauge("fastxtr_mapserver_registrations", "EID prefixes registered", () => host.Store.Count);
        m.AddGauge("fastxtr_mapserver_subscriptions", "Publish/subscribe subscriptions", () => host.Publisher?.SubscriptionCount ?? 0);
        if (host.Publisher is { } publisher)
        {
            // Fine steps below 2 ms, where an update's publications to a hundred subscribers land on an idle server.
            var delay = m.Factory.CreateHistogram(PublicationDelayMetric,
                "Time from the arrival of a message that changed a registration to the send of its last publication to the record's subscribers",
                new Prometheus.HistogramConfiguration { Buckets = [0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0004, 0.0005, 0.0006, 0.0007, 0.0008, 0.0009, 0.001, 0.00125, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] });
            publisher.PublicationDelay = delay.Observe;
        }
    }
}
