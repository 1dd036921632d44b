using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using FastXtr.NativeInterop;
using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;

namespace FastXtr.Perf.Load;

/// <summary>
/// Load generator for a running <c>fastxtr mapserver</c> on loopback (scripts/bench-mapserver.sh drives it):
/// <list type="bullet">
/// <item><c>register TARGET KEY COUNT [RECORDS-PER-MESSAGE]</c>: registers COUNT host EIDs [1000]10.x.y.z/32 with
/// HMAC-SHA-256 Map-Registers, as fast as the server acknowledges them, and prints registrations/s and messages/s.</item>
/// <item><c>request TARGET EIDS SECONDS RATE SOURCES</c>: sends ECM Map-Requests for random registered EIDs from
/// SOURCES loopback addresses (127.0.1.x) at RATE per second (0: as fast as possible, in batches of 32), and prints
/// answered/s and the p50/p99 latency, measured from the send time carried in each nonce.</item>
/// <item><c>register-rate TARGET KEY EIDS SECONDS RATE [--context]</c>: re-registers EIDS host EIDs (the refreshes of a site's
/// xTRs) with single-record, want-map-notify Map-Registers signed before the clock starts, at RATE per second (0: as
/// fast as possible, in batches of 32), and prints sent/s and Map-Notifies/s. With <c>--context</c> each locator
/// carries an agent context (the draft's attributes, as an agent re-registers them unchanged).</item>
/// </list>
/// Bounded in time and count, loopback only.
/// </summary>
public static class MapServerLoad
{
    public static int Run(string[] args)
    {
        // Options after the positional arguments: --first N (the first EID index, so that several Map-Servers hold
        // different ranges), --kill PID --kill-at SECONDS (request: SIGKILL a process during the run, for failover),
        // --context (register-rate), --metrics URL (update-publish).
        var positional = new List<string>();
        int first = 0, killPid = 0;
        double killAt = -1;
        bool context = false;
        Uri? metrics = null;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--first": first = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--kill": killPid = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--kill-at": killAt = double.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--context": context = true; break;
                case "--metrics": metrics = new Uri(args[++i]); break;
                default: positional.Add(args[i]); break;
            }
        }
        var a = positional.ToArray();
        if (a.Length >= 4 && a[0] == "register")
            return Register(MapServerEndpoint(a[1]), System.Text.Encoding.UTF8.GetBytes(a[2]), int.Parse(a[3], CultureInfo.InvariantCulture), a.Length > 4 ? int.Parse(a[4], CultureInfo.InvariantCulture) : 1, first);
        if (a.Length >= 6 && a[0] == "request")
            return Request(MapServerEndpoint(a[1]), int.Parse(a[2], CultureInfo.InvariantCulture), double.Parse(a[3], CultureInfo.InvariantCulture),
                double.Parse(a[4], CultureInfo.InvariantCulture), int.Parse(a[5], CultureInfo.InvariantCulture), first, killPid, killAt);
        if (a.Length >= 6 && a[0] == "register-rate")
            return RegisterRate(MapServerEndpoint(a[1]), System.Text.Encoding.UTF8.GetBytes(a[2]), int.Parse(a[3], CultureInfo.InvariantCulture),
                double.Parse(a[4], CultureInfo.InvariantCulture), double.Parse(a[5], CultureInfo.InvariantCulture), context);
        if (a.Length >= 7 && a[0] == "update-publish")
            return UpdatePublish.Run(MapServerEndpoint(a[1]), System.Text.Encoding.UTF8.GetBytes(a[2]), int.Parse(a[3], CultureInfo.InvariantCulture),
                int.Parse(a[4], CultureInfo.InvariantCulture), double.Parse(a[5], CultureInfo.InvariantCulture), a[6].Split(',').Select(r => double.Parse(r, CultureInfo.InvariantCulture)).ToList(),
                metrics);
        Console.Error.WriteLine("usage: mapserver-load register TARGET KEY COUNT [RECORDS-PER-MESSAGE] [--first N] | request TARGET EIDS SECONDS RATE SOURCES [--first N] [--kill PID --kill-at SECONDS]"
            + " | register-rate TARGET KEY EIDS SECONDS RATE [--context] | update-publish TARGET KEY EIDS SUBSCRIBERS SECONDS RATE[,RATE...] [--metrics URL]");
        return 2;
    }

    private static IPEndPoint MapServerEndpoint(string s) => IPEndPoint.Parse(s);

    public static uint EidOf(int i) => 0x0A000000u + (uint)i + 1;

    private static int Register(IPEndPoint target, byte[] key, int count, int perMessage, int first)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        socket.ReceiveBufferSize = 8 << 20;
        socket.SendBufferSize = 8 << 20;
        socket.ReceiveTimeout = 2000;
        byte[] buffer = new byte[65536];
        var sw = Stopwatch.StartNew();
        int messages = 0, window = 64, inFlight = 0, acked = 0, sent = 0;
        while (acked * perMessage < count)
        {
            while (inFlight < window && sent * perMessage < count)
            {
                var m = new MapRegister { Nonce = (ulong)sent, WantMapNotify = true, AlgorithmId = AuthenticationAlgorithm.HmacSha256, XtrIdPresent = true, XtrId = 1, SiteId = 1 };
                for (int r = 0; r < perMessage && sent * perMessage + r < count; r++)
                {
                    var rec = new MappingRecord { TtlMinutes = 1440, EidMaskLength = 32, Authoritative = true, EidPrefix = LispAddress.WithInstanceId(1000, LispAddress.FromIpv4(EidOf(first + sent * perMessage + r))) };
                    rec.Locators.Add(new LocatorRecord(LispAddress.FromIpv4(0xC0000202), 1, 100));
                    m.Records.Add(rec);
                }
                socket.SendTo(m.ToSignedArray(key), target);
                sent++;
                inFlight++;
                messages++;
            }
            try
            {
                socket.Receive(buffer);
                acked++;
                inFlight--;
            }
            catch (SocketException)
            {
                Console.Error.WriteLine($"register: no Map-Notify for 2 s after {acked} acknowledged messages; resending the window");
                inFlight = 0;
                sent = acked;
            }
        }
        double s = sw.Elapsed.TotalSeconds;
        Console.WriteLine($"registered {count} EIDs in {messages} Map-Registers over {s:F2} s: {count / s:F0} registrations/s, {messages / s:F0} Map-Registers/s (HMAC-SHA-256, {perMessage} record(s) each)");
        return 0;
    }

    private const int SendBatch = 32;
    private const int ReceiveBatch = 64;
    private const int DatagramBytes = 2048;

    /// <summary>
    /// One thread on one core, so that no thread switch shows up as latency: each round sends the requests that are
    /// due (up to <see cref="SendBatch"/>, one sendmmsg) from the next of SOURCES sockets, then drains the replies
    /// (recvmmsg). Every request names one collecting socket as its ITR-RLOC and reply port, so the Map-Server's
    /// answers (RFC 9301 §5.4: to the first ITR-RLOC) all arrive on one socket while the requests come from many
    /// source addresses (rate limiting and SO_REUSEPORT spreading see SOURCES requesters).
    /// </summary>

    private static unsafe int RegisterRate(IPEndPoint target, byte[] key, int eids, double seconds, double rate, bool context)
    {
        var attributes = context ? AgentContext.TryParse("""{"agent-context":{"latency":"low","hardware":["gpu"],"state":"ready","load":40}}""", out _) : null;
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        socket.ReceiveBufferSize = 16 << 20;
        socket.SendBufferSize = 8 << 20;
        // Signed before the clock starts: the generator measures the server, not its own HMACs.
        var messages = new byte*[eids];
        var lengths = new int[eids];
        byte* memory = (byte*)NativeMemory.AllocZeroed((nuint)eids * DatagramBytes);
        for (int i = 0; i < eids; i++)
        {
            var m = new MapRegister { Nonce = (ulong)i, WantMapNotify = true, AlgorithmId = AuthenticationAlgorithm.HmacSha256, XtrIdPresent = true, XtrId = 1, SiteId = 1 };
            var rec = new MappingRecord { TtlMinutes = 1440, EidMaskLength = 32, Authoritative = true, EidPrefix = LispAddress.WithInstanceId(1000, LispAddress.FromIpv4(EidOf(i))) };
            var rloc = LispAddress.FromIpv4(0xC0000202);
            rec.Locators.Add(new LocatorRecord(attributes is null ? rloc : ContextEncoding.RlocWithContext(rloc, attributes), 1, 100));
            m.Records.Add(rec);
            byte[] signed = m.ToSignedArray(key);
            messages[i] = memory + (long)i * DatagramBytes;
            signed.CopyTo(new Span<byte>(messages[i], signed.Length));
            lengths[i] = signed.Length;
        }
        byte* receiveMemory = (byte*)NativeMemory.AllocZeroed((nuint)(ReceiveBatch * DatagramBytes));
        byte** receiveBuffers = stackalloc byte*[ReceiveBatch];
        for (int i = 0; i < ReceiveBatch; i++) receiveBuffers[i] = receiveMemory + i * DatagramBytes;
        using var outgoing = new MessageBatch(SendBatch);
        using var incoming = new MessageBatch(ReceiveBatch);
        incoming.PrepareReceive(receiveBuffers, DatagramBytes);
        int fd = (int)socket.Handle;
        uint targetAddress = BinaryPrimitives.ReadUInt32BigEndian(target.Address.GetAddressBytes());
        long sent = 0, failed = 0, notified = 0;
        var pace = new OpenLoop(seconds, rate, SendBatch);
        int next = 0;
        while (true)
        {
            long now = Stopwatch.GetTimestamp();
            if (now >= pace.DrainUntil) break;
            if (now < pace.End)
            {
                int n = pace.Due(now, sent + failed);
                for (int k = 0; k < n; k++)
                {
                    outgoing.Add(messages[next], lengths[next], targetAddress, (ushort)target.Port);
                    next = (next + 1) % eids;
                }
                if (n > 0)
                {
                    sent += outgoing.Send(fd, out int lost);
                    failed += lost;
                }
            }
            int got;
            while ((got = incoming.Receive(fd)) > 0)
                for (int k = 0; k < got; k++)
                    if (incoming.Length(k) > 0 && receiveBuffers[k][0] >> 4 == (int)LispMessageType.MapNotify) notified++;
        }
        NativeMemory.Free(memory);
        NativeMemory.Free(receiveMemory);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"sent {sent / seconds:F0} Map-Registers/s, notified {notified / seconds:F0}/s ({(sent == 0 ? 0 : 100.0 * notified / sent):F1}%; single record, HMAC-SHA-256, want-map-notify, {eids} EIDs re-registered)"));
        if (failed > 0) Console.Error.WriteLine($"register-rate: {failed} message(s) could not be sent");
        return 0;
    }

    private static unsafe int Request(IPEndPoint target, int eids, double seconds, double rate, int sources, int first, int killPid, double killAt)
    {
        using var collector = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        collector.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        collector.ReceiveBufferSize = 16 << 20;
        var replyTo = (IPEndPoint)collector.LocalEndPoint!;
        var sockets = new Socket[sources];
        byte[] template = [];
        for (int i = 0; i < sources; i++)
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            s.Bind(new IPEndPoint(new IPAddress(new byte[] { 127, 0, 1, (byte)(i % 250 + 2) }), 0));
            s.SendBufferSize = 4 << 20;
            sockets[i] = s;
        }
        {
            var request = new MapRequest { Nonce = 0 };
            request.ItrRlocs.Add(LispAddress.FromIp(replyTo.Address));
            request.Records.Add(new MapRequestRecord(LispAddress.WithInstanceId(1000, LispAddress.FromIpv4(EidOf(0))), 32));
            var ecm = new EncapsulatedControlMessage { InnerSourcePort = (ushort)replyTo.Port };
            ecm.SetInnerAddresses(replyTo.Address, IPAddress.Parse("10.0.0.1"));
            ecm.SetInnerMessage(request.ToArray());
            template = ecm.ToArray();
            template[4 + 20 + 6] = 0; // inner UDP checksum 0 (allowed over IPv4): the patched fields need no re-sum
            template[4 + 20 + 7] = 0;
        }
        const int NonceOffset = 4 + 20 + 8 + 4;
        int eidOffset = template.Length - 4;
        uint targetAddress = BinaryPrimitives.ReadUInt32BigEndian(target.Address.GetAddressBytes());

        byte* sendBuffers = (byte*)NativeMemory.AllocZeroed((nuint)(SendBatch * DatagramBytes));
        byte* receiveMemory = (byte*)NativeMemory.AllocZeroed((nuint)(ReceiveBatch * DatagramBytes));
        byte** receiveBuffers = stackalloc byte*[ReceiveBatch];
        for (int i = 0; i < ReceiveBatch; i++) receiveBuffers[i] = receiveMemory + i * DatagramBytes;
        for (int i = 0; i < SendBatch; i++) template.CopyTo(new Span<byte>(sendBuffers + i * DatagramBytes, template.Length));
        using var outgoing = new MessageBatch(SendBatch);
        using var incoming = new MessageBatch(ReceiveBatch);
        incoming.PrepareReceive(receiveBuffers, DatagramBytes);
        int collectorFd = (int)collector.Handle;

        long sent = 0, received = 0, failed = 0;
        var latencies = new List<double>(1 << 22);
        double tickToUs = 1e6 / Stopwatch.Frequency;
        var pace = new OpenLoop(seconds, rate, SendBatch);
        var rng = new Random(5);
        int next = 0;
        // Failover: SIGKILL a process at killAt seconds; the requests sent after it are followed to their answers.
        long killAtTicks = killPid > 0 ? Stopwatch.GetTimestamp() + (long)(killAt * Stopwatch.Frequency) : long.MaxValue, killedAt = long.MaxValue;
        long sentAfterKill = 0, answeredAfterKill = 0, failoverTicks = 0;
        while (true)
        {
            long now = Stopwatch.GetTimestamp();
            if (now >= pace.DrainUntil) break;
            if (now >= killAtTicks)
            {
                killAtTicks = long.MaxValue;
                try { Process.GetProcessById(killPid).Kill(); } // SIGKILL on Linux
                catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception) { Console.Error.WriteLine($"request: kill {killPid} failed: {e.Message}"); }
                killedAt = Stopwatch.GetTimestamp();
            }
            if (now < pace.End)
            {
                int n = pace.Due(now, sent + failed);
                if (n > 0)
                {
                    for (int k = 0; k < n; k++)
                    {
                        var d = new Span<byte>(sendBuffers + k * DatagramBytes, template.Length);
                        // The send time, made unique within the batch (+k ns): a DDT Map-Resolver takes a nonce it has
                        // pending for an ITR's retransmission and drops it, as it should.
                        BinaryPrimitives.WriteUInt64BigEndian(d[NonceOffset..], (ulong)(now + k));
                        BinaryPrimitives.WriteUInt32BigEndian(d[eidOffset..], EidOf(first + rng.Next(eids)));
                        outgoing.Add(sendBuffers + k * DatagramBytes, template.Length, targetAddress, (ushort)target.Port);
                    }
                    int went = outgoing.Send((int)sockets[next].Handle, out int lost);
                    sent += went;
                    if (now >= killedAt) sentAfterKill += went;
                    failed += lost;
                    next = (next + 1) % sources;
                }
            }
            int got;
            while ((got = incoming.Receive(collectorFd)) > 0)
            {
                long at = Stopwatch.GetTimestamp();
                for (int k = 0; k < got; k++)
                {
                    if (incoming.Length(k) < 12 || receiveBuffers[k][0] >> 4 != 2) continue;
                    long sentAt = (long)BinaryPrimitives.ReadUInt64BigEndian(new ReadOnlySpan<byte>(receiveBuffers[k] + 4, 8));
                    latencies.Add((at - sentAt) * tickToUs);
                    received++;
                    // The failover time: how long after the death the requests sent in its first 100 ms were answered.
                    if (sentAt >= killedAt)
                    {
                        answeredAfterKill++;
                        if (sentAt - killedAt < Stopwatch.Frequency / 10) failoverTicks = Math.Max(failoverTicks, at - killedAt);
                    }
                }
            }
        }
        NativeMemory.Free(sendBuffers);
        NativeMemory.Free(receiveMemory);
        latencies.Sort();
        double p(double q) => latencies.Count == 0 ? double.NaN : latencies[Math.Min(latencies.Count - 1, (int)(q * latencies.Count))];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"sent {sent / seconds:F0}/s, answered {received / seconds:F0}/s ({(sent == 0 ? 0 : 100.0 * received / sent):F1}%), latency p50 {p(0.5):F0} us, p90 {p(0.9):F0} us, p99 {p(0.99):F0} us, p99.9 {p(0.999):F0} us, from {sources} sources"));
        if (killedAt != long.MaxValue)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"after the kill: {answeredAfterKill} of {sentAfterKill} answered; failover {failoverTicks * 1000.0 / Stopwatch.Frequency:F0} ms (the last answer to a request sent in the first 100 ms after the kill)"));
        if (failed > 0) Console.Error.WriteLine($"request: {failed} request(s) could not be sent");
        foreach (var s in sockets) s.Dispose();
        return 0;
    }
}

/// <summary>
/// An open-loop send schedule for the load generators: SECONDS of sending at RATE per second (0: a full batch every
/// turn), then half a second to collect the answers still on their way.
/// </summary>
internal readonly struct OpenLoop(double seconds, double rate, int batch)
{
    private readonly long _start = Stopwatch.GetTimestamp();
    public long End => _start + (long)(seconds * Stopwatch.Frequency);
    public long DrainUntil => End + Stopwatch.Frequency / 2;

    /// <summary>How many to send now, at most a batch, given <paramref name="done"/> sent (or failed) so far.</summary>
    public int Due(long now, long done) =>
        (int)Math.Min(rate > 0 ? (long)((now - _start) * rate / Stopwatch.Frequency) + 1 - done : batch, batch);
}
