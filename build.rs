//! Compiles bpf/flow.bpf.c with clang and generates its libbpf-rs skeleton
//! into OUT_DIR (src/flow/ includes it). clang comes from scripts/setup.sh.

use std::path::PathBuf;

fn main() {
    let Some(out_dir) = std::env::var_os("OUT_DIR") else {
        panic!("OUT_DIR is not set: build.rs runs under cargo");
    };
    let out = PathBuf::from(out_dir).join("flow.skel.rs");
    let src = "bpf/flow.bpf.c";
    libbpf_cargo::SkeletonBuilder::new()
        .source(src)
        .clang_args(["-I", "bpf", "-Wall", "-Wno-unused-function"])
        .build_and_generate(&out)
        .unwrap_or_else(|e| panic!("building {src} (needs clang: run scripts/setup.sh): {e:#}"));
    for f in [src, "bpf/flow.h", "bpf/vmlinux.h"] {
        println!("cargo:rerun-if-changed={f}");
    }
}
