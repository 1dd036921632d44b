using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using FastXtr.ControlAgent.Context;
using FastXtr.ControlAgent.Messages;
using FastXtr.Dataplane.MapCache;
using FastXtr.Dataplane.Shared;

namespace FastXtr.ControlAgent.Agent;

/// <summary>
/// The xTR control agent, first part (issue #5): registers the database mappings with every Map-Server (want-map-
/// notify, retransmitted every second until the Map-Notify arrives, refreshed every register-interval), resolves the
/// data plane's misses with ECM Map-Requests to the Map-Resolver (at most one per destination per second), installs
/// Map-Replies into the shared map-cache through the writer API, and removes expired entries. It is the map-cache's
/// single writer: every write happens under one lock.
/// </summary>
public sealed class XtrAgent : IDisposable
{
    private readonly AgentConfig _config;
    private readonly SharedRegion _region;
    private readonly MapCacheWriter _writer;
    private readonly object _writeLock = new();
    private readonly Socket _socket;
    private readonly TextWriter _log;
    private readonly Dictionary<(uint, UInt128), long> _lastRequest = [];
    private readonly Dictionary<ulong, long> _pendingRegisters = [];
    private readonly Thread _receiver, _misses;
    private readonly Timer _register, _expiry;
    private volatile bool _stopping;

    public long MapNotifiesReceived;
    public long MapRepliesInstalled;
    public long MapRequestsSent;
    public long MapRegistersSent;

