using Microsoft.Extensions.Logging;

namespace FastXtr.Dataplane.Workers;

/// <summary>The data plane's log lines, one source-generated method each. Workers never log: they count.</summary>
internal static partial class DataplaneLog
{
    [LoggerMessage(LogLevel.Information, "{Workers} worker(s), rloc {Rloc}, instances {Instances}{Io}, shm {Region}, map-cache {Entries} entries, batch {Batch}, mtu {Mtu}{Filter}, busy-poll {BusyPoll}, offload {Offload}")]
    public static partial void Started(ILogger log, int workers, string rloc, string instances, string io, string? region, int entries, int batch, int mtu, string filter, string busyPoll, string offload);

    [LoggerMessage(LogLevel.Warning, "the kernel forwards IPv4 on {Interface}; the packets this data plane carries would be forwarded by the kernel too (set net.ipv4.conf.{Interface}.forwarding=0)")]
    public static partial void KernelForwards(ILogger log, string @interface);

    [LoggerMessage(LogLevel.Information, "attached to {Path}, keeping its {Entries} map-cache entries")]
    public static partial void Attached(ILogger log, string path, long entries);

    [LoggerMessage(LogLevel.Warning, "worker {Worker} could not be pinned to CPU {Cpu} (errno {Errno}); running unpinned")]
    public static partial void NotPinned(ILogger log, int worker, int cpu, int errno);

    [LoggerMessage(LogLevel.Warning, "{Interface} queue {Queue}: {Reason}; this socket gets a UMEM of its own, and frames between it and the worker's other sockets are copied")]
    public static partial void UmemNotShared(ILogger log, string @interface, int queue, string reason);
}
