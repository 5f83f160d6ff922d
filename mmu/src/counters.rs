//! Counters for the cost model: plain data the interpreter reads, attributes
//! per level (root / non-root, per VMCS or VMCB) by taking them at
//! transitions, and writes into its `--stats` report.

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

/// A unit of walk work the walkers count ([`crate::paging::WalkCaches::count`]):
/// the walk counters of [`MmuCounters`], each with its cost in
/// [`MmuCosts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// A guest-dimension entry read.
    GuestRef,
    /// A nested-dimension entry read.
    NestedRef,
    /// An accessed/dirty flag write (either dimension).
    AdWrite,
    /// A guest paging-structure-cache hit on an entry of this level.
    GuestPscHit(u8),
    /// A guest paging-structure-cache lookup that found nothing.
    GuestPscMiss,
    /// A nested paging-structure-cache hit on an entry of this level.
    NestedPscHit(u8),
    /// A nested paging-structure-cache lookup that found nothing.
    NestedPscMiss,
    /// A nested-TLB hit.
    NestedTlbHit,
    /// A nested-TLB miss.
    NestedTlbMiss,
}

/// Everything the MMU counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MmuCounters {
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
    pub refs_per_walk: RefsPerWalk,
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
    /// Calls to [`crate::Mmu::translate`] (and first-level hits counted by
    /// [`crate::Mmu::count_l1_hits`]): each ends as exactly one of an
    /// untranslated access, a first- or second-level TLB hit, or a miss, so
    /// their count is the sum of those, not a counter of its own.
    pub fn translations(&self) -> u64 {
        self.untranslated
            + self.itlb.hits()
            + self.itlb.misses
            + self.dtlb.hits()
            + self.dtlb.misses
    }

    /// Adds `n` units of `work`.
    #[inline(always)]
    pub fn add(&mut self, work: Work, n: u64) {
        let c = match work {
            Work::GuestRef => &mut self.guest_refs,
            Work::NestedRef => &mut self.nested_refs,
            Work::AdWrite => &mut self.ad_writes,
            Work::GuestPscHit(l) => &mut self.guest_psc_hits[l as usize],
            Work::GuestPscMiss => &mut self.guest_psc_misses,
            Work::NestedPscHit(l) => &mut self.nested_psc_hits[l as usize],
            Work::NestedPscMiss => &mut self.nested_psc_misses,
            Work::NestedTlbHit => &mut self.nested_tlb_hits,
            Work::NestedTlbMiss => &mut self.nested_tlb_misses,
        };
        *c += n;
    }

    /// Ends the count of one walk, whose work the walkers added to these
    /// counters as they went ([`MmuCounters::add`]), `refs` entry reads
    /// of it.
    #[inline]
    pub fn count_walk(&mut self, refs: u64, faulted: bool) {
        crate::tally!(self.walks += 1);
        crate::tally!(self.walk_faults += faulted as u64);
        crate::tally!(self.refs_per_walk.count(refs));
        let _ = (refs, faulted);
    }

    /// Adds another set of counters (to total several levels).
    pub fn merge(&mut self, o: &MmuCounters) {
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
        self.refs_per_walk.merge(&o.refs_per_walk);
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

    /// Sets every counter to 0 (as `MmuCounters::default()`, without
    /// writing the unused part of the histogram).
    pub fn clear(&mut self) {
        let MmuCounters {
            untranslated,
            itlb,
            dtlb,
            walks,
            walk_faults,
            guest_refs,
            nested_refs,
            ad_writes,
            refs_per_walk,
            guest_psc_hits,
            guest_psc_misses,
            nested_psc_hits,
            nested_psc_misses,
            nested_tlb_hits,
            nested_tlb_misses,
            invalidations,
        } = self;
        for n in [
            untranslated,
            walks,
            walk_faults,
            guest_refs,
            nested_refs,
            ad_writes,
            guest_psc_misses,
            nested_psc_misses,
            nested_tlb_hits,
            nested_tlb_misses,
            invalidations,
        ] {
            *n = 0;
        }
        *itlb = TlbCounters::default();
        *dtlb = TlbCounters::default();
        *guest_psc_hits = [0; 6];
        *nested_psc_hits = [0; 6];
        refs_per_walk.clear();
    }

    /// Entry reads in both dimensions.
    pub fn refs(&self) -> u64 {
        self.guest_refs + self.nested_refs
    }
}

