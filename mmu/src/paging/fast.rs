//! Short walks: the miss a paging-structure cache leaves one entry for, in
//! either dimension, done without the general walker's bookkeeping (no
//! [`super::walk::Path`] of every level, no per-read `Result`s).
//!
//! Each function here either does nothing at all and returns `None` (the
//! caller then runs the general walker, which finds the same cache state
//! and memory: lookups and entry reads change nothing), or does exactly what
//! the general walker does for that case — the same cache lookups, the same
//! counted work, the same recorded events and references in the same order,
//! the same fills — and returns its outcome. It takes the case only when
//! the one entry read is a present leaf with no reserved bit, the access
//! rights permit the access, and the entry already has its accessed (and,
//! for a write, dirty) flag, so no flag update, retry or fault is involved
//! (SDM Vol. 3A 4.8 and 4.10.3; SDM Vol. 3C 29.3 and 29.4; APM Vol. 2
//! 15.25.5). The property tests of `tests/walkers.rs` run every access
//! through both paths on random tables and compare everything.
//!
//! Giving up after reading an entry is harmless because reads have no side
//! effect ([`PhysMemory::read_entry`]); the general walker reads it again.

use super::cache::WalkCaches;
use super::format::{self, Decoded, Format, Ia32e, RIGHT_U, RIGHT_W, RIGHT_X};
use super::nested::Stage;
use super::nested::{nested_translate, NestedPaging, NestedPolicy, NestedReq, NestedTranslation};
use super::perm::PermPolicy;
use super::record::{Dimension, RefKind, WalkEvent, WalkRecorder, WalkRef};
use super::{Access, GuestConfig, PhysMemory, TranslateFault, Translation};
use crate::counters::Work;
use crate::{GuestPhysAddr, PhysAddr};

/// A 4- or 5-level guest walk whose PDE the guest paging-structure cache
/// holds: one PTE read (through the cached machine-physical location of the
/// page table), then, in a two-dimensional walk, the nested translation of
/// the final guest-physical address by [`nested_translate`].
///
/// `None`: nothing done (no PDE-cache hit, or the PTE needs more than the
/// short path does).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn guest_pte<M, R, C>(
    fmt: &Ia32e,
    cfg: &GuestConfig,
    policy: &PermPolicy,
    nested: Option<&NestedPaging>,
    la: u64,
    access: Access,
    mem: &mut M,
    rec: &mut R,
    caches: &mut C,
) -> Option<Result<Translation, TranslateFault>>
where
    M: PhysMemory + ?Sized,
    R: WalkRecorder + ?Sized,
    C: WalkCaches + ?Sized,
{
    let mode = cfg.regs.mode;
    let hit = caches.guest_psc_lookup(la, mode)?;
    if hit.level != 2 {
        return None;
    }
    let host = hit.next.host?;
    let offset = fmt.offset(la, 1);
    let pa = host.base + offset;
    let e = mem.read_entry(PhysAddr(pa), Ia32e::ENTRY);
    if !fmt.present(e) {
        return None;
    }
    let Decoded::Leaf(frame, size) = fmt.decode(e, 1) else {
        return None;
    };
    let rights = hit.rights & fmt.rights(e, 1);
    let attrs = format::leaf_attrs(e, size, true);
    // `PermPolicy::check` fails exactly when one of these holds.
    if policy.denied(rights, access) || policy.key_denies(rights, attrs.pkey, access) {
        return None;
    }
    let write = access.is_write();
    if (fmt.has_accessed(1) && e & (1 << Ia32e::A_BIT) == 0)
        || (write && fmt.has_dirty() && e & (1 << Ia32e::D_BIT) == 0)
    {
        return None;
    }
    // Committed: what the general walker does from here on.
    caches.count(Work::GuestPscHit(2), 1);
    rec.event(WalkEvent::PscHit {
        dimension: Dimension::Guest,
        level: 2,
    });
    caches.count(Work::GuestRef, 1);
    rec.reference(WalkRef {
        dimension: Dimension::Guest,
        kind: RefKind::Read,
        level: 1,
        addr: PhysAddr(pa),
        gpa: nested.map(|_| GuestPhysAddr(hit.next.base + offset)),
        entry: e,
        for_guest_level: None,
    });
    let gpa = frame | (la & size.offset_mask());
    let nt = match nested {
        Some(n) => {
            let req = NestedReq {
                gpa,
                kind: access.kind,
                stage: Stage::Final {
                    gla: la,
                    user: rights & RIGHT_U != 0,
                    writable: rights & RIGHT_W != 0,
                    nx: rights & RIGHT_X == 0,
                },
            };
            match nested_translate(n, cfg.widths, &req, mem, rec, caches) {
                Ok(t) => Some(t),
                Err(f) => return Some(Err(f)),
            }
        }
        None => None,
    };
    Some(Ok(Translation {
        pa: nt.map_or(PhysAddr(gpa), |n| n.hpa),
        gpa: nested.map(|_| GuestPhysAddr(gpa)),
        page_size: size,
        user: rights & RIGHT_U != 0,
        writable: rights & RIGHT_W != 0,
        nx: rights & RIGHT_X == 0,
        global: attrs.global && cfg.regs.cr4.contains(crate::Cr4::PGE),
        dirty: write || e & (1 << Ia32e::D_BIT) != 0,
        pkey: attrs.pkey,
        pat_index: attrs.pat_index,
        nested: nt,
    }))
}

