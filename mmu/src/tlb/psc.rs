//! Paging-structure caches (SDM Vol. 3A 4.10.3.1) for the guest and nested
//! dimensions, and the nested TLB of guest-physical mappings (SDM Vol. 3C
//! 29.4.1).
//!
//! A guest entry cached during a two-dimensional walk keeps the
//! machine-physical location of the table it references (a combined
//! paging-structure-cache entry), so a hit skips both the guest entries above
//! and the nested walks that located them.

use super::array::{SetAssoc, Slot};
use super::entry::Tag;
use super::scope::Scope;
use super::{Geometry, PscConfig};
use crate::paging::format::Rights;
use crate::paging::nested::NestedTranslation;
use crate::paging::walk::{HostTable, TableLoc};
use crate::paging::{PageSize, PagingMode, PscEntry};
use crate::PhysAddr;
use serde::{Deserialize, Serialize};

/// One cached paging-structure entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PscSlot {
    valid: bool,
    key: u64,
    mode: u8,
    vpid: u16,
    pcid: u16,
    root: u64,
    next_base: u64,
    host_base: u64,
    host_writable: bool,
    host_rights: Rights,
    rights: Rights,
}

impl Slot for PscSlot {
    #[inline]
    fn valid(&self) -> bool {
        self.valid
    }

    fn sane(&self) -> bool {
        self.next_base < super::array::PHYS_LIMIT && self.host_base < super::array::PHYS_LIMIT
    }

    /// The caches are fully associative (one set); the array key is the
    /// entry's address key, so the array's per-bucket counts rule out most
    /// entries of a 32- or 64-entry cache without comparing them.
    #[inline]
    fn array_key(&self) -> u64 {
        self.key
    }
}

impl PscSlot {
    fn entry(&self, level: u8) -> PscEntry {
        PscEntry {
            level,
            next: TableLoc {
                base: self.next_base,
                host: Some(HostTable {
                    base: self.host_base,
                    writable: self.host_writable,
                    rights: self.host_rights,
                }),
            },
            rights: self.rights,
        }
    }
}

fn mode_code(mode: PagingMode) -> u8 {
    match mode {
        PagingMode::Disabled => 0,
        PagingMode::Legacy32 => 1,
        PagingMode::Pae => 2,
        PagingMode::Level4 => 3,
        PagingMode::Level5 => 4,
    }
}

/// Address bits a level-`level` entry covers: the key is `addr >> shift`.
fn key_shift(mode: PagingMode, level: u8) -> u32 {
    match (mode, level) {
        (PagingMode::Legacy32, _) => 22,
        (PagingMode::Pae, 3) => 30,
        _ => 12 + 9 * (level as u32 - 1),
    }
}

/// log2 of the region a paging-structure-cache lookup's result depends on:
/// every level's key ([`key_shift`]) drops at least 21 address bits.
const MEMO_SHIFT: u32 = 21;
const _: () = assert!(MEMO_SHIFT <= 21);

/// What a lookup's result depends on besides the cache's content: the
/// address's [`MEMO_SHIFT`] region, the paging mode (guest) or number of
/// levels (nested), and the tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MemoKey {
    region: u64,
    mode: u8,
    vpid: u16,
    pcid: u16,
    root: u64,
}

/// The last lookup of a paging-structure cache and its result, host-side:
/// consecutive misses usually fall in the same 2-MiB region, and a lookup
/// is a pure function of the key and the content, so while the content is
/// unchanged (every change empties the memo) the result is the memo's. Not
/// modelled state: equal whatever it holds, never stored.
#[derive(Clone, Debug, Default)]
struct Memo(Option<(MemoKey, Option<PscEntry>)>);

impl Memo {
    #[inline]
    fn get(&self, key: &MemoKey) -> Option<Option<PscEntry>> {
        match &self.0 {
            Some((k, r)) if k == key => Some(*r),
            _ => None,
        }
    }
}

impl PartialEq for Memo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Memo {}

/// Four fully associative caches, for entries at levels 2 (PDE) to 5 (PML5E).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Levels {
    by_level: [SetAssoc<PscSlot>; 4],
}

impl Levels {
    fn new(c: &PscConfig) -> Self {
        let mk = |n: u32| SetAssoc::new(n, n.max(1));
        Self {
            by_level: [mk(c.pd), mk(c.pdpt), mk(c.pml4), mk(c.pml5)],
        }
    }

    fn at(&mut self, level: u8) -> &mut SetAssoc<PscSlot> {
        &mut self.by_level[level as usize - 2]
    }

