//! `msen script`: one decoded record per line, in time order, as text or
//! JSON lines, with every sample field the trace holds.

use super::datasrc::DataSrc;
use super::loaded::Loaded;
use super::report::frames;
use super::unwind::UnwindWorker;
use crate::perf::record::{misc, parse_sideband, RecordIter, RecordType, Sample, Sideband};
use crate::symbolize::dwarf::{Dwarf, Frame};
use crate::symbolize::Resolved;
use crate::trace::format::BlockKind;
use crate::trace::TraceError;
use rayon::prelude::*;
use rustc_hash::FxHashMap as HashMap;
use serde_json::{json, Map, Value};
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptFormat {
    Text,
    Jsonl,
}

#[derive(Debug, Clone)]
pub struct ScriptConfig {
    pub format: ScriptFormat,
    /// Also print non-sample records (MMAP2, COMM, FORK, EXIT, LOST, ...).
    pub all_records: bool,
    /// Add source lines and inline chains (DWARF) to every sample.
    pub srcline: bool,
}

/// What one worker looked up: each (process, exec epoch, mode, address)
/// resolved once, one DWARF reader per binary, each DWARF address once.
/// Samples repeat addresses; the lookups need not be repeated.
#[derive(Debug, Default)]
struct BlockCache {
    syms: HashMap<(u32, u16, bool, u64), Resolved>,
    readers: HashMap<u32, Option<Dwarf>>,
    memo: HashMap<(u32, u64), Vec<Frame>>,
}

impl BlockCache {
    fn resolve(&mut self, l: &Loaded, pid: u32, time: u64, kernel: bool, ip: u64) -> Resolved {
        let epoch = if kernel { 0 } else { l.timeline.epoch_at(pid, time) };
        self.syms
            .entry((pid, epoch, kernel, ip))
            .or_insert_with(|| if kernel { l.resolver.kernel(ip) } else { l.resolver.user(l.timeline.find_map(pid, epoch, ip), ip) })
            .clone()
    }

    fn frames(&mut self, l: &Loaded, at: (u32, u64)) -> &[Frame] {
        if !self.memo.contains_key(&at) {
            let reader = self.readers.entry(at.0).or_insert_with(|| l.resolver.debug_file(at.0).and_then(Dwarf::open));
            let f = reader.as_ref().map(|d| d.frames(at.1)).unwrap_or_default();
            self.memo.insert(at, f);
        }
        self.memo.get(&at).map_or(&[], |v| v.as_slice())
    }
}

fn frames_json(frames: &[Frame]) -> Value {
    json!(frames.iter().map(|f| json!({"function": f.function, "file": f.file, "line": f.line, "inlined": f.inlined})).collect::<Vec<_>>())
}

fn sym_text(r: &Resolved) -> String {
    match &r.sym {
        Ok(n) => n.clone(),
        Err(_) => "[unknown]".into(),
    }
}

