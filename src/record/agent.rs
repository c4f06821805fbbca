//! The always-on agent's part of the capture loop (`record::session` runs
//! it once per loop turn): mode switches from signals, control requests,
//! anomalies and the diagnostic hold, each put in force in the kernel and
//! written to the trace as an AGENT block; load shedding; event tuning
//! (`/api/v1/pmu-config`); and the status and live rollups the endpoints
//! read. `KernelSide` is what it drives: the live BPF program or, in a paced
//! mock capture, `MockKernel` (the same arithmetic in user space).

use super::sysinfo;
use crate::perf::sys;
use crate::trace::format::STREAM_GLOBAL;
use crate::trace::{BlockInfo, BlockKind, TraceWriter};
use std::io;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(super) enum AgentError {
    Write(io::Error),
    Bpf(crate::flow::FlowError),
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentError::Write(e) => write!(f, "{e}"),
            AgentError::Bpf(e) => write!(f, "{e}"),
        }
    }
}

/// What the agent drives on the kernel's side: the flow BPF program in a
/// live capture, `MockKernel` (the same arithmetic in user space) in a
/// paced mock one.
pub(super) trait KernelSide {
    fn set_budget(&self, b: &crate::trace::meta::Budget) -> Result<(), crate::flow::FlowError>;
    fn set_targets(&self, pids: &[u32], filters: &[crate::flow::FlowFilter]) -> Result<(), crate::flow::FlowError>;
    /// The in-kernel counters by name, per CPU.
    fn counters_per_cpu(&self) -> std::collections::BTreeMap<String, Vec<u64>>;
    fn iface_counters(&self, iface: crate::flow::Iface) -> Option<crate::flow::IfaceCounters>;
    fn flow_info(&self, id: u64) -> Option<crate::trace::meta::FlowInfo>;
}

impl KernelSide for crate::flow::FlowSession {
    fn set_budget(&self, b: &crate::trace::meta::Budget) -> Result<(), crate::flow::FlowError> {
        crate::flow::FlowSession::set_budget(self, b)
    }
    fn set_targets(&self, pids: &[u32], filters: &[crate::flow::FlowFilter]) -> Result<(), crate::flow::FlowError> {
        crate::flow::FlowSession::set_targets(self, pids, filters)
    }
    fn counters_per_cpu(&self) -> std::collections::BTreeMap<String, Vec<u64>> {
        crate::flow::FlowSession::counters_per_cpu(self)
    }
    fn iface_counters(&self, iface: crate::flow::Iface) -> Option<crate::flow::IfaceCounters> {
        crate::flow::FlowSession::iface_counters(self, iface)
    }
    fn flow_info(&self, id: u64) -> Option<crate::trace::meta::FlowInfo> {
        crate::flow::FlowSession::flow_info_of(self, id)
    }
}

/// One AGENT block (a mode switch, new targets, shedding), written as it happens.
pub(super) fn write_agent_event(w: &mut TraceWriter, ev: &crate::trace::meta::AgentEvent) -> Result<(), AgentError> {
    let json = serde_json::to_vec(ev).map_err(|e| AgentError::Write(io::Error::other(e)))?;
    w.write_block(
        BlockInfo { kind: BlockKind::AGENT, stream: STREAM_GLOBAL, record_count: 1, first_time: ev.time, last_time: ev.time },
        &json,
    )
    .map_err(AgentError::Write)
}

/// Whole-capture counts (every --switch-output file so far).
#[derive(Debug, Clone, Copy)]
pub(super) struct Counts {
    pub samples: u64,
    pub lost: u64,
    pub throttled: u64,
}

/// One opened event as the agent tunes it (not the flow tag event).
#[derive(Debug)]
pub(super) struct Opened {
    pub name: String,
    /// Every fd of the event (one per CPU, or per CPU and task).
    pub fds: Vec<std::os::fd::RawFd>,
    /// The leader of a group after the first: load shedding turns it off.
    pub sheddable: bool,
    /// Opened with -F: the frequency asked for (None: opened with a period).
    pub freq: Option<u64>,
    /// Opened with -c: the period.
    pub period: u64,
    /// cpu-clock or task-clock: the kernel turns -F into a fixed period in
    /// ns at open, so a new rate is set as a period.
    pub clock: bool,
}

