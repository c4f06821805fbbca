//! Shared helpers for integration tests: the msen binary, test programs
//! built from testdata/programs, synthetic traces, root checks.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod live;
pub mod perfout;

use msen::perf::attr::{flag, sample, EventAttr};
use msen::perf::record::{build_record, misc, RecordType};
use msen::trace::meta::{EventDesc, Metadata};
use msen::trace::{BlockInfo, BlockKind, TraceWriter, STREAM_GLOBAL};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn msen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_msen"))
}

pub fn run(args: &[&str]) -> Output {
    let out = msen().args(args).output().expect("run msen");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "msen panicked: {stderr}");
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Tests that open perf events system-wide or attach to other processes need
/// root here. Outside CI they skip with a reason; on CI (CI=true) a missing
/// root is a failure, since CI runs as root.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: CI must run the capture tests as root");
    }
    eprintln!("SKIP {test}: needs root to open perf events (run the tests as root, as CI does)");
    false
}

pub fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Build testdata/programs/NAME.c with the flags its header names.
pub fn build_program(name: &str, dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/programs").join(format!("{name}.c"));
    let out = dir.join(name);
    let st = Command::new("cc")
        .args(["-O2", "-g", "-fno-omit-frame-pointer", "-fno-optimize-sibling-calls", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("cc (install build-essential: scripts/setup.sh)");
    assert!(st.success(), "building {name}.c failed");
    out
}

/// Run cc in `dir`; the build must succeed.
pub fn cc(args: &[&str], dir: &Path) {
    let st = Command::new("cc").args(args).current_dir(dir).status().expect("cc (install build-essential: scripts/setup.sh)");
    assert!(st.success(), "cc {args:?}");
}

/// The path of a test program's source under testdata/programs.
pub fn program_src(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/programs").join(name).display().to_string()
}

/// inl + libwork.so in `dir`, built as inl.c's header says.
pub fn build_inl(dir: &Path) -> PathBuf {
    cc(&["-O2", "-g", "-fno-omit-frame-pointer", "-shared", "-fPIC", "-o", "libwork.so", &program_src("libwork.c")], dir);
    cc(&["-O2", "-g", "-fno-omit-frame-pointer", "-o", "inl", &program_src("inl.c"), "-L.", "-lwork", "-Wl,-rpath,$ORIGIN"], dir);
    dir.join("inl")
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

/// The sample_type of synthetic traces.
pub const SYN_ST: u64 = sample::IDENTIFIER | sample::IP | sample::TID | sample::TIME | sample::CPU | sample::PERIOD;

fn sample_rec(kernel: bool, ip: u64, pid: u32, tid: u32, time: u64, cpu: u32, period: u64) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&7u64.to_le_bytes());
    b.extend_from_slice(&ip.to_le_bytes());
    b.extend_from_slice(&pid.to_le_bytes());
    b.extend_from_slice(&tid.to_le_bytes());
    b.extend_from_slice(&time.to_le_bytes());
    b.extend_from_slice(&cpu.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&period.to_le_bytes());
    build_record(RecordType::SAMPLE, if kernel { misc::KERNEL } else { misc::USER }, &b)
}

fn trailer(pid: u32, tid: u32, time: u64, cpu: u32) -> Vec<u8> {
    msen::record::procscan::sample_id_trailer(SYN_ST, pid, tid, time, 7, cpu)
}

/// A small trace with known content, made without perf events:
/// pid 100 "worker" and pid 200 "idler"; kernel samples resolve through a
/// kallsyms block; user samples fall in a mapping of a file that does not
/// exist (so they are unresolved, with a reason).
///
/// worker: 600 samples in kernel `k_hot` (period 10 each), 300 in `k_warm`,
///         100 user samples at 0x401000; idler: 100 samples in `k_warm`.
/// One PERF_RECORD_LOST reports 5 lost records.
/// Samples alternate between cpu 0 and 1 and are spread over `blocks`
/// SAMPLES blocks. Times go up by 1000 per sample.
pub fn synthetic_trace(path: &Path, blocks: usize, finish: bool) -> u64 {
    synthetic_trace_with_period(path, blocks, finish, 10)
}

/// `synthetic_trace` with another sample period.
pub fn synthetic_trace_with_period(path: &Path, blocks: usize, finish: bool, period: u64) -> u64 {
    let attr = EventAttr {
        type_: 1,
        size: 128,
        config: 0,
        period_or_freq: 1000,
        sample_type: SYN_ST,
        flags: flag::FREQ | flag::SAMPLE_ID_ALL | flag::MMAP2 | flag::COMM,
        ..Default::default()
    };
    let meta = Metadata {
        msen_version: "test".into(),
        hostname: "synthetic".into(),
        events: vec![EventDesc { name: "cpu-clock".into(), attr, ids: vec![7] }],
        cache_line_size: 64,
        nr_cpus: 2,
        online_cpus: vec![0, 1],
        clock: "monotonic".into(),
        software_only: true,
        synthetic: true,
        ..Default::default()
    };
    let mut w = TraceWriter::create(path, 3).unwrap();
    let g = |kind| BlockInfo { kind, stream: STREAM_GLOBAL, record_count: 1, first_time: 0, last_time: 0 };
    w.write_block(g(BlockKind::METADATA), &serde_json::to_vec(&meta).unwrap()).unwrap();
    let mut sb = Vec::new();
    sb.extend(msen::record::procscan::comm_record(100, 100, "worker", false, &trailer(100, 100, 0, 0)));
    sb.extend(msen::record::procscan::comm_record(200, 200, "idler", false, &trailer(200, 200, 0, 0)));
    let m = msen::record::procscan::parse_maps_line("00400000-00500000 r-xp 00000000 08:01 42 /nonexistent/worker-bin").unwrap();
    sb.extend(msen::record::procscan::mmap2_record(100, 100, &m, &trailer(100, 100, 0, 0)));
    // The kernel dropped 5 records once (ring buffer full).
    let mut lost = Vec::new();
    lost.extend_from_slice(&7u64.to_le_bytes());
    lost.extend_from_slice(&5u64.to_le_bytes());
    lost.extend(trailer(100, 100, 1_500_000, 1));
    sb.extend(build_record(RecordType::LOST, 0, &lost));
    w.write_block(
        BlockInfo { kind: BlockKind::SIDEBAND, stream: STREAM_GLOBAL, record_count: 4, first_time: 0, last_time: 1_500_000 },
        &sb,
    )
    .unwrap();
    let mut samples = Vec::new();
    for i in 0..600u64 {
        samples.push((true, 0xffffffff81000010 + (i % 7), 100));
    }
    for i in 0..300u64 {
        samples.push((true, 0xffffffff81000110 + (i % 5), 100));
    }
    for _ in 0..100 {
        samples.push((false, 0x401000, 100));
    }
    for _ in 0..100 {
        samples.push((true, 0xffffffff81000120, 200));
    }
    let per = samples.len().div_ceil(blocks);
    for (bi, chunk) in samples.chunks(per).enumerate() {
        let mut buf = Vec::new();
        let mut first = u64::MAX;
        let mut last = 0;
        for (j, &(k, ip, pid)) in chunk.iter().enumerate() {
            let n = (bi * per + j) as u64;
            let t = 1_000_000 + n * 1000;
            first = first.min(t);
            last = last.max(t);
            buf.extend(sample_rec(k, ip, pid, pid, t, (n % 2) as u32, period));
        }
        w.write_block(
            BlockInfo {
                kind: BlockKind::SAMPLES,
                stream: (bi % 2) as u32,
                record_count: chunk.len() as u32,
                first_time: first,
                last_time: last,
            },
            &buf,
        )
        .unwrap();
    }
    let ks = "ffffffff81000000 T _stext\nffffffff81000010 T k_hot\nffffffff81000100 t k_warm\nffffffff81000200 T k_end\n";
    w.write_block(g(BlockKind::KALLSYMS), ks.as_bytes()).unwrap();
    if finish {
        w.finish().unwrap()
    } else {
        w.position()
    }
}

/// Stock perf is there (CI installs it; elsewhere tests skip and say so).
pub fn have_perf() -> bool {
    let ok = Command::new("perf").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI must have linux-perf (scripts/setup.sh installs it)");
        }
        eprintln!("SKIP: stock perf is not installed (scripts/setup.sh installs linux-perf)");
    }
    ok
}
