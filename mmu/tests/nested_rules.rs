//! Hand-built scenarios for the nested-paging rules whose exact exit
//! information matters to a hypervisor: each test states one rule of the SDM
//! or APM and checks the fault value bit for bit.

mod common;

use common::builder::{Builder, EPT_TABLE, LEAF, TABLE};
use mmu::paging::{
    load_pdptes, EptCaps, EptContext, EptViolationQual as Q, Eptp, NoRecord, NpfExitInfo1 as N,
    NptContext, PdpteError, SparseMemory,
};
use mmu::{
    Access, AccessKind, AddressWidths, Cr0, Cr4, Efer, GuestPhysAddr, LinearAddr, Mmu,
    NestedPaging, PagingFeatures, PagingRegs, TlbConfig, TranslateFault, TranslationContext,
};

const W: AddressWidths = AddressWidths {
    phys_bits: 46,
    linear_bits: 48,
};
const LA: u64 = 0x7000_1000;
const DATA: u64 = 0x20_0000;
/// EPT leaf: memory type WB, plus the rights given.
const WB: u64 = 6 << 3;

/// Guest 4-level tables (GPA = HPA for tables) mapping LA to DATA with
/// `guest_leaf` flags; a nested hierarchy (EPT if `npt` is false) mapping
/// guest tables with `table_rights` and DATA with `data_rights`.
struct Scene {
    mem: SparseMemory,
    ctx: TranslationContext,
    guest_pte: u64,
    nested_data_leaf: u64,
}

fn scene(
    npt: bool,
    guest_leaf: u64,
    table_rights: u64,
    data_rights: u64,
    tweak: impl FnOnce(&mut NestedPaging),
) -> Scene {
    let mut b = Builder::new(0x1000);
    let groot = b.alloc();
    let guest_pte = b.map(groot, 4, LA, DATA, 1, TABLE, guest_leaf);
    let end = b.next;
    b.next = 0x80_0000;
    let nroot = b.alloc();
    // EPT intermediate entries grant user-execute too (bit 10, ignored
    // without mode-based execute control).
    let nested_table = if npt { TABLE } else { EPT_TABLE | (1 << 10) };
    let mut g = 0x1000;
    while g < end {
        b.map(nroot, 4, g, g, 1, nested_table, table_rights);
        g += 0x1000;
    }
    let nested_data_leaf = b.map(
        nroot,
        4,
        DATA,
        DATA + 0x1_0000_0000,
        1,
        nested_table,
        data_rights,
    );
    let regs = PagingRegs::new(
        Cr0::PG | Cr0::PE | Cr0::WP,
        groot,
        Cr4::PAE,
        Efer::LME | Efer::LMA | Efer::NXE,
    );
    let mut nested = if npt {
        NestedPaging::Npt(NptContext {
            ncr3: nroot,
            levels: 4,
            nxe: true,
            page_1g: true,
        })
    } else {
        NestedPaging::Ept(EptContext {
            eptp: Eptp::new(nroot, 4, false),
            caps: EptCaps::default(),
            mbec: false,
        })
    };
    tweak(&mut nested);
    let ctx = TranslationContext::new(regs, W, PagingFeatures::default()).with_nested(nested);
    Scene {
        mem: b.mem,
        ctx,
        guest_pte,
        nested_data_leaf,
    }
}

fn go(s: &mut Scene, a: Access) -> Result<u64, TranslateFault> {
    let mut mmu = Mmu::new(TlbConfig::none()).unwrap();
    mmu.translate(&s.ctx, LinearAddr(LA), a, &mut s.mem, &mut NoRecord)
        .map(|p| p.0)
}

fn ept_qual(r: Result<u64, TranslateFault>) -> (Q, u64, Option<u64>) {
    match r {
        Err(TranslateFault::EptViolation(v)) => (v.qualification, v.gpa.0, v.gla.map(|g| g.0)),
        other => panic!("expected an EPT violation, got {other:x?}"),
    }
}

fn npf(r: Result<u64, TranslateFault>) -> (N, u64) {
    match r {
        Err(TranslateFault::NestedPageFault(f)) => (f.exit_info1, f.exit_info2),
        other => panic!("expected #NPF, got {other:x?}"),
    }
}

fn set_ad(n: &mut NestedPaging) {
    if let NestedPaging::Ept(e) = n {
        e.eptp.0 |= 1 << 6;
    }
}

