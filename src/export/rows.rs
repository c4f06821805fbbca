//! A capture as the rows of the export tables (src/export/table.rs), built
//! a batch of trace blocks at a time so memory stays bounded by the batch,
//! not the capture. Blocks decode in parallel; each distinct address is
//! resolved once per export (a cache shared by every batch); rows come out
//! in block order, so the bytes of a batch are the same at any thread count
//! and on every run (what exactly-once resume relies on).

use super::table::{self, RowBinary, Sink};
use crate::analyze::datasrc::{lvl, op, snoop, DataSrc};
use crate::analyze::loaded::Loaded;
use crate::analyze::report::{frames, unresolved_frame_name};
use crate::perf::attr::sample;
use crate::perf::record::misc;
use crate::trace::reader::BlockRef;
use crate::trace::TraceError;
use rayon::prelude::*;
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeMap;

/// What every row of a capture repeats.
#[derive(Debug, Clone)]
pub struct CaptureKey {
    pub capture_id: String,
    pub host: String,
    pub date: u16,
}

impl CaptureKey {
    fn put<S: Sink>(&self, w: &mut S) {
        w.name(0, &self.capture_id).name(0, &self.host).date(self.date);
    }
}

/// A resolved address: the names report's Symbol and Shared Object show.
#[derive(Debug, Clone)]
struct FrameName {
    symbol: String,
    dso: String,
    build_id: String,
}

type AddrKey = (u32, u16, bool, u64);

/// One decoded sample, before names.
struct Raw<'a> {
    time: u64,
    cpu: u32,
    pid: u32,
    tid: u32,
    comm: u32,
    event: u16,
    period: u64,
    ip: u64,
    kernel: bool,
    epoch: u16,
    chain: Option<Box<[u64]>>,
    flow: u64,
    addr: u64,
    data_src: u64,
    weight: u64,
    phys: u64,
    /// The data object (name, type) and the mapping or file it is in.
    data_object: Option<(&'a str, &'a str)>,
    line: Option<(&'a str, u32, u64, u32)>,
    c2c: [u8; 5],
    numa: Option<bool>,
    cpu_node: Option<u32>,
    mem_node: Option<u32>,
}

/// The rows of one trace block: its samples into a sink of the caller's
/// (RowBinary for ClickHouse, columns for frames), its rollups as RowBinary.
#[derive(Debug)]
pub struct BlockRows<S = RowBinary> {
    pub block: u32,
    pub samples: S,
    pub rollup: RowBinary,
}

/// The rows of a batch of blocks: per block samples and rollups, the
/// stacks first referenced in this batch, and what the batch adds to the
/// capture's accumulators (merged by `commit`, once it is on the server).
#[derive(Debug)]
pub struct Batch<S = RowBinary> {
    pub blocks: Vec<BlockRows<S>>,
    pub stacks: Vec<(u64, Vec<u8>)>,
    flow_samples: BTreeMap<u64, u64>,
    objects: BTreeMap<(u32, String, String), ObjectAcc>,
}

/// One block's rows, the stacks it referenced first, samples per flow, data objects.
type Encoded<S> = (BlockRows<S>, Vec<(u64, Vec<u8>)>, BTreeMap<u64, u64>, BTreeMap<(u32, String, String), ObjectAcc>);

/// What of a sample the wanted columns need. Skipping the rest is what
/// makes a query over a few columns fast (`msen sql`); exporters want all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// symbol, dso (names resolved per distinct address) and rollup rows.
    pub names: bool,
    /// stack_id and stack rows (call chains unwound).
    pub chain: bool,
    /// The memory columns: data_symbol, line_*, c2c_*, numa_access, mem_node.
    pub memory: bool,
    /// data_src in words: mem_op, mem_level, mem_snoop, mem_tlb, mem_locked.
    pub dsrc: bool,
    /// cpu_node (the memory columns find it themselves).
    pub cpu_node: bool,
    pub comm: bool,
    /// Rollup rows and the flow and data-object sums (the other tables).
    pub side: bool,
}

impl Needs {
    pub const ALL: Needs = Needs { names: true, chain: true, memory: true, dsrc: true, cpu_node: true, comm: true, side: true };

