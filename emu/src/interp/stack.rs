//! Stack instructions: PUSH, POP, PUSHA/POPA, PUSHF/POPF, ENTER, LEAVE
//! (SDM Vol. 2B, one entry each) and the push/pop primitives every other
//! instruction uses. The stack-address size is SS.B (or 64 in 64-bit mode);
//! RSP is committed only after the memory access succeeded.

use super::operand::size_mask;
use crate::event::{Event, Flow};
use crate::machine::Machine;
use iced_x86::Instruction;
use mmu::{CpuMode, Rflags, SegReg};

impl Machine {
    /// The stack-pointer mask for the current stack-address size.
    #[inline(always)]
    pub fn sp_mask(&self) -> u64 {
        size_mask((self.cpu.mode.stack_bits / 8) as usize)
    }

    /// Writes RSP honouring the stack-address size (a 16-bit stack changes SP
    /// only).
    #[inline(always)]
    pub fn set_sp(&mut self, v: u64) {
        let mask = self.sp_mask();
        let rsp = &mut self.cpu.gpr[4];
        *rsp = (*rsp & !mask) | (v & mask);
    }

    /// Pushes `size` bytes.
    #[inline(always)]
    pub fn push(&mut self, v: u64, size: usize) -> Flow {
        let mask = self.sp_mask();
        let sp = self.cpu.gpr[4].wrapping_sub(size as u64) & mask;
        self.write_mem(SegReg::Ss, sp, size, v)?;
        self.set_sp(sp);
        Ok(())
    }

    /// Reads `size` bytes at the top of the stack plus `offset`, without
    /// popping.
    #[inline(always)]
    pub fn peek_stack(&mut self, offset: u64, size: usize) -> Result<u64, Event> {
        let sp = self.cpu.gpr[4].wrapping_add(offset) & self.sp_mask();
        self.read_mem(SegReg::Ss, sp, size)
    }

    /// Pops `size` bytes.
    #[inline(always)]
    pub fn pop(&mut self, size: usize) -> Result<u64, Event> {
        let v = self.peek_stack(0, size)?;
        let sp = self.cpu.gpr[4].wrapping_add(size as u64);
        self.set_sp(sp);
        Ok(v)
    }
}

/// The operand size of a stack instruction, from iced-x86's stack-pointer
/// increment.
#[inline(always)]
pub fn stack_size(i: &Instruction) -> usize {
    i.stack_pointer_increment().unsigned_abs() as usize
}

/// PUSH r/m/imm.
pub fn push(m: &mut Machine, i: &Instruction) -> Flow {
    let size = stack_size(i);
    let v = m.read_op(i, 0)?;
    m.push(v & size_mask(size), size)
}

/// PUSH ES/CS/SS/DS/FS/GS: the selector, zero-extended (current processors
/// write only the low 16 bits of a 32-bit slot; the rest of the slot keeps its
/// old contents, SDM Vol. 2B PUSH).
pub fn push_sreg(m: &mut Machine, i: &Instruction) -> Flow {
    let size = stack_size(i);
    let sel = m
        .cpu
        .seg(super::operand::seg_of(i.op0_register()))
        .selector
        .0 as u64;
    if size == 2 {
        return m.push(sel, 2);
    }
    let sp = m.cpu.gpr[4].wrapping_sub(size as u64) & m.sp_mask();
    // Check the whole slot, then write the selector word.
    m.linear(SegReg::Ss, sp, size, true)?;
    m.write_mem(SegReg::Ss, sp, 2, sel)?;
    m.set_sp(sp);
    Ok(())
}

/// POP r/m. With RSP as the base of a memory destination, the address uses
/// the incremented RSP (SDM Vol. 2B POP).
pub fn pop(m: &mut Machine, i: &Instruction) -> Flow {
    let size = stack_size(i);
    let old = m.cpu.gpr[4];
    let v = m.pop(size)?;
    if let Err(e) = m.write_op(i, 0, v) {
        m.cpu.gpr[4] = old;
        return Err(e);
    }
    Ok(())
}

/// PUSHA / PUSHAD.
pub fn pusha(m: &mut Machine, i: &Instruction) -> Flow {
    let size = if i.mnemonic() == iced_x86::Mnemonic::Pushad {
        4
    } else {
        2
    };
    let old = m.cpu.gpr[4];
    let sp = old & size_mask(size);
    for r in 0..8 {
        let v = if r == 4 { sp } else { m.cpu.gpr[r] };
        if let Err(e) = m.push(v & size_mask(size), size) {
            m.cpu.gpr[4] = old;
            return Err(e);
        }
    }
    Ok(())
}

/// POPA / POPAD (the stored SP is skipped).
pub fn popa(m: &mut Machine, i: &Instruction) -> Flow {
    let size = if i.mnemonic() == iced_x86::Mnemonic::Popad {
        4
    } else {
        2
    };
    let mut vals = [0u64; 8];
    for (k, v) in vals.iter_mut().enumerate() {
        *v = m.peek_stack((k * size) as u64, size)?;
    }
    for (k, v) in vals.iter().enumerate() {
        let r = 7 - k;
        if r != 4 {
            m.write_gpr_sized(r, size, *v);
        }
    }
    let sp = m.cpu.gpr[4].wrapping_add(8 * size as u64);
    m.set_sp(sp);
    Ok(())
}

