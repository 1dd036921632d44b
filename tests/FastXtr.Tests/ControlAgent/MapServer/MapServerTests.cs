using System.Net;
using System.Net.Sockets;
using System.Text;
using FastXtr.Lisp.Context;
using FastXtr.MapServer;
using FastXtr.Lisp.Messages;
using FastXtr.SharedMemory.MapCache;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.MapServer;

/// <summary>
/// The Map-Server/Map-Resolver black-box over real UDP on loopback, with our codec as the client: a server on
/// 127.0.0.1 with an ephemeral port, sites "planners" (IID 1000, proxy-reply) and "relay" (IID 3000, forwards).
/// </summary>
[TestFixture]
[NonParallelizable]
public partial class MapServerTests
{
    private static readonly byte[] PlannersKey = "planners-secret"u8.ToArray();
    private const string Config = """
        listen 127.0.0.1:0
        registration-timeout 2
        map-request-rate 100000 100000
        map-register-rate 100000 100000
        site planners
          key 0 sha256 "planners-secret"
          key 7 sha1 "old-secret"
          eid-prefix 1000 10.1.0.0/16 accept-more-specifics
          proxy-reply
        site tenants
          key 0 sha256 "tenants-secret"
          eid-prefix 2000 10.1.0.0/16 accept-more-specifics
          proxy-reply
        site relay
          key 0 sha256 "relay-secret"
          eid-prefix 3000 10.3.0.0/16 accept-more-specifics
        """;

    private MapServerHost _server = null!;
    private IPEndPoint _endpoint = null!;
    private Socket _client = null!;

    [SetUp]
    public void SetUp() => Start(Config);

    private void Start(string config)
    {
        _server = new MapServerHost(MapServerConfig.Parse(config.Split('\n')), workers: 2, NullLogger.Instance, controlSocket: false);
        _endpoint = _server.BoundEndpoints[0];
        _client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        _client.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _client.ReceiveTimeout = 2000;
    }

    [TearDown]
    public void TearDown()
    {
        _client.Dispose();
        _server.Dispose();
    }

    private static LispAddress Eid(uint iid, string ip) => LispAddress.WithInstanceId(iid, LispAddress.Parse(ip));

    private static MapRegister Register(uint iid, string eid, byte mask, UInt128 xtrId, params (string Rloc, byte Priority, string? Context)[] rlocs)
    {
        var m = new MapRegister { Nonce = (ulong)Random.Shared.NextInt64(), WantMapNotify = true, AlgorithmId = AuthenticationAlgorithm.HmacSha256, XtrIdPresent = true, XtrId = xtrId, SiteId = 1 };
        var rec = new MappingRecord { TtlMinutes = 1440, EidMaskLength = mask, Authoritative = true, EidPrefix = Eid(iid, eid) };
        foreach (var (rloc, priority, context) in rlocs)
        {
            var address = LispAddress.Parse(rloc);
            var locator = context is null ? address : ContextEncoding.RlocWithContext(address, AgentContext.TryParse("{\"agent-context\":{" + context + "}}", out _)!);
            rec.Locators.Add(new LocatorRecord(locator, priority, 50));
        }
        m.Records.Add(rec);
        return m;
    }

    private void Send(byte[] datagram) => _client.SendTo(datagram, _endpoint);

    private byte[]? Receive(int timeoutMs = 2000) => _stash.Count > 0 ? _stash.Dequeue() : ReceiveFromSocket(timeoutMs);

    private byte[]? ReceiveFromSocket(int timeoutMs)
    {
        _client.ReceiveTimeout = timeoutMs;
        byte[] buffer = new byte[65536];
        try
        {
            int n = _client.Receive(buffer);
            return buffer.AsSpan(0, n).ToArray();
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut) { return null; }
    }

    /// <summary>Datagrams that arrived while waiting for something else (a publication racing a Map-Notify).</summary>
    private readonly Queue<byte[]> _stash = new();

    private MapNotify RegisterAndWaitForNotify(MapRegister m, byte[] key)
    {
        Send(m.ToSignedArray(key));
        byte[] bytes;
        while (true)
        {
            bytes = ReceiveFromSocket(2000) ?? throw new AssertionException("no Map-Notify");
            var peek = new MapNotify();
            if (peek.TryDecode(bytes).Ok && peek.Nonce == m.Nonce) break;
            _stash.Enqueue(bytes);
        }
        var notify = new MapNotify();
        Assert.That(notify.TryDecode(bytes).Ok, Is.True);
        Assert.That(MessageAuthentication.Verify(bytes, key), Is.EqualTo(AuthenticationFailure.None), "the Map-Notify is authenticated with the site's key");
        Assert.That(notify.Nonce, Is.EqualTo(m.Nonce), () => notify.ToString());
        return notify;
    }

    /// <param name="itr">The ITR-RLOC and inner source port the answer must go to (the test's socket by default).</param>
    /// <param name="more">Further EIDs asked for in the same request (with the same subscribe bit).</param>
    private byte[] Ecm(uint iid, string eid, string? constraints = null, ulong nonce = 1, bool subscribe = false, UInt128? xtrId = null, IPEndPoint? itr = null, params string[] more)
    {
        var local = itr ?? (IPEndPoint)_client.LocalEndPoint!;
        var request = new MapRequest { Nonce = nonce, XtrIdPresent = xtrId is not null, XtrId = xtrId ?? 0 };
        LispAddress source = Eid(iid, "10.1.9.9");
        request.SourceEid = constraints is null ? source : ContextEncoding.SourceEidWithConstraints(source, AgentConstraints.TryParse(constraints, out _) ?? throw new ArgumentException(constraints));
        request.ItrRlocs.Add(LispAddress.FromIp(local.Address));
        request.Records.Add(new MapRequestRecord(Eid(iid, eid), 32, subscribe));
        foreach (var other in more) request.Records.Add(new MapRequestRecord(Eid(iid, other), 32, subscribe));
        var ecm = new EncapsulatedControlMessage { InnerSourcePort = (ushort)local.Port };
        ecm.SetInnerAddresses(IPAddress.Parse("10.1.9.9"), IPAddress.Parse(eid));
        ecm.SetInnerMessage(request.ToArray());
        return ecm.ToArray();
    }

    private MapReply Ask(uint iid, string eid, string? constraints = null)
    {
        ulong nonce = (ulong)Random.Shared.NextInt64();
        Send(Ecm(iid, eid, constraints, nonce));
        for (int i = 0; i < 5; i++)
        {
            var bytes = Receive() ?? throw new AssertionException($"no Map-Reply for [{iid}]{eid}");
            var reply = new MapReply();
            if (reply.TryDecode(bytes).Ok && reply.Nonce == nonce) return reply;
        }
        throw new AssertionException("no Map-Reply with our nonce");
    }

    [Test]
    public void Register_NotifiesWithTheSameNonce_AndIsAnswered()
    {
        var notify = RegisterAndWaitForNotify(Register(1000, "10.1.0.5", 32, 11, ("192.0.2.2", 1, null)), PlannersKey);
        Assert.That(notify.Records[0].EidPrefix.ContentEquals(Eid(1000, "10.1.0.5")), Is.True);
        var reply = Ask(1000, "10.1.0.5");
        Assert.That(reply.Records[0].IsNegative, Is.False);
        Assert.That((reply.Records[0].EidMaskLength, reply.Records[0].Authoritative, reply.Records[0].Locators[0].Locator.ToString()), Is.EqualTo(((byte)32, true, "192.0.2.2")));
        Assert.That(reply.Records[0].EidPrefix.InstanceIdOrNull, Is.EqualTo(1000u));
        Assert.That(_server.Counters[MsCounter.MapRegistersAccepted], Is.EqualTo(1));
    }

    [Test]
    public void ARefresh_WithTheSameLocators_SharesTheStoredSet_AndAChangedOneReplacesIt()
    {
        var key = new EidKey(1000, EidFamily.Ipv4, 0x0A010033, 32);
        RegisterAndWaitForNotify(Register(1000, "10.1.0.51", 32, 31, ("192.0.2.2", 1, null)), PlannersKey);
        Assert.That(_server.Store.TryGet(key, out var first), Is.True);
        var stored = first.ByXtr[31].Rlocs;
        // The same locators again: nothing is parsed, and the registration keeps the very same set.
        RegisterAndWaitForNotify(Register(1000, "10.1.0.51", 32, 31, ("192.0.2.2", 1, null)), PlannersKey);
        _server.Store.TryGet(key, out var refreshed);
        Assert.That(refreshed.ByXtr[31].Rlocs == stored, Is.True, "the stored locator set is shared");
        Assert.That(refreshed.ByXtr[31].LastRegistered, Is.GreaterThanOrEqualTo(first.ByXtr[31].LastRegistered));
        // A changed priority, a changed address, attributes: each is a new set, answered at once.
        RegisterAndWaitForNotify(Register(1000, "10.1.0.51", 32, 31, ("192.0.2.2", 2, null)), PlannersKey);
        _server.Store.TryGet(key, out var reprioritised);
        Assert.That((reprioritised.ByXtr[31].Rlocs == stored, reprioritised.ByXtr[31].Rlocs[0].Priority), Is.EqualTo((false, (byte)2)));
        RegisterAndWaitForNotify(Register(1000, "10.1.0.51", 32, 31, ("192.0.2.3", 2, null)), PlannersKey);
        Assert.That(Ask(1000, "10.1.0.51").Records[0].Locators[0].Locator.ToString(), Is.EqualTo("192.0.2.3"));
        RegisterAndWaitForNotify(Register(1000, "10.1.0.51", 32, 31, ("192.0.2.3", 2, "\"hardware\":[\"gpu\"]")), PlannersKey);
        _server.Store.TryGet(key, out var withContext);
        Assert.That(withContext.ByXtr[31].Rlocs[0].Context?.HasHardware("gpu"), Is.True);
        // With attributes unchanged it is a refresh too: the set with its context is shared, not parsed again (texts
        // that differ in order or spacing only: AgentContextMatchTests).
        RegisterAndWaitForNotify(Register(1000, "10.1.0.51", 32, 31, ("192.0.2.3", 2, "\"hardware\":[\"gpu\"],\"load\":20")), PlannersKey);
        _server.Store.TryGet(key, out var loaded);
        RegisterAndWaitForNotify(Register(1000, "10.1.0.51", 32, 31, ("192.0.2.3", 2, "\"load\":20,\"hardware\":[\"gpu\",\"gpu\"]")), PlannersKey);
        _server.Store.TryGet(key, out var again);
        Assert.That(again.ByXtr[31].Rlocs == loaded.ByXtr[31].Rlocs, Is.True, "the stored set with its context is shared");
        Assert.That((again.ByXtr[31].Rlocs[0].Context?.HasHardware("gpu"), again.ByXtr[31].Rlocs[0].Context?.Load), Is.EqualTo(((bool?)true, (int?)20)));
        // A changed attribute is no refresh.
        RegisterAndWaitForNotify(Register(1000, "10.1.0.51", 32, 31, ("192.0.2.3", 2, "\"load\":21,\"hardware\":[\"gpu\"]")), PlannersKey);
        _server.Store.TryGet(key, out var changed);
        Assert.That((changed.ByXtr[31].Rlocs == loaded.ByXtr[31].Rlocs, changed.ByXtr[31].Rlocs[0].Context?.Load), Is.EqualTo((false, (int?)21)));
    }

