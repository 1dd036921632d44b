using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using FastXtr.Lisp.Answers;
using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;
using FastXtr.NativeInterop;
using Microsoft.Extensions.Logging;

namespace FastXtr.MapServer;

/// <summary>
/// An ITR following one registered EID prefix (RFC 9437 §4), with the constraints it resolved under. <paramref name="Site"/>
/// is the subscriber's own site, whose first key (as it is configured now) authenticates the publications.
/// </summary>
public sealed record Subscription(EidKey Key, IPEndPoint Subscriber, UInt128 XtrId, SiteBinding Site, AgentConstraints? Constraints, bool Lcaf, PublicationNonces Nonces)
{
    public SiteKey SiteKey => Site.Current.Keys[0];
}

/// <summary>
/// The nonces of one subscription's publications (RFC 9437): the count starts at the subscribing Map-Request's nonce
/// (§4), a renewal overwrites it with the renewing request's (§4: state "regarding ITR-RLOCs and/or nonce for the
/// same xTR-ID MUST be overwritten"), and each publication takes the next (§5: "increments the nonce by one every
/// time it sends a Map-Notify as publication"). The ITR keeps the last it took per record and drops what is not
/// above it. Shared by every snapshot of the subscription; the sender thread counts, receive workers renew.
/// </summary>
public sealed class PublicationNonces(ulong start)
{
    private long _last = (long)start;
    private int _renewals;

    /// <summary>The next publication's nonce.</summary>
    public ulong Next() => (ulong)Interlocked.Increment(ref _last);

    /// <summary>The subscription was renewed by a Map-Request with nonce <paramref name="start"/>.</summary>
    public void Renew(ulong start)
    {
        Interlocked.Exchange(ref _last, (long)start);
        Interlocked.Increment(ref _renewals);
    }

    /// <summary>How many times the subscription was renewed: a publication made before the last renewal is superseded.</summary>
    public int Renewals => Volatile.Read(ref _renewals);
}

/// <summary>
/// Publish/subscribe (RFC 9437) and move notifications. When a registration changes (RLOCs moved, attributes or
/// state changed, or it expired), every subscriber of that prefix gets an authenticated Map-Notify with the new
/// record, filtered and prioritised for its own constraints (CONTEXT-EXTENSION.md §4), and every ETR that was in the
/// previous RLOC set but is not in the new one gets the new record too, so that it can solicit (SMR) the ITRs still
/// sending to it. Every subscription and renewal is acknowledged with a Map-Notify under the subscribing request's
/// nonce carrying the record as the subscriber may use it (RFC 9437's subscribe procedure; the Map-Reply still
/// answers the request, as RFC 9301 has it). Unacknowledged notifications are sent again every second, three times,
/// after which a subscription is dropped.
/// <para>
/// Changes are queued, and one sender thread of its own builds, signs, sends and retransmits: a receive worker only
/// enqueues. A Map-Register's changes join the queue only after its Map-Notify has gone (the receive loop holds them
/// with <see cref="DeferOnThisThread"/> until it has flushed its replies), so the registering xTR hears its
/// confirmation before anyone hears of the change.
/// </para>
/// <para>
/// A publication allocates nothing: each goes out from a <see cref="Pending"/> record with a buffer of its own, taken
/// from a free list and returned to it when acknowledged or given up. With a million registrations in the heap every
/// collection pauses the Map-Server for milliseconds, and 250 bytes per publication (measured: the copy of the
/// template, the record, the concurrent dictionary's node) made one every few hundred milliseconds at 50,000
/// publications/s.
/// </para>
/// </summary>
public sealed class Publisher : IDisposable
{
    public const int MaxAttempts = 4;
    /// <summary>The time slice the sender thread asks the scheduler for (<see cref="Cpu.TryRequestSlice"/>).</summary>
    private static readonly TimeSpan PublisherSlice = TimeSpan.FromMicroseconds(100);
    public static readonly TimeSpan RetransmitInterval = TimeSpan.FromSeconds(1);

    /// <summary>Sends (or queues) one datagram; the span is only valid during the call.</summary>
    public delegate void SendDatagram(ReadOnlySpan<byte> datagram, IPEndPoint to);

