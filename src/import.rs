//! perf.data -> .msen: the records go over unchanged (in the file's byte
//! order), samples into per-CPU SAMPLES blocks and everything else into
//! SIDEBAND; attrs, names, topology, build-ids and the command line into the
//! metadata. A converted file answers exactly as the original.

use crate::analyze::events::Events;
use crate::perf::attr::{type_id, Endian};
use crate::perf::data::{self, PerfData, PerfDataError};
use crate::perf::record::{parse_sideband, RecordType, Sideband};
use crate::perf::sys::parse_cpu_list;
use crate::record::chunker::BLOCK_TARGET;
use crate::trace::format::STREAM_GLOBAL;
use crate::trace::meta::{BuildId, CaptureEnd, CpuNode, EventDesc, MemoryRange, Metadata};
use crate::trace::{BlockBuffer, BlockInfo, BlockKind, TraceWriter};
use std::collections::BTreeMap;
use std::io::{self, Write};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    PerfData(#[from] PerfDataError),
    #[error("writing the trace: {0}")]
    Write(#[from] io::Error),
}

#[derive(Debug, Clone, Default)]
pub struct ImportSummary {
    pub samples: u64,
    pub other_records: u64,
    pub trailing_bytes: u64,
    /// With `external_samples`: where the samples are in `PerfData::records`.
    pub external_chunks: Vec<ExternalChunk>,
}

/// A run of records in the perf.data's record buffer holding `samples`
/// samples (and whatever sideband lies between them).
#[derive(Debug, Clone, Copy)]
pub struct ExternalChunk {
    pub start: usize,
    pub len: usize,
    pub samples: u32,
    pub first: u64,
    pub last: u64,
}

fn metadata(pd: &PerfData<'_>, source: &str) -> Metadata {
    let f = &pd.features;
    let mut cpu_nodes = Vec::new();
    for (node, list) in &f.numa_nodes {
        cpu_nodes.extend(parse_cpu_list(list).into_iter().map(|cpu| CpuNode { cpu, node: *node }));
    }
    cpu_nodes.sort_by_key(|c| (c.cpu, c.node));
    let mut memory_nodes = Vec::new();
    if let Some((bsize, nodes)) = &f.mem_topology {
        for (node, blocks) in nodes {
            for &b in blocks {
                let start = b * bsize;
                match memory_nodes.last_mut() {
                    Some(MemoryRange { end, node: n, .. }) if *n as u64 == *node && *end == start => *end = start + bsize,
                    _ => memory_nodes.push(MemoryRange { start, end: start + bsize, node: *node as u32 }),
                }
            }
        }
    }
    let events: Vec<EventDesc> = pd
        .events
        .iter()
        .map(|e| EventDesc { name: e.name.clone().unwrap_or_else(|| e.attr.default_name()), attr: e.attr.clone(), ids: e.ids.clone() })
        .collect();
    let cpu_vendor = f.cpuid.as_deref().and_then(|c| c.split([',', '-']).next()).unwrap_or("").to_string();
    // A damaged NRCPUS must not drive allocations: no machine has 2^16 CPUs.
    const MAX_CPUS: u32 = 1 << 16;
    let nr = f.nr_cpus_avail.unwrap_or(0).min(MAX_CPUS);
    Metadata {
        msen_version: env!("CARGO_PKG_VERSION").to_string(),
        capture_id: crate::trace::meta::content_capture_id(&pd.records),
        hostname: f.hostname.clone().unwrap_or_default(),
        kernel_release: f.osrelease.clone().unwrap_or_default(),
        arch: f.arch.clone().unwrap_or_default(),
        cpu_vendor,
        cpu_model: f.cpudesc.clone().unwrap_or_default(),
        // perf.data records no line size unless the CACHE feature is there;
        // 64 bytes is what perf c2c assumes on x86 and arm64 alike.
        cache_line_size: f.cache_line.unwrap_or(64),
        page_size: 4096,
        nr_cpus: nr,
        online_cpus: (0..f.nr_cpus_online.unwrap_or(nr).min(MAX_CPUS)).collect(),
        cpu_nodes,
        memory_nodes,
        software_only: !events.is_empty() && events.iter().all(|e| e.attr.type_ == type_id::SOFTWARE),
        events,
        command_line: f.cmdline.clone(),
        clock: if pd.events.first().is_some_and(|e| e.attr.flags & crate::perf::attr::flag::USE_CLOCKID != 0) {
            "clockid".into()
        } else {
            "perf".into()
        },
        byte_order: if pd.endian == Endian::Big { "big".into() } else { "little".into() },
        source_format: Some(format!(
            "perf.data ({}{})",
            if pd.pipe { "pipe mode" } else { "file mode" },
            if source.is_empty() { String::new() } else { format!(", {source}") }
        )),
        target: "imported".into(),
        ..Default::default()
    }
}

/// How samples are laid out in blocks.
#[derive(Debug, Clone, Copy)]
pub struct ConvertOptions {
    /// One stream per CPU with time ranges (what `msen import` writes), or
    /// arrival order in one stream without decoding samples (for a trace
    /// built in memory only to be analyzed once).
    pub by_cpu: bool,
    /// With `by_cpu` false: write no SAMPLES blocks, return the ranges of the
    /// records instead (analysis straight from the mapped perf.data).
    pub external_samples: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions { by_cpu: true, external_samples: false }
    }
}

