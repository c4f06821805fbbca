//! `msen export --parquet DIR TRACE...` (cargo feature "polars"): the
//! ClickHouse tables as Parquet files, `DIR/<table>/<capture_id>.parquet`,
//! one file per table and capture (a directory per table reads as one
//! table in DuckDB, polars and pyarrow: `read_parquet('DIR/ms_raw_samples/*.parquet')`).
//!
//! zstd pages, names dictionary-encoded (Categorical), times as
//! Timestamp(ns), stack frames as lists; row groups of 256Ki rows: large
//! enough for column compression and statistics, small enough for
//! parallel scans. Each file is written beside its final name and renamed
//! when complete, so a reader never sees half a table, and exporting a
//! capture again replaces its files.

use super::frames;
use super::table::{self, Table};
use crate::analyze::loaded::Loaded;
use polars::prelude::*;
use std::path::{Path, PathBuf};

pub const ROW_GROUP_ROWS: usize = 1 << 18;

/// What one capture's export wrote.
#[derive(Debug, Default)]
pub struct ParquetReport {
    pub capture_id: String,
    pub counts: super::rows::CaptureCounts,
    /// (table, file, bytes)
    pub files: Vec<(&'static str, PathBuf, u64)>,
}

struct Out {
    tmp: PathBuf,
    path: PathBuf,
    w: polars::io::parquet::write::BatchedWriter<std::fs::File>,
}

fn io_err(path: &Path, e: std::io::Error) -> PolarsError {
    PolarsError::ComputeError(format!("{}: {e}", path.display()).into())
}

/// Write every table of one capture under `dir`.
pub fn export_capture(l: &Loaded, trace_path: &Path, capture_id: &str, dir: &Path, max_rows: u64) -> PolarsResult<ParquetReport> {
    let mut outs: Vec<(&'static Table, Out)> = Vec::new();
    for t in table::ALL {
        let d = dir.join(t.name);
        std::fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
        let path = d.join(format!("{capture_id}.parquet"));
        let tmp = d.join(format!(".{capture_id}.parquet.tmp"));
        let f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        let schema = frames::schema(t, &|_| true);
        let w = ParquetWriter::new(f)
            .with_compression(ParquetCompression::Zstd(None))
            .with_row_group_size(Some(ROW_GROUP_ROWS))
            .batched(&schema)?;
        outs.push((t, Out { tmp, path, w }));
    }
    let written = frames::for_each_frame(
        l,
        capture_id,
        &trace_path.display().to_string(),
        max_rows,
        &|_, _| true,
        &|_| true,
        &mut |t, df| match outs.iter_mut().find(|(x, _)| x.name == t.name) {
            Some((_, o)) if df.height() > 0 => o.w.write_batch(&df),
            _ => Ok(()),
        },
    );
    let counts = match written {
        Ok(c) => c,
        Err(e) => {
            for (_, o) in &outs {
                let _ = std::fs::remove_file(&o.tmp);
            }
            return Err(e);
        }
    };
    let mut rep = ParquetReport { capture_id: capture_id.to_string(), counts, files: Vec::new() };
    for (t, o) in outs {
        o.w.finish()?;
        std::fs::rename(&o.tmp, &o.path).map_err(|e| io_err(&o.path, e))?;
        let bytes = std::fs::metadata(&o.path).map(|m| m.len()).unwrap_or(0);
        rep.files.push((t.name, o.path, bytes));
    }
    Ok(rep)
}
