// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only
/*
 * reconwatch's own eBPF collector (the "core" tracer): the events connections.bt records, from
 * BTF tracepoints (tp_btf) written into one ring buffer that rwcore.c drains every 0.1 s and
 * prints in connections.bt's line format, so reconwatch.sensor.bpf parses both the same way.
 *
 * Why not bpftrace: every connections.bt probe on a syscall tracepoint puts every task of the
 * host on the slow syscall path, and bpftrace wakes its reader per printf; here the hot paths
 * (a TCP attempt and its outcome, a raw or packet socket's packet, its answer) run on network
 * tracepoints only, and the ring buffer is written without wakeups. One program stays on
 * sys_exit (raw syscall tracepoint, first test: the syscall number) for what only a syscall's
 * return shows: a nonblocking connect()'s source port, connect() failures before SYN_SENT,
 * accept()'s peer, UDP destinations, and raw sends whose packet never reached a device (an
 * unresolved on-link neighbour holds it).
 *
 * Dual-licensed: the kernel admits the GPL-only helpers (probe reads) for GPL-compatible
 * programs only.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL"; /* the GPL side of the dual licence above */

#define AF_INET 2
#define AF_INET6 10
#define AF_PACKET 17
#define IPPROTO_ICMPV6 58
#define NR_CONNECT 42
#define O_NONBLOCK 04000
#define NR_ACCEPT 43
#define NR_SENDTO 44
#define NR_SENDMSG 46
#define NR_ACCEPT4 288
#define NR_WRITE 1
#define NR_WRITEV 20
#define NR_SENDMMSG 307
#define NSEC 1000000000ULL
#define PATH_BYTES 200 /* what connections.bt reads (its BPFTRACE_STRLEN) */

/* Record kinds (the first byte of every record). */
enum { K_ATTEMPT = 1, K_OUTCOME, K_BOTH, K_ACCEPT, K_PROBE, K_ANSWER, K_UDP, K_EXEC };

struct ev {
	__u8 kind, family, state, proto; /* family: AF_INET/AF_INET6; a probe's: 4 or 6 */
	__u16 sport, dport;
	__u32 pid, uid, tid, err;
	__u16 sfam, stype;
	__u8 detail, answer, pad[2];
	__u32 key;
	__u64 ts, took;
	__u32 saddr[4], daddr[4];
	char comm[16];
};

struct exec_ev {
	__u8 kind, cut;
	__u16 alen;
	__u32 pid, ppid, uid;
	__u64 ts, total;
	char file[PATH_BYTES + 8];
	char args[PATH_BYTES];
};

/* A socket in SYN_SENT: whose attempt it is, whether the attempt was written yet (held: a
 * nonblocking connect() writes it at its return, with the source port) and an outcome that came
 * in another context before that return. */
struct syn_val {
	__u64 ts, took;
	__u32 pid, uid, tid, err;
	__u8 written, state, blocking, pad[5];
	char comm[16];
};
struct recent_key { __u32 pid; __u16 dport, family; __u32 daddr[4]; };
struct serr_val { __u64 ts; __u16 family, sport, dport, pad; __u32 err; };
/* A probe waiting for its answer: the key its answer is looked up by (protocol, destination, port
 * or echo id, source port) and what the answer's record needs; ts 0: an empty slot. */
struct last_both { __u64 sk; __u32 tid; };

/* 32 MiB: ~300,000 records queued while the sensor is busy (a raw sender flat out) */
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 32 << 20); } events SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 65536);
	__type(key, __u64); __type(value, struct syn_val);
} syn SEC(".maps");
/* first attempt (UDP send) of a process to a destination and port in each second: the value is
 * the second it was last written in */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 65536);
	__type(key, struct recent_key); __type(value, __u64);
} recent SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 65536);
	__type(key, struct recent_key); __type(value, __u64);
} urecent SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 1);
	__type(key, __u32); __type(value, struct serr_val);
} serr SEC(".maps");
/* the thread whose raw/packet send the device layer saw last on this CPU (see sys_exit) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 1);
	__type(key, __u32); __type(value, __u64);
} queued SEC(".maps");
/* the thread, fd and file sending_on() last proved (see there) */
struct sender { __u64 pid_tgid; long fd; const struct file *file; };
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 1);
	__type(key, __u32); __type(value, struct sender);
} senders SEC(".maps");
/* the socket whose attempt and outcome were last written together inside connect() */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 1);
	__type(key, __u32); __type(value, struct last_both);
} both SEC(".maps");
/* Which probes wait for an answer (connections.bt's @rawsent), as a filter: a bit per hash of
 * (protocol, destination, port or echo id, source port) in one of two 128 KiB bitmaps. The probe
 * itself, with its process and time, goes to the loader in its record; the loader keeps the
 * probes waiting and matches the answers this filter lets through (K_ANSWER records), so the
 * sender's path writes one bit in a bitmap its cache holds instead of a slot in a table of every
 * waiting probe: a 32 MiB table's cache miss was ~0.15 us of ~0.6 us per raw packet. A false
 * positive only costs a record the loader drops. The loader empties the older bitmap every
 * --answer-seconds period (30 s by default) and makes it the one written (counts.filter_gen), so
 * a probe stays in the filter for one to two such periods. The bit is set without an atomic (no
 * BPF v3 atomics are assumed): two CPUs setting bits of one byte at the same instant can lose
 * one, and with it one answer. */
