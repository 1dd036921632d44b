using System.CommandLine;
using FastXtr.SharedMemory;
using FastXtr.Dataplane.Workers;

namespace FastXtr.Cli;

/// <summary><c>fastxtr dataplane</c>: runs the xTR data plane until SIGINT or SIGTERM.</summary>
public static class DataplaneCommand
{
    public static Command Build(TextWriter stdout, TextWriter stderr)
    {
        var workers = new Option<int>("--workers") { Description = "run-to-completion workers, each with its own TUN queue (or ring, in a fanout group) per instance and UDP socket", DefaultValueFactory = _ => 1 };
        var cpus = new Option<string?>("--cpus") { Description = "CPUs to pin the workers to, one per worker, e.g. 0,1 (default: not pinned)" };
        var batch = new Option<int>("--batch") { Description = "packets per read/send batch (32: where sendmmsg's per-call cost stops mattering on a 2-core VM)", DefaultValueFactory = _ => DataplaneOptions.DefaultBatch };
        var mode = new Option<string>("--mode")
        {
            Description = "EID-side I/O: tun (one TUN per instance, created if missing) or af-packet (each instance's interface is an existing Ethernet interface facing its EID hosts, read and written through TPACKET_V2 rings: no system call per packet; EID hosts' MACs are learned from their frames, and a packet for a host not heard from yet is handed to the kernel, which resolves it). In af-packet mode the interface keeps its address (the kernel answers ARP and neighbour discovery), and IP forwarding must stay off on it: the kernel then drops its own copy of each packet the ring takes (counted as IpInAddrErrors), a start-up warning says when forwarding is on. TCP super-frames (a veth peer's TSO, a NIC's GRO) are read whole from the socket's queue and cut here, and offloaded checksums completed. Each received frame is handed over as soon as the kernel has written it, so the ring adds no waiting at low rates. af-xdp: the same Ethernet interfaces through AF_XDP sockets, one on every receive queue of the interface, queue q read by worker q mod --workers (the interface needs at least --workers receive queues), and an XDP program of ours that sends them only unicast IP: ARP, neighbour discovery, broadcasts, multicast and IPv4 addressed to the interface itself stay the kernel's. Frames land in memory we share with the kernel (the UMEM) with no system call per packet; zero-copy where the driver offers it, else copy mode (veth), as the start-up line says. A worker's sockets (every instance's, and --xdp-underlay's) share one UMEM: packets are encapsulated and decapsulated where they were received and sent on by address, with no copy (counter xsk-sent-in-place); a socket the kernel will not let share gets a UMEM of its own (a start-up warning), and frames to and from it are copied. The program is attached through a BPF link, so it is detached when the data plane exits, even on SIGKILL; an interface that already has an XDP program is refused. A veth drops its peer's segmentation offloads while the program is attached, so the hosts send MTU-sized frames; the interface's MTU must fit a UMEM chunk (at most 3,826 bytes)",
            DefaultValueFactory = _ => "tun",
        };
        mode.AcceptOnlyFromAmong("tun", "af-packet", "af-xdp");
        var instance = new Option<string[]>("--instance") { Description = "an agent group: IID=IFNAME, e.g. 1000=fx1000 (repeat for more groups). --mode tun: the TUN, created if missing, then configure it with ip(8); --mode af-packet or af-xdp: the group's existing EID-facing Ethernet interface (or a bare IID with --eid-if)", Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false };
        var eidIf = new Option<string?>("--eid-if") { Description = "--mode af-packet or af-xdp: the EID-facing interface of every --instance given as a bare IID (e.g. --instance 1000 --eid-if eth1)" };
        var xdpUnderlay = new Option<string?>("--xdp-underlay") { Description = "--mode af-xdp: also receive LISP data through AF_XDP on this underlay interface (the one --rloc-addr is on): a second XDP program of ours sends it unfragmented IPv4/UDP to --rloc-addr and --port, and the kernel keeps everything else (control messages, fragments, ARP); the outer IPv4 header and a non-zero UDP checksum are checked here as the kernel would. The ITR sends through the same sockets, to the MAC of each RLOC's next hop as the kernel's main routing table and neighbour table give it (read every second); an RLOC whose next hop is not resolved yet, or not through this interface, is sent through the kernel (counter itr-kernel-sent), which resolves it. Without this option the kernel's UDP stack receives and sends all LISP data" };
        var rloc = new Option<string[]>("--rloc-addr") { Description = "this xTR's RLOC: the source of encapsulated packets and the address LISP data is received on (required). Give it twice, an IPv4 and an IPv6 address, for a dual-stack underlay: the ITR then chooses among the locators of both families (by priority and weight), an IPv4-only or IPv6-only xTR among those of its family. An IPv6 outer header carries the flow hash in its flow label and a UDP checksum (RFC 9300 §5.3; see --ipv6-zero-checksum); an inner IPv4 packet that does not fit it and may be fragmented is sent as inner fragments", Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false };
        var zeroChecksum6 = new Option<bool>("--ipv6-zero-checksum") { Description = "IPv6 underlay: send LISP data with UDP checksum 0 and accept it (RFC 6935, RFC 6936: both ends of each tunnel must be configured for it); saves summing every packet. Default: full checksums, and zero-checksum packets dropped by the kernel (UDP6 InCsumErrors)" };
        var port = new Option<int>("--port") { Description = "the UDP port this data plane takes LISP data on (RFC 9300: 4341). Peers are sent to their locator's port: 4341, unless the map-cache entry names another (fastxtr map-cache add --rloc ADDRESS:PORT)", DefaultValueFactory = _ => 4341 };
        var mtu = new Option<int>("--mtu") { Description = "underlay path MTU; larger outer packets are fragmented, or refused with ICMP when DF is set or the inner packet is IPv6 (RFC 9300 §7)", DefaultValueFactory = _ => 1500 };
        var shm = new Option<string>("--shm") { Description = "name of the shared-memory region in /dev/shm shared with `fastxtr agent`", DefaultValueFactory = _ => "fastxtr" };
        var entries = new Option<int>("--map-cache-entries") { Description = "map-cache capacity (240 bytes each, plus 8 bytes of index)", DefaultValueFactory = _ => SharedRegionSizes.Default.EntryCapacity };
        var decapFilter = new Option<bool>("--decap-filter") { Description = "drop decapsulated packets whose outer source is not an RLOC of the inner source EID in the map-cache" };
        var rxRing = new Option<int>("--rx-ring") { Description = "--mode af-packet: receive ring size in frames per worker and interface (2 KB each for an MTU up to 1,968, the next power of two above MTU + 80 bytes beyond); --mode af-xdp: receive chunks of the UMEM and entries of the fill and RX rings per receive queue (2 KB chunks up to MTU 1,778, 4 KB beyond), rounded up to a power of two", DefaultValueFactory = _ => 4096 };
        var txRing = new Option<int>("--tx-ring") { Description = "--mode af-packet: transmit slots per worker and interface (the receive ring's frame size each); --mode af-xdp: transmit chunks and TX and completion ring entries, rounded up to a power of two", DefaultValueFactory = _ => 4096 };
        var tunQueue = new Option<int>("--tun-queue-length") { Description = "--mode tun: each TUN's transmit queue (txqueuelen) in packets: what the kernel holds for a worker that is off its core before it drops (TX dropped in `ip -s link`); the kernel's default of 500 lasts 5 ms at 100 kpps", DefaultValueFactory = _ => DataplaneOptions.DefaultTunQueueLength };
        var busyPoll = new Option<int>("--busy-poll-us") { Description = "how long (microseconds) a worker that ran out of packets keeps checking for more, yielding its core between checks, before it sleeps in poll; 0 sleeps at once. Saves the wake-ups that dominate a request/response round trip (measured: p50 through two gateways 104 -> 37 us) at the price of up to this much CPU after each burst (counters poll-sleeps, busy-poll-hits)", DefaultValueFactory = _ => DataplaneOptions.DefaultBusyPollMicroseconds };
        var offload = new Option<string>("--offload")
        {
            Description = "segmentation offloads: on (the default) = the TUN hands over TCP super-packets (TSO, virtio-net headers), cut in userspace and sent with UDP GSO, a flow's consecutive small packets to one locator sent in one UDP GSO burst as well (outer source ports then hashed into the 64 ports 61440-61503, one per flow), and received LISP is coalesced (UDP GRO) and written back as super-packets, TCP runs and UDP bursts of one flow alike; off = one packet per read and write. On is at least as fast for every workload measured (bulk TCP about 5x, 64-byte UDP 2.4-3.4x, request/response the same or better; perf/RESULTS.md). What the kernel lacks is logged at start and the rest falls back; no effect in --mode af-xdp",
            DefaultValueFactory = _ => "on",
        };
        offload.AcceptOnlyFromAmong("on", "off");
        var sockBuf = new Option<int>("--socket-buffer") { Description = "bytes of kernel buffer per UDP and raw socket", DefaultValueFactory = _ => 4 << 20 };

        var command = new Command("dataplane", "Run the userspace xTR data plane: ITR encapsulation and ETR decapsulation (RFC 9300) between the EID side (TUN devices, or Ethernet interfaces through AF_PACKET rings or AF_XDP sockets) and UDP 4341, multi-core, with the map-cache in shared memory. Stops on SIGINT/SIGTERM.");
        var metrics = new Option<string?>("--metrics") { Description = RoleMetrics.Help + " (per-worker counters and drop reasons, read from shared memory at scrape time)" };
        foreach (var o in new Option[] { workers, cpus, batch, mode, instance, eidIf, xdpUnderlay, rloc, zeroChecksum6, port, mtu, shm, entries, decapFilter, rxRing, txRing, tunQueue, sockBuf, busyPoll, offload, metrics }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            // Before anything opens: a stop or reload signal that comes during start-up is held (Program.StopSignals).
            using var signals = new Program.StopSignals();
            DataplaneOptions options;
            try
            {
                var (rloc4, rloc6) = CliParsing.ParseRlocs(parse.GetValue(rloc) ?? [], "--rloc-addr");
                options = new DataplaneOptions
                {
                    Workers = parse.GetValue(workers),
                    Cpus = CliParsing.ParseCpus(parse.GetValue(cpus)),
                    Batch = parse.GetValue(batch),
                    Mode = parse.GetValue(mode) switch { "af-packet" => IoMode.AfPacket, "af-xdp" => IoMode.AfXdp, _ => IoMode.Tun },
                    Instances = (parse.GetValue(instance) ?? []).Select(i => CliParsing.ParseInstance(!i.Contains('=', StringComparison.Ordinal) && parse.GetValue(eidIf) is string e ? $"{i}={e}" : i)).ToList(),
                    EidInterface = parse.GetValue(eidIf),
                    XdpUnderlay = parse.GetValue(xdpUnderlay),
                    RlocAddress = rloc4,
                    RlocAddress6 = rloc6,
                    ZeroChecksum6 = parse.GetValue(zeroChecksum6),
                    Port = (ushort)Math.Clamp(parse.GetValue(port), 1, 65535),
                    OuterMtu = parse.GetValue(mtu),
                    SharedMemoryName = parse.GetValue(shm)!,
                    MapCacheEntries = parse.GetValue(entries),
                    DecapFilter = parse.GetValue(decapFilter),
                    RxRingFrames = parse.GetValue(rxRing),
                    TxRingFrames = parse.GetValue(txRing),
                    TunQueueLength = parse.GetValue(tunQueue),
                    SocketBufferBytes = parse.GetValue(sockBuf),
                    Offload = parse.GetValue(offload) == "on",
                    BusyPollMicroseconds = parse.GetValue(busyPoll),
                };
            }
            catch (FormatException e)
            {
                stderr.WriteLine($"fastxtr dataplane: {e.Message}");
                return Program.ExitUsage;
            }
            using var logs = Program.RoleLogs("dataplane", stdout, stderr);
            DataplaneHost host;
            try
            {
                host = DataplaneHost.Start(options, logs.CreateLogger());
            }
            catch (DataplaneStartException e)
            {
                foreach (var line in e.Message.Split(Environment.NewLine)) stderr.WriteLine($"fastxtr dataplane: {line}");
                return 1;
            }
            Common.Metrics.MetricsEndpoint? exporter;
            try { exporter = RoleMetrics.Start(parse.GetValue(metrics), m => RoleMetrics.Dataplane(m, host.Region)); }
            catch (Exception e) when (e is ConfigException or FormatException)
            {
                stderr.WriteLine($"fastxtr dataplane: {e.Message}");
                host.Dispose();
                return Program.ExitUsage;
            }
            if (exporter is not null) stdout.WriteLine($"fastxtr dataplane: metrics on http://{exporter.BoundEndpoint}/metrics");
            signals.Wait(ready: $"{options.Workers} worker(s), region {host.Region.Path}");
            Common.Systemd.ServiceNotifier.Stopping();
            exporter?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            host.Dispose();
            stdout.WriteLine("fastxtr dataplane: stopped");
            return 0;
        });
        return command;
    }
}
