//! `msen diff`: two profiles, or two sets of repeated runs, compared row by
//! row. Rows are matched by name on the report's sort keys (never by
//! address, so rebuilt binaries match); perf diff's computations (Baseline,
//! Delta, Ratio, Weighted diff) come with a significance test for every row,
//! cost shifts between a caller and its callee are told apart from
//! regressions, and `--fail-on` thresholds decide a CI job's exit status.
//!
//! Statistics: a row's share is binomial in its sample count, so one run per
//! side gets a two-proportion z-test (a Wald test on Poisson counts when
//! normalised per second or per unit of work); with repeated runs the
//! run-to-run variance of the per-run values is used (Welch's t-test). Every
//! family of tests (self, children) is corrected for the number of rows with
//! Holm's step-down method, so the chance that an unchanged program flags any
//! row stays at 1 - confidence.

use super::report::{self, KeyVal, ReportConfig, SortKey};
use super::Loaded;
use crate::trace::TraceError;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
use std::collections::{BTreeMap, BTreeSet};

/// What one trace says about one event: rows keyed by their names.
#[derive(Debug, Clone, Default)]
pub struct EventProfile {
    pub name: String,
    /// The denominators of shares: every sample of the event, or those the
    /// filters keep with `--percentage relative`.
    pub samples: u64,
    pub period: u64,
    pub rows: BTreeMap<Vec<String>, Counts>,
}

/// A row's counts in one run. Children samples are derived from the
/// children period at the event's mean period per sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub samples: u64,
    pub period: u64,
    pub children_period: u64,
    /// The plain name of the row's symbol key, to find its callers.
    pub sym: Option<String>,
}

/// One trace, reduced to what a comparison needs.
#[derive(Debug, Clone, Default)]
pub struct RunProfile {
    pub path: String,
    /// From the first to the last sample (None without sample times).
    pub seconds: Option<f64>,
    pub has_children: bool,
    pub events: Vec<EventProfile>,
    /// Collapsed stacks ("comm;outer;...;inner", samples), for the
    /// differential flame graph and for callers.
    pub folded: Vec<(String, u64)>,
    /// Symbol names and the names of their direct callers, from call chains.
    pub callers: BTreeMap<String, BTreeSet<String>>,
    /// Total period of every event by name (for `--per-event`).
    pub event_periods: BTreeMap<String, u64>,
}

/// The key strings a row is matched by: names, never addresses of symbols
/// (a symbol's start differs between builds).
fn key_strings(keys: &[KeyVal]) -> Vec<String> {
    keys.iter().map(KeyVal::display).collect()
}

/// Reduce a trace to a profile with `cfg`'s sort keys and filters (every
/// row: no limit; no call-graph trees). `stacks`: also the collapsed stacks
/// and callers (for the flame graph and cost shifts; they cost a walk of
/// every distinct stack).
pub fn profile(l: &Loaded, cfg: &ReportConfig, path: &str, stacks: bool) -> Result<RunProfile, TraceError> {
    let mut rc = cfg.clone();
    rc.percent_limit = 0.0;
    rc.top = None;
    rc.folded = stacks;
    rc.branch = false;
    rc.callgraph.mode = super::callgraph::GraphMode::None;
    let r = report::report(l, &rc)?;
    let sym_col = cfg.sort.iter().position(|k| *k == SortKey::Sym);
    let mut events: Vec<EventProfile> = r.events.iter().map(|e| EventProfile { name: e.name.clone(), ..Default::default() }).collect();
    for row in &r.rows {
        let Some(ev) = events.get_mut(row.event as usize) else { continue };
        let c = ev.rows.entry(key_strings(&row.keys)).or_default();
        c.samples += row.samples;
        c.period = c.period.saturating_add(row.period);
        c.children_period = c.children_period.saturating_add(row.children_period.unwrap_or(row.period));
        if c.sym.is_none() {
            c.sym = sym_col.and_then(|i| match row.keys.get(i) {
                Some(KeyVal::Sym { name, .. }) => Some(name.clone()),
                _ => None,
            });
        }
    }
    for (ev, total) in events.iter_mut().zip(&r.events) {
        // Shares of every sample (absolute, perf's default) or of what the
        // filters kept: each kept sample is in exactly one row's self.
        if cfg.relative {
            ev.samples = ev.rows.values().map(|c| c.samples).sum();
            ev.period = ev.rows.values().map(|c| c.period).fold(0u64, u64::saturating_add);
        } else {
            ev.samples = total.samples;
            ev.period = total.period;
        }
    }
    let mut callers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (stack, _) in &r.folded {
        let frames: Vec<&str> = stack.split(';').skip(1).collect();
        for w in frames.windows(2) {
            if w[0] != w[1] {
                callers.entry(w[1].to_string()).or_default().insert(w[0].to_string());
            }
        }
    }
    let seconds = match l.sample_time_span() {
        Some((a, b)) if b > a => Some((b - a) as f64 / 1e9),
        _ => None,
    };
    let event_periods = r.events.iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(e.name.clone()).or_insert(0u64) += e.period;
        m
    });
    Ok(RunProfile { path: path.to_string(), seconds, has_children: r.has_children, events, folded: r.folded, callers, event_periods })
}

/// perf diff's `-c`: the computed column, and the order of rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Compute {
    /// |New% - Baseline%|, largest first (perf's default).
    DeltaAbs,
    /// New% - Baseline%, largest first.
    Delta,
    /// New period / baseline period.
    Ratio,
    /// New period * w_new - baseline period * w_base.
    Wdiff(i64, i64),
}

