//! A small HTTP/1.1 server for the agent's endpoints: one request per
//! connection (Connection: close), bounded everywhere a client could make it
//! wait or grow. Requests are parsed by httparse; the rest is std.
//!
//! Bounds: headers at most 16 KiB (431), a body at most `max_body` (413,
//! refused before it is read), a whole request within `deadline` (408), at
//! most `MAX_CONNECTIONS` served at once (503 beyond). None of it runs on
//! the capture's thread.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAX_HEADER_BYTES: usize = 16 << 10;
const MAX_CONNECTIONS: usize = 32;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Without the query string.
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Extra headers (Allow on a 405).
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        Response { status, content_type: "application/json", body: format!("{v}\n").into_bytes(), headers: Vec::new() }
    }

    /// `{"error": why}`.
    pub fn error(status: u16, why: &str) -> Response {
        Response::json(status, &serde_json::json!({ "error": why }))
    }

    pub fn method_not_allowed(allow: &str) -> Response {
        let mut r = Response::error(405, &format!("use {allow} on this path"));
        r.headers.push(("Allow", allow.to_string()));
        r
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Limits of one server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body: usize,
    /// The whole request (headers and body) must arrive within this.
    pub deadline: Duration,
}

pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// A running server; dropping it stops accepting.
pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

impl Server {
    pub fn start(listener: TcpListener, name: &'static str, limits: Limits, handler: Handler) -> std::io::Result<Server> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(0));
        let st = stop.clone();
        let thread = std::thread::Builder::new().name(format!("msen-{name}")).spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = conn else { continue };
                if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                    active.fetch_sub(1, Ordering::SeqCst);
                    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
                    let _ = write_response(&mut stream, &Response::error(503, "too many connections; retry"));
                    continue;
                }
                let (h, a) = (handler.clone(), active.clone());
                let spawned = std::thread::Builder::new().name(format!("msen-{name}-conn")).spawn(move || {
                    serve_one(stream, limits, &h);
                    a.fetch_sub(1, Ordering::SeqCst);
                });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::SeqCst);
                }
            }
        })?;
        Ok(Server { addr, stop, thread: Some(thread) })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_response(s: &mut TcpStream, r: &Response) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(&r.body)?;
    s.flush()
}

/// Read into `buf` until `done(buf)` or the deadline; false on timeout or EOF.
fn read_until(s: &mut TcpStream, buf: &mut Vec<u8>, until: Instant, limit: usize, done: impl Fn(&[u8]) -> bool) -> Result<(), u16> {
    let mut chunk = [0u8; 4096];
    while !done(buf) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(408);
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut chunk) {
            Ok(0) => return Err(400),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return Err(408),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(400),
        }
        if buf.len() > limit && !done(buf) {
            return Err(431);
        }
    }
    Ok(())
}

fn serve_one(mut s: TcpStream, limits: Limits, handler: &Handler) {
    let _ = s.set_write_timeout(Some(limits.deadline));
    let Ok(peer) = s.peer_addr() else { return };
    let until = Instant::now() + limits.deadline;
    let r = match read_request(&mut s, peer, limits, until) {
        Ok(req) => handler(&req),
        Err((status, why)) => Response::error(status, &why),
    };
    let _ = write_response(&mut s, &r);
}

fn read_request(s: &mut TcpStream, peer: SocketAddr, limits: Limits, until: Instant) -> Result<Request, (u16, String)> {
    let mut buf = Vec::new();
    let end_of_headers = |b: &[u8]| b.windows(4).any(|w| w == b"\r\n\r\n");
    read_until(s, &mut buf, until, MAX_HEADER_BYTES, end_of_headers).map_err(|st| match st {
        408 => (408, "the request did not arrive in time".to_string()),
        431 => (431, format!("request headers over {MAX_HEADER_BYTES} bytes")),
        _ => (400, "the connection closed before the request was complete".to_string()),
    })?;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(&buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err((400, "incomplete request head".into())),
        Err(e) => return Err((400, format!("not an HTTP request: {e}"))),
    };
    let method = req.method.unwrap_or("").to_string();
    let target = req.path.unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_string();
    let headers: Vec<(String, String)> =
        req.headers.iter().map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).trim().to_string())).collect();
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    if find("transfer-encoding").is_some() {
        return Err((411, "chunked bodies are not accepted; send Content-Length".into()));
    }
    let len = match find("content-length") {
        Some(v) => v.parse::<usize>().map_err(|_| (400, format!("Content-Length {v:?} is not a number")))?,
        None => 0,
    };
    if len > limits.max_body {
        return Err((413, format!("a body of {len} bytes is over the limit of {} bytes", limits.max_body)));
    }
    let mut body = buf.split_off(head_len);
    let want = len;
    read_until(s, &mut body, until, want, |b| b.len() >= want).map_err(|st| match st {
        408 => (408, "the request body did not arrive in time".to_string()),
        _ => (400, "the connection closed before the body was complete".to_string()),
    })?;
    body.truncate(len);
    Ok(Request { method, path, headers, body, peer })
}
