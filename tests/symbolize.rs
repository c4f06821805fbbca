//! Symbolization as users meet it: DWARF lines and inline chains checked
//! against binutils addr2line on the same addresses, a shared library, a
//! stripped binary whose debug info is found by build-id, JIT code named by
//! perf-PID.map, data symbols of page-fault addresses, kernel symbols from a
//! different kallsyms, flame graphs. Captures need root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn src(name: &str) -> String {
    program_src(name)
}

fn jsonl(args: &[&str]) -> Vec<serde_json::Value> {
    let o = run(args);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// binutils addr2line -f -i: (function, "basename:line") innermost first.
fn binutils_frames(binary: &Path, vaddr: &str) -> Vec<(String, String)> {
    let o = Command::new("addr2line").args(["-f", "-i", "-e"]).arg(binary).arg(vaddr).output().expect("addr2line (binutils)");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks(2)
        .map(|c| {
            let loc = c.get(1).copied().unwrap_or("??:0");
            let loc = loc.split(" (discriminator").next().unwrap();
            let (file, line) = loc.rsplit_once(':').unwrap_or((loc, "0"));
            let line = if line == "?" { "0" } else { line };
            (c[0].to_string(), format!("{}:{line}", file.rsplit('/').next().unwrap()))
        })
        .collect()
}

fn ours(frames: &serde_json::Value) -> Vec<(String, String)> {
    frames
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let file = f["file"].as_str().map(|p| p.rsplit('/').next().unwrap().to_string()).unwrap_or_else(|| "??".into());
            (f["function"].as_str().unwrap_or("??").to_string(), format!("{file}:{}", f["line"].as_u64().unwrap_or(0)))
        })
        .collect()
}

