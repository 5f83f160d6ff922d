use crate::entry::check;
use crate::insn::LaunchOutcome;
use crate::testkit::{addr, Machine};
use crate::vmcs::{Field, LaunchState};

#[test]
fn good_vmcs_passes_every_check_and_enters() {
    let mut m = Machine::intel();
    let v = m.vmcs().clone();
    let cur = m.state.current_ptr();
    assert_eq!(check(&m.caps, &v, true, cur, &mut m.mem), Ok(()));
    match m.launch() {
        LaunchOutcome::Entered(g) => {
            assert_eq!(g.rip, 0x20_0000);
            assert_eq!(g.rsp, 0x30_0000);
            assert_eq!(g.rflags, 2);
            assert!(g.regs.long_mode_active());
            assert_eq!(g.regs.tr.base, 0x23000);
            assert_eq!(g.event, None);
        }
        other => panic!("expected entry, got {other:?}"),
    }
    assert!(m.state.non_root);
    assert_eq!(
        m.state.current.as_ref().unwrap().launch,
        LaunchState::Launched
    );
    assert_eq!(addr::VMCS, m.state.current_ptr());
    let _ = Field::GuestRip;
}

use crate::caps::{VmxCaps, VmxFeatures};
use crate::controls::{EntryControls as En, PinControls as Pin, ProcControls as P1};
use crate::entry::{CheckId, GuestEntry, InjectedEvent};
use crate::event::{ActivityState, Interruptibility, InterruptionType};
use crate::exit::ExitReason;
use crate::mem::{Access, PhysMem, PhysMemExt};
use mmu::{msr, Efer};

fn entered(m: &mut Machine) -> GuestEntry {
    match m.launch() {
        LaunchOutcome::Entered(g) => *g,
        other => panic!("entry failed: {other:?}"),
    }
}

#[test]
fn injection_of_each_event_kind() {
    let rows: &[(u64, u32, u32, Option<InjectedEvent>, bool)] = &[
        // (interruption info, error code, length, event, pending MTF)
        (
            0x8000_0b0e,
            0x6,
            0,
            Some(ev(InterruptionType::HardwareException, 14, Some(6), 0)),
            false,
        ),
        (
            0x8000_0202,
            0,
            0,
            Some(ev(InterruptionType::Nmi, 2, None, 0)),
            false,
        ),
        (
            0x8000_0480,
            0,
            2,
            Some(ev(InterruptionType::SoftwareInterrupt, 0x80, None, 2)),
            false,
        ),
        (
            0x8000_0603,
            0,
            1,
            Some(ev(InterruptionType::SoftwareException, 3, None, 1)),
            false,
        ),
        (
            0x8000_0501,
            0,
            1,
            Some(ev(
                InterruptionType::PrivilegedSoftwareException,
                1,
                None,
                1,
            )),
            false,
        ),
        (0x8000_0700, 0, 0, None, true),
    ];
    for &(info, code, len, event, mtf) in rows {
        let mut m = Machine::intel();
        m.set(Field::EntryInterruptionInfo, info)
            .set(Field::EntryExceptionErrorCode, code as u64)
            .set(Field::EntryInstructionLength, len as u64);
        let g = entered(&mut m);
        assert_eq!((g.event, g.pending_mtf), (event, mtf), "{info:#x}");
    }
}

const fn ev(
    kind: InterruptionType,
    vector: u8,
    error_code: Option<u32>,
    len: u32,
) -> InjectedEvent {
    InjectedEvent {
        kind,
        vector,
        error_code,
        instruction_len: len,
    }
}

