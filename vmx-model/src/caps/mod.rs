//! The VMX capability MSRs and the feature configuration they are generated from
//! (SDM Vol. 3D appendix A, "VMX Capability Reporting Facility").
//!
//! [`VmxFeatures`] is the serde configuration a CPU preset carries: which controls
//! exist (their allowed 1-settings), EPT/VPID capabilities, VM functions and the
//! miscellaneous data. [`VmxCaps`] is derived from it once: every capability MSR
//! value and the allowed settings the VM-entry checks use. A preset removes a
//! feature by clearing its bit; nothing else needs to change.

mod msrs;
mod presets;

pub use msrs::{FeatureControl, VmxCaps};

use crate::controls::{
    EntryControls, EptVpidCap, ExitControls, PinControls, Proc2Controls, ProcControls,
    VmFuncControls,
};
use mmu::{AddressWidths, Cr0, Cr4};
use serde::{Deserialize, Serialize};

/// IA32_VMX_MISC contents (SDM Vol. 3D A.6, "Miscellaneous Data").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MiscFeatures {
    /// Bits 4:0: the VMX-preemption timer counts down by 1 each time bit
    /// `preemption_timer_rate` of the TSC changes.
    pub preemption_timer_rate: u8,
    /// Bit 5: VM exits store IA32_EFER.LMA into the "IA-32e mode guest" VM-entry control.
    pub store_lma_on_exit: bool,
    /// Bit 6: the HLT activity state is supported.
    pub activity_hlt: bool,
    /// Bit 7: the shutdown activity state is supported.
    pub activity_shutdown: bool,
    /// Bit 8: the wait-for-SIPI activity state is supported.
    pub activity_wait_for_sipi: bool,
    /// Bits 24:16: number of CR3-target values (the architecture defines four fields).
    pub cr3_target_count: u16,
    /// Bits 27:25 (N): MSR-list areas may hold up to 512 * (N + 1) entries.
    pub msr_list_size_code: u8,
    /// Bit 29: VMWRITE may write any supported field, including VM-exit information.
    pub vmwrite_any_field: bool,
    /// Bit 30: software interrupts and exceptions may be injected with instruction
    /// length 0.
    pub zero_length_injection: bool,
    /// Model choice, not an MSR bit: a VM entry injecting an NMI fails (exit 33,
    /// qualification 3) if the interruptibility state has blocking by STI
    /// (SDM Vol. 3C 27.3.1.5: "A processor may require bit 0 ... to be 0").
    pub nmi_injection_requires_no_sti_blocking: bool,
}

impl Default for MiscFeatures {
    fn default() -> Self {
        Self {
            preemption_timer_rate: 5,
            store_lma_on_exit: true,
            activity_hlt: true,
            activity_shutdown: false,
            activity_wait_for_sipi: false,
            cr3_target_count: 4,
            msr_list_size_code: 0,
            vmwrite_any_field: true,
            zero_length_injection: true,
            nmi_injection_requires_no_sti_blocking: false,
        }
    }
}

/// The VMX features a CPU model advertises. Each control set lists the controls
/// whose 1-setting is supported; default1 controls are always settable to 1 and,
/// when their bit is listed here, also to 0 (reported in the TRUE_ MSRs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VmxFeatures {
    /// VMCS revision identifier, IA32_VMX_BASIC bits 30:0.
    pub revision_id: u32,
    /// IA32_VMX_BASIC bit 55: the TRUE_ capability MSRs exist and govern VM entry.
    pub true_controls: bool,
    /// Supported pin-based controls.
    pub pin: PinControls,
    /// Supported primary processor-based controls.
    pub proc: ProcControls,
    /// Supported secondary processor-based controls.
    pub proc2: Proc2Controls,
    /// Supported VM-exit controls.
    pub exit: ExitControls,
    /// Supported VM-entry controls.
    pub entry: EntryControls,
    /// IA32_VMX_EPT_VPID_CAP.
    pub ept_vpid: EptVpidCap,
    /// IA32_VMX_VMFUNC: supported VM functions.
    pub vmfunc: VmFuncControls,
    /// IA32_VMX_MISC.
    pub misc: MiscFeatures,
    /// CR0 bits that may be 1 in VMX operation (IA32_VMX_CR0_FIXED1).
    pub cr0_fixed1: u64,
    /// CR4 bits that may be 1 in VMX operation (IA32_VMX_CR4_FIXED1): the CR4
    /// features of the CPU model.
    pub cr4_fixed1: u64,
    /// MAXPHYADDR and the linear-address width.
    pub widths: AddressWidths,
    /// IA32_DEBUGCTL bits that are not reserved on this CPU model.
    pub debugctl_valid: u64,
    /// IA32_EFER bits that are not reserved on this CPU model.
    pub efer_valid: u64,
}

