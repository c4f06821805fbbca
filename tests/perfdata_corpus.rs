//! Conformance on ../shared/perfdata: 39 recordings from real Intel, AMD,
//! Arm, i686, armv7 and POWER machines with stock perf 6.1's outputs beside
//! each. Every file must be read (or refused with a typed error naming why),
//! and msen's numbers must equal perf's: samples per event, lost records,
//! and the report's shares by command and shared object.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/perfdata");
    if p.join("MANIFEST.tsv").exists() {
        Some(p)
    } else {
        eprintln!("SKIP: {} is missing (CI has it beside the checkout)", p.display());
        None
    }
}

/// Every NAME.data and derived copy, with the NAME of the reference outputs.
fn files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut v = Vec::new();
    for sub in [dir.to_path_buf(), dir.join("derived")] {
        for e in std::fs::read_dir(&sub).unwrap().flatten() {
            let p = e.path();
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            if let Some(stem) = n.strip_suffix(".data") {
                let name = stem.split('.').next().unwrap().to_string();
                v.push((p, name));
            }
        }
    }
    v.sort();
    v
}

/// perf's `report -D` aggregated stats: total counts by record type, and
/// SAMPLE counts per event name.
fn perf_stats(text: &str) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let mut total = BTreeMap::new();
    let mut per_event = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(ev) = line.strip_suffix(" stats:").filter(|_| !line.starts_with("Aggregated")) {
            current = Some(ev.trim().to_string());
            continue;
        }
        let t = line.trim();
        if let Some((kind, rest)) = t.split_once(" events:") {
            let n: u64 = rest.split_whitespace().next().unwrap_or("0").parse().unwrap_or(0);
            match &current {
                Some(ev) if kind == "SAMPLE" => {
                    per_event.insert(ev.clone(), n);
                }
                None => {
                    total.insert(kind.to_string(), n);
                }
                _ => {}
            }
        }
    }
    (total, per_event)
}

#[test]
fn every_corpus_file_is_read_with_perfs_counts() {
    let Some(dir) = corpus() else { return };
    let mut checked = 0;
    let mut refused = Vec::new();
    for (path, name) in files(&dir) {
        let stats = std::fs::read_to_string(dir.join(format!("{name}.stats.txt"))).unwrap_or_default();
        let (total, per_event) = perf_stats(&stats);
        let raw = std::fs::read_to_string(dir.join(format!("{name}.rawheader.txt"))).unwrap_or_default();
        let branch_mode = raw.lines().any(|l| l.starts_with("feature bits set:") && l.split_whitespace().any(|w| w == "BRANCH_STACK"));
        let o = run(&["info", "--format", "json", path.to_str().unwrap()]);
        if !o.status.success() {
            assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
            assert!(stderr(&o).contains("perf.data"), "{name}: the error names the format: {}", stderr(&o));
            // Only a file stock perf cannot read either may be refused.
            assert!(total.is_empty(), "{name}: perf reads it ({total:?}) but msen refused: {}", stderr(&o));
            refused.push(name);
            continue;
        }
        let j = json(&o);
        let counts = &j["record_counts"];
        for kind in ["SAMPLE", "LOST", "LOST_SAMPLES", "MMAP", "MMAP2", "COMM", "FORK", "EXIT"] {
            let want = total.get(kind).copied().unwrap_or(0);
            let got = counts[kind].as_u64().unwrap_or(0);
            assert_eq!(got, want, "{name} ({}): {kind} records", path.display());
        }
        let events = j["events"].as_array().unwrap();
        for (ev, n) in &per_event {
            // In files with the BRANCH_STACK header feature perf reports in
            // branch mode, where every branch-stack entry counts as a sample.
            let got: u64 = events
                .iter()
                .filter(|e| e["name"] == ev.as_str())
                .map(|e| {
                    if branch_mode && e["attr"]["sample_type"].as_u64().unwrap() & (1 << 11) != 0 {
                        e["branch_entries"].as_u64().unwrap()
                    } else {
                        e["samples"].as_u64().unwrap()
                    }
                })
                .sum();
            assert_eq!(
                got,
                *n,
                "{name} ({}): samples of '{ev}' (msen events: {:?})",
                path.display(),
                events.iter().map(|e| e["name"].clone()).collect::<Vec<_>>()
            );
        }
        checked += 1;
    }
    eprintln!("checked {checked} files; refused {refused:?}");
    assert!(checked >= 44, "{checked} files checked");
    assert!(refused.len() <= 1, "{refused:?}");
}

/// One section of `perf report --stdio`: event, samples line, event count,
/// and (comm, dso) -> summed self percent, with the number of rows summed.
#[derive(Debug, Default)]
struct Section {
    event: String,
    period: u64,
    rows: BTreeMap<(String, String), (f64, usize)>,
    complete: bool,
    /// Widths of the Command and Shared Object columns: perf truncates
    /// values to them (in pipe mode the width can come from an older comm).
    widths: (usize, usize),
}

