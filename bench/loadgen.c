/*
 * Paced nonblocking TCP connect() load for bench/bench_sensor.py, or UDP sendto() load.
 *
 * usage: loadgen COUNT RATE PORT SUBNET [HOSTS [udp|silent]]
 *   COUNT   connect() calls (or datagrams) to make
 *   RATE    target calls per second (paced in 1 ms slices)
 *   PORT    destination port (a closed one, e.g. 9)
 *   SUBNET  second octet of the 127.SUBNET.y.z destinations (1..254)
 *   HOSTS   distinct destinations cycled through (1..65024, default 65024; 1: one service
 *           connected to again and again, as a client's loop does)
 *   udp     one nonblocking UDP socket sends a 1-byte datagram to each destination instead
 *   silent  connect to 10.SUBNET.y.z instead, which only exists in the network namespace
 *           bench_sensor.silent_namespace() creates (a dummy device: the SYNs vanish, as a
 *           scanner's mostly do); refused unless this process is in a network namespace other
 *           than its parent's and init's
 *
 * SAFETY: every destination is built here as 127.SUBNET.y.z, or as 10.SUBNET.y.z only inside a
 * network namespace that is not the host's; nothing else can be addressed.
 * Prints one line: "attempted N errors E seconds S rate R".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long parse(const char *text, long lo, long hi, const char *what)
{
	char *end;
	long value = strtol(text, &end, 10);
	if (*text == '\0' || *end != '\0' || value < lo || value > hi) {
		fprintf(stderr, "loadgen: bad %s %s (want %ld..%ld)\n", what, text, lo, hi);
		exit(2);
	}
	return value;
}

/* Whether this process runs in a network namespace other than its parent's (the bench, which
 * runs it with `ip netns exec`, which execs it) and init's (when pid 1's can be read). */
static int same_netns(const char *path, const struct stat *mine)
{
	struct stat other;
	return stat(path, &other) == 0 && other.st_ino == mine->st_ino && other.st_dev == mine->st_dev;
}

static int in_own_netns(void)
{
	struct stat mine;
	char parent[64];
	if (stat("/proc/self/ns/net", &mine) != 0)
		return 0;
	snprintf(parent, sizeof parent, "/proc/%d/ns/net", (int)getppid());
	struct stat check;
	if (stat(parent, &check) != 0)
		return 0; /* cannot tell: refuse */
	return !same_netns(parent, &mine) && !same_netns("/proc/1/ns/net", &mine);
}

int main(int argc, char **argv)
{
	if (argc < 5 || argc > 7 ||
	    (argc == 7 && strcmp(argv[6], "udp") != 0 && strcmp(argv[6], "silent") != 0)) {
		fprintf(stderr, "usage: loadgen COUNT RATE PORT SUBNET [HOSTS [udp|silent]]\n");
		return 2;
	}
	int udp = argc == 7 && strcmp(argv[6], "udp") == 0;
	int silent = argc == 7 && !udp;
	if (silent && !in_own_netns()) {
		fprintf(stderr, "loadgen: silent targets only inside a network namespace of its own\n");
		return 2;
	}
	unsigned long first_octet = silent ? 10UL : 127UL;
	int ufd = udp ? socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0) : -1;
	if (udp && ufd < 0) {
		perror("loadgen: socket");
		return 1;
	}
	long count = parse(argv[1], 1, 100000000, "COUNT");
	long rate = parse(argv[2], 1, 10000000, "RATE");
	long port = parse(argv[3], 1, 65535, "PORT");
	long subnet = parse(argv[4], 1, 254, "SUBNET");
	long hosts = argc >= 6 ? parse(argv[5], 1, 256L * 254L, "HOSTS") : 256L * 254L;

	struct sockaddr_in addr;
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)port);

	long made = 0, errors = 0;
	double start = now();
	while (made < count) {
		long due = (long)((now() - start) * rate) + 1;
		if (due > count)
			due = count;
		for (; made < due; made++) {
			/* 127.SUBNET.y.z with z in 1..254: loopback only, many distinct destinations (or
			 * 10.SUBNET.y.z inside the bench's own namespace). */
			unsigned long host = (unsigned long)made % (unsigned long)hosts;
			unsigned long y = host / 254, z = host % 254 + 1;
			addr.sin_addr.s_addr = htonl((first_octet << 24) | ((unsigned long)subnet << 16) | (y << 8) | z);
			if (udp) {
				/* an ICMP port unreachable may come back; an unconnected socket ignores it */
				if (sendto(ufd, "x", 1, 0, (struct sockaddr *)&addr, sizeof addr) != 1 &&
				    errno != EAGAIN && errno != ECONNREFUSED)
					errors++;
				continue;
			}
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
			if (fd < 0) {
				errors++;
				continue;
			}
			if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0 && errno != EINPROGRESS &&
			    errno != ECONNREFUSED && errno != EAGAIN)
				errors++;
			close(fd);
		}
		if (made < count) {
			struct timespec pause = {0, 1000000}; /* 1 ms between slices */
			nanosleep(&pause, NULL);
		}
	}
	double elapsed = now() - start;
	printf("attempted %ld errors %ld seconds %.6f rate %.1f\n", made, errors, elapsed,
	       elapsed > 0 ? made / elapsed : 0.0);
	return 0;
}
