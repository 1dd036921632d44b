// Request/response ("ping-pong") over UDP or TCP, for scripts/bench-dataplane.sh: the round-trip time of small
// messages and the transactions per second, with 1 or N requests outstanding.
//
//   rr server udp|tcp BIND-ADDRESS PORT SECONDS
//       echoes every datagram (UDP) or every byte of every connection (TCP) back to its sender, until SECONDS pass
//   rr client udp|tcp SERVER PORT SIZE OUTSTANDING SECONDS [BIND-ADDRESS]
//       keeps OUTSTANDING requests of SIZE bytes in flight; each carries its send time, and each answer's round trip
//       is recorded (after a 0.5 s warm-up that is not); prints one line:
//       "rr: tps T p50_us A p99_us B p999_us C lost L"
//
// UDP requests carry a sequence number: an answer that is not the oldest one outstanding still counts (the path may
// reorder), and a request unanswered for 200 ms is counted as lost and replaced. TCP requests go on one connection
// with TCP_NODELAY; the server echoes bytes as they come, the client reads one whole answer at a time. Everything
// stays on the addresses given (the benchmark's namespaces). Both sides stop after SECONDS whatever happens.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 65000
#define MAX_OUTSTANDING 256
#define WARMUP_NS 500000000ULL
#define UDP_TIMEOUT_NS 200000000ULL

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "rr: %s: %s\n", what, strerror(errno));
    exit(1);
}

static struct sockaddr_in address(const char *ip, int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
        fprintf(stderr, "rr: '%s' is not an IPv4 address\n", ip);
        exit(2);
    }
    return a;
}

// ---- the server ----

static int serve_udp(struct sockaddr_in at, int seconds) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&at, sizeof at)) die("udp bind");
    static char buf[MAX_SIZE];
    uint64_t end = now_ns() + (uint64_t)seconds * 1000000000ULL;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (now_ns() < end) {
        if (poll(&p, 1, 100) <= 0) continue;
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &len);
        if (n > 0) sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len);
    }
    return 0;
}

static int serve_tcp(struct sockaddr_in at, int seconds) {
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&at, sizeof at) || listen(lfd, 8)) die("tcp listen");
    struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = -1, .events = POLLIN}};
    static char buf[1 << 16];
    uint64_t end = now_ns() + (uint64_t)seconds * 1000000000ULL;
    while (now_ns() < end) {
        if (poll(p, 2, 100) <= 0) continue;
        if (p[0].revents & POLLIN) {
            int c = accept(lfd, NULL, NULL);
            if (c >= 0) {
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                if (p[1].fd >= 0) close(p[1].fd);
                p[1].fd = c;
            }
        }
        if (p[1].fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = recv(p[1].fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN)) { close(p[1].fd); p[1].fd = -1; continue; }
            for (ssize_t off = 0; off < n;) {
                ssize_t w = send(p[1].fd, buf + off, (size_t)(n - off), 0);
                if (w <= 0) break;
                off += w;
            }
        }
    }
    return 0;
}

// ---- the client ----

static uint64_t *rtts;
static size_t rtt_count, rtt_capacity;

static void record(uint64_t rtt) {
    if (rtt_count == rtt_capacity) {
        rtt_capacity = rtt_capacity ? rtt_capacity * 2 : 1 << 20;
        rtts = realloc(rtts, rtt_capacity * sizeof *rtts);
        if (!rtts) die("realloc");
    }
    rtts[rtt_count++] = rtt;
}

