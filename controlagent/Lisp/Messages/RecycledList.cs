namespace FastXtr.Lisp.Messages;

/// <summary>
/// A list of reusable message parts: <see cref="Clear"/> keeps the instances, <see cref="AddNew"/> hands back
/// an old one before it allocates, so decoding the same shape of message again allocates nothing.
/// </summary>
public sealed class RecycledList<T> : IReadOnlyList<T> where T : class, new()
{
    private readonly List<T> _items = [];

    public int Count { get; private set; }

    public T this[int index] => (uint)index < (uint)Count ? _items[index] : throw new ArgumentOutOfRangeException(nameof(index));

    public void Clear() => Count = 0;

    /// <summary>Appends a slot and returns the part in it for filling; its earlier content is stale and must be overwritten.</summary>
    public T AddSlot()
    {
        if (Count == _items.Count) _items.Add(new T());
        return _items[Count++];
    }

    /// <summary>Appends a part built elsewhere (encode side).</summary>
    public void Add(T item)
    {
        if (Count == _items.Count) _items.Add(item);
        else _items[Count] = item;
        Count++;
    }

    public IEnumerator<T> GetEnumerator()
    {
        for (int i = 0; i < Count; i++) yield return _items[i];
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
