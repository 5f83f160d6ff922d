//! Cases for SDM Vol. 3C 27.3.1 (guest state) and 27.4 (MSR loading).

use super::*;
use crate::controls::{EntryControls as En, PinControls as Pin, Proc2Controls as P2};
use crate::entry::CheckId as C;
use crate::mem::{Access, PhysMemExt};
use crate::testkit::addr;
use crate::vmcs::Field as F;
use mmu::msr;

pub(super) static CASES: &[Case] = &[
    // 27.3.1.1
    case(C::GuestCr0Fixed, |m| {
        m.clear_bits(F::GuestCr0, 0x20);
    }),
    case(C::GuestCr0PgWithoutPe, |m| {
        m.enable_unrestricted();
        m.clear_bits(F::GuestCr0, 1);
    }),
    case(C::GuestCr4Fixed, |m| {
        m.clear_bits(F::GuestCr4, 0x2000);
    }),
    case(C::GuestDebugctlReserved, |m| {
        m.or(F::EntryControls, En::LOAD_DEBUG_CONTROLS.bits() as u64);
        m.set(F::GuestDebugctl, 4);
    }),
    case(C::GuestIa32eWithoutPg, |m| {
        m.enable_unrestricted();
        m.clear_bits(F::GuestCr0, 1 << 31);
    }),
    case(C::GuestIa32eWithoutPae, |m| {
        m.clear_bits(F::GuestCr4, 0x20);
    }),
    case(C::GuestPcideOutsideIa32e, |m| {
        m.make_pae_guest();
        m.or(F::GuestCr4, 1 << 17);
    }),
    case(C::GuestCr3Width, |m| {
        m.set(F::GuestCr3, FAR);
    }),
    case(C::GuestDr7High, |m| {
        m.or(F::EntryControls, En::LOAD_DEBUG_CONTROLS.bits() as u64);
        m.set(F::GuestDr7, (1 << 32) | 0x400);
    }),
    case(C::GuestSysenterEspCanonical, |m| {
        m.set(F::GuestSysenterEsp, CANON_BAD);
    }),
    case(C::GuestSysenterEipCanonical, |m| {
        m.set(F::GuestSysenterEip, CANON_BAD);
    }),
    case(C::GuestPatInvalid, |m| {
        m.or(F::EntryControls, En::LOAD_PAT.bits() as u64);
        m.set(F::GuestPat, 0x0200);
    }),
    case(C::GuestEferReserved, |m| {
        m.or(F::EntryControls, En::LOAD_EFER.bits() as u64);
        m.set(F::GuestEfer, 0x502);
    }),
    case(C::GuestEferLma, |m| {
        m.or(F::EntryControls, En::LOAD_EFER.bits() as u64);
        m.set(F::GuestEfer, 0x100);
    }),
    case(C::GuestEferLme, |m| {
        m.or(F::EntryControls, En::LOAD_EFER.bits() as u64);
        m.set(F::GuestEfer, 0x400);
    }),
    // 27.3.1.2
    case(C::GuestTrSelectorTi, |m| {
        m.set(F::GuestTrSelector, 0x1c);
    }),
    case(C::GuestLdtrSelectorTi, |m| {
        usable_ldtr(m);
        m.set(F::GuestLdtrSelector, 0x2c);
    }),
    case(C::GuestSsRplNotCsRpl, |m| {
        m.set(F::GuestSsSelector, 0x13);
    }),
    at(
        case(C::GuestV86Base, |m| {
            m.make_v86_guest();
            m.set(F::GuestDsBase, 0);
        }),
        F::GuestDsBase,
    ),
    at(
        case(C::GuestBaseCanonical, |m| {
            m.set(F::GuestFsBase, CANON_BAD);
        }),
        F::GuestFsBase,
    ),
    at(
        case(C::GuestBaseCanonical, |m| {
            usable_ldtr(m);
            m.set(F::GuestLdtrBase, CANON_BAD);
        }),
        F::GuestLdtrBase,
    ),
    case(C::GuestCsBaseHigh, |m| {
        m.set(F::GuestCsBase, 1 << 32);
    }),
    at(
        case(C::GuestDataBaseHigh, |m| {
            m.set(F::GuestDsBase, 1 << 32);
        }),
        F::GuestDsBase,
    ),
    at(
        case(C::GuestV86Limit, |m| {
            m.make_v86_guest();
            m.set(F::GuestEsLimit, 0xf_ffff);
        }),
        F::GuestEsLimit,
    ),
    at(
        case(C::GuestV86AccessRights, |m| {
            m.make_v86_guest();
            m.set(F::GuestGsAccessRights, 0xf2);
        }),
        F::GuestGsAccessRights,
    ),
    case(C::GuestCsAccessRightsType, |m| {
        m.set(F::GuestCsAccessRights, 0xa093);
    }),
    case(C::GuestCsAccessRightsTypeWithUnrestrictedGuest, |m| {
        m.enable_unrestricted();
        m.set(F::GuestCsAccessRights, 0xa091);
    }),
    case(C::GuestSsAccessRightsType, |m| {
        m.set(F::GuestSsAccessRights, 0xc091);
    }),
    at(
        case(C::GuestDataAccessRightsAccessed, |m| {
            m.set(F::GuestDsAccessRights, 0xc092);
        }),
        F::GuestDsAccessRights,
    ),
    at(
        case(C::GuestDataAccessRightsCodeReadable, |m| {
            m.set(F::GuestEsAccessRights, 0xc099);
        }),
        F::GuestEsAccessRights,
    ),
    at(
        case(C::GuestSegAccessRightsS, |m| {
            m.set(F::GuestSsAccessRights, 0xc083);
        }),
        F::GuestSsAccessRights,
    ),
    case(C::GuestCsDplDataType, |m| {
        m.enable_unrestricted();
        m.set(F::GuestCsAccessRights, 0xc0f3);
    }),
    case(C::GuestCsDplNonConforming, |m| {
        m.set(F::GuestCsAccessRights, 0xa0fb);
    }),
    case(C::GuestCsDplConforming, |m| {
        m.set(F::GuestCsAccessRights, 0xa0ff);
    }),
    case(C::GuestSsDplRpl, |m| {
        m.set(F::GuestCsAccessRights, 0xa09f)
            .set(F::GuestSsAccessRights, 0xc0f3);
    }),
    case(C::GuestSsDplRealOrDataCs, |m| {
        m.enable_unrestricted();
        m.set(F::GuestCsAccessRights, 0xc093)
            .set(F::GuestSsAccessRights, 0xc0b3);
    }),
    at(
        case(C::GuestDataDplRpl, |m| {
            m.set(F::GuestDsSelector, 0x13);
        }),
        F::GuestDsAccessRights,
    ),
    at(
        case(C::GuestSegAccessRightsPresent, |m| {
            m.set(F::GuestFsAccessRights, 0xc013);
        }),
        F::GuestFsAccessRights,
    ),
    at(
        case(C::GuestSegAccessRightsReserved11To8, |m| {
            m.set(F::GuestGsAccessRights, 0xc193);
        }),
        F::GuestGsAccessRights,
    ),
    case(C::GuestCsDbWithL, |m| {
        m.set(F::GuestCsAccessRights, 0xe09b);
    }),
    at(
        case(C::GuestSegGranularity, |m| {
            m.set(F::GuestSsLimit, 0xffff_0000);
        }),
        F::GuestSsAccessRights,
    ),
    at(
        case(C::GuestSegAccessRightsReserved31To17, |m| {
            m.set(F::GuestGsAccessRights, 0x2_c093);
        }),
        F::GuestGsAccessRights,
    ),
    case(C::GuestTrType, |m| {
        m.set(F::GuestTrAccessRights, 0x83);
    }),
    case(C::GuestTrS, |m| {
        m.set(F::GuestTrAccessRights, 0x9b);
    }),
    case(C::GuestTrPresent, |m| {
        m.set(F::GuestTrAccessRights, 0x0b);
    }),
    case(C::GuestTrReserved11To8, |m| {
        m.set(F::GuestTrAccessRights, 0x18b);
    }),
    case(C::GuestTrGranularity, |m| {
        m.set(F::GuestTrLimit, 0x10_0000);
    }),
    case(C::GuestTrUnusable, |m| {
        m.set(F::GuestTrAccessRights, 0x1_008b);
    }),
    case(C::GuestTrReserved31To17, |m| {
        m.set(F::GuestTrAccessRights, 0x2_008b);
    }),
    case(C::GuestLdtrType, |m| ldtr_ar(m, 0x83)),
    case(C::GuestLdtrS, |m| ldtr_ar(m, 0x92)),
    case(C::GuestLdtrPresent, |m| ldtr_ar(m, 0x02)),
    case(C::GuestLdtrReserved11To8, |m| ldtr_ar(m, 0x182)),
    case(C::GuestLdtrGranularity, |m| {
        usable_ldtr(m);
        m.set(F::GuestLdtrLimit, 0x10_0000);
    }),
    case(C::GuestLdtrReserved31To17, |m| ldtr_ar(m, 0x2_0082)),
    // 27.3.1.3
    at(
        case(C::GuestDescriptorTableBaseCanonical, |m| {
            m.set(F::GuestIdtrBase, CANON_BAD);
        }),
        F::GuestIdtrBase,
    ),
    case(C::GuestDescriptorTableLimitHigh, |m| {
        m.set(F::GuestGdtrLimit, 0x1_0000);
    }),
    // 27.3.1.4
    case(C::GuestRipHigh, |m| {
        m.set(F::GuestCsAccessRights, 0xc09b)
            .set(F::GuestRip, 1 << 32);
    }),
    case(C::GuestRipCanonical, |m| {
        m.set(F::GuestRip, CANON_BAD);
    }),
    case(C::GuestRflagsReserved, |m| {
        m.set(F::GuestRflags, 0x8002);
    }),
    case(C::GuestRflagsVm, |m| {
        m.make_v86_guest();
        m.or(F::EntryControls, En::IA32E_MODE_GUEST.bits() as u64);
    }),
    case(C::GuestRflagsIfForExternalInterrupt, |m| {
        m.set(F::EntryInterruptionInfo, EXT_INT);
    }),
    // 27.3.1.5
    case(C::GuestActivityStateUnsupported, |m| {
        m.set(F::GuestActivityState, 2);
    }),
    case(C::GuestActivityHltWithSsDpl, |m| {
        ss_dpl3(m);
        m.set(F::GuestActivityState, 1);
    }),
    case(C::GuestActivityNotActiveWithBlocking, |m| {
        m.set(F::GuestActivityState, 1)
            .set(F::GuestInterruptibility, 1)
            .set(F::GuestRflags, 0x202);
    }),
    case(C::GuestActivityBlocksInjectedEvent, |m| {
        m.set(F::GuestActivityState, 1)
            .set(F::EntryInterruptionInfo, 0x8000_0b0d);
    }),
    case(C::GuestInterruptibilityReserved, |m| {
        m.set(F::GuestInterruptibility, 1 << 5);
    }),
    case(C::GuestInterruptibilityStiAndMovSs, |m| {
        m.set(F::GuestInterruptibility, 3)
            .set(F::GuestRflags, 0x202);
    }),
    case(C::GuestInterruptibilityStiWithoutIf, |m| {
        m.set(F::GuestInterruptibility, 1);
    }),
    case(C::GuestInterruptibilityBlockingWithExternalInterrupt, |m| {
        m.set(F::GuestRflags, 0x202)
            .set(F::GuestInterruptibility, 2);
        m.set(F::EntryInterruptionInfo, EXT_INT);
    }),
    case(C::GuestInterruptibilityMovSsWithNmi, |m| {
        m.set(F::GuestInterruptibility, 2)
            .set(F::EntryInterruptionInfo, NMI);
    }),
    case(C::GuestInterruptibilitySmiOutsideSmm, |m| {
        m.set(F::GuestInterruptibility, 4);
    }),
    Case {
        caps: strict_nmi,
        ..case(C::GuestInterruptibilityStiWithNmi, |m| {
            m.set(F::GuestRflags, 0x202)
                .set(F::GuestInterruptibility, 1);
            m.set(F::EntryInterruptionInfo, NMI);
        })
    },
    case(C::GuestInterruptibilityNmiBlockingWithVirtualNmi, |m| {
        m.or(
            F::PinBasedControls,
            (Pin::NMI_EXITING | Pin::VIRTUAL_NMIS).bits() as u64,
        );
        m.set(F::GuestInterruptibility, 8)
            .set(F::EntryInterruptionInfo, NMI);
    }),
    case(C::GuestInterruptibilityEnclave, |m| {
        m.set(F::GuestInterruptibility, 1 << 4);
    }),
    case(C::GuestPendingDebugReserved, |m| {
        m.set(F::GuestPendingDebugExceptions, 1 << 4);
    }),
    case(C::GuestPendingDebugBsWithTf, |m| {
        m.set(F::GuestRflags, 0x302)
            .set(F::GuestInterruptibility, 1);
    }),
    case(C::GuestPendingDebugBsWithoutTf, |m| {
        m.set(F::GuestActivityState, 1)
            .set(F::GuestPendingDebugExceptions, 0x4000);
    }),
    case(C::GuestLinkPointerAlignment, |m| {
        m.set(F::VmcsLinkPointer, addr::VMCS2 | 4);
    }),
    case(C::GuestLinkPointerWidth, |m| {
        m.set(F::VmcsLinkPointer, FAR);
    }),
    case(C::GuestLinkPointerRevision, |m| {
        m.mem.write_u32(addr::VMCS2, 0x99, Access::Vmcs);
        m.set(F::VmcsLinkPointer, addr::VMCS2);
    }),
    case_all(C::GuestLinkPointerShadowIndicator, |m| {
        m.enable2(P2::VMCS_SHADOWING);
        m.set(F::VmreadBitmapAddress, addr::VMREAD_BITMAP);
        m.set(F::VmwriteBitmapAddress, addr::VMWRITE_BITMAP);
        m.set(F::VmcsLinkPointer, addr::VMCS2);
    }),
    case(C::GuestLinkPointerIsCurrent, |m| {
        m.set(F::VmcsLinkPointer, addr::VMCS);
    }),
    // 27.3.1.6
    at(
        case(C::GuestPdpteReserved, |m| {
            m.make_pae_guest();
            m.mem
                .write_u64(addr::GUEST_CR3 + 8, 0x30_1003, Access::Pdpte);
        }),
        F::GuestCr3,
    ),
    at(
        case(C::GuestPdpteReserved, |m| {
            m.make_pae_guest();
            m.enable_ept();
            m.set(F::GuestPdpte0, 0).set(F::GuestPdpte1, 0);
            m.set(F::GuestPdpte2, (1 << 50) | 1).set(F::GuestPdpte3, 0);
        }),
        F::GuestPdpte2,
    ),
    // 27.4
    Case {
        msr_index: 513,
        ..case(C::MsrLoadCountExceeded, |m| {
            m.set(F::EntryMsrLoadAddress, 0x20_0000)
                .set(F::EntryMsrLoadCount, 513);
            for i in 0..513 {
                m.msr_entry(0x20_0000, i, msr::IA32_TSC_AUX, i);
            }
        })
    },
    Case {
        msr_index: 2,
        ..case(C::MsrLoadFsGsBase, |m| {
            entry_msrs(m, msr::IA32_FS_BASE, false)
        })
    },
    Case {
        msr_index: 2,
        ..case(C::MsrLoadX2apic, |m| entry_msrs(m, 0x808, false))
    },
    Case {
        msr_index: 2,
        ..case(C::MsrLoadSmmMonitorCtl, |m| entry_msrs(m, 0x9b, false))
    },
    Case {
        msr_index: 2,
        ..case(C::MsrLoadReserved, |m| entry_msrs(m, msr::IA32_STAR, true))
    },
    Case {
        msr_index: 2,
        ..case(C::MsrLoadWrmsrFault, |m| {
            m.msrs.unwritable.insert(0x10);
            entry_msrs(m, 0x10, false);
        })
    },
];
