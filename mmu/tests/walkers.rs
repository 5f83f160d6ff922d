//! Property tests: on random page tables in random memory, the crate's
//! walkers agree with the independent reference walkers of
//! `common/reference.rs` on the address, the attributes, the fault and its
//! error code or exit information, and every accessed/dirty update.

mod common;

use common::reference::{self as r, Acc, RefNested, RefOk, Setup, Why};
use common::{guest_frame, nested_frame, Knobs, Profile, RandMem};
use mmu::paging::{
    translate_nested, walk_guest, EptCaps, EptContext, Eptp, GuestConfig, NoRecord, NptContext,
    Trace,
};
use mmu::{
    Access, AccessKind, AddressWidths, Cr0, Cr4, Efer, GuestPhysAddr, LinearAddr, Mmu,
    NestedPaging, PagingFeatures, PagingMode, PagingRegs, TlbConfig, TranslateFault, Translation,
    TranslationContext,
};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
struct Flags {
    wp: bool,
    pse: bool,
    pge: bool,
    smep: bool,
    smap: bool,
    pke: bool,
    pks: bool,
    nxe: bool,
    page_1g: bool,
    pkru: u32,
    pkrs: u32,
}

fn flags() -> impl Strategy<Value = Flags> {
    (any::<[bool; 9]>(), any::<u32>(), any::<u32>()).prop_map(|(b, pkru, pkrs)| Flags {
        wp: b[0],
        pse: b[1],
        pge: b[2],
        smep: b[3],
        smap: b[4],
        pke: b[5],
        pks: b[6],
        nxe: b[7],
        page_1g: b[8],
        pkru,
        pkrs,
    })
}

fn accesses() -> impl Strategy<Value = Vec<(u64, u8, bool, bool, bool, u8)>> {
    prop::collection::vec(
        (
            any::<u64>(),
            0u8..3,
            any::<bool>(),
            0u8..8,
            any::<bool>(),
            0u8..4,
        ),
        1..10,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(la, kind, user, implicit, ac, pick)| (la, kind, user, implicit == 0, ac, pick))
            .collect()
    })
}

/// Picks a linear address: often one of a few shared ones (so walks meet
/// entries whose flags earlier accesses set), sometimes a fresh one.
fn pick_la(shared: &[u64; 3], la: u64, pick: u8) -> u64 {
    match pick {
        0..=2 => shared[pick as usize] ^ (la & 0x3fff),
        _ => la,
    }
}

fn setup(mode: PagingMode, f: &Flags, maxphy: u32, cr3: u64, pdptes: [u64; 4]) -> Setup {
    Setup {
        mode,
        cr3,
        wp: f.wp,
        pse: f.pse,
        pge: f.pge,
        smep: f.smep,
        smap: f.smap,
        pke: f.pke,
        pks: f.pks,
        nxe: f.nxe,
        pkru: f.pkru,
        pkrs: f.pkrs,
        pdptes,
        maxphy,
        page_1g: f.page_1g,
    }
}

fn config(s: &Setup) -> GuestConfig {
    let mut cr0 = Cr0::PE | Cr0::ET;
    if s.mode != PagingMode::Disabled {
        cr0 |= Cr0::PG;
    }
    if s.wp {
        cr0 |= Cr0::WP;
    }
    let mut cr4 = Cr4::empty();
    for (on, bit) in [
        (s.pse, Cr4::PSE),
        (s.pge, Cr4::PGE),
        (s.smep, Cr4::SMEP),
        (s.smap, Cr4::SMAP),
        (s.pke, Cr4::PKE),
        (s.pks, Cr4::PKS),
    ] {
        if on {
            cr4 |= bit;
        }
    }
    let mut efer = Efer::empty();
    if s.nxe {
        efer |= Efer::NXE;
    }
    match s.mode {
        PagingMode::Pae => cr4 |= Cr4::PAE,
        PagingMode::Level4 => {
            cr4 |= Cr4::PAE;
            efer |= Efer::LME | Efer::LMA;
        }
        PagingMode::Level5 => {
            cr4 |= Cr4::PAE | Cr4::LA57;
            efer |= Efer::LME | Efer::LMA;
        }
        _ => {}
    }
    let mut regs = PagingRegs::new(cr0, s.cr3, cr4, efer);
    assert_eq!(regs.mode, s.mode);
    regs.pdptes = s.pdptes;
    regs.pkru = s.pkru;
    regs.pkrs = s.pkrs;
    GuestConfig {
        regs,
        widths: AddressWidths {
            phys_bits: s.maxphy as u8,
            linear_bits: 57,
        },
        features: PagingFeatures { page_1g: s.page_1g },
    }
}

