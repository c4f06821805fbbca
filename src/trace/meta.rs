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