/// A nested walk (after a nested-TLB miss, already counted) whose
/// paging-structure cache holds the entry above the leaf: one read of the
/// leaf, then the nested-TLB fill.
///
/// `None`: nothing done.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn nested_leaf<P, M, R, C>(
    p: &P,
    fmt: &P::F,
    levels: u8,
    req: &NestedReq,
    mem: &mut M,
    rec: &mut R,
    caches: &mut C,
) -> Option<NestedTranslation>
where
    P: NestedPolicy,
    M: PhysMemory + ?Sized,
    R: WalkRecorder + ?Sized,
    C: WalkCaches + ?Sized,
{
    let hit = caches.nested_psc_lookup(req.gpa, levels)?;
    let level = hit.level - 1;
    let offset = fmt.offset(req.gpa, level);
    let pa = hit.next.host.map_or(hit.next.base, |h| h.base) + offset;
    let e = mem.read_entry(PhysAddr(pa), P::F::ENTRY);
    if !fmt.present(e) {
        return None;
    }
    let Decoded::Leaf(frame, size) = fmt.decode(e, level) else {
        return None;
    };
    let rights = hit.rights & fmt.rights(e, level);
    if !p.permits(rights, req) {
        return None;
    }
    let write = p.treats_as_write(req);
    let has_d = fmt.has_dirty();
    // The general walker calls `walk::set_ad` when the format has flags
    // (`has_dirty() || has_accessed(1)`), which writes the entry when
    // `walk::ad_update` sets a bit in it: the same test, on the one entry.
    if (has_d || fmt.has_accessed(1))
        && ((fmt.has_accessed(level) && e & (1 << P::F::A_BIT) == 0)
            || (write && has_d && e & (1 << P::F::D_BIT) == 0))
    {
        return None;
    }
    // Committed.
    caches.count(Work::NestedPscHit(hit.level), 1);
    rec.event(WalkEvent::PscHit {
        dimension: Dimension::Nested,
        level: hit.level,
    });
    caches.count(Work::NestedRef, 1);
    rec.reference(WalkRef {
        dimension: Dimension::Nested,
        kind: RefKind::Read,
        level,
        addr: PhysAddr(pa),
        gpa: None,
        entry: e,
        for_guest_level: req.for_guest_level(),
    });
    let (memory_type, ignore_pat) = p.leaf_memtype_of(e, size);
    let t = NestedTranslation {
        hpa: PhysAddr(frame | (req.gpa & size.offset_mask())),
        size,
        rights,
        dirty: !has_d || write || e & (1 << P::F::D_BIT) != 0,
        memory_type,
        ignore_pat,
    };
    caches.nested_tlb_fill(req.gpa, &t);
    Some(t)
}
