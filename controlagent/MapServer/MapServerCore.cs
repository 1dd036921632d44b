using System.Collections.Immutable;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using FastXtr.Lisp.Answers;
using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;
using FastXtr.Common.Logging;
using FastXtr.Packets;

namespace FastXtr.MapServer;

/// <summary>
/// The Map-Server and Map-Resolver logic (RFC 9301 §5, §8; CONTEXT-EXTENSION.md §3, §4), independent of sockets:
/// <see cref="Handle"/> takes one received datagram and calls <c>send</c> for each datagram to send back.
/// One instance per receive worker (it reuses its message objects); the registration store is shared.
/// </summary>
public sealed class MapServerCore
{
    private readonly PolicyCell _policyCell;
    // The policy this message is handled under: taken from the cell once per message, so that a reload never splits one.
    private MapServerPolicy _policy;
    private readonly RegistrationStore _store;
    private readonly MapServerCounters _counters;
    private readonly RateLimitedLogger _log;
    private readonly MapRegister _register = new();
    private readonly MapRequest _request = new();
    private readonly EncapsulatedControlMessage _ecm = new();
    private readonly MapNotify _ack = new();
    // HandleRegister's working lists and its Map-Notify, kept across messages (a refresh allocates less).
    // Stored: the locator set is one this xTR has registered already, so the record may be a refresh (RegistrationStore.TryRefresh).
    private readonly List<(EidKey Key, ImmutableArray<RegisteredRloc> Rlocs, MappingRecord Record, int Index, bool Stored)> _registered = [];
    private readonly List<(EidKey Key, ushort MapVersion)> _withdrawals = [];
    private readonly List<int> _accepted = [];
    private readonly MapNotify _notify = new();
    // Encode-only: its records and locators are refilled for every answer, never decoded into (they point at the
    // registrations' own locator addresses), so answering a Map-Request allocates no message objects.
    private readonly MapReply _reply = new();
    private readonly MapReferral _referral = new();
    private readonly byte[] _out = new byte[LispMessage.MaxMessageLength];
    private readonly AnswerBuilder _answers = new();

    public delegate void Sender(ReadOnlySpan<byte> datagram, IPEndPoint destination);

    /// <summary>Where subscriptions go and acknowledgements are reported (null: publish/subscribe off).</summary>
    public Publisher? Publisher { get; set; }

    /// <summary>The DDT Map-Resolver, shared by the workers (null: requests are answered from our own sites only).</summary>
    public DdtResolver? Resolver { get; set; }

    /// <summary>
    /// Where this worker's DDT Map-Requests go: its batch to the resolver's socket, sent with the batch's replies
    /// (null: the resolver's own sender, one send each).
    /// </summary>
    public Sender? DdtRequestSender { get; set; }

    private readonly MapReferral _referralIn = new();

    public MapServerCore(PolicyCell policy, RegistrationStore store, MapServerCounters counters, RateLimitedLogger log)
    {
        _policyCell = policy;
        _policy = policy.Current;
        _store = store;
        _counters = counters;
        _log = log;
    }

    public static long NowMs => Environment.TickCount64;

    public void Handle(ReadOnlySpan<byte> message, IPEndPoint source, Sender send)
    {
        _counters.Add(MsCounter.MessagesReceived);
        _policy = _policyCell.Current;
        switch (LispMessage.PeekType(message))
        {
            case LispMessageType.MapRegister: HandleRegister(message, source, send); break;
            case LispMessageType.EncapsulatedControlMessage: HandleEcm(message, source, send); break;
            case LispMessageType.MapRequest:
                if (!_policy.Requests.TryAcquire(Key(source.Address), Stopwatch.GetTimestamp())) { _counters.Add(MsCounter.RateLimitedMapRequest); return; }
                HandleRequest(message, source, source.Port, send, default);
                break;
            case LispMessageType.InfoRequest:
                // An Info-Request flood is held to the Map-Request rate of its source.
                if (!_policy.Requests.TryAcquire(Key(source.Address), Stopwatch.GetTimestamp())) { _counters.Add(MsCounter.RateLimitedInfoRequest); return; }
                HandleInfoRequest(message, source, send);
                break;
            case LispMessageType.MapReferral:
                if (Resolver is null) { _counters.Add(MsCounter.UnsupportedMessageType); break; }
                if (!_referralIn.TryDecode(message).Ok) { _counters.Add(MsCounter.MalformedMessage); break; }
                Resolver.OnReferral(_referralIn, source, NowMs, send, DdtRequestSender);
                break;
            case LispMessageType.MapNotifyAck:
                var r = _ack.TryDecode(message);
                if (!r.Ok) { _counters.Add(MsCounter.MalformedMessage); break; }
                // Matched by nonce and first record (RFC 9301 §5.7: the ack has the Map-Notify's contents; our agent,
                // lispers.net and Cisco echo the records): one subscribing request's records share their nonces.
                if (_ack.Records.Count == 0 || !EidAddress.TryRead(_ack.Records[0].EidPrefix, out uint ackIid, out var ackFamily, out var ackEid))
                {
                    _counters.Add(MsCounter.MapNotifyAcksUnmatched);
                    _log.Warning("ack-record", $"{source}: Map-Notify-Ack for nonce 0x{_ack.Nonce:x16} carries no EID record to match; ignored");
                    break;
                }
                var acked = Publisher?.Acknowledge(_ack.Nonce, EidKey.Masked(ackIid, ackFamily, ackEid, _ack.Records[0].EidMaskLength), message);
                if (acked == Publisher.AckResult.AuthenticationFailed)
                {
                    _counters.Add(MsCounter.MapNotifyAckAuthenticationFailed);
                    _log.Warning("ack-auth", $"{source}: Map-Notify-Ack for nonce 0x{_ack.Nonce:x16} failed authentication; ignored");
                    break;
                }
                _counters.Add(acked == Publisher.AckResult.Acknowledged ? MsCounter.MapNotifyAcksReceived : MsCounter.MapNotifyAcksUnmatched);
                break;
            default:
                _counters.Add(MsCounter.UnsupportedMessageType);
                _log.Warning("unsupported", $"{source}: message type {(message.IsEmpty ? -1 : message[0] >> 4)} is not handled here; dropped");
                break;
        }
    }