    fn find(&self, level: u8, key: u64, f: impl Fn(&PscSlot) -> bool) -> Option<&PscSlot> {
        self.by_level[level as usize - 2].find(key, f)
    }

    fn invalidate(&mut self, f: impl Fn(&PscSlot) -> bool) -> usize {
        self.by_level
            .iter_mut()
            .map(|a| a.invalidate_all_where(&f))
            .sum()
    }

    fn len(&self) -> usize {
        self.by_level.iter().map(|a| a.len()).sum()
    }
}

/// Guest-dimension paging-structure caches: PML5E, PML4E, PDPTE and PDE
/// caches, tagged by VPID/ASID, PCID and root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestPsc {
    levels: Levels,
    /// Host-side: the last lookup and its result.
    #[serde(skip)]
    memo: Memo,
}

impl GuestPsc {
    /// Empty caches of the configured sizes.
    pub fn new(c: &PscConfig) -> Self {
        Self {
            levels: Levels::new(c),
            memo: Memo::default(),
        }
    }

    /// The deepest cached entry for `la` (PDE first).
    #[inline]
    pub fn lookup(&mut self, la: u64, mode: PagingMode, tag: &Tag) -> Option<PscEntry> {
        let m = mode_code(mode);
        let key = MemoKey {
            region: la >> MEMO_SHIFT,
            mode: m,
            vpid: tag.vpid,
            pcid: tag.pcid,
            root: tag.root,
        };
        if let Some(r) = self.memo.get(&key) {
            debug_assert_eq!(r, self.search(la, mode, tag), "a stale memo");
            return r;
        }
        let r = self.search(la, mode, tag);
        self.memo.0 = Some((key, r));
        r
    }

    fn search(&self, la: u64, mode: PagingMode, tag: &Tag) -> Option<PscEntry> {
        let m = mode_code(mode);
        for level in 2..=mode.levels().min(5) {
            let key = la >> key_shift(mode, level);
            let hit = self.levels.find(level, key, |s| {
                s.valid
                    && s.key == key
                    && s.mode == m
                    && s.vpid == tag.vpid
                    && s.pcid == tag.pcid
                    && s.root == tag.root
            });
            if let Some(s) = hit {
                return Some(s.entry(level));
            }
        }
        None
    }

    /// Caches `e` for `la`.
    pub fn fill(&mut self, la: u64, mode: PagingMode, tag: &Tag, e: PscEntry) {
        self.memo.0 = None;
        if !(2..=5).contains(&e.level) {
            return;
        }
        let host = e.next.host.unwrap_or(HostTable {
            base: e.next.base,
            writable: true,
            rights: !0,
        });
        let slot = PscSlot {
            valid: true,
            key: la >> key_shift(mode, e.level),
            mode: mode_code(mode),
            vpid: tag.vpid,
            pcid: tag.pcid,
            root: tag.root,
            next_base: e.next.base,
            host_base: host.base,
            host_writable: host.writable,
            host_rights: host.rights,
            rights: e.rights,
        };
        self.levels.at(e.level).insert(slot.key, slot, |s| {
            s.key == slot.key
                && s.mode == slot.mode
                && s.vpid == slot.vpid
                && s.pcid == slot.pcid
                && s.root == slot.root
        });
    }

    /// Invalidates the entries `scope` selects (ignoring its page).
    pub fn invalidate(&mut self, scope: &Scope) -> usize {
        self.memo.0 = None;
        self.levels
            .invalidate(|s| scope.selects_psc(s.vpid, s.pcid, s.root))
    }

    /// Invalidates the entries that would be used to translate `la` under
    /// `tag` (a page fault, SDM Vol. 3A 4.10.4.1).
    pub fn invalidate_for(&mut self, la: u64, mode: PagingMode, tag: &Tag) -> usize {
        self.memo.0 = None;
        let m = mode_code(mode);
        let mut n = 0;
        for level in 2..=5u8 {
            let key = la >> key_shift(mode, level);
            n += self.levels.at(level).invalidate_all_where(|s| {
                s.key == key
                    && s.mode == m
                    && s.vpid == tag.vpid
                    && s.pcid == tag.pcid
                    && s.root == tag.root
            });
        }
        n
    }

    /// Number of valid entries.
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Nested-dimension paging-structure caches, tagged by root (EP4TA / nCR3)
/// and, for NPT, ASID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NestedPsc {
    levels: Levels,
    /// Host-side: the last lookup and its result.
    #[serde(skip)]
    memo: Memo,
}

