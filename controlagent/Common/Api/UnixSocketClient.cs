using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace FastXtr.Common.Api;

/// <summary>
/// Talks to a running role's control API (<see cref="UnixSocketApi"/>) over its Unix socket: <c>fastxtr show</c>, the lab.
/// </summary>
public static class UnixSocketClient
{
    /// <summary>An HTTP client whose every connection goes to the Unix socket <paramref name="socketPath"/>.</summary>
    public static HttpClient Create(string socketPath)
    {
        var handler = new SocketsHttpHandler
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
        return new HttpClient(handler, disposeHandler: true) { BaseAddress = new Uri("http://fastxtr"), Timeout = TimeSpan.FromSeconds(10) };
    }

    /// <summary>One request; the status (0 and no answer when the role cannot be reached) and the JSON answer.</summary>
    public static (int Status, JsonNode? Body) Send(string socketPath, HttpMethod method, string path, string? json = null)
    {
        using var http = Create(socketPath);
        using var request = new HttpRequestMessage(method, path);
        if (json is not null) request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        try
        {
            using var response = http.Send(request);
            using var reader = new StreamReader(response.Content.ReadAsStream());
            string text = reader.ReadToEnd();
            return ((int)response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
        }
        // Not listening yet, gone, or stopping mid-answer: (0, null) to every caller alike.
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException or SocketException or System.Text.Json.JsonException) { return (0, null); }
    }

    /// <summary>
    /// GETs a path and parses the JSON; null (with the reason on stderr) when the role cannot be reached.
    /// <paramref name="role"/> and <paramref name="option"/> name the process and the flag that points at its socket.
    /// </summary>
    public static JsonNode? Get(string socketPath, string path, TextWriter stderr, string what, string role = "agent", string option = "--api-socket")
    {
        if (!File.Exists(socketPath))
        {
            stderr.WriteLine($"fastxtr show {what}: no {role} API at {socketPath} (is 'fastxtr {role}' running? give {option})");
            return null;
        }
        var (status, body) = Send(socketPath, HttpMethod.Get, path);
        if (status == 200 && body is not null) return body;
        stderr.WriteLine($"fastxtr show {what}: {socketPath}: {(status == 0 ? $"the {role} did not answer" : $"HTTP {status}: {body?["error"]}")}");
        return null;
    }
}
