//! Command-line definitions (clap) and their validation into the Config
//! types the library uses. Nothing below this module sees clap.

use crate::analyze::report::{Children, ReportConfig, SortKey};
use crate::analyze::script::{ScriptConfig, ScriptFormat};
use crate::analyze::LoadOptions;
use crate::record::{RecordConfig, Sampling, Target};
use crate::trace::OpenOptions;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

pub mod config;

const EXAMPLES: &str = "\
EXAMPLES:
    msen record -g -- ./my-program arg          record a command with call chains
    msen record -a --duration 10 -F 999         record all CPUs for 10 seconds
    msen record -p 1234,1240 -o app.msen        attach to running processes
    msen report                                 hot code in msen.data
    msen report --sort comm,pid,sym --top 20 --format json
    msen info --format json                     what a trace holds
    msen script --format jsonl | head           every sample, decoded

EXIT STATUS:
    0 success, 1 nothing to report (no samples), 2 error";

#[derive(Debug, Parser)]
#[command(
    name = "msen",
    version,
    about = "Record and analyze micro-architectural samples on Linux",
    after_help = EXAMPLES,
    disable_help_subcommand = true,
    max_term_width = 0
)]
pub struct Cli {
    /// Worker threads for decoding and analysis (default: all CPUs); output
    /// is identical at any count. Recording always drains rings on one thread.
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture samples into a trace (needs root or a permissive kernel.perf_event_paranoid).
    Record(RecordArgs),
    /// Show where the samples went: by command, shared object, symbol, ...
    Report(ReportArgs),
    /// Describe a trace: host, events, topology, record counts, recovery.
    Info(InfoArgs),
    /// Print every record, decoded, one per line.
    Script(ScriptArgs),
    /// Convert a perf.data (file or pipe mode) into an msen trace.
    Import(ImportArgs),
    /// Cache-line contention from memory samples (the perf c2c job).
    FalseShare(FalseShareArgs),
    /// Remote-memory hot spots by function, data object, page and process.
    Numa(NumaArgs),
    /// Samples by network flow: CPU per flow, bytes, CPU per byte, retransmits, RTT.
    Flows(FlowsArgs),
    /// Compare two profiles (or two sets of runs): what got slower, whether it is real; exit 1 on a regression.
    Diff(DiffArgs),
    /// Write a trace in another format: perf.data, pprof, Firefox, speedscope, ClickHouse, Parquet.
    Export(ExportArgs),
    /// SQL over the samples, stacks, flows and data objects of traces (polars; several traces at once).
    Sql(SqlArgs),
    /// Addresses to function, file:line and inline chain (like addr2line -f -i).
    Symbolize(SymbolizeArgs),
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    #[command(
        after_help = "EXAMPLES:\n    msen completions bash > /etc/bash_completion.d/msen\n    msen completions zsh > \"${fpath[1]}/_msen\"\n    msen completions fish > ~/.config/fish/completions/msen.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages generated from these definitions into DIR.
    #[command(hide = true)]
    Manpages {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// A completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "msen", &mut out);
    out
}

/// Render `msen.1` and `msen-SUBCOMMAND.1` for every visible subcommand.
pub fn manpages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let mut pages = Vec::new();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    pages.push(("msen.1".to_string(), buf));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("msen-{}", sub.get_name());
        let mut buf = Vec::new();
        clap_mangen::Man::new(sub.clone().display_name(name.clone()).bin_name(format!("msen {}", sub.get_name()))).render(&mut buf)?;
        pages.push((format!("{name}.1"), buf));
    }
    Ok(pages)
}

/// Snapshots a flight recorder keeps without --max-files.
const DEFAULT_MAX_SNAPSHOTS: usize = 8;

