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
    /// Distinct code and data addresses the samples hit (what the table was
    /// cut to; for the bytes-per-address figure `info` prints).
    pub addresses: u64,
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

/// What unwinding a stack copy needs of one binary (--call-graph dwarf
/// captures): its CFI sections and where they and the text are loaded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmbeddedUnwind {
    pub path: String,
    pub build_id: Option<String>,
    /// (file offset, file size, virtual address) of each segment.
    pub segments: Vec<(u64, u64, u64)>,
    pub text_svma: Option<(u64, u64)>,
    pub eh_frame_svma: Option<(u64, u64)>,
    pub eh_frame_hdr_svma: Option<(u64, u64)>,
    pub got_svma: Option<(u64, u64)>,
    pub eh_frame: Vec<u8>,
    pub eh_frame_hdr: Vec<u8>,
    pub debug_frame: Vec<u8>,
}

/// The UNWIND block: length-prefixed little-endian fields, one entry after
/// another (section bytes are too big for JSON).
pub fn encode_unwind(list: &[EmbeddedUnwind]) -> Vec<u8> {
    let mut o = Vec::new();
    let bytes = |o: &mut Vec<u8>, b: &[u8]| {
        o.extend_from_slice(&(b.len() as u32).to_le_bytes());
        o.extend_from_slice(b);
    };
    let range = |o: &mut Vec<u8>, r: Option<(u64, u64)>| {
        o.push(r.is_some() as u8);
        let (a, b) = r.unwrap_or((0, 0));
        o.extend_from_slice(&a.to_le_bytes());
        o.extend_from_slice(&b.to_le_bytes());
    };
    for u in list {
        bytes(&mut o, u.path.as_bytes());
        bytes(&mut o, u.build_id.as_deref().unwrap_or("").as_bytes());
        o.extend_from_slice(&(u.segments.len() as u32).to_le_bytes());
        for (a, b, c) in &u.segments {
            for v in [a, b, c] {
                o.extend_from_slice(&v.to_le_bytes());
            }
        }
        for r in [u.text_svma, u.eh_frame_svma, u.eh_frame_hdr_svma, u.got_svma] {
            range(&mut o, r);
        }
        for b in [&u.eh_frame, &u.eh_frame_hdr, &u.debug_frame] {
            bytes(&mut o, b);
        }
    }
    o
}

pub fn decode_unwind(b: &[u8]) -> Result<Vec<EmbeddedUnwind>, String> {
    struct Cur<'a>(&'a [u8], usize);
    impl<'a> Cur<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            let end = self.1.checked_add(n).filter(|&e| e <= self.0.len()).ok_or("the unwind tables end early")?;
            let s = &self.0[self.1..end];
            self.1 = end;
            Ok(s)
        }
        fn u32(&mut self) -> Result<u32, String> {
            Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "short")?))
        }
        fn u64(&mut self) -> Result<u64, String> {
            Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| "short")?))
        }
        fn bytes(&mut self) -> Result<&'a [u8], String> {
            let n = self.u32()? as usize;
            self.take(n)
        }
        fn range(&mut self) -> Result<Option<(u64, u64)>, String> {
            let present = self.take(1)?[0] != 0;
            let (a, b) = (self.u64()?, self.u64()?);
            Ok(present.then_some((a, b)))
        }
    }
    let mut c = Cur(b, 0);
    let mut out = Vec::new();
    while c.1 < b.len() {
        let path = String::from_utf8_lossy(c.bytes()?).into_owned();
        let bid = String::from_utf8_lossy(c.bytes()?).into_owned();
        let n = c.u32()? as usize;
        if n > 64 {
            return Err(format!("{n} segments for {path}"));
        }
        let mut segments = Vec::with_capacity(n);
        for _ in 0..n {
            segments.push((c.u64()?, c.u64()?, c.u64()?));
        }
        let (text_svma, eh_frame_svma, eh_frame_hdr_svma, got_svma) = (c.range()?, c.range()?, c.range()?, c.range()?);
        let (eh_frame, eh_frame_hdr, debug_frame) = (c.bytes()?.to_vec(), c.bytes()?.to_vec(), c.bytes()?.to_vec());
        out.push(EmbeddedUnwind {
            path,
            build_id: (!bid.is_empty()).then_some(bid),
            segments,
            text_svma,
            eh_frame_svma,
            eh_frame_hdr_svma,
            got_svma,
            eh_frame,
            eh_frame_hdr,
            debug_frame,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwind_tables_round_trip_and_truncation_is_an_error() {
        let u = EmbeddedUnwind {
            path: "/usr/bin/x".into(),
            build_id: Some("ab".into()),
            segments: vec![(0, 10, 0x1000)],
            text_svma: Some((0x1000, 0x2000)),
            eh_frame: vec![1, 2, 3],
            ..Default::default()
        };
        let b = encode_unwind(&[u.clone(), u.clone()]);
        assert_eq!(decode_unwind(&b), Ok(vec![u.clone(), u]));
        assert!(decode_unwind(&b[..b.len() - 1]).is_err());
    }
}
