using System.Buffers.Binary;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using FastXtr.Dataplane.Offload;
using FastXtr.NativeInterop;

namespace FastXtr.Perf.Micro;

/// <summary>
/// The userspace segmentation offloads on one 64,000-byte IPv4 TCP super-packet (12 bytes of TCP options, as Linux
/// sends with timestamps): cut into 1,412-byte segments with full checksums (what the ITR does per TSO read), and
/// the same cut with only each segment's headers written (the payload gathered from where it lies by the send), and
/// 46 such segments coalesced back into one super-packet described for writev (what the ETR does per run); and a
/// burst of UDP datagrams of one flow (64 of 64 bytes, 46 of 1,400) coalesced into one GSO UDP_L4 super-packet,
/// each datagram's checksum verified first (what the ETR does per burst instead of 64 TUN writes).
/// </summary>
[MemoryDiagnoser]
public unsafe class OffloadBenchmarks
{
    private const int Payload = 64_000, Mss = 1412, Headers = 20 + 32;
    private byte[] _super = [];
    private byte[] _output = [];
    private readonly byte[] _headers = new byte[256 * 128];
    private readonly int[] _lengths = new int[256];
    private byte* _segments;
    private int _count;
    private readonly Coalescer _coalescer = new();
    private byte* _scratch;
    private IoVec* _pieces;
    private byte* _udp64, _udp1400;
    private readonly int[] _udpLengths64 = new int[256], _udpLengths1400 = new int[256];
    // 32 encapsulated datagrams queued for the ITR's send, of one flow, and of two flows taking turns.
    private readonly MessageBatch _oneFlow = new(32), _twoFlows = new(32);
    private byte* _queuedMemory;

    /// <summary><paramref name="count"/> datagrams of <paramref name="size"/> payload bytes with their checksums, as UDP segmentation cuts them.</summary>
    private static byte* UdpBurst(int size, int count, int[] lengths)
    {
        var super = new byte[28 + count * size];
        new Random(size).NextBytes(super);
        super[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(super.AsSpan(2), (ushort)super.Length);
        BinaryPrimitives.WriteUInt16BigEndian(super.AsSpan(6), 0x4000);
        super[9] = 17;
        var output = new byte[2 * count * (28 + size)];
        if (UdpSegmentation.Segment(super, size, 0, output, lengths) != count) throw new InvalidOperationException("the burst did not cut");
        byte* memory = (byte*)NativeMemory.Alloc((nuint)output.Length);
        output.CopyTo(new Span<byte>(memory, output.Length));
        return memory;
    }

    [GlobalSetup]
    public void Setup()
    {
        _super = new byte[Headers + Payload];
        new Random(1).NextBytes(_super);
        _super[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(_super.AsSpan(2), (ushort)_super.Length);
        BinaryPrimitives.WriteUInt16BigEndian(_super.AsSpan(6), 0x4000);
        _super[9] = 6;
        _super[20 + 12] = 8 << 4;
        _super[20 + 13] = 0x18;
        _output = new byte[2 * 65536];
        _count = TcpSegmentation.Segment(_super, Mss, 0, _output, _lengths);
        _segments = (byte*)NativeMemory.Alloc((nuint)_output.Length);
        _output.CopyTo(new Span<byte>(_segments, _output.Length));
        _scratch = (byte*)NativeMemory.Alloc(256);
        _pieces = (IoVec*)NativeMemory.Alloc((nuint)(80 * sizeof(IoVec)));
        _udp64 = UdpBurst(64, 64, _udpLengths64);
        _udp1400 = UdpBurst(1400, 46, _udpLengths1400);
        _queuedMemory = (byte*)NativeMemory.Alloc(64 * 256);
        int length = 0;
        for (int k = 0; k < 64; k++)
            length = FastXtr.Packets.LispDataPacket.WriteIpv4(new Span<byte>(_queuedMemory + k * 256, 256), 0xC0000201, 0xC0000202, (ushort)(61440 + (k >= 32 ? 1 : 0)), 64, 0, (ushort)k,
                false, FastXtr.Packets.LispDataHeader.WithNonce((uint)k, 1000), 64) + 64;
        for (int k = 0; k < 32; k++)
        {
            _oneFlow.Add(_queuedMemory + k * 256, length, 0xC0000202, 0);
            _twoFlows.Add(_queuedMemory + (k % 2 == 0 ? k : 32 + k) * 256, length, 0xC0000202, 0);
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        NativeMemory.Free(_segments);
        NativeMemory.Free(_scratch);
        NativeMemory.Free(_pieces);
        NativeMemory.Free(_udp64);
        NativeMemory.Free(_udp1400);
        NativeMemory.Free(_queuedMemory);
        _oneFlow.Dispose();
        _twoFlows.Dispose();
    }

    [Benchmark(Description = "ITR: find the UDP GSO runs among 32 queued datagrams of 64 bytes, one flow (one run)")]
    public int RunsOneFlow() => Runs(_oneFlow);

    [Benchmark(Description = "ITR: the same, two flows taking turns (32 runs of one: what gathering costs when nothing gathers)")]
    public int RunsTwoFlows() => Runs(_twoFlows);

    private static int Runs(MessageBatch queued)
    {
        int runs = 0;
        for (int i = 0; i < 32; runs++) i += DatagramRuns.Length(queued, i, 64, 65507, out _);
        return runs;
    }

    [Benchmark(Description = "ITR: cut a 64 KB TCP super-packet into 46 segments (copy + checksums)")]
    public int Segment() => TcpSegmentation.Segment(_super, Mss, 8, _output, _lengths);

    [Benchmark(Description = "ITR: the same cut for a gathering send: headers and checksums only, the payload left in place")]
    public int SegmentHeaders() => TcpSegmentation.SegmentHeaders(_super, Mss, 8, _headers, 128, _lengths, out _);

    [Benchmark(Description = "ETR: coalesce 46 segments into one super-packet (checks + merged header)")]
    public int Coalesce()
    {
        _coalescer.Clear();
        int stride = Headers + Mss;
        for (int k = 0; k < _count; k++) _coalescer.TryAppend(_segments + (long)k * stride, _lengths[k], 0);
        return _coalescer.Build(_scratch, _pieces, out _);
    }

    [Benchmark(Description = "ETR: coalesce 64 UDP datagrams of 64 bytes into one GSO UDP_L4 super-packet (checksums verified)")]
    public int CoalesceUdp64() => CoalesceUdp(_udp64, 64, 28 + 64, _udpLengths64);

    [Benchmark(Description = "ETR: coalesce 46 UDP datagrams of 1,400 bytes (64 KB) into one GSO UDP_L4 super-packet (checksums verified)")]
    public int CoalesceUdp1400() => CoalesceUdp(_udp1400, 46, 28 + 1400, _udpLengths1400);

    private int CoalesceUdp(byte* burst, int count, int stride, int[] lengths)
    {
        _coalescer.Clear();
        for (int k = 0; k < count; k++)
            if (!_coalescer.TryAppend(burst + (long)k * stride, lengths[k], 0)) throw new InvalidOperationException($"datagram {k} did not join the run");
        return _coalescer.Build(_scratch, _pieces, out _);
    }
}
