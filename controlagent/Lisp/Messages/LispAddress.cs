using System.Buffers.Binary;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text;

namespace FastXtr.Lisp.Messages;

public enum LispAddressKind : byte
{
    /// <summary>AFI 0: no address.</summary>
    None,
    Ipv4,
    Ipv6,
    Mac,
    DistinguishedName,
    /// <summary>Instance-ID LCAF (RFC 8060 §4.1): a 32-bit IID and mask-length around an inner address.</summary>
    InstanceId,
    /// <summary>AFI-List LCAF (RFC 8060 §4.16.1): a sequence of addresses.</summary>
    AfiList,
    /// <summary>JSON Data Model LCAF (RFC 8060 §4.10.2): JSON text and an optional trailing address.</summary>
    Json,
    /// <summary>Key/Value Address Pair LCAF (RFC 8060 §4.10.3).</summary>
    KeyValue,
    /// <summary>Any other LCAF type: skipped by its length on receipt and passed on as raw bytes.</summary>
    UnknownLcaf,
}

/// <summary>
/// An address as LISP carries it wherever an AFI field stands: EID-prefix, RLOC, ITR-RLOC, Source-EID.
/// <para>
/// Plain AFIs: 0 (none), 1 (IPv4), 2 (IPv6), 16389 and 6 (MAC), 17 (Distinguished Name, NUL-terminated).
/// AFI 16387 opens an LCAF (RFC 8060 §3):
/// <code>
///  |           AFI = 16387         |     Rsvd1     |     Flags     |
///  |    Type       |     Rsvd2     |            Length             |
/// </code>
/// where Length counts the bytes after the Length field. Instance-ID (2), AFI-List (1), JSON (14) and
/// Key/Value (15) are understood; every other type is kept as raw bytes and skipped by its length, so an
/// unknown LCAF never fails a message.
/// </para>
/// <para>
/// The class is mutable so that a decoder can reuse it: decoding into an instance reuses its child nodes and
/// buffers, and once a message shape has been seen, decoding it again allocates nothing.
/// </para>
/// </summary>
public sealed partial class LispAddress
{
    /// <summary>How deep LCAFs may nest (an IID around an AFI-List around a JSON is depth 3).</summary>
    public const int MaxNestingDepth = 8;
    /// <summary>The most items an AFI-List may hold; more is treated as hostile input.</summary>
    public const int MaxAfiListItems = 32;
    public const int LcafHeaderLength = 6;

    [InlineArray(16)]
    private struct Bytes16
    {
        private byte _element;
    }

    private Bytes16 _bytes;
    private byte[] _data = [];
    private int _dataLength;
    // Allocated on first use: most addresses are plain, and a Map-Server holds a million of them.
    private List<LispAddress>? _childList;
    private List<LispAddress> _children => _childList ??= new List<LispAddress>(2);
    private int _childCount;

    public LispAddressKind Kind { get; private set; }

    /// <summary>The AFI a MAC address arrived with (16389, or 6 from some implementations); 16389 when built here.</summary>
    public ushort MacAfi { get; private set; } = Afi.Mac;

    /// <summary>Instance-ID LCAF: the 32-bit Instance ID (the data plane uses its low 24 bits, RFC 9300 §5.3).</summary>
    public uint InstanceIdValue { get; private set; }

    /// <summary>Instance-ID LCAF: the IID mask-length carried in Rsvd2 (RFC 8060 §4.1).</summary>
    public byte IidMaskLength { get; private set; }

    /// <summary>JSON LCAF: the B bit (binary JSON).</summary>
    public bool JsonBinary { get; private set; }

    /// <summary>Unknown LCAF: its type, flags and Rsvd2, kept to pass it on unchanged.</summary>
    public byte LcafTypeValue { get; private set; }
    public byte LcafFlags { get; private set; }
    public byte LcafRsvd2 { get; private set; }

    public LispAddress() { }

    /// <summary>The AFI written on the wire for this address.</summary>
    public ushort WireAfi => Kind switch
    {
        LispAddressKind.None => Afi.None,
        LispAddressKind.Ipv4 => Afi.Ipv4,
        LispAddressKind.Ipv6 => Afi.Ipv6,
        LispAddressKind.Mac => MacAfi,
        LispAddressKind.DistinguishedName => Afi.DistinguishedName,
        _ => Afi.Lcaf,
    };

    /// <summary>The width of the address in bits, for mask-length checks; -1 where masks do not apply.</summary>
    public int AddressBits => Kind switch
    {
        LispAddressKind.None => 0,
        LispAddressKind.Ipv4 => 32,
        LispAddressKind.Ipv6 => 128,
        LispAddressKind.Mac => 48,
        LispAddressKind.InstanceId => Inner.AddressBits,
        _ => -1,
    };

