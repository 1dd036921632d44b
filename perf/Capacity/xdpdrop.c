/*
 * xdpdrop: the sink of scripts/bench-capacity.sh. Attaches a two-instruction XDP program (return XDP_DROP) to an
 * interface through a BPF link and holds it until killed (the link, and the program, go with the process). On a veth
 * the frames are then dropped in the veth's NAPI poll, before any socket buffer exists; the veth still counts them as
 * received (rx_packets).
 *
 *   xdpdrop IFNAME
 */
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long bpf(int cmd, union bpf_attr *attr) { return syscall(SYS_bpf, cmd, attr, sizeof *attr); }

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: xdpdrop IFNAME\n"); return 2; }
    int ifindex = (int)if_nametoindex(argv[1]);
    if (!ifindex) { fprintf(stderr, "xdpdrop: no interface %s\n", argv[1]); return 1; }
    struct bpf_insn prog[] = {
        { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = XDP_DROP },
        { .code = BPF_JMP | BPF_EXIT },
    };
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_XDP;
    attr.insn_cnt = 2;
    attr.insns = (unsigned long)prog;
    attr.license = (unsigned long)"GPL";
    int fd = (int)bpf(BPF_PROG_LOAD, &attr);
    if (fd < 0) { perror("xdpdrop: BPF_PROG_LOAD"); return 1; }
    memset(&attr, 0, sizeof attr);
    attr.link_create.prog_fd = (unsigned)fd;
    attr.link_create.target_ifindex = (unsigned)ifindex;
    attr.link_create.attach_type = BPF_XDP;
    attr.link_create.flags = XDP_FLAGS_DRV_MODE;
    if (bpf(BPF_LINK_CREATE, &attr) < 0) { perror("xdpdrop: BPF_LINK_CREATE"); return 1; }
    printf("xdpdrop: dropping on %s\n", argv[1]);
    fflush(stdout);
    pause();
    return 0;
}
