//! ELF files: build-ids, function symbol tables, and file-offset -> virtual
//! address translation through the PT_LOAD segments.

use crate::trace::meta::BuildId;
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, SymbolKind};
use std::fs::File;
use std::path::Path;

/// Why an ELF file gave no symbols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfProblem {
    Missing(String),
    NotElf,
    BuildIdMismatch { recorded: String, found: String },
}

/// A function symbol: [start, end) in the file's virtual addresses.
#[derive(Debug, Clone)]
pub struct Symbol {
    pub start: u64,
    pub end: u64,
    /// As stored (mangled); `display_name` demangles. Demangling happens on
    /// first lookup (once per symbol), not for every symbol of a large
    /// binary at load.
    pub name: String,
    display: std::sync::OnceLock<Box<str>>,
}

impl Symbol {
    pub fn new(start: u64, end: u64, name: String) -> Symbol {
        Symbol { start, end, name, display: std::sync::OnceLock::new() }
    }

    /// The name as perf's Symbol column shows it (C++ without parameters).
    pub fn display_name(&self) -> String {
        self.display_str().to_string()
    }
    /// `display_name` without a copy (demangled once per symbol).
    pub fn display_str(&self) -> &str {
        self.display.get_or_init(|| super::dwarf::demangle_no_params(&self.name).into_boxed_str())
    }
    /// The full demangled name (C++ with parameters), as addr2line -C prints it.
    pub fn full_name(&self) -> String {
        demangle(&self.name)
    }
}

/// The symbols and load segments of one ELF file.
#[derive(Debug, Clone, Default)]
pub struct ElfSymbols {
    /// Sorted by start; overlaps resolved to the innermost by lookup order.
    pub symbols: Vec<Symbol>,
    /// Data objects (.data, .bss, .rodata, TLS), sorted by start.
    pub data_symbols: Vec<Symbol>,
    /// (file offset, file size, virtual address) of each PT_LOAD segment.
    pub segments: Vec<(u64, u64, u64)>,
    pub build_id: Option<String>,
    /// The file has a .symtab (not only .dynsym): a stripped binary has not.
    pub has_symtab: bool,
    /// The symbols come from the trace (embedded at record or import),
    /// not from a file on this machine.
    pub embedded: bool,
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn map_file(path: &Path) -> Result<memmap2::Mmap, ElfProblem> {
    let f = File::open(path).map_err(|e| ElfProblem::Missing(e.to_string()))?;
    // SAFETY: read-only map of a binary we only read; a binary rewritten
    // under us could fault, as it would for perf or addr2line.
    unsafe { memmap2::Mmap::map(&f) }.map_err(|e| ElfProblem::Missing(e.to_string()))
}

/// This process's vdso image (the kernel maps the same one into every
/// process of an architecture), copied from memory.
pub fn own_vdso() -> Option<Vec<u8>> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let line = maps.lines().find(|l| l.ends_with("[vdso]"))?;
    let (range, _) = line.split_once(' ')?;
    let (a, b) = range.split_once('-')?;
    let (start, end) = (usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?);
    if end <= start || end - start > 1 << 20 {
        return None;
    }
    // SAFETY: [start, end) is the vdso mapping of this process, readable
    // for the life of the process.
    let bytes = unsafe { std::slice::from_raw_parts(start as *const u8, end - start) };
    Some(bytes.to_vec())
}

/// The GNU build-id of an ELF image in memory, lower-case hex.
pub fn build_id_of_bytes(data: &[u8]) -> Option<String> {
    object::File::parse(data).ok()?.build_id().ok().flatten().map(hex)
}

/// The GNU build-id of an ELF file, lower-case hex.
pub fn build_id(path: &Path) -> Option<String> {
    let m = map_file(path).ok()?;
    let f = object::File::parse(&*m).ok()?;
    f.build_id().ok().flatten().map(hex)
}

/// The build-id of `path` as process `pid` sees it: through /proc/PID/root
/// when the process lives in another mount namespace (a container).
pub fn build_id_in_ns(path: &str, pid: u32) -> Option<String> {
    let own = std::fs::read_link("/proc/self/ns/mnt").ok();
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    match (theirs, own) {
        (Some(a), Some(b)) if a != b => build_id(Path::new(&format!("/proc/{pid}/root{path}"))),
        _ => build_id(Path::new(path)),
    }
}

/// Build-ids of the given files; files that are not ELF or carry no build-id
/// are left out.
///
/// Each path is read in the mount namespace of the process that mapped it
/// (through /proc/PID/root when that process lives in another one, as in a
/// container), so the build-id is the one of the file the process ran.
pub fn build_ids_of<'a>(paths: impl Iterator<Item = (&'a str, u32)>) -> Vec<BuildId> {
    let mut v: Vec<BuildId> =
        paths.filter_map(|(p, pid)| build_id_in_ns(p, pid).map(|b| BuildId { path: p.to_string(), build_id: b })).collect();
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v
}

