//! PMU discovery from sysfs: `/sys/bus/event_source/devices/*/{type,format/*,
//! events/*,caps/*}`, the way perf reads it.
//!
//! `MSEN_SYSFS_PMUS=DIR` replaces the devices directory, so tests (and users
//! preparing attrs for another machine with `record --print-attrs`) can
//! describe any PMU set. perf reads the real path only; the differential
//! tests bind-mount the same directory over it in a private mount namespace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which attr word a format field lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigWord {
    Config,
    Config1,
    Config2,
    Config3,
}

/// One format field: a name mapped to bit ranges (`config:0-7,21`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub word: ConfigWord,
    /// (low bit, high bit), inclusive, in the order written.
    pub ranges: Vec<(u32, u32)>,
}

impl Format {
    /// Parse `config1:0-15` or `config:0-7,32-35`.
    pub fn parse(s: &str) -> Option<Format> {
        let (word, bits) = s.trim().split_once(':')?;
        let word = match word {
            "config" => ConfigWord::Config,
            "config1" => ConfigWord::Config1,
            "config2" => ConfigWord::Config2,
            "config3" => ConfigWord::Config3,
            _ => return None,
        };
        let mut ranges = Vec::new();
        for r in bits.split(',') {
            let (lo, hi) = match r.split_once('-') {
                Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
                None => {
                    let b: u32 = r.trim().parse().ok()?;
                    (b, b)
                }
            };
            if lo > hi || hi > 63 {
                return None;
            }
            ranges.push((lo, hi));
        }
        Some(Format { word, ranges })
    }

    /// Total width in bits.
    pub fn width(&self) -> u32 {
        self.ranges.iter().map(|(lo, hi)| hi - lo + 1).sum()
    }

    /// Scatter `value` into the field's bits (low bits of the value fill the
    /// first range first, as perf's pmu_format_value does).
    pub fn place(&self, value: u64) -> u64 {
        let mut out = 0u64;
        let mut v = value;
        for &(lo, hi) in &self.ranges {
            let w = hi - lo + 1;
            let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
            out |= (v & mask) << lo;
            v = if w == 64 { 0 } else { v >> w };
        }
        out
    }
}

/// One PMU as sysfs describes it.
#[derive(Debug, Clone, Default)]
pub struct Pmu {
    pub name: String,
    pub type_: u32,
    pub formats: BTreeMap<String, Format>,
    /// Event aliases: name -> term string (`event=0xcd,umask=0x1,ldlat=3`).
    pub events: BTreeMap<String, String>,
    pub caps: BTreeMap<String, String>,
}

impl Pmu {
    /// caps/max_precise, when present.
    pub fn max_precise(&self) -> Option<u8> {
        self.caps.get("max_precise").and_then(|v| v.trim().parse().ok())
    }

    /// An event alias, matched case-insensitively as perf does.
    pub fn alias(&self, name: &str) -> Option<&str> {
        self.events.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The PMUs of this machine (or of the directory `MSEN_SYSFS_PMUS` names).
#[derive(Debug, Clone, Default)]
pub struct Pmus {
    pub root: PathBuf,
    /// Sorted by name.
    pub list: Vec<Pmu>,
}

/// The sysfs directory that lists PMUs.
pub fn devices_dir() -> PathBuf {
    std::env::var_os("MSEN_SYSFS_PMUS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/sys/bus/event_source/devices"))
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

fn read_dir_map(dir: &Path, mut f: impl FnMut(String, String)) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // Per-event .scale/.unit/.snapshot/.per-pkg files are not aliases.
        if name.contains('.') {
            continue;
        }
        if let Some(v) = read_trim(&e.path()) {
            f(name, v);
        }
    }
}

impl Pmus {
    pub fn discover() -> Pmus {
        Self::read(&devices_dir())
    }

    pub fn read(root: &Path) -> Pmus {
        let mut list = Vec::new();
        if let Ok(rd) = std::fs::read_dir(root) {
            for e in rd.flatten() {
                let dir = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(type_) = read_trim(&dir.join("type")).and_then(|t| t.parse().ok()) else { continue };
                let mut p = Pmu { name, type_, ..Default::default() };
                read_dir_map(&dir.join("format"), |k, v| {
                    if let Some(f) = Format::parse(&v) {
                        p.formats.insert(k, f);
                    }
                });
                read_dir_map(&dir.join("events"), |k, v| {
                    p.events.insert(k, v);
                });
                read_dir_map(&dir.join("caps"), |k, v| {
                    p.caps.insert(k, v);
                });
                list.push(p);
            }
        }
        list.sort_by(|a, b| a.name.cmp(&b.name));
        Pmus { root: root.to_path_buf(), list }
    }

    pub fn get(&self, name: &str) -> Option<&Pmu> {
        self.list.iter().find(|p| p.name == name)
    }

    /// The core PMUs that count hardware events: `cpu`, or on hybrid Intel
    /// `cpu_core` and `cpu_atom`, or Arm's `armv8_*`/`armv9_*` PMUs.
    pub fn core(&self) -> Vec<&Pmu> {
        let hybrid: Vec<&Pmu> = self.list.iter().filter(|p| p.name == "cpu_core" || p.name == "cpu_atom").collect();
        if !hybrid.is_empty() {
            return hybrid;
        }
        if let Some(c) = self.get("cpu") {
            return vec![c];
        }
        self.list.iter().filter(|p| p.name.starts_with("armv8_") || p.name.starts_with("armv9_")).collect()
    }

    /// True on a hybrid machine (hardware events open once per core PMU).
    pub fn is_hybrid(&self) -> bool {
        self.get("cpu_core").is_some() || self.get("cpu_atom").is_some()
    }

    pub fn names(&self) -> Vec<String> {
        self.list.iter().map(|p| p.name.clone()).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_place_bits() {
        let f = Format::parse("config:0-7").unwrap();
        assert_eq!(f.place(0xcd), 0xcd);
        let f = Format::parse("config:8-15").unwrap();
        assert_eq!(f.place(0x1), 0x100);
        let f = Format::parse("config1:0-15").unwrap();
        assert_eq!((f.word, f.place(30)), (ConfigWord::Config1, 30));
        let f = Format::parse("config:0-7,32-35").unwrap();
        assert_eq!(f.place(0x1ff), 0xff | (1 << 32));
        assert_eq!(f.width(), 12);
        assert!(Format::parse("config:9-3").is_none());
        assert!(Format::parse("bogus:1").is_none());
    }
}