#[derive(Debug, Args)]
#[command(
    after_help = "EXAMPLES:
    msen record ./workload args                 start a command and record it (-- is optional)
    msen record -g -F 4000 -o out.msen -- make -j2
    msen record --call-graph dwarf -- ./app     call chains without frame pointers
    msen record -a -- sleep 5                   every CPU while a command runs
    msen record -p $(pidof server) --duration 30
    msen record --mem -- ./app                  memory samples (perf mem record's events)
    msen record --c2c -a --duration 10          what msen false-share needs (perf c2c record)
    msen record -e cpu/mem-loads,ldlat=50/P -d -W -- ./app
    msen record -b -e cycles -- ./app           LBR branch stacks
    msen record --mem --print-attrs -- ./app    show the perf_event_attrs, open nothing
    msen record -o - -- ./app | msen report -i -
    msen record -a --clickhouse http://ch:8123 --flush 2 -- sleep 600   rows reach ClickHouse while it records

EXIT STATUS:
    the workload's exit status (128+N when signal N ended it) when msen
    started one; 0 otherwise; 2 when msen itself failed",
    args_override_self = true
)]
pub struct RecordArgs {
    /// Read options from FILE first: key=value lines (# comments), with
    /// MicroSentinel's agent.conf keys or any option here without its dashes
    /// (hold=30). Options on the command line override the file's.
    #[arg(long, value_name = "FILE", help_heading = "Agent")]
    pub config: Option<PathBuf>,
    /// Sample every task on every CPU (with a command: while it runs).
    #[arg(short = 'a', long = "all-cpus")]
    pub all_cpus: bool,
    /// Sample every task on these CPUs only (e.g. 0-3,8); implies -a.
    #[arg(short = 'C', long = "cpu", value_name = "CPUS")]
    pub cpu_list: Option<String>,
    /// Attach to existing processes (comma-separated pids), following their new threads.
    #[arg(short = 'p', long = "pid", value_delimiter = ',', value_name = "PID")]
    pub pids: Vec<u32>,
    /// Attach to existing threads (comma-separated tids).
    #[arg(short = 't', long = "tid", value_delimiter = ',', value_name = "TID")]
    pub tids: Vec<u32>,
    /// Events in perf's syntax: names (cycles:pp), raw codes (r01c2),
    /// PMU terms (cpu/event=0xcd,umask=1,ldlat=30/P), sysfs aliases,
    /// groups ({a,b}:u); comma-separated or repeated. Default: cycles, or
    /// cpu-clock on a host without a hardware PMU.
    #[arg(short = 'e', long = "event", value_name = "EVENT")]
    pub events: Vec<String>,
    /// Memory samples with perf mem record's events for this host (Intel
    /// mem-loads/mem-stores, AMD ibs_op, Arm SPE), data address, source and weight.
    #[arg(long, conflicts_with = "c2c")]
    pub mem: bool,
    /// What `msen false-share` needs: perf c2c record's events and flags
    /// (--mem plus physical addresses and CPUs).
    #[arg(long)]
    pub c2c: bool,
    /// Load-latency threshold in cycles for Intel mem-loads and Arm SPE (--mem, --c2c).
    #[arg(long, value_name = "CYCLES", default_value_t = 30)]
    pub ldlat: u32,
    /// Where the host cannot count an event you asked for (no hardware PMU),
    /// record cpu-clock (page-faults with data addresses for memory events)
    /// instead of failing.
    #[arg(long)]
    pub fallback: bool,
    /// Sampling frequency in Hz per CPU (clamped to kernel.perf_event_max_sample_rate).
    #[arg(short = 'F', long = "freq", value_name = "HZ", conflicts_with = "period", default_value_t = 4000)]
    pub freq: u64,
    /// Sample every N events instead of at a frequency.
    #[arg(short = 'c', long = "count", value_name = "N")]
    pub period: Option<u64>,
    /// Record call chains with frame pointers (--call-graph fp).
    #[arg(short = 'g')]
    pub callchain: bool,
    /// Call chains: fp (frame pointers), dwarf[,SIZE] (copy SIZE bytes of user
    /// stack, default 8192, unwound at analysis from .eh_frame), lbr (Intel LBR call stack).
    #[arg(long = "call-graph", value_name = "MODE")]
    pub call_graph: Option<String>,
    /// Sample data addresses and data sources (PERF_SAMPLE_ADDR, DATA_SRC).
    #[arg(short = 'd', long = "data")]
    pub data: bool,
    /// Sample the weight (load latency) of each sample.
    #[arg(short = 'W', long = "weight")]
    pub weight: bool,
    /// Sample physical data addresses.
    #[arg(long = "phys-data")]
    pub phys_data: bool,
    /// Sample the page size of data addresses.
    #[arg(long = "data-page-size")]
    pub data_page_size: bool,
    /// Sample the page size of code addresses.
    #[arg(long = "code-page-size")]
    pub code_page_size: bool,
    /// Sample the CPU (msen always does; accepted for perf compatibility).
    #[arg(long = "sample-cpu")]
    pub sample_cpu: bool,
    /// Sample taken-branch stacks (LBR, BRS, BRBE): -j any.
    #[arg(short = 'b', long = "branch-any")]
    pub branch_any: bool,
    /// Branch stack filter: any, any_call, any_ret, ind_call, ind_jmp, call,
    /// cond, abort_tx, in_tx, no_tx, save_type, stack, priv, and u, k, hv.
    #[arg(short = 'j', long = "branch-filter", value_name = "FILTERS")]
    pub branch_filter: Option<String>,
    /// Print the perf_event_attrs msen would open (JSON, kernel field names) and exit.
    #[arg(long = "print-attrs")]
    pub print_attrs: bool,
    /// Require flow context (each sample tagged with the network flow its CPU
    /// served); fail when the BPF hooks cannot load. On by default where they can.
    #[arg(long, conflicts_with = "no_flows")]
    pub flows: bool,
    /// Record without flow context.
    #[arg(long = "no-flows")]
    pub no_flows: bool,
    /// Also store file:line and inline frames of every sampled address, so
    /// srcline and inline views work without the binaries' debug info.
    #[arg(long = "embed-lines", conflicts_with = "no_embed")]
    pub embed_lines: bool,
    /// Do not store the sampled functions' symbols in the trace (by default
    /// it carries them and reads the same where the binaries are not).
    #[arg(long = "no-embed")]
    pub no_embed: bool,
    /// Keep only samples of flows matching CIDR[:PORT] (in the kernel;
    /// repeatable; e.g. 10.0.0.0/8:7001, [fd00::]/64, :443).
    #[arg(long = "flow-filter", value_name = "CIDR[:PORT]")]
    pub flow_filter: Vec<String>,
    /// Keep only samples of these processes, dropped in the kernel (with flow context).
    #[arg(long = "pid-filter", value_delimiter = ',', value_name = "PID")]
    pub pid_filter: Vec<u32>,
    /// The always-on agent's sampling budget (MicroSentinel's modes): sentinel
    /// (low budget), diagnostic (high), or auto (sentinel, diagnostic for
    /// --hold after a trigger: SIGUSR1, an anomaly, the control endpoint).
    /// Applied in the kernel by the sampling BPF program.
    #[arg(long, value_name = "MODE", value_parser = ["sentinel", "diagnostic", "auto"], help_heading = "Agent")]
    pub mode: Option<String>,
    /// A fixed budget without modes: at most N samples per second per CPU,
    /// the rest dropped in the kernel and counted.
    #[arg(long, value_name = "N", conflicts_with = "mode", help_heading = "Agent")]
    pub budget: Option<u64>,
    /// Sentinel mode's budget, samples per second per CPU.
    #[arg(long = "sentinel-budget", value_name = "N", default_value_t = crate::record::control::SENTINEL_BUDGET, help_heading = "Agent")]
    pub sentinel_budget: u64,
    /// Diagnostic mode's budget, samples per second per CPU.
    #[arg(long = "diagnostic-budget", value_name = "N", default_value_t = crate::record::control::DIAGNOSTIC_BUDGET, help_heading = "Agent")]
    pub diagnostic_budget: u64,
    /// Token-bucket size in samples [default: a tenth of a second of the budget].
    #[arg(long, value_name = "M", help_heading = "Agent")]
    pub burst: Option<u64>,
    /// Drop a sample closer than this to the last kept one on its CPU.
    #[arg(long = "hard-drop-ns", value_name = "NS", default_value_t = 0, help_heading = "Agent")]
    pub hard_drop_ns: u64,
    /// With --mode auto: seconds in diagnostic after the last trigger.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, help_heading = "Agent")]
    pub hold: f64,
    /// With --mode auto: watch these interfaces (comma-separated); a
    /// retransmit rate, an RTT rise or a throughput drop there is a trigger.
    #[arg(long = "anomaly-interfaces", value_delimiter = ',', value_name = "IFACES", requires = "mode", help_heading = "Agent")]
    pub anomaly_interfaces: Vec<String>,
    /// How often the watched interfaces are judged (e.g. 500ms, 2s).
    #[arg(long = "anomaly-interval", value_name = "TIME", default_value = "500ms", help_heading = "Agent")]
    pub anomaly_interval: String,
    /// Close the trace and start a new one (each a complete trace, named
    /// OUTPUT.<UTC time>) at a size (size=100M), after a time (time=30s,
    /// 10m), or on SIGUSR2 (signal).
    #[arg(long = "switch-output", value_name = "WHEN", help_heading = "Agent")]
    pub switch_output: Option<String>,
    /// Keep only the last SIZE of capture (e.g. 256M, in OUTPUT.flight/) and
    /// write it as one trace, OUTPUT.snapshot.<UTC time>, on a trigger:
    /// SIGUSR2, an anomaly (--anomaly-interfaces), POST /api/v1/snapshot or
    /// an Alertmanager webhook to /api/v1/alert.
    #[arg(long = "flight-recorder", value_name = "SIZE", conflicts_with = "switch_output", help_heading = "Agent")]
    pub flight_recorder: Option<String>,
    /// With --switch-output: keep only the newest N files. With
    /// --flight-recorder: the newest N snapshots [default: 8].
    #[arg(long = "max-files", alias = "switch-max-files", value_name = "N", help_heading = "Agent")]
    pub max_files: Option<usize>,
    /// Store host context once a second (load, CPU, softirqs, memory,
    /// network devices, TCP counters; `msen info --host`). On by default
    /// with -a, -C and --mode/--budget.
    #[arg(long, conflicts_with = "no_host", help_heading = "Agent")]
    pub host: bool,
    /// No host context.
    #[arg(long = "no-host", help_heading = "Agent")]
    pub no_host: bool,
    /// Serve Prometheus metrics at ADDR:PORT (e.g. 127.0.0.1:9464; a bare port is loopback).
    #[arg(long, value_name = "ADDR:PORT", help_heading = "Agent")]
    pub metrics: Option<String>,
    /// Serve the control API (/api/v1/...) at ADDR:PORT; a non-loopback address needs --control-token.
    #[arg(long, value_name = "ADDR:PORT", help_heading = "Agent")]
    pub control: Option<String>,
    /// The bearer token the control API requires (first line of FILE).
    #[arg(long = "control-token", value_name = "FILE", requires = "control", help_heading = "Agent")]
    pub control_token: Option<PathBuf>,
    /// Stop after this many seconds (a started command gets SIGTERM, then SIGKILL).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Output trace file (`-`: stream to stdout). An existing file is kept as FILE.old.
    #[arg(short = 'o', long = "output", default_value = "msen.data")]
    pub output: PathBuf,
    /// Write buffered samples to the trace (and, with --clickhouse, send
    /// them) at this interval; a crash loses at most one interval.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub flush: f64,
    #[command(flatten)]
    pub ch: ClickHouseArgs,
    /// Data pages per CPU ring buffer (a power of two).
    #[arg(short = 'm', long = "mmap-pages", default_value_t = 256)]
    pub mmap_pages: usize,
    /// zstd level of trace blocks (1 fastest .. 22 smallest).
    #[arg(long = "compression-level", default_value_t = 3)]
    pub level: i32,
    /// Do not print the capture summary.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Write a synthetic trace instead of capturing: false-sharing,
    /// true-sharing, remote-dram, clean or mixed (a 2-socket Intel machine).
    #[arg(long, value_name = "SCENARIO")]
    pub mock: Option<String>,
    /// Repetitions of the mock scenario's access pattern.
    #[arg(long, default_value_t = 1000, requires = "mock")]
    pub rounds: u64,
    /// With --mock: play the scenario live at N samples per second through
    /// the capture's own pipeline (budget, modes, metrics, control,
    /// --clickhouse), until --duration or Ctrl-C, instead of writing it at once.
    #[arg(long, value_name = "N", requires = "mock", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub rate: Option<u64>,
    /// Seed of the mock generator.
    #[arg(long, default_value_t = 1, requires = "mock")]
    pub seed: u64,
    /// The command to run and record (`--` before it is optional).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Where and how captures go into ClickHouse (`export --clickhouse`,
/// `record --clickhouse`).
#[derive(Debug, Args, Clone)]
pub struct ClickHouseArgs {
    /// Upload into ClickHouse at this URL (http://HOST:8123 or https://...), exactly once per capture.
    #[arg(long, value_name = "URL")]
    pub clickhouse: Option<String>,
    /// The ClickHouse database of the tables.
    #[arg(long, value_name = "NAME", default_value = "default", requires = "clickhouse")]
    pub database: String,
    /// Create the tables that are missing (the DDL for the server's version).
    #[arg(long = "create-tables", requires = "clickhouse")]
    pub create_tables: bool,
    /// With --create-tables on a 23.x+ server: drop a capture's rows this many days after it was taken.
    #[arg(long = "ttl-days", value_name = "DAYS", requires = "create_tables")]
    pub ttl_days: Option<u32>,
    /// Read the ClickHouse password from the first line of this file.
    #[arg(long = "password-file", value_name = "FILE", requires = "clickhouse")]
    pub password_file: Option<PathBuf>,
    /// Samples per INSERT, at most 1000000 (one INSERT is one block: atomic).
    #[arg(long = "batch-rows", value_name = "N", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000), requires = "clickhouse")]
    pub batch_rows: u64,
    /// Retries of a failed request (the server restarting, a reset connection) before giving up.
    #[arg(long, value_name = "N", default_value_t = 5, requires = "clickhouse")]
    pub retries: u32,
}

impl ClickHouseArgs {
    pub fn options(&self) -> crate::export::clickhouse::Options {
        crate::export::clickhouse::Options {
            url: self.clickhouse.clone().unwrap_or_default(),
            database: self.database.clone(),
            create_tables: self.create_tables,
            ttl_days: self.ttl_days,
            password_file: self.password_file.clone(),
            max_rows: self.batch_rows,
            retries: self.retries,
            timeout: Duration::from_secs(300),
            progress: true,
        }
    }
}

#[derive(Debug, Args)]
#[command(after_help = "TABLES (the export tables; every one also has a `capture` column naming its input):
    samples   (ms_raw_samples)   one row per sample: time, cpu, pid, tid, comm, event, period, ip, symbol,
                                 dso, stack_id, flow_id, data_addr, mem_op, mem_level, mem_snoop, weight, ...
    stacks    (ms_stack_traces)  one row per distinct call chain: stack_id, depth, ips, symbols, dsos
    rollup    (ms_flow_rollup)   per second, flow, function and event: samples, period, memory levels
    flows     (ms_flows)         the flow table: flow_id, 5-tuple, bytes, retransmits, srtt_us, samples
    objects   (ms_data_objects)  data objects touched: pid, object, type, address range, loads, stores
    captures  (ms_captures)      one row per input: host, kernel, CPU, duration, events, counts
    `msen export --clickhouse-ddl old` documents every column.

EXAMPLES:
    msen sql \"SELECT symbol, count(*) AS n FROM samples GROUP BY symbol ORDER BY n DESC LIMIT 10\"
    msen sql \"SELECT capture, count(*) FROM samples GROUP BY capture\" -i a.msen -i b.msen
    msen sql \"SELECT f.flow, count(*) AS n FROM samples s JOIN flows f USING (capture, flow_id) GROUP BY f.flow\"
    msen sql \"SELECT mem_level, avg(weight) FROM samples WHERE mem_op = 'LOAD' GROUP BY mem_level\" --format csv

Needs the \"polars\" build (cargo build --release --features polars; scripts/setup.sh --with-polars).")]
pub struct SqlArgs {
    /// The query (polars SQL: SELECT, JOIN, GROUP BY, ORDER BY, window functions, ...).
    #[arg(value_name = "QUERY")]
    pub query: String,
    /// Traces to query (msen traces or perf.data; repeatable; default msen.data).
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: SqlFormat,
    /// Look for binaries under this directory (as perf --symfs).
    #[arg(long, value_name = "DIR")]
    pub symfs: Option<PathBuf>,
    /// Kernel symbols from this kallsyms file instead of the one in the trace.
    #[arg(long, value_name = "FILE")]
    pub kallsyms: Option<PathBuf>,
}

