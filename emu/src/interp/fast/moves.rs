//! Pre-resolved data movement: MOV, MOVZX, MOVSX/MOVSXD, LEA, XCHG of two
//! registers, NOP, CMOVcc and SETcc, each as its handler in `data` does it
//! (SDM Vol. 2, one entry each).

use super::operands::{ea_if, effective, Imm, Mem, Place, Reg0, Reg1};
use super::{by_cc, cond, sized, Exec, Form, Op};
use crate::cpu::flags::sign_extend;
use crate::event::Flow;
use crate::interp::operand::size_mask;
use crate::machine::Machine;

/// MOV: read the source, write the destination.
#[inline(always)]
fn mov_op<D: Place, S: Place, const N: usize>(m: &mut Machine, op: &Op) -> Flow {
    let ea = ea_if::<D, S>(m, op);
    let v = S::read::<N>(m, op, ea)?;
    D::write::<N>(m, op, ea, v)
}

/// The function for MOV between general-purpose registers, memory and
/// immediates.
pub fn mov(op: &mut Op, f0: Form, f1: Form) -> Option<Exec> {
    let i = op.insn;
    let size = match (f0, f1) {
        (Form::Reg(_, s), Form::Reg(_, t)) if s == t => s,
        (Form::Reg(_, s), Form::Imm | Form::Mem) => s,
        (Form::Mem, _) => i.memory_size().size(),
        _ => return None,
    };
    if f1 == Form::Imm {
        op.imm = i.immediate(1) & size_mask(size);
    }
    match (f0, f1) {
        (Form::Reg(..), Form::Reg(..)) => sized!(size, mov_op::<Reg0, Reg1>),
        (Form::Reg(..), Form::Imm) => sized!(size, mov_op::<Reg0, Imm>),
        (Form::Reg(..), Form::Mem) => sized!(size, mov_op::<Reg0, Mem>),
        (Form::Mem, Form::Reg(..)) => sized!(size, mov_op::<Mem, Reg1>),
        (Form::Mem, Form::Imm) => sized!(size, mov_op::<Mem, Imm>),
        _ => None,
    }
}

/// MOVZX / MOVSX / MOVSXD from `SS` bytes to `SD` bytes.
#[inline(always)]
fn extend_op<S: Place, const SIGNED: bool, const SD: usize, const SS: usize>(
    m: &mut Machine,
    op: &Op,
) -> Flow {
    let ea = ea_if::<S, S>(m, op);
    let v = S::read::<SS>(m, op, ea)?;
    let v = if SIGNED {
        sign_extend(v, (SS * 8) as u8) as u64
    } else {
        v
    };
    m.write_gpr_sized(op.reg0(), SD, v);
    Ok(())
}

macro_rules! extend_pairs {
    ($src:ty, $signed:expr, $sd:expr, $ss:expr) => {
        match ($sd, $ss) {
            (2, 1) => Some(super::lifted!(extend_op::<$src, $signed, 2, 1>)),
            (4, 1) => Some(super::lifted!(extend_op::<$src, $signed, 4, 1>)),
            (8, 1) => Some(super::lifted!(extend_op::<$src, $signed, 8, 1>)),
            (2, 2) => Some(super::lifted!(extend_op::<$src, $signed, 2, 2>)),
            (4, 2) => Some(super::lifted!(extend_op::<$src, $signed, 4, 2>)),
            (8, 2) => Some(super::lifted!(extend_op::<$src, $signed, 8, 2>)),
            (4, 4) => Some(super::lifted!(extend_op::<$src, $signed, 4, 4>)),
            (8, 4) => Some(super::lifted!(extend_op::<$src, $signed, 8, 4>)),
            _ => None,
        }
    };
}

