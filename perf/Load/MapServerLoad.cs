using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using FastXtr.ControlAgent.Messages;

namespace FastXtr.Perf.Load;

/// <summary>
/// Load generator for a running <c>fastxtr mapserver</c> on loopback (scripts/bench-mapserver.sh drives it):
/// <list type="bullet">
/// <item><c>register TARGET KEY COUNT [RECORDS-PER-MESSAGE]</c>: registers COUNT host EIDs [1000]10.x.y.z/32 with
/// HMAC-SHA-256 Map-Registers, as fast as the server acknowledges them, and prints registrations/s and messages/s.</item>
/// <item><c>request TARGET EIDS SECONDS RATE SOURCES</c>: sends ECM Map-Requests for random registered EIDs from
/// SOURCES loopback addresses (127.0.1.x) at RATE per second (0: as fast as possible), and prints answered/s and the
/// p50/p99 latency, measured from the send time carried in each nonce.</item>
/// </list>
/// Bounded in time and count, loopback only.
/// </summary>
public static class MapServerLoad
{
    public static int Run(string[] args)
    {
        if (args.Length >= 4 && args[0] == "register")
            return Register(MapServerEndpoint(args[1]), System.Text.Encoding.UTF8.GetBytes(args[2]), int.Parse(args[3], CultureInfo.InvariantCulture), args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 1);
        if (args.Length >= 6 && args[0] == "request")
            return Request(MapServerEndpoint(args[1]), int.Parse(args[2], CultureInfo.InvariantCulture), double.Parse(args[3], CultureInfo.InvariantCulture),
                double.Parse(args[4], CultureInfo.InvariantCulture), int.Parse(args[5], CultureInfo.InvariantCulture));
        Console.Error.WriteLine("usage: mapserver-load register TARGET KEY COUNT [RECORDS-PER-MESSAGE] | request TARGET EIDS SECONDS RATE SOURCES");
        return 2;
    }

    private static IPEndPoint MapServerEndpoint(string s) => IPEndPoint.Parse(s);

    public static uint EidOf(int i) => 0x0A000000u + (uint)i + 1;

    private static int Register(IPEndPoint target, byte[] key, int count, int perMessage)
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
                    var rec = new MappingRecord { TtlMinutes = 1440, EidMaskLength = 32, Authoritative = true, EidPrefix = LispAddress.WithInstanceId(1000, LispAddress.FromIpv4(EidOf(sent * perMessage + r))) };
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

    private static int Request(IPEndPoint target, int eids, double seconds, double rate, int sources)
    {
        var sockets = new Socket[sources];
        var templates = new byte[sources][];
        for (int i = 0; i < sources; i++)
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { Blocking = false };
            s.Bind(new IPEndPoint(new IPAddress(new byte[] { 127, 0, 1, (byte)(i % 250 + 2) }), 0));
            s.ReceiveBufferSize = 4 << 20;
            sockets[i] = s;
            var local = (IPEndPoint)s.LocalEndPoint!;
            var request = new MapRequest { Nonce = 0 };
            request.ItrRlocs.Add(LispAddress.FromIp(local.Address));
            request.Records.Add(new MapRequestRecord(LispAddress.WithInstanceId(1000, LispAddress.FromIpv4(EidOf(0))), 32));
            var ecm = new EncapsulatedControlMessage { InnerSourcePort = (ushort)local.Port };
            ecm.SetInnerAddresses(local.Address, IPAddress.Parse("10.0.0.1"));
            ecm.SetInnerMessage(request.ToArray());
            templates[i] = ecm.ToArray();
            templates[i][4 + 20 + 6] = 0; // inner UDP checksum 0 (allowed over IPv4): the patched fields need no re-sum
            templates[i][4 + 20 + 7] = 0;
        }
        const int NonceOffset = 4 + 20 + 8 + 4;
        int eidOffset = templates[0].Length - 4;
        long sent = 0, received = 0;
        var latencies = new List<double>(1 << 20);
        bool stop = false;
        double tickToUs = 1e6 / Stopwatch.Frequency;
        long start = Stopwatch.GetTimestamp();
        long end = start + (long)(seconds * Stopwatch.Frequency);
        var receiver = new Thread(() =>
        {
            byte[] buffer = new byte[2048];
            var any = new IPEndPoint(IPAddress.Any, 0);
            EndPoint from = any;
            while (!Volatile.Read(ref stop))
            {
                bool got = false;
                foreach (var s in sockets)
                {
                    // Available (FIONREAD) instead of a failing non-blocking receive: an exception per empty poll
                    // would cost more than the Map-Server's whole answer and show up as latency.
                    while (s.Available > 0)
                    {
                        int n;
                        try { n = s.ReceiveFrom(buffer, ref from); }
                        catch (SocketException) { break; }
                        got = true;
                        if (n < 12 || buffer[0] >> 4 != 2) continue;
                        long sentAt = (long)BinaryPrimitives.ReadUInt64BigEndian(buffer.AsSpan(4));
                        long now = Stopwatch.GetTimestamp();
                        if (now < end + Stopwatch.Frequency) lock (latencies) latencies.Add((now - sentAt) * tickToUs);
                        Interlocked.Increment(ref received);
                    }
                }
                if (!got) Thread.SpinWait(20);
            }
        }) { IsBackground = true };
        receiver.Start();
        var rng = new Random(5);
        long interval = rate > 0 ? (long)(Stopwatch.Frequency / rate) : 0;
        long next = start;
        while (true)
        {
            long now = Stopwatch.GetTimestamp();
            if (now >= end) break;
            // Yield while waiting: the receiver shares this core, and a spinning sender would starve it for a whole
            // scheduler time slice, which would show up as milliseconds of false latency.
            if (interval > 0 && now < next) { Thread.Yield(); continue; }
            int i = (int)(sent % sources);
            byte[] t = templates[i];
            BinaryPrimitives.WriteUInt64BigEndian(t.AsSpan(NonceOffset), (ulong)now);
            BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(eidOffset), EidOf(rng.Next(eids)));
            try { sockets[i].SendTo(t, target); sent++; }
            catch (SocketException) { Thread.SpinWait(50); }
            next += interval;
        }
        Thread.Sleep(500);
        Volatile.Write(ref stop, true);
        receiver.Join();
        latencies.Sort();
        double p(double q) => latencies.Count == 0 ? double.NaN : latencies[Math.Min(latencies.Count - 1, (int)(q * latencies.Count))];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"sent {sent / seconds:F0}/s, answered {received / seconds:F0}/s ({(sent == 0 ? 0 : 100.0 * received / sent):F1}%), latency p50 {p(0.5):F0} us, p99 {p(0.99):F0} us, from {sources} sources"));
        foreach (var s in sockets) s.Dispose();
        return 0;
    }
}
