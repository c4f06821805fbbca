//! Reused buffers for decoded blocks.
//!
//! Every analysis decodes each block into a few MB (zstd output, then the
//! record-columns inverse) and drops it a moment later. Fresh allocations of
//! that size come from mmap or from heap the allocator just trimmed, so each
//! block paid page faults and kernel page clearing for every byte: on a
//! 10M-sample trace that was 40% of `msen report`'s CPU time, mostly in the
//! kernel. A decoded block's bytes now live in a `Pooled` buffer that goes
//! back to its thread's free list when dropped; the next block on that
//! thread reuses the pages.
//!
//! Bounded: at most `KEEP` buffers per thread, none above `KEEP_MAX_BYTES`
//! (larger ones are freed as before).

use std::cell::RefCell;
use std::ops::Deref;

const KEEP: usize = 4;
const KEEP_MAX_BYTES: usize = 64 << 20;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer from this thread's free list (or a new one).
fn take_vec() -> Vec<u8> {
    let mut v = FREE.with(|f| f.borrow_mut().pop()).unwrap_or_default();
    v.clear();
    v
}

/// Give a buffer back to this thread's free list.
fn give(v: Vec<u8>) {
    if v.capacity() == 0 || v.capacity() > KEEP_MAX_BYTES {
        return;
    }
    FREE.with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < KEEP {
            f.push(v);
        }
    });
}

/// Bytes that return to the pool of the thread that drops them.
#[derive(Debug, Default)]
pub struct Pooled(Vec<u8>);

impl Pooled {
    /// An empty buffer from this thread's free list (a new one when the
    /// list is empty); it goes back when dropped.
    pub fn take() -> Pooled {
        Pooled(take_vec())
    }

    /// The buffer, to fill (it stays pooled).
    pub fn as_mut_vec(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }

    /// The bytes as a plain Vec (leaves the pool).
    pub fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

impl Deref for Pooled {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

/// A decoded block: borrowed from the file when stored uncompressed, pooled
/// otherwise.
#[derive(Debug)]
pub enum Bytes<'a> {
    Borrowed(&'a [u8]),
    Pooled(Pooled),
}

impl Bytes<'_> {
    pub fn into_owned(self) -> Vec<u8> {
        match self {
            Bytes::Borrowed(b) => b.to_vec(),
            Bytes::Pooled(p) => p.into_vec(),
        }
    }
}

impl Deref for Bytes<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Borrowed(b) => b,
            Bytes::Pooled(p) => p,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn dropped_buffers_are_reused_and_the_pool_is_bounded() {
        let mut v = Pooled::take();
        v.as_mut_vec().extend_from_slice(&[1; 1000]);
        let p = v.as_ptr();
        drop(v);
        let again = Pooled::take();
        assert!(again.is_empty(), "a reused buffer starts empty");
        assert_eq!(again.as_ptr(), p, "the same allocation comes back");
        for _ in 0..10 {
            give(vec![0; 16]);
        }
        assert!(FREE.with(|f| f.borrow().len()) <= KEEP);
        give(Vec::with_capacity(KEEP_MAX_BYTES + 1));
        assert!(FREE.with(|f| f.borrow().iter().all(|v| v.capacity() <= KEEP_MAX_BYTES)));
    }
}
