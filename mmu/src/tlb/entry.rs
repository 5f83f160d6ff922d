//! TLB entries, their tags, and one TLB level (three arrays by page size).
//!
//! An entry holds exactly what the interpreter's fast path needs: the
//! machine-physical frame, the guest rights (checked against the current
//! [`PermPolicy`] on every hit, so CR0.WP, SMAP, RFLAGS.AC and PKRU changes
//! take effect without a flush), what the nested dimension allows, and
//! whether a write can proceed without a walk to set a dirty flag.

use super::array::{SetAssoc, Slot};
use super::scope::Scope;
use super::Geometry;
use super::TlbLevelConfig;
use crate::paging::format::Rights;
use crate::paging::perm::PermPolicy;
use crate::paging::{Access, AccessKind};
use serde::{Deserialize, Serialize};

/// The tags a translation is cached under (SDM Vol. 3A 4.10.1; SDM Vol. 3C
/// 29.4.1; APM Vol. 2 15.16).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tag {
    /// VPID (Intel) or ASID (AMD); 0 outside a guest or with VPIDs disabled.
    pub vpid: u16,
    /// PCID (0 without CR4.PCIDE).
    pub pcid: u16,
    /// EP4TA or nCR3 for combined mappings; 0 for linear mappings.
    pub root: u64,
}

/// PCID field flag: the entry is global and matches every PCID.
pub const GLOBAL: u16 = 1 << 15;

/// `nested_ok` bits: the nested dimension allows reads, writes, fetches.
pub const OK_READ: u8 = 1;
/// See [`OK_READ`].
pub const OK_WRITE: u8 = 2;
/// See [`OK_READ`].
pub const OK_FETCH: u8 = 4;

/// `flags`: a write needs no walk (guest dirty flag set, and the nested one
/// where the nested dimension has dirty flags).
pub const DIRTY_OK: u8 = 1;

/// Size codes in the low two bits of a key.
const CODE_4K: u64 = 1;
const CODE_2M: u64 = 2;
const CODE_1G: u64 = 3;

/// One cached translation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlbEntry {
    /// `(la >> shift) << 2 | size code`; 0 marks an empty slot.
    pub key: u64,
    /// Root tag (EP4TA / nCR3, or 0).
    pub root: u64,
    /// Machine-physical base of the cached page.
    pub frame: u64,
    /// VPID / ASID.
    pub vpid: u16,
    /// PCID, with [`GLOBAL`] for global entries.
    pub pcid: u16,
    /// Guest rights (W/U/X bits of [`crate::paging::format`]).
    pub rights: Rights,
    /// What the nested dimension allows ([`OK_READ`] ...).
    pub nested_ok: u8,
    /// [`DIRTY_OK`].
    pub flags: u8,
    /// Protection key.
    pub pkey: u8,
    /// log2 of the guest page this entry was cut from (larger than the entry
    /// when a big guest page is mapped by smaller nested pages, or for the
    /// 2-MiB halves of a 4-MiB page).
    pub guest_shift: u8,
    /// The [`TlbLevel`]'s flush clock when the entry was filled: the entry is
    /// live while no whole-VPID or whole-TLB flush came after (see
    /// [`TlbLevel::invalidate`]). Set by the level on insertion.
    pub stamp: u32,
}

// The hit path reads one entry per probed way: keep it small.
const _: () = assert!(core::mem::size_of::<TlbEntry>() <= 40);

impl Slot for TlbEntry {
    #[inline]
    fn valid(&self) -> bool {
        self.key != 0
    }

    fn sane(&self) -> bool {
        self.frame < super::array::PHYS_LIMIT && matches!(self.guest_shift, 12 | 21 | 22 | 30)
    }

    /// Entries go in by their key without the page-size code.
    #[inline]
    fn array_key(&self) -> u64 {
        self.key >> 2
    }
}

/// log2 of an entry's page size from its key code.
#[inline]
pub const fn code_shift(code: u64) -> u32 {
    match code {
        CODE_4K => 12,
        CODE_2M => 21,
        _ => 30,
    }
}

