using BenchmarkDotNet.Attributes;
using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;

namespace FastXtr.Perf.Micro;

/// <summary>
/// Decode into reused message objects (as a Map-Server's receive loop does) and encode into a reused buffer.
/// The Map-Register carries one EID record whose RLOC has agent context in an AFI-List/JSON LCAF.
/// </summary>
[MemoryDiagnoser]
public class ControlCodecBenchmarks
{
    private static readonly byte[] Key = "bench-key"u8.ToArray();
    private readonly byte[] _buffer = new byte[LispMessage.MaxMessageLength];
    private readonly MapRequest _request = new();
    private readonly MapReply _reply = new();
    private readonly MapRegister _register = new();
    private readonly MapRequest _decodedRequest = new();
    private readonly MapReply _decodedReply = new();
    private readonly MapRegister _decodedRegister = new();
    private byte[] _requestBytes = [];
    private byte[] _replyBytes = [];
    private byte[] _registerBytes = [];

    [GlobalSetup]
    public void Setup()
    {
        _request.Nonce = 0x0102030405060708;
        _request.SourceEid = LispAddress.WithInstanceId(1000, LispAddress.Parse("10.1.0.1"));
        _request.ItrRlocs.Add(LispAddress.Parse("192.0.2.1"));
        _request.Records.Add(new MapRequestRecord(LispAddress.WithInstanceId(1000, LispAddress.Parse("10.1.0.5")), 32));
        _requestBytes = _request.ToArray();

        var record = new MappingRecord { TtlMinutes = 1440, EidMaskLength = 32, Authoritative = true, EidPrefix = LispAddress.WithInstanceId(1000, LispAddress.Parse("10.1.0.5")) };
        record.Locators.Add(new LocatorRecord(LispAddress.Parse("192.0.2.2"), 1, 50));
        record.Locators.Add(new LocatorRecord(LispAddress.Parse("2001:db8::2"), 2, 50));
        _reply.Nonce = 99;
        _reply.Records.Add(record);
        _replyBytes = _reply.ToArray();

        var ctx = AgentContext.TryParse("""{"agent-context":{"latency":"low","hardware":["gpu"],"state":"ready","load":20}}""", out _)!;
        var reg = new MappingRecord { TtlMinutes = 1440, EidMaskLength = 32, Authoritative = true, EidPrefix = LispAddress.WithInstanceId(1000, LispAddress.Parse("10.1.0.5")) };
        reg.Locators.Add(new LocatorRecord(ContextEncoding.RlocWithContext(LispAddress.Parse("192.0.2.2"), ctx), 1, 100));
        _register.Nonce = 5;
        _register.WantMapNotify = true;
        _register.XtrIdPresent = true;
        _register.XtrId = 12345;
        _register.SiteId = 1;
        _register.AlgorithmId = AuthenticationAlgorithm.HmacSha256;
        _register.Records.Add(reg);
        _registerBytes = _register.ToSignedArray(Key);
    }

    [Benchmark(Description = "Map-Request decode")]
    public int DecodeMapRequest() => (int)_decodedRequest.TryDecode(_requestBytes).Error;

    [Benchmark(Description = "Map-Request encode")]
    public int EncodeMapRequest() => _request.TryEncode(_buffer);

    [Benchmark(Description = "Map-Reply decode")]
    public int DecodeMapReply() => (int)_decodedReply.TryDecode(_replyBytes).Error;

    [Benchmark(Description = "Map-Reply encode")]
    public int EncodeMapReply() => _reply.TryEncode(_buffer);

    [Benchmark(Description = "Map-Register decode (context LCAF)")]
    public int DecodeMapRegister() => (int)_decodedRegister.TryDecode(_registerBytes).Error;

    [Benchmark(Description = "Map-Register encode + HMAC-SHA-256")]
    public int EncodeSignedMapRegister() => _register.TryEncodeSigned(_buffer, Key);

    [Benchmark(Description = "Map-Register HMAC-SHA-256 verify")]
    public int VerifyMapRegister() => (int)MessageAuthentication.Verify(_registerBytes, Key);

    // With a site key, as the Map-Server and the agent sign and verify: the thread keeps the keyed HMAC state.
    private static readonly SiteKey Site = new(0, AuthenticationAlgorithm.HmacSha256, Key.ToArray());

    [Benchmark(Description = "Map-Register encode + HMAC-SHA-256, site key (keyed state kept)")]
    public int EncodeSignedMapRegisterKeyed() => _register.TryEncodeSigned(_buffer, Site);

    [Benchmark(Description = "Map-Register HMAC-SHA-256 verify, site key (keyed state kept)")]
    public int VerifyMapRegisterKeyed() => (int)MessageAuthentication.Verify(_registerBytes, Site);
}
