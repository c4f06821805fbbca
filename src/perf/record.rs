//! Raw perf records and their lazy decoding.
//!
//! Records stay as the kernel wrote them (`perf_event_header` + body) from the
//! ring buffer through the trace to the analyses; one decoder serves live
//! capture, msen traces and perf.data. A `ParseInfo` is computed once per attr
//! (which fields a sample holds, where the sample_id trailer starts), so the hot
//! path reads ids and times at fixed offsets without a full parse.

use super::attr::{self, sample, Endian, EventAttr};
use std::fmt;

/// `perf_event_header.type`. An open tag: unknown values pass through.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordType(pub u32);

impl RecordType {
    pub const MMAP: Self = Self(1);
    pub const LOST: Self = Self(2);
    pub const COMM: Self = Self(3);
    pub const EXIT: Self = Self(4);
    pub const THROTTLE: Self = Self(5);
    pub const UNTHROTTLE: Self = Self(6);
    pub const FORK: Self = Self(7);
    pub const READ: Self = Self(8);
    pub const SAMPLE: Self = Self(9);
    pub const MMAP2: Self = Self(10);
    pub const AUX: Self = Self(11);
    pub const ITRACE_START: Self = Self(12);
    pub const LOST_SAMPLES: Self = Self(13);
    pub const SWITCH: Self = Self(14);
    pub const SWITCH_CPU_WIDE: Self = Self(15);
    pub const NAMESPACES: Self = Self(16);
    pub const KSYMBOL: Self = Self(17);
    pub const BPF_EVENT: Self = Self(18);
    pub const CGROUP: Self = Self(19);
    pub const TEXT_POKE: Self = Self(20);
    pub const AUX_OUTPUT_HW_ID: Self = Self(21);
    // perf's user-space record types (written by perf, never by the kernel).
    pub const HEADER_ATTR: Self = Self(64);
    pub const HEADER_EVENT_TYPE: Self = Self(65);
    pub const HEADER_TRACING_DATA: Self = Self(66);
    pub const HEADER_BUILD_ID: Self = Self(67);
    pub const FINISHED_ROUND: Self = Self(68);
    pub const ID_INDEX: Self = Self(69);
    pub const AUXTRACE_INFO: Self = Self(70);
    pub const AUXTRACE: Self = Self(71);
    pub const AUXTRACE_ERROR: Self = Self(72);
    pub const THREAD_MAP: Self = Self(73);
    pub const CPU_MAP: Self = Self(74);
    pub const STAT_CONFIG: Self = Self(75);
    pub const STAT: Self = Self(76);
    pub const STAT_ROUND: Self = Self(77);
    pub const EVENT_UPDATE: Self = Self(78);
    pub const TIME_CONV: Self = Self(79);
    pub const HEADER_FEATURE: Self = Self(80);
    pub const COMPRESSED: Self = Self(81);
    pub const FINISHED_INIT: Self = Self(82);
    pub const COMPRESSED2: Self = Self(83);

