using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;

namespace FastXtr.Lab;

/// <summary>The scenario the lab runs once it is up: placement by context, isolation, draining, and the moves.</summary>
public sealed partial class LabRunner
{
    // ------------------------------------------------------------------ the scenario

    public bool Run()
    {
        double upStarted = _clock.Elapsed.TotalSeconds;
        Up();
        double upSeconds = _clock.Elapsed.TotalSeconds - upStarted;
        int settle = _quick ? 1500 : 3000;

        // Servers everywhere; A keeps a task session with B and probes B every millisecond.
        foreach (var a in _t.Agents)
        {
            string extra = a.Name == "A" ? $" --connect {_t.Agent("B").Eid}:{DemoAgent.TaskPort} --probe {_t.Agent("B").Eid}:{DemoAgent.DatagramPort}" : "";
            Start(_t.Namespace(a), $"agent-{a.Name}", $"lab agent --name {a.Name} --eid {a.Eid} --report {_t.Report(a)}{extra}");
        }
        foreach (var a in _t.Agents) WaitFor(() => File.Exists(_t.Report(a)), $"demo agent {a.Name} to start");

        // 1. Task exchange; resolution on first packet.
        Say("step 1 — A (gateway 1) opens a TCP session to B (gateway 2) and sends numbered JSON tasks; the first packet misses and is resolved");
        WaitFor(() => ReportOf("A")["tasks"]!["answered"]!.GetValue<long>() >= 20, "A's first task answers (see logs)", 20_000);
        Thread.Sleep(settle);
        var a1 = ReportOf("A")["tasks"]!;
        string view1 = CacheView(1, 1000, "10.1.0.1", "10.1.0.2");
        ulong misses = Counter(1, FastXtr.SharedMemory.Counter.MissesPosted);
        bool pass1 = a1["answered"]!.GetValue<long>() >= 20 && a1["lost"]!.GetValue<long>() == 0 && view1 == _t.Locator(2) && misses >= 1;
        Step(1, "task exchange with resolution on first packet", pass1, new JsonObject
        {
            ["tasks_sent"] = a1["sent"]!.GetValue<long>(), ["tasks_answered"] = a1["answered"]!.GetValue<long>(), ["tasks_lost"] = a1["lost"]!.GetValue<long>(),
            ["gw1_map_cache_10.1.0.2"] = view1, ["gw1_misses_posted"] = misses,
        }, $"{a1["answered"]} tasks answered, {a1["lost"]} lost; gateway 1 resolved [1000]10.1.0.2 → {view1} after {misses} miss(es)");

        // 2. The move.
        Say(_style == MoveStyle.MakeBeforeBreak
            ? "step 2 — B moves: its namespace is linked to gateway 3 too, B attaches there with the same EID, then detaches from gateway 2 and that link goes (process and TCP socket untouched)"
            : "step 2 — B moves, break before make: detached from gateway 2, its namespace re-linked to gateway 3, attached there with the same EID (process and TCP socket untouched)");
        var b = _t.Agent("B");
        long answeredBefore = ReportOf("A")["tasks"]!["answered"]!.GetValue<long>();
        var move = Move(b, 2, 3);
        Thread.Sleep(settle);
        var a2 = ReportOf("A")["tasks"]!;
        var probes = ProbeTimeline(ReportOf("B"), move.Start);
        double converged = move.Convergence(probes);
        var gaps = probes.Gaps(move.EndMs(probes));
        string view2 = CacheView(1, 1000, "10.1.0.1", "10.1.0.2");
        long answeredAfter = a2["answered"]!.GetValue<long>();
        bool pass2 = move.Detached == 200 && move.Attached == 201 && a2["session_breaks"]!.GetValue<long>() == 0 && a2["lost"]!.GetValue<long>() == 0
            && answeredAfter > answeredBefore + 10 && view2 == _t.Locator(3) && gaps.OutageMs < 2000 && !double.IsNaN(converged);
        _figures["move_style"] = StyleName(_style);
        _figures["move_outage_ms"] = Math.Round(gaps.OutageMs, 1);
        _figures["probe_jitter_ms"] = Math.Round(gaps.JitterMs, 1);
        _figures["move_probes_lost"] = probes.Lost;
        _figures["move_convergence_ms"] = Math.Round(converged, 1);
        Step(2, "move with the same EID", pass2, new JsonObject
        {
            ["style"] = StyleName(_style), ["outage_ms"] = Math.Round(gaps.OutageMs, 1), ["outage_at_ms"] = Math.Round(gaps.OutageAtMs, 1),
            ["move_end_ms"] = Math.Round(gaps.MoveEndMs, 1), ["jitter_ms"] = Math.Round(gaps.JitterMs, 1), ["jitter_at_ms"] = Math.Round(gaps.JitterAtMs, 1),
            ["probes_lost"] = probes.Lost, ["probes_received"] = probes.Received,
            ["convergence_ms"] = Math.Round(converged, 1), ["phases_ms"] = move.Phases(),
            ["tasks_answered_before"] = answeredBefore, ["tasks_answered_after"] = answeredAfter, ["tasks_lost"] = a2["lost"]!.GetValue<long>(),
            ["tasks_duplicated"] = a2["duplicated"]!.GetValue<long>(), ["tasks_reordered"] = a2["reordered"]!.GetValue<long>(),
            ["session_breaks"] = a2["session_breaks"]!.GetValue<long>(), ["gw1_map_cache_10.1.0.2"] = view2,
        }, $"outage {gaps.OutageMs:F1} ms on the 1 ms probe stream during the move ({probes.Lost} probes lost; largest gap outside the move {gaps.JitterMs:F1} ms, jitter); the first probe came in over the new link {converged:F1} ms after the registration that sent it there began; " +
           $"TCP session kept, {a2["lost"]} tasks lost; gateway 1 now sends to {view2} ({string.Join(", ", move.Events.Select(e => $"{e.Label.ToLowerInvariant()} {e.AtMs:F0} ms"))})");
        WriteTimeline(probes, gaps, move.Events);
        if (_extraMoves > 0) MoveRepeatedly(b, gaps.OutageMs, converged);

        // 3. Context.
        Say("step 3 — context: A requires a GPU, C has no constraints; both send to the inference service 10.1.0.9 (gateway 2: no GPU, medium latency; gateway 3: GPU, low latency)");
        int count = _quick ? 20 : 40;
        SendFrom("A", "10.1.0.9", count);
        SendFrom("C", "10.1.0.9", count);
        Thread.Sleep(300);
        long aAt3 = Received("inf3", "A"), aAt2 = Received("inf2", "A"), cAt3 = Received("inf3", "C"), cAt2 = Received("inf2", "C");
        string gpuView = CacheView(1, 1000, "10.1.0.1", "10.1.0.9"), plainView = CacheView(1, 1000, "10.1.0.3", "10.1.0.9");
        Say($"         before: A→ gateway 3 {aAt3}, gateway 2 {aAt2}; C→ gateway 3 {cAt3}, gateway 2 {cAt2}; gateway 1 sends A's to {gpuView}, C's to {plainView}");
        Say("         gateway 3's inference agent switches to 'draining' (PATCH on its API: a metadata update, no re-registration gap)");
        var drain = Api(3, HttpMethod.Patch, "/v1/agents/1000/10.1.0.9", """{"attributes":{"state":"draining"}}""");
        Thread.Sleep(_quick ? 500 : 1000);
        ulong deniedBefore = Counter(1, FastXtr.SharedMemory.Counter.DropPolicyDenied);
        SendFrom("A", "10.1.0.9", count);
        SendFrom("C", "10.1.0.9", count);
        Thread.Sleep(300);
        long aAt3b = Received("inf3", "A") - aAt3, aAt2b = Received("inf2", "A") - aAt2, cAt3b = Received("inf3", "C") - cAt3, cAt2b = Received("inf2", "C") - cAt2;
        ulong denied = Counter(1, FastXtr.SharedMemory.Counter.DropPolicyDenied) - deniedBefore;
        string gpuView2 = CacheView(1, 1000, "10.1.0.1", "10.1.0.9"), plainView2 = CacheView(1, 1000, "10.1.0.3", "10.1.0.9");
        int enough = count * 8 / 10;
        bool pass3 = aAt3 >= enough && aAt2 == 0 && cAt3 >= enough && cAt2 == 0 && drain.Status == 200
            && aAt3b == 0 && aAt2b == 0 && (long)denied >= enough && cAt2b >= enough && cAt3b == 0;
        Step(3, "context-aware routing and a state change", pass3, new JsonObject
        {
            ["sent_per_phase"] = count,
            ["before"] = new JsonObject { ["A_at_gw3"] = aAt3, ["A_at_gw2"] = aAt2, ["C_at_gw3"] = cAt3, ["C_at_gw2"] = cAt2, ["gw1_path_from_A"] = gpuView, ["gw1_path_from_C"] = plainView },
            ["after_draining"] = new JsonObject { ["A_at_gw3"] = aAt3b, ["A_at_gw2"] = aAt2b, ["gw1_drop_policy_denied"] = denied, ["C_at_gw3"] = cAt3b, ["C_at_gw2"] = cAt2b, ["gw1_path_from_A"] = gpuView2, ["gw1_path_from_C"] = plainView2 },
        }, $"before: A {aAt3}/{count} and C {cAt3}/{count} at the GPU gateway 3; after draining: A {denied} dropped as Policy-Denied at gateway 1, C {cAt2b}/{count} at gateway 2");

        // 4. Isolation.
        Say("step 4 — isolation: T1 (IID 2000, A's EID 10.1.0.1) sends to 10.1.0.2 and 10.1.0.9; A (IID 1000) sends to 10.1.0.2");
        long bFromT1 = Received("B", "T1"), t2FromA = Received("T2", "A");
        SendFrom("T1", "10.1.0.2", count);
        SendFrom("T1", "10.1.0.9", count);
        SendFrom("A", "10.1.0.2", count);
        Thread.Sleep(300);
        long t2FromT1 = Received("T2", "T1"), bFromT1After = Received("B", "T1") - bFromT1, infFromT1 = Received("inf2", "T1") + Received("inf3", "T1");
        long bFromA = Received("B", "A"), t2FromAAfter = Received("T2", "A") - t2FromA;
        string t1View = CacheView(3, 2000, "10.1.0.1", "10.1.0.9");
        bool pass4 = t2FromT1 >= enough && bFromT1After == 0 && infFromT1 == 0 && bFromA >= enough && t2FromAAfter == 0;
        Step(4, "isolation of agent groups with the same EIDs", pass4, new JsonObject
        {
            ["T2_from_T1"] = t2FromT1, ["B_from_T1"] = bFromT1After, ["inference_from_T1"] = infFromT1, ["gw3_iid2000_map_cache_10.1.0.9"] = t1View,
            ["B_from_A"] = bFromA, ["T2_from_A"] = t2FromAAfter,
        }, $"T1 reached its own group's 10.1.0.2 ({t2FromT1}/{count}) and never B ({bFromT1After}) nor the inference service ({infFromT1}); A reached B ({bFromA}/{count}), never T2 ({t2FromAAfter})");

        _figures["up_seconds"] = Math.Round(upSeconds, 1);
        _figures["total_seconds"] = Math.Round(_clock.Elapsed.TotalSeconds, 1);
        bool all = _steps.All(s => s!["pass"]!.GetValue<bool>());
        var summary = new JsonObject
        {
            ["lab"] = "draft-wang-lisp-ai-agent-00 demonstration", ["prefix"] = _t.Prefix, ["gateway3_behind_nat"] = _t.Nat, ["pass"] = all,
            ["figures"] = _figures.DeepClone(), ["steps"] = _steps.DeepClone(),
            ["outputs"] = new JsonObject { ["underlay_pcap"] = File.Exists(_t.Pcap) ? _t.Pcap : null, ["timeline_png"] = Path.Combine(_t.OutDir, "timeline.png"), ["logs"] = _t.LogDir },
        };
        File.WriteAllText(Path.Combine(_t.OutDir, "summary.json"), summary.ToJsonString(DemoAgent.JsonOptions));
        Say($"{(all ? "all steps passed" : "SOME STEPS FAILED")}; summary in {Path.Combine(_t.OutDir, "summary.json")}");
        return all;
    }

