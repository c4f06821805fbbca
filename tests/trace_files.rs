//! Trace files as users meet them: complete, cut short, damaged, not traces
//! at all, or from a newer msen. No root needed: the traces are synthetic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn report_json(path: &Path) -> serde_json::Value {
    let o = run(&["report", "--format", "json", path.to_str().unwrap()]);
    assert!(o.status.success(), "report failed: {}", stderr(&o));
    json(&o)
}

#[test]
fn synthetic_trace_reports_known_shares() {
    let d = tmpdir();
    let p = d.path().join("s.msen");
    synthetic_trace(&p, 4, true);
    let j = report_json(&p);
    assert_eq!(j["total_samples"], 1100);
    assert_eq!(j["lost_samples"], 5, "PERF_RECORD_LOST is counted, never silent");
    let rows = j["rows"].as_array().unwrap();
    let got: Vec<(String, String, String, f64)> = rows
        .iter()
        .map(|r| {
            (
                r["comm"].as_str().unwrap().into(),
                r["dso"].as_str().unwrap().into(),
                r["sym"].as_str().unwrap().into(),
                r["percent"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("worker".into(), "[kernel.kallsyms]".into(), "k_hot".into(), 54.5455),
            ("worker".into(), "[kernel.kallsyms]".into(), "k_warm".into(), 27.2727),
            ("idler".into(), "[kernel.kallsyms]".into(), "k_warm".into(), 9.0909),
            ("worker".into(), "worker-bin".into(), "0x1000".into(), 9.0909),
        ]
    );
    assert_eq!(j["unresolved_samples"]["no symbols"], 100);
}

#[test]
fn report_filters_sort_keys_and_formats() {
    let d = tmpdir();
    let p = d.path().join("s.msen");
    synthetic_trace(&p, 3, true);
    let ps = p.to_str().unwrap();
    let j = json(&run(&["report", ps, "--format", "json", "--sort", "pid,cpu"]));
    let rows = j["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["pid"], 100);
    let j = json(&run(&["report", ps, "--format", "json", "--comm", "idler"]));
    assert_eq!(j["rows"].as_array().unwrap().len(), 1);
    // Percentages stay relative to all samples, as perf's do.
    assert_eq!(j["rows"][0]["percent"], 9.0909);
    let j = json(&run(&["report", ps, "--format", "json", "--cpu", "1", "--sort", "cpu"]));
    assert_eq!(j["rows"][0]["samples"], 550);
    let j = json(&run(&["report", ps, "--format", "json", "--percent-limit", "20"]));
    assert_eq!(j["rows"].as_array().unwrap().len(), 2);
    assert_eq!(j["rows_hidden"], 2);
    let j = json(&run(&["report", ps, "--format", "json", "--top", "1"]));
    assert_eq!(j["rows"].as_array().unwrap().len(), 1);
    let csv = stdout(&run(&["report", ps, "--format", "csv", "--sort", "comm"]));
    // One schema with or without call chains: children_percent empty here.
    assert_eq!(csv.lines().next().unwrap(), "comm,event,samples,period,percent,children_percent");
    assert_eq!(csv.lines().nth(1).unwrap(), "worker,cpu-clock,1000,10000,90.9091,");
    let j = json(&run(&["report", ps, "--format", "json"]));
    assert!(j["rows"][0].as_object().unwrap().contains_key("children_percent") && j["rows"][0]["children_percent"].is_null());
}

#[test]
fn report_table_matches_golden() {
    let d = tmpdir();
    let p = d.path().join("s.msen");
    synthetic_trace(&p, 2, true);
    let o = run(&["report", "-i", p.to_str().unwrap()]);
    assert!(o.status.success());
    let text = stdout(&o).replace(p.to_str().unwrap(), "TRACE");
    check_golden("report-synthetic.txt", &text);
}

/// Compare with testdata/golden/NAME; MSEN_BLESS=1 rewrites it.
fn check_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/golden").join(name);
    if std::env::var("MSEN_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("golden {} is missing; run with MSEN_BLESS=1 to create it", path.display()));
    if want != actual {
        let out = std::env::temp_dir().join(format!("msen-actual-{name}"));
        std::fs::write(&out, actual).unwrap();
        panic!(
            "output differs from {}; actual output in {}; rerun with MSEN_BLESS=1 to accept\n--- want\n{want}\n--- got\n{actual}",
            path.display(),
            out.display()
        );
    }
}

#[test]
fn output_is_identical_at_one_and_many_threads() {
    let d = tmpdir();
    let p = d.path().join("s.msen");
    synthetic_trace(&p, 16, true);
    let ps = p.to_str().unwrap();
    for args in [
        vec!["report", "--format", "json", ps],
        vec!["report", "--sort", "comm,pid,tid,cpu,sym", ps],
        vec!["script", "--all", ps],
        vec!["info", "--format", "json", ps],
    ] {
        let mut one = vec!["--threads", "1"];
        one.extend(&args);
        let mut four = vec!["--threads", "4"];
        four.extend(&args);
        assert_eq!(stdout(&run(&one)), stdout(&run(&four)), "{args:?}");
    }
}

#[test]
fn info_counts_records_and_says_closed_cleanly() {
    let d = tmpdir();
    let p = d.path().join("s.msen");
    synthetic_trace(&p, 3, true);
    let j = json(&run(&["info", "--format", "json", p.to_str().unwrap()]));
    assert_eq!(j["samples"], 1100);
    assert_eq!(j["lost_samples"], 5);
    assert_eq!(j["record_counts"]["LOST"], 1);
    assert_eq!(j["clean_close"], true);
    assert_eq!(j["software_only"], true);
    assert_eq!(j["record_counts"]["SAMPLE"], 1100);
    assert_eq!(j["record_counts"]["COMM"], 2);
    assert_eq!(j["record_counts"]["MMAP2"], 1);
    assert_eq!(j["events"][0]["name"], "cpu-clock");
    assert_eq!(j["events"][0]["samples"], 1100);
    assert_eq!(j["events"][0]["attr"]["sample_type"], common::SYN_ST);
    assert_eq!(j["cache_line_size"], 64);
}

#[test]
fn script_jsonl_has_every_field_in_time_order() {
    let d = tmpdir();
    let p = d.path().join("s.msen");
    synthetic_trace(&p, 5, true);
    let o = run(&["script", "--format", "jsonl", p.to_str().unwrap()]);
    let lines: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1100);
    let times: Vec<u64> = lines.iter().map(|l| l["time"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let first = &lines[0];
    for f in [
        "ip",
        "pid",
        "tid",
        "time",
        "cpu",
        "period",
        "addr",
        "data_src",
        "weight",
        "phys_addr",
        "callchain",
        "branch_stack",
        "sym",
        "dso",
        "comm",
    ] {
        assert!(first.get(f).is_some(), "field {f} missing: {first}");
    }
    assert_eq!(first["sym"], "k_hot");
    assert_eq!(first["comm"], "worker");
}

#[test]
fn killed_writer_trace_is_recovered_and_says_so() {
    let d = tmpdir();
    let p = d.path().join("s.msen");
    let full = synthetic_trace(&p, 8, false);
    // The writer never wrote its footer, and was cut in the middle of a block.
    let bytes = std::fs::read(&p).unwrap();
    let cut = &bytes[..full as usize - 30];
    std::fs::write(&p, cut).unwrap();
    let j = json(&run(&["info", "--format", "json", p.to_str().unwrap()]));
    assert_eq!(j["clean_close"], false);
    assert!(j["recovery"]["tail_bytes_dropped"].as_u64().unwrap() > 0);
    assert!(j["samples"].as_u64().unwrap() > 0);
    let o = run(&["report", p.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("cut short"));
    let text = stdout(&run(&["info", p.to_str().unwrap()]));
    assert!(text.contains("closed cleanly    : no: recovered"), "{text}");
}

#[test]
fn not_a_trace_and_empty_files_are_clear_errors() {
    let d = tmpdir();
    let p = d.path().join("x");
    std::fs::write(&p, "hello world, not a trace at all").unwrap();
    let o = run(&["report", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is not an msen trace"), "{}", stderr(&o));
    std::fs::write(&p, "").unwrap();
    let o = run(&["info", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is empty"));
    let o = run(&["report", d.path().join("missing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    std::fs::write(&p, b"PERFILE2\x68\0\0\0\0\0\0\0").unwrap();
    let o = run(&["report", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("perf.data"));
}

#[test]
fn newer_major_is_refused_and_newer_minor_read() {
    let d = tmpdir();
    let p = d.path().join("s.msen");
    synthetic_trace(&p, 2, true);
    let mut b = std::fs::read(&p).unwrap();
    b[8] = 2;
    let q = d.path().join("major.msen");
    std::fs::write(&q, &b).unwrap();
    let o = run(&["report", q.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("format version 2.0"), "{}", stderr(&o));
    let mut b = std::fs::read(&p).unwrap();
    b[10] = 7;
    let crc = crc32fast::hash(&b[..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&q, &b).unwrap();
    let o = run(&["report", "--format", "json", q.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&o)["total_samples"], 1100);
}

#[test]
fn unknown_block_kinds_are_skipped() {
    use msen::trace::{BlockInfo, BlockKind, TraceWriter};
    let d = tmpdir();
    let p = d.path().join("s.msen");
    synthetic_trace(&p, 2, false);
    // Reopen for append through a fresh writer is not supported; build a
    // second file: the synthetic blocks plus an unknown kind.
    let q = d.path().join("u.msen");
    let mut w = TraceWriter::create(&q, 3).unwrap();
    let t = msen::trace::Trace::open(&p, Default::default()).unwrap();
    for b in &t.blocks {
        let raw = t.decode(b).unwrap();
        w.write_block(
            BlockInfo {
                kind: b.header.kind,
                stream: b.header.stream,
                record_count: b.header.record_count,
                first_time: b.header.first_time,
                last_time: b.header.last_time,
            },
            &raw,
        )
        .unwrap();
    }
    w.write_block(BlockInfo { kind: BlockKind(999), stream: 0, record_count: 1, first_time: 0, last_time: 0 }, b"from a future msen")
        .unwrap();
    w.finish().unwrap();
    let o = run(&["report", "--format", "json", q.to_str().unwrap()]);
    assert!(o.status.success());
    assert_eq!(json(&o)["total_samples"], 1100);
}

/// Every cut of a trace: a typed error or a recovered report, never a panic.
#[test]
fn truncation_at_every_offset_never_panics() {
    let d = tmpdir();
    let p = d.path().join("s.msen");
    synthetic_trace(&p, 6, true);
    let bytes = std::fs::read(&p).unwrap();
    // In-process for speed: the library is what must not panic.
    let step = (bytes.len() / 400).max(1);
    for cut in (0..bytes.len()).step_by(step) {
        let r = msen::trace::Trace::from_bytes("cut", bytes[..cut].to_vec(), Default::default());
        if let Ok(t) = r {
            let l = msen::analyze::Loaded::from_trace(t, &Default::default()).unwrap();
            let _ = msen::analyze::report::report(&l, &Default::default()).unwrap();
        }
    }
}

/// Flipped bits anywhere: an error naming the damage (exit 2), or, where the
/// flip only hit the footer, a recovered read. Never a panic, never a
/// silently different answer.
#[test]
fn bit_flips_are_detected() {
    let d = tmpdir();
    let p = d.path().join("s.msen");
    synthetic_trace(&p, 4, true);
    let bytes = std::fs::read(&p).unwrap();
    let good = msen::analyze::report::report(&msen::analyze::Loaded::open(&p, &Default::default()).unwrap(), &Default::default()).unwrap();
    let good_rows: Vec<_> = good.rows.iter().map(|r| (r.keys.clone(), r.period)).collect();
    let mut errors = 0;
    for pos in (0..bytes.len()).step_by(3) {
        let mut b = bytes.clone();
        b[pos] ^= 0x10;
        match msen::trace::Trace::from_bytes("flip", b, Default::default()) {
            Err(_) => errors += 1,
            Ok(t) => match msen::analyze::Loaded::from_trace(t, &Default::default()) {
                Err(_) => errors += 1,
                Ok(l) => match msen::analyze::report::report(&l, &Default::default()) {
                    Err(_) => errors += 1,
                    Ok(r) => {
                        let rows: Vec<_> = r.rows.iter().map(|r| (r.keys.clone(), r.period)).collect();
                        assert_eq!(rows, good_rows, "flip at {pos} changed the answer silently");
                    }
                },
            },
        }
    }
    assert!(errors > 0);
    // Through the CLI: a payload flip is exit 2 with a hint.
    let mut b = bytes.clone();
    b[200] ^= 1;
    let q = d.path().join("f.msen");
    std::fs::write(&q, &b).unwrap();
    let o = run(&["report", q.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("corrupt"), "{}", stderr(&o));
}

#[test]
fn skip_corrupt_analyzes_the_rest() {
    let d = tmpdir();
    let p = d.path().join("s.msen");
    synthetic_trace(&p, 4, true);
    let t = msen::trace::Trace::open(&p, Default::default()).unwrap();
    let victim = t.blocks.iter().find(|b| b.header.kind == msen::trace::BlockKind::SAMPLES).unwrap();
    let pos = victim.payload_range().start + 3;
    let mut b = std::fs::read(&p).unwrap();
    b[pos] ^= 0xff;
    std::fs::write(&p, &b).unwrap();
    let o = run(&["report", "--format", "json", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["report", "--format", "json", "--skip-corrupt", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["decode_problems"]["corrupt_blocks_skipped"], 1);
    assert!(j["total_samples"].as_u64().unwrap() < 1100);
}

#[test]
fn report_filters_as_perf_report() {
    let d = tmpdir();
    let p = d.path().join("f.msen");
    synthetic_trace(&p, 3, true);
    let ps = p.to_str().unwrap();
    let rows = |extra: &[&str]| -> Vec<serde_json::Value> {
        let mut a = vec!["report", ps, "--format", "json"];
        a.extend(extra);
        let o = run(&a);
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        json(&o)["rows"].as_array().unwrap().clone()
    };
    // --symbols: only that row; percentages stay of all samples...
    let r = rows(&["--symbols", "k_hot"]);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0]["sym"].as_str(), r[0]["percent"].as_f64()), (Some("k_hot"), Some(54.5455)));
    // ...unless --percentage relative.
    let r = rows(&["--symbols", "k_hot", "--percentage", "relative"]);
    assert_eq!(r[0]["percent"].as_f64(), Some(100.0));
    // --dsos by short name.
    let r = rows(&["--dsos", "worker-bin"]);
    assert!(r.iter().all(|x| x["dso"] == "worker-bin") && !r.is_empty(), "{r:?}");
    // --tid: the idler's thread only.
    let all = rows(&["--sort", "tid"]);
    let idler_tid = all.iter().find(|x| x["samples"] == 100).unwrap()["tid"].as_u64().unwrap().to_string();
    let r = rows(&["--tid", &idler_tid, "--sort", "comm"]);
    assert_eq!((r.len(), r[0]["comm"].as_str()), (1, Some("idler")));
    // --time: the whole span keeps all, the first and second halves split it.
    let n = |r: &[serde_json::Value]| r.iter().map(|x| x["samples"].as_u64().unwrap()).sum::<u64>();
    assert_eq!(n(&rows(&["--time", "0%-100%"])), 1100);
    let (a, b) = (n(&rows(&["--time", "50%/1"])), n(&rows(&["--time", "50%/2"])));
    assert!(a > 0 && b > 0 && a + b >= 1100 && a + b <= 1101, "{a} + {b}");
    assert_eq!(n(&rows(&["--time", ","])), 1100);
    let o = run(&["report", ps, "--time", "90%-10%"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--time"), "{}", stderr(&o));
    // -F: the named columns, and its sort keys replace --sort.
    let t = stdout(&run(&["report", ps, "-F", "sample,period,comm"]));
    let head = t.lines().find(|l| l.contains("Command")).unwrap();
    assert!(head.contains("Samples") && head.contains("Period") && !head.contains("Overhead"), "{t}");
    assert!(t.lines().any(|l| l.contains("worker") && l.contains("10000")), "{t}");
    let o = run(&["report", ps, "-F", "bogus"]);
    assert_eq!(o.status.code(), Some(2));
    // -n adds the sample count column.
    let t = stdout(&run(&["report", ps, "-n"]));
    assert!(t.lines().any(|l| l.contains("Samples") && l.contains("Command")), "{t}");
}

/// On a terminal, long names are fit to its width (templates and arguments
/// elided); through a pipe, and with --full-names, they are whole.
#[test]
fn long_names_fit_the_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIP long_names_fit_the_terminal: script(1) (util-linux) is not installed");
        return;
    }
    let d = tmpdir();
    let p = d.path().join("n.msen");
    synthetic_trace(&p, 1, true);
    // (kallsyms names have no spaces)
    let long = format!("std::vector<{}>::push_back(std::pair<int,std::string>const&)", "std::pair<int,std::string>,".repeat(40));
    let ks = d.path().join("kallsyms");
    std::fs::write(&ks, format!("ffffffff81000000 T {long}\nffffffff81000100 T k_warm\nffffffff81000200 T k_end\n")).unwrap();
    let args = format!("{} report -i {} --kallsyms {} --sort sym", env!("CARGO_BIN_EXE_msen"), p.display(), ks.display());
    let o = Command::new("script").args(["-qec", &format!("stty cols 100; {args}"), "/dev/null"]).output().unwrap();
    let tty = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    assert!(tty.contains("std::vector<…>::push_back("), "{tty}");
    assert!(tty.lines().all(|l| l.chars().count() <= 100), "{tty}");
    let piped = stdout(&run(&["report", "-i", p.to_str().unwrap(), "--kallsyms", ks.to_str().unwrap(), "--sort", "sym"]));
    assert!(piped.contains(&long), "a pipe gets the whole name");
    let o = Command::new("script").args(["-qec", &format!("stty cols 100; {args} --full-names"), "/dev/null"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains(&long[..200]));
}

/// Found by fuzzing the in-place perf.data path: periods near 2^64 made the
/// sums overflow. They saturate: every analysis answers, shares stay sane.
#[test]
fn absurd_periods_saturate() {
    let d = tmpdir();
    let p = d.path().join("big.msen");
    synthetic_trace_with_period(&p, 2, true, u64::MAX / 3);
    for args in [&["report", "--format", "json"][..], &["report", "-g", "flat"], &["flows"], &["numa"], &["false-share"], &["script"]] {
        let mut a = args.to_vec();
        a.push(p.to_str().unwrap());
        let o = run(&a);
        assert!(matches!(o.status.code(), Some(0) | Some(1)), "{args:?}: {}", stderr(&o));
    }
    let j = json(&run(&["report", "--format", "json", p.to_str().unwrap()]));
    assert!(j["rows"].as_array().unwrap().iter().all(|r| (0.0..=100.0).contains(&r["percent"].as_f64().unwrap())));
}

/// Fuzzing found it: a trailer pointing at offset 2^64-1 wrapped the bounds
/// check and panicked; now the index is unreadable and the blocks are found
/// by scanning.
#[test]
fn a_trailer_pointing_past_the_end_is_recovered_not_a_panic() {
    let d = tmpdir();
    let p = d.path().join("t.msen");
    synthetic_trace(&p, 3, true);
    let mut b = std::fs::read(&p).unwrap();
    let n = b.len();
    b[n - 16..n - 8].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&p, &b).unwrap();
    let o = run(&["info", "--format", "json", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json(&o);
    assert!(j["recovery"].to_string().contains("index offset out of range"), "{j:#}");
    let r = report_json(&p);
    assert!(r["total_samples"].as_u64().unwrap() > 0);
}