    [Test]
    public void RotatedKey_WithItsKeyIdAndSha1_IsAccepted()
    {
        var m = Register(1000, "10.1.0.6", 32, 12, ("192.0.2.2", 1, null));
        m.KeyId = 7;
        m.AlgorithmId = AuthenticationAlgorithm.HmacSha1;
        RegisterAndWaitForNotify(m, "old-secret"u8.ToArray());
    }

    [Test]
    public void WrongKey_IsRefusedAndCounted_AndTheServerStillAnswers()
    {
        Send(Register(1000, "10.1.0.5", 32, 11, ("192.0.2.2", 1, null)).ToSignedArray("not-the-key"u8.ToArray()));
        Assert.That(Receive(500), Is.Null, "no Map-Notify for a forged registration");
        Assert.That(_server.Counters[MsCounter.RegisterAuthenticationFailed], Is.EqualTo(1));
        Assert.That(Ask(1000, "10.1.0.5").Records[0].IsNegative, Is.True, "nothing was registered");
    }

    [Test]
    public void ForeignPrefix_AnotherSitesAgents_AreRefused()
    {
        // Signed with the tenants' key but naming planners' space... and signed with the planners' key but
        // reaching outside it: both are refused.
        var intoPlanners = Register(1000, "10.1.0.5", 32, 21, ("192.0.2.66", 1, null));
        Send(intoPlanners.ToSignedArray("tenants-secret"u8.ToArray()));
        var outside = Register(1000, "10.7.0.5", 32, 22, ("192.0.2.66", 1, null));
        Send(outside.ToSignedArray(PlannersKey));
        // A valid record of its own followed by one in the tenants' IID: the whole message is refused.
        var mixed = Register(1000, "10.1.0.5", 32, 23, ("192.0.2.66", 1, null));
        var theirs = new MappingRecord { TtlMinutes = 1440, EidMaskLength = 32, EidPrefix = Eid(2000, "10.1.0.5") };
        theirs.Locators.Add(new LocatorRecord(LispAddress.Parse("192.0.2.66"), 1, 1));
        mixed.Records.Add(theirs);
        Send(mixed.ToSignedArray(PlannersKey));
        Assert.That(Receive(500), Is.Null);
        Assert.That((_server.Counters[MsCounter.RegisterAuthenticationFailed], _server.Counters[MsCounter.RegisterNoSiteForEid], _server.Counters[MsCounter.RegisterForeignPrefix]),
            Is.EqualTo((1L, 1L, 1L)));
        Assert.That(_server.Store.Count, Is.EqualTo(0), "not even the valid record of the mixed message was stored");
    }

    [Test]
    public void TruncatedAndMalformedMessages_AreCounted_AndTheNextRequestIsAnswered()
    {
        byte[] good = Register(1000, "10.1.0.5", 32, 11, ("192.0.2.2", 1, null)).ToSignedArray(PlannersKey);
        int sent = 3;
        for (int cut = 1; cut < good.Length; cut += 7, sent++) Send(good.AsSpan(0, cut).ToArray());
        Send(Ecm(1000, "10.1.0.5").AsSpan(0, 30).ToArray());
        Send([0xF0, 1, 2, 3]);
        Send([]);
        RegisterAndWaitForNotify(Register(1000, "10.1.0.5", 32, 11, ("192.0.2.2", 1, null)), PlannersKey);
        Assert.That(Ask(1000, "10.1.0.5").Records[0].IsNegative, Is.False);
        Assert.That(_server.Counters[MsCounter.MalformedMessage] + _server.Counters[MsCounter.UnsupportedMessageType], Is.EqualTo(sent), "every bad datagram counted once");
    }

    [Test]
    public void TwoXtrs_AreMergedWhenTheyAsk_OtherwiseTheLatestWins()
    {
        var a = Register(1000, "10.1.0.7", 32, 1, ("192.0.2.2", 1, null));
        var b = Register(1000, "10.1.0.7", 32, 2, ("192.0.2.3", 1, null));
        RegisterAndWaitForNotify(a, PlannersKey);
        RegisterAndWaitForNotify(b, PlannersKey);
        Assert.That(Ask(1000, "10.1.0.7").Records[0].Locators.Select(l => l.Locator.ToString()), Is.EqualTo(new[] { "192.0.2.3" }), "without merge, the latest registration");
        a.MergeRequest = true;
        RegisterAndWaitForNotify(a, PlannersKey);
        Assert.That(Ask(1000, "10.1.0.7").Records[0].Locators.Select(l => l.Locator.ToString()), Is.EquivalentTo(new[] { "192.0.2.2", "192.0.2.3" }), "merged by xTR-ID");
        Assert.That(_server.Store.TryGet(new EidKey(1000, EidFamily.Ipv4, 0x0A010007, 32), out var reg) ? reg.ByXtr.Count : 0, Is.EqualTo(2));
    }

    [Test]
    public void ConsecutiveAnswers_FromOneWorker_CarryNothingOfTheOneBefore()
    {
        // Each worker refills one reply object for every answer: a longer answer, a shorter one, a negative one
        // and a constrained one in a row must each come out exactly as if encoded alone.
        RegisterAndWaitForNotify(Register(1000, "10.1.0.20", 32, 31, ("192.0.2.2", 1, null), ("192.0.2.3", 2, null)), PlannersKey);
        RegisterAndWaitForNotify(Register(1000, "10.1.0.21", 32, 31, ("192.0.2.4", 3, null)), PlannersKey);
        RegisterInference();
        for (int round = 0; round < 2; round++)
        {
            var two = Ask(1000, "10.1.0.20").Records.Single();
            Assert.That(two.Locators.Select(l => (l.Locator.ToString(), l.Priority)), Is.EqualTo(new[] { ("192.0.2.2", (byte)1), ("192.0.2.3", (byte)2) }));
            Assert.That((two.EidPrefix.ToString(), two.EidMaskLength, two.Action, two.TtlMinutes), Is.EqualTo((Eid(1000, "10.1.0.20").ToString(), (byte)32, MapReplyAction.NoAction, 1440u)));
            var one = Ask(1000, "10.1.0.21").Records.Single();
            Assert.That(one.Locators.Select(l => (l.Locator.ToString(), l.Priority)), Is.EqualTo(new[] { ("192.0.2.4", (byte)3) }), "no locator of the longer answer before it");
            Assert.That(one.EidPrefix.ContentEquals(Eid(1000, "10.1.0.21")), Is.True);
            var none = Ask(1000, "10.1.77.1").Records.Single();
            Assert.That((none.IsNegative, none.Action, none.EidPrefix.InstanceIdOrNull, none.MapVersion), Is.EqualTo((true, MapReplyAction.NativelyForward, (uint?)1000u, (ushort)0)));
            var gpu = Ask(1000, "10.1.0.50", """{"agent-constraints":{"hardware":["gpu"]}}""").Records.Single();
            Assert.That(gpu.Locators, Has.Count.EqualTo(1));
            Assert.That(ContextEncoding.ReadLocator(gpu.Locators[0].Locator, out var ctx, out _).ToString(), Is.EqualTo("192.0.2.3"));
            Assert.That(ctx?.HasHardware("gpu"), Is.True, "a constrained requester gets the attributes");
            var denied = Ask(1000, "10.1.0.50", """{"agent-constraints":{"min-security-level":5}}""").Records.Single();
            Assert.That((denied.IsNegative, denied.Action, denied.TtlMinutes), Is.EqualTo((true, MapReplyAction.DropPolicyDenied, 1u)));
            var plain = Ask(1000, "10.1.0.50").Records.Single();
            Assert.That(plain.Locators.All(l => l.Locator.Kind == LispAddressKind.Ipv4), Is.True, "and the next plain requester does not");
        }
        // Encoding answers never touched what was registered.
        Assert.That(_server.Store.TryGet(new EidKey(1000, EidFamily.Ipv4, 0x0A010014, 32), out var reg) ? reg.EffectiveRlocs().Select(r => r.Address.ToString()) : [], Is.EqualTo(new[] { "192.0.2.2", "192.0.2.3" }));
    }

    private void RegisterInference(string gw3State = "ready") =>
        RegisterAndWaitForNotify(Register(1000, "10.1.0.50", 32, 9,
            ("192.0.2.2", 1, "\"hardware\":[],\"latency\":\"medium\",\"state\":\"ready\""),
            ("192.0.2.3", 1, $"\"hardware\":[\"gpu\"],\"latency\":\"low\",\"state\":\"{gw3State}\",\"load\":50")), PlannersKey);

