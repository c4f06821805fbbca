//! Live rollups for the agent's metrics, over a sliding window: the busiest
//! (flow, function, event) triples, the falsely shared cache lines and the
//! remote-DRAM hot spots, each cut to the top `TOP` so the metrics'
//! cardinality stays bounded.
//!
//! The capture loop only counts: `Feed` adds each sample to the current
//! second's maps (by raw address, bounded), and once a second the agent
//! hands that second to a worker thread. The worker keeps the window,
//! resolves addresses to functions (ELF symbol tables, kallsyms) and
//! publishes the tops into `Control`, so symbol loading never holds up the
//! capture. Samples are classified by the offline analyses' own rules
//! (`C2cStats::add_sample`, `numa::memory_access`, the false-sharing
//! `Verdict`), so a live line and the same line in `msen false-share` agree.

use super::control::Control;
use crate::analyze::c2c::{C2cStats, Class};
use crate::analyze::datasrc::{lvl, DataSrc};
use crate::analyze::false_share::Verdict;
use crate::perf::record::{Sample, Sideband};
use crate::trace::meta::FlowInfo;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

/// Seconds in the sliding window.
pub const WINDOW_SECS: usize = 10;
/// Rows per family in the metrics.
pub const TOP: usize = 20;
/// Distinct keys per family in one second; samples past it are counted
/// in `overflow` instead (a streaming workload touches millions of lines).
const MAX_KEYS: usize = 1 << 15;
/// Threads remembered per offset of a line (enough for a verdict).
const MAX_THREADS: usize = 8;
/// Flow id of samples without a flow.
const NO_FLOW: u64 = 0;

/// Where the machine's CPUs and memory are (from the trace's metadata).
#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub cpu_node: HashMap<u32, u32>,
    /// (start, end, node) of physical memory.
    pub memory: Vec<(u64, u64, u32)>,
    pub line_size: u64,
}

impl Topology {
    pub fn of(meta: &crate::trace::meta::Metadata) -> Topology {
        Topology {
            cpu_node: meta.cpu_nodes.iter().map(|c| (c.cpu, c.node)).collect(),
            memory: meta.memory_nodes.iter().map(|r| (r.start, r.end, r.node)).collect(),
            line_size: u64::from(meta.cache_line_size.max(1)),
        }
    }

    fn mem_node(&self, pa: u64) -> Option<u32> {
        self.memory.iter().find(|r| pa >= r.0 && pa < r.1).map(|r| r.2)
    }
}

#[derive(Debug, Clone, Default)]
struct LineAcc {
    stats: C2cStats,
    /// Offset in the line -> (threads that used it, threads that stored).
    offsets: BTreeMap<u64, (BTreeSet<u32>, BTreeSet<u32>)>,
}

impl LineAcc {
    fn merge(&mut self, o: &LineAcc) {
        self.stats += o.stats;
        for (off, (u, w)) in &o.offsets {
            let e = self.offsets.entry(*off).or_default();
            e.0.extend(u.iter().take(MAX_THREADS));
            e.1.extend(w.iter().take(MAX_THREADS));
        }
    }

    fn verdict(&self) -> Verdict {
        let users = self.offsets.iter().map(|(o, (u, _))| (*o, u.clone())).collect();
        let writers = self.offsets.iter().map(|(o, (_, w))| (*o, w.clone())).collect();
        Verdict::of(&users, &writers, self.stats.is_shared())
    }
}

/// A mapping change seen in the sideband, kept in order with the samples'
/// second so the worker's address spaces follow the processes.
#[derive(Debug, Clone)]
enum MapEvent {
    Map { pid: u32, start: u64, len: u64, pgoff: u64, file: Arc<str> },
    Exec { pid: u32 },
    Fork { pid: u32, ppid: u32 },
    Exit { pid: u32 },
}

/// Function key: (flow, event, pid, ip, kernel).
type FnKey = (u64, u16, u32, u64, bool);

