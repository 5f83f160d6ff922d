//! Break recipes for the guest-state checks (SDM Vol. 3C 27.3.1) and MSR
//! loading (27.4).

use super::recipes::*;
use guestkit::vmx::layout;
use mmu::msr;
use vmx_model::controls::{EntryControls as En, PinControls as Pin, Proc2Controls as P2};
use vmx_model::entry::CheckId as C;
use vmx_model::Field as F;

pub fn guest_register_recipes() -> Vec<Recipe> {
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

pub fn guest_segment_recipes() -> Vec<Recipe> {
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

pub fn guest_state_recipes() -> Vec<Recipe> {
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
