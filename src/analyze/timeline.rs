//! Processes over time, rebuilt from sideband records: thread names, exec
//! epochs, memory mappings and parents. Samples are resolved against it by
//! (pid, tid, time) without keeping the records themselves.
//!
//! Mappings belong to an exec epoch of their process (epoch n = after the
//! n-th exec seen). A sample looks up the latest mapping of its epoch that
//! covers the address; in epoch 0 a process without its own mapping falls
//! back to its parent's at fork time, since a forked child shares its
//! parent's address space layout and the kernel reports no mmaps for it.

use crate::perf::record::{Comm, Mmap, Task};
use rustc_hash::FxHashMap as HashMap;

/// A mapped file (or anonymous region), shared by every mapping of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dso {
    pub path: String,
    pub maj: u32,
    pub min: u32,
    pub ino: u64,
}

impl Dso {
    /// An anonymous mapping (JIT code and heap-like data live there).
    pub fn is_anonymous(&self) -> bool {
        self.path.is_empty() || self.path == "//anon" || self.path.starts_with("[anon") || self.path.starts_with("/memfd:")
    }

    /// perf's short name: the file name, or the bracketed pseudo name.
    pub fn short_name(&self) -> &str {
        if self.path.starts_with('[') {
            return &self.path;
        }
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct MapEntry {
    pub start: u64,
    pub end: u64,
    pub pgoff: u64,
    pub dso: u32,
    pub prot: u32,
    pub epoch: u16,
}

#[derive(Debug, Clone, Default)]
struct Process {
    /// Exec times, ascending.
    execs: Vec<u64>,
    maps: Vec<MapEntry>,
    /// Parent pid and fork time.
    parent: Option<(u32, u64)>,
}

#[derive(Debug, Clone, Default)]
pub struct Timeline {
    comms: Vec<String>,
    comm_ids: HashMap<String, u32>,
    /// tid -> (time, comm id), ascending by time.
    threads: HashMap<u32, Vec<(u64, u32)>>,
    procs: HashMap<u32, Process>,
    pub dsos: Vec<Dso>,
    dso_ids: HashMap<Dso, u32>,
}

/// What a timeline resolves an address to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapHit {
    pub pid: u32,
    pub dso: u32,
    /// Offset in the mapped file (address - start + pgoff).
    pub file_offset: u64,
    pub map_start: u64,
}

impl Timeline {
    fn intern_comm(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.comm_ids.get(s) {
            return i;
        }
        let i = self.comms.len() as u32;
        self.comms.push(s.to_string());
        self.comm_ids.insert(s.to_string(), i);
        i
    }

    pub fn comm_name(&self, id: u32) -> &str {
        self.comms.get(id as usize).map_or("", String::as_str)
    }

    pub fn comm_id(&self, name: &str) -> Option<u32> {
        self.comm_ids.get(name).copied()
    }

    /// Apply records in time order (ties in file order).
    pub fn add_comm(&mut self, c: &Comm, time: u64) {
        let id = self.intern_comm(&c.comm);
        self.threads.entry(c.tid).or_default().push((time, id));
        if c.exec {
            self.procs.entry(c.pid).or_default().execs.push(time);
        }
    }

    pub fn add_fork(&mut self, t: &Task) {
        if t.pid != t.ppid {
            self.procs.entry(t.pid).or_default().parent.get_or_insert((t.ppid, t.time));
        }
        // A new thread inherits its creator's name until it sets its own.
        if !self.threads.contains_key(&t.tid) {
            if let Some(&(_, c)) = self.threads.get(&t.ptid).and_then(|v| v.last()) {
                self.threads.insert(t.tid, vec![(t.time, c)]);
            }
        }
    }

    pub fn add_mmap(&mut self, m: &Mmap, time: u64) {
        let dso = Dso { path: m.filename.clone(), maj: m.maj, min: m.min, ino: m.ino };
        let id = match self.dso_ids.get(&dso) {
            Some(&i) => i,
            None => {
                let i = self.dsos.len() as u32;
                self.dsos.push(dso.clone());
                self.dso_ids.insert(dso, i);
                i
            }
        };
        let p = self.procs.entry(m.pid).or_default();
        let epoch = p.execs.partition_point(|&e| e <= time) as u16;
        p.maps.push(MapEntry { start: m.start, end: m.start.saturating_add(m.len), pgoff: m.pgoff, dso: id, prot: m.prot, epoch });
    }

    /// Call after the last record: name the idle task as perf does (pid 0
    /// never gets a COMM record).
    pub fn finish(&mut self) {
        if !self.threads.contains_key(&0) {
            let id = self.intern_comm("swapper");
            self.threads.insert(0, vec![(0, id)]);
        }
    }

    /// The comm of a thread at `time`.
    pub fn comm_at(&self, pid: u32, tid: u32, time: u64) -> Option<u32> {
        let v = self.threads.get(&tid).or_else(|| self.threads.get(&pid))?;
        let i = v.partition_point(|&(t, _)| t <= time);
        Some(v[i.saturating_sub(1)].1)
    }

    /// The exec epoch of a process at `time`.
    pub fn epoch_at(&self, pid: u32, time: u64) -> u16 {
        self.procs.get(&pid).map_or(0, |p| p.execs.partition_point(|&e| e <= time) as u16)
    }