#define FILTER_LOG 20
__u8 answer_filter[2][1 << (FILTER_LOG - 3)] SEC(".bss.filter");

static __always_inline __u32 answer_hash(__u32 proto, __u32 dst, __u32 key, __u32 sport)
{
	__u32 h = dst * 0x9E3779B1u;
	h ^= ((key << 16) | sport) * 0x85EBCA77u;
	h ^= proto * 0xC2B2AE3Du;
	h ^= h >> 15;
	h *= 0x2C1B3C6Du;
	h ^= h >> 13;
	return h >> (32 - FILTER_LOG);
}

/* One global, so its layout is the loader's struct counters: repeats folded, ring buffer full,
 * the last probe's time (0: none yet), the bitmap of answer_filter written now (the loader's). */
struct counters { __u64 folded, ufolded, dropped, rawlast, filter_gen; } counts;

/* The current task's comm by two direct loads instead of a helper call: the kernel keeps it
 * NUL-padded (set with strscpy_pad), so the bytes are bpf_get_current_comm()'s. */
static __always_inline void current_comm(char *out)
{
	struct task_struct *t = bpf_get_current_task_btf();
	__builtin_memcpy(out, t->comm, 16);
}

/* The current task's uid (the real one, as bpf_get_current_uid_gid() gives it) by direct loads:
 * a kuid is the id as the initial user namespace sees it, which is what the helper maps it to. */
static __always_inline __u32 current_uid(void)
{
	struct task_struct *t = bpf_get_current_task_btf();
	return t->cred->uid.val;
}

static __always_inline struct ev *reserve(void)
{
	struct ev *r = bpf_ringbuf_reserve(&events, sizeof(struct ev), 0);
	if (!r) {
		__sync_fetch_and_add(&counts.dropped, 1);
		return 0;
	}
	__builtin_memset(r, 0, sizeof(*r));
	return r;
}

static __always_inline void sock_addrs(struct ev *r, const struct sock *sk)
{
	if (r->family == AF_INET6) {
		BPF_CORE_READ_INTO(&r->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32);
		BPF_CORE_READ_INTO(&r->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32);
	} else {
		r->saddr[0] = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		r->daddr[0] = BPF_CORE_READ(sk, __sk_common.skc_daddr);
	}
}

/* The source port as the packets carry it: a closing socket's skc_num is already 0 when its state
 * change fires (the port went back to the table), inet_sport still holds it. */
static __always_inline __u16 source_port(const struct sock *sk)
{
	return bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
}

/* An attempt (state 0) or an attempt with its outcome, with the socket's addresses and ports. */
static __always_inline void write_attempt(const struct sock *sk, const struct syn_val *sv,
					  __u8 kind, __u8 state, __u32 err, __u64 took)
{
	struct ev *r = reserve();
	if (!r)
		return;
	r->kind = kind;
	r->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	r->ts = sv->ts;
	r->took = took;
	r->pid = sv->pid;
	r->uid = sv->uid;
	r->tid = sv->tid;
	r->state = state;
	r->err = err;
	r->sport = source_port(sk);
	r->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	sock_addrs(r, sk);
	__builtin_memcpy(r->comm, sv->comm, sizeof(r->comm));
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct exec_ev *e = bpf_ringbuf_reserve(&events, sizeof(struct exec_ev), 0);
	if (!e) {
		__sync_fetch_and_add(&counts.dropped, 1);
		return 0;
	}
	e->kind = K_EXEC;
	e->ts = bpf_ktime_get_ns();
	e->pid = BPF_CORE_READ(p, tgid);
	e->ppid = BPF_CORE_READ(p, real_parent, tgid);
	e->uid = current_uid();
	/* one byte more than is printed: a path that fills it was cut */
	long n = bpf_probe_read_kernel_str(e->file, PATH_BYTES + 1, BPF_CORE_READ(bprm, filename));
	e->cut = n > PATH_BYTES;
	if (n < 0)
		e->file[0] = 0;
	/* the new image's argv, on its own stack (just copied there, so present) */
	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	__u64 start = BPF_CORE_READ(mm, arg_start), end = BPF_CORE_READ(mm, arg_end);
	__u64 total = end > start ? end - start : 0;
	__u32 len = total > PATH_BYTES ? PATH_BYTES : (__u32)total;
	e->total = total;
	e->alen = len;
	if (len && bpf_probe_read_user(e->args, len, (const void *)start))
		__builtin_memset(e->args, 0, sizeof(e->args));
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}

