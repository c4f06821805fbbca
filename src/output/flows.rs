//! Rendering `msen flows`: one row per flow (and one for the samples no flow
//! claimed), as a table, JSON or CSV. The columns are the same whatever the
//! trace holds: a value that does not apply is null (JSON) or empty (CSV).

use crate::analyze::flows::{FlowRow, FlowsReport};
use serde_json::{json, Value};

fn row_json(r: &FlowRow) -> Value {
    let f = r.flow.as_ref();
    let bytes = f.map_or(0, |f| f.rx_bytes + f.tx_bytes);
    json!({
        "flow": f.map(|f| f.text()),
        "flow_id": f.map(|f| format!("{:016x}", f.id)),
        "proto": f.map(|f| f.proto.clone()),
        "local": f.map(|f| f.local_text()),
        "remote": f.map(|f| f.remote_text()),
        "direction": f.map(|f| f.direction.clone()),
        "netns": f.map(|f| f.netns),
        "ifindex": f.map(|f| f.ifindex),
        "samples": r.samples,
        "share": (r.share * 10000.0).round() / 10000.0,
        "cpu_ns": r.cpu_ns,
        "rx_bytes": f.map(|f| f.rx_bytes),
        "tx_bytes": f.map(|f| f.tx_bytes),
        "rx_packets": f.map(|f| f.rx_packets),
        "tx_packets": f.map(|f| f.tx_packets),
        "cpu_ns_per_byte": match (r.cpu_ns, bytes) {
            (Some(ns), b) if b > 0 => Some(((ns as f64 / b as f64) * 1000.0).round() / 1000.0),
            _ => None,
        },
        "retransmits": f.map(|f| f.retransmits),
        "srtt_us": f.and_then(|f| (f.srtt_us > 0).then_some(f.srtt_us)),
        "samples_by_rule": {"socket": r.by_rule[1], "packet": r.by_rule[2]},
        "multiplexed_samples": r.multiplexed,
        "top_functions": r.top_functions.iter().map(|(n, c)| json!({"function": n, "samples": c})).collect::<Vec<_>>(),
    })
}

pub fn render_json(f: &FlowsReport) -> Value {
    json!({
        "flow_context": f.enabled,
        "reason": f.reason,
        "total_samples": f.total_samples,
        "tagged_samples": f.tagged_samples,
        "unjoined_samples": f.unjoined_samples,
        "unjoined_tags": f.unjoined_tags,
        "counters": f.counters,
        "rows": f.rows.iter().map(row_json).collect::<Vec<_>>(),
    })
}

const CSV_COLUMNS: &[&str] = &[
    "flow",
    "proto",
    "local",
    "remote",
    "direction",
    "netns",
    "samples",
    "share",
    "cpu_ns",
    "rx_bytes",
    "tx_bytes",
    "cpu_ns_per_byte",
    "retransmits",
    "srtt_us",
    "multiplexed_samples",
    "top_function",
];

fn csv_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) if s.contains([',', '"', '\n']) => format!("\"{}\"", s.replace('"', "\"\"")),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

pub fn render_csv(f: &FlowsReport) -> String {
    let mut out = CSV_COLUMNS.join(",") + "\n";
    for r in &f.rows {
        let j = row_json(r);
        let cells: Vec<String> = CSV_COLUMNS
            .iter()
            .map(|c| match *c {
                "top_function" => csv_cell(&j["top_functions"][0]["function"]),
                c => csv_cell(&j[c]),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 10 << 30 => format!("{:.1}G", b as f64 / (1u64 << 30) as f64),
        b if b >= 10 << 20 => format!("{:.1}M", b as f64 / (1u64 << 20) as f64),
        b if b >= 10 << 10 => format!("{:.1}K", b as f64 / 1024.0),
        b => b.to_string(),
    }
}

pub fn render_table(f: &FlowsReport) -> String {
    let mut out = String::new();
    if !f.enabled {
        out.push_str(&format!(
            "# No flow context in this trace{}: every sample is unattributed.\n# Record as root on a kernel with BTF (flows are on by default), or with --flows to require them.\n",
            f.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "# Samples: {}, with a flow: {} ({:.1}%)\n",
        f.total_samples,
        f.tagged_samples,
        if f.total_samples > 0 { 100.0 * f.tagged_samples as f64 / f.total_samples as f64 } else { 0.0 }
    ));
    if f.enabled {
        let dropped =
            f.counters.get("dropped_by_flow_filter").copied().unwrap_or(0) + f.counters.get("dropped_by_pid_filter").copied().unwrap_or(0);
        out.push_str(&format!(
            "# Join: {} samples without a tag, {} tags without a sample; {} samples dropped in the kernel by filters\n",
            f.unjoined_samples, f.unjoined_tags, dropped
        ));
    }
    out.push_str("#\n");
    let header: Vec<String> = ["Share", "Samples", "CPU ms", "ns/byte", "RX", "TX", "Retrans", "RTT us", "Flow", "Top function"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let rows: Vec<Vec<String>> = f
        .rows
        .iter()
        .map(|r| {
            let fl = r.flow.as_ref();
            let bytes = fl.map_or(0, |f| f.rx_bytes + f.tx_bytes);
            vec![
                format!("{:.2}%", r.share),
                r.samples.to_string(),
                r.cpu_ns.map_or_else(|| "-".into(), |n| format!("{:.1}", n as f64 / 1e6)),
                match (r.cpu_ns, bytes) {
                    (Some(n), b) if b > 0 => format!("{:.2}", n as f64 / b as f64),
                    _ => "-".into(),
                },
                fl.map_or_else(|| "-".into(), |f| human_bytes(f.rx_bytes)),
                fl.map_or_else(|| "-".into(), |f| human_bytes(f.tx_bytes)),
                fl.map_or_else(|| "-".into(), |f| f.retransmits.to_string()),
                fl.map_or_else(|| "-".into(), |f| if f.srtt_us > 0 { f.srtt_us.to_string() } else { "-".into() }),
                match fl {
                    Some(f) => format!("{}{}", f.text(), if r.multiplexed > 0 { " (multiplexed)" } else { "" }),
                    None => "[no flow]".into(),
                },
                r.top_functions.first().map_or_else(String::new, |(n, _)| n.clone()),
            ]
        })
        .collect();
    out.push_str(&super::table(&header, &rows, &[true, true, true, true, true, true, true, true, false, false], "# "));
    out
}
