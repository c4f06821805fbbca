//! The one table model of msen's exports: every table, its columns, their
//! types on an old ClickHouse (plain types) and a modern one (23.x+:
//! DateTime64, LowCardinality, codecs), and the RowBinary encoding all
//! variants share. The DDL in formats/clickhouse/ is generated from here
//! (a test keeps the files current), so a column added once appears in
//! every exporter and every DDL.

/// A column's type, as msen writes it. Each has one RowBinary layout that
/// both DDL variants read (CLICKHOUSE.md: DateTime64(9) has Int64's layout,
/// LowCardinality(String) String's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    U8,
    U16,
    U32,
    U64,
    I64,
    F64,
    /// A string repeated across rows (names): LowCardinality on modern servers.
    Name,
    /// Free text.
    Text,
    /// Nanoseconds since the Unix epoch: UInt64 on old servers, DateTime64(9) on modern ones.
    Time,
    /// Days since the epoch.
    Date,
    ArrayU64,
    ArrayName,
}

impl Type {
    pub fn old_sql(self) -> &'static str {
        match self {
            Type::U8 => "UInt8",
            Type::U16 => "UInt16",
            Type::U32 => "UInt32",
            Type::U64 => "UInt64",
            Type::I64 => "Int64",
            Type::F64 => "Float64",
            Type::Name | Type::Text => "String",
            Type::Time => "UInt64",
            Type::Date => "Date",
            Type::ArrayU64 => "Array(UInt64)",
            Type::ArrayName => "Array(String)",
        }
    }

    pub fn modern_sql(self) -> &'static str {
        match self {
            Type::Name => "LowCardinality(String)",
            Type::Time => "DateTime64(9)",
            Type::ArrayName => "Array(LowCardinality(String))",
            t => t.old_sql(),
        }
    }

    /// A codec for modern servers, where one helps more than LZ4.
    fn modern_codec(self) -> Option<&'static str> {
        match self {
            Type::Time => Some("CODEC(Delta, ZSTD(1))"),
            Type::U64 | Type::I64 | Type::ArrayU64 | Type::Text => Some("CODEC(ZSTD(1))"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: Type,
    pub doc: &'static str,
}

const fn c(name: &'static str, ty: Type, doc: &'static str) -> Column {
    Column { name, ty, doc }
}

#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub doc: &'static str,
    pub columns: &'static [Column],
    pub partition_by: &'static str,
    pub order_by: &'static str,
    /// Why this partitioning and order (printed into the DDL).
    pub why: &'static str,
}

/// The columns every table starts with: which capture, from which host,
/// and the capture's start date (the partition key: one capture is one
/// partition, so one INSERT is one part and atomic).
macro_rules! capture_columns {
    () => {
        [
            c("capture_id", Type::Name, "the capture (a UUID in the trace's metadata)"),
            c("host", Type::Name, "the recording machine's host name"),
            c("capture_date", Type::Date, "the capture's start date (UTC): the partition key"),
        ]
    };
}

const fn concat<const A: usize, const B: usize, const N: usize>(a: [Column; A], b: [Column; B]) -> [Column; N] {
    let mut out = [c("", Type::U8, ""); N];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - A];
        i += 1;
    }
    out
}

