//! `msen diff` as a CI job runs it: live recordings of a test program built
//! in variants (testdata/programs/regress.c), against stock `perf diff` on
//! the same files, and the memory comparisons on synthetic traces.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Recordings measure shares of busy loops: one at a time, on one CPU (this
/// machine's two CPUs run the same loop at different speeds), and with no
/// other test of this file running beside them (a mock test's load once
/// shifted one of twenty unchanged runs enough to be flagged).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// regress.c built as `DIR/VARIANT/regress` (one file name, as a rebuilt binary has).
fn build(dir: &Path, variant: &str, define: Option<&str>) -> PathBuf {
    let d = dir.join(variant);
    std::fs::create_dir_all(&d).unwrap();
    let mut args = vec!["-O0", "-g", "-fno-omit-frame-pointer", "-o", "regress"];
    if let Some(def) = define {
        args.push(def);
    }
    let src = program_src("regress.c");
    args.push(&src);
    cc(&args, &d);
    d.join("regress")
}

fn record(prog: &Path, out: &Path, rounds: &str, g: bool) {
    let mut args = vec!["record", "-q", "-o", out.to_str().unwrap()];
    if g {
        args.push("-g");
    }
    args.extend(["--", "taskset", "-c", "0", prog.to_str().unwrap(), rounds]);
    let o = run(&args);
    assert!(o.status.success(), "record: {}", stderr(&o));
}

fn diff(args: &[&str]) -> std::process::Output {
    let mut a = vec!["diff"];
    a.extend(args);
    run(&a)
}

