//! Reading perf.data as stock perf writes it: file mode (PERFILE2, either
//! byte order, and the legacy PERFFILE v1 header) and pipe mode; attrs of any
//! size; the feature sections msen uses; PERF_RECORD_COMPRESSED (one zstd
//! stream across records, a record may straddle two) and COMPRESSED2;
//! AUXTRACE payloads skipped; trailing bytes after the last record tolerated.
//!
//! The result is the attrs, the header facts, and the records as one flat
//! run in the file's byte order, with perf's own bookkeeping records
//! (HEADER_ATTR, HEADER_FEATURE, COMPRESSED, ...) consumed. Unknown record
//! types pass through.
//!
//! We evaluated linux-perf-data (samply's reader): it covers file and pipe
//! mode and COMPRESSED, but not COMPRESSED2 or the v1 PERFFILE header, and
//! would give us a second record model beside the one the live capture
//! needs; reading the container is a few hundred lines on top of
//! `perf::record`, so msen keeps one decoder (see DESIGN.md).

use super::attr::{Endian, EventAttr};
use super::record::{RecordIter, RecordType, HEADER_SIZE};
use std::borrow::Cow;
use std::collections::HashMap;

/// What a perf.data file could not give.
#[derive(Debug, thiserror::Error)]
pub enum PerfDataError {
    #[error("not a perf.data file (no PERFILE2/PERFFILE magic)")]
    NotPerfData,
    #[error("perf.data header is truncated ({0} bytes)")]
    ShortHeader(usize),
    #[error("perf.data {what} section (offset {offset}, size {size}) lies outside the {len}-byte file")]
    BadSection { what: &'static str, offset: u64, size: u64, len: usize },
    #[error("perf.data attr entry size {0} is not a known perf_event_attr size plus 16")]
    BadAttrSize(u64),
    #[error("perf.data holds no event attributes")]
    NoAttrs,
    #[error("perf.data compressed records: {0}")]
    Compressed(String),
}

/// Header facts from the feature sections (file mode) or HEADER_FEATURE
/// records (pipe mode).
#[derive(Debug, Clone, Default)]
pub struct Features {
    pub hostname: Option<String>,
    pub osrelease: Option<String>,
    pub version: Option<String>,
    pub arch: Option<String>,
    pub cpudesc: Option<String>,
    pub cpuid: Option<String>,
    pub nr_cpus_avail: Option<u32>,
    pub nr_cpus_online: Option<u32>,
    pub total_mem_kb: Option<u64>,
    pub cmdline: Vec<String>,
    /// (node, cpu list text)
    pub numa_nodes: Vec<(u32, String)>,
    pub mem_topology: Option<MemTopology>,
    /// (pid, build-id hex, filename)
    pub build_ids: Vec<(i32, String, String)>,
    /// L1 data cache line size from the CACHE feature.
    pub cache_line: Option<u32>,
    /// Event names by attr index (EVENT_DESC), keyed by the first id.
    pub event_names: HashMap<u64, String>,
    pub clockid: Option<u64>,
}

/// MEM_TOPOLOGY: memory block size and, per node, the indexes of its blocks.
pub type MemTopology = (u64, Vec<(u64, Vec<u64>)>);

/// An event of the file.
#[derive(Debug, Clone)]
pub struct PerfEvent {
    pub attr: EventAttr,
    pub ids: Vec<u64>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ReadStats {
    /// Bytes after the last complete record (e.g. text appended to a pipe capture).
    pub trailing_bytes: u64,
    pub compressed_records: u64,
    pub auxtrace_bytes_skipped: u64,
    /// The pipe file uses the legacy numbering of feature records (69..).
    pub legacy_feature_records: bool,
}

#[derive(Debug)]
pub struct PerfData<'a> {
    pub endian: Endian,
    pub pipe: bool,
    pub events: Vec<PerfEvent>,
    pub features: Features,
    /// Every record (decompressed), in file order and the file's byte order:
    /// the data section itself when nothing needed expanding.
    pub records: Cow<'a, [u8]>,
    pub stats: ReadStats,
}

const FEAT_BUILD_ID: u32 = 2;
const FEAT_HOSTNAME: u32 = 3;
const FEAT_OSRELEASE: u32 = 4;
const FEAT_VERSION: u32 = 5;
const FEAT_ARCH: u32 = 6;
const FEAT_NRCPUS: u32 = 7;
const FEAT_CPUDESC: u32 = 8;
const FEAT_CPUID: u32 = 9;
const FEAT_TOTAL_MEM: u32 = 10;
const FEAT_CMDLINE: u32 = 11;
const FEAT_EVENT_DESC: u32 = 12;
const FEAT_NUMA_TOPOLOGY: u32 = 14;
const FEAT_CACHE: u32 = 20;
const FEAT_MEM_TOPOLOGY: u32 = 22;
const FEAT_CLOCKID: u32 = 23;

/// Is this the start of a perf.data file?
pub fn is_perf_data(b: &[u8]) -> bool {
    b.len() >= 8 && matches!(&b[..8], b"PERFILE2" | b"2ELIFREP" | b"PERFFILE")
}

/// A bounds-checked reader over a byte slice.
struct Rd<'a> {
    b: &'a [u8],
    pos: usize,
    e: Endian,
}

