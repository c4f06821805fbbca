//! msen false-share against stock `perf c2c report` on the same input: each
//! mock scenario is exported to perf.data and read by both. Every Trace Event
//! Information and Global Shared Cache Line counter must agree, and so must
//! the set, order and columns of the shared cache lines, for each display.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::perfout::*;
use common::*;
use std::process::{Command, Stdio};

/// Rows of perf's Shared Data Cache Line Table, as whitespace-split columns.
fn perf_lines(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut on = false;
    for l in text.lines() {
        if l.contains("Shared Data Cache Line Table") {
            on = true;
            continue;
        }
        if on && l.contains("Shared Cache Line Distribution Pareto") {
            break;
        }
        if on && !l.starts_with('#') && !l.starts_with('=') && !l.trim().is_empty() {
            out.push(l.split_whitespace().map(String::from).collect());
        }
    }
    out
}

/// Offset rows of perf's Pareto section: offset, code address, three mean
/// latencies, records, cpu count.
fn pareto_rows(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut on = false;
    for l in text.lines() {
        if l.contains("Shared Cache Line Distribution Pareto") {
            on = true;
            continue;
        }
        let t: Vec<&str> = l.split_whitespace().collect();
        if on && t.len() > 13 && t[0].ends_with('%') {
            // 5 percentages, offset, node, pa cnt, code address, rmt, lcl, load, records, cpu cnt
            out.push(vec![
                t[5].to_string(),
                t[8].to_string(),
                t[9].to_string(),
                t[10].to_string(),
                t[11].to_string(),
                t[12].to_string(),
                t[13].to_string(),
            ]);
        }
    }
    out
}

#[test]
fn false_share_agrees_with_perf_c2c_on_every_mock_scenario() {
    if !have_perf() {
        return;
    }
    let d = tmpdir();
    for scenario in ["false-sharing", "true-sharing", "remote-dram", "clean", "mixed", "streaming"] {
        let t = d.path().join(format!("{scenario}.msen"));
        let pd = d.path().join(format!("{scenario}.data"));
        // The streaming scenario with enough distinct lines that false-share
        // takes its two-pass path (compact counters, then detail for shown lines).
        let rounds = if scenario == "streaming" { "20000" } else { "300" };
        assert!(run(&["record", "-q", "--mock", scenario, "--rounds", rounds, "--seed", "7", "-o", t.to_str().unwrap()]).status.success());
        let o = run(&["export", "-i", t.to_str().unwrap(), "--perf-data", pd.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        for display in ["tot", "rmt", "lcl"] {
            let perf = Command::new("perf")
                .args(["c2c", "report", "--stdio", "--no-source", "-d", display, "-i"])
                .arg(&pd)
                .stderr(Stdio::null())
                .output()
                .unwrap();
            let perf = String::from_utf8_lossy(&perf.stdout).into_owned();
            assert!(perf.contains("Trace Event Information"), "{scenario}: perf c2c failed:\n{perf}");
            let ours = stdout(&run(&["false-share", "-d", display, pd.to_str().unwrap()]));
            for title in ["Trace Event Information", "Global Shared Cache Line Event Information"] {
                assert_eq!(c2c_section(&ours, title), c2c_section(&perf, title), "{scenario} -d {display}: {title}");
            }
            let j = json(&run(&["false-share", "--format", "json", "-d", display, pd.to_str().unwrap()]));
            let ours: Vec<Vec<String>> = j["cachelines"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let u = |k: &str| l[k].as_u64().unwrap().to_string();
                    let node = l["node"].as_array().unwrap().iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",");
                    vec![
                        i.to_string(),
                        l["address"].as_str().unwrap().to_string(),
                        node,
                        u("pa_cnt"),
                        u("tot_hitm"),
                        u("lcl_hitm"),
                        u("rmt_hitm"),
                        u("tot_recs"),
                        u("tot_loads"),
                        u("stores"),
                        u("st_l1hit"),
                        u("st_l1miss"),
                        u("st_na"),
                        u("ld_fbhit"),
                        u("ld_l1hit"),
                        u("ld_l2hit"),
                        u("ld_llchit"),
                        u("lcl_hitm"),
                        u("rmt_hit"),
                        u("rmt_hitm"),
                        u("lcl_dram"),
                        u("rmt_dram"),
                    ]
                })
                .collect();
            // perf's row: Index Address Node PAcnt Hitm% TotHitm LclHitm RmtHitm records Loads Stores L1Hit L1Miss N/A FB L1 L2 LclHit LclHitm RmtHit RmtHitm Lcl Rmt
            let theirs: Vec<Vec<String>> = perf_lines(&perf)
                .into_iter()
                .map(|mut r| {
                    r.remove(4);
                    r
                })
                .collect();
            assert_eq!(ours, theirs, "{scenario} -d {display}: shared line table");
            // Pareto: per line, its offset rows in perf's order with code
            // address, mean latencies (rmt hitm, lcl hitm, load), records, cpu count.
            let lat = |v: &serde_json::Value| v.as_f64().map_or("0".to_string(), |x| format!("{:.0}", x));
            let ours: Vec<Vec<String>> = j["cachelines"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|l| l["offsets"].as_array().unwrap().iter())
                .map(|o| {
                    vec![
                        format!("0x{:x}", o["offset"].as_u64().unwrap()),
                        o["iaddr"].as_str().unwrap().to_string(),
                        lat(&o["mean_latency"]["rmt_hitm"]),
                        lat(&o["mean_latency"]["lcl_hitm"]),
                        lat(&o["mean_latency"]["load"]),
                        o["tot_recs"].as_u64().unwrap().to_string(),
                        o["cpus"].as_array().unwrap().len().to_string(),
                    ]
                })
                .collect();
            let theirs: Vec<Vec<String>> = pareto_rows(&perf);
            assert_eq!(ours, theirs, "{scenario} -d {display}: offsets");
        }
        // perf c2c report --stats: the same counters, nothing else.
        let stats =
            Command::new("perf").args(["c2c", "report", "--stats", "--no-source", "-i"]).arg(&pd).stderr(Stdio::null()).output().unwrap();
        let stats = String::from_utf8_lossy(&stats.stdout).into_owned();
        let ours = stdout(&run(&["false-share", pd.to_str().unwrap()]));
        for title in ["Trace Event Information", "Global Shared Cache Line Event Information"] {
            assert_eq!(c2c_section(&ours, title), c2c_section(&stats, title), "{scenario} --stats: {title}");
        }
        // perf mem report: overhead by weight, rows per exact weight.
        let perf = Command::new("perf")
            .args(["mem", "report", "--stdio", "--sort=mem,snoop,tlb,lock,blocked,local_weight", "-i"])
            .arg(&pd)
            .stderr(Stdio::null())
            .output()
            .unwrap();
        let sections = perf_mem_sections(&String::from_utf8_lossy(&perf.stdout));
        assert!(!sections.is_empty(), "{scenario}: perf mem report printed nothing");
        let j = json(&run(&[
            "report",
            "--weight",
            "--no-children",
            "--format",
            "json",
            "--sort",
            "mem,snoop,tlb,lock,blocked,weight",
            pd.to_str().unwrap(),
        ]));
        assert!(check_mem_sections(scenario, &sections, &j) > 0);
    }
}
