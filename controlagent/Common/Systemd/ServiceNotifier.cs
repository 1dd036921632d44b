using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace FastXtr.Common.Systemd;

/// <summary>
/// The sd_notify protocol (sd_notify(3)): one datagram of <c>KEY=VALUE</c> lines to the Unix socket systemd names in
/// <c>NOTIFY_SOCKET</c> (a path, or an abstract name written with a leading '@'). A unit with <c>Type=notify</c> is
/// started once READY=1 arrives, which each role sends only when its sockets are bound and its region attached.
/// Outside systemd (no NOTIFY_SOCKET) every call does nothing; a socket that refuses is ignored, since the role
/// runs the same either way.
/// </summary>
public static class ServiceNotifier
{
    /// <summary>Whether a service manager is listening (NOTIFY_SOCKET is set).</summary>
    public static bool Enabled => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NOTIFY_SOCKET"));

    /// <summary>READY=1, with a status line that <c>systemctl status</c> shows.</summary>
    public static bool Ready(string? status = null) => Notify(status is null ? "READY=1" : $"READY=1\nSTATUS={status}");

    /// <summary>RELOADING=1 with the monotonic time in microseconds (what systemd 253's Type=notify-reload also asks for).</summary>
    public static bool Reloading() =>
        Notify($"RELOADING=1\nMONOTONIC_USEC={Stopwatch.GetTimestamp() / (Stopwatch.Frequency / 1_000_000)}");

    public static bool Stopping() => Notify("STOPPING=1");

    /// <summary>Sends one notification; false when there is no service manager or it could not be reached.</summary>
    public static bool Notify(string state)
    {
        string? path = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (string.IsNullOrEmpty(path)) return false;
        if (path[0] == '@') path = "\0" + path[1..];
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            socket.Connect(new UnixDomainSocketEndPoint(path));
            socket.Send(Encoding.UTF8.GetBytes(state));
            return true;
        }
        catch (SocketException) { return false; }
    }
}