    /// perf's name for the type (as `perf report --stats` prints it).
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "MMAP",
            2 => "LOST",
            3 => "COMM",
            4 => "EXIT",
            5 => "THROTTLE",
            6 => "UNTHROTTLE",
            7 => "FORK",
            8 => "READ",
            9 => "SAMPLE",
            10 => "MMAP2",
            11 => "AUX",
            12 => "ITRACE_START",
            13 => "LOST_SAMPLES",
            14 => "SWITCH",
            15 => "SWITCH_CPU_WIDE",
            16 => "NAMESPACES",
            17 => "KSYMBOL",
            18 => "BPF_EVENT",
            19 => "CGROUP",
            20 => "TEXT_POKE",
            21 => "AUX_OUTPUT_HW_ID",
            64 => "ATTR",
            65 => "EVENT_TYPE",
            66 => "TRACING_DATA",
            67 => "BUILD_ID",
            68 => "FINISHED_ROUND",
            69 => "ID_INDEX",
            70 => "AUXTRACE_INFO",
            71 => "AUXTRACE",
            72 => "AUXTRACE_ERROR",
            73 => "THREAD_MAP",
            74 => "CPU_MAP",
            75 => "STAT_CONFIG",
            76 => "STAT",
            77 => "STAT_ROUND",
            78 => "EVENT_UPDATE",
            79 => "TIME_CONV",
            80 => "FEATURE",
            81 => "COMPRESSED",
            82 => "FINISHED_INIT",
            83 => "COMPRESSED2",
            _ => return None,
        })
    }

    /// Name for display; unknown types print as `UNKNOWN(n)`.
    pub fn display_name(self) -> String {
        match self.name() {
            Some(n) => n.to_string(),
            None => format!("UNKNOWN({})", self.0),
        }
    }

    /// Kernel record types that carry a sample_id trailer when sample_id_all.
    pub fn has_sample_id(self) -> bool {
        self.0 != Self::SAMPLE.0 && self.0 < 64
    }
}

impl fmt::Debug for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "RecordType::{n}"),
            None => write!(f, "RecordType::Unknown({})", self.0),
        }
    }
}

/// `perf_event_header.misc` cpumode values.
pub mod misc {
    pub const CPUMODE_MASK: u16 = 7;
    pub const CPUMODE_UNKNOWN: u16 = 0;
    pub const KERNEL: u16 = 1;
    pub const USER: u16 = 2;
    pub const HYPERVISOR: u16 = 3;
    pub const GUEST_KERNEL: u16 = 4;
    pub const GUEST_USER: u16 = 5;
    /// On MMAP/MMAP2: the mapping is not executable (a data mapping).
    pub const MMAP_DATA: u16 = 1 << 13;
    /// On COMM: the comm changed because of an exec.
    pub const COMM_EXEC: u16 = 1 << 13;
    /// On MMAP2: the record carries a build-id instead of dev/inode.
    pub const MMAP_BUILD_ID: u16 = 1 << 14;
    pub const EXACT_IP: u16 = 1 << 14;
}

/// Callchain context markers (`PERF_CONTEXT_*`): values above this are not
/// addresses but switch the cpumode of the frames that follow.
pub const PERF_CONTEXT_MAX: u64 = (-4095i64) as u64;
pub const PERF_CONTEXT_KERNEL: u64 = (-128i64) as u64;
pub const PERF_CONTEXT_USER: u64 = (-512i64) as u64;

pub const HEADER_SIZE: usize = 8;

/// The address frames of a raw callchain with their mode (true = kernel),
/// context markers removed. `kernel` is the mode of the sample itself.
pub fn frames_of(chain: impl Iterator<Item = u64>, kernel: bool) -> impl Iterator<Item = (bool, u64)> {
    let mut kernel = kernel;
    chain.filter_map(move |ip| {
        if ip >= PERF_CONTEXT_MAX {
            kernel = match ip {
                PERF_CONTEXT_KERNEL => true,
                PERF_CONTEXT_USER => false,
                _ => kernel,
            };
            return None;
        }
        Some((kernel, ip))
    })
}

/// One record as stored: the header fields plus the body bytes (after the
/// 8-byte header).
#[derive(Clone, Copy)]
pub struct RawRecord<'a> {
    pub kind: RecordType,
    pub misc: u16,
    pub body: &'a [u8],
}

impl fmt::Debug for RawRecord<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawRecord").field("kind", &self.kind).field("misc", &self.misc).field("len", &self.body.len()).finish()
    }
}

impl RawRecord<'_> {
    pub fn cpumode(&self) -> u16 {
        self.misc & misc::CPUMODE_MASK
    }
}

/// Why a buffer of records could not be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("record at byte {offset} has size {size}, smaller than its 8-byte header")]
    TooSmall { offset: usize, size: usize },
    #[error("record at byte {offset} has size {size} but only {left} bytes remain")]
    Truncated { offset: usize, size: usize, left: usize },
}

