//! Byte layouts of the .msen container (formats/trace-format.md is normative;
//! keep the two in step).

use std::fmt;

pub const MAGIC: [u8; 8] = *b"MSENTRAC";
pub const TRAILER_MAGIC: [u8; 8] = *b"MSENEND\0";
pub const MAJOR: u16 = 1;
pub const MINOR: u16 = 0;
pub const FILE_HEADER_SIZE: usize = 32;
pub const BLOCK_MAGIC: [u8; 4] = *b"MBLK";
pub const BLOCK_HEADER_SIZE: usize = 56;
/// Block headers may grow in later minors, but not past this.
pub const MAX_BLOCK_HEADER_SIZE: usize = 1024;
pub const TRAILER_SIZE: usize = 16;
pub const INDEX_ENTRY_SIZE: usize = 48;
/// Largest raw or stored block payload a reader accepts (a sanity bound for
/// scanning damaged files; writers stay far below it).
pub const MAX_BLOCK_LEN: u32 = 256 << 20;
/// Block flag: the payload (after decompression) holds perf records in the
/// record-columns encoding (see `delta`).
pub const BLOCK_FLAG_RECORD_COLUMNS: u8 = 1;
/// `stream` value for blocks not tied to one CPU.
pub const STREAM_GLOBAL: u32 = u32::MAX;

/// Block kind. An open tag: a reader skips kinds it does not know.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockKind(pub u16);

impl BlockKind {
    /// JSON `Metadata`, the first block of every trace.
    pub const METADATA: Self = Self(1);
    /// Kernel PERF_RECORD_SAMPLE records of one CPU stream, as read.
    pub const SAMPLES: Self = Self(2);
    /// Every other perf record (MMAP2, COMM, FORK, EXIT, LOST, ...).
    pub const SIDEBAND: Self = Self(3);
    /// /proc/kallsyms text captured at record time.
    pub const KALLSYMS: Self = Self(4);
    /// JSON `CaptureEnd`, written when a capture stops cleanly.
    pub const CAPTURE_END: Self = Self(5);
    /// The footer index of all blocks.
    pub const INDEX: Self = Self(6);
    /// JSON object: pid -> contents of /tmp/perf-PID.map (JIT symbols).
    pub const JIT_MAPS: Self = Self(7);
    /// JSON `FlowTable`: the flows the BPF hooks saw, with their counters.
    pub const FLOWS: Self = Self(8);
    /// JSON `Embedded`: the symbols (and optionally lines) of the sampled
    /// addresses, so the trace reads the same without the binaries.
    pub const SYMBOLS: Self = Self(9);
    /// The recording machine's vdso ELF image.
    pub const VDSO: Self = Self(10);
    /// CFI sections of the sampled binaries (`embedded::encode_unwind`), so
    /// stack copies unwind without the binaries.
    pub const UNWIND: Self = Self(11);
    /// JSON `AgentEvent`: a mode switch or load shedding, one per block,
    /// written as it happens.
    pub const AGENT: Self = Self(12);
    /// JSON array of `HostSample`: host context, one reading a second,
    /// written at the recorder's flush interval.
    pub const HOST: Self = Self(13);
    /// Text, `ADDRESS SIZE NAME [TYPE]` per line (hex address): data objects
    /// registered during the capture (POST /api/v1/symbols/data).
    pub const DATA_OBJECTS: Self = Self(14);

    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "metadata",
            2 => "samples",
            3 => "sideband",
            4 => "kallsyms",
            5 => "capture-end",
            6 => "index",
            7 => "jit-maps",
            8 => "flows",
            9 => "symbols",
            10 => "vdso",
            11 => "unwind",
            12 => "agent",
            13 => "host",
            14 => "data-objects",
            _ => return None,
        })
    }
}

impl fmt::Debug for BlockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "BlockKind::{n}"),
            None => write!(f, "BlockKind::Unknown({})", self.0),
        }
    }
}

/// Payload codec.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Codec(pub u8);

impl Codec {
    pub const NONE: Self = Self(0);
    pub const ZSTD: Self = Self(1);
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => write!(f, "Codec::None"),
            1 => write!(f, "Codec::Zstd"),
            n => write!(f, "Codec::Unknown({n})"),
        }
    }
}

/// File header (32 bytes in v1.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub major: u16,
    pub minor: u16,
    pub header_size: u32,
    pub flags: u64,
}

impl FileHeader {
    pub fn current() -> Self {
        FileHeader { major: MAJOR, minor: MINOR, header_size: FILE_HEADER_SIZE as u32, flags: 0 }
    }