/// One second of samples, by raw keys.
#[derive(Debug, Default)]
pub struct Second {
    /// -> (samples, sum of periods).
    fns: HashMap<FnKey, (u64, u64)>,
    /// (pid, virtual address of the line) -> the line's accesses.
    lines: HashMap<(u32, u64), LineAcc>,
    /// (flow, memory node or None when only the data source says remote)
    /// -> remote DRAM loads.
    remote: HashMap<(u64, Option<u32>), u64>,
    /// (time, change): rings are drained one after another, so a process's
    /// exec and its new mappings can arrive out of order; the worker sorts.
    maps: Vec<(u64, MapEvent)>,
    pub overflow: u64,
}

impl Second {
    /// Flow ids this second's samples name.
    pub fn flow_ids(&self) -> BTreeSet<u64> {
        self.fns.keys().map(|k| k.0).chain(self.remote.keys().map(|k| k.0)).filter(|&f| f != NO_FLOW).collect()
    }
}

/// What the capture loop counts into (owned by the chunker).
#[derive(Debug)]
pub struct Feed {
    topo: Topology,
    /// Sample id -> index in `events`.
    event_of: HashMap<u64, u16>,
    /// Events that carry a data source (memory samples).
    mem_event: Vec<bool>,
    names: Vec<String>,
    /// A clock event's period after a rate change, which its samples do
    /// not carry (see `AgentEvent::period`).
    clock_period: Vec<Option<u64>>,
    second: Second,
    files: HashMap<String, Arc<str>>,
}

impl Feed {
    pub fn new(topo: Topology, events: &[crate::trace::meta::EventDesc]) -> Feed {
        Feed {
            topo,
            event_of: events.iter().enumerate().flat_map(|(i, e)| e.ids.iter().map(move |&id| (id, i as u16))).collect(),
            mem_event: events.iter().map(|e| e.attr.sample_type & crate::perf::attr::sample::DATA_SRC != 0).collect(),
            names: events.iter().map(|e| e.name.clone()).collect(),
            clock_period: vec![None; events.len()],
            second: Second::default(),
            files: HashMap::new(),
        }
    }

    /// `event`'s samples from now on stand for `period` ns each.
    pub fn set_clock_period(&mut self, event: &str, period: u64) {
        for (n, p) in self.names.iter().zip(&mut self.clock_period) {
            if n == event {
                *p = Some(period);
            }
        }
    }

    /// The second counted so far, and a fresh one.
    pub fn take(&mut self) -> Second {
        std::mem::take(&mut self.second)
    }

