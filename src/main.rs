//! The `msen` binary: parse, run, map errors to exit codes
//! (0 ok, 1 nothing to report, 2 error).

use clap::Parser;
use msen::analyze::{info, report, script, Loaded};
use msen::cli::{Cli, Command, InfoFormat, ReportFormat};
use msen::output;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// Every analysis allocates and frees buffers of a few MB per block (rows,
/// columns, frames). glibc serves those by mmap, or trims them off the heap
/// when freed, so each block paid page faults and kernel page clearing again:
/// a third of `msen sql`'s time on a 10M-sample trace. mimalloc keeps freed
/// pages for reuse (and returns them to the kernel after a short delay).
/// Built with "no_thp": huge pages made runs stall in page compaction.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes (documented in the README and `msen --help`).
const EXIT_NOTHING: u8 = 1;
const EXIT_ERROR: u8 = 2;

enum Outcome {
    Ok,
    Nothing(String),
    /// Exit with this status (record passes on its workload's).
    Status(u8),
}

/// Binaries being symbolized are memory-mapped (only the pages DWARF lookups
/// touch are read). If one is truncated while msen reads it (`cp` over a
/// binary), the kernel sends SIGBUS; turn that into an error exit instead of
/// a crash. Inputs are read into memory and cannot fault this way.
fn exit_on_sigbus() {
    extern "C" fn on_sigbus(_: libc::c_int) {
        const MSG: &[u8] =
            b"msen: a file msen was reading was truncated meanwhile (SIGBUS); run again once nothing rewrites the binaries or inputs\n";
        // SAFETY: write(2) and _exit(2) are async-signal-safe; MSG is static.
        unsafe {
            libc::write(2, MSG.as_ptr().cast(), MSG.len());
            libc::_exit(2);
        }
    }
    // SAFETY: a zeroed sigaction with a handler that only calls
    // async-signal-safe functions is a valid argument to sigaction(2).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
}

