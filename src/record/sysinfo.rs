//! The recording machine's description: host, kernel, CPU, cache line,
//! CPU -> node and memory -> node topology. Everything here degrades to an
//! empty or default value when /sys or /proc does not say: a trace is still
//! written, and analyses report what they cannot know.

use crate::perf::sys::{online_cpus, page_size, parse_cpu_list};
use crate::trace::meta::{CpuNode, MemoryRange, Metadata};
use std::fs;

fn read_trim(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Fill the machine fields of `m`.
pub fn describe_machine(m: &mut Metadata) {
    // SAFETY: uname writes into the struct we pass; zeroed is a valid utsname.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } == 0 {
        let field = |f: &[libc::c_char]| {
            let bytes: Vec<u8> = f.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        m.hostname = field(&u.nodename);
        m.kernel_release = field(&u.release);
        m.arch = field(&u.machine);
    }
    if let Ok(cpuinfo) = fs::read_to_string("/proc/cpuinfo") {
        for line in cpuinfo.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim(), v.trim());
            match k {
                "vendor_id" | "CPU implementer" if m.cpu_vendor.is_empty() => m.cpu_vendor = v.to_string(),
                "model name" | "Processor" | "cpu" if m.cpu_model.is_empty() => m.cpu_model = v.to_string(),
                _ => {}
            }
        }
    }
    m.cache_line_size =
        read_trim("/sys/devices/system/cpu/cpu0/cache/index0/coherency_line_size").and_then(|s| s.parse().ok()).unwrap_or(64);
    m.page_size = page_size() as u32;
    m.online_cpus = online_cpus();
    m.nr_cpus = read_trim("/sys/devices/system/cpu/possible")
        .map(|s| parse_cpu_list(&s).len() as u32)
        .filter(|&n| n > 0)
        .unwrap_or(m.online_cpus.len() as u32);
    let (cpu_nodes, memory_nodes) = numa_topology();
    m.cpu_nodes = cpu_nodes;
    m.memory_nodes = memory_nodes;
}

/// CPU -> node from /sys/devices/system/node/nodeN/cpulist, and physical
/// memory ranges -> node from the memory blocks linked under each node.
pub fn numa_topology() -> (Vec<CpuNode>, Vec<MemoryRange>) {
    let mut cpus = Vec::new();
    let mut mem = Vec::new();
    let block_size = read_trim("/sys/devices/system/memory/block_size_bytes").and_then(|s| u64::from_str_radix(&s, 16).ok());
    let Ok(dir) = fs::read_dir("/sys/devices/system/node") else {
        return (cpus, mem);
    };
    for ent in dir.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        let Some(node) = name.strip_prefix("node").and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(list) = read_trim(&format!("/sys/devices/system/node/{name}/cpulist")) {
            cpus.extend(parse_cpu_list(&list).into_iter().map(|cpu| CpuNode { cpu, node }));
        }
        if let (Some(bs), Ok(nd)) = (block_size, fs::read_dir(ent.path())) {
            let mut blocks: Vec<u64> = nd
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix("memory")).and_then(|n| n.parse().ok()))
                .collect();
            blocks.sort_unstable();
            for b in blocks {
                let start = b * bs;
                match mem.last_mut() {
                    Some(MemoryRange { end, node: n, .. }) if *n == node && *end == start => *end = start + bs,
                    _ => mem.push(MemoryRange { start, end: start + bs, node }),
                }
            }
        }
    }
    cpus.sort_by_key(|c| (c.cpu, c.node));
    mem.sort_by_key(|r| (r.start, r.node));
    (cpus, mem)
}

/// CLOCK_MONOTONIC now, in ns (the clock our events use).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through the pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// /proc/kallsyms, when it shows real addresses (root, or kptr_restrict 0).
pub fn kallsyms() -> Option<String> {
    let s = fs::read_to_string("/proc/kallsyms").ok()?;
    let any_real = s.lines().take(1000).any(|l| l.split_whitespace().next().is_some_and(|a| !a.trim_start_matches('0').is_empty()));
    any_real.then_some(s)
}

/// PMUs the kernel registered (cpu, cpu_core, ibs_op, software, ...).
pub fn pmus() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir("/sys/bus/event_source/devices")
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

pub fn perf_event_paranoid() -> Option<i32> {
    read_trim("/proc/sys/kernel/perf_event_paranoid").and_then(|s| s.parse().ok())
}
