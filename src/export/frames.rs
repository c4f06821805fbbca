//! A capture's export tables as polars DataFrames (cargo feature
//! "polars"), for `export --parquet` and `msen sql`.
//!
//! The rows are the ClickHouse exporter's own (src/export/rows.rs,
//! RowBinary in the table model's column order), decoded column by column
//! through the table model (src/export/table.rs): one definition of every
//! column serves ClickHouse, Parquet and SQL, so a column added once
//! appears in all three with the same values. Types: names are
//! Categorical (dictionary-encoded in Parquet), times Datetime(ns),
//! dates Date, arrays List.

use super::rows::{Needs, RowBuilder};
use super::table::{self, Sink, Table, Type};
use crate::analyze::loaded::Loaded;
use polars::prelude::*;
use rayon::prelude::*;

/// Typed columns of one table (those wanted), filled value by value in
/// column order: the row builders write samples straight into it, and
/// RowBinary rows (stacks, rollups, flows, ...) are replayed into it.
pub struct ColumnSink {
    table: &'static Table,
    cols: Vec<Option<Col>>,
    at: usize,
    rows: u64,
}

impl std::fmt::Debug for ColumnSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnSink").field("table", &self.table.name).field("rows", &self.rows).finish_non_exhaustive()
    }
}

/// A names column: codes in polars' global categories. `by_id` caches
/// the code of a writer-numbered name, `by_str` of any other string, so a
/// name is looked up in the global mapping once per sink.
#[derive(Default)]
struct Names {
    codes: Vec<u32>,
    by_id: Vec<u32>,
    by_str: rustc_hash::FxHashMap<Box<str>, u32>,
}

const NO_CODE: u32 = u32::MAX;

/// The global categories' mapping, held for the process: polars keeps it
/// only while someone does, and every names column's codes refer to it.
static NAMES: std::sync::LazyLock<Arc<polars::prelude::CategoricalMapping>> = std::sync::LazyLock::new(|| Categories::global().mapping());

/// The name a names column's code stands for ("" for a code no sink made).
pub fn name_of(code: u32) -> &'static str {
    NAMES.cat_to_str(code).unwrap_or("")
}

impl Names {
    fn code(&mut self, s: &str) -> u32 {
        if let Some(&c) = self.by_str.get(s) {
            return c;
        }
        // The global mapping only fails past 2^32 distinct names.
        let c = NAMES.insert_cat(s).unwrap_or(0);
        self.by_str.insert(s.into(), c);
        c
    }
    fn push_id(&mut self, id: u32, s: &str) {
        let i = id as usize;
        if i >= self.by_id.len() {
            if i > 1 << 24 {
                let c = self.code(s);
                self.codes.push(c);
                return;
            }
            self.by_id.resize(i + 1, NO_CODE);
        }
        let c = match self.by_id[i] {
            NO_CODE => {
                let c = self.code(s);
                self.by_id[i] = c;
                c
            }
            c => c,
        };
        self.codes.push(c);
    }
}

enum Col {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Name(Names),
    Text(StringChunkedBuilder),
    Date(Vec<i32>),
    Time(Vec<i64>),
    ListU64(ListPrimitiveChunkedBuilder<UInt64Type>),
    ListStr(ListStringChunkedBuilder),
}

impl ColumnSink {
    /// Columns of `t` that `keep` accepts.
    pub fn new(t: &'static Table, rows: usize, keep: &dyn Fn(&str) -> bool) -> ColumnSink {
        let cols = t
            .columns
            .iter()
            .map(|c| {
                keep(c.name).then(|| match c.ty {
                    Type::U8 => Col::U8(Vec::with_capacity(rows)),
                    Type::U16 => Col::U16(Vec::with_capacity(rows)),
                    Type::U32 => Col::U32(Vec::with_capacity(rows)),
                    Type::U64 => Col::U64(Vec::with_capacity(rows)),
                    Type::I64 => Col::I64(Vec::with_capacity(rows)),
                    Type::F64 => Col::F64(Vec::with_capacity(rows)),
                    Type::Name => Col::Name(Names { codes: Vec::with_capacity(rows), ..Default::default() }),
                    Type::Text => Col::Text(StringChunkedBuilder::new(c.name.into(), rows)),
                    Type::Date => Col::Date(Vec::with_capacity(rows)),
                    Type::Time => Col::Time(Vec::with_capacity(rows)),
                    Type::ArrayU64 => Col::ListU64(ListPrimitiveChunkedBuilder::new(c.name.into(), rows, rows * 8, DataType::UInt64)),
                    Type::ArrayName => Col::ListStr(ListStringChunkedBuilder::new(c.name.into(), rows, rows * 8)),
                })
            })
            .collect();
        ColumnSink { table: t, cols, at: 0, rows: 0 }
    }

