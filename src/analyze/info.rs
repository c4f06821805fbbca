//! `msen info`: what a trace holds (perf report --header-only plus --stats).

use super::loaded::Loaded;
use crate::perf::record::{RecordIter, RecordType};
use crate::trace::format::BlockKind;
use crate::trace::TraceError;
use rayon::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct Info {
    pub record_counts: BTreeMap<String, u64>,
    pub samples_per_event: Vec<u64>,
    /// Branch-stack entries per event (perf counts these as samples in its
    /// branch view).
    pub branch_entries_per_event: Vec<u64>,
    pub samples: u64,
    pub blocks: usize,
    pub blocks_by_kind: BTreeMap<String, usize>,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub first_time: Option<u64>,
    pub last_time: Option<u64>,
    pub unsplittable: u64,
}

pub fn info(l: &Loaded) -> Result<Info, TraceError> {
    let blocks: Vec<_> =
        l.trace.blocks.iter().filter(|b| matches!(b.header.kind, BlockKind::SAMPLES | BlockKind::SIDEBAND)).copied().collect();
    let nev = l.events.len();
    /// One block's counts: by record type, samples and branch entries per
    /// event, unsplittable runs.
    type Part = (BTreeMap<RecordType, u64>, Vec<u64>, Vec<u64>, u64);
    let parts: Vec<Part> = blocks
        .par_iter()
        .map(|b| -> Result<_, TraceError> {
            let mut counts = BTreeMap::new();
            let mut per_event = vec![0u64; nev];
            let mut branches = vec![0u64; nev];
            let mut bad = 0;
            if let Some(d) = l.trace.decode_or_skip(b)? {
                for r in RecordIter::new(&d, l.events.endian) {
                    let Ok(r) = r else {
                        bad += 1;
                        break;
                    };
                    // Samples count from SAMPLES blocks, everything else from
                    // SIDEBAND blocks (a SAMPLES block over a perf.data's
                    // records also holds the sideband between its samples).
                    if (r.kind == RecordType::SAMPLE) != (b.header.kind == BlockKind::SAMPLES) {
                        continue;
                    }
                    // Flow tags are counted by the flow table, not as samples.
                    if r.kind == RecordType::SAMPLE && l.events.is_tag(r.body) {
                        continue;
                    }
                    *counts.entry(r.kind).or_insert(0) += 1;
                    if r.kind == RecordType::SAMPLE {
                        if let Some(e) = l.events.of_sample(r.body) {
                            let ev = &l.events.list[e as usize];
                            let parsed = ev.parse.parse_sample(r.body).ok();
                            // A group read stands for one sample of every
                            // member (perf delivers it so).
                            let members: Vec<u16> = match parsed.as_ref().and_then(|s| s.read) {
                                Some(rv) if ev.attr.read_format & crate::perf::attr::read_format::GROUP != 0 => {
                                    rv.entries().filter_map(|(_, id)| id.and_then(|id| l.events.of_id(id))).collect()
                                }
                                _ => vec![e],
                            };
                            for m in members {
                                if let Some(c) = per_event.get_mut(m as usize) {
                                    *c += 1;
                                }
                            }
                            if ev.attr.sample_type & crate::perf::attr::sample::BRANCH_STACK != 0 {
                                if let Some(s) = &parsed {
                                    branches[e as usize] += s.branch_stack.map_or(0, |b| b.len() as u64 / 3);
                                }
                            }
                        }
                    }
                }
            }
            Ok((counts, per_event, branches, bad))
        })
        .collect::<Result<_, _>>()?;
    let mut i = Info { samples_per_event: vec![0; nev], branch_entries_per_event: vec![0; nev], ..Default::default() };
    for (counts, per_event, branches, bad) in parts {
        for (k, v) in counts {
            *i.record_counts.entry(k.display_name()).or_insert(0) += v;
        }
        for (a, b) in i.samples_per_event.iter_mut().zip(per_event) {
            *a += b;
        }
        for (a, b) in i.branch_entries_per_event.iter_mut().zip(branches) {
            *a += b;
        }
        i.unsplittable += bad;
    }
    i.samples = i.record_counts.get("SAMPLE").copied().unwrap_or(0);
    for b in &l.trace.blocks {
        i.blocks += 1;
        *i.blocks_by_kind
            .entry(b.header.kind.name().map_or_else(|| format!("unknown({})", b.header.kind.0), str::to_string))
            .or_insert(0) += 1;
        i.raw_bytes += b.header.raw_len as u64;
        i.stored_bytes += b.header.stored_len as u64;
        if b.header.kind == BlockKind::SAMPLES && b.header.record_count > 0 {
            i.first_time = Some(i.first_time.map_or(b.header.first_time, |t| t.min(b.header.first_time)));
            i.last_time = Some(i.last_time.map_or(b.header.last_time, |t| t.max(b.header.last_time)));
        }
    }
    Ok(i)
}