    /// What sample columns accepted by `wanted` need, for the samples table
    /// alone (no rollup rows, flow or data-object sums).
    pub fn of_sample_columns(wanted: &dyn Fn(&str) -> bool) -> Needs {
        let any = |cols: &[&str]| cols.iter().any(|c| wanted(c));
        Needs {
            names: any(&["symbol", "dso"]),
            chain: any(&["stack_id"]),
            memory: any(&[
                "data_symbol",
                "line_object",
                "line_pid",
                "line_addr",
                "line_offset",
                "c2c_lcl_hitm",
                "c2c_rmt_hitm",
                "c2c_tot_hitm",
                "c2c_records",
                "c2c_stores",
                "numa_access",
                "mem_node",
            ]),
            dsrc: any(&["mem_op", "mem_level", "mem_snoop", "mem_tlb", "mem_locked"]),
            cpu_node: any(&["cpu_node"]),
            comm: any(&["comm"]),
            side: false,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct ObjectAcc {
    start: u64,
    end: u64,
    samples: u64,
    loads: u64,
    stores: u64,
}

/// What a capture's export accumulates over all its blocks: the stacks
/// sent, samples per flow, data objects. It outlives one `Loaded`, so a
/// capture followed while it is written (`record --clickhouse`) keeps it
/// from one reading of the growing trace to the next.
#[derive(Debug, Default)]
pub struct CaptureAcc {
    stacks_seen: HashMap<u64, ()>,
    flow_samples: BTreeMap<u64, u64>,
    objects: BTreeMap<(u32, String, String), ObjectAcc>,
    pub samples: u64,
}

/// Builds a capture's rows batch by batch, remembering names across
/// batches (names belong to one `Loaded`: its timeline and resolver).
pub struct RowBuilder<'a> {
    l: &'a Loaded,
    pub key: CaptureKey,
    start_unix_ns: u64,
    start_clock_ns: u64,
    line_size: u64,
    mem_events: Vec<bool>,
    cpu_node: HashMap<u32, u32>,
    names: HashMap<AddrKey, u32>,
    frames: Vec<FrameName>,
    acc: CaptureAcc,
    needs: Needs,
    /// Emptied per-block sample vectors, reused by the next batch's blocks
    /// (each is a few MB: fresh ones cost page faults on every batch).
    raw_free: std::sync::Mutex<Vec<Vec<Raw<'a>>>>,
}

impl std::fmt::Debug for RowBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowBuilder").field("key", &self.key).field("samples", &self.acc.samples).finish_non_exhaustive()
    }
}

/// Data-object sums of one block, keyed by (pid, and the pointer and length
/// of the object and type names) as the resolver holds them.
type ObjectsAt<'s> = HashMap<(u32, usize, usize, usize, usize), (&'s str, &'s str, ObjectAcc)>;

