// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* msen's flow context: which network flow each CPU (softirq, packet path)
 * and each thread (process context, last socket operation) is serving, a
 * flow table with per-flow counters, and a program on every sampling event
 * that writes the sample's flow tag into the sampled CPU's ring right
 * before the sample itself (an exact join, no matching by time).
 *
 * Every tracepoint program exists twice, as tp_btf and as raw_tp; the
 * loader keeps the tp_btf ones and falls back to raw_tp where the kernel
 * refuses BTF tracepoints. Reads go through BPF_CORE_READ, which serves both.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "flow.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define MSEN_AF_INET 2
#define MSEN_AF_INET6 10
#define MSEN_ETH_P_IP 0x0800
#define MSEN_ETH_P_IPV6 0x86DD
#define MSEN_PROTO_TCP 6
#define MSEN_PROTO_UDP 17
#define MSEN_NET_TX_SOFTIRQ 2
#define MSEN_NET_RX_SOFTIRQ 3
#define MSEN_TCP_ESTABLISHED 1
#define MSEN_TCP_SYN_SENT 2
#define MSEN_TCP_SYN_RECV 3
/* A packet state older than this is stale (its exit was not seen). */
#define MSEN_PACKET_MAX_AGE_NS 2000000ULL

/* Settings written by msen before load. */
const volatile __u64 multiplex_window_ns = 50000000ULL;
/* Never read: it puts struct msen_flow_tag into the skeleton's types, so
 * msen decodes tags with the generated struct. */
const volatile struct msen_flow_tag tag_layout __attribute__((used)) = {};

/* Per-CPU flow counters: no atomics and no cache line shared between the
 * CPUs that handle one flow's packets and its socket calls; msen sums the
 * CPUs when it reads the table. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct msen_flow_stats);
} flows SEC(".maps");

/* Flow id -> key, written once per flow: what the in-kernel filters match. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct msen_flow_key);
} flow_keys SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct msen_thread_flow);
} threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct msen_cpu_flow);
} cpu_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MSEN_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct msen_iface_key);
	__type(value, struct msen_iface_stats);
} ifaces SEC(".maps");

/* The target filters (slot 0). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct msen_targets);
} targets SEC(".maps");

/* The budget (slot 0), and each CPU's bucket. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct msen_budget);
} budget SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct msen_bucket);
} buckets SEC(".maps");

/* One BPF-output perf event per CPU, each redirected into that CPU's
 * sampling ring (PERF_EVENT_IOC_SET_OUTPUT). */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} tags SEC(".maps");

static __always_inline void bump(__u32 i)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &i);
	if (v)
		(*v)++;
}

/* FNV-1a over the key's words; never 0 (0 means "no flow"). */
static __always_inline __u64 hash_key(const struct msen_flow_key *k)
{
	const __u32 *w = (const __u32 *)k;
	__u64 h = 0xcbf29ce484222325ULL;
#pragma unroll
	for (int i = 0; i < (int)(sizeof(*k) / 4); i++) {
		h ^= w[i];
		h *= 0x100000001b3ULL;
	}
	return h ? h : 1;
}

/* Read a field: directly in tp_btf programs (their arguments are BTF
 * pointers the verifier lets us walk, CO-RE relocated through vmlinux.h),
 * with bpf_probe_read_kernel in raw_tp programs. `btf` is a constant in
 * every caller, so each program keeps one of the two paths. */
#define RD(btf, direct, ...) ((btf) ? (direct) : BPF_CORE_READ(__VA_ARGS__))

