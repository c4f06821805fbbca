//! What a running capture shares with its agent endpoints (`src/agent`):
//! requests in, status out. The capture loop owns every decision; the
//! endpoints only queue requests and read the last published status, so a
//! slow or hostile client can never hold up the capture.
//!
//! `Modes` is MicroSentinel's mode logic, kept free of I/O so it is tested
//! on its own: which budget is in force, and when the diagnostic hold ends.

use crate::trace::meta::{Budget, Mode};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Defaults of MicroSentinel's modes (samples per second per CPU).
pub const SENTINEL_BUDGET: u64 = 5000;
pub const DIAGNOSTIC_BUDGET: u64 = 20000;

/// `--mode`, the budgets and the hold: what the capture starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeConfig {
    /// `--mode auto`: triggers switch to diagnostic, the hold switches back.
    pub auto: bool,
    pub initial: Mode,
    pub sentinel: Budget,
    pub diagnostic: Budget,
    /// How long diagnostic lasts after the last trigger (auto only).
    pub hold: Duration,
    /// `--anomaly-interfaces`: traffic trouble there is a trigger (auto only).
    pub anomaly: Option<super::anomaly::AnomalyConfig>,
}

impl ModeConfig {
    /// A budget of `rate` samples/s per CPU with the default burst: a tenth
    /// of a second's worth (at least one sample).
    pub fn budget(rate: u64, burst: Option<u64>, hard_drop_ns: u64) -> Budget {
        Budget { rate, burst: burst.unwrap_or((rate / 10).max(1)), hard_drop_ns }
    }
}

/// A request from an endpoint or a signal, applied by the capture loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Pin a mode (`Some`) or hand the choice back to the triggers (`None`, auto).
    SetMode { mode: Option<Mode>, cause: String },
    /// Something looks wrong: in auto mode, diagnostic for the hold time.
    Trigger { cause: String },
    /// Change one mode's budget (in force at once when that mode is).
    SetBudget { mode: Mode, budget: Budget },
    /// JIT symbols of a process, as perf-map text (`START SIZE NAME`, hex).
    RegisterJit { pid: u32, map: String },
    /// Data objects, as `ADDRESS SIZE NAME [TYPE]` lines.
    RegisterData { text: String },
    /// Replace the in-kernel target filters (empty: keep everything).
    SetTargets { pids: Vec<u32>, flows: Vec<crate::flow::FlowFilter> },
    /// Tune one event (POST /api/v1/pmu-config): on or off, and its rate.
    PmuConfig(PmuChange),
}

/// A change to one opened event. Events are tuned, never added: a new
/// event needs its own ring buffers, so it takes a new `msen record`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PmuChange {
    pub event: String,
    pub enabled: Option<bool>,
    /// Samples per second (events opened with -F).
    pub freq: Option<u64>,
    /// Events per sample (events opened with -c).
    pub period: Option<u64>,
}

/// One opened event as the agent runs it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EventState {
    pub name: String,
    pub enabled: bool,
    /// Turned off by load shedding (back on when the load falls).
    pub shed: bool,
    /// "freq" or "period", as the event was opened.
    pub sampling: &'static str,
    /// The rate in force: Hz for freq, events per sample for period.
    pub rate: u64,
    /// Time running over time enabled in the last second (1: never
    /// multiplexed off the PMU); None before the first reading.
    pub scale: Option<f64>,
}

/// The last status the capture published (about once a second).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub mode: Mode,
    pub auto: bool,
    pub budget: Budget,
    pub sentinel_budget: Budget,
    pub diagnostic_budget: Budget,
    pub uptime_secs: f64,
    /// Samples written to the trace.
    pub samples: u64,
    /// Over the last publishing interval.
    pub samples_per_sec: f64,
    /// Records the kernel lost (ring buffer full).
    pub lost: u64,
    /// Samples the kernel program dropped, by reason.
    pub dropped: BTreeMap<String, u64>,
    /// PERF_RECORD_THROTTLE records: the kernel lowered the sampling rate.
    pub throttled: u64,
    /// Of those, in the last publishing interval.
    pub throttled_last_sec: u64,
    /// Mode switches so far.
    pub switches: u64,
    /// The last anomaly seen on the watched interfaces, if any.
    pub last_anomaly: Option<String>,
    /// The busiest flows over the last second: (5-tuple, samples/s).
    pub flows_top: Vec<(String, f64)>,
    /// The opened events (not the flow tag), in -e order.
    pub events: Vec<EventState>,
}

