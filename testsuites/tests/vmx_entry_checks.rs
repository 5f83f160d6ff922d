//! Every VM-entry check of SDM Vol. 3C 27.2-27.4, end to end: for each
//! `CheckId` of vmx-model's table, an L1 hypervisor writes the known-good
//! VMCS, breaks exactly that rule, executes VMLAUNCH, and records the
//! architectural outcome (VMfailValid(7) or (8) with ZF and the
//! VM-instruction error, or the VM-entry failure exit 33/34 with its
//! qualification). The host side then checks that outcome and that the
//! machine's diagnostic named that rule and that field, in order.
//!
//! Checks of features the default preset does not advertise (APIC
//! virtualization, posted interrupts, PML, VM functions, VMCS shadowing,
//! #VE) run under vmx-model's `everything` preset; the implementation-
//! specific NMI/STI rule under a preset that enables it; the rules about a
//! host outside IA-32e mode with a 32-bit L1.

mod vmx_common;

use guestkit::vmx::{layout, poke, vmclr, vmor, vmw, VmxCase};
use guestkit::{Asm, AsmResult};
use iced_x86::code_asm::*;
use mmu::msr;
use nestemu::MachineConfig;
use testsuites::config;
use vmx_common::*;
use vmx_model::controls::{
    EntryControls as En, ExitControls as Ex, PinControls as Pin, Proc2Controls as P2,
    ProcControls as P1,
};
use vmx_model::entry::{CheckClass, CheckId as C};
use vmx_model::{Field as F, VmxFeatures};

