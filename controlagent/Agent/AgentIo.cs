using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;

namespace FastXtr.Agent;

/// <summary>
/// What every component of the agent shares: its configuration, database, counters and log, and the control sockets
/// (UDP 4342 on each RLOC, one per family) that all of them send from: each datagram leaves from the socket of its
/// destination's family.
/// </summary>
internal sealed class AgentIo(AgentConfig config, AgentDatabase database, AgentCounters counters, ILogger log, IReadOnlyList<Socket> sockets)
{
    private AgentConfig _config = config;

    /// <summary>The configuration in force; a reload replaces it in one step (every reader takes it whole).</summary>
    public AgentConfig Config
    {
        get => Volatile.Read(ref _config);
        set => Volatile.Write(ref _config, value);
    }
    public AgentDatabase Database { get; } = database;
    public AgentCounters Counters { get; } = counters;
    public ILogger Log { get; } = log;

    private volatile IReadOnlyList<IPAddress> _rtrs = [];

    /// <summary>
    /// Behind NAT: the RTRs this xTR registers as its locators and sends everything through (the Map-Servers' Info-Replies
    /// named them); empty when it is not behind NAT. Replaced whole.
    /// </summary>
    public IReadOnlyList<IPAddress> Rtrs
    {
        get => _rtrs;
        set => _rtrs = value;
    }

    /// <summary>fastxtr rtr: the NAT bindings this RTR learnt; null for an xTR.</summary>
    public RtrBindings? Rtr { get; set; }

    /// <summary>Told, in seconds, how long each answered Map-Request took from its first send (the metrics' histogram).</summary>
    public Action<double>? MapRequestAnswered { get; set; }

    public static long NowMs => Environment.TickCount64;

    public static ulong NewNonce() => BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));

    /// <summary>Sends one datagram; a failure is logged (the caller's retransmission, if any, tries again).</summary>
    public void Send(ReadOnlySpan<byte> datagram, IPEndPoint to)
    {
        try { SocketFor(to).SendTo(datagram, SocketFlags.None, to); }
        catch (SocketException e) { AgentLog.SendFailed(Log, to, e.Message); }
        catch (ObjectDisposedException) { } // the agent is stopping: a handler still running on the receive thread answers no more
    }

    /// <summary>Sends one datagram and lets a <see cref="SocketException"/> reach the caller (one that says so when the agent is stopping).</summary>
    public void SendOrThrow(byte[] datagram, IPEndPoint to)
    {
        try { SocketFor(to).SendTo(datagram, to); }
        catch (ObjectDisposedException) { throw new SocketException((int)SocketError.Shutdown); }
    }

    /// <summary>Whether this xTR can reach an address: it has an RLOC of that family.</summary>
    public bool CanReach(IPAddress address) => sockets.Any(s => s.AddressFamily == Unmapped(address).AddressFamily);

    /// <summary>The socket of the destination's family; none is a <see cref="SocketException"/> (address family not supported).</summary>
    private Socket SocketFor(IPEndPoint to)
    {
        foreach (var s in sockets)
            if (s.AddressFamily == to.AddressFamily) return s;
        throw new SocketException((int)SocketError.AddressFamilyNotSupported);
    }

    private static IPAddress Unmapped(IPAddress a) => a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a;

    /// <summary>
    /// The ITR-RLOCs of this xTR's Map-Requests (RFC 9301 §5.3): each of its RLOCs, the family of the peer's first
    /// (the one the request goes to) in front, so a responder that takes the first one it can reach answers over it.
    /// </summary>
    public void AddItrRlocs(Lisp.Messages.RecycledList<Lisp.Messages.LispAddress> itrRlocs, AddressFamily preferred)
    {
        var own = Config.RlocAddresses;
        foreach (var a in own) if (a.AddressFamily == preferred) itrRlocs.Add(Lisp.Messages.LispAddress.FromIp(a));
        foreach (var a in own) if (a.AddressFamily != preferred) itrRlocs.Add(Lisp.Messages.LispAddress.FromIp(a));
    }
}
