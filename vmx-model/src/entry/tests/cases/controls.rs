//! Cases for SDM Vol. 3C 27.2: VMX controls and host state.

use super::*;
use crate::controls::{
    EntryControls as En, ExitControls as Ex, PinControls as Pin, Proc2Controls as P2,
    ProcControls as P1,
};
use crate::entry::CheckId as C;
use crate::mem::{Access, PhysMem};
use crate::testkit::addr;
use crate::vmcs::Field as F;
use mmu::Efer;

pub(super) static CASES: &[Case] = &[
    // 27.2.1.1
    case(C::PinBasedReserved, |m| {
        m.clear_bits(F::PinBasedControls, 2);
    }),
    case(C::PrimaryProcBasedReserved, |m| {
        m.clear_bits(F::PrimaryProcBasedControls, 2);
    }),
    case(C::SecondaryProcBasedReserved, |m| {
        m.enable2(P2::ENABLE_ENCLS_EXITING);
    }),
    case(C::Cr3TargetCount, |m| {
        m.set(F::Cr3TargetCount, 5);
    }),
    case(C::IoBitmapAddress, |m| {
        m.or(
            F::PrimaryProcBasedControls,
            P1::USE_IO_BITMAPS.bits() as u64,
        );
        m.set(F::IoBitmapA, addr::IO_BITMAP_A | 1)
            .set(F::IoBitmapB, addr::IO_BITMAP_B);
    }),
    at(
        case(C::IoBitmapAddress, |m| {
            m.or(
                F::PrimaryProcBasedControls,
                P1::USE_IO_BITMAPS.bits() as u64,
            );
            m.set(F::IoBitmapA, addr::IO_BITMAP_A)
                .set(F::IoBitmapB, FAR);
        }),
        F::IoBitmapB,
    ),
    case(C::MsrBitmapAddress, |m| {
        m.or(
            F::PrimaryProcBasedControls,
            P1::USE_MSR_BITMAPS.bits() as u64,
        );
        m.set(F::MsrBitmap, FAR);
    }),
    case(C::VirtualApicAddress, |m| {
        tpr_shadow(m);
        m.set(F::VirtualApicAddress, addr::VIRTUAL_APIC + 8);
    }),
    case(C::TprThresholdReserved, |m| {
        tpr_shadow(m);
        m.set(F::TprThreshold, 0x10);
    }),
    case(C::TprThresholdAboveVtpr, |m| {
        tpr_shadow(m);
        m.mem
            .write(addr::VIRTUAL_APIC + 0x80, &[0x20], Access::VirtualApic);
        m.set(F::TprThreshold, 3);
    }),
    case_all(C::ApicVirtualizationWithoutTprShadow, |m| {
        m.enable2(P2::VIRTUALIZE_X2APIC_MODE);
    }),
    case(C::VirtualNmisWithoutNmiExiting, |m| {
        m.or(F::PinBasedControls, Pin::VIRTUAL_NMIS.bits() as u64);
    }),
    case(C::NmiWindowWithoutVirtualNmis, |m| {
        m.or(
            F::PrimaryProcBasedControls,
            P1::NMI_WINDOW_EXITING.bits() as u64,
        );
    }),
    case_all(C::ApicAccessAddress, |m| {
        m.enable2(P2::VIRTUALIZE_APIC_ACCESSES);
        m.set(F::ApicAccessAddress, addr::APIC_ACCESS | 1);
    }),
    case_all(C::X2apicModeWithApicAccesses, |m| {
        tpr_shadow(m);
        m.enable2(P2::VIRTUALIZE_X2APIC_MODE | P2::VIRTUALIZE_APIC_ACCESSES);
        m.set(F::ApicAccessAddress, addr::APIC_ACCESS);
    }),
    case_all(C::VirtualInterruptDeliveryWithoutExtIntExiting, |m| {
        tpr_shadow(m);
        m.enable2(P2::VIRTUAL_INTERRUPT_DELIVERY);
    }),
    case_all(C::PostedInterruptsWithoutVirtualInterruptDelivery, |m| {
        posted(m);
        m.clear_bits(
            F::SecondaryProcBasedControls,
            P2::VIRTUAL_INTERRUPT_DELIVERY.bits() as u64,
        );
    }),
    case_all(C::PostedInterruptsWithoutAcknowledgeOnExit, |m| {
        posted(m);
        m.clear_bits(
            F::ExitControls,
            Ex::ACKNOWLEDGE_INTERRUPT_ON_EXIT.bits() as u64,
        );
    }),
    case_all(C::PostedInterruptNotificationVector, |m| {
        posted(m);
        m.set(F::PostedInterruptNotificationVector, 0x1f2);
    }),
    case_all(C::PostedInterruptDescriptorAddress, |m| {
        posted(m);
        m.set(F::PostedInterruptDescriptorAddress, addr::PI_DESC | 0x20);
    }),
    case(C::VpidZero, |m| {
        m.enable2(P2::ENABLE_VPID);
    }),
    case(C::EptpMemoryType, |m| {
        m.enable_ept();
        m.set(F::EptPointer, addr::EPT_PML4 | 0x1c);
    }),
    case(C::EptpWalkLength, |m| {
        m.enable_ept();
        m.set(F::EptPointer, addr::EPT_PML4 | 0x26);
    }),
    case(C::EptpAccessedDirty, |m| {
        m.enable_ept();
        m.set(F::EptPointer, addr::EPT_PML4 | 0x5e);
    }),
    case(C::EptpReserved, |m| {
        m.enable_ept();
        m.set(F::EptPointer, addr::EPT_PML4 | 0x9e);
    }),
    case_all(C::PmlWithoutEpt, |m| {
        m.enable2(P2::ENABLE_PML);
    }),
    case_all(C::PmlAddress, |m| {
        m.enable_ept().enable2(P2::ENABLE_PML);
        m.set(F::PmlAddress, addr::PML | 1);
    }),
    case(C::UnrestrictedGuestWithoutEpt, |m| {
        m.enable2(P2::UNRESTRICTED_GUEST);
    }),
    case_all(C::VmFunctionControlsReserved, |m| {
        m.enable2(P2::ENABLE_VM_FUNCTIONS);
        m.set(F::VmFunctionControls, 2);
    }),
    case_all(C::EptpSwitchingWithoutEpt, |m| {
        m.enable2(P2::ENABLE_VM_FUNCTIONS);
        m.set(F::VmFunctionControls, 1);
    }),
    case_all(C::EptpListAddress, |m| {
        m.enable_ept().enable2(P2::ENABLE_VM_FUNCTIONS);
        m.set(F::VmFunctionControls, 1)
            .set(F::EptpListAddress, addr::EPTP_LIST | 8);
    }),
    at(
        case_all(C::VmcsShadowingBitmapAddress, |m| {
            m.enable2(P2::VMCS_SHADOWING);
            m.set(F::VmreadBitmapAddress, addr::VMREAD_BITMAP);
            m.set(F::VmwriteBitmapAddress, addr::VMWRITE_BITMAP | 4);
        }),
        F::VmwriteBitmapAddress,
    ),
    case_all(C::VeInformationAddress, |m| {
        m.enable_ept().enable2(P2::EPT_VIOLATION_VE);
        m.set(F::VeInformationAddress, addr::VE_INFO | 0x10);
    }),
    // 27.2.1.2
    case(C::ExitControlsReserved, |m| {
        m.clear_bits(F::ExitControls, 1);
    }),
    case(C::SavePreemptionTimerWithoutTimer, |m| {
        m.or(F::ExitControls, Ex::SAVE_PREEMPTION_TIMER.bits() as u64);
    }),
    case(C::ExitMsrStoreAddress, |m| {
        m.set(F::ExitMsrStoreCount, 1)
            .set(F::ExitMsrStoreAddress, addr::EXIT_MSR_STORE | 8);
    }),
    case(C::ExitMsrStoreAreaEnd, |m| {
        msr_area_end(m, F::ExitMsrStoreAddress, F::ExitMsrStoreCount)
    }),
    case(C::ExitMsrLoadAddress, |m| {
        m.set(F::ExitMsrLoadCount, 1)
            .set(F::ExitMsrLoadAddress, FAR);
    }),
    case(C::ExitMsrLoadAreaEnd, |m| {
        msr_area_end(m, F::ExitMsrLoadAddress, F::ExitMsrLoadCount)
    }),
    // 27.2.1.3
    case(C::EntryControlsReserved, |m| {
        m.or(F::EntryControls, En::ENTRY_TO_SMM.bits() as u64);
    }),
    case(C::EventInjectionType, |m| {
        m.set(F::EntryInterruptionInfo, 0x8000_0100);
    }),
    case(C::EventInjectionVector, |m| {
        m.set(F::EntryInterruptionInfo, 0x8000_0203);
    }),
    case(C::EventInjectionDeliverErrorCode, |m| {
        m.set(F::EntryInterruptionInfo, 0x8000_030d);
    }),
    case(C::EventInjectionReserved, |m| {
        m.set(F::EntryInterruptionInfo, 0x8000_1306);
    }),
    case(C::EventInjectionErrorCodeReserved, |m| {
        m.set(F::EntryInterruptionInfo, 0x8000_0b0d)
            .set(F::EntryExceptionErrorCode, 0x1_0000);
    }),
    case(C::EventInjectionInstructionLength, |m| {
        m.set(F::EntryInterruptionInfo, 0x8000_0480)
            .set(F::EntryInstructionLength, 16);
    }),
    case(C::EntryMsrLoadAddress, |m| {
        m.set(F::EntryMsrLoadCount, 1)
            .set(F::EntryMsrLoadAddress, addr::ENTRY_MSR_LOAD | 4);
    }),
    case(C::EntryMsrLoadAreaEnd, |m| {
        msr_area_end(m, F::EntryMsrLoadAddress, F::EntryMsrLoadCount)
    }),
    // 27.2.2
    case(C::HostCr0Fixed, |m| {
        m.clear_bits(F::HostCr0, 0x20);
    }),
    case(C::HostCr4Fixed, |m| {
        m.clear_bits(F::HostCr4, 0x2000);
    }),
    case(C::HostCr3Width, |m| {
        m.set(F::HostCr3, FAR);
    }),
    case(C::HostSysenterEspCanonical, |m| {
        m.set(F::HostSysenterEsp, CANON_BAD);
    }),
    case(C::HostSysenterEipCanonical, |m| {
        m.set(F::HostSysenterEip, CANON_BAD);
    }),
    case(C::HostPatInvalid, |m| {
        m.or(F::ExitControls, Ex::LOAD_PAT.bits() as u64);
        m.set(F::HostPat, 2);
    }),
    case(C::HostEferReserved, |m| {
        m.or(F::ExitControls, Ex::LOAD_EFER.bits() as u64);
        m.set(F::HostEfer, 0x502);
    }),
    case(C::HostEferAddressSpaceSize, |m| {
        m.or(F::ExitControls, Ex::LOAD_EFER.bits() as u64);
        m.set(F::HostEfer, 0x100);
    }),
    // 27.2.3
    at(
        case(C::HostSelectorRplTi, |m| {
            m.set(F::HostDsSelector, 0x13);
        }),
        F::HostDsSelector,
    ),
    case(C::HostCsSelectorNull, |m| {
        m.set(F::HostCsSelector, 0);
    }),
    case(C::HostTrSelectorNull, |m| {
        m.set(F::HostTrSelector, 0);
    }),
    case(C::HostSsSelectorNull, |m| {
        m.clear_bits(F::ExitControls, Ex::HOST_ADDRESS_SPACE_SIZE.bits() as u64);
        m.set(F::HostSsSelector, 0);
    }),
    at(
        case(C::HostBaseCanonical, |m| {
            m.set(F::HostGsBase, CANON_BAD);
        }),
        F::HostGsBase,
    ),
    // 27.2.4
    case(C::OutsideIa32eWithIa32eGuest, |m| {
        m.ctx.efer = Efer::empty();
    }),
    case(C::OutsideIa32eWithHostAddressSpaceSize, |m| {
        m.ctx.efer = Efer::empty();
        m.clear_bits(F::EntryControls, En::IA32E_MODE_GUEST.bits() as u64);
    }),
    case(C::InIa32eWithoutHostAddressSpaceSize, |m| {
        m.clear_bits(F::ExitControls, Ex::HOST_ADDRESS_SPACE_SIZE.bits() as u64);
    }),
    case(C::Host32Pcide, |m| {
        host32(m);
        m.or(F::HostCr4, 1 << 17);
    }),
    case(C::Host32RipHigh, |m| {
        host32(m);
        m.set(F::HostRip, 1 << 32);
    }),
    case(C::Host64WithoutPae, |m| {
        m.set(F::HostCr4, 0x2000);
    }),
    case(C::Host64RipCanonical, |m| {
        m.set(F::HostRip, CANON_BAD);
    }),
];
