//! msen: a perf-style record-and-analyze toolchain for micro-architectural
//! sampling on Linux. See DESIGN.md for the architecture and
//! formats/trace-format.md for the trace format.

pub mod agent;
pub mod analyze;
pub mod cli;
pub mod export;
pub mod flow;
pub mod import;
pub mod output;
pub mod perf;
pub mod record;
/// `msen sql` (cargo feature "polars").
#[cfg(feature = "polars")]
pub mod sql;
pub mod symbolize;
pub mod trace;
