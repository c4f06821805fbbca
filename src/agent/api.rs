//! The control API (MicroSentinel's /api/v1): requests are checked here and
//! queued for the capture loop (`record::control`), which applies them
//! within one poll interval (100 ms).

use super::http::{Request, Response};
use crate::record::control::{Control, ModeConfig, Request as Ctl};
use crate::trace::meta::{Budget, Mode};
use serde_json::{json, Value};

/// The paths and the methods each takes (as an Allow header lists them).
const ROUTES: &[(&str, &str)] = &[
    ("/api/v1/pmu-config", "GET, POST"),
    ("/api/v1/status", "GET"),
    ("/api/v1/mode", "POST"),
    ("/api/v1/token-bucket", "POST"),
    ("/api/v1/snapshot", "POST"),
    ("/api/v1/alert", "POST"),
    ("/api/v1/targets", "POST"),
    ("/api/v1/symbols/jit", "POST"),
    ("/api/v1/symbols/data", "POST"),
];

/// An address or size: a number, or a string in hex (0x...) or decimal.
fn number(v: &Value, what: &str) -> Result<u64, String> {
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(|| format!("{what} must be a non-negative integer, not {n}")),
        Value::String(s) => match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => s.parse(),
        }
        .map_err(|_| format!("{what} {s:?} is not a number (give 0x-hex or decimal)")),
        _ => Err(format!("{what} must be a number or a \"0x...\" string")),
    }
}

/// A symbol or object name: one line, something printable.
fn name(v: Option<&Value>, what: &str) -> Result<String, String> {
    let n = v.and_then(Value::as_str).ok_or_else(|| format!("{what} needs a \"name\""))?;
    if n.is_empty() || n.contains(['\n', '\r']) || n.len() > 4096 {
        return Err(format!("{what}: the name must be one line of 1..4096 bytes"));
    }
    Ok(n.to_string())
}

/// {"pids"?: [N, ...], "flows"?: ["CIDR[:PORT]", ...]}: the targets that replace
/// the in-kernel filters (an empty or missing list keeps everything).
fn targets(v: &Value) -> Result<(Vec<u32>, Vec<crate::flow::FlowFilter>), String> {
    let mut pids = Vec::new();
    if let Some(p) = v.get("pids") {
        for x in p.as_array().ok_or("\"pids\" must be a list of process ids")? {
            pids.push(x.as_u64().filter(|&n| n > 0 && n <= u32::MAX as u64).ok_or_else(|| format!("{x} is not a process id"))? as u32);
        }
    }
    let mut flows = Vec::new();
    if let Some(f) = v.get("flows") {
        for x in f.as_array().ok_or("\"flows\" must be a list of \"CIDR[:PORT]\" strings")? {
            let s = x.as_str().ok_or_else(|| format!("{x} is not a \"CIDR[:PORT]\" string"))?;
            flows.extend(crate::flow::FlowFilter::parse(s)?);
        }
    }
    if pids.len() > 16 || flows.len() > 8 {
        return Err(format!("at most 16 pids and 8 flow filters (got {} and {})", pids.len(), flows.len()));
    }
    Ok((pids, flows))
}

/// {"pid": N, "symbols": [{"start": .., "size": .., "name": ..}]} -> perf-map text.
fn jit_symbols(v: &Value) -> Result<(u32, String, usize), String> {
    let pid = v
        .get("pid")
        .and_then(Value::as_u64)
        .filter(|&p| p > 0 && p <= u32::MAX as u64)
        .ok_or("give \"pid\": the process the code runs in")?;
    let syms =
        v.get("symbols").and_then(Value::as_array).ok_or("give \"symbols\": [{\"start\": \"0x...\", \"size\": N, \"name\": \"...\"}]")?;
    let mut map = String::new();
    for (i, s) in syms.iter().enumerate() {
        let what = format!("symbols[{i}]");
        let start = number(s.get("start").ok_or_else(|| format!("{what} needs a \"start\""))?, &format!("{what}.start"))?;
        let size = number(s.get("size").ok_or_else(|| format!("{what} needs a \"size\""))?, &format!("{what}.size"))?;
        if size == 0 {
            return Err(format!("{what}.size must be at least 1"));
        }
        map.push_str(&format!("{start:x} {size:x} {}\n", name(s.get("name"), &what)?));
    }
    Ok((pid as u32, map, syms.len()))
}

