//! DWARF line and inline information through addr2line (gimli), and finding
//! the file that holds it: the binary itself, the build-id tree under
//! /usr/lib/debug, or the file its .gnu_debuglink names.
//!
//! addr2line's Loader is not Sync and builds its lookup tables lazily, so the
//! callers resolve distinct addresses grouped by binary, one Loader per group
//! and worker (see `Resolver::dwarf_batch`).

use object::{Object, ObjectSection};
use std::path::{Path, PathBuf};

/// One frame at an address: the innermost first, then the functions it was
/// inlined into, ending with the real (outer) function.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Frame {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// True for every frame but the last (the physical function).
    pub inlined: bool,
}

impl Frame {
    /// perf's srcline text: "file.c:123" (basename), "??:0" when unknown.
    pub fn srcline(&self) -> String {
        match (&self.file, self.line) {
            (Some(f), Some(l)) => format!("{}:{l}", f.rsplit('/').next().unwrap_or(f)),
            (Some(f), None) => format!("{}:0", f.rsplit('/').next().unwrap_or(f)),
            _ => "??:0".into(),
        }
    }
}

fn has_section(path: &Path, name: &str) -> bool {
    let Ok(f) = std::fs::File::open(path) else { return false };
    // SAFETY: read-only map of a file we only read.
    let Ok(m) = (unsafe { memmap2::Mmap::map(&f) }) else { return false };
    let Ok(o) = object::File::parse(&*m) else { return false };
    o.section_by_name(name).is_some_and(|s| s.size() > 0)
}

fn has_dwarf(path: &Path) -> bool {
    has_section(path, ".debug_info")
}

fn debuglink(path: &Path) -> Option<String> {
    let f = std::fs::File::open(path).ok()?;
    // SAFETY: read-only map of a file we only read.
    let m = unsafe { memmap2::Mmap::map(&f) }.ok()?;
    let o = object::File::parse(&*m).ok()?;
    let (name, _crc) = o.gnu_debuglink().ok()??;
    Some(String::from_utf8_lossy(name).into_owned())
}

/// Where the DWARF of `binary` (a path already mapped into `root` when a
/// symfs is in use) lives, if anywhere. `build_id` is the recorded one.
pub fn find_debug_file(binary: &Path, build_id: Option<&str>, root: Option<&Path>) -> Option<PathBuf> {
    find_companion(binary, build_id, root, &has_dwarf)
}

/// The detached debug file holding the .symtab a stripped `binary` lost
/// (by build-id under /usr/lib/debug, or by .gnu_debuglink), as perf finds it.
pub fn find_symtab_file(binary: &Path, build_id: Option<&str>, root: Option<&Path>) -> Option<PathBuf> {
    find_companion(binary, build_id, root, &|p: &Path| p != binary && has_section(p, ".symtab"))
}

fn find_companion(binary: &Path, build_id: Option<&str>, root: Option<&Path>, has_dwarf: &dyn Fn(&Path) -> bool) -> Option<PathBuf> {
    if has_dwarf(binary) {
        return Some(binary.to_path_buf());
    }
    let under = |p: &str| match root {
        Some(r) => r.join(p.trim_start_matches('/')),
        None => PathBuf::from(p),
    };
    if let Some(id) = build_id.filter(|id| id.len() > 2) {
        let p = under(&format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]));
        if has_dwarf(&p) {
            return Some(p);
        }
    }
    if let Some(link) = debuglink(binary) {
        let dir = binary.parent().unwrap_or(Path::new("/"));
        let rel_dir = dir.strip_prefix(root.unwrap_or(Path::new("/"))).unwrap_or(dir);
        let candidates =
            [dir.join(&link), dir.join(".debug").join(&link), under(&format!("/usr/lib/debug/{}/{}", rel_dir.display(), link))];
        for c in candidates {
            if has_dwarf(&c) {
                return Some(c);
            }
        }
    }
    None
}

/// A DWARF reader for one debug file, for one worker.
pub struct Dwarf {
    loader: addr2line::Loader,
}

impl std::fmt::Debug for Dwarf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dwarf")
    }
}

impl Dwarf {
    pub fn open(path: &Path) -> Option<Dwarf> {
        addr2line::Loader::new(path).ok().map(|loader| Dwarf { loader })
    }

    /// Frames at a virtual address of the binary, innermost first; empty
    /// when the DWARF does not cover it.
    pub fn frames(&self, vaddr: u64) -> Vec<Frame> {
        self.frames_with(vaddr, true)
    }

