//! Operand places of pre-resolved operations: the register named by
//! [`Op::r0`] or [`Op::r1`], the immediate, the memory operand. Each reads
//! and writes as `Machine::read_op` / `Machine::write_op` do for that kind
//! of operand.

use super::{Op, NO_REG, RIP_REL};
use crate::event::{Event, Flow};
use crate::interp::operand::size_mask;
use crate::machine::Machine;
use mmu::SegReg;

/// The effective address of the memory operand (as
/// `Machine::effective_address` computes it: base, index and displacement
/// wrapped to the address size; RIP-relative from the next instruction).
#[inline(always)]
pub fn effective(m: &Machine, op: &Op) -> u64 {
    if op.base == RIP_REL {
        return op.disp.wrapping_add(m.next_rip) & op.amask;
    }
    let mut ea = op.disp;
    if op.base != NO_REG {
        ea = ea.wrapping_add(m.cpu.gpr[(op.base & 15) as usize]);
    }
    if op.index != NO_REG {
        ea = ea.wrapping_add(m.cpu.gpr[(op.index & 15) as usize] << op.scale);
    }
    ea & op.amask
}

/// The segment of the memory operand.
#[inline(always)]
pub fn segment(op: &Op) -> SegReg {
    SegReg::ALL[op.seg as usize]
}

/// An operand place.
pub trait Place {
    /// True for the memory operand (its effective address is computed once
    /// per instruction and passed in as `ea`).
    const MEM: bool;
    /// Reads `S` bytes, zero-extended.
    fn read<const S: usize>(m: &mut Machine, op: &Op, ea: u64) -> Result<u64, Event>;
    /// Reads `S` bytes of a read-modify-write destination: memory is
    /// translated with write intent, as `Machine::read_mem_rmw` does.
    #[inline(always)]
    fn read_rmw<const S: usize>(m: &mut Machine, op: &Op, ea: u64) -> Result<u64, Event> {
        Self::read::<S>(m, op, ea)
    }
    /// Writes the result of a flag-setting operation: if the write raises
    /// an event, the flags go back to `before` (the reference handlers set
    /// the flags only after the write).
    #[inline(always)]
    fn commit<const S: usize>(
        m: &mut Machine,
        op: &Op,
        ea: u64,
        v: u64,
        before: crate::cpu::flags::Flags,
    ) -> Flow {
        let r = Self::write::<S>(m, op, ea, v);
        if Self::MEM && r.is_err() {
            m.cpu.flags = before;
        }
        r
    }
    /// Writes the low `S` bytes of `v` (register writes follow the width
    /// rules of `Machine::write_gpr_sized`).
    fn write<const S: usize>(m: &mut Machine, op: &Op, ea: u64, v: u64) -> Flow;
}

/// The register of [`Op::r0`].
pub struct Reg0;
/// The register of [`Op::r1`].
pub struct Reg1;
/// The immediate [`Op::imm`] (read only).
pub struct Imm;
/// The memory operand.
pub struct Mem;

impl Place for Reg0 {
    const MEM: bool = false;
    #[inline(always)]
    fn read<const S: usize>(m: &mut Machine, op: &Op, _: u64) -> Result<u64, Event> {
        Ok(m.cpu.gpr[op.reg0()] & size_mask(S))
    }
    #[inline(always)]
    fn write<const S: usize>(m: &mut Machine, op: &Op, _: u64, v: u64) -> Flow {
        m.write_gpr_sized(op.reg0(), S, v);
        Ok(())
    }
}

impl Place for Reg1 {
    const MEM: bool = false;
    #[inline(always)]
    fn read<const S: usize>(m: &mut Machine, op: &Op, _: u64) -> Result<u64, Event> {
        Ok(m.cpu.gpr[op.reg1()] & size_mask(S))
    }
    #[inline(always)]
    fn write<const S: usize>(m: &mut Machine, op: &Op, _: u64, v: u64) -> Flow {
        m.write_gpr_sized(op.reg1(), S, v);
        Ok(())
    }
}

impl Place for Imm {
    const MEM: bool = false;
    #[inline(always)]
    fn read<const S: usize>(_: &mut Machine, op: &Op, _: u64) -> Result<u64, Event> {
        Ok(op.imm)
    }
    #[inline(always)]
    fn write<const S: usize>(_: &mut Machine, _: &Op, _: u64, _: u64) -> Flow {
        unreachable!("an immediate is never written")
    }
}

impl Place for Mem {
    const MEM: bool = true;
    #[inline(always)]
    fn read<const S: usize>(m: &mut Machine, op: &Op, ea: u64) -> Result<u64, Event> {
        m.read_fast::<S>(segment(op), ea)
    }
    #[inline(always)]
    fn read_rmw<const S: usize>(m: &mut Machine, op: &Op, ea: u64) -> Result<u64, Event> {
        m.read_fast_rmw::<S>(segment(op), ea)
    }
    #[inline(always)]
    fn write<const S: usize>(m: &mut Machine, op: &Op, ea: u64, v: u64) -> Flow {
        m.write_fast::<S>(segment(op), ea, v)
    }
}

/// The effective address when one of the places is memory, else 0.
#[inline(always)]
pub fn ea_if<A: Place, B: Place>(m: &Machine, op: &Op) -> u64 {
    if A::MEM || B::MEM {
        effective(m, op)
    } else {
        0
    }
}
