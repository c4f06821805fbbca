//! Writing a trace as a file-mode perf.data, so that perf, hotspot and samply
//! open what msen captured, and so that stock perf can check msen's numbers.
//!
//! Layout: header | attrs (each attr + its ids section) | ids | data (every
//! record, in time order) | feature index | feature bodies. Features:
//! hostname, osrelease, version, arch, nrcpus, cpudesc, cpuid, cmdline,
//! event_desc, NUMA and memory topology. Records go over byte for byte.

use crate::analyze::Loaded;
use crate::perf::attr::Endian;
use crate::perf::record::{RecordIter, RecordType};
use crate::trace::format::BlockKind;
use crate::trace::TraceError;
use std::collections::BTreeMap;
use std::io::{self, Write};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Trace(#[from] TraceError),
    #[error("writing perf.data: {0}")]
    Io(#[from] io::Error),
    #[error(
        "this trace holds big-endian records (imported from a big-endian perf.data); perf.data export writes little-endian files only"
    )]
    BigEndian,
}

const ATTR_SIZE: usize = 128;

fn put_str(out: &mut Vec<u8>, s: &str) {
    // perf's do_write_string: u32 length padded to 64 bytes, NUL padding.
    let len = (s.len() + 1).div_ceil(64) * 64;
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    out.resize(out.len() + len - s.len(), 0);
}