#[test]
fn lines_and_inline_chains_match_binutils_addr2line() {
    if !require_root("lines_and_inline_chains_match_binutils_addr2line") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tmpdir();
    let inl = build_inl(d.path());
    let t = d.path().join("i.msen");
    let o = run(&["record", "-q", "-g", "-F", "2000", "-o", t.to_str().unwrap(), "--", inl.to_str().unwrap(), "0.8"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let samples = jsonl(&["script", "--format", "jsonl", "--srcline", t.to_str().unwrap()]);
    let mut seen = BTreeSet::new();
    let mut checked = 0;
    let mut inlined = 0;
    for s in &samples {
        let dso = s["dso"].as_str().unwrap_or("");
        let bin = match dso {
            "inl" => inl.clone(),
            "libwork.so" => d.path().join("libwork.so"),
            _ => continue,
        };
        let va = s["elf_addr"].as_str().unwrap().to_string();
        if !seen.insert((dso.to_string(), va.clone())) || seen.len() > 60 {
            continue;
        }
        let want = binutils_frames(&bin, &va);
        let got = ours(&s["frames"]);
        assert_eq!(got, want, "{dso} {va}: msen {got:?}, addr2line {want:?}");
        inlined += got.len().saturating_sub(1);
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} distinct addresses");
    assert!(inlined > 0, "no inline frame seen: mix() is always_inline");
    // The report names the inlined function and the library.
    let j = json(&run(&["report", "--format", "json", "--sort", "dso,sym", "--inline", t.to_str().unwrap()]));
    let rows = j["rows"].as_array().unwrap();
    let mix = rows.iter().find(|r| r["sym"] == "mix (inlined)").expect("mix (inlined) row");
    // The share is whatever this CPU's speed makes it; what must hold is
    // that it counts exactly the samples whose inline chain has mix.
    let with_mix = samples.iter().filter(|s| s["frames"].as_array().is_some_and(|f| f.iter().any(|fr| fr["function"] == "mix"))).count();
    let want = 100.0 * with_mix as f64 / samples.len() as f64;
    let got = mix["children_percent"].as_f64().unwrap();
    assert!((got - want).abs() < 0.5 && got > 5.0, "mix (inlined) {got}% of children, {want}% of samples have mix inlined: {mix}");
    assert!(rows.iter().any(|r| r["dso"] == "libwork.so" && r["sym"] == "lib_work"));
    let j = json(&run(&["report", "--format", "json", "--sort", "srcline", "--no-children", t.to_str().unwrap()]));
    let top = j["rows"][0]["srcline"].as_str().unwrap().to_string();
    assert!(top.starts_with("inl.c:") || top.starts_with("libwork.c:"), "{top}");
}

#[test]
fn stripped_binary_uses_debug_info_found_by_build_id() {
    if !require_root("stripped_binary_uses_debug_info_found_by_build_id") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tmpdir();
    let hot_src = src("hot.c");
    cc(&["-O2", "-g", "-fno-omit-frame-pointer", "-fno-optimize-sibling-calls", "-Wl,--build-id", "-o", "hot.full", &hot_src], d.path());
    let st = Command::new("objcopy").args(["--only-keep-debug", "hot.full", "hot.debug"]).current_dir(d.path()).status().unwrap();
    assert!(st.success());
    let st = Command::new("objcopy").args(["--strip-all", "hot.full", "hot"]).current_dir(d.path()).status().unwrap();
    assert!(st.success());
    let t = d.path().join("s.msen");
    let hot = d.path().join("hot");
    let o = run(&["record", "-q", "-F", "2000", "-o", t.to_str().unwrap(), "--", hot.to_str().unwrap(), "0.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Without debug info: no function names in the stripped binary.
    let j = json(&run(&["report", "--format", "json", "--sort", "sym", "--comm", "hot", t.to_str().unwrap()]));
    assert!(!j["rows"].as_array().unwrap().iter().any(|r| r["sym"] == "hot_loop"), "{j}");
    // A symfs with the binary and its debug file under .build-id.
    let info = json(&run(&["info", "--format", "json", t.to_str().unwrap()]));
    let bid = info["capture_end"]["build_ids"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["path"] == hot.to_str().unwrap())
        .expect("build-id recorded")["build_id"]
        .as_str()
        .unwrap()
        .to_string();
    let symfs = d.path().join("symfs");
    let bin_in = symfs.join(hot.strip_prefix("/").unwrap());
    std::fs::create_dir_all(bin_in.parent().unwrap()).unwrap();
    std::fs::copy(&hot, &bin_in).unwrap();
    let dbg = symfs.join(format!("usr/lib/debug/.build-id/{}/{}.debug", &bid[..2], &bid[2..]));
    std::fs::create_dir_all(dbg.parent().unwrap()).unwrap();
    std::fs::copy(d.path().join("hot.debug"), &dbg).unwrap();
    let j = json(&run(&[
        "report",
        "--format",
        "json",
        "--sort",
        "sym,srcline",
        "--comm",
        "hot",
        "--symfs",
        symfs.to_str().unwrap(),
        t.to_str().unwrap(),
    ]));
    let top = &j["rows"][0];
    assert_eq!(top["sym"], "hot_loop", "{j}");
    assert!(top["srcline"].as_str().unwrap().starts_with("hot.c:"), "{top}");
}

#[test]
fn jit_code_is_named_from_perf_map() {
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("SKIP: the test JIT emits x86-64 code");
        return;
    }
    if !require_root("jit_code_is_named_from_perf_map") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tmpdir();
    cc(&["-O2", "-o", "jit", &src("jit.c")], d.path());
    let t = d.path().join("j.msen");
    let o = run(&["record", "-q", "-F", "2000", "-o", t.to_str().unwrap(), "--", d.path().join("jit").to_str().unwrap(), "0.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = json(&run(&["report", "--format", "json", t.to_str().unwrap()]));
    let top = &j["rows"][0];
    assert_eq!(top["sym"], "jit_spin", "{j}");
    assert!(top["dso"].as_str().unwrap().starts_with("perf-") && top["dso"].as_str().unwrap().ends_with(".map"));
    assert!(top["percent"].as_f64().unwrap() > 90.0);
    // The map was captured: the trace still names it after the file is gone.
    for e in std::fs::read_dir("/tmp").unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("perf-") && n.ends_with(".map") && std::fs::read_to_string(e.path()).unwrap_or_default().contains("jit_spin") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let j = json(&run(&["report", "--format", "json", t.to_str().unwrap()]));
    assert_eq!(j["rows"][0]["sym"], "jit_spin");
}

#[test]
fn page_fault_addresses_name_globals_and_the_heap() {
    if !require_root("page_fault_addresses_name_globals_and_the_heap") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tmpdir();
    cc(&["-O0", "-g", "-o", "data", &src("data.c")], d.path());
    let t = d.path().join("d.msen");
    let o =
        run(&["record", "-q", "-e", "page-faults", "-c", "1", "-o", t.to_str().unwrap(), "--", d.path().join("data").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let samples = jsonl(&["script", "--format", "jsonl", t.to_str().unwrap()]);
    let syms: Vec<String> = samples.iter().filter_map(|s| s["data_sym"].as_str().map(String::from)).collect();
    let globals = syms.iter().filter(|s| s.starts_with("global_buf+")).count();
    let heap = syms.iter().filter(|s| s.starts_with("[heap]+")).count();
    assert!(globals >= 400, "global_buf faults: {globals}");
    assert!(heap >= 400, "heap faults: {heap}");
    // A registered data object wins over the mapping name.
    let first_heap = samples.iter().find(|s| s["data_sym"].as_str().is_some_and(|d| d.starts_with("[heap]+"))).unwrap();
    let a = u64::from_str_radix(first_heap["addr"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    let objs = d.path().join("objects.txt");
    std::fs::write(&objs, format!("# address size name type\n{:x} 4096 conn_table struct conn[64]\n", a & !0xfff)).unwrap();
    let samples = jsonl(&["script", "--format", "jsonl", "--data-objects", objs.to_str().unwrap(), t.to_str().unwrap()]);
    assert!(samples.iter().any(|s| s["data_sym"].as_str().is_some_and(|d| d.starts_with("conn_table+0x"))));
}

#[test]
fn kernel_symbols_come_from_the_given_kallsyms() {
    let d = tmpdir();
    let p = d.path().join("s.msen");
    synthetic_trace(&p, 2, true);
    let k = d.path().join("kallsyms");
    std::fs::write(
        &k,
        "ffffffff81000000 T _stext\nffffffff81000010 T other_hot\nffffffff81000100 t other_warm\nffffffff81000200 T k_end\n",
    )
    .unwrap();
    let j = json(&run(&["report", "--format", "json", "--kallsyms", k.to_str().unwrap(), p.to_str().unwrap()]));
    assert_eq!(j["rows"][0]["sym"], "other_hot");
    let j = json(&run(&["report", "--format", "json", p.to_str().unwrap()]));
    assert_eq!(j["rows"][0]["sym"], "k_hot");
}

#[test]
fn flame_graph_holds_the_hot_path() {
    if !require_root("flame_graph_holds_the_hot_path") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tmpdir();
    let hot = build_program("hot", d.path());
    let t = d.path().join("f.msen");
    let o = run(&["record", "-q", "-g", "-F", "2000", "-o", t.to_str().unwrap(), "--", hot.to_str().unwrap(), "0.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let folded = stdout(&run(&["report", "--format", "folded", t.to_str().unwrap()]));
    let (stack, n) = folded.lines().map(|l| l.rsplit_once(' ').unwrap()).max_by_key(|(_, n)| n.parse::<u64>().unwrap()).unwrap();
    assert!(stack.starts_with("hot;") && stack.ends_with(";main;hot_loop"), "{stack}");
    assert!(n.parse::<u64>().unwrap() > 500);
    let svg = stdout(&run(&["report", "--format", "flamegraph", t.to_str().unwrap()]));
    assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"), "not an SVG");
    // Every frame is a <g> with a <title>NAME (N samples, P%)</title>.
    let titles: Vec<&str> = svg.split("<title>").skip(1).filter_map(|t| t.split("</title>").next()).collect();
    let hl = titles.iter().find(|t| t.starts_with("hot_loop (")).expect("hot_loop frame");
    let pct: f64 = hl.rsplit_once(", ").unwrap().1.trim_end_matches("%)").parse().unwrap();
    assert!(pct > 75.0, "{hl}");
    assert!(titles.iter().any(|t| t.starts_with("main (")));
}

/// A process in another mount namespace (a container) ran a different file
/// at the same path: the trace records the build-id of the file it ran.
#[test]
fn build_ids_come_from_the_process_mount_namespace() {
    if !require_root("build_ids_come_from_the_process_mount_namespace") {
        return;
    }
    if Command::new("unshare").arg("--version").output().is_err() {
        eprintln!("SKIP: unshare (util-linux) is not installed");
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tmpdir();
    let (host, inner) = (d.path().join("host"), d.path().join("inner"));
    std::fs::create_dir_all(&host).unwrap();
    std::fs::create_dir_all(&inner).unwrap();
    cc(&["-O2", "-Wl,--build-id", "-o", host.join("hot").to_str().unwrap(), &src("hot.c")], d.path());
    // A different binary at the same path inside the namespace.
    cc(&["-O1", "-Wl,--build-id", "-DVARIANT=1", "-o", inner.join("hot").to_str().unwrap(), &src("hot.c")], d.path());
    let host_bin = host.join("hot");
    let t = d.path().join("ns.msen");
    let script = format!("mount --bind {} {} && exec {} 0.5", inner.display(), host.display(), host_bin.display());
    let o = run(&["record", "-q", "-o", t.to_str().unwrap(), "--", "unshare", "-m", "--propagation", "private", "sh", "-c", &script]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info = json(&run(&["info", "--format", "json", t.to_str().unwrap()]));
    let recorded = info["capture_end"]["build_ids"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["path"] == host_bin.to_str().unwrap())
        .expect("build-id recorded")["build_id"]
        .as_str()
        .unwrap()
        .to_string();
    let inner_id = msen::symbolize::elf::build_id(&inner.join("hot")).unwrap();
    let host_id = msen::symbolize::elf::build_id(&host_bin).unwrap();
    assert_ne!(inner_id, host_id);
    assert_eq!(recorded, inner_id, "the build-id of the file the process ran");
}
