//! The attrs `msen record` opens equal the ones stock perf opens, for PMUs of
//! machines this project cannot run on (testdata/pmu/*: Skylake, Sapphire
//! Rapids, Alder Lake hybrid, AMD Zen 4 with IBS, Arm64 with SPE).
//!
//! perf reads PMUs from sysfs only, so scripts/pmu-ns.sh runs it in a private
//! mount namespace where the fixture replaces /sys/bus/event_source/devices
//! and /sys/devices/PMU; `perf record -vv` prints each attr it tries even
//! though the open then fails (no PMU here). msen reads the same fixture
//! through MSEN_SYSFS_PMUS and prints its attrs with --print-attrs.
//!
//! perf gives up at the first event that cannot open, so it is run once per
//! event; the compared fields do not depend on the other events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/pmu").join(name)
}

/// The first attr perf tries, as field -> value text.
fn perf_first_attr(fx: &str, args: &[&str]) -> BTreeMap<String, String> {
    let d = tmpdir();
    let out = d.path().join("perf.data");
    let o = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pmu-ns.sh"))
        .arg(fixture(fx))
        .args(["--", "perf", "--debug", "verbose=2"])
        .args(args)
        .arg("-o")
        .arg(&out)
        .args(["--", "true"])
        .output()
        .expect("run perf in the fixture namespace");
    let text = String::from_utf8_lossy(&o.stderr);
    let mut m = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("perf_event_attr:") {
            inside = true;
            continue;
        }
        if inside && line.starts_with("----") {
            return m;
        }
        if inside {
            let l = line.trim();
            // "{ sample_period, sample_freq }   4000", "type   4"
            let (k, v) = match l.rfind(char::is_whitespace) {
                Some(i) => (l[..i].trim(), l[i..].trim()),
                None => continue,
            };
            m.insert(k.to_string(), v.to_string());
        }
    }
    panic!("perf {args:?} on {fx} printed no attr:\n{text}");
}

fn msen_attrs(fx: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let o = msen().env("MSEN_SYSFS_PMUS", fixture(fx)).arg("record").arg("--print-attrs").args(args).args(["--", "true"]).output().unwrap();
    assert!(o.status.success(), "msen record --print-attrs {args:?}: {}", stderr(&o));
    json(&o).as_array().unwrap().clone()
}

/// sample_type bits that decide what a sample holds for the analyses.
const COMPARED_BITS: &[&str] = &[
    "ADDR",
    "CALLCHAIN",
    "BRANCH_STACK",
    "REGS_USER",
    "STACK_USER",
    "WEIGHT",
    "DATA_SRC",
    "PHYS_ADDR",
    "DATA_PAGE_SIZE",
    "CODE_PAGE_SIZE",
    "WEIGHT_STRUCT",
];

fn num(v: &str) -> u64 {
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap(),
        None => v.parse().unwrap(),
    }
}

/// The compared fields of perf's attr, in msen's JSON names.
fn perf_fields(p: &BTreeMap<String, String>) -> BTreeMap<&'static str, String> {
    let g = |k: &str| p.get(k).map_or(0, |v| num(v));
    let bits: Vec<&str> = p.get("sample_type").map_or(vec![], |s| s.split('|').collect());
    let mut m = BTreeMap::new();
    m.insert("type", g("type").to_string());
    m.insert("config", format!("{:#x}", g("config")));
    m.insert("config1", format!("{:#x}", g("{ bp_addr, config1 }")));
    m.insert("config2", format!("{:#x}", g("{ bp_len, config2 }")));
    m.insert("period_or_freq", g("{ sample_period, sample_freq }").to_string());
    m.insert("sample_bits", COMPARED_BITS.iter().filter(|b| bits.contains(b)).copied().collect::<Vec<_>>().join("|"));
    m.insert("branch_sample_type", p.get("branch_sample_type").cloned().unwrap_or_default());
    for k in
        ["freq", "precise_ip", "exclude_user", "exclude_kernel", "exclude_hv", "exclude_guest", "exclude_host", "exclude_callchain_user"]
    {
        m.insert(k, g(k).to_string());
    }
    m.insert("sample_regs_user", format!("{:#x}", g("sample_regs_user")));
    m.insert("sample_stack_user", g("sample_stack_user").to_string());
    m
}

