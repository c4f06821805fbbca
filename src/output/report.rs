//! Rendering a `Report` as a perf-like table, JSON or CSV.

use super::{csv_field, table};
use crate::analyze::report::{KeyVal, Report, Row, SortKey};
use serde_json::{json, Map, Value};

fn pct(p: f64) -> String {
    format!("{p:.2}%")
}

/// The table. `width`: fit symbol names into a terminal this wide
/// (templates and arguments elided); None prints them whole.
pub fn render_table(r: &Report, source: &str, width: Option<usize>) -> String {
    let mut out = String::new();
    out.push_str(&format!("# msen report of {source}\n"));
    if !r.clean_close {
        out.push_str("# Note: the capture was cut short (no footer); the samples recovered are shown\n");
    }
    if r.software_only {
        out.push_str("# Note: software events only (the recording host had no usable hardware PMU)\n");
    }
    if let Some(h) = &r.host {
        out.push_str(&format!("# Host: {h}\n"));
    }
    for (ei, ev) in r.events.iter().enumerate() {
        let rows: Vec<&Row> = r.rows.iter().filter(|row| row.event as usize == ei).collect();
        if r.events.len() > 1 && ev.samples == 0 {
            continue;
        }
        out.push_str("#\n");
        out.push_str(&format!("# Samples: {} of event '{}'\n", ev.samples, ev.name));
        out.push_str(&format!("# Event count (approx.): {}\n", ev.period));
        if r.lost_samples > 0 {
            out.push_str(&format!("# Lost records: {}\n", r.lost_samples));
        }
        if !r.budget_dropped.is_empty() {
            let parts: Vec<String> = r.budget_dropped.iter().map(|(k, n)| format!("{n} ({})", k.replace('_', " "))).collect();
            out.push_str(&format!("# Dropped in the kernel by the sampling budget: {}\n", parts.join(", ")));
        }
        out.push_str("#\n");
        let mut header: Vec<String> = Vec::new();
        let mut right = Vec::new();
        let cols = r.columns;
        let show_children = r.has_children && cols.children;
        if show_children {
            header.push("Children".into());
            right.push(true);
        }
        if cols.overhead {
            header.push(if show_children { "Self" } else { "Overhead" }.into());
            right.push(true);
        }
        if r.show_samples {
            header.push("Samples".into());
            right.push(true);
        }
        if cols.period {
            header.push("Period".into());
            right.push(true);
        }
        for k in &r.sort {
            header.push(k.header().into());
            right.push(matches!(k, SortKey::Pid | SortKey::Tid | SortKey::Cpu | SortKey::Weight));
        }
        let branch = rows.iter().any(|row| row.branch.is_some());
        if branch {
            header.push("Mispred".into());
            header.push("Avg Cycles".into());
            right.extend([true, true]);
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|row| {
                let mut c = Vec::new();
                if show_children {
                    c.push(row.children_percent.map_or_else(String::new, pct));
                }
                if cols.overhead {
                    c.push(pct(row.percent));
                }
                if r.show_samples {
                    c.push(row.samples.to_string());
                }
                if cols.period {
                    c.push(row.period.to_string());
                }
                c.extend(row.keys.iter().map(KeyVal::display));
                if let Some(b) = row.branch {
                    c.push(pct(b.mispredicted as f64 * 100.0 / row.samples.max(1) as f64));
                    c.push(if b.with_cycles > 0 { format!("{:.1}", b.cycles_sum as f64 / b.with_cycles as f64) } else { "-".into() });
                }
                c
            })
            .collect();
        let mut cells = cells;
        if let Some(w) = width {
            let name_cols: Vec<usize> = header
                .iter()
                .enumerate()
                .filter(|(_, h)| matches!(h.trim(), "Symbol" | "Source Symbol" | "Target Symbol" | "Source:Line"))
                .map(|(i, _)| i)
                .collect();
            for &ci in &name_cols {
                // What the other columns take, as the table lays them out.
                let other: usize = (0..header.len())
                    .filter(|&i| i != ci)
                    .map(|i| {
                        cells.iter().map(|c| c.get(i).map_or(0, |x| x.chars().count())).max().unwrap_or(0).max(header[i].chars().count())
                            + 2
                    })
                    .sum::<usize>()
                    + 2;
                let budget = w.saturating_sub(other).max(24);
                for c in cells.iter_mut() {
                    if let Some(cell) = c.get_mut(ci) {
                        // Keep the "[.] " / "[k] " mark, shorten the name.
                        let (mark, name) = if cell.len() > 4 && cell.as_bytes()[0] == b'[' && &cell[2..4] == "] " {
                            cell.split_at(4)
                        } else {
                            ("", cell.as_str())
                        };
                        let short = super::shorten_name(name, budget.saturating_sub(mark.len()));
                        *cell = format!("{mark}{short}");
                    }
                }
            }
        }
        // perf pads the overhead column to 8 characters.
        if let Some(h) = header.first_mut() {
            *h = format!("{h:>8}");
        }
        let text = table(&header, &cells, &right, "# ");
        if rows.iter().any(|row| row.graph.is_some()) {
            // Each row's line, then its call graph (perf's --stdio layout).
            let mut lines = text.lines();
            for l in lines.by_ref().take(3) {
                out.push_str(l);
                out.push('\n');
            }
            for (row, line) in rows.iter().zip(lines) {
                out.push_str(line);
                out.push('\n');
                if let Some(t) = &row.graph {
                    render_graph(r, row, t, ev.period, &mut out);
                }
            }
        } else {
            out.push_str(&text);
        }
    }
    out.push_str("#\n");
    let mut foot = Vec::new();
    if r.rows_hidden > 0 {
        foot.push(format!("{} rows not shown (--percent-limit/--top)", r.rows_hidden));
    }
    let unresolved = r.unresolved_total();
    if unresolved > 0 {
        let parts: Vec<String> = r.unresolved.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        foot.push(format!("{unresolved} samples without a symbol ({})", parts.join(", ")));
    }
    let d = &r.decode;
    if d.unparsable_samples + d.unsplittable_records + d.unknown_event_samples + d.corrupt_blocks_skipped > 0 {
        foot.push(format!(
            "decode problems: {} unparsable samples, {} unsplittable records, {} samples of unknown events, {} corrupt blocks skipped",
            d.unparsable_samples, d.unsplittable_records, d.unknown_event_samples, d.corrupt_blocks_skipped
        ));
    }
    for (path, why) in &r.dso_problems {
        foot.push(format!("{path}: {why}"));
    }
    foot.extend(r.notes.iter().cloned());
    for f in foot {
        out.push_str(&format!("# {f}\n"));
    }
    out
}

