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
//! Wide sets (more than [`HINTED_WAYS`] ways, such as a fully associative
//! 64-entry L1 TLB) keep a host-side index of their entries' keys
//! ([`Tags`]): per bucket of hashed keys, the mask of ways holding one, so a
//! miss usually costs one load and a hit one comparison instead of a scan
//! of every way. The stored form also has a way-hint table per wide set; no
//! fill ever writes it (it stays all zeros) and lookups never read it: it
//! is kept so snapshots keep their format.

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

/// The tag of a slot that holds no entry (no key is all ones: keys are
/// page numbers or small constants).
const NO_TAG: u64 = u64::MAX;

/// The tag of `e`: its array key if valid, else [`NO_TAG`].
#[inline]
fn tag_of<E: Slot>(e: &E) -> u64 {
    if e.valid() {
        e.array_key()
    } else {
        NO_TAG
    }
}

/// Physical addresses stay below 2^52 (the largest MAXPHYADDR, SDM Vol. 3A
/// 4.1.4).
pub const PHYS_LIMIT: u64 = 1 << 52;

/// Sets wider than this get key-bucket counts (and, stored, a way-hint table).
pub const HINTED_WAYS: u32 = 8;

/// Hint slots per set.
const HINTS: usize = 64;

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
    /// Host-side: the slots' keys, a function of `slots` rebuilt when a
    /// stored array is loaded.
    #[serde(skip)]
    tags: Tags,
}

/// The keys of an array's slots ([`tag_of`] each), so a search reads 8
/// bytes per way and compares whole entries only where the key matches;
/// and for wide sets, per set, a table of way masks: bit `w` of bucket `b`
/// is set when way `w` holds a valid entry whose key falls in `b`
/// ([`Tags::bucket`]); a mask is kept in 16-bit words, so the table of a
/// 16-way set is no larger than a count per bucket would be. A search of a wide set then visits only the ways of
/// its key's bucket, in way order, so it finds what a scan of every way
/// finds. Nothing modelled depends on it: it only says where an entry
/// cannot be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Tags {
    tags: Vec<u64>,
    /// `1 << bucket_bits` way masks per set, for sets wider than
    /// [`HINTED_WAYS`], of `words` 16-bit words each (way `w` is bit
    /// `w % 16` of word `w / 16`); empty otherwise.
    masks: Vec<u16>,
    /// Words per mask.
    words: usize,
    ways: usize,
    /// log2 of the buckets per wide set: four buckets per way (rounded up
    /// to a power of two), so a key that is absent usually finds its bucket
    /// empty even when the set is full.
    bucket_bits: u32,
    /// Set-index bits of a key: a key's bucket is the key bits above them,
    /// modulo the buckets, so the keys of consecutive pages fall in
    /// different buckets.
    set_bits: u32,
    /// Slots holding a valid entry.
    occupied: usize,
}

impl Tags {
    fn new<E: Slot>(slots: &[E], ways: u32) -> Self {
        let wide = ways > HINTED_WAYS;
        let bucket_bits = if wide {
            (ways.next_power_of_two() * 4).trailing_zeros()
        } else {
            0
        };
        let sets = slots.len() / (ways.max(1) as usize);
        let words = (ways as usize).div_ceil(16);
        let mut t = Tags {
            tags: vec![NO_TAG; slots.len()],
            masks: if wide {
                vec![0; (sets << bucket_bits) * words]
            } else {
                Vec::new()
            },
            words,
            ways: ways as usize,
            bucket_bits,
            set_bits: sets.max(1).trailing_zeros(),
            occupied: 0,
        };
        for (i, e) in slots.iter().enumerate() {
            t.set(i, tag_of(e));
        }
        t
    }

    /// True if the array's sets are wide (the masks are kept).
    #[inline]
    fn wide(&self) -> bool {
        !self.masks.is_empty()
    }

    /// The index in `masks` of the first word of `tag`'s bucket of set
    /// `set`.
    #[inline]
    fn bucket(&self, set: usize, tag: u64) -> usize {
        let b = (tag >> self.set_bits) as usize & ((1 << self.bucket_bits) - 1);
        ((set << self.bucket_bits) | b) * self.words
    }

    /// Slot `i` now holds an entry with tag `tag`.
    #[inline]
    fn set(&mut self, i: usize, tag: u64) {
        let set = if self.wide() { i / self.ways } else { 0 };
        self.set_in(i, set, tag);
    }

