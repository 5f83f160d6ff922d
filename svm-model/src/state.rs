//! The processor state VMRUN and #VMEXIT exchange with the interpreter.

use mmu::{CpuMode, Cr0, Efer, Rflags, SegReg, SystemRegs};
use serde::{Deserialize, Serialize};

/// The architectural state VMRUN and #VMEXIT load and store: the system
/// registers plus the four registers the VMCB holds outside them (RIP, RSP, RAX,
/// RFLAGS) and the CPL, which the VMCB stores in its own field (APM Vol. 2 15.5.1).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CpuState {
    /// Control, debug, segment and descriptor-table registers and MSRs.
    pub regs: SystemRegs,
    /// RIP. For the host at VMRUN: the address of the instruction after VMRUN.
    pub rip: u64,
    /// RSP.
    pub rsp: u64,
    /// RAX.
    pub rax: u64,
    /// RFLAGS.
    pub rflags: Rflags,
    /// CPL.
    pub cpl: u8,
}

impl CpuState {
    /// The operating mode these registers describe.
    pub fn mode(&self) -> CpuMode {
        cpu_mode(&self.regs, self.rflags)
    }
}

/// The operating mode of `regs` with `rflags` (APM Vol. 2 1.2, "Modes of
/// operation"). Paged real mode (PE = 0, PG = 1) is real mode.
pub fn cpu_mode(regs: &SystemRegs, rflags: Rflags) -> CpuMode {
    if !regs.cr0.contains(Cr0::PE) {
        CpuMode::Real
    } else if regs.efer.contains(Efer::LMA) {
        if regs.seg(SegReg::Cs).attr.l() {
            CpuMode::Long64
        } else {
            CpuMode::Compatibility
        }
    } else if rflags.contains(Rflags::VM) {
        CpuMode::Virtual8086
    } else {
        CpuMode::Protected
    }
}

/// Effective address size of an instruction, for rAX-implicit operands
/// (VMRUN, VMLOAD, VMSAVE, INVLPGA; APM Vol. 3) and IOIO exit information.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AddressSize {
    /// 16-bit.
    A16,
    /// 32-bit.
    A32,
    /// 64-bit.
    A64,
}

impl AddressSize {
    /// Masks `v` to this address size.
    pub const fn mask(self, v: u64) -> u64 {
        match self {
            AddressSize::A16 => v & 0xffff,
            AddressSize::A32 => v & 0xffff_ffff,
            AddressSize::A64 => v,
        }
    }
}