fn msen_fields(a: &serde_json::Value) -> BTreeMap<&'static str, String> {
    let g = |k: &str| a[k].as_u64().unwrap_or_else(|| panic!("no {k} in {a}"));
    let names = a["sample_type_names"].as_str().unwrap();
    let bits: Vec<&str> = names.split('|').collect();
    let mut m = BTreeMap::new();
    m.insert("type", g("type").to_string());
    m.insert("config", format!("{:#x}", g("config")));
    m.insert("config1", format!("{:#x}", g("config1")));
    m.insert("config2", format!("{:#x}", g("config2")));
    m.insert("period_or_freq", (g("sample_period") + g("sample_freq")).to_string());
    m.insert("sample_bits", COMPARED_BITS.iter().filter(|b| bits.contains(b)).copied().collect::<Vec<_>>().join("|"));
    m.insert("branch_sample_type", a["branch_sample_type_names"].as_str().unwrap().to_string());
    for k in
        ["freq", "precise_ip", "exclude_user", "exclude_kernel", "exclude_hv", "exclude_guest", "exclude_host", "exclude_callchain_user"]
    {
        m.insert(k, g(k).to_string());
    }
    m.insert("sample_regs_user", format!("{:#x}", g("sample_regs_user")));
    m.insert("sample_stack_user", g("sample_stack_user").to_string());
    m
}

/// One case: msen's arguments, and for each event msen opens, the perf
/// command line that opens the same event.
fn check(fx: &str, msen_args: &[&str], perf_per_event: &[&[&str]]) {
    let ours = msen_attrs(fx, msen_args);
    assert_eq!(ours.len(), perf_per_event.len(), "{fx} {msen_args:?}: msen opens {} events: {ours:?}", ours.len());
    for (a, pargs) in ours.iter().zip(perf_per_event) {
        let theirs = perf_fields(&perf_first_attr(fx, pargs));
        let mine = msen_fields(a);
        assert_eq!(mine, theirs, "\n{fx}: msen record {msen_args:?} ({}) against perf {pargs:?}", a["name"]);
    }
}

/// msen's first event against the first attr of one perf command that
/// opens several (perf stops at the first that fails to open).
fn check_first(fx: &str, msen_args: &[&str], perf_args: &[&str]) {
    let ours = msen_attrs(fx, msen_args);
    let theirs = perf_fields(&perf_first_attr(fx, perf_args));
    assert_eq!(msen_fields(&ours[0]), theirs, "\n{fx}: msen record {msen_args:?} ({}) against perf {perf_args:?}", ours[0]["name"]);
}

fn ready(test: &str) -> bool {
    require_root(test) && have_perf() && Command::new("unshare").arg("--version").output().is_ok()
}

#[test]
fn event_syntax_and_modifiers_match_perf() {
    if !ready("event_syntax_and_modifiers_match_perf") {
        return;
    }
    let same = |fx: &str, args: &[&str]| check(fx, args, &[&[&["record"][..], args].concat()]);
    for args in [
        &["-e", "cycles"][..],
        &["-e", "instructions:u"],
        &["-e", "cycles:P"],
        &["-e", "r1c2:pp"],
        &["-e", "cpu/event=0x3c,umask=0/k"],
        &["-e", "cpu/event=0xc0,cmask=2,inv/"],
        &["-e", "cpu/event=0x3c,period=5000/"],
        &["-e", "cpu/event=0x3c,freq=100/"],
        &["-e", "mem-loads"],
        &["-e", "cpu/mem-loads/u"],
        &["-e", "cache-misses:ppp", "-c", "1000"],
        &["-e", "branch-misses:kG", "-F", "999"],
        &["-e", "cycles:uH"],
    ] {
        same("intel-skl", args);
    }
    same("amd-zen4", &["-e", "cpu/event=0x1c0,umask=0x2/"]);
    same("amd-zen4", &["-e", "ibs_op/cnt_ctl=1,l3missonly=1/"]);
    same("arm64-spe", &["-e", "armv8_pmuv3_0/event=0x11/"]);
    same("arm64-spe", &["-e", "arm_spe_0/ts_enable=1,pa_enable=1,load_filter=1,min_latency=64/"]);
}

