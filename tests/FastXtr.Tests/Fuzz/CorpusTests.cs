using FastXtr.Packets;
using FastXtr.Fuzz;
using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.Fuzz;

/// <summary>
/// Replays the SharpFuzz seed corpus (tests/fuzz/corpus/TARGET/*) through the same targets a fuzzing run uses,
/// so every finding that was ever added to the corpus stays fixed.
/// </summary>
[TestFixture]
public class CorpusTests
{
    private static string CorpusDirectory => Path.Combine(TestContext.CurrentContext.TestDirectory, "corpus");

    public static IEnumerable<string> Targets => FuzzTargets.All.Keys;

    [TestCaseSource(nameof(Targets))]
    public void Corpus_ReplaysCleanly(string target)
    {
        string dir = Path.Combine(CorpusDirectory, target);
        Assert.That(Directory.Exists(dir), Is.True, $"no seed corpus for {target} at {dir}");
        var files = Directory.GetFiles(dir);
        Assert.That(files, Is.Not.Empty, $"the {target} corpus is empty");
        foreach (var file in files)
        {
            byte[] input = File.ReadAllBytes(file);
            try
            {
                FuzzTargets.All[target](input);
            }
            catch (Exception e)
            {
                Assert.Fail($"{target}/{Path.GetFileName(file)}: {e}");
            }
        }
    }

    /// <summary>Regenerates the seeds from the golden vectors: <c>dotnet test --filter Name=WriteSeedCorpus</c>.</summary>
    [Test, Explicit("writes tests/fuzz/corpus in the source tree")]
    public void WriteSeedCorpus()
    {
        string dir = TestContext.CurrentContext.TestDirectory;
        while (!File.Exists(Path.Combine(dir, "FastXtr.sln"))) dir = Path.GetDirectoryName(dir)!;
        string root = Path.Combine(dir, "tests", "fuzz", "corpus");
        void Write(string target, string name, byte[] bytes)
        {
            Directory.CreateDirectory(Path.Combine(root, target));
            File.WriteAllBytes(Path.Combine(root, target, name), bytes);
        }
        Write("map-request", "golden", GoldenVectors.MapRequest);
        Write("map-request", "all-flags", GoldenVectors.MapRequestAllFlags);
        Write("map-reply", "golden", GoldenVectors.MapReply);
        Write("map-reply", "negative", GoldenVectors.NegativeMapReply);
        Write("map-register", "golden-sha256-context", GoldenVectors.MapRegister);
        Write("map-notify", "golden-sha1", GoldenVectors.MapNotify);
        Write("map-notify", "ack", GoldenVectors.MapNotifyAck);
        Write("ecm", "map-request", GoldenVectors.EcmMapRequest);
        Write("map-referral", "golden-with-sig", GoldenVectors.MapReferral);
        Write("info", "request", GoldenVectors.InfoRequest);
        Write("info", "reply", GoldenVectors.InfoReply);
        byte[] header = new byte[8];
        LispDataHeader.WithNonce(0x123456, 1000).Write(header);
        Write("data-header", "nonce-iid", header);
        LispDataHeader.WithMapVersions(1, 2).Write(header);
        Write("data-header", "map-versions", header);
        byte[] packet = new byte[LispDataPacket.Ipv4OverheadBytes + 4];
        LispDataPacket.WriteIpv4(packet, 0xc0000201, 0xc0000202, 5000, 64, 0, 0, true, LispDataHeader.WithNonce(1, 7), 4);
        Write("data-packet", "ipv4", packet);
        byte[] packet6 = new byte[LispDataPacket.Ipv6OverheadBytes + 4];
        LispDataPacket.WriteIpv6(packet6, 1, 2, 5000, 64, 0, 0, LispDataHeader.Plain(9), 4);
        Write("data-packet", "ipv6", packet6);
        Write("agent-context", "context", """{"agent-context": {"latency": "low", "hardware": ["gpu", "gpu-a100"], "state": "ready", "security-level": 3, "load": 35, "x": [1]}}"""u8.ToArray());
        Write("agent-context", "constraints", """{"agent-constraints": {"hardware": ["gpu"], "max-latency": "medium", "min-security-level": 2, "states": ["ready"]}}"""u8.ToArray());
    }
}
