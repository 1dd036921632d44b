/*
 * xskfwd: the C ceiling of scripts/bench-capacity.sh. The least an AF_XDP xTR can do: receive frames on one
 * interface through an AF_XDP socket (our own redirect program, attached through a BPF link) and transmit through an
 * AF_XDP socket on the other interface, copying each packet once between the two UMEMs. encap (an ITR): prepend a
 * fixed outer Ethernet + IPv4 + UDP 4341 + LISP header, lengths and the IPv4 checksum patched per packet. decap (an
 * ETR): drop the outer Ethernet + IPv4 + UDP + LISP headers (50 bytes) and prepend a fixed Ethernet header. No
 * lookup, no checks, no counters. It yields its CPU when it finds nothing, so that the kernel's receive work on the
 * same core can run. Runs until killed.
 *
 *   xskfwd IN_IF OUT_IF DST_MAC SRC_MAC encap OUTER_SRC OUTER_DST IID
 *   xskfwd IN_IF OUT_IF DST_MAC SRC_MAC decap
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CHUNK 2048
#define N 4096
#define BATCH 64

struct ring { uint32_t *prod, *cons, *flags; void *desc; uint32_t mask; };

static long bpf(int cmd, union bpf_attr *a) { return syscall(SYS_bpf, cmd, a, sizeof *a); }
static void die(const char *what) { perror(what); exit(1); }

static void map_ring(int fd, struct xdp_ring_offset *o, long long pgoff, uint32_t n, size_t esize, struct ring *r) {
    size_t len = o->desc + n * esize;
    uint8_t *m = mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, pgoff);
    if (m == MAP_FAILED) die("mmap ring");
    r->prod = (uint32_t *)(m + o->producer); r->cons = (uint32_t *)(m + o->consumer);
    r->flags = (uint32_t *)(m + o->flags); r->desc = m + o->desc; r->mask = n - 1;
}

/* One AF_XDP socket with its own UMEM of N chunks; rx: bind with RX and fill rings, else TX and completion only. */
static int xsk(const char *ifname, int rx, uint8_t **umem, struct ring *fill, struct ring *comp, struct ring *data) {
    int fd = socket(AF_XDP, SOCK_RAW, 0);
    if (fd < 0) die("socket AF_XDP");
    *umem = mmap(0, (size_t)N * CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    struct xdp_umem_reg reg = { .addr = (uint64_t)*umem, .len = (uint64_t)N * CHUNK, .chunk_size = CHUNK };
    if (setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &reg, sizeof reg)) die("XDP_UMEM_REG");
    int n = N;
    if (setsockopt(fd, SOL_XDP, XDP_UMEM_FILL_RING, &n, sizeof n)) die("fill ring");
    if (setsockopt(fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &n, sizeof n)) die("completion ring");
    if (setsockopt(fd, SOL_XDP, rx ? XDP_RX_RING : XDP_TX_RING, &n, sizeof n)) die("rx/tx ring");
    struct xdp_mmap_offsets off; socklen_t ol = sizeof off;
    if (getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &ol)) die("XDP_MMAP_OFFSETS");
    map_ring(fd, &off.fr, XDP_UMEM_PGOFF_FILL_RING, N, 8, fill);
    map_ring(fd, &off.cr, XDP_UMEM_PGOFF_COMPLETION_RING, N, 8, comp);
    if (rx) map_ring(fd, &off.rx, XDP_PGOFF_RX_RING, N, sizeof(struct xdp_desc), data);
    else map_ring(fd, &off.tx, XDP_PGOFF_TX_RING, N, sizeof(struct xdp_desc), data);
    struct sockaddr_xdp sx = { .sxdp_family = AF_XDP, .sxdp_ifindex = if_nametoindex(ifname), .sxdp_queue_id = 0, .sxdp_flags = XDP_COPY | XDP_USE_NEED_WAKEUP };
    if (bind(fd, (struct sockaddr *)&sx, sizeof sx)) die("bind AF_XDP");
    return fd;
}