#[test]
fn memory_options_match_perf() {
    if !ready("memory_options_match_perf") {
        return;
    }
    // perf chooses memory events by the host's CPUID, not by the PMUs in
    // sysfs, so `perf mem record` / `perf c2c record` run as such only on
    // the fixture of the host's vendor; every set is also spelled out with
    // the flags perf mem and perf c2c add, which runs on any host.
    let skl_loads: &[&str] = &["record", "-W", "-d", "-e", "cpu/mem-loads,ldlat=30/P"];
    let skl_stores: &[&str] = &["record", "-W", "-d", "-e", "cpu/mem-stores/P"];
    let vendor = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if vendor.contains("AuthenticAMD") {
        check("amd-zen4", &["--mem"], &[&["mem", "record"]]);
        check("amd-zen4", &["--c2c"], &[&["c2c", "record"]]);
    } else if vendor.contains("GenuineIntel") {
        // Loads then stores in one command: perf stops at the loads (they
        // cannot open here), so its first attr is compared with msen's.
        check_first("intel-skl", &["--mem"], &["mem", "record"]);
        check_first("intel-skl", &["--c2c"], &["c2c", "record"]);
    }
    check("amd-zen4", &["--mem"], &[&["record", "-W", "-d", "-e", "ibs_op//"]]);
    check("amd-zen4", &["--c2c"], &[&["record", "-W", "-d", "--phys-data", "--sample-cpu", "-e", "ibs_op//"]]);
    check("intel-skl", &["--mem"], &[skl_loads, skl_stores]);
    check(
        "intel-skl",
        &["--c2c"],
        &[
            &["record", "-W", "-d", "--phys-data", "--sample-cpu", "-e", "cpu/mem-loads,ldlat=30/P"],
            &["record", "-W", "-d", "--phys-data", "--sample-cpu", "-e", "cpu/mem-stores/P"],
        ],
    );
    check("intel-skl", &["--mem", "--ldlat", "50"], &[&["record", "-W", "-d", "-e", "cpu/mem-loads,ldlat=50/P"], skl_stores]);
    check(
        "intel-adl-hybrid",
        &["--mem"],
        &[
            &["record", "-W", "-d", "-e", "cpu_atom/mem-loads,ldlat=30/P"],
            &["record", "-W", "-d", "-e", "cpu_atom/mem-stores/P"],
            &["record", "-W", "-d", "-e", "cpu_core/mem-loads,ldlat=30/P"],
            &["record", "-W", "-d", "-e", "cpu_core/mem-stores/P"],
        ],
    );
    check(
        "arm64-spe",
        &["--mem"],
        &[&["record", "-W", "-d", "-e", "arm_spe_0/ts_enable=1,pa_enable=1,load_filter=1,store_filter=1,min_latency=30/"]],
    );
    for args in
        [&["-e", "cpu/mem-stores/P", "-d"][..], &["-e", "cycles", "-d", "--phys-data", "--data-page-size"], &["-e", "task-clock", "-W"]]
    {
        check("intel-skl", args, &[&[&["record"][..], args].concat()]);
    }
}