    pub fn sample(&mut self, s: &Sample<'_>, ring_cpu: u32, kernel: bool, flow: Option<u64>) {
        let Some(&ev) = s.id.and_then(|id| self.event_of.get(&id)) else {
            return;
        };
        let flow = flow.unwrap_or(NO_FLOW);
        let (pid, tid) = (s.pid.unwrap_or(u32::MAX), s.tid.unwrap_or(u32::MAX));
        let cpu = s.cpu.unwrap_or(ring_cpu);
        let sec = &mut self.second;
        let key = (flow, ev, pid, s.ip.unwrap_or(0), kernel);
        let period = self.clock_period.get(ev as usize).copied().flatten().or(s.period).unwrap_or(1);
        let n = sec.fns.len();
        match sec.fns.get_mut(&key) {
            Some(e) => *e = (e.0 + 1, e.1 + period),
            None if n < MAX_KEYS => {
                sec.fns.insert(key, (1, period));
            }
            None => sec.overflow += 1,
        }
        let (Some(d), true) = (s.data_src, self.mem_event.get(ev as usize).copied().unwrap_or(false)) else {
            return;
        };
        let (d, addr) = (DataSrc(d), s.addr.unwrap_or(0));
        let cnode = self.topo.cpu_node.get(&cpu).copied();
        let mnode = s.phys_addr.filter(|&p| p != 0).and_then(|p| self.topo.mem_node(p));
        // Remote DRAM: remote by msen numa's rule, served by memory (not
        // another node's cache, which the false-sharing score covers).
        let lv = d.mem_lvl();
        let dram = lv & (lvl::LOC_RAM | lvl::REM_RAM1 | lvl::REM_RAM2) != 0 || d.mem_lvl_num() == 0xd;
        let remote_cache = lv & (lvl::REM_CCE1 | lvl::REM_CCE2) != 0;
        if dram && !remote_cache && crate::analyze::numa::memory_access(d, cnode, mnode) == Some(true) {
            let n = sec.remote.len();
            match sec.remote.get_mut(&(flow, mnode)) {
                Some(c) => *c += 1,
                None if n < MAX_KEYS => {
                    sec.remote.insert((flow, mnode), 1);
                }
                None => sec.overflow += 1,
            }
        }
        if addr == 0 {
            return;
        }
        let mut one = C2cStats::default();
        let class = one.add_sample(d, addr, true);
        let (line, off) = (addr - addr % self.topo.line_size, addr % self.topo.line_size);
        let n = sec.lines.len();
        // A line enters on a store or a contended load; other loads only add
        // to lines already there (streaming reads would fill the map).
        let enters = match class {
            Class::Store => true,
            Class::Load { rmt_hitm, lcl_hitm, rmt_peer, lcl_peer } => rmt_hitm || lcl_hitm || rmt_peer || lcl_peer,
            Class::Other => false,
        };
        let la = match sec.lines.get_mut(&(pid, line)) {
            Some(la) => la,
            None if enters && n < MAX_KEYS => sec.lines.entry((pid, line)).or_default(),
            None => {
                sec.overflow += u64::from(enters);
                return;
            }
        };
        la.stats += one;
        if matches!(class, Class::Other) {
            return;
        }
        let (users, writers) = la.offsets.entry(off).or_default();
        if users.len() < MAX_THREADS {
            users.insert(tid);
        }
        if matches!(class, Class::Store) && writers.len() < MAX_THREADS {
            writers.insert(tid);
        }
    }

    /// A sideband record at `time`.
    pub fn sideband(&mut self, sb: &Sideband, time: u64) {
        let ev = match sb {
            Sideband::Mmap(m) => {
                let file = match self.files.get(&m.filename) {
                    Some(f) => f.clone(),
                    None => {
                        if self.files.len() > 1 << 14 {
                            self.files.clear();
                        }
                        let f: Arc<str> = m.filename.as_str().into();
                        self.files.insert(m.filename.clone(), f.clone());
                        f
                    }
                };
                MapEvent::Map { pid: m.pid, start: m.start, len: m.len, pgoff: m.pgoff, file }
            }
            Sideband::Comm(c) if c.exec && c.pid == c.tid => MapEvent::Exec { pid: c.pid },
            Sideband::Fork(t) if t.pid != t.ppid => MapEvent::Fork { pid: t.pid, ppid: t.ppid },
            Sideband::Exit(t) if t.pid == t.tid => MapEvent::Exit { pid: t.pid },
            _ => return,
        };
        self.second.maps.push((time, ev));
    }
}

/// What the metrics show, published by the worker after each second.
#[derive(Debug, Clone, Default)]
pub struct Tops {
    /// Seconds the window holds (up to WINDOW_SECS).
    pub window_secs: f64,
    /// (flow, function, event, events per second).
    pub micromiss: Vec<(String, String, String, f64)>,
    /// (line address, mapping, pid, HITM loads per second) of lines whose
    /// verdict is false sharing.
    pub false_sharing: Vec<(String, String, u32, f64)>,
    /// (flow, memory node, ifindex, remote DRAM loads per second).
    pub remote_dram: Vec<(String, String, u32, f64)>,
    /// Samples not counted because a second's maps were full, in the window.
    pub overflow: u64,
}

