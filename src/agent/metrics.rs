//! The Prometheus exposition of a capture's status (prometheus-client's
//! OpenMetrics text), built from the last status the capture published.

use crate::record::control::Status;
use crate::record::rollup::Tops;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// The content type prometheus-client's text is (OpenMetrics 1.0).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format, for clients that do not ask for OpenMetrics.
pub const TEXT_004: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition in the format the scraper's Accept header prefers:
/// OpenMetrics when it names it (Prometheus does), else text 0.0.4.
pub fn negotiate(accept: Option<&str>, s: &Status, tops: Option<&Tops>) -> (&'static str, String) {
    let open = render(s, tops);
    if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
        (OPENMETRICS, open)
    } else {
        (TEXT_004, to_text_004(&open))
    }
}

/// OpenMetrics -> Prometheus text 0.0.4: a counter's HELP and TYPE name
/// the sample's name (with `_total`), and there is no `# EOF`.
pub fn to_text_004(open: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        open.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(open.len() + 64);
    for line in open.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

fn gauge_f64(r: &mut Registry, name: &str, help: &str, v: f64) {
    let g = Gauge::<f64, AtomicU64>::default();
    g.set(v);
    r.register(name, help, g);
}

fn gauge_i64(r: &mut Registry, name: &str, help: &str, v: i64) {
    let g = Gauge::<i64>::default();
    g.set(v);
    r.register(name, help, g);
}

fn counter(r: &mut Registry, name: &str, help: &str, v: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(v);
    r.register(name, help, c);
}

type Labels = Vec<(String, String)>;

fn labels(kv: &[(&str, String)]) -> Labels {
    kv.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// A labelled gauge family.
fn gauges(r: &mut Registry, name: &str, help: String, rows: impl Iterator<Item = (Labels, f64)>) {
    let f = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for (l, v) in rows {
        f.get_or_create(&l).set(v);
    }
    r.register(name, help, f);
}

/// The text a scrape gets.
pub fn render(s: &Status, tops: Option<&Tops>) -> String {
    let mut r = Registry::default();
    gauge_i64(&mut r, "ms_agent_mode", "The agent's mode: 0 sentinel (low budget), 1 diagnostic (high budget)", s.mode as i64);
    gauge_i64(&mut r, "ms_agent_auto", "1 when triggers choose the mode (--mode auto), 0 when it is pinned", s.auto as i64);
    gauge_f64(&mut r, "ms_samples_per_sec", "Samples written to the trace per second, over the last second", s.samples_per_sec);
    counter(&mut r, "ms_samples", "Samples written to the trace", s.samples);
    let dropped = Family::<Vec<(String, String)>, Counter<u64>>::default();
    for (reason, n) in &s.dropped {
        dropped.get_or_create(&vec![("reason".to_string(), reason.clone())]).inc_by(*n);
    }
    r.register("ms_samples_dropped", "Samples dropped in the kernel by the budget, the minimum gap or the filters", dropped);
    counter(&mut r, "ms_lost", "Records the kernel lost because a ring buffer was full", s.lost);
    gauge_i64(
        &mut r,
        "ms_sampling_throttled",
        "PERF_RECORD_THROTTLE records in the last second (the kernel lowered the sampling rate)",
        s.throttled_last_sec as i64,
    );
    gauge_i64(&mut r, "ms_budget_rate_per_cpu", "The budget in force, samples per second per CPU (0: unlimited)", s.budget.rate as i64);
    gauge_i64(&mut r, "ms_budget_burst", "The token bucket's size in force, samples", s.budget.burst as i64);
    let flows = Family::<Vec<(String, String)>, Gauge<f64, AtomicU64>>::default();
    for (flow, rate) in &s.flows_top {
        flows.get_or_create(&vec![("flow".to_string(), flow.clone())]).set(*rate);
    }
    r.register("ms_flow_samples_per_sec", "Samples per second of the busiest flows (at most 20), over the last second", flows);
    gauges(
        &mut r,
        "ms_pmu_scale",
        "Time each event ran on the PMU over the time it was enabled, in the last second (under 1: multiplexed; counts scale by its inverse)".into(),
        s.events.iter().filter_map(|e| Some((labels(&[("event", e.name.clone())]), e.scale?))),
    );
    if let Some(t) = tops {
        let top = |what: &str| format!("{what}, at most {}, over the last {:.0} s", crate::record::rollup::TOP, t.window_secs);
        gauges(
            &mut r,
            "ms_flow_micromiss_rate",
            top("Events per second (sampled periods) of the busiest (flow, function, event)"),
            t.micromiss.iter().map(|(flow, function, event, v)| {
                (labels(&[("flow", flow.clone()), ("function", function.clone()), ("event", event.clone())]), *v)
            }),
        );
        gauges(
            &mut r,
            "ms_false_sharing_score",
            top("HITM loads per second on cache lines that threads share at different offsets (msen false-share's verdict)"),
            t.false_sharing.iter().map(|(line, mapping, pid, v)| {
                (labels(&[("line", line.clone()), ("mapping", mapping.clone()), ("pid", pid.to_string())]), *v)
            }),
        );
        gauges(
            &mut r,
            "ms_remote_dram_hotspot",
            top("Loads per second served by another node's memory, by flow, memory node and the flow's interface"),
            t.remote_dram.iter().map(|(flow, node, ifindex, v)| {
                (labels(&[("flow", flow.clone()), ("numa", node.clone()), ("ifindex", ifindex.to_string())]), *v)
            }),
        );
        gauge_i64(
            &mut r,
            "ms_rollup_overflow_samples",
            "Samples in the window the live rollups could not key (over their bound of distinct keys per second)",
            t.overflow as i64,
        );
    }
    counter(&mut r, "ms_mode_switches", "Mode switches since the capture started", s.switches);
    gauge_f64(&mut r, "ms_uptime_seconds", "Seconds since the capture started", s.uptime_secs);
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_mode_rate_and_drops_by_reason() {
        let mut s = Status { mode: crate::trace::meta::Mode::Diagnostic, samples_per_sec: 1234.5, ..Default::default() };
        s.dropped.insert("budget".into(), 7);
        let t = render(&s, None);
        assert!(t.contains("ms_agent_mode 1\n"), "{t}");
        assert!(t.contains("ms_samples_per_sec 1234.5\n"), "{t}");
        assert!(t.contains("ms_samples_dropped_total{reason=\"budget\"} 7\n"), "{t}");
        assert!(t.ends_with("# EOF\n"), "{t}");
        let classic = to_text_004(&t);
        assert!(classic.contains("# TYPE ms_samples_dropped_total counter\n"), "{classic}");
        assert!(classic.contains("# TYPE ms_agent_mode gauge\n"), "{classic}");
        assert!(!classic.contains("# EOF"), "{classic}");
    }
}
