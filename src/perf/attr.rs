//! `perf_event_attr`: our own model of the kernel struct, its byte layout, and the
//! sample_type / flag bits the decoder needs.
//!
//! We do not use bindgen's struct: the same model must serve three places (the
//! syscall, the trace metadata, and attrs read from perf.data files of any attr
//! size and either endianness), so it is a plain struct of named fields that is
//! written to and read from bytes by stored size (fields past the stored size take
//! their zero default; a longer stored struct's unknown tail is skipped).

use serde::{Deserialize, Serialize};

/// `perf_event_attr.type` values.
pub mod type_id {
    pub const HARDWARE: u32 = 0;
    pub const SOFTWARE: u32 = 1;
    pub const TRACEPOINT: u32 = 2;
    pub const HW_CACHE: u32 = 3;
    pub const RAW: u32 = 4;
    pub const BREAKPOINT: u32 = 5;
}

/// `PERF_COUNT_HW_*`.
pub mod hw {
    pub const CPU_CYCLES: u64 = 0;
    pub const INSTRUCTIONS: u64 = 1;
    pub const CACHE_REFERENCES: u64 = 2;
    pub const CACHE_MISSES: u64 = 3;
    pub const BRANCH_INSTRUCTIONS: u64 = 4;
    pub const BRANCH_MISSES: u64 = 5;
    pub const BUS_CYCLES: u64 = 6;
    pub const STALLED_CYCLES_FRONTEND: u64 = 7;
    pub const STALLED_CYCLES_BACKEND: u64 = 8;
    pub const REF_CPU_CYCLES: u64 = 9;
}

/// `PERF_COUNT_SW_*`.
pub mod sw {
    pub const CPU_CLOCK: u64 = 0;
    pub const TASK_CLOCK: u64 = 1;
    pub const PAGE_FAULTS: u64 = 2;
    pub const CONTEXT_SWITCHES: u64 = 3;
    pub const CPU_MIGRATIONS: u64 = 4;
    pub const PAGE_FAULTS_MIN: u64 = 5;
    pub const PAGE_FAULTS_MAJ: u64 = 6;
    pub const ALIGNMENT_FAULTS: u64 = 7;
    pub const EMULATION_FAULTS: u64 = 8;
    pub const DUMMY: u64 = 9;
}

/// `PERF_SAMPLE_*` bits of `sample_type`.
pub mod sample {
    pub const IP: u64 = 1 << 0;
    pub const TID: u64 = 1 << 1;
    pub const TIME: u64 = 1 << 2;
    pub const ADDR: u64 = 1 << 3;
    pub const READ: u64 = 1 << 4;
    pub const CALLCHAIN: u64 = 1 << 5;
    pub const ID: u64 = 1 << 6;
    pub const CPU: u64 = 1 << 7;
    pub const PERIOD: u64 = 1 << 8;
    pub const STREAM_ID: u64 = 1 << 9;
    pub const RAW: u64 = 1 << 10;
    pub const BRANCH_STACK: u64 = 1 << 11;
    pub const REGS_USER: u64 = 1 << 12;
    pub const STACK_USER: u64 = 1 << 13;
    pub const WEIGHT: u64 = 1 << 14;
    pub const DATA_SRC: u64 = 1 << 15;
    pub const IDENTIFIER: u64 = 1 << 16;
    pub const TRANSACTION: u64 = 1 << 17;
    pub const REGS_INTR: u64 = 1 << 18;
    pub const PHYS_ADDR: u64 = 1 << 19;
    pub const AUX: u64 = 1 << 20;
    pub const CGROUP: u64 = 1 << 21;
    pub const DATA_PAGE_SIZE: u64 = 1 << 22;
    pub const CODE_PAGE_SIZE: u64 = 1 << 23;
    pub const WEIGHT_STRUCT: u64 = 1 << 24;
}

