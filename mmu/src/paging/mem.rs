//! How walkers reach memory: the [`PhysMemory`] trait `emu` implements, and
//! [`SparseMemory`], a small deterministic implementation for tests, demos and
//! teaching.

use crate::PhysAddr;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The width of a paging-structure entry: 4 bytes for 32-bit paging, 8 for
/// every other format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntrySize {
    /// 32-bit paging entries.
    Four,
    /// PAE, IA-32e, EPT and NPT entries.
    Eight,
}

impl EntrySize {
    /// Size in bytes.
    #[inline]
    pub const fn bytes(self) -> u64 {
        match self {
            EntrySize::Four => 4,
            EntrySize::Eight => 8,
        }
    }
}

/// Machine-physical memory as the page walker sees it.
///
/// Implemented by the interpreter over guest RAM and devices. Addresses not
/// backed by RAM are the implementer's business (typically reads return all
/// ones and compare-exchanges fail, as an unclaimed bus would).
pub trait PhysMemory {
    /// Reads a paging-structure entry (4 or 8 bytes, little endian) at a
    /// machine-physical address. A read has no side effect: walkers may
    /// read an entry again (a retried walk, a short path that gives up).
    fn read_entry(&mut self, pa: PhysAddr, size: EntrySize) -> u64;

    /// Locked compare-and-set of an entry, used to set accessed and dirty
    /// flags (SDM Vol. 3A 4.8: the processor updates them with locked
    /// operations). Returns false, writing nothing, if the entry no longer
    /// holds `old`.
    fn cmpxchg_entry(&mut self, pa: PhysAddr, size: EntrySize, old: u64, new: u64) -> bool;

    /// A host-side hint: the access a translation was made for is about to
    /// reach `pa`, so an implementation may start fetching it into the
    /// host's caches while the translation's bookkeeping (TLB fills,
    /// counters) runs. No modelled effect; the default does nothing.
    #[inline]
    fn prefetch(&mut self, pa: PhysAddr) {
        let _ = pa;
    }
}

impl<M: PhysMemory + ?Sized> PhysMemory for &mut M {
    #[inline]
    fn read_entry(&mut self, pa: PhysAddr, size: EntrySize) -> u64 {
        (**self).read_entry(pa, size)
    }
    #[inline]
    fn cmpxchg_entry(&mut self, pa: PhysAddr, size: EntrySize, old: u64, new: u64) -> bool {
        (**self).cmpxchg_entry(pa, size, old, new)
    }
    #[inline]
    fn prefetch(&mut self, pa: PhysAddr) {
        (**self).prefetch(pa)
    }
}

/// Sparse byte-addressed memory: pages are allocated on first write and read
/// as zero before. Ordered maps keep it deterministic and serializable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparseMemory {
    pages: BTreeMap<u64, Vec<u8>>,
}

impl SparseMemory {
    /// Empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `N` little-endian bytes at `pa` as an integer (N <= 8).
    pub fn read_u64_le(&self, pa: u64, n: usize) -> u64 {
        let mut v = 0u64;
        for i in 0..n {
            let a = pa.wrapping_add(i as u64);
            let b = self
                .pages
                .get(&(a >> 12))
                .map_or(0, |p| p[(a & 0xfff) as usize]);
            v |= (b as u64) << (8 * i);
        }
        v
    }

    /// Writes the low `n` bytes of `v` at `pa`, little endian.
    pub fn write_u64_le(&mut self, pa: u64, n: usize, v: u64) {
        for i in 0..n {
            let a = pa.wrapping_add(i as u64);
            let page = self.pages.entry(a >> 12).or_insert_with(|| vec![0; 4096]);
            page[(a & 0xfff) as usize] = (v >> (8 * i)) as u8;
        }
    }

    /// Reads a 64-bit value.
    pub fn read_u64(&self, pa: u64) -> u64 {
        self.read_u64_le(pa, 8)
    }

    /// Writes a 64-bit value.
    pub fn write_u64(&mut self, pa: u64, v: u64) {
        self.write_u64_le(pa, 8, v)
    }

    /// Reads a 32-bit value.
    pub fn read_u32(&self, pa: u64) -> u32 {
        self.read_u64_le(pa, 4) as u32
    }

    /// Writes a 32-bit value.
    pub fn write_u32(&mut self, pa: u64, v: u32) {
        self.write_u64_le(pa, 4, v as u64)
    }

    /// Number of 4-KiB pages written so far.
    pub fn pages(&self) -> usize {
        self.pages.len()
    }
}

impl PhysMemory for SparseMemory {
    fn read_entry(&mut self, pa: PhysAddr, size: EntrySize) -> u64 {
        self.read_u64_le(pa.0, size.bytes() as usize)
    }

    fn cmpxchg_entry(&mut self, pa: PhysAddr, size: EntrySize, old: u64, new: u64) -> bool {
        let n = size.bytes() as usize;
        if self.read_u64_le(pa.0, n) != old {
            return false;
        }
        self.write_u64_le(pa.0, n, new);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_round_trip_and_cmpxchg() {
        let mut m = SparseMemory::new();
        assert_eq!(m.read_entry(PhysAddr(0x1000), EntrySize::Eight), 0);
        m.write_u64(0x1ffc, 0x1122_3344_5566_7788);
        assert_eq!(m.read_u64(0x1ffc), 0x1122_3344_5566_7788);
        assert_eq!(m.read_u32(0x2000), 0x1122_3344);
        assert!(!m.cmpxchg_entry(PhysAddr(0x1ffc), EntrySize::Four, 1, 2));
        assert!(m.cmpxchg_entry(PhysAddr(0x1ffc), EntrySize::Four, 0x5566_7788, 7));
        assert_eq!(m.read_u64(0x1ffc), 0x1122_3344_0000_0007);
        assert_eq!(m.pages(), 2);
    }
}
