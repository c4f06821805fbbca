//! `msen false-share` against perf c2c's own numbers on the corpus memory
//! files, and against known ground truth on a synthetic trace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::perfout::*;
use common::*;
use msen::analyze::datasrc::{lvl, op, snoop};
use msen::perf::attr::{flag, sample, EventAttr};
use msen::perf::record::{build_record, misc, RecordType};
use msen::trace::meta::{CpuNode, EventDesc, MemoryRange, Metadata};
use msen::trace::{BlockInfo, BlockKind, TraceWriter, STREAM_GLOBAL};
use std::path::Path;

#[test]
fn trace_event_information_equals_perf_c2c_on_every_memory_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/perfdata");
    if !dir.exists() {
        eprintln!("SKIP: {} is missing", dir.display());
        return;
    }
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".c2c.txt") else { continue };
        let perf = std::fs::read_to_string(e.path()).unwrap();
        let o = run(&["false-share", dir.join(format!("{stem}.data")).to_str().unwrap()]);
        assert!(o.status.success(), "{stem}: {}", stderr(&o));
        let ours = stdout(&o);
        for title in ["Trace Event Information", "Global Shared Cache Line Event Information"] {
            assert_eq!(c2c_section(&ours, title), c2c_section(&perf, title), "{stem}: {title}");
        }
        // No HITM in the corpus: no shared line, and JSON says the same.
        let j = json(&run(&["false-share", "--format", "json", dir.join(format!("{stem}.data")).to_str().unwrap()]));
        assert_eq!(j["shared_lines"], 0);
        assert_eq!(j["cachelines"].as_array().unwrap().len(), 0);
        assert_eq!(
            j["stats"]["nr_entries"].as_u64().unwrap(),
            c2c_section(&perf, "Trace Event Information")[0].rsplit(':').next().unwrap().trim().parse::<u64>().unwrap()
        );
        n += 1;
    }
    assert_eq!(n, 8, "memory files with perf c2c output");
}

/// A memory sample of the synthetic trace.
struct Mem {
    tid: u32,
    cpu: u32,
    ip: u64,
    addr: u64,
    dsrc: u64,
    weight: u64,
}

fn ds(o: u64, l: u64, sn: u64) -> u64 {
    o | (l << 5) | (sn << 19)
}

const ST: u64 = sample::IDENTIFIER
    | sample::IP
    | sample::TID
    | sample::TIME
    | sample::ADDR
    | sample::CPU
    | sample::PERIOD
    | sample::WEIGHT
    | sample::DATA_SRC
    | sample::PHYS_ADDR;

