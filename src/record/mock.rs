//! Synthetic PEBS memory samples (MicroSentinel's mock mode): `msen record
//! --mock SCENARIO` writes an ordinary trace, marked synthetic, from a seeded
//! generator on an invented 2-socket machine (cpus 0-7 on node 0, 8-15 on node
//! 1, 1 GiB of memory per node) with Intel's data_src encodings (legacy level
//! bits plus lvl_num and the remote flag, as arch/x86/events/intel/ds.c builds
//! them). Every sample's class is chosen by the scenario, so analyses can be
//! checked against the generator's intent.

use crate::analyze::datasrc::{lvl, op, snoop};
use crate::perf::attr::{flag, sample, EventAttr};
use crate::perf::record::{build_record, misc, RecordType};
use crate::record::procscan::{comm_record, mmap2_record, parse_maps_line, sample_id_trailer};
use crate::trace::format::STREAM_GLOBAL;
use crate::trace::meta::{CaptureEnd, CpuNode, EventDesc, MemoryRange, Metadata};
use crate::trace::{BlockInfo, BlockKind, TraceWriter};
use std::io;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Two threads on different sockets write different words of one line.
    FalseSharing,
    /// Two threads on different sockets update the same word.
    TrueSharing,
    /// Threads on node 0 read a buffer placed on node 1.
    RemoteDram,
    /// Private, local, cache-friendly work: nothing to find.
    Clean,
    /// Everything at once: no-address loads, uncached and I/O loads, misses,
    /// locked accesses, stores of every level, a shared file mapping.
    Mixed,
    /// A streaming workload: almost every load touches a line no other
    /// sample touches (a 1 GiB buffer read once), while two threads write
    /// four shared lines: millions of lines, four worth showing.
    Streaming,
}

impl Scenario {
    pub fn parse(s: &str) -> Option<Scenario> {
        Some(match s {
            "false-sharing" => Scenario::FalseSharing,
            "true-sharing" => Scenario::TrueSharing,
            "remote-dram" => Scenario::RemoteDram,
            "clean" => Scenario::Clean,
            "mixed" => Scenario::Mixed,
            "streaming" => Scenario::Streaming,
            _ => return None,
        })
    }
    pub const NAMES: &'static str = "false-sharing, true-sharing, remote-dram, clean, mixed, streaming";
}

/// Intel data_src encodings used by the generator.
pub mod enc {
    use super::*;
    const LVLNUM_SHIFT: u64 = 33;
    const REMOTE: u64 = 1 << 37;
    fn d(o: u64, l: u64, sn: u64, num: u64) -> u64 {
        o | (l << 5) | (sn << 19) | (num << LVLNUM_SHIFT)
    }
    pub fn l1_hit() -> u64 {
        d(op::LOAD, lvl::HIT | lvl::L1, snoop::NONE, 1)
    }
    pub fn l2_hit() -> u64 {
        d(op::LOAD, lvl::HIT | lvl::L2, snoop::NONE, 2)
    }
    pub fn llc_hit() -> u64 {
        d(op::LOAD, lvl::HIT | lvl::L3, snoop::NONE, 3)
    }
    pub fn lfb_hit() -> u64 {
        d(op::LOAD, lvl::HIT | lvl::LFB, snoop::NONE, 0xc)
    }
    pub fn local_hitm() -> u64 {
        d(op::LOAD, lvl::HIT | lvl::L3, snoop::HITM, 3)
    }
    /// Remote cache HITM: lvl REM_CCE1, snoop HITM, lvl_num L3.
    pub fn remote_hitm() -> u64 {
        d(op::LOAD, lvl::HIT | lvl::REM_CCE1, snoop::HITM, 3)
    }
    pub fn local_dram() -> u64 {
        d(op::LOAD, lvl::HIT | lvl::LOC_RAM, snoop::MISS, 0xd)
    }
    pub fn remote_dram() -> u64 {
        d(op::LOAD, lvl::HIT | lvl::REM_RAM1, snoop::MISS, 0xd) | REMOTE
    }
    pub fn uncached() -> u64 {
        d(op::LOAD, lvl::HIT | lvl::UNC, snoop::NONE, 0)
    }
    pub fn io() -> u64 {
        d(op::LOAD, lvl::HIT | lvl::IO, snoop::NONE, 0)
    }
    pub fn miss() -> u64 {
        d(op::LOAD, lvl::MISS | lvl::L3, snoop::NA, 0)
    }
    pub fn store_l1_hit() -> u64 {
        d(op::STORE, lvl::HIT | lvl::L1, snoop::NA, 0)
    }
    pub fn store_l1_miss() -> u64 {
        d(op::STORE, lvl::MISS | lvl::L1, snoop::NA, 0)
    }
    pub fn store_na() -> u64 {
        d(op::STORE, lvl::NA, snoop::NA, 0)
    }
    pub fn locked(x: u64) -> u64 {
        x | (crate::analyze::datasrc::lock::LOCKED << 24)
    }
}