/// perf's names for the set sample_type bits, in bit order (`IP|TID|...`).
pub fn sample_type_names(st: u64) -> String {
    const NAMES: [&str; 25] = [
        "IP",
        "TID",
        "TIME",
        "ADDR",
        "READ",
        "CALLCHAIN",
        "ID",
        "CPU",
        "PERIOD",
        "STREAM_ID",
        "RAW",
        "BRANCH_STACK",
        "REGS_USER",
        "STACK_USER",
        "WEIGHT",
        "DATA_SRC",
        "IDENTIFIER",
        "TRANSACTION",
        "REGS_INTR",
        "PHYS_ADDR",
        "AUX",
        "CGROUP",
        "DATA_PAGE_SIZE",
        "CODE_PAGE_SIZE",
        "WEIGHT_STRUCT",
    ];
    NAMES.iter().enumerate().filter(|(i, _)| st & (1 << i) != 0).map(|(_, n)| *n).collect::<Vec<_>>().join("|")
}

/// `PERF_FORMAT_*` bits of `read_format`.
pub mod read_format {
    pub const TOTAL_TIME_ENABLED: u64 = 1 << 0;
    pub const TOTAL_TIME_RUNNING: u64 = 1 << 1;
    pub const ID: u64 = 1 << 2;
    pub const GROUP: u64 = 1 << 3;
    pub const LOST: u64 = 1 << 4;
}

/// `PERF_SAMPLE_BRANCH_HW_INDEX`: branch stacks carry a hw_idx word.
pub const BRANCH_HW_INDEX: u64 = 1 << 17;

/// Bit positions in the flags word at offset 40.
pub mod flag {
    pub const DISABLED: u64 = 1 << 0;
    pub const INHERIT: u64 = 1 << 1;
    pub const PINNED: u64 = 1 << 2;
    pub const EXCLUSIVE: u64 = 1 << 3;
    pub const EXCLUDE_USER: u64 = 1 << 4;
    pub const EXCLUDE_KERNEL: u64 = 1 << 5;
    pub const EXCLUDE_HV: u64 = 1 << 6;
    pub const EXCLUDE_IDLE: u64 = 1 << 7;
    pub const MMAP: u64 = 1 << 8;
    pub const COMM: u64 = 1 << 9;
    pub const FREQ: u64 = 1 << 10;
    pub const ENABLE_ON_EXEC: u64 = 1 << 12;
    pub const TASK: u64 = 1 << 13;
    pub const WATERMARK: u64 = 1 << 14;
    pub const PRECISE_SHIFT: u32 = 15;
    pub const PRECISE_MASK: u64 = 3 << 15;
    pub const MMAP_DATA: u64 = 1 << 17;
    pub const SAMPLE_ID_ALL: u64 = 1 << 18;
    pub const EXCLUDE_HOST: u64 = 1 << 19;
    pub const EXCLUDE_GUEST: u64 = 1 << 20;
    pub const EXCLUDE_CALLCHAIN_KERNEL: u64 = 1 << 21;
    pub const EXCLUDE_CALLCHAIN_USER: u64 = 1 << 22;
    pub const MMAP2: u64 = 1 << 23;
    pub const COMM_EXEC: u64 = 1 << 24;
    pub const USE_CLOCKID: u64 = 1 << 25;
    pub const CONTEXT_SWITCH: u64 = 1 << 26;
}

/// The attr size we hand the kernel (PERF_ATTR_SIZE_VER7). Kernels since 5.13
/// know it; older kernels reject it with E2BIG and we retry at VER5.
pub const ATTR_SIZE_VER7: u32 = 128;
pub const ATTR_SIZE_VER5: u32 = 112;
/// The smallest attr the kernel ever had (PERF_ATTR_SIZE_VER0).
pub const ATTR_SIZE_VER0: u32 = 64;

