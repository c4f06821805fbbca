//! `msen export --clickhouse` against real engines: Debian's
//! clickhouse-server 18.16 (started here on loopback, killed and restarted)
//! over HTTP, and chdb's ClickHouse 26.x for the modern DDL, fed the exact
//! request bodies msen sent (recorded by a proxy). Row counts, values and
//! the shipped fleet queries must equal the trace and msen's own analyses;
//! every failure, retried, must leave each row exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/clickhouse.rs"]
mod chs;
mod common;

use chs::{Fault, Proxy, Server};
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mock(dir: &Path, scenario: &str, rounds: u64) -> PathBuf {
    let p = dir.join(format!("{scenario}-{rounds}.msen"));
    let o = run(&["record", "--mock", scenario, "--rounds", &rounds.to_string(), "-o", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    p
}

fn export(url: &str, extra: &[&str], files: &[&Path]) -> std::process::Output {
    let mut args = vec!["export", "--clickhouse", url];
    args.extend_from_slice(extra);
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    run(&args)
}

fn capture_id(s: &Server, trace: &Path) -> String {
    capture_id_in(s, "default", trace)
}

fn capture_id_in(s: &Server, db: &str, trace: &Path) -> String {
    s.query(&format!("SELECT capture_id FROM {db}.ms_captures WHERE trace_path = '{}' FORMAT TabSeparated", trace.display()))
        .trim()
        .to_string()
}

fn queries_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("formats/clickhouse/queries")
}

/// A shipped query's rows for one capture, as tab-separated fields.
fn query_rows(s: &Server, file: &str, id: &str) -> Vec<Vec<String>> {
    let sql = std::fs::read_to_string(queries_dir().join(file)).unwrap();
    s.query(&format!("{sql}\nFORMAT TabSeparated"))
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect::<Vec<_>>())
        .filter(|f| f.get(1).map(String::as_str) == Some(id))
        .collect()
}