    public uint Ipv4Value => Kind == LispAddressKind.Ipv4 ? BinaryPrimitives.ReadUInt32BigEndian(_bytes) : throw WrongKind(LispAddressKind.Ipv4);
    public UInt128 Ipv6Value => Kind == LispAddressKind.Ipv6 ? BinaryPrimitives.ReadUInt128BigEndian(_bytes) : throw WrongKind(LispAddressKind.Ipv6);

    /// <summary>The raw bytes of an IPv4 (4), IPv6 (16) or MAC (6) address; empty for other kinds.</summary>
    public ReadOnlySpan<byte> AddressBytes => Kind switch
    {
        LispAddressKind.Ipv4 => ((ReadOnlySpan<byte>)_bytes)[..4],
        LispAddressKind.Ipv6 => _bytes,
        LispAddressKind.Mac => ((ReadOnlySpan<byte>)_bytes)[..6],
        _ => [],
    };

    /// <summary>The name's ASCII bytes without the NUL, the JSON text, or an unknown LCAF's body.</summary>
    public ReadOnlySpan<byte> Data => _data.AsSpan(0, _dataLength);

    public string Name => Kind == LispAddressKind.DistinguishedName ? Encoding.ASCII.GetString(Data) : throw WrongKind(LispAddressKind.DistinguishedName);
    public string JsonText => Kind == LispAddressKind.Json ? Encoding.UTF8.GetString(Data) : throw WrongKind(LispAddressKind.Json);

    /// <summary>Instance-ID LCAF: the address inside it.</summary>
    public LispAddress Inner => Kind == LispAddressKind.InstanceId ? _children[0] : throw WrongKind(LispAddressKind.InstanceId);

    /// <summary>JSON LCAF: the trailing address (AFI 0 when there is none).</summary>
    public LispAddress JsonTrailingAddress => Kind == LispAddressKind.Json ? _children[0] : throw WrongKind(LispAddressKind.Json);

    public LispAddress Key => Kind == LispAddressKind.KeyValue ? _children[0] : throw WrongKind(LispAddressKind.KeyValue);
    public LispAddress Value => Kind == LispAddressKind.KeyValue ? _children[1] : throw WrongKind(LispAddressKind.KeyValue);

    /// <summary>AFI-List LCAF: the number of items and each item.</summary>
    public int ItemCount => Kind == LispAddressKind.AfiList ? _childCount : 0;
    public LispAddress Item(int index) => Kind == LispAddressKind.AfiList && (uint)index < (uint)_childCount ? _children[index] : throw new ArgumentOutOfRangeException(nameof(index));

    private InvalidOperationException WrongKind(LispAddressKind wanted) => new($"the address is {Kind}, not {wanted}");

    // ---- building ----------------------------------------------------------------------------------------

    public static LispAddress None() => new() { Kind = LispAddressKind.None };

    public static LispAddress FromIpv4(uint address)
    {
        var a = new LispAddress { Kind = LispAddressKind.Ipv4 };
        BinaryPrimitives.WriteUInt32BigEndian(a._bytes, address);
        return a;
    }

    public static LispAddress FromIpv6(UInt128 address)
    {
        var a = new LispAddress { Kind = LispAddressKind.Ipv6 };
        BinaryPrimitives.WriteUInt128BigEndian(a._bytes, address);
        return a;
    }

    public static LispAddress FromIp(IPAddress address)
    {
        Span<byte> b = stackalloc byte[16];
        if (!address.TryWriteBytes(b, out int n)) throw new ArgumentException("unwritable address", nameof(address));
        return n == 4 ? FromIpv4(BinaryPrimitives.ReadUInt32BigEndian(b)) : FromIpv6(BinaryPrimitives.ReadUInt128BigEndian(b));
    }

    public static LispAddress Parse(string text) => FromIp(IPAddress.Parse(text));

    public static LispAddress FromMac(ReadOnlySpan<byte> mac, ushort afi = Afi.Mac)
    {
        if (mac.Length != 6) throw new ArgumentException("a MAC address has 6 bytes", nameof(mac));
        if (afi != Afi.Mac && afi != Afi.Ieee802) throw new ArgumentOutOfRangeException(nameof(afi));
        var a = new LispAddress { Kind = LispAddressKind.Mac, MacAfi = afi };
        mac.CopyTo(a._bytes);
        return a;
    }

    public static LispAddress FromName(string name)
    {
        if (name.Contains('\0', StringComparison.Ordinal) || !Ascii.IsValid(name))
            throw new ArgumentException("a distinguished name is ASCII without NUL", nameof(name));
        var a = new LispAddress { Kind = LispAddressKind.DistinguishedName };
        a.SetData(Encoding.ASCII.GetBytes(name));
        return a;
    }

