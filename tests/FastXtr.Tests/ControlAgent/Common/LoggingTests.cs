using NUnit.Framework;
using FastXtr.Common.Logging;
using Microsoft.Extensions.Logging;

namespace FastXtr.Tests.ControlAgent.Common;

[TestFixture]
public class LoggingTests
{
    [Test]
    public void Lines_NameTheRole_AndWarningsAndErrorsGoToStandardError()
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        using var logs = new LineLoggerProvider("agent", output, errors);
        var log = logs.CreateLogger();
#pragma warning disable CA1848, CA2254, CA1873 // the provider is under test, not the call sites
        log.LogInformation("attached 'a' [1000]10.1.0.1/32");
        log.LogWarning("locator 192.0.2.9 marked down");
        log.LogError(new IOException("disk gone"), "expiry");
        log.LogDebug("not shown at the default level");
#pragma warning restore CA1848, CA2254, CA1873
        Assert.That(output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { "fastxtr agent: attached 'a' [1000]10.1.0.1/32" }));
        Assert.That(errors.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries),
            Is.EqualTo(new[] { "fastxtr agent: warning: locator 192.0.2.9 marked down", "fastxtr agent: error: expiry: disk gone" }));
    }

    [Test]
    public void ToTheJournal_EachLineCarriesItsSyslogPriority()
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        using var logs = new LineLoggerProvider("dataplane", output, errors, priorityPrefixes: true);
        var log = logs.CreateLogger();
#pragma warning disable CA1848, CA2254, CA1873
        log.LogInformation("2 worker(s)");
        log.LogWarning("forwarding is on");
        log.LogError("cannot write");
#pragma warning restore CA1848, CA2254, CA1873
        Assert.That(output.ToString(), Is.EqualTo("<6>fastxtr dataplane: 2 worker(s)" + Environment.NewLine));
        Assert.That(errors.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries),
            Is.EqualTo(new[] { "<4>fastxtr dataplane: warning: forwarding is on", "<3>fastxtr dataplane: error: cannot write" }));
    }

    [Test]
    public void JournalStream_IsRecognisedOnlyOnTheDescriptorItNames()
    {
        string? saved = Environment.GetEnvironmentVariable("JOURNAL_STREAM");
        try
        {
            Environment.SetEnvironmentVariable("JOURNAL_STREAM", null);
            Assert.That(FastXtr.NativeInterop.Journal.IsConnected(FastXtr.NativeInterop.Journal.StandardError), Is.False);
            Environment.SetEnvironmentVariable("JOURNAL_STREAM", "1:1");
            Assert.That(FastXtr.NativeInterop.Journal.IsConnected(FastXtr.NativeInterop.Journal.StandardError), Is.False, "inherited, but our stream is another");
            Environment.SetEnvironmentVariable("JOURNAL_STREAM", "garbage");
            Assert.That(FastXtr.NativeInterop.Journal.IsConnected(FastXtr.NativeInterop.Journal.StandardError), Is.False);
        }
        finally
        {
            Environment.SetEnvironmentVariable("JOURNAL_STREAM", saved);
        }
    }

    [Test]
    public void ConcurrentLines_NeverInterleave()
    {
        var output = new StringWriter();
        using var logs = new LineLoggerProvider("mapserver", output, TextWriter.Null);
        var log = logs.CreateLogger();
#pragma warning disable CA1848, CA2254, CA1873
        Parallel.For(0, 4, t => { for (int i = 0; i < 2000; i++) log.LogInformation($"thread {t} line {i} " + new string('x', 40)); });
#pragma warning restore CA1848, CA2254, CA1873
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(8000));
        Assert.That(lines.All(l => l.StartsWith("fastxtr mapserver: thread ", StringComparison.Ordinal) && l.EndsWith(new string('x', 40), StringComparison.Ordinal)), Is.True);
    }

    [Test]
    public void RateLimitedLogger_WritesOneLinePerReasonPerSecond_AndCountsTheRest()
    {
        var errors = new StringWriter();
        using var logs = new LineLoggerProvider("mapserver", TextWriter.Null, errors);
        var limited = new RateLimitedLogger(logs.CreateLogger());
        for (int i = 0; i < 50; i++) limited.Warning("malformed", $"192.0.2.{i}: malformed Map-Request");
        limited.Warning("auth", "192.0.2.1: Map-Register failed authentication");
        var lines = errors.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Is.EqualTo(new[] { "fastxtr mapserver: warning: 192.0.2.0: malformed Map-Request", "fastxtr mapserver: warning: 192.0.2.1: Map-Register failed authentication" }),
            "one line per reason inside the second");
        Thread.Sleep(1100);
        limited.Warning("malformed", "192.0.2.77: malformed Map-Request");
        Assert.That(errors.ToString(), Does.EndWith("fastxtr mapserver: warning: 192.0.2.77: malformed Map-Request (49 more like it suppressed)" + Environment.NewLine));
    }
}
