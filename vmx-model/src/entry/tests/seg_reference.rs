//! The segment-register checks of SDM Vol. 3C 27.3.1.2 as they were first
//! written (reading every field from the VMCS where each rule uses it): the
//! reference that `guest_seg`, which reads each register once, must agree with.
//!
//! Terms: the guest will be virtual-8086 if RFLAGS.VM is 1 in the guest-state area;
//! IA-32e mode if "IA-32e mode guest" is 1; a register is usable if bit 16 of its
//! access rights is 0.

use crate::entry::view::{
    canonical, ensure, granularity_ok, SegFields, CHECK_ORDER, CS, FS, GS, LDTR, SS, TR,
};
use crate::entry::{CheckResult, EntryEnv};
use crate::vmcs::{Field, Vmcs};
use mmu::{Cr0, Rflags, SegmentCache};

struct Guest {
    v86: bool,
    ia32e: bool,
    unrestricted: bool,
    pe: bool,
}

fn guest(env: &EntryEnv<'_>) -> Guest {
    let v = env.vmcs;
    Guest {
        v86: v.get(Field::GuestRflags) & Rflags::VM.bits() != 0,
        ia32e: env.ctls.ia32e_guest(),
        unrestricted: env.ctls.unrestricted(),
        pe: v.get(Field::GuestCr0) & Cr0::PE.bits() != 0,
    }
}

/// All of 27.3.1.2.
pub(super) fn segments(env: &mut EntryEnv<'_>) -> CheckResult {
    let g = guest(env);
    let v = env.vmcs;
    selectors(v, &g)?;
    bases(env, &g)?;
    if g.v86 {
        for s in CHECK_ORDER {
            ensure!(v.get(s.limit) == 0xffff, GuestV86Limit, s.limit);
        }
        for s in CHECK_ORDER {
            ensure!(v.get(s.ar) == 0xf3, GuestV86AccessRights, s.ar);
        }
    } else {
        types(v, &g)?;
        s_and_dpl(v, &g)?;
        present_reserved_granularity(v, &g)?;
    }
    tr(v, &g)?;
    ldtr(v)
}

fn selectors(v: &Vmcs, g: &Guest) -> CheckResult {
    let tr = TR.read(v);
    let ldtr = LDTR.read(v);
    ensure!(!tr.selector.ti(), GuestTrSelectorTi);
    if !ldtr.attr.unusable() {
        ensure!(!ldtr.selector.ti(), GuestLdtrSelectorTi);
    }
    if !g.v86 && !g.unrestricted {
        let (ss, cs) = (SS.read(v), CS.read(v));
        ensure!(ss.selector.rpl() == cs.selector.rpl(), GuestSsRplNotCsRpl);
    }
    Ok(())
}

fn bases(env: &EntryEnv<'_>, g: &Guest) -> CheckResult {
    let v = env.vmcs;
    if g.v86 {
        for s in CHECK_ORDER {
            let seg = s.read(v);
            ensure!(
                seg.base == (seg.selector.0 as u64) << 4,
                GuestV86Base,
                s.base
            );
        }
    }
    for s in [TR, FS, GS] {
        ensure!(
            canonical(env.caps, v.get(s.base)),
            GuestBaseCanonical,
            s.base
        );
    }
    if !LDTR.read(v).attr.unusable() {
        ensure!(
            canonical(env.caps, v.get(LDTR.base)),
            GuestBaseCanonical,
            LDTR.base
        );
    }
    ensure!(v.get(CS.base) >> 32 == 0, GuestCsBaseHigh);
    for s in [SS, crate::entry::view::DS, crate::entry::view::ES] {
        let seg = s.read(v);
        if !seg.attr.unusable() {
            ensure!(seg.base >> 32 == 0, GuestDataBaseHigh, s.base);
        }
    }
    Ok(())
}

/// The registers to which a "CS or usable" rule applies, in check order.
fn cs_or_usable(v: &Vmcs) -> impl Iterator<Item = (SegFields, SegmentCache)> + '_ {
    CHECK_ORDER
        .into_iter()
        .map(move |s| (s, s.read(v)))
        .filter(|(s, seg)| s.ar == CS.ar || !seg.attr.unusable())
}

/// DS, ES, FS, GS that are usable.
fn usable_data(v: &Vmcs) -> impl Iterator<Item = (SegFields, SegmentCache)> + '_ {
    cs_or_usable(v).filter(|(s, _)| s.ar != CS.ar && s.ar != SS.ar)
}

