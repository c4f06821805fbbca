//! Resolving (mapping, address) pairs to functions. ELF files are loaded
//! once, lazily, on first use from any worker (the loaded tables are plain
//! data, so they are shared); callers resolve distinct addresses only.

use super::dwarf::Frame;
use super::elf::{self, ElfProblem, ElfSymbols};
use super::kallsyms::Kallsyms;
use crate::analyze::timeline::{Dso, MapEntry, MapHit};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Why an address has no function name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unresolved {
    /// No mapping of the process covers the address.
    NoMap,
    /// The mapped file could not be read or has no symbol table.
    NoSymbols,
    /// The file's build-id differs from the one recorded.
    BuildIdMismatch,
    /// The file has symbols, but no function contains the address.
    OutsideFunctions,
    /// Kernel address and the trace has no kallsyms.
    NoKallsyms,
}

impl Unresolved {
    pub fn as_str(&self) -> &'static str {
        match self {
            Unresolved::NoMap => "no mapping",
            Unresolved::NoSymbols => "no symbols",
            Unresolved::BuildIdMismatch => "build-id mismatch",
            Unresolved::OutsideFunctions => "not in any function",
            Unresolved::NoKallsyms => "no kallsyms",
        }
    }
}

/// One resolved address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resolved {
    /// Short DSO name (perf's "Shared Object"), "[unknown]" without a mapping.
    pub dso: String,
    /// Function name, or why there is none.
    pub sym: Result<String, Unresolved>,
    pub kernel: bool,
    /// The address shown when unresolved: file-relative inside a mapping,
    /// absolute otherwise.
    pub rel: u64,
    /// DSO and virtual address in its ELF file, when it has one (for DWARF).
    pub elf_addr: Option<(u32, u64)>,
    /// The address's offset in its function (perf's srcline without line
    /// information: `name+offset`).
    pub sym_off: Option<u64>,
    /// Where the symbol starts (in the ELF file, or the kernel): a symbol's
    /// identity, as perf tells apart two functions with one name.
    pub sym_start: Option<u64>,
}

impl Resolved {
    /// An address without a symbol, shown by `rel`.
    fn unresolved(dso: String, why: Unresolved, kernel: bool, rel: u64) -> Resolved {
        Resolved { dso, sym: Err(why), kernel, rel, elf_addr: None, sym_off: None, sym_start: None }
    }

    /// perf's Symbol column: "[.] name" for user, "[k] name" for kernel.
    pub fn sym_display(&self) -> String {
        let tag = if self.kernel { "[k]" } else { "[.]" };
        match &self.sym {
            Ok(n) => format!("{tag} {n}"),
            // perf's "%-#.*llx": the # flag adds no 0x to zero.
            Err(_) if self.rel == 0 => format!("{tag} {:016x}", 0),
            Err(_) => format!("{tag} 0x{:016x}", self.rel),
        }
    }
}

#[derive(Debug)]
pub struct Resolver {
    dsos: Vec<Dso>,
    build_ids: HashMap<String, String>,
    elf: Vec<OnceLock<Result<ElfSymbols, ElfProblem>>>,
    kallsyms: Kallsyms,
    symfs: Option<PathBuf>,
    /// Kernel and module mappings (pid -1), newest last.
    kernel_maps: Vec<MapEntry>,
    /// When true, a kernel address outside every kernel mapping has no
    /// mapping (perf's view of imported files); when false (msen captures,
    /// which record no kernel mapping), it is in [kernel.kallsyms].
    kernel_maps_authoritative: bool,
    /// Where each DSO's DWARF lives (found lazily).
    debug_files: Vec<OnceLock<Option<PathBuf>>>,
    /// JIT symbols from perf-PID.map files captured in the trace: pid ->
    /// sorted (start, end, name).
    jit: HashMap<u32, Vec<(u64, u64, String)>>,
    /// User-registered data objects: sorted (start, end, name, type).
    data_objects: Vec<DataObject>,
    /// Symbols the trace carries, for files missing here.
    embedded: super::embedded::Embedded,
    /// The recording machine's vdso image, when the trace carries it.
    vdso: Option<Vec<u8>>,
}

