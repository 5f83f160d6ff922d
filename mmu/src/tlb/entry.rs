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

/// One TLB level: one array per page size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlbLevel {
    small: SetAssoc<TlbEntry>,
    large: SetAssoc<TlbEntry>,
    huge: SetAssoc<TlbEntry>,
    /// Some entry is smaller than its guest page, so invalidating one linear
    /// page must also look at other slots (SDM Vol. 3A 4.10.2.3).
    fragments: bool,
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
        }
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

    /// Looks `la` up under `tag`, smallest page size first.
    #[inline]
    pub fn lookup(&self, la: u64, tag: &Tag) -> Option<&TlbEntry> {
        for code in [CODE_4K, CODE_2M, CODE_1G] {
            let key = TlbEntry::make_key(la, code);
            if let Some(e) = self
                .array(code)
                .find(key >> 2, |e| e.key == key && e.tagged(tag))
            {
                return Some(e);
            }
        }
        None
    }

    /// Caches `e`, replacing an entry with the same key and tags.
    pub fn insert(&mut self, e: TlbEntry) {
        let code = e.key & 3;
        if e.guest_shift as u32 > e.shift() && !self.array(code).is_absent() {
            self.fragments = true;
        }
        self.array_mut(code).insert(e.key >> 2, e, |x| {
            x.key == e.key && x.vpid == e.vpid && x.root == e.root && x.pcid == e.pcid
        });
    }

    /// Invalidates every entry `scope` selects. Returns how many.
    pub fn invalidate(&mut self, scope: &Scope) -> usize {
        match scope.page {
            Some(la) if !self.fragments => {
                let mut n = 0;
                for code in [CODE_4K, CODE_2M, CODE_1G] {
                    let key = TlbEntry::make_key(la, code);
                    n += self.array_mut(code).invalidate_in_set(key >> 2, |e| {
                        scope.selects_tlb(e) && e.guest_page_contains(la)
                    });
                }
                n
            }
            _ => {
                let f = |e: &TlbEntry| {
                    scope.selects_tlb(e)
                        && match scope.page {
                            Some(la) => e.guest_page_contains(la),
                            None => true,
                        }
                };
                let n = self.small.invalidate_all_where(f)
                    + self.large.invalidate_all_where(f)
                    + self.huge.invalidate_all_where(f);
                if scope.page.is_none() && scope.is_everything() {
                    self.fragments = false;
                }
                n
            }
        }
    }

    /// Every valid entry (for tests and viewers).
    pub fn entries(&self) -> impl Iterator<Item = &TlbEntry> {
        self.small
            .iter()
            .chain(self.large.iter())
            .chain(self.huge.iter())
    }
}
