using FastXtr.NativeInterop;
using NUnit.Framework;

namespace FastXtr.Tests.NativeInterop;

public class SharedMemoryMappingTests
{
    [Test]
    public void ACreatorKilledBeforePublishing_LeavesNothingTheNextCreatorKeeps()
    {
        string name = $"fxtest-abandoned-{Environment.ProcessId}-{Guid.NewGuid():n}";
        string path = SharedMemoryMapping.PathFor(name);
        // A pid that is not running (pid_max is at most 2^22), and this process's own (alive).
        int dead = Enumerable.Range(4_000_000, 100_000).First(p => !Directory.Exists($"/proc/{p}"));
        string abandoned = $"{path}.creating-{dead}-0badc0de", live = $"{path}.creating-{Environment.ProcessId}-00c0ffee";
        try
        {
            File.WriteAllBytes(abandoned, new byte[4096]);
            File.WriteAllBytes(live, new byte[4096]);
            using (var mapping = SharedMemoryMapping.Create(name, 4096)) mapping.Publish();
            Assert.That(File.Exists(abandoned), Is.False, "the dead creator's file is removed");
            Assert.That(File.Exists(live), Is.True, "a live creator's file is left alone");
        }
        finally
        {
            foreach (string f in new[] { path, abandoned, live }) File.Delete(f);
        }
    }

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
