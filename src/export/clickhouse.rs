//! `msen export --clickhouse URL`: captures into ClickHouse over HTTP(S),
//! RowBinary with explicit column lists, exactly once.
//!
//! Exactly-once without server-side deduplication (18.16 has no
//! insert_deduplication_token, and non-replicated MergeTree none at all):
//! - every row carries its capture id and its trace block; one INSERT holds
//!   whole blocks of one capture, and one capture is one partition, so an
//!   INSERT is one part: after any failure a block is all there or absent;
//! - before sending, and again before every retry, the exporter asks which
//!   blocks of the capture the table holds (one GROUP BY over the primary
//!   key's prefix) and sends only the missing ones; a block found partly
//!   there (rows from another tool or a hand-made insert) is deleted and sent
//!   again;
//! - ms_captures is written last: its row means the capture is complete, so
//!   a re-run over thousands of captures skips the done ones with one query
//!   each.

use super::rows::{CaptureAcc, CaptureCounts, RowBuilder};
use super::table::{self, Table};
use crate::analyze::loaded::Loaded;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

/// Samples per INSERT at most (ClickHouse's max_insert_block_size is
/// 1,048,576: a request up to it is one block, one part).
pub const MAX_ROWS: u64 = 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum ChError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach ClickHouse at {url}: {reason}; is the server running and the URL right (http://HOST:8123)?")]
    Connect { url: String, reason: String },
    #[error("ClickHouse at {url} refused the credentials (HTTP {status}): {message}; set CLICKHOUSE_USER and CLICKHOUSE_PASSWORD, or --password-file")]
    Auth { url: String, status: u16, message: String },
    #[error("ClickHouse answered HTTP {status} to {what}: {message}")]
    Server { status: u16, what: String, message: String },
    #[error("{0}")]
    Schema(String),
    #[error("{0}")]
    Trace(#[from] crate::trace::TraceError),
}

impl ChError {
    /// Worth another try: the server or the network may come back.
    pub fn transient(&self) -> bool {
        match self {
            ChError::Connect { .. } => true,
            // 5xx other than a query the server rejects for good.
            ChError::Server { status, message, .. } => *status >= 500 && !permanent_code(message),
            _ => false,
        }
    }
}

/// Server errors that no retry fixes (syntax, unknown table/column, types).
fn permanent_code(message: &str) -> bool {
    // Code: 62 syntax, 47 unknown identifier, 60 unknown table, 16 no such
    // column, 53 type mismatch, 27/33/117 parse errors of the data.
    let code = message.trim_start().strip_prefix("Code: ").and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u32>().ok());
    matches!(code, Some(16 | 27 | 33 | 47 | 53 | 60 | 62 | 117))
}

#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub database: String,
    pub create_tables: bool,
    /// With create_tables on a modern server: a TTL of this many days.
    pub ttl_days: Option<u32>,
    pub password_file: Option<std::path::PathBuf>,
    pub max_rows: u64,
    pub retries: u32,
    pub timeout: Duration,
    pub progress: bool,
}

/// One server: its address, credentials and version, asked once.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    /// scheme://host:port/ (no path, no credentials).
    base: String,
    auth: Option<String>,
    gzip: bool,
    database: String,
    pub version: String,
    pub modern: bool,
    retries: u32,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        f.debug_struct("Client").field("base", &self.base).field("version", &self.version).finish_non_exhaustive()
    }
}

fn sql_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('\'');
    for ch in s.chars() {
        match ch {
            '\'' => o.push_str("\\'"),
            '\\' => o.push_str("\\\\"),
            c => o.push(c),
        }
    }
    o.push('\'');
    o
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
}

