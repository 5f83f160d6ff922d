//! Checks on the VMX controls (SDM Vol. 3C 27.2.1, "Checks on VMX Controls"):
//! failures are VMfailValid(7).

use super::view::{ensure, page_ok, phys_ok, Ctls};
use super::{CheckResult, EntryEnv};
use crate::controls::{ExitControls, PinControls, Proc2Controls as P2, ProcControls as P1};
use crate::ept::{Eptp, EptpError};
use crate::mem::{Access, PhysMemExt};
use crate::vmcs::Field;

/// 27.2.1.1, "VM-Execution Control Fields".
pub(crate) fn execution(env: &mut EntryEnv<'_>) -> CheckResult {
    let c = env.ctls;
    let caps = env.caps;
    ensure!(caps.pin.permits(c.pin.bits()), PinBasedReserved);
    ensure!(caps.proc.permits(c.proc.bits()), PrimaryProcBasedReserved);
    if c.proc.contains(P1::ACTIVATE_SECONDARY_CONTROLS) {
        ensure!(caps.proc2.permits(c.raw_proc2), SecondaryProcBasedReserved);
    }
    let count = env.vmcs.get32(Field::Cr3TargetCount);
    ensure!(
        count <= caps.features.misc.cr3_target_count as u32,
        Cr3TargetCount
    );
    if c.proc.contains(P1::USE_IO_BITMAPS) {
        for f in [Field::IoBitmapA, Field::IoBitmapB] {
            ensure!(page_ok(caps, env.vmcs.get(f)), IoBitmapAddress, f);
        }
    }
    if c.proc.contains(P1::USE_MSR_BITMAPS) {
        ensure!(
            page_ok(caps, env.vmcs.get(Field::MsrBitmap)),
            MsrBitmapAddress
        );
    }
    tpr_shadow(env)?;
    apic_and_nmi(env)?;
    ept_and_friends(env)
}

/// The TPR-shadow rules.
fn tpr_shadow(env: &mut EntryEnv<'_>) -> CheckResult {
    let c = env.ctls;
    let vapic = env.vmcs.get(Field::VirtualApicAddress);
    if c.proc.contains(P1::USE_TPR_SHADOW) {
        ensure!(page_ok(env.caps, vapic), VirtualApicAddress);
        let threshold = env.vmcs.get32(Field::TprThreshold);
        if !c.proc2.contains(P2::VIRTUAL_INTERRUPT_DELIVERY) {
            ensure!(threshold & !0xf == 0, TprThresholdReserved);
            if !c.proc2.contains(P2::VIRTUALIZE_APIC_ACCESSES) {
                let vtpr = env.mem.read_u8(vapic + 0x80, Access::VirtualApic);
                ensure!(threshold <= (vtpr >> 4) as u32, TprThresholdAboveVtpr);
            }
        }
    } else {
        let needs = P2::VIRTUALIZE_X2APIC_MODE
            | P2::APIC_REGISTER_VIRTUALIZATION
            | P2::VIRTUAL_INTERRUPT_DELIVERY;
        ensure!(
            !c.proc2.intersects(needs),
            ApicVirtualizationWithoutTprShadow
        );
    }
    Ok(())
}

/// NMI, APIC-access and posted-interrupt rules.
fn apic_and_nmi(env: &mut EntryEnv<'_>) -> CheckResult {
    let c = env.ctls;
    let v = env.vmcs;
    if !c.pin.contains(PinControls::NMI_EXITING) {
        ensure!(
            !c.pin.contains(PinControls::VIRTUAL_NMIS),
            VirtualNmisWithoutNmiExiting
        );
    }
    if !c.pin.contains(PinControls::VIRTUAL_NMIS) {
        ensure!(
            !c.proc.contains(P1::NMI_WINDOW_EXITING),
            NmiWindowWithoutVirtualNmis
        );
    }
    if c.proc2.contains(P2::VIRTUALIZE_APIC_ACCESSES) {
        ensure!(
            page_ok(env.caps, v.get(Field::ApicAccessAddress)),
            ApicAccessAddress
        );
    }
    if c.proc2.contains(P2::VIRTUALIZE_X2APIC_MODE) {
        ensure!(
            !c.proc2.contains(P2::VIRTUALIZE_APIC_ACCESSES),
            X2apicModeWithApicAccesses
        );
    }
    if c.proc2.contains(P2::VIRTUAL_INTERRUPT_DELIVERY) {
        let ext = c.pin.contains(PinControls::EXTERNAL_INTERRUPT_EXITING);
        ensure!(ext, VirtualInterruptDeliveryWithoutExtIntExiting);
    }
    if c.pin.contains(PinControls::PROCESS_POSTED_INTERRUPTS) {
        let vid = c.proc2.contains(P2::VIRTUAL_INTERRUPT_DELIVERY);
        ensure!(vid, PostedInterruptsWithoutVirtualInterruptDelivery);
        let ack = c.exit.contains(ExitControls::ACKNOWLEDGE_INTERRUPT_ON_EXIT);
        ensure!(ack, PostedInterruptsWithoutAcknowledgeOnExit);
        let nv = v.get(Field::PostedInterruptNotificationVector);
        ensure!(nv & 0xff00 == 0, PostedInterruptNotificationVector);
        let pid = v.get(Field::PostedInterruptDescriptorAddress);
        ensure!(
            pid & 0x3f == 0 && phys_ok(env.caps, pid),
            PostedInterruptDescriptorAddress
        );
    }
    Ok(())
}