fn features(l: &Loaded) -> BTreeMap<u32, Vec<u8>> {
    let mut without_tags = l.trace.meta.clone();
    without_tags.events.retain(|e| e.name != crate::flow::TAG_EVENT);
    let m = &without_tags;
    let mut f = BTreeMap::new();
    let s = |v: &str| {
        let mut b = Vec::new();
        put_str(&mut b, v);
        b
    };
    if let Some(b) = build_id_feature(l) {
        f.insert(2, b);
    }
    f.insert(3, s(if m.hostname.is_empty() { "unknown" } else { &m.hostname }));
    f.insert(4, s(if m.kernel_release.is_empty() { "unknown" } else { &m.kernel_release }));
    f.insert(5, s(&format!("msen {}", env!("CARGO_PKG_VERSION"))));
    f.insert(6, s(if m.arch.is_empty() { "x86_64" } else { &m.arch }));
    let online = m.online_cpus.len().max(1) as u32;
    let mut nr = Vec::new();
    nr.extend_from_slice(&m.nr_cpus.max(online).to_le_bytes());
    nr.extend_from_slice(&online.to_le_bytes());
    f.insert(7, nr);
    f.insert(8, s(if m.cpu_model.is_empty() { "unknown" } else { &m.cpu_model }));
    f.insert(9, s(if m.cpu_vendor.is_empty() { "unknown" } else { &m.cpu_vendor }));
    let mut cl = Vec::new();
    cl.extend_from_slice(&(m.command_line.len() as u32).to_le_bytes());
    for a in &m.command_line {
        put_str(&mut cl, a);
    }
    f.insert(11, cl);
    let mut ed = Vec::new();
    ed.extend_from_slice(&(m.events.len() as u32).to_le_bytes());
    ed.extend_from_slice(&(ATTR_SIZE as u32).to_le_bytes());
    for e in &m.events {
        ed.extend(e.attr.to_bytes(ATTR_SIZE as u32));
        ed.extend_from_slice(&(e.ids.len() as u32).to_le_bytes());
        put_str(&mut ed, &e.name);
        for id in &e.ids {
            ed.extend_from_slice(&id.to_le_bytes());
        }
    }
    f.insert(12, ed);
    let mut nodes: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for c in &m.cpu_nodes {
        nodes.entry(c.node).or_default().push(c.cpu);
    }
    // CPU_TOPOLOGY: one socket (and die) per node, one thread per core.
    let ncpu = m.nr_cpus.max(m.online_cpus.len() as u32).max(1);
    let node_of = |cpu: u32| m.cpu_nodes.iter().find(|c| c.cpu == cpu).map_or(0, |c| c.node);
    let mut groups: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for cpu in 0..ncpu {
        groups.entry(node_of(cpu)).or_default().push(cpu);
    }
    let mut ct = Vec::new();
    ct.extend_from_slice(&(groups.len() as u32).to_le_bytes());
    for cpus in groups.values() {
        put_str(&mut ct, &cpu_list(cpus));
    }
    ct.extend_from_slice(&ncpu.to_le_bytes());
    for cpu in 0..ncpu {
        put_str(&mut ct, &cpu.to_string());
    }
    for cpu in 0..ncpu {
        ct.extend_from_slice(&cpu.to_le_bytes());
        ct.extend_from_slice(&node_of(cpu).to_le_bytes());
    }
    ct.extend_from_slice(&(groups.len() as u32).to_le_bytes());
    for cpus in groups.values() {
        put_str(&mut ct, &cpu_list(cpus));
    }
    for _ in 0..ncpu {
        ct.extend_from_slice(&0u32.to_le_bytes());
    }
    f.insert(13, ct);
    if !nodes.is_empty() {
        let mut nt = Vec::new();
        nt.extend_from_slice(&(nodes.len() as u32).to_le_bytes());
        for (node, cpus) in &nodes {
            let mem: u64 = m.memory_nodes.iter().filter(|r| r.node == *node).map(|r| (r.end - r.start) >> 10).sum();
            nt.extend_from_slice(&node.to_le_bytes());
            nt.extend_from_slice(&mem.to_le_bytes());
            nt.extend_from_slice(&0u64.to_le_bytes());
            put_str(&mut nt, &cpu_list(cpus));
        }
        f.insert(14, nt);
    }
    if !m.memory_nodes.is_empty() {
        // Memory blocks of 128 MiB (the x86 default), a bitmap per node.
        let bs: u64 = 128 << 20;
        let mut by_node: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for r in &m.memory_nodes {
            let mut b = r.start / bs;
            while b * bs < r.end {
                by_node.entry(r.node).or_default().push(b);
                b += 1;
            }
        }
        let mut mt = Vec::new();
        mt.extend_from_slice(&1u64.to_le_bytes());
        mt.extend_from_slice(&bs.to_le_bytes());
        mt.extend_from_slice(&(by_node.len() as u64).to_le_bytes());
        for (node, blocks) in &by_node {
            let bits = blocks.iter().max().map_or(0, |m| m + 1);
            let mut words = vec![0u64; bits.div_ceil(64) as usize];
            for b in blocks {
                words[(b / 64) as usize] |= 1 << (b % 64);
            }
            // perf writes the node, its size in blocks, then the bitmap (its
            // own bit count, then the words).
            mt.extend_from_slice(&(*node as u64).to_le_bytes());
            mt.extend_from_slice(&bits.to_le_bytes());
            mt.extend_from_slice(&bits.to_le_bytes());
            for w in words {
                mt.extend_from_slice(&w.to_le_bytes());
            }
        }
        f.insert(22, mt);
    }
    f
}