/// One second handed to the worker, with the flows it names that the
/// worker has not been told about yet.
#[derive(Debug)]
pub struct Tick {
    pub second: Second,
    pub secs: f64,
    pub flows: Vec<FlowInfo>,
}

/// The worker thread (stops when dropped).
#[derive(Debug)]
pub struct Worker {
    tx: Option<std::sync::mpsc::SyncSender<Tick>>,
    thread: Option<std::thread::JoinHandle<()>>,
    known_flows: std::collections::HashSet<u64>,
}

impl Worker {
    pub fn start(events: Vec<String>, control: Arc<Control>) -> std::io::Result<Worker> {
        // A slow worker skips seconds rather than queueing them.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Tick>(2);
        let thread = std::thread::Builder::new().name("msen-rollups".into()).spawn(move || {
            // SAFETY: gettid and setpriority take no pointers; a lower
            // priority for this thread only, so the capture goes first.
            unsafe {
                let tid = libc::gettid() as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, 15);
            }
            let mut w = Window::new(events);
            while let Ok(t) = rx.recv() {
                w.push(t);
                control.publish_tops(w.tops());
            }
        })?;
        Ok(Worker { tx: Some(tx), thread: Some(thread), known_flows: Default::default() })
    }

    /// Hand over a second; `flow_info` is asked only for flows not sent before.
    pub fn send(&mut self, second: Second, secs: f64, flow_info: impl Fn(u64) -> Option<FlowInfo>) {
        if self.known_flows.len() > 1 << 14 {
            self.known_flows.clear();
        }
        let mut flows = Vec::new();
        for id in second.flow_ids() {
            if self.known_flows.insert(id) {
                flows.extend(flow_info(id));
            }
        }
        if let Some(tx) = &self.tx {
            if tx.try_send(Tick { second, secs, flows: flows.clone() }).is_err() {
                // Dropped: tell the worker about these flows next time.
                for f in flows {
                    self.known_flows.remove(&f.id);
                }
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug, Clone)]
struct Map {
    end: u64,
    pgoff: u64,
    file: Arc<str>,
}

/// The worker's state: the window, the address spaces, symbol caches.
struct Window {
    events: Vec<String>,
    seconds: VecDeque<(Second, f64)>,
    spaces: HashMap<u32, BTreeMap<u64, Map>>,
    flows: HashMap<u64, FlowInfo>,
    syms: Symbols,
}

impl Window {
    fn new(events: Vec<String>) -> Window {
        Window { events, seconds: VecDeque::new(), spaces: HashMap::new(), flows: HashMap::new(), syms: Symbols::default() }
    }

    fn push(&mut self, mut t: Tick) {
        let mut maps = std::mem::take(&mut t.second.maps);
        maps.sort_by_key(|m| m.0);
        for (_, m) in maps {
            match m {
                MapEvent::Map { pid, start, len, pgoff, file } => {
                    let space = self.spaces.entry(pid).or_default();
                    // A new mapping replaces what it overlaps.
                    let end = start.saturating_add(len);
                    let over: Vec<u64> = space.range(..end).filter(|(_, m)| m.end > start).map(|(s, _)| *s).collect();
                    for s in over {
                        space.remove(&s);
                    }
                    space.insert(start, Map { end, pgoff, file });
                }
                MapEvent::Exec { pid } | MapEvent::Exit { pid } => {
                    self.spaces.remove(&pid);
                }
                MapEvent::Fork { pid, ppid } => {
                    if let Some(parent) = self.spaces.get(&ppid).cloned() {
                        self.spaces.insert(pid, parent);
                    }
                }
            }
        }
        for f in t.flows {
            if self.flows.len() > 1 << 14 {
                self.flows.clear();
            }
            self.flows.insert(f.id, f);
        }
        self.seconds.push_back((t.second, t.secs));
        while self.seconds.len() > WINDOW_SECS {
            self.seconds.pop_front();
        }
    }

    /// The mapping holding `addr`, and its start.
    fn map_of(&self, pid: u32, addr: u64) -> Option<(u64, &Map)> {
        let (start, m) = self.spaces.get(&pid)?.range(..=addr).next_back()?;
        (addr < m.end).then_some((*start, m))
    }

    fn flow_text(&self, id: u64) -> String {
        match id {
            NO_FLOW => "[no flow]".into(),
            _ => self.flows.get(&id).map_or_else(|| format!("flow#{id:016x}"), FlowInfo::text),
        }
    }

    fn tops(&mut self) -> Tops {
        let secs: f64 = self.seconds.iter().map(|s| s.1).sum::<f64>().max(1e-9);
        let overflow = self.seconds.iter().map(|s| s.0.overflow).sum();
        // Functions: raw addresses first (far fewer than samples), then one
        // name each.
        let mut raw: HashMap<FnKey, u64> = HashMap::new();
        for (s, _) in &self.seconds {
            for (k, v) in &s.fns {
                *raw.entry(*k).or_default() += v.1;
            }
        }
        let mut by_fn: HashMap<(u64, u16, Arc<str>), u64> = HashMap::new();
        for ((flow, ev, pid, ip, kernel), period) in raw {
            let name = if kernel {
                self.syms.kernel(ip)
            } else {
                let hit = self.map_of(pid, ip).map(|(start, m)| (ip - start, m.clone()));
                self.syms.user(pid, hit.as_ref().map(|(off, m)| (*off, m)))
            };
            *by_fn.entry((flow, ev, name)).or_default() += period;
        }
        let mut micromiss: Vec<(String, String, String, f64)> = by_fn
            .into_iter()
            .map(|((flow, ev, name), p)| {
                let event = self.events.get(ev as usize).cloned().unwrap_or_else(|| format!("event{ev}"));
                (self.flow_text(flow), name.to_string(), event, p as f64 / secs)
            })
            .collect();
        sort_top(&mut micromiss, |r| r.3, |a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));

        let mut lines: HashMap<(u32, u64), LineAcc> = HashMap::new();
        for (s, _) in &self.seconds {
            for (k, la) in &s.lines {
                lines.entry(*k).or_default().merge(la);
            }
        }
        let mut false_sharing: Vec<(String, String, u32, f64)> = lines
            .into_iter()
            .filter(|(_, la)| matches!(la.verdict(), Verdict::FalseSharing { .. }))
            .map(|((pid, line), la)| {
                let mapping = self.map_of(pid, line).map_or_else(|| "[unknown]".to_string(), |(_, m)| mapping_name(&m.file));
                (format!("{line:#x}"), mapping, pid, la.stats.tot_hitm as f64 / secs)
            })
            .collect();
        sort_top(&mut false_sharing, |r| r.3, |a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));

        let mut remote: HashMap<(u64, Option<u32>), u64> = HashMap::new();
        for (s, _) in &self.seconds {
            for (k, n) in &s.remote {
                *remote.entry(*k).or_default() += n;
            }
        }
        let mut remote_dram: Vec<(String, String, u32, f64)> = remote
            .into_iter()
            .map(|((flow, node), n)| {
                let ifindex = self.flows.get(&flow).map_or(0, |f| f.ifindex);
                (self.flow_text(flow), node.map_or_else(|| "remote".to_string(), |n| n.to_string()), ifindex, n as f64 / secs)
            })
            .collect();
        sort_top(&mut remote_dram, |r| r.3, |a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
        Tops { window_secs: secs, micromiss, false_sharing, remote_dram, overflow }
    }
}

