//! The one walk loop every format and dimension uses, and the accessed/dirty
//! update that follows a successful walk.
//!
//! The loop reads one entry per level through a [`Tables`] implementation,
//! which decides how a paging-structure address becomes a machine-physical one:
//! directly (one-dimensional walks, and the nested dimension itself), or
//! through EPT/NPT (the guest dimension of a two-dimensional walk, where each
//! guest table address is a guest-physical address, SDM Vol. 3C 29.3.2 and
//! APM Vol. 2 15.25.5).

use super::format::{Decoded, Format, Rights};
use super::mem::{EntrySize, PhysMemory};
use super::record::{Dimension, RefKind, WalkRecorder, WalkRef};
use super::PageSize;
use crate::{GuestPhysAddr, PhysAddr};

/// Where a paging structure is: its address in the walk's input space
/// (guest-physical in the guest dimension of a 2-D walk) and, when already
/// known (the root of a 1-D walk, or a paging-structure-cache hit), its
/// machine-physical base and whether the nested dimension lets the processor
/// write it (for A/D updates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableLoc {
    /// Input-space base address of the table.
    pub base: u64,
    /// Where the table is in machine-physical memory, if known.
    pub host: Option<HostTable>,
}

/// A paging structure's machine-physical location and what the nested
/// dimension allows on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostTable {
    /// Machine-physical base address.
    pub base: u64,
    /// The nested dimension lets the processor write it (for A/D updates).
    pub writable: bool,
    /// The nested rights of its page (all ones without nested paging).
    pub rights: Rights,
}

impl TableLoc {
    /// A table whose input-space address is also its machine-physical address.
    #[inline]
    pub const fn direct(base: u64) -> Self {
        Self {
            base,
            host: Some(HostTable {
                base,
                writable: true,
                rights: !0,
            }),
        }
    }
    /// A table known only by its guest-physical address.
    #[inline]
    pub const fn guest(base: u64) -> Self {
        Self { base, host: None }
    }
}

/// Where a walk starts: the level of the first entry to read, the table
/// holding it, and the rights accumulated above it (all ones at the root).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Start {
    /// Level of the first entry read.
    pub level: u8,
    /// The table containing it.
    pub table: TableLoc,
    /// Rights ANDed over the levels above (from a paging-structure cache).
    pub rights: Rights,
}

/// One entry read by a walk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Value read.
    pub entry: u64,
    /// Machine-physical address of the entry.
    pub pa: u64,
    /// Input-space (guest-physical in 2-D) address of the entry.
    pub addr: u64,
    /// Whether the nested dimension lets the processor write the entry.
    pub writable: bool,
    /// The nested rights of the entry's page (all ones without nesting).
    pub nrights: Rights,
}

/// The entries a successful walk read, from `top` down to `leaf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Path {
    /// Steps indexed by level (index 0 unused).
    pub steps: [Step; 6],
    /// Highest level read from memory.
    pub top: u8,
    /// Level of the leaf entry.
    pub leaf: u8,
    /// Rights ANDed over every level (including those from a cache).
    pub rights: Rights,
    /// Output-space base of the page.
    pub frame: u64,
    /// Page size.
    pub size: PageSize,
}

impl Path {
    /// A path with nothing read yet, for [`walk`] to fill.
    pub const EMPTY: Path = Path {
        steps: [Step {
            entry: 0,
            pa: 0,
            addr: 0,
            writable: false,
            nrights: 0,
        }; 6],
        top: 0,
        leaf: 0,
        rights: 0,
        frame: 0,
        size: PageSize::Size4K,
    };

    /// The leaf entry.
    #[inline]
    pub fn leaf_entry(&self) -> u64 {
        self.steps[self.leaf as usize].entry
    }
    /// Output-space address of `addr` within the page.
    #[inline]
    pub fn output(&self, addr: u64) -> u64 {
        self.frame | (addr & self.size.offset_mask())
    }
}

/// Why a walk stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError<F> {
    /// The entry at `level` is not present.
    NotPresent {
        /// Level of the entry.
        level: u8,
        /// Rights ANDed down to and including that entry.
        rights: Rights,
    },
    /// The entry at `level` sets a reserved bit (or, for EPT, is
    /// misconfigured).
    Reserved {
        /// Level of the entry.
        level: u8,
    },
    /// Accessing the table failed in the nested dimension.
    Table(F),
}

/// How a walk reaches its tables.
pub trait Tables {
    /// A failure translating a table's address.
    type Fault;
    /// Reads the entry at byte `offset` of `table`, the table for `level`.
    fn read(&mut self, level: u8, table: &TableLoc, offset: u64) -> Result<Step, Self::Fault>;
}

/// Tables addressed by machine-physical addresses: the nested dimension, and
/// the guest dimension when there is no nested paging.
pub struct DirectTables<'a, M: ?Sized, R: ?Sized> {
    /// Memory.
    pub mem: &'a mut M,
    /// Recorder.
    pub rec: &'a mut R,
    /// Dimension to report references in.
    pub dimension: Dimension,
    /// Entry width.
    pub size: EntrySize,
    /// Reported with nested references: the guest level being served.
    pub for_guest_level: Option<u8>,
    /// References made so far.
    pub reads: u64,
}

