//! Event strings in perf's syntax and the attr fields they set.
//!
//! ```text
//!   cycles:pp   instructions:u   cpu-clock   r01c2:k        names, raw codes
//!   cpu/event=0x3c,umask=0/k                                PMU terms (sysfs format/)
//!   cpu/mem-loads,ldlat=30/P   mem-loads                     sysfs aliases (events/)
//!   cpu_core/cycles/   cycles (hybrid: one event per core PMU)
//!   ibs_op//   arm_spe_0/ts_enable=1,load_filter=1/          any PMU in sysfs
//!   {cycles,instructions}:u                                  groups
//! ```
//!
//! Terms combine as perf combines them: an alias's terms first, then the
//! user's, each OR-ed into its config word (so `mem-loads,ldlat=30` over an
//! alias holding `ldlat=3` gives config1 0x1f, as perf 6.1 does). Modifiers
//! follow perf's get_event_modifier, including its exclude_guest rule.

use crate::perf::attr::{hw, sw, type_id};
use crate::perf::pmu::{ConfigWord, Pmu, Pmus};

/// A parsed `-e` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// The name as written (modifiers included), used in reports.
    pub name: String,
    /// The PMU the event belongs to, when it names one (or a hybrid core PMU).
    pub pmu: Option<String>,
    pub type_: u32,
    pub config: u64,
    pub config1: u64,
    pub config2: u64,
    pub config3: u64,
    pub exclude_user: bool,
    pub exclude_kernel: bool,
    pub exclude_hv: bool,
    pub exclude_guest: bool,
    pub exclude_host: bool,
    pub exclude_idle: bool,
    pub pinned: bool,
    /// precise_ip from `p` modifiers.
    pub precise: Option<u8>,
    /// `P`: the highest precise level the kernel accepts (3, lowered on failure).
    pub precise_max: bool,
    /// `period=` / `freq=` terms override -c / -F.
    pub period: Option<u64>,
    pub freq: Option<u64>,
    /// Index (in the parsed list) of this event's group leader; None when
    /// the event is not in a `{...}` group or leads it.
    pub group_leader: Option<usize>,
    /// PMUs whose data arrives in an AUX area (Arm SPE, Intel PT).
    pub aux: bool,
}

impl EventSpec {
    fn new(name: &str, type_: u32, config: u64) -> EventSpec {
        EventSpec {
            name: name.to_string(),
            pmu: None,
            type_,
            config,
            config1: 0,
            config2: 0,
            config3: 0,
            exclude_user: false,
            exclude_kernel: false,
            exclude_hv: false,
            // perf's event_attr_init: guests are excluded unless asked for.
            exclude_guest: true,
            exclude_host: false,
            exclude_idle: false,
            pinned: false,
            precise: None,
            precise_max: false,
            period: None,
            freq: None,
            group_leader: None,
            aux: false,
        }
    }

    pub fn is_hardware(&self) -> bool {
        !matches!(self.type_, type_id::SOFTWARE | type_id::TRACEPOINT | type_id::BREAKPOINT)
    }

    /// Software events whose samples carry a data address (PERF_SAMPLE_ADDR).
    pub fn has_data_addr(&self) -> bool {
        self.type_ == type_id::SOFTWARE && matches!(self.config, sw::PAGE_FAULTS | sw::PAGE_FAULTS_MIN | sw::PAGE_FAULTS_MAJ)
    }

    /// A memory-sampling event: Intel mem-loads/mem-stores (and their raw
    /// codes), AMD IBS op, Arm SPE.
    pub fn is_memory(&self) -> bool {
        let pmu = self.pmu.as_deref().unwrap_or("");
        pmu == "ibs_op"
            || pmu.starts_with("arm_spe")
            || (self.type_ >= type_id::RAW && matches!(self.config & 0xffff, 0x1cd | 0x2cd | 0x82d0))
    }

