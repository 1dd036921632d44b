using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.Lisp;

[TestFixture]
public class AgentContextTests
{
    [Test]
    public void Parse_DesignExample_GivesEveryAttribute()
    {
        var c = AgentContext.TryParse("""{"agent-context": {"latency": "low", "hardware": ["gpu", "gpu-a100"], "state": "ready", "security-level": 3, "load": 35}}""", out var e);
        Assert.That(e.Ok, Is.True, e.ToString());
        Assert.That((c!.Latency, c.State, c.SecurityLevel, c.Load), Is.EqualTo(((LatencyClass?)LatencyClass.Low, (AgentState?)AgentState.Ready, (int?)3, (int?)35)));
        Assert.That(c.Hardware, Is.EqualTo(new[] { "gpu", "gpu-a100" }));
    }

    [Test]
    public void UnknownKeys_AreKeptAndWrittenBack()
    {
        var c = AgentContext.TryParse("""{"agent-context":{"state":"busy","region":{"zone":"eu-1"},"tags":[1,2]},"vendor":"x"}""", out var e)!;
        Assert.That(e.Ok, Is.True);
        Assert.That(c.UnknownMembers.Select(kv => kv.Key), Is.EqualTo(new[] { "region", "tags" }));
        string json = c.ToString();
        Assert.That(json, Is.EqualTo("""{"agent-context":{"state":"busy","region":{"zone":"eu-1"},"tags":[1,2]},"vendor":"x"}"""));
        Assert.That(AgentContext.TryParse(json, out _), Is.EqualTo(c));
    }

    [TestCase("""{"agent-context":{"latency":"fast"}}""", "latency")]
    [TestCase("""{"agent-context":{"latency":1}}""", "latency")]
    [TestCase("""{"agent-context":{"hardware":"gpu"}}""", "hardware")]
    [TestCase("""{"agent-context":{"hardware":["GPU"]}}""", "lowercase")]
    [TestCase("""{"agent-context":{"hardware":[""]}}""", "hardware tag")]
    [TestCase("""{"agent-context":{"state":"sleeping"}}""", "state")]
    [TestCase("""{"agent-context":{"security-level":8}}""", "security-level")]
    [TestCase("""{"agent-context":{"security-level":"3"}}""", "security-level")]
    [TestCase("""{"agent-context":{"load":101}}""", "load")]
    [TestCase("""{"agent-context":{"load":2.5}}""", "load")]
    [TestCase("""{"agent-context":[]}""", "not an object")]
    [TestCase("""{"context":{}}""", "no \"agent-context\"")]
    [TestCase("""[1]""", "not an object")]
    [TestCase("""{"agent-context":{"state":"ready"}""", "not valid JSON")]
    [TestCase("""{"agent-context":{"load":1,"load":2}}""", "twice")]
    public void InvalidAttributes_AreRefusedWithAReason(string json, string reasonFragment)
    {
        Assert.That(AgentContext.TryParse(json, out var e), Is.Null);
        Assert.That(e.Reason, Does.Contain(reasonFragment));
    }

    [Test]
    public void Constraints_Parse_CountsUnknownKeys_AndDefaultsStates()
    {
        var c = AgentConstraints.TryParse("""{"agent-constraints": {"hardware": ["gpu"], "max-latency": "medium", "min-security-level": 2, "color": "blue", "x": 1}}""", out var e)!;
        Assert.That(e.Ok, Is.True);
        Assert.That((c.MaxLatency, c.MinSecurityLevel, c.UnknownKeyCount, c.States), Is.EqualTo(((LatencyClass?)LatencyClass.Medium, (int?)2, 2, (IReadOnlyList<AgentState>?)null)));
        Assert.That(c.EffectiveStates, Is.EqualTo(new[] { AgentState.Ready, AgentState.Busy }));
        Assert.That(AgentConstraints.TryParse(c.ToUtf8Json(), out _), Is.EqualTo(c));
    }

    [TestCase("""{"agent-constraints":{"max-latency":"slow"}}""")]
    [TestCase("""{"agent-constraints":{"states":["ready","asleep"]}}""")]
    [TestCase("""{"agent-constraints":{"min-security-level":-1}}""")]
    [TestCase("""{"agent-constraints":5}""")]
    [TestCase("""not json""")]
    public void MalformedConstraints_AreRefused(string json)
    {
        Assert.That(AgentConstraints.TryParse(json, out var e), Is.Null);
        Assert.That(e.Ok, Is.False);
    }

