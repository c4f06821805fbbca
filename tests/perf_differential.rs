//! Differential tests against stock perf on this machine: perf records the
//! example workload in several modes, then perf's own report and msen read
//! the same perf.data and must agree (samples per event, record counts,
//! shares by command and shared object). Needs root and linux-perf.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::perfout::*;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn perf_out(args: &[&str]) -> String {
    let o = Command::new("perf").args(args).stderr(Stdio::null()).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// perf's and msen's views of one perf.data must agree.
fn compare(name: &str, data: &Path) {
    let d = data.to_str().unwrap();
    let (total, per_event) = perf_stats(&perf_out(&["report", "--stats", "-i", d]));
    assert!(total.get("SAMPLE").copied().unwrap_or(0) > 50, "{name}: perf saw too few samples: {total:?}");
    let j = json(&run(&["info", "--format", "json", d]));
    for kind in ["SAMPLE", "LOST", "MMAP", "MMAP2", "COMM", "FORK", "EXIT"] {
        assert_eq!(j["record_counts"][kind].as_u64().unwrap_or(0), total.get(kind).copied().unwrap_or(0), "{name}: {kind} records");
    }
    for (ev, n) in &per_event {
        let got: u64 =
            j["events"].as_array().unwrap().iter().filter(|e| e["name"] == ev.as_str()).map(|e| e["samples"].as_u64().unwrap()).sum();
        assert_eq!(got, *n, "{name}: samples of '{ev}'");
    }
    let text = perf_out(&["report", "--stdio", "--no-children", "--sort", "comm,dso", "-i", d]);
    let sections = perf_report_sections(&text);
    let o = run(&["report", "--format", "json", "--no-children", "--sort", "comm,dso", d]);
    assert!(o.status.success(), "{name}: {}", stderr(&o));
    assert!(check_sections(name, &sections, &json(&o)) > 0, "{name}: no report section compared:\n{text}");
    // Importing gives the same answer as reading the perf.data directly.
    let conv = data.with_extension("msen");
    let o = run(&["import", d, "-o", conv.to_str().unwrap()]);
    assert!(o.status.success(), "{name}: {}", stderr(&o));
    let direct = stdout(&run(&["report", "--format", "json", d]));
    let imported = stdout(&run(&["report", "--format", "json", conv.to_str().unwrap()]));
    assert_eq!(direct, imported, "{name}: import changed the answer");
}

fn record_with_perf(args: &[&str], out: &Path) {
    let st = Command::new("perf").arg("record").arg("-q").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    assert!(st.success(), "perf record {args:?} failed");
    assert!(out.exists());
}