    /// As `frames`; `demangle` false keeps linkage names as stored.
    pub fn frames_with(&self, vaddr: u64, demangle: bool) -> Vec<Frame> {
        let mut out = Vec::new();
        if let Ok(mut it) = self.loader.find_frames(vaddr) {
            while let Ok(Some(f)) = it.next() {
                let function = f.function.as_ref().and_then(|n| {
                    if demangle {
                        n.demangle().ok().map(|s| s.into_owned())
                    } else {
                        n.raw_name().ok().map(|s| s.into_owned())
                    }
                });
                let (file, line) = match &f.location {
                    Some(l) => (l.file.map(str::to_string), l.line),
                    None => (None, None),
                };
                out.push(Frame { function, file, line, inlined: true });
            }
        }
        if out.is_empty() {
            if let Ok(Some(l)) = self.loader.find_location(vaddr) {
                out.push(Frame { function: None, file: l.file.map(str::to_string), line: l.line, inlined: false });
            }
        }
        if let Some(last) = out.last_mut() {
            last.inlined = false;
        }
        out
    }
}

/// Demangle C++ (Itanium) and Rust names; others are returned unchanged.
pub fn demangle_any(name: &str) -> String {
    demangle_with(name, cpp_demangle::DemangleOptions::default())
}

/// perf's symbol names: C++ without the parameter list (perf demangles with
/// DMGL_NO_OPTS unless -v), Rust without the hash.
pub fn demangle_no_params(name: &str) -> String {
    let mut s = demangle_with(name, cpp_demangle::DemangleOptions::default().no_params().no_return_type());
    // cpp_demangle keeps the member function's cv- and ref-qualifiers
    // ("Foo::bar &", "...::operator() const"); libiberty drops them with
    // the parameters. No name without parameters ends in one otherwise.
    while let Some(cut) = [" const", " volatile", " &&", " &"].iter().find_map(|q| s.strip_suffix(q).map(str::len)) {
        s.truncate(cut);
    }
    s
}

fn demangle_with(name: &str, opts: cpp_demangle::DemangleOptions) -> String {
    if let Ok(d) = rustc_demangle::try_demangle(name) {
        return format!("{d:#}");
    }
    if name.starts_with("_Z") {
        if let Ok(sym) = cpp_demangle::Symbol::new(name) {
            if let Ok(s) = sym.demangle(&opts) {
                return gnu_literals(s);
            }
        }
    }
    name.to_string()
}

/// Integer template arguments as libiberty (c++filt, perf) prints them:
/// `0u`, `1ul`, `-2l` where cpp_demangle prints `(unsigned int)0`.
fn gnu_literals(s: String) -> String {
    const CASTS: [(&str, &str); 6] = [
        ("(unsigned long long)", "ull"),
        ("(unsigned long)", "ul"),
        ("(unsigned int)", "u"),
        ("(long long)", "ll"),
        ("(long)", "l"),
        ("(int)", ""),
    ];
    if !s.contains(")") {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    'scan: while !rest.is_empty() {
        for (cast, suffix) in CASTS {
            if let Some(after) = rest.strip_prefix(cast) {
                let digits = after.bytes().take_while(|b| b.is_ascii_digit() || *b == b'-').count();
                if digits > 0 {
                    out.push_str(&after[..digits]);
                    out.push_str(suffix);
                    rest = &after[digits..];
                    continue 'scan;
                }
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_without_parameters_are_what_perf_prints() {
        // perf (libiberty, DMGL_NO_OPTS) drops the outermost parameter list
        // and its cv-qualifiers; a local name's enclosing function keeps its
        // own parameters (a lambda in RunOne is RunOne(...)::{lambda...}).
        for (m, want) in [
            ("_ZNK3Foo3barEv", "Foo::bar"),
            ("_ZNKR3Foo3barEv", "Foo::bar"),
            ("_ZNVK3Foo3barEi", "Foo::bar"),
            ("_ZNKSt6vectorIiSaIiEE4sizeEv", "std::vector<int, std::allocator<int> >::size"),
            ("_ZZNK3Foo3barEvE1x", "Foo::bar() const::x"),
            (
                "_ZZN6fuzzer6Fuzzer6RunOneEPKhmbPNS_9InputInfoEbPbENKUljE_clEj",
                "fuzzer::Fuzzer::RunOne(unsigned char const*, unsigned long, bool, fuzzer::InputInfo*, bool, bool*)::{lambda(unsigned int)#1}::operator()",
            ),
        ] {
            assert_eq!(demangle_no_params(m), want, "{m}");
        }
        assert_eq!(
            demangle_any("_ZZN6fuzzer6Fuzzer6RunOneEPKhmbPNS_9InputInfoEbPbENKUljE_clEj"),
            "fuzzer::Fuzzer::RunOne(unsigned char const*, unsigned long, bool, fuzzer::InputInfo*, bool, bool*)::{lambda(unsigned int)#1}::operator()(unsigned int) const"
        );
    }
}