/// The function for MOVZX (`signed` false) and MOVSX/MOVSXD.
pub fn extend(op: &mut Op, f0: Form, f1: Form, signed: bool) -> Option<Exec> {
    let Form::Reg(_, sd) = f0 else {
        return None;
    };
    let (ss, mem) = match f1 {
        Form::Reg(_, s) => (s, false),
        // MOVSXD r16, m reads a doubleword on AMD (see `data::movsx`): the
        // vendor decides at run time, so the reference handler runs it.
        Form::Mem if op.insn.code() == iced_x86::Code::Movsxd_r16_rm16 => return None,
        Form::Mem => (op.insn.memory_size().size(), true),
        Form::Imm => return None,
    };
    match (mem, signed) {
        (false, false) => extend_pairs!(Reg1, false, sd, ss),
        (false, true) => extend_pairs!(Reg1, true, sd, ss),
        (true, false) => extend_pairs!(Mem, false, sd, ss),
        (true, true) => extend_pairs!(Mem, true, sd, ss),
    }
}

/// LEA: the effective address, truncated to the operand size.
#[inline(always)]
fn lea_op<const N: usize>(m: &mut Machine, op: &Op) -> Flow {
    let ea = effective(m, op);
    m.write_gpr_sized(op.reg0(), N, ea);
    Ok(())
}

/// The function for LEA.
pub fn lea(_op: &mut Op, f0: Form) -> Option<Exec> {
    let Form::Reg(_, size) = f0 else {
        return None;
    };
    if size == 1 {
        return None;
    }
    sized!(size, lea_op)
}

/// XCHG of two registers: the second gets the first's value, then the
/// first the second's.
#[inline(always)]
fn xchg_op<const N: usize>(m: &mut Machine, op: &Op) -> Flow {
    let a = m.cpu.gpr[op.reg0()] & size_mask(N);
    let b = m.cpu.gpr[op.reg1()] & size_mask(N);
    m.write_gpr_sized(op.reg1(), N, a);
    m.write_gpr_sized(op.reg0(), N, b);
    Ok(())
}

/// The function for XCHG of two registers.
pub fn xchg(f0: Form, f1: Form) -> Option<Exec> {
    match (f0, f1) {
        (Form::Reg(_, s), Form::Reg(_, t)) if s == t => sized!(s, xchg_op),
        _ => None,
    }
}

/// NOP.
pub fn nop(_: &mut Machine, _: &Op) -> super::Step {
    Ok(())
}

/// CMOVcc: the source is always read; a false condition still
/// zero-extends a 32-bit destination.
#[inline(always)]
fn cmov_op<S: Place, const N: usize, const CC: u8>(m: &mut Machine, op: &Op) -> Flow {
    let ea = ea_if::<S, S>(m, op);
    let v = S::read::<N>(m, op, ea)?;
    if cond::<CC>(m) {
        m.write_gpr_sized(op.reg0(), N, v);
    } else if N == 4 {
        let cur = m.cpu.gpr[op.reg0()] & 0xffff_ffff;
        m.write_gpr_sized(op.reg0(), 4, cur);
    }
    Ok(())
}

fn cmov_sized<S: Place, const N: usize>(op: &Op) -> Option<Exec> {
    by_cc!(op.insn.condition_code(), cmov_op::<S, N>)
}

/// The function for CMOVcc.
pub fn cmovcc(op: &mut Op, f0: Form, f1: Form) -> Option<Exec> {
    let Form::Reg(_, size) = f0 else {
        return None;
    };
    match f1 {
        Form::Reg(_, s) if s == size => match size {
            2 => cmov_sized::<Reg1, 2>(op),
            4 => cmov_sized::<Reg1, 4>(op),
            8 => cmov_sized::<Reg1, 8>(op),
            _ => None,
        },
        Form::Mem => match size {
            2 => cmov_sized::<Mem, 2>(op),
            4 => cmov_sized::<Mem, 4>(op),
            8 => cmov_sized::<Mem, 8>(op),
            _ => None,
        },
        _ => None,
    }
}

/// SETcc.
#[inline(always)]
fn setcc_op<D: Place, const CC: u8>(m: &mut Machine, op: &Op) -> Flow {
    let ea = ea_if::<D, D>(m, op);
    let v = cond::<CC>(m) as u64;
    D::write::<1>(m, op, ea, v)
}

/// The function for SETcc.
pub fn setcc(op: &mut Op, f0: Form) -> Option<Exec> {
    match f0 {
        Form::Reg(_, 1) => by_cc!(op.insn.condition_code(), setcc_op::<Reg0>),
        Form::Mem => by_cc!(op.insn.condition_code(), setcc_op::<Mem>),
        _ => None,
    }
}
