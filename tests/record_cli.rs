//! `msen record` behaves as scripts expect of `perf record`: exit status,
//! signals, --duration, explicit events, -F clamping, FILE.old, `-o -`,
//! `-a -- CMD`. Live captures: root (CI runs as root).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rec(args: &[&str]) -> std::process::Output {
    run(&[&["record", "-q"][..], args].concat())
}

#[test]
fn exit_status_is_the_workloads() {
    if !require_root("exit_status_is_the_workloads") {
        return;
    }
    let d = tmpdir();
    let out = d.path().join("t.msen");
    let o = out.to_str().unwrap();
    assert_eq!(rec(&["-o", o, "--", "sh", "-c", "exit 3"]).status.code(), Some(3));
    assert_eq!(rec(&["-o", o, "--", "sh", "-c", "kill -9 $$"]).status.code(), Some(137));
    assert_eq!(rec(&["-o", o, "--", "true"]).status.code(), Some(0));
    // The trace of a failing workload is complete all the same.
    assert_eq!(rec(&["-o", o, "--", "sh", "-c", "exit 1"]).status.code(), Some(1));
    assert!(run(&["info", o]).status.success());
}

#[test]
fn an_explicit_event_is_never_replaced_silently() {
    if !require_root("an_explicit_event_is_never_replaced_silently") {
        return;
    }
    let d = tmpdir();
    let out = d.path().join("t.msen");
    let o = out.to_str().unwrap();
    // This project's machines have no hardware PMU.
    let r = rec(&["-e", "instructions", "-o", o, "--", "true"]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    let e = stderr(&r);
    assert!(e.contains("no hardware PMU") && e.contains("instructions needs one") && e.contains("--fallback"), "{e}");
    assert!(!out.exists(), "nothing is written for a capture that cannot start");
    let r = run(&["record", "--fallback", "-e", "instructions", "-o", o, "--", "true"]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(stderr(&r).contains("recording cpu-clock instead of instructions"), "{}", stderr(&r));
    // --mem on a host without a memory PMU: an error, or page-faults with --fallback.
    let r = rec(&["--mem", "-o", o, "--", "true"]);
    assert_eq!(r.status.code(), Some(2));
    assert!(stderr(&r).contains("no memory-sampling PMU"), "{}", stderr(&r));
    let r = run(&["record", "--mem", "--fallback", "-o", o, "--", "sh", "-c", "head -c 20000000 /dev/zero | cat >/dev/null"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let j = json(&run(&["info", "--format", "json", o]));
    assert_eq!(j["events"][0]["name"], "page-faults", "{j}");
    assert!(j["software_only"].as_bool().unwrap_or(false) || j.to_string().contains("page-faults with their data addresses"), "{j}");
    let n = run(&["numa", o]);
    assert!(!stderr(&n).contains("panicked"));
}

#[test]
fn duration_ends_the_workload_and_signals_are_passed_on() {
    if !require_root("duration_ends_the_workload_and_signals_are_passed_on") {
        return;
    }
    let d = tmpdir();
    let out = d.path().join("t.msen");
    let o = out.to_str().unwrap();
    let t = Instant::now();
    let r = rec(&["--duration", "0.5", "-o", o, "--", "sleep", "30"]);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert!(t.elapsed() < Duration::from_secs(5), "the workload was ended, not waited for");
    // SIGTERM to msen reaches the workload: sh traps it and exits 7.
    let mut child = msen()
        .args(["record", "-q", "-o", o, "--", "sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.05; done"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(7), "the workload saw the SIGTERM and its status came back");
    assert!(run(&["info", o]).status.success());
}

#[test]
fn frequency_above_the_kernel_limit_is_clamped() {
    if !require_root("frequency_above_the_kernel_limit_is_clamped") {
        return;
    }
    let max: u64 = std::fs::read_to_string("/proc/sys/kernel/perf_event_max_sample_rate").unwrap().trim().parse().unwrap();
    let d = tmpdir();
    let out = d.path().join("t.msen");
    let f = (max * 2).to_string();
    let r = run(&["record", "-F", &f, "-o", out.to_str().unwrap(), "--", "true"]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(stderr(&r).contains("kernel.perf_event_max_sample_rate"), "{}", stderr(&r));
    let j = json(&run(&["info", "--format", "json", out.to_str().unwrap()]));
    assert!(j.to_string().contains(&format!("\"period_or_freq\":{max}")), "{j}");
}

#[test]
fn previous_output_is_kept_and_stdout_streams() {
    if !require_root("previous_output_is_kept_and_stdout_streams") {
        return;
    }
    let d = tmpdir();
    let out = d.path().join("t.msen");
    let o = out.to_str().unwrap();
    assert!(rec(&["-o", o, "--", "true"]).status.success());
    let first = std::fs::read(&out).unwrap();
    // A command that cannot start: the previous capture survives as .old.
    let r = rec(&["-o", o, "--", "/nonexistent/command"]);
    assert_eq!(r.status.code(), Some(2));
    assert_eq!(std::fs::read(d.path().join("t.msen.old")).unwrap(), first);
    // -o - : a trace on stdout that report reads from a pipe.
    let mut recorder = msen()
        .args(["record", "-q", "-e", "cpu-clock", "-o", "-", "--", "sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let report =
        msen().args(["report", "--format", "json", "--sort", "comm", "-i", "-"]).stdin(recorder.stdout.take().unwrap()).output().unwrap();
    assert!(recorder.wait().unwrap().success());
    assert!(report.status.success(), "{}", stderr(&report));
    let j = json(&report);
    assert!(j["rows"].as_array().unwrap().iter().any(|r| r["comm"] == "sh"), "{j}");
    assert!(!d.path().join("-").exists());
}

#[test]
fn system_wide_while_a_command_runs() {
    if !require_root("system_wide_while_a_command_runs") {
        return;
    }
    let d = tmpdir();
    let out = d.path().join("t.msen");
    let o = out.to_str().unwrap();
    // A busy process that is not the command: system-wide sees it.
    let mut busy = Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap();
    let t = Instant::now();
    let r = rec(&["-a", "-o", o, "--", "sleep", "1"]);
    let _ = busy.kill();
    let _ = busy.wait();
    assert!(r.status.success(), "{}", stderr(&r));
    // The capture ends with the command, not at some timeout: said by the
    // trace, not by the clock (a loaded machine is slow to start and close).
    assert!(t.elapsed() < Duration::from_secs(60), "the capture outlived its command");
    let info = json(&run(&["info", "--format", "json", o]));
    assert_eq!(info["capture_end"]["stop_reason"], "workload exited", "{info}");
    let j = json(&run(&["report", "--format", "json", "--sort", "pid", o]));
    let pid = busy.id() as u64;
    assert!(j["rows"].as_array().unwrap().iter().any(|r| r["pid"].as_u64() == Some(pid)), "the other process is sampled: {j}");
    // -C limits the CPUs.
    let r = rec(&["-C", "0", "-o", o, "--", "sleep", "0.3"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let j = json(&run(&["report", "--format", "json", "--sort", "cpu", o]));
    assert!(j["rows"].as_array().unwrap().iter().all(|r| r["cpu"].as_u64() == Some(0)), "{j}");
}