impl<'a> Rd<'a> {
    fn new(b: &'a [u8], e: Endian) -> Self {
        Rd { b, pos: 0, e }
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        self.bytes(4).map(|b| self.e.u32(b))
    }
    fn u64(&mut self) -> Option<u64> {
        self.bytes(8).map(|b| self.e.u64(b))
    }
    /// perf_header_string: u32 length (padded), then NUL-padded bytes.
    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        let b = self.bytes(len)?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        Some(String::from_utf8_lossy(&b[..end]).into_owned())
    }
    fn string_list(&mut self) -> Option<Vec<String>> {
        let n = self.u32()? as usize;
        (0..n.min(1 << 16)).map(|_| self.string()).collect()
    }
}

fn section<'a>(b: &'a [u8], what: &'static str, offset: u64, size: u64) -> Result<&'a [u8], PerfDataError> {
    let bad = || PerfDataError::BadSection { what, offset, size, len: b.len() };
    let start = usize::try_from(offset).map_err(|_| bad())?;
    let end = start.checked_add(usize::try_from(size).map_err(|_| bad())?).ok_or_else(bad)?;
    b.get(start..end).ok_or_else(bad)
}

/// Parse a whole perf.data image.
pub fn parse(b: &[u8]) -> Result<PerfData<'_>, PerfDataError> {
    if b.len() < 16 {
        return if is_perf_data(b) { Err(PerfDataError::ShortHeader(b.len())) } else { Err(PerfDataError::NotPerfData) };
    }
    let (endian, v1) = match &b[..8] {
        b"PERFILE2" => (Endian::Little, false),
        b"2ELIFREP" => (Endian::Big, false),
        b"PERFFILE" => (Endian::Little, true),
        _ => return Err(PerfDataError::NotPerfData),
    };
    let mut endian = endian;
    let size = endian.u64(&b[8..16]);
    if v1 && size != 16 {
        // v1 files carry no byte-order mark: decide by which reading gives a
        // plausible header size.
        let be = Endian::Big.u64(&b[8..16]);
        if !(size == 104 || size == 72) && (be == 104 || be == 72) {
            endian = Endian::Big;
        }
    }
    let size = endian.u64(&b[8..16]);
    if size == 16 {
        return parse_pipe(b, endian);
    }
    if b.len() < 72 {
        return Err(PerfDataError::ShortHeader(b.len()));
    }
    let mut r = Rd::new(&b[16..], endian);
    let short = || PerfDataError::ShortHeader(b.len());
    let attr_size = r.u64().ok_or_else(short)?;
    let (attrs_off, attrs_size) = (r.u64().ok_or_else(short)?, r.u64().ok_or_else(short)?);
    let (data_off, data_size) = (r.u64().ok_or_else(short)?, r.u64().ok_or_else(short)?);
    let _event_types = (r.u64().ok_or_else(short)?, r.u64().ok_or_else(short)?);
    // adds_features: 256 bits, absent in the oldest headers (size 72).
    let mut feat_bits = [0u64; 4];
    if size >= 104 && b.len() >= 104 {
        for w in feat_bits.iter_mut() {
            *w = r.u64().ok_or_else(short)?;
        }
    }
    if !(64 + 16..=4096 + 16).contains(&attr_size) {
        return Err(PerfDataError::BadAttrSize(attr_size));
    }
    let attrs_raw = section(b, "attrs", attrs_off, attrs_size)?;
    let mut events = Vec::new();
    for entry in attrs_raw.chunks_exact(attr_size as usize) {
        let attr_bytes = &entry[..attr_size as usize - 16];
        let Some(mut attr) = EventAttr::from_bytes(attr_bytes, endian) else { continue };
        // The stored size field may disagree with the entry (perf >= 6.3 writes
        // 136-byte attrs); the entry's layout is what the file holds.
        if attr.size as u64 > attr_size - 16 || attr.size == 0 {
            attr.size = (attr_size - 16) as u32;
        }
        let ids_off = endian.u64(&entry[attr_size as usize - 16..]);
        let ids_size = endian.u64(&entry[attr_size as usize - 8..]);
        let ids = section(b, "attr ids", ids_off, ids_size).map(|s| s.chunks_exact(8).map(|w| endian.u64(w)).collect()).unwrap_or_default();
        events.push(PerfEvent { attr, ids, name: None });
    }
    if events.is_empty() {
        return Err(PerfDataError::NoAttrs);
    }
    let data = section(b, "data", data_off, data_size)?;
    let mut features = Features::default();
    // Feature sections follow the data section: one (offset, size) per set
    // bit, in bit order.
    let mut idx = data_off.saturating_add(data_size) as usize;
    for bit in 1..256u32 {
        if feat_bits[(bit / 64) as usize] & (1 << (bit % 64)) == 0 {
            continue;
        }
        let Some(sec) = b.get(idx..idx + 16) else { break };
        idx += 16;
        let (off, sz) = (endian.u64(sec), endian.u64(&sec[8..]));
        if let Ok(body) = section(b, "feature", off, sz) {
            parse_feature(bit, body, endian, &mut features);
        }
    }
    let mut out = PerfData { endian, pipe: false, events, features, records: Cow::Borrowed(&[]), stats: ReadStats::default() };
    if !borrow_records(data, &mut out) {
        read_records(data, &mut out)?;
    }
    name_events(&mut out);
    Ok(out)
}