/// Demangle Rust and C++ names; other names are returned as they are.
pub fn demangle(name: &str) -> String {
    super::dwarf::demangle_any(name)
}

/// Load the function symbols of `path`. When `expect_build_id` is given and
/// the file's differs, the file is not used.
pub fn load(path: &Path, expect_build_id: Option<&str>) -> Result<ElfSymbols, ElfProblem> {
    let m = map_file(path)?;
    load_bytes(&m, expect_build_id)
}

/// As `load`, for an ELF image in memory (the vdso a trace carries).
pub fn load_bytes(data: &[u8], expect_build_id: Option<&str>) -> Result<ElfSymbols, ElfProblem> {
    let f = object::File::parse(data).map_err(|_| ElfProblem::NotElf)?;
    let bid = f.build_id().ok().flatten().map(hex);
    if let (Some(want), Some(found)) = (expect_build_id, bid.as_deref()) {
        if want != found {
            return Err(ElfProblem::BuildIdMismatch { recorded: want.to_string(), found: found.to_string() });
        }
    }
    let has_symtab = f.section_by_name(".symtab").is_some_and(|s| s.size() > 0);
    let mut funcs: Vec<(Symbol, Rank)> = Vec::new();
    let mut data_symbols: Vec<Symbol> = Vec::new();
    for s in f.symbols().chain(f.dynamic_symbols()) {
        if s.address() == 0 || s.is_undefined() {
            continue;
        }
        let Ok(name) = s.name() else { continue };
        if name.is_empty() {
            continue;
        }
        // perf also keeps labels (STT_NOTYPE) in executable sections, such
        // as ld.so's `_dl_start_user` (elf_sym__is_label); not ARM's `$x`.
        let label = matches!(s.kind(), SymbolKind::Label | SymbolKind::Unknown)
            && !name.starts_with('$')
            && s.section_index().and_then(|i| f.section_by_index(i).ok()).is_some_and(|sec| match sec.flags() {
                object::SectionFlags::Elf { sh_flags } => sh_flags & u64::from(object::elf::SHF_EXECINSTR) != 0,
                _ => false,
            });
        match s.kind() {
            _ if label => funcs.push((
                Symbol::new(s.address(), s.address() + s.size(), name.to_string()),
                Rank::of(name, s.size(), s.is_weak(), s.is_global()),
            )),
            SymbolKind::Text => funcs.push((
                Symbol::new(s.address(), s.address() + s.size(), name.to_string()),
                Rank::of(name, s.size(), s.is_weak(), s.is_global()),
            )),
            SymbolKind::Data | SymbolKind::Tls if s.size() > 0 => {
                data_symbols.push(Symbol::new(s.address(), s.address() + s.size(), name.to_string()))
            }
            _ => {}
        }
    }
    data_symbols.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)).then(a.name.cmp(&b.name)));
    data_symbols.dedup_by(|b, a| a.start == b.start && a.end == b.end);
    funcs.extend(plt_symbols(&f).into_iter().map(|s| {
        let r = Rank::of(&s.name, s.end - s.start, false, true);
        (s, r)
    }));
    // MiniDebugInfo (Fedora, CentOS, ...): a stripped binary keeps its
    // local function symbols in an xz-compressed ELF in .gnu_debugdata.
    if !has_symtab {
        if let Some(inner) = f.section_by_name(".gnu_debugdata").and_then(|s| s.data().ok()).and_then(mini_debuginfo) {
            if let Ok(d) = load_bytes(&inner, None) {
                for s in d.symbols {
                    let r = Rank::of(&s.name, s.end - s.start, false, false);
                    funcs.push((s, r));
                }
            }
        }
    }
    let symbols = choose_aliases(funcs);
    let segments = f
        .segments()
        .filter_map(|s| {
            let (off, size) = s.file_range();
            (size > 0).then_some((off, size, s.address()))
        })
        .collect();
    Ok(ElfSymbols { symbols, data_symbols, segments, build_id: bid, has_symtab, embedded: false })
}