/// SDM Vol. 3C 29.3.3.2: with EPT A/D enabled, guest paging-structure
/// accesses are writes for EPT; a violation on one reports read and write.
#[test]
fn ept_ad_makes_guest_table_reads_writes() {
    let mut s = scene(false, LEAF, WB | 0b101, WB | 7, set_ad);
    let (q, gpa, gla) = ept_qual(go(&mut s, Access::read(false)));
    assert_eq!(
        q,
        Q::READ | Q::WRITE | Q::READABLE | Q::EXECUTABLE | Q::GLA_VALID
    );
    assert_eq!(gpa, 0x1000 + ((LA >> 39) & 0x1ff) * 8); // the guest PML4E
    assert_eq!(gla, Some(LA));
    // Without A/D the same tables are readable and the access succeeds.
    let mut s = scene(false, LEAF, WB | 0b101, WB | 7, |_| {});
    assert_eq!(go(&mut s, Access::read(false)), Ok(DATA + 0x1_0000_0000));
}

/// SDM Vol. 3C 29.3.3.2: without EPT A/D, setting a guest accessed flag is a
/// data write to the guest table; a read-only EPT mapping of the table
/// faults, and no guest flag is written at all.
#[test]
fn guest_ad_update_needs_ept_write_permission() {
    let mut s = scene(false, LEAF & !0x20, WB | 0b101, WB | 7, |_| {});
    let before = s.mem.clone();
    let (q, gpa, gla) = ept_qual(go(&mut s, Access::read(false)));
    assert_eq!(q, Q::WRITE | Q::READABLE | Q::EXECUTABLE | Q::GLA_VALID);
    assert_eq!(gpa, s.guest_pte);
    assert_eq!(gla, Some(LA));
    assert_eq!(s.mem, before);
}

/// SDM Vol. 3C 28.2.1, table 28-7: a violation on the final address sets
/// GLA_TRANSLATED and, with advanced information, the guest translation's
/// user, writable and execute-disable attributes.
#[test]
fn final_violation_has_advanced_information() {
    // Guest page read-only and execute-disable; EPT maps it execute-only.
    let guest_leaf = (LEAF & !0x2) | (1 << 63);
    let mut s = scene(false, guest_leaf, WB | 7, WB | 0b100, |_| {});
    let (q, gpa, gla) = ept_qual(go(&mut s, Access::read(true)));
    assert_eq!(
        q,
        Q::READ | Q::EXECUTABLE | Q::GLA_VALID | Q::GLA_TRANSLATED | Q::USER_LINEAR | Q::NX_LINEAR
    );
    assert_eq!((gpa, gla), (DATA, Some(LA)));
    // Without the capability, bits 9-11 stay clear.
    let mut s = scene(false, guest_leaf, WB | 7, WB | 0b100, |n| {
        if let NestedPaging::Ept(e) = n {
            e.caps.advanced_exit_info = false;
        }
    });
    let (q, _, _) = ept_qual(go(&mut s, Access::read(true)));
    assert_eq!(
        q,
        Q::READ | Q::EXECUTABLE | Q::GLA_VALID | Q::GLA_TRANSLATED
    );
}

/// Mode-based execute control: EPT bit 2 governs fetches from
/// supervisor-mode linear addresses, bit 10 from user-mode ones, whatever the
/// CPL (the guest translation's U/S decides); qualification bit 6 reports
/// bit 10.
#[test]
fn mode_based_execute_control() {
    let mbec = |n: &mut NestedPaging| {
        if let NestedPaging::Ept(e) = n {
            e.mbec = true;
        }
    };
    let tables = WB | 7 | (1 << 10);
    // A user-mode address on a page EPT makes supervisor-execute only: no
    // fetch at all, even at CPL 0.
    let mut s = scene(false, LEAF, tables, WB | 7, mbec);
    for user in [false, true] {
        let (q, _, _) = ept_qual(go(&mut s, Access::execute(user)));
        assert_eq!(
            q,
            Q::FETCH
                | Q::READABLE
                | Q::WRITABLE
                | Q::EXECUTABLE
                | Q::GLA_VALID
                | Q::GLA_TRANSLATED
                | Q::USER_LINEAR
                | Q::WRITABLE_LINEAR
        );
    }
    // A supervisor-mode address (U/S = 0) on the same EPT page runs.
    let mut s = scene(false, LEAF & !0x4, tables, WB | 7, mbec);
    assert!(go(&mut s, Access::execute(false)).is_ok());
    // User-execute only: fetches from the user-mode address run at any CPL;
    // from a supervisor-mode address they fault.
    let mut s = scene(false, LEAF, tables, WB | 3 | (1 << 10), mbec);
    let r = go(&mut s, Access::execute(true));
    assert!(r.is_ok(), "{r:x?}");
    assert!(go(&mut s, Access::execute(false)).is_ok());
    let mut s = scene(false, LEAF & !0x4, tables, WB | 3 | (1 << 10), mbec);
    let (q, _, _) = ept_qual(go(&mut s, Access::execute(false)));
    assert!(q.contains(Q::FETCH | Q::USER_EXECUTABLE) && !q.contains(Q::EXECUTABLE));
    assert!(!q.contains(Q::USER_LINEAR));
}

