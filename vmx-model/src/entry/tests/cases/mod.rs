//! One case per VM-entry check: the known-good VMCS with exactly that rule broken.
//! The expected outcome follows from the check's class: VMfailValid(7) or (8),
//! exit 33 with the class's qualification, or exit 34 with the entry index.

mod controls;
mod guest;

use crate::caps::{VmxCaps, VmxFeatures};
use crate::controls::{
    EntryControls as En, ExitControls as Ex, PinControls as Pin, Proc2Controls as P2,
    ProcControls as P1,
};
use crate::entry::{CheckClass, CheckId, FailedCheck};
use crate::exit::ExitReason;
use crate::insn::LaunchOutcome;
use crate::mem::{Access, PhysMemExt};
use crate::testkit::{addr, Machine};
use crate::vmcs::Field as F;
use mmu::{msr, Efer};

pub(super) struct Case {
    id: CheckId,
    caps: fn() -> VmxCaps,
    field: Option<F>,
    msr_index: u64,
    setup: fn(&mut Machine),
}

pub(super) fn intel() -> VmxCaps {
    VmxCaps::default()
}
pub(super) fn all() -> VmxCaps {
    VmxCaps::new(VmxFeatures::everything())
}
pub(super) fn strict_nmi() -> VmxCaps {
    let mut f = VmxFeatures::intel();
    f.misc.nmi_injection_requires_no_sti_blocking = true;
    VmxCaps::new(f)
}

pub(super) const fn case(id: CheckId, setup: fn(&mut Machine)) -> Case {
    Case {
        id,
        caps: intel,
        field: None,
        msr_index: 1,
        setup,
    }
}
pub(super) const fn case_all(id: CheckId, setup: fn(&mut Machine)) -> Case {
    Case {
        caps: all,
        ..case(id, setup)
    }
}
pub(super) const fn at(mut c: Case, field: F) -> Case {
    c.field = Some(field);
    c
}

pub(super) const NMI: u64 = 0x8000_0202;
pub(super) const EXT_INT: u64 = 0x8000_0020;
pub(super) const CANON_BAD: u64 = 0x8000_0000_0000;
pub(super) const FAR: u64 = 1 << 50;

pub(super) fn tpr_shadow(m: &mut Machine) {
    m.or(
        F::PrimaryProcBasedControls,
        P1::USE_TPR_SHADOW.bits() as u64,
    );
    m.set(F::VirtualApicAddress, addr::VIRTUAL_APIC);
}
pub(super) fn posted(m: &mut Machine) {
    tpr_shadow(m);
    let pin = Pin::PROCESS_POSTED_INTERRUPTS | Pin::EXTERNAL_INTERRUPT_EXITING;
    m.or(F::PinBasedControls, pin.bits() as u64);
    m.enable2(P2::VIRTUAL_INTERRUPT_DELIVERY);
    m.or(
        F::ExitControls,
        Ex::ACKNOWLEDGE_INTERRUPT_ON_EXIT.bits() as u64,
    );
    m.set(F::PostedInterruptNotificationVector, 0xf2);
    m.set(F::PostedInterruptDescriptorAddress, addr::PI_DESC);
}
pub(super) fn host32(m: &mut Machine) {
    m.ctx.efer = Efer::empty();
    m.clear_bits(F::ExitControls, Ex::HOST_ADDRESS_SPACE_SIZE.bits() as u64);
    m.clear_bits(F::EntryControls, En::IA32E_MODE_GUEST.bits() as u64);
}
pub(super) fn msr_area_end(m: &mut Machine, addr_f: F, count_f: F) {
    m.set(addr_f, (1 << 46) - 16).set(count_f, 2);
}
pub(super) fn usable_ldtr(m: &mut Machine) {
    m.set(F::GuestLdtrSelector, 0x28)
        .set(F::GuestLdtrLimit, 0xffff)
        .set(F::GuestLdtrAccessRights, 0x82);
}
pub(super) fn ss_dpl3(m: &mut Machine) {
    m.set(F::GuestCsSelector, 0x0b)
        .set(F::GuestCsAccessRights, 0xa09f);
    m.set(F::GuestSsSelector, 0x13)
        .set(F::GuestSsAccessRights, 0xc0f3);
}
pub(super) fn entry_msrs(m: &mut Machine, bad_index: u32, reserved: bool) {
    m.set(F::EntryMsrLoadAddress, addr::ENTRY_MSR_LOAD)
        .set(F::EntryMsrLoadCount, 2);
    m.msr_entry(addr::ENTRY_MSR_LOAD, 0, msr::IA32_TSC_AUX, 1);
    m.msr_entry(addr::ENTRY_MSR_LOAD, 1, bad_index, 0);
    if reserved {
        m.mem
            .write_u32(addr::ENTRY_MSR_LOAD + 16 + 4, 1, Access::MsrArea);
    }
}
pub(super) fn ldtr_ar(m: &mut Machine, ar: u64) {
    usable_ldtr(m);
    m.set(F::GuestLdtrAccessRights, ar);
}

fn all_cases() -> impl Iterator<Item = &'static Case> {
    controls::CASES.iter().chain(guest::CASES)
}

fn expect_fail(m: &mut Machine, c: &Case, out: &LaunchOutcome) -> Result<FailedCheck, String> {
    match (out, c.id.class()) {
        (LaunchOutcome::FailValid(e, Some(fc)), CheckClass::Control | CheckClass::Host) => {
            let err = c.id.class().error();
            if Some(*e) != err || m.get(F::VmInstructionError) != e.number() as u64 {
                return Err(format!("error {e:?}, expected {err:?}"));
            }
            Ok(*fc)
        }
        (LaunchOutcome::EntryFailed(f), CheckClass::Guest(q)) => {
            let ok = f.reason == ExitReason::EntryFailureGuestState && f.qualification == q as u64;
            if !ok || m.get(F::ExitReason) != 0x8000_0021 || f.host.is_err() {
                return Err(format!(
                    "exit {:?} qualification {}",
                    f.reason, f.qualification
                ));
            }
            Ok(f.check)
        }
        (LaunchOutcome::EntryFailed(f), CheckClass::MsrLoad) => {
            let ok =
                f.reason == ExitReason::EntryFailureMsrLoading && f.qualification == c.msr_index;
            if !ok
                || m.get(F::ExitQualification) != c.msr_index
                || m.get(F::ExitReason) != 0x8000_0022
            {
                return Err(format!(
                    "exit {:?} qualification {}",
                    f.reason, f.qualification
                ));
            }
            Ok(f.check)
        }
        _ => Err(format!("unexpected outcome {out:?}")),
    }
}

fn run(c: &Case) -> Result<(), String> {
    let mut m = Machine::new((c.caps)());
    (c.setup)(&mut m);
    let want = c.field.or(c.id.field());
    let out = m.launch();
    let got = expect_fail(&mut m, c, &out)?;
    if got.id != c.id || got.field != want {
        return Err(format!("failed {got}, expected {:?} on {want:?}", c.id));
    }
    if m.state.non_root {
        return Err("still in non-root operation after a failed entry".into());
    }
    Ok(())
}

#[test]
fn every_check_violated_alone_gives_its_outcome_and_names_itself() {
    let failures: Vec<String> = all_cases()
        .filter_map(|c| run(c).err().map(|e| format!("{:?}: {e}", c.id)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_check_has_a_case() {
    let missing: Vec<_> = CheckId::ALL
        .iter()
        .filter(|id| !all_cases().any(|c| c.id == **id))
        .collect();
    assert!(missing.is_empty(), "checks without a case: {missing:?}");
}
