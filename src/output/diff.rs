//! Rendering of `msen diff`: a perf-diff-like table, JSON and CSV with one
//! schema, markdown for a pull-request comment, GitHub workflow
//! annotations, JUnit XML, and the differential flame graph.

use super::{csv_field, table};
use crate::analyze::diff::{Compute, Diff, DiffRow, EventDiff, Norm, Status, Test};

/// Which rows a rendering lists.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shown {
    /// At most this many rows per event (after the order of `-c`).
    pub top: Option<usize>,
    /// Only rows with a status (regressed, improved, shifted, new, gone).
    pub changed_only: bool,
}

fn shown(e: &EventDiff, s: Shown) -> impl Iterator<Item = &DiffRow> {
    e.rows.iter().filter(move |r| !s.changed_only || r.status != Status::Unchanged).take(s.top.unwrap_or(usize::MAX))
}

fn share(d: &Diff) -> bool {
    d.config.norm == Norm::Share
}

/// A value in the normalisation's unit: percent for shares, else 4 digits.
fn value(d: &Diff, v: f64) -> String {
    if share(d) {
        format!("{v:.2}%")
    } else {
        num(v)
    }
}

fn num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e4 || v.abs() < 1e-2 {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

fn delta(d: &Diff, t: &Test) -> String {
    if share(d) {
        format!("{:+.2}pp", t.delta())
    } else {
        let c = t.change_pct();
        if c.is_finite() {
            format!("{c:+.1}%")
        } else {
            "new".into()
        }
    }
}

fn ci(d: &Diff, t: &Test) -> String {
    if !t.tested {
        return "-".into();
    }
    if share(d) {
        format!("±{:.2}", t.ci)
    } else if t.base > 0.0 {
        format!("±{:.1}%", t.ci / t.base * 100.0)
    } else {
        format!("±{}", num(t.ci))
    }
}

fn pval(t: &Test) -> String {
    if !t.tested {
        "-".into()
    } else if t.p_adj == 0.0 {
        "0".into()
    } else if t.p_adj < 1e-4 {
        format!("{:.0e}", t.p_adj)
    } else {
        format!("{:.4}", t.p_adj)
    }
}

fn headline(d: &Diff) -> String {
    let (mut reg, mut imp, mut shift) = (0, 0, 0);
    for e in &d.events {
        for r in &e.rows {
            match r.status {
                Status::Regressed | Status::New => reg += 1,
                Status::Improved | Status::Gone => imp += 1,
                Status::Shift { .. } => shift += 1,
                Status::Unchanged => {}
            }
        }
    }
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {}, {} at {}% confidence",
        plural(reg, "regression"),
        if share(d) { plural(imp, "lower share") } else { plural(imp, "improvement") },
        plural(shift, "cost shift"),
        d.config.confidence * 100.0
    )
}

fn sides(paths: &[String]) -> String {
    match paths {
        [one] => one.clone(),
        many => format!("{} runs ({} ...)", many.len(), many[0]),
    }
}

fn norm_text(n: &Norm) -> String {
    match n {
        Norm::Share => "shares of each event's period".into(),
        Norm::PerSecond => "period per second of capture".into(),
        Norm::PerEvent(e) => format!("period per unit of '{e}'"),
        Norm::PerWork { .. } => "period per unit of the work given".into(),
    }
}

fn variance_text(d: &Diff) -> &'static str {
    if d.base_paths.len() == 1 && d.new_paths.len() == 1 {
        "one run a side: only sampling error is known; give repeated runs (BASE... -- NEW...) to use run-to-run variance"
    } else {
        "repeated runs: tests use the run-to-run variance of each row"
    }
}

fn compute_header(c: Compute) -> Option<&'static str> {
    match c {
        Compute::Ratio => Some("Ratio"),
        Compute::Wdiff(..) => Some("Weighted diff"),
        _ => None,
    }
}