/// {"objects": [{"address": .., "size": .., "name": .., "type"?: ..}]} -> `--data-objects` text.
fn data_objects(v: &Value) -> Result<(String, usize), String> {
    let objs =
        v.get("objects").and_then(Value::as_array).ok_or("give \"objects\": [{\"address\": \"0x...\", \"size\": N, \"name\": \"...\"}]")?;
    let mut text = String::new();
    for (i, o) in objs.iter().enumerate() {
        let what = format!("objects[{i}]");
        let addr = number(o.get("address").ok_or_else(|| format!("{what} needs an \"address\""))?, &format!("{what}.address"))?;
        let size = number(o.get("size").ok_or_else(|| format!("{what} needs a \"size\""))?, &format!("{what}.size"))?;
        let n = name(o.get("name"), &what)?;
        if n.contains(char::is_whitespace) {
            return Err(format!("{what}: the name must have no spaces (the type may)"));
        }
        let ty = o.get("type").and_then(Value::as_str).unwrap_or("");
        if ty.contains(['\n', '\r', '#']) {
            return Err(format!("{what}: the type must be one line without '#'"));
        }
        text.push_str(&format!("{addr:#x} {size} {n} {ty}\n"));
    }
    Ok((text, objs.len()))
}

/// Answer one request. `token`: the bearer token every request must carry.
pub fn handle(req: &Request, control: &Control, token: Option<&str>) -> Response {
    if let Some(t) = token {
        let given = req.header("authorization").and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(t) {
            return Response::error(401, "missing or wrong token: send Authorization: Bearer <the --control-token file's token>");
        }
    }
    let Some(&(_, method)) = ROUTES.iter().find(|(p, _)| *p == req.path) else {
        let paths: Vec<&str> = ROUTES.iter().map(|(p, _)| *p).collect();
        return Response::error(404, &format!("no such endpoint {}; the endpoints are {}", req.path, paths.join(", ")));
    };
    if !method.split(", ").any(|m| m == req.method) {
        return Response::method_not_allowed(method);
    }
    let body = || -> Result<Value, Response> {
        let v: Value = serde_json::from_slice(&req.body).map_err(|e| Response::error(400, &format!("the body is not JSON: {e}")))?;
        if !v.is_object() {
            return Err(Response::error(400, "the body must be a JSON object"));
        }
        Ok(v)
    };
    match req.path.as_str() {
        "/api/v1/status" => match control.status().map(serde_json::to_value) {
            Some(Ok(mut v)) => {
                v["snapshots"] = json!(control.snapshots());
                Response::json(200, &v)
            }
            Some(Err(e)) => Response::error(500, &e.to_string()),
            None => Response::error(503, "the capture is starting; retry in a second"),
        },
        "/api/v1/mode" => {
            let v = match body() {
                Ok(v) => v,
                Err(r) => return r,
            };
            let mode = match v.get("mode").and_then(Value::as_str) {
                Some("auto") => None,
                Some(m) => match Mode::parse(m) {
                    Some(m) => Some(m),
                    None => return Response::error(400, &format!("mode {m:?}: use sentinel, diagnostic or auto")),
                },
                None => return Response::error(400, "give {\"mode\": \"sentinel\" | \"diagnostic\" | \"auto\"}"),
            };
            control.request(Ctl::SetMode { mode, cause: "control".into() });
            Response::json(200, &json!({ "accepted": true, "mode": mode.map_or("auto", Mode::name) }))
        }
        "/api/v1/token-bucket" => {
            let v = match body() {
                Ok(v) => v,
                Err(r) => return r,
            };
            match token_bucket(&v, control) {
                Ok((mode, b)) => {
                    control.request(Ctl::SetBudget { mode, budget: b });
                    Response::json(200, &json!({ "accepted": true, "mode": mode.name(), "budget": b }))
                }
                Err(why) => Response::error(400, &why),
            }
        }
        "/api/v1/snapshot" => {
            if !control.flight.load(std::sync::atomic::Ordering::SeqCst) {
                return Response::error(409, "this capture has no flight recorder: start it with --flight-recorder SIZE");
            }
            // An empty body is fine; {"reason": "..."} names the cause.
            let reason = if req.body.is_empty() {
                None
            } else {
                match body() {
                    Ok(v) => v.get("reason").and_then(Value::as_str).map(str::to_string),
                    Err(r) => return r,
                }
            };
            control.request_snapshot(format!("control{}", reason.map(|r| format!(": {r}")).unwrap_or_default()));
            Response::json(200, &json!({ "accepted": true }))
        }
        "/api/v1/alert" => {
            // An Alertmanager webhook: {"status": "firing"|"resolved", "alerts": [{"labels": {"alertname": ...}}]}.
            let v = match body() {
                Ok(v) => v,
                Err(r) => return r,
            };
            let Some(status) = v.get("status").and_then(Value::as_str) else {
                return Response::error(400, "not an Alertmanager webhook: no \"status\"");
            };
            if status != "firing" {
                return Response::json(200, &json!({ "accepted": false, "why": format!("status {status}: only firing alerts trigger") }));
            }
            let mut names: Vec<&str> = v
                .get("alerts")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|x| x.get("labels")?.get("alertname")?.as_str()).collect())
                .unwrap_or_default();
            names.sort_unstable();
            names.dedup();
            let cause = format!("alert: {}", if names.is_empty() { "unnamed".to_string() } else { names.join(",") });
            control.request(Ctl::Trigger { cause: cause.clone() });
            let snapshot = control.flight.load(std::sync::atomic::Ordering::SeqCst);
            if snapshot {
                control.request_snapshot(cause.clone());
            }
            Response::json(200, &json!({ "accepted": true, "cause": cause, "snapshot": snapshot }))
        }
        "/api/v1/targets" => {
            let v = match body() {
                Ok(v) => v,
                Err(r) => return r,
            };
            match targets(&v) {
                Ok((pids, flows)) => {
                    let text = json!({ "accepted": true, "pids": pids, "flows": flows.iter().map(|f| f.to_string()).collect::<Vec<_>>() });
                    control.request(Ctl::SetTargets { pids, flows });
                    Response::json(200, &text)
                }
                Err(e) => Response::error(400, &e),
            }
        }
        "/api/v1/pmu-config" if req.method == "GET" => match control.status() {
            Some(s) => Response::json(200, &json!({ "events": s.events })),
            None => Response::error(503, "the capture is starting; retry in a second"),
        },
        "/api/v1/pmu-config" => {
            let v = match body() {
                Ok(v) => v,
                Err(r) => return r,
            };
            let Some(status) = control.status() else {
                return Response::error(503, "the capture is starting; retry in a second");
            };
            match pmu_change(v, &status.events, max_sample_rate()) {
                Ok(c) => {
                    let text = json!({ "accepted": true, "event": c.event, "enabled": c.enabled, "freq": c.freq, "period": c.period });
                    control.request(Ctl::PmuConfig(c));
                    Response::json(200, &text)
                }
                Err(e) => Response::error(400, &e),
            }
        }
        "/api/v1/symbols/jit" => match body().map_err(Some).and_then(|v| jit_symbols(&v).map_err(|e| Some(Response::error(400, &e)))) {
            Ok((pid, map, n)) => {
                control.request(Ctl::RegisterJit { pid, map });
                Response::json(200, &json!({ "accepted": true, "pid": pid, "symbols": n }))
            }
            Err(r) => r.unwrap_or_else(|| Response::error(400, "bad request")),
        },
        "/api/v1/symbols/data" => match body().map_err(Some).and_then(|v| data_objects(&v).map_err(|e| Some(Response::error(400, &e)))) {
            Ok((text, n)) => {
                control.request(Ctl::RegisterData { text });
                Response::json(200, &json!({ "accepted": true, "objects": n }))
            }
            Err(r) => r.unwrap_or_else(|| Response::error(400, "bad request")),
        },
        _ => Response::error(404, "no such endpoint"),
    }
}

