//! `perf_mem_data_src` (PERF_SAMPLE_DATA_SRC): field access and perf's text
//! for each field, as perf 6.1 prints them in `perf script` and `perf mem
//! report` (util/mem-events.c). ../shared/C2C.md section 1 has the bit layout.

/// The raw data_src word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DataSrc(pub u64);

pub mod op {
    pub const NA: u64 = 0x01;
    pub const LOAD: u64 = 0x02;
    pub const STORE: u64 = 0x04;
    pub const PFETCH: u64 = 0x08;
    pub const EXEC: u64 = 0x10;
}

pub mod lvl {
    pub const NA: u64 = 0x01;
    pub const HIT: u64 = 0x02;
    pub const MISS: u64 = 0x04;
    pub const L1: u64 = 0x08;
    pub const LFB: u64 = 0x10;
    pub const L2: u64 = 0x20;
    pub const L3: u64 = 0x40;
    pub const LOC_RAM: u64 = 0x80;
    pub const REM_RAM1: u64 = 0x100;
    pub const REM_RAM2: u64 = 0x200;
    pub const REM_CCE1: u64 = 0x400;
    pub const REM_CCE2: u64 = 0x800;
    pub const IO: u64 = 0x1000;
    pub const UNC: u64 = 0x2000;
}

pub mod snoop {
    pub const NA: u64 = 0x01;
    pub const NONE: u64 = 0x02;
    pub const HIT: u64 = 0x04;
    pub const MISS: u64 = 0x08;
    pub const HITM: u64 = 0x10;
}

pub mod lock {
    pub const NA: u64 = 0x01;
    pub const LOCKED: u64 = 0x02;
}

pub mod tlb {
    pub const NA: u64 = 0x01;
    pub const HIT: u64 = 0x02;
    pub const MISS: u64 = 0x04;
}

pub mod blk {
    pub const NA: u64 = 0x01;
    pub const DATA: u64 = 0x02;
    pub const ADDR: u64 = 0x04;
}

impl DataSrc {
    fn bits(self, shift: u32, width: u32) -> u64 {
        (self.0 >> shift) & ((1 << width) - 1)
    }
    pub fn mem_op(self) -> u64 {
        self.bits(0, 5)
    }
    pub fn mem_lvl(self) -> u64 {
        self.bits(5, 14)
    }
    pub fn mem_snoop(self) -> u64 {
        self.bits(19, 5)
    }
    pub fn mem_lock(self) -> u64 {
        self.bits(24, 2)
    }
    pub fn mem_dtlb(self) -> u64 {
        self.bits(26, 7)
    }
    pub fn mem_lvl_num(self) -> u64 {
        self.bits(33, 4)
    }
    pub fn mem_remote(self) -> u64 {
        self.bits(37, 1)
    }
    pub fn mem_snoopx(self) -> u64 {
        self.bits(38, 2)
    }
    pub fn mem_blk(self) -> u64 {
        self.bits(40, 3)
    }
    pub fn mem_hops(self) -> u64 {
        self.bits(43, 3)
    }

    /// "|OP LOAD|LVL L1 hit|SNP None|TLB L1 or L2 hit|LCK No|BLK  N/A"
    pub fn script_text(self) -> String {
        format!(
            "|OP {}|LVL {}|SNP {}|TLB {}|LCK {}|BLK {}",
            self.op_text(),
            self.lvl_text(),
            self.snoop_text(),
            self.tlb_text(),
            self.lock_text(),
            self.blk_text()
        )
    }

