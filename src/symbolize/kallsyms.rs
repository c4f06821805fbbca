//! Kernel symbols from a /proc/kallsyms snapshot (the one captured in the
//! trace, so a trace reads the same on another kernel).

/// A kernel text symbol; `module` is None for the core kernel.
#[derive(Debug, Clone)]
pub struct KSym {
    pub start: u64,
    pub name: String,
    pub module: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Kallsyms {
    /// Sorted by start; a symbol ends where the next begins.
    syms: Vec<KSym>,
}

/// The kernel text range (`_text`, `_etext`) in /proc/kallsyms text; zeros
/// when the addresses are hidden (kptr_restrict) or absent.
pub fn text_range(text: &str) -> (u64, u64) {
    let mut r = (0, 0);
    for l in text.lines() {
        let mut it = l.split_whitespace();
        let (Some(a), Some(_), Some(name)) = (it.next(), it.next(), it.next()) else { continue };
        let slot = match name {
            "_text" => &mut r.0,
            "_etext" => &mut r.1,
            _ => continue,
        };
        *slot = u64::from_str_radix(a, 16).unwrap_or(0);
        if r.0 != 0 && r.1 != 0 {
            break;
        }
    }
    r
}

/// The running kernel's GNU build-id, from the notes it exports
/// (/sys/kernel/notes: namesz, descsz, type, "GNU\0", the id).
pub fn running_kernel_build_id() -> Option<String> {
    let b = std::fs::read("/sys/kernel/notes").ok()?;
    let mut p = 0usize;
    let u32_at = |o: usize| b.get(o..o + 4).map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]));
    while p + 12 <= b.len() {
        let (namesz, descsz, ty) = (u32_at(p)? as usize, u32_at(p + 4)? as usize, u32_at(p + 8)?);
        let name = p + 12;
        let desc = name + namesz.div_ceil(4) * 4;
        let end = desc + descsz.div_ceil(4) * 4;
        if ty == 3 && b.get(name..name + namesz)?.starts_with(b"GNU") {
            return Some(b.get(desc..desc + descsz)?.iter().map(|x| format!("{x:02x}")).collect());
        }
        p = end;
    }
    None
}

/// Kernel symbols for a recording whose trace carries none (a perf.data):
/// perf's build-id cache (~/.debug/[kernel.kallsyms]/ID/kallsyms), or this
/// machine's /proc/kallsyms when the recording kernel is the running one
/// (same build-id). None when neither matches.
pub fn for_build_id(id: &str) -> Option<(String, &'static str)> {
    if let Some(home) = std::env::var_os("HOME") {
        let p = std::path::Path::new(&home).join(".debug/[kernel.kallsyms]").join(id).join("kallsyms");
        if let Ok(t) = std::fs::read_to_string(&p) {
            return Some((t, "perf's build-id cache"));
        }
    }
    if running_kernel_build_id().as_deref() == Some(id) {
        // Unreadable addresses (not root, kptr_restrict) read as 0 and parse to nothing.
        let t = std::fs::read_to_string("/proc/kallsyms").ok()?;
        if t.lines().any(|l| !l.starts_with("0000000000000000")) {
            return Some((t, "/proc/kallsyms (the recording kernel is the running one)"));
        }
    }
    None
}

impl Kallsyms {
    pub fn parse(text: &str) -> Kallsyms {
        let mut syms: Vec<KSym> = text
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let addr = u64::from_str_radix(it.next()?, 16).ok()?;
                let ty = it.next()?;
                let name = it.next()?;
                if addr == 0 || !matches!(ty, "t" | "T" | "w" | "W") {
                    return None;
                }
                let module = it.next().map(|m| m.trim_matches(|c| c == '[' || c == ']').to_string());
                Some(KSym { start: addr, name: name.to_string(), module })
            })
            .collect();
        syms.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.name.cmp(&b.name)));
        syms.dedup_by_key(|s| s.start);
        Kallsyms { syms }
    }

    /// kallsyms text holding only the symbols that contain `addrs`, each
    /// followed by the next symbol so that its end stays known. This is what
    /// a trace stores: a few kilobytes instead of the whole table.
    pub fn subset_text(&self, addrs: impl Iterator<Item = u64>) -> String {
        let mut keep = std::collections::BTreeSet::new();
        for a in addrs {
            let i = self.syms.partition_point(|s| s.start <= a);
            if i > 0 {
                keep.insert(i - 1);
                if i < self.syms.len() {
                    keep.insert(i);
                }
            }
        }
        let mut out = String::new();
        for i in keep {
            let s = &self.syms[i];
            out.push_str(&format!("{:016x} t {}", s.start, s.name));
            if let Some(m) = &s.module {
                out.push_str(&format!("\t[{m}]"));
            }
            out.push('\n');
        }
        out
    }

    /// Address of the lowest symbol.
    pub fn first_start(&self) -> Option<u64> {
        self.syms.first().map(|s| s.start)
    }

    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    /// The symbol containing `addr` (the last one starting at or below it).
    pub fn lookup(&self, addr: u64) -> Option<&KSym> {
        let i = self.syms.partition_point(|s| s.start <= addr);
        if i == 0 {
            return None;
        }
        self.syms.get(i - 1)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    #[test]
    fn lookup_and_modules() {
        let k = Kallsyms::parse(
            "ffffffff81000000 T _stext\nffffffff81000100 t do_one\nffffffff81000200 D some_data\nffffffffc0000000 t nf_hook\t[nf_tables]\n",
        );
        assert_eq!(k.lookup(0xffffffff81000150).unwrap().name, "do_one");
        assert_eq!(k.lookup(0xffffffffc0000010).unwrap().module.as_deref(), Some("nf_tables"));
        assert!(k.lookup(0x1000).is_none());
    }
}