/// The key code for a page of `1 << shift` bytes (4-MiB pages are held as
/// 2-MiB halves).
#[inline]
pub const fn code_for_shift(shift: u32) -> u64 {
    match shift {
        12 => CODE_4K,
        21 | 22 => CODE_2M,
        _ => CODE_1G,
    }
}

impl TlbEntry {
    /// Builds the key of the entry of `1 << shift` bytes containing `la`.
    #[inline]
    pub const fn make_key(la: u64, code: u64) -> u64 {
        ((la >> code_shift(code)) << 2) | code
    }

    /// log2 of the entry's page size.
    #[inline]
    pub fn shift(&self) -> u32 {
        code_shift(self.key & 3)
    }

    /// Linear base of the entry's page.
    #[inline]
    pub fn linear_base(&self) -> u64 {
        (self.key >> 2) << self.shift()
    }

    /// True if the entry is global.
    #[inline]
    pub fn global(&self) -> bool {
        self.pcid & GLOBAL != 0
    }

    /// True if the entry is cached under `tag` (global entries match any
    /// PCID, SDM Vol. 3A 4.10.2.4).
    #[inline]
    pub fn tagged(&self, tag: &Tag) -> bool {
        self.vpid == tag.vpid
            && self.root == tag.root
            && (self.pcid == tag.pcid || self.pcid & GLOBAL != 0)
    }

    /// The machine-physical address of `la`.
    #[inline]
    pub fn pa(&self, la: u64) -> u64 {
        self.frame | (la & ((1u64 << self.shift()) - 1))
    }

    /// The access check on a hit: a handful of branches, no memory access.
    /// False sends the access to the walker, which decides exactly.
    #[inline]
    pub fn permits(&self, access: Access, policy: &PermPolicy) -> bool {
        let need = match access.kind {
            AccessKind::Read => OK_READ,
            AccessKind::Write => {
                if self.flags & DIRTY_OK == 0 {
                    return false;
                }
                OK_WRITE
            }
            AccessKind::Execute => OK_FETCH,
        };
        self.nested_ok & need != 0
            && !policy.denied(self.rights, access)
            && !policy.key_denies(self.rights, self.pkey, access)
    }

    /// True if `la` lies in the guest page this entry was cut from.
    #[inline]
    pub fn guest_page_contains(&self, la: u64) -> bool {
        let mask = !((1u64 << self.guest_shift) - 1);
        self.linear_base() & mask == la & mask
    }
}

/// The entry of `array` (holding pages of size `code`) for `la` live under
/// `tag` with flush floor `floor`. Written out per array by
/// [`TlbLevel::lookup`] (not a loop over the size codes), so each probe's
/// key arithmetic is constant-folded.
#[inline(always)]
fn probe<'a>(
    array: &'a SetAssoc<TlbEntry>,
    la: u64,
    code: u64,
    tag: &Tag,
    floor: u32,
) -> Option<&'a TlbEntry> {
    if array.is_vacant() {
        return None;
    }
    let key = TlbEntry::make_key(la, code);
    array.find(key >> 2, |e| {
        e.key == key && e.tagged(tag) && e.stamp >= floor
    })
}

/// One TLB level: one array per page size.
///
/// The flushes a VM entry or exit without VPIDs makes (every mapping of VPID
/// 0, SDM Vol. 3C 29.4.3.1), and the whole-ASID and whole-TLB flushes of
/// TLB_CONTROL, cost O(1): each entry carries the flush clock of its
/// insertion ([`TlbEntry::stamp`]), and such a flush only advances the clock
/// and raises the floor below which entries of that VPID (or every VPID) are
/// dead. A dead entry behaves exactly like an empty slot everywhere (lookups,
/// replacement of a same-key entry, counted invalidations, iteration), so
/// the modelled outcome is the one an eager sweep gives. Other scopes sweep.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TlbLevel {
    small: SetAssoc<TlbEntry>,
    large: SetAssoc<TlbEntry>,
    huge: SetAssoc<TlbEntry>,
    /// Some entry is smaller than its guest page, so invalidating one linear
    /// page must also look at other slots (SDM Vol. 3A 4.10.2.3).
    fragments: bool,
    /// The flush clock: entries inserted now get this stamp.
    clock: u32,
    /// Entries stamped below this are dead whatever their VPID.
    floor_all: u32,
    /// Per VPID/ASID: entries of that VPID stamped below are dead (grown on
    /// demand; absent means 0).
    floor_vpid: Vec<u32>,
    /// Host-side: counts the changes of the arrays of 2-MiB and 1-GiB
    /// entries and of the flush floors (every fill of those arrays, every
    /// invalidation), for [`BigMiss`].
    #[serde(skip)]
    big_clock: u64,
    /// Identifies the level's content for host-side caches (see
    /// [`Generation`]); not part of the modelled state.
    #[serde(skip)]
    generation: Generation,
    /// Host-side: the last 2-MiB region and tags for which the arrays of
    /// large and huge pages held nothing ([`TlbLevel::lookup_noting`]).
    #[serde(skip)]
    big_miss: core::cell::Cell<BigMiss>,
}

