/* The loopback floor for scripts/bench-mapserver.sh: answers each ECM Map-Request from the load generator with a
 * 12-byte Map-Reply header carrying its nonce, sent to the inner UDP source port on 127.0.0.1 (where the generator
 * collects replies), with no lookup and no encoding. What the generator measures against it is what this
 * machine's loopback, scheduler and the generator itself cost; the Map-Server's figures are read against it.
 * Build: gcc -O2 -o reply-floor reply-floor.c; run: reply-floor PORT (loopback only, until killed). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: reply-floor PORT\n"); return 2; }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(argv[1]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0) { perror("reply-floor: bind"); return 1; }
    unsigned char in[2048], out[12];
    for (;;) {
        ssize_t n = recv(s, in, sizeof in, 0);
        /* ECM header 4, inner IPv4 20, inner UDP 8 (source port at 24), Map-Request nonce at 32 + 4. */
        if (n < 44 || in[0] >> 4 != 8) continue;
        struct sockaddr_in to = a;
        memcpy(&to.sin_port, in + 24, 2);
        memset(out, 0, sizeof out);
        out[0] = 2 << 4;
        memcpy(out + 4, in + 36, 8);
        sendto(s, out, sizeof out, 0, (struct sockaddr *)&to, sizeof to);
    }
}
