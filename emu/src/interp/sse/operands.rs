//! What every MMX/SSE handler starts with: the availability checks (SDM
//! Vol. 3A 2.5 "Control registers", 13.1.4 "Initialization of the SSE
//! extensions", 12.1 "Emulation of the MMX instruction set"), MMX and XMM
//! register access, the MMX/x87 state transition (Vol. 3A 12.2 "Effect of
//! MMX, x87 FPU, FXSAVE and FXRSTOR instructions on the x87 FPU tag word"),
//! the operand reads and writes with legacy SSE's 16-byte alignment rule
//! (Vol. 1 4.1.1 "Alignment of words, doublewords, quadwords, and double
//! quadwords"; the "Exceptions" section of each Vol. 2 entry), and the MXCSR
//! update that ends a floating-point instruction (Vol. 1 11.5.1-11.5.3).

use super::fp::{flag, mxcsr, Env};
use crate::event::{Event, Flow};
use crate::machine::Machine;
use crate::memory::access::{AccessKind, Privilege};
use iced_x86::{Instruction, OpKind, Register};
use mmu::SegReg;
use mmu::{Cr0, Cr4, Exception};

/// FSW.ES, the x87 error-summary bit (SDM Vol. 1 8.1.3).
const FSW_ES: u16 = 1 << 7;
/// FSW.TOP, bits 11-13.
const FSW_TOP: u16 = 7 << 11;

/// The checks of an SSE-family instruction (SDM Vol. 3A 13.1.4 and the
/// "SIMD floating-point exceptions" / "Other exceptions" tables of Vol. 2
/// chapter 3, e.g. "Type 1 class exception conditions"): #UD if CR0.EM = 1
/// or CR4.OSFXSR = 0, then #NM if CR0.TS = 1.
#[inline(always)]
pub fn sse_check(m: &Machine) -> Result<(), Event> {
    let sys = &m.cpu.sys;
    if sys.cr0.contains(Cr0::EM) || !sys.cr4.contains(Cr4::OSFXSR) {
        return Err(Event::ud());
    }
    if sys.cr0.contains(Cr0::TS) {
        return Err(Event::nm());
    }
    Ok(())
}

/// The checks of an MMX instruction (SDM Vol. 3A 12.1 and 12.5 "Exception
/// handling in MMX code"; Vol. 2 "Exception conditions for legacy SIMD/MMX
/// instructions"): #UD if CR0.EM = 1, #NM if CR0.TS = 1, #MF if an unmasked
/// x87 exception is pending (with CR0.NE = 0, FERR# and the freeze of
/// legacy error reporting instead: `x87::state::pending_error`). CR4.OSFXSR
/// does not matter.
#[inline(always)]
pub fn mmx_check(m: &mut Machine) -> Result<(), Event> {
    let cr0 = m.cpu.sys.cr0;
    if cr0.contains(Cr0::EM) {
        return Err(Event::ud());
    }
    if cr0.contains(Cr0::TS) {
        return Err(Event::nm());
    }
    if m.cpu.fpu.fsw & FSW_ES != 0 {
        return crate::interp::x87::state::pending_error(m);
    }
    Ok(())
}

/// The checks of an SSE instruction that also touches an MMX register
/// (CVTPI2PS, MOVQ2DQ, ...): the SSE checks, then the pending-x87-error
/// check of MMX instructions.
#[inline(always)]
pub fn sse_mmx_check(m: &mut Machine) -> Result<(), Event> {
    sse_check(m)?;
    if m.cpu.fpu.fsw & FSW_ES != 0 {
        return crate::interp::x87::state::pending_error(m);
    }
    Ok(())
}

/// The number of an XMM register.
#[inline(always)]
pub fn xmm_n(r: Register) -> usize {
    (r as usize).wrapping_sub(Register::XMM0 as usize) & 15
}

/// The number of an MMX register.
#[inline(always)]
pub fn mm_n(r: Register) -> usize {
    (r as usize).wrapping_sub(Register::MM0 as usize) & 7
}

/// How a memory source operand is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mem {
    /// 16 bytes that must be 16-byte aligned (#GP(0) otherwise).
    Aligned,
    /// 16 bytes with no alignment requirement.
    Unaligned,
}