pub fn to_json(l: &Loaded, i: &Info) -> Value {
    let m = &l.trace.meta;
    let r = &l.trace.recovery;
    let events: Vec<Value> = l
        .events
        .list
        .iter()
        .enumerate()
        .map(|(n, e)| {
            json!({
                "name": e.name,
                "attr": e.attr,
                "ids": m.events.get(n).map(|d| d.ids.clone()).unwrap_or_default(),
                "samples": i.samples_per_event.get(n).copied().unwrap_or(0),
                "branch_entries": i.branch_entries_per_event.get(n).copied().unwrap_or(0),
            })
        })
        .collect();
    let flows = json!({
        "enabled": m.flows.enabled,
        "reason": m.flows.reason,
        "hooks": m.flows.hooks,
        "filters": m.flows.filters,
        "pid_filter": m.flows.pids,
        "flows_seen": l.flows.by_id.len(),
        "counters": l.flows.counters,
        "per_cpu": l.flows.per_cpu,
    });
    let mut v = json!({
        "path": l.trace.path().display().to_string(),
        "format_version": format!("{}.{}", l.trace.header.major, l.trace.header.minor),
        "file_bytes": l.trace.file_len(),
        "clean_close": r.clean_close,
        "recovery": {
            "blocks_recovered": r.blocks_recovered,
            "tail_bytes_dropped": r.tail_bytes_dropped,
            "corrupt_blocks": r.corrupt_blocks,
            "index_problem": r.index_problem,
        },
        "software_only": m.software_only,
        "fallback_reason": m.fallback_reason,
        "synthetic": m.synthetic,
        "msen_version": m.msen_version,
        "hostname": m.hostname,
        "kernel_release": m.kernel_release,
        "arch": m.arch,
        "cpu_vendor": m.cpu_vendor,
        "cpu_model": m.cpu_model,
        "cache_line_size": m.cache_line_size,
        "page_size": m.page_size,
        "nr_cpus": m.nr_cpus,
        "online_cpus": m.online_cpus,
        "pmus": m.pmus,
        "cpu_nodes": m.cpu_nodes,
        "memory_nodes": m.memory_nodes,
        "command_line": m.command_line,
        "workload": m.workload,
        "target": m.target,
        "clock": m.clock,
        "start_unix_ns": m.start_unix_ns,
        "duration_ns": match (i.first_time, i.last_time) { (Some(a), Some(b)) => Some(b.saturating_sub(a)), _ => None },
        "capture_end": l.trace.end,
        "events": events,
        "samples": i.samples,
        "lost_samples": l.lost_records,
        "record_counts": i.record_counts,
        "blocks": i.blocks,
        "blocks_by_kind": i.blocks_by_kind,
        "raw_bytes": i.raw_bytes,
        "stored_bytes": i.stored_bytes,
        "bytes_per_sample": if i.samples > 0 { Some(l.trace.file_len() as f64 / i.samples as f64) } else { None },
        "processes": l.timeline.process_count(),
        "dsos": l.timeline.dsos.len(),
        "unsplittable_records": i.unsplittable,
        "flows": flows,
    });
    v["capture_id"] = json!(m.capture_id);
    v["agent"] = json!(l.agent.events);
    // The first and last sample times (trace clock, ns).
    v["time_range_ns"] = json!([i.first_time, i.last_time]);
    v
}

