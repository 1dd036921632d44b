using FastXtr.Lisp.Answers;
using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.Lisp;

/// <summary>The one answer policy that the Map-Server, its publications and an ETR share.</summary>
public class AnswerBuilderTests
{
    private static readonly AnswerFor Mapping = new(1000, EidFamily.Ipv4, 0x0A020000, 24, 1440, 7, WithInstanceId: false);

    private static RegisteredRloc Rloc(string address, byte priority, string? context = null) =>
        new(LispAddress.FromIp(System.Net.IPAddress.Parse(address)), priority, 100, 255, 0, true,
            context is null ? null : AgentContext.TryParse(context, out _));

    [Test]
    public void Constraints_ChooseTheLocators_AndOnlyAConstrainedRequesterSeesTheirContext()
    {
        var rlocs = new[] { Rloc("192.0.2.1", 1, """{"agent-context":{"hardware":["gpu"]}}"""), Rloc("192.0.2.2", 1, """{"agent-context":{"hardware":["cpu"]}}""") };
        var builder = new AnswerBuilder();
        var plain = new MappingRecord();
        Assert.That(builder.Fill(plain, Mapping, rlocs, constraints: null), Is.EqualTo(AnswerOutcome.Locators));
        Assert.That(plain.Locators.Select(l => l.Locator.Kind), Is.All.EqualTo(LispAddressKind.Ipv4), "no context for a requester without constraints");
        Assert.That(plain.Locators, Has.Count.EqualTo(2));
        Assert.That((plain.TtlMinutes, plain.MapVersion, plain.Authoritative, plain.EidMaskLength), Is.EqualTo((1440u, (ushort)7, true, (byte)24)));

        var gpu = AgentConstraints.TryParse("""{"agent-constraints":{"hardware":["gpu"]}}""", out var err);
        Assert.That(err.Ok, Is.True);
        var constrained = new MappingRecord();
        Assert.That(builder.Fill(constrained, Mapping, rlocs, gpu), Is.EqualTo(AnswerOutcome.Locators));
        Assert.That(constrained.Locators, Has.Count.EqualTo(1));
        Assert.That(constrained.Locators[0].Locator.Kind, Is.Not.EqualTo(LispAddressKind.Ipv4), "the chosen locator carries its context (an AFI list)");
        Assert.That(constrained.Locators[0].Locator.PlainAddress.ToIPAddress().ToString(), Is.EqualTo("192.0.2.1"));
    }

    [Test]
    public void NoLocatorMeetingTheConstraints_IsPolicyDenied_WithTheShortTtl()
    {
        var record = new MappingRecord();
        var tpu = AgentConstraints.TryParse("""{"agent-constraints":{"hardware":["tpu"]}}""", out _);
        var outcome = new AnswerBuilder().Fill(record, Mapping, [Rloc("192.0.2.1", 1, """{"agent-context":{"hardware":["gpu"]}}""")], tpu);
        Assert.That(outcome, Is.EqualTo(AnswerOutcome.PolicyDenied));
        Assert.That((record.Action, record.TtlMinutes, record.Locators.Count), Is.EqualTo((MapReplyAction.DropPolicyDenied, ContextMatcher.PolicyDeniedTtlMinutes, 0)));
    }

    [Test]
    public void ARecycledRecord_IsOverwrittenWhole_AndOnlyTheEtrsOwnLocatorIsLocalAndProbed()
    {
        var builder = new AnswerBuilder();
        var record = new MappingRecord();
        var rlocs = new[] { Rloc("192.0.2.1", 1), Rloc("192.0.2.2", 2) };
        bool Own(LispAddress a) => a.ToIPAddress().ToString() == "192.0.2.2";
        builder.Fill(record, Mapping, rlocs, null, Own, probe: true);
        Assert.That(record.Locators.Select(l => (l.Local, l.Probed)), Is.EqualTo(new[] { (false, false), (true, true) }));

        // The same record filled again for a Map-Server answer: no L or P bit survives from the ETR's.
        builder.Fill(record, Mapping with { InstanceId = 0, WithInstanceId = false }, rlocs, null);
        Assert.That(record.Locators.Select(l => (l.Local, l.Probed)), Is.All.EqualTo((false, false)));
        Assert.That(record.EidPrefix.Kind, Is.EqualTo(LispAddressKind.Ipv4), "IID 0 without an LCAF request is a plain prefix");
    }
}