/// Iterates records laid end to end (the layout of a trace block and of a
/// perf.data data section).
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    buf: &'a [u8],
    pos: usize,
    endian: Endian,
}

impl<'a> RecordIter<'a> {
    pub fn new(buf: &'a [u8], endian: Endian) -> Self {
        Self { buf, pos: 0, endian }
    }
    pub fn offset(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RawRecord<'a>, SplitError>;
    fn next(&mut self) -> Option<Self::Item> {
        let left = self.buf.len() - self.pos;
        if left == 0 {
            return None;
        }
        if left < HEADER_SIZE {
            let pos = self.pos;
            self.pos = self.buf.len();
            return Some(Err(SplitError::Truncated { offset: pos, size: HEADER_SIZE, left }));
        }
        let h = &self.buf[self.pos..];
        let kind = RecordType(self.endian.u32(h));
        let misc = self.endian.u16(&h[4..]);
        let size = self.endian.u16(&h[6..]) as usize;
        if size < HEADER_SIZE {
            let pos = self.pos;
            self.pos = self.buf.len();
            return Some(Err(SplitError::TooSmall { offset: pos, size }));
        }
        if size > left {
            let pos = self.pos;
            self.pos = self.buf.len();
            return Some(Err(SplitError::Truncated { offset: pos, size, left }));
        }
        let body = &h[HEADER_SIZE..size];
        self.pos += size;
        Some(Ok(RawRecord { kind, misc, body }))
    }
}

/// Field layout derived once per attr.
#[derive(Debug, Clone)]
pub struct ParseInfo {
    pub sample_type: u64,
    pub read_format: u64,
    pub branch_hw_index: bool,
    pub regs_user_count: usize,
    pub regs_intr_count: usize,
    pub sample_id_all: bool,
    /// Size of the sample_id trailer on non-sample records.
    pub id_trailer_len: usize,
    pub endian: Endian,
}

impl ParseInfo {
    /// Byte offset of the period in a SAMPLE body, when samples carry one
    /// (the fields before it are fixed-size words).
    pub fn period_offset(&self) -> Option<usize> {
        let st = self.sample_type;
        if st & sample::PERIOD == 0 {
            return None;
        }
        let before = [sample::IDENTIFIER, sample::IP, sample::TID, sample::TIME, sample::ADDR, sample::ID, sample::STREAM_ID, sample::CPU];
        Some(8 * before.iter().filter(|&&b| st & b != 0).count())
    }

    pub fn new(a: &EventAttr, endian: Endian) -> Self {
        let st = a.sample_type;
        let mut id_trailer_len = 0;
        for bit in [sample::TID, sample::TIME, sample::ID, sample::STREAM_ID, sample::CPU, sample::IDENTIFIER] {
            if st & bit != 0 {
                id_trailer_len += 8;
            }
        }
        Self {
            sample_type: st,
            read_format: a.read_format,
            branch_hw_index: a.branch_sample_type & attr::BRANCH_HW_INDEX != 0,
            regs_user_count: a.sample_regs_user.count_ones() as usize,
            regs_intr_count: a.sample_regs_intr.count_ones() as usize,
            sample_id_all: a.sample_id_all(),
            id_trailer_len: if a.sample_id_all() { id_trailer_len } else { 0 },
            endian,
        }
    }

    /// Offset of the time field in a SAMPLE body, when it sits at a fixed place.
    pub fn sample_time_offset(&self) -> Option<usize> {
        if self.sample_type & sample::TIME == 0 {
            return None;
        }
        let mut off = 0;
        for bit in [sample::IDENTIFIER, sample::IP, sample::TID] {
            if self.sample_type & bit != 0 {
                off += 8;
            }
        }
        Some(off)
    }