    pub fn encode(&self) -> [u8; FILE_HEADER_SIZE] {
        let mut b = [0u8; FILE_HEADER_SIZE];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.major.to_le_bytes());
        b[10..12].copy_from_slice(&self.minor.to_le_bytes());
        b[12..16].copy_from_slice(&(FILE_HEADER_SIZE as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.flags.to_le_bytes());
        let crc = crc32fast::hash(&b[..FILE_HEADER_SIZE - 4]);
        b[FILE_HEADER_SIZE - 4..].copy_from_slice(&crc.to_le_bytes());
        b
    }
}

/// Block header (56 bytes in v1.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    pub header_size: u16,
    pub kind: BlockKind,
    pub codec: Codec,
    pub flags: u8,
    pub stored_len: u32,
    pub raw_len: u32,
    pub record_count: u32,
    pub stream: u32,
    pub first_time: u64,
    pub last_time: u64,
    pub checksum: u32,
}

impl BlockHeader {
    pub fn encode_without_checksum(&self) -> [u8; BLOCK_HEADER_SIZE] {
        let mut b = [0u8; BLOCK_HEADER_SIZE];
        b[0..4].copy_from_slice(&BLOCK_MAGIC);
        b[4..6].copy_from_slice(&(BLOCK_HEADER_SIZE as u16).to_le_bytes());
        b[6..8].copy_from_slice(&self.kind.0.to_le_bytes());
        b[8] = self.codec.0;
        b[9] = self.flags;
        b[12..16].copy_from_slice(&self.stored_len.to_le_bytes());
        b[16..20].copy_from_slice(&self.raw_len.to_le_bytes());
        b[20..24].copy_from_slice(&self.record_count.to_le_bytes());
        b[24..28].copy_from_slice(&self.stream.to_le_bytes());
        b[32..40].copy_from_slice(&self.first_time.to_le_bytes());
        b[40..48].copy_from_slice(&self.last_time.to_le_bytes());
        b
    }

    /// Decode the fixed part; `bytes` must hold at least BLOCK_HEADER_SIZE bytes.
    /// Returns None when the magic or the self-declared size is wrong.
    pub fn decode(bytes: &[u8]) -> Option<BlockHeader> {
        if bytes.len() < BLOCK_HEADER_SIZE || bytes[0..4] != BLOCK_MAGIC {
            return None;
        }
        let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let u64_at = |o: usize| {
            u64::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3], bytes[o + 4], bytes[o + 5], bytes[o + 6], bytes[o + 7]])
        };
        let header_size = u16_at(4);
        if (header_size as usize) < BLOCK_HEADER_SIZE {
            return None;
        }
        Some(BlockHeader {
            header_size,
            kind: BlockKind(u16_at(6)),
            codec: Codec(bytes[8]),
            flags: bytes[9],
            stored_len: u32_at(12),
            raw_len: u32_at(16),
            record_count: u32_at(20),
            stream: u32_at(24),
            first_time: u64_at(32),
            last_time: u64_at(40),
            checksum: u32_at(48),
        })
    }
}

/// CRC-32 over the block header with its checksum field zeroed, then the payload.
pub fn block_checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..48]);
    h.update(&[0u8; 4]);
    h.update(&header[52..]);
    h.update(payload);
    h.finalize()
}

/// One footer index entry (48 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub offset: u64,
    pub kind: BlockKind,
    pub stream: u32,
    pub record_count: u32,
    pub raw_len: u32,
    pub stored_len: u32,
    pub first_time: u64,
    pub last_time: u64,
}

impl IndexEntry {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.kind.0.to_le_bytes());
        out.extend_from_slice(&[0u8; 2]);
        out.extend_from_slice(&self.stream.to_le_bytes());
        out.extend_from_slice(&self.record_count.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
        out.extend_from_slice(&self.stored_len.to_le_bytes());
        out.extend_from_slice(&[0u8; 4]);
        out.extend_from_slice(&self.first_time.to_le_bytes());
        out.extend_from_slice(&self.last_time.to_le_bytes());
        debug_assert_eq!(out.len() - start, INDEX_ENTRY_SIZE);
    }

    pub fn decode(b: &[u8]) -> Option<IndexEntry> {
        if b.len() < INDEX_ENTRY_SIZE {
            return None;
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| u64::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3], b[o + 4], b[o + 5], b[o + 6], b[o + 7]]);
        Some(IndexEntry {
            offset: u64_at(0),
            kind: BlockKind(u16::from_le_bytes([b[8], b[9]])),
            stream: u32_at(12),
            record_count: u32_at(16),
            raw_len: u32_at(20),
            stored_len: u32_at(24),
            first_time: u64_at(32),
            last_time: u64_at(40),
        })
    }
}
