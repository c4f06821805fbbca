//! Symbols a trace carries (the SYMBOLS block), so that it reads the same
//! where the binaries are not: for each sampled DSO, the function and data
//! symbols covering the addresses its samples hit and, when asked
//! (`--embed-lines`), the file:line and inline frames of each hit address.
//! A file with the same build-id found on the analysis machine still wins
//! (it has every symbol and full DWARF).

use super::dwarf::Frame;
use super::elf::{ElfSymbols, Symbol};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Embedded {
    /// Sorted by path, then build-id.
    pub dsos: Vec<EmbeddedDso>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmbeddedDso {
    /// As the trace's mappings name it.
    pub path: String,
    pub build_id: Option<String>,
    /// (file offset, file size, virtual address) of each PT_LOAD segment.
    pub segments: Vec<(u64, u64, u64)>,
    /// Function symbols (start, end, name as stored), sorted by start.
    pub symbols: Vec<(u64, u64, String)>,
    /// Data symbols the data addresses hit, sorted by start.
    pub data_symbols: Vec<(u64, u64, String)>,
    /// DWARF frames (innermost first, as `Dwarf::frames`) of each hit
    /// virtual address, sorted by address; empty without --embed-lines.
    pub lines: Vec<(u64, Vec<Frame>)>,
}

impl EmbeddedDso {
    /// The symbols as a loaded ELF file would give them.
    pub fn to_symbols(&self) -> ElfSymbols {
        let conv = |v: &[(u64, u64, String)]| v.iter().map(|(s, e, n)| Symbol::new(*s, *e, n.clone())).collect();
        ElfSymbols {
            symbols: conv(&self.symbols),
            data_symbols: conv(&self.data_symbols),
            segments: self.segments.clone(),
            build_id: self.build_id.clone(),
            has_symtab: true,
            embedded: true,
        }
    }

    /// The embedded frames of `vaddr` (empty when it was not embedded).
    pub fn frames(&self, vaddr: u64) -> Vec<Frame> {
        match self.lines.binary_search_by_key(&vaddr, |(a, _)| *a) {
            Ok(i) => self.lines[i].1.clone(),
            Err(_) => Vec::new(),
        }
    }
}

impl Embedded {
    /// The entry for `path`; with a build-id on either side, they must agree.
    pub fn find(&self, path: &str, build_id: Option<&str>) -> Option<&EmbeddedDso> {
        let i = self.dsos.partition_point(|d| d.path.as_str() < path);
        self.dsos[i..].iter().take_while(|d| d.path == path).find(|d| match (build_id, d.build_id.as_deref()) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        })
    }

    pub fn symbol_count(&self) -> usize {
        self.dsos.iter().map(|d| d.symbols.len() + d.data_symbols.len()).sum()
    }

    pub fn line_count(&self) -> usize {
        self.dsos.iter().map(|d| d.lines.len()).sum()
    }
}
