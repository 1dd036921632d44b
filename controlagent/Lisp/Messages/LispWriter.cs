using System.Buffers.Binary;

namespace FastXtr.Lisp.Messages;

/// <summary>
/// A forward-only big-endian writer into a caller's span. Running out of space sets <see cref="Overflowed"/>
/// and turns every later write into a no-op, so an encoder checks once at the end.
/// </summary>
internal ref struct LispWriter
{
    private readonly Span<byte> _buffer;
    private int _position;
    private bool _overflowed;

    public LispWriter(Span<byte> buffer)
    {
        _buffer = buffer;
        _position = 0;
        _overflowed = false;
    }

    public readonly int Position => _position;
    public readonly bool Overflowed => _overflowed;
    public readonly Span<byte> Buffer => _buffer;

    private bool Ensure(int count)
    {
        if (_overflowed) return false;
        if ((uint)count > (uint)(_buffer.Length - _position))
        {
            _overflowed = true;
            return false;
        }
        return true;
    }

    public void WriteUInt8(byte value)
    {
        if (Ensure(1)) _buffer[_position++] = value;
    }

    public void WriteUInt16(ushort value)
    {
        if (!Ensure(2)) return;
        BinaryPrimitives.WriteUInt16BigEndian(_buffer[_position..], value);
        _position += 2;
    }

    public void WriteUInt32(uint value)
    {
        if (!Ensure(4)) return;
        BinaryPrimitives.WriteUInt32BigEndian(_buffer[_position..], value);
        _position += 4;
    }

    public void WriteUInt64(ulong value)
    {
        if (!Ensure(8)) return;
        BinaryPrimitives.WriteUInt64BigEndian(_buffer[_position..], value);
        _position += 8;
    }

    public void WriteUInt128(UInt128 value)
    {
        if (!Ensure(16)) return;
        BinaryPrimitives.WriteUInt128BigEndian(_buffer[_position..], value);
        _position += 16;
    }

    public void WriteBytes(ReadOnlySpan<byte> bytes)
    {
        if (!Ensure(bytes.Length)) return;
        bytes.CopyTo(_buffer[_position..]);
        _position += bytes.Length;
    }

    public void WriteZeros(int count)
    {
        if (!Ensure(count)) return;
        _buffer.Slice(_position, count).Clear();
        _position += count;
    }

    /// <summary>Reserves a 16-bit length field and returns its offset, for <see cref="PatchLength"/>.</summary>
    public int ReserveUInt16()
    {
        int at = _position;
        WriteUInt16(0);
        return at;
    }

    /// <summary>Writes, at <paramref name="at"/>, the number of bytes written since <paramref name="from"/>.</summary>
    public void PatchLength(int at, int from)
    {
        if (_overflowed) return;
        int length = _position - from;
        if (length > ushort.MaxValue)
        {
            _overflowed = true;
            return;
        }
        BinaryPrimitives.WriteUInt16BigEndian(_buffer[at..], (ushort)length);
    }
}
