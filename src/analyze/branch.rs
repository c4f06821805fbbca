//! `msen report --branch`: taken branches from branch stacks (LBR, AMD BRS,
//! Arm BRBE/ETM), grouped by source and target DSO and symbol, as perf's
//! branch view counts them: every branch-stack entry is one unit (perf's
//! "pseudo period of 1"). Beside perf's share, each row carries how often the
//! branch was mispredicted and its mean cycle count where the hardware gives one.

use super::loaded::{DecodeStats, Loaded};
use super::report::{EventTotal, KeyVal, Report, ReportConfig, Row, SortKey};
use crate::symbolize::Resolved;
use crate::trace::TraceError;
use rayon::prelude::*;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::BTreeMap;

/// Per-row branch statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BranchStats {
    pub mispredicted: u64,
    /// Sum of cycle counts over the entries that have one (non-zero).
    pub cycles_sum: u64,
    pub with_cycles: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    event: u16,
    pid: u32,
    tid: u32,
    cpu: u32,
    comm: u32,
    epoch: u16,
    from: u64,
    to: u64,
}

#[derive(Debug, Default)]
struct Partial {
    map: HashMap<Key, (u64, BranchStats)>,
    totals: Vec<(u64, u64)>,
    stats: DecodeStats,
}

/// Resolve a branch address the way perf does: the process's user maps
/// first, then the kernel's.
fn resolve_any(l: &Loaded, pid: u32, epoch: u16, addr: u64) -> Resolved {
    match l.timeline.find_map(pid, epoch, addr) {
        Some(hit) => l.resolver.user(Some(hit), addr),
        None if l.resolver.is_kernel_addr(addr) => l.resolver.kernel(addr),
        None => l.resolver.user(None, addr),
    }
}

pub fn branch_report(l: &Loaded, cfg: &ReportConfig) -> Result<Report, TraceError> {
    let nev = l.events.len();
    let want_tid = cfg.sort.contains(&SortKey::Tid);
    let want_cpu = cfg.sort.contains(&SortKey::Cpu);
    let blocks = l.sample_blocks();
    let partial = blocks
        .par_iter()
        .map(|b| -> Result<Partial, TraceError> {
            let mut p = Partial { totals: vec![(0, 0); nev], ..Default::default() };
            let mut stats = DecodeStats::default();
            l.for_each_sample(b, &mut stats, |ev, _cpumode, s| {
                let (pid, tid, cpu) = (s.pid.unwrap_or(u32::MAX), s.tid.unwrap_or(u32::MAX), s.cpu.unwrap_or(u32::MAX));
                if (!cfg.pids.is_empty() && !cfg.pids.contains(&pid)) || (!cfg.cpus.is_empty() && !cfg.cpus.contains(&cpu)) {
                    return;
                }
                let time = s.time.unwrap_or(0);
                let comm = l.timeline.comm_at(pid, tid, time).unwrap_or(u32::MAX);
                if !cfg.comms.is_empty() && !cfg.comms.iter().any(|c| l.timeline.comm_id(c) == Some(comm)) {
                    return;
                }
                let epoch = l.timeline.epoch_at(pid, time);
                for br in s.branches() {
                    p.totals[ev as usize].0 += 1;
                    p.totals[ev as usize].1 += 1;
                    let k = Key {
                        event: ev,
                        pid,
                        tid: if want_tid { tid } else { 0 },
                        cpu: if want_cpu { cpu } else { 0 },
                        comm,
                        epoch,
                        from: br.from,
                        to: br.to,
                    };
                    let e = p.map.entry(k).or_default();
                    e.0 += 1;
                    e.1.mispredicted += br.mispred() as u64;
                    if br.cycles() > 0 {
                        e.1.cycles_sum += br.cycles() as u64;
                        e.1.with_cycles += 1;
                    }
                }
            })?;
            p.stats += stats;
            Ok(p)
        })
        .try_reduce(
            || Partial { totals: vec![(0, 0); nev], ..Default::default() },
            |mut a, b| {
                for (k, v) in b.map {
                    let e = a.map.entry(k).or_default();
                    e.0 += v.0;
                    e.1.mispredicted += v.1.mispredicted;
                    e.1.cycles_sum += v.1.cycles_sum;
                    e.1.with_cycles += v.1.with_cycles;
                }
                for (i, t) in b.totals.iter().enumerate() {
                    a.totals[i].0 += t.0;
                    a.totals[i].1 += t.1;
                }
                a.stats += b.stats;
                Ok(a)
            },
        )?;

    let mut addrs: HashSet<(u32, u16, u64)> = HashSet::default();
    for k in partial.map.keys() {
        addrs.insert((k.pid, k.epoch, k.from));
        addrs.insert((k.pid, k.epoch, k.to));
    }
    let mut addrs: Vec<(u32, u16, u64)> = addrs.into_iter().collect();
    addrs.sort_unstable();
    let resolved: Vec<Resolved> = addrs.par_iter().map(|&(pid, epoch, a)| resolve_any(l, pid, epoch, a)).collect();
    let index: HashMap<(u32, u16, u64), usize> = addrs.iter().enumerate().map(|(i, a)| (*a, i)).collect();

    let sym = KeyVal::sym;
    let mut rows: HashMap<(u16, Vec<KeyVal>), (u64, BranchStats)> = HashMap::default();
    for (k, (n, st)) in &partial.map {
        let rf = &resolved[index[&(k.pid, k.epoch, k.from)]];
        let rt = &resolved[index[&(k.pid, k.epoch, k.to)]];
        let key: Vec<KeyVal> = cfg
            .sort
            .iter()
            .map(|sk| match sk {
                SortKey::Comm => {
                    KeyVal::Text(if k.comm == u32::MAX { format!(":{}", k.pid as i32) } else { l.timeline.comm_name(k.comm).to_string() })
                }
                SortKey::Pid => KeyVal::Num(k.pid as u64),
                SortKey::Tid => KeyVal::Num(k.tid as u64),
                SortKey::Cpu => KeyVal::Num(k.cpu as u64),
                SortKey::Event => KeyVal::Text(l.events.list[k.event as usize].name.clone()),
                SortKey::DsoFrom => KeyVal::Text(rf.dso.clone()),
                SortKey::DsoTo => KeyVal::Text(rt.dso.clone()),
                SortKey::SymFrom => sym(rf),
                SortKey::SymTo => sym(rt),
                // Validated away by the CLI; kept total for library callers.
                _ => KeyVal::Text(String::new()),
            })
            .collect();
        let e = rows.entry((k.event, key)).or_default();
        e.0 += n;
        e.1.mispredicted += st.mispredicted;
        e.1.cycles_sum += st.cycles_sum;
        e.1.with_cycles += st.with_cycles;
    }
    let totals: Vec<EventTotal> =
        l.events.list.iter().zip(&partial.totals).map(|(e, t)| EventTotal { name: e.name.clone(), samples: t.0, period: t.1 }).collect();
    let mut rows: Vec<Row> = rows
        .into_iter()
        .map(|((event, keys), (n, st))| {
            let total = totals.get(event as usize).map_or(0, |t| t.period);
            Row {
                graph: None,
                event,
                keys,
                samples: n,
                period: n,
                percent: if total == 0 { 0.0 } else { n as f64 * 100.0 / total as f64 },
                children_period: None,
                children_percent: None,
                branch: Some(st),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.event.cmp(&b.event).then(b.period.cmp(&a.period)).then_with(|| a.keys.cmp(&b.keys)));
    Ok(Report::assemble(l, cfg, totals, rows, partial.stats, false, Vec::new(), BTreeMap::new()))
}
