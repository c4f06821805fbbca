//! perf_event_open, its ioctls, and the mmap ring buffer protocol. All unsafe
//! code that touches the kernel's perf interface lives here.
//!
//! Ring buffer protocol (include/uapi/linux/perf_event.h):
//!
//! ```text
//!   page 0: perf_event_mmap_page (data_head at 1024, data_tail at 1032,
//!           data_offset/data_size at 1040/1048)
//!   pages 1..=2^n: data, a power-of-two ring
//!
//!        tail (ours)                 head (kernel's)
//!   ------|===========================|----------
//!         ^ read from here, wrapping   ^ kernel writes here
//! ```
//!
//! The kernel advances data_head after writing; we load it with Acquire so the
//! record bytes it covers are visible, copy them out (a record that straddles
//! the end of the ring is copied in two pieces), then store data_tail with
//! Release so the kernel may reuse the space only after our copy is complete.

use super::attr::EventAttr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

// _IO('$', n) and _IOR/_IOW with size; computed as the kernel does.
const IOC_ENABLE: libc::c_ulong = 0x2400;
const IOC_DISABLE: libc::c_ulong = 0x2401;
const IOC_SET_OUTPUT: libc::c_ulong = 0x2405;
const IOC_ID: libc::c_ulong = 0x8008_2407;
// _IOW('$', 8, __u32)
const IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
// _IOW('$', 4, __u64)
const IOC_PERIOD: libc::c_ulong = 0x4008_2404;

