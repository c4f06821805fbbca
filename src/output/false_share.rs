//! Rendering `msen false-share`: perf c2c's summary sections (same labels,
//! same numbers), then the shared lines ranked with their offsets, and the
//! JSON contract of ../shared/C2C.md section 6.

use crate::analyze::c2c::C2cStats;
use crate::analyze::false_share::FalseShare;
use serde_json::{json, Value};

/// perf's "%10.1f%%": a 10-wide number, then '%' (0/0 prints as -nan).
fn pct(a: u64, b: u64) -> String {
    if b == 0 {
        format!("{:>10}%", "-nan")
    } else {
        format!("{:>10.1}%", a as f64 * 100.0 / b as f64)
    }
}

/// perf c2c's "Trace Event Information" block.
pub fn trace_event_information(s: &C2cStats) -> String {
    let llc = s.llc_misses();
    let rows: Vec<(&str, String)> = vec![
        ("Total records", s.nr_entries.to_string()),
        ("Locked Load/Store Operations", s.locks.to_string()),
        ("Load Operations", s.load.to_string()),
        ("Loads - uncacheable", s.ld_uncache.to_string()),
        ("Loads - IO", s.ld_io.to_string()),
        ("Loads - Miss", s.ld_miss.to_string()),
        ("Loads - no mapping", s.ld_noadrs.to_string()),
        ("Load Fill Buffer Hit", s.ld_fbhit.to_string()),
        ("Load L1D hit", s.ld_l1hit.to_string()),
        ("Load L2D hit", s.ld_l2hit.to_string()),
        ("Load LLC hit", (s.ld_llchit + s.lcl_hitm).to_string()),
        ("Load Local HITM", s.lcl_hitm.to_string()),
        ("Load Remote HITM", s.rmt_hitm.to_string()),
        ("Load Remote HIT", s.rmt_hit.to_string()),
        ("Load Local DRAM", s.lcl_dram.to_string()),
        ("Load Remote DRAM", s.rmt_dram.to_string()),
        ("Load MESI State Exclusive", s.ld_excl.to_string()),
        ("Load MESI State Shared", s.ld_shared.to_string()),
        ("Load LLC Misses", llc.to_string()),
        ("Load access blocked by data", s.blk_data.to_string()),
        ("Load access blocked by address", s.blk_addr.to_string()),
        ("Load HIT Local Peer", s.lcl_peer.to_string()),
        ("Load HIT Remote Peer", s.rmt_peer.to_string()),
        ("LLC Misses to Local DRAM", pct(s.lcl_dram, llc)),
        ("LLC Misses to Remote DRAM", pct(s.rmt_dram, llc)),
        ("LLC Misses to Remote cache (HIT)", pct(s.rmt_hit, llc)),
        ("LLC Misses to Remote cache (HITM)", pct(s.rmt_hitm, llc)),
        ("Store Operations", s.store.to_string()),
        ("Store - uncacheable", s.st_uncache.to_string()),
        ("Store - no mapping", s.st_noadrs.to_string()),
        ("Store L1D Hit", s.st_l1hit.to_string()),
        ("Store L1D Miss", s.st_l1miss.to_string()),
        ("Store No available memory level", s.st_na.to_string()),
        ("No Page Map Rejects", s.nomap.to_string()),
        ("Unable to parse data source", s.noparse.to_string()),
    ];
    rows.iter().map(|(k, v)| if v.ends_with('%') { format!("  {k:<34}: {v}\n") } else { format!("  {k:<34}: {v:>10}\n") }).collect()
}

fn shared_information(f: &FalseShare) -> String {
    let s = &f.shared_stats;
    let rows: Vec<(&str, u64)> = vec![
        ("Total Shared Cache Lines", f.shared_lines as u64),
        ("Load HITs on shared lines", s.load),
        ("Fill Buffer Hits on shared lines", s.ld_fbhit),
        ("L1D hits on shared lines", s.ld_l1hit),
        ("L2D hits on shared lines", s.ld_l2hit),
        ("LLC hits on shared lines", s.ld_llchit + s.lcl_hitm),
        ("Load hits on peer cache or nodes", s.lcl_peer + s.rmt_peer),
        ("Locked Access on shared lines", s.locks),
        ("Blocked Access on shared lines", s.blk_data + s.blk_addr),
        ("Store HITs on shared lines", s.store),
        ("Store L1D hits on shared lines", s.st_l1hit),
        ("Store No available memory level", s.st_na),
        ("Total Merged records", s.tot_hitm + s.store),
    ];
    rows.iter().map(|(k, v)| format!("  {k:<34}: {v:>10}\n")).collect()
}

fn banner(title: &str) -> String {
    format!("=================================================\n{title:^49}\n=================================================\n")
}

