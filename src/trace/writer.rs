//! Appending blocks to a .msen trace.
//!
//! Every block is complete on disk (header, then payload, in one write) before
//! the next starts, so a writer killed at any moment leaves a file whose
//! complete blocks a reader recovers. `finish` appends the footer index and the
//! trailer that mark a clean close.

use super::format::*;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// What one block holds, for the writer's bookkeeping.
#[derive(Debug, Clone, Copy)]
pub struct BlockInfo {
    pub kind: BlockKind,
    pub stream: u32,
    pub record_count: u32,
    pub first_time: u64,
    pub last_time: u64,
}

/// Records collected for one block: the bytes, their count and time range.
#[derive(Debug, Default)]
pub struct BlockBuffer {
    pub buf: Vec<u8>,
    pub count: u32,
    pub first: u64,
    pub last: u64,
}

impl BlockBuffer {
    /// Append one record (with its time, when it has one).
    pub fn add(&mut self, rec: &[u8], time: Option<u64>) {
        if let Some(t) = time {
            // A block may start with records that carry no time: the first
            // time is the smallest seen, not the first record's.
            if self.first == 0 || t < self.first {
                self.first = t;
            }
            self.last = self.last.max(t);
        }
        self.buf.extend_from_slice(rec);
        self.count += 1;
    }

    /// Write the collected records as one block and start over (nothing is
    /// written when empty).
    pub fn flush<W: Write>(&mut self, w: &mut TraceWriter<W>, kind: BlockKind, stream: u32) -> io::Result<()> {
        match self.take_block(kind, stream) {
            Some((info, buf)) => w.write_block(info, &buf),
            None => Ok(()),
        }
    }

    /// The collected records as one block, to write later (None when
    /// empty), and start over.
    pub fn take_block(&mut self, kind: BlockKind, stream: u32) -> Option<(BlockInfo, Vec<u8>)> {
        if self.count == 0 {
            return None;
        }
        let s = std::mem::take(self);
        Some((BlockInfo { kind, stream, record_count: s.count, first_time: s.first, last_time: s.last }, s.buf))
    }
}

pub struct TraceWriter<W: Write = File> {
    file: W,
    pos: u64,
    index: Vec<IndexEntry>,
    level: i32,
    compressor: zstd::bulk::Compressor<'static>,
    bytes_raw: u64,
    /// Write each block with a single write (files: crash safety).
    atomic_blocks: bool,
}

impl<W: Write> std::fmt::Debug for TraceWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceWriter").field("pos", &self.pos).field("blocks", &self.index.len()).field("level", &self.level).finish()
    }
}

thread_local! {
    /// A zstd context per worker for `write_blocks` (with its level).
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { std::cell::RefCell::new(None) };
}

/// A block ready to append: its header (checksum included) and payload.
struct Encoded<'a> {
    info: BlockInfo,
    header: [u8; BLOCK_HEADER_SIZE],
    /// The header's lengths, for the index: stored, and before compression.
    stored_len: u32,
    input_len: u32,
    payload: Payload<'a>,
    /// The caller's bytes (before the record-columns transform).
    raw_len: usize,
}

enum Payload<'a> {
    Compressed(Vec<u8>),
    /// Transformed (record columns) but stored: compression did not pay.
    Stored(Vec<u8>),
    Raw(&'a [u8]),
}

