using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using FastXtr.Lisp.Context;
using FastXtr.Lisp.Messages;
using FastXtr.NativeInterop;

namespace FastXtr.Perf.Load;

/// <summary>
/// <c>mapserver-load update-publish TARGET KEY EIDS SUBSCRIBERS SECONDS RATES</c>: the draft's dynamic metadata updates
/// against a running Map-Server's publish/subscribe (RFC 9437). SUBSCRIBERS ITRs (xTR-IDs 1001.., each registered with
/// the site so that its publications can be signed) subscribe to each of EIDS agent EIDs, all from one socket. Then
/// attribute-only Map-Registers (the agent's state flips between ready and busy, locators unchanged; signed before the
/// clock starts, no Map-Notify asked) go out at RATE per second (0: as fast as possible) for SECONDS, for each of the
/// comma-separated RATES in turn, waiting between them until the Map-Server has published all it queued. Every publication
/// received is acknowledged with a signed Map-Notify-Ack (else the Map-Server would retransmit it and drop the
/// subscription). An update is complete when all SUBSCRIBERS publications for it have arrived; its latency runs from
/// its send to the last of them. Prints updates sent/s, publications/s, complete updates/s and the latency p50/p99.
/// With <c>--metrics URL</c> (the Map-Server's <c>--metrics</c> endpoint) also the Map-Server's own view of each rate:
/// the quantiles of <c>fastxtr_mapserver_publication_delay_seconds</c> (an update's arrival to its last publication's
/// send) over the run, from the histogram's buckets read before and after it, as Prometheus' histogram_quantile does.
/// </summary>
public static class UpdatePublish
{
    private const int Batch = 64;
    private const int DatagramBytes = 2048;
    private const ulong SubscriberXtrIdBase = 1000;
    private const int ItrPort = 24343;

    public static unsafe int Run(IPEndPoint target, byte[] key, int eids, int subscribers, double seconds, IReadOnlyList<double> rates, Uri? metrics = null)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        using var control = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        control.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        control.ReceiveBufferSize = 16 << 20;
        control.SendBufferSize = 8 << 20;
        using var itr = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        // A fixed port: a subscription is keyed by the subscriber's address and xTR-ID, so a later run replaces the
        // earlier run's subscriptions instead of adding to them (the Map-Server would publish to both).
        try { itr.Bind(new IPEndPoint(IPAddress.Loopback, ItrPort)); }
        catch (SocketException e)
        {
            Console.Error.WriteLine($"update-publish: cannot bind the subscribers' socket to 127.0.0.1:{ItrPort}: {e.Message}");
            return 1;
        }
        itr.ReceiveBufferSize = 64 << 20;
        itr.SendBufferSize = 8 << 20;

        // 1. The subscribers' xTR-IDs register one EID each (10.250.x.y), and the agents their EIDs (xTR-ID 1, ready).
        for (int s = 0; s < subscribers; s++)
            RegisterAndWait(control, target, Register(key, 1 + (ulong)s + SubscriberXtrIdBase, 0x0AFA0000u + (uint)s + 1, null, wantNotify: true));
        var ready = AgentContext.TryParse("""{"agent-context":{"state":"ready","load":10}}""", out _)!;
        var busy = AgentContext.TryParse("""{"agent-context":{"state":"busy","load":90}}""", out _)!;
        for (int e = 0; e < eids; e++) RegisterAndWait(control, target, Register(key, 1, MapServerLoad.EidOf(e), ready, wantNotify: true));

