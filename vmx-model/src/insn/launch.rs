//! VMLAUNCH and VMRESUME (SDM Vol. 3C 31.3; the basic VM-entry checks of 27.1,
//! "Basic VM-Entry Checks"), then VM entry proper.

use super::{prologue, vmfail, InsnCtx, Outcome};
use crate::caps::VmxCaps;
use crate::entry::{vm_entry, EntryFailure, EntryResult, FailedCheck, GuestEntry};
use crate::error::VmInstructionError as E;
use crate::exit::ExitReason;
use crate::mem::{MsrOracle, PhysMem};
use crate::vmcs::{LaunchState, VmxState};
use mmu::{Efer, Exception, SystemRegs};
use serde::{Deserialize, Serialize};

/// The outcome of VMLAUNCH or VMRESUME.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LaunchOutcome {
    /// #UD or #GP(0).
    Fault(Exception),
    /// In VMX non-root operation: a VM exit with this reason.
    Exit(ExitReason),
    /// VMfailInvalid: no current VMCS, or the current VMCS is a shadow VMCS.
    FailInvalid,
    /// VMfailValid(n); for errors 7 and 8, the check that failed.
    FailValid(E, Option<FailedCheck>),
    /// VM entry succeeded: load this state and continue in VMX non-root operation.
    Entered(Box<GuestEntry>),
    /// VM entry failed after the guest-state checks (exit 33 or 34): the exit is
    /// recorded in the VMCS; load the host state it carries.
    EntryFailed(Box<EntryFailure>),
}

impl LaunchOutcome {
    /// RFLAGS after a VMfail outcome (CF or ZF set, other status flags clear);
    /// unchanged for faults and exits. Entries and entry failures load RFLAGS
    /// from the guest or host state instead.
    pub fn fail_rflags(&self, rflags: u64) -> u64 {
        match self {
            LaunchOutcome::FailInvalid => Outcome::<()>::FailInvalid.rflags(rflags),
            LaunchOutcome::FailValid(e, _) => Outcome::<()>::FailValid(*e).rflags(rflags),
            _ => rflags,
        }
    }
}

/// VMLAUNCH.
pub fn vmlaunch(
    state: &mut VmxState,
    caps: &VmxCaps,
    ctx: &InsnCtx,
    regs: &SystemRegs,
    mem: &mut dyn PhysMem,
    msrs: &mut dyn MsrOracle,
) -> LaunchOutcome {
    launch_or_resume(state, caps, ctx, regs, mem, msrs, true)
}

/// VMRESUME.
pub fn vmresume(
    state: &mut VmxState,
    caps: &VmxCaps,
    ctx: &InsnCtx,
    regs: &SystemRegs,
    mem: &mut dyn PhysMem,
    msrs: &mut dyn MsrOracle,
) -> LaunchOutcome {
    launch_or_resume(state, caps, ctx, regs, mem, msrs, false)
}

fn launch_or_resume(
    state: &mut VmxState,
    caps: &VmxCaps,
    ctx: &InsnCtx,
    regs: &SystemRegs,
    mem: &mut dyn PhysMem,
    msrs: &mut dyn MsrOracle,
    launch: bool,
) -> LaunchOutcome {
    let reason = if launch {
        ExitReason::Vmlaunch
    } else {
        ExitReason::Vmresume
    };
    if let Some(o) = prologue::<()>(state, ctx, reason) {
        return from_outcome(o);
    }
    let (launch_state, shadow) = match &state.current {
        None => return LaunchOutcome::FailInvalid,
        Some(c) => (c.launch, c.shadow),
    };
    if shadow {
        return LaunchOutcome::FailInvalid;
    }
    let basic = if ctx.blocked_by_mov_ss {
        Some(E::EntryBlockedByMovSs)
    } else if launch && launch_state != LaunchState::Clear {
        Some(E::VmlaunchNonClear)
    } else if !launch && launch_state == LaunchState::Clear {
        Some(E::VmresumeNonLaunched)
    } else if !launch && launch_state == LaunchState::LaunchedBeforeVmxoff {
        Some(E::VmresumeAfterVmxoff)
    } else {
        None
    };
    if let Some(e) = basic {
        return from_outcome(vmfail(state, e));
    }
    let lma = ctx.efer.contains(Efer::LMA);
    match vm_entry(state, caps, launch, lma, regs, mem, msrs) {
        None => LaunchOutcome::FailInvalid,
        Some(EntryResult::FailValid(e, c)) => LaunchOutcome::FailValid(e, Some(c)),
        Some(EntryResult::Failed(f)) => LaunchOutcome::EntryFailed(f),
        Some(EntryResult::Entered(g)) => LaunchOutcome::Entered(g),
    }
}

fn from_outcome(o: Outcome) -> LaunchOutcome {
    match o {
        Outcome::Fault(e) => LaunchOutcome::Fault(e),
        Outcome::Exit(r) => LaunchOutcome::Exit(r),
        Outcome::FailInvalid => LaunchOutcome::FailInvalid,
        Outcome::FailValid(e) => LaunchOutcome::FailValid(e, None),
        Outcome::Succeed(()) => LaunchOutcome::FailInvalid,
    }
}
