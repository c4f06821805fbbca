//! `msen sql "QUERY" -i TRACE [-i TRACE ...]` (cargo feature "polars"):
//! polars SQL over the export tables as views of the traces.
//!
//! Each table (ms_raw_samples, ms_stack_traces, ms_flow_rollup, ms_flows,
//! ms_data_objects, ms_captures; short names samples, stacks, rollup,
//! flows, objects, captures) is a lazy scan of every input, built from
//! the traces only when the query reads it and only for the columns it
//! reads (projection pushdown), with a `capture` column naming the input.
//! The rows are the exporters' (src/export/rows.rs), so a query here, a
//! query in ClickHouse and a query over the Parquet files agree.

use crate::analyze::loaded::{LoadOptions, Loaded};
use crate::export::frames;
use crate::export::table::{self, Table};
use polars::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;

/// The names a query may use for each table.
pub const TABLES: [(&str, &Table); 6] = [
    ("samples", &table::SAMPLES),
    ("stacks", &table::STACKS),
    ("rollup", &table::ROLLUP),
    ("flows", &table::FLOWS),
    ("objects", &table::OBJECTS),
    ("captures", &table::CAPTURES),
];

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("{0}")]
    Trace(#[from] crate::trace::TraceError),
    /// A query the engine refused: its message, and where in the query.
    #[error("{message}")]
    Query { message: String, caret: Option<String> },
}

struct Input {
    name: String,
    loaded: Loaded,
    capture_id: String,
}

struct Scan {
    t: &'static Table,
    inputs: Arc<Vec<Input>>,
    schema: SchemaRef,
}

fn capture_schema(t: &Table) -> Schema {
    let mut s = Schema::default();
    s.insert(PlSmallStr::from_static("capture"), DataType::from_categories(Categories::global()));
    for (n, d) in frames::schema(t, &|_| true).iter() {
        s.insert(n.clone(), d.clone());
    }
    s
}

impl AnonymousScan for Scan {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn schema(&self, _: Option<usize>) -> PolarsResult<SchemaRef> {
        Ok(self.schema.clone())
    }

    fn allows_projection_pushdown(&self) -> bool {
        true
    }

    fn scan(&self, args: AnonymousScanArgs) -> PolarsResult<DataFrame> {
        let wanted: Option<Vec<PlSmallStr>> = args.with_columns.as_ref().map(|c| c.to_vec());
        let keep = |c: &str| wanted.as_ref().is_none_or(|w| w.iter().any(|x| x.as_str() == c));
        let mut parts: Vec<DataFrame> = Vec::new();
        for inp in self.inputs.iter() {
            let mut frames_of: Vec<DataFrame> = Vec::new();
            frames::for_each_frame(
                &inp.loaded,
                &inp.capture_id,
                &inp.name,
                crate::export::clickhouse::MAX_ROWS,
                &|_, c| keep(c),
                &|t| t.name == self.t.name,
                &mut |_, df| {
                    frames_of.push(df);
                    Ok(())
                },
            )?;
            let mut df = match frames_of.len() {
                0 => DataFrame::empty_with_schema(&frames::schema(self.t, &|c| keep(c))),
                _ => frames::concat_frames(frames_of)?,
            };
            if keep("capture") {
                let n = df.height();
                let cap =
                    Series::new("capture".into(), vec![inp.name.as_str(); n]).cast(&DataType::from_categories(Categories::global()))?;
                df.insert_column(0, cap.into_column())?;
            }
            parts.push(df);
        }
        let df = frames::concat_frames(parts)?;
        // The scan's columns in the order asked for.
        match &wanted {
            Some(w) => df.select(w.iter().cloned()),
            None => {
                let order: Vec<PlSmallStr> = self.schema.iter_names().cloned().collect();
                df.select(order)
            }
        }
    }
}