impl<'a> RowBuilder<'a> {
    pub fn new(l: &'a Loaded, capture_id: String) -> RowBuilder<'a> {
        Self::resume(l, capture_id, CaptureAcc::default())
    }

    /// Go on with a capture whose earlier blocks `acc` has seen.
    pub fn resume(l: &'a Loaded, capture_id: String, acc: CaptureAcc) -> RowBuilder<'a> {
        let m = &l.trace.meta;
        let start_unix_ns = m.start_unix_ns;
        RowBuilder {
            l,
            key: CaptureKey { capture_id, host: m.hostname.clone(), date: table::days(start_unix_ns) },
            start_unix_ns,
            start_clock_ns: m.start_clock_ns,
            line_size: m.cache_line_size.max(1) as u64,
            mem_events: l.events.list.iter().map(|e| e.attr.sample_type & sample::DATA_SRC != 0).collect(),
            cpu_node: m.cpu_nodes.iter().map(|c| (c.cpu, c.node)).collect(),
            names: HashMap::default(),
            frames: Vec::new(),
            acc,
            needs: Needs::ALL,
            raw_free: Default::default(),
        }
    }

    /// Build only what `needs` says (the other sample columns hold zeros
    /// and empty strings, and without names no rollup rows are built).
    pub fn needing(mut self, needs: Needs) -> Self {
        self.needs = needs;
        self
    }

    /// The accumulators, to resume with on a later reading of the trace.
    pub fn into_acc(self) -> CaptureAcc {
        self.acc
    }

    /// Wall-clock Unix ns of a trace-clock time (the trace's own clock when
    /// it recorded no start, as imported perf.data without a clock map).
    pub fn unix_ns(&self, t: u64) -> u64 {
        crate::trace::meta::wall_clock_ns(self.start_unix_ns, self.start_clock_ns, t)
    }

    /// Batches of consecutive blocks from sample block `from` on, each
    /// holding at most `max_rows` samples (a block's record count bounds
    /// its samples) or one block.
    pub fn plan(&self, max_rows: u64, from: u32) -> Vec<Vec<(u32, BlockRef)>> {
        let mut out: Vec<Vec<(u32, BlockRef)>> = Vec::new();
        let mut rows = 0u64;
        for (i, b) in self.l.sample_blocks().into_iter().enumerate().skip(from as usize) {
            let n = b.header.record_count as u64;
            match out.last_mut() {
                Some(cur) if rows + n <= max_rows => {
                    cur.push((i as u32, b));
                    rows += n;
                }
                _ => {
                    out.push(vec![(i as u32, b)]);
                    rows = n;
                }
            }
        }
        out
    }

    fn decode(&self, b: &BlockRef) -> Result<Vec<Raw<'a>>, TraceError> {
        let l = self.l;
        let mut out = self.raw_free.lock().ok().and_then(|mut f| f.pop()).unwrap_or_default();
        out.reserve(b.header.record_count as usize);
        let mut st = Default::default();
        let mut unwinder = l.unwinder();
        let mut buf = Vec::new();
        l.for_each_sample_flow(b, &mut st, |ev, cpumode, s, flow| {
            let pid = s.pid.unwrap_or(u32::MAX);
            let tid = s.tid.unwrap_or(u32::MAX);
            let time = s.time.unwrap_or(0);
            // The mapping epoch names addresses; nothing else needs it.
            let epoch = if self.needs.names || self.needs.chain || self.needs.memory { l.timeline.epoch_at(pid, time) } else { 0 };
            let kernel = matches!(cpumode, misc::KERNEL | misc::GUEST_KERNEL | misc::HYPERVISOR);
            let chain = (self.needs.chain && l.chain_into(ev, s, &mut unwinder, &mut buf)).then(|| buf.clone().into_boxed_slice());
            let mem = self.mem_events.get(ev as usize).copied().unwrap_or(false);
            let d = DataSrc(s.data_src.unwrap_or(0));
            let addr = s.addr.unwrap_or(0);
            let memory = mem && self.needs.memory;
            let cpu_node = if memory || self.needs.cpu_node { s.cpu.and_then(|c| self.cpu_node.get(&c).copied()) } else { None };
            let mem_node = s.phys_addr.filter(|&a| a != 0 && self.needs.memory).and_then(|pa| crate::analyze::numa::mem_node_of(l, pa));
            let mut c2c = [0u8; 5];
            let mut line = None;
            let mut data_object = None;
            if memory {
                if let Some((one, hit)) = crate::analyze::false_share::classify_sample(l, &self.mem_events, self.line_size, ev, cpumode, s)
                {
                    let sat = |v: u64| v.min(255) as u8;
                    c2c = [sat(one.lcl_hitm), sat(one.rmt_hitm), sat(one.tot_hitm), sat(one.tot_recs()), sat(one.stores())];
                    if let Some((_, k, rel)) = hit {
                        let object = k.dso.and_then(|x| l.timeline.dsos.get(x as usize)).map_or("[X]", |x| x.path.as_str());
                        line = Some((object, k.pid.unwrap_or(u32::MAX), k.line, (rel % self.line_size) as u32));
                    }
                }
                if addr != 0 {
                    let hit = l.timeline.find_map(pid, epoch, addr);
                    let below = l.timeline.file_map_below(pid, epoch, addr);
                    data_object =
                        l.resolver.data_symbol_with_bss(hit.map(|h| (h, h.map_start, 0)), below, addr).map(|ds| (ds.object, ds.type_name));
                }
            }
            out.push(Raw {
                time,
                cpu: s.cpu.unwrap_or(u32::MAX),
                pid,
                tid,
                comm: if self.needs.comm { l.timeline.comm_at(pid, tid, time).unwrap_or(u32::MAX) } else { u32::MAX },
                event: ev,
                period: s.period.unwrap_or(l.events.list[ev as usize].default_period),
                ip: s.ip.unwrap_or(0),
                kernel,
                epoch,
                chain,
                flow: flow.map_or(0, |f| f.id),
                addr,
                data_src: s.data_src.unwrap_or(0),
                weight: s.weight.unwrap_or(0),
                phys: s.phys_addr.unwrap_or(0),
                data_object,
                line,
                c2c,
                numa: if memory { crate::analyze::numa::memory_access(d, cpu_node, mem_node) } else { None },
                cpu_node,
                mem_node,
            });
        })?;
        Ok(out)
    }

    fn name_of(&self, k: AddrKey) -> FrameName {
        let l = self.l;
        let (pid, epoch, kernel, ip) = k;
        let r = if kernel { l.resolver.kernel(ip) } else { l.resolver.user(l.timeline.find_map(pid, epoch, ip), ip) };
        let path = if kernel {
            "[kernel.kallsyms]".to_string()
        } else {
            l.timeline.map_entry(pid, epoch, ip).and_then(|m| l.timeline.dsos.get(m.dso as usize)).map_or(r.dso.clone(), |d| d.path.clone())
        };
        let build_id = if kernel {
            l.trace.end.as_ref().and_then(|e| e.build_ids.iter().find(|b| b.path == "[kernel.kallsyms]")).map(|b| b.build_id.clone())
        } else {
            l.resolver.recorded_build_id(&path).map(str::to_string)
        };
        FrameName {
            symbol: r.sym.clone().unwrap_or_else(|_| unresolved_frame_name(r.rel)),
            dso: r.dso,
            build_id: build_id.unwrap_or_default(),
        }
    }

    /// Decode and encode one batch, its samples as RowBinary.
    pub fn batch(&mut self, blocks: &[(u32, BlockRef)]) -> Result<Batch, TraceError> {
        self.batch_into(blocks, &|_| RowBinary::new(&table::SAMPLES))
    }

    /// Decode and encode one batch, each block's samples into a sink `make`
    /// gives for that many rows.
    pub fn batch_into<S: Sink + Send>(
        &mut self,
        blocks: &[(u32, BlockRef)],
        make: &(dyn Fn(usize) -> S + Sync),
    ) -> Result<Batch<S>, TraceError> {
        let raws: Vec<Vec<Raw<'a>>> = blocks.par_iter().map(|(_, b)| self.decode(b)).collect::<Result<_, _>>()?;
        // Names for the addresses this batch adds, found per block and
        // resolved in parallel.
        let known = &self.names;
        let per_block: Vec<Vec<AddrKey>> = raws
            .par_iter()
            .filter(|_| self.needs.names)
            .map(|rs| {
                let mut seen: rustc_hash::FxHashSet<AddrKey> = Default::default();
                for r in rs {
                    let own = (r.pid, r.epoch, r.kernel, r.ip);
                    if !known.contains_key(&own) {
                        seen.insert(own);
                    }
                    if let Some(c) = &r.chain {
                        for (kernel, ip) in frames(c, r.kernel) {
                            let k = (r.pid, r.epoch, kernel, ip);
                            if !known.contains_key(&k) {
                                seen.insert(k);
                            }
                        }
                    }
                }
                seen.into_iter().collect()
            })
            .collect();
        let mut new: Vec<AddrKey> = per_block.into_iter().flatten().collect();
        new.par_sort_unstable();
        new.dedup();
        let named: Vec<FrameName> = new.par_iter().map(|&k| self.name_of(k)).collect();
        for (k, n) in new.into_iter().zip(named) {
            self.names.insert(k, self.frames.len() as u32);
            self.frames.push(n);
        }

        let this = &*self;
        let encoded: Vec<Encoded<S>> = blocks
            .par_iter()
            .zip(raws)
            .map(|((bi, _), rs)| {
                let n = rs.len();
                this.encode_block(*bi, rs, make(n))
            })
            .collect();
        let mut out = Batch {
            blocks: Vec::with_capacity(encoded.len()),
            stacks: Vec::new(),
            flow_samples: BTreeMap::new(),
            objects: BTreeMap::new(),
        };
        let mut first: HashMap<u64, ()> = HashMap::default();
        for (rows, st, flows, objects) in encoded {
            for (id, bytes) in st {
                if !self.acc.stacks_seen.contains_key(&id) && first.insert(id, ()).is_none() {
                    out.stacks.push((id, bytes));
                }
            }
            for (f, n) in flows {
                *out.flow_samples.entry(f).or_default() += n;
            }
            merge_objects(&mut out.objects, objects);
            out.blocks.push(rows);
        }
        Ok(out)
    }

    /// Account a batch that is now on the server: its stacks are not sent
    /// again, its flows and objects count. A batch that failed is not
    /// committed, so building it again gives the same rows.
    pub fn commit<S: Sink>(&mut self, batch: &mut Batch<S>) {
        for b in &batch.blocks {
            self.acc.samples += b.samples.rows();
        }
        for (id, _) in &batch.stacks {
            self.acc.stacks_seen.insert(*id, ());
        }
        for (f, n) in std::mem::take(&mut batch.flow_samples) {
            *self.acc.flow_samples.entry(f).or_default() += n;
        }
        merge_objects(&mut self.acc.objects, std::mem::take(&mut batch.objects));
    }

    fn encode_block<S: Sink>(&self, block: u32, mut rs: Vec<Raw<'a>>, mut w: S) -> Encoded<S> {
        let l = self.l;
        let unnamed = FrameName { symbol: String::new(), dso: String::new(), build_id: String::new() };
        let mut dsrc_ids: HashMap<u64, u32> = HashMap::default();
        let mut dsrc_texts: Vec<[String; 4]> = Vec::new();
        let mut stacks: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut seen: HashMap<u64, ()> = HashMap::default();
        // Per-sample sums by hashing cheap keys; ordered (and merged by
        // name) once per distinct key at the end.
        let mut flows: HashMap<u64, u64> = HashMap::default();
        // Keyed by where the names live (the resolver's strings, borrowed
        // for the whole export), not by their text: hashing and comparing
        // the text per sample was a tenth of the export. Merged by text below.
        let mut objects: ObjectsAt<'_> = HashMap::default();
        // (window, flow, own frame, event) -> samples, period, l1, llc, local, remote, hitm.
        let mut by_frame: HashMap<(u64, u64, u32, u16), [u64; 7]> = HashMap::default();
        let none = u32::MAX;
        let mut ids: Vec<u32> = Vec::new();
        for r in &rs {
            let own = self.names.get(&(r.pid, r.epoch, r.kernel, r.ip)).copied();
            let f = own.map_or(&unnamed, |o| &self.frames[o as usize]);
            let stack_id = match &r.chain {
                Some(c) => {
                    ids.clear();
                    ids.extend(frames(c, r.kernel).map(|(kernel, ip)| self.names[&(r.pid, r.epoch, kernel, ip)]));
                    if ids.is_empty() {
                        0
                    } else {
                        let id = self.stack_id(c, r.kernel, &ids);
                        if seen.insert(id, ()).is_none() && !self.acc.stacks_seen.contains_key(&id) {
                            stacks.push((id, self.stack_row(id, c, r.kernel, &ids)));
                        }
                        id
                    }
                }
                None => 0,
            };
            let d = DataSrc(r.data_src);
            let has_dsrc = self.mem_events.get(r.event as usize).copied().unwrap_or(false);
            let comm_owned;
            let comm = if r.comm == none && !self.needs.comm {
                "" // not asked for: no string per sample
            } else if r.comm == none {
                comm_owned = format!(":{}", r.tid as i32);
                comm_owned.as_str()
            } else {
                l.timeline.comm_name(r.comm)
            };
            let time = self.unix_ns(r.time);
            self.key.put(&mut w);
            w.u32(block).time(time).u32(r.cpu).u32(r.pid).u32(r.tid);
            if r.comm == none {
                w.str(comm);
            } else {
                w.name(r.comm, comm);
            }
            w.name(u32::from(r.event), &l.events.list[r.event as usize].name).u64(r.period).u64(r.ip).u8(r.kernel as u8);
            match own {
                Some(o) => w.name(o, &f.symbol).name(o, &f.dso),
                None => w.str("").str(""),
            };
            w.u64(stack_id).u64(r.flow);
            w.u64(r.addr).u64(r.data_src);
            if has_dsrc && self.needs.dsrc {
                // The texts are a function of data_src: made once per distinct value in a block.
                let id = *dsrc_ids.entry(r.data_src).or_insert_with(|| {
                    dsrc_texts.push([d.op_text().to_string(), d.lvl_text(), d.snoop_text(), d.tlb_text()]);
                    dsrc_texts.len() as u32
                });
                let t = &dsrc_texts[id as usize - 1];
                w.name(id, &t[0]).name(id, &t[1]).name(id, &t[2]).name(id, &t[3]).u8((d.lock_text() == "Yes") as u8);
            } else {
                w.name(0, "").name(0, "").name(0, "").name(0, "").u8(0);
            }
            w.u64(r.weight).u64(r.phys).str(r.data_object.map_or("", |o| o.0));
            match &r.line {
                Some((object, pid, line, off)) => w.str(object).u32(*pid).u64(*line).u32(*off),
                None => w.str("").u32(none).u64(0).u32(0),
            };
            for v in r.c2c {
                w.u8(v);
            }
            match r.numa {
                Some(true) => w.name(1, "remote"),
                Some(false) => w.name(2, "local"),
                None => w.name(0, ""),
            };
            w.u32(r.cpu_node.unwrap_or(none)).u32(r.mem_node.unwrap_or(none)).name(0, "");
            w.end_row();

            if !self.needs.side {
                continue;
            }
            *flows.entry(r.flow).or_default() += 1;
            if let Some((name, type_name)) = &r.data_object {
                let at = (r.pid, name.as_ptr() as usize, name.len(), type_name.as_ptr() as usize, type_name.len());
                let (_, _, e) = objects.entry(at).or_insert((name, type_name, ObjectAcc { start: u64::MAX, ..Default::default() }));
                e.start = e.start.min(r.addr);
                e.end = e.end.max(r.addr.saturating_add(1));
                e.samples += 1;
                e.loads += (d.mem_op() & op::LOAD != 0) as u64;
                e.stores += (d.mem_op() & op::STORE != 0) as u64;
            }
            let Some(o) = own else {
                continue; // no names asked for: no rollup rows either
            };
            let window = time / 1_000_000_000 * 1_000_000_000;
            let e = by_frame.entry((window, r.flow, o, r.event)).or_default();
            e[0] += 1;
            e[1] = e[1].saturating_add(r.period);
            if has_dsrc && d.mem_op() & op::LOAD != 0 {
                let lv = d.mem_lvl();
                if lv & lvl::HIT != 0 && lv & (lvl::L1 | lvl::LFB) != 0 {
                    e[2] += 1;
                }
                if lv & lvl::HIT != 0 && lv & (lvl::L2 | lvl::L3) != 0 {
                    e[3] += 1;
                }
                match r.numa {
                    Some(false) => e[4] += 1,
                    Some(true) => e[5] += 1,
                    None => {}
                }
                if d.mem_snoop() & snoop::HITM != 0 {
                    e[6] += 1;
                }
            }
        }
        // (window, flow, symbol, dso, event): one row per function, however
        // many of its addresses were sampled.
        let mut rollup: BTreeMap<(u64, u64, &str, &str, u16), [u64; 7]> = BTreeMap::new();
        for ((window, flow, o, event), v) in by_frame {
            let f = &self.frames[o as usize];
            let e = rollup.entry((window, flow, f.symbol.as_str(), f.dso.as_str(), event)).or_default();
            for (a, b) in e.iter_mut().zip(v) {
                *a = a.saturating_add(b);
            }
        }
        let flows: BTreeMap<u64, u64> = flows.into_iter().collect();
        let mut by_name: BTreeMap<(u32, String, String), ObjectAcc> = BTreeMap::new();
        merge_objects(&mut by_name, objects.into_iter().map(|((pid, ..), (n, t, a))| ((pid, n.to_string(), t.to_string()), a)));
        let objects = by_name;
        rs.clear();
        if let Ok(mut f) = self.raw_free.lock() {
            if f.len() < 256 {
                f.push(rs);
            }
        }
        let mut ru = RowBinary::new(&table::ROLLUP);
        for ((window, flow, symbol, dso, event), v) in rollup {
            self.key.put(&mut ru);
            ru.u32(block).time(window).u64(flow).str(symbol).str(dso).str(&l.events.list[event as usize].name);
            for x in v {
                ru.u64(x);
            }
            ru.end_row();
        }
        (BlockRows { block, samples: w, rollup: ru }, stacks, flows, objects)
    }

    /// A stack's id: XXH3 over its frames' kinds, addresses and names, so
    /// the same resolved chain has the same id in every run.
    fn stack_id(&self, chain: &[u64], kernel: bool, ids: &[u32]) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for ((k, ip), id) in frames(chain, kernel).zip(ids) {
            let f = &self.frames[*id as usize];
            h.update(&[k as u8]);
            h.update(&ip.to_le_bytes());
            h.update(f.symbol.as_bytes());
            h.update(&[0]);
            h.update(f.dso.as_bytes());
            h.update(&[0]);
        }
        // 0 means "no stack" in ms_raw_samples.
        h.digest().max(1)
    }

