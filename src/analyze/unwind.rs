//! DWARF call chains (`record --call-graph dwarf`, and perf.data recorded
//! with it): the user stack copy and registers of each sample are unwound
//! with framehop over the .eh_frame / .debug_frame of the binaries mapped in
//! the sampled process.
//!
//! ```text
//!  sample: regs_user {ip, sp, bp, ...}   stack_user: bytes [sp, sp+dyn_size)
//!  process (pid, exec epoch) -> executable mappings -> framehop Modules
//!      (one Unwinder per process per worker; the section data of each
//!       binary is mapped once and shared)
//!  chain = kernel part of the kernel's callchain, PERF_CONTEXT_USER,
//!          ip, return address - 1, ... (as perf's unwinders report them)
//! ```
//!
//! A frame that cannot be unwound ends the chain; what was found is kept.

use super::timeline::{MapEntry, Timeline};
use crate::perf::record::{Sample, PERF_CONTEXT_MAX, PERF_CONTEXT_USER};
use crate::symbolize::embedded::EmbeddedUnwind;
use crate::symbolize::Resolver;
use framehop::{ExplicitModuleSectionInfo, Module, Unwinder};
use object::{Object, ObjectSection, ObjectSegment};
use rustc_hash::FxHashMap as HashMap;
use std::ops::{Deref, Range};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// Where section bytes live: a read-only map of the binary, or bytes the
/// trace carries (its UNWIND block).
#[derive(Debug)]
enum Backing {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Deref for Backing {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Backing::Map(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// A section's bytes inside a shared backing.
#[derive(Clone, Debug)]
pub struct SectionData {
    map: Arc<Backing>,
    range: Range<usize>,
}

impl SectionData {
    fn owned(v: &[u8]) -> Option<SectionData> {
        (!v.is_empty()).then(|| SectionData { range: 0..v.len(), map: Arc::new(Backing::Owned(v.to_vec())) })
    }
}

impl Deref for SectionData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map[self.range.clone()]
    }
}

/// What framehop needs of one binary.
struct Sections {
    text_svma: Option<Range<u64>>,
    text: Option<SectionData>,
    eh_frame_svma: Option<Range<u64>>,
    eh_frame: Option<SectionData>,
    eh_frame_hdr_svma: Option<Range<u64>>,
    eh_frame_hdr: Option<SectionData>,
    debug_frame: Option<SectionData>,
    got_svma: Option<Range<u64>>,
    /// PT_LOAD segments: (file offset, file size, vaddr).
    segments: Vec<(u64, u64, u64)>,
}

impl Sections {
    fn load(path: &std::path::Path) -> Option<Sections> {
        let f = std::fs::File::open(path).ok()?;
        // SAFETY: a read-only map of a binary we only read; a binary
        // truncated meanwhile faults, which main turns into an error exit.
        let map = Arc::new(Backing::Map(unsafe { memmap2::Mmap::map(&f) }.ok()?));
        let obj = object::File::parse(&**map).ok()?;
        let base = map.as_ptr() as usize;
        let section = |name: &str| -> (Option<Range<u64>>, Option<SectionData>) {
            let Some(s) = obj.section_by_name(name) else { return (None, None) };
            let svma = s.address()..s.address() + s.size();
            let data = s.data().ok().filter(|d| !d.is_empty()).map(|d| {
                let start = d.as_ptr() as usize - base;
                SectionData { map: map.clone(), range: start..start + d.len() }
            });
            (Some(svma), data)
        };
        let (text_svma, text) = section(".text");
        let (eh_frame_svma, eh_frame) = section(".eh_frame");
        let (eh_frame_hdr_svma, eh_frame_hdr) = section(".eh_frame_hdr");
        let (_, debug_frame) = section(".debug_frame");
        let (got_svma, _) = section(".got");
        let segments = obj
            .segments()
            .map(|s| {
                let (off, size) = s.file_range();
                (off, size, s.address())
            })
            .collect();
        if eh_frame.is_none() && debug_frame.is_none() {
            return None;
        }
        Some(Sections { text_svma, text, eh_frame_svma, eh_frame, eh_frame_hdr_svma, eh_frame_hdr, debug_frame, got_svma, segments })
    }

    /// The sections as a trace carries them.
    fn from_embedded(u: &EmbeddedUnwind) -> Option<Sections> {
        if u.eh_frame.is_empty() && u.debug_frame.is_empty() {
            return None;
        }
        let r = |x: Option<(u64, u64)>| x.map(|(a, b)| a..b);
        Some(Sections {
            text_svma: r(u.text_svma),
            text: None,
            eh_frame_svma: r(u.eh_frame_svma),
            eh_frame: SectionData::owned(&u.eh_frame),
            eh_frame_hdr_svma: r(u.eh_frame_hdr_svma),
            eh_frame_hdr: SectionData::owned(&u.eh_frame_hdr),
            debug_frame: SectionData::owned(&u.debug_frame),
            got_svma: r(u.got_svma),
            segments: u.segments.clone(),
        })
    }

