using FastXtr.Packets;
using NUnit.Framework;

namespace FastXtr.Tests.Dataplane.Packets;

[TestFixture]
public class ChecksumTests
{
    [Test]
    public void SimdSum_EqualsScalarSum_OnRandomInput()
    {
        var rng = new Random(1071);
        byte[] buffer = new byte[70_000];
        for (int i = 0; i < 3000; i++)
        {
            int length = i < 600 ? i : rng.Next(0, i % 10 == 0 ? buffer.Length : 2000);
            int offset = rng.Next(0, 8);
            if (offset + length > buffer.Length) length = buffer.Length - offset;
            rng.NextBytes(buffer.AsSpan(offset, length));
            uint initial = (uint)rng.Next();
            var data = buffer.AsSpan(offset, length);
            Assert.That(InternetChecksum.Finish(InternetChecksumSimd.Sum(data, initial)), Is.EqualTo(InternetChecksum.Finish(InternetChecksum.Sum(data, initial))), $"length {length} offset {offset}");
        }
    }

    [Test]
    public void SimdSum_AllOnes_DoesNotOverflowOnLargeInput()
    {
        byte[] ones = Enumerable.Repeat((byte)0xFF, 3 << 20).ToArray();
        Assert.That(InternetChecksum.Finish(InternetChecksumSimd.Sum(ones)), Is.EqualTo(InternetChecksum.Finish(InternetChecksum.Sum(ones))));
    }
}