/// An opened event's state while capturing.
#[derive(Debug)]
struct Tuned {
    ev: Opened,
    /// Off by POST /api/v1/pmu-config (load shedding does not turn it back on).
    off: bool,
    /// A rate set by POST /api/v1/pmu-config: Hz (freq) or period; it wins
    /// over the rate that follows the budget.
    rate: Option<u64>,
    /// The rate in force (Hz or period), for the status.
    in_force: u64,
    /// enabled/running at the last reading, per fd.
    times: Vec<sys::Times>,
    scale: Option<f64>,
}

impl Tuned {
    /// Set a rate on every fd: Hz for a freq event, else a period.
    ///
    /// For a software clock event whose rate changes, the AGENT event that
    /// gives its new period: the kernel keeps writing the old one into the
    /// samples (see `AgentEvent::period`).
    fn set_rate(&mut self, v: u64, cause: &str) -> Option<crate::trace::meta::AgentEvent> {
        let value = if self.ev.freq.is_some() && self.ev.clock { 1_000_000_000 / v.max(1) } else { v };
        // Before the ioctls: the first sample at the new rate comes one new
        // period after its fd's ioctl.
        let time = sysinfo::monotonic_ns();
        let changed = v != self.in_force;
        for &fd in &self.ev.fds {
            // SAFETY: the fds stay open for the whole capture (they are
            // closed after the loop, after the last step).
            let _ = sys::set_period(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }, value);
        }
        self.in_force = v;
        (self.ev.clock && changed).then(|| crate::trace::meta::AgentEvent {
            time,
            kind: "period".into(),
            cause: cause.into(),
            detail: format!("{}: period {value} ns", self.ev.name),
            event: self.ev.name.clone(),
            period: value,
            ..Default::default()
        })
    }

    fn switch(&self, on: bool) {
        for &fd in &self.ev.fds {
            // SAFETY: as above; ioctl on a borrowed fd.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let _ = if on { sys::enable_fd(fd) } else { sys::disable_fd(fd) };
        }
    }

    /// Running over enabled time since the last reading. A task's fd on a
    /// CPU the task did not run on is enabled without ever running (that
    /// is not multiplexing), so fds that did not run are left out, unless
    /// none ran at all: then the event never got the PMU (scale 0).
    fn read_scale(&mut self) {
        let (mut d, mut enabled_only) = ((0u64, 0u64), false);
        for (i, &fd) in self.ev.fds.iter().enumerate() {
            // SAFETY: as above.
            let Ok(t) = sys::read_times(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }) else { continue };
            if let Some(prev) = self.times.get(i) {
                let (en, run) = (t.enabled.saturating_sub(prev.enabled), t.running.saturating_sub(prev.running));
                if run > 0 {
                    d.0 += en;
                    d.1 += run;
                } else if en > 0 {
                    enabled_only = true;
                }
            }
            if i < self.times.len() {
                self.times[i] = t;
            } else {
                self.times.push(t);
            }
        }
        if d.0 > 0 {
            self.scale = Some((d.1 as f64 / d.0 as f64).min(1.0));
        } else if enabled_only && !self.off {
            self.scale = Some(0.0);
        }
    }

    fn state(&self, shed: bool) -> super::control::EventState {
        let shed = shed && self.ev.sheddable;
        super::control::EventState {
            name: self.ev.name.clone(),
            enabled: !(self.off || shed),
            shed,
            sampling: if self.ev.freq.is_some() { "freq" } else { "period" },
            rate: self.in_force,
            scale: self.scale,
        }
    }
}

