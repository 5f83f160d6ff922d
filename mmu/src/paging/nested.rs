//! The nested dimension: translating a guest-physical address through EPT or
//! NPT, for a guest paging-structure entry or for the final address of a
//! linear translation (SDM Vol. 3C 29.3.2, "EPT translation mechanism"; APM
//! Vol. 2 15.25.5, "Nested table walk").
//!
//! One generic routine serves both: a `NestedPolicy` says what the entries
//! mean for EPT or NPT, and the walk itself is [`super::walk::walk`].

use super::cache::{NoCaches, PscEntry, WalkCaches};
use super::ept::{self, EptContext, EptStage};
use super::format::{Format, Rights, EPT_W};
use super::npt::{self, NptContext};
use super::record::{Dimension, WalkEvent, WalkRecorder};
use super::walk::{self, DirectTables, Path, Start, TableLoc, WalkError, AD_RETRIES};
use super::{AccessKind, PageSize, PhysMemory, TranslateFault};
use crate::counters::Work;
use crate::{AddressWidths, GuestPhysAddr, PhysAddr};
use serde::{Deserialize, Serialize};

/// Nested paging in effect for a guest: EPT (VMX non-root operation with
/// "enable EPT") or NPT (SVM guest mode with NP_ENABLE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NestedPaging {
    /// Intel extended page tables.
    Ept(EptContext),
    /// AMD nested page tables.
    Npt(NptContext),
}

impl NestedPaging {
    /// The tag of nested and combined mappings: the EP4TA (SDM Vol. 3C
    /// 29.4.1) or nCR3.
    #[inline]
    pub fn root_tag(&self) -> u64 {
        match self {
            NestedPaging::Ept(e) => e.eptp.ep4ta(),
            NestedPaging::Npt(n) => n.ncr3 & 0x000f_ffff_ffff_f000,
        }
    }
    /// Number of levels of the nested structures: 4 or 5. (VM entry and
    /// VMRUN reject other EPTP page-walk lengths; anything but 5 is walked as
    /// 4 here so no value can make the model misbehave.)
    #[inline]
    pub fn levels(&self) -> u8 {
        let l = match self {
            NestedPaging::Ept(e) => e.eptp.walk_length(),
            NestedPaging::Npt(n) => n.levels,
        };
        if l == 5 {
            5
        } else {
            4
        }
    }
    /// True if the nested dimension sets accessed and dirty flags: EPT with
    /// EPTP bit 6, NPT always (APM Vol. 2 15.25.5).
    #[inline]
    pub fn has_ad(&self) -> bool {
        match self {
            NestedPaging::Ept(e) => e.eptp.ad_enabled(),
            NestedPaging::Npt(_) => true,
        }
    }
    /// True if guest paging-structure accesses are writes in the nested
    /// dimension: EPT with A/D enabled (SDM Vol. 3C 29.3.3.2), and always for
    /// NPT ("table walks for guest page tables are always treated as user
    /// writes at the nested page table level", APM Vol. 2 15.25.5).
    #[inline]
    pub fn table_accesses_write(&self) -> bool {
        self.has_ad()
    }
    /// True if `rights` (in this dimension's format) allow writing.
    #[inline]
    pub fn rights_writable(&self, rights: Rights) -> bool {
        match self {
            NestedPaging::Ept(_) => rights & EPT_W != 0,
            NestedPaging::Npt(n) => n.allows(rights, true, false),
        }
    }
}

/// The outcome of a nested translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NestedTranslation {
    /// The machine-physical address.
    pub hpa: PhysAddr,
    /// Size of the nested page.
    pub size: PageSize,
    /// Rights ANDed over the nested entries (EPT R/W/X/UX bits, or NPT
    /// W/U/X bits, see [`super::format`]).
    pub rights: Rights,
    /// The nested leaf's dirty flag after this access (true when the nested
    /// dimension has no dirty flags).
    pub dirty: bool,
    /// EPT memory type of the leaf (bits 5:3); for NPT the PAT index of the
    /// nested leaf.
    pub memory_type: u8,
    /// EPT ignore-PAT (bit 6 of the leaf); false for NPT.
    pub ignore_pat: bool,
}

