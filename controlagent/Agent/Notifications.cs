using System.Net;
using FastXtr.Lisp.Messages;
using FastXtr.SharedMemory;

namespace FastXtr.Agent;

/// <summary>
/// Notifications both ways: Map-Notifies (authenticated with a Map-Server's key; the answers to our registrations, the
/// publications of what we subscribed to, and move notifications to this ETR), each acknowledged; and Solicit-Map-
/// Requests, sent to ITRs that still send to an EID that moved away, and obeyed when they come in.
/// </summary>
internal sealed class Notifications(AgentIo io, Registrar registrar, Resolver resolver)
{
    /// <summary>
    /// An SMR (RFC 9301 §6.6.2) to the ITR that sent a packet for an EID that moved away. The data plane already limits
    /// these to about one per EID per second.
    /// </summary>
    public void SendSmr(in MissRecord solicit)
    {
        // The ITR's outer source: an IPv6 address, or an IPv4 one in its mapped form (MissRecord.OuterSource).
        var itr = MappedIpv4.ToAddress(solicit.OuterSource);
        var own = io.Config.RlocOf(itr.AddressFamily);
        if (own is null) return; // data came in over a family this agent has no socket of: the data plane's RLOCs differ from ours
        var smr = BuildSmr(solicit.InstanceId, solicit.Family, solicit.DestinationEid, solicit.SourceEid, LispAddress.FromIp(own), AgentIo.NewNonce());
        io.Counters.Add(AgentCounter.SmrsSent);
        io.Send(smr.ToArray(), new IPEndPoint(itr, LispPorts.Control));
    }

    /// <summary>
    /// The SMR layout deployed xTRs use (OpenOverlayRouter's <c>xtr_build_and_send_smr_mreq</c>, lispers.net): a
    /// Map-Request with the S bit whose Source-EID is the EID whose mapping changed (<paramref name="movedEid"/>, the
    /// one the ITR must look up again) and whose EID record names the ITR's own EID (the source of the packet that
    /// arrived here, <paramref name="itrEid"/>), which such an ITR checks against its database before it obeys.
    /// </summary>
    internal static MapRequest BuildSmr(uint iid, EidFamily family, UInt128 movedEid, UInt128 itrEid, LispAddress itrRloc, ulong nonce)
    {
        var smr = new MapRequest { Nonce = nonce, SolicitMapRequest = true, SourceEid = EidAddress.WithInstanceId(iid, family, movedEid) };
        smr.ItrRlocs.Add(itrRloc);
        smr.Records.Add(new MapRequestRecord(EidAddress.WithInstanceId(iid, family, itrEid), (byte)EidPrefix.MaxLength(family)));
        return smr;
    }

    /// <summary>
    /// An SMR arrived: re-resolve, through the mapping system, the EID it names for every profile that cached it. The
    /// changed EID is the Source-EID in the layout RFC 9301 and deployed xTRs use (see <see cref="BuildSmr"/>); some
    /// senders (FastXtr before it followed them) put it in the EID record instead, so both are looked up in what this
    /// ITR resolved, and whichever it has cached is asked for again.
    /// </summary>
    public void OnSmr(MapRequest smr)
    {
        io.Counters.Add(AgentCounter.SmrsReceived);
        var named = new List<LispAddress>(smr.Records.Count + 1) { smr.SourceEid };
        foreach (var asked in smr.Records) named.Add(asked.EidPrefix);
        var done = new HashSet<(uint, EidFamily, UInt128)>();
        foreach (var address in named)
        {
            if (!EidAddress.TryRead(address, out uint iid, out var family, out var eid) || !done.Add((iid, family, eid))) continue;
            foreach (var (profile, source) in resolver.ResolvedCovering(iid, family, eid))
                resolver.Request(iid, profile, family, source, eid, smrInvoked: true);
        }
    }