impl<M: PhysMemory + ?Sized, R: WalkRecorder + ?Sized> Tables for DirectTables<'_, M, R> {
    type Fault = core::convert::Infallible;

    #[inline]
    fn read(&mut self, level: u8, table: &TableLoc, offset: u64) -> Result<Step, Self::Fault> {
        let pa = table.host.map_or(table.base, |h| h.base) + offset;
        let entry = self.mem.read_entry(PhysAddr(pa), self.size);
        self.reads += 1;
        self.rec.reference(WalkRef {
            dimension: self.dimension,
            kind: RefKind::Read,
            level,
            addr: PhysAddr(pa),
            gpa: None,
            entry,
            for_guest_level: self.for_guest_level,
        });
        Ok(Step {
            entry,
            pa,
            addr: table.base + offset,
            writable: true,
            nrights: !0,
        })
    }
}

/// Walks the structures of format `F` for `addr` from `start` down to a leaf.
///
/// At each level: read the entry; stop if it is not present; stop if it sets
/// a reserved bit; AND its rights in; follow it or finish at a leaf. Rights are
/// checked by the caller afterwards (SDM Vol. 3A 4.7: a page fault reports
/// "not present" or "reserved bit" before any access-rights violation).
///
/// The path is built in `path` (the caller's, so the walk's record is not
/// moved through `Result`s on the miss path); only the levels from
/// `start.level` down to the leaf are written.
#[inline]
pub fn walk<F: Format, T: Tables>(
    fmt: &F,
    addr: u64,
    start: Start,
    tables: &mut T,
    path: &mut Path,
) -> Result<(), WalkError<T::Fault>> {
    path.top = start.level;
    path.leaf = start.level;
    path.rights = start.rights;
    path.frame = 0;
    path.size = PageSize::Size4K;
    let mut table = start.table;
    let mut level = start.level;
    loop {
        let step = tables
            .read(level, &table, fmt.offset(addr, level))
            .map_err(WalkError::Table)?;
        path.steps[level as usize] = step;
        let e = step.entry;
        if !fmt.present(e) {
            return Err(WalkError::NotPresent {
                level,
                rights: path.rights & fmt.rights(e, level),
            });
        }
        match fmt.decode(e, level) {
            Decoded::Reserved => return Err(WalkError::Reserved { level }),
            Decoded::Table(next) => {
                path.rights &= fmt.rights(e, level);
                table = TableLoc::guest(next);
                // `level` >= 2 here: level-1 entries always decode as leaves.
                level -= 1;
            }
            Decoded::Leaf(frame, size) => {
                path.rights &= fmt.rights(e, level);
                path.leaf = level;
                path.frame = frame;
                path.size = size;
                return Ok(());
            }
        }
    }
}

/// The levels of `path` from `top` down to `leaf`: the order in which a
/// walk read its entries and sets their flags.
#[inline]
pub fn levels(path: &Path) -> impl Iterator<Item = u8> {
    (path.leaf..=path.top).rev()
}

/// The new value of the entry `path` read at `level` if it needs its
/// accessed (or, at the leaf with `write`, dirty) flag set; `None` if it
/// has them. (Computed per level, not collected into an array: an array of
/// narrow fields built in memory and copied out stalled the hot path.)
#[inline]
pub fn ad_update<F: Format>(fmt: &F, path: &Path, level: u8, write: bool) -> Option<u64> {
    let e = path.steps[level as usize].entry;
    let mut new = e;
    if fmt.has_accessed(level) {
        new |= 1 << F::A_BIT;
    }
    if level == path.leaf && write && fmt.has_dirty() {
        new |= 1 << F::D_BIT;
    }
    (new != e).then_some(new)
}

/// Sets accessed and dirty flags along a successful walk (SDM Vol. 3A 4.8;
/// for EPT, SDM Vol. 3C 29.3.4, "Accessed and dirty flags for EPT"):
/// accessed in every entry read, dirty in the leaf for a write. Each update
/// is a locked compare-exchange; returns false if an entry changed since it
/// was read (the caller walks again, as a processor would).
#[allow(clippy::too_many_arguments)]
pub fn set_ad<F: Format, M: PhysMemory + ?Sized, R: WalkRecorder + ?Sized>(
    fmt: &F,
    path: &Path,
    write: bool,
    mem: &mut M,
    rec: &mut R,
    dimension: Dimension,
    for_guest_level: Option<u8>,
    gpa_known: bool,
    writes: &mut u64,
) -> bool {
    for level in levels(path) {
        let Some(new) = ad_update(fmt, path, level, write) else {
            continue;
        };
        let step = &path.steps[level as usize];
        if !mem.cmpxchg_entry(PhysAddr(step.pa), F::ENTRY, step.entry, new) {
            return false;
        }
        *writes += 1;
        rec.reference(WalkRef {
            dimension,
            kind: RefKind::AdUpdate,
            level,
            addr: PhysAddr(step.pa),
            gpa: gpa_known.then_some(GuestPhysAddr(step.addr)),
            entry: new,
            for_guest_level,
        });
    }
    true
}

/// How many times a walk is retried when an A/D compare-exchange fails
/// before the translation proceeds without the update. A single-threaded
/// machine never fails a compare-exchange unless paging structures live in
/// device memory; the bound keeps such guests from hanging the emulator.
pub const AD_RETRIES: u32 = 4;
