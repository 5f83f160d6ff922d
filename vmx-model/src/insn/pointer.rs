//! VMCLEAR, VMPTRLD and VMPTRST (SDM Vol. 3C 31.3).

use super::{page_address_ok, prologue, vmfail, InsnCtx, Outcome};
use crate::caps::VmxCaps;
use crate::controls::Proc2Controls;
use crate::error::VmInstructionError as E;
use crate::exit::ExitReason;
use crate::mem::{Access, PhysMem};
use crate::vmcs::{Region, VmxState};
use mmu::Exception;

/// VMCLEAR: flush the VMCS at the operand address to memory and make it clear.
pub fn vmclear(
    state: &mut VmxState,
    caps: &VmxCaps,
    ctx: &InsnCtx,
    mem: &mut dyn PhysMem,
    operand: impl FnOnce() -> Result<u64, Exception>,
) -> Outcome {
    if let Some(o) = prologue(state, ctx, ExitReason::Vmclear) {
        return o;
    }
    let addr = match operand() {
        Ok(a) => a,
        Err(e) => return Outcome::Fault(e),
    };
    if !page_address_ok(caps, addr) {
        return vmfail(state, E::VmclearInvalidAddress);
    }
    if Some(addr) == state.vmxon_ptr {
        return vmfail(state, E::VmclearVmxonPointer);
    }
    state.clear(mem, addr);
    Outcome::Succeed(())
}

/// VMPTRLD: make the VMCS at the operand address current.
pub fn vmptrld(
    state: &mut VmxState,
    caps: &VmxCaps,
    ctx: &InsnCtx,
    mem: &mut dyn PhysMem,
    operand: impl FnOnce() -> Result<u64, Exception>,
) -> Outcome {
    if let Some(o) = prologue(state, ctx, ExitReason::Vmptrld) {
        return o;
    }
    let addr = match operand() {
        Ok(a) => a,
        Err(e) => return Outcome::Fault(e),
    };
    if !page_address_ok(caps, addr) {
        return vmfail(state, E::VmptrldInvalidAddress);
    }
    if Some(addr) == state.vmxon_ptr {
        return vmfail(state, E::VmptrldVmxonPointer);
    }
    let (rev, shadow) = Region::read_header(mem, addr, Access::Vmcs);
    let shadow_ok = !shadow || caps.has2(Proc2Controls::VMCS_SHADOWING);
    if rev != caps.features.revision_id || !shadow_ok {
        return vmfail(state, E::VmptrldIncorrectRevision);
    }
    state.make_current(mem, addr);
    Outcome::Succeed(())
}

/// VMPTRST: the current-VMCS pointer, for the machine to store in the 64-bit
/// memory destination (FFFFFFFF_FFFFFFFFH if there is no current VMCS).
pub fn vmptrst(state: &VmxState, ctx: &InsnCtx) -> Outcome<u64> {
    if let Some(o) = prologue(state, ctx, ExitReason::Vmptrst) {
        return o;
    }
    Outcome::Succeed(state.current_ptr())
}
