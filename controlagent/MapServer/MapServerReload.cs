using FastXtr.Common;
using FastXtr.Lisp.Messages;

namespace FastXtr.MapServer;

/// <summary>
/// What the receive workers answer by: the configuration and the two rate limiters. Replaced as a whole on reload
/// (<see cref="PolicyCell"/>); a worker takes it once per message, so a message is handled under one configuration.
/// </summary>
public sealed record MapServerPolicy(MapServerConfig Config, RateLimiter Requests, RateLimiter Registers)
{
    public static MapServerPolicy For(MapServerConfig config) => new(config,
        new RateLimiter(config.MapRequestRate, config.MapRequestBurst, config.RateLimitSources),
        new RateLimiter(config.MapRegisterRate, config.MapRegisterBurst, config.RateLimitSources));

    /// <summary>The policy for a reloaded configuration, keeping each limiter (and the sources it is counting) whose settings did not change.</summary>
    public MapServerPolicy With(MapServerConfig fresh)
    {
        bool sameSources = fresh.RateLimitSources == Config.RateLimitSources;
        return new MapServerPolicy(fresh,
            sameSources && fresh.MapRequestRate == Config.MapRequestRate && fresh.MapRequestBurst == Config.MapRequestBurst
                ? Requests : new RateLimiter(fresh.MapRequestRate, fresh.MapRequestBurst, fresh.RateLimitSources),
            sameSources && fresh.MapRegisterRate == Config.MapRegisterRate && fresh.MapRegisterBurst == Config.MapRegisterBurst
                ? Registers : new RateLimiter(fresh.MapRegisterRate, fresh.MapRegisterBurst, fresh.RateLimitSources));
    }
}

/// <summary>The current <see cref="MapServerPolicy"/>, shared by the workers and swapped in one step on reload.</summary>
public sealed class PolicyCell(MapServerPolicy initial)
{
    private MapServerPolicy _current = initial;

    public MapServerPolicy Current
    {
        get => Volatile.Read(ref _current);
        set => Volatile.Write(ref _current, value);
    }
}

/// <summary>What a reload changed, for the log line and the caller (SIGHUP, the tests).</summary>
public sealed record MapServerReloadResult(
    IReadOnlyList<string> SitesAdded, IReadOnlyList<string> SitesChanged, IReadOnlyList<string> SitesRemoved, int SitesUnchanged,
    int RegistrationsRemoved, int SubscriptionsDropped, IReadOnlyList<string> NeedRestart)
{
    public override string ToString()
    {
        static string List(string what, IReadOnlyList<string> names) => names.Count == 0 ? "" : $"; {what} {string.Join(", ", names)}";
        return $"{SitesUnchanged} site(s) unchanged{List("added", SitesAdded)}{List("changed", SitesChanged)}{List("removed", SitesRemoved)}" +
               $"; {RegistrationsRemoved} registration(s) removed, {SubscriptionsDropped} subscription(s) dropped" +
               (NeedRestart.Count == 0 ? "" : $"; not applied until a restart: {string.Join("; ", NeedRestart)}");
    }
}

/// <summary>Comparison of two configurations' sites, by name.</summary>
public static class SiteComparison
{
    /// <summary>Same keys (id, algorithm, secret), same prefixes in any order, same proxy-reply: registrations stay as they are.</summary>
    public static bool SameAuthority(SiteConfig a, SiteConfig b) =>
        a.ProxyReply == b.ProxyReply
        && a.Keys.Count == b.Keys.Count && a.Keys.All(k => b.Keys.Any(k.SameAs))
        && a.Prefixes.Count == b.Prefixes.Count && a.Prefixes.All(b.Prefixes.Contains);

    /// <summary>Whether a registered prefix may stay with the site as it is configured now.</summary>
    public static bool Covers(SiteConfig site, EidKey key) => site.Prefixes.Any(p => p.Covers(key.InstanceId, key.Family, key.Prefix, key.Length));

    /// <summary>The settings a running Map-Server cannot take without a restart (sockets it has bound), described.</summary>
    public static List<string> NeedRestart(MapServerConfig running, MapServerConfig fresh)
    {
        var list = new List<string>();
        if (!running.Listen.OrderBy(e => e.ToString()).SequenceEqual(fresh.Listen.OrderBy(e => e.ToString())))
            list.Add($"listen {string.Join(" ", fresh.Listen)} (still {string.Join(" ", running.Listen)})");
        if (running.ControlSocket != fresh.ControlSocket) list.Add($"control-socket {fresh.ControlSocket} (still {running.ControlSocket})");
        return list;
    }
}
