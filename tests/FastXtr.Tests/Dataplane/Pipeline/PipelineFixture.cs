using FastXtr.Dataplane.Buffers;
using FastXtr.SharedMemory;
using FastXtr.SharedMemory.MapCache;
using NUnit.Framework;

namespace FastXtr.Tests.Dataplane.Pipeline;

/// <summary>
/// What the pipeline fixtures share: a private region (256 entries, one worker) with its map-cache writer, packet
/// buffers, and worker 0's counters; made before each test (before the subclass's own [SetUp]) and disposed after it.
/// </summary>
public abstract class PipelineFixture(int buffers)
{
    protected SharedRegion Region { get; private set; } = null!;
    protected MapCacheWriter Writer { get; private set; } = null!;
    protected PacketBuffers Buffers { get; private set; } = null!;
    protected WorkerCounters Counters => Region.Counters(0);

    [SetUp]
    public void CreateRegion()
    {
        Region = SharedRegion.CreatePrivate(new SharedRegionSizes(256, 16, 1, 16));
        Writer = Region.CreateWriter();
        Buffers = new PacketBuffers(buffers);
    }

    [TearDown]
    public void DisposeRegion()
    {
        Writer.Dispose();
        Buffers.Dispose();
        Region.Dispose();
    }
}