    #[inline]
    fn next(&mut self) -> Option<&mut Col> {
        let i = self.at;
        self.at += 1;
        self.cols.get_mut(i).and_then(Option::as_mut)
    }

    /// The columns as a frame.
    pub fn finish(self) -> PolarsResult<DataFrame> {
        let mut out: Vec<Column> = Vec::new();
        for (c, b) in self.table.columns.iter().zip(self.cols) {
            let name: PlSmallStr = c.name.into();
            let s = match b {
                None => continue,
                // from_vec takes the Vec's buffer (Series::new copies it).
                Some(Col::U8(v)) => UInt8Chunked::from_vec(name, v).into_series(),
                Some(Col::U16(v)) => UInt16Chunked::from_vec(name, v).into_series(),
                Some(Col::U32(v)) => UInt32Chunked::from_vec(name, v).into_series(),
                Some(Col::U64(v)) => UInt64Chunked::from_vec(name, v).into_series(),
                Some(Col::I64(v)) => Int64Chunked::from_vec(name, v).into_series(),
                Some(Col::F64(v)) => Float64Chunked::from_vec(name, v).into_series(),
                Some(Col::Name(n)) => {
                    // SAFETY: every code is one NAMES.insert_cat returned (or 0
                    // after a failed insert, past 2^32 names), so the global
                    // mapping holds it; the checked constructor looks up every
                    // row's code again.
                    unsafe { Categorical32Chunked::from_cats_and_dtype_unchecked(UInt32Chunked::from_vec(name, n.codes), dtype(c.ty)) }
                        .into_series()
                }
                Some(Col::Text(b)) => b.finish().into_series(),
                Some(Col::Date(v)) => Int32Chunked::from_vec(name, v).into_series().cast(&dtype(c.ty))?,
                Some(Col::Time(v)) => Int64Chunked::from_vec(name, v).into_series().cast(&dtype(c.ty))?,
                Some(Col::ListU64(mut b)) => b.finish().into_series(),
                Some(Col::ListStr(mut b)) => b.finish().into_series().cast(&dtype(c.ty))?,
            };
            out.push(s.into_column());
        }
        DataFrame::new_infer_height(out)
    }
}

impl Sink for ColumnSink {
    #[inline]
    fn u8(&mut self, v: u8) -> &mut Self {
        if let Some(Col::U8(c)) = self.next() {
            c.push(v);
        }
        self
    }
    #[inline]
    fn u16(&mut self, v: u16) -> &mut Self {
        if let Some(Col::U16(c)) = self.next() {
            c.push(v);
        }
        self
    }
    #[inline]
    fn u32(&mut self, v: u32) -> &mut Self {
        if let Some(Col::U32(c)) = self.next() {
            c.push(v);
        }
        self
    }
    #[inline]
    fn u64(&mut self, v: u64) -> &mut Self {
        match self.next() {
            Some(Col::U64(c)) => c.push(v),
            Some(Col::I64(c)) => c.push(v as i64),
            Some(Col::F64(c)) => c.push(f64::from_bits(v)),
            _ => {}
        }
        self
    }
    #[inline]
    fn time(&mut self, ns: u64) -> &mut Self {
        if let Some(Col::Time(c)) = self.next() {
            c.push(ns.min(i64::MAX as u64) as i64);
        }
        self
    }
    #[inline]
    fn date(&mut self, days: u16) -> &mut Self {
        if let Some(Col::Date(c)) = self.next() {
            c.push(i32::from(days));
        }
        self
    }
    #[inline]
    fn str(&mut self, s: &str) -> &mut Self {
        match self.next() {
            Some(Col::Name(n)) => {
                let c = n.code(s);
                n.codes.push(c);
            }
            Some(Col::Text(b)) => b.append_value(s),
            _ => {}
        }
        self
    }
    #[inline]
    fn name(&mut self, id: u32, s: &str) -> &mut Self {
        match self.next() {
            Some(Col::Name(n)) => n.push_id(id, s),
            Some(Col::Text(b)) => b.append_value(s),
            _ => {}
        }
        self
    }
    #[inline]
    fn u64s(&mut self, v: &[u64]) -> &mut Self {
        if let Some(Col::ListU64(b)) = self.next() {
            b.append_slice(v);
        }
        self
    }
    #[inline]
    fn strs<'a>(&mut self, v: impl ExactSizeIterator<Item = &'a str>) -> &mut Self {
        if let Some(Col::ListStr(b)) = self.next() {
            b.append_values_iter(v);
        }
        self
    }
    #[inline]
    fn end_row(&mut self) {
        debug_assert_eq!(self.at, self.table.columns.len(), "a row of {} wrote {} values", self.table.name, self.at);
        self.at = 0;
        self.rows += 1;
    }
    #[inline]
    fn rows(&self) -> u64 {
        self.rows
    }
}