/// The always-on agent's part of the capture loop: mode switches (SIGUSR1,
/// control requests, the diagnostic hold), each written to the trace as an
/// AGENT block and put in force in the kernel, and the status the endpoints
/// read, published once a second.
#[derive(Debug)]
pub(super) struct Agent {
    /// None without --mode/--budget (metrics only).
    pub modes: Option<super::control::Modes>,
    /// The opened events, in -e order.
    events: Vec<Tuned>,
    control: Option<std::sync::Arc<super::control::Control>>,
    started: Instant,
    last_status: Instant,
    last_samples: u64,
    last_throttled: u64,
    pub switches: u64,
    /// --anomaly-interfaces: each interface's baseline and last reading.
    watch: Vec<Watched>,
    last_look: Instant,
    last_anomaly: Option<String>,
    /// An anomaly since the flight recorder last looked.
    pub anomaly_snapshot: Option<String>,
    /// Flow id -> its 5-tuple text, for the metrics' labels.
    flow_labels: std::collections::HashMap<u64, String>,
    /// The later event groups are off: the budget dropped most samples.
    shed: bool,
    /// Seconds in a row over SHED_AT / under RESTORE_AT, and the kernel's
    /// kept and dropped counts at the last look.
    over: u32,
    under: u32,
    last_kept_dropped: (u64, u64),
    last_shed_look: Instant,
    /// The live rollups' worker (with --metrics or --control), and when it
    /// was last handed a second.
    rollups: Option<super::rollup::Worker>,
    last_rollup: Instant,
    /// Clock events' new periods (event name, ns) not yet given to the live
    /// rollups (their samples carry the first period).
    new_periods: Vec<(String, u64)>,
}

/// Load shedding: when the budget drops over this share of the samples for
/// SHED_AFTER seconds in a row, the later event groups are turned off; under
/// RESTORE_AT for RESTORE_AFTER seconds, back on.
const SHED_AT: f64 = 0.5;
const SHED_AFTER: u32 = 3;
const RESTORE_AT: f64 = 0.1;
const RESTORE_AFTER: u32 = 5;

/// Flows in the metrics' per-flow rollups.
const TOP_FLOWS: usize = 20;

#[derive(Debug)]
struct Watched {
    name: String,
    iface: crate::flow::Iface,
    last: Option<crate::flow::IfaceCounters>,
    baseline: super::anomaly::Baseline,
}

impl Agent {
    /// `names`: every event of the trace in metadata order (the rollups'
    /// event labels); `events`: the opened ones the agent tunes.
    pub fn new(
        modes: Option<super::control::Modes>,
        control: Option<std::sync::Arc<super::control::Control>>,
        events: Vec<Opened>,
        names: Vec<String>,
    ) -> Result<Agent, io::Error> {
        let now = Instant::now();
        let watch = modes
            .as_ref()
            .and_then(|m| m.anomaly())
            .map(|a| {
                a.interfaces
                    .iter()
                    .map(|(name, iface)| Watched { name: name.clone(), iface: *iface, last: None, baseline: Default::default() })
                    .collect()
            })
            .unwrap_or_default();
        let rollups = match &control {
            Some(c) => Some(super::rollup::Worker::start(names, c.clone())?),
            None => None,
        };
        let events = events
            .into_iter()
            .map(|ev| Tuned { in_force: ev.freq.unwrap_or(ev.period), ev, off: false, rate: None, times: Vec::new(), scale: None })
            .collect();
        // The start is the first switch (put in force right after).
        Ok(Agent {
            modes,
            control,
            events,
            rollups,
            started: now,
            last_status: now - Duration::from_secs(1),
            last_samples: 0,
            last_throttled: 0,
            switches: 1,
            watch,
            last_look: now,
            last_anomaly: None,
            anomaly_snapshot: None,
            flow_labels: Default::default(),
            shed: false,
            over: 0,
            under: 0,
            last_kept_dropped: (0, 0),
            last_shed_look: now,
            last_rollup: now,
            new_periods: Vec::new(),
        })
    }

