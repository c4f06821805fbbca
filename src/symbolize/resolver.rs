//! Resolving (mapping, address) pairs to functions. ELF files are loaded
//! once, lazily, on first use from any worker (the loaded tables are plain
//! data, so they are shared); callers resolve distinct addresses only.

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
}

impl Resolved {
    /// perf's Symbol column: "[.] name" for user, "[k] name" for kernel.
    pub fn sym_display(&self) -> String {
        let tag = if self.kernel { "[k]" } else { "[.]" };
        match &self.sym {
            Ok(n) => format!("{tag} {n}"),
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
        Resolver { dsos, build_ids, elf, kallsyms, symfs, kernel_maps: Vec::new(), kernel_maps_authoritative: false }
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
            if !dso.path.starts_with('/') {
                return Err(ElfProblem::Missing(dso.path.clone()));
            }
            let path = match &self.symfs {
                Some(root) => root.join(dso.path.trim_start_matches('/')),
                None => PathBuf::from(&dso.path),
            };
            elf::load(Path::new(&path), self.build_ids.get(&dso.path).map(String::as_str))
        })
        .as_ref()
        .map_err(Clone::clone)
    }

    /// Resolve a user-space address given the mapping that covers it.
    pub fn user(&self, hit: Option<MapHit>, addr: u64) -> Resolved {
        let Some(hit) = hit else {
            return Resolved { dso: "[unknown]".into(), sym: Err(Unresolved::NoMap), kernel: false, rel: addr };
        };
        let dso = self.dsos.get(hit.dso as usize);
        let name = dso.map_or("[unknown]".to_string(), |d| d.short_name().to_string());
        let sym = match self.symbols(hit.dso) {
            Ok(es) => match es.offset_to_vaddr(hit.file_offset) {
                Some(va) => match es.lookup(va) {
                    Some(s) => Ok(s.name.clone()),
                    None => Err(Unresolved::OutsideFunctions),
                },
                None => Err(Unresolved::OutsideFunctions),
            },
            Err(ElfProblem::BuildIdMismatch { .. }) => Err(Unresolved::BuildIdMismatch),
            Err(_) => Err(Unresolved::NoSymbols),
        };
        // perf prints the file-relative address of unresolved user code.
        Resolved { dso: name, sym, kernel: false, rel: hit.file_offset }
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
                Some(m) => Resolved {
                    dso: self.dsos.get(m.dso as usize).map_or_else(|| "[kernel.kallsyms]".into(), |d| kernel_dso_name(&d.path)),
                    sym: Err(Unresolved::NoKallsyms),
                    kernel: true,
                    rel: addr,
                },
                None if self.kernel_maps_authoritative => {
                    Resolved { dso: "[unknown]".into(), sym: Err(Unresolved::NoMap), kernel: true, rel: addr }
                }
                None => Resolved { dso: "[kernel.kallsyms]".into(), sym: Err(Unresolved::NoKallsyms), kernel: true, rel: addr },
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
            },
            None => Resolved { dso: "[kernel.kallsyms]".into(), sym: Err(Unresolved::OutsideFunctions), kernel: true, rel: addr },
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
