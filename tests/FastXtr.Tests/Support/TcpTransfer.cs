using NUnit.Framework;

namespace FastXtr.Tests.Support;

/// <summary>
/// 8 MiB of a fixed pseudo-random pattern over one TCP connection from one namespace to another; both ends print the
/// byte count and SHA-256 of what they sent or received, so a test compares the two lines.
/// </summary>
public static class TcpTransfer
{
    private const string Py = "/usr/bin/python3";

    public static (FastXtr.Lab.Shell.Result Client, FastXtr.Lab.Shell.Result Server) Run(string clientNs, string serverNs, string serverAddress, string? sourceAddress, string tag)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"fxtest-tcp-{tag}");
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "rx.py"), $$"""
                import socket, hashlib
                s = socket.socket(socket.AF_INET6 if ":" in "{{serverAddress}}" else socket.AF_INET); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("{{serverAddress}}", 5299)); s.listen(1); s.settimeout(30)
                c, _ = s.accept(); h = hashlib.sha256(); n = 0
                while True:
                    d = c.recv(65536)
                    if not d: break
                    h.update(d); n += len(d)
                print(n, h.hexdigest())
                """);
            string source = sourceAddress is null ? "None" : $"(\"{sourceAddress}\", 0)";
            File.WriteAllText(Path.Combine(dir, "tx.py"), $$"""
                import socket, hashlib, random
                data = random.Random(7).randbytes(8 << 20)
                s = socket.create_connection(("{{serverAddress}}", 5299), timeout=30, source_address={{source}})
                s.sendall(data); s.close()
                print(len(data), hashlib.sha256(data).hexdigest())
                """);
            var server = Task.Run(() => Exec(serverNs, $"{Py} {dir}/rx.py", 60_000));
            WaitForListener(serverNs, serverAddress);
            var client = Exec(clientNs, $"{Py} {dir}/tx.py", 60_000);
            return (client, server.Result);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static FastXtr.Lab.Shell.Result Exec(string ns, string command, int timeoutMs) => Shell.Run("ip", ["netns", "exec", ns, "bash", "-c", command], timeoutMs);

    private static void WaitForListener(string ns, string address)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        string listening = address.Contains(':', StringComparison.Ordinal) ? $"[{address}]:5299" : $"{address}:5299";
        while (Exec(ns, $"ss -ltn | grep -qF '{listening}'", 5000).Code != 0)
        {
            if (DateTime.UtcNow > deadline) throw new AssertionException("timed out waiting for the receiver to listen");
            Thread.Sleep(50);
        }
    }
}
