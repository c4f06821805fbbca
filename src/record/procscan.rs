//! Synthesized COMM and MMAP2 records for processes that existed before the
//! capture started (the kernel only reports mappings made after the events
//! were opened), read from /proc like perf's synthesize step.

use crate::perf::attr::sample;
use crate::perf::record::{build_record, misc, RecordType};
use std::fs;

/// The sample_id trailer for a synthesized record, laid out for `sample_type`.
pub fn sample_id_trailer(sample_type: u64, pid: u32, tid: u32, time: u64, id: u64, cpu: u32) -> Vec<u8> {
    let mut v = Vec::new();
    if sample_type & sample::TID != 0 {
        v.extend_from_slice(&pid.to_le_bytes());
        v.extend_from_slice(&tid.to_le_bytes());
    }
    if sample_type & sample::TIME != 0 {
        v.extend_from_slice(&time.to_le_bytes());
    }
    if sample_type & sample::ID != 0 {
        v.extend_from_slice(&id.to_le_bytes());
    }
    if sample_type & sample::STREAM_ID != 0 {
        v.extend_from_slice(&id.to_le_bytes());
    }
    if sample_type & sample::CPU != 0 {
        v.extend_from_slice(&cpu.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
    }
    if sample_type & sample::IDENTIFIER != 0 {
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

fn padded_str(s: &str) -> Vec<u8> {
    let mut b = s.as_bytes().to_vec();
    b.push(0);
    b.resize(b.len().div_ceil(8) * 8, 0);
    b
}

pub fn comm_record(pid: u32, tid: u32, comm: &str, exec: bool, trailer: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&pid.to_le_bytes());
    body.extend_from_slice(&tid.to_le_bytes());
    body.extend_from_slice(&padded_str(comm));
    body.extend_from_slice(trailer);
    build_record(RecordType::COMM, if exec { misc::COMM_EXEC } else { 0 }, &body)
}

/// One line of /proc/PID/maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapsLine {
    pub start: u64,
    pub end: u64,
    pub prot: u32,
    pub shared: bool,
    pub pgoff: u64,
    pub maj: u32,
    pub min: u32,
    pub ino: u64,
    pub path: String,
}

pub fn parse_maps_line(line: &str) -> Option<MapsLine> {
    let mut it = line.splitn(6, char::is_whitespace);
    let range = it.next()?;
    let perms = it.next()?;
    let off = it.next()?;
    let dev = it.next()?;
    let ino = it.next()?;
    let path = it.next().unwrap_or("").trim().to_string();
    let (s, e) = range.split_once('-')?;
    let (maj, min) = dev.split_once(':')?;
    let p = perms.as_bytes();
    if p.len() < 4 {
        return None;
    }
    let mut prot = 0;
    if p[0] == b'r' {
        prot |= libc::PROT_READ as u32;
    }
    if p[1] == b'w' {
        prot |= libc::PROT_WRITE as u32;
    }
    if p[2] == b'x' {
        prot |= libc::PROT_EXEC as u32;
    }
    Some(MapsLine {
        start: u64::from_str_radix(s, 16).ok()?,
        end: u64::from_str_radix(e, 16).ok()?,
        prot,
        shared: p[3] == b's',
        pgoff: u64::from_str_radix(off, 16).ok()?,
        maj: u32::from_str_radix(maj, 16).ok()?,
        min: u32::from_str_radix(min, 16).ok()?,
        ino: ino.parse().ok()?,
        path,
    })
}

pub fn mmap2_record(pid: u32, tid: u32, m: &MapsLine, trailer: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&pid.to_le_bytes());
    body.extend_from_slice(&tid.to_le_bytes());
    body.extend_from_slice(&m.start.to_le_bytes());
    body.extend_from_slice(&(m.end - m.start).to_le_bytes());
    body.extend_from_slice(&m.pgoff.to_le_bytes());
    body.extend_from_slice(&m.maj.to_le_bytes());
    body.extend_from_slice(&m.min.to_le_bytes());
    body.extend_from_slice(&m.ino.to_le_bytes());
    body.extend_from_slice(&0u64.to_le_bytes());
    body.extend_from_slice(&m.prot.to_le_bytes());
    let flags = if m.shared { libc::MAP_SHARED } else { libc::MAP_PRIVATE } as u32;
    body.extend_from_slice(&flags.to_le_bytes());
    let name = if m.path.is_empty() { "//anon" } else { &m.path };
    body.extend_from_slice(&padded_str(name));
    body.extend_from_slice(trailer);
    let misc_bits = misc::USER | if m.prot & libc::PROT_EXEC as u32 == 0 { misc::MMAP_DATA } else { 0 };
    build_record(RecordType::MMAP2, misc_bits, &body)
}