const SAMPLE_COLUMNS: [Column; 40] = concat(
    capture_columns!(),
    [
        c("trace_block", Type::U32, "the trace block the sample came from (the unit of exactly-once resume)"),
        c("time", Type::Time, "wall-clock time: the trace clock mapped through the capture's recorded start"),
        c("cpu", Type::U32, "CPU the sample was taken on"),
        c("pid", Type::U32, "process id"),
        c("tid", Type::U32, "thread id"),
        c("comm", Type::Name, "the thread's command name at the sample's time"),
        c("event", Type::Name, "event name (cpu-clock, mem-loads, ...)"),
        c("period", Type::U64, "the sample's period (event count it stands for)"),
        c("ip", Type::U64, "the sampled instruction address"),
        c("kernel", Type::U8, "1 when the sample is in kernel mode"),
        c("symbol", Type::Name, "the sampled function (as msen report's Symbol, without the [.] mark)"),
        c("dso", Type::Name, "the sampled object's short name (perf's Shared Object)"),
        c("stack_id", Type::U64, "the call chain: ms_stack_traces.stack_id, 0 without one"),
        c("flow_id", Type::U64, "the network flow the CPU was serving: ms_flows.flow_id, 0 for none"),
        c("data_addr", Type::U64, "data address (memory samples), 0 when none"),
        c("data_src", Type::U64, "the raw perf_mem_data_src"),
        c("mem_op", Type::Name, "data_src's operation: LOAD, STORE, ... ('' without data_src)"),
        c("mem_level", Type::Name, "where the access was served, in perf's words (L1 hit, RAM hit, ...)"),
        c("mem_snoop", Type::Name, "snoop result (HitM, Hit, Miss, ...)"),
        c("mem_tlb", Type::Name, "TLB result"),
        c("mem_locked", Type::U8, "1 for a locked access"),
        c("weight", Type::U64, "access latency in cycles (memory samples)"),
        c("phys_addr", Type::U64, "physical data address, 0 when not recorded"),
        c("data_symbol", Type::Name, "the data object the address is in (as msen false-share names it)"),
        c("line_object", Type::Name, "the cache line's owner: data mapping, '[kernel]', or '' (no mapping)"),
        c("line_pid", Type::U32, "the pid owning a private anonymous line, else 0xFFFFFFFF"),
        c("line_addr", Type::U64, "the line's map-relative address (msen false-share's line identity)"),
        c("line_offset", Type::U32, "the access's offset in its cache line"),
        c("c2c_lcl_hitm", Type::U8, "perf c2c's counters of this one sample: local HITM"),
        c("c2c_rmt_hitm", Type::U8, "remote HITM"),
        c("c2c_tot_hitm", Type::U8, "local + remote HITM"),
        c("c2c_records", Type::U8, "counted in c2c's Total records (loads and stores that classify)"),
        c("c2c_stores", Type::U8, "counted as a store"),
        c("numa_access", Type::Name, "'local' or 'remote' memory access (msen numa's rule), '' otherwise"),
        c("cpu_node", Type::U32, "NUMA node of the CPU, 0xFFFFFFFF unknown"),
        c("mem_node", Type::U32, "NUMA node of the physical address, 0xFFFFFFFF unknown"),
        c("mode", Type::Name, "the agent's mode when sampled ('' for plain captures)"),
    ],
);

const STACK_COLUMNS: [Column; 9] = concat(
    capture_columns!(),
    [
        c("stack_id", Type::U64, "XXH3 of the resolved frames: stable across runs of the export"),
        c("depth", Type::U16, "number of frames"),
        c("ips", Type::ArrayU64, "frame addresses, the sampled one first"),
        c("symbols", Type::ArrayName, "function per frame"),
        c("dsos", Type::ArrayName, "object per frame"),
        c("build_ids", Type::ArrayName, "build-id per frame ('' unknown)"),
    ],
);

const ROLLUP_COLUMNS: [Column; 16] = concat(
    capture_columns!(),
    [
        c("trace_block", Type::U32, "the first trace block of the export batch the row summarises"),
        c("window_start", Type::Time, "the one-second window's start"),
        c("flow_id", Type::U64, "ms_flows.flow_id, 0 for samples without a flow"),
        c("symbol", Type::Name, "sampled function"),
        c("dso", Type::Name, "sampled object"),
        c("event", Type::Name, "event name"),
        c("samples", Type::U64, "samples in the window"),
        c("period", Type::U64, "sum of their periods"),
        c("l1_hits", Type::U64, "memory samples served by L1 or the fill buffer"),
        c("llc_hits", Type::U64, "served by L2 or the LLC"),
        c("dram_local", Type::U64, "msen numa's local memory accesses"),
        c("dram_remote", Type::U64, "msen numa's remote memory accesses"),
        c("hitm", Type::U64, "HITM loads"),
    ],
);

const FLOW_COLUMNS: [Column; 21] = concat(
    capture_columns!(),
    [
        c("flow_id", Type::U64, "the flow's id in this capture"),
        c("proto", Type::Name, "tcp or udp"),
        c("family", Type::U8, "4 or 6"),
        c("local_addr", Type::Name, "local address"),
        c("local_port", Type::U16, "local port"),
        c("remote_addr", Type::Name, "remote address"),
        c("remote_port", Type::U16, "remote port"),
        c("direction", Type::Name, "client, server or ''"),
        c("netns", Type::U32, "network namespace inode"),
        c("ifindex", Type::U32, "interface index"),
        c("flow", Type::Text, "the flow as msen flows prints it"),
        c("first_seen", Type::Time, "first time the hooks saw it"),
        c("last_seen", Type::Time, "last time"),
        c("rx_bytes", Type::U64, "payload bytes received"),
        c("tx_bytes", Type::U64, "payload bytes sent"),
        c("retransmits", Type::U64, "TCP retransmits"),
        c("srtt_us", Type::U32, "smoothed RTT in microseconds (0: never seen)"),
        c("samples", Type::U64, "samples tagged with the flow"),
    ],
);

