//! `msen export --pprof / --firefox / --speedscope`, checked with the real
//! readers: `go tool pprof` (Debian's golang-go), the speedscope web app
//! (its npm package) in headless Chromium, and the Firefox Profiler's
//! processed format by its structure. scripts/setup.sh installs them; a
//! test without its reader says so and skips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// regress.c recorded with call chains, on one CPU.
fn recording(dir: &Path) -> PathBuf {
    cc(&["-O0", "-g", "-fno-omit-frame-pointer", "-o", "regress", &program_src("regress.c")], dir);
    let out = dir.join("r.msen");
    let o =
        run(&["record", "-q", "-g", "-o", out.to_str().unwrap(), "--", "taskset", "-c", "0", dir.join("regress").to_str().unwrap(), "8"]);
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

/// `msen report --sort sym` shares: name -> (self %, children %).
fn report_shares(t: &Path, extra: &[&str]) -> BTreeMap<String, (f64, f64)> {
    let mut a = vec!["report", "--sort", "sym", "--format", "json", "-i", t.to_str().unwrap()];
    a.extend(extra);
    let j = json(&run(&a));
    j["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["sym"].as_str().unwrap().to_string(), (r["percent"].as_f64().unwrap(), r["children_percent"].as_f64().unwrap_or(0.0))))
        .collect()
}

fn export(t: &Path, args: &[&str]) -> std::process::Output {
    let mut a = vec!["export", "-i", t.to_str().unwrap()];
    a.extend(args);
    run(&a)
}

fn tool(name: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {name}")]).output().is_ok_and(|o| o.status.success())
}

/// Where scripts/setup.sh installs the speedscope app and playwright-core.
fn viewers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/viewers/node_modules")
}

#[test]
fn pprof_top_equals_report_self_and_children() {
    if !require_root("pprof_top_equals_report_self_and_children") {
        return;
    }
    if !tool("go") {
        eprintln!("SKIP pprof_top_equals_report_self_and_children: no go (apt-get install golang-go; scripts/setup.sh does)");
        return;
    }
    let _s = serial();
    let d = tmpdir();
    let t = recording(d.path());
    let pb = d.path().join("r.pb.gz");
    let o = export(&t, &["--pprof", pb.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("pprof"), "{}", stderr(&o));
    let o = Command::new("go").args(["tool", "pprof", "-top", "-nodecount=1000"]).arg(&pb).output().unwrap();
    assert!(o.status.success(), "go tool pprof: {}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(text.contains("Type: cpu-clock"), "{text}");
    // "flat flat% sum% cum cum% name" rows.
    let mut pprof: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() >= 6 && f[1].ends_with('%') && f[4].ends_with('%') {
            let pct = |s: &str| s.trim_end_matches('%').parse::<f64>().unwrap();
            pprof.insert(f[5..].join(" "), (pct(f[1]), pct(f[4])));
        }
    }
    let ours = report_shares(&t, &[]);
    let mut checked = 0;
    for (sym, (selfp, children)) in &ours {
        let name = sym.as_str();
        if *children < 1.0 {
            continue;
        }
        let (flat, cum) = pprof.get(name).unwrap_or_else(|| panic!("{name} is not in pprof's top:\n{text}"));
        assert!((flat - selfp).abs() <= 0.011 && (cum - children).abs() <= 0.011, "{name}: pprof {flat}/{cum}, report {selfp}/{children}");
        checked += 1;
    }
    assert!(checked >= 5, "{ours:?}");
    // -traces: every sample's stack with its labels.
    let o = Command::new("go").args(["tool", "pprof", "-traces"]).arg(&pb).output().unwrap();
    let traces = String::from_utf8_lossy(&o.stdout);
    let label = |k: &str, v: &str| traces.lines().any(|l| l.trim_start().starts_with(&format!("{k}:")) && l.contains(v));
    assert!(label("comm", "regress") && label("pid", "") && label("tid", "") && traces.contains("hot_b"), "{traces}");
    // Locations carry their mapping: the binary's build-id is in the file.
    let o = Command::new("go").args(["tool", "pprof", "-raw"]).arg(&pb).output().unwrap();
    let raw = String::from_utf8_lossy(&o.stdout);
    assert!(raw.lines().any(|l| l.contains("/regress") && l.contains("0x")), "{raw}");
}

#[test]
fn speedscope_loads_in_the_real_app() {
    if !require_root("speedscope_loads_in_the_real_app") {
        return;
    }
    let nm = viewers_dir();
    let app = nm.join("speedscope/dist/release");
    if !app.join("index.html").exists() || !nm.join("playwright-core").exists() || !Path::new("/usr/bin/chromium").exists() {
        eprintln!("SKIP speedscope_loads_in_the_real_app: needs chromium and target/viewers (scripts/setup.sh installs them)");
        return;
    }
    let _s = serial();
    let d = tmpdir();
    let t = recording(d.path());
    let ss = d.path().join("r.speedscope.json");
    let o = export(&t, &["--speedscope", ss.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The schema the app ships.
    let py =
        "import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))); print('valid')";
    let o = Command::new("python3").args(["-c", py]).arg(&ss).arg(app.join("file-format-schema.json")).output().unwrap();
    assert!(o.status.success() && stdout(&o).contains("valid"), "{}{}", stdout(&o), stderr(&o));
    // The app, served on loopback, in headless Chromium; a screenshot is kept.
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/viewers/speedscope.png");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/viewers/speedscope.js");
    let o = Command::new("node").arg(script).arg(&app).arg(&ss).arg(&shot).env("NODE_PATH", &nm).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let page = json(&o);
    assert_eq!(page["errors"], serde_json::json!([]));
    assert_eq!(page["title"], "r.msen - speedscope");
    let body = page["body"].as_str().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&ss).unwrap()).unwrap();
    let name = doc["profiles"][0]["name"].as_str().unwrap();
    assert!(name.starts_with("regress (pid ") && name.ends_with(" cpu-clock"), "{name}");
    assert!(body.contains(name), "the thread's profile is shown: {body}");
    // The sandwich view's total for hot_b is report's children share (the
    // app rounds to whole percent), and its weight is the period in ms.
    let ours = report_shares(&t, &[]);
    let (_, children) = ours["hot_b"];
    let lines: Vec<&str> = body.lines().map(str::trim).collect();
    let at = lines.iter().position(|l| *l == "hot_b").expect("a hot_b row");
    let total = lines[at - 2];
    assert!(total.contains(&format!("({:.0}%)", children)), "hot_b total {total}, report {children}");
    let weight: u64 = doc["profiles"][0]["weights"].as_array().unwrap().iter().map(|w| w.as_u64().unwrap()).sum();
    let period = json(&run(&["report", "--format", "json", "-i", t.to_str().unwrap()]))["events"][0]["period"].as_u64().unwrap();
    assert_eq!(weight, period, "the weights are the samples' periods");
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "screenshot at {}", shot.display());
}