    fn stack_row(&self, id: u64, chain: &[u64], kernel: bool, ids: &[u32]) -> Vec<u8> {
        let mut w = RowBinary::new(&table::STACKS);
        let ips: Vec<u64> = frames(chain, kernel).map(|(_, ip)| ip).collect();
        let fr: Vec<&FrameName> = ids.iter().map(|i| &self.frames[*i as usize]).collect();
        self.key.put(&mut w);
        w.u64(id).u16(ids.len().min(u16::MAX as usize) as u16).u64s(&ips);
        w.strs(fr.iter().map(|f| f.symbol.as_str())).strs(fr.iter().map(|f| f.dso.as_str())).strs(fr.iter().map(|f| f.build_id.as_str()));
        w.end_row();
        w.buf
    }

    /// ms_flows rows: every flow of the capture's flow table, with the
    /// samples this export tagged with it.
    pub fn flows(&self) -> RowBinary {
        let mut w = RowBinary::new(&table::FLOWS);
        let mut list: Vec<&crate::trace::meta::FlowInfo> = self.l.flows.by_id.values().collect();
        list.sort_by_key(|f| f.id);
        for f in list {
            self.key.put(&mut w);
            w.u64(f.id).str(&f.proto).u8(f.family).str(&f.local).u16(f.local_port).str(&f.remote).u16(f.remote_port);
            w.str(&f.direction).u32(f.netns).u32(f.ifindex).str(&f.text()).time(self.unix_ns(f.first_ns)).time(self.unix_ns(f.last_ns));
            w.u64(f.rx_bytes).u64(f.tx_bytes).u64(f.retransmits).u32(f.srtt_us).u64(self.acc.flow_samples.get(&f.id).copied().unwrap_or(0));
            w.end_row();
        }
        w
    }

