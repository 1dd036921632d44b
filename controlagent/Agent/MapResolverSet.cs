using System.Net;

namespace FastXtr.Agent;

/// <summary>
/// The configured Map-Resolvers and their health, for an ITR that must keep resolving when one of them dies (RFC 9301
/// §5.3 leaves the choice to the ITR; lispers.net and Cisco ITRs fail over the same way). A resolver that let
/// <see cref="TimeoutsToMarkDown"/> requests in a row go unanswered is marked down for <see cref="DownFor"/>; requests
/// go to the first resolver in configuration order that is up, and when every one is down, to the one whose down
/// time ends first, so that requests keep going somewhere and a resolver that comes back is found again.
/// <para>
/// How long to wait for one resolver before asking the next (<see cref="FailoverMs"/>) follows its own answer times:
/// RFC 6298's smoothed round-trip time and variation, the timeout srtt + 4 × rttvar, kept between
/// <see cref="MinFailoverMs"/> and <see cref="MaxFailoverMs"/> (<see cref="InitialFailoverMs"/> before its first answer). A resolver that answers in milliseconds is given up on
/// after a fifth of a second instead of the second RFC 9301 §5.3 sets for asking the same resolver again (which still
/// holds: see <see cref="Resolver"/>). Thread-safe.
/// </para>
/// </summary>
public sealed class MapResolverSet
{
    public const int TimeoutsToMarkDown = 2;
    public static readonly TimeSpan DownFor = TimeSpan.FromSeconds(30);
    /// <summary>The longest failover timeout: the RFC's second, after which the same resolver may be asked again.</summary>
    public const int MaxFailoverMs = 1000;
    /// <summary>The failover timeout of a resolver not timed yet: a guess shorter than the RFC's second, as DNS resolvers
    /// make for a server they have not timed, so that an agent whose first request meets a dead resolver is not the
    /// slowest to fail over. A walk of the DDT tree that meets a dead Map-Server takes longer (the resolver's own
    /// ddt-request-timeout, 500 ms by default): then both resolvers are asked and the first answer is taken.</summary>
    public const int InitialFailoverMs = 500;
    /// <summary>The shortest failover timeout: two ticks of the agent's 100 ms retransmission timer, so that one late
    /// tick or a DDT walk's first hop lost to a busy Map-Server does not send every request twice.</summary>
    public const int MinFailoverMs = 200;

    private readonly IPEndPoint[] _endpoints;
    private readonly int[] _timeouts;
    private readonly long[] _downUntilMs;
    // RFC 6298 §2 state per resolver, in milliseconds; 0 samples until the first answer.
    private readonly double[] _srttMs;
    private readonly double[] _rttvarMs;
    private readonly int[] _samples;
    private readonly object _lock = new();

    public MapResolverSet(IReadOnlyList<IPEndPoint> endpoints)
    {
        _endpoints = [.. endpoints];
        _timeouts = new int[_endpoints.Length];
        _downUntilMs = new long[_endpoints.Length];
        _srttMs = new double[_endpoints.Length];
        _rttvarMs = new double[_endpoints.Length];
        _samples = new int[_endpoints.Length];
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

    /// <summary>How long a request to <paramref name="index"/> waits before it is asked of another resolver.</summary>
    public int FailoverMs(int index)
    {
        if ((uint)index >= (uint)_endpoints.Length) return InitialFailoverMs;
        lock (_lock) return FailoverMsLocked(index);
    }

    private int FailoverMsLocked(int index)
    {
        if (_samples[index] == 0) return InitialFailoverMs;
        double rto = _srttMs[index] + 4 * _rttvarMs[index];
        return (int)Math.Clamp(Math.Ceiling(rto), MinFailoverMs, MaxFailoverMs);
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

    /// <summary>
    /// An answer to a request sent through <paramref name="index"/>: it is up again. <paramref name="roundTripMs"/> is
    /// the time from the request's only send to its answer, or null when it was sent more than once (Karn's rule: an
    /// answer to a retransmitted request cannot be timed).
    /// </summary>
    public void OnAnswer(int index, double? roundTripMs = null)
    {
        if ((uint)index >= (uint)_endpoints.Length) return;
        lock (_lock)
        {
            _timeouts[index] = 0;
            _downUntilMs[index] = 0;
            if (roundTripMs is not double r || r < 0) return;
            // RFC 6298 §2.2 and §2.3, alpha 1/8 and beta 1/4.
            if (_samples[index]++ == 0) { _srttMs[index] = r; _rttvarMs[index] = r / 2; }
            else
            {
                _rttvarMs[index] = 0.75 * _rttvarMs[index] + 0.25 * Math.Abs(_srttMs[index] - r);
                _srttMs[index] = 0.875 * _srttMs[index] + 0.125 * r;
            }
        }
    }

    /// <summary>One resolver's state, for the agent's status.</summary>
    public readonly record struct State(IPEndPoint Endpoint, bool Up, int UnansweredInARow, double? SrttMs, int FailoverMs);

    /// <summary>Each resolver with its state, for the agent's status.</summary>
    public List<State> Snapshot(long nowMs)
    {
        lock (_lock)
            return [.. _endpoints.Select((e, i) => new State(e, _downUntilMs[i] <= nowMs, _timeouts[i], _samples[i] == 0 ? null : Math.Round(_srttMs[i], 2), FailoverMsLocked(i)))];
    }
}
