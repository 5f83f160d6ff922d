//! The break recipes: per VM-entry check, the changes to the known-good
//! VMCS (and memory) that violate exactly that check, ported from
//! vmx-model's own cases to the kit's known-good VMCS.

use guestkit::vmx::layout;
use mmu::msr;
use vmx_model::controls::{
    EntryControls as En, ExitControls as Ex, PinControls as Pin, Proc2Controls as P2,
    ProcControls as P1,
};
use vmx_model::entry::CheckId as C;
use vmx_model::Field as F;

/// One change to the known-good state.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// VMWRITE.
    Set(F, u64),
    /// OR bits into a field.
    Or(F, u64),
    /// Clear bits of a field.
    Clear(F, u64),
    /// Write a qword of memory.
    Mem(u64, u64),
    /// Fill an MSR-load area at the address with this many IA32_TSC_AUX entries.
    Fill(u64, u64),
}
pub use Op::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    Default,
    Everything,
    StrictNmi,
}

pub struct Recipe {
    pub id: C,
    pub preset: Preset,
    pub ops: Vec<Op>,
    pub field: Option<F>,
    pub msr_index: u64,
}

pub fn r(id: C, ops: Vec<Op>) -> Recipe {
    Recipe {
        id,
        preset: Preset::Default,
        ops,
        field: None,
        msr_index: 0,
    }
}

pub fn all(id: C, ops: Vec<Op>) -> Recipe {
    Recipe {
        preset: Preset::Everything,
        ..r(id, ops)
    }
}

pub fn at(mut x: Recipe, f: F) -> Recipe {
    x.field = Some(f);
    x
}

pub const FAR: u64 = 1 << 50;
/// Not canonical at either linear-address width (48 or 57 bits): the
/// default model has 5-level paging, so the checks are for 57-bit
/// canonicality (SDM Vol. 3C 27.2.2, 27.3.1.2).
pub const CANON_BAD: u64 = 0x0100_0000_0000_0000;
pub const NMI: u64 = 0x8000_0202;
pub const EXT_INT: u64 = 0x8000_0020;

