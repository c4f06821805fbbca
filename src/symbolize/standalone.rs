//! `msen symbolize`: addr2line for a list of addresses of one ELF file,
//! in parallel (one DWARF reader per chunk and worker), output in input order.

use super::dwarf::{find_debug_file, Dwarf, Frame};
use super::elf;
use rayon::prelude::*;
use std::path::Path;

/// Symbolize `addrs` (virtual addresses of `exe`); frames innermost first.
/// Addresses DWARF does not cover fall back to the symbol table's function.
pub fn symbolize(exe: &Path, symfs: Option<&Path>, addrs: &[u64], demangle: bool) -> Result<Vec<Vec<Frame>>, String> {
    let what = "name the executable or shared library the addresses belong to (-e FILE)";
    let syms = elf::load(exe, None).map_err(|e| match e {
        elf::ElfProblem::NotElf => format!("{} is not an ELF file; {what}, not its source", exe.display()),
        elf::ElfProblem::Missing(_) if !exe.exists() => format!("{} does not exist; {what}", exe.display()),
        elf::ElfProblem::Missing(why) => format!("cannot read {}: {why}; {what}", exe.display()),
        elf::ElfProblem::BuildIdMismatch { .. } => format!("{}: {e:?}", exe.display()),
    })?;
    let debug = find_debug_file(exe, syms.build_id.as_deref(), symfs);
    let per = addrs.len().div_ceil(rayon::current_num_threads().max(1) * 4).clamp(256, 16384);
    let chunks: Vec<Vec<Vec<Frame>>> = addrs
        .par_chunks(per)
        .map(|chunk| {
            let dw = debug.as_deref().and_then(Dwarf::open);
            chunk
                .iter()
                .map(|&a| {
                    let mut f = dw.as_ref().map(|d| d.frames_with(a, demangle)).unwrap_or_default();
                    let symtab = || syms.lookup(a).map(|s| if demangle { s.full_name() } else { s.name.clone() });
                    match f.last_mut() {
                        Some(last) if last.function.is_none() => last.function = symtab(),
                        Some(_) => {}
                        None => f.push(Frame { function: symtab(), file: None, line: None, inlined: false }),
                    }
                    f
                })
                .collect()
        })
        .collect();
    Ok(chunks.into_iter().flatten().collect())
}

/// addr2line -f [-i] text for one address.
pub fn render(frames: &[Frame], inline: bool, out: &mut String) {
    let shown: &[Frame] = if inline || frames.is_empty() { frames } else { &frames[..1] };
    if shown.is_empty() {
        out.push_str("??\n??:0\n");
    }
    for f in shown {
        out.push_str(f.function.as_deref().unwrap_or("??"));
        out.push('\n');
        match (&f.file, f.line) {
            (Some(file), Some(l)) => out.push_str(&format!("{file}:{l}\n")),
            (Some(file), None) => out.push_str(&format!("{file}:?\n")),
            _ => out.push_str("??:0\n"),
        }
    }
}
