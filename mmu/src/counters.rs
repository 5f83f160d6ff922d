//! Counters for the cost model: plain data the interpreter reads, attributes
//! per level (root / non-root, per VMCS or VMCB) by taking them at
//! transitions, and writes into its `--stats` report.

use crate::paging::WalkStats;
use serde::{Deserialize, Serialize};

/// Runs a counter update, except in a build with the `uncounted` feature.
///
/// That build exists only to measure what the statistics and the cost model
/// cost the host (`benches/overhead.sh`): it leaves out every counter and
/// every modelled cycle, so its `--stats` report is meaningless. The `cfg`
/// is evaluated in the crate using the macro, so every crate using it has
/// its own `uncounted` feature (nestemu's turns on this crate's).
#[macro_export]
macro_rules! tally {
    ($($update:tt)*) => {
        #[cfg(not(feature = "uncounted"))]
        {
            $($update)*;
        }
    };
}

/// Hits and misses of one kind of access (instruction or data).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlbCounters {
    /// First-level TLB hits.
    pub l1_hits: u64,
    /// Second-level (shared) TLB hits.
    pub l2_hits: u64,
    /// Misses in both levels: walks.
    pub misses: u64,
}

impl TlbCounters {
    /// Hits in either level.
    pub fn hits(&self) -> u64 {
        self.l1_hits + self.l2_hits
    }
}

/// Everything the MMU counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MmuCounters {
    /// Calls to [`crate::Mmu::translate`].
    pub translations: u64,
    /// Translations with paging disabled and no nested paging (identity; no
    /// TLB involved).
    pub untranslated: u64,
    /// Instruction-fetch TLB outcomes.
    pub itlb: TlbCounters,
    /// Data-access TLB outcomes.
    pub dtlb: TlbCounters,
    /// Walks started (TLB misses, hits that needed a walk to set a dirty
    /// flag or whose cached rights denied the access, guest-physical
    /// translations, PDPTE loads).
    pub walks: u64,
    /// Walks that ended in a fault.
    pub walk_faults: u64,
    /// Guest-dimension entry reads.
    pub guest_refs: u64,
    /// Nested-dimension entry reads.
    pub nested_refs: u64,
    /// Accessed/dirty flag writes.
    pub ad_writes: u64,
    /// Histogram of entry reads (both dimensions) per walk: `refs_per_walk[n]`
    /// walks made `n` reads.
    pub refs_per_walk: Vec<u64>,
    /// Guest paging-structure-cache hits by level of the cached entry
    /// (index 2 = PDE cache ... 5 = PML5E cache).
    pub guest_psc_hits: [u64; 6],
    /// Guest paging-structure-cache misses.
    pub guest_psc_misses: u64,
    /// Nested paging-structure-cache hits by level.
    pub nested_psc_hits: [u64; 6],
    /// Nested paging-structure-cache misses.
    pub nested_psc_misses: u64,
    /// Nested TLB hits.
    pub nested_tlb_hits: u64,
    /// Nested TLB misses.
    pub nested_tlb_misses: u64,
    /// Architectural invalidation operations performed.
    pub invalidations: u64,
}

impl MmuCounters {
    /// Adds one walk's work.
    #[inline]
    pub fn add_walk(&mut self, s: &WalkStats, faulted: bool) {
        if cfg!(feature = "uncounted") {
            return;
        }
        self.walks += 1;
        self.walk_faults += faulted as u64;
        self.guest_refs += s.guest_reads as u64;
        self.nested_refs += s.nested_reads as u64;
        self.ad_writes += s.ad_writes as u64;
        let n = s.reads() as usize;
        if self.refs_per_walk.len() <= n {
            self.refs_per_walk.resize(n + 1, 0);
        }
        self.refs_per_walk[n] += 1;
        for l in 0..6 {
            self.guest_psc_hits[l] += s.guest_psc_hits[l] as u64;
            self.nested_psc_hits[l] += s.nested_psc_hits[l] as u64;
        }
        self.guest_psc_misses += s.guest_psc_misses as u64;
        self.nested_psc_misses += s.nested_psc_misses as u64;
        self.nested_tlb_hits += s.nested_tlb_hits as u64;
        self.nested_tlb_misses += s.nested_tlb_misses as u64;
    }

    /// Adds another set of counters (to total several levels).
    pub fn merge(&mut self, o: &MmuCounters) {
        self.translations += o.translations;
        self.untranslated += o.untranslated;
        for (a, b) in [(&mut self.itlb, &o.itlb), (&mut self.dtlb, &o.dtlb)] {
            a.l1_hits += b.l1_hits;
            a.l2_hits += b.l2_hits;
            a.misses += b.misses;
        }
        self.walks += o.walks;
        self.walk_faults += o.walk_faults;
        self.guest_refs += o.guest_refs;
        self.nested_refs += o.nested_refs;
        self.ad_writes += o.ad_writes;
        if self.refs_per_walk.len() < o.refs_per_walk.len() {
            self.refs_per_walk.resize(o.refs_per_walk.len(), 0);
        }
        for (i, v) in o.refs_per_walk.iter().enumerate() {
            self.refs_per_walk[i] += v;
        }
        for l in 0..6 {
            self.guest_psc_hits[l] += o.guest_psc_hits[l];
            self.nested_psc_hits[l] += o.nested_psc_hits[l];
        }
        self.guest_psc_misses += o.guest_psc_misses;
        self.nested_psc_misses += o.nested_psc_misses;
        self.nested_tlb_hits += o.nested_tlb_hits;
        self.nested_tlb_misses += o.nested_tlb_misses;
        self.invalidations += o.invalidations;
    }

    /// Entry reads in both dimensions.
    pub fn refs(&self) -> u64 {
        self.guest_refs + self.nested_refs
    }
}
