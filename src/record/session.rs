//! A capture: probe the PMU, open events per CPU, start or attach to the
//! target, drain the ring buffers into trace blocks until told to stop, and
//! close the trace with what offline analysis needs.

use super::chunker::Chunker;
use super::events::EventSpec;
use super::{procscan, sysinfo};
use crate::perf::attr::{flag, sample, EventAttr, ATTR_SIZE_VER5, ATTR_SIZE_VER7};
use crate::perf::sys::{self, RingBuffer};
use crate::trace::format::STREAM_GLOBAL;
use crate::trace::meta::{CaptureEnd, EventDesc, Metadata};
use crate::trace::{BlockInfo, BlockKind, TraceWriter};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What to sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every task on every online CPU (`-a`).
    AllCpus,
    /// Existing processes and their future children (`-p`).
    Pids(Vec<u32>),
    /// A command msen starts and follows (`-- CMD ARGS`).
    Command(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Samples per second per CPU (`-F`).
    Freq(u64),
    /// One sample every N events (`-c`).
    Period(u64),
}

/// A validated `msen record` request.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    pub target: Target,
    pub events: Vec<EventSpec>,
    /// True when the events came from `-e` rather than the default.
    pub events_explicit: bool,
    pub sampling: Sampling,
    pub callchain: bool,
    pub duration: Option<Duration>,
    pub output: PathBuf,
    /// Data pages per ring buffer (a power of two).
    pub mmap_pages: usize,
    pub compression_level: i32,
    pub command_line: Vec<String>,
    /// Print progress notes to stderr.
    pub verbose: bool,
}

/// What a capture produced.
#[derive(Debug, Clone)]
pub struct RecordSummary {
    pub path: PathBuf,
    pub samples: u64,
    pub lost: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub software_only: bool,
    /// Exit code of the workload, when msen started one.
    pub workload_exit: Option<i32>,
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot create {path}: {err}")]
    Output { path: PathBuf, err: io::Error },
    #[error("writing {path}: {err}")]
    Write { path: PathBuf, err: io::Error },
    #[error("permission denied opening {event}: {hint}")]
    Permission { event: String, hint: String },
    #[error("no process {0} (it may have exited); check the pid with `ps -p {0}`")]
    NoSuchProcess(u32),
    #[error("cannot open event {event} on cpu {cpu}: {err}{hint}")]
    Open { event: String, cpu: i32, err: io::Error, hint: String },
    #[error("cannot map the ring buffer of cpu {cpu}: {err}; lower --mmap-pages or raise `ulimit -l`")]
    Mmap { cpu: u32, err: io::Error },
    #[error("cannot start {cmd}: {err}")]
    Spawn { cmd: String, err: io::Error },
    #[error("{0}")]
    Other(String),
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, handler as libc::sighandler_t);
        }
    }
}

/// Why a hardware event could not be used: the plain-words note we print once.
fn no_pmu_note(err: &io::Error) -> Option<String> {
    match err.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::EOPNOTSUPP) | Some(libc::ENODEV) => Some(format!(
            "no hardware PMU on this host (hardware events fail with {}, as in most VMs); recording cpu-clock instead. \
             Run on bare metal (or a VM with PMU passthrough) for cycles and memory samples",
            if err.raw_os_error() == Some(libc::ENOENT) { "ENOENT" } else { "EOPNOTSUPP" }
        )),
        _ => None,
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn permission_hint(all_cpus: bool) -> String {
    let paranoid = sysinfo::perf_event_paranoid().map_or("unknown".to_string(), |p| p.to_string());
    if all_cpus {
        format!("system-wide capture (-a) needs root or CAP_PERFMON (kernel.perf_event_paranoid is {paranoid}); run as root, or `sysctl kernel.perf_event_paranoid=0`")
    } else {
        format!("kernel.perf_event_paranoid is {paranoid}; run as root, or `sysctl kernel.perf_event_paranoid=1`, or record only your own processes")
    }
}