impl NestedTranslation {
    /// The same translation applied to another address within its page.
    #[inline]
    pub fn at(&self, gpa: u64) -> Self {
        let mask = self.size.offset_mask();
        Self {
            hpa: PhysAddr((self.hpa.0 & !mask) | (gpa & mask)),
            ..*self
        }
    }
}

/// Why the nested dimension is being asked (for the exit information).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// A guest paging-structure entry at `level`, translating linear `gla`.
    Table {
        /// Guest level of the entry.
        level: u8,
        /// The linear address being translated.
        gla: u64,
    },
    /// The final guest-physical address of linear `gla`, with the guest
    /// translation's attributes.
    Final {
        /// The linear address.
        gla: u64,
        /// Guest U/S.
        user: bool,
        /// Guest R/W.
        writable: bool,
        /// Guest execute-disable.
        nx: bool,
    },
    /// Loading the PAE PDPTE registers (MOV to CR, SDM Vol. 3A 4.4.1): a read,
    /// never treated as a write (SDM Vol. 3C 29.3.3.2).
    PdpteLoad,
    /// A guest-physical access outside any linear translation.
    Physical,
}

/// One nested translation request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NestedReq {
    /// The guest-physical address.
    pub gpa: u64,
    /// The access (for tables: Read; the table rule is applied here).
    pub kind: AccessKind,
    /// Why.
    pub stage: Stage,
}

impl NestedReq {
    /// The guest level served, for the recorder.
    pub(super) fn for_guest_level(&self) -> Option<u8> {
        match self.stage {
            Stage::Table { level, .. } => Some(level),
            _ => None,
        }
    }
    fn is_table(&self) -> bool {
        matches!(self.stage, Stage::Table { .. })
    }
}

/// What EPT and NPT each decide about a nested walk.
pub(super) trait NestedPolicy {
    type F: Format;
    fn entry_format(&self, widths: AddressWidths) -> Self::F;
    fn root_table(&self, widths: AddressWidths) -> u64;
    fn walk_levels(&self) -> u8;
    /// The access is a write as far as the nested dimension is concerned.
    fn treats_as_write(&self, req: &NestedReq) -> bool;
    fn permits(&self, rights: Rights, req: &NestedReq) -> bool;
    fn fault(&self, req: &NestedReq, why: Why, rights: Rights) -> TranslateFault;
    /// The memory type and ignore-PAT of leaf entry `e` mapping a page of
    /// `size`.
    fn leaf_memtype_of(&self, e: u64, size: PageSize) -> (u8, bool);
}

/// Why a nested translation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Why {
    NotPresent,
    Reserved,
    Denied,
}

impl NestedPolicy for EptContext {
    type F = super::format::EptFormat;
    fn entry_format(&self, widths: AddressWidths) -> Self::F {
        EptContext::format(self, widths)
    }
    fn root_table(&self, widths: AddressWidths) -> u64 {
        self.eptp.root(widths)
    }
    fn walk_levels(&self) -> u8 {
        NestedPaging::Ept(*self).levels()
    }
    fn treats_as_write(&self, req: &NestedReq) -> bool {
        req.kind == AccessKind::Write || (req.is_table() && self.eptp.ad_enabled())
    }
    fn permits(&self, rights: Rights, req: &NestedReq) -> bool {
        let user_la = matches!(req.stage, Stage::Final { user: true, .. });
        let need = self.needed(
            req.kind == AccessKind::Read,
            self.treats_as_write(req),
            req.kind == AccessKind::Execute,
            user_la,
        );
        rights & need == need
    }
    fn fault(&self, req: &NestedReq, why: Why, rights: Rights) -> TranslateFault {
        if why == Why::Reserved {
            return TranslateFault::EptMisconfig {
                gpa: GuestPhysAddr(req.gpa),
            };
        }
        let stage = match req.stage {
            Stage::Table { gla, .. } => EptStage::GuestTable { gla },
            Stage::Final {
                gla,
                user,
                writable,
                nx,
            } => EptStage::Final {
                gla,
                user,
                writable,
                nx,
            },
            Stage::PdpteLoad | Stage::Physical => EptStage::Physical,
        };
        // A table access with EPT A/D enabled reports both read and write
        // (SDM Vol. 3C 29.3.3.2).
        let write = self.treats_as_write(req);
        let read = req.kind == AccessKind::Read;
        let fetch = req.kind == AccessKind::Execute;
        TranslateFault::EptViolation(ept::violation(
            self, req.gpa, read, write, fetch, rights, stage,
        ))
    }
    fn leaf_memtype_of(&self, e: u64, _size: PageSize) -> (u8, bool) {
        (((e >> 3) & 7) as u8, e & (1 << 6) != 0)
    }
}