    /// Once a second: turn the later event groups off while the budget drops
    /// most samples, and back on when it no longer does (an AGENT block each).
    fn shed_or_restore(&mut self, flows: &dyn KernelSide, w: &mut TraceWriter) -> Result<(), AgentError> {
        if !self.events.iter().any(|e| e.ev.sheddable) || self.modes.is_none() || self.last_shed_look.elapsed() < Duration::from_secs(1) {
            return Ok(());
        }
        self.last_shed_look = Instant::now();
        let per = flows.counters_per_cpu();
        let total = |k: &str| per.get(k).map_or(0, |v| v.iter().sum::<u64>());
        let (kept, dropped) = (total("tags"), total("dropped_by_budget"));
        let (dk, dd) = (kept.saturating_sub(self.last_kept_dropped.0), dropped.saturating_sub(self.last_kept_dropped.1));
        self.last_kept_dropped = (kept, dropped);
        let share = if dk + dd == 0 { 0.0 } else { dd as f64 / (dk + dd) as f64 };
        (self.over, self.under) = if share > SHED_AT {
            (self.over + 1, 0)
        } else if share < RESTORE_AT {
            (0, self.under + 1)
        } else {
            (0, 0)
        };
        let names: Vec<&str> = self.events.iter().filter(|e| e.ev.sheddable).map(|e| e.ev.name.as_str()).collect();
        let names = names.join(",");
        let (kind, detail) = if !self.shed && self.over >= SHED_AFTER {
            for e in self.events.iter().filter(|e| e.ev.sheddable) {
                e.switch(false);
            }
            ("shed", format!("{names} off: the budget dropped {:.0}% of the samples for {SHED_AFTER} s", share * 100.0))
        } else if self.shed && self.under >= RESTORE_AFTER {
            // Not the events a control request turned off.
            for e in self.events.iter().filter(|e| e.ev.sheddable && !e.off) {
                e.switch(true);
            }
            ("restore", format!("{names} on again: the budget dropped under {:.0}% for {RESTORE_AFTER} s", RESTORE_AT * 100.0))
        } else {
            return Ok(());
        };
        self.shed = kind == "shed";
        (self.over, self.under) = (0, 0);
        write_agent_event(w, &self.event_now(kind, "load", detail))
    }

    /// A clock event's new period: into the trace, and to the live rollups
    /// at the next step.
    fn period_changed(&mut self, p: crate::trace::meta::AgentEvent, w: &mut TraceWriter) -> Result<(), AgentError> {
        write_agent_event(w, &p)?;
        self.new_periods.push((p.event, p.period));
        Ok(())
    }

    /// An AGENT event now, in the mode and budget in force.
    fn event_now(&self, kind: &str, cause: &str, detail: String) -> crate::trace::meta::AgentEvent {
        let m = self.modes.as_ref();
        crate::trace::meta::AgentEvent {
            time: sysinfo::monotonic_ns(),
            kind: kind.into(),
            mode: m.map(super::control::Modes::mode).unwrap_or_default(),
            cause: cause.into(),
            budget: m.map(super::control::Modes::budget).unwrap_or_default(),
            detail,
            ..Default::default()
        }
    }

    /// Apply a pmu-config change (checked against the events by the
    /// endpoint); what was done, for the AGENT block.
    /// The period change, if any, comes second.
    fn tune(&mut self, c: &super::control::PmuChange) -> (String, Option<crate::trace::meta::AgentEvent>) {
        let shed = self.shed;
        let Some(e) = self.events.iter_mut().find(|e| e.ev.name == c.event) else {
            return (format!("{}: no such event", c.event), None);
        };
        let mut done = Vec::new();
        let mut period = None;
        if let Some(rate) = c.freq.or(c.period) {
            e.rate = Some(rate);
            period = e.set_rate(rate, "control");
            done.push(if c.freq.is_some() { format!("{rate} Hz") } else { format!("period {rate}") });
        }
        match c.enabled {
            Some(false) => {
                e.off = true;
                e.switch(false);
                done.push("off".into());
            }
            Some(true) => {
                e.off = false;
                // A shed group comes back with the others.
                if !(shed && e.ev.sheddable) {
                    e.switch(true);
                }
                done.push("on".into());
            }
            None => {}
        }
        (format!("{}: {}", c.event, done.join(", ")), period)
    }