static __always_inline int sock_key(struct sock *sk, struct msen_flow_key *k, const int btf)
{
	__builtin_memset(k, 0, sizeof(*k));
	__u16 family = RD(btf, sk->__sk_common.skc_family, sk, __sk_common.skc_family);
	k->family = family;
	k->proto = RD(btf, sk->sk_protocol, sk, sk_protocol);
	k->lport = RD(btf, sk->__sk_common.skc_num, sk, __sk_common.skc_num);
	k->rport = bpf_ntohs(RD(btf, sk->__sk_common.skc_dport, sk, __sk_common.skc_dport));
	k->netns = RD(btf, sk->__sk_common.skc_net.net->ns.inum, sk, __sk_common.skc_net.net, ns.inum);
	if (family == MSEN_AF_INET) {
		__u32 l = RD(btf, sk->__sk_common.skc_rcv_saddr, sk, __sk_common.skc_rcv_saddr);
		__u32 r = RD(btf, sk->__sk_common.skc_daddr, sk, __sk_common.skc_daddr);
		__builtin_memcpy(k->laddr, &l, 4);
		__builtin_memcpy(k->raddr, &r, 4);
	} else if (family == MSEN_AF_INET6) {
		BPF_CORE_READ_INTO(&k->laddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&k->raddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		return -1;
	}
	if (k->proto != MSEN_PROTO_TCP && k->proto != MSEN_PROTO_UDP)
		return -1;
	return 0;
}

/* The flow of a packet, from the receiving (rx) or sending host's side. */
static __always_inline int skb_key(struct sk_buff *skb, struct msen_flow_key *k, int rx, const int btf)
{
	__builtin_memset(k, 0, sizeof(*k));
	unsigned char *head = RD(btf, skb->head, skb, head);
	__u16 nh = RD(btf, skb->network_header, skb, network_header);
	__u16 proto = bpf_ntohs(RD(btf, skb->protocol, skb, protocol));
	__u32 l4off;
	__u8 l4;
	k->netns = RD(btf, skb->dev->nd_net.net->ns.inum, skb, dev, nd_net.net, ns.inum);
	if (proto == MSEN_ETH_P_IP) {
		struct iphdr ip;
		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
			return -1;
		l4 = ip.protocol;
		l4off = nh + ip.ihl * 4;
		k->family = MSEN_AF_INET;
		__builtin_memcpy(k->laddr, rx ? &ip.daddr : &ip.saddr, 4);
		__builtin_memcpy(k->raddr, rx ? &ip.saddr : &ip.daddr, 4);
	} else if (proto == MSEN_ETH_P_IPV6) {
		struct ipv6hdr ip6;
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh))
			return -1;
		l4 = ip6.nexthdr;
		l4off = nh + sizeof(ip6);
		k->family = MSEN_AF_INET6;
		__builtin_memcpy(k->laddr, rx ? &ip6.daddr : &ip6.saddr, 16);
		__builtin_memcpy(k->raddr, rx ? &ip6.saddr : &ip6.daddr, 16);
	} else {
		return -1;
	}
	if (l4 != MSEN_PROTO_TCP && l4 != MSEN_PROTO_UDP)
		return -1;
	__u16 ports[2];
	if (bpf_probe_read_kernel(ports, sizeof(ports), head + l4off))
		return -1;
	__u16 sport = bpf_ntohs(ports[0]), dport = bpf_ntohs(ports[1]);
	k->lport = rx ? dport : sport;
	k->rport = rx ? sport : dport;
	k->proto = l4;
	return 0;
}

static __always_inline struct msen_iface_stats *iface_entry(__u32 netns, __u32 ifindex)
{
	if (!ifindex)
		return 0;
	struct msen_iface_key k = { .netns = netns, .ifindex = ifindex };
	struct msen_iface_stats *v = bpf_map_lookup_elem(&ifaces, &k);
	if (v)
		return v;
	struct msen_iface_stats n = {};
	bpf_map_update_elem(&ifaces, &k, &n, BPF_NOEXIST);
	return bpf_map_lookup_elem(&ifaces, &k);
}

static __always_inline struct msen_flow_stats *flow_entry(const struct msen_flow_key *k, __u64 id, __u64 now)
{
	struct msen_flow_stats *st = bpf_map_lookup_elem(&flows, &id);
	if (st)
		return st;
	struct msen_flow_stats n = {};
	n.key = *k;
	n.first_ns = now;
	bpf_map_update_elem(&flows, &id, &n, BPF_NOEXIST);
	bpf_map_update_elem(&flow_keys, &id, k, BPF_NOEXIST);
	return bpf_map_lookup_elem(&flows, &id);
}

/* last_ns at 1 ms granularity: fewer writes to a line other CPUs update too. */
static __always_inline void touch(struct msen_flow_stats *st, __u64 now)
{
	if (now - st->last_ns > 1000000ULL)
		st->last_ns = now;
}