/// Every shipped query answers as msen does on the same traces.
fn check_queries_match_msen(s: &Server, traces: &[&Path]) {
    for t in traces {
        let id = capture_id(s, t);
        assert!(!id.is_empty(), "{} has no ms_captures row", t.display());
        let path = t.to_str().unwrap();

        // report --sort sym --no-children: (event, symbol, kernel) -> samples, period.
        let rep = json(&run(&["report", "--sort", "sym", "--no-children", "--format", "json", "--percent-limit", "0", path]));
        let want: BTreeMap<(String, String, String), (u64, u64)> = rep["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let k =
                    (r["event"].as_str().unwrap().to_string(), r["sym"].as_str().unwrap().to_string(), (r["kernel"] == true).to_string());
                (k, (r["samples"].as_u64().unwrap(), r["period"].as_u64().unwrap()))
            })
            .collect();
        let got: BTreeMap<(String, String, String), (u64, u64)> = query_rows(s, "report_top_functions.sql", &id)
            .into_iter()
            .map(|f| ((f[2].clone(), f[3].clone(), (f[4] == "1").to_string()), (f[5].parse().unwrap(), f[6].parse().unwrap())))
            .collect();
        assert_eq!(got, want, "report_top_functions.sql differs from msen report on {}", t.display());
        assert_eq!(
            s.query(&format!("SELECT count() FROM ms_raw_samples WHERE capture_id = '{id}'")).trim(),
            rep["total_samples"].to_string(),
            "{}",
            t.display()
        );

        // report --sort flow,sym: flow text and symbol -> samples.
        let rep = json(&run(&["report", "--sort", "flow,sym", "--no-children", "--format", "json", "--percent-limit", "0", path]));
        let want: BTreeMap<(String, String), u64> = rep["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["flow"].as_str().is_some_and(|f| f.starts_with("tcp") || f.starts_with("udp")))
            .map(|r| ((r["flow"].as_str().unwrap().to_string(), r["sym"].as_str().unwrap().to_string()), r["samples"].as_u64().unwrap()))
            .fold(BTreeMap::new(), |mut m, (k, v)| {
                *m.entry(k).or_default() += v;
                m
            });
        let got: BTreeMap<(String, String), u64> = query_rows(s, "report_by_flow.sql", &id)
            .into_iter()
            .filter(|f| f[2] != "0")
            .map(|f| ((f[3].clone(), f[5].clone()), f[6].parse::<u64>().unwrap()))
            .fold(BTreeMap::new(), |mut m, (k, v)| {
                *m.entry(k).or_default() += v;
                m
            });
        assert_eq!(got, want, "report_by_flow.sql differs from msen report --sort flow,sym on {}", t.display());

        // false-share: each shown line's owner and counters.
        let fs = json(&run(&["false-share", "--format", "json", path]));
        let mut want: Vec<(String, u64, u64, u64, u64, u64)> = fs["cachelines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let n = |k: &str| l[k].as_u64().unwrap();
                (l["dso"].as_str().unwrap().to_string(), n("tot_hitm"), n("lcl_hitm"), n("rmt_hitm"), n("tot_recs"), n("stores"))
            })
            .collect();
        let mut got: Vec<(String, u64, u64, u64, u64, u64)> = query_rows(s, "false_share_lines.sql", &id)
            .into_iter()
            .map(|f| {
                (
                    f[2].clone(),
                    f[5].parse().unwrap(),
                    f[6].parse().unwrap(),
                    f[7].parse().unwrap(),
                    f[8].parse().unwrap(),
                    f[9].parse().unwrap(),
                )
            })
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "false_share_lines.sql differs from msen false-share on {}", t.display());

        // numa: functions, objects, flows (name -> local, remote).
        let numa = json(&run(&["numa", "--format", "json", "--top", "100000", path]));
        for (key, file) in [("functions", "numa_functions.sql"), ("objects", "numa_objects.sql"), ("flows", "numa_flows.sql")] {
            let want: BTreeMap<String, (u64, u64)> = numa[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| (h["name"].as_str().unwrap().to_string(), (h["local"].as_u64().unwrap(), h["remote"].as_u64().unwrap())))
                .collect();
            let got: BTreeMap<String, (u64, u64)> =
                query_rows(s, file, &id).into_iter().map(|f| (f[2].clone(), (f[3].parse().unwrap(), f[4].parse().unwrap()))).collect();
            if key == "flows" && numa[key].as_array().unwrap().is_empty() {
                continue; // no flow context: msen numa has no flow table
            }
            assert_eq!(got, want, "{file} differs from msen numa's {key} on {}", t.display());
        }
    }
}

/// Every table's content for one capture, as a comparable fingerprint:
/// rows, and a sum of row hashes (duplicates and losses both change it).
fn fingerprint(s: &Server, db: &str, id: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (t, cols) in [
        ("ms_raw_samples", "trace_block, time, cpu, tid, ip, period, symbol, stack_id, flow_id, data_addr"),
        ("ms_stack_traces", "stack_id, ips, symbols"),
        ("ms_flow_rollup", "trace_block, window_start, flow_id, symbol, samples, period"),
        ("ms_flows", "flow_id, flow, samples"),
        ("ms_data_objects", "pid, object, samples"),
        ("ms_captures", "samples, stacks, rollups, flows, objects"),
    ] {
        let v = s.query(&format!("SELECT count(), sum(cityHash64({cols})) FROM {db}.{t} WHERE capture_id = '{id}' FORMAT TabSeparated"));
        out.push((t.to_string(), v.trim().to_string()));
    }
    out
}

