using System.Text.Json;
using NUnit.Framework;

namespace FastXtr.Tests.Support;

/// <summary>
/// Prometheus text read by the reference parser (Python's prometheus_client, Debian's python3-prometheus-client)
/// through Support/prometheus_check.py, which also checks the naming rules.
/// </summary>
public static class PrometheusText
{
    private static string Checker()
    {
        string dir = TestContext.CurrentContext.TestDirectory;
        while (dir.Length > 1 && !File.Exists(Path.Combine(dir, "FastXtr.sln"))) dir = Path.GetDirectoryName(dir)!;
        return Path.Combine(dir, "tests", "FastXtr.Tests", "Support", "prometheus_check.py");
    }

    /// <summary>The samples by "name{label=value,...}"; fails the test when the text does not parse or breaks a naming rule.</summary>
    public static Dictionary<string, double> Parse(string text)
    {
        string file = Path.Combine(Path.GetTempPath(), $"fxtest-metrics-{Environment.ProcessId}-{Guid.NewGuid():N}.txt");
        File.WriteAllText(file, text);
        try
        {
            var r = Shell.Sh($"/usr/bin/python3 '{Checker()}' < '{file}'", 60_000);
            Assert.That(r.Code, Is.EqualTo(0), "prometheus_check.py: " + r.All + " (scripts/test.sh installs python3-prometheus-client)");
            using var doc = JsonDocument.Parse(r.Out);
            var problems = doc.RootElement.GetProperty("problems").EnumerateArray().Select(p => p.GetString()).ToList();
            Assert.That(problems, Is.Empty, "the reference parser and the naming rules");
            return doc.RootElement.GetProperty("samples").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble());
        }
        finally
        {
            File.Delete(file);
        }
    }
}
