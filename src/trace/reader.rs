//! Opening a .msen trace: header checks, the block list (from the footer index,
//! or by scanning when the writer never wrote one), and block decoding.
//!
//! Recovery, when the trailer is missing or unreadable:
//!
//! ```text
//!  header | blk | blk | blk | bl~~~~ (cut: writer killed mid-write)
//!         ^scan: magic, size, checksum ok -> keep, jump to next
//!                               ^ stored_len runs past EOF -> tail dropped
//!  header | blk | b#k | blk |        (checksum mismatch mid-file)
//!                 ^ corrupt: an error, unless the caller asked to skip
//!                   corrupt blocks; then resync on the next valid "MBLK"
//! ```

use super::format::*;
use super::meta::{CaptureEnd, Metadata};
use super::pool::{Bytes, Pooled};
use std::path::{Path, PathBuf};

/// Errors a trace file can cause. Each names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error(transparent)]
    Source(#[from] super::source::SourceError),
    #[error("cannot open {path}: {err}")]
    Open { path: PathBuf, err: std::io::Error },
    #[error("{path} is empty: the capture wrote nothing (was msen record stopped before it started?); record again")]
    Empty { path: PathBuf },
    #[error("{path} is not an msen trace (no MSENTRAC magic){hint}")]
    NotATrace { path: PathBuf, hint: &'static str },
    #[error("{path} is a trace of format version {found_major}.{found_minor}; this msen reads {supported_major}.x: use a newer msen")]
    UnsupportedVersion { path: PathBuf, found_major: u16, found_minor: u16, supported_major: u16 },
    #[error("{path}: file header is damaged (checksum mismatch); the file is corrupted")]
    BadHeader { path: PathBuf },
    #[error("{path}: block at byte {offset} is corrupted ({reason}); pass --skip-corrupt to analyze the remaining blocks")]
    CorruptBlock { path: PathBuf, offset: u64, reason: String },
    #[error("{path}: cannot read this perf.data: {reason}")]
    PerfData { path: PathBuf, reason: String },
    #[error("{path}: no metadata block survived; nothing can be decoded without the event descriptions")]
    NoMetadata { path: PathBuf },
    #[error("{path}: metadata block is unreadable: {reason}")]
    BadMetadata { path: PathBuf, reason: String },
}

/// How the block list was obtained and what was lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The footer index and trailer were present and valid.
    pub clean_close: bool,
    /// Blocks found by scanning (0 when the index was used).
    pub blocks_recovered: usize,
    /// Bytes at the end of the file that did not form a complete block.
    pub tail_bytes_dropped: u64,
    /// Corrupt blocks skipped (offsets), only when skipping was requested.
    pub corrupt_blocks: Vec<u64>,
    /// Why the index was not used, when it was present but unreadable.
    pub index_problem: Option<String>,
}

/// A block's place in the file.
#[derive(Debug, Clone, Copy)]
pub struct BlockRef {
    pub offset: u64,
    pub header: BlockHeader,
    /// For blocks built in memory over another buffer (a mapped perf.data):
    /// the payload's (start, len) in `Trace::external`, stored raw.
    pub external: Option<(u64, u64)>,
}

impl BlockRef {
    pub fn payload_range(&self) -> std::ops::Range<usize> {
        let start = self.offset as usize + self.header.header_size as usize;
        start..start + self.header.stored_len as usize
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Skip blocks whose checksum fails instead of refusing the file.
    pub skip_corrupt: bool,
}

/// A buffer that external blocks point into (a perf.data's records).
pub struct External(pub Vec<u8>);

impl std::fmt::Debug for External {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "External({})", self.0.len())
    }
}

impl External {
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

/// An open trace.
#[derive(Debug)]
pub struct Trace {
    path: PathBuf,
    bytes: Vec<u8>,
    /// Size of the input this trace came from (a perf.data analyzed in
    /// place: the file's size, not the small in-memory trace's).
    source_len: u64,
    /// Payload buffer of external blocks (see `attach_external`).
    external: Option<External>,
    pub header: FileHeader,
    pub blocks: Vec<BlockRef>,
    pub recovery: Recovery,
    pub meta: Metadata,
    pub end: Option<CaptureEnd>,
    skip_corrupt: bool,
}

/// True when `b` starts like a trace (for format detection).
pub fn is_trace(b: &[u8]) -> bool {
    b.len() >= 8 && b[..8] == MAGIC
}

impl Trace {
    /// Read and index a trace file (`-` is stdin; FIFOs are read as streams).
    pub fn open(path: &Path, opts: OpenOptions) -> Result<Trace, TraceError> {
        let bytes = super::source::read_all(path)?;
        Self::from_bytes(&path.display().to_string(), bytes, opts)
    }

