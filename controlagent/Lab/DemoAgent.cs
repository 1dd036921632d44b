using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace FastXtr.Lab;

/// <summary>
/// The lab's demo agent (<c>fastxtr lab agent</c>), one process per agent namespace. It always serves: TCP
/// <see cref="TaskPort"/> answers numbered JSON task messages; UDP <see cref="DatagramPort"/> counts datagrams per
/// sender and records the arrival of probes (time, sequence, incoming link). With <c>--connect</c> it keeps one long-lived TCP session to a peer and
/// sends a task every <c>--task-interval-ms</c>, counting answers lost, duplicated or out of order; with
/// <c>--probe</c> it sends a probe datagram every millisecond. Its own counts go to <c>--report</c> (JSON, rewritten
/// every 100 ms) — the lab reads them as an observer independent of the xTRs.
/// </summary>
public sealed class DemoAgent : IDisposable
{
    public const int TaskPort = 7000;
    public const int DatagramPort = 7001;
    private readonly string _name;
    private readonly IPAddress _eid;
    private readonly string _reportPath;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly DateTime _startedUtc = DateTime.UtcNow;
    private readonly object _lock = new();
    private readonly Dictionary<string, long> _datagramsBySender = [];
    private readonly List<(double AtMs, long Seq, int Interface)> _probes = [];
    private readonly List<Thread> _threads = [];
    private volatile bool _stop;
    private TcpListener? _listener;
    private UdpClient? _udp;

    // Task session (client side).
    private long _tasksSent, _tasksAnswered, _tasksLost, _tasksDuplicated, _tasksReordered, _sessionBreaks, _tasksServed;
    private long _lastAnswered = -1;
    private string? _sessionError;
    private long _probesSent;

    public DemoAgent(string name, IPAddress eid, string reportPath)
    {
        _name = name;
        _eid = eid;
        _reportPath = reportPath;
    }

