//! The control API (MicroSentinel's /api/v1): requests are checked here and
//! queued for the capture loop (`record::control`), which applies them
//! within one poll interval (100 ms).

use super::http::{Request, Response};
use crate::record::control::{Control, ModeConfig, Request as Ctl};
use crate::trace::meta::{Budget, Mode};
use serde_json::{json, Value};

/// The paths and the method each takes.
const ROUTES: &[(&str, &str)] = &[("/api/v1/status", "GET"), ("/api/v1/mode", "POST"), ("/api/v1/token-bucket", "POST")];

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
            Some(Ok(v)) => Response::json(200, &v),
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