const OBJECT_COLUMNS: [Column; 11] = concat(
    capture_columns!(),
    [
        c("pid", Type::U32, "process whose address space holds it"),
        c("object", Type::Name, "the data object (symbol, registered object, or mapping)"),
        c("type_name", Type::Name, "its type, for registered objects"),
        c("start", Type::U64, "lowest sampled address of the object"),
        c("end", Type::U64, "one past the highest sampled address"),
        c("samples", Type::U64, "memory samples in it"),
        c("loads", Type::U64, "loads"),
        c("stores", Type::U64, "stores"),
    ],
);

const CAPTURE_COLUMNS: [Column; 25] = concat(
    capture_columns!(),
    [
        c("start_time", Type::Time, "wall-clock start of the capture"),
        c("duration_ns", Type::U64, "first to last sample"),
        c("kernel_release", Type::Name, "uname -r of the recording machine"),
        c("arch", Type::Name, "architecture"),
        c("cpu_vendor", Type::Name, "CPU vendor"),
        c("cpu_model", Type::Name, "CPU model"),
        c("nr_cpus", Type::U32, "CPUs"),
        c("numa_nodes", Type::U32, "NUMA nodes"),
        c("cache_line_size", Type::U32, "cache-line size in bytes"),
        c("events", Type::ArrayName, "recorded events"),
        c("software_only", Type::U8, "1 when the host had no usable hardware PMU"),
        c("source_format", Type::Name, "msen, or perf.data for imports"),
        c("msen_version", Type::Name, "msen that exported it"),
        c("samples", Type::U64, "ms_raw_samples rows of the capture"),
        c("stacks", Type::U64, "ms_stack_traces rows"),
        c("rollups", Type::U64, "ms_flow_rollup rows"),
        c("flows", Type::U64, "ms_flows rows"),
        c("objects", Type::U64, "ms_data_objects rows"),
        c("lost", Type::U64, "events the kernel lost (ring buffer overruns)"),
        c("dropped", Type::U64, "samples dropped by msen's in-kernel budget"),
        c("command_line", Type::Text, "the recording command"),
        c("trace_path", Type::Text, "the file the capture was exported from"),
    ],
);

const WHY_SAMPLES: &str = "One capture is one partition (capture_date is constant within it), so every INSERT of a capture's batch \
is one part: atomic, never half there. Fleet queries filter by host and capture and aggregate by symbol, flow \
or line; ORDER BY (host, capture_id, trace_block) keeps a capture's rows together for those scans and makes \
the exporter's resume check (rows per trace_block of one capture) read one narrow range.";

pub const SAMPLES: Table = Table {
    name: "ms_raw_samples",
    doc: "one row per sample, symbolized, with flow and decoded memory fields",
    columns: &SAMPLE_COLUMNS,
    partition_by: "toYYYYMM(capture_date)",
    order_by: "(host, capture_id, trace_block, time)",
    why: WHY_SAMPLES,
};

pub const STACKS: Table = Table {
    name: "ms_stack_traces",
    doc: "one row per distinct call chain of a capture",
    columns: &STACK_COLUMNS,
    partition_by: "toYYYYMM(capture_date)",
    order_by: "(capture_id, stack_id)",
    why: "Looked up by (capture_id, stack_id) from ms_raw_samples; partitioned like the samples so a capture ages out as one.",
};

pub const ROLLUP: Table = Table {
    name: "ms_flow_rollup",
    doc: "per second, flow, function and event: samples, period and memory-level counts (additive: sum over rows)",
    columns: &ROLLUP_COLUMNS,
    partition_by: "toYYYYMM(capture_date)",
    order_by: "(host, flow_id, symbol, window_start)",
    why: "Dashboards ask per host and flow over time; the rows are additive, so a window split across two export batches \
sums correctly.",
};

