//! Counting the memory references of two-dimensional walks: 24 for a cold
//! 4-level-over-4-level walk, 35 for 5-over-5 (each of the n guest levels costs
//! a nested walk of m levels plus its own read, and the final guest-physical
//! address one more nested walk: n(m+1) + m), and fewer as the modelled
//! paging-structure caches and nested TLB warm up.

mod common;

use common::builder::{Builder, EPT_LEAF, EPT_TABLE, LEAF, TABLE};
use mmu::paging::{
    Dimension, EptCaps, EptContext, Eptp, NptContext, RefKind, SparseMemory, Trace, TraceItem,
    WalkEvent,
};
use mmu::{
    Access, AddressWidths, Cr0, Cr4, Efer, LinearAddr, Mmu, NestedPaging, PagingFeatures,
    PagingRegs, TlbConfig, TranslationContext,
};

const W: AddressWidths = AddressWidths {
    phys_bits: 46,
    linear_bits: 57,
};
/// Guest-physical frames of data pages start here; the nested tables map
/// them 1 GiB higher in machine-physical memory.
const DATA_GPA: u64 = 0x20_0000;
const DATA_OFFSET: u64 = 0x4000_0000;
/// Nested tables are allocated here, away from the guest's tables.
const NESTED_TABLES: u64 = 0x80_0000;

struct Setup {
    mem: SparseMemory,
    ctx: TranslationContext,
}

/// Guest tables of `glevels` levels mapping each of `las` to consecutive data
/// pages, nested tables of `nlevels` levels (EPT, or NPT if `npt`) mapping the
/// guest's table pages identically and its data pages 1 GiB up.
fn setup(glevels: u8, nlevels: u8, npt: bool, las: &[u64]) -> Setup {
    let mut b = Builder::new(0x1000);
    let groot = b.alloc();
    for (i, la) in las.iter().enumerate() {
        b.map(
            groot,
            glevels,
            *la,
            DATA_GPA + i as u64 * 0x1000,
            1,
            TABLE,
            LEAF,
        );
    }
    let guest_tables_end = b.next;
    b.next = NESTED_TABLES;
    let nroot = b.alloc();
    let (t, l) = if npt {
        (TABLE, LEAF)
    } else {
        (EPT_TABLE, EPT_LEAF)
    };
    let mut gpa = 0x1000;
    while gpa < guest_tables_end {
        b.map(nroot, nlevels, gpa, gpa, 1, t, l);
        gpa += 0x1000;
    }
    for i in 0..las.len() as u64 {
        let g = DATA_GPA + i * 0x1000;
        b.map(nroot, nlevels, g, g + DATA_OFFSET, 1, t, l);
    }
    let (cr4, efer) = if glevels == 5 {
        (Cr4::PAE | Cr4::LA57, Efer::LME | Efer::LMA)
    } else {
        (Cr4::PAE, Efer::LME | Efer::LMA)
    };
    let regs = PagingRegs::new(Cr0::PG | Cr0::PE | Cr0::WP, groot, cr4, efer);
    let nested = if npt {
        NestedPaging::Npt(NptContext {
            ncr3: nroot,
            levels: nlevels,
            nxe: true,
            page_1g: true,
        })
    } else {
        NestedPaging::Ept(EptContext {
            eptp: Eptp::new(nroot, nlevels, false),
            caps: EptCaps::default(),
            mbec: false,
        })
    };
    let ctx = TranslationContext::new(regs, W, PagingFeatures::default())
        .with_vpid(1)
        .with_nested(nested);
    Setup { mem: b.mem, ctx }
}

fn reads(t: &Trace, d: Dimension) -> usize {
    t.reads(d)
}

const LA: u64 = 0x0000_7f12_3456_7000;

#[test]
fn cold_4_over_4_is_24_references_in_grid_order() {
    for npt in [false, true] {
        let mut s = setup(4, 4, npt, &[LA]);
        let mut mmu = Mmu::new(TlbConfig::none()).unwrap();
        let mut t = Trace::default();
        let pa = mmu
            .translate(
                &s.ctx,
                LinearAddr(LA),
                Access::read(false),
                &mut s.mem,
                &mut t,
            )
            .unwrap();
        assert_eq!(pa.0, DATA_GPA + DATA_OFFSET);
        let refs: Vec<_> = t.refs().copied().collect();
        assert_eq!(refs.len(), 24, "npt={npt}: {refs:#x?}");
        assert!(refs.iter().all(|r| r.kind == RefKind::Read));
        // The grid: for guest level 4..1, a 4-level nested walk of that
        // table's address, then the guest entry; then the final address.
        let mut i = 0;
        for glevel in (1..=4u8).rev() {
            for nlevel in (1..=4u8).rev() {
                assert_eq!(refs[i].dimension, Dimension::Nested);
                assert_eq!(refs[i].level, nlevel);
                assert_eq!(refs[i].for_guest_level, Some(glevel));
                i += 1;
            }
            assert_eq!(refs[i].dimension, Dimension::Guest);
            assert_eq!(refs[i].level, glevel);
            assert!(refs[i].gpa.is_some());
            i += 1;
        }
        for nlevel in (1..=4u8).rev() {
            assert_eq!(refs[i].dimension, Dimension::Nested);
            assert_eq!(refs[i].level, nlevel);
            assert_eq!(refs[i].for_guest_level, None);
            i += 1;
        }
        let c = mmu.counters();
        assert_eq!((c.guest_refs, c.nested_refs), (4, 20));
        assert_eq!(c.refs_per_walk[24], 1);
        let text = t.render();
        assert_eq!(text.lines().count(), 24);
        let line = |i: usize| text.lines().nth(i).unwrap().trim_start().to_string();
        assert!(line(4).starts_with("5  read guest  PML4E gpa 0x17f0 at 0x17f0"));
        assert!(line(23).starts_with("24  read nested PTE   for final addr  at 0x804000"));
    }
}

