using BenchmarkDotNet.Attributes;
using FastXtr.Packets;

namespace FastXtr.Perf.Micro;

/// <summary>The per-packet header work of the data plane: parse and build the 8-byte LISP header and the outer headers.</summary>
[MemoryDiagnoser]
public class DataHeaderBenchmarks
{
    private readonly byte[] _header = new byte[LispDataHeader.Length];
    private readonly byte[] _packet = new byte[LispDataPacket.Ipv4OverheadBytes + 64];
    private uint _nonce;

    [GlobalSetup]
    public void Setup()
    {
        LispDataHeader.WithNonce(0x123456, 1000).Write(_header);
        LispDataPacket.WriteIpv4(_packet, 0xc0000201, 0xc0000202, 50000, 64, 0, 1, true, LispDataHeader.WithNonce(7, 1000), 64);
    }

    [Benchmark(Description = "LISP header parse")]
    public uint ParseHeader()
    {
        return LispDataHeader.TryRead(_header, out var h, out _) ? h.InstanceId ^ h.Nonce : 0;
    }

    [Benchmark(Description = "LISP header build")]
    public void BuildHeader() => LispDataHeader.WithNonce(++_nonce & LispDataHeader.MaxNonce, 1000).Write(_header);

    [Benchmark(Description = "outer IPv4+UDP+LISP parse")]
    public int ParseOuter()
    {
        return LispDataPacket.TryParse(_packet, out var o, out _) ? o.InnerOffset : -1;
    }

    [Benchmark(Description = "outer IPv4+UDP+LISP build")]
    public int BuildOuter() =>
        LispDataPacket.WriteIpv4(_packet, 0xc0000201, 0xc0000202, 50000, 64, 0, (ushort)++_nonce, true, LispDataHeader.WithNonce(_nonce & LispDataHeader.MaxNonce, 1000), 64);
}