/* The error a TCP socket reports (see connections.bt: a process on another CPU may clear sk_err
 * before the state change reads it); per CPU, checked against time, family and ports. */
SEC("tp_btf/inet_sk_error_report")
int BPF_PROG(on_error_report, const struct sock *sk)
{
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	__u32 z = 0;
	struct serr_val *v = bpf_map_lookup_elem(&serr, &z);
	if (!v)
		return 0;
	v->ts = bpf_ktime_get_ns();
	v->family = sk->__sk_common.skc_family;
	v->sport = source_port(sk);
	v->dport = bpf_ntohs(sk->__sk_common.skc_dport);
	v->err = sk->sk_err;
	return 0;
}

/* 0: not inside connect(); 1: a nonblocking one; 2: a blocking one */
static __always_inline int inside_connect(const struct sock *sk)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	if (!regs || BPF_CORE_READ(regs, orig_ax) != NR_CONNECT)
		return 0;
	return (BPF_CORE_READ(sk, sk_socket, file, f_flags) & O_NONBLOCK) ? 1 : 2;
}

static __always_inline int attempt(const struct sock *sk, __u64 now)
{
	__u64 pt = bpf_get_current_pid_tgid();
	__u16 family = sk->__sk_common.skc_family;
	struct recent_key rk = {
		.pid = pt >> 32, .dport = bpf_ntohs(sk->__sk_common.skc_dport), .family = family,
	};
	if (family == AF_INET6)
		BPF_CORE_READ_INTO(&rk.daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32);
	else
		rk.daddr[0] = sk->__sk_common.skc_daddr;
	__u64 second = now / NSEC;
	__u64 *seen = bpf_map_lookup_elem(&recent, &rk);
	if (seen && *seen == second) {
		__sync_fetch_and_add(&counts.folded, 1); /* a repeat in this second: counted, not written */
		return 0;
	}
	bpf_map_update_elem(&recent, &rk, &second, BPF_ANY);
	struct syn_val sv = { .ts = now, .pid = pt >> 32, .tid = (__u32)pt };
	sv.uid = current_uid();
	current_comm(sv.comm);
	__u64 key = (__u64)sk;
	/* Inside connect(), held until the source port is known (the kernel picks it after this):
	 * written with its outcome when that comes within the call (one record for both), or at
	 * the call's return; a blocking call may wait for minutes, so its attempt is also written
	 * when its SYN reaches the device. Otherwise (io_uring, TCP fast open's sendto()) written
	 * now, without a source port. */
	int call = inside_connect(sk);
	sv.written = call == 0;
	sv.blocking = call == 2;
	if (bpf_map_update_elem(&syn, &key, &sv, BPF_ANY)) {
		__sync_fetch_and_add(&counts.dropped, 1);
		return 0;
	}
	if (sv.written)
		write_attempt(sk, &sv, K_ATTEMPT, 0, 0, 0);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (sk->sk_protocol != IPPROTO_TCP || (newstate != TCP_SYN_SENT && oldstate != TCP_SYN_SENT))
		return 0;
	__u64 now = bpf_ktime_get_ns();
	if (newstate == TCP_SYN_SENT)
		return attempt(sk, now);
	__u64 key = (__u64)sk;
	struct syn_val *found = bpf_map_lookup_elem(&syn, &key);
	if (!found)
		return 0;
	struct syn_val sv = *found;
	bpf_map_delete_elem(&syn, &key);
	if (newstate != TCP_ESTABLISHED && newstate != TCP_CLOSE)
		return 0;
	__u32 err = sk->sk_err;
	__u16 family = sk->__sk_common.skc_family;
	if (!err && newstate == TCP_CLOSE) {
		__u32 z = 0;
		struct serr_val *e = bpf_map_lookup_elem(&serr, &z);
		if (e && e->ts && now - e->ts < 10000000ULL && e->family == family &&
		    e->sport == source_port(sk) &&
		    e->dport == bpf_ntohs(sk->__sk_common.skc_dport)) {
			err = e->err;
			e->ts = 0;
		}
	}
	__u64 took = now - sv.ts;
	if (sv.written) {
		struct ev *r = reserve();
		if (!r)
			return 0;
		r->kind = K_OUTCOME;
		r->family = family;
		r->ts = now;
		r->took = took;
		r->pid = sv.pid;
		r->uid = sv.uid;
		r->state = newstate;
		r->err = err;
		r->sport = source_port(sk);
		r->dport = bpf_ntohs(sk->__sk_common.skc_dport);
		sock_addrs(r, sk);
		bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
		return 0;
	}
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (tid == sv.tid) {
		/* within the connect() call (loopback answers in the caller's context): both now */
		write_attempt(sk, &sv, K_BOTH, newstate, err, took);
		__u32 z = 0;
		struct last_both *lb = bpf_map_lookup_elem(&both, &z);
		if (lb) {
			lb->sk = key;
			lb->tid = tid;
		}
		return 0;
	}
	/* another context, before the call returned: its return writes both */
	sv.state = newstate;
	sv.err = err;
	sv.took = took;
	bpf_map_update_elem(&syn, &key, &sv, BPF_ANY);
	return 0;
}