fn parse_pipe(b: &[u8], endian: Endian) -> Result<PerfData<'_>, PerfDataError> {
    let mut out = PerfData {
        endian,
        pipe: true,
        events: Vec::new(),
        features: Features::default(),
        records: Cow::Owned(Vec::with_capacity(b.len())),
        stats: ReadStats::default(),
    };
    // Old pipe files (ChromeOS perf of the 3.x era) sent each header
    // feature as its own record type, 66 + feature (HOSTNAME = 69 ...), where
    // upstream later put ID_INDEX, AUXTRACE_INFO, AUXTRACE. Upstream pipe
    // files start with HEADER_ATTR; these start with a feature record.
    let body = &b[16..];
    if body.len() >= 8 && (69..=81).contains(&endian.u32(body)) {
        out.stats.legacy_feature_records = true;
    }
    read_records(body, &mut out)?;
    if out.events.is_empty() {
        return Err(PerfDataError::NoAttrs);
    }
    name_events(&mut out);
    Ok(out)
}

fn name_events(out: &mut PerfData<'_>) {
    for ev in &mut out.events {
        if ev.name.is_none() {
            ev.name = ev.ids.iter().find_map(|id| out.features.event_names.get(id).cloned());
        }
    }
    // EVENT_DESC in order when ids do not match (files without ids).
    if out.events.iter().all(|e| e.name.is_none()) && !out.features.event_names.is_empty() {
        let mut by_index: Vec<(u64, String)> =
            out.features.event_names.iter().filter(|(k, _)| **k >= 1 << 63).map(|(k, v)| (*k, v.clone())).collect();
        by_index.sort();
        for (ev, (_, n)) in out.events.iter_mut().zip(by_index) {
            ev.name = Some(n);
        }
    }
}

