//! `msen report`: where the samples went, by comm, pid, tid, dso, symbol,
//! cpu and event, with self and children (inclusive) shares when the trace
//! has call chains.
//!
//! Pipeline: decode sample blocks in parallel into per-block maps keyed by
//! raw values (pid, exec epoch, comm id, ip, ...), merge, resolve each
//! distinct address once, then group into rows by the requested keys. Rows
//! are sorted by a total order, so the output does not depend on thread count.

use super::datasrc::DataSrc;
use super::loaded::{DecodeStats, Loaded};
use crate::perf::record::{frames_of, misc};
use crate::symbolize::Resolved;
use crate::trace::TraceError;
use rayon::prelude::*;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SortKey {
    Comm,
    Pid,
    Tid,
    Dso,
    Sym,
    Cpu,
    Event,
    /// Memory level of data_src (perf's "mem").
    Mem,
    Snoop,
    Tlb,
    Lock,
    Blocked,
    /// The sample's weight (perf's "local_weight").
    Weight,
    /// Source file and line of the sampled address (DWARF), perf's "srcline".
    Srcline,
    /// Branch view (`--branch`): source and target of each taken branch.
    DsoFrom,
    DsoTo,
    SymFrom,
    SymTo,
    /// The sample's network flow (`tcp 10.0.0.1:7001 <- 10.0.0.2:40312`).
    Flow,
    /// The flow's local address:port, remote address:port, local port.
    FlowLocal,
    FlowRemote,
    FlowPort,
    /// The flow's network namespace inode.
    Netns,
    /// How the flow was found: socket, packet, none (+ multiplexed).
    FlowRule,
}

impl SortKey {
    /// Keys that need each sample's flow.
    /// Keys whose value depends on the frame's address (the others on the
    /// sample's context).
    pub fn is_frame_key(self) -> bool {
        matches!(self, SortKey::Dso | SortKey::Sym | SortKey::Srcline)
    }

    pub fn is_flow(self) -> bool {
        matches!(self, SortKey::Flow | SortKey::FlowLocal | SortKey::FlowRemote | SortKey::FlowPort | SortKey::Netns | SortKey::FlowRule)
    }

    pub fn parse(s: &str) -> Option<SortKey> {
        Some(match s.trim() {
            "comm" => SortKey::Comm,
            "pid" => SortKey::Pid,
            "tid" => SortKey::Tid,
            "dso" => SortKey::Dso,
            "sym" | "symbol" => SortKey::Sym,
            "cpu" => SortKey::Cpu,
            "event" => SortKey::Event,
            "mem" => SortKey::Mem,
            "snoop" => SortKey::Snoop,
            "tlb" => SortKey::Tlb,
            "lock" => SortKey::Lock,
            "blocked" => SortKey::Blocked,
            "weight" | "local_weight" => SortKey::Weight,
            "srcline" => SortKey::Srcline,
            "dso_from" => SortKey::DsoFrom,
            "dso_to" => SortKey::DsoTo,
            "sym_from" | "symbol_from" => SortKey::SymFrom,
            "sym_to" | "symbol_to" => SortKey::SymTo,
            "flow" => SortKey::Flow,
            "flow_local" => SortKey::FlowLocal,
            "flow_remote" => SortKey::FlowRemote,
            "flow_port" => SortKey::FlowPort,
            "netns" => SortKey::Netns,
            "flow_rule" => SortKey::FlowRule,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            SortKey::Comm => "comm",
            SortKey::Pid => "pid",
            SortKey::Tid => "tid",
            SortKey::Dso => "dso",
            SortKey::Sym => "sym",
            SortKey::Cpu => "cpu",
            SortKey::Event => "event",
            SortKey::Mem => "mem",
            SortKey::Snoop => "snoop",
            SortKey::Tlb => "tlb",
            SortKey::Lock => "lock",
            SortKey::Blocked => "blocked",
            SortKey::Weight => "weight",
            SortKey::Srcline => "srcline",
            SortKey::DsoFrom => "dso_from",
            SortKey::DsoTo => "dso_to",
            SortKey::SymFrom => "sym_from",
            SortKey::SymTo => "sym_to",
            SortKey::Flow => "flow",
            SortKey::FlowLocal => "flow_local",
            SortKey::FlowRemote => "flow_remote",
            SortKey::FlowPort => "flow_port",
            SortKey::Netns => "netns",
            SortKey::FlowRule => "flow_rule",
        }
    }
    pub fn header(self) -> &'static str {
        match self {
            SortKey::Comm => "Command",
            SortKey::Pid => "Pid",
            SortKey::Tid => "Tid",
            SortKey::Dso => "Shared Object",
            SortKey::Sym => "Symbol",
            SortKey::Cpu => "CPU",
            SortKey::Event => "Event",
            SortKey::Mem => "Memory access",
            SortKey::Snoop => "Snoop",
            SortKey::Tlb => "TLB access",
            SortKey::Lock => "Locked",
            SortKey::Blocked => "Blocked",
            SortKey::Weight => "Local Weight",
            SortKey::Srcline => "Source:Line",
            SortKey::DsoFrom => "Source Shared Object",
            SortKey::DsoTo => "Target Shared Object",
            SortKey::SymFrom => "Source Symbol",
            SortKey::SymTo => "Target Symbol",
            SortKey::Flow => "Flow",
            SortKey::FlowLocal => "Local",
            SortKey::FlowRemote => "Remote",
            SortKey::FlowPort => "Port",
            SortKey::Netns => "Netns",
            SortKey::FlowRule => "Flow rule",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Children {
    /// Show children when the trace has call chains.
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone)]
pub struct ReportConfig {
    pub sort: Vec<SortKey>,
    pub percent_limit: f64,
    pub top: Option<usize>,
    pub pids: Vec<u32>,
    /// Only samples of these threads.
    pub tids: Vec<u32>,
    /// Only rows whose shared object (short name or path) / symbol is one of these.
    pub dsos: Vec<String>,
    pub symbols: Vec<String>,
    /// Only samples inside these times: perf's --time syntax (see `time_ranges`).
    pub time: Option<String>,
    /// Only samples taken while the agent was in this mode (`--mode`).
    pub mode: Option<crate::trace::meta::Mode>,
    /// Percentages of what the filters keep (`--percentage relative`)
    /// rather than of every sample (`absolute`, perf's default).
    pub relative: bool,
    /// Show a Samples column in the table (`-n`).
    pub show_samples: bool,
    /// The numeric columns (`-F`).
    pub columns: Columns,
    pub comms: Vec<String>,
    pub cpus: Vec<u32>,
    pub children: Children,
    pub progress: bool,
    /// Branch view: count taken branches from branch stacks.
    pub branch: bool,
    /// Count inlined functions in children and stacks (DWARF inline info).
    pub inline: bool,
    /// Also produce collapsed stacks (`Report::folded`).
    pub folded: bool,
    /// Overhead by sample weight instead of period (perf mem report).
    pub weight: bool,
    /// Keep samples whose flow matches one of these (`--flow`, `--port`).
    pub flow_filters: Vec<crate::flow::FlowFilter>,
    /// Call graphs under each row (`-g`), when the trace has call chains.
    pub callgraph: super::callgraph::CallGraphConfig,
    /// Use at most this many frames of each chain, from the sampled one (perf's --max-stack).
    pub max_stack: Option<usize>,
    /// The --sort string as given starts with `sym` (perf then omits a
    /// chain's first frame, the row itself).
    pub sort_starts_with_sym: bool,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            sort: vec![SortKey::Comm, SortKey::Dso, SortKey::Sym],
            percent_limit: 0.0,
            top: None,
            pids: vec![],
            tids: vec![],
            dsos: vec![],
            symbols: vec![],
            time: None,
            mode: None,
            relative: false,
            show_samples: false,
            columns: Columns::default(),
            comms: vec![],
            cpus: vec![],
            children: Children::Auto,
            progress: false,
            branch: false,
            inline: false,
            folded: false,
            weight: false,
            flow_filters: vec![],
            callgraph: Default::default(),
            max_stack: None,
            sort_starts_with_sym: false,
        }
    }
}

