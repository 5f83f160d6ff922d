//! The VMX instructions as pure functions (SDM Vol. 3C 31.3, "VMX Instructions").
//!
//! Each function follows the manual's pseudocode in order: the #UD conditions, the
//! VM exit in VMX non-root operation, #GP(0) for CPL > 0, then VMfailInvalid /
//! VMfailValid(n) / VMsucceed. Memory operands are read through a closure called
//! exactly where the pseudocode reads them, so a fault on the operand is ordered
//! correctly against the other outcomes. On VMfailValid the error number is
//! written to the VM-instruction error field of the current VMCS here; the
//! machine only applies [`Outcome::rflags`].

mod inv;
mod launch;
mod pointer;
mod rw;
mod vmxon;

pub use inv::{invept, invvpid, Invalidation};
pub use launch::{vmlaunch, vmresume, LaunchOutcome};
pub use pointer::{vmclear, vmptrld, vmptrst};
pub use rw::{vmread, vmwrite};
pub use vmxon::{vmcall, vmxoff, vmxon};

use crate::caps::FeatureControl;
use crate::error::VmInstructionError;
use crate::exit::ExitReason;
use crate::vmcs::{Field, OperandSize, VmxState};
use mmu::{CpuMode, Cr0, Cr4, Efer, Exception, Rflags};
use serde::{Deserialize, Serialize};

/// The processor state a VMX instruction looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsnCtx {
    /// Current privilege level.
    pub cpl: u8,
    /// Operating mode (real, protected, virtual-8086, compatibility, 64-bit).
    pub mode: CpuMode,
    /// CR0.
    pub cr0: Cr0,
    /// CR4.
    pub cr4: Cr4,
    /// IA32_EFER (VM entry checks LMA against the address-space-size controls).
    pub efer: Efer,
    /// IA32_FEATURE_CONTROL.
    pub feature_control: FeatureControl,
    /// True while the A20M# pin masks address bit 20 (VMXON raises #GP(0)).
    pub a20m: bool,
    /// True if events are blocked by MOV SS (VMLAUNCH/VMRESUME fail with error 26).
    pub blocked_by_mov_ss: bool,
}

impl InsnCtx {
    /// A 64-bit CPL-0 context with VMX enabled and IA32_FEATURE_CONTROL locked.
    pub fn long_mode_cpl0() -> Self {
        Self {
            cpl: 0,
            mode: CpuMode::Long64,
            cr0: Cr0::PE | Cr0::NE | Cr0::PG | Cr0::ET,
            cr4: Cr4::PAE | Cr4::VMXE,
            efer: Efer::LME | Efer::LMA,
            feature_control: FeatureControl(FeatureControl::LOCK | FeatureControl::VMX_OUTSIDE_SMX),
            a20m: false,
            blocked_by_mov_ss: false,
        }
    }

    /// The VMREAD/VMWRITE operand size of this mode.
    pub fn operand_size(&self) -> OperandSize {
        match self.mode {
            CpuMode::Long64 => OperandSize::Bits64,
            _ => OperandSize::Bits32,
        }
    }
}

/// The outcome of a VMX instruction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome<T = ()> {
    /// VMsucceed, with the instruction's result (VMREAD value, VMPTRST pointer, ...).
    Succeed(T),
    /// VMfailInvalid: CF = 1.
    FailInvalid,
    /// VMfailValid(n): ZF = 1, error `n` stored in the current VMCS.
    FailValid(VmInstructionError),
    /// The instruction faults.
    Fault(Exception),
    /// In VMX non-root operation the instruction causes a VM exit with this reason;
    /// the machine builds the exit information and calls the exit path.
    Exit(ExitReason),
}

impl<T> Outcome<T> {
    /// RFLAGS after the instruction (SDM Vol. 3C 31.2, "Conventions"): VMsucceed
    /// clears CF, PF, AF, ZF, SF and OF; VMfailInvalid sets CF; VMfailValid sets ZF.
    /// Faults and exits leave RFLAGS unchanged.
    pub fn rflags(&self, rflags: u64) -> u64 {
        let cleared = rflags & !Rflags::STATUS.bits();
        match self {
            Outcome::Succeed(_) => cleared,
            Outcome::FailInvalid => cleared | Rflags::CF.bits(),
            Outcome::FailValid(_) => cleared | Rflags::ZF.bits(),
            Outcome::Fault(_) | Outcome::Exit(_) => rflags,
        }
    }

    /// True for VMsucceed.
    pub fn succeeded(&self) -> bool {
        matches!(self, Outcome::Succeed(_))
    }
}

/// The checks every VMX instruction but VMXON and VMCALL starts with: #UD outside
/// VMX operation, in real, virtual-8086 and compatibility mode; a VM exit in VMX
/// non-root operation; #GP(0) at CPL > 0.
pub(crate) fn prologue<T>(
    state: &VmxState,
    ctx: &InsnCtx,
    reason: ExitReason,
) -> Option<Outcome<T>> {
    if undefined(state, ctx) {
        return Some(Outcome::Fault(Exception::ud()));
    }
    if state.non_root {
        return Some(Outcome::Exit(reason));
    }
    if ctx.cpl > 0 {
        return Some(Outcome::Fault(Exception::gp0()));
    }
    None
}

/// The common #UD condition: outside VMX operation, or CR0.PE = 0, RFLAGS.VM = 1,
/// or compatibility mode.
pub(crate) fn undefined(state: &VmxState, ctx: &InsnCtx) -> bool {
    !state.in_vmx_operation()
        || !ctx.cr0.contains(Cr0::PE)
        || matches!(
            ctx.mode,
            CpuMode::Real | CpuMode::Virtual8086 | CpuMode::Compatibility
        )
}

/// VMfail(n): VMfailInvalid without a current VMCS, else VMfailValid(n) with the
/// error stored in the current VMCS.
pub(crate) fn vmfail<T>(state: &mut VmxState, err: VmInstructionError) -> Outcome<T> {
    match state.vmcs_mut() {
        Some(v) => {
            v.set(Field::VmInstructionError, err.number() as u64);
            Outcome::FailValid(err)
        }
        None => Outcome::FailInvalid,
    }
}

/// True if `pa` is 4-KByte aligned and within MAXPHYADDR.
pub(crate) fn page_address_ok(caps: &crate::VmxCaps, pa: u64) -> bool {
    pa & 0xfff == 0 && !caps.features.widths.exceeds_phys(pa)
}

#[cfg(test)]
mod tests;