/// Shared between the capture loop and the endpoints.
#[derive(Debug, Default)]
pub struct Control {
    requests: Mutex<Vec<Request>>,
    /// A snapshot asked for (POST /api/v1/snapshot, an alert): its cause.
    snapshot: Mutex<Option<String>>,
    /// Snapshot traces written so far.
    snapshots: Mutex<Vec<String>>,
    /// The capture runs a flight recorder (snapshots can be asked for).
    pub flight: std::sync::atomic::AtomicBool,
    /// None until the capture has started and published.
    status: Mutex<Option<Status>>,
    /// The live rollups' last tops (record::rollup's worker).
    tops: Mutex<Option<std::sync::Arc<super::rollup::Tops>>>,
}

impl Control {
    pub fn request(&self, r: Request) {
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).push(r);
    }

    pub fn request_snapshot(&self, cause: String) {
        self.snapshot.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(cause);
    }

    pub fn take_snapshot_request(&self) -> Option<String> {
        self.snapshot.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The snapshot traces kept so far, oldest first.
    pub fn set_snapshots(&self, paths: Vec<String>) {
        *self.snapshots.lock().unwrap_or_else(|e| e.into_inner()) = paths;
    }

    pub fn snapshots(&self) -> Vec<String> {
        self.snapshots.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn take_requests(&self) -> Vec<Request> {
        std::mem::take(&mut *self.requests.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The last status; None while the capture is still starting.
    pub fn status(&self) -> Option<Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn publish(&self, s: Status) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
    }

    pub fn publish_tops(&self, t: super::rollup::Tops) {
        *self.tops.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::sync::Arc::new(t));
    }

    /// The live rollups; None before the first second or without them.
    pub fn tops(&self) -> Option<std::sync::Arc<super::rollup::Tops>> {
        self.tops.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A budget put in force, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    pub mode: Mode,
    pub budget: Budget,
    pub cause: String,
}

/// The mode state machine.
#[derive(Debug, Clone)]
pub struct Modes {
    cfg: ModeConfig,
    auto: bool,
    mode: Mode,
    /// Auto, in diagnostic: when the hold ends.
    until: Option<Instant>,
}

impl Modes {
    pub fn new(cfg: ModeConfig) -> Modes {
        Modes { auto: cfg.auto, mode: if cfg.auto { Mode::Sentinel } else { cfg.initial }, until: None, cfg }
    }

    /// The switch that starts the capture.
    pub fn start(&self) -> Switch {
        Switch { mode: self.mode, budget: self.budget(), cause: "start".into() }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn is_auto(&self) -> bool {
        self.auto
    }

    pub fn anomaly(&self) -> Option<&super::anomaly::AnomalyConfig> {
        self.cfg.anomaly.as_ref()
    }

    pub fn budget_of(&self, m: Mode) -> Budget {
        match m {
            Mode::Sentinel => self.cfg.sentinel,
            Mode::Diagnostic => self.cfg.diagnostic,
        }
    }

    pub fn budget(&self) -> Budget {
        self.budget_of(self.mode)
    }

    fn go(&mut self, mode: Mode, cause: &str) -> Option<Switch> {
        if mode == self.mode {
            return None;
        }
        self.mode = mode;
        Some(Switch { mode, budget: self.budget(), cause: cause.to_string() })
    }

    /// A trigger: in auto mode, diagnostic until `hold` after the last one.
    /// Pinned modes ignore triggers (the user chose).
    pub fn trigger(&mut self, now: Instant, cause: &str) -> Option<Switch> {
        if !self.auto {
            return None;
        }
        self.until = Some(now + self.cfg.hold);
        self.go(Mode::Diagnostic, cause)
    }

    /// The hold ended: back to sentinel.
    pub fn tick(&mut self, now: Instant) -> Option<Switch> {
        match self.until {
            Some(t) if self.auto && now >= t => {
                self.until = None;
                self.go(Mode::Sentinel, "hold expired")
            }
            _ => None,
        }
    }

    pub fn apply(&mut self, r: &Request, now: Instant) -> Option<Switch> {
        match r {
            Request::SetMode { mode: Some(m), cause } => {
                self.auto = false;
                self.until = None;
                self.go(*m, cause)
            }
            Request::SetMode { mode: None, cause } => {
                self.auto = true;
                self.until = None;
                self.go(Mode::Sentinel, cause)
            }
            Request::Trigger { cause } => self.trigger(now, cause),
            Request::RegisterJit { .. } | Request::RegisterData { .. } | Request::SetTargets { .. } | Request::PmuConfig(_) => None,
            Request::SetBudget { mode, budget } => {
                match mode {
                    Mode::Sentinel => self.cfg.sentinel = *budget,
                    Mode::Diagnostic => self.cfg.diagnostic = *budget,
                }
                (*mode == self.mode).then(|| Switch { mode: *mode, budget: *budget, cause: "control: token-bucket".into() })
            }
        }
    }
}

/// One CPU's token bucket, the same arithmetic as the sampling BPF
/// program's `within_budget` (bpf/flow.bpf.c): the mock pipeline applies it
/// in user space where the kernel would.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    tokens: u64,
    last_ns: u64,
    last_sample_ns: u64,
}

/// Why a sample was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    Budget,
    MinGap,
}

impl Bucket {
    pub fn admit(&mut self, b: &Budget, now: u64) -> Result<(), Drop> {
        const NS: u64 = 1_000_000_000;
        if b.rate == 0 && b.hard_drop_ns == 0 {
            return Ok(());
        }
        if b.hard_drop_ns != 0 && self.last_sample_ns != 0 && now.wrapping_sub(self.last_sample_ns) < b.hard_drop_ns {
            return Err(Drop::MinGap);
        }
        if b.rate != 0 {
            let dt = now.wrapping_sub(self.last_ns).min(NS);
            let cap = b.burst.max(1) * NS;
            let tokens = (self.tokens + dt * b.rate).min(cap);
            self.last_ns = now;
            if tokens < NS {
                self.tokens = tokens;
                return Err(Drop::Budget);
            }
            self.tokens = tokens - NS;
        }
        self.last_sample_ns = now;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(auto: bool) -> ModeConfig {
        ModeConfig {
            auto,
            initial: Mode::Sentinel,
            sentinel: ModeConfig::budget(100, None, 0),
            diagnostic: ModeConfig::budget(1000, Some(50), 0),
            hold: Duration::from_secs(10),
            anomaly: None,
        }
    }

    #[test]
    fn auto_goes_diagnostic_on_a_trigger_and_back_after_the_hold_from_the_last_trigger() {
        let t0 = Instant::now();
        let mut m = Modes::new(cfg(true));
        assert_eq!(m.start().budget, Budget { rate: 100, burst: 10, hard_drop_ns: 0 });
        let s = m.trigger(t0, "SIGUSR1").unwrap();
        assert_eq!((s.mode, s.budget.rate, s.budget.burst), (Mode::Diagnostic, 1000, 50));
        // A second trigger extends the hold without a new switch.
        assert_eq!(m.trigger(t0 + Duration::from_secs(5), "anomaly"), None);
        assert_eq!(m.tick(t0 + Duration::from_secs(12)), None);
        let back = m.tick(t0 + Duration::from_secs(15)).unwrap();
        assert_eq!((back.mode, back.cause.as_str()), (Mode::Sentinel, "hold expired"));
    }

    #[test]
    fn pinned_modes_ignore_triggers_and_auto_hands_control_back() {
        let t0 = Instant::now();
        let mut m = Modes::new(cfg(false));
        assert_eq!(m.trigger(t0, "SIGUSR1"), None);
        let pin = m.apply(&Request::SetMode { mode: Some(Mode::Diagnostic), cause: "control".into() }, t0).unwrap();
        assert_eq!(pin.mode, Mode::Diagnostic);
        assert_eq!(m.tick(t0 + Duration::from_secs(100)), None);
        let auto = m.apply(&Request::SetMode { mode: None, cause: "control".into() }, t0).unwrap();
        assert_eq!(auto.mode, Mode::Sentinel);
        assert!(m.trigger(t0, "anomaly").is_some());
    }

    #[test]
    fn the_bucket_keeps_the_rate_and_the_gap() {
        let b = Budget { rate: 1000, burst: 10, hard_drop_ns: 0 };
        let mut k = Bucket::default();
        // 10 kHz offered for a second (after a full bucket): 1000 + the burst kept.
        let kept = (0..10_000u64).filter(|i| k.admit(&b, 1_000_000_000 + i * 100_000).is_ok()).count();
        assert!((1000..=1011).contains(&kept), "{kept}");
        let g = Budget { rate: 0, burst: 0, hard_drop_ns: 1_000_000 };
        let mut k = Bucket::default();
        let kept = (0..1000u64).filter(|i| k.admit(&g, 1 + i * 100_000).is_ok()).count();
        assert_eq!(kept, 100, "one every 1 ms of 10 per ms");
    }

    #[test]
    fn a_new_budget_for_the_mode_in_force_applies_at_once() {
        let t0 = Instant::now();
        let mut m = Modes::new(cfg(false));
        let b = Budget { rate: 7, burst: 1, hard_drop_ns: 5 };
        assert_eq!(m.apply(&Request::SetBudget { mode: Mode::Diagnostic, budget: b }, t0), None);
        let s = m.apply(&Request::SetBudget { mode: Mode::Sentinel, budget: b }, t0).unwrap();
        assert_eq!(s.budget, b);
        assert_eq!(m.budget_of(Mode::Diagnostic), b);
    }
}
