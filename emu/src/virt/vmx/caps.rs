//! Discovery and enabling (SDM Vol. 3C 24.6, "Discovering Support for VMX";
//! 24.7, "Enabling and Entering VMX Operation"; Vol. 3D appendix A): the VMX
//! features this binding implements end to end, the capability MSRs generated
//! from them, and IA32_FEATURE_CONTROL with its lock.
//!
//! Advertise only what works (DESIGN.md principle 5): the `intel` preset of
//! `vmx-model` is intersected with the controls whose non-root behaviour the
//! binding implements. A CPU model may carry its own [`VmxFeatures`]
//! (`CpuModel::vmx`); it is then used as given, which is how tests reach the
//! VM-entry checks of features whose non-root behaviour nestemu lacks.

use super::has_vmx;
use crate::cpu::cpuid::{CpuModel, Feature};
use crate::event::{Event, Flow};
use crate::machine::Machine;
use mmu::msr;
use vmx_model::caps::FeatureControl;
use vmx_model::controls::{
    EntryControls as En, EptVpidCap as Ept, ExitControls as Ex, PinControls as Pin,
    Proc2Controls as P2, ProcControls as P1,
};
use vmx_model::VmxFeatures;

/// Pin-based controls the binding implements. External interrupts and NMIs
/// have no source in the machine yet; their controls are accepted and
/// honoured whenever one arrives.
pub const PIN: Pin = Pin::EXTERNAL_INTERRUPT_EXITING
    .union(Pin::NMI_EXITING)
    .union(Pin::VIRTUAL_NMIS)
    .union(Pin::ACTIVATE_PREEMPTION_TIMER);

/// Primary processor-based controls the binding implements: all but the
/// tertiary controls.
pub const PROC: P1 = P1::all().difference(P1::ACTIVATE_TERTIARY_CONTROLS);

/// Secondary processor-based controls the binding implements. Not here: APIC
/// virtualization (no local APIC yet), VM functions, VMCS shadowing, PML, #VE.
pub const PROC2: P2 = P2::ENABLE_EPT
    .union(P2::ENABLE_INVPCID)
    .union(P2::DESCRIPTOR_TABLE_EXITING)
    .union(P2::ENABLE_RDTSCP)
    .union(P2::ENABLE_VPID)
    .union(P2::WBINVD_EXITING)
    .union(P2::UNRESTRICTED_GUEST)
    .union(P2::PAUSE_LOOP_EXITING)
    .union(P2::RDRAND_EXITING)
    .union(P2::RDSEED_EXITING)
    .union(P2::USE_TSC_SCALING)
    .union(P2::ENABLE_XSAVES);

/// VM-exit controls the binding implements.
pub const EXIT: Ex = Ex::SAVE_DEBUG_CONTROLS
    .union(Ex::HOST_ADDRESS_SPACE_SIZE)
    .union(Ex::ACKNOWLEDGE_INTERRUPT_ON_EXIT)
    .union(Ex::SAVE_PAT)
    .union(Ex::LOAD_PAT)
    .union(Ex::SAVE_EFER)
    .union(Ex::LOAD_EFER)
    .union(Ex::SAVE_PREEMPTION_TIMER);

/// VM-entry controls the binding implements.
pub const ENTRY: En = En::LOAD_DEBUG_CONTROLS
    .union(En::IA32E_MODE_GUEST)
    .union(En::LOAD_PAT)
    .union(En::LOAD_EFER);

/// EPT and VPID capabilities the `mmu` crate implements and the binding
/// exercises: 4- and 5-level EPT (the 5-level walk is tested end to end by a
/// guest under a 5-level EPT, `emu/tests/measure_stack.rs`), UC and WB
/// structures, 2-MByte and 1-GByte pages, execute-only translations, the
/// advanced EPT-violation information, every INVEPT and INVVPID type.
pub const EPT_VPID: Ept = Ept::EXECUTE_ONLY
    .union(Ept::PAGE_WALK_4)
    .union(Ept::PAGE_WALK_5)
    .union(Ept::MEMORY_TYPE_UC)
    .union(Ept::MEMORY_TYPE_WB)
    .union(Ept::PDE_2MB_PAGES)
    .union(Ept::PDPTE_1GB_PAGES)
    .union(Ept::INVEPT)
    .union(Ept::ADVANCED_EXIT_INFO)
    .union(Ept::INVEPT_SINGLE_CONTEXT)
    .union(Ept::INVEPT_ALL_CONTEXT)
    .union(Ept::INVVPID)
    .union(Ept::INVVPID_INDIVIDUAL_ADDRESS)
    .union(Ept::INVVPID_SINGLE_CONTEXT)
    .union(Ept::INVVPID_ALL_CONTEXT)
    .union(Ept::INVVPID_SINGLE_CONTEXT_RETAINING_GLOBALS);