impl Default for VmxFeatures {
    fn default() -> Self {
        Self::intel()
    }
}

impl VmxFeatures {
    /// The `intel` preset: every feature this model implements (issue 4's list).
    pub fn intel() -> Self {
        Self {
            revision_id: 0x0000_0012,
            true_controls: true,
            pin: presets::INTEL_PIN,
            proc: presets::INTEL_PROC,
            proc2: presets::INTEL_PROC2,
            exit: presets::INTEL_EXIT,
            entry: presets::INTEL_ENTRY,
            ept_vpid: presets::INTEL_EPT_VPID,
            vmfunc: VmFuncControls::empty(),
            misc: MiscFeatures::default(),
            cr0_fixed1: 0xffff_ffff,
            cr4_fixed1: presets::INTEL_CR4.bits(),
            widths: AddressWidths::default(),
            debugctl_valid: 0x3,
            efer_valid: 0xd01,
        }
    }

    /// Every feature the model can check and carry, including the APIC
    /// virtualization, posted-interrupt, PML, VM-function, VMCS-shadowing and #VE
    /// controls whose non-root behaviour belongs to the machine's APIC and MMU.
    pub fn everything() -> Self {
        use Proc2Controls as P2;
        let mut f = Self::intel();
        f.pin |= PinControls::PROCESS_POSTED_INTERRUPTS;
        f.proc2 |= P2::VIRTUALIZE_APIC_ACCESSES
            | P2::VIRTUALIZE_X2APIC_MODE
            | P2::APIC_REGISTER_VIRTUALIZATION
            | P2::VIRTUAL_INTERRUPT_DELIVERY
            | P2::ENABLE_VM_FUNCTIONS
            | P2::VMCS_SHADOWING
            | P2::ENABLE_PML
            | P2::EPT_VIOLATION_VE;
        f.vmfunc = VmFuncControls::EPTP_SWITCHING;
        f.ept_vpid |= EptVpidCap::ACCESSED_DIRTY | EptVpidCap::PAGE_WALK_5;
        f.misc.activity_shutdown = true;
        f.misc.activity_wait_for_sipi = true;
        f
    }

    /// A first-generation VT-x processor: no secondary controls, no TRUE_ MSRs,
    /// no EPT/VPID, no VMX-preemption timer.
    pub fn first_generation() -> Self {
        let mut f = Self::intel();
        f.true_controls = false;
        f.pin.remove(PinControls::ACTIVATE_PREEMPTION_TIMER);
        f.proc.remove(ProcControls::ACTIVATE_SECONDARY_CONTROLS);
        f.proc2 = Proc2Controls::empty();
        f.exit &= ExitControls::HOST_ADDRESS_SPACE_SIZE
            | ExitControls::ACKNOWLEDGE_INTERRUPT_ON_EXIT
            | ExitControls::SAVE_DEBUG_CONTROLS;
        f.entry &= EntryControls::IA32E_MODE_GUEST | EntryControls::LOAD_DEBUG_CONTROLS;
        f.ept_vpid = EptVpidCap::empty();
        f.misc.vmwrite_any_field = false;
        f.misc.zero_length_injection = false;
        f
    }

    /// The fixed-0 CR0 bits (must be 1): PE, NE and PG (SDM Vol. 3D A.7).
    pub const fn cr0_fixed0(&self) -> u64 {
        Cr0::PE.bits() | Cr0::NE.bits() | Cr0::PG.bits()
    }

    /// The fixed-0 CR4 bits (must be 1): VMXE (SDM Vol. 3D A.8).
    pub const fn cr4_fixed0(&self) -> u64 {
        Cr4::VMXE.bits()
    }
}
