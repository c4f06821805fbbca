//! Flows at analysis time: the trace's flow table, the join of each sample
//! with the tag the kernel wrote right before it, and `msen flows`.
//!
//! ```text
//!  SAMPLES block of one CPU:  [tag a][sample][tag b][sample][sample] ...
//!                                  \___/         \___/         ^ no tag: unjoined
//!  a tag joins the next sample of the same thread; a tag followed by
//!  another tag (its sample was dropped or lost) is an unjoined tag
//! ```

use super::loaded::{DecodeStats, Loaded};
use crate::trace::meta::{FlowInfo, FlowTable};
use crate::trace::BlockKind;
use crate::trace::TraceError;
use rayon::prelude::*;
use rustc_hash::FxHashMap as HashMap;

/// What the kernel said about one sample's flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleFlow {
    /// 0: no flow was known for the sample.
    pub id: u64,
    /// How the flow was found.
    pub rule: FlowRule,
    /// The thread served several flows within the multiplexing window.
    pub multiplexed: bool,
    pub age_ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FlowRule {
    /// No flow (the thread never did socket I/O, no packet in flight).
    None,
    /// The thread's last socket operation (process context).
    Socket,
    /// The packet the CPU was handling (softirq, transmit path).
    Packet,
}

impl FlowRule {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowRule::None => "none",
            FlowRule::Socket => "socket",
            FlowRule::Packet => "packet",
        }
    }
}

/// A thread's last socket operation older than this does not attribute a
/// sample to that flow: the thread has moved on (an idle connection).
pub const DEFAULT_SOCKET_WINDOW_NS: u64 = 1_000_000_000;

impl SampleFlow {
    pub fn from_tag(t: &crate::flow::types::msen_flow_tag) -> SampleFlow {
        let rule = match t.kind {
            1 => FlowRule::Socket,
            2 => FlowRule::Packet,
            _ => FlowRule::None,
        };
        let stale = rule == FlowRule::Socket && t.age_ns > DEFAULT_SOCKET_WINDOW_NS;
        SampleFlow {
            id: if rule == FlowRule::None || stale { 0 } else { t.flow_id },
            rule: if stale { FlowRule::None } else { rule },
            multiplexed: t.flags & 1 != 0,
            age_ns: t.age_ns,
        }
    }
}

/// The flow table of a trace, by id.
#[derive(Debug, Clone, Default)]
pub struct FlowIndex {
    pub by_id: HashMap<u64, FlowInfo>,
    pub counters: std::collections::BTreeMap<String, u64>,
    /// The same counters per CPU.
    pub per_cpu: std::collections::BTreeMap<String, Vec<u64>>,
    /// The capture tagged samples (its tag event exists).
    pub enabled: bool,
}

impl FlowIndex {
    pub fn load(l_trace: &crate::trace::Trace, enabled: bool) -> Result<FlowIndex, TraceError> {
        let mut idx = FlowIndex { enabled, ..Default::default() };
        for b in l_trace.blocks_of(BlockKind::FLOWS).copied().collect::<Vec<_>>() {
            if let Some(d) = l_trace.decode_or_skip(&b)? {
                let t: FlowTable = serde_json::from_slice(&d)
                    .map_err(|e| TraceError::BadMetadata { path: l_trace.path().to_path_buf(), reason: format!("flows block: {e}") })?;
                idx.counters = t.counters;
                idx.per_cpu = t.per_cpu;
                idx.by_id.extend(t.flows.into_iter().map(|f| (f.id, f)));
            }
        }
        Ok(idx)
    }

    pub fn get(&self, id: u64) -> Option<&FlowInfo> {
        self.by_id.get(&id)
    }

    /// The flow's text, `-` for none, `flow#ID` for one missing from the table.
    pub fn text(&self, id: u64) -> String {
        match (id, self.get(id)) {
            (0, _) => "-".into(),
            (_, Some(f)) => f.text(),
            (id, None) => format!("flow#{id:016x}"),
        }
    }
}

/// One row of `msen flows`.
#[derive(Debug, Clone)]
pub struct FlowRow {
    /// None for the unattributed samples.
    pub flow: Option<FlowInfo>,
    pub samples: u64,
    pub period: u64,
    pub share: f64,
    /// CPU time estimated from cpu-clock/task-clock periods (ns), when the
    /// events count time.
    pub cpu_ns: Option<u64>,
    pub multiplexed: u64,
    pub by_rule: [u64; 3],
    /// (function, samples), most samples first.
    pub top_functions: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Default)]
