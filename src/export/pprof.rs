//! pprof's profile.proto, gzipped: what Pyroscope, Parca, Google Cloud
//! Profiler, Grafana and `go tool pprof` read. Two sample types per event
//! (samples, and the period in its unit); one location per distinct
//! address with its mapping (file offset, build-id), an inline chain as
//! several lines of one location; labels for pid, tid, comm, cpu, flow and
//! the memory level of memory samples.

use crate::analyze::stacks::Stacks;
use prost::Message;
use std::collections::HashMap;
use std::io::Write;

#[derive(Clone, PartialEq, Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Mapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
}

#[derive(Default)]
struct Strings {
    list: Vec<String>,
    ids: HashMap<String, i64>,
}

impl Strings {
    fn id(&mut self, s: &str) -> i64 {
        if self.list.is_empty() {
            self.list.push(String::new());
            self.ids.insert(String::new(), 0);
        }
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.list.len() as i64;
        self.list.push(s.to_string());
        self.ids.insert(s.to_string(), i);
        i
    }
}

/// The profile of `st` (ids and strings in first-use order over stacks in
/// their total order, so the bytes are the same at any thread count).
pub fn profile(st: &Stacks) -> Profile {
    let mut s = Strings::default();
    s.id("");
    let mut sample_type = Vec::new();
    for (i, e) in st.events.iter().enumerate() {
        sample_type.push(ValueType { r#type: s.id(&format!("{e}_samples")), unit: s.id("count") });
        sample_type.push(ValueType { r#type: s.id(e), unit: s.id(st.unit(i)) });
    }
    let mut mappings: Vec<Mapping> = Vec::new();
    let mut mapping_ids: HashMap<(String, u64, u64), u64> = HashMap::new();
    let mut functions: Vec<Function> = Vec::new();
    let mut function_ids: HashMap<(String, Option<String>), u64> = HashMap::new();
    let mut locations: Vec<Location> = Vec::new();
    let mut location_ids: Vec<u64> = vec![0; st.frames.len()];
    let mut samples = Vec::with_capacity(st.stacks.len());
    let keys = ["pid", "tid", "comm", "cpu", "flow", "mem_level"].map(|k| s.id(k));
    for stack in &st.stacks {
        let mut loc = Vec::with_capacity(stack.frames.len());
        for &fi in &stack.frames {
            if location_ids[fi as usize] == 0 {
                let f = &st.frames[fi as usize];
                let (start, end, pgoff) = f.mapping.unwrap_or((0, 0, 0));
                let mkey = (f.path.clone(), start, end);
                let mapping_id = match mapping_ids.get(&mkey) {
                    Some(&id) => id,
                    None => {
                        let id = mappings.len() as u64 + 1;
                        mappings.push(Mapping {
                            id,
                            memory_start: start,
                            memory_limit: end,
                            file_offset: pgoff,
                            filename: s.id(&f.path),
                            build_id: f.build_id.as_deref().map_or(0, |b| s.id(b)),
                            has_functions: true,
                            has_filenames: !f.lines.is_empty(),
                            has_line_numbers: !f.lines.is_empty(),
                            has_inline_frames: !f.lines.is_empty(),
                        });
                        mapping_ids.insert(mkey, id);
                        id
                    }
                };
                let mut func = |name: &str, file: Option<&str>, s: &mut Strings| -> u64 {
                    let k = (name.to_string(), file.map(str::to_string));
                    if let Some(&id) = function_ids.get(&k) {
                        return id;
                    }
                    let id = functions.len() as u64 + 1;
                    let n = s.id(name);
                    functions.push(Function { id, name: n, system_name: n, filename: file.map_or(0, |f| s.id(f)) });
                    function_ids.insert(k, id);
                    id
                };
                // Innermost first, the physical function last, as pprof wants;
                // the symbol table's name for the physical one (as report).
                let line: Vec<Line> = if f.lines.is_empty() {
                    vec![Line { function_id: func(&f.function, None, &mut s), line: 0 }]
                } else {
                    let n = f.lines.len();
                    f.lines
                        .iter()
                        .enumerate()
                        .map(|(i, l)| {
                            let name = if i + 1 == n { f.function.as_str() } else { l.function.as_str() };
                            Line { function_id: func(name, l.file.as_deref(), &mut s), line: l.line as i64 }
                        })
                        .collect()
                };
                let id = locations.len() as u64 + 1;
                locations.push(Location { id, mapping_id, address: f.address, line });
                location_ids[fi as usize] = id;
            }
            loc.push(location_ids[fi as usize]);
        }
        let mut value = vec![0i64; sample_type.len()];
        let e = stack.event as usize * 2;
        if e + 1 < value.len() {
            value[e] = stack.samples as i64;
            value[e + 1] = stack.period.min(i64::MAX as u64) as i64;
        }
        let num = |k: i64, n: u64| Label { key: k, str: 0, num: n as i64, num_unit: 0 };
        let mut label = vec![num(keys[0], stack.pid as u64), num(keys[1], stack.tid as u64)];
        label.push(Label { key: keys[2], str: s.id(&stack.comm), num: 0, num_unit: 0 });
        if stack.cpu != u32::MAX {
            label.push(num(keys[3], stack.cpu as u64));
        }
        if let Some(f) = &stack.flow {
            label.push(Label { key: keys[4], str: s.id(f), num: 0, num_unit: 0 });
        }
        if let Some(m) = &stack.mem {
            label.push(Label { key: keys[5], str: s.id(m), num: 0, num_unit: 0 });
        }
        samples.push(Sample { location_id: loc, value, label });
    }
    let period_type = sample_type.get(1).cloned();
    let comment = vec![s.id(&format!("msen {} on {}", env!("CARGO_PKG_VERSION"), st.hostname))];
    Profile {
        default_sample_type: period_type.as_ref().map_or(0, |t| t.r#type),
        period_type,
        period: 0,
        sample_type,
        sample: samples,
        mapping: mappings,
        location: locations,
        function: functions,
        time_nanos: st.unix_ns(st.first_time) as i64,
        duration_nanos: st.last_time.saturating_sub(st.first_time) as i64,
        comment,
        string_table: s.list,
    }
}

/// Write `st` as a gzipped profile.proto; returns the bytes written.
pub fn write(st: &Stacks, out: &mut dyn Write) -> std::io::Result<u64> {
    let bytes = profile(st).encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(CountingWriter { inner: out, n: 0 }, flate2::Compression::fast());
    gz.write_all(&bytes)?;
    let w = gz.finish()?;
    Ok(w.n)
}

struct CountingWriter<'a> {
    inner: &'a mut dyn Write,
    n: u64,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