/// SDM Vol. 3C 29.3.3.1: misconfigurations report only the guest-physical
/// address.
#[test]
fn misconfigurations() {
    for (data, why) in [
        (WB | 0b010, "write without read"),
        (WB | 0b110, "write/execute without read"),
        ((2 << 3) | 7, "memory type 2"),
        ((7 << 3) | 7, "memory type 7"),
        (WB | 7 | (1 << 46), "address bit above MAXPHYADDR"),
    ] {
        let mut s = scene(false, LEAF, WB | 7, data, |_| {});
        assert_eq!(
            go(&mut s, Access::read(false)),
            Err(TranslateFault::EptMisconfig {
                gpa: GuestPhysAddr(DATA)
            }),
            "{why}"
        );
    }
    // Execute-only is a misconfiguration only without the capability.
    let no_xo = |n: &mut NestedPaging| {
        if let NestedPaging::Ept(e) = n {
            e.caps.exec_only = false;
        }
    };
    let mut s = scene(false, LEAF, WB | 7, WB | 0b100, no_xo);
    assert!(matches!(
        go(&mut s, Access::execute(false)),
        Err(TranslateFault::EptMisconfig { .. })
    ));
    let mut s = scene(false, LEAF, WB | 7, WB | 0b100, |_| {});
    assert!(go(&mut s, Access::execute(false)).is_ok());
}

/// SDM Vol. 3C 29.3.4: EPT accessed flags on every entry used, dirty on the
/// leaf for writes.
#[test]
fn ept_accessed_and_dirty_flags() {
    let mut s = scene(false, LEAF, WB | 7, WB | 7, set_ad);
    go(&mut s, Access::read(false)).unwrap();
    let leaf = s.mem.read_u64(s.nested_data_leaf);
    assert_eq!(leaf & 0x300, 0x100);
    go(&mut s, Access::write(false)).unwrap();
    assert_eq!(s.mem.read_u64(s.nested_data_leaf) & 0x300, 0x300);
}

/// APM Vol. 2 15.25.5: the nested walk is a user access; guest page-table
/// walks are user writes. EXITINFO1 bit 33 marks a guest-table access, bit 32
/// the final one; EXITINFO2 the guest-physical address.
#[test]
fn npt_rules_and_exit_information() {
    // Guest tables mapped read-only by NPT: every table access is a write.
    let mut s = scene(true, LEAF, LEAF & !0x2, LEAF, |_| {});
    let (i, gpa) = npf(go(&mut s, Access::read(false)));
    assert_eq!(i, N::P | N::RW | N::US | N::TABLE);
    assert_eq!(gpa, 0x1000 + ((LA >> 39) & 0x1ff) * 8);
    // Data page supervisor-only in NPT: even a supervisor read faults.
    let mut s = scene(true, LEAF, LEAF, LEAF & !0x4, |_| {});
    let (i, gpa) = npf(go(&mut s, Access::read(false)));
    assert_eq!(i, N::P | N::US | N::FINAL);
    assert_eq!(gpa, DATA);
    // Not present; then a fetch from an NX page.
    let mut s = scene(true, LEAF, LEAF, 0, |_| {});
    assert_eq!(
        npf(go(&mut s, Access::write(true))).0,
        N::RW | N::US | N::FINAL
    );
    let mut s = scene(true, LEAF, LEAF, LEAF | (1 << 63), |_| {});
    assert_eq!(
        npf(go(&mut s, Access::execute(false))).0,
        N::P | N::US | N::ID | N::FINAL
    );
    // Reserved bit in a nested entry.
    let mut s = scene(true, LEAF, LEAF, LEAF | (1 << 50), |_| {});
    assert_eq!(
        npf(go(&mut s, Access::read(false))).0,
        N::P | N::RSV | N::US | N::FINAL
    );
    // Nested A/D are always on: the guest table pages were written (D).
    let mut s = scene(true, LEAF, LEAF & !0x60, LEAF & !0x60, |_| {});
    go(&mut s, Access::read(false)).unwrap();
    assert_eq!(s.mem.read_u64(s.nested_data_leaf) & 0x60, 0x20);
    let root = match s.ctx.nested() {
        Some(NestedPaging::Npt(n)) => n.ncr3,
        _ => unreachable!(),
    };
    let mut b = Builder::new(0);
    b.mem = s.mem.clone();
    let guest_root_leaf = b.entry_addr(root, 4, 0x1000, 1);
    assert_eq!(s.mem.read_u64(guest_root_leaf) & 0x60, 0x60);
}