    private static UInt128 Key(IPAddress a) => MappedIpv4.FromAddress(a);

    private SiteConfig? SiteFor(uint iid, EidFamily family, UInt128 eid)
    {
        foreach (var site in _policy.Config.Sites)
            foreach (var p in site.Prefixes)
                if (p.Contains(iid, family, eid)) return site;
        return null;
    }

    // ---- Map-Register (RFC 9301 §5.6, §8.2) ----

    private void HandleRegister(ReadOnlySpan<byte> message, IPEndPoint source, Sender send)
    {
        if (!_policy.Registers.TryAcquire(Key(source.Address), Stopwatch.GetTimestamp())) { _counters.Add(MsCounter.RateLimitedMapRegister); return; }
        var decoded = _register.TryDecode(message);
        if (!decoded.Ok)
        {
            _counters.Add(MsCounter.MalformedMessage);
            _log.Warning("malformed", $"{source}: malformed Map-Register: {decoded.Describe()}");
            return;
        }
        if (_register.Records.Count == 0 || !EidAddress.TryRead(_register.Records[0].EidPrefix, out uint iid0, out var fam0, out var eid0))
        {
            _counters.Add(MsCounter.RegisterNoSiteForEid);
            return;
        }
        var site = SiteFor(iid0, fam0, eid0);
        if (site is null)
        {
            _counters.Add(MsCounter.RegisterNoSiteForEid);
            _log.Warning("no-site", $"{source}: Map-Register for [{iid0}]{EidPrefix.Format(fam0, eid0)}: no site owns that EID; refused");
            return;
        }
        SiteKey? key = Authenticate(message, site);
        if (key is null)
        {
            _counters.Add(MsCounter.RegisterAuthenticationFailed);
            _log.Warning("auth", $"{source}: Map-Register for site '{site.Name}' failed authentication (key-id {_register.KeyId}, algorithm {_register.AlgorithmId}); refused");
            return;
        }

        // Every record must lie in this site's space: an ETR never registers another site's agents.
        var now = DateTime.UtcNow;
        long nowMs = NowMs;
        UInt128 xtrId = _register.XtrIdPresent ? _register.XtrId : Key(source.Address);
        var records = _registered;
        var withdrawals = _withdrawals;
        // Which records were taken: the Map-Notify confirms those and no other (RFC 9301 §5.7).
        var accepted = _accepted;
        records.Clear();
        withdrawals.Clear();
        accepted.Clear();
        MappingRecord? previous = null;
        ImmutableArray<RegisteredRloc> previousRlocs = default;
        bool previousStored = false;
        for (int i = 0; i < _register.Records.Count; i++)
        {
            var rec = _register.Records[i];
            if (!EidAddress.TryRead(rec.EidPrefix, out uint iid, out var family, out var eid)
                || !Covers(site, iid, family, EidPrefix.Mask(eid, family, rec.EidMaskLength), rec.EidMaskLength))
            {
                _counters.Add(MsCounter.RegisterForeignPrefix);
                _log.Warning("foreign", $"{source}: site '{site.Name}' may not register {rec.EidPrefix}/{rec.EidMaskLength}; the whole Map-Register is refused");
                return;
            }
            var eidKey = EidKey.Masked(iid, family, eid, rec.EidMaskLength);
            if (_store.IsStale(eidKey, xtrId, rec.MapVersion, now, nowMs))
            {
                // Reordered on the wire, or a retransmission that a newer message already overtook (RFC 9302 §3).
                _counters.Add(MsCounter.RegisterStaleVersion);
                _log.Warning("stale", $"{source}: {rec.EidPrefix}/{rec.EidMaskLength} with map-version {rec.MapVersion} is older than the one registered; ignored");
                continue;
            }
            if (rec.TtlMinutes == 0)
            {
                // Record TTL 0: this xTR withdraws the prefix (an agent detached); its locators do not matter.
                withdrawals.Add((eidKey, rec.MapVersion));
                accepted.Add(i);
                continue;
            }
            if (previous is not null && SameLocators(previous, rec))
            {
                // An ETR registers its agents' EIDs together, all behind the same locators: the records share one
                // immutable locator set (at a million registrations that is about 150 MB not spent).
                records.Add((eidKey, previousRlocs, rec, i, previousStored));
                accepted.Add(i);
                continue;
            }
            if (_store.TryGet(eidKey, out var current) && current.ByXtr.TryGetValue(xtrId, out var mine) && SameAsStored(rec, mine.Rlocs))
            {
                // A refresh of what this xTR registered, locators and their attributes unchanged: nothing to parse, and
                // the stored immutable set is shared again.
                previous = rec;
                previousRlocs = mine.Rlocs;
                previousStored = true;
                records.Add((eidKey, previousRlocs, rec, i, true));
                accepted.Add(i);
                continue;
            }
            var rlocs = ImmutableArray.CreateBuilder<RegisteredRloc>(rec.Locators.Count);
            bool valid = true;
            for (int l = 0; l < rec.Locators.Count; l++)
            {
                var loc = rec.Locators[l];
                var address = ContextEncoding.ReadLocator(loc.Locator, out var context, out var error);
                if (!error.Ok || address.Kind is not (LispAddressKind.Ipv4 or LispAddressKind.Ipv6))
                {
                    valid = false;
                    _counters.Add(MsCounter.RegisterInvalidAttributes);
                    _log.Warning("attributes", $"{source}: site '{site.Name}' {rec.EidPrefix}/{rec.EidMaskLength}: locator {loc.Locator} refused ({(error.Ok ? "not an IP address" : error.Reason)}); the previous registration of this record is kept");
                    break;
                }
                rlocs.Add(new RegisteredRloc(address.Clone(), loc.Priority, loc.Weight, loc.MulticastPriority, loc.MulticastWeight, loc.Reachable, context));
            }
            if (!valid) continue;
            if (rlocs.Count == 0) { _counters.Add(MsCounter.RegisterNoRlocs); continue; }
            previous = rec;
            previousRlocs = rlocs.MoveToImmutable();
            previousStored = false;
            records.Add((eidKey, previousRlocs, rec, i, false));
            accepted.Add(i);
        }

        foreach (var (eidKey, rlocs, rec, index, fromStore) in records)
        {
            long lifetime = _register.UseTtlForTimeout && rec.TtlMinutes != MappingRecord.TtlInfinite ? rec.TtlMinutes * 60_000L : (long)_policy.Config.RegistrationTimeout.TotalMilliseconds;
            if (fromStore && _store.TryRefresh(eidKey, site, xtrId, _register.SiteId, source, rlocs, _register.MergeRequest, rec.TtlMinutes, rec.MapVersion, _register.ProxyMapReply, now, nowMs + lifetime))
                continue;
            var xtr = new XtrRegistration(xtrId, _register.SiteId, source, rlocs, _register.MergeRequest, rec.TtlMinutes, rec.MapVersion, now, now, nowMs + lifetime,
                ProxyReply: _register.ProxyMapReply);
            var (old, stored) = _store.Register(eidKey, site, xtr);
            if (stored is null)
            {
                // A reload removed the site, or the prefix from it, while this message was being checked: the record
                // is refused after all, and the Map-Notify must not confirm it (RFC 9301 §5.7).
                accepted.Remove(index);
                _counters.Add(MsCounter.RegisterNoSiteForEid);
                continue;
            }
            if (old is not null && old.ByXtr.TryGetValue(xtrId, out var prev) && SameAddresses(prev.Rlocs, rlocs) && !SameContexts(prev.Rlocs, rlocs))
                _counters.Add(MsCounter.AttributeUpdatesInPlace);
        }
        foreach (var (eidKey, version) in withdrawals)
            if (_store.Withdraw(eidKey, xtrId, version, nowMs)) _counters.Add(MsCounter.RegistrationsWithdrawn);
        _counters.Add(MsCounter.MapRegistersAccepted);

        if (_register.WantMapNotify && accepted.Count > 0)
        {
            // The Map-Notify carries the records that were registered (RFC 9301 §5.7), never one that was refused, and
            // is authenticated with the key ID and algorithm the ETR used (the key it names matched the site's).
            var notify = _notify;
            (notify.Nonce, notify.KeyId, notify.AlgorithmId) = (_register.Nonce, _register.KeyId, key.Algorithm);
            (notify.XtrIdPresent, notify.XtrId, notify.SiteId) = (_register.XtrIdPresent, _register.XtrId, _register.SiteId);
            notify.Records.Clear();
            foreach (int i in accepted) notify.Records.Add(_register.Records[i]);
            int n = notify.TryEncodeSigned(_out, key);
            if (n > 0)
            {
                // Counted before sending: whoever sees the datagram sees the count.
                _counters.Add(MsCounter.MapNotifiesSent);
                send(_out.AsSpan(0, n), source);
            }
        }
        else if (_register.WantMapNotify) _counters.Add(MsCounter.MapNotifiesWithheld);
    }