/// Run `query` over `paths` (each an msen trace or a perf.data).
pub fn run(query: &str, paths: &[PathBuf], load: &LoadOptions) -> Result<DataFrame, SqlError> {
    let mut inputs = Vec::new();
    for p in paths {
        let loaded = Loaded::open(p, load)?;
        let capture_id = crate::export::clickhouse::capture_id_of(&loaded, p)
            .map_err(|e| SqlError::Query { message: format!("{}: {e}", p.display()), caret: None })?;
        inputs.push(Input { name: p.display().to_string(), loaded, capture_id });
    }
    let inputs = Arc::new(inputs);
    let mut ctx = polars::sql::SQLContext::new();
    for (short, t) in TABLES {
        let scan = Arc::new(Scan { t, inputs: inputs.clone(), schema: Arc::new(capture_schema(t)) });
        let lf = LazyFrame::anonymous_scan(scan, ScanArgsAnonymous { name: t.name, ..Default::default() })
            .map_err(|e| query_error(query, &e))?;
        ctx.register(t.name, lf.clone());
        ctx.register(short, lf);
    }
    let lf = ctx.execute(query).map_err(|e| query_error(query, &e))?;
    lf.collect().map_err(|e| query_error(query, &e))
}

/// The engine's message, with the query line and a caret under the
/// position it names (a parse error's line and column, or the first
/// occurrence of an unknown name).
fn query_error(query: &str, e: &PolarsError) -> SqlError {
    let message = e.to_string().trim().to_string();
    let at_end = || {
        let lines: Vec<&str> = query.lines().collect();
        Some((lines.len().max(1), lines.last().map_or(0, |l| l.chars().count()) + 1))
    };
    let pos = line_col(&message)
        .or_else(|| if message.contains("found: EOF") { at_end() } else { None })
        .or_else(|| quoted_name(&message).and_then(|n| find_word(query, &n)));
    let caret = pos.and_then(|(line, col)| {
        let text = query.lines().nth(line.checked_sub(1)?)?;
        Some(format!("  {text}\n  {}^", " ".repeat(col.saturating_sub(1).min(text.chars().count() + 1))))
    });
    SqlError::Query { message, caret }
}

/// "Line: L, Column: C" in a parser message.
fn line_col(m: &str) -> Option<(usize, usize)> {
    let i = m.find("Line: ")?;
    let rest = &m[i + 6..];
    let (l, rest) = rest.split_once(", Column: ")?;
    let c: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((l.trim().parse().ok()?, c.parse().ok()?))
}

/// The first quoted name in a message (column "x" not found, ...).
fn quoted_name(m: &str) -> Option<String> {
    for q in ['"', '\''] {
        if let Some(i) = m.find(q) {
            let rest = &m[i + 1..];
            if let Some(j) = rest.find(q) {
                let n = &rest[..j];
                if !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                    return Some(n.rsplit('.').next().unwrap_or(n).to_string());
                }
            }
        }
    }
    None
}

/// (line, column), 1-based, of `word` as a whole word in `q`.
fn find_word(q: &str, word: &str) -> Option<(usize, usize)> {
    for (li, line) in q.lines().enumerate() {
        let lower = line.to_ascii_lowercase();
        let w = word.to_ascii_lowercase();
        let mut from = 0;
        while let Some(i) = lower[from..].find(&w) {
            let at = from + i;
            let before = lower[..at].chars().next_back();
            let after = lower[at + w.len()..].chars().next();
            let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            if !ident(before) && !ident(after) {
                return Some((li + 1, lower[..at].chars().count() + 1));
            }
            from = at + w.len();
        }
    }
    None
}

/// One cell as text (CSV and the table).
pub fn cell(v: &AnyValue<'_>) -> String {
    match v {
        AnyValue::Null => String::new(),
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        AnyValue::Float64(f) => format_float(*f),
        AnyValue::Float32(f) => format_float(f64::from(*f)),
        AnyValue::List(s) => {
            let items: Vec<String> = s.iter().map(|v| cell(&v)).collect();
            format!("[{}]", items.join(", "))
        }
        other => {
            let s = other.to_string();
            s.trim_matches('"').to_string()
        }
    }
}

fn format_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

