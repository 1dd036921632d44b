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
            var neighbors = new List<NeighborTable>();
            if (options.Mode == IoMode.Tun)
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
            try { Sockets.EnsureUdp4PortFree(options.RlocAddress, options.Port, "another data plane or a LISP daemon holds it"); }
            catch (NativeException e) { throw new DataplaneStartException(e.Message); }
            for (int w = 0; w < options.Workers; w++)
            {
                try { host._workers.Add(new Worker(w, options, region, host._tuns, rings[w], neighbors)); }
                catch (NativeException e) { throw new DataplaneStartException($"worker {w}: {e.Message}"); }
            }
            region.Header.ActiveWorkers = (uint)options.Workers;
            region.Header.DataplanePid = Environment.ProcessId;
            for (int w = 0; w < options.Workers; w++)
            {
                int index = w;
                var thread = new Thread(() => host.RunWorker(index)) { IsBackground = true, Name = $"fastxtr-worker-{w}" };
                host._threads.Add(thread);
                thread.Start();
            }
            DataplaneLog.Started(log, options.Workers, $"{Sockets.FormatIpv4(options.RlocAddress)}:{options.Port}",
                string.Join(", ", options.Instances.Select(i => $"{i.InstanceId}={i.Interface}")),
                options.Mode == IoMode.AfPacket ? $" (af-packet rings, {options.RxRingFrames} rx frames and {options.TxRingFrames} tx slots per worker)" : $" (TUN queue {options.TunQueueLength} packets)",
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

    private static bool ProcessAlive(int pid) => Directory.Exists($"/proc/{pid}");

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
        Stop();
        foreach (var w in _workers) w.Dispose();
        foreach (var t in _tuns) t.Dispose();
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