    [Test]
    public void RlocWithContext_IsAnAfiListOfAddressThenJson_AndReadsBack()
    {
        var ctx = AgentContext.TryParse("""{"agent-context":{"hardware":["gpu"],"latency":"low"}}""", out _)!;
        var loc = ContextEncoding.RlocWithContext(LispAddress.Parse("192.0.2.9"), ctx);
        Assert.That(loc.Kind, Is.EqualTo(LispAddressKind.AfiList));
        Assert.That(loc.Item(0).ToString(), Is.EqualTo("192.0.2.9"));
        Assert.That(loc.Item(1).Kind, Is.EqualTo(LispAddressKind.Json));
        Assert.That(loc.Item(1).JsonTrailingAddress.Kind, Is.EqualTo(LispAddressKind.None));
        var plain = ContextEncoding.ReadLocator(loc, out var back, out var err);
        Assert.That((plain.ToString(), err.Ok), Is.EqualTo(("192.0.2.9", true)));
        Assert.That(back, Is.EqualTo(ctx));
        Assert.That(ContextEncoding.ReadLocator(LispAddress.Parse("192.0.2.9"), out var none, out _).ToString(), Is.EqualTo("192.0.2.9"));
        Assert.That(none, Is.Null);
    }

    [Test]
    public void SourceEidWithConstraints_KeepsTheInstanceIdAndReadsBack()
    {
        var constraints = AgentConstraints.TryParse("""{"agent-constraints":{"hardware":["gpu"]}}""", out _)!;
        var src = ContextEncoding.SourceEidWithConstraints(LispAddress.WithInstanceId(1000, LispAddress.Parse("10.1.0.1")), constraints);
        Assert.That(src.InstanceIdOrNull, Is.EqualTo(1000u));
        Assert.That(src.PlainAddress.ToString(), Is.EqualTo("10.1.0.1"));
        Assert.That(ContextEncoding.ReadConstraints(src, out var e), Is.EqualTo(constraints));
        Assert.That(e.Ok, Is.True);
        Assert.That(ContextEncoding.ReadConstraints(LispAddress.Parse("10.1.0.1"), out var e2), Is.Null);
        Assert.That(e2.Ok, Is.True, "a legacy Source-EID has no constraints and no error");
        var broken = LispAddress.AfiList(LispAddress.Parse("10.1.0.1"), LispAddress.Json("{oops"));
        Assert.That(ContextEncoding.ReadConstraints(broken, out var e3), Is.Null);
        Assert.That(e3.Ok, Is.False, "malformed constraints are reported so the resolver can count them");
    }
}

[TestFixture]
public class ContextMatcherTests
{
    private static AgentContext Ctx(string inner) => AgentContext.TryParse("{\"agent-context\":{" + inner + "}}", out var e) ?? throw new ArgumentException(e.Reason);
    private static AgentConstraints Con(string inner) => AgentConstraints.TryParse("{\"agent-constraints\":{" + inner + "}}", out var e) ?? throw new ArgumentException(e.Reason);

    private static RlocSelection[] Select(AgentConstraints? c, params RlocCandidate[] rlocs) => ContextMatcher.Select(c, rlocs);

    [Test]
    public void Hardware_EveryListedTagMustBePresent()
    {
        var gpu = new RlocCandidate(1, 50, Ctx("\"hardware\":[\"gpu\",\"gpu-a100\"]"));
        var cpu = new RlocCandidate(1, 50, Ctx("\"hardware\":[]"));
        Assert.That(Select(Con("\"hardware\":[\"gpu\"]"), gpu, cpu).Select(s => s.CandidateIndex), Is.EqualTo(new[] { 0 }));
        Assert.That(Select(Con("\"hardware\":[\"gpu\",\"tpu\"]"), gpu, cpu), Is.Empty);
    }

