//! `msen export --parquet` read back by the real readers (PyPI's pyarrow
//! and DuckDB, scripts/setup-pydata.sh), and `msen sql`: the same answers
//! as `msen report --sort sym --no-children` and `msen flows` on mock
//! scenarios and a live capture. Built with the "polars" feature only.
#![cfg(feature = "polars")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pydata/bin/python");
    assert!(p.exists(), "pyarrow and duckdb are missing: run scripts/setup-pydata.sh");
    p
}

fn mock(dir: &Path, scenario: &str, rounds: u64) -> PathBuf {
    let p = dir.join(format!("{scenario}.msen"));
    let o = run(&["record", "--mock", scenario, "--rounds", &rounds.to_string(), "-o", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    p
}

/// A live capture with call chains (root), or None.
fn live(dir: &Path) -> Option<PathBuf> {
    if !is_root() {
        return None;
    }
    let hot = build_program("hot", dir);
    let t = dir.join("live.msen");
    let o = run(&["record", "-q", "-g", "-F", "1999", "-o", t.to_str().unwrap(), "--", hot.to_str().unwrap(), "0.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    Some(t)
}

fn capture_id(t: &Path) -> String {
    json(&run(&["info", "--format", "json", t.to_str().unwrap()]))["capture_id"].as_str().unwrap().to_string()
}

/// msen report --sort sym --no-children: (event, symbol, kernel) -> (samples, period).
fn report_rows(t: &Path) -> BTreeMap<(String, String, u64), (u64, u64)> {
    let rep = json(&run(&["report", "--sort", "sym", "--no-children", "--format", "json", "--percent-limit", "0", t.to_str().unwrap()]));
    rep["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                (r["event"].as_str().unwrap().to_string(), r["sym"].as_str().unwrap().to_string(), u64::from(r["kernel"] == true)),
                (r["samples"].as_u64().unwrap(), r["period"].as_u64().unwrap()),
            )
        })
        .collect()
}

/// msen flows: flow text -> samples.
fn flow_rows(t: &Path) -> BTreeMap<String, u64> {
    let f = json(&run(&["flows", "--format", "json", "-i", t.to_str().unwrap()]));
    // Samples without a flow are a row of their own there, and no row of a join.
    f["rows"].as_array().unwrap().iter().filter_map(|r| Some((r["flow"].as_str()?.to_string(), r["samples"].as_u64().unwrap()))).collect()
}

fn sql(q: &str, traces: &[&Path], format: &str) -> std::process::Output {
    let mut args = vec!["sql", q, "--format", format];
    let names: Vec<String> = traces.iter().map(|t| t.display().to_string()).collect();
    for n in &names {
        args.push("-i");
        args.push(n);
    }
    run(&args)
}

#[test]
fn parquet_files_read_in_pyarrow_and_duckdb_equal_report_and_flows() {
    let dir = tmpdir();
    // The streaming mock's 280k samples fill two row groups (256Ki rows
    // each), whose names are numbered apart.
    let mut traces = vec![mock(dir.path(), "false-sharing", 2000), mock(dir.path(), "mixed", 400), mock(dir.path(), "streaming", 70_000)];
    traces.extend(live(dir.path()));
    let out = dir.path().join("tables");
    let mut args = vec!["export".to_string(), "--parquet".into(), out.display().to_string()];
    args.extend(traces.iter().map(|t| t.display().to_string()));
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("samples/s"), "{}", stderr(&o));

    let r = Command::new(python()).arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/parquet/read.py")).arg(&out).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let got: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();

    // Types and encodings, as the issue asks.
    let samples = &got["tables"]["ms_raw_samples"];
    let types = &samples["types"];
    assert_eq!(types["time"], "timestamp[ns]", "{types}");
    assert_eq!(types["capture_date"], "date32[day]", "{types}");
    assert_eq!(types["period"], "uint64", "{types}");
    for name in ["symbol", "dso", "comm", "event", "mem_level"] {
        assert!(types[name].as_str().unwrap().starts_with("dictionary<values=") || types[name] == "large_string", "{name}: {types}");
    }
    for t in ["ms_raw_samples", "ms_stack_traces", "ms_flows"] {
        assert_eq!(got["tables"][t]["codecs"], serde_json::json!(["ZSTD"]), "{t}: {}", got["tables"][t]);
    }
    let dict = samples["dictionary_columns"].as_array().unwrap();
    assert!(dict.iter().any(|c| c == "symbol") && dict.iter().any(|c| c == "comm"), "{dict:?}");
    if is_root() {
        let st = &got["tables"]["ms_stack_traces"]["types"];
        assert!(st["ips"].as_str().unwrap().ends_with("list<element: uint64>"), "{st}");
        assert!(st["symbols"].as_str().unwrap().contains("list<element: dictionary<values=string"), "{st}");
    }

    // Row counts and DuckDB's GROUP BY symbol equal msen report, per trace.
    let mut total = 0;
    let mut flows_seen = 0;
    for t in &traces {
        let id = capture_id(t);
        let want = report_rows(t);
        let have: BTreeMap<(String, String, u64), (u64, u64)> = got["by_symbol"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r[0] == id.as_str())
            .map(|r| {
                (
                    (r[1].as_str().unwrap().to_string(), r[2].as_str().unwrap().to_string(), r[3].as_u64().unwrap()),
                    (r[4].as_u64().unwrap(), r[5].as_u64().unwrap()),
                )
            })
            .collect();
        assert_eq!(have, want, "DuckDB GROUP BY symbol vs msen report on {}", t.display());
        total += want.values().map(|v| v.0).sum::<u64>();
        let want = flow_rows(t);
        let have: BTreeMap<String, u64> = got["by_flow"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r[0] == id.as_str())
            .map(|r| (r[1].as_str().unwrap().to_string(), r[2].as_u64().unwrap()))
            .collect();
        assert_eq!(have, want, "DuckDB samples JOIN flows vs msen flows on {}", t.display());
        flows_seen += have.len();
    }
    assert_eq!(samples["rows"], total);
    assert!(samples["row_groups"].as_u64().unwrap() > traces.len() as u64, "a capture of more than one row group: {samples}");
    assert!(flows_seen > 0, "the mocks carry flows");

    // Exporting a capture again replaces its files (one file per table and capture).
    let o = run(&["export", "--parquet", out.to_str().unwrap(), traces[0].to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let files = std::fs::read_dir(out.join("ms_raw_samples")).unwrap().count();
    assert_eq!(files, traces.len());
}

#[test]
fn sql_answers_as_report_and_flows_over_several_traces() {
    let dir = tmpdir();
    let mut traces = vec![mock(dir.path(), "false-sharing", 1000), mock(dir.path(), "mixed", 300)];
    traces.extend(live(dir.path()));
    let refs: Vec<&Path> = traces.iter().map(PathBuf::as_path).collect();

    let o = sql(
        "SELECT capture, event, symbol, kernel, count(*) AS samples, sum(period) AS period FROM samples \
         GROUP BY capture, event, symbol, kernel ORDER BY capture, event, symbol, kernel",
        &refs,
        "json",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json(&o);
    for t in &traces {
        let have: BTreeMap<(String, String, u64), (u64, u64)> = rows
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["capture"] == t.to_str().unwrap())
            .map(|r| {
                (
                    (r["event"].as_str().unwrap().to_string(), r["symbol"].as_str().unwrap().to_string(), r["kernel"].as_u64().unwrap()),
                    (r["samples"].as_u64().unwrap(), r["period"].as_u64().unwrap()),
                )
            })
            .collect();
        assert_eq!(have, report_rows(t), "msen sql GROUP BY symbol vs msen report on {}", t.display());
    }

    // A join of samples with flows equals msen flows.
    let o = sql(
        "SELECT s.capture, f.flow, count(*) AS samples FROM samples s JOIN flows f \
         ON s.capture = f.capture AND s.flow_id = f.flow_id GROUP BY s.capture, f.flow",
        &refs,
        "csv",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("capture,flow,samples"));
    let mut have: BTreeMap<(String, String), u64> = BTreeMap::new();
    for l in lines {
        let (rest, n) = l.rsplit_once(',').unwrap();
        let (cap, flow) = rest.split_once(',').unwrap();
        have.insert((cap.to_string(), flow.to_string()), n.parse().unwrap());
    }
    for t in &traces {
        let mine: BTreeMap<String, u64> =
            have.iter().filter(|((c, _), _)| c == t.to_str().unwrap()).map(|((_, f), n)| (f.clone(), *n)).collect();
        assert_eq!(mine, flow_rows(t), "msen sql JOIN flows vs msen flows on {}", t.display());
    }

    // The table format, and one row per capture.
    let o = sql("SELECT capture, samples FROM captures ORDER BY capture", &refs, "table");
    assert!(o.status.success(), "{}", stderr(&o));
    let t = stdout(&o);
    assert!(t.starts_with("capture") && t.contains(&format!("({} rows)", traces.len())), "{t}");

    // Bad input: a syntax error (with its position), an unknown column, a file that is not a trace.
    let o = sql("SELEC symbol FROM samples", &refs[..1], "table");
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("the query failed") && e.contains("Line: 1, Column: 1") && e.contains("  SELEC symbol FROM samples\n  ^"), "{e}");
    let o = sql("SELECT symbol FROM samples WHERE", &refs[..1], "table");
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("found: EOF") && e.contains(&format!("\n  {}^", " ".repeat(32))), "{e}");
    let o = sql("SELECT nope FROM samples", &refs[..1], "table");
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("nope") && e.contains("       ^"), "{e}");
    let bogus = dir.path().join("bogus.msen");
    std::fs::write(&bogus, b"not a trace at all").unwrap();
    let o = sql("SELECT count(*) FROM samples", &[&bogus], "table");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not an msen trace") || stderr(&o).contains("bogus.msen"), "{}", stderr(&o));
}
