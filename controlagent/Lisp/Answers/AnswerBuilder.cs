using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;

namespace FastXtr.Lisp.Answers;

/// <summary>One registered locator with the agent context it carried (CONTEXT-EXTENSION.md §1).</summary>
public sealed record RegisteredRloc(LispAddress Address, byte Priority, byte Weight, byte MulticastPriority, byte MulticastWeight, bool Reachable, AgentContext? Context);

/// <summary>The mapping an answer is about: its EID prefix, TTL and map-version, and how the prefix is written.</summary>
/// <param name="WithInstanceId">Write the prefix inside an Instance-ID LCAF even for IID 0 (the requester used one).</param>
public readonly record struct AnswerFor(uint InstanceId, EidFamily Family, UInt128 Prefix, int Length, uint TtlMinutes, ushort MapVersion, bool WithInstanceId);

public enum AnswerOutcome
{
    /// <summary>The record lists the locators chosen for the requester.</summary>
    Locators,
    /// <summary>No locator meets the requester's constraints: a negative record, action drop/policy-denied.</summary>
    PolicyDenied,
}

/// <summary>
/// The one answer policy (RFC 9301 §5.4 records; CONTEXT-EXTENSION.md §3): the Map-Server's proxy replies, its
/// publications and an ETR's own Map-Replies all fill their mapping records here, so that the three can never
/// disagree on which locators a requester's constraints allow, how they are prioritised and weighted, and when the
/// context travels with them. Not thread-safe (it reuses its selection buffers): one per thread or under a lock.
/// </summary>
public sealed class AnswerBuilder
{
    /// <summary>Locators considered per answer (RFC 9301's Locator Count field is 8 bits).</summary>
    public const int MaxLocators = 255;

    private readonly RlocCandidate[] _candidates = new RlocCandidate[MaxLocators];
    private readonly RlocSelection[] _selection = new RlocSelection[MaxLocators];

    /// <summary>
    /// Fills <paramref name="record"/> (a fresh one, or a recycled encode-only one whose content is stale) with the
    /// answer: the locators refer to <paramref name="rlocs"/>' own addresses (nothing is copied unless a context is
    /// attached). <paramref name="local"/>, when given, marks the locator that is the answering ETR's own (L bit), and
    /// with <paramref name="probe"/> also its P bit (an RLOC-probe reply, RFC 9301 §5.4).
    /// </summary>
    public AnswerOutcome Fill(MappingRecord record, in AnswerFor mapping, ReadOnlySpan<RegisteredRloc> rlocs, AgentConstraints? constraints,
                              Func<LispAddress, bool>? local = null, bool probe = false)
    {
        int count = Math.Min(rlocs.Length, _candidates.Length);
        for (int i = 0; i < count; i++) _candidates[i] = new RlocCandidate(rlocs[i].Priority, rlocs[i].Weight, rlocs[i].Context);
        int n = ContextMatcher.Select(constraints, _candidates.AsSpan(0, count), _selection);
        EidAddress.Assign(record.EidPrefix, mapping.InstanceId, mapping.Family, mapping.Prefix, mapping.WithInstanceId || mapping.InstanceId != 0);
        record.EidMaskLength = (byte)mapping.Length;
        record.TtlMinutes = mapping.TtlMinutes;
        record.Authoritative = true;
        record.MapVersion = mapping.MapVersion;
        record.Action = MapReplyAction.NoAction;
        record.Locators.Clear();
        if (n == 0)
        {
            record.Action = MapReplyAction.DropPolicyDenied;
            record.TtlMinutes = ContextMatcher.PolicyDeniedTtlMinutes;
            return AnswerOutcome.PolicyDenied;
        }
        for (int i = 0; i < n; i++)
        {
            var s = _selection[i];
            var rloc = rlocs[s.CandidateIndex];
            var locator = record.Locators.AddSlot();
            // Attributes travel only to requesters that sent constraints (CONTEXT-EXTENSION.md §3.3).
            locator.Locator = constraints is not null && rloc.Context is not null ? ContextEncoding.RlocWithContext(rloc.Address, rloc.Context) : rloc.Address;
            locator.Priority = s.Priority;
            locator.Weight = s.Weight;
            locator.MulticastPriority = rloc.MulticastPriority;
            locator.MulticastWeight = rloc.MulticastWeight;
            locator.Reachable = rloc.Reachable;
            bool isLocal = local is not null && local(rloc.Address);
            locator.Local = isLocal;
            locator.Probed = probe && isLocal;
        }
        return AnswerOutcome.Locators;
    }
}