/// The numeric columns of the table (perf's -F output fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    pub overhead: bool,
    pub children: bool,
    pub samples: bool,
    pub period: bool,
}

impl Default for Columns {
    /// Overhead, and children when the trace has call chains.
    fn default() -> Self {
        Columns { overhead: true, children: true, samples: false, period: false }
    }
}

/// One value of a row's key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyVal {
    Num(u64),
    Text(String),
    /// A symbol: display text ("[.] name"), plain name, kernel flag.
    Sym {
        display: String,
        name: String,
        kernel: bool,
        /// The DSO and start of the symbol: two functions with one name
        /// (C++ overloads, static functions) are two rows, as in perf.
        /// None when the name is all there is (unresolved, DWARF, inlined).
        origin: Option<(String, u64)>,
    },
}

impl KeyVal {
    /// The symbol key of a resolved address.
    pub fn sym(r: &Resolved) -> KeyVal {
        KeyVal::Sym {
            display: r.sym_display(),
            name: match &r.sym {
                Ok(n) => n.clone(),
                Err(_) => format!("0x{:x}", r.rel),
            },
            kernel: r.kernel,
            origin: match (&r.sym, r.sym_start) {
                (Ok(_), Some(start)) => Some((r.dso.clone(), start)),
                _ => None,
            },
        }
    }