    [Test]
    public void Constraints_FilterAndPrioritise_AndOnlyConstrainedRequestersGetAttributes()
    {
        RegisterInference();
        var plain = Ask(1000, "10.1.0.50");
        Assert.That(plain.Records[0].Locators.Select(l => (l.Locator.ToString(), l.Priority, l.Weight)),
            Is.EqualTo(new[] { ("192.0.2.3", (byte)1, (byte)25), ("192.0.2.2", (byte)2, (byte)50) }), "low latency first; weight scaled by load 50");
        Assert.That(plain.Records[0].Locators.All(l => l.Locator.Kind == LispAddressKind.Ipv4), Is.True, "a legacy requester gets plain addresses");

        var gpu = Ask(1000, "10.1.0.50", """{"agent-constraints":{"hardware":["gpu"]}}""");
        Assert.That(gpu.Records[0].Locators, Has.Count.EqualTo(1));
        var address = ContextEncoding.ReadLocator(gpu.Records[0].Locators[0].Locator, out var ctx, out _);
        Assert.That((address.ToString(), ctx?.HasHardware("gpu")), Is.EqualTo(("192.0.2.3", (bool?)true)), "attributes travel to constrained requesters");

        var lowSecurity = Ask(1000, "10.1.0.50", """{"agent-constraints":{"min-security-level":5}}""");
        Assert.That((lowSecurity.Records[0].IsNegative, lowSecurity.Records[0].Action, lowSecurity.Records[0].TtlMinutes), Is.EqualTo((true, MapReplyAction.DropPolicyDenied, 1u)));
        Assert.That(_server.Counters[MsCounter.ConstraintsReceived], Is.EqualTo(2));
    }

    [Test]
    public void Draining_MovesPlainRequestersAway_AndDeniesGpuRequesters()
    {
        RegisterInference("draining");
        Assert.That(Ask(1000, "10.1.0.50").Records[0].Locators.Select(l => l.Locator.ToString()), Is.EqualTo(new[] { "192.0.2.2" }));
        var gpu = Ask(1000, "10.1.0.50", """{"agent-constraints":{"hardware":["gpu"]}}""");
        Assert.That((gpu.Records[0].IsNegative, gpu.Records[0].Action), Is.EqualTo((true, MapReplyAction.DropPolicyDenied)));
        Assert.That(_server.Counters[MsCounter.PolicyDeniedRepliesSent], Is.EqualTo(1));
    }

    [Test]
    public void MalformedConstraints_AreAnsweredAsIfNoneWereSent_AndCounted()
    {
        RegisterInference();
        var request = new MapRequest { Nonce = 77, SourceEid = LispAddress.AfiList(Eid(1000, "10.1.9.9"), LispAddress.Json("{\"agent-constraints\": [broken")) };
        var local = (IPEndPoint)_client.LocalEndPoint!;
        request.ItrRlocs.Add(LispAddress.FromIp(local.Address));
        request.Records.Add(new MapRequestRecord(Eid(1000, "10.1.0.50"), 32));
        var ecm = new EncapsulatedControlMessage { InnerSourcePort = (ushort)local.Port };
        ecm.SetInnerAddresses(IPAddress.Parse("10.1.9.9"), IPAddress.Parse("10.1.0.50"));
        ecm.SetInnerMessage(request.ToArray());
        Send(ecm.ToArray());
        var reply = new MapReply();
        reply.Decode(Receive()!);
        Assert.That(reply.Records[0].Locators, Has.Count.EqualTo(2));
        Assert.That(_server.Counters[MsCounter.ConstraintsMalformed], Is.EqualTo(1));
    }

    [Test]
    public void AttributeUpdate_InPlace_NeverResolvesNegatively()
    {
        RegisterInference();
        using var stop = new CancellationTokenSource();
        int negative = 0, answered = 0;
        var reader = Task.Run(() =>
        {
            using var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            s.ReceiveTimeout = 1000;
            var local = (IPEndPoint)s.LocalEndPoint!;
            byte[] buffer = new byte[65536];
            var reply = new MapReply();
            while (!stop.IsCancellationRequested)
            {
                var request = new MapRequest { Nonce = 5 };
                request.ItrRlocs.Add(LispAddress.FromIp(local.Address));
                request.Records.Add(new MapRequestRecord(Eid(1000, "10.1.0.50"), 32));
                var ecm = new EncapsulatedControlMessage { InnerSourcePort = (ushort)local.Port };
                ecm.SetInnerAddresses(IPAddress.Parse("10.1.9.9"), IPAddress.Parse("10.1.0.50"));
                ecm.SetInnerMessage(request.ToArray());
                s.SendTo(ecm.ToArray(), _endpoint);
                try
                {
                    int n = s.Receive(buffer);
                    reply.Decode(buffer.AsSpan(0, n));
                    answered++;
                    if (reply.Records[0].IsNegative) negative++;
                }
                catch (SocketException) { }
            }
        });
        var until = DateTime.UtcNow.AddSeconds(10);
        for (int i = 0; i < 60 || (Volatile.Read(ref answered) < 200 && DateTime.UtcNow < until); i++) RegisterInference(i % 2 == 0 ? "busy" : "ready");
        stop.Cancel();
        reader.Wait();
        Assert.That(answered, Is.GreaterThanOrEqualTo(200), "requests overlapped the updates");
        Assert.That(negative, Is.EqualTo(0), "no answer in between was negative");
        Assert.That(_server.Counters[MsCounter.AttributeUpdatesInPlace], Is.GreaterThanOrEqualTo(59));
    }

    [Test]
    public void Unregistered_NegativeReply_CoversTheEidButNoRegistration()
    {
        RegisterAndWaitForNotify(Register(1000, "10.1.2.0", 24, 1, ("192.0.2.2", 1, null)), PlannersKey);
        var inSite = Ask(1000, "10.1.200.1").Records[0];
        Assert.That((inSite.IsNegative, inSite.Action, inSite.TtlMinutes, inSite.EidMaskLength), Is.EqualTo((true, MapReplyAction.NativelyForward, 1u, (byte)17)),
            "10.1.128.0/17 is the widest prefix around 10.1.200.1 that misses 10.1.2.0/24");
        var outside = Ask(1000, "172.16.0.1").Records[0];
        Assert.That((outside.IsNegative, outside.TtlMinutes, outside.EidMaskLength), Is.EqualTo((true, 15u, (byte)1)), "outside every site: 15 minutes (RFC 9301)");
        Assert.That(Ask(4000, "10.1.0.1").Records[0].EidMaskLength, Is.EqualTo(0), "an IID with nothing registered: the whole space");
    }

    /// <summary>
    /// The issue's case and a reference over random EIDs: a negative answer never covers a configured site prefix,
    /// registered or not (an ITR would cache it and black-hole the site once it registers), and inside a
    /// configured-but-unregistered site it stays within the site with the short unregistered TTL.
    /// </summary>
    [Test]
    public void NegativeReply_NeverCoversAConfiguredSite_AndMatchesAReference()
    {
        TearDown();
        Start("""
            listen 127.0.0.1:0
            map-request-rate 100000 100000
            site one
              key 0 sha256 "one-secret"
              eid-prefix 1000 10.1.0.0/24
            site two
              key 0 sha256 "two-secret"
              eid-prefix 1000 10.2.0.0/24
              eid-prefix 1000 10.64.0.0/12 accept-more-specifics
            """);
        RegisterAndWaitForNotify(Register(1000, "10.1.0.0", 24, 1, ("192.0.2.2", 1, null)), "one-secret"u8.ToArray());
        var issue = Ask(1000, "10.3.0.5").Records[0];
        Assert.That((issue.IsNegative, issue.TtlMinutes, issue.EidMaskLength), Is.EqualTo((true, 15u, (byte)16)), "10.2.0.0/15 would hide site two: 10.3.0.0/16 is the answer");
        var unregistered = Ask(1000, "10.2.0.7").Records[0];
        Assert.That((unregistered.IsNegative, unregistered.TtlMinutes, unregistered.EidMaskLength), Is.EqualTo((true, 1u, (byte)24)), "the site's own prefix, for a minute");
        Assert.That(Ask(1000, "10.250.0.1").Records[0].EidMaskLength, Is.EqualTo((byte)9), "not 0.0.0.0/0 while sites are configured");

        (uint Prefix, int Length)[] known = [(0x0A010000, 24), (0x0A020000, 24), (0x0A400000, 12)];
        (uint Prefix, int Length)[] sites = known;
        var rng = new Random(14);
        for (int i = 0; i < 300; i++)
        {
            uint eid = i % 2 == 0 ? 0x0A000000u | (uint)rng.Next(0, 1 << 24) : (uint)rng.Next();
            if ((eid & 0xFFFFFF00) == 0x0A010000) continue; // registered
            bool Overlaps(uint p, int plen, int L) => EidPrefix.Mask(p, EidFamily.Ipv4, Math.Min(L, plen)) == EidPrefix.Mask(eid, EidFamily.Ipv4, Math.Min(L, plen));
            // Reference: the shortest length whose prefix around the EID lies inside every site prefix holding the
            // EID and overlaps no other known prefix.
            int expected = Enumerable.Range(0, 33).First(L => known.All(k =>
                Overlaps(k.Prefix, k.Length, k.Length) ? L >= k.Length : !Overlaps(k.Prefix, k.Length, L)));
            var record = Ask(1000, Ipv4Header.ToAddress(eid).ToString()).Records[0];
            bool inSite = sites.Any(k => EidPrefix.Mask(eid, EidFamily.Ipv4, k.Length) == k.Prefix);
            Assert.That((record.IsNegative, (int)record.EidMaskLength, record.TtlMinutes), Is.EqualTo((true, expected, inSite ? 1u : 15u)), $"eid {Ipv4Header.ToAddress(eid)}");
        }
    }

