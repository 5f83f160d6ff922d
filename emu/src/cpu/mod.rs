//! The logical processor's state: general-purpose registers, RIP, RFLAGS, the
//! system registers shared with the VMX/SVM models, x87/SSE state, MSRs and the
//! interrupt-blocking state (SDM Vol. 1 chapter 3, Vol. 3A chapter 2).

pub mod cpuid;
pub mod flags;
pub mod msr;
pub mod segmentation;

use mmu::{CpuMode, Cr0, Efer, Rflags, SegReg, SegmentCache, SystemRegs, TableRegister};
use serde::{Deserialize, Serialize};

pub use flags::{Flags, LazyOp};

/// General-purpose register numbers (SDM Vol. 2A table 2-2).
pub mod gpr {
    /// RAX.
    pub const RAX: usize = 0;
    /// RCX.
    pub const RCX: usize = 1;
    /// RDX.
    pub const RDX: usize = 2;
    /// RBX.
    pub const RBX: usize = 3;
    /// RSP.
    pub const RSP: usize = 4;
    /// RBP.
    pub const RBP: usize = 5;
    /// RSI.
    pub const RSI: usize = 6;
    /// RDI.
    pub const RDI: usize = 7;
}

/// Interrupt-blocking and activity state (SDM Vol. 3A 6.8.3, 6.7.1; Vol. 3C
/// 25.4.2 "Guest non-register state").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventState {
    /// Blocking by STI: interrupts are inhibited until after the next instruction.
    pub sti_blocking: bool,
    /// Blocking by MOV SS / POP SS: interrupts and debug traps are inhibited until
    /// after the next instruction.
    pub movss_blocking: bool,
    /// NMIs are blocked from NMI delivery until the next IRET.
    pub nmi_blocked: bool,
    /// An NMI is pending.
    pub nmi_pending: bool,
    /// The processor is in the HLT state.
    pub halted: bool,
    /// Pending single-step trap to raise after the current instruction
    /// (RFLAGS.TF was set when it began).
    pub single_step: bool,
}

/// The x87 FPU, MMX and SSE register state as FXSAVE lays it out
/// (SDM Vol. 1 10.5.1, table 10-2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FpuState {
    /// Control word.
    pub fcw: u16,
    /// Status word, TOP included.
    pub fsw: u16,
    /// Full tag word: 2 bits per physical register (0 valid, 1 zero, 2 special,
    /// 3 empty).
    pub ftw: u16,
    /// Last x87 opcode (11 bits).
    pub fop: u16,
    /// Last instruction pointer and its selector.
    pub fip: u64,
    /// Last instruction CS.
    pub fcs: u16,
    /// Last data pointer.
    pub fdp: u64,
    /// Last data DS.
    pub fds: u16,
    /// The eight physical registers R0-R7 as 80-bit values (64-bit significand
    /// in the low 8 bytes, sign and exponent in the top 2).
    pub st: [[u8; 10]; 8],
    /// MXCSR.
    pub mxcsr: u32,
    /// XMM0-XMM15.
    pub xmm: [u128; 16],
}

impl Default for FpuState {
    /// The state after FNINIT and reset (SDM Vol. 1 8.1.1, table 8-8? see
    /// "FINIT/FNINIT"; MXCSR reset value 1F80H, Vol. 1 10.2.3).
    fn default() -> Self {
        Self {
            fcw: 0x037f,
            fsw: 0,
            ftw: 0xffff,
            fop: 0,
            fip: 0,
            fcs: 0,
            fdp: 0,
            fds: 0,
            st: [[0; 10]; 8],
            mxcsr: 0x1f80,
            xmm: [0; 16],
        }
    }
}

/// The derived execution mode, recomputed whenever CR0, EFER, RFLAGS.VM or CS
/// change; the interpreter reads it on every instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeCache {
    /// Real, protected, virtual-8086, compatibility or 64-bit.
    pub mode: CpuMode,
    /// Current privilege level.
    pub cpl: u8,
    /// Code-segment default size in bits: 16, 32 or 64 (the decoder's bitness).
    pub code_bits: u8,
    /// Stack-address size in bits (SS.B, or 64 in 64-bit mode).
    pub stack_bits: u8,
}

impl Default for ModeCache {
    fn default() -> Self {
        Self {
            mode: CpuMode::Real,
            cpl: 0,
            code_bits: 16,
            stack_bits: 16,
        }
    }
}

/// One logical processor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    /// RAX..R15 in encoding order.
    pub gpr: [u64; 16],
    /// The instruction pointer of the current instruction.
    pub rip: u64,
    /// RFLAGS.
    pub flags: Flags,
    /// Control, debug, segment and descriptor-table registers and the system MSRs
    /// that VMX/SVM load and store.
    pub sys: SystemRegs,
    /// x87, MMX and SSE state.
    pub fpu: FpuState,
    /// The other MSRs.
    pub msr: msr::MsrFile,
    /// PKRU (protection keys for user pages).
    pub pkru: u32,
    /// The PAE page-directory-pointer-table registers (SDM Vol. 3A 4.4.1).
    pub pdptes: [u64; 4],
    /// Interrupt blocking and activity.
    pub events: EventState,
    /// Derived mode; see [`Cpu::update_mode`].
    pub mode: ModeCache,
}

