//! `msen numa`: remote-memory hot spots (the numatop job, offline). Every
//! load that went to memory or to another node's cache is local or remote:
//! by its data source (remote DRAM, remote cache, the remote flag), or, where
//! the sample has a physical address and the trace the memory topology, by
//! comparing the memory's node with the sampling CPU's node. Ranked by remote
//! accesses: functions, data objects, pages, processes (and flows, once
//! traces carry flow tags).

use super::datasrc::{lvl, op, snoop, DataSrc};
use super::loaded::Loaded;
use crate::perf::attr::sample;
use crate::trace::TraceError;
use rayon::prelude::*;
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeMap;

/// Load counts by where they were served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct NumaStats {
    pub loads: u64,
    pub local_dram: u64,
    pub remote_dram: u64,
    pub remote_cache: u64,
    pub local_hitm: u64,
    pub remote_hitm: u64,
}

impl std::ops::AddAssign for NumaStats {
    fn add_assign(&mut self, o: Self) {
        self.loads += o.loads;
        self.local_dram += o.local_dram;
        self.remote_dram += o.remote_dram;
        self.remote_cache += o.remote_cache;
        self.local_hitm += o.local_hitm;
        self.remote_hitm += o.remote_hitm;
    }
}

/// Local and remote memory accesses of one hot spot.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Acc {
    pub local: u64,
    pub remote: u64,
    pub lat_sum: u64,
    pub lat_n: u64,
}

impl std::ops::AddAssign for Acc {
    fn add_assign(&mut self, o: Self) {
        self.local += o.local;
        self.remote += o.remote;
        self.lat_sum = self.lat_sum.saturating_add(o.lat_sum);
        self.lat_n += o.lat_n;
    }
}

impl Acc {
    pub fn remote_ratio(&self) -> f64 {
        let t = self.local + self.remote;
        if t == 0 {
            0.0
        } else {
            self.remote as f64 / t as f64
        }
    }
    pub fn mean_latency(&self) -> Option<f64> {
        (self.lat_n > 0).then(|| self.lat_sum as f64 / self.lat_n as f64)
    }
}

#[derive(Debug, Clone)]
pub struct HotSpot {
    pub name: String,
    pub acc: Acc,
    /// CPU nodes and memory nodes that made the remote accesses.
    pub cpu_nodes: Vec<u32>,
    pub mem_nodes: Vec<u32>,
    pub verdict: String,
}

#[derive(Debug, Clone)]
pub struct Numa {
    pub stats: NumaStats,
    /// (cpu node, memory node) -> memory accesses.
    pub node_matrix: BTreeMap<(u32, u32), u64>,
    pub functions: Vec<HotSpot>,
    pub objects: Vec<HotSpot>,
    pub pages: Vec<HotSpot>,
    pub processes: Vec<HotSpot>,
    /// Remote accesses by the network flow the CPU was serving (traces
    /// with flow context).
    pub flows: Vec<HotSpot>,
    pub top: usize,
    /// The trace has no PMU events: nothing here can be a finding.
    pub software_only: bool,
}

#[derive(Debug, Clone, Default)]
struct SpotAcc {
    acc: Acc,
    /// Nodes of the CPUs and of the memory of the remote accesses.
    cpu_nodes: NodeSet,
    mem_nodes: NodeSet,
}

/// A set of NUMA node numbers: a bit per node under 64 (every machine
/// seen), a sorted list above. One per hot-spot key, and there is a key
/// per distinct data address, so it must not allocate in the common case.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct NodeSet {
    low: u64,
    high: Vec<u32>,
}

impl NodeSet {
    pub(crate) fn insert(&mut self, n: u32) {
        if n < 64 {
            self.low |= 1 << n;
        } else if let Err(i) = self.high.binary_search(&n) {
            self.high.insert(i, n);
        }
    }

    pub(crate) fn union(&mut self, o: &NodeSet) {
        self.low |= o.low;
        for &n in &o.high {
            self.insert(n);
        }
    }

    fn is_empty(&self) -> bool {
        self.low == 0 && self.high.is_empty()
    }

    /// In increasing order.
    pub(crate) fn to_vec(&self) -> Vec<u32> {
        (0..64).filter(|b| self.low & (1 << b) != 0).chain(self.high.iter().copied()).collect()
    }
}

#[derive(Debug, Default)]
struct Part<'l> {
    stats: NumaStats,
    matrix: BTreeMap<(u32, u32), u64>,
    /// (kind, pid, epoch, key) where key is ip (functions), page (pages) or
    /// 0 (processes); resolved after the merge.
    spots: HashMap<(u8, u32, u16, u64), SpotAcc>,
    /// Data objects, named per sample and keyed by where the name lives
    /// (pointer, length): a streaming load touches a million addresses but
    /// few objects, and a map keyed by address grew with the samples.
    objects: HashMap<(usize, usize), (&'l str, SpotAcc)>,
}

impl SpotAcc {
    fn add(&mut self, one: Acc, remote: bool, cnode: Option<u32>, mnode: Option<u32>) {
        self.acc += one;
        if remote {
            if let Some(c) = cnode {
                self.cpu_nodes.insert(c);
            }
            if let Some(m) = mnode {
                self.mem_nodes.insert(m);
            }
        }
    }