fn access(kind: u8, user: bool, implicit: bool, ac: bool) -> (Access, Acc) {
    let implicit = implicit && !user;
    let k = match kind {
        0 => AccessKind::Read,
        1 => AccessKind::Write,
        _ => AccessKind::Execute,
    };
    let a = Access {
        kind: k,
        user,
        implicit_supervisor: implicit,
        ac,
    };
    (
        a,
        Acc {
            kind,
            user,
            implicit,
            ac,
        },
    )
}

/// Compares one translation, and the memory both sides leave behind.
fn same(
    lib: &Result<Translation, TranslateFault>,
    reference: &Result<RefOk, TranslateFault>,
    nested: bool,
) -> Result<(), String> {
    match (lib, reference) {
        (Ok(t), Ok(r)) => {
            let got = (
                t.pa.0,
                t.gpa.map(|g| g.0),
                t.page_size.shift(),
                t.user,
                t.writable,
                t.nx,
                t.global,
                t.dirty,
                t.pkey,
                t.pat_index,
            );
            let want = (
                r.pa,
                nested.then_some(r.gpa),
                r.shift,
                r.user,
                r.writable,
                r.nx,
                r.global,
                r.dirty,
                r.pkey,
                r.pat,
            );
            if got == want {
                Ok(())
            } else {
                Err(format!(
                    "translation differs:\n lib {got:x?}\n ref {want:x?}"
                ))
            }
        }
        (Err(a), Err(b)) if a == b => Ok(()),
        _ => Err(format!(
            "outcome differs:\n lib {lib:x?}\n ref {reference:x?}"
        )),
    }
}