/// VPID, EPTP, PML, unrestricted guest, VM functions, VMCS shadowing, #VE.
fn ept_and_friends(env: &mut EntryEnv<'_>) -> CheckResult {
    let c: Ctls = env.ctls;
    let v = env.vmcs;
    let caps = env.caps;
    if c.proc2.contains(P2::ENABLE_VPID) {
        ensure!(v.get(Field::VirtualProcessorId) != 0, VpidZero);
    }
    let ept = c.proc2.contains(P2::ENABLE_EPT);
    if ept {
        match Eptp(v.get(Field::EptPointer)).validate(caps) {
            Ok(()) => {}
            Err(EptpError::MemoryType) => ensure!(false, EptpMemoryType),
            Err(EptpError::WalkLength) => ensure!(false, EptpWalkLength),
            Err(EptpError::AccessedDirty) => ensure!(false, EptpAccessedDirty),
            Err(EptpError::Reserved) => ensure!(false, EptpReserved),
        }
    }
    if c.proc2.contains(P2::ENABLE_PML) {
        ensure!(ept, PmlWithoutEpt);
        ensure!(page_ok(caps, v.get(Field::PmlAddress)), PmlAddress);
    }
    if c.unrestricted() {
        ensure!(ept, UnrestrictedGuestWithoutEpt);
    }
    if c.proc2.contains(P2::ENABLE_VM_FUNCTIONS) {
        let funcs = v.get(Field::VmFunctionControls);
        ensure!(
            funcs & !caps.features.vmfunc.bits() == 0,
            VmFunctionControlsReserved
        );
        if funcs & 1 != 0 {
            ensure!(ept, EptpSwitchingWithoutEpt);
            ensure!(
                page_ok(caps, v.get(Field::EptpListAddress)),
                EptpListAddress
            );
        }
    }
    if c.proc2.contains(P2::VMCS_SHADOWING) {
        for f in [Field::VmreadBitmapAddress, Field::VmwriteBitmapAddress] {
            ensure!(page_ok(caps, v.get(f)), VmcsShadowingBitmapAddress, f);
        }
    }
    if c.proc2.contains(P2::EPT_VIOLATION_VE) {
        ensure!(
            page_ok(caps, v.get(Field::VeInformationAddress)),
            VeInformationAddress
        );
    }
    Ok(())
}

/// True if an MSR area of `count` 16-byte entries at `addr` is aligned and its
/// first and last bytes are within MAXPHYADDR (27.2.1.2, 27.2.1.3).
fn msr_area(env: &EntryEnv<'_>, addr: u64, count: u32) -> (bool, bool) {
    let start_ok = addr & 0xf == 0 && phys_ok(env.caps, addr);
    let last = addr as u128 + count as u128 * 16 - 1;
    let end_ok = last >> 64 == 0 && phys_ok(env.caps, last as u64);
    (start_ok, end_ok)
}

/// 27.2.1.2, "VM-Exit Control Fields".
pub(crate) fn exit(env: &mut EntryEnv<'_>) -> CheckResult {
    let c = env.ctls;
    let v = env.vmcs;
    ensure!(env.caps.exit.permits(c.exit.bits()), ExitControlsReserved);
    if !c.pin.contains(PinControls::ACTIVATE_PREEMPTION_TIMER) {
        let save = c.exit.contains(ExitControls::SAVE_PREEMPTION_TIMER);
        ensure!(!save, SavePreemptionTimerWithoutTimer);
    }
    let store = v.get32(Field::ExitMsrStoreCount);
    if store != 0 {
        let (start, end) = msr_area(env, v.get(Field::ExitMsrStoreAddress), store);
        ensure!(start, ExitMsrStoreAddress);
        ensure!(end, ExitMsrStoreAreaEnd);
    }
    let load = v.get32(Field::ExitMsrLoadCount);
    if load != 0 {
        let (start, end) = msr_area(env, v.get(Field::ExitMsrLoadAddress), load);
        ensure!(start, ExitMsrLoadAddress);
        ensure!(end, ExitMsrLoadAreaEnd);
    }
    Ok(())
}

/// 27.2.1.3, "VM-Entry Control Fields".
pub(crate) fn entry(env: &mut EntryEnv<'_>) -> CheckResult {
    let c = env.ctls;
    let v = env.vmcs;
    ensure!(
        env.caps.entry.permits(c.entry.bits()),
        EntryControlsReserved
    );
    super::inject::check_fields(env)?;
    let count = v.get32(Field::EntryMsrLoadCount);
    if count != 0 {
        let (start, end) = msr_area(env, v.get(Field::EntryMsrLoadAddress), count);
        ensure!(start, EntryMsrLoadAddress);
        ensure!(end, EntryMsrLoadAreaEnd);
    }
    Ok(())
}
