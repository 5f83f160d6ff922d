//! A set-associative array with FIFO replacement: the storage of every modelled
//! TLB and paging-structure cache.
//!
//! Replacement is first-in first-out per set: a fill that finds no entry for
//! the same key takes the way the set's pointer names and advances the
//! pointer. Hits change nothing, so the hit path does no bookkeeping and
//! results never depend on host speed or hash order. (Real TLBs use
//! pseudo-LRU variants; FIFO gives the same capacity behaviour for streaming
//! and is easy to reason about in tests.)
//!
//! Searches read a host-side index of the entries' keys ([`Tags`]): a
//! 32-bit short tag per way, the tags of 16 ways in one host cache line,
//! apart from the entries, so a miss reads one line per 16 ways and a hit
//! compares one entry. The stored form also has a way-hint table per wide
//! set (more than [`HINTED_WAYS`] ways); no fill ever writes it (it stays
//! all zeros) and lookups never read it: it is kept so snapshots keep
//! their format.

use serde::{Deserialize, Serialize};

/// What the array needs from an entry.
pub trait Slot: Copy + Default {
    /// True if the slot holds an entry.
    fn valid(&self) -> bool;

    /// True if the entry's addresses and shifts are ones a fill produces
    /// (physical addresses below 2^52, page shifts of 12, 21, 22 or 30): what a
    /// restored snapshot must hold before lookups do arithmetic with them.
    fn sane(&self) -> bool {
        true
    }

    /// The key a valid entry is inserted under. Every lookup's `hit` and
    /// every insert's `same` must imply `valid() && array_key() == key`:
    /// the array keeps these keys apart ([`SetAssoc`]'s tags) and compares
    /// an entry only where its tag equals the key looked for.
    fn array_key(&self) -> u64;
}

/// Physical addresses stay below 2^52 (the largest MAXPHYADDR, SDM Vol. 3A
/// 4.1.4).
pub const PHYS_LIMIT: u64 = 1 << 52;

/// Sets wider than this get a way-hint table in the stored form.
pub const HINTED_WAYS: u32 = 8;

/// Hint slots per set.
const HINTS: usize = 64;

/// Ways whose tags share one host cache line (one [`TagRow`]).
const ROW_WAYS: usize = 16;

/// The short tags of up to [`ROW_WAYS`] ways, one host cache line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(64))]
struct TagRow([u32; ROW_WAYS]);

impl TagRow {
    /// True if some way's short tag is `t`: a loop the compiler turns into
    /// four vector compares and one mask test.
    #[inline(always)]
    fn any(&self, t: u32) -> bool {
        let mut a = false;
        for &x in &self.0 {
            a |= x == t;
        }
        a
    }
}

/// The short tag of a slot that holds no entry (every short tag of a key
/// is odd, so it never matches).
const NO_TAG: u32 = 0;

/// The short tag of a key: its bits above the set index, the upper half
/// folded onto the lower, shifted left with the low bit set. Keys of one set
/// that differ only in the 32 set-index-free bits above bit 30 may share a
/// short tag; a search then compares the entries themselves, so a shared
/// short tag only costs a comparison.
#[inline(always)]
fn short_tag(key: u64, set_bits: u32) -> u32 {
    let k = key >> set_bits;
    (((k ^ (k >> 32)) as u32) << 1) | 1
}

/// The short tag of `e`: of its array key if valid, else [`NO_TAG`].
#[inline(always)]
fn tag_of<E: Slot>(e: &E, set_bits: u32) -> u32 {
    if e.valid() {
        short_tag(e.array_key(), set_bits)
    } else {
        NO_TAG
    }
}