/// A lookup's finding that the arrays of 2-MiB and 1-GiB entries hold no
/// live entry for a 2-MiB region under some tags, valid while those arrays
/// and the flush floors are unchanged: `clock` is the level's
/// [`TlbLevel::big_clock`] then. (A 2-MiB region lies in one 1-GiB page, so
/// both arrays' lookups are functions of the region, the tags, the floor of
/// the tags' VPID and the arrays' content.) Host-side only.
#[derive(Clone, Copy, Debug, Default)]
struct BigMiss {
    valid: bool,
    region: u64,
    tag: Tag,
    clock: u64,
}

impl PartialEq for TlbLevel {
    /// Modelled state only: the live entries in their slots and the
    /// fragments flag (the stamps and floors are how dead entries are
    /// represented, the generation is host-side).
    fn eq(&self, other: &Self) -> bool {
        let live = |l: &TlbLevel| -> Vec<Option<TlbEntry>> {
            [&l.small, &l.large, &l.huge]
                .into_iter()
                .flat_map(|a| a.slots())
                .map(|e| l.live(e).then_some(TlbEntry { stamp: 0, ..*e }))
                .collect()
        };
        self.fragments == other.fragments && live(self) == live(other)
    }
}
impl Eq for TlbLevel {}

/// A value that identifies the content of a [`TlbLevel`] for the life of the
/// process, so two levels with the same generation hold the same entries.
/// Host-side caches in front of the modelled TLB (the interpreter's page
/// cache) key their entries on it. It never reaches modelled state, output
/// or equality.
///
/// The high bits name the level instance, drawn from a process-wide counter
/// when a level is made or cloned; the low bits count the changes of that
/// instance's content. A change is then a plain increment (the fill path
/// does no atomic operation), and two instances never share a value: a
/// clone draws its own instance, which only makes host-side caches miss
/// once.
#[derive(Debug)]
pub struct Generation(u64);

/// Bits of [`Generation`] counting changes within one instance.
const GENERATION_CHANGE_BITS: u32 = 32;

impl Generation {
    fn fresh() -> Self {
        use core::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Generation(NEXT.fetch_add(1, Ordering::Relaxed) << GENERATION_CHANGE_BITS)
    }

    /// The content changed.
    #[inline]
    fn bump(&mut self) {
        self.0 += 1;
        if self.0 & ((1 << GENERATION_CHANGE_BITS) - 1) == 0 {
            *self = Self::fresh();
        }
    }
}

impl Clone for Generation {
    fn clone(&self) -> Self {
        Self::fresh()
    }
}

impl Default for Generation {
    fn default() -> Self {
        Self::fresh()
    }
}

impl TlbLevel {
    /// Builds the arrays.
    pub fn new(c: &TlbLevelConfig) -> Self {
        let mk = |g: Geometry| SetAssoc::new(g.entries, g.ways);
        Self {
            small: mk(c.small),
            large: mk(c.large),
            huge: mk(c.huge),
            fragments: false,
            clock: 0,
            floor_all: 0,
            floor_vpid: Vec::new(),
            big_clock: 0,
            generation: Generation::fresh(),
            big_miss: Default::default(),
        }
    }