fn render_graph(r: &Report, row: &Row, t: &crate::analyze::callgraph::CallTree, total: u64, out: &mut String) {
    use crate::analyze::callgraph::{self as cg, GraphMode};
    let c = &r.callgraph;
    match c.mode {
        GraphMode::Graph | GraphMode::Fractal => {
            cg::render_graph(t, c, total, row.children_period.unwrap_or(row.period), r.graph_skip_first, out)
        }
        GraphMode::Flat => cg::render_flat(t, c, total, out),
        GraphMode::Folded => cg::render_folded(t, c, total, out),
        GraphMode::None => {}
    }
}

fn key_json(k: SortKey, v: &KeyVal) -> Value {
    match (k, v) {
        (_, KeyVal::Num(n)) => json!(n),
        (_, KeyVal::Text(s)) => json!(s),
        (_, KeyVal::Sym { name, .. }) => json!(name),
    }
}

pub fn render_json(r: &Report) -> Value {
    let rows: Vec<Value> = r
        .rows
        .iter()
        .map(|row| {
            let mut m = Map::new();
            for (k, v) in r.sort.iter().zip(&row.keys) {
                m.insert(k.name().into(), key_json(*k, v));
                if let KeyVal::Sym { kernel, .. } = v {
                    m.insert("kernel".into(), json!(kernel));
                }
            }
            m.insert("event".into(), json!(r.events.get(row.event as usize).map(|e| e.name.as_str()).unwrap_or("")));
            m.insert("samples".into(), json!(row.samples));
            m.insert("period".into(), json!(row.period));
            m.insert("percent".into(), json!(round4(row.percent)));
            if let Some(b) = row.branch {
                m.insert("mispredicted".into(), json!(b.mispredicted));
                m.insert("mispredicted_percent".into(), json!(round4(b.mispredicted as f64 * 100.0 / row.samples.max(1) as f64)));
                m.insert("avg_cycles".into(), json!((b.with_cycles > 0).then(|| round4(b.cycles_sum as f64 / b.with_cycles as f64))));
            }
            // Present in every row, null when the trace has no call chains:
            // one schema for bulk loaders.
            m.insert("children_percent".into(), json!(row.children_percent.map(round4)));
            m.insert("children_period".into(), json!(row.children_period));
            Value::Object(m)
        })
        .collect();
    json!({
        "total_samples": r.total_samples,
        "lost_samples": r.lost_samples,
        "budget_dropped": r.budget_dropped,
        "host": r.host,
        "sort_keys": r.sort.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "events": r.events.iter().map(|e| json!({"name": e.name, "samples": e.samples, "period": e.period})).collect::<Vec<_>>(),
        "software_only": r.software_only,
        "clean_close": r.clean_close,
        "has_children": r.has_children,
        "rows_hidden": r.rows_hidden,
        "unresolved_samples": r.unresolved,
        "decode_problems": {
            "unparsable_samples": r.decode.unparsable_samples,
            "unsplittable_records": r.decode.unsplittable_records,
            "unknown_event_samples": r.decode.unknown_event_samples,
            "corrupt_blocks_skipped": r.decode.corrupt_blocks_skipped,
        },
        "rows": rows,
    })
}