/// `{"mode"?: "sentinel"|"diagnostic", "rate": N, "burst"?: M, "hard_drop_ns"?: K}`;
/// without "mode", the mode in force.
fn token_bucket(v: &Value, control: &Control) -> Result<(Mode, Budget), String> {
    let num = |k: &str| -> Result<Option<u64>, String> {
        match v.get(k) {
            None => Ok(None),
            Some(x) => x.as_u64().map(Some).ok_or_else(|| format!("{k} must be a non-negative integer, not {x}")),
        }
    };
    let mode = match v.get("mode").and_then(Value::as_str) {
        None => control.status().unwrap_or_default().mode,
        Some(m) => Mode::parse(m).ok_or_else(|| format!("mode {m:?}: use sentinel or diagnostic"))?,
    };
    let rate = num("rate")?.ok_or("give rate (samples per second per CPU), e.g. {\"rate\": 5000}")?;
    if rate == 0 || rate > 10_000_000 {
        return Err(format!("rate must be 1..=10000000 samples per second per CPU, not {rate}"));
    }
    let burst = num("burst")?;
    if burst == Some(0) {
        return Err("burst must be at least 1 sample".into());
    }
    Ok((mode, ModeConfig::budget(rate, burst, num("hard_drop_ns")?.unwrap_or(0))))
}

