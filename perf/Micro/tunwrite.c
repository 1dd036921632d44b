// One packet written to a TUN with a virtio-net header (IFF_VNET_HDR), three ways: writev of the header and the
// packet (two iovecs), write of a buffer already holding both, and a copy of the packet behind the header then write.
// Measures what TunPort.Write pays per decapsulated packet with offloads on. Run in a namespace of its own as root:
//   gcc -O2 -o /tmp/tunwrite perf/Micro/tunwrite.c && ip netns add tw && ip netns exec tw /tmp/tunwrite 64 300000; ip netns del tw
// The packets are UDP to a local address with no listener (the kernel drops them after its receive path).
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <net/if.h>
#include <linux/if_tun.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  if(argc<3){fprintf(stderr,"usage: tunwrite SIZE COUNT (28..2048 bytes)\n");return 2;}
  int size=atoi(argv[1]); int n=atoi(argv[2]);
  if(size<28||size>2048||n<1){fprintf(stderr,"tunwrite: SIZE 28..2048, COUNT >= 1\n");return 2;}
  int fd=open("/dev/net/tun",O_RDWR); struct ifreq ifr={0}; strcpy(ifr.ifr_name,"fxtunw");
  ifr.ifr_flags=IFF_TUN|IFF_NO_PI|IFF_VNET_HDR; if(ioctl(fd,TUNSETIFF,&ifr)<0){perror("tun");return 1;}
  int hs=12; ioctl(fd,TUNSETVNETHDRSZ,&hs);
  system("ip link set fxtunw up; ip addr add 10.77.0.1/24 dev fxtunw");
  unsigned char pkt[2048]={0}; unsigned char hdr[12]={0};
  // IPv4/UDP to 10.77.0.1:9 (local, no listener -> ICMP port unreachable is rate limited; dropped)
  pkt[0]=0x45; int tot=size; pkt[2]=tot>>8; pkt[3]=tot; pkt[8]=64; pkt[9]=17;
  pkt[12]=10;pkt[13]=77;pkt[14]=0;pkt[15]=2; pkt[16]=10;pkt[17]=77;pkt[18]=0;pkt[19]=1;
  unsigned s=0; for(int i=0;i<20;i+=2) s+=(pkt[i]<<8)|pkt[i+1]; while(s>>16) s=(s&0xffff)+(s>>16); s=~s&0xffff; pkt[10]=s>>8; pkt[11]=s;
  pkt[20]=0x30;pkt[21]=0x39; pkt[22]=0;pkt[23]=9; pkt[24]=(size-20)>>8; pkt[25]=(size-20);
  unsigned char buf[2100]; memcpy(buf,hdr,12); memcpy(buf+12,pkt,size);
  for(int round=0;round<3;round++){
    double t0=now(); for(int i=0;i<n;i++){ struct iovec v[2]={{hdr,12},{pkt,size}}; if(writev(fd,v,2)<0){perror("writev");return 1;} } double t1=now();
    for(int i=0;i<n;i++){ if(write(fd,buf,12+size)<0){perror("write");return 1;} } double t2=now();
    for(int i=0;i<n;i++){ memcpy(buf+12,pkt,size); if(write(fd,buf,12+size)<0){perror("write");return 1;} } double t3=now();
    printf("size %d: writev(2) %.0f ns  write %.0f ns  copy+write %.0f ns\n",size,(t1-t0)/n*1e9,(t2-t1)/n*1e9,(t3-t2)/n*1e9);
  }
  return 0;
}