impl SqlArgs {
    pub fn paths(&self) -> Vec<PathBuf> {
        if self.inputs.is_empty() {
            vec![PathBuf::from("msen.data")]
        } else {
            self.inputs.clone()
        }
    }
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions { symfs: self.symfs.clone(), kallsyms: self.kallsyms.clone(), ..Default::default() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqlFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Percentage {
    Absolute,
    Relative,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
    /// Collapsed stacks ("comm;outer;...;inner count"), for flame graph tools.
    Folded,
    /// A flame graph SVG (inferno).
    Flamegraph,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Table,
    Json,
    Csv,
    /// For a pull-request comment.
    Markdown,
    /// GitHub Actions workflow annotations (::error ...).
    Github,
    /// JUnit XML for CI test reports.
    Junit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Normalize {
    /// Shares of each event's period (perf diff's percentages).
    Share,
    /// Period per second of capture.
    PerSecond,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InfoFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScriptFormatArg {
    Text,
    Jsonl,
}

/// Options every analysis takes.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Trace to read (default msen.data).
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Trace to read, as a positional argument.
    #[arg(value_name = "FILE", conflicts_with = "input")]
    pub file: Option<PathBuf>,
    /// Analyze the blocks that pass their checksum and skip corrupt ones.
    #[arg(long)]
    pub skip_corrupt: bool,
    /// Look for binaries under this directory (as perf --symfs).
    #[arg(long, value_name = "DIR")]
    pub symfs: Option<PathBuf>,
    /// Kernel symbols from this kallsyms file instead of the one in the trace.
    #[arg(long, value_name = "FILE")]
    pub kallsyms: Option<PathBuf>,
    /// JIT symbols from this perf-PID.map file, besides those captured in the trace.
    #[arg(long = "jit-map", value_name = "FILE")]
    pub jit_map: Option<PathBuf>,
    /// Data objects to name data addresses: `ADDRESS SIZE NAME [TYPE]` per line.
    #[arg(long = "data-objects", value_name = "FILE")]
    pub data_objects: Option<PathBuf>,
}

impl InputArgs {
    pub fn path(&self) -> PathBuf {
        self.input.clone().or_else(|| self.file.clone()).unwrap_or_else(|| PathBuf::from("msen.data"))
    }
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            open: OpenOptions { skip_corrupt: self.skip_corrupt },
            symfs: self.symfs.clone(),
            kallsyms: self.kallsyms.clone(),
            jit_map: self.jit_map.clone(),
            data_objects: self.data_objects.clone(),
            kernel_symbols: None,
        }
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "SORT KEYS: comm, pid, tid, dso, sym, srcline, cpu, event; memory samples: mem, snoop, tlb, lock, blocked, weight;\nflows: flow, flow_local, flow_remote, flow_port, netns, flow_rule; with --branch: dso_from, dso_to, sym_from, sym_to\n\nEXAMPLES:\n    msen report                                 hot code in msen.data, with call graphs when it has chains\n    msen report --sort sym --percent-limit 1 -g fractal,2,callee\n    msen report --no-children -g none --format csv\n    msen report --sort flow,sym                 hot functions per network flow\n    msen report --time 50%/2 --tid 1234         the second half of the capture, one thread\n    msen report -i perf.data --dsos libc.so.6 --percentage relative"
)]
pub struct ReportArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Group rows by these keys, in order.
    #[arg(short = 's', long = "sort", value_delimiter = ',', default_value = "comm,dso,sym")]
    pub sort: Vec<String>,
    /// Hide rows below this percentage.
    #[arg(long = "percent-limit", value_name = "PCT", default_value_t = 0.0)]
    pub percent_limit: f64,
    /// Show at most N rows (per event).
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Only samples of these pids.
    #[arg(long = "pid", value_delimiter = ',')]
    pub pids: Vec<u32>,
    /// Only samples of these threads.
    #[arg(long = "tid", value_delimiter = ',')]
    pub tids: Vec<u32>,
    /// Only rows of these shared objects (file name or path).
    #[arg(short = 'd', long = "dsos", value_delimiter = ',', value_name = "DSO")]
    pub dsos: Vec<String>,
    /// Only rows of these symbols.
    #[arg(long = "symbols", value_delimiter = ',', value_name = "SYM")]
    pub symbols: Vec<String>,
    /// Only samples in this time span: START,STOP in seconds (as perf script
    /// and msen script print times), A%-B% of the recording, or N%/K (its K-th N% slice).
    #[arg(long = "time", value_name = "SPAN")]
    pub time: Option<String>,
    /// Only samples taken while the agent was in this mode (a capture
    /// recorded with --mode or --budget).
    #[arg(long, value_name = "MODE", value_parser = ["sentinel", "diagnostic"])]
    pub mode: Option<String>,
    /// With filters, percentages of what they keep (relative) or of every sample (absolute).
    #[arg(long = "percentage", value_enum, default_value = "absolute")]
    pub percentage: Percentage,
    /// Show the number of samples of each row.
    #[arg(short = 'n', long = "show-nr-samples")]
    pub show_samples: bool,
    /// Output fields, as perf report -F: overhead, overhead_children, sample,
    /// period and sort keys (comm, dso, sym, ...), e.g. -F overhead,sample,comm,sym.
    /// The sort keys among them replace --sort.
    #[arg(short = 'F', long = "fields", value_delimiter = ',', value_name = "FIELDS")]
    pub fields: Vec<String>,
    /// Print symbol names whole on a terminal too (by default they are fit
    /// to its width, C++ templates and arguments elided; pipes get them whole).
    #[arg(long = "full-names")]
    pub full_names: bool,
    /// Only samples of these commands.
    #[arg(long = "comm", value_delimiter = ',')]
    pub comms: Vec<String>,
    /// Only samples taken on these CPUs.
    #[arg(long = "cpu", value_delimiter = ',')]
    pub cpus: Vec<u32>,
    /// Do not compute inclusive (children) shares from call chains.
    #[arg(long, conflicts_with = "children")]
    pub no_children: bool,
    /// Inclusive (children) shares from call chains (the default when the trace has them).
    #[arg(long)]
    pub children: bool,
    /// Call graphs under each row, as perf report -g:
    /// MODE[,THRESHOLD[,PRINT_LIMIT]][,ORDER] with MODE graph (default),
    /// fractal, flat, folded or none and ORDER caller or callee. On by
    /// default in the table when the trace has call chains.
    #[arg(short = 'g', long = "call-graph", value_name = "OPTS", num_args = 0..=1, default_missing_value = "graph", require_equals = false)]
    pub call_graph: Option<String>,
    /// Caller-first call graphs (perf's --inverted).
    #[arg(short = 'G', long = "inverted")]
    pub inverted: bool,
    /// Use at most N frames of each call chain (counted from the sampled function).
    #[arg(long = "max-stack", value_name = "N")]
    pub max_stack: Option<usize>,
    /// Branch view: count taken branches from branch stacks (LBR, BRS, BRBE);
    /// default sort dso_from,sym_from,dso_to,sym_to.
    #[arg(short = 'b', long = "branch")]
    pub branch: bool,
    /// Count inlined functions (from DWARF) in children and stacks.
    #[arg(long)]
    pub inline: bool,
    /// Overhead by sample weight (memory latency) instead of period, as
    /// perf mem report: e.g. --weight --sort mem,snoop,tlb,lock,blocked,weight.
    #[arg(long)]
    pub weight: bool,
    /// Only samples of flows matching CIDR[:PORT] (repeatable; e.g. 10.0.0.0/8, [::1]:7001, :443).
    #[arg(long = "flow", value_name = "CIDR[:PORT]")]
    pub flow: Vec<String>,
    /// Only samples of flows with this local or remote port.
    #[arg(long = "port", value_name = "N")]
    pub port: Vec<u16>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
}

