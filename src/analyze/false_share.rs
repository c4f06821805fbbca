//! `msen false-share`: cache-line contention, the `perf c2c report` job, by
//! perf's rules (../shared/C2C.md): every memory sample is classified, grouped
//! into cache lines by data mapping (and pid for private anonymous memory),
//! lines with HITM or peer hits are "shared", shown by the display metric
//! above 0.1% of all shared lines' total, with offset rows under each.
//! Beyond perf: the data object of each line, and a plain verdict (false
//! sharing when different offsets are written by different threads).

use super::c2c::{C2cStats, Class};
use super::datasrc::DataSrc;
use super::loaded::Loaded;
use crate::perf::attr::sample;
use crate::perf::record::misc;
use crate::trace::TraceError;
use rayon::prelude::*;
use rustc_hash::FxHashMap as HashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    Tot,
    Rmt,
    Lcl,
    Peer,
}

impl Display {
    pub fn metric(self, s: &C2cStats) -> u64 {
        match self {
            Display::Tot => s.tot_hitm,
            Display::Rmt => s.rmt_hitm,
            Display::Lcl => s.lcl_hitm,
            Display::Peer => s.tot_peer,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Display::Tot => "Total HITMs",
            Display::Rmt => "Remote HITMs",
            Display::Lcl => "Local HITMs",
            Display::Peer => "Total peer accesses",
        }
    }
}

#[derive(Debug, Clone)]
pub struct FalseShareConfig {
    pub display: Display,
    pub show_all: bool,
    /// Cache-line size override (default: the trace's recorded size).
    pub line_size: Option<u32>,
}

/// A sample's class, line and line-relative address.
pub(crate) type LineHit = (Class, LineKey, u64);

/// Identity of a cache line (C2C.md section 3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct LineKey {
    pub kernel: bool,
    /// Data DSO (None: no mapping).
    pub dso: Option<u32>,
    /// pid for private anonymous user memory, else None.
    pub pid: Option<u32>,
    /// Map-relative address rounded down to the line.
    pub line: u64,
}

#[derive(Debug, Clone, Default)]
struct Sums {
    /// Latency sums and counts per bucket: rmt_hitm, lcl_hitm, rmt_peer, lcl_peer, load.
    lat: [(u64, u64); 5],
}

#[derive(Debug, Clone, Default)]
struct OffsetAcc {
    stats: C2cStats,
    sums: Sums,
    pids: BTreeSet<u32>,
    tids: BTreeSet<u32>,
    cpus: BTreeSet<u32>,
    /// Threads that stored to this offset.
    writers: BTreeSet<u32>,
}

/// A line's physical addresses, for PA cnt (changes of address between
/// consecutive samples in time order) and nodes, in memory bounded by the
/// blocks: each block's samples of the line are sorted and summarized when
/// the block ends. Summaries of stretches that do not overlap in time join
/// exactly; a line whose stretches overlap (blocks out of time order) is
/// summarized again from its samples in pass 3.
#[derive(Debug, Clone, Default)]
struct PhysSeen {
    /// (time, address) of this block's samples, until `seal`.
    block: Vec<(u64, u64)>,
    /// (first time, last time, summary) per sealed stretch: usually one
    /// (a line sampled in one block), kept inline for the millions of lines
    /// `--show-all` details.
    stretches: smallvec::SmallVec<[(u64, u64, PhysTrail); 1]>,
}

impl PhysSeen {
    fn seal(&mut self, node: impl Fn(u64) -> Option<u32>) {
        if self.block.is_empty() {
            return;
        }
        let (lo, hi) = self.block.iter().fold((u64::MAX, 0), |(lo, hi), &(t, _)| (lo.min(t), hi.max(t)));
        let trail = PhysTrail::of(std::mem::take(&mut self.block), node);
        self.stretches.push((lo, hi, trail));
    }
    /// The whole line's summary, or None when stretches overlap in time.
    fn joined(mut self) -> Option<PhysTrail> {
        self.stretches.sort_unstable_by_key(|&(lo, hi, _)| (lo, hi));
        let mut it = self.stretches.into_iter();
        let Some((_, mut end, mut acc)) = it.next() else { return Some(PhysTrail::default()) };
        for (lo, hi, t) in it {
            // Equal times sort by address: a tie across stretches is an overlap.
            if lo <= end {
                return None;
            }
            acc.then(t);
            end = hi;
        }
        Some(acc)
    }
}

