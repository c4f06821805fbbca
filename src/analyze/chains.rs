//! Distinct raw call chains, numbered: a capture has far fewer distinct
//! stacks than samples, so analyses key their per-sample maps by a chain's
//! number and walk each distinct chain once. A lookup hashes a borrowed
//! slice; only a chain not seen before is copied.

use hashbrown::hash_table::{Entry, HashTable};
use std::hash::BuildHasher;

#[derive(Default)]
pub struct ChainTable {
    table: HashTable<u32>,
    chains: Vec<Box<[u64]>>,
    hasher: rustc_hash::FxBuildHasher,
}

impl std::fmt::Debug for ChainTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChainTable({} chains)", self.chains.len())
    }
}

impl ChainTable {
    /// The number of `chain`, assigned in first-seen order.
    pub fn id(&mut self, chain: &[u64]) -> u32 {
        let h = self.hasher.hash_one(chain);
        let chains = &mut self.chains;
        let hasher = &self.hasher;
        match self.table.entry(h, |&i| &*chains[i as usize] == chain, |&i| hasher.hash_one(&*chains[i as usize])) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                let i = chains.len() as u32;
                chains.push(chain.into());
                e.insert(i);
                i
            }
        }
    }

    pub fn get(&self, id: u32) -> &[u64] {
        &self.chains[id as usize]
    }

    pub fn len(&self) -> usize {
        self.chains.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
    }

    /// Add `other`'s chains; returns, for each of its numbers, the number
    /// the chain has here.
    pub fn absorb(&mut self, other: &ChainTable) -> Vec<u32> {
        other.chains.iter().map(|c| self.id(c)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_chains_share_a_number_across_tables() {
        let mut a = ChainTable::default();
        assert_eq!(a.id(&[1, 2, 3]), 0);
        assert_eq!(a.id(&[1, 2]), 1);
        assert_eq!(a.id(&[1, 2, 3]), 0);
        let mut b = ChainTable::default();
        b.id(&[9]);
        b.id(&[1, 2]);
        assert_eq!(a.absorb(&b), vec![2, 1]);
        assert_eq!(a.get(2), &[9]);
        assert_eq!(a.len(), 3);
    }
}