static __always_inline struct socket *fd_socket(struct task_struct *t, long fd)
{
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	if (fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	bpf_probe_read_kernel(&f, sizeof(f), fds + fd);
	if (!f)
		return 0;
	struct socket *s = BPF_CORE_READ(f, private_data);
	if (!s || BPF_CORE_READ(s, file) != f) /* not a socket's file */
		return 0;
	return s;
}

/* A sockaddr in user memory: family, port, address words; 0 if not IPv4/IPv6. */
static __always_inline int user_sockaddr(const void *sa, __u16 *family, __u16 *port, __u32 *addr)
{
	__u8 b[24] = {};
	if (!sa || bpf_probe_read_user(b, sizeof(b), sa))
		return 0;
	*family = b[0] | (b[1] << 8);
	*port = (b[2] << 8) | b[3];
	if (*family == AF_INET) {
		__builtin_memcpy(addr, b + 4, 4);
		return 1;
	}
	if (*family == AF_INET6) {
		__builtin_memcpy(addr, b + 8, 16);
		return 1;
	}
	return 0;
}

static __always_inline void udp_destination(const void *sa)
{
	struct recent_key rk = {};
	__u16 family = 0, port = 0;
	if (!user_sockaddr(sa, &family, &port, rk.daddr))
		return;
	__u64 pt = bpf_get_current_pid_tgid();
	__u64 now = bpf_ktime_get_ns(), second = now / NSEC;
	rk.pid = pt >> 32;
	rk.dport = port;
	rk.family = family;
	__u64 *seen = bpf_map_lookup_elem(&urecent, &rk);
	if (seen && *seen == second) {
		__sync_fetch_and_add(&counts.ufolded, 1);
		return;
	}
	bpf_map_update_elem(&urecent, &rk, &second, BPF_ANY);
	struct ev *r = reserve();
	if (!r)
		return;
	r->kind = K_UDP;
	r->family = family;
	r->ts = now;
	r->pid = pt >> 32;
	r->uid = current_uid();
	r->dport = port;
	__builtin_memcpy(r->daddr, rk.daddr, sizeof(r->daddr));
	current_comm(r->comm);
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
}

/* connect() returned: a held attempt is written with its source port (and the outcome another
 * context saw meanwhile); one that failed before SYN_SENT (no route ENETUNREACH, unreachable or
 * prohibit route EHOSTUNREACH/EACCES, a firewall EPERM: the socket never got a destination) is
 * written with its failure, the destination from the caller's sockaddr. */
static __always_inline void connect_returned(struct socket *sock, struct pt_regs *regs, long ret)
{
	struct sock *sk = BPF_CORE_READ(sock, sk);
	short type = BPF_CORE_READ(sock, type);
	if (type == SOCK_DGRAM) {
		if (BPF_CORE_READ(sk, sk_protocol) == IPPROTO_UDP)
			udp_destination((const void *)BPF_CORE_READ(regs, si));
		return;
	}
	if (type != SOCK_STREAM)
		return;
	__u64 key = (__u64)sk;
	__u32 z = 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	/* whether this call's attempt and outcome were written together already (the socket
	 * pointer alone could be a freed socket's, reused) */
	struct last_both *lb = bpf_map_lookup_elem(&both, &z);
	int written_both = lb && lb->sk == key && lb->tid == tid;
	if (lb && lb->tid == tid)
		lb->sk = 0;
	struct syn_val *found = bpf_map_lookup_elem(&syn, &key);
	if (found) {
		if (found->written)
			return;
		struct syn_val sv = *found;
		if (sv.state) {
			bpf_map_delete_elem(&syn, &key);
			write_attempt(sk, &sv, K_BOTH, sv.state, sv.err, sv.took);
		} else {
			found->written = 1;
			write_attempt(sk, &sv, K_ATTEMPT, 0, 0, 0);
		}
		return;
	}
	if (!(ret == -101 || ret == -113 || ret == -13 || ret == -1) || written_both ||
	    BPF_CORE_READ(sk, __sk_common.skc_dport) != 0)
		return;
	__u16 family = 0, port = 0;
	__u32 addr[4] = {};
	if (!user_sockaddr((const void *)BPF_CORE_READ(regs, si), &family, &port, addr))
		return;
	struct ev *r = reserve();
	if (!r)
		return;
	__u64 pt = bpf_get_current_pid_tgid();
	r->kind = K_BOTH;
	r->family = family;
	r->ts = bpf_ktime_get_ns();
	r->pid = pt >> 32;
	r->tid = (__u32)pt;
	r->uid = current_uid();
	r->dport = port;
	r->state = TCP_CLOSE;
	r->err = (__u32)-ret;
	__builtin_memcpy(r->daddr, addr, sizeof(addr));
	current_comm(r->comm);
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
}

static __always_inline void accepted(struct task_struct *t, long fd)
{
	struct socket *sock = fd_socket(t, fd);
	if (!sock)
		return;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	struct ev *r = reserve();
	if (!r)
		return;
	__u64 pt = bpf_get_current_pid_tgid();
	r->kind = K_ACCEPT;
	r->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	r->ts = bpf_ktime_get_ns();
	r->pid = pt >> 32;
	r->uid = current_uid();
	r->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	sock_addrs(r, sk);
	current_comm(r->comm);
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
}

struct parsed {
	__u8 ver, proto, detail, pad;
	__u16 port, sport, key, pad2;
	__u32 dst[4];
};

static __always_inline long rd(void *dst, __u32 n, const void *src, int user)
{
	return user ? bpf_probe_read_user(dst, n, src) : bpf_probe_read_kernel(dst, n, src);
}

/* The transport header's first 14 bytes, already read (see parse_l4). */
static __always_inline int parse_l4_bytes(struct parsed *o, const __u8 *b)
{
	o->port = (b[2] << 8) | b[3];
	o->sport = (b[0] << 8) | b[1];
	o->key = o->port;
	if (o->proto == IPPROTO_TCP) {
		o->detail = b[13];
		return 1;
	}
	if (o->proto == IPPROTO_UDP)
		return 1;
	if ((o->ver == 4 && o->proto == IPPROTO_ICMP) || (o->ver == 6 && o->proto == IPPROTO_ICMPV6)) {
		o->detail = b[0];
		o->port = 0;
		o->sport = 0;
		o->key = (b[4] << 8) | b[5];
		if (o->ver == 4)
			return o->detail == 8 || o->detail == 13 || o->detail == 15 || o->detail == 17;
		return o->detail == 128 || o->detail == 139;
	}
	return 0;
}

/* The transport header at l4: destination port (or 0 and the ICMP type), TCP flags, the key
 * its answer will carry (the port; the echo id for ICMP). 0 if not a probe connections.bt
 * prints (TCP, UDP, ICMP requests; ICMPv6 echo and node information queries). */
static __always_inline int parse_l4(struct parsed *o, const unsigned char *l4, int user)
{
	__u8 b[14];
	if (rd(b, sizeof(b), l4, user))
		return 0;
	return parse_l4_bytes(o, b);
}

/* From an IP header (IPv4 or IPv6, no extension headers). */
static __always_inline int parse_ip(struct parsed *o, const unsigned char *ip, int user)
{
	__u8 v;
	if (rd(&v, 1, ip, user))
		return 0;
	o->ver = v >> 4;
	if (o->ver == 4) {
		struct iphdr h;
		if (rd(&h, sizeof(h), ip, user))
			return 0;
		o->proto = h.protocol;
		o->dst[0] = h.daddr;
		return parse_l4(o, ip + h.ihl * 4, user);
	}
	if (o->ver == 6) {
		struct ipv6hdr h;
		if (rd(&h, sizeof(h), ip, user))
			return 0;
		o->proto = h.nexthdr;
		__builtin_memcpy(o->dst, &h.daddr, 16);
		return parse_l4(o, ip + 40, user);
	}
	return 0;
}

#define HDR_BYTES 56 /* an IPv6 header or an IPv4 one without options, and 14 transport bytes */

/* A packet in kernel memory: its IP and transport headers in one probe read (a helper call
 * each cost the device-layer program ~0.04 us per packet); IPv4 options or a read that fails (the
 * bytes after a short packet on an unmapped page) go the header-by-header way. */
static __always_inline int parse_ip_kernel(struct parsed *o, const unsigned char *ip)
{
	__u8 h[HDR_BYTES];
	if (bpf_probe_read_kernel(h, sizeof(h), ip))
		return parse_ip(o, ip, 0);
	o->ver = h[0] >> 4;
	if (o->ver == 4) {
		if ((h[0] & 15) != 5)
			return parse_ip(o, ip, 0);
		o->proto = h[9];
		__builtin_memcpy(o->dst, h + 16, 4);
		return parse_l4_bytes(o, h + 20);
	}
	if (o->ver == 6) {
		o->proto = h[6];
		__builtin_memcpy(o->dst, h + 24, 16);
		return parse_l4_bytes(o, h + 40);
	}
	return 0;
}

/* A probe: written, and (IPv4) remembered keyed as its answer will be. */
static __always_inline void probe(const struct parsed *o, __u16 sfam, __u16 stype)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 pt = bpf_get_current_pid_tgid();
	__u32 uid = current_uid();
	int waits = (o->proto == IPPROTO_TCP && (o->detail & 0x17) == 2) ||
		    o->proto == IPPROTO_UDP || (o->proto == IPPROTO_ICMP && o->detail == 8);
	__u16 sport = o->proto == IPPROTO_ICMP ? 0 : o->sport;
	if (o->ver == 4 && waits) {
		__u32 i = answer_hash(o->proto, o->dst[0], o->key, sport);
		__u8 *bits = &answer_filter[counts.filter_gen & 1][(i >> 3) & ((1 << (FILTER_LOG - 3)) - 1)];
		__u8 bit = 1 << (i & 7);
		if (!(*bits & bit))
			*bits |= bit;
		counts.rawlast = now;
	}
	struct ev *r = reserve();
	if (!r)
		return;
	r->kind = K_PROBE;
	r->family = o->ver;
	r->ts = now;
	r->pid = pt >> 32;
	r->uid = uid;
	r->tid = (__u32)pt;
	r->sfam = sfam;
	r->stype = stype;
	__builtin_memcpy(r->daddr, o->dst, sizeof(r->daddr));
	r->proto = o->proto;
	r->dport = o->port;
	r->sport = sport;
	r->detail = o->detail;
	r->key = o->key;
	current_comm(r->comm);
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
}

