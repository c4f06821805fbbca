//! A capture: probe the PMU, open events per CPU, start or attach to the
//! target, drain the ring buffers into trace blocks until told to stop, and
//! close the trace with what offline analysis needs.

use super::agent::{Agent, AgentError, Counts, KernelSide, MockKernel};
use super::chunker::Chunker;
use super::events::EventSpec;
use super::{procscan, sysinfo};
use crate::perf::attr::{flag, sample, EventAttr, ATTR_SIZE_VER5};
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
    /// Every task on the chosen CPUs (`-a`, `-C`).
    AllCpus,
    /// Existing processes and their future children (`-p`).
    Pids(Vec<u32>),
    /// Existing threads (`-t`).
    Tids(Vec<u32>),
    /// The command msen starts (`-- CMD ARGS`), followed into its children.
    Command,
}

pub use super::attrs::Sampling;
use super::attrs::{self, AttrContext, CallGraph, SampleOptions};

/// A validated `msen record` request.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    pub target: Target,
    /// The workload to start: sampled itself under `Target::Command`, or
    /// the span of a system-wide / `-p` capture (`-a -- sleep 5`).
    pub workload: Option<Vec<String>>,
    /// `-C`: CPUs to sample (system-wide only); None means every online CPU.
    pub cpus: Option<Vec<u32>>,
    pub events: Vec<EventSpec>,
    /// True when the events came from `-e`/`--mem`/`--c2c` rather than the
    /// default; such events never fall back silently.
    pub events_explicit: bool,
    /// `--fallback`: replace events the host cannot count (no PMU) with
    /// software events (cpu-clock; page-faults for memory events).
    pub fallback: bool,
    /// Why the requested events were already replaced (--mem --fallback on
    /// a host without a memory PMU); stored in the trace.
    pub fallback_reason: Option<String>,
    pub sampling: Sampling,
    pub options: SampleOptions,
    pub duration: Option<Duration>,
    /// Output path; `-` streams the trace to stdout.
    pub output: PathBuf,
    /// Data pages per ring buffer (a power of two).
    pub mmap_pages: usize,
    pub compression_level: i32,
    pub command_line: Vec<String>,
    /// Print progress notes to stderr.
    pub verbose: bool,
    /// Flow context: tag every sample with the network flow it served.
    pub flows: FlowMode,
    pub flow_config: crate::flow::FlowConfig,
    /// What the trace carries to be named without the binaries.
    pub embed: Embed,
    /// How often buffered records are written out (`--flush`).
    pub flush_interval: Duration,
    /// Set to the trace's length after every flush: everything before it
    /// is complete blocks, sidebands included, for a reader following the
    /// file while it grows (`record --clickhouse`).
    pub flushed: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    /// The agent's modes and budgets (`--mode`, `--budget`): applied by the
    /// sampling BPF program, so they need flow context's program loaded.
    pub modes: Option<super::control::ModeConfig>,
    /// Shared with the metrics and control endpoints (src/agent).
    pub control: Option<std::sync::Arc<super::control::Control>>,
    /// Host context once a second (HOST blocks).
    pub host_context: bool,
    /// `--switch-output` and `--max-files`.
    pub rotation: Option<RotationConfig>,
}

/// Symbols stored in the trace at the end of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Embed {
    /// Nothing (`--no-embed`): names need the binaries where it is analyzed.
    None,
    /// The function and data symbols of the hit addresses (the default).
    #[default]
    Symbols,
    /// Symbols plus file:line and inline frames of the hit addresses.
    Lines,
}

/// Whether samples are tagged with flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlowMode {
    /// Where the BPF hooks can load (root, BTF); otherwise say why once.
    #[default]
    Auto,
    /// `--flows`: a capture without flow context is an error.
    Required,
    /// `--no-flows`.
    Off,
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
    /// Exit status of the workload, when msen started one (128+N when a
    /// signal N ended it, as a shell reports it).
    pub workload_exit: Option<i32>,
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot create {path}: {err}; check the directory exists and is writable")]
    Output { path: PathBuf, err: io::Error },
    #[error("writing {path}: {err}")]
    Write { path: PathBuf, err: io::Error },
    #[error("permission denied opening {event}: {hint}")]
    Permission { event: String, hint: String },
    #[error("no process {0} (it may have exited); check the pid with `ps -p {0}`")]
    NoSuchProcess(u32),
    #[error("cannot open event {event} on cpu {cpu}: {err}{hint}")]
    Open { event: String, cpu: i32, err: io::Error, hint: String },
    #[error("no hardware PMU on this host (hardware events fail with {errno}, as in most VMs): {event} needs one; run on bare metal (or a VM with PMU passthrough), or pass --fallback to record {instead} instead")]
    NoPmu { event: String, errno: &'static str, instead: &'static str },
    #[error("cannot map the ring buffer of cpu {cpu}: {err}; lower --mmap-pages or raise `ulimit -l`")]
    Mmap { cpu: u32, err: io::Error },
    #[error("cannot start {cmd}: {err}")]
    Spawn { cmd: String, err: io::Error },
    #[error("flow context (--flows) cannot run here: {0}; run as root on a kernel with BTF, or drop --flows")]
    Flows(String),
    #[error("{0} needs msen's sampling BPF program, which cannot load here: {1}; run as root on a kernel with BTF")]
    Budget(&'static str, String),
    #[error("{0}")]
    Other(String),
}

static STOP: AtomicBool = AtomicBool::new(false);
/// SIGUSR1 arrived: a mode trigger (with --mode).
static USR1: AtomicBool = AtomicBool::new(false);

/// Catch `sig` with `handler`, which sets `flag` (cleared first).
fn catch(sig: libc::c_int, flag: &AtomicBool, handler: extern "C" fn(libc::c_int)) {
    flag.store(false, Ordering::SeqCst);
    // SAFETY: the handlers only store to an atomic (async-signal-safe).
    unsafe {
        libc::signal(sig, handler as libc::sighandler_t);
    }
}

extern "C" fn on_usr1(_sig: libc::c_int) {
    USR1.store(true, Ordering::SeqCst);
}
/// The signal that asked us to stop (forwarded to the workload).
static STOP_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    STOP_SIGNAL.store(sig, Ordering::SeqCst);
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to atomics, which is async-signal-safe.
        unsafe {
            libc::signal(sig, handler as libc::sighandler_t);
        }
    }
}

fn errno_name(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::ENODEV) => "ENODEV",
        _ => "EOPNOTSUPP",
    }
}

fn is_no_pmu(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOENT) | Some(libc::EOPNOTSUPP) | Some(libc::ENODEV))
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

/// The attr context of event `ei` in this capture.
fn context(cfg: &RecordConfig, ei: usize, user_only: bool, data_bytes: usize) -> AttrContext {
    AttrContext {
        tracking: ei == 0,
        system_wide: matches!(cfg.target, Target::AllCpus),
        started_command: matches!(cfg.target, Target::Command),
        user_only,
        // Wake the reader when a quarter of the ring is used.
        wakeup_bytes: (data_bytes / 4) as u32,
    }
}

/// Every attr msen would open, before any probing (`--print-attrs`).
pub fn planned_attrs(cfg: &RecordConfig) -> Vec<(String, EventAttr)> {
    let user_only = !is_root() && sysinfo::perf_event_paranoid().is_some_and(|p| p >= 2);
    let data_bytes = cfg.mmap_pages * sys::page_size();
    cfg.events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.clone(), attrs::build(e, cfg.sampling, &cfg.options, context(cfg, i, user_only, data_bytes))))
        .collect()
}

