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
//!
//! The pages are encoded here through polars-parquet's arrow writer, not
//! polars' `ParquetWriter`, for two costs that one chooses per column:
//! - polars tries a dictionary for every number column, hashing each value
//!   of high-cardinality ones (times, addresses) before giving up; here
//!   the encoding follows the column type: times delta-encoded, small
//!   integers dictionary-encoded, the rest plain (zstd finds the repeats);
//! - a Categorical column goes to arrow through a hash map from global to
//!   local codes; here a names column's global codes are renumbered per
//!   row group through a plain array (names are few, rows many).
//!
//! The columns of a row group are encoded and compressed in parallel.

use super::frames;
use super::table::{self, Table};
use crate::analyze::loaded::Loaded;
use polars::prelude::*;
use polars_arrow::array::{Array, DictionaryArray, PrimitiveArray, Utf8ViewArray};
use polars_arrow::datatypes::{ArrowDataType, ArrowSchema};
use polars_parquet::write::{
    array_to_columns, compress, fallible_streaming_iterator, get_dtype_encoding, to_parquet_schema, CompressedPage, CompressionOptions,
    DynIter, DynStreamingIterator, Encoding, FileWriter, ParquetType, StatisticsOptions, Version, WriteOptions, ZstdLevel,
};
use rayon::prelude::*;
use std::io::BufWriter;
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

fn io_err(path: &Path, e: std::io::Error) -> PolarsError {
    PolarsError::ComputeError(format!("{}: {e}", path.display()).into())
}

/// How a column's values are laid out in its pages.
fn encodings_of(dtype: &ArrowDataType) -> Vec<Encoding> {
    match dtype {
        // Keys into the row group's own names.
        ArrowDataType::Dictionary(..) => vec![Encoding::RleDictionary],
        // Times grow: their deltas are small.
        ArrowDataType::Timestamp(..) => vec![Encoding::DeltaBinaryPacked],
        // Few values by their width: the dictionary is an array lookup.
        ArrowDataType::UInt8 | ArrowDataType::UInt16 => vec![Encoding::RleDictionary],
        ArrowDataType::UInt32 | ArrowDataType::UInt64 | ArrowDataType::Int64 | ArrowDataType::Float64 | ArrowDataType::Date32 => {
            vec![Encoding::Plain]
        }
        // Lists and strings: polars' choice per leaf.
        other => get_dtype_encoding(other),
    }
}

/// One table's file while it is written.
struct TableFile {
    table: &'static Table,
    tmp: PathBuf,
    path: PathBuf,
    w: FileWriter<BufWriter<std::fs::File>>,
    schema: ArrowSchema,
    fields: Vec<ParquetType>,
    encodings: Vec<Vec<Encoding>>,
    options: WriteOptions,
    /// Reused per names column: local code + 1 of a global code (0: unseen).
    remap: Vec<u32>,
}

impl TableFile {
    fn create(t: &'static Table, dir: &Path, capture_id: &str) -> PolarsResult<TableFile> {
        let d = dir.join(t.name);
        std::fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
        let path = d.join(format!("{capture_id}.parquet"));
        let tmp = d.join(format!(".{capture_id}.parquet.tmp"));
        let f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        let schema = frames::schema(t, &|_| true).to_arrow(CompatLevel::newest());
        let parquet = to_parquet_schema(&schema)?;
        let fields = parquet.fields().to_vec();
        let encodings = schema.iter_values().map(|f| encodings_of(&f.dtype)).collect();
        let options = WriteOptions {
            statistics: StatisticsOptions::default(),
            // Level 1, as the ClickHouse tables' ZSTD(1): the export's
            // cost is CPU, and level 3 (zstd's default) spends more of it.
            compression: CompressionOptions::Zstd(Some(ZstdLevel::try_new(1)?)),
            version: Version::V1,
            data_page_size: None,
        };
        let w = FileWriter::new_with_parquet_schema(BufWriter::with_capacity(1 << 20, f), schema.clone(), parquet, options);
        Ok(TableFile { table: t, tmp, path, w, schema, fields, encodings, options, remap: Vec::new() })
    }

    /// Write `df` (the table's columns in order) as row groups.
    fn write(&mut self, df: &DataFrame) -> PolarsResult<()> {
        let mut at = 0;
        while at < df.height() {
            let n = ROW_GROUP_ROWS.min(df.height() - at);
            self.row_group(&df.slice(at as i64, n))?;
            at += n;
        }
        Ok(())
    }