    /// The requested precise level (P counts as 3).
    pub fn precise_ip(&self) -> u8 {
        if self.precise_max {
            3
        } else {
            self.precise.unwrap_or(0)
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventParseError {
    #[error("unknown event '{0}'; known: cycles, instructions, cache-references, cache-misses, branches, branch-misses, bus-cycles, ref-cycles, cpu-clock, task-clock, page-faults, minor-faults, major-faults, context-switches, cpu-migrations, rNNN for a raw PMU event, PMU/terms/ for a PMU in sysfs, or an alias from /sys/bus/event_source/devices/*/events")]
    Unknown(String),
    #[error("unknown modifier '{modifier}' in event '{event}' (known: u, k, h, G, H, I, D, p, pp, ppp, P)")]
    Modifier { event: String, modifier: String },
    #[error("event '{event}': no PMU named '{pmu}' on this host (PMUs here: {known})")]
    NoPmu { event: String, pmu: String, known: String },
    #[error("event '{event}': unknown term '{term}' for PMU '{pmu}' (valid terms: {valid})")]
    Term { event: String, pmu: String, term: String, valid: String },
    #[error("event '{event}': value {value:#x} does not fit term '{term}' ({width} bits)")]
    TooWide { event: String, term: String, value: u64, width: u32 },
    #[error("event '{event}': '{value}' is not a number (decimal or 0x hex)")]
    Value { event: String, value: String },
    #[error("event list '{0}' is unbalanced ({{ }} or / / do not pair up)")]
    Unbalanced(String),
    #[error("event '{0}': more than 3 'p' modifiers")]
    Precise(String),
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
    ("dummy", type_id::SOFTWARE, sw::DUMMY),
];

fn builtin(name: &str) -> Option<(u32, u64)> {
    NAMES.iter().find(|(n, _, _)| *n == name).map(|&(_, t, c)| (t, c))
}

fn number(event: &str, v: &str) -> Result<u64, EventParseError> {
    let v = v.trim();
    let r = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    };
    r.map_err(|_| EventParseError::Value { event: event.to_string(), value: v.to_string() })
}

/// Split at top-level commas: not inside `{}` or between a PMU's slashes.
fn split_top(s: &str) -> Result<Vec<&str>, EventParseError> {
    let mut out = Vec::new();
    let (mut depth, mut slashes, mut start) = (0i32, 0u32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            '/' => slashes += 1,
            ',' if depth == 0 && slashes % 2 == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(EventParseError::Unbalanced(s.to_string()));
        }
    }
    if depth != 0 || slashes % 2 != 0 {
        return Err(EventParseError::Unbalanced(s.to_string()));
    }
    out.push(&s[start..]);
    Ok(out.into_iter().map(str::trim).filter(|x| !x.is_empty()).collect())
}

/// perf's get_event_modifier, applied to `e`.
fn apply_modifiers(e: &mut EventSpec, mods: &str, event: &str) -> Result<(), EventParseError> {
    if mods.is_empty() {
        return Ok(());
    }
    let (mut eu, mut ek, mut eh) = (false, false, false);
    let (mut eg, mut ehost, mut ex_gh) = (false, false, false);
    let mut exclude = false;
    let mut precise = 0u8;
    for c in mods.chars() {
        match c {
            'u' | 'k' | 'h' => {
                if !exclude {
                    exclude = true;
                    (eu, ek, eh) = (true, true, true);
                }
                match c {
                    'u' => {
                        eu = false;
                        if !ex_gh {
                            eg = true;
                        }
                    }
                    'k' => ek = false,
                    _ => eh = false,
                }
            }
            'G' | 'H' => {
                if !ex_gh {
                    ex_gh = true;
                    (eg, ehost) = (true, true);
                }
                if c == 'G' {
                    eg = false;
                } else {
                    ehost = false;
                }
            }
            'p' => {
                precise += 1;
                if !ex_gh {
                    eg = true;
                }
            }
            'P' => e.precise_max = true,
            'I' => e.exclude_idle = true,
            'D' => e.pinned = true,
            _ => return Err(EventParseError::Modifier { event: event.to_string(), modifier: c.to_string() }),
        }
    }
    if precise > 3 {
        return Err(EventParseError::Precise(event.to_string()));
    }
    (e.exclude_user, e.exclude_kernel, e.exclude_hv) = (eu, ek, eh);
    (e.exclude_guest, e.exclude_host) = (eg, ehost);
    if precise > 0 {
        e.precise = Some(precise);
    }
    Ok(())
}

fn word_mut(e: &mut EventSpec, w: ConfigWord) -> &mut u64 {
    match w {
        ConfigWord::Config => &mut e.config,
        ConfigWord::Config1 => &mut e.config1,
        ConfigWord::Config2 => &mut e.config2,
        ConfigWord::Config3 => &mut e.config3,
    }
}

/// Apply `k=v,...` terms of `pmu` to `e` (aliases expand in place).
fn apply_terms(e: &mut EventSpec, pmu: &Pmu, terms: &str, event: &str, depth: u32) -> Result<(), EventParseError> {
    for t in terms.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (k, v) = match t.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (t, None),
        };
        let val = |d: u64| v.map_or(Ok(d), |v| number(event, v));
        match k {
            "config" => e.config |= val(1)?,
            "config1" => e.config1 |= val(1)?,
            "config2" => e.config2 |= val(1)?,
            "config3" => e.config3 |= val(1)?,
            "period" | "sample_period" => e.period = Some(val(0)?),
            "freq" | "sample_freq" => e.freq = Some(val(0)?),
            "name" => e.name = v.unwrap_or("").to_string(),
            _ => {
                if let Some(f) = pmu.formats.get(k) {
                    let x = val(1)?;
                    let w = f.width();
                    if w < 64 && x >> w != 0 {
                        return Err(EventParseError::TooWide { event: event.to_string(), term: k.to_string(), value: x, width: w });
                    }
                    *word_mut(e, f.word) |= f.place(x);
                } else if let (Some(alias), None, true) = (pmu.alias(k), v, depth < 4) {
                    let alias = alias.to_string();
                    apply_terms(e, pmu, &alias, event, depth + 1)?;
                } else {
                    let mut valid: Vec<&str> = pmu.formats.keys().map(String::as_str).collect();
                    valid.extend(["config", "config1", "config2", "config3", "name", "period", "freq"]);
                    return Err(EventParseError::Term {
                        event: event.to_string(),
                        pmu: pmu.name.clone(),
                        term: k.to_string(),
                        valid: valid.join(","),
                    });
                }
            }
        }
    }
    Ok(())
}

