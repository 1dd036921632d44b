/*
 * pktgen: a traffic generator for scripts/bench-capacity.sh. Sends one pre-built Ethernet frame (varied over 256
 * UDP source ports) as fast as it can through an AF_PACKET TX ring with qdisc bypass, for SECS seconds, then prints
 * "sent PACKETS MPPS". The frame is built once per slot; the loop only hands slots back to the kernel.
 *
 *   pktgen IFNAME DST_MAC SRC_MAC SRC_IP DST_IP SECS plain|lisp|vxlan [OUTER_SRC OUTER_DST IID_OR_VNI INNER_DST_MAC]
 *
 * RATE (environment, packets/s): send at that rate, in bursts of up to 64 frames, instead of as fast as possible.
 *
 * plain: IPv4/UDP to port 9 with an 18-byte payload (a 60-byte frame, 64 on the wire with the FCS).
 * lisp:  that packet (without Ethernet) behind outer IPv4/UDP 4341 and an 8-byte LISP header with the instance ID.
 * vxlan: that frame (with Ethernet, to INNER_DST_MAC) behind outer IPv4/UDP 4789 and a VXLAN header with the VNI.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAME 2048
#define FRAMES 4096

static void mac(const char *s, uint8_t *m) {
    unsigned v[6];
    if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) { fprintf(stderr, "bad MAC %s\n", s); exit(2); }
    for (int i = 0; i < 6; i++) m[i] = (uint8_t)v[i];
}

static uint16_t csum(const void *p, int n) {
    const uint8_t *b = p; uint32_t s = 0;
    for (int i = 0; i + 1 < n; i += 2) s += (uint32_t)(b[i] << 8 | b[i + 1]);
    if (n & 1) s += (uint32_t)b[n - 1] << 8;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return htons((uint16_t)~s);
}

/* An IPv4/UDP packet at p: returns its length. */
static int ip_udp(uint8_t *p, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, int payload, uint8_t fill) {
    struct iphdr *ip = (struct iphdr *)p;
    struct udphdr *udp = (struct udphdr *)(p + 20);
    int len = 20 + 8 + payload;
    memset(p, 0, 28);
    ip->version = 4; ip->ihl = 5; ip->ttl = 64; ip->protocol = 17; ip->tot_len = htons((uint16_t)len);
    ip->saddr = src; ip->daddr = dst; ip->check = csum(ip, 20);
    udp->source = htons(sport); udp->dest = htons(dport); udp->len = htons((uint16_t)(8 + payload)); udp->check = 0;
    memset(p + 28, fill, (size_t)payload);
    return len;
}