static __always_inline int probing_socket(__u16 stype, __u16 sfam, __u16 sproto)
{
	return stype == SOCK_RAW || sfam == AF_PACKET ||
	       (stype == SOCK_DGRAM && (sproto == IPPROTO_ICMP || sproto == IPPROTO_ICMPV6));
}

/* A held blocking attempt's SYN, sent by the connecting thread: written now, with its source
 * port. */
static __always_inline void syn_queued(const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct syn_val *found = bpf_map_lookup_elem(&syn, &key);
	if (!found || found->written || !found->blocking ||
	    found->tid != (__u32)bpf_get_current_pid_tgid())
		return;
	found->written = 1;
	struct syn_val sv = *found;
	write_attempt(sk, &sv, K_ATTEMPT, 0, 0, 0);
}

/* Whether the current task is the packet's sender: inside a send on this very socket (the device
 * layer also runs in softirqs, on whatever task they interrupted, e.g. for a packet an
 * unresolved neighbour held). */
static __always_inline int sending_on(const struct sock *sk)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(t);
	if (!regs)
		return 0;
	long nr = regs->orig_ax;
	if (nr != NR_SENDTO && nr != NR_SENDMSG && nr != NR_SENDMMSG && nr != NR_WRITE &&
	    nr != NR_WRITEV)
		return 0;
	/* the fd's file is the socket's own (what fd_socket and a comparison of the socket prove),
	 * by direct BTF loads (the verifier turns them into fault-safe loads, no helper call):
	 * only the fd array's slot needs a probe read (a variable index) */
	long fd = (long)regs->di;
	struct socket *sock = sk->sk_socket;
	if (!sock)
		return 0;
	struct file *mine = sock->file;
	if (!mine || fd < 0)
		return 0;
	/* a sender sends many packets: once its fd was found to hold this file, the same thread,
	 * fd and file again are taken as proven (per CPU, one entry); only a send on that fd after
	 * it was closed and the same file object reused for another process's socket could pass
	 * wrongly, and only for a packet released in a softirq that interrupted that send */
	__u64 me = bpf_get_current_pid_tgid();
	__u32 z = 0;
	struct sender *last = bpf_map_lookup_elem(&senders, &z);
	if (last && last->pid_tgid == me && last->fd == fd && last->file == mine)
		return 1;
	struct fdtable *fdt = t->files->fdt;
	if (fd >= fdt->max_fds)
		return 0;
	struct file *f = 0;
	bpf_probe_read_kernel(&f, sizeof(f), (void *)fdt->fd + fd * sizeof(f));
	if (f != mine)
		return 0;
	if (last) {
		last->pid_tgid = me;
		last->fd = fd;
		last->file = mine;
	}
	return 1;
}

