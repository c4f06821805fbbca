//! A private ClickHouse server (Debian's clickhouse-server, 18.16) for a
//! test: its own directory, config and loopback port; killed with SIGKILL
//! and restarted on the same data when a test needs it. And a recording
//! HTTP proxy in front of it that can fail chosen requests the ways a
//! network does (a reset after the server got the request, a 500).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn have_clickhouse() -> bool {
    Command::new("sh").args(["-c", "command -v clickhouse-server"]).stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

pub struct Server {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    name: String,
    /// The directory is a tmpfs mounted for this server (unmounted on drop).
    tmpfs: bool,
}

impl Server {
    /// Start a server with users `default` (no password) and `alice`
    /// (password "s3cret"), both limited to loopback.
    pub fn start() -> Server {
        Self::start_in(tempfile::tempdir().expect("tempdir"), false)
    }

    /// A server whose whole directory (data, logs) is a tmpfs of `mb`
    /// megabytes (root): its disk fills up; `resize` frees space.
    pub fn start_on_tmpfs(mb: u32) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let st =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={mb}M"), "tmpfs"]).arg(dir.path()).status().expect("mount");
        assert!(st.success(), "mounting a tmpfs for the server's disk");
        Self::start_in(dir, true)
    }

    pub fn resize(&self, mb: u32) {
        let st = Command::new("mount").args(["-o", &format!("remount,size={mb}M")]).arg(self.dir.path()).status().expect("mount");
        assert!(st.success(), "resizing the server's tmpfs");
    }

    fn start_in(dir: tempfile::TempDir, tmpfs: bool) -> Server {
        assert!(have_clickhouse(), "clickhouse-server is missing: run scripts/setup-clickhouse.sh");
        let mut s = Server { port: 0, dir, child: None, name: String::new(), tmpfs };
        for _ in 0..5 {
            s.port = free_port();
            s.name = format!("msen-test-{}-{}", std::process::id(), s.port);
            s.write_config();
            if s.spawn() {
                return s;
            }
        }
        panic!("clickhouse-server did not start; see {}/log", s.dir.path().display());
    }

    fn write_config(&self) {
        let d = self.dir.path();
        for sub in ["log", "data", "tmp", "user_files", "format_schemas"] {
            std::fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        let p = |s: &str| d.join(s).display().to_string();
        let config = format!(
            "<yandex>\n  <logger><level>warning</level><log>{log}</log><errorlog>{err}</errorlog><console>0</console></logger>\n  \
             <listen_host>127.0.0.1</listen_host>\n  <http_port>{port}</http_port>\n  <display_name>{name}</display_name>\n  \
             <path>{data}/</path>\n  <tmp_path>{tmp}/</tmp_path>\n  <user_files_path>{uf}/</user_files_path>\n  \
             <format_schema_path>{fs}/</format_schema_path>\n  <users_config>{users}</users_config>\n  \
             <default_profile>default</default_profile>\n  <default_database>default</default_database>\n  \
             <mark_cache_size>268435456</mark_cache_size>\n</yandex>\n",
            log = p("log/server.log"),
            err = p("log/err.log"),
            port = self.port,
            name = self.name,
            data = p("data"),
            tmp = p("tmp"),
            uf = p("user_files"),
            fs = p("format_schemas"),
            users = p("users.xml"),
        );
        std::fs::write(d.join("config.xml"), config).expect("config");
        let user = |name: &str, pw: &str| {
            format!(
                "<{name}><password>{pw}</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></{name}>"
            )
        };
        let users = format!(
            "<yandex><profiles><default></default></profiles><users>{}{}</users><quotas><default></default></quotas></yandex>\n",
            user("default", ""),
            user("alice", "s3cret")
        );
        std::fs::write(d.join("users.xml"), users).expect("users");
    }

    fn spawn(&mut self) -> bool {
        let log = std::fs::File::create(self.dir.path().join("log/stdout.log")).expect("log");
        let child = Command::new("clickhouse-server")
            .arg(format!("--config-file={}", self.dir.path().join("config.xml").display()))
            .current_dir(self.dir.path())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("clickhouse-server");
        self.child = Some(child);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return false; // e.g. the port was taken after all
                }
            }
            // The server answering is ours: its display name comes back.
            if let Ok(resp) = ureq::post(format!("http://127.0.0.1:{}/", self.port)).send("SELECT 1") {
                if resp.headers().get("X-ClickHouse-Server-Display-Name").and_then(|v| v.to_str().ok()) == Some(self.name.as_str()) {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        assert!(self.spawn(), "clickhouse-server did not restart");
    }

    /// Run SQL; panics with the server's message on an error.
    pub fn query(&self, sql: &str) -> String {
        self.try_query(sql).unwrap_or_else(|e| panic!("{sql}\n-> {e}"))
    }

    pub fn try_query(&self, sql: &str) -> Result<String, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut r = agent.post(format!("http://127.0.0.1:{}/", self.port)).send(sql).map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
        if status == 200 {
            Ok(body)
        } else {
            Err(format!("HTTP {status}: {body}"))
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if self.tmpfs {
            let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }
}

/// What the proxy does to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Forward the n-th INSERT (0-based), let the server commit it, then
    /// reset the client's connection without the answer.
    ResetAfterInsert(usize),
    /// Answer the n-th INSERT with a 500 without forwarding it.
    Error500OnInsert(usize),
}