fn is_aux_pmu(name: &str) -> bool {
    name.starts_with("arm_spe") || name == "intel_pt" || name.starts_with("cs_etm")
}

/// One event (no top-level commas, no braces) into one or more specs (a
/// hardware name on a hybrid machine opens once per core PMU).
fn parse_one(s: &str, pmus: &Pmus) -> Result<Vec<EventSpec>, EventParseError> {
    if let Some(slash) = s.find('/') {
        let pmu_name = &s[..slash];
        let rest = &s[slash + 1..];
        let close = rest.rfind('/').ok_or_else(|| EventParseError::Unbalanced(s.to_string()))?;
        let (terms, mods) = (&rest[..close], &rest[close + 1..]);
        let pmu = pmus.get(pmu_name).ok_or_else(|| EventParseError::NoPmu {
            event: s.to_string(),
            pmu: pmu_name.to_string(),
            known: pmus.names().join(", "),
        })?;
        // A hybrid core PMU also takes the generic hardware names
        // (`cpu_core/cycles/`), with the PMU type in config's high word.
        let term_list: Vec<&str> = terms.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
        let mut e = match (pmus.is_hybrid() && pmus.core().iter().any(|c| c.name == pmu.name), term_list.first()) {
            (true, Some(first)) if builtin(first).is_some_and(|(t, _)| t == type_id::HARDWARE) && pmu.alias(first).is_none() => {
                let (_, c) = builtin(first).unwrap_or((0, 0));
                let mut e = EventSpec::new(s, type_id::HARDWARE, c | (u64::from(pmu.type_) << 32));
                apply_terms(&mut e, pmu, &term_list[1..].join(","), s, 0)?;
                e
            }
            _ => {
                let mut e = EventSpec::new(s, pmu.type_, 0);
                apply_terms(&mut e, pmu, terms, s, 0)?;
                e
            }
        };
        e.pmu = Some(pmu.name.clone());
        e.aux = is_aux_pmu(&pmu.name);
        apply_modifiers(&mut e, mods, s)?;
        return Ok(vec![e]);
    }
    let (base, mods) = s.split_once(':').unwrap_or((s, ""));
    let mut out = Vec::new();
    if let Some((t, c)) = builtin(base) {
        let core = pmus.core();
        if t == type_id::HARDWARE && pmus.is_hybrid() {
            for p in core {
                let mut e = EventSpec::new(&format!("{}/{s}/", p.name), t, c | (u64::from(p.type_) << 32));
                e.pmu = Some(p.name.clone());
                out.push(e);
            }
        } else {
            out.push(EventSpec::new(s, t, c));
        }
    } else if let Some(hex) = base.strip_prefix('r').filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit())) {
        let c = u64::from_str_radix(hex, 16).map_err(|_| EventParseError::Unknown(s.to_string()))?;
        out.push(EventSpec::new(s, type_id::RAW, c));
    } else {
        // A sysfs alias of a core PMU (`mem-loads`), then of any PMU.
        let found = pmus.core().into_iter().chain(pmus.list.iter()).find(|p| p.alias(base).is_some());
        let Some(p) = found else {
            return Err(EventParseError::Unknown(s.to_string()));
        };
        let mut e = EventSpec::new(s, p.type_, 0);
        apply_terms(&mut e, p, base, s, 0)?;
        e.pmu = Some(p.name.clone());
        out.push(e);
    }
    for e in &mut out {
        apply_modifiers(e, mods, s)?;
    }
    Ok(out)
}