#[test]
fn cold_5_over_5_is_35_references() {
    for npt in [false, true] {
        let mut s = setup(5, 5, npt, &[LA | (0x55 << 48)]);
        let mut mmu = Mmu::new(TlbConfig::none()).unwrap();
        let mut t = Trace::default();
        mmu.translate(
            &s.ctx,
            LinearAddr(LA | (0x55 << 48)),
            Access::write(true),
            &mut s.mem,
            &mut t,
        )
        .unwrap();
        assert_eq!(t.refs().count(), 35);
        assert_eq!(reads(&t, Dimension::Guest), 5);
        assert_eq!(reads(&t, Dimension::Nested), 30);
    }
}

#[test]
fn mixed_depths_follow_n_times_m_plus_one_plus_m() {
    for (g, n, want) in [(4u8, 5u8, 29usize), (5, 4, 29)] {
        let la = LA | (0x3 << 48);
        let mut s = setup(g, n, false, &[la]);
        let mut mmu = Mmu::new(TlbConfig::none()).unwrap();
        let mut t = Trace::default();
        mmu.translate(
            &s.ctx,
            LinearAddr(la),
            Access::read(false),
            &mut s.mem,
            &mut t,
        )
        .unwrap();
        assert_eq!(t.refs().count(), want, "{g} over {n}");
    }
}

#[test]
fn accessed_and_dirty_updates_are_recorded_apart_from_reads() {
    let mut s = setup(4, 4, false, &[LA]);
    // Clear the accessed flag of the guest PML4E: one A/D write follows.
    let pml4e = 0x1000 + ((LA >> 39) & 0x1ff) * 8;
    let v = s.mem.read_u64(pml4e);
    s.mem.write_u64(pml4e, v & !0x20);
    let mut mmu = Mmu::new(TlbConfig::none()).unwrap();
    let mut t = Trace::default();
    mmu.translate(
        &s.ctx,
        LinearAddr(LA),
        Access::read(false),
        &mut s.mem,
        &mut t,
    )
    .unwrap();
    let ad: Vec<_> = t.refs().filter(|r| r.kind == RefKind::AdUpdate).collect();
    assert_eq!(ad.len(), 1);
    assert_eq!((ad[0].level, ad[0].addr.0), (4, pml4e));
    assert_eq!(t.refs().filter(|r| r.kind == RefKind::Read).count(), 24);
    assert_eq!(s.mem.read_u64(pml4e), v | 0x20);
    assert_eq!(mmu.counters().ad_writes, 1);
}