/// `sets * ways` slots; set = key mod sets.
///
/// Deserializing checks the geometry (slot, FIFO and hint counts agree with
/// `sets` and `ways`, pointers and hints name existing ways) and every valid
/// entry ([`Slot::sane`]), so a damaged snapshot is an error, not an index
/// out of range on the next lookup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "Stored<E>",
    bound(deserialize = "E: Slot + Deserialize<'de>")
)]
pub struct SetAssoc<E> {
    slots: Vec<E>,
    fifo: Vec<u16>,
    /// For wide sets: `HINTS` entries per set, way + 1 (0 = none).
    hint: Vec<u16>,
    sets: u32,
    ways: u32,
    set_bits: u32,
    /// Host-side: the slots' short tags, a function of `slots` rebuilt when
    /// a stored array is loaded.
    #[serde(skip)]
    tags: Tags,
}

/// The short tags of an array's slots ([`tag_of`] each), kept apart from the
/// entries: per set, whole host cache lines ([`TagRow`]s) of 16 ways, so a
/// search of a set of up to 16 ways reads one line and compares all its
/// tags at once, and compares whole entries only where the short tag
/// matches. A key's entries always have its short tag, so the search finds,
/// in way order, what a scan of every way finds. Nothing modelled depends
/// on it: it only says where an entry cannot be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Tags {
    /// `rows` rows per set; way `w` of set `s` is
    /// `rows[s * rows + w / 16].0[w % 16]`; unused ways hold [`NO_TAG`].
    tags: Vec<TagRow>,
    /// Rows per set.
    rows: usize,
    /// Set-index bits of a key.
    set_bits: u32,
    /// Slots holding a valid entry.
    occupied: usize,
}

impl Tags {
    fn new<E: Slot>(slots: &[E], ways: u32) -> Self {
        let ways = ways as usize;
        let sets = slots.len() / ways.max(1);
        let rows = ways.div_ceil(ROW_WAYS);
        let mut t = Tags {
            tags: vec![TagRow::default(); sets * rows],
            rows,
            set_bits: sets.max(1).trailing_zeros(),
            occupied: 0,
        };
        for (i, e) in slots.iter().enumerate() {
            t.set_in(i / ways, i % ways, tag_of(e, t.set_bits));
        }
        t
    }

    /// Way `way` of set `set` now holds an entry with short tag `tag`.
    #[inline(always)]
    fn set_in(&mut self, set: usize, way: usize, tag: u32) {
        let slot = &mut self.tags[set * self.rows + way / ROW_WAYS].0[way % ROW_WAYS];
        let old = *slot;
        self.occupied = self.occupied + (tag != NO_TAG) as usize - (old != NO_TAG) as usize;
        *slot = tag;
    }

    /// The first way of set `set` (its slots starting at `start`), in way
    /// order, whose short tag is `key`'s and for which `pick` holds: `pick`
    /// implies that the entry has array key `key`, and every such entry has
    /// that short tag, so this is the first way for which `pick` holds.
    #[inline(always)]
    fn position(
        &self,
        set: usize,
        start: usize,
        key: u64,
        mut pick: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let t = short_tag(key, self.set_bits);
        let rows = &self.tags[set * self.rows..(set + 1) * self.rows];
        for (r, row) in rows.iter().enumerate() {
            if !row.any(t) {
                continue;
            }
            for (w, &x) in row.0.iter().enumerate() {
                // Unused ways hold NO_TAG, which no key's short tag equals.
                if x == t && pick(start + r * ROW_WAYS + w) {
                    return Some(start + r * ROW_WAYS + w);
                }
            }
        }
        None
    }
}

/// A [`SetAssoc`] as stored, before its checks.
#[derive(Deserialize)]
struct Stored<E> {
    slots: Vec<E>,
    fifo: Vec<u16>,
    hint: Vec<u16>,
    sets: u32,
    ways: u32,
    set_bits: u32,
}

impl<E: Slot> TryFrom<Stored<E>> for SetAssoc<E> {
    type Error = String;