pub fn render_table(f: &FalseShare, node_info: bool) -> String {
    let mut out = String::new();
    if f.software_only {
        out.push_str("# Note: this trace holds software events only; no memory samples with data sources exist to classify.\n");
    }
    out.push_str(&banner("Trace Event Information"));
    out.push_str(&trace_event_information(&f.stats));
    out.push('\n');
    out.push_str(&banner("Global Shared Cache Line Event Information"));
    out.push_str(&shared_information(f));
    out.push('\n');
    out.push_str(&banner("c2c details"));
    out.push_str(&format!("  {:<34}: {}\n", "Events", f.events.join(", ")));
    out.push_str(&format!("  {:<34}: {}\n", "Cachelines sort on", f.display.name()));
    out.push_str(&format!("  {:<34}: {}\n", "Cacheline data grouping", "offset,iaddr"));
    out.push_str(&format!("  {:<34}: {} bytes\n", "Cache line size", f.line_size));
    out.push('\n');
    out.push_str(&banner("Shared Data Cache Line Table"));
    if f.lines.is_empty() {
        out.push_str("  (no shared cache lines: no HITM or peer hit was sampled)\n");
    }
    for (i, l) in f.lines.iter().enumerate() {
        let s = &l.stats;
        out.push_str(&format!(
            "#{i:<4} 0x{:x}{}  {}  {}: HITM {} (lcl {} rmt {}), loads {}, stores {}, records {}, L1 {} LLC {} lcl DRAM {} rmt DRAM {}, node {}, PA cnt {}\n",
            l.address,
            l.pid.map(|p| format!(" pid {p}")).unwrap_or_default(),
            l.data_symbol.as_deref().unwrap_or(&l.dso),
            l.verdict,
            s.tot_hitm,
            s.lcl_hitm,
            s.rmt_hitm,
            s.tot_loads(),
            s.stores(),
            s.tot_recs(),
            s.ld_l1hit,
            s.ld_llchit,
            s.lcl_dram,
            s.rmt_dram,
            if l.nodes.is_empty() { "-".to_string() } else { l.nodes.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",") },
            l.pa_cnt,
        ));
        if !l.flows.is_empty() {
            let list: Vec<String> = l.flows.iter().take(4).map(|(f, n)| format!("{f} ({n})")).collect();
            out.push_str(&format!("      flows: {}{}\n", list.join(", "), if l.flows.len() > 4 { ", ..." } else { "" }));
        }
        if node_info {
            for (node, ns) in &l.node_stats {
                out.push_str(&format!(
                    "      node {node}: HITM {} (lcl {} rmt {}), loads {}, stores {}, lcl DRAM {}, rmt DRAM {}\n",
                    ns.tot_hitm,
                    ns.lcl_hitm,
                    ns.rmt_hitm,
                    ns.tot_loads(),
                    ns.stores(),
                    ns.lcl_dram,
                    ns.rmt_dram
                ));
            }
        }
        for o in &l.offsets {
            let lat = |i: usize| o.mean_lat[i].map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
            out.push_str(&format!(
                "        +0x{:<4x} {:>6} HITM {:>6} stores  lat rmt/lcl/load {}/{}/{}  {} ({})  pids {:?} tids {:?} cpus {:?}\n",
                o.offset,
                o.stats.tot_hitm,
                o.stats.stores(),
                lat(0),
                lat(1),
                lat(4),
                o.symbol,
                o.dso,
                o.pids,
                o.tids,
                o.cpus
            ));
        }
    }
    out
}

pub fn render_json(f: &FalseShare) -> Value {
    let lines: Vec<Value> = f
        .lines
        .iter()
        .map(|l| {
            let mut v = l.stats.to_json();
            if let Value::Object(m) = &mut v {
                m.insert("address".into(), json!(format!("0x{:x}", l.address)));
                m.insert("pid".into(), json!(l.pid));
                m.insert("dso".into(), json!(l.dso));
                m.insert("node".into(), json!(l.nodes));
                m.insert("pa_cnt".into(), json!(l.pa_cnt));
                m.insert("data_symbol".into(), json!(l.data_symbol));
                m.insert("verdict".into(), json!(l.verdict));
                m.insert("flows".into(), json!(l.flows.iter().map(|(f, n)| json!({"flow": f, "records": n})).collect::<Vec<_>>()));
                m.insert(
                    "node_stats".into(),
                    json!(l.node_stats.iter().map(|(n, s)| (n.to_string(), s.to_json())).collect::<serde_json::Map<_, _>>()),
                );
                m.insert(
                    "offsets".into(),
                    json!(l
                        .offsets
                        .iter()
                        .map(|o| {
                            let mut ov = o.stats.to_json();
                            if let Value::Object(om) = &mut ov {
                                om.insert("offset".into(), json!(o.offset));
                                om.insert("iaddr".into(), json!(format!("0x{:x}", o.iaddr)));
                                om.insert("symbol".into(), json!(o.symbol));
                                om.insert("dso".into(), json!(o.dso));
                                om.insert("pids".into(), json!(o.pids));
                                om.insert("tids".into(), json!(o.tids));
                                om.insert("cpus".into(), json!(o.cpus));
                                om.insert("writer_tids".into(), json!(o.writer_tids));
                                let names = ["rmt_hitm", "lcl_hitm", "rmt_peer", "lcl_peer", "load"];
                                om.insert(
                                    "mean_latency".into(),
                                    json!(names
                                        .iter()
                                        .zip(o.mean_lat)
                                        .map(|(n, v)| (n.to_string(), json!(v)))
                                        .collect::<serde_json::Map<_, _>>()),
                                );
                            }
                            ov
                        })
                        .collect::<Vec<_>>()),
                );
            }
            v
        })
        .collect();
    json!({
        "stats": f.stats.to_json(),
        "shared_stats": f.shared_stats.to_json(),
        "shared_lines": f.shared_lines,
        "line_size": f.line_size,
        "display": f.display.name(),
        "events": f.events,
        "cachelines": lines,
    })
}