    public static LispAddress WithInstanceId(uint instanceId, LispAddress inner, byte iidMaskLength = 0)
    {
        var a = new LispAddress { Kind = LispAddressKind.InstanceId, InstanceIdValue = instanceId, IidMaskLength = iidMaskLength };
        a.SetChildren(inner);
        return a;
    }

    public static LispAddress AfiList(params LispAddress[] items)
    {
        if (items.Length > MaxAfiListItems) throw new ArgumentException($"at most {MaxAfiListItems} items", nameof(items));
        var a = new LispAddress { Kind = LispAddressKind.AfiList };
        a.SetChildren(items);
        return a;
    }

    public static LispAddress Json(string json, LispAddress? trailing = null) => Json(Encoding.UTF8.GetBytes(json), trailing);

    public static LispAddress Json(ReadOnlySpan<byte> utf8Json, LispAddress? trailing = null, bool binary = false)
    {
        var a = new LispAddress { Kind = LispAddressKind.Json, JsonBinary = binary };
        a.SetData(utf8Json);
        a.SetChildren(trailing ?? None());
        return a;
    }

    public static LispAddress KeyValue(LispAddress key, LispAddress value)
    {
        var a = new LispAddress { Kind = LispAddressKind.KeyValue };
        a.SetChildren(key, value);
        return a;
    }

    /// <summary>An LCAF of a type this codec does not interpret, carried as raw body bytes.</summary>
    public static LispAddress UnknownLcaf(byte type, ReadOnlySpan<byte> body, byte flags = 0, byte rsvd2 = 0)
    {
        if (type is LcafType.AfiList or LcafType.InstanceId or LcafType.Json or LcafType.KeyValueAddressPair)
            throw new ArgumentException($"LCAF type {type} is understood; build it with its own factory", nameof(type));
        var a = new LispAddress { Kind = LispAddressKind.UnknownLcaf, LcafTypeValue = type, LcafFlags = flags, LcafRsvd2 = rsvd2 };
        a.SetData(body);
        return a;
    }

    private void SetData(ReadOnlySpan<byte> data)
    {
        if (_data.Length < data.Length) _data = new byte[Math.Max(data.Length, 32)];
        data.CopyTo(_data);
        _dataLength = data.Length;
    }

    private void SetChildren(params LispAddress[] children)
    {
        _children.Clear();
        _children.AddRange(children);
        _childCount = children.Length;
    }

    /// <summary>The child node at <paramref name="index"/>, reused from an earlier decode when there is one.</summary>
    private LispAddress ReuseChild(int index)
    {
        while (_children.Count <= index) _children.Add(new LispAddress());
        return _children[index];
    }

    /// <summary>
    /// Makes this address an IPv4 or IPv6 address in place: for encode-only scratch addresses that a hot path
    /// reuses instead of allocating (never for an address that somebody else holds).
    /// </summary>
    internal void AssignIp(bool ipv6, UInt128 value)
    {
        _childCount = 0;
        _dataLength = 0;
        if (ipv6)
        {
            Kind = LispAddressKind.Ipv6;
            BinaryPrimitives.WriteUInt128BigEndian(_bytes, value);
        }
        else
        {
            Kind = LispAddressKind.Ipv4;
            BinaryPrimitives.WriteUInt32BigEndian(_bytes, (uint)value);
        }
    }

    /// <summary>Makes this address an Instance-ID LCAF in place and returns its (reused) inner address to fill.</summary>
    internal LispAddress AssignInstanceId(uint instanceId, byte iidMaskLength = 0)
    {
        _dataLength = 0;
        Kind = LispAddressKind.InstanceId;
        InstanceIdValue = instanceId;
        IidMaskLength = iidMaskLength;
        _childCount = 1;
        return ReuseChild(0);
    }

    // ---- semantics used by records -------------------------------------------------------------------------

    /// <summary>
    /// The Instance ID this address is wrapped in, or null. Looks through an AFI-List's first item, where a
    /// Source-EID with constraints keeps it (CONTEXT-EXTENSION.md §2).
    /// </summary>
    public uint? InstanceIdOrNull => Kind switch
    {
        LispAddressKind.InstanceId => InstanceIdValue,
        LispAddressKind.AfiList when _childCount > 0 => _children[0].InstanceIdOrNull,
        _ => null,
    };

