//! Self-contained traces: a capture analyzed where its binaries are not
//! (an empty --symfs stands for a laptop) prints the same report, srclines,
//! folded stacks and flame graph as on the recording host, from the symbols
//! and lines `msen record` embeds; a rebuilt binary (build-id mismatch) is
//! named from the trace too; `--no-embed` shows what is lost without them.
//! Also MiniDebugInfo (.gnu_debugdata) and the vdso. Captures need root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::process::Command;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn src(name: &str) -> String {
    program_src(name)
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "msen {args:?}: {}", stderr(&o));
    stdout(&o)
}

/// The views a user compares, with the report header (which names the
/// file) and the footer's notes on where names came from left out.
fn views(trace: &str, symfs: &str) -> Vec<(String, String)> {
    let body = |s: String| {
        s.lines()
            .filter(|l| !l.starts_with("# msen report of") && !l.contains("embedded symbols") && !l.contains(": not readable"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    vec![
        ("report".into(), body(ok(&["report", trace, "--symfs", symfs, "--sort", "dso,sym", "--full-names"]))),
        (
            "srcline".into(),
            body(ok(&["report", trace, "--symfs", symfs, "--no-children", "-g", "none", "--sort", "sym,srcline", "--full-names"])),
        ),
        ("folded".into(), ok(&["report", trace, "--symfs", symfs, "--format", "folded", "--inline"])),
        ("flamegraph".into(), ok(&["report", trace, "--symfs", symfs, "--format", "flamegraph"])),
        ("script".into(), ok(&["script", trace, "--symfs", symfs])),
    ]
}

#[test]
fn trace_reads_the_same_without_its_binaries() {
    if !require_root("trace_reads_the_same_without_its_binaries") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tmpdir();
    let inl = build_inl(d.path());
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (empty, home) = (empty.to_str().unwrap(), d.path().to_str().unwrap());
    let t = d.path().join("t.msen");
    let o = msen()
        .args(["record", "-q", "-g", "--embed-lines", "-o", t.to_str().unwrap(), "--"])
        .arg(&inl)
        .env("HOME", home) // no perf build-id cache to fall back on
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let t = t.to_str().unwrap();
    let info = ok(&["info", t]);
    assert!(info.contains("embedded symbols") && info.contains("/inl (") && info.contains("libwork.so ("), "{info}");
    let here = views(t, "/");
    assert!(here[0].1.contains("outer_loop") && here[1].1.contains("inl.c:"), "{}", here[1].1);
    let without = |trace: &str| {
        let o = msen().args(["report", trace, "--symfs", empty]).env("HOME", home).output().unwrap();
        assert!(o.status.success());
        views(trace, empty)
    };
    let there = without(t);
    let foot = stdout(&msen().args(["report", t, "--symfs", empty]).env("HOME", home).output().unwrap());
    assert!(foot.contains("named from the trace's embedded symbols") && foot.contains("/inl"), "{foot}");
    for ((name, a), (_, b)) in here.iter().zip(&there) {
        assert_eq!(a, b, "{name} differs without the binaries");
    }

    // A rebuilt binary has another build-id: not used, the trace names it.
    std::fs::write(d.path().join("extra.c"), "int extra_symbol_to_change_the_build(void) { return 42; }\n").unwrap();
    cc(&["-O2", "-g", "-fno-omit-frame-pointer", "-o", "inl", &src("inl.c"), "extra.c", "-L.", "-lwork", "-Wl,-rpath,$ORIGIN"], d.path());
    let rebuilt = views(t, "/");
    assert_eq!(here[0].1, rebuilt[0].1, "a rebuilt binary changed the report");

    // Without embedded symbols, the same analysis loses the names.
    let bare = d.path().join("bare.msen");
    let o =
        msen().args(["record", "-q", "-g", "--no-embed", "-o", bare.to_str().unwrap(), "--"]).arg(&inl).env("HOME", home).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let bare_report = ok(&["report", bare.to_str().unwrap(), "--symfs", empty, "--sort", "dso,sym", "--no-children"]);
    assert!(!bare_report.contains("outer_loop"), "names without binaries or embedded symbols:\n{bare_report}");
    assert!(ok(&["info", bare.to_str().unwrap()]).contains("embedded symbols  : none"));
}

/// A stripped binary with MiniDebugInfo (an xz-compressed symbol table in
/// .gnu_debugdata, as Fedora ships): its local functions are named.
#[test]
fn mini_debuginfo_names_local_functions() {
    if !require_root("mini_debuginfo_names_local_functions") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tmpdir();
    let p = d.path();
    std::fs::write(
        p.join("mdi.c"),
        "#include <stdlib.h>\nstatic volatile unsigned long sink;\n\
         __attribute__((noinline)) static void spin_in_a_local_function(unsigned long n) { for (unsigned long i = 0; i < n; i++) sink += i * i; }\n\
         int main(int argc, char **argv) { for (int r = 0; r < 40; r++) spin_in_a_local_function(10000000UL); return argc > 5 ? (int)sink : 0; }\n",
    )
    .unwrap();
    cc(&["-O2", "-o", "mdi", "mdi.c"], p);
    let sh = |cmd: &str| {
        let st = Command::new("sh").arg("-c").arg(cmd).current_dir(p).status().unwrap();
        assert!(st.success(), "{cmd}");
    };
    // The Fedora recipe (find-debuginfo's add_minidebug), reduced.
    sh("nm mdi --format=posix --defined-only | awk '{ if ($2 == \"T\" || $2 == \"t\") print $1 }' | sort > funcs");
    sh("objcopy --only-keep-debug mdi mdi.dbg && objcopy -S --remove-section .gdb_index --remove-section .comment --keep-symbols=funcs mdi.dbg mini");
    sh("xz -f mini && strip --strip-all mdi && objcopy --add-section .gnu_debugdata=mini.xz mdi");
    let nm = Command::new("nm").arg(p.join("mdi")).output().unwrap();
    assert!(String::from_utf8_lossy(&nm.stderr).contains("no symbols"), "mdi is not stripped");
    let t = p.join("mdi.msen");
    let o = msen().args(["record", "-q", "--no-embed", "-o", t.to_str().unwrap(), "--"]).arg(p.join("mdi")).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r = ok(&["report", t.to_str().unwrap(), "--sort", "sym", "--no-children"]);
    let top = r.lines().find(|l| !l.starts_with('#') && l.contains('%')).unwrap_or("");
    assert!(top.contains("spin_in_a_local_function"), "top row without the MiniDebugInfo name:\n{r}");
}

/// The vdso is named from the image the trace carries, also where the
/// analysis machine's vdso would differ (a perf build-id cache is not needed).
#[test]
fn vdso_is_named_from_the_trace() {
    if !require_root("vdso_is_named_from_the_trace") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tmpdir();
    let p = d.path();
    std::fs::write(
        p.join("vd.c"),
        "#include <time.h>\nint main(void) { struct timespec ts; unsigned long s = 0; for (long i = 0; i < 30000000; i++) { clock_gettime(CLOCK_MONOTONIC, &ts); s += ts.tv_nsec; } return s == 1; }\n",
    )
    .unwrap();
    cc(&["-O2", "-o", "vd", "vd.c"], p);
    let t = p.join("vd.msen");
    let o = msen().args(["record", "-q", "-o", t.to_str().unwrap(), "--"]).arg(p.join("vd")).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let info = ok(&["info", t.to_str().unwrap()]);
    assert!(info.contains("# vdso              : carried"), "{info}");
    let r = ok(&["report", t.to_str().unwrap(), "--sort", "dso,sym", "--no-children", "--symfs", p.to_str().unwrap()]);
    let vdso: Vec<&str> = r.lines().filter(|l| l.contains("[vdso]")).collect();
    assert!(!vdso.is_empty(), "no [vdso] rows:\n{r}");
    assert!(vdso.iter().all(|l| !l.contains("0x0")), "unnamed vdso rows:\n{r}");
}

/// `msen import --embed-lines` makes a perf.data self-contained: the
/// imported trace, read without binaries, kernel symbols or perf's build-id
/// cache, reports what the perf.data reports here.
#[test]
fn imported_perf_data_reads_the_same_without_binaries() {
    if !require_root("imported_perf_data_reads_the_same_without_binaries") || !have_perf() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tmpdir();
    let inl = build_inl(d.path());
    let data = d.path().join("inl.data");
    let st = Command::new("perf")
        .args(["record", "-q", "-g", "-o", data.to_str().unwrap(), "--"])
        .arg(&inl)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let conv = d.path().join("inl.msen");
    ok(&["import", data.to_str().unwrap(), "-o", conv.to_str().unwrap(), "--embed-lines"]);
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for args in [&["--sort", "dso,sym"][..], &["--no-children", "-g", "none", "--sort", "sym,srcline"][..]] {
        let direct = ok(&[&["report", data.to_str().unwrap(), "--full-names"], args].concat());
        let o = msen()
            .args([&["report", conv.to_str().unwrap(), "--full-names", "--symfs", empty.to_str().unwrap()], args].concat())
            .env("HOME", d.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let body = |s: &str| {
            s.lines()
                .filter(|l| !l.starts_with("# msen report of") && !l.contains("embedded symbols") && !l.contains(": not readable"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(body(&direct), body(&stdout(&o)), "{args:?}");
        assert!(direct.contains("outer_loop") && direct.contains("[k] "), "{direct}");
    }
}

/// `--call-graph dwarf` stacks unwind where the binaries are not: the
/// trace carries the binaries' CFI (UNWIND block). Without it (--no-embed)
/// the same analysis loses the callers.
#[test]
fn dwarf_stacks_unwind_without_the_binaries() {
    if !require_root("dwarf_stacks_unwind_without_the_binaries") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tmpdir();
    let inl = build_inl(d.path());
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let empty = empty.to_str().unwrap();
    let folded = |trace: &str, symfs: &str| {
        let o = msen().args(["report", trace, "--symfs", symfs, "--format", "folded"]).env("HOME", d.path()).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let rows = |trace: &str, symfs: &str| -> Vec<String> {
        let o = msen().args(["report", trace, "--symfs", symfs, "--sort", "dso,sym", "-g", "none"]).env("HOME", d.path()).output().unwrap();
        stdout(&o).lines().filter(|l| !l.starts_with('#')).map(str::to_string).collect()
    };
    for (name, extra) in [("dw", &[][..]), ("bare", &["--no-embed"][..])] {
        let t = d.path().join(format!("{name}.msen"));
        let o = msen()
            .args([&["record", "-q", "--call-graph", "dwarf", "-o", t.to_str().unwrap()], extra, &["--"]].concat())
            .arg(&inl)
            .env("HOME", d.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let t = t.to_str().unwrap();
        let here = folded(t, "/");
        assert!(here.contains(";main;lib_work"), "{here}");
        if extra.is_empty() {
            assert_eq!(here, folded(t, empty), "folded stacks differ without the binaries");
            assert_eq!(rows(t, "/"), rows(t, empty), "report differs without the binaries");
            assert!(ok(&["info", t]).contains("unwind"), "no unwind tables carried");
        } else {
            assert_ne!(here, folded(t, empty), "a trace without unwind tables unwound without the binaries");
        }
    }
}