/// Open with the kernel's attr size; retry at an older size on E2BIG, and
/// with WEIGHT instead of WEIGHT_STRUCT on kernels before 5.12 (as perf).
fn open_attr(a: &mut EventAttr, pid: i32, cpu: i32, group_fd: i32) -> io::Result<OwnedFd> {
    loop {
        match sys::perf_event_open(a, a.size, pid, cpu, group_fd) {
            Err(e) if e.raw_os_error() == Some(libc::E2BIG) && a.size > ATTR_SIZE_VER5 => a.size = ATTR_SIZE_VER5,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && a.sample_type & sample::WEIGHT_STRUCT != 0 => {
                a.sample_type = (a.sample_type & !sample::WEIGHT_STRUCT) | sample::WEIGHT;
            }
            r => return r,
        }
    }
}

/// Decide which events can run here. Precise levels asked for with `P` are
/// lowered until the kernel accepts them (as perf does). A hardware event
/// that fails for lack of a PMU is an error, unless it is the default event
/// or --fallback was given: then it is replaced by a software event, and the
/// note says so once.
fn probe_events(cfg: &RecordConfig, notes: &mut Vec<String>) -> Result<(Vec<EventSpec>, Option<String>), RecordError> {
    let mut out: Vec<EventSpec> = Vec::new();
    let mut fallback: Option<String> = cfg.fallback_reason.clone();
    // Where each requested event went in `out` (groups refer to leaders by index).
    let mut moved: Vec<Option<usize>> = Vec::new();
    for (ei, spec) in cfg.events.iter().enumerate() {
        let leader = spec.group_leader.and_then(|l| moved.get(l).copied().flatten());
        moved.push(Some(out.len()));
        if !spec.is_hardware() {
            let mut s = spec.clone();
            s.group_leader = leader;
            out.push(s);
            continue;
        }
        if spec.aux {
            return Err(RecordError::Other(format!(
                "{}: this PMU writes its samples to an AUX area, which msen record does not decode; record it with `perf record` and analyze the perf.data, or see --print-attrs for the attrs",
                spec.name
            )));
        }
        let top = spec.precise_ip();
        let floor = if spec.precise_max { 0 } else { top };
        let mut chosen = None;
        let mut last_err = None;
        for p in (floor..=top).rev() {
            let mut s = spec.clone();
            s.precise_max = false;
            s.precise = Some(p);
            let mut ctx = context(cfg, ei, true, 4096);
            ctx.started_command = false;
            ctx.system_wide = false;
            let mut a = attrs::build(&s, cfg.sampling, &cfg.options, ctx);
            a.flags &= !flag::INHERIT;
            match open_attr(&mut a, 0, -1, -1) {
                Ok(_) => {
                    chosen = Some(s);
                    break;
                }
                Err(e) => {
                    let stop = is_no_pmu(&e);
                    last_err = Some(e);
                    if stop {
                        break;
                    }
                }
            }
        }
        match (chosen, last_err) {
            (Some(mut s), _) => {
                s.group_leader = leader;
                out.push(s)
            }
            (None, Some(e)) if is_no_pmu(&e) => {
                let mem = spec.is_memory() || cfg.options.data;
                if cfg.events_explicit && !cfg.fallback {
                    return Err(RecordError::NoPmu {
                        event: spec.name.clone(),
                        errno: errno_name(&e),
                        instead: if mem { "page-faults with their data addresses" } else { "cpu-clock" },
                    });
                }
                let soft = if mem { "page-faults" } else { "cpu-clock" };
                if fallback.is_none() {
                    fallback = Some(format!(
                        "no hardware PMU on this host (hardware events fail with {}, as in most VMs); recording {soft} instead of {}. \
                         Run on bare metal (or a VM with PMU passthrough) for cycles and memory samples (PMUs registered here: {})",
                        errno_name(&e),
                        spec.name,
                        sysinfo::pmus().join(", ")
                    ));
                }
                if let Ok(mut sw) = super::events::parse_event_list_with(&[soft.to_string()], &crate::perf::pmu::Pmus::default()) {
                    if let Some(mut s) = sw.pop() {
                        s.exclude_user = spec.exclude_user;
                        s.exclude_kernel = spec.exclude_kernel;
                        match out.iter().position(|o| o.type_ == s.type_ && o.config == s.config && o.group_leader.is_none()) {
                            Some(i) => *moved.last_mut().unwrap_or(&mut None) = Some(i),
                            None => out.push(s),
                        }
                    }
                }
            }
            // Some other failure (permissions, a bad raw code): keep the
            // event so that the real open reports the error in context.
            (None, _) => {
                let mut s = spec.clone();
                s.group_leader = leader;
                out.push(s)
            }
        }
    }
    if let Some(f) = &fallback {
        notes.push(f.clone());
    }
    Ok((out, fallback))
}