#[derive(Debug, Args)]
#[command(after_help = "ROWS are matched by name on the --sort keys (never by address), so traces of
rebuilt binaries, other machines and perf.data files compare. A row is flagged when its
self share changed at the --confidence after Holm's correction for the number of rows
(binomial sample counts with one run a side; the run-to-run variance with repeated runs).
Time that moved between a caller and its callee, their total unchanged, is a cost shift.\n
FAIL-ON: [KEY:NAME[:self|children] | self | children | total] (>|>=|<|<=) [+-]N(pp|%)[@CONF]
    self>+2pp                  any row's self share grew by more than 2 points
    sym:parse_json>+10%        parse_json's self grew by more than 10%
    sym:parse*:children>+5pp   a prefix, inclusive shares
    total>+5%@0.95             the event's total period (per --normalize) grew 5%, at 95%\n
EXAMPLES:
    msen diff base.msen new.msen                        perf diff's view, with significance
    msen diff -s sym -c ratio base.data new.data        perf.data files, perf diff's ratio
    msen diff b1.msen b2.msen b3.msen -- n1.msen n2.msen n3.msen   repeated runs
    msen diff base.msen new.msen --fail-on 'self>+2pp' --format github
    msen diff base.msen new.msen --format markdown > comment.md
    msen diff base.msen new.msen --flamegraph diff.svg
    msen diff --per-event instructions base.msen new.msen   per unit of work
    msen diff --false-share base.msen new.msen          new or grown contended cache lines\n
EXIT STATUS:
    0 no regression beyond the thresholds, 1 regression, 2 error (as diff(1))")]
pub struct DiffArgs {
    /// BASE and NEW (msen traces or perf.data). With repeated runs: the base
    /// runs, then `--`, then the new runs.
    #[arg(value_name = "BASE NEW", required = true)]
    pub traces: Vec<PathBuf>,
    /// The new runs (after `--`; options go before it).
    #[arg(last = true, value_name = "NEW")]
    pub new_runs: Vec<PathBuf>,
    /// Match rows by these keys (comm, dso, sym, srcline, flow, ...).
    #[arg(short = 's', long = "sort", value_delimiter = ',', default_value = "dso,sym")]
    pub sort: Vec<String>,
    /// perf diff's computation and row order: delta-abs, delta, ratio, wdiff:W_BASE,W_NEW.
    #[arg(short = 'c', long = "compute", default_value = "delta-abs", value_name = "HOW")]
    pub compute: String,
    /// What a row's value is relative to.
    #[arg(long, value_enum, default_value = "share")]
    pub normalize: Normalize,
    /// Per unit of work: divide by this event's total period in the same trace
    /// (e.g. instructions).
    #[arg(long = "per-event", value_name = "EVENT", conflicts_with = "normalize")]
    pub per_event: Option<String>,
    /// Per unit of work you counted: one number per base trace (comma-separated)...
    #[arg(long = "work-base", value_delimiter = ',', value_name = "N", requires = "work_new", conflicts_with_all = ["per_event", "normalize"])]
    pub work_base: Vec<f64>,
    /// ... and one per new trace.
    #[arg(long = "work-new", value_delimiter = ',', value_name = "N", requires = "work_base")]
    pub work_new: Vec<f64>,
    /// Confidence a change needs to be flagged (after the correction for many
    /// rows). High by default: with one run a side only sampling error is
    /// known, and machines add their own run-to-run noise.
    #[arg(long, default_value_t = 0.999, value_name = "P")]
    pub confidence: f64,
    /// Never flag a row with fewer samples than this (both sides together).
    #[arg(long = "min-samples", default_value_t = 20, value_name = "N")]
    pub min_samples: u64,
    /// Fail (exit 1) when this holds for a row or the total (repeatable; see FAIL-ON).
    /// Without it, any regressed row fails.
    #[arg(long = "fail-on", value_name = "EXPR")]
    pub fail_on: Vec<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: DiffFormat,
    /// Also write a differential flame graph (SVG: red grew, blue shrank).
    #[arg(long, value_name = "FILE")]
    pub flamegraph: Option<PathBuf>,
    /// Show at most N rows per event.
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Show only rows that changed (regressed, improved, shifted, new, gone).
    #[arg(long)]
    pub changed: bool,
    /// Compare contended cache lines (msen false-share): new or grown HITM shares.
    #[arg(long = "false-share", conflicts_with = "numa")]
    pub false_share: bool,
    /// Compare remote-access ratios per function (msen numa).
    #[arg(long)]
    pub numa: bool,
    /// Only samples of these commands.
    #[arg(long = "comm", value_delimiter = ',')]
    pub comms: Vec<String>,
    /// Only rows of these shared objects.
    #[arg(short = 'd', long = "dsos", value_delimiter = ',', value_name = "DSO")]
    pub dsos: Vec<String>,
    /// Only rows of these symbols.
    #[arg(long = "symbols", value_delimiter = ',', value_name = "SYM")]
    pub symbols: Vec<String>,
    /// Only samples in this span of each trace (as report --time).
    #[arg(long = "time", value_name = "SPAN")]
    pub time: Option<String>,
    /// With filters, shares of what they keep (relative) or of every sample (absolute).
    #[arg(long = "percentage", value_enum, default_value = "absolute")]
    pub percentage: Percentage,
    /// Do not compare inclusive (children) shares.
    #[arg(long)]
    pub no_children: bool,
    /// Count inlined functions (from DWARF) as rows of their own.
    #[arg(long)]
    pub inline: bool,
    /// Only samples of flows matching CIDR[:PORT].
    #[arg(long = "flow", value_name = "CIDR[:PORT]")]
    pub flow: Vec<String>,
    /// Analyze the blocks that pass their checksum and skip corrupt ones.
    #[arg(long)]
    pub skip_corrupt: bool,
    /// Look for binaries under this directory (as perf --symfs).
    #[arg(long, value_name = "DIR")]
    pub symfs: Option<PathBuf>,
    /// Kernel symbols from this kallsyms file instead of the ones in the traces.
    #[arg(long, value_name = "FILE")]
    pub kallsyms: Option<PathBuf>,
}

impl DiffArgs {
    /// The base and new traces: `BASE NEW`, or `BASE... -- NEW...`.
    pub fn sides(&self) -> Result<(Vec<PathBuf>, Vec<PathBuf>), UsageError> {
        if self.new_runs.is_empty() {
            match self.traces.as_slice() {
                [b, n] => Ok((vec![b.clone()], vec![n.clone()])),
                _ => Err(UsageError(format!(
                    "diff takes BASE NEW, or repeated runs as BASE... -- NEW...; got {} traces and no `--`",
                    self.traces.len()
                ))),
            }
        } else {
            Ok((self.traces.clone(), self.new_runs.clone()))
        }
    }

    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            open: OpenOptions { skip_corrupt: self.skip_corrupt },
            symfs: self.symfs.clone(),
            kallsyms: self.kallsyms.clone(),
            jit_map: None,
            data_objects: None,
            kernel_symbols: None,
        }
    }

    pub fn report_config(&self) -> Result<ReportConfig, UsageError> {
        let mut sort = Vec::new();
        for s in &self.sort {
            let k = SortKey::parse(s.trim()).ok_or_else(|| {
                UsageError(format!(
                    "unknown sort key '{s}'; use comm, dso, sym, srcline, flow, flow_local, flow_remote, flow_port, netns, flow_rule, event, mem, snoop, tlb, lock, blocked (pid, tid and cpu rarely match between runs)"
                ))
            })?;
            if matches!(k, SortKey::DsoFrom | SortKey::DsoTo | SortKey::SymFrom | SortKey::SymTo) {
                return Err(UsageError(format!("sort key '{}' is a branch key; diff compares samples", k.name())));
            }
            if !sort.contains(&k) {
                sort.push(k);
            }
        }
        if sort.is_empty() {
            return Err(UsageError("--sort needs at least one key".into()));
        }
        Ok(ReportConfig {
            sort_starts_with_sym: sort.first() == Some(&SortKey::Sym),
            sort,
            comms: self.comms.clone(),
            dsos: self.dsos.clone(),
            symbols: self.symbols.clone(),
            time: checked_time(&self.time)?,
            relative: self.percentage == Percentage::Relative,
            children: if self.no_children { Children::Off } else { Children::Auto },
            inline: self.inline,
            flow_filters: flow_filters(&self.flow, &[])?,
            ..Default::default()
        })
    }

    pub fn diff_config(&self) -> Result<crate::analyze::diff::DiffConfig, UsageError> {
        use crate::analyze::diff::{Compute, DiffConfig, FailOn, Norm};
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(UsageError(format!("--confidence {}: give a probability between 0 and 1, e.g. 0.99", self.confidence)));
        }
        let norm = if let Some(e) = &self.per_event {
            Norm::PerEvent(e.clone())
        } else if !self.work_base.is_empty() {
            Norm::PerWork { base: self.work_base.clone(), new: self.work_new.clone() }
        } else {
            match self.normalize {
                Normalize::Share => Norm::Share,
                Normalize::PerSecond => Norm::PerSecond,
            }
        };
        Ok(DiffConfig {
            compute: Compute::parse(&self.compute).map_err(UsageError)?,
            norm,
            confidence: self.confidence,
            min_samples: self.min_samples,
            fail_on: self.fail_on.iter().map(|f| FailOn::parse(f)).collect::<Result<_, _>>().map_err(UsageError)?,
        })
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "EXAMPLES:\n    msen import perf.data -o app.msen\n    perf record -o - -- ./app | msen import - -o app.msen\n\nAnalyses also read perf.data directly: msen report -i perf.data"
)]
pub struct ImportArgs {
    /// perf.data to read (`-` for standard input, e.g. from `perf record -o -`).
    #[arg(value_name = "PERF_DATA")]
    pub input: PathBuf,
    /// Trace to write.
    #[arg(short = 'o', long = "output", default_value = "msen.data")]
    pub output: PathBuf,
    /// zstd level of trace blocks (1 fastest .. 22 smallest).
    #[arg(long = "compression-level", default_value_t = 3)]
    pub level: i32,
    /// Store the symbols of the sampled addresses (kernel included) in the
    /// trace, resolved here, so it reads the same where the binaries are not.
    #[arg(long)]
    pub embed: bool,
    /// As --embed, plus file:line and inline frames of every sampled address.
    #[arg(long = "embed-lines")]
    pub embed_lines: bool,
    /// Look for binaries under this directory instead of / (for --embed).
    #[arg(long, value_name = "DIR")]
    pub symfs: Option<PathBuf>,
    /// Kernel symbols from this file (for --embed; default: the running
    /// kernel's or perf's build-id cache, when the build-id matches).
    #[arg(long, value_name = "FILE")]
    pub kallsyms: Option<PathBuf>,
}