/// Highest value first, ties by the labels (a total order), cut to TOP.
fn sort_top<T>(v: &mut Vec<T>, value: impl Fn(&T) -> f64, labels: impl Fn(&T, &T) -> std::cmp::Ordering) {
    v.sort_by(|a, b| value(b).total_cmp(&value(a)).then_with(|| labels(a, b)));
    v.truncate(TOP);
}

/// A data mapping's label: the file, or the kernel's name for anonymous memory.
fn mapping_name(file: &str) -> String {
    match file {
        "" | "//anon" => "[anon]".into(),
        f => f.to_string(),
    }
}

/// Function names for the worker: ELF symbol tables by file, kallsyms for
/// the kernel, each name once per (file, offset).
#[derive(Default)]
struct Symbols {
    elves: HashMap<Arc<str>, Option<Arc<crate::symbolize::elf::ElfSymbols>>>,
    names: HashMap<(Arc<str>, u64), Arc<str>>,
    kallsyms: Option<crate::symbolize::kallsyms::Kallsyms>,
    kernel_names: HashMap<u64, Arc<str>>,
}

/// Bounds on the caches (cleared when reached).
const MAX_ELVES: usize = 256;
const MAX_NAMES: usize = 1 << 16;

impl Symbols {
    fn kernel(&mut self, ip: u64) -> Arc<str> {
        if let Some(n) = self.kernel_names.get(&ip) {
            return n.clone();
        }
        let k = self.kallsyms.get_or_insert_with(|| {
            crate::symbolize::kallsyms::Kallsyms::parse(&std::fs::read_to_string("/proc/kallsyms").unwrap_or_default())
        });
        let name: Arc<str> = k.lookup(ip).map_or_else(|| "[kernel]".into(), |s| s.name.as_str().into());
        if self.kernel_names.len() >= MAX_NAMES {
            self.kernel_names.clear();
        }
        self.kernel_names.insert(ip, name.clone());
        name
    }