fn json_value(v: &AnyValue<'_>) -> serde_json::Value {
    use serde_json::Value;
    match v {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(*b),
        AnyValue::UInt8(x) => (*x).into(),
        AnyValue::UInt16(x) => (*x).into(),
        AnyValue::UInt32(x) => (*x).into(),
        AnyValue::UInt64(x) => (*x).into(),
        AnyValue::Int8(x) => (*x).into(),
        AnyValue::Int16(x) => (*x).into(),
        AnyValue::Int32(x) => (*x).into(),
        AnyValue::Int64(x) => (*x).into(),
        AnyValue::Float32(x) => serde_json::Number::from_f64(f64::from(*x)).map_or(Value::Null, Value::Number),
        AnyValue::Float64(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
        AnyValue::List(s) => Value::Array(s.iter().map(|v| json_value(&v)).collect()),
        other => Value::String(cell(other)),
    }
}

fn column_values(df: &DataFrame) -> PolarsResult<Vec<Vec<AnyValue<'_>>>> {
    df.columns()
        .iter()
        .map(|c| {
            let s = c.as_materialized_series();
            (0..s.len()).map(|i| s.get(i)).collect::<PolarsResult<Vec<_>>>()
        })
        .collect()
}

/// The result as an aligned text table (numbers right-aligned).
pub fn render_table(df: &DataFrame) -> PolarsResult<String> {
    let cols = column_values(df)?;
    let names: Vec<String> = df.get_column_names().iter().map(|n| n.to_string()).collect();
    let texts: Vec<Vec<String>> = cols.iter().map(|c| c.iter().map(cell).collect()).collect();
    let numeric: Vec<bool> = df.dtypes().iter().map(|d| d.is_primitive_numeric()).collect();
    let widths: Vec<usize> = names
        .iter()
        .zip(&texts)
        .map(|(n, t)| t.iter().map(|s| s.chars().count()).chain(std::iter::once(n.chars().count())).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let line = |cells: &mut dyn Iterator<Item = (usize, &str)>, out: &mut String| {
        let mut parts = Vec::new();
        for (i, s) in cells {
            parts.push(if numeric[i] { format!("{s:>w$}", w = widths[i]) } else { format!("{s:<w$}", w = widths[i]) });
        }
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut names.iter().map(String::as_str).enumerate(), &mut out);
    line(&mut widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().iter().map(String::as_str).enumerate(), &mut out);
    for r in 0..df.height() {
        line(&mut texts.iter().map(|c| c[r].as_str()).enumerate(), &mut out);
    }
    out.push_str(&format!("({} row{})\n", df.height(), if df.height() == 1 { "" } else { "s" }));
    Ok(out)
}

/// The result as CSV (RFC 4180 quoting).
pub fn render_csv(df: &DataFrame) -> PolarsResult<String> {
    let cols = column_values(df)?;
    let q = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = df.get_column_names().iter().map(|n| q(n.as_str())).collect::<Vec<_>>().join(",");
    out.push('\n');
    for r in 0..df.height() {
        out.push_str(&cols.iter().map(|c| q(&cell(&c[r]))).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    Ok(out)
}

/// The result as a JSON array of objects, one per row.
pub fn render_json(df: &DataFrame) -> PolarsResult<serde_json::Value> {
    let cols = column_values(df)?;
    let names = df.get_column_names();
    let rows = (0..df.height())
        .map(|r| {
            let mut o = serde_json::Map::new();
            for (n, c) in names.iter().zip(&cols) {
                o.insert(n.to_string(), json_value(&c[r]));
            }
            serde_json::Value::Object(o)
        })
        .collect();
    Ok(serde_json::Value::Array(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_positions() {
        assert_eq!(line_col("sql parser error: Expected: an expression, found: FROM at Line: 1, Column: 8"), Some((1, 8)));
        assert_eq!(find_word("SELECT nope FROM samples", "nope"), Some((1, 8)));
        assert_eq!(find_word("SELECT symbolx, symbol FROM samples", "symbol"), Some((1, 17)));
        assert_eq!(quoted_name("unable to find column \"nope\"; valid columns: [...]"), Some("nope".into()));
    }
}
