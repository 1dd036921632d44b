using System.Collections.Concurrent;
using System.Net;
using FastXtr.Lisp.Messages;

namespace FastXtr.Agent;

/// <summary>What an Info-Reply told this xTR: how a Map-Server sees its control address and port, and the RTRs to use.</summary>
public sealed record NatState(IPEndPoint MapServer, IPAddress TranslatedAddress, int TranslatedPort, bool BehindNat, IReadOnlyList<IPAddress> Rtrs, DateTimeOffset At);

/// <summary>
/// NAT discovery (draft-ietf-lisp-nat-traversal §5): an Info-Request to each Map-Server, signed with its key and naming
/// the first EID prefix of the database (which picks the site), at start and every <see cref="Interval"/> after; the
/// Info-Reply, accepted only for a nonce of ours and authenticated with that Map-Server's key, says which address and
/// port the request came from. If they are not this xTR's own RLOC and control port, a NAT translated them: the xTR
/// is behind NAT (logged when that changes, shown in <c>GET /v1/status</c>). The periodic request also keeps the NAT's
/// binding for the control port alive. A Map-Server that has not answered yet (it may be starting, or the request
/// lost) is asked again every second until it does. Behind NAT, the IPv4 RTRs the Map-Servers name become
/// <see cref="AgentIo.Rtrs"/>, and <see cref="RtrsChanged"/> tells the agent when that set changes (it then registers
/// them and routes through them: <see cref="NatKeepalive"/>).
/// </summary>
internal sealed class NatDiscovery(AgentIo io)
{
    /// <summary>How often each Map-Server is asked again: within the 30 s many NATs keep an idle UDP binding.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(20);

    private readonly ConcurrentDictionary<ulong, MapServerPeer> _pending = new();
    // When each Map-Server was last asked (loop thread only).
    private readonly Dictionary<IPEndPoint, long> _lastAsked = [];
    private readonly ConcurrentDictionary<IPEndPoint, NatState> _states = new();
    private readonly InfoMessage _reply = new();

    /// <summary>Called (on the receive thread) when the RTRs to go through changed, to <see cref="AgentIo.Rtrs"/>.</summary>
    public Action? RtrsChanged { get; set; }

    /// <summary>The latest answer of each Map-Server that answered.</summary>
    public IReadOnlyCollection<NatState> States => _states.Values.ToList();

    /// <summary>Sends an Info-Request to every Map-Server (forgetting requests a round ago left unanswered).</summary>
    public void Round()
    {
        _pending.Clear();
        foreach (var ms in io.Config.MapServers) Ask(ms);
    }

    /// <summary>
    /// Asks again, once a second, each Map-Server that has never answered, and at once one never asked (an xTR whose
    /// database was empty at start asks as soon as its first agent attaches). Called every 100 ms.
    /// </summary>
    public void RetransmitUnanswered()
    {
        long now = AgentIo.NowMs;
        foreach (var ms in io.Config.MapServers)
            if (!_states.ContainsKey(ms.Endpoint) && (!_lastAsked.TryGetValue(ms.Endpoint, out long last) || now - last >= 1000)) Ask(ms);
    }

    private void Ask(MapServerPeer ms)
    {
        var database = io.Database.All;
        if (database.Count == 0 || !io.CanReach(ms.Endpoint.Address)) return; // nothing registered: no site to authenticate with
        var first = database[0];
        _lastAsked[ms.Endpoint] = AgentIo.NowMs;
        var request = new InfoMessage
        {
            Nonce = AgentIo.NewNonce(), TtlMinutes = 0, EidMaskLength = (byte)first.Length,
            EidPrefix = EidAddress.WithInstanceId(first.InstanceId, first.Family, first.Prefix),
        };
        _pending[request.Nonce] = ms;
        io.Counters.Add(AgentCounter.InfoRequestsSent);
        io.Send(request.ToSignedArray(ms.Key), ms.Endpoint);
    }

    /// <summary>An Info-Reply arrived (on the receive thread).</summary>
    public void OnInfoReply(ReadOnlySpan<byte> message, IPEndPoint from)
    {
        if (!_reply.TryDecode(message).Ok || !_reply.IsReply) { io.Counters.Add(AgentCounter.MalformedMessages); return; }
        if (!_pending.TryGetValue(_reply.Nonce, out var ms)
            || MessageAuthentication.Verify(message, ms.Key, out var algorithm) != AuthenticationFailure.None || algorithm != ms.Key.Algorithm)
        {
            io.Counters.Add(AgentCounter.InfoRepliesRefused);
            return;
        }
        _pending.TryRemove(_reply.Nonce, out _);
        if (_reply.GlobalEtrRloc.Kind is not (LispAddressKind.Ipv4 or LispAddressKind.Ipv6)) { io.Counters.Add(AgentCounter.InfoRepliesRefused); return; }
        io.Counters.Add(AgentCounter.InfoRepliesReceived);
        var seen = _reply.GlobalEtrRloc.ToIPAddress();
        var own = io.Config.RlocOf(seen.AddressFamily);
        bool behind = own is null || !own.Equals(seen) || _reply.EtrPort != LispPorts.Control;
        var rtrs = _reply.Rtrs.Where(r => r.Kind is LispAddressKind.Ipv4 or LispAddressKind.Ipv6).Select(r => r.ToIPAddress()).ToList();
        var state = new NatState(ms.Endpoint, seen, _reply.EtrPort, behind, rtrs, DateTimeOffset.UtcNow);
        var before = _states.TryGetValue(ms.Endpoint, out var b) ? b : null;
        _states[ms.Endpoint] = state;
        if (before is null || before.BehindNat != behind || !before.TranslatedAddress.Equals(seen) || before.TranslatedPort != state.TranslatedPort)
        {
            if (behind) AgentLog.BehindNat(io.Log, ms.Endpoint, new IPEndPoint(seen, state.TranslatedPort), rtrs.Count == 0 ? "none" : string.Join(", ", rtrs));
            else AgentLog.NotBehindNat(io.Log, ms.Endpoint);
        }
        // NAT traversal is IPv4's (the draft's scope): the RTRs reached from this xTR's IPv4 RLOC.
        var through = _states.Values.Where(s => s.BehindNat).SelectMany(s => s.Rtrs)
            .Where(r => r.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && io.Config.RlocOf(r.AddressFamily) is not null)
            .Distinct().OrderBy(r => r.ToString(), StringComparer.Ordinal).ToList();
        if (behind && through.Count == 0 && (before is null || !before.BehindNat)) AgentLog.NoRtr(io.Log);
        if (!through.SequenceEqual(io.Rtrs))
        {
            io.Rtrs = through;
            RtrsChanged?.Invoke();
        }
    }
}