static __always_inline void on_sock_io(struct sock *sk, int ret, int rx, const int btf)
{
	if (ret <= 0)
		return;
	struct msen_flow_key k;
	if (sock_key(sk, &k, btf))
		return;
	__u64 id = hash_key(&k), now = bpf_ktime_get_ns();
	struct msen_flow_stats *st = flow_entry(&k, id, now);
	if (st) {
		touch(st, now);
		if (rx)
			st->rx_bytes += ret;
		else
			st->tx_bytes += ret;
		/* The smoothed RTT, read here rather than at tcp:tcp_probe (which
		 * fires for every segment), at most every 10 ms. */
		if (k.proto == MSEN_PROTO_TCP && now - st->srtt_time_ns > 10000000ULL) {
			/* A probe read: the verifier types sk as struct sock only. */
			struct tcp_sock *tp = (struct tcp_sock *)sk;
			st->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
			st->srtt_time_ns = now;
			struct msen_iface_stats *is = iface_entry(k.netns, st->ifindex);
			if (is && st->srtt_us) {
				is->srtt_sum_us += st->srtt_us;
				is->srtt_reads++;
			}
		}
	}
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct msen_thread_flow *t = bpf_map_lookup_elem(&threads, &tid);
	if (t) {
		if (t->flow_id != id) {
			t->prev_flow_id = t->flow_id;
			t->prev_time_ns = t->time_ns;
			t->flow_id = id;
		}
		t->time_ns = now;
	} else {
		struct msen_thread_flow n = { .flow_id = id, .time_ns = now };
		bpf_map_update_elem(&threads, &tid, &n, BPF_ANY);
	}
	bump(MSEN_STAT_SOCK_EVENTS);
}

static __always_inline void on_packet(struct sk_buff *skb, int rx, const int btf)
{
	struct msen_flow_key k;
	/* A packet being sent still knows its socket: its key costs a few
	 * field loads instead of reading the headers. */
	struct sock *sk = rx ? 0 : RD(btf, skb->sk, skb, sk);
	if (sk && btf) {
		if (sock_key(sk, &k, btf) && skb_key(skb, &k, rx, btf))
			return;
	} else if (skb_key(skb, &k, rx, btf)) {
		return;
	}
	__u64 id = hash_key(&k), now = bpf_ktime_get_ns();
	__u32 ifindex = RD(btf, skb->dev->ifindex, skb, dev, ifindex);
	struct msen_flow_stats *st = flow_entry(&k, id, now);
	if (st) {
		touch(st, now);
		if (st->ifindex != ifindex)
			st->ifindex = ifindex;
		if (rx)
			st->rx_packets++;
		else
			st->tx_packets++;
	}
	struct msen_iface_stats *is = iface_entry(k.netns, ifindex);
	if (is) {
		__u32 len = RD(btf, skb->len, skb, len);
		if (rx) {
			is->rx_packets++;
			is->rx_bytes += len;
		} else {
			is->tx_packets++;
			is->tx_bytes += len;
		}
	}
	__u32 zero = 0;
	struct msen_cpu_flow *c = bpf_map_lookup_elem(&cpu_flows, &zero);
	if (c) {
		c->flow_id = id;
		c->time_ns = now;
		c->ifindex = ifindex;
		c->active = MSEN_TAG_PACKET;
		c->flags = rx ? MSEN_TAG_RX : 0;
	}
	bump(MSEN_STAT_PACKETS);
}

static __always_inline void packet_done(void)
{
	__u32 zero = 0;
	struct msen_cpu_flow *c = bpf_map_lookup_elem(&cpu_flows, &zero);
	if (c)
		c->active = 0;
}

static __always_inline void on_state(struct sock *sk, int oldstate, int newstate, const int btf)
{
	struct msen_flow_key k;
	if (sock_key(sk, &k, btf))
		return;
	__u64 id = hash_key(&k), now = bpf_ktime_get_ns();
	struct msen_flow_stats *st = flow_entry(&k, id, now);
	if (!st)
		return;
	st->last_ns = now;
	st->state_changes++;
	st->last_state = newstate;
	if (newstate == MSEN_TCP_ESTABLISHED && oldstate == MSEN_TCP_SYN_SENT)
		st->direction = MSEN_DIR_CLIENT;
	else if (newstate == MSEN_TCP_ESTABLISHED && oldstate == MSEN_TCP_SYN_RECV)
		st->direction = MSEN_DIR_SERVER;
}

