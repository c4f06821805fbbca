//! Trace metadata: what a trace must carry so that it reads the same on
//! another machine. Stored as JSON in METADATA and CAPTURE_END blocks; every
//! field has a default so older and newer minors read each other's metadata
//! (unknown fields are ignored, missing ones default).

use crate::perf::attr::{Endian, EventAttr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metadata {
    /// Version of msen that wrote the trace.
    pub msen_version: String,
    /// The capture's identity (a UUID): made at record time, derived from
    /// the content at import (one perf.data imported twice is one capture).
    /// Exports key every row by it, so a re-run adds nothing twice. Empty in
    /// traces from before 0.1 minors that had it: see `capture_id_of`.
    pub capture_id: String,
    pub hostname: String,
    pub kernel_release: String,
    pub arch: String,
    pub cpu_vendor: String,
    pub cpu_model: String,
    /// Cache-line size in bytes of the recording machine.
    pub cache_line_size: u32,
    pub page_size: u32,
    pub nr_cpus: u32,
    pub online_cpus: Vec<u32>,
    /// CPU -> NUMA node of the recording machine.
    pub cpu_nodes: Vec<CpuNode>,
    /// Physical memory ranges -> NUMA node.
    pub memory_nodes: Vec<MemoryRange>,
    pub events: Vec<EventDesc>,
    /// msen's own command line.
    pub command_line: Vec<String>,
    /// The workload command when msen started one.
    pub workload: Vec<String>,
    /// "monotonic" when the events use CLOCK_MONOTONIC (use_clockid), "perf" otherwise.
    pub clock: String,
    /// Wall clock (ns since the epoch) and the event clock at capture start.
    pub start_unix_ns: u64,
    pub start_clock_ns: u64,
    /// PMUs the recording kernel registered (/sys/bus/event_source/devices).
    pub pmus: Vec<String>,
    /// True when no hardware PMU event could be opened and software events
    /// were recorded instead; analyses that need PMU data say so.
    pub software_only: bool,
    /// Why the capture fell back to software events, in plain words.
    pub fallback_reason: Option<String>,
    /// True for traces written by a generator rather than a capture.
    pub synthetic: bool,
    /// What was recorded: "all CPUs", "pid 1234", "command".
    pub target: String,
    /// Byte order of the perf records: "little" (every msen capture) or
    /// "big" (imported from a big-endian perf.data). Empty means little.
    pub byte_order: String,
    /// Where the trace came from when it was converted (e.g. "perf.data").
    pub source_format: Option<String>,
    /// Flow context: whether samples carry flow tags, and how they were made.
    pub flows: FlowCapture,
    /// The kernel's text (`_text` .. `_etext`) of the recording machine, for
    /// the kernel mapping of a perf.data export; zero when unknown.
    pub kernel_text_start: u64,
    pub kernel_text_end: u64,
}

/// How a capture tagged samples with network flows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowCapture {
    pub enabled: bool,
    /// Why flow context is off, when it is.
    pub reason: Option<String>,
    /// The event whose samples are flow tags (a BPF-output event per CPU).
    pub tag_event: Option<String>,
    /// Each hook and how it attached ("sock:sock_recv_length: tp_btf"), or why not.
    pub hooks: Vec<String>,
    /// In-kernel filters (`--flow-filter`), as given.
    pub filters: Vec<String>,
    /// Pids the in-kernel filter keeps (empty: all).
    pub pids: Vec<u32>,
}

/// One flow the hooks saw: 5-tuple, namespace, and its counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowInfo {
    pub id: u64,
    /// "tcp" or "udp".
    pub proto: String,
    /// 4 or 6.
    pub family: u8,
    pub local: String,
    pub local_port: u16,
    pub remote: String,
    pub remote_port: u16,
    /// Network namespace inode.
    pub netns: u32,
    pub ifindex: u32,
    /// "client" (this host connected), "server" (it accepted) or "".
    pub direction: String,
    pub first_ns: u64,
    pub last_ns: u64,
    /// Payload bytes read and written through sockets.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Packets received and sent on devices.
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub retransmits: u64,
    pub state_changes: u64,
    /// Smoothed RTT (tcp:tcp_probe), microseconds; 0 when never seen.
    pub srtt_us: u32,
}

impl FlowInfo {
    /// A stable text form: `tcp 10.0.0.1:7001 <- 10.0.0.2:40312` (a server
    /// side: the arrow points at this host), `->` for a client, `<>` unknown.
    pub fn text(&self) -> String {
        let arrow = match self.direction.as_str() {
            "server" => "<-",
            "client" => "->",
            _ => "<>",
        };
        format!("{} {} {arrow} {}", self.proto, self.local_text(), self.remote_text())
    }
    pub fn local_text(&self) -> String {
        endpoint(&self.local, self.local_port, self.family)
    }
    pub fn remote_text(&self) -> String {
        endpoint(&self.remote, self.remote_port, self.family)
    }
}