        // 3. The updates, signed before the clock starts: per EID one that makes it busy and one that makes it ready.
        var updates = new byte[2 * eids][];
        for (int e = 0; e < eids; e++)
        {
            updates[2 * e] = Register(key, 1, MapServerLoad.EidOf(e), busy, wantNotify: false);
            updates[2 * e + 1] = Register(key, 1, MapServerLoad.EidOf(e), ready, wantNotify: false);
        }
        // Per EID, how many updates it was sent: each flips its state, also across the rates (an update that set the
        // state it already had would change nothing, and nothing would be published).
        var flips = new int[eids];
        var buffer = new byte[65536];
        byte* sendMemory = (byte*)NativeMemory.AllocZeroed((nuint)(2 * Batch * DatagramBytes));
        byte* receiveMemory = (byte*)NativeMemory.AllocZeroed((nuint)(Batch * DatagramBytes));
        try
        {
            foreach (double r in rates)
            {
                // Subscribed again before each rate: a run that overloaded the Map-Server may have cost subscriptions
                // (a publication unacknowledged after its retransmissions ends one), and the next rate must start whole.
                Drain(itr, target, key, buffer);
                if (!Subscribe(itr, target, key, eids, subscribers)) return 1;
                string? before = metrics is null ? null : http.GetStringAsync(metrics).GetAwaiter().GetResult();
                Measure(target, key, eids, subscribers, seconds, r, updates, flips, control, itr, sendMemory, receiveMemory);
                if (before is not null) ReportServer(before, http.GetStringAsync(metrics!).GetAwaiter().GetResult(), metrics!);
                Drain(itr, target, key, buffer);
            }
        }
        finally
        {
            NativeMemory.Free(sendMemory);
            NativeMemory.Free(receiveMemory);
        }
        return 0;
    }

    private const string DelayMetric = FastXtr.Cli.RoleMetrics.PublicationDelayMetric + "_bucket{le=\"";

    /// <summary>The publication-delay histogram's cumulative bucket counts by upper bound (seconds; +Inf last).</summary>
    private static SortedList<double, double> DelayBuckets(string scrape, Uri metrics)
    {
        var buckets = new SortedList<double, double>();
        foreach (var line in scrape.Split('\n'))
        {
            if (!line.StartsWith(DelayMetric, StringComparison.Ordinal)) continue;
            int close = line.IndexOf('"', DelayMetric.Length);
            string le = line[DelayMetric.Length..close];
            buckets[le == "+Inf" ? double.PositiveInfinity : double.Parse(le, CultureInfo.InvariantCulture)] =
                double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        }
        if (buckets.Count == 0) throw new InvalidOperationException($"update-publish: {metrics} has no {FastXtr.Cli.RoleMetrics.PublicationDelayMetric} (is it the Map-Server's --metrics endpoint?)");
        return buckets;
    }

    /// <summary>The sum of the values of every sample whose line starts with <paramref name="prefix"/>.</summary>
    private static double Sum(string scrape, string prefix) =>
        scrape.Split('\n').Where(l => l.StartsWith(prefix, StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));

    /// <summary>
    /// The measured run at the Map-Server, from two scrapes: the publication delay's quantiles from the difference
    /// of the histogram's buckets (the bucket holding the quantile, interpolated linearly inside it: histogram_quantile's
    /// rule; a quantile in the +Inf bucket is given as the last finite bound), and its garbage collections.
    /// </summary>
    private static void ReportServer(string first, string second, Uri metrics)
    {
        var before = DelayBuckets(first, metrics);
        var after = DelayBuckets(second, metrics);
        var bounds = after.Keys;
        var counts = bounds.Select(b => after[b] - (before.TryGetValue(b, out double c) ? c : 0)).ToArray();
        double total = counts[^1];
        double Q(double q)
        {
            double rank = q * total;
            for (int i = 0; i < counts.Length; i++)
            {
                if (counts[i] < rank) continue;
                if (double.IsPositiveInfinity(bounds[i])) return bounds[i - 1] * 1e6;
                double lower = i == 0 ? 0 : bounds[i - 1], below = i == 0 ? 0 : counts[i - 1];
                return (lower + (bounds[i] - lower) * (counts[i] == below ? 1 : (rank - below) / (counts[i] - below))) * 1e6;
            }
            return double.NaN;
        }
        double Delta(string prefix) => Sum(second, prefix) - Sum(first, prefix);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  at the Map-Server: {total:F0} published updates, arrival to last publication sent p50 {Q(0.5):F0} us, p99 {Q(0.99):F0} us, p99.9 {Q(0.999):F0} us; "
            + $"{Delta("dotnet_collection_count_total"):F0} garbage collections pausing it {Delta("dotnet_gc_pause_seconds_total") * 1000:F0} ms"));
    }

    /// <summary>
    /// Until nothing has arrived for a second, acknowledges what the Map-Server still publishes (what it queued in an
    /// overloaded run, or retransmits from an earlier one), so that the next run starts from a quiet server.
    /// </summary>
    private static void Drain(Socket itr, IPEndPoint target, byte[] key, byte[] buffer)
    {
        itr.ReceiveTimeout = 1000;
        try
        {
            while (true)
            {
                int n = itr.Receive(buffer);
                if (n > 0 && buffer[0] >> 4 == (int)LispMessageType.MapNotify) Ack(buffer.AsSpan(0, n), itr, target, key);
            }
        }
        catch (SocketException) { }
    }

    /// <summary>Acknowledges one Map-Notify outside the measured runs (a subscription's, or a publication while draining), so it is not sent again.</summary>
    private static bool Ack(ReadOnlySpan<byte> datagram, Socket itr, IPEndPoint target, byte[] key)
    {
        var notify = new MapNotify();
        if (!notify.TryDecode(datagram).Ok) return false;
        notify.IsAck = true;
        itr.SendTo(notify.ToSignedArray(key), target);
        return true;
    }

    private static unsafe void Measure(IPEndPoint target, byte[] key, int eids, int subscribers, double seconds, double rate, byte[][] updates, int[] flips,
        Socket control, Socket itr, byte* sendMemory, byte* receiveMemory)
    {
        byte** receiveBuffers = stackalloc byte*[Batch];
        for (int i = 0; i < Batch; i++) receiveBuffers[i] = receiveMemory + i * DatagramBytes;
        using var outgoing = new MessageBatch(Batch);
        using var acks = new MessageBatch(Batch);
        using var incoming = new MessageBatch(Batch);
        incoming.PrepareReceive(receiveBuffers, DatagramBytes);
        uint targetAddress = BinaryPrimitives.ReadUInt32BigEndian(target.Address.GetAddressBytes());
        int controlFd = (int)control.Handle, itrFd = (int)itr.Handle;
        var sentAt = new long[eids];
        var published = new int[eids];
        var latencies = new List<double>(1 << 20);
        long sent = 0, publications = 0, complete = 0, superseded = 0, foreign = 0, failed = 0;
        var notify = new MapNotify();
        var siteKey = new SiteKey(0, AuthenticationAlgorithm.HmacSha256, key); // keeps its keyed HMAC state
        var pace = new OpenLoop(seconds, rate, Batch);
        int next = 0;
        while (true)
        {
            long now = Stopwatch.GetTimestamp();
            if (now >= pace.DrainUntil) break;
            if (now < pace.End)
            {
                int due = pace.Due(now, sent + failed);
                for (int k = 0; k < due; k++)
                {
                    int e = next;
                    next = (next + 1) % eids;
                    if (published[e] != 0 && published[e] < subscribers) superseded++; // its last update was not yet published to all
                    published[e] = 0;
                    sentAt[e] = now;
                    byte[] m = updates[2 * e + (flips[e]++ & 1)];
                    byte* slot = sendMemory + k * DatagramBytes;
                    m.CopyTo(new Span<byte>(slot, m.Length));
                    outgoing.Add(slot, m.Length, targetAddress, (ushort)target.Port);
                }
                if (due > 0)
                {
                    sent += outgoing.Send(controlFd, out int lost);
                    failed += lost;
                }
            }
            int got;
            while ((got = incoming.Receive(itrFd)) > 0)
            {
                long at = Stopwatch.GetTimestamp();
                for (int k = 0; k < got; k++)
                {
                    int length = incoming.Length(k);
                    var datagram = new Span<byte>(receiveBuffers[k], length);
                    if (length < 4 || datagram[0] >> 4 != (int)LispMessageType.MapNotify || !notify.TryDecode(datagram).Ok || notify.Records.Count != 1
                        || !EidAddress.TryRead(notify.Records[0].EidPrefix, out _, out _, out UInt128 eid))
                    {
                        foreign++;
                        continue;
                    }
                    // The acknowledgement: the same message as type 5, signed again (RFC 9301 §5.7).
                    byte* ack = sendMemory + (Batch + acks.Count) * DatagramBytes;
                    datagram.CopyTo(new Span<byte>(ack, length));
                    ack[0] = (byte)((int)LispMessageType.MapNotifyAck << 4 | (ack[0] & 0x0F));
                    MessageAuthentication.Sign(new Span<byte>(ack, length), AuthenticationAlgorithm.HmacSha256, siteKey);
                    acks.Add(ack, length, targetAddress, (ushort)target.Port);
                    publications++;
                    int index = (int)((uint)eid - MapServerLoad.EidOf(0));
                    if ((uint)index < (uint)eids && ++published[index] == subscribers)
                    {
                        complete++;
                        latencies.Add((at - sentAt[index]) * 1e6 / Stopwatch.Frequency);
                    }
                }
                if (acks.Count > 0) acks.Send(itrFd, out _);
            }
        }
        latencies.Sort();
        double P(double q) => latencies.Count == 0 ? double.NaN : latencies[Math.Min(latencies.Count - 1, (int)(q * latencies.Count))];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"offered {(rate > 0 ? rate.ToString("F0", CultureInfo.InvariantCulture) : "full speed")}: sent {sent / seconds:F0} updates/s, publications {publications / seconds:F0}/s, complete {complete / seconds:F0} updates/s ({(sent == 0 ? 0 : 100.0 * complete / sent):F1}%, each to {subscribers} subscribers of {eids} EIDs), update to last publication p50 {P(0.5):F0} us, p99 {P(0.99):F0} us"));
        if (superseded + foreign + failed > 0)
            Console.Error.WriteLine($"update-publish: {superseded} update(s) superseded before all their publications arrived, {foreign} other datagram(s), {failed} not sent");
    }

    /// <summary>
    /// Every subscriber subscribes to every EID (a Map-Request with the subscribe bit and its xTR-ID), answered to the
    /// ITR socket with a Map-Reply and acknowledged with a Map-Notify (RFC 9437's subscribe procedure), which is acknowledged in turn;
    /// at most 256 outstanding. Returns once every subscription has both, so that no acknowledgement arrives in the
    /// measured run. A subscription that exists is replaced (same subscriber and xTR-ID). The nonces are random, as
    /// an xTR's are (RFC 9301 §5.2): each subscription's publications count up from its request's.
    /// </summary>
    private static bool Subscribe(Socket itr, IPEndPoint target, byte[] key, int eids, int subscribers)
    {
        var itrEndpoint = (IPEndPoint)itr.LocalEndPoint!;
        var buffer = new byte[65536];
        itr.ReceiveTimeout = 2000;
        int subscriptions = eids * subscribers, answered = 0, acknowledged = 0, asked = 0;
        while (answered < subscriptions || acknowledged < subscriptions)
        {
            while (asked < subscriptions && asked - Math.Min(answered, acknowledged) < 256)
            {
                int e = asked / subscribers, s = asked % subscribers;
                itr.SendTo(SubscribeRequest(itrEndpoint, (ulong)s + 1 + SubscriberXtrIdBase, MapServerLoad.EidOf(e), (ulong)Random.Shared.NextInt64()), target);
                asked++;
            }
            try
            {
                int n = itr.Receive(buffer);
                if (n == 0) continue;
                if (buffer[0] >> 4 == (int)LispMessageType.MapReply) answered++;
                else if (buffer[0] >> 4 == (int)LispMessageType.MapNotify && Ack(buffer.AsSpan(0, n), itr, target, key)) acknowledged++;
            }
            catch (SocketException)
            {
                Console.Error.WriteLine($"update-publish: of {subscriptions} subscriptions {answered} answered and {acknowledged} acknowledged, then nothing for 2 s");
                return false;
            }
        }
        return true;
    }

    /// <summary>A signed single-record Map-Register of one agent EID behind 192.0.2.2, with its context if any.</summary>
    internal static byte[] Register(byte[] key, ulong xtrId, uint eid, AgentContext? context, bool wantNotify)
    {
        var m = new MapRegister { Nonce = xtrId ^ eid, WantMapNotify = wantNotify, AlgorithmId = AuthenticationAlgorithm.HmacSha256, XtrIdPresent = true, XtrId = xtrId, SiteId = 1 };
        var rec = new MappingRecord { TtlMinutes = 1440, EidMaskLength = 32, Authoritative = true, EidPrefix = LispAddress.WithInstanceId(1000, LispAddress.FromIpv4(eid)) };
        var rloc = LispAddress.FromIpv4(0xC0000202);
        rec.Locators.Add(new LocatorRecord(context is null ? rloc : ContextEncoding.RlocWithContext(rloc, context), 1, 100));
        m.Records.Add(rec);
        return m.ToSignedArray(key);
    }

    private static void RegisterAndWait(Socket socket, IPEndPoint target, byte[] message)
    {
        var buffer = new byte[4096];
        socket.ReceiveTimeout = 2000;
        for (int attempt = 0; attempt < 3; attempt++)
        {
            socket.SendTo(message, target);
            try
            {
                if (socket.Receive(buffer) > 0 && buffer[0] >> 4 == (int)LispMessageType.MapNotify) return;
            }
            catch (SocketException) { }
        }
        throw new InvalidOperationException("update-publish: the Map-Server did not confirm a registration (is the key right, and 10.0.0.0/8 in its site?)");
    }

    /// <summary>An ITR's Map-Request for one agent EID in an ECM; with <paramref name="subscribe"/>, the N bit and the xTR-ID.</summary>
    internal static byte[] SubscribeRequest(IPEndPoint itr, ulong xtrId, uint eid, ulong nonce, bool subscribe = true)
    {
        var request = new MapRequest { Nonce = nonce, XtrIdPresent = subscribe, XtrId = xtrId, SiteId = 1 };
        request.ItrRlocs.Add(LispAddress.FromIp(itr.Address));
        request.Records.Add(new MapRequestRecord(LispAddress.WithInstanceId(1000, LispAddress.FromIpv4(eid)), 32, subscribe));
        var ecm = new EncapsulatedControlMessage { InnerSourcePort = (ushort)itr.Port };
        ecm.SetInnerAddresses(itr.Address, IPAddress.Parse("10.0.0.1"));
        ecm.SetInnerMessage(request.ToArray());
        return ecm.ToArray();
    }
}
