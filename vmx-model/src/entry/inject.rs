//! VM-entry event injection: the control-field checks (SDM Vol. 3C 27.2.1.3,
//! "VM-Entry Control Fields") and the event VM entry delivers (27.6, "Event
//! Injection").

use super::view::ensure;
use super::{CheckResult, EntryEnv};
use crate::controls::ProcControls;
use crate::event::{exception_has_error_code, InterruptionInfo, InterruptionType};
use crate::vmcs::{Field, Vmcs};
use mmu::Cr0;
use serde::{Deserialize, Serialize};

/// The event a successful VM entry delivers through the guest IDT, "as if it
/// occurred immediately after VM entry" (SDM Vol. 3C 27.6.1.1). The machine
/// delivers it with the guest's state; a software interrupt or exception pushes a
/// return address `instruction_len` bytes past the guest RIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InjectedEvent {
    /// External interrupt, NMI, hardware exception, software interrupt, privileged
    /// software exception or software exception.
    pub kind: InterruptionType,
    /// The vector.
    pub vector: u8,
    /// The error code to push, if any.
    pub error_code: Option<u32>,
    /// The VM-entry instruction length (software interrupts and exceptions).
    pub instruction_len: u32,
}

/// The VM-entry interruption-information field.
pub(crate) fn entry_info(v: &Vmcs) -> InterruptionInfo {
    InterruptionInfo(v.get32(Field::EntryInterruptionInfo))
}

/// The injection-field rules of 27.2.1.3, applied if the valid bit is 1.
pub(crate) fn check_fields(env: &mut EntryEnv<'_>) -> CheckResult {
    let v = env.vmcs;
    let info = entry_info(v);
    if !info.valid() {
        return Ok(());
    }
    let kind = info.kind();
    let vector = info.vector();
    let mtf = env.caps.proc.may_be_one & ProcControls::MONITOR_TRAP_FLAG.bits() != 0;
    let type_ok = match kind {
        InterruptionType::Reserved => false,
        InterruptionType::OtherEvent => mtf,
        _ => true,
    };
    ensure!(type_ok, EventInjectionType);
    let vector_ok = match kind {
        InterruptionType::Nmi => vector == 2,
        InterruptionType::HardwareException => vector <= 31,
        InterruptionType::OtherEvent => vector == 0,
        _ => true,
    };
    ensure!(vector_ok, EventInjectionVector);
    let protected = !env.ctls.unrestricted() || v.get(Field::GuestCr0) & Cr0::PE.bits() != 0;
    let should = protected
        && kind == InterruptionType::HardwareException
        && exception_has_error_code(vector);
    ensure!(
        info.error_code_valid() == should,
        EventInjectionDeliverErrorCode
    );
    ensure!(info.0 & 0x7fff_f000 == 0, EventInjectionReserved);
    if info.error_code_valid() {
        let ec = v.get32(Field::EntryExceptionErrorCode);
        ensure!(ec & 0xffff_0000 == 0, EventInjectionErrorCodeReserved);
    }
    if kind.is_software() {
        let len = v.get32(Field::EntryInstructionLength);
        let zero_ok = env.caps.features.misc.zero_length_injection;
        ensure!(
            len <= 15 && (len != 0 || zero_ok),
            EventInjectionInstructionLength
        );
    }
    Ok(())
}

/// What VM entry injects: `(event, pending MTF VM exit)` (SDM Vol. 3C 27.6.1 and
/// 27.6.2, "Injection of Pending MTF VM Exits").
pub(crate) fn injected(v: &Vmcs) -> (Option<InjectedEvent>, bool) {
    let info = entry_info(v);
    if !info.valid() {
        return (None, false);
    }
    if info.kind() == InterruptionType::OtherEvent {
        return (None, true);
    }
    let error_code = info
        .error_code_valid()
        .then(|| v.get32(Field::EntryExceptionErrorCode));
    let event = InjectedEvent {
        kind: info.kind(),
        vector: info.vector(),
        error_code,
        instruction_len: v.get32(Field::EntryInstructionLength),
    };
    (Some(event), false)
}