/// A stretch of a line's samples in time order, summarized: its first and
/// last physical address, the changes within it (the first counted as a
/// change from 0, as perf counts it) and the addresses' nodes.
#[derive(Debug, Clone, Default)]
struct PhysTrail {
    first: u64,
    last: u64,
    changes: u64,
    nodes: super::numa::NodeSet,
}

impl PhysTrail {
    /// The summary of (time, address) samples, sorted here.
    fn of(mut phys: Vec<(u64, u64)>, node: impl Fn(u64) -> Option<u32>) -> PhysTrail {
        phys.sort_unstable();
        let mut t = PhysTrail { first: phys.first().map_or(0, |p| p.1), ..Default::default() };
        for &(_, pa) in &phys {
            t.changes += (t.last != pa) as u64;
            t.last = pa;
        }
        for n in phys.iter().filter_map(|&(_, pa)| node(pa)) {
            t.nodes.insert(n);
        }
        t
    }
    /// Append a later stretch: its first change is counted from this one's
    /// last address rather than from 0.
    fn then(&mut self, later: PhysTrail) {
        // later.changes counted its first sample as a change from 0.
        self.changes = self.changes + later.changes + (later.first != self.last) as u64 - (later.first != 0) as u64;
        self.last = later.last;
        self.nodes.union(&later.nodes);
    }
}

#[derive(Debug, Clone, Default)]
struct LineAcc {
    stats: C2cStats,
    /// A virtual address in the line as sampled (perf prints this rounded).
    vaddr: u64,
    /// The physical addresses sampled in the line, for PA cnt and nodes.
    phys: PhysSeen,
    nodes: BTreeMap<u32, C2cStats>,
    offsets: BTreeMap<(u64, u64), OffsetAcc>,
    /// Records by the flow the CPU was serving (0: none), with flow context.
    flows: BTreeMap<u64, u64>,
}