/// Percentages to 4 decimals: stable text across platforms' float printing.
fn round4(x: f64) -> f64 {
    (x * 10000.0).round() / 10000.0
}

pub fn render_csv(r: &Report) -> String {
    let mut out = String::new();
    let mut head: Vec<String> = r.sort.iter().map(|k| k.name().to_string()).collect();
    // The same columns whether or not the trace has call chains (empty then).
    head.extend(["event", "samples", "period", "percent", "children_percent"].map(String::from));
    out.push_str(&head.join(","));
    out.push('\n');
    for row in &r.rows {
        let mut c: Vec<String> = r
            .sort
            .iter()
            .zip(&row.keys)
            .map(|(_, v)| match v {
                KeyVal::Sym { name, .. } => csv_field(name),
                other => csv_field(&other.display()),
            })
            .collect();
        c.push(csv_field(r.events.get(row.event as usize).map(|e| e.name.as_str()).unwrap_or("")));
        c.push(row.samples.to_string());
        c.push(row.period.to_string());
        c.push(format!("{:.4}", row.percent));
        c.push(row.children_percent.map_or_else(String::new, |ch| format!("{ch:.4}")));
        out.push_str(&c.join(","));
        out.push('\n');
    }
    out
}

/// Collapsed stacks, one per line: "comm;outer;...;inner count".
pub fn render_folded(r: &Report) -> String {
    let mut out = String::new();
    for (stack, n) in &r.folded {
        out.push_str(stack);
        out.push(' ');
        out.push_str(&n.to_string());
        out.push('\n');
    }
    out
}

/// A flame graph SVG of the collapsed stacks, drawn by inferno.
pub fn render_flamegraph(r: &Report, title: &str, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let lines: Vec<String> = r.folded.iter().map(|(s, n)| format!("{s} {n}")).collect();
    if lines.is_empty() {
        anyhow::bail!("no samples to draw");
    }
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = format!("msen: {title}");
    opts.count_name = "samples".into();
    inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), out)?;
    Ok(())
}
