using FastXtr.NativeInterop;
using NUnit.Framework;

namespace FastXtr.Tests.NativeInterop;

/// <summary>
/// The chunk pool of a UMEM shared by a worker's AF_XDP sockets: a chunk is in one place at a time, and one handed
/// back by any address inside it (a frame rewritten in place starts anywhere in its chunk) returns whole.
/// </summary>
[TestFixture]
public unsafe class XdpUmemTests
{
    [Test]
    public void EveryChunkIsTakenOnce_AndComesBackWholeFromAnyAddressInIt()
    {
        using var umem = new XdpUmem(2048, 8, "test");
        var taken = new HashSet<ulong>();
        while (umem.TryTake(out ulong chunk)) Assert.That(taken.Add(chunk), Is.True, $"chunk {chunk} taken twice");
        Assert.That(taken, Is.EquivalentTo(Enumerable.Range(0, 8).Select(i => (ulong)i * 2048)));
        Assert.That(umem.TryPeek(out _), Is.False);

        // A frame received at the kernel's headroom and rewritten 36 bytes in front of it, handed back by its start.
        byte* frame = umem.At(3 * 2048 + 256 - 36);
        Assert.That(umem.Contains(frame), Is.True);
        umem.Give(frame);
        Assert.That(umem.TryTake(out ulong back), Is.True);
        Assert.That(back, Is.EqualTo(3UL * 2048), "the chunk's start, not the frame's");
        umem.Give(back + 2047);
        Assert.That(umem.FreeCount, Is.EqualTo(1));
    }

    [Test]
    public void AChunkGivenBackTwice_IsRefused_AndAddressesOutsideAreNotItsOwn()
    {
        using var umem = new XdpUmem(4096, 2, "test");
        Assert.That(() => umem.Give(0UL), Throws.InvalidOperationException, "every chunk is already free");
        Assert.That(umem.Contains(umem.Base + umem.Bytes), Is.False);
        Assert.That(umem.Contains(umem.Base - 1), Is.False);
        Assert.That(() => new XdpUmem(3000, 2, "test"), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }
}
