//! The VT-x binding: VMX instructions, VM entry, VM exits and non-root
//! operation, through `vmx-model` (whose crate docs list the binding order).
//!
//! The model decides; this module gathers the facts from the machine (the
//! registers, the decoded instruction, guest memory) and applies the outcome
//! (register loads, event delivery, TLB effects, counters). Files by concept:
//!
//! - [`caps`]: the feature set this binding implements, the capability MSRs,
//!   IA32_FEATURE_CONTROL, CPUID.
//! - [`bus`]: physical memory and the MSR file as the model sees them.
//! - [`operands`]: exit qualifications and instruction information built from
//!   the decoded instruction.
//! - [`insn`]: the VMX instructions (VMXON ... INVVPID, VMCALL).
//! - [`entry`]: VMLAUNCH/VMRESUME, loading the guest, event injection.
//! - [`diag`]: the VM-entry failure diagnostic.
//! - [`exit`]: performing a VM exit (saving the guest, loading the host).
//! - [`intercept`]: the instructions that exit in VMX non-root operation.
//! - [`shadow`]: non-root changes that are not exits (CR read shadows and
//!   guest/host masks, the TSC offset, the TPR shadow).
//! - [`events`]: exceptions and interrupts, windows, the preemption timer, MTF,
//!   triple faults and task switches.
//! - [`ept`]: EPT and VPID for translations, EPT violations, INVEPT/INVVPID.

mod bus;
pub mod caps;
pub mod diag;
mod entry;
mod ept;
mod events;
mod exit;
mod insn;
mod intercept;
mod operands;
mod shadow;

pub use ept::{nested_fault, translation_context};
pub use events::{boundary, boundary_quiet, event_intercept, task_switch, triple_fault};
pub(crate) use events::{intr_enabled, intr_gate, nmi_gate};
pub use exit::perform_exit;
pub use insn::handler_for;
pub use intercept::intercept;
pub use shadow::{cr8_read, cr8_write, cr_read, cr_write, guest_tsc};

use crate::cpu::cpuid::{CpuModel, Feature, Vendor};
use crate::event::Flow;
use crate::machine::Machine;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use vmx_model::decide::{Controls, PauseLoop};
use vmx_model::exit::ExitInfo;
use vmx_model::{VmxCaps, VmxState};

/// VT-x state of the processor: the capabilities of the CPU model, the
/// architectural VMX state (VMXON pointer, current VMCS cached as hardware
/// caches it), what the current VM entry established, and the diagnostics.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VmxCpu {
    /// The capability MSRs and allowed control settings (shared: cloned into
    /// every call of the model). Derived from the CPU model, so a snapshot
    /// does not carry them: restoring rebuilds them.
    #[serde(skip, default = "default_caps")]
    pub caps: Arc<VmxCaps>,
    /// VMX operation and the current VMCS.
    pub state: VmxState,
    /// What the last VM entry established, valid in VMX non-root operation.
    pub guest: NonRoot,
    /// VM-entry failures, for `--stats`, traces and tests.
    pub diag: diag::Diagnostics,
}

/// The capabilities of the default model (replaced on restore).
fn default_caps() -> Arc<VmxCaps> {
    Arc::new(VmxCaps::new(caps::features(&CpuModel::intel())))
}

impl Default for VmxCpu {
    fn default() -> Self {
        Self::new(&CpuModel::intel())
    }
}

impl VmxCpu {
    /// The VT-x state of a processor of `model` after reset.
    pub fn new(model: &CpuModel) -> Self {
        Self {
            caps: Arc::new(VmxCaps::new(caps::features(model))),
            state: VmxState::default(),
            guest: NonRoot::default(),
            diag: diag::Diagnostics::default(),
        }
    }
}

/// The VMX-preemption timer of the running guest (SDM Vol. 3C 26.5.1): the
/// value VM entry loaded and the cycle count it started at. It counts down by
/// one each time bit X of the time-stamp counter changes, X being IA32_VMX_MISC
/// bits 4:0; the TSC is the modelled cycle counter, so expiry is deterministic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreemptionTimer {
    /// The value loaded at VM entry.
    pub start_value: u32,
    /// The cycle counter at VM entry.
    pub start_cycles: u64,
}

/// The state one VM entry establishes for VMX non-root operation (serde: it
/// belongs in a snapshot with [`VmxState`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonRoot {
    /// The VM-execution controls of the current VMCS, read at VM entry.
    pub ctls: Controls,
    /// The VPID (0 without "enable VPID").
    pub vpid: u16,
    /// "enable VPID".
    pub vpid_enabled: bool,
    /// The EPTP with "enable EPT".
    pub eptp: Option<u64>,
    /// "virtual NMIs".
    pub virtual_nmis: bool,
    /// Virtual-NMI blocking (with "virtual NMIs").
    pub virtual_nmi_blocked: bool,
    /// The VMX-preemption timer, if activated.
    pub timer: Option<PreemptionTimer>,
    /// PAUSE-loop exiting state.
    pub pause_loop: PauseLoop,
    /// A VM exit to take at the next instruction boundary (TPR below
    /// threshold, a pending MTF exit, a trap-like exit).
    pub pending: Option<PendingExit>,
    /// An instruction boundary was passed since VM entry: the next boundary
    /// takes a monitor-trap-flag exit.
    pub ran: bool,
    /// The next event delivery is the event VM entry injects: it does not
    /// consult the exception bitmap.
    pub injecting: bool,
    /// The current-VMCS pointer at VM entry (the level key for counters).
    pub vmcs: u64,
}

/// A VMX exit being performed: the exit information, and the guest RIP to
/// save when it is not the RIP of the current instruction (trap-like exits,
/// software exceptions).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingExit {
    /// Exit reason, qualification and the other exit-information fields.
    pub info: ExitInfo,
    /// The guest RIP to save, if not `cpu.rip`.
    pub rip: Option<u64>,
}

impl PendingExit {
    /// An exit with the information `info` and the current RIP.
    pub fn new(info: ExitInfo) -> Self {
        Self { info, rip: None }
    }
}

/// The event that performs `e`.
pub(crate) fn exit_event(m: &mut Machine, e: PendingExit) -> crate::event::Event {
    m.guest_exit(crate::virt::GuestExit::Vmx(e))
}

/// True if the CPU model has VT-x.
pub(crate) fn has_vmx(m: &Machine) -> bool {
    m.config.model.vendor == Vendor::Intel && m.config.model.has(Feature::Vmx)
}

/// Reads an MSR this extension owns (`Some(None)`: #GP), else `None`.
pub fn read_msr(m: &Machine, idx: u32) -> Option<Option<u64>> {
    caps::read_msr(m, idx)
}

/// Writes an MSR this extension owns, else `None`.
pub fn write_msr(m: &mut Machine, idx: u32, v: u64) -> Option<Flow> {
    caps::write_msr(m, idx, v)
}

/// A CPUID leaf this extension changes, else `None`.
pub fn cpuid(_m: &Machine, _leaf: u32, _sub: u32) -> Option<[u32; 4]> {
    // CPUID.1:ECX.VMX comes from the feature table; nothing else changes.
    None
}