/// Modelled cycles of each costed MMU event: the MMU's rows of the
/// machine's cost model, with which the [`crate::Mmu`] keeps the cost of its
/// counters as they grow ([`crate::Mmu::cycles`]) instead of the machine
/// recomputing it from every counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuCosts {
    /// A first-level TLB hit.
    pub tlb_l1_hit: u64,
    /// A second-level TLB hit.
    pub tlb_l2_hit: u64,
    /// A miss in both TLB levels.
    pub tlb_miss: u64,
    /// A guest-dimension entry read.
    pub guest_ref: u64,
    /// A nested-dimension entry read.
    pub nested_ref: u64,
    /// An accessed/dirty flag write.
    pub ad_update: u64,
    /// A paging-structure-cache hit (either dimension).
    pub psc_hit: u64,
    /// A paging-structure-cache miss (either dimension).
    pub psc_miss: u64,
    /// A nested-TLB hit.
    pub nested_tlb_hit: u64,
    /// A nested-TLB miss.
    pub nested_tlb_miss: u64,
}

impl MmuCosts {
    /// The modelled cycles of the MMU work in `c`: (TLB, walks). Linear in
    /// the counters (arithmetic modulo 2^64), so the cost of the work
    /// between two points is the difference of their costs.
    pub fn cycles(&self, c: &MmuCounters) -> (u64, u64) {
        let m = u64::wrapping_mul;
        let tlb = m(c.itlb.l1_hits + c.dtlb.l1_hits, self.tlb_l1_hit)
            .wrapping_add(m(c.itlb.l2_hits + c.dtlb.l2_hits, self.tlb_l2_hit))
            .wrapping_add(m(c.itlb.misses + c.dtlb.misses, self.tlb_miss));
        (tlb, self.walk_cycles(c))
    }

    /// The modelled cycles of one unit of `work`.
    #[inline(always)]
    pub fn of(&self, work: Work) -> u64 {
        match work {
            Work::GuestRef => self.guest_ref,
            Work::NestedRef => self.nested_ref,
            Work::AdWrite => self.ad_update,
            Work::GuestPscHit(_) | Work::NestedPscHit(_) => self.psc_hit,
            Work::GuestPscMiss | Work::NestedPscMiss => self.psc_miss,
            Work::NestedTlbHit => self.nested_tlb_hit,
            Work::NestedTlbMiss => self.nested_tlb_miss,
        }
    }

    /// The modelled cycles of the walk work in `c` (entry reads, flag
    /// writes, cache lookups), modulo 2^64.
    #[inline]
    pub fn walk_cycles(&self, c: &MmuCounters) -> u64 {
        let m = u64::wrapping_mul;
        let mut psc_hits = 0u64;
        for l in 0..6 {
            psc_hits = psc_hits
                .wrapping_add(c.guest_psc_hits[l])
                .wrapping_add(c.nested_psc_hits[l]);
        }
        m(c.guest_refs, self.guest_ref)
            .wrapping_add(m(c.nested_refs, self.nested_ref))
            .wrapping_add(m(c.ad_writes, self.ad_update))
            .wrapping_add(m(psc_hits, self.psc_hit))
            .wrapping_add(m(
                c.guest_psc_misses.wrapping_add(c.nested_psc_misses),
                self.psc_miss,
            ))
            .wrapping_add(m(c.nested_tlb_hits, self.nested_tlb_hit))
            .wrapping_add(m(c.nested_tlb_misses, self.nested_tlb_miss))
    }
}

/// Walks by number of entry reads: [`MmuCounters::refs_per_walk`]. A list
/// as long as one past the largest count seen (as a `Vec` grown on demand
/// would be; it reads and serializes as that list), held in place up to
/// [`RefsPerWalk::INLINE`] reads, so counting a walk and starting new
/// counters allocate nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefsPerWalk {
    /// Counts of walks with fewer than `INLINE` reads.
    inline: [u64; RefsPerWalk::INLINE],
    /// The list's length.
    len: usize,
    /// Counts of walks with `INLINE` reads and more (index 0 = `INLINE`),
    /// empty unless the list is longer than `INLINE`.
    more: Vec<u64>,
}

impl Default for RefsPerWalk {
    fn default() -> Self {
        Self {
            inline: [0; Self::INLINE],
            len: 0,
            more: Vec::new(),
        }
    }
}

impl RefsPerWalk {
    /// Counts held in place: every walk of a 5-level guest under 5-level
    /// nested tables without retries reads fewer entries.
    pub const INLINE: usize = 40;

    /// Counts one walk of `n` reads.
    #[inline]
    pub fn count(&mut self, n: u64) {
        let n = n as usize;
        if n < Self::INLINE {
            self.inline[n] += 1;
            self.len = self.len.max(n + 1);
        } else {
            self.count_more(n);
        }
    }