static int by_value(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile_us(double q) {
    if (rtt_count == 0) return 0;
    size_t i = (size_t)(q * (double)(rtt_count - 1) + 0.5);
    return (double)rtts[i] / 1000.0;
}

static void report(uint64_t measured_ns, unsigned long long lost) {
    qsort(rtts, rtt_count, sizeof *rtts, by_value);
    printf("rr: tps %.0f p50_us %.1f p99_us %.1f p999_us %.1f lost %llu\n",
           measured_ns ? (double)rtt_count * 1e9 / (double)measured_ns : 0.0,
           percentile_us(0.50), percentile_us(0.99), percentile_us(0.999), lost);
}

static int client_udp(struct sockaddr_in to, int bind_set, struct sockaddr_in from, int size, int outstanding, int seconds) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) die("socket");
    if (bind_set && bind(fd, (struct sockaddr *)&from, sizeof from)) die("bind");
    if (connect(fd, (struct sockaddr *)&to, sizeof to)) die("connect");
    static char buf[MAX_SIZE];
    memset(buf, 0x5a, sizeof buf);
    uint64_t sent_at[MAX_OUTSTANDING] = {0}; // by slot; 0: free
    uint64_t seq_of[MAX_OUTSTANDING] = {0};
    uint64_t seq = 1, start = now_ns(), warm = start + WARMUP_NS, end = start + (uint64_t)seconds * 1000000000ULL;
    unsigned long long lost = 0;
    for (;;) {
        uint64_t t = now_ns();
        if (t >= end) break;
        for (int s = 0; s < outstanding; s++) {
            if (sent_at[s] && t - sent_at[s] > UDP_TIMEOUT_NS) { if (t >= warm) lost++; sent_at[s] = 0; }
            if (!sent_at[s]) {
                uint64_t header[3] = {seq, (uint64_t)s, t};
                memcpy(buf, header, sizeof header);
                if (send(fd, buf, (size_t)size, 0) == size) { sent_at[s] = t; seq_of[s] = seq++; }
            }
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        ssize_t n;
        while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) >= (ssize_t)(3 * sizeof(uint64_t))) {
            uint64_t header[3];
            memcpy(header, buf, sizeof header);
            uint64_t s = header[1], back = now_ns();
            if (s >= (uint64_t)outstanding || !sent_at[s] || seq_of[s] != header[0]) continue; // late, after its replacement
            if (sent_at[s] >= warm) record(back - sent_at[s]);
            sent_at[s] = 0;
        }
    }
    report(end - warm, lost);
    return 0;
}

static int read_full(int fd, char *buf, size_t n, uint64_t end) {
    size_t got = 0;
    while (got < n) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (now_ns() >= end) return -1;
        if (poll(&p, 1, 50) <= 0) continue;
        ssize_t r = recv(fd, buf + got, n - got, MSG_DONTWAIT);
        if (r == 0) return -1;
        if (r < 0) { if (errno == EAGAIN) continue; return -1; }
        got += (size_t)r;
    }
    return 0;
}

static int client_tcp(struct sockaddr_in to, int bind_set, struct sockaddr_in from, int size, int outstanding, int seconds) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0) die("socket");
    if (bind_set && bind(fd, (struct sockaddr *)&from, sizeof from)) die("bind");
    if (connect(fd, (struct sockaddr *)&to, sizeof to)) die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    static char out[MAX_SIZE], in[MAX_SIZE];
    memset(out, 0x5a, sizeof out);
    uint64_t start = now_ns(), warm = start + WARMUP_NS, end = start + (uint64_t)seconds * 1000000000ULL;
    // A request's send time travels in its first 8 bytes and comes back in the echo.
    for (int i = 0; i < outstanding; i++) {
        uint64_t t = now_ns();
        memcpy(out, &t, sizeof t);
        if (send(fd, out, (size_t)size, 0) != size) die("send");
    }
    while (now_ns() < end) {
        if (read_full(fd, in, (size_t)size, end)) break;
        uint64_t t, back = now_ns();
        memcpy(&t, in, sizeof t);
        if (t >= warm) record(back - t);
        memcpy(out, &back, sizeof back);
        if (send(fd, out, (size_t)size, 0) != size) break;
    }
    report(end - warm, 0);
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 6 && !strcmp(argv[1], "server")) {
        struct sockaddr_in at = address(argv[3], atoi(argv[4]));
        return !strcmp(argv[2], "tcp") ? serve_tcp(at, atoi(argv[5])) : serve_udp(at, atoi(argv[5]));
    }
    if (argc >= 8 && !strcmp(argv[1], "client")) {
        struct sockaddr_in to = address(argv[3], atoi(argv[4])), from = {0};
        int size = atoi(argv[5]), outstanding = atoi(argv[6]), seconds = atoi(argv[7]), bind_set = argc > 8;
        if (bind_set) from = address(argv[8], 0);
        if (size < 24 || size > MAX_SIZE || outstanding < 1 || outstanding > MAX_OUTSTANDING || seconds < 1) {
            fprintf(stderr, "rr: SIZE 24..%d, OUTSTANDING 1..%d, SECONDS >= 1\n", MAX_SIZE, MAX_OUTSTANDING);
            return 2;
        }
        return !strcmp(argv[2], "tcp") ? client_tcp(to, bind_set, from, size, outstanding, seconds)
                                       : client_udp(to, bind_set, from, size, outstanding, seconds);
    }
    fprintf(stderr, "usage: rr server udp|tcp BIND PORT SECONDS | rr client udp|tcp SERVER PORT SIZE OUTSTANDING SECONDS [BIND]\n");
    return 2;
}