/// Convert a parsed perf.data into trace blocks.
pub fn convert<W: Write + Send>(pd: &PerfData<'_>, source: &str, w: &mut TraceWriter<W>) -> Result<ImportSummary, ImportError> {
    convert_with(pd, source, w, ConvertOptions::default())
}

pub fn convert_with<W: Write + Send>(
    pd: &PerfData<'_>,
    source: &str,
    w: &mut TraceWriter<W>,
    opts: ConvertOptions,
) -> Result<ImportSummary, ImportError> {
    let meta = metadata(pd, source);
    w.write_block(
        BlockInfo { kind: BlockKind::METADATA, stream: STREAM_GLOBAL, record_count: 1, first_time: 0, last_time: 0 },
        &serde_json::to_vec(&meta).map_err(io::Error::other)?,
    )?;
    let events = Events::new(&meta.events, pd.endian);
    // Full blocks go a batch at a time to write_blocks (encoded on every
    // core; the same file as writing each in turn). Compressed, on a
    // thread of their own, so the next batch is cut meanwhile.
    let (sum, lost) = if w.level() == 0 {
        cut_blocks(pd, &events, opts, &mut |b| w.write_blocks(&b))?
    } else {
        std::thread::scope(|sc| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(BlockInfo, Vec<u8>)>>(1);
            let wr = &mut *w;
            let writer = sc.spawn(move || -> io::Result<()> { rx.into_iter().try_for_each(|b| wr.write_blocks(&b)) });
            // A closed channel: the writer failed; its error is the one reported.
            let cut = cut_blocks(pd, &events, opts, &mut |b| tx.send(b).map_err(|_| io::Error::other("the trace writer stopped")));
            drop(tx);
            let written = writer.join().unwrap_or_else(|_| Err(io::Error::other("the trace writer panicked")));
            match (cut, written) {
                (_, Err(e)) => Err(ImportError::from(e)),
                (r, Ok(())) => r,
            }
        })?
    };
    let mut build_ids: Vec<BuildId> =
        pd.features.build_ids.iter().map(|(_, id, path)| BuildId { path: path.clone(), build_id: id.clone() }).collect();
    build_ids.sort_by(|a, b| a.path.cmp(&b.path).then(a.build_id.cmp(&b.build_id)));
    build_ids.dedup_by(|a, b| a.path == b.path);
    let end = CaptureEnd { lost_records: lost, build_ids, samples: sum.samples, stop_reason: "imported".into(), ..Default::default() };
    w.write_block(
        BlockInfo { kind: BlockKind::CAPTURE_END, stream: STREAM_GLOBAL, record_count: 1, first_time: 0, last_time: 0 },
        &serde_json::to_vec(&end).map_err(io::Error::other)?,
    )?;
    Ok(sum)
}

type Batch = Vec<(BlockInfo, Vec<u8>)>;