/// Build the attr for one event of this capture.
fn base_attr(spec: &EventSpec, cfg: &RecordConfig, tracking: bool, any_addr: bool, exclude_kernel: bool, data_bytes: usize) -> EventAttr {
    let mut st = sample::IDENTIFIER | sample::IP | sample::TID | sample::TIME | sample::CPU | sample::PERIOD;
    if cfg.callchain {
        st |= sample::CALLCHAIN;
    }
    if spec.has_data_addr() {
        st |= sample::ADDR;
    }
    let mut flags = flag::DISABLED | flag::SAMPLE_ID_ALL | flag::USE_CLOCKID | flag::WATERMARK;
    if !matches!(cfg.target, Target::AllCpus) {
        flags |= flag::INHERIT;
    }
    if matches!(cfg.target, Target::Command(_)) {
        flags |= flag::ENABLE_ON_EXEC;
    }
    if spec.exclude_user {
        flags |= flag::EXCLUDE_USER;
    }
    if spec.exclude_kernel || exclude_kernel {
        flags |= flag::EXCLUDE_KERNEL;
    }
    if tracking {
        flags |= flag::MMAP | flag::MMAP2 | flag::COMM | flag::COMM_EXEC | flag::TASK;
        if any_addr {
            flags |= flag::MMAP_DATA;
        }
    }
    let period_or_freq = match cfg.sampling {
        Sampling::Freq(f) => {
            flags |= flag::FREQ;
            f
        }
        Sampling::Period(p) => p,
    };
    let mut a = EventAttr {
        type_: spec.type_,
        size: ATTR_SIZE_VER7,
        config: spec.config,
        period_or_freq,
        sample_type: st,
        flags,
        // Wake the reader when a quarter of the ring is used.
        wakeup: (data_bytes / 4) as u32,
        clockid: libc::CLOCK_MONOTONIC,
        ..Default::default()
    };
    if spec.is_hardware() {
        a.flags |= (spec.precise.unwrap_or(0) as u64) << flag::PRECISE_SHIFT;
    }
    a
}

/// Open with the kernel's attr size; retry at an older size on E2BIG.
fn open_attr(a: &mut EventAttr, pid: i32, cpu: i32) -> io::Result<OwnedFd> {
    match sys::perf_event_open(a, a.size, pid, cpu, -1) {
        Err(e) if e.raw_os_error() == Some(libc::E2BIG) && a.size > ATTR_SIZE_VER5 => {
            a.size = ATTR_SIZE_VER5;
            sys::perf_event_open(a, a.size, pid, cpu, -1)
        }
        r => r,
    }
}

/// Decide which events can run here: hardware events that fail for lack of
/// a PMU are replaced by cpu-clock (once), and precise levels are lowered
/// until the kernel accepts them.
fn probe_events(cfg: &RecordConfig, notes: &mut Vec<String>) -> (Vec<EventSpec>, Option<String>) {
    let mut out: Vec<EventSpec> = Vec::new();
    let mut fallback = None;
    for spec in &cfg.events {
        if !spec.is_hardware() {
            if !out.contains(spec) {
                out.push(spec.clone());
            }
            continue;
        }
        let start = spec.precise.unwrap_or(if cfg.events_explicit { 0 } else { 3 });
        let mut chosen = None;
        let mut last_err = None;
        for p in (0..=start).rev() {
            let mut s = spec.clone();
            s.precise = Some(p);
            let mut a = base_attr(&s, cfg, false, false, true, 4096);
            a.flags &= !(flag::INHERIT | flag::ENABLE_ON_EXEC);
            match open_attr(&mut a, 0, -1) {
                Ok(_) => {
                    chosen = Some(s);
                    break;
                }
                Err(e) => {
                    let nopmu = no_pmu_note(&e).is_some();
                    last_err = Some(e);
                    if nopmu {
                        break;
                    }
                }
            }
        }
        match (chosen, last_err) {
            (Some(s), _) => out.push(s),
            (None, Some(e)) if no_pmu_note(&e).is_some() => {
                if fallback.is_none() {
                    fallback = no_pmu_note(&e);
                }
                let cc = super::events::parse_event("cpu-clock").ok();
                if let Some(mut cc) = cc {
                    cc.exclude_user = spec.exclude_user;
                    cc.exclude_kernel = spec.exclude_kernel;
                    if !out.iter().any(|o| o.type_ == cc.type_ && o.config == cc.config) {
                        out.push(cc);
                    }
                }
            }
            // Some other failure (permissions, a bad raw code): keep the
            // event so that the real open reports the error in context.
            (None, _) => out.push(spec.clone()),
        }
    }
    if let Some(f) = &mut fallback {
        f.push_str(&format!(" (PMUs registered here: {})", sysinfo::pmus().join(", ")));
        notes.push(f.clone());
    }
    (out, fallback)
}