pub fn cat(v: &[Vec<Op>]) -> Vec<Op> {
    v.concat()
}
pub fn p1(b: P1) -> Op {
    Or(F::PrimaryProcBasedControls, b.bits() as u64)
}
pub fn p2(b: P2) -> Op {
    Or(F::SecondaryProcBasedControls, b.bits() as u64)
}
pub fn tpr_shadow() -> Vec<Op> {
    vec![
        p1(P1::USE_TPR_SHADOW),
        Set(F::VirtualApicAddress, layout::VIRTUAL_APIC),
        Mem(layout::VIRTUAL_APIC + 0x80, 0),
    ]
}
pub fn ept() -> Vec<Op> {
    vec![p2(P2::ENABLE_EPT), Set(F::EptPointer, layout::EPTP)]
}
pub fn unrestricted() -> Vec<Op> {
    cat(&[ept(), vec![p2(P2::UNRESTRICTED_GUEST)]])
}
pub fn posted() -> Vec<Op> {
    cat(&[
        tpr_shadow(),
        vec![
            Or(
                F::PinBasedControls,
                (Pin::PROCESS_POSTED_INTERRUPTS | Pin::EXTERNAL_INTERRUPT_EXITING).bits() as u64,
            ),
            p2(P2::VIRTUAL_INTERRUPT_DELIVERY),
            Or(
                F::ExitControls,
                Ex::ACKNOWLEDGE_INTERRUPT_ON_EXIT.bits() as u64,
            ),
            Set(F::PostedInterruptNotificationVector, 0xf2),
            Set(F::PostedInterruptDescriptorAddress, layout::SPARE),
        ],
    ])
}
/// A 32-bit guest with PAE paging: no IA-32e mode, EFER not loaded, 32-bit
/// CS, valid PDPTEs at its CR3.
pub fn pae_guest() -> Vec<Op> {
    let t = layout::GUEST32_TABLES;
    let mut v = vec![
        Clear(
            F::EntryControls,
            (En::IA32E_MODE_GUEST | En::LOAD_EFER).bits() as u64,
        ),
        Set(F::GuestCsAccessRights, 0xc09b),
        Set(F::GuestCr3, t),
    ];
    for i in 0..4 {
        v.push(Mem(t + 8 * i, (t + 0x1000 * (i + 1)) | 1));
    }
    v
}
pub fn v86_guest() -> Vec<Op> {
    let mut v = pae_guest();
    v.push(Set(F::GuestRflags, 0x2_0002));
    let segs = [
        (
            F::GuestEsSelector,
            F::GuestEsBase,
            F::GuestEsLimit,
            F::GuestEsAccessRights,
        ),
        (
            F::GuestCsSelector,
            F::GuestCsBase,
            F::GuestCsLimit,
            F::GuestCsAccessRights,
        ),
        (
            F::GuestSsSelector,
            F::GuestSsBase,
            F::GuestSsLimit,
            F::GuestSsAccessRights,
        ),
        (
            F::GuestDsSelector,
            F::GuestDsBase,
            F::GuestDsLimit,
            F::GuestDsAccessRights,
        ),
        (
            F::GuestFsSelector,
            F::GuestFsBase,
            F::GuestFsLimit,
            F::GuestFsAccessRights,
        ),
        (
            F::GuestGsSelector,
            F::GuestGsBase,
            F::GuestGsLimit,
            F::GuestGsAccessRights,
        ),
    ];
    for (i, (s, b, l, a)) in segs.into_iter().enumerate() {
        let sel = 0x1000 + 0x100 * i as u64;
        v.extend([Set(s, sel), Set(b, sel << 4), Set(l, 0xffff), Set(a, 0xf3)]);
    }
    v.push(Set(F::GuestRip, 0x100));
    v
}
pub fn usable_ldtr() -> Vec<Op> {
    vec![
        Set(F::GuestLdtrSelector, 0x28),
        Set(F::GuestLdtrLimit, 0xffff),
        Set(F::GuestLdtrAccessRights, 0x82),
    ]
}
pub fn ldtr_ar(ar: u64) -> Vec<Op> {
    cat(&[usable_ldtr(), vec![Set(F::GuestLdtrAccessRights, ar)]])
}
pub fn area_end(a: F, c: F) -> Vec<Op> {
    vec![Set(a, (1 << 46) - 16), Set(c, 2)]
}
/// An entry MSR-load area of two entries, the second bad.
pub fn entry_msrs(bad: u32, reserved: bool) -> Vec<Op> {
    let a = layout::ENTRY_MSR_LOAD;
    vec![
        Set(F::EntryMsrLoadAddress, a),
        Set(F::EntryMsrLoadCount, 2),
        Mem(a, msr::IA32_TSC_AUX as u64),
        Mem(a + 8, 1),
        Mem(a + 16, bad as u64 | if reserved { 1 << 32 } else { 0 }),
        Mem(a + 24, 0),
    ]
}
pub fn msr_case(id: C, ops: Vec<Op>, index: u64) -> Recipe {
    Recipe {
        msr_index: index,
        ..r(id, ops)
    }
}

