using System.Runtime.CompilerServices;
using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;
using NUnit.Framework;

namespace FastXtr.Tests.Dataplane.SharedMemory;

/// <summary>The shared-memory structs have the sizes their layout comments promise (another process relies on them).</summary>
[TestFixture]
public class SharedLayoutTests
{
    [Test]
    public void StructSizes_MatchTheDocumentedLayout()
    {
        Assert.That(Unsafe.SizeOf<RlocSlot>(), Is.EqualTo(24));
        Assert.That(Unsafe.SizeOf<RlocArray>(), Is.EqualTo(24 * MapCacheEntry.MaxRlocs));
        Assert.That(Unsafe.SizeOf<MapCacheEntry>(), Is.EqualTo(MapCacheEntry.Bytes));
        Assert.That(Unsafe.SizeOf<IidSlot>(), Is.EqualTo(IidSlot.Bytes));
        Assert.That(Unsafe.SizeOf<MissRecord>(), Is.EqualTo(MissRing.RecordBytes));
        Assert.That(Unsafe.SizeOf<SharedHeader>(), Is.LessThanOrEqualTo(SharedHeader.Bytes));
        Assert.That(Unsafe.SizeOf<SharedHeader>(), Is.EqualTo(136));
        Assert.That(System.Runtime.InteropServices.Marshal.OffsetOf<SharedHeader>(nameof(SharedHeader.IndexSeq)), Is.EqualTo((nint)128),
            "IndexSeq sits on a cache line of its own");
    }
}