    fn merge(&mut self, o: &SpotAcc) {
        self.acc += o.acc;
        self.cpu_nodes.union(&o.cpu_nodes);
        self.mem_nodes.union(&o.mem_nodes);
    }
}

/// The name msen numa gives the data object at `addr` (pid's maps at epoch).
fn object_name(l: &Loaded, pid: u32, epoch: u16, addr: u64) -> &str {
    let hit = l.timeline.find_map(pid, epoch, addr);
    let below = l.timeline.file_map_below(pid, epoch, addr);
    l.resolver.data_symbol_with_bss(hit.map(|h| (h, h.map_start, 0)), below, addr).map_or("[unknown]", |d| d.object)
}

const FUNC: u8 = 0;
const OBJ: u8 = 1;
const PAGE: u8 = 2;
const PROC: u8 = 3;
const FLOW: u8 = 4;

/// A load's memory access by msen numa's rule: `None` when the load was
/// not served by DRAM or another node's cache, else whether it was remote
/// (by the nodes of the CPU and of the physical address when both are
/// known and it was not a remote cache, else by the data source).
pub fn memory_access(d: DataSrc, cnode: Option<u32>, mnode: Option<u32>) -> Option<bool> {
    if d.mem_op() & op::LOAD == 0 {
        return None;
    }
    let lv = d.mem_lvl();
    let remote_flag = d.mem_remote() != 0;
    let rem_dram = lv & (lvl::REM_RAM1 | lvl::REM_RAM2) != 0;
    let rem_cache = lv & (lvl::REM_CCE1 | lvl::REM_CCE2) != 0;
    let loc_dram = lv & lvl::LOC_RAM != 0 || (d.mem_lvl_num() == 0xd && !remote_flag);
    if !(loc_dram || rem_dram || rem_cache || remote_flag) {
        return None;
    }
    Some(match (cnode, mnode) {
        (Some(c), Some(m)) if !rem_cache => c != m,
        _ => rem_dram || rem_cache || remote_flag,
    })
}

/// The NUMA node of a physical address in the trace's memory topology.
pub fn mem_node_of(l: &Loaded, pa: u64) -> Option<u32> {
    l.trace.meta.memory_nodes.iter().find(|r| pa >= r.start && pa < r.end).map(|r| r.node)
}