/// A data object registered by the user (`--data-objects`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataObject {
    pub start: u64,
    pub end: u64,
    pub name: String,
    pub type_name: String,
}

/// What a data address is: names borrowed from the resolver and the
/// timeline, so that naming every memory sample allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSymbol<'a> {
    /// The object's or mapping's name without the offset.
    pub object: &'a str,
    pub offset: u64,
    /// The type of a registered data object ('' otherwise).
    pub type_name: &'a str,
}

impl DataSymbol<'_> {
    /// "counters+0x40", "[heap]+0x1f0", "[anon]+0x10".
    pub fn text(&self) -> String {
        format!("{}+0x{:x}", self.object, self.offset)
    }
}

/// A file in perf's build-id cache (`~/.debug/.build-id/ab/cdef.../elf`).
fn build_id_cache_file(bid: &str) -> Option<PathBuf> {
    if bid.len() < 3 || !bid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let home = std::env::var_os("HOME")?;
    let p = Path::new(&home).join(".debug/.build-id").join(&bid[..2]).join(&bid[2..]).join("elf");
    p.is_file().then_some(p)
}

/// perf's DSO name for a kernel or module mapping.
fn kernel_dso_name(path: &str) -> String {
    if let Some(rest) = path.strip_prefix('[') {
        // "[kernel.kallsyms]_text" -> "[kernel.kallsyms]"
        return match rest.split_once(']') {
            Some((name, _)) => format!("[{name}]"),
            None => path.to_string(),
        };
    }
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split(".ko").next().unwrap_or(base);
    format!("[{}]", stem.replace('-', "_"))
}

impl Resolver {
    pub fn new(dsos: Vec<Dso>, build_ids: HashMap<String, String>, kallsyms: Kallsyms, symfs: Option<PathBuf>) -> Resolver {
        let elf = (0..dsos.len()).map(|_| OnceLock::new()).collect();
        let debug_files = (0..dsos.len()).map(|_| OnceLock::new()).collect();
        Resolver {
            dsos,
            build_ids,
            elf,
            kallsyms,
            symfs,
            kernel_maps: Vec::new(),
            kernel_maps_authoritative: false,
            debug_files,
            jit: HashMap::new(),
            data_objects: Vec::new(),
            embedded: Default::default(),
            vdso: None,
        }
    }

    /// Use the symbols a trace carries where files are missing or differ.
    pub fn with_embedded(mut self, e: super::embedded::Embedded) -> Resolver {
        self.embedded = e;
        self
    }

    /// Use the vdso image a trace carries for `[vdso]` mappings.
    pub fn with_vdso(mut self, image: Option<Vec<u8>>) -> Resolver {
        self.vdso = image;
        self
    }

    fn embedded_for(&self, id: u32) -> Option<&super::embedded::EmbeddedDso> {
        let d = self.dsos.get(id as usize)?;
        self.embedded.find(&d.path, self.build_ids.get(&d.path).map(String::as_str))
    }

    /// The symbols the trace carries.
    pub fn embedded(&self) -> &super::embedded::Embedded {
        &self.embedded
    }

    pub fn has_vdso_image(&self) -> bool {
        self.vdso.is_some()
    }

