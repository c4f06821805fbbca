//! The record-columns transform applied to perf-record blocks before zstd.
//!
//! Consecutive samples of one event differ in few bits: the same id, pid,
//! cpu and often ip and call chain; a time that grows by about one period.
//! zstd finds repeated bytes, not arithmetic progressions, and pays for every
//! match it encodes, so we reshape the block before compressing it:
//!
//! 1. Records are grouped by (type, size); each body word becomes its
//!    wrapping difference from the same word of the previous record of its
//!    group (unchanged words become 0, times become small deltas).
//! 2. Each group's bodies are stored byte-column by byte-column ("shuffled"):
//!    byte k of every record, then byte k+1, ... so the constant high bytes
//!    of a column form long zero runs and the varying low bytes sit together.
//! 3. The order of records (a group id per record) and each record's misc
//!    field are stored as their own columns.
//!
//! ```text
//!  raw:     [h|id|ip |pt|t=1000|cpu|p]  [h|id|ip'|pt|t=1251|cpu|p]  ...
//!  delta:   [h|id|ip |pt|t=1000|cpu|p]  [h| 0|ip'-ip| 0|251| 0 | 0]  ...
//!  stored:  counts | group table | group ids | miscs | bytes col 0 of group 0
//!           (r0 r1 r2 ...) | col 1 ... | next group ... | tail
//! ```
//!
//! Layout (little-endian): n_records u32, n_groups u32, tail_len u32, then
//! n_groups x (type u32, size u32), n_records x group u16, n_records x misc
//! u16, the shuffled bodies of each group in group order, the tail. Bytes
//! that do not split into 8-aligned records (never in msen's own blocks) are
//! the tail, kept verbatim. The transform is exactly reversible; `decode`
//! checks every length and returns None on inconsistent input.

use std::collections::HashMap;

fn header(b: &[u8]) -> Option<(u32, u16, usize)> {
    if b.len() < 8 {
        return None;
    }
    let kind = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let misc = u16::from_le_bytes([b[4], b[5]]);
    let size = u16::from_le_bytes([b[6], b[7]]) as usize;
    (size >= 8 && size % 8 == 0 && size <= b.len()).then_some((kind, misc, size))
}

fn word(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

/// Forward transform of a run of little-endian perf records.
///
/// Two passes, every buffer allocated once at its final size: the headers
/// first (groups, order, miscs and each group's count), then the word
/// deltas, stored straight into their byte columns a tile of records at a
/// time (a tile's bodies stay in L1 while its bytes go to every column).
pub fn encode(raw: &[u8]) -> Vec<u8> {
    let mut groups: Vec<(u32, usize)> = Vec::new();
    let mut group_of: HashMap<(u32, usize), u16> = HashMap::new();
    let mut order: Vec<u16> = Vec::new();
    let mut miscs: Vec<u16> = Vec::new();
    let mut count: Vec<usize> = Vec::new();
    let mut pos = 0;
    while let Some((kind, misc, size)) = header(&raw[pos..]) {
        let g = match group_of.get(&(kind, size)) {
            Some(&g) => g,
            None => {
                if groups.len() == u16::MAX as usize {
                    break;
                }
                let g = groups.len() as u16;
                groups.push((kind, size));
                group_of.insert((kind, size), g);
                count.push(0);
                g
            }
        };
        count[g as usize] += 1;
        order.push(g);
        miscs.push(misc);
        pos += size;
    }
    let tail = &raw[pos..];
    let head = 12 + groups.len() * 8 + order.len() * 4;
    let mut out = Vec::with_capacity(raw.len() + 12 + groups.len() * 8);
    out.extend_from_slice(&(order.len() as u32).to_le_bytes());
    out.extend_from_slice(&(groups.len() as u32).to_le_bytes());
    out.extend_from_slice(&(tail.len() as u32).to_le_bytes());
    for &(kind, size) in &groups {
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&(size as u32).to_le_bytes());
    }
    for g in &order {
        out.extend_from_slice(&g.to_le_bytes());
    }
    for m in &miscs {
        out.extend_from_slice(&m.to_le_bytes());
    }
    debug_assert_eq!(out.len(), head);
    // Each group's column region: blen columns of count[g] bytes.
    let mut base = Vec::with_capacity(groups.len());
    let mut p = head;
    for (g, &(_, size)) in groups.iter().enumerate() {
        base.push(p);
        p += count[g] * (size - 8);
    }
    out.resize(p, 0);
    // Per group: the previous record, records so far, and a tile of delta
    // bodies not yet stored in the columns.
    const TILE: usize = 256;
    struct Run {
        prev: usize,
        done: usize,
        tile: Vec<u8>,
    }
    let mut runs: Vec<Run> =
        groups.iter().map(|&(_, size)| Run { prev: usize::MAX, done: 0, tile: Vec::with_capacity(TILE * (size - 8)) }).collect();
    let store = |out: &mut [u8], r: &mut Run, g: usize, blen: usize| {
        // Header-only records (size 8) have no columns.
        let Some(n) = r.tile.len().checked_div(blen) else { return };
        let (at, cnt) = (base[g] + r.done, count[g]);
        // Eight records' word w at a time: one 8x8 byte transpose gives
        // its 8 byte columns' next 8 bytes.
        let full = n / 8 * 8;
        for w in 0..blen / 8 {
            for i0 in (0..full).step_by(8) {
                let mut m = [0u64; 8];
                for (i, x) in m.iter_mut().enumerate() {
                    *x = word(&r.tile, (i0 + i) * blen + w * 8);
                }
                transpose8(&mut m);
                for (j, x) in m.iter().enumerate() {
                    let c = at + (w * 8 + j) * cnt + i0;
                    out[c..c + 8].copy_from_slice(&x.to_le_bytes());
                }
            }
            for i in full..n {
                for j in 0..8 {
                    out[at + (w * 8 + j) * cnt + i] = r.tile[i * blen + w * 8 + j];
                }
            }
        }
        r.done += n;
        r.tile.clear();
    };
    let mut pos = 0;
    for &g in &order {
        let gi = g as usize;
        let size = groups[gi].1;
        let blen = size - 8;
        let rec = &raw[pos..pos + size];
        let r = &mut runs[gi];
        if r.prev == usize::MAX {
            r.tile.extend_from_slice(&rec[8..]);
        } else {
            let prev = &raw[r.prev..r.prev + size];
            for i in (8..size).step_by(8) {
                r.tile.extend_from_slice(&word(rec, i).wrapping_sub(word(prev, i)).to_le_bytes());
            }
        }
        r.prev = pos;
        pos += size;
        if r.tile.len() == TILE * blen {
            store(&mut out, r, gi, blen);
        }
    }
    for (gi, r) in runs.iter_mut().enumerate() {
        let blen = groups[gi].1 - 8;
        if !r.tile.is_empty() {
            store(&mut out, r, gi, blen);
        }
    }
    out.extend_from_slice(tail);
    out
}