    /// Parse a SAMPLE body.
    pub fn parse_sample<'a>(&self, body: &'a [u8]) -> Result<Sample<'a>, DecodeError> {
        let mut c = Cursor { b: body, pos: 0, e: self.endian };
        let st = self.sample_type;
        let mut s = Sample::default();
        if st & sample::IDENTIFIER != 0 {
            s.id = Some(c.u64()?);
        }
        if st & sample::IP != 0 {
            s.ip = Some(c.u64()?);
        }
        if st & sample::TID != 0 {
            s.pid = Some(c.u32()?);
            s.tid = Some(c.u32()?);
        }
        if st & sample::TIME != 0 {
            s.time = Some(c.u64()?);
        }
        if st & sample::ADDR != 0 {
            s.addr = Some(c.u64()?);
        }
        if st & sample::ID != 0 {
            s.id = Some(c.u64()?);
        }
        if st & sample::STREAM_ID != 0 {
            s.stream_id = Some(c.u64()?);
        }
        if st & sample::CPU != 0 {
            s.cpu = Some(c.u32()?);
            c.u32()?;
        }
        if st & sample::PERIOD != 0 {
            s.period = Some(c.u64()?);
        }
        if st & sample::READ != 0 {
            let rf = self.read_format;
            let extra =
                (rf & attr::read_format::TOTAL_TIME_ENABLED != 0) as usize + (rf & attr::read_format::TOTAL_TIME_RUNNING != 0) as usize;
            let per_value = 1 + (rf & attr::read_format::ID != 0) as usize + (rf & attr::read_format::LOST != 0) as usize;
            if rf & attr::read_format::GROUP != 0 {
                let nr = c.u64()? as usize;
                c.skip(extra * 8)?;
                let w = c.words(nr.checked_mul(per_value).ok_or(DecodeError::Overflow)?)?;
                s.read = Some(ReadValues { words: w, stride: per_value, id_index: (rf & attr::read_format::ID != 0).then_some(1) });
            } else {
                let v = c.words(1)?;
                c.skip(extra * 8)?;
                c.skip((per_value - 1) * 8)?;
                s.read = Some(ReadValues { words: v, stride: 1, id_index: None });
            }
        }
        if st & sample::CALLCHAIN != 0 {
            let nr = c.u64()? as usize;
            s.callchain = Some(c.words(nr)?);
        }
        if st & sample::RAW != 0 {
            let size = c.u32()? as usize;
            s.raw = Some(c.bytes(size)?);
        }
        if st & sample::BRANCH_STACK != 0 {
            let nr = c.u64()? as usize;
            if self.branch_hw_index {
                s.branch_hw_index = Some(c.u64()?);
            }
            s.branch_stack = Some(c.words(nr.checked_mul(3).ok_or(DecodeError::Overflow)?)?);
        }
        if st & sample::REGS_USER != 0 {
            let abi = c.u64()?;
            if abi != 0 {
                s.regs_user = Some((abi, c.words(self.regs_user_count)?));
            }
        }
        if st & sample::STACK_USER != 0 {
            let size = c.u64()? as usize;
            if size != 0 {
                let data = c.bytes(size)?;
                let dyn_size = c.u64()?;
                s.stack_user = Some((data, dyn_size));
            }
        }
        if st & sample::WEIGHT_STRUCT != 0 {
            // var1_dw (u32), var2_w (u16), var3_w (u16) in memory order.
            let w = c.bytes(8)?;
            let e = self.endian;
            s.weight = Some(e.u32(w) as u64);
            s.ins_lat = Some(e.u16(&w[4..]));
            s.weight3 = Some(e.u16(&w[6..]));
        } else if st & sample::WEIGHT != 0 {
            s.weight = Some(c.u64()?);
        }
        if st & sample::DATA_SRC != 0 {
            s.data_src = Some(c.u64()?);
        }
        if st & sample::TRANSACTION != 0 {
            s.transaction = Some(c.u64()?);
        }
        if st & sample::REGS_INTR != 0 {
            let abi = c.u64()?;
            if abi != 0 {
                c.skip(self.regs_intr_count * 8)?;
            }
        }
        if st & sample::PHYS_ADDR != 0 {
            s.phys_addr = Some(c.u64()?);
        }
        if st & sample::CGROUP != 0 {
            s.cgroup = Some(c.u64()?);
        }
        if st & sample::DATA_PAGE_SIZE != 0 {
            s.data_page_size = Some(c.u64()?);
        }
        if st & sample::CODE_PAGE_SIZE != 0 {
            s.code_page_size = Some(c.u64()?);
        }
        if st & sample::AUX != 0 {
            let size = c.u64()? as usize;
            c.bytes(size)?;
        }
        Ok(s)
    }

    /// Parse the sample_id trailer at the end of a non-sample record body.
    pub fn parse_sample_id(&self, body: &[u8]) -> SampleId {
        let mut id = SampleId::default();
        if !self.sample_id_all || body.len() < self.id_trailer_len {
            return id;
        }
        let mut c = Cursor { b: &body[body.len() - self.id_trailer_len..], pos: 0, e: self.endian };
        let st = self.sample_type;
        // Infallible: the slice is exactly id_trailer_len long.
        let mut next = || c.u64().unwrap_or(0);
        if st & sample::TID != 0 {
            let v = next();
            id.pid = Some(split_lo_hi(v, self.endian).0);
            id.tid = Some(split_lo_hi(v, self.endian).1);
        }
        if st & sample::TIME != 0 {
            id.time = Some(next());
        }
        if st & sample::ID != 0 {
            id.id = Some(next());
        }
        if st & sample::STREAM_ID != 0 {
            next();
        }
        if st & sample::CPU != 0 {
            id.cpu = Some(split_lo_hi(next(), self.endian).0);
        }
        if st & sample::IDENTIFIER != 0 {
            id.id = Some(next());
        }
        id
    }
}