    [Test]
    public void MaxLatency_IsInclusive_AndAMissingLatencyDoesNotMatch()
    {
        var low = new RlocCandidate(1, 1, Ctx("\"latency\":\"low\""));
        var med = new RlocCandidate(1, 1, Ctx("\"latency\":\"medium\""));
        var high = new RlocCandidate(1, 1, Ctx("\"latency\":\"high\""));
        var none = new RlocCandidate(1, 1, Ctx("\"state\":\"ready\""));
        Assert.That(Select(Con("\"max-latency\":\"medium\""), low, med, high, none).Select(s => s.CandidateIndex), Is.EqualTo(new[] { 0, 1 }));
    }

    [Test]
    public void MinSecurityLevel_MissingCountsAsZero()
    {
        var s3 = new RlocCandidate(1, 1, Ctx("\"security-level\":3"));
        var none = new RlocCandidate(1, 1, Ctx("\"state\":\"ready\""));
        Assert.That(Select(Con("\"min-security-level\":3"), s3, none).Select(s => s.CandidateIndex), Is.EqualTo(new[] { 0 }));
        Assert.That(Select(Con("\"min-security-level\":0"), s3, none), Has.Length.EqualTo(2));
    }

    [Test]
    public void States_DefaultExcludesDrainingEvenForALegacyRequester()
    {
        var ready = new RlocCandidate(1, 1, Ctx("\"state\":\"ready\""));
        var busy = new RlocCandidate(1, 1, Ctx("\"state\":\"busy\""));
        var draining = new RlocCandidate(1, 1, Ctx("\"state\":\"draining\""));
        var failed = new RlocCandidate(1, 1, Ctx("\"state\":\"failed\""));
        Assert.That(Select(null, ready, busy, draining, failed).Select(s => s.CandidateIndex), Is.EqualTo(new[] { 0, 1 }));
        Assert.That(Select(AgentConstraints.Empty, ready, busy, draining, failed).Select(s => s.CandidateIndex), Is.EqualTo(new[] { 0, 1 }));
        Assert.That(Select(Con("\"states\":[\"draining\"]"), ready, busy, draining, failed).Select(s => s.CandidateIndex), Is.EqualTo(new[] { 2 }));
    }

    [Test]
    public void Prioritise_DenseRankOfPriorityThenLatency()
    {
        var a = new RlocCandidate(2, 10, Ctx("\"latency\":\"low\""));     // (2, 0)
        var b = new RlocCandidate(1, 10, Ctx("\"latency\":\"high\""));    // (1, 2)
        var c = new RlocCandidate(1, 10, Ctx("\"latency\":\"low\""));     // (1, 0)
        var d = new RlocCandidate(1, 10, Ctx("\"latency\":\"low\""));     // (1, 0) ties with c
        var e = new RlocCandidate(7, 10, Ctx("\"latency\":\"medium\""));  // (7, 1)
        var result = Select(null, a, b, c, d, e);
        Assert.That(result.Select(s => (s.CandidateIndex, s.Priority)), Is.EqualTo(new[] { (2, (byte)1), (3, (byte)1), (1, (byte)2), (0, (byte)3), (4, (byte)4) }));
    }

    [TestCase(50, 35, 33)]   // 50*65/100 = 32.5 -> 33
    [TestCase(100, 0, 100)]
    [TestCase(10, 100, 1)]   // never below 1
    [TestCase(1, 99, 1)]
    [TestCase(255, 50, 128)] // 127.5 -> 128
    public void Weight_IsScaledByLoad(int weight, int load, int expected)
    {
        var r = Select(null, new RlocCandidate(1, (byte)weight, Ctx($"\"load\":{load}")));
        Assert.That(r[0].Weight, Is.EqualTo(expected));
    }

    [Test]
    public void NoAttributesAndNoConstraints_ReturnsTheRegistrationUnchanged()
    {
        var r = Select(null, new RlocCandidate(5, 20, null), new RlocCandidate(9, 80, null));
        Assert.That(r.Select(s => (s.CandidateIndex, s.Priority, s.Weight)), Is.EqualTo(new[] { (0, (byte)5, (byte)20), (1, (byte)9, (byte)80) }));
    }