/// Every field of `perf_event_attr`, by name. Unions are stored as one word
/// (`period_or_freq`, `config1`, `config2`, `wakeup`) and interpreted by flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventAttr {
    #[serde(rename = "type")]
    pub type_: u32,
    pub size: u32,
    pub config: u64,
    /// sample_period, or sample_freq when `flags & FREQ`.
    pub period_or_freq: u64,
    pub sample_type: u64,
    pub read_format: u64,
    pub flags: u64,
    /// wakeup_events, or wakeup_watermark when `flags & WATERMARK`.
    pub wakeup: u32,
    pub bp_type: u32,
    pub config1: u64,
    pub config2: u64,
    pub branch_sample_type: u64,
    pub sample_regs_user: u64,
    pub sample_stack_user: u32,
    pub clockid: i32,
    pub sample_regs_intr: u64,
    pub aux_watermark: u32,
    pub sample_max_stack: u16,
    pub aux_sample_size: u32,
    pub sig_data: u64,
    pub config3: u64,
}

/// Byte order of a serialized struct or record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Endian {
    #[default]
    Little,
    Big,
}

impl Endian {
    // Callers have checked the length; a short slice reads as 0 rather
    // than panicking. Inlined: these run several times
    // per sample.
    #[inline]
    pub fn u16(self, b: &[u8]) -> u16 {
        let a = *b.first_chunk::<2>().unwrap_or(&[0; 2]);
        match self {
            Endian::Little => u16::from_le_bytes(a),
            Endian::Big => u16::from_be_bytes(a),
        }
    }
    #[inline]
    pub fn u32(self, b: &[u8]) -> u32 {
        let a = *b.first_chunk::<4>().unwrap_or(&[0; 4]);
        match self {
            Endian::Little => u32::from_le_bytes(a),
            Endian::Big => u32::from_be_bytes(a),
        }
    }
    #[inline]
    pub fn u64(self, b: &[u8]) -> u64 {
        let a = *b.first_chunk::<8>().unwrap_or(&[0; 8]);
        match self {
            Endian::Little => u64::from_le_bytes(a),
            Endian::Big => u64::from_be_bytes(a),
        }
    }
}

impl EventAttr {
    pub fn is_freq(&self) -> bool {
        self.flags & flag::FREQ != 0
    }
    pub fn precise_ip(&self) -> u8 {
        ((self.flags & flag::PRECISE_MASK) >> flag::PRECISE_SHIFT) as u8
    }
    pub fn sample_id_all(&self) -> bool {
        self.flags & flag::SAMPLE_ID_ALL != 0
    }