/// Two u32 fields read as one u64 word: recover them in memory order.
fn split_lo_hi(v: u64, e: Endian) -> (u32, u32) {
    match e {
        Endian::Little => (v as u32, (v >> 32) as u32),
        Endian::Big => ((v >> 32) as u32, v as u32),
    }
}

/// What a record's body could not give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record body ends before field at byte {at} (wanted {want} bytes, body has {len})")]
    Short { at: usize, want: usize, len: usize },
    #[error("record field count overflows")]
    Overflow,
}

/// A decoded sample. Fields the attr did not request are `None`.
#[derive(Debug, Clone, Default)]
pub struct Sample<'a> {
    pub id: Option<u64>,
    pub ip: Option<u64>,
    pub pid: Option<u32>,
    pub tid: Option<u32>,
    pub time: Option<u64>,
    pub addr: Option<u64>,
    pub stream_id: Option<u64>,
    pub cpu: Option<u32>,
    pub period: Option<u64>,
    pub callchain: Option<Words<'a>>,
    pub raw: Option<&'a [u8]>,
    pub branch_hw_index: Option<u64>,
    /// PERF_SAMPLE_READ values (for group reads: one entry per member).
    pub read: Option<ReadValues<'a>>,
    /// 3 words per entry: from, to, flags.
    pub branch_stack: Option<Words<'a>>,
    pub regs_user: Option<(u64, Words<'a>)>,
    pub stack_user: Option<(&'a [u8], u64)>,
    pub weight: Option<u64>,
    pub ins_lat: Option<u16>,
    pub weight3: Option<u16>,
    pub data_src: Option<u64>,
    pub transaction: Option<u64>,
    pub phys_addr: Option<u64>,
    pub cgroup: Option<u64>,
    pub data_page_size: Option<u64>,
    pub code_page_size: Option<u64>,
}

/// A run of u64 words in a record, read on demand in the record's byte order.
#[derive(Clone, Copy)]
pub struct Words<'a> {
    b: &'a [u8],
    e: Endian,
}

