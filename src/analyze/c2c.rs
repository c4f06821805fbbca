//! Cache-to-cache statistics: the per-sample classification `perf c2c`
//! applies to memory samples (../shared/C2C.md section 2, perf's
//! `c2c_decode_stats`), kept in one mergeable struct so that per-block
//! partials fold together in any order.

use super::datasrc::{lvl, op, snoop, DataSrc};
use serde::Serialize;

/// Every counter perf c2c keeps, under perf's names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct C2cStats {
    pub nr_entries: u64,
    pub locks: u64,
    pub load: u64,
    pub ld_uncache: u64,
    pub ld_io: u64,
    pub ld_miss: u64,
    pub ld_noadrs: u64,
    pub ld_fbhit: u64,
    pub ld_l1hit: u64,
    pub ld_l2hit: u64,
    pub ld_llchit: u64,
    pub lcl_hitm: u64,
    pub rmt_hitm: u64,
    pub tot_hitm: u64,
    pub rmt_hit: u64,
    pub lcl_dram: u64,
    pub rmt_dram: u64,
    pub ld_excl: u64,
    pub ld_shared: u64,
    pub lcl_peer: u64,
    pub rmt_peer: u64,
    pub tot_peer: u64,
    pub blk_data: u64,
    pub blk_addr: u64,
    pub store: u64,
    pub st_uncache: u64,
    pub st_noadrs: u64,
    pub st_l1hit: u64,
    pub st_l1miss: u64,
    pub st_na: u64,
    pub nomap: u64,
    pub noparse: u64,
}

macro_rules! add_fields {
    ($a:ident, $b:ident, $($f:ident),*) => { $( $a.$f += $b.$f; )* };
}

impl std::ops::AddAssign for C2cStats {
    fn add_assign(&mut self, o: Self) {
        add_fields!(
            self, o, nr_entries, locks, load, ld_uncache, ld_io, ld_miss, ld_noadrs, ld_fbhit, ld_l1hit, ld_l2hit, ld_llchit, lcl_hitm,
            rmt_hitm, tot_hitm, rmt_hit, lcl_dram, rmt_dram, ld_excl, ld_shared, lcl_peer, rmt_peer, tot_peer, blk_data, blk_addr, store,
            st_uncache, st_noadrs, st_l1hit, st_l1miss, st_na, nomap, noparse
        );
    }
}

/// What a sample contributed, for the latency buckets (C2C.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Counted only in nr_entries (and locks/blk): no load or store, or no address.
    Other,
    Load {
        rmt_hitm: bool,
        lcl_hitm: bool,
        rmt_peer: bool,
        lcl_peer: bool,
    },
    Store,
}

impl C2cStats {
    /// Classify one sample. `mapped` is false when the data or code address
    /// has no mapping (perf's nomap, which still counts the sample).
    pub fn add_sample(&mut self, d: DataSrc, daddr: u64, mapped: bool) -> Class {
        self.nr_entries += 1;
        if d.mem_lock() & super::datasrc::lock::LOCKED != 0 {
            self.locks += 1;
        }
        if d.mem_blk() & super::datasrc::blk::DATA != 0 {
            self.blk_data += 1;
        }
        if d.mem_blk() & super::datasrc::blk::ADDR != 0 {
            self.blk_addr += 1;
        }
        let (o, l, sn, snx) = (d.mem_op(), d.mem_lvl(), d.mem_snoop(), d.mem_snoopx());
        let mrem = d.mem_remote() != 0 && d.mem_hops() == 0;
        let hitm = sn & snoop::HITM != 0;
        let peer = snx & 2 != 0;
        let class;
        if o & op::LOAD != 0 {
            self.load += 1;
            if daddr == 0 {
                self.ld_noadrs += 1;
                return Class::Other;
            }
            let (mut lh, mut rh, mut lp, mut rp) = (false, false, false, false);
            if l & lvl::HIT != 0 {
                if l & lvl::UNC != 0 {
                    self.ld_uncache += 1;
                }
                if l & lvl::IO != 0 {
                    self.ld_io += 1;
                }
                if l & lvl::LFB != 0 {
                    self.ld_fbhit += 1;
                }
                if l & lvl::L1 != 0 {
                    self.ld_l1hit += 1;
                }
                for (bit, is_l2) in [(lvl::L2, true), (lvl::L3, false)] {
                    if l & bit == 0 {
                        continue;
                    }
                    if hitm {
                        self.lcl_hitm += 1;
                        self.tot_hitm += 1;
                        lh = true;
                    } else if is_l2 {
                        self.ld_l2hit += 1;
                    } else {
                        self.ld_llchit += 1;
                    }
                    if peer {
                        self.lcl_peer += 1;
                        self.tot_peer += 1;
                        lp = true;
                    }
                }
                if l & lvl::LOC_RAM != 0 {
                    self.lcl_dram += 1;
                    if sn & snoop::HIT != 0 {
                        self.ld_shared += 1;
                    } else {
                        self.ld_excl += 1;
                    }
                }
                if l & (lvl::REM_RAM1 | lvl::REM_RAM2) != 0 || mrem {
                    self.rmt_dram += 1;
                    if sn & snoop::HIT != 0 {
                        self.ld_shared += 1;
                    } else {
                        self.ld_excl += 1;
                    }
                }
            }
            if l & (lvl::REM_CCE1 | lvl::REM_CCE2) != 0 || mrem {
                if sn & snoop::HIT != 0 {
                    self.rmt_hit += 1;
                } else if hitm {
                    self.rmt_hitm += 1;
                    self.tot_hitm += 1;
                    rh = true;
                } else if peer {
                    self.rmt_hit += 1;
                    self.rmt_peer += 1;
                    self.tot_peer += 1;
                    rp = true;
                }
            }
            if l & lvl::MISS != 0 {
                self.ld_miss += 1;
            }
            class = Class::Load { rmt_hitm: rh, lcl_hitm: lh, rmt_peer: rp, lcl_peer: lp };
        } else if o & op::STORE != 0 {
            self.store += 1;
            if daddr == 0 {
                self.st_noadrs += 1;
                return Class::Other;
            }
            if l & lvl::HIT != 0 {
                if l & lvl::UNC != 0 {
                    self.st_uncache += 1;
                }
                if l & lvl::L1 != 0 {
                    self.st_l1hit += 1;
                }
            }
            if l & lvl::MISS != 0 && l & lvl::L1 != 0 {
                self.st_l1miss += 1;
            }
            if l & lvl::NA != 0 {
                self.st_na += 1;
            }
            class = Class::Store;
        } else {
            self.noparse += 1;
            return Class::Other;
        }
        if !mapped {
            self.nomap += 1;
        }
        class
    }

