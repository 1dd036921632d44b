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
/// 46 such segments coalesced back into one super-packet described for writev (what the ETR does per run).
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
    private readonly TcpCoalescer _coalescer = new();
    private byte* _scratch;
    private IoVec* _pieces;

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
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        NativeMemory.Free(_segments);
        NativeMemory.Free(_scratch);
        NativeMemory.Free(_pieces);
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
}