impl Client {
    /// A client for `opts.url` with its credentials; nothing is sent yet.
    pub fn new(opts: &Options) -> Result<Client, ChError> {
        let usage = |m: &str| ChError::Usage(format!("--clickhouse {}: {m}", redact(&opts.url)));
        let (scheme, rest) = opts.url.split_once("://").ok_or_else(|| usage("give a URL such as http://localhost:8123"))?;
        if scheme != "http" && scheme != "https" {
            return Err(usage("the scheme must be http or https"));
        }
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if authority.contains('@') {
            return Err(usage(
                "credentials in the URL would show in the process list; set CLICKHOUSE_USER and CLICKHOUSE_PASSWORD, or --password-file",
            ));
        }
        if authority.is_empty() {
            return Err(usage("the URL names no host"));
        }
        let host = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                if p.parse::<u16>().is_err() && !authority.ends_with(']') {
                    return Err(usage("the port is not a number"));
                }
                h
            }
            _ => authority,
        };
        let user = std::env::var("CLICKHOUSE_USER").ok().filter(|u| !u.is_empty());
        let password = match &opts.password_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| ChError::Usage(format!("--password-file {}: {e}", p.display())))?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            ),
            None => std::env::var("CLICKHOUSE_PASSWORD").ok(),
        };
        let auth = match (&user, &password) {
            (None, None) => None,
            (u, p) => {
                use base64::Engine;
                let pair = format!("{}:{}", u.as_deref().unwrap_or("default"), p.as_deref().unwrap_or(""));
                Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
            }
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(opts.timeout))
            .build()
            .into();
        Ok(Client {
            agent,
            base: format!("{scheme}://{authority}/"),
            auth,
            gzip: !is_loopback(host),
            database: opts.database.clone(),
            version: String::new(),
            modern: false,
            retries: opts.retries,
        })
    }

    /// Check the URL and credentials, then ask the server's version.
    pub fn connect(opts: &Options) -> Result<Client, ChError> {
        let mut c = Client::new(opts)?;
        c.ask_version()?;
        Ok(c)
    }

    /// Connect, and check (with `opts.create_tables`, make) the tables:
    /// a client ready to export.
    pub fn open(opts: &Options) -> Result<Client, ChError> {
        let c = Client::connect(opts)?;
        c.prepare_tables(opts.create_tables, opts.ttl_days)?;
        Ok(c)
    }

    /// Ask the server's version (which DDL variant it takes).
    pub fn ask_version(&mut self) -> Result<(), ChError> {
        self.version = self.with_retries("SELECT version()", || self.query("SELECT version()"))?.trim().to_string();
        let major: u32 = self.version.split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
        self.modern = major >= 23;
        Ok(())
    }

    /// The same server, with another number of retries per request.
    pub fn with_retry_limit(&self, retries: u32) -> Client {
        Client { retries, ..self.clone() }
    }

    fn url(&self) -> String {
        self.base.clone()
    }

    /// POST a request; the body is SQL, or data after `query` in the URL.
    fn post(&self, query: Option<&str>, settings: &[(&str, String)], body: &[u8], what: &str) -> Result<String, ChError> {
        self.post_parts(query, settings, &[body], what)
    }

    /// POST a body made of `parts`, sent one after another (no copy into one buffer).
    fn post_parts(&self, query: Option<&str>, settings: &[(&str, String)], parts: &[&[u8]], what: &str) -> Result<String, ChError> {
        let mut req = self.agent.post(self.url()).query("database", &self.database);
        if let Some(q) = query {
            req = req.query("query", q);
        }
        for (k, v) in settings {
            req = req.query(*k, v);
        }
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let compressed;
        let parts: &[&[u8]] = if self.gzip && len > 4096 {
            let mut e = flate2::write::GzEncoder::new(Vec::with_capacity(len / 4), flate2::Compression::fast());
            for p in parts {
                e.write_all(p).map_err(|e| ChError::Usage(e.to_string()))?;
            }
            compressed = [e.finish().map_err(|e| ChError::Usage(e.to_string()))?];
            req = req.header("Content-Encoding", "gzip");
            &[&compressed[0][..]]
        } else {
            parts
        };
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut reader = Parts { parts, at: 0, off: 0 };
        let sent = if parts.len() == 1 {
            req.send(parts[0])
        } else {
            req.header("Content-Length", len.to_string()).send(ureq::SendBody::from_reader(&mut reader))
        };
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => return Err(ChError::Connect { url: self.base.clone(), reason: e.to_string() }),
        };
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| ChError::Connect { url: self.base.clone(), reason: e.to_string() })?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let message = text.trim().chars().take(600).collect::<String>();
        // 18.16 answers a bad password with 500 and Code 193; newer with 516 and 401/403.
        if status == 401 || status == 403 || message.contains("Code: 193") || message.contains("Code: 516") || message.contains("Code: 192")
        {
            return Err(ChError::Auth { url: self.base.clone(), status, message });
        }
        Err(ChError::Server { status, what: what.to_string(), message })
    }

    pub fn query(&self, sql: &str) -> Result<String, ChError> {
        let what: String = sql.split_whitespace().take(4).collect::<Vec<_>>().join(" ");
        self.post(None, &[], sql.as_bytes(), &what)
    }

    /// INSERT rows (RowBinary, in the table's column order) as one block.
    pub fn insert(&self, t: &Table, rows: u64, body: &[u8]) -> Result<(), ChError> {
        self.insert_parts(t, rows, &[body])
    }

    /// INSERT rows given in pieces (whole rows each), as one block.
    pub fn insert_parts(&self, t: &Table, rows: u64, parts: &[&[u8]]) -> Result<(), ChError> {
        let q = format!("INSERT INTO {} ({}) FORMAT RowBinary", t.name, t.column_list());
        // One request is one block, so one part, whatever its size.
        let block = (rows + 1).max(1_048_576).to_string();
        self.post_parts(Some(&q), &[("max_insert_block_size", block)], parts, &format!("INSERT INTO {}", t.name)).map(|_| ())
    }

    /// Run `f` until it succeeds, a permanent error, or the retries are spent.
    pub fn with_retries<T>(&self, what: &str, mut f: impl FnMut() -> Result<T, ChError>) -> Result<T, ChError> {
        let mut delay = Duration::from_millis(250);
        let mut attempt = 0;
        loop {
            match f() {
                Ok(v) => return Ok(v),
                Err(e) if e.transient() && attempt < self.retries => {
                    attempt += 1;
                    eprintln!("msen: {what}: {e}; retrying in {:.1} s ({attempt}/{})", delay.as_secs_f64(), self.retries);
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(8));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Check (and with `create`, make) the tables: each of msen's columns
    /// must exist with the type msen writes (either variant's).
    pub fn prepare_tables(&self, create: bool, ttl_days: Option<u32>) -> Result<(), ChError> {
        let names: Vec<String> = table::ALL.iter().map(|t| sql_str(t.name)).collect();
        let sql = format!(
            "SELECT table, name, type FROM system.columns WHERE database = {} AND table IN ({}) FORMAT TabSeparated",
            sql_str(&self.database),
            names.join(", ")
        );
        let text = self.with_retries("reading the tables' columns", || self.query(&sql))?;
        let mut have: HashMap<String, HashMap<String, String>> = HashMap::new();
        for line in text.lines() {
            let mut f = line.splitn(3, '\t');
            if let (Some(t), Some(n), Some(ty)) = (f.next(), f.next(), f.next()) {
                have.entry(t.to_string()).or_default().insert(n.to_string(), ty.to_string());
            }
        }
        for t in table::ALL {
            match have.get(t.name) {
                None if create => {
                    let ddl = t.ddl(self.modern, &format!("{}.", self.database), ttl_days);
                    self.with_retries(&format!("creating {}", t.name), || self.query(&ddl))?;
                }
                None => {
                    return Err(ChError::Schema(format!(
                        "table {}.{} does not exist on the server; add --create-tables, or create it from formats/clickhouse/tables-{}.sql",
                        self.database,
                        t.name,
                        if self.modern { "modern" } else { "old" }
                    )))
                }
                Some(cols) => {
                    for c in t.columns {
                        let Some(found) = cols.get(c.name) else {
                            return Err(ChError::Schema(format!(
                                "{}.{} has no column {} ({}); msen {} writes it: ALTER TABLE {} ADD COLUMN {} {}",
                                self.database,
                                t.name,
                                c.name,
                                c.ty.old_sql(),
                                env!("CARGO_PKG_VERSION"),
                                t.name,
                                c.name,
                                if self.modern { c.ty.modern_sql() } else { c.ty.old_sql() }
                            )));
                        };
                        if found != c.ty.old_sql() && found != c.ty.modern_sql() && !same_layout(found, c.ty) {
                            return Err(ChError::Schema(format!(
                                "{}.{}.{} is {found} on the server, but msen writes {} there; fix the column's type (formats/clickhouse/tables-*.sql) or export into another --database",
                                self.database,
                                t.name,
                                c.name,
                                c.ty.old_sql()
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A reader over byte slices, one after another.
struct Parts<'a> {
    parts: &'a [&'a [u8]],
    at: usize,
    off: usize,
}

impl std::io::Read for Parts<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(p) = self.parts.get(self.at) {
            if self.off < p.len() {
                let n = (p.len() - self.off).min(buf.len());
                buf[..n].copy_from_slice(&p[self.off..self.off + n]);
                self.off += n;
                return Ok(n);
            }
            self.at += 1;
            self.off = 0;
        }
        Ok(0)
    }
}

/// Types whose RowBinary layout equals what msen writes (a user's own DDL
/// may say LowCardinality where msen says String, or DateTime64(9, 'UTC')).
fn same_layout(found: &str, ty: table::Type) -> bool {
    let inner = found.strip_prefix("LowCardinality(").and_then(|r| r.strip_suffix(')')).unwrap_or(found);
    match ty {
        table::Type::Name | table::Type::Text => inner == "String",
        table::Type::Time => found.starts_with("DateTime64(9"),
        table::Type::ArrayName => found == "Array(String)" || found == "Array(LowCardinality(String))",
        _ => false,
    }
}

/// A URL with any credentials in it masked, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(a)) if a > s => format!("{}://***@{}", &url[..s], &url[a + 1..]),
        _ => url.to_string(),
    }
}

/// What one capture's export did.
#[derive(Debug, Clone, Default)]
pub struct CaptureReport {
    pub path: String,
    pub capture_id: String,
    /// Already complete on the server: nothing sent.
    pub skipped: bool,
    /// Rows sent now, per table.
    pub sent: Vec<(&'static str, u64)>,
    /// Rows the capture has in all, per table.
    pub counts: CaptureCounts,
    pub bytes: u64,
}

impl CaptureReport {
    /// A capture the server already holds complete: nothing sent.
    pub fn skipped(path: &std::path::Path, capture_id: String) -> CaptureReport {
        CaptureReport { path: path.display().to_string(), capture_id, skipped: true, ..Default::default() }
    }
}

/// The capture's id: the one in its metadata, or (older traces, perf.data
/// opened in place) one derived from the file's content.
pub fn capture_id_of(l: &Loaded, path: &std::path::Path) -> std::io::Result<String> {
    if !l.trace.meta.capture_id.is_empty() {
        return Ok(l.trace.meta.capture_id.clone());
    }
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::trace::meta::capture_id_from_hash(h.digest128()))
}

/// Rows per trace block of a capture already in `t`.
fn present_blocks(c: &Client, t: &Table, id: &str, only: Option<&[u32]>) -> Result<HashMap<u32, u64>, ChError> {
    let mut sql = format!("SELECT trace_block, count() FROM {} WHERE capture_id = {}", t.name, sql_str(id));
    if let Some(list) = only {
        let _ = write!(sql, " AND trace_block IN ({})", list.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
    }
    sql.push_str(" GROUP BY trace_block FORMAT TabSeparated");
    let text = c.with_retries(&format!("reading {}", t.name), || c.query(&sql))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let (b, n) = l.split_once('\t')?;
            Some((b.parse().ok()?, n.parse().ok()?))
        })
        .collect())
}

fn count_rows(c: &Client, t: &Table, id: &str) -> Result<u64, ChError> {
    let sql = format!("SELECT count() FROM {} WHERE capture_id = {} FORMAT TabSeparated", t.name, sql_str(id));
    let text = c.with_retries(&format!("reading {}", t.name), || c.query(&sql))?;
    Ok(text.trim().parse().unwrap_or(0))
}

/// Delete a capture's rows (all, or of some blocks) and wait until the
/// mutation is done, so what follows sees the table without them.
fn delete_rows(c: &Client, t: &Table, id: &str, blocks: Option<&[u32]>) -> Result<(), ChError> {
    let mut cond = format!("capture_id = {}", sql_str(id));
    if let Some(list) = blocks {
        let _ = write!(cond, " AND trace_block IN ({})", list.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
    }
    let sql = format!("ALTER TABLE {} DELETE WHERE {cond}", t.name);
    c.with_retries(&format!("repairing {}", t.name), || c.query(&sql))?;
    let wait = format!(
        "SELECT count() FROM system.mutations WHERE database = {} AND table = {} AND is_done = 0 FORMAT TabSeparated",
        sql_str(&c.database),
        sql_str(t.name)
    );
    for _ in 0..600 {
        if c.with_retries("waiting for a delete", || c.query(&wait))?.trim() == "0" {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(ChError::Schema(format!("the delete of partial rows in {} did not finish within 60 s; run the export again later", t.name)))
}

/// A piece of rows to send: whole rows of one table.
trait Piece: Copy {
    fn rows(&self) -> u64;
    fn bytes(&self) -> &[u8];
}

impl Piece for (u32, &table::RowBinary) {
    fn rows(&self) -> u64 {
        self.1.rows
    }
    fn bytes(&self) -> &[u8] {
        &self.1.buf
    }
}

impl Piece for &table::RowBinary {
    fn rows(&self) -> u64 {
        self.rows
    }
    fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// A stack row (stack_id, encoded row).
impl Piece for &(u64, Vec<u8>) {
    fn rows(&self) -> u64 {
        1
    }
    fn bytes(&self) -> &[u8] {
        &self.1
    }
}

/// Send `pending` (pieces absent from `t`) as one INSERT. After a failure
/// that may have landed, wait, ask `still_missing` which pieces are not
/// there (it repairs partial ones) and send those: the one retry rule of
/// every table. Returns the rows now there that were absent.
fn send_until_there<P: Piece>(
    c: &Client,
    t: &Table,
    mut pending: Vec<P>,
    mut still_missing: impl FnMut(Vec<P>) -> Result<Vec<P>, ChError>,
) -> Result<u64, ChError> {
    let total: u64 = pending.iter().map(Piece::rows).sum();
    let mut attempt = 0;
    while !pending.is_empty() {
        let n: u64 = pending.iter().map(Piece::rows).sum();
        let sent = {
            let parts: Vec<&[u8]> = pending.iter().map(Piece::bytes).collect();
            c.insert_parts(t, n, &parts)
        };
        match sent {
            Ok(()) => break,
            Err(e) if e.transient() && attempt < c.retries => {
                attempt += 1;
                let delay = Duration::from_millis(250 << attempt.min(5));
                eprintln!(
                    "msen: INSERT INTO {}: {e}; checking what landed, retrying in {:.1} s ({attempt}/{})",
                    t.name,
                    delay.as_secs_f64(),
                    c.retries
                );
                std::thread::sleep(delay);
                pending = still_missing(pending)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// Insert the blocks of `rows` the table lacks (per `present`); a block
/// found partly there is deleted first.
fn insert_blocks(c: &Client, t: &Table, id: &str, rows: &[(u32, &table::RowBinary)], present: &HashMap<u32, u64>) -> Result<u64, ChError> {
    let mut missing: Vec<(u32, &table::RowBinary)> = Vec::new();
    let mut partial: Vec<u32> = Vec::new();
    for &(b, r) in rows {
        match present.get(&b).copied().unwrap_or(0) {
            0 if r.rows > 0 => missing.push((b, r)),
            0 => {}
            n if n == r.rows => {}
            _ => {
                partial.push(b);
                missing.push((b, r));
            }
        }
    }
    if !partial.is_empty() {
        eprintln!("msen: {}: blocks {partial:?} of capture {id} are partly there; deleting them before sending them again", t.name);
        delete_rows(c, t, id, Some(&partial))?;
    }
    send_until_there(c, t, missing, |missing| {
        let blocks: Vec<u32> = missing.iter().map(|(b, _)| *b).collect();
        let now = present_blocks(c, t, id, Some(&blocks))?;
        let mut again = Vec::new();
        for (b, r) in missing {
            match now.get(&b).copied().unwrap_or(0) {
                0 => again.push((b, r)),
                n if n == r.rows => {}
                _ => {
                    delete_rows(c, t, id, Some(&[b]))?;
                    again.push((b, r));
                }
            }
        }
        Ok(again)
    })
}

/// Insert a capture-level table (flows, objects, the capture row): whole,
/// or not at all when already there.
fn insert_whole(c: &Client, t: &Table, id: &str, rows: &table::RowBinary) -> Result<u64, ChError> {
    let whole = |c: &Client| -> Result<bool, ChError> {
        let have = count_rows(c, t, id)?;
        if have != 0 && have != rows.rows {
            delete_rows(c, t, id, None)?;
        }
        Ok(have == rows.rows)
    };
    if whole(c)? || rows.rows == 0 {
        return Ok(0);
    }
    send_until_there(c, t, vec![rows], |p| Ok(if whole(c)? { Vec::new() } else { p }))
}

fn stacks_of(c: &Client, id: &str) -> Result<HashSet<u64>, ChError> {
    let sql = format!("SELECT stack_id FROM {} WHERE capture_id = {} FORMAT TabSeparated", table::STACKS.name, sql_str(id));
    Ok(c.with_retries("reading ms_stack_traces", || c.query(&sql))?.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// One capture's export, which may span several readings of its trace:
/// `msen export` reads it once; `record --clickhouse` reads the growing
/// file again at every flush and sends the blocks that were added.
#[derive(Debug)]
pub struct CaptureExport {
    pub capture_id: String,
    present_samples: HashMap<u32, u64>,
    present_rollup: HashMap<u32, u64>,
    stacks_there: HashSet<u64>,
    acc: CaptureAcc,
    /// Sample blocks [0, done) are on the server.
    done: u32,
    /// A send failed: what is there must be asked again before going on.
    stale: bool,
    counts: CaptureCounts,
    sent: [u64; 3],
    bytes: u64,
}

impl CaptureExport {
    /// Start (or resume) exporting capture `id`; None when the server
    /// already holds it complete.
    pub fn begin(c: &Client, id: String) -> Result<Option<CaptureExport>, ChError> {
        if count_rows(c, &table::CAPTURES, &id)? > 0 {
            return Ok(None);
        }
        Ok(Some(CaptureExport {
            present_samples: present_blocks(c, &table::SAMPLES, &id, None)?,
            present_rollup: present_blocks(c, &table::ROLLUP, &id, None)?,
            stacks_there: stacks_of(c, &id)?,
            capture_id: id,
            acc: CaptureAcc::default(),
            done: 0,
            stale: false,
            counts: CaptureCounts::default(),
            sent: [0; 3],
            bytes: 0,
        }))
    }

    /// Sample blocks known to be on the server.
    pub fn blocks_done(&self) -> u32 {
        self.done
    }

    /// Send `l`'s sample blocks from the first not yet sent on.
    pub fn send_blocks(&mut self, c: &Client, l: &Loaded, max_rows: u64) -> Result<(), ChError> {
        if self.stale {
            self.present_samples = present_blocks(c, &table::SAMPLES, &self.capture_id, None)?;
            self.present_rollup = present_blocks(c, &table::ROLLUP, &self.capture_id, None)?;
            self.stacks_there = stacks_of(c, &self.capture_id)?;
            self.stale = false;
        }
        let mut b = RowBuilder::resume(l, self.capture_id.clone(), std::mem::take(&mut self.acc));
        let r = self.send_with(c, &mut b, max_rows);
        self.acc = b.into_acc();
        if r.is_err() {
            self.stale = true;
        }
        r
    }

    fn send_with(&mut self, c: &Client, b: &mut RowBuilder<'_>, max_rows: u64) -> Result<(), ChError> {
        let id = self.capture_id.clone();
        for plan in b.plan(max_rows, self.done) {
            let mut batch = b.batch(&plan)?;
            // Stacks first: a sample's stack is there before the sample.
            let new: Vec<&(u64, Vec<u8>)> = batch.stacks.iter().filter(|(s, _)| !self.stacks_there.contains(s)).collect();
            for chunk in new.chunks(max_rows.max(1) as usize) {
                self.sent[1] += send_until_there(c, &table::STACKS, chunk.to_vec(), |pending| {
                    let there = stacks_of(c, &id)?;
                    Ok(pending.into_iter().filter(|(s, _)| !there.contains(s)).collect())
                })?;
                self.stacks_there.extend(chunk.iter().map(|(s, _)| *s));
            }
            let rollups: Vec<(u32, &table::RowBinary)> = batch.blocks.iter().map(|r| (r.block, &r.rollup)).collect();
            self.sent[2] += insert_blocks(c, &table::ROLLUP, &id, &rollups, &self.present_rollup)?;
            let samples: Vec<(u32, &table::RowBinary)> = batch.blocks.iter().map(|r| (r.block, &r.samples)).collect();
            self.sent[0] += insert_blocks(c, &table::SAMPLES, &id, &samples, &self.present_samples)?;
            for r in &batch.blocks {
                self.counts.samples += r.samples.rows;
                self.counts.rollups += r.rollup.rows;
                self.bytes += (r.samples.buf.len() + r.rollup.buf.len()) as u64;
                self.present_samples.insert(r.block, r.samples.rows);
                self.present_rollup.insert(r.block, r.rollup.rows);
                self.done = self.done.max(r.block + 1);
            }
            self.counts.stacks += batch.stacks.len() as u64;
            b.commit(&mut batch);
        }
        Ok(())
    }

    /// Send what is left of `l` (the complete trace), then its flows, data
    /// objects and last the ms_captures row that marks it complete.
    pub fn finish(mut self, c: &Client, l: &Loaded, path: &std::path::Path, max_rows: u64) -> Result<CaptureReport, ChError> {
        self.send_blocks(c, l, max_rows)?;
        let id = self.capture_id.clone();
        let b = RowBuilder::resume(l, id.clone(), std::mem::take(&mut self.acc));
        let (flows, objects) = (b.flows(), b.objects());
        let mut counts = self.counts;
        counts.flows = flows.rows;
        counts.objects = objects.rows;
        let sent_flows = insert_whole(c, &table::FLOWS, &id, &flows)?;
        let sent_objects = insert_whole(c, &table::OBJECTS, &id, &objects)?;
        let path_text = path.display().to_string();
        let sent_cap = insert_whole(c, &table::CAPTURES, &id, &b.capture(&counts, &path_text))?;
        Ok(CaptureReport {
            path: path_text,
            capture_id: id,
            skipped: false,
            sent: vec![
                (table::SAMPLES.name, self.sent[0]),
                (table::STACKS.name, self.sent[1]),
                (table::ROLLUP.name, self.sent[2]),
                (table::FLOWS.name, sent_flows),
                (table::OBJECTS.name, sent_objects),
                (table::CAPTURES.name, sent_cap),
            ],
            counts,
            bytes: self.bytes,
        })
    }
}

/// Export one capture whole.
pub fn export_capture(c: &Client, l: &Loaded, path: &std::path::Path, opts: &Options) -> Result<CaptureReport, ChError> {
    let id = capture_id_of(l, path).map_err(|e| ChError::Usage(format!("{}: {e}", path.display())))?;
    match CaptureExport::begin(c, id.clone())? {
        None => Ok(CaptureReport::skipped(path, id)),
        Some(x) => x.finish(c, l, path, opts.max_rows),
    }
}
