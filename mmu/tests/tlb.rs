//! TLB properties: after each architectural invalidation, no translation the
//! manual requires flushed is used again; tags isolate PCIDs, VPIDs, ASIDs.
//!
//! The property test runs random sequences of translations, page-table and
//! EPT edits, and invalidations against the Intel-like and AMD-like presets.
//! A shadow model, written here from the manuals' rules, keeps every
//! translation the processor may still legitimately use (what was once
//! correct and has not been invalidated since). Every translation must equal
//! a fresh walk of the current tables, or one of those.

mod common;

use common::builder::{Builder, EPT_LEAF, EPT_TABLE, TABLE};
use mmu::paging::{walk_guest, EptCaps, EptContext, Eptp, NoRecord, SparseMemory};
use mmu::{
    Access, AccessKind, AddressWidths, Cr0, Cr4, Efer, InveptType, InvpcidType, InvvpidType,
    LinearAddr, Mmu, MmuCosts, NestedPaging, PagingFeatures, PagingRegs, TlbConfig, TranslateFault,
    TranslationContext,
};
use proptest::prelude::*;

const W: AddressWidths = AddressWidths {
    phys_bits: 46,
    linear_bits: 48,
};
const LA_BASE: u64 = 0x40_0000_0000;
const DATA: u64 = 0x100_0000;
const P: u64 = 1;
const RW: u64 = 2;
const US: u64 = 4;
const AD: u64 = 0x60;
const G: u64 = 0x100;
const NX: u64 = 1 << 63;

fn la(i: u8) -> u64 {
    let i = i as u64 % 8;
    if i < 4 {
        LA_BASE + i * 0x1000
    } else {
        LA_BASE + 0x20_0000 + (i - 4) * 0x1000
    }
}

/// Two guest address spaces (roots A and B) over the same eight linear pages,
/// two EPT hierarchies (X, Y) mapping guest tables identically and data
/// 1 GiB / 2 GiB up.
struct World {
    mem: SparseMemory,
    roots: [u64; 2],
    eptps: [Eptp; 2],
    pte: [[u64; 8]; 2],
    ept_pte: [[u64; 16]; 2],
}

fn world() -> World {
    let mut b = Builder::new(0x1000);
    let roots = [b.alloc(), b.alloc()];
    let mut pte = [[0u64; 8]; 2];
    for (r, root) in roots.iter().enumerate() {
        for i in 0..8u8 {
            let frame = DATA + ((i as u64 + 8 * r as u64) % 16) * 0x1000;
            pte[r][i as usize] = b.map(*root, 4, la(i), frame, 1, TABLE, P | RW | US | AD);
        }
    }
    let tables_end = b.next;
    b.next = 0x80_0000;
    let mut eptps = [Eptp(0); 2];
    let mut ept_pte = [[0u64; 16]; 2];
    for (x, slot) in eptps.iter_mut().enumerate() {
        let root = b.alloc();
        let mut g = 0x1000;
        while g < tables_end {
            b.map(root, 4, g, g, 1, EPT_TABLE, EPT_LEAF);
            g += 0x1000;
        }
        for f in 0..16u64 {
            let gpa = DATA + f * 0x1000;
            ept_pte[x][f as usize] = b.map(
                root,
                4,
                gpa,
                gpa + (x as u64 + 1) * 0x4000_0000,
                1,
                EPT_TABLE,
                EPT_LEAF,
            );
        }
        *slot = Eptp::new(root, 4, false);
    }
    World {
        mem: b.mem,
        roots,
        eptps,
        pte,
        ept_pte,
    }
}

/// Context `c`: VPID c%3, PCID (c/3)%3, nested none / X / Y by c/9.
fn ctx(w: &World, c: u8) -> TranslationContext {
    let c = c % 27;
    let vpid = (c % 3) as u16;
    let pcid = ((c / 3) % 3) as u64;
    let root = w.roots[(pcid % 2) as usize];
    let regs = PagingRegs::new(
        Cr0::PG | Cr0::PE | Cr0::WP,
        root | pcid,
        Cr4::PAE | Cr4::PGE | Cr4::PCIDE,
        Efer::LME | Efer::LMA | Efer::NXE,
    );
    let t = TranslationContext::new(regs, W, PagingFeatures::default()).with_vpid(vpid);
    match c / 9 {
        0 => t,
        n => t.with_nested(NestedPaging::Ept(EptContext {
            eptp: w.eptps[n as usize - 1],
            caps: EptCaps::default(),
            mbec: false,
        })),
    }
}