/// Synthesize COMM for every thread and MMAP2 for every mapping of `pid`.
/// A process that exits meanwhile yields what was read before it went.
pub fn synthesize_process(pid: u32, sample_type: u64, id: u64, out: &mut Vec<u8>) {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).map(|s| s.trim_end().to_string()).unwrap_or_default();
    if comm.is_empty() {
        return;
    }
    let mut tids: Vec<u32> = fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok())).collect())
        .unwrap_or_default();
    tids.sort_unstable();
    if tids.is_empty() {
        tids.push(pid);
    }
    for &tid in &tids {
        let tcomm =
            fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).map(|s| s.trim_end().to_string()).unwrap_or_else(|_| comm.clone());
        out.extend_from_slice(&comm_record(pid, tid, &tcomm, false, &sample_id_trailer(sample_type, pid, tid, 0, id, 0)));
    }
    if let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) {
        let trailer = sample_id_trailer(sample_type, pid, pid, 0, id, 0);
        for m in maps.lines().filter_map(parse_maps_line) {
            out.extend_from_slice(&mmap2_record(pid, pid, &m, &trailer));
        }
    }
}

/// Every numeric entry of /proc.
pub fn all_pids() -> Vec<u32> {
    let mut v: Vec<u32> = fs::read_dir("/proc")
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok())).collect())
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// Thread ids of a process.
/// The process (thread group) a thread belongs to.
pub fn tgid_of(tid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Tgid:")).and_then(|v| v.trim().parse().ok())
}

pub fn threads_of(pid: u32) -> Vec<u32> {
    let mut v: Vec<u32> = fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok())).collect())
        .unwrap_or_default();
    v.sort_unstable();
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::perf::attr::Endian;
    use crate::perf::record::{parse_sideband, RecordIter, Sideband};

    #[test]
    fn maps_line_roundtrips_through_mmap2() {
        let l = parse_maps_line("7f0000001000-7f0000003000 r-xp 00001000 fd:01 1234                       /usr/lib/libc.so.6").unwrap();
        assert_eq!((l.start, l.end, l.pgoff, l.maj, l.min, l.ino), (0x7f0000001000, 0x7f0000003000, 0x1000, 0xfd, 1, 1234));
        assert_eq!(l.path, "/usr/lib/libc.so.6");
        let rec = mmap2_record(10, 10, &l, &sample_id_trailer(sample::TID | sample::TIME, 10, 10, 0, 0, 0));
        let r = RecordIter::new(&rec, Endian::Little).next().unwrap().unwrap();
        let Sideband::Mmap(m) = parse_sideband(&r, Endian::Little).unwrap() else { panic!() };
        assert_eq!((m.start, m.len, m.pgoff, m.ino), (0x7f0000001000, 0x2000, 0x1000, 1234));
        // The trailer follows the padded name, so the name must stop at its NUL.
        assert_eq!(m.filename, "/usr/lib/libc.so.6");
        let anon = parse_maps_line("7f0000001000-7f0000003000 rw-p 00000000 00:00 0 ").unwrap();
        assert_eq!(anon.path, "");
    }
}
