using System.Buffers.Binary;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text;

namespace FastXtr.Lisp.Messages;

/// <summary>The wire format of addresses: AFI-encoded addresses and LCAFs (RFC 8060), read and written.</summary>
public sealed partial class LispAddress
{
    internal static bool TryRead(ref LispReader r, LispAddress into, int depth = 0)
    {
        int start = r.Position;
        if (!r.TryReadUInt16(out ushort afi)) return false;
        into._childCount = 0;
        into._dataLength = 0;
        switch (afi)
        {
            case Afi.None:
                into.Kind = LispAddressKind.None;
                return true;
            case Afi.Ipv4:
                return TryReadFixed(ref r, into, LispAddressKind.Ipv4, 4);
            case Afi.Ipv6:
                return TryReadFixed(ref r, into, LispAddressKind.Ipv6, 16);
            case Afi.Mac:
            case Afi.Ieee802:
                into.MacAfi = afi;
                return TryReadFixed(ref r, into, LispAddressKind.Mac, 6);
            case Afi.DistinguishedName:
                return TryReadName(ref r, into);
            case Afi.Lcaf:
                return TryReadLcaf(ref r, into, depth, start);
            default:
                return r.Fail(LispFormatError.UnsupportedAfi, start, $"AFI {afi}");
        }
    }

    private static bool TryReadFixed(ref LispReader r, LispAddress into, LispAddressKind kind, int length)
    {
        if (!r.TryReadBytes(length, out var bytes)) return false;
        into.Kind = kind;
        bytes.CopyTo(into._bytes);
        return true;
    }

    private static bool TryReadName(ref LispReader r, LispAddress into)
    {
        int start = r.Position;
        int nul = r.Buffer[start..].IndexOf((byte)0);
        if (nul < 0) return r.Fail(LispFormatError.UnterminatedName, start, "distinguished name without NUL");
        r.TryReadBytes(nul + 1, out var bytes);
        into.Kind = LispAddressKind.DistinguishedName;
        into.SetData(bytes[..nul]);
        return true;
    }

    private static bool TryReadLcaf(ref LispReader r, LispAddress into, int depth, int start)
    {
        if (depth >= MaxNestingDepth) return r.Fail(LispFormatError.NestingTooDeep, start, $"LCAFs nested deeper than {MaxNestingDepth}");
        if (!r.TryReadUInt8(out _) || !r.TryReadUInt8(out byte flags) || !r.TryReadUInt8(out byte type)
            || !r.TryReadUInt8(out byte rsvd2) || !r.TryReadUInt16(out ushort length))
            return false;
        int bodyStart = r.Position;
        if (length > r.Remaining) return r.Fail(LispFormatError.BadLcafLength, start + 6, $"LCAF type {type} length {length} exceeds the {r.Remaining} bytes left");
        int end = bodyStart + length;
        switch (type)
        {
            case LcafType.InstanceId:
                if (length < 6) return r.Fail(LispFormatError.BadLcafLength, start + 6, $"Instance-ID LCAF length {length} < 6");
                r.TryReadUInt32(out uint iid);
                into.Kind = LispAddressKind.InstanceId;
                into.InstanceIdValue = iid;
                into.IidMaskLength = rsvd2;
                into._childCount = 1;
                if (!TryRead(ref r, into.ReuseChild(0), depth + 1)) return false;
                break;
            case LcafType.AfiList:
                into.Kind = LispAddressKind.AfiList;
                while (r.Position < end)
                {
                    if (into._childCount == MaxAfiListItems) return r.Fail(LispFormatError.TooManyItems, r.Position, $"AFI-List with more than {MaxAfiListItems} items");
                    if (!TryRead(ref r, into.ReuseChild(into._childCount), depth + 1)) return false;
                    into._childCount++;
                }
                break;
            case LcafType.Json:
                if (!r.TryReadUInt16(out ushort jsonLength)) return false;
                if (jsonLength > end - r.Position) return r.Fail(LispFormatError.BadLcafLength, bodyStart, $"JSON length {jsonLength} exceeds its LCAF");
                r.TryReadBytes(jsonLength, out var json);
                into.Kind = LispAddressKind.Json;
                into.JsonBinary = (rsvd2 & 0x01) != 0;
                into.SetData(json);
                into._childCount = 1;
                var trailing = into.ReuseChild(0);
                if (r.Position < end)
                {
                    if (!TryRead(ref r, trailing, depth + 1)) return false;
                }
                else
                {
                    trailing.Kind = LispAddressKind.None;
                    trailing._childCount = 0;
                }
                break;
            case LcafType.KeyValueAddressPair:
                into.Kind = LispAddressKind.KeyValue;
                into._childCount = 2;
                if (!TryRead(ref r, into.ReuseChild(0), depth + 1) || !TryRead(ref r, into.ReuseChild(1), depth + 1)) return false;
                break;
            default:
                r.TryReadBytes(length, out var body);
                into.Kind = LispAddressKind.UnknownLcaf;
                into.LcafTypeValue = type;
                into.LcafFlags = flags;
                into.LcafRsvd2 = rsvd2;
                into.SetData(body);
                return true;
        }
        if (r.Position > end) return r.Fail(LispFormatError.BadLcafLength, start + 6, $"LCAF type {type} contents run {r.Position - end} bytes past its length {length}");
        // Bytes left inside a known LCAF belong to a later revision of its format: skip them by the length.
        return r.SkipTo(end);
    }