fn perf_report_sections(text: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut cols: Option<Vec<(usize, usize)>> = None;
    let mut children = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# Samples: ") {
            let ev = rest
                .split_once(" of event")
                .map(|(_, e)| e.trim_start_matches('s').trim().trim_matches('\'').to_string())
                .unwrap_or_default();
            out.push(Section { event: ev, ..Default::default() });
            cols = None;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# Event count (approx.): ") {
            if let Some(s) = out.last_mut() {
                s.period = rest.trim().parse().unwrap_or(0);
            }
            continue;
        }
        if line.starts_with("# Overhead") || line.starts_with("# Children") {
            children = line.starts_with("# Children");
            continue;
        }
        if line.starts_with("# ....") {
            // Column spans from the dots line.
            let mut spans = Vec::new();
            let b = line.as_bytes();
            let mut i = 2;
            while i < b.len() {
                if b[i] == b'.' {
                    let s = i;
                    while i < b.len() && b[i] == b'.' {
                        i += 1;
                    }
                    spans.push((s, i));
                } else {
                    i += 1;
                }
            }
            cols = Some(spans);
            continue;
        }
        let (Some(c), Some(sec)) = (&cols, out.last_mut()) else { continue };
        if !line.trim_start().chars().next().is_some_and(|ch| ch.is_ascii_digit()) || !line.contains('%') {
            continue;
        }
        let field = |k: usize| -> String {
            let (s, e) = c[k];
            let e = if k + 1 == c.len() { line.len() } else { e.min(line.len()) };
            line.get(s..e).unwrap_or("").trim().to_string()
        };
        let (self_col, comm_col) = if children { (1, 2) } else { (0, 1) };
        sec.widths = (c[comm_col].1 - c[comm_col].0, c[comm_col + 1].1 - c[comm_col + 1].0);
        let pct: f64 = field(self_col).trim_end_matches('%').parse().unwrap_or(0.0);
        let key = (field(comm_col), field(comm_col + 1));
        let e = sec.rows.entry(key).or_insert((0.0, 0));
        e.0 += pct;
        e.1 += 1;
    }
    for s in &mut out {
        let sum: f64 = s.rows.values().map(|v| v.0).sum();
        s.complete = (sum - 100.0).abs() < 0.6;
    }
    out
}

#[test]
fn report_shares_by_comm_and_dso_match_perf() {
    let Some(dir) = corpus() else { return };
    let mut compared = 0;
    for (path, name) in files(&dir) {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{name}.report.txt"))) else { continue };
        let sections = perf_report_sections(&text);
        // Group reports put members side by side, and branch-mode reports
        // (files with the BRANCH_STACK feature) count branches: other views.
        let raw = std::fs::read_to_string(dir.join(format!("{name}.rawheader.txt"))).unwrap_or_default();
        let branch_mode = raw.lines().any(|l| l.starts_with("feature bits set:") && l.split_whitespace().any(|w| w == "BRANCH_STACK"));
        if sections.is_empty() || text.contains("of events 'anon group") || branch_mode {
            continue;
        }
        let o = run(&["report", "--format", "json", "--no-children", "--sort", "comm,dso", path.to_str().unwrap()]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let j = json(&o);
        for sec in &sections {
            let ev = j["events"].as_array().unwrap().iter().position(|e| e["name"] == sec.event.as_str());
            // perf decodes AUX-area traces (Intel PT, CoreSight) into events
            // of its own ('cbr', 'instructions', ...); msen does not.
            let aux = j["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| ["intel_pt", "cs_etm", "arm_spe"].iter().any(|a| e["name"].as_str().unwrap_or("").contains(a)));
            if ev.is_none() && aux {
                continue;
            }
            let Some(evi) = ev else { panic!("{name}: event '{}' not in msen's {:?}", sec.event, j["events"]) };
            assert_eq!(j["events"][evi]["period"].as_u64().unwrap(), sec.period, "{name}: event count of '{}'", sec.event);
            let ours: BTreeMap<(String, String), f64> =
                j["rows"].as_array().unwrap().iter().filter(|r| r["event"] == sec.event.as_str()).fold(BTreeMap::new(), |mut m, r| {
                    let cut = |s: &str, w: usize| s.chars().take(w).collect::<String>();
                    let key = (cut(r["comm"].as_str().unwrap(), sec.widths.0), cut(r["dso"].as_str().unwrap(), sec.widths.1));
                    *m.entry(key).or_insert(0.0) += r["percent"].as_f64().unwrap();
                    m
                });
            for (key, (pct, nrows)) in &sec.rows {
                let tol = 0.005 * *nrows as f64 + 0.01;
                let got = ours.get(key).copied().unwrap_or(0.0);
                if sec.complete {
                    assert!((got - pct).abs() <= tol, "{name} '{}' {key:?}: msen {got} perf {pct} (±{tol})", sec.event);
                } else {
                    assert!(got + tol >= *pct, "{name} '{}' {key:?}: msen {got} < perf's partial {pct}", sec.event);
                }
            }
            compared += 1;
        }
    }
    eprintln!("compared {compared} report sections");
    assert!(compared >= 30, "{compared}");
}
