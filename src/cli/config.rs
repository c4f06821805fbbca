//! `msen record --config FILE`: `key=value` lines (`#` comments), with
//! MicroSentinel's agent.conf keys and every long option of `msen record`
//! (`hold=30`, `freq=999`, `flow_filter=10.0.0.0/8`). The file becomes
//! options placed before the command line's own, and the record command
//! lets a later option override an earlier one: flags given on the command
//! line win.

use super::UsageError;

/// MicroSentinel keys that msen has no use for, and why (accepted, noted).
const NOT_NEEDED: &[(&str, &str)] = &[
    ("tsc_calibration_enabled", "samples and BPF tags share CLOCK_MONOTONIC, so there is no TSC skew to calibrate"),
    ("tsc_slope_alpha", "no TSC calibration (CLOCK_MONOTONIC throughout)"),
    ("tsc_offset_alpha", "no TSC calibration (CLOCK_MONOTONIC throughout)"),
    ("agg_window_ns", "msen keeps raw samples and aggregates at analysis time"),
    ("agg_flush_ms", "msen keeps raw samples; --flush sets how often they are written"),
];

/// msen's table names: a seed config may name them, but not change them.
const TABLES: &[(&str, &str)] =
    &[("clickhouse_table", "ms_flow_rollup"), ("clickhouse_raw_table", "ms_raw_samples"), ("clickhouse_stack_table", "ms_stack_traces")];

fn bool_of(key: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("{key}={v}: give true or false")),
    }
}

fn ms_to_secs(key: &str, v: &str) -> Result<String, String> {
    let ms: u64 = v.parse().map_err(|_| format!("{key}={v}: give milliseconds as a whole number"))?;
    Ok(format!("{}", ms as f64 / 1000.0))
}

/// The parsed file: options for `msen record`, and notes to print.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expanded {
    /// (long option without dashes, its value).
    pub args: Vec<(String, Option<String>)>,
    pub notes: Vec<String>,
}

