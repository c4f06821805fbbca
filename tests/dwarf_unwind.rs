//! `--call-graph dwarf`: stack copies unwound at analysis time (framehop over
//! .eh_frame) give perf's children, for msen's own captures and for perf.data
//! recorded by perf with --call-graph dwarf. The test program has no frame
//! pointers, so a frame-pointer walk could not find its callers.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn build_nofp(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/programs/nofp.c");
    let out = dir.join("nofp");
    let st = Command::new("cc")
        .args(["-O2", "-g", "-fomit-frame-pointer", "-fno-inline", "-fno-optimize-sibling-calls", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    out
}

/// Children percentages by symbol from `perf report --stdio --children --sort sym`.
fn perf_children(data: &Path) -> BTreeMap<String, f64> {
    let o = Command::new("perf").args(["report", "--stdio", "--children", "--sort", "sym", "-g", "none", "-i"]).arg(data).output().unwrap();
    let mut m = BTreeMap::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 4 && f[0].ends_with('%') && f[2] == "[.]" {
            let v: f64 = f[0].trim_end_matches('%').parse().unwrap();
            m.entry(f[3].to_string()).or_insert(v);
        }
    }
    m
}

fn msen_children(data: &Path) -> BTreeMap<String, f64> {
    let o = run(&["report", "--format", "json", "--sort", "sym", "-i", data.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = json(&o);
    let mut m = BTreeMap::new();
    for r in j["rows"].as_array().unwrap() {
        if let (Some(s), Some(c)) = (r["sym"].as_str(), r["children_percent"].as_f64()) {
            m.insert(s.to_string(), c);
        }
    }
    m
}

const PATH: [&str; 5] = ["main", "top", "mid", "leaf", "side"];

#[test]
fn perfs_dwarf_recording_unwinds_to_perfs_children() {
    if !require_root("perfs_dwarf_recording_unwinds_to_perfs_children") || !have_perf() {
        return;
    }
    let d = tmpdir();
    let prog = build_nofp(d.path());
    let data = d.path().join("perf.data");
    let st = Command::new("perf")
        .args(["record", "-q", "-F", "2000", "--call-graph", "dwarf", "-o"])
        .arg(&data)
        .arg("--")
        .arg(&prog)
        .arg("1")
        .status()
        .unwrap();
    assert!(st.success());
    let (theirs, ours) = (perf_children(&data), msen_children(&data));
    for f in PATH {
        let (t, o) = (theirs.get(f).copied().unwrap_or(0.0), ours.get(f).copied().unwrap_or(0.0));
        assert!((t - o).abs() <= 0.1, "{f}: perf {t}% msen {o}%\nperf {theirs:?}\nmsen {ours:?}");
    }
    assert!(theirs["mid"] > 60.0 && theirs["side"] > 15.0, "the program's shape: {theirs:?}");
}

#[test]
fn msen_dwarf_capture_matches_perf_within_a_point() {
    if !require_root("msen_dwarf_capture_matches_perf_within_a_point") || !have_perf() {
        return;
    }
    let d = tmpdir();
    let prog = build_nofp(d.path());
    let data = d.path().join("perf.data");
    let st = Command::new("perf")
        .args(["record", "-q", "-F", "1000", "--call-graph", "dwarf", "-o"])
        .arg(&data)
        .arg("--")
        .arg(&prog)
        .arg("1.5")
        .status()
        .unwrap();
    assert!(st.success());
    let ours_file = d.path().join("t.msen");
    let o = run(&[
        "record",
        "-q",
        "-F",
        "1000",
        "--call-graph",
        "dwarf",
        "-o",
        ours_file.to_str().unwrap(),
        "--",
        prog.to_str().unwrap(),
        "1.5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (theirs, ours) = (perf_children(&data), msen_children(&ours_file));
    for f in PATH {
        let (t, o) = (theirs.get(f).copied().unwrap_or(0.0), ours.get(f).copied().unwrap_or(0.0));
        assert!((t - o).abs() <= 1.0, "{f}: perf {t}% msen {o}%\nperf {theirs:?}\nmsen {ours:?}");
    }
    // Frame pointers alone cannot see these callers.
    let fp = d.path().join("fp.msen");
    assert!(run(&["record", "-q", "-F", "1000", "-g", "-o", fp.to_str().unwrap(), "--", prog.to_str().unwrap(), "0.5"]).status.success());
    let f = msen_children(&fp);
    assert!(f.get("mid").copied().unwrap_or(0.0) < 50.0, "the fp walk is lost without frame pointers: {f:?}");
    // Folded stacks carry the unwound path.
    let o = run(&["report", "--format", "folded", "-i", ours_file.to_str().unwrap()]);
    assert!(stdout(&o).lines().any(|l| l.contains("main;top;mid;leaf")), "{}", stdout(&o));
}
