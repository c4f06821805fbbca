/* Structs shared by flow.bpf.c and msen's Rust side (which uses the
 * skeleton's generated copies of them, never a hand-written mirror).
 *
 * A flow is a 5-tuple plus network namespace. Its id is a hash of the key,
 * the same for every sample, tag and table entry of that flow.
 */
#ifndef MSEN_FLOW_H
#define MSEN_FLOW_H

#define MSEN_TAG_MAGIC 0x4d534e46u /* "MSNF" */

/* flow_tag.kind */
#define MSEN_TAG_NONE 0    /* no flow known for this sample */
#define MSEN_TAG_SOCKET 1  /* process context: the thread's last socket op */
#define MSEN_TAG_PACKET 2  /* network path: the packet the CPU is handling */

/* flow_tag.flags */
#define MSEN_TAG_MULTIPLEXED 1 /* the thread served several flows lately */
#define MSEN_TAG_RX 2          /* packet kind: receive path (else transmit) */

#define MSEN_MAX_FILTERS 8
#define MSEN_MAX_PIDS 16

/* flow_stats.direction */
#define MSEN_DIR_UNKNOWN 0
#define MSEN_DIR_CLIENT 1 /* this host opened the connection */
#define MSEN_DIR_SERVER 2 /* this host accepted it */

/* stats[] indices (per CPU counters) */
#define MSEN_STAT_TAGS 0
#define MSEN_STAT_DROP_FLOW 1
#define MSEN_STAT_DROP_PID 2
#define MSEN_STAT_OUTPUT_ERR 3
#define MSEN_STAT_SOCK_EVENTS 4
#define MSEN_STAT_PACKETS 5
#define MSEN_STAT_DROP_BUDGET 6 /* over the token bucket's budget */
#define MSEN_STAT_DROP_GAP 7    /* closer than hard_drop_ns to the last kept sample */
#define MSEN_STAT_MAX 8

struct msen_flow_key {
	__u8 laddr[16]; /* local address (IPv4 in the first 4 bytes) */
	__u8 raddr[16]; /* remote address */
	__u32 netns;    /* network namespace inode */
	__u16 lport;    /* host byte order */
	__u16 rport;
	__u8 proto;     /* IPPROTO_TCP, IPPROTO_UDP */
	__u8 family;    /* AF_INET, AF_INET6 */
	__u8 pad[2];
};

struct msen_flow_stats {
	struct msen_flow_key key;
	__u64 first_ns; /* CLOCK_MONOTONIC, as the samples */
	__u64 last_ns;
	__u64 rx_bytes;
	__u64 tx_bytes;
	__u64 rx_packets;
	__u64 tx_packets;
	__u64 retransmits;
	__u64 state_changes;
	__u32 srtt_us;
	__u32 ifindex;
	__u32 direction;
	__u32 last_state;
	__u64 srtt_time_ns; /* when srtt_us was last read */
};

/* Written into the sampled CPU's ring right before its sample. */
struct msen_flow_tag {
	__u32 magic;
	__u32 kind;
	__u64 flow_id;
	__u64 age_ns; /* since the socket operation or packet */
	__u32 flags;
	__u32 ifindex;
};

/* A CIDR[:PORT] filter: a sample is kept when its flow's local or remote
 * address is inside the prefix (and the port, when not 0, matches). */
struct msen_flow_filter {
	__u8 addr[16];
	__u32 prefix_len;
	__u16 port;
	__u8 family;
	__u8 pad;
};

struct msen_thread_flow {
	__u64 flow_id;
	__u64 time_ns;
	__u64 prev_flow_id;
	__u64 prev_time_ns;
};

struct msen_cpu_flow {
	__u64 flow_id;
	__u64 time_ns;
	__u32 ifindex;
	__u32 active; /* 0, or MSEN_TAG_PACKET while a packet is handled */
	__u32 flags;
	__u32 pad;
};

/* The sampling budget, written by msen at start and at every mode switch
 * (one ARRAY slot; a torn read between fields only mixes two valid budgets
 * for one sample). rate 0 is unlimited; hard_drop_ns 0 is no minimum gap. */
struct msen_budget {
	__u64 rate;         /* samples per second per CPU */
	__u64 burst;        /* bucket size in samples */
	__u64 hard_drop_ns; /* minimum gap between two kept samples on one CPU */
};

/* A CPU's token bucket. tokens counts nano-samples (samples x 1e9), so the
 * refill is one multiplication and no division runs in the program. */
struct msen_bucket {
	__u64 tokens;
	__u64 last_ns;        /* last refill */
	__u64 last_sample_ns; /* last kept sample */
};

/* Per-interface traffic counters (per CPU), for the anomaly triggers of
 * --mode auto: retransmits, throughput and RTT per interface. */
struct msen_iface_key {
	__u32 netns;
	__u32 ifindex;
};

struct msen_iface_stats {
	__u64 rx_bytes;
	__u64 tx_bytes;
	__u64 rx_packets;
	__u64 tx_packets;
	__u64 retransmits;
	__u64 srtt_sum_us; /* smoothed RTTs read at socket I/O (at most every 10 ms per flow) */
	__u64 srtt_reads;
};

/* The in-kernel target filters (--pid-filter, --flow-filter, POST
 * /api/v1/targets): one ARRAY slot, replaced whole by msen. A sample is
 * kept when its pid is listed (or no pid is) and its flow matches a filter
 * (or there is none). */
struct msen_targets {
	__u32 nr_pids;
	__u32 pids[MSEN_MAX_PIDS];
	__u32 nr_filters;
	struct msen_flow_filter filters[MSEN_MAX_FILTERS];
};

#endif
