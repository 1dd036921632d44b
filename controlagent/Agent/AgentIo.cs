using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;

namespace FastXtr.Agent;

/// <summary>
/// What every component of the agent shares: its configuration, database, counters and log, and the control socket
/// (UDP 4342 on the RLOC) that all of them send from.
/// </summary>
internal sealed class AgentIo(AgentConfig config, AgentDatabase database, AgentCounters counters, ILogger log, Socket socket)
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

    /// <summary>Told, in seconds, how long each answered Map-Request took from its first send (the metrics' histogram).</summary>
    public Action<double>? MapRequestAnswered { get; set; }

    public static long NowMs => Environment.TickCount64;

    public static ulong NewNonce() => BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));

    /// <summary>Sends one datagram; a failure is logged (the caller's retransmission, if any, tries again).</summary>
    public void Send(ReadOnlySpan<byte> datagram, IPEndPoint to)
    {
        try { socket.SendTo(datagram, SocketFlags.None, to); }
        catch (SocketException e) { AgentLog.SendFailed(Log, to, e.Message); }
    }

    /// <summary>Sends one datagram and lets a <see cref="SocketException"/> reach the caller.</summary>
    public void SendOrThrow(byte[] datagram, IPEndPoint to) => socket.SendTo(datagram, to);
}
