//! VM entry (SDM Vol. 3C chapter 27, "VM Entries"): every check in the manual's
//! order, each with a typed [`CheckId`]; loading guest state; the VM-entry
//! MSR-load area; event injection. Validate fully, then commit: the VMCS and the
//! VMX state change only once the outcome is known, and the new register state is
//! returned as a value.

mod check_id;
mod controls;
mod guest;
mod guest_nonreg;
mod guest_seg;
mod host;
mod inject;
mod load;
pub(crate) mod view;

pub use check_id::{CheckClass, CheckId, FailedCheck};
pub use guest_nonreg::pdpte_ok;
pub use guest_seg::SegCheckMemo;
pub use inject::InjectedEvent;

use crate::caps::VmxCaps;
use crate::error::VmInstructionError;
use crate::event::{ActivityState, Interruptibility};
use crate::exit::{entry_failure_exit, ExitReason, HostLoad, VmxAbort};
use crate::mem::{MsrOracle, PhysMem};
use crate::msr_area::{load_area, LoadFailure, LoadRefusal};
use crate::vmcs::{CurrentVmcs, Field, LaunchState, Vmcs, VmxState};
use mmu::SystemRegs;
use serde::{Deserialize, Serialize};
use view::Ctls;

pub(crate) type CheckResult = Result<(), FailedCheck>;

/// What the checks read: the capabilities, the VMCS, IA32_EFER.LMA at the time of
/// VM entry, the current-VMCS pointer and physical memory (VTPR, the VMCS link
/// pointer's revision identifier, PDPTEs when EPT is off).
pub(crate) struct EntryEnv<'a> {
    pub caps: &'a VmxCaps,
    pub vmcs: &'a Vmcs,
    pub ctls: Ctls,
    pub lma: bool,
    pub current_ptr: u64,
    pub mem: &'a mut dyn PhysMem,
}

/// Runs the checks of SDM Vol. 3C 27.2 (VMX controls, host-state area) and 27.3.1
/// (guest-state area, PDPTEs) on `vmcs`, in order, without changing anything.
/// `lma` is IA32_EFER.LMA of the processor executing VMLAUNCH/VMRESUME and
/// `current_ptr` the current-VMCS pointer (FFFFFFFF_FFFFFFFFH for none).
pub fn check(
    caps: &VmxCaps,
    vmcs: &Vmcs,
    lma: bool,
    current_ptr: u64,
    mem: &mut dyn PhysMem,
) -> Result<(), FailedCheck> {
    let mut env = EntryEnv {
        caps,
        vmcs,
        ctls: Ctls::read(vmcs),
        lma,
        current_ptr,
        mem,
    };
    controls_and_host(&mut env)?;
    guest_state(&mut env, None)
}

/// 27.2: controls, then host state, then address-space size.
fn controls_and_host(env: &mut EntryEnv<'_>) -> CheckResult {
    controls::execution(env)?;
    controls::exit(env)?;
    controls::entry(env)?;
    host::control_registers(env)?;
    host::segments(env)?;
    host::address_space_size(env)
}

/// 27.3.1: guest state, then PDPTEs. With `seg_checks`, the segment-register
/// checks are skipped when their inputs equal those of the last run that
/// passed ([`SegCheckMemo`]).
fn guest_state(env: &mut EntryEnv<'_>, seg_checks: Option<&mut SegCheckMemo>) -> CheckResult {
    guest::control_registers(env)?;
    match seg_checks {
        Some(memo) => guest_seg::segments_memo(env, memo)?,
        None => guest_seg::segments(env)?,
    }
    guest::descriptor_tables(env)?;
    guest::rip_rflags(env)?;
    guest_nonreg::non_register(env)?;
    guest_nonreg::pdptes(env)
}