static __always_inline void on_retransmit(struct sock *sk, const int btf)
{
	struct msen_flow_key k;
	if (sock_key(sk, &k, btf))
		return;
	__u64 id = hash_key(&k);
	struct msen_flow_stats *st = flow_entry(&k, id, bpf_ktime_get_ns());
	if (!st)
		return;
	st->retransmits++;
	/* The flow's interface, learned from its packets; before any, the
	 * socket's route. */
	__u32 ifindex = st->ifindex;
	if (!ifindex)
		ifindex = BPF_CORE_READ(sk, sk_dst_cache, dev, ifindex);
	struct msen_iface_stats *is = iface_entry(k.netns, ifindex);
	if (is)
		is->retransmits++;
}

/* BTF tracepoints. */
SEC("tp_btf/sock_recv_length")
int BPF_PROG(btf_sock_recv, struct sock *sk, int ret, int flags) { on_sock_io(sk, ret, 1, 1); return 0; }
SEC("tp_btf/sock_send_length")
int BPF_PROG(btf_sock_send, struct sock *sk, int ret, int flags) { on_sock_io(sk, ret, 0, 1); return 0; }
SEC("tp_btf/netif_receive_skb")
int BPF_PROG(btf_netif_receive_skb, struct sk_buff *skb) { on_packet(skb, 1, 1); return 0; }
SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(btf_net_dev_start_xmit, struct sk_buff *skb, struct net_device *dev) { on_packet(skb, 0, 1); return 0; }
SEC("tp_btf/net_dev_xmit")
int BPF_PROG(btf_net_dev_xmit, struct sk_buff *skb, int rc) { packet_done(); return 0; }
SEC("tp_btf/softirq_exit")
int BPF_PROG(btf_softirq_exit, unsigned int vec)
{
	if (vec == MSEN_NET_RX_SOFTIRQ || vec == MSEN_NET_TX_SOFTIRQ)
		packet_done();
	return 0;
}
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(btf_inet_sock_set_state, struct sock *sk, int oldstate, int newstate) { on_state(sk, oldstate, newstate, 1); return 0; }
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(btf_tcp_retransmit_skb, struct sock *sk, struct sk_buff *skb) { on_retransmit(sk, 1); return 0; }

/* The same, as raw tracepoints. */
SEC("raw_tp/sock_recv_length")
int BPF_PROG(raw_sock_recv, struct sock *sk, int ret, int flags) { on_sock_io(sk, ret, 1, 0); return 0; }
SEC("raw_tp/sock_send_length")
int BPF_PROG(raw_sock_send, struct sock *sk, int ret, int flags) { on_sock_io(sk, ret, 0, 0); return 0; }
SEC("raw_tp/netif_receive_skb")
int BPF_PROG(raw_netif_receive_skb, struct sk_buff *skb) { on_packet(skb, 1, 0); return 0; }
SEC("raw_tp/net_dev_start_xmit")
int BPF_PROG(raw_net_dev_start_xmit, struct sk_buff *skb, struct net_device *dev) { on_packet(skb, 0, 0); return 0; }
SEC("raw_tp/net_dev_xmit")
int BPF_PROG(raw_net_dev_xmit, struct sk_buff *skb, int rc) { packet_done(); return 0; }
SEC("raw_tp/softirq_exit")
int BPF_PROG(raw_softirq_exit, unsigned int vec)
{
	if (vec == MSEN_NET_RX_SOFTIRQ || vec == MSEN_NET_TX_SOFTIRQ)
		packet_done();
	return 0;
}
SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(raw_inet_sock_set_state, struct sock *sk, int oldstate, int newstate) { on_state(sk, oldstate, newstate, 0); return 0; }
SEC("raw_tp/tcp_retransmit_skb")
int BPF_PROG(raw_tcp_retransmit_skb, struct sock *sk, struct sk_buff *skb) { on_retransmit(sk, 0); return 0; }

static __always_inline int prefix_match(const __u8 *a, const __u8 *p, __u32 bits)
{
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (bits == 0)
			return 1;
		__u8 m = bits >= 8 ? 0xff : (__u8)(0xff << (8 - bits));
		if ((a[i] ^ p[i]) & m)
			return 0;
		bits = bits >= 8 ? bits - 8 : 0;
	}
	return 1;
}

static __always_inline int filter_match(const struct msen_targets *tg, const struct msen_flow_key *k)
{
#pragma unroll
	for (int i = 0; i < MSEN_MAX_FILTERS; i++) {
		if (i >= tg->nr_filters)
			break;
		const struct msen_flow_filter *f = &tg->filters[i];
		if (f->family != k->family)
			continue;
		int port = f->port;
		if (port && port != k->lport && port != k->rport)
			continue;
		if (prefix_match(k->laddr, f->addr, f->prefix_len) || prefix_match(k->raddr, f->addr, f->prefix_len))
			return 1;
	}
	return 0;
}