/// One change to the known-good state.
#[derive(Clone, Copy, Debug)]
enum Op {
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
use Op::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Preset {
    Default,
    Everything,
    StrictNmi,
}

struct Recipe {
    id: C,
    preset: Preset,
    ops: Vec<Op>,
    field: Option<F>,
    msr_index: u64,
}

fn r(id: C, ops: Vec<Op>) -> Recipe {
    Recipe {
        id,
        preset: Preset::Default,
        ops,
        field: None,
        msr_index: 0,
    }
}

fn all(id: C, ops: Vec<Op>) -> Recipe {
    Recipe {
        preset: Preset::Everything,
        ..r(id, ops)
    }
}

fn at(mut x: Recipe, f: F) -> Recipe {
    x.field = Some(f);
    x
}

const FAR: u64 = 1 << 50;
const CANON_BAD: u64 = 0x8000_0000_0000;
const NMI: u64 = 0x8000_0202;
const EXT_INT: u64 = 0x8000_0020;

fn cat(v: &[Vec<Op>]) -> Vec<Op> {
    v.concat()
}
fn p1(b: P1) -> Op {
    Or(F::PrimaryProcBasedControls, b.bits() as u64)
}
fn p2(b: P2) -> Op {
    Or(F::SecondaryProcBasedControls, b.bits() as u64)
}
fn tpr_shadow() -> Vec<Op> {
    vec![
        p1(P1::USE_TPR_SHADOW),
        Set(F::VirtualApicAddress, layout::VIRTUAL_APIC),
        Mem(layout::VIRTUAL_APIC + 0x80, 0),
    ]
}
fn ept() -> Vec<Op> {
    vec![p2(P2::ENABLE_EPT), Set(F::EptPointer, layout::EPTP)]
}
fn unrestricted() -> Vec<Op> {
    cat(&[ept(), vec![p2(P2::UNRESTRICTED_GUEST)]])
}
fn posted() -> Vec<Op> {
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
fn pae_guest() -> Vec<Op> {
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
fn v86_guest() -> Vec<Op> {
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
fn usable_ldtr() -> Vec<Op> {
    vec![
        Set(F::GuestLdtrSelector, 0x28),
        Set(F::GuestLdtrLimit, 0xffff),
        Set(F::GuestLdtrAccessRights, 0x82),
    ]
}
fn ldtr_ar(ar: u64) -> Vec<Op> {
    cat(&[usable_ldtr(), vec![Set(F::GuestLdtrAccessRights, ar)]])
}
fn area_end(a: F, c: F) -> Vec<Op> {
    vec![Set(a, (1 << 46) - 16), Set(c, 2)]
}
/// An entry MSR-load area of two entries, the second bad.
fn entry_msrs(bad: u32, reserved: bool) -> Vec<Op> {
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
fn msr_case(id: C, ops: Vec<Op>, index: u64) -> Recipe {
    Recipe {
        msr_index: index,
        ..r(id, ops)
    }
}

fn control_recipes() -> Vec<Recipe> {
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
            cat(&[ept(), vec![Set(F::EptPointer, layout::EPT_PML4 | 0x26)]]),
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

fn host_recipes() -> Vec<Recipe> {
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

fn guest_register_recipes() -> Vec<Recipe> {
    let load_efer = Or(F::EntryControls, En::LOAD_EFER.bits() as u64);
    vec![
        r(C::GuestCr0Fixed, vec![Clear(F::GuestCr0, 0x20)]),
        r(
            C::GuestCr0PgWithoutPe,
            cat(&[unrestricted(), vec![Clear(F::GuestCr0, 1)]]),
        ),
        r(C::GuestCr4Fixed, vec![Clear(F::GuestCr4, 0x2000)]),
        r(
            C::GuestDebugctlReserved,
            vec![
                Or(F::EntryControls, En::LOAD_DEBUG_CONTROLS.bits() as u64),
                Set(F::GuestDebugctl, 4),
            ],
        ),
        r(
            C::GuestIa32eWithoutPg,
            cat(&[unrestricted(), vec![Clear(F::GuestCr0, 1 << 31)]]),
        ),
        r(C::GuestIa32eWithoutPae, vec![Clear(F::GuestCr4, 0x20)]),
        all(
            C::GuestPcideOutsideIa32e,
            cat(&[pae_guest(), vec![Or(F::GuestCr4, 1 << 17)]]),
        ),
        r(C::GuestCr3Width, vec![Set(F::GuestCr3, FAR)]),
        r(
            C::GuestDr7High,
            vec![
                Or(F::EntryControls, En::LOAD_DEBUG_CONTROLS.bits() as u64),
                Set(F::GuestDr7, (1 << 32) | 0x400),
            ],
        ),
        r(
            C::GuestSysenterEspCanonical,
            vec![Set(F::GuestSysenterEsp, CANON_BAD)],
        ),
        r(
            C::GuestSysenterEipCanonical,
            vec![Set(F::GuestSysenterEip, CANON_BAD)],
        ),
        r(
            C::GuestPatInvalid,
            vec![
                Or(F::EntryControls, En::LOAD_PAT.bits() as u64),
                Set(F::GuestPat, 0x0200),
            ],
        ),
        r(
            C::GuestEferReserved,
            vec![load_efer, Set(F::GuestEfer, 0x502)],
        ),
        r(C::GuestEferLma, vec![load_efer, Set(F::GuestEfer, 0x100)]),
        r(C::GuestEferLme, vec![load_efer, Set(F::GuestEfer, 0x400)]),
    ]
}

fn guest_segment_recipes() -> Vec<Recipe> {
    vec![
        r(C::GuestTrSelectorTi, vec![Set(F::GuestTrSelector, 0x1c)]),
        r(
            C::GuestLdtrSelectorTi,
            cat(&[usable_ldtr(), vec![Set(F::GuestLdtrSelector, 0x2c)]]),
        ),
        r(C::GuestSsRplNotCsRpl, vec![Set(F::GuestSsSelector, 0x13)]),
        at(
            r(
                C::GuestV86Base,
                cat(&[v86_guest(), vec![Set(F::GuestDsBase, 0)]]),
            ),
            F::GuestDsBase,
        ),
        at(
            r(C::GuestBaseCanonical, vec![Set(F::GuestFsBase, CANON_BAD)]),
            F::GuestFsBase,
        ),
        at(
            r(
                C::GuestBaseCanonical,
                cat(&[usable_ldtr(), vec![Set(F::GuestLdtrBase, CANON_BAD)]]),
            ),
            F::GuestLdtrBase,
        ),
        r(C::GuestCsBaseHigh, vec![Set(F::GuestCsBase, 1 << 32)]),
        at(
            r(C::GuestDataBaseHigh, vec![Set(F::GuestDsBase, 1 << 32)]),
            F::GuestDsBase,
        ),
        at(
            r(
                C::GuestV86Limit,
                cat(&[v86_guest(), vec![Set(F::GuestEsLimit, 0xf_ffff)]]),
            ),
            F::GuestEsLimit,
        ),
        at(
            r(
                C::GuestV86AccessRights,
                cat(&[v86_guest(), vec![Set(F::GuestGsAccessRights, 0xf2)]]),
            ),
            F::GuestGsAccessRights,
        ),
        r(
            C::GuestCsAccessRightsType,
            vec![Set(F::GuestCsAccessRights, 0xa093)],
        ),
        r(
            C::GuestCsAccessRightsTypeWithUnrestrictedGuest,
            cat(&[unrestricted(), vec![Set(F::GuestCsAccessRights, 0xa091)]]),
        ),
        r(
            C::GuestSsAccessRightsType,
            vec![Set(F::GuestSsAccessRights, 0xc091)],
        ),
        at(
            r(
                C::GuestDataAccessRightsAccessed,
                vec![Set(F::GuestDsAccessRights, 0xc092)],
            ),
            F::GuestDsAccessRights,
        ),
        at(
            r(
                C::GuestDataAccessRightsCodeReadable,
                vec![Set(F::GuestEsAccessRights, 0xc099)],
            ),
            F::GuestEsAccessRights,
        ),
        at(
            r(
                C::GuestSegAccessRightsS,
                vec![Set(F::GuestSsAccessRights, 0xc083)],
            ),
            F::GuestSsAccessRights,
        ),
        r(
            C::GuestCsDplDataType,
            cat(&[unrestricted(), vec![Set(F::GuestCsAccessRights, 0xc0f3)]]),
        ),
        r(
            C::GuestCsDplNonConforming,
            vec![Set(F::GuestCsAccessRights, 0xa0fb)],
        ),
        r(
            C::GuestCsDplConforming,
            vec![Set(F::GuestCsAccessRights, 0xa0ff)],
        ),
        r(
            C::GuestSsDplRpl,
            vec![
                Set(F::GuestCsAccessRights, 0xa09f),
                Set(F::GuestSsAccessRights, 0xc0f3),
            ],
        ),
        r(
            C::GuestSsDplRealOrDataCs,
            cat(&[
                unrestricted(),
                vec![
                    Set(F::GuestCsAccessRights, 0xc093),
                    Set(F::GuestSsAccessRights, 0xc0b3),
                ],
            ]),
        ),
        at(
            r(C::GuestDataDplRpl, vec![Set(F::GuestDsSelector, 0x13)]),
            F::GuestDsAccessRights,
        ),
        at(
            r(
                C::GuestSegAccessRightsPresent,
                vec![Set(F::GuestFsAccessRights, 0xc013)],
            ),
            F::GuestFsAccessRights,
        ),
        at(
            r(
                C::GuestSegAccessRightsReserved11To8,
                vec![Set(F::GuestGsAccessRights, 0xc193)],
            ),
            F::GuestGsAccessRights,
        ),
        r(C::GuestCsDbWithL, vec![Set(F::GuestCsAccessRights, 0xe09b)]),
        at(
            r(
                C::GuestSegGranularity,
                vec![Set(F::GuestSsLimit, 0xffff_0000)],
            ),
            F::GuestSsAccessRights,
        ),
        at(
            r(
                C::GuestSegAccessRightsReserved31To17,
                vec![Set(F::GuestGsAccessRights, 0x2_c093)],
            ),
            F::GuestGsAccessRights,
        ),
        r(C::GuestTrType, vec![Set(F::GuestTrAccessRights, 0x83)]),
        r(C::GuestTrS, vec![Set(F::GuestTrAccessRights, 0x9b)]),
        r(C::GuestTrPresent, vec![Set(F::GuestTrAccessRights, 0x0b)]),
        r(
            C::GuestTrReserved11To8,
            vec![Set(F::GuestTrAccessRights, 0x18b)],
        ),
        r(C::GuestTrGranularity, vec![Set(F::GuestTrLimit, 0x10_0000)]),
        r(
            C::GuestTrUnusable,
            vec![Set(F::GuestTrAccessRights, 0x1_008b)],
        ),
        r(
            C::GuestTrReserved31To17,
            vec![Set(F::GuestTrAccessRights, 0x2_008b)],
        ),
        r(C::GuestLdtrType, ldtr_ar(0x83)),
        r(C::GuestLdtrS, ldtr_ar(0x92)),
        r(C::GuestLdtrPresent, ldtr_ar(0x02)),
        r(C::GuestLdtrReserved11To8, ldtr_ar(0x182)),
        r(
            C::GuestLdtrGranularity,
            cat(&[usable_ldtr(), vec![Set(F::GuestLdtrLimit, 0x10_0000)]]),
        ),
        r(C::GuestLdtrReserved31To17, ldtr_ar(0x2_0082)),
        at(
            r(
                C::GuestDescriptorTableBaseCanonical,
                vec![Set(F::GuestIdtrBase, CANON_BAD)],
            ),
            F::GuestIdtrBase,
        ),
        r(
            C::GuestDescriptorTableLimitHigh,
            vec![Set(F::GuestGdtrLimit, 0x1_0000)],
        ),
        r(
            C::GuestRipHigh,
            vec![
                Set(F::GuestCsAccessRights, 0xc09b),
                Set(F::GuestRip, 1 << 32),
            ],
        ),
        r(C::GuestRipCanonical, vec![Set(F::GuestRip, CANON_BAD)]),
        r(C::GuestRflagsReserved, vec![Set(F::GuestRflags, 0x8002)]),
        r(
            C::GuestRflagsVm,
            cat(&[
                v86_guest(),
                vec![Or(F::EntryControls, En::IA32E_MODE_GUEST.bits() as u64)],
            ]),
        ),
        r(
            C::GuestRflagsIfForExternalInterrupt,
            vec![Set(F::EntryInterruptionInfo, EXT_INT)],
        ),
    ]
}

fn guest_state_recipes() -> Vec<Recipe> {
    let link = |v: u64| Set(F::VmcsLinkPointer, v);
    vec![
        r(
            C::GuestActivityStateUnsupported,
            vec![Set(F::GuestActivityState, 2)],
        ),
        r(
            C::GuestActivityHltWithSsDpl,
            vec![
                Set(F::GuestCsSelector, 0x0b),
                Set(F::GuestCsAccessRights, 0xa09f),
                Set(F::GuestSsSelector, 0x13),
                Set(F::GuestSsAccessRights, 0xc0f3),
                Set(F::GuestActivityState, 1),
            ],
        ),
        r(
            C::GuestActivityNotActiveWithBlocking,
            vec![
                Set(F::GuestActivityState, 1),
                Set(F::GuestInterruptibility, 1),
                Set(F::GuestRflags, 0x202),
            ],
        ),
        r(
            C::GuestActivityBlocksInjectedEvent,
            vec![
                Set(F::GuestActivityState, 1),
                Set(F::EntryInterruptionInfo, 0x8000_0b0d),
            ],
        ),
        r(
            C::GuestInterruptibilityReserved,
            vec![Set(F::GuestInterruptibility, 1 << 5)],
        ),
        r(
            C::GuestInterruptibilityStiAndMovSs,
            vec![Set(F::GuestInterruptibility, 3), Set(F::GuestRflags, 0x202)],
        ),
        r(
            C::GuestInterruptibilityStiWithoutIf,
            vec![Set(F::GuestInterruptibility, 1)],
        ),
        r(
            C::GuestInterruptibilityBlockingWithExternalInterrupt,
            vec![
                Set(F::GuestRflags, 0x202),
                Set(F::GuestInterruptibility, 2),
                Set(F::EntryInterruptionInfo, EXT_INT),
            ],
        ),
        r(
            C::GuestInterruptibilityMovSsWithNmi,
            vec![
                Set(F::GuestInterruptibility, 2),
                Set(F::EntryInterruptionInfo, NMI),
            ],
        ),
        r(
            C::GuestInterruptibilitySmiOutsideSmm,
            vec![Set(F::GuestInterruptibility, 4)],
        ),
        Recipe {
            preset: Preset::StrictNmi,
            ..r(
                C::GuestInterruptibilityStiWithNmi,
                vec![
                    Set(F::GuestRflags, 0x202),
                    Set(F::GuestInterruptibility, 1),
                    Set(F::EntryInterruptionInfo, NMI),
                ],
            )
        },
        r(
            C::GuestInterruptibilityNmiBlockingWithVirtualNmi,
            vec![
                Or(
                    F::PinBasedControls,
                    (Pin::NMI_EXITING | Pin::VIRTUAL_NMIS).bits() as u64,
                ),
                Set(F::GuestInterruptibility, 8),
                Set(F::EntryInterruptionInfo, NMI),
            ],
        ),
        r(
            C::GuestInterruptibilityEnclave,
            vec![Set(F::GuestInterruptibility, 1 << 4)],
        ),
        r(
            C::GuestPendingDebugReserved,
            vec![Set(F::GuestPendingDebugExceptions, 1 << 4)],
        ),
        r(
            C::GuestPendingDebugBsWithTf,
            vec![Set(F::GuestRflags, 0x302), Set(F::GuestInterruptibility, 1)],
        ),
        r(
            C::GuestPendingDebugBsWithoutTf,
            vec![
                Set(F::GuestActivityState, 1),
                Set(F::GuestPendingDebugExceptions, 0x4000),
            ],
        ),
        r(C::GuestLinkPointerAlignment, vec![link(layout::VMCS2 | 4)]),
        r(C::GuestLinkPointerWidth, vec![link(FAR)]),
        r(
            C::GuestLinkPointerRevision,
            vec![Mem(layout::SPARE, 0x99), link(layout::SPARE)],
        ),
        all(
            C::GuestLinkPointerShadowIndicator,
            vec![
                p2(P2::VMCS_SHADOWING),
                Set(F::VmreadBitmapAddress, layout::IO_BITMAP_A),
                Set(F::VmwriteBitmapAddress, layout::IO_BITMAP_B),
                link(layout::VMCS2),
            ],
        ),
        r(C::GuestLinkPointerIsCurrent, vec![link(layout::VMCS)]),
        at(
            r(
                C::GuestPdpteReserved,
                cat(&[
                    pae_guest(),
                    vec![Mem(layout::GUEST32_TABLES + 8, 0x30_1003)],
                ]),
            ),
            F::GuestCr3,
        ),
        at(
            r(
                C::GuestPdpteReserved,
                cat(&[
                    pae_guest(),
                    ept(),
                    vec![
                        Set(F::GuestPdpte0, 0),
                        Set(F::GuestPdpte1, 0),
                        Set(F::GuestPdpte2, (1 << 50) | 1),
                        Set(F::GuestPdpte3, 0),
                    ],
                ]),
            ),
            F::GuestPdpte2,
        ),
        msr_case(
            C::MsrLoadCountExceeded,
            vec![
                Set(F::EntryMsrLoadAddress, layout::GUEST_DATA),
                Set(F::EntryMsrLoadCount, 513),
                Fill(layout::GUEST_DATA, 513),
            ],
            513,
        ),
        msr_case(C::MsrLoadFsGsBase, entry_msrs(msr::IA32_FS_BASE, false), 2),
        msr_case(C::MsrLoadX2apic, entry_msrs(0x808, false), 2),
        msr_case(C::MsrLoadSmmMonitorCtl, entry_msrs(0x9b, false), 2),
        msr_case(C::MsrLoadReserved, entry_msrs(msr::IA32_STAR, true), 2),
        msr_case(
            C::MsrLoadWrmsrFault,
            entry_msrs(msr::IA32_VMX_BASIC, false),
            2,
        ),
    ]
}

/// Checks that need the L1 outside IA-32e mode (a 32-bit host), run by
/// [`host_outside_ia32e`].
const HOST32: [C; 4] = [
    C::OutsideIa32eWithIa32eGuest,
    C::OutsideIa32eWithHostAddressSpaceSize,
    C::Host32Pcide,
    C::Host32RipHigh,
];

fn recipes() -> Vec<Recipe> {
    let mut v = control_recipes();
    v.extend(host_recipes());
    v.extend(guest_register_recipes());
    v.extend(guest_segment_recipes());
    v.extend(guest_state_recipes());
    v
}

fn emit(a: &mut Asm, ops: &[Op]) -> AsmResult {
    for op in ops {
        match *op {
            Set(f, v) => vmw(a, f, v)?,
            Or(f, v) => vmor(a, f, v)?,
            Clear(f, v) => vmclr(a, f, v)?,
            Mem(addr, v) => poke(a, addr, v)?,
            Fill(addr, n) => {
                let mut lp = a.label();
                a.mov(rdi, addr)?;
                a.xor(ecx, ecx)?;
                a.set(&mut lp)?;
                a.mov(dword_ptr(rdi), msr::IA32_TSC_AUX)?;
                a.mov(dword_ptr(rdi + 4), 0i32)?;
                a.mov(qword_ptr(rdi + 8), rcx)?;
                a.add(rdi, 16i32)?;
                a.inc(ecx)?;
                a.cmp(ecx, n as i32)?;
                a.jb(lp.l)?;
            }
        }
    }
    Ok(())
}

/// The architectural outcome a failed check produces.
fn outcome(id: C, msr_index: u64) -> Vec<Check> {
    match id.class() {
        CheckClass::Control | CheckClass::Host => {
            let n = id.class().error().map_or(0, |e| e.number() as u64);
            vec![
                that("VMfailValid: ZF set, CF clear", |r| {
                    r.launch_rflags & 0x41 == 0x40
                }),
                Box::new(move |r| {
                    (r.launch_error == n).then_some(()).ok_or_else(|| {
                        format!("VM-instruction error {}, expected {n}", r.launch_error)
                    })
                }),
                that("no exit", |r| r.exits.is_empty()),
            ]
        }
        CheckClass::Guest(q) => vec![reason(0, 0x8000_0021), qual(0, q as u64), exits(1)],
        CheckClass::MsrLoad => vec![reason(0, 0x8000_0022), qual(0, msr_index), exits(1)],
    }
}

fn config_for(p: Preset) -> MachineConfig {
    let mut cfg = config();
    cfg.model.vmx = match p {
        Preset::Default => None,
        Preset::Everything => Some(VmxFeatures::everything()),
        Preset::StrictNmi => {
            let mut f = VmxFeatures::intel();
            f.misc.nmi_injection_requires_no_sti_blocking = true;
            Some(f)
        }
    };
    cfg
}

/// Runs the recipes of one preset and checks outcomes and diagnostics.
fn run_preset(p: Preset, recipes: &[&Recipe]) -> usize {
    let mut t = Table::default();
    let mut expected = Vec::new();
    for (k, x) in recipes.iter().enumerate() {
        let ops = x.ops.clone();
        let name = format!("{k:03} {:?}", x.id);
        t.case(
            VmxCase::guest(&name, |a, _| a.nop()).setup(move |a, _| emit(a, &ops)),
            outcome(x.id, x.msr_index),
        );
        expected.push((x.id, x.field.or(x.id.field())));
    }
    let run = t.run_with(config_for(p));
    let got: Vec<_> = run
        .outcome
        .machine
        .virt
        .vmx
        .diag
        .failures
        .iter()
        .map(|f| (f.check.id, f.check.field))
        .collect();
    let wrong: Vec<String> = expected
        .iter()
        .zip(
            got.iter()
                .chain(core::iter::repeat(&(C::PinBasedReserved, None))),
        )
        .filter(|(e, g)| e != g)
        .map(|(e, g)| format!("expected {e:?}, diagnosed {g:?}"))
        .collect();
    assert!(
        wrong.is_empty() && got.len() == expected.len(),
        "{p:?}: {} failures diagnosed for {} cases; mismatches:\n{}",
        got.len(),
        expected.len(),
        wrong.join("\n")
    );
    expected.len()
}

#[test]
fn every_entry_check_violated_alone_fails_with_its_outcome_and_names_itself() {
    let all = recipes();
    let mut n = 0;
    for p in [Preset::Default, Preset::Everything, Preset::StrictNmi] {
        let these: Vec<&Recipe> = all.iter().filter(|x| x.preset == p).collect();
        n += run_preset(p, &these);
    }
    eprintln!("vmx entry checks: {n} cases passed");
}

/// The checks of SDM Vol. 3C 27.2.4 that need the processor outside IA-32e
/// mode: a 32-bit L1 (protected mode with 4-MiB pages) runs VMXON and breaks
/// each rule on a VMCS whose controls and host state are otherwise valid
/// (the guest state is never reached). 32-bit VMWRITE cannot set bits 63:32
/// of a natural-width field, so for the host RIP the case writes the high
/// half into the VMCS region before VMPTRLD, using nestemu's region layout.
#[test]
fn host_outside_ia32e_mode() {
    use guestkit::layout::sel;
    use guestkit::Program;
    use testsuites::check::{gpr as kgpr, no_exception, verify};
    const PD: u64 = 0x190_0000;
    let ptr32 = |v: u64| dword_ptr(v as u32 as u64);
    let mut p = Program::new();
    p.no_long_mode = true;
    p.prot_case("32-bit L1: paging and VMXON", move |a| {
        let mut fill = a.label();
        a.mov(edi, PD as i32)?;
        a.mov(eax, 0x83i32)?;
        a.mov(ecx, 1024i32)?;
        a.set(&mut fill)?;
        a.mov(dword_ptr(edi), eax)?;
        a.add(eax, 0x40_0000i32)?;
        a.add(edi, 4i32)?;
        a.dec(ecx)?;
        a.jnz(fill.l)?;
        a.mov(eax, cr4)?;
        a.or(eax, 0x2010i32)?;
        a.mov(cr4, eax)?;
        a.mov(eax, PD as i32)?;
        a.mov(cr3, eax)?;
        a.mov(eax, cr0)?;
        a.or(eax, 0x8000_0020u32 as i32)?;
        a.mov(cr0, eax)?;
        a.mov(ecx, msr::IA32_FEATURE_CONTROL)?;
        a.mov(eax, 5i32)?;
        a.xor(edx, edx)?;
        a.wrmsr()?;
        a.mov(ecx, msr::IA32_VMX_BASIC)?;
        a.rdmsr()?;
        a.and(eax, 0x7fff_ffffi32)?;
        a.mov(ptr32(layout::VMXON), eax)?;
        a.mov(ptr32(layout::VMCS), eax)?;
        a.mov(ptr32(layout::SCRATCH), layout::VMXON as i32)?;
        a.mov(ptr32(layout::SCRATCH + 4), 0i32)?;
        a.vmxon(qword_ptr(layout::SCRATCH as u32 as u64))?;
        a.pushfd()?;
        a.pop(ebx)
    });
    for id in HOST32 {
        p.prot_case(&format!("{id:?}"), move |a| {
            let vmcs = qword_ptr(layout::SCRATCH as u32 as u64);
            a.mov(ptr32(layout::SCRATCH), layout::VMCS as i32)?;
            a.vmclear(vmcs)?;
            if id == C::Host32RipHigh {
                let off = vmx_model::vmcs::Region::field_offset(F::HostRip);
                a.mov(ptr32(layout::VMCS + off + 4), 1i32)?;
            }
            a.vmptrld(vmcs)?;
            let w = |a: &mut Asm, f: F, v: u64| -> AsmResult {
                a.mov(ecx, v as u32)?;
                a.mov(eax, f.encoding())?;
                a.vmwrite(eax, ecx)
            };
            let mut entry = 0u64;
            let mut exit = 0u64;
            if id == C::OutsideIa32eWithIa32eGuest {
                entry = En::IA32E_MODE_GUEST.bits() as u64;
            }
            if id == C::OutsideIa32eWithHostAddressSpaceSize {
                exit = Ex::HOST_ADDRESS_SPACE_SIZE.bits() as u64;
            }
            for (cap, f, want) in [
                (msr::IA32_VMX_TRUE_PINBASED_CTLS, F::PinBasedControls, 0),
                (
                    msr::IA32_VMX_TRUE_PROCBASED_CTLS,
                    F::PrimaryProcBasedControls,
                    0,
                ),
                (msr::IA32_VMX_TRUE_EXIT_CTLS, F::ExitControls, exit),
                (msr::IA32_VMX_TRUE_ENTRY_CTLS, F::EntryControls, entry),
            ] {
                a.mov(ecx, cap)?;
                a.rdmsr()?;
                a.mov(ecx, want as u32)?;
                a.or(ecx, eax)?;
                a.and(ecx, edx)?;
                a.mov(eax, f.encoding())?;
                a.vmwrite(eax, ecx)?;
            }
            a.mov(ecx, cr0)?;
            a.mov(eax, F::HostCr0.encoding())?;
            a.vmwrite(eax, ecx)?;
            a.mov(ecx, cr3)?;
            a.mov(eax, F::HostCr3.encoding())?;
            a.vmwrite(eax, ecx)?;
            a.mov(ecx, cr4)?;
            if id == C::Host32Pcide {
                a.or(ecx, 1 << 17)?;
            }
            a.mov(eax, F::HostCr4.encoding())?;
            a.vmwrite(eax, ecx)?;
            for (f, v) in [
                (F::HostCsSelector, sel::CODE32 as u64),
                (F::HostSsSelector, sel::DATA as u64),
                (F::HostDsSelector, sel::DATA as u64),
                (F::HostEsSelector, sel::DATA as u64),
                (F::HostFsSelector, sel::DATA as u64),
                (F::HostGsSelector, sel::DATA as u64),
                (F::HostTrSelector, sel::TSS32 as u64),
                (F::HostRsp, layout::HOST_STACK_TOP),
                (F::VmcsLinkPointer, u64::MAX),
            ] {
                w(a, f, v)?;
            }
            if id != C::Host32RipHigh {
                w(a, F::HostRip, 0x10_0000)?;
            }
            a.vmlaunch()?;
            a.pushfd()?;
            a.pop(ebx)?;
            a.mov(eax, F::VmInstructionError.encoding())?;
            a.vmread(ecx, eax)
        });
    }
    p.prot_case("32-bit L1: VMXOFF", |a| a.vmxoff());
    let mut cfg = config_for(Preset::Everything);
    cfg.max_insns = Some(10_000_000);
    let o = testsuites::run(&p, cfg);
    assert!(o.passed(), "stop {:?}, serial:\n{}", o.stop, o.serial);
    let mut table = vec![(
        "32-bit L1: paging and VMXON".to_string(),
        vec![
            no_exception(),
            testsuites::check::that("VMsucceed", |r| r.gprs[3] & 0x41 == 0),
        ],
    )];
    for id in HOST32 {
        table.push((
            format!("{id:?}"),
            vec![
                no_exception(),
                testsuites::check::that("VMfailValid", |r| r.gprs[3] & 0x41 == 0x40),
                kgpr(1, 8),
            ],
        ));
    }
    verify(&o, &table);
    let got: Vec<_> = o
        .machine
        .virt
        .vmx
        .diag
        .failures
        .iter()
        .map(|f| f.check.id)
        .collect();
    assert_eq!(got, HOST32.to_vec(), "diagnosed rules");
}

#[test]
fn every_check_of_the_table_has_a_case() {
    let all = recipes();
    let missing: Vec<_> = C::ALL
        .iter()
        .filter(|id| !all.iter().any(|x| x.id == **id) && !HOST32.contains(*id))
        .collect();
    assert!(missing.is_empty(), "checks without a case: {missing:?}");
}