/// The state a successful VM entry establishes (SDM Vol. 3C 27.3.2, 27.4, 27.6, 27.7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestEntry {
    /// The guest's system registers, including MSRs loaded from the MSR-load area.
    pub regs: SystemRegs,
    /// RIP.
    pub rip: u64,
    /// RSP.
    pub rsp: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// The activity state after VM entry (active if the entry injects an event).
    pub activity: ActivityState,
    /// Blocking after VM entry (27.7.1): STI and MOV SS cleared by a vectoring
    /// entry. Bit 3 is virtual-NMI blocking if `virtual_nmis`, else NMI blocking.
    pub interruptibility: Interruptibility,
    /// The "virtual NMIs" control.
    pub virtual_nmis: bool,
    /// Pending debug exceptions to deliver after VM entry (27.7.3).
    pub pending_debug_exceptions: u64,
    /// PDPTEs, if the guest uses PAE paging.
    pub pdptes: Option<[u64; 4]>,
    /// Writes from the VM-entry MSR-load area to MSRs outside `regs`, in order.
    pub msr_writes: Vec<(u32, u64)>,
    /// The event to deliver through the guest IDT, if any (27.6.1).
    pub event: Option<InjectedEvent>,
    /// An MTF VM exit is pending on the first instruction boundary (27.6.2).
    pub pending_mtf: bool,
    /// The VMX-preemption timer's start value, if activated (27.7.4).
    pub preemption_timer: Option<u32>,
    /// The VPID (0 if "enable VPID" is 0).
    pub vpid: u16,
    /// The EPTP, if "enable EPT" is 1.
    pub eptp: Option<u64>,
    /// A TPR-below-threshold VM exit occurs right after VM entry (27.7.7).
    pub tpr_below_threshold: bool,
}

/// A VM entry that failed during or after loading guest state (SDM Vol. 3C 27.8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryFailure {
    /// 33 (invalid guest state) or 34 (MSR loading).
    pub reason: ExitReason,
    /// The exit qualification recorded.
    pub qualification: u64,
    /// The rule that failed.
    pub check: FailedCheck,
    /// The host state to load, or the VMX abort that happened instead.
    pub host: Result<HostLoad, VmxAbort>,
}

/// The result of the VM-entry part of VMLAUNCH/VMRESUME, after the basic checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryResult {
    /// VMfailValid(7) or (8); the error is stored in the VMCS.
    FailValid(VmInstructionError, FailedCheck),
    /// The VM-entry failure exit (33 or 34) has been recorded in the VMCS.
    Failed(Box<EntryFailure>),
    /// The processor is in VMX non-root operation with this state.
    Entered(Box<GuestEntry>),
}

/// Performs VM entry on the current VMCS (SDM Vol. 3C 27.2-27.7), after the basic
/// checks of 27.1 have passed. `regs` is the processor's state before the entry.
/// `None` if there is no current VMCS (VMLAUNCH/VMRESUME check that first).
pub(crate) fn vm_entry(
    state: &mut VmxState,
    caps: &VmxCaps,
    launch: bool,
    lma: bool,
    regs: &SystemRegs,
    mem: &mut dyn PhysMem,
    msrs: &mut dyn MsrOracle,
) -> Option<EntryResult> {
    // The checks read the current VMCS in place: it is taken out of `state`
    // for them (no copy per entry) and put back before anything else reads
    // or writes the VMX state.
    let cur = state.current.take()?;
    let checked = run_checks(&cur, caps, lma, regs, mem, &mut state.seg_checks);
    state.current = Some(cur);
    let mut entry = match checked {
        Checked::ControlsOrHost(fc) => {
            let err = fc
                .id
                .class()
                .error()
                .unwrap_or(VmInstructionError::EntryInvalidControlField);
            if let Some(v) = state.vmcs_mut() {
                v.set(Field::VmInstructionError, err.number() as u64);
            }
            return Some(EntryResult::FailValid(err, fc));
        }
        Checked::Guest(fc) => {
            let qual = match fc.id.class() {
                CheckClass::Guest(q) => q as u64,
                _ => 0,
            };
            let reason = ExitReason::EntryFailureGuestState;
            return Some(fail(state, caps, reason, qual, fc, regs, mem, msrs));
        }
        Checked::Passed(entry) => entry,
    };
    if let Err(failed) = load_msrs(state, caps, &mut entry, mem, msrs) {
        return Some(failed);
    }
    if let Some(cur) = state.current.as_mut() {
        if launch {
            cur.launch = LaunchState::Launched;
        }
    }
    state.non_root = true;
    Some(EntryResult::Entered(entry))
}

