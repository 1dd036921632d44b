using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using FastXtr.Agent;
using FastXtr.MapServer;
using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.Agent;

/// <summary>
/// The local agent API over its real Unix socket (HTTP/1.1, JSON), against an agent registered with a real
/// Map-Server on loopback: attach, read, change state, detach, and every kind of bad request.
/// </summary>
[TestFixture]
[NonParallelizable]
public class AgentApiTests
{
    private MapServerHost _server = null!;
    private SharedRegion _region = null!;
    private XtrAgent _agent = null!;
    private AgentApi _api = null!;
    private HttpClient _http = null!;
    private string _socket = null!;

    [SetUp]
    public async Task Start()
    {
        var cfg = MapServerConfig.Parse("listen 127.0.0.1:0\nsite planners\n  key 0 sha256 \"s3\"\n  eid-prefix 1000 10.1.0.0/16 accept-more-specifics\n  proxy-reply\n".Split('\n'));
        _server = new MapServerHost(cfg, 1, NullLogger.Instance, controlSocket: false);
        var config = AgentConfig.Parse(["rloc-addr 127.0.0.61", $"map-server {_server.BoundEndpoints[0]} 0 sha256 \"s3\"", "rloc-probe-interval 0"]);
        _region = SharedRegion.CreatePrivate(new SharedRegionSizes(64, 16, 1, 16));
        _agent = new XtrAgent(config, _region, NullLogger.Instance);
        _socket = Path.Combine(Path.GetTempPath(), $"fastxtr-api-{Environment.ProcessId}-{Guid.NewGuid():N}.sock");
        _api = await AgentApi.StartAsync(_agent, _socket, NullLogger.Instance);
        _http = FastXtr.Common.Api.UnixSocketClient.Create(_socket);
    }

    [TearDown]
    public async Task Stop()
    {
        _http.Dispose();
        await _api.DisposeAsync();
        _agent.Dispose();
        _region.Dispose();
        _server.Dispose();
        Assert.That(File.Exists(_socket), Is.False, "the socket file is removed on stop");
    }

    private async Task<(HttpStatusCode Status, JsonNode? Body)> Call(HttpMethod method, string path, string? json = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (json is not null) request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await _http.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
    }

    private bool RegisteredState(string state) =>
        _server.Store.TryLookup(1000, EidFamily.Ipv4, Ipv4Header.ToUInt32(IPAddress.Parse("10.1.0.2")), out var reg)
        && reg.EffectiveRlocs().Any(r => r.Context?.State is { } s && FastXtr.Lisp.Context.AgentContext.StateName(s) == state);

