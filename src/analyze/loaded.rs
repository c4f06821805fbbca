//! A trace opened for analysis: events, the process timeline rebuilt from
//! sideband, and a resolver for addresses. Shared by report, script and info.

use super::events::Events;
use super::timeline::Timeline;
use crate::perf::record::{parse_sideband, RecordIter, RecordType, Sample, Sideband};
use crate::symbolize::kallsyms::Kallsyms;
use crate::symbolize::Resolver;
use crate::trace::format::BlockKind;
use crate::trace::reader::BlockRef;
use crate::trace::{OpenOptions, Trace, TraceError};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Options every analysis shares.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub open: OpenOptions,
    /// Look for binaries under this directory instead of /.
    pub symfs: Option<PathBuf>,
    /// Kernel symbols from this file instead of the trace's.
    pub kallsyms: Option<PathBuf>,
    /// Kernel symbols parsed already, instead of the trace's (a reader that
    /// loads a growing trace again and again parses this host's once).
    pub kernel_symbols: Option<std::sync::Arc<Kallsyms>>,
    /// An extra perf-PID.map of JIT symbols.
    pub jit_map: Option<PathBuf>,
    /// Registered data objects: `ADDRESS SIZE NAME [TYPE]` per line.
    pub data_objects: Option<PathBuf>,
}

/// Parse a data-objects file: `ADDRESS SIZE NAME [TYPE]` per line (hex
/// address, decimal or 0x size), `#` comments.
pub fn parse_data_objects(text: &str) -> Result<Vec<crate::symbolize::resolver::DataObject>, String> {
    let mut v = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("data objects line {}: expected `ADDRESS SIZE NAME [TYPE]`, got `{line}`", n + 1);
        if f.len() < 3 {
            return Err(bad());
        }
        let start = u64::from_str_radix(f[0].trim_start_matches("0x"), 16).map_err(|_| bad())?;
        let size = match f[1].strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => f[1].parse(),
        }
        .map_err(|_| bad())?;
        v.push(crate::symbolize::resolver::DataObject {
            start,
            end: start.saturating_add(size),
            name: f[2].to_string(),
            type_name: f.get(3..).map(|t| t.join(" ")).unwrap_or_default(),
        });
    }
    Ok(v)
}

/// Counters of things that could not be decoded; printed in report footers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    pub corrupt_blocks_skipped: u64,
    pub unsplittable_records: u64,
    pub unparsable_samples: u64,
    pub unknown_event_samples: u64,
    /// Flow context: samples with no tag before them, and tags that no
    /// sample followed (both 0 when the join is exact).
    pub samples_without_tag: u64,
    pub unjoined_tags: u64,
}

impl std::ops::AddAssign for DecodeStats {
    fn add_assign(&mut self, o: Self) {
        self.corrupt_blocks_skipped += o.corrupt_blocks_skipped;
        self.unsplittable_records += o.unsplittable_records;
        self.unparsable_samples += o.unparsable_samples;
        self.unknown_event_samples += o.unknown_event_samples;
        self.samples_without_tag += o.samples_without_tag;
        self.unjoined_tags += o.unjoined_tags;
    }
}

/// Does `path` start with a perf.data magic?
pub fn is_perf_data_file(path: &Path) -> bool {
    use std::io::Read;
    let mut m = [0u8; 8];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut m)).is_ok() && crate::perf::data::is_perf_data(&m)
}

/// `--call-graph lbr`: the kernel's part of the callchain (through its
/// PERF_CONTEXT_USER), then the LBR call stack: the callee entry of the
/// newest call, and each call's source, newest first (perf's
/// resolve_lbr_callchain_sample, callee order).
fn lbr_chain(chain: impl Iterator<Item = u64>, s: &Sample<'_>) -> Box<[u64]> {
    use crate::perf::record::PERF_CONTEXT_USER;
    let mut out: Vec<u64> = Vec::new();
    let mut saw_user = false;
    for ip in chain {
        out.push(ip);
        if ip == PERF_CONTEXT_USER {
            saw_user = true;
            break;
        }
    }
    if !saw_user {
        return out.into_boxed_slice();
    }
    let mut entries = s.branches().peekable();
    if let Some(first) = entries.peek() {
        out.push(first.to);
    }
    out.extend(entries.map(|b| b.from).filter(|&f| f != 0));
    out.into_boxed_slice()
}