fn sample_json(
    l: &Loaded,
    ev: u16,
    cpumode: u16,
    s: &Sample<'_>,
    cache: &mut BlockCache,
    uw: &mut UnwindWorker<'_>,
    srcline: bool,
) -> Value {
    let mut m = Map::new();
    let pid = s.pid.unwrap_or(0);
    let time = s.time.unwrap_or(0);
    let kernel = matches!(cpumode, misc::KERNEL | misc::GUEST_KERNEL | misc::HYPERVISOR);
    m.insert("type".into(), json!("SAMPLE"));
    m.insert("event".into(), json!(l.events.list[ev as usize].name));
    m.insert("comm".into(), json!(l.timeline.comm_at(pid, s.tid.unwrap_or(pid), time).map(|c| l.timeline.comm_name(c))));
    m.insert("pid".into(), json!(s.pid));
    m.insert("tid".into(), json!(s.tid));
    m.insert("cpu".into(), json!(s.cpu));
    m.insert("time".into(), json!(s.time));
    m.insert("period".into(), json!(s.period));
    m.insert("ip".into(), json!(s.ip.map(|ip| format!("0x{ip:x}"))));
    m.insert("cpumode".into(), json!(if kernel { "kernel" } else { "user" }));
    if let Some(ip) = s.ip {
        let r = cache.resolve(l, pid, time, kernel, ip);
        m.insert("sym".into(), json!(r.sym.as_ref().ok()));
        m.insert("dso".into(), json!(r.dso));
        if let Err(why) = &r.sym {
            m.insert("unresolved".into(), json!(why.as_str()));
        }
        if let Some((dso, va)) = r.elf_addr {
            m.insert("elf_addr".into(), json!(format!("0x{va:x}")));
            if srcline {
                let frames = cache.frames(l, (dso, va));
                m.insert("srcline".into(), json!(frames.first().map(|f| f.srcline())));
                m.insert("frames".into(), frames_json(frames));
            }
        }
    }
    m.insert("addr".into(), json!(s.addr.map(|a| format!("0x{a:x}"))));
    if let Some(a) = s.addr.filter(|&a| a != 0) {
        let epoch = l.timeline.epoch_at(pid, time);
        let hit = l.timeline.find_map(pid, epoch, a).map(|h| (h, h.map_start, 0));
        let below = l.timeline.file_map_below(pid, epoch, a);
        m.insert("data_sym".into(), json!(l.resolver.data_symbol_with_bss(hit, below, a).map(|d| d.text())));
    }
    m.insert("data_src".into(), json!(s.data_src.map(|a| format!("0x{a:x}"))));
    if let Some(d) = s.data_src.map(DataSrc) {
        m.insert(
            "data_src_fields".into(),
            json!({"op": d.op_text(), "mem": d.lvl_text(), "snoop": d.snoop_text(), "tlb": d.tlb_text(), "lock": d.lock_text(), "blocked": d.blk_text().trim_start(), "text": d.script_text()}),
        );
    }
    m.insert("weight".into(), json!(s.weight));
    if s.ins_lat.is_some() {
        m.insert("ins_lat".into(), json!(s.ins_lat));
    }
    m.insert("phys_addr".into(), json!(s.phys_addr.map(|a| format!("0x{a:x}"))));
    m.insert("id".into(), json!(s.id));
    let chain: Option<Vec<Value>> = l.chain_of(ev, s, uw).map(|words| {
        frames(&words, kernel)
            .map(|(k, ip)| {
                let r = cache.resolve(l, pid, time, k, ip);
                json!({"ip": format!("0x{ip:x}"), "sym": r.sym.as_ref().ok(), "dso": r.dso})
            })
            .collect()
    });
    m.insert("callchain".into(), json!(chain));
    let branches: Option<Vec<Value>> = s.branch_stack.map(|_| {
        s.branches()
            .map(|b| {
                json!({"from": format!("0x{:x}", b.from), "to": format!("0x{:x}", b.to), "mispred": b.mispred(), "predicted": b.predicted(),
                       "in_tx": b.in_tx(), "abort": b.abort(), "cycles": b.cycles(), "type": b.branch_type(), "text": b.perf_text()})
            })
            .collect()
    });
    m.insert("branch_stack".into(), json!(branches));
    Value::Object(m)
}

