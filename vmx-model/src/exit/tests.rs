//! VM-exit tests: recording, saving the guest, loading the host, MSR areas and
//! VMX aborts, starting from a successful VM entry.

use super::*;
use crate::controls::{EntryControls as En, ExitControls as Ex};
use crate::entry::GuestEntry;
use crate::event::{Interruptibility, InterruptionType};
use crate::insn::LaunchOutcome;
use crate::mem::{Access, PhysMemExt};
use crate::testkit::{addr, Machine};
use crate::vmcs::ABORT_OFFSET;
use mmu::{msr, Cr0, Efer};

fn entered(m: &mut Machine) -> GuestEntry {
    match m.launch() {
        LaunchOutcome::Entered(g) => *g,
        other => panic!("entry failed: {other:?}"),
    }
}

fn snapshot(g: &GuestEntry) -> GuestSnapshot {
    GuestSnapshot {
        regs: g.regs.clone(),
        rip: g.rip + 2,
        rsp: g.rsp - 8,
        rflags: 0x246,
        activity: g.activity,
        interruptibility: Interruptibility::STI,
        pending_debug_exceptions: 0,
        preemption_timer: None,
        pdptes: None,
    }
}

fn exit(m: &mut Machine, info: &ExitInfo, g: &GuestSnapshot) -> Result<HostLoad, VmxAbort> {
    vm_exit(&mut m.state, &m.caps, info, g, &mut m.mem, &mut m.msrs)
}

#[test]
fn cpuid_exit_records_saves_and_loads_host() {
    let mut m = Machine::intel();
    m.set(Field::EntryInterruptionInfo, 0x8000_0300); // #DE, injected
    let g = entered(&mut m);
    let mut snap = snapshot(&g);
    snap.regs.cr3 = 0x9_9000;
    let info = ExitInfo::instruction(ExitReason::Cpuid, 0, 2);
    let h = exit(&mut m, &info, &snap).unwrap();
    assert!(!m.state.non_root);
    assert_eq!(m.get(Field::ExitReason), 10);
    assert_eq!(m.get(Field::ExitInstructionLength), 2);
    assert_eq!(m.get(Field::ExitInterruptionInfo), 0, "no event: invalid");
    assert_eq!(m.get(Field::IdtVectoringInfo), 0);
    assert_eq!(
        m.get(Field::EntryInterruptionInfo),
        0x300,
        "valid bit cleared"
    );
    assert_eq!(m.get(Field::GuestRip), g.rip + 2);
    assert_eq!(m.get(Field::GuestRflags), 0x246);
    assert_eq!(m.get(Field::GuestCr3), 0x9_9000);
    assert_eq!(m.get(Field::GuestInterruptibility), 1);
    assert_eq!(m.get(Field::GuestCsAccessRights), 0xa09b);
    // Host state (28.5).
    assert_eq!(
        (h.fields.rip, h.fields.rsp, h.fields.rflags),
        (0x10_0000, 0x8_0000, 2)
    );
    assert_eq!(h.regs.cr3, addr::HOST_CR3);
    assert_eq!(h.regs.dr7.bits(), 0x400);
    assert_eq!(h.regs.tr.limit, 0x67);
    assert_eq!(h.regs.tr.attr.0, 0x8b);
    assert_eq!(h.regs.gdtr.limit, 0xffff);
    assert!(h.regs.segs[1].attr.l() && !h.regs.segs[1].attr.db());
    assert!(h.regs.ldtr.attr.unusable());
    assert!(h.regs.efer.contains(Efer::LMA | Efer::LME));
    assert!(!h.fields.block_nmi);
    // The VMCS is still launched: VMRESUME enters again.
    assert!(matches!(m.resume(), LaunchOutcome::Entered(_)));
}

#[test]
fn exception_exit_with_idt_vectoring_and_nmi_blocking() {
    let mut m = Machine::intel();
    let g = entered(&mut m);
    let pf = ExitEvent {
        info: InterruptionInfo::new(InterruptionType::HardwareException, 14, true),
        error_code: Some(6),
    };
    let ext = ExitEvent {
        info: InterruptionInfo::new(InterruptionType::ExternalInterrupt, 0x41, false),
        error_code: None,
    };
    let info = ExitInfo {
        interruption: Some(pf),
        idt_vectoring: Some(ext),
        ..ExitInfo::new(ExitReason::ExceptionOrNmi, 0xdead_b000)
    };
    let h = exit(&mut m, &info, &snapshot(&g)).unwrap();
    assert_eq!(m.get(Field::ExitInterruptionInfo), 0x8000_0b0e);
    assert_eq!(m.get(Field::ExitInterruptionErrorCode), 6);
    assert_eq!(m.get(Field::IdtVectoringInfo), 0x8000_0041);
    assert_eq!(m.get(Field::ExitQualification), 0xdead_b000);
    assert!(!h.fields.block_nmi);
    // An exit caused by an NMI blocks NMIs.
    m.state.non_root = true;
    let nmi = ExitEvent {
        info: InterruptionInfo::new(InterruptionType::Nmi, 2, false),
        error_code: None,
    };
    let info = ExitInfo {
        interruption: Some(nmi),
        ..ExitInfo::new(ExitReason::ExceptionOrNmi, 0)
    };
    assert!(exit(&mut m, &info, &snapshot(&g)).unwrap().fields.block_nmi);
}