    /// <summary>
    /// The mobility benchmark (<c>--extra-moves N</c>, N even so that B ends on gateway 3): B moves back and forth,
    /// 700 ms apart, under A's probe stream; per move the longest silence and the time from the start of B's
    /// registration at the new gateway to the first probe over the new link, then median and p99 over every move
    /// including step 2's.
    /// </summary>
    private void MoveRepeatedly(LabAgent b, double firstOutage, double firstConvergence)
    {
        var outages = new List<double> { firstOutage };
        var convergences = new List<double> { firstConvergence };
        var phases = new JsonArray();
        long lost = _figures["move_probes_lost"]!.GetValue<long>();
        int at = 3;
        for (int i = 0; i < _extraMoves; i++)
        {
            int to = at == 3 ? 2 : 3;
            Thread.Sleep(700);
            var move = Move(b, at, to);
            if (move.Attached != 201 || move.Detached != 200) throw new LabException($"move {i + 2}: attach at gateway {to} answered {move.Attached}, detach at gateway {at} {move.Detached}");
            at = to;
            Thread.Sleep(600);
            var t = ProbeTimeline(ReportOf("B"), move.Start, windowMs: 600);
            outages.Add(t.Gaps(move.EndMs(t)).OutageMs);
            lost += t.Lost;
            convergences.Add(move.Convergence(t));
            phases.Add(move.Phases());
        }
        static double Pct(List<double> v, double q) { var o = v.Where(x => !double.IsNaN(x)).OrderBy(x => x).ToList(); return o.Count == 0 ? double.NaN : o[Math.Min(o.Count - 1, (int)Math.Ceiling(q * o.Count) - 1)]; }
        _figures["moves"] = outages.Count;
        _figures["moves_probes_lost"] = lost;
        _figures["move_outage_ms_median"] = Math.Round(Pct(outages, 0.5), 1);
        _figures["move_outage_ms_p99"] = Math.Round(Pct(outages, 0.99), 1);
        _figures["move_convergence_ms_median"] = Math.Round(Pct(convergences, 0.5), 1);
        _figures["move_convergence_ms_p99"] = Math.Round(Pct(convergences, 0.99), 1);
        _figures["move_outages_ms"] = new JsonArray(outages.Select(o => (JsonNode)Math.Round(o, 1)).ToArray());
        _figures["move_convergences_ms"] = new JsonArray(convergences.Select(o => (JsonNode)Math.Round(o, 1)).ToArray());
        _figures["move_phases_ms"] = phases;
        Say($"         {outages.Count} moves ({StyleName(_style)}): outage median {Pct(outages, 0.5):F1} ms, p99 {Pct(outages, 0.99):F1} ms, {lost} probes lost in all; " +
            $"registration to the first probe over the new link (convergence) median {Pct(convergences, 0.5):F1} ms, p99 {Pct(convergences, 0.99):F1} ms");
    }