    /// `hit`: the offset of `ip` in its mapping, and the mapping.
    fn user(&mut self, pid: u32, hit: Option<(u64, &Map)>) -> Arc<str> {
        let Some((in_map, m)) = hit else {
            // One row for all of them (addresses would be unbounded labels).
            return "[unknown]".into();
        };
        let off = in_map + m.pgoff;
        let key = (m.file.clone(), off);
        if let Some(n) = self.names.get(&key) {
            return n.clone();
        }
        let base = m.file.rsplit('/').next().unwrap_or(&m.file).to_string();
        let name: Arc<str> = match self.elf(pid, &m.file) {
            Some(e) => match e.offset_to_vaddr(off).and_then(|va| e.lookup(va)) {
                Some(s) => s.display_name().into(),
                None => format!("{base}+{off:#x}").into(),
            },
            None => format!("{base}+{off:#x}").into(),
        };
        if self.names.len() >= MAX_NAMES {
            self.names.clear();
        }
        self.names.insert(key, name.clone());
        name
    }

    fn elf(&mut self, pid: u32, file: &Arc<str>) -> Option<Arc<crate::symbolize::elf::ElfSymbols>> {
        if let Some(e) = self.elves.get(file) {
            return e.clone();
        }
        let e = if file.starts_with('/') {
            // The process's view of the path first (it may be in a container).
            let inside = std::path::PathBuf::from(format!("/proc/{pid}/root{file}"));
            crate::symbolize::elf::load(&inside, None).or_else(|_| crate::symbolize::elf::load(std::path::Path::new(&**file), None)).ok()
        } else {
            None
        };
        let e = e.map(Arc::new);
        if self.elves.len() >= MAX_ELVES {
            self.elves.clear();
        }
        self.elves.insert(file.clone(), e.clone());
        e
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ties_sort_by_label_and_the_top_is_bounded() {
        let mut v: Vec<(String, f64)> = (0..50).map(|i| (format!("f{:02}", 49 - i), (i % 3) as f64)).collect();
        sort_top(&mut v, |r| r.1, |a, b| a.0.cmp(&b.0));
        assert_eq!(v.len(), TOP);
        assert_eq!(v[0].1, 2.0);
        assert!(v.windows(2).all(|w| w[0].1 > w[1].1 || (w[0].1 == w[1].1 && w[0].0 < w[1].0)), "{v:?}");
    }
}
