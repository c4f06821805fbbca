//! Turns the byte runs drained from ring buffers into trace blocks: samples of
//! each ring go to that ring's SAMPLES stream, every other record to one
//! SIDEBAND stream, each block cut at a size bound or by `flush_all` at the
//! recorder's flush interval. Counts samples and lost records on the way and
//! remembers which files were mapped (for build-ids at the end).

use crate::perf::attr::Endian;
use crate::perf::record::{frames_of, misc};
use crate::perf::record::{parse_sideband, ParseInfo, RecordIter, RecordType, Sideband};
use crate::trace::format::STREAM_GLOBAL;
use crate::trace::meta::EventDesc;
use crate::trace::{BlockBuffer, BlockKind, TraceWriter};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;

/// Raw bytes at which a stream's block is cut. Large enough for zstd to find
/// the repetition between samples, small enough to decode in parallel.
pub const BLOCK_TARGET: usize = 2 << 20;

#[derive(Debug)]
pub struct Chunker {
    samples_by_ring: Vec<(u32, BlockBuffer)>,
    sideband: BlockBuffer,
    sample_time_off: Option<usize>,
    sideband_info: ParseInfo,
    /// Parse layouts by sample id, to find kernel addresses in samples.
    by_id: HashMap<u64, ParseInfo>,
    pub samples: u64,
    pub lost: u64,
    /// Mapped files and the first pid seen mapping each (whose mount
    /// namespace the path belongs to).
    files: std::collections::BTreeMap<String, u32>,
    /// Build-ids read while capturing.
    build_ids: std::collections::BTreeMap<String, String>,
    /// Kernel addresses seen (ips and kernel call-chain frames), so that the
    /// trace keeps only the kallsyms entries it needs.
    kernel_ips: HashSet<u64>,
    /// Processes that were sampled (for their JIT maps).
    pids: BTreeSet<u32>,
    /// Ids of the flow-tag event: its records are not samples, and each
    /// stays in the block of the sample it precedes.
    tag_ids: HashSet<u64>,
    /// Per ring: a tag whose sample has not been read yet.
    pending_tag: Vec<Option<Vec<u8>>>,
    pub tags: u64,
    /// PERF_RECORD_THROTTLE records: the kernel lowered the rate (too many
    /// interrupts).
    pub throttled: u64,
    /// Samples per flow id since the agent last took them (live rollups
    /// for the metrics; not stored), counted when `count_flows` is set.
    pub flow_samples: HashMap<u64, u64>,
    pub count_flows: bool,
    /// The live rollups' counts (set with the agent's endpoints).
    pub live: Option<super::rollup::Feed>,
}

/// Bound on distinct kernel addresses remembered (about 16 MiB).
const MAX_KERNEL_IPS: usize = 1 << 20;

impl Chunker {
    pub fn new(events: &[EventDesc], rings: usize) -> Chunker {
        let attr = events.first().map(|e| e.attr.clone()).unwrap_or_default();
        let info = ParseInfo::new(&attr, Endian::Little);
        Chunker {
            samples_by_ring: (0..rings).map(|_| (0, BlockBuffer::default())).collect(),
            sideband: BlockBuffer::default(),
            sample_time_off: info.sample_time_offset(),
            sideband_info: info,
            by_id: events.iter().flat_map(|e| e.ids.iter().map(move |&id| (id, ParseInfo::new(&e.attr, Endian::Little)))).collect(),
            samples: 0,
            lost: 0,
            files: std::collections::BTreeMap::new(),
            build_ids: std::collections::BTreeMap::new(),
            kernel_ips: HashSet::new(),
            pids: BTreeSet::new(),
            tag_ids: events.iter().filter(|e| e.name == crate::flow::TAG_EVENT).flat_map(|e| e.ids.iter().copied()).collect(),
            pending_tag: (0..rings).map(|_| None).collect(),
            tags: 0,
            throttled: 0,
            flow_samples: HashMap::new(),
            count_flows: false,
            live: None,
        }
    }