/// A started (but not yet exec'd) workload: the child waits on a pipe so the
/// events can be attached before its first instruction.
struct Workload {
    pid: libc::pid_t,
    go: Option<OwnedFd>,
    /// Read end of a CLOEXEC pipe: the child writes errno here if exec fails.
    exec_err: Option<OwnedFd>,
    exited: Option<i32>,
}

impl Workload {
    fn spawn(argv: &[String]) -> Result<Workload, RecordError> {
        let cmd = argv.first().cloned().unwrap_or_default();
        let spawn_err = |source| RecordError::Spawn { cmd: cmd.clone(), err: source };
        let cargs: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| spawn_err(io::Error::new(io::ErrorKind::InvalidInput, "argument contains a NUL byte")))?;
        let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        let mut go = [0i32; 2];
        let mut err = [0i32; 2];
        // SAFETY: pipe2 writes two fds into each array.
        if unsafe { libc::pipe2(go.as_mut_ptr(), libc::O_CLOEXEC) } != 0 || unsafe { libc::pipe2(err.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(spawn_err(io::Error::last_os_error()));
        }
        // SAFETY: the child only calls async-signal-safe functions (read,
        // write, execvp, _exit) on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(spawn_err(io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: child side, see above.
            unsafe {
                libc::close(go[1]);
                libc::close(err[0]);
                let mut b = 0u8;
                // Wait for the parent to attach the events, or for it to go away.
                if libc::read(go[0], &mut b as *mut u8 as *mut libc::c_void, 1) != 1 {
                    libc::_exit(126);
                }
                libc::execvp(ptrs[0], ptrs.as_ptr());
                let e = *libc::__errno_location();
                libc::write(err[1], &e as *const i32 as *const libc::c_void, 4);
                libc::_exit(127);
            }
        }
        // SAFETY: parent closes the child's ends, which it owns.
        unsafe {
            libc::close(go[0]);
            libc::close(err[1]);
        }
        // SAFETY: go[1] is a valid fd owned by us from here on.
        let go_fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(go[1]) };
        // SAFETY: err[0] is a valid fd owned by us from here on.
        let err_fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(err[0]) };
        Ok(Workload { pid, go: Some(go_fd), exec_err: Some(err_fd), exited: None })
    }

    /// Let the child exec; report exec failure.
    fn start(&mut self, cmd: &str) -> Result<(), RecordError> {
        if let Some(go) = self.go.take() {
            // SAFETY: writing one byte to our pipe fd.
            unsafe { libc::write(go.as_raw_fd(), b"g".as_ptr() as *const libc::c_void, 1) };
        }
        if let Some(errfd) = self.exec_err.take() {
            let mut e = 0i32;
            // SAFETY: reading up to 4 bytes into an i32; the write end closes
            // on a successful exec (CLOEXEC), so read returns 0 then.
            let n = unsafe { libc::read(errfd.as_raw_fd(), &mut e as *mut i32 as *mut libc::c_void, 4) };
            if n == 4 {
                self.wait(true);
                return Err(RecordError::Spawn { cmd: cmd.to_string(), err: io::Error::from_raw_os_error(e) });
            }
        }
        Ok(())
    }

    fn wait(&mut self, block: bool) -> Option<i32> {
        if self.exited.is_some() {
            return self.exited;
        }
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        let r = unsafe { libc::waitpid(self.pid, &mut status, if block { 0 } else { libc::WNOHANG }) };
        if r == self.pid {
            let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
            self.exited = Some(code);
        }
        self.exited
    }
}

