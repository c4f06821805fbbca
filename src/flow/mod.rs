//! Flow context at record time: loads bpf/flow.bpf.c, attaches its hooks
//! (BTF tracepoints, raw tracepoints where those are refused), opens one
//! BPF-output perf event per CPU redirected into that CPU's sampling ring,
//! and attaches the tagging program to every sampling event.
//!
//! ```text
//!  sampling event overflow (NMI / hrtimer)
//!    -> on_sample (BPF, PERF_EVENT_IOC_SET_BPF): reads the CPU's packet
//!       state or the thread's last socket flow, applies the filters
//!    -> bpf_perf_event_output(BPF_F_CURRENT_CPU): the tag record goes into
//!       the BPF-output event of this CPU, whose output is this CPU's ring
//!    -> the kernel writes the sample record right after it, same ring
//!  ring:  ... [tag][sample] [tag][sample] ...   (the join is adjacency)
//! ```
//!
//! A BPF ring buffer is not used for tags: its reservation can fail in NMI
//! context, where hardware PMU samples are taken.

pub mod filter;

use crate::perf::attr::{flag, sample, EventAttr, ATTR_SIZE_VER7};
use crate::perf::sys;
use crate::trace::meta::{FlowCapture, FlowInfo, FlowTable};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::MapCore;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

pub use filter::FlowFilter;

#[allow(clippy::all, clippy::pedantic, missing_debug_implementations, unsafe_op_in_unsafe_fn, rust_2018_idioms)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/flow.skel.rs"));
}
pub use skel::types;

/// The name of the tag event in trace metadata.
pub const TAG_EVENT: &str = "msen:flow-tag";
/// `PERF_COUNT_SW_BPF_OUTPUT`.
const SW_BPF_OUTPUT: u64 = 10;

/// What the user asked of flow context.
#[derive(Debug, Clone, Default)]
pub struct FlowConfig {
    pub filters: Vec<FlowFilter>,
    pub pids: Vec<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("cannot load the flow BPF programs: {0}")]
    Load(String),
    #[error("cannot open the BPF-output event on cpu {cpu}: {err}")]
    Output { cpu: u32, err: std::io::Error },
    #[error("cannot attach the tagging program to a sampling event: {0}")]
    Attach(std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// Why flow context cannot run here, before trying to load anything.
pub fn precheck() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        return Some("not root (loading BPF programs needs root or CAP_BPF and CAP_PERFMON)".into());
    }
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Some("the kernel has no BTF (/sys/kernel/btf/vmlinux), which the CO-RE programs need".into());
    }
    None
}

/// A loaded flow session. The skeleton borrows its object storage, which
/// lives as long as the session (leaked once per capture; a capture runs once
/// per process).
pub struct FlowSession {
    skel: skel::FlowSkel<'static>,
    /// Attached tracepoint links (kept alive).
    _links: Vec<libbpf_rs::Link>,
    /// BPF-output events by CPU.
    outputs: Vec<(u32, OwnedFd)>,
    pub tag_attr: EventAttr,
    pub tag_ids: Vec<u64>,
    pub capture: FlowCapture,
}

impl std::fmt::Debug for FlowSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowSession").field("outputs", &self.outputs.len()).field("hooks", &self.capture.hooks).finish()
    }
}

/// The tracepoints the flow programs use: (tracepoint, program suffix).
const HOOKS: &[(&str, &str)] = &[
    ("sock:sock_recv_length", "sock_recv"),
    ("sock:sock_send_length", "sock_send"),
    ("net:netif_receive_skb", "netif_receive_skb"),
    ("net:net_dev_start_xmit", "net_dev_start_xmit"),
    ("net:net_dev_xmit", "net_dev_xmit"),
    ("irq:softirq_exit", "softirq_exit"),
    ("sock:inet_sock_set_state", "inet_sock_set_state"),
    ("tcp:tcp_retransmit_skb", "tcp_retransmit_skb"),
];