    /// <summary>
    /// The first plain address (IPv4, IPv6, MAC or name) found by looking through Instance-ID LCAFs and the
    /// first items of AFI-Lists; <see cref="LispAddressKind.None"/> when there is none.
    /// </summary>
    public LispAddress PlainAddress
    {
        get
        {
            LispAddress a = this;
            for (int depth = 0; depth <= MaxNestingDepth; depth++)
            {
                switch (a.Kind)
                {
                    case LispAddressKind.InstanceId: a = a._children[0]; break;
                    case LispAddressKind.AfiList when a._childCount > 0: a = a._children[0]; break;
                    case LispAddressKind.Ipv4 or LispAddressKind.Ipv6 or LispAddressKind.Mac or LispAddressKind.DistinguishedName: return a;
                    default: return s_none;
                }
            }
            return s_none;
        }
    }

    /// <summary>The JSON LCAF among an AFI-List's items (or this address itself when it is one), or null.</summary>
    public LispAddress? JsonItem
    {
        get
        {
            if (Kind == LispAddressKind.Json) return this;
            if (Kind == LispAddressKind.AfiList)
                for (int i = 0; i < _childCount; i++)
                    if (_children[i].Kind == LispAddressKind.Json) return _children[i];
            return null;
        }
    }

    private static readonly LispAddress s_none = None();

    public IPAddress ToIPAddress() => Kind switch
    {
        LispAddressKind.Ipv4 or LispAddressKind.Ipv6 => new IPAddress(AddressBytes),
        _ => throw new InvalidOperationException($"{Kind} is not an IP address"),
    };

    public bool ContentEquals(LispAddress? other)
    {
        if (other is null || other.Kind != Kind) return false;
        switch (Kind)
        {
            case LispAddressKind.None: return true;
            case LispAddressKind.Ipv4 or LispAddressKind.Ipv6: return AddressBytes.SequenceEqual(other.AddressBytes);
            case LispAddressKind.Mac: return MacAfi == other.MacAfi && AddressBytes.SequenceEqual(other.AddressBytes);
            case LispAddressKind.DistinguishedName: return Data.SequenceEqual(other.Data);
            case LispAddressKind.InstanceId: return InstanceIdValue == other.InstanceIdValue && IidMaskLength == other.IidMaskLength && Inner.ContentEquals(other.Inner);
            case LispAddressKind.Json: return JsonBinary == other.JsonBinary && Data.SequenceEqual(other.Data) && JsonTrailingAddress.ContentEquals(other.JsonTrailingAddress);
            case LispAddressKind.KeyValue: return Key.ContentEquals(other.Key) && Value.ContentEquals(other.Value);
            case LispAddressKind.AfiList:
                if (_childCount != other._childCount) return false;
                for (int i = 0; i < _childCount; i++)
                    if (!_children[i].ContentEquals(other._children[i])) return false;
                return true;
            default:
                return LcafTypeValue == other.LcafTypeValue && LcafFlags == other.LcafFlags && LcafRsvd2 == other.LcafRsvd2 && Data.SequenceEqual(other.Data);
        }
    }

    /// <summary>A deep copy that owns its own nodes and buffers.</summary>
    public LispAddress Clone()
    {
        var c = new LispAddress
        {
            Kind = Kind, MacAfi = MacAfi, InstanceIdValue = InstanceIdValue, IidMaskLength = IidMaskLength,
            JsonBinary = JsonBinary, LcafTypeValue = LcafTypeValue, LcafFlags = LcafFlags, LcafRsvd2 = LcafRsvd2,
            _bytes = _bytes,
        };
        if (_dataLength > 0) c.SetData(Data);
        for (int i = 0; i < _childCount; i++) c._children.Add(_children[i].Clone());
        c._childCount = _childCount;
        return c;
    }

    public override string ToString() => Kind switch
    {
        LispAddressKind.None => "(none)",
        LispAddressKind.Ipv4 or LispAddressKind.Ipv6 => ToIPAddress().ToString(),
        LispAddressKind.Mac => Convert.ToHexString(AddressBytes).ToLowerInvariant() is var h ? string.Join(':', Enumerable.Range(0, 6).Select(i => h.Substring(i * 2, 2))) : "",
        LispAddressKind.DistinguishedName => $"'{Name}'",
        LispAddressKind.InstanceId => $"[{InstanceIdValue}]{Inner}",
        LispAddressKind.AfiList => "(" + string.Join(", ", Enumerable.Range(0, _childCount).Select(i => _children[i].ToString())) + ")",
        LispAddressKind.Json => JsonBinary ? $"json-binary({_dataLength} bytes)" : $"json{JsonText}",
        LispAddressKind.KeyValue => $"{{{Key} => {Value}}}",
        _ => $"lcaf-type-{LcafTypeValue}({_dataLength} bytes)",
    };
}