/// Transform and compress one block (pure: the same bytes for the same
/// input and level).
fn encode_block<'a>(
    level: i32,
    compressor: &mut zstd::bulk::Compressor<'static>,
    info: BlockInfo,
    raw: &'a [u8],
) -> io::Result<Encoded<'a>> {
    if raw.len() > MAX_BLOCK_LEN as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("block of {} bytes exceeds the format's {} byte limit", raw.len(), MAX_BLOCK_LEN),
        ));
    }
    // Perf-record blocks go through the record-columns transform first.
    // Level 0 stores blocks as they are (traces built in memory only to
    // be analyzed once).
    // Large records (user stack copies of --call-graph dwarf, kilobytes
    // each) compress better as they are: consecutive copies repeat at
    // shifted offsets, which zstd's matcher finds and byte columns hide.
    let avg = raw.len() / (info.record_count.max(1) as usize);
    let delta = level > 0 && matches!(info.kind, BlockKind::SAMPLES | BlockKind::SIDEBAND) && avg < 1024;
    let (transformed, flags) = if delta { (Some(super::delta::encode(raw)), BLOCK_FLAG_RECORD_COLUMNS) } else { (None, 0) };
    let input: &[u8] = transformed.as_deref().unwrap_or(raw);
    let compressed = if level > 0 { Some(compressor.compress(input)?).filter(|c| c.len() < input.len()) } else { None };
    let input_len = input.len();
    let payload = match (compressed, transformed) {
        (Some(c), _) => Payload::Compressed(c),
        (None, Some(t)) => Payload::Stored(t),
        (None, None) => Payload::Raw(raw),
    };
    let (codec, stored): (Codec, &[u8]) = match &payload {
        Payload::Compressed(c) => (Codec::ZSTD, c),
        Payload::Stored(t) => (Codec::NONE, t),
        Payload::Raw(r) => (Codec::NONE, r),
    };
    let mut h = BlockHeader {
        header_size: BLOCK_HEADER_SIZE as u16,
        kind: info.kind,
        codec,
        flags,
        stored_len: stored.len() as u32,
        raw_len: input_len as u32,
        record_count: info.record_count,
        stream: info.stream,
        first_time: info.first_time,
        last_time: info.last_time,
        checksum: 0,
    };
    let mut hb = h.encode_without_checksum();
    h.checksum = block_checksum(&hb, stored);
    hb[48..52].copy_from_slice(&h.checksum.to_le_bytes());
    Ok(Encoded { info, header: hb, stored_len: h.stored_len, input_len: h.raw_len, payload, raw_len: raw.len() })
}

impl TraceWriter {
    /// Create (or truncate) `path` with mode 0600 and write the file header.
    /// `level` is the zstd level of every block.
    pub fn create(path: &Path, level: i32) -> io::Result<TraceWriter> {
        let file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
        TraceWriter::new(file, level)
    }

    /// Make everything written so far durable (used at bounded intervals
    /// during capture, so a machine crash loses at most one interval).
    pub fn sync(&mut self) -> io::Result<()> {
        ignore_unsyncable(self.file.sync_data())
    }

    /// Append the footer index and trailer, sync, and close; returns the
    /// file length.
    pub fn finish(self) -> io::Result<u64> {
        let (n, f) = self.close()?;
        ignore_unsyncable(f.sync_all())?;
        Ok(n)
    }
}

/// A pipe or terminal (`-o -`) cannot be synced: EINVAL is not a failure there.
fn ignore_unsyncable(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        r => r,
    }
}

impl TraceWriter<Vec<u8>> {
    /// A trace built in memory (perf.data analyzed directly, tests).
    pub fn in_memory(level: i32) -> io::Result<TraceWriter<Vec<u8>>> {
        let mut w = TraceWriter::new(Vec::new(), level)?;
        w.atomic_blocks = false;
        Ok(w)
    }

    /// Close and return the trace bytes.
    pub fn into_bytes(self) -> io::Result<Vec<u8>> {
        self.close().map(|(_, v)| v)
    }
}

impl<W: Write> TraceWriter<W> {
    pub fn new(mut file: W, level: i32) -> io::Result<TraceWriter<W>> {
        let header = FileHeader::current().encode();
        file.write_all(&header)?;
        Ok(TraceWriter {
            file,
            pos: header.len() as u64,
            index: Vec::new(),
            level,
            compressor: zstd::bulk::Compressor::new(level.max(1))?,
            bytes_raw: 0,
            atomic_blocks: true,
        })
    }

