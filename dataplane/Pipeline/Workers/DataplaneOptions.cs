using FastXtr.SharedMemory;

namespace FastXtr.Dataplane.Workers;

public enum IoMode
{
    Tun,
    AfPacket,
    AfXdp,
}

/// <summary>One agent group served by this data plane: its Instance ID and the TUN its agents' packets use.</summary>
public readonly record struct InstanceBinding(uint InstanceId, string Interface);

/// <summary>Everything <c>fastxtr dataplane</c> is told on its command line, validated before anything opens.</summary>
public sealed record DataplaneOptions
{
    /// <summary>Batch size: 32 packets per read/send cycle, the point where sendmmsg's per-call cost stops mattering on
    /// this machine (perf-reference/tunbench: 0.29 Mpps at 32, no gain at 64).</summary>
    public const int DefaultBatch = 32;

    public int Workers { get; init; } = 1;
    public IReadOnlyList<int> Cpus { get; init; } = [];
    public int Batch { get; init; } = DefaultBatch;
    public IoMode Mode { get; init; } = IoMode.Tun;
    public IReadOnlyList<InstanceBinding> Instances { get; init; } = [];
    /// <summary>This xTR's IPv4 RLOC (host order); 0 when it has none.</summary>
    public uint RlocAddress { get; init; }
    /// <summary>This xTR's IPv6 RLOC (host-order number); 0 when it has none.</summary>
    public UInt128 RlocAddress6 { get; init; }
    /// <summary>
    /// IPv6 underlay: send UDP checksum 0 and accept it (RFC 6935, RFC 6936 §5: both tunnel ends configured for it);
    /// otherwise every IPv6 outer packet carries its UDP checksum, as RFC 9300 §5.3 requires.
    /// </summary>
    public bool ZeroChecksum6 { get; init; }
    public ushort Port { get; init; } = LispDataHeader.DataPort;
    /// <summary>The underlay path MTU: outer packets larger than this are fragmented, or refused with ICMP (RFC 9300 §7).</summary>
    public int OuterMtu { get; init; } = 1500;
    public string SharedMemoryName { get; init; } = "fastxtr";
    public int MapCacheEntries { get; init; } = SharedRegionSizes.Default.EntryCapacity;
    public bool DecapFilter { get; init; }
    public int SocketBufferBytes { get; init; } = 4 << 20;
    public int RxRingFrames { get; init; } = 4096;
    public int TxRingFrames { get; init; } = 4096;
    /// <summary>
    /// --mode tun: each TUN's txqueuelen, the packets the kernel holds while a worker is off its core. Measured with a
    /// 100 kpps destination scan beside a ping on 2 busy cores (ScanTests): 500 (the kernel's TUN default) dropped
    /// 40,295 packets and 2.6% of the ping, 5000 none.
    /// </summary>
    public int TunQueueLength { get; init; } = DefaultTunQueueLength;
    public const int DefaultTunQueueLength = 5000;
    public string? EidInterface { get; init; }
    /// <summary>
    /// --mode af-xdp: the underlay interface whose LISP data (to --rloc-addr, the data port) is received through AF_XDP
    /// sockets as well, instead of the kernel's UDP stack; null: the UDP socket receives it all. Sending stays the
    /// kernel's (it resolves the next hop).
    /// </summary>
    public string? XdpUnderlay { get; init; }
    /// <summary>
    /// How long a worker that ran out of packets keeps checking for more (yielding its core between checks) before it
    /// sleeps in poll; 0 sleeps at once. A round trip through two gateways crosses four workers, and each wake-up from
    /// poll costs tens of microseconds on a busy machine. Measured with perf/Load/rr.c through TUN data planes on 2
    /// shared cores (1 request outstanding): p50 104-113 us with 0, 37-38 us with 50 (kernel VXLAN 74-83 us), 44-50
    /// us with 100; the cost is up to this long of CPU after each burst.
    /// </summary>
    public int BusyPollMicroseconds { get; init; } = DefaultBusyPollMicroseconds;
    public const int DefaultBusyPollMicroseconds = 50;
    /// <summary>
    /// fastxtr rtr: a re-encapsulating tunnel router (draft-ietf-lisp-nat-traversal). No EID side: every LISP data
    /// packet received is decapsulated, checked by the decapsulation filter (always on), and encapsulated again to the
    /// inner destination's locator in its own Instance ID; Info-Requests arriving on the data port go to
    /// <see cref="DataplaneHost.ControlInboxes"/>.
    /// </summary>
    public bool Rtr { get; init; }
    /// <summary>TSO/USO from the TUN cut in userspace and sent with UDP GSO; UDP GRO coalesced into TUN super-packets.</summary>
    public bool Offload { get; init; }

