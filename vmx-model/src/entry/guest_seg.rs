//! Checks on guest segment registers (SDM Vol. 3C 27.3.1.2, "Checks on Guest
//! Segment Registers"), property by property across the registers as the manual
//! lists them: selectors, bases, limits, then the access-rights sub-fields.
//!
//! Terms: the guest will be virtual-8086 if RFLAGS.VM is 1 in the guest-state area;
//! IA-32e mode if "IA-32e mode guest" is 1; a register is usable if bit 16 of its
//! access rights is 0.
//!
//! Each register's four fields are read from the VMCS once, into [`Segs`], and
//! every rule looks at that copy; the rules still run one by one, in the
//! manual's order, and name the field they are about.

use super::view::{canonical, ensure, granularity_ok, SegFields, CHECK_ORDER};
use super::{CheckResult, EntryEnv};
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

/// Indices into [`Segs::order`] (the SDM's check order: CS, SS, DS, ES, FS, GS).
const I_CS: usize = 0;
const I_SS: usize = 1;
const I_DS: usize = 2;
const I_ES: usize = 3;
const I_FS: usize = 4;
const I_GS: usize = 5;

/// The guest segment registers, each read from the VMCS once.
struct Segs {
    /// CS, SS, DS, ES, FS, GS with their fields, in check order.
    order: [(SegFields, SegmentCache); 6],
    ldtr: SegmentCache,
    tr: SegmentCache,
}

impl Segs {
    fn read(v: &Vmcs) -> Self {
        Self {
            order: CHECK_ORDER.map(|s| (s, s.read(v))),
            ldtr: super::view::LDTR.read(v),
            tr: super::view::TR.read(v),
        }
    }

    fn cs(&self) -> &SegmentCache {
        &self.order[I_CS].1
    }

    fn ss(&self) -> &SegmentCache {
        &self.order[I_SS].1
    }

    /// The registers to which a "CS or usable" rule applies, in check order.
    fn cs_or_usable(&self) -> impl Iterator<Item = &(SegFields, SegmentCache)> {
        self.order
            .iter()
            .enumerate()
            .filter(|(i, (_, seg))| *i == I_CS || !seg.attr.unusable())
            .map(|(_, s)| s)
    }

    /// DS, ES, FS, GS that are usable.
    fn usable_data(&self) -> impl Iterator<Item = &(SegFields, SegmentCache)> {
        self.order[I_DS..]
            .iter()
            .filter(|(_, seg)| !seg.attr.unusable())
    }
}

/// Everything [`segments`] reads, by value: the four fields of each of the
/// eight registers (raw, as the VMCS holds them), the guest mode bits
/// ([`guest`]) and the linear-address width the base rules use. [`segments`]
/// is a function of these alone (it reads no memory and no other field), so
/// equal inputs give an equal result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SegInputs {
    regs: [[u64; 4]; 8],
    v86: bool,
    ia32e: bool,
    unrestricted: bool,
    pe: bool,
    linear_bits: u8,
}

impl SegInputs {
    fn read(env: &EntryEnv<'_>) -> Self {
        let v = env.vmcs;
        let g = guest(env);
        use super::view::{CS, DS, ES, FS, GS, LDTR, SS, TR};
        // A plain loop: `array::map` compiles to a slow try_map here.
        let mut regs = [[0; 4]; 8];
        for (r, s) in regs.iter_mut().zip([CS, SS, DS, ES, FS, GS, LDTR, TR]) {
            *r = [
                v.get(s.selector),
                v.get(s.base),
                v.get(s.limit),
                v.get(s.ar),
            ];
        }
        Self {
            regs,
            v86: g.v86,
            ia32e: g.ia32e,
            unrestricted: g.unrestricted,
            pe: g.pe,
            linear_bits: env.caps.features.widths.linear_bits,
        }
    }
}

/// The inputs of the last segment-register checks that passed (a cache of a
/// pure function's result, not processor state: it compares equal to any
/// other memo, and a snapshot leaves it out). Boxed, so the VMX state the
/// instructions move in and out stays small.
#[derive(Clone, Debug, Default)]
pub struct SegCheckMemo(Option<Box<SegInputs>>);

impl PartialEq for SegCheckMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for SegCheckMemo {}

/// [`segments`], skipped when its inputs equal those of the last run that
/// passed: every rule still applies whenever any input changed, whether by
/// VMWRITE, by the guest state a VM exit saved, or by a change of the
/// controls.
pub(crate) fn segments_memo(env: &mut EntryEnv<'_>, memo: &mut SegCheckMemo) -> CheckResult {
    let key = SegInputs::read(env);
    if memo.0.as_deref() == Some(&key) {
        return Ok(());
    }
    let r = segments(env);
    match (&r, &mut memo.0) {
        (Ok(()), Some(last)) => **last = key,
        (Ok(()), None) => memo.0 = Some(Box::new(key)),
        (Err(_), _) => memo.0 = None,
    }
    r
}

/// All of 27.3.1.2. Reads exactly the inputs [`SegInputs`] lists.
pub(crate) fn segments(env: &mut EntryEnv<'_>) -> CheckResult {
    let g = guest(env);
    let s = Segs::read(env.vmcs);
    selectors(&s, &g)?;
    bases(env, &s, &g)?;
    if g.v86 {
        for (f, seg) in &s.order {
            ensure!(seg.limit == 0xffff, GuestV86Limit, f.limit);
        }
        for (f, seg) in &s.order {
            ensure!(seg.attr.0 == 0xf3, GuestV86AccessRights, f.ar);
        }
    } else {
        types(&s, &g)?;
        s_and_dpl(&s, &g)?;
        present_reserved_granularity(&s, &g)?;
    }
    tr(&s.tr, &g)?;
    ldtr(&s.ldtr)
}

