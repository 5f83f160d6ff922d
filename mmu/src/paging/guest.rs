//! Linear-address translation in every paging mode, one- or two-dimensional
//! (SDM Vol. 3A 4.3-4.5; with EPT, SDM Vol. 3C 29.3.2; with NPT, APM Vol. 2
//! 15.25.5).
//!
//! The order of events for one access:
//! 1. walk the guest structures from CR3 (or a paging-structure-cache entry);
//!    in a 2-D walk each guest entry's guest-physical address is translated
//!    by the nested dimension first, and a nested failure ends the walk;
//! 2. a not-present entry or a reserved bit ends the walk with #PF;
//! 3. the access rights of the complete translation are checked (#PF);
//! 4. in a 2-D walk the final guest-physical address is translated
//!    (EPT violation / #NPF);
//! 5. accessed and dirty flags are set, only now that the access is known to
//!    succeed, top level first. SDM Vol. 3A 4.8 says the processor sets the
//!    accessed flag of every entry "used as part of linear-address
//!    translation" and is silent on walks that fault; 4.10.3.1 allows a
//!    processor to create paging-structure-cache entries (setting the
//!    accessed flags of the upper entries) "even if there are no
//!    translations", so an A flag set by a faulting walk is permitted, not
//!    required. Intel processors update the flags after a successful walk
//!    (KVM's commit "Update accessed and dirty bits after guest pagetable
//!    walk" says so; Bochs does the same), and this model follows them:
//!    a faulting walk writes nothing and fills no cache. In a 2-D walk
//!    without EPT A/D the flag write needs EPT write permission on the guest
//!    table's page (SDM Vol. 3C 29.3.3.2); all such permissions are checked
//!    before any flag is written.

use super::cache::{NoCaches, PscEntry, WalkCaches};
use super::format::{
    self, Decoded, Format, Ia32e, Legacy32, Pae, Rights, RIGHT_U, RIGHT_W, RIGHT_X,
};
use super::mem::EntrySize;
use super::nested::{nested_translate, NestedPaging, NestedReq, NestedTranslation, Stage};
use super::perm::PermPolicy;
use super::record::{Dimension, RefKind, WalkEvent, WalkRecorder, WalkRef};
use super::walk::AD_RETRIES;
use super::walk::{self, DirectTables, HostTable, Path, Start, Step, TableLoc, Tables, WalkError};
use super::{Access, GuestConfig, PageSize, PagingMode, PhysMemory, TranslateFault, Translation};
use crate::counters::Work;
use crate::{GuestPhysAddr, PfErrorCode, PhysAddr};
use core::convert::Infallible;

impl From<Infallible> for TranslateFault {
    fn from(x: Infallible) -> Self {
        match x {}
    }
}

/// Translates linear address `la` for `access` with no caches: the
/// reference walker of the crate. `nested` selects a two-dimensional walk.
pub fn walk_guest<M: PhysMemory + ?Sized, R: WalkRecorder + ?Sized>(
    cfg: &GuestConfig,
    nested: Option<&NestedPaging>,
    la: u64,
    access: Access,
    mem: &mut M,
    rec: &mut R,
) -> Result<Translation, TranslateFault> {
    let policy = PermPolicy::from_regs(&cfg.regs);
    translate(cfg, &policy, nested, la, access, mem, rec, &mut NoCaches)
}

/// Translates `la`, using and filling `caches`, and counting the work done
/// through them.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn translate<M, R, C>(
    cfg: &GuestConfig,
    policy: &PermPolicy,
    nested: Option<&NestedPaging>,
    la: u64,
    access: Access,
    mem: &mut M,
    rec: &mut R,
    caches: &mut C,
) -> Result<Translation, TranslateFault>
where
    M: PhysMemory + ?Sized,
    R: WalkRecorder + ?Sized,
    C: WalkCaches + ?Sized,
{
    if matches!(cfg.regs.mode, PagingMode::Level4 | PagingMode::Level5) && caches.fast_paths() {
        let fmt = ia32e(cfg);
        if let Some(r) =
            super::fast::guest_pte(&fmt, cfg, policy, nested, la, access, mem, rec, caches)
        {
            return r;
        }
    }
    general(cfg, policy, nested, la, access, mem, rec, caches)
}