    [Test]
    public void ConstraintsAgainstARegistrationWithoutAttributes_LeaveItUnchanged()
    {
        // CONTEXT-EXTENSION.md §3 filters "an EID whose registration has RLOCs with attributes"; a plain one is not.
        var r = Select(Con("\"hardware\":[\"gpu\"]"), new RlocCandidate(2, 30, null), new RlocCandidate(4, 70, null));
        Assert.That(r.Select(s => (s.CandidateIndex, s.Priority, s.Weight)), Is.EqualTo(new[] { (0, (byte)2, (byte)30), (1, (byte)4, (byte)70) }));
    }

    [Test]
    public void InAMixedRegistration_AnRlocWithoutAttributes_MatchesNothingThatNeedsAnAttribute()
    {
        var r = Select(Con("\"hardware\":[\"gpu\"]"), new RlocCandidate(1, 1, null), new RlocCandidate(1, 1, Ctx("\"hardware\":[\"gpu\"]")));
        Assert.That(r.Select(s => s.CandidateIndex), Is.EqualTo(new[] { 1 }));
        Assert.That(Select(AgentConstraints.Empty, new RlocCandidate(1, 1, null), new RlocCandidate(1, 1, Ctx("\"state\":\"ready\""))), Has.Length.EqualTo(2), "no attributes counts as ready");
    }

    [Test]
    public void PriorityDoNotUse_StaysUnranked()
    {
        var r = Select(null, new RlocCandidate(255, 1, Ctx("\"latency\":\"low\"")), new RlocCandidate(3, 1, Ctx("\"latency\":\"low\"")));
        Assert.That(r.Select(s => (s.CandidateIndex, s.Priority)), Is.EqualTo(new[] { (1, (byte)1), (0, (byte)255) }));
    }

    [Test]
    public void DemoScenario_GpuRequesterGoesToGateway3_UntilItDrains()
    {
        var gw2 = new RlocCandidate(1, 50, Ctx("\"hardware\":[],\"latency\":\"medium\",\"state\":\"ready\""));
        var gw3 = new RlocCandidate(1, 50, Ctx("\"hardware\":[\"gpu\"],\"latency\":\"low\",\"state\":\"ready\""));
        var gpu = Con("\"hardware\":[\"gpu\"]");
        Assert.That(Select(gpu, gw2, gw3).Select(s => s.CandidateIndex), Is.EqualTo(new[] { 1 }));
        Assert.That(Select(null, gw2, gw3).Select(s => (s.CandidateIndex, s.Priority)), Is.EqualTo(new[] { (1, (byte)1), (0, (byte)2) }), "latency breaks the tie");
        var gw3Draining = gw3 with { Context = Ctx("\"hardware\":[\"gpu\"],\"latency\":\"low\",\"state\":\"draining\"") };
        Assert.That(Select(gpu, gw2, gw3Draining), Is.Empty, "policy-denied for the GPU requester");
        Assert.That(Select(null, gw2, gw3Draining).Select(s => s.CandidateIndex), Is.EqualTo(new[] { 0 }));
    }
}

/// <summary>
/// <see cref="AgentContext.Matches"/> against the parser it stands in for: over pairs of JSON texts drawn from a small
/// domain (so that many pairs parse equal: keys in any order, repeated hardware tags, escapes, whitespace; and invalid
/// values, repeated keys, unknown members, trailing bytes), a context matches a text exactly when the text parses to
/// an equal context, for contexts without unknown members (with them it never matches: the caller parses).
/// </summary>
[TestFixture]
public class AgentContextMatchTests
{
    private static readonly string[][] Values =
    [
        ["\"latency\":\"low\"", "\"latency\":\"high\"", "\"l\\u0061tency\":\"low\"", "\"latency\":\"fast\"", "\"latency\":1"],
        ["\"hardware\":[\"gpu\"]", "\"hardware\":[\"tpu\"]", "\"hardware\":[\"gpu\",\"tpu\"]", "\"hardware\":[\"tpu\",\"gpu\"]", "\"hardware\":[\"gpu\",\"gpu\",\"tpu\"]",
            "\"hardware\":[]", "\"hardware\":[\"GPU\"]", "\"hardware\":\"gpu\""],
        ["\"state\":\"ready\"", "\"state\":\"busy\"", "\"state\" : \"re\\u0061dy\"", "\"state\":\"sleepy\""],
        ["\"security-level\":3", "\"security-level\":9", "\"security-level\":3.0"],
        ["\"load\":50", "\"load\":10", "\"load\":101", "\"load\":-1", "\"load\":\"50\""],
        ["\"vendor\":\"x\"", "\"load\":50"], // an unknown member, or a repeated key
    ];