pub fn control_recipes() -> Vec<Recipe> {
    vec![
        r(C::PinBasedReserved, vec![Clear(F::PinBasedControls, 2)]),
        r(
            C::PrimaryProcBasedReserved,
            vec![Clear(F::PrimaryProcBasedControls, 2)],
        ),
        r(
            C::SecondaryProcBasedReserved,
            vec![p2(P2::ENABLE_ENCLS_EXITING)],
        ),
        r(C::Cr3TargetCount, vec![Set(F::Cr3TargetCount, 5)]),
        r(
            C::IoBitmapAddress,
            vec![
                p1(P1::USE_IO_BITMAPS),
                Set(F::IoBitmapA, layout::IO_BITMAP_A | 1),
            ],
        ),
        at(
            r(
                C::IoBitmapAddress,
                vec![p1(P1::USE_IO_BITMAPS), Set(F::IoBitmapB, FAR)],
            ),
            F::IoBitmapB,
        ),
        r(
            C::MsrBitmapAddress,
            vec![p1(P1::USE_MSR_BITMAPS), Set(F::MsrBitmap, FAR)],
        ),
        r(
            C::VirtualApicAddress,
            cat(&[
                tpr_shadow(),
                vec![Set(F::VirtualApicAddress, layout::VIRTUAL_APIC + 8)],
            ]),
        ),
        r(
            C::TprThresholdReserved,
            cat(&[tpr_shadow(), vec![Set(F::TprThreshold, 0x10)]]),
        ),
        r(
            C::TprThresholdAboveVtpr,
            cat(&[
                tpr_shadow(),
                vec![
                    Mem(layout::VIRTUAL_APIC + 0x80, 0x20),
                    Set(F::TprThreshold, 3),
                ],
            ]),
        ),
        all(
            C::ApicVirtualizationWithoutTprShadow,
            vec![p2(P2::VIRTUALIZE_X2APIC_MODE)],
        ),
        r(
            C::VirtualNmisWithoutNmiExiting,
            vec![Or(F::PinBasedControls, Pin::VIRTUAL_NMIS.bits() as u64)],
        ),
        r(
            C::NmiWindowWithoutVirtualNmis,
            vec![p1(P1::NMI_WINDOW_EXITING)],
        ),
        all(
            C::ApicAccessAddress,
            vec![
                p2(P2::VIRTUALIZE_APIC_ACCESSES),
                Set(F::ApicAccessAddress, layout::SPARE | 1),
            ],
        ),
        all(
            C::X2apicModeWithApicAccesses,
            cat(&[
                tpr_shadow(),
                vec![
                    p2(P2::VIRTUALIZE_X2APIC_MODE | P2::VIRTUALIZE_APIC_ACCESSES),
                    Set(F::ApicAccessAddress, layout::SPARE),
                ],
            ]),
        ),
        all(
            C::VirtualInterruptDeliveryWithoutExtIntExiting,
            cat(&[tpr_shadow(), vec![p2(P2::VIRTUAL_INTERRUPT_DELIVERY)]]),
        ),
        all(
            C::PostedInterruptsWithoutVirtualInterruptDelivery,
            cat(&[
                posted(),
                vec![Clear(
                    F::SecondaryProcBasedControls,
                    P2::VIRTUAL_INTERRUPT_DELIVERY.bits() as u64,
                )],
            ]),
        ),
        all(
            C::PostedInterruptsWithoutAcknowledgeOnExit,
            cat(&[
                posted(),
                vec![Clear(
                    F::ExitControls,
                    Ex::ACKNOWLEDGE_INTERRUPT_ON_EXIT.bits() as u64,
                )],
            ]),
        ),
        all(
            C::PostedInterruptNotificationVector,
            cat(&[
                posted(),
                vec![Set(F::PostedInterruptNotificationVector, 0x1f2)],
            ]),
        ),
        all(
            C::PostedInterruptDescriptorAddress,
            cat(&[
                posted(),
                vec![Set(
                    F::PostedInterruptDescriptorAddress,
                    layout::SPARE | 0x20,
                )],
            ]),
        ),
        r(
            C::VpidZero,
            vec![p2(P2::ENABLE_VPID), Set(F::VirtualProcessorId, 0)],
        ),
        r(
            C::EptpMemoryType,
            cat(&[ept(), vec![Set(F::EptPointer, layout::EPT_PML4 | 0x1c)]]),
        ),
        r(
            C::EptpWalkLength,
            // A 3-level walk (bits 5:3 = 2), write-back: 4 and 5 levels are
            // the supported lengths.
            cat(&[ept(), vec![Set(F::EptPointer, layout::EPT_PML4 | 0x16)]]),
        ),
        r(
            C::EptpAccessedDirty,
            cat(&[ept(), vec![Set(F::EptPointer, layout::EPT_PML4 | 0x5e)]]),
        ),
        r(
            C::EptpReserved,
            cat(&[ept(), vec![Set(F::EptPointer, layout::EPT_PML4 | 0x9e)]]),
        ),
        all(C::PmlWithoutEpt, vec![p2(P2::ENABLE_PML)]),
        all(
            C::PmlAddress,
            cat(&[
                ept(),
                vec![p2(P2::ENABLE_PML), Set(F::PmlAddress, layout::SPARE | 1)],
            ]),
        ),
        r(
            C::UnrestrictedGuestWithoutEpt,
            vec![p2(P2::UNRESTRICTED_GUEST)],
        ),
        all(
            C::VmFunctionControlsReserved,
            vec![p2(P2::ENABLE_VM_FUNCTIONS), Set(F::VmFunctionControls, 2)],
        ),
        all(
            C::EptpSwitchingWithoutEpt,
            vec![p2(P2::ENABLE_VM_FUNCTIONS), Set(F::VmFunctionControls, 1)],
        ),
        all(
            C::EptpListAddress,
            cat(&[
                ept(),
                vec![
                    p2(P2::ENABLE_VM_FUNCTIONS),
                    Set(F::VmFunctionControls, 1),
                    Set(F::EptpListAddress, layout::SPARE | 8),
                ],
            ]),
        ),
        at(
            all(
                C::VmcsShadowingBitmapAddress,
                vec![
                    p2(P2::VMCS_SHADOWING),
                    Set(F::VmreadBitmapAddress, layout::SPARE),
                    Set(F::VmwriteBitmapAddress, layout::SPARE | 4),
                ],
            ),
            F::VmwriteBitmapAddress,
        ),
        all(
            C::VeInformationAddress,
            cat(&[
                ept(),
                vec![
                    p2(P2::EPT_VIOLATION_VE),
                    Set(F::VeInformationAddress, layout::SPARE | 0x10),
                ],
            ]),
        ),
        r(C::ExitControlsReserved, vec![Clear(F::ExitControls, 1)]),
        r(
            C::SavePreemptionTimerWithoutTimer,
            vec![Or(F::ExitControls, Ex::SAVE_PREEMPTION_TIMER.bits() as u64)],
        ),
        r(
            C::ExitMsrStoreAddress,
            vec![
                Set(F::ExitMsrStoreCount, 1),
                Set(F::ExitMsrStoreAddress, layout::EXIT_MSR_STORE | 8),
            ],
        ),
        r(
            C::ExitMsrStoreAreaEnd,
            area_end(F::ExitMsrStoreAddress, F::ExitMsrStoreCount),
        ),
        r(
            C::ExitMsrLoadAddress,
            vec![Set(F::ExitMsrLoadCount, 1), Set(F::ExitMsrLoadAddress, FAR)],
        ),
        r(
            C::ExitMsrLoadAreaEnd,
            area_end(F::ExitMsrLoadAddress, F::ExitMsrLoadCount),
        ),
        r(
            C::EntryControlsReserved,
            vec![Or(F::EntryControls, En::ENTRY_TO_SMM.bits() as u64)],
        ),
        r(
            C::EventInjectionType,
            vec![Set(F::EntryInterruptionInfo, 0x8000_0100)],
        ),
        r(
            C::EventInjectionVector,
            vec![Set(F::EntryInterruptionInfo, 0x8000_0203)],
        ),
        r(
            C::EventInjectionDeliverErrorCode,
            vec![Set(F::EntryInterruptionInfo, 0x8000_030d)],
        ),
        r(
            C::EventInjectionReserved,
            vec![Set(F::EntryInterruptionInfo, 0x8000_1306)],
        ),
        r(
            C::EventInjectionErrorCodeReserved,
            vec![
                Set(F::EntryInterruptionInfo, 0x8000_0b0d),
                Set(F::EntryExceptionErrorCode, 0x1_0000),
            ],
        ),
        r(
            C::EventInjectionInstructionLength,
            vec![
                Set(F::EntryInterruptionInfo, 0x8000_0480),
                Set(F::EntryInstructionLength, 16),
            ],
        ),
        r(
            C::EntryMsrLoadAddress,
            vec![
                Set(F::EntryMsrLoadCount, 1),
                Set(F::EntryMsrLoadAddress, layout::ENTRY_MSR_LOAD | 4),
            ],
        ),
        r(
            C::EntryMsrLoadAreaEnd,
            area_end(F::EntryMsrLoadAddress, F::EntryMsrLoadCount),
        ),
    ]
}