impl ImportArgs {
    pub fn load_options(&self) -> crate::analyze::loaded::LoadOptions {
        crate::analyze::loaded::LoadOptions { symfs: self.symfs.clone(), kallsyms: self.kallsyms.clone(), ..Default::default() }
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Reads addresses (hex, one per line) from standard input when none are given.\n\nEXAMPLES:\n    msen symbolize -e ./app 0x401136\n    nm -n ./app | awk '{print $1}' | msen symbolize -e ./app --inline"
)]
pub struct SymbolizeArgs {
    /// The ELF file whose virtual addresses are given.
    #[arg(short = 'e', long = "exe", value_name = "FILE")]
    pub exe: PathBuf,
    /// Print the inline chain (innermost first), as addr2line -i.
    #[arg(short = 'i', long)]
    pub inline: bool,
    /// Demangle C++ and Rust names, as addr2line -C.
    #[arg(short = 'C', long)]
    pub demangle: bool,
    /// Look for debug files under this directory.
    #[arg(long, value_name = "DIR")]
    pub symfs: Option<PathBuf>,
    /// Addresses (hex, with or without 0x).
    #[arg(value_name = "ADDR")]
    pub addrs: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DisplayArg {
    Tot,
    Rmt,
    Lcl,
    Peer,
}

#[derive(Debug, Args)]
#[command(after_help = "EXAMPLES:\n    msen false-share -i perf.data\n    msen false-share --display rmt --format json")]
pub struct FalseShareArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Rank lines by total, remote or local HITMs, or peer accesses.
    #[arg(short = 'd', long, value_enum, default_value = "tot")]
    pub display: DisplayArg,
    /// Show every line, shared or not, without the 0.1% threshold.
    #[arg(long)]
    pub show_all: bool,
    /// Cache-line size in bytes (default: the size recorded in the trace).
    #[arg(long, value_name = "BYTES")]
    pub line_size: Option<u32>,
    /// Double the recorded line size (adjacent-line prefetch pairs).
    #[arg(long)]
    pub double_cl: bool,
    /// Node view: each line's counters per NUMA node of the sampling CPU.
    #[arg(short = 'N', long = "node-info")]
    pub node_info: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub format: TableFormat,
}

#[derive(Debug, Args)]
#[command(after_help = "EXAMPLES:\n    msen numa -i perf.data\n    msen numa --top 20 --format json")]
pub struct NumaArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Rows per ranking.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    #[arg(long, value_enum, default_value = "table")]
    pub format: TableFormat,
}

#[derive(Debug, Args)]
#[command(after_help = "EXAMPLES:
    msen flows                                  which flows the CPU worked for (msen.data)
    msen flows -i capture.msen --format json
    msen report --sort flow,sym                 hot functions per flow
    msen report --flow 10.0.0.0/8 --port 7001   one service's samples")]
pub struct FlowsArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Top functions shown per flow.
    #[arg(long = "functions", default_value_t = 3)]
    pub functions: usize,
    #[arg(long, value_enum, default_value = "table")]
    pub format: FlowsFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlowsFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
#[command(after_help = "EXAMPLES:
    msen export --perf-data out.data -i app.msen          perf report / perf c2c report -i out.data
    msen export --pprof app.pb.gz -i app.msen             go tool pprof -top app.pb.gz; Pyroscope, Parca
    msen export --firefox app.json.gz --comm server       open in profiler.firefox.com
    msen export --speedscope app.json --time 50%-100%     open in speedscope.app
    msen export --pprof web.pb.gz --port 443              the samples of one service's flows
    msen export --clickhouse http://ch:8123 --create-tables a.msen b.msen perf.data
                                                          fleet tables; a re-run sends only what is missing
    CLICKHOUSE_PASSWORD=... msen export --clickhouse https://ch.example:8443 --database perf host*.msen
    msen export --clickhouse-ddl modern                   print the CREATE TABLE statements
    msen export --parquet tables/ a.msen b.msen           duckdb: SELECT ... FROM 'tables/ms_raw_samples/*.parquet'

ClickHouse: credentials come from CLICKHOUSE_USER / CLICKHOUSE_PASSWORD or --password-file, never
from the command line. Queries that answer report, false-share and numa over many captures are in
formats/clickhouse/queries/.")]
#[command(group = clap::ArgGroup::new("bulk").args(["clickhouse", "parquet"]).multiple(true))]
pub struct ExportArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// More traces (msen traces or perf.data), for --clickhouse and --parquet.
    #[arg(value_name = "MORE", requires = "bulk")]
    pub more: Vec<PathBuf>,
    /// Write the export tables as Parquet: DIR/<table>/<capture id>.parquet (needs the "polars" build).
    #[arg(long, value_name = "DIR")]
    pub parquet: Option<PathBuf>,
    #[command(flatten)]
    pub ch: ClickHouseArgs,
    /// Print the ClickHouse DDL for old (before 23.x) or modern servers, and exit.
    #[arg(long = "clickhouse-ddl", value_name = "VARIANT", value_parser = ["old", "modern"])]
    pub clickhouse_ddl: Option<String>,
    /// Write a file-mode perf.data that perf, hotspot and samply open.
    #[arg(long = "perf-data", value_name = "OUT")]
    pub perf_data: Option<PathBuf>,
    /// Write a gzipped pprof profile (go tool pprof, Pyroscope, Parca, Grafana).
    #[arg(long, value_name = "OUT.pb.gz")]
    pub pprof: Option<PathBuf>,
    /// Write a Firefox Profiler profile (profiler.firefox.com; gzipped when the name ends in .gz).
    #[arg(long, value_name = "OUT.json.gz")]
    pub firefox: Option<PathBuf>,
    /// Write a speedscope profile (speedscope.app).
    #[arg(long, value_name = "OUT.json")]
    pub speedscope: Option<PathBuf>,
    /// Only samples of these pids.
    #[arg(long = "pid", value_delimiter = ',')]
    pub pids: Vec<u32>,
    /// Only samples of these threads.
    #[arg(long = "tid", value_delimiter = ',')]
    pub tids: Vec<u32>,
    /// Only samples of these commands.
    #[arg(long = "comm", value_delimiter = ',')]
    pub comms: Vec<String>,
    /// Only samples taken on these CPUs.
    #[arg(long = "cpu", value_delimiter = ',')]
    pub cpus: Vec<u32>,
    /// Only samples in this time span (as report --time).
    #[arg(long = "time", value_name = "SPAN")]
    pub time: Option<String>,
    /// Only samples of flows matching CIDR[:PORT] (repeatable).
    #[arg(long = "flow", value_name = "CIDR[:PORT]")]
    pub flow: Vec<String>,
    /// Only samples of flows with this local or remote port.
    #[arg(long = "port", value_name = "N")]
    pub port: Vec<u16>,
}

