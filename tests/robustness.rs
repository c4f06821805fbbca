//! A capture survives what happens to it: 100 SIGKILLs at random moments of
//! `record -g` and of `record -a` with flow context leave readable traces
//! that lost at most one flush interval; a full filesystem stops the capture
//! cleanly with a readable trace. Root (CI runs as root).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A small deterministic generator: the moments are random but repeatable.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn hundred_sigkills_leave_readable_traces() {
    if !require_root("hundred_sigkills_leave_readable_traces") {
        return;
    }
    let d = tmpdir();
    let hot = build_program("hot", d.path());
    let mut rng = Lcg(0x5eed);
    let mut with_samples = 0;
    for i in 0..100 {
        let out = d.path().join(format!("k{i}.msen"));
        let mut cmd = msen();
        if i % 2 == 0 {
            cmd.args(["record", "-q", "-g", "-F", "4000", "-o", out.to_str().unwrap(), "--", hot.to_str().unwrap(), "--forever"]);
        } else {
            cmd.args(["record", "-q", "-a", "-F", "4000", "-o", out.to_str().unwrap()]);
        }
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        // Between 50 ms and 2.5 s: before the first flush, across flushes.
        std::thread::sleep(Duration::from_millis(50 + rng.next() % 2450));
        let killed_at = monotonic_ns();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        if i % 2 == 0 {
            // The workload was msen's child; it is orphaned, not killed.
            let _ = Command::new("pkill").args(["-9", "-f", &format!("{} --forever", hot.display())]).status();
        }
        let len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        if len == 0 {
            // Killed before the header was written: nothing to read, and
            // the reader says so instead of failing oddly.
            let o = run(&["info", out.to_str().unwrap()]);
            assert_eq!(o.status.code(), Some(2), "kill {i}: {}", stderr(&o));
            continue;
        }
        let o = run(&["info", "--format", "json", out.to_str().unwrap()]);
        assert!(o.status.success(), "kill {i}: trace unreadable: {}", stderr(&o));
        let j = json(&o);
        assert!(!j["clean_close"].as_bool().unwrap(), "kill {i}: a killed writer cannot have closed cleanly");
        let r = run(&["report", "--format", "json", out.to_str().unwrap()]);
        assert!(r.status.code() == Some(0) || r.status.code() == Some(1), "kill {i}: {}", stderr(&r));
        if let Some(last) = j["time_range_ns"][1].as_u64() {
            with_samples += 1;
            // Blocks are flushed every second: at most that (plus the time
            // to write a block) is lost.
            let lost_ns = killed_at.saturating_sub(last);
            assert!(lost_ns < 1_600_000_000, "kill {i}: the last sample is {} ms before the kill", lost_ns / 1_000_000);
        }
    }
    // How many kills came after the first flush depends on how fast msen
    // starts here; the checks above are what matters, on every kill.
    assert!(with_samples >= 5, "some kills came after a flush: {with_samples}");
}

#[test]
fn a_full_filesystem_stops_cleanly() {
    if !require_root("a_full_filesystem_stops_cleanly") {
        return;
    }
    let d = tmpdir();
    let mnt = d.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount").args(["-t", "tmpfs", "-o", "size=512k", "msen-full-test"]).arg(&mnt).status().unwrap();
    assert!(st.success(), "mount tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    let out = mnt.join("t.msen");
    let mut busy: Vec<std::process::Child> =
        (0..2).map(|_| Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap()).collect();
    let t = Instant::now();
    let o = run(&["record", "-a", "-g", "-F", "10000", "--duration", "20", "-o", out.to_str().unwrap()]);
    for b in &mut busy {
        let _ = b.kill();
        let _ = b.wait();
    }
    assert!(t.elapsed() < Duration::from_secs(15), "the capture stopped at the full disk, not at --duration");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("No space left on device"), "{}", stderr(&o));
    let i = run(&["info", "--format", "json", out.to_str().unwrap()]);
    assert!(i.status.success(), "the trace on the full disk is readable: {}", stderr(&i));
    assert!(json(&i)["samples"].as_u64().unwrap() > 0);
}
