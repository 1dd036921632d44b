using System.Net;
using FastXtr.Agent;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.Agent;

/// <summary>The Map-Resolver set's health and failover timeout (RFC 6298 arithmetic over each resolver's answer times).</summary>
[TestFixture]
public class MapResolverSetTests
{
    private static MapResolverSet Two() => new([new IPEndPoint(IPAddress.Parse("192.0.2.16"), 4342), new IPEndPoint(IPAddress.Parse("192.0.2.17"), 4342)]);

    [Test]
    public void BeforeAnyAnswer_TheFailoverTimeoutIsTheInitialGuess()
    {
        var set = Two();
        Assert.That((set.FailoverMs(0), set.FailoverMs(1)), Is.EqualTo((500, 500)));
        Assert.That(set.Snapshot(0)[0].SrttMs, Is.Null);
        Assert.That(set.FailoverMs(7), Is.EqualTo(MapResolverSet.InitialFailoverMs), "an index of a set a reload replaced");
    }

    [Test]
    public void FastAnswers_ShortenTheTimeout_ToItsFloor()
    {
        var set = Two();
        for (int i = 0; i < 5; i++) set.OnAnswer(0, 2.0);
        Assert.That(set.FailoverMs(0), Is.EqualTo(MapResolverSet.MinFailoverMs));
        Assert.That(set.Snapshot(0)[0].SrttMs, Is.EqualTo(2.0));
        Assert.That(set.FailoverMs(1), Is.EqualTo(MapResolverSet.InitialFailoverMs), "per resolver");
    }

    [Test]
    public void TheTimeout_IsSrttPlusFourVariations_WithinItsBounds()
    {
        var set = Two();
        set.OnAnswer(0, 100.0); // RFC 6298 §2.2: srtt 100, rttvar 50
        Assert.That(set.FailoverMs(0), Is.EqualTo(300));
        set.OnAnswer(0, 200.0); // §2.3: rttvar 3/4·50 + 1/4·100 = 62.5, srtt 7/8·100 + 1/8·200 = 112.5
        Assert.That(set.FailoverMs(0), Is.EqualTo(363));
        set.OnAnswer(0, 5000.0);
        Assert.That(set.FailoverMs(0), Is.EqualTo(MapResolverSet.MaxFailoverMs), "never longer than the second the RFC gives");
    }

    [Test]
    public void AnAnswerToARetransmittedRequest_IsNotTimed_ButStillClearsTheTimeouts()
    {
        var set = Two();
        set.OnAnswer(0, 2.0);
        Assert.That(set.OnTimeout(0, 1000), Is.False);
        set.OnAnswer(0, null); // Karn: which send it answered is unknown
        Assert.That(set.FailoverMs(0), Is.EqualTo(MapResolverSet.MinFailoverMs));
        Assert.That(set.Snapshot(1000)[0].UnansweredInARow, Is.Zero);
        Assert.That(set.OnTimeout(0, 2000), Is.False);
        Assert.That(set.OnTimeout(0, 2100), Is.True, "two in a row mark it down");
        Assert.That(set.Pick(2200), Is.EqualTo(1));
    }
}