impl Default for Cpu {
    fn default() -> Self {
        Self::reset()
    }
}

impl Cpu {
    /// The state after RESET (SDM Vol. 3A 10.1.1, table 10-1): real mode,
    /// CS.selector F000H with base FFFF0000H, IP FFF0H, DX = processor signature.
    pub fn reset() -> Self {
        let mut sys = SystemRegs {
            cr0: Cr0::ET | Cr0::CD | Cr0::NW,
            dr6: mmu::dr6::INIT,
            dr7: mmu::Dr7::FIXED1,
            pat: SystemRegs::PAT_RESET,
            xcr0: 1,
            ..SystemRegs::default()
        };
        for s in SegReg::ALL {
            *sys.seg_mut(s) = SegmentCache::real_mode(0, false);
        }
        let cs = sys.seg_mut(SegReg::Cs);
        cs.selector = mmu::Selector(0xf000);
        cs.base = 0xffff_0000;
        cs.attr = mmu::AccessRights(0x9b);
        sys.ldtr = SegmentCache {
            attr: mmu::AccessRights(0x82),
            limit: 0xffff,
            ..SegmentCache::default()
        };
        sys.tr = SegmentCache {
            attr: mmu::AccessRights(0x8b),
            limit: 0xffff,
            ..SegmentCache::default()
        };
        sys.gdtr = TableRegister {
            base: 0,
            limit: 0xffff,
        };
        sys.idtr = TableRegister {
            base: 0,
            limit: 0xffff,
        };
        let mut cpu = Self {
            gpr: [0; 16],
            rip: 0xfff0,
            flags: Flags::new(Rflags::FIXED1.bits()),
            sys,
            fpu: FpuState::default(),
            msr: msr::MsrFile::default(),
            pkru: 0,
            pdptes: [0; 4],
            events: EventState::default(),
            mode: ModeCache::default(),
        };
        cpu.update_mode();
        cpu
    }

    /// Recomputes [`Cpu::mode`] from CR0.PE, EFER.LMA, RFLAGS.VM, CS and SS
    /// (SDM Vol. 3A 2.2, "Modes of operation").
    pub fn update_mode(&mut self) {
        let cs = self.sys.seg(SegReg::Cs).attr;
        let ss = self.sys.seg(SegReg::Ss).attr;
        let pe = self.sys.cr0.contains(Cr0::PE);
        let vm = self.flags.has(Rflags::VM);
        let lma = self.sys.efer.contains(Efer::LMA);
        let (mode, cpl, code_bits, stack_bits) = if !pe {
            let cb = if cs.db() { 32 } else { 16 };
            let sb = if ss.db() { 32 } else { 16 };
            (CpuMode::Real, 0, cb, sb)
        } else if vm {
            (CpuMode::Virtual8086, 3, 16, 16)
        } else if lma && cs.l() {
            (CpuMode::Long64, ss.dpl(), 64, 64)
        } else {
            let cb = if cs.db() { 32 } else { 16 };
            let sb = if ss.db() { 32 } else { 16 };
            let m = if lma {
                CpuMode::Compatibility
            } else {
                CpuMode::Protected
            };
            (m, ss.dpl(), cb, sb)
        };
        self.mode = ModeCache {
            mode,
            cpl,
            code_bits,
            stack_bits,
        };
    }

    /// True in 64-bit mode.
    #[inline(always)]
    pub fn long64(&self) -> bool {
        self.mode.code_bits == 64
    }

    /// The current privilege level.
    #[inline(always)]
    pub fn cpl(&self) -> u8 {
        self.mode.cpl
    }

    /// A segment register.
    #[inline(always)]
    pub fn seg(&self, s: SegReg) -> &SegmentCache {
        &self.sys.segs[s as usize]
    }

    /// Reads a general-purpose register, full width.
    #[inline(always)]
    pub fn reg(&self, n: usize) -> u64 {
        self.gpr[n]
    }

    /// RSP.
    #[inline(always)]
    pub fn rsp(&self) -> u64 {
        self.gpr[gpr::RSP]
    }

    /// RFLAGS as a value.
    #[inline]
    pub fn rflags(&self) -> u64 {
        self.flags.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_state() {
        let c = Cpu::reset();
        assert_eq!(c.mode.mode, CpuMode::Real);
        assert_eq!(c.mode.code_bits, 16);
        assert_eq!(c.seg(SegReg::Cs).base + c.rip, 0xffff_fff0);
        assert_eq!(c.rflags(), 2);
    }

    #[test]
    fn mode_follows_cs() {
        let mut c = Cpu::reset();
        c.sys.cr0 |= Cr0::PE | Cr0::PG;
        c.sys.efer = Efer::LME | Efer::LMA;
        c.sys.segs[SegReg::Cs as usize] = SegmentCache::flat(8, 0xb, 0, false, true);
        c.update_mode();
        assert_eq!(c.mode.mode, CpuMode::Long64);
        c.sys.segs[SegReg::Cs as usize] = SegmentCache::flat(8, 0xb, 0, true, false);
        c.update_mode();
        assert_eq!(c.mode.mode, CpuMode::Compatibility);
        assert_eq!(c.mode.code_bits, 32);
    }
}
