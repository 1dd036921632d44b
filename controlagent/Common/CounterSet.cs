using System.Runtime.CompilerServices;

namespace FastXtr.Common;

/// <summary>
/// A role's counters, one per member of <typeparamref name="TCounter"/> (an int enum whose last member, <c>Count</c>,
/// is not a counter): added to from any thread, read one at a time, printed under their kebab-case names.
/// </summary>
public class CounterSet<TCounter> where TCounter : struct, Enum
{
    private static readonly TCounter[] Listed = Enum.GetValues<TCounter>().Where(c => c.ToString() != "Count").ToArray();
    private readonly long[] _values = new long[Listed.Length];

    public void Add(TCounter c, long n = 1) => Interlocked.Add(ref _values[Index(c)], n);

    public long this[TCounter c] => Volatile.Read(ref _values[Index(c)]);

    private static string Name(TCounter c) => FastXtr.Packets.CounterNames.Kebab(c.ToString());

    /// <summary>Every counter by name, in declaration order.</summary>
    public Dictionary<string, long> ToDictionary() => Listed.ToDictionary(Name, c => this[c]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Index(TCounter c) => Unsafe.As<TCounter, int>(ref c);
}