fn run_guest(
    seed: u64,
    mode: PagingMode,
    f: Flags,
    maxphy: u32,
    nested: Option<(NestedPaging, RefNested, Profile)>,
    accs: Vec<(u64, u8, bool, bool, bool, u8)>,
) -> Result<(), TestCaseError> {
    let profile = if mode == PagingMode::Legacy32 {
        Profile::E32
    } else {
        Profile::G64
    };
    let nprofile = nested.map_or(Profile::G64, |n| n.2);
    let mut mem = RandMem::new(seed, profile, nprofile, maxphy);
    // Alternate harsh tables (faults of every kind) with kind ones (deep
    // successful walks); nested tables are mostly kind so 2-D walks reach
    // the guest checks.
    if seed & 1 == 0 {
        mem.guest_knobs = Knobs::KIND;
    }
    if seed & 6 != 0 {
        mem.nested_knobs = Knobs::KIND;
    }
    let mut cr3 = guest_frame(seed >> 7) | ((seed >> 20) & 0xfff);
    if mode == PagingMode::Legacy32 {
        cr3 &= 0xffff_ffff;
    }
    if mode == PagingMode::Pae {
        cr3 = guest_frame(seed >> 7) | ((seed >> 20) & 0xfe0);
    }
    // PDPTE registers as a MOV to CR3 would have loaded them: no reserved bits.
    let mut pdptes = [0u64; 4];
    for (i, p) in pdptes.iter_mut().enumerate() {
        let h = common::splitmix(seed ^ (i as u64 + 99));
        let mut e = if h & 7 == 0 { 0 } else { 1 | (h & 0x18) };
        e |= if h & 0x100 == 0 {
            guest_frame(h >> 9)
        } else {
            common::splitmix(h) & ((1u64 << maxphy) - 1) & !0xfff
        };
        *p = e;
    }
    let s = setup(mode, &f, maxphy, cr3, pdptes);
    let cfg = config(&s);
    let mut lib_mem = mem.clone();
    // The same accesses through the caching MMU: with no software edits to
    // the tables, caching must be invisible (same results, same memory).
    let mut mmu_mem = mem.clone();
    let preset = if seed & 16 == 0 {
        TlbConfig::intel()
    } else {
        TlbConfig::amd()
    };
    let mut mmu = Mmu::new(preset).unwrap();
    let mut tctx = TranslationContext::new(cfg.regs, cfg.widths, cfg.features).with_vpid(1);
    if let Some(n) = &nested {
        tctx = tctx.with_nested(n.0);
    }
    // The MMU's short walks against its general walker: the same outcome,
    // memory, recorded references and events, and the same caches and
    // counters after every access.
    let mut short = (mmu.clone(), mem.clone());
    let mut general = (mmu.clone(), mem.clone());
    general.0.set_general_walks_only(true);
    let shared = [
        common::splitmix(seed ^ 1),
        common::splitmix(seed ^ 2),
        common::splitmix(seed ^ 3),
    ];
    for (la, kind, user, implicit, ac, pick) in accs {
        let la = pick_la(&shared, la, pick);
        let (a, acc) = access(kind, user, implicit, ac);
        let lib = walk_guest(
            &cfg,
            nested.as_ref().map(|n| &n.0),
            la,
            a,
            &mut lib_mem,
            &mut NoRecord,
        );
        let reference = r::translate(&mut mem, &s, nested.as_ref().map(|n| &n.1), la, acc);
        if let Err(e) = same(&lib, &reference, nested.is_some()) {
            return Err(TestCaseError::fail(format!(
                "la {la:#x} {a:?} {mode:?}: {e}"
            )));
        }
        prop_assert_eq!(
            &lib_mem.written,
            &mem.written,
            "A/D updates differ at la {:#x}",
            la
        );
        let cached = mmu.translate(&tctx, LinearAddr(la), a, &mut mmu_mem, &mut NoRecord);
        prop_assert_eq!(
            cached,
            lib.map(|t| t.pa),
            "caching MMU differs at la {:#x}",
            la
        );
        prop_assert_eq!(
            &mmu_mem.written,
            &mem.written,
            "caching MMU memory differs at la {:#x}",
            la
        );
        let (mut ts, mut tg) = (Trace::default(), Trace::default());
        let rs = short
            .0
            .translate(&tctx, LinearAddr(la), a, &mut short.1, &mut ts);
        let rg = general
            .0
            .translate(&tctx, LinearAddr(la), a, &mut general.1, &mut tg);
        prop_assert_eq!(rs, rg, "short walk differs at la {:#x}", la);
        prop_assert_eq!(&ts, &tg, "short walk's trace differs at la {:#x}", la);
        prop_assert!(
            short.0 == general.0,
            "short walk's caches or counters differ at la {:#x}",
            la
        );
        prop_assert_eq!(
            &short.1.written,
            &general.1.written,
            "short walk's memory differs at la {:#x}",
            la
        );
    }
    Ok(())
}

fn mode_strategy() -> impl Strategy<Value = PagingMode> {
    prop_oneof![
        Just(PagingMode::Legacy32),
        Just(PagingMode::Pae),
        Just(PagingMode::Level4),
        Just(PagingMode::Level5),
    ]
}

fn maxphy() -> impl Strategy<Value = u32> {
    prop_oneof![Just(36u32), Just(39), Just(40), Just(46), Just(52)]
}

fn ept(
    seed: u64,
    levels: u8,
    ad: bool,
    exec_only: bool,
    mbec: bool,
    adv: bool,
    page_1g: bool,
) -> (NestedPaging, RefNested, Profile) {
    let eptp =
        Eptp::new(nested_frame(levels as u32, seed >> 3), levels, ad).0 | ((seed >> 11) & 0x80);
    (
        NestedPaging::Ept(EptContext {
            eptp: Eptp(eptp),
            caps: EptCaps {
                exec_only,
                page_1g,
                advanced_exit_info: adv,
            },
            mbec,
        }),
        RefNested::Ept {
            eptp,
            exec_only,
            page_1g,
            mbec,
            adv,
        },
        Profile::Ept,
    )
}

