//! VMXON, VMXOFF and VMCALL in root operation (SDM Vol. 3C 31.3).

use super::{page_address_ok, prologue, vmfail, InsnCtx, Outcome};
use crate::caps::VmxCaps;
use crate::error::VmInstructionError;
use crate::exit::ExitReason;
use crate::mem::{Access, PhysMem, PhysMemExt};
use crate::vmcs::VmxState;
use mmu::{CpuMode, Cr0, Cr4, Exception};

/// VMXON: enter VMX operation with the VMXON region at the address `operand` reads.
pub fn vmxon(
    state: &mut VmxState,
    caps: &VmxCaps,
    ctx: &InsnCtx,
    mem: &mut dyn PhysMem,
    operand: impl FnOnce() -> Result<u64, Exception>,
) -> Outcome {
    let real_v86_compat = matches!(
        ctx.mode,
        CpuMode::Real | CpuMode::Virtual8086 | CpuMode::Compatibility
    );
    if !ctx.cr0.contains(Cr0::PE) || !ctx.cr4.contains(Cr4::VMXE) || real_v86_compat {
        return Outcome::Fault(Exception::ud());
    }
    if state.in_vmx_operation() {
        if state.non_root {
            return Outcome::Exit(ExitReason::Vmxon);
        }
        if ctx.cpl > 0 {
            return Outcome::Fault(Exception::gp0());
        }
        return vmfail(state, VmInstructionError::VmxonInRoot);
    }
    if ctx.cpl > 0 || ctx.a20m || !crs_allowed(caps, ctx) || !ctx.feature_control.vmxon_allowed() {
        return Outcome::Fault(Exception::gp0());
    }
    let addr = match operand() {
        Ok(a) => a,
        Err(e) => return Outcome::Fault(e),
    };
    if !page_address_ok(caps, addr) {
        return Outcome::FailInvalid;
    }
    let rev = mem.read_u32(addr, Access::VmxonRegion);
    if rev != caps.features.revision_id {
        return Outcome::FailInvalid;
    }
    *state = VmxState {
        vmxon_ptr: Some(addr),
        non_root: false,
        current: None,
        ..VmxState::default()
    };
    Outcome::Succeed(())
}

/// True if CR0 and CR4 honour the VMX fixed bits (SDM Vol. 3C 24.8,
/// "Restrictions on VMX Operation").
fn crs_allowed(caps: &VmxCaps, ctx: &InsnCtx) -> bool {
    let f = &caps.features;
    let cr0 = ctx.cr0.bits();
    let cr4 = ctx.cr4.bits();
    cr0 & f.cr0_fixed0() == f.cr0_fixed0()
        && cr0 & !f.cr0_fixed1 == 0
        && cr4 & f.cr4_fixed0() == f.cr4_fixed0()
        && cr4 & !f.cr4_fixed1 == 0
}

/// VMXOFF: leave VMX operation. The dual-monitor treatment of SMIs is never active
/// in this model, so error 23 cannot occur.
pub fn vmxoff(state: &mut VmxState, ctx: &InsnCtx, mem: &mut dyn PhysMem) -> Outcome {
    if let Some(o) = prologue(state, ctx, ExitReason::Vmxoff) {
        return o;
    }
    state.leave(mem);
    Outcome::Succeed(())
}

/// VMCALL. In VMX non-root operation it exits; in root operation, with the
/// dual-monitor treatment of SMIs not supported (bit 0 of IA32_SMM_MONITOR_CTL is 0), it
/// fails with error 1.
pub fn vmcall(state: &mut VmxState, ctx: &InsnCtx) -> Outcome {
    if !state.in_vmx_operation() {
        return Outcome::Fault(Exception::ud());
    }
    if state.non_root {
        return Outcome::Exit(ExitReason::Vmcall);
    }
    if matches!(ctx.mode, CpuMode::Virtual8086 | CpuMode::Compatibility) {
        return Outcome::Fault(Exception::ud());
    }
    if ctx.cpl > 0 {
        return Outcome::Fault(Exception::gp0());
    }
    vmfail(state, VmInstructionError::VmcallInRoot)
}