    private SiteKey? Authenticate(ReadOnlySpan<byte> message, SiteConfig site) => Authenticate(message, site, _register.KeyId);

    private static SiteKey? Authenticate(ReadOnlySpan<byte> message, SiteConfig site, byte keyId)
    {
        // The Key ID names the key; try it first, then the others (some implementations send 0 for every key).
        var keys = site.Keys;
        for (int k = 0; k < keys.Count; k++)
            if (keys[k].KeyId == keyId && Verifies(message, keys[k])) return keys[k];
        for (int k = 0; k < keys.Count; k++)
            if (keys[k].KeyId != keyId && Verifies(message, keys[k])) return keys[k];
        return null;
    }

    // ---- Info-Request (draft-ietf-lisp-nat-traversal §5) ----

    /// <summary>The address and port this core's socket is bound to: the MS RLOC and port of its Info-Replies.</summary>
    public IPEndPoint? LocalEndpoint { get; set; }

    private readonly InfoMessage _info = new();

    /// <summary>
    /// An Info-Request from an xTR finding out whether it is behind NAT: authenticated with the key of the site that
    /// owns its EID prefix (as its Map-Register would be), and answered with the source address and port the request
    /// came from (the xTR's translated ones, if a NAT is on the way), this Map-Server's own address and port, and the
    /// configured RTRs, signed with the same key. Unauthenticated requests get nothing: they would make the
    /// Map-Server an address-reflection service for anyone.
    /// </summary>
    private void HandleInfoRequest(ReadOnlySpan<byte> message, IPEndPoint source, Sender send)
    {
        var decoded = _info.TryDecode(message);
        if (!decoded.Ok || _info.IsReply)
        {
            _counters.Add(decoded.Ok ? MsCounter.UnsupportedMessageType : MsCounter.MalformedMessage);
            _log.Warning("malformed", $"{source}: {(decoded.Ok ? "an Info-Reply is not for a Map-Server" : "malformed Info-Request: " + decoded.Describe())}; dropped");
            return;
        }
        _counters.Add(MsCounter.InfoRequestsReceived);
        if (!EidAddress.TryRead(_info.EidPrefix, out uint iid, out var family, out var eid) || SiteFor(iid, family, eid) is not SiteConfig site)
        {
            _counters.Add(MsCounter.InfoRequestNoSiteForEid);
            _log.Warning("no-site", $"{source}: Info-Request for {_info.EidPrefix}: no site owns that EID; not answered");
            return;
        }
        if (Authenticate(message, site, _info.KeyId) is not SiteKey key)
        {
            _counters.Add(MsCounter.InfoRequestAuthenticationFailed);
            _log.Warning("auth", $"{source}: Info-Request for site '{site.Name}' failed authentication (key-id {_info.KeyId}, algorithm {_info.AlgorithmId}); not answered");
            return;
        }
        var from = source.Address.IsIPv4MappedToIPv6 ? source.Address.MapToIPv4() : source.Address;
        var local = LocalEndpoint;
        var reply = new InfoMessage
        {
            IsReply = true, Nonce = _info.Nonce, TtlMinutes = _policy.Config.InfoReplyTtlMinutes, EidMaskLength = _info.EidMaskLength, EidPrefix = _info.EidPrefix,
            MsPort = (ushort)(local?.Port ?? LispPorts.Control), EtrPort = (ushort)source.Port, GlobalEtrRloc = LispAddress.FromIp(from),
            MsRloc = local is null || local.Address.Equals(IPAddress.Any) || local.Address.Equals(IPAddress.IPv6Any) ? LispAddress.None() : LispAddress.FromIp(local.Address),
        };
        foreach (var rtr in _policy.Config.Rtrs) reply.Rtrs.Add(LispAddress.FromIp(rtr));
        _counters.Add(MsCounter.InfoRepliesSent);
        send(reply.ToSignedArray(key), source);
    }