pub fn host_recipes() -> Vec<Recipe> {
    // A 32-bit host: without "load IA32_EFER" too, whose LMA/LME would
    // disagree first (HostEferAddressSpaceSize, SDM 27.2.2 before 27.2.3).
    let host32_exit = (Ex::HOST_ADDRESS_SPACE_SIZE | Ex::LOAD_EFER).bits() as u64;
    vec![
        r(C::HostCr0Fixed, vec![Clear(F::HostCr0, 0x20)]),
        r(C::HostCr4Fixed, vec![Clear(F::HostCr4, 0x2000)]),
        r(C::HostCr3Width, vec![Set(F::HostCr3, FAR)]),
        r(
            C::HostSysenterEspCanonical,
            vec![Set(F::HostSysenterEsp, CANON_BAD)],
        ),
        r(
            C::HostSysenterEipCanonical,
            vec![Set(F::HostSysenterEip, CANON_BAD)],
        ),
        r(
            C::HostPatInvalid,
            vec![
                Or(F::ExitControls, Ex::LOAD_PAT.bits() as u64),
                Set(F::HostPat, 2),
            ],
        ),
        r(
            C::HostEferReserved,
            vec![
                Or(F::ExitControls, Ex::LOAD_EFER.bits() as u64),
                Set(F::HostEfer, 0x502),
            ],
        ),
        r(
            C::HostEferAddressSpaceSize,
            vec![
                Or(F::ExitControls, Ex::LOAD_EFER.bits() as u64),
                Set(F::HostEfer, 0x100),
            ],
        ),
        at(
            r(C::HostSelectorRplTi, vec![Set(F::HostDsSelector, 0x13)]),
            F::HostDsSelector,
        ),
        r(C::HostCsSelectorNull, vec![Set(F::HostCsSelector, 0)]),
        r(C::HostTrSelectorNull, vec![Set(F::HostTrSelector, 0)]),
        r(
            C::HostSsSelectorNull,
            vec![
                Clear(F::ExitControls, host32_exit),
                Set(F::HostSsSelector, 0),
            ],
        ),
        at(
            r(C::HostBaseCanonical, vec![Set(F::HostGsBase, CANON_BAD)]),
            F::HostGsBase,
        ),
        r(
            C::InIa32eWithoutHostAddressSpaceSize,
            vec![Clear(F::ExitControls, host32_exit)],
        ),
        r(C::Host64WithoutPae, vec![Set(F::HostCr4, 0x2000)]),
        r(C::Host64RipCanonical, vec![Set(F::HostRip, CANON_BAD)]),
    ]
}

/// Checks that need the L1 outside IA-32e mode (a 32-bit host), run by
/// [`host_outside_ia32e`].
pub const HOST32: [C; 4] = [
    C::OutsideIa32eWithIa32eGuest,
    C::OutsideIa32eWithHostAddressSpaceSize,
    C::Host32Pcide,
    C::Host32RipHigh,
];

pub fn recipes() -> Vec<Recipe> {
    use super::guest_recipes::*;
    let mut v = control_recipes();
    v.extend(host_recipes());
    v.extend(guest_register_recipes());
    v.extend(guest_segment_recipes());
    v.extend(guest_state_recipes());
    v
}
