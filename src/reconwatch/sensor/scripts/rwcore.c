// SPDX-License-Identifier: Apache-2.0
/*
 * Loader of reconwatch's own eBPF collector: loads rwcore.bpf.o (argv[1]) with libbpf, attaches
 * its programs, and every 0.1 s drains the ring buffer into stdout in connections.bt's line
 * format (see there and reconwatch.sensor.bpf), so the sensor parses both tracers alike:
 * attempts (with outcomes when they came within connect()) as `@b0` entries, IPv4 probes and
 * answers as `@w0`/`@q0` entries, the rest as X, Y, O, A, U, W lines; `R ready` once attached,
 * `P` after each drain, `F` each second, `Lost N events` when the ring buffer was full.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define PATH_BYTES 200

/* as rwcore.bpf.c writes them */
enum { K_ATTEMPT = 1, K_OUTCOME, K_BOTH, K_ACCEPT, K_PROBE, K_ANSWER, K_UDP, K_EXEC };

struct ev {
	unsigned char kind, family, state, proto;
	unsigned short sport, dport;
	unsigned int pid, uid, tid, err;
	unsigned short sfam, stype;
	unsigned char detail, answer, pad[2];
	unsigned int key;
	unsigned long long ts, took;
	unsigned int saddr[4], daddr[4];
	unsigned char comm[16];
};

struct exec_ev {
	unsigned char kind, cut;
	unsigned short alen;
	unsigned int pid, ppid, uid;
	unsigned long long ts, total;
	unsigned char file[PATH_BYTES + 8];
	unsigned char args[PATH_BYTES];
};

struct counters {
	unsigned long long folded, ufolded, dropped, rawlast, filter_gen;
};

#define NSEC 1000000000ULL
/* rwcore.bpf.c's answer filter: 2^FILTER_LOG bits per bitmap; the older one is emptied and made
 * the one written every filter_seconds (argv[2], the sensor's --answer-seconds: 1-3600, default
 * 30), so a probe's answer is matched for one to two such periods */
#define FILTER_LOG 20
static unsigned long long filter_seconds = 30;

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static int on_libbpf(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, args);
}

/* bpftrace's %rx: every byte as \xNN */
static void put_rx(const unsigned char *b, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char out[4 * PATH_BYTES];
	for (size_t i = 0; i < n; i++) {
		out[4 * i] = '\\';
		out[4 * i + 1] = 'x';
		out[4 * i + 2] = hex[b[i] >> 4];
		out[4 * i + 3] = hex[b[i] & 15];
	}
	fwrite(out, 1, 4 * n, stdout);
}

/* bpftrace's %r of a comm: printable bytes raw (a backslash escaped too, so it decodes back),
 * others \xNN, up to the first NUL */
static void put_r(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n && b[i]; i++) {
		if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\\')
			putchar(b[i]);
		else
			printf("\\x%02x", b[i]);
	}
}

static const char *ntop(int family, const unsigned int *words, char *buf)
{
	return inet_ntop(family == 10 ? AF_INET6 : AF_INET, words, buf, INET6_ADDRSTRLEN);
}

static void print_exec(const struct exec_ev *e)
{
	unsigned char file[PATH_BYTES];
	memcpy(file, e->file, PATH_BYTES);
	if (!e->cut) { /* zero-padded after its end, as bpftrace's buf() of a shorter string */
		size_t end = strnlen((const char *)file, PATH_BYTES);
		memset(file + end, 0, PATH_BYTES - end);
	}
	printf("X\t%llu\t%u\t%u\t%u\t", e->ts, e->pid, e->ppid, e->uid);
	put_rx(file, PATH_BYTES);
	printf("\nY\t%u\t%llu\t", e->pid, e->total);
	put_rx(e->args, e->alen > PATH_BYTES ? PATH_BYTES : e->alen);
	putchar('\n');
}

