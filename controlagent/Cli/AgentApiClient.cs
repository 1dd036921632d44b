using System.CommandLine;
using System.Net.Sockets;
using System.Text.Json.Nodes;

namespace FastXtr.ControlAgent.Cli;

/// <summary>Talks to a running agent's local API over its Unix socket (for <c>fastxtr show database|agents</c>).</summary>
public static class AgentApiClient
{
    public static Option<string> SocketOption() => new("--api-socket")
    {
        Description = "the agent's API socket (default /run/fastxtr/agent-fastxtr.sock, the agent's default for --shm fastxtr)",
        DefaultValueFactory = _ => "/run/fastxtr/agent-fastxtr.sock",
    };

    /// <summary>GETs a path and parses the JSON; null (with the reason on stderr) when the agent cannot be reached.</summary>
    public static JsonNode? Get(string socketPath, string path, TextWriter stderr, string what)
    {
        if (!File.Exists(socketPath))
        {
            stderr.WriteLine($"fastxtr show {what}: no agent API at {socketPath} (is 'fastxtr agent' running? give --api-socket)");
            return null;
        }
        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await s.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct).ConfigureAwait(false);
                    return new NetworkStream(s, ownsSocket: true);
                }
                catch
                {
                    s.Dispose();
                    throw;
                }
            },
        };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            string body = http.GetStringAsync(new Uri("http://agent" + path)).GetAwaiter().GetResult();
            return JsonNode.Parse(body);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
        {
            stderr.WriteLine($"fastxtr show {what}: {socketPath}: {e.Message}");
            return null;
        }
    }
}