fn sample_text(l: &Loaded, ev: u16, cpumode: u16, s: &Sample<'_>, cache: &mut BlockCache, uw: &mut UnwindWorker<'_>) -> String {
    let pid = s.pid.unwrap_or(0);
    let tid = s.tid.unwrap_or(pid);
    let time = s.time.unwrap_or(0);
    let kernel = matches!(cpumode, misc::KERNEL | misc::GUEST_KERNEL | misc::HYPERVISOR);
    let comm = l.timeline.comm_at(pid, tid, time).map_or_else(|| format!(":{}", tid as i32), |c| l.timeline.comm_name(c).to_string());
    let mut out = format!(
        "{comm:>16} {pid:>7}/{tid:<7} [{:03}] {:>5}.{:06}: {:>10} {}:",
        s.cpu.unwrap_or(0),
        time / 1_000_000_000,
        (time % 1_000_000_000) / 1000,
        s.period.unwrap_or(l.events.list[ev as usize].default_period),
        l.events.list[ev as usize].name
    );
    if let Some(a) = s.addr {
        out.push_str(&format!(" addr {a:016x}"));
    }
    if let Some(d) = s.data_src {
        out.push_str(&format!(" data_src {d:x} {}", DataSrc(d).script_text()));
    }
    if let Some(w) = s.weight {
        out.push_str(&format!(" weight {w}"));
    }
    if let Some(p) = s.phys_addr {
        out.push_str(&format!(" phys_addr {p:x}"));
    }
    if let Some(ip) = s.ip {
        let r = cache.resolve(l, pid, time, kernel, ip);
        out.push_str(&format!(" {ip:16x} {} ({})", sym_text(&r), r.dso));
    }
    if let Some(words) = l.chain_of(ev, s, uw) {
        for (k, ip) in frames(&words, kernel) {
            let r = cache.resolve(l, pid, time, k, ip);
            out.push_str(&format!("\n\t{ip:16x} {} ({})", sym_text(&r), r.dso));
        }
        out.push('\n');
    }
    if s.branch_stack.is_some() {
        out.push_str("\n\tbrstack:");
        for b in s.branches() {
            out.push(' ');
            out.push_str(&b.perf_text());
        }
    }
    out
}

fn sideband_value(kind: RecordType, sb: &Sideband) -> Value {
    match sb {
        Sideband::Mmap(m) => {
            json!({"type": kind.display_name(), "pid": m.pid, "tid": m.tid, "start": format!("0x{:x}", m.start), "len": m.len, "pgoff": m.pgoff, "prot": m.prot, "filename": m.filename})
        }
        Sideband::Comm(c) => {
            json!({"type": "COMM", "pid": c.pid, "tid": c.tid, "comm": c.comm, "exec": c.exec})
        }
        Sideband::Fork(t) => {
            json!({"type": "FORK", "pid": t.pid, "ppid": t.ppid, "tid": t.tid, "ptid": t.ptid})
        }
        Sideband::Exit(t) => {
            json!({"type": "EXIT", "pid": t.pid, "ppid": t.ppid, "tid": t.tid, "ptid": t.ptid})
        }
        Sideband::Lost(x) => json!({"type": "LOST", "id": x.id, "lost": x.lost}),
        Sideband::LostSamples(n) => json!({"type": "LOST_SAMPLES", "lost": n}),
        Sideband::Other => json!({"type": kind.display_name()}),
    }
}