    private static bool Verifies(ReadOnlySpan<byte> message, SiteKey key) =>
        MessageAuthentication.Verify(message, key, out var alg) == AuthenticationFailure.None && alg == key.Algorithm;

    /// <summary>Whether one of the site's prefixes covers the registered one.</summary>
    private static bool Covers(SiteConfig site, uint iid, EidFamily family, UInt128 prefix, int length)
    {
        var prefixes = site.Prefixes;
        for (int p = 0; p < prefixes.Count; p++)
            if (prefixes[p].Covers(iid, family, prefix, length)) return true;
        return false;
    }

    /// <summary>Whether two records of one Map-Register carry the same locators, field by field and in order.</summary>
    private static bool SameLocators(MappingRecord a, MappingRecord b)
    {
        if (a.Locators.Count != b.Locators.Count) return false;
        for (int i = 0; i < a.Locators.Count; i++)
            if (!a.Locators[i].ContentEquals(b.Locators[i])) return false;
        return true;
    }

    /// <summary>
    /// Whether the record's locators read (<see cref="ContextEncoding.ReadLocator"/>) as the stored set would: the
    /// same plain locators, or for a locator with agent context an AFI-List whose address is the stored one and whose
    /// JSON the stored context <see cref="AgentContext.Matches"/>. Nothing is parsed or allocated; false sends the
    /// record through the full parse.
    /// </summary>
    private static bool SameAsStored(MappingRecord record, ImmutableArray<RegisteredRloc> stored)
    {
        if (record.Locators.Count != stored.Length) return false;
        for (int i = 0; i < stored.Length; i++)
        {
            var wire = record.Locators[i];
            var r = stored[i];
            if (wire.Priority != r.Priority || wire.Weight != r.Weight || wire.MulticastPriority != r.MulticastPriority
                || wire.MulticastWeight != r.MulticastWeight || wire.Reachable != r.Reachable) return false;
            if (r.Context is null)
            {
                if (!wire.Locator.ContentEquals(r.Address)) return false;
            }
            else if (wire.Locator.Kind != LispAddressKind.AfiList || wire.Locator.JsonItem is not { JsonBinary: false } json
                || !wire.Locator.PlainAddress.ContentEquals(r.Address) || !r.Context.Matches(json.Data)) return false;
        }
        return true;
    }