impl NestedPsc {
    /// Empty caches.
    pub fn new(c: &PscConfig) -> Self {
        Self {
            levels: Levels::new(c),
            memo: Memo::default(),
        }
    }

    /// The deepest cached entry for `gpa`.
    #[inline]
    pub fn lookup(&mut self, gpa: u64, levels: u8, root: u64, vpid: u16) -> Option<PscEntry> {
        let key = MemoKey {
            region: gpa >> MEMO_SHIFT,
            mode: levels,
            vpid,
            pcid: 0,
            root,
        };
        if let Some(r) = self.memo.get(&key) {
            debug_assert_eq!(r, self.search(gpa, levels, root, vpid), "a stale memo");
            return r;
        }
        let r = self.search(gpa, levels, root, vpid);
        self.memo.0 = Some((key, r));
        r
    }

    fn search(&self, gpa: u64, levels: u8, root: u64, vpid: u16) -> Option<PscEntry> {
        for level in 2..=levels.min(5) {
            let key = gpa >> key_shift(PagingMode::Level5, level);
            let hit = self.levels.find(level, key, |s| {
                s.valid && s.key == key && s.root == root && s.vpid == vpid
            });
            if let Some(s) = hit {
                return Some(s.entry(level));
            }
        }
        None
    }

    /// Caches `e` for `gpa`.
    pub fn fill(&mut self, gpa: u64, root: u64, vpid: u16, e: PscEntry) {
        self.memo.0 = None;
        if !(2..=5).contains(&e.level) {
            return;
        }
        let slot = PscSlot {
            valid: true,
            key: gpa >> key_shift(PagingMode::Level5, e.level),
            mode: 0,
            vpid,
            pcid: 0,
            root,
            next_base: e.next.base,
            host_base: e.next.base,
            host_writable: true,
            host_rights: !0,
            rights: e.rights,
        };
        self.levels.at(e.level).insert(slot.key, slot, |s| {
            s.key == slot.key && s.root == slot.root && s.vpid == slot.vpid
        });
    }

    /// Invalidates entries whose (root, vpid) satisfy `f`.
    pub fn invalidate(&mut self, f: impl Fn(u64, u16) -> bool) -> usize {
        self.memo.0 = None;
        self.levels.invalidate(|s| f(s.root, s.vpid))
    }

    /// Invalidates the entries that would translate `gpa`.
    pub fn invalidate_for(&mut self, gpa: u64, root: u64, vpid: u16) -> usize {
        self.memo.0 = None;
        let mut n = 0;
        for level in 2..=5u8 {
            let key = gpa >> key_shift(PagingMode::Level5, level);
            n += self
                .levels
                .at(level)
                .invalidate_all_where(|s| s.key == key && s.root == root && s.vpid == vpid);
        }
        n
    }

    /// Number of valid entries.
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A guest-physical mapping: the nested translation of one 4-KiB
/// guest-physical page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NestedTlbEntry {
    key: u64,
    root: u64,
    vpid: u16,
    hpa: u64,
    shift: u8,
    rights: Rights,
    dirty: bool,
    memory_type: u8,
    ignore_pat: bool,
}

impl Slot for NestedTlbEntry {
    #[inline]
    fn valid(&self) -> bool {
        self.key != 0
    }

    fn sane(&self) -> bool {
        self.hpa < super::array::PHYS_LIMIT && matches!(self.shift, 12 | 21 | 22 | 30)
    }

    /// Entries go in by guest-physical page number ([`ntlb_key`] without
    /// its valid bit).
    #[inline]
    fn array_key(&self) -> u64 {
        self.key >> 1
    }
}

/// The nested TLB.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NestedTlb {
    array: SetAssoc<NestedTlbEntry>,
}

#[inline]
fn ntlb_key(gpa: u64) -> u64 {
    ((gpa >> 12) << 1) | 1
}

impl NestedTlb {
    /// An empty nested TLB.
    pub fn new(g: Geometry) -> Self {
        Self {
            array: SetAssoc::new(g.entries, g.ways),
        }
    }

    /// The cached translation of `gpa`'s page.
    pub fn lookup(&self, gpa: u64, root: u64, vpid: u16) -> Option<NestedTranslation> {
        let key = ntlb_key(gpa);
        self.array
            .find(gpa >> 12, |e| {
                e.key == key && e.root == root && e.vpid == vpid
            })
            .map(|e| {
                let size = match e.shift {
                    12 => PageSize::Size4K,
                    21 => PageSize::Size2M,
                    _ => PageSize::Size1G,
                };
                NestedTranslation {
                    hpa: PhysAddr(e.hpa),
                    size,
                    rights: e.rights,
                    dirty: e.dirty,
                    memory_type: e.memory_type,
                    ignore_pat: e.ignore_pat,
                }
                .at(gpa)
            })
    }

