//! Building a trace's embedded symbols (the SYMBOLS block): every address
//! its samples hit -- ips, call chains as the analyses walk them (unwound
//! from stack copies too), branch records, data addresses -- resolved once
//! against the files on this machine, cut down to the symbols (and, with
//! lines, the DWARF frames) those addresses need.

use super::loaded::{DecodeStats, Loaded};
use crate::perf::record::misc;
use crate::symbolize::embedded::{Embedded, EmbeddedDso};
use crate::trace::TraceError;
use rayon::prelude::*;
use rustc_hash::FxHashSet as HashSet;
use std::collections::{BTreeMap, BTreeSet};

/// What `collect` found: the user-space table and the kernel subset.
#[derive(Debug, Default)]
pub struct Collected {
    pub embedded: Embedded,
    /// kallsyms text of the kernel symbols the samples hit (None when the
    /// trace has no kernel symbols).
    pub kallsyms: Option<String>,
    /// Distinct code and data addresses the samples hit.
    pub addresses: usize,
    /// Unwind tables of the binaries hit, when samples carry stack copies.
    pub unwind: Vec<crate::symbolize::embedded::EmbeddedUnwind>,
}

#[derive(Default)]
struct Seen {
    /// (pid, exec epoch, kernel, address)
    code: HashSet<(u32, u16, bool, u64)>,
    /// (pid, exec epoch, address)
    data: HashSet<(u32, u16, u64)>,
}

impl Seen {
    fn merge(mut self, o: Seen) -> Seen {
        self.code.extend(o.code);
        self.data.extend(o.data);
        self
    }
}