/// The attr of the per-CPU BPF-output event: same clock as the sampling
/// events (SET_OUTPUT requires it), samples with TID, TIME, CPU and RAW.
pub fn tag_attr() -> EventAttr {
    EventAttr {
        type_: crate::perf::attr::type_id::SOFTWARE,
        size: ATTR_SIZE_VER7,
        config: SW_BPF_OUTPUT,
        period_or_freq: 1,
        sample_type: sample::IDENTIFIER | sample::TID | sample::TIME | sample::CPU | sample::RAW,
        flags: flag::SAMPLE_ID_ALL | flag::USE_CLOCKID | flag::WATERMARK,
        clockid: libc::CLOCK_MONOTONIC,
        wakeup: 1 << 16,
        ..Default::default()
    }
}

impl FlowSession {
    /// Load and attach. `ring_owner(cpu)` is the fd whose ring buffer holds
    /// that CPU's samples.
    pub fn start<'a>(cfg: &FlowConfig, cpus: &[u32], ring_owner: impl Fn(u32) -> Option<&'a OwnedFd>) -> Result<FlowSession, FlowError> {
        if let Some(why) = precheck() {
            return Err(FlowError::Load(why));
        }
        let (skel, links, hooks) = match Self::load(cfg, true) {
            Ok(x) => x,
            // Kernels that refuse BTF tracepoints (lockdown, old kernels) may
            // still take raw tracepoints.
            Err(btf_err) => Self::load(cfg, false).map_err(|raw_err| FlowError::Load(format!("tp_btf: {btf_err}; raw_tp: {raw_err}")))?,
        };
        let mut s = FlowSession {
            skel,
            _links: links,
            outputs: Vec::new(),
            tag_attr: tag_attr(),
            tag_ids: Vec::new(),
            capture: FlowCapture {
                enabled: true,
                reason: None,
                tag_event: Some(TAG_EVENT.into()),
                hooks,
                filters: cfg.filters.iter().map(|f| f.to_string()).collect(),
                pids: cfg.pids.clone(),
            },
        };
        for &cpu in cpus {
            let Some(owner) = ring_owner(cpu) else { continue };
            let mut a = s.tag_attr.clone();
            let fd = sys::perf_event_open(&a, a.size, -1, cpu as i32, -1)
                .or_else(|e| {
                    if e.raw_os_error() == Some(libc::E2BIG) {
                        a.size = crate::perf::attr::ATTR_SIZE_VER5;
                        sys::perf_event_open(&a, a.size, -1, cpu as i32, -1)
                    } else {
                        Err(e)
                    }
                })
                .map_err(|err| FlowError::Output { cpu, err })?;
            sys::set_output(&fd, owner).map_err(|err| FlowError::Output { cpu, err })?;
            s.tag_ids.push(sys::event_id(&fd).map_err(|err| FlowError::Output { cpu, err })?);
            let key = cpu.to_ne_bytes();
            let val = fd.as_raw_fd().to_ne_bytes();
            s.skel.maps.tags.update(&key, &val, libbpf_rs::MapFlags::ANY).map_err(|e| FlowError::Other(format!("tags map: {e}")))?;
            s.outputs.push((cpu, fd));
        }
        Ok(s)
    }

    #[allow(clippy::type_complexity)]
    fn load(cfg: &FlowConfig, btf: bool) -> Result<(skel::FlowSkel<'static>, Vec<libbpf_rs::Link>, Vec<String>), String> {
        // libbpf prints verifier logs to stderr by default; the error that
        // matters comes back as the load's result instead.
        libbpf_rs::set_print(None);
        let storage: &'static mut MaybeUninit<libbpf_rs::OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
        let builder = skel::FlowSkelBuilder::default();
        let mut open = builder.open(storage).map_err(|e| e.to_string())?;
        {
            let ro = open.maps.rodata_data.as_deref_mut().ok_or("rodata is not mapped")?;
            ro.nr_filters = cfg.filters.len().min(ro.filters.len()) as u32;
            for (slot, f) in ro.filters.iter_mut().zip(&cfg.filters) {
                slot.addr = f.addr;
                slot.prefix_len = f.prefix_len;
                slot.port = f.port;
                slot.family = f.family;
            }
            ro.nr_pids = cfg.pids.len().min(ro.pids.len()) as u32;
            for (slot, p) in ro.pids.iter_mut().zip(&cfg.pids) {
                *slot = *p;
            }
        }
        // Keep one set of tracepoint programs: tp_btf or raw_tp.
        for mut prog in open.open_object_mut().progs_mut() {
            let name = prog.name().to_string_lossy().into_owned();
            if name.starts_with("btf_") {
                prog.set_autoload(btf);
            } else if name.starts_with("raw_") {
                prog.set_autoload(!btf);
            }
        }
        let skel = open.load().map_err(|e| e.to_string())?;
        let prefix = if btf { "btf_" } else { "raw_" };
        let mut links = Vec::new();
        let mut hooks = Vec::new();
        for prog in skel.object().progs_mut() {
            let name = prog.name().to_string_lossy().into_owned();
            let Some(suffix) = name.strip_prefix(prefix) else { continue };
            let tp = HOOKS.iter().find(|(_, s)| *s == suffix).map_or(suffix, |(t, _)| t);
            match prog.attach() {
                Ok(l) => {
                    links.push(l);
                    hooks.push(format!("{tp}: {}", if btf { "tp_btf" } else { "raw_tp" }));
                }
                Err(e) => hooks.push(format!("{tp}: not attached ({e})")),
            }
        }
        hooks.sort();
        hooks.push("tcp:tcp_probe: not used (srtt is read from the socket at its send/recv, at most every 10 ms: tcp_probe fires for every segment)".into());
        hooks.push("fentry/fexit: not used (tracepoints cover every hook; fentry is refused on kernels in lockdown)".into());
        Ok((skel, links, hooks))
    }

    /// Attach the tagging program to one sampling event (PERF_EVENT_IOC_SET_BPF).
    pub fn attach_to(&self, sampling: &OwnedFd) -> Result<(), FlowError> {
        let prog = &self.skel.progs.on_sample;
        sys::set_bpf(sampling, prog.as_fd().as_raw_fd()).map_err(FlowError::Attach)
    }

    /// Stop tagging and read the flow table and counters.
    pub fn finish(self) -> FlowTable {
        let mut flows = Vec::new();
        let map = &self.skel.maps.flows;
        let size = std::mem::size_of::<types::msen_flow_stats>();
        for key in map.keys() {
            let Ok(Some(per_cpu)) = map.lookup_percpu(&key, libbpf_rs::MapFlags::ANY) else { continue };
            if key.len() != 8 {
                continue;
            }
            let cpus: Vec<types::msen_flow_stats> = per_cpu
                .iter()
                .filter(|v| v.len() >= size)
                // SAFETY: each value is the kernel's copy of one CPU's
                // msen_flow_stats (the map's value type, checked by size),
                // read unaligned; every bit pattern is valid (integers).
                .map(|v| unsafe { std::ptr::read_unaligned(v.as_ptr().cast()) })
                .collect();
            let id = u64::from_ne_bytes(key[..8].try_into().unwrap_or([0; 8]));
            if let Some(st) = merge_cpus(&cpus) {
                flows.push(flow_info(id, &st));
            }
        }
        flows.sort_by_key(|f| f.id);
        let mut counters = std::collections::BTreeMap::new();
        let names = ["tags", "dropped_by_flow_filter", "dropped_by_pid_filter", "tag_output_errors", "socket_events", "packets"];
        for (i, n) in names.iter().enumerate() {
            let k = (i as u32).to_ne_bytes();
            let total: u64 = self
                .skel
                .maps
                .stats
                .lookup_percpu(&k, libbpf_rs::MapFlags::ANY)
                .ok()
                .flatten()
                .map(|per| per.iter().filter_map(|b| b.get(..8).map(|w| u64::from_ne_bytes(w.try_into().unwrap_or([0; 8])))).sum())
                .unwrap_or(0);
            counters.insert(n.to_string(), total);
        }
        FlowTable { flows, counters }
    }

    /// The BPF-output event fds (to enable and disable with the capture).
    pub fn output_fds(&self) -> impl Iterator<Item = &OwnedFd> {
        self.outputs.iter().map(|(_, fd)| fd)
    }
}