    fn row_group(&mut self, df: &DataFrame) -> PolarsResult<()> {
        let cols = df.columns();
        if cols.len() != self.fields.len() {
            return Err(PolarsError::ComputeError(
                format!("{}: a frame of {} columns for {}", self.table.name, cols.len(), self.fields.len()).into(),
            ));
        }
        // Arrays first (the names' renumbering shares one scratch array),
        // then pages, compressed, a column per task.
        let mut arrays: Vec<Box<dyn Array>> = Vec::with_capacity(cols.len());
        for (c, f) in cols.iter().zip(self.schema.iter_values()) {
            let s = c.as_materialized_series();
            arrays.push(match s.dtype() {
                DataType::Categorical(..) => local_names(s, &f.dtype, &mut self.remap)?,
                // One array of the row group's rows (the frame's blocks are chunks).
                _ => s.rechunk().to_arrow(0, CompatLevel::newest()),
            });
        }
        let options = self.options;
        let pages: Vec<Vec<Vec<CompressedPage>>> = arrays
            .par_iter()
            .zip(&self.fields)
            .zip(&self.encodings)
            .map(|((a, ty), enc)| {
                array_to_columns(a.as_ref(), ty.clone(), options, enc)?
                    .into_iter()
                    .map(|leaf| {
                        leaf.map(|p| compress(p?, Vec::new(), options.compression).map_err(PolarsError::from))
                            .collect::<PolarsResult<Vec<CompressedPage>>>()
                    })
                    .collect::<PolarsResult<Vec<_>>>()
            })
            .collect::<PolarsResult<_>>()?;
        let leaves = pages
            .iter()
            .flatten()
            .map(|leaf| Ok(DynStreamingIterator::new(fallible_streaming_iterator::convert(leaf.iter().map(PolarsResult::Ok)))));
        self.w.write(df.height() as u64, DynIter::new(leaves))
    }

    /// The footer, then the file under its final name; on failure the
    /// half-written file is removed.
    fn finish(mut self) -> PolarsResult<(PathBuf, u64)> {
        let done = self.w.end(None).and_then(|_| {
            let f = self.w.into_inner().into_inner().map_err(|e| io_err(&self.tmp, e.into_error()))?;
            f.sync_all().map_err(|e| io_err(&self.tmp, e))?;
            std::fs::rename(&self.tmp, &self.path).map_err(|e| io_err(&self.path, e))
        });
        if let Err(e) = done {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(e);
        }
        let bytes = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        Ok((self.path, bytes))
    }
}

/// A names column (global Categorical codes) as a dictionary of the
/// names it uses, numbered in order of first use.
fn local_names(s: &Series, dtype: &ArrowDataType, remap: &mut Vec<u32>) -> PolarsResult<Box<dyn Array>> {
    let codes = s.cat32()?.physical();
    let mut keys: Vec<u32> = Vec::with_capacity(s.len());
    let mut used: Vec<u32> = Vec::new();
    for arr in codes.downcast_iter() {
        for &g in arr.values().iter() {
            let gi = g as usize;
            if gi >= remap.len() {
                remap.resize(gi + 1, 0);
            }
            let k = match remap[gi] {
                0 => {
                    used.push(g);
                    remap[gi] = used.len() as u32;
                    used.len() as u32 - 1
                }
                k => k - 1,
            };
            keys.push(k);
        }
    }
    for &g in &used {
        remap[g as usize] = 0;
    }
    let values = Utf8ViewArray::from_slice_values(used.iter().map(|&g| frames::name_of(g)).collect::<Vec<&str>>());
    Ok(DictionaryArray::<u32>::try_new(dtype.clone(), PrimitiveArray::from_vec(keys), values.boxed())?.boxed())
}

/// Write every table of one capture under `dir`.
pub fn export_capture(l: &Loaded, trace_path: &Path, capture_id: &str, dir: &Path, max_rows: u64) -> PolarsResult<ParquetReport> {
    let mut outs: Vec<TableFile> = Vec::new();
    let counts = match write_tables(&mut outs, l, trace_path, capture_id, dir, max_rows) {
        Ok(c) => c,
        Err(e) => {
            for o in &outs {
                let _ = std::fs::remove_file(&o.tmp);
            }
            return Err(e);
        }
    };
    let mut rep = ParquetReport { capture_id: capture_id.to_string(), counts, files: Vec::new() };
    for o in outs {
        let name = o.table.name;
        let (path, bytes) = o.finish()?;
        rep.files.push((name, path, bytes));
    }
    Ok(rep)
}

/// Create the tables' files in `outs` (those created so far stay there
/// when one fails, for the caller to remove) and write the capture's rows.
fn write_tables(
    outs: &mut Vec<TableFile>,
    l: &Loaded,
    trace_path: &Path,
    capture_id: &str,
    dir: &Path,
    max_rows: u64,
) -> PolarsResult<super::rows::CaptureCounts> {
    for t in table::ALL {
        outs.push(TableFile::create(t, dir, capture_id)?);
    }
    frames::for_each_frame(l, capture_id, &trace_path.display().to_string(), max_rows, &|_, _| true, &|_| true, &mut |t, df| match outs
        .iter_mut()
        .find(|o| o.table.name == t.name)
    {
        Some(o) if df.height() > 0 => o.write(&df),
        _ => Ok(()),
    })
}