/// Parse `-e` values (each a comma-separated list; `{a,b}:mods` groups).
pub fn parse_event_list_with(items: &[String], pmus: &Pmus) -> Result<Vec<EventSpec>, EventParseError> {
    let mut out: Vec<EventSpec> = Vec::new();
    for item in items {
        for part in split_top(item)? {
            if let Some(inner) = part.strip_prefix('{') {
                let close = inner.rfind('}').ok_or_else(|| EventParseError::Unbalanced(part.to_string()))?;
                let mods = inner[close + 1..].trim_start_matches(':');
                let leader = out.len();
                for member in split_top(&inner[..close])? {
                    for mut e in parse_one(member, pmus)? {
                        if !mods.is_empty() {
                            // Group modifiers apply to each member as if
                            // written on it.
                            let own = member.split_once(':').map_or("", |(_, m)| m);
                            let name = e.name.clone();
                            apply_modifiers(&mut e, &format!("{own}{mods}"), &name)?;
                        }
                        if out.len() > leader {
                            e.group_leader = Some(leader);
                        }
                        out.push(e);
                    }
                }
            } else {
                out.extend(parse_one(part, pmus)?);
            }
        }
    }
    Ok(out)
}

/// Parse one event name against this machine's PMUs.
pub fn parse_event(s: &str) -> Result<EventSpec, EventParseError> {
    let mut v = parse_one(s.trim(), &Pmus::discover())?;
    v.truncate(1);
    v.pop().ok_or_else(|| EventParseError::Unknown(s.to_string()))
}

