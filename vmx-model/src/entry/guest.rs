//! Checks on guest control registers, descriptor-table registers, RIP and RFLAGS
//! (SDM Vol. 3C 27.3.1.1, "Checks on Guest Control Registers, Debug Registers, and
//! MSRs"; 27.3.1.3, "Checks on Guest Descriptor-Table Registers"; 27.3.1.4,
//! "Checks on Guest RIP, RFLAGS, and SSP"): failures are VM-entry failures with
//! exit reason 33.

use super::inject::entry_info;
use super::view::{canonical, ensure, pat_ok, phys_ok, CS};
use super::{CheckResult, EntryEnv};
use crate::controls::EntryControls;
use crate::event::InterruptionType;
use crate::vmcs::Field;
use mmu::{Cr0, Cr4, Efer, Rflags};

/// 27.3.1.1: control registers, debug registers and MSRs.
pub(crate) fn control_registers(env: &mut EntryEnv<'_>) -> CheckResult {
    let v = env.vmcs;
    let f = &env.caps.features;
    let c = env.ctls;
    let cr0 = v.get(Field::GuestCr0);
    let mut fixed0 = f.cr0_fixed0();
    if c.unrestricted() {
        fixed0 &= !(Cr0::PE | Cr0::PG).bits();
    }
    ensure!(
        cr0 & fixed0 == fixed0 && cr0 & !f.cr0_fixed1 == 0,
        GuestCr0Fixed
    );
    let cr0 = Cr0::from_bits_retain(cr0);
    ensure!(
        !cr0.contains(Cr0::PG) || cr0.contains(Cr0::PE),
        GuestCr0PgWithoutPe
    );
    let cr4 = v.get(Field::GuestCr4);
    ensure!(
        cr4 & f.cr4_fixed0() == f.cr4_fixed0() && cr4 & !f.cr4_fixed1 == 0,
        GuestCr4Fixed
    );
    let cr4 = Cr4::from_bits_retain(cr4);
    let load_debug = c.entry.contains(EntryControls::LOAD_DEBUG_CONTROLS);
    if load_debug {
        ensure!(
            v.get(Field::GuestDebugctl) & !f.debugctl_valid == 0,
            GuestDebugctlReserved
        );
    }
    if c.ia32e_guest() {
        ensure!(cr0.contains(Cr0::PG), GuestIa32eWithoutPg);
        ensure!(cr4.contains(Cr4::PAE), GuestIa32eWithoutPae);
    } else {
        ensure!(!cr4.contains(Cr4::PCIDE), GuestPcideOutsideIa32e);
    }
    ensure!(phys_ok(env.caps, v.get(Field::GuestCr3)), GuestCr3Width);
    if load_debug {
        ensure!(v.get(Field::GuestDr7) >> 32 == 0, GuestDr7High);
    }
    ensure!(
        canonical(env.caps, v.get(Field::GuestSysenterEsp)),
        GuestSysenterEspCanonical
    );
    ensure!(
        canonical(env.caps, v.get(Field::GuestSysenterEip)),
        GuestSysenterEipCanonical
    );
    msrs(env, cr0)
}

fn msrs(env: &mut EntryEnv<'_>, cr0: Cr0) -> CheckResult {
    let v = env.vmcs;
    let c = env.ctls;
    if c.entry.contains(EntryControls::LOAD_PAT) {
        ensure!(pat_ok(v.get(Field::GuestPat)), GuestPatInvalid);
    }
    if c.entry.contains(EntryControls::LOAD_EFER) {
        let efer = v.get(Field::GuestEfer);
        ensure!(efer & !env.caps.features.efer_valid == 0, GuestEferReserved);
        let lma = efer & Efer::LMA.bits() != 0;
        let lme = efer & Efer::LME.bits() != 0;
        ensure!(lma == c.ia32e_guest(), GuestEferLma);
        ensure!(!cr0.contains(Cr0::PG) || lme == lma, GuestEferLme);
    }
    Ok(())
}

/// 27.3.1.3: GDTR and IDTR.
pub(crate) fn descriptor_tables(env: &mut EntryEnv<'_>) -> CheckResult {
    let v = env.vmcs;
    for f in [Field::GuestGdtrBase, Field::GuestIdtrBase] {
        ensure!(
            canonical(env.caps, v.get(f)),
            GuestDescriptorTableBaseCanonical,
            f
        );
    }
    for f in [Field::GuestGdtrLimit, Field::GuestIdtrLimit] {
        ensure!(v.get(f) >> 16 == 0, GuestDescriptorTableLimitHigh, f);
    }
    Ok(())
}

/// 27.3.1.4: RIP and RFLAGS.
pub(crate) fn rip_rflags(env: &mut EntryEnv<'_>) -> CheckResult {
    let v = env.vmcs;
    let c = env.ctls;
    let long = c.ia32e_guest() && CS.read(v).attr.l();
    let rip = v.get(Field::GuestRip);
    if long {
        ensure!(canonical(env.caps, rip), GuestRipCanonical);
    } else {
        ensure!(rip >> 32 == 0, GuestRipHigh);
    }
    let rflags = v.get(Field::GuestRflags);
    const RESERVED: u64 = 0xffff_ffff_ffc0_8028;
    ensure!(
        rflags & RESERVED == 0 && rflags & 2 != 0,
        GuestRflagsReserved
    );
    let rflags = Rflags::from_bits_retain(rflags);
    let pe = v.get(Field::GuestCr0) & Cr0::PE.bits() != 0;
    if c.ia32e_guest() || !pe {
        ensure!(!rflags.contains(Rflags::VM), GuestRflagsVm);
    }
    let info = entry_info(v);
    if info.valid() && info.kind() == InterruptionType::ExternalInterrupt {
        ensure!(
            rflags.contains(Rflags::IF),
            GuestRflagsIfForExternalInterrupt
        );
    }
    Ok(())
}
