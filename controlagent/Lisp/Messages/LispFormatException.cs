namespace FastXtr.Lisp.Messages;

/// <summary>Why a control message could not be decoded (or encoded).</summary>
public enum LispFormatError : byte
{
    None = 0,
    Truncated,
    UnexpectedMessageType,
    UnknownMessageType,
    UnsupportedAfi,
    BadLcafLength,
    BadMaskLength,
    NestingTooDeep,
    BadAuthenticationLength,
    UnterminatedName,
    TrailingBytes,
    BadInnerHeader,
    TooManyItems,
    DestinationTooSmall,
    InvalidField,
}

/// <summary>The result of a decode: an error reason and the byte offset at which it was found.</summary>
public readonly record struct LispDecodeResult(LispFormatError Error, int Offset, string? Detail = null)
{
    public static readonly LispDecodeResult Success = new(LispFormatError.None, 0);
    public bool Ok => Error == LispFormatError.None;

    public string Describe() => Ok ? "ok" : $"{Error} at offset {Offset}" + (Detail is null ? "" : $": {Detail}");

    /// <summary>Throws <see cref="LispFormatException"/> unless this is a success.</summary>
    public void ThrowIfFailed()
    {
        if (!Ok) throw new LispFormatException(Error, Offset, Detail);
    }
}

/// <summary>The codec's only exception type: raised at the control-plane boundary for a malformed message.</summary>
public sealed class LispFormatException : Exception
{
    public LispFormatException(LispFormatError error, int offset, string? detail = null)
        : base($"malformed LISP message: {error} at offset {offset}" + (detail is null ? "" : $" ({detail})"))
    {
        Error = error;
        Offset = offset;
    }

    public LispFormatException() : this(LispFormatError.InvalidField, 0) { }
    public LispFormatException(string message) : base(message) { Error = LispFormatError.InvalidField; }
    public LispFormatException(string message, Exception inner) : base(message, inner) { Error = LispFormatError.InvalidField; }

    public LispFormatError Error { get; }
    public int Offset { get; }
}
