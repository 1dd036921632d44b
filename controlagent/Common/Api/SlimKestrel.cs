using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace FastXtr.Common.Api;

/// <summary>
/// The small Kestrel applications the roles serve (the control APIs, the metrics endpoints): no ASP.NET logging of
/// its own (the role logs what matters), no Server header, and a stop that gives requests in flight two seconds.
/// </summary>
public static class SlimKestrel
{
    public static WebApplication Build(Action<KestrelServerOptions> listen)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            listen(k);
            k.AddServerHeader = false;
        });
        return builder.Build();
    }

    /// <summary>Starts the application; a listener that cannot be opened becomes a <see cref="ConfigException"/> naming <paramref name="what"/>.</summary>
    public static async Task StartAsync(WebApplication app, string what)
    {
        try { await app.StartAsync().ConfigureAwait(false); }
        catch (IOException e) { throw new ConfigException($"{what}: {e.Message}"); }
    }

    public static async ValueTask StopAsync(WebApplication app)
    {
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2)))
        {
            try { await app.StopAsync(stop.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) { }
        }
        await app.DisposeAsync().ConfigureAwait(false);
    }
}