    [Test]
    public async Task Metrics_ExportTheAgentsCountersAndGauges_AtScrapeTime()
    {
        var (attached, _) = await Call(HttpMethod.Post, "/v1/agents", """{"name":"M","iid":1000,"eid":"10.1.0.44"}""");
        Assert.That((int)attached, Is.EqualTo(201));
        await using var metrics = await FastXtr.Common.Metrics.MetricsEndpoint.StartAsync(new IPEndPoint(IPAddress.Loopback, 0));
        FastXtr.Cli.RoleMetrics.Agent(metrics, _agent);
        using var http = new HttpClient();
        string text = await http.GetStringAsync(new Uri($"http://{metrics.BoundEndpoint}/metrics"));
        Assert.That(text, Does.Contain("# TYPE fastxtr_agent_map_registers_sent_total counter"));
        long sent = long.Parse(text.Split('\n').Single(l => l.StartsWith("fastxtr_agent_map_registers_sent_total ", StringComparison.Ordinal)).Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(sent, Is.GreaterThanOrEqualTo(1).And.LessThanOrEqualTo(_agent.Counters[AgentCounter.MapRegistersSent]), "the agent's own count, read when scraped");
        Assert.That(text.Split('\n'), Does.Contain("fastxtr_agent_attached_agents 1"));
        Assert.That(text, Does.Contain("fastxtr_agent_map_resolvers_up"));
        Assert.That(text, Does.Contain("# TYPE fastxtr_agent_map_request_duration_seconds histogram"));
        // The reference parser reads it, the names follow the rules, and every agent counter is there with the
        // value the status API shows (read between two scrapes: registrations may go on meanwhile).
        var first = FastXtr.Tests.Support.PrometheusText.Parse(text);
        var status = _agent.Counters.ToDictionary();
        var second = FastXtr.Tests.Support.PrometheusText.Parse(await http.GetStringAsync(new Uri($"http://{metrics.BoundEndpoint}/metrics")));
        foreach (var (name, value) in status)
        {
            string series = $"fastxtr_agent_{name.Replace('-', '_')}_total";
            Assert.That(first.ContainsKey(series), Is.True, series);
            Assert.That(value, Is.InRange(first[series], second[series]), series);
        }
        Assert.That(first.Keys, Has.Member("fastxtr_agent_map_request_duration_seconds_bucket{le=+Inf}").And.Member("dotnet_total_memory_bytes").And.Member("dotnet_gc_pause_seconds_total"));
        var missing = await http.GetAsync(new Uri($"http://{metrics.BoundEndpoint}/other"));
        Assert.That((int)missing.StatusCode, Is.EqualTo(404));
    }

    [Test]
    public async Task AttachUpdateDetach_AreRegisteredAtOnce()
    {
        Assert.That(File.GetUnixFileMode(_socket), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite), "only the agent's user reaches the socket");

        var (status, body) = await Call(HttpMethod.Post, "/v1/agents", """{"name":"B","iid":1000,"eid":"10.1.0.2","attributes":{"state":"ready","hardware":["gpu"]}}""");
        Assert.That(status, Is.EqualTo(HttpStatusCode.Created), body?.ToJsonString());
        Assert.That((bool)body!["registered"]!, Is.True, "the Map-Server confirmed");
        Assert.That(((string?)body["eid"], (string?)body["rlocs"]![0]!["address"]), Is.EqualTo(("10.1.0.2/32", "127.0.0.61")));
        Assert.That(RegisteredState("ready"), Is.True);

        (status, body) = await Call(HttpMethod.Get, "/v1/agents");
        Assert.That((status, body!.AsArray().Count, (string?)body[0]!["name"]), Is.EqualTo((HttpStatusCode.OK, 1, "B")));

        (status, body) = await Call(HttpMethod.Patch, "/v1/agents/1000/10.1.0.2", """{"attributes":{"state":"draining","load":70}}""");
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), body?.ToJsonString());
        Assert.That(((string?)body!["attributes"]!["state"], (int?)body["attributes"]!["load"], (string?)body["attributes"]!["hardware"]![0]), Is.EqualTo(("draining", 70, "gpu")), "merged, not replaced");
        Assert.That(RegisteredState("draining"), Is.True);
        Assert.That(_server.Counters[MsCounter.AttributeUpdatesInPlace], Is.EqualTo(1));

        (status, body) = await Call(HttpMethod.Get, "/v1/database");
        Assert.That(body!["agents"]!.AsArray().Count, Is.EqualTo(1));

        (status, body) = await Call(HttpMethod.Delete, "/v1/agents/1000/10.1.0.2");
        Assert.That((status, (bool?)body!["withdrawn"]), Is.EqualTo((HttpStatusCode.OK, (bool?)true)));
        Assert.That(_server.Store.Count, Is.EqualTo(0), "withdrawn from the Map-Server");
        (status, _) = await Call(HttpMethod.Get, "/v1/agents/1000/10.1.0.2");
        Assert.That(status, Is.EqualTo(HttpStatusCode.NotFound));
        (status, body) = await Call(HttpMethod.Get, "/v1/status");
        Assert.That((long)body!["counters"]!["withdrawals-sent"]!, Is.EqualTo(1));
    }

    [Test]
    public async Task AnUnresponsiveMapServer_IsStillRegisteredWith_ButAttachesNoLongerWaitForIt()
    {
        // A second Map-Server that never answers: a socket nobody reads.
        using var dead = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        dead.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var config = AgentConfig.Parse(["rloc-addr 127.0.0.62", $"map-server {_server.BoundEndpoints[0]} 0 sha256 \"s3\"", $"map-server {dead.LocalEndPoint} 0 sha256 \"s3\"", "rloc-probe-interval 0"]);
        using var region = SharedRegion.CreatePrivate(new SharedRegionSizes(64, 16, 1, 16));
        using var agent = new XtrAgent(config, region, NullLogger.Instance);
        string socket = Path.Combine(Path.GetTempPath(), $"fastxtr-api2-{Environment.ProcessId}-{Guid.NewGuid():N}.sock");
        await using var api = await AgentApi.StartAsync(agent, socket, NullLogger.Instance);
        using var http = FastXtr.Common.Api.UnixSocketClient.Create(socket);
        async Task<JsonNode> Post(string json)
        {
            using var response = await http.PostAsync("/v1/agents", new StringContent(json, Encoding.UTF8, "application/json"));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Created));
            return JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        }

        // Not known to be dead yet: the first attach waits for both and says the registration is not confirmed.
        Assert.That((bool)(await Post("""{"name":"A","iid":1000,"eid":"10.1.0.5"}"""))["registered"]!, Is.False);
        // Three sends without a Map-Notify: unresponsive (logged, counted, in the status and the metrics).
        Poll.Until(() => agent.UnresponsiveMapServers().Count == 1, "the dead Map-Server to count as unresponsive", 10_000);
        Assert.That(agent.UnresponsiveMapServers()[0], Is.EqualTo(dead.LocalEndPoint));
        // Now an attach is confirmed by the Map-Server that answers, and the dead one is still sent the registration.
        Assert.That((bool)(await Post("""{"name":"B","iid":1000,"eid":"10.1.0.6"}"""))["registered"]!, Is.True);
        Assert.That(_server.Store.Count, Is.EqualTo(2));
        var buffer = new byte[2048];
        dead.ReceiveTimeout = 5000;
        bool sentToDead = false;
        while (!sentToDead)
        {
            int n = dead.Receive(buffer); // a timeout throws: B's registration never reached the dead Map-Server
            var register = new FastXtr.Lisp.Messages.MapRegister();
            sentToDead = register.TryDecode(buffer.AsSpan(0, n)).Ok && register.Records.Any(r => r.EidPrefix.ToString().EndsWith("10.1.0.6", StringComparison.Ordinal));
        }
        using var status = await http.GetAsync("/v1/status");
        var body = JsonNode.Parse(await status.Content.ReadAsStringAsync())!;
        Assert.That(body["map_servers_unresponsive"]!.AsArray().Select(n => (string?)n), Is.EqualTo(new[] { dead.LocalEndPoint!.ToString() }));
        Assert.That((long)body["counters"]!["map-servers-unresponsive"]!, Is.EqualTo(1));
    }

    [TestCase("POST", "/v1/agents", "not json", 400, "not valid JSON")]
    [TestCase("POST", "/v1/agents", "[1]", 400, "JSON object")]
    [TestCase("POST", "/v1/agents", """{"iid":1000}""", 400, "\"eid\" is required")]
    [TestCase("POST", "/v1/agents", """{"eid":"10.1.0.3"}""", 400, "\"iid\"")]
    [TestCase("POST", "/v1/agents", """{"eid":"10.1.0.3","iid":16777216}""", 400, "24 bits")]
    [TestCase("POST", "/v1/agents", """{"eid":"10.1.999.3","iid":1000}""", 400, "\"eid\"")]
    [TestCase("POST", "/v1/agents", """{"eid":"10.1.0.3","iid":1000,"attributes":{"state":"asleep"}}""", 400, "attributes")]
    [TestCase("POST", "/v1/agents", """{"eid":"10.1.0.3","iid":1000,"constraints":{"hardware":"gpu"}}""", 400, "constraints")]
    [TestCase("POST", "/v1/agents", """{"eid":"10.1.0.3","iid":1000,"priority":300}""", 400, "priority")]
    [TestCase("PATCH", "/v1/agents/1000/10.1.0.99", """{"attributes":{}}""", 404, "no agent")]
    [TestCase("DELETE", "/v1/agents/x/10.1.0.99", null, 400, "Instance ID")]
    [TestCase("GET", "/v2/nothing", null, 404, "no such resource")]
    public async Task BadRequests_GetA4xxWithTheReason(string method, string path, string? json, int expected, string reason)
    {
        var (status, body) = await Call(new HttpMethod(method), path, json);
        Assert.That((int)status, Is.EqualTo(expected));
        Assert.That((string?)body!["error"], Does.Contain(reason));
    }

    [Test]
    public async Task AttachingTheSameEidTwice_IsAConflict()
    {
        var (first, _) = await Call(HttpMethod.Post, "/v1/agents", """{"name":"B","iid":1000,"eid":"10.1.0.2"}""");
        var (second, body) = await Call(HttpMethod.Post, "/v1/agents", """{"name":"C","iid":1000,"eid":"10.1.0.2/32"}""");
        Assert.That((first, second), Is.EqualTo((HttpStatusCode.Created, HttpStatusCode.Conflict)));
        Assert.That((string?)body!["error"], Does.Contain("already attached"));
    }
}