/// perf's synthesized kernel mapping: PERF_RECORD_MMAP, pid -1, misc
/// KERNEL, `[kernel.kallsyms]_text` from _text with pgoff = _text (perf's
/// relocation reference), and a sample_id trailer as the events have one.
fn kernel_mmap(l: &Loaded) -> Option<Vec<u8>> {
    if !l.timeline.kernel_maps().is_empty() {
        return None;
    }
    let m = &l.trace.meta;
    let (start, end) = match (m.kernel_text_start, m.kernel_text_end) {
        (s, e) if s != 0 && e > s => (s, e),
        // An older trace: from the first kernel symbol to the top.
        _ => (l.resolver.kernel_symbols_start()?, u64::MAX),
    };
    let mut body = Vec::new();
    body.extend_from_slice(&u32::MAX.to_le_bytes()); // pid -1
    body.extend_from_slice(&0u32.to_le_bytes()); // tid
    body.extend_from_slice(&start.to_le_bytes());
    body.extend_from_slice(&(end - start).to_le_bytes());
    body.extend_from_slice(&start.to_le_bytes()); // pgoff
    let name = b"[kernel.kallsyms]_text";
    body.extend_from_slice(name);
    body.resize(body.len() + 8 - name.len() % 8, 0);
    if let Some(p) = l.events.sideband_parse().filter(|p| p.sample_id_all) {
        use crate::perf::attr::sample;
        let id = m.events.iter().find(|e| e.name != crate::flow::TAG_EVENT).and_then(|e| e.ids.first().copied()).unwrap_or(0);
        for bit in [sample::TID, sample::TIME, sample::ID, sample::STREAM_ID, sample::CPU, sample::IDENTIFIER] {
            if p.sample_type & bit == 0 {
                continue;
            }
            let v: u64 = match bit {
                sample::TID => u32::MAX as u64 | (u32::MAX as u64) << 32, // pid, tid -1
                sample::ID | sample::STREAM_ID | sample::IDENTIFIER => id,
                _ => 0,
            };
            body.extend_from_slice(&v.to_le_bytes());
        }
    }
    let mut rec = Vec::with_capacity(8 + body.len());
    rec.extend_from_slice(&1u32.to_le_bytes()); // PERF_RECORD_MMAP
    rec.extend_from_slice(&crate::perf::record::misc::KERNEL.to_le_bytes());
    rec.extend_from_slice(&((8 + body.len()) as u16).to_le_bytes());
    rec.extend_from_slice(&body);
    Some(rec)
}

/// HEADER_BUILD_ID: one perf_record_header_build_id per DSO (pid -1, the
/// id in 20 bytes + its size with PERF_RECORD_MISC_BUILD_ID_SIZE, the name
/// NUL-padded to 64).
fn build_id_feature(l: &Loaded) -> Option<Vec<u8>> {
    let ids = &l.trace.end.as_ref()?.build_ids;
    let mut out = Vec::new();
    for b in ids {
        let Some(bytes) =
            (0..b.build_id.len() / 2).map(|i| u8::from_str_radix(b.build_id.get(2 * i..2 * i + 2)?, 16).ok()).collect::<Option<Vec<u8>>>()
        else {
            continue;
        };
        if bytes.is_empty() || bytes.len() > 20 {
            continue;
        }
        let kernel = b.path.starts_with('[') && b.path != "[vdso]";
        let misc: u16 = (1 << 15) | if kernel { crate::perf::record::misc::KERNEL } else { crate::perf::record::misc::USER };
        let name_len = (b.path.len() + 1).div_ceil(64) * 64;
        let size = 8 + 4 + 24 + name_len;
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&misc.to_le_bytes());
        out.extend_from_slice(&(size as u16).to_le_bytes());
        out.extend_from_slice(&(-1i32).to_le_bytes());
        let mut id = [0u8; 24];
        id[..bytes.len()].copy_from_slice(&bytes);
        id[20] = bytes.len() as u8;
        out.extend_from_slice(&id);
        let mut name = b.path.as_bytes().to_vec();
        name.resize(name_len, 0);
        out.extend_from_slice(&name);
    }
    (!out.is_empty()).then_some(out)
}

fn cpu_list(cpus: &[u32]) -> String {
    let mut v = cpus.to_vec();
    v.sort_unstable();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { v[i].to_string() } else { format!("{}-{}", v[i], v[j]) });
        i = j + 1;
    }
    parts.join(",")
}