#[test]
fn branch_and_call_graph_options_match_perf() {
    if !ready("branch_and_call_graph_options_match_perf") {
        return;
    }
    for args in [
        &["-e", "cycles:pp", "-b"][..],
        &["-e", "cycles", "-j", "any_call,u"],
        &["-e", "cycles", "-j", "u"],
        &["-e", "cycles", "-j", "any,save_type,k"],
        &["-e", "cycles", "--call-graph", "lbr"],
        &["-e", "cycles", "--call-graph", "dwarf"],
        &["-e", "cycles", "--call-graph", "dwarf,4096"],
        &["-e", "cycles", "--call-graph", "fp"],
        &["-e", "cycles", "-g"],
    ] {
        check("intel-skl", args, &[&[&["record"][..], args].concat()]);
    }
    check("amd-zen4", &["-e", "cycles", "-b"], &[&["record", "-e", "cycles", "-b"]]);
}

/// The corpus files were recorded on real machines: rebuild their attrs
/// with msen from a description of those PMUs.
#[test]
fn corpus_recordings_attrs_are_reproduced() {
    let cases: &[(&str, &[&str], u64, u64, u64)] = &[
        // perf c2c record on a Comet Lake (mem_cml_c2c_record_prospar):
        // cpu/mem-loads,ldlat=30/P config 0x1cd config1 0x1f, mem-stores 0x82d0.
        ("intel-skl", &["--c2c"], 4, 0x1cd, 0x1f),
        // lbr_skl_cyclesppp_b_quipper: cycles:ppp -b.
        ("intel-skl", &["-e", "cycles:ppp", "-b"], 0, 0, 0),
    ];
    for (fx, args, ty, config, config1) in cases {
        let a = &msen_attrs(fx, args)[0];
        assert_eq!(
            (a["type"].as_u64(), a["config"].as_u64(), a["config1"].as_u64()),
            (Some(*ty), Some(*config), Some(*config1)),
            "{args:?}"
        );
    }
    let c2c = msen_attrs("intel-skl", &["--c2c"]);
    assert_eq!(c2c[1]["config"].as_u64(), Some(0x82d0));
    for a in &c2c {
        let names = a["sample_type_names"].as_str().unwrap();
        for bit in ["ADDR", "DATA_SRC", "PHYS_ADDR", "CPU"] {
            assert!(names.split('|').any(|b| b == bit), "{names}");
        }
        assert_eq!(a["precise_ip"].as_u64(), Some(3));
    }
    let lbr = &msen_attrs("intel-skl", &["-e", "cycles:ppp", "-b"])[0];
    assert_eq!((lbr["precise_ip"].as_u64(), lbr["branch_sample_type_names"].as_str()), (Some(3), Some("ANY")));
    // The hybrid corpus file: cpu_core/cycles:ppp/ 0x400000000, cpu_atom 0x700000000 (atom is type 8 here).
    let h = msen_attrs("intel-adl-hybrid", &["-e", "cycles:ppp"]);
    let mut cfg: Vec<u64> = h.iter().map(|a| a["config"].as_u64().unwrap()).collect();
    cfg.sort();
    assert_eq!(cfg, vec![0x4_0000_0000, 0x8_0000_0000]);
}

/// The comparison itself tells attrs apart (a check that cannot fail proves
/// nothing): different modifiers, terms and options give different fields.
#[test]
fn the_comparison_sees_differences() {
    if !ready("the_comparison_sees_differences") {
        return;
    }
    let pairs: &[(&[&str], &[&str])] = &[
        (&["-e", "cycles:u"], &["record", "-e", "cycles:k"]),
        (&["-e", "cpu/mem-loads,ldlat=30/P"], &["record", "-e", "cpu/mem-loads,ldlat=50/P"]),
        (&["-e", "cycles", "-d"], &["record", "-e", "cycles"]),
        (&["-e", "cycles", "-j", "any_call"], &["record", "-e", "cycles", "-j", "any_ret"]),
    ];
    for (ours, theirs) in pairs {
        let a = &msen_attrs("intel-skl", ours)[0];
        assert_ne!(msen_fields(a), perf_fields(&perf_first_attr("intel-skl", theirs)), "{ours:?} vs {theirs:?}");
    }
}