/// xorshift64*: small, seeded, good enough to spread addresses and latencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The mock process's pid (its threads are PID..PID+3).
pub const PID: u32 = 4242;
const CODE: u64 = 0x40_0000;
const HEAP: u64 = 0x7f00_0000_0000;
/// The streaming scenario's buffer: an anonymous mapping of 1 GiB.
const STREAM: u64 = 0x7f10_0000_0000;
const SHM: u64 = 0x7f10_0000_0000;
const LOADS_ID: u64 = 1;
const STORES_ID: u64 = 2;
/// Node 0 memory starts at 0, node 1 at 1 GiB.
const NODE1: u64 = 1 << 30;

/// One generated sample.
#[derive(Debug, Clone, Copy)]
pub struct MockSample {
    pub store: bool,
    pub tid: u32,
    pub cpu: u32,
    pub ip: u64,
    pub addr: u64,
    pub phys: u64,
    pub data_src: u64,
    pub weight: u64,
}

/// The samples of a scenario, `rounds` repetitions of its pattern.
pub fn generate(s: Scenario, rounds: u64, seed: u64) -> Vec<MockSample> {
    let mut r = Rng(seed | 1);
    let mut v = Vec::new();
    let line = HEAP + 0x1000;
    let mut push = |store: bool, tid: u32, cpu: u32, ip: u64, addr: u64, phys_node: u64, dsrc: u64, lat: u64, r: &mut Rng| {
        let w = if store { 0 } else { lat + r.below(lat / 4 + 1) };
        v.push(MockSample { store, tid, cpu, ip, addr, phys: phys_node * NODE1 + (addr & 0x3fff_ffff), data_src: dsrc, weight: w });
    };
    for round in 0..rounds {
        match s {
            Scenario::Streaming => {
                // Three loads of lines of the buffer read once, in order
                // (1 GiB past 16 MiB: 16M distinct lines before it wraps).
                for i in 0..3u64 {
                    let a = STREAM + ((round * 3 + i) % (1 << 24)) * 64;
                    let node = (a >> 21) & 1;
                    let enc = if node == 1 { enc::remote_dram() } else { enc::local_dram() };
                    push(false, PID + 1 + (i & 1) as u32, 2 + i as u32, CODE + 0x700 + i * 0x10, a, node, enc, 200 + 100 * node, &mut r);
                }
                // One access to one of four shared lines: a store by one
                // thread or a HITM load by the other.
                let shared = line + 0x40 * ((round / 2) % 4);
                if round % 2 == 0 {
                    push(true, PID + 1, 1, CODE + 0x740, shared, 0, enc::store_l1_hit(), 0, &mut r);
                } else {
                    push(false, PID + 2, 9, CODE + 0x750, shared + 8, 0, enc::remote_hitm(), 300, &mut r);
                }
            }
            Scenario::FalseSharing => {
                // tid 1 on cpu 1 (node 0) owns word 0, tid 2 on cpu 9 (node 1) owns word 8.
                push(true, PID + 1, 1, CODE + 0x100, line, 0, enc::store_l1_hit(), 0, &mut r);
                push(true, PID + 2, 9, CODE + 0x200, line + 8, 0, enc::store_l1_hit(), 0, &mut r);
                push(false, PID + 1, 1, CODE + 0x110, line, 0, enc::remote_hitm(), 300, &mut r);
                push(false, PID + 2, 9, CODE + 0x210, line + 8, 0, enc::remote_hitm(), 310, &mut r);
                push(false, PID + 1, 1, CODE + 0x120, line + 0x40 * (1 + r.below(64)), 0, enc::l1_hit(), 5, &mut r);
            }
            Scenario::TrueSharing => {
                push(true, PID + 1, 1, CODE + 0x300, line + 16, 0, enc::locked(enc::store_l1_hit()), 0, &mut r);
                push(true, PID + 2, 9, CODE + 0x300, line + 16, 0, enc::locked(enc::store_l1_hit()), 0, &mut r);
                push(false, PID + 1, 1, CODE + 0x310, line + 16, 0, enc::remote_hitm(), 280, &mut r);
                push(false, PID + 2, 9, CODE + 0x310, line + 16, 0, enc::local_hitm(), 90, &mut r);
            }
            Scenario::RemoteDram => {
                // A buffer on node 1 streamed by threads on node 0.
                let a = HEAP + 0x10_0000 + r.below(1 << 20) / 64 * 64;
                push(false, PID + 1, 2, CODE + 0x400, a, 1, enc::remote_dram(), 320, &mut r);
                push(false, PID + 3, 3, CODE + 0x410, a + 64, 1, enc::remote_dram(), 330, &mut r);
                push(false, PID + 1, 2, CODE + 0x420, HEAP + 0x20_0000 + r.below(1 << 16) / 64 * 64, 0, enc::local_dram(), 180, &mut r);
            }
            Scenario::Clean => {
                let a = HEAP + 0x30_0000 + r.below(1 << 12) / 8 * 8;
                push(false, PID + 1, 4, CODE + 0x500, a, 0, enc::l1_hit(), 4, &mut r);
                push(false, PID + 1, 4, CODE + 0x510, a + 512, 0, enc::l2_hit(), 14, &mut r);
                push(true, PID + 1, 4, CODE + 0x520, a, 0, enc::store_l1_hit(), 0, &mut r);
            }
            Scenario::Mixed => {
                let a = HEAP + 0x40_0000 + r.below(1 << 14) / 8 * 8;
                push(false, PID + 1, 0, CODE + 0x600, 0, 0, enc::l1_hit(), 5, &mut r); // no address
                push(false, PID + 1, 0, CODE + 0x610, a, 0, enc::uncached(), 400, &mut r);
                push(false, PID + 1, 0, CODE + 0x620, a + 8, 0, enc::io(), 500, &mut r);
                push(false, PID + 2, 8, CODE + 0x630, a + 64, 1, enc::miss(), 250, &mut r);
                push(false, PID + 2, 8, CODE + 0x640, a + 128, 0, enc::lfb_hit(), 30, &mut r);
                push(false, PID + 2, 8, CODE + 0x650, a + 192, 0, enc::llc_hit(), 40, &mut r);
                push(true, PID + 1, 0, CODE + 0x660, a + 256, 0, enc::locked(enc::store_l1_hit()), 0, &mut r);
                push(true, PID + 1, 0, CODE + 0x670, a + 320, 0, enc::store_l1_miss(), 0, &mut r);
                push(true, PID + 2, 8, CODE + 0x680, a + 384, 0, enc::store_na(), 0, &mut r);
                push(true, PID + 2, 8, CODE + 0x690, 0, 0, enc::store_l1_hit(), 0, &mut r); // no address
                                                                                            // A shared file mapping written by both threads.
                push(true, PID + 1, 0, CODE + 0x6a0, SHM + 64, 0, enc::store_l1_hit(), 0, &mut r);
                push(false, PID + 2, 8, CODE + 0x6b0, SHM + 72, 0, enc::remote_hitm(), 290, &mut r);
                push(false, PID + 1, 0, CODE + 0x6c0, SHM + 64, 0, enc::local_hitm(), 95, &mut r);
            }
        }
    }
    v
}