    [Test]
    public void NegativePrefix_MatchesABruteForceReference()
    {
        var store = new RegistrationStore();
        var rng = new Random(9301);
        var site = MapServerConfig.Parse(Config.Split('\n')).Sites[0];
        var prefixes = new List<(UInt128 Prefix, int Length)>();
        for (int i = 0; i < 200; i++)
        {
            int len = rng.Next(8, 33);
            UInt128 p = EidPrefix.Mask((uint)rng.Next(), EidFamily.Ipv4, len);
            prefixes.Add((p, len));
            store.Register(new EidKey(1, EidFamily.Ipv4, p, len), site, new XtrRegistration(1, 0, new IPEndPoint(IPAddress.Loopback, 1), [], false, 1, 0, DateTime.UtcNow, DateTime.UtcNow, long.MaxValue));
        }
        // Random EIDs, and the edges: the ends of the space and the addresses just outside every registered prefix
        // (below the lowest and above the highest registration included).
        var eids = Enumerable.Range(0, 2000).Select(_ => (uint)rng.Next()).Concat([0u, uint.MaxValue])
            .Concat(prefixes.SelectMany(p => new[] { (uint)p.Prefix - 1, (uint)p.Prefix + (uint)(1UL << (32 - p.Length)) }));
        foreach (uint eid in eids)
        {
            if (store.TryLookup(1, EidFamily.Ipv4, eid, out _)) continue;
            // Reference: the shortest length whose prefix around the EID overlaps no registered prefix.
            int expected = Enumerable.Range(0, 33).First(L => prefixes.All(p =>
                EidPrefix.Mask(p.Prefix, EidFamily.Ipv4, Math.Min(L, p.Length)) != EidPrefix.Mask(eid, EidFamily.Ipv4, Math.Min(L, p.Length))));
            Assert.That(store.NegativePrefixLength(1, EidFamily.Ipv4, eid), Is.EqualTo(expected), $"eid {eid:x8}");
        }
    }