/// Transpose an 8x8 byte matrix held as 8 little-endian rows: byte j of
/// row i goes to byte i of row j (three rounds of block swaps).
fn transpose8(m: &mut [u64; 8]) {
    for (d, mask) in [(32u32, 0x0000_0000_ffff_ffffu64), (16, 0x0000_ffff_0000_ffff), (8, 0x00ff_00ff_00ff_00ff)] {
        let step = d as usize / 8;
        for i in 0..8 {
            if i & step == 0 {
                let t = ((m[i] >> d) ^ m[i + step]) & mask;
                m[i] ^= t << d;
                m[i + step] ^= t;
            }
        }
    }
}

/// Eight bytes from `b` at `o` (the caller keeps `o + 8 <= b.len()`).
fn rd64(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes)
}

/// Word `k / 8` (bytes k..k+8) of records r..r+16, from byte columns of
/// `cnt` bytes each (column c holds byte c of every record): a 16x8 byte
/// transpose in three rounds of SSE2 unpacks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn words16(src: &[u8], cnt: usize, r: usize, k: usize) -> [u64; 16] {
    use std::arch::x86_64::*;
    let col = |c: usize| {
        let o = (k + c) * cnt + r;
        _mm_set_epi64x(rd64(src, o + 8) as i64, rd64(src, o) as i64)
    };
    let a: [__m128i; 8] = std::array::from_fn(col);
    // Bytes of column pairs: u16 lane j = record j's (c, c+1).
    let b = [
        _mm_unpacklo_epi8(a[0], a[1]),
        _mm_unpackhi_epi8(a[0], a[1]),
        _mm_unpacklo_epi8(a[2], a[3]),
        _mm_unpackhi_epi8(a[2], a[3]),
        _mm_unpacklo_epi8(a[4], a[5]),
        _mm_unpackhi_epi8(a[4], a[5]),
        _mm_unpacklo_epi8(a[6], a[7]),
        _mm_unpackhi_epi8(a[6], a[7]),
    ];
    // u32 lanes: four columns of records 4q..4q+4, for columns 0-3 and 4-7.
    let lo =
        [_mm_unpacklo_epi16(b[0], b[2]), _mm_unpackhi_epi16(b[0], b[2]), _mm_unpacklo_epi16(b[1], b[3]), _mm_unpackhi_epi16(b[1], b[3])];
    let hi =
        [_mm_unpacklo_epi16(b[4], b[6]), _mm_unpackhi_epi16(b[4], b[6]), _mm_unpacklo_epi16(b[5], b[7]), _mm_unpackhi_epi16(b[5], b[7])];
    let mut w = [0u64; 16];
    for q in 0..4 {
        // u64 lanes: whole words of records 4q, 4q+1 and 4q+2, 4q+3.
        let e0 = _mm_unpacklo_epi32(lo[q], hi[q]);
        let e1 = _mm_unpackhi_epi32(lo[q], hi[q]);
        w[4 * q] = _mm_cvtsi128_si64(e0) as u64;
        w[4 * q + 1] = _mm_cvtsi128_si64(_mm_unpackhi_epi64(e0, e0)) as u64;
        w[4 * q + 2] = _mm_cvtsi128_si64(e1) as u64;
        w[4 * q + 3] = _mm_cvtsi128_si64(_mm_unpackhi_epi64(e1, e1)) as u64;
    }
    w
}