pub const FLOWS: Table = Table {
    name: "ms_flows",
    doc: "the flow table of a capture: 5-tuple, namespace, counters",
    columns: &FLOW_COLUMNS,
    partition_by: "toYYYYMM(capture_date)",
    order_by: "(capture_id, flow_id)",
    why: "Joined with ms_raw_samples and ms_flow_rollup on (capture_id, flow_id).",
};

pub const OBJECTS: Table = Table {
    name: "ms_data_objects",
    doc: "data objects the memory samples touched: address range, type and access counts",
    columns: &OBJECT_COLUMNS,
    partition_by: "toYYYYMM(capture_date)",
    order_by: "(capture_id, pid, object)",
    why: "Joined with ms_raw_samples on capture_id, pid and data_symbol = object; small.",
};

pub const CAPTURES: Table = Table {
    name: "ms_captures",
    doc: "one row per exported capture, written last: its presence means every other table holds the whole capture",
    columns: &CAPTURE_COLUMNS,
    partition_by: "toYYYYMM(capture_date)",
    order_by: "(host, capture_id)",
    why: "The exporter's first resume check (is this capture complete?) and the fleet's list of captures by host.",
};

/// Every table, in the order an export writes them (ms_captures last).
pub const ALL: [&Table; 6] = [&STACKS, &FLOWS, &OBJECTS, &ROLLUP, &SAMPLES, &CAPTURES];

impl Table {
    pub fn column_list(&self) -> String {
        self.columns.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
    }

    /// CREATE TABLE for an old (plain types) or a modern server.
    /// `ttl_days`: drop a capture's rows that many days after its start
    /// (modern servers). Off unless asked: a TTL on the capture's date would
    /// silently delete old captures the moment they are loaded.
    pub fn ddl(&self, modern: bool, database: &str, ttl_days: Option<u32>) -> String {
        let mut s = String::new();
        s.push_str(&format!("-- {}: {}.\n", self.name, self.doc));
        for line in wrap(self.why, 100) {
            s.push_str(&format!("-- {line}\n"));
        }
        s.push_str(&format!("CREATE TABLE IF NOT EXISTS {database}{}\n(\n", self.name));
        let width = self.columns.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for (i, col) in self.columns.iter().enumerate() {
            let ty = if modern { col.ty.modern_sql() } else { col.ty.old_sql() };
            let codec = if modern { col.ty.modern_codec().map(|c| format!(" {c}")).unwrap_or_default() } else { String::new() };
            let comma = if i + 1 < self.columns.len() { "," } else { "" };
            s.push_str(&format!("    {:width$} {ty}{codec}{comma}  -- {}\n", col.name, col.doc));
        }
        s.push_str(")\nENGINE = MergeTree\n");
        s.push_str(&format!("PARTITION BY {}\nORDER BY {}\n", self.partition_by, self.order_by));
        match (modern, ttl_days) {
            (true, Some(d)) => s.push_str(&format!("TTL capture_date + INTERVAL {d} DAY\n")),
            (true, None) => s.push_str("-- TTL capture_date + INTERVAL 90 DAY  (msen export --create-tables --ttl-days 90)\n"),
            _ => {}
        }
        s.push_str(";\n");
        s
    }
}

