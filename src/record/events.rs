//! Event names as users type them (`cycles`, `cpu-clock`, `r01c2:u`,
//! `cache-misses:pp`) and their attrs.

use crate::perf::attr::{hw, sw, type_id};

/// A parsed `-e` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// The name as written (modifiers included), used in reports.
    pub name: String,
    pub type_: u32,
    pub config: u64,
    pub exclude_user: bool,
    pub exclude_kernel: bool,
    /// Requested precise level from `:p` modifiers; None means "best available".
    pub precise: Option<u8>,
}

impl EventSpec {
    pub fn is_hardware(&self) -> bool {
        matches!(self.type_, type_id::HARDWARE | type_id::HW_CACHE | type_id::RAW) || self.type_ >= 6
    }
    /// Software events whose samples carry a data address (PERF_SAMPLE_ADDR).
    pub fn has_data_addr(&self) -> bool {
        self.type_ == type_id::SOFTWARE && matches!(self.config, sw::PAGE_FAULTS | sw::PAGE_FAULTS_MIN | sw::PAGE_FAULTS_MAJ)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventParseError {
    #[error("unknown event '{0}'; known: cycles, instructions, cache-references, cache-misses, branches, branch-misses, bus-cycles, ref-cycles, cpu-clock, task-clock, page-faults, minor-faults, major-faults, context-switches, cpu-migrations, or rNNN for a raw PMU event")]
    Unknown(String),
    #[error("unknown modifier '{modifier}' in event '{event}' (known: u, k, p, pp, ppp)")]
    Modifier { event: String, modifier: String },
}

const NAMES: &[(&str, u32, u64)] = &[
    ("cycles", type_id::HARDWARE, hw::CPU_CYCLES),
    ("cpu-cycles", type_id::HARDWARE, hw::CPU_CYCLES),
    ("instructions", type_id::HARDWARE, hw::INSTRUCTIONS),
    ("cache-references", type_id::HARDWARE, hw::CACHE_REFERENCES),
    ("cache-misses", type_id::HARDWARE, hw::CACHE_MISSES),
    ("branches", type_id::HARDWARE, hw::BRANCH_INSTRUCTIONS),
    ("branch-instructions", type_id::HARDWARE, hw::BRANCH_INSTRUCTIONS),
    ("branch-misses", type_id::HARDWARE, hw::BRANCH_MISSES),
    ("bus-cycles", type_id::HARDWARE, hw::BUS_CYCLES),
    ("stalled-cycles-frontend", type_id::HARDWARE, hw::STALLED_CYCLES_FRONTEND),
    ("stalled-cycles-backend", type_id::HARDWARE, hw::STALLED_CYCLES_BACKEND),
    ("ref-cycles", type_id::HARDWARE, hw::REF_CPU_CYCLES),
    ("cpu-clock", type_id::SOFTWARE, sw::CPU_CLOCK),
    ("task-clock", type_id::SOFTWARE, sw::TASK_CLOCK),
    ("page-faults", type_id::SOFTWARE, sw::PAGE_FAULTS),
    ("faults", type_id::SOFTWARE, sw::PAGE_FAULTS),
    ("minor-faults", type_id::SOFTWARE, sw::PAGE_FAULTS_MIN),
    ("major-faults", type_id::SOFTWARE, sw::PAGE_FAULTS_MAJ),
    ("context-switches", type_id::SOFTWARE, sw::CONTEXT_SWITCHES),
    ("cs", type_id::SOFTWARE, sw::CONTEXT_SWITCHES),
    ("cpu-migrations", type_id::SOFTWARE, sw::CPU_MIGRATIONS),
    ("migrations", type_id::SOFTWARE, sw::CPU_MIGRATIONS),
    ("alignment-faults", type_id::SOFTWARE, sw::ALIGNMENT_FAULTS),
    ("emulation-faults", type_id::SOFTWARE, sw::EMULATION_FAULTS),
];

/// Parse one event name with optional `:modifiers`.
pub fn parse_event(s: &str) -> Result<EventSpec, EventParseError> {
    let s = s.trim();
    let (base, mods) = match s.split_once(':') {
        Some((b, m)) => (b, m),
        None => (s, ""),
    };
    let (type_, config) = if let Some(&(_, t, c)) = NAMES.iter().find(|(n, _, _)| *n == base) {
        (t, c)
    } else if let Some(hex) = base.strip_prefix('r').filter(|h| !h.is_empty()) {
        let c = u64::from_str_radix(hex.trim_start_matches("0x"), 16).map_err(|_| EventParseError::Unknown(s.to_string()))?;
        (type_id::RAW, c)
    } else {
        return Err(EventParseError::Unknown(s.to_string()));
    };
    let mut spec = EventSpec { name: s.to_string(), type_, config, exclude_user: false, exclude_kernel: false, precise: None };
    let (mut u, mut k, mut p) = (false, false, 0u8);
    for c in mods.chars() {
        match c {
            'u' => u = true,
            'k' => k = true,
            'p' if p < 3 => p += 1,
            _ => return Err(EventParseError::Modifier { event: s.to_string(), modifier: c.to_string() }),
        }
    }
    if u || k {
        spec.exclude_user = !u;
        spec.exclude_kernel = !k;
    }
    if p > 0 {
        spec.precise = Some(p);
    }
    Ok(spec)
}

/// Parse a comma-separated list (`-e a,b -e c`).
pub fn parse_event_list(items: &[String]) -> Result<Vec<EventSpec>, EventParseError> {
    items.iter().flat_map(|s| s.split(',')).filter(|s| !s.trim().is_empty()).map(parse_event).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn names_and_modifiers() {
        let e = parse_event("cycles:upp").unwrap();
        assert_eq!((e.type_, e.config, e.exclude_user, e.exclude_kernel, e.precise), (0, 0, false, true, Some(2)));
        let e = parse_event("r01c2:k").unwrap();
        assert_eq!((e.type_, e.config, e.exclude_user), (type_id::RAW, 0x1c2, true));
        assert!(parse_event("cpu-clock").unwrap().type_ == type_id::SOFTWARE);
        assert!(parse_event("page-faults").unwrap().has_data_addr());
        assert!(matches!(parse_event("nope"), Err(EventParseError::Unknown(_))));
        assert!(matches!(parse_event("cycles:z"), Err(EventParseError::Modifier { .. })));
        assert_eq!(parse_event_list(&["cycles,cpu-clock".into(), "page-faults".into()]).unwrap().len(), 3);
    }
}
