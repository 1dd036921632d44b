using System.Diagnostics;
using NUnit.Framework;

namespace FastXtr.Tests.Support;

/// <summary>Waiting for something another thread or process does, with a deadline that fails the test by name.</summary>
public static class Poll
{
    public static void Until(Func<bool> condition, string what, int timeoutMs = 15_000)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.ElapsedMilliseconds > timeoutMs) throw new AssertionException($"timed out waiting for {what}");
            Thread.Sleep(20);
        }
    }
}