/// Write `l`'s trace as perf.data to `out`; returns the number of records.
pub fn write_perf_data(l: &Loaded, out: &mut dyn Write) -> Result<u64, ExportError> {
    if l.events.endian == Endian::Big {
        return Err(ExportError::BigEndian);
    }
    // Flow tags are msen's own records: perf would count them as samples.
    let mut without_tags = l.trace.meta.clone();
    without_tags.events.retain(|e| e.name != crate::flow::TAG_EVENT);
    let m = &without_tags;
    // Every record with its time, sideband first at equal times.
    let sid = l.events.sideband_parse().cloned();
    let mut recs: Vec<(u64, u8, usize, usize, Vec<u8>)> = Vec::new();
    let blocks: Vec<_> =
        l.trace.blocks.iter().filter(|b| matches!(b.header.kind, BlockKind::SIDEBAND | BlockKind::SAMPLES)).copied().collect();
    for (bi, b) in blocks.iter().enumerate() {
        let Some(data) = l.trace.decode_or_skip(b)? else { continue };
        let mut off = 0;
        for (seq, r) in RecordIter::new(&data, Endian::Little).enumerate() {
            let Ok(r) = r else { break };
            let len = 8 + r.body.len();
            let raw_at = off;
            off += len;
            // Samples from SAMPLES blocks, the rest from SIDEBAND blocks.
            if (r.kind == RecordType::SAMPLE) != (b.header.kind == BlockKind::SAMPLES) {
                continue;
            }
            if r.kind == RecordType::SAMPLE && l.events.is_tag(r.body) {
                continue;
            }
            let mut raw = data[raw_at..raw_at + len].to_vec();
            let (t, order) = if r.kind == RecordType::SAMPLE {
                let ev = l.events.of_sample(r.body);
                let info = ev.map(|e| &l.events.list[e as usize].parse);
                let t = info.and_then(|p| p.parse_sample(r.body).ok()).and_then(|s| s.time);
                // The period a software clock event really fired at after a
                // rate change (the kernel wrote the first one; perf reads
                // the field). Samples without the field keep the attr's.
                let fix = ev.and_then(|e| l.clock_periods.at(e, t)).zip(info.and_then(|p| p.period_offset()));
                if let Some((p, at)) = fix {
                    if let Some(w) = raw.get_mut(8 + at..8 + at + 8) {
                        w.copy_from_slice(&p.to_le_bytes());
                    }
                }
                (t.unwrap_or(0), 1)
            } else {
                (sid.as_ref().and_then(|p| p.parse_sample_id(r.body).time).unwrap_or(0), 0)
            };
            recs.push((t, order, bi, seq, raw));
        }
    }
    // msen captures record no kernel mapping (perf's synthesized one names
    // where kernel text is): without it perf puts kernel samples nowhere.
    if let Some(mmap) = kernel_mmap(l) {
        recs.push((0, 0, usize::MAX, 0, mmap));
    }
    recs.sort_by_key(|r| (r.0, r.1, r.2, r.3));
    let n_attrs = m.events.len();
    let attr_entry = ATTR_SIZE + 16;
    let attrs_off = 104u64;
    let attrs_len = (n_attrs * attr_entry) as u64;
    let ids_off = attrs_off + attrs_len;
    let ids_len: u64 = m.events.iter().map(|e| e.ids.len() as u64 * 8).sum();
    let data_off = ids_off + ids_len;
    let data_len: u64 = recs.iter().map(|r| r.4.len() as u64).sum();
    let feats = features(l);
    let mut bits = [0u64; 4];
    for k in feats.keys() {
        bits[(*k / 64) as usize] |= 1 << (k % 64);
    }
    let mut h = Vec::with_capacity(104);
    h.extend_from_slice(b"PERFILE2");
    for v in [104u64, attr_entry as u64, attrs_off, attrs_len, data_off, data_len, 0, 0] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    for b in bits {
        h.extend_from_slice(&b.to_le_bytes());
    }
    out.write_all(&h)?;
    let mut id_pos = ids_off;
    for e in &m.events {
        let mut a = e.attr.clone();
        a.size = ATTR_SIZE as u32;
        out.write_all(&a.to_bytes(ATTR_SIZE as u32))?;
        let len = e.ids.len() as u64 * 8;
        out.write_all(&id_pos.to_le_bytes())?;
        out.write_all(&len.to_le_bytes())?;
        id_pos += len;
    }
    for e in &m.events {
        for id in &e.ids {
            out.write_all(&id.to_le_bytes())?;
        }
    }
    for r in &recs {
        out.write_all(&r.4)?;
    }
    let mut body_off = data_off + data_len + 16 * feats.len() as u64;
    for body in feats.values() {
        out.write_all(&body_off.to_le_bytes())?;
        out.write_all(&(body.len() as u64).to_le_bytes())?;
        body_off += body.len() as u64;
    }
    for body in feats.values() {
        out.write_all(body)?;
    }
    out.flush()?;
    Ok(recs.len() as u64)
}