#[derive(Clone, Debug)]
enum Op {
    Translate { c: u8, i: u8, kind: u8, user: bool },
    Remap { r: u8, i: u8, frame: u8, flags: u8 },
    RemapEpt { x: u8, f: u8, to: u8 },
    Invlpg { c: u8, i: u8 },
    MovCr3 { c: u8, no_flush: bool },
    Invpcid { c: u8, kind: u8, pcid: u8, i: u8 },
    Invvpid { kind: u8, vpid: u8, i: u8 },
    Invept { global: bool, x: u8 },
    VmTransition,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (any::<u8>(), any::<u8>(), 0u8..3, any::<bool>())
            .prop_map(|(c, i, kind, user)| Op::Translate { c, i, kind, user }),
        3 => (0u8..2, any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(r, i, frame, flags)| Op::Remap { r, i, frame, flags }),
        2 => (0u8..2, 0u8..16, any::<u8>()).prop_map(|(x, f, to)| Op::RemapEpt { x, f, to }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(c, i)| Op::Invlpg { c, i }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(c, no_flush)| Op::MovCr3 { c, no_flush }),
        1 => (any::<u8>(), 0u8..4, 0u8..3, any::<u8>())
            .prop_map(|(c, kind, pcid, i)| Op::Invpcid { c, kind, pcid, i }),
        1 => (0u8..4, 0u8..3, any::<u8>()).prop_map(|(kind, vpid, i)| Op::Invvpid { kind, vpid, i }),
        1 => (any::<bool>(), 0u8..2).prop_map(|(global, x)| Op::Invept { global, x }),
        1 => Just(Op::VmTransition),
    ]
}

/// A translation the processor may still be holding.
#[derive(Clone, Copy, Debug)]
struct Held {
    vpid: u16,
    pcid: u16,
    root: u64,
    page: u64,
    global: bool,
    gpa: u64,
    pa: u64,
    user: bool,
    writable: bool,
    nx: bool,
}

/// A guest-physical mapping the processor may still be holding.
#[derive(Clone, Copy, Debug)]
struct HeldGpa {
    root: u64,
    gpa_page: u64,
    hpa_page: u64,
}

#[derive(Default)]
struct Shadow {
    held: Vec<Held>,
    gpa: Vec<HeldGpa>,
}

fn permits(h: &Held, a: Access) -> bool {
    (!a.user || h.user)
        && (a.kind != AccessKind::Write || h.writable)
        && (a.kind != AccessKind::Execute || !h.nx)
}

fn run(config: TlbConfig, ops: Vec<Op>) -> Result<(), TestCaseError> {
    run_probing(config, ops, false)
}

fn run_probing(config: TlbConfig, ops: Vec<Op>, probe: bool) -> Result<(), TestCaseError> {
    run_costed(config, ops, probe, None)
}

/// Cost weights for [`run_costed`]: set first, then every `every` ops the
/// counters are taken (as at a world switch) and the weights swapped.
#[derive(Clone, Debug)]
struct Costing {
    weights: [MmuCosts; 2],
    every: usize,
}

fn costs(v: [u64; 10]) -> MmuCosts {
    MmuCosts {
        tlb_l1_hit: v[0],
        tlb_l2_hit: v[1],
        tlb_miss: v[2],
        guest_ref: v[3],
        nested_ref: v[4],
        ad_update: v[5],
        psc_hit: v[6],
        psc_miss: v[7],
        nested_tlb_hit: v[8],
        nested_tlb_miss: v[9],
    }
}