#[test]
fn stock_perf_recordings_in_every_mode_read_the_same() {
    if !have_perf() || !require_root("stock_perf_recordings_in_every_mode_read_the_same") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tmpdir();
    let hot = build_program("hot", d.path());
    let h = hot.to_str().unwrap();
    let p = |n: &str| d.path().join(n);

    let fp = p("fp.data");
    record_with_perf(&["-e", "cpu-clock", "-g", "-F", "2000", "-o", fp.to_str().unwrap(), "--", h, "0.5"], &fp);
    compare("cpu-clock -g", &fp);
    // The build-ids perf stored match the binaries here: symbols resolve.
    let j = json(&run(&["report", "--format", "json", "--no-children", "--sort", "sym", fp.to_str().unwrap()]));
    assert_eq!(j["rows"][0]["sym"], "hot_loop", "{j}");
    let info = json(&run(&["info", "--format", "json", fp.to_str().unwrap()]));
    let bid = info["capture_end"]["build_ids"].as_array().unwrap().iter().find(|b| b["path"] == h).expect("build-id of hot")["build_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(Some(bid), msen::symbolize::elf::build_id(&hot), "build-id read from perf.data");

    let dw = p("dwarf.data");
    record_with_perf(&["-e", "cpu-clock", "--call-graph", "dwarf", "-F", "500", "-o", dw.to_str().unwrap(), "--", h, "0.4"], &dw);
    compare("--call-graph dwarf", &dw);

    let z = p("z.data");
    record_with_perf(&["-z", "-e", "cpu-clock", "-F", "2000", "-o", z.to_str().unwrap(), "--", h, "0.5"], &z);
    compare("-z", &z);

    let pipe = p("pipe.data");
    let f = std::fs::File::create(&pipe).unwrap();
    let st = Command::new("perf")
        .args(["record", "-q", "-e", "cpu-clock", "-F", "2000", "-o", "-", "--", h, "0.5"])
        .stdout(f)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    compare("pipe mode", &pipe);

    let mut kid = Command::new(&hot).arg("--forever").stdout(Stdio::null()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let a = p("a.data");
    record_with_perf(&["-a", "-e", "cpu-clock", "-F", "2000", "-o", a.to_str().unwrap(), "--", "sleep", "0.5"], &a);
    let pp = p("p.data");
    let pid = kid.id().to_string();
    record_with_perf(&["-p", &pid, "-e", "cpu-clock", "-F", "2000", "-o", pp.to_str().unwrap(), "--", "sleep", "0.5"], &pp);
    let _ = kid.kill();
    let _ = kid.wait();
    compare("-a", &a);
    compare("-p", &pp);
}

/// What msen records, exported to perf.data, reads the same in stock perf.
#[test]
fn msen_capture_exported_to_perf_data_reads_the_same_in_perf() {
    if !have_perf() || !require_root("msen_capture_exported_to_perf_data_reads_the_same_in_perf") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tmpdir();
    let hot = build_program("hot", d.path());
    let t = d.path().join("m.msen");
    let o = run(&["record", "-q", "-g", "-F", "2000", "-o", t.to_str().unwrap(), "--", hot.to_str().unwrap(), "0.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pd = d.path().join("m.data");
    let o = run(&["export", "-i", t.to_str().unwrap(), "--perf-data", pd.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    compare("msen record -> export", &pd);
    // And the export answers like the trace it came from.
    let a = json(&run(&["report", "--format", "json", "--sort", "comm,dso,sym", t.to_str().unwrap()]));
    let b = json(&run(&["report", "--format", "json", "--sort", "comm,dso,sym", pd.to_str().unwrap()]));
    assert_eq!(a["rows"], b["rows"]);
    // perf itself names the kernel rows (the export carries the kernel
    // mapping) and lists every DSO's build-id, the kernel's and vdso's too.
    let ids = perf_out(&["buildid-list", "-i", pd.to_str().unwrap()]);
    for want in ["[kernel.kallsyms]", "/hot", "libc.so.6"] {
        assert!(ids.lines().any(|l| l.ends_with(want) && l.len() > want.len() + 40), "buildid-list lacks {want}:\n{ids}");
    }
    let theirs = perf_out(&["report", "--stdio", "-q", "--no-children", "-g", "none", "--sort", "dso,sym", "-i", pd.to_str().unwrap()]);
    let ours = stdout(&run(&["report", "--no-children", "-g", "none", "--sort", "dso,sym", "--full-names", t.to_str().unwrap()]));
    let rows = |text: &str| -> Vec<String> {
        let mut v: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains("%"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        v.sort();
        v
    };
    let (theirs, ours) = (rows(&theirs), rows(&ours));
    assert!(!theirs.iter().any(|r| r.contains("[unknown]")), "perf has unknown rows on the export:\n{theirs:#?}");
    assert_eq!(theirs, ours, "perf report on the export differs from msen report on the trace");
}

/// `--sort srcline` where there is no line information prints what perf 6.1
/// prints: `??:0` for user code, `function+offset` for the kernel.
#[test]
fn srcline_without_debug_info_matches_perf() {
    if !have_perf() || !require_root("srcline_without_debug_info_matches_perf") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tmpdir();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/programs/hot.c");
    let bin = d.path().join("hot_nodbg");
    assert!(Command::new("cc").args(["-O2", "-fno-omit-frame-pointer", "-o"]).arg(&bin).arg(&src).status().unwrap().success());
    let data = d.path().join("p.data");
    record_with_perf(&["-F", "2000", "-o", data.to_str().unwrap(), "--", bin.to_str().unwrap(), "0.5"], &data);
    let rows = |text: &str| -> std::collections::BTreeSet<String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && l.split_whitespace().next().is_some_and(|p| p.ends_with('%')))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let theirs = rows(&perf_out(&["report", "--stdio", "--no-children", "--sort", "srcline", "-i", data.to_str().unwrap()]));
    let ours = rows(&stdout(&run(&["report", "--no-children", "--sort", "srcline", "-i", data.to_str().unwrap()])));
    assert!(theirs.iter().any(|r| r.contains("??:0")), "{theirs:?}");
    assert_eq!(ours, theirs);
    // [vdso] code is never given to addr2line: perf prints function+offset.
    // Nor is anything found in a PLT (clock_gettime's stub, sampled in every
    // run): perf prints its symbol+offset there too. Which symbol is perf's
    // artifact: _init has size 0, perf stretches it to the next symbol over
    // the whole PLT, and its tree lookup may meet _init before the
    // synthesized clock_gettime@plt. So PLT rows are compared by form (the
    // symbol+offset, never `??:0`) and everything else exactly.
    let clock = build_program("clock", d.path());
    let data = d.path().join("c.data");
    record_with_perf(&["-F", "2000", "-o", data.to_str().unwrap(), "--", clock.to_str().unwrap(), "0.5"], &data);
    // PLT rows from a (sym, srcline) view; the comparison itself is on the
    // srcline view (perf cuts srclines it computes late, the kernel's, to
    // the column's width when another column precedes them).
    let plt_rows = |rows: std::collections::BTreeSet<String>| -> Vec<String> {
        rows.into_iter()
            .filter(|r| {
                let sym = r.split(' ').nth(2).unwrap_or("");
                sym == "_init" || sym.ends_with("@plt")
            })
            .collect()
    };
    let d_ = data.to_str().unwrap();
    let their_plt = plt_rows(rows(&perf_out(&["report", "--stdio", "--no-children", "--sort", "sym,srcline", "-i", d_])));
    let our_plt = plt_rows(rows(&stdout(&run(&["report", "--no-children", "--sort", "sym,srcline", "-i", d_]))));
    // "pct [.] sym srcline" as the srcline view prints it: "pct srcline".
    let as_srcline = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|r| {
                let f: Vec<&str> = r.split(' ').collect();
                format!("{} {}", f[0], f.get(3).copied().unwrap_or(""))
            })
            .collect()
    };
    let mut theirs = rows(&perf_out(&["report", "--stdio", "--no-children", "--sort", "srcline", "-i", d_]));
    let mut ours = rows(&stdout(&run(&["report", "--no-children", "--sort", "srcline", "-i", d_])));
    for r in as_srcline(&their_plt) {
        assert!(theirs.remove(&r), "{r} in perf's srcline view: {theirs:?}");
    }
    for r in as_srcline(&our_plt) {
        assert!(ours.remove(&r), "{r} in msen's srcline view: {ours:?}");
    }
    assert!(theirs.iter().any(|r| r.contains("clock_gettime")), "{theirs:?}");
    assert_eq!(ours, theirs);
    for r in their_plt.iter().chain(&our_plt) {
        let f: Vec<&str> = r.split(' ').collect();
        assert!(f.len() == 4 && f[3].starts_with(&format!("{}+", f[2])), "a PLT row prints its symbol+offset: {r}");
    }
    let pct = |v: &[String]| v.iter().map(|r| r.split(' ').next().unwrap_or("").trim_end_matches('%').parse::<f64>().unwrap()).sum::<f64>();
    assert!((pct(&their_plt) - pct(&our_plt)).abs() < 0.015, "PLT shares differ: {their_plt:?} {our_plt:?}");
}

/// The top rows of a table report, as (overhead[, children], dso, sym).
fn top_rows(text: &str, n: usize) -> Vec<(Vec<f64>, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains('%'))
        .filter(|l| !l.trim_start().starts_with('|') && !l.trim_start().starts_with("--"))
        .take(n)
        .map(|l| {
            let mut shares = Vec::new();
            let mut rest = l.trim_start();
            while let Some((num, tail)) = rest.split_once('%') {
                match num.trim().parse::<f64>() {
                    Ok(v) => {
                        shares.push(v);
                        rest = tail.trim_start();
                    }
                    Err(_) => break,
                }
            }
            (shares, rest.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .collect()
}

/// A realistic system-wide capture: a compiler, an interpreter and a shell
/// pipeline spawning processes, with call chains. perf report and msen name
/// the same top 50 rows (kernel, libc internals and aliases, C++ names,
/// [unknown]) with the same shares, with and without children; the same
/// after `msen import`.
#[test]
fn system_wide_capture_top_rows_match_perf() {
    if !require_root("system_wide_capture_top_rows_match_perf") || !have_perf() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tmpdir();
    let src = dir.path().join("big.c");
    let mut c = String::new();
    for i in 0..1500 {
        c.push_str(&format!("int f{i}(int x){{ int s=0; for(int j=0;j<x;j++) s+=j*{i}^(s>>3); return s; }}\n"));
    }
    std::fs::write(&src, c).unwrap();
    let script = format!(
        "gcc -O2 -c {src} -o /dev/null & \
         python3 -c 'import json; d=[{{\"a\":i,\"b\":str(i)}} for i in range(300000)]; json.loads(json.dumps(d))' & \
         for i in $(seq 150); do echo $i | sort | wc -l >/dev/null; done & wait",
        src = src.display()
    );
    let data = dir.path().join("sys.data");
    let st = Command::new("perf")
        .args(["record", "-q", "-a", "-g", "-o", data.to_str().unwrap(), "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "perf record failed");
    let d = data.to_str().unwrap();
    let conv = dir.path().join("sys.msen");
    let o = run(&["import", d, "-o", conv.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for mode in ["--no-children", "--children"] {
        let theirs = top_rows(&perf_out(&["report", "--stdio", mode, "-g", "none", "--sort", "dso,sym", "-i", d]), 50);
        assert!(theirs.len() >= 30, "perf gave too few rows:\n{theirs:?}");
        for input in [d, conv.to_str().unwrap()] {
            let o = run(&["report", mode, "-g", "none", "--sort", "dso,sym", "--full-names", input]);
            assert!(o.status.success(), "{}", stderr(&o));
            let ours = top_rows(&stdout(&o), 50);
            // The same names, each share within 0.05 percentage points (rows
            // of near-equal shares may swap across the cut at row 50).
            let norm = |n: &str| {
                // perf picks the [k]/[.] mark of an [unknown] row from the
                // first sample that made it.
                if n.starts_with("[unknown]") {
                    n.replace("[k]", "[.]")
                } else {
                    n.to_string()
                }
            };
            let ours_by: std::collections::HashMap<String, Vec<f64>> = ours.iter().map(|(s, n)| (norm(n), s.clone())).collect();
            let theirs_by: std::collections::HashMap<String, Vec<f64>> = theirs.iter().map(|(s, n)| (norm(n), s.clone())).collect();
            let cut = theirs.last().map_or(0.0, |r| r.0[0]).max(ours.last().map_or(0.0, |r| r.0[0])) + 0.05;
            for (name, want) in &theirs_by {
                match ours_by.get(name) {
                    Some(got) => assert!(
                        got.len() == want.len() && got.iter().zip(want).all(|(a, b)| (a - b).abs() <= 0.05 + 1e-9),
                        "{input} {mode}: {name}: msen {got:?}, perf {want:?}"
                    ),
                    None => assert!(want[0] <= cut, "{input} {mode}: perf's row {name} ({want:?}) is not in msen's top 50"),
                }
            }
            for (name, got) in &ours_by {
                assert!(
                    theirs_by.contains_key(name) || got[0] <= cut,
                    "{input} {mode}: msen's row {name} ({got:?}) is not in perf's top 50"
                );
            }
        }
    }
}
