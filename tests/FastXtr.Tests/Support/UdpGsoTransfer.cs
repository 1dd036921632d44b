using NUnit.Framework;

namespace FastXtr.Tests.Support;

/// <summary>
/// UDP_SEGMENT sends from one namespace to another (IPv4 or IPv6 addresses), received datagram by datagram: both ends
/// print the datagram count, the sizes seen and the SHA-256 of the bytes in order, so a test compares the two lines
/// (boundaries, sizes, order and content at once).
/// </summary>
public static class UdpGsoTransfer
{
    private const string Py = "/usr/bin/python3";
    private const int Port = 5300;

    /// <param name="sends">Groups of sends: <c>Count</c> sends of <c>Bytes</c> each, cut by the sender's kernel into datagrams of <c>Segment</c> bytes (the last shorter); 5 ms apart.</param>
    public static (FastXtr.Lab.Shell.Result Client, FastXtr.Lab.Shell.Result Server) Run(string clientNs, string serverNs, string serverAddress, string sourceAddress, string tag,
        params (int Bytes, int Segment, int Count)[] sends)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"fxtest-uso-{tag}");
        string family = serverAddress.Contains(':', StringComparison.Ordinal) ? "socket.AF_INET6" : "socket.AF_INET";
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "rx.py"), $$"""
                import socket, hashlib
                s = socket.socket({{family}}, socket.SOCK_DGRAM); s.bind(("{{serverAddress}}", {{Port}})); s.settimeout(10)
                h = hashlib.sha256(); sizes = set(); n = 0
                open("ready", "w").close()
                try:
                    while True:
                        d = s.recv(65536); n += 1; sizes.add(len(d)); h.update(d); s.settimeout(1.5)
                except socket.timeout:
                    pass
                print(n, sorted(sizes), h.hexdigest())
                """);
            string groups = string.Join(", ", sends.Select(g => $"({g.Bytes}, {g.Segment}, {g.Count})"));
            File.WriteAllText(Path.Combine(dir, "tx.py"), $$"""
                import socket, hashlib, time
                s = socket.socket({{family}}, socket.SOCK_DGRAM); s.bind(("{{sourceAddress}}", 0))
                h = hashlib.sha256(); sizes = set(); n = 0
                for g, (size, segment, count) in enumerate([{{groups}}]):
                    s.setsockopt(17, 103, segment)  # SOL_UDP, UDP_SEGMENT
                    for i in range(count):
                        buf = bytes((i * 7 + g * 13 + j) % 251 for j in range(size))
                        s.sendto(buf, ("{{serverAddress}}", {{Port}})); h.update(buf); time.sleep(0.005)
                        n += -(-size // segment); sizes.add(segment)
                        if size % segment: sizes.add(size % segment)
                print(n, sorted(sizes), h.hexdigest())
                """);
            var server = Task.Run(() => Exec(serverNs, $"cd {dir} && {Py} rx.py", 60_000));
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (!File.Exists(Path.Combine(dir, "ready")))
            {
                if (DateTime.UtcNow > deadline) throw new AssertionException("timed out waiting for the UDP receiver");
                Thread.Sleep(50);
            }
            var client = Exec(clientNs, $"{Py} {dir}/tx.py", 60_000);
            return (client, server.Result);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static FastXtr.Lab.Shell.Result Exec(string ns, string command, int timeoutMs) => Shell.Run("ip", ["netns", "exec", ns, "bash", "-c", command], timeoutMs);
}