    /// <summary>
    /// A notification sent and not yet acknowledged. Reused: only the sender thread takes one from the free list and
    /// writes its buffer, so a record a worker returns while the sender is still retransmitting it keeps its bytes
    /// until the sender's next change.
    /// </summary>
    private sealed class Pending
    {
        public byte[] Buffer = [];
        public int Length;
        public IPEndPoint To = null!;
        public Subscription? Subscription;
        /// <summary>The key the notification was signed with: the acknowledgement must carry the same.</summary>
        public SiteKey Key = null!;
        public int Attempts;
        public long NextMs;
        /// <summary>A publication: its subscription's renewal count when it was sent (see <see cref="PublicationNonces"/>).</summary>
        public int Renewal;

        public Span<byte> Datagram => Buffer.AsSpan(0, Length);

        /// <summary>Room for <paramref name="length"/> bytes (the buffer grows only for a longer notification than any before).</summary>
        public Span<byte> Prepare(int length)
        {
            if (Buffer.Length < length) Buffer = new byte[Math.Max(length, 256)];
            Length = length;
            return Buffer.AsSpan(0, length);
        }
    }

    private readonly ConcurrentDictionary<EidKey, ImmutableDictionary<(IPEndPoint, UInt128), Subscription>> _subscriptions = new();
    // Notifications awaiting their acknowledgement by nonce and record, and the records free for reuse: both under
    // _pendingLock (a Dictionary reuses its entries; a ConcurrentDictionary allocates a node per insertion). The nonce
    // alone does not tell them apart: a Map-Request subscribing to several records starts each one's count of
    // publication nonces at its own nonce (RFC 9437 §4, §5), so its acknowledgements share that nonce, and so do the
    // n-th publications of each of its records.
    private readonly Dictionary<(ulong Nonce, EidKey Eid), Pending> _pending = [];
    private readonly Stack<Pending> _free = new();
    private readonly Lock _pendingLock = new();
    private readonly List<Pending> _due = []; // the sender thread's: one retransmission round
    private readonly List<Subscription> _given = []; // the sender thread's: subscriptions whose notification went unacknowledged
    private readonly AnswerBuilder _answers = new(); // the sender thread's
    // The sender thread's encode-only notification (its record's locators point at the registrations' own addresses)
    // and the buffer it is written into.
    private readonly MapNotify _encoder = new();
    private readonly byte[] _scratch = new byte[LispMessage.MaxMessageLength];
    private readonly MapServerCounters _counters;
    private readonly SendDatagram _send;
    private readonly Action _flush;
    // Map-Notify nonces only match acknowledgements, which are authenticated: unpredictable enough from a generator
    // the runtime seeds from the system's (a call to the system generator per publication cost more than the rest).
    private readonly Random _nonces = new();
    // One change's publications, unsigned, per (constraints, record form, signing key): every subscriber alike gets
    // the same bytes but for its nonce, its xTR-ID and the signature, so the record is filled and encoded once.
    private readonly Dictionary<(AgentConstraints?, bool, SiteKey), byte[]> _templates = [];
    private readonly ILogger _log;
    // A change with the subscribers it had when it happened (one who subscribes later is not told of it: the
    // Map-Reply that set the subscription up already carried the newer state), and when the message that made it
    // arrived (Stopwatch ticks, for the publication delay). Or a subscription to acknowledge (Acknowledging set): New
    // is the registration it was answered from, Nonce the subscribing request's, Renewal the subscription's renewal
    // count after it.
    private readonly record struct Change(EidRegistration? Old, EidRegistration? New, ImmutableDictionary<(IPEndPoint, UInt128), Subscription>? Subscribers,
        long Arrived = 0, Subscription? Acknowledging = null, ulong Nonce = 0, int Renewal = 0);

    private readonly ConcurrentQueue<Change> _changes = new();
    // Released once per queued change; the sender waits on it (a direct wake-up, no thread-pool hop).
    private readonly SemaphoreSlim _queued = new(0);
    private readonly Thread _sender;
    private volatile bool _stopping;

    // Changes made by this thread inside a deferral, queued when it closes. The list is kept and cleared, not
    // replaced: a receive loop opens a deferral around every batch, Map-Requests included, and must not allocate.
    [ThreadStatic] private static List<Change>? t_held;
    [ThreadStatic] private static bool t_deferring;
    [ThreadStatic] private static long t_arrived;

    /// <summary>
    /// Called on the sender thread with each published change's delay in seconds: from the arrival of the message
    /// that made the change (the batch it came in, see <see cref="DeferOnThisThread"/>) to the send of its last
    /// publication. Changes no subscriber follows are not counted.
    /// </summary>
    public Action<double>? PublicationDelay { get; set; }

