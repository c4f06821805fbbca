//! No input or output is destroyed, and every failure says what happened
//! and what to do (`msen: <what>; <what to do>`, exit 2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// A small perf.data: a synthetic trace exported through msen.
fn perf_data(dir: &Path) -> PathBuf {
    let t = dir.join("syn.msen");
    synthetic_trace(&t, 3, true);
    let p = dir.join("syn.data");
    let o = run(&["export", t.to_str().unwrap(), "--perf-data", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    p
}

fn report_rows(path: &Path) -> String {
    let o = run(&["report", "--format", "csv", "-i", path.to_str().unwrap()]);
    assert!(o.status.success(), "report {}: {}", path.display(), stderr(&o));
    stdout(&o)
}

#[test]
fn import_onto_its_own_input_keeps_the_data() {
    let d = tmpdir();
    let p = perf_data(d.path());
    let before = report_rows(&p);
    let o = run(&["import", p.to_str().unwrap(), "-o", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The file is now the imported trace and reports the same rows.
    assert_eq!(report_rows(&p), before);
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2, "no temporary file is left behind");
}

#[test]
fn export_onto_its_own_input_keeps_the_data() {
    let d = tmpdir();
    let t = d.path().join("t.msen");
    synthetic_trace(&t, 3, true);
    let by_comm = |p: &Path| stdout(&run(&["report", "--sort", "comm,pid", "--format", "csv", "-i", p.to_str().unwrap()]));
    let before = by_comm(&t);
    let o = run(&["export", t.to_str().unwrap(), "--perf-data", t.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(msen::analyze::loaded::is_perf_data_file(&t));
    assert_eq!(by_comm(&t), before, "the export (a perf.data now) reports what the trace did");
}

#[test]
fn a_failed_import_leaves_the_old_output() {
    let d = tmpdir();
    let out = d.path().join("out.msen");
    std::fs::write(&out, b"precious").unwrap();
    let bad = d.path().join("bad.data");
    std::fs::write(&bad, b"PERFILE2 but nothing else of a header").unwrap();
    let o = run(&["import", bad.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
}

#[test]
fn a_file_truncated_while_read_is_no_crash() {
    // The input is read into memory at open, so a writer cutting it while
    // script runs cannot fault msen (it used to die of SIGBUS).
    let d = tmpdir();
    let t = d.path().join("big.msen");
    synthetic_trace(&t, 400, true);
    for _ in 0..5 {
        let child = msen()
            .args(["script", "-i", t.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let f = std::fs::OpenOptions::new().write(true).open(&t).unwrap();
        f.set_len(100).unwrap();
        let o = child.wait_with_output().unwrap();
        let code = o.status.code();
        assert!(code == Some(0) || code == Some(2), "exit {:?} ({:?}): {}", code, o.status, stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
        synthetic_trace(&t, 400, true);
    }
}

#[test]
fn write_errors_are_reported() {
    let d = tmpdir();
    let t = d.path().join("t.msen");
    synthetic_trace(&t, 3, true);
    for cmd in ["report", "script", "info"] {
        let o = msen().args([cmd, t.to_str().unwrap()]).stdout(std::fs::File::create("/dev/full").unwrap()).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{cmd} onto /dev/full");
        assert!(stderr(&o).contains("cannot write the output"), "{cmd}: {}", stderr(&o));
    }
}

fn fails_with(args: &[&str], want: &[&str]) {
    let o = run(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    let e = stderr(&o);
    assert!(e.starts_with("msen: "), "{args:?}: {e}");
    for w in want {
        assert!(e.contains(w), "{args:?}: want {w:?} in {e:?}");
    }
}

#[test]
fn messages_say_what_happened_and_what_to_do() {
    let d = tmpdir();
    let dir = d.path().to_str().unwrap();
    fails_with(&["report", "-i", dir], &["is a directory", "name a trace file"]);
    let missing = d.path().join("msen.data");
    fails_with(&["report", "-i", missing.to_str().unwrap()], &["does not exist", "msen record"]);
    let o = msen().arg("report").current_dir(d.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("msen.data does not exist; record one with `msen record"), "{}", stderr(&o));
    fails_with(&["symbolize", "-e", "/nonexistent/prog", "0x1000"], &["/nonexistent/prog", "does not exist"]);
    let src = d.path().join("work.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    fails_with(&["symbolize", "-e", src.to_str().unwrap(), "0x1000"], &["is not an ELF file", "name the executable"]);
    // A perf.data whose writer was killed: data size 0 in the header.
    let p = perf_data(d.path());
    let mut b = std::fs::read(&p).unwrap();
    b[48..56].fill(0);
    b[72..104].fill(0);
    let cut = d.path().join("killed.data");
    std::fs::write(&cut, &b).unwrap();
    fails_with(&["report", cut.to_str().unwrap()], &["data size of 0", "killed"]);
}

#[test]
fn fifo_and_stdin_are_read_as_streams() {
    let d = tmpdir();
    let t = d.path().join("t.msen");
    synthetic_trace(&t, 3, true);
    let want = report_rows(&t);
    let o = msen().args(["report", "--format", "csv", "-i", "-"]).stdin(std::fs::File::open(&t).unwrap()).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), want);
    let fifo = d.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (src, dst) = (t.clone(), fifo.clone());
    let feeder = std::thread::spawn(move || std::fs::write(&dst, std::fs::read(&src).unwrap()).unwrap());
    let o = run(&["report", "--format", "csv", "-i", fifo.to_str().unwrap()]);
    feeder.join().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), want);
    // A perf.data through a pipe, too.
    let p = perf_data(d.path());
    let o = msen().args(["report", "--format", "csv", "-i", "-"]).stdin(std::fs::File::open(&p).unwrap()).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), report_rows(&p));
}

#[test]
fn info_on_perf_data_gives_the_file_size() {
    let d = tmpdir();
    let p = perf_data(d.path());
    let len = std::fs::metadata(&p).unwrap().len();
    let o = run(&["info", "--format", "json", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["file_bytes"].as_u64(), Some(len), "{j}");
}

#[test]
fn branch_view_without_branch_stacks_says_so() {
    let d = tmpdir();
    let t = d.path().join("t.msen");
    synthetic_trace(&t, 1, true);
    fails_with(&["report", "--branch", t.to_str().unwrap()], &["holds no branch stacks", "record with -b"]);
}
