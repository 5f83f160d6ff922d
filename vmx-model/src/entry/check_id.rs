//! Every VM-entry check as a stable, typed identifier: the one table of them, with
//! the outcome class, the SDM section, the field it concerns and a description.
//! This is what lets `nestemu` say which rule a hypervisor broke.
//!
//! The checks run in the order the SDM lists them (SDM Vol. 3C 27.2 and 27.3.1).
//! The manual itself says the checks within 27.2 "may be performed in any order"
//! (so error 7 versus 8 for a VMCS that breaks both kinds of rule is
//! implementation-specific) and likewise for the guest-state checks of 27.3.1; this
//! model fixes the listed order so every outcome is deterministic.
//!
//! Rules that can never be the first to fail are left out, with the reason:
//! * 27.2.4 "if 'host address-space size' is 0, 'IA-32e mode guest' must be 0" is
//!   implied by the two rules before it (outside IA-32e mode the guest control
//!   must be 0; inside it the host control must be 1).
//! * The SMM rules of 27.2.1.3 and 27.3.1.5 ("entry to SMM", "deactivate
//!   dual-monitor treatment", wait-for-SIPI with entry to SMM, SMI blocking with
//!   entry to SMM): this processor never advertises those controls, so setting
//!   them fails the reserved-bit check first.
//! * Rules for features this model never advertises (CET, PKRS, BNDCFGS,
//!   IA32_RTIT_CTL, IA32_LBR_CTL, IA32_PERF_GLOBAL_CTRL, mode-based execute
//!   control, sub-page permissions, PT using guest-physical addresses): likewise.

use crate::error::VmInstructionError;
use crate::vmcs::Field;
use serde::{Deserialize, Serialize};

/// What a failed check does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CheckClass {
    /// SDM 27.2.1: VMfailValid(7), "VM entry with invalid control field(s)".
    Control,
    /// SDM 27.2.2-27.2.4: VMfailValid(8), "VM entry with invalid host-state field(s)".
    Host,
    /// SDM 27.3.1: VM-entry failure, exit reason 33, with this exit qualification
    /// (0 default, 2 PDPTEs, 3 NMI injection with STI blocking, 4 VMCS link pointer).
    Guest(u8),
    /// SDM 27.4: VM-entry failure, exit reason 34, qualification = entry index.
    MsrLoad,
}

impl CheckClass {
    /// The VM-instruction error of classes that VMfailValid.
    pub const fn error(self) -> Option<VmInstructionError> {
        match self {
            CheckClass::Control => Some(VmInstructionError::EntryInvalidControlField),
            CheckClass::Host => Some(VmInstructionError::EntryInvalidHostStateField),
            _ => None,
        }
    }
}

macro_rules! checks {
    ($( $id:ident => $class:expr, $sec:literal, $field:expr, $desc:literal; )*) => {
        /// A VM-entry check.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum CheckId {
            $( #[doc = $desc] $id, )*
        }

        impl CheckId {
            /// Every check, in the order VM entry performs them.
            pub const ALL: &'static [CheckId] = &[ $( CheckId::$id, )* ];

            /// The rule, in the manual's words.
            pub const fn describe(self) -> &'static str {
                match self { $( CheckId::$id => $desc, )* }
            }

            /// The SDM Vol. 3C section listing the rule.
            pub const fn section(self) -> &'static str {
                match self { $( CheckId::$id => $sec, )* }
            }

            /// What failing it does.
            pub const fn class(self) -> CheckClass {
                match self { $( CheckId::$id => $class, )* }
            }

            /// The field the rule is about (for per-register rules, the first
            /// register's; [`FailedCheck::field`] names the actual one).
            pub const fn field(self) -> Option<Field> {
                match self { $( CheckId::$id => $field, )* }
            }
        }
    };
}

use CheckClass::{Control as C, Guest as G, Host as H, MsrLoad as M};
use Field as F;