impl Compute {
    pub fn parse(s: &str) -> Result<Compute, String> {
        match s {
            "delta-abs" => Ok(Compute::DeltaAbs),
            "delta" => Ok(Compute::Delta),
            "ratio" => Ok(Compute::Ratio),
            _ => {
                let w = s.strip_prefix("wdiff:").ok_or_else(|| {
                    format!("unknown computation '{s}'; use delta-abs, delta, ratio or wdiff:W_BASE,W_NEW (perf diff's -c)")
                })?;
                let (a, b) = w.split_once(',').ok_or_else(|| format!("'{s}': wdiff needs two weights, as wdiff:1,2"))?;
                let p = |x: &str| x.trim().parse::<i64>().map_err(|_| format!("'{s}': weight '{x}' is not an integer"));
                Ok(Compute::Wdiff(p(a)?, p(b)?))
            }
        }
    }
}

/// What a row's value is measured against.
#[derive(Debug, Clone, PartialEq)]
pub enum Norm {
    /// Share of the event's period (perf diff's percentages).
    Share,
    /// Period per second of capture (first to last sample).
    PerSecond,
    /// Period per unit of work: the total period of this event in the same
    /// trace (`--per-event instructions`).
    PerEvent(String),
    /// Period per unit of work the user counted, one number per run.
    PerWork { base: Vec<f64>, new: Vec<f64> },
}

impl Norm {
    pub fn unit(&self) -> &'static str {
        match self {
            Norm::Share => "share",
            Norm::PerSecond => "per second",
            Norm::PerEvent(_) | Norm::PerWork { .. } => "per unit of work",
        }
    }
}

/// Which value of a row a threshold looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    SelfCost,
    Children,
    /// The event's total (period, normalised), not a row.
    Total,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Percentage points of share.
    Pp,
    /// Relative change of the value.
    Percent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

/// One `--fail-on` threshold: `[KEY:NAME[:METRIC]|METRIC] OP [+-]N(pp|%)[@CONF]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FailOn {
    pub text: String,
    /// A sort key and the name its column must have (a trailing `*` matches a prefix).
    pub scope: Option<(SortKey, String)>,
    pub metric: Metric,
    pub op: Op,
    pub value: f64,
    pub unit: Unit,
    /// The confidence a change needs to count (default: `--confidence`).
    pub confidence: Option<f64>,
}

impl FailOn {
    pub fn parse(s: &str) -> Result<FailOn, String> {
        let bad =
            |why: &str| format!("--fail-on '{s}': {why}; write e.g. 'self>+2pp', 'sym:parse_json>+10%', 'total>+5%', 'children>+3pp@0.99'");
        let at = s.find(['<', '>']).ok_or_else(|| bad("no comparison (> or <)"))?;
        let (lhs, rest) = s.split_at(at);
        let (op, rhs) = if let Some(r) = rest.strip_prefix(">=") {
            (Op::Ge, r)
        } else if let Some(r) = rest.strip_prefix("<=") {
            (Op::Le, r)
        } else if let Some(r) = rest.strip_prefix('>') {
            (Op::Gt, r)
        } else {
            (Op::Lt, &rest[1..])
        };
        let metric_of = |m: &str| match m {
            "self" => Some(Metric::SelfCost),
            "children" => Some(Metric::Children),
            "total" => Some(Metric::Total),
            _ => None,
        };
        let lhs = lhs.trim();
        let (scope, metric) = match lhs.split_once(':') {
            None => (None, metric_of(lhs).ok_or_else(|| bad(&format!("'{lhs}' is not self, children, total or KEY:NAME")))?),
            Some((key, name)) => {
                let k = SortKey::parse(key).ok_or_else(|| bad(&format!("'{key}' is not a sort key")))?;
                let (name, metric) = match name.rsplit_once(':') {
                    Some((n, m)) if metric_of(m).is_some() => (n, metric_of(m).unwrap_or(Metric::SelfCost)),
                    _ => (name, Metric::SelfCost),
                };
                if metric == Metric::Total {
                    return Err(bad("total is the whole event's; it takes no KEY:NAME"));
                }
                if name.is_empty() {
                    return Err(bad("an empty name"));
                }
                (Some((k, name.to_string())), metric)
            }
        };
        let (num, conf) = match rhs.split_once('@') {
            Some((n, c)) => {
                let c = c.trim();
                let v = match c.strip_suffix('%') {
                    Some(p) => p.parse::<f64>().map(|x| x / 100.0),
                    None => c.parse::<f64>(),
                }
                .map_err(|_| bad(&format!("confidence '{c}' is not a number")))?;
                if !(v > 0.0 && v < 1.0) {
                    return Err(bad("the confidence must be between 0 and 1 (or 0% and 100%)"));
                }
                (n.trim(), Some(v))
            }
            None => (rhs.trim(), None),
        };
        let (digits, unit) = if let Some(d) = num.strip_suffix("pp") {
            (d, Unit::Pp)
        } else if let Some(d) = num.strip_suffix('%') {
            (d, Unit::Percent)
        } else {
            return Err(bad("the threshold needs a unit: pp (percentage points of share) or % (relative change)"));
        };
        let value: f64 = digits.trim().parse().map_err(|_| bad(&format!("'{digits}' is not a number")))?;
        if !value.is_finite() {
            return Err(bad("the threshold must be finite"));
        }
        if metric == Metric::Total && unit == Unit::Pp {
            return Err(bad("total is always 100% of itself; give its change in %"));
        }
        Ok(FailOn { text: s.to_string(), scope, metric, op, value, unit, confidence: conf })
    }