/// The same without SSE2: two 8x8 transposes.
#[cfg(any(not(target_arch = "x86_64"), test))]
fn words16_portable(src: &[u8], cnt: usize, r: usize, k: usize) -> [u64; 16] {
    let mut w = [0u64; 16];
    for half in 0..2 {
        let mut m: [u64; 8] = std::array::from_fn(|c| rd64(src, (k + c) * cnt + r + 8 * half));
        transpose8(&mut m);
        w[8 * half..8 * half + 8].copy_from_slice(&m);
    }
    w
}

#[cfg(not(target_arch = "x86_64"))]
use words16_portable as words16;

/// `words16` where it is safe to call.
fn words16_here(src: &[u8], cnt: usize, r: usize, k: usize) -> [u64; 16] {
    // SAFETY: SSE2 is part of every x86_64 CPU (the target's baseline);
    // elsewhere this is the portable function. Memory is only read through
    // bounds-checked slices.
    #[allow(unused_unsafe)]
    unsafe {
        words16(src, cnt, r, k)
    }
}

/// Write a group's records from their byte columns (`cnt` bytes each) to
/// `out`, record r's `blen` bytes (a multiple of 8) at `at[r]`, undoing the
/// deltas on the way: each word is the running sum of its column. 16
/// records by 8 columns at a time as a byte-matrix transpose, the last
/// `cnt % 16` records byte by byte. One pass: the records are written once
/// and never read back.
fn unshuffle_into(src: &[u8], blen: usize, at: &[usize], out: &mut [u8]) {
    let cnt = at.len();
    let mut sum = vec![0u64; blen / 8];
    let whole = cnt - cnt % 16;
    // Tiles of TILE records: per word, 8 columns are read as 8 sequential
    // streams while the tile's records (a few KB) stay in cache. Going over
    // all words for every 16 records read one stream per byte column (over
    // a hundred), more than the prefetchers follow.
    const TILE: usize = 256;
    for t in (0..whole).step_by(TILE) {
        let end = (t + TILE).min(whole);
        for (wi, acc) in sum.iter_mut().enumerate() {
            let k = wi * 8;
            for r in (t..end).step_by(16) {
                for (&o, d) in at[r..r + 16].iter().zip(words16_here(src, cnt, r, k)) {
                    *acc = acc.wrapping_add(d);
                    out[o + k..o + k + 8].copy_from_slice(&acc.to_le_bytes());
                }
            }
        }
    }
    for (r, &o) in at.iter().enumerate().skip(whole) {
        for (wi, acc) in sum.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            for (j, x) in b.iter_mut().enumerate() {
                *x = src[(wi * 8 + j) * cnt + r];
            }
            *acc = acc.wrapping_add(u64::from_le_bytes(b));
            out[o + wi * 8..o + wi * 8 + 8].copy_from_slice(&acc.to_le_bytes());
        }
    }
}

/// Inverse of `encode`; None when the input is not a valid encoding.
pub fn decode(enc: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    decode_into(enc, &mut out)?;
    Some(out)
}