/// Reference counts as the caches warm, with the Intel-like preset.
#[test]
fn warm_caches_reduce_the_24_as_modelled() {
    let la_a = LA;
    let la_b = LA + 0x1000; // same page table as la_a
    let la_c = LA + 0x20_0000; // same PDPTE region, another page table
    let mut s = setup(4, 4, false, &[la_a, la_b, la_c]);
    let mut mmu = Mmu::new(TlbConfig::intel()).unwrap();
    let mut go = |mmu: &mut Mmu, la: u64| {
        let mut t = Trace::default();
        mmu.translate(
            &s.ctx,
            LinearAddr(la),
            Access::read(false),
            &mut s.mem,
            &mut t,
        )
        .unwrap();
        t
    };
    // Cold caches, but the walk warms them as it goes: the guest tables sit
    // in one 2-MiB guest-physical region, so after the first table's full
    // nested walk (4 reads) the nested PDE cache gives each next table's
    // page table (1 read each, 3 tables); the final address is in another
    // 2-MiB region of the same 1 GiB (nested PDPTE cache: 2 reads). 4 guest
    // + 9 nested = 13, not the textbook 24 (which
    // `cold_4_over_4_is_24_references_in_grid_order` shows without caches).
    let t = go(&mut mmu, la_a);
    assert_eq!(
        (reads(&t, Dimension::Guest), reads(&t, Dimension::Nested)),
        (4, 9)
    );
    // Same page: a first-level TLB hit, no reference.
    let t = go(&mut mmu, la_a);
    assert_eq!(t.refs().count(), 0);
    assert_eq!(
        t.items,
        vec![TraceItem::Event(WalkEvent::TlbHit { level: 1 })]
    );
    // Next page, same page table: the combined PDE-cache entry gives the page
    // table's machine-physical address (no guest PML4E/PDPTE/PDE reads, no
    // nested walks for those tables); the guest PTE is read; the final
    // guest-physical page is new to the nested TLB, but the nested PDE cache
    // covers its 2-MiB region: one nested read. Total 2.
    let t = go(&mut mmu, la_b);
    assert_eq!(
        (reads(&t, Dimension::Guest), reads(&t, Dimension::Nested)),
        (1, 1)
    );
    assert!(t.items.contains(&TraceItem::Event(WalkEvent::PscHit {
        dimension: Dimension::Guest,
        level: 2
    })));
    // Another 2-MiB region under the same PDPTE: PDPTE-cache hit, guest PDE
    // and PTE read (2); the new page table's guest-physical page needs one
    // nested read (nested PDE cache); the final address one more. Total 4.
    let t = go(&mut mmu, la_c);
    assert_eq!(
        (reads(&t, Dimension::Guest), reads(&t, Dimension::Nested)),
        (2, 2)
    );
    // INVLPG drops the TLB entry and the guest paging-structure caches, but
    // not the guest-physical mappings: 4 guest reads, every nested
    // translation a nested-TLB hit. Total 4.
    mmu.invlpg(&s.ctx, LinearAddr(la_b));
    let t = go(&mut mmu, la_b);
    assert_eq!(
        (reads(&t, Dimension::Guest), reads(&t, Dimension::Nested)),
        (4, 0)
    );
    // INVEPT drops the combined and nested caches too: cold again.
    let eptp = match s.ctx.nested() {
        Some(NestedPaging::Ept(e)) => e.eptp,
        _ => unreachable!(),
    };
    mmu.invept(mmu::InveptType::SingleContext, eptp);
    assert_eq!(go(&mut mmu, la_b).refs().count(), 13);
    let c = mmu.counters();
    assert_eq!(c.dtlb.l1_hits, 1);
    assert_eq!(c.walks, 5);
    assert_eq!(c.refs_per_walk[13], 2);
    assert_eq!(c.guest_psc_hits[2], 1);
    assert_eq!(c.guest_psc_hits[3], 1);
}

/// Other guest modes over 4-level EPT: PAE (PDPTE registers, so no reads at
/// level 3: 2 x 5 + 4 = 14), 32-bit paging (2 x 5 + 4 = 14), paging off (4).
#[test]
fn other_guest_modes_over_ept() {
    let mut b = Builder::new(0x1000);
    let pdpt = b.alloc();
    let pd = b.alloc();
    let pt = b.alloc();
    let la = 0x4020_3000u64;
    b.mem.write_u64(pdpt + 8, pd | 1);
    b.mem.write_u64(pd + ((la >> 21) & 0x1ff) * 8, pt | TABLE);
    b.mem
        .write_u64(pt + ((la >> 12) & 0x1ff) * 8, DATA_GPA | LEAF);
    let root32 = b.alloc();
    b.map32(root32, la, DATA_GPA, 0x67);
    let end = b.next;
    b.next = NESTED_TABLES;
    let nroot = b.alloc();
    let mut g = 0;
    while g < end {
        b.map(nroot, 4, g, g, 1, EPT_TABLE, EPT_LEAF);
        g += 0x1000;
    }
    b.map(
        nroot,
        4,
        DATA_GPA,
        DATA_GPA + DATA_OFFSET,
        1,
        EPT_TABLE,
        EPT_LEAF,
    );
    let ept = NestedPaging::Ept(EptContext {
        eptp: Eptp::new(nroot, 4, false),
        caps: EptCaps::default(),
        mbec: false,
    });
    let mut mem = b.mem;
    let cases = [
        (Cr0::PG | Cr0::PE, Cr4::PAE, pdpt, 14usize),
        (Cr0::PG | Cr0::PE, Cr4::empty(), root32, 14),
        (Cr0::PE, Cr4::empty(), 0, 4),
    ];
    for (cr0, cr4, cr3, want) in cases {
        let mut regs = PagingRegs::new(cr0, cr3, cr4, Efer::empty());
        regs.pdptes = [0, pd | 1, 0, 0];
        let ctx = TranslationContext::new(regs, W, PagingFeatures::default()).with_nested(ept);
        let mut mmu = Mmu::new(TlbConfig::none()).unwrap();
        let mut t = Trace::default();
        let addr = if cr0.contains(Cr0::PG) { la } else { DATA_GPA };
        let pa = mmu
            .translate(
                &ctx,
                LinearAddr(addr),
                Access::read(false),
                &mut mem,
                &mut t,
            )
            .unwrap();
        assert_eq!(pa.0, DATA_GPA + DATA_OFFSET, "{regs:?}");
        assert_eq!(t.refs().count(), want, "{:?}", regs.mode);
    }
}