/// The common case without copying: a file-mode data section with nothing
/// to expand or consume is used as it is (EVENT_UPDATE names are still
/// read). Returns false when the full walk is needed.
fn borrow_records<'a>(data: &'a [u8], out: &mut PerfData<'a>) -> bool {
    let e = out.endian;
    let mut pos = 0;
    let mut names = Vec::new();
    while pos + HEADER_SIZE <= data.len() {
        let h = &data[pos..];
        let kind = RecordType(e.u32(h));
        let size = e.u16(&h[6..]) as usize;
        if size < HEADER_SIZE || pos + size > data.len() {
            break;
        }
        match kind {
            RecordType::COMPRESSED
            | RecordType::COMPRESSED2
            | RecordType::AUXTRACE
            | RecordType::HEADER_ATTR
            | RecordType::HEADER_FEATURE
            | RecordType::HEADER_EVENT_TYPE
            | RecordType::HEADER_TRACING_DATA
            | RecordType::HEADER_BUILD_ID => return false,
            RecordType::EVENT_UPDATE => names.push(pos..pos + size),
            _ => {}
        }
        pos += size;
    }
    for r in names {
        handle_record(&data[r], out);
    }
    out.records = Cow::Borrowed(&data[..pos]);
    out.stats.trailing_bytes = (data.len() - pos) as u64;
    true
}

/// Walk the records of a data section (or pipe stream), expanding
/// compressed ones and consuming perf's bookkeeping records.
fn read_records(data: &[u8], out: &mut PerfData<'_>) -> Result<(), PerfDataError> {
    let e = out.endian;
    let mut pos = 0;
    let mut dctx: Option<zstd::stream::raw::Decoder<'static>> = None;
    // Decompressed bytes not yet forming a whole record.
    let mut pending: Vec<u8> = Vec::new();
    while pos + HEADER_SIZE <= data.len() {
        let h = &data[pos..];
        let kind = RecordType(e.u32(h));
        let size = e.u16(&h[6..]) as usize;
        if size < HEADER_SIZE || pos + size > data.len() {
            break;
        }
        let rec = &data[pos..pos + size];
        let body = &rec[HEADER_SIZE..];
        pos += size;
        if out.stats.legacy_feature_records && (69..=96).contains(&kind.0) {
            parse_feature(kind.0 - 66, body, e, &mut out.features);
            continue;
        }
        match kind {
            RecordType::COMPRESSED | RecordType::COMPRESSED2 => {
                out.stats.compressed_records += 1;
                let payload = if kind == RecordType::COMPRESSED2 {
                    let n = body.get(..8).map(|w| e.u64(w) as usize).unwrap_or(0);
                    body.get(8..8 + n).ok_or_else(|| PerfDataError::Compressed("COMPRESSED2 data_size exceeds its record".into()))?
                } else {
                    body
                };
                let d = match &mut dctx {
                    Some(d) => d,
                    None => dctx.insert(zstd::stream::raw::Decoder::new().map_err(|err| PerfDataError::Compressed(err.to_string()))?),
                };
                decompress_into(d, payload, &mut pending)?;
                // Emit the whole records; keep a straddling tail.
                let mut p = 0;
                while p + HEADER_SIZE <= pending.len() {
                    let sz = e.u16(&pending[p + 6..]) as usize;
                    if sz < HEADER_SIZE {
                        return Err(PerfDataError::Compressed(format!("record of size {sz} inside compressed data")));
                    }
                    if p + sz > pending.len() {
                        break;
                    }
                    let inner = pending[p..p + sz].to_vec();
                    p += sz;
                    handle_record(&inner, out);
                }
                pending.drain(..p);
            }
            RecordType::AUXTRACE => {
                // The trace data follows the record, `size` bytes long.
                let aux = body.get(..8).map(|w| e.u64(w)).unwrap_or(0);
                let skip = usize::try_from(aux).unwrap_or(usize::MAX).min(data.len() - pos);
                pos += skip;
                out.stats.auxtrace_bytes_skipped += skip as u64;
                handle_record(rec, out);
            }
            _ => handle_record(rec, out),
        }
    }
    out.stats.trailing_bytes = (data.len() - pos) as u64;
    Ok(())
}