/// Turn the file's lines into `msen record` options. `longs` are the record
/// command's long option names and whether each takes a value.
pub fn expand(text: &str, file: &str, longs: &[(String, bool)]) -> Result<Expanded, UsageError> {
    let mut out = Expanded::default();
    let (mut metrics, mut control) = ((None, None), (None, None));
    let mut anomaly_enabled = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |why: String| UsageError(format!("{file}:{}: {why}", i + 1));
        let (k, v) = line.split_once('=').ok_or_else(|| at(format!("{line:?} is not key=value")))?;
        let (key, v) = (k.trim().to_ascii_lowercase().replace('-', "_"), v.trim());
        let mut push = |flag: &str, value: Option<String>| out.args.push((flag.to_string(), value));
        match key.as_str() {
            "mode" | "diagnostic_mode" => {
                let m = match v {
                    "sentinel" | "diagnostic" | "auto" => v.to_string(),
                    _ => (if bool_of(&key, v).map_err(at)? { "diagnostic" } else { "sentinel" }).to_string(),
                };
                push("mode", Some(m));
            }
            "clickhouse_endpoint" => push("clickhouse", Some(v.into())),
            "clickhouse_flush_ms" => push("flush", Some(ms_to_secs(&key, v).map_err(at)?)),
            "clickhouse_batch_size" => push("batch-rows", Some(v.into())),
            "anomaly_interval_ms" => push("anomaly-interval", Some(format!("{v}ms"))),
            "anomaly_enabled" => anomaly_enabled = Some(bool_of(&key, v).map_err(at)?),
            "metrics_address" => metrics.0 = Some(v.to_string()),
            "metrics_port" => metrics.1 = Some(v.to_string()),
            "control_address" => control.0 = Some(v.to_string()),
            "control_port" => control.1 = Some(v.to_string()),
            "cpus" => push("cpu", Some(v.into())),
            "perf_mock_mode" | "mock_period_ms" => {
                return Err(at(format!("{key}: msen's synthetic captures are `msen record --mock SCENARIO`; drop this key")))
            }
            "config" => return Err(at("a config file cannot name another one".into())),
            k if TABLES.iter().any(|(t, _)| *t == k) => {
                let name = TABLES.iter().find(|(t, _)| *t == k).map_or("", |(_, n)| *n);
                if v != name {
                    return Err(at(format!(
                        "{k}={v}: msen writes this table as {name} (names are fixed so every host's rows meet); use --database to keep captures apart"
                    )));
                }
            }
            k if NOT_NEEDED.iter().any(|(n, _)| *n == k) => {
                let why = NOT_NEEDED.iter().find(|(n, _)| *n == k).map_or("", |(_, w)| *w);
                out.notes.push(format!("{file}:{}: {k} is not needed: {why}", i + 1));
            }
            k => {
                let flag = k.replace('_', "-");
                match longs.iter().find(|(l, _)| *l == flag) {
                    Some((_, true)) => push(&flag, Some(v.to_string())),
                    Some((_, false)) => {
                        if bool_of(k, v).map_err(at)? {
                            push(&flag, None)
                        }
                    }
                    None => {
                        return Err(at(format!(
                            "unknown key {k}; use MicroSentinel's agent.conf keys or any `msen record` option without its dashes (see msen record --help)"
                        )))
                    }
                }
            }
        }
    }
    for (flag, (addr, port)) in [("metrics", metrics), ("control", control)] {
        match (addr, port) {
            (None, None) => {}
            (a, Some(p)) => {
                let a = a.unwrap_or_else(|| "127.0.0.1".into());
                let host = if a.contains(':') && !a.starts_with('[') { format!("[{a}]") } else { a };
                out.args.push((flag.to_string(), Some(format!("{host}:{p}"))));
            }
            (Some(_), None) => return Err(UsageError(format!("{file}: {flag}_address without {flag}_port"))),
        }
    }
    if anomaly_enabled == Some(false) {
        // The seed's switch: interfaces listed but watching turned off.
        out.args.retain(|(f, _)| f != "anomaly-interfaces" && f != "anomaly-interval");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn longs() -> Vec<(String, bool)> {
        [("hold", true), ("sentinel-budget", true), ("diagnostic-budget", true), ("anomaly-interfaces", true), ("no-embed", false)]
            .iter()
            .map(|(l, v)| (l.to_string(), *v))
            .collect()
    }

    #[test]
    fn the_seeds_agent_conf_becomes_record_options() {
        let text = "# MicroSentinel\nsentinel_budget=6000\ndiagnostic_budget=20000\nclickhouse_endpoint=http://127.0.0.1:8123\n\
                    clickhouse_table=ms_flow_rollup\nclickhouse_flush_ms=500\nmetrics_address=0.0.0.0\nmetrics_port=9105\n\
                    control_address=127.0.0.1\ncontrol_port=9200\nanomaly_enabled=true\nanomaly_interfaces=eth0,eth1\n\
                    anomaly_interval_ms=500\nmode=false\ntsc_calibration_enabled=true\nno_embed=true\n";
        let e = expand(text, "agent.conf", &longs()).unwrap();
        let flat: Vec<String> = e.args.iter().flat_map(|(f, v)| std::iter::once(format!("--{f}")).chain(v.clone())).collect();
        assert_eq!(
            flat.join(" "),
            "--sentinel-budget 6000 --diagnostic-budget 20000 --clickhouse http://127.0.0.1:8123 --flush 0.5 \
             --anomaly-interfaces eth0,eth1 --anomaly-interval 500ms --mode sentinel --no-embed \
             --metrics 0.0.0.0:9105 --control 127.0.0.1:9200"
        );
        assert_eq!(e.notes.len(), 1, "{:?}", e.notes);
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        let err = |t: &str| expand(t, "a.conf", &longs()).unwrap_err().0;
        assert_eq!(err("hold=3\nnonsense\n"), "a.conf:2: \"nonsense\" is not key=value");
        assert!(err("\nturbo=1").starts_with("a.conf:2: unknown key turbo;"));
        assert!(err("clickhouse_raw_table=raw").contains("msen writes this table as ms_raw_samples"));
        assert!(err("mode=maybe").contains("mode=maybe: give true or false"));
        assert!(err("metrics_address=0.0.0.0").contains("metrics_address without metrics_port"));
    }
}
