//! Parsing stock perf's text outputs (report -D stats, report --stdio).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

/// perf's `report -D` aggregated stats: total counts by record type, and
/// SAMPLE counts per event name.
pub fn perf_stats(text: &str) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
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

/// One section of `perf report --stdio`: event, samples line, event count,
/// and (comm, dso) -> summed self percent, with the number of rows summed.
#[derive(Debug, Default)]
pub struct Section {
    pub event: String,
    pub period: u64,
    pub rows: BTreeMap<(String, String), (f64, usize)>,
    pub complete: bool,
    /// Widths of the Command and Shared Object columns: perf truncates
    /// values to them (in pipe mode the width can come from an older comm).
    pub widths: (usize, usize),
}

pub fn perf_report_sections(text: &str) -> Vec<Section> {
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

/// Compare perf report sections with msen's `report --sort comm,dso
/// --no-children --format json` on the same file; returns the sections compared.
pub fn check_sections(name: &str, sections: &[Section], j: &serde_json::Value) -> usize {
    check_sections_by(name, sections, j, ("comm", "dso"))
}

/// As `check_sections`, with the two key columns named (e.g. dso_from, dso_to).
pub fn check_sections_by(name: &str, sections: &[Section], j: &serde_json::Value, fields: (&str, &str)) -> usize {
    let mut compared = 0;
    for sec in sections {
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
                let key = (cut(r[fields.0].as_str().unwrap(), sec.widths.0), cut(r[fields.1].as_str().unwrap(), sec.widths.1));
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
    compared
}

/// One section of `perf mem report --sort=mem,snoop,tlb,lock,blocked,local_weight`:
/// event name, total weight, rows of (key fields) -> (percent, samples).
#[derive(Debug, Default)]
pub struct MemSection {
    pub event: String,
    pub total_weight: u64,
    pub rows: Vec<(Vec<String>, f64, u64)>,
    pub complete: bool,
}

pub fn perf_mem_sections(text: &str) -> Vec<MemSection> {
    let mut out: Vec<MemSection> = Vec::new();
    // Rows follow the dots line under the column names.
    let mut in_table = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# Samples: ") {
            let ev = rest.split_once(" of event").map(|(_, e)| e.trim().trim_matches('\'').to_string()).unwrap_or_default();
            out.push(MemSection { event: ev, ..Default::default() });
            in_table = false;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# Total weight : ") {
            if let Some(s) = out.last_mut() {
                s.total_weight = rest.trim().parse().unwrap_or(0);
            }
            continue;
        }
        if line.starts_with("# ....") {
            in_table = true;
            continue;
        }
        let Some(sec) = out.last_mut() else { continue };
        if !in_table || !line.trim_start().chars().next().is_some_and(|c| c.is_ascii_digit()) {
            continue;
        }
        // Values can overflow perf's column widths; fields are separated by
        // at least two spaces and hold single spaces only.
        let fields: Vec<String> = line.trim().split("  ").map(str::trim).filter(|f| !f.is_empty()).map(String::from).collect();
        if fields.len() < 8 {
            continue;
        }
        let pct: f64 = fields[0].trim_end_matches('%').parse().unwrap_or(0.0);
        let samples: u64 = fields[1].parse().unwrap_or(0);
        sec.rows.push((fields[2..8].to_vec(), pct, samples));
    }
    for s in &mut out {
        let sum: f64 = s.rows.iter().map(|r| r.1).sum();
        s.complete = (sum - 100.0).abs() < 0.6;
    }
    out
}

/// Compare perf mem report sections with msen's `report --weight --sort
/// mem,snoop,tlb,lock,blocked,weight --format json`; returns rows compared.
pub fn check_mem_sections(name: &str, sections: &[MemSection], j: &serde_json::Value) -> usize {
    let mut n = 0;
    for sec in sections {
        let Some(ev) = j["events"].as_array().unwrap().iter().find(|e| e["name"] == sec.event.as_str()) else {
            panic!("{name}: event '{}' not in {:?}", sec.event, j["events"]);
        };
        assert_eq!(ev["period"].as_u64().unwrap(), sec.total_weight, "{name}: total weight of '{}'", sec.event);
        let ours: BTreeMap<Vec<String>, (f64, u64)> = j["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["event"] == sec.event.as_str())
            .map(|r| {
                let k = ["mem", "snoop", "tlb", "lock", "blocked"]
                    .iter()
                    .map(|f| r[*f].as_str().unwrap().to_string())
                    .chain([r["weight"].to_string()])
                    .collect();
                (k, (r["percent"].as_f64().unwrap(), r["samples"].as_u64().unwrap()))
            })
            .collect();
        for (key, pct, samples) in &sec.rows {
            let got = ours.get(key).unwrap_or_else(|| {
                panic!("{name} '{}': row {key:?} missing from msen: {:?}", sec.event, ours.keys().take(5).collect::<Vec<_>>())
            });
            assert_eq!(got.1, *samples, "{name} '{}' {key:?}: samples", sec.event);
            assert!((got.0 - pct).abs() <= 0.006, "{name} '{}' {key:?}: msen {} perf {pct}", sec.event, got.0);
            n += 1;
        }
        if sec.complete {
            assert_eq!(ours.len(), sec.rows.len(), "{name} '{}': row count", sec.event);
        }
    }
    n
}

/// The lines of one `=====`-bannered section of perf c2c's (or msen
/// false-share's) text output, up to the next blank line.
pub fn c2c_section(text: &str, title: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut on = false;
    let mut bars = 0;
    for l in text.lines() {
        if l.contains(title) {
            on = true;
            continue;
        }
        if on {
            if l.starts_with("=====") {
                bars += 1;
                if bars == 2 {
                    break;
                }
                continue;
            }
            if l.trim().is_empty() {
                break;
            }
            out.push(l.to_string());
        }
    }
    out
}