#[test]
fn vectoring_entry_clears_sti_blocking_and_wakes_hlt() {
    let mut m = Machine::intel();
    m.set(Field::GuestRflags, 0x202)
        .set(Field::GuestInterruptibility, 1 | 8)
        .set(Field::GuestPendingDebugExceptions, 0x4000)
        .set(Field::GuestRflags, 0x302);
    let g = entered(&mut m);
    assert_eq!(
        g.interruptibility,
        Interruptibility::STI | Interruptibility::NMI
    );
    assert_eq!(g.pending_debug_exceptions, 0x4000);
    let mut m = Machine::intel();
    m.set(Field::GuestRflags, 0x202)
        .set(Field::GuestActivityState, 1)
        .set(Field::EntryInterruptionInfo, 0x8000_0020);
    let g = entered(&mut m);
    assert_eq!(g.activity, ActivityState::Active);
    assert_eq!(g.interruptibility, Interruptibility::empty());
}

#[test]
fn msr_load_area_folds_system_registers() {
    let mut m = Machine::intel();
    m.set(Field::EntryMsrLoadAddress, addr::ENTRY_MSR_LOAD)
        .set(Field::EntryMsrLoadCount, 3);
    m.msr_entry(
        addr::ENTRY_MSR_LOAD,
        0,
        msr::IA32_PAT,
        0x0606_0606_0606_0606,
    );
    m.msr_entry(addr::ENTRY_MSR_LOAD, 1, msr::IA32_TSC_AUX, 5);
    m.msr_entry(
        addr::ENTRY_MSR_LOAD,
        2,
        msr::IA32_KERNEL_GS_BASE,
        0xffff_8800_0000_0000,
    );
    let g = entered(&mut m);
    assert_eq!(g.regs.pat, 0x0606_0606_0606_0606);
    assert_eq!(g.regs.kernel_gs_base, 0xffff_8800_0000_0000);
    assert_eq!(g.msr_writes, vec![(msr::IA32_TSC_AUX, 5)]);
}

#[test]
fn entry_failure_keeps_injection_and_guest_state_and_loads_host() {
    let mut m = Machine::intel();
    m.set(Field::EntryInterruptionInfo, 0x8000_0020) // external interrupt, RFLAGS.IF = 0
        .set(Field::GuestRip, 0x4242);
    let f = match m.launch() {
        LaunchOutcome::EntryFailed(f) => f,
        other => panic!("{other:?}"),
    };
    assert_eq!(f.check.id, CheckId::GuestRflagsIfForExternalInterrupt);
    assert_eq!(m.get(Field::EntryInterruptionInfo), 0x8000_0020);
    assert_eq!(m.get(Field::GuestRip), 0x4242);
    let h = f.host.unwrap();
    assert_eq!(h.fields.rip, 0x10_0000);
    assert_eq!(f.reason, ExitReason::EntryFailureGuestState);
    assert!(!m.state.non_root);
    assert_eq!(m.state.current.as_ref().unwrap().launch, LaunchState::Clear);
}

#[test]
fn pae_guest_with_and_without_ept_loads_pdptes() {
    let mut m = Machine::intel();
    m.make_pae_guest();
    let g = entered(&mut m);
    assert_eq!(g.pdptes, Some([0x30_0001, 0x30_1001, 0x30_2001, 0x30_3001]));
    assert!(!g.regs.long_mode_active());
    assert!(
        !g.regs.efer.contains(Efer::LME),
        "CR0.PG = 1: LME follows IA-32e mode guest"
    );
    let mut m = Machine::intel();
    m.make_pae_guest();
    m.enable_ept();
    m.set(Field::GuestPdpte0, 0x77_7001);
    let g = entered(&mut m);
    assert_eq!(g.pdptes, Some([0x77_7001, 0, 0, 0]));
    assert_eq!(g.eptp, Some(addr::EPT_PML4 | 0x1e));
}

