//! Phase timings on stderr when `MSEN_TIMING` is set: where an analysis
//! spends its wall time, for benchmarks and profiling, without a profiler.

use std::sync::OnceLock;
use std::time::Instant;

fn start() -> Option<Instant> {
    static START: OnceLock<Option<Instant>> = OnceLock::new();
    *START.get_or_init(|| std::env::var_os("MSEN_TIMING").map(|_| Instant::now()))
}

/// Print `what` with the milliseconds since the first mark (nothing unless
/// `MSEN_TIMING` is set).
pub fn mark(what: &str) {
    if let Some(t0) = start() {
        eprintln!("[timing] {:8.1} ms  {what}", t0.elapsed().as_secs_f64() * 1e3);
    }
}