pub fn render_table(d: &Diff, s: Shown) -> String {
    let mut out = format!(
        "# msen diff: base {} vs new {}\n# {}; flagged at {}% confidence, p-values corrected for the number of rows (Holm), rows with at least {} samples\n# {}\n",
        sides(&d.base_paths),
        sides(&d.new_paths),
        d.measure.clone().unwrap_or_else(|| norm_text(&d.config.norm)),
        d.config.confidence * 100.0,
        d.config.min_samples,
        variance_text(d)
    );
    for e in &d.events {
        let what = if d.measure.is_some() { "counted" } else { "samples" };
        out.push_str(&format!("#\n# Event '{}' (base {} {what}, new {} {what})\n#\n", e.name, e.base_samples, e.new_samples));
        let mut head: Vec<String> = ["Baseline", "New", "Delta", "CI", "p"].map(String::from).to_vec();
        if let Some(h) = compute_header(d.config.compute) {
            head.push(h.into());
        }
        if d.has_children {
            head.extend(["Children", "Delta"].map(String::from));
        }
        head.push("Status".into());
        let nnum = head.len();
        head.extend(d.columns.iter().cloned());
        let mut rows = Vec::new();
        for r in shown(e, s) {
            let t = &r.self_test;
            let mut c = vec![
                if r.base.samples > 0 { value(d, t.base) } else { String::new() },
                if r.new.samples > 0 { value(d, t.new) } else { String::new() },
                delta(d, t),
                ci(d, t),
                pval(t),
            ];
            match d.config.compute {
                Compute::Ratio => c.push(r.ratio.map_or("N/A".into(), |x| format!("{x:.6}"))),
                Compute::Wdiff(..) => c.push(r.wdiff.map_or("N/A".into(), |w| w.to_string())),
                _ => {}
            }
            if d.has_children {
                match &r.children {
                    Some(ch) => {
                        c.push(value(d, ch.new));
                        c.push(delta(d, ch));
                    }
                    None => c.extend([String::new(), String::new()]),
                }
            }
            c.push(r.status.label(share(d)));
            c.extend(r.keys.iter().cloned());
            rows.push(c);
        }
        let right: Vec<bool> = (0..head.len()).map(|i| i < nnum - 1).collect();
        out.push_str(&table(&head, &rows, &right, "# "));
        let hidden = e.rows.len() - shown(e, s).count();
        if hidden > 0 {
            out.push_str(&format!("# ... {hidden} more rows (--top, --changed)\n"));
        }
        if let Some(t) = &e.total {
            out.push_str(&format!(
                "#\n# total {}: {} -> {} ({}{})\n",
                e.name,
                num(t.base),
                num(t.new),
                fmt_pct(t.change_pct()),
                if t.significant(d.config.confidence) { ", significant" } else { "" }
            ));
        }
    }
    for ev in &d.unmatched_events {
        out.push_str(&format!("# event '{ev}' is in one side only: not compared\n"));
    }
    out.push_str(&format!("#\n# {}\n", headline(d)));
    for f in &d.fail {
        out.push_str(&format!(
            "# --fail-on '{}': {}\n",
            f.expr,
            if f.matches.is_empty() { "no match".into() } else { f.matches.join("; ") }
        ));
    }
    out.push_str(&format!("# result: {}\n", if d.failed { "FAIL (exit 1)" } else { "pass" }));
    out
}

fn fmt_pct(x: f64) -> String {
    if x.is_finite() {
        format!("{x:+.2}%")
    } else {
        "new".into()
    }
}

fn test_json(t: &Test, share: bool) -> serde_json::Value {
    let change = t.change_pct();
    serde_json::json!({
        "base": t.base,
        "new": t.new,
        "delta": t.delta(),
        "unit": if share { "percent" } else { "per unit" },
        "ci_half_width": t.ci,
        "change_percent": if change.is_finite() { serde_json::json!(change) } else { serde_json::Value::Null },
        "p": t.p,
        "p_adjusted": t.p_adj,
        "tested": t.tested,
    })
}

pub fn render_json(d: &Diff, s: Shown) -> serde_json::Value {
    let sh = share(d);
    let events: Vec<serde_json::Value> = d
        .events
        .iter()
        .map(|e| {
            let rows: Vec<serde_json::Value> = shown(e, s)
                .map(|r| {
                    let keys: serde_json::Map<String, serde_json::Value> =
                        d.key_names().into_iter().zip(&r.keys).map(|(k, v)| (k, serde_json::json!(v))).collect();
                    let (status, peer) = match &r.status {
                        Status::Shift { peer } => ("shift", peer.clone()),
                        other => (status_name(other), None),
                    };
                    serde_json::json!({
                        "keys": keys,
                        "symbol": r.base.sym.as_ref().or(r.new.sym.as_ref()),
                        "base": { "samples": r.base.samples, "period": r.base.period, "percent": r.baseline_pct },
                        "new": { "samples": r.new.samples, "period": r.new.period, "percent": r.new_pct },
                        "self": test_json(&r.self_test, sh),
                        "children": r.children.as_ref().map(|c| test_json(c, sh)),
                        "ratio": r.ratio,
                        "wdiff": r.wdiff.map(|w| w.to_string()),
                        "status": status,
                        "peer": peer,
                    })
                })
                .collect();
            serde_json::json!({
                "event": e.name,
                "base_samples": e.base_samples,
                "new_samples": e.new_samples,
                "total": e.total.as_ref().map(|t| test_json(t, false)),
                "rows": rows,
                "rows_total": e.rows.len(),
            })
        })
        .collect();
    serde_json::json!({
        "base": d.base_paths,
        "new": d.new_paths,
        "keys": d.key_names(),
        "normalize": d.config.norm.unit(),
        "confidence": d.config.confidence,
        "min_samples": d.config.min_samples,
        "events": events,
        "unmatched_events": d.unmatched_events,
        "summary": headline(d),
        "fail_on": d.fail,
        "failed": d.failed,
    })
}