fn main() -> ExitCode {
    exit_on_sigbus();
    let argv = match msen::cli::expand_config(std::env::args_os().collect()) {
        Ok((argv, notes)) => {
            for n in notes {
                eprintln!("msen: {n}");
            }
            argv
        }
        Err(e) => {
            eprintln!("msen: {}", e.0);
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_ERROR } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if let Some(n) = cli.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new().num_threads(n.max(1)).build_global() {
            eprintln!("msen: cannot set up {n} threads: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    }
    let code = match run(cli) {
        Ok(Outcome::Ok) => 0,
        Ok(Outcome::Status(code)) => code,
        Ok(Outcome::Nothing(why)) => {
            eprintln!("msen: {why}");
            EXIT_NOTHING
        }
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            eprintln!("msen: {e:#}");
            EXIT_ERROR
        }
    };
    exit_now(code)
}

/// End the process without the C library's exit handlers. Everything of
/// msen's is dropped, written and flushed by now (run has returned); the
/// only handler left is mimalloc's, which walks every page it holds to
/// hand it back to the kernel one madvise at a time -- 60 ms, a tenth of a
/// report on a system-wide capture, for memory the exit frees anyway.
fn exit_now(code: u8) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit(2) ends the process; nothing runs after it.
    unsafe { libc::_exit(i32::from(code)) }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

fn cannot_create(path: &std::path::Path, e: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!("cannot create {}: {e}; check the directory exists and is writable", path.display())
}

fn cannot_write(path: &std::path::Path, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("cannot write {}: {e}; nothing was replaced (is the disk full?)", path.display())
}

fn print(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes()).and_then(|()| out.flush()).map_err(stdout_error)
}

/// A failed write to stdout, unless it is a closed pipe (quiet exit 0, as
/// `head` users expect): named, so a full disk is not a bare errno.
fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return e.into();
    }
    anyhow::Error::new(e).context("cannot write the output to stdout; nothing complete was written")
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Record(args) => {
            if let Some(name) = args.mock.as_ref().filter(|_| args.rate.is_none()) {
                let scenario = msen::record::mock::Scenario::parse(name)
                    .ok_or_else(|| anyhow::anyhow!("unknown mock scenario '{name}'; use {}", msen::record::mock::Scenario::NAMES))?;
                let n = msen::record::mock::write_mock(&args.output, scenario, args.rounds, args.seed, std::env::args().collect())
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.output.display()))?;
                if !args.quiet {
                    eprintln!("[ msen record --mock {name}: {n} synthetic samples written to {} ]", args.output.display());
                }
                if args.ch.clickhouse.is_some() {
                    let opts = args.ch.options();
                    let c = msen::export::clickhouse::Client::open(&opts)?;
                    let l = Loaded::open(&args.output, &Default::default())?;
                    let r = msen::export::clickhouse::export_capture(&c, &l, &args.output, &opts)?;
                    print_capture_report(&r);
                }
                return Ok(Outcome::Ok);
            }
            let mut cfg = args.to_config(std::env::args().collect())?;
            if args.print_attrs {
                let list: Vec<serde_json::Value> =
                    msen::record::planned_attrs(&cfg).iter().map(|(n, a)| msen::record::attrs::to_json(n, a)).collect();
                print(&(serde_json::to_string_pretty(&list)? + "\n"))?;
                return Ok(Outcome::Ok);
            }
            let verbose = cfg.verbose;
            // --metrics, --control: bound before the capture starts.
            let _endpoints = match (&args.metrics, &args.control) {
                (None, None) => None,
                _ => {
                    let control = std::sync::Arc::new(msen::record::control::Control::default());
                    cfg.control = Some(control.clone());
                    let opts = msen::agent::AgentOptions {
                        metrics: args.metrics.clone(),
                        control: args.control.clone(),
                        control_token: args.control_token.clone(),
                    };
                    let a = msen::agent::Agent::start(&opts, control).map_err(|e| anyhow::anyhow!(e))?;
                    if verbose {
                        if let Some(m) = &a.metrics {
                            eprintln!("msen: metrics at http://{}/metrics", m.addr);
                        }
                        if let Some(c) = &a.control {
                            eprintln!("msen: control API at http://{}/api/v1/", c.addr);
                        }
                    }
                    Some(a)
                }
            };
            // --clickhouse: a follower sends the trace's blocks as they are flushed.
            let follower = match &args.ch.clickhouse {
                Some(_) => {
                    let opts = args.ch.options();
                    let client = msen::export::follow::preflight(&opts)?;
                    let published = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
                    cfg.flushed = Some(published.clone());
                    let f =
                        msen::export::follow::start(opts, Default::default(), client, cfg.output.clone(), published, cfg.flush_interval)?;
                    Some(f)
                }
                None => None,
            };
            let s = match (&args.mock, args.rate) {
                (Some(name), Some(rate)) => {
                    let scenario = msen::record::mock::Scenario::parse(name)
                        .ok_or_else(|| anyhow::anyhow!("unknown mock scenario '{name}'; use {}", msen::record::mock::Scenario::NAMES))?;
                    msen::record::session::record_mock(&cfg, scenario, rate, args.seed)?
                }
                _ => msen::record::record(&cfg)?,
            };
            if verbose {
                for n in &s.notes {
                    eprintln!("msen: {n}");
                }
                let per = if s.samples > 0 { format!(", {:.1} bytes/sample", s.bytes as f64 / s.samples as f64) } else { String::new() };
                eprintln!(
                    "[ msen record: {} samples, {} lost, {:.2} s; wrote {} ({:.3} MB{per}) ]",
                    s.samples,
                    s.lost,
                    s.elapsed.as_secs_f64(),
                    s.path.display(),
                    s.bytes as f64 / 1e6
                );
            }
            if let Some(f) = follower {
                let url = args.ch.clickhouse.clone().unwrap_or_default();
                match f.finish(&s.path) {
                    Ok((r, rounds)) => {
                        if verbose {
                            print_capture_report(&r);
                            eprintln!("[ msen record: {rounds} sends to ClickHouse while recording ]");
                        }
                    }
                    Err(e) => anyhow::bail!(
                        "{e}; the trace {} is complete: run `msen export --clickhouse {url} {}` when the server is back (nothing is sent twice)",
                        s.path.display(),
                        s.path.display()
                    ),
                }
            }
            match s.workload_exit.filter(|&c| c != 0) {
                Some(code) => {
                    if verbose {
                        eprintln!("msen: the workload exited with status {code}");
                    }
                    Ok(Outcome::Status(code.clamp(0, 255) as u8))
                }
                None => Ok(Outcome::Ok),
            }
        }
        Command::Report(args) => {
            let cfg = args.to_config(true)?;
            let path = args.input.path();
            let l = Loaded::open(&path, &args.input.load_options())?;
            if cfg.branch && !l.trace.meta.events.iter().any(|e| e.attr.sample_type & msen::perf::attr::sample::BRANCH_STACK != 0) {
                anyhow::bail!(
                    "{} holds no branch stacks (no event sampled PERF_SAMPLE_BRANCH_STACK); record with -b or -j any (LBR, BRS or BRBE hardware), or drop --branch",
                    path.display()
                );
            }
            let r = report::report(&l, &cfg)?;
            match args.format {
                ReportFormat::Table => {
                    let width = if args.full_names { None } else { output::terminal_width() };
                    print(&output::report::render_table(&r, &path.display().to_string(), width))?
                }
                ReportFormat::Json => print(&(serde_json::to_string_pretty(&output::report::render_json(&r))? + "\n"))?,
                ReportFormat::Csv => print(&output::report::render_csv(&r))?,
                ReportFormat::Folded => print(&output::report::render_folded(&r))?,
                ReportFormat::Flamegraph => {
                    let mut out = std::io::stdout().lock();
                    output::report::render_flamegraph(&r, &path.display().to_string(), &mut out)?;
                    out.flush()?;
                }
            }
            output::timing::mark("rendered");
            let empty = r.total_samples == 0;
            // The process ends here: freeing the tables (millions of small
            // allocations on a big capture) would only cost time.
            std::mem::forget(r);
            std::mem::forget(l);
            if empty {
                return Ok(Outcome::Nothing(format!("{} holds no samples", path.display())));
            }
            Ok(Outcome::Ok)
        }
        Command::Info(args) => {
            let path = args.input.path();
            let l = Loaded::open(&path, &args.input.load_options())?;
            if args.host {
                if l.host.is_empty() {
                    anyhow::bail!("{} holds no host context; record with --host (on by default with -a and --mode)", path.display());
                }
                match args.format {
                    InfoFormat::Text => print(&output::host_timeline(&l.host, l.trace.meta.start_clock_ns))?,
                    InfoFormat::Json => print(&(serde_json::to_string_pretty(&l.host)? + "\n"))?,
                }
                return Ok(Outcome::Ok);
            }
            let i = info::info(&l)?;
            match args.format {
                InfoFormat::Text => print(&info::to_text(&l, &i))?,
                InfoFormat::Json => print(&(serde_json::to_string_pretty(&info::to_json(&l, &i))? + "\n"))?,
            }
            Ok(Outcome::Ok)
        }
        Command::Import(args) => {
            let name = if msen::trace::source::is_stdin(&args.input) { "<stdin>".to_string() } else { args.input.display().to_string() };
            let bytes = msen::trace::source::read_all(&args.input)?;
            let pd = msen::perf::data::parse(&bytes).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            let out = msen::trace::OutFile::create(&args.output).map_err(|e| cannot_create(&args.output, e))?;
            let mut w = msen::trace::TraceWriter::new(out.file()?, args.level.clamp(1, 22)).map_err(|e| cannot_create(&args.output, e))?;
            let s = msen::import::convert(&pd, &name, &mut w)?;
            drop(pd);
            let in_len = bytes.len();
            let mut embedded_note = String::new();
            if args.embed || args.embed_lines {
                // What the samples need to be named elsewhere: the symbols
                // (and lines) of the hit addresses, the kernel's included.
                let t = msen::import::open_perf_data_direct(msen::trace::reader::External(bytes), &name, Default::default())?;
                let l = Loaded::from_trace(t, &args.load_options())?;
                let c = msen::analyze::embed::collect(&l, args.embed_lines)?;
                let json = serde_json::to_vec(&c.embedded)?;
                let block = |kind, n: usize| msen::trace::BlockInfo {
                    kind,
                    stream: msen::trace::format::STREAM_GLOBAL,
                    record_count: n as u32,
                    first_time: 0,
                    last_time: 0,
                };
                w.write_block(block(msen::trace::format::BlockKind::SYMBOLS, c.embedded.dsos.len()), &json)
                    .map_err(|e| cannot_write(&args.output, e))?;
                if !c.unwind.is_empty() {
                    let b = msen::symbolize::embedded::encode_unwind(&c.unwind);
                    w.write_block(block(msen::trace::format::BlockKind::UNWIND, c.unwind.len()), &b)
                        .map_err(|e| cannot_write(&args.output, e))?;
                }
                if let Some(k) = &c.kallsyms {
                    w.write_block(block(msen::trace::format::BlockKind::KALLSYMS, 1), k.as_bytes())
                        .map_err(|e| cannot_write(&args.output, e))?;
                }
                embedded_note = format!(
                    "; embedded {} symbols of {} objects{}{}",
                    c.embedded.symbol_count(),
                    c.embedded.dsos.len(),
                    if args.embed_lines { format!(", {} addresses with lines", c.embedded.line_count()) } else { String::new() },
                    if c.kallsyms.is_some() { " and the kernel's" } else { "" }
                );
            }
            let bytes_out = w.finish().map_err(|e| cannot_write(&args.output, e))?;
            out.commit().map_err(|e| cannot_write(&args.output, e))?;
            eprintln!(
                "[ msen import: {} samples, {} other records from {name} ({} bytes) into {} ({} bytes){}{embedded_note} ]",
                s.samples,
                s.other_records,
                in_len,
                args.output.display(),
                bytes_out,
                if s.trailing_bytes > 0 {
                    format!("; ignored {} trailing bytes after the last record", s.trailing_bytes)
                } else {
                    String::new()
                }
            );
            Ok(Outcome::Ok)
        }
        Command::Symbolize(args) => {
            use std::io::Read;
            let mut text = String::new();
            if args.addrs.is_empty() {
                std::io::stdin().lock().read_to_string(&mut text)?;
            }
            let words: Vec<&str> =
                if args.addrs.is_empty() { text.split_whitespace().collect() } else { args.addrs.iter().map(String::as_str).collect() };
            let addrs: Vec<u64> = words
                .iter()
                .map(|w| u64::from_str_radix(w.trim_start_matches("0x"), 16).map_err(|_| anyhow::anyhow!("'{w}' is not a hex address")))
                .collect::<Result<_, _>>()?;
            let frames = msen::symbolize::standalone::symbolize(&args.exe, args.symfs.as_deref(), &addrs, args.demangle)
                .map_err(|e| anyhow::anyhow!(e))?;
            let mut out = String::with_capacity(addrs.len() * 64);
            for f in &frames {
                msen::symbolize::standalone::render(f, args.inline, &mut out);
            }
            print(&out)?;
            Ok(Outcome::Ok)
        }
        Command::Diff(args) => diff(&args),
        Command::Sql(args) => sql(&args),
        Command::FalseShare(args) => {
            use msen::analyze::false_share::{false_share, Display, FalseShareConfig};
            use msen::cli::DisplayArg;
            let path = args.input.path();
            let l = Loaded::open(&path, &args.input.load_options())?;
            let recorded = l.trace.meta.cache_line_size.max(1);
            let base = args.line_size.unwrap_or(recorded);
            if !base.is_power_of_two() {
                anyhow::bail!("--line-size must be a power of two, not {base}");
            }
            let cfg = FalseShareConfig {
                display: match args.display {
                    DisplayArg::Tot => Display::Tot,
                    DisplayArg::Rmt => Display::Rmt,
                    DisplayArg::Lcl => Display::Lcl,
                    DisplayArg::Peer => Display::Peer,
                },
                show_all: args.show_all,
                line_size: Some(if args.double_cl { base * 2 } else { base }),
            };
            let f = false_share(&l, &cfg)?;
            match args.format {
                msen::cli::TableFormat::Table => print(&output::false_share::render_table(&f, args.node_info))?,
                msen::cli::TableFormat::Json => print(&(serde_json::to_string_pretty(&output::false_share::render_json(&f))? + "\n"))?,
            }
            if f.stats.nr_entries == 0 {
                return Ok(Outcome::Nothing(format!("{} holds no memory samples (events with PERF_SAMPLE_DATA_SRC)", path.display())));
            }
            Ok(Outcome::Ok)
        }
        Command::Numa(args) => {
            let path = args.input.path();
            let l = Loaded::open(&path, &args.input.load_options())?;
            let n = msen::analyze::numa::numa(&l, args.top.max(1))?;
            match args.format {
                msen::cli::TableFormat::Table => print(&output::numa::render_table(&n))?,
                msen::cli::TableFormat::Json => print(&(serde_json::to_string_pretty(&output::numa::render_json(&n))? + "\n"))?,
            }
            if n.stats.loads == 0 {
                return Ok(Outcome::Nothing(format!("{} holds no memory load samples", path.display())));
            }
            Ok(Outcome::Ok)
        }
        Command::Flows(args) => {
            let path = args.input.path();
            let l = Loaded::open(&path, &args.input.load_options())?;
            let f = msen::analyze::flows::flows(&l, args.functions)?;
            match args.format {
                msen::cli::FlowsFormat::Table => print(&output::flows::render_table(&f))?,
                msen::cli::FlowsFormat::Json => print(&(serde_json::to_string_pretty(&output::flows::render_json(&f))? + "\n"))?,
                msen::cli::FlowsFormat::Csv => print(&output::flows::render_csv(&f))?,
            }
            if f.total_samples == 0 {
                return Ok(Outcome::Nothing(format!("{} holds no samples", path.display())));
            }
            Ok(Outcome::Ok)
        }
        Command::Export(args) => export(&args),
        Command::Completions { shell } => {
            std::io::stdout().lock().write_all(&msen::cli::completions(shell)).map_err(stdout_error)?;
            Ok(Outcome::Ok)
        }
        Command::Manpages { dir } => {
            std::fs::create_dir_all(&dir)?;
            for (name, page) in msen::cli::manpages()? {
                std::fs::write(dir.join(name), page)?;
            }
            Ok(Outcome::Ok)
        }
        Command::Script(args) => {
            let path = args.input.path();
            let l = Loaded::open(&path, &args.input.load_options())?;
            let stdout = std::io::stdout();
            let mut out: Box<dyn Write> = if stdout.is_terminal() {
                Box::new(stdout.lock())
            } else {
                Box::new(std::io::BufWriter::with_capacity(1 << 20, stdout.lock()))
            };
            let n = script::script(&l, &args.to_config(), &mut out)?;
            out.flush().map_err(stdout_error)?;
            if n == 0 {
                return Ok(Outcome::Nothing(format!("{} holds no samples", path.display())));
            }
            Ok(Outcome::Ok)
        }
    }
}