    pub fn display(&self) -> String {
        match self {
            KeyVal::Num(n) => n.to_string(),
            KeyVal::Text(s) => s.clone(),
            KeyVal::Sym { display, .. } => display.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub event: u16,
    pub keys: Vec<KeyVal>,
    pub samples: u64,
    pub period: u64,
    pub percent: f64,
    pub children_period: Option<u64>,
    pub children_percent: Option<f64>,
    /// Branch view only: misprediction and cycle statistics.
    pub branch: Option<super::branch::BranchStats>,
    /// The call chains of the row's samples (`-g`), for rows shown.
    pub graph: Option<super::callgraph::CallTree>,
}

#[derive(Debug, Clone, Default)]
pub struct EventTotal {
    pub name: String,
    pub samples: u64,
    pub period: u64,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub sort: Vec<SortKey>,
    pub events: Vec<EventTotal>,
    pub total_samples: u64,
    pub lost_samples: u64,
    /// Samples the kernel program dropped (budget, minimum gap), by reason.
    pub budget_dropped: BTreeMap<String, u64>,
    /// The host context during the capture, in one line.
    pub host: Option<String>,
    pub has_children: bool,
    pub rows: Vec<Row>,
    /// Rows left out by --percent-limit / --top.
    pub rows_hidden: usize,
    /// Collapsed stacks ("comm;outer;...;inner", samples), sorted by stack.
    pub folded: Vec<(String, u64)>,
    pub decode: DecodeStats,
    /// Samples whose ip did not resolve, by reason.
    pub unresolved: BTreeMap<String, u64>,
    pub dso_problems: Vec<(String, String)>,
    pub software_only: bool,
    pub clean_close: bool,
    /// How rows' call graphs print, and whether a chain's first frame (the
    /// row itself, when sorted by symbol first) is left out.
    pub callgraph: super::callgraph::CallGraphConfig,
    pub graph_skip_first: bool,
    /// A Samples column in the table (`-n`).
    pub show_samples: bool,
    pub columns: Columns,
    /// Where names came from and what would name the rest, for the footer.
    pub notes: Vec<String>,
}

/// Footer lines about symbol sources: embedded symbols in use, and what to
/// pass when kernel symbols are missing.
fn symbol_notes(l: &Loaded, unresolved: &BTreeMap<String, u64>) -> Vec<String> {
    let mut v = Vec::new();
    let used = l.resolver.embedded_used();
    if !used.is_empty() {
        v.push(format!(
            "{} objects named from the trace's embedded symbols (not found here with the recorded build-id): {}",
            used.len(),
            used.join(", ")
        ));
    }
    if let Some(n) = unresolved.get(super::super::symbolize::Unresolved::NoKallsyms.as_str()) {
        let bid = l.trace.end.as_ref().and_then(|e| e.build_ids.iter().find(|b| b.path == "[kernel.kallsyms]")).map(|b| b.build_id.clone());
        v.push(match bid {
            Some(id) => format!(
                "{n} kernel samples unnamed: no kernel symbols match the recording kernel (build-id {id}); pass --kallsyms FILE (that host's /proc/kallsyms) or put it at ~/.debug/[kernel.kallsyms]/{id}/kallsyms"
            ),
            None => format!("{n} kernel samples unnamed: the trace has no kernel symbols; pass --kallsyms FILE (the recording host's /proc/kallsyms)"),
        });
    }
    v
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RawKey {
    event: u16,
    pid: u32,
    tid: u32,
    cpu: u32,
    comm: u32,
    epoch: u16,
    kernel: bool,
    ip: u64,
    /// Zero unless a data_src key is requested.
    data_src: u64,
    /// Zero unless the weight key is requested.
    weight: u64,
    /// Zero unless a flow key is requested (or no flow).
    flow: u64,
    /// FlowRule as u8, +4 when multiplexed; only with the flow_rule key.
    flow_rule: u8,
    /// The raw chain's number in the partial's `ChainTable`; NO_CHAIN without.
    chain: u32,
}

const NO_CHAIN: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    samples: u64,
    period: u64,
}

#[derive(Debug, Default)]
struct Partial {
    map: HashMap<RawKey, Acc>,
    chains: super::chains::ChainTable,
    /// Per event: all samples, before filters.
    totals: Vec<(u64, u64)>,
    stats: DecodeStats,
}

impl Partial {
    fn merge(mut self, mut o: Partial) -> Partial {
        if self.map.len() < o.map.len() {
            std::mem::swap(&mut self.map, &mut o.map);
            std::mem::swap(&mut self.chains, &mut o.chains);
        }
        let (mut big, small) = (std::mem::take(&mut self.map), o.map);
        let mut chains = std::mem::take(&mut self.chains);
        let renumber = chains.absorb(&o.chains);
        for (mut k, v) in small {
            if k.chain != NO_CHAIN {
                k.chain = renumber[k.chain as usize];
            }
            let e = big.entry(k).or_default();
            e.samples += v.samples;
            e.period = e.period.saturating_add(v.period);
        }
        let mut totals: Vec<(u64, u64)> = vec![(0, 0); self.totals.len().max(o.totals.len())];
        for (i, t) in self.totals.iter().enumerate().chain(o.totals.iter().enumerate()) {
            totals[i].0 += t.0;
            totals[i].1 = totals[i].1.saturating_add(t.1);
        }
        let mut stats = self.stats;
        stats += o.stats;
        Partial { map: big, chains, totals, stats }
    }
}

/// Address identity for resolution.
type AddrKey = (u32, u16, bool, u64);

/// A raw key's context values: comm, pid, tid, cpu, data_src, weight, flow, flow rule, event.
type CtxRaw = (u32, u32, u32, u32, u64, u64, u64, u8, u16);

/// A row: event, interned context parts, interned frame parts.
type RowId = (u16, u32, u32);

#[derive(Debug, Clone, Copy, Default)]
struct RowAcc {
    samples: u64,
    period: u64,
    children: u64,
}

/// One worker's share of the row sums.
#[derive(Debug, Default)]
struct RowAccum {
    rows: HashMap<RowId, RowAcc>,
    /// Per event: samples and period of rows the filters keep.
    kept: Vec<(u64, u64)>,
    unresolved: BTreeMap<&'static str, u64>,
    /// Scratch for a chain's distinct frames.
    seen: Vec<u32>,
}

impl RowAccum {
    fn merge(mut self, o: RowAccum) -> RowAccum {
        let (mut big, small) = if self.rows.len() >= o.rows.len() {
            (std::mem::take(&mut self.rows), o.rows)
        } else {
            (o.rows, std::mem::take(&mut self.rows))
        };
        for (k, v) in small {
            let e = big.entry(k).or_default();
            e.samples += v.samples;
            e.period = e.period.saturating_add(v.period);
            e.children = e.children.saturating_add(v.children);
        }
        let mut kept = self.kept;
        kept.resize(kept.len().max(o.kept.len()), (0, 0));
        for (i, t) in o.kept.iter().enumerate() {
            kept[i].0 += t.0;
            kept[i].1 = kept[i].1.saturating_add(t.1);
        }
        let mut unresolved = self.unresolved;
        for (k, v) in o.unresolved {
            *unresolved.entry(k).or_default() += v;
        }
        RowAccum { rows: big, kept, unresolved, seen: Vec::new() }
    }
}

/// Values numbered in first-seen order.
#[derive(Debug)]
struct Interner<T> {
    ids: HashMap<T, u32>,
    items: Vec<T>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner { ids: HashMap::default(), items: Vec::new() }
    }
}

impl<T: std::hash::Hash + Eq + Clone> Interner<T> {
    fn id(&mut self, v: T) -> u32 {
        if let Some(&i) = self.ids.get(&v) {
            return i;
        }
        let i = self.items.len() as u32;
        self.items.push(v.clone());
        self.ids.insert(v, i);
        i
    }
}

/// For each position of interned keys, each key's rank by its value at
/// that position (equal values, equal ranks): `[position][id]`. Comparing
/// two joined keys position by position through these is comparing them.
fn position_ranks(items: &[Vec<KeyVal>]) -> Vec<Vec<u32>> {
    let width = items.first().map_or(0, Vec::len);
    (0..width)
        .map(|j| {
            let mut order: Vec<u32> = (0..items.len() as u32).collect();
            order.sort_unstable_by(|&a, &b| items[a as usize][j].cmp(&items[b as usize][j]).then(a.cmp(&b)));
            let mut rank = vec![0u32; items.len()];
            let mut r = 0u32;
            for w in 1..order.len() {
                if items[order[w] as usize][j] != items[order[w - 1] as usize][j] {
                    r += 1;
                }
                rank[order[w] as usize] = r;
            }
            rank
        })
        .collect()
}

/// perf's name of a call-chain frame without a symbol: `%#x` (so 0 is "0").
pub fn unresolved_frame_name(ip: u64) -> String {
    if ip == 0 {
        "0".to_string()
    } else {
        format!("{ip:#x}")
    }
}

/// perf's `--time`: `START,STOP` in seconds of the trace clock (either may
/// be empty), `A%-B%` of the recording, `N%/K` (the K-th slice of N%),
/// several separated by commas when they are percent ranges.
pub fn time_ranges(spec: &str, first: u64, last: u64) -> Result<Vec<(u64, u64)>, String> {
    let bad = |why: &str| format!("--time {spec}: {why}; use START,STOP (seconds, as perf script prints them), A%-B% or N%/K");
    let span = last.saturating_sub(first) as f64;
    let at = |p: f64| first + (span * p / 100.0).round() as u64;
    if !spec.contains('%') {
        let (a, b) = spec.split_once(',').ok_or_else(|| bad("expected START,STOP"))?;
        let secs = |x: &str, d: u64| -> Result<u64, String> {
            if x.trim().is_empty() {
                return Ok(d);
            }
            let v: f64 = x.trim().parse().map_err(|_| bad(&format!("'{x}' is not a number of seconds")))?;
            if !(v >= 0.0 && v.is_finite()) {
                return Err(bad("times are not negative"));
            }
            Ok((v * 1e9).round() as u64)
        };
        let (a, b) = (secs(a, 0)?, secs(b, u64::MAX)?);
        if a > b {
            return Err(bad("START is after STOP"));
        }
        return Ok(vec![(a, b)]);
    }
    let pct = |x: &str| -> Result<f64, String> {
        let v: f64 = x.trim().trim_end_matches('%').parse().map_err(|_| bad(&format!("'{x}' is not a percentage")))?;
        if (0.0..=100.0).contains(&v) {
            Ok(v)
        } else {
            Err(bad("percentages are 0..100"))
        }
    };
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((size, k)) = part.split_once('/') {
            let size = pct(size)?;
            let k: f64 = k.trim().parse().map_err(|_| bad(&format!("'{k}' is not a slice number")))?;
            if size <= 0.0 || k < 1.0 || k.fract() != 0.0 || size * k > 100.0 + 1e-9 {
                return Err(bad(&format!("slice {k} of {size}% is outside the recording")));
            }
            out.push((at(size * (k - 1.0)), at(size * k)));
        } else if let Some((a, b)) = part.split_once('-') {
            let (a, b) = (pct(a)?, pct(b)?);
            if a > b {
                return Err(bad("a range starts after it ends"));
            }
            out.push((at(a), at(b)));
        } else {
            return Err(bad(&format!("'{part}'")));
        }
    }
    Ok(out)
}