/// One flow's counters summed over the CPUs that saw it (first seen the
/// earliest, last seen the latest, the RTT read last).
fn merge_cpus(cpus: &[types::msen_flow_stats]) -> Option<types::msen_flow_stats> {
    let seen: Vec<&types::msen_flow_stats> = cpus.iter().filter(|c| c.first_ns != 0).collect();
    let mut m = **seen.first()?;
    for c in &seen[1..] {
        m.first_ns = m.first_ns.min(c.first_ns);
        m.last_ns = m.last_ns.max(c.last_ns);
        m.rx_bytes += c.rx_bytes;
        m.tx_bytes += c.tx_bytes;
        m.rx_packets += c.rx_packets;
        m.tx_packets += c.tx_packets;
        m.retransmits += c.retransmits;
        m.state_changes += c.state_changes;
        if c.srtt_time_ns > m.srtt_time_ns {
            m.srtt_us = c.srtt_us;
            m.srtt_time_ns = c.srtt_time_ns;
        }
        if m.direction == 0 {
            m.direction = c.direction;
        }
        if m.ifindex == 0 {
            m.ifindex = c.ifindex;
        }
    }
    Some(m)
}

fn ip_text(b: &[u8; 16], family: u8) -> String {
    if family == 10 {
        std::net::Ipv6Addr::from(*b).to_string()
    } else {
        std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()
    }
}

