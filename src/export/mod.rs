//! Getting data out of msen: perf.data (for perf, hotspot, samply, and for
//! checking msen against stock perf), and profiles for the viewers people
//! already use: pprof, the Firefox Profiler, speedscope; and ClickHouse
//! tables for fleets (table: the one table model; rows: a capture as rows;
//! clickhouse: the exactly-once HTTP exporter; follow: the same, from a
//! capture while it is written); with the "polars" feature, frames (the
//! tables as polars DataFrames) and parquet.

pub mod clickhouse;
pub mod firefox;
pub mod follow;
#[cfg(feature = "polars")]
pub mod frames;
#[cfg(feature = "polars")]
pub mod parquet;
pub mod perf_data;
pub mod pprof;
pub mod rows;
pub mod speedscope;
pub mod table;