    /// <summary>
    /// A Map-Notify: the answer to one of our Map-Registers, or a publication (RFC 9437) of a record we subscribed to,
    /// or a move notification to this ETR about an EID that left it. Authenticated with a Map-Server's key first.
    /// </summary>
    public void OnMapNotify(ReadOnlySpan<byte> message, MapNotify notify, IPEndPoint from)
    {
        MapServerPeer? peer = null;
        // The Map-Server the notify came from first, then any other (a publication may come from another address).
        foreach (var ms in io.Config.MapServers.OrderBy(ms => ms.Endpoint.Address.Equals(from.Address) ? 0 : 1))
            if (MessageAuthentication.Verify(message, ms.Key) == AuthenticationFailure.None) { peer = ms; break; }
        if (peer is null)
        {
            io.Counters.Add(AgentCounter.MapNotifyAuthenticationFailed);
            AgentLog.MapNotifyAuthenticationFailed(io.Log, from);
            return;
        }
        if (registrar.TryAcknowledge(notify, from)) return;
        if (resolver.TryTakeSubscriptionAck(notify))
        {
            io.Counters.Add(AgentCounter.SubscriptionAcksTaken);
            Acknowledge(notify, peer, from);
            return;
        }
        // RFC 9437 §5: a publication's nonce must be above the last taken for its record. The same nonce again is a
        // retransmission whose acknowledgement was lost: acknowledged again, not applied a second time. A lower one
        // is a replay (or a publication from before the subscription's last renewal, whose answer we hold): dropped
        // unacknowledged and logged.
        var order = Resolver.PublicationOrder.New;
        foreach (var rec in notify.Records)
        {
            if (!EidAddress.TryRead(rec.EidPrefix, out uint iid, out var family, out var prefix)) continue;
            prefix = EidPrefix.Mask(prefix, family, rec.EidMaskLength);
            if (resolver.ResolvedBy(iid, family, prefix, rec.EidMaskLength) is null) continue;
            var o = resolver.OrderOf(iid, family, prefix, rec.EidMaskLength, notify.Nonce, out ulong last);
            if (o == Resolver.PublicationOrder.Replayed)
            {
                io.Counters.Add(AgentCounter.PublicationsReplayed);
                AgentLog.PublicationReplayed(io.Log, from, $"[{iid}]{EidPrefix.Format(family, prefix)}/{rec.EidMaskLength}", notify.Nonce, last);
                return;
            }
            if (o != Resolver.PublicationOrder.New) order = o;
        }
        if (order != Resolver.PublicationOrder.New)
        {
            io.Counters.Add(order == Resolver.PublicationOrder.Repeated ? AgentCounter.PublicationsRepeated : AgentCounter.SubscriptionAcksTaken);
            Acknowledge(notify, peer, from);
            return;
        }
        foreach (var rec in notify.Records)
        {
            if (!EidAddress.TryRead(rec.EidPrefix, out uint iid, out var family, out var prefix)) continue;
            if (io.Database.All.Any(d => d.InstanceId == iid && d.Family == family && d.Prefix == prefix && d.Length == rec.EidMaskLength)) continue;
            if (resolver.ResolvedBy(iid, family, EidPrefix.Mask(prefix, family, rec.EidMaskLength), rec.EidMaskLength) is { } profiles)
            {
                // Publications carry the record filtered for the latest subscription's constraints: one profile takes it
                // as is; with several, each re-resolves under its own constraints (one round trip).
                resolver.TookPublication(iid, family, EidPrefix.Mask(prefix, family, rec.EidMaskLength), rec.EidMaskLength, notify.Nonce);
                if (profiles.Count == 1)
                {
                    var (profile, source) = profiles.First();
                    resolver.Install(rec, profile, source, publication: true);
                }
                else foreach (var (profile, source) in profiles) resolver.Request(iid, profile, family, source, prefix, smrInvoked: false, onEvent: true);
                io.Counters.Add(AgentCounter.PublicationsApplied);
            }
            else
            {
                // A move notification: this ETR learns the EID's new home, so packets that still arrive here go on.
                resolver.Install(rec, 0, 0, publication: true);
                io.Counters.Add(AgentCounter.MoveNotifiesApplied);
            }
        }
        Acknowledge(notify, peer, from);
    }

    /// <summary>The Map-Notify-Ack (RFC 9301 §5.7): the notify's nonce, xTR-ID and records, signed with the Map-Server's key.</summary>
    private void Acknowledge(MapNotify notify, MapServerPeer peer, IPEndPoint from)
    {
        var ack = new MapNotify(isAck: true) { Nonce = notify.Nonce, KeyId = peer.Key.KeyId, AlgorithmId = peer.Key.Algorithm, XtrIdPresent = notify.XtrIdPresent, XtrId = notify.XtrId, SiteId = notify.SiteId };
        foreach (var rec in notify.Records) ack.Records.Add(rec);
        io.Counters.Add(AgentCounter.MapNotifyAcksSent);
        io.Send(ack.ToSignedArray(peer.Key), from);
    }
}
