using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using FastXtr.Tests.Support;

namespace FastXtr.Tests.EndToEnd;

/// <summary>
/// One run of <c>fastxtr lab run</c> for a test fixture: in namespaces with the prefix <c>LETTER + this process's id</c>,
/// after removing what a killed run of an earlier test process (its id gone) left with the same letter; the lab is
/// taken down after the run whatever happened, and <see cref="Dispose"/> removes the output directory.
/// </summary>
internal sealed class LabRun : IDisposable
{
    public string Prefix { get; }
    public string Out { get; }
    public FastXtr.Lab.Shell.Result Result { get; }

    /// <param name="letter">The prefix's first letter, one per fixture so that two fixtures never share a lab.</param>
    /// <param name="arguments">The options after <c>lab run --quick</c>.</param>
    public LabRun(char letter, params string[] arguments)
    {
        SweepLeftovers(new Regex($@"^{letter}(\d+)-(ul|ms|gw\d|nat|rtr|a|b|c|inf\d|t\d)$"), prefix => ["lab", "down", "--prefix", prefix]);
        Prefix = $"{letter}{Environment.ProcessId}";
        Out = Path.Combine(Path.GetTempPath(), $"fastxtr-lab{letter}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            Result = Shell.Run(Shell.FastxtrExe(), ["lab", "run", "--quick", .. arguments, "--prefix", Prefix, "--out", Out], 170_000);
        }
        finally
        {
            Shell.Run(Shell.FastxtrExe(), ["lab", "down", "--prefix", Prefix]);
        }
        NUnit.Framework.TestContext.Progress.WriteLine(Result.All);
    }

    /// <summary>
    /// Takes down the labs a killed earlier test process left: each namespace matching <paramref name="ours"/> whose
    /// group 1 (the process id in the prefix) names no running process, with the command <paramref name="down"/>
    /// gives for its prefix (the pattern's first character and that id).
    /// </summary>
    public static void SweepLeftovers(Regex ours, Func<string, string[]> down)
    {
        foreach (var line in Shell.Sh("ip netns list").Out.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var m = ours.Match(line.Split(' ')[0]);
            if (m.Success && !FastXtr.NativeInterop.Processes.IsRunning(int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)))
                Shell.Run(Shell.FastxtrExe(), down($"{ours.ToString()[1]}{m.Groups[1].Value}"));
        }
    }

    /// <summary>What demo agent <paramref name="agent"/> recorded itself (its report file).</summary>
    public JsonNode Report(string agent) => JsonNode.Parse(File.ReadAllText(Path.Combine(Out, "agents", agent + ".json")))!;

    public JsonNode Summary() => JsonNode.Parse(File.ReadAllText(Path.Combine(Out, "summary.json")))!;

    public void Dispose()
    {
        if (Directory.Exists(Out)) Directory.Delete(Out, recursive: true);
    }
}

/// <summary>
/// A fixture over one <see cref="LabRun"/> (letter and options given by the subclass), run once before its tests and
/// its output removed after them; the tests read <see cref="Lab"/>, <see cref="Prefix"/>, <see cref="Out"/> and
/// <see cref="Run"/>.
/// </summary>
public abstract class LabFixture(char letter, params string[] arguments)
{
    internal LabRun Lab { get; private set; } = null!;
    protected string Prefix => Lab.Prefix;
    protected string Out => Lab.Out;
    protected FastXtr.Lab.Shell.Result Run => Lab.Result;

    /// <summary>Fails or skips the fixture for what its lab needs beyond root (called before the run).</summary>
    protected virtual void CheckPrerequisites() { }

    [NUnit.Framework.OneTimeSetUp]
    public void RunTheLab()
    {
        Shell.RequireRoot("the lab needs root (namespaces, TUN)");
        CheckPrerequisites();
        Lab = new LabRun(letter, arguments);
    }

    [NUnit.Framework.OneTimeTearDown]
    public void RemoveOutputs() => Lab?.Dispose();

    protected JsonNode Report(string agent) => Lab.Report(agent);
}
