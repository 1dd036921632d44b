using FastXtr.NativeInterop;
using NUnit.Framework;

namespace FastXtr.Tests.NativeInterop;

/// <summary><see cref="Cpu.TryRequestSlice"/>: the kernel's view of the thread afterwards.</summary>
[TestFixture]
public class SchedulerSliceTests
{
    [Test]
    public void ARequestedSlice_BecomesTheThreadsSlice_AndItsPolicyStays()
    {
        bool ok = false;
        int errno = 0;
        string sched = "";
        // A thread of its own: the slice stays with the thread, and the test runner's threads keep theirs.
        var thread = new Thread(() =>
        {
            ok = Cpu.TryRequestSlice(TimeSpan.FromMicroseconds(250), out errno);
            sched = File.ReadAllText("/proc/thread-self/sched");
        });
        thread.Start();
        thread.Join();
        Assert.That(ok, Is.True, $"errno {errno}");
        long Field(string name) => long.Parse(sched.Split('\n').First(l => l.StartsWith(name + " ", StringComparison.Ordinal)).Split(':')[1].Trim(),
            System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(Field("policy"), Is.EqualTo(Linux.SCHED_OTHER));
        if (!sched.Contains("se.slice", StringComparison.Ordinal)) Assert.Ignore("this kernel does not show se.slice (custom slices came with Linux 6.12)");
        Assert.That(Field("se.slice"), Is.EqualTo(250_000), "nanoseconds");
    }
}
