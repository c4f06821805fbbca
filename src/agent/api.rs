//! The control API (MicroSentinel's /api/v1): requests are checked here and
//! queued for the capture loop (`record::control`), which applies them
//! within one poll interval (100 ms).

use super::http::{Request, Response};
use crate::record::control::{Control, ModeConfig, Request as Ctl};
use crate::trace::meta::{Budget, Mode};
use serde_json::{json, Value};

/// The paths and the method each takes.
const ROUTES: &[(&str, &str)] = &[
    ("/api/v1/status", "GET"),
    ("/api/v1/mode", "POST"),
    ("/api/v1/token-bucket", "POST"),
    ("/api/v1/snapshot", "POST"),
    ("/api/v1/alert", "POST"),
];

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
    if req.method != method {
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