impl ExportArgs {
    /// The sample filters, as report's (profiles only; perf.data is written whole).
    pub fn filter_config(&self) -> Result<ReportConfig, UsageError> {
        let filtered = !(self.pids.is_empty()
            && self.tids.is_empty()
            && self.comms.is_empty()
            && self.cpus.is_empty()
            && self.time.is_none()
            && self.flow.is_empty()
            && self.port.is_empty());
        if self.perf_data.is_none()
            && self.pprof.is_none()
            && self.firefox.is_none()
            && self.speedscope.is_none()
            && self.ch.clickhouse.is_none()
            && self.parquet.is_none()
            && self.clickhouse_ddl.is_none()
        {
            return Err(UsageError(
                "export needs an output: --perf-data, --pprof, --firefox, --speedscope, --clickhouse or --parquet".into(),
            ));
        }
        if filtered && (self.ch.clickhouse.is_some() || self.parquet.is_some()) {
            return Err(UsageError("--clickhouse and --parquet export whole captures (filter in SQL); export profiles separately".into()));
        }
        if filtered && self.perf_data.is_some() {
            return Err(UsageError(
                "--perf-data writes the whole trace; the filters apply to --pprof, --firefox and --speedscope (export them separately)"
                    .into(),
            ));
        }
        Ok(ReportConfig {
            pids: self.pids.clone(),
            tids: self.tids.clone(),
            comms: self.comms.clone(),
            cpus: self.cpus.clone(),
            time: checked_time(&self.time)?,
            flow_filters: flow_filters(&self.flow, &self.port)?,
            ..Default::default()
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
#[command(after_help = "EXAMPLES:
    msen info                                   what msen.data holds
    msen info -i perf.data                      a perf.data's header, events and record counts
    msen info --format json | jq .flows         flow context, hooks and counters")]
pub struct InfoArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: InfoFormat,
    /// Print the host context timeline (one line a second: load, CPU,
    /// memory, network, TCP) instead of the summary.
    #[arg(long)]
    pub host: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "EXAMPLES:
    msen script | head                          every sample, decoded, in time order
    msen script --format jsonl | jq -c 'select(.flow != null)'
    msen script --all -i perf.data              with mmap, comm, fork, exit and lost records
    msen script --format jsonl --srcline        with file:line and inline frames")]
pub struct ScriptArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: ScriptFormatArg,
    /// Also print non-sample records (mmap, comm, fork, exit, lost, ...).
    #[arg(long)]
    pub all: bool,
    /// Add source line and inline chain (DWARF) to each sample (jsonl).
    #[arg(long)]
    pub srcline: bool,
}

/// A user error in the arguments, reported with exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// `--switch-output`: size=SIZE (K, M, G: powers of 1024), time=TIME
/// (ms, s, m, h), signal; a bare size or time as perf takes them.
pub fn parse_switch_output(w: &str) -> Result<crate::record::SwitchOutput, String> {
    use crate::record::SwitchOutput;
    let bad = || format!("--switch-output {w}: use size=100M, time=30s or signal");
    if w == "signal" {
        return Ok(SwitchOutput::Signal);
    }
    let (kind, v) = match w.split_once('=') {
        Some((k, v)) => (k, v),
        None if w.ends_with(['s', 'm', 'h']) => ("time", w),
        None => ("size", w),
    };
    match kind {
        "size" => {
            let (num, mul) = match v.char_indices().last() {
                Some((i, c)) if c.is_ascii_alphabetic() => (
                    &v[..i],
                    match c.to_ascii_uppercase() {
                        'B' => 1,
                        'K' => 1 << 10,
                        'M' => 1 << 20,
                        'G' => 1 << 30,
                        _ => return Err(bad()),
                    },
                ),
                _ => (v, 1),
            };
            let n: u64 = num.parse().map_err(|_| bad())?;
            match n.checked_mul(mul) {
                Some(b) if b >= 64 << 10 => Ok(SwitchOutput::Size(b)),
                _ => Err(format!("--switch-output {w}: a file needs at least 64K")),
            }
        }
        "time" => {
            let (num, scale) = if let Some(x) = v.strip_suffix("ms") {
                (x, 1e-3)
            } else if let Some(x) = v.strip_suffix('s') {
                (x, 1.0)
            } else if let Some(x) = v.strip_suffix('m') {
                (x, 60.0)
            } else if let Some(x) = v.strip_suffix('h') {
                (x, 3600.0)
            } else {
                (v, 1.0)
            };
            let secs = num.parse::<f64>().map_err(|_| bad())? * scale;
            if !(0.1..=86400.0 * 7.0).contains(&secs) {
                return Err(format!("--switch-output {w}: the time must be 100ms..7 days"));
            }
            Ok(SwitchOutput::Time(Duration::from_secs_f64(secs)))
        }
        _ => Err(bad()),
    }
}

/// `msen record --config FILE`: the file's options put right after
/// `record`, before the command line's own (which then override them).
/// Returns the new argv and notes to print.
pub fn expand_config(argv: Vec<std::ffi::OsString>) -> Result<(Vec<std::ffi::OsString>, Vec<String>), UsageError> {
    use clap::CommandFactory;
    let Some(rec) = argv.iter().position(|a| a == "record") else { return Ok((argv, Vec::new())) };
    let end = argv.iter().skip(rec).position(|a| a == "--").map_or(argv.len(), |p| rec + p);
    let mut file = None;
    for (i, a) in argv[rec..end].iter().enumerate() {
        let Some(a) = a.to_str() else { continue };
        if a == "--config" {
            file = argv.get(rec + i + 1).map(PathBuf::from);
        } else if let Some(f) = a.strip_prefix("--config=") {
            file = Some(PathBuf::from(f));
        }
    }
    let Some(file) = file else { return Ok((argv, Vec::new())) };
    let text = std::fs::read_to_string(&file).map_err(|e| UsageError(format!("--config {}: {e}", file.display())))?;
    let cmd = Cli::command();
    let args: Vec<(String, bool, Option<char>)> = cmd
        .find_subcommand("record")
        .map(|r| {
            r.get_arguments().filter_map(|a| Some((a.get_long()?.to_string(), a.get_action().takes_values(), a.get_short()))).collect()
        })
        .unwrap_or_default();
    let longs: Vec<(String, bool)> = args.iter().map(|(l, v, _)| (l.clone(), *v)).collect();
    let e = config::expand(&text, &file.display().to_string(), &longs)?;
    // An option the command line gives replaces the file's (also for the
    // repeatable ones, -e and the filters, which would otherwise add up).
    let given = |long: &str| {
        let short = args.iter().find(|(l, _, _)| l == long).and_then(|(_, _, s)| *s);
        argv[rec + 1..end].iter().filter_map(|a| a.to_str()).any(|a| {
            a == format!("--{long}")
                || a.starts_with(&format!("--{long}="))
                || short.is_some_and(|c| {
                    a.strip_prefix('-')
                        .is_some_and(|f| !f.starts_with('-') && f.chars().take_while(char::is_ascii_alphabetic).any(|x| x == c))
                })
        })
    };
    let mut out = argv[..=rec].to_vec();
    for (flag, value) in e.args.into_iter().filter(|(f, _)| !given(f)) {
        out.push(format!("--{flag}").into());
        out.extend(value.map(Into::into));
    }
    out.extend(argv[rec + 1..].iter().cloned());
    Ok((out, e.notes))
}

/// `--flow CIDR[:PORT]` and `--port N`, as one list of flow filters.
fn flow_filters(flow: &[String], port: &[u16]) -> Result<Vec<crate::flow::FlowFilter>, UsageError> {
    let mut v = Vec::new();
    for f in flow {
        v.extend(crate::flow::FlowFilter::parse(f).map_err(UsageError)?);
    }
    for p in port {
        v.extend(crate::flow::FlowFilter::parse(&format!(":{p}")).map_err(UsageError)?);
    }
    Ok(v)
}

/// `--time`, its syntax checked now (the span needs the trace).
fn checked_time(time: &Option<String>) -> Result<Option<String>, UsageError> {
    if let Some(t) = time {
        crate::analyze::report::time_ranges(t, 0, 1_000_000_000).map_err(UsageError)?;
    }
    Ok(time.clone())
}

impl RecordArgs {
    /// `--mode`/`--budget` and their budgets; None when neither is given
    /// (every sample kept, as perf does).
    fn mode_config(&self) -> Result<Option<crate::record::control::ModeConfig>, UsageError> {
        use crate::record::control::ModeConfig;
        use crate::trace::meta::Mode;
        if self.mode.is_none() && self.budget.is_none() {
            return Ok(None);
        }
        for (name, v) in [
            ("--budget", self.budget.unwrap_or(1)),
            ("--sentinel-budget", self.sentinel_budget),
            ("--diagnostic-budget", self.diagnostic_budget),
        ] {
            if v == 0 || v > 10_000_000 {
                return Err(UsageError(format!("{name} must be 1..=10000000 samples per second per CPU, not {v}")));
            }
        }
        if self.burst == Some(0) {
            return Err(UsageError("--burst must be at least 1 sample".into()));
        }
        if !(self.hold > 0.0 && self.hold <= 86400.0) {
            return Err(UsageError(format!("--hold must be 0..=86400 seconds, not {}", self.hold)));
        }
        let b = |rate| ModeConfig::budget(rate, self.burst, self.hard_drop_ns);
        let hold = Duration::from_secs_f64(self.hold);
        let anomaly = if self.anomaly_interfaces.is_empty() {
            None
        } else {
            if self.mode.as_deref() != Some("auto") {
                return Err(UsageError("--anomaly-interfaces switches modes: it needs --mode auto".into()));
            }
            let mut interfaces = Vec::new();
            for n in &self.anomaly_interfaces {
                let i = crate::flow::Iface::named(n).map_err(|e| UsageError(format!("--anomaly-interfaces: {e}")))?;
                interfaces.push((n.clone(), i));
            }
            let interval = crate::record::anomaly::parse_interval(&self.anomaly_interval).map_err(UsageError)?;
            Some(crate::record::anomaly::AnomalyConfig { interfaces, interval })
        };
        Ok(Some(match (self.mode.as_deref(), self.budget) {
            // A fixed budget: sentinel mode with that budget, never switched.
            (None, Some(n)) => ModeConfig { auto: false, initial: Mode::Sentinel, sentinel: b(n), diagnostic: b(n), hold, anomaly },
            (m, _) => ModeConfig {
                auto: m == Some("auto"),
                initial: if m == Some("diagnostic") { Mode::Diagnostic } else { Mode::Sentinel },
                sentinel: b(self.sentinel_budget),
                diagnostic: b(self.diagnostic_budget),
                hold,
                anomaly,
            },
        }))
    }

    pub fn to_config(&self, command_line: Vec<String>) -> Result<RecordConfig, UsageError> {
        self.to_config_with(command_line, &crate::perf::pmu::Pmus::discover())
    }

    pub fn to_config_with(&self, command_line: Vec<String>, pmus: &crate::perf::pmu::Pmus) -> Result<RecordConfig, UsageError> {
        use crate::record::attrs::{branch, CallGraph, SampleOptions};
        let cpus = match &self.cpu_list {
            Some(l) => {
                let v = crate::perf::sys::parse_cpu_list(l);
                if v.is_empty() {
                    return Err(UsageError(format!("-C {l}: not a CPU list (use e.g. 0-3,8)")));
                }
                Some(v)
            }
            None => None,
        };
        let system_wide = self.all_cpus || cpus.is_some();
        let attach = (!self.pids.is_empty()) as u8 + (!self.tids.is_empty()) as u8 + system_wide as u8;
        if attach > 1 {
            return Err(UsageError("choose one of -a/-C, -p PID and -t TID (a command may follow any of them)".into()));
        }
        let workload = (!self.command.is_empty()).then(|| self.command.clone());
        let target = if system_wide {
            Target::AllCpus
        } else if !self.pids.is_empty() {
            Target::Pids(self.pids.clone())
        } else if !self.tids.is_empty() {
            Target::Tids(self.tids.clone())
        } else if workload.is_some() {
            Target::Command
        } else if self.mock.is_some() && self.rate.is_some() {
            // The mock's own synthetic host: nothing here is sampled.
            Target::AllCpus
        } else {
            return Err(UsageError("nothing to record: give a command (`msen record ./app args`), -a (all CPUs), -p PID or -t TID".into()));
        };
        let mut options = SampleOptions {
            callgraph: CallGraph::None,
            data: self.data,
            weight: self.weight,
            phys_data: self.phys_data,
            data_page_size: self.data_page_size,
            code_page_size: self.code_page_size,
            branch_filter: None,
        };
        options.callgraph = match (&self.call_graph, self.callchain) {
            (Some(m), _) => CallGraph::parse(m).map_err(UsageError)?,
            (None, true) => CallGraph::Fp,
            (None, false) => CallGraph::None,
        };
        options.branch_filter = match (&self.branch_filter, self.branch_any) {
            (Some(j), any) => {
                let mut m = branch::parse(j).map_err(UsageError)?;
                if any {
                    m |= branch::ANY;
                }
                Some(m)
            }
            (None, true) => Some(branch::ANY),
            (None, false) => None,
        };
        let mut names = self.events.clone();
        let mut fallback_reason = None;
        if self.mem || self.c2c {
            // perf mem record: -W -d; perf c2c record adds --phys-data --sample-cpu.
            if self.events.is_empty() {
                let mem = crate::record::attrs::memory_events(pmus, self.ldlat);
                match (mem, self.fallback) {
                    (Ok(ev), _) => names = ev,
                    (Err(why), true) => {
                        fallback_reason = Some(format!(
                            "{}: recording page-faults with their data addresses instead",
                            why.split(';').next().unwrap_or(&why)
                        ));
                        names = vec!["page-faults".into()]
                    }
                    (Err(why), false) => return Err(UsageError(why)),
                }
            }
            options.weight = true;
            options.data = true;
            if self.c2c {
                options.phys_data = true;
            }
        }
        let explicit = !names.is_empty();
        if !explicit {
            // perf's default, cycles:P (the highest precise level that opens).
            names = vec!["cycles:P".to_string()];
        }
        let events = crate::record::events::parse_event_list_with(&names, pmus).map_err(|e| UsageError(e.to_string()))?;
        if events.is_empty() {
            return Err(UsageError("-e needs at least one event".into()));
        }
        let sampling = match (self.freq, self.period) {
            (_, Some(0)) => return Err(UsageError("-c must be at least 1".into())),
            (_, Some(p)) => Sampling::Period(p),
            (0, _) => return Err(UsageError("-F must be at least 1 Hz".into())),
            (f, None) => Sampling::Freq(f),
        };
        if !self.mmap_pages.is_power_of_two() || self.mmap_pages < 2 {
            return Err(UsageError(format!("--mmap-pages must be a power of two >= 2, not {}", self.mmap_pages)));
        }
        let duration = match self.duration {
            Some(d) if !(d > 0.0 && d.is_finite()) => {
                return Err(UsageError(format!("--duration must be a positive number of seconds, not {d}")))
            }
            Some(d) => Some(Duration::from_secs_f64(d)),
            None => None,
        };
        if !(1..=22).contains(&self.level) {
            return Err(UsageError(format!("--compression-level must be 1..=22, not {}", self.level)));
        }
        if !(self.flush >= 0.01 && self.flush <= 3600.0) {
            return Err(UsageError(format!("--flush must be 0.01..=3600 seconds, not {}", self.flush)));
        }
        if self.ch.clickhouse.is_some() && self.output.as_os_str() == "-" {
            return Err(UsageError("--clickhouse follows the trace file as it is written; give -o FILE (not -o -)".into()));
        }
        let modes = self.mode_config()?;
        if self.rate.is_some() && (self.switch_output.is_some() || self.flight_recorder.is_some()) {
            return Err(UsageError(
                "--switch-output and --flight-recorder are not available with --mock --rate yet; record the mock into one file".into(),
            ));
        }
        let flight = match &self.flight_recorder {
            Some(v) => {
                let crate::record::SwitchOutput::Size(n) = parse_switch_output(&format!("size={v}"))
                    .map_err(|e| UsageError(e.replace("--switch-output size=", "--flight-recorder ")))?
                else {
                    return Err(UsageError(format!("--flight-recorder {v}: give a size such as 256M")));
                };
                if n < 256 << 10 {
                    return Err(UsageError(format!("--flight-recorder {v}: give at least 256K")));
                }
                if self.output.as_os_str() == "-" || self.ch.clickhouse.is_some() {
                    return Err(UsageError("--flight-recorder writes snapshot files; give -o FILE and no --clickhouse".into()));
                }
                if self.max_files == Some(0) {
                    return Err(UsageError("--max-files must be at least 1".into()));
                }
                Some(crate::record::RotationConfig {
                    switch: crate::record::SwitchOutput::Size(n / 5),
                    max_files: Some(self.max_files.unwrap_or(DEFAULT_MAX_SNAPSHOTS)),
                    flight: Some(n),
                })
            }
            None => None,
        };
        let rotation = match &self.switch_output {
            None if flight.is_none() && self.max_files.is_some() => {
                return Err(UsageError("--max-files needs --switch-output or --flight-recorder".into()))
            }
            None => flight,
            Some(w) => {
                if self.output.as_os_str() == "-" {
                    return Err(UsageError("--switch-output writes files; give -o FILE (not -o -)".into()));
                }
                if self.ch.clickhouse.is_some() {
                    return Err(UsageError(
                        "--clickhouse follows one trace file; with --switch-output, load the closed files with `msen export --clickhouse URL FILE...`".into(),
                    ));
                }
                if self.max_files == Some(0) {
                    return Err(UsageError("--max-files must be at least 1".into()));
                }
                Some(crate::record::RotationConfig {
                    switch: parse_switch_output(w).map_err(UsageError)?,
                    max_files: self.max_files,
                    flight: None,
                })
            }
        };
        Ok(RecordConfig {
            rotation,
            host_context: !self.no_host && (self.host || system_wide || modes.is_some()),
            modes,
            control: None,
            flush_interval: Duration::from_secs_f64(self.flush),
            flushed: None,
            target,
            workload,
            cpus,
            events,
            events_explicit: explicit,
            fallback: self.fallback,
            fallback_reason,
            sampling,
            options,
            duration,
            output: self.output.clone(),
            mmap_pages: self.mmap_pages,
            compression_level: self.level,
            command_line,
            verbose: !self.quiet,
            flows: if self.no_flows {
                crate::record::FlowMode::Off
            } else if self.flows || !self.flow_filter.is_empty() || !self.pid_filter.is_empty() {
                crate::record::FlowMode::Required
            } else {
                crate::record::FlowMode::Auto
            },
            embed: if self.no_embed {
                crate::record::session::Embed::None
            } else if self.embed_lines {
                crate::record::session::Embed::Lines
            } else {
                crate::record::session::Embed::Symbols
            },
            flow_config: crate::flow::FlowConfig {
                filters: {
                    let mut v = Vec::new();
                    for f in &self.flow_filter {
                        v.extend(crate::flow::FlowFilter::parse(f).map_err(UsageError)?);
                    }
                    if v.len() > 8 {
                        return Err(UsageError(format!("at most 8 --flow-filter prefixes, not {}", v.len())));
                    }
                    v
                },
                pids: {
                    if self.pid_filter.len() > 16 {
                        return Err(UsageError(format!("at most 16 --pid-filter pids, not {}", self.pid_filter.len())));
                    }
                    self.pid_filter.clone()
                },
            },
        })
    }
}

impl ReportArgs {
    pub fn to_config(&self, progress: bool) -> Result<ReportConfig, UsageError> {
        let mut sort = Vec::new();
        // -F: the numeric columns it names, and its sort keys (for --sort).
        let mut columns = crate::analyze::report::Columns::default();
        let mut field_keys: Vec<String> = Vec::new();
        if !self.fields.is_empty() {
            columns = crate::analyze::report::Columns { overhead: false, children: false, samples: false, period: false };
            for f in &self.fields {
                match f.trim() {
                    "overhead" => columns.overhead = true,
                    "overhead_children" | "children" => columns.children = true,
                    "sample" | "samples" => columns.samples = true,
                    "period" => columns.period = true,
                    k if SortKey::parse(k).is_some() => field_keys.push(k.to_string()),
                    k => {
                        return Err(UsageError(format!(
                            "-F {k}: not a field; use overhead, overhead_children, sample, period or a sort key ({})",
                            "comm, pid, tid, dso, sym, srcline, cpu, event, mem, snoop, tlb, lock, blocked, weight, flow, ..."
                        )))
                    }
                }
            }
        }
        let user_sort = if field_keys.is_empty() { self.sort.clone() } else { field_keys };
        let default_sort = user_sort == ["comm", "dso", "sym"];
        let names: Vec<String> = if self.branch && default_sort {
            ["comm", "dso_from", "sym_from", "dso_to", "sym_to"].map(String::from).to_vec()
        } else {
            user_sort
        };
        for s in &names {
            let k = SortKey::parse(s).ok_or_else(|| {
                UsageError(format!(
                    "unknown sort key '{s}'; use comm, pid, tid, dso, sym, srcline, cpu, event, mem, snoop, tlb, lock, blocked, weight, flow, flow_local, flow_remote, flow_port, netns, flow_rule (and with --branch dso_from, dso_to, sym_from, sym_to)"
                ))
            })?;
            if !sort.contains(&k) {
                sort.push(k);
            }
        }
        if sort.is_empty() {
            return Err(UsageError("--sort needs at least one key".into()));
        }
        let branch_key = |k: &SortKey| matches!(k, SortKey::DsoFrom | SortKey::DsoTo | SortKey::SymFrom | SortKey::SymTo);
        if self.branch {
            if let Some(k) = sort
                .iter()
                .find(|k| !branch_key(k) && !matches!(k, SortKey::Comm | SortKey::Pid | SortKey::Tid | SortKey::Cpu | SortKey::Event))
            {
                return Err(UsageError(format!(
                    "sort key '{}' does not apply to --branch; use comm, pid, tid, cpu, event, dso_from, dso_to, sym_from, sym_to",
                    k.name()
                )));
            }
        } else if let Some(k) = sort.iter().find(|k| branch_key(k)) {
            return Err(UsageError(format!("sort key '{}' needs --branch", k.name())));
        }
        if !(0.0..=100.0).contains(&self.percent_limit) {
            return Err(UsageError("--percent-limit must be between 0 and 100".into()));
        }
        Ok(ReportConfig {
            sort,
            percent_limit: self.percent_limit,
            top: self.top,
            pids: self.pids.clone(),
            tids: self.tids.clone(),
            dsos: self.dsos.clone(),
            symbols: self.symbols.clone(),
            time: checked_time(&self.time)?,
            mode: self.mode.as_deref().and_then(crate::trace::meta::Mode::parse),
            relative: self.percentage == Percentage::Relative,
            show_samples: self.show_samples || columns.samples,
            columns,
            comms: self.comms.clone(),
            cpus: self.cpus.clone(),
            children: if self.no_children { Children::Off } else { Children::Auto },
            progress,
            branch: self.branch,
            inline: self.inline,
            weight: self.weight,
            folded: matches!(self.format, ReportFormat::Folded | ReportFormat::Flamegraph),
            callgraph: {
                let mut c = match &self.call_graph {
                    Some(g) => crate::analyze::callgraph::CallGraphConfig::parse(g).map_err(UsageError)?,
                    None if matches!(self.format, ReportFormat::Table) => Default::default(),
                    None => crate::analyze::callgraph::CallGraphConfig {
                        mode: crate::analyze::callgraph::GraphMode::None,
                        ..Default::default()
                    },
                };
                if self.inverted {
                    c.order = Some(crate::analyze::callgraph::GraphOrder::Caller);
                }
                c
            },
            max_stack: self.max_stack,
            sort_starts_with_sym: names.first().is_some_and(|n| n == "sym" || n == "symbol"),
            flow_filters: flow_filters(&self.flow, &self.port)?,
        })
    }
}

impl ScriptArgs {
    pub fn to_config(&self) -> ScriptConfig {
        ScriptConfig {
            format: match self.format {
                ScriptFormatArg::Text => ScriptFormat::Text,
                ScriptFormatArg::Jsonl => ScriptFormat::Jsonl,
            },
            all_records: self.all,
            srcline: self.srcline,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    /// man/ is generated from these definitions; regenerate with
    /// `cargo run -- manpages man` when this fails.
    #[test]
    fn man_pages_are_up_to_date() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
        for (name, want) in manpages().unwrap() {
            let have = std::fs::read(dir.join(&name)).unwrap_or_default();
            assert!(have == want, "man/{name} is stale: run `cargo run -- manpages man`");
        }
    }

    #[test]
    fn record_passes_command_flags_through() {
        let cli = Cli::try_parse_from(["msen", "record", "-g", "-F", "999", "--", "ls", "-l", "--color"]).unwrap();
        let Command::Record(r) = cli.command else { panic!() };
        assert_eq!(r.command, vec!["ls", "-l", "--color"]);
        let c = r.to_config(vec![]).unwrap();
        assert_eq!(c.target, Target::Command);
        assert_eq!(c.workload, Some(vec!["ls".into(), "-l".into(), "--color".into()]));
        assert_eq!(c.sampling, Sampling::Freq(999));
        assert_eq!(c.options.callgraph, crate::record::attrs::CallGraph::Fp);
        // Without `--`, the first non-option starts the command; its own
        // options stay its own.
        let cli = Cli::try_parse_from(["msen", "record", "-e", "cpu-clock", "./app", "-x", "--y"]).unwrap();
        let Command::Record(r) = cli.command else { panic!() };
        assert_eq!(r.command, vec!["./app", "-x", "--y"]);
        // System-wide while a command runs.
        let cli = Cli::try_parse_from(["msen", "record", "-a", "--", "sleep", "1"]).unwrap();
        let Command::Record(r) = cli.command else { panic!() };
        let c = r.to_config(vec![]).unwrap();
        assert_eq!((c.target, c.workload), (Target::AllCpus, Some(vec!["sleep".into(), "1".into()])));
    }

    #[test]
    fn record_needs_exactly_one_target() {
        let cli = Cli::try_parse_from(["msen", "record"]).unwrap();
        let Command::Record(r) = cli.command else { panic!() };
        assert!(r.to_config(vec![]).is_err());
        let cli = Cli::try_parse_from(["msen", "record", "-a", "-p", "1"]).unwrap();
        let Command::Record(r) = cli.command else { panic!() };
        assert!(r.to_config(vec![]).is_err());
        let cli = Cli::try_parse_from(["msen", "record", "-C", "0", "-t", "1"]).unwrap();
        let Command::Record(r) = cli.command else { panic!() };
        assert!(r.to_config(vec![]).is_err());
        let cli = Cli::try_parse_from(["msen", "record", "-p", "1,2"]).unwrap();
        let Command::Record(r) = cli.command else { panic!() };
        assert_eq!(r.to_config(vec![]).unwrap().target, Target::Pids(vec![1, 2]));
    }

    #[test]
    fn report_sort_keys_validate() {
        let cli = Cli::try_parse_from(["msen", "report", "--sort", "comm,pid,bogus"]).unwrap();
        let Command::Report(r) = cli.command else { panic!() };
        assert!(r.to_config(false).is_err());
        let cli = Cli::try_parse_from(["msen", "report", "x.msen", "-s", "sym"]).unwrap();
        let Command::Report(r) = cli.command else { panic!() };
        assert_eq!(r.input.path(), PathBuf::from("x.msen"));
        assert_eq!(r.to_config(false).unwrap().sort, vec![SortKey::Sym]);
    }
}
