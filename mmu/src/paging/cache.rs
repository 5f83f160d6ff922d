//! The hooks through which walks use paging-structure caches and the nested
//! TLB, and the per-translation statistics they report. The pure walkers pass
//! [`NoCaches`]; the [`crate::Mmu`] passes its modelled caches.

use super::format::Rights;
use super::nested::NestedTranslation;
use super::walk::TableLoc;
use super::PagingMode;
use crate::counters::Work;

/// A paging-structure-cache entry: the entry at `level` for some address
/// region, reduced to what the walk needs to continue below it (SDM Vol. 3A
/// 4.10.3.1, "Caches for paging structures").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PscEntry {
    /// Level of the cached entry (5 = PML5E ... 2 = PDE).
    pub level: u8,
    /// The table that entry references: the table of level `level - 1`.
    pub next: TableLoc,
    /// Rights ANDed over this entry and those above it.
    pub rights: Rights,
}

/// Cache hooks used by the walkers. Every method has the tags of the current
/// context built in (the implementation is constructed per translation).
pub trait WalkCaches {
    /// The deepest guest-dimension paging-structure-cache entry for `la`.
    fn guest_psc_lookup(&mut self, la: u64, mode: PagingMode) -> Option<PscEntry>;
    /// Caches a guest-dimension entry for `la`.
    fn guest_psc_fill(&mut self, la: u64, mode: PagingMode, entry: PscEntry);
    /// A page fault for `la`: invalidate the entries that would be used to
    /// translate it (SDM Vol. 3A 4.10.4.1, "page faults invalidate").
    fn guest_fault(&mut self, la: u64, mode: PagingMode);
    /// The cached nested translation of the 4-KiB guest-physical page of `gpa`.
    fn nested_tlb_lookup(&mut self, gpa: u64) -> Option<NestedTranslation>;
    /// Caches a nested translation.
    fn nested_tlb_fill(&mut self, gpa: u64, t: &NestedTranslation);
    /// The deepest nested-dimension paging-structure-cache entry for `gpa`.
    fn nested_psc_lookup(&mut self, gpa: u64, levels: u8) -> Option<PscEntry>;
    /// Caches a nested-dimension entry for `gpa`.
    fn nested_psc_fill(&mut self, gpa: u64, entry: PscEntry);
    /// An EPT violation, misconfiguration or #NPF for `gpa`: invalidate the
    /// guest-physical mappings that would translate it (SDM Vol. 3C 29.4.3.1).
    fn nested_fault(&mut self, gpa: u64);
    /// Counts `n` units of walk work `work`. The [`crate::Mmu`] adds them to
    /// its counters and their modelled cycles to the walk's cost; the
    /// default counts nothing.
    #[inline]
    fn count(&mut self, work: Work, n: u64) {
        let _ = (work, n);
    }
    /// True if the walkers may take their short paths for misses a
    /// paging-structure cache leaves one entry for (see `paging::fast`);
    /// false makes them take the general one, for tests that compare the
    /// two.
    #[inline]
    fn fast_paths(&self) -> bool {
        true
    }
}

/// No caches: every walk starts at the root and reads every level.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCaches;

impl WalkCaches for NoCaches {
    #[inline]
    fn guest_psc_lookup(&mut self, _la: u64, _mode: PagingMode) -> Option<PscEntry> {
        None
    }
    #[inline]
    fn guest_psc_fill(&mut self, _la: u64, _mode: PagingMode, _entry: PscEntry) {}
    #[inline]
    fn guest_fault(&mut self, _la: u64, _mode: PagingMode) {}
    #[inline]
    fn nested_tlb_lookup(&mut self, _gpa: u64) -> Option<NestedTranslation> {
        None
    }
    #[inline]
    fn nested_tlb_fill(&mut self, _gpa: u64, _t: &NestedTranslation) {}
    #[inline]
    fn nested_psc_lookup(&mut self, _gpa: u64, _levels: u8) -> Option<PscEntry> {
        None
    }
    #[inline]
    fn nested_psc_fill(&mut self, _gpa: u64, _entry: PscEntry) {}
    #[inline]
    fn nested_fault(&mut self, _gpa: u64) {}
}