/// Write every record to `out` in time order. Returns the number of lines.
pub fn script(l: &Loaded, cfg: &ScriptConfig, out: &mut dyn Write) -> Result<u64, TraceError> {
    let mut blocks: Vec<_> = l.trace.blocks_of(BlockKind::SAMPLES).copied().collect();
    if cfg.all_records {
        blocks.extend(l.trace.blocks_of(BlockKind::SIDEBAND).copied());
    }
    let sid = l.events.sideband_parse().cloned();
    let lines: Vec<Vec<(u64, usize, usize, String)>> = blocks
        .par_iter()
        .enumerate()
        .map(|(bi, b)| -> Result<_, TraceError> {
            let mut v = Vec::new();
            let mut cache = BlockCache::default();
            let mut uw = l.unwinder();
            let Some(d) = l.trace.decode_or_skip(b)? else {
                return Ok(v);
            };
            let in_samples = b.header.kind == BlockKind::SAMPLES;
            // The flow tag written right before the next sample (see analyze::flows).
            let mut pending_flow: Option<super::flows::SampleFlow> = None;
            for (seq, r) in RecordIter::new(&d, l.events.endian).enumerate() {
                let Ok(r) = r else { break };
                // Samples from SAMPLES blocks, the rest from SIDEBAND blocks.
                if (r.kind == RecordType::SAMPLE) != in_samples {
                    continue;
                }
                if r.kind == RecordType::SAMPLE {
                    if let Some(t) = l.events.tags.as_ref().filter(|_| l.events.is_tag(r.body)) {
                        pending_flow = t
                            .parse
                            .parse_sample(r.body)
                            .ok()
                            .and_then(|s| s.raw.and_then(crate::flow::decode_tag))
                            .map(|t| super::flows::SampleFlow::from_tag(&t));
                        continue;
                    }
                    let Some(ev) = l.events.of_sample(r.body) else {
                        continue;
                    };
                    let flow = pending_flow.take();
                    let line = match l.events.list[ev as usize].parse.parse_sample(r.body) {
                        Ok(mut s) => {
                            if let Some(p) = l.clock_periods.at(ev, s.time) {
                                s.period = Some(p);
                            }
                            let t = s.time.unwrap_or(0);
                            let text = match cfg.format {
                                ScriptFormat::Jsonl => {
                                    let mut v = sample_json(l, ev, r.cpumode(), &s, &mut cache, &mut uw, cfg.srcline);
                                    if l.flows.enabled {
                                        if let Value::Object(m) = &mut v {
                                            m.insert("flow".into(), json!(flow.filter(|f| f.id != 0).map(|f| l.flows.text(f.id))));
                                            m.insert("flow_id".into(), json!(flow.filter(|f| f.id != 0).map(|f| format!("{:016x}", f.id))));
                                            m.insert("flow_rule".into(), json!(flow.map(|f| f.rule.as_str())));
                                            m.insert("flow_multiplexed".into(), json!(flow.map(|f| f.multiplexed)));
                                            m.insert("flow_age_ns".into(), json!(flow.map(|f| f.age_ns)));
                                        }
                                    }
                                    v.to_string()
                                }
                                ScriptFormat::Text => {
                                    let mut t = sample_text(l, ev, r.cpumode(), &s, &mut cache, &mut uw);
                                    if let Some(f) = flow.filter(|f| f.id != 0) {
                                        let at = t.find('\n').unwrap_or(t.len());
                                        t.insert_str(at, &format!(" flow {}", l.flows.text(f.id)));
                                    }
                                    t
                                }
                            };
                            (t, text)
                        }
                        Err(e) => (
                            0,
                            match cfg.format {
                                ScriptFormat::Jsonl => json!({"type": "SAMPLE", "error": e.to_string()}).to_string(),
                                ScriptFormat::Text => format!("unparsable sample: {e}"),
                            },
                        ),
                    };
                    v.push((line.0, bi, seq, line.1));
                } else {
                    let id = sid.as_ref().map(|p| p.parse_sample_id(r.body)).unwrap_or_default();
                    let t = id.time.unwrap_or(0);
                    let sb = parse_sideband(&r, l.events.endian).unwrap_or(Sideband::Other);
                    let mut val = sideband_value(r.kind, &sb);
                    if let Value::Object(m) = &mut val {
                        m.insert("time".into(), json!(t));
                        m.insert("cpu".into(), json!(id.cpu));
                    }
                    let text = match cfg.format {
                        ScriptFormat::Jsonl => val.to_string(),
                        ScriptFormat::Text => format!("{:>5}.{:06}: {}", t / 1_000_000_000, (t % 1_000_000_000) / 1000, val),
                    };
                    v.push((t, bi, seq, text));
                }
            }
            Ok(v)
        })
        .collect::<Result<_, _>>()?;
    let mut all: Vec<(u64, usize, usize, String)> = lines.into_iter().flatten().collect();
    all.sort_by_key(|a| (a.0, a.1, a.2));
    let n = all.len() as u64;
    for (_, _, _, line) in all {
        if writeln!(out, "{line}").is_err() {
            // Broken pipe (e.g. `| head`): stop quietly.
            break;
        }
    }
    Ok(n)
}
