//! The always-on agent's endpoints around a capture: Prometheus metrics
//! (`--metrics`) and the control API (`--control`). Both only read the
//! status the capture publishes and queue requests for it
//! (`record::control`); the capture never calls into this module.

pub mod api;
pub mod http;
pub mod metrics;

use crate::record::control::Control;
use http::{Limits, Response, Server};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What `msen record` asked of the endpoints.
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    pub metrics: Option<String>,
    pub control: Option<String>,
    pub control_token: Option<PathBuf>,
}

/// The running endpoints (stopped when dropped).
#[derive(Debug)]
pub struct Agent {
    pub metrics: Option<Server>,
    pub control: Option<Server>,
}

/// `PORT` (loopback), `ADDR:PORT` or `[V6]:PORT`.
pub fn parse_addr(flag: &str, s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| format!("{flag} {s}: give PORT, ADDR:PORT or [ADDR]:PORT, e.g. 127.0.0.1:9464"))
}

fn bind(flag: &str, addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).map_err(|e| format!("{flag} {addr}: cannot listen: {e}; pick a free port"))
}

impl Agent {
    /// Bind both endpoints before the capture starts, so a taken port or a
    /// missing token fails at once.
    pub fn start(opts: &AgentOptions, control: Arc<Control>) -> Result<Agent, String> {
        let mut agent = Agent { metrics: None, control: None };
        if let Some(a) = &opts.metrics {
            let addr = parse_addr("--metrics", a)?;
            let c = control.clone();
            let handler: http::Handler = Arc::new(move |req| match (req.method.as_str(), req.path.as_str()) {
                ("GET", "/metrics") => match c.status() {
                    Some(s) => {
                        let (content_type, text) = metrics::negotiate(req.header("accept"), &s, c.tops().as_deref());
                        Response { status: 200, content_type, body: text.into_bytes(), headers: Vec::new() }
                    }
                    None => Response::error(503, "the capture is starting; retry in a second"),
                },
                (_, "/metrics") => Response::method_not_allowed("GET"),
                _ => Response::error(404, "metrics are at /metrics"),
            });
            let limits = Limits { max_body: 0, deadline: Duration::from_secs(5) };
            agent.metrics = Some(Server::start(bind("--metrics", addr)?, "metrics", limits, handler).map_err(|e| e.to_string())?);
        }
        if let Some(a) = &opts.control {
            let addr = parse_addr("--control", a)?;
            let token = match &opts.control_token {
                Some(f) => {
                    let text = std::fs::read_to_string(f).map_err(|e| format!("--control-token {}: {e}", f.display()))?;
                    let t = text.lines().next().unwrap_or("").trim().to_string();
                    if t.len() < 16 {
                        return Err(format!("--control-token {}: the token is {} characters; use at least 16", f.display(), t.len()));
                    }
                    Some(t)
                }
                None if !addr.ip().is_loopback() => {
                    return Err(format!(
                        "--control {addr} is reachable from other hosts: give --control-token FILE (requests then need Authorization: Bearer <token>), or bind to 127.0.0.1"
                    ))
                }
                None => None,
            };
            let c = control.clone();
            let handler: http::Handler = Arc::new(move |req| api::handle(req, &c, token.as_deref()));
            let limits = Limits { max_body: 64 << 10, deadline: Duration::from_secs(5) };
            agent.control = Some(Server::start(bind("--control", addr)?, "control", limits, handler).map_err(|e| e.to_string())?);
        }
        Ok(agent)
    }
}
