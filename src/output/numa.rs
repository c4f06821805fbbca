//! Rendering `msen numa` as a table and as JSON (../shared/C2C.md section 6).

use crate::analyze::numa::{HotSpot, Numa};
use serde_json::{json, Value};

fn spots_json(v: &[HotSpot]) -> Value {
    json!(v
        .iter()
        .map(|h| json!({
            "name": h.name,
            "local": h.acc.local,
            "remote": h.acc.remote,
            "remote_ratio": (h.acc.remote_ratio() * 10000.0).round() / 10000.0,
            "mean_latency": h.acc.mean_latency().map(|l| (l * 10.0).round() / 10.0),
            "cpu_nodes": h.cpu_nodes,
            "memory_nodes": h.mem_nodes,
            "verdict": h.verdict,
        }))
        .collect::<Vec<_>>())
}

pub fn render_json(n: &Numa) -> Value {
    json!({
        "software_only": n.software_only,
        "stats": n.stats,
        "node_matrix": n.node_matrix.iter().map(|((c, m), v)| json!({"cpu_node": c, "memory_node": m, "accesses": v})).collect::<Vec<_>>(),
        "functions": spots_json(&n.functions),
        "objects": spots_json(&n.objects),
        "pages": spots_json(&n.pages),
        "processes": spots_json(&n.processes),
        "flows": spots_json(&n.flows),
    })
}

pub fn render_table(n: &Numa) -> String {
    let s = &n.stats;
    let mut out = String::new();
    if n.software_only {
        out.push_str("# Note: this trace holds software events only: no memory samples with data sources, so no local/remote split can be computed.\n");
    }
    out.push_str(&format!(
        "# loads {}: local DRAM {}, remote DRAM {}, remote cache {}, local HITM {}, remote HITM {}\n",
        s.loads, s.local_dram, s.remote_dram, s.remote_cache, s.local_hitm, s.remote_hitm
    ));
    if !n.node_matrix.is_empty() {
        out.push_str("#\n# memory accesses by CPU node (rows) and memory node (columns)\n");
        let cpus: std::collections::BTreeSet<u32> = n.node_matrix.keys().map(|k| k.0).collect();
        let mems: std::collections::BTreeSet<u32> = n.node_matrix.keys().map(|k| k.1).collect();
        out.push_str("#          ");
        for m in &mems {
            out.push_str(&format!("{:>10}", format!("mem{m}")));
        }
        out.push('\n');
        for c in &cpus {
            out.push_str(&format!("#   cpu{c:<4} "));
            for m in &mems {
                out.push_str(&format!("{:>10}", n.node_matrix.get(&(*c, *m)).copied().unwrap_or(0)));
            }
            out.push('\n');
        }
    }
    for (title, v) in
        [("functions", &n.functions), ("data objects", &n.objects), ("pages", &n.pages), ("processes", &n.processes), ("flows", &n.flows)]
    {
        out.push_str(&format!("#\n# top {} by remote accesses (RMA, LMA, RMA/total, latency)\n", title));
        if v.is_empty() {
            out.push_str("#   (no memory accesses sampled)\n");
        }
        for h in v {
            out.push_str(&format!(
                "{:>10} {:>10} {:>6.1}% {:>8}  {}  -- {}\n",
                h.acc.remote,
                h.acc.local,
                h.acc.remote_ratio() * 100.0,
                h.acc.mean_latency().map_or("-".to_string(), |l| format!("{l:.0}")),
                h.name,
                h.verdict
            ));
        }
    }
    out
}