/// [`run`]; with `probe`, after each translation every kind of first-level
/// probe of its page must equal the probe of a copy of the MMU (a copy has
/// fresh TLB generations, so it searches the first level instead of using
/// what the last fill remembers). With `costing`, after every operation the
/// MMU's running cost of its counters must be the cost computed from them.
fn run_costed(
    config: TlbConfig,
    ops: Vec<Op>,
    probe: bool,
    costing: Option<Costing>,
) -> Result<(), TestCaseError> {
    let mut w = world();
    let mut mmu = Mmu::new(config).unwrap();
    if let Some(c) = &costing {
        mmu.set_costs(c.weights[0]);
    }
    let mut sh = Shadow::default();
    // Calls of `translate` since the counters were last taken: what the
    // derived count of translations must say.
    let mut translated = 0u64;
    for (n, op) in ops.into_iter().enumerate() {
        prop_assert_eq!(mmu.counters().translations(), translated, "before op {}", n);
        if let Some(c) = &costing {
            prop_assert_eq!(
                mmu.cycles(),
                mmu.costs().cycles(mmu.counters()),
                "before op {}",
                n
            );
            if n % c.every == c.every - 1 {
                mmu.take_counters();
                translated = 0;
                prop_assert_eq!(mmu.cycles(), (0, 0));
                mmu.set_costs(c.weights[(n / c.every) % 2]);
            }
        }
        match op {
            Op::Translate { c, i, kind, user } => {
                let t = ctx(&w, c);
                let kind =
                    [AccessKind::Read, AccessKind::Write, AccessKind::Execute][kind as usize];
                let a = Access::new(kind, user);
                let la = la(i);
                let fresh = walk_guest(
                    t.config(),
                    t.nested(),
                    la,
                    a,
                    &mut w.mem.clone(),
                    &mut NoRecord,
                );
                let got = mmu.translate(&t, LinearAddr(la), a, &mut w.mem, &mut NoRecord);
                translated += 1;
                check(&mut sh, &t, la, a, &fresh, &got)
                    .map_err(|e| TestCaseError::fail(format!("op {n}: {e}")))?;
                if probe {
                    let copy = mmu.clone();
                    for kind in [AccessKind::Read, AccessKind::Write, AccessKind::Execute] {
                        for user in [false, true] {
                            let p = Access::new(kind, user);
                            prop_assert_eq!(
                                mmu.l1_probe(&t, LinearAddr(la + 8), p),
                                copy.l1_probe(&t, LinearAddr(la + 8), p),
                                "op {}: probe {:?} after {:?}",
                                n,
                                p,
                                a
                            );
                        }
                    }
                }
            }
            Op::Remap { r, i, frame, flags } => {
                let mut e = (DATA + (frame as u64 % 16) * 0x1000) | AD;
                for (bit, v) in [(0, P), (1, RW), (2, US), (3, G), (4, NX)] {
                    if flags & (1 << bit) != 0 || (bit == 0 && flags & 0xe0 != 0) {
                        e |= v;
                    }
                }
                let r = r as usize;
                let i = i as usize % 8;
                w.mem.write_u64(w.pte[r][i], e);
            }
            Op::RemapEpt { x, f, to } => {
                let a = w.ept_pte[x as usize][f as usize];
                let old = w.mem.read_u64(a);
                sh.gpa.push(HeldGpa {
                    root: w.eptps[x as usize].ep4ta(),
                    gpa_page: (DATA >> 12) + f as u64,
                    hpa_page: (old & 0x000f_ffff_ffff_f000) >> 12,
                });
                let target = 0x1_0000_0000 + to as u64 * 0x1000;
                w.mem.write_u64(a, target | EPT_LEAF);
            }
            Op::Invlpg { c, i } => {
                let t = ctx(&w, c);
                let page = la(i) >> 12;
                mmu.invlpg(&t, LinearAddr(la(i)));
                sh.held.retain(|h| {
                    !(h.vpid == t.vpid() && h.page == page && (h.pcid == t.pcid() || h.global))
                });
            }
            Op::MovCr3 { c, no_flush } => {
                let t = ctx(&w, c);
                mmu.flush_cr3(&t, no_flush);
                if !no_flush {
                    sh.held
                        .retain(|h| !(h.vpid == t.vpid() && h.pcid == t.pcid() && !h.global));
                }
            }
            Op::Invpcid { c, kind, pcid, i } => {
                let t = ctx(&w, c);
                let page = la(i) >> 12;
                let pcid = pcid as u16;
                let v = t.vpid();
                let k = [
                    InvpcidType::IndividualAddress,
                    InvpcidType::SingleContext,
                    InvpcidType::AllContextIncludingGlobal,
                    InvpcidType::AllContext,
                ][kind as usize];
                mmu.invpcid(&t, k, pcid, LinearAddr(la(i)));
                sh.held.retain(|h| {
                    let gone = h.vpid == v
                        && match k {
                            InvpcidType::IndividualAddress => {
                                h.pcid == pcid && h.page == page && !h.global
                            }
                            InvpcidType::SingleContext => h.pcid == pcid && !h.global,
                            InvpcidType::AllContextIncludingGlobal => true,
                            InvpcidType::AllContext => !h.global,
                        };
                    !gone
                });
            }
            Op::Invvpid { kind, vpid, i } => {
                let vpid = vpid as u16;
                let page = la(i) >> 12;
                let k = [
                    InvvpidType::IndividualAddress,
                    InvvpidType::SingleContext,
                    InvvpidType::AllContext,
                    InvvpidType::SingleContextRetainingGlobals,
                ][kind as usize];
                mmu.invvpid(k, vpid, LinearAddr(la(i)));
                sh.held.retain(|h| {
                    let gone = match k {
                        InvvpidType::IndividualAddress => h.vpid == vpid && h.page == page,
                        InvvpidType::SingleContext => h.vpid == vpid,
                        InvvpidType::AllContext => h.vpid != 0,
                        InvvpidType::SingleContextRetainingGlobals => h.vpid == vpid && !h.global,
                    };
                    !gone
                });
            }
            Op::Invept { global, x } => {
                let eptp = w.eptps[x as usize];
                let k = if global {
                    InveptType::Global
                } else {
                    InveptType::SingleContext
                };
                mmu.invept(k, eptp);
                let r = eptp.ep4ta();
                sh.held
                    .retain(|h| !(h.root != 0 && (global || h.root == r)));
                sh.gpa.retain(|g| !(global || g.root == r));
            }
            Op::VmTransition => {
                mmu.vm_transition(false);
                sh.held.retain(|h| h.vpid != 0);
            }
        }
    }
    if costing.is_some() {
        prop_assert_eq!(mmu.cycles(), mmu.costs().cycles(mmu.counters()));
    }
    Ok(())
}

