using FastXtr.Common.Api;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace FastXtr.MapServer;

/// <summary>
/// The Map-Server's control API, on its control socket the same way as the agent's (<see cref="UnixSocketApi"/>):
/// <code>
/// GET /v1/registrations   every xTR's registration of every EID prefix: site, IID, EID, xTR-ID, RLOCs with attributes, age, expiry
/// GET /v1/status          the counters, the table size, subscriptions, and what the runtime spent on garbage collection
/// GET /v1/referral-cache  the DDT Map-Resolver's cached Map-Referrals: IID, prefix, action, targets, I bit, expiry
/// </code>
/// <c>fastxtr show registrations</c> reads the first; <c>curl --unix-socket PATH http://x/v1/status</c> the second.
/// </summary>
public static class MapServerApi
{
    public static Task<UnixSocketApi> StartAsync(MapServerHost host, string path, ILogger log) =>
        UnixSocketApi.StartAsync(path, log, "another Map-Server answers there: stop it, or give this one another 'control-socket'", app =>
        {
            app.MapGet("/v1/registrations", () => Results.Json(host.Registrations(), UnixSocketApi.Json));
            app.MapGet("/v1/status", () => Results.Json(host.CountersWithRuntime(), UnixSocketApi.Json));
            app.MapGet("/v1/referral-cache", () => Results.Json(host.ReferralCache(), UnixSocketApi.Json));
            UnixSocketApi.MapNotFound(app, "GET /v1/registrations, /v1/status, /v1/referral-cache");
        });
}
