using System.Net;
using System.Net.Sockets;
using FastXtr.Lisp.Messages;
using FastXtr.NativeInterop;
using FastXtr.Packets;
using FastXtr.SharedMemory.MapCache;

namespace FastXtr.Agent;

/// <summary>
/// An xTR behind NAT that a Map-Server gave RTRs (draft-ietf-lisp-nat-traversal §6): every
/// <see cref="AgentConfig.NatKeepalive"/>, for each EID prefix of its database and each RTR, an Info-Request signed
/// with the site's key (the first Map-Server's), sent from the data plane's port to the RTR's data port. The NAT
/// translates it like the data, so the RTR learns the address and port that reach this xTR's data plane, and the NAT
/// keeps that binding alive. The datagram leaves through a raw socket, because the data plane holds the port; the
/// answer-less exchange needs none back. Nonces rise with the clock (milliseconds, then a counter), which is how the
/// RTR refuses a replay; TTL 1 (minute) asks the RTR to keep the binding, TTL 0 withdraws the prefix (detached).
/// IPv4 only, like NAT traversal itself.
/// </summary>
internal sealed class NatKeepalive(AgentIo io) : IDisposable
{
    private readonly object _lock = new();
    private int _raw = -1;
    private bool _rawFailed;
    private ulong _lastNonce;

    /// <summary>Keeps every prefix's binding at every RTR (the periodic round).</summary>
    public void Round()
    {
        var rtrs = io.Rtrs;
        if (rtrs.Count == 0) return;
        foreach (var m in io.Database.All) Send(m, rtrs, keep: true);
    }

    /// <summary>A prefix that became this xTR's: its binding is told at once.</summary>
    public void Announce(DatabaseMapping m)
    {
        if (io.Rtrs is { Count: > 0 } rtrs) Send(m, rtrs, keep: true);
    }

    /// <summary>A prefix that left this xTR: the RTRs drop its binding at once (TTL 0).</summary>
    public void Withdraw(DatabaseMapping m)
    {
        if (io.Rtrs is { Count: > 0 } rtrs) Send(m, rtrs, keep: false);
    }

    private void Send(DatabaseMapping m, IReadOnlyList<IPAddress> rtrs, bool keep)
    {
        var own = io.Config.RlocOf(AddressFamily.InterNetwork);
        if (own is null || io.Config.MapServers.Count == 0) return;
        var key = io.Config.MapServers[0].Key;
        Span<byte> packet = stackalloc byte[1500];
        lock (_lock)
        {
            int fd = RawSocket();
            if (fd < 0) return;
            foreach (var rtr in rtrs)
            {
                ulong nonce = Math.Max(_lastNonce + 1, (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() << 16);
                _lastNonce = nonce;
                var request = new InfoMessage
                {
                    Nonce = nonce, TtlMinutes = keep ? 1u : 0u, EidMaskLength = (byte)m.Length,
                    EidPrefix = EidAddress.WithInstanceId(m.InstanceId, m.Family, m.Prefix),
                };
                byte[] message = request.ToSignedArray(key);
                int length = UdpHeader.WriteIpv4Datagram(packet, Ipv4Header.ToUInt32(own), Ipv4Header.ToUInt32(rtr), io.Config.DataPort, LispDataHeader.DataPort, message);
                int e = Sockets.SendRawIpv4(fd, packet[..length]);
                if (e != 0) AgentLog.SendFailed(io.Log, new IPEndPoint(rtr, LispDataHeader.DataPort), $"errno {e}");
                else io.Counters.Add(keep ? AgentCounter.NatKeepalivesSent : AgentCounter.NatWithdrawalsSent);
            }
        }
    }

    private int RawSocket()
    {
        if (_raw >= 0 || _rawFailed) return _raw;
        try { _raw = Sockets.OpenRawIpv4Sender(0); }
        catch (NativeException e)
        {
            _rawFailed = true;
            AgentLog.TaskFailed(io.Log, "nat-keepalive", $"{e.Message}: the RTRs cannot learn this xTR's data binding (run the agent as root or with CAP_NET_RAW)");
        }
        return _raw;
    }

    public void Dispose()
    {
        lock (_lock)
        {
            Sockets.Close(_raw);
            _raw = -1;
        }
    }
}
