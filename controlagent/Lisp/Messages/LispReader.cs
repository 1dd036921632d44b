using System.Buffers.Binary;

namespace FastXtr.Lisp.Messages;

/// <summary>
/// A forward-only big-endian reader over a message. Every read checks the remaining length first and, on a
/// shortfall, records the error with its offset and returns false without advancing; after the first error
/// every later read fails too, so decoders can check once per field group.
/// </summary>
internal ref struct LispReader
{
    private readonly ReadOnlySpan<byte> _buffer;
    private int _position;
    private LispFormatError _error;
    private int _errorOffset;
    private string? _detail;

    public LispReader(ReadOnlySpan<byte> buffer)
    {
        _buffer = buffer;
        _position = 0;
        _error = LispFormatError.None;
        _errorOffset = 0;
        _detail = null;
    }

    public readonly int Position => _position;
    public readonly int Remaining => _buffer.Length - _position;
    public readonly bool Failed => _error != LispFormatError.None;
    public readonly LispDecodeResult Result => new(_error, _errorOffset, _detail);
    public readonly ReadOnlySpan<byte> Buffer => _buffer;

    /// <summary>Records the first error (later ones are consequences of it) and returns false.</summary>
    public bool Fail(LispFormatError error, int offset, string? detail = null)
    {
        if (_error == LispFormatError.None)
        {
            _error = error;
            _errorOffset = offset;
            _detail = detail;
        }
        return false;
    }

    public bool Fail(LispFormatError error, string? detail = null) => Fail(error, _position, detail);

    private bool Ensure(int count)
    {
        if (_error != LispFormatError.None) return false;
        if ((uint)count > (uint)(_buffer.Length - _position))
            return Fail(LispFormatError.Truncated, _position, $"needs {count} bytes, {_buffer.Length - _position} left");
        return true;
    }

    public bool TryReadUInt8(out byte value)
    {
        if (!Ensure(1)) { value = 0; return false; }
        value = _buffer[_position++];
        return true;
    }

    public bool TryReadUInt16(out ushort value)
    {
        if (!Ensure(2)) { value = 0; return false; }
        value = BinaryPrimitives.ReadUInt16BigEndian(_buffer[_position..]);
        _position += 2;
        return true;
    }

    public bool TryReadUInt32(out uint value)
    {
        if (!Ensure(4)) { value = 0; return false; }
        value = BinaryPrimitives.ReadUInt32BigEndian(_buffer[_position..]);
        _position += 4;
        return true;
    }

    public bool TryReadUInt64(out ulong value)
    {
        if (!Ensure(8)) { value = 0; return false; }
        value = BinaryPrimitives.ReadUInt64BigEndian(_buffer[_position..]);
        _position += 8;
        return true;
    }

    public bool TryReadUInt128(out UInt128 value)
    {
        if (!Ensure(16)) { value = 0; return false; }
        value = BinaryPrimitives.ReadUInt128BigEndian(_buffer[_position..]);
        _position += 16;
        return true;
    }

    public bool TryReadBytes(int count, out ReadOnlySpan<byte> bytes)
    {
        if (!Ensure(count)) { bytes = default; return false; }
        bytes = _buffer.Slice(_position, count);
        _position += count;
        return true;
    }

    /// <summary>Moves to <paramref name="position"/>, which must lie between the current position and the end.</summary>
    public bool SkipTo(int position)
    {
        if (_error != LispFormatError.None) return false;
        if (position < _position || position > _buffer.Length) return Fail(LispFormatError.Truncated, _position);
        _position = position;
        return true;
    }
}