    private sealed record MoveTrace(DateTime Start, double RegisteredMs, double WithdrawnMs, int Attached, int Detached, int NewInterface, List<(double AtMs, string Label)> Events)
    {
        /// <summary>
        /// From the registration that sent the traffic to the new link to the first probe over it. Break-before-make:
        /// the attach. Make-before-break: the attach when the merged answer already sent the probe flow to the new
        /// gateway, otherwise the old gateway's withdrawal (until then the flow hash kept it on the old link, which
        /// still delivered). NaN when no probe came over the new link.
        /// </summary>
        /// <summary>Each phase's start, ms after the move's start: {"attach": 0, "attached": 21.3, ...}.</summary>
        public JsonObject Phases() => new(Events.Select(e => KeyValuePair.Create(e.Label.ToLowerInvariant().Replace('-', '_'), (JsonNode?)Math.Round(e.AtMs, 1))));

        /// <summary>When the move is over: its last step, or the first probe over the new link when that came later.</summary>
        public double EndMs(Timeline t)
        {
            double last = Events.Count == 0 ? 0 : Events.Max(e => e.AtMs);
            double first = t.FirstOn(NewInterface, RegisteredMs);
            return double.IsNaN(first) ? last : Math.Max(last, first);
        }

        public double Convergence(Timeline t)
        {
            double first = t.FirstOn(NewInterface, RegisteredMs);
            return first < WithdrawnMs ? first - RegisteredMs : first - WithdrawnMs;
        }
    }