    /// Index a trace held in memory.
    pub fn from_bytes(name: &str, data: Vec<u8>, opts: OpenOptions) -> Result<Trace, TraceError> {
        Self::from_parts(PathBuf::from(name), data, opts)
    }

    fn from_parts(path: PathBuf, bytes: Vec<u8>, opts: OpenOptions) -> Result<Trace, TraceError> {
        let b = bytes.as_slice();
        if b.is_empty() {
            return Err(TraceError::Empty { path });
        }
        if !is_trace(b) {
            let hint = if b.starts_with(b"PERFILE2") || b.starts_with(b"PERFFILE") || b.starts_with(b"2ELIFREP") {
                ": it is a perf.data file; analyses read it directly, or convert it with `msen import`"
            } else {
                ""
            };
            return Err(TraceError::NotATrace { path, hint });
        }
        if b.len() < 12 {
            return Err(TraceError::BadHeader { path });
        }
        let major = u16::from_le_bytes([b[8], b[9]]);
        let minor = u16::from_le_bytes([b[10], b[11]]);
        if major != MAJOR {
            return Err(TraceError::UnsupportedVersion { path, found_major: major, found_minor: minor, supported_major: MAJOR });
        }
        if b.len() < 16 {
            return Err(TraceError::BadHeader { path });
        }
        let header_size = u32::from_le_bytes([b[12], b[13], b[14], b[15]]) as usize;
        if header_size < FILE_HEADER_SIZE || header_size > b.len() {
            return Err(TraceError::BadHeader { path });
        }
        let crc = u32::from_le_bytes([b[header_size - 4], b[header_size - 3], b[header_size - 2], b[header_size - 1]]);
        if crc32fast::hash(&b[..header_size - 4]) != crc {
            return Err(TraceError::BadHeader { path });
        }
        let header = FileHeader {
            major,
            minor,
            header_size: header_size as u32,
            flags: u64::from_le_bytes([b[16], b[17], b[18], b[19], b[20], b[21], b[22], b[23]]),
        };

        let (blocks, recovery) = match read_index(b, header_size) {
            Ok(blocks) => (blocks, Recovery { clean_close: true, ..Default::default() }),
            Err(problem) => {
                let mut r = scan(b, header_size, opts.skip_corrupt).map_err(|(offset, reason)| TraceError::CorruptBlock {
                    path: path.clone(),
                    offset,
                    reason,
                })?;
                r.1.index_problem = problem;
                r
            }
        };
        let mut t = Trace {
            path,
            source_len: bytes.len() as u64,
            bytes,
            external: None,
            header,
            blocks,
            recovery,
            meta: Metadata::default(),
            end: None,
            skip_corrupt: opts.skip_corrupt,
        };
        t.load_metadata()?;
        Ok(t)
    }