/// Open one perf event. `pid` -1 means any task, `cpu` -1 any CPU.
pub fn perf_event_open(attr: &EventAttr, size: u32, pid: i32, cpu: i32, group_fd: RawFd) -> io::Result<OwnedFd> {
    let bytes = attr.to_bytes(size);
    // SAFETY: `bytes` is a perf_event_attr of `size` bytes in the kernel's
    // layout, alive for the duration of the call; the kernel only reads it
    // (it may write `size` back on E2BIG, within the buffer we own).
    let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, bytes.as_ptr(), pid, cpu, group_fd, PERF_FLAG_FD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn ioctl(fd: RawFd, req: libc::c_ulong, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: perf ioctls with an integer argument; fd is an open perf event.
    let r = unsafe { libc::ioctl(fd, req as _, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn enable(fd: &OwnedFd) -> io::Result<()> {
    ioctl(fd.as_raw_fd(), IOC_ENABLE, 0)
}

pub fn disable(fd: &OwnedFd) -> io::Result<()> {
    ioctl(fd.as_raw_fd(), IOC_DISABLE, 0)
}

/// As `enable`/`disable`, on a borrowed fd (the agent's).
pub fn enable_fd(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    ioctl(fd.as_raw_fd(), IOC_ENABLE, 0)
}

pub fn disable_fd(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    ioctl(fd.as_raw_fd(), IOC_DISABLE, 0)
}

/// Send this event's records into `target`'s ring buffer (same CPU required).
pub fn set_output(fd: &OwnedFd, target: &OwnedFd) -> io::Result<()> {
    ioctl(fd.as_raw_fd(), IOC_SET_OUTPUT, target.as_raw_fd() as libc::c_ulong)
}

/// Run BPF program `prog_fd` at every overflow of this event (before the
/// sample is written; returning 0 drops it).
pub fn set_bpf(fd: &OwnedFd, prog_fd: RawFd) -> io::Result<()> {
    ioctl(fd.as_raw_fd(), IOC_SET_BPF, prog_fd as libc::c_ulong)
}

/// PERF_EVENT_IOC_PERIOD: a new sample period, or with attr.freq set, a new
/// frequency (Hz), in force from the next overflow.
pub fn set_period(fd: std::os::fd::BorrowedFd<'_>, value: u64) -> io::Result<()> {
    // SAFETY: PERF_EVENT_IOC_PERIOD reads one u64 through the pointer we pass.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), IOC_PERIOD as _, &value as *const u64) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An event's count and the nanoseconds it was enabled and running, as
/// read(2) returns them with read_format TOTAL_TIME_ENABLED|TOTAL_TIME_RUNNING
/// (running below enabled: the PMU was multiplexed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Times {
    pub value: u64,
    pub enabled: u64,
    pub running: u64,
}

pub fn read_times(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<Times> {
    let mut v = [0u64; 3];
    // SAFETY: read(2) writes at most 24 bytes into the 24-byte array.
    let n = unsafe { libc::read(fd.as_raw_fd(), v.as_mut_ptr().cast(), std::mem::size_of_val(&v)) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != std::mem::size_of_val(&v) {
        return Err(io::Error::other(format!("read {n} bytes of an event's count; the event lacks read_format TOTAL_TIME_*")));
    }
    Ok(Times { value: v[0], enabled: v[1], running: v[2] })
}

/// The kernel's id for an event, as it appears in PERF_SAMPLE_IDENTIFIER.
pub fn event_id(fd: &OwnedFd) -> io::Result<u64> {
    let mut id: u64 = 0;
    // SAFETY: PERF_EVENT_IOC_ID writes one u64 through the pointer we pass.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), IOC_ID as _, &mut id as *mut u64) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(id)
}

/// A perf mmap ring buffer. Owns the mapping; the fd stays with the caller.
#[derive(Debug)]
pub struct RingBuffer {
    base: *mut u8,
    map_len: usize,
    data_offset: usize,
    data_size: usize,
}

// SAFETY: the mapping is owned exclusively by this value; the kernel is the
// only other party and synchronizes through data_head/data_tail atomics.
unsafe impl Send for RingBuffer {}

impl RingBuffer {
    /// Map `1 + data_pages` pages of `fd` (data_pages a power of two).
    pub fn new(fd: &OwnedFd, data_pages: usize) -> io::Result<RingBuffer> {
        let page = page_size();
        let map_len = (1 + data_pages) * page;
        // SAFETY: mapping a perf event fd as the kernel documents; the result
        // is checked against MAP_FAILED before use.
        let base =
            unsafe { libc::mmap(std::ptr::null_mut(), map_len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd.as_raw_fd(), 0) };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = base as *mut u8;
        // SAFETY: the first page is perf_event_mmap_page; data_offset/data_size
        // live at 1040/1048 (kernels >= 4.1; zero before, then data starts at
        // one page).
        let (off, size) =
            unsafe { (std::ptr::read_volatile(base.add(1040) as *const u64), std::ptr::read_volatile(base.add(1048) as *const u64)) };
        let (data_offset, data_size) = if off == 0 { (page, data_pages * page) } else { (off as usize, size as usize) };
        Ok(RingBuffer { base, map_len, data_offset, data_size })
    }

    fn head(&self) -> &AtomicU64 {
        // SAFETY: offset 1024 of the control page is the 8-aligned data_head;
        // the mapping outlives &self.
        unsafe { &*(self.base.add(1024) as *const AtomicU64) }
    }
    fn tail(&self) -> &AtomicU64 {
        // SAFETY: offset 1032 is data_tail, 8-aligned, inside the mapping.
        unsafe { &*(self.base.add(1032) as *const AtomicU64) }
    }

    /// Copy every complete record currently in the ring into `out` and release
    /// the space. Returns the number of bytes copied.
    pub fn drain_into(&mut self, out: &mut Vec<u8>) -> usize {
        let head = self.head().load(Ordering::Acquire);
        let tail = self.tail().load(Ordering::Relaxed);
        if head == tail {
            return 0;
        }
        let mask = (self.data_size - 1) as u64;
        let len = head.wrapping_sub(tail) as usize;
        // SAFETY: [data_offset, data_offset + data_size) lies inside the
        // mapping; the kernel does not write the region between tail and head
        // until we advance data_tail.
        let data = unsafe { std::slice::from_raw_parts(self.base.add(self.data_offset), self.data_size) };
        let start = (tail & mask) as usize;
        let first = len.min(self.data_size - start);
        out.extend_from_slice(&data[start..start + first]);
        if first < len {
            out.extend_from_slice(&data[..len - first]);
        }
        self.tail().store(head, Ordering::Release);
        len
    }
}

impl Drop for RingBuffer {
    fn drop(&mut self) {
        // SAFETY: base/map_len came from a successful mmap and are unmapped once.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.map_len);
        }
    }
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// Number of configured CPUs and the online set.
pub fn online_cpus() -> Vec<u32> {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .map(|s| parse_cpu_list(s.trim()))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            (0..n as u32).collect()
        })
}

/// Parse a kernel cpu list such as "0-3,8,10-11".
pub fn parse_cpu_list(s: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    if b >= a && b - a < 1 << 16 {
                        v.extend(a..=b);
                    }
                }
            }
            None => {
                if let Ok(a) = part.parse() {
                    v.push(a);
                }
            }
        }
    }
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("0"), vec![0]);
        assert_eq!(parse_cpu_list(""), Vec::<u32>::new());
        assert_eq!(parse_cpu_list("5-1,x"), Vec::<u32>::new());
    }
}