/// SDM Vol. 3A 4.4.1 and SDM Vol. 3C 29.3.3.2: PDPTE loads through EPT are
/// reads (never writes, even with EPT A/D), with no guest-linear address.
#[test]
fn pdpte_loads_through_ept() {
    let mut s = scene(false, LEAF, WB | 7, WB | 7, set_ad);
    // The PDPT at guest-physical 0x3000 (a table page, mapped R/W/X).
    s.mem.write_u64(0x3000, 0x5001);
    let mut mmu = Mmu::new(TlbConfig::intel()).unwrap();
    let p = mmu
        .load_pdptes(&s.ctx, 0x3000, &mut s.mem, &mut NoRecord)
        .unwrap();
    assert_eq!(p[0], 0x5001);
    // EPT accessed but not dirty on the PDPT's page.
    let root = match s.ctx.nested() {
        Some(NestedPaging::Ept(e)) => e.eptp.root(W),
        _ => unreachable!(),
    };
    let b = {
        let mut b = Builder::new(0);
        b.mem = s.mem.clone();
        b
    };
    let leaf = b.entry_addr(root, 4, 0x3000, 1);
    assert_eq!(s.mem.read_u64(leaf) & 0x300, 0x100);
    // An unmapped PDPT: violation, read only, no guest-linear address.
    let mut mmu = Mmu::new(TlbConfig::none()).unwrap();
    let r = mmu.load_pdptes(&s.ctx, 0x7654_3000, &mut s.mem, &mut NoRecord);
    match r {
        Err(PdpteError::Nested(TranslateFault::EptViolation(v))) => {
            assert_eq!(v.qualification, Q::READ);
            assert_eq!(v.gla, None);
            assert_eq!(v.gpa.0, 0x7654_3000);
        }
        other => panic!("{other:?}"),
    }
    // Without nesting: reserved bits give #GP(0).
    let mut m = SparseMemory::new();
    m.write_u64(0x1000, 0x2001 | (1 << 2));
    assert!(matches!(
        load_pdptes(0x1000, W, &mut m),
        Err(PdpteError::Reserved { index: 0, .. })
    ));
}

/// Guest-physical accesses by the emulator: no guest-linear address.
#[test]
fn guest_physical_accesses() {
    let mut s = scene(false, LEAF, WB | 7, WB | 0b101, |_| {});
    let mut mmu = Mmu::new(TlbConfig::intel()).unwrap();
    let pa = mmu.translate_gpa(
        &s.ctx,
        GuestPhysAddr(DATA + 8),
        AccessKind::Read,
        &mut s.mem,
        &mut NoRecord,
    );
    assert_eq!(pa.unwrap().0, DATA + 0x1_0000_0008);
    let r = mmu.translate_gpa(
        &s.ctx,
        GuestPhysAddr(DATA + 8),
        AccessKind::Write,
        &mut s.mem,
        &mut NoRecord,
    );
    match r {
        Err(TranslateFault::EptViolation(v)) => {
            assert_eq!(v.qualification, Q::WRITE | Q::READABLE | Q::EXECUTABLE);
            assert_eq!(v.gla, None);
        }
        other => panic!("{other:?}"),
    }
}