/// The sample filters every analysis shares (perf report's): --tid, --time,
/// --pid, --cpu, --flow/--port, --comm. `keep` answers for one sample and
/// gives its command's id (u32::MAX when unknown).
#[derive(Debug)]
pub struct SampleFilter {
    time: Vec<(u64, u64)>,
    /// --mode: the spans of that mode (a sample must also be inside `time`).
    mode: Option<Vec<(u64, u64)>>,
    pids: Vec<u32>,
    tids: Vec<u32>,
    cpus: Vec<u32>,
    flows: bool,
    /// The flows --flow/--port keep, decided once per flow rather than per sample.
    kept_flows: HashSet<u64>,
    comms: Option<HashSet<u32>>,
}

impl SampleFilter {
    pub fn new(l: &Loaded, cfg: &ReportConfig) -> Result<SampleFilter, TraceError> {
        let time = match &cfg.time {
            Some(spec) => {
                let (first, last) = l.sample_time_span().unwrap_or((0, 0));
                time_ranges(spec, first, last).map_err(|reason| TraceError::BadMetadata { path: l.trace.path().to_path_buf(), reason })?
            }
            None => Vec::new(),
        };
        let mode = match cfg.mode {
            Some(m) if l.agent.is_empty() => {
                return Err(TraceError::BadMetadata {
                    path: l.trace.path().to_path_buf(),
                    reason: format!(
                        "--mode {}: this capture has no modes (it was not recorded with --mode or --budget); drop --mode",
                        m.name()
                    ),
                })
            }
            Some(m) => Some(l.agent.spans(m)),
            None => None,
        };
        Ok(SampleFilter {
            time,
            mode,
            pids: cfg.pids.clone(),
            tids: cfg.tids.clone(),
            cpus: cfg.cpus.clone(),
            flows: !cfg.flow_filters.is_empty(),
            kept_flows: l.flows.by_id.values().filter(|fi| cfg.flow_filters.iter().any(|ff| ff.matches(fi))).map(|fi| fi.id).collect(),
            comms: (!cfg.comms.is_empty()).then(|| cfg.comms.iter().filter_map(|c| l.timeline.comm_id(c)).collect()),
        })
    }

    /// Whether any filter is set.
    pub fn is_active(&self) -> bool {
        !(self.time.is_empty()
            && self.mode.is_none()
            && self.pids.is_empty()
            && self.tids.is_empty()
            && self.cpus.is_empty()
            && !self.flows
            && self.comms.is_none())
    }

    /// The sample's command id when the filters keep it.
    pub fn keep(&self, l: &Loaded, s: &crate::perf::record::Sample<'_>, flow: Option<super::flows::SampleFlow>) -> Option<u32> {
        let (pid, tid) = (s.pid.unwrap_or(u32::MAX), s.tid.unwrap_or(u32::MAX));
        if !self.tids.is_empty() && !self.tids.contains(&tid) {
            return None;
        }
        if !self.time.is_empty() && !s.time.is_some_and(|t| self.time.iter().any(|&(a, b)| t >= a && t <= b)) {
            return None;
        }
        if let Some(spans) = &self.mode {
            if !s.time.is_some_and(|t| spans.iter().any(|&(a, b)| t >= a && t <= b)) {
                return None;
            }
        }
        if !self.pids.is_empty() && !self.pids.contains(&pid) {
            return None;
        }
        if !self.cpus.is_empty() && !self.cpus.contains(&s.cpu.unwrap_or(u32::MAX)) {
            return None;
        }
        if self.flows && !flow.is_some_and(|f| self.kept_flows.contains(&f.id)) {
            return None;
        }
        let comm = l.timeline.comm_at(pid, tid, s.time.unwrap_or(0)).unwrap_or(u32::MAX);
        if let Some(f) = &self.comms {
            if !f.contains(&comm) {
                return None;
            }
        }
        Some(comm)
    }
}