/// `got` must be the fresh result, or come from what the processor may still
/// hold. Records what it may hold from now on.
fn check(
    sh: &mut Shadow,
    t: &TranslationContext,
    la: u64,
    a: Access,
    fresh: &Result<mmu::Translation, TranslateFault>,
    got: &Result<mmu::PhysAddr, TranslateFault>,
) -> Result<(), String> {
    let tag = *t.tag();
    let page = la >> 12;
    let held_here = |h: &Held| {
        h.vpid == tag.vpid
            && h.root == tag.root
            && h.page == page
            && (h.pcid == tag.pcid || h.global)
    };
    match (fresh, got) {
        (Ok(f), Ok(pa)) if f.pa == *pa => {
            sh.held.push(Held {
                vpid: tag.vpid,
                pcid: tag.pcid,
                root: tag.root,
                page,
                global: f.global,
                gpa: f.gpa.map_or(f.pa.0, |g| g.0),
                pa: f.pa.0,
                user: f.user,
                writable: f.writable,
                nx: f.nx,
            });
            Ok(())
        }
        (Err(a1), Err(a2)) if a1 == a2 => Ok(()),
        (_, Ok(pa)) => {
            // A held combined/linear translation.
            if sh
                .held
                .iter()
                .any(|h| held_here(h) && h.pa == pa.0 && permits(h, a))
            {
                return Ok(());
            }
            // A current or held guest translation composed with a held
            // guest-physical mapping.
            let mut guests: Vec<Held> = sh.held.iter().filter(|h| held_here(h)).copied().collect();
            if let Ok(f) = fresh {
                guests.push(Held {
                    vpid: tag.vpid,
                    pcid: tag.pcid,
                    root: tag.root,
                    page,
                    global: f.global,
                    gpa: f.gpa.map_or(0, |g| g.0),
                    pa: f.pa.0,
                    user: f.user,
                    writable: f.writable,
                    nx: f.nx,
                });
            }
            for g in guests.iter().filter(|g| permits(g, a)) {
                for n in sh
                    .gpa
                    .iter()
                    .filter(|n| n.root == tag.root && n.gpa_page == g.gpa >> 12)
                {
                    if (n.hpa_page << 12) | (la & 0xfff) == pa.0 {
                        let mut h = *g;
                        h.pa = pa.0;
                        sh.held.push(h);
                        return Ok(());
                    }
                }
            }
            Err(format!(
                "la {la:#x} {a:?} in {tag:?}: got {pa:?}, fresh {fresh:x?}, nothing held explains it"
            ))
        }
        _ => Err(format!(
            "la {la:#x} {a:?} in {tag:?}: got {got:x?}, fresh {fresh:x?}"
        )),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn invalidations_never_expose_what_the_manual_flushes_intel(ops in prop::collection::vec(op(), 1..120)) {
        run(TlbConfig::intel(), ops)?;
    }

    #[test]
    fn invalidations_never_expose_what_the_manual_flushes_amd(ops in prop::collection::vec(op(), 1..120)) {
        run(TlbConfig::amd(), ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// What the MMU remembers of its last first-level fill, for the page
    /// cache's probe, is what a search of the first level finds.
    #[test]
    fn first_level_probes_after_fills_equal_searches(
        amd in any::<bool>(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let config = if amd { TlbConfig::amd() } else { TlbConfig::intel() };
        run_probing(config, ops, true)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The MMU keeps the cost of its counters as they grow: after any
    /// translations, invalidations, takes of the counters and changes of
    /// weights, it is what the weights make of the counters.
    #[test]
    fn the_running_cost_is_the_cost_of_the_counters(
        amd in any::<bool>(),
        a in prop::array::uniform10(0u64..=u32::MAX as u64),
        b in prop::array::uniform10(0u64..40),
        every in 1usize..30,
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let config = if amd { TlbConfig::amd() } else { TlbConfig::intel() };
        let costing = Costing { weights: [costs(a), costs(b)], every };
        run_costed(config, ops, false, Some(costing))?;
    }
}

/// Guest-physical translations (a nested-TLB hit alone, or a nested walk)
/// and first-level hits counted through the probe keep the running cost too.
#[test]
fn guest_physical_translations_and_probed_hits_are_costed() {
    let mut w = world();
    let mut mmu = Mmu::new(TlbConfig::intel()).unwrap();
    let weights = costs([3, 5, 7, 11, 13, 17, 19, 23, 29, 31]);
    mmu.set_costs(weights);
    let t = ctx(&w, 9);
    for gpa in [DATA, DATA + 0x10, DATA + 0x1000, DATA] {
        mmu.translate_gpa(
            &t,
            mmu::GuestPhysAddr(gpa),
            AccessKind::Read,
            &mut w.mem,
            &mut NoRecord,
        )
        .unwrap();
        assert_eq!(mmu.cycles(), weights.cycles(mmu.counters()));
    }
    // The repeats of a page hit the nested TLB and are no walks; the
    // first translation of each page is one.
    assert_eq!(mmu.counters().nested_tlb_hits, 2);
    assert_eq!(mmu.counters().walks, 2);
    assert_eq!(
        mmu.counters().refs_per_walk.get(0),
        0,
        "no walk without reads"
    );
    read(&mut mmu, &mut w, &t, la(0));
    mmu.count_l1_hit(false);
    mmu.count_l1_hit(true);
    assert_eq!(mmu.counters().dtlb.l1_hits, 1);
    // The guest-physical translations are not `translate` calls; the read
    // and the two hits counted through the probe are.
    assert_eq!(mmu.counters().translations(), 3);
    assert_eq!(mmu.cycles(), weights.cycles(mmu.counters()));
    // Weights set after the fact cost everything counted so far.
    let other = costs([1, 0, 2, 0, 3, 0, 4, 0, 5, 6]);
    mmu.set_costs(other);
    assert_eq!(mmu.cycles(), other.cycles(mmu.counters()));
    assert_ne!(mmu.cycles(), weights.cycles(mmu.counters()));
}

fn read(mmu: &mut Mmu, w: &mut World, t: &TranslationContext, la: u64) -> u64 {
    mmu.translate(
        t,
        LinearAddr(la),
        Access::read(false),
        &mut w.mem,
        &mut NoRecord,
    )
    .unwrap()
    .0
}

#[test]
fn tags_isolate_pcids_vpids_and_ept_roots() {
    let mut w = world();
    let mut mmu = Mmu::new(TlbConfig::intel()).unwrap();
    // PCID 0 uses root A, PCID 1 root B: same linear page, different frames,
    // both cached and kept apart.
    let (a, b) = (ctx(&w, 0), ctx(&w, 3));
    let pa_a = read(&mut mmu, &mut w, &a, la(1));
    let pa_b = read(&mut mmu, &mut w, &b, la(1));
    assert_ne!(pa_a, pa_b);
    assert_eq!(read(&mut mmu, &mut w, &a, la(1)), pa_a);
    assert_eq!(read(&mut mmu, &mut w, &b, la(1)), pa_b);
    assert_eq!(mmu.counters().dtlb.l1_hits, 2);
    // VPIDs 1 and 2 share tables: change the PTE after VPID 1 cached it;
    // VPID 2 walks and sees the change, VPID 1 keeps its (legal) stale entry
    // until INVVPID.
    let (v1, v2) = (ctx(&w, 1), ctx(&w, 2));
    let old = read(&mut mmu, &mut w, &v1, la(2));
    w.mem
        .write_u64(w.pte[0][2], (DATA + 0xf000) | P | RW | US | AD);
    assert_eq!(read(&mut mmu, &mut w, &v2, la(2)), DATA + 0xf000);
    assert_eq!(read(&mut mmu, &mut w, &v1, la(2)), old);
    mmu.invvpid(InvvpidType::SingleContext, 1, LinearAddr(0));
    assert_eq!(read(&mut mmu, &mut w, &v1, la(2)), DATA + 0xf000);
    // EPT roots X and Y: combined mappings tagged by EP4TA.
    let (x, y) = (ctx(&w, 9), ctx(&w, 18));
    let pa_x = read(&mut mmu, &mut w, &x, la(3));
    let pa_y = read(&mut mmu, &mut w, &y, la(3));
    assert_eq!(pa_y - pa_x, 0x4000_0000);
    assert_eq!(read(&mut mmu, &mut w, &x, la(3)), pa_x);
}

#[test]
fn global_entries_match_any_pcid_but_not_other_vpids() {
    let mut w = world();
    let mut mmu = Mmu::new(TlbConfig::intel()).unwrap();
    let e = w.mem.read_u64(w.pte[0][0]);
    w.mem.write_u64(w.pte[0][0], e | G);
    // PCIDs 0 and 2 both use root A.
    let (p0, p2, v1p2) = (ctx(&w, 0), ctx(&w, 6), ctx(&w, 7));
    let old = read(&mut mmu, &mut w, &p0, la(0));
    w.mem
        .write_u64(w.pte[0][0], (DATA + 0xe000) | P | RW | US | AD | G);
    // The global entry from PCID 0 serves PCID 2 (SDM Vol. 3A 4.10.2.4).
    assert_eq!(read(&mut mmu, &mut w, &p2, la(0)), old);
    // MOV to CR3 keeps global entries.
    mmu.flush_cr3(&p2, false);
    assert_eq!(read(&mut mmu, &mut w, &p2, la(0)), old);
    // Another VPID never sees it.
    assert_eq!(read(&mut mmu, &mut w, &v1p2, la(0)), DATA + 0xe000);
    // INVLPG removes global entries whatever their PCID.
    mmu.invlpg(&p2, LinearAddr(la(0)));
    assert_eq!(read(&mut mmu, &mut w, &p0, la(0)), DATA + 0xe000);
}

#[test]
fn mov_cr3_with_no_flush_keeps_the_pcid() {
    let mut w = world();
    let mut mmu = Mmu::new(TlbConfig::intel()).unwrap();
    let t = ctx(&w, 0);
    let old = read(&mut mmu, &mut w, &t, la(5));
    w.mem
        .write_u64(w.pte[0][5], (DATA + 0xd000) | P | RW | US | AD);
    mmu.flush_cr3(&t, true);
    assert_eq!(read(&mut mmu, &mut w, &t, la(5)), old);
    mmu.flush_cr3(&t, false);
    assert_eq!(read(&mut mmu, &mut w, &t, la(5)), DATA + 0xd000);
}

#[test]
fn a_write_walks_again_to_set_the_dirty_flag() {
    let mut w = world();
    let mut mmu = Mmu::new(TlbConfig::intel()).unwrap();
    let t = ctx(&w, 0);
    let e = w.mem.read_u64(w.pte[0][1]);
    w.mem.write_u64(w.pte[0][1], e & !0x40);
    read(&mut mmu, &mut w, &t, la(1));
    let write = |mmu: &mut Mmu, w: &mut World| {
        mmu.translate(
            &t,
            LinearAddr(la(1)),
            Access::write(false),
            &mut w.mem,
            &mut NoRecord,
        )
        .unwrap()
    };
    write(&mut mmu, &mut w);
    assert_eq!(w.mem.read_u64(w.pte[0][1]) & 0x40, 0x40);
    write(&mut mmu, &mut w);
    let c = mmu.counters();
    assert_eq!((c.walks, c.dtlb.l1_hits), (2, 1));
}

#[test]
fn cached_rights_are_checked_against_current_registers() {
    let mut w = world();
    let mut mmu = Mmu::new(TlbConfig::intel()).unwrap();
    let e = w.mem.read_u64(w.pte[0][2]);
    w.mem.write_u64(w.pte[0][2], e & !RW);
    let mut regs = *ctx(&w, 0).regs();
    regs.cr0.remove(Cr0::WP);
    let no_wp = TranslationContext::new(regs, W, PagingFeatures::default());
    let sup_write = Access::write(false);
    assert!(mmu
        .translate(
            &no_wp,
            LinearAddr(la(2)),
            sup_write,
            &mut w.mem,
            &mut NoRecord
        )
        .is_ok());
    // Same cached entry, CR0.WP = 1 now: the write is refused (with a walk
    // that confirms it).
    let wp = ctx(&w, 0);
    let r = mmu.translate(&wp, LinearAddr(la(2)), sup_write, &mut w.mem, &mut NoRecord);
    assert!(matches!(r, Err(TranslateFault::PageFault { .. })));
}

#[test]
fn invlpg_flushes_every_fragment_of_a_large_guest_page() {
    // A guest 2-MiB page mapped by 4-KiB EPT pages: the combined TLB entries
    // are 4-KiB fragments; INVLPG of any address in the 2-MiB page flushes
    // them all (SDM Vol. 3A 4.10.2.3 and 4.10.4.1).
    let mut b = Builder::new(0x1000);
    let groot = b.alloc();
    let big = 0x4000_0000u64;
    b.map(groot, 4, big, 0x20_0000, 2, TABLE, P | RW | US | AD);
    let end = b.next;
    b.next = 0x80_0000;
    let nroot = b.alloc();
    let mut g = 0x1000;
    while g < end {
        b.map(nroot, 4, g, g, 1, EPT_TABLE, EPT_LEAF);
        g += 0x1000;
    }
    for i in 0..512u64 {
        let gpa = 0x20_0000 + i * 0x1000;
        b.map(nroot, 4, gpa, gpa + 0x1_0000_0000, 1, EPT_TABLE, EPT_LEAF);
    }
    let mut mem = b.mem;
    let regs = PagingRegs::new(Cr0::PG | Cr0::PE, groot, Cr4::PAE, Efer::LME | Efer::LMA);
    let t = TranslationContext::new(regs, W, PagingFeatures::default()).with_nested(
        NestedPaging::Ept(EptContext {
            eptp: Eptp::new(nroot, 4, false),
            caps: EptCaps::default(),
            mbec: false,
        }),
    );
    let mut mmu = Mmu::new(TlbConfig::intel()).unwrap();
    for off in [0u64, 0x1000] {
        let pa = mmu
            .translate(
                &t,
                LinearAddr(big + off),
                Access::read(false),
                &mut mem,
                &mut NoRecord,
            )
            .unwrap();
        assert_eq!(pa.0, 0x1_0020_0000 + off);
    }
    assert!(mmu
        .tlb_entries(AccessKind::Read)
        .all(|e| e.shift() == 12 && e.guest_shift == 21));
    let before = mmu.tlb_entries(AccessKind::Read).count();
    assert_eq!(before, 4); // two fragments in the DTLB and the STLB
    mmu.invlpg(&t, LinearAddr(big + 0x1f_f000));
    assert_eq!(mmu.tlb_entries(AccessKind::Read).count(), 0);
}

#[test]
fn svm_asids_invlpga_and_tlb_control() {
    use mmu::paging::NptContext;
    use mmu::TlbControl;
    let mut w = world();
    let mut mmu = Mmu::new(TlbConfig::amd()).unwrap();
    // Guest tables are identity-mapped in an NPT built from the EPT
    // hierarchy's shape: reuse the guest tables as the nested tables of a
    // 1-D-looking world by running with no guest paging.
    let regs = PagingRegs::new(Cr0::PE, 0, Cr4::empty(), Efer::empty());
    let npt = NestedPaging::Npt(NptContext {
        ncr3: w.roots[0],
        levels: 4,
        nxe: true,
        page_1g: true,
    });
    let g1 = TranslationContext::new(regs, W, PagingFeatures::default())
        .with_vpid(1)
        .with_nested(npt);
    let g2 = g1.with_vpid(2);
    let old = read(&mut mmu, &mut w, &g1, la(4));
    assert_eq!(read(&mut mmu, &mut w, &g2, la(4)), old);
    // Change the nested mapping (these tables serve as the NPT here).
    w.mem
        .write_u64(w.pte[0][4], (DATA + 0xc000) | P | RW | US | AD);
    // INVLPGA drops ASID 1's translation of the page, but the guest-physical
    // mapping it came from is still cached: changing nested tables needs a
    // TLB_CONTROL flush, not INVLPGA.
    mmu.invlpga(LinearAddr(la(4)), 1);
    assert_eq!(read(&mut mmu, &mut w, &g1, la(4)), old);
    // TLB_CONTROL = 03h for ASID 1: only ASID 1 sees the change.
    mmu.tlb_control(TlbControl::FlushAsid, 1);
    assert_eq!(read(&mut mmu, &mut w, &g1, la(4)), DATA + 0xc000);
    assert_eq!(read(&mut mmu, &mut w, &g2, la(4)), old);
    mmu.tlb_control(TlbControl::FlushAsid, 2);
    assert_eq!(read(&mut mmu, &mut w, &g2, la(4)), DATA + 0xc000);
    assert_eq!(
        TlbControl::from_bits(7),
        Some(TlbControl::FlushAsidNonGlobal)
    );
    assert_eq!(TlbControl::from_bits(2), None);
    mmu.tlb_control(TlbControl::FlushAll, 0);
    assert_eq!(mmu.cache_occupancy(), (0, 0, 0));
    assert_eq!(mmu.tlb_entries(AccessKind::Read).count(), 0);
}

#[test]
fn mov_cr4_and_cr0_rules() {
    let mut w = world();
    let mut mmu = Mmu::new(TlbConfig::intel()).unwrap();
    let e = w.mem.read_u64(w.pte[0][6]);
    w.mem.write_u64(w.pte[0][6], e | G);
    let t = ctx(&w, 0);
    let old = read(&mut mmu, &mut w, &t, la(6));
    w.mem
        .write_u64(w.pte[0][6], (DATA + 0xb000) | P | RW | US | AD | G);
    let cr4 = t.regs().cr4;
    // SMAP, PKE and PSE changes are not in the SDM's list: nothing flushed
    // (rights are checked against the registers at every hit anyway).
    mmu.mov_cr4(&t, cr4, cr4 | Cr4::SMAP | Cr4::PKE | Cr4::PSE);
    assert_eq!(read(&mut mmu, &mut w, &t, la(6)), old);
    // SMEP going 0 -> 1 flushes the current PCID (its global entries with
    // it), not the other PCIDs.
    let p1 = ctx(&w, 3);
    let in_p1 = read(&mut mmu, &mut w, &p1, la(2));
    w.mem
        .write_u64(w.pte[1][2], (DATA + 0xc000) | P | RW | US | AD);
    mmu.mov_cr4(&t, cr4, cr4 | Cr4::SMEP);
    assert_eq!(read(&mut mmu, &mut w, &t, la(6)), DATA + 0xb000);
    assert_eq!(read(&mut mmu, &mut w, &p1, la(2)), in_p1);
    // Toggling PGE flushes everything, global entries included.
    mmu.mov_cr4(&t, cr4, cr4 - Cr4::PGE);
    assert_eq!(read(&mut mmu, &mut w, &t, la(6)), DATA + 0xb000);
    w.mem
        .write_u64(w.pte[0][6], (DATA + 0xa000) | P | RW | US | AD | G);
    // CR0.WP changes flush nothing; clearing CR0.PG flushes everything.
    mmu.mov_cr0(&t, t.regs().cr0, t.regs().cr0 - Cr0::WP);
    assert_eq!(read(&mut mmu, &mut w, &t, la(6)), DATA + 0xb000);
    mmu.mov_cr0(&t, t.regs().cr0, t.regs().cr0 - Cr0::PG);
    assert_eq!(read(&mut mmu, &mut w, &t, la(6)), DATA + 0xa000);
}

#[test]
fn paging_structure_caches_stay_stale_until_invalidated() {
    let mut w = world();
    let mut mmu = Mmu::new(TlbConfig::intel()).unwrap();
    let t = ctx(&w, 0);
    let old = read(&mut mmu, &mut w, &t, la(0));
    // Point the PDE of la(0..4) at a new page table mapping la(1) elsewhere.
    let b_pt = 0x60_0000;
    let pde = {
        let mut b = Builder::new(0x1000);
        b.mem = w.mem.clone();
        b.entry_addr(w.roots[0], 4, la(0), 2)
    };
    w.mem.write_u64(
        b_pt + ((la(1) >> 12) & 0x1ff) * 8,
        (DATA + 0x9000) | P | RW | US | AD,
    );
    w.mem.write_u64(pde, b_pt | TABLE);
    // la(1) was never translated, yet the stale PDE-cache entry (from la(0))
    // still leads to the old page table: architecturally allowed.
    let stale = read(&mut mmu, &mut w, &t, la(1));
    assert_eq!(stale, old + 0x1000);
    // INVLPG of any address flushes all paging-structure caches of the PCID.
    mmu.invlpg(&t, LinearAddr(la(7)));
    mmu.invlpg(&t, LinearAddr(la(1)));
    assert_eq!(read(&mut mmu, &mut w, &t, la(1)), DATA + 0x9000);
}