    /// ms_data_objects rows: the data objects memory samples touched.
    pub fn objects(&self) -> RowBinary {
        let mut w = RowBinary::new(&table::OBJECTS);
        for ((pid, object, type_name), a) in &self.acc.objects {
            self.key.put(&mut w);
            w.u32(*pid).str(object).str(type_name);
            w.u64(a.start).u64(a.end).u64(a.samples).u64(a.loads).u64(a.stores);
            w.end_row();
        }
        w
    }

    /// The ms_captures row, written after everything else.
    pub fn capture(&self, counts: &CaptureCounts, trace_path: &str) -> RowBinary {
        let l = self.l;
        let m = &l.trace.meta;
        let mut w = RowBinary::new(&table::CAPTURES);
        let span = l.sample_time_span().unwrap_or((0, 0));
        let nodes = m.cpu_nodes.iter().map(|c| c.node).collect::<std::collections::BTreeSet<_>>().len().max(1);
        self.key.put(&mut w);
        w.time(if m.start_unix_ns > 0 { m.start_unix_ns } else { self.unix_ns(span.0) }).u64(span.1.saturating_sub(span.0));
        w.str(&m.kernel_release).str(&m.arch).str(&m.cpu_vendor).str(&m.cpu_model).u32(m.nr_cpus).u32(nodes as u32);
        w.u32(m.cache_line_size).strs(l.events.list.iter().map(|e| e.name.as_str())).u8(m.software_only as u8);
        w.str(m.source_format.as_deref().unwrap_or("msen")).str(env!("CARGO_PKG_VERSION"));
        w.u64(counts.samples).u64(counts.stacks).u64(counts.rollups).u64(counts.flows).u64(counts.objects);
        w.u64(l.lost_events.iter().map(|(_, n)| *n).sum()).u64(0).str(&m.command_line.join(" ")).str(trace_path);
        w.end_row();
        w
    }
}

fn merge_objects(
    into: &mut BTreeMap<(u32, String, String), ObjectAcc>,
    from: impl IntoIterator<Item = ((u32, String, String), ObjectAcc)>,
) {
    for (k, v) in from {
        let e = into.entry(k).or_insert(ObjectAcc { start: u64::MAX, ..Default::default() });
        e.start = e.start.min(v.start);
        e.end = e.end.max(v.end);
        e.samples += v.samples;
        e.loads += v.loads;
        e.stores += v.stores;
    }
}

/// Rows of a capture per table, as the ms_captures row records them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureCounts {
    pub samples: u64,
    pub stacks: u64,
    pub rollups: u64,
    pub flows: u64,
    pub objects: u64,
}