pub fn collect(l: &Loaded, lines: bool) -> Result<Collected, TraceError> {
    let blocks = l.sample_blocks();
    let seen = blocks
        .par_iter()
        .map_init(
            || l.unwinder(),
            |unw, b| -> Result<Seen, TraceError> {
                let mut seen = Seen::default();
                let mut stats = DecodeStats::default();
                l.for_each_sample(b, &mut stats, |ev, cpumode, s| {
                    let pid = s.pid.unwrap_or(u32::MAX);
                    let epoch = l.timeline.epoch_at(pid, s.time.unwrap_or(0));
                    let kernel = matches!(cpumode, misc::KERNEL | misc::GUEST_KERNEL | misc::HYPERVISOR);
                    if let Some(ip) = s.ip {
                        seen.code.insert((pid, epoch, kernel, ip));
                    }
                    if let Some(chain) = l.chain_of(ev, s, unw) {
                        for (k, ip) in super::report::frames(&chain, kernel) {
                            seen.code.insert((pid, epoch, k, ip));
                        }
                    }
                    if let Some(bs) = s.branch_stack {
                        let w: Vec<u64> = bs.iter().collect();
                        for e in w.chunks_exact(3) {
                            for &a in &e[..2] {
                                let k = l.timeline.find_map(pid, epoch, a).is_none() && l.resolver.is_kernel_addr(a);
                                seen.code.insert((pid, epoch, k, a));
                            }
                        }
                    }
                    if let Some(a) = s.addr.filter(|&a| a != 0) {
                        seen.data.insert((pid, epoch, a));
                    }
                })?;
                Ok(seen)
            },
        )
        .try_reduce(Seen::default, |a, b| Ok(a.merge(b)))?;
    let addresses = seen.code.len() + seen.data.len();

    // Per DSO: the symbols (by start) and virtual addresses hit.
    let mut code: Vec<(u32, u16, bool, u64)> = seen.code.into_iter().collect();
    code.sort_unstable();
    let mut kernel_ips: Vec<u64> = Vec::new();
    let mut funcs: BTreeMap<u32, BTreeMap<u64, (u64, String)>> = BTreeMap::new();
    let mut vaddrs: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    for &(pid, epoch, kernel, ip) in &code {
        if kernel {
            kernel_ips.push(ip);
            continue;
        }
        let Some(hit) = l.timeline.find_map(pid, epoch, ip) else { continue };
        let Some(es) = l.resolver.elf_symbols(hit.dso) else { continue };
        let Some(va) = es.offset_to_vaddr(hit.file_offset) else { continue };
        vaddrs.entry(hit.dso).or_default().insert(va);
        if let Some(sym) = es.lookup(va) {
            funcs.entry(hit.dso).or_default().insert(sym.start, (sym.end, sym.name.clone()));
        }
    }
    let mut datas: BTreeMap<u32, BTreeMap<u64, (u64, String)>> = BTreeMap::new();
    let mut data: Vec<(u32, u16, u64)> = seen.data.into_iter().collect();
    data.sort_unstable();
    for &(pid, epoch, a) in &data {
        let hit = l.timeline.find_map(pid, epoch, a);
        let below = l.timeline.file_map_below(pid, epoch, a);
        if let Some((dso, sym)) = l.resolver.data_symbol_of(hit, below) {
            datas.entry(dso).or_default().insert(sym.start, (sym.end, sym.name.clone()));
        }
    }
    let dsos: BTreeSet<u32> = funcs.keys().chain(datas.keys()).chain(vaddrs.keys()).copied().collect();
    let mut out = Embedded::default();
    for dso in dsos {
        let (Some(d), Some(es)) = (l.resolver.dso(dso), l.resolver.elf_symbols(dso)) else { continue };
        let table = |m: Option<&BTreeMap<u64, (u64, String)>>| -> Vec<(u64, u64, String)> {
            m.map(|m| m.iter().map(|(s, (e, n))| (*s, *e, n.clone())).collect()).unwrap_or_default()
        };
        let lines = match (lines, vaddrs.get(&dso)) {
            (true, Some(v)) => {
                let items: Vec<(u32, u64)> = v.iter().map(|&va| (dso, va)).collect();
                let frames = l.resolver.dwarf_batch(&items);
                items.iter().zip(frames).filter(|(_, f)| !f.is_empty()).map(|((_, va), f)| (*va, f)).collect()
            }
            _ => Vec::new(),
        };
        out.dsos.push(EmbeddedDso {
            path: d.path.clone(),
            build_id: es.build_id.clone(),
            segments: es.segments.clone(),
            symbols: table(funcs.get(&dso)),
            data_symbols: table(datas.get(&dso)),
            lines,
        });
    }
    // Several mappings of one file (exec epochs, containers) are one entry.
    out.dsos.sort_by(|a, b| a.path.cmp(&b.path).then(a.build_id.cmp(&b.build_id)));
    out.dsos.dedup_by(|b, a| {
        if a.path == b.path && a.build_id == b.build_id {
            merge_into(a, std::mem::take(b));
            true
        } else {
            false
        }
    });
    // Stack copies unwind at analysis time: carry the CFI of every binary
    // a process with samples had mapped executable (unwinding walks
    // through callers whose code was never sampled).
    let mut unwind = Vec::new();
    if l.has_stack_copies() {
        let mut seen_paths = BTreeSet::new();
        let pids: BTreeSet<(u32, u16)> = code.iter().map(|&(pid, epoch, _, _)| (pid, epoch)).collect();
        for (pid, epoch) in pids {
            for m in l.timeline.maps_of(pid, epoch) {
                let Some(d) = l.resolver.dso(m.dso) else { continue };
                if !d.path.starts_with('/') || !seen_paths.insert(d.path.clone()) {
                    continue;
                }
                let bid = l.resolver.elf_symbols(m.dso).and_then(|e| e.build_id.clone());
                if let Some(u) = l.unwind.carry(m.dso, &d.path, bid) {
                    unwind.push(u);
                }
            }
        }
    }
    out.addresses = addresses as u64;
    Ok(Collected { embedded: out, kallsyms: l.resolver.kallsyms_subset(kernel_ips.into_iter()), addresses, unwind })
}

fn merge_into(a: &mut EmbeddedDso, b: EmbeddedDso) {
    let union = |x: &mut Vec<(u64, u64, String)>, y: Vec<(u64, u64, String)>| {
        x.extend(y);
        x.sort();
        x.dedup_by(|q, p| q.0 == p.0);
    };
    union(&mut a.symbols, b.symbols);
    union(&mut a.data_symbols, b.data_symbols);
    a.lines.extend(b.lines);
    a.lines.sort_by_key(|(va, _)| *va);
    a.lines.dedup_by_key(|(va, _)| *va);
}
