using System.Net;
using BenchmarkDotNet.Attributes;
using FastXtr.Common.Logging;
using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;
using FastXtr.MapServer;
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
        _refresh = Register(0x0A000005, ready, xtrId: 1);
        _core.Handle(_refresh, Itr, Drop);
        // The subscriber must have registered (its xTR-ID names the site whose key signs the publications).
        _core.Handle(Register(0x0AFA0001, null, xtrId: 1001), Itr, Drop);
        _request = Request(0x0A000005, subscribe: false);
        _subscribe = Request(0x0A000005, subscribe: true);
    }

    [GlobalCleanup]
    public void Cleanup() => _core.Publisher?.Dispose();

    [Benchmark(Description = "Map-Request (ECM) answered by proxy")]
    public void AnswerRequest() => _core.Handle(_request, Itr, Drop);

    [Benchmark(Description = "Map-Request (ECM) with a subscription, answered by proxy")]
    public void AnswerSubscribe() => _core.Handle(_subscribe, Itr, Drop);

    [Benchmark(Description = "Map-Register refresh, want-map-notify")]
    public void Refresh() => _core.Handle(_refresh, Itr, Drop);

    private static byte[] Register(uint eid, AgentContext? context, ulong xtrId)
    {
        var m = new MapRegister { Nonce = 7, WantMapNotify = true, AlgorithmId = AuthenticationAlgorithm.HmacSha256, XtrIdPresent = true, XtrId = xtrId, SiteId = 1 };
        var rec = new MappingRecord { TtlMinutes = 1440, EidMaskLength = 32, Authoritative = true, EidPrefix = LispAddress.WithInstanceId(1000, LispAddress.FromIpv4(eid)) };
        var rloc = LispAddress.FromIpv4(0xC0000202);
        rec.Locators.Add(new LocatorRecord(context is null ? rloc : ContextEncoding.RlocWithContext(rloc, context), 1, 100));
        m.Records.Add(rec);
        return m.ToSignedArray(Key);
    }

    private static byte[] Request(uint eid, bool subscribe)
    {
        var request = new MapRequest { Nonce = 9, XtrIdPresent = subscribe, XtrId = 1001, SiteId = 1 };
        request.ItrRlocs.Add(LispAddress.FromIp(Itr.Address));
        request.Records.Add(new MapRequestRecord(LispAddress.WithInstanceId(1000, LispAddress.FromIpv4(eid)), 32, subscribe));
        var ecm = new EncapsulatedControlMessage { InnerSourcePort = (ushort)Itr.Port };
        ecm.SetInnerAddresses(Itr.Address, IPAddress.Parse("10.0.0.1"));
        ecm.SetInnerMessage(request.ToArray());
        return ecm.ToArray();
    }
}
