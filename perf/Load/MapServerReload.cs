using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using FastXtr.Lisp.Answers;
using FastXtr.Lisp.Messages;
using FastXtr.MapServer;
using Microsoft.Extensions.Logging.Abstractions;

namespace FastXtr.Perf.Load;

/// <summary>
/// <c>mapserver-reload [COUNT]</c>: how long a Map-Server reload (SIGHUP) takes with COUNT registrations (default a
/// million) in site "big" and a handful in site "small", in process: the same file again, a key of the small site
/// changed, a key of the big site changed, and the big site removed (every registration
/// removed and published). Prints the wall time and the bytes allocated by each.
/// </summary>
public static class MapServerReload
{
    private static string Config(string bigKey, string smallKey, bool withBig = true) =>
        "listen 127.0.0.1:0\n" +
        (withBig ? $"site big\n  key 0 sha256 \"{bigKey}\"\n  eid-prefix 1000 10.0.0.0/8 accept-more-specifics\n" : "") +
        $"site small\n  key 0 sha256 \"{smallKey}\"\n  eid-prefix 1000 11.0.0.0/8 accept-more-specifics\n";

    public static int Run(string[] args)
    {
        int count = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 1_000_000;
        using var host = new MapServerHost(MapServerConfig.Parse(Config("b1", "s1").Split('\n')), 1, NullLogger.Instance, controlSocket: false);
        var big = host.Config.Sites[0];
        var small = host.Config.Sites[1];
        var rlocs = ImmutableArray.Create(new RegisteredRloc(LispAddress.FromIpv4(0xC0000202), 1, 100, 255, 0, true, null));
        var now = DateTime.UtcNow;
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < count; i++)
            host.Store.Register(new EidKey(1000, EidFamily.Ipv4, 0x0A000000u + (uint)i + 1, 32), big,
                new XtrRegistration(1, 1, new IPEndPoint(IPAddress.Loopback, 4342), rlocs, false, 1440, 0, now, now, long.MaxValue));
        for (int i = 0; i < 10; i++)
            host.Store.Register(new EidKey(1000, EidFamily.Ipv4, 0x0B000000u + (uint)i + 1, 32), small,
                new XtrRegistration(2, 1, new IPEndPoint(IPAddress.Loopback, 4342), rlocs, false, 1440, 0, now, now, long.MaxValue));
        Console.WriteLine($"{host.Store.Count} registrations stored in {sw.Elapsed.TotalSeconds:F1} s");
        Measure(host, "the same file again", Config("b1", "s1"));
        Measure(host, "a key of the small site changed", Config("b1", "s2"));
        Measure(host, "a key of the big site changed", Config("b2", "s2"));
        Measure(host, "the big site removed (every registration removed)", Config("b2", "s2", withBig: false));
        return 0;
    }

    private static void Measure(MapServerHost host, string what, string config)
    {
        var fresh = MapServerConfig.Parse(config.Split('\n'));
        GC.Collect();
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        var sw = Stopwatch.StartNew();
        var result = host.Reload(fresh);
        double ms = sw.Elapsed.TotalMilliseconds;
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        Console.WriteLine($"{what}: {ms:F1} ms, {allocated / 1e6:F1} MB allocated, {host.Store.Count} registrations left ({result})");
    }
}