/// Cut the records into blocks and hand them to `emit` in file order, a
/// batch at a time; the summary and the lost-event total.
fn cut_blocks(
    pd: &PerfData<'_>,
    events: &Events,
    opts: ConvertOptions,
    emit: &mut dyn FnMut(Batch) -> io::Result<()>,
) -> Result<(ImportSummary, u64), ImportError> {
    let sid = events.sideband_parse().cloned();
    let mut streams: BTreeMap<u32, BlockBuffer> = BTreeMap::new();
    let mut side = BlockBuffer::default();
    let mut sum = ImportSummary { trailing_bytes: pd.stats.trailing_bytes, ..Default::default() };
    let mut lost = 0u64;
    let mut off = 0usize;
    let mut ext: Option<ExternalChunk> = None;
    let mut pending: Batch = Vec::new();
    let batch = 2 * rayon::current_num_threads().max(1);
    let mut cut = |pending: &mut Batch, b: &mut BlockBuffer, kind, stream| -> io::Result<()> {
        pending.extend(b.take_block(kind, stream));
        // The next block's room at once (no doubling copies); a record is
        // at most 64 KiB, so a block never grows past this.
        b.buf.reserve(BLOCK_TARGET + (64 << 10));
        if pending.len() >= batch {
            emit(std::mem::take(pending))?;
        }
        Ok(())
    };
    for r in data::records(pd) {
        let Ok(r) = r else { break };
        let len = 8 + r.body.len();
        let rec = &pd.records[off..off + len];
        off += len;
        if r.kind == RecordType::SAMPLE {
            sum.samples += 1;
            if !opts.by_cpu {
                // Arrival order: no full parse, only the time at its fixed
                // offset (for the block's time range).
                let t = events.of_sample(r.body).and_then(|e| {
                    let off = events.list[e as usize].parse.sample_time_offset()?;
                    r.body.get(off..off + 8).map(|b| pd.endian.u64(b))
                });
                if opts.external_samples {
                    // Ranges of the records themselves, cut near BLOCK_TARGET.
                    let c = ext.get_or_insert(ExternalChunk { start: off - len, len: 0, samples: 0, first: u64::MAX, last: 0 });
                    c.len = off - c.start;
                    c.samples += 1;
                    if let Some(t) = t {
                        c.first = c.first.min(t);
                        c.last = c.last.max(t);
                    }
                    if c.len >= BLOCK_TARGET {
                        sum.external_chunks.extend(ext.take());
                    }
                    continue;
                }
                let st = streams.entry(0).or_default();
                st.add(rec, t);
                if st.buf.len() >= BLOCK_TARGET {
                    cut(&mut pending, st, BlockKind::SAMPLES, 0)?;
                }
                continue;
            }
            let s = events.of_sample(r.body).and_then(|e| events.list[e as usize].parse.parse_sample(r.body).ok());
            let cpu = s.as_ref().and_then(|s| s.cpu).unwrap_or(0);
            let st = streams.entry(cpu).or_default();
            st.add(rec, s.and_then(|s| s.time));
            if st.buf.len() >= BLOCK_TARGET {
                cut(&mut pending, st, BlockKind::SAMPLES, cpu)?;
            }
        } else {
            sum.other_records += 1;
            match parse_sideband(&r, pd.endian) {
                Ok(Sideband::Lost(l)) => lost += l.lost,
                Ok(Sideband::LostSamples(n)) => lost += n,
                _ => {}
            }
            let t = if r.kind.has_sample_id() { sid.as_ref().and_then(|p| p.parse_sample_id(r.body).time) } else { None };
            side.add(rec, t);
            if side.buf.len() >= BLOCK_TARGET {
                cut(&mut pending, &mut side, BlockKind::SIDEBAND, STREAM_GLOBAL)?;
            }
        }
    }
    sum.external_chunks.extend(ext.take());
    for (cpu, st) in streams.iter_mut() {
        pending.extend(st.take_block(BlockKind::SAMPLES, *cpu));
    }
    pending.extend(side.take_block(BlockKind::SIDEBAND, STREAM_GLOBAL));
    emit(pending)?;
    Ok((sum, lost))
}

/// Parse perf.data bytes and build an in-memory trace (level 0: stored, not
/// compressed) for direct analysis.
pub fn perf_data_to_trace_bytes(bytes: &[u8], source: &str) -> Result<Vec<u8>, ImportError> {
    let pd = data::parse(bytes)?;
    let mut w = TraceWriter::in_memory(0)?;
    convert_with(&pd, source, &mut w, ConvertOptions { by_cpu: false, external_samples: false })?;
    Ok(w.into_bytes()?)
}

/// A perf.data opened for analysis without copying its samples: a small
/// in-memory trace (metadata, sideband, capture end) and sample blocks that
/// point into the file's records.
pub fn open_perf_data_direct(
    file: crate::trace::reader::External,
    name: &str,
    opts: crate::trace::OpenOptions,
) -> Result<crate::trace::Trace, ImportError> {
    let file_len = file.as_slice().len() as u64;
    let (small, chunks, owned, base) = {
        let bytes = file.as_slice();
        let pd = data::parse(bytes)?;
        let mut w = TraceWriter::in_memory(0)?;
        let sum = convert_with(&pd, "", &mut w, ConvertOptions { by_cpu: false, external_samples: true })?;
        let (owned, base) = match pd.records {
            // Expanded (compressed) records: the trace keeps them.
            std::borrow::Cow::Owned(v) => (Some(v), 0),
            // The data section lies inside the input: its offset there (an
            // empty section may be a slice from elsewhere: keep a copy then).
            std::borrow::Cow::Borrowed(b) => match (b.as_ptr() as usize).checked_sub(bytes.as_ptr() as usize) {
                Some(off) if off + b.len() <= bytes.len() => (None, off),
                _ => (Some(b.to_vec()), 0),
            },
        };
        (w.into_bytes()?, sum.external_chunks, owned, base)
    };
    let mut t = crate::trace::Trace::from_bytes(name, small, opts).map_err(|e| ImportError::Write(io::Error::other(e.to_string())))?;
    let blocks: Vec<(u64, u64, u32, u64, u64)> = chunks
        .iter()
        .map(|c| ((c.start + base) as u64, c.len as u64, c.samples, if c.first == u64::MAX { 0 } else { c.first }, c.last))
        .collect();
    match owned {
        Some(v) => t.attach_external(
            crate::trace::reader::External(v),
            &blocks.iter().map(|b| (b.0 - base as u64, b.1, b.2, b.3, b.4)).collect::<Vec<_>>(),
        ),
        None => t.attach_external(file, &blocks),
    }
    t.set_source_len(file_len);
    Ok(t)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    #[test]
    fn not_perf_data_is_typed() {
        assert!(matches!(perf_data_to_trace_bytes(b"hello, world, not perf", ""), Err(ImportError::PerfData(PerfDataError::NotPerfData))));
        assert!(matches!(perf_data_to_trace_bytes(b"PERFILE2", ""), Err(ImportError::PerfData(PerfDataError::ShortHeader(8)))));
    }
}