/// Parse `-e` values against this machine's PMUs.
pub fn parse_event_list(items: &[String]) -> Result<Vec<EventSpec>, EventParseError> {
    parse_event_list_with(items, &Pmus::discover())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::perf::pmu::{Format, Pmu};

    fn intel() -> Pmus {
        let mut cpu = Pmu { name: "cpu".into(), type_: 4, ..Default::default() };
        for (k, v) in [("event", "config:0-7"), ("umask", "config:8-15"), ("ldlat", "config1:0-15"), ("cmask", "config:24-31")] {
            cpu.formats.insert(k.into(), Format::parse(v).unwrap());
        }
        cpu.events.insert("mem-loads".into(), "event=0xcd,umask=0x1,ldlat=3".into());
        cpu.events.insert("mem-stores".into(), "event=0xd0,umask=0x82".into());
        Pmus { root: Default::default(), list: vec![cpu] }
    }

    #[test]
    fn names_and_modifiers() {
        let p = intel();
        let e = &parse_one("cycles:upp", &p).unwrap()[0];
        assert_eq!((e.type_, e.config, e.exclude_user, e.exclude_kernel, e.exclude_hv, e.precise), (0, 0, false, true, true, Some(2)));
        assert!(e.exclude_guest);
        let e = &parse_one("r01c2:k", &p).unwrap()[0];
        assert_eq!((e.type_, e.config, e.exclude_user, e.exclude_guest), (type_id::RAW, 0x1c2, true, false));
        assert!(parse_one("cpu-clock", &p).unwrap()[0].type_ == type_id::SOFTWARE);
        assert!(parse_one("page-faults", &p).unwrap()[0].has_data_addr());
        assert!(matches!(parse_one("nope", &p), Err(EventParseError::Unknown(_))));
        assert!(matches!(parse_one("cycles:z", &p), Err(EventParseError::Modifier { .. })));
        assert_eq!(parse_event_list_with(&["cycles,cpu-clock".into(), "page-faults".into()], &p).unwrap().len(), 3);
    }

    #[test]
    fn pmu_terms_aliases_and_groups() {
        let p = intel();
        let e = &parse_event_list_with(&["cpu/mem-loads,ldlat=30/P".into()], &p).unwrap()[0];
        assert_eq!((e.type_, e.config, e.config1, e.precise_ip(), e.exclude_guest), (4, 0x1cd, 0x1f, 3, false));
        assert!(e.is_memory());
        let e = &parse_one("mem-stores", &p).unwrap()[0];
        assert_eq!((e.config, e.exclude_guest), (0x82d0, true));
        let e = &parse_one("cpu/event=0x3c,umask=0,period=5000/k", &p).unwrap()[0];
        assert_eq!((e.config, e.period, e.exclude_user, e.exclude_kernel), (0x3c, Some(5000), true, false));
        assert!(matches!(parse_one("cpu/event=0x1ff/", &p), Err(EventParseError::TooWide { .. })));
        assert!(matches!(parse_one("cpu/cycles/", &p), Err(EventParseError::Term { .. })));
        assert!(matches!(parse_one("nopmu/event=1/", &p), Err(EventParseError::NoPmu { .. })));
        let g = parse_event_list_with(&["{cycles,cpu/mem-loads/}:u,cpu-clock".into()], &p).unwrap();
        assert_eq!(g.len(), 3);
        assert_eq!((g[0].group_leader, g[1].group_leader, g[2].group_leader), (None, Some(0), None));
        assert!(g[1].exclude_kernel && !g[2].exclude_kernel);
        assert!(matches!(split_top("{a,b"), Err(EventParseError::Unbalanced(_))));
    }

    #[test]
    fn hybrid_names_open_on_each_core_pmu() {
        let core = Pmu { name: "cpu_core".into(), type_: 4, ..Default::default() };
        let atom = Pmu { name: "cpu_atom".into(), type_: 8, ..Default::default() };
        let p = Pmus { root: Default::default(), list: vec![atom, core] };
        let v = parse_one("cycles:ppp", &p).unwrap();
        let mut cfg: Vec<u64> = v.iter().map(|e| e.config).collect();
        cfg.sort();
        assert_eq!(cfg, vec![0x4_0000_0000, 0x8_0000_0000]);
        let e = &parse_one("cpu_core/cycles/", &p).unwrap()[0];
        assert_eq!((e.type_, e.config), (type_id::HARDWARE, 0x4_0000_0000));
    }
}
