using System.Diagnostics;
using FastXtr.NativeInterop;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.NativeInterop;

/// <summary>Whether a recorded pid still runs: this process does, a pid that never existed does not, and neither does a zombie.</summary>
[TestFixture]
public class ProcessesTests
{
    [Test]
    public void AZombie_IsNotRunning_ThoughItsProcDirectoryStillExists()
    {
        Assert.That(Processes.IsRunning(Environment.ProcessId), Is.True);
        Assert.That(Processes.IsRunning(0), Is.False);
        Assert.That(Processes.IsRunning(int.MaxValue), Is.False);

        // The shell starts a child that exits after a second, and meanwhile becomes `sleep 10`, which never waits for
        // it: the child stays a zombie (state Z) until sleep ends, as a killed data plane does where PID 1 reaps no
        // orphans. (A child that exited before the exec could be reaped by the shell itself: it did once in CI.)
        using var parent = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", "sleep 1 & echo $!; exec sleep 10"]) { RedirectStandardOutput = true })!;
        try
        {
            int zombie = int.Parse(parent.StandardOutput.ReadLine()!, System.Globalization.CultureInfo.InvariantCulture);
            Poll.Until(() => File.ReadAllText($"/proc/{zombie}/stat").Split(") ")[^1].StartsWith('Z'), "the child to exit unreaped");
            Assert.That(Directory.Exists($"/proc/{zombie}"), Is.True, "a zombie keeps its /proc entry");
            Assert.That(Processes.IsRunning(zombie), Is.False);
        }
        finally
        {
            parent.Kill();
            parent.WaitForExit();
        }
    }
}