/// pid 100 ("counter") with code at 0x400000 and an anonymous data mapping at
/// 0x7f0000000000; two sockets, cpus 0-1 on node 0, 2-3 on node 1.
fn mem_trace(path: &Path, samples: &[Mem]) {
    let attr = EventAttr {
        type_: 4,
        size: 128,
        config: 0x1cd,
        period_or_freq: 1,
        sample_type: ST,
        flags: flag::SAMPLE_ID_ALL | flag::MMAP2 | flag::COMM,
        ..Default::default()
    };
    let meta = Metadata {
        msen_version: "test".into(),
        events: vec![EventDesc { name: "cpu/mem-loads,ldlat=30/P".into(), attr, ids: vec![9] }],
        cache_line_size: 64,
        nr_cpus: 4,
        online_cpus: vec![0, 1, 2, 3],
        cpu_nodes: vec![CpuNode { cpu: 0, node: 0 }, CpuNode { cpu: 1, node: 0 }, CpuNode { cpu: 2, node: 1 }, CpuNode { cpu: 3, node: 1 }],
        memory_nodes: vec![MemoryRange { start: 0, end: 1 << 30, node: 0 }, MemoryRange { start: 1 << 30, end: 2 << 30, node: 1 }],
        synthetic: true,
        ..Default::default()
    };
    let mut w = TraceWriter::create(path, 3).unwrap();
    let g = |kind, n| BlockInfo { kind, stream: STREAM_GLOBAL, record_count: n, first_time: 0, last_time: 0 };
    w.write_block(g(BlockKind::METADATA, 1), &serde_json::to_vec(&meta).unwrap()).unwrap();
    let tr = |tid: u32| msen::record::procscan::sample_id_trailer(ST, 100, tid, 0, 9, 0);
    let mut sb = Vec::new();
    sb.extend(msen::record::procscan::comm_record(100, 100, "counter", false, &tr(100)));
    let code = msen::record::procscan::parse_maps_line("00400000-00500000 r-xp 00000000 08:01 77 /opt/counter").unwrap();
    let data = msen::record::procscan::parse_maps_line("7f0000000000-7f0000100000 rw-p 00000000 00:00 0 ").unwrap();
    sb.extend(msen::record::procscan::mmap2_record(100, 100, &code, &tr(100)));
    sb.extend(msen::record::procscan::mmap2_record(100, 100, &data, &tr(100)));
    w.write_block(g(BlockKind::SIDEBAND, 3), &sb).unwrap();
    let mut buf = Vec::new();
    for (i, m) in samples.iter().enumerate() {
        let mut b = Vec::new();
        for v in [
            9u64,
            m.ip,
            100 | ((m.tid as u64) << 32),
            1000 + i as u64,
            m.addr,
            m.cpu as u64,
            1,
            m.weight,
            m.dsrc,
            0x1000_0000 + (m.addr & 0xfff),
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        buf.extend(build_record(RecordType::SAMPLE, misc::USER, &b));
    }
    w.write_block(
        BlockInfo {
            kind: BlockKind::SAMPLES,
            stream: 0,
            record_count: samples.len() as u32,
            first_time: 1000,
            last_time: 1000 + samples.len() as u64,
        },
        &buf,
    )
    .unwrap();
    w.finish().unwrap();
}

#[test]
fn false_sharing_ground_truth() {
    let line = 0x7f0000001000u64;
    let quiet = 0x7f0000002000u64;
    let mut s = Vec::new();
    // Thread 101 (node 0) writes offset 0x0, thread 102 (node 1) writes 0x8.
    for _ in 0..40 {
        s.push(Mem { tid: 101, cpu: 0, ip: 0x401000, addr: line, dsrc: ds(op::STORE, lvl::HIT | lvl::L1, snoop::NA), weight: 0 });
        s.push(Mem { tid: 102, cpu: 2, ip: 0x401100, addr: line + 8, dsrc: ds(op::STORE, lvl::HIT | lvl::L1, snoop::NA), weight: 0 });
    }
    // Their loads find the line modified in the other's cache.
    for _ in 0..30 {
        s.push(Mem { tid: 101, cpu: 0, ip: 0x401010, addr: line, dsrc: ds(op::LOAD, lvl::HIT | lvl::L3, snoop::HITM), weight: 120 });
    }
    for _ in 0..20 {
        s.push(Mem {
            tid: 102,
            cpu: 2,
            ip: 0x401110,
            addr: line + 8,
            dsrc: ds(op::LOAD, lvl::HIT | lvl::REM_CCE1, snoop::HITM),
            weight: 300,
        });
    }
    // A quiet line: L1 hits only, never shared.
    for _ in 0..50 {
        s.push(Mem { tid: 101, cpu: 1, ip: 0x401200, addr: quiet + 16, dsrc: ds(op::LOAD, lvl::HIT | lvl::L1, snoop::NONE), weight: 5 });
    }
    let d = tmpdir();
    let p = d.path().join("fs.msen");
    mem_trace(&p, &s);
    let j = json(&run(&["false-share", "--format", "json", p.to_str().unwrap()]));
    let st = &j["stats"];
    assert_eq!(st["nr_entries"], 180);
    assert_eq!((st["load"].as_u64(), st["store"].as_u64()), (Some(100), Some(80)));
    assert_eq!((st["lcl_hitm"].as_u64(), st["rmt_hitm"].as_u64(), st["tot_hitm"].as_u64()), (Some(30), Some(20), Some(50)));
    assert_eq!(st["ld_l1hit"], 50);
    assert_eq!(st["st_l1hit"], 80);
    assert_eq!(j["shared_lines"], 1);
    let lines = j["cachelines"].as_array().unwrap();
    assert_eq!(lines.len(), 1);
    let l = &lines[0];
    assert_eq!(l["address"], format!("0x{line:x}"));
    assert_eq!(l["pid"], 100, "private anonymous memory is per process");
    assert_eq!(l["tot_hitm"], 50);
    assert_eq!(l["stores"], 80);
    assert!(l["verdict"].as_str().unwrap().starts_with("false sharing: 2 threads write 2 different offsets"), "{}", l["verdict"]);
    let offs = l["offsets"].as_array().unwrap();
    let at0: Vec<_> = offs.iter().filter(|o| o["offset"] == 0).collect();
    assert_eq!(at0.iter().map(|o| o["stores"].as_u64().unwrap()).sum::<u64>(), 40);
    assert_eq!(at0.iter().map(|o| o["lcl_hitm"].as_u64().unwrap()).sum::<u64>(), 30);
    let hitm0 = at0.iter().find(|o| o["lcl_hitm"] == 30).unwrap();
    assert_eq!(hitm0["mean_latency"]["lcl_hitm"], 120.0);
    assert_eq!(hitm0["tids"], serde_json::json!([101]));
    let rmt = offs.iter().find(|o| o["offset"] == 8 && o["rmt_hitm"] == 20).unwrap();
    assert_eq!(rmt["mean_latency"]["rmt_hitm"], 300.0);
    assert_eq!(rmt["cpus"], serde_json::json!([2]));
    // Per node of the sampling CPU, and the line's memory node from phys_addr.
    assert_eq!(l["node_stats"]["0"]["lcl_hitm"], 30);
    assert_eq!(l["node_stats"]["1"]["rmt_hitm"], 20);
    assert_eq!(l["node"], serde_json::json!([0]));
    // --display rmt ranks by remote HITMs; lcl keeps the line too.
    let j = json(&run(&["false-share", "--format", "json", "--display", "rmt", p.to_str().unwrap()]));
    assert_eq!(j["cachelines"][0]["rmt_hitm"], 20);
    // --show-all lists the quiet line as well, and it is not shared.
    let j = json(&run(&["false-share", "--format", "json", "--show-all", p.to_str().unwrap()]));
    assert_eq!(j["cachelines"].as_array().unwrap().len(), 2);
    // A 128-byte line (double) still holds both offsets of the shared line.
    let j = json(&run(&["false-share", "--format", "json", "--double-cl", p.to_str().unwrap()]));
    assert_eq!(j["line_size"], 128);
    assert_eq!(j["shared_lines"], 1);
    // Identical at 1 and many threads.
    let a = stdout(&run(&["--threads", "1", "false-share", p.to_str().unwrap()]));
    let b = stdout(&run(&["--threads", "4", "false-share", p.to_str().unwrap()]));
    assert_eq!(a, b);
    assert!(a.contains("false sharing"));
}

fn mock_stats(scenario: &str, rounds: u64) -> serde_json::Value {
    let d = tmpdir();
    let p = d.path().join("m.msen");
    let o = run(&["record", "-q", "--mock", scenario, "--rounds", &rounds.to_string(), "-o", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info = json(&run(&["info", "--format", "json", p.to_str().unwrap()]));
    assert_eq!(info["synthetic"], true);
    json(&run(&["false-share", "--format", "json", p.to_str().unwrap()]))
}

fn check(j: &serde_json::Value, want: &[(&str, u64)]) {
    for (k, v) in want {
        assert_eq!(j["stats"][*k].as_u64(), Some(*v), "{k} in {}", j["stats"]);
    }
}

/// Each mock scenario's intended counts, derived by hand from C2C.md.
#[test]
fn mock_scenarios_give_their_ground_truth() {
    let n = 250;
    let j = mock_stats("false-sharing", n);
    check(
        &j,
        &[
            ("nr_entries", 5 * n),
            ("store", 2 * n),
            ("st_l1hit", 2 * n),
            ("load", 3 * n),
            ("rmt_hitm", 2 * n),
            ("tot_hitm", 2 * n),
            ("ld_l1hit", n),
            ("rmt_dram", 0),
        ],
    );
    assert_eq!(j["shared_lines"], 1);
    assert!(j["cachelines"][0]["verdict"].as_str().unwrap().starts_with("false sharing"));
    assert_eq!(j["cachelines"][0]["data_symbol"], "[heap]+0x1000");

    let j = mock_stats("true-sharing", n);
    check(&j, &[("nr_entries", 4 * n), ("locks", 2 * n), ("st_l1hit", 2 * n), ("rmt_hitm", n), ("lcl_hitm", n), ("tot_hitm", 2 * n)]);
    assert!(j["cachelines"][0]["verdict"].as_str().unwrap().starts_with("true sharing"));

    let j = mock_stats("remote-dram", n);
    check(&j, &[("load", 3 * n), ("rmt_dram", 2 * n), ("lcl_dram", n), ("ld_excl", 3 * n), ("tot_hitm", 0)]);
    assert_eq!(j["shared_lines"], 0);

    let j = mock_stats("clean", n);
    check(&j, &[("ld_l1hit", n), ("ld_l2hit", n), ("st_l1hit", n), ("tot_hitm", 0), ("nomap", 0)]);
    assert_eq!(j["cachelines"].as_array().unwrap().len(), 0);

    let j = mock_stats("mixed", n);
    check(
        &j,
        &[
            ("nr_entries", 13 * n),
            ("load", 8 * n),
            ("store", 5 * n),
            ("ld_noadrs", n),
            ("ld_uncache", n),
            ("ld_io", n),
            ("ld_miss", n),
            ("ld_fbhit", n),
            ("ld_llchit", n),
            ("rmt_hitm", n),
            ("lcl_hitm", n),
            ("tot_hitm", 2 * n),
            ("locks", n),
            ("st_l1hit", 2 * n),
            ("st_l1miss", n),
            ("st_na", n),
            ("st_noadrs", n),
            ("noparse", 0),
        ],
    );
    // The shared file mapping is one line for every process (no pid).
    let l = &j["cachelines"][0];
    assert!(l["pid"].is_null());
    assert_eq!(l["dso"], "/dev/shm/mock-ring");
}

/// `msen numa` on the remote-DRAM scenario: threads on node 0 reading a
/// buffer on node 1 (2 of every 3 loads), the rest local.
#[test]
fn numa_finds_the_remote_buffer() {
    let d = tmpdir();
    let p = d.path().join("r.msen");
    let o = run(&["record", "-q", "--mock", "remote-dram", "--rounds", "300", "-o", p.to_str().unwrap()]);
    assert!(o.status.success());
    let j = json(&run(&["numa", "--format", "json", p.to_str().unwrap()]));
    let s = &j["stats"];
    assert_eq!((s["loads"].as_u64(), s["remote_dram"].as_u64(), s["local_dram"].as_u64()), (Some(900), Some(600), Some(300)));
    let m: Vec<(u64, u64, u64)> = j["node_matrix"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["cpu_node"].as_u64().unwrap(), e["memory_node"].as_u64().unwrap(), e["accesses"].as_u64().unwrap()))
        .collect();
    assert_eq!(m, vec![(0, 0, 300), (0, 1, 600)]);
    let f = &j["functions"];
    assert_eq!(f[0]["remote"], 300);
    assert_eq!(f[0]["remote_ratio"], 1.0);
    assert!(f[0]["verdict"].as_str().unwrap().starts_with("threads on node 0 read memory placed on node 1: 100% remote, mean "));
    assert_eq!(j["objects"][0]["name"], "[heap]");
    assert_eq!(j["objects"][0]["remote"], 600);
    let lat = j["objects"][0]["mean_latency"].as_f64().unwrap();
    assert!((180.0..420.0).contains(&lat), "{lat}");
    assert_eq!(j["processes"][0]["name"], "mockapp (4242)");
    // The clean scenario has nothing remote.
    let c = d.path().join("c.msen");
    run(&["record", "-q", "--mock", "clean", "--rounds", "50", "-o", c.to_str().unwrap()]);
    let j = json(&run(&["numa", "--format", "json", c.to_str().unwrap()]));
    assert_eq!(j["stats"]["remote_dram"], 0);
    assert!(j["functions"].as_array().unwrap().is_empty());
}

/// Mock captures carry flow context (each worker thread serves one flow):
/// false-share names the flows that touch each contended line, numa ranks
/// flows by remote accesses, and the tag join is exact.
#[test]
fn memory_analyses_by_flow() {
    let d = tmpdir();
    let t = d.path().join("fs.msen");
    let o = run(&["record", "--mock", "false-sharing", "--rounds", "500", "-o", t.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = json(&run(&["false-share", "--format", "json", "-i", t.to_str().unwrap()]));
    let line = &j["cachelines"][0];
    let flows: Vec<&str> = line["flows"].as_array().unwrap().iter().map(|f| f["flow"].as_str().unwrap()).collect();
    assert_eq!(flows.len(), 2, "two writer threads, two flows: {line}");
    assert!(flows.iter().all(|f| f.starts_with("tcp 10.1.0.1:700") && f.contains(" <- 10.1.0.2:")), "{flows:?}");
    let records: u64 = line["flows"].as_array().unwrap().iter().map(|f| f["records"].as_u64().unwrap()).sum();
    assert_eq!(records, line["tot_recs"].as_u64().unwrap_or(records), "{line}");
    let t2 = d.path().join("rd.msen");
    assert!(run(&["record", "--mock", "remote-dram", "--rounds", "500", "-o", t2.to_str().unwrap()]).status.success());
    let n = json(&run(&["numa", "--format", "json", "-i", t2.to_str().unwrap()]));
    let f = n["flows"].as_array().unwrap();
    assert!(
        f.iter().any(|x| x["name"].as_str().unwrap().starts_with("tcp "))
            && f.iter().all(|x| x["local"].as_u64().unwrap() + x["remote"].as_u64().unwrap() > 0),
        "{n}"
    );
    let fl = json(&run(&["flows", "--format", "json", "-i", t2.to_str().unwrap()]));
    assert_eq!((fl["unjoined_samples"].as_u64(), fl["unjoined_tags"].as_u64()), (Some(0), Some(0)), "{fl}");
}