static void mac(const char *s, uint8_t *m) {
    unsigned v[6];
    if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) { fprintf(stderr, "bad MAC %s\n", s); exit(2); }
    for (int i = 0; i < 6; i++) m[i] = (uint8_t)v[i];
}

int main(int argc, char **argv) {
    int decap = argc == 6 && !strcmp(argv[5], "decap");
    if (!decap && !(argc == 9 && !strcmp(argv[5], "encap"))) { fprintf(stderr, "usage: xskfwd IN_IF OUT_IF DST_MAC SRC_MAC encap OUTER_SRC OUTER_DST IID | decap\n"); return 2; }
    uint8_t hdr[50] = {0};
    mac(argv[3], hdr); mac(argv[4], hdr + 6); hdr[12] = 0x08;
    uint8_t *ip = hdr + 14;
    ip[0] = 0x45; ip[8] = 64; ip[9] = 17;
    uint32_t s = decap ? 0 : inet_addr(argv[6]), d = decap ? 0 : inet_addr(argv[7]);
    memcpy(ip + 12, &s, 4); memcpy(ip + 16, &d, 4);
    uint8_t *udp = ip + 20; udp[0] = 0xf0; udp[2] = 0x10; udp[3] = 0xf5; /* 61440 -> 4341 */
    uint32_t iid = decap ? 0 : (uint32_t)strtoul(argv[8], 0, 10);
    uint8_t *lisp = udp + 8; lisp[0] = 0x08; lisp[4] = (uint8_t)(iid >> 16); lisp[5] = (uint8_t)(iid >> 8); lisp[6] = (uint8_t)iid;
    /* The IPv4 checksum of the fixed header without its length: the length is added per packet. */
    uint32_t base = 0;
    for (int i = 0; i < 20; i += 2) base += (uint32_t)(ip[i] << 8 | ip[i + 1]);

    uint8_t *in_umem, *out_umem;
    struct ring fill, comp, rx, ofill, ocomp, tx;
    int in = xsk(argv[1], 1, &in_umem, &fill, &comp, &rx);
    int out = xsk(argv[2], 0, &out_umem, &ofill, &ocomp, &tx);

    /* The XDP program: redirect every frame of the queue to its socket (pass when there is none). */
    union bpf_attr a; memset(&a, 0, sizeof a);
    a.map_type = BPF_MAP_TYPE_XSKMAP; a.key_size = 4; a.value_size = 4; a.max_entries = 64;
    int map = (int)bpf(BPF_MAP_CREATE, &a);
    if (map < 0) die("XSKMAP");
    struct bpf_insn prog[] = {
        { .code = BPF_LDX | BPF_MEM | BPF_W, .dst_reg = 2, .src_reg = 1, .off = 16 },          /* r2 = rx_queue_index */
        { .code = BPF_LD | BPF_IMM | BPF_DW, .dst_reg = 1, .src_reg = BPF_PSEUDO_MAP_FD, .imm = map }, { 0 },
        { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 3, .imm = XDP_PASS },
        { .code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_redirect_map },
        { .code = BPF_JMP | BPF_EXIT },
    };
    memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_XDP; a.insn_cnt = 6; a.insns = (uint64_t)prog; a.license = (uint64_t)"GPL";
    int pfd = (int)bpf(BPF_PROG_LOAD, &a);
    if (pfd < 0) die("BPF_PROG_LOAD");
    uint32_t key = 0; int val = in;
    memset(&a, 0, sizeof a); a.map_fd = (uint32_t)map; a.key = (uint64_t)&key; a.value = (uint64_t)&val;
    if (bpf(BPF_MAP_UPDATE_ELEM, &a)) die("XSKMAP update");
    memset(&a, 0, sizeof a);
    a.link_create.prog_fd = (uint32_t)pfd; a.link_create.target_ifindex = if_nametoindex(argv[1]); a.link_create.attach_type = BPF_XDP; a.link_create.flags = XDP_FLAGS_DRV_MODE;
    if (bpf(BPF_LINK_CREATE, &a) < 0) die("BPF_LINK_CREATE");

    /* Every input chunk to the fill ring; output chunks on a free stack. */
    for (uint32_t i = 0; i < N; i++) ((uint64_t *)fill.desc)[i] = (uint64_t)i * CHUNK;
    __atomic_store_n(fill.prod, N, __ATOMIC_RELEASE);
    uint64_t free_tx[N]; int nfree = N;
    for (int i = 0; i < N; i++) free_tx[i] = (uint64_t)i * CHUNK;
    uint32_t rx_cons = 0, fill_prod = N, tx_prod = 0, comp_cons = 0;
    printf("xskfwd: %s -> %s\n", argv[1], argv[2]);
    fflush(stdout);
    for (;;) {
        uint32_t avail = __atomic_load_n(rx.prod, __ATOMIC_ACQUIRE) - rx_cons;
        /* Chunks sent come back. */
        uint32_t done = __atomic_load_n(ocomp.prod, __ATOMIC_ACQUIRE) - comp_cons;
        for (uint32_t i = 0; i < done; i++) free_tx[nfree++] = ((uint64_t *)ocomp.desc)[(comp_cons + i) & ocomp.mask];
        comp_cons += done;
        __atomic_store_n(ocomp.cons, comp_cons, __ATOMIC_RELEASE);
        if (avail == 0) { sched_yield(); continue; }
        if (avail > BATCH) avail = BATCH;
        if (avail > (uint32_t)nfree) avail = (uint32_t)nfree; /* the rest waits in the RX ring */
        uint32_t sent = 0;
        for (uint32_t i = 0; i < avail; i++) {
            struct xdp_desc *dsc = &((struct xdp_desc *)rx.desc)[(rx_cons + i) & rx.mask];
            uint8_t *frame = in_umem + dsc->addr;
            uint8_t *o = out_umem + free_tx[--nfree];
            struct xdp_desc *t = &((struct xdp_desc *)tx.desc)[(tx_prod + sent) & tx.mask];
            if (decap) {
                uint32_t inner = dsc->len > 50 ? dsc->len - 50 : 0;
                memcpy(o, hdr, 14);
                memcpy(o + 14, frame + 50, inner);
                t->addr = (uint64_t)(o - out_umem); t->len = 14 + inner; t->options = 0;
                sent++;
                ((uint64_t *)fill.desc)[fill_prod++ & fill.mask] = dsc->addr - dsc->addr % CHUNK;
                continue;
            }
            uint32_t inner = dsc->len - 14;
            memcpy(o, hdr, 50);
            uint32_t total = 36 + inner;
            o[16] = (uint8_t)(total >> 8); o[17] = (uint8_t)total;
            uint32_t c = base + total;
            while (c >> 16) c = (c & 0xffff) + (c >> 16);
            c = ~c & 0xffff; o[24] = (uint8_t)(c >> 8); o[25] = (uint8_t)c;
            uint32_t ul = 16 + inner; o[38] = (uint8_t)(ul >> 8); o[39] = (uint8_t)ul;
            memcpy(o + 50, frame + 14, inner);
            t->addr = (uint64_t)(o - out_umem); t->len = 50 + inner; t->options = 0;
            sent++;
            ((uint64_t *)fill.desc)[fill_prod++ & fill.mask] = dsc->addr - dsc->addr % CHUNK;
        }
        rx_cons += avail;
        __atomic_store_n(rx.cons, rx_cons, __ATOMIC_RELEASE);
        __atomic_store_n(fill.prod, fill_prod, __ATOMIC_RELEASE);
        tx_prod += sent;
        __atomic_store_n(tx.prod, tx_prod, __ATOMIC_RELEASE);
        /* Copy mode sends at most 32 frames per wake-up: wake it until the ring is drained (or it stops taking). */
        for (int k = 0; k < 4 && __atomic_load_n(tx.cons, __ATOMIC_ACQUIRE) != tx_prod; k++)
            if ((__atomic_load_n(tx.flags, __ATOMIC_ACQUIRE) & XDP_RING_NEED_WAKEUP) && sendto(out, 0, 0, MSG_DONTWAIT, 0, 0) < 0 && errno != EAGAIN && errno != EBUSY && errno != ENOBUFS) break;
    }
}