    pub fn put_in_force(&mut self, s: &super::control::Switch, flows: &dyn KernelSide, w: &mut TraceWriter) -> Result<(), AgentError> {
        flows.set_budget(&s.budget).map_err(AgentError::Bpf)?;
        // Interrupts the budget would drop are not taken: the sampling
        // frequency follows the budget (a quarter above it, so the bucket
        // still sets the exact rate), never above what was asked for, and
        // not where a control request set the rate.
        let mut periods = Vec::new();
        for e in &mut self.events {
            if let (Some(base), None) = (e.ev.freq, e.rate) {
                let f = if s.budget.rate == 0 { base } else { base.min(s.budget.rate + s.budget.rate / 4).max(1) };
                periods.extend(e.set_rate(f, &s.cause));
            }
        }
        for p in periods {
            self.period_changed(p, w)?;
        }
        let ev = crate::trace::meta::AgentEvent {
            time: sysinfo::monotonic_ns(),
            kind: "mode".into(),
            mode: s.mode,
            cause: s.cause.clone(),
            budget: s.budget,
            ..Default::default()
        };
        write_agent_event(w, &ev)
    }

    /// One turn of the capture loop. `usr1`: SIGUSR1 came since the last
    /// turn; `feed`: the live rollups' counts (handed over once a second).
    pub fn step(
        &mut self,
        flows: Option<&dyn KernelSide>,
        n: Counts,
        usr1: bool,
        flow_samples: &mut std::collections::HashMap<u64, u64>,
        feed: Option<&mut super::rollup::Feed>,
        w: &mut TraceWriter,
    ) -> Result<(), AgentError> {
        let now = Instant::now();
        let mut feed = feed;
        // Taken even without rollups, so the list stays empty.
        let periods = std::mem::take(&mut self.new_periods);
        if let Some(f) = feed.as_deref_mut() {
            for (event, period) in periods {
                f.set_clock_period(&event, period);
            }
        }
        let requests = self.control.as_ref().map(|c| c.take_requests()).unwrap_or_default();
        // Registrations go into the trace at once (a killed capture keeps them).
        for r in &requests {
            let global = |kind, n| BlockInfo { kind, stream: STREAM_GLOBAL, record_count: n, first_time: 0, last_time: 0 };
            match r {
                super::control::Request::RegisterJit { pid, map } => {
                    let json = serde_json::to_vec(&std::collections::BTreeMap::from([(pid.to_string(), map)]))
                        .map_err(|e| AgentError::Write(io::Error::other(e)))?;
                    w.write_block(global(BlockKind::JIT_MAPS, 1), &json).map_err(AgentError::Write)?;
                }
                super::control::Request::RegisterData { text } => {
                    w.write_block(global(BlockKind::DATA_OBJECTS, text.lines().count() as u32), text.as_bytes())
                        .map_err(AgentError::Write)?;
                }
                super::control::Request::SetTargets { pids, flows: filters } => {
                    let Some(f) = flows else { continue };
                    f.set_targets(pids, filters).map_err(AgentError::Bpf)?;
                    let list = |v: Vec<String>| if v.is_empty() { "all".to_string() } else { v.join(",") };
                    let ev = self.event_now(
                        "targets",
                        "control",
                        format!(
                            "pids {}; flows {}",
                            list(pids.iter().map(|p| p.to_string()).collect()),
                            list(filters.iter().map(|f| f.to_string()).collect())
                        ),
                    );
                    write_agent_event(w, &ev)?;
                }
                super::control::Request::PmuConfig(c) => {
                    let (detail, period) = self.tune(c);
                    write_agent_event(w, &self.event_now("pmu-config", "control", detail))?;
                    if let Some(p) = period {
                        self.period_changed(p, w)?;
                    }
                }
                _ => {}
            }
        }
        let mut todo = Vec::new();
        if let Some(m) = self.modes.as_mut() {
            if usr1 {
                todo.extend(m.trigger(now, "SIGUSR1"));
            }
            for r in &requests {
                todo.extend(m.apply(r, now));
            }
            if let (Some(a), Some(f)) = (m.anomaly(), flows) {
                let since = now.duration_since(self.last_look);
                if since >= a.interval {
                    self.last_look = now;
                    for w in &mut self.watch {
                        let Some(c) = f.iface_counters(w.iface) else { continue };
                        let anomaly = w
                            .last
                            .map(|prev| super::anomaly::Interval::between(&prev, &c, since.as_secs_f64()))
                            .and_then(|iv| w.baseline.judge(&w.name, &iv));
                        w.last = Some(c);
                        if let Some(why) = anomaly {
                            todo.extend(m.trigger(now, &why));
                            self.anomaly_snapshot = Some(why.clone());
                            self.last_anomaly = Some(why);
                        }
                    }
                }
            }
            todo.extend(m.tick(now));
        }
        if let Some(f) = flows {
            for s in &todo {
                self.put_in_force(s, f, w)?;
                self.switches += 1;
            }
        }
        if let Some(f) = flows {
            self.shed_or_restore(f, w)?;
        }
        let Some(c) = &self.control else { return Ok(()) };
        let dt = self.last_status.elapsed();
        if dt < Duration::from_secs(1) && todo.is_empty() && requests.is_empty() {
            return Ok(());
        }
        let per_cpu = flows.map(|f| f.counters_per_cpu()).unwrap_or_default();
        let total = |k: &str| per_cpu.get(k).map_or(0, |v| v.iter().sum::<u64>());
        let mut dropped = std::collections::BTreeMap::new();
        for (k, reason) in [
            ("dropped_by_budget", "budget"),
            ("dropped_by_min_gap", "min_gap"),
            ("dropped_by_pid_filter", "pid_filter"),
            ("dropped_by_flow_filter", "flow_filter"),
        ] {
            dropped.insert(reason.to_string(), total(k));
        }
        let mode = |f: fn(&super::control::Modes) -> crate::trace::meta::Budget| self.modes.as_ref().map(f).unwrap_or_default();
        let prev = c.status().unwrap_or_default();
        let publish_rate = dt >= Duration::from_secs(1);
        let top_flows = if publish_rate {
            // The busiest flows over the last second, by samples; bounded
            // (TOP_FLOWS) so the metrics' cardinality is too.
            let mut v: Vec<(u64, u64)> = flow_samples.drain().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            v.truncate(TOP_FLOWS);
            v.into_iter()
                .map(|(id, k)| {
                    let label = self
                        .flow_labels
                        .entry(id)
                        .or_insert_with(|| flows.and_then(|f| f.flow_info(id)).map_or_else(|| format!("flow#{id:016x}"), |f| f.text()));
                    (label.clone(), k as f64 / dt.as_secs_f64())
                })
                .collect()
        } else {
            prev.flows_top.clone()
        };
        if self.flow_labels.len() > 4 * TOP_FLOWS * 64 {
            self.flow_labels.clear();
        }
        if publish_rate {
            for e in &mut self.events {
                e.read_scale();
            }
            if let (Some(r), Some(feed)) = (self.rollups.as_mut(), feed) {
                r.send(feed.take(), now.duration_since(self.last_rollup).as_secs_f64(), |id| flows.and_then(|f| f.flow_info(id)));
                self.last_rollup = now;
            }
        }
        c.publish(super::control::Status {
            mode: self.modes.as_ref().map(super::control::Modes::mode).unwrap_or_default(),
            auto: self.modes.as_ref().is_some_and(super::control::Modes::is_auto),
            budget: mode(super::control::Modes::budget),
            sentinel_budget: mode(|m| m.budget_of(crate::trace::meta::Mode::Sentinel)),
            diagnostic_budget: mode(|m| m.budget_of(crate::trace::meta::Mode::Diagnostic)),
            uptime_secs: self.started.elapsed().as_secs_f64(),
            samples: n.samples,
            // Rates over whole seconds only (a switch publishes in between).
            samples_per_sec: if publish_rate {
                n.samples.saturating_sub(self.last_samples) as f64 / dt.as_secs_f64()
            } else {
                prev.samples_per_sec
            },
            lost: n.lost,
            dropped,
            throttled: n.throttled,
            throttled_last_sec: if publish_rate { n.throttled.saturating_sub(self.last_throttled) } else { prev.throttled_last_sec },
            switches: self.switches.saturating_sub(1),
            last_anomaly: self.last_anomaly.clone(),
            flows_top: top_flows,
            events: self.events.iter().map(|e| e.state(self.shed)).collect(),
        });
        if publish_rate {
            self.last_samples = n.samples;
            self.last_throttled = n.throttled;
            self.last_status = now;
        }
        Ok(())
    }
}