fn selectors(s: &Segs, g: &Guest) -> CheckResult {
    ensure!(!s.tr.selector.ti(), GuestTrSelectorTi);
    if !s.ldtr.attr.unusable() {
        ensure!(!s.ldtr.selector.ti(), GuestLdtrSelectorTi);
    }
    if !g.v86 && !g.unrestricted {
        ensure!(
            s.ss().selector.rpl() == s.cs().selector.rpl(),
            GuestSsRplNotCsRpl
        );
    }
    Ok(())
}

fn bases(env: &EntryEnv<'_>, s: &Segs, g: &Guest) -> CheckResult {
    if g.v86 {
        for (f, seg) in &s.order {
            ensure!(
                seg.base == (seg.selector.0 as u64) << 4,
                GuestV86Base,
                f.base
            );
        }
    }
    let (fs, gs) = (&s.order[I_FS], &s.order[I_GS]);
    for (f, base) in [
        (super::view::TR.base, s.tr.base),
        (fs.0.base, fs.1.base),
        (gs.0.base, gs.1.base),
    ] {
        ensure!(canonical(env.caps, base), GuestBaseCanonical, f);
    }
    if !s.ldtr.attr.unusable() {
        ensure!(
            canonical(env.caps, s.ldtr.base),
            GuestBaseCanonical,
            super::view::LDTR.base
        );
    }
    ensure!(s.cs().base >> 32 == 0, GuestCsBaseHigh);
    for (f, seg) in [I_SS, I_DS, I_ES].map(|i| &s.order[i]) {
        if !seg.attr.unusable() {
            ensure!(seg.base >> 32 == 0, GuestDataBaseHigh, f.base);
        }
    }
    Ok(())
}

fn types(s: &Segs, g: &Guest) -> CheckResult {
    let cs = s.cs().attr.typ();
    if g.unrestricted {
        ensure!(
            matches!(cs, 3 | 9 | 11 | 13 | 15),
            GuestCsAccessRightsTypeWithUnrestrictedGuest
        );
    } else {
        ensure!(matches!(cs, 9 | 11 | 13 | 15), GuestCsAccessRightsType);
    }
    let ss = s.ss();
    if !ss.attr.unusable() {
        ensure!(matches!(ss.attr.typ(), 3 | 7), GuestSsAccessRightsType);
    }
    for (f, seg) in s.usable_data() {
        ensure!(seg.attr.accessed(), GuestDataAccessRightsAccessed, f.ar);
        let code = seg.attr.typ() & 8 != 0;
        ensure!(
            !code || seg.attr.typ() & 2 != 0,
            GuestDataAccessRightsCodeReadable,
            f.ar
        );
    }
    Ok(())
}

fn s_and_dpl(s: &Segs, g: &Guest) -> CheckResult {
    for (f, seg) in s.cs_or_usable() {
        ensure!(seg.attr.s(), GuestSegAccessRightsS, f.ar);
    }
    let (cs, ss) = (s.cs(), s.ss());
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
        for (f, seg) in s.usable_data() {
            if seg.attr.typ() <= 11 {
                ensure!(seg.attr.dpl() >= seg.selector.rpl(), GuestDataDplRpl, f.ar);
            }
        }
    }
    Ok(())
}

fn present_reserved_granularity(s: &Segs, g: &Guest) -> CheckResult {
    for (f, seg) in s.cs_or_usable() {
        ensure!(seg.attr.present(), GuestSegAccessRightsPresent, f.ar);
    }
    for (f, seg) in s.cs_or_usable() {
        ensure!(
            seg.attr.0 & 0xf00 == 0,
            GuestSegAccessRightsReserved11To8,
            f.ar
        );
    }
    let cs = s.cs();
    if g.ia32e && cs.attr.l() {
        ensure!(!cs.attr.db(), GuestCsDbWithL);
    }
    for (f, seg) in s.cs_or_usable() {
        ensure!(granularity_ok(seg), GuestSegGranularity, f.ar);
    }
    for (f, seg) in s.cs_or_usable() {
        ensure!(
            seg.attr.0 & 0xfffe_0000 == 0,
            GuestSegAccessRightsReserved31To17,
            f.ar
        );
    }
    Ok(())
}

fn tr(tr: &SegmentCache, g: &Guest) -> CheckResult {
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
    ensure!(granularity_ok(tr), GuestTrGranularity);
    ensure!(!a.unusable(), GuestTrUnusable);
    ensure!(a.0 & 0xfffe_0000 == 0, GuestTrReserved31To17);
    Ok(())
}

fn ldtr(ldtr: &SegmentCache) -> CheckResult {
    let a = ldtr.attr;
    if a.unusable() {
        return Ok(());
    }
    ensure!(a.typ() == 2, GuestLdtrType);
    ensure!(!a.s(), GuestLdtrS);
    ensure!(a.present(), GuestLdtrPresent);
    ensure!(a.0 & 0xf00 == 0, GuestLdtrReserved11To8);
    ensure!(granularity_ok(ldtr), GuestLdtrGranularity);
    ensure!(a.0 & 0xfffe_0000 == 0, GuestLdtrReserved31To17);
    Ok(())
}