pub fn report(l: &Loaded, cfg: &ReportConfig) -> Result<Report, TraceError> {
    if cfg.branch {
        return super::branch::branch_report(l, cfg);
    }
    let filter = SampleFilter::new(l, cfg)?;
    let has_chains = l.events.list.iter().any(|e| e.attr.sample_type & crate::perf::attr::sample::CALLCHAIN != 0);
    let children = match cfg.children {
        Children::Auto => has_chains,
        Children::On => has_chains,
        Children::Off => false,
    };
    // Call graphs under the rows (table output only: cfg.callgraph says).
    let keep_graphs = has_chains && cfg.callgraph.mode != super::callgraph::GraphMode::None;
    // Stacks are kept for children, graphs and collapsed output.
    let keep_chains = has_chains && (children || cfg.folded || keep_graphs);
    let want_tid = cfg.sort.contains(&SortKey::Tid);
    let want_cpu = cfg.sort.contains(&SortKey::Cpu);
    let want_dsrc = cfg.sort.iter().any(|k| matches!(k, SortKey::Mem | SortKey::Snoop | SortKey::Tlb | SortKey::Lock | SortKey::Blocked));
    let want_weight = cfg.sort.contains(&SortKey::Weight);
    let want_flow = cfg.sort.iter().any(|k| k.is_flow() && *k != SortKey::FlowRule);
    let want_rule = cfg.sort.contains(&SortKey::FlowRule);
    let nev = l.events.len();

    let blocks = l.sample_blocks();
    let pb = crate::output::progress(cfg.progress, blocks.len() as u64, "decoding");
    let partial = blocks
        .par_iter()
        .map_init(
            || l.unwinder(),
            |unwinder, b| -> Result<Partial, TraceError> {
                let mut p = Partial { totals: vec![(0, 0); nev], ..Default::default() };
                let mut stats = DecodeStats::default();
                let mut buf: Vec<u64> = Vec::new();
                l.for_each_sample_flow(b, &mut stats, |ev, cpumode, s, flow| {
                    // perf counts a sample without weight as weight 1.
                    let period = if cfg.weight {
                        s.weight.unwrap_or(0).max(1)
                    } else {
                        s.period.unwrap_or(l.events.list[ev as usize].default_period)
                    };
                    p.totals[ev as usize].0 += 1;
                    p.totals[ev as usize].1 = p.totals[ev as usize].1.saturating_add(period);
                    let (pid, tid) = (s.pid.unwrap_or(u32::MAX), s.tid.unwrap_or(u32::MAX));
                    let cpu = s.cpu.unwrap_or(u32::MAX);
                    let time = s.time.unwrap_or(0);
                    let Some(comm) = filter.keep(l, s, flow) else { return };
                    let kernel = matches!(cpumode, misc::KERNEL | misc::GUEST_KERNEL | misc::HYPERVISOR);
                    let key = RawKey {
                        event: ev,
                        pid,
                        tid: if want_tid { tid } else { 0 },
                        cpu: if want_cpu { cpu } else { 0 },
                        comm,
                        epoch: l.timeline.epoch_at(pid, time),
                        kernel,
                        ip: s.ip.unwrap_or(0),
                        data_src: if want_dsrc { s.data_src.unwrap_or(0) } else { 0 },
                        weight: if want_weight { s.weight.unwrap_or(0) } else { 0 },
                        flow: if want_flow { flow.map_or(0, |f| f.id) } else { 0 },
                        flow_rule: if want_rule { flow.map_or(0, |f| f.rule as u8 + if f.multiplexed { 4 } else { 0 }) } else { 0 },
                        chain: if keep_chains && l.chain_into(ev, s, unwinder, &mut buf) { p.chains.id(&buf) } else { NO_CHAIN },
                    };
                    let a = p.map.entry(key).or_default();
                    a.samples += 1;
                    // Periods are the kernel's (or a file's): sums saturate
                    // rather than wrap on absurd values.
                    a.period = a.period.saturating_add(period);
                })?;
                p.stats += stats;
                pb.inc(1);
                Ok(p)
            },
        )
        .try_reduce(|| Partial { totals: vec![(0, 0); nev], ..Default::default() }, |a, b| Ok(a.merge(b)))?;
    crate::output::timing::mark("decoded samples");
    pb.finish_and_clear();

    // Resolve each distinct address once.
    let mut addrs: HashSet<AddrKey> = HashSet::default();
    for k in partial.map.keys() {
        addrs.insert((k.pid, k.epoch, k.kernel, k.ip));
        if k.chain != NO_CHAIN {
            for (kernel, ip) in frames(partial.chains.get(k.chain), k.kernel) {
                addrs.insert((k.pid, k.epoch, kernel, ip));
            }
        }
    }
    let mut addrs: Vec<AddrKey> = addrs.into_iter().collect();
    addrs.sort_unstable();
    let mut resolved: Vec<Resolved> = addrs
        .par_iter()
        .map(
            |&(pid, epoch, kernel, ip)| {
                if kernel {
                    l.resolver.kernel(ip)
                } else {
                    l.resolver.user(l.timeline.find_map(pid, epoch, ip), ip)
                }
            },
        )
        .collect();
    crate::output::timing::mark("resolved addresses");
    let index: HashMap<AddrKey, usize> = addrs.iter().enumerate().map(|(i, a)| (*a, i)).collect();
    // DWARF frames of every resolved address, when lines or inlines are asked for.
    crate::output::timing::mark("address index");
    let want_dwarf = cfg.sort.contains(&SortKey::Srcline) || cfg.inline;
    let dwarf: Vec<Vec<crate::symbolize::dwarf::Frame>> = if want_dwarf {
        let items: Vec<(usize, (u32, u64))> = resolved.iter().enumerate().filter_map(|(i, r)| r.elf_addr.map(|a| (i, a))).collect();
        let frames = l.resolver.dwarf_batch(&items.iter().map(|(_, a)| *a).collect::<Vec<_>>());
        let mut out = vec![Vec::new(); resolved.len()];
        for ((i, _), f) in items.into_iter().zip(frames) {
            out[i] = f;
        }
        out
    } else {
        Vec::new()
    };
    // Where the symbol table has no function (stripped, local symbols
    // gone) but DWARF names one, use DWARF's physical function.
    for (r, f) in resolved.iter_mut().zip(&dwarf) {
        if r.sym.is_err() {
            if let Some(name) = f.last().and_then(|fr| fr.function.clone()) {
                r.sym = Ok(name);
            }
        }
    }
    let resolved = resolved;
    // Without line information perf 6.1 prints a kernel address as
    // `function+offset` (decimal) and a user address as `??:0`. perf never
    // asks addr2line about a DSO named in brackets ([vdso], [vsyscall]):
    // those are always `function+offset`. Nor does addr2line find anything
    // in a PLT (no symbol-table entry covers it: `??:0` is its "not found",
    // where a function without lines gives `??:?`), so perf falls back to
    // its own symbol there too.
    let srcline = |i: usize| {
        let r = &resolved[i];
        let bracketed = !r.kernel && r.dso.starts_with('[');
        let plt = r.sym.as_ref().is_ok_and(|n| n.ends_with("@plt"));
        let name_off = || match (&r.sym, r.sym_off) {
            (Ok(name), Some(off)) if r.kernel || bracketed || plt => format!("{name}+{off}"),
            _ => "??:0".to_string(),
        };
        match dwarf.get(i).and_then(|f| f.first()) {
            Some(f) if !bracketed => f.srcline(),
            _ => name_off(),
        }
    };
    // The inlined functions at an address, outermost first (not the physical one).
    let inlined = |i: usize| -> Vec<String> {
        if !cfg.inline {
            return Vec::new();
        }
        dwarf.get(i).map(|f| f.iter().rev().filter(|fr| fr.inlined).filter_map(|fr| fr.function.clone()).collect()).unwrap_or_default()
    };

    // A row's key has parts that depend on the sample's context (comm, pid,
    // cpu, data source, flow, ...) and parts that depend on the frame's
    // address (dso, symbol, srcline). Each is interned once -- contexts per
    // distinct raw key, frames per distinct address -- so the per-frame work
    // below is integer work; an id pair names a row exactly (the interned
    // parts are the displayed values).
    let frame_parts = |r: &Resolved, ri: usize| -> Vec<KeyVal> {
        cfg.sort
            .iter()
            .filter(|sk| sk.is_frame_key())
            .map(|sk| match sk {
                SortKey::Dso => KeyVal::Text(r.dso.clone()),
                SortKey::Sym => KeyVal::sym(r),
                _ => KeyVal::Text(srcline(ri)),
            })
            .collect()
    };
    let ctx_parts = |k: &RawKey| -> Vec<KeyVal> {
        cfg.sort
            .iter()
            .filter(|sk| !sk.is_frame_key())
            .map(|sk| match sk {
                SortKey::Comm => KeyVal::Text(if k.comm == u32::MAX {
                    // perf names an unknown thread ":TID" (pid -1 prints as ":-1").
                    format!(":{}", if k.tid != 0 { k.tid as i32 } else { k.pid as i32 })
                } else {
                    l.timeline.comm_name(k.comm).to_string()
                }),
                SortKey::Pid => KeyVal::Num(k.pid as u64),
                SortKey::Tid => KeyVal::Num(k.tid as u64),
                SortKey::Cpu => KeyVal::Num(k.cpu as u64),
                SortKey::Event => KeyVal::Text(l.events.list[k.event as usize].name.clone()),
                SortKey::Mem => KeyVal::Text(DataSrc(k.data_src).lvl_text()),
                SortKey::Snoop => KeyVal::Text(DataSrc(k.data_src).snoop_text()),
                SortKey::Tlb => KeyVal::Text(DataSrc(k.data_src).tlb_text()),
                SortKey::Lock => KeyVal::Text(DataSrc(k.data_src).lock_text().to_string()),
                SortKey::Blocked => KeyVal::Text(DataSrc(k.data_src).blk_text().trim_start().to_string()),
                SortKey::Weight => KeyVal::Num(k.weight),
                SortKey::Flow => KeyVal::Text(l.flows.text(k.flow)),
                SortKey::FlowLocal => KeyVal::Text(l.flows.get(k.flow).map_or_else(|| "-".into(), |f| f.local_text())),
                SortKey::FlowRemote => KeyVal::Text(l.flows.get(k.flow).map_or_else(|| "-".into(), |f| f.remote_text())),
                SortKey::FlowPort => KeyVal::Num(l.flows.get(k.flow).map_or(0, |f| f.local_port as u64)),
                SortKey::Netns => KeyVal::Num(l.flows.get(k.flow).map_or(0, |f| f.netns as u64)),
                SortKey::FlowRule => KeyVal::Text({
                    let base = match k.flow_rule & 3 {
                        1 => "socket",
                        2 => "packet",
                        _ => "none",
                    };
                    if k.flow_rule & 4 != 0 {
                        format!("{base},multiplexed")
                    } else {
                        base.to_string()
                    }
                }),
                // Branch keys are rejected outside --branch by the CLI.
                _ => KeyVal::Text(String::new()),
            })
            .collect()
    };
    // The full key in --sort order from its two parts.
    let join = |ctx: &[KeyVal], frame: &[KeyVal]| -> Vec<KeyVal> {
        let (mut c, mut f) = (ctx.iter(), frame.iter());
        cfg.sort.iter().filter_map(|sk| if sk.is_frame_key() { f.next() } else { c.next() }.cloned()).collect()
    };
    // --dsos / --symbols filter rows by their own object and symbol (perf's
    // hists__filter_by_dso/symbol); kept rows' self periods make the
    // relative total.
    let row_ok = |r: &Resolved| -> bool {
        let dso_ok = cfg.dsos.is_empty() || cfg.dsos.iter().any(|d| d == &r.dso || r.dso.rsplit('/').next() == Some(d.as_str()));
        let sym_ok = cfg.symbols.is_empty() || r.sym.as_ref().is_ok_and(|n| cfg.symbols.iter().any(|s| s == n));
        dso_ok && sym_ok
    };

    // Per distinct address: its frame id, its inlined functions' frame ids
    // (outermost first; an inlined function's key is the frame's with the
    // symbol replaced), whether filters keep it.
    let mut frames_i: Interner<Vec<KeyVal>> = Interner::default();
    // Addresses in one symbol share a frame id: the key is built once per
    // symbol (per address only when srcline is a key).
    let per_address = cfg.sort.contains(&SortKey::Srcline);
    let mut by_sym: HashMap<(&str, bool, Option<u64>, u64, &str), u32> = HashMap::default();
    let fid: Vec<u32> = (0..resolved.len())
        .map(|ri| {
            let r = &resolved[ri];
            if per_address {
                return frames_i.id(frame_parts(r, ri));
            }
            let ident = match &r.sym {
                Ok(n) => (r.dso.as_str(), r.kernel, r.sym_start, 0, n.as_str()),
                Err(_) => (r.dso.as_str(), r.kernel, None, r.rel, ""),
            };
            *by_sym.entry(ident).or_insert_with(|| frames_i.id(frame_parts(r, ri)))
        })
        .collect();
    crate::output::timing::mark("frame ids");
    let inl: Vec<Vec<u32>> = if cfg.inline {
        (0..resolved.len())
            .map(|ri| {
                inlined(ri)
                    .into_iter()
                    .map(|name| {
                        let mut r2 = resolved[ri].clone();
                        r2.sym = Ok(format!("{name} (inlined)"));
                        r2.sym_start = None;
                        frames_i.id(frame_parts(&r2, ri))
                    })
                    .collect()
            })
            .collect()
    } else {
        Vec::new()
    };
    let ok: Vec<bool> = resolved.iter().map(row_ok).collect();
    // A call-chain frame's id: the same row as the address's own, except
    // for user code without a symbol, which perf keys by the raw address in
    // chains but by the file offset in the sample's own entry (so its self
    // and children shares are two rows).
    let cfid: Vec<u32> = (0..resolved.len())
        .map(|ri| {
            let r = &resolved[ri];
            if r.sym.is_ok() || r.kernel || r.dso == "[unknown]" {
                return fid[ri];
            }
            let mut r2 = r.clone();
            r2.rel = addrs[ri].3;
            frames_i.id(frame_parts(&r2, ri))
        })
        .collect();

    crate::output::timing::mark("call-chain frame ids");
    // Per distinct raw key: its context id, its own address, its chain's
    // addresses (callee first, cut to --max-stack).
    let entries: Vec<(&RawKey, &Acc)> = partial.map.iter().collect();
    let mut ctx_i: Interner<Vec<KeyVal>> = Interner::default();
    let mut ctx_cache: HashMap<CtxRaw, u32> = HashMap::default();
    let ctx: Vec<u32> = entries
        .iter()
        .map(|(k, _)| {
            let raw = (k.comm, k.pid, k.tid, k.cpu, k.data_src, k.weight, k.flow, k.flow_rule, k.event);
            *ctx_cache.entry(raw).or_insert_with(|| ctx_i.id(ctx_parts(k)))
        })
        .collect();
    let own: Vec<usize> = entries.iter().map(|(k, _)| index[&(k.pid, k.epoch, k.kernel, k.ip)]).collect();
    let chains: Vec<Option<Vec<u32>>> = entries
        .par_iter()
        .map(|(k, _)| {
            (k.chain != NO_CHAIN).then(|| partial.chains.get(k.chain)).map(|chain| {
                let mut v: Vec<u32> = frames(chain, k.kernel).map(|(kernel, ip)| index[&(k.pid, k.epoch, kernel, ip)] as u32).collect();
                if let Some(m) = cfg.max_stack {
                    v.truncate(m.max(1));
                }
                v
            })
        })
        .collect();

    crate::output::timing::mark("contexts and chains");
    // Self and children periods per row id, in parallel over raw keys (sums
    // commute: the result does not depend on the split).
    let acc = (0..entries.len())
        .into_par_iter()
        .fold(RowAccum::default, |mut acc, i| {
            let (k, a) = entries[i];
            let ri = own[i];
            let r = &resolved[ri];
            if let Err(why) = &r.sym {
                *acc.unresolved.entry(why.as_str()).or_default() += a.samples;
            }
            if acc.kept.len() < nev {
                acc.kept.resize(nev, (0, 0));
            }
            if ok[ri] {
                let e = acc.rows.entry((k.event, ctx[i], fid[ri])).or_default();
                e.samples += a.samples;
                e.period = e.period.saturating_add(a.period);
                let t = &mut acc.kept[k.event as usize];
                t.0 += a.samples;
                t.1 = t.1.saturating_add(a.period);
            }
            if let (true, Some(chain)) = (children, &chains[i]) {
                // Each row on the chain once.
                let mut seen = std::mem::take(&mut acc.seen);
                seen.clear();
                if ok[ri] {
                    seen.push(fid[ri]);
                }
                for &fi in chain.iter().filter(|&&fi| ok[fi as usize]) {
                    seen.push(cfid[fi as usize]);
                    if cfg.inline {
                        seen.extend_from_slice(&inl[fi as usize]);
                    }
                }
                seen.sort_unstable();
                seen.dedup();
                for &f in &seen {
                    let e = acc.rows.entry((k.event, ctx[i], f)).or_default();
                    e.children = e.children.saturating_add(a.period);
                }
                acc.seen = seen;
            }
            acc
        })
        .reduce(RowAccum::default, RowAccum::merge);
    crate::output::timing::mark("row sums");
    let unresolved: BTreeMap<String, u64> = acc.unresolved.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let mut kept_totals = acc.kept;
    kept_totals.resize(nev, (0, 0));

    // Collapsed stacks: one string per distinct raw key, summed by text.
    let folded: BTreeMap<String, u64> = if cfg.folded {
        let frame_name = |r: &Resolved| match &r.sym {
            Ok(n) => n.clone(),
            Err(_) => format!("{}+0x{:x}", r.dso, r.rel),
        };
        let stacks: Vec<(String, u64)> = (0..entries.len())
            .into_par_iter()
            .map(|i| {
                let (k, a) = entries[i];
                let comm = if k.comm == u32::MAX { format!(":{}", k.pid as i32) } else { l.timeline.comm_name(k.comm).to_string() };
                let mut stack = vec![comm];
                let one = [own[i] as u32];
                let chain: &[u32] = chains[i].as_deref().unwrap_or(&one);
                for &fi in chain.iter().rev() {
                    stack.push(frame_name(&resolved[fi as usize]));
                    stack.extend(inlined(fi as usize).into_iter().map(|n| format!("{n}_[i]")));
                }
                (stack.join(";"), a.samples)
            })
            .collect();
        let mut m = BTreeMap::new();
        for (s, n) in stacks {
            *m.entry(s).or_default() += n;
        }
        m
    } else {
        BTreeMap::new()
    };

    let totals: Vec<EventTotal> = l
        .events
        .list
        .iter()
        .zip(partial.totals.iter().chain(std::iter::repeat(&(0, 0))))
        .map(|(e, t)| EventTotal { name: e.name.clone(), samples: t.0, period: t.1 })
        .collect();
    let filtered = filter.is_active() || !cfg.dsos.is_empty() || !cfg.symbols.is_empty();
    let pct = |ev: u16, v: u64| {
        let t = if cfg.relative && filtered {
            kept_totals.get(ev as usize).map_or(0, |t| t.1)
        } else {
            totals.get(ev as usize).map_or(0, |t| t.period)
        };
        if t == 0 {
            0.0
        } else {
            v as f64 * 100.0 / t as f64
        }
    };
    // Rows in display order, sorted as ids with integer ranks for their key
    // parts (comparing the keys' strings, and moving whole rows, was most of
    // the sort's time with tens of thousands of rows).
    let ctx_rank = position_ranks(&ctx_i.items);
    let frame_rank = position_ranks(&frames_i.items);
    // Per --sort key: which part it is in (frame or context) and where.
    let positions: Vec<(bool, usize)> = {
        let (mut ci, mut fi) = (0, 0);
        cfg.sort
            .iter()
            .map(|sk| {
                let at = if sk.is_frame_key() { (true, fi) } else { (false, ci) };
                *if sk.is_frame_key() { &mut fi } else { &mut ci } += 1;
                at
            })
            .collect()
    };
    let key_cmp = |a: &RowId, b: &RowId| -> std::cmp::Ordering {
        for &(frame, j) in &positions {
            let o = if frame {
                frame_rank[j][a.2 as usize].cmp(&frame_rank[j][b.2 as usize])
            } else {
                ctx_rank[j][a.1 as usize].cmp(&ctx_rank[j][b.1 as usize])
            };
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    };
    let mut ids: Vec<(RowId, RowAcc)> = acc.rows.into_iter().collect();
    // With children, perf orders by children first (callers above callees).
    // Ties end at the key, and distinct ids have distinct keys (both parts
    // are interned by value): a total order.
    ids.sort_unstable_by(|(ia, a), (ib, b)| {
        ia.0.cmp(&ib.0)
            .then(if children { b.children.cmp(&a.children) } else { std::cmp::Ordering::Equal })
            .then(b.period.cmp(&a.period))
            .then(b.samples.cmp(&a.samples))
            .then_with(|| key_cmp(ia, ib))
            .then(ia.cmp(ib))
    });
    crate::output::timing::mark("rows sorted");
    let mut rows: Vec<(RowId, Row)> = ids
        .into_iter()
        .map(|((event, c, f), a)| {
            let row = Row {
                event,
                keys: join(&ctx_i.items[c as usize], &frames_i.items[f as usize]),
                samples: a.samples,
                period: a.period,
                percent: pct(event, a.period),
                children_period: children.then_some(a.children),
                children_percent: children.then(|| pct(event, a.children)),
                branch: None,
                graph: None,
            };
            ((event, c, f), row)
        })
        .collect();
    let before = rows.len();
    limit_rows_by(&mut rows, cfg, |(_, r)| r);
    let hidden = before - rows.len();
    let (row_ids, rows): (Vec<RowId>, Vec<Row>) = rows.into_iter().unzip();
    crate::output::timing::mark("rows built");
    let mut report = Report::assemble(l, cfg, totals, rows, partial.stats, children, folded.into_iter().collect(), unresolved);
    report.rows_hidden += hidden;
    crate::output::timing::mark("assembled");
    if keep_graphs {
        use super::callgraph::{CallTree, GraphOrder};
        let order = cfg.callgraph.order.unwrap_or(if children { GraphOrder::Caller } else { GraphOrder::Callee });
        // A row whose chains sum below the absolute threshold prints no
        // graph at all (every branch is under it), so its tree is not built:
        // most rows of a system-wide capture are such, and building their
        // trees was most of the time and memory of a report with children.
        // (The renderer's total is the row's event's period.)
        let printed = |r: usize, sum: u64| match cfg.callgraph.mode {
            super::callgraph::GraphMode::Fractal => true,
            _ => {
                let total = report.events.get(report.rows[r].event as usize).map_or(0, |e| e.period);
                sum as f64 >= total as f64 * cfg.callgraph.threshold / 100.0
            }
        };
        // A row's chains sum to at most its children (or self) period.
        let shown: HashMap<RowId, usize> = row_ids
            .iter()
            .enumerate()
            .filter(|&(i, _)| {
                let row = &report.rows[i];
                printed(i, row.period.max(row.children_period.unwrap_or(0)))
            })
            .map(|(i, id)| (*id, i))
            .collect();
        let mut trees: Vec<Option<CallTree>> = vec![None; report.rows.len()];
        // Each resolved address's frame name, interned once (perf names an
        // unresolved frame by its address).
        let mut names_i: Interner<String> = Interner::default();
        let name_id: Vec<u32> = resolved
            .iter()
            .zip(&addrs)
            .map(|(r, a)| {
                names_i.id(match &r.sym {
                    Ok(n) => n.clone(),
                    Err(_) => unresolved_frame_name(a.3),
                })
            })
            .collect();
        // Each raw key's frames in display order, as names and row ids.
        let disp: Vec<Option<(Vec<u32>, Vec<u32>)>> = (0..entries.len())
            .into_par_iter()
            .map(|i| {
                let chain = chains[i].as_ref()?;
                // Frames callee first.
                let one = [own[i] as u32];
                let fidx: &[u32] = if chain.is_empty() { &one } else { chain };
                Some(match order {
                    GraphOrder::Callee => fidx.iter().map(|&x| (name_id[x as usize], cfid[x as usize])).unzip(),
                    GraphOrder::Caller => fidx.iter().rev().map(|&x| (name_id[x as usize], cfid[x as usize])).unzip(),
                })
            })
            .collect();
        // (shown row, raw key, first frame): the row's own chain from the
        // start; with children, each other row on the chain, once, from its
        // first frame on.
        let tasks: Vec<Vec<(u32, u32, u32)>> = (0..entries.len())
            .into_par_iter()
            .map(|i| {
                let mut out = Vec::new();
                let Some((_, fids)) = &disp[i] else { return out };
                let k = entries[i].0;
                let self_f = fid[own[i]];
                if let Some(&r) = shown.get(&(k.event, ctx[i], self_f)) {
                    out.push((r as u32, i as u32, 0));
                }
                if children {
                    let mut firsts: Vec<(u32, u32)> = fids.iter().enumerate().map(|(p, &f)| (f, p as u32)).collect();
                    firsts.sort_unstable();
                    firsts.dedup_by_key(|x| x.0);
                    for (f, p) in firsts {
                        if f == self_f {
                            continue;
                        }
                        if let Some(&r) = shown.get(&(k.event, ctx[i], f)) {
                            out.push((r as u32, i as u32, p));
                        }
                    }
                }
                out
            })
            .collect();
        let mut tasks: Vec<(u32, u32, u32)> = tasks.into_iter().flatten().collect();
        tasks.sort_unstable();
        // The exact sum, for rows the bound above let through.
        // Each row's tree on its own, rows in parallel; adds in a fixed
        // order, so trees do not depend on the thread count.
        let built: Vec<(u32, CallTree)> = tasks
            .par_chunk_by(|a, b| a.0 == b.0)
            .filter(|chunk| {
                let sum = chunk.iter().fold(0u64, |s, &(_, i, _)| s.saturating_add(entries[i as usize].1.period));
                printed(chunk[0].0 as usize, sum)
            })
            .map(|chunk| {
                let mut t = CallTree::new();
                for &(_, i, from) in chunk {
                    if let Some((names, _)) = &disp[i as usize] {
                        t.add_ids(names[from as usize..].iter().copied(), entries[i as usize].1.period);
                    }
                }
                t.set_names(&names_i.items);
                (chunk[0].0, t)
            })
            .collect();
        for (r, t) in built {
            trees[r as usize] = Some(t);
        }
        for (row, t) in report.rows.iter_mut().zip(trees) {
            row.graph = t;
        }
    }
    crate::output::timing::mark("graphs");
    Ok(report)
}

impl Report {
    /// The parts every report view shares: --percent-limit/--top applied to
    /// rows already in display order, decode counters with the sideband's,
    /// and the trace-level facts.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        l: &Loaded,
        cfg: &ReportConfig,
        events: Vec<EventTotal>,
        mut rows: Vec<Row>,
        mut decode: DecodeStats,
        has_children: bool,
        folded: Vec<(String, u64)>,
        unresolved: BTreeMap<String, u64>,
    ) -> Report {
        let before = rows.len();
        limit_rows(&mut rows, cfg);
        decode += l.sideband_stats.clone();
        let notes = symbol_notes(l, &unresolved);
        Report {
            notes,
            sort: cfg.sort.clone(),
            total_samples: events.iter().map(|t| t.samples).sum(),
            events,
            lost_samples: l.lost_records,
            budget_dropped: ["dropped_by_budget", "dropped_by_min_gap"]
                .iter()
                .filter_map(|k| l.flows.counters.get(*k).filter(|&&n| n > 0).map(|&n| (k.trim_start_matches("dropped_by_").to_string(), n)))
                .collect(),
            host: super::agent::host_summary(&l.host),
            has_children,
            rows_hidden: before - rows.len(),
            rows,
            folded,
            decode,
            unresolved,
            dso_problems: l.resolver.problems(),
            software_only: l.trace.meta.software_only,
            clean_close: l.trace.recovery.clean_close,
            callgraph: cfg.callgraph,
            graph_skip_first: cfg.sort_starts_with_sym,
            show_samples: cfg.show_samples,
            columns: cfg.columns,
        }
    }
}

/// Apply --percent-limit (self or children share) and --top N (per event)
/// to rows already in display order.
fn limit_rows(rows: &mut Vec<Row>, cfg: &ReportConfig) {
    limit_rows_by(rows, cfg, |r| r)
}

fn limit_rows_by<T>(rows: &mut Vec<T>, cfg: &ReportConfig, row: impl Fn(&T) -> &Row) {
    if cfg.percent_limit > 0.0 {
        rows.retain(|t| {
            let r = row(t);
            r.percent >= cfg.percent_limit || r.children_percent.is_some_and(|c| c >= cfg.percent_limit)
        });
    }
    if let Some(n) = cfg.top {
        let mut count: HashMap<u16, usize> = HashMap::default();
        rows.retain(|t| {
            let c = count.entry(row(t).event).or_default();
            *c += 1;
            *c <= n
        });
    }
}

/// The address frames of a raw callchain (see `perf::record::frames_of`).
pub fn frames(chain: &[u64], sample_kernel: bool) -> impl Iterator<Item = (bool, u64)> + '_ {
    frames_of(chain.iter().copied(), sample_kernel)
}

impl Report {
    pub fn unresolved_total(&self) -> u64 {
        self.unresolved.values().sum()
    }
}