/// [`translate`] by the general walker (kept out of line, so the short path
/// is laid out the same in every caller).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn general<M, R, C>(
    cfg: &GuestConfig,
    policy: &PermPolicy,
    nested: Option<&NestedPaging>,
    la: u64,
    access: Access,
    mem: &mut M,
    rec: &mut R,
    caches: &mut C,
) -> Result<Translation, TranslateFault>
where
    M: PhysMemory + ?Sized,
    R: WalkRecorder + ?Sized,
    C: WalkCaches + ?Sized,
{
    let regs = &cfg.regs;
    let w = cfg.widths;
    let mut g = Guest {
        cfg,
        policy,
        nested,
        la,
        access,
        mem,
        rec,
        caches,
    };
    match regs.mode {
        PagingMode::Disabled => g.unpaged(),
        PagingMode::Legacy32 => {
            let fmt = Legacy32::new(regs.cr4.contains(crate::Cr4::PSE), w);
            g.run(&fmt, 2, regs.cr3 & 0xffff_f000)
        }
        PagingMode::Pae => {
            let fmt = Pae {
                nxe: regs.efer.contains(crate::Efer::NXE),
                widths: w,
            };
            if matches!(nested, Some(NestedPaging::Npt(_))) {
                // AMD nested paging: the guest's PDPTEs are read from guest
                // memory during the walk instead of PDPTE registers (as Bochs
                // and KVM model SVM).
                g.run(&fmt, 3, regs.cr3 & 0xffff_ffe0)
            } else {
                let pdpte = regs.pdptes[((la >> 30) & 3) as usize];
                if pdpte & 1 == 0 {
                    return Err(g.page_fault(policy.not_present(access)));
                }
                if pdpte & Pae::pdpte_reserved(w) != 0 {
                    return Err(g.page_fault(policy.reserved(access)));
                }
                g.run_from(
                    &fmt,
                    Start {
                        level: 2,
                        table: g.root_loc(pdpte & super::frame_mask(w)),
                        rights: !0,
                    },
                )
            }
        }
        PagingMode::Level4 | PagingMode::Level5 => {
            let fmt = ia32e(cfg);
            let levels = regs.mode.levels();
            g.run(&fmt, levels, regs.cr3 & super::frame_mask(w))
        }
    }
}

/// The entry format of 4- and 5-level paging for `cfg`.
#[inline]
fn ia32e(cfg: &GuestConfig) -> Ia32e {
    Ia32e {
        nxe: cfg.regs.efer.contains(crate::Efer::NXE),
        page_1g: cfg.features.page_1g,
        widths: cfg.widths,
    }
}

/// One guest translation in progress.
struct Guest<'a, M: ?Sized, R: ?Sized, C: ?Sized> {
    cfg: &'a GuestConfig,
    policy: &'a PermPolicy,
    nested: Option<&'a NestedPaging>,
    la: u64,
    access: Access,
    mem: &'a mut M,
    rec: &'a mut R,
    caches: &'a mut C,
}