fn statuses(j: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = j["events"][0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] != "unchanged")
        .map(|r| (r["symbol"].as_str().unwrap_or("").to_string(), r["status"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

fn regressed(j: &serde_json::Value) -> Vec<String> {
    statuses(j).into_iter().filter(|(_, s)| s == "regressed" || s == "new").map(|(n, _)| n).collect()
}

#[test]
fn a_function_made_twice_as_slow_in_a_rebuilt_binary_is_flagged_alone() {
    if !require_root("a_function_made_twice_as_slow_in_a_rebuilt_binary_is_flagged_alone") {
        return;
    }
    let _s = serial();
    let d = tmpdir();
    let (base, slow) = (build(d.path(), "base", None), build(d.path(), "slow", Some("-DSLOW_B")));
    let (b, n) = (d.path().join("b.msen"), d.path().join("n.msen"));
    record(&base, &b, "8", true);
    record(&slow, &n, "8", true);
    let (bs, ns) = (b.to_str().unwrap(), n.to_str().unwrap());
    // The addresses moved: matching is by name.
    let addr = |p: &Path| {
        let o = Command::new("nm").arg(p).output().unwrap();
        String::from_utf8_lossy(&o.stdout).lines().find(|l| l.ends_with(" hot_b")).unwrap().to_string()
    };
    assert_ne!(addr(&base), addr(&slow));

    let o = diff(&[bs, ns, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "a regression exits 1: {}", stderr(&o));
    let j = json(&o);
    assert_eq!(regressed(&j), ["hot_b"], "{:?}", statuses(&j));
    assert_eq!(j["failed"], true);
    let row = j["events"][0]["rows"].as_array().unwrap().iter().find(|r| r["symbol"] == "hot_b").unwrap().clone();
    // hot_b did a third of the work at baseline and half afterwards.
    let (pb, pn) = (row["base"]["percent"].as_f64().unwrap(), row["new"]["percent"].as_f64().unwrap());
    assert!((25.0..45.0).contains(&pb) && (40.0..60.0).contains(&pn), "{pb} -> {pn}");
    assert_eq!(row["keys"]["dso"], "regress");

    // Thresholds: on the function, on one that did not change, on the total.
    let code = |extra: &[&str]| {
        let mut a = vec![bs, ns];
        a.extend(extra);
        let o = diff(&a);
        (o.status.code(), stdout(&o), stderr(&o))
    };
    assert_eq!(code(&["--fail-on", "sym:hot_b>+10%"]).0, Some(1));
    assert_eq!(code(&["--fail-on", "sym:hot_b:children>+5pp@0.99"]).0, Some(1));
    assert_eq!(code(&["--fail-on", "sym:hot_a>+10%"]).0, Some(0), "hot_a's share only fell");
    assert_eq!(code(&["--fail-on", "total>+5%"]).0, Some(1), "the run took longer");
    assert_eq!(code(&["--fail-on", "total>+500%"]).0, Some(0));
    assert_eq!(code(&["--fail-on", "sym:hot_*>+50pp"]).0, Some(0));
    let (c, _, e) = code(&["--fail-on", "sym:no_such_function>+1%"]);
    assert_eq!(c, Some(2));
    assert!(e.contains("names no row") && e.contains("msen report --sort dso,sym"), "{e}");

    // Every output names the regression.
    let (c, md, _) = code(&["--format", "markdown"]);
    assert_eq!(c, Some(1));
    assert!(md.contains("regression") && md.contains("`[.] hot_b`") && md.contains("| regressed |"), "{md}");
    let (_, gh, _) = code(&["--format", "github"]);
    let err: Vec<&str> = gh.lines().filter(|l| l.starts_with("::error title=msen diff%3A regression::")).collect();
    assert_eq!(err.len(), 1, "{gh}");
    assert!(err[0].contains("hot_b") && err[0].contains("%25"), "percent signs are escaped: {gh}");
    let (_, xml, _) = code(&["--format", "junit"]);
    let py = "import sys, xml.etree.ElementTree as E; r = E.fromstring(sys.stdin.read()); \
              f = [c.get('name') for c in r.iter('testcase') if c.find('failure') is not None]; print(r.get('failures'), f)";
    let mut child =
        Command::new("python3").args(["-c", py]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), xml.as_bytes()).unwrap();
    let parsed = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(parsed.trim(), "1 ['regress [.] hot_b']", "{xml}");
    let (_, csv, _) = code(&["--format", "csv", "--changed"]);
    assert!(csv.lines().next().unwrap().starts_with("event,dso,sym,base_samples"), "{csv}");
    assert!(csv.lines().any(|l| l.contains("hot_b") && l.contains(",regressed,")), "{csv}");

    // The differential flame graph: an SVG with the function in it.
    let svg = d.path().join("diff.svg");
    let (c, _, e) = code(&["--flamegraph", svg.to_str().unwrap()]);
    assert_eq!(c, Some(1), "{e}");
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.starts_with("<?xml") && s.contains("hot_b") && s.contains("</svg>"), "{}", &s[..200.min(s.len())]);

    // Repeated runs: the run-to-run variance, the same verdict.
    let mut runs = vec![];
    for (i, p) in [&base, &base, &slow, &slow].iter().enumerate() {
        let out = d.path().join(format!("r{i}.msen"));
        record(p, &out, "8", false);
        runs.push(out.to_str().unwrap().to_string());
    }
    // Options come before `--`: everything after it is a new run.
    let o = diff(&["--format", "json", "--no-children", bs, &runs[0], &runs[1], "--", ns, &runs[2], &runs[3]]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(regressed(&json(&o)), ["hot_b"]);
}

#[test]
fn an_unchanged_program_rarely_flags_anything() {
    if !require_root("an_unchanged_program_rarely_flags_anything") {
        return;
    }
    let _s = serial();
    let d = tmpdir();
    let base = build(d.path(), "base", None);
    let cfg = msen::analyze::report::ReportConfig {
        sort: vec![msen::analyze::report::SortKey::Dso, msen::analyze::report::SortKey::Sym],
        ..Default::default()
    };
    let profiles: Vec<msen::analyze::diff::RunProfile> = (0..20)
        .map(|i| {
            let out = d.path().join(format!("u{i}.msen"));
            record(&base, &out, "6", false);
            let l = msen::analyze::Loaded::open(&out, &Default::default()).unwrap();
            msen::analyze::diff::profile(&l, &cfg, out.to_str().unwrap(), true).unwrap()
        })
        .collect();
    let dc = msen::analyze::diff::DiffConfig::default();
    let mut flagged = vec![];
    let mut pairs = 0;
    for i in 0..profiles.len() {
        for j in i + 1..profiles.len() {
            pairs += 1;
            let r = msen::analyze::diff::compare(&profiles[i..=i], &profiles[j..=j], &cfg.sort, &dc).unwrap();
            let changed: Vec<String> =
                r.events[0].rows.iter().filter(|x| x.status != msen::analyze::diff::Status::Unchanged).map(|x| x.keys.join(" ")).collect();
            if !changed.is_empty() {
                flagged.push((i, j, changed));
            }
        }
    }
    assert_eq!(pairs, 190);
    assert!(flagged.len() <= pairs / 20, "{} of {pairs} pairs flagged something: {flagged:?}", flagged.len());
}

#[test]
fn time_moved_from_a_caller_into_its_callee_is_a_shift() {
    if !require_root("time_moved_from_a_caller_into_its_callee_is_a_shift") {
        return;
    }
    let _s = serial();
    let d = tmpdir();
    let (base, moved) = (build(d.path(), "base", None), build(d.path(), "moved", Some("-DMOVED")));
    let (b, n) = (d.path().join("b.msen"), d.path().join("n.msen"));
    record(&base, &b, "8", true);
    record(&moved, &n, "8", true);
    let o = diff(&[b.to_str().unwrap(), n.to_str().unwrap(), "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "a shift is not a regression: {}", stdout(&o));
    let j = json(&o);
    let st = statuses(&j);
    assert!(st.contains(&("inner".into(), "shift".into())) && st.contains(&("outer".into(), "shift".into())), "{st:?}");
    let inner = j["events"][0]["rows"].as_array().unwrap().iter().find(|r| r["symbol"] == "inner").unwrap().clone();
    assert_eq!(inner["peer"], "outer");
    // The same pair without call chains cannot tell: inner regressed.
    let o = diff(&[b.to_str().unwrap(), n.to_str().unwrap(), "--no-children", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
}

/// `perf diff -t ';'` rows: (dso, symbol) -> the computed column.
fn perf_diff(base: &Path, new: &Path, compute: &str) -> Vec<((String, String), String)> {
    let o = Command::new("perf").args(["diff", "-t", ";", "-c", compute, base.to_str().unwrap(), new.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split(';').map(str::trim).collect();
            (f.len() == 4 && !f[1].is_empty()).then(|| ((f[2].to_string(), f[3].to_string()), f[1].to_string()))
        })
        .collect()
}

#[test]
fn perf_diff_columns_are_the_same() {
    if !require_root("perf_diff_columns_are_the_same") || !have_perf() {
        return;
    }
    let _s = serial();
    let d = tmpdir();
    let (base, slow) = (build(d.path(), "base", None), build(d.path(), "slow", Some("-DSLOW_B")));
    let (b, n) = (d.path().join("b.data"), d.path().join("n.data"));
    for (p, out) in [(&base, &b), (&slow, &n)] {
        let st = Command::new("perf")
            .args(["record", "-q", "-e", "cpu-clock", "-F", "4000", "-o", out.to_str().unwrap(), "--", "taskset", "-c", "0"])
            .arg(p)
            .arg("6")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    }
    let ours = |compute: &str| -> std::collections::HashMap<(String, String), serde_json::Value> {
        let o = diff(&[b.to_str().unwrap(), n.to_str().unwrap(), "-c", compute, "--format", "json"]);
        assert!(o.status.code() == Some(0) || o.status.code() == Some(1), "{}", stderr(&o));
        json(&o)["events"][0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| ((r["keys"]["dso"].as_str().unwrap().into(), r["keys"]["sym"].as_str().unwrap().into()), r.clone()))
            .collect()
    };
    let num = |s: &str| s.trim_end_matches('%').trim_start_matches('+').parse::<f64>().unwrap();
    let m = ours("delta");
    let theirs = perf_diff(&b, &n, "delta");
    assert!(theirs.len() >= 3, "{theirs:?}");
    for f in ["hot_a", "hot_b", "inner", "outer"] {
        assert!(theirs.iter().any(|(k, _)| k.1 == format!("[.] {f}")) && m.contains_key(&("regress".into(), format!("[.] {f}"))), "{f}");
    }
    for (k, v) in &theirs {
        // A kernel address where kallsyms has aliases may be named by the
        // other alias (perf's pick among equals): rows of one or two
        // samples; the program's rows must all be there.
        let Some(r) = m.get(k) else {
            assert!(k.0 == "[kernel.kallsyms]" && num(v).abs() < 0.5, "perf diff's row {k:?} is missing");
            continue;
        };
        let ours = r["self"]["delta"].as_f64().unwrap();
        assert!((ours - num(v)).abs() <= 0.006, "{k:?}: delta {ours} vs perf {v}");
    }
    let m = ours("ratio");
    for (k, v) in perf_diff(&b, &n, "ratio").iter().filter(|(k, v)| v != "N/A" && m.contains_key(k)) {
        let ours = m[k]["ratio"].as_f64().unwrap_or_else(|| panic!("{k:?}: no ratio"));
        assert!((ours - num(v)).abs() <= 1e-6 * ours.max(1.0), "{k:?}: ratio {ours} vs perf {v}");
    }
    let m = ours("wdiff:1,2");
    for (k, v) in perf_diff(&b, &n, "wdiff:1,2").iter().filter(|(k, v)| v != "N/A" && m.contains_key(k)) {
        assert_eq!(m[k]["wdiff"].as_str(), Some(v.as_str()), "{k:?}: wdiff");
    }
}

#[test]
fn memory_comparisons_find_new_contention_and_remote_access() {
    let _s = serial();
    let d = tmpdir();
    let mock = |scenario: &str, seed: &str| {
        let p = d.path().join(format!("{scenario}-{seed}.msen"));
        let o = run(&["record", "--mock", scenario, "--rounds", "2000", "--seed", seed, "-q", "-o", p.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        p.to_str().unwrap().to_string()
    };
    let (fs1, fs2, st) = (mock("false-sharing", "1"), mock("false-sharing", "2"), mock("streaming", "1"));
    let (cl, rd1, rd2) = (mock("clean", "1"), mock("remote-dram", "1"), mock("remote-dram", "2"));
    // The same contention, another seed: nothing to report.
    let o = diff(&["--false-share", &fs1, &fs2]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // From a streaming program to one that false-shares: the line's share grew.
    let o = diff(&["--false-share", &st, &fs1, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let j = json(&o);
    assert_eq!(j["keys"][0], "cache_line");
    let rows = j["events"][0]["rows"].as_array().unwrap();
    let grown: Vec<&str> = rows
        .iter()
        .filter(|r| r["status"] == "regressed" || r["status"] == "new")
        .map(|r| r["keys"]["cache_line"].as_str().unwrap())
        .collect();
    assert!(!grown.is_empty() && grown.iter().all(|l| l.starts_with("[heap]")), "{grown:?}");
    // Remote accesses appear where there were none.
    let o = diff(&["--numa", &cl, &rd1, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let j = json(&o);
    assert!(j["events"][0]["rows"].as_array().unwrap().iter().any(|r| r["status"] == "new"), "{j:#}");
    assert_eq!(diff(&["--numa", &rd1, &rd2]).status.code(), Some(0));
    // Thresholds on memory comparisons are on the share itself.
    let o = diff(&["--numa", &cl, &rd1, "--fail-on", "sym:x>+1pp"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("self>+1pp"), "{}", stderr(&o));
}

#[test]
fn bad_arguments_and_inputs_are_clear_errors() {
    let _s = serial();
    let d = tmpdir();
    let t = d.path().join("t.msen");
    assert!(run(&["record", "--mock", "mixed", "--rounds", "200", "-q", "-o", t.to_str().unwrap()]).status.success());
    let ts = t.to_str().unwrap();
    let not_trace = d.path().join("x.txt");
    std::fs::write(&not_trace, "hello").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![ts], "diff takes BASE NEW"),
        (vec![ts, ts, ts], "diff takes BASE NEW"),
        (vec![ts, "/nonexistent.msen"], "/nonexistent.msen"),
        (vec![ts, not_trace.to_str().unwrap()], "x.txt"),
        (vec![ts, ts, "--fail-on", "self>2"], "needs a unit"),
        (vec![ts, ts, "--fail-on", "cost>+1pp"], "not self, children, total"),
        (vec![ts, ts, "--fail-on", "total>+1pp"], "give its change in %"),
        (vec![ts, ts, "--fail-on", "comm:x>+1pp"], "which --sort does not have"),
        (vec![ts, ts, "-c", "bogus"], "delta-abs, delta, ratio or wdiff"),
        (vec![ts, ts, "-c", "wdiff:1"], "two weights"),
        (vec![ts, ts, "--confidence", "2"], "between 0 and 1"),
        (vec![ts, ts, "--sort", "nope"], "unknown sort key"),
        (vec![ts, ts, "--per-event", "instructions"], "no samples of event 'instructions'"),
        (vec![ts, ts, "--work-base", "1", "--work-new", "1,2"], "one count per trace"),
        (vec![ts, ts, "--work-base", "0", "--work-new", "1"], "positive"),
        (vec![ts, ts, "--normalize", "per-second", "--fail-on", "self>+1pp"], "give the change in %"),
    ];
    for (args, want) in cases {
        let o = diff(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{args:?}: no partial output");
    }
    // A trace against itself: nothing changed, exit 0, in every normalisation.
    for extra in [&[][..], &["--normalize", "per-second"], &["--work-base", "5", "--work-new", "5"]] {
        let mut a = vec![ts, ts];
        a.extend(extra);
        let o = diff(&a);
        assert_eq!(o.status.code(), Some(0), "{extra:?}: {}", stdout(&o));
        let out = stdout(&o);
        assert!(out.contains("0 regressions, 0 ") && out.contains(", 0 cost shifts"), "{out}");
    }
}