/* A raw IP, packet or ICMP datagram socket's packet as the device layer queues it, in the
 * sender's own context: parsed from the packet. */
SEC("tp_btf/net_dev_queue")
int BPF_PROG(on_dev_queue, struct sk_buff *skb)
{
	struct sock *sk = skb->sk;
	if (!sk)
		return 0;
	if (sk->__sk_common.skc_state == TCP_SYN_SENT) {
		if (sk->sk_protocol == IPPROTO_TCP)
			syn_queued(sk);
		return 0;
	}
	__u16 stype = sk->sk_type, sfam = sk->__sk_common.skc_family, sproto = sk->sk_protocol;
	if (!probing_socket(stype, sfam, sproto) || !sending_on(sk))
		return 0;
	__u32 z = 0;
	__u64 *q = bpf_map_lookup_elem(&queued, &z);
	if (q)
		*q = bpf_get_current_pid_tgid();
	unsigned char *ip = skb->head + skb->network_header;
	if (sfam == AF_PACKET && stype == SOCK_RAW) {
		/* the frame as written: Ethernet, one VLAN tag skipped */
		unsigned char *d = skb->data;
		__u8 et[2] = {};
		bpf_probe_read_kernel(et, 2, d + 12);
		ip = d + 14;
		if (et[0] == 0x81 && et[1] == 0)
			ip = d + 18;
	}
	struct parsed o = {};
	if (parse_ip_kernel(&o, ip))
		probe(&o, sfam, stype);
	return 0;
}

