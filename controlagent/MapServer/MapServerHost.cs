using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using FastXtr.Common.Logging;
using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;
using Microsoft.Extensions.Logging;

namespace FastXtr.MapServer;

/// <summary>
/// Runs a Map-Server/Map-Resolver: for each listen address, <c>workers</c> UDP sockets with SO_REUSEPORT (the kernel
/// spreads sources across them), each served by its own thread and <see cref="MapServerCore"/>; a timer that expires
/// registrations; and a Unix control socket (mode 0600) that answers <c>registrations</c> and <c>counters</c> with
/// JSON for <c>fastxtr show registrations</c>.
/// </summary>
public sealed class MapServerHost : IDisposable
{
    private readonly List<Socket> _sockets = [];
    private readonly Socket _resolverSocket;
    private readonly List<Thread> _threads = [];
    private readonly List<MapServerCore> _cores = [];
    private readonly Timer _expiry;
    private readonly FastXtr.Common.Api.UnixSocketApi? _control;
    private readonly Publisher? _publisher;
    private readonly DatagramBatch? _publisherBatch; // the publisher thread's own send batch
    private readonly ILogger _log;
    private readonly RateLimitedLogger _peerLog;
    private volatile bool _stopping;
    private int _expiring;

    /// <summary>How often expiry runs (each run looks at up to <see cref="RegistrationStore.ExpiryScanPerCall"/> prefixes that are due).</summary>
    public const int ExpiryIntervalMs = 10;

    private readonly PolicyCell _policy;
    private readonly object _reloadLock = new();
    // Set on the thread applying a reload: a registration it removes is counted as removed by the reload, not as expired.
    [ThreadStatic] private static bool t_reloading;

    /// <summary>The configuration in force (replaced by <see cref="Reload"/>).</summary>
    public MapServerConfig Config => _policy.Current.Config;
    public RegistrationStore Store { get; } = new();
    public MapServerCounters Counters { get; } = new();
    public Publisher? Publisher => _publisher;
    /// <summary>The DDT Map-Resolver (idle unless the configuration names a ddt-root).</summary>
    public DdtResolver Resolver { get; }
    public IReadOnlyList<IPEndPoint> BoundEndpoints => _sockets.Select(s => (IPEndPoint)s.LocalEndPoint!).ToList();

