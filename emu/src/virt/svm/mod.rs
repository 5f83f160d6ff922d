//! The AMD-V binding: SVM instructions, VMRUN, #VMEXIT and guest mode,
//! through `svm-model`.

use super::Intercept;
use crate::event::{Flow, Stop};
use crate::machine::Machine;
use iced_x86::Instruction;

/// AMD-V state of the processor.
#[derive(Clone, Debug, Default)]
pub struct SvmCpu {}

/// An SVM #VMEXIT being performed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingExit {}

/// Decides an intercept in SVM guest mode.
pub fn intercept(_m: &mut Machine, _i: &Instruction, _what: Intercept) -> Flow {
    Ok(())
}

/// Performs a #VMEXIT.
pub fn perform_exit(_m: &mut Machine, _e: PendingExit) -> Result<(), Stop> {
    Err(Stop::Shutdown("VM exits are not bound yet".into()))
}

/// The handler of an instruction of this extension, if `i` is one.
pub fn handler_for(
    _m: &Machine,
    _i: &Instruction,
) -> Option<(crate::interp::Handler, crate::cost::InsnClass)> {
    None
}

/// Decides whether an event about to be delivered in the guest exits.
pub fn event_intercept(
    _m: &mut Machine,
    _d: &crate::interrupt::Delivery,
    _vectoring: Option<&crate::interrupt::Delivery>,
) -> Flow {
    Ok(())
}

/// Adds nested paging and the TLB tag of the running guest.
pub fn translation_context(_m: &Machine, ctx: mmu::TranslationContext) -> mmu::TranslationContext {
    ctx
}

/// The VM exit for a nested-paging fault.
pub fn nested_fault(m: &mut Machine, f: mmu::TranslateFault) -> crate::event::Event {
    crate::event::Event::unimplemented(format!("nested-paging fault {f:?}"), m.cpu.rip)
}

/// Reads an MSR this extension owns (`Some(None)`: #GP), else `None`.
pub fn read_msr(_m: &Machine, _idx: u32) -> Option<Option<u64>> {
    None
}

/// Writes an MSR this extension owns, else `None`.
pub fn write_msr(_m: &mut Machine, _idx: u32, _v: u64) -> Option<Flow> {
    None
}

/// A CPUID leaf this extension changes, else `None`.
pub fn cpuid(_m: &Machine, _leaf: u32, _sub: u32) -> Option<[u32; 4]> {
    None
}