    /// <param name="send">Sends (or queues) one datagram; called on the sender thread only.</param>
    /// <param name="flush">Sends what <paramref name="send"/> queued: after each change's publications and each retransmission round.</param>
    public Publisher(MapServerCounters counters, SendDatagram send, ILogger log, Action? flush = null)
    {
        _counters = counters;
        _send = send;
        _flush = flush ?? (() => { });
        _log = log;
        _sender = new Thread(Run) { IsBackground = true, Name = "mapserver-publisher" };
        _sender.Start();
    }

    /// <summary>
    /// Holds the changes this thread makes until the returned scope is disposed, then queues them in order: a receive
    /// loop opens one around a batch of messages and closes it after sending the batch's replies.
    /// </summary>
    /// <param name="arrived">When the batch arrived (<see cref="Stopwatch.GetTimestamp"/>): the start of its changes'
    /// publication delay. 0: when each change is made.</param>
    public DeferredChanges DeferOnThisThread(long arrived = 0)
    {
        t_held ??= [];
        t_deferring = true;
        t_arrived = arrived;
        return new DeferredChanges(this);
    }

    public readonly struct DeferredChanges(Publisher publisher) : IDisposable
    {
        public void Dispose()
        {
            t_deferring = false;
            var held = t_held;
            if (held is null || held.Count == 0) return;
            foreach (var change in held) publisher.Enqueue(change);
            held.Clear();
        }
    }