    /// <summary>
    /// Moves an agent between gateways, keeping its process, EID and sockets. Make-before-break (how an orchestrator
    /// migrates): linked to the new gateway first, attached there, its default route switched, then detached from the
    /// old one and unlinked; the clock starts at the attach. Break-before-make (the worst case): detached, re-linked,
    /// attached; the clock starts at the detach. Times of each phase are relative to the start.
    /// </summary>
    private MoveTrace Move(LabAgent a, int from, int to)
    {
        var events = new List<(double, string)>();
        int attached, detached;
        double registered, withdrawn;
        DateTime start;
        double Now(DateTime s) => (DateTime.UtcNow - s).TotalMilliseconds;
        if (_style == MoveStyle.MakeBeforeBreak)
        {
            Link(a, to, defaultRoute: false);
            start = DateTime.UtcNow;
            registered = 0;
            events.Add((0, "attach"));
            attached = Attach(a, to).Status;
            events.Add((Now(start), "attached"));
            RouteVia(a, to);
            withdrawn = Now(start);
            events.Add((withdrawn, "detach"));
            detached = Api(from, HttpMethod.Delete, $"/v1/agents/{a.InstanceId}/{a.Eid}", null).Status;
            events.Add((Now(start), "detached"));
            Unlink(a, from);
            events.Add((Now(start), "unlinked"));
        }
        else
        {
            start = DateTime.UtcNow;
            events.Add((0, "detach"));
            detached = Api(from, HttpMethod.Delete, $"/v1/agents/{a.InstanceId}/{a.Eid}", null).Status;
            events.Add((Now(start), "re-linked"));
            Unlink(a, from);
            Link(a, to);
            registered = Now(start);
            withdrawn = double.PositiveInfinity; // the withdrawal came first and sent nothing anywhere
            events.Add((registered, "attach"));
            attached = Attach(a, to).Status;
            events.Add((Now(start), "attached"));
        }
        return new MoveTrace(start, registered, withdrawn, attached, detached, InterfaceIndex(a, to), events);
    }