/// perf's -F clamp: a frequency above kernel.perf_event_max_sample_rate is
/// lowered to it, with a warning, instead of failing with EINVAL.
fn clamp_frequency(cfg: &RecordConfig, notes: &mut Vec<String>) -> Sampling {
    let max = std::fs::read_to_string("/proc/sys/kernel/perf_event_max_sample_rate").ok().and_then(|s| s.trim().parse::<u64>().ok());
    match (cfg.sampling, max) {
        (Sampling::Freq(f), Some(m)) if m > 0 && f > m => {
            notes.push(format!(
                "-F {f} is above kernel.perf_event_max_sample_rate ({m} Hz); sampling at {m} Hz (raise the sysctl for more)"
            ));
            Sampling::Freq(m)
        }
        (s, _) => s,
    }
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

    /// Send `sig` to the workload (while it runs).
    fn signal(&self, sig: libc::c_int) {
        if self.exited.is_none() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(self.pid, sig) };
        }
    }

    /// Ask the workload to end (SIGTERM), then force it (SIGKILL) when it
    /// has not exited within `grace`; returns its status.
    fn terminate(&mut self, grace: Duration) -> Option<i32> {
        self.signal(libc::SIGTERM);
        let until = Instant::now() + grace;
        while self.wait(false).is_none() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.exited.is_none() {
            self.signal(libc::SIGKILL);
        }
        self.wait(true)
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

/// How long a workload gets to exit after SIGTERM before SIGKILL.
const WORKLOAD_GRACE: Duration = Duration::from_secs(2);

/// Run a capture until the duration elapses, the workload exits, all target
/// processes exit, or SIGINT/SIGTERM arrives.
pub fn record(cfg: &RecordConfig) -> Result<RecordSummary, RecordError> {
    STOP.store(false, Ordering::SeqCst);
    STOP_SIGNAL.store(0, Ordering::SeqCst);
    install_signal_handlers();
    // SIGUSR2 closes the file (--switch-output signal) or asks for a
    // snapshot (--flight-recorder): caught from the start, so an early one
    // never ends msen.
    if cfg.rotation.as_ref().is_some_and(|r| r.switch == SwitchOutput::Signal || r.flight.is_some()) {
        catch(libc::SIGUSR2, &USR2, on_usr2);
    }
    if cfg.modes.is_some() {
        catch(libc::SIGUSR1, &USR1, on_usr1);
    }
    let mut notes = Vec::new();
    let started = Instant::now();
    let clamped;
    let cfg = match clamp_frequency(cfg, &mut notes) {
        s if s != cfg.sampling => {
            clamped = RecordConfig { sampling: s, ..cfg.clone() };
            &clamped
        }
        _ => cfg,
    };

    let (events, fallback) = probe_events(cfg, &mut notes)?;
    let all_software = events.iter().all(|e| !e.is_hardware());
    let exclude_kernel = !is_root() && sysinfo::perf_event_paranoid().is_some_and(|p| p >= 2);
    if exclude_kernel {
        notes.push(
            "kernel.perf_event_paranoid >= 2 and not root: sampling user space only (as `:u`); run as root for kernel samples".into(),
        );
    }
    if events.iter().any(|e| e.is_memory()) && !cfg.options.data {
        notes.push("memory events without -d: samples carry no data address or data source; add -d -W (or use --mem)".into());
    }

    let mut workload = match &cfg.workload {
        Some(argv) => Some(Workload::spawn(argv)?),
        None => None,
    };
    // Kill a spawned-but-unstarted child on any error path below.
    let result = run(cfg, &events, all_software, fallback, exclude_kernel, workload.as_mut(), &mut notes, started);
    if result.is_err() {
        if let Some(w) = workload.as_mut() {
            if w.exited.is_none() {
                w.signal(libc::SIGKILL);
                w.go.take();
                w.wait(true);
            }
        }
    }
    result
}

/// Keep an existing output as FILE.old (as perf keeps perf.data.old), then
/// create the new one; `-` is stdout.
fn create_output(cfg: &RecordConfig) -> io::Result<TraceWriter> {
    if cfg.output.as_os_str() == "-" {
        // SAFETY: dup of our own stdout; the new fd is owned by the File.
        let fd = unsafe { libc::dup(1) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nothing else owns.
        let f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        return TraceWriter::new(f, cfg.compression_level);
    }
    if std::fs::metadata(&cfg.output).is_ok_and(|m| m.is_file() && m.len() > 0) {
        let mut old = cfg.output.clone().into_os_string();
        old.push(".old");
        std::fs::rename(&cfg.output, &old)?;
    }
    TraceWriter::create(&cfg.output, cfg.compression_level)
}

#[allow(clippy::too_many_arguments)]
fn run(
    cfg: &RecordConfig,
    events: &[EventSpec],
    software_only: bool,
    fallback: Option<String>,
    exclude_kernel: bool,
    mut workload: Option<&mut Workload>,
    notes: &mut Vec<String>,
    started: Instant,
) -> Result<RecordSummary, RecordError> {
    let online = sys::online_cpus();
    let cpus: Vec<u32> = match &cfg.cpus {
        Some(want) => {
            if let Some(bad) = want.iter().find(|c| !online.contains(c)) {
                return Err(RecordError::Other(format!(
                    "-C: cpu {bad} is not online (online: {}); pick CPUs from /sys/devices/system/cpu/online",
                    online.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",")
                )));
            }
            want.clone()
        }
        None => online,
    };
    let page = sys::page_size();
    let data_bytes = cfg.mmap_pages * page;

    // pids to open per CPU: -1 (any task), the workload, or every thread.
    let pids: Vec<i32> = match &cfg.target {
        Target::AllCpus => vec![-1],
        Target::Command => vec![workload.as_ref().map_or(-1, |w| w.pid)],
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
        Target::Tids(ts) => {
            for &t in ts {
                if !Path::new(&format!("/proc/{t}")).exists() {
                    return Err(RecordError::NoSuchProcess(t));
                }
            }
            ts.iter().map(|&t| t as i32).collect()
        }
    };

    let mut descs: Vec<EventDesc> = Vec::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut rings: Vec<Ring> = Vec::new();
    // (event, cpu, pid) -> fd index, for group members to find their leader.
    let mut opened: std::collections::HashMap<(usize, u32, i32), usize> = std::collections::HashMap::new();
    let mut fd_is_leader: Vec<bool> = Vec::new();
    let mut fd_is_clock: Vec<bool> = Vec::new();
    // The event index of every fd (group leaders of later events can be shed).
    let mut fd_event: Vec<usize> = Vec::new();
    for (ei, spec) in events.iter().enumerate() {
        let mut attr = attrs::build(spec, cfg.sampling, &cfg.options, context(cfg, ei, exclude_kernel, data_bytes));
        let mut ids = Vec::new();
        for &cpu in &cpus {
            for &pid in &pids {
                let group_fd = spec.group_leader.and_then(|l| opened.get(&(l, cpu, pid))).map_or(-1, |&i| fds[i].as_raw_fd());
                if spec.group_leader.is_some() {
                    // Members are enabled with their leader.
                    attr.flags &= !(flag::DISABLED | flag::ENABLE_ON_EXEC);
                }
                let fd = match open_attr(&mut attr, pid, cpu as i32, group_fd) {
                    Ok(fd) => fd,
                    // A thread that exited since we listed it.
                    Err(e)
                        if e.raw_os_error() == Some(libc::ESRCH) && matches!(cfg.target, Target::Pids(_) | Target::Tids(_)) && pid > 0 =>
                    {
                        continue
                    }
                    Err(e) => {
                        return Err(match e.raw_os_error() {
                            Some(libc::EACCES) | Some(libc::EPERM) => RecordError::Permission {
                                event: spec.name.clone(),
                                hint: permission_hint(matches!(cfg.target, Target::AllCpus)),
                            },
                            Some(libc::ESRCH) => RecordError::NoSuchProcess(pid as u32),
                            _ if is_no_pmu(&e) && attr.sample_type & sample::BRANCH_STACK != 0 => RecordError::Other(format!(
                                "cannot open {} with branch stacks: {e}; this host has no branch-stack hardware (LBR, BRS, BRBE) for it: drop -b/-j/--call-graph lbr, or run on hardware that has one",
                                spec.name
                            )),
                            _ => RecordError::Open {
                                event: spec.name.clone(),
                                cpu: cpu as i32,
                                hint: if is_no_pmu(&e) {
                                    "; this host has no hardware PMU for it: use -e cpu-clock, or pass --fallback".into()
                                } else if e.raw_os_error() == Some(libc::EINVAL) && cfg.options.callgraph != CallGraph::None {
                                    "; the kernel refused the call-graph settings (try a smaller --call-graph dwarf,SIZE)".into()
                                } else {
                                    String::new()
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
                opened.insert((ei, cpu, pid), fds.len());
                fd_is_leader.push(spec.group_leader.is_none());
                fd_event.push(ei);
                // cpu-clock and task-clock: the kernel turns -F into a fixed
                // period in ns at open, so a new rate is set as a period.
                fd_is_clock.push(attr.type_ == crate::perf::attr::type_id::SOFTWARE && attr.config <= 1);
                fds.push(fd);
            }
        }
        descs.push(EventDesc { name: spec.name.clone(), attr: attr.clone(), ids });
    }
    if fds.is_empty() {
        return Err(RecordError::Other("no event could be opened: every target thread exited".into()));
    }

    // Flow context: BPF hooks, one BPF-output event per CPU into its ring,
    // the tagging program on every sampling event.
    let mut flow_capture = crate::trace::meta::FlowCapture::default();
    let flows = match cfg.flows {
        FlowMode::Off if cfg.modes.is_some() => {
            return Err(RecordError::Other(
                "--mode and --budget are applied by the flow BPF program on the sampling events; drop --no-flows".into(),
            ))
        }
        FlowMode::Off => {
            flow_capture.reason = Some("turned off (--no-flows)".into());
            None
        }
        mode => {
            let owner = |cpu: u32| rings.iter().find(|r| r.cpu == cpu).map(|r| &fds[r.owner]);
            let started = crate::flow::FlowSession::start(&cfg.flow_config, &cpus, owner)
                .and_then(|s| fds.iter().try_for_each(|fd| s.attach_to(fd)).map(|()| s));
            match started {
                Ok(s) => {
                    flow_capture = s.capture.clone();
                    descs.push(EventDesc { name: crate::flow::TAG_EVENT.into(), attr: s.tag_attr.clone(), ids: s.tag_ids.clone() });
                    Some(s)
                }
                Err(e) if cfg.modes.is_some() => return Err(RecordError::Budget("--mode/--budget", e.to_string())),
                Err(e) if mode == FlowMode::Required => return Err(RecordError::Flows(e.to_string())),
                Err(e) => {
                    notes.push(format!("flow context off: {e} (samples are recorded without flows; --no-flows silences this)"));
                    flow_capture.reason = Some(e.to_string());
                    None
                }
            }
        }
    };

    let mut meta = Metadata {
        msen_version: env!("CARGO_PKG_VERSION").to_string(),
        capture_id: crate::trace::meta::new_capture_id(),
        events: descs,
        command_line: cfg.command_line.clone(),
        workload: cfg.workload.clone().unwrap_or_default(),
        clock: "monotonic".into(),
        start_unix_ns: sysinfo::unix_ns(),
        start_clock_ns: sysinfo::monotonic_ns(),
        software_only,
        fallback_reason: fallback,
        target: {
            let list = |v: &[u32]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",");
            let what = match &cfg.target {
                Target::AllCpus if cfg.cpus.is_some() => format!("cpus {}", list(&cpus)),
                Target::AllCpus => "all CPUs".into(),
                Target::Pids(p) => format!("pid {}", list(p)),
                Target::Tids(t) => format!("tid {}", list(t)),
                Target::Command => "command".into(),
            };
            match &cfg.workload {
                Some(a) if cfg.target == Target::Command => format!("command: {}", a.join(" ")),
                Some(a) => format!("{what} while running: {}", a.join(" ")),
                None => what,
            }
        },
        flows: flow_capture,
        ..Default::default()
    };
    sysinfo::describe_machine(&mut meta);
    meta.pmus = sysinfo::pmus();
    // Read now (modules may unload during the capture); stored at the end,
    // cut down to the symbols the samples hit.
    let kallsyms_text = sysinfo::kallsyms();
    if let Some(k) = &kallsyms_text {
        (meta.kernel_text_start, meta.kernel_text_end) = crate::symbolize::kallsyms::text_range(k);
    }

    let out_err = |source| RecordError::Output { path: cfg.output.clone(), err: source };
    let write_err = |source| RecordError::Write { path: cfg.output.clone(), err: source };
    // --switch-output: every file is named OUTPUT.<UTC time> and is a
    // complete trace.
    let mut rotation = cfg.rotation.clone().map(Rotation::new);
    // The flight recorder's segments live in OUTPUT.flight/ (emptied at the end).
    let segment_base = match cfg.rotation.as_ref().and_then(|r| r.flight) {
        Some(_) => {
            let mut d = cfg.output.clone().into_os_string();
            d.push(".flight");
            let d = PathBuf::from(d);
            std::fs::create_dir_all(&d).map_err(|source| RecordError::Output { path: d.clone(), err: source })?;
            d.join("segment")
        }
        None => cfg.output.clone(),
    };
    let mut current_path = match &rotation {
        Some(_) => rotated_name(&segment_base, sysinfo::unix_ns()),
        None => cfg.output.clone(),
    };
    if let (Some(c), true) = (&cfg.control, cfg.rotation.as_ref().is_some_and(|r| r.flight.is_some())) {
        c.flight.store(true, Ordering::SeqCst);
    }
    // A snapshot asked for (flight recorder): its cause.
    let mut snapshot: Option<String> = None;
    let mut merging: Option<std::thread::JoinHandle<Result<(PathBuf, crate::trace::merge::Merged), String>>> = None;
    let mut snapshots: Vec<PathBuf> = Vec::new();
    let mut writer = match &rotation {
        Some(_) => TraceWriter::create(&current_path, cfg.compression_level),
        None => create_output(cfg),
    }
    .map_err(out_err)?;
    write_metadata(&mut writer, &meta).map_err(write_err)?;
    let kallsyms = kallsyms_text.map(|k| crate::symbolize::kallsyms::Kallsyms::parse(&k));
    // The vdso: not a file anywhere, and its code differs between kernels.
    let vdso = crate::symbolize::elf::own_vdso();
    // Samples and losses of the files already closed (--switch-output).
    let mut totals = (0u64, 0u64, 0u64);
    // The flow counters already written to earlier files.
    let mut counted = std::collections::BTreeMap::new();
    let mut file_started = Instant::now();

    let (track_type, id0) = (meta.events[0].attr.sample_type, meta.events[0].ids.first().copied().unwrap_or(0));
    let mut chunker = Chunker::new(&meta.events, rings.len());
    chunker.count_flows = cfg.control.is_some();
    if cfg.control.is_some() {
        chunker.live = Some(super::rollup::Feed::new(super::rollup::Topology::of(&meta), &meta.events));
    }

    // The agent: modes (budget in the kernel) and the status the endpoints
    // read. Its start is in force before the first sample.
    let mut agent = match (&cfg.modes, &cfg.control) {
        (None, None) => None,
        (m, c) => {
            let first_group = fd_event.first().copied().unwrap_or(0);
            let opened = meta
                .events
                .iter()
                .enumerate()
                .filter(|(_, d)| d.name != crate::flow::TAG_EVENT)
                .map(|(ei, d)| super::agent::Opened {
                    name: d.name.clone(),
                    fds: fds.iter().zip(&fd_event).filter(|(_, &e)| e == ei).map(|(f, _)| f.as_raw_fd()).collect(),
                    sheddable: ei != first_group && events.get(ei).is_some_and(|e| e.group_leader.is_none()),
                    freq: d.attr.is_freq().then_some(d.attr.period_or_freq),
                    period: d.attr.period_or_freq,
                    clock: fds.iter().zip(&fd_event).zip(&fd_is_clock).any(|((_, &e), &c)| e == ei && c),
                })
                .collect();
            let names = meta.events.iter().map(|e| e.name.clone()).collect();
            let mut a = Agent::new(m.clone().map(super::control::Modes::new), c.clone(), opened, names)
                .map_err(|e| RecordError::Other(format!("starting the live rollups' thread: {e}")))?;
            if let Some(f) = &flows {
                if let Some(start) = a.modes.as_ref().map(super::control::Modes::start) {
                    a.put_in_force(&start, f, &mut writer).map_err(|e| RecordError::Other(e.to_string()))?;
                }
            }
            Some(a)
        }
    };
    // Enable, then synthesize what already exists (a mapping made in between
    // appears twice, which the analyses tolerate; none is missed).
    // A started command's events enable themselves at its exec.
    if cfg.target != Target::Command {
        for (fd, leader) in fds.iter().zip(fd_is_leader.iter()) {
            if *leader {
                sys::enable(fd).map_err(|e| RecordError::Other(format!("enabling events: {e}")))?;
            }
        }
    }
    if let (Some(w), Some(argv)) = (workload.as_mut(), &cfg.workload) {
        w.start(argv.first().map(String::as_str).unwrap_or(""))?;
    }
    let synth_pids = match &cfg.target {
        Target::AllCpus => procscan::all_pids(),
        Target::Pids(p) => p.clone(),
        Target::Tids(t) => t.iter().filter_map(|&t| procscan::tgid_of(t)).collect(),
        Target::Command => Vec::new(),
    };
    let mut synth = Vec::new();
    for pid in synth_pids {
        procscan::synthesize_process(pid, track_type, id0, &mut synth);
    }
    chunker.push_synthesized(&synth, &mut writer).map_err(write_err)?;

    let deadline = cfg.duration.map(|d| Instant::now() + d);
    let mut pollfds: Vec<libc::pollfd> =
        rings.iter().map(|r| libc::pollfd { fd: fds[r.owner].as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    let mut scratch = Vec::with_capacity(data_bytes);
    let mut last_flush = Instant::now();
    let mut host = cfg.host_context.then(super::host::HostSampler::default);
    let mut host_samples: Vec<crate::trace::meta::HostSample> = Vec::new();
    let mut last_host = Instant::now() - Duration::from_secs(1);
    if let Some(h) = host.as_mut() {
        h.sample(sysinfo::monotonic_ns());
        last_host = Instant::now();
    }
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
        if let Some(h) = host.as_mut() {
            if last_host.elapsed() >= Duration::from_secs(1) {
                last_host = Instant::now();
                host_samples.extend(h.sample(sysinfo::monotonic_ns()));
            }
        }
        if last_flush.elapsed() >= cfg.flush_interval {
            write_host(&mut host_samples, &mut writer).map_err(write_err)?;
            chunker.flush_all(&mut writer).map_err(write_err)?;
            if let Some(f) = &cfg.flushed {
                f.store(writer.position(), Ordering::Release);
            }
            last_flush = Instant::now();
        }
        if let Some(a) = agent.as_mut() {
            a.step(
                flows.as_ref().map(|f| f as &dyn KernelSide),
                Counts { samples: totals.0 + chunker.samples, lost: totals.1 + chunker.lost, throttled: totals.2 + chunker.throttled },
                USR1.swap(false, Ordering::SeqCst),
                &mut chunker.flow_samples,
                chunker.live.as_mut(),
                &mut writer,
            )
            .map_err(|e| match e {
                AgentError::Write(e) => write_err(e),
                AgentError::Bpf(e) => RecordError::Other(format!("changing the sampling budget: {e}")),
            })?;
        }
        if let Some(r) = rotation.as_mut() {
            r.reap(notes);
            if r.cfg.flight.is_some() {
                if USR2.swap(false, Ordering::SeqCst) {
                    snapshot.get_or_insert_with(|| "SIGUSR2".into());
                }
                if let Some(c) = &cfg.control {
                    if let Some(why) = c.take_snapshot_request() {
                        snapshot.get_or_insert(why);
                    }
                }
                if let Some(why) = agent.as_mut().and_then(|a| a.anomaly_snapshot.take()) {
                    snapshot.get_or_insert(why);
                }
            }
            if let Some(h) = merging.take_if(|h| h.is_finished()) {
                snapshot_finished(h.join(), cfg, &mut snapshots, notes);
            }
            let due = match r.cfg.switch {
                // What is buffered counts at this file's compression ratio
                // so far (with a quarter more for safety; raw size before
                // any block), so a file never passes SIZE by a flush
                // interval of samples.
                SwitchOutput::Size(n) => {
                    let (pos, raw, buf) = (writer.position(), writer.raw_bytes(), chunker.buffered());
                    let pending = if raw > 0 { (buf as f64 * 1.25 * pos as f64 / raw as f64) as u64 } else { buf };
                    pos + pending >= n
                }
                SwitchOutput::Time(d) => file_started.elapsed() >= d,
                SwitchOutput::Signal => USR2.swap(false, Ordering::SeqCst),
            } || (snapshot.is_some() && merging.is_none());
            if due {
                // Close this file as a complete trace ...
                chunker.finish(&mut writer).map_err(write_err)?;
                write_host(&mut host_samples, &mut writer).map_err(write_err)?;
                if let Some(f) = &flows {
                    write_flows(&mut writer, &per_file(&f.table(), &mut counted)).map_err(write_err)?;
                }
                let ends = Ends { kallsyms: kallsyms.as_ref(), vdso: vdso.as_deref() };
                write_ends(&mut writer, &chunker, &ends, "switch-output").map_err(write_err)?;
                // ... and open the next: fresh id and start, the processes
                // sampled so far described again, the mode in force.
                let next = rotated_name(&segment_base, sysinfo::unix_ns());
                meta.capture_id = crate::trace::meta::new_capture_id();
                meta.start_unix_ns = sysinfo::unix_ns();
                meta.start_clock_ns = sysinfo::monotonic_ns();
                let mut w = TraceWriter::create(&next, cfg.compression_level).map_err(out_err)?;
                write_metadata(&mut w, &meta).map_err(write_err)?;
                let old = std::mem::replace(&mut writer, w);
                let old_path = std::mem::replace(&mut current_path, next);
                if r.cfg.flight.is_some() {
                    // A segment is finished at once: its symbols are embedded
                    // only if a snapshot takes it.
                    let (_, n) = embed_and_finish(old, &old_path, Embed::None, false).map_err(write_err)?;
                    notes.extend(n);
                    r.written += 1;
                    r.files.push_back(old_path);
                } else {
                    r.finish_in_background(old, old_path, cfg.embed);
                }
                totals = (totals.0 + chunker.samples, totals.1 + chunker.lost, totals.2 + chunker.throttled);
                let mut pids: Vec<u32> = chunker.sampled_pids().collect();
                pids.extend(workload.as_ref().map(|w| w.pid as u32));
                pids.sort_unstable();
                pids.dedup();
                let live = chunker.live.take();
                chunker = Chunker::new(&meta.events, rings.len());
                chunker.count_flows = cfg.control.is_some();
                chunker.live = live;
                let mut synth = Vec::new();
                for pid in pids {
                    procscan::synthesize_process(pid, track_type, id0, &mut synth);
                }
                chunker.push_synthesized(&synth, &mut writer).map_err(write_err)?;
                if let (Some(a), Some(f)) = (agent.as_mut(), &flows) {
                    if let Some(m) = &a.modes {
                        let s = super::control::Switch { mode: m.mode(), budget: m.budget(), cause: "switch-output: in force".into() };
                        a.put_in_force(&s, f, &mut writer).map_err(|e| RecordError::Other(e.to_string()))?;
                    }
                }
                file_started = Instant::now();
                if merging.is_none() {
                    if let Some(why) = snapshot.take() {
                        // Every closed segment, finished, merged off this thread.
                        r.wait_all(notes);
                        let segs: Vec<PathBuf> = r.files.iter().cloned().collect();
                        let out = {
                            let mut o = cfg.output.clone().into_os_string();
                            o.push(".snapshot");
                            rotated_name(Path::new(&o), sysinfo::unix_ns())
                        };
                        let (level, embed) = (cfg.compression_level, cfg.embed);
                        merging = Some(std::thread::spawn(move || {
                            let refs: Vec<&Path> = segs.iter().map(PathBuf::as_path).collect();
                            let id = crate::trace::meta::new_capture_id();
                            let mut w = TraceWriter::create(&out, level).map_err(|e| format!("{}: {e}", out.display()))?;
                            let mut m = crate::trace::merge::merge_into(&refs, &mut w, &out, &id, &format!("snapshot: {why}"))
                                .map_err(|e| e.to_string())?;
                            // The symbols once, for the whole snapshot (segments carry none).
                            m.bytes = embed_and_finish(w, &out, embed, false).map_err(|e| format!("{}: {e}", out.display()))?.0;
                            Ok((out.clone(), m))
                        }));
                    }
                }
            }
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
        if let Target::Pids(ps) | Target::Tids(ps) = &cfg.target {
            if cfg.workload.is_none() && ps.iter().all(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                stop_reason = "target processes exited";
                break;
            }
        }
        for p in pollfds.iter_mut() {
            p.revents = 0;
        }
    }
    // A workload still running ends with the capture: the signal that
    // stopped msen is passed on (Ctrl-C, SIGTERM); --duration ends it.
    let workload_exit = match workload.as_mut() {
        // --duration asked for a capture of that length: end the workload
        // (SIGTERM, then SIGKILL) and report success, not its signal.
        Some(w) if w.exited.is_none() && stop_reason == "duration" => {
            w.terminate(WORKLOAD_GRACE);
            notes.push(format!("--duration elapsed: ended the workload (pid {})", w.pid));
            None
        }
        // A signal to msen is passed on, as a shell would; the workload's
        // own status then tells how it ended (130 after Ctrl-C).
        Some(w) if w.exited.is_none() => {
            let sig = STOP_SIGNAL.load(Ordering::SeqCst);
            w.signal(if sig != 0 { sig } else { libc::SIGTERM });
            let until = Instant::now() + WORKLOAD_GRACE;
            while w.wait(false).is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            if w.exited.is_none() {
                w.terminate(WORKLOAD_GRACE)
            } else {
                w.exited
            }
        }
        Some(w) => w.exited,
        None => None,
    };
    for fd in &fds {
        let _ = sys::disable(fd);
    }
    for (ri, ring) in rings.iter_mut().enumerate() {
        scratch.clear();
        if ring.buf.drain_into(&mut scratch) > 0 {
            chunker.push(ri, ring.cpu, &scratch, &mut writer).map_err(write_err)?;
        }
    }
    chunker.finish(&mut writer).map_err(write_err)?;
    write_host(&mut host_samples, &mut writer).map_err(write_err)?;
    if let Some((a, m)) = agent.as_ref().and_then(|a| a.modes.as_ref().map(|m| (a, m))) {
        if a.switches > 1 {
            notes.push(format!("modes: {} switches, ended in {}", a.switches - 1, m.mode().name()));
        }
    }
    let flow_table = flows.as_ref().map(crate::flow::FlowSession::table);
    drop(flows);
    drop(rings);
    drop(fds);
    if let Some(t) = &flow_table {
        write_flows(&mut writer, &per_file(t, &mut counted)).map_err(write_err)?;
        let c = |k: &str| t.counters.get(k).copied().unwrap_or(0);
        notes.push(format!(
            "flows: {} seen, {} samples tagged{}{}",
            t.flows.len(),
            c("tags"),
            match c("dropped_by_flow_filter") + c("dropped_by_pid_filter") {
                0 => String::new(),
                n => format!(", {n} dropped by the in-kernel filters"),
            },
            match c("tag_output_errors") {
                0 => String::new(),
                n => format!(", {n} tags could not be written"),
            }
        ));
        match (c("dropped_by_budget"), c("dropped_by_min_gap")) {
            (0, 0) => {}
            (b, g) => notes.push(format!(
                "budget: {b} samples dropped over the budget, {g} closer than --hard-drop-ns to the last (in the kernel, counted per CPU in the trace)"
            )),
        }
    }

    let ends = Ends { kallsyms: kallsyms.as_ref(), vdso: vdso.as_deref() };
    write_ends(&mut writer, &chunker, &ends, stop_reason).map_err(write_err)?;
    let to_stdout = cfg.output.as_os_str() == "-";
    let bytes = if to_stdout {
        if cfg.embed != Embed::None {
            notes.push("symbols not embedded: the trace went to standard output (analyze it where its binaries are)".into());
        }
        writer.finish().map_err(write_err)?
    } else {
        let flight = cfg.rotation.as_ref().is_some_and(|r| r.flight.is_some());
        let (b, n) =
            embed_and_finish(writer, &current_path, if flight { Embed::None } else { cfg.embed }, cfg.verbose).map_err(write_err)?;
        notes.extend(n);
        b
    };
    if let Some(h) = merging.take() {
        snapshot_finished(h.join(), cfg, &mut snapshots, notes);
    }
    if let Some(r) = rotation.as_mut().filter(|r| r.cfg.flight.is_some()) {
        // The flight recorder keeps only what a trigger asked for.
        r.files.push_back(current_path.clone());
        r.wait_all(notes);
        for f in r.files.drain(..) {
            let _ = std::fs::remove_file(&f);
        }
        if let Some(dir) = segment_base.parent() {
            let _ = std::fs::remove_dir(dir);
        }
        match snapshots.last() {
            Some(last) => {
                notes.push(format!("flight recorder: {} snapshots; the segments are removed", snapshots.len()));
                current_path = last.clone();
            }
            None => {
                notes.push(
                    "flight recorder: no trigger came, so nothing was kept (a snapshot is written on SIGUSR2, an anomaly, POST /api/v1/snapshot or /api/v1/alert)".into(),
                );
                current_path = cfg.output.clone();
            }
        }
    } else if let Some(r) = rotation.as_mut() {
        r.files.push_back(current_path.clone());
        r.wait_all(notes);
        r.prune(false, notes);
        notes.push(format!(
            "--switch-output: {} files written, kept the newest {} ({})",
            r.written + 1,
            r.files.len(),
            r.files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ));
    }
    let (samples, lost) = (totals.0 + chunker.samples, totals.1 + chunker.lost);
    let bytes = if cfg.rotation.as_ref().is_some_and(|r| r.flight.is_some()) {
        std::fs::metadata(&current_path).map_or(0, |m| m.len())
    } else {
        bytes
    };
    if lost > 0 {
        notes.push(format!("the kernel dropped {lost} records (ring buffer full); raise --mmap-pages or lower -F"));
    }
    Ok(RecordSummary {
        path: current_path,
        samples,
        lost,
        bytes,
        elapsed: started.elapsed(),
        software_only,
        workload_exit,
        notes: std::mem::take(notes),
    })
}

fn write_metadata(w: &mut TraceWriter, meta: &Metadata) -> io::Result<()> {
    let json = serde_json::to_vec(meta).map_err(io::Error::other)?;
    w.write_block(BlockInfo { kind: BlockKind::METADATA, stream: STREAM_GLOBAL, record_count: 1, first_time: 0, last_time: 0 }, &json)
}

fn write_flows(w: &mut TraceWriter, t: &crate::trace::meta::FlowTable) -> io::Result<()> {
    let json = serde_json::to_vec(t).map_err(io::Error::other)?;
    w.write_block(
        BlockInfo { kind: BlockKind::FLOWS, stream: STREAM_GLOBAL, record_count: t.flows.len() as u32, first_time: 0, last_time: 0 },
        &json,
    )
}

/// This file's share of the in-kernel counters (they count from the start
/// of the capture; earlier files hold the rest).
fn per_file(
    t: &crate::trace::meta::FlowTable,
    counted: &mut std::collections::BTreeMap<String, Vec<u64>>,
) -> crate::trace::meta::FlowTable {
    let mut out = t.clone();
    for (k, per) in out.per_cpu.iter_mut() {
        let before = counted.get(k).cloned().unwrap_or_default();
        counted.insert(k.clone(), per.clone());
        for (i, v) in per.iter_mut().enumerate() {
            *v = v.saturating_sub(before.get(i).copied().unwrap_or(0));
        }
    }
    out.counters = out.per_cpu.iter().map(|(k, v)| (k.clone(), v.iter().sum())).collect();
    out
}

/// What closing any trace file writes besides its samples.
struct Ends<'a> {
    kallsyms: Option<&'a crate::symbolize::kallsyms::Kallsyms>,
    vdso: Option<&'a [u8]>,
}

/// KALLSYMS (the hit symbols), VDSO, JIT maps and CAPTURE_END.
fn write_ends(w: &mut TraceWriter, chunker: &Chunker, ends: &Ends<'_>, stop_reason: &str) -> io::Result<()> {
    let global = |kind, n| BlockInfo { kind, stream: STREAM_GLOBAL, record_count: n, first_time: 0, last_time: 0 };
    if let Some(k) = ends.kallsyms {
        w.write_block(global(BlockKind::KALLSYMS, 1), k.subset_text(chunker.kernel_ips()).as_bytes())?;
    }
    if let Some(img) = ends.vdso {
        w.write_block(global(BlockKind::VDSO, 1), img)?;
    }
    // JIT symbol maps (the perf-PID.map convention of the JVM, V8, .NET, ...).
    let jit: std::collections::BTreeMap<String, String> = chunker
        .sampled_pids()
        .filter_map(|p| std::fs::read_to_string(format!("/tmp/perf-{p}.map")).ok().map(|t| (p.to_string(), t)))
        .collect();
    if !jit.is_empty() {
        w.write_block(global(BlockKind::JIT_MAPS, jit.len() as u32), &serde_json::to_vec(&jit).map_err(io::Error::other)?)?;
    }
    let mut build_ids = chunker.build_ids();
    // The kernel's and the vdso's, as perf records them (perf report and
    // buildid-list on an export find the matching symbols by these).
    if let Some(id) = crate::symbolize::kallsyms::running_kernel_build_id() {
        build_ids.push(crate::trace::meta::BuildId { path: "[kernel.kallsyms]".into(), build_id: id });
    }
    if let Some(id) = ends.vdso.and_then(crate::symbolize::elf::build_id_of_bytes) {
        build_ids.push(crate::trace::meta::BuildId { path: "[vdso]".into(), build_id: id });
    }
    build_ids.sort_by(|a, b| a.path.cmp(&b.path));
    let end = CaptureEnd {
        end_unix_ns: sysinfo::unix_ns(),
        end_clock_ns: sysinfo::monotonic_ns(),
        lost_records: chunker.lost,
        build_ids,
        samples: chunker.samples,
        stop_reason: stop_reason.to_string(),
    };
    w.write_block(global(BlockKind::CAPTURE_END, 1), &serde_json::to_vec(&end).map_err(io::Error::other)?)
}

/// The symbols the samples need, read back from what was just written
/// (stack copies unwound as the analyses will), so the trace reads the
/// same on a machine without these binaries; then the footer. Returns the
/// file's size and notes.
fn embed_and_finish(mut w: TraceWriter, path: &Path, embed: Embed, verbose: bool) -> io::Result<(u64, Vec<String>)> {
    let mut notes = Vec::new();
    if embed != Embed::None {
        let t0 = Instant::now();
        let embedded = crate::analyze::loaded::Loaded::open(path, &Default::default())
            .and_then(|l| crate::analyze::embed::collect(&l, embed == Embed::Lines));
        match embedded {
            Ok(c) => {
                let before = w.position();
                let global = |kind, n| BlockInfo { kind, stream: STREAM_GLOBAL, record_count: n, first_time: 0, last_time: 0 };
                w.write_block(
                    global(BlockKind::SYMBOLS, c.embedded.dsos.len() as u32),
                    &serde_json::to_vec(&c.embedded).map_err(io::Error::other)?,
                )?;
                if !c.unwind.is_empty() {
                    w.write_block(global(BlockKind::UNWIND, c.unwind.len() as u32), &crate::symbolize::embedded::encode_unwind(&c.unwind))?;
                }
                if verbose && t0.elapsed() > Duration::from_secs(2) {
                    notes.push(format!(
                        "embedded {} symbols of {} objects ({} bytes) in {:.1} s; --no-embed skips this",
                        c.embedded.symbol_count(),
                        c.embedded.dsos.len(),
                        w.position() - before,
                        t0.elapsed().as_secs_f64()
                    ));
                }
            }
            Err(e) => notes.push(format!("{}: symbols not embedded: {e}", path.display())),
        }
    }
    Ok((w.finish()?, notes))
}

/// `--switch-output`: when a file is closed, and which are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchOutput {
    /// When the file reaches this many bytes.
    Size(u64),
    Time(Duration),
    /// On SIGUSR2.
    Signal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationConfig {
    pub switch: SwitchOutput,
    /// Keep at most this many files (the newest), the one being written included.
    pub max_files: Option<usize>,
    /// `--flight-recorder SIZE`: segments of SIZE/5 in OUTPUT.flight/, at
    /// most SIZE of them kept; a trigger merges them into a snapshot trace.
    pub flight: Option<u64>,
}

/// A snapshot's merge ended: keep it (the newest `--max-files` of them;
/// older ones are removed, so disk use stays bounded) and say so.
fn snapshot_finished(
    joined: std::thread::Result<Result<(PathBuf, crate::trace::merge::Merged), String>>,
    cfg: &RecordConfig,
    snapshots: &mut Vec<PathBuf>,
    notes: &mut Vec<String>,
) {
    let (path, m) = match joined {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return notes.push(format!("snapshot failed: {e}")),
        Err(_) => return notes.push("snapshot failed: its thread panicked".into()),
    };
    let line = format!("snapshot {}: {} segments, {} samples, {} bytes", path.display(), m.segments, m.samples, m.bytes);
    // Said as it happens too: the capture goes on.
    if cfg.verbose {
        eprintln!("msen: {line}");
    }
    notes.push(line);
    snapshots.push(path);
    let max = cfg.rotation.as_ref().and_then(|r| r.max_files).unwrap_or(usize::MAX);
    while snapshots.len() > max {
        let old = snapshots.remove(0);
        match std::fs::remove_file(&old) {
            Ok(()) => notes.push(format!("removed the oldest snapshot {} (--max-files {max})", old.display())),
            Err(e) => notes.push(format!("could not remove the oldest snapshot {}: {e}", old.display())),
        }
    }
    if let Some(c) = &cfg.control {
        c.set_snapshots(snapshots.iter().map(|p| p.display().to_string()).collect());
    }
}

/// SIGUSR2 arrived (--switch-output signal).
static USR2: AtomicBool = AtomicBool::new(false);

extern "C" fn on_usr2(_sig: libc::c_int) {
    USR2.store(true, Ordering::SeqCst);
}

/// A closed file being finished: its size and notes when done.
type Finishing = std::thread::JoinHandle<io::Result<(u64, Vec<String>)>>;

#[derive(Debug)]
struct Rotation {
    cfg: RotationConfig,
    /// Files being finished (symbols embedded) on their own thread.
    pending: Vec<(PathBuf, Finishing)>,
    /// Complete files, oldest first.
    files: std::collections::VecDeque<PathBuf>,
    written: usize,
}

impl Rotation {
    fn new(cfg: RotationConfig) -> Rotation {
        Rotation { cfg, pending: Vec::new(), files: Default::default(), written: 0 }
    }

    /// Finish a closed file off the capture's thread (embedding symbols can
    /// take seconds; the rings must keep draining meanwhile).
    fn finish_in_background(&mut self, w: TraceWriter, path: PathBuf, embed: Embed) {
        let p = path.clone();
        self.written += 1;
        self.pending.push((path, std::thread::spawn(move || embed_and_finish(w, &p, embed, false))));
    }

    /// Collect the files whose finishing ended; drop the oldest beyond --max-files.
    fn reap(&mut self, notes: &mut Vec<String>) {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].1.is_finished() {
                let (path, h) = self.pending.remove(i);
                Self::joined(&path, h, notes);
                self.files.push_back(path);
            } else {
                i += 1;
            }
        }
        self.prune(true, notes);
    }

    fn joined(path: &Path, h: Finishing, notes: &mut Vec<String>) {
        match h.join() {
            Ok(Ok((_, n))) => notes.extend(n),
            Ok(Err(e)) => notes.push(format!("{}: could not be finished: {e}", path.display())),
            Err(_) => notes.push(format!("{}: the thread finishing it failed", path.display())),
        }
    }

    fn wait_all(&mut self, notes: &mut Vec<String>) {
        let mut done: Vec<PathBuf> = Vec::new();
        for (path, h) in self.pending.drain(..) {
            Self::joined(&path, h, notes);
            done.push(path);
        }
        // Oldest first, the file just closed last.
        let last = self.files.pop_back();
        self.files.extend(done);
        self.files.extend(last);
    }

    /// `writing`: a file is being written (it counts against --max-files).
    fn prune(&mut self, writing: bool, notes: &mut Vec<String>) {
        if let (Some(limit), SwitchOutput::Size(seg)) = (self.cfg.flight, &self.cfg.switch) {
            // The segments on disk plus the one being written stay within
            // SIZE: room for two segments is kept free, since a segment
            // grows past its size by what closing it adds (symbols, ends).
            let size = |p: &PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
            let mut used: u64 = self.files.iter().map(size).sum::<u64>() + self.pending.iter().map(|(p, _)| size(p)).sum::<u64>();
            while used + if writing { 2 * *seg } else { 0 } > limit && !self.files.is_empty() {
                if let Some(old) = self.files.pop_front() {
                    used -= size(&old);
                    if let Err(e) = std::fs::remove_file(&old) {
                        notes.push(format!("--flight-recorder: cannot remove {}: {e}", old.display()));
                    }
                }
            }
            return;
        }
        let Some(max) = self.cfg.max_files else { return };
        while self.files.len() + self.pending.len() + usize::from(writing) > max.max(1) && !self.files.is_empty() {
            if let Some(old) = self.files.pop_front() {
                if let Err(e) = std::fs::remove_file(&old) {
                    notes.push(format!("--max-files: cannot remove {}: {e}", old.display()));
                }
            }
        }
    }
}

/// OUTPUT.<UTC YYYYmmddHHMMSSmmm>, as perf names its --switch-output files
/// (a suffix -N when two fall in one millisecond).
fn rotated_name(output: &Path, unix_ns: u64) -> PathBuf {
    let secs = unix_ns / 1_000_000_000;
    let ms = (unix_ns / 1_000_000) % 1000;
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let stamp = format!("{y:04}{m:02}{d:02}{:02}{:02}{:02}{ms:03}", rem / 3600, rem % 3600 / 60, rem % 60);
    let mut name = output.as_os_str().to_owned();
    name.push(format!(".{stamp}"));
    let mut p = PathBuf::from(&name);
    let mut n = 1;
    while p.exists() {
        let mut alt = name.clone();
        alt.push(format!("-{n}"));
        p = PathBuf::from(alt);
        n += 1;
    }
    p
}

/// The host readings gathered since the last flush, as one HOST block.
fn write_host(samples: &mut Vec<crate::trace::meta::HostSample>, w: &mut TraceWriter) -> io::Result<()> {
    if samples.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_vec(&*samples).map_err(io::Error::other)?;
    let (first, last) = (samples[0].time, samples[samples.len() - 1].time);
    w.write_block(
        BlockInfo { kind: BlockKind::HOST, stream: STREAM_GLOBAL, record_count: samples.len() as u32, first_time: first, last_time: last },
        &json,
    )?;
    samples.clear();
    Ok(())
}

/// `msen record --mock SCENARIO --rate N`: the scenario's samples, N a
/// second, through the capture's own parts (the chunker and its flushes,
/// the budget and modes, the status and metrics, the control API, and a
/// follower exporting to ClickHouse), as samples of the synthetic 2-socket
/// host would arrive from its rings.
pub fn record_mock(cfg: &RecordConfig, scenario: super::mock::Scenario, rate: u64, seed: u64) -> Result<RecordSummary, RecordError> {
    STOP.store(false, Ordering::SeqCst);
    install_signal_handlers();
    if cfg.modes.is_some() {
        catch(libc::SIGUSR1, &USR1, on_usr1);
    }
    let started = Instant::now();
    let mut notes = Vec::new();
    let write_err = |source| RecordError::Write { path: cfg.output.clone(), err: source };
    let mut meta = super::mock::metadata(scenario, crate::trace::meta::new_capture_id(), cfg.command_line.clone());
    meta.start_unix_ns = sysinfo::unix_ns();
    meta.start_clock_ns = sysinfo::monotonic_ns();
    meta.target = format!("mock scenario {scenario:?} at {rate} samples/s");
    let mut writer = create_output(cfg).map_err(|source| RecordError::Output { path: cfg.output.clone(), err: source })?;
    write_metadata(&mut writer, &meta).map_err(write_err)?;
    let cpus = super::mock::CPUS as usize;
    let mut chunker = Chunker::new(&meta.events, cpus);
    chunker.count_flows = cfg.control.is_some();
    if cfg.control.is_some() {
        chunker.live = Some(super::rollup::Feed::new(super::rollup::Topology::of(&meta), &meta.events));
    }
    chunker.push_synthesized(&super::mock::sideband(&meta), &mut writer).map_err(write_err)?;
    let kernel = MockKernel::new(cpus);
    let mut agent = match (&cfg.modes, &cfg.control) {
        (None, None) => None,
        (m, c) => {
            let names = meta.events.iter().map(|e| e.name.clone()).collect();
            let mut a = Agent::new(m.clone().map(super::control::Modes::new), c.clone(), Vec::new(), names)
                .map_err(|e| RecordError::Other(format!("starting the live rollups' thread: {e}")))?;
            if let Some(start) = a.modes.as_ref().map(super::control::Modes::start) {
                a.put_in_force(&start, &kernel, &mut writer).map_err(|e| RecordError::Other(e.to_string()))?;
            }
            Some(a)
        }
    };
    if !cfg.flow_config.pids.is_empty() || !cfg.flow_config.filters.is_empty() {
        let _ = kernel.set_targets(&cfg.flow_config.pids, &cfg.flow_config.filters);
    }
    // The scenario's access pattern, played in a loop.
    let pattern = super::mock::generate(scenario, 1000, seed);
    if pattern.is_empty() {
        return Err(RecordError::Other(format!("mock scenario {scenario:?} generates no samples")));
    }
    let deadline = cfg.duration.map(|d| Instant::now() + d);
    let (mut emitted, mut next) = (0u64, 0usize);
    let mut per_cpu: Vec<Vec<u8>> = vec![Vec::new(); cpus];
    let mut last_flush = Instant::now();
    let stop_reason;
    loop {
        std::thread::sleep(Duration::from_millis(10));
        let now = sysinfo::monotonic_ns();
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        let n = due.saturating_sub(emitted);
        for k in 0..n {
            let s = &pattern[next];
            next = (next + 1) % pattern.len();
            // Spread over the last tick, in order.
            let t = now.saturating_sub(10_000_000) + k * 10_000_000 / n.max(1);
            if kernel.admit(s, t) {
                super::mock::records(s, t, &mut per_cpu[s.cpu as usize % cpus]);
            }
        }
        emitted += n;
        for (cpu, buf) in per_cpu.iter_mut().enumerate() {
            if !buf.is_empty() {
                chunker.push(cpu, cpu as u32, buf, &mut writer).map_err(write_err)?;
                buf.clear();
            }
        }
        if last_flush.elapsed() >= cfg.flush_interval {
            chunker.flush_all(&mut writer).map_err(write_err)?;
            if let Some(f) = &cfg.flushed {
                f.store(writer.position(), Ordering::Release);
            }
            last_flush = Instant::now();
        }
        if let Some(a) = agent.as_mut() {
            let counts = Counts { samples: chunker.samples, lost: 0, throttled: 0 };
            let usr1 = USR1.swap(false, Ordering::SeqCst);
            a.step(Some(&kernel), counts, usr1, &mut chunker.flow_samples, chunker.live.as_mut(), &mut writer)
                .map_err(|e| RecordError::Other(e.to_string()))?;
        }
        if STOP.load(Ordering::SeqCst) {
            stop_reason = "signal";
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stop_reason = "duration";
            break;
        }
    }
    chunker.finish(&mut writer).map_err(write_err)?;
    let per = kernel.counters_per_cpu();
    let totals = per.iter().map(|(k, v)| (k.clone(), v.iter().sum())).collect();
    write_flows(&mut writer, &super::mock::flow_table(totals, per)).map_err(write_err)?;
    let end = CaptureEnd {
        end_unix_ns: sysinfo::unix_ns(),
        end_clock_ns: sysinfo::monotonic_ns(),
        samples: chunker.samples,
        stop_reason: stop_reason.to_string(),
        ..Default::default()
    };
    let global = BlockInfo { kind: BlockKind::CAPTURE_END, stream: STREAM_GLOBAL, record_count: 1, first_time: 0, last_time: 0 };
    writer.write_block(global, &serde_json::to_vec(&end).map_err(|e| RecordError::Other(e.to_string()))?).map_err(write_err)?;
    let bytes = writer.finish().map_err(write_err)?;
    let c = kernel.counters_per_cpu();
    let sum = |k: &str| c.get(k).map_or(0, |v| v.iter().sum::<u64>());
    notes.push(format!(
        "mock {scenario:?}: {emitted} samples offered at {rate}/s, {} kept, {} over the budget, {} closer than --hard-drop-ns, {} filtered",
        sum("tags"),
        sum("dropped_by_budget"),
        sum("dropped_by_min_gap"),
        sum("dropped_by_pid_filter") + sum("dropped_by_flow_filter")
    ));
    Ok(RecordSummary {
        path: cfg.output.clone(),
        samples: chunker.samples,
        lost: 0,
        bytes,
        elapsed: started.elapsed(),
        software_only: false,
        workload_exit: None,
        notes,
    })
}