#[test]
fn unrestricted_real_mode_guest_enters() {
    let mut m = Machine::intel();
    m.enable_unrestricted();
    m.clear_bits(Field::EntryControls, En::IA32E_MODE_GUEST.bits() as u64);
    m.set(Field::GuestCr0, 0x30)
        .set(Field::GuestCr4, 0x2000)
        .set(Field::GuestRip, 0x7c00);
    for (sel, base, limit, ar) in [
        (
            Field::GuestCsSelector,
            Field::GuestCsBase,
            Field::GuestCsLimit,
            Field::GuestCsAccessRights,
        ),
        (
            Field::GuestSsSelector,
            Field::GuestSsBase,
            Field::GuestSsLimit,
            Field::GuestSsAccessRights,
        ),
        (
            Field::GuestDsSelector,
            Field::GuestDsBase,
            Field::GuestDsLimit,
            Field::GuestDsAccessRights,
        ),
        (
            Field::GuestEsSelector,
            Field::GuestEsBase,
            Field::GuestEsLimit,
            Field::GuestEsAccessRights,
        ),
        (
            Field::GuestFsSelector,
            Field::GuestFsBase,
            Field::GuestFsLimit,
            Field::GuestFsAccessRights,
        ),
        (
            Field::GuestGsSelector,
            Field::GuestGsBase,
            Field::GuestGsLimit,
            Field::GuestGsAccessRights,
        ),
    ] {
        m.set(sel, 0).set(base, 0).set(limit, 0xffff).set(ar, 0x93);
    }
    m.set(Field::GuestCsAccessRights, 0x9b);
    m.set(Field::GuestTrAccessRights, 0x8b);
    m.regs.efer = Efer::LME | Efer::LMA | Efer::SCE;
    let g = entered(&mut m);
    assert!(!g.regs.cr0.contains(mmu::Cr0::PE));
    assert!(!g.regs.efer.contains(Efer::LMA));
    assert!(
        g.regs.efer.contains(Efer::LME),
        "CR0.PG = 0: LME left unmodified"
    );
    assert_eq!(g.pdptes, None);
}

#[test]
fn preemption_timer_vpid_and_tpr_threshold_exit() {
    let mut m = Machine::new(VmxCaps::new(VmxFeatures::everything()));
    m.or(
        Field::PinBasedControls,
        Pin::ACTIVATE_PREEMPTION_TIMER.bits() as u64,
    );
    m.set(Field::PreemptionTimerValue, 1000);
    m.enable2(crate::controls::Proc2Controls::ENABLE_VPID);
    m.set(Field::VirtualProcessorId, 7);
    m.or(
        Field::PrimaryProcBasedControls,
        P1::USE_TPR_SHADOW.bits() as u64,
    );
    m.enable2(crate::controls::Proc2Controls::VIRTUALIZE_APIC_ACCESSES);
    m.set(Field::ApicAccessAddress, addr::APIC_ACCESS);
    m.set(Field::VirtualApicAddress, addr::VIRTUAL_APIC)
        .set(Field::TprThreshold, 4);
    m.mem
        .write(addr::VIRTUAL_APIC + 0x80, &[0x30], Access::VirtualApic);
    let g = entered(&mut m);
    assert_eq!(g.preemption_timer, Some(1000));
    assert_eq!(g.vpid, 7);
    assert!(g.tpr_below_threshold);
    assert!(
        m.mem
            .read_u8(addr::VIRTUAL_APIC + 0x80, Access::VirtualApic)
            == 0x30
    );
}

#[test]
fn good_vmcs_enters_under_every_preset() {
    for f in [
        VmxFeatures::intel(),
        VmxFeatures::everything(),
        VmxFeatures::first_generation(),
    ] {
        let mut m = Machine::new(VmxCaps::new(f));
        assert!(matches!(m.launch(), LaunchOutcome::Entered(_)));
    }
}

#[test]
fn failed_check_names_rule_field_and_section() {
    let mut m = Machine::intel();
    m.set(Field::GuestCsAccessRights, 0xa091);
    let LaunchOutcome::EntryFailed(f) = m.launch() else {
        panic!("expected an entry failure");
    };
    assert_eq!(
        f.check.to_string(),
        "GuestCsAccessRightsType: CS type must be 9, 11, 13 or 15 (accessed code) when \
         \"unrestricted guest\" is 0; field Guest CS access rights (0x4816); SDM Vol. 3C \
         27.3.1.2 (Checks on Guest Segment Registers)"
    );
}