#[test]
fn exported_rows_and_fleet_queries_equal_msen() {
    let dir = tmpdir();
    let s = Server::start();
    let proxy = Proxy::start(s.port);
    let fs = mock(dir.path(), "false-sharing", 1000);
    let rd = mock(dir.path(), "remote-dram", 1000);
    let mixed = mock(dir.path(), "mixed", 1000);
    // Real-hardware perf.data read in place: call chains (system-wide), and
    // perf c2c record's memory samples.
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/perfdata");
    let pd = corpus.join("fp_snb_callgraph_systemwide_quipper.data");
    let c2c = corpus.join("mem_cml_c2c_record_prospar.data");
    assert!(pd.exists() && c2c.exists(), "../shared/perfdata is missing");
    let traces: Vec<&Path> = vec![&fs, &rd, &mixed, &pd, &c2c];
    let o = export(&proxy.url(), &["--create-tables"], &traces);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&format!("{} of {} captures", traces.len(), traces.len())), "{err}");
    assert!(err.contains("formats/clickhouse/queries"), "export names where the fleet queries are:\n{err}");
    check_queries_match_msen(&s, &traces);

    // Stacks: one row per distinct chain, and every sample's stack is there.
    {
        let id = capture_id(&s, &pd);
        let stacks: u64 = s.query(&format!("SELECT count() FROM ms_stack_traces WHERE capture_id = '{id}'")).trim().parse().unwrap();
        assert!(stacks > 10, "{stacks} stacks");
        let orphans = s.query(&format!(
            "SELECT count() FROM ms_raw_samples WHERE capture_id = '{id}' AND stack_id != 0 AND stack_id NOT IN (SELECT stack_id FROM ms_stack_traces WHERE capture_id = '{id}')"
        ));
        assert_eq!(orphans.trim(), "0");
        let dup = s.query(&format!("SELECT count() - uniqExact(stack_id) FROM ms_stack_traces WHERE capture_id = '{id}'"));
        assert_eq!(dup.trim(), "0");
        // A stack's frames are those msen script prints for its samples' chains (depth check).
        let depth = s.query(&format!("SELECT max(depth), min(depth) FROM ms_stack_traces WHERE capture_id = '{id}' FORMAT TabSeparated"));
        assert!(depth.split('\t').next().unwrap().trim().parse::<u32>().unwrap() > 3, "{depth}");
    }
    // Flows: the flow table, with the samples each one tagged.
    let flows = json(&run(&["flows", "--format", "json", mixed.to_str().unwrap()]));
    let id = capture_id(&s, &mixed);
    let want: BTreeMap<String, u64> = flows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["samples"].as_u64().unwrap_or(0) > 0 && r["flow_id"].is_string())
        .map(|r| (r["flow"].as_str().unwrap().to_string(), r["samples"].as_u64().unwrap()))
        .collect();
    let got: BTreeMap<String, u64> = s
        .query(&format!("SELECT flow, samples FROM ms_flows WHERE capture_id = '{id}' AND samples > 0 FORMAT TabSeparated"))
        .lines()
        .map(|l| {
            let (f, n) = l.rsplit_once('\t').unwrap();
            (f.to_string(), n.parse().unwrap())
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want, "ms_flows differs from msen flows");

    // The regression query between two captures: each side's share equals report's percent.
    let (a, b) = (capture_id(&s, &fs), capture_id(&s, &mixed));
    let sql =
        std::fs::read_to_string(queries_dir().join("regression.sql")).unwrap().replace("BASE-CAPTURE-ID", &a).replace("NEW-CAPTURE-ID", &b);
    let rows = s.query(&format!("{sql}\nFORMAT TabSeparated"));
    let pct = |t: &Path| -> BTreeMap<(String, String), f64> {
        json(&run(&["report", "--sort", "sym", "--no-children", "--format", "json", "--percent-limit", "0", t.to_str().unwrap()]))["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| ((r["event"].as_str().unwrap().to_string(), r["sym"].as_str().unwrap().to_string()), r["percent"].as_f64().unwrap()))
            .collect()
    };
    let (pa, pb) = (pct(&fs), pct(&mixed));
    let mut checked = 0;
    for l in rows.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        let k = (f[0].to_string(), f[1].to_string());
        let (base, new): (f64, f64) = (f[2].parse().unwrap(), f[3].parse().unwrap());
        assert!((base - pa.get(&k).copied().unwrap_or(0.0)).abs() < 1e-3, "{l}");
        assert!((new - pb.get(&k).copied().unwrap_or(0.0)).abs() < 1e-3, "{l}");
        checked += 1;
    }
    assert!(checked > 0, "regression.sql returned nothing:\n{rows}");

    // A second run sends nothing.
    let before = fingerprint(&s, "default", &id);
    let o = export(&s.url(), &[], &traces);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("already in ClickHouse"), "{}", stderr(&o));
    assert_eq!(fingerprint(&s, "default", &id), before);

    // The modern DDL (ClickHouse 26.x through chdb) loads the exact bodies msen
    // sent, and the shipped queries answer there as on 18.16.
    modern_replay_matches(&s, &proxy, dir.path(), &traces);
}