fn endpoint(addr: &str, port: u16, family: u8) -> String {
    if family == 6 {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// The FLOWS block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowTable {
    /// Sorted by id.
    pub flows: Vec<FlowInfo>,
    /// In-kernel counters: tags written, samples dropped by filter, ...
    pub counters: std::collections::BTreeMap<String, u64>,
    /// The same counters per CPU (index = CPU number).
    pub per_cpu: std::collections::BTreeMap<String, Vec<u64>>,
}

/// The sampling budget the kernel program applies per CPU (a token bucket).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Budget {
    /// Samples per second per CPU; 0 is unlimited.
    pub rate: u64,
    /// Bucket size in samples (the most kept in a burst).
    pub burst: u64,
    /// Minimum time between two kept samples on one CPU; 0 is none.
    pub hard_drop_ns: u64,
}

/// The agent's modes (MicroSentinel's): which budget is in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Always-on, low budget.
    #[default]
    Sentinel,
    /// While something is wrong: a high budget.
    Diagnostic,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Sentinel => "sentinel",
            Mode::Diagnostic => "diagnostic",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "sentinel" => Some(Mode::Sentinel),
            "diagnostic" => Some(Mode::Diagnostic),
            _ => None,
        }
    }
}

/// One second of host context (a HOST block holds several, in time order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostSample {
    /// CLOCK_MONOTONIC at the reading, the samples' clock.
    pub time: u64,
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
    /// Runnable tasks (/proc/loadavg).
    pub running: u64,
    /// Per CPU, percent busy over the interval (not idle or iowait).
    pub cpu_busy_pct: Vec<f64>,
    /// /proc/softirqs, summed over CPUs, per second.
    pub softirqs_per_sec: std::collections::BTreeMap<String, u64>,
    pub mem_total_kb: u64,
    pub mem_available_kb: u64,
    pub net: Vec<HostNetDev>,
    pub tcp: HostTcp,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostNetDev {
    pub name: String,
    pub rx_bytes_per_sec: u64,
    pub tx_bytes_per_sec: u64,
    /// Over the interval.
    pub rx_drops: u64,
    pub tx_drops: u64,
}

/// TCP counters: /proc/net/snmp and /proc/net/sockstat (this namespace).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostTcp {
    pub established: u64,
    pub inuse: u64,
    pub orphan: u64,
    pub time_wait: u64,
    pub retrans_segs_per_sec: u64,
    pub out_segs_per_sec: u64,
}

/// An AGENT block: one thing the always-on agent did during the capture,
/// written when it happened (a killed capture keeps every one before).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentEvent {
    /// CLOCK_MONOTONIC, the samples' clock.
    pub time: u64,
    /// "mode" (a budget put in force: at the start and at each switch),
    /// "targets" (the in-kernel pid and flow filters replaced).
    pub kind: String,
    pub mode: Mode,
    /// What caused it: "start", "SIGUSR1", "control", "anomaly: ...", "hold expired".
    pub cause: String,
    pub budget: Budget,
    /// kind "targets": the filters now in force (`pids 12,34; flows 10.0.0.0/8:443`).
    pub detail: String,
    /// kind "period": the software clock event (cpu-clock, task-clock)
    /// whose rate changed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub event: String,
    /// kind "period": that event's period in ns from `time` on. After
    /// PERF_EVENT_IOC_PERIOD the kernel fires hrtimer events at the new
    /// period but goes on writing the first one into their samples
    /// (last_period is set only at open), so analyses take it from here.
    #[serde(skip_serializing_if = "is_zero")]
    pub period: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A fresh capture id (a random UUID), for a new recording.
pub fn new_capture_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A capture id derived from content (a version-8 UUID over its XXH3-128):
/// the same bytes give the same id on every machine and every run.
pub fn content_capture_id(bytes: &[u8]) -> String {
    capture_id_from_hash(xxhash_rust::xxh3::xxh3_128(bytes))
}

/// The capture id of content whose XXH3-128 is `h` (for content hashed in pieces).
pub fn capture_id_from_hash(h: u128) -> String {
    uuid::Builder::from_custom_bytes(h.to_be_bytes()).into_uuid().to_string()
}

/// Wall-clock Unix ns of an event-clock time, through the start times a
/// capture records (the time itself when it recorded none, as imported
/// perf.data without a clock map).
pub fn wall_clock_ns(start_unix_ns: u64, start_clock_ns: u64, t: u64) -> u64 {
    if start_unix_ns == 0 {
        return t;
    }
    start_unix_ns.saturating_add(t.saturating_sub(start_clock_ns))
}

impl Metadata {
    pub fn endian(&self) -> Endian {
        if self.byte_order == "big" {
            Endian::Big
        } else {
            Endian::Little
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuNode {
    pub cpu: u32,
    pub node: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryRange {
    pub start: u64,
    pub end: u64,
    pub node: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventDesc {
    pub name: String,
    pub attr: EventAttr,
    /// Kernel ids of this event's fds (PERF_SAMPLE_IDENTIFIER values).
    pub ids: Vec<u64>,
}

/// Written at a clean stop. A trace without it was cut short.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaptureEnd {
    pub end_unix_ns: u64,
    pub end_clock_ns: u64,
    /// Records the kernel reported as lost (PERF_RECORD_LOST), summed.
    pub lost_records: u64,
    /// Build-ids of the ELF files the sampled processes had mapped.
    pub build_ids: Vec<BuildId>,
    /// Samples the recorder wrote.
    pub samples: u64,
    /// Why the capture stopped: "duration", "signal", "workload exited".
    pub stop_reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BuildId {
    pub path: String,
    /// Lower-case hex.
    pub build_id: String,
}