/// PUSHF/PUSHFD/PUSHFQ: RFLAGS with VM and RF cleared; #GP(0) in
/// virtual-8086 mode with IOPL < 3.
pub fn pushf(m: &mut Machine, i: &Instruction) -> Flow {
    m.intercept(i, crate::virt::Intercept::Pushf)?;
    if m.cpu.mode.mode == CpuMode::Virtual8086 && m.cpu.flags.rflags().iopl() < 3 {
        return Err(Event::gp0());
    }
    let size = stack_size(i);
    let v = m.cpu.flags.get() & !(Rflags::VM | Rflags::RF).bits();
    m.push(v & size_mask(size), size)
}

/// POPF/POPFD/POPFQ with the privilege rules of SDM Vol. 2B POPF: IOPL changes
/// only at CPL 0, IF only at CPL <= IOPL; VM, VIP, VIF never change; RF is
/// cleared; a 16-bit pop changes only the low word.
pub fn popf(m: &mut Machine, i: &Instruction) -> Flow {
    m.intercept(i, crate::virt::Intercept::Popf)?;
    let size = stack_size(i);
    let iopl = m.cpu.flags.rflags().iopl();
    let mode = m.cpu.mode.mode;
    if mode == CpuMode::Virtual8086 && iopl < 3 {
        return Err(Event::gp0());
    }
    let v = m.pop(size)?;
    let mut mask = Rflags::DEFINED & !(Rflags::VM | Rflags::VIP | Rflags::VIF | Rflags::RF).bits();
    let cpl = m.cpu.cpl();
    if mode == CpuMode::Virtual8086 || (mode != CpuMode::Real && cpl > 0) {
        mask &= !Rflags::IOPL.bits();
    }
    if mode != CpuMode::Real && mode != CpuMode::Virtual8086 && cpl > iopl {
        mask &= !Rflags::IF.bits();
    }
    if size == 2 {
        mask &= 0xffff;
    }
    let old_if = m.cpu.flags.iflag();
    m.cpu.flags.set_masked(v, mask);
    m.cpu.flags.assign(Rflags::RF, false);
    m.cpu.update_mode();
    if m.cpu.flags.iflag() != old_if || m.cpu.flags.has(Rflags::TF) {
        m.stop_block = true;
    }
    Ok(())
}

/// ENTER imm16, imm8 (SDM Vol. 2A ENTER "Operation").
pub fn enter(m: &mut Machine, i: &Instruction) -> Flow {
    let size = match i.code() {
        iced_x86::Code::Enterw_imm16_imm8 => 2,
        iced_x86::Code::Enterd_imm16_imm8 => 4,
        _ => 8,
    };
    let alloc = i.immediate16() as u64;
    let level = (i.immediate8_2nd() & 31) as u64;
    let old_rsp = m.cpu.gpr[4];
    let old_rbp = m.cpu.gpr[5];
    let result = (|| {
        let sp_mask = m.sp_mask();
        m.push(old_rbp & size_mask(size), size)?;
        let frame = m.cpu.gpr[4] & sp_mask;
        let mut bp = old_rbp;
        for _ in 1..level {
            bp = bp.wrapping_sub(size as u64);
            let v = m.read_mem(SegReg::Ss, bp & sp_mask, size)?;
            m.push(v, size)?;
        }
        if level > 0 {
            m.push(frame & size_mask(size), size)?;
        }
        let sp = (m.cpu.gpr[4].wrapping_sub(alloc)) & sp_mask;
        // SDM Vol. 2A ENTER: #PF "if a write using the final value of the
        // stack pointer would cause a page fault": the new stack top is
        // checked as an operand-size write (alignment included: hardware
        // raises #AC for a misaligned final RSP with CR0.AM and RFLAGS.AC).
        m.probe_write(SegReg::Ss, sp, size)?;
        m.write_gpr_sized(5, size, frame);
        m.set_sp(sp);
        Ok(())
    })();
    if result.is_err() {
        m.cpu.gpr[4] = old_rsp;
        m.cpu.gpr[5] = old_rbp;
    }
    result
}

/// LEAVE: rSP = rBP; pop rBP.
pub fn leave(m: &mut Machine, i: &Instruction) -> Flow {
    let size = match i.op_count() {
        _ if i.code() == iced_x86::Code::Leavew => 2,
        _ if i.code() == iced_x86::Code::Leaved => 4,
        _ => 8,
    };
    let old = m.cpu.gpr[4];
    let bp = m.cpu.gpr[5];
    m.set_sp(bp);
    match m.pop(size) {
        Ok(v) => {
            m.write_gpr_sized(5, size, v);
            Ok(())
        }
        Err(e) => {
            m.cpu.gpr[4] = old;
            Err(e)
        }
    }
}