/// The kernel's cap on sampling frequencies (it refuses a higher one).
fn max_sample_rate() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/perf_event_max_sample_rate").ok().and_then(|t| t.trim().parse().ok()).unwrap_or(100_000)
}

/// `{"event": NAME, "enabled"?: bool, "freq"?: HZ, "period"?: N}`, checked
/// against the opened events: a rate of the kind the event was opened with.
fn pmu_change(v: Value, events: &[crate::record::control::EventState], max_freq: u64) -> Result<crate::record::control::PmuChange, String> {
    let c: crate::record::control::PmuChange = serde_json::from_value(v)
        .map_err(|e| format!("{e}; give {{\"event\": NAME, \"enabled\"?: true|false, \"freq\"?: HZ, \"period\"?: N}}"))?;
    let Some(e) = events.iter().find(|e| e.name == c.event) else {
        let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
        return Err(if names.is_empty() {
            "this capture has no events to tune (a mock capture)".into()
        } else {
            format!("no event {:?} in this capture; its events: {} (a new event needs a new msen record)", c.event, names.join(", "))
        });
    };
    match (c.enabled, c.freq, c.period) {
        (None, None, None) => return Err("nothing to change: give \"enabled\", \"freq\" or \"period\"".into()),
        (_, Some(_), Some(_)) => return Err("give \"freq\" or \"period\", not both".into()),
        _ => {}
    }
    if let Some(f) = c.freq {
        if e.sampling != "freq" {
            return Err(format!("{} was opened with a period (-c): give \"period\"", e.name));
        }
        if f == 0 || f > max_freq {
            return Err(format!("freq must be 1..={max_freq} Hz (kernel.perf_event_max_sample_rate), not {f}"));
        }
    }
    if let Some(p) = c.period {
        if e.sampling != "period" {
            return Err(format!("{} was opened with a frequency (-F): give \"freq\"", e.name));
        }
        if p == 0 {
            return Err("period must be at least 1".into());
        }
    }
    Ok(c)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::record::control::EventState;

    fn events() -> Vec<EventState> {
        vec![
            EventState { name: "cpu-clock".into(), enabled: true, sampling: "freq", rate: 4000, ..Default::default() },
            EventState { name: "page-faults".into(), enabled: true, sampling: "period", rate: 1, ..Default::default() },
        ]
    }

    #[test]
    fn pmu_changes_are_checked_against_the_opened_events() {
        let ok = pmu_change(json!({"event": "cpu-clock", "freq": 500}), &events(), 100_000).unwrap();
        assert_eq!(ok.freq, Some(500));
        assert!(pmu_change(json!({"event": "page-faults", "enabled": false}), &events(), 100_000).is_ok());
        for (bad, why) in [
            (json!({"event": "cycles", "enabled": false}), "no event \"cycles\""),
            (json!({"event": "cpu-clock"}), "nothing to change"),
            (json!({"event": "cpu-clock", "period": 10}), "give \"freq\""),
            (json!({"event": "page-faults", "freq": 10}), "give \"period\""),
            (json!({"event": "cpu-clock", "freq": 200000}), "1..=100000"),
            (json!({"event": "cpu-clock", "freq": 10, "period": 10}), "not both"),
            (json!({"event": "cpu-clock", "enabled": "no"}), "invalid type"),
            (json!({"event": "cpu-clock", "rate": 10}), "unknown field"),
        ] {
            let e = pmu_change(bad.clone(), &events(), 100_000).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