    fn load_metadata(&mut self) -> Result<(), TraceError> {
        let Some(mb) = self.blocks.iter().find(|b| b.header.kind == BlockKind::METADATA).copied() else {
            return Err(TraceError::NoMetadata { path: self.path.clone() });
        };
        let raw = self.decode(&mb)?;
        self.meta = serde_json::from_slice(&raw).map_err(|e| TraceError::BadMetadata { path: self.path.clone(), reason: e.to_string() })?;
        if let Some(eb) = self.blocks.iter().rev().find(|b| b.header.kind == BlockKind::CAPTURE_END).copied() {
            let raw = self.decode(&eb)?;
            self.end = Some(
                serde_json::from_slice(&raw)
                    .map_err(|e| TraceError::BadMetadata { path: self.path.clone(), reason: format!("capture-end block: {e}") })?,
            );
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the input file (for a perf.data analyzed in place, the
    /// perf.data's size).
    pub fn file_len(&self) -> u64 {
        self.source_len
    }

    /// Blocks of one kind, in file order.
    pub fn blocks_of(&self, kind: BlockKind) -> impl Iterator<Item = &BlockRef> + '_ {
        self.blocks.iter().filter(move |b| b.header.kind == kind)
    }

    /// Add SAMPLES blocks whose payloads live in `data` (built in this
    /// process, so stored raw and not checksummed): (start, len, samples,
    /// first time, last time) each.
    pub fn attach_external(&mut self, data: External, blocks: &[(u64, u64, u32, u64, u64)]) {
        let len = data.as_slice().len() as u64;
        for &(start, n, samples, first, last) in blocks {
            if start.saturating_add(n) > len {
                continue;
            }
            let header = BlockHeader {
                header_size: BLOCK_HEADER_SIZE as u16,
                kind: BlockKind::SAMPLES,
                codec: Codec::NONE,
                flags: 0,
                stored_len: n as u32,
                raw_len: n as u32,
                record_count: samples,
                stream: 0,
                first_time: first,
                last_time: last,
                checksum: 0,
            };
            self.blocks.push(BlockRef { offset: 0, header, external: Some((start, n)) });
        }
        self.external = Some(data);
    }

    /// Size of the buffer external blocks point into, when there is one (a
    /// perf.data analyzed in place).
    pub fn external_len(&self) -> Option<u64> {
        self.external.as_ref().map(|e| e.0.len() as u64)
    }

    /// Record the size of the file this in-memory trace stands for.
    pub fn set_source_len(&mut self, len: u64) {
        self.source_len = len;
    }

    /// Verify a block's checksum and return its raw payload.
    pub fn decode(&self, b: &BlockRef) -> Result<Bytes<'_>, TraceError> {
        if let Some((start, n)) = b.external {
            let buf = self.external.as_ref().map_or(&[][..], External::as_slice);
            return buf.get(start as usize..(start + n) as usize).map(Bytes::Borrowed).ok_or_else(|| TraceError::CorruptBlock {
                path: self.path.clone(),
                offset: start,
                reason: "external payload out of range".into(),
            });
        }
        decode_block(&self.bytes, b).map_err(|reason| TraceError::CorruptBlock { path: self.path.clone(), offset: b.offset, reason })
    }

    /// Like `decode`, but a corrupt block yields None when the trace was
    /// opened with `skip_corrupt` (the caller counts it), an error otherwise.
    pub fn decode_or_skip(&self, b: &BlockRef) -> Result<Option<Bytes<'_>>, TraceError> {
        match self.decode(b) {
            Ok(v) => Ok(Some(v)),
            Err(_) if self.skip_corrupt => Ok(None),
            Err(e) => Err(e),
        }
    }
}

thread_local! {
    /// One decompression context per thread, reused for every block.
    static ZSTD: std::cell::RefCell<std::io::Result<zstd::bulk::Decompressor<'static>>> =
        std::cell::RefCell::new(zstd::bulk::Decompressor::new());
}

fn decode_block<'a>(file: &'a [u8], b: &BlockRef) -> Result<Bytes<'a>, String> {
    let hs = b.header.header_size as usize;
    let start = b.offset as usize;
    let range = b.payload_range();
    if range.end > file.len() {
        return Err("block runs past the end of the file".into());
    }
    let header = &file[start..start + hs];
    let payload = &file[range];
    if block_checksum(header, payload) != b.header.checksum {
        return Err("checksum mismatch".into());
    }
    let columns = b.header.flags & BLOCK_FLAG_RECORD_COLUMNS != 0;
    // Both buffers come from this thread's pool (see pool.rs); the zstd
    // output is scratch when the record-columns inverse follows.
    let data: Bytes<'a> = match b.header.codec {
        Codec::NONE => {
            if payload.len() != b.header.raw_len as usize {
                return Err("stored and raw lengths differ for an uncompressed block".into());
            }
            Bytes::Borrowed(payload)
        }
        Codec::ZSTD => {
            let want = b.header.raw_len as usize;
            let mut v = Pooled::take();
            v.as_mut_vec().reserve(want);
            let n = ZSTD.with(|z| match &mut *z.borrow_mut() {
                Ok(z) => z.decompress_to_buffer(payload, v.as_mut_vec()).map_err(|e| format!("zstd: {e}")),
                Err(e) => Err(format!("zstd: {e}")),
            })?;
            if n != want {
                return Err(format!("decompressed to {n} bytes, header says {want}"));
            }
            Bytes::Pooled(v)
        }
        c => return Err(format!("unknown codec {c:?}")),
    };
    if columns {
        let mut out = Pooled::take();
        super::delta::decode_into(&data, out.as_mut_vec()).ok_or("record-columns encoding is inconsistent")?;
        return Ok(Bytes::Pooled(out));
    }
    Ok(data)
}

/// Validate a block header at `pos`; Err(reason) when it is not a block.
fn header_at(b: &[u8], pos: usize) -> Result<BlockHeader, &'static str> {
    let h = BlockHeader::decode(b.get(pos..).ok_or("no block header")?).ok_or("no block header")?;
    if h.stored_len > MAX_BLOCK_LEN || h.raw_len > MAX_BLOCK_LEN {
        return Err("implausible block length");
    }
    if h.header_size as usize > MAX_BLOCK_HEADER_SIZE {
        return Err("implausible block header size");
    }
    Ok(h)
}