    /// <summary>The problems with these options, each a sentence for the operator; empty when they are usable.</summary>
    public IReadOnlyList<string> Problems()
    {
        var p = new List<string>();
        if (Workers is < 1 or > 64) p.Add($"--workers {Workers}: use 1 .. 64");
        if (Cpus.Count > 0 && Cpus.Count != Workers) p.Add($"--cpus lists {Cpus.Count} CPUs for {Workers} workers: give one per worker");
        int cores = Environment.ProcessorCount;
        foreach (int c in Cpus)
            if (c < 0 || c >= cores) p.Add($"--cpus {c}: this machine has CPUs 0 .. {cores - 1}");
        if (Batch is < 1 or > 1024) p.Add($"--batch {Batch}: use 1 .. 1024");
        if (Mode == IoMode.Tun && EidInterface is not null) p.Add("--eid-if names the EID-facing interface of --mode af-packet and af-xdp; with --mode tun each --instance names its TUN");
        if (XdpUnderlay is not null && Mode != IoMode.AfXdp) p.Add("--xdp-underlay is for --mode af-xdp");
        if (RxRingFrames is < 64 or > 1 << 20) p.Add($"--rx-ring {RxRingFrames}: use 64 .. {1 << 20} frames");
        if (TunQueueLength is < 16 or > 1 << 20) p.Add($"--tun-queue-length {TunQueueLength}: use 16 .. {1 << 20} packets");
        if (BusyPollMicroseconds is < 0 or > 10_000) p.Add($"--busy-poll-us {BusyPollMicroseconds}: use 0 (off) .. 10000 microseconds");
        if (TxRingFrames is < 64 or > 1 << 20) p.Add($"--tx-ring {TxRingFrames}: use 64 .. {1 << 20} frames");
        if (Rtr)
        {
            if (Instances.Count > 0) p.Add("an RTR has no EID side: no --instance (it carries every Instance ID, each in its own)");
            if (Mode != IoMode.Tun || EidInterface is not null || XdpUnderlay is not null) p.Add("an RTR receives and sends LISP data through the kernel's UDP sockets: no --mode, --eid-if or --xdp-underlay");
            if (Offload) p.Add("an RTR has no TUN to take segmentation offloads from: --offload off");
        }
        else if (Instances.Count == 0) p.Add(Mode == IoMode.Tun
            ? "no --instance IID=IFNAME given: the data plane needs at least one agent group's TUN"
            : "no --instance IID=IFNAME (or --instance IID with --eid-if IFNAME) given: the data plane needs at least one agent group's EID-facing interface");
        if (Instances.Select(i => i.InstanceId).Distinct().Count() != Instances.Count) p.Add("an Instance ID is given twice in --instance");
        if (Instances.Select(i => i.Interface).Distinct().Count() != Instances.Count) p.Add("an interface is given twice in --instance");
        foreach (var i in Instances)
            if (i.InstanceId > LispDataHeader.MaxInstanceId) p.Add($"--instance {i.InstanceId}: the data-plane Instance ID has 24 bits (max {LispDataHeader.MaxInstanceId})");
        if (RlocAddress == 0 && RlocAddress6 == 0) p.Add("--rloc-addr is required: the IPv4 and/or IPv6 address this xTR sends from and receives LISP on");
        if (XdpUnderlay is not null && RlocAddress == 0) p.Add("--xdp-underlay needs an IPv4 --rloc-addr: the underlay XDP program takes IPv4 LISP data (an IPv6 underlay uses the kernel's sockets)");
        if (RlocAddress6 != 0 && OuterMtu < 1280) p.Add($"--mtu {OuterMtu}: an IPv6 underlay's MTU is at least 1280 (RFC 8200 §5)");
        if (ZeroChecksum6 && RlocAddress6 == 0) p.Add("--ipv6-zero-checksum needs an IPv6 --rloc-addr");
        if (OuterMtu is < 576 or > Buffers.PacketBuffers.MaxPacketBytes) p.Add($"--mtu {OuterMtu}: use 576 .. {Buffers.PacketBuffers.MaxPacketBytes}");
        if (MapCacheEntries is < 16 or > 16 << 20) p.Add($"--map-cache-entries {MapCacheEntries}: use 16 .. {16 << 20}");
        if (string.IsNullOrWhiteSpace(SharedMemoryName) || SharedMemoryName.Contains(' ', StringComparison.Ordinal)) p.Add($"--shm '{SharedMemoryName}': a name without spaces");
        return p;
    }
}