    private void Run()
    {
        // An update's publications wait for this thread, which shares its CPU with the receive workers: a short slice
        // lets it run as soon as it is woken instead of after a worker's whole slice.
        if (!Cpu.TryRequestSlice(PublisherSlice, out int errno)) MapServerLog.PublisherSliceRefused(_log, errno);
        long nextRetransmitMs = MapServerCore.NowMs + 250;
        while (!_stopping)
        {
            try
            {
                _queued.Wait((int)Math.Max(0, nextRetransmitMs - MapServerCore.NowMs));
                while (_changes.TryDequeue(out var change))
                {
                    Publish(change);
                    _flush();
                    if (change.Subscribers is { Count: > 0 } && PublicationDelay is { } delay)
                        delay(Stopwatch.GetElapsedTime(change.Arrived).TotalSeconds);
                }
                long now = MapServerCore.NowMs;
                if (now >= nextRetransmitMs)
                {
                    Retransmit(now);
                    _flush();
                    nextRetransmitMs = now + 250;
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException) { MapServerLog.PublisherFailed(_log, e.Message); }
        }
    }

    /// <summary>Whether the sender thread had stopped when <see cref="Dispose"/> returned.</summary>
    public bool SenderStopped { get; private set; }

    public int SubscriptionCount => _subscriptions.Values.Sum(s => s.Count);

    /// <summary>Notifications sent and not yet acknowledged (nor given up).</summary>
    public int PendingCount { get { lock (_pendingLock) return _pending.Count; } }

    /// <summary>
    /// Subscribes (or renews) and queues the subscription's acknowledgement: a Map-Notify with the subscribing
    /// request's nonce and <paramref name="current"/>'s record, sent after the request's Map-Reply when the receive
    /// loop defers (<see cref="DeferOnThisThread"/>).
    /// </summary>
    /// <param name="nonce">The subscribing Map-Request's: the subscription's publications count from it (RFC 9437 §4).</param>
    public void Subscribe(EidRegistration current, IPEndPoint subscriber, UInt128 xtrId, SiteBinding site, AgentConstraints? constraints, bool lcaf, ulong nonce)
    {
        var key = current.Key;
        // An ITR renews its subscription with every Map-Request for the prefix: the same one again only restarts the
        // count of publication nonces from the new request's.
        if (!_subscriptions.TryGetValue(key, out var subs) || !subs.TryGetValue((subscriber, xtrId), out var s)
            || s.Lcaf != lcaf || !ReferenceEquals(s.Site, site) || !Equals(s.Constraints, constraints))
        {
            s = new Subscription(key, subscriber, xtrId, site, constraints, lcaf, new PublicationNonces(nonce));
            _subscriptions.AddOrUpdate(key,
                _ => ImmutableDictionary<(IPEndPoint, UInt128), Subscription>.Empty.Add((subscriber, xtrId), s),
                (_, existing) => existing.SetItem((subscriber, xtrId), s));
        }
        else s.Nonces.Renew(nonce);
        _counters.Add(MsCounter.SubscriptionsAccepted);
        var ack = new Change(null, current, null, 0, s, nonce, s.Nonces.Renewals);
        if (t_deferring) t_held!.Add(ack);
        else Enqueue(ack);
    }

    /// <summary>
    /// Whether <paramref name="s"/> is still the subscription of its subscriber and xTR-ID (not replaced by one under
    /// other constraints, nor dropped); <paramref name="subs"/> is its prefix's subscriptions as read.
    /// </summary>
    private bool IsCurrent(Subscription s, out ImmutableDictionary<(IPEndPoint, UInt128), Subscription> subs) =>
        _subscriptions.TryGetValue(s.Key, out subs!) && subs.TryGetValue((s.Subscriber, s.XtrId), out var current) && ReferenceEquals(current, s);

    /// <summary>
    /// After a reload: a subscription whose subscriber's site is gone is dropped, since nothing could authenticate its
    /// publications (the others follow their site's binding to its keys as they are now). Returns how many were dropped.
    /// </summary>
    public int DropSubscriptionsOfRemovedSites()
    {
        int dropped = 0;
        foreach (var key in _subscriptions.Keys)
        {
            // Compare-and-swap: a worker may be adding a subscription to the same prefix meanwhile.
            while (_subscriptions.TryGetValue(key, out var subs))
            {
                var next = subs;
                foreach (var (id, s) in subs)
                    if (s.Site.Removed) next = next.Remove(id);
                if (ReferenceEquals(next, subs) || _subscriptions.TryUpdate(key, next, subs)) { dropped += subs.Count - next.Count; break; }
            }
        }
        if (dropped > 0) _counters.Add(MsCounter.SubscriptionsDropped, dropped);
        return dropped;
    }

    /// <summary>Called by the registration store after a change: queued for the sender (or held, see <see cref="DeferOnThisThread"/>).</summary>
    public void OnChanged(EidRegistration? old, EidRegistration? updated)
    {
        var key = (updated ?? old)!.Key;
        var change = new Change(old, updated, _subscriptions.TryGetValue(key, out var subs) ? subs : null,
            t_deferring && t_arrived != 0 ? t_arrived : Stopwatch.GetTimestamp());
        if (t_deferring) t_held!.Add(change);
        else Enqueue(change);
    }

    private void Enqueue(Change change)
    {
        _changes.Enqueue(change);
        _queued.Release();
    }

    /// <summary>The sender thread: one change's publications and move notifications, built, signed and sent.</summary>
    private void Publish(Change change)
    {
        if (change.Acknowledging is Subscription subscribed)
        {
            AcknowledgeSubscription(subscribed, change.New, change.Nonce, change.Renewal);
            return;
        }
        var (old, updated, subs, _, _, _, _) = change;
        var key = (updated ?? old)!.Key;
        var site = (updated ?? old)!.Site;
        if (subs is not null)
        {
            _templates.Clear();
            foreach (var (_, s) in subs) PublishTo(s, updated);
        }

        // A move: ETRs that lost the prefix hear about its new home (RFC 9301 §8.2; RFC 9437 §5).
        if (old is not null)
        {
            var stillThere = (updated?.EffectiveRlocs() ?? []).Select(r => r.Address.ToString()).ToHashSet();
            foreach (var x in old.ByXtr.Values)
            {
                if (x.Rlocs.Any(r => stillThere.Contains(r.Address.ToString()))) continue;
                ulong nonce = NextNonce();
                var notify = Encode(key, site.Keys[0], null, lcaf: true, updated, x.XtrId, nonce, sign: true);
                _counters.Add(MsCounter.MoveNotifiesSent);
                var p = Take(notify.Length);
                notify.CopyTo(p.Buffer);
                Track(nonce, key, p, new IPEndPoint(x.Source.Address, LispPorts.Control), null, site.Keys[0]);
            }
        }
    }

    /// <summary>
    /// One subscriber's publication: the change's template for its constraints and key (built on first use), with its
    /// nonce and xTR-ID written in and signed (RFC 9301 §5.7: nonce at offset 4, xTR-ID and Site-ID the last 24 bytes).
    /// </summary>
    private void PublishTo(Subscription s, EidRegistration? updated)
    {
        var key = s.SiteKey; // once: a reload may change it meanwhile, and the ack must carry the key the notify did
        if (!_templates.TryGetValue((s.Constraints, s.Lcaf, key), out var template))
            _templates[(s.Constraints, s.Lcaf, key)] = template = Encode(s.Key, key, s.Constraints, s.Lcaf, updated, xtrId: 0, nonce: 0, sign: false).ToArray();
        var p = Take(template.Length);
        var notify = p.Datagram;
        template.CopyTo(notify);
        p.Renewal = s.Nonces.Renewals; // before the nonce: a renewal in between makes this one superseded, not current
        ulong nonce = s.Nonces.Next();
        BinaryPrimitives.WriteUInt64BigEndian(notify[4..], nonce);
        BinaryPrimitives.WriteUInt128BigEndian(notify[^24..], s.XtrId);
        MessageAuthentication.Sign(notify, key.Algorithm, key);
        _counters.Add(MsCounter.PublicationsSent);
        Track(nonce, s.Key, p, s.Subscriber, s, key);
    }

    /// <summary>
    /// RFC 9437's subscribe procedure: a subscription is acknowledged with a Map-Notify under the subscribing
    /// request's nonce (the first of its count: publications take the next ones), carrying the record as answered for
    /// the subscriber's constraints, signed with its site's key, and retransmitted like a publication until the
    /// Map-Notify-Ack comes; unacknowledged, the subscription is dropped (as draft-boucadair-lisp-pubsub-flow-examples
    /// shows for a lost Map-Notify-Ack). Not sent when the subscription was renewed again or replaced since: that
    /// request's acknowledgement follows.
    /// </summary>
    private void AcknowledgeSubscription(Subscription s, EidRegistration? answered, ulong nonce, int renewal)
    {
        if (s.Nonces.Renewals != renewal || !IsCurrent(s, out _)) return;
        var key = s.SiteKey;
        var notify = Encode(s.Key, key, s.Constraints, s.Lcaf, answered, s.XtrId, nonce, sign: true);
        var p = Take(notify.Length);
        notify.CopyTo(p.Buffer);
        p.Renewal = renewal;
        _counters.Add(MsCounter.SubscriptionAcksSent);
        Track(nonce, s.Key, p, s.Subscriber, s, key);
    }

    /// <summary>A record for a notification of <paramref name="length"/> bytes: from the free list, or new while the list is empty.</summary>
    private Pending Take(int length)
    {
        Pending? p;
        lock (_pendingLock) _free.TryPop(out p);
        p ??= new Pending();
        p.Prepare(length);
        return p;
    }

    private ulong NextNonce() => (ulong)_nonces.NextInt64() ^ ((ulong)_nonces.Next() << 63);

    /// <summary>
    /// One Map-Notify with one record: <paramref name="updated"/>'s as answered for <paramref name="constraints"/>, or
    /// a negative one when it is gone; signed with <paramref name="siteKey"/>, or with its authentication field sized
    /// for the key and zero (a template, signed per subscriber). Written into the sender thread's scratch buffer through a
    /// reused encode-only message (as the workers answer requests), so valid until the next call: nothing is allocated.
    /// </summary>
    private ReadOnlySpan<byte> Encode(EidKey key, SiteKey siteKey, AgentConstraints? constraints, bool lcaf, EidRegistration? updated, UInt128 xtrId, ulong nonce, bool sign)
    {
        var notify = _encoder;
        (notify.Nonce, notify.KeyId, notify.AlgorithmId, notify.XtrIdPresent, notify.XtrId) = (nonce, siteKey.KeyId, siteKey.Algorithm, true, xtrId);
        notify.Records.Clear();
        var record = notify.Records.AddSlot();
        if (updated is null)
        {
            // Gone: a negative record with a short TTL, so subscribers stop sending at once.
            EidAddress.Assign(record.EidPrefix, key.InstanceId, key.Family, key.Prefix, withInstanceId: true);
            record.EidMaskLength = (byte)key.Length;
            record.TtlMinutes = 1;
            record.Action = MapReplyAction.NativelyForward;
            record.Authoritative = true;
            record.MapVersion = 0;
            record.Locators.Clear();
        }
        else _answers.Fill(record, updated.AnswerFor(lcaf), updated.EffectiveRlocs().AsSpan(), constraints);
        int n = sign ? notify.TryEncodeSigned(_scratch, siteKey) : notify.TryEncodeForSigning(_scratch);
        if (n < 0) throw new InvalidOperationException($"a notification for {key} does not fit in {_scratch.Length} bytes");
        return _scratch.AsSpan(0, n);
    }

    private void Track(ulong nonce, EidKey eid, Pending p, IPEndPoint to, Subscription? s, SiteKey key)
    {
        p.To = to;
        p.Subscription = s;
        p.Key = key;
        p.Attempts = 1;
        p.NextMs = MapServerCore.NowMs + (long)RetransmitInterval.TotalMilliseconds;
        lock (_pendingLock)
        {
            // Move notifications take random nonces, subscription acknowledgements and publications count up from
            // their subscribing request's (itself random, RFC 9301 §5.2): the same nonce and record again is the
            // same subscription's count met again (after 2^64 publications, or a renewal under a nonce just below
            // one still pending), and replaces the older one, whose record is not reused while it may still be sent.
            _pending[(nonce, eid)] = p;
        }
        _send(p.Datagram, to);
    }

    public enum AckResult { Acknowledged, UnknownNonce, AuthenticationFailed }

    /// <summary>
    /// A Map-Notify-Ack arrived, with <paramref name="nonce"/> and its first record's prefix <paramref name="eid"/>
    /// (RFC 9301 §5.7: the Map-Notify-Ack has the Map-Notify's contents): stop retransmitting that notification, but
    /// only when the ack is authenticated with the key the notification was signed with (§5.7: it is authenticated like
    /// the Map-Notify); a forged ack with a guessed nonce changes nothing.
    /// </summary>
    public AckResult Acknowledge(ulong nonce, EidKey eid, ReadOnlySpan<byte> message)
    {
        SiteKey key;
        lock (_pendingLock)
        {
            if (!_pending.TryGetValue((nonce, eid), out var p)) return AckResult.UnknownNonce;
            key = p.Key;
        }
        // Verified outside the lock (the sender and other workers go on meanwhile), then removed only if still there:
        // a duplicate ack may have come first, or the last retransmission may have been given up.
        if (MessageAuthentication.Verify(message, key) != AuthenticationFailure.None) return AckResult.AuthenticationFailed;
        lock (_pendingLock)
        {
            if (!_pending.Remove((nonce, eid), out var p)) return AckResult.UnknownNonce;
            p.Subscription = null;
            _free.Push(p);
        }
        return AckResult.Acknowledged;
    }

    private void Retransmit(long nowMs)
    {
        // The due ones under the lock, sent after it: a worker acknowledging one meanwhile returns it to the free
        // list, which only this thread takes from, so its bytes are still whole when sent (one copy too many at worst).
        _due.Clear();
        lock (_pendingLock)
        {
            foreach (var (id, p) in _pending)
            {
                if (p.NextMs > nowMs) continue;
                // A publication made before its subscription was renewed (or replaced by one under other constraints):
                // the renewal's answer carried newer state, and the ITR now takes only nonces counted from the
                // renewing request's (RFC 9437 §5). Not sent again, and its going unacknowledged says nothing about
                // the subscriber.
                bool superseded = p.Subscription is Subscription renewed && (renewed.Nonces.Renewals != p.Renewal || !IsCurrent(renewed, out _));
                if (superseded || p.Attempts >= MaxAttempts)
                {
                    _pending.Remove(id);
                    if (superseded) _counters.Add(MsCounter.PublicationsSuperseded);
                    else if (p.Subscription is Subscription s) _given.Add(s);
                    p.Subscription = null;
                    _free.Push(p);
                    continue;
                }
                p.Attempts++;
                p.NextMs = nowMs + (long)RetransmitInterval.TotalMilliseconds;
                _due.Add(p);
            }
        }
        foreach (var p in _due)
        {
            _counters.Add(MsCounter.NotifyRetransmissions);
            _send(p.Datagram, p.To);
        }
        _due.Clear();
        foreach (var s in _given)
        {
            // Compare-and-swap, not a read and a write: a worker may be adding a subscription to the same prefix, or
            // replacing this one (then the new one stays).
            while (IsCurrent(s, out var subs))
            {
                if (!_subscriptions.TryUpdate(s.Key, subs.Remove((s.Subscriber, s.XtrId)), subs)) continue;
                _counters.Add(MsCounter.SubscriptionsDropped);
                break;
            }
        }
        _given.Clear();
    }

    public void Dispose()
    {
        _stopping = true;
        _queued.Release();
        SenderStopped = _sender.Join(2000);
        // _queued is not disposed: a worker still finishing a Map-Register may release it, and a SemaphoreSlim whose
        // wait handle was never asked for holds nothing to free.
    }
}
