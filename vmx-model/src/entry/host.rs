//! Checks on the host-state area (SDM Vol. 3C 27.2.2, "Checks on Host Control
//! Registers, MSRs, and SSP"; 27.2.3, "Checks on Host Segment and Descriptor-Table
//! Registers"; 27.2.4, "Checks Related to Address-Space Size"): failures are
//! VMfailValid(8).

use super::view::{canonical, ensure, pat_ok, phys_ok};
use super::{CheckResult, EntryEnv};
use crate::controls::ExitControls;
use crate::vmcs::Field;
use mmu::{Cr4, Efer};

/// 27.2.2: control registers and MSRs.
pub(crate) fn control_registers(env: &mut EntryEnv<'_>) -> CheckResult {
    let v = env.vmcs;
    let f = &env.caps.features;
    let cr0 = v.get(Field::HostCr0);
    ensure!(
        cr0 & f.cr0_fixed0() == f.cr0_fixed0() && cr0 & !f.cr0_fixed1 == 0,
        HostCr0Fixed
    );
    let cr4 = v.get(Field::HostCr4);
    ensure!(
        cr4 & f.cr4_fixed0() == f.cr4_fixed0() && cr4 & !f.cr4_fixed1 == 0,
        HostCr4Fixed
    );
    ensure!(phys_ok(env.caps, v.get(Field::HostCr3)), HostCr3Width);
    ensure!(
        canonical(env.caps, v.get(Field::HostSysenterEsp)),
        HostSysenterEspCanonical
    );
    ensure!(
        canonical(env.caps, v.get(Field::HostSysenterEip)),
        HostSysenterEipCanonical
    );
    let exit = env.ctls.exit;
    if exit.contains(ExitControls::LOAD_PAT) {
        ensure!(pat_ok(v.get(Field::HostPat)), HostPatInvalid);
    }
    if exit.contains(ExitControls::LOAD_EFER) {
        let efer = v.get(Field::HostEfer);
        ensure!(efer & !f.efer_valid == 0, HostEferReserved);
        let host64 = env.ctls.host64();
        let lma = efer & Efer::LMA.bits() != 0;
        let lme = efer & Efer::LME.bits() != 0;
        ensure!(lma == host64 && lme == host64, HostEferAddressSpaceSize);
    }
    Ok(())
}

/// 27.2.3: segment and descriptor-table registers.
pub(crate) fn segments(env: &mut EntryEnv<'_>) -> CheckResult {
    let v = env.vmcs;
    let selectors = [
        Field::HostCsSelector,
        Field::HostSsSelector,
        Field::HostDsSelector,
        Field::HostEsSelector,
        Field::HostFsSelector,
        Field::HostGsSelector,
        Field::HostTrSelector,
    ];
    for f in selectors {
        ensure!(v.get(f) & 7 == 0, HostSelectorRplTi, f);
    }
    ensure!(v.get(Field::HostCsSelector) != 0, HostCsSelectorNull);
    ensure!(v.get(Field::HostTrSelector) != 0, HostTrSelectorNull);
    if !env.ctls.host64() {
        ensure!(v.get(Field::HostSsSelector) != 0, HostSsSelectorNull);
    }
    let bases = [
        Field::HostFsBase,
        Field::HostGsBase,
        Field::HostGdtrBase,
        Field::HostIdtrBase,
        Field::HostTrBase,
    ];
    for f in bases {
        ensure!(canonical(env.caps, v.get(f)), HostBaseCanonical, f);
    }
    Ok(())
}

/// 27.2.4: address-space size. `env.lma` is IA32_EFER.LMA at the time of VM entry.
pub(crate) fn address_space_size(env: &mut EntryEnv<'_>) -> CheckResult {
    let c = env.ctls;
    let v = env.vmcs;
    if !env.lma {
        ensure!(!c.ia32e_guest(), OutsideIa32eWithIa32eGuest);
        ensure!(!c.host64(), OutsideIa32eWithHostAddressSpaceSize);
    } else {
        ensure!(c.host64(), InIa32eWithoutHostAddressSpaceSize);
    }
    let cr4 = Cr4::from_bits_retain(v.get(Field::HostCr4));
    let rip = v.get(Field::HostRip);
    if !c.host64() {
        ensure!(!cr4.contains(Cr4::PCIDE), Host32Pcide);
        ensure!(rip >> 32 == 0, Host32RipHigh);
    } else {
        ensure!(cr4.contains(Cr4::PAE), Host64WithoutPae);
        ensure!(canonical(env.caps, rip), Host64RipCanonical);
    }
    Ok(())
}