fn mem_attr(config: u64) -> EventAttr {
    EventAttr {
        type_: 4,
        size: 128,
        config,
        config1: 30,
        period_or_freq: 2000,
        sample_type: sample::IDENTIFIER
            | sample::IP
            | sample::TID
            | sample::TIME
            | sample::ADDR
            | sample::CPU
            | sample::PERIOD
            | sample::WEIGHT
            | sample::DATA_SRC
            | sample::PHYS_ADDR,
        flags: flag::SAMPLE_ID_ALL | flag::MMAP2 | flag::COMM | flag::MMAP_DATA | flag::USE_CLOCKID | (2 << flag::PRECISE_SHIFT),
        clockid: libc::CLOCK_MONOTONIC,
        ..Default::default()
    }
}

/// The tag event's id in mock traces.
const TAG_ID: u64 = 9;

/// The mock's flows: thread PID+i serves flow i+1 (the fourth thread none).
fn mock_flow_of(tid: u32) -> Option<u64> {
    let i = tid.checked_sub(PID)?;
    (i < 3).then_some(0x1001 + i as u64)
}

fn mock_flows() -> Vec<crate::trace::meta::FlowInfo> {
    (0..3u16)
        .map(|i| crate::trace::meta::FlowInfo {
            id: 0x1001 + i as u64,
            proto: "tcp".into(),
            family: 4,
            local: "10.1.0.1".into(),
            local_port: 7001 + i,
            remote: "10.1.0.2".into(),
            remote_port: 40001 + i,
            direction: "server".into(),
            ifindex: 3,
            rx_bytes: 1 << 20,
            tx_bytes: 1 << 16,
            ..Default::default()
        })
        .collect()
}