    public void Start(IPEndPoint? connect, int taskIntervalMs, IPEndPoint? probe)
    {
        _listener = new TcpListener(_eid, TaskPort);
        _listener.Start();
        _udp = new UdpClient(new IPEndPoint(_eid, DatagramPort));
        // Which link each probe came in on (IP_PKTINFO): during a move the agent is linked to both gateways.
        _udp.Client.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.PacketInformation, true);
        Spawn("serve-tasks", ServeTasks);
        Spawn("serve-datagrams", ServeDatagrams);
        Spawn("report", Report);
        if (connect is not null) Spawn("task-session", () => TaskSession(connect, taskIntervalMs));
        if (probe is not null) Spawn("probe", () => Probe(probe));
    }

    private void Spawn(string name, Action body)
    {
        var t = new Thread(() =>
        {
            try { body(); }
            catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException) { if (!_stop) Console.Error.WriteLine($"demo agent {_name}: {name}: {e.Message}"); }
        }) { IsBackground = true, Name = name };
        _threads.Add(t);
        t.Start();
    }

    private void ServeTasks()
    {
        while (!_stop)
        {
            var client = _listener!.AcceptTcpClient();
            Spawn("task-peer", () =>
            {
                using var c = client;
                c.NoDelay = true;
                using var stream = c.GetStream();
                using var reader = new StreamReader(stream, Encoding.UTF8);
                using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
                while (!_stop && reader.ReadLine() is string line)
                {
                    var task = JsonNode.Parse(line)!;
                    Interlocked.Increment(ref _tasksServed);
                    writer.WriteLine(new JsonObject { ["seq"] = task["seq"]!.GetValue<long>(), ["by"] = _name, ["result"] = "done" }.ToJsonString());
                }
            });
        }
    }

    private void ServeDatagrams()
    {
        byte[] buffer = new byte[2048];
        while (!_stop)
        {
            EndPoint from = new IPEndPoint(IPAddress.Any, 0);
            SocketFlags flags = SocketFlags.None;
            int n = _udp!.Client.ReceiveMessageFrom(buffer, ref flags, ref from, out IPPacketInformation info);
            double at = _clock.Elapsed.TotalMilliseconds; // before the lock, which the reporter may hold
            // "SENDER SEQ": probes come from sender "probe:NAME".
            string text = Encoding.ASCII.GetString(buffer, 0, n);
            int space = text.IndexOf(' ', StringComparison.Ordinal);
            string sender = space > 0 ? text[..space] : text;
            lock (_lock)
            {
                _datagramsBySender[sender] = _datagramsBySender.GetValueOrDefault(sender) + 1;
                if (sender.StartsWith("probe:", StringComparison.Ordinal) && space > 0 && long.TryParse(text[(space + 1)..], out long seq))
                    _probes.Add((at, seq, info.Interface));
            }
        }
    }

    private void TaskSession(IPEndPoint peer, int intervalMs)
    {
        using var client = new TcpClient(new IPEndPoint(_eid, 0)) { NoDelay = true };
        // The first SYN may meet a map-cache miss (dropped while the agent resolves); TCP sends it again.
        client.Connect(peer);
        using var stream = client.GetStream();
        using var reader = new StreamReader(stream, Encoding.UTF8);
        using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
        Spawn("task-answers", () =>
        {
            while (!_stop && reader.ReadLine() is string line)
            {
                long seq = JsonNode.Parse(line)!["seq"]!.GetValue<long>();
                lock (_lock)
                {
                    if (seq <= _lastAnswered) { if (seq == _lastAnswered) _tasksDuplicated++; else _tasksReordered++; continue; }
                    if (seq > _lastAnswered + 1) _tasksLost += seq - _lastAnswered - 1;
                    _lastAnswered = seq;
                    _tasksAnswered++;
                }
            }
            if (!_stop) { Interlocked.Increment(ref _sessionBreaks); _sessionError = "the peer closed the session"; }
        });
        long n = 0;
        while (!_stop)
        {
            try { writer.WriteLine(new JsonObject { ["seq"] = n, ["from"] = _name, ["task"] = "plan step" }.ToJsonString()); }
            catch (IOException e)
            {
                Interlocked.Increment(ref _sessionBreaks);
                _sessionError = e.Message;
                return;
            }
            Interlocked.Exchange(ref _tasksSent, ++n);
            Thread.Sleep(intervalMs);
        }
    }

    private void Probe(IPEndPoint peer)
    {
        using var udp = new UdpClient(new IPEndPoint(_eid, 0));
        long seq = 0;
        double next = _clock.Elapsed.TotalMilliseconds;
        while (!_stop)
        {
            double now = _clock.Elapsed.TotalMilliseconds;
            if (now < next) { Thread.Sleep(TimeSpan.FromMilliseconds(Math.Min(1, next - now))); continue; }
            byte[] probe = Encoding.ASCII.GetBytes($"probe:{_name} {seq++}");
            try { udp.Send(probe, probe.Length, peer); }
            catch (SocketException) { } // no route while the namespace is re-linked: the gap shows in the receiver's record
            Interlocked.Exchange(ref _probesSent, seq);
            next += 1.0;
            if (now - next > 50) next = now; // after a stall, do not burst
        }
    }

    private void Report()
    {
        while (!_stop)
        {
            WriteReport();
            Thread.Sleep(100);
        }
    }

    private readonly object _writeLock = new();

    public void WriteReport()
    {
        JsonObject doc;
        (double AtMs, long Seq, int Interface)[] probes;
        // Only copies under the lock: the receiving thread must not wait while tens of thousands of probes are encoded.
        lock (_lock)
        {
            probes = _probes.ToArray();
            doc = new JsonObject
            {
                ["name"] = _name, ["eid"] = _eid.ToString(), ["pid"] = Environment.ProcessId,
                ["started_utc"] = _startedUtc.ToString("O"), ["elapsed_ms"] = _clock.Elapsed.TotalMilliseconds,
                ["tasks"] = new JsonObject
                {
                    ["sent"] = Interlocked.Read(ref _tasksSent), ["answered"] = _tasksAnswered, ["lost"] = _tasksLost,
                    ["duplicated"] = _tasksDuplicated, ["reordered"] = _tasksReordered, ["session_breaks"] = Interlocked.Read(ref _sessionBreaks),
                    ["session_error"] = _sessionError, ["served"] = Interlocked.Read(ref _tasksServed),
                },
                ["datagrams_by_sender"] = new JsonObject(_datagramsBySender.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
                ["probes_sent"] = Interlocked.Read(ref _probesSent),
            };
        }
        doc["probes"] = new JsonArray(probes.Select(p => (JsonNode)new JsonArray(Math.Round(p.AtMs, 3), p.Seq, p.Interface)).ToArray());
        // One writer at a time: the report thread and Dispose's last report both write the one temporary file, and two
        // writes interleaved there left a report that does not parse (seen once in CI, as "'[' is invalid after a
        // single JSON value" in the lab tests that read the reports afterwards).
        lock (_writeLock)
        {
            string tmp = _reportPath + ".tmp";
            File.WriteAllText(tmp, doc.ToJsonString());
            File.Move(tmp, _reportPath, overwrite: true);
        }
    }

    public void Dispose()
    {
        _stop = true;
        _listener?.Stop();
        _udp?.Dispose();
        try { WriteReport(); }
        catch (IOException) { }
    }

    /// <summary><c>fastxtr lab send</c>: sends COUNT datagrams "SENDER SEQ" from this namespace, one every interval.</summary>
    public static JsonObject Send(string sender, IPEndPoint to, int count, int intervalMs)
    {
        using var udp = new UdpClient();
        int sent = 0, errors = 0;
        string? lastError = null;
        for (int i = 0; i < count; i++)
        {
            byte[] data = Encoding.ASCII.GetBytes($"{sender} {i}");
            try { udp.Send(data, data.Length, to); sent++; }
            catch (SocketException e) { errors++; lastError = e.Message; }
            Thread.Sleep(intervalMs);
        }
        return new JsonObject { ["sender"] = sender, ["to"] = to.ToString(), ["sent"] = sent, ["errors"] = errors, ["last_error"] = lastError };
    }

    public static JsonSerializerOptions JsonOptions { get; } = new() { WriteIndented = true };
}