impl fmt::Debug for Words<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> Words<'a> {
    pub fn len(&self) -> usize {
        self.b.len() / 8
    }
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
    pub fn get(&self, i: usize) -> Option<u64> {
        self.b.get(i * 8..i * 8 + 8).map(|w| self.e.u64(w))
    }
    pub fn iter(&self) -> impl Iterator<Item = u64> + 'a {
        let e = self.e;
        self.b.chunks_exact(8).map(move |w| e.u64(w))
    }
}

/// The values of a PERF_SAMPLE_READ field.
#[derive(Debug, Clone, Copy)]
pub struct ReadValues<'a> {
    words: Words<'a>,
    stride: usize,
    /// Word index of the id inside one entry, when read_format has ID.
    id_index: Option<usize>,
}

impl<'a> ReadValues<'a> {
    /// (value, id) per entry; id is None without PERF_FORMAT_ID.
    pub fn entries(&self) -> impl Iterator<Item = (u64, Option<u64>)> + 'a {
        let (w, stride, idi) = (self.words, self.stride.max(1), self.id_index);
        (0..w.len() / stride).filter_map(move |i| Some((w.get(i * stride)?, idi.and_then(|k| w.get(i * stride + k)))))
    }
}

/// A branch stack entry (`perf_branch_entry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BranchEntry {
    pub from: u64,
    pub to: u64,
    pub flags: u64,
}

impl BranchEntry {
    pub fn mispred(&self) -> bool {
        self.flags & 1 != 0
    }
    pub fn predicted(&self) -> bool {
        self.flags & 2 != 0
    }
    pub fn in_tx(&self) -> bool {
        self.flags & 4 != 0
    }
    pub fn abort(&self) -> bool {
        self.flags & 8 != 0
    }
    pub fn cycles(&self) -> u16 {
        ((self.flags >> 4) & 0xffff) as u16
    }
    /// PERF_BR_* branch type (0 = unknown).
    pub fn branch_type(&self) -> u8 {
        ((self.flags >> 20) & 0xf) as u8
    }
    /// perf script's brstack text: "0xFROM/0xTO/P/-/-/CYCLES/TYPE".
    pub fn perf_text(&self) -> String {
        const TYPES: [&str; 16] = [
            "",
            "COND",
            "UNCOND",
            "IND",
            "CALL",
            "IND_CALL",
            "RET",
            "SYSCALL",
            "SYSRET",
            "COND_CALL",
            "COND_RET",
            "ERET",
            "IRQ",
            "SERROR",
            "NO_TX",
            "EXTEND_ABI",
        ];
        let pred = if self.predicted() {
            'P'
        } else if self.mispred() {
            'M'
        } else {
            '-'
        };
        format!(
            "0x{:x}/0x{:x}/{}/{}/{}/{}/{}",
            self.from,
            self.to,
            pred,
            if self.in_tx() { 'X' } else { '-' },
            if self.abort() { 'A' } else { '-' },
            self.cycles(),
            TYPES[self.branch_type() as usize]
        )
    }
}

impl<'a> Sample<'a> {
    pub fn branches(&self) -> impl Iterator<Item = BranchEntry> + 'a {
        let w = self.branch_stack;
        let n = w.map_or(0, |w| w.len() / 3);
        (0..n).filter_map(move |i| {
            let w = w?;
            Some(BranchEntry { from: w.get(3 * i)?, to: w.get(3 * i + 1)?, flags: w.get(3 * i + 2)? })
        })
    }
}

/// The sample_id trailer of a non-sample record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleId {
    pub pid: Option<u32>,
    pub tid: Option<u32>,
    pub time: Option<u64>,
    pub id: Option<u64>,
    pub cpu: Option<u32>,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    e: Endian,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Overflow)?;
        if end > self.b.len() {
            return Err(DecodeError::Short { at: self.pos, want: n, len: self.b.len() });
        }
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    #[inline]
    fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.bytes(n).map(|_| ())
    }
    #[inline]
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(self.e.u64(self.bytes(8)?))
    }
    #[inline]
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(self.e.u32(self.bytes(4)?))
    }
    #[inline]
    fn words(&mut self, n: usize) -> Result<Words<'a>, DecodeError> {
        let b = self.bytes(n.checked_mul(8).ok_or(DecodeError::Overflow)?)?;
        Ok(Words { b, e: self.e })
    }
}