/// A tag record as the kernel writes it for bpf_perf_event_output: the tag
/// event's IDENTIFIER, TID, TIME, CPU, then RAW (a u32 size, the
/// msen_flow_tag, padding to 8 bytes).
fn tag_record(tid: u32, time: u64, cpu: u32, flow: Option<u64>) -> Vec<u8> {
    let mut b = Vec::with_capacity(80);
    for v in [TAG_ID, PID as u64 | ((tid as u64) << 32), time, cpu as u64] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    let mut raw = Vec::with_capacity(36);
    raw.extend_from_slice(&0x4d53_4e46u32.to_le_bytes()); // magic
    raw.extend_from_slice(&u32::from(flow.is_some()).to_le_bytes()); // kind: socket, or none
    raw.extend_from_slice(&flow.unwrap_or(0).to_le_bytes());
    raw.extend_from_slice(&1000u64.to_le_bytes()); // age_ns
    raw.extend_from_slice(&[0u8; 8]); // flags, ifindex
    raw.extend_from_slice(&[0u8; 4]); // padding
    b.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    b.extend_from_slice(&raw);
    build_record(RecordType::SAMPLE, misc::USER, &b)
}

/// The metadata of a mock capture: the synthetic 2-socket host, the two
/// memory events and the flow-tag event.
pub fn metadata(scenario: Scenario, capture_id: String, command_line: Vec<String>) -> Metadata {
    Metadata {
        msen_version: env!("CARGO_PKG_VERSION").to_string(),
        capture_id,
        hostname: "mock-2s".into(),
        kernel_release: "synthetic".into(),
        arch: "x86_64".into(),
        cpu_vendor: "GenuineIntel".into(),
        cpu_model: "synthetic 2-socket Intel (msen --mock)".into(),
        cache_line_size: 64,
        page_size: 4096,
        nr_cpus: 16,
        online_cpus: (0..16).collect(),
        cpu_nodes: (0..16).map(|c| CpuNode { cpu: c, node: c / 8 }).collect(),
        memory_nodes: vec![MemoryRange { start: 0, end: NODE1, node: 0 }, MemoryRange { start: NODE1, end: 2 * NODE1, node: 1 }],
        events: vec![
            EventDesc { name: "cpu/mem-loads,ldlat=30/P".into(), attr: mem_attr(0x1cd), ids: vec![LOADS_ID] },
            EventDesc { name: "cpu/mem-stores/P".into(), attr: mem_attr(0x82d0), ids: vec![STORES_ID] },
            EventDesc { name: crate::flow::TAG_EVENT.into(), attr: crate::flow::tag_attr(), ids: vec![TAG_ID] },
        ],
        // A mock capture has flow context: each thread serves one flow
        // (the last thread none), as an RPC server's workers would.
        flows: crate::trace::meta::FlowCapture {
            enabled: true,
            tag_event: Some(crate::flow::TAG_EVENT.into()),
            hooks: vec!["synthetic (msen record --mock)".into()],
            ..Default::default()
        },
        command_line,
        clock: "monotonic".into(),
        synthetic: true,
        target: format!("mock scenario {scenario:?}"),
        ..Default::default()
    }
}

/// The mock process's COMM and MMAP2 records (its threads, binary, heap
/// and data mappings), at time 0.
pub fn sideband(meta: &Metadata) -> Vec<u8> {
    let st = meta.events[0].attr.sample_type;
    let tr = |tid: u32| sample_id_trailer(st, PID, tid, 0, LOADS_ID, 0);
    let mut sb = Vec::new();
    for t in [PID, PID + 1, PID + 2, PID + 3] {
        sb.extend(comm_record(PID, t, "mockapp", false, &tr(t)));
    }
    for line in [
        "00400000-00401000 r-xp 00000000 08:01 4242 /opt/msen-mock/mockapp",
        "7f0000000000-7f0001000000 rw-p 00000000 00:00 0 [heap]",
        "7f1000000000-7f1040000000 rw-p 00000000 00:00 0 [anon:stream]",
        "7f1000000000-7f1000100000 rw-s 00000000 00:05 77 /dev/shm/mock-ring",
    ] {
        if let Some(m) = parse_maps_line(line) {
            sb.extend(mmap2_record(PID, PID, &m, &tr(PID)));
        }
    }
    sb
}