    /// DSOs named from the trace's embedded symbols (their files were
    /// missing here or differ), for a footer.
    pub fn embedded_used(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .elf
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c.get(), Some(Ok(es)) if es.embedded))
            .map(|(i, _)| self.dsos[i].path.clone())
            .collect();
        v.sort();
        v
    }

    /// The symbols of `dso` as loaded (from a file here, or embedded).
    pub fn elf_symbols(&self, dso: u32) -> Option<&ElfSymbols> {
        self.symbols(dso).ok()
    }

    /// The ELF data symbol a data address falls in, with its DSO, found as
    /// `data_symbol_with_bss` finds it (for embedding).
    pub fn data_symbol_of(&self, hit: Option<MapHit>, below: Option<MapHit>) -> Option<(u32, &elf::Symbol)> {
        if let (Some(h), Some(b)) = (hit, below) {
            if self.dsos.get(h.dso as usize).is_some_and(|d| d.is_anonymous()) {
                if let Ok(es) = self.symbols(b.dso) {
                    if let Some(s) = es.segment_vaddr(b.file_offset).and_then(|va| es.lookup_data(va)) {
                        return Some((b.dso, s));
                    }
                }
            }
        }
        let h = hit?;
        let es = self.symbols(h.dso).ok()?;
        let va = es.offset_to_vaddr(h.file_offset)?;
        es.lookup_data(va).map(|s| (h.dso, s))
    }

    /// The build-id the trace recorded for a file path.
    pub fn recorded_build_id(&self, path: &str) -> Option<&str> {
        self.build_ids.get(path).map(String::as_str)
    }

    /// Where the trace's first kernel symbol starts.
    pub fn kernel_symbols_start(&self) -> Option<u64> {
        self.kallsyms.first_start()
    }

    /// The kernel symbols covering `addrs`, as kallsyms text (for embedding).
    pub fn kallsyms_subset(&self, addrs: impl Iterator<Item = u64>) -> Option<String> {
        (!self.kallsyms.is_empty()).then(|| self.kallsyms.subset_text(addrs))
    }

    /// Use JIT symbol tables (perf-PID.map contents by pid).
    pub fn with_jit_maps(mut self, maps: HashMap<u32, String>) -> Resolver {
        for (pid, text) in maps {
            let mut v: Vec<(u64, u64, String)> = text
                .lines()
                .filter_map(|l| {
                    let mut it = l.splitn(3, ' ');
                    let start = u64::from_str_radix(it.next()?.trim_start_matches("0x"), 16).ok()?;
                    let size = u64::from_str_radix(it.next()?.trim_start_matches("0x"), 16).ok()?;
                    Some((start, start.saturating_add(size), it.next()?.trim().to_string()))
                })
                .collect();
            v.sort();
            self.jit.insert(pid, v);
        }
        self
    }

    /// Use registered data objects.
    pub fn with_data_objects(mut self, mut objs: Vec<DataObject>) -> Resolver {
        objs.sort_by(|a, b| a.start.cmp(&b.start).then(a.name.cmp(&b.name)));
        self.data_objects = objs;
        self
    }

    fn jit_lookup(&self, pid: Option<u32>, addr: u64) -> Option<Resolved> {
        let find = |pid: &u32, v: &Vec<(u64, u64, String)>| {
            let i = v.partition_point(|e| e.0 <= addr);
            v[..i].last().filter(|e| addr < e.1).map(|e| Resolved {
                dso: format!("perf-{pid}.map"),
                sym: Ok(e.2.clone()),
                kernel: false,
                rel: addr,
                elf_addr: None,
                sym_off: None,
                sym_start: None,
            })
        };
        match pid {
            Some(p) => self.jit.get(&p).and_then(|v| find(&p, v)),
            None => {
                let mut pids: Vec<&u32> = self.jit.keys().collect();
                pids.sort();
                pids.into_iter().find_map(|p| find(p, &self.jit[p]))
            }
        }
    }

    /// Name the data at `addr`: a registered object, an ELF data symbol, or
    /// the mapping (`[heap]`, `[stack]`, anonymous).
    ///
    /// `below` is the file mapping just below an anonymous one: a binary's
    /// .bss past its file-backed pages lives there, at the same load bias.
    pub fn data_symbol_with_bss(&self, map: Option<(MapHit, u64, u64)>, below: Option<MapHit>, addr: u64) -> Option<DataSymbol<'_>> {
        if let (Some((hit, _, _)), Some(b)) = (map, below) {
            if self.dsos.get(hit.dso as usize).is_some_and(|d| d.is_anonymous()) {
                if let Ok(es) = self.symbols(b.dso) {
                    // file_offset of `below` was computed as addr - start + pgoff:
                    // the file offset addr would have if the mapping went on.
                    if let Some(s) = es.segment_vaddr(b.file_offset).and_then(|va| es.lookup_data(va).map(|s| (s, va))) {
                        let (s, va) = s;
                        return Some(DataSymbol { object: s.display_str(), offset: va - s.start, type_name: "" });
                    }
                }
            }
        }
        self.data_symbol(map, addr)
    }

    pub fn data_symbol(&self, map: Option<(MapHit, u64, u64)>, addr: u64) -> Option<DataSymbol<'_>> {
        let i = self.data_objects.partition_point(|o| o.start <= addr);
        if let Some(o) = self.data_objects[..i].last().filter(|o| addr < o.end) {
            return Some(DataSymbol { object: &o.name, offset: addr - o.start, type_name: &o.type_name });
        }
        let (hit, map_start, _map_end) = map?;
        let dso = self.dsos.get(hit.dso as usize)?;
        if let Ok(es) = self.symbols(hit.dso) {
            if let Some(va) = es.offset_to_vaddr(hit.file_offset) {
                if let Some(s) = es.lookup_data(va) {
                    return Some(DataSymbol { object: s.display_str(), offset: va - s.start, type_name: "" });
                }
            }
        }
        let object = if dso.is_anonymous() { "[anon]" } else { dso.path.as_str() };
        Some(DataSymbol { object, offset: addr - map_start, type_name: "" })
    }

    /// The binary of `dso` on this machine (under --symfs), when it is the
    /// one the trace recorded (same build-id, or none recorded).
    pub fn binary_path(&self, dso: u32) -> Option<PathBuf> {
        let d = self.dsos.get(dso as usize)?;
        // Embedded symbols stand in for a file that is missing or rebuilt:
        // the file at the path (if any) is not the recorded one.
        if !d.path.starts_with('/') || self.symbols(dso).map_or(true, |s| s.embedded) {
            return None;
        }
        Some(match &self.symfs {
            Some(root) => root.join(d.path.trim_start_matches('/')),
            None => PathBuf::from(&d.path),
        })
    }

    /// The file holding `dso`'s DWARF, if any.
    pub fn debug_file(&self, dso: u32) -> Option<&Path> {
        let cell = self.debug_files.get(dso as usize)?;
        cell.get_or_init(|| {
            let d = &self.dsos[dso as usize];
            // A rebuilt file's DWARF would describe other code; embedded
            // symbols mean the recorded file is not here (its lines, if
            // embedded, come from the trace).
            if !d.path.starts_with('/')
                || matches!(self.symbols(dso), Err(ElfProblem::BuildIdMismatch { .. }))
                || self.symbols(dso).is_ok_and(|s| s.embedded)
            {
                return None;
            }
            let path = match &self.symfs {
                Some(root) => root.join(d.path.trim_start_matches('/')),
                None => PathBuf::from(&d.path),
            };
            let bid =
                self.build_ids.get(&d.path).map(String::as_str).or_else(|| self.symbols(dso).ok().and_then(|s| s.build_id.as_deref()));
            super::dwarf::find_debug_file(&path, bid, self.symfs.as_deref())
        })
        .as_deref()
    }

    /// DWARF frames for many (dso, vaddr) pairs: grouped by DSO, each chunk
    /// with its own reader, chunks in parallel. Same order as `items`.
    pub fn dwarf_batch(&self, items: &[(u32, u64)]) -> Vec<Vec<Frame>> {
        use rayon::prelude::*;
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by_key(|&i| items[i]);
        let mut chunks: Vec<&[usize]> = Vec::new();
        let mut start = 0;
        // Chunks never mix DSOs, and stay small enough to spread one hot
        // binary over the workers.
        for i in 1..=order.len() {
            if i == order.len() || items[order[i]].0 != items[order[start]].0 || i - start >= 4096 {
                if i > start {
                    chunks.push(&order[start..i]);
                }
                start = i;
            }
        }
        let results: Vec<Vec<(usize, Vec<Frame>)>> = chunks
            .par_iter()
            .map(|chunk| {
                let dso = items[chunk[0]].0;
                let Some(dw) = self.debug_file(dso).and_then(super::dwarf::Dwarf::open) else {
                    // No DWARF here: the lines the trace carries, if any.
                    return match self.embedded_for(dso) {
                        Some(e) => chunk.iter().map(|&i| (i, e.frames(items[i].1))).collect(),
                        None => chunk.iter().map(|&i| (i, Vec::new())).collect(),
                    };
                };
                chunk.iter().map(|&i| (i, dw.frames(items[i].1))).collect()
            })
            .collect();
        let mut out = vec![Vec::new(); items.len()];
        for (i, f) in results.into_iter().flatten() {
            out[i] = f;
        }
        out
    }

    /// Use the kernel mappings of the trace; `authoritative` as for perf.data.
    pub fn with_kernel_maps(mut self, maps: Vec<MapEntry>, authoritative: bool) -> Resolver {
        self.kernel_maps = maps;
        self.kernel_maps_authoritative = authoritative;
        self
    }

    pub fn dso(&self, id: u32) -> Option<&Dso> {
        self.dsos.get(id as usize)
    }

    fn symbols(&self, id: u32) -> Result<&ElfSymbols, ElfProblem> {
        let Some(cell) = self.elf.get(id as usize) else {
            return Err(ElfProblem::NotElf);
        };
        let dso = &self.dsos[id as usize];
        cell.get_or_init(|| {
            // The file as recorded; else the symbols the trace carries (the
            // recording host's names, debug files included); else perf's
            // build-id cache (a rebuilt or removed binary perf had cached).
            let found = self.load_symbols(dso);
            match found {
                Err(e) => match self.embedded_for(id) {
                    Some(emb) => Ok(emb.to_symbols()),
                    None => {
                        let want = self.build_ids.get(&dso.path).map(String::as_str);
                        match want.and_then(build_id_cache_file) {
                            Some(p) => elf::load(&p, want).map_err(|_| e),
                            None => Err(e),
                        }
                    }
                },
                ok => ok,
            }
        })
        .as_ref()
        .map_err(Clone::clone)
    }

    /// The vdso image for a `[vdso]` mapping: the one the trace carries,
    /// perf's build-id cache, or this machine's own when the build-id says
    /// it is the same.
    fn vdso_symbols(&self, want: Option<&str>) -> Result<ElfSymbols, ElfProblem> {
        if let Some(img) = &self.vdso {
            return elf::load_bytes(img, want);
        }
        if let Some(bid) = want {
            if let Some(home) = std::env::var_os("HOME") {
                let p = Path::new(&home).join(".debug/[vdso]").join(bid).join("vdso");
                if let Ok(es) = elf::load(&p, Some(bid)) {
                    return Ok(es);
                }
            }
        }
        match elf::own_vdso() {
            Some(img) => elf::load_bytes(&img, want),
            None => Err(ElfProblem::Missing("[vdso]".into())),
        }
    }

    fn load_symbols(&self, dso: &Dso) -> Result<ElfSymbols, ElfProblem> {
        {
            if dso.path == "[vdso]" {
                return self.vdso_symbols(self.build_ids.get(&dso.path).map(String::as_str));
            }
            if !dso.path.starts_with('/') {
                return Err(ElfProblem::Missing(dso.path.clone()));
            }
            let path = match &self.symfs {
                Some(root) => root.join(dso.path.trim_start_matches('/')),
                None => PathBuf::from(&dso.path),
            };
            let want = self.build_ids.get(&dso.path).map(String::as_str);
            let mut syms = elf::load(Path::new(&path), want)?;
            if !syms.has_symtab {
                // A stripped binary: the local functions are in its
                // detached debug file (libc6-dbg, -dbgsym packages).
                let bid = want.or(syms.build_id.as_deref()).map(str::to_string);
                if let Some(dbg) = super::dwarf::find_symtab_file(Path::new(&path), bid.as_deref(), self.symfs.as_deref()) {
                    if let Ok(d) = elf::load(&dbg, None) {
                        syms.merge_debug_symbols(d);
                    }
                }
            }
            Ok(syms)
        }
    }

    /// Resolve a user-space address given the mapping that covers it.
    pub fn user(&self, hit: Option<MapHit>, addr: u64) -> Resolved {
        let Some(hit) = hit else {
            return match self.jit_lookup(None, addr) {
                Some(r) => r,
                None => Resolved::unresolved("[unknown]".into(), Unresolved::NoMap, false, addr),
            };
        };
        let dso = self.dsos.get(hit.dso as usize);
        let name = dso.map_or("[unknown]".to_string(), |d| d.short_name().to_string());
        let mut elf_addr = None;
        let mut sym_start = None;
        let mut sym_off = None;
        // perf prints the file-relative address of unresolved user code.
        let rel = hit.file_offset;
        let sym = match self.symbols(hit.dso) {
            Ok(es) => match es.offset_to_vaddr(hit.file_offset) {
                Some(va) => {
                    elf_addr = Some((hit.dso, va));
                    match es.lookup(va) {
                        Some(s) => {
                            sym_start = Some(s.start);
                            sym_off = va.checked_sub(s.start);
                            Ok(s.display_name())
                        }
                        None => Err(Unresolved::OutsideFunctions),
                    }
                }
                None => Err(Unresolved::OutsideFunctions),
            },
            Err(ElfProblem::BuildIdMismatch { .. }) => Err(Unresolved::BuildIdMismatch),
            Err(_) => Err(Unresolved::NoSymbols),
        };
        // JIT code lives in anonymous executable mappings named by perf-PID.map.
        if sym.is_err() && dso.is_some_and(|d| d.is_anonymous()) {
            if let Some(r) = self.jit_lookup(Some(hit.pid), addr) {
                return r;
            }
        }
        Resolved { dso: name, sym, kernel: false, rel, elf_addr, sym_off, sym_start }
    }

    /// Is `addr` kernel text: inside a kernel mapping, or at or above the
    /// first kallsyms symbol?
    pub fn is_kernel_addr(&self, addr: u64) -> bool {
        self.kernel_maps.iter().any(|m| addr >= m.start && addr < m.end) || self.kallsyms.first_start().is_some_and(|s| addr >= s)
    }

    /// Resolve a kernel address from the captured kallsyms.
    pub fn kernel(&self, addr: u64) -> Resolved {
        if self.kallsyms.is_empty() {
            let map = self.kernel_maps.iter().rev().find(|m| addr >= m.start && addr < m.end);
            return match map {
                Some(m) => Resolved::unresolved(
                    self.dsos.get(m.dso as usize).map_or_else(|| "[kernel.kallsyms]".into(), |d| kernel_dso_name(&d.path)),
                    Unresolved::NoKallsyms,
                    true,
                    addr,
                ),
                None if self.kernel_maps_authoritative => Resolved::unresolved("[unknown]".into(), Unresolved::NoMap, true, addr),
                None => Resolved::unresolved("[kernel.kallsyms]".into(), Unresolved::NoKallsyms, true, addr),
            };
        }
        match self.kallsyms.lookup(addr) {
            Some(k) => Resolved {
                dso: match &k.module {
                    Some(m) => format!("[{m}]"),
                    None => "[kernel.kallsyms]".into(),
                },
                sym: Ok(k.name.clone()),
                kernel: true,
                rel: addr,
                elf_addr: None,
                sym_off: Some(addr - k.start),
                sym_start: Some(k.start),
            },
            None => Resolved::unresolved("[kernel.kallsyms]".into(), Unresolved::OutsideFunctions, true, addr),
        }
    }

    /// Problems loading DSOs that were used, for a report footer.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .elf
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c.get() {
                Some(Err(ElfProblem::BuildIdMismatch { recorded, found })) => {
                    Some((self.dsos[i].path.clone(), format!("build-id mismatch: recorded {recorded}, file has {found}; not used")))
                }
                Some(Err(ElfProblem::Missing(e))) if self.dsos[i].path.starts_with('/') => {
                    Some((self.dsos[i].path.clone(), format!("not readable: {e}")))
                }
                _ => None,
            })
            .collect();
        v.sort();
        v
    }
}