    public XtrAgent(AgentConfig config, SharedRegion region, TextWriter log)
    {
        _config = config;
        _region = region;
        _log = log;
        _writer = region.CreateWriter();
        _socket = new Socket(config.RlocAddress!.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try { _socket.Bind(new IPEndPoint(config.RlocAddress, LispPorts.Control)); }
        catch (SocketException e)
        {
            _socket.Dispose();
            throw new MapServer.ConfigException($"cannot bind {config.RlocAddress}:{LispPorts.Control}: {e.Message}");
        }
        region.Header.AgentPid = Environment.ProcessId;
        _receiver = new Thread(Receive) { IsBackground = true, Name = "agent-receive" };
        _misses = new Thread(ResolveMisses) { IsBackground = true, Name = "agent-misses" };
        _receiver.Start();
        _misses.Start();
        _register = new Timer(_ => Guard("register", RegisterRound), null, TimeSpan.Zero, config.RegisterInterval);
        _expiry = new Timer(_ => Guard("expiry", () => { lock (_writeLock) _writer.RemoveExpired(MapCacheTables.Now); }), null, 1000, 1000);
        log.WriteLine($"fastxtr agent: rloc {config.RlocAddress}, {config.Database.Count} database mapping(s), {config.MapServers.Count} Map-Server(s), {config.MapResolvers.Count} Map-Resolver(s), shm {region.Path}");
    }

    /// <summary>Timer work never takes the agent down: a failure is reported and the next tick tries again.</summary>
    private void Guard(string what, Action work)
    {
        if (_stopping) return;
        try { work(); }
        catch (ObjectDisposedException) when (_stopping) { }
        catch (Exception e) when (e is SocketException or InvalidOperationException or ArgumentException or MapServer.ConfigException or LispFormatException)
        {
            _log.WriteLine($"fastxtr agent: {what}: {e.Message}");
        }
    }

    private void RegisterRound()
    {
        foreach (var ms in _config.MapServers)
        {
            var m = new MapRegister
            {
                Nonce = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8)), WantMapNotify = true, MergeRequest = true,
                XtrIdPresent = true, XtrId = _config.XtrId, SiteId = _config.SiteId, KeyId = ms.Key.KeyId, AlgorithmId = ms.Key.Algorithm,
            };
            foreach (var d in _config.Database)
            {
                var rec = new MappingRecord { TtlMinutes = 1440, EidMaskLength = (byte)d.Length, Authoritative = true, EidPrefix = EidAddress.WithInstanceId(d.InstanceId, d.Family, d.Prefix) };
                foreach (var (rloc, priority, weight) in d.Rlocs)
                {
                    var address = LispAddress.FromIp(rloc);
                    rec.Locators.Add(new LocatorRecord(d.Context is null ? address : ContextEncoding.RlocWithContext(address, d.Context), priority, weight) { Local = rloc.Equals(_config.RlocAddress) });
                }
                m.Records.Add(rec);
            }
            byte[] datagram = m.ToSignedArray(ms.Key.Secret);
            lock (_pendingRegisters) _pendingRegisters[m.Nonce] = 0;
            // Retransmitted every second until its Map-Notify arrives (RFC 9301 §8.2), five times at most a round.
            for (int attempt = 0; attempt < 5 && !_stopping; attempt++)
            {
                _socket.SendTo(datagram, ms.Endpoint);
                Interlocked.Increment(ref MapRegistersSent);
                for (int w = 0; w < 10; w++)
                {
                    Thread.Sleep(100);
                    lock (_pendingRegisters) if (!_pendingRegisters.ContainsKey(m.Nonce)) goto done;
                }
            }
            _log.WriteLine($"fastxtr agent: no Map-Notify from {ms.Endpoint} after 5 tries; next round in {_config.RegisterInterval.TotalSeconds:F0} s");
            done:;
        }
    }

    private void ResolveMisses()
    {
        Span<MissRecord> batch = stackalloc MissRecord[64];
        while (!_stopping)
        {
            bool any = false;
            for (int w = 0; w < _region.Sizes.Workers; w++)
            {
                int n = _region.MissRing(w).Drain(batch);
                any |= n > 0;
                for (int i = 0; i < n; i++)
                {
                    try { Request(batch[i]); }
                    catch (SocketException e) { _log.WriteLine($"fastxtr agent: Map-Request: {e.Message}"); }
                    catch (ObjectDisposedException) { return; }
                }
            }
            if (!any) Thread.Sleep(2);
        }
    }

    private void Request(in MissRecord miss)
    {
        if (_config.MapResolvers.Count == 0) return;
        long now = Stopwatch.GetTimestamp();
        var key = (miss.InstanceId, miss.DestinationEid);
        // At most one Map-Request per destination per second (RFC 9301 §5.3).
        if (_lastRequest.TryGetValue(key, out long last) && now - last < Stopwatch.Frequency) return;
        _lastRequest[key] = now;
        var request = new MapRequest { Nonce = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8)), SourceEid = EidAddress.WithInstanceId(miss.InstanceId, miss.Family, miss.SourceEid) };
        request.ItrRlocs.Add(LispAddress.FromIp(_config.RlocAddress!));
        request.Records.Add(new MapRequestRecord(EidAddress.WithInstanceId(miss.InstanceId, miss.Family, miss.DestinationEid), (byte)MapCacheMath.MaxPrefixLength(miss.Family)));
        var ecm = new EncapsulatedControlMessage { InnerSourcePort = LispPorts.Control };
        if (miss.Family == EidFamily.Ipv4) ecm.SetInnerAddresses(Dataplane.Headers.Ipv4Header.ToAddress((uint)miss.SourceEid), Dataplane.Headers.Ipv4Header.ToAddress((uint)miss.DestinationEid));
        else ecm.SetInnerAddresses(Dataplane.Headers.Ipv6Header.ToAddress(miss.SourceEid), Dataplane.Headers.Ipv6Header.ToAddress(miss.DestinationEid));
        ecm.SetInnerMessage(request.ToArray());
        _socket.SendTo(ecm.ToArray(), _config.MapResolvers[0]);
        Interlocked.Increment(ref MapRequestsSent);
    }

    private void Receive()
    {
        byte[] buffer = new byte[65536];
        var reply = new MapReply();
        var notify = new MapNotify();
        EndPoint from = new IPEndPoint(IPAddress.Any, 0);
        while (!_stopping)
        {
            int n;
            try { n = _socket.ReceiveFrom(buffer, ref from); }
            catch (SocketException) when (_stopping) { return; }
            catch (ObjectDisposedException) { return; }
            catch (SocketException) { continue; }
            var message = buffer.AsSpan(0, n);
            switch (LispMessage.PeekType(message))
            {
                case LispMessageType.MapNotify:
                    if (!notify.TryDecode(message).Ok) break;
                    lock (_pendingRegisters) _pendingRegisters.Remove(notify.Nonce);
                    Interlocked.Increment(ref MapNotifiesReceived);
                    break;
                case LispMessageType.MapReply:
                    if (reply.TryDecode(message).Ok) Install(reply);
                    break;
                case LispMessageType.EncapsulatedControlMessage:
                    // A Map-Request the Map-Server forwarded to this ETR (no proxy-reply for our site).
                    if (_ecm.TryDecode(message).Ok && LispMessage.PeekType(_ecm.InnerMessage) == LispMessageType.MapRequest)
                        AnswerAsEtr(_ecm.InnerMessage, _ecm.InnerSourcePort, (IPEndPoint)from);
                    break;
                case LispMessageType.MapRequest:
                    // An RLOC probe or a direct request (RFC 9301 §6.3.2): answered with the probe bit echoed.
                    AnswerAsEtr(message, ((IPEndPoint)from).Port, (IPEndPoint)from);
                    break;
            }
        }
    }

    private readonly EncapsulatedControlMessage _ecm = new();
    private readonly MapRequest _request = new();
    private readonly byte[] _out = new byte[LispMessage.MaxMessageLength];
    public long MapRequestsAnswered;

    /// <summary>
    /// Answers a Map-Request for one of this xTR's EID prefixes from the database, authoritatively, with the same
    /// context rules as the Map-Server (CONTEXT-EXTENSION.md §3: "the same rules apply whether the Map-Server
    /// proxy-replies or forwards"), to the requester's ITR-RLOC.
    /// </summary>
    private void AnswerAsEtr(ReadOnlySpan<byte> message, int replyPort, IPEndPoint from)
    {
        if (!_request.TryDecode(message).Ok) return;
        var constraints = ContextEncoding.ReadConstraints(_request.SourceEid, out _);
        var reply = new MapReply { Nonce = _request.Nonce, Probe = _request.Probe };
        foreach (var asked in _request.Records)
        {
            if (!EidAddress.TryRead(asked.EidPrefix, out uint iid, out var family, out var eid)) continue;
            var d = _config.Database.Where(m => m.InstanceId == iid && m.Family == family && MapCacheMath.Mask(eid, family, m.Length) == m.Prefix).MaxBy(m => m.Length);
            if (d is null) continue;
            var record = new MappingRecord { EidPrefix = EidAddress.WithInstanceId(d.InstanceId, d.Family, d.Prefix), EidMaskLength = (byte)d.Length, TtlMinutes = 1440, Authoritative = true };
            var candidates = d.Rlocs.Select(r => new RlocCandidate(r.Priority, r.Weight, d.Context)).ToArray();
            var chosen = ContextMatcher.Select(constraints, candidates);
            if (chosen.Length == 0)
            {
                record.Action = MapReplyAction.DropPolicyDenied;
                record.TtlMinutes = ContextMatcher.PolicyDeniedTtlMinutes;
            }
            foreach (var c in chosen)
            {
                var address = LispAddress.FromIp(d.Rlocs[c.CandidateIndex].Rloc);
                var locator = constraints is not null && d.Context is not null ? ContextEncoding.RlocWithContext(address, d.Context) : address;
                bool local = d.Rlocs[c.CandidateIndex].Rloc.Equals(_config.RlocAddress);
                record.Locators.Add(new LocatorRecord(locator, c.Priority, c.Weight) { Local = local, Probed = _request.Probe && local });
            }
            reply.Records.Add(record);
        }
        if (reply.Records.Count == 0) return;
        int n = reply.TryEncode(_out);
        if (n < 0) return;
        IPAddress to = from.Address;
        foreach (var itr in _request.ItrRlocs)
            if (itr.PlainAddress.Kind is LispAddressKind.Ipv4 or LispAddressKind.Ipv6) { to = itr.PlainAddress.ToIPAddress(); break; }
        _socket.SendTo(_out.AsSpan(0, n), SocketFlags.None, new IPEndPoint(to, replyPort));
        Interlocked.Increment(ref MapRequestsAnswered);
    }

    private void Install(MapReply reply)
    {
        foreach (var rec in reply.Records)
        {
            if (!EidAddress.TryRead(rec.EidPrefix, out uint iid, out var family, out var prefix)) continue;
            var rlocs = new List<RlocSpec>();
            foreach (var l in rec.Locators)
            {
                var a = ContextEncoding.ReadLocator(l.Locator, out _, out _);
                if (a.Kind == LispAddressKind.Ipv4) rlocs.Add(new RlocSpec(EidFamily.Ipv4, a.Ipv4Value, l.Priority, l.Weight, l.Reachable));
                else if (a.Kind == LispAddressKind.Ipv6) rlocs.Add(new RlocSpec(EidFamily.Ipv6, a.Ipv6Value, l.Priority, l.Weight, l.Reachable));
                if (rlocs.Count == MapCacheEntry.MaxRlocs) break;
            }
            var spec = new MapCacheEntrySpec(iid, 0, family, prefix, rec.EidMaskLength, rlocs, rec.IsNegative ? rec.Action : MapReplyAction.NoAction,
                rec.TtlMinutes == 0 ? 1 : rec.TtlMinutes, rec.MapVersion);
            lock (_writeLock) _writer.Upsert(spec);
            Interlocked.Increment(ref MapRepliesInstalled);
        }
    }

    public void Dispose()
    {
        _stopping = true;
        foreach (var timer in new[] { _register, _expiry })
            using (var done = new ManualResetEvent(false))
                if (timer.Dispose(done)) done.WaitOne(7000);
        _socket.Dispose();
        _receiver.Join(2000);
        _misses.Join(2000);
        if (_region.Header.AgentPid == Environment.ProcessId) _region.Header.AgentPid = 0;
    }
}