/// Why a perf.data holds no samples, when its header says so.
fn empty_perf_data_hint(bytes: &[u8]) -> Option<&'static str> {
    // perf writes the data section's size and the feature bits into the
    // header only at the end; a perf record that was killed leaves both 0.
    if bytes.len() >= 104 && bytes.starts_with(b"PERFILE2") && bytes[48..56] == [0; 8] && bytes[72..104] == [0; 32] {
        Some(
            "its header gives a data size of 0, which perf record leaves when it is killed before it finishes; nothing can be read from it",
        )
    } else {
        None
    }
}

#[derive(Debug)]
pub struct Loaded {
    pub trace: Trace,
    pub events: Events,
    pub timeline: Timeline,
    pub resolver: Resolver,
    /// The flow table (empty when the capture had no flow context).
    pub flows: super::flows::FlowIndex,
    /// The agent's mode switches (empty without --mode/--budget).
    pub agent: super::agent::AgentTimeline,
    /// Software clock events' periods after rate changes (applied to the
    /// samples by `for_each_sample_flow`).
    pub clock_periods: super::agent::ClockPeriods,
    /// Host context, one reading a second (empty when not recorded).
    pub host: Vec<crate::trace::meta::HostSample>,
    /// Binaries' unwind tables for samples with a user stack copy.
    pub unwind: super::unwind::Unwind,
    /// PERF_RECORD_LOST totals from the sideband.
    pub lost_records: u64,
    /// Each LOST / LOST_SAMPLES record: its time (0 when unknown) and count.
    pub lost_events: Vec<(u64, u64)>,
    pub sideband_stats: DecodeStats,
}

impl Loaded {
    /// Open an msen trace, or a perf.data (recognized by its magic; its
    /// samples are analyzed in place). `-` is stdin, FIFOs are streams.
    pub fn open(path: &Path, opts: &LoadOptions) -> Result<Loaded, TraceError> {
        crate::output::timing::mark("open");
        let bytes = crate::trace::source::read_all(path)?;
        crate::output::timing::mark("read");
        let name = if crate::trace::source::is_stdin(path) { "<stdin>".to_string() } else { path.display().to_string() };
        let trace = if crate::perf::data::is_perf_data(&bytes) {
            let hint = empty_perf_data_hint(&bytes);
            let t = crate::import::open_perf_data_direct(crate::trace::reader::External(bytes), &name, opts.open)
                .map_err(|e| TraceError::PerfData { path: path.to_path_buf(), reason: e.to_string() })?;
            if let Some(why) = hint {
                if t.blocks_of(BlockKind::SAMPLES).next().is_none() {
                    return Err(TraceError::PerfData { path: path.to_path_buf(), reason: why.to_string() });
                }
            }
            t
        } else {
            Trace::from_bytes(&name, bytes, opts.open)?
        };
        Self::from_trace(trace, opts)
    }