static void print_attempt(const struct ev *r)
{
	printf("@b0[%llu, %u]: (%u, %u, %u, %u, %u, %u, %u, %u, %u, %u, %u, %u, %u, %u, %u, %llu, ",
	       r->ts, r->tid, r->pid, r->uid, r->family, r->saddr[0], r->saddr[1], r->saddr[2],
	       r->saddr[3], r->sport, r->daddr[0], r->daddr[1], r->daddr[2], r->daddr[3], r->dport,
	       r->kind == K_BOTH ? r->state : 0, r->kind == K_BOTH ? r->err : 0,
	       r->kind == K_BOTH ? r->took : 0);
	put_r(r->comm, sizeof(r->comm));
	fputs(")\n", stdout);
}

/* Attempts are held until the end of each drain, so an outcome read in the same drain joins its
 * attempt's entry (one entry for both, as connections.bt's batched maps do) instead of being an
 * `O` line of its own: half the lines for a scan of silent addresses, closed at once. */
#define HELD_MAX 65536
#define SLOTS (2 * HELD_MAX)
static struct ev held[HELD_MAX];
static unsigned int held_n;
static int slot_of[SLOTS]; /* index + 1 into held, 0 when free */
static unsigned int used[HELD_MAX];

static unsigned int slot_hash(const struct ev *r)
{
	unsigned long long h = r->pid * 0x9E3779B97F4A7C15ULL;
	h ^= ((unsigned long long)r->sport << 16 | r->dport) * 0xC2B2AE3D27D4EB4FULL;
	for (int i = 0; i < 4; i++)
		h = (h ^ r->daddr[i]) * 0x100000001B3ULL;
	return (unsigned int)(h >> 20) % SLOTS;
}

static int same_socket(const struct ev *a, const struct ev *b)
{
	return a->pid == b->pid && a->family == b->family && a->sport == b->sport &&
	       a->dport == b->dport && !memcmp(a->daddr, b->daddr, sizeof(a->daddr)) &&
	       !memcmp(a->saddr, b->saddr, sizeof(a->saddr));
}

static void flush_held(void)
{
	for (unsigned int i = 0; i < held_n; i++)
		print_attempt(&held[i]);
	for (unsigned int i = 0; i < held_n; i++)
		slot_of[used[i]] = 0;
	held_n = 0;
}

static void hold(const struct ev *r)
{
	if (held_n == HELD_MAX)
		flush_held();
	unsigned int slot = slot_hash(r);
	while (slot_of[slot])
		slot = (slot + 1) % SLOTS;
	held[held_n] = *r;
	slot_of[slot] = (int)held_n + 1;
	used[held_n++] = slot;
}

/* An outcome whose attempt (with its source port) is held: joined to it. */
static int joined(const struct ev *r)
{
	if (!r->sport)
		return 0;
	for (unsigned int slot = slot_hash(r); slot_of[slot]; slot = (slot + 1) % SLOTS) {
		struct ev *a = &held[slot_of[slot] - 1];
		if (a->kind == K_ATTEMPT && same_socket(a, r) && a->ts + r->took == r->ts) {
			a->kind = K_BOTH;
			a->state = r->state;
			a->err = r->err;
			a->took = r->took;
			return 1;
		}
	}
	return 0;
}

/* The IPv4 probes waiting for an answer, direct-mapped (connections.bt's @rawsent): slot = a hash
 * of the key the answer will carry, the stored key checked on an answer. A probe whose slot an
 * older one holds takes it (the older probe's answer is then not matched; the probe itself was
 * written), a slot older than the filter keeps a probe counts as free. 2^20 slots, 32 MiB of
 * this process's memory, touched only as probes come. */
#define WAIT_LOG 20
struct waiting {
	unsigned int dst;
	unsigned short key, sport;
	unsigned char proto, pad;
	unsigned short kind;
	unsigned int pid, uid;
	unsigned long long ts;
};
static struct waiting waiting[1 << WAIT_LOG];

static unsigned int wait_slot(unsigned int proto, unsigned int dst, unsigned int key,
			      unsigned int sport)
{
	unsigned long long h = dst * 0x9E3779B97F4A7C15ULL;
	h ^= ((unsigned long long)key << 16 | sport) * 0xC2B2AE3D27D4EB4FULL;
	h ^= proto * 0x165667B19E3779F9ULL;
	h ^= h >> 29;
	return (unsigned int)(h * 0xBF58476D1CE4E5B9ULL >> (64 - WAIT_LOG));
}