    private sealed record Timeline(long Lost, long Received, List<(double AtMs, double GapMs)> Points, List<(double AtMs, long Seq, int Interface)> Arrivals)
    {
        /// <summary>
        /// The move's outage and the probe stream's jitter: the longest silence that overlaps the move (from its start
        /// to <paramref name="moveEndMs"/>: its last step, or the first probe over the new link if that came later), and
        /// apart from it the longest silence anywhere else in the window, which the move did not cause (a scheduler
        /// hiccup on a shared 2-core machine, say). Each with the time its silence ended.
        /// </summary>
        public MoveGaps Gaps(double moveEndMs)
        {
            var gaps = new MoveGaps(0, double.NaN, 0, double.NaN, moveEndMs);
            foreach (var (at, gap) in Points)
            {
                bool duringMove = at >= 0 && at - gap <= moveEndMs;
                if (duringMove && gap > gaps.OutageMs) gaps = gaps with { OutageMs = gap, OutageAtMs = at };
                else if (!duringMove && gap > gaps.JitterMs) gaps = gaps with { JitterMs = gap, JitterAtMs = at };
            }
            return gaps;
        }

        /// <summary>When the first probe after <paramref name="afterMs"/> came in over the link with that index (NaN: none did).</summary>
        public double FirstOn(int interfaceIndex, double afterMs) =>
            Arrivals.Where(p => p.Interface == interfaceIndex && p.AtMs >= afterMs).Select(p => p.AtMs).DefaultIfEmpty(double.NaN).First();
    }

    /// <summary>Probe arrivals at B relative to the move's start: the longest silence, the probes never received, and the link of each.</summary>
    private static Timeline ProbeTimeline(JsonNode report, DateTime moveStart, double windowMs = double.MaxValue)
    {
        var started = DateTime.Parse(report["started_utc"]!.GetValue<string>(), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);
        double offset = (started - moveStart).TotalMilliseconds;
        var arrivals = report["probes"]!.AsArray().Select(p => (AtMs: p![0]!.GetValue<double>() + offset, Seq: p[1]!.GetValue<long>(), Interface: p[2]!.GetValue<int>())).ToList();
        var window = arrivals.Where(p => p.AtMs >= -1000 && p.AtMs <= windowMs).ToList();
        var points = new List<(double, double)>();
        for (int i = 1; i < window.Count; i++) points.Add((window[i].AtMs, window[i].AtMs - window[i - 1].AtMs));
        long lost = window.Count < 2 ? 0 : (window.Max(p => p.Seq) - window.Min(p => p.Seq) + 1) - window.Select(p => p.Seq).Distinct().Count();
        return new Timeline(lost, window.Count, points, window);
    }

    /// <summary>A move's outage (the longest silence overlapping it) and jitter (the longest elsewhere), see <see cref="Timeline.Gaps"/>.</summary>
    private sealed record MoveGaps(double OutageMs, double OutageAtMs, double JitterMs, double JitterAtMs, double MoveEndMs);

    private void WriteTimeline(Timeline t, MoveGaps gaps, IReadOnlyList<(double AtMs, string Label)> events)
    {
        string csv = Path.Combine(_t.OutDir, "timeline.csv");
        File.WriteAllLines(csv, t.Points.Select(p => $"{p.AtMs.ToString("F3", CultureInfo.InvariantCulture)},{p.GapMs.ToString("F3", CultureInfo.InvariantCulture)}").Prepend("ms_since_move,gap_ms"));
        string png = Path.Combine(_t.OutDir, "timeline.png");
        TimelinePlot.Write(png, t.Points, events, (gaps.OutageMs, gaps.OutageAtMs), (gaps.JitterMs, gaps.JitterAtMs), t.Lost);
    }
}