    pub fn from_trace(trace: Trace, opts: &LoadOptions) -> Result<Loaded, TraceError> {
        let endian = trace.meta.endian();
        let events = Events::new(&trace.meta.events, endian);
        let mut stats = DecodeStats::default();
        let blocks: Vec<BlockRef> = trace.blocks_of(BlockKind::SIDEBAND).copied().collect();
        let decoded: Vec<Option<crate::trace::pool::Bytes<'_>>> =
            blocks.par_iter().map(|b| trace.decode_or_skip(b)).collect::<Result<_, _>>()?;
        let info = events.sideband_parse().cloned();
        // (time, block, seq) orders records; synthesized ones (time 0) first.
        let mut recs: Vec<(u64, usize, usize, Sideband)> = Vec::new();
        let mut lost = 0;
        let mut lost_events = Vec::new();
        for (bi, d) in decoded.iter().enumerate() {
            let Some(d) = d else {
                stats.corrupt_blocks_skipped += 1;
                continue;
            };
            for (seq, r) in RecordIter::new(d, endian).enumerate() {
                let Ok(r) = r else {
                    stats.unsplittable_records += 1;
                    break;
                };
                let time = info.as_ref().and_then(|i| i.parse_sample_id(r.body).time).unwrap_or(0);
                match parse_sideband(&r, endian) {
                    Ok(Sideband::Lost(l)) => {
                        lost += l.lost;
                        lost_events.push((time, l.lost));
                    }
                    Ok(Sideband::LostSamples(n)) => {
                        lost += n;
                        lost_events.push((time, n));
                    }
                    Ok(Sideband::Other) => {}
                    Ok(s) => recs.push((time, bi, seq, s)),
                    Err(_) if r.kind == RecordType::SAMPLE => {}
                    Err(_) => stats.unsplittable_records += 1,
                }
            }
        }
        crate::output::timing::mark("sideband decoded");
        recs.sort_by_key(|(t, b, s, _)| (*t, *b, *s));
        let mut timeline = Timeline::default();
        for (time, _, _, s) in &recs {
            match s {
                Sideband::Comm(c) => timeline.add_comm(c, *time),
                Sideband::Mmap(m) => timeline.add_mmap(m, *time),
                Sideband::Fork(t) => timeline.add_fork(t),
                _ => {}
            }
        }
        timeline.finish();
        crate::output::timing::mark("timeline");
        let mut kallsyms = Kallsyms::default();
        if let Some(k) = &opts.kernel_symbols {
            kallsyms = (**k).clone();
        } else if let Some(path) = &opts.kallsyms {
            let text = std::fs::read_to_string(path).map_err(|source| TraceError::Open { path: path.clone(), err: source })?;
            kallsyms = Kallsyms::parse(&text);
        } else if let Some(b) = trace.blocks_of(BlockKind::KALLSYMS).next().copied() {
            match trace.decode_or_skip(&b)? {
                Some(d) => kallsyms = Kallsyms::parse(&String::from_utf8_lossy(&d)),
                None => stats.corrupt_blocks_skipped += 1,
            }
        } else if let Some(id) = trace.end.as_ref().and_then(|e| e.build_ids.iter().find(|b| b.path == "[kernel.kallsyms]")) {
            // A perf.data: perf keeps no kernel symbols in it, only the
            // kernel's build-id; use the ones that match it here.
            if let Some((text, _from)) = crate::symbolize::kallsyms::for_build_id(&id.build_id) {
                kallsyms = Kallsyms::parse(&text);
            }
        }
        let build_ids: HashMap<String, String> =
            trace.end.as_ref().map(|e| e.build_ids.iter().map(|b| (b.path.clone(), b.build_id.clone())).collect()).unwrap_or_default();
        let imported = trace.meta.source_format.is_some();
        let mut jit: HashMap<u32, String> = HashMap::new();
        for b in trace.blocks_of(BlockKind::JIT_MAPS).copied().collect::<Vec<_>>() {
            match trace.decode_or_skip(&b)? {
                Some(d) => {
                    let m: HashMap<String, String> = serde_json::from_slice(&d).unwrap_or_default();
                    // Several blocks for one pid (symbols registered during
                    // the capture, the perf map at its end) add up.
                    for (p, v) in m.into_iter().filter_map(|(k, v)| k.parse::<u32>().ok().map(|p| (p, v))) {
                        let e = jit.entry(p).or_default();
                        if !e.is_empty() && !e.ends_with('\n') {
                            e.push('\n');
                        }
                        e.push_str(&v);
                    }
                }
                None => stats.corrupt_blocks_skipped += 1,
            }
        }
        if let Some(path) = &opts.jit_map {
            let text = std::fs::read_to_string(path).map_err(|source| TraceError::Open { path: path.clone(), err: source })?;
            // perf-PID.map names its pid; otherwise it applies to any process.
            let pid = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("perf-"))
                .and_then(|n| n.strip_suffix(".map"))
                .and_then(|n| n.parse().ok());
            jit.insert(pid.unwrap_or(u32::MAX), text);
        }
        let mut data_objects = Vec::new();
        for b in trace.blocks_of(BlockKind::DATA_OBJECTS).copied().collect::<Vec<_>>() {
            match trace.decode_or_skip(&b)? {
                Some(d) => data_objects.extend(parse_data_objects(&String::from_utf8_lossy(&d)).map_err(|reason| {
                    TraceError::BadMetadata { path: trace.path().to_path_buf(), reason: format!("registered data objects: {reason}") }
                })?),
                None => stats.corrupt_blocks_skipped += 1,
            }
        }
        if let Some(path) = &opts.data_objects {
            let text = std::fs::read_to_string(path).map_err(|source| TraceError::Open { path: path.clone(), err: source })?;
            data_objects = parse_data_objects(&text).map_err(|reason| TraceError::BadMetadata { path: path.clone(), reason })?;
        }
        let mut embedded = crate::symbolize::embedded::Embedded::default();
        for b in trace.blocks_of(BlockKind::SYMBOLS).copied().collect::<Vec<_>>() {
            match trace.decode_or_skip(&b)? {
                Some(d) => {
                    let e: crate::symbolize::embedded::Embedded = serde_json::from_slice(&d).map_err(|e| TraceError::BadMetadata {
                        path: trace.path().to_path_buf(),
                        reason: format!("the embedded symbols do not parse: {e}"),
                    })?;
                    embedded.dsos.extend(e.dsos);
                    embedded.addresses += e.addresses;
                }
                None => stats.corrupt_blocks_skipped += 1,
            }
        }
        embedded.dsos.sort_by(|a, b| a.path.cmp(&b.path).then(a.build_id.cmp(&b.build_id)));
        let vdso = match trace.blocks_of(BlockKind::VDSO).next().copied() {
            Some(b) => trace.decode_or_skip(&b)?.map(|d| d.into_owned()),
            None => None,
        };
        crate::output::timing::mark("kallsyms, jit, data objects, embedded");
        let resolver = Resolver::new(timeline.dsos.clone(), build_ids, kallsyms, opts.symfs.clone())
            .with_embedded(embedded)
            .with_vdso(vdso)
            .with_kernel_maps(timeline.kernel_maps(), imported)
            .with_jit_maps(jit)
            .with_data_objects(data_objects);
        let mut carried = Vec::new();
        for b in trace.blocks_of(BlockKind::UNWIND).copied().collect::<Vec<_>>() {
            match trace.decode_or_skip(&b)? {
                Some(d) => carried.extend(crate::symbolize::embedded::decode_unwind(&d).map_err(|reason| TraceError::BadMetadata {
                    path: trace.path().to_path_buf(),
                    reason: format!("the embedded unwind tables do not parse: {reason}"),
                })?),
                None => stats.corrupt_blocks_skipped += 1,
            }
        }
        crate::output::timing::mark("resolver");
        let stack_copies = events.list.iter().any(|e| e.attr.sample_type & crate::perf::attr::sample::STACK_USER != 0);
        let unwind =
            if stack_copies { super::unwind::Unwind::new(&resolver, timeline.dsos.len(), &carried) } else { super::unwind::Unwind::none() };
        crate::output::timing::mark("unwind tables");
        let flows = super::flows::FlowIndex::load(&trace, events.tags.is_some())?;
        crate::output::timing::mark("flows");
        let agent = super::agent::AgentTimeline::load(&trace)?;
        let clock_periods = super::agent::ClockPeriods::new(&agent, events.list.iter().map(|e| e.name.as_str()));
        let host = super::agent::load_host(&trace)?;
        crate::output::timing::mark("loaded");
        Ok(Loaded {
            trace,
            events,
            timeline,
            resolver,
            flows,
            agent,
            clock_periods,
            host,
            unwind,
            lost_records: lost,
            lost_events,
            sideband_stats: stats,
        })
    }

    /// Decode one SAMPLES block and call `f(event, cpumode, sample)` for each
    /// sample that parses; what cannot be decoded is counted in `stats`.
    pub fn for_each_sample(
        &self,
        b: &BlockRef,
        stats: &mut DecodeStats,
        mut f: impl FnMut(u16, u16, &Sample<'_>),
    ) -> Result<(), TraceError> {
        self.for_each_sample_flow(b, stats, |ev, cpumode, s, _| f(ev, cpumode, s))
    }

    /// As `for_each_sample`, with each sample's flow (None when the trace
    /// has no flow context or no tag preceded the sample).
    pub fn for_each_sample_flow(
        &self,
        b: &BlockRef,
        stats: &mut DecodeStats,
        mut f: impl FnMut(u16, u16, &Sample<'_>, Option<super::flows::SampleFlow>),
    ) -> Result<(), TraceError> {
        let Some(data) = self.trace.decode_or_skip(b)? else {
            stats.corrupt_blocks_skipped += 1;
            return Ok(());
        };
        // (tag, its thread) waiting for the sample it precedes.
        let mut pending: Option<(super::flows::SampleFlow, Option<u32>)> = None;
        for r in RecordIter::new(&data, self.events.endian) {
            let Ok(r) = r else {
                stats.unsplittable_records += 1;
                break;
            };
            if r.kind != RecordType::SAMPLE {
                continue;
            }
            if let Some(t) = self.events.tags.as_ref().filter(|_| self.events.is_tag(r.body)) {
                let tag = t.parse.parse_sample(r.body).ok().and_then(|s| {
                    let flow = s.raw.and_then(crate::flow::decode_tag)?;
                    Some((super::flows::SampleFlow::from_tag(&flow), s.tid))
                });
                if pending.is_some() {
                    stats.unjoined_tags += 1;
                }
                pending = tag;
                continue;
            }
            let Some(ev) = self.events.of_sample(r.body) else {
                stats.unknown_event_samples += 1;
                continue;
            };
            let Ok(mut s) = self.events.list[ev as usize].parse.parse_sample(r.body) else {
                stats.unparsable_samples += 1;
                continue;
            };
            if let Some(p) = self.clock_periods.at(ev, s.time) {
                s.period = Some(p);
            }
            let flow = match pending.take() {
                Some((fl, tid)) if tid.is_none() || tid == s.tid => Some(fl),
                Some(_) => {
                    stats.unjoined_tags += 1;
                    None
                }
                None => None,
            };
            if flow.is_none() && self.events.tags.is_some() {
                stats.samples_without_tag += 1;
            }
            f(ev, r.cpumode(), &s, flow);
        }
        if pending.is_some() {
            stats.unjoined_tags += 1;
        }
        Ok(())
    }

    /// True when some event samples user stacks (--call-graph dwarf).
    pub fn has_stack_copies(&self) -> bool {
        self.events.list.iter().any(|e| e.attr.sample_type & crate::perf::attr::sample::STACK_USER != 0)
    }

    /// An unwinder for one worker (see `unwind`).
    pub fn unwinder(&self) -> super::unwind::UnwindWorker<'_> {
        super::unwind::UnwindWorker::new(&self.unwind, &self.timeline)
    }

    /// As `chain_of`, into `buf` (cleared first) without allocating for the
    /// common case (the kernel's callchain); false when the sample has none.
    pub fn chain_into(&self, ev: u16, s: &Sample<'_>, w: &mut super::unwind::UnwindWorker<'_>, buf: &mut Vec<u64>) -> bool {
        buf.clear();
        let attr = &self.events.list[ev as usize].attr;
        let special =
            (attr.branch_sample_type & crate::record::attrs::branch::CALL_STACK != 0 && s.branch_stack.is_some()) || s.stack_user.is_some();
        if special {
            return match self.chain_of(ev, s, w) {
                Some(c) => {
                    buf.extend_from_slice(&c);
                    true
                }
                None => false,
            };
        }
        match s.callchain {
            Some(c) => {
                buf.extend(c.iter());
                true
            }
            None => false,
        }
    }

    /// The call chain of a sample: unwound from its stack copy when it has
    /// one, else the kernel's callchain as recorded.
    pub fn chain_of(&self, ev: u16, s: &Sample<'_>, w: &mut super::unwind::UnwindWorker<'_>) -> Option<Box<[u64]>> {
        let attr = &self.events.list[ev as usize].attr;
        if attr.branch_sample_type & crate::record::attrs::branch::CALL_STACK != 0 && s.branch_stack.is_some() {
            if let Some(c) = s.callchain {
                return Some(lbr_chain(c.iter(), s));
            }
        }
        if s.stack_user.is_some() {
            let pid = s.pid.unwrap_or(u32::MAX);
            let epoch = self.timeline.epoch_at(pid, s.time.unwrap_or(0));
            if let Some(c) = w.chain(s, attr.sample_regs_user, pid, epoch) {
                return Some(c.into_boxed_slice());
            }
        }
        s.callchain.map(|c| c.iter().collect::<Vec<_>>().into_boxed_slice())
    }

    pub fn sample_blocks(&self) -> Vec<BlockRef> {
        self.trace.blocks_of(BlockKind::SAMPLES).copied().collect()
    }

    /// The first and last sample time, from the block index. Traces written
    /// before the writer skipped timeless records when it kept a block's
    /// first time say 0 there; the recording's start stands in for those.
    pub fn sample_time_span(&self) -> Option<(u64, u64)> {
        let sb = self.sample_blocks();
        let last = sb.iter().map(|b| b.header.last_time).max().filter(|&t| t > 0)?;
        let start = self.trace.meta.start_clock_ns;
        let first = sb
            .iter()
            .map(|b| if b.header.first_time > 0 || b.header.last_time == 0 { b.header.first_time } else { start })
            .filter(|&t| t > 0)
            .min()?;
        Some((first.min(last), last))
    }
}