/* A raw send's return when the device layer did not see its packet (held for an unresolved
 * on-link neighbour, or sent around the queue): parsed from the caller's buffer, as
 * connections.bt does. */
static __always_inline int raw_seen(void)
{
	__u32 z = 0;
	__u64 *q = bpf_map_lookup_elem(&queued, &z);
	if (!q || *q != bpf_get_current_pid_tgid())
		return 0;
	*q = 0;
	return 1;
}

static __always_inline void raw_returned(struct socket *sock, struct pt_regs *regs, long nr)
{
	struct sock *sk = BPF_CORE_READ(sock, sk);
	__u16 sfam = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 stype = BPF_CORE_READ(sock, type);
	const unsigned char *buf = (const void *)BPF_CORE_READ(regs, si);
	const void *addr = (const void *)BPF_CORE_READ(regs, r8);
	if (nr == NR_SENDMSG) {
		struct user_msghdr m;
		struct iovec iov;
		if (bpf_probe_read_user(&m, sizeof(m), buf) ||
		    bpf_probe_read_user(&iov, sizeof(iov), m.msg_iov))
			return;
		buf = iov.iov_base;
		addr = m.msg_name;
	}
	struct parsed o = {};
	int ok = 0;
	if (sfam == AF_PACKET) {
		const unsigned char *ip = buf;
		if (stype == SOCK_RAW) {
			__u8 et[2] = {};
			bpf_probe_read_user(et, 2, buf + 12);
			ip = buf + (et[0] == 0x81 && et[1] == 0 ? 18 : 14);
		}
		ok = parse_ip(&o, ip, 1);
	} else {
		struct inet_sock *inet = (struct inet_sock *)sk;
		int hdrincl = (BPF_CORE_READ(inet, inet_flags) >> INET_FLAGS_HDRINCL) & 1;
		if (hdrincl) {
			ok = parse_ip(&o, buf, 1);
		} else {
			o.ver = sfam == AF_INET6 ? 6 : 4;
			o.proto = BPF_CORE_READ(sk, sk_protocol);
			__u16 f = 0, p = 0;
			if (!user_sockaddr(addr, &f, &p, o.dst)) {
				if (o.ver == 4)
					o.dst[0] = BPF_CORE_READ(sk, __sk_common.skc_daddr);
				else
					BPF_CORE_READ_INTO(&o.dst, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32);
			}
			ok = parse_l4(&o, buf, 1);
		}
	}
	if (ok)
		probe(&o, sfam, stype);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(on_sys_exit, struct pt_regs *regs, long ret)
{
	long nr = regs->orig_ax;
	if (nr != NR_CONNECT && nr != NR_SENDTO && nr != NR_SENDMSG && nr != NR_ACCEPT &&
	    nr != NR_ACCEPT4)
		return 0;
	if ((nr == NR_SENDTO || nr == NR_SENDMSG) && raw_seen())
		return 0; /* a raw send the device layer saw: recorded there */
	struct task_struct *t = bpf_get_current_task_btf();
	if (nr == NR_ACCEPT || nr == NR_ACCEPT4) {
		if (ret >= 0)
			accepted(t, ret);
		return 0;
	}
	struct socket *sock = fd_socket(t, (long)regs->di);
	if (!sock)
		return 0;
	if (nr == NR_CONNECT) {
		connect_returned(sock, regs, ret);
		return 0;
	}
	struct sock *sk = BPF_CORE_READ(sock, sk);
	__u16 stype = BPF_CORE_READ(sock, type), sfam = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 sproto = BPF_CORE_READ(sk, sk_protocol);
	if (stype == SOCK_DGRAM && sproto == IPPROTO_UDP && sfam != AF_PACKET) {
		const void *addr = (const void *)regs->r8;
		if (nr == NR_SENDMSG) {
			struct user_msghdr m;
			if (bpf_probe_read_user(&m, sizeof(m), (const void *)regs->si))
				return 0;
			addr = m.msg_name;
		}
		udp_destination(addr);
		return 0;
	}
	if (ret > 0 && probing_socket(stype, sfam, sproto))
		raw_returned(sock, regs, nr);
	return 0;
}

/* The answer to a probe remembered above (IPv4), as this host receives it: skb->data is the IP
 * header here. ANSWER: 1 SYN-ACK, 2 RST, 3 ICMP port unreachable, 4 another ICMP destination
 * unreachable, 5 a UDP datagram or an echo reply. */
SEC("tp_btf/netif_receive_skb")
int BPF_PROG(on_receive, struct sk_buff *skb)
{
	if (!counts.rawlast || skb->protocol != bpf_htons(0x0800))
		return 0;
	unsigned char *ip = skb->data;
	/* the IP header and the transport header's first 14 bytes in one read when the header has
	 * no options (one helper call less per received packet) */
	struct {
		struct iphdr iph;
		__u8 b[14];
	} h;
	int whole = bpf_probe_read_kernel(&h, sizeof(h), ip) == 0;
	if (!whole && bpf_probe_read_kernel(&h.iph, sizeof(h.iph), ip))
		return 0;
	struct iphdr iph = h.iph;
	if (iph.version != 4)
		return 0;
	unsigned char *l4 = ip + iph.ihl * 4;
	__u8 b[14];
	if (whole && iph.ihl == 5)
		__builtin_memcpy(b, h.b, sizeof(b));
	else if (bpf_probe_read_kernel(b, sizeof(b), l4))
		return 0;
	__u32 proto = iph.protocol, from = iph.saddr;
	__u32 sp = (b[0] << 8) | b[1], dp = (b[2] << 8) | b[3];
	__u8 answer = 0;
	if (proto == IPPROTO_TCP) {
		if ((b[13] & 0x12) == 0x12)
			answer = 1;
		else if (b[13] & 4)
			answer = 2;
	} else if (proto == IPPROTO_UDP) {
		answer = 5;
	} else if (proto == IPPROTO_ICMP) {
		if (b[0] == 0) {
			answer = 5;
			sp = (b[4] << 8) | b[5];
			dp = 0;
		} else if (b[0] == 3) {
			struct iphdr in;
			if (bpf_probe_read_kernel(&in, sizeof(in), l4 + 8))
				return 0;
			__u8 ib[4];
			if (bpf_probe_read_kernel(ib, 4, l4 + 8 + in.ihl * 4))
				return 0;
			proto = in.protocol;
			from = in.daddr;
			dp = (ib[0] << 8) | ib[1];
			sp = (ib[2] << 8) | ib[3];
			answer = b[1] == 3 ? 3 : 4;
		}
	}
	if (!answer)
		return 0;
	/* the clock only for an answer: on loopback every probe sent is also received here */
	__u64 now = bpf_ktime_get_ns();
	if (now - counts.rawlast > 60 * NSEC) /* unanswered probes are given up after a minute */
		return 0;
	__u32 i = answer_hash(proto, from, sp, dp), at = (i >> 3) & ((1 << (FILTER_LOG - 3)) - 1);
	__u8 bit = 1 << (i & 7);
	if (!((answer_filter[0][at] | answer_filter[1][at]) & bit))
		return 0;
	struct ev *r = reserve();
	if (!r)
		return 0;
	r->kind = K_ANSWER; /* a candidate: the loader matches it with its probe */
	r->family = 4;
	r->ts = now;
	r->daddr[0] = from;
	r->proto = proto;
	r->key = sp;
	r->sport = dp;
	r->answer = answer;
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}