    /// The generation of the current content (see [`Generation`]).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.0
    }

    /// The stamp below which entries of `vpid` are dead.
    #[inline]
    fn floor(&self, vpid: u16) -> u32 {
        let v = self.floor_vpid.get(vpid as usize).copied().unwrap_or(0);
        v.max(self.floor_all)
    }

    /// True if the slot holds an entry no lazy flush has killed.
    #[inline]
    fn live(&self, e: &TlbEntry) -> bool {
        e.valid() && e.stamp >= self.floor(e.vpid)
    }

    /// Advances the flush clock; when it would wrap, first empties every
    /// dead slot and restamps the live ones (deterministic, and rare: once
    /// per 2^32 lazy flushes).
    fn tick(&mut self) -> u32 {
        if self.clock == u32::MAX {
            let floors = (self.floor_all, core::mem::take(&mut self.floor_vpid));
            let dead = |e: &TlbEntry| {
                let v = floors.1.get(e.vpid as usize).copied().unwrap_or(0);
                e.stamp < v.max(floors.0)
            };
            for a in [&mut self.small, &mut self.large, &mut self.huge] {
                a.invalidate_all_where(dead);
                a.for_each_mut(|e| e.stamp = 0);
            }
            self.floor_all = 0;
            self.clock = 0;
        }
        self.clock += 1;
        self.clock
    }

    fn array(&self, code: u64) -> &SetAssoc<TlbEntry> {
        match code {
            CODE_4K => &self.small,
            CODE_2M => &self.large,
            _ => &self.huge,
        }
    }

    fn array_mut(&mut self, code: u64) -> &mut SetAssoc<TlbEntry> {
        match code {
            CODE_4K => &mut self.small,
            CODE_2M => &mut self.large,
            _ => &mut self.huge,
        }
    }

    /// Looks `la` up under `tag`, smallest page size first, in the arrays
    /// that hold any entry.
    ///
    /// When the arrays of large and huge pages hold nothing for `la`'s
    /// 2-MiB region under `tag`, the level remembers it (host-side,
    /// [`BigMiss`]), and the next lookups in that region, while those
    /// arrays and the flush floors are unchanged, probe only the array of
    /// 4-KiB pages: the same result (debug builds check it).
    #[inline]
    pub fn lookup(&self, la: u64, tag: &Tag) -> Option<&TlbEntry> {
        let floor = self.floor(tag.vpid);
        if let Some(e) = probe(&self.small, la, CODE_4K, tag, floor) {
            return Some(e);
        }
        let region = la >> 21;
        let m = self.big_miss.get();
        if m.valid && m.region == region && m.clock == self.big_clock && m.tag == *tag {
            debug_assert!(
                probe(&self.large, la, CODE_2M, tag, floor).is_none()
                    && probe(&self.huge, la, CODE_1G, tag, floor).is_none(),
                "a stale large-page miss"
            );
            return None;
        }
        let found = probe(&self.large, la, CODE_2M, tag, floor)
            .or_else(|| probe(&self.huge, la, CODE_1G, tag, floor));
        if found.is_none() {
            self.big_miss.set(BigMiss {
                valid: true,
                region,
                tag: *tag,
                clock: self.big_clock,
            });
        }
        found
    }

    /// Caches `e`, replacing a live entry with the same key and tags.
    pub fn insert(&mut self, e: TlbEntry) {
        self.insert_with(e, true);
    }

    /// [`TlbLevel::insert`] of an entry for a linear address whose
    /// [`TlbLevel::lookup`] under a tag the entry matches
    /// ([`TlbEntry::tagged`]) found nothing, with no change to the level
    /// since: a live entry with the same key and tags would match that tag
    /// too and have been found, so `e` takes its set's FIFO victim without
    /// a search.
    /// Returns true if the level holds `e` now (false when it has no array
    /// for its page size).
    #[inline]
    pub fn insert_absent(&mut self, e: TlbEntry) -> bool {
        self.insert_with(e, false)
    }

    #[inline(always)]
    fn insert_with(&mut self, mut e: TlbEntry, search: bool) -> bool {
        self.generation.bump();
        let code = e.key & 3;
        if self.array(code).is_absent() {
            return false;
        }
        if code != CODE_4K {
            self.big_clock += 1;
        }
        if e.guest_shift as u32 > e.shift() {
            self.fragments = true;
        }
        e.stamp = self.clock;
        let floor = self.floor(e.vpid);
        let same = |x: &TlbEntry| {
            x.key == e.key
                && x.vpid == e.vpid
                && x.root == e.root
                && x.pcid == e.pcid
                && x.stamp >= floor
        };
        let array = self.array_mut(code);
        if search {
            array.insert(e.key >> 2, e, same);
        } else {
            array.insert_absent(e.key >> 2, e, same);
        }
        true
    }

    /// Invalidates every entry `scope` selects. Returns how many live
    /// entries that was, except for the flushes of a whole VPID or of
    /// everything, which are O(1) and return 0.
    pub fn invalidate(&mut self, scope: &Scope) -> usize {
        self.generation.bump();
        self.big_clock += 1;
        if scope.is_everything() {
            self.floor_all = self.tick();
            self.fragments = false;
            return 0;
        }
        if let Some(v) = scope.whole_vpid() {
            let clock = self.tick();
            let v = v as usize;
            if self.floor_vpid.len() <= v {
                self.floor_vpid.resize(v + 1, 0);
            }
            self.floor_vpid[v] = clock;
            return 0;
        }
        self.sweep(scope)
    }

    /// Invalidates the live entries `scope` selects by looking at each
    /// candidate slot. Returns how many.
    fn sweep(&mut self, scope: &Scope) -> usize {
        self.big_clock += 1;
        let (floor_all, floors) = (self.floor_all, &self.floor_vpid);
        let live = |e: &TlbEntry| {
            e.stamp
                >= floors
                    .get(e.vpid as usize)
                    .copied()
                    .unwrap_or(0)
                    .max(floor_all)
        };
        match scope.page {
            Some(la) if !self.fragments => {
                let mut n = 0;
                for code in [CODE_4K, CODE_2M, CODE_1G] {
                    let key = TlbEntry::make_key(la, code);
                    let a = match code {
                        CODE_4K => &mut self.small,
                        CODE_2M => &mut self.large,
                        _ => &mut self.huge,
                    };
                    n += a.invalidate_in_set(key >> 2, |e| {
                        live(e) && scope.selects_tlb(e) && e.guest_page_contains(la)
                    });
                }
                n
            }
            _ => {
                let f = |e: &TlbEntry| {
                    live(e)
                        && scope.selects_tlb(e)
                        && match scope.page {
                            Some(la) => e.guest_page_contains(la),
                            None => true,
                        }
                };
                self.small.invalidate_all_where(f)
                    + self.large.invalidate_all_where(f)
                    + self.huge.invalidate_all_where(f)
            }
        }
    }

    /// Every live entry (for tests and viewers).
    pub fn entries(&self) -> impl Iterator<Item = &TlbEntry> {
        self.small
            .iter()
            .chain(self.large.iter())
            .chain(self.huge.iter())
            .filter(|e| self.live(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlb::scope::{GlobalRule, RootSel, VpidSel};
    use proptest::prelude::*;

    fn entry(page: u64, code: u64, vpid: u16, pcid: u16, root: u64) -> TlbEntry {
        TlbEntry {
            key: TlbEntry::make_key(page << 12, code),
            root,
            frame: page << 12,
            vpid,
            pcid,
            guest_shift: code_shift(code) as u8,
            ..TlbEntry::default()
        }
    }

    #[derive(Clone, Debug)]
    enum Step {
        Insert(u64, u64, u16, u16, u64),
        Flush(Scope),
    }

    fn scope() -> impl Strategy<Value = Scope> {
        let vpid = prop_oneof![
            Just(VpidSel::Any),
            (0u16..3).prop_map(VpidSel::Only),
            Just(VpidSel::NonZero)
        ];
        let root = prop_oneof![
            Just(RootSel::Any),
            (0u64..2).prop_map(RootSel::Only),
            Just(RootSel::Combined)
        ];
        let globals = prop_oneof![
            Just(GlobalRule::Keep),
            Just(GlobalRule::Flush),
            Just(GlobalRule::FlushAnyPcid)
        ];
        let page = proptest::option::of((0u64..64).prop_map(|p| p << 12));
        let whole = (0u16..3).prop_map(Scope::vpid);
        prop_oneof![
            (vpid, proptest::option::of(0u16..2), root, page, globals).prop_map(
                |(vpid, pcid, root, page, globals)| Scope {
                    vpid,
                    pcid,
                    root,
                    page,
                    globals,
                }
            ),
            whole,
            Just(Scope::ALL),
        ]
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u64..64, 1u64..4, 0u16..3, prop_oneof![0u16..2, Just(GLOBAL)], 0u64..2)
                .prop_map(|(p, c, v, pc, r)| Step::Insert(p, c, v, pc, r)),
            1 => scope().prop_map(Step::Flush),
        ]
    }

    /// [`TlbLevel::lookup`] without its memo: every array probed.
    fn lookup_every_array<'a>(l: &'a TlbLevel, la: u64, tag: &Tag) -> Option<&'a TlbEntry> {
        let floor = l.floor(tag.vpid);
        probe(&l.small, la, CODE_4K, tag, floor)
            .or_else(|| probe(&l.large, la, CODE_2M, tag, floor))
            .or_else(|| probe(&l.huge, la, CODE_1G, tag, floor))
    }

    proptest! {
        /// Lookups that trust the memo of a large-page miss ([`BigMiss`])
        /// find what probing every array finds, through fills of every page
        /// size and flushes of every scope, with lookups that stay in one
        /// 2-MiB region and ones that move between regions and tags.
        #[test]
        fn large_page_miss_memo_equals_probing_every_array(
            steps in proptest::collection::vec(step(), 1..120),
            looks in proptest::collection::vec((0u64..1024, 0u16..3, 0u16..2, 0u64..2), 1..40),
        ) {
            let cfg = TlbLevelConfig {
                small: Geometry::new(16, 4),
                large: Geometry::new(8, 8),
                huge: Geometry::new(16, 16),
            };
            let mut l = TlbLevel::new(&cfg);
            for s in &steps {
                match *s {
                    // Pages spread over 2-MiB regions too.
                    Step::Insert(p, c, v, pc, r) => l.insert(entry(p * 97 % 1024, c, v, pc, r)),
                    Step::Flush(scope) => {
                        l.invalidate(&scope);
                    }
                }
                for &(p, vpid, pcid, root) in &looks {
                    let tag = Tag { vpid, pcid, root };
                    let la = p << 12;
                    prop_assert_eq!(
                        l.lookup(la, &tag).map(|e| e as *const TlbEntry),
                        lookup_every_array(&l, la, &tag).map(|e| e as *const TlbEntry)
                    );
                }
            }
        }

        /// The O(1) flushes of a whole VPID or of everything leave the level
        /// observably as an eager sweep does: same lookups, same live
        /// entries in the same slots, same replacement afterwards.
        #[test]
        fn lazy_flushes_equal_sweeps(steps in proptest::collection::vec(step(), 1..200)) {
            let cfg = TlbLevelConfig {
                small: Geometry::new(16, 4),
                large: Geometry::new(8, 8),
                huge: Geometry::new(16, 16),
            };
            let mut lazy = TlbLevel::new(&cfg);
            let mut eager = TlbLevel::new(&cfg);
            for s in &steps {
                match *s {
                    Step::Insert(p, c, v, pc, r) => {
                        lazy.insert(entry(p, c, v, pc, r));
                        eager.insert(entry(p, c, v, pc, r));
                    }
                    Step::Flush(scope) => {
                        lazy.invalidate(&scope);
                        eager.sweep(&scope);
                        if scope.is_everything() {
                            eager.fragments = false;
                        }
                    }
                }
                prop_assert_eq!(&lazy, &eager);
                for p in 0..64u64 {
                    for v in 0..3u16 {
                        for pcid in 0..2u16 {
                            for root in 0..2u64 {
                                let tag = Tag { vpid: v, pcid, root };
                                prop_assert_eq!(
                                    lazy.lookup(p << 12, &tag).map(|e| e.key),
                                    eager.lookup(p << 12, &tag).map(|e| e.key)
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
