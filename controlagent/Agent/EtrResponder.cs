using System.Net;
using FastXtr.Lisp.Answers;
using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;

namespace FastXtr.Agent;

/// <summary>The ETR's own answers: Map-Requests the Map-Server forwarded here, direct requests and RLOC probes.</summary>
internal sealed class EtrResponder(AgentIo io)
{
    /// <summary>
    /// Answers a Map-Request for one of this xTR's EID prefixes from the database, authoritatively, with the same
    /// context rules as the Map-Server (CONTEXT-EXTENSION.md §3: "the same rules apply whether the Map-Server
    /// proxy-replies or forwards"), to the requester's ITR-RLOC.
    /// </summary>
    private readonly AnswerBuilder _etrAnswers = new();
    private readonly LispAddress[] _ownRlocs = io.Config.RlocAddresses.Select(LispAddress.FromIp).ToArray();
    /// <summary>The TTL of an ETR's own answers: a day, as RFC 9301 §5.4 suggests.</summary>
    private const uint EtrAnswerTtlMinutes = 1440;

    public void Answer(MapRequest request, int replyPort, IPEndPoint from)
    {
        var constraints = ContextEncoding.ReadConstraints(request.SourceEid, out _);
        var reply = new MapReply { Nonce = request.Nonce, Probe = request.Probe };
        foreach (var asked in request.Records)
        {
            if (!EidAddress.TryRead(asked.EidPrefix, out uint iid, out var family, out var eid)) continue;
            var d = io.Database.Covering(iid, family, eid);
            if (d is null) continue;
            var record = new MappingRecord();
            // Every locator as this ETR registers it (DatabaseMapping.Rlocs), the mapping's context on each.
            var rlocs = d.Rlocs.Select(r => new RegisteredRloc(LispAddress.FromIp(r.Rloc), r.Priority, r.Weight, LocatorRecord.PriorityDoNotUse, 0, true, d.Context)).ToArray();
            lock (_etrAnswers)
                _etrAnswers.Fill(record, new AnswerFor(d.InstanceId, d.Family, d.Prefix, d.Length, EtrAnswerTtlMinutes, MapVersioning.Null, WithInstanceId: true),
                                 rlocs, constraints, local: a => Array.Exists(_ownRlocs, own => own.ContentEquals(a)), probe: request.Probe);
            reply.Records.Add(record);
        }
        // A probe for a prefix this xTR no longer has is still answered (empty), so the locator counts as up.
        if (reply.Records.Count == 0 && !request.Probe) return;
        byte[] datagram = reply.ToArray();
        // The first ITR-RLOC of a family this xTR has an RLOC of (RFC 9301 §5.4: the replier picks the one it can reach).
        IPAddress to = from.Address;
        foreach (var itr in request.ItrRlocs)
            if (itr.PlainAddress.Kind is LispAddressKind.Ipv4 or LispAddressKind.Ipv6 && io.CanReach(itr.PlainAddress.ToIPAddress())) { to = itr.PlainAddress.ToIPAddress(); break; }
        // Counted before sending: whoever sees the datagram sees the count.
        io.Counters.Add(AgentCounter.EtrRequestsAnswered);
        io.Send(datagram, new IPEndPoint(to, replyPort));
    }
}