    fn to_embedded(&self, path: &str, build_id: Option<String>) -> EmbeddedUnwind {
        let r = |x: &Option<Range<u64>>| x.as_ref().map(|x| (x.start, x.end));
        let b = |x: &Option<SectionData>| x.as_deref().map(<[u8]>::to_vec).unwrap_or_default();
        EmbeddedUnwind {
            path: path.to_string(),
            build_id,
            segments: self.segments.clone(),
            text_svma: r(&self.text_svma),
            eh_frame_svma: r(&self.eh_frame_svma),
            eh_frame_hdr_svma: r(&self.eh_frame_hdr_svma),
            got_svma: r(&self.got_svma),
            eh_frame: b(&self.eh_frame),
            eh_frame_hdr: b(&self.eh_frame_hdr),
            debug_frame: b(&self.debug_frame),
        }
    }

    /// The vaddr a file offset is loaded at.
    fn vaddr_of(&self, off: u64) -> Option<u64> {
        self.segments.iter().find(|&&(o, n, _)| off >= o && off < o + n.max(1)).map(|&(o, _, v)| v + (off - o))
    }
}

type NativeUnwinder = framehop::UnwinderNative<SectionData, framehop::MayAllocateDuringUnwind>;
type NativeCache = framehop::CacheNative<framehop::MayAllocateDuringUnwind>;

/// Unwind state shared by the workers: the binaries' sections, loaded once.
pub struct Unwind {
    sections: Vec<OnceLock<Option<Arc<Sections>>>>,
    paths: Vec<Option<PathBuf>>,
}

impl std::fmt::Debug for Unwind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Unwind({} dsos)", self.paths.len())
    }
}

impl Unwind {
    /// `carried`: the unwind tables the trace holds, used for binaries that
    /// are not here (or were rebuilt).
    pub fn new(resolver: &Resolver, dsos: usize, carried: &[EmbeddedUnwind]) -> Unwind {
        let paths: Vec<Option<PathBuf>> = (0..dsos as u32).map(|d| resolver.binary_path(d)).collect();
        let sections = (0..dsos as u32)
            .map(|d| {
                let cell = OnceLock::new();
                if paths[d as usize].is_none() {
                    let dso = resolver.dso(d).map(|x| x.path.as_str()).unwrap_or("");
                    let bid = resolver.recorded_build_id(dso);
                    let u = carried.iter().find(|u| u.path == dso && (bid.is_none() || u.build_id.as_deref() == bid));
                    if let Some(u) = u {
                        let _ = cell.set(Sections::from_embedded(u).map(Arc::new));
                    }
                }
                cell
            })
            .collect();
        Unwind { sections, paths }
    }

    /// No binaries: for a trace without user stack copies, which never
    /// unwinds (finding every binary's path loads its symbol table).
    pub fn none() -> Unwind {
        Unwind { sections: Vec::new(), paths: Vec::new() }
    }

    fn sections(&self, dso: u32) -> Option<&Arc<Sections>> {
        let cell = self.sections.get(dso as usize)?;
        cell.get_or_init(|| self.paths[dso as usize].as_deref().and_then(Sections::load).map(Arc::new)).as_ref()
    }

    /// The unwind tables of `dso` to carry in a trace (from its file here).
    pub fn carry(&self, dso: u32, path: &str, build_id: Option<String>) -> Option<EmbeddedUnwind> {
        self.sections(dso).map(|s| s.to_embedded(path, build_id))
    }
}

/// One worker's unwinders (per process) and rule cache.
pub struct UnwindWorker<'a> {
    shared: &'a Unwind,
    timeline: &'a Timeline,
    cache: NativeCache,
    procs: HashMap<(u32, u16), NativeUnwinder>,
}

impl std::fmt::Debug for UnwindWorker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UnwindWorker({} processes)", self.procs.len())
    }
}

/// Word index of perf register `bit` among the sampled ones in `mask`.
fn reg_index(mask: u64, bit: u32) -> Option<usize> {
    (mask & (1 << bit) != 0).then(|| (mask & ((1u64 << bit) - 1)).count_ones() as usize)
}