    fn try_from(s: Stored<E>) -> Result<Self, String> {
        let bad = |what: &str| {
            Err(format!(
                "a set-associative array of {} sets of {} ways with {what}",
                s.sets, s.ways
            ))
        };
        if s.sets == 0 || s.ways == 0 {
            if s.sets != 0 || s.ways != 0 || !s.slots.is_empty() || !s.fifo.is_empty() {
                return bad("slots for no sets");
            }
        } else if !s.sets.is_power_of_two() || s.set_bits != s.sets.trailing_zeros() {
            return bad(&format!("{} set bits", s.set_bits));
        } else if s.ways > u16::MAX as u32
            || (s.sets as u64 * s.ways as u64) != s.slots.len() as u64
            || s.fifo.len() != s.sets as usize
        {
            return bad(&format!(
                "{} slots and {} FIFO pointers",
                s.slots.len(),
                s.fifo.len()
            ));
        }
        let hints = if s.ways > HINTED_WAYS {
            s.sets as usize * HINTS
        } else {
            0
        };
        if s.hint.len() != hints {
            return bad(&format!("{} way hints", s.hint.len()));
        }
        if s.fifo.iter().any(|&w| w as u32 >= s.ways) || s.hint.iter().any(|&h| h as u32 > s.ways) {
            return bad("a pointer past the last way");
        }
        if s.slots.iter().any(|e| e.valid() && !e.sane()) {
            return bad("an entry no fill makes");
        }
        Ok(Self {
            tags: Tags::new(&s.slots, s.ways),
            slots: s.slots,
            fifo: s.fifo,
            hint: s.hint,
            sets: s.sets,
            ways: s.ways,
            set_bits: s.set_bits,
        })
    }
}

impl<E: Slot> SetAssoc<E> {
    /// An array of `entries` slots in sets of `ways`. `entries` must be a
    /// multiple of `ways` with a power-of-two quotient (checked by the config);
    /// zero entries make an array that never holds anything.
    pub fn new(entries: u32, ways: u32) -> Self {
        let (sets, ways) = if entries == 0 || ways == 0 {
            (0, 0)
        } else {
            (entries / ways, ways)
        };
        let hinted = ways > HINTED_WAYS;
        let slots = vec![E::default(); (sets * ways) as usize];
        Self {
            tags: Tags::new(&slots, ways),
            slots,
            fifo: vec![0; sets as usize],
            hint: if hinted {
                vec![0; sets as usize * HINTS]
            } else {
                Vec::new()
            },
            sets,
            ways,
            set_bits: sets.max(1).trailing_zeros(),
        }
    }

    /// True if the array has no slots.
    #[inline]
    pub fn is_absent(&self) -> bool {
        self.sets == 0
    }