/// Read a NUL-terminated string from a fixed-size or padded field.
fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// PERF_RECORD_MMAP / MMAP2, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mmap {
    pub pid: u32,
    pub tid: u32,
    pub start: u64,
    pub len: u64,
    pub pgoff: u64,
    pub maj: u32,
    pub min: u32,
    pub ino: u64,
    pub ino_generation: u64,
    pub prot: u32,
    pub flags: u32,
    pub build_id: Option<Vec<u8>>,
    pub filename: String,
}

/// PERF_RECORD_COMM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comm {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub exec: bool,
}

/// PERF_RECORD_FORK / EXIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    pub pid: u32,
    pub ppid: u32,
    pub tid: u32,
    pub ptid: u32,
    pub time: u64,
}

/// PERF_RECORD_LOST: `lost` records dropped by the kernel for event `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost {
    pub id: u64,
    pub lost: u64,
}

/// The non-sample records the analyses use.
#[derive(Debug, Clone)]
pub enum Sideband {
    Mmap(Mmap),
    Comm(Comm),
    Fork(Task),
    Exit(Task),
    Lost(Lost),
    LostSamples(u64),
    Other,
}

/// Decode a non-sample record. The sample_id trailer is not part of the result
/// (use `ParseInfo::parse_sample_id`).
pub fn parse_sideband(r: &RawRecord<'_>, e: Endian) -> Result<Sideband, DecodeError> {
    let mut c = Cursor { b: r.body, pos: 0, e };
    Ok(match r.kind {
        RecordType::MMAP => {
            let pid = c.u32()?;
            let tid = c.u32()?;
            let start = c.u64()?;
            let len = c.u64()?;
            let pgoff = c.u64()?;
            let filename = cstr(&r.body[c.pos..]);
            Sideband::Mmap(Mmap {
                pid,
                tid,
                start,
                len,
                pgoff,
                maj: 0,
                min: 0,
                ino: 0,
                ino_generation: 0,
                prot: if r.misc & misc::MMAP_DATA != 0 { libc::PROT_READ as u32 } else { (libc::PROT_READ | libc::PROT_EXEC) as u32 },
                flags: 0,
                build_id: None,
                filename,
            })
        }
        RecordType::MMAP2 => {
            let pid = c.u32()?;
            let tid = c.u32()?;
            let start = c.u64()?;
            let len = c.u64()?;
            let pgoff = c.u64()?;
            let (maj, min, ino, ino_generation, build_id);
            if r.misc & misc::MMAP_BUILD_ID != 0 {
                let b = c.bytes(24)?;
                let n = (b[0] as usize).min(20);
                build_id = Some(b[4..4 + n].to_vec());
                maj = 0;
                min = 0;
                ino = 0;
                ino_generation = 0;
            } else {
                maj = c.u32()?;
                min = c.u32()?;
                ino = c.u64()?;
                ino_generation = c.u64()?;
                build_id = None;
            }
            let prot = c.u32()?;
            let flags = c.u32()?;
            let filename = cstr(&r.body[c.pos..]);
            Sideband::Mmap(Mmap { pid, tid, start, len, pgoff, maj, min, ino, ino_generation, prot, flags, build_id, filename })
        }
        RecordType::COMM => {
            let pid = c.u32()?;
            let tid = c.u32()?;
            Sideband::Comm(Comm { pid, tid, comm: cstr(&r.body[c.pos..]), exec: r.misc & misc::COMM_EXEC != 0 })
        }
        RecordType::FORK | RecordType::EXIT => {
            let t = Task { pid: c.u32()?, ppid: c.u32()?, tid: c.u32()?, ptid: c.u32()?, time: c.u64()? };
            if r.kind == RecordType::FORK {
                Sideband::Fork(t)
            } else {
                Sideband::Exit(t)
            }
        }
        RecordType::LOST => Sideband::Lost(Lost { id: c.u64()?, lost: c.u64()? }),
        RecordType::LOST_SAMPLES => Sideband::LostSamples(c.u64()?),
        _ => Sideband::Other,
    })
}

