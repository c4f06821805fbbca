//! `--call-graph dwarf`: stack copies unwound at analysis time (framehop over
//! .eh_frame) give perf's children, for msen's own captures and for perf.data
//! recorded by perf with --call-graph dwarf. The test program has no frame
//! pointers, so a frame-pointer walk could not find its callers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

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

/// `perf record --call-graph dwarf` of `prog SECS` at `freq` Hz into DIR/perf.data.
fn perf_record_dwarf(dir: &Path, prog: &Path, freq: u32, secs: &str) -> PathBuf {
    let data = dir.join("perf.data");
    let st = Command::new("perf")
        .args(["record", "-q", "-F", &freq.to_string(), "--call-graph", "dwarf", "-o"])
        .arg(&data)
        .arg("--")
        .arg(prog)
        .arg(secs)
        .status()
        .unwrap();
    assert!(st.success(), "perf record --call-graph dwarf failed");
    data
}

const PATH: [&str; 5] = ["main", "top", "mid", "leaf", "side"];

#[test]
fn perfs_dwarf_recording_unwinds_to_perfs_children() {
    if !require_root("perfs_dwarf_recording_unwinds_to_perfs_children") || !have_perf() {
        return;
    }
    let d = tmpdir();
    let prog = build_nofp(d.path());
    let data = perf_record_dwarf(d.path(), &prog, 2000, "1");
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
    let data = perf_record_dwarf(d.path(), &prog, 4000, "2");
    let ours_file = d.path().join("t.msen");
    let o =
        run(&["record", "-q", "-F", "4000", "--call-graph", "dwarf", "-o", ours_file.to_str().unwrap(), "--", prog.to_str().unwrap(), "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (theirs, ours) = (perf_children(&data), msen_children(&ours_file));
    // Two runs of one program differ by sampling noise: within a point, or
    // 3.5 standard deviations of the difference of two binomial shares when
    // that is wider (the samples of each run, counted by msen).
    let n = |p: &Path| json(&run(&["info", "--format", "json", p.to_str().unwrap()]))["samples"].as_f64().unwrap().max(1.0);
    let (n1, n2) = (n(&data), n(&ours_file));
    for f in PATH {
        let (t, o) = (theirs.get(f).copied().unwrap_or(0.0), ours.get(f).copied().unwrap_or(0.0));
        let p = (t / 100.0).clamp(0.0, 1.0);
        let tol = (3.5 * (p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)).sqrt() * 100.0).max(1.0);
        assert!((t - o).abs() <= tol, "{f}: perf {t}% msen {o}% (tolerance {tol:.2})\nperf {theirs:?}\nmsen {ours:?}");
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

/// Split `report --stdio` text into row -> the call graph printed under it.
fn graph_blocks(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut cur: Option<(String, String)> = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let is_row = f.len() >= 3
            && f[0].ends_with('%')
            && !line.trim_start().starts_with('|')
            && !line.contains("--")
            && f.iter().any(|x| *x == "[.]" || *x == "[k]");
        if is_row {
            if let Some((k, v)) = cur.take() {
                m.entry(k).or_insert(v);
            }
            let name = line.split("] ").nth(1).unwrap_or("").trim().to_string();
            cur = Some((name, String::new()));
        } else if let Some((_, v)) = cur.as_mut() {
            if !line.trim().is_empty() {
                v.push_str(line);
                v.push('\n');
            }
        }
    }
    if let Some((k, v)) = cur {
        m.entry(k).or_insert(v);
    }
    // Keyed by the first row of each name (the heaviest).
    m
}

/// `report -g ...` prints the call graph under each row exactly as
/// `perf report --stdio -g ...` does, on perf's own recording of a program
/// without frame pointers (chains from DWARF unwinding).
#[test]
fn call_graph_text_equals_perf_report() {
    if !require_root("call_graph_text_equals_perf_report") || !have_perf() {
        return;
    }
    let d = tmpdir();
    let prog = build_nofp(d.path());
    let data = perf_record_dwarf(d.path(), &prog, 2000, "1");
    let cases: &[&[&str]] = &[
        &["--sort", "sym"],
        &["--sort", "sym", "--no-children"],
        &["--sort", "dso,sym"],
        &["--sort", "sym", "-g", "fractal"],
        &["--sort", "sym", "-g", "caller"],
        &["--sort", "sym", "--no-children", "-g", "callee"],
        &["--sort", "sym", "-G"],
        &["--sort", "sym", "-g", "flat"],
        &["--sort", "sym", "-g", "folded"],
        &["--sort", "sym", "-g", "graph,30"],
    ];
    for args in cases {
        let theirs = Command::new("perf").args(["report", "--stdio", "--no-inline", "-i"]).arg(&data).args(*args).output().unwrap();
        // perf 6.1 sometimes prints its "[...]" rest as "[...] (inlined)": the
        // symbol it makes for it is malloc'ed, its inlined flag uninitialized.
        let theirs = graph_blocks(&String::from_utf8_lossy(&theirs.stdout).replace("[...] (inlined)", "[...]"));
        let mut a = vec!["report", "-i", data.to_str().unwrap()];
        a.extend(*args);
        let ours = graph_blocks(&stdout(&run(&a)));
        let mut compared = 0;
        for f in ["main", "top", "mid", "side", "leaf", "_start"] {
            if let (Some(t), Some(o)) = (theirs.get(f), ours.get(f)) {
                if o != t {
                    // Two things may differ, and only these: siblings whose
                    // shares print the same (periods a nanosecond apart) come
                    // in perf's internal order, moving with their subtrees;
                    // and one sample may unwind differently in framehop and
                    // perf's unwinder (a sample in a prologue), moving a share
                    // by a sample or leaving a tiny `[...]`. So: the same
                    // frames under the function, without the tree-drawing
                    // characters and in any order, each share within 0.15
                    // points.
                    fn frames(x: &str) -> Vec<(String, Option<f64>)> {
                        let mut v: Vec<(String, Option<f64>)> = x
                            .lines()
                            .map(|l| l.replace(['|', ' '], "").trim_start_matches('-').to_string())
                            .filter(|l| !l.is_empty())
                            .map(|l| match l.split_once("%--") {
                                Some((share, name)) => (name.to_string(), share.parse().ok()),
                                None => (l, None),
                            })
                            .filter(|(name, share)| !(name == "[...]" && share.is_some_and(|s| s <= 0.15)))
                            .collect();
                        // A total order: a name may come twice (a sibling
                        // with its share, and a chain's continuation without).
                        v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal)));
                        v
                    }
                    let (ft, fo) = (frames(t), frames(o));
                    let close = ft.len() == fo.len()
                        && ft.iter().zip(&fo).all(|((na, sa), (nb, sb))| {
                            na == nb
                                && match (sa, sb) {
                                    (Some(a), Some(b)) => (a - b).abs() <= 0.15,
                                    (None, None) => true,
                                    _ => false,
                                }
                        });
                    assert!(close, "{args:?}: the graph under {f}\nperf:\n{t}\nmsen:\n{o}");
                }
                compared += 1;
            }
        }
        let want = if args.contains(&"--no-children") { 1 } else { 4 };
        assert!(compared >= want, "{args:?}: only {compared} rows in both\nperf {:?}\nmsen {:?}", theirs.keys(), ours.keys());
    }
}
