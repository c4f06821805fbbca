//! Getting data out of msen: perf.data (for perf, hotspot, samply, and for
//! checking msen against stock perf), and profiles for the viewers people
//! already use: pprof, the Firefox Profiler, speedscope. ClickHouse and
//! Parquet come with their issue.

pub mod firefox;
pub mod perf_data;
pub mod pprof;
pub mod speedscope;