/// The whole DDL file of a variant.
pub fn ddl_file(modern: bool) -> String {
    let mut s = String::from(if modern {
        "-- msen's ClickHouse tables for 23.x and newer (DateTime64(9), LowCardinality, codecs; a TTL on request).\n\
         -- Generated from src/export/table.rs; `msen export --clickhouse URL --create-tables` runs it.\n\n"
    } else {
        "-- msen's ClickHouse tables for old servers (before 23.x: plain types, no codecs or TTL; 18.16 reads it).\n\
         -- Generated from src/export/table.rs; `msen export --clickhouse URL --create-tables` runs it.\n\n"
    });
    for t in ALL {
        s.push_str(&t.ddl(modern, "", None));
        s.push('\n');
    }
    s
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for w in text.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + w.len() > width {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    out.push(cur);
    out
}

/// RowBinary rows of one table: values appended in column order. `end_row`
/// checks that each row wrote exactly the table's columns (in debug builds,
/// by count; the integration tests read every column back).
#[derive(Debug)]
pub struct RowBinary {
    pub buf: Vec<u8>,
    pub rows: u64,
    values: usize,
    columns: usize,
}

/// Where rows go, value by value in the table's column order: RowBinary
/// bytes (ClickHouse), or typed columns (frames, with the "polars"
/// feature). The row builders write through this, so every exporter gets
/// the same values.
pub trait Sink {
    fn u8(&mut self, v: u8) -> &mut Self;
    fn u16(&mut self, v: u16) -> &mut Self;
    fn u32(&mut self, v: u32) -> &mut Self;
    fn u64(&mut self, v: u64) -> &mut Self;
    /// Nanoseconds since the epoch (UInt64 and DateTime64(9) alike; times
    /// past 2262 do not exist in a trace).
    fn time(&mut self, ns: u64) -> &mut Self;
    fn date(&mut self, days: u16) -> &mut Self;
    fn str(&mut self, s: &str) -> &mut Self;
    /// A name the writer numbers itself (`id` stands for `s` in this
    /// column of this sink): a columnar sink interns it once per id.
    fn name(&mut self, id: u32, s: &str) -> &mut Self {
        let _ = id;
        self.str(s)
    }
    fn u64s(&mut self, v: &[u64]) -> &mut Self;
    fn strs<'a>(&mut self, v: impl ExactSizeIterator<Item = &'a str>) -> &mut Self;
    fn end_row(&mut self);
    /// Rows written.
    fn rows(&self) -> u64;
}

impl RowBinary {
    pub fn new(table: &Table) -> RowBinary {
        RowBinary { buf: Vec::with_capacity(1 << 16), rows: 0, values: 0, columns: table.columns.len() }
    }
}

impl Sink for RowBinary {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self.values += 1;
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self.values += 1;
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self.values += 1;
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self.values += 1;
        self
    }
    fn time(&mut self, ns: u64) -> &mut Self {
        self.u64(ns.min(i64::MAX as u64))
    }
    fn date(&mut self, days: u16) -> &mut Self {
        self.u16(days)
    }
    fn str(&mut self, s: &str) -> &mut Self {
        leb128(&mut self.buf, s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
        self.values += 1;
        self
    }
    fn u64s(&mut self, v: &[u64]) -> &mut Self {
        leb128(&mut self.buf, v.len() as u64);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
        self.values += 1;
        self
    }
    fn strs<'a>(&mut self, v: impl ExactSizeIterator<Item = &'a str>) -> &mut Self {
        leb128(&mut self.buf, v.len() as u64);
        for s in v {
            leb128(&mut self.buf, s.len() as u64);
            self.buf.extend_from_slice(s.as_bytes());
        }
        self.values += 1;
        self
    }
    fn end_row(&mut self) {
        debug_assert_eq!(self.values, self.columns, "a row wrote {} values for {} columns", self.values, self.columns);
        self.values = 0;
        self.rows += 1;
    }
    fn rows(&self) -> u64 {
        self.rows
    }
}

fn leb128(buf: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf.push(b);
            return;
        }
        buf.push(b | 0x80);
    }
}

/// Days since the Unix epoch of a Unix-ns time (ClickHouse's Date).
pub fn days(unix_ns: u64) -> u16 {
    (unix_ns / 86_400_000_000_000).min(u16::MAX as u64) as u16
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn every_table_starts_with_the_capture_columns_and_names_are_unique() {
        for t in ALL {
            assert_eq!(t.columns[0].name, "capture_id");
            let mut names: Vec<_> = t.columns.iter().map(|c| c.name).collect();
            assert!(names.iter().all(|n| !n.is_empty()), "{}", t.name);
            names.sort_unstable();
            let n = names.len();
            names.dedup();
            assert_eq!(n, names.len(), "{} repeats a column", t.name);
        }
    }

    #[test]
    fn leb128_lengths() {
        let mut b = Vec::new();
        leb128(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
    }

    /// formats/clickhouse/*.sql are this model's DDL (regenerate with
    /// `msen export --clickhouse-ddl old|modern`).
    #[test]
    fn ddl_files_are_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("formats/clickhouse");
        for (modern, file) in [(false, "tables-old.sql"), (true, "tables-modern.sql")] {
            let on_disk = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            assert!(
                on_disk == ddl_file(modern),
                "formats/clickhouse/{file} is stale: run `msen export --clickhouse-ddl {}`",
                if modern { "modern" } else { "old" }
            );
        }
    }
}
