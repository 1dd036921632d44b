using System.Net;

namespace FastXtr.Agent;

/// <summary>
/// The configured Map-Resolvers and their health, for an ITR that must keep resolving when one of them dies (RFC 9301
/// §5.3 leaves the choice to the ITR; lispers.net and Cisco ITRs fail over the same way). A resolver that let
/// <see cref="TimeoutsToMarkDown"/> requests in a row go unanswered is marked down for <see cref="DownFor"/>; requests
/// go to the first resolver in configuration order that is up, and when every one is down, to the one whose down
/// time ends first, so that requests keep going somewhere and a resolver that comes back is found again. Thread-safe.
/// </summary>
public sealed class MapResolverSet
{
    public const int TimeoutsToMarkDown = 2;
    public static readonly TimeSpan DownFor = TimeSpan.FromSeconds(30);

    private readonly IPEndPoint[] _endpoints;
    private readonly int[] _timeouts;
    private readonly long[] _downUntilMs;
    private readonly object _lock = new();

    public MapResolverSet(IReadOnlyList<IPEndPoint> endpoints)
    {
        _endpoints = [.. endpoints];
        _timeouts = new int[_endpoints.Length];
        _downUntilMs = new long[_endpoints.Length];
    }

    public int Count => _endpoints.Length;

    public IPEndPoint this[int index] => _endpoints[index];

    /// <summary>The resolver to ask now, preferring one other than <paramref name="avoid"/> (the one that just timed out).</summary>
    public int Pick(long nowMs, int avoid = -1)
    {
        if (avoid >= _endpoints.Length) avoid = -1;
        lock (_lock)
        {
            for (int i = 0; i < _endpoints.Length; i++)
                if (i != avoid && _downUntilMs[i] <= nowMs) return i;
            if (avoid >= 0 && _downUntilMs[avoid] <= nowMs) return avoid;
            int soonest = 0;
            for (int i = 1; i < _endpoints.Length; i++)
                if (_downUntilMs[i] < _downUntilMs[soonest]) soonest = i;
            return soonest;
        }
    }

    /// <summary>A request to <paramref name="index"/> went unanswered; true when that marked the resolver down.</summary>
    public bool OnTimeout(int index, long nowMs)
    {
        // An index into the set a reload replaced (a request in flight across it) counts against nothing.
        if ((uint)index >= (uint)_endpoints.Length) return false;
        lock (_lock)
        {
            if (++_timeouts[index] < TimeoutsToMarkDown || _downUntilMs[index] > nowMs) return false;
            _downUntilMs[index] = nowMs + (long)DownFor.TotalMilliseconds;
            return true;
        }
    }

    /// <summary>An answer to a request sent through <paramref name="index"/>: it is up again.</summary>
    public void OnAnswer(int index)
    {
        if ((uint)index >= (uint)_endpoints.Length) return;
        lock (_lock)
        {
            _timeouts[index] = 0;
            _downUntilMs[index] = 0;
        }
    }

    /// <summary>Each resolver with its state, for the agent's status.</summary>
    public List<(IPEndPoint Endpoint, bool Up, int UnansweredInARow)> Snapshot(long nowMs)
    {
        lock (_lock) return [.. _endpoints.Select((e, i) => (e, _downUntilMs[i] <= nowMs, _timeouts[i]))];
    }
}