#[derive(Debug, Clone)]
pub struct OffsetRow {
    pub offset: u64,
    pub iaddr: u64,
    pub symbol: String,
    pub dso: String,
    pub stats: C2cStats,
    pub pids: Vec<u32>,
    pub tids: Vec<u32>,
    pub cpus: Vec<u32>,
    /// Mean latency: rmt_hitm, lcl_hitm, rmt_peer, lcl_peer, load (None: no sample).
    pub mean_lat: [Option<f64>; 5],
    pub writer_tids: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct LineRow {
    pub address: u64,
    pub pid: Option<u32>,
    pub dso: String,
    pub kernel: bool,
    pub nodes: Vec<u32>,
    pub pa_cnt: u64,
    pub stats: C2cStats,
    pub node_stats: BTreeMap<u32, C2cStats>,
    pub offsets: Vec<OffsetRow>,
    pub data_symbol: Option<String>,
    pub verdict: String,
    /// The flows whose samples touched the line (text, records), most first;
    /// empty without flow context.
    pub flows: Vec<(String, u64)>,
}

#[derive(Debug, Clone)]
pub struct FalseShare {
    pub stats: C2cStats,
    pub shared_stats: C2cStats,
    pub shared_lines: usize,
    pub lines: Vec<LineRow>,
    pub line_size: u32,
    pub display: Display,
    pub events: Vec<String>,
    pub software_only: bool,
}

/// Node of a physical address from the recorded memory topology.
fn phys_node(l: &Loaded, pa: u64) -> Option<u32> {
    l.trace.meta.memory_nodes.iter().find(|r| pa >= r.start && pa < r.end).map(|r| r.node)
}

/// Where one sample falls: its counters, and (unless it is not a memory
/// access perf counts) its class, line and line-relative address. `None`
/// for samples of events without a data source.
pub(crate) fn classify_sample(
    l: &Loaded,
    mem_events: &[bool],
    line_size: u64,
    ev: u16,
    cpumode: u16,
    s: &crate::perf::record::Sample<'_>,
) -> Option<(C2cStats, Option<LineHit>)> {
    if !mem_events.get(ev as usize).copied().unwrap_or(false) {
        return None;
    }
    let d = DataSrc(s.data_src.unwrap_or(0));
    let daddr = s.addr.unwrap_or(0);
    let pid = s.pid.unwrap_or(u32::MAX);
    let epoch = l.timeline.epoch_at(pid, s.time.unwrap_or(0));
    let kernel = matches!(cpumode, misc::KERNEL | misc::GUEST_KERNEL);
    // As perf: both addresses resolve in the maps of the sample's
    // cpumode (a user address sampled in kernel mode has no map).
    let dmap = if daddr == 0 || kernel { None } else { l.timeline.find_map(pid, epoch, daddr) };
    let kernel_data = kernel && l.resolver.is_kernel_addr(daddr);
    let imap_ok = match s.ip {
        Some(ip) if kernel => l.resolver.is_kernel_addr(ip),
        Some(ip) => l.timeline.find_map(pid, epoch, ip).is_some(),
        None => false,
    };
    let mapped = (dmap.is_some() || kernel_data) && imap_ok;
    let mut one = C2cStats::default();
    let class = one.add_sample(d, daddr, mapped);
    if matches!(class, Class::Other) {
        return Some((one, None));
    }
    // Line identity: data mapping, pid for private anonymous memory.
    let (dso, rel, private_anon) = match dmap {
        Some(h) => {
            let anon = l.timeline.dsos.get(h.dso as usize).is_some_and(|x| x.is_anonymous() || x.path.starts_with('['));
            (Some(h.dso), h.file_offset, anon)
        }
        None => (None, daddr, false),
    };
    let key = LineKey {
        kernel: kernel_data,
        dso,
        pid: if private_anon && !kernel_data { Some(pid) } else { None },
        line: rel / line_size * line_size,
    };
    Some((one, Some((class, key, rel))))
}

pub fn false_share(l: &Loaded, cfg: &FalseShareConfig) -> Result<FalseShare, TraceError> {
    let line_size = cfg.line_size.unwrap_or(l.trace.meta.cache_line_size).max(1) as u64;
    let cpu_node: HashMap<u32, u32> = l.trace.meta.cpu_nodes.iter().map(|c| (c.cpu, c.node)).collect();
    let mem_events: Vec<bool> = l.events.list.iter().map(|e| e.attr.sample_type & sample::DATA_SRC != 0).collect();
    let blocks = l.sample_blocks();
    let classify = |ev: u16, cpumode: u16, s: &crate::perf::record::Sample<'_>| classify_sample(l, &mem_events, line_size, ev, cpumode, s);

    // A sample's detail in its line: offsets, nodes, threads, physical
    // addresses, flows, latencies.
    let detail = |la: &mut LineAcc,
                  one: C2cStats,
                  class: Class,
                  rel: u64,
                  s: &crate::perf::record::Sample<'_>,
                  flow: Option<super::flows::SampleFlow>| {
        let pid = s.pid.unwrap_or(u32::MAX);
        la.stats += one;
        if l.flows.enabled {
            *la.flows.entry(flow.map_or(0, |f| f.id)).or_default() += 1;
        }
        la.vaddr = s.addr.unwrap_or(0);
        if let Some(pa) = s.phys_addr {
            la.phys.block.push((s.time.unwrap_or(0), pa));
        }
        let node = s.cpu.and_then(|c| cpu_node.get(&c).copied()).unwrap_or(0);
        *la.nodes.entry(node).or_default() += one;
        let oa = la.offsets.entry((rel % line_size, s.ip.unwrap_or(0))).or_default();
        oa.stats += one;
        oa.pids.insert(pid);
        if let Some(t) = s.tid {
            oa.tids.insert(t);
            if matches!(class, Class::Store) {
                oa.writers.insert(t);
            }
        }
        if let Some(c) = s.cpu {
            oa.cpus.insert(c);
        }
        if let Class::Load { rmt_hitm, lcl_hitm, rmt_peer, lcl_peer } = class {
            let bucket = if rmt_hitm {
                0
            } else if lcl_hitm {
                1
            } else if rmt_peer {
                2
            } else if lcl_peer {
                3
            } else {
                4
            };
            let w = s.weight.unwrap_or(0);
            oa.sums.lat[bucket].0 = oa.sums.lat[bucket].0.saturating_add(w);
            oa.sums.lat[bucket].1 += 1;
        }
    };
    let merge_lines = |into: &mut HashMap<LineKey, LineAcc>, from: HashMap<LineKey, LineAcc>| {
        for (k, v) in from {
            let e = into.entry(k).or_default();
            e.stats += v.stats;
            e.vaddr = if e.vaddr == 0 { v.vaddr } else { e.vaddr.min(v.vaddr) };
            e.phys.stretches.extend(v.phys.stretches);
            for (n, s) in v.nodes {
                *e.nodes.entry(n).or_default() += s;
            }
            for (f, n) in v.flows {
                *e.flows.entry(f).or_default() += n;
            }
            for (ok, ov) in v.offsets {
                let o = e.offsets.entry(ok).or_default();
                o.stats += ov.stats;
                for i in 0..5 {
                    o.sums.lat[i].0 = o.sums.lat[i].0.saturating_add(ov.sums.lat[i].0);
                    o.sums.lat[i].1 += ov.sums.lat[i].1;
                }
                o.pids.extend(ov.pids);
                o.tids.extend(ov.tids);
                o.cpus.extend(ov.cpus);
                o.writers.extend(ov.writers);
            }
        }
    };

    // Pass 1: the totals, and per line only the four counters that decide
    // whether it is shared and whether it is shown (a capture of a
    // streaming workload has millions of lines, almost none of them shown).
    // While the lines stay few (FULL_DETAIL_LINES), pass 1 also keeps their
    // full detail and pass 2 is not needed; past that, detail is dropped and
    // memory stays bounded by the compact counters.
    const FULL_DETAIL_LINES: usize = 65_536;
    const BLOCK_DETAIL_LINES: usize = 1_024;
    type Part1 = (C2cStats, HashMap<LineKey, [u64; 4]>, Option<HashMap<LineKey, LineAcc>>);
    // Each block's span of sample times with a physical address (pass 3's clusters).
    let spans: Vec<(AtomicU64, AtomicU64)> = blocks.iter().map(|_| (AtomicU64::new(u64::MAX), AtomicU64::new(0))).collect();
    let (stats, compact, full): Part1 = blocks
        .par_iter()
        .zip(&spans)
        .map(|(b, span)| -> Result<Part1, TraceError> {
            let (mut t_min, mut t_max) = (u64::MAX, 0);
            let mut total = C2cStats::default();
            let mut lines: HashMap<LineKey, [u64; 4]> = HashMap::default();
            let mut full: Option<HashMap<LineKey, LineAcc>> = Some(HashMap::default());
            let mut st = super::loaded::DecodeStats::default();
            l.for_each_sample_flow(b, &mut st, |ev, cpumode, s, flow| {
                let Some((one, hit)) = classify(ev, cpumode, s) else { return };
                total += one;
                if let Some((class, key, rel)) = hit {
                    if s.phys_addr.is_some() {
                        let t = s.time.unwrap_or(0);
                        (t_min, t_max) = (t_min.min(t), t_max.max(t));
                    }
                    if let Some(f) = full.as_mut() {
                        detail(f.entry(key.clone()).or_default(), one, class, rel, s, flow);
                        if f.len() > BLOCK_DETAIL_LINES {
                            full = None;
                        }
                    }
                    // Only a sample with a HITM or peer hit can make its line
                    // shared; without --show-all no other line is counted, so
                    // the millions of lines a streaming load touches once
                    // never enter the map.
                    if !cfg.show_all && !one.is_shared() {
                        return;
                    }
                    let c = lines.entry(key).or_default();
                    c[0] += one.lcl_hitm;
                    c[1] += one.rmt_hitm;
                    c[2] += one.lcl_peer;
                    c[3] += one.rmt_peer;
                }
            })?;
            span.0.store(t_min, Ordering::Relaxed);
            span.1.store(t_max, Ordering::Relaxed);
            for la in full.iter_mut().flat_map(|f| f.values_mut()) {
                la.phys.seal(|pa| phys_node(l, pa));
            }
            Ok((total, lines, full))
        })
        .try_reduce(
            || (C2cStats::default(), HashMap::default(), Some(HashMap::default())),
            |(mut ta, a, fa), (tb, b, fb)| {
                ta += tb;
                let (mut big, small) = if a.len() >= b.len() { (a, b) } else { (b, a) };
                for (k, v) in small {
                    let e = big.entry(k).or_default();
                    for i in 0..4 {
                        e[i] += v[i];
                    }
                }
                let full = match (fa, fb) {
                    (Some(mut x), Some(y)) => {
                        merge_lines(&mut x, y);
                        (x.len() <= FULL_DETAIL_LINES).then_some(x)
                    }
                    _ => None,
                };
                Ok((ta, big, full))
            },
        )?;
    crate::output::timing::mark("pass 1");
    let metric_of = |c: &[u64; 4]| match cfg.display {
        Display::Tot => c[0] + c[1],
        Display::Rmt => c[1],
        Display::Lcl => c[0],
        Display::Peer => c[2] + c[3],
    };
    let is_shared = |c: &[u64; 4]| c.iter().sum::<u64>() > 0;
    let shared_lines = compact.values().filter(|c| is_shared(c)).count();
    let total_metric: u64 = compact.values().filter(|c| is_shared(c)).map(metric_of).sum();
    // perf: a shared line is shown iff metric / total >= 0.1% (C2C.md section 4).
    let shown: rustc_hash::FxHashSet<LineKey> = compact
        .iter()
        .filter(|(_, c)| cfg.show_all || (is_shared(c) && total_metric > 0 && (metric_of(c) as f64) / (total_metric as f64) >= 0.001))
        .map(|(k, _)| k.clone())
        .collect();
    let shared: rustc_hash::FxHashSet<LineKey> = compact.into_iter().filter(|(_, c)| is_shared(c)).map(|(k, _)| k).collect();

    let (shared_stats, lines): (C2cStats, HashMap<LineKey, LineAcc>) = match full {
        Some(mut f) => {
            let shared_stats = f.iter().filter(|(k, _)| shared.contains(k)).fold(C2cStats::default(), |mut a, (_, la)| {
                a += la.stats;
                a
            });
            f.retain(|k, _| shown.contains(k));
            (shared_stats, f)
        }
        None => {
            // Pass 2: the shared lines' summed counters, and full detail (offsets,
            // nodes, threads, physical addresses, flows) only for the lines shown.
            type Part2 = (C2cStats, HashMap<LineKey, LineAcc>);
            let parts: Vec<Part2> = blocks
                .par_iter()
                .map(|b| -> Result<Part2, TraceError> {
                    let mut shared_part = C2cStats::default();
                    let mut lines: HashMap<LineKey, LineAcc> = HashMap::default();
                    let mut st = super::loaded::DecodeStats::default();
                    l.for_each_sample_flow(b, &mut st, |ev, cpumode, s, flow| {
                        let Some((one, Some((class, key, rel)))) = classify(ev, cpumode, s) else { return };
                        if shared.contains(&key) {
                            shared_part += one;
                        }
                        if !shown.contains(&key) {
                            return;
                        }
                        detail(lines.entry(key).or_default(), one, class, rel, s, flow);
                    })?;
                    for la in lines.values_mut() {
                        la.phys.seal(|pa| phys_node(l, pa));
                    }
                    Ok((shared_part, lines))
                })
                .collect::<Result<_, _>>()?;

            let mut shared_stats = C2cStats::default();
            let mut lines: HashMap<LineKey, LineAcc> = HashMap::default();
            for (t, ls) in parts {
                shared_stats += t;
                merge_lines(&mut lines, ls);
            }
            (shared_stats, lines)
        }
    };
    crate::output::timing::mark("pass 2");
    // Each line's physical-address summary; None where stretches overlap.
    let mut lines: BTreeMap<LineKey, (LineAcc, Option<PhysTrail>)> = lines
        .into_iter()
        .map(|(k, mut la)| {
            let joined = std::mem::take(&mut la.phys).joined();
            (k, (la, joined))
        })
        .collect();
    // Pass 3, only for lines whose stretches overlap in time: PA cnt needs
    // their samples' physical addresses in time order. Blocks whose time spans overlap form
    // a cluster; clusters are disjoint in time, so sorting each cluster's
    // samples and joining the clusters' summaries in time order is the
    // global sort, while memory holds one cluster's samples per worker.
    let moved: rustc_hash::FxHashSet<LineKey> = lines.iter().filter(|(_, (_, j))| j.is_none()).map(|(k, _)| k.clone()).collect();
    if !moved.is_empty() {
        let mut trails: HashMap<LineKey, PhysTrail> = HashMap::default();
        let mut order: Vec<(u64, u64, usize)> = spans
            .iter()
            .enumerate()
            .map(|(i, (a, b))| (a.load(Ordering::Relaxed), b.load(Ordering::Relaxed), i))
            .filter(|&(a, b, _)| a <= b)
            .collect();
        order.sort_unstable();
        let mut clusters: Vec<(u64, Vec<usize>)> = Vec::new();
        for (a, b, i) in order {
            match clusters.last_mut() {
                Some((end, members)) if a <= *end => {
                    *end = (*end).max(b);
                    members.push(i);
                }
                _ => clusters.push((b, vec![i])),
            }
        }
        crate::output::timing::mark(&format!("pass 3: {} blocks in {} clusters", blocks.len(), clusters.len()));
        let parts: Vec<HashMap<LineKey, PhysTrail>> = clusters
            .par_iter()
            .map(|(_, members)| -> Result<_, TraceError> {
                let mut samples: HashMap<LineKey, Vec<(u64, u64)>> = HashMap::default();
                let mut st = super::loaded::DecodeStats::default();
                for &bi in members {
                    l.for_each_sample_flow(&blocks[bi], &mut st, |ev, cpumode, s, _| {
                        let (Some(pa), Some((_, Some((_, key, _))))) = (s.phys_addr, classify(ev, cpumode, s)) else { return };
                        if moved.contains(&key) {
                            samples.entry(key).or_default().push((s.time.unwrap_or(0), pa));
                        }
                    })?;
                }
                Ok(samples.into_iter().map(|(k, v)| (k, PhysTrail::of(v, |pa| phys_node(l, pa)))).collect())
            })
            .collect::<Result<_, _>>()?;
        for part in parts {
            for (k, t) in part {
                match trails.entry(k) {
                    std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().then(t),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(t);
                    }
                }
            }
        }
        for (k, t) in trails {
            if let Some((_, j)) = lines.get_mut(&k) {
                *j = Some(t);
            }
        }
    }
    crate::output::timing::mark("pass 3 (lines whose page moved)");
    debug_assert_eq!(cfg.display.metric(&shared_stats), total_metric);
    let mut rows: Vec<LineRow> = Vec::new();
    for (k, (la, trail)) in lines {
        if !la.stats.is_shared() && !cfg.show_all {
            continue;
        }
        let m = cfg.display.metric(&la.stats);
        // perf: shown iff metric / total >= 0.1% (C2C.md section 4).
        if !cfg.show_all && (total_metric == 0 || (m as f64) / (total_metric as f64) < 0.001) {
            continue;
        }
        let trail = trail.unwrap_or_default();
        let (pa_cnt, nodes): (u64, Vec<u32>) = (trail.changes, trail.nodes.to_vec());
        let dso_name = k.dso.and_then(|d| l.timeline.dsos.get(d as usize)).map_or_else(|| "[X]".to_string(), |d| d.path.clone());
        let address = la.vaddr / line_size * line_size;
        let data_symbol = if k.kernel || k.dso.is_none() {
            None
        } else {
            let pid = first_pid(&la);
            let hit = l.timeline.find_map(pid, 0, address);
            let below = l.timeline.file_map_below(pid, 0, address);
            l.resolver.data_symbol_with_bss(hit.map(|h| (h, h.map_start, 0)), below, address).map(|d| d.text())
        };
        let offsets: Vec<OffsetRow> = la
            .offsets
            .iter()
            .filter(|(_, o)| o.stats.stores() > 0 || cfg.display.metric(&o.stats) > 0 || cfg.show_all)
            .map(|(&(off, ip), o)| {
                let pid = o.pids.iter().next().copied().unwrap_or(u32::MAX);
                let r = if l.resolver.is_kernel_addr(ip) {
                    l.resolver.kernel(ip)
                } else {
                    l.resolver.user(l.timeline.find_map(pid, 0, ip), ip)
                };
                OffsetRow {
                    offset: off,
                    iaddr: ip,
                    symbol: r.sym.clone().unwrap_or_else(|_| format!("0x{:x}", r.rel)),
                    dso: r.dso.clone(),
                    stats: o.stats,
                    pids: o.pids.iter().copied().collect(),
                    tids: o.tids.iter().copied().collect(),
                    cpus: o.cpus.iter().copied().collect(),
                    mean_lat: o.sums.lat.map(|(s, n)| (n > 0).then(|| s as f64 / n as f64)),
                    writer_tids: o.writers.iter().copied().collect(),
                }
            })
            .collect();
        // perf's order: offsets ascending, then the display metric descending.
        let mut offsets = offsets;
        offsets.sort_by(|a, b| {
            a.offset.cmp(&b.offset).then(cfg.display.metric(&b.stats).cmp(&cfg.display.metric(&a.stats))).then(a.iaddr.cmp(&b.iaddr))
        });
        let verdict = verdict(&offsets, la.stats.is_shared());
        let mut flows: Vec<(String, u64)> =
            la.flows.iter().map(|(&id, &n)| (if id == 0 { "[no flow]".to_string() } else { l.flows.text(id) }, n)).collect();
        flows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        rows.push(LineRow {
            address,
            pid: k.pid,
            dso: dso_name,
            kernel: k.kernel,
            nodes,
            pa_cnt,
            stats: la.stats,
            node_stats: la.nodes,
            offsets,
            data_symbol,
            verdict,
            flows,
        });
    }
    crate::output::timing::mark("rows");
    // Metric descending; ties by address then pid (perf leaves ties in tree order).
    rows.sort_by(|a, b| {
        cfg.display.metric(&b.stats).cmp(&cfg.display.metric(&a.stats)).then(a.address.cmp(&b.address)).then(a.pid.cmp(&b.pid))
    });
    Ok(FalseShare {
        stats,
        shared_stats,
        shared_lines,
        lines: rows,
        line_size: line_size as u32,
        display: cfg.display,
        events: l.events.list.iter().filter(|e| e.attr.sample_type & sample::DATA_SRC != 0).map(|e| e.name.clone()).collect(),
        software_only: l.trace.meta.software_only,
    })
}