#define MSEN_NS_PER_SEC 1000000000ULL

/* The token bucket of this CPU: 1 keeps the sample, 0 drops it (counted by
 * reason). Refills at most one second's worth per sample, which also keeps
 * the multiplication below 2^64 for any rate up to 10^9. */
static __always_inline int within_budget(__u64 now)
{
	__u32 zero = 0;
	struct msen_budget *b = bpf_map_lookup_elem(&budget, &zero);
	if (!b || (!b->rate && !b->hard_drop_ns))
		return 1;
	struct msen_bucket *k = bpf_map_lookup_elem(&buckets, &zero);
	if (!k)
		return 1;
	if (b->hard_drop_ns && k->last_sample_ns && now - k->last_sample_ns < b->hard_drop_ns) {
		bump(MSEN_STAT_DROP_GAP);
		return 0;
	}
	if (b->rate) {
		__u64 dt = now - k->last_ns;
		if (dt > MSEN_NS_PER_SEC)
			dt = MSEN_NS_PER_SEC;
		__u64 cap = (b->burst ? b->burst : 1) * MSEN_NS_PER_SEC;
		__u64 tokens = k->tokens + dt * b->rate;
		if (tokens > cap)
			tokens = cap;
		k->last_ns = now;
		if (tokens < MSEN_NS_PER_SEC) {
			k->tokens = tokens;
			bump(MSEN_STAT_DROP_BUDGET);
			return 0;
		}
		k->tokens = tokens - MSEN_NS_PER_SEC;
	}
	k->last_sample_ns = now;
	return 1;
}

/* Attached to every sampling event: runs in the overflow handler right
 * before the kernel writes the sample, so the tag lands just ahead of it in
 * the same ring. Returning 0 drops the sample (filters, then the budget:
 * filtered samples spend no tokens). */
SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 pid = pid_tgid >> 32, tid = (__u32)pid_tgid;
	__u32 zero0 = 0;
	struct msen_targets *tg = bpf_map_lookup_elem(&targets, &zero0);
	if (tg && tg->nr_pids) {
		int ok = 0;
#pragma unroll
		for (int i = 0; i < MSEN_MAX_PIDS; i++) {
			if (i < tg->nr_pids && tg->pids[i] == pid)
				ok = 1;
		}
		if (!ok) {
			bump(MSEN_STAT_DROP_PID);
			return 0;
		}
	}
	struct msen_flow_tag tag = { .magic = MSEN_TAG_MAGIC };
	__u32 zero = 0;
	struct msen_cpu_flow *c = bpf_map_lookup_elem(&cpu_flows, &zero);
	if (c && c->active && now - c->time_ns < MSEN_PACKET_MAX_AGE_NS) {
		tag.kind = MSEN_TAG_PACKET;
		tag.flow_id = c->flow_id;
		tag.age_ns = now - c->time_ns;
		tag.flags = c->flags;
		tag.ifindex = c->ifindex;
	} else {
		struct msen_thread_flow *t = bpf_map_lookup_elem(&threads, &tid);
		if (t && t->flow_id) {
			tag.kind = MSEN_TAG_SOCKET;
			tag.flow_id = t->flow_id;
			tag.age_ns = now - t->time_ns;
			if (t->prev_flow_id && t->prev_flow_id != t->flow_id && t->time_ns - t->prev_time_ns < multiplex_window_ns)
				tag.flags |= MSEN_TAG_MULTIPLEXED;
		}
	}
	if (tg && tg->nr_filters) {
		struct msen_flow_key *fk = tag.flow_id ? bpf_map_lookup_elem(&flow_keys, &tag.flow_id) : 0;
		if (!fk || !filter_match(tg, fk)) {
			bump(MSEN_STAT_DROP_FLOW);
			return 0;
		}
	}
	if (!within_budget(now))
		return 0;
	if (bpf_perf_event_output(ctx, &tags, BPF_F_CURRENT_CPU, &tag, sizeof(tag)))
		bump(MSEN_STAT_OUTPUT_ERR);
	else
		bump(MSEN_STAT_TAGS);
	return 1;
}