    pub fn level(&self) -> i32 {
        self.level
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Raw (uncompressed) payload bytes written so far.
    pub fn raw_bytes(&self) -> u64 {
        self.bytes_raw
    }

    /// Compress `raw` and append it as one block.
    pub fn write_block(&mut self, info: BlockInfo, raw: &[u8]) -> io::Result<()> {
        let e = encode_block(self.level, &mut self.compressor, info, raw)?;
        self.append(e)
    }

    /// Encode `blocks` on the rayon pool (one zstd context per worker) and
    /// append them in the order given: the same file as `write_block` on
    /// each in turn (zstd's output depends only on the input and level).
    pub fn write_blocks(&mut self, blocks: &[(BlockInfo, Vec<u8>)]) -> io::Result<()> {
        use rayon::prelude::*;
        let level = self.level;
        let encoded: Vec<Encoded<'_>> = blocks
            .par_iter()
            .map(|(info, raw)| {
                COMPRESSOR.with(|c| {
                    let mut c = c.borrow_mut();
                    let ctx = match &mut *c {
                        Some((l, ctx)) if *l == level => ctx,
                        slot => &mut slot.insert((level, zstd::bulk::Compressor::new(level.max(1))?)).1,
                    };
                    encode_block(level, ctx, *info, raw)
                })
            })
            .collect::<io::Result<_>>()?;
        encoded.into_iter().try_for_each(|e| self.append(e))
    }

    fn append(&mut self, e: Encoded<'_>) -> io::Result<()> {
        let Encoded { info, header, stored_len, input_len, payload, raw_len } = e;
        let payload: &[u8] = match &payload {
            Payload::Compressed(v) => v,
            Payload::Stored(v) => v,
            Payload::Raw(r) => &r[..],
        };
        // Files get one buffer and one write: a kill leaves either no block
        // or a cut one at the tail, never a header separated from its payload
        // by another block. In-memory sinks skip the extra copy.
        let len = header.len() + payload.len();
        if self.atomic_blocks {
            let mut buf = Vec::with_capacity(len);
            buf.extend_from_slice(&header);
            buf.extend_from_slice(payload);
            self.file.write_all(&buf)?;
        } else {
            self.file.write_all(&header)?;
            self.file.write_all(payload)?;
        }
        if info.kind != BlockKind::INDEX {
            self.index.push(IndexEntry {
                offset: self.pos,
                kind: info.kind,
                stream: info.stream,
                record_count: info.record_count,
                raw_len: input_len,
                stored_len,
                first_time: info.first_time,
                last_time: info.last_time,
            });
        }
        self.pos += len as u64;
        self.bytes_raw += raw_len as u64;
        Ok(())
    }

    /// Append the footer index and trailer; returns the file length and the sink.
    pub fn close(mut self) -> io::Result<(u64, W)> {
        let mut raw = Vec::with_capacity(self.index.len() * INDEX_ENTRY_SIZE);
        for e in &self.index {
            e.encode(&mut raw);
        }
        let index_offset = self.pos;
        let n = self.index.len() as u32;
        self.write_block(BlockInfo { kind: BlockKind::INDEX, stream: STREAM_GLOBAL, record_count: n, first_time: 0, last_time: 0 }, &raw)?;
        let mut t = [0u8; TRAILER_SIZE];
        t[0..8].copy_from_slice(&index_offset.to_le_bytes());
        t[8..16].copy_from_slice(&TRAILER_MAGIC);
        self.file.write_all(&t)?;
        self.pos += TRAILER_SIZE as u64;
        self.file.flush()?;
        Ok((self.pos, self.file))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn blocks_written_in_a_batch_are_the_bytes_written_one_by_one() {
        // Record-like blocks (transformed and compressed), one that does not
        // compress (stored), and a small metadata block.
        let rec = |i: u64| {
            let mut r = Vec::new();
            r.extend_from_slice(&9u32.to_le_bytes());
            r.extend_from_slice(&2u16.to_le_bytes());
            r.extend_from_slice(&32u16.to_le_bytes());
            for w in [i * 250, 0x4242, i ^ 0x5555] {
                r.extend_from_slice(&w.to_le_bytes());
            }
            r
        };
        let samples = |n: u64| (0..n).flat_map(rec).collect::<Vec<u8>>();
        let noise: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
        let info = |kind, n| BlockInfo { kind, stream: 1, record_count: n, first_time: 3, last_time: 9 };
        let blocks = vec![
            (info(BlockKind::SAMPLES, 1000), samples(1000)),
            (info(BlockKind::METADATA, 1), b"{\"a\":1}".to_vec()),
            (info(BlockKind::JIT_MAPS, 1), noise),
            (info(BlockKind::SAMPLES, 7), samples(7)),
        ];
        for level in [0, 1, 3] {
            let mut one = TraceWriter::in_memory(level).unwrap();
            for (i, b) in &blocks {
                one.write_block(*i, b).unwrap();
            }
            let mut batch = TraceWriter::in_memory(level).unwrap();
            batch.write_blocks(&blocks).unwrap();
            assert_eq!(one.into_bytes().unwrap(), batch.into_bytes().unwrap(), "level {level}");
        }
    }
}