    #[cold]
    #[inline(never)]
    fn count_more(&mut self, n: usize) {
        let i = n - Self::INLINE;
        if self.more.len() <= i {
            self.more.resize(i + 1, 0);
        }
        self.more[i] += 1;
        self.len = self.len.max(n + 1);
    }

    /// Adds the counts of `o`.
    pub fn merge(&mut self, o: &RefsPerWalk) {
        let n = o.len.min(Self::INLINE);
        for (a, b) in self.inline[..n].iter_mut().zip(&o.inline[..n]) {
            *a += b;
        }
        if self.more.len() < o.more.len() {
            self.more.resize(o.more.len(), 0);
        }
        for (a, b) in self.more.iter_mut().zip(&o.more) {
            *a += b;
        }
        self.len = self.len.max(o.len);
    }

    /// Empties the list.
    pub fn clear(&mut self) {
        let n = self.len.min(Self::INLINE);
        self.inline[..n].fill(0);
        self.more.clear();
        self.len = 0;
    }

    /// The count of walks with `n` reads (0 past the end).
    pub fn get(&self, n: usize) -> u64 {
        if n >= self.len {
            0
        } else if n < Self::INLINE {
            self.inline[n]
        } else {
            self.more.get(n - Self::INLINE).copied().unwrap_or(0)
        }
    }

    /// The list's length: one past the largest count of reads seen.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before any walk.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The counts, index = reads.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.len).map(|n| self.get(n))
    }

    /// The list.
    pub fn to_vec(&self) -> Vec<u64> {
        self.iter().collect()
    }

    /// The histogram of a list.
    pub fn from_slice(counts: &[u64]) -> Self {
        let mut h = Self::default();
        for (n, &c) in counts.iter().enumerate() {
            if n < Self::INLINE {
                h.inline[n] = c;
            } else {
                h.more.push(c);
            }
        }
        h.len = counts.len();
        h
    }
}

impl core::ops::Index<usize> for RefsPerWalk {
    type Output = u64;

    /// The count of walks with `n` reads; panics past the end, as a list
    /// would.
    fn index(&self, n: usize) -> &u64 {
        assert!(n < self.len, "refs_per_walk[{n}] of {}", self.len);
        if n < Self::INLINE {
            &self.inline[n]
        } else {
            &self.more[n - Self::INLINE]
        }
    }
}

impl Serialize for RefsPerWalk {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for RefsPerWalk {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_slice(&Vec::<u64>::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The list a `Vec` grown on demand would hold after counting `walks`.
    fn model(walks: &[u64]) -> Vec<u64> {
        let mut v = Vec::new();
        for &n in walks {
            let n = n as usize;
            if v.len() <= n {
                v.resize(n + 1, 0);
            }
            v[n] += 1;
        }
        v
    }

    proptest! {
        /// The histogram reads, merges and serializes as the list it
        /// replaces, in place or past [`RefsPerWalk::INLINE`].
        #[test]
        fn refs_per_walk_is_the_list(
            a in prop::collection::vec(0u64..60, 0..40),
            b in prop::collection::vec(0u64..60, 0..40),
        ) {
            let mut h = RefsPerWalk::default();
            a.iter().for_each(|&n| h.count(n));
            prop_assert_eq!(h.to_vec(), model(&a));
            prop_assert_eq!(h.len(), model(&a).len());
            for (n, &c) in model(&a).iter().enumerate() {
                prop_assert_eq!(h[n], c);
            }
            let json = serde_json::to_string(&h).unwrap();
            prop_assert_eq!(&json, &serde_json::to_string(&model(&a)).unwrap());
            let back: RefsPerWalk = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&back, &h);
            let mut g = RefsPerWalk::default();
            b.iter().for_each(|&n| g.count(n));
            h.merge(&g);
            let mut both = model(&a);
            let mb = model(&b);
            if both.len() < mb.len() {
                both.resize(mb.len(), 0);
            }
            for (x, y) in both.iter_mut().zip(&mb) {
                *x += y;
            }
            prop_assert_eq!(h.to_vec(), both);
        }
    }

    #[test]
    fn a_stored_list_keeps_its_length() {
        let h: RefsPerWalk = serde_json::from_str("[0,2,0,0]").unwrap();
        assert_eq!(serde_json::to_string(&h).unwrap(), "[0,2,0,0]");
        assert_eq!(h.get(9), 0);
    }
}