int main(int argc, char **argv) {
    if (argc < 8) { fprintf(stderr, "usage: pktgen IFNAME DST_MAC SRC_MAC SRC_IP DST_IP SECS plain|lisp|vxlan [OUTER_SRC OUTER_DST IID_OR_VNI INNER_DST_MAC]\n"); return 2; }
    uint8_t dmac[6], smac[6], imac[6] = {0x02, 0, 0, 0, 0, 1};
    mac(argv[2], dmac); mac(argv[3], smac);
    uint32_t src = inet_addr(argv[4]), dst = inet_addr(argv[5]);
    double secs = atof(argv[6]);
    const char *kind = argv[7];
    int lisp = !strcmp(kind, "lisp"), vxlan = !strcmp(kind, "vxlan");
    uint32_t osrc = 0, odst = 0, id = 0;
    if (lisp || vxlan) {
        if (argc < 11) { fprintf(stderr, "pktgen: %s needs OUTER_SRC OUTER_DST IID_OR_VNI\n", kind); return 2; }
        osrc = inet_addr(argv[8]); odst = inet_addr(argv[9]); id = (uint32_t)strtoul(argv[10], 0, 10);
        if (vxlan && argc > 11) mac(argv[11], imac);
    }
    int ifindex = (int)if_nametoindex(argv[1]);
    if (!ifindex) { fprintf(stderr, "pktgen: no interface %s\n", argv[1]); return 1; }
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0) { perror("socket"); return 1; }
    int v = TPACKET_V2;
    if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v)) { perror("PACKET_VERSION"); return 1; }
    v = 1; setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &v, sizeof v);
    struct tpacket_req req = { .tp_block_size = FRAME * 32, .tp_block_nr = FRAMES / 32, .tp_frame_size = FRAME, .tp_frame_nr = FRAMES };
    if (setsockopt(fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof req)) { perror("PACKET_TX_RING"); return 1; }
    uint8_t *ring = mmap(0, (size_t)FRAME * FRAMES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (ring == MAP_FAILED) { perror("mmap"); return 1; }
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_protocol = htons(ETH_P_IP) };
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll)) { perror("bind"); return 1; }
    int data = TPACKET2_HDRLEN - sizeof(struct sockaddr_ll);
    for (int f = 0; f < FRAMES; f++) {
        uint8_t *frame = ring + (size_t)f * FRAME + data, *p = frame + 14;
        memcpy(frame, dmac, 6); memcpy(frame + 6, smac, 6); frame[12] = 0x08; frame[13] = 0x00;
        uint16_t sport = (uint16_t)(10000 + (f & 255));
        int len;
        if (lisp) {
            uint8_t inner[64];
            int n = ip_udp(inner, src, dst, sport, 9, 18, 0x5a);
            len = ip_udp(p, osrc, odst, (uint16_t)(49152 + (f & 255)), 4341, 8 + n, 0);
            uint8_t *h = p + 28;
            h[0] = 0x08; h[1] = h[2] = h[3] = 0; /* I bit: an instance ID in the next 24 bits */
            h[4] = (uint8_t)(id >> 16); h[5] = (uint8_t)(id >> 8); h[6] = (uint8_t)id; h[7] = 0;
            memcpy(h + 8, inner, (size_t)n);
        } else if (vxlan) {
            uint8_t inner[80];
            memcpy(inner, imac, 6); memcpy(inner + 6, smac, 6); inner[12] = 0x08; inner[13] = 0;
            int n = 14 + ip_udp(inner + 14, src, dst, sport, 9, 18, 0x5a);
            len = ip_udp(p, osrc, odst, (uint16_t)(49152 + (f & 255)), 4789, 8 + n, 0);
            uint8_t *h = p + 28;
            memset(h, 0, 8); h[0] = 0x08; h[4] = (uint8_t)(id >> 16); h[5] = (uint8_t)(id >> 8); h[6] = (uint8_t)id;
            memcpy(h + 8, inner, (size_t)n);
        } else {
            len = ip_udp(p, src, dst, sport, 9, 18, 0x5a);
        }
        struct tpacket2_hdr *hdr = (struct tpacket2_hdr *)(ring + (size_t)f * FRAME);
        hdr->tp_len = (unsigned)(14 + len);
        hdr->tp_status = TP_STATUS_AVAILABLE;
    }
    double rate = getenv("RATE") ? atof(getenv("RATE")) : 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long sent = 0;
    int next = 0;
    for (;;) {
        /* Hand free slots back with their frames (as many as are due at RATE), then have the kernel send them. */
        int want = FRAMES;
        if (rate > 0) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            double el = (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
            if (el >= secs) { printf("sent %lu %.3f\n", sent, (double)sent / el / 1e6); return 0; }
            double due = el * rate - (double)sent;
            /* Ahead of the schedule: give the core to whatever shares it (the sink's NAPI thread runs on this CPU). */
            if (due < 1) { sched_yield(); continue; }
            want = due > 64 ? 64 : (int)due;
        }
        int queued = 0;
        for (int k = 0; k < want; k++) {
            struct tpacket2_hdr *hdr = (struct tpacket2_hdr *)(ring + (size_t)next * FRAME);
            if (hdr->tp_status != TP_STATUS_AVAILABLE) break;
            hdr->tp_status = TP_STATUS_SEND_REQUEST;
            next = (next + 1) % FRAMES;
            queued++;
        }
        if (send(fd, 0, 0, 0) < 0 && errno != ENOBUFS && errno != EAGAIN) { perror("send"); return 1; }
        sent += (unsigned long)queued;
        clock_gettime(CLOCK_MONOTONIC, &t);
        double el = (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
        if (el >= secs) { printf("sent %lu %.3f\n", sent, (double)sent / el / 1e6); return 0; }
    }
}