    pub fn llc_misses(&self) -> u64 {
        self.lcl_dram + self.rmt_dram + self.rmt_hitm + self.rmt_hit
    }
    pub fn cache_hits(&self) -> u64 {
        self.ld_fbhit + self.ld_l1hit + self.ld_l2hit + self.ld_llchit + self.lcl_hitm
    }
    pub fn stores(&self) -> u64 {
        self.st_l1hit + self.st_l1miss + self.st_na
    }
    /// The "Total records" column of a line.
    pub fn tot_recs(&self) -> u64 {
        self.llc_misses() + self.cache_hits() + self.stores()
    }
    pub fn tot_loads(&self) -> u64 {
        self.llc_misses() + self.cache_hits()
    }
    /// A line is shared when it saw a HITM or a peer hit.
    pub fn is_shared(&self) -> bool {
        self.lcl_hitm + self.rmt_hitm + self.lcl_peer + self.rmt_peer > 0
    }

    /// The counters under perf's names plus the derived ones, for JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("llc_misses".into(), self.llc_misses().into());
            m.insert("cache_hits".into(), self.cache_hits().into());
            m.insert("stores".into(), self.stores().into());
            m.insert("tot_recs".into(), self.tot_recs().into());
            m.insert("tot_loads".into(), self.tot_loads().into());
            m.insert("ld_llc_hit_total".into(), (self.ld_llchit + self.lcl_hitm).into());
        }
        v
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::analyze::datasrc::{lvl, op, snoop};

    fn ds(o: u64, l: u64, sn: u64) -> DataSrc {
        DataSrc(o | (l << 5) | (sn << 19))
    }

    #[test]
    fn rules_of_c2c_md() {
        let mut s = C2cStats::default();
        // L1 hit load.
        s.add_sample(ds(op::LOAD, lvl::HIT | lvl::L1, snoop::NONE), 0x1000, true);
        // Local HITM in L3.
        assert_eq!(
            s.add_sample(ds(op::LOAD, lvl::HIT | lvl::L3, snoop::HITM), 0x1000, true),
            Class::Load { rmt_hitm: false, lcl_hitm: true, rmt_peer: false, lcl_peer: false }
        );
        // Remote HITM.
        s.add_sample(ds(op::LOAD, lvl::HIT | lvl::REM_CCE1, snoop::HITM), 0x1000, true);
        // Remote DRAM, shared.
        s.add_sample(ds(op::LOAD, lvl::HIT | lvl::REM_RAM1, snoop::HIT), 0x1000, true);
        // A load without address stops after ld_noadrs.
        s.add_sample(ds(op::LOAD, lvl::HIT | lvl::L1, snoop::NONE), 0, true);
        // Store L1 hit, unmapped.
        s.add_sample(ds(op::STORE, lvl::HIT | lvl::L1, snoop::NA), 0x2000, false);
        // Not a load or store.
        s.add_sample(ds(op::PFETCH, lvl::NA, snoop::NA), 0x2000, true);
        assert_eq!(s.nr_entries, 7);
        assert_eq!((s.load, s.ld_noadrs, s.ld_l1hit, s.lcl_hitm, s.rmt_hitm, s.tot_hitm), (5, 1, 1, 1, 1, 2));
        assert_eq!((s.rmt_dram, s.ld_shared, s.ld_llchit), (1, 1, 0));
        assert_eq!((s.store, s.st_l1hit, s.nomap, s.noparse), (1, 1, 1, 1));
        assert_eq!(s.llc_misses(), 2);
        assert_eq!(s.cache_hits(), 2);
        assert_eq!(s.tot_recs(), 5);
        assert!(s.is_shared());
        let mut t = C2cStats::default();
        t += s;
        t += s;
        assert_eq!(t.tot_hitm, 4);
    }
}