fn status_name(s: &Status) -> &'static str {
    match s {
        Status::Unchanged => "unchanged",
        Status::Regressed => "regressed",
        Status::Improved => "improved",
        Status::New => "new",
        Status::Gone => "gone",
        Status::Shift { .. } => "shift",
    }
}

/// One line per row, the same columns whatever the traces hold.
pub fn render_csv(d: &Diff, s: Shown) -> String {
    let mut head: Vec<String> = vec!["event".into()];
    head.extend(d.key_names());
    head.extend(
        [
            "base_samples",
            "new_samples",
            "base_period",
            "new_period",
            "baseline",
            "new",
            "delta",
            "ci",
            "change_percent",
            "p",
            "p_adjusted",
            "ratio",
            "wdiff",
            "children_base",
            "children_new",
            "children_delta",
            "children_p_adjusted",
            "status",
            "peer",
        ]
        .map(String::from),
    );
    let mut out = head.join(",") + "\n";
    let f = |x: f64| if x.is_finite() { format!("{x:.6}") } else { String::new() };
    for e in &d.events {
        for r in shown(e, s) {
            let t = &r.self_test;
            let mut c = vec![csv_field(&e.name)];
            c.extend(r.keys.iter().map(|k| csv_field(k)));
            c.extend([r.base.samples.to_string(), r.new.samples.to_string(), r.base.period.to_string(), r.new.period.to_string()]);
            c.extend([f(t.base), f(t.new), f(t.delta()), f(t.ci), f(t.change_pct()), f(t.p), f(t.p_adj)]);
            c.push(r.ratio.map_or(String::new(), f));
            c.push(r.wdiff.map_or(String::new(), |w| w.to_string()));
            match &r.children {
                Some(ch) => c.extend([f(ch.base), f(ch.new), f(ch.delta()), f(ch.p_adj)]),
                None => c.extend([String::new(), String::new(), String::new(), String::new()]),
            }
            let (st, peer) = match &r.status {
                Status::Shift { peer } => ("shift", peer.clone().unwrap_or_default()),
                o => (status_name(o), String::new()),
            };
            c.push(st.into());
            c.push(csv_field(&peer));
            out.push_str(&c.join(","));
            out.push('\n');
        }
    }
    out
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('`', "'")
}

/// A pull-request comment: the verdict, then the changed rows (and the top
/// movers when nothing changed), at most `top` rows per event (default 15).
pub fn render_markdown(d: &Diff, s: Shown) -> String {
    let mut out = format!(
        "### msen diff: {}\n\n{} — base `{}` vs new `{}`; {}.\n\n",
        if d.failed { "❌ performance regression" } else { "✅ no regression" },
        headline(d),
        md_cell(&sides(&d.base_paths)),
        md_cell(&sides(&d.new_paths)),
        d.measure.clone().unwrap_or_else(|| norm_text(&d.config.norm))
    );
    let limit = s.top.unwrap_or(15);
    for e in &d.events {
        let changed: Vec<&DiffRow> = e.rows.iter().filter(|r| r.status != Status::Unchanged).collect();
        let list: Vec<&DiffRow> =
            if changed.is_empty() { e.rows.iter().take(5).collect() } else { changed.into_iter().take(limit).collect() };
        let total = e.total.as_ref().map_or(String::new(), |t| format!(", total {}", fmt_pct(t.change_pct())));
        out.push_str(&format!("**{}** ({} → {}{total})\n\n", e.name, e.base_samples, e.new_samples));
        let keys: Vec<&str> = d.columns.iter().map(String::as_str).collect();
        out.push_str(&format!("| {} | Baseline | New | Delta | CI | p | Status |\n", keys.join(" | ")));
        out.push_str(&format!("|{}---:|---:|---:|---:|---:|---|\n", "---|".repeat(keys.len())));
        for r in list {
            let t = &r.self_test;
            let keys: Vec<String> = r.keys.iter().map(|k| format!("`{}`", md_cell(k))).collect();
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                keys.join(" | "),
                value(d, t.base),
                value(d, t.new),
                delta(d, t),
                ci(d, t),
                pval(t),
                r.status.label(share(d))
            ));
        }
        out.push('\n');
    }
    for f in &d.fail {
        out.push_str(&format!(
            "- `--fail-on {}`: {}\n",
            md_cell(&f.expr),
            if f.matches.is_empty() { "no match".into() } else { md_cell(&f.matches.join("; ")) }
        ));
    }
    out
}

