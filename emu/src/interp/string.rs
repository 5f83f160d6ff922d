//! String instructions: MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS with REP, REPE
//! and REPNE (SDM Vol. 2B, one entry each; Vol. 1 7.3.9 "String operations").
//!
//! The source is seg:rSI (segment overridable), the destination ES:rDI; the
//! address size picks SI/ESI/RSI and the counter CX/ECX/RCX. A REP loop runs at
//! most [`CHUNK`] iterations per execution and then re-executes itself, so
//! interrupts and the instruction limit are honoured between chunks, as
//! hardware takes interrupts between iterations. A fault leaves the registers
//! as the completed iterations left them and RIP at the instruction.

use super::operand::size_mask;
use crate::cpu::flags::LazyOp;
use crate::event::{Event, Flow};
use crate::machine::Machine;
use iced_x86::{Instruction, OpKind};
use mmu::SegReg;

/// Iterations per execution of a REP string instruction.
pub const CHUNK: u64 = 4096;

/// The address size (bytes) of a string instruction, from its memory operands.
fn addr_size(i: &Instruction) -> usize {
    for n in 0..i.op_count() {
        match i.op_kind(n) {
            OpKind::MemorySegSI | OpKind::MemorySegDI | OpKind::MemoryESDI => return 2,
            OpKind::MemorySegESI | OpKind::MemorySegEDI | OpKind::MemoryESEDI => return 4,
            OpKind::MemorySegRSI | OpKind::MemorySegRDI | OpKind::MemoryESRDI => return 8,
            _ => {}
        }
    }
    8
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Rep {
    None,
    /// REP / REPE (F3).
    Repe,
    /// REPNE (F2).
    Repne,
}

fn rep_of(i: &Instruction) -> Rep {
    if i.has_repne_prefix() {
        Rep::Repne
    } else if i.has_rep_prefix() {
        Rep::Repe
    } else {
        Rep::None
    }
}

/// Advances an index register (RSI = 6, RDI = 7) by one element.
#[inline(always)]
fn step_index(m: &mut Machine, reg: usize, size: usize, asize: usize) {
    let delta = if m.cpu.flags.df() {
        (size as u64).wrapping_neg()
    } else {
        size as u64
    };
    let v = m.cpu.gpr[reg].wrapping_add(delta);
    m.write_gpr_sized(reg, asize, v);
}

/// Runs `body` once, or as a REP loop. `compares` makes REPE/REPNE test ZF.
#[inline(always)]
fn repeat(
    m: &mut Machine,
    i: &Instruction,
    compares: bool,
    mut body: impl FnMut(&mut Machine, usize) -> Flow,
) -> Flow {
    let asize = addr_size(i);
    let rep = rep_of(i);
    if rep == Rep::None {
        return body(m, asize);
    }
    let cmask = size_mask(asize);
    let mut n = 0u64;
    loop {
        let c = m.cpu.gpr[1] & cmask;
        if c == 0 {
            break;
        }
        body(m, asize)?;
        m.write_gpr_sized(1, asize, c - 1);
        n += 1;
        if compares {
            let zf = m.cpu.flags.zf();
            if (rep == Rep::Repe && !zf) || (rep == Rep::Repne && zf) {
                break;
            }
        }
        // Yield between iterations after a chunk, or when an iteration hit a
        // data or I/O breakpoint (its trap follows this iteration). The
        // instruction re-executes for the rest with RF = 1, so events taken
        // in between push RF = 1 (SDM Vol. 3B 18.3.1.1); it retires once,
        // when the loop ends.
        if c - 1 != 0 && (n >= CHUNK || m.dbg.pending != 0) {
            m.next_rip = m.cpu.rip;
            m.stats.instructions -= 1;
            m.extra_steps += 1;
            m.cpu.flags.assign(mmu::Rflags::RF, true);
            m.stop_block = true;
            break;
        }
    }
    m.stats.cycles += n.saturating_sub(1) * m.config.cost.string as u64;
    Ok(())
}

/// MOVS.
pub fn movs(m: &mut Machine, i: &Instruction) -> Flow {
    let size = i.memory_size().size();
    let seg = m.mem_seg(i);
    repeat(m, i, false, |m, asize| {
        let amask = size_mask(asize);
        let v = m.read_mem(seg, m.cpu.gpr[6] & amask, size)?;
        m.write_mem(SegReg::Es, m.cpu.gpr[7] & amask, size, v)?;
        step_index(m, 6, size, asize);
        step_index(m, 7, size, asize);
        Ok(())
    })
}

/// CMPS: compares [seg:rSI] with ES:[rDI] (flags of source minus destination).
/// ES:[rDI] is read first: when both operands fault, hardware reports the
/// destination's address (the differential tests show it; QEMU orders its
/// loads the same way).
pub fn cmps(m: &mut Machine, i: &Instruction) -> Flow {
    let size = i.memory_size().size();
    let seg = m.mem_seg(i);
    repeat(m, i, true, |m, asize| {
        let amask = size_mask(asize);
        let b = m.read_mem(SegReg::Es, m.cpu.gpr[7] & amask, size)?;
        let a = m.read_mem(seg, m.cpu.gpr[6] & amask, size)?;
        m.cpu
            .flags
            .set_lazy(LazyOp::Sub, (size * 8) as u8, a, b, a.wrapping_sub(b));
        step_index(m, 6, size, asize);
        step_index(m, 7, size, asize);
        Ok(())
    })
}

/// STOS.
pub fn stos(m: &mut Machine, i: &Instruction) -> Flow {
    let size = i.memory_size().size();
    repeat(m, i, false, |m, asize| {
        let v = m.cpu.gpr[0] & size_mask(size);
        m.write_mem(SegReg::Es, m.cpu.gpr[7] & size_mask(asize), size, v)?;
        step_index(m, 7, size, asize);
        Ok(())
    })
}

/// LODS.
pub fn lods(m: &mut Machine, i: &Instruction) -> Flow {
    let size = i.memory_size().size();
    let seg = m.mem_seg(i);
    repeat(m, i, false, |m, asize| {
        let v = m.read_mem(seg, m.cpu.gpr[6] & size_mask(asize), size)?;
        m.write_gpr_sized(0, size, v);
        step_index(m, 6, size, asize);
        Ok(())
    })
}

/// SCAS: compares the accumulator with ES:[rDI].
pub fn scas(m: &mut Machine, i: &Instruction) -> Flow {
    let size = i.memory_size().size();
    repeat(m, i, true, |m, asize| {
        let a = m.cpu.gpr[0] & size_mask(size);
        let b = m.read_mem(SegReg::Es, m.cpu.gpr[7] & size_mask(asize), size)?;
        m.cpu
            .flags
            .set_lazy(LazyOp::Sub, (size * 8) as u8, a, b, a.wrapping_sub(b));
        step_index(m, 7, size, asize);
        Ok(())
    })
}

/// INS: port DX to ES:[rDI]. The destination is checked before the port is
/// read, so a fault loses no input.
pub fn ins(m: &mut Machine, i: &Instruction) -> Flow {
    let size = i.memory_size().size();
    let port = m.cpu.gpr[2] as u16;
    m.check_io(port, size)?;
    let rep = rep_of(i) != Rep::None;
    m.intercept(i, super::system::io_intercept(port, size, true, true, rep))?;
    repeat(m, i, false, |m, asize| {
        let off = m.cpu.gpr[7] & size_mask(asize);
        let la = m.linear(SegReg::Es, off, size, true)?;
        m.translate_range_check(la, size)?;
        let v = m.port_in(port, size)?;
        m.write_mem(SegReg::Es, off, size, v)?;
        step_index(m, 7, size, asize);
        Ok(())
    })
}

/// OUTS: [seg:rSI] to port DX.
pub fn outs(m: &mut Machine, i: &Instruction) -> Flow {
    let size = i.memory_size().size();
    let port = m.cpu.gpr[2] as u16;
    let seg = m.mem_seg(i);
    m.check_io(port, size)?;
    let rep = rep_of(i) != Rep::None;
    m.intercept(i, super::system::io_intercept(port, size, false, true, rep))?;
    repeat(m, i, false, |m, asize| {
        let v = m.read_mem(seg, m.cpu.gpr[6] & size_mask(asize), size)?;
        m.port_out(port, size, v)?;
        step_index(m, 6, size, asize);
        Ok(())
    })
}

impl Machine {
    /// Checks that a write of `size` bytes at linear `la` would translate.
    fn translate_range_check(&mut self, la: u64, size: usize) -> Result<(), Event> {
        use crate::memory::access::{AccessKind, Privilege};
        self.translate(la, AccessKind::Write, Privilege::Current)?;
        let last = self.wrap_linear(la.wrapping_add(size as u64 - 1));
        if last & !0xfff != la & !0xfff {
            self.translate(last, AccessKind::Write, Privilege::Current)?;
        }
        Ok(())
    }
}
