using FastXtr.NativeInterop;
using NUnit.Framework;

namespace FastXtr.Tests.NativeInterop;

public class SharedMemoryMappingTests
{
    [Test]
    public void ACreatedRegion_HasNoNameUntilPublished_AndANameIsNeverTakenTwice()
    {
        string name = $"fxtest-publish-{Environment.ProcessId}-{Guid.NewGuid():n}";
        string path = SharedMemoryMapping.PathFor(name);
        try
        {
            using (var mapping = SharedMemoryMapping.Create(name, 4096))
            {
                Assert.That(File.Exists(path), Is.False, "an attaching process must not find a file whose header is being written");
                Assert.That(Directory.GetFiles("/dev/shm", name + ".creating-*"), Has.Length.EqualTo(1));
                mapping.Publish();
                Assert.That(File.Exists(path), Is.True);
                Assert.That(mapping.IsCurrent(), Is.True, "the published name is the mapped file");
                Assert.That(Directory.GetFiles("/dev/shm", name + ".creating-*"), Is.Empty, "the private name is removed");
            }
            var taken = Assert.Throws<NativeException>(() => SharedMemoryMapping.Create(name, 4096));
            Assert.That(taken!.Errno, Is.EqualTo(Linux.EEXIST));

            // Two creators racing: the one that publishes second gets EEXIST and leaves nothing behind.
            File.Delete(path);
            using var first = SharedMemoryMapping.Create(name, 4096);
            using var second = SharedMemoryMapping.Create(name, 4096);
            first.Publish();
            var lost = Assert.Throws<NativeException>(second.Publish);
            Assert.That(lost!.Errno, Is.EqualTo(Linux.EEXIST));
            Assert.That(Directory.GetFiles("/dev/shm", name + ".creating-*"), Is.Empty);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
