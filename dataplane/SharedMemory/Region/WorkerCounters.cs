namespace FastXtr.SharedMemory;

/// <summary>Per-worker counters in shared memory; the names are what <c>fastxtr show stats</c> prints.</summary>
public enum Counter
{
    TunRxPackets, TunRxBytes, UdpTxPackets, UdpTxBytes,
    UdpRxPackets, UdpRxBytes, TunTxPackets, TunTxBytes,
    MapCacheHits, MapCacheMisses, MissesPosted, MissesSuppressed, MissRingFull,
    IcmpTooBigSent, OuterFragmentsSent, Batches, MovedEidPackets, SolicitsPosted,
    // Drop reasons, one counter each (the data plane never drops silently).
    DropNotIp, DropTruncated, DropNoMapping, DropNegativeEntry, DropPolicyDenied, DropAuthFailure, DropNoUsableRloc,
    DropUnknownInstanceId, DropDecapFilter, DropBadOuterHeader, DropTtlExpired, DropTooBig, DropSendFailed, DropTunWriteFailed,
    DropNativeForwardUnsupported,
    // Segmentation offloads (--offload on); appended so that the slots above keep their places in shared memory.
    // UdpGroReceives counts the receives in which the kernel had coalesced several datagrams (UDP GRO).
    TunSuperPackets, SegmentsCut, ChecksumsCompleted, UdpGsoSends, UdpGroReceives, SegmentsCoalesced, TunSuperPacketsWritten,
    DropBadVnetHeader,
    // --mode af-packet: frames on the EID-facing interface that are not unicast IP for us (ARP, broadcasts; the
    // kernel answers those), decapsulated packets handed to the kernel because the EID's MAC is not known yet,
    // and what could not go out.
    EidFramesIgnored, EtrKernelRouted, DropNoNeighbor, DropTxRingFull,
    // Missed destinations that are never resolved: link-local and multicast (a TUN's own router solicitations to
    // ff02::2, mDNS, DHCP broadcasts). No Map-Request is sent for them.
    DropLinkScopeOrMulticast,
    // How workers wait (--busy-poll-us): the times a worker slept in poll, and the batches it found while it kept
    // checking instead (each a wake-up saved).
    PollSleeps, BusyPollHits,
    // --mode af-xdp: frames the kernel dropped before an AF_XDP socket got them (its RX ring full, or no free chunk
    // in the fill ring), from the sockets' XDP_STATISTICS.
    DropXskRing,
    // --xdp-underlay: encapsulated packets the ITR left to the kernel because their RLOC's next hop was not (yet) in
    // the kernel's neighbour table, or the route to it not through the underlay interface.
    ItrKernelSent,
    // IPv6 underlay: inner IPv4 packets (DF clear) too long for an IPv6 outer header, sent as inner fragments (the
    // pieces counted), and received LISP data whose outer header was IPv6.
    InnerFragmentsSent, Ipv6UnderlayRxPackets,
    // fastxtr rtr: LISP data decapsulated and sent on to the inner destination's locator; Info-Requests that came to
    // the data port (an xTR behind NAT keeping its binding) handed to the RTR's control, and those dropped because
    // its inbox was full; inner sources the decapsulation filter did not know yet (each resolved, the packet dropped).
    RtrReencapsulated, RtrControlMessages, DropRtrInboxFull, RtrSourcesResolved,
    // --mode af-xdp with a worker's sockets on one UMEM: packets sent on from the chunk they were received into,
    // rewritten in place (encapsulated to the underlay, decapsulated to a host), with no copy.
    XskSentInPlace,
    // Bytes the worker's thread allocated on the managed heap in its loop (GC.GetAllocatedBytesForCurrentThread),
    // brought up to date before each sleep in poll and every 4,096 turns. The packet path allocates nothing: under
    // traffic this stays where it was, and a rise is a defect (each allocation is a step towards a GC pause).
    WorkerAllocatedBytes,
    // --offload on: decapsulated UDP datagrams written to the EID side inside a GSO UDP_L4 super-packet (one write
    // for a burst of one flow's datagrams; each also counted in segments-coalesced and its write in tun-super-packets-written).
    UdpDatagramsCoalesced,
    // --offload on: encapsulated datagrams the ITR sent inside UDP GSO bursts of one flow to one locator (one send,
    // and one socket buffer through the underlay, for up to 64; each send also counted in udp-gso-sends).
    ItrDatagramsGathered,
    Count,
}

/// <summary>
/// One worker's block of 64-bit counters (512 bytes, cache-line aligned, so workers never share a line). Only the
/// owning worker writes; readers in other processes read each word with Volatile (a 64-bit aligned load is atomic).
/// </summary>
public readonly unsafe struct WorkerCounters
{
    public const int Slots = 64;
    public const int BlockBytes = Slots * sizeof(ulong);
    private readonly ulong* _c;

    public WorkerCounters(ulong* counters) => _c = counters;

    public void Add(Counter c, ulong n = 1) => _c[(int)c] += n;

    public ulong this[Counter c] => Volatile.Read(ref _c[(int)c]);

    public static bool IsDrop(Counter c) => c.ToString().StartsWith("Drop", StringComparison.Ordinal);

    public static string Name(Counter c) => CounterNames.Kebab(c.ToString());

}