/// `msen diff`: profiles of both sides, compared; exit 1 on a regression.
fn diff(args: &msen::cli::DiffArgs) -> anyhow::Result<Outcome> {
    use msen::analyze::diff;
    use msen::cli::DiffFormat;
    let (base_paths, new_paths) = args.sides()?;
    let cfg = args.diff_config()?;
    let opts = args.load_options();
    let open = |p: &std::path::Path| Loaded::open(p, &opts);
    let d = if args.false_share || args.numa {
        let (what, column, measure) = if args.false_share {
            ("false-share", "Cache line", "each contended line's HITMs as a share of all loads")
        } else {
            ("numa", "Function", "each function's remote accesses as a share of its memory accesses")
        };
        let prof = |paths: &[std::path::PathBuf]| -> anyhow::Result<Vec<diff::Proportions>> {
            paths
                .iter()
                .map(|p| {
                    let l = open(p)?;
                    let name = p.display().to_string();
                    Ok(if args.false_share { diff::false_share_profile(&l, &name)? } else { diff::numa_profile(&l, &name)? })
                })
                .collect()
        };
        let (b, n) = (prof(&base_paths)?, prof(&new_paths)?);
        diff::compare_proportions(what, column, measure, &b, &n, &cfg).map_err(anyhow::Error::msg)?
    } else {
        let rc = args.report_config()?;
        let prof = |paths: &[std::path::PathBuf]| -> anyhow::Result<Vec<diff::RunProfile>> {
            paths
                .iter()
                .map(|p| {
                    let l = open(p)?;
                    // Callers (cost shifts) need children; the flame graph the stacks.
                    let stacks = args.flamegraph.is_some() || rc.children != msen::analyze::report::Children::Off;
                    let r = diff::profile(&l, &rc, &p.display().to_string(), stacks)?;
                    if r.events.iter().all(|e| e.samples == 0) {
                        anyhow::bail!("{} holds no samples; record the workload again (msen record) and compare that", p.display());
                    }
                    Ok(r)
                })
                .collect()
        };
        let (b, n) = (prof(&base_paths)?, prof(&new_paths)?);
        let d = diff::compare(&b, &n, &rc.sort, &cfg).map_err(anyhow::Error::msg)?;
        if let Some(path) = &args.flamegraph {
            let sum = |runs: &[diff::RunProfile]| {
                let mut m: std::collections::BTreeMap<&str, u64> = Default::default();
                for r in runs {
                    for (s, c) in &r.folded {
                        *m.entry(s.as_str()).or_default() += c;
                    }
                }
                m.into_iter().map(|(s, c)| (s.to_string(), c)).collect::<Vec<_>>()
            };
            let out = msen::trace::OutFile::create(path).map_err(|e| cannot_create(path, e))?;
            let mut w = std::io::BufWriter::new(out.file().map_err(|e| cannot_create(path, e))?);
            let title = format!("{} vs {}", base_paths[0].display(), new_paths[0].display());
            output::diff::render_flamegraph(&sum(&b), &sum(&n), &title, &mut w).map_err(|e| cannot_write(path, e))?;
            w.flush().map_err(|e| cannot_write(path, e))?;
            drop(w);
            out.commit().map_err(|e| cannot_write(path, e))?;
        }
        d
    };
    let shown = output::diff::Shown { top: args.top, changed_only: args.changed };
    match args.format {
        DiffFormat::Table => print(&output::diff::render_table(&d, shown))?,
        DiffFormat::Json => print(&(serde_json::to_string_pretty(&output::diff::render_json(&d, shown))? + "\n"))?,
        DiffFormat::Csv => print(&output::diff::render_csv(&d, shown))?,
        DiffFormat::Markdown => print(&output::diff::render_markdown(&d, shown))?,
        DiffFormat::Github => print(&output::diff::render_github(&d))?,
        DiffFormat::Junit => print(&output::diff::render_junit(&d))?,
    }
    Ok(if d.failed { Outcome::Status(1) } else { Outcome::Ok })
}