static int live(const struct waiting *w, unsigned long long now)
{
	return w->ts && now - w->ts <= 2 * filter_seconds * NSEC;
}

/* A probe whose answer can be told (a TCP SYN, a UDP datagram, an ICMP echo request), as the
 * kernel side sets its filter bit. */
static void remember(const struct ev *r)
{
	int waits = (r->proto == IPPROTO_TCP && (r->detail & 0x17) == 2) || r->proto == IPPROTO_UDP ||
		    (r->proto == IPPROTO_ICMP && r->detail == 8);
	if (r->family != 4 || !waits)
		return;
	struct waiting *w = &waiting[wait_slot(r->proto, r->daddr[0], r->key, r->sport)];
	/* the same probe again (a retransmission) keeps the first one's time */
	if (live(w, r->ts) && w->dst == r->daddr[0] && w->key == r->key && w->sport == r->sport &&
	    w->proto == r->proto)
		return;
	*w = (struct waiting){ r->daddr[0], (unsigned short)r->key, r->sport, r->proto, 0,
			       (unsigned short)(r->sfam << 8 | r->stype), r->pid, r->uid, r->ts };
}

/* An answer the filter let through: printed with its probe's process and time, once. */
static void answered(const struct ev *r)
{
	struct waiting *w = &waiting[wait_slot(r->proto, r->daddr[0], r->key, r->sport)];
	if (!live(w, r->ts) || w->ts > r->ts || w->dst != r->daddr[0] || w->key != r->key ||
	    w->sport != r->sport || w->proto != r->proto)
		return;
	printf("@q0[%llu, %u]: (%u, %u, %u, %u, %u, %llu, %u, %u)\n", r->ts, w->pid, w->uid,
	       r->daddr[0], r->proto, r->key, r->answer, r->ts - w->ts, w->kind >> 8, w->kind & 255);
	w->ts = 0;
}

static int handle(void *ctx, void *data, size_t len)
{
	(void)ctx;
	const struct ev *r = data;
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
	int v = r->family == 10 ? 6 : 4;
	if (r->kind == K_EXEC) {
		if (len >= sizeof(struct exec_ev))
			print_exec(data);
		return 0;
	}
	if (len < sizeof(struct ev))
		return 0;
	switch (r->kind) {
	case K_ATTEMPT:
		hold(r);
		break;
	case K_BOTH:
		print_attempt(r);
		break;
	case K_OUTCOME:
		if (joined(r))
			break;
		printf("O\t%llu\t%u\t%u\t%d\t%s\t%u\t%s\t%u\t%u\t%u\t%llu\n", r->ts, r->pid, r->uid, v,
		       ntop(r->family, r->saddr, s), r->sport, ntop(r->family, r->daddr, d), r->dport,
		       r->state, r->err, r->took);
		break;
	case K_ACCEPT:
	case K_UDP:
		printf("%c\t%llu\t%u\t%u\t%d\t%s\t%u\t", r->kind == K_ACCEPT ? 'A' : 'U', r->ts, r->pid,
		       r->uid, v, ntop(r->family, r->daddr, d), r->dport);
		put_rx(r->comm, sizeof(r->comm));
		putchar('\n');
		break;
	case K_PROBE:
		remember(r);
		if (r->family == 4) {
			printf("@w0[%llu, %u]: (%u, %u, %u, %u, %u, %u, %u, %u, %u, 0, 0, 0, ", r->ts,
			       r->tid, r->pid, r->uid, r->sfam, r->stype, r->daddr[0], r->proto, r->dport,
			       r->detail, r->key);
			put_r(r->comm, sizeof(r->comm));
			fputs(")\n", stdout);
		} else {
			printf("W\t%llu\t%u\t%u\t6\t%u\t%u\t%s\t%u\t%u\t%u\t", r->ts, r->pid, r->uid,
			       r->sfam, r->stype, ntop(10, r->daddr, d), r->proto, r->dport, r->detail);
			put_rx(r->comm, sizeof(r->comm));
			putchar('\n');
		}
		break;
	case K_ANSWER:
		answered(r);
		break;
	}
	return 0;
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* A global-data map's value, shared with the programs; NULL if it is not `size` bytes or more. */
static void *map_memory(struct bpf_map *map, size_t size)
{
	if (!map || bpf_map__value_size(map) < size) {
		errno = EINVAL;
		return NULL;
	}
	long page = sysconf(_SC_PAGESIZE);
	size_t length = (bpf_map__value_size(map) + page - 1) / page * page;
	void *at = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(map), 0);
	return at == MAP_FAILED ? NULL : at;
}