checks! {
    // 27.2.1.1 VM-execution control fields.
    PinBasedReserved => C, "27.2.1.1", Some(F::PinBasedControls), "Reserved bits in the pin-based VM-execution controls must be set properly (IA32_VMX_TRUE_PINBASED_CTLS)";
    PrimaryProcBasedReserved => C, "27.2.1.1", Some(F::PrimaryProcBasedControls), "Reserved bits in the primary processor-based VM-execution controls must be set properly (IA32_VMX_TRUE_PROCBASED_CTLS)";
    SecondaryProcBasedReserved => C, "27.2.1.1", Some(F::SecondaryProcBasedControls), "If \"activate secondary controls\" is 1, reserved bits in the secondary processor-based VM-execution controls must be cleared (IA32_VMX_PROCBASED_CTLS2)";
    Cr3TargetCount => C, "27.2.1.1", Some(F::Cr3TargetCount), "The CR3-target count must not be greater than 4 (IA32_VMX_MISC bits 24:16)";
    IoBitmapAddress => C, "27.2.1.1", Some(F::IoBitmapA), "If \"use I/O bitmaps\" is 1, bits 11:0 of each I/O-bitmap address must be 0 and neither address may set bits beyond the physical-address width";
    MsrBitmapAddress => C, "27.2.1.1", Some(F::MsrBitmap), "If \"use MSR bitmaps\" is 1, bits 11:0 of the MSR-bitmap address must be 0 and it may not set bits beyond the physical-address width";
    VirtualApicAddress => C, "27.2.1.1", Some(F::VirtualApicAddress), "If \"use TPR shadow\" is 1, bits 11:0 of the virtual-APIC address must be 0 and it may not set bits beyond the physical-address width";
    TprThresholdReserved => C, "27.2.1.1", Some(F::TprThreshold), "If \"use TPR shadow\" is 1 and \"virtual-interrupt delivery\" is 0, bits 31:4 of the TPR threshold must be 0";
    TprThresholdAboveVtpr => C, "27.2.1.1", Some(F::TprThreshold), "If \"use TPR shadow\" is 1 and \"virtualize APIC accesses\" and \"virtual-interrupt delivery\" are 0, TPR threshold bits 3:0 must not be greater than VTPR bits 7:4";
    ApicVirtualizationWithoutTprShadow => C, "27.2.1.1", Some(F::SecondaryProcBasedControls), "If \"use TPR shadow\" is 0, \"virtualize x2APIC mode\", \"APIC-register virtualization\" and \"virtual-interrupt delivery\" must be 0";
    VirtualNmisWithoutNmiExiting => C, "27.2.1.1", Some(F::PinBasedControls), "If \"NMI exiting\" is 0, \"virtual NMIs\" must be 0";
    NmiWindowWithoutVirtualNmis => C, "27.2.1.1", Some(F::PrimaryProcBasedControls), "If \"virtual NMIs\" is 0, \"NMI-window exiting\" must be 0";
    ApicAccessAddress => C, "27.2.1.1", Some(F::ApicAccessAddress), "If \"virtualize APIC accesses\" is 1, bits 11:0 of the APIC-access address must be 0 and it may not set bits beyond the physical-address width";
    X2apicModeWithApicAccesses => C, "27.2.1.1", Some(F::SecondaryProcBasedControls), "If \"virtualize x2APIC mode\" is 1, \"virtualize APIC accesses\" must be 0";
    VirtualInterruptDeliveryWithoutExtIntExiting => C, "27.2.1.1", Some(F::PinBasedControls), "If \"virtual-interrupt delivery\" is 1, \"external-interrupt exiting\" must be 1";
    PostedInterruptsWithoutVirtualInterruptDelivery => C, "27.2.1.1", Some(F::SecondaryProcBasedControls), "If \"process posted interrupts\" is 1, \"virtual-interrupt delivery\" must be 1";
    PostedInterruptsWithoutAcknowledgeOnExit => C, "27.2.1.1", Some(F::ExitControls), "If \"process posted interrupts\" is 1, the \"acknowledge interrupt on exit\" VM-exit control must be 1";
    PostedInterruptNotificationVector => C, "27.2.1.1", Some(F::PostedInterruptNotificationVector), "If \"process posted interrupts\" is 1, bits 15:8 of the posted-interrupt notification vector must be 0";
    PostedInterruptDescriptorAddress => C, "27.2.1.1", Some(F::PostedInterruptDescriptorAddress), "If \"process posted interrupts\" is 1, bits 5:0 of the posted-interrupt descriptor address must be 0 and it may not set bits beyond the physical-address width";
    VpidZero => C, "27.2.1.1", Some(F::VirtualProcessorId), "If \"enable VPID\" is 1, the VPID must not be 0000H";
    EptpMemoryType => C, "27.2.1.1", Some(F::EptPointer), "If \"enable EPT\" is 1, EPTP bits 2:0 must be a memory type reported in IA32_VMX_EPT_VPID_CAP";
    EptpWalkLength => C, "27.2.1.1", Some(F::EptPointer), "If \"enable EPT\" is 1, EPTP bits 5:3 must be one less than a supported EPT page-walk length";
    EptpAccessedDirty => C, "27.2.1.1", Some(F::EptPointer), "If \"enable EPT\" is 1, EPTP bit 6 must be 0 unless IA32_VMX_EPT_VPID_CAP bit 21 reports accessed and dirty flags";
    EptpReserved => C, "27.2.1.1", Some(F::EptPointer), "If \"enable EPT\" is 1, EPTP bits 11:7 and bits 63:N (N = physical-address width) must be 0";
    PmlWithoutEpt => C, "27.2.1.1", Some(F::SecondaryProcBasedControls), "If \"enable PML\" is 1, \"enable EPT\" must be 1";
    PmlAddress => C, "27.2.1.1", Some(F::PmlAddress), "If \"enable PML\" is 1, bits 11:0 of the PML address must be 0 and it may not set bits beyond the physical-address width";
    UnrestrictedGuestWithoutEpt => C, "27.2.1.1", Some(F::SecondaryProcBasedControls), "If \"unrestricted guest\" is 1, \"enable EPT\" must be 1";
    VmFunctionControlsReserved => C, "27.2.1.1", Some(F::VmFunctionControls), "If \"enable VM functions\" is 1, reserved bits of the VM-function controls must be 0 (IA32_VMX_VMFUNC)";
    EptpSwitchingWithoutEpt => C, "27.2.1.1", Some(F::VmFunctionControls), "If the \"EPTP switching\" VM function is enabled, \"enable EPT\" must be 1";
    EptpListAddress => C, "27.2.1.1", Some(F::EptpListAddress), "If the \"EPTP switching\" VM function is enabled, bits 11:0 of the EPTP-list address must be 0 and it may not set bits beyond the physical-address width";
    VmcsShadowingBitmapAddress => C, "27.2.1.1", Some(F::VmreadBitmapAddress), "If \"VMCS shadowing\" is 1, bits 11:0 of the VMREAD- and VMWRITE-bitmap addresses must be 0 and they may not set bits beyond the physical-address width";
    VeInformationAddress => C, "27.2.1.1", Some(F::VeInformationAddress), "If \"EPT-violation #VE\" is 1, bits 11:0 of the virtualization-exception information address must be 0 and it may not set bits beyond the physical-address width";
    // 27.2.1.2 VM-exit control fields.
    ExitControlsReserved => C, "27.2.1.2", Some(F::ExitControls), "Reserved bits in the VM-exit controls must be set properly (IA32_VMX_TRUE_EXIT_CTLS)";
    SavePreemptionTimerWithoutTimer => C, "27.2.1.2", Some(F::ExitControls), "If \"activate VMX-preemption timer\" is 0, \"save VMX-preemption timer value\" must be 0";
    ExitMsrStoreAddress => C, "27.2.1.2", Some(F::ExitMsrStoreAddress), "If the VM-exit MSR-store count is not 0, bits 3:0 of the VM-exit MSR-store address must be 0 and it may not set bits beyond the physical-address width";
    ExitMsrStoreAreaEnd => C, "27.2.1.2", Some(F::ExitMsrStoreCount), "The last byte of the VM-exit MSR-store area (address + count * 16 - 1) may not set bits beyond the physical-address width";
    ExitMsrLoadAddress => C, "27.2.1.2", Some(F::ExitMsrLoadAddress), "If the VM-exit MSR-load count is not 0, bits 3:0 of the VM-exit MSR-load address must be 0 and it may not set bits beyond the physical-address width";
    ExitMsrLoadAreaEnd => C, "27.2.1.2", Some(F::ExitMsrLoadCount), "The last byte of the VM-exit MSR-load area (address + count * 16 - 1) may not set bits beyond the physical-address width";
    // 27.2.1.3 VM-entry control fields.
    EntryControlsReserved => C, "27.2.1.3", Some(F::EntryControls), "Reserved bits in the VM-entry controls must be set properly (IA32_VMX_TRUE_ENTRY_CTLS)";
    EventInjectionType => C, "27.2.1.3", Some(F::EntryInterruptionInfo), "The interruption type (bits 10:8) must not be reserved: 1 always, 7 (other event) unless \"monitor trap flag\" is supported";
    EventInjectionVector => C, "27.2.1.3", Some(F::EntryInterruptionInfo), "The vector must match the type: 2 for NMI, at most 31 for a hardware exception, 0 for other event";
    EventInjectionDeliverErrorCode => C, "27.2.1.3", Some(F::EntryInterruptionInfo), "Deliver-error-code (bit 11) must be 1 exactly for hardware exceptions 8, 10-14 and 17 delivered in protected mode (CR0.PE = 1 or \"unrestricted guest\" 0)";
    EventInjectionReserved => C, "27.2.1.3", Some(F::EntryInterruptionInfo), "Reserved bits 30:12 of the VM-entry interruption-information field must be 0";
    EventInjectionErrorCodeReserved => C, "27.2.1.3", Some(F::EntryExceptionErrorCode), "If deliver-error-code is 1, bits 31:16 of the VM-entry exception error code must be 0";
    EventInjectionInstructionLength => C, "27.2.1.3", Some(F::EntryInstructionLength), "For software interrupts and exceptions the VM-entry instruction length must be 1-15 (0 allowed if IA32_VMX_MISC bit 30 is 1)";
    EntryMsrLoadAddress => C, "27.2.1.3", Some(F::EntryMsrLoadAddress), "If the VM-entry MSR-load count is not 0, bits 3:0 of the VM-entry MSR-load address must be 0 and it may not set bits beyond the physical-address width";
    EntryMsrLoadAreaEnd => C, "27.2.1.3", Some(F::EntryMsrLoadCount), "The last byte of the VM-entry MSR-load area (address + count * 16 - 1) may not set bits beyond the physical-address width";
    // 27.2.2 Host control registers and MSRs.
    HostCr0Fixed => H, "27.2.2", Some(F::HostCr0), "The host CR0 field must not set any bit to a value not supported in VMX operation (IA32_VMX_CR0_FIXED0/1)";
    HostCr4Fixed => H, "27.2.2", Some(F::HostCr4), "The host CR4 field must not set any bit to a value not supported in VMX operation (IA32_VMX_CR4_FIXED0/1)";
    HostCr3Width => H, "27.2.2", Some(F::HostCr3), "Host CR3 bits 63:52 and bits 51:32 beyond the physical-address width must be 0";
    HostSysenterEspCanonical => H, "27.2.2", Some(F::HostSysenterEsp), "The host IA32_SYSENTER_ESP field must be canonical";
    HostSysenterEipCanonical => H, "27.2.2", Some(F::HostSysenterEip), "The host IA32_SYSENTER_EIP field must be canonical";
    HostPatInvalid => H, "27.2.2", Some(F::HostPat), "If \"load IA32_PAT\" (exit) is 1, each byte of the host IA32_PAT field must be 0, 1, 4, 5, 6 or 7";
    HostEferReserved => H, "27.2.2", Some(F::HostEfer), "If \"load IA32_EFER\" (exit) is 1, reserved bits of the host IA32_EFER field must be 0";
    HostEferAddressSpaceSize => H, "27.2.2", Some(F::HostEfer), "If \"load IA32_EFER\" (exit) is 1, host IA32_EFER.LMA and LME must each equal \"host address-space size\"";
    // 27.2.3 Host segment and descriptor-table registers.
    HostSelectorRplTi => H, "27.2.3", Some(F::HostEsSelector), "RPL (bits 1:0) and TI (bit 2) of each host selector field must be 0";
    HostCsSelectorNull => H, "27.2.3", Some(F::HostCsSelector), "The host CS selector must not be 0000H";
    HostTrSelectorNull => H, "27.2.3", Some(F::HostTrSelector), "The host TR selector must not be 0000H";
    HostSsSelectorNull => H, "27.2.3", Some(F::HostSsSelector), "The host SS selector must not be 0000H if \"host address-space size\" is 0";
    HostBaseCanonical => H, "27.2.3", Some(F::HostFsBase), "The host FS, GS, GDTR, IDTR and TR base addresses must be canonical";
    // 27.2.4 Address-space size.
    OutsideIa32eWithIa32eGuest => H, "27.2.4", Some(F::EntryControls), "Outside IA-32e mode (IA32_EFER.LMA = 0), \"IA-32e mode guest\" must be 0";
    OutsideIa32eWithHostAddressSpaceSize => H, "27.2.4", Some(F::ExitControls), "Outside IA-32e mode, \"host address-space size\" must be 0";
    InIa32eWithoutHostAddressSpaceSize => H, "27.2.4", Some(F::ExitControls), "In IA-32e mode (IA32_EFER.LMA = 1), \"host address-space size\" must be 1";
    Host32Pcide => H, "27.2.4", Some(F::HostCr4), "If \"host address-space size\" is 0, host CR4.PCIDE must be 0";
    Host32RipHigh => H, "27.2.4", Some(F::HostRip), "If \"host address-space size\" is 0, bits 63:32 of the host RIP must be 0";
    Host64WithoutPae => H, "27.2.4", Some(F::HostCr4), "If \"host address-space size\" is 1, host CR4.PAE must be 1";
    Host64RipCanonical => H, "27.2.4", Some(F::HostRip), "If \"host address-space size\" is 1, the host RIP must be canonical";
    // 27.3.1.1 Guest control registers, debug registers and MSRs.
    GuestCr0Fixed => G(0), "27.3.1.1", Some(F::GuestCr0), "The guest CR0 field must not set any bit to a value not supported in VMX operation (PE and PG exempt with \"unrestricted guest\"; NW and CD never checked)";
    GuestCr0PgWithoutPe => G(0), "27.3.1.1", Some(F::GuestCr0), "If guest CR0.PG is 1, CR0.PE must be 1";
    GuestCr4Fixed => G(0), "27.3.1.1", Some(F::GuestCr4), "The guest CR4 field must not set any bit to a value not supported in VMX operation";
    GuestDebugctlReserved => G(0), "27.3.1.1", Some(F::GuestDebugctl), "If \"load debug controls\" is 1, reserved bits of the guest IA32_DEBUGCTL field must be 0";
    GuestIa32eWithoutPg => G(0), "27.3.1.1", Some(F::GuestCr0), "If \"IA-32e mode guest\" is 1, guest CR0.PG must be 1";
    GuestIa32eWithoutPae => G(0), "27.3.1.1", Some(F::GuestCr4), "If \"IA-32e mode guest\" is 1, guest CR4.PAE must be 1";
    GuestPcideOutsideIa32e => G(0), "27.3.1.1", Some(F::GuestCr4), "If \"IA-32e mode guest\" is 0, guest CR4.PCIDE must be 0";
    GuestCr3Width => G(0), "27.3.1.1", Some(F::GuestCr3), "Guest CR3 bits 63:52 and bits 51:32 beyond the physical-address width must be 0";
    GuestDr7High => G(0), "27.3.1.1", Some(F::GuestDr7), "If \"load debug controls\" is 1, bits 63:32 of the guest DR7 field must be 0";
    GuestSysenterEspCanonical => G(0), "27.3.1.1", Some(F::GuestSysenterEsp), "The guest IA32_SYSENTER_ESP field must be canonical";
    GuestSysenterEipCanonical => G(0), "27.3.1.1", Some(F::GuestSysenterEip), "The guest IA32_SYSENTER_EIP field must be canonical";
    GuestPatInvalid => G(0), "27.3.1.1", Some(F::GuestPat), "If \"load IA32_PAT\" (entry) is 1, each byte of the guest IA32_PAT field must be 0, 1, 4, 5, 6 or 7";
    GuestEferReserved => G(0), "27.3.1.1", Some(F::GuestEfer), "If \"load IA32_EFER\" (entry) is 1, reserved bits of the guest IA32_EFER field must be 0";
    GuestEferLma => G(0), "27.3.1.1", Some(F::GuestEfer), "If \"load IA32_EFER\" is 1, guest IA32_EFER.LMA must equal \"IA-32e mode guest\"";
    GuestEferLme => G(0), "27.3.1.1", Some(F::GuestEfer), "If \"load IA32_EFER\" is 1 and guest CR0.PG is 1, guest IA32_EFER.LME must equal LMA";
    // 27.3.1.2 Guest segment registers.
    GuestTrSelectorTi => G(0), "27.3.1.2", Some(F::GuestTrSelector), "TR: the TI flag (bit 2) of the selector must be 0";
    GuestLdtrSelectorTi => G(0), "27.3.1.2", Some(F::GuestLdtrSelector), "LDTR: if usable, the TI flag of the selector must be 0";
    GuestSsRplNotCsRpl => G(0), "27.3.1.2", Some(F::GuestSsSelector), "SS: if not virtual-8086 and \"unrestricted guest\" is 0, the selector RPL must equal the CS selector RPL";
    GuestV86Base => G(0), "27.3.1.2", Some(F::GuestEsBase), "Virtual-8086 guest: each of CS, SS, DS, ES, FS, GS base must be its selector shifted left 4 bits";
    GuestBaseCanonical => G(0), "27.3.1.2", Some(F::GuestFsBase), "TR, FS, GS (and LDTR if usable) base addresses must be canonical";
    GuestCsBaseHigh => G(0), "27.3.1.2", Some(F::GuestCsBase), "Bits 63:32 of the CS base must be 0";
    GuestDataBaseHigh => G(0), "27.3.1.2", Some(F::GuestSsBase), "SS, DS, ES: if usable, bits 63:32 of the base must be 0";
    GuestV86Limit => G(0), "27.3.1.2", Some(F::GuestEsLimit), "Virtual-8086 guest: each of CS, SS, DS, ES, FS, GS limit must be 0000FFFFH";
    GuestV86AccessRights => G(0), "27.3.1.2", Some(F::GuestEsAccessRights), "Virtual-8086 guest: each of CS, SS, DS, ES, FS, GS access rights must be 000000F3H";
    GuestCsAccessRightsType => G(0), "27.3.1.2", Some(F::GuestCsAccessRights), "CS type must be 9, 11, 13 or 15 (accessed code) when \"unrestricted guest\" is 0";
    GuestCsAccessRightsTypeWithUnrestrictedGuest => G(0), "27.3.1.2", Some(F::GuestCsAccessRights), "CS type must be 3 (read/write accessed data) or 9, 11, 13, 15 when \"unrestricted guest\" is 1";
    GuestSsAccessRightsType => G(0), "27.3.1.2", Some(F::GuestSsAccessRights), "SS: if usable, the type must be 3 or 7 (read/write accessed data)";
    GuestDataAccessRightsAccessed => G(0), "27.3.1.2", Some(F::GuestDsAccessRights), "DS, ES, FS, GS: if usable, type bit 0 (accessed) must be 1";
    GuestDataAccessRightsCodeReadable => G(0), "27.3.1.2", Some(F::GuestDsAccessRights), "DS, ES, FS, GS: if usable and a code segment, type bit 1 (readable) must be 1";
    GuestSegAccessRightsS => G(0), "27.3.1.2", Some(F::GuestCsAccessRights), "CS, and SS, DS, ES, FS, GS if usable: S (bit 4) must be 1";
    GuestCsDplDataType => G(0), "27.3.1.2", Some(F::GuestCsAccessRights), "CS: if the type is 3, the DPL must be 0";
    GuestCsDplNonConforming => G(0), "27.3.1.2", Some(F::GuestCsAccessRights), "CS: if the type is 9 or 11 (non-conforming code), the DPL must equal the SS DPL";
    GuestCsDplConforming => G(0), "27.3.1.2", Some(F::GuestCsAccessRights), "CS: if the type is 13 or 15 (conforming code), the DPL must not be greater than the SS DPL";
    GuestSsDplRpl => G(0), "27.3.1.2", Some(F::GuestSsAccessRights), "SS: if \"unrestricted guest\" is 0, the DPL must equal the selector RPL";
    GuestSsDplRealOrDataCs => G(0), "27.3.1.2", Some(F::GuestSsAccessRights), "SS: the DPL must be 0 if the CS type is 3 or guest CR0.PE is 0";
    GuestDataDplRpl => G(0), "27.3.1.2", Some(F::GuestDsAccessRights), "DS, ES, FS, GS: if \"unrestricted guest\" is 0, usable and type 0-11, the DPL must not be less than the selector RPL";
    GuestSegAccessRightsPresent => G(0), "27.3.1.2", Some(F::GuestCsAccessRights), "CS, and SS, DS, ES, FS, GS if usable: P (bit 7) must be 1";
    GuestSegAccessRightsReserved11To8 => G(0), "27.3.1.2", Some(F::GuestCsAccessRights), "CS, and SS, DS, ES, FS, GS if usable: reserved bits 11:8 must be 0";
    GuestCsDbWithL => G(0), "27.3.1.2", Some(F::GuestCsAccessRights), "CS: D/B must be 0 if the guest will be IA-32e mode and L is 1";
    GuestSegGranularity => G(0), "27.3.1.2", Some(F::GuestCsAccessRights), "CS, and SS, DS, ES, FS, GS if usable: G must be 0 if any of limit bits 11:0 is 0, and 1 if any of limit bits 31:20 is 1";
    GuestSegAccessRightsReserved31To17 => G(0), "27.3.1.2", Some(F::GuestCsAccessRights), "CS, and SS, DS, ES, FS, GS if usable: reserved bits 31:17 must be 0";
    GuestTrType => G(0), "27.3.1.2", Some(F::GuestTrAccessRights), "TR type must be 3 or 11 (busy 16- or 32-bit TSS), and 11 (busy 64-bit TSS) for an IA-32e mode guest";
    GuestTrS => G(0), "27.3.1.2", Some(F::GuestTrAccessRights), "TR: S (bit 4) must be 0";
    GuestTrPresent => G(0), "27.3.1.2", Some(F::GuestTrAccessRights), "TR: P (bit 7) must be 1";
    GuestTrReserved11To8 => G(0), "27.3.1.2", Some(F::GuestTrAccessRights), "TR: reserved bits 11:8 must be 0";
    GuestTrGranularity => G(0), "27.3.1.2", Some(F::GuestTrAccessRights), "TR: G must be consistent with the limit";
    GuestTrUnusable => G(0), "27.3.1.2", Some(F::GuestTrAccessRights), "TR: the unusable bit must be 0";
    GuestTrReserved31To17 => G(0), "27.3.1.2", Some(F::GuestTrAccessRights), "TR: reserved bits 31:17 must be 0";
    GuestLdtrType => G(0), "27.3.1.2", Some(F::GuestLdtrAccessRights), "LDTR: if usable, the type must be 2 (LDT)";
    GuestLdtrS => G(0), "27.3.1.2", Some(F::GuestLdtrAccessRights), "LDTR: if usable, S must be 0";
    GuestLdtrPresent => G(0), "27.3.1.2", Some(F::GuestLdtrAccessRights), "LDTR: if usable, P must be 1";
    GuestLdtrReserved11To8 => G(0), "27.3.1.2", Some(F::GuestLdtrAccessRights), "LDTR: if usable, reserved bits 11:8 must be 0";
    GuestLdtrGranularity => G(0), "27.3.1.2", Some(F::GuestLdtrAccessRights), "LDTR: if usable, G must be consistent with the limit";
    GuestLdtrReserved31To17 => G(0), "27.3.1.2", Some(F::GuestLdtrAccessRights), "LDTR: if usable, reserved bits 31:17 must be 0";
    // 27.3.1.3 Guest descriptor-table registers.
    GuestDescriptorTableBaseCanonical => G(0), "27.3.1.3", Some(F::GuestGdtrBase), "The GDTR and IDTR base addresses must be canonical";
    GuestDescriptorTableLimitHigh => G(0), "27.3.1.3", Some(F::GuestGdtrLimit), "Bits 31:16 of the GDTR and IDTR limit fields must be 0";
    // 27.3.1.4 Guest RIP and RFLAGS.
    GuestRipHigh => G(0), "27.3.1.4", Some(F::GuestRip), "Bits 63:32 of RIP must be 0 if \"IA-32e mode guest\" is 0 or CS.L is 0";
    GuestRipCanonical => G(0), "27.3.1.4", Some(F::GuestRip), "RIP must be canonical if \"IA-32e mode guest\" is 1 and CS.L is 1";
    GuestRflagsReserved => G(0), "27.3.1.4", Some(F::GuestRflags), "RFLAGS bits 63:22, 15, 5 and 3 must be 0 and bit 1 must be 1";
    GuestRflagsVm => G(0), "27.3.1.4", Some(F::GuestRflags), "RFLAGS.VM must be 0 if \"IA-32e mode guest\" is 1 or CR0.PE is 0";
    GuestRflagsIfForExternalInterrupt => G(0), "27.3.1.4", Some(F::GuestRflags), "RFLAGS.IF must be 1 when injecting an external interrupt";
    // 27.3.1.5 Guest non-register state.
    GuestActivityStateUnsupported => G(0), "27.3.1.5", Some(F::GuestActivityState), "The activity state must be one supported (IA32_VMX_MISC bits 8:6)";
    GuestActivityHltWithSsDpl => G(0), "27.3.1.5", Some(F::GuestActivityState), "The activity state must not be HLT if the SS DPL is not 0";
    GuestActivityNotActiveWithBlocking => G(0), "27.3.1.5", Some(F::GuestActivityState), "The activity state must be active if there is blocking by STI or by MOV SS";
    GuestActivityBlocksInjectedEvent => G(0), "27.3.1.5", Some(F::GuestActivityState), "An injected event must not be one the activity state blocks (HLT: external interrupt, NMI, #DB, #MC, MTF only; shutdown: NMI, #MC; wait-for-SIPI: none)";
    GuestInterruptibilityReserved => G(0), "27.3.1.5", Some(F::GuestInterruptibility), "Reserved bits 31:5 of the interruptibility state must be 0";
    GuestInterruptibilityStiAndMovSs => G(0), "27.3.1.5", Some(F::GuestInterruptibility), "Blocking by STI and blocking by MOV SS cannot both be 1";
    GuestInterruptibilityStiWithoutIf => G(0), "27.3.1.5", Some(F::GuestInterruptibility), "Blocking by STI must be 0 if RFLAGS.IF is 0";
    GuestInterruptibilityBlockingWithExternalInterrupt => G(0), "27.3.1.5", Some(F::GuestInterruptibility), "Blocking by STI and by MOV SS must be 0 when injecting an external interrupt";
    GuestInterruptibilityMovSsWithNmi => G(0), "27.3.1.5", Some(F::GuestInterruptibility), "Blocking by MOV SS must be 0 when injecting an NMI";
    GuestInterruptibilitySmiOutsideSmm => G(0), "27.3.1.5", Some(F::GuestInterruptibility), "Blocking by SMI must be 0 outside SMM";
    GuestInterruptibilityStiWithNmi => G(3), "27.3.1.5", Some(F::GuestInterruptibility), "Blocking by STI must be 0 when injecting an NMI (implementation-specific; exit qualification 3)";
    GuestInterruptibilityNmiBlockingWithVirtualNmi => G(0), "27.3.1.5", Some(F::GuestInterruptibility), "Blocking by NMI must be 0 when \"virtual NMIs\" is 1 and an NMI is injected";
    GuestInterruptibilityEnclave => G(0), "27.3.1.5", Some(F::GuestInterruptibility), "Enclave interruption (bit 4) requires SGX support, which this processor lacks";
    GuestPendingDebugReserved => G(0), "27.3.1.5", Some(F::GuestPendingDebugExceptions), "Pending debug exceptions bits 11:4, 13, 15 and 63:17 must be 0 (bit 16, RTM, needs RTM support)";
    GuestPendingDebugBsWithTf => G(0), "27.3.1.5", Some(F::GuestPendingDebugExceptions), "With STI/MOV SS blocking or HLT: BS must be 1 if RFLAGS.TF is 1 and IA32_DEBUGCTL.BTF is 0";
    GuestPendingDebugBsWithoutTf => G(0), "27.3.1.5", Some(F::GuestPendingDebugExceptions), "With STI/MOV SS blocking or HLT: BS must be 0 if RFLAGS.TF is 0 or IA32_DEBUGCTL.BTF is 1";
    GuestLinkPointerAlignment => G(4), "27.3.1.5", Some(F::VmcsLinkPointer), "If the VMCS link pointer is not FFFFFFFF_FFFFFFFFH, bits 11:0 must be 0";
    GuestLinkPointerWidth => G(4), "27.3.1.5", Some(F::VmcsLinkPointer), "If the VMCS link pointer is not FFFFFFFF_FFFFFFFFH, it may not set bits beyond the physical-address width";
    GuestLinkPointerRevision => G(4), "27.3.1.5", Some(F::VmcsLinkPointer), "Bits 30:0 of the first dword of the VMCS the link pointer references must be the VMCS revision identifier";
    GuestLinkPointerShadowIndicator => G(4), "27.3.1.5", Some(F::VmcsLinkPointer), "Bit 31 of the first dword of the VMCS the link pointer references must equal \"VMCS shadowing\"";
    GuestLinkPointerIsCurrent => G(4), "27.3.1.5", Some(F::VmcsLinkPointer), "Outside SMM the VMCS link pointer must not be the current-VMCS pointer";
    // 27.3.1.6 Guest PDPTEs.
    GuestPdpteReserved => G(2), "27.3.1.6", Some(F::GuestPdpte0), "A guest using PAE paging must have valid PDPTEs: reserved bits (2:1, 8:5, 63:MAXPHYADDR) of present entries must be 0";
    // 27.4 Loading MSRs.
    MsrLoadCountExceeded => M, "27.4", Some(F::EntryMsrLoadCount), "The VM-entry MSR-load area holds more entries than IA32_VMX_MISC bits 27:25 allow";
    MsrLoadFsGsBase => M, "27.4", Some(F::EntryMsrLoadAddress), "An entry must not load IA32_FS_BASE or IA32_GS_BASE";
    MsrLoadX2apic => M, "27.4", Some(F::EntryMsrLoadAddress), "An entry must not load an x2APIC MSR (index bits 31:8 = 000008H)";
    MsrLoadSmmMonitorCtl => M, "27.4", Some(F::EntryMsrLoadAddress), "An entry must not load IA32_SMM_MONITOR_CTL outside SMM";
    MsrLoadReserved => M, "27.4", Some(F::EntryMsrLoadAddress), "Bits 63:32 of an entry must be 0";
    MsrLoadWrmsrFault => M, "27.4", Some(F::EntryMsrLoadAddress), "WRMSR of the entry's value at CPL 0 must not raise #GP";
}

/// A failed check: the rule and the field it was applied to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FailedCheck {
    /// The rule.
    pub id: CheckId,
    /// The field it concerns (for per-register rules, the actual register's field).
    pub field: Option<Field>,
}

impl FailedCheck {
    /// The rule applied to its default field.
    pub const fn new(id: CheckId) -> Self {
        Self {
            id,
            field: id.field(),
        }
    }
    /// The rule applied to `field`.
    pub const fn at(id: CheckId, field: Field) -> Self {
        Self {
            id,
            field: Some(field),
        }
    }
}

impl core::fmt::Display for FailedCheck {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}: {}", self.id, self.id.describe())?;
        if let Some(field) = self.field {
            write!(f, "; field {field}")?;
        }
        write!(f, "; {}", crate::sdm::cite(self.id.section()))
    }
}