    // Loops, not Zip/All: these run for every registration, refreshes included, and LINQ over ImmutableArray boxes it
    // and allocates enumerators and closures (about 450 bytes a Map-Register, measured).
    private static bool SameAddresses(ImmutableArray<RegisteredRloc> a, ImmutableArray<RegisteredRloc> b)
    {
        if (a == b) return true;
        if (a.Length != b.Length) return false;
        for (int i = 0; i < a.Length; i++)
            if (!a[i].Address.ContentEquals(b[i].Address)) return false;
        return true;
    }

    private static bool SameContexts(ImmutableArray<RegisteredRloc> a, ImmutableArray<RegisteredRloc> b)
    {
        if (a == b) return true;
        int n = Math.Min(a.Length, b.Length);
        for (int i = 0; i < n; i++)
            if (!Equals(a[i].Context, b[i].Context)) return false;
        return true;
    }

    // ---- Map-Request (RFC 9301 §5.2-5.5, §8.3; CONTEXT-EXTENSION.md §3) ----

    private void HandleEcm(ReadOnlySpan<byte> message, IPEndPoint source, Sender send)
    {
        var r = _ecm.TryDecode(message);
        if (!r.Ok)
        {
            _counters.Add(MsCounter.MalformedMessage);
            _log.Warning("malformed", $"{source}: malformed ECM: {r.Describe()}");
            return;
        }
        if (LispMessage.PeekType(_ecm.InnerMessage) != LispMessageType.MapRequest)
        {
            _counters.Add(MsCounter.UnsupportedMessageType);
            return;
        }
        if (!_policy.Requests.TryAcquire(Key(source.Address), Stopwatch.GetTimestamp())) { _counters.Add(MsCounter.RateLimitedMapRequest); return; }
        if (_ecm.DdtOriginated) HandleDdtRequest(_ecm.InnerMessage, source, _ecm.InnerSourcePort, send, message);
        else HandleRequest(_ecm.InnerMessage, source, _ecm.InnerSourcePort, send, message);
    }

    // ---- LISP-DDT (RFC 8111 §7): a DDT Map-Resolver's Map-Request, answered with a Map-Referral ----