/// A RowBinary reader (ClickHouse's layout: little-endian numbers,
/// LEB128-prefixed strings and arrays).
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

fn corrupt(what: &str) -> PolarsError {
    PolarsError::ComputeError(format!("msen: the rows of a table are cut short reading {what} (a bug in msen)").into())
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> PolarsResult<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| corrupt(what))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn fixed<const N: usize>(&mut self, what: &str) -> PolarsResult<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn leb(&mut self, what: &str) -> PolarsResult<usize> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.take(1, what)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return usize::try_from(v).map_err(|_| corrupt(what));
            }
        }
        Err(corrupt(what))
    }
    fn str(&mut self, what: &str) -> PolarsResult<&'a str> {
        let n = self.leb(what)?;
        std::str::from_utf8(self.take(n, what)?).map_err(|_| corrupt(what))
    }
}

/// Replay RowBinary rows of the sink's table into it.
fn replay(sink: &mut ColumnSink, bytes: &[u8]) -> PolarsResult<()> {
    let t = sink.table;
    let mut r = Reader { b: bytes, at: 0 };
    let mut list_u64: Vec<u64> = Vec::new();
    let mut list_str: Vec<&str> = Vec::new();
    while r.at < bytes.len() {
        for c in t.columns {
            let what = c.name;
            match c.ty {
                Type::U8 => drop(sink.u8(r.fixed::<1>(what)?[0])),
                Type::U16 => drop(sink.u16(u16::from_le_bytes(r.fixed(what)?))),
                Type::U32 => drop(sink.u32(u32::from_le_bytes(r.fixed(what)?))),
                Type::U64 | Type::I64 | Type::F64 => drop(sink.u64(u64::from_le_bytes(r.fixed(what)?))),
                Type::Time => drop(sink.time(u64::from_le_bytes(r.fixed(what)?))),
                Type::Date => drop(sink.date(u16::from_le_bytes(r.fixed(what)?))),
                Type::Name | Type::Text => drop(sink.str(r.str(what)?)),
                Type::ArrayU64 => {
                    let n = r.leb(what)?;
                    list_u64.clear();
                    for _ in 0..n {
                        list_u64.push(u64::from_le_bytes(r.fixed(what)?));
                    }
                    sink.u64s(&list_u64);
                }
                Type::ArrayName => {
                    let n = r.leb(what)?;
                    list_str.clear();
                    for _ in 0..n {
                        list_str.push(r.str(what)?);
                    }
                    sink.strs(list_str.iter().copied());
                }
            }
        }
        sink.end_row();
    }
    Ok(())
}

/// Names (symbols, objects, commands, events): Categorical over polars'
/// global categories, so frames of several traces concatenate and
/// compare, and Parquet stores them dictionary-encoded.
fn name_dtype() -> DataType {
    DataType::from_categories(Categories::global())
}

/// The polars type of a column type (Parquet's follows from it).
fn dtype(ty: Type) -> DataType {
    match ty {
        Type::U8 => DataType::UInt8,
        Type::U16 => DataType::UInt16,
        Type::U32 => DataType::UInt32,
        Type::U64 => DataType::UInt64,
        Type::I64 => DataType::Int64,
        Type::F64 => DataType::Float64,
        Type::Name => name_dtype(),
        Type::Text => DataType::String,
        Type::Date => DataType::Date,
        Type::Time => DataType::Datetime(TimeUnit::Nanoseconds, None),
        Type::ArrayU64 => DataType::List(Box::new(DataType::UInt64)),
        Type::ArrayName => DataType::List(Box::new(name_dtype())),
    }
}

/// One table's polars schema (the columns `keep` accepts).
pub fn schema(t: &Table, keep: &dyn Fn(&str) -> bool) -> Schema {
    t.columns.iter().filter(|c| keep(c.name)).map(|c| Field::new(c.name.into(), dtype(c.ty))).collect()
}

/// Decode RowBinary pieces of `t` into one frame of the kept columns.
pub fn frame(t: &'static Table, pieces: &[&[u8]], rows: u64, keep: &dyn Fn(&str) -> bool) -> PolarsResult<DataFrame> {
    let mut sink = ColumnSink::new(t, rows as usize, keep);
    for p in pieces {
        replay(&mut sink, p)?;
    }
    sink.finish()
}

fn trace_err(e: crate::trace::TraceError) -> PolarsError {
    PolarsError::ComputeError(e.to_string().into())
}

