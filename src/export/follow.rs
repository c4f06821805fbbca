//! `msen record --clickhouse URL`: a capture exported while it is written.
//!
//! A follower thread reads the trace file up to the length the recorder
//! published after its last flush (complete blocks, the sidebands they
//! need included), and sends the sample blocks added since the last
//! reading, through the same `CaptureExport` as `msen export`: one INSERT
//! is whole blocks, and what is on the server is asked again after any
//! failure, so the rows land exactly once however often the server goes
//! away. While it is away the capture goes on; the follower tries again at
//! the next flush and catches up. At the end, `finish` sends the rest of
//! the complete trace and the capture-level tables.
//!
//! The follower disturbs the capture as little as it can: it runs at low
//! priority on one worker thread, and reads the file at most as often as
//! a third of its own cost allows.

use super::clickhouse::{CaptureExport, CaptureReport, ChError, Client, Options};
use crate::analyze::loaded::{LoadOptions, Loaded};
use crate::trace::Trace;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the follower has done so far, handed to `finish`.
#[derive(Debug, Default)]
struct State {
    client: Option<Client>,
    export: Option<CaptureExport>,
    /// The server already held this capture complete.
    skipped: bool,
    /// The first error of the current outage (printed once).
    outage: Option<String>,
    /// An error no retry fixes (credentials, table types): stop following.
    gave_up: bool,
    rounds: u64,
}

#[derive(Debug)]
pub struct Follower {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<State>,
    opts: Options,
    load: LoadOptions,
}

/// Check what can be checked before the capture starts: the URL and the
/// credentials' form always; with the server up, the credentials and the
/// tables too (a mistake there fails the command before anything is
/// recorded). A server that is down is not an error: the follower keeps
/// trying. Returns the client when the server answered.
pub fn preflight(opts: &Options) -> Result<Option<Client>, ChError> {
    match Client::open(&Options { retries: 0, ..opts.clone() }) {
        Ok(c) => Ok(Some(c.with_retry_limit(opts.retries))),
        Err(e) if e.transient() => {
            eprintln!("msen: {e}; recording anyway, and sending when the server answers");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Start following `path`, whose complete length the recorder stores in `published`.
pub fn start(
    opts: Options,
    load: LoadOptions,
    client: Option<Client>,
    path: PathBuf,
    published: Arc<AtomicU64>,
    interval: Duration,
) -> Result<Follower, ChError> {
    let final_load = load.clone();
    // The trace's kernel symbols are written at its end; until then they are this host's.
    let mut load = load;
    if load.kallsyms.is_none() {
        let text = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        load.kernel_symbols = Some(Arc::new(crate::symbolize::kallsyms::Kallsyms::parse(&text)));
    }
    let stop = Arc::new(AtomicBool::new(false));
    // One low-priority worker: the follower must not compete with the workload.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|_| "msen-ch-follow".into())
        .start_handler(|_| lower_priority())
        .build()
        .map_err(|e| ChError::Usage(format!("cannot start the ClickHouse follower: {e}")))?;
    let st = State { client: client.map(|c| c.with_retry_limit(0)), ..Default::default() };
    let (o, l, s) = (opts.clone(), load, stop.clone());
    let handle = std::thread::Builder::new()
        .name("msen-ch-follow".into())
        .spawn(move || {
            lower_priority();
            pool.install(|| follow(st, &o, &l, &path, &published, interval, &s))
        })
        .map_err(|e| ChError::Usage(format!("cannot start the ClickHouse follower: {e}")))?;
    Ok(Follower { stop, handle, opts, load: final_load })
}

fn lower_priority() {
    // SAFETY: plain syscalls on the calling thread (a tid is a valid PRIO_PROCESS target on Linux).
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 15);
    }
}

fn follow(
    mut st: State,
    opts: &Options,
    load: &LoadOptions,
    path: &Path,
    published: &AtomicU64,
    interval: Duration,
    stop: &AtomicBool,
) -> State {
    let mut read_len = 0;
    let mut wait = interval;
    loop {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if stop.load(Ordering::Acquire) {
                return st;
            }
            std::thread::sleep(Duration::from_millis(20).min(wait));
        }
        let len = published.load(Ordering::Acquire);
        if st.gave_up || st.skipped || len == read_len {
            continue;
        }
        let t0 = Instant::now();
        match round(&mut st, opts, load, path, len) {
            Ok(()) => {
                read_len = len;
                if st.outage.take().is_some() {
                    eprintln!("msen: ClickHouse answers again; the capture's samples are being sent");
                }
            }
            Err(e) if e.transient() => {
                if st.outage.is_none() {
                    eprintln!("msen: {e}; still recording, and sending the samples when the server is back");
                    st.outage = Some(e.to_string());
                }
            }
            Err(e) => {
                eprintln!("msen: {e}; no longer sending during the capture (the trace is kept; see the end of the capture)");
                st.gave_up = true;
            }
        }
        st.rounds += 1;
        // Never more than about a third of one CPU, however large the trace grows.
        wait = interval.max(t0.elapsed() * 3);
    }
}

/// Read the trace's first `len` bytes and send the blocks added.
fn round(st: &mut State, opts: &Options, load: &LoadOptions, path: &Path, len: u64) -> Result<(), ChError> {
    let mut bytes = Vec::with_capacity(len as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(len).read_to_end(&mut bytes))
        .map_err(|e| ChError::Usage(format!("{}: cannot read the trace being written: {e}", path.display())))?;
    let t = Trace::from_bytes(&path.display().to_string(), bytes, load.open)?;
    let l = Loaded::from_trace(t, load)?;
    let c = connected(st, opts, 0)?;
    if st.export.is_none() {
        match CaptureExport::begin(&c, l.trace.meta.capture_id.clone())? {
            Some(x) => st.export = Some(x),
            None => {
                st.skipped = true;
                return Ok(());
            }
        }
    }
    match st.export.as_mut() {
        Some(x) => x.send_blocks(&c, &l, opts.max_rows),
        None => Ok(()),
    }
}

/// The state's client, connecting (and checking the tables) first if the
/// server was away so far.
fn connected(st: &mut State, opts: &Options, retries: u32) -> Result<Client, ChError> {
    if let Some(c) = &st.client {
        return Ok(c.with_retry_limit(retries));
    }
    let c = Client::open(&Options { retries, ..opts.clone() })?;
    st.client = Some(c.clone());
    Ok(c)
}

impl Follower {
    /// The capture is over and its trace complete: stop following, send
    /// what is left with the user's retries, and write the capture-level
    /// tables. Returns the export's report and how many readings the
    /// follower made while recording.
    pub fn finish(self, path: &Path) -> Result<(CaptureReport, u64), ChError> {
        self.stop.store(true, Ordering::Release);
        let mut st = self.handle.join().map_err(|_| ChError::Usage("the ClickHouse follower thread panicked".into()))?;
        let rounds = st.rounds;
        let l = Loaded::open(path, &self.load)?;
        let id = l.trace.meta.capture_id.clone();
        if st.skipped {
            return Ok((CaptureReport::skipped(path, id), rounds));
        }
        let c = connected(&mut st, &self.opts, self.opts.retries)?;
        let x = match st.export.take() {
            Some(x) => x,
            None => match CaptureExport::begin(&c, id.clone())? {
                Some(x) => x,
                None => return Ok((CaptureReport::skipped(path, id), rounds)),
            },
        };
        Ok((x.finish(&c, &l, path, self.opts.max_rows)?, rounds))
    }
}
