//! The always-on agent's record of a capture: its AGENT blocks (mode
//! switches with their causes and budgets), read back as a timeline, and
//! the time spans of one mode (`report --mode diagnostic`).

use crate::trace::meta::{AgentEvent, Mode};
use crate::trace::{BlockKind, Trace, TraceError};

/// Every AGENT event of a trace, in time order.
#[derive(Debug, Clone, Default)]
pub struct AgentTimeline {
    pub events: Vec<AgentEvent>,
}

impl AgentTimeline {
    pub fn load(trace: &Trace) -> Result<AgentTimeline, TraceError> {
        let mut events = Vec::new();
        for b in trace.blocks_of(BlockKind::AGENT).copied().collect::<Vec<_>>() {
            if let Some(d) = trace.decode_or_skip(&b)? {
                let e: AgentEvent = serde_json::from_slice(&d)
                    .map_err(|e| TraceError::BadMetadata { path: trace.path().to_path_buf(), reason: format!("agent block: {e}") })?;
                events.push(e);
            }
        }
        // Total order: time, then the order they were written in (stable sort).
        events.sort_by_key(|e| e.time);
        Ok(AgentTimeline { events })
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The mode switches only.
    pub fn switches(&self) -> impl Iterator<Item = &AgentEvent> {
        self.events.iter().filter(|e| e.kind == "mode")
    }

    /// The closed time spans [from, to] during which `mode` was in force;
    /// the last one runs to u64::MAX (the end of the capture).
    pub fn spans(&self, mode: Mode) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut open: Option<u64> = None;
        for e in self.switches() {
            match (open, e.mode == mode) {
                (None, true) => open = Some(e.time),
                (Some(from), false) => {
                    out.push((from, e.time.saturating_sub(1)));
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(from) = open {
            out.push((from, u64::MAX));
        }
        out
    }
}

/// The periods software clock events fired at after a rate change: the
/// kernel goes on writing the first period into their samples (see
/// `AgentEvent::period`), so a sample's period is taken from here when the
/// trace holds a change before it. Per event of `Events::list`, (from
/// time, period) in time order; empty for every event of most traces.
#[derive(Debug, Clone, Default)]
pub struct ClockPeriods {
    by_event: Vec<Vec<(u64, u64)>>,
}

impl ClockPeriods {
    /// `names`: the events of `Events::list`, in order.
    pub fn new<'a>(t: &AgentTimeline, names: impl Iterator<Item = &'a str>) -> ClockPeriods {
        let changes: Vec<&AgentEvent> = t.events.iter().filter(|e| e.kind == "period" && e.period > 0).collect();
        if changes.is_empty() {
            return ClockPeriods::default();
        }
        // Events are time-sorted (stably), so each list is too.
        let by_event = names.map(|n| changes.iter().filter(|e| e.event == n).map(|e| (e.time, e.period)).collect()).collect();
        ClockPeriods { by_event }
    }

    /// The period in force for event `ev` at `time`, when a change came
    /// before it; None keeps the sample's own.
    #[inline]
    pub fn at(&self, ev: u16, time: Option<u64>) -> Option<u64> {
        let v = self.by_event.get(ev as usize).filter(|v| !v.is_empty())?;
        let t = time?;
        let i = v.partition_point(|&(from, _)| from <= t);
        i.checked_sub(1).map(|i| v[i].1)
    }

    pub fn is_empty(&self) -> bool {
        self.by_event.iter().all(Vec::is_empty)
    }
}

/// The host context of a trace (HOST blocks), in time order.
pub fn load_host(trace: &Trace) -> Result<Vec<crate::trace::meta::HostSample>, TraceError> {
    let mut out: Vec<crate::trace::meta::HostSample> = Vec::new();
    for b in trace.blocks_of(BlockKind::HOST).copied().collect::<Vec<_>>() {
        if let Some(d) = trace.decode_or_skip(&b)? {
            let v: Vec<crate::trace::meta::HostSample> = serde_json::from_slice(&d)
                .map_err(|e| TraceError::BadMetadata { path: trace.path().to_path_buf(), reason: format!("host block: {e}") })?;
            out.extend(v);
        }
    }
    out.sort_by_key(|h| h.time);
    Ok(out)
}

/// One line about the host during the capture: load, CPU, memory, TCP.
pub fn host_summary(h: &[crate::trace::meta::HostSample]) -> Option<String> {
    if h.is_empty() {
        return None;
    }
    let busy: Vec<f64> = h
        .iter()
        .map(|s| if s.cpu_busy_pct.is_empty() { 0.0 } else { s.cpu_busy_pct.iter().sum::<f64>() / s.cpu_busy_pct.len() as f64 })
        .collect();
    let max_cpu = h.iter().flat_map(|s| s.cpu_busy_pct.iter().copied()).fold(0.0, f64::max);
    let (lmin, lmax) = h.iter().fold((f64::MAX, 0.0f64), |(a, b), s| (a.min(s.load1), b.max(s.load1)));
    let mem_min = h.iter().map(|s| s.mem_available_kb).min().unwrap_or(0);
    let retrans = h.iter().map(|s| s.tcp.retrans_segs_per_sec).max().unwrap_or(0);
    Some(format!(
        "{} readings; load {lmin:.2}..{lmax:.2}; CPU busy {:.0}% on average (one CPU at most {max_cpu:.0}%); memory available at least {} MiB; TCP retransmits at most {retrans}/s",
        h.len(),
        busy.iter().sum::<f64>() / busy.len() as f64,
        mem_min / 1024
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(time: u64, mode: Mode) -> AgentEvent {
        AgentEvent { time, kind: "mode".into(), mode, ..Default::default() }
    }

    #[test]
    fn spans_follow_the_switches() {
        let t = AgentTimeline {
            events: vec![
                ev(10, Mode::Sentinel),
                ev(20, Mode::Diagnostic),
                ev(30, Mode::Diagnostic),
                ev(40, Mode::Sentinel),
                ev(50, Mode::Diagnostic),
            ],
        };
        assert_eq!(t.spans(Mode::Diagnostic), vec![(20, 39), (50, u64::MAX)]);
        assert_eq!(t.spans(Mode::Sentinel), vec![(10, 19), (40, 49)]);
        assert!(AgentTimeline::default().spans(Mode::Sentinel).is_empty());
    }

    #[test]
    fn a_clock_events_period_is_the_last_change_before_the_sample() {
        let period =
            |time, event: &str, period| AgentEvent { time, kind: "period".into(), event: event.into(), period, ..Default::default() };
        let t = AgentTimeline { events: vec![ev(5, Mode::Sentinel), period(10, "cpu-clock", 5_000_000), period(20, "cpu-clock", 250_000)] };
        let p = ClockPeriods::new(&t, ["task-clock", "cpu-clock"].into_iter());
        assert_eq!(p.at(1, Some(9)), None, "before the first change: the sample's own");
        assert_eq!(p.at(1, Some(10)), Some(5_000_000));
        assert_eq!(p.at(1, Some(19)), Some(5_000_000));
        assert_eq!(p.at(1, Some(u64::MAX)), Some(250_000));
        assert_eq!(p.at(1, None), None, "no time: the sample's own");
        assert_eq!(p.at(0, Some(30)), None, "another event");
        assert_eq!(p.at(7, Some(30)), None, "no such event");
        assert!(ClockPeriods::new(&AgentTimeline::default(), ["cpu-clock"].into_iter()).is_empty());
    }
}