/// The kernel side of a paced mock capture: the sampling program's budget,
/// minimum gap and target filters, applied in user space with the same
/// arithmetic, and its counters.
#[derive(Debug)]
pub(super) struct MockKernel {
    budget: std::cell::Cell<crate::trace::meta::Budget>,
    buckets: std::cell::RefCell<Vec<super::control::Bucket>>,
    targets: std::cell::RefCell<(Vec<u32>, Vec<crate::flow::FlowFilter>)>,
    /// counter name -> per CPU (the names of flow::COUNTER_NAMES).
    counters: std::cell::RefCell<std::collections::BTreeMap<String, Vec<u64>>>,
}

impl MockKernel {
    pub fn new(cpus: usize) -> MockKernel {
        MockKernel {
            budget: Default::default(),
            buckets: std::cell::RefCell::new(vec![Default::default(); cpus]),
            targets: Default::default(),
            counters: std::cell::RefCell::new(crate::flow::COUNTER_NAMES.iter().map(|n| (n.to_string(), vec![0; cpus])).collect()),
        }
    }

    fn bump(&self, name: &str, cpu: usize) {
        if let Some(v) = self.counters.borrow_mut().get_mut(name).and_then(|v| v.get_mut(cpu)) {
            *v += 1;
        }
    }

    /// The sampling program's decision for one sample: filters, then the budget.
    pub fn admit(&self, s: &super::mock::MockSample, now: u64) -> bool {
        let cpu = s.cpu as usize;
        let (pids, filters) = &*self.targets.borrow();
        if !pids.is_empty() && !pids.contains(&super::mock::PID) {
            self.bump("dropped_by_pid_filter", cpu);
            return false;
        }
        if !filters.is_empty() && !super::mock::flow_of(s).is_some_and(|f| filters.iter().any(|ff| ff.matches(&f))) {
            self.bump("dropped_by_flow_filter", cpu);
            return false;
        }
        let verdict = self.buckets.borrow_mut().get_mut(cpu).map(|k| k.admit(&self.budget.get(), now));
        match verdict {
            Some(Err(super::control::Drop::Budget)) => {
                self.bump("dropped_by_budget", cpu);
                false
            }
            Some(Err(super::control::Drop::MinGap)) => {
                self.bump("dropped_by_min_gap", cpu);
                false
            }
            _ => {
                self.bump("tags", cpu);
                true
            }
        }
    }
}

impl KernelSide for MockKernel {
    fn set_budget(&self, b: &crate::trace::meta::Budget) -> Result<(), crate::flow::FlowError> {
        self.budget.set(*b);
        Ok(())
    }
    fn set_targets(&self, pids: &[u32], filters: &[crate::flow::FlowFilter]) -> Result<(), crate::flow::FlowError> {
        *self.targets.borrow_mut() = (pids.to_vec(), filters.to_vec());
        Ok(())
    }
    fn counters_per_cpu(&self) -> std::collections::BTreeMap<String, Vec<u64>> {
        self.counters.borrow().clone()
    }
    fn iface_counters(&self, _iface: crate::flow::Iface) -> Option<crate::flow::IfaceCounters> {
        // The mock has no network interfaces.
        None
    }
    fn flow_info(&self, id: u64) -> Option<crate::trace::meta::FlowInfo> {
        super::mock::flow_table(Default::default(), Default::default()).flows.into_iter().find(|f| f.id == id)
    }
}