    /// [`Tags::set`] of slot `i` of set `set` (no division on the fill
    /// path).
    #[inline]
    fn set_in(&mut self, i: usize, set: usize, tag: u64) {
        let old = self.tags[i];
        self.occupied = self.occupied + (tag != NO_TAG) as usize - (old != NO_TAG) as usize;
        if self.wide() {
            let way = i - set * self.ways;
            let (word, bit) = (way / 16, 1u16 << (way % 16));
            if old != NO_TAG {
                let b = self.bucket(set, old) + word;
                self.masks[b] &= !bit;
            }
            if tag != NO_TAG {
                let b = self.bucket(set, tag) + word;
                self.masks[b] |= bit;
            }
        }
        self.tags[i] = tag;
    }

    /// The first slot of the set starting at slot `start` (set number
    /// `set`), in way order, whose tag is `key` and for which `pick`
    /// holds.
    #[inline]
    fn position(
        &self,
        set: usize,
        start: usize,
        key: u64,
        mut pick: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        if self.wide() {
            let b = self.bucket(set, key);
            for (w, &word) in self.masks[b..b + self.words].iter().enumerate() {
                let mut m = word;
                while m != 0 {
                    let i = start + w * 16 + m.trailing_zeros() as usize;
                    if self.tags[i] == key && pick(i) {
                        return Some(i);
                    }
                    m &= m - 1;
                }
            }
            None
        } else {
            (start..start + self.ways).find(|&i| self.tags[i] == key && pick(i))
        }
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

    #[inline]
    fn set_range(&self, key: u64) -> core::ops::Range<usize> {
        let set = (key & (self.sets as u64 - 1)) as usize;
        let w = self.ways as usize;
        set * w..set * w + w
    }

    /// The first entry of `key`'s set, in way order, satisfying `hit`.
    #[inline]
    pub fn find(&self, key: u64, hit: impl Fn(&E) -> bool) -> Option<&E> {
        if self.sets == 0 {
            return None;
        }
        let range = self.set_range(key);
        let set = (key & (self.sets as u64 - 1)) as usize;
        let found = self
            .tags
            .position(set, range.start, key, |i| hit(&self.slots[i]))
            .map(|i| &self.slots[i]);
        debug_assert!(
            core::ptr::eq(
                found.map_or(core::ptr::null(), |e| e as *const E),
                self.slots[range]
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
        let range = self.set_range(key);
        let set = (key & (self.sets as u64 - 1)) as usize;
        let slots = &self.slots;
        let same_at = if search {
            self.tags
                .position(set, range.start, key, |i| same(&slots[i]))
        } else {
            None
        };
        debug_assert_eq!(
            same_at,
            slots[range.clone()]
                .iter()
                .position(|x| x.valid() && same(x))
                .map(|j| range.start + j),
            "a matching entry outside the key's tags, or one a caller said was absent"
        );
        let at = match same_at {
            Some(i) => i,
            None => {
                let way = self.fifo[set] as usize;
                let next = way + 1;
                self.fifo[set] = if next == self.ways as usize { 0 } else { next } as u16;
                range.start + way
            }
        };
        self.slots[at] = e;
        self.tags.set_in(at, set, tag_of(&e));
    }

    /// Invalidates every entry of `key`'s set satisfying `kill`.
    pub fn invalidate_in_set(&mut self, key: u64, kill: impl Fn(&E) -> bool) -> usize {
        if self.sets == 0 {
            return 0;
        }
        let range = self.set_range(key);
        kill_where(&mut self.slots, &mut self.tags, range, kill)
    }

    /// Invalidates every entry satisfying `kill`.
    pub fn invalidate_all_where(&mut self, kill: impl Fn(&E) -> bool) -> usize {
        let all = 0..self.slots.len();
        kill_where(&mut self.slots, &mut self.tags, all, kill)
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
        for (i, s) in self.slots.iter_mut().enumerate() {
            if s.valid() {
                f(s);
                self.tags.set(i, tag_of(s));
            }
        }
    }
}

fn kill_where<E: Slot>(
    slots: &mut [E],
    tags: &mut Tags,
    range: core::ops::Range<usize>,
    kill: impl Fn(&E) -> bool,
) -> usize {
    let mut n = 0;
    for i in range {
        let s = &mut slots[i];
        if s.valid() && kill(s) {
            *s = E::default();
            tags.set(i, NO_TAG);
            n += 1;
        }
    }
    n
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
            keys in prop_oneof![Just(8u64), Just(100), Just(1 << 40)],
            ops in proptest::collection::vec(op(1 << 40), 1..300),
        ) {
            let (entries, ways) = geometry;
            let mut a = SetAssoc::<K>::new(entries, ways);
            let mut n = Naive {
                slots: vec![K::default(); entries as usize],
                fifo: vec![0; (entries / ways) as usize],
                ways: ways as usize,
            };
            // Fold the keys into a range that makes them collide.
            let k = |x: u64| 1 + x % keys;
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