    /// <param name="cpus">Empty, or one CPU per worker: worker w of every listen address is pinned to cpus[w].</param>
    public MapServerHost(MapServerConfig config, int workers, ILogger log, bool controlSocket = true, IReadOnlyList<int>? cpus = null)
    {
        _policy = new PolicyCell(MapServerPolicy.For(config));
        _log = log;
        _peerLog = new RateLimitedLogger(log);
        try
        {
            foreach (var endpoint in config.Listen)
            {
                var bound = endpoint;
                if (bound.Port != 0) EnsurePortFree(bound);
                for (int w = 0; w < workers; w++)
                {
                    var socket = new Socket(bound.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
                    // An IPv6 listen address takes IPv6 only, so [::]:4342 and 0.0.0.0:4342 can both be listened on.
                    if (bound.AddressFamily == AddressFamily.InterNetworkV6) socket.DualMode = false;
                    socket.SetRawSocketOption(NativeInterop.Linux.SOL_SOCKET, NativeInterop.Linux.SO_REUSEPORT, BitConverter.GetBytes(1));
                    socket.ReceiveBufferSize = 4 << 20;
                    try { socket.Bind(bound); }
                    catch (SocketException e) { throw new ConfigException($"cannot listen on {bound}: {e.Message}"); }
                    // With port 0 the first socket picks the port; the others join it.
                    bound = (IPEndPoint)socket.LocalEndPoint!;
                    _sockets.Add(socket);
                    var core = new MapServerCore(_policy, Store, Counters, _peerLog) { LocalEndpoint = bound };
                    _cores.Add(core);
                    int? cpu = cpus is { Count: > 0 } ? cpus[w % cpus.Count] : null;
                    var thread = new Thread(() =>
                    {
                        if (cpu is int c && !NativeInterop.Cpu.TryPinCurrentThread(c, out int errno))
                            MapServerLog.NotPinned(log, c, errno);
                        if (socket.AddressFamily == AddressFamily.InterNetwork) ReceiveBatched(socket, core); else Receive(socket, core);
                    }) { IsBackground = true, Name = $"mapserver-{bound}-{w}" };
                    _threads.Add(thread);
                }
            }
            // The DDT Map-Resolver's own socket, on the first listen address: its requests leave from it (from the
            // workers' batches, or one by one for retries), and the Map-Referrals that answer them are read by a
            // thread of their own.
            _resolverSocket = new Socket(_sockets[0].AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            _resolverSocket.Bind(new IPEndPoint(((IPEndPoint)_sockets[0].LocalEndPoint!).Address, 0));
            _resolverSocket.ReceiveBufferSize = 4 << 20;
            if (controlSocket) _control = MapServerApi.StartAsync(this, config.ControlSocket, log).GetAwaiter().GetResult();
            var first = _sockets[0];
            // The publisher's datagrams to IPv4 subscribers leave in sendmmsg batches (a change to a prefix with many
            // subscribers is many datagrams at once); others one by one.
            var ipv4 = _sockets.Find(x => x.AddressFamily == AddressFamily.InterNetwork);
            _publisherBatch = ipv4 is null ? null : new DatagramBatch(ipv4, receive: false);
            var batch = _publisherBatch;
            _publisher = new Publisher(Counters, (datagram, to) => { if (batch is null || !batch.Queue(datagram, to)) SendOne(first, datagram, to, "notify"); }, log,
                batch is null ? null : batch.Flush);
        }
        catch
        {
            foreach (var s in _sockets) s.Dispose();
            _resolverSocket?.Dispose();
            throw;
        }
        Resolver = new DdtResolver(Counters, () => _policy.Current.Config, (b, to) => SendOne(_resolverSocket, b, to, "DDT Map-Request to"));
        _threads.Add(new Thread(ReceiveReferrals) { IsBackground = true, Name = "mapserver-ddt-resolver" });
        foreach (var core in _cores)
        {
            core.Publisher = _publisher;
            core.Resolver = Resolver;
        }
        Store.Changed += (old, updated) =>
        {
            if (updated is null) Counters.Add(t_reloading ? MsCounter.RegistrationsRemovedByReload : MsCounter.RegistrationsExpired);
            _publisher?.OnChanged(old, updated);
        };
        _expiry = new Timer(_ =>
        {
            // One scan at a time (a slow tick must not overlap the next); a timer callback must never take the
            // process down: report and carry on.
            if (Interlocked.Exchange(ref _expiring, 1) == 1) return;
            try
            {
                if (!_stopping)
                {
                    Store.Expire(MapServerCore.NowMs);
                    Resolver.Tick(MapServerCore.NowMs);
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException) { MapServerLog.ExpiryFailed(log, e.Message); }
            finally { Volatile.Write(ref _expiring, 0); }
        }, null, ExpiryIntervalMs, ExpiryIntervalMs);
        foreach (var t in _threads) t.Start();
        MapServerLog.Listening(log, string.Join(", ", BoundEndpoints.Distinct()), workers, config.Sites.Count, string.Join(", ", config.Sites.Select(s => s.Name)),
            _control is null ? "" : $"; control socket {config.ControlSocket}");
    }

    /// <summary>
    /// Applies a re-read configuration without a restart (SIGHUP): sites added, changed and removed, keys, prefixes,
    /// rate limits, timeouts and TTLs. Registrations of unchanged sites stay untouched; those of a changed site stay
    /// while the site still covers their prefix (the site's next refresh must authenticate with its keys as they are
    /// now); those of a removed site, or of a prefix the site no longer holds, are removed and their subscribers told.
    /// Every subscription follows its subscriber's site. The sockets stay as they are: a changed listen or
    /// control-socket line is reported and waits for a restart.
    /// </summary>
    public MapServerReloadResult Reload(MapServerConfig fresh)
    {
        lock (_reloadLock)
        {
            var running = _policy.Current;
            var old = running.Config;
            var needRestart = SiteComparison.NeedRestart(old, fresh);
            fresh.Listen.Clear();
            fresh.Listen.AddRange(old.Listen);
            fresh.ControlSocket = old.ControlSocket;
            var oldByName = old.Sites.ToDictionary(s => s.Name);
            // A site that did not change at all keeps its configuration object, so that its registrations and
            // subscriptions are not even looked at (at a million registrations, a reload that changes one small site
            // then touches only that site's).
            for (int i = 0; i < fresh.Sites.Count; i++)
                if (oldByName.TryGetValue(fresh.Sites[i].Name, out var same) && SiteComparison.SameAuthority(same, fresh.Sites[i]) && same.Description == fresh.Sites[i].Description)
                    fresh.Sites[i] = same;
            var byName = fresh.Sites.ToDictionary(s => s.Name);
            var added = fresh.Sites.Where(s => !oldByName.ContainsKey(s.Name)).Select(s => s.Name).ToList();
            var removed = old.Sites.Where(s => !byName.ContainsKey(s.Name)).Select(s => s.Name).ToList();
            var changed = fresh.Sites.Where(s => oldByName.TryGetValue(s.Name, out var o) && !SiteComparison.SameAuthority(o, s)).Select(s => s.Name).ToList();
            _policy.Current = running.With(fresh);
            int registrations, subscriptions;
            t_reloading = true;
            try { registrations = Store.ApplySites(byName); }
            finally { t_reloading = false; }
            subscriptions = _publisher?.DropSubscriptionsOfRemovedSites() ?? 0;
            Counters.Add(MsCounter.ConfigReloads);
            var result = new MapServerReloadResult(added, changed, removed, fresh.Sites.Count - added.Count - changed.Count, registrations, subscriptions, needRestart);
            MapServerLog.Reloaded(_log, result.ToString());
            return result;
        }
    }

    /// <summary>
    /// Reads the configuration again with <paramref name="load"/> and applies it; a configuration that does not load
    /// is refused with its reason (line and cause) and the running one stays. Null when refused.
    /// </summary>
    public MapServerReloadResult? ReloadFrom(Func<MapServerConfig> load)
    {
        MapServerConfig fresh;
        try { fresh = load(); }
        catch (Exception e) when (e is ConfigException or FormatException or IOException or UnauthorizedAccessException)
        {
            Counters.Add(MsCounter.ConfigReloadsRefused);
            MapServerLog.ReloadRefused(_log, e.Message);
            return null;
        }
        return Reload(fresh);
    }

    /// <summary>
    /// The workers share the port through SO_REUSEPORT, which would also let a second Map-Server of the same user
    /// join and silently take a share of the requests; a probe bound without it finds any other holder.
    /// </summary>
    private static void EnsurePortFree(IPEndPoint endpoint)
    {
        using var probe = new Socket(endpoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try { probe.Bind(endpoint); }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            throw new ConfigException($"cannot listen on {endpoint}: the port is in use (another fastxtr mapserver or LISP control plane holds it)");
        }
        catch (SocketException) { } // the real bind reports it
    }

    /// <summary>
    /// An IPv4 worker: batches in with recvmmsg, each message handled, the replies out with one sendmmsg per batch
    /// (<see cref="DatagramBatch"/>). A reply for an IPv6 destination, which this socket cannot reach, is sent (and
    /// refused) one by one so that the refusal is logged as before.
    /// </summary>
    private void ReceiveBatched(Socket socket, MapServerCore core)
    {
        using var batch = new DatagramBatch(socket);
        // The DDT Map-Requests this worker's batch starts leave with its replies, in one sendmmsg of their own.
        using var ddtRequests = _resolverSocket.AddressFamily == AddressFamily.InterNetwork ? new DatagramBatch(_resolverSocket, receive: false) : null;
        long failuresCounted = 0, ddtFailuresCounted = 0;
        var sender = QueueOrSend(batch, socket, "send to");
        if (ddtRequests is not null) core.DdtRequestSender = QueueOrSend(ddtRequests, _resolverSocket, "DDT Map-Request to");
        while (!_stopping)
        {
            int n = batch.Receive();
            if (n == 0)
            {
                batch.Wait(200);
                continue;
            }
            // What the batch's Map-Registers change is queued for publication only once their Map-Notifies are sent.
            using (_publisher?.DeferOnThisThread(Stopwatch.GetTimestamp()))
            {
                for (int i = 0; i < n; i++) HandleOne(core, batch.Datagram(i), batch.Source(i), sender);
                batch.Flush();
                ddtRequests?.Flush();
            }
            CountFailures(batch, MsCounter.RepliesNotSent, ref failuresCounted);
            if (ddtRequests is not null) CountFailures(ddtRequests, MsCounter.DdtMapRequestsNotSent, ref ddtFailuresCounted);
        }
    }

    /// <summary>Queues each datagram in <paramref name="batch"/>, or sends it from <paramref name="socket"/> when the batch cannot take it (or there is none).</summary>
    private MapServerCore.Sender QueueOrSend(DatagramBatch? batch, Socket socket, string what) =>
        (datagram, to) => { if (batch is null || !batch.Queue(datagram, to)) SendOne(socket, datagram, to, what); };

    private void CountFailures(DatagramBatch batch, MsCounter counter, ref long counted)
    {
        if (batch.SendFailures == counted) return;
        Counters.Add(counter, batch.SendFailures - counted);
        counted = batch.SendFailures;
    }

    private void Receive(Socket socket, MapServerCore core)
    {
        byte[] buffer = new byte[65536];
        var from = new SocketAddress(socket.AddressFamily);
        // One delegate per socket, not one per datagram.
        MapServerCore.Sender sender = (datagram, to) => SendOne(socket, datagram, to, "send to");
        while (!_stopping)
        {
            int n;
            try { n = socket.ReceiveFrom(buffer, SocketFlags.None, from); }
            catch (SocketException) when (_stopping) { return; }
            catch (ObjectDisposedException) { return; }
            catch (SocketException e)
            {
                MapServerLog.ReceiveFailed(_log, socket.LocalEndPoint, e.Message);
                continue;
            }
            using (_publisher?.DeferOnThisThread(Stopwatch.GetTimestamp())) HandleOne(core, buffer.AsSpan(0, n), (IPEndPoint)new IPEndPoint(IPAddress.Any, 0).Create(from), sender);
        }
    }

    /// <summary>The Map-Referrals answering the DDT Map-Resolver's requests, on its own socket.</summary>
    private void ReceiveReferrals()
    {
        if (_resolverSocket.AddressFamily == AddressFamily.InterNetwork)
        {
            ReceiveReferralsBatched();
            return;
        }
        byte[] buffer = new byte[65536];
        var from = new SocketAddress(_resolverSocket.AddressFamily);
        var referral = new MapReferral();
        var first = _sockets[0];
        MapServerCore.Sender reply = (b, to) => SendOne(first, b, to, "negative Map-Reply to");
        while (!_stopping)
        {
            int n;
            try { n = _resolverSocket.ReceiveFrom(buffer, SocketFlags.None, from); }
            catch (SocketException) when (_stopping) { return; }
            catch (ObjectDisposedException) { return; }
            catch (SocketException) { continue; } // ICMP port unreachable from a dead target: its timeout handles it
            var source = (IPEndPoint)new IPEndPoint(IPAddress.Any, 0).Create(from);
            OnReferral(buffer.AsSpan(0, n), source, MapServerCore.NowMs, referral, reply, null);
        }
    }

    /// <summary>
    /// The Map-Referrals in recvmmsg batches (under load a Map-Server's MS-ACKs come in bursts, one per request it
    /// answered); the next DDT Map-Requests and the negative Map-Replies they cause leave in one sendmmsg each per batch.
    /// </summary>
    private void ReceiveReferralsBatched()
    {
        using var batch = new DatagramBatch(_resolverSocket);
        var first = _sockets[0];
        using var replies = first.AddressFamily == AddressFamily.InterNetwork ? new DatagramBatch(first, receive: false) : null;
        var referral = new MapReferral();
        long failuresCounted = 0, replyFailuresCounted = 0;
        var next = QueueOrSend(batch, _resolverSocket, "DDT Map-Request to");
        var reply = QueueOrSend(replies, first, "negative Map-Reply to");
        while (!_stopping)
        {
            int n = batch.Receive();
            if (n == 0)
            {
                batch.Wait(200);
                continue;
            }
            long now = MapServerCore.NowMs;
            for (int i = 0; i < n; i++) OnReferral(batch.Datagram(i), batch.Source(i), now, referral, reply, next);
            batch.Flush();
            replies?.Flush();
            CountFailures(batch, MsCounter.DdtMapRequestsNotSent, ref failuresCounted);
            if (replies is not null) CountFailures(replies, MsCounter.RepliesNotSent, ref replyFailuresCounted);
        }
    }

    /// <summary>A datagram on the resolver's socket: a Map-Referral to follow, anything else counted as malformed.</summary>
    private void OnReferral(ReadOnlySpan<byte> datagram, IPEndPoint source, long nowMs, MapReferral referral, MapServerCore.Sender reply, MapServerCore.Sender? next)
    {
        if (LispMessage.PeekType(datagram) != LispMessageType.MapReferral || !referral.TryDecode(datagram).Ok)
        {
            Counters.Add(MsCounter.MalformedMessage);
            return;
        }
        Resolver.OnReferral(referral, source, nowMs, reply, next);
    }

    /// <summary>One received message through the core; nothing a peer sends stops the worker.</summary>
    private void HandleOne(MapServerCore core, ReadOnlySpan<byte> datagram, IPEndPoint source, MapServerCore.Sender sender)
    {
        try
        {
            core.Handle(datagram, source, sender);
        }
        catch (Exception e) when (e is LispFormatException or ArgumentException or InvalidOperationException)
        {
            // Defence in depth: the decoders report errors without throwing.
            Counters.Add(MsCounter.MalformedMessage);
            _peerLog.Warning("dropped", $"{source}: message dropped: {e.Message}");
        }
    }

    /// <summary>
    /// Sends from <paramref name="socket"/>, or, for a destination of the other family (a Map-Request forwarded to an
    /// ETR's IPv6 RLOC that came in over IPv4, a publication to an IPv6 subscriber), from the first listen socket of
    /// that family; with none, the failure is logged.
    /// </summary>
    private void SendOne(Socket socket, ReadOnlySpan<byte> datagram, IPEndPoint to, string what)
    {
        if (socket.AddressFamily != to.AddressFamily)
        {
            var other = _sockets.Find(s => s.AddressFamily == to.AddressFamily);
            if (other is null)
            {
                MapServerLog.SendFailed(_log, what, to, "no listen address of that family");
                return;
            }
            socket = other;
        }
        try { socket.SendTo(datagram, SocketFlags.None, to); }
        catch (SocketException e) { MapServerLog.SendFailed(_log, what, to, e.Message); }
        catch (ObjectDisposedException) { } // stopping
    }

    /// <summary>
    /// The message counters plus the table size and what the runtime spent on garbage collection, which is where a
    /// Map-Request's latency tail comes from when the table is large.
    /// </summary>
    public Dictionary<string, long> CountersWithRuntime()
    {
        var d = Counters.ToDictionary();
        d["registrations"] = Store.Count;
        d["subscriptions"] = _publisher?.SubscriptionCount ?? 0;
        d["gc-collections-gen0"] = GC.CollectionCount(0);
        d["gc-collections-gen1"] = GC.CollectionCount(1);
        d["gc-collections-gen2"] = GC.CollectionCount(2);
        d["gc-pause-total-ms"] = (long)GC.GetTotalPauseDuration().TotalMilliseconds;
        // Every byte the process has allocated since it started: a rate that grows with the message rate is what
        // drives the collections above.
        d["gc-allocated-bytes"] = GC.GetTotalAllocatedBytes(precise: false);
        d["resident-bytes"] = Environment.WorkingSet;
        return d;
    }

    /// <summary>The DDT Map-Resolver's referral cache as plain objects (IID, prefix, action, targets, I bit, expiry).</summary>
    public List<Dictionary<string, object?>> ReferralCache()
    {
        long now = MapServerCore.NowMs;
        return Resolver.CacheSnapshot(now).Select(c => new Dictionary<string, object?>
        {
            ["iid"] = c.InstanceId,
            ["eid"] = $"{EidPrefix.Format(c.Family, c.Prefix)}/{c.Length}",
            ["action"] = ReferralRecord.ActionName(c.Action),
            ["targets"] = c.Targets.Select(t => new Dictionary<string, object?> { ["address"] = t.Address.Address.ToString(), ["priority"] = t.Priority, ["weight"] = t.Weight }).ToList(),
            ["incomplete"] = c.Incomplete,
            ["expires_in_s"] = (c.ExpiresMs - now) / 1000,
        }).ToList();
    }

    /// <summary>The registration table as plain objects (site, IID, EID, per xTR: RLOCs with attributes, age, expiry).</summary>
    public List<Dictionary<string, object?>> Registrations()
    {
        long now = MapServerCore.NowMs;
        var list = new List<Dictionary<string, object?>>();
        foreach (var reg in Store.All.OrderBy(r => r.Site.Name).ThenBy(r => r.Key.InstanceId).ThenBy(r => r.Key.Family).ThenBy(r => r.Key.Prefix))
        {
            foreach (var x in reg.ByXtr.Values)
            {
                list.Add(new Dictionary<string, object?>
                {
                    ["site"] = reg.Site.Name,
                    ["iid"] = reg.Key.InstanceId,
                    ["eid"] = $"{EidPrefix.Format(reg.Key.Family, reg.Key.Prefix)}/{reg.Key.Length}",
                    ["xtr_id"] = x.XtrId.ToString("x32", System.Globalization.CultureInfo.InvariantCulture),
                    ["site_id"] = x.SiteId,
                    ["source"] = x.Source.ToString(),
                    ["age_s"] = (int)(DateTime.UtcNow - x.FirstRegistered).TotalSeconds,
                    ["last_registered_s_ago"] = (int)(DateTime.UtcNow - x.LastRegistered).TotalSeconds,
                    ["expires_in_s"] = Math.Max(0, (x.ExpiresAtMs - now) / 1000),
                    ["merge"] = x.Merge,
                    ["rlocs"] = x.Rlocs.Select(r => new Dictionary<string, object?>
                    {
                        ["address"] = r.Address.ToString(), ["priority"] = r.Priority, ["weight"] = r.Weight, ["reachable"] = r.Reachable,
                        ["attributes"] = r.Context is null ? null : JsonDocument.Parse(r.Context.ToUtf8Json()).RootElement.GetProperty(AgentContext.MemberName).Clone(),
                    }).ToList(),
                });
            }
        }
        return list;
    }

    public void Dispose()
    {
        _stopping = true;
        using (var done = new ManualResetEvent(false))
            if (_expiry.Dispose(done)) done.WaitOne(2000); // wait for a running expiry before the sockets go
        _publisher?.Dispose();
        // Its native buffers only once the sender thread that uses them has stopped (else they are left to the process).
        if (_publisher?.SenderStopped != false) _publisherBatch?.Dispose();
        foreach (var s in _sockets) s.Dispose();
        _resolverSocket.Dispose();
        _control?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        foreach (var t in _threads) t.Join(2000);
    }
}