/// Replay the INSERT requests the proxy recorded into chdb's engine with the
/// modern DDL, run every shipped query there, and compare with 18.16.
fn modern_replay_matches(s: &Server, proxy: &Proxy, dir: &Path, traces: &[&Path]) {
    let py = chs::chdb_python();
    assert!(py.exists(), "chdb is missing: run scripts/setup-clickhouse.sh");
    let reqs = dir.join("requests");
    std::fs::create_dir_all(&reqs).unwrap();
    let log = proxy.log.lock().unwrap().clone();
    assert!(!log.is_empty());
    for (i, r) in log.iter().enumerate() {
        std::fs::write(reqs.join(format!("{i:05}.sql")), &r.query).unwrap();
        std::fs::write(reqs.join(format!("{i:05}.bin")), &r.body).unwrap();
    }
    let out = dir.join("modern");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/clickhouse/replay_chdb.py");
    let ddl = Path::new(env!("CARGO_MANIFEST_DIR")).join("formats/clickhouse/tables-modern.sql");
    let o = Command::new(&py).arg(&script).arg(&ddl).arg(&reqs).arg(queries_dir()).arg(&out).output().unwrap();
    assert!(o.status.success(), "chdb replay failed:\n{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    // The modern types are what the DDL says (DateTime64(9) keeps nanoseconds).
    let types = std::fs::read_to_string(out.join("types.tsv")).unwrap();
    assert!(types.contains("time\tDateTime64(9)"), "{types}");
    assert!(types.contains("symbol\tLowCardinality(String)"), "{types}");
    for q in std::fs::read_dir(queries_dir()).unwrap() {
        let q = q.unwrap().path();
        let name = q.file_name().unwrap().to_str().unwrap().to_string();
        if name == "regression.sql" {
            continue; // needs two ids filled in
        }
        let old = s.query(&format!("{}\nFORMAT TabSeparated", std::fs::read_to_string(&q).unwrap()));
        let modern = std::fs::read_to_string(out.join(format!("{name}.tsv"))).unwrap();
        // Times print differently (UInt64 ns vs DateTime64); the shipped queries print none.
        let norm = |t: &str| {
            let mut v: Vec<String> = t.lines().map(str::to_string).collect();
            v.sort();
            v
        };
        let (m, o) = (norm(&modern), norm(&old));
        if m != o {
            let only_m: Vec<&String> = m.iter().filter(|l| !o.contains(l)).take(5).collect();
            let only_o: Vec<&String> = o.iter().filter(|l| !m.contains(l)).take(5).collect();
            panic!(
                "{name}: chdb (modern DDL) has {} rows, 18.16 {}; only in chdb: {only_m:#?}; only in 18.16: {only_o:#?}",
                m.len(),
                o.len()
            );
        }
    }
    let counts = std::fs::read_to_string(out.join("counts.tsv")).unwrap();
    for t in traces {
        let id = capture_id(s, t);
        let n = s.query(&format!("SELECT count() FROM ms_raw_samples WHERE capture_id = '{id}'"));
        assert!(counts.contains(&format!("{id}\t{}", n.trim())), "{id}: {counts}");
    }
    // Nanoseconds survive into DateTime64(9).
    let ns = s.query("SELECT time FROM ms_raw_samples ORDER BY time DESC LIMIT 1 FORMAT TabSeparated");
    let modern_ns = std::fs::read_to_string(out.join("max_time.tsv")).unwrap();
    assert_eq!(modern_ns.trim(), ns.trim());
}

/// Start an export in the background; return once `rows` of it are in
/// ms_raw_samples (the export is mid-way). The caller waits for the child.
#[allow(clippy::zombie_processes)]
fn start_export_and_wait(s: &Server, db: &str, trace: &Path, rows: u64) -> std::process::Child {
    let child = msen()
        .args(["export", "--clickhouse", &s.url(), "--database", db, "--batch-rows", "20000", "--retries", "0"])
        .arg(trace)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        let n: u64 = s.try_query(&format!("SELECT count() FROM {db}.ms_raw_samples")).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        if n >= rows {
            return child;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "the export never reached {rows} rows");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn killed_server_or_msen_mid_export_then_rerun_leaves_every_row_once() {
    let dir = tmpdir();
    let mut s = Server::start();
    let trace = mock(dir.path(), "streaming", 50_000); // 200k samples, about 10 INSERTs
    s.query("CREATE DATABASE reference");
    s.query("CREATE DATABASE a");
    s.query("CREATE DATABASE b");
    for db in ["reference", "a", "b"] {
        let o = export(&s.url(), &["--database", db, "--create-tables"], &[&trace]);
        if db == "reference" {
            assert!(o.status.success(), "{}", stderr(&o));
        } else {
            // Tables only: drop what this first run sent.
            for t in ["ms_raw_samples", "ms_stack_traces", "ms_flow_rollup", "ms_flows", "ms_data_objects", "ms_captures"] {
                s.query(&format!("TRUNCATE TABLE {db}.{t}"));
            }
        }
    }
    let id = capture_id_in(&s, "reference", &trace);
    let want = fingerprint(&s, "reference", &id);
    assert!(want[0].1.starts_with("200000\t"), "{want:?}");

    // The server dies (SIGKILL) in the middle; msen fails cleanly; a re-run completes.
    let mut child = start_export_and_wait(&s, "a", &trace, 40_000);
    s.kill();
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot reach ClickHouse") && err.contains("run the same export again"), "{err}");
    s.restart();
    let partial: u64 = s.query("SELECT count() FROM a.ms_raw_samples").trim().parse().unwrap();
    assert!(partial > 0 && partial < 200_000, "{partial}");
    let o = export(&s.url(), &["--database", "a"], &[&trace]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fingerprint(&s, "a", &id), want, "after a server kill");

    // msen dies (SIGKILL) in the middle; a re-run completes.
    child = start_export_and_wait(&s, "b", &trace, 40_000);
    child.kill().unwrap();
    child.wait().unwrap();
    let o = export(&s.url(), &["--database", "b"], &[&trace]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fingerprint(&s, "b", &id), want, "after killing msen");

    // Rows of a block already there from elsewhere (a hand-made partial
    // insert) are replaced, not doubled.
    s.query("CREATE DATABASE c");
    let o = export(&s.url(), &["--database", "c", "--create-tables"], &[&trace]);
    assert!(o.status.success());
    s.query(&format!("ALTER TABLE c.ms_raw_samples DELETE WHERE capture_id = '{id}' AND trace_block = 1 AND cityHash64(time, ip) % 2 = 0"));
    s.query(&format!("ALTER TABLE c.ms_captures DELETE WHERE capture_id = '{id}'"));
    let t0 = Instant::now();
    while s.query("SELECT count() FROM system.mutations WHERE is_done = 0").trim() != "0" {
        assert!(t0.elapsed() < Duration::from_secs(30), "the test's mutations never finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = export(&s.url(), &["--database", "c"], &[&trace]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("partly there"), "{}", stderr(&o));
    assert_eq!(fingerprint(&s, "c", &id), want, "after a partial block");
}

#[test]
fn reset_connections_and_500s_are_retried_without_doubling() {
    let dir = tmpdir();
    let s = Server::start();
    let proxy = Proxy::start(s.port);
    let trace = mock(dir.path(), "streaming", 25_000); // 100k samples
    s.query("CREATE DATABASE reference");
    let o = export(&s.url(), &["--database", "reference", "--create-tables", "--batch-rows", "20000"], &[&trace]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = capture_id_in(&s, "reference", &trace);
    let want = fingerprint(&s, "reference", &id);
    for (db, fault) in [("reset", Fault::ResetAfterInsert(3)), ("err500", Fault::Error500OnInsert(2))] {
        s.query(&format!("CREATE DATABASE {db}"));
        *proxy.fault.lock().unwrap() = fault;
        *proxy.faults_done.lock().unwrap() = 0;
        *proxy.inserts.lock().unwrap() = 0;
        let o = export(&proxy.url(), &["--database", db, "--create-tables", "--batch-rows", "20000"], &[&trace]);
        assert!(o.status.success(), "{fault:?}: {}", stderr(&o));
        assert_eq!(*proxy.faults_done.lock().unwrap(), 1, "{fault:?} never happened");
        assert!(stderr(&o).contains("retrying"), "{}", stderr(&o));
        assert_eq!(fingerprint(&s, db, &id), want, "after {fault:?}");
        *proxy.fault.lock().unwrap() = Fault::None;
    }
}

#[test]
fn bad_servers_and_inputs_get_clear_errors() {
    let dir = tmpdir();
    let s = Server::start();
    let trace = mock(dir.path(), "clean", 100);
    let t = trace.to_str().unwrap();
    let fails = |o: &std::process::Output, want: &str| {
        assert_eq!(o.status.code(), Some(2), "{}", stderr(o));
        assert!(stderr(o).contains(want), "wanted {want:?} in:\n{}", stderr(o));
    };
    // Nothing listening.
    let closed = format!("http://127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    fails(&run(&["export", "--clickhouse", &closed, "--retries", "0", t]), "cannot reach ClickHouse");
    // Credentials in the URL are refused before anything is sent.
    fails(&run(&["export", "--clickhouse", &format!("http://alice:s3cret@127.0.0.1:{}", s.port), t]), "CLICKHOUSE_PASSWORD");
    // A wrong password.
    let o = msen()
        .args(["export", "--clickhouse", &s.url(), t])
        .env("CLICKHOUSE_USER", "alice")
        .env("CLICKHOUSE_PASSWORD", "wrong")
        .output()
        .unwrap();
    fails(&o, "refused the credentials");
    // The right one, from a file.
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let o = msen()
        .args(["export", "--clickhouse", &s.url(), "--create-tables", "--password-file", pw.to_str().unwrap(), t])
        .env("CLICKHOUSE_USER", "alice")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("s3cret"));
    // Tables missing without --create-tables.
    s.query("CREATE DATABASE empty");
    fails(&run(&["export", "--clickhouse", &s.url(), "--database", "empty", t]), "add --create-tables");
    // A column of the wrong type.
    s.query("CREATE DATABASE wrong");
    let o = run(&["export", "--clickhouse", &s.url(), "--database", "wrong", "--create-tables", t]);
    assert!(o.status.success());
    s.query("ALTER TABLE wrong.ms_raw_samples MODIFY COLUMN period String");
    s.query("TRUNCATE TABLE wrong.ms_captures");
    fails(&run(&["export", "--clickhouse", &s.url(), "--database", "wrong", t]), "wrong.ms_raw_samples.period is String on the server");
    // Not a trace.
    let junk = dir.path().join("junk.msen");
    std::fs::write(&junk, b"not a trace at all").unwrap();
    let o = run(&["export", "--clickhouse", &s.url(), junk.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("junk.msen"), "{}", stderr(&o));
    // A missing file fails before anything is sent.
    fails(&run(&["export", "--clickhouse", &s.url(), t, "/nonexistent.msen"]), "no such file");
    // Filters are for profiles.
    fails(&run(&["export", "--clickhouse", &s.url(), "--pid", "1", t]), "filter in SQL");
}

fn rows_in(s: &Server, db: &str) -> u64 {
    s.try_query(&format!("SELECT count() FROM {db}.ms_raw_samples")).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// `record --clickhouse` on a busy loop, in the background, its stderr
/// collected as it comes (the test waits for what msen says).
struct Recording {
    live: common::live::Live,
}

impl Recording {
    fn start(s: &Server, db: &str, trace: &Path, secs: u32, extra: &[&str]) -> Recording {
        let mut cmd = msen();
        cmd.args([
            "record",
            "--clickhouse",
            &s.url(),
            "--database",
            db,
            "--create-tables",
            "--flush",
            "0.3",
            "--no-flows",
            "-g",
            "-F",
            "499",
        ])
        .args(["--duration", &secs.to_string(), "-o"])
        .arg(trace)
        .args(extra)
        .args(["--", "sh", "-c", "while :; do :; done"]);
        Recording { live: common::live::Live::spawn(&mut cmd) }
    }

    fn log(&self) -> String {
        self.live.log()
    }

    /// Wait until msen has said `what` (the capture still running).
    fn wait_said(&mut self, what: &str) {
        self.live.wait_said(what)
    }

    /// Wait until the capture's rows grow past `n` while it still runs.
    fn wait_rows_above(&mut self, s: &Server, db: &str, n: u64) -> u64 {
        let t0 = Instant::now();
        loop {
            let have = rows_in(s, db);
            if have > n {
                return have;
            }
            assert!(self.live.running(), "the capture ended before its rows reached ClickHouse: {}", self.log());
            assert!(t0.elapsed() < Duration::from_secs(60), "no rows arrived while recording: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop the capture as a user does (SIGINT); its exit status and what it said.
    fn interrupt(self) -> (Option<i32>, String) {
        self.live.signal(libc::SIGINT);
        self.finish()
    }

    fn finish(self) -> (Option<i32>, String) {
        self.live.finish()
    }
}

#[test]
fn record_streams_while_capturing_and_catches_up_after_outages() {
    if !require_root("record_streams_while_capturing_and_catches_up_after_outages") {
        return;
    }
    let dir = tmpdir();
    let mut s = Server::start();
    for db in ["live", "late", "end", "fresh"] {
        s.query(&format!("CREATE DATABASE {db}"));
    }
    // The same trace exported afterwards, into a database of its own: what every streamed capture must equal.
    let reference = |s: &Server, trace: &Path| -> (String, Vec<(String, String)>) {
        s.query("DROP DATABASE fresh");
        s.query("CREATE DATABASE fresh");
        let o = export(&s.url(), &["--database", "fresh", "--create-tables"], &[trace]);
        assert!(o.status.success(), "{}", stderr(&o));
        let id = capture_id_in(s, "fresh", trace);
        (id.clone(), fingerprint(s, "fresh", &id))
    };
    // The workload dies of the SIGINT msen passes on: 128 + 2, the workload's status.
    let stopped = |code: Option<i32>| code == Some(130) || code == Some(0);

    // 1. Rows arrive while the capture runs; the server is killed in the
    //    middle; msen says so, goes on, and catches up when it is back.
    let t1 = dir.path().join("live.msen");
    let mut r = Recording::start(&s, "live", &t1, 120, &[]);
    let first = r.wait_rows_above(&s, "live", 0);
    s.kill();
    r.wait_said("still recording");
    s.restart();
    r.wait_said("answers again");
    r.wait_rows_above(&s, "live", first);
    let (code, err) = r.interrupt();
    assert!(stopped(code), "{code:?}: {err}");
    let (id, want) = reference(&s, &t1);
    assert!(!want[0].1.starts_with("0\t"), "{want:?}");
    assert_eq!(fingerprint(&s, "live", &id), want, "streamed with an outage mid-capture");

    // 2. The server is away when the capture starts and comes back during it.
    s.kill();
    let t2 = dir.path().join("late.msen");
    let mut r = Recording::start(&s, "late", &t2, 120, &[]);
    r.wait_said("recording anyway");
    s.restart();
    r.wait_rows_above(&s, "late", 0);
    let (code, err) = r.interrupt();
    assert!(stopped(code), "{code:?}: {err}");
    let (id, want) = reference(&s, &t2);
    assert_eq!(fingerprint(&s, "late", &id), want, "server away at the start");

    // 3. The server is away at the end: a complete trace, a clear error
    //    that says what to run, and that export finishes it exactly once.
    let t3 = dir.path().join("end.msen");
    let mut r = Recording::start(&s, "end", &t3, 120, &["--retries", "0"]);
    r.wait_rows_above(&s, "end", 0);
    s.kill();
    let (code, err) = r.interrupt();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is complete: run `msen export --clickhouse"), "{err}");
    s.restart();
    let o = export(&s.url(), &["--database", "end"], &[&t3]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (id, want) = reference(&s, &t3);
    assert_eq!(fingerprint(&s, "end", &id), want, "server away at the end, then msen export");

    // Bad input fails before anything is recorded.
    let o = run(&["record", "--clickhouse", &s.url(), "-o", "-", "--", "true"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not -o -"), "{}", stderr(&o));
    let t4 = dir.path().join("never.msen");
    let o =
        msen().args(["record", "--clickhouse", &s.url(), "--database", "nosuchdb", "-o"]).arg(&t4).args(["--", "true"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!t4.exists(), "nothing is recorded when the tables are wrong");
}

#[test]
fn a_full_disk_on_the_server_then_a_rerun_leaves_every_row_once() {
    if !require_root("a_full_disk_on_the_server_then_a_rerun_leaves_every_row_once") {
        return;
    }
    let dir = tmpdir();
    // 400k samples take about 13 MB in the server; 8 MB fill up mid-export.
    let s = Server::start_on_tmpfs(8);
    let trace = mock(dir.path(), "streaming", 100_000);
    let o = export(&s.url(), &["--create-tables", "--batch-rows", "50000", "--retries", "1"], &[&trace]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("No space left on device") && stderr(&o).contains("run the same export again"), "{}", stderr(&o));
    let partial: u64 = s.query("SELECT count() FROM ms_raw_samples").trim().parse().unwrap();
    assert!(partial > 0 && partial < 400_000, "{partial}");
    s.resize(96);
    let o = export(&s.url(), &["--batch-rows", "50000"], &[&trace]);
    assert!(o.status.success(), "{}", stderr(&o));
    s.query("CREATE DATABASE reference");
    let o = export(&s.url(), &["--database", "reference", "--create-tables"], &[&trace]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = capture_id_in(&s, "reference", &trace);
    let want = fingerprint(&s, "reference", &id);
    assert!(want[0].1.starts_with("400000\t"), "{want:?}");
    assert_eq!(fingerprint(&s, "default", &id), want, "after the disk filled up");
}

#[test]
fn a_paced_mock_streams_into_clickhouse_as_a_live_capture_does() {
    // No root: the mock's synthetic host stands in for the kernel.
    let dir = tmpdir();
    let s = Server::start();
    s.query("CREATE DATABASE mock");
    let trace = dir.path().join("m.msen");
    let o = msen()
        .args(["record", "--mock", "false-sharing", "--rate", "20000", "--budget", "2000", "--duration", "3", "--flush", "0.3"])
        .args(["--clickhouse", &s.url(), "--database", "mock", "--create-tables", "-o"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("sends to ClickHouse while recording"), "{}", stderr(&o));
    // What streamed in equals a fresh export of the finished trace.
    let id = capture_id_in(&s, "mock", &trace);
    s.query("CREATE DATABASE fresh");
    let e = export(&s.url(), &["--database", "fresh", "--create-tables"], &[&trace]);
    assert!(e.status.success(), "{}", stderr(&e));
    let want = fingerprint(&s, "fresh", &id);
    assert!(!want[0].1.starts_with("0\t"), "{want:?}");
    assert_eq!(fingerprint(&s, "mock", &id), want);
}