/// One sample at `t` as the kernel writes it: its flow tag (every sample
/// has one, kind "none" for the thread without a flow), then the sample.
pub fn records(s: &MockSample, t: u64, out: &mut Vec<u8>) {
    out.extend(tag_record(s.tid, t, s.cpu, mock_flow_of(s.tid)));
    let mut b = Vec::with_capacity(80);
    for v in [
        if s.store { STORES_ID } else { LOADS_ID },
        s.ip,
        PID as u64 | ((s.tid as u64) << 32),
        t,
        s.addr,
        s.cpu as u64,
        2000,
        s.weight,
        s.data_src,
        s.phys,
    ] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    out.extend(build_record(RecordType::SAMPLE, misc::USER, &b));
}

/// The mock's flow for a thread, as its FlowInfo (None: the thread without one).
pub fn flow_of(s: &MockSample) -> Option<crate::trace::meta::FlowInfo> {
    let id = mock_flow_of(s.tid)?;
    mock_flows().into_iter().find(|f| f.id == id)
}

/// The mock's flow table with these counters.
pub fn flow_table(
    counters: std::collections::BTreeMap<String, u64>,
    per_cpu: std::collections::BTreeMap<String, Vec<u64>>,
) -> crate::trace::meta::FlowTable {
    crate::trace::meta::FlowTable { flows: mock_flows(), counters, per_cpu }
}

/// The mock host's CPUs.
pub const CPUS: u32 = 16;

/// Write a synthetic trace of `scenario` to `path`; returns the sample count.
pub fn write_mock(path: &Path, scenario: Scenario, rounds: u64, seed: u64, command_line: Vec<String>) -> io::Result<u64> {
    let samples = generate(scenario, rounds, seed);
    // Generated traces are reproducible: the id follows the inputs.
    let meta =
        metadata(scenario, crate::trace::meta::content_capture_id(format!("mock {scenario:?} {rounds} {seed}").as_bytes()), command_line);
    let mut w = TraceWriter::create(path, 3)?;
    let g = |kind, n| BlockInfo { kind, stream: STREAM_GLOBAL, record_count: n, first_time: 0, last_time: 0 };
    w.write_block(g(BlockKind::METADATA, 1), &serde_json::to_vec(&meta).map_err(io::Error::other)?)?;
    let sb = sideband(&meta);
    w.write_block(g(BlockKind::SIDEBAND, 7), &sb)?;
    let mut buf = Vec::new();
    let mut count = 0u32;
    let (mut first, mut t) = (1_000_000u64, 1_000_000u64);
    for s in &samples {
        t += 500;
        records(s, t, &mut buf);
        count += 1;
        if buf.len() >= crate::record::chunker::BLOCK_TARGET {
            w.write_block(BlockInfo { kind: BlockKind::SAMPLES, stream: 0, record_count: count, first_time: first, last_time: t }, &buf)?;
            buf.clear();
            count = 0;
            first = t + 500;
        }
    }
    if count > 0 {
        w.write_block(BlockInfo { kind: BlockKind::SAMPLES, stream: 0, record_count: count, first_time: first, last_time: t }, &buf)?;
    }
    let table = crate::trace::meta::FlowTable {
        flows: mock_flows(),
        counters: [("tags".to_string(), samples.iter().filter(|s| mock_flow_of(s.tid).is_some()).count() as u64)].into(),
        ..Default::default()
    };
    w.write_block(g(BlockKind::FLOWS, table.flows.len() as u32), &serde_json::to_vec(&table).map_err(io::Error::other)?)?;
    let end = CaptureEnd { samples: samples.len() as u64, stop_reason: "mock".into(), ..Default::default() };
    w.write_block(g(BlockKind::CAPTURE_END, 1), &serde_json::to_vec(&end).map_err(io::Error::other)?)?;
    w.finish()?;
    Ok(samples.len() as u64)
}