pub fn to_text(l: &Loaded, i: &Info) -> String {
    let m = &l.trace.meta;
    let r = &l.trace.recovery;
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("# {k:<18}: {v}\n"));
    line(
        "file",
        match (&m.source_format, l.trace.external_len()) {
            (Some(f), Some(_)) => format!("{} ({} bytes, {f} read in place)", l.trace.path().display(), l.trace.file_len()),
            _ => format!(
                "{} ({} bytes, format {}.{})",
                l.trace.path().display(),
                l.trace.file_len(),
                l.trace.header.major,
                l.trace.header.minor
            ),
        },
    );
    if r.clean_close {
        line("closed cleanly", "yes".into());
    } else {
        line(
            "closed cleanly",
            format!(
                "no: recovered {} blocks by scanning; dropped {} bytes of an incomplete last block{}{}",
                r.blocks_recovered,
                r.tail_bytes_dropped,
                if r.corrupt_blocks.is_empty() { String::new() } else { format!("; skipped {} corrupt blocks", r.corrupt_blocks.len()) },
                r.index_problem.as_ref().map(|p| format!("; {p}")).unwrap_or_default()
            ),
        );
    }
    line(
        "capture id",
        if m.capture_id.is_empty() { "none recorded (exports derive one from the file's content)".into() } else { m.capture_id.clone() },
    );
    line("hostname", m.hostname.clone());
    line("os release", m.kernel_release.clone());
    line("arch", m.arch.clone());
    line("cpu", format!("{} {}", m.cpu_vendor, m.cpu_model));
    line("cpus", format!("{} online of {}", m.online_cpus.len(), m.nr_cpus));
    line("cache line", format!("{} bytes", m.cache_line_size));
    if !m.pmus.is_empty() {
        line("pmus", m.pmus.join(" "));
    }
    let mut nodes: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for c in &m.cpu_nodes {
        nodes.entry(c.node).or_default().push(c.cpu);
    }
    for (n, cpus) in &nodes {
        let mem: u64 = m.memory_nodes.iter().filter(|r| r.node == *n).map(|r| r.end - r.start).sum();
        line(&format!("node{n}"), format!("cpus {:?}, {} MiB memory", cpus, mem >> 20));
    }
    line("command line", m.command_line.join(" "));
    line("target", m.target.clone());
    line("clock", m.clock.clone());
    if m.software_only {
        line("software only", m.fallback_reason.clone().unwrap_or_else(|| "yes".into()));
    }
    if m.synthetic {
        line("synthetic", "yes (generated, not captured)".into());
    }
    if let (Some(a), Some(b)) = (i.first_time, i.last_time) {
        line("duration", format!("{:.3} s", b.saturating_sub(a) as f64 / 1e9));
    }
    for (n, e) in l.events.list.iter().enumerate() {
        let a = &e.attr;
        line(
            &format!("event {n}"),
            format!(
                "{}: type {} config 0x{:x} {} {} sample_type 0x{:x} precise {}; {} samples",
                e.name,
                a.type_,
                a.config,
                if a.is_freq() { "freq" } else { "period" },
                a.period_or_freq,
                a.sample_type,
                a.precise_ip(),
                i.samples_per_event.get(n).copied().unwrap_or(0)
            ),
        );
    }
    line("samples", i.samples.to_string());
    line("lost records", l.lost_records.to_string());
    match (&m.flows.enabled, &m.flows.reason) {
        (true, _) => {
            let c = |k: &str| l.flows.counters.get(k).copied().unwrap_or(0);
            line(
                "flow context",
                format!(
                    "on: {} flows, {} samples tagged, {} dropped by filters{}",
                    l.flows.by_id.len(),
                    c("tags"),
                    c("dropped_by_flow_filter") + c("dropped_by_pid_filter"),
                    if m.flows.filters.is_empty() { String::new() } else { format!(" (filters {})", m.flows.filters.join(", ")) }
                ),
            );
            for h in &m.flows.hooks {
                line("  hook", h.clone());
            }
            for (key, what) in [("dropped_by_budget", "over the budget"), ("dropped_by_min_gap", "closer than --hard-drop-ns")] {
                let per = l.flows.per_cpu.get(key).map(Vec::as_slice).unwrap_or(&[]);
                if c(key) > 0 {
                    let cpus: Vec<String> =
                        per.iter().enumerate().filter(|(_, &n)| n > 0).map(|(cpu, n)| format!("cpu{cpu} {n}")).collect();
                    line("budget drops", format!("{} {what} ({})", c(key), cpus.join(", ")));
                }
            }
        }
        (false, Some(why)) => line("flow context", format!("off: {why}")),
        (false, None) => line("flow context", "none (not recorded with flows)".into()),
    }
    if let Some(h) = super::agent::host_summary(&l.host) {
        line("host context", format!("{h} (msen info --host)"));
    }
    for e in l.agent.events.iter().filter(|e| e.kind != "mode") {
        line(&e.kind, format!("+{:.3} s {} ({})", e.time.saturating_sub(m.start_clock_ns) as f64 / 1e9, e.detail, e.cause));
    }
    for e in l.agent.switches() {
        let at = e.time.saturating_sub(m.start_clock_ns) as f64 / 1e9;
        let b = &e.budget;
        line(
            "mode",
            format!(
                "+{at:.3} s {} ({}): {}{}",
                e.mode.name(),
                e.cause,
                if b.rate == 0 { "unlimited".to_string() } else { format!("{}/s per CPU, burst {}", b.rate, b.burst) },
                if b.hard_drop_ns > 0 { format!(", min gap {} ns", b.hard_drop_ns) } else { String::new() }
            ),
        );
    }
    line(
        "blocks",
        format!(
            "{} ({} bytes raw, {} stored, {:.1}x)",
            i.blocks,
            i.raw_bytes,
            i.stored_bytes,
            if i.stored_bytes > 0 { i.raw_bytes as f64 / i.stored_bytes as f64 } else { 0.0 }
        ),
    );
    if i.samples > 0 {
        line("bytes per sample", format!("{:.1}", l.trace.file_len() as f64 / i.samples as f64));
    }
    let e = l.resolver.embedded();
    let stored = |k: BlockKind| l.trace.blocks_of(k).map(|b| b.header.stored_len as u64).sum::<u64>();
    if e.dsos.is_empty() {
        line("embedded symbols", "none (names need the binaries where the trace is read)".into());
    } else {
        line(
            "embedded symbols",
            format!(
                "{} objects, {} symbols, {} addresses with lines ({} bytes stored{})",
                e.dsos.len(),
                e.symbol_count(),
                e.line_count(),
                stored(BlockKind::SYMBOLS),
                match e.addresses {
                    0 => String::new(),
                    n => format!(", {n} distinct addresses, {:.1} bytes each", stored(BlockKind::SYMBOLS) as f64 / n as f64),
                }
            ),
        );
        for d in &e.dsos {
            line(
                "  object",
                format!(
                    "{} ({}): {} functions, {} data, {} lines",
                    d.path,
                    d.build_id.as_deref().unwrap_or("no build-id"),
                    d.symbols.len(),
                    d.data_symbols.len(),
                    d.lines.len()
                ),
            );
        }
    }
    let unwind = l.trace.blocks_of(BlockKind::UNWIND).map(|b| b.header.record_count as u64).sum::<u64>();
    if unwind > 0 {
        line("unwind tables", format!("{unwind} binaries ({} bytes stored), for stack copies", stored(BlockKind::UNWIND)));
    }
    if l.resolver.has_vdso_image() {
        line("vdso", format!("carried ({} bytes stored)", stored(BlockKind::VDSO)));
    }
    s.push_str("#\n# record counts:\n");
    for (k, v) in &i.record_counts {
        s.push_str(&format!("#   {k:<16} {v:>10}\n"));
    }
    s
}