pub fn numa(l: &Loaded, top: usize) -> Result<Numa, TraceError> {
    let cpu_node: HashMap<u32, u32> = l.trace.meta.cpu_nodes.iter().map(|c| (c.cpu, c.node)).collect();
    let mem_node = |pa: u64| mem_node_of(l, pa);
    let page = l.trace.meta.page_size.max(4096) as u64;
    let mem_events: Vec<bool> = l.events.list.iter().map(|e| e.attr.sample_type & sample::DATA_SRC != 0).collect();
    let parts: Vec<Part<'_>> = l
        .sample_blocks()
        .par_iter()
        .map(|b| -> Result<Part<'_>, TraceError> {
            let mut p = Part::default();
            let mut stats = super::loaded::DecodeStats::default();
            l.for_each_sample_flow(b, &mut stats, |ev, _cpumode, s, flow| {
                if !mem_events.get(ev as usize).copied().unwrap_or(false) {
                    return;
                }
                let d = DataSrc(s.data_src.unwrap_or(0));
                if d.mem_op() & op::LOAD == 0 {
                    return;
                }
                p.stats.loads += 1;
                let lv = d.mem_lvl();
                let hitm = d.mem_snoop() & snoop::HITM != 0;
                let remote_flag = d.mem_remote() != 0;
                let rem_dram = lv & (lvl::REM_RAM1 | lvl::REM_RAM2) != 0;
                let rem_cache = lv & (lvl::REM_CCE1 | lvl::REM_CCE2) != 0;
                let loc_dram = lv & lvl::LOC_RAM != 0 || (d.mem_lvl_num() == 0xd && !remote_flag);
                if loc_dram && !rem_dram {
                    p.stats.local_dram += 1;
                }
                if rem_dram || (remote_flag && d.mem_lvl_num() == 0xd) {
                    p.stats.remote_dram += 1;
                }
                if rem_cache {
                    p.stats.remote_cache += 1;
                    if hitm {
                        p.stats.remote_hitm += 1;
                    }
                } else if hitm {
                    p.stats.local_hitm += 1;
                }
                let cnode = s.cpu.and_then(|c| cpu_node.get(&c).copied());
                let mnode = s.phys_addr.filter(|&a| a != 0).and_then(mem_node);
                let Some(remote) = memory_access(d, cnode, mnode) else { return };
                if let (Some(c), Some(m)) = (cnode, mnode) {
                    *p.matrix.entry((c, m)).or_default() += 1;
                }
                let w = s.weight.unwrap_or(0);
                let one = Acc { local: (!remote) as u64, remote: remote as u64, lat_sum: w, lat_n: (w > 0) as u64 };
                let pid = s.pid.unwrap_or(u32::MAX);
                let epoch = l.timeline.epoch_at(pid, s.time.unwrap_or(0));
                let addr = s.addr.unwrap_or(0);
                let flow_key = (FLOW, 0, 0, flow.map_or(0, |f| f.id));
                for key in [(FUNC, pid, epoch, s.ip.unwrap_or(0)), (PAGE, pid, 0, addr / page * page), (PROC, pid, 0, 0), flow_key] {
                    if key.0 == FLOW && !l.flows.enabled {
                        continue;
                    }
                    p.spots.entry(key).or_default().add(one, remote, cnode, mnode);
                }
                let object = object_name(l, pid, epoch, addr);
                let e = p.objects.entry((object.as_ptr() as usize, object.len())).or_insert_with(|| (object, SpotAcc::default()));
                e.1.add(one, remote, cnode, mnode);
            })?;
            Ok(p)
        })
        .collect::<Result<_, _>>()?;
    let mut stats = NumaStats::default();
    let mut node_matrix = BTreeMap::new();
    let mut spots: HashMap<(u8, u32, u16, u64), SpotAcc> = HashMap::default();
    let mut named: [BTreeMap<String, SpotAcc>; 5] = Default::default();
    for p in parts {
        stats += p.stats;
        for (k, v) in p.matrix {
            *node_matrix.entry(k).or_default() += v;
        }
        for (k, v) in p.spots {
            spots.entry(k).or_default().merge(&v);
        }
        for (_, (name, v)) in p.objects {
            named[OBJ as usize].entry(name.to_string()).or_default().merge(&v);
        }
    }
    // Name each spot, then merge spots that share a name (one function seen
    // at many ips, one object at many addresses).
    for ((kind, pid, epoch, key), v) in spots {
        let name = match kind {
            FUNC => {
                let r = if l.resolver.is_kernel_addr(key) {
                    l.resolver.kernel(key)
                } else {
                    l.resolver.user(l.timeline.find_map(pid, epoch, key), key)
                };
                match r.sym {
                    Ok(n) => format!("{n} ({})", r.dso),
                    Err(_) => format!("{}+0x{:x}", r.dso, r.rel),
                }
            }
            PAGE => format!("pid {pid} page 0x{key:x}"),
            FLOW if key == 0 => "[no flow]".to_string(),
            FLOW => l.flows.text(key),
            _ => {
                let comm = l
                    .timeline
                    .comm_at(pid, pid, u64::MAX)
                    .map(|c| l.timeline.comm_name(c).to_string())
                    .unwrap_or_else(|| format!(":{pid}"));
                format!("{comm} ({pid})")
            }
        };
        named[kind as usize].entry(name).or_default().merge(&v);
    }
    let rank = |m: &BTreeMap<String, SpotAcc>| -> Vec<HotSpot> {
        let mut v: Vec<HotSpot> = m
            .iter()
            .filter(|(_, s)| s.acc.local + s.acc.remote > 0)
            .map(|(name, s)| HotSpot {
                name: name.clone(),
                acc: s.acc,
                cpu_nodes: s.cpu_nodes.to_vec(),
                mem_nodes: s.mem_nodes.to_vec(),
                verdict: verdict(s),
            })
            .collect();
        v.sort_by(|a, b| b.acc.remote.cmp(&a.acc.remote).then(b.acc.local.cmp(&a.acc.local)).then_with(|| a.name.cmp(&b.name)));
        v.truncate(top);
        v
    };
    Ok(Numa {
        stats,
        node_matrix,
        functions: rank(&named[0]),
        objects: rank(&named[1]),
        pages: rank(&named[2]),
        processes: rank(&named[3]),
        flows: rank(&named[4]),
        top,
        software_only: l.trace.meta.software_only,
    })
}

fn verdict(s: &SpotAcc) -> String {
    let ratio = s.acc.remote_ratio() * 100.0;
    let lat = s.acc.mean_latency().map_or_else(String::new, |l| format!(", mean {l:.0} cycles"));
    if s.acc.remote == 0 {
        return format!("all local{lat}");
    }
    let nodes = |m: &NodeSet| m.to_vec().iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",");
    if s.cpu_nodes.is_empty() || s.mem_nodes.is_empty() {
        format!("{ratio:.0}% remote{lat}")
    } else {
        format!("threads on node {} read memory placed on node {}: {ratio:.0}% remote{lat}", nodes(&s.cpu_nodes), nodes(&s.mem_nodes))
    }
}

#[cfg(test)]
mod node_set_tests {
    use super::NodeSet;

    #[test]
    fn a_node_set_holds_each_node_once_in_order() {
        let mut a = NodeSet::default();
        for n in [3, 1, 70, 65, 70, 3, 0, 63] {
            a.insert(n);
        }
        assert_eq!(a.to_vec(), vec![0, 1, 3, 63, 65, 70]);
        let mut b = NodeSet::default();
        assert!(b.is_empty());
        b.insert(64);
        b.insert(2);
        b.union(&a);
        assert_eq!(b.to_vec(), vec![0, 1, 2, 3, 63, 64, 65, 70]);
    }
}
