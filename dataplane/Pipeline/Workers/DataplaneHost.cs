using FastXtr.Dataplane.Ports;
using FastXtr.Dataplane.Encap;
using FastXtr.SharedMemory;
using FastXtr.NativeInterop;
using Microsoft.Extensions.Logging;

namespace FastXtr.Dataplane.Workers;

/// <summary>
/// Starts a data plane: checks the options, creates or attaches the shared region (an existing region of this
/// layout is kept, so the map-cache survives a data-plane restart), opens every instance's TUN with one queue per
/// worker, starts the workers on their CPUs and stops them on request. Every failure here is a
/// <see cref="DataplaneStartException"/> whose message names the cause.
/// </summary>
public sealed class DataplaneHost : IDisposable
{
    private readonly List<TunDevice> _tuns = [];
    private readonly List<XdpProgram> _programs = [];
    private readonly List<Worker> _workers = [];
    private readonly List<Thread> _threads = [];
    private readonly ILogger _log;

    private DataplaneHost(DataplaneOptions options, SharedRegion region, ILogger log)
    {
        Options = options;
        Region = region;
        _log = log;
    }

    public DataplaneOptions Options { get; }
    public SharedRegion Region { get; }
    /// <summary>fastxtr rtr: each worker's control messages from the data port (empty for an xTR).</summary>
    public IReadOnlyList<ControlInbox> ControlInboxes { get; private set; } = [];