#[test]
fn firefox_profile_has_every_thread_and_sample() {
    if !require_root("firefox_profile_has_every_thread_and_sample") {
        return;
    }
    let _s = serial();
    let d = tmpdir();
    let t = recording(d.path());
    let ff = d.path().join("r.json.gz");
    let o = export(&t, &["--firefox", ff.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(std::fs::File::open(&ff).unwrap()), &mut text).unwrap();
    let p: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(p["meta"]["product"], "r.msen");
    let cats: Vec<&str> = p["meta"]["categories"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(cats.contains(&"Kernel") && cats.contains(&"User"), "{cats:?}");
    // Threads and samples as the trace has them.
    let s = stdout(&run(&["script", "--format", "jsonl", "-i", t.to_str().unwrap()]));
    let mut by_thread: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for l in s.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        *by_thread.entry((v["pid"].as_u64().unwrap(), v["tid"].as_u64().unwrap())).or_default() += 1;
    }
    let threads = p["threads"].as_array().unwrap();
    let ours: BTreeMap<(u64, u64), u64> = threads
        .iter()
        .map(|th| {
            let pid = th["pid"].as_str().unwrap().parse().unwrap();
            let tid = th["tid"].as_u64().or_else(|| th["tid"].as_str().and_then(|s| s.parse().ok())).unwrap();
            ((pid, tid), th["samples"]["length"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(ours, by_thread);
    let main = threads.iter().find(|th| th["name"] == "regress").expect("a thread named regress");
    assert!(main["samples"]["length"].as_u64().unwrap() > 500);
    // The stacks name the functions: hot_b is a function of the main thread.
    let names = main["stringArray"].as_array().or(p["shared"]["stringArray"].as_array()).unwrap();
    assert!(names.iter().any(|n| n == "hot_b"), "{names:?}");
}

#[test]
fn exports_apply_the_filters_and_refuse_to_write_nothing() {
    let d = tmpdir();
    let t = d.path().join("m.msen");
    assert!(run(&["record", "--mock", "mixed", "--rounds", "300", "-q", "-o", t.to_str().unwrap()]).status.success());
    let pb = d.path().join("all.pb.gz");
    let o = export(&t, &["--pprof", pb.to_str().unwrap(), "--speedscope", d.path().join("all.json").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The same bytes at any thread count.
    for (i, threads) in ["1", "2"].iter().enumerate() {
        let o = run(&[
            "--threads",
            threads,
            "export",
            "-i",
            t.to_str().unwrap(),
            "--pprof",
            d.path().join(format!("t{i}.pb.gz")).to_str().unwrap(),
            "--firefox",
            d.path().join(format!("t{i}.json")).to_str().unwrap(),
            "--speedscope",
            d.path().join(format!("t{i}.ss.json")).to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    for f in ["pb.gz", "json", "ss.json"] {
        let r = |i: u32| std::fs::read(d.path().join(format!("t{i}.{f}"))).unwrap();
        assert!(r(0) == r(1), "{f} differs between 1 and 2 threads");
    }
    // The first half of the capture: as many samples as report counts there.
    let ss = d.path().join("half.json");
    let o = export(&t, &["--speedscope", ss.to_str().unwrap(), "--time", "50%/1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&ss).unwrap()).unwrap();
    let n: usize = doc["profiles"].as_array().unwrap().iter().map(|p| p["samples"].as_array().unwrap().len()).sum();
    let j = json(&run(&["report", "--format", "json", "--sort", "comm", "--time", "50%/1", "-i", t.to_str().unwrap()]));
    let want: u64 = j["rows"].as_array().unwrap().iter().map(|r| r["samples"].as_u64().unwrap()).sum();
    assert_eq!(n as u64, want);
    // A filter that keeps nothing, and no output at all: errors, no file.
    let none = d.path().join("none.pb.gz");
    let o = export(&t, &["--pprof", none.to_str().unwrap(), "--comm", "no-such-command"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("that the filters keep"), "{}", stderr(&o));
    assert!(!none.exists());
    let o = export(&t, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--pprof, --firefox, --speedscope, --clickhouse or --parquet"), "{}", stderr(&o));
    let o = export(&t, &["--perf-data", d.path().join("x.data").to_str().unwrap(), "--comm", "x"]);
    assert_eq!(o.status.code(), Some(2));
    // An empty trace.
    let empty = d.path().join("empty.msen");
    assert!(run(&["record", "--mock", "mixed", "--rounds", "0", "-q", "-o", empty.to_str().unwrap()]).status.success());
    let o = export(&empty, &["--speedscope", d.path().join("e.json").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("has no samples"), "{}", stderr(&o));
}