/// The VMX features of `model`: its own override, or the implemented subset
/// of the `intel` preset, with the CR4 bits allowed in VMX operation limited
/// to those the model can set. Address widths always come from the model.
pub fn features(model: &CpuModel) -> VmxFeatures {
    if let Some(f) = &model.vmx {
        return VmxFeatures {
            widths: model.widths,
            ..f.clone()
        };
    }
    let mut f = VmxFeatures::intel();
    f.pin &= PIN;
    f.proc &= PROC;
    f.proc2 &= PROC2;
    // A secondary control for an instruction exists only with the
    // instruction (SDM Vol. 3C 25.6.2, table "Definitions of Secondary
    // Processor-Based VM-Execution Controls").
    for (feature, control) in [
        (Feature::Rdtscp, P2::ENABLE_RDTSCP),
        (Feature::Invpcid, P2::ENABLE_INVPCID),
        (Feature::Rdrand, P2::RDRAND_EXITING),
        (Feature::Rdseed, P2::RDSEED_EXITING),
        (Feature::Xsaves, P2::ENABLE_XSAVES),
    ] {
        if !model.has(feature) {
            f.proc2.remove(control);
        }
    }
    f.exit &= EXIT;
    f.entry &= ENTRY;
    f.ept_vpid = EPT_VPID;
    f.misc.activity_shutdown = false;
    // Wait-for-SIPI: a guest in it leaves only by a SIPI's VM exit
    // (`crate::smp`, `testsuites/tests/vmx_platform.rs`).
    f.misc.activity_wait_for_sipi = true;
    f.widths = model.widths;
    // A guest may use 5-level paging where the model has it (SDM Vol. 3C
    // A.8: CR4 bits allowed 1 in VMX operation); the end-to-end test is a
    // 5-level guest under 5-level EPT (`emu/tests/measure_stack.rs`).
    if model.has(Feature::La57) {
        f.cr4_fixed1 |= mmu::Cr4::LA57.bits();
    }
    f.cr4_fixed1 &= crate::interp::system::cr4_allowed_for(model).bits();
    f
}

/// IA32_FEATURE_CONTROL and the capability MSRs: `Some(None)` for an MSR of
/// VT-x this model lacks (#GP), `None` for any other MSR.
pub fn read_msr(m: &Machine, idx: u32) -> Option<Option<u64>> {
    if !has_vmx(m) {
        return None;
    }
    match idx {
        msr::IA32_FEATURE_CONTROL => Some(Some(m.cpu.msr.feature_control)),
        msr::IA32_VMX_BASIC..=msr::IA32_VMX_EXIT_CTLS2 => Some(m.virt.vmx.caps.read_msr(idx)),
        _ => None,
    }
}

/// WRMSR of IA32_FEATURE_CONTROL (#GP once locked or with a reserved bit;
/// SDM Vol. 3C 24.7) and of the read-only capability MSRs (#GP).
pub fn write_msr(m: &mut Machine, idx: u32, v: u64) -> Option<Flow> {
    if !has_vmx(m) {
        return None;
    }
    match idx {
        msr::IA32_FEATURE_CONTROL => {
            let mut fc = FeatureControl(m.cpu.msr.feature_control);
            Some(match fc.write(v) {
                Ok(()) => {
                    m.cpu.msr.feature_control = fc.0;
                    Ok(())
                }
                Err(e) => Err(Event::Exception(e)),
            })
        }
        msr::IA32_VMX_BASIC..=msr::IA32_VMX_EXIT_CTLS2 => Some(Err(Event::gp0())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmx_model::VmxCaps;

    #[test]
    fn the_binding_preset_advertises_no_unimplemented_control() {
        let caps = VmxCaps::new(features(&CpuModel::intel()));
        assert_eq!(caps.proc2.may_be_one & !PROC2.bits(), 0);
        assert_eq!(caps.pin.may_be_one & !(PIN.bits() | Pin::DEFAULT1), 0);
        assert!(!caps.has2(P2::VMCS_SHADOWING));
        assert!(caps.has2(P2::UNRESTRICTED_GUEST));
        assert_eq!(caps.features.widths, CpuModel::intel().widths);
        // CR4 bits the CPU model cannot set are not allowed in VMX operation.
        assert_ne!(caps.features.cr4_fixed1 & mmu::Cr4::OSXSAVE.bits(), 0);
        assert_ne!(caps.features.cr4_fixed1 & mmu::Cr4::VMXE.bits(), 0);
        let mut no_xsave = CpuModel::intel();
        no_xsave.features.remove(&Feature::Xsave);
        no_xsave.features.remove(&Feature::Xsaves);
        let caps = VmxCaps::new(features(&no_xsave));
        assert_eq!(caps.features.cr4_fixed1 & mmu::Cr4::OSXSAVE.bits(), 0);
        assert!(!caps.has2(P2::ENABLE_XSAVES), "no XSAVES, no control");
    }
}