/// What the checks of 27.2 and 27.3.1 found.
enum Checked {
    /// A control or host-state check failed (VMfailValid).
    ControlsOrHost(FailedCheck),
    /// A guest-state check failed (VM-entry failure exit 33).
    Guest(FailedCheck),
    /// Every check passed: the guest state 27.3.2 loads.
    Passed(Box<GuestEntry>),
}

/// Runs the checks on the current VMCS `cur` and, if they pass, loads the
/// guest state from it. Reads only.
fn run_checks(
    cur: &CurrentVmcs,
    caps: &VmxCaps,
    lma: bool,
    regs: &SystemRegs,
    mem: &mut dyn PhysMem,
    seg_checks: &mut SegCheckMemo,
) -> Checked {
    let mut env = EntryEnv {
        caps,
        vmcs: &cur.vmcs,
        ctls: Ctls::read(&cur.vmcs),
        lma,
        current_ptr: cur.ptr,
        mem,
    };
    if let Err(fc) = controls_and_host(&mut env) {
        return Checked::ControlsOrHost(fc);
    }
    if let Err(fc) = guest_state(&mut env, Some(seg_checks)) {
        return Checked::Guest(fc);
    }
    Checked::Passed(Box::new(load::guest(&mut env, regs)))
}

/// 27.4: the VM-entry MSR-load area, applied to the loaded guest state. On a
/// refused entry the VM entry fails (exit 34) with the MSRs before it loaded.
fn load_msrs(
    state: &mut VmxState,
    caps: &VmxCaps,
    entry: &mut GuestEntry,
    mem: &mut dyn PhysMem,
    msrs: &mut dyn MsrOracle,
) -> Result<(), EntryResult> {
    let Some(vmcs) = state.vmcs() else {
        return Ok(());
    };
    let (addr, count) = (
        vmcs.get(Field::EntryMsrLoadAddress),
        vmcs.get32(Field::EntryMsrLoadCount),
    );
    let loaded = load_area(mem, addr, count, caps.max_msr_list(), &mut entry.regs, msrs);
    let Some(LoadFailure { index, why }) = loaded.failed else {
        entry.msr_writes = loaded.other;
        return Ok(());
    };
    let fc = FailedCheck::new(msr_check(why));
    let reason = ExitReason::EntryFailureMsrLoading;
    let mut result = fail(
        state,
        caps,
        reason,
        index as u64,
        fc,
        &entry.regs,
        mem,
        msrs,
    );
    if let EntryResult::Failed(f) = &mut result {
        if let Ok(h) = &mut f.host {
            let mut all = loaded.other;
            all.append(&mut h.fields.msr_writes);
            h.fields.msr_writes = all;
        }
    }
    Err(result)
}

fn msr_check(why: Option<LoadRefusal>) -> CheckId {
    match why {
        None => CheckId::MsrLoadCountExceeded,
        Some(LoadRefusal::FsGsBase) => CheckId::MsrLoadFsGsBase,
        Some(LoadRefusal::X2apic) => CheckId::MsrLoadX2apic,
        Some(LoadRefusal::SmmMonitorCtl) => CheckId::MsrLoadSmmMonitorCtl,
        Some(LoadRefusal::Reserved) => CheckId::MsrLoadReserved,
        Some(LoadRefusal::WrmsrFault) => CheckId::MsrLoadWrmsrFault,
    }
}

#[allow(clippy::too_many_arguments)]
fn fail(
    state: &mut VmxState,
    caps: &VmxCaps,
    reason: ExitReason,
    qualification: u64,
    check: FailedCheck,
    regs: &SystemRegs,
    mem: &mut dyn PhysMem,
    msrs: &mut dyn MsrOracle,
) -> EntryResult {
    let host = entry_failure_exit(state, caps, reason, qualification, regs, mem, msrs);
    EntryResult::Failed(Box::new(EntryFailure {
        reason,
        qualification,
        check,
        host,
    }))
}

#[cfg(test)]
mod tests;