fn first_pid(la: &LineAcc) -> u32 {
    la.offsets.values().flat_map(|o| o.pids.iter().copied()).min().unwrap_or(u32::MAX)
}

/// What a line's offsets say about its contention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    NotShared,
    /// Shared, but no store was sampled.
    ContendedReads,
    /// A written offset is used by several threads.
    TrueSharing,
    /// One thread sampled: the other side is another process or the kernel.
    OneThread,
    /// Threads contend on the line but each uses its own offsets, at least
    /// one of them written.
    FalseSharing {
        threads: usize,
        offsets: usize,
        written: usize,
    },
}

impl Verdict {
    /// From each offset's users and writers (thread ids), and whether the
    /// line is shared (HITM or peer hits).
    pub fn of(users: &BTreeMap<u64, BTreeSet<u32>>, writers: &BTreeMap<u64, BTreeSet<u32>>, shared: bool) -> Verdict {
        if !shared {
            return Verdict::NotShared;
        }
        let written: Vec<u64> = writers.iter().filter(|(_, w)| !w.is_empty()).map(|(o, _)| *o).collect();
        if written.is_empty() {
            return Verdict::ContendedReads;
        }
        if written.iter().any(|o| users.get(o).is_some_and(|u| u.len() > 1)) {
            return Verdict::TrueSharing;
        }
        let threads: BTreeSet<u32> = users.values().flatten().copied().collect();
        if threads.len() < 2 {
            return Verdict::OneThread;
        }
        Verdict::FalseSharing { threads: threads.len(), offsets: users.len(), written: written.len() }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Verdict::NotShared => f.write_str("not shared"),
            Verdict::ContendedReads => f.write_str("contended reads (no stores sampled)"),
            Verdict::TrueSharing => f.write_str("true sharing: several threads use the same written offset"),
            Verdict::OneThread => f.write_str("shared with another process or the kernel (one thread sampled)"),
            Verdict::FalseSharing { threads, offsets, written } if offsets == written => {
                write!(f, "false sharing: {threads} threads write {written} different offsets of one line")
            }
            Verdict::FalseSharing { threads, offsets, written } => {
                write!(f, "false sharing: {threads} threads use {offsets} different offsets of one line, {written} of them written")
            }
        }
    }
}