fn read_index(b: &[u8], header_size: usize) -> Result<Vec<BlockRef>, Option<String>> {
    if b.len() < header_size + TRAILER_SIZE {
        return Err(None);
    }
    let t = &b[b.len() - TRAILER_SIZE..];
    if t[8..16] != TRAILER_MAGIC {
        return Err(None);
    }
    let bad = |s: &str| Some(format!("footer index unreadable ({s}); blocks were found by scanning"));
    let mut off = [0u8; 8];
    off.copy_from_slice(&t[..8]);
    let index_offset = u64::from_le_bytes(off) as usize;
    // Offsets are the file's to choose: checked sums, no wrapping past the end.
    if index_offset < header_size || index_offset.checked_add(BLOCK_HEADER_SIZE).is_none_or(|end| end > b.len() - TRAILER_SIZE) {
        return Err(bad("index offset out of range"));
    }
    let h = header_at(b, index_offset).map_err(bad)?;
    if h.kind != BlockKind::INDEX {
        return Err(bad("trailer does not point at an index block"));
    }
    let r = BlockRef { offset: index_offset as u64, header: h, external: None };
    let raw = decode_block(b, &r).map_err(|e| bad(&e))?;
    if raw.len() % INDEX_ENTRY_SIZE != 0 {
        return Err(bad("index length is not a whole number of entries"));
    }
    let mut blocks = Vec::with_capacity(raw.len() / INDEX_ENTRY_SIZE);
    for chunk in raw.chunks_exact(INDEX_ENTRY_SIZE) {
        let e = IndexEntry::decode(chunk).ok_or_else(|| bad("short entry"))?;
        let pos = e.offset as usize;
        if pos < header_size || pos.checked_add(BLOCK_HEADER_SIZE).is_none_or(|end| end > index_offset) {
            return Err(bad("entry offset out of range"));
        }
        let h = header_at(b, pos).map_err(bad)?;
        let end = pos.checked_add(h.header_size as usize).and_then(|x| x.checked_add(h.stored_len as usize));
        if h.kind != e.kind || h.stored_len != e.stored_len || end.is_none_or(|end| end > index_offset) {
            return Err(bad("entry disagrees with its block"));
        }
        blocks.push(BlockRef { offset: e.offset, header: h, external: None });
    }
    Ok(blocks)
}

/// Walk the file block by block. Err((offset, reason)) on a corrupt block
/// when not skipping.
fn scan(b: &[u8], header_size: usize, skip_corrupt: bool) -> Result<(Vec<BlockRef>, Recovery), (u64, String)> {
    let mut blocks = Vec::new();
    let mut rec = Recovery::default();
    let mut pos = header_size;
    while pos < b.len() {
        let left = b.len() - pos;
        if left < BLOCK_HEADER_SIZE {
            // A partial header, or the trailer of a file whose index was bad.
            rec.tail_bytes_dropped = left as u64;
            break;
        }
        let h = match header_at(b, pos) {
            Ok(h) => h,
            Err(reason) => {
                if !skip_corrupt {
                    return Err((pos as u64, reason.to_string()));
                }
                rec.corrupt_blocks.push(pos as u64);
                match resync(b, pos + 1) {
                    Some(p) => {
                        pos = p;
                        continue;
                    }
                    None => break,
                }
            }
        };
        let end = pos + h.header_size as usize + h.stored_len as usize;
        if end > b.len() {
            // A block running past the end is what a killed writer leaves,
            // unless a valid block follows: then its header is damaged.
            match resync(b, pos + 1) {
                None => {
                    rec.tail_bytes_dropped = left as u64;
                    break;
                }
                Some(next) => {
                    if !skip_corrupt {
                        return Err((pos as u64, "block length runs past the end of the file, yet valid blocks follow".into()));
                    }
                    rec.corrupt_blocks.push(pos as u64);
                    pos = next;
                    continue;
                }
            }
        }
        let r = BlockRef { offset: pos as u64, header: h, external: None };
        if block_checksum(&b[pos..pos + h.header_size as usize], &b[r.payload_range()]) != h.checksum {
            if !skip_corrupt {
                return Err((pos as u64, "checksum mismatch".into()));
            }
            rec.corrupt_blocks.push(pos as u64);
        } else if h.kind != BlockKind::INDEX {
            blocks.push(r);
        }
        pos = end;
        // A trailer after a valid index: the file was closed but its index
        // was unusable; the trailer is not a block.
        if b.len() - pos == TRAILER_SIZE && b[b.len() - 8..] == TRAILER_MAGIC {
            break;
        }
    }
    rec.blocks_recovered = blocks.len();
    Ok((blocks, rec))
}

/// Next position at or after `from` that holds a block header with a valid
/// checksum.
fn resync(b: &[u8], from: usize) -> Option<usize> {
    let mut p = from;
    while p + BLOCK_HEADER_SIZE <= b.len() {
        let rel = b[p..].windows(4).position(|w| w == BLOCK_MAGIC)?;
        p += rel;
        if let Ok(h) = header_at(b, p) {
            let end = p + h.header_size as usize + h.stored_len as usize;
            if end <= b.len() && block_checksum(&b[p..p + h.header_size as usize], &b[p + h.header_size as usize..end]) == h.checksum {
                return Some(p);
            }
        }
        p += 1;
    }
    None
}