    /// Caches `t` for `gpa`'s page.
    #[inline]
    pub fn fill(&mut self, gpa: u64, root: u64, vpid: u16, t: &NestedTranslation) {
        self.fill_with(gpa, root, vpid, t, true)
    }

    /// [`NestedTlb::fill`] after a [`NestedTlb::lookup`] of `gpa` under
    /// `root` and `vpid` found nothing, with no change since: no entry for
    /// the page and tags can be in the set (the lookup would have found
    /// it), so `t` takes the set's FIFO victim without a search. The same
    /// outcome as `fill` (debug builds check it).
    #[inline]
    pub fn fill_absent(&mut self, gpa: u64, root: u64, vpid: u16, t: &NestedTranslation) {
        self.fill_with(gpa, root, vpid, t, false)
    }

    #[inline(always)]
    fn fill_with(&mut self, gpa: u64, root: u64, vpid: u16, t: &NestedTranslation, search: bool) {
        let e = NestedTlbEntry {
            key: ntlb_key(gpa),
            root,
            vpid,
            hpa: t.hpa.0,
            shift: t.size.shift() as u8,
            rights: t.rights,
            dirty: t.dirty,
            memory_type: t.memory_type,
            ignore_pat: t.ignore_pat,
        };
        let same = |x: &NestedTlbEntry| x.key == e.key && x.root == root && x.vpid == vpid;
        if search {
            self.array.insert(gpa >> 12, e, same);
        } else {
            self.array.insert_absent(gpa >> 12, e, same);
        }
    }

    /// Invalidates entries whose (root, vpid) satisfy `f`.
    pub fn invalidate(&mut self, f: impl Fn(u64, u16) -> bool) -> usize {
        self.array.invalidate_all_where(|e| f(e.root, e.vpid))
    }

    /// Invalidates the entry of `gpa`'s page.
    pub fn invalidate_page(&mut self, gpa: u64, root: u64, vpid: u16) -> usize {
        let key = ntlb_key(gpa);
        self.array.invalidate_in_set(gpa >> 12, |e| {
            e.key == key && e.root == root && e.vpid == vpid
        })
    }

    /// Number of valid entries.
    pub fn len(&self) -> usize {
        self.array.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::format::EPT_R;
    use proptest::prelude::*;

    fn translation(gpa: u64, salt: u8) -> NestedTranslation {
        NestedTranslation {
            hpa: PhysAddr((gpa & !0xfff) ^ ((salt as u64) << 20)),
            size: PageSize::Size4K,
            rights: EPT_R | salt as Rights,
            dirty: salt & 1 != 0,
            memory_type: salt & 7,
            ignore_pat: false,
        }
    }

    proptest! {
        /// A fill after a lookup that found nothing, without a search
        /// ([`NestedTlb::fill_absent`]), leaves the nested TLB as the
        /// searching fill does, on random lookups, fills and
        /// invalidations of colliding pages under two roots and VPIDs.
        #[test]
        fn absent_fills_equal_searching_fills(
            ops in proptest::collection::vec((0u8..4, 0u64..40, 0u64..2, 0u16..2, any::<u8>()), 1..300)
        ) {
            let mut plain = NestedTlb::new(Geometry::new(16, 4));
            let mut quick = plain.clone();
            for (op, page, root, vpid, salt) in ops {
                let gpa = page << 12;
                match op {
                    0 | 1 => {
                        let found = plain.lookup(gpa, root, vpid);
                        prop_assert_eq!(found, quick.lookup(gpa, root, vpid));
                        let t = translation(gpa, salt);
                        plain.fill(gpa, root, vpid, &t);
                        if found.is_none() {
                            quick.fill_absent(gpa, root, vpid, &t);
                        } else {
                            quick.fill(gpa, root, vpid, &t);
                        }
                    }
                    2 => {
                        prop_assert_eq!(
                            plain.invalidate_page(gpa, root, vpid),
                            quick.invalidate_page(gpa, root, vpid)
                        );
                    }
                    _ => {
                        prop_assert_eq!(
                            plain.invalidate(|r, v| r == root && v == vpid),
                            quick.invalidate(|r, v| r == root && v == vpid)
                        );
                    }
                }
                prop_assert_eq!(&plain, &quick);
            }
        }
    }
}
