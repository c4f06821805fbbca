//! One trace from several consecutive ones of the same capture session
//! (the flight recorder's segments): the first one's metadata, every
//! segment's records in order, and one set of ends (flows and counters
//! summed, kernel symbols and build-ids united, one vdso).
//!
//! The segments share their events (ids and attrs), which stay open across
//! them; each starts with the processes described again at time 0, which
//! the analyses read as the same mappings seen twice.

use super::meta::{BuildId, CaptureEnd, FlowTable};
use super::{BlockInfo, BlockKind, OpenOptions, Trace, TraceError, TraceWriter, STREAM_GLOBAL};
use std::collections::BTreeMap;
use std::path::Path;

/// What a merge wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    pub segments: usize,
    pub samples: u64,
    pub bytes: u64,
}

/// Blocks copied as they are, segment after segment.
const COPIED: &[BlockKind] = &[
    BlockKind::SIDEBAND,
    BlockKind::SAMPLES,
    BlockKind::AGENT,
    BlockKind::HOST,
    BlockKind::JIT_MAPS,
    BlockKind::SYMBOLS,
    BlockKind::UNWIND,
];

fn global(kind: BlockKind, n: u32) -> BlockInfo {
    BlockInfo { kind, stream: STREAM_GLOBAL, record_count: n, first_time: 0, last_time: 0 }
}

/// Merge `inputs` (oldest first) into `w`, a new trace at `out`, up to its
/// end block; the caller adds what it wants (embedded symbols) and finishes
/// it. `capture_id` and `stop_reason` describe the new trace.
pub fn merge_into(inputs: &[&Path], w: &mut TraceWriter, out: &Path, capture_id: &str, stop_reason: &str) -> Result<Merged, TraceError> {
    let io = |e: std::io::Error| TraceError::Open { path: out.to_path_buf(), err: e };
    let traces: Vec<Trace> = inputs.iter().map(|p| Trace::open(p, OpenOptions::default())).collect::<Result<_, _>>()?;
    let Some(first) = traces.first() else {
        return Err(TraceError::BadMetadata { path: out.to_path_buf(), reason: "nothing to merge".into() });
    };
    let mut meta = first.meta.clone();
    meta.capture_id = capture_id.to_string();
    w.write_block(global(BlockKind::METADATA, 1), &serde_json::to_vec(&meta).map_err(|e| io(std::io::Error::other(e)))?).map_err(io)?;
    let mut kallsyms = String::new();
    let mut vdso: Option<Vec<u8>> = None;
    let mut flows: Option<FlowTable> = None;
    let mut end = CaptureEnd { stop_reason: stop_reason.to_string(), ..Default::default() };
    let mut build_ids: BTreeMap<String, String> = BTreeMap::new();
    for t in &traces {
        for b in &t.blocks {
            let kind = b.header.kind;
            let Some(d) = t.decode_or_skip(b)? else { continue };
            if COPIED.contains(&kind) {
                let info = BlockInfo {
                    kind,
                    stream: b.header.stream,
                    record_count: b.header.record_count,
                    first_time: b.header.first_time,
                    last_time: b.header.last_time,
                };
                w.write_block(info, &d).map_err(io)?;
            } else if kind == BlockKind::KALLSYMS {
                kallsyms.push_str(&String::from_utf8_lossy(&d));
                if !kallsyms.ends_with('\n') {
                    kallsyms.push('\n');
                }
            } else if kind == BlockKind::VDSO && vdso.is_none() {
                vdso = Some(d.into_owned());
            } else if kind == BlockKind::FLOWS {
                let f: FlowTable = serde_json::from_slice(&d)
                    .map_err(|e| TraceError::BadMetadata { path: t.path().to_path_buf(), reason: format!("flows block: {e}") })?;
                flows = Some(match flows.take() {
                    None => f,
                    Some(mut acc) => {
                        // Later segments know every flow so far: theirs win.
                        let mut by_id: BTreeMap<u64, _> = acc.flows.drain(..).map(|x| (x.id, x)).collect();
                        by_id.extend(f.flows.into_iter().map(|x| (x.id, x)));
                        acc.flows = by_id.into_values().collect();
                        for (k, per) in f.per_cpu {
                            let slot = acc.per_cpu.entry(k).or_default();
                            if slot.len() < per.len() {
                                slot.resize(per.len(), 0);
                            }
                            for (i, v) in per.into_iter().enumerate() {
                                slot[i] += v;
                            }
                        }
                        acc.counters = acc.per_cpu.iter().map(|(k, v)| (k.clone(), v.iter().sum())).collect();
                        acc
                    }
                });
            }
        }
        if let Some(e) = &t.end {
            end.samples += e.samples;
            end.lost_records += e.lost_records;
            end.end_unix_ns = end.end_unix_ns.max(e.end_unix_ns);
            end.end_clock_ns = end.end_clock_ns.max(e.end_clock_ns);
            build_ids.extend(e.build_ids.iter().map(|b| (b.path.clone(), b.build_id.clone())));
        }
    }
    if let Some(f) = &flows {
        w.write_block(global(BlockKind::FLOWS, f.flows.len() as u32), &serde_json::to_vec(f).map_err(|e| io(std::io::Error::other(e)))?)
            .map_err(io)?;
    }
    if !kallsyms.is_empty() {
        // The union, one entry per line once (segments overlap).
        let mut lines: Vec<&str> = kallsyms.lines().collect();
        lines.sort_unstable();
        lines.dedup();
        w.write_block(global(BlockKind::KALLSYMS, 1), (lines.join("\n") + "\n").as_bytes()).map_err(io)?;
    }
    if let Some(v) = &vdso {
        w.write_block(global(BlockKind::VDSO, 1), v).map_err(io)?;
    }
    end.build_ids = build_ids.into_iter().map(|(path, build_id)| BuildId { path, build_id }).collect();
    w.write_block(global(BlockKind::CAPTURE_END, 1), &serde_json::to_vec(&end).map_err(|e| io(std::io::Error::other(e)))?).map_err(io)?;
    Ok(Merged { segments: traces.len(), samples: end.samples, bytes: w.position() })
}
