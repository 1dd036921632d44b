using System.Diagnostics;
using System.Runtime;
using FastXtr.Dataplane.Workers;
using NUnit.Framework;

namespace FastXtr.Tests.Dataplane;

/// <summary>
/// The count behind <c>worker-allocated-bytes</c> (<see cref="GC.GetAllocatedBytesForCurrentThread"/>) under the data
/// plane's collection mode: a thread that allocates nothing sees it stay put while another thread drives the heap
/// through full collections. Under the default (concurrent) mode the end of each background collection's marking
/// voids the thread's allocation context and its count rises by the unused part: this test then fails (4 rises, 25-28
/// KB in all, in each of three runs).
/// </summary>
[TestFixture]
[NonParallelizable]
public class WorkerAllocationCountTests
{
    [Test]
    public void AThreadThatAllocatesNothing_KeepsItsCount_ThroughFullCollections()
    {
        var mode = GCSettings.LatencyMode;
        DataplaneHost.UseBlockingCollections();
        try
        {
            long rises = 0, risenBytes = 0;
            bool stop = false;
            var watcher = new Thread(() =>
            {
                while (!Volatile.Read(ref stop))
                {
                    GC.KeepAlive(new byte[100]); // holds an allocation context, as a worker does after its one-offs
                    long before = GC.GetAllocatedBytesForCurrentThread();
                    for (int i = 0; i < 2000; i++) Thread.SpinWait(20);
                    long after = GC.GetAllocatedBytesForCurrentThread();
                    if (after != before) { rises++; risenBytes += after - before; }
                }
            });
            watcher.Start();
            int gen2 = GC.CollectionCount(2);
            var junk = new List<byte[]>();
            var clock = Stopwatch.StartNew();
            while (GC.CollectionCount(2) - gen2 < 6 && clock.ElapsedMilliseconds < 15_000)
            {
                junk.Add(new byte[64]);
                if (junk.Count > 3_000_000) junk.RemoveRange(0, 1_000_000);
            }
            Volatile.Write(ref stop, true);
            watcher.Join();
            junk.Clear();
            Assert.That(GC.CollectionCount(2) - gen2, Is.GreaterThanOrEqualTo(6), "the heap went through full collections meanwhile");
            Assert.That((rises, risenBytes), Is.EqualTo((0L, 0L)), "rises of the count with nothing allocated between the two reads");
        }
        finally
        {
            GCSettings.LatencyMode = mode;
        }
    }
}