fn types(v: &Vmcs, g: &Guest) -> CheckResult {
    let cs = CS.read(v).attr.typ();
    if g.unrestricted {
        ensure!(
            matches!(cs, 3 | 9 | 11 | 13 | 15),
            GuestCsAccessRightsTypeWithUnrestrictedGuest
        );
    } else {
        ensure!(matches!(cs, 9 | 11 | 13 | 15), GuestCsAccessRightsType);
    }
    let ss = SS.read(v);
    if !ss.attr.unusable() {
        ensure!(matches!(ss.attr.typ(), 3 | 7), GuestSsAccessRightsType);
    }
    for (s, seg) in usable_data(v) {
        ensure!(seg.attr.accessed(), GuestDataAccessRightsAccessed, s.ar);
        let code = seg.attr.typ() & 8 != 0;
        ensure!(
            !code || seg.attr.typ() & 2 != 0,
            GuestDataAccessRightsCodeReadable,
            s.ar
        );
    }
    Ok(())
}

fn s_and_dpl(v: &Vmcs, g: &Guest) -> CheckResult {
    for (s, seg) in cs_or_usable(v) {
        ensure!(seg.attr.s(), GuestSegAccessRightsS, s.ar);
    }
    let cs = CS.read(v);
    let ss = SS.read(v);
    match cs.attr.typ() {
        3 => ensure!(cs.attr.dpl() == 0, GuestCsDplDataType),
        9 | 11 => ensure!(cs.attr.dpl() == ss.attr.dpl(), GuestCsDplNonConforming),
        13 | 15 => ensure!(cs.attr.dpl() <= ss.attr.dpl(), GuestCsDplConforming),
        _ => {}
    }
    if !g.unrestricted {
        ensure!(ss.attr.dpl() == ss.selector.rpl(), GuestSsDplRpl);
    }
    if cs.attr.typ() == 3 || !g.pe {
        ensure!(ss.attr.dpl() == 0, GuestSsDplRealOrDataCs);
    }
    if !g.unrestricted {
        for (s, seg) in usable_data(v) {
            if seg.attr.typ() <= 11 {
                ensure!(seg.attr.dpl() >= seg.selector.rpl(), GuestDataDplRpl, s.ar);
            }
        }
    }
    Ok(())
}

fn present_reserved_granularity(v: &Vmcs, g: &Guest) -> CheckResult {
    for (s, seg) in cs_or_usable(v) {
        ensure!(seg.attr.present(), GuestSegAccessRightsPresent, s.ar);
    }
    for (s, seg) in cs_or_usable(v) {
        ensure!(
            seg.attr.0 & 0xf00 == 0,
            GuestSegAccessRightsReserved11To8,
            s.ar
        );
    }
    let cs = CS.read(v);
    if g.ia32e && cs.attr.l() {
        ensure!(!cs.attr.db(), GuestCsDbWithL);
    }
    for (s, seg) in cs_or_usable(v) {
        ensure!(granularity_ok(&seg), GuestSegGranularity, s.ar);
    }
    for (s, seg) in cs_or_usable(v) {
        ensure!(
            seg.attr.0 & 0xfffe_0000 == 0,
            GuestSegAccessRightsReserved31To17,
            s.ar
        );
    }
    Ok(())
}

fn tr(v: &Vmcs, g: &Guest) -> CheckResult {
    let tr = TR.read(v);
    let a = tr.attr;
    let type_ok = match a.typ() {
        11 => true,
        3 => !g.ia32e,
        _ => false,
    };
    ensure!(type_ok, GuestTrType);
    ensure!(!a.s(), GuestTrS);
    ensure!(a.present(), GuestTrPresent);
    ensure!(a.0 & 0xf00 == 0, GuestTrReserved11To8);
    ensure!(granularity_ok(&tr), GuestTrGranularity);
    ensure!(!a.unusable(), GuestTrUnusable);
    ensure!(a.0 & 0xfffe_0000 == 0, GuestTrReserved31To17);
    Ok(())
}

fn ldtr(v: &Vmcs) -> CheckResult {
    let ldtr = LDTR.read(v);
    let a = ldtr.attr;
    if a.unusable() {
        return Ok(());
    }
    ensure!(a.typ() == 2, GuestLdtrType);
    ensure!(!a.s(), GuestLdtrS);
    ensure!(a.present(), GuestLdtrPresent);
    ensure!(a.0 & 0xf00 == 0, GuestLdtrReserved11To8);
    ensure!(granularity_ok(&ldtr), GuestLdtrGranularity);
    ensure!(a.0 & 0xfffe_0000 == 0, GuestLdtrReserved31To17);
    Ok(())
}