int main(int argc, char **argv)
{
	if (argc != 2 && argc != 3) {
		fprintf(stderr, "ERROR: usage: %s OBJECT [ANSWER_SECONDS]\n", argv[0]);
		return 2;
	}
	if (argc == 3) {
		char *end;
		unsigned long long n = strtoull(argv[2], &end, 10);
		if (*argv[2] < '0' || *argv[2] > '9' || *end || n < 1 || n > 3600) {
			fprintf(stderr, "ERROR: ANSWER_SECONDS must be 1-3600, not %s\n", argv[2]);
			return 2;
		}
		filter_seconds = n;
	}
	libbpf_set_print(on_libbpf);
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || bpf_object__load(obj)) {
		fprintf(stderr, "ERROR: loading the eBPF collector failed: %s\n", strerror(errno));
		return 1;
	}
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, obj) {
		if (!bpf_program__attach(prog)) {
			fprintf(stderr, "ERROR: attaching %s failed: %s\n", bpf_program__name(prog),
				strerror(errno));
			return 1;
		}
	}
	struct bpf_map *bss = bpf_object__find_map_by_name(obj, ".bss");
	if (!bss || bpf_map__value_size(bss) < sizeof(struct counters)) {
		fprintf(stderr, "ERROR: the collector has no counters\n");
		return 1;
	}
	unsigned char *value = calloc(1, bpf_map__value_size(bss));
	struct counters *counts = (struct counters *)value;
	/* the answer filter is emptied, and the bitmap written chosen, through mappings of the
	 * global-data maps (libbpf creates them mmap()able) */
	struct bpf_map *filter_map = bpf_object__find_map_by_name(obj, ".bss.filter");
	volatile struct counters *live_counts = map_memory(bss, sizeof(struct counters));
	unsigned char *filter = map_memory(filter_map, 2 << (FILTER_LOG - 3));
	if (!live_counts || !filter) {
		fprintf(stderr, "ERROR: the collector's answer filter cannot be mapped: %s\n",
			strerror(errno));
		return 1;
	}
	struct ring_buffer *rb =
		ring_buffer__new(bpf_map__fd(bpf_object__find_map_by_name(obj, "events")), handle, NULL, NULL);
	if (!rb) {
		fprintf(stderr, "ERROR: opening the ring buffer failed: %s\n", strerror(errno));
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_DFL);
	static char out[1 << 16];
	setvbuf(stdout, out, _IOFBF, sizeof(out));
	puts("R\tready");
	fflush(stdout);
	unsigned long long lost = 0;
	double next_fold = now_s() + 1, next_flip = now_s() + filter_seconds;
	for (;;) {
		int last = stopping;
		usleep(100000);
		ring_buffer__consume(rb);
		flush_held();
		int zero = 0;
		bpf_map__lookup_elem(bss, &zero, sizeof(zero), value, bpf_map__value_size(bss), 0);
		if (counts->dropped > lost) {
			printf("Lost %llu events\n", counts->dropped - lost);
			lost = counts->dropped;
		}
		if (now_s() >= next_flip) {
			/* the older bitmap: emptied, then written (a program that read the old choice
			 * just before writes the other one, which stays read for a period more) */
			unsigned long long older = (live_counts->filter_gen + 1) & 1;
			memset(filter + older * (1 << (FILTER_LOG - 3)), 0, 1 << (FILTER_LOG - 3));
			__atomic_store_n(&live_counts->filter_gen, older, __ATOMIC_RELEASE);
			next_flip += filter_seconds;
		}
		if (now_s() >= next_fold || last) {
			printf("F\t%llu\t%llu\t0\n", counts->folded, counts->ufolded);
			next_fold += 1;
		}
		puts("P\t");
		if (fflush(stdout) || last)
			break;
	}
	ring_buffer__free(rb);
	bpf_object__close(obj);
	return 0;
}
