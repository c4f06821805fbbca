//! Every kept sample's stack, resolved once per distinct address: the input
//! of the profile exporters (pprof, Firefox Profiler, speedscope). Samples
//! are decoded in parallel and aggregated by their context and raw chain;
//! with `times`, each sample's time and stack are kept too, in time order,
//! for the exporters that draw a timeline.

use super::datasrc::DataSrc;
use super::loaded::Loaded;
use super::report::{frames, ReportConfig, SampleFilter};
use crate::perf::attr::sample;
use crate::perf::record::misc;
use crate::trace::TraceError;
use rayon::prelude::*;
use rustc_hash::FxHashMap as HashMap;

/// One line of an address's inline chain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Line {
    pub function: String,
    pub file: Option<String>,
    pub line: u32,
}

/// A distinct address, resolved.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kernel: bool,
    pub address: u64,
    /// The function (symbol, or DWARF's where the table has none), or
    /// `[unknown]`-style text naming the object and offset.
    pub function: String,
    pub resolved: bool,
    /// Short object name (perf's Shared Object) and its path.
    pub dso: String,
    pub path: String,
    pub build_id: Option<String>,
    /// The mapping: start, end, file offset of start.
    pub mapping: Option<(u64, u64, u64)>,
    /// Innermost first; the last is the physical function (empty without DWARF).
    pub lines: Vec<Line>,
}