impl<M, R, C> Guest<'_, M, R, C>
where
    M: PhysMemory + ?Sized,
    R: WalkRecorder + ?Sized,
    C: WalkCaches + ?Sized,
{
    fn page_fault(&mut self, error_code: PfErrorCode) -> TranslateFault {
        self.caches.guest_fault(self.la, self.cfg.regs.mode);
        TranslateFault::PageFault {
            error_code,
            linear: self.la,
        }
    }

    /// A root table: machine-physical without nesting, guest-physical with.
    fn root_loc(&self, base: u64) -> TableLoc {
        if self.nested.is_some() {
            TableLoc::guest(base)
        } else {
            TableLoc::direct(base)
        }
    }

    /// CR0.PG = 0: the linear address is the (guest-)physical address.
    fn unpaged(&mut self) -> Result<Translation, TranslateFault> {
        let mut t = Translation {
            pa: PhysAddr(self.la),
            gpa: None,
            page_size: PageSize::Size4K,
            user: true,
            writable: true,
            nx: false,
            global: false,
            dirty: true,
            pkey: 0,
            pat_index: 0,
            nested: None,
        };
        if let Some(n) = self.nested {
            // With paging disabled every linear address is treated here as a
            // supervisor-mode, writable, executable address for the EPT
            // exit information and mode-based execute control.
            let req = NestedReq {
                gpa: self.la,
                kind: self.access.kind,
                stage: Stage::Final {
                    gla: self.la,
                    user: false,
                    writable: true,
                    nx: false,
                },
            };
            let nt = nested_translate(n, self.cfg.widths, &req, self.mem, self.rec, self.caches)?;
            t.gpa = Some(GuestPhysAddr(self.la));
            t.pa = nt.hpa;
            t.nested = Some(nt);
        }
        Ok(t)
    }

    fn run<F: Format>(
        &mut self,
        fmt: &F,
        levels: u8,
        root: u64,
    ) -> Result<Translation, TranslateFault> {
        let start = Start {
            level: levels,
            table: self.root_loc(root),
            rights: !0,
        };
        self.run_from(fmt, start)
    }

    /// Walks from `root_start` (or a deeper cached start), checks, translates
    /// the final address, updates A/D, fills caches.
    fn run_from<F: Format>(
        &mut self,
        fmt: &F,
        root_start: Start,
    ) -> Result<Translation, TranslateFault> {
        let mode = self.cfg.regs.mode;
        let mut tries = 0;
        loop {
            let start = match self.caches.guest_psc_lookup(self.la, mode) {
                Some(hit) if hit.level <= root_start.level => {
                    self.caches.count(Work::GuestPscHit(hit.level), 1);
                    self.rec.event(WalkEvent::PscHit {
                        dimension: Dimension::Guest,
                        level: hit.level,
                    });
                    Start {
                        level: hit.level - 1,
                        table: hit.next,
                        rights: hit.rights,
                    }
                }
                _ => {
                    self.caches.count(Work::GuestPscMiss, 1);
                    root_start
                }
            };
            let mut path = Path::EMPTY;
            self.walk(fmt, start, &mut path)?;
            let attrs = format::leaf_attrs(path.leaf_entry(), path.size, mode.is_ia32e());
            if let Err(code) = self.policy.check(path.rights, attrs.pkey, self.access) {
                return Err(self.page_fault(code));
            }
            let gpa = path.output(self.la);
            let nested = match self.nested {
                Some(n) => Some(self.final_nested(n, gpa, path.rights)?),
                None => None,
            };
            if !self.set_guest_ad(fmt, &path)? {
                tries += 1;
                if tries < AD_RETRIES {
                    continue;
                }
            }
            self.fill_psc(fmt, &path, start.rights);
            let write = self.access.is_write();
            return Ok(Translation {
                pa: nested.map_or(PhysAddr(gpa), |n| n.hpa),
                gpa: self.nested.map(|_| GuestPhysAddr(gpa)),
                page_size: path.size,
                user: path.rights & RIGHT_U != 0,
                writable: path.rights & RIGHT_W != 0,
                nx: path.rights & RIGHT_X == 0,
                global: attrs.global && self.cfg.regs.cr4.contains(crate::Cr4::PGE),
                dirty: write || path.leaf_entry() & (1 << F::D_BIT) != 0,
                pkey: attrs.pkey,
                pat_index: attrs.pat_index,
                nested,
            });
        }
    }

    fn walk<F: Format>(
        &mut self,
        fmt: &F,
        start: Start,
        path: &mut Path,
    ) -> Result<(), TranslateFault> {
        let res = match self.nested {
            None => {
                let mut t = DirectTables {
                    mem: &mut *self.mem,
                    rec: &mut *self.rec,
                    dimension: Dimension::Guest,
                    size: F::ENTRY,
                    for_guest_level: None,
                    reads: 0,
                };
                let r = walk::walk(fmt, self.la, start, &mut t, path)
                    .map_err(|e| e.map(TranslateFault::from));
                self.caches.count(Work::GuestRef, t.reads);
                r
            }
            Some(n) => {
                let mut t = NestedTables {
                    nested: n,
                    cfg: self.cfg,
                    la: self.la,
                    size: F::ENTRY,
                    mem: &mut *self.mem,
                    rec: &mut *self.rec,
                    caches: &mut *self.caches,
                };
                walk::walk(fmt, self.la, start, &mut t, path)
            }
        };
        res.map_err(|e| match e {
            WalkError::NotPresent { .. } => {
                let code = self.policy.not_present(self.access);
                self.page_fault(code)
            }
            WalkError::Reserved { .. } => {
                let code = self.policy.reserved(self.access);
                self.page_fault(code)
            }
            WalkError::Table(f) => f,
        })
    }

    fn final_nested(
        &mut self,
        n: &NestedPaging,
        gpa: u64,
        rights: Rights,
    ) -> Result<NestedTranslation, TranslateFault> {
        let req = NestedReq {
            gpa,
            kind: self.access.kind,
            stage: Stage::Final {
                gla: self.la,
                user: rights & RIGHT_U != 0,
                writable: rights & RIGHT_W != 0,
                nx: rights & RIGHT_X == 0,
            },
        };
        nested_translate(n, self.cfg.widths, &req, self.mem, self.rec, self.caches)
    }

    /// Sets the guest A/D flags. Returns Ok(false) if an entry changed
    /// underneath (walk again), Err for a nested fault on the flag write.
    fn set_guest_ad<F: Format>(&mut self, fmt: &F, path: &Path) -> Result<bool, TranslateFault> {
        let write = self.access.is_write();
        if let Some(n) = self.nested {
            for level in walk::levels(path) {
                let step = path.steps[level as usize];
                if walk::ad_update(fmt, path, level, write).is_some() && !step.writable {
                    // The flag write is a data write to the guest table's
                    // guest-physical address (SDM Vol. 3C 29.3.3.2).
                    let req = NestedReq {
                        gpa: step.addr,
                        kind: super::AccessKind::Write,
                        stage: Stage::Table {
                            level,
                            gla: self.la,
                        },
                    };
                    self.caches.nested_fault(step.addr);
                    return Err(nested_write_fault(n, &req, step.nrights));
                }
            }
        }
        let mut writes = 0;
        let ok = walk::set_ad(
            fmt,
            path,
            write,
            self.mem,
            self.rec,
            Dimension::Guest,
            None,
            self.nested.is_some(),
            &mut writes,
        );
        self.caches.count(Work::AdWrite, writes);
        Ok(ok)
    }

    /// Caches the non-leaf guest entries the walk read.
    fn fill_psc<F: Format>(&mut self, fmt: &F, path: &Path, start_rights: Rights) {
        let mode = self.cfg.regs.mode;
        let mut rights = start_rights;
        let mut level = path.top;
        while level > path.leaf {
            let e = path.steps[level as usize].entry;
            rights &= fmt.rights(e, level);
            if let Decoded::Table(next) = fmt.decode(e, level) {
                // The next table's location: in 2-D, the machine-physical
                // page the walk found it in.
                let below: Step = path.steps[level as usize - 1];
                let host = HostTable {
                    base: below.pa & !0xfff,
                    writable: below.writable,
                    rights: below.nrights,
                };
                self.caches.guest_psc_fill(
                    self.la,
                    mode,
                    PscEntry {
                        level,
                        next: TableLoc {
                            base: next,
                            host: Some(host),
                        },
                        rights,
                    },
                );
            }
            level -= 1;
        }
    }
}

