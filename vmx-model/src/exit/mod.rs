//! VM exits (SDM Vol. 3C chapter 28, "VM Exits"): the exit-reason table, the
//! exit information the machine supplies, saving guest state, saving MSRs,
//! loading host state, loading MSRs, and VMX aborts.
//!
//! The machine decides *that* an exit happens (see [`crate::decide`]) and gathers
//! the facts ([`ExitInfo`], built with [`qual`] and [`insn_info`]); [`vm_exit`]
//! records them in the current VMCS, saves the guest, and returns the host state
//! to load as a value.

pub(crate) mod host;
pub mod insn_info;
pub mod qual;
mod reason;
mod save;

#[cfg(test)]
mod tests;

pub use host::{load_host_state, load_host_state_in_place, HostFields, HostLoad};
pub use reason::{ExitReason, ExitTiming};

use crate::caps::VmxCaps;
use crate::event::{ActivityState, Interruptibility, InterruptionInfo};
use crate::mem::{Access, MsrOracle, PhysMem, PhysMemExt};
use crate::vmcs::{Field, Vmcs, VmxState, ABORT_OFFSET};
use mmu::SystemRegs;
use serde::{Deserialize, Serialize};

/// Bit 28 of the exit-reason field: a pending MTF VM exit (SDM Vol. 3C 25.9.1).
pub const EXIT_REASON_PENDING_MTF: u32 = 1 << 28;
/// Bit 31 of the exit-reason field: VM-entry failure.
pub const EXIT_REASON_ENTRY_FAILURE: u32 = 1 << 31;

/// An event recorded in the VM-exit interruption-information or IDT-vectoring
/// fields, with its error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExitEvent {
    /// The interruption information (valid bit set).
    pub info: InterruptionInfo,
    /// The error code, if bit 11 of `info` is set.
    pub error_code: Option<u32>,
}

/// Everything the machine knows about a VM exit (SDM Vol. 3C 28.2, "Recording
/// VM-Exit Information and Updating VM-Entry Control Fields"). Fields that are
/// `None` leave the corresponding VMCS field unmodified (the SDM calls them
/// undefined for exits that do not use them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// The basic exit reason.
    pub reason: ExitReason,
    /// True if an MTF VM exit was pending (exit-reason bit 28).
    pub pending_mtf: bool,
    /// The exit qualification (0 for exits that define none).
    pub qualification: u64,
    /// The guest-linear address field.
    pub guest_linear_address: Option<u64>,
    /// The guest-physical address field (EPT violations and misconfigurations).
    pub guest_physical_address: Option<u64>,
    /// The VM-exit interruption information: exceptions, NMIs, acknowledged
    /// external interrupts. `None` records "not valid".
    pub interruption: Option<ExitEvent>,
    /// The IDT-vectoring information, if the exit occurred during event delivery.
    pub idt_vectoring: Option<ExitEvent>,
    /// The VM-exit instruction length.
    pub instruction_len: Option<u32>,
    /// The VM-exit instruction-information field.
    pub instruction_info: Option<u32>,
}

impl ExitInfo {
    /// An exit with only a reason and a qualification.
    pub fn new(reason: ExitReason, qualification: u64) -> Self {
        Self {
            reason,
            pending_mtf: false,
            qualification,
            guest_linear_address: None,
            guest_physical_address: None,
            interruption: None,
            idt_vectoring: None,
            instruction_len: None,
            instruction_info: None,
        }
    }
    /// An instruction-caused exit with its length.
    pub fn instruction(reason: ExitReason, qualification: u64, len: u32) -> Self {
        Self {
            instruction_len: Some(len),
            ..Self::new(reason, qualification)
        }
    }
}

/// The guest's state at the moment of the exit, after the architectural
/// adjustments of SDM Vol. 3C 28.1 (RIP of a fault-like exit references the
/// instruction, of a trap-like one the next instruction; RFLAGS.RF as specified).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestSnapshot {
    /// The system registers.
    pub regs: SystemRegs,
    /// RIP.
    pub rip: u64,
    /// RSP.
    pub rsp: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// Activity state.
    pub activity: ActivityState,
    /// Interruptibility; bit 3 is virtual-NMI blocking if "virtual NMIs" is 1.
    pub interruptibility: Interruptibility,
    /// Pending debug exceptions (DR6 format).
    pub pending_debug_exceptions: u64,
    /// The current VMX-preemption timer value, if the timer is active.
    pub preemption_timer: Option<u32>,
    /// The PDPTEs in use, if the guest uses PAE paging with EPT.
    pub pdptes: Option<[u64; 4]>,
}

/// VMX-abort indicators (SDM Vol. 3C 28.7, "VMX Aborts").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u32)]
pub enum VmxAbort {
    /// 1: a failure in saving guest MSRs.
    SavingGuestMsrs = 1,
    /// 2: host checking of the PDPTEs failed.
    HostPdptes = 2,
    /// 3: the current VMCS has been corrupted.
    VmcsCorrupted = 3,
    /// 4: a failure on loading host MSRs.
    LoadingHostMsrs = 4,
    /// 5: a machine-check event during VM exit.
    MachineCheck = 5,
    /// 6: the processor was in IA-32e mode and "host address-space size" is 0.
    HostAddressSpaceSize = 6,
}

impl VmxAbort {
    /// The VMX-abort indicator value.
    pub const fn indicator(self) -> u32 {
        self as u32
    }
}