impl NestedPolicy for NptContext {
    type F = super::format::Ia32e;
    fn entry_format(&self, widths: AddressWidths) -> Self::F {
        NptContext::format(self, widths)
    }
    fn root_table(&self, widths: AddressWidths) -> u64 {
        NptContext::root(self, widths)
    }
    fn walk_levels(&self) -> u8 {
        NestedPaging::Npt(*self).levels()
    }
    fn treats_as_write(&self, req: &NestedReq) -> bool {
        req.kind == AccessKind::Write || req.is_table()
    }
    fn permits(&self, rights: Rights, req: &NestedReq) -> bool {
        NptContext::allows(
            self,
            rights,
            self.treats_as_write(req),
            req.kind == AccessKind::Execute,
        )
    }
    fn fault(&self, req: &NestedReq, why: Why, _rights: Rights) -> TranslateFault {
        TranslateFault::NestedPageFault(npt::fault(
            self,
            req.gpa,
            why == Why::Denied,
            why == Why::Reserved,
            self.treats_as_write(req),
            req.kind == AccessKind::Execute,
            req.is_table() || req.stage == Stage::PdpteLoad,
        ))
    }
    fn leaf_memtype_of(&self, e: u64, size: PageSize) -> (u8, bool) {
        let a = super::format::leaf_attrs(e, size, false);
        (a.pat_index, false)
    }
}

/// Translates a guest-physical address through `nested`, with caches.
#[allow(clippy::too_many_arguments)]
pub(crate) fn nested_translate<M, R, C>(
    nested: &NestedPaging,
    widths: AddressWidths,
    req: &NestedReq,
    mem: &mut M,
    rec: &mut R,
    caches: &mut C,
) -> Result<NestedTranslation, TranslateFault>
where
    M: PhysMemory + ?Sized,
    R: WalkRecorder + ?Sized,
    C: WalkCaches + ?Sized,
{
    match nested {
        NestedPaging::Ept(e) => generic(e, widths, req, mem, rec, caches),
        NestedPaging::Npt(n) => generic(n, widths, req, mem, rec, caches),
    }
}