    /// <summary>
    /// A Map-Request a DDT Map-Resolver sent (ECM with the D bit): the Map-Referral goes back to it, one record per
    /// EID asked. As a DDT Map-Server (the EID is in one of our sites): MS-ACK when it is registered, and the request
    /// is answered as any other (forwarded to the ETR, or proxy-replied to the ITR); MS-NOT-REGISTERED otherwise. Both
    /// list the configured Map-Server peers, with the I bit when there are none. As a DDT node: NODE-REFERRAL or
    /// MS-REFERRAL to the delegation's targets, DELEGATION-HOLE for authoritative space that is not delegated, and
    /// NOT-AUTHORITATIVE for the rest. TTLs: a day for referrals and MS-ACK, the unregistered TTL (1 minute) for
    /// MS-NOT-REGISTERED, the negative TTL (15) for holes, 0 for NOT-AUTHORITATIVE, which must not be cached.
    /// </summary>
    private void HandleDdtRequest(ReadOnlySpan<byte> message, IPEndPoint source, int replyPort, Sender send, ReadOnlySpan<byte> ecm)
    {
        if (!TryDecodeRequest(message, source, "DDT Map-Request", MsCounter.DdtMapRequestsReceived)) return;
        var ddt = _policy.Config.Ddt;
        var referral = _referral;
        referral.Nonce = _request.Nonce;
        referral.Records.Clear();
        bool registered = false;
        for (int i = 0; i < _request.Records.Count; i++)
        {
            var asked = _request.Records[i];
            if (!EidAddress.TryRead(asked.EidPrefix, out uint iid, out var family, out var eid)) continue;
            bool lcaf = asked.EidPrefix.Kind != LispAddressKind.Ipv4 && asked.EidPrefix.Kind != LispAddressKind.Ipv6;
            var record = referral.Records.AddSlot();
            record.Referrals.Clear();
            record.Authoritative = true;
            record.Incomplete = false;
            record.MapVersion = 0;
            int length;
            if (SiteFor(iid, family, eid) is not null)
            {
                if (_store.TryLookup(iid, family, eid, out var reg))
                {
                    registered = true;
                    (eid, length) = (reg.Key.Prefix, reg.Key.Length);
                    record.Action = MapReferralAction.MsAck;
                    record.TtlMinutes = 1440;
                    _counters.Add(MsCounter.ReferralsMapServerAck);
                }
                else
                {
                    length = NegativePrefixLength(iid, family, eid, out _);
                    record.Action = MapReferralAction.MsNotRegistered;
                    record.TtlMinutes = _policy.Config.UnregisteredTtlMinutes;
                    _counters.Add(MsCounter.ReferralsMapServerNotRegistered);
                }
                foreach (var peer in ddt.MapServerPeers) record.Referrals.Add(Target(peer));
                record.Incomplete = ddt.MapServerPeers.Count == 0;
            }
            else if (ddt.DelegationFor(iid, family, eid) is { } delegation)
            {
                length = delegation.Prefix.Length;
                record.Action = delegation.Kind == DdtDelegationKind.Node ? MapReferralAction.NodeReferral : MapReferralAction.MsReferral;
                record.TtlMinutes = 1440;
                foreach (var target in delegation.Targets) record.Referrals.Add(Target(target));
                _counters.Add(MsCounter.ReferralsDelegation);
            }
            else if (ddt.HoleLength(iid, family, eid) is var hole and >= 0)
            {
                // Our own sites and registrations are not a hole: the answer stops short of them as a negative
                // Map-Reply's does, and of the delegations.
                length = Math.Max(hole, NegativePrefixLength(iid, family, eid, out _));
                record.Action = MapReferralAction.DelegationHole;
                record.TtlMinutes = _policy.Config.NegativeTtlMinutes;
                _counters.Add(MsCounter.ReferralsDelegationHole);
            }
            else
            {
                length = EidPrefix.MaxLength(family);
                record.Action = MapReferralAction.NotAuthoritative;
                record.Authoritative = false;
                record.TtlMinutes = 0;
                _counters.Add(MsCounter.ReferralsNotAuthoritative);
            }
            EidAddress.Assign(record.EidPrefix, iid, family, EidPrefix.Mask(eid, family, length), lcaf || iid != 0);
            record.EidMaskLength = (byte)length;
        }
        if (referral.Records.Count == 0) return;
        int n = referral.TryEncode(_out);
        if (n < 0) return;
        _counters.Add(MsCounter.MapReferralsSent);
        // To the Map-Resolver's socket the request came from (the inner source port is the ITR's).
        send(_out.AsSpan(0, n), source);
        // MS-ACK: the request itself is answered as any other, by the ETR or by us, and the answer goes to the ITR.
        if (registered) HandleRequest(message, source, replyPort, send, ecm);
    }