fn decompress_into(d: &mut zstd::stream::raw::Decoder<'static>, input: &[u8], out: &mut Vec<u8>) -> Result<(), PerfDataError> {
    use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
    let mut inb = InBuffer::around(input);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let before = inb.pos();
        let mut outb = OutBuffer::around(&mut buf[..]);
        d.run(&mut inb, &mut outb).map_err(|err| PerfDataError::Compressed(err.to_string()))?;
        let n = outb.pos();
        out.extend_from_slice(&buf[..n]);
        if inb.pos() >= input.len() && n < buf.len() {
            return Ok(());
        }
        if n == 0 && inb.pos() == before {
            return Err(PerfDataError::Compressed("zstd made no progress (damaged stream)".into()));
        }
    }
}

/// One record: bookkeeping records update `out`, the rest are kept.
fn handle_record(rec: &[u8], out: &mut PerfData<'_>) {
    let e = out.endian;
    let kind = RecordType(e.u32(rec));
    let body = &rec[HEADER_SIZE..];
    match kind {
        RecordType::HEADER_ATTR => {
            // attr (its own size field says how long), then ids.
            let Some(mut attr) = EventAttr::from_bytes(body, e) else { return };
            let asz = (attr.size as usize).min(body.len());
            if attr.size as usize > body.len() {
                attr.size = body.len() as u32;
            }
            let ids = body[asz..].chunks_exact(8).map(|w| e.u64(w)).collect();
            out.events.push(PerfEvent { attr, ids, name: None });
        }
        RecordType::HEADER_FEATURE => {
            if body.len() >= 8 {
                let feat = e.u64(body) as u32;
                parse_feature(feat, &body[8..], e, &mut out.features);
            }
        }
        RecordType::EVENT_UPDATE => {
            // u64 type, u64 id, then data; types: 0 UNIT, 1 SCALE, 2 NAME, 3 CPUS.
            // Kept as a record too (perf counts them); only the name is read here.
            if !matches!(out.records, Cow::Borrowed(_)) {
                out.records.to_mut().extend_from_slice(rec);
            }
            if body.len() >= 16 && e.u64(body) == 2 {
                let id = e.u64(&body[8..]);
                let s = &body[16..];
                let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
                out.features.event_names.insert(id, String::from_utf8_lossy(&s[..end]).into_owned());
            }
        }
        RecordType::HEADER_EVENT_TYPE | RecordType::HEADER_TRACING_DATA | RecordType::HEADER_BUILD_ID => {
            if kind == RecordType::HEADER_BUILD_ID {
                parse_build_id_event(rec, e, &mut out.features);
            }
        }
        _ => out.records.to_mut().extend_from_slice(rec),
    }
}

fn parse_build_id_event(rec: &[u8], e: Endian, f: &mut Features) {
    // header, pid i32, build_id[24] (20 data bytes, then u8 size and 3
    // reserved bytes), filename.
    if rec.len() < HEADER_SIZE + 4 + 24 {
        return;
    }
    let misc = e.u16(&rec[4..]);
    let pid = e.u32(&rec[8..]) as i32;
    let raw = &rec[12..36];
    // The id is 20 bytes; with PERF_RECORD_MISC_BUILD_ID_SIZE (1 << 15) the
    // byte after them says how many are used (e.g. 16 for an MD5 id).
    let id = if misc & (1 << 15) != 0 { &raw[..(raw[20] as usize).min(20)] } else { &raw[..20] };
    let name = &rec[36..];
    let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
    f.build_ids.push((pid, id.iter().map(|x| format!("{x:02x}")).collect(), String::from_utf8_lossy(&name[..end]).into_owned()));
}