/// Build a record (header + body) in little-endian byte order, padded to 8 bytes.
pub fn build_record(kind: RecordType, misc: u16, body: &[u8]) -> Vec<u8> {
    let size = (HEADER_SIZE + body.len()).div_ceil(8) * 8;
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(&kind.0.to_le_bytes());
    v.extend_from_slice(&misc.to_le_bytes());
    v.extend_from_slice(&(size as u16).to_le_bytes());
    v.extend_from_slice(body);
    v.resize(size, 0);
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn info(st: u64) -> ParseInfo {
        ParseInfo::new(&EventAttr { sample_type: st, flags: attr::flag::SAMPLE_ID_ALL, ..Default::default() }, Endian::Little)
    }

    #[test]
    fn sample_fields_in_kernel_order() {
        let st = sample::IDENTIFIER
            | sample::IP
            | sample::TID
            | sample::TIME
            | sample::ADDR
            | sample::CPU
            | sample::PERIOD
            | sample::CALLCHAIN
            | sample::WEIGHT
            | sample::DATA_SRC
            | sample::PHYS_ADDR;
        let mut b = Vec::new();
        for w in [42u64, 0x401000, (7u64 << 32) | 5, 1000, 0xdead, 1, 4000, 2, 0x401000, 0x402000, 33, 0x1_0000_0002, 0x9000] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        let s = info(st).parse_sample(&b).unwrap();
        assert_eq!(s.id, Some(42));
        assert_eq!(s.ip, Some(0x401000));
        assert_eq!((s.pid, s.tid), (Some(5), Some(7)));
        assert_eq!(s.time, Some(1000));
        assert_eq!(s.addr, Some(0xdead));
        assert_eq!(s.cpu, Some(1));
        assert_eq!(s.period, Some(4000));
        assert_eq!(s.callchain.unwrap().iter().collect::<Vec<_>>(), vec![0x401000, 0x402000]);
        assert_eq!(s.weight, Some(33));
        assert_eq!(s.data_src, Some(0x1_0000_0002));
        assert_eq!(s.phys_addr, Some(0x9000));
        assert_eq!(info(st).sample_time_offset(), Some(24));
        // A body cut short is an error, never a panic.
        for cut in 0..b.len() {
            let _ = info(st).parse_sample(&b[..cut]);
        }
        assert!(info(st).parse_sample(&b[..b.len() - 8]).is_err());
    }

    #[test]
    fn huge_callchain_count_is_an_error() {
        let mut b = Vec::new();
        b.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(info(sample::CALLCHAIN).parse_sample(&b).is_err());
    }

    #[test]
    fn split_stops_on_bad_sizes() {
        let mut buf = build_record(RecordType::LOST, 0, &[0u8; 16]);
        buf.extend_from_slice(&[9, 0, 0, 0, 0, 0, 4, 0]);
        let v: Vec<_> = RecordIter::new(&buf, Endian::Little).collect();
        assert!(v[0].is_ok());
        assert_eq!(v[1].as_ref().unwrap_err(), &SplitError::TooSmall { offset: 24, size: 4 });
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn sample_id_trailer() {
        let p = info(sample::IDENTIFIER | sample::TID | sample::TIME | sample::CPU);
        let mut body = b"name\0\0\0\0".to_vec();
        for w in [(9u64 << 32) | 8, 555, 3, 77] {
            body.extend_from_slice(&w.to_le_bytes());
        }
        let id = p.parse_sample_id(&body);
        assert_eq!(id, SampleId { pid: Some(8), tid: Some(9), time: Some(555), id: Some(77), cpu: Some(3) });
    }
}