    fn passes(&self, x: f64) -> bool {
        match self.op {
            Op::Gt => x > self.value,
            Op::Ge => x >= self.value,
            Op::Lt => x < self.value,
            Op::Le => x <= self.value,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DiffConfig {
    pub compute: Compute,
    pub norm: Norm,
    /// Confidence for flagging a row (after Holm's correction).
    pub confidence: f64,
    /// Rows with fewer samples than this (both sides together) are never flagged.
    pub min_samples: u64,
    pub fail_on: Vec<FailOn>,
}

impl Default for DiffConfig {
    fn default() -> Self {
        DiffConfig { compute: Compute::DeltaAbs, norm: Norm::Share, confidence: 0.999, min_samples: 20, fail_on: vec![] }
    }
}

/// A test of one value between the two sides.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Test {
    /// Mean value per side, in the normalisation's unit (a fraction for shares).
    pub base: f64,
    pub new: f64,
    /// Half-width of the confidence interval of new - base (not corrected for many rows).
    pub ci: f64,
    pub p: f64,
    /// Holm-corrected p-value over the rows of the event.
    pub p_adj: f64,
    /// Whether the floor on samples let this row be tested at all.
    pub tested: bool,
}

impl Test {
    pub fn delta(&self) -> f64 {
        self.new - self.base
    }
    /// Relative change in percent (infinite for a row new in NEW).
    pub fn change_pct(&self) -> f64 {
        if self.base == 0.0 {
            if self.new == 0.0 {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            (self.new - self.base) / self.base * 100.0
        }
    }
    pub fn significant(&self, confidence: f64) -> bool {
        self.tested && self.p_adj < 1.0 - confidence
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Unchanged,
    /// Self grew, significantly.
    Regressed,
    Improved,
    /// In NEW only (or BASE only), significantly.
    New,
    Gone,
    /// Time moved between this function and a caller or callee, with the
    /// enclosing total unchanged: not a regression.
    Shift {
        peer: Option<String>,
    },
}

impl Status {
    pub fn is_regression(&self) -> bool {
        matches!(self, Status::Regressed | Status::New)
    }
    /// The word a table shows. In shares a row's share falls whenever
    /// another's grows, so a fall there is not called an improvement.
    pub fn label(&self, share: bool) -> String {
        match self {
            Status::Unchanged => String::new(),
            Status::Regressed => "regressed".into(),
            Status::Improved if share => "lower share".into(),
            Status::Improved => "improved".into(),
            Status::New => "new".into(),
            Status::Gone => "gone".into(),
            Status::Shift { peer: Some(p) } => format!("shift ({p})"),
            Status::Shift { peer: None } => "shift (own callees)".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DiffRow {
    pub keys: Vec<String>,
    /// Summed over the runs of each side.
    pub base: Counts,
    pub new: Counts,
    pub self_test: Test,
    pub children: Option<Test>,
    /// perf diff's values on summed periods and shares in percent.
    pub baseline_pct: f64,
    pub new_pct: f64,
    pub ratio: Option<f64>,
    /// With `-c wdiff:W_BASE,W_NEW`, for rows in both sides.
    pub wdiff: Option<i128>,
    pub status: Status,
}

#[derive(Debug, Clone)]
pub struct EventDiff {
    pub name: String,
    pub base_samples: u64,
    pub new_samples: u64,
    /// The event's total (None for memory comparisons, which have shares only).
    pub total: Option<Test>,
    pub rows: Vec<DiffRow>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FailResult {
    pub expr: String,
    /// Rows (or "total") that crossed the threshold, with their change.
    pub matches: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Diff {
    pub base_paths: Vec<String>,
    pub new_paths: Vec<String>,
    pub sort: Vec<SortKey>,
    /// The headers of the key columns.
    pub columns: Vec<String>,
    /// What a row's value is, when not a share of samples (memory comparisons).
    pub measure: Option<String>,
    pub has_children: bool,
    pub config: DiffConfig,
    pub events: Vec<EventDiff>,
    /// Events in one side only.
    pub unmatched_events: Vec<String>,
    pub fail: Vec<FailResult>,
    /// Whether the thresholds (or, without --fail-on, any regressed row) fail the run.
    pub failed: bool,
}

impl Diff {
    /// Machine-readable names of the key columns (JSON keys, CSV headers).
    pub fn key_names(&self) -> Vec<String> {
        if self.sort.is_empty() {
            self.columns.iter().map(|c| c.to_lowercase().replace(' ', "_")).collect()
        } else {
            self.sort.iter().map(|k| k.name().to_string()).collect()
        }
    }
    pub fn regressions(&self) -> impl Iterator<Item = (&EventDiff, &DiffRow)> {
        self.events.iter().flat_map(|e| e.rows.iter().filter(|r| r.status.is_regression()).map(move |r| (e, r)))
    }
}

/// Two-sided p-value of a standard normal statistic.
fn normal_p(z: f64) -> f64 {
    if !z.is_finite() {
        return if z.is_nan() { 1.0 } else { 0.0 };
    }
    let n = Normal::standard();
    2.0 * (1.0 - n.cdf(z.abs()))
}

fn z_crit(confidence: f64) -> f64 {
    Normal::standard().inverse_cdf(1.0 - (1.0 - confidence) / 2.0)
}

/// Per-run values of one row on one side, and the raw counts behind them.
struct SideValues {
    values: Vec<f64>,
    /// Samples of the row and of the whole event, summed over runs.
    n: f64,
    total_n: f64,
    /// Value of one sample of this row (for the Poisson test).
    per_sample: f64,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn var(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64
}

/// The test of one value between two sides.
fn test(b: &SideValues, n: &SideValues, share: bool, confidence: f64, min_samples: u64) -> Test {
    let (mb, mn) = (mean(&b.values), mean(&n.values));
    let tested = b.n + n.n >= min_samples as f64;
    let (kb, kn) = (b.values.len(), n.values.len());
    let (ci, p) = if kb + kn >= 3 && (kb >= 2 || kn >= 2) {
        // Repeated runs: the run-to-run variance (Welch; pooled when one
        // side has a single run).
        let (vb, vn) = (var(&b.values), var(&n.values));
        let (se, df) = if kb >= 2 && kn >= 2 {
            let (sb, sn) = (vb / kb as f64, vn / kn as f64);
            let se = (sb + sn).sqrt();
            let df = if sb + sn > 0.0 {
                (sb + sn).powi(2) / (sb * sb / (kb as f64 - 1.0) + sn * sn / (kn as f64 - 1.0)).max(f64::MIN_POSITIVE)
            } else {
                (kb + kn - 2) as f64
            };
            (se, df)
        } else {
            let df = (kb + kn - 2) as f64;
            let pooled = ((kb as f64 - 1.0) * vb + (kn as f64 - 1.0) * vn) / df;
            (pooled.sqrt() * (1.0 / kb as f64 + 1.0 / kn as f64).sqrt(), df)
        };
        let d = mn - mb;
        if se == 0.0 {
            (0.0, if d == 0.0 { 1.0 } else { 0.0 })
        } else {
            match StudentsT::new(0.0, 1.0, df.max(1.0)) {
                Ok(t) => {
                    let p = 2.0 * (1.0 - t.cdf((d / se).abs()));
                    (t.inverse_cdf(1.0 - (1.0 - confidence) / 2.0) * se, p)
                }
                Err(_) => (0.0, 1.0),
            }
        }
    } else if share {
        // One run a side: shares are binomial in the sample counts.
        let (p1, p2) = (b.n / b.total_n.max(1.0), n.n / n.total_n.max(1.0));
        let pool = (b.n + n.n) / (b.total_n + n.total_n).max(1.0);
        let se0 = (pool * (1.0 - pool) * (1.0 / b.total_n.max(1.0) + 1.0 / n.total_n.max(1.0))).sqrt();
        let se = (p1 * (1.0 - p1) / b.total_n.max(1.0) + p2 * (1.0 - p2) / n.total_n.max(1.0)).sqrt();
        let p = if se0 == 0.0 { 1.0 } else { normal_p((p2 - p1) / se0) };
        // Values are in percent.
        (z_crit(confidence) * se * 100.0, p)
    } else {
        // Counts over an exposure: Poisson, a Wald test on the two rates.
        let vb = b.n * b.per_sample * b.per_sample;
        let vn = n.n * n.per_sample * n.per_sample;
        let se = (vb + vn).sqrt();
        let p = if se == 0.0 { 1.0 } else { normal_p((mn - mb) / se) };
        (z_crit(confidence) * se, p)
    };
    Test { base: mb, new: mn, ci, p, p_adj: p, tested }
}

/// Holm's step-down correction of the tested p-values, in place.
fn holm(tests: &mut [&mut Test]) {
    for t in tests.iter_mut().filter(|t| !t.tested) {
        t.p_adj = 1.0;
    }
    let mut idx: Vec<usize> = (0..tests.len()).filter(|&i| tests[i].tested).collect();
    idx.sort_by(|&a, &b| tests[a].p.total_cmp(&tests[b].p).then(a.cmp(&b)));
    let m = idx.len();
    let mut running: f64 = 0.0;
    for (rank, &i) in idx.iter().enumerate() {
        let adj = ((m - rank) as f64 * tests[i].p).min(1.0);
        running = running.max(adj);
        tests[i].p_adj = running;
    }
}

/// Which value of a row's counts a test is about.
#[derive(Clone, Copy)]
enum Of {
    SelfCost,
    Children,
}

/// Compare BASE runs with NEW runs (each at least one profile).
pub fn compare(base: &[RunProfile], new: &[RunProfile], sort: &[SortKey], cfg: &DiffConfig) -> Result<Diff, String> {
    if base.is_empty() || new.is_empty() {
        return Err("diff needs at least one profile on each side".into());
    }
    if let Norm::PerWork { base: wb, new: wn } = &cfg.norm {
        if wb.len() != base.len() || wn.len() != new.len() {
            return Err(format!(
                "--work gives {} base and {} new counts for {} base and {} new traces; give one count per trace",
                wb.len(),
                wn.len(),
                base.len(),
                new.len()
            ));
        }
        if wb.iter().chain(wn).any(|w| !(w.is_finite() && *w > 0.0)) {
            return Err("--work counts must be positive numbers".into());
        }
    }
    // The divisor of each run's values.
    let divisor = |run: &RunProfile, ev: &EventProfile, side_new: bool, i: usize| -> Result<f64, String> {
        Ok(match &cfg.norm {
            Norm::Share => ev.period.max(1) as f64 / 100.0,
            Norm::PerSecond => run.seconds.ok_or_else(|| {
                format!("{} has no sample times, so nothing is per second; record with timestamps or use shares", run.path)
            })?,
            Norm::PerEvent(name) => match run.event_periods.get(name) {
                Some(&p) if p > 0 => p as f64,
                _ => {
                    return Err(format!(
                        "{} has no samples of event '{name}' to count work with; record it (-e {name}) or give --work",
                        run.path
                    ))
                }
            },
            Norm::PerWork { base: wb, new: wn } => {
                if side_new {
                    wn[i]
                } else {
                    wb[i]
                }
            }
        })
    };
    let share = cfg.norm == Norm::Share;
    let names: BTreeSet<&str> = base.iter().chain(new).flat_map(|r| r.events.iter().map(|e| e.name.as_str())).collect();
    let has = |runs: &[RunProfile], name: &str| runs.iter().all(|r| r.events.iter().any(|e| e.name == name));
    let mut unmatched = Vec::new();
    let mut events = Vec::new();
    let has_children = base.iter().chain(new).all(|r| r.has_children);
    for name in names {
        if !(has(base, name) && has(new, name)) {
            unmatched.push(name.to_string());
            continue;
        }
        let evs = |runs: &[RunProfile]| -> Vec<EventProfile> {
            runs.iter().filter_map(|r| r.events.iter().find(|e| e.name == name).cloned()).collect()
        };
        let (eb, en) = (evs(base), evs(new));
        let divs = |runs: &[RunProfile], evs: &[EventProfile], side_new: bool| -> Result<Vec<f64>, String> {
            runs.iter().zip(evs).enumerate().map(|(i, (r, e))| divisor(r, e, side_new, i)).collect()
        };
        let (db, dn) = (divs(base, &eb, false)?, divs(new, &en, true)?);
        let keys: BTreeSet<&Vec<String>> = eb.iter().chain(&en).flat_map(|e| e.rows.keys()).collect();
        let side = |evs: &[EventProfile], divs: &[f64], key: &Vec<String>, of: Of| -> SideValues {
            let mut values = Vec::with_capacity(evs.len());
            let (mut n, mut total_n, mut per) = (0.0, 0.0, 0.0);
            for (e, d) in evs.iter().zip(divs) {
                let c = e.rows.get(key);
                let mean_period = e.period as f64 / e.samples.max(1) as f64;
                let (rs, rp) = match (c, of) {
                    (Some(c), Of::SelfCost) => (c.samples as f64, c.period as f64),
                    (Some(c), Of::Children) => (c.children_period as f64 / mean_period.max(f64::MIN_POSITIVE), c.children_period as f64),
                    (None, _) => (0.0, 0.0),
                };
                values.push(rp / d);
                n += rs;
                total_n += e.samples as f64;
                per += if rs > 0.0 { rp / rs / d } else { mean_period / d };
            }
            let k = evs.len().max(1) as f64;
            // Means of the runs: the Poisson variance of a mean of k runs.
            SideValues { values, n: n / k, total_n: total_n / k, per_sample: per / k / k.sqrt() }
        };
        let mut rows: Vec<DiffRow> = keys
            .into_iter()
            .map(|key| {
                let sum = |evs: &[EventProfile]| {
                    evs.iter().filter_map(|e| e.rows.get(key)).fold(Counts::default(), |mut a, c| {
                        a.samples += c.samples;
                        a.period = a.period.saturating_add(c.period);
                        a.children_period = a.children_period.saturating_add(c.children_period);
                        a.sym = a.sym.or_else(|| c.sym.clone());
                        a
                    })
                };
                let (cb, cn) = (sum(&eb), sum(&en));
                let self_test =
                    test(&side(&eb, &db, key, Of::SelfCost), &side(&en, &dn, key, Of::SelfCost), share, cfg.confidence, cfg.min_samples);
                let children = has_children.then(|| {
                    test(&side(&eb, &db, key, Of::Children), &side(&en, &dn, key, Of::Children), share, cfg.confidence, cfg.min_samples)
                });
                let pct = |c: &Counts, evs: &[EventProfile]| {
                    let t: u64 = evs.iter().map(|e| e.period).fold(0, u64::saturating_add);
                    if t == 0 {
                        0.0
                    } else {
                        c.period as f64 * 100.0 / t as f64
                    }
                };
                let (kb, kn) = (eb.len() as f64, en.len() as f64);
                let ratio = (cb.period > 0 && cn.period > 0).then(|| (cn.period as f64 / kn) / (cb.period as f64 / kb));
                let wdiff = match cfg.compute {
                    Compute::Wdiff(wb, wn) if ratio.is_some() => {
                        Some((cn.period as f64 / kn) as i128 * wn as i128 - (cb.period as f64 / kb) as i128 * wb as i128)
                    }
                    _ => None,
                };
                DiffRow {
                    keys: key.clone(),
                    baseline_pct: pct(&cb, &eb),
                    new_pct: pct(&cn, &en),
                    base: cb,
                    new: cn,
                    self_test,
                    children,
                    ratio,
                    wdiff,
                    status: Status::Unchanged,
                }
            })
            .collect();
        {
            let mut t: Vec<&mut Test> = rows.iter_mut().map(|r| &mut r.self_test).collect();
            holm(&mut t);
        }
        {
            let mut t: Vec<&mut Test> = rows.iter_mut().filter_map(|r| r.children.as_mut()).collect();
            holm(&mut t);
        }
        classify(&mut rows, base.iter().chain(new), share, cfg.confidence);
        sort_rows(&mut rows, cfg.compute);
        let total = {
            let tot = |evs: &[EventProfile], divs: &[f64], runs: &[RunProfile]| {
                let values: Vec<f64> =
                    evs.iter().zip(divs).map(|(e, d)| if share { e.period as f64 } else { e.period as f64 / d }).collect();
                let k = evs.len().max(1) as f64;
                let n = evs.iter().map(|e| e.samples as f64).sum::<f64>() / k;
                let m = mean(&values);
                let _ = runs;
                SideValues { per_sample: if n > 0.0 { m / n / k.sqrt() } else { 0.0 }, values, n, total_n: n }
            };
            // The total is a count over an exposure whatever the rows' normalisation.
            let mut t = test(&tot(&eb, &db, base), &tot(&en, &dn, new), false, cfg.confidence, cfg.min_samples);
            t.p_adj = t.p;
            Some(t)
        };
        events.push(EventDiff {
            name: name.to_string(),
            base_samples: eb.iter().map(|e| e.samples).sum(),
            new_samples: en.iter().map(|e| e.samples).sum(),
            total,
            rows,
        });
    }
    if events.is_empty() {
        return Err(format!(
            "the two sides have no event in common (base: {}; new: {}); compare traces recorded with the same -e",
            base[0].events.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(","),
            new[0].events.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(",")
        ));
    }
    let mut d = Diff {
        base_paths: base.iter().map(|r| r.path.clone()).collect(),
        new_paths: new.iter().map(|r| r.path.clone()).collect(),
        sort: sort.to_vec(),
        columns: sort.iter().map(|k| k.header().to_string()).collect(),
        measure: None,
        has_children,
        config: cfg.clone(),
        events,
        unmatched_events: unmatched,
        fail: vec![],
        failed: false,
    };
    evaluate(&mut d)?;
    Ok(d)
}

/// Significant self changes become regressions and improvements, unless
/// the time only moved: (a) the row's own total (children) is unchanged, so
/// the time came from (or went to) its callees; (b) a direct caller lost as
/// much self time as the row gained while the caller's total stayed put.
fn classify<'a>(rows: &mut [DiffRow], runs: impl Iterator<Item = &'a RunProfile>, share: bool, confidence: f64) {
    let mut callers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in runs {
        for (callee, cs) in &r.callers {
            callers.entry(callee.as_str()).or_default().extend(cs.iter().map(String::as_str));
        }
    }
    let alpha = 1.0 - confidence;
    // "Unchanged" for totals: not even significant before correction.
    let total_unchanged = |t: &Option<Test>| t.as_ref().is_some_and(|t| !(t.tested && t.p < alpha));
    for r in rows.iter_mut() {
        let t = &r.self_test;
        if !t.significant(confidence) {
            continue;
        }
        let up = t.delta() > 0.0;
        let has_callees = r.base.children_period > r.base.period || r.new.children_period > r.new.period;
        r.status = if has_callees && total_unchanged(&r.children) {
            Status::Shift { peer: None }
        } else if t.base == 0.0 {
            Status::New
        } else if t.new == 0.0 {
            Status::Gone
        } else if up {
            Status::Regressed
        } else {
            Status::Improved
        };
    }
    // (b): pair a regressed callee with an improved caller whose total held.
    // In shares a caller holding (nearly) everything says nothing: its
    // other callees shrink whenever one grows.
    let by_sym: BTreeMap<&str, usize> =
        rows.iter().enumerate().filter_map(|(i, r)| r.base.sym.as_deref().or(r.new.sym.as_deref()).map(|s| (s, i))).collect();
    let mut shifts: Vec<(usize, usize)> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if !r.status.is_regression() {
            continue;
        }
        let Some(sym) = r.base.sym.as_deref().or(r.new.sym.as_deref()) else { continue };
        let gain = r.self_test.delta();
        for caller in callers.get(sym).into_iter().flatten() {
            let Some(&j) = by_sym.get(caller) else { continue };
            let p = &rows[j];
            let whole = p.children.is_some_and(|c| share && c.base.min(c.new) >= 90.0);
            let lost = matches!(p.status, Status::Improved | Status::Gone | Status::Shift { peer: None }) && p.self_test.delta() < 0.0;
            if lost && total_unchanged(&p.children) && !whole && -p.self_test.delta() >= 0.5 * gain {
                shifts.push((i, j));
                break;
            }
        }
    }
    for (i, j) in shifts {
        let name = |k: usize| rows[k].base.sym.clone().or_else(|| rows[k].new.sym.clone());
        let (ni, nj) = (name(i), name(j));
        rows[i].status = Status::Shift { peer: nj };
        rows[j].status = Status::Shift { peer: ni };
    }
}

/// perf diff's order for the computation, then the keys: a total order.
fn sort_rows(rows: &mut [DiffRow], c: Compute) {
    let metric = |r: &DiffRow| -> f64 {
        match c {
            Compute::DeltaAbs => r.self_test.delta().abs(),
            Compute::Delta => r.self_test.delta(),
            Compute::Ratio => r.ratio.unwrap_or(f64::NEG_INFINITY),
            Compute::Wdiff(..) => r.wdiff.map_or(f64::NEG_INFINITY, |w| w as f64),
        }
    };
    rows.sort_by(|a, b| {
        // Rows in both sides first (perf lists baseline-only rows last).
        let both = |r: &DiffRow| r.base.samples > 0 && r.new.samples > 0;
        both(b)
            .cmp(&both(a))
            .then(metric(b).total_cmp(&metric(a)))
            .then(b.baseline_pct.total_cmp(&a.baseline_pct))
            .then_with(|| a.keys.cmp(&b.keys))
    });
}

/// The column of `key` in a row, matched against a --fail-on name.
fn scope_matches(d: &Diff, row: &DiffRow, key: SortKey, name: &str) -> bool {
    let Some(col) = d.sort.iter().position(|k| *k == key) else { return false };
    let Some(v) = row.keys.get(col) else { return false };
    let plain = if key == SortKey::Sym { row.base.sym.as_deref().or(row.new.sym.as_deref()).unwrap_or(v) } else { v };
    match name.strip_suffix('*') {
        Some(prefix) => plain.starts_with(prefix) || v.starts_with(prefix),
        None => plain == name || v == name,
    }
}

fn change_in(t: &Test, unit: Unit, share: bool) -> f64 {
    match unit {
        // Shares are held in percent.
        Unit::Pp if share => t.delta(),
        Unit::Pp => f64::NAN,
        Unit::Percent => t.change_pct(),
    }
}

fn evaluate(d: &mut Diff) -> Result<(), String> {
    let share = d.config.norm == Norm::Share;
    let mut results = Vec::new();
    for f in &d.config.fail_on {
        if let Some((k, _)) = &f.scope {
            if !d.sort.contains(k) {
                return Err(format!("--fail-on '{}' names the key '{}', which --sort does not have", f.text, k.name()));
            }
        }
        if f.unit == Unit::Pp && !share {
            return Err(format!(
                "--fail-on '{}': pp is a change of share; with --normalize {} give the change in %",
                f.text,
                d.config.norm.unit()
            ));
        }
        if f.metric == Metric::Children && !d.has_children {
            return Err(format!("--fail-on '{}': children need call chains in every trace (record with -g)", f.text));
        }
        let conf = f.confidence.unwrap_or(d.config.confidence);
        let mut matches = Vec::new();
        let mut in_scope = 0usize;
        for e in &d.events {
            if f.metric == Metric::Total {
                let Some(t) = &e.total else { continue };
                let x = t.change_pct();
                if f.passes(x) && t.significant(conf) {
                    matches.push(format!("{}: total {:+.2}%", e.name, x));
                }
                continue;
            }
            for r in &e.rows {
                if let Some((k, name)) = &f.scope {
                    if !scope_matches(d, r, *k, name) {
                        continue;
                    }
                }
                in_scope += 1;
                let t = match f.metric {
                    Metric::Children => match &r.children {
                        Some(t) => t,
                        None => continue,
                    },
                    _ => &r.self_test,
                };
                if matches!(r.status, Status::Shift { .. }) && f.metric == Metric::SelfCost {
                    continue;
                }
                let x = change_in(t, f.unit, share);
                if f.passes(x) && t.significant(conf) {
                    let unit = if f.unit == Unit::Pp { "pp" } else { "%" };
                    let x = if f.unit == Unit::Pp { x } else { t.change_pct() };
                    matches.push(format!("{}: {} {:+.2}{unit}", e.name, r.keys.join(" "), x));
                }
            }
        }
        if f.scope.is_some() && in_scope == 0 {
            return Err(format!(
                "--fail-on '{}' names no row in either profile; check the name with `msen report --sort {}`",
                f.text,
                d.sort.iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
            ));
        }
        results.push(FailResult { expr: f.text.clone(), matches });
    }
    d.failed = if d.config.fail_on.is_empty() { d.regressions().next().is_some() } else { results.iter().any(|r| !r.matches.is_empty()) };
    d.fail = results;
    Ok(())
}

/// One side of a memory comparison: per name, a count and the total it is
/// a share of (a line's HITMs of all loads; a function's remote accesses of
/// its local and remote ones).
#[derive(Debug, Clone, Default)]
pub struct Proportions {
    pub path: String,
    pub rows: BTreeMap<String, (u64, u64)>,
}

/// Contended cache lines by name: the line's data object when it has one
/// (stable across runs), else its mapping and address.
pub fn false_share_profile(l: &Loaded, path: &str) -> Result<Proportions, TraceError> {
    use super::false_share::{false_share, Display, FalseShareConfig};
    let fs = false_share(l, &FalseShareConfig { display: Display::Tot, show_all: true, line_size: None })?;
    let total = fs.stats.load.max(1);
    let mut rows = BTreeMap::new();
    for line in &fs.lines {
        let name = match &line.data_symbol {
            Some(s) => s.clone(),
            None => format!("{} 0x{:x}", if line.dso.is_empty() { "[anon]" } else { line.dso.as_str() }, line.address),
        };
        let e = rows.entry(name).or_insert((0u64, total));
        e.0 += Display::Tot.metric(&line.stats);
    }
    Ok(Proportions { path: path.to_string(), rows })
}

/// Remote-access ratio per function.
pub fn numa_profile(l: &Loaded, path: &str) -> Result<Proportions, TraceError> {
    let n = super::numa::numa(l, usize::MAX)?;
    let rows = n.functions.iter().map(|h| (h.name.clone(), (h.acc.remote, h.acc.local + h.acc.remote))).collect();
    Ok(Proportions { path: path.to_string(), rows })
}

/// Compare proportions row by row (`--false-share`, `--numa`): a row
/// regressed when its share grew significantly.
pub fn compare_proportions(
    what: &str,
    column: &str,
    measure: &str,
    base: &[Proportions],
    new: &[Proportions],
    cfg: &DiffConfig,
) -> Result<Diff, String> {
    if base.is_empty() || new.is_empty() {
        return Err("diff needs at least one profile on each side".into());
    }
    if let Some(f) = cfg.fail_on.iter().find(|f| f.scope.is_some() || f.metric != Metric::SelfCost) {
        return Err(format!("--fail-on '{}': {what} takes thresholds on the share itself, as 'self>+1pp'", f.text));
    }
    if cfg.norm != Norm::Share {
        return Err(format!("{what} compares shares; drop --normalize, --per-event and --work"));
    }
    // Rows with something to count on either side (lines with peer
    // accesses only, functions with local accesses only, are not contended).
    let names: BTreeSet<&String> = base.iter().chain(new).flat_map(|p| p.rows.iter().filter(|(_, v)| v.0 > 0).map(|(k, _)| k)).collect();
    let side = |runs: &[Proportions], name: &String| {
        let k = runs.len() as f64;
        let mut values = Vec::new();
        let (mut n, mut t) = (0.0, 0.0);
        for r in runs {
            let (a, b) = r.rows.get(name).copied().unwrap_or((0, 0));
            values.push(if b == 0 { 0.0 } else { a as f64 * 100.0 / b as f64 });
            n += a as f64;
            t += b as f64;
        }
        SideValues { values, n: n / k, total_n: t / k, per_sample: 0.0 }
    };
    let mut rows: Vec<DiffRow> = names
        .into_iter()
        .map(|name| {
            let (sb, sn) = (side(base, name), side(new, name));
            let mut t = test(&sb, &sn, true, cfg.confidence, cfg.min_samples);
            // Absent on one side (no accesses at all): new or gone, once
            // there is enough on the other side to tell.
            if (sb.total_n == 0.0 && sn.n >= cfg.min_samples as f64) || (sn.total_n == 0.0 && sb.n >= cfg.min_samples as f64) {
                (t.p, t.tested) = (0.0, true);
            }
            let counts = |s: &SideValues| Counts { samples: s.n as u64, period: s.n as u64, children_period: s.n as u64, sym: None };
            DiffRow {
                keys: vec![name.clone()],
                base: counts(&sb),
                new: counts(&sn),
                baseline_pct: t.base,
                new_pct: t.new,
                ratio: (sb.n > 0.0 && sn.n > 0.0).then(|| t.new / t.base),
                wdiff: None,
                self_test: t,
                children: None,
                status: Status::Unchanged,
            }
        })
        .collect();
    {
        let mut t: Vec<&mut Test> = rows.iter_mut().map(|r| &mut r.self_test).collect();
        holm(&mut t);
    }
    for r in &mut rows {
        let t = &r.self_test;
        if t.significant(cfg.confidence) {
            r.status = match (t.base == 0.0, t.new == 0.0, t.delta() > 0.0) {
                (true, _, _) => Status::New,
                (_, true, _) => Status::Gone,
                (_, _, true) => Status::Regressed,
                _ => Status::Improved,
            };
        }
    }
    sort_rows(&mut rows, Compute::DeltaAbs);
    let sum = |runs: &[Proportions]| runs.iter().map(|p| p.rows.values().map(|v| v.0).sum::<u64>()).sum::<u64>();
    let mut d = Diff {
        base_paths: base.iter().map(|p| p.path.clone()).collect(),
        new_paths: new.iter().map(|p| p.path.clone()).collect(),
        sort: vec![],
        columns: vec![column.to_string()],
        measure: Some(measure.to_string()),
        has_children: false,
        config: cfg.clone(),
        events: vec![EventDiff { name: what.to_string(), base_samples: sum(base), new_samples: sum(new), total: None, rows }],
        unmatched_events: vec![],
        fail: vec![],
        failed: false,
    };
    evaluate(&mut d)?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_on_grammar() {
        let f = FailOn::parse("self>+2pp").unwrap();
        assert_eq!((f.metric, f.op, f.value, f.unit, f.scope), (Metric::SelfCost, Op::Gt, 2.0, Unit::Pp, None));
        let f = FailOn::parse("sym:ns::parse_json:children>=10%@99%").unwrap();
        assert_eq!(f.scope, Some((SortKey::Sym, "ns::parse_json".into())));
        assert_eq!((f.metric, f.op, f.unit, f.confidence), (Metric::Children, Op::Ge, Unit::Percent, Some(0.99)));
        let f = FailOn::parse("total<-5%@0.9").unwrap();
        assert_eq!((f.metric, f.op, f.value, f.confidence), (Metric::Total, Op::Lt, -5.0, Some(0.9)));
        for bad in ["self", "self>2", "cost>1pp", "sym:>1pp", "total>1pp", "self>1pp@2", "xx:y>1%", "self>abc%"] {
            assert!(FailOn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn holm_is_monotone_and_skips_untested() {
        let mut a = [0.01, 0.04, 0.03, 0.5].map(|p| Test { p, tested: true, ..Default::default() });
        a[3].tested = false;
        let mut r: Vec<&mut Test> = a.iter_mut().collect();
        holm(&mut r);
        assert_eq!([a[0].p_adj, a[2].p_adj, a[1].p_adj], [0.03, 0.06, 0.06]);
        assert_eq!(a[3].p_adj, 1.0, "an untested row is never significant");
    }

    #[test]
    fn binomial_test_separates_real_from_noise() {
        let side = |n: f64, total: f64| SideValues { values: vec![n / total * 100.0], n, total_n: total, per_sample: 0.0 };
        // 30% -> 32% of 10,000 samples: z about 3.1.
        let t = test(&side(3000.0, 10000.0), &side(3200.0, 10000.0), true, 0.99, 20);
        assert!(t.p < 0.01 && t.p > 0.0001, "{t:?}");
        // 30% -> 30.5%: noise.
        let t = test(&side(3000.0, 10000.0), &side(3050.0, 10000.0), true, 0.99, 20);
        assert!(t.p > 0.3, "{t:?}");
        // Below the floor: never tested.
        assert!(!test(&side(2.0, 100.0), &side(9.0, 100.0), true, 0.99, 20).tested);
    }

    #[test]
    fn repeated_runs_use_their_variance() {
        let s = |v: &[f64]| SideValues { values: v.to_vec(), n: 1000.0, total_n: 10000.0, per_sample: 0.0 };
        let t = test(&s(&[10.0, 10.2, 9.9, 10.1]), &s(&[12.0, 12.1, 11.8, 12.2]), true, 0.99, 20);
        assert!(t.p < 1e-4, "{t:?}");
        let t = test(&s(&[10.0, 12.0, 9.0, 11.0]), &s(&[10.5, 11.5, 9.5, 12.0]), true, 0.99, 20);
        assert!(t.p > 0.3, "{t:?}");
    }
}