    private static string Json(int[] r)
    {
        var members = new List<string>();
        for (int f = 0; f < Values.Length; f++)
            if (r[f] % 3 != 0 || f == Values.Length - 1 && r[f] % 5 == 0) members.Add(Values[f][r[f] % Values[f].Length]);
        if (members.Count > 0 && r[7] % 7 == 0) members.RemoveAt(members.Count - 1);
        // A rotation of the members: the same members in another order.
        int k = members.Count == 0 ? 0 : r[6] % members.Count;
        var ordered = members.Skip(k).Concat(members.Take(k));
        string top = r[9] % 11 == 0 ? ",\"other\":1" : "";
        string tail = r[10] % 13 == 0 ? " x" : r[10] % 3 == 0 ? " \n" : "";
        return $"{{\"agent-context\":{{{string.Join(r[11] % 2 == 0 ? "," : " , ", ordered)}}}{top}}}{tail}";
    }

    private static readonly CsCheck.Gen<int[]> Draw = CsCheck.Gen.Int[0, 1 << 20].Array[12];

    [Test]
    public void Matches_ExactlyWhenTheTextParsesToAnEqualContext()
    {
        int matched = 0, compared = 0;
        // The second text draws each choice again with probability 1/4, so that many pairs differ in one thing only.
        CsCheck.Check.Sample(CsCheck.Gen.Select(Draw, Draw, Draw), t =>
        {
            var (first, other, coin) = t;
            var second = first.Select((v, i) => coin[i] % 4 == 0 ? other[i] : v).ToArray();
            string a = Json(first), b = Json(second);
            var ca = AgentContext.TryParse(a, out _);
            if (ca is null) return;
            var cb = AgentContext.TryParse(b, out _);
            bool equal = ca.Equals(cb), matches = ca.Matches(System.Text.Encoding.UTF8.GetBytes(b));
            bool unknown = ca.UnknownMembers.Count > 0 || ca.UnknownTopLevelMembers.Count > 0;
            Interlocked.Increment(ref compared);
            if (matches) Interlocked.Increment(ref matched);
            Assert.That(matches, Is.EqualTo(equal && !unknown), $"context of {a} against {b}");
        }, iter: 50_000);
        // The domain must give many valid and many equal pairs, or the property says little.
        Assert.That(compared, Is.GreaterThan(2_000), $"{matched} matched");
        Assert.That(matched, Is.GreaterThan(300));
    }

    [Test]
    public void Matches_ItsOwnText_AndNotItsTextWithAnyAttributeChanged()
    {
        var c = AgentContext.TryParse("""{"agent-context":{"latency":"low","hardware":["gpu","nvlink"],"state":"ready","security-level":2,"load":40}}""", out _)!;
        Assert.That(c.Matches(c.ToUtf8Json()), Is.True);
        foreach (var changed in new[]
        {
            """{"agent-context":{"latency":"high","hardware":["gpu","nvlink"],"state":"ready","security-level":2,"load":40}}""",
            """{"agent-context":{"latency":"low","hardware":["nvlink","gpu"],"state":"ready","security-level":2,"load":40}}""",
            """{"agent-context":{"latency":"low","hardware":["gpu"],"state":"ready","security-level":2,"load":40}}""",
            """{"agent-context":{"latency":"low","hardware":["gpu","nvlink"],"state":"busy","security-level":2,"load":40}}""",
            """{"agent-context":{"latency":"low","hardware":["gpu","nvlink"],"state":"ready","load":40}}""",
            """{"agent-context":{"latency":"low","hardware":["gpu","nvlink"],"state":"ready","security-level":2,"load":41}}""",
            """{"agent-context":{"latency":"low","hardware":["gpu","nvlink"],"state":"ready","security-level":2,"load":40}} {}""",
            """{"agent-context":{"latency":"low","hardware":["gpu","nvlink"],"state":"ready","security-level":2,"load":40""",
        })
            Assert.That(c.Matches(System.Text.Encoding.UTF8.GetBytes(changed)), Is.False, changed);
    }
}