/// Every table of a capture, a batch of trace blocks at a time: `each`
/// gets (table, frame) for the samples, stacks and rollups of each batch,
/// then the flows, data objects and the capture row. Memory is bounded
/// by one batch (`max_rows` samples).
pub fn for_each_frame(
    l: &Loaded,
    capture_id: &str,
    trace_path: &str,
    max_rows: u64,
    keep: &(dyn Fn(&Table, &str) -> bool + Sync),
    want: &(dyn Fn(&Table) -> bool + Sync),
    each: &mut (dyn FnMut(&'static Table, DataFrame) -> PolarsResult<()> + Send),
) -> PolarsResult<super::rows::CaptureCounts> {
    // `each` (a Parquet writer's encoding and compression) runs on its own
    // thread, so one batch is written while the next is built; in order.
    std::thread::scope(|sc| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(&'static Table, DataFrame)>(1);
        let writer = sc.spawn(move || -> PolarsResult<()> {
            for (t, df) in rx {
                each(t, df)?;
            }
            Ok(())
        });
        let send = |t: &'static Table, df: DataFrame| {
            // A closed channel: the writer failed; its error is the one reported.
            tx.send((t, df)).map_err(|_| PolarsError::ComputeError("the writer stopped".into()))
        };
        let built = build_frames(l, capture_id, trace_path, max_rows, keep, want, &send);
        // Closing the channel ends the writer's loop.
        drop(tx);
        let written = writer.join().unwrap_or_else(|_| Err(PolarsError::ComputeError("the writer thread panicked".into())));
        match (built, written) {
            (_, Err(e)) => Err(e),
            (r, Ok(())) => r,
        }
    })
}

fn build_frames(
    l: &Loaded,
    capture_id: &str,
    trace_path: &str,
    max_rows: u64,
    keep: &(dyn Fn(&Table, &str) -> bool + Sync),
    want: &(dyn Fn(&Table) -> bool + Sync),
    each: &dyn Fn(&'static Table, DataFrame) -> PolarsResult<()>,
) -> PolarsResult<super::rows::CaptureCounts> {
    let only_samples =
        !(want(&table::STACKS) || want(&table::ROLLUP) || want(&table::CAPTURES) || want(&table::FLOWS) || want(&table::OBJECTS));
    let needs = if only_samples { Needs::of_sample_columns(&|c| keep(&table::SAMPLES, c)) } else { Needs::ALL };
    let mut b = RowBuilder::new(l, capture_id.to_string()).needing(needs);
    let mut counts = super::rows::CaptureCounts::default();
    let per_block = want(&table::SAMPLES) || want(&table::STACKS) || want(&table::ROLLUP) || want(&table::CAPTURES);
    let keep_samples = |c: &str| want(&table::SAMPLES) && keep(&table::SAMPLES, c);
    if per_block {
        for plan in b.plan(max_rows, 0) {
            let mut batch = b.batch_into(&plan, &|n| ColumnSink::new(&table::SAMPLES, n, &keep_samples)).map_err(trace_err)?;
            counts.stacks += batch.stacks.len() as u64;
            for r in &batch.blocks {
                counts.samples += r.samples.rows();
                counts.rollups += r.rollup.rows;
            }
            if want(&table::STACKS) {
                let pieces: Vec<&[u8]> = batch.stacks.iter().map(|(_, r)| &r[..]).collect();
                let n = batch.stacks.len() as u64;
                each(&table::STACKS, frame(&table::STACKS, &pieces, n, &|c| keep(&table::STACKS, c))?)?;
            }
            if want(&table::ROLLUP) {
                let pieces: Vec<&[u8]> = batch.blocks.iter().map(|r| &r.rollup.buf[..]).collect();
                let n = batch.blocks.iter().map(|r| r.rollup.rows).sum();
                each(&table::ROLLUP, frame(&table::ROLLUP, &pieces, n, &|c| keep(&table::ROLLUP, c))?)?;
            }
            b.commit(&mut batch);
            if want(&table::SAMPLES) {
                let dfs: Vec<DataFrame> = batch.blocks.into_par_iter().map(|r| r.samples.finish()).collect::<PolarsResult<_>>()?;
                each(&table::SAMPLES, concat_frames(dfs)?)?;
            }
        }
    }
    let flows = b.flows();
    let objects = b.objects();
    counts.flows = flows.rows;
    counts.objects = objects.rows;
    for (t, rows) in [(&table::FLOWS, flows), (&table::OBJECTS, objects), (&table::CAPTURES, b.capture(&counts, trace_path))] {
        if want(t) {
            each(t, frame(t, &[&rows.buf[..]], rows.rows, &|c| keep(t, c))?)?;
        }
    }
    Ok(counts)
}

/// Frames of one table stacked in order (an empty table for none). The
/// columns keep the frames' chunks: the Parquet writer copies each row
/// group into one array anyway, and polars' operators take chunked
/// columns, so a copy of every column here would be one too many.
pub fn concat_frames(mut v: Vec<DataFrame>) -> PolarsResult<DataFrame> {
    if v.is_empty() {
        return Ok(DataFrame::empty());
    }
    let mut first = v.remove(0);
    for df in &v {
        first.vstack_mut(df)?;
    }
    Ok(first)
}
