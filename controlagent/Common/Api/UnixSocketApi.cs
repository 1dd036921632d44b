using System.Net.Sockets;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace FastXtr.Common.Api;

/// <summary>
/// A role's control API: HTTP/1.1 with JSON bodies on a Unix socket (mode 0600, so only root and the role's user reach
/// it), served by Kestrel. The agent and the Map-Server both use it, so <c>fastxtr show</c> and <c>curl --unix-socket</c>
/// speak one protocol to every role. A handler that throws answers 500 with the reason and is logged; it never takes
/// the role down.
/// </summary>
public sealed partial class UnixSocketApi : IAsyncDisposable
{
    public static readonly JsonSerializerOptions Json = new() { WriteIndented = false };
    private readonly WebApplication _app;

    public string SocketPath { get; }

    private UnixSocketApi(WebApplication app, string path)
    {
        _app = app;
        SocketPath = path;
    }

    /// <summary>
    /// Listens on <paramref name="path"/>: a socket file left by a dead process is replaced, one that answers is an
    /// error (<paramref name="inUse"/> says what to do about it).
    /// </summary>
    public static async Task<UnixSocketApi> StartAsync(string path, ILogger log, string inUse, Action<WebApplication> map)
    {
        string? dir = Path.GetDirectoryName(path);
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        if (File.Exists(path))
        {
            using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                probe.Connect(new UnixDomainSocketEndPoint(path));
                throw new ConfigException($"api socket {path} is in use: {inUse}");
            }
            catch (SocketException) { File.Delete(path); }
        }
        // Bound under a temporary name, made the owner's only, then renamed: the socket never exists at its path with
        // the umask's mode (a client that saw the file could otherwise find it 0755 for a moment).
        string bound = $"{path}.{Environment.ProcessId}.tmp";
        File.Delete(bound);
        var app = SlimKestrel.Build(k =>
        {
            k.ListenUnixSocket(bound);
            k.Limits.MaxRequestBodySize = 64 * 1024;
        });
        app.Use(async (context, next) =>
        {
            try { await next(context).ConfigureAwait(false); }
            catch (Exception e) when (e is not OperationCanceledException && !context.Response.HasStarted)
            {
                HandlerFailed(log, context.Request.Method, context.Request.Path, e.GetType().Name, e.Message);
                await Error(500, $"internal error: {e.Message}").ExecuteAsync(context).ConfigureAwait(false);
            }
        });
        map(app);
        await SlimKestrel.StartAsync(app, $"api socket {path}").ConfigureAwait(false);
        File.SetUnixFileMode(bound, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.Move(bound, path, overwrite: true);
        return new UnixSocketApi(app, path);
    }

    /// <summary>Answers what no route matched with 404 and the routes there are.</summary>
    public static void MapNotFound(WebApplication app, string routes) =>
        app.MapFallback((HttpContext c) => Error(404, $"no such resource: {c.Request.Method} {c.Request.Path} (see {routes})"));

    /// <summary>An error answer: <c>{"error": message}</c> with the status.</summary>
    public static IResult Error(int status, string message) => Results.Json(new Dictionary<string, string> { ["error"] = message }, Json, statusCode: status);

    [LoggerMessage(LogLevel.Error, "api: {Method} {Path}: {Type}: {Reason}")]
    private static partial void HandlerFailed(ILogger log, string method, string path, string type, string reason);

    public async ValueTask DisposeAsync()
    {
        await SlimKestrel.StopAsync(_app).ConfigureAwait(false);
        try { File.Delete(SocketPath); }
        catch (IOException) { }
    }
}