    /// <summary>Decodes a Map-Request into <c>_request</c>, counting it; false (counted, logged) when malformed or without an EID record.</summary>
    private bool TryDecodeRequest(ReadOnlySpan<byte> message, IPEndPoint source, string what, MsCounter received)
    {
        var r = _request.TryDecode(message);
        if (!r.Ok)
        {
            _counters.Add(MsCounter.MalformedMessage);
            _log.Warning("malformed", $"{source}: malformed {what}: {r.Describe()}");
            return false;
        }
        _counters.Add(received);
        if (_request.Records.Count == 0) { _counters.Add(MsCounter.MapRequestNoEidRecord); return false; }
        return true;
    }

    private static LocatorRecord Target(DdtTarget t) => new(LispAddress.FromIp(t.Address), t.Priority, t.Weight);

    /// <param name="ecm">The whole ECM the request came in (empty for a bare Map-Request), for forwarding to an ETR.</param>
    private void HandleRequest(ReadOnlySpan<byte> message, IPEndPoint source, int replyPort, Sender send, ReadOnlySpan<byte> ecm)
    {
        if (!TryDecodeRequest(message, source, "Map-Request", MsCounter.MapRequestsReceived)) return;

        var constraints = ContextEncoding.ReadConstraints(_request.SourceEid, out var cerr);
        if (!cerr.Ok)
        {
            _counters.Add(MsCounter.ConstraintsMalformed);
            _log.Warning("constraints", $"{source}: malformed agent-constraints ({cerr.Reason}); answered as if none were sent");
        }
        else if (constraints is not null)
        {
            _counters.Add(MsCounter.ConstraintsReceived);
            if (constraints.UnknownKeyCount > 0) _counters.Add(MsCounter.ConstraintKeysUnknown, constraints.UnknownKeyCount);
        }

        var reply = _reply;
        reply.Nonce = _request.Nonce;
        reply.Records.Clear();
        for (int i = 0; i < _request.Records.Count; i++)
        {
            var asked = _request.Records[i];
            if (!EidAddress.TryRead(asked.EidPrefix, out uint iid, out var family, out var eid)) continue;
            bool lcaf = asked.EidPrefix.Kind != LispAddressKind.Ipv4 && asked.EidPrefix.Kind != LispAddressKind.Ipv6;
            if (_store.TryLookup(iid, family, eid, out var reg))
            {
                if (asked.Subscribe) Subscribe(reg, constraints, lcaf, ReplyEndpoint(source.Address, replyPort));
                // Proxy-reply when the site is configured so or its ETR asked with the P bit (RFC 9301 §5.6, §8.3).
                if (!reg.Site.ProxyReply && !reg.ProxyReplyRequested && !ecm.IsEmpty && Forward(reg, ecm, send)) continue;
                if (_answers.Fill(reply.Records.AddSlot(), reg.AnswerFor(lcaf), reg.EffectiveRlocs().AsSpan(), constraints) == AnswerOutcome.PolicyDenied)
                    _counters.Add(MsCounter.PolicyDeniedRepliesSent);
            }
            else if (Resolver is not null && !ecm.IsEmpty && _policy.Config.Ddt.Roots.Count > 0 && SiteFor(iid, family, eid) is null)
            {
                // Not ours: resolved through the DDT tree; the answer reaches the ITR from the Map-Server or from us.
                Resolver.Start(ecm, _request.Nonce, iid, family, eid, lcaf, ReplyEndpoint(source.Address, replyPort), NowMs, send, DdtRequestSender);
            }
            else
            {
                int length = NegativePrefixLength(iid, family, eid, out bool inSite);
                var record = reply.Records.AddSlot();
                EidAddress.Assign(record.EidPrefix, iid, family, EidPrefix.Mask(eid, family, length), lcaf || iid != 0);
                record.EidMaskLength = (byte)length;
                record.TtlMinutes = inSite ? _policy.Config.UnregisteredTtlMinutes : _policy.Config.NegativeTtlMinutes;
                record.Action = MapReplyAction.NativelyForward;
                record.Authoritative = true;
                record.MapVersion = 0;
                record.Locators.Clear();
                _counters.Add(MsCounter.NegativeRepliesSent);
            }
        }
        if (reply.Records.Count == 0) return;
        int n = reply.TryEncode(_out);
        if (n < 0) return;
        _counters.Add(MsCounter.MapRepliesSent);
        send(_out.AsSpan(0, n), ReplyEndpoint(source.Address, replyPort));
    }