/// One request as the proxy saw it: the decoded `query` URL parameter
/// (empty when the SQL is the body) and the body.
#[derive(Debug, Clone)]
pub struct Logged {
    pub query: String,
    pub body: Vec<u8>,
}

pub struct Proxy {
    pub port: u16,
    pub log: Arc<Mutex<Vec<Logged>>>,
    pub fault: Arc<Mutex<Fault>>,
    pub faults_done: Arc<Mutex<usize>>,
    /// INSERTs seen (the fault's n counts from here; reset it with the fault).
    pub inserts: Arc<Mutex<usize>>,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = l.local_addr().expect("addr").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let fault = Arc::new(Mutex::new(Fault::None));
        let faults_done = Arc::new(Mutex::new(0));
        let (lg, fl, fd) = (log.clone(), fault.clone(), faults_done.clone());
        let inserts = Arc::new(Mutex::new(0usize));
        let ins_out = inserts.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                let (lg, fl, fd, ins) = (lg.clone(), fl.clone(), fd.clone(), inserts.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, upstream, &lg, &fl, &fd, &ins);
                });
            }
        });
        Proxy { port, log, fault, faults_done, inserts: ins_out }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Serve one request on a client connection (the proxy answers with
/// Connection: close, so a client sends one request per connection).
fn serve(
    conn: TcpStream,
    upstream: u16,
    log: &Mutex<Vec<Logged>>,
    fault: &Mutex<Fault>,
    done: &Mutex<usize>,
    inserts: &Mutex<usize>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut client = conn;
    {
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let end = line == "\r\n";
            head.push(line);
            if end {
                break;
            }
        }
        let len: usize = head
            .iter()
            .find_map(|h| h.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        let target = head[0].split_whitespace().nth(1).unwrap_or("/").to_string();
        let query = target
            .split_once('?')
            .map(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("query=")).map(percent_decode).unwrap_or_default())
            .unwrap_or_default();
        let is_insert = query.starts_with("INSERT");
        let nth = if is_insert {
            let mut n = inserts.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            Some(*n - 1)
        } else {
            None
        };
        let f = *fault.lock().unwrap_or_else(|e| e.into_inner());
        if let (Fault::Error500OnInsert(k), Some(n)) = (f, nth) {
            if n == k {
                *done.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                let msg = "Code: 999, e.displayText() = DB::Exception: injected by the test proxy";
                write!(client, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}", msg.len())?;
                return Ok(());
            }
        }
        if is_insert {
            log.lock().unwrap_or_else(|e| e.into_inner()).push(Logged { query: query.clone(), body: body.clone() });
        }
        // Forward with Connection: close, read the whole answer.
        let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
        for h in &head {
            let lower = h.to_ascii_lowercase();
            if lower.starts_with("connection:") || h == "\r\n" {
                continue;
            }
            up.write_all(h.as_bytes())?;
        }
        up.write_all(b"Connection: close\r\n\r\n")?;
        up.write_all(&body)?;
        let mut resp = Vec::new();
        up.read_to_end(&mut resp)?;
        if let (Fault::ResetAfterInsert(k), Some(n)) = (f, nth) {
            if n == k {
                *done.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                // The server committed the insert; the client never hears it.
                reset(&client);
                return Ok(());
            }
        }
        client.write_all(&resp)?;
        Ok(())
    }
}

/// Close with an RST (SO_LINGER 0), as a dropped connection looks.
fn reset(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket fd and a linger struct of the size given.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as u32,
        );
    }
}

pub fn chdb_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/chdb/bin/python")
}