    public static DataplaneHost Start(DataplaneOptions options, ILogger log)
    {
        var problems = options.Problems();
        if (problems.Count > 0) throw new DataplaneStartException(string.Join(Environment.NewLine, problems));
        bool existed = File.Exists(SharedMemoryMapping.PathFor(options.SharedMemoryName));
        SharedRegion region = OpenRegion(options, log);
        var host = new DataplaneHost(options, region, log);
        try
        {
            var rings = new List<PacketRing>[options.Workers];
            var xsks = new List<IReadOnlyList<XdpSocket>>[options.Workers];
            var links = new List<NetInterface>();
            var neighbors = new List<NeighborTable>();
            if (options.Mode == IoMode.AfXdp) host.OpenXdpSockets(xsks, links, neighbors);
            else if (options.Mode == IoMode.Tun)
            {
                foreach (var instance in options.Instances)
                {
                    try
                    {
                        var tun = TunDevice.Open(instance.Interface, options.Workers, options.Offload);
                        host._tuns.Add(tun);
                        tun.SetQueueLength(options.TunQueueLength);
                    }
                    catch (NativeException e) { throw new DataplaneStartException($"instance {instance.InstanceId}: {e.Message}"); }
                }
            }
            else
            {
                // One ring per worker on each instance's interface; with several workers they form a fanout group
                // (one id per interface) so that a flow always reaches the same worker.
                for (int w = 0; w < options.Workers; w++) rings[w] = [];
                for (int k = 0; k < options.Instances.Count; k++)
                {
                    var instance = options.Instances[k];
                    neighbors.Add(new NeighborTable());
                    int group = options.Workers > 1 ? (Environment.ProcessId * 31 + k) & 0xFFFF : -1;
                    for (int w = 0; w < options.Workers; w++)
                    {
                        try { rings[w].Add(PacketRing.Open(instance.Interface, options.RxRingFrames, options.TxRingFrames, group)); }
                        catch (NativeException e)
                        {
                            foreach (var opened in rings.Where(r => r is not null).SelectMany(r => r)) opened.Dispose();
                            throw new DataplaneStartException($"instance {instance.InstanceId}: {e.Message}");
                        }
                    }
                    if (ForwardingOn(instance.Interface))
                        DataplaneLog.KernelForwards(log, instance.Interface);
                }
            }
            try
            {
                if (options.RlocAddress != 0) Sockets.EnsureUdp4PortFree(options.RlocAddress, options.Port, "another data plane or a LISP daemon holds it");
                if (options.RlocAddress6 != 0) Sockets.EnsureUdp6PortFree(options.RlocAddress6, options.Port, "another data plane or a LISP daemon holds it");
            }
            catch (NativeException e) { throw new DataplaneStartException(e.Message); }
            if (options.Rtr) host.ControlInboxes = Enumerable.Range(0, options.Workers).Select(_ => new ControlInbox()).ToList();
            for (int w = 0; w < options.Workers; w++)
            {
                try
                {
                    host._workers.Add(new Worker(w, options, region, host._tuns, rings[w], neighbors, xsks[w], links, host._underlay.Length > 0 ? host._underlay[w] : null, host._nextHops,
                        options.Rtr ? host.ControlInboxes[w] : null));
                    xsks[w] = []; // the worker's port owns them now
                    if (host._underlay.Length > 0) host._underlay[w] = [];
                }
                catch (NativeException e) { throw new DataplaneStartException($"worker {w}: {e.Message}"); }
                finally
                {
                    foreach (var s in (xsks[w] ?? []).SelectMany(s => s)) s.Dispose();
                    if (host._underlay.Length > 0) foreach (var s in host._underlay[w]) s.Dispose();
                }
            }
            if (host._nextHops is { } hops) host._nextHopTimer = new Timer(_ => hops.Refresh(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
            region.Header.ActiveWorkers = (uint)options.Workers;
            region.Header.DataplanePid = Environment.ProcessId;
            UseBlockingCollections();
            for (int w = 0; w < options.Workers; w++)
            {
                int index = w;
                var thread = new Thread(() => host.RunWorker(index)) { IsBackground = true, Name = $"fastxtr-worker-{w}" };
                host._threads.Add(thread);
                thread.Start();
            }
            DataplaneLog.Started(log, options.Workers, string.Join(" and ", new[]
                {
                    options.RlocAddress != 0 ? $"{Sockets.FormatIpv4(options.RlocAddress)}:{options.Port}" : null,
                    options.RlocAddress6 != 0 ? $"[{Sockets.FormatIpv6(options.RlocAddress6)}]:{options.Port}{(options.ZeroChecksum6 ? " (UDP checksum 0)" : "")}" : null,
                }.Where(a => a is not null)),
                options.Rtr ? "none (RTR: every Instance ID re-encapsulated)" : string.Join(", ", options.Instances.Select(i => $"{i.InstanceId}={i.Interface}")),
                options.Mode switch
                {
                    IoMode.AfPacket => $" (af-packet rings, {options.RxRingFrames} rx frames and {options.TxRingFrames} tx slots per worker)",
                    IoMode.AfXdp => $" (af-xdp: {host._xdpSummary})",
                    _ => $" (TUN queue {options.TunQueueLength} packets)",
                },
                region.Path, (int)region.Sizes.EntryCapacity, options.Batch, options.OuterMtu, options.DecapFilter ? ", decap-filter on" : "",
                options.BusyPollMicroseconds > 0 ? $"{options.BusyPollMicroseconds} us" : "off", host._workers.Count > 0 ? host._workers[0].OffloadSummary : "off");
            return host;
        }
        catch
        {
            host.Dispose();
            // A start that failed leaves no region behind that it made itself (one it attached to keeps its entries).
            if (!existed) SharedMemoryMapping.Unlink(options.SharedMemoryName);
            throw;
        }
    }

    private string _xdpSummary = "";

    /// <summary>
    /// No background garbage collections in this process, so that each worker's <c>worker-allocated-bytes</c> counts
    /// only what it allocated. The end of a background collection's marking voids every thread's allocation context
    /// without taking its unused part out of the thread's allocated bytes (the runtime's gc.cpp,
    /// <c>repair_allocation_contexts(FALSE)</c>): a worker that allocated nothing saw its count rise by up to an
    /// allocation quantum (49,200 bytes once in CI). Blocking collections settle the count exactly. The data plane's
    /// managed heap is small (2.5 MB with metrics on; the map-cache lives in shared memory) and its workers allocate
    /// nothing, so full collections are rare and short. The RTR's process holds its agent as well, under the same mode.
    /// </summary>
    public static void UseBlockingCollections() => System.Runtime.GCSettings.LatencyMode = System.Runtime.GCLatencyMode.Batch;

    /// <summary>
    /// --mode af-xdp: on each instance's interface our XDP program, then one AF_XDP socket per receive queue, queue q
    /// read by worker q mod workers (every queue has a reader: a frame on a queue without a socket would go to the
    /// kernel), each registered in the program's map. Until a queue's socket is registered its frames go to the kernel.
    /// A worker's sockets (EID side and --xdp-underlay) share one UMEM, so that its frames are rewritten where they
    /// were received and sent on by address; a socket the kernel will not let share it (a zero-copy NIC beside a
    /// veth) gets a UMEM of its own, and frames between the two are copied.
    /// </summary>
    private void OpenXdpSockets(List<IReadOnlyList<XdpSocket>>[] xsks, List<NetInterface> links, List<NeighborTable> neighbors)
    {
        for (int w = 0; w < Options.Workers; w++) xsks[w] = [];
        var modes = new List<string>();
        string stage = "--mode af-xdp";
        try
        {
            // Every interface first: the shared UMEMs are sized for all of a worker's sockets, in the largest chunk any needs.
            var eid = Options.Instances.Select(i => XdpInterface(i.Interface, "the EID-facing interface of --mode af-xdp", $"instance {i.InstanceId}: {i.Interface}")).ToList();
            var under = Options.XdpUnderlay is string u ? XdpInterface(u, "the underlay interface of --xdp-underlay", $"--xdp-underlay {u}") : default((NetInterface Link, int Chunk)?);
            int chunk = eid.Select(e => e.Chunk).Append(under?.Chunk ?? 0).Max();
            var queues = eid.Select(e => e.Link.RxQueues).Append(under?.Link.RxQueues ?? 0).ToList();
            _umems = Enumerable.Range(0, Options.Workers).Select(w =>
            {
                int sockets = queues.Sum(q => (q - w + Options.Workers - 1) / Options.Workers);
                // Each socket's fill and TX rings, and two batches held by the worker while it works on them.
                return new XdpUmem(chunk, sockets * XdpSocket.ChunksFor(Options.RxRingFrames, Options.TxRingFrames) + 2 * Options.Batch, $"worker {w}");
            }).ToArray();
            for (int k = 0; k < Options.Instances.Count; k++)
            {
                var link = eid[k].Link;
                links.Add(link);
                neighbors.Add(new NeighborTable());
                var program = XdpProgram.Attach(link.Name, link.Index, link.RxQueues, link.Ipv4Address);
                _programs.Add(program);
                var perWorker = OpenQueueSockets(program, link);
                for (int w = 0; w < Options.Workers; w++) xsks[w].Add(perWorker[w]);
                // (IP forwarding does not matter here: the kernel never sees the frames the program redirects.)
                modes.Add($"{link.Name}: {XdpMode(program, perWorker[0][0], link)}, {perWorker[0][0].RxChunks}+{perWorker[0][0].TxChunks} chunks of {chunk} bytes per queue");
            }
            if (under is var (ulink, _))
            {
                stage = "--xdp-underlay";
                var program = XdpProgram.AttachUnderlay(ulink.Name, ulink.Index, ulink.RxQueues, Options.RlocAddress, Options.Port);
                _programs.Add(program);
                _underlay = OpenQueueSockets(program, ulink);
                _nextHops = new UnderlayNextHops(ulink.Name, ulink.Mac);
                _nextHops.Refresh();
                modes.Add($"underlay {ulink.Name}: LISP data to {Sockets.FormatIpv4(Options.RlocAddress)}:{Options.Port} through AF_XDP, {XdpMode(program, _underlay[0][0], ulink)}");
            }
            bool oneUmemEach = Enumerable.Range(0, Options.Workers).All(w =>
                xsks[w].SelectMany(s => s).Concat(_underlay.Length > 0 ? _underlay[w] : []).Select(s => s.Umem).Distinct().Count() == 1);
            modes.Add(oneUmemEach
                ? "one UMEM per worker: frames forwarded in place"
                : "UMEMs not shared by every socket of a worker: frames between them copied");
        }
        catch (Exception e)
        {
            foreach (var s in xsks.SelectMany(x => x).SelectMany(x => x).Concat(_underlay.SelectMany(x => x))) s.Dispose();
            _underlay = [];
            foreach (var umem in _umems) umem.Dispose();
            _umems = [];
            if (e is NativeException) throw new DataplaneStartException($"{stage}: {e.Message}");
            throw;
        }
        _xdpSummary = string.Join("; ", modes);
    }

    /// <summary>--mode af-xdp: each worker's UMEM, shared by its sockets; unmapped after the workers closed them.</summary>
    private XdpUmem[] _umems = [];

    /// <summary>An interface AF_XDP can serve with --workers workers: queues enough, and frames that fit a UMEM chunk.</summary>
    private (NetInterface Link, int Chunk) XdpInterface(string name, string role, string label)
    {
        var link = NetInterface.Query(name, role);
        if (link.RxQueues < Options.Workers)
            throw new DataplaneStartException($"{label} has {link.RxQueues} receive queue(s), fewer than --workers {Options.Workers}: each worker reads at least one queue (ethtool -L {link.Name} combined {Options.Workers}, or a veth made with numrxqueues {Options.Workers})");
        int chunk = XdpChunkBytes(link.Mtu);
        if (chunk == 0)
            throw new DataplaneStartException($"{label} has MTU {link.Mtu}; --mode af-xdp takes frames of at most one 4 KB UMEM chunk (MTU up to {4096 - Linux.XDP_PACKET_HEADROOM - EthernetEidSide.HeaderBytes})");
        return (link, chunk);
    }

    private static string XdpMode(XdpProgram program, XdpSocket socket, NetInterface link) =>
        $"XDP {(program.Native ? "native" : "generic (skb)")}, {(socket.ZeroCopy ? "zero-copy" : "copy mode")}, {link.RxQueues} queue(s)";

    /// <summary>--xdp-underlay: each worker's AF_XDP sockets on the underlay interface (empty lists without).</summary>
    private List<XdpSocket>[] _underlay = [];
    /// <summary>--xdp-underlay: the kernel's next hops through the underlay, read again every second by <see cref="_nextHopTimer"/>.</summary>
    private UnderlayNextHops? _nextHops;
    private Timer? _nextHopTimer;

    /// <summary>
    /// One AF_XDP socket on every receive queue of <paramref name="link"/>, registered in <paramref name="program"/>'s
    /// map; queue q goes to worker q mod workers. Sockets opened before a failure are closed.
    /// </summary>
    private List<XdpSocket>[] OpenQueueSockets(XdpProgram program, NetInterface link)
    {
        var perWorker = Enumerable.Range(0, Options.Workers).Select(_ => new List<XdpSocket>()).ToArray();
        try
        {
            for (int q = 0; q < link.RxQueues; q++)
            {
                var umem = _umems[q % Options.Workers];
                var socket = XdpSocket.OpenShared(link.Name, link.Index, q, umem, Options.RxRingFrames, Options.TxRingFrames, out int refused);
                if (socket is null)
                {
                    DataplaneLog.UmemNotShared(_log, link.Name, q, new NativeException("binding to the worker's UMEM (XDP_SHARED_UMEM)", refused).Message);
                    socket = XdpSocket.Open(link.Name, link.Index, q, umem.ChunkBytes, Options.RxRingFrames, Options.TxRingFrames);
                }
                perWorker[q % Options.Workers].Add(socket);
                program.Register(q, socket.Fd);
            }
        }
        catch
        {
            foreach (var s in perWorker.SelectMany(s => s)) s.Dispose();
            throw;
        }
        return perWorker;
    }

    /// <summary>The UMEM chunk for an MTU: 2 KB while a frame fits behind the kernel's headroom, else 4 KB; 0 when not even that.</summary>
    public static int XdpChunkBytes(int mtu) =>
        mtu + EthernetEidSide.HeaderBytes + Linux.XDP_PACKET_HEADROOM <= 2048 ? 2048
        : mtu + EthernetEidSide.HeaderBytes + Linux.XDP_PACKET_HEADROOM <= 4096 ? 4096 : 0;

    private static SharedRegion OpenRegion(DataplaneOptions options, ILogger log)
    {
        string path = SharedMemoryMapping.PathFor(options.SharedMemoryName);
        var wanted = SharedRegionSizes.Default with { EntryCapacity = options.MapCacheEntries, Workers = Math.Max(options.Workers, SharedRegionSizes.Default.Workers) };
        if (File.Exists(path))
        {
            SharedRegion existing;
            try { existing = SharedRegion.Attach(options.SharedMemoryName); }
            catch (SharedRegionException e) { throw new DataplaneStartException(e.Message); }
            int pid = existing.Header.DataplanePid;
            if (pid != 0 && pid != Environment.ProcessId && ProcessAlive(pid))
            {
                existing.Dispose();
                throw new DataplaneStartException($"{path} is in use by data plane pid {pid}: stop it, or give this one another --shm name");
            }
            if (existing.Sizes.Workers < options.Workers || existing.Sizes.EntryCapacity != options.MapCacheEntries)
            {
                existing.Dispose();
                throw new DataplaneStartException($"{path} was made for {existing.Sizes.Workers} workers and {existing.Sizes.EntryCapacity} map-cache entries, not {options.Workers} and {options.MapCacheEntries}: remove it (and restart the agent) or use the same sizes");
            }
            DataplaneLog.Attached(log, path, existing.Header.EntryCount);
            return existing;
        }
        try { return SharedRegion.Create(options.SharedMemoryName, wanted); }
        catch (NativeException e) { throw new DataplaneStartException(e.Message); }
    }

    private static bool ProcessAlive(int pid) => Processes.IsRunning(pid);

    private static bool ForwardingOn(string interfaceName)
    {
        try { return File.ReadAllText($"/proc/sys/net/ipv4/conf/{interfaceName}/forwarding").Trim() == "1"; }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    private void RunWorker(int index)
    {
        if (Options.Cpus.Count > index && !Cpu.TryPinCurrentThread(Options.Cpus[index], out int errno))
            DataplaneLog.NotPinned(_log, index, Options.Cpus[index], errno);
        _workers[index].Run();
    }

    public void Stop()
    {
        foreach (var w in _workers) w.Stop();
        foreach (var t in _threads) t.Join();
        _threads.Clear();
    }

    public void Dispose()
    {
        _nextHopTimer?.Dispose();
        Stop();
        foreach (var w in _workers) w.Dispose();
        foreach (var t in _tuns) t.Dispose();
        // After the sockets (the workers' ports): the program is detached when its link closes.
        foreach (var p in _programs) p.Dispose();
        foreach (var umem in _umems) umem.Dispose();
        if (Region.Header.DataplanePid == Environment.ProcessId)
        {
            Region.Header.DataplanePid = 0;
            Region.Header.ActiveWorkers = 0;
        }
        Region.Dispose();
    }
}

public sealed class DataplaneStartException : Exception
{
    public DataplaneStartException(string message) : base(message) { }
    public DataplaneStartException() { }
    public DataplaneStartException(string message, Exception inner) : base(message, inner) { }
}