fn parse_feature(bit: u32, body: &[u8], e: Endian, f: &mut Features) {
    let mut r = Rd::new(body, e);
    match bit {
        FEAT_HOSTNAME => f.hostname = r.string(),
        FEAT_OSRELEASE => f.osrelease = r.string(),
        FEAT_VERSION => f.version = r.string(),
        FEAT_ARCH => f.arch = r.string(),
        FEAT_CPUDESC => f.cpudesc = r.string(),
        FEAT_CPUID => f.cpuid = r.string(),
        FEAT_NRCPUS => {
            f.nr_cpus_avail = r.u32();
            f.nr_cpus_online = r.u32();
        }
        FEAT_TOTAL_MEM => f.total_mem_kb = r.u64(),
        FEAT_CMDLINE => f.cmdline = r.string_list().unwrap_or_default(),
        FEAT_CLOCKID => f.clockid = r.u64(),
        FEAT_BUILD_ID => {
            let mut p = 0;
            while p + HEADER_SIZE <= body.len() {
                let sz = e.u16(&body[p + 6..]) as usize;
                if sz < HEADER_SIZE || p + sz > body.len() {
                    break;
                }
                parse_build_id_event(&body[p..p + sz], e, f);
                p += sz;
            }
        }
        FEAT_EVENT_DESC => {
            let (Some(n), Some(asz)) = (r.u32(), r.u32()) else { return };
            for i in 0..n.min(1 << 16) {
                if r.bytes(asz as usize).is_none() {
                    return;
                }
                let Some(nr_ids) = r.u32() else { return };
                let Some(name) = r.string() else { return };
                let ids: Option<Vec<u64>> = (0..nr_ids.min(1 << 20)).map(|_| r.u64()).collect();
                let Some(ids) = ids else { return };
                for id in &ids {
                    f.event_names.insert(*id, name.clone());
                }
                // By position too, for attrs without ids.
                f.event_names.insert((1 << 63) | i as u64, name);
            }
        }
        FEAT_NUMA_TOPOLOGY => {
            let Some(n) = r.u32() else { return };
            for _ in 0..n.min(4096) {
                let (Some(node), Some(_total), Some(_free), Some(cpus)) = (r.u32(), r.u64(), r.u64(), r.string()) else { return };
                f.numa_nodes.push((node, cpus));
            }
        }
        FEAT_MEM_TOPOLOGY => {
            let (Some(_version), Some(bsize), Some(nr)) = (r.u64(), r.u64(), r.u64()) else { return };
            let mut nodes = Vec::new();
            for _ in 0..nr.min(4096) {
                // node, size, then a bitmap: its bit count and the words.
                let (Some(node), Some(_size), Some(bits)) = (r.u64(), r.u64(), r.u64()) else { return };
                let words = bits.div_ceil(64).min(1 << 20);
                let mut blocks = Vec::new();
                for w in 0..words {
                    let Some(v) = r.u64() else { return };
                    for bit in 0..64 {
                        if v & (1 << bit) != 0 {
                            blocks.push(w * 64 + bit);
                        }
                    }
                }
                nodes.push((node, blocks));
            }
            f.mem_topology = Some((bsize, nodes));
        }
        FEAT_CACHE => {
            let (Some(_version), Some(cnt)) = (r.u32(), r.u32()) else { return };
            for _ in 0..cnt.min(64) {
                let (Some(level), Some(line), Some(_sets), Some(_ways)) = (r.u32(), r.u32(), r.u32(), r.u32()) else { return };
                let (Some(ty), Some(_size), Some(_map)) = (r.string(), r.string(), r.string()) else { return };
                if level == 1 && (ty == "Data" || ty == "Unified") && f.cache_line.is_none() {
                    f.cache_line = Some(line);
                }
            }
        }
        _ => {}
    }
}

/// Records of the flat run (for tests and statistics).
pub fn records<'b>(p: &'b PerfData<'_>) -> RecordIter<'b> {
    RecordIter::new(&p.records, p.endian)
}