#[test]
fn ia32e_mode_guest_control_follows_efer_lma_and_saving_controls() {
    let mut m = Machine::intel();
    m.or(
        Field::ExitControls,
        (Ex::SAVE_EFER | Ex::SAVE_PAT | Ex::SAVE_DEBUG_CONTROLS).bits() as u64,
    );
    let g = entered(&mut m);
    let mut snap = snapshot(&g);
    snap.regs.efer = Efer::empty();
    snap.regs.cr0.remove(Cr0::PG);
    snap.regs.pat = 0x0606;
    snap.regs.debugctl = 1;
    exit(&mut m, &ExitInfo::new(ExitReason::Hlt, 0), &snap).unwrap();
    assert_eq!(
        m.get(Field::EntryControls) & En::IA32E_MODE_GUEST.bits() as u64,
        0
    );
    assert_eq!(m.get(Field::GuestEfer), 0);
    assert_eq!(m.get(Field::GuestPat), 0x0606);
    assert_eq!(m.get(Field::GuestDebugctl), 1);
}

#[test]
fn msr_store_and_load_areas() {
    let mut m = Machine::intel();
    m.set(Field::ExitMsrStoreAddress, addr::EXIT_MSR_STORE)
        .set(Field::ExitMsrStoreCount, 2);
    m.msr_entry(addr::EXIT_MSR_STORE, 0, msr::IA32_STAR, 0);
    m.msr_entry(addr::EXIT_MSR_STORE, 1, msr::IA32_TSC_AUX, 0);
    m.msrs.values.insert(msr::IA32_TSC_AUX, 0x77);
    m.set(Field::ExitMsrLoadAddress, addr::EXIT_MSR_LOAD)
        .set(Field::ExitMsrLoadCount, 2);
    m.msr_entry(
        addr::EXIT_MSR_LOAD,
        0,
        msr::IA32_LSTAR,
        0xffff_8000_1234_0000,
    );
    m.msr_entry(addr::EXIT_MSR_LOAD, 1, msr::IA32_TSC_AUX, 3);
    let g = entered(&mut m);
    let mut snap = snapshot(&g);
    snap.regs.star = 0x0023_0010_0000_0000;
    let h = exit(&mut m, &ExitInfo::new(ExitReason::Hlt, 0), &snap).unwrap();
    assert_eq!(
        m.mem.read_u64(addr::EXIT_MSR_STORE + 8, Access::MsrArea),
        snap.regs.star
    );
    assert_eq!(
        m.mem.read_u64(addr::EXIT_MSR_STORE + 24, Access::MsrArea),
        0x77
    );
    assert_eq!(h.regs.lstar, 0xffff_8000_1234_0000);
    assert_eq!(h.fields.msr_writes, vec![(msr::IA32_TSC_AUX, 3)]);
}

#[test]
fn vmx_aborts_write_the_indicator() {
    // 1: an MSR-store entry that cannot be read.
    let mut m = Machine::intel();
    m.set(Field::ExitMsrStoreAddress, addr::EXIT_MSR_STORE)
        .set(Field::ExitMsrStoreCount, 1);
    m.msr_entry(addr::EXIT_MSR_STORE, 0, 0x808, 0);
    let g = entered(&mut m);
    let r = exit(&mut m, &ExitInfo::new(ExitReason::Hlt, 0), &snapshot(&g));
    assert_eq!(r, Err(VmxAbort::SavingGuestMsrs));
    assert_eq!(m.mem.read_u32(addr::VMCS + ABORT_OFFSET, Access::Vmcs), 1);
    // 4: an MSR-load entry WRMSR would refuse.
    let mut m = Machine::intel();
    m.set(Field::ExitMsrLoadAddress, addr::EXIT_MSR_LOAD)
        .set(Field::ExitMsrLoadCount, 1);
    m.msr_entry(addr::EXIT_MSR_LOAD, 0, msr::IA32_FS_BASE, 0);
    let g = entered(&mut m);
    let r = exit(&mut m, &ExitInfo::new(ExitReason::Hlt, 0), &snapshot(&g));
    assert_eq!(r, Err(VmxAbort::LoadingHostMsrs));
    assert_eq!(m.mem.read_u32(addr::VMCS + ABORT_OFFSET, Access::Vmcs), 4);
    // 6: IA-32e mode guest exiting to a host with "host address-space size" 0.
    let mut m = Machine::intel();
    let g = entered(&mut m);
    m.clear_bits(
        Field::ExitControls,
        Ex::HOST_ADDRESS_SPACE_SIZE.bits() as u64,
    );
    let r = exit(&mut m, &ExitInfo::new(ExitReason::Hlt, 0), &snapshot(&g));
    assert_eq!(r, Err(VmxAbort::HostAddressSpaceSize));
}

#[test]
fn host_pae_pdptes_are_loaded_or_abort() {
    let mut m = Machine::intel();
    m.ctx.efer = Efer::empty();
    m.regs.efer = Efer::empty();
    m.clear_bits(
        Field::ExitControls,
        Ex::HOST_ADDRESS_SPACE_SIZE.bits() as u64,
    );
    m.make_pae_guest();
    let g = entered(&mut m);
    for i in 0..4u64 {
        m.mem
            .write_u64(addr::HOST_CR3 + 8 * i, 0x50_0000 | 1, Access::Pdpte);
    }
    let h = exit(&mut m, &ExitInfo::new(ExitReason::Hlt, 0), &snapshot(&g)).unwrap();
    assert_eq!(h.fields.pdptes, Some([0x50_0001; 4]));
    assert!(h.regs.segs[1].attr.db() && !h.regs.segs[1].attr.l());
    m.state.non_root = true;
    m.mem
        .write_u64(addr::HOST_CR3 + 16, 0x50_0000 | 1 << 7 | 1, Access::Pdpte);
    let r = exit(&mut m, &ExitInfo::new(ExitReason::Hlt, 0), &snapshot(&g));
    assert_eq!(r, Err(VmxAbort::HostPdptes));
}