/// `name@plt` for each PLT entry, as perf synthesizes them (x86-64): the
/// i-th .rela.plt relocation's symbol names the i-th entry of .plt.sec, or
/// of .plt after its 16-byte header.
fn plt_symbols(f: &object::File<'_>) -> Vec<Symbol> {
    if f.architecture() != object::Architecture::X86_64 || !f.is_64() || !f.is_little_endian() {
        return Vec::new();
    }
    let Some(rela) = f.section_by_name(".rela.plt") else { return Vec::new() };
    let dynsym: std::collections::HashMap<usize, &str> =
        f.dynamic_symbols().filter_map(|s| Some((s.index().0, s.name().ok().filter(|n| !n.is_empty())?))).collect();
    let Ok(relocs) = rela.data() else { return Vec::new() };
    let (base, first) = match (f.section_by_name(".plt.sec"), f.section_by_name(".plt")) {
        (Some(sec), _) => (sec.address(), 0),
        (None, Some(plt)) => (plt.address(), 16),
        _ => return Vec::new(),
    };
    const ENTRY: u64 = 16;
    relocs
        .chunks_exact(24)
        .enumerate()
        .filter_map(|(i, r)| {
            let info = u64::from_le_bytes(r[8..16].try_into().ok()?);
            let name = dynsym.get(&((info >> 32) as usize))?;
            let start = base + first + i as u64 * ENTRY;
            Some(Symbol::new(start, start + ENTRY, format!("{name}@plt")))
        })
        .collect()
}

/// The ELF image inside a .gnu_debugdata section (xz), when it is one.
fn mini_debuginfo(xz: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    lzma_rs::xz_decompress(&mut std::io::BufReader::new(xz), &mut out).ok()?;
    (out.starts_with(b"\x7fELF")).then_some(out)
}

/// perf's preference among symbols at one address (choose_best_symbol):
/// sized over zero-sized, strong over weak, global over local, fewer
/// leading underscores, the longer name; a smaller rank wins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    zero_size: bool,
    weak: bool,
    local: bool,
    underscores: usize,
    shorter: std::cmp::Reverse<usize>,
}

impl Rank {
    fn of(name: &str, size: u64, weak: bool, global: bool) -> Rank {
        Rank {
            zero_size: size == 0,
            weak,
            local: !global && !weak,
            underscores: name.bytes().take_while(|&b| b == b'_').count(),
            shorter: std::cmp::Reverse(name.len()),
        }
    }
}

/// One symbol per start address, chosen as perf chooses, sorted by start
/// (a total order: ties end with the name); zero-sized symbols (assembly)
/// then extend to the next symbol.
fn choose_aliases(mut funcs: Vec<(Symbol, Rank)>) -> Vec<Symbol> {
    // Equal ranks keep the first in table order, as perf's rb-tree walk
    // does (`arch__choose_best_symbol` keeps the earlier one): a stable sort.
    funcs.sort_by(|(a, ra), (b, rb)| a.start.cmp(&b.start).then(ra.cmp(rb)));
    funcs.dedup_by(|b, a| a.0.start == b.0.start);
    let mut symbols: Vec<Symbol> = funcs.into_iter().map(|(s, _)| s).collect();
    for i in 0..symbols.len() {
        if symbols[i].end == symbols[i].start {
            symbols[i].end = symbols.get(i + 1).map_or(symbols[i].start + 1, |n| n.start.max(symbols[i].start + 1));
        }
    }
    symbols
}

impl ElfSymbols {
    /// Use the function symbols of a detached debug file: its .symtab has
    /// the local functions a stripped binary lost. As perf does, the debug
    /// file's table replaces the binary's .dynsym rather than merging with
    /// it, so perf's alias rule sees the debug file's bindings (a local
    /// `__GI___execve` over the weak `execve`).
    pub fn merge_debug_symbols(&mut self, debug: ElfSymbols) {
        if debug.symbols.is_empty() {
            return;
        }
        self.symbols = debug.symbols;
        if !debug.data_symbols.is_empty() {
            self.data_symbols = debug.data_symbols;
        }
        self.has_symtab |= debug.has_symtab;
    }
}

impl ElfSymbols {
    /// Virtual address of a file offset (None outside every loaded segment).
    pub fn offset_to_vaddr(&self, off: u64) -> Option<u64> {
        self.segments.iter().find(|(o, sz, _)| off >= *o && off < o + sz).map(|(o, _, va)| off - o + va)
    }

    /// Virtual address of a file offset that may lie past the file-backed
    /// part of a segment (in its .bss): the segment whose file range starts
    /// at or below the offset and whose memory size covers it.
    pub fn segment_vaddr(&self, off: u64) -> Option<u64> {
        self.segments.iter().filter(|(o, _, _)| off >= *o).max_by_key(|(o, _, _)| *o).map(|(o, _, va)| off - o + va)
    }

    /// The data object containing `vaddr`.
    pub fn lookup_data(&self, vaddr: u64) -> Option<&Symbol> {
        let i = self.data_symbols.partition_point(|s| s.start <= vaddr);
        self.data_symbols[..i].iter().rev().take(8).find(|s| vaddr < s.end)
    }

    /// The function containing `vaddr`.
    pub fn lookup(&self, vaddr: u64) -> Option<&Symbol> {
        let i = self.symbols.partition_point(|s| s.start <= vaddr);
        // Walk back over earlier-starting symbols: a large symbol may
        // contain this address even when a smaller one ends before it.
        self.symbols[..i].iter().rev().take(8).find(|s| vaddr < s.end)
    }
}
