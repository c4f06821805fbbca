//! Getting data out of msen: perf.data (for perf, hotspot, samply, and for
//! checking msen against stock perf). ClickHouse and Parquet come with their
//! issue.

pub mod perf_data;