impl<'a> UnwindWorker<'a> {
    pub fn new(shared: &'a Unwind, timeline: &'a Timeline) -> UnwindWorker<'a> {
        UnwindWorker { shared, timeline, cache: NativeCache::new(), procs: HashMap::default() }
    }

    fn unwinder(&mut self, pid: u32, epoch: u16) -> &NativeUnwinder {
        let (shared, timeline) = (self.shared, self.timeline);
        self.procs.entry((pid, epoch)).or_insert_with(|| {
            let mut u = NativeUnwinder::new();
            for m in timeline.maps_of(pid, epoch) {
                if let Some(module) = module_for(shared, timeline, &m) {
                    u.add_module(module);
                }
            }
            u
        })
    }

    /// The call chain of a sample with a user stack copy: the kernel part
    /// of its callchain, then the unwound user frames. None when the sample
    /// has no stack copy (use its callchain as it is).
    pub fn chain(&mut self, s: &Sample<'_>, regs_mask: u64, pid: u32, epoch: u16) -> Option<Vec<u64>> {
        let (abi, regs) = s.regs_user?;
        let (stack, dyn_size) = s.stack_user?;
        let mut out: Vec<u64> = Vec::new();
        if let Some(c) = s.callchain {
            for ip in c.iter() {
                if ip == PERF_CONTEXT_USER {
                    break;
                }
                out.push(ip);
            }
        }
        if abi == 0 {
            // The sample was taken in a kernel thread: no user registers.
            return Some(out);
        }
        let reg = |bit: u32| reg_index(regs_mask, bit).and_then(|i| regs.iter().nth(i));
        let regs_native = native_regs(&reg)?;
        let ip = regs_native.0;
        out.push(PERF_CONTEXT_USER);
        let valid = &stack[..(dyn_size as usize).min(stack.len())];
        let sp = regs_native.1;
        let mut read_stack = |addr: u64| -> Result<u64, ()> {
            let off = addr.checked_sub(sp).ok_or(())? as usize;
            let b = valid.get(off..off + 8).ok_or(())?;
            Ok(u64::from_le_bytes(b.try_into().map_err(|_| ())?))
        };
        let unwind_regs = regs_native.2;
        let mut cache = std::mem::replace(&mut self.cache, NativeCache::new());
        {
            let u = self.unwinder(pid, epoch);
            let mut it = u.iter_frames(ip, unwind_regs, &mut cache, &mut read_stack);
            let mut n = 0;
            while let Ok(Some(f)) = it.next() {
                let a = f.address_for_lookup();
                if a == 0 || a >= PERF_CONTEXT_MAX {
                    break;
                }
                out.push(a);
                n += 1;
                // perf's default --max-stack.
                if n >= 127 {
                    break;
                }
            }
        }
        self.cache = cache;
        if out.last() == Some(&PERF_CONTEXT_USER) {
            out.push(ip);
        }
        Some(out)
    }
}

/// (ip, sp, framehop registers) from the sampled registers.
#[cfg(target_arch = "x86_64")]
fn native_regs(reg: &dyn Fn(u32) -> Option<u64>) -> Option<(u64, u64, framehop::UnwindRegsNative)> {
    // perf_regs x86: BP 6, SP 7, IP 8.
    let (bp, sp, ip) = (reg(6)?, reg(7)?, reg(8)?);
    Some((ip, sp, framehop::UnwindRegsNative::new(ip, sp, bp)))
}

#[cfg(target_arch = "aarch64")]
fn native_regs(reg: &dyn Fn(u32) -> Option<u64>) -> Option<(u64, u64, framehop::UnwindRegsNative)> {
    // perf_regs arm64: x29 (fp) 29, x30 (lr) 30, SP 31, PC 32.
    let (fp, lr, sp, pc) = (reg(29)?, reg(30)?, reg(31)?, reg(32)?);
    Some((pc, sp, framehop::UnwindRegsNative::new(lr, sp, fp)))
}

fn module_for(shared: &Unwind, timeline: &Timeline, m: &MapEntry) -> Option<Module<SectionData>> {
    const PROT_EXEC: u32 = 4;
    if m.prot != 0 && m.prot & PROT_EXEC == 0 {
        return None;
    }
    let dso = timeline.dsos.get(m.dso as usize)?;
    if !dso.path.starts_with('/') {
        return None;
    }
    let s = shared.sections(m.dso)?;
    let base_avma = m.start.wrapping_sub(s.vaddr_of(m.pgoff)?);
    let info = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: s.text_svma.clone(),
        text: s.text.clone(),
        got_svma: s.got_svma.clone(),
        eh_frame_svma: s.eh_frame_svma.clone(),
        eh_frame: s.eh_frame.clone(),
        eh_frame_hdr_svma: s.eh_frame_hdr_svma.clone(),
        eh_frame_hdr: s.eh_frame_hdr.clone(),
        debug_frame: s.debug_frame.clone(),
        stubs_svma: None,
        stub_helper_svma: None,
        unwind_info: None,
        text_segment_svma: None,
        text_segment: None,
    };
    Some(Module::new(dso.path.clone(), m.start..m.end, base_avma, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_indices_follow_the_mask() {
        let mask = 0xff0fff; // perf's x86-64 set
        assert_eq!(reg_index(mask, 0), Some(0));
        assert_eq!(reg_index(mask, 8), Some(8));
        assert_eq!(reg_index(mask, 16), Some(12));
        assert_eq!(reg_index(mask, 12), None);
    }
}