    /// True if no slot holds an entry: a lookup cannot hit (one load, for
    /// callers that search several arrays).
    #[inline]
    pub fn is_vacant(&self) -> bool {
        self.tags.occupied == 0
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Number of valid entries.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|e| e.valid()).count()
    }

    /// True if no entry is valid.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The set of `key`.
    #[inline(always)]
    fn set_of(&self, key: u64) -> usize {
        (key & (self.sets as u64).wrapping_sub(1)) as usize
    }

    /// The first entry of `key`'s set, in way order, satisfying `hit`.
    #[inline(always)]
    pub fn find(&self, key: u64, hit: impl Fn(&E) -> bool) -> Option<&E> {
        if self.sets == 0 {
            return None;
        }
        let set = self.set_of(key);
        let start = set * self.ways as usize;
        let found = self
            .tags
            .position(set, start, key, |i| hit(&self.slots[i]))
            .map(|i| &self.slots[i]);
        debug_assert!(
            core::ptr::eq(
                found.map_or(core::ptr::null(), |e| e as *const E),
                self.slots[start..start + self.ways as usize]
                    .iter()
                    .find(|e| hit(e))
                    .map_or(core::ptr::null(), |e| e as *const E)
            ),
            "a hit outside the key's tags"
        );
        found
    }

    /// Inserts `e` into `key`'s set, replacing an entry for which `same`
    /// holds, else the FIFO victim.
    pub fn insert(&mut self, key: u64, e: E, same: impl Fn(&E) -> bool) {
        self.insert_with(key, e, same, true)
    }

    /// [`SetAssoc::insert`] for a caller that knows `key`'s set holds no
    /// entry for which `same` holds (a lookup just missed and nothing was
    /// filled since): `e` takes the FIFO victim without a search. The same
    /// outcome as `insert`, which debug builds check.
    #[inline(always)]
    pub fn insert_absent(&mut self, key: u64, e: E, same: impl Fn(&E) -> bool) {
        self.insert_with(key, e, same, false)
    }

    /// Inlined into the fill paths, so an entry built in registers is
    /// stored once into its slot: passed in memory to a call, its narrow
    /// fields (written one by one) stalled the wide loads that copy it.
    #[inline(always)]
    fn insert_with(&mut self, key: u64, e: E, same: impl Fn(&E) -> bool, search: bool) {
        if self.sets == 0 {
            return;
        }
        let set = self.set_of(key);
        let ways = self.ways as usize;
        let start = set * ways;
        let slots = &self.slots;
        let same_at = if search {
            self.tags.position(set, start, key, |i| same(&slots[i]))
        } else {
            None
        };
        debug_assert_eq!(
            same_at,
            slots[start..start + ways]
                .iter()
                .position(|x| x.valid() && same(x))
                .map(|j| start + j),
            "a matching entry outside the key's tags, or one a caller said was absent"
        );
        let way = match same_at {
            Some(i) => i - start,
            None => {
                let way = self.fifo[set] as usize;
                let next = way + 1;
                self.fifo[set] = if next == ways { 0 } else { next } as u16;
                way
            }
        };
        self.slots[start + way] = e;
        self.tags.set_in(set, way, tag_of(&e, self.set_bits));
    }

    /// Invalidates every entry of `key`'s set satisfying `kill`.
    pub fn invalidate_in_set(&mut self, key: u64, kill: impl Fn(&E) -> bool) -> usize {
        if self.sets == 0 {
            return 0;
        }
        let set = self.set_of(key);
        self.kill_where(set..set + 1, kill)
    }

    /// Invalidates every entry satisfying `kill`.
    pub fn invalidate_all_where(&mut self, kill: impl Fn(&E) -> bool) -> usize {
        self.kill_where(0..self.sets as usize, kill)
    }

    /// Every valid entry.
    pub fn iter(&self) -> impl Iterator<Item = &E> {
        self.slots.iter().filter(|e| e.valid())
    }

    /// Every slot, empty ones included, in slot order.
    pub fn slots(&self) -> impl Iterator<Item = &E> {
        self.slots.iter()
    }

    /// Applies `f` to every valid entry.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut E)) {
        let ways = self.ways as usize;
        for (i, s) in self.slots.iter_mut().enumerate() {
            if s.valid() {
                f(s);
                self.tags
                    .set_in(i / ways, i % ways, tag_of(s, self.set_bits));
            }
        }
    }

    /// Empties the valid slots of `sets` satisfying `kill`; returns how
    /// many.
    fn kill_where(&mut self, sets: core::ops::Range<usize>, kill: impl Fn(&E) -> bool) -> usize {
        let ways = self.ways as usize;
        let mut n = 0;
        for set in sets {
            for way in 0..ways {
                let s = &mut self.slots[set * ways + way];
                if s.valid() && kill(s) {
                    *s = E::default();
                    self.tags.set_in(set, way, NO_TAG);
                    n += 1;
                }
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Default, Debug, PartialEq)]
    struct E(u64);
    impl Slot for E {
        fn valid(&self) -> bool {
            self.0 != 0
        }
        fn array_key(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn fifo_per_set_and_replace_in_place() {
        let mut a = SetAssoc::<E>::new(4, 2); // 2 sets of 2
        a.insert(1, E(1), |x| x.0 == 1);
        a.insert(3, E(3), |x| x.0 == 3);
        a.insert(5, E(5), |x| x.0 == 5); // evicts 1 (first in)
        assert!(a.find(1, |x| x.0 == 1).is_none());
        assert!(a.find(3, |x| x.0 == 3).is_some());
        a.insert(3, E(3), |x| x.0 == 3); // same key: in place, pointer unchanged
        a.insert(7, E(7), |x| x.0 == 7); // evicts 3 (pointer at way 1)
        assert!(a.find(3, |x| x.0 == 3).is_none());
        assert!(a.find(5, |x| x.0 == 5).is_some());
        assert_eq!(a.len(), 2);
        assert_eq!(a.invalidate_all_where(|x| x.0 == 5), 1);
        // A wide (hinted) set finds the same entries.
        let mut wide = SetAssoc::<E>::new(64, 64);
        for k in 1..=100u64 {
            wide.insert(k, E(k), |x| x.0 == k);
        }
        for k in 1..=100u64 {
            assert_eq!(wide.find(k, |x| x.0 == k).is_some(), k > 36, "key {k}");
        }
        wide.invalidate_all_where(|x| x.0 == 99);
        assert!(wide.find(99, |x| x.0 == 99).is_none());
        let mut z = SetAssoc::<E>::new(0, 0);
        z.insert(1, E(1), |_| true);
        assert!(z.find(1, |_| true).is_none() && z.is_absent());
    }

    /// An entry with a key and a second tag: entries may share a key.
    #[derive(Clone, Copy, Default, Debug, PartialEq)]
    struct K {
        key: u64,
        tag: u8,
    }
    impl Slot for K {
        fn valid(&self) -> bool {
            self.key != 0
        }
        fn array_key(&self) -> u64 {
            self.key
        }
    }

    /// The naive array the indexed one must equal: every slot compared, in
    /// way order, FIFO replacement per set.
    struct Naive {
        slots: Vec<K>,
        fifo: Vec<usize>,
        ways: usize,
    }

    impl Naive {
        fn range(&self, key: u64) -> core::ops::Range<usize> {
            let sets = self.fifo.len() as u64;
            let set = (key % sets) as usize;
            set * self.ways..set * self.ways + self.ways
        }
        fn find(&self, key: u64, tag: u8) -> Option<usize> {
            self.range(key)
                .find(|&i| self.slots[i].valid() && self.slots[i] == K { key, tag })
        }
        fn insert(&mut self, e: K) {
            let r = self.range(e.key);
            let at = match r.clone().find(|&i| self.slots[i] == e) {
                Some(i) => i,
                None => {
                    let set = r.start / self.ways;
                    let way = self.fifo[set];
                    self.fifo[set] = (way + 1) % self.ways;
                    r.start + way
                }
            };
            self.slots[at] = e;
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64, u8),
        Find(u64, u8),
        KillInSet(u64, u8),
        KillKey(u64),
        Retag(u8),
    }

    fn op(keys: u64) -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1..keys, 0u8..3).prop_map(|(k, t)| Op::Insert(k, t)),
            4 => (1..keys, 0u8..3).prop_map(|(k, t)| Op::Find(k, t)),
            1 => (1..keys, 0u8..3).prop_map(|(k, t)| Op::KillInSet(k, t)),
            1 => (1..keys).prop_map(Op::KillKey),
            1 => (0u8..3).prop_map(Op::Retag),
        ]
    }

    use proptest::prelude::*;

    /// A key of a family whose members share sets and short tags: `x`
    /// picks the set, a low part `a` and a high part `h`; the key's
    /// set-index-free bits `(a ^ h) + (h << 32)` fold to `a` whatever `h`.
    fn colliding_key(x: u64, set_bits: u32) -> u64 {
        let set = x % (1 << set_bits);
        let a = 1 + ((x >> 8) & 0xff) % 3;
        let h = ((x >> 16) & 0xff) % 4;
        (((a ^ h) + (h << 32)) << set_bits) | set
    }

    #[test]
    fn colliding_keys_share_short_tags() {
        for set_bits in [0, 2, 4] {
            let keys: Vec<u64> = (0..4).map(|h| colliding_key(h << 16, set_bits)).collect();
            let tags: Vec<u32> = keys.iter().map(|&k| short_tag(k, set_bits)).collect();
            assert!(keys.windows(2).all(|w| w[0] != w[1]), "{keys:?}");
            assert!(tags.windows(2).all(|w| w[0] == w[1]), "{tags:?}");
            assert!(tags.iter().all(|&t| t != NO_TAG));
        }
    }

    proptest! {
        /// Searches and fills through the tags and way masks find, replace
        /// and evict exactly what a comparison of every way does, for
        /// narrow sets and wide ones (fully associative 64 ways, 16-way and
        /// 12-way sets), with keys that collide in buckets and sets.
        #[test]
        fn indexed_sets_equal_a_scan_of_every_way(
            geometry in prop_oneof![
                Just((16u32, 4u32)),
                Just((64, 64)),
                Just((32, 32)),
                Just((64, 16)),
                Just((48, 12)),
            ],
            keys in prop_oneof![Just(8u64), Just(100), Just(1 << 40), Just(0)],
            ops in proptest::collection::vec(op(1 << 40), 1..300),
        ) {
            let (entries, ways) = geometry;
            let mut a = SetAssoc::<K>::new(entries, ways);
            let mut n = Naive {
                slots: vec![K::default(); entries as usize],
                fifo: vec![0; (entries / ways) as usize],
                ways: ways as usize,
            };
            // Fold the keys into a range that makes them collide: in sets,
            // or (keys == 0) in sets and short tags, four keys per set and
            // short tag.
            let set_bits = (entries / ways).trailing_zeros();
            let k = |x: u64| {
                if keys == 0 {
                    colliding_key(x, set_bits)
                } else {
                    1 + x % keys
                }
            };
            for o in ops {
                match o {
                    Op::Insert(key, tag) => {
                        let e = K { key: k(key), tag };
                        a.insert(e.key, e, |x| *x == e);
                        n.insert(e);
                    }
                    Op::Find(key, tag) => {
                        let e = K { key: k(key), tag };
                        prop_assert_eq!(
                            a.find(e.key, |x| *x == e).copied(),
                            n.find(e.key, tag).map(|i| n.slots[i])
                        );
                    }
                    Op::KillInSet(key, tag) => {
                        let e = K { key: k(key), tag };
                        let killed = a.invalidate_in_set(e.key, |x| x.tag == tag);
                        let r = n.range(e.key);
                        let mut m = 0;
                        for i in r {
                            if n.slots[i].valid() && n.slots[i].tag == tag {
                                n.slots[i] = K::default();
                                m += 1;
                            }
                        }
                        prop_assert_eq!(killed, m);
                    }
                    Op::KillKey(key) => {
                        let key = k(key);
                        let killed = a.invalidate_all_where(|x| x.key == key);
                        let mut m = 0;
                        for s in n.slots.iter_mut() {
                            if s.valid() && s.key == key {
                                *s = K::default();
                                m += 1;
                            }
                        }
                        prop_assert_eq!(killed, m);
                    }
                    Op::Retag(tag) => {
                        a.for_each_mut(|x| x.tag = tag);
                        for s in n.slots.iter_mut().filter(|s| s.valid()) {
                            s.tag = tag;
                        }
                    }
                }
                prop_assert_eq!(a.slots().copied().collect::<Vec<_>>(), n.slots.clone());
                prop_assert_eq!(a.is_vacant(), n.slots.iter().all(|s| !s.valid()));
            }
        }
    }
}