impl Machine {
    /// MMX register `n`: the low 64 bits of physical x87 register `n`
    /// (SDM Vol. 1 9.5 "Compatibility with x87 FPU architecture").
    #[inline(always)]
    pub fn mm(&self, n: usize) -> u64 {
        let r = &self.cpu.fpu.st[n];
        u64::from_le_bytes([r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]])
    }

    /// Writes MMX register `n`; the x87 register's sign and exponent (bits
    /// 64-79) become all ones (SDM Vol. 3A table 12-1, "Effects of MMX
    /// instructions on x87 FPU state").
    #[inline(always)]
    pub fn set_mm(&mut self, n: usize, v: u64) {
        let r = &mut self.cpu.fpu.st[n];
        r[..8].copy_from_slice(&v.to_le_bytes());
        r[8] = 0xff;
        r[9] = 0xff;
    }

    /// The x87-to-MMX transition every MMX instruction except EMMS makes:
    /// TOP = 0 and all tags valid (SDM Vol. 1 9.5.3 "Transitions between
    /// x87 FPU and MMX code").
    #[inline(always)]
    pub fn mmx_enter(&mut self) {
        self.cpu.fpu.fsw &= !FSW_TOP;
        self.cpu.fpu.ftw = 0;
    }

    /// EMMS: all tags empty (SDM Vol. 2A "EMMS").
    #[inline(always)]
    pub fn mmx_leave(&mut self) {
        self.cpu.fpu.ftw = 0xffff;
    }

    /// The linear address of the 16-byte memory operand. The alignment of
    /// an aligned operand is checked first: a misaligned operand that also
    /// leaves the canonical range (or its segment) is #GP(0) for the
    /// alignment, not #SS/#GP for the address, as the AMD CPU under the
    /// differential test does (the SDM lists both without an order).
    #[inline(always)]
    fn mem_la(&self, i: &Instruction, write: bool, how: Mem) -> Result<u64, Event> {
        let seg = self.mem_seg(i);
        let ea = self.effective_address(i);
        if how == Mem::Aligned {
            let base = if self.cpu.long64() && !matches!(seg, SegReg::Fs | SegReg::Gs) {
                0
            } else {
                self.cpu.sys.segs[seg as usize].base
            };
            if ea.wrapping_add(base) & 15 != 0 {
                return Err(Event::gp0());
            }
        }
        self.linear(seg, ea, 16, write)
    }

    /// Reads the 16-byte memory operand.
    #[inline]
    pub fn read_m128(&mut self, i: &Instruction, how: Mem) -> Result<u128, Event> {
        let la = self.mem_la(i, false, how)?;
        self.read_la128(la, how)
    }

    /// Reads 16 bytes at a linear address. Misalignment of an aligned
    /// operand is #GP(0), checked before any page fault. Unaligned 16-byte
    /// accesses raise no #AC: the SDM leaves that to the implementation (Vol.
    /// 3A 6.15 "Interrupt 17", MOVUPS/MOVUPD/MOVDQU/LDDQU), and nestemu
    /// chooses not to.
    #[inline]
    pub fn read_la128(&mut self, la: u64, how: Mem) -> Result<u128, Event> {
        if how == Mem::Aligned && la & 15 != 0 {
            return Err(Event::gp0());
        }
        if la & 0xfff <= 0xff0 {
            let pa = self.translate(la, AccessKind::Read, Privilege::Current)?;
            let lo = self.phys_read(pa, 8);
            let hi = self.phys_read(pa + 8, 8);
            return Ok((hi as u128) << 64 | lo as u128);
        }
        let mut b = [0u8; 16];
        self.read_linear_bytes(la, &mut b, Privilege::Current)?;
        Ok(u128::from_le_bytes(b))
    }

    /// Writes the 16-byte memory operand.
    #[inline]
    pub fn write_m128(&mut self, i: &Instruction, v: u128, how: Mem) -> Flow {
        let la = self.mem_la(i, true, how)?;
        if how == Mem::Aligned && la & 15 != 0 {
            return Err(Event::gp0());
        }
        if la & 0xfff <= 0xff0 {
            let pa = self.translate(la, AccessKind::Write, Privilege::Current)?;
            self.phys_write(pa, 8, v as u64)?;
            return self.phys_write(pa + 8, 8, (v >> 64) as u64);
        }
        self.write_linear_bytes(la, &v.to_le_bytes(), Privilege::Current)
    }

    /// Reads the memory operand of `size` (1, 2, 4 or 8) bytes.
    #[inline(always)]
    pub fn read_mem_op(&mut self, i: &Instruction, size: usize) -> Result<u64, Event> {
        let seg = self.mem_seg(i);
        let ea = self.effective_address(i);
        self.read_mem(seg, ea, size)
    }

    /// Writes the memory operand of `size` (1, 2, 4 or 8) bytes.
    #[inline(always)]
    pub fn write_mem_op(&mut self, i: &Instruction, size: usize, v: u64) -> Flow {
        let seg = self.mem_seg(i);
        let ea = self.effective_address(i);
        self.write_mem(seg, ea, size, v)
    }

    /// Operand `n` of an SSE instruction: an XMM register (all 128 bits) or
    /// memory of the instruction's memory size, zero-extended; 16-byte
    /// operands as `how` says.
    #[inline(always)]
    pub fn xmm_src(&mut self, i: &Instruction, n: u32, how: Mem) -> Result<u128, Event> {
        if i.op_kind(n) == OpKind::Register {
            return Ok(self.cpu.fpu.xmm[xmm_n(i.op_register(n))]);
        }
        match i.memory_size().size() {
            16 => self.read_m128(i, how),
            s => Ok(self.read_mem_op(i, s)? as u128),
        }
    }

    /// Operand `n` of an MMX instruction: an MMX register or memory of the
    /// instruction's memory size (8 or 4 bytes), zero-extended.
    #[inline(always)]
    pub fn mm_src(&mut self, i: &Instruction, n: u32) -> Result<u64, Event> {
        if i.op_kind(n) == OpKind::Register {
            return Ok(self.mm(mm_n(i.op_register(n))));
        }
        self.read_mem_op(i, i.memory_size().size())
    }

    /// Ends a SIMD floating-point instruction: merges the flags `env` raised
    /// into MXCSR and decides whether it faults (SDM Vol. 1 11.5.1 and
    /// 11.5.3? "Handling SIMD floating-point exceptions"). If any raised
    /// pre-computation exception (IE, DE, ZE) is unmasked, only the
    /// pre-computation flags are recorded; if any raised exception is
    /// unmasked, the instruction raises #XM (#UD if CR4.OSXMMEXCPT = 0, Vol.
    /// 3A 2.5) and writes no result.
    #[inline(always)]
    pub fn mxcsr_commit(&mut self, env: &Env) -> Flow {
        let raised = env.flags | env.done;
        if raised == 0 {
            return Ok(());
        }
        let mx = self.cpu.fpu.mxcsr;
        if env.flags & !(mx >> mxcsr::MASK_SHIFT) & flag::ALL == 0 {
            self.cpu.fpu.mxcsr = mx | raised;
            return Ok(());
        }
        self.simd_fault(env)
    }

    /// Ends one stage of an instruction whose later operations consume the
    /// rounded results of earlier ones (DPPS, DPPD): an unmasked exception
    /// stops it there, with the flags of the stages before it; otherwise the
    /// stage's flags are kept for the end.
    #[inline(always)]
    pub fn mxcsr_stage(&mut self, env: &mut Env) -> Flow {
        if env.flags & !(self.cpu.fpu.mxcsr >> mxcsr::MASK_SHIFT) & flag::ALL != 0 {
            return self.simd_fault(env);
        }
        env.done |= env.flags;
        env.flags = 0;
        Ok(())
    }

    #[cold]
    fn simd_fault(&mut self, env: &Env) -> Flow {
        let raised = env.flags;
        let unmasked = raised & !(self.cpu.fpu.mxcsr >> mxcsr::MASK_SHIFT) & flag::ALL;
        let recorded = if unmasked & flag::PRE != 0 {
            raised & flag::PRE
        } else {
            raised
        };
        self.cpu.fpu.mxcsr |= env.done | recorded;
        if self.cpu.sys.cr4.contains(Cr4::OSXMMEXCPT) {
            Err(Event::Exception(Exception::xm()))
        } else {
            Err(Event::ud())
        }
    }

    /// The floating-point environment of the current MXCSR.
    #[inline(always)]
    pub fn fp_env(&self) -> Env {
        Env::new(self.cpu.fpu.mxcsr)
    }
}