#[allow(clippy::too_many_arguments)]
fn generic<P, M, R, C>(
    p: &P,
    widths: AddressWidths,
    req: &NestedReq,
    mem: &mut M,
    rec: &mut R,
    caches: &mut C,
) -> Result<NestedTranslation, TranslateFault>
where
    P: NestedPolicy,
    M: PhysMemory + ?Sized,
    R: WalkRecorder + ?Sized,
    C: WalkCaches + ?Sized,
{
    let write = p.treats_as_write(req);
    // Guest-physical mappings (SDM Vol. 3C 29.4.1): used only when they
    // permit the access and need no dirty-flag update; otherwise walk.
    if let Some(t) = caches.nested_tlb_lookup(req.gpa) {
        if p.permits(t.rights, req) && (!write || t.dirty) {
            caches.count(Work::NestedTlbHit, 1);
            rec.event(WalkEvent::NestedTlbHit {
                for_guest_level: req.for_guest_level(),
            });
            return Ok(t.at(req.gpa));
        }
    }
    caches.count(Work::NestedTlbMiss, 1);
    let fmt = p.entry_format(widths);
    let levels = p.walk_levels();
    if caches.fast_paths() {
        if let Some(t) = super::fast::nested_leaf(p, &fmt, levels, req, mem, rec, caches) {
            return Ok(t);
        }
    }
    let mut tries = 0;
    loop {
        let start = match caches.nested_psc_lookup(req.gpa, levels) {
            Some(hit) => {
                caches.count(Work::NestedPscHit(hit.level), 1);
                rec.event(WalkEvent::PscHit {
                    dimension: Dimension::Nested,
                    level: hit.level,
                });
                Start {
                    level: hit.level - 1,
                    table: hit.next,
                    rights: hit.rights,
                }
            }
            None => {
                caches.count(Work::NestedPscMiss, 1);
                Start {
                    level: levels,
                    table: TableLoc::direct(p.root_table(widths)),
                    rights: !0,
                }
            }
        };
        let mut tables = DirectTables {
            mem: &mut *mem,
            rec: &mut *rec,
            dimension: Dimension::Nested,
            size: P::F::ENTRY,
            for_guest_level: req.for_guest_level(),
            reads: 0,
        };
        let mut path = Path::EMPTY;
        let res = walk::walk(&fmt, req.gpa, start, &mut tables, &mut path);
        caches.count(Work::NestedRef, tables.reads);
        match res {
            Ok(()) => {}
            Err(e) => {
                caches.nested_fault(req.gpa);
                return Err(match e {
                    WalkError::NotPresent { rights, .. } => p.fault(req, Why::NotPresent, rights),
                    WalkError::Reserved { .. } => p.fault(req, Why::Reserved, 0),
                    WalkError::Table(never) => match never {},
                });
            }
        };
        if !p.permits(path.rights, req) {
            caches.nested_fault(req.gpa);
            return Err(p.fault(req, Why::Denied, path.rights));
        }
        if fmt.has_dirty() || fmt.has_accessed(1) {
            let mut writes = 0;
            let ok = walk::set_ad(
                &fmt,
                &path,
                write,
                mem,
                rec,
                Dimension::Nested,
                req.for_guest_level(),
                false,
                &mut writes,
            );
            caches.count(Work::AdWrite, writes);
            if !ok {
                tries += 1;
                if tries < AD_RETRIES {
                    continue;
                }
            }
        }
        fill_psc(&fmt, &path, start.rights, req.gpa, caches);
        let leaf = path.leaf_entry();
        let (memory_type, ignore_pat) = p.leaf_memtype_of(leaf, path.size);
        let t = NestedTranslation {
            hpa: PhysAddr(path.output(req.gpa)),
            size: path.size,
            rights: path.rights,
            dirty: !fmt.has_dirty() || write || leaf & (1 << P::F::D_BIT) != 0,
            memory_type,
            ignore_pat,
        };
        caches.nested_tlb_fill(req.gpa, &t);
        return Ok(t);
    }
}

/// Caches the non-leaf entries a nested walk read.
fn fill_psc<F: Format, C: WalkCaches + ?Sized>(
    fmt: &F,
    path: &Path,
    start_rights: Rights,
    gpa: u64,
    caches: &mut C,
) {
    let mut rights = start_rights;
    let mut level = path.top;
    while level > path.leaf {
        let e = path.steps[level as usize].entry;
        rights &= fmt.rights(e, level);
        if let super::format::Decoded::Table(next) = fmt.decode(e, level) {
            caches.nested_psc_fill(
                gpa,
                PscEntry {
                    level,
                    next: TableLoc::direct(next),
                    rights,
                },
            );
        }
        level -= 1;
    }
}

/// Translates guest-physical `gpa` through `nested` with no caches, as an
/// access of `kind` that is not part of a linear translation (the exit
/// information says "guest-linear address not valid"). References go to `rec`.
pub fn translate_nested<M: PhysMemory + ?Sized, R: WalkRecorder + ?Sized>(
    nested: &NestedPaging,
    widths: AddressWidths,
    gpa: GuestPhysAddr,
    kind: AccessKind,
    mem: &mut M,
    rec: &mut R,
) -> Result<NestedTranslation, TranslateFault> {
    let req = NestedReq {
        gpa: gpa.0,
        kind,
        stage: Stage::Physical,
    };
    nested_translate(nested, widths, &req, mem, rec, &mut NoCaches)
}