    /// The kernel's byte layout, `size` bytes long (64..=136; larger sizes are
    /// zero-padded).
    pub fn to_bytes(&self, size: u32) -> Vec<u8> {
        let mut b = vec![0u8; (size as usize).max(136)];
        let put32 = |b: &mut Vec<u8>, off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
        put32(&mut b, 0, self.type_);
        put32(&mut b, 4, size);
        let put64 = |b: &mut Vec<u8>, off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_le_bytes());
        put64(&mut b, 8, self.config);
        put64(&mut b, 16, self.period_or_freq);
        put64(&mut b, 24, self.sample_type);
        put64(&mut b, 32, self.read_format);
        put64(&mut b, 40, self.flags);
        put32(&mut b, 48, self.wakeup);
        put32(&mut b, 52, self.bp_type);
        put64(&mut b, 56, self.config1);
        put64(&mut b, 64, self.config2);
        put64(&mut b, 72, self.branch_sample_type);
        put64(&mut b, 80, self.sample_regs_user);
        put32(&mut b, 88, self.sample_stack_user);
        put32(&mut b, 92, self.clockid as u32);
        put64(&mut b, 96, self.sample_regs_intr);
        put32(&mut b, 104, self.aux_watermark);
        b[108..110].copy_from_slice(&self.sample_max_stack.to_le_bytes());
        put32(&mut b, 112, self.aux_sample_size);
        put64(&mut b, 120, self.sig_data);
        put64(&mut b, 128, self.config3);
        b.truncate(size as usize);
        b
    }

    /// Parse a stored attr: fields the stored size does not cover stay zero,
    /// bytes past the fields we know are ignored. `size` is taken from the
    /// stored struct when non-zero (perf's VER0 files store 0), else from `b.len()`.
    pub fn from_bytes(b: &[u8], e: Endian) -> Option<EventAttr> {
        if b.len() < 8 {
            return None;
        }
        let stored = e.u32(&b[4..]);
        let size = if stored == 0 { ATTR_SIZE_VER0 } else { stored } as usize;
        let have = size.min(b.len());
        let u32_at = |off: usize| if off + 4 <= have { e.u32(&b[off..]) } else { 0 };
        let u64_at = |off: usize| if off + 8 <= have { e.u64(&b[off..]) } else { 0 };
        let mut flags = u64_at(40);
        if e == Endian::Big {
            // The bitfield word is laid out from the most significant bit on
            // big-endian machines; perf's reader swaps bit order the same way.
            flags = flags.reverse_bits();
        }
        Some(EventAttr {
            type_: u32_at(0),
            size: size as u32,
            config: u64_at(8),
            period_or_freq: u64_at(16),
            sample_type: u64_at(24),
            read_format: u64_at(32),
            flags,
            wakeup: u32_at(48),
            bp_type: u32_at(52),
            config1: u64_at(56),
            config2: u64_at(64),
            branch_sample_type: u64_at(72),
            sample_regs_user: u64_at(80),
            sample_stack_user: u32_at(88),
            clockid: u32_at(92) as i32,
            sample_regs_intr: u64_at(96),
            aux_watermark: u32_at(104),
            sample_max_stack: if 110 <= have { e.u16(&b[108..]) } else { 0 },
            aux_sample_size: u32_at(112),
            sig_data: u64_at(120),
            config3: u64_at(128),
        })
    }

    /// perf's name for well-known events; `type/config` otherwise.
    pub fn default_name(&self) -> String {
        let hw = [
            "cycles",
            "instructions",
            "cache-references",
            "cache-misses",
            "branches",
            "branch-misses",
            "bus-cycles",
            "stalled-cycles-frontend",
            "stalled-cycles-backend",
            "ref-cycles",
        ];
        let swn = [
            "cpu-clock",
            "task-clock",
            "page-faults",
            "context-switches",
            "cpu-migrations",
            "minor-faults",
            "major-faults",
            "alignment-faults",
            "emulation-faults",
            "dummy",
        ];
        let name = match self.type_ {
            type_id::HARDWARE => hw.get(self.config as usize).map(|s| s.to_string()),
            type_id::SOFTWARE => swn.get(self.config as usize).map(|s| s.to_string()),
            type_id::RAW => Some(format!("raw 0x{:x}", self.config)),
            _ => None,
        };
        name.unwrap_or_else(|| format!("{}/0x{:x}/", self.type_, self.config))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn attr_roundtrips_at_every_size() {
        let a = EventAttr {
            type_: 1,
            size: 128,
            config: 0,
            period_or_freq: 4000,
            sample_type: sample::IP | sample::TID | sample::TIME,
            flags: flag::FREQ | flag::SAMPLE_ID_ALL | flag::MMAP2 | (2 << flag::PRECISE_SHIFT),
            clockid: 1,
            sample_max_stack: 127,
            sig_data: 7,
            ..Default::default()
        };
        let b = a.to_bytes(128);
        assert_eq!(b.len(), 128);
        assert_eq!(EventAttr::from_bytes(&b, Endian::Little), Some(a.clone()));
        assert_eq!(a.precise_ip(), 2);
        // A VER5 (112-byte) copy loses the fields past 112 and nothing else.
        let short = EventAttr::from_bytes(&a.to_bytes(112), Endian::Little).unwrap();
        assert_eq!(short.sig_data, 0);
        assert_eq!(short.sample_max_stack, 127);
        assert_eq!(short.size, 112);
        // A longer struct's unknown tail is ignored.
        let mut long = a.to_bytes(128);
        long[4..8].copy_from_slice(&160u32.to_le_bytes());
        long.resize(160, 0xff);
        let l = EventAttr::from_bytes(&long, Endian::Little).unwrap();
        assert_eq!(l.period_or_freq, 4000);
        assert_eq!(l.size, 160);
    }
}