    /// The flow id a tag record names (None for no flow).
    fn tag_flow(&self, rec: &[u8]) -> Option<u64> {
        let body = rec.get(8..)?;
        let id = Endian::Little.u64(body.get(..8)?);
        let s = self.by_id.get(&id)?.parse_sample(body).ok()?;
        let t = crate::flow::decode_tag(s.raw?)?;
        (t.flow_id != 0).then_some(t.flow_id)
    }

    /// Raw bytes held for the next blocks (an upper bound on what they add
    /// to the file once compressed).
    pub fn buffered(&self) -> u64 {
        (self.samples_by_ring.iter().map(|(_, b)| b.buf.len()).sum::<usize>() + self.sideband.buf.len()) as u64
    }

    /// Files seen in MMAP/MMAP2 records (absolute paths only).
    pub fn mapped_files(&self) -> impl Iterator<Item = (&str, u32)> + '_ {
        self.files.iter().map(|(f, p)| (f.as_str(), *p))
    }

    /// Build-ids of the mapped files: those read during the capture, the
    /// rest read now.
    pub fn build_ids(&self) -> Vec<crate::trace::meta::BuildId> {
        let late = crate::symbolize::elf::build_ids_of(self.mapped_files().filter(|(f, _)| !self.build_ids.contains_key(*f)));
        let mut v: Vec<crate::trace::meta::BuildId> =
            self.build_ids.iter().map(|(p, b)| crate::trace::meta::BuildId { path: p.clone(), build_id: b.clone() }).chain(late).collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// Kernel addresses the samples touched.
    pub fn kernel_ips(&self) -> impl Iterator<Item = u64> + '_ {
        self.kernel_ips.iter().copied()
    }

    /// Pids that had samples.
    pub fn sampled_pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.pids.iter().copied()
    }

    fn note_sample(&mut self, r: &crate::perf::record::RawRecord<'_>, flow: Option<u64>, ring_cpu: u32) {
        // IDENTIFIER, IP, then pid/tid: the pid is at byte 16 of every msen sample.
        if let Some(p) = r.body.get(16..20) {
            self.pids.insert(Endian::Little.u32(p));
        }
        if self.kernel_ips.len() >= MAX_KERNEL_IPS && self.live.is_none() {
            return;
        }
        // Every msen event starts its samples with IDENTIFIER.
        let Some(id) = r.body.get(..8).map(|b| Endian::Little.u64(b)) else {
            return;
        };
        let Some(info) = self.by_id.get(&id) else {
            return;
        };
        let Ok(s) = info.parse_sample(r.body) else {
            return;
        };
        let kernel = r.cpumode() == misc::KERNEL;
        if let Some(live) = self.live.as_mut() {
            live.sample(&s, ring_cpu, kernel, flow);
        }
        if self.kernel_ips.len() >= MAX_KERNEL_IPS {
            return;
        }
        if kernel {
            if let Some(ip) = s.ip {
                self.kernel_ips.insert(ip);
            }
        }
        if let Some(c) = s.callchain {
            for (k, ip) in frames_of(c.iter(), kernel) {
                if k {
                    self.kernel_ips.insert(ip);
                }
            }
        }
    }

    /// Records read from ring `ring` (CPU `cpu`).
    pub fn push(&mut self, ring: usize, cpu: u32, bytes: &[u8], w: &mut TraceWriter) -> io::Result<()> {
        let mut off = 0;
        for r in RecordIter::new(bytes, Endian::Little) {
            // The kernel writes whole records; a bad size here means the ring
            // protocol broke, and the rest of this run cannot be split.
            let Ok(r) = r else { break };
            let len = 8 + r.body.len();
            let rec = &bytes[off..off + len];
            off += len;
            if r.kind == RecordType::SAMPLE {
                let id = r.body.get(..8).map(|b| Endian::Little.u64(b));
                if id.is_some_and(|id| self.tag_ids.contains(&id)) {
                    // Held until its sample arrives (the ring may be read
                    // between the two), so a block never ends on a tag.
                    self.tags += 1;
                    let (c, s) = &mut self.samples_by_ring[ring];
                    *c = cpu;
                    if let Some(old) = self.pending_tag[ring].replace(rec.to_vec()) {
                        s.add(&old, None);
                    }
                    continue;
                }
                let t = self.sample_time_off.and_then(|o| r.body.get(o..o + 8)).map(|b| Endian::Little.u64(b));
                self.samples += 1;
                let tag = self.pending_tag[ring].take();
                let flow = if self.count_flows { tag.as_deref().and_then(|t| self.tag_flow(t)) } else { None };
                if let Some(flow) = flow {
                    *self.flow_samples.entry(flow).or_default() += 1;
                }
                self.note_sample(&r, flow, cpu);
                let (c, s) = &mut self.samples_by_ring[ring];
                *c = cpu;
                if let Some(tag) = tag {
                    s.add(&tag, None);
                }
                s.add(rec, t);
                if s.buf.len() >= BLOCK_TARGET {
                    s.flush(w, BlockKind::SAMPLES, cpu)?;
                }
            } else {
                if r.kind == RecordType::THROTTLE {
                    self.throttled += 1;
                }
                self.note_sideband(&r);
                let t = self.sideband_info.parse_sample_id(r.body).time;
                self.sideband.add(rec, t);
                if self.sideband.buf.len() >= BLOCK_TARGET {
                    self.sideband.flush(w, BlockKind::SIDEBAND, STREAM_GLOBAL)?;
                }
            }
        }
        Ok(())
    }

    /// Records msen made itself (the /proc scan); all sideband.
    pub fn push_synthesized(&mut self, bytes: &[u8], w: &mut TraceWriter) -> io::Result<()> {
        for r in RecordIter::new(bytes, Endian::Little).flatten() {
            self.note_sideband(&r);
        }
        if !bytes.is_empty() {
            let count = RecordIter::new(bytes, Endian::Little).count() as u32;
            // Synthesized records are stamped time 0, before every sample.
            BlockBuffer { buf: bytes.to_vec(), count, first: 0, last: 0 }.flush(w, BlockKind::SIDEBAND, STREAM_GLOBAL)?;
        }
        Ok(())
    }

    fn note_sideband(&mut self, r: &crate::perf::record::RawRecord<'_>) {
        let sb = parse_sideband(r, Endian::Little);
        if let (Some(live), Ok(sb)) = (self.live.as_mut(), &sb) {
            live.sideband(sb, self.sideband_info.parse_sample_id(r.body).time.unwrap_or(0));
        }
        match sb {
            Ok(Sideband::Lost(l)) => self.lost += l.lost,
            Ok(Sideband::LostSamples(n)) => self.lost += n,
            // A file seen for the first time: read its build-id now, while the
            // process (and its mount namespace) still exists; files of
            // short-lived processes would otherwise be read on the host later.
            Ok(Sideband::Mmap(m)) if m.filename.starts_with('/') && !self.files.contains_key(&m.filename) => {
                if let Some(b) = crate::symbolize::elf::build_id_in_ns(&m.filename, m.pid) {
                    self.build_ids.insert(m.filename.clone(), b);
                }
                self.files.insert(m.filename, m.pid);
            }
            _ => {}
        }
    }

    /// The last flush: tags still waiting for a sample are written too.
    pub fn finish(&mut self, w: &mut TraceWriter) -> io::Result<()> {
        for (ring, tag) in self.pending_tag.iter_mut().enumerate() {
            if let Some(t) = tag.take() {
                self.samples_by_ring[ring].1.add(&t, None);
            }
        }
        self.flush_all(w)
    }

    pub fn flush_all(&mut self, w: &mut TraceWriter) -> io::Result<()> {
        for (cpu, s) in &mut self.samples_by_ring {
            s.flush(w, BlockKind::SAMPLES, *cpu)?;
        }
        self.sideband.flush(w, BlockKind::SIDEBAND, STREAM_GLOBAL)?;
        Ok(())
    }
}