    internal void Write(ref LispWriter w)
    {
        switch (Kind)
        {
            case LispAddressKind.None:
                w.WriteUInt16(Afi.None);
                return;
            case LispAddressKind.Ipv4:
            case LispAddressKind.Ipv6:
            case LispAddressKind.Mac:
                w.WriteUInt16(WireAfi);
                w.WriteBytes(AddressBytes);
                return;
            case LispAddressKind.DistinguishedName:
                w.WriteUInt16(Afi.DistinguishedName);
                w.WriteBytes(Data);
                w.WriteUInt8(0);
                return;
        }
        byte type = Kind switch
        {
            LispAddressKind.InstanceId => LcafType.InstanceId,
            LispAddressKind.AfiList => LcafType.AfiList,
            LispAddressKind.Json => LcafType.Json,
            LispAddressKind.KeyValue => LcafType.KeyValueAddressPair,
            _ => LcafTypeValue,
        };
        byte rsvd2 = Kind switch
        {
            LispAddressKind.InstanceId => IidMaskLength,
            LispAddressKind.Json => (byte)(JsonBinary ? 1 : 0),
            LispAddressKind.UnknownLcaf => LcafRsvd2,
            _ => 0,
        };
        w.WriteUInt16(Afi.Lcaf);
        w.WriteUInt8(0);
        w.WriteUInt8(Kind == LispAddressKind.UnknownLcaf ? LcafFlags : (byte)0);
        w.WriteUInt8(type);
        w.WriteUInt8(rsvd2);
        int lengthAt = w.ReserveUInt16();
        int bodyStart = w.Position;
        switch (Kind)
        {
            case LispAddressKind.InstanceId:
                w.WriteUInt32(InstanceIdValue);
                _children[0].Write(ref w);
                break;
            case LispAddressKind.AfiList:
                for (int i = 0; i < _childCount; i++) _children[i].Write(ref w);
                break;
            case LispAddressKind.Json:
                if (_dataLength > ushort.MaxValue) throw new LispFormatException(LispFormatError.InvalidField, 0, "JSON text longer than 65535 bytes");
                w.WriteUInt16((ushort)_dataLength);
                w.WriteBytes(Data);
                _children[0].Write(ref w);
                break;
            case LispAddressKind.KeyValue:
                _children[0].Write(ref w);
                _children[1].Write(ref w);
                break;
            default:
                w.WriteBytes(Data);
                break;
        }
        w.PatchLength(lengthAt, bodyStart);
    }

    /// <summary>Deep structural equality (what the wire would carry).</summary>
}