    /// <summary>
    /// The prefix length of a negative answer (RFC 9301 §8.3: the least-specific prefix that covers the EID and no
    /// EID-Prefix known to exist). Known are the registered prefixes and the configured site prefixes, registered or
    /// not: a site whose ETR has not registered yet must not be hidden for the negative TTL behind a short prefix
    /// that an ITR caches. Inside a site the answer never reaches beyond the site's prefix (and carries the short
    /// unregistered TTL); outside every site it stops one bit short of the nearest site prefix.
    /// </summary>
    /// <param name="inSite">Whether a configured site prefix holds the EID (the answer then gets the unregistered TTL).</param>
    private int NegativePrefixLength(uint iid, EidFamily family, UInt128 eid, out bool inSite)
    {
        int bits = EidPrefix.MaxLength(family);
        int length = _store.NegativePrefixLength(iid, family, eid);
        inSite = false;
        foreach (var site in _policy.Config.Sites)
            foreach (var p in site.Prefixes)
            {
                if (p.InstanceId != iid || p.Family != family) continue;
                if (p.Contains(iid, family, eid)) { length = Math.Max(length, p.Length); inSite = true; }
                else length = Math.Max(length, RegistrationStore.CommonPrefixLength(eid, p.Prefix, bits) + 1);
            }
        return Math.Min(bits, length);
    }

    /// <summary>
    /// A subscription (RFC 9437 §4): the request must carry its xTR-ID (I bit), and that xTR must have registered
    /// with some site, whose key then authenticates the publications.
    /// </summary>
    private void Subscribe(EidRegistration reg, AgentConstraints? constraints, bool lcaf, IPEndPoint subscriber)
    {
        if (Publisher is null) return;
        if (!_request.XtrIdPresent) { _counters.Add(MsCounter.SubscriptionsRefused); return; }
        UInt128 xtrId = _request.XtrId;
        if (!_store.TryGetSiteOf(xtrId, out var site))
        {
            _counters.Add(MsCounter.SubscriptionsRefused);
            _log.Warning("subscribe", $"{subscriber}: subscription for {reg.Key.InstanceId}/{EidPrefix.Format(reg.Key.Family, reg.Key.Prefix)} refused: xTR-ID {xtrId:x} has registered with no site, so nothing could authenticate the publications");
            return;
        }
        Publisher.Subscribe(reg, subscriber, xtrId, site, constraints, lcaf, _request.Nonce);
    }

    /// <summary>
    /// The Map-Reply goes to the requester's first ITR-RLOC of the family we can reach (RFC 9301 §5.4): of the
    /// source's family, or IPv4 for an IPv4-mapped source; null when there is none (the source itself then).
    /// </summary>
    private LispAddress? ReplyRloc(IPAddress fallback)
    {
        bool v4 = fallback.AddressFamily == AddressFamily.InterNetwork || fallback.IsIPv4MappedToIPv6;
        for (int i = 0; i < _request.ItrRlocs.Count; i++)
        {
            var a = _request.ItrRlocs[i].PlainAddress;
            if (a.Kind == LispAddressKind.Ipv4 ? v4 : a.Kind == LispAddressKind.Ipv6 && fallback.AddressFamily == AddressFamily.InterNetworkV6) return a;
        }
        return null;
    }

    // The last reply destination. An ITR asks from one RLOC and port, so most answers go where the previous one went:
    // reusing it saves the address and endpoint objects an answer would otherwise allocate.
    private IPEndPoint? _replyTo;
    private UInt128 _replyToAddress;
    private LispAddressKind _replyToKind;

    /// <summary>Where the answer to the current request goes: the ITR-RLOC <see cref="ReplyRloc"/> picks, at <paramref name="port"/>.</summary>
    private IPEndPoint ReplyEndpoint(IPAddress fallback, int port)
    {
        var a = ReplyRloc(fallback);
        if (a is null) return new IPEndPoint(fallback, port);
        UInt128 value = a.Kind == LispAddressKind.Ipv4 ? a.Ipv4Value : a.Ipv6Value;
        if (_replyTo is { } last && last.Port == port && _replyToKind == a.Kind && _replyToAddress == value) return last;
        _replyToKind = a.Kind;
        _replyToAddress = value;
        return _replyTo = new IPEndPoint(a.ToIPAddress(), port);
    }

    private bool Forward(EidRegistration reg, ReadOnlySpan<byte> ecm, Sender send)
    {
        var etr = reg.EffectiveRlocs().FirstOrDefault(x => x.Reachable && x.Priority != 255);
        if (etr is null) return false;
        byte[] copy = ecm.ToArray();
        // E bit: forwarded to an ETR (RFC 9301 §5.8); a DDT Map-Resolver's D bit is not the ETR's business.
        copy[0] = (byte)((copy[0] | 0x02) & ~0x04);
        _counters.Add(MsCounter.MapRequestsForwarded);
        send(copy, new IPEndPoint(etr.Address.ToIPAddress(), LispPorts.Control));
        return true;
    }
}