fn npt(seed: u64, levels: u8, nxe: bool, page_1g: bool) -> (NestedPaging, RefNested, Profile) {
    let ncr3 = nested_frame(levels as u32, seed >> 3) | ((seed >> 11) & 0x18);
    (
        NestedPaging::Npt(NptContext {
            ncr3,
            levels,
            nxe,
            page_1g,
        }),
        RefNested::Npt {
            ncr3,
            levels: levels as u32,
            nxe,
            page_1g,
        },
        Profile::G64,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// 32-bit, PAE, 4-level and 5-level paging.
    #[test]
    fn guest_walker_matches_reference(
        seed in any::<u64>(),
        mode in mode_strategy(),
        f in flags(),
        maxphy in maxphy(),
        accs in accesses(),
    ) {
        run_guest(seed, mode, f, maxphy, None, accs)?;
    }

    /// EPT alone: guest-physical accesses.
    #[test]
    fn ept_walker_matches_reference(
        seed in any::<u64>(),
        five in any::<bool>(),
        b in any::<[bool; 5]>(),
        maxphy in maxphy(),
        gpas in prop::collection::vec((any::<u64>(), 0u8..3), 1..10),
    ) {
        let (n, rn, _) = ept(seed, if five { 5 } else { 4 }, b[0], b[1], b[2], b[3], b[4]);
        nested_only(seed, n, rn, Profile::Ept, maxphy, gpas)?;
    }

    /// NPT alone: guest-physical accesses.
    #[test]
    fn npt_walker_matches_reference(
        seed in any::<u64>(),
        five in any::<bool>(),
        b in any::<[bool; 2]>(),
        maxphy in maxphy(),
        gpas in prop::collection::vec((any::<u64>(), 0u8..3), 1..10),
    ) {
        let (n, rn, _) = npt(seed, if five { 5 } else { 4 }, b[0], b[1]);
        nested_only(seed, n, rn, Profile::G64, maxphy, gpas)?;
    }

    /// Two-dimensional walks over EPT: the composition equals walking the
    /// guest tables through the reference nested walk.
    #[test]
    fn two_dimensional_ept_matches_reference(
        seed in any::<u64>(),
        mode in prop_oneof![Just(PagingMode::Disabled), mode_strategy()],
        f in flags(),
        five in any::<bool>(),
        b in any::<[bool; 5]>(),
        maxphy in maxphy(),
        accs in accesses(),
    ) {
        let n = ept(seed, if five { 5 } else { 4 }, b[0], b[1], b[2], b[3], b[4]);
        run_guest(seed, mode, f, maxphy, Some(n), accs)?;
    }

    /// Two-dimensional walks over NPT.
    #[test]
    fn two_dimensional_npt_matches_reference(
        seed in any::<u64>(),
        mode in prop_oneof![Just(PagingMode::Disabled), mode_strategy()],
        f in flags(),
        five in any::<bool>(),
        b in any::<[bool; 2]>(),
        maxphy in maxphy(),
        accs in accesses(),
    ) {
        let n = npt(seed, if five { 5 } else { 4 }, b[0], b[1]);
        run_guest(seed, mode, f, maxphy, Some(n), accs)?;
    }
}

fn nested_only(
    seed: u64,
    n: NestedPaging,
    rn: RefNested,
    profile: Profile,
    maxphy: u32,
    gpas: Vec<(u64, u8)>,
) -> Result<(), TestCaseError> {
    let mut mem = RandMem::new(seed, Profile::G64, profile, maxphy);
    if seed & 1 == 0 {
        mem.nested_knobs = Knobs::KIND;
    }
    let mut lib_mem = mem.clone();
    let widths = AddressWidths {
        phys_bits: maxphy as u8,
        linear_bits: 57,
    };
    for (gpa, kind) in gpas {
        let k = [AccessKind::Read, AccessKind::Write, AccessKind::Execute][kind as usize];
        let lib = translate_nested(
            &n,
            widths,
            GuestPhysAddr(gpa),
            k,
            &mut lib_mem,
            &mut NoRecord,
        );
        let reference = rn.translate(&mut mem, gpa, kind, Why::Physical);
        match (&lib, &reference) {
            (Ok(t), Ok(r)) => prop_assert_eq!(
                (t.hpa.0, t.size.shift()),
                (r.hpa, r.shift),
                "gpa {:#x}",
                gpa
            ),
            (Err(a), Err(b)) => prop_assert_eq!(a, b, "gpa {:#x}", gpa),
            _ => prop_assert!(false, "gpa {gpa:#x}: lib {lib:x?} ref {reference:x?}"),
        }
        prop_assert_eq!(
            &lib_mem.written,
            &mem.written,
            "A/D updates differ at gpa {:#x}",
            gpa
        );
    }
    Ok(())
}

/// The generators are worth something only if random tables produce every
/// kind of outcome: check that they do.
#[test]
fn generators_cover_every_outcome() {
    use mmu::paging::{EptViolationQual, NpfExitInfo1};
    use mmu::PfErrorCode;
    use std::collections::BTreeSet;
    let mut seen: BTreeSet<&'static str> = BTreeSet::new();
    let modes = [
        PagingMode::Legacy32,
        PagingMode::Pae,
        PagingMode::Level4,
        PagingMode::Level5,
        PagingMode::Disabled,
    ];
    for seed in 0..4000u64 {
        let mode = modes[(seed % 5) as usize];
        let nest = match (seed / 5) % 3 {
            0 => None,
            1 => Some(ept(seed, 4, seed & 128 != 0, true, false, true, true)),
            _ => Some(npt(seed, 4, true, true)),
        };
        if mode == PagingMode::Disabled && nest.is_none() {
            continue;
        }
        let f = Flags {
            wp: seed & 8 != 0,
            pse: true,
            pge: true,
            smep: seed & 16 != 0,
            smap: seed & 32 != 0,
            pke: true,
            pks: false,
            nxe: seed & 64 != 0,
            page_1g: true,
            pkru: 0x5555_0000,
            pkrs: 0,
        };
        let mut pd = [0u64; 4];
        for (i, p) in pd.iter_mut().enumerate() {
            *p = guest_frame(seed + i as u64) | 1;
        }
        let s = setup(mode, &f, 46, guest_frame(seed), pd);
        let cfg = config(&s);
        let profile = if mode == PagingMode::Legacy32 {
            Profile::E32
        } else {
            Profile::G64
        };
        let mut mem = RandMem::new(seed, profile, nest.map_or(Profile::G64, |n| n.2), 46);
        mem.nested_knobs = Knobs::KIND;
        if seed & 8 == 0 {
            mem.guest_knobs = Knobs::KIND;
        }
        for i in 0..4u64 {
            let la = common::splitmix(seed * 7 + i);
            let (a, _) = access((i % 3) as u8, i & 1 == 0, false, false);
            let res = walk_guest(
                &cfg,
                nest.as_ref().map(|n| &n.0),
                la,
                a,
                &mut mem,
                &mut NoRecord,
            );
            let class = match res {
                Ok(t) => match t.page_size {
                    mmu::PageSize::Size4K => "4K page",
                    mmu::PageSize::Size2M => "2M page",
                    mmu::PageSize::Size4M => "4M page",
                    mmu::PageSize::Size1G => "1G page",
                },
                Err(TranslateFault::PageFault { error_code: c, .. }) => {
                    if c.contains(PfErrorCode::PK) {
                        seen.insert("#PF PK");
                    }
                    if c.contains(PfErrorCode::ID) {
                        seen.insert("#PF I/D");
                    }
                    if c.contains(PfErrorCode::RSVD) {
                        "#PF RSVD"
                    } else if c.contains(PfErrorCode::P) {
                        "#PF protection"
                    } else {
                        "#PF not present"
                    }
                }
                Err(TranslateFault::EptViolation(v)) => {
                    if v.qualification.contains(EptViolationQual::GLA_TRANSLATED) {
                        "EPT violation, final"
                    } else {
                        "EPT violation, paging structure"
                    }
                }
                Err(TranslateFault::EptMisconfig { .. }) => "EPT misconfiguration",
                Err(TranslateFault::NestedPageFault(n)) => {
                    if n.exit_info1.contains(NpfExitInfo1::TABLE) {
                        "#NPF, guest table"
                    } else {
                        "#NPF, final"
                    }
                }
            };
            seen.insert(class);
        }
    }
    let want = [
        "4K page",
        "2M page",
        "4M page",
        "1G page",
        "#PF not present",
        "#PF RSVD",
        "#PF protection",
        "#PF PK",
        "#PF I/D",
        "EPT violation, final",
        "EPT violation, paging structure",
        "EPT misconfiguration",
        "#NPF, guest table",
        "#NPF, final",
    ];
    for w in want {
        assert!(
            seen.contains(w),
            "random tables never produced: {w} (saw {seen:?})"
        );
    }
}