/// GitHub's workflow-command escaping of a message (and of properties).
fn gh_escape(s: &str, property: bool) -> String {
    let mut o = s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
    if property {
        o = o.replace(':', "%3A").replace(',', "%2C");
    }
    o
}

/// Workflow annotations: an error per regression (or per --fail-on match),
/// a notice per improvement and cost shift, and the verdict.
pub fn render_github(d: &Diff) -> String {
    let mut out = String::new();
    let mut line = |level: &str, title: &str, msg: String| {
        out.push_str(&format!("::{level} title={}::{}\n", gh_escape(title, true), gh_escape(&msg, false)));
    };
    for e in &d.events {
        for r in &e.rows {
            let t = &r.self_test;
            let what = format!(
                "{}: {} self {} -> {} ({} {}, p={})",
                e.name,
                r.keys.join(" "),
                value(d, t.base),
                value(d, t.new),
                delta(d, t),
                ci(d, t),
                pval(t)
            );
            match &r.status {
                Status::Regressed | Status::New => {
                    line(if d.config.fail_on.is_empty() { "error" } else { "warning" }, "msen diff: regression", what)
                }
                Status::Improved | Status::Gone => line("notice", "msen diff: improvement", what),
                Status::Shift { .. } => line("notice", "msen diff: cost shift", format!("{what}; {}", r.status.label(share(d)))),
                Status::Unchanged => {}
            }
        }
    }
    for f in &d.fail {
        if !f.matches.is_empty() {
            line("error", &format!("msen diff --fail-on {}", f.expr), f.matches.join("; "));
        }
    }
    line(if d.failed { "error" } else { "notice" }, "msen diff", format!("{}; {}", headline(d), if d.failed { "FAIL" } else { "pass" }));
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// JUnit XML: with --fail-on, one test case per threshold; without, one per
/// tested row, failed when it regressed.
pub fn render_junit(d: &Diff) -> String {
    let mut cases = Vec::new();
    if d.config.fail_on.is_empty() {
        for e in &d.events {
            for r in e.rows.iter().filter(|r| r.self_test.tested) {
                let t = &r.self_test;
                let msg = format!("self {} -> {} ({} {}, p={})", value(d, t.base), value(d, t.new), delta(d, t), ci(d, t), pval(t));
                cases.push((format!("msen.diff.{}", e.name), r.keys.join(" "), r.status.is_regression().then_some(msg)));
            }
        }
    } else {
        for f in &d.fail {
            cases.push(("msen.diff.fail_on".to_string(), f.expr.clone(), (!f.matches.is_empty()).then(|| f.matches.join("; "))));
        }
    }
    let failures = cases.iter().filter(|c| c.2.is_some()).count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"msen diff\" tests=\"{}\" failures=\"{failures}\">\n  <testsuite name=\"msen diff\" tests=\"{}\" failures=\"{failures}\">\n",
        cases.len(),
        cases.len()
    );
    for (class, name, failure) in &cases {
        match failure {
            Some(m) => out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\"><failure message=\"{}\">{}</failure></testcase>\n",
                xml(class),
                xml(name),
                xml(m),
                xml(m)
            )),
            None => out.push_str(&format!("    <testcase classname=\"{}\" name=\"{}\"/>\n", xml(class), xml(name))),
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// A differential flame graph: the new profile's stacks, red where they
/// grew and blue where they shrank relative to the base (scaled to the new
/// total, as inferno-diff-folded --normalize does).
pub fn render_flamegraph(base: &[(String, u64)], new: &[(String, u64)], title: &str, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let lines = |v: &[(String, u64)]| v.iter().map(|(s, n)| format!("{s} {n}\n")).collect::<String>();
    let (b, n) = (lines(base), lines(new));
    if n.is_empty() && b.is_empty() {
        anyhow::bail!("no call stacks to draw");
    }
    let mut folded = Vec::new();
    let opts = inferno::differential::Options { normalize: true, strip_hex: true };
    inferno::differential::from_readers(opts, b.as_bytes(), n.as_bytes(), &mut folded)?;
    let text = String::from_utf8_lossy(&folded);
    let mut fo = inferno::flamegraph::Options::default();
    fo.title = format!("msen diff: {title}");
    fo.subtitle = Some("red: grew in new, blue: shrank (base scaled to the new total)".into());
    fo.count_name = "samples".into();
    inferno::flamegraph::from_lines(&mut fo, text.lines(), out)?;
    Ok(())
}