pub struct FlowsReport {
    pub rows: Vec<FlowRow>,
    pub total_samples: u64,
    pub tagged_samples: u64,
    pub unjoined_samples: u64,
    pub unjoined_tags: u64,
    pub counters: std::collections::BTreeMap<String, u64>,
    pub enabled: bool,
    pub reason: Option<String>,
}

/// One flow's counts in a partial: samples, time period, multiplexed samples,
/// samples by rule, and samples by (pid, epoch, kernel, ip).
type FlowAcc = (u64, u64, u64, [u64; 3], HashMap<(u32, u16, bool, u64), u64>);

#[derive(Default)]
struct Partial {
    per_flow: HashMap<u64, FlowAcc>,
    stats: DecodeStats,
    total: u64,
}

/// `msen flows`: samples per flow, with the flow's counters and top functions.
pub fn flows(l: &Loaded, top_functions: usize) -> Result<FlowsReport, TraceError> {
    use crate::perf::record::misc;
    let time_event: Vec<bool> =
        l.events.list.iter().map(|e| e.attr.type_ == crate::perf::attr::type_id::SOFTWARE && matches!(e.attr.config, 0 | 1)).collect();
    let p = l
        .sample_blocks()
        .par_iter()
        .map(|b| -> Result<Partial, TraceError> {
            let mut p = Partial::default();
            let mut stats = DecodeStats::default();
            l.for_each_sample_flow(b, &mut stats, |ev, cpumode, s, f| {
                let id = f.map_or(0, |f| f.id);
                let e = p.per_flow.entry(id).or_default();
                e.0 += 1;
                let period = s.period.unwrap_or(l.events.list[ev as usize].default_period);
                if time_event[ev as usize] {
                    e.1 = e.1.saturating_add(period);
                }
                if let Some(f) = f {
                    e.2 += u64::from(f.multiplexed);
                    e.3[f.rule as usize] += 1;
                }
                let pid = s.pid.unwrap_or(u32::MAX);
                let kernel = matches!(cpumode, misc::KERNEL | misc::GUEST_KERNEL | misc::HYPERVISOR);
                let epoch = if kernel { 0 } else { l.timeline.epoch_at(pid, s.time.unwrap_or(0)) };
                *e.4.entry((pid, epoch, kernel, s.ip.unwrap_or(0))).or_default() += 1;
                p.total += 1;
            })?;
            p.stats = stats;
            Ok(p)
        })
        .try_reduce(Partial::default, |mut a, b| {
            for (k, v) in b.per_flow {
                let e = a.per_flow.entry(k).or_default();
                e.0 += v.0;
                e.1 = e.1.saturating_add(v.1);
                e.2 += v.2;
                for i in 0..3 {
                    e.3[i] += v.3[i];
                }
                for (ak, n) in v.4 {
                    *e.4.entry(ak).or_default() += n;
                }
            }
            a.stats += b.stats;
            a.total += b.total;
            Ok(a)
        })?;
    let any_time = time_event.iter().any(|&t| t);
    let mut rows: Vec<FlowRow> = p
        .per_flow
        .into_iter()
        .map(|(id, (samples, period, mux, by_rule, addrs))| {
            // Functions by samples: resolve each distinct address once.
            let mut by_fn: HashMap<String, u64> = HashMap::default();
            for ((pid, epoch, kernel, ip), n) in addrs {
                let r = if kernel { l.resolver.kernel(ip) } else { l.resolver.user(l.timeline.find_map(pid, epoch, ip), ip) };
                *by_fn.entry(r.sym_display()).or_default() += n;
            }
            let mut top: Vec<(String, u64)> = by_fn.into_iter().collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            top.truncate(top_functions);
            FlowRow {
                flow: if id == 0 { None } else { Some(l.flows.get(id).cloned().unwrap_or(FlowInfo { id, ..Default::default() })) },
                samples,
                period,
                share: if p.total > 0 { 100.0 * samples as f64 / p.total as f64 } else { 0.0 },
                cpu_ns: any_time.then_some(period),
                multiplexed: mux,
                by_rule,
                top_functions: top,
            }
        })
        .collect();
    // Most samples first; ties by flow id (unattributed last among equals).
    rows.sort_by(|a, b| b.samples.cmp(&a.samples).then(a.flow.as_ref().map(|f| f.id).cmp(&b.flow.as_ref().map(|f| f.id))));
    let tagged = rows.iter().filter(|r| r.flow.is_some()).map(|r| r.samples).sum();
    Ok(FlowsReport {
        rows,
        total_samples: p.total,
        tagged_samples: tagged,
        unjoined_samples: p.stats.samples_without_tag,
        unjoined_tags: p.stats.unjoined_tags,
        counters: l.flows.counters.clone(),
        enabled: l.flows.enabled,
        reason: l.trace.meta.flows.reason.clone(),
    })
}
