using System.Net;
using BenchmarkDotNet.Attributes;
using FastXtr.Common.Logging;
using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;
using FastXtr.MapServer;
using FastXtr.Perf.Load;
using Microsoft.Extensions.Logging.Abstractions;

namespace FastXtr.Perf.Micro;

/// <summary>
/// One Map-Server worker's handling of a message, socket aside (<see cref="MapServerCore.Handle"/> with a send that
/// drops the answer): an ITR's Map-Request in an ECM for a registered agent EID answered by proxy (the load
/// generator's message, with a subscription or without), and a refresh of a single-record Map-Register. Every byte
/// allocated here is a byte the garbage collector has to walk a heap of a million registrations for.
/// </summary>
[MemoryDiagnoser]
public class MapServerBenchmarks
{
    private static readonly byte[] Key = "bench-key"u8.ToArray();
    private static readonly IPEndPoint Itr = new(IPAddress.Parse("127.0.1.2"), 24343);
    private MapServerCore _core = null!;
    private byte[] _request = [];
    private byte[] _subscribe = [];
    private byte[] _refresh = [];
    private static readonly MapServerCore.Sender Drop = static (_, _) => { };

    [GlobalSetup]
    public void Setup()
    {
        var config = MapServerConfig.Parse("""
            listen 127.0.0.1:24342
            map-request-rate 10000000 10000000
            map-register-rate 10000000 10000000
            site bench
              key 0 sha256 "bench-key"
              eid-prefix 1000 10.0.0.0/8 accept-more-specifics
              proxy-reply
            """.Split('\n'));
        var policy = new PolicyCell(MapServerPolicy.For(config));
        var counters = new MapServerCounters();
        _core = new MapServerCore(policy, new RegistrationStore(), counters, new RateLimitedLogger(NullLogger.Instance));
        _core.Publisher = new Publisher(counters, static (_, _) => { }, NullLogger.Instance);
        var ready = AgentContext.TryParse("""{"agent-context":{"state":"ready","load":10}}""", out _)!;
        _refresh = UpdatePublish.Register(Key, 1, 0x0A000005, ready, wantNotify: true);
        _core.Handle(_refresh, Itr, Drop);
        // The subscriber must have registered (its xTR-ID names the site whose key signs the publications).
        _core.Handle(UpdatePublish.Register(Key, 1001, 0x0AFA0001, null, wantNotify: true), Itr, Drop);
        _request = UpdatePublish.SubscribeRequest(Itr, 1001, 0x0A000005, nonce: 9, subscribe: false);
        _subscribe = UpdatePublish.SubscribeRequest(Itr, 1001, 0x0A000005, nonce: 9);
    }

    [GlobalCleanup]
    public void Cleanup() => _core.Publisher?.Dispose();

    [Benchmark(Description = "Map-Request (ECM) answered by proxy")]
    public void AnswerRequest() => _core.Handle(_request, Itr, Drop);

    [Benchmark(Description = "Map-Request (ECM) with a subscription, answered by proxy")]
    public void AnswerSubscribe() => _core.Handle(_subscribe, Itr, Drop);

    [Benchmark(Description = "Map-Register refresh, want-map-notify")]
    public void Refresh() => _core.Handle(_refresh, Itr, Drop);
}
