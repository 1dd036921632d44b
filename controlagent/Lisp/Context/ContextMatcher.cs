namespace FastXtr.Lisp.Context;

/// <summary>One registered RLOC as the matcher sees it: its registered priority and weight and its attributes.</summary>
public readonly record struct RlocCandidate(byte Priority, byte Weight, AgentContext? Context);

/// <summary>An RLOC kept in the answer: which candidate, and the priority and weight to return for it.</summary>
public readonly record struct RlocSelection(int CandidateIndex, byte Priority, byte Weight);

/// <summary>
/// The answer rule of CONTEXT-EXTENSION.md §3, as a pure function of the constraints and the registered RLOCs.
/// <list type="number">
/// <item>Filter: keep RLOCs that match the constraints; with no constraints the default states (ready, busy)
/// still apply, so a legacy ITR is never sent to a draining, migrating, failed or stopped agent.</item>
/// <item>Prioritise: sort by (registered priority, latency rank low=0 medium=1 high=2); the returned priority is
/// the dense rank of that pair from 1. Weights are kept, scaled by load: max(1, round(w·(100−load)/100)).</item>
/// </list>
/// Choices where the text is silent, fixed here: an RLOC without <c>state</c> counts as ready; one without
/// <c>latency</c> ranks after high (3); registered priority 255 ("do not use", RFC 9301 §5.4) stays 255 and takes
/// no rank. A registration whose RLOCs carry no attributes at all, asked without constraints, is returned as
/// registered. An empty result means "nothing matches": the caller answers Drop/Policy-Denied with a 1-minute TTL.
/// </summary>
public static class ContextMatcher
{
    public const byte PriorityDoNotUse = 255;
    public const uint PolicyDeniedTtlMinutes = 1;
    private const int NoLatencyRank = 3;

    /// <summary>Whether an RLOC with <paramref name="context"/> (null: no attributes) satisfies <paramref name="constraints"/> (null: none sent).</summary>
    public static bool Matches(AgentConstraints? constraints, AgentContext? context)
    {
        AgentState state = context?.State ?? AgentState.Ready;
        IReadOnlyList<AgentState> states = constraints?.EffectiveStates ?? AgentConstraints.DefaultStates;
        if (!Contains(states, state)) return false;
        if (constraints is null) return true;
        foreach (var tag in constraints.Hardware)
            if (context is null || !context.HasHardware(tag)) return false;
        if (constraints.MaxLatency is LatencyClass max && (context?.Latency is not LatencyClass l || l > max)) return false;
        if (constraints.MinSecurityLevel is int min && (context?.SecurityLevel ?? 0) < min) return false;
        return true;
    }

    private static bool Contains(IReadOnlyList<AgentState> states, AgentState s)
    {
        for (int i = 0; i < states.Count; i++)
            if (states[i] == s) return true;
        return false;
    }

    public static byte ScaleWeight(byte weight, int? load)
    {
        if (load is not int l) return weight;
        double scaled = Math.Round(weight * (100 - l) / 100.0, MidpointRounding.AwayFromZero);
        return (byte)Math.Max(1, scaled);
    }

    private static int LatencyRank(AgentContext? c) => c?.Latency is LatencyClass l ? (int)l : NoLatencyRank;

    /// <summary>
    /// Writes the selected RLOCs, best first, into <paramref name="output"/> (at least as long as
    /// <paramref name="candidates"/>) and returns how many were selected. Allocates nothing.
    /// </summary>
    public static int Select(AgentConstraints? constraints, ReadOnlySpan<RlocCandidate> candidates, Span<RlocSelection> output)
    {
        if (output.Length < candidates.Length) throw new ArgumentException("output must hold every candidate", nameof(output));
        bool anyAttributes = false;
        foreach (var c in candidates) anyAttributes |= c.Context is not null;
        // CONTEXT-EXTENSION.md §3 filters and prioritises only "an EID whose registration has RLOCs with
        // attributes": a registration without any is answered as registered, constraints or not.
        if (!anyAttributes)
        {
            for (int i = 0; i < candidates.Length; i++) output[i] = new RlocSelection(i, candidates[i].Priority, candidates[i].Weight);
            return candidates.Length;
        }

        int n = 0;
        for (int i = 0; i < candidates.Length; i++)
            if (Matches(constraints, candidates[i].Context)) output[n++] = new RlocSelection(i, 0, 0);
        if (n == 0) return 0;

        // Insertion sort by (priority, latency rank, original order): a registration has a handful of RLOCs.
        Span<RlocSelection> kept = output[..n];
        for (int i = 1; i < n; i++)
        {
            var x = kept[i];
            int j = i - 1;
            while (j >= 0 && Compare(candidates, kept[j].CandidateIndex, x.CandidateIndex) > 0)
            {
                kept[j + 1] = kept[j];
                j--;
            }
            kept[j + 1] = x;
        }

        int rank = 0;
        int prevPriority = -1, prevLatency = -1;
        for (int i = 0; i < n; i++)
        {
            ref readonly var c = ref candidates[kept[i].CandidateIndex];
            byte priority;
            if (c.Priority == PriorityDoNotUse) priority = PriorityDoNotUse;
            else
            {
                int lr = LatencyRank(c.Context);
                if (c.Priority != prevPriority || lr != prevLatency)
                {
                    rank++;
                    prevPriority = c.Priority;
                    prevLatency = lr;
                }
                priority = (byte)Math.Min(rank, PriorityDoNotUse - 1);
            }
            kept[i] = new RlocSelection(kept[i].CandidateIndex, priority, ScaleWeight(c.Weight, c.Context?.Load));
        }
        return n;
    }

    public static RlocSelection[] Select(AgentConstraints? constraints, IReadOnlyList<RlocCandidate> candidates)
    {
        var input = candidates.ToArray();
        var output = new RlocSelection[input.Length];
        int n = Select(constraints, input, output);
        return output[..n];
    }

    private static int Compare(ReadOnlySpan<RlocCandidate> candidates, int a, int b)
    {
        ref readonly var x = ref candidates[a];
        ref readonly var y = ref candidates[b];
        int c = x.Priority.CompareTo(y.Priority);
        if (c != 0) return c;
        c = LatencyRank(x.Context).CompareTo(LatencyRank(y.Context));
        return c != 0 ? c : a.CompareTo(b);
    }
}
