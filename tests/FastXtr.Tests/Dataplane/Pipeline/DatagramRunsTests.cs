using System.Runtime.InteropServices;
using FastXtr.Dataplane.Encap;
using FastXtr.Dataplane.Offload;
using FastXtr.NativeInterop;
using FastXtr.Packets;
using NUnit.Framework;

namespace FastXtr.Tests.Dataplane.Pipeline;

/// <summary>
/// <see cref="DatagramRuns"/>: which of the ITR's queued datagrams leave together in one UDP GSO send. A run must be
/// what UDP_SEGMENT makes of one buffer (one flow's headers, equal payloads but a shorter last), and nothing else may
/// join it: every field that differs between two packets of different flows, or that the segmenting socket would
/// write otherwise, splits it.
/// </summary>
public unsafe class DatagramRunsTests
{
    private const uint Local = 0xC0000201, Remote = 0xC0000202;

    private sealed class Queued : IDisposable
    {
        private readonly byte* _memory = (byte*)NativeMemory.AllocZeroed(128 * 2048);
        private readonly MessageBatch _batch = new(128);

        /// <summary>An encapsulated datagram as the ITR writes it, with an inner packet of <paramref name="inner"/> bytes.</summary>
        public Queued Add(int inner, ushort sourcePort = 61450, byte ttl = 64, byte tos = 0, uint destination = Remote, bool df = false,
            ushort destinationPort = LispDataHeader.DataPort, Action<Span<byte>>? change = null)
        {
            byte* d = _memory + _batch.Count * 2048;
            var span = new Span<byte>(d, 2048);
            int header = LispDataPacket.WriteIpv4(span, Local, destination, sourcePort, ttl, tos, (ushort)(100 + _batch.Count), df, LispDataHeader.WithNonce(7, 1000), inner, destinationPort);
            span.Slice(header, inner).Fill((byte)_batch.Count);
            change?.Invoke(span);
            _batch.Add(d, header + inner, destination, 0);
            return this;
        }

        public byte* First => _batch.Data(0);

        public int Run(int start, out int segment, int maxCount = 64, int maxBytes = 65507) =>
            DatagramRuns.Length(_batch, start, maxCount, maxBytes, out segment);

        public void Dispose()
        {
            NativeMemory.Free(_memory);
            _batch.Dispose();
        }
    }

    [Test]
    public void OneFlowsEqualDatagrams_AreOneRun_EndedByAShorterOne()
    {
        using var q = new Queued();
        for (int i = 0; i < 5; i++) q.Add(64);
        q.Add(40).Add(64);
        Assert.That(q.Run(0, out int segment), Is.EqualTo(6), "five equal and the shorter sixth; the seventh starts anew");
        Assert.That(segment, Is.EqualTo(LispDataHeader.Length + 64), "the LISP payload's size, the outer headers left to the socket");
        Assert.That(q.Run(6, out _), Is.EqualTo(1));
        Assert.That(DatagramRuns.SourcePort(q.First), Is.EqualTo(61450));
    }

    [Test]
    public void ALongerDatagram_StartsANewRun()
    {
        using var q = new Queued();
        q.Add(64).Add(64).Add(100).Add(100);
        Assert.That((q.Run(0, out _), q.Run(2, out int segment)), Is.EqualTo((2, 2)));
        Assert.That(segment, Is.EqualTo(LispDataHeader.Length + 100));
    }

    private static readonly Dictionary<string, Action<Queued>> Apart = new()
    {
        ["another source port (another flow)"] = q => q.Add(64, sourcePort: 61451),
        ["another destination port"] = q => q.Add(64, destinationPort: 4342),
        ["another locator"] = q => q.Add(64, destination: Remote + 1),
        ["another TTL"] = q => q.Add(64, ttl: 63),
        ["another TOS"] = q => q.Add(64, tos: 0xb8),
        ["DF set (the segmenting socket sends DF clear)"] = q => q.Add(64, df: true),
        ["an outer fragment (MF)"] = q => q.Add(64, change: s => s[6] |= 0x20),
        ["an outer fragment (offset)"] = q => q.Add(64, change: s => s[7] = 1),
        ["IP options"] = q => q.Add(64, change: s => s[0] = 0x46),
        ["not UDP"] = q => q.Add(64, change: s => s[9] = 6),
        ["a total length that is not the datagram's"] = q => q.Add(64, change: s => s[3]--),
        ["another source address"] = q => q.Add(64, change: s => s[15]++),
    };

    private static IEnumerable<string> Differences => Apart.Keys;

    [TestCaseSource(nameof(Differences))]
    public void WhatDiffers_KeepsApart(string why)
    {
        using var q = new Queued();
        q.Add(64);
        Apart[why](q);
        q.Add(64);
        Assert.That(q.Run(0, out _), Is.EqualTo(1), why);
    }

    [Test]
    public void TheFirstDatagram_MustBeGatherableItself()
    {
        using var q = new Queued();
        q.Add(64, df: true).Add(64, df: true);
        Assert.That(q.Run(0, out _), Is.EqualTo(1), "a datagram the segmenting socket would send otherwise goes alone");
        using var empty = new Queued();
        empty.Add(0).Add(0);
        Assert.That(empty.Run(0, out int segment), Is.EqualTo(2), "an empty inner packet still has a LISP header to carry");
        Assert.That(segment, Is.EqualTo(LispDataHeader.Length));
    }

    [Test]
    public void Runs_KeepTheKernelsLimits()
    {
        using var q = new Queued();
        for (int i = 0; i < 70; i++) q.Add(64);
        Assert.That(q.Run(0, out _), Is.EqualTo(64), "UDP_MAX_SEGMENTS");
        Assert.That(q.Run(0, out _, maxCount: 10), Is.EqualTo(10));
        int payload = LispDataHeader.Length + 64;
        Assert.That(q.Run(0, out _, maxBytes: 5 * payload + payload - 1), Is.EqualTo(5), "no more bytes than one datagram can hold");
        Assert.That(q.Run(64, out _), Is.EqualTo(6), "the rest");
    }

    [Test]
    public void TheFlowPorts_AreOnePerFlow_AndSpreadOverTheRange()
    {
        // With segmenting sockets the ITR hashes into their 64 ports: every packet of a flow must get one of them,
        // the same each time (a flow sent one by one and in bursts keeps one path), and many flows must spread.
        var ports = new HashSet<ushort>();
        var rng = new Random(5);
        Span<byte> inner = stackalloc byte[40];
        for (int flow = 0; flow < 2000; flow++)
        {
            rng.NextBytes(inner);
            inner[0] = 0x45;
            inner[6] = inner[7] = 0;
            inner[9] = 17;
            uint hash = FlowHash.Compute(inner);
            ushort port = FlowHash.SourcePort(hash, 61440, 64);
            Assert.That(port, Is.InRange(61440, 61503));
            Assert.That(FlowHash.SourcePort(FlowHash.Compute(inner), 61440, 64), Is.EqualTo(port));
            ports.Add(port);
        }
        Assert.That(ports, Has.Count.EqualTo(64), "2,000 flows reach every port");
        Assert.That(FlowHash.SourcePort(0x12345678), Is.EqualTo((ushort)(0xC000 | (0x12345678 & 0x3FFF))), "the default range is unchanged");
    }
}
