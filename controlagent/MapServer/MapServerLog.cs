using System.Net;
using Microsoft.Extensions.Logging;

namespace FastXtr.MapServer;

/// <summary>
/// The Map-Server's log lines about itself, one source-generated method each. Lines that peers cause at packet rate
/// (malformed or refused messages) go through <see cref="FastXtr.Common.Logging.RateLimitedLogger"/> instead.
/// </summary>
internal static partial class MapServerLog
{
    [LoggerMessage(LogLevel.Information, "listening on {Endpoints} with {Workers} worker(s) each; {Sites} site(s): {SiteNames}{Control}")]
    public static partial void Listening(ILogger log, string endpoints, int workers, int sites, string siteNames, string control);

    [LoggerMessage(LogLevel.Warning, "worker could not be pinned to CPU {Cpu} (errno {Errno}); running unpinned")]
    public static partial void NotPinned(ILogger log, int cpu, int errno);

    [LoggerMessage(LogLevel.Error, "expiry: {Reason}")]
    public static partial void ExpiryFailed(ILogger log, string reason);

    [LoggerMessage(LogLevel.Warning, "receive on {Endpoint}: {Reason}")]
    public static partial void ReceiveFailed(ILogger log, EndPoint? endpoint, string reason);

    [LoggerMessage(LogLevel.Warning, "publisher: the scheduler refused a shorter time slice (errno {Errno}); publications may wait for a worker's whole slice")]
    public static partial void PublisherSliceRefused(ILogger log, int errno);

    [LoggerMessage(LogLevel.Error, "publisher: {Reason}")]
    public static partial void PublisherFailed(ILogger log, string reason);

    [LoggerMessage(LogLevel.Information, "configuration reloaded: {Summary}")]
    public static partial void Reloaded(ILogger log, string summary);

    [LoggerMessage(LogLevel.Error, "configuration reload refused, the running configuration stays: {Reason}")]
    public static partial void ReloadRefused(ILogger log, string reason);

    [LoggerMessage(LogLevel.Warning, "{What} {To}: {Reason}")]
    public static partial void SendFailed(ILogger log, string what, EndPoint to, string reason);
}