    /// The mapping covering `addr` in process `pid` during `epoch`.
    pub fn find_map(&self, pid: u32, epoch: u16, addr: u64) -> Option<MapHit> {
        let mut pid = pid;
        let mut epoch = epoch;
        for _ in 0..16 {
            let p = self.procs.get(&pid)?;
            // This epoch first, then the older ones: as perf does, a
            // process keeps its mappings across exec until new ones cover
            // them (a sample inside execve still has the old image's user
            // stack), and a child starts with its parent's.
            for e in (0..=epoch).rev() {
                if let Some(m) = p.maps.iter().rev().find(|m| m.epoch == e && addr >= m.start && addr < m.end) {
                    return Some(MapHit { pid, dso: m.dso, file_offset: (addr - m.start).wrapping_add(m.pgoff), map_start: m.start });
                }
            }
            let (ppid, at) = p.parent?;
            epoch = self.epoch_at(ppid, at);
            pid = ppid;
        }
        None
    }

    /// The file-backed mapping of `pid` that ends closest below `addr`
    /// (where a binary's .bss continues as an anonymous mapping).
    pub fn file_map_below(&self, pid: u32, epoch: u16, addr: u64) -> Option<MapHit> {
        let p = self.procs.get(&pid)?;
        let m = p
            .maps
            .iter()
            .filter(|m| {
                m.epoch == epoch
                    && m.end <= addr
                    && !self.dsos.get(m.dso as usize).is_none_or(|d| d.is_anonymous() || d.path.starts_with('['))
            })
            .max_by_key(|m| (m.end, m.start))?;
        Some(MapHit { pid, dso: m.dso, file_offset: (addr - m.start).wrapping_add(m.pgoff), map_start: m.start })
    }

    pub fn map_entry(&self, pid: u32, epoch: u16, addr: u64) -> Option<MapEntry> {
        let p = self.procs.get(&pid)?;
        p.maps.iter().rev().find(|m| m.epoch == epoch && addr >= m.start && addr < m.end).copied()
    }

    /// Every mapping of `pid` during `epoch`, latest last; in epoch 0 the
    /// parent's mappings at fork time come first (the child shares them).
    pub fn maps_of(&self, pid: u32, epoch: u16) -> Vec<MapEntry> {
        let mut chain = Vec::new();
        let (mut p, mut e) = (pid, epoch);
        for _ in 0..16 {
            let Some(proc_) = self.procs.get(&p) else { break };
            chain.push((p, e));
            match (e, proc_.parent) {
                (0, Some((ppid, at))) => {
                    e = self.epoch_at(ppid, at);
                    p = ppid;
                }
                _ => break,
            }
        }
        let mut out: Vec<MapEntry> = Vec::new();
        for &(p, e) in chain.iter().rev() {
            if let Some(proc_) = self.procs.get(&p) {
                for m in proc_.maps.iter().filter(|m| m.epoch == e) {
                    // A later mapping over the same range replaces the earlier.
                    out.retain(|o| o.end <= m.start || o.start >= m.end);
                    out.push(*m);
                }
            }
        }
        out
    }

    /// Kernel and module mappings (perf.data records them for pid -1).
    pub fn kernel_maps(&self) -> Vec<MapEntry> {
        self.procs.get(&u32::MAX).map(|p| p.maps.clone()).unwrap_or_default()
    }

    pub fn process_count(&self) -> usize {
        self.procs.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn mmap(pid: u32, start: u64, name: &str) -> Mmap {
        Mmap {
            pid,
            tid: pid,
            start,
            len: 0x1000,
            pgoff: 0,
            maj: 0,
            min: 0,
            ino: 1,
            ino_generation: 0,
            prot: 5,
            flags: 2,
            build_id: None,
            filename: name.into(),
        }
    }

    /// Found by fuzzing the in-place perf.data path: a mapping whose file
    /// offset is near 2^64 overflowed the offset of addresses above it.
    #[test]
    fn huge_file_offsets_do_not_overflow() {
        let mut t = Timeline::default();
        let mut m = mmap(7, 0x1000, "/bin/x");
        m.pgoff = u64::MAX - 10;
        t.add_mmap(&m, 0);
        t.finish();
        assert!(t.find_map(7, 0, 0x1fff).is_some());
        assert!(t.file_map_below(7, 0, 0x9000).is_some());
    }

    #[test]
    fn exec_starts_a_new_epoch_and_children_use_parent_maps() {
        let mut t = Timeline::default();
        t.add_comm(&Comm { pid: 10, tid: 10, comm: "msen".into(), exec: false }, 0);
        t.add_mmap(&mmap(10, 0x1000, "/usr/bin/msen"), 0);
        t.add_comm(&Comm { pid: 10, tid: 10, comm: "hot".into(), exec: true }, 100);
        t.add_mmap(&mmap(10, 0x1000, "/tmp/hot"), 101);
        t.add_fork(&Task { pid: 11, ppid: 10, tid: 11, ptid: 10, time: 200 });
        assert_eq!(t.comm_name(t.comm_at(10, 10, 50).unwrap()), "msen");
        assert_eq!(t.comm_name(t.comm_at(10, 10, 150).unwrap()), "hot");
        assert_eq!(t.comm_name(t.comm_at(11, 11, 250).unwrap()), "hot");
        let e = t.epoch_at(10, 150);
        assert_eq!(e, 1);
        assert_eq!(t.dsos[t.find_map(10, e, 0x1800).unwrap().dso as usize].path, "/tmp/hot");
        assert_eq!(t.dsos[t.find_map(10, 0, 0x1800).unwrap().dso as usize].path, "/usr/bin/msen");
        // The child has no maps of its own: its parent's at fork time.
        assert_eq!(t.dsos[t.find_map(11, 0, 0x1800).unwrap().dso as usize].path, "/tmp/hot");
        assert!(t.find_map(10, e, 0x9000).is_none());
    }
}