    pub fn op_text(self) -> &'static str {
        let o = self.mem_op();
        if o & op::NA != 0 {
            "N/A"
        } else if o & op::LOAD != 0 {
            "LOAD"
        } else if o & op::STORE != 0 {
            "STORE"
        } else if o & op::PFETCH != 0 {
            "PFETCH"
        } else if o & op::EXEC != 0 {
            "EXEC"
        } else {
            "No"
        }
    }

    /// perf's "mem" column (the memory level).
    pub fn lvl_text(self) -> String {
        const LVL: [&str; 14] = [
            "N/A",
            "HIT",
            "MISS",
            "L1",
            "LFB/MAB",
            "L2",
            "L3",
            "Local RAM",
            "Remote RAM (1 hop)",
            "Remote RAM (2 hops)",
            "Remote Cache (1 hop)",
            "Remote Cache (2 hops)",
            "I/O",
            "Uncached",
        ];
        const HOPS: [&str; 5] = ["N/A", "core, same node", "node, same socket", "socket, same board", "board"];
        let m0 = self.mem_lvl();
        let (hit, miss) = (m0 & lvl::HIT != 0, m0 & lvl::MISS != 0);
        let mut m = m0 & !(lvl::HIT | lvl::MISS);
        let mut out = String::new();
        let mut printed = 0;
        if self.mem_remote() != 0 {
            out.push_str("Remote ");
        }
        if self.mem_hops() != 0 {
            out.push_str(HOPS.get(self.mem_hops() as usize).copied().unwrap_or("N/A"));
            out.push(' ');
        } else {
            let mut i = 0;
            while m != 0 && i < LVL.len() {
                if m & 1 != 0 {
                    if printed > 0 {
                        out.push_str(" or ");
                    }
                    printed += 1;
                    out.push_str(LVL[i]);
                }
                i += 1;
                m >>= 1;
            }
        }
        let num = self.mem_lvl_num();
        if num != 0 {
            if printed > 0 {
                out.push_str(" or ");
            }
            match num {
                0x9 => out.push_str("CXL"),
                0xa => out.push_str("I/O"),
                0xb => out.push_str("Any cache"),
                0xc => out.push_str("LFB/MAB"),
                0xd => out.push_str("RAM"),
                0xe => out.push_str("PMEM"),
                0xf => out.push_str("N/A"),
                n => out.push_str(&format!("L{n}")),
            }
        }
        if out.is_empty() {
            out.push_str("N/A");
        }
        if hit {
            out.push_str(" hit");
        }
        if miss {
            out.push_str(" miss");
        }
        out
    }

    pub fn snoop_text(self) -> String {
        const SNOOP: [&str; 5] = ["N/A", "None", "Hit", "Miss", "HitM"];
        const SNOOPX: [&str; 2] = ["Fwd", "Peer"];
        let mut out = String::new();
        for (m, names) in [(self.mem_snoop(), &SNOOP[..]), (self.mem_snoopx(), &SNOOPX[..])] {
            for (i, name) in names.iter().enumerate() {
                if m & (1 << i) != 0 {
                    if !out.is_empty() {
                        out.push_str(" or ");
                    }
                    out.push_str(name);
                }
            }
        }
        if out.is_empty() {
            out.push_str("N/A");
        }
        out
    }

    pub fn tlb_text(self) -> String {
        const TLB: [&str; 7] = ["N/A", "HIT", "MISS", "L1", "L2", "Walker", "Fault"];
        let m0 = self.mem_dtlb();
        let m = m0 & !(tlb::HIT | tlb::MISS);
        let mut out = String::new();
        for (i, name) in TLB.iter().enumerate() {
            if m & (1 << i) != 0 {
                if !out.is_empty() {
                    out.push_str(" or ");
                }
                out.push_str(name);
            }
        }
        if out.is_empty() {
            out.push_str("N/A");
        }
        if m0 & tlb::HIT != 0 {
            out.push_str(" hit");
        }
        if m0 & tlb::MISS != 0 {
            out.push_str(" miss");
        }
        out
    }

    pub fn lock_text(self) -> &'static str {
        let m = self.mem_lock();
        if m & lock::NA != 0 {
            "N/A"
        } else if m & lock::LOCKED != 0 {
            "Yes"
        } else {
            "No"
        }
    }

    /// perf prints this with a leading space (" N/A", " Data Addr").
    pub fn blk_text(self) -> String {
        let m = self.mem_blk();
        if m == 0 || m & blk::NA != 0 {
            return " N/A".into();
        }
        let mut out = String::new();
        if m & blk::DATA != 0 {
            out.push_str(" Data");
        }
        if m & blk::ADDR != 0 {
            out.push_str(" Addr");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_61_strings_from_real_samples() {
        // Values and texts from ../shared/perfdata memscript outputs.
        assert_eq!(DataSrc(0x11868100242).script_text(), "|OP LOAD|LVL LFB/MAB or LFB/MAB hit|SNP None|TLB L1 or L2 hit|LCK No|BLK  N/A");
        assert_eq!(DataSrc(0x10268100142).script_text(), "|OP LOAD|LVL L1 or L1 hit|SNP None|TLB L1 or L2 hit|LCK No|BLK  N/A");
        assert_eq!(DataSrc(0x5080144).script_text(), "|OP STORE|LVL L1 hit|SNP N/A|TLB N/A|LCK N/A|BLK  N/A");
    }

    #[test]
    fn fields_and_remote_hops() {
        // Remote HITM on another socket: lvl HIT|REM_CCE1, snoop HITM, remote, hops 3.
        let v = (op::LOAD) | ((lvl::HIT | lvl::REM_CCE1) << 5) | (snoop::HITM << 19) | (1 << 37) | (3 << 43);
        let d = DataSrc(v);
        assert_eq!(d.mem_snoop(), snoop::HITM);
        assert_eq!(d.lvl_text(), "Remote socket, same board  hit");
        assert_eq!(d.snoop_text(), "HitM");
        assert_eq!(DataSrc(lock::LOCKED << 24).lock_text(), "Yes");
        assert_eq!(DataSrc((blk::DATA | blk::ADDR) << 40).blk_text(), " Data Addr");
    }
}