struct Ring {
    cpu: u32,
    buf: RingBuffer,
    /// Index into the fd list of the event that owns this ring's mapping.
    owner: usize,
}

/// Run a capture until the duration elapses, the workload exits, all target
/// processes exit, or SIGINT/SIGTERM arrives.
pub fn record(cfg: &RecordConfig) -> Result<RecordSummary, RecordError> {
    STOP.store(false, Ordering::SeqCst);
    install_signal_handlers();
    let mut notes = Vec::new();
    let started = Instant::now();

    let (events, fallback) = probe_events(cfg, &mut notes);
    let all_software = events.iter().all(|e| !e.is_hardware());
    let exclude_kernel = !is_root() && sysinfo::perf_event_paranoid().is_some_and(|p| p >= 2);
    if exclude_kernel {
        notes.push(
            "kernel.perf_event_paranoid >= 2 and not root: sampling user space only (as `:u`); run as root for kernel samples".into(),
        );
    }
    let any_addr = events.iter().any(|e| e.has_data_addr());

    let mut workload = match &cfg.target {
        Target::Command(argv) => Some(Workload::spawn(argv)?),
        _ => None,
    };
    // Kill a spawned-but-unstarted child on any error path below.
    let result = run(cfg, &events, all_software, fallback, exclude_kernel, any_addr, workload.as_mut(), &mut notes, started);
    if result.is_err() {
        if let Some(w) = workload.as_mut() {
            if w.exited.is_none() {
                // SAFETY: signalling our own child.
                unsafe { libc::kill(w.pid, libc::SIGKILL) };
                w.go.take();
                w.wait(true);
            }
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn run(
    cfg: &RecordConfig,
    events: &[EventSpec],
    software_only: bool,
    fallback: Option<String>,
    exclude_kernel: bool,
    any_addr: bool,
    mut workload: Option<&mut Workload>,
    notes: &mut Vec<String>,
    started: Instant,
) -> Result<RecordSummary, RecordError> {
    let cpus = sys::online_cpus();
    let page = sys::page_size();
    let data_bytes = cfg.mmap_pages * page;

    // pids to open per CPU: -1 (any task), the workload, or every thread.
    let pids: Vec<i32> = match &cfg.target {
        Target::AllCpus => vec![-1],
        Target::Command(_) => vec![workload.as_ref().map_or(-1, |w| w.pid)],
        Target::Pids(ps) => {
            let mut v = Vec::new();
            for &p in ps {
                let t = procscan::threads_of(p);
                if t.is_empty() {
                    return Err(RecordError::NoSuchProcess(p));
                }
                v.extend(t.into_iter().map(|t| t as i32));
            }
            v
        }
    };

    let mut descs: Vec<EventDesc> = Vec::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut rings: Vec<Ring> = Vec::new();
    for (ei, spec) in events.iter().enumerate() {
        let mut attr = base_attr(spec, cfg, ei == 0, any_addr, exclude_kernel, data_bytes);
        let mut ids = Vec::new();
        for &cpu in &cpus {
            for &pid in &pids {
                let fd = match open_attr(&mut attr, pid, cpu as i32) {
                    Ok(fd) => fd,
                    // A thread that exited since we listed it.
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) && matches!(cfg.target, Target::Pids(_)) && pid > 0 => continue,
                    Err(e) => {
                        return Err(match e.raw_os_error() {
                            Some(libc::EACCES) | Some(libc::EPERM) => RecordError::Permission {
                                event: spec.name.clone(),
                                hint: permission_hint(matches!(cfg.target, Target::AllCpus)),
                            },
                            Some(libc::ESRCH) => RecordError::NoSuchProcess(pid as u32),
                            _ => RecordError::Open {
                                event: spec.name.clone(),
                                cpu: cpu as i32,
                                hint: match no_pmu_note(&e) {
                                    Some(_) => "; this host has no hardware PMU for it: use -e cpu-clock".into(),
                                    None => String::new(),
                                },
                                err: e,
                            },
                        })
                    }
                };
                ids.push(sys::event_id(&fd).map_err(|e| RecordError::Other(format!("PERF_EVENT_IOC_ID failed: {e}")))?);
                match rings.iter().position(|r| r.cpu == cpu) {
                    Some(ri) => {
                        let owner = &fds[rings[ri].owner];
                        sys::set_output(&fd, owner)
                            .map_err(|e| RecordError::Other(format!("redirecting event output on cpu {cpu}: {e}")))?;
                    }
                    None => {
                        let buf = RingBuffer::new(&fd, cfg.mmap_pages).map_err(|source| RecordError::Mmap { cpu, err: source })?;
                        rings.push(Ring { cpu, buf, owner: fds.len() });
                    }
                }
                fds.push(fd);
            }
        }
        descs.push(EventDesc { name: spec.name.clone(), attr: attr.clone(), ids });
    }
    if fds.is_empty() {
        return Err(RecordError::Other("no event could be opened: every target thread exited".into()));
    }

    let mut meta = Metadata {
        msen_version: env!("CARGO_PKG_VERSION").to_string(),
        events: descs,
        command_line: cfg.command_line.clone(),
        workload: match &cfg.target {
            Target::Command(a) => a.clone(),
            _ => Vec::new(),
        },
        clock: "monotonic".into(),
        start_unix_ns: sysinfo::unix_ns(),
        start_clock_ns: sysinfo::monotonic_ns(),
        software_only,
        fallback_reason: fallback,
        target: match &cfg.target {
            Target::AllCpus => "all CPUs".into(),
            Target::Pids(p) => format!("pid {}", p.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",")),
            Target::Command(a) => format!("command: {}", a.join(" ")),
        },
        ..Default::default()
    };
    sysinfo::describe_machine(&mut meta);
    meta.pmus = sysinfo::pmus();

    let out_err = |source| RecordError::Output { path: cfg.output.clone(), err: source };
    let write_err = |source| RecordError::Write { path: cfg.output.clone(), err: source };
    let mut writer = TraceWriter::create(&cfg.output, cfg.compression_level).map_err(out_err)?;
    let meta_json = serde_json::to_vec(&meta).map_err(|e| RecordError::Other(e.to_string()))?;
    writer
        .write_block(
            BlockInfo { kind: BlockKind::METADATA, stream: STREAM_GLOBAL, record_count: 1, first_time: 0, last_time: 0 },
            &meta_json,
        )
        .map_err(write_err)?;
    // Read now (modules may unload during the capture); stored at the end,
    // cut down to the symbols the samples hit.
    let kallsyms = sysinfo::kallsyms().map(|k| crate::symbolize::kallsyms::Kallsyms::parse(&k));

    let tracking = &meta.events[0];
    let mut chunker = Chunker::new(&meta.events, rings.len());

    // Enable, then synthesize what already exists (a mapping made in between
    // appears twice, which the analyses tolerate; none is missed).
    match &cfg.target {
        Target::Command(argv) => {
            if let Some(w) = workload.as_mut() {
                w.start(argv.first().map(String::as_str).unwrap_or(""))?;
            }
        }
        _ => {
            for fd in &fds {
                sys::enable(fd).map_err(|e| RecordError::Other(format!("enabling events: {e}")))?;
            }
        }
    }
    let synth_pids = match &cfg.target {
        Target::AllCpus => procscan::all_pids(),
        Target::Pids(p) => p.clone(),
        Target::Command(_) => Vec::new(),
    };
    let mut synth = Vec::new();
    let id0 = tracking.ids.first().copied().unwrap_or(0);
    for pid in synth_pids {
        procscan::synthesize_process(pid, tracking.attr.sample_type, id0, &mut synth);
    }
    chunker.push_synthesized(&synth, &mut writer).map_err(write_err)?;

    let deadline = cfg.duration.map(|d| Instant::now() + d);
    let mut pollfds: Vec<libc::pollfd> =
        rings.iter().map(|r| libc::pollfd { fd: fds[r.owner].as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    let mut scratch = Vec::with_capacity(data_bytes);
    let mut last_flush = Instant::now();
    let stop_reason;
    loop {
        let timeout_ms = deadline.map_or(100, |d| d.saturating_duration_since(Instant::now()).as_millis().min(100) as i32);
        // SAFETY: pollfds is a valid array of pollfd for the duration of the call.
        unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, timeout_ms) };
        for (ri, ring) in rings.iter_mut().enumerate() {
            scratch.clear();
            if ring.buf.drain_into(&mut scratch) > 0 {
                chunker.push(ri, ring.cpu, &scratch, &mut writer).map_err(write_err)?;
            }
        }
        if last_flush.elapsed() >= Duration::from_secs(1) {
            chunker.flush_all(&mut writer).map_err(write_err)?;
            last_flush = Instant::now();
        }
        if STOP.load(Ordering::SeqCst) {
            stop_reason = "signal";
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stop_reason = "duration";
            break;
        }
        if let Some(w) = workload.as_mut() {
            if w.wait(false).is_some() {
                stop_reason = "workload exited";
                break;
            }
        }
        if let Target::Pids(ps) = &cfg.target {
            if ps.iter().all(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                stop_reason = "target processes exited";
                break;
            }
        }
        for p in pollfds.iter_mut() {
            p.revents = 0;
        }
    }
    for fd in &fds {
        let _ = sys::disable(fd);
    }
    for (ri, ring) in rings.iter_mut().enumerate() {
        scratch.clear();
        if ring.buf.drain_into(&mut scratch) > 0 {
            chunker.push(ri, ring.cpu, &scratch, &mut writer).map_err(write_err)?;
        }
    }
    chunker.flush_all(&mut writer).map_err(write_err)?;
    let workload_exit = workload.as_mut().and_then(|w| {
        if w.exited.is_none() && STOP.load(Ordering::SeqCst) {
            // Ctrl-C reached the child through the terminal too; reap it.
            w.wait(true)
        } else {
            w.exited
        }
    });
    drop(rings);
    drop(fds);

    if let Some(k) = &kallsyms {
        let text = k.subset_text(chunker.kernel_ips());
        writer
            .write_block(
                BlockInfo { kind: BlockKind::KALLSYMS, stream: STREAM_GLOBAL, record_count: 1, first_time: 0, last_time: 0 },
                text.as_bytes(),
            )
            .map_err(write_err)?;
    }
    // JIT symbol maps (the perf-PID.map convention of the JVM, V8, .NET, ...).
    let jit: std::collections::BTreeMap<String, String> = chunker
        .sampled_pids()
        .filter_map(|p| std::fs::read_to_string(format!("/tmp/perf-{p}.map")).ok().map(|t| (p.to_string(), t)))
        .collect();
    if !jit.is_empty() {
        let json = serde_json::to_vec(&jit).map_err(|e| RecordError::Other(e.to_string()))?;
        writer
            .write_block(
                BlockInfo { kind: BlockKind::JIT_MAPS, stream: STREAM_GLOBAL, record_count: jit.len() as u32, first_time: 0, last_time: 0 },
                &json,
            )
            .map_err(write_err)?;
    }
    let build_ids = chunker.build_ids();
    let end = CaptureEnd {
        end_unix_ns: sysinfo::unix_ns(),
        end_clock_ns: sysinfo::monotonic_ns(),
        lost_records: chunker.lost,
        build_ids,
        samples: chunker.samples,
        stop_reason: stop_reason.to_string(),
    };
    let end_json = serde_json::to_vec(&end).map_err(|e| RecordError::Other(e.to_string()))?;
    writer
        .write_block(
            BlockInfo { kind: BlockKind::CAPTURE_END, stream: STREAM_GLOBAL, record_count: 1, first_time: 0, last_time: 0 },
            &end_json,
        )
        .map_err(write_err)?;
    let bytes = writer.finish().map_err(write_err)?;
    if chunker.lost > 0 {
        notes.push(format!("the kernel dropped {} records (ring buffer full); raise --mmap-pages or lower -F", chunker.lost));
    }
    Ok(RecordSummary {
        path: cfg.output.clone(),
        samples: chunker.samples,
        lost: chunker.lost,
        bytes,
        elapsed: started.elapsed(),
        software_only,
        workload_exit,
        notes: std::mem::take(notes),
    })
}
