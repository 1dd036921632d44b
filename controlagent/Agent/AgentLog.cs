using System.Net;
using Microsoft.Extensions.Logging;

namespace FastXtr.Agent;

/// <summary>Every line the agent logs, one source-generated method each (no formatting below the enabled level).</summary>
internal static partial class AgentLog
{
    [LoggerMessage(LogLevel.Information, "rloc {Rloc}, {Mappings} database mapping(s), {MapServers} Map-Server(s), {MapResolvers} Map-Resolver(s), {Profiles} profile(s), shm {Region}")]
    public static partial void Started(ILogger log, IPAddress rloc, int mappings, int mapServers, int mapResolvers, int profiles, string? region);

    [LoggerMessage(LogLevel.Information, "configuration reloaded: {Summary}")]
    public static partial void Reloaded(ILogger log, string summary);

    [LoggerMessage(LogLevel.Error, "configuration reload refused, the running configuration stays: {Reason}")]
    public static partial void ReloadRefused(ILogger log, string reason);

    [LoggerMessage(LogLevel.Warning, "{What}: {Reason}")]
    public static partial void TaskFailed(ILogger log, string what, string reason);

    [LoggerMessage(LogLevel.Information, "attached '{Name}' {Prefix}{ProfileNote}")]
    public static partial void Attached(ILogger log, string name, string prefix, string profileNote);

    [LoggerMessage(LogLevel.Information, "updated '{Name}' {Prefix}: {Attributes}")]
    public static partial void Updated(ILogger log, string name, string prefix, string attributes);

    [LoggerMessage(LogLevel.Information, "detached '{Name}' {Prefix}; withdrawing it and soliciting ITRs that still send to it")]
    public static partial void Detached(ILogger log, string name, string prefix);

    [LoggerMessage(LogLevel.Warning, "Map-Request: {Reason}")]
    public static partial void MapRequestFailed(ILogger log, string reason);

    [LoggerMessage(LogLevel.Warning, "Map-Request to {Resolver}: {Reason}")]
    public static partial void MapRequestSendFailed(ILogger log, IPEndPoint resolver, string reason);

    [LoggerMessage(LogLevel.Warning, "control socket: {Reason}")]
    public static partial void ReceiveFailed(ILogger log, string reason);

    [LoggerMessage(LogLevel.Warning, "send to {To}: {Reason}")]
    public static partial void SendFailed(ILogger log, IPEndPoint to, string reason);

    [LoggerMessage(LogLevel.Warning, "no Map-Notify from {MapServer} after {Attempts} Map-Registers a second apart; the next refresh is in {RefreshSeconds:F0} s")]
    public static partial void RegistrationUnacknowledged(ILogger log, IPEndPoint mapServer, int attempts, double refreshSeconds);

    [LoggerMessage(LogLevel.Warning, "Map-Server {MapServer} has not answered a Map-Register in {Seconds} s: unresponsive; still registered with, but attaches and detaches no longer wait for its confirmation")]
    public static partial void MapServerUnresponsive(ILogger log, IPEndPoint mapServer, int seconds);

    [LoggerMessage(LogLevel.Information, "Map-Server {MapServer} answers again")]
    public static partial void MapServerResponsive(ILogger log, IPEndPoint mapServer);

    [LoggerMessage(LogLevel.Warning, "{MapServer} confirmed {Confirmed} of {Sent} records of a Map-Register; the others were refused (see the Map-Server's log)")]
    public static partial void RecordsRefused(ILogger log, IPEndPoint mapServer, int confirmed, int sent);

    [LoggerMessage(LogLevel.Warning, "Map-Notify from {From} failed authentication with every Map-Server key; dropped")]
    public static partial void MapNotifyAuthenticationFailed(ILogger log, IPEndPoint from);

    [LoggerMessage(LogLevel.Warning, "publication from {From} for {Record} dropped: its nonce {Nonce:x} is not above the last one taken for the record, {Last:x} (a replay, or a publication older than the subscription's last renewal; RFC 9437 §5)")]
    public static partial void PublicationReplayed(ILogger log, IPEndPoint from, string record, ulong nonce, ulong last);

    [LoggerMessage(LogLevel.Warning, "locator {Locator} marked down ({Missed} RLOC probes unanswered)")]
    public static partial void LocatorDown(ILogger log, IPAddress locator, int missed);

    [LoggerMessage(LogLevel.Warning, "behind NAT: {MapServer} sees this xTR's control port as {Translated} (RTRs offered: {Rtrs})")]
    public static partial void BehindNat(ILogger log, IPEndPoint mapServer, IPEndPoint translated, string rtrs);

    [LoggerMessage(LogLevel.Information, "behind NAT: registering {Rtrs} as this xTR's locators and sending all traffic through them; keep-alives every {Seconds} s from data port {DataPort}")]
    public static partial void ThroughRtrs(ILogger log, string rtrs, double seconds, int dataPort);

    [LoggerMessage(LogLevel.Warning, "behind NAT but no Map-Server offered an RTR: ETRs elsewhere cannot reach this xTR (configure 'rtr ADDRESS' at the Map-Server)")]
    public static partial void NoRtr(ILogger log);

    [LoggerMessage(LogLevel.Information, "RTR: {Prefix} is behind NAT at {Translated}: its traffic goes there")]
    public static partial void RtrBindingLearned(ILogger log, string prefix, IPEndPoint translated);

    [LoggerMessage(LogLevel.Information, "RTR: binding of {Prefix} removed: {Reason}")]
    public static partial void RtrBindingGone(ILogger log, string prefix, string reason);


    [LoggerMessage(LogLevel.Information, "not behind NAT: {MapServer} sees this xTR at its own RLOC and control port")]
    public static partial void NotBehindNat(ILogger log, IPEndPoint mapServer);

    [LoggerMessage(LogLevel.Information, "locator {Locator} answered a probe: marked up")]
    public static partial void LocatorUp(ILogger log, IPAddress locator);

    [LoggerMessage(LogLevel.Warning, "Map-Resolver {Resolver} left {Timeouts} Map-Requests in a row unanswered: marked down for {DownSeconds:F0} s{Next}")]
    public static partial void ResolverDown(ILogger log, IPEndPoint resolver, int timeouts, double downSeconds, string next);

    [LoggerMessage(LogLevel.Warning, "the previous map-cache writer stopped mid-update; repaired: {Repair}")]
    public static partial void WriterRepaired(ILogger log, string repair);

    [LoggerMessage(LogLevel.Warning, "map-cache full ({Result}); {Prefix} not installed")]
    public static partial void MapCacheFull(ILogger log, string result, string prefix);

    [LoggerMessage(LogLevel.Warning, "{Region} was replaced or removed; waiting for the data plane's new region ({Reason})")]
    public static partial void RegionGone(ILogger log, string region, string reason);

    [LoggerMessage(LogLevel.Error, "{Region} was replaced; cannot write the new region: {Reason}")]
    public static partial void RegionNotWritable(ILogger log, string region, string reason);

    [LoggerMessage(LogLevel.Information, "the data plane's region {Region} is new: attached and restored {Restored} map-cache entries{Lost}")]
    public static partial void RegionFollowed(ILogger log, string? region, int restored, string lost);


}