fn verdict(offsets: &[OffsetRow], shared: bool) -> String {
    let mut users: BTreeMap<u64, BTreeSet<u32>> = BTreeMap::new();
    let mut writers: BTreeMap<u64, BTreeSet<u32>> = BTreeMap::new();
    for o in offsets {
        users.entry(o.offset).or_default().extend(o.tids.iter().copied());
        writers.entry(o.offset).or_default().extend(o.writer_tids.iter().copied());
    }
    Verdict::of(&users, &writers, shared).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// PA cnt as perf computes it: every sample in time order, from 0.
    fn direct(mut v: Vec<(u64, u64)>) -> u64 {
        v.sort_unstable();
        let mut prev = 0;
        v.iter().map(|&(_, pa)| std::mem::replace(&mut prev, pa) != pa).filter(|&c| c).count() as u64
    }

    fn node(pa: u64) -> Option<u32> {
        Some((pa >> 32) as u32)
    }

    #[test]
    fn stretches_in_time_order_join_to_the_count_of_all_samples() {
        // A page that moves between nodes and back, sampled 40 times, with
        // one address repeated and an address 0 in the middle.
        let samples: Vec<(u64, u64)> = (0..40u64)
            .map(|t| {
                (
                    t * 10,
                    if t == 17 {
                        0
                    } else if t % 7 < 3 {
                        0x1_0000_1000
                    } else {
                        0x2_0000_1000
                    },
                )
            })
            .collect();
        let want = direct(samples.clone());
        for cut in [1usize, 3, 8, 13, 40] {
            let mut seen = PhysSeen::default();
            // Stretches arrive out of order, each shuffled inside.
            let chunks: Vec<Vec<(u64, u64)>> = samples.chunks(cut).map(|c| c.iter().rev().copied().collect()).collect();
            for c in chunks.into_iter().rev() {
                seen.block = c;
                seen.seal(node);
            }
            let t = seen.joined().unwrap();
            assert_eq!(t.changes, want, "stretches of {cut}");
            assert_eq!(t.nodes.to_vec(), vec![0, 1, 2]);
        }
    }

    #[test]
    fn overlapping_stretches_are_not_joined() {
        let mut seen = PhysSeen { block: vec![(10, 1), (30, 2)], ..Default::default() };
        seen.seal(node);
        seen.block = vec![(20, 2)];
        seen.seal(node);
        assert!(seen.joined().is_none());
        // A tie at one time is an overlap too: equal times sort by address.
        let mut seen = PhysSeen { block: vec![(10, 1), (20, 2)], ..Default::default() };
        seen.seal(node);
        seen.block = vec![(20, 1)];
        seen.seal(node);
        assert!(seen.joined().is_none());
    }
}