    [Test]
    public void ControlApi_ServesRegistrationsAndStatus_AsJson_AndASecondServerOnTheSocketIsRefused()
    {
        string sock = Path.Combine(Path.GetTempPath(), $"fxms-{Environment.ProcessId}-{Guid.NewGuid():N}.sock");
        string config = Config.Replace("listen 127.0.0.1:0", $"listen 127.0.0.71:4342\ncontrol-socket {sock}", StringComparison.Ordinal);
        using (var server = new MapServerHost(MapServerConfig.Parse(config.Split('\n')), workers: 1, NullLogger.Instance))
        {
            Assert.That(File.GetUnixFileMode(sock), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite), "mode 0600");
            var register = Register(1000, "10.1.0.60", 32, 0x66, ("192.0.2.6", 1, "\"state\":\"ready\""));
            _client.SendTo(register.ToSignedArray(PlannersKey), server.BoundEndpoints[0]);
            Assert.That(ReceiveFromSocket(2000), Is.Not.Null, "Map-Notify");

            var (status, registrations) = FastXtr.Common.Api.UnixSocketClient.Send(sock, HttpMethod.Get, "/v1/registrations");
            Assert.That(status, Is.EqualTo(200));
            var row = registrations!.AsArray().Single();
            Assert.That((row!["site"]!.GetValue<string>(), row["eid"]!.GetValue<string>(), row["rlocs"]![0]!["address"]!.GetValue<string>(), row["rlocs"]![0]!["attributes"]!["state"]!.GetValue<string>()),
                Is.EqualTo(("planners", "10.1.0.60/32", "192.0.2.6", "ready")));

            var (statusCode, counters) = FastXtr.Common.Api.UnixSocketClient.Send(sock, HttpMethod.Get, "/v1/status");
            Assert.That((statusCode, counters!["registrations"]!.GetValue<long>(), counters["map-registers-accepted"]!.GetValue<long>()), Is.EqualTo((200, 1L, 1L)));
            Assert.That(counters["gc-pause-total-ms"], Is.Not.Null);
            Assert.That(counters["gc-allocated-bytes"]!.GetValue<long>(), Is.GreaterThan(0));

            var (missing, error) = FastXtr.Common.Api.UnixSocketClient.Send(sock, HttpMethod.Get, "/v1/nothing");
            Assert.That((missing, error!["error"]!.GetValue<string>()), Is.EqualTo((404, "no such resource: GET /v1/nothing (see GET /v1/registrations, /v1/status, /v1/referral-cache)")));

            string other = config.Replace("127.0.0.71:4342", "127.0.0.72:4342", StringComparison.Ordinal);
            var second = Assert.Throws<ConfigException>(() => new MapServerHost(MapServerConfig.Parse(other.Split('\n')), workers: 1, NullLogger.Instance).Dispose());
            Assert.That(second!.Message, Does.Contain($"api socket {sock} is in use"));
        }
        Assert.That(File.Exists(sock), Is.False, "the socket file goes with the server");
    }

    [Test]
    public void ASecondServer_OnTheSamePort_IsRefused_InsteadOfSharingIt()
    {
        // Our workers share the port through SO_REUSEPORT; another process (or host) must not quietly join them.
        var taken = Config.Replace("listen 127.0.0.1:0", $"listen 127.0.0.1:{_endpoint.Port}", StringComparison.Ordinal);
        var e = Assert.Throws<ConfigException>(() => new MapServerHost(MapServerConfig.Parse(taken.Split('\n')), workers: 1, NullLogger.Instance, controlSocket: false).Dispose());
        Assert.That(e!.Message, Does.Contain($"cannot listen on 127.0.0.1:{_endpoint.Port}: the port is in use"));
        Assert.That(Ask(1000, "10.1.0.99").Records[0].IsNegative, Is.True, "the first server still answers");
    }

    [Test]
    public void OneMapRegister_ManyRecords_EachKeepsItsOwnLocators()
    {
        // Consecutive records with the same locators share one stored locator set; a record that differs must not.
        var m = Register(1000, "10.1.0.30", 32, 41, ("192.0.2.2", 1, null));
        foreach (var (eid, rloc, priority) in new[] { ("10.1.0.31", "192.0.2.2", (byte)1), ("10.1.0.32", "192.0.2.9", (byte)1), ("10.1.0.33", "192.0.2.2", (byte)4) })
        {
            var rec = new MappingRecord { TtlMinutes = 1440, EidMaskLength = 32, Authoritative = true, EidPrefix = Eid(1000, eid) };
            rec.Locators.Add(new LocatorRecord(LispAddress.Parse(rloc), priority, 50));
            m.Records.Add(rec);
        }
        RegisterAndWaitForNotify(m, PlannersKey);
        string Answer(string eid) => string.Join(";", Ask(1000, eid).Records[0].Locators.Select(l => $"{l.Locator} p{l.Priority}"));
        Assert.That(new[] { Answer("10.1.0.30"), Answer("10.1.0.31"), Answer("10.1.0.32"), Answer("10.1.0.33") },
            Is.EqualTo(new[] { "192.0.2.2 p1", "192.0.2.2 p1", "192.0.2.9 p1", "192.0.2.2 p4" }));
    }

    [Test]
    public void AnIpv6Listener_AnswersToo()
    {
        // IPv4 workers batch their socket I/O; an IPv6 listener is served message by message: both must answer.
        using var server = new MapServerHost(MapServerConfig.Parse(Config.Replace("listen 127.0.0.1:0", "listen [::1]:0", StringComparison.Ordinal).Split('\n')), workers: 1, NullLogger.Instance, controlSocket: false);
        using var client = new Socket(AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp);
        client.Bind(new IPEndPoint(IPAddress.IPv6Loopback, 0));
        client.ReceiveTimeout = 2000;
        var request = new MapRequest { Nonce = 0x6666 };
        request.ItrRlocs.Add(LispAddress.FromIp(IPAddress.IPv6Loopback));
        request.Records.Add(new MapRequestRecord(Eid(1000, "10.1.66.6"), 32));
        client.SendTo(request.ToArray(), server.BoundEndpoints[0]);
        byte[] buffer = new byte[2048];
        int n = client.Receive(buffer);
        var reply = new MapReply();
        Assert.That(reply.TryDecode(buffer.AsSpan(0, n)).Ok, Is.True);
        Assert.That((reply.Nonce, reply.Records[0].IsNegative), Is.EqualTo((0x6666UL, true)));
    }

    [Test]
    public void Registration_ExpiresWhenNotRefreshed()
    {
        RegisterAndWaitForNotify(Register(1000, "10.1.0.8", 32, 1, ("192.0.2.2", 1, null)), PlannersKey);
        Assert.That(Ask(1000, "10.1.0.8").Records[0].IsNegative, Is.False);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (_server.Store.Count > 0 && DateTime.UtcNow < deadline) Thread.Sleep(100);
        Assert.That(_server.Store.Count, Is.EqualTo(0), "registration-timeout 2 s passed without a refresh");
        Assert.That(Ask(1000, "10.1.0.8").Records[0].IsNegative, Is.True);
        Assert.That(_server.Counters[MsCounter.RegistrationsExpired], Is.EqualTo(1));
    }

    [Test]
    public void NoProxyReply_ForwardsTheRequestToTheRegisteredEtr()
    {
        using var etr = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        etr.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.9"), LispPorts.Control));
        etr.ReceiveTimeout = 2000;
        var reg = Register(3000, "10.3.0.1", 32, 1, ("127.0.0.9", 1, null));
        RegisterAndWaitForNotify(reg, "relay-secret"u8.ToArray());
        Send(Ecm(3000, "10.3.0.1", nonce: 4242));
        byte[] buffer = new byte[65536];
        int n = etr.Receive(buffer);
        var forwarded = new EncapsulatedControlMessage();
        Assert.That(forwarded.TryDecode(buffer.AsSpan(0, n)).Ok, Is.True);
        Assert.That(forwarded.ToEtr, Is.True, "the E bit marks a request forwarded to an ETR");
        var inner = new MapRequest();
        inner.Decode(forwarded.InnerMessage);
        Assert.That(inner.Nonce, Is.EqualTo(4242UL));
        Assert.That(_server.Counters[MsCounter.MapRequestsForwarded], Is.EqualTo(1));
        Assert.That(Receive(300), Is.Null, "the Map-Server itself does not answer");
    }

    /// <summary>
    /// Two Map-Registers of one xTR reordered on the wire (RFC 9302 map-versions): a register older than a withdrawal
    /// that was already processed stays without effect, unconfirmed and counted; a newer one is taken; records
    /// without a version (version 0, as most deployed xTRs send) keep the plain last-one-wins behaviour.
    /// </summary>
    [Test]
    public void ReorderedRegisters_OfOneXtr_NeverUndoAWithdrawal()
    {
        MapRegister Versioned(ushort version, bool withdraw)
        {
            var m = Register(1000, "10.1.0.70", 32, 0x70, ("192.0.2.7", 1, null));
            m.Records[0].MapVersion = version;
            if (withdraw) { m.Records[0].TtlMinutes = 0; m.Records[0].Locators.Clear(); }
            return m;
        }
        bool Registered() => _server.Store.TryLookup(1000, EidFamily.Ipv4, 0x0A010046, out _);
        RegisterAndWaitForNotify(Versioned(4095, withdraw: false), PlannersKey);
        RegisterAndWaitForNotify(Versioned(1, withdraw: true), PlannersKey); // 4095 → 1 wraps past the null version
        Assert.That(Registered(), Is.False);

        Send(Versioned(4095, withdraw: false).ToSignedArray(PlannersKey)); // the first register, late
        Assert.That(Receive(500), Is.Null, "nothing registered, nothing confirmed");
        Assert.That((Registered(), _server.Counters[MsCounter.RegisterStaleVersion], _server.Counters[MsCounter.MapNotifiesWithheld]), Is.EqualTo((false, 1L, 1L)));

        RegisterAndWaitForNotify(Versioned(2, withdraw: false), PlannersKey);
        Assert.That(Registered(), Is.True, "a newer version registers again");
        Send(Versioned(1, withdraw: true).ToSignedArray(PlannersKey)); // the withdrawal, late
        Assert.That(Receive(500), Is.Null);
        Assert.That((Registered(), _server.Counters[MsCounter.RegisterStaleVersion]), Is.EqualTo((true, 2L)), "a late withdrawal does not undo the newer register");

        RegisterAndWaitForNotify(Versioned(0, withdraw: true), PlannersKey);
        RegisterAndWaitForNotify(Versioned(0, withdraw: false), PlannersKey);
        Assert.That(Registered(), Is.True, "without versions the last message wins, as before");
    }

    [Test]
    public void MapVersions_CompareInSerialArithmetic()
    {
        Assert.That(MapVersioning.IsNewer(2, 1), Is.True);
        Assert.That(MapVersioning.IsNewer(1, 4095), Is.True, "wrapped");
        Assert.That(MapVersioning.IsNewer(4095, 1), Is.False);
        Assert.That(MapVersioning.IsNewer(2049, 1), Is.True, "2^11 apart: still newer");
        Assert.That(MapVersioning.IsNewer(2050, 1), Is.False, "more than 2^11 apart: older");
        Assert.That(MapVersioning.IsNewer(5, 0) || MapVersioning.IsNewer(0, 5) || MapVersioning.IsNewer(7, 7), Is.False, "the null version and equal versions are never newer");
    }

    /// <summary>RFC 9301 §5.7: the Map-Notify confirms what was registered, so a refused record is absent from it.</summary>
    [Test]
    public void RefusedRecord_IsNotConfirmed_ByTheMapNotify()
    {
        var m = Register(1000, "10.1.0.71", 32, 0x71, ("192.0.2.7", 1, null));
        var bad = new MappingRecord { TtlMinutes = 1440, EidMaskLength = 32, Authoritative = true, EidPrefix = Eid(1000, "10.1.0.72") };
        // An AFI-List LCAF whose JSON is not agent context: refused as invalid attributes.
        bad.Locators.Add(new LocatorRecord(LispAddress.AfiList(LispAddress.Parse("192.0.2.8"), LispAddress.Json("{\"agent-context\":[1,2]}")), 1, 50));
        m.Records.Add(bad);
        var notify = RegisterAndWaitForNotify(m, PlannersKey);
        Assert.That(_server.Counters[MsCounter.RegisterInvalidAttributes], Is.EqualTo(1));
        Assert.That(notify.Records.Select(r => r.EidPrefix.ToString()), Is.EqualTo(new[] { Eid(1000, "10.1.0.71").ToString() }), "only the registered record is confirmed");
    }

    /// <summary>The Map-Notify carries the Key ID the ETR used, not the configured key's number, as OOR expects.</summary>
    [Test]
    public void MapNotify_EchoesTheKeyIdOfTheRegister()
    {
        var m = Register(1000, "10.1.0.73", 32, 0x73, ("192.0.2.7", 1, null));
        m.KeyId = 0; // the site's SHA-1 key is configured as key 7; the ETR says 0 (OOR always does)
        m.AlgorithmId = AuthenticationAlgorithm.HmacSha1;
        var notify = RegisterAndWaitForNotify(m, "old-secret"u8.ToArray());
        Assert.That((notify.KeyId, notify.AlgorithmId), Is.EqualTo(((ushort)0, AuthenticationAlgorithm.HmacSha1)));
    }

    /// <summary>An ETR that sets the P bit (proxy Map-Reply, RFC 9301 §5.6) is answered for by the Map-Server.</summary>
    [Test]
    public void ProxyReplyBit_TheMapServerAnswersInsteadOfForwarding()
    {
        var reg = Register(3000, "10.3.0.2", 32, 2, ("127.0.0.9", 1, null));
        reg.ProxyMapReply = true;
        RegisterAndWaitForNotify(reg, "relay-secret"u8.ToArray());
        var reply = Ask(3000, "10.3.0.2");
        Assert.That(reply.Records[0].Locators.Select(l => l.Locator.ToString()), Is.EqualTo(new[] { "127.0.0.9" }));
        Assert.That(_server.Counters[MsCounter.MapRequestsForwarded], Is.EqualTo(0));
    }

    [Test]
    public void RateLimit_AFloodFromOneSourceIsCutToTheBucket()
    {
        TearDown();
        Start(Config.Replace("map-request-rate 100000 100000", "map-request-rate 5 20"));
        RegisterAndWaitForNotify(Register(1000, "10.1.0.5", 32, 11, ("192.0.2.2", 1, null)), PlannersKey);
        byte[] ecm = Ecm(1000, "10.1.0.5");
        for (int i = 0; i < 300; i++) Send(ecm);
        int replies = 0;
        while (Receive(300) is not null) replies++;
        Assert.That(replies, Is.InRange(20, 30), "the burst of 20 and a few refills");
        Assert.That(_server.Counters[MsCounter.RateLimitedMapRequest], Is.GreaterThanOrEqualTo(270));
    }

    [Test]
    public void RateLimiter_SpoofedSources_KeepMemoryBoundedAndShareOneBucket()
    {
        var limiter = new RateLimiter(perSecond: 1, burst: 10, sources: 64);
        long bytes = limiter.MemoryBytes;
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        int admitted = 0;
        for (uint s = 0; s < 100_000; s++) if (limiter.TryAcquire(s, now)) admitted++;
        Assert.That(limiter.MemoryBytes, Is.EqualTo(bytes));
        Assert.That(admitted, Is.LessThanOrEqualTo(64 * 10 + 10), "each tracked source's burst plus the shared bucket");
        Assert.That(limiter.OverflowAdmissions, Is.GreaterThan(90_000));
    }

    [TestCase("bogus 1", "line 1: unknown setting 'bogus'")]
    [TestCase("listen 999.1.1.1", "line 1")]
    [TestCase("site a\n  eid-prefix 1 10.0.0.0/8", "site 'a' has no key")]
    [TestCase("site a\n  key 0 md5 \"x\"\n  eid-prefix 1 10.0.0.0/8", "line 2: algorithm 'md5' is not sha1 or sha256")]
    [TestCase("site a\n  key 0 sha256 \"x\"\n  eid-prefix 1 10.0.0.0/33", "line 3")]
    [TestCase("site a\n  key 0 sha256 \"x\"\n  eid-prefix 1 10.0.0.0/8\nsite b\n  key 0 sha256 \"y\"\n  eid-prefix 1 10.1.0.0/16", "overlapping EID space")]
    [TestCase("  key 0 sha256 \"x\"", "line 1: 'key' is indented but no 'site NAME' line precedes it")]
    [TestCase("site a\n  key 0 sha256 \"unterminated", "line 2: unterminated quote")]
    [TestCase("registration-timeout -5", "line 1: registration-timeout '-5' must be a number")]
    public void InvalidConfiguration_IsRefusedWithTheLineAndReason(string text, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => MapServerConfig.Parse(text.Split('\n'), "test.conf"));
        Assert.That(e!.Message, Does.Contain(expected));
    }

    [Test]
    public void ExampleConfiguration_Parses()
    {
        string dir = TestContext.CurrentContext.TestDirectory;
        while (!File.Exists(Path.Combine(dir, "FastXtr.sln"))) dir = Path.GetDirectoryName(dir)!;
        var cfg = MapServerConfig.Load(Path.Combine(dir, "controlagent", "MapServer", "mapserver.example.conf"));
        Assert.That(cfg.Sites.Select(s => s.Name), Is.EqualTo(new[] { "planners", "tenants" }));
        Assert.That(cfg.Sites[0].Prefixes, Has.Count.EqualTo(2));
    }

    // ---- publish/subscribe (RFC 9437) and moves ----

    private MapNotify? ReceiveNotify(byte[] key, int timeoutMs = 2000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (DateTime.UtcNow < deadline)
        {
            var bytes = Receive((int)Math.Max(1, (deadline - DateTime.UtcNow).TotalMilliseconds));
            if (bytes is null) return null;
            if (LispMessage.PeekType(bytes) != LispMessageType.MapNotify) continue;
            Assert.That(MessageAuthentication.Verify(bytes, key), Is.EqualTo(AuthenticationFailure.None), "publications are authenticated");
            var n = new MapNotify();
            n.Decode(bytes);
            return n;
        }
        return null;
    }

    private void Subscribe(string? constraints = null)
    {
        // The subscriber is itself an xTR of the site (xTR-ID 0x55): that is the security association RFC 9437 uses.
        RegisterAndWaitForNotify(Register(1000, "10.1.0.99", 32, 0x55, ("192.0.2.9", 1, null)), PlannersKey);
        ulong nonce = 31337;
        Send(Ecm(1000, "10.1.0.50", constraints, nonce, subscribe: true, xtrId: 0x55));
        Subscribed(nonce, 0x55);
        Assert.That(_server.Publisher!.SubscriptionCount, Is.EqualTo(1));
    }

    /// <summary>
    /// The answers to a subscribing request: its Map-Reply, then the subscription's acknowledgement (RFC 9437's subscribe procedure), a
    /// Map-Notify under the request's nonce for the subscriber's xTR-ID, signed with the site's key; acknowledged here
    /// unless <paramref name="ack"/> is false.
    /// </summary>
    private (MapReply Reply, MapNotify Notify) Subscribed(ulong nonce, UInt128 xtrId, bool ack = true)
    {
        var reply = new MapReply();
        reply.Decode(Receive() ?? throw new AssertionException("no Map-Reply to the subscribing request"));
        Assert.That(reply.Nonce, Is.EqualTo(nonce), "the Map-Reply comes first");
        var notify = ReceiveNotify(PlannersKey) ?? throw new AssertionException("no Map-Notify acknowledging the subscription");
        Assert.That((notify.Nonce, notify.XtrIdPresent, notify.XtrId, notify.Records.Count), Is.EqualTo((nonce, true, xtrId, 1)), "the subscription's acknowledgement");
        if (ack) Ack(notify);
        return (reply, notify);
    }

    private void Ack(MapNotify n)
    {
        var ack = new MapNotify(isAck: true) { Nonce = n.Nonce, AlgorithmId = AuthenticationAlgorithm.HmacSha256, XtrIdPresent = true, XtrId = n.XtrId };
        foreach (var r in n.Records) ack.Records.Add(r);
        Send(ack.ToSignedArray(PlannersKey));
    }

    [Test]
    public void Subscriber_GetsEveryChange_AndAnAckedOneIsNotRepeated()
    {
        RegisterInference();
        Subscribe();
        RegisterInference("busy");
        var n = ReceiveNotify(PlannersKey);
        Assert.That(n, Is.Not.Null, "a state change is published");
        Assert.That(n!.Records[0].EidPrefix.ContentEquals(Eid(1000, "10.1.0.50")), Is.True);
        Assert.That(n.Records[0].Locators, Has.Count.EqualTo(2));
        Assert.That((n.XtrIdPresent, n.XtrId), Is.EqualTo((true, (UInt128)0x55)));
        Ack(n);
        Assert.That(ReceiveNotify(PlannersKey, 1800), Is.Null, "acknowledged: not sent again");
        Assert.That(_server.Counters[MsCounter.NotifyRetransmissions], Is.EqualTo(0));

        // An RLOC that moves is published as well.
        RegisterAndWaitForNotify(Register(1000, "10.1.0.50", 32, 9, ("192.0.2.4", 1, "\"state\":\"ready\"")), PlannersKey);
        var moved = ReceiveNotify(PlannersKey);
        Assert.That(moved!.Records[0].Locators.Select(l => l.Locator.ToString()), Is.EqualTo(new[] { "192.0.2.4" }));
    }

    /// <summary>
    /// RFC 9437: a subscription's publications count up from the subscribing request's nonce, one per publication
    /// (§5), a renewal restarts the count from the renewing request's (§4), and a publication made before the renewal
    /// is not sent again (the ITR takes only the new count now) nor held against the subscriber.
    /// </summary>
    [Test]
    public void PublicationNonces_CountUpFromTheSubscribingRequests_AndARenewalRestartsThem()
    {
        RegisterInference();
        Subscribe(); // request nonce 31337
        var nonces = new List<ulong>();
        for (int i = 0; i < 3; i++)
        {
            RegisterInference(i % 2 == 0 ? "busy" : "ready");
            var n = ReceiveNotify(PlannersKey) ?? throw new AssertionException($"publication {i}");
            nonces.Add(n.Nonce);
            Ack(n);
        }
        Assert.That(nonces, Is.EqualTo(new ulong[] { 31338, 31339, 31340 }));

        // Renewed with another nonce (the count near the top of the range, to cross the wrap).
        ulong renewal = ulong.MaxValue - 1;
        Send(Ecm(1000, "10.1.0.50", null, renewal, subscribe: true, xtrId: 0x55));
        Subscribed(renewal, 0x55);
        Assert.That(_server.Publisher!.SubscriptionCount, Is.EqualTo(1));
        RegisterInference("ready");
        var a = ReceiveNotify(PlannersKey)!;
        Ack(a);
        RegisterInference("busy");
        var b = ReceiveNotify(PlannersKey)!;
        Assert.That((a.Nonce, b.Nonce), Is.EqualTo((ulong.MaxValue, 0UL)), "counted from the renewing request's, wrapping");

        // b left unacknowledged, and the subscription renewed before its retransmission: it is superseded, not sent
        // again, and the subscriber is kept.
        Send(Ecm(1000, "10.1.0.50", null, 777, subscribe: true, xtrId: 0x55));
        Subscribed(777, 0x55);
        Assert.That(ReceiveNotify(PlannersKey, 1800), Is.Null, "the superseded publication is not sent again");
        Assert.That((_server.Counters[MsCounter.PublicationsSuperseded], _server.Counters[MsCounter.NotifyRetransmissions], _server.Publisher!.PendingCount),
            Is.EqualTo((1L, 0L, 0)));
        RegisterInference("ready");
        Assert.That(ReceiveNotify(PlannersKey)!.Nonce, Is.EqualTo(778UL), "still subscribed, counting from 777");
    }

    /// <summary>
    /// RFC 9437's subscribe procedure: a subscription is acknowledged with a Map-Notify under the subscribing request's
    /// nonce, after the request's Map-Reply, with the record the Map-Reply carried (filtered for the subscriber's
    /// constraints) and signed with its site's key; sent again until acknowledged; publications count on from it.
    /// </summary>
    [Test]
    public void ASubscription_IsAcknowledgedWithAMapNotify_SentAgainUntilItsAck()
    {
        RegisterInference();
        RegisterAndWaitForNotify(Register(1000, "10.1.0.99", 32, 0x55, ("192.0.2.9", 1, null)), PlannersKey);
        Send(Ecm(1000, "10.1.0.50", """{"agent-constraints":{"hardware":["gpu"]}}""", 5150, subscribe: true, xtrId: 0x55));
        var (reply, notify) = Subscribed(5150, 0x55, ack: false);
        static string[] Locators(MappingRecord r) => r.Locators.Select(l => l.Locator.ToString()).ToArray();
        Assert.That(notify.Records[0].EidPrefix.ContentEquals(reply.Records[0].EidPrefix), Is.True);
        Assert.That((Locators(notify.Records[0]), notify.Records[0].TtlMinutes), Is.EqualTo((Locators(reply.Records[0]), reply.Records[0].TtlMinutes)), "the record the Map-Reply carried");
        Assert.That(Locators(notify.Records[0]), Has.Length.EqualTo(1), "filtered for the GPU constraint");
        var again = ReceiveNotify(PlannersKey, 1800);
        Assert.That(again?.Nonce, Is.EqualTo(5150UL), "sent again while unacknowledged");
        Ack(again!);
        Poll.Until(() => _server.Publisher!.PendingCount == 0, "the ack ends it");
        RegisterInference("busy");
        var publication = ReceiveNotify(PlannersKey) ?? throw new AssertionException("no publication");
        Assert.That(publication.Nonce, Is.EqualTo(5151UL), "publications count on from the acknowledgement's nonce");
        Assert.That((_server.Counters[MsCounter.SubscriptionAcksSent], _server.Counters[MsCounter.NotifyRetransmissions], _server.Publisher!.SubscriptionCount),
            Is.EqualTo((1L, 1L, 1)));
    }

    /// <summary>
    /// One Map-Request subscribing to two records: each record's acknowledgement and publications count from the
    /// request's nonce (RFC 9437 §4, §5), so the two records' notifications share nonces. Each is still its own: an ack
    /// ends only the notification of the record it carries, the other is sent again until its own ack; an ack that
    /// carries no record matches nothing and is counted.
    /// </summary>
    [Test]
    public void OneRequestSubscribingToTwoRecords_EachRecordsNotificationsAreAckedApart()
    {
        // Quick, with no wait for a retransmission: the fixture's registrations expire after 2 s, and an expiry is a
        // change published too.
        RegisterInference();
        RegisterAndWaitForNotify(Register(1000, "10.1.0.51", 32, 9, ("192.0.2.5", 1, "\"state\":\"ready\"")), PlannersKey);
        RegisterAndWaitForNotify(Register(1000, "10.1.0.99", 32, 0x55, ("192.0.2.9", 1, null)), PlannersKey);
        Send(Ecm(1000, "10.1.0.50", nonce: 4000, subscribe: true, xtrId: 0x55, more: "10.1.0.51"));
        var reply = new MapReply();
        reply.Decode(Receive() ?? throw new AssertionException("no Map-Reply"));
        Assert.That((reply.Nonce, reply.Records.Count), Is.EqualTo((4000UL, 2)));
        static string EidOf(MapNotify n) => n.Records[0].EidPrefix.ToString();
        MapNotify Next(string what) => ReceiveNotify(PlannersKey) ?? throw new AssertionException($"no {what}");
        var acks = new[] { Next("first acknowledgement"), Next("second acknowledgement") }.OrderBy(EidOf).ToArray();
        Assert.That(acks.Select(n => (n.Nonce, EidOf(n))), Is.EqualTo(new[] { (4000UL, Eid(1000, "10.1.0.50").ToString()), (4000UL, Eid(1000, "10.1.0.51").ToString()) }),
            "each record acknowledged under the request's nonce");
        Assert.That(_server.Publisher!.PendingCount, Is.EqualTo(2), "both awaiting their ack");
        long received = _server.Counters[MsCounter.MapNotifyAcksReceived];
        Ack(acks[0]);
        Poll.Until(() => _server.Counters[MsCounter.MapNotifyAcksReceived] == received + 1, "the first acknowledged");
        Assert.That(_server.Publisher.PendingCount, Is.EqualTo(1), "the ack of the first record's ends only the first's");
        Ack(acks[1]);
        Poll.Until(() => _server.Publisher.PendingCount == 0, "the second ended by its own ack");

        // One change of each record: both publications take nonce 4001.
        RegisterInference("busy");
        var p50 = Next("publication of 10.1.0.50");
        RegisterAndWaitForNotify(Register(1000, "10.1.0.51", 32, 9, ("192.0.2.5", 1, "\"state\":\"busy\"")), PlannersKey);
        var p51 = Next("publication of 10.1.0.51");
        Assert.That((p50.Nonce, EidOf(p50), p51.Nonce, EidOf(p51)), Is.EqualTo((4001UL, EidOf(acks[0]), 4001UL, EidOf(acks[1]))));
        Assert.That(_server.Publisher.PendingCount, Is.EqualTo(2));
        long unmatched = _server.Counters[MsCounter.MapNotifyAcksUnmatched];
        var bare = new MapNotify(isAck: true) { Nonce = 4001, AlgorithmId = AuthenticationAlgorithm.HmacSha256, XtrIdPresent = true, XtrId = 0x55 };
        Send(bare.ToSignedArray(PlannersKey));
        Poll.Until(() => _server.Counters[MsCounter.MapNotifyAcksUnmatched] == unmatched + 1, "an ack without a record matches nothing");
        received = _server.Counters[MsCounter.MapNotifyAcksReceived];
        Ack(p51);
        Poll.Until(() => _server.Counters[MsCounter.MapNotifyAcksReceived] == received + 1, "10.1.0.51's publication acknowledged");
        Assert.That(_server.Publisher.PendingCount, Is.EqualTo(1), "10.1.0.50's publication still awaits its own ack");
        Ack(p50);
        Poll.Until(() => _server.Publisher.PendingCount == 0, "and ends with it");
        Assert.That(_server.Counters[MsCounter.MapNotifyAcksUnmatched], Is.EqualTo(unmatched + 1));
    }

    /// <summary>
    /// The publication delay (fastxtr_mapserver_publication_delay_seconds): one observation per change that had
    /// subscribers, from the Map-Register's arrival to its last publication's send; none for a change nobody follows.
    /// </summary>
    [Test]
    public void PublicationDelay_IsObservedOncePerPublishedChange()
    {
        var delays = new System.Collections.Concurrent.ConcurrentQueue<double>();
        _server.Publisher!.PublicationDelay = delays.Enqueue;
        var before = DateTime.UtcNow;
        RegisterInference(); // nobody subscribed yet
        Subscribe();
        Assert.That(delays, Is.Empty, "a change without subscribers is not counted");
        RegisterInference("busy");
        Ack(ReceiveNotify(PlannersKey) ?? throw new AssertionException("no publication"));
        Poll.Until(() => !delays.IsEmpty, "the published change observed");
        Assert.That(delays.Single(), Is.GreaterThan(0).And.LessThan((DateTime.UtcNow - before).TotalSeconds), "from the Map-Register's arrival to the send");
    }

    /// <summary>A subscription whose acknowledgement is never acknowledged is dropped once its attempts run out.</summary>
    [Test]
    public void ASubscriptionWhoseAcknowledgementGoesUnacknowledged_IsDropped()
    {
        RegisterInference();
        RegisterAndWaitForNotify(Register(1000, "10.1.0.99", 32, 0x55, ("192.0.2.9", 1, null)), PlannersKey);
        Send(Ecm(1000, "10.1.0.50", null, 6000, subscribe: true, xtrId: 0x55));
        Subscribed(6000, 0x55, ack: false);
        int copies = 1;
        var deadline = DateTime.UtcNow.AddSeconds(8);
        while (_server.Publisher!.SubscriptionCount > 0 && DateTime.UtcNow < deadline)
            if (ReceiveNotify(PlannersKey, 300)?.Nonce == 6000) copies++;
        Assert.That((_server.Publisher.SubscriptionCount, copies), Is.EqualTo((0, Publisher.MaxAttempts)), "sent once, then every second until the attempts ran out");
        Assert.That(_server.Counters[MsCounter.SubscriptionsDropped], Is.EqualTo(1));
    }

    /// <summary>
    /// A subscription replaced by one under other constraints (the same ITR and xTR-ID): the old one's publication,
    /// left unacknowledged (the ITR counts from the new request's nonce now), is superseded, not sent again, and its
    /// going unacknowledged does not drop the subscription that replaced it.
    /// </summary>
    [Test]
    public void AReplacedSubscriptionsUnacknowledgedPublication_IsSuperseded_AndDropsNothing()
    {
        RegisterInference();
        Subscribe(); // no constraints, request nonce 31337
        RegisterInference("busy");
        var old = ReceiveNotify(PlannersKey) ?? throw new AssertionException("no publication");
        Assert.That(old.Nonce, Is.EqualTo(31338UL));
        Send(Ecm(1000, "10.1.0.50", """{"agent-constraints":{"hardware":["gpu"]}}""", 9000, subscribe: true, xtrId: 0x55));
        Subscribed(9000, 0x55);
        var deadline = DateTime.UtcNow.AddMilliseconds(1800);
        while (DateTime.UtcNow < deadline)
            Assert.That(ReceiveNotify(PlannersKey, 300)?.Nonce, Is.Not.EqualTo(old.Nonce), "the replaced subscription's publication is not sent again");
        Assert.That((_server.Counters[MsCounter.PublicationsSuperseded], _server.Counters[MsCounter.SubscriptionsDropped], _server.Publisher!.SubscriptionCount),
            Is.EqualTo((1L, 0L, 1)));
    }

    /// <summary>
    /// The publisher reuses a notification's buffer once it is acknowledged: publications alternately longer and
    /// shorter than the one before each arrive whole (they decode with nothing left over), signed, with this change's
    /// record, and none is left pending or sent twice.
    /// </summary>
    [Test]
    public void PublicationBuffers_AreReusedAfterTheAck_AndEachPublicationIsWholeAndSigned()
    {
        RegisterInference();
        // Constrained, so that publications carry the attributes (and only the GPU locator).
        Subscribe("""{"agent-constraints":{"hardware":["gpu"]}}""");
        for (int round = 0; round < 12; round++)
        {
            // Odd rounds give the GPU locator a long hardware list: the next publication is shorter than the buffer.
            string hardware = round % 2 == 1 ? "\"gpu\",\"tpu\",\"fpga\",\"npu\",\"nvlink\",\"infiniband\",\"rdma\"" : "\"gpu\"";
            int load = 10 + round;
            RegisterAndWaitForNotify(Register(1000, "10.1.0.50", 32, 9,
                ("192.0.2.2", 1, "\"hardware\":[],\"latency\":\"medium\",\"state\":\"ready\""),
                ("192.0.2.3", 1, $"\"hardware\":[{hardware}],\"latency\":\"low\",\"state\":\"busy\",\"load\":{load}")), PlannersKey);
            var n = ReceiveNotify(PlannersKey) ?? throw new AssertionException($"round {round}: no publication");
            Assert.That((n.XtrId, n.Records.Count, n.Records[0].Locators.Count), Is.EqualTo(((UInt128)0x55, 1, 1)), $"round {round}");
            ContextEncoding.ReadLocator(n.Records[0].Locators[0].Locator, out var context, out _);
            Assert.That((context?.Hardware.Count, context?.Load), Is.EqualTo(((int?)(round % 2 == 1 ? 7 : 1), (int?)load)), $"round {round}: this change's record");
            Ack(n);
            Poll.Until(() => _server.Publisher!.PendingCount == 0, $"round {round}: the ack ends the notification");
        }
        Assert.That(ReceiveNotify(PlannersKey, 1500), Is.Null, "every publication was acknowledged: none is sent again");
        Assert.That((_server.Counters[MsCounter.PublicationsSent], _server.Counters[MsCounter.NotifyRetransmissions]), Is.EqualTo((12L, 0L)));
    }

    /// <summary>
    /// The worker reuses its last reply destination: answers to ITRs that alternate (another ITR-RLOC, the same
    /// RLOC from another port) each reach their own requester.
    /// </summary>
    [Test]
    public void Answers_ToRequestersThatAlternate_EachReachTheirOwnItr()
    {
        RegisterInference();
        using var other = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        other.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.2"), 0));
        other.ReceiveTimeout = 2000;
        using var third = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        third.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        third.ReceiveTimeout = 2000;
        var buffer = new byte[4096];
        for (int round = 0; round < 4; round++)
        {
            foreach (var (socket, name) in new[] { (_client, "the test's ITR"), (other, "an ITR on 127.0.0.2"), (third, "the first RLOC, another port") })
            {
                ulong nonce = (ulong)(round * 10 + name.Length);
                // Every request leaves from the test's socket: the answer must follow the ITR-RLOC and inner port.
                Send(Ecm(1000, "10.1.0.50", nonce: nonce, itr: (IPEndPoint)socket.LocalEndPoint!));
                int n = socket.Receive(buffer);
                var reply = new MapReply();
                Assert.That(reply.TryDecode(buffer.AsSpan(0, n)).Ok && reply.Nonce == nonce, Is.True, $"round {round}: {name} got its own answer");
            }
        }
    }

    /// <summary>A Map-Notify-Ack is authenticated like the Map-Notify: a forged one (right nonce, wrong key) stops nothing.</summary>
    /// <summary>
    /// The registering xTR hears its Map-Notify before anyone hears of the change: here it subscribes to its own
    /// prefix, so the publication of each re-registration comes to the same socket, and must come second.
    /// </summary>
    [Test]
    public void AMapRegistersMapNotify_LeavesBeforeThePublicationsItCauses()
    {
        RegisterAndWaitForNotify(Register(1000, "10.1.0.99", 32, 0x55, ("192.0.2.9", 1, null)), PlannersKey);
        Send(Ecm(1000, "10.1.0.99", null, 4242, subscribe: true, xtrId: 0x55));
        Subscribed(4242, 0x55);
        Assert.That(_server.Publisher!.SubscriptionCount, Is.EqualTo(1));
        for (int round = 0; round < 20; round++)
        {
            string rloc = $"192.0.2.{20 + round}";
            var m = Register(1000, "10.1.0.99", 32, 0x55, (rloc, 1, null));
            Send(m.ToSignedArray(PlannersKey));
            var first = new MapNotify();
            first.Decode(ReceiveFromSocket(2000) ?? throw new AssertionException($"round {round}: nothing arrived"));
            Assert.That(first.Nonce, Is.EqualTo(m.Nonce), $"round {round}: the Map-Notify comes first");
            var second = new MapNotify();
            second.Decode(ReceiveFromSocket(2000) ?? throw new AssertionException($"round {round}: no publication"));
            Assert.That(second.Records[0].Locators.Select(l => l.Locator.ToString()), Is.EqualTo(new[] { rloc }), $"round {round}: then the publication");
            Ack(second);
        }
    }

    /// <summary>The mechanism behind the order above: a change made inside a deferral is published when it closes.</summary>
    [Test]
    public void ChangesMadeWhileDeferred_ArePublishedOnlyWhenTheDeferralCloses()
    {
        RegisterInference();
        Subscribe();
        var key = new EidKey(1000, EidFamily.Ipv4, Ipv4Header.ToUInt32(IPAddress.Parse("10.1.0.50")), 32);
        var site = _server.Config.Sites.Single(s => s.Name == "planners");
        var rloc = new FastXtr.Lisp.Answers.RegisteredRloc(LispAddress.Parse("192.0.2.77"), 1, 100, 255, 0, true, null);
        var xtr = new XtrRegistration(9, 1, new IPEndPoint(IPAddress.Loopback, LispPorts.Control), [rloc], false, 1440, 0, DateTime.UtcNow, DateTime.UtcNow, MapServerCore.NowMs + 60_000);
        using (_server.Publisher!.DeferOnThisThread())
        {
            _server.Store.Register(key, site, xtr);
            Assert.That(ReceiveNotify(PlannersKey, 500), Is.Null, "held while the deferral is open");
        }
        var n = ReceiveNotify(PlannersKey);
        Assert.That(n?.Records[0].Locators.Select(l => l.Locator.ToString()), Is.EqualTo(new[] { "192.0.2.77" }), "published once it closes");
    }

    [Test]
    public void ForgedMapNotifyAck_IsCountedAndIgnored()
    {
        RegisterInference();
        Subscribe();
        Poll.Until(() => _server.Publisher!.PendingCount == 0, "the subscription's acknowledgement acknowledged");
        long acks = _server.Counters[MsCounter.MapNotifyAcksReceived];
        RegisterInference("busy");
        var n = ReceiveNotify(PlannersKey);
        // The publication's own contents, signed with a guessed key.
        var forged = new MapNotify(isAck: true) { Nonce = n!.Nonce, AlgorithmId = AuthenticationAlgorithm.HmacSha256, XtrIdPresent = true, XtrId = 0x55 };
        foreach (var r in n.Records) forged.Records.Add(r);
        Send(forged.ToSignedArray("guessed-key"u8.ToArray()));
        // The retransmission comes a second later (a publication of another change would carry another nonce).
        MapNotify? again = null;
        var until = DateTime.UtcNow.AddMilliseconds(2500);
        while (again?.Nonce != n.Nonce && DateTime.UtcNow < until) again = ReceiveNotify(PlannersKey, 300);
        Assert.That(again?.Nonce, Is.EqualTo(n.Nonce), "still retransmitted");
        Assert.That((_server.Counters[MsCounter.MapNotifyAckAuthenticationFailed], _server.Counters[MsCounter.MapNotifyAcksReceived] - acks), Is.EqualTo((1L, 0L)));
        Ack(again!);
        // (The registration expires meanwhile, registration-timeout 2 s: that change is published under its own nonce.)
        var deadline = DateTime.UtcNow.AddMilliseconds(1800);
        while (DateTime.UtcNow < deadline)
            Assert.That(ReceiveNotify(PlannersKey, 300)?.Nonce, Is.Not.EqualTo(n.Nonce), "the genuine ack stops it");
        Assert.That(_server.Counters[MsCounter.MapNotifyAcksReceived] - acks, Is.EqualTo(1));
    }

    [Test]
    public void UnacknowledgedPublication_IsRetransmitted_ThenTheSubscriptionIsDropped()
    {
        RegisterInference();
        Subscribe();
        RegisterInference("busy");
        var first = ReceiveNotify(PlannersKey);
        int copies = 1;
        var deadline = DateTime.UtcNow.AddSeconds(8);
        while (_server.Publisher!.SubscriptionCount > 0 && DateTime.UtcNow < deadline)
        {
            var n = ReceiveNotify(PlannersKey, 300);
            if (n?.Nonce == first!.Nonce) copies++;
        }
        Assert.That(_server.Publisher.SubscriptionCount, Is.EqualTo(0));
        Assert.That(copies, Is.EqualTo(Publisher.MaxAttempts), "sent once, then again every second until the attempts ran out");
        Assert.That(_server.Counters[MsCounter.SubscriptionsDropped], Is.GreaterThanOrEqualTo(1));
    }

    [Test]
    public void SubscribersOfOneChange_EachGetTheirOwnSignedPublication()
    {
        // Three xTRs of the site subscribe from one address: 0x55 and 0x57 without constraints, 0x56 with a GPU
        // constraint. The publisher fills and encodes the record once per kind of subscriber; each datagram must
        // still carry its own xTR-ID and nonce and verify on its own, and the constrained one its filtered view.
        RegisterInference();
        ulong nonce = 4000;
        foreach (var (xtr, constraints) in new (ulong, string?)[] { (0x55, null), (0x56, """{"agent-constraints":{"hardware":["gpu"]}}"""), (0x57, null) })
        {
            RegisterAndWaitForNotify(Register(1000, $"10.1.0.{xtr - 0x55 + 97}", 32, xtr, ("192.0.2.9", 1, null)), PlannersKey);
            Send(Ecm(1000, "10.1.0.50", constraints, ++nonce, subscribe: true, xtrId: xtr));
            Subscribed(nonce, xtr);
        }
        Assert.That(_server.Publisher!.SubscriptionCount, Is.EqualTo(3));
        RegisterInference("draining");
        var got = new List<MapNotify>();
        for (int i = 0; i < 3; i++) got.Add(ReceiveNotify(PlannersKey) ?? throw new AssertionException($"only {i} of 3 publications"));
        Assert.That(got.Select(n => (ulong)n.XtrId), Is.EquivalentTo(new ulong[] { 0x55, 0x56, 0x57 }));
        Assert.That(got.Select(n => n.Nonce).Distinct().Count(), Is.EqualTo(3), "a nonce of its own each");
        var gpu = got.Single(n => n.XtrId == 0x56).Records[0];
        Assert.That((gpu.IsNegative, gpu.Action), Is.EqualTo((true, MapReplyAction.DropPolicyDenied)), "the GPU subscriber's filtered view");
        foreach (var plain in got.Where(n => n.XtrId != 0x56))
            Assert.That(plain.Records[0].Locators.Select(l => l.Locator.ToString()), Is.EqualTo(new[] { "192.0.2.2" }), "the others: the replica that is not draining");
    }

    [Test]
    public void ConstrainedSubscriber_GetsItsFilteredView()
    {
        RegisterInference();
        Subscribe("""{"agent-constraints":{"hardware":["gpu"]}}""");
        RegisterInference("draining");
        var n = ReceiveNotify(PlannersKey);
        Assert.That((n!.Records[0].IsNegative, n.Records[0].Action), Is.EqualTo((true, MapReplyAction.DropPolicyDenied)), "the GPU subscriber has nowhere to go");
    }

    [Test]
    public void SubscriptionWithoutAKnownXtrId_IsRefused()
    {
        RegisterInference();
        Send(Ecm(1000, "10.1.0.50", subscribe: true, xtrId: 0x77));
        Assert.That(Receive(), Is.Not.Null, "still answered");
        Assert.That(_server.Publisher!.SubscriptionCount, Is.EqualTo(0));
        Assert.That(_server.Counters[MsCounter.SubscriptionsRefused], Is.EqualTo(1));
    }

    [Test]
    public void Move_TheOldEtrHearsOfTheNewLocator()
    {
        using var oldEtr = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        oldEtr.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.21"), LispPorts.Control));
        oldEtr.ReceiveTimeout = 2000;
        oldEtr.SendTo(Register(1000, "10.1.0.77", 32, 0xA, ("127.0.0.21", 1, null)).ToSignedArray(PlannersKey), _endpoint);
        byte[] buffer = new byte[65536];
        Assert.That(LispMessage.PeekType(buffer.AsSpan(0, oldEtr.Receive(buffer))), Is.EqualTo(LispMessageType.MapNotify), "registration acknowledged");
        RegisterAndWaitForNotify(Register(1000, "10.1.0.77", 32, 0xB, ("127.0.0.22", 1, null)), PlannersKey);
        int n = oldEtr.Receive(buffer);
        var notify = new MapNotify();
        notify.Decode(buffer.AsSpan(0, n));
        Assert.That(MessageAuthentication.Verify(buffer.AsSpan(0, n), PlannersKey), Is.EqualTo(AuthenticationFailure.None));
        Assert.That(notify.Records[0].Locators.Select(l => l.Locator.ToString()), Is.EqualTo(new[] { "127.0.0.22" }), "the new home, so the old ETR can send SMRs");
        Assert.That(_server.Counters[MsCounter.MoveNotifiesSent], Is.EqualTo(1));
    }
}