/// The VM exit: records `info`, saves `guest`, stores guest MSRs, loads host state
/// and host MSRs, and leaves VMX non-root operation. On a VMX abort the abort
/// indicator is written to the VMCS region and the processor must enter the
/// VMX-abort shutdown state.
pub fn vm_exit(
    state: &mut VmxState,
    caps: &VmxCaps,
    info: &ExitInfo,
    guest: &GuestSnapshot,
    mem: &mut dyn PhysMem,
    msrs: &mut dyn MsrOracle,
) -> Result<HostLoad, VmxAbort> {
    let mut g = guest.clone();
    vm_exit_in_place(state, caps, info, &mut g, mem, msrs).map(|fields| HostLoad {
        regs: g.regs,
        fields,
    })
}

/// [`vm_exit`] on the guest snapshot itself: once the guest state and MSRs
/// are saved, the host state is loaded into `guest.regs`, which on success
/// holds the host's registers (the rest of the host state is returned), so
/// the registers are not copied into a new value. After a VMX abort they
/// are partly loaded.
pub fn vm_exit_in_place(
    state: &mut VmxState,
    caps: &VmxCaps,
    info: &ExitInfo,
    guest: &mut GuestSnapshot,
    mem: &mut dyn PhysMem,
    msrs: &mut dyn MsrOracle,
) -> Result<HostFields, VmxAbort> {
    state.non_root = false;
    let Some(cur) = state.current.as_mut() else {
        return Err(VmxAbort::VmcsCorrupted);
    };
    let ptr = cur.ptr;
    record(&mut cur.vmcs, caps, info, guest);
    save::save_guest_state(&mut cur.vmcs, guest);
    let result = save::store_msrs(&cur.vmcs, caps, &guest.regs, mem, msrs).and_then(|()| {
        let nmi = info.reason == ExitReason::ExceptionOrNmi
            && info
                .interruption
                .is_some_and(|e| e.info.kind() == crate::event::InterruptionType::Nmi);
        let mut load = load_host_state_in_place(&cur.vmcs, caps, &mut guest.regs, mem, msrs)?;
        load.block_nmi = nmi;
        Ok(load)
    });
    if let Err(a) = result {
        abort(mem, ptr, a);
    }
    result
}

/// Writes the VMX-abort indicator of the VMCS at `ptr`.
pub(crate) fn abort(mem: &mut dyn PhysMem, ptr: u64, a: VmxAbort) {
    mem.write_u32(ptr + ABORT_OFFSET, a.indicator(), Access::Vmcs);
}

/// 28.2: the exit-information fields, and the two VM-entry control updates.
fn record(v: &mut Vmcs, caps: &VmxCaps, info: &ExitInfo, guest: &GuestSnapshot) {
    let mut reason = info.reason.number() as u32;
    if info.pending_mtf {
        reason |= EXIT_REASON_PENDING_MTF;
    }
    v.set(Field::ExitReason, reason as u64);
    v.set(Field::ExitQualification, info.qualification);
    if let Some(a) = info.guest_linear_address {
        v.set(Field::GuestLinearAddress, a);
    }
    if let Some(a) = info.guest_physical_address {
        v.set(Field::GuestPhysicalAddress, a);
    }
    let event = |v: &mut Vmcs, e: Option<ExitEvent>, info_f: Field, code_f: Field| {
        v.set(info_f, e.map_or(0, |e| e.info.0 as u64));
        if let Some(code) = e.and_then(|e| e.error_code) {
            v.set(code_f, code as u64);
        }
    };
    event(
        v,
        info.interruption,
        Field::ExitInterruptionInfo,
        Field::ExitInterruptionErrorCode,
    );
    event(
        v,
        info.idt_vectoring,
        Field::IdtVectoringInfo,
        Field::IdtVectoringErrorCode,
    );
    if let Some(l) = info.instruction_len {
        v.set(Field::ExitInstructionLength, l as u64);
    }
    if let Some(i) = info.instruction_info {
        v.set(Field::ExitInstructionInfo, i as u64);
    }
    // VM exits clear the valid bit of the VM-entry interruption-information field.
    let entry_info = v.get(Field::EntryInterruptionInfo) & !(InterruptionInfo::VALID as u64);
    v.set(Field::EntryInterruptionInfo, entry_info);
    if caps.features.misc.store_lma_on_exit {
        let ia32e = crate::controls::EntryControls::IA32E_MODE_GUEST.bits() as u64;
        let entry = v.get(Field::EntryControls) & !ia32e;
        let lma = guest.regs.long_mode_active();
        v.set(Field::EntryControls, entry | if lma { ia32e } else { 0 });
    }
}

/// A VM-entry failure during or after loading guest state (SDM Vol. 3C 27.8):
/// only the exit reason (bit 31 set) and qualification are recorded, the guest
/// state is not saved, no MSRs are stored, then host state and host MSRs are
/// loaded from `regs` (the state at the failure) as on a VM exit.
pub fn entry_failure_exit(
    state: &mut VmxState,
    caps: &VmxCaps,
    reason: ExitReason,
    qualification: u64,
    regs: &SystemRegs,
    mem: &mut dyn PhysMem,
    msrs: &mut dyn MsrOracle,
) -> Result<HostLoad, VmxAbort> {
    state.non_root = false;
    let Some(cur) = state.current.as_mut() else {
        return Err(VmxAbort::VmcsCorrupted);
    };
    let v = &mut cur.vmcs;
    v.set(
        Field::ExitReason,
        (reason.number() as u32 | EXIT_REASON_ENTRY_FAILURE) as u64,
    );
    v.set(Field::ExitQualification, qualification);
    let result = load_host_state(v, caps, regs, mem, msrs);
    if let Err(a) = result {
        abort(mem, cur.ptr, a);
    }
    result
}
