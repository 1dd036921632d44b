using System.Diagnostics;

namespace FastXtr.Common;

/// <summary>
/// Per-source token buckets with bounded memory (draft-wang-lisp-ai-agent-00 §7: rate limiting against mapping
/// system abuse). A fixed table of <c>sources</c> slots, indexed by a hash of the source address; a source whose
/// slot is held by another source active within the last second shares one overflow bucket with every such source,
/// so a spoofed-source flood neither grows memory nor escapes the limit.
/// </summary>
public sealed class RateLimiter
{
    private struct Bucket
    {
        public UInt128 Source;
        public double Tokens;
        public long LastTicks;
        public bool Used;
    }

    private readonly Bucket[] _slots;
    private readonly object[] _stripes;
    private Bucket _overflow;
    private readonly object _overflowLock = new();
    private readonly double _rate;
    private readonly double _burst;
    private readonly long _idleTicks = Stopwatch.Frequency;

    public RateLimiter(double perSecond, double burst, int sources)
    {
        _rate = perSecond;
        _burst = burst;
        _slots = new Bucket[Math.Max(16, sources)];
        _stripes = Enumerable.Range(0, 64).Select(_ => new object()).ToArray();
        _overflow = new Bucket { Tokens = burst, Used = true };
    }

    public long OverflowAdmissions { get; private set; }

    /// <summary>True when a message from <paramref name="source"/> may be processed now.</summary>
    public bool TryAcquire(UInt128 source, long nowTicks)
    {
        // UInt128.GetHashCode is seeded per process: a sender cannot pick sources that share one bucket.
        int i = (int)((uint)source.GetHashCode() % (uint)_slots.Length);
        lock (_stripes[i & 63])
        {
            ref Bucket b = ref _slots[i];
            if (!b.Used || b.Source == source || nowTicks - b.LastTicks > _idleTicks)
            {
                if (!b.Used || b.Source != source) b = new Bucket { Source = source, Tokens = _burst, LastTicks = nowTicks, Used = true };
                return Take(ref b, nowTicks);
            }
        }
        lock (_overflowLock)
        {
            OverflowAdmissions++;
            return Take(ref _overflow, nowTicks);
        }
    }

    private bool Take(ref Bucket b, long nowTicks)
    {
        double elapsed = (nowTicks - b.LastTicks) / (double)Stopwatch.Frequency;
        b.Tokens = Math.Min(_burst, b.Tokens + elapsed * _rate);
        b.LastTicks = nowTicks;
        if (b.Tokens < 1) return false;
        b.Tokens -= 1;
        return true;
    }

    /// <summary>Bytes this limiter holds, whatever the traffic: its table is allocated once.</summary>
    public long MemoryBytes => (long)_slots.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<Bucket>();
}
