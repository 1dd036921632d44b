using System.Buffers.Binary;
using FastXtr.Packets;

namespace FastXtr.Tests.Support;

/// <summary>Writes classic libpcap files of Ethernet/IPv4/UDP frames, for tshark to dissect.</summary>
public sealed class PcapWriter : IDisposable
{
    private const uint LinkTypeEthernet = 1;
    private readonly FileStream _stream;
    private uint _seconds = 1_700_000_000;

    public PcapWriter(string path)
    {
        _stream = File.Create(path);
        Span<byte> header = stackalloc byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(header, 0xa1b2c3d4);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], 4);
        BinaryPrimitives.WriteUInt32LittleEndian(header[16..], 65535);
        BinaryPrimitives.WriteUInt32LittleEndian(header[20..], LinkTypeEthernet);
        _stream.Write(header);
    }

    /// <summary>Writes one UDP datagram carrying <paramref name="payload"/>, checksum computed.</summary>
    public void WriteUdp(uint source, uint destination, ushort sourcePort, ushort destinationPort, ReadOnlySpan<byte> payload)
    {
        int udpLength = UdpHeader.Length + payload.Length;
        byte[] frame = new byte[14 + Ipv4Header.MinLength + udpLength];
        frame[0] = 0x02; frame[6] = 0x02; frame[11] = 1;
        frame[12] = 0x08; frame[13] = 0x00;
        var ip = new Ipv4Header { TotalLength = (ushort)(Ipv4Header.MinLength + udpLength), TimeToLive = 64, Protocol = Ipv4Header.ProtocolUdp, SourceAddress = source, DestinationAddress = destination };
        ip.Write(frame.AsSpan(14));
        Span<byte> udp = frame.AsSpan(14 + Ipv4Header.MinLength);
        new UdpHeader { SourcePort = sourcePort, DestinationPort = destinationPort, TotalLength = (ushort)udpLength }.Write(udp);
        payload.CopyTo(udp[UdpHeader.Length..]);
        UdpHeader.FillChecksum(udp, ip.PseudoHeaderSum(Ipv4Header.ProtocolUdp, udpLength));
        WriteFrame(frame);
    }

    /// <summary>Writes an Ethernet frame around an already built IPv4 packet.</summary>
    public void WriteIpv4Packet(ReadOnlySpan<byte> packet)
    {
        byte[] frame = new byte[14 + packet.Length];
        frame[0] = 0x02; frame[6] = 0x02; frame[11] = 1;
        frame[12] = 0x08;
        packet.CopyTo(frame.AsSpan(14));
        WriteFrame(frame);
    }

    private void WriteFrame(ReadOnlySpan<byte> frame)
    {
        Span<byte> rec = stackalloc byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(rec, _seconds++);
        BinaryPrimitives.WriteUInt32LittleEndian(rec[8..], (uint)frame.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(rec[12..], (uint)frame.Length);
        _stream.Write(rec);
        _stream.Write(frame);
    }

    public void Dispose() => _stream.Dispose();
}