fn flow_info(id: u64, s: &types::msen_flow_stats) -> FlowInfo {
    let k = &s.key;
    FlowInfo {
        id,
        proto: match k.proto {
            6 => "tcp".into(),
            17 => "udp".into(),
            p => format!("proto{p}"),
        },
        family: if k.family == 10 { 6 } else { 4 },
        local: ip_text(&k.laddr, k.family),
        local_port: k.lport,
        remote: ip_text(&k.raddr, k.family),
        remote_port: k.rport,
        netns: k.netns,
        ifindex: s.ifindex,
        direction: match s.direction {
            1 => "client".into(),
            2 => "server".into(),
            // Established before the capture: the side on the lower port
            // is taken to be the server.
            _ if k.proto == 6 && k.lport != 0 && k.lport < k.rport => "server".into(),
            _ if k.proto == 6 && k.rport != 0 && k.rport < k.lport => "client".into(),
            _ => String::new(),
        },
        first_ns: s.first_ns,
        last_ns: s.last_ns,
        rx_bytes: s.rx_bytes,
        tx_bytes: s.tx_bytes,
        rx_packets: s.rx_packets,
        tx_packets: s.tx_packets,
        retransmits: s.retransmits,
        state_changes: s.state_changes,
        srtt_us: s.srtt_us,
    }
}

/// Decode a tag from the RAW payload of a tag-event sample.
pub fn decode_tag(raw: &[u8]) -> Option<types::msen_flow_tag> {
    if raw.len() < std::mem::size_of::<types::msen_flow_tag>() {
        return None;
    }
    // SAFETY: at least size_of::<msen_flow_tag>() bytes, read unaligned;
    // every bit pattern is a valid msen_flow_tag (integers only).
    let t: types::msen_flow_tag = unsafe { std::ptr::read_unaligned(raw.as_ptr().cast()) };
    (t.magic == 0x4d53_4e46).then_some(t)
}