impl<F> WalkError<F> {
    fn map<G>(self, f: impl FnOnce(F) -> G) -> WalkError<G> {
        match self {
            WalkError::NotPresent { level, rights } => WalkError::NotPresent { level, rights },
            WalkError::Reserved { level } => WalkError::Reserved { level },
            WalkError::Table(x) => WalkError::Table(f(x)),
        }
    }
}

/// The nested fault for writing guest A/D flags to a table page the nested
/// dimension maps read-only.
fn nested_write_fault(n: &NestedPaging, req: &NestedReq, rights: Rights) -> TranslateFault {
    match n {
        NestedPaging::Ept(e) => {
            let gla = match req.stage {
                Stage::Table { gla, .. } => gla,
                _ => 0,
            };
            TranslateFault::EptViolation(super::ept::violation(
                e,
                req.gpa,
                false,
                true,
                false,
                rights,
                super::ept::EptStage::GuestTable { gla },
            ))
        }
        NestedPaging::Npt(c) => TranslateFault::NestedPageFault(super::npt::fault(
            c, req.gpa, true, false, true, false, true,
        )),
    }
}

/// Guest tables reached through the nested dimension: each entry's
/// guest-physical address is translated (unless the table's machine-physical
/// location came from a cache) and then read.
struct NestedTables<'a, M: ?Sized, R: ?Sized, C: ?Sized> {
    nested: &'a NestedPaging,
    cfg: &'a GuestConfig,
    la: u64,
    size: EntrySize,
    mem: &'a mut M,
    rec: &'a mut R,
    caches: &'a mut C,
}

impl<M, R, C> Tables for NestedTables<'_, M, R, C>
where
    M: PhysMemory + ?Sized,
    R: WalkRecorder + ?Sized,
    C: WalkCaches + ?Sized,
{
    type Fault = TranslateFault;

    fn read(&mut self, level: u8, table: &TableLoc, offset: u64) -> Result<Step, TranslateFault> {
        let gpa = table.base + offset;
        let (pa, writable, nrights) = match table.host {
            Some(h) => (h.base + offset, h.writable, h.rights),
            None => {
                let req = NestedReq {
                    gpa,
                    kind: super::AccessKind::Read,
                    stage: Stage::Table {
                        level,
                        gla: self.la,
                    },
                };
                let t = nested_translate(
                    self.nested,
                    self.cfg.widths,
                    &req,
                    self.mem,
                    self.rec,
                    self.caches,
                )?;
                (t.hpa.0, self.nested.rights_writable(t.rights), t.rights)
            }
        };
        let entry = self.mem.read_entry(PhysAddr(pa), self.size);
        self.caches.count(Work::GuestRef, 1);
        self.rec.reference(WalkRef {
            dimension: Dimension::Guest,
            kind: RefKind::Read,
            level,
            addr: PhysAddr(pa),
            gpa: Some(GuestPhysAddr(gpa)),
            entry,
            for_guest_level: None,
        });
        Ok(Step {
            entry,
            pa,
            addr: gpa,
            writable,
            nrights,
        })
    }
}