/// `decode` into `out` (cleared first), so a caller can reuse its pages.
pub fn decode_into(enc: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let rd32 = |o: usize| enc.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let n = rd32(0)? as usize;
    let ng = rd32(4)? as usize;
    let tail_len = rd32(8)? as usize;
    // Every group holds a record and every record takes 4 bytes of columns:
    // anything else is damage (and must not drive allocations).
    if ng > n || n.checked_mul(4)? > enc.len() || ng > u16::MAX as usize + 1 {
        return None;
    }
    let mut pos = 12usize;
    let mut groups = Vec::with_capacity(ng);
    for _ in 0..ng {
        let kind = rd32(pos)?;
        let size = rd32(pos + 4)? as usize;
        if size < 8 || size % 8 != 0 || size > u16::MAX as usize {
            return None;
        }
        groups.push((kind, size));
        pos += 8;
    }
    let order_at = pos;
    let misc_at = order_at.checked_add(n.checked_mul(2)?)?;
    let bodies_at = misc_at.checked_add(n.checked_mul(2)?)?;
    if bodies_at > enc.len() {
        return None;
    }
    let rd16 = |o: usize| u16::from_le_bytes([enc[o], enc[o + 1]]);
    let mut count = vec![0usize; ng];
    for i in 0..n {
        let g = rd16(order_at + 2 * i) as usize;
        *count.get_mut(g)? += 1;
    }
    // Where each group's shuffled bodies start.
    let mut start = Vec::with_capacity(ng);
    let mut p = bodies_at;
    for (g, &(_, size)) in groups.iter().enumerate() {
        start.push(p);
        p = p.checked_add(count[g].checked_mul(size - 8)?)?;
    }
    if p.checked_add(tail_len)? != enc.len() {
        return None;
    }
    // Each record's place in the output (records in stored order), and
    // each group's records' body offsets, in the group's order.
    let mut at: Vec<Vec<usize>> = count.iter().map(|&c| Vec::with_capacity(c)).collect();
    let total: usize = groups.iter().zip(&count).map(|(&(_, s), &c)| s * c).sum::<usize>() + tail_len;
    out.clear();
    out.resize(total, 0);
    let mut o = 0usize;
    for i in 0..n {
        let g = rd16(order_at + 2 * i) as usize;
        let misc = rd16(misc_at + 2 * i);
        let (kind, size) = groups[g];
        out[o..o + 4].copy_from_slice(&kind.to_le_bytes());
        out[o + 4..o + 6].copy_from_slice(&misc.to_le_bytes());
        out[o + 6..o + 8].copy_from_slice(&(size as u16).to_le_bytes());
        at[g].push(o + 8);
        o += size;
    }
    for (g, &(_, size)) in groups.iter().enumerate() {
        let blen = size - 8;
        let src = &enc[start[g]..start[g] + blen * count[g]];
        unshuffle_into(src, blen, &at[g], out);
    }
    out[o..].copy_from_slice(&enc[enc.len() - tail_len..]);
    Some(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::perf::record::{build_record, RecordType};

    /// The first, one-record-at-a-time encoder: the format's reference.
    fn encode_reference(raw: &[u8]) -> Vec<u8> {
        let mut groups: Vec<(u32, usize)> = Vec::new();
        let mut group_of: HashMap<(u32, usize), u16> = HashMap::new();
        let mut order: Vec<u16> = Vec::new();
        let mut miscs: Vec<u16> = Vec::new();
        // Delta-coded bodies per group, record after record.
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        let mut last: Vec<usize> = Vec::new();
        let mut pos = 0;
        while let Some((kind, misc, size)) = header(&raw[pos..]) {
            let g = match group_of.get(&(kind, size)) {
                Some(&g) => g,
                None => {
                    if groups.len() == u16::MAX as usize {
                        break;
                    }
                    let g = groups.len() as u16;
                    groups.push((kind, size));
                    group_of.insert((kind, size), g);
                    bodies.push(Vec::new());
                    last.push(usize::MAX);
                    g
                }
            };
            let rec = &raw[pos..pos + size];
            let gi = g as usize;
            let body = &mut bodies[gi];
            if last[gi] == usize::MAX {
                body.extend_from_slice(&rec[8..]);
            } else {
                let prev = &raw[last[gi]..last[gi] + size];
                for i in (8..size).step_by(8) {
                    body.extend_from_slice(&word(rec, i).wrapping_sub(word(prev, i)).to_le_bytes());
                }
            }
            last[gi] = pos;
            order.push(g);
            miscs.push(misc);
            pos += size;
        }
        let tail = &raw[pos..];
        let mut out = Vec::with_capacity(raw.len() + 12 + groups.len() * 8);
        out.extend_from_slice(&(order.len() as u32).to_le_bytes());
        out.extend_from_slice(&(groups.len() as u32).to_le_bytes());
        out.extend_from_slice(&(tail.len() as u32).to_le_bytes());
        for &(kind, size) in &groups {
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&(size as u32).to_le_bytes());
        }
        for g in &order {
            out.extend_from_slice(&g.to_le_bytes());
        }
        for m in &miscs {
            out.extend_from_slice(&m.to_le_bytes());
        }
        for (gi, &(_, size)) in groups.iter().enumerate() {
            let blen = size - 8;
            let body = &bodies[gi];
            let n = body.len() / blen.max(1);
            for k in 0..blen {
                out.extend((0..n).map(|r| body[r * blen + k]));
            }
        }
        out.extend_from_slice(tail);
        out
    }

    #[test]
    fn the_tiled_encoder_writes_the_reference_bytes() {
        // Two groups interleaved, groups past one tile, a short tail.
        let mut raw = Vec::new();
        for i in 0..700u64 {
            let (kind, words) = match i % 7 {
                0 => (11u32, 0usize),
                1 | 3 => (9, 2),
                _ => (10, 7),
            };
            raw.extend_from_slice(&kind.to_le_bytes());
            raw.extend_from_slice(&((i % 5) as u16).to_le_bytes());
            raw.extend_from_slice(&(((words + 1) * 8) as u16).to_le_bytes());
            for w in 0..words as u64 {
                raw.extend_from_slice(&(i * 1000 + w * (i % 7)).wrapping_mul(0x9e37_79b9).to_le_bytes());
            }
        }
        for cut in [0, 5, 8, 64, raw.len() / 2, raw.len()] {
            let mut r = raw[..cut].to_vec();
            r.extend_from_slice(&[1, 2, 3]);
            assert_eq!(encode(&r), encode_reference(&r), "cut {cut}");
            assert_eq!(decode(&encode(&r)).unwrap(), r);
        }
    }

    #[test]
    fn roundtrip_mixed_records_and_tails() {
        let mut raw = Vec::new();
        for i in 0..50u64 {
            let body: Vec<u8> =
                [7u64, 0x401000 + (i % 3), 5 | (5 << 32), 1000 + i * 251, 1, 250 + i % 2].iter().flat_map(|w| w.to_le_bytes()).collect();
            raw.extend(build_record(RecordType::SAMPLE, (i % 3) as u16, &body));
            if i % 10 == 0 {
                raw.extend(build_record(RecordType::COMM, 0, b"name\0\0\0\0xxxxxxxx"));
            }
        }
        raw.extend_from_slice(&[1, 2, 3]);
        let enc = encode(&raw);
        assert_eq!(decode(&enc).unwrap(), raw);
        assert_eq!(decode(&encode(&[])).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn the_fast_unshuffle_equals_the_byte_by_byte_one() {
        for (blen, cnt) in [(8, 1), (8, 8), (16, 7), (24, 9), (64, 64), (40, 131), (8, 0), (16, 16), (8, 33)] {
            let src: Vec<u8> = (0..blen * cnt).map(|i| (i as u32).wrapping_mul(2654435761).rotate_right(7) as u8).collect();
            // Byte-by-byte transpose, then running sums word by word.
            let mut want = vec![0u8; blen * cnt];
            for r in 0..cnt {
                for k in 0..blen {
                    want[r * blen + k] = src[k * cnt + r];
                }
            }
            for r in 1..cnt {
                for k in (0..blen).step_by(8) {
                    let v = word(&want, r * blen + k).wrapping_add(word(&want, (r - 1) * blen + k));
                    want[r * blen + k..r * blen + k + 8].copy_from_slice(&v.to_le_bytes());
                }
            }
            // Records spaced apart in the output, as groups interleave.
            let at: Vec<usize> = (0..cnt).map(|r| r * (blen + 8) + 8).collect();
            let mut got = vec![0u8; (blen + 8) * cnt];
            unshuffle_into(&src, blen, &at, &mut got);
            for r in 0..cnt {
                assert_eq!(&got[at[r]..at[r] + blen], &want[r * blen..(r + 1) * blen], "{blen} x {cnt}, record {r}");
            }
            for r in (0..cnt.saturating_sub(15)).step_by(16) {
                for k in (0..blen).step_by(8) {
                    assert_eq!(words16_here(&src, cnt, r, k), words16_portable(&src, cnt, r, k));
                }
            }
        }
    }

    #[test]
    fn garbage_roundtrips_and_damaged_encodings_are_refused() {
        let g: Vec<u8> = (0..1000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        assert_eq!(decode(&encode(&g)).unwrap(), g);
        let mut raw = Vec::new();
        for i in 0..20u64 {
            raw.extend(build_record(RecordType::SAMPLE, 2, &i.to_le_bytes()));
        }
        let enc = encode(&raw);
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut]).is_none() || cut == enc.len());
        }
        for pos in 0..enc.len() {
            let mut e = enc.clone();
            e[pos] ^= 0x41;
            let _ = decode(&e);
        }
    }
}