/// A distinct stack in a distinct context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    pub event: u16,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub cpu: u32,
    /// The flow's text, when the sample was tagged with one.
    pub flow: Option<String>,
    /// The memory level of the data source (memory samples).
    pub mem: Option<String>,
    /// The capture tagged samples with flows, and this one's tag is missing.
    pub tag_missing: bool,
    /// Frame indices, the sampled one first.
    pub frames: Vec<u32>,
    pub samples: u64,
    pub period: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimedSample {
    pub time: u64,
    pub stack: u32,
    pub period: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Stacks {
    pub events: Vec<String>,
    pub frames: Vec<Frame>,
    pub stacks: Vec<Stack>,
    /// Every kept sample in time order (with `times`).
    pub samples: Vec<TimedSample>,
    /// Kept samples, and the first and last sample time (trace clock).
    pub total_samples: u64,
    pub first_time: u64,
    pub last_time: u64,
    /// The trace clock's value at the recording's wall-clock start.
    pub start_clock_ns: u64,
    pub start_unix_ns: u64,
    pub hostname: String,
}

impl Stacks {
    /// Wall-clock Unix nanoseconds of a trace-clock time.
    pub fn unix_ns(&self, t: u64) -> u64 {
        crate::trace::meta::wall_clock_ns(self.start_unix_ns, self.start_clock_ns, t)
    }

    /// The unit of an event's period: CPU clocks count nanoseconds.
    pub fn unit(&self, event: usize) -> &'static str {
        match self.events.get(event).map(String::as_str) {
            Some("cpu-clock" | "task-clock") => "nanoseconds",
            _ => "count",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    event: u16,
    pid: u32,
    tid: u32,
    cpu: u32,
    comm: u32,
    epoch: u16,
    kernel: bool,
    ip: u64,
    flow: u64,
    lvl: u64,
    chain: u32,
}

const NO_CHAIN: u32 = u32::MAX;
/// A sample without a flow tag (an id of 0 is a tag that knew no flow).
const NO_TAG: u64 = u64::MAX;

/// The data_src bits that say where a load was served: mem_lvl (5..19),
/// mem_lvl_num and mem_remote (33..38), mem_hops (43..46).
const LEVEL_BITS: u64 = (((1 << 14) - 1) << 5) | (((1 << 5) - 1) << 33) | (((1 << 3) - 1) << 43);

#[derive(Default)]
struct Partial {
    keys: HashMap<Key, u32>,
    list: Vec<(Key, u64, u64)>,
    chains: super::chains::ChainTable,
    samples: Vec<TimedSample>,
}

impl Partial {
    fn merge(mut self, o: Partial) -> Partial {
        let renumber_chain = self.chains.absorb(&o.chains);
        let mut renumber = Vec::with_capacity(o.list.len());
        for (mut k, s, p) in o.list {
            if k.chain != NO_CHAIN {
                k.chain = renumber_chain[k.chain as usize];
            }
            let next = self.list.len() as u32;
            let i = *self.keys.entry(k.clone()).or_insert(next);
            if i == next {
                self.list.push((k, 0, 0));
            }
            let e = &mut self.list[i as usize];
            e.1 += s;
            e.2 = e.2.saturating_add(p);
            renumber.push(i);
        }
        self.samples.extend(o.samples.into_iter().map(|t| TimedSample { stack: renumber[t.stack as usize], ..t }));
        self
    }
}

/// The stacks of the samples `cfg`'s filters keep (--pid, --tid, --comm,
/// --cpu, --time, --flow; --dsos and --symbols on the sampled frame).
pub fn collect(l: &Loaded, cfg: &ReportConfig, times: bool) -> Result<Stacks, TraceError> {
    let filter = SampleFilter::new(l, cfg)?;
    let blocks = l.sample_blocks();
    let has_dsrc = l.events.list.iter().any(|e| e.attr.sample_type & sample::DATA_SRC != 0);
    let partial = blocks
        .par_iter()
        .map_init(
            || l.unwinder(),
            |unwinder, b| -> Result<Partial, TraceError> {
                let mut p = Partial::default();
                let mut stats = Default::default();
                let mut buf: Vec<u64> = Vec::new();
                l.for_each_sample_flow(b, &mut stats, |ev, cpumode, s, flow| {
                    let Some(comm) = filter.keep(l, s, flow) else { return };
                    let pid = s.pid.unwrap_or(u32::MAX);
                    let time = s.time.unwrap_or(0);
                    let key = Key {
                        event: ev,
                        pid,
                        tid: s.tid.unwrap_or(u32::MAX),
                        cpu: s.cpu.unwrap_or(u32::MAX),
                        comm,
                        epoch: l.timeline.epoch_at(pid, time),
                        kernel: matches!(cpumode, misc::KERNEL | misc::GUEST_KERNEL | misc::HYPERVISOR),
                        ip: s.ip.unwrap_or(0),
                        flow: flow.map_or(NO_TAG, |f| f.id),
                        lvl: if has_dsrc { s.data_src.map_or(0, |d| d & LEVEL_BITS) } else { 0 },
                        chain: if l.chain_into(ev, s, unwinder, &mut buf) { p.chains.id(&buf) } else { NO_CHAIN },
                    };
                    let period = s.period.unwrap_or(l.events.list[ev as usize].default_period);
                    let next = p.list.len() as u32;
                    let i = *p.keys.entry(key.clone()).or_insert(next);
                    if i == next {
                        p.list.push((key, 0, 0));
                    }
                    let e = &mut p.list[i as usize];
                    e.1 += 1;
                    e.2 = e.2.saturating_add(period);
                    if times {
                        p.samples.push(TimedSample { time, stack: i, period });
                    }
                })?;
                Ok(p)
            },
        )
        .try_reduce(Partial::default, |a, b| Ok(a.merge(b)))?;

    // Resolve each distinct address once, with its inline chain.
    let mut addrs: Vec<(u32, u16, bool, u64)> = Vec::new();
    for (k, _, _) in &partial.list {
        addrs.push((k.pid, k.epoch, k.kernel, k.ip));
        if k.chain != NO_CHAIN {
            addrs.extend(frames(partial.chains.get(k.chain), k.kernel).map(|(kernel, ip)| (k.pid, k.epoch, kernel, ip)));
        }
    }
    addrs.par_sort_unstable();
    addrs.dedup();
    let resolved: Vec<crate::symbolize::Resolved> = addrs
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
    let items: Vec<(usize, (u32, u64))> = resolved.iter().enumerate().filter_map(|(i, r)| r.elf_addr.map(|a| (i, a))).collect();
    let dwarf = l.resolver.dwarf_batch(&items.iter().map(|(_, a)| *a).collect::<Vec<_>>());
    let mut lines: Vec<Vec<Line>> = vec![Vec::new(); resolved.len()];
    for ((i, _), fs) in items.into_iter().zip(dwarf) {
        lines[i] =
            fs.into_iter().filter_map(|f| f.function.map(|function| Line { function, file: f.file, line: f.line.unwrap_or(0) })).collect();
    }
    let kernel_map = (l.trace.meta.kernel_text_start > 0).then_some((l.trace.meta.kernel_text_start, l.trace.meta.kernel_text_end, 0));
    let kernel_bid =
        l.trace.end.as_ref().and_then(|e| e.build_ids.iter().find(|b| b.path == "[kernel.kallsyms]")).map(|b| b.build_id.clone());
    let frames_out: Vec<Frame> = addrs
        .iter()
        .zip(resolved)
        .zip(lines)
        .map(|((&(pid, epoch, kernel, ip), r), lines)| {
            let entry = if kernel { None } else { l.timeline.map_entry(pid, epoch, ip) };
            let path = match entry.and_then(|m| l.timeline.dsos.get(m.dso as usize)) {
                Some(d) => d.path.clone(),
                None if kernel => "[kernel.kallsyms]".into(),
                None => r.dso.clone(),
            };
            let (function, resolved) = match (&r.sym, lines.last()) {
                (Ok(n), _) => (n.clone(), true),
                (Err(_), Some(phys)) => (phys.function.clone(), true),
                (Err(_), None) => (super::report::unresolved_frame_name(r.rel), false),
            };
            Frame {
                kernel,
                address: ip,
                function,
                resolved,
                dso: r.dso.clone(),
                build_id: if kernel { kernel_bid.clone() } else { l.resolver.recorded_build_id(&path).map(str::to_string) },
                path,
                mapping: if kernel { kernel_map } else { entry.map(|m| (m.start, m.end, m.pgoff)) },
                lines,
            }
        })
        .collect();
    let index: HashMap<(u32, u16, bool, u64), u32> = addrs.iter().enumerate().map(|(i, a)| (*a, i as u32)).collect();

    let tagging = l.events.tags.is_some();
    // Stacks in a total order (context, then frames), whatever the split.
    let flow_text = |id: u64| -> Option<String> { (id != 0).then(|| l.flows.by_id.get(&id).map_or(format!("flow {id}"), |f| f.text())) };
    let mut stacks: Vec<(Stack, u32)> = partial
        .list
        .iter()
        .enumerate()
        .map(|(i, (k, samples, period))| {
            let own = index[&(k.pid, k.epoch, k.kernel, k.ip)];
            let mut fr: Vec<u32> = match k.chain {
                NO_CHAIN => vec![own],
                c => frames(partial.chains.get(c), k.kernel).map(|(kernel, ip)| index[&(k.pid, k.epoch, kernel, ip)]).collect(),
            };
            if fr.is_empty() {
                fr.push(own);
            }
            let stack = Stack {
                event: k.event,
                pid: k.pid,
                tid: k.tid,
                comm: if k.comm == u32::MAX { format!(":{}", k.tid as i32) } else { l.timeline.comm_name(k.comm).to_string() },
                cpu: k.cpu,
                flow: if k.flow == NO_TAG { None } else { flow_text(k.flow) },
                tag_missing: tagging && k.flow == NO_TAG,
                mem: (k.lvl != 0).then(|| DataSrc(k.lvl).lvl_text()),
                frames: fr,
                samples: *samples,
                period: *period,
            };
            (stack, i as u32)
        })
        .collect();
    let leaf_ok = |s: &Stack| {
        let f = &frames_out[s.frames[0] as usize];
        let dso_ok = cfg.dsos.is_empty() || cfg.dsos.iter().any(|d| d == &f.dso || d == &f.path);
        let sym_ok = cfg.symbols.is_empty() || (f.resolved && cfg.symbols.iter().any(|n| n == &f.function));
        dso_ok && sym_ok
    };
    stacks.retain(|(s, _)| leaf_ok(s));
    // The context, then the frames (borrowed: no copies per comparison).
    let order = |a: &Stack, b: &Stack| {
        (a.event, a.pid, a.tid, a.cpu)
            .cmp(&(b.event, b.pid, b.tid, b.cpu))
            .then_with(|| a.comm.cmp(&b.comm))
            .then_with(|| a.flow.cmp(&b.flow))
            .then_with(|| a.mem.cmp(&b.mem))
            .then(a.tag_missing.cmp(&b.tag_missing))
            .then_with(|| a.frames.cmp(&b.frames))
    };
    stacks.par_sort_unstable_by(|(a, ia), (b, ib)| order(a, b).then(ia.cmp(ib)));
    // Raw keys that differ only in what the output does not show (exec
    // epoch, the sampled address when a chain names the frames) merge.
    let mut merged: Vec<Stack> = Vec::with_capacity(stacks.len());
    let mut renumber: Vec<u32> = vec![u32::MAX; partial.list.len()];
    for (s, old) in stacks {
        match merged.last_mut() {
            Some(m) if order(m, &s).is_eq() => {
                m.samples += s.samples;
                m.period = m.period.saturating_add(s.period);
            }
            _ => merged.push(s),
        }
        renumber[old as usize] = (merged.len() - 1) as u32;
    }
    let mut samples: Vec<TimedSample> = partial
        .samples
        .into_iter()
        .filter_map(|t| {
            let s = renumber[t.stack as usize];
            (s != u32::MAX).then_some(TimedSample { stack: s, ..t })
        })
        .collect();
    samples.par_sort_unstable();
    let total_samples = merged.iter().map(|s| s.samples).sum();
    let span = l.sample_time_span().unwrap_or((0, 0));
    Ok(Stacks {
        events: l.events.list.iter().map(|e| e.name.clone()).collect(),
        frames: frames_out,
        stacks: merged,
        samples,
        total_samples,
        first_time: span.0,
        last_time: span.1,
        start_clock_ns: l.trace.meta.start_clock_ns,
        start_unix_ns: l.trace.meta.start_unix_ns,
        hostname: l.trace.meta.hostname.clone(),
    })
}