/// `msen export`: perf.data, and profiles for pprof, Firefox and speedscope.
/// The traces of `export --clickhouse/--parquet TRACE...`, every one
/// present before anything is written: a typo fails the run, not its middle.
fn bulk_inputs(args: &msen::cli::ExportArgs) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let inputs: Vec<std::path::PathBuf> = std::iter::once(args.input.path()).chain(args.more.iter().cloned()).collect();
    if let Some(p) = inputs.iter().find(|p| !p.exists()) {
        anyhow::bail!("{}: no such file; nothing was exported", p.display());
    }
    Ok(inputs)
}

/// `export --clickhouse`: every input, a few at a time, one summary.
fn export_clickhouse(args: &msen::cli::ExportArgs) -> anyhow::Result<Outcome> {
    use msen::export::clickhouse as ch;
    let opts = args.ch.options();
    let inputs = bulk_inputs(args)?;
    let client = ch::Client::open(&opts)?;
    let pb = msen::output::progress(opts.progress, inputs.len() as u64, "exporting captures");
    let started = std::time::Instant::now();
    use rayon::prelude::*;
    let reports: Vec<anyhow::Result<ch::CaptureReport>> = inputs
        .par_iter()
        .map(|p| {
            let l = Loaded::open(p, &args.input.load_options())?;
            let r = ch::export_capture(&client, &l, p, &opts)?;
            pb.inc(1);
            Ok(r)
        })
        .collect();
    pb.finish_and_clear();
    let mut sums: std::collections::BTreeMap<&str, u64> = Default::default();
    let mut failed = 0;
    for (p, r) in inputs.iter().zip(&reports) {
        match r {
            Ok(r) => {
                print_capture_report(r);
                for (t, n) in &r.sent {
                    *sums.entry(t).or_default() += n;
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("msen: {}: {e:#}; run the same export again to send the rest (nothing is sent twice)", p.display());
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let rows: u64 = sums.values().sum();
    eprintln!(
        "[ msen export: {} of {} captures into ClickHouse {} (database {}) in {secs:.1} s: {} rows ({}) ]",
        inputs.len() - failed,
        inputs.len(),
        client.version,
        args.ch.database,
        rows,
        sums.iter().map(|(t, n)| format!("{t} {n}")).collect::<Vec<_>>().join(", ")
    );
    eprintln!("[ fleet queries: {} ]", queries_dir());
    if failed > 0 {
        anyhow::bail!("{failed} of {} captures were not exported completely", inputs.len());
    }
    Ok(Outcome::Ok)
}

#[cfg(not(feature = "polars"))]
const NO_POLARS: &str = "this msen was built without polars (the \"polars\" cargo feature: a large build kept out of the default one); \
rebuild with `cargo build --release --features polars` (or `scripts/setup.sh --with-polars`)";

/// `export --parquet DIR`: every input's tables as Parquet files.
#[cfg(feature = "polars")]
fn export_parquet(args: &msen::cli::ExportArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let inputs = bulk_inputs(args)?;
    let started = std::time::Instant::now();
    let mut samples = 0;
    let mut bytes = 0;
    for p in &inputs {
        let l = Loaded::open(p, &args.input.load_options())?;
        let id = msen::export::clickhouse::capture_id_of(&l, p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        let r = msen::export::parquet::export_capture(&l, p, &id, dir, args.ch.batch_rows)
            .map_err(|e| anyhow::anyhow!("{}: cannot write Parquet under {}: {e}", p.display(), dir.display()))?;
        let b: u64 = r.files.iter().map(|f| f.2).sum();
        eprintln!(
            "[ msen export: {} (capture {}): {} samples, {} stacks, {} flows, {} data objects -> {} ({:.3} MB) ]",
            p.display(),
            r.capture_id,
            r.counts.samples,
            r.counts.stacks,
            r.counts.flows,
            r.counts.objects,
            dir.display(),
            b as f64 / 1e6
        );
        samples += r.counts.samples;
        bytes += b;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "[ msen export: {} captures, {samples} samples in {secs:.2} s ({:.2}M samples/s), {:.1} bytes per sample; read {}/ms_raw_samples/*.parquet ]",
        inputs.len(),
        samples as f64 / secs.max(1e-9) / 1e6,
        bytes as f64 / samples.max(1) as f64,
        dir.display()
    );
    Ok(())
}

#[cfg(not(feature = "polars"))]
fn export_parquet(_: &msen::cli::ExportArgs, _: &std::path::Path) -> anyhow::Result<()> {
    anyhow::bail!("export --parquet: {NO_POLARS}")
}

/// `msen sql`: a query over traces, printed as a table, CSV or JSON.
#[cfg(feature = "polars")]
fn sql(args: &msen::cli::SqlArgs) -> anyhow::Result<Outcome> {
    use msen::sql;
    let df = match sql::run(&args.query, &args.paths(), &args.load_options()) {
        Ok(df) => df,
        Err(sql::SqlError::Query { message, caret }) => {
            let at = caret.map(|c| format!("\n{c}")).unwrap_or_default();
            anyhow::bail!(
                "the query failed: {message}{at}\n(`msen sql --help` lists the tables; `msen export --clickhouse-ddl old` every column)"
            )
        }
        Err(e) => return Err(e.into()),
    };
    let text = match args.format {
        msen::cli::SqlFormat::Table => sql::render_table(&df)?,
        msen::cli::SqlFormat::Csv => sql::render_csv(&df)?,
        msen::cli::SqlFormat::Json => serde_json::to_string_pretty(&sql::render_json(&df)?)? + "\n",
    };
    print(&text)?;
    Ok(Outcome::Ok)
}

#[cfg(not(feature = "polars"))]
fn sql(_: &msen::cli::SqlArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("sql: {NO_POLARS}")
}

/// One capture's line of an export's summary.
fn print_capture_report(r: &msen::export::clickhouse::CaptureReport) {
    if r.skipped {
        eprintln!("[ msen export: {} (capture {}) is already in ClickHouse; nothing sent ]", r.path, r.capture_id);
        return;
    }
    let sent: Vec<String> = r.sent.iter().filter(|(_, n)| *n > 0).map(|(t, n)| format!("{t} {n}")).collect();
    eprintln!(
        "[ msen export: {} (capture {}): {} samples, {} stacks; sent {} ]",
        r.path,
        r.capture_id,
        r.counts.samples,
        r.counts.stacks,
        if sent.is_empty() { "nothing (already there)".to_string() } else { sent.join(", ") }
    );
}

/// Where the shipped fleet SQL is: beside the binary's share directory when
/// installed, else the source tree's.
fn queries_dir() -> String {
    let installed = std::env::current_exe().ok().and_then(|e| Some(e.parent()?.parent()?.join("share/msen/clickhouse/queries")));
    match installed.filter(|p| p.is_dir()) {
        Some(p) => p.display().to_string(),
        None => concat!(env!("CARGO_MANIFEST_DIR"), "/formats/clickhouse/queries").to_string(),
    }
}

fn export(args: &msen::cli::ExportArgs) -> anyhow::Result<Outcome> {
    let cfg = args.filter_config()?;
    if let Some(v) = &args.clickhouse_ddl {
        print!("{}", msen::export::table::ddl_file(v == "modern"));
        return Ok(Outcome::Ok);
    }
    if args.ch.clickhouse.is_some() || args.parquet.is_some() {
        if let Some(dir) = &args.parquet {
            export_parquet(args, dir)?;
        }
        if args.ch.clickhouse.is_some() {
            return export_clickhouse(args);
        }
        return Ok(Outcome::Ok);
    }
    let path = args.input.path();
    let l = Loaded::open(&path, &args.input.load_options())?;
    // Each output is complete before it replaces anything.
    let write = |out_path: &std::path::Path, f: &mut dyn FnMut(&mut dyn Write) -> anyhow::Result<()>| -> anyhow::Result<u64> {
        let out = msen::trace::OutFile::create(out_path).map_err(|e| cannot_create(out_path, e))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, out.file().map_err(|e| cannot_create(out_path, e))?);
        f(&mut w).map_err(|e| cannot_write(out_path, e))?;
        w.flush().map_err(|e| cannot_write(out_path, e))?;
        drop(w);
        out.commit().map_err(|e| cannot_write(out_path, e))?;
        Ok(std::fs::metadata(out_path).map(|m| m.len()).unwrap_or(0))
    };
    if let Some(p) = &args.perf_data {
        let mut n = 0;
        write(p, &mut |w| {
            n = msen::export::perf_data::write_perf_data(&l, w)?;
            Ok(())
        })?;
        eprintln!("[ msen export: {n} records from {} into {} ]", path.display(), p.display());
    }
    if args.pprof.is_none() && args.firefox.is_none() && args.speedscope.is_none() {
        return Ok(Outcome::Ok);
    }
    let st = msen::analyze::stacks::collect(&l, &cfg, args.firefox.is_some() || args.speedscope.is_some())?;
    if st.total_samples == 0 {
        anyhow::bail!(
            "{} has no samples{}; nothing was written (check the filters with msen report)",
            path.display(),
            if msen::analyze::report::SampleFilter::new(&l, &cfg)?.is_active() { " that the filters keep" } else { "" }
        );
    }
    let name = path.file_name().map_or("msen".into(), |n| n.to_string_lossy().to_string());
    let say = |what: &str, p: &std::path::Path, bytes: u64| {
        eprintln!(
            "[ msen export: {} samples, {} stacks from {} into {} ({what}, {bytes} bytes) ]",
            st.total_samples,
            st.stacks.len(),
            path.display(),
            p.display()
        );
    };
    if let Some(p) = &args.pprof {
        let bytes = write(p, &mut |w| {
            msen::export::pprof::write(&st, w)?;
            Ok(())
        })?;
        say("pprof", p, bytes);
    }
    if let Some(p) = &args.speedscope {
        let doc = msen::export::speedscope::document(&st, &name);
        let bytes = write(p, &mut |w| {
            serde_json::to_writer(&mut *w, &doc)?;
            Ok(())
        })?;
        say("speedscope", p, bytes);
    }
    if let Some(p) = &args.firefox {
        let interval = l
            .events
            .list
            .first()
            .filter(|e| e.attr.is_freq() && e.attr.period_or_freq > 0)
            .map_or(1_000_000, |e| 1_000_000_000 / e.attr.period_or_freq);
        let prof = msen::export::firefox::profile(&st, &name, &l.lost_events, interval);
        let gz = p.extension().is_some_and(|e| e == "gz");
        let bytes = write(p, &mut |w| {
            if gz {
                // serde writes in small pieces: buffer them before the compressor.
                let mut z = std::io::BufWriter::with_capacity(1 << 20, flate2::write::GzEncoder::new(&mut *w, flate2::Compression::fast()));
                serde_json::to_writer(&mut z, &prof)?;
                z.into_inner().map_err(|e| e.into_error())?.finish()?;
            } else {
                serde_json::to_writer(&mut *w, &prof)?;
            }
            Ok(())
        })?;
        say("Firefox Profiler", p, bytes);
    }
    Ok(Outcome::Ok)
}
