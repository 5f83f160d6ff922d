//! Pre-resolved near control transfers and stack operations: Jcc, JMP and
//! CALL relative, RET, PUSH and POP of a register, PUSH of an immediate,
//! each as its handler in `control` or `stack` does it (SDM Vol. 2, one
//! entry each).

use super::operands::{Imm, Place, Reg0};
use super::{by_cc, cond, sized, Exec, Form, Op};
use crate::event::Flow;
use crate::interp::operand::size_mask;
use crate::interp::stack::stack_size;
use crate::machine::Machine;
use iced_x86::{Code, OpKind};
use mmu::SegReg;

/// The target of a relative branch: [`Op::imm`] is the offset from the
/// next instruction, [`Op::amask`] the operand-size mask.
#[inline(always)]
fn target(m: &Machine, op: &Op) -> u64 {
    op.imm.wrapping_add(m.next_rip) & op.amask
}

/// Resolves a relative branch operand into `op`; false if the branch is
/// not relative.
fn relative(op: &mut Op) -> bool {
    let i = op.insn;
    op.amask = match i.op0_kind() {
        OpKind::NearBranch16 => 0xffff,
        OpKind::NearBranch32 => 0xffff_ffff,
        OpKind::NearBranch64 => u64::MAX,
        _ => return false,
    };
    op.imm = i.near_branch64().wrapping_sub(i.next_ip());
    true
}

/// Jcc.
#[inline(always)]
fn jcc_op<const CC: u8>(m: &mut Machine, op: &Op) -> Flow {
    if cond::<CC>(m) {
        let t = target(m, op);
        return m.branch_near(t);
    }
    Ok(())
}

/// The function for Jcc.
pub fn jcc(op: &mut Op) -> Option<Exec> {
    if !relative(op) {
        return None;
    }
    by_cc!(op.insn.condition_code(), jcc_op)
}

/// JMP relative.
#[inline(always)]
fn jmp_op(m: &mut Machine, op: &Op) -> Flow {
    let t = target(m, op);
    m.branch_near(t)
}

/// The function for JMP relative.
pub fn jmp(op: &mut Op) -> Option<Exec> {
    relative(op).then_some(super::lifted!(jmp_op))
}

/// Pushes the low `N` bytes of `v` (`Machine::push`).
#[inline(always)]
fn push_n<const N: usize>(m: &mut Machine, v: u64) -> Flow {
    let mask = m.sp_mask();
    let sp = m.cpu.gpr[4].wrapping_sub(N as u64) & mask;
    m.write_fast::<N>(SegReg::Ss, sp, v)?;
    m.set_sp(sp);
    Ok(())
}

/// CALL relative: check the target, then push the return address.
#[inline(always)]
fn call_op<const N: usize>(m: &mut Machine, op: &Op) -> Flow {
    let t = target(m, op);
    let ret = m.next_rip;
    m.branch_near(t)?;
    if let Err(e) = push_n::<N>(m, ret & size_mask(N)) {
        m.next_rip = ret;
        return Err(e);
    }
    Ok(())
}

/// The function for CALL relative.
pub fn call(op: &mut Op) -> Option<Exec> {
    if !relative(op) {
        return None;
    }
    sized!(stack_size(&op.insn), call_op)
}

/// RET, releasing [`Op::imm`] more bytes.
#[inline(always)]
fn ret_op<const N: usize>(m: &mut Machine, op: &Op) -> Flow {
    let rsp = m.cpu.gpr[4];
    let sp = rsp & m.sp_mask();
    let t = m.read_fast::<N>(SegReg::Ss, sp)?;
    m.branch_near(t)?;
    m.set_sp(rsp.wrapping_add(N as u64 + op.imm));
    Ok(())
}

/// The function for RET.
pub fn ret(op: &mut Op) -> Option<Exec> {
    let i = op.insn;
    let size = match i.code() {
        Code::Retnw | Code::Retnw_imm16 => 2,
        Code::Retnd | Code::Retnd_imm16 => 4,
        _ => 8,
    };
    op.imm = if i.op_count() > 0 {
        i.immediate16() as u64
    } else {
        0
    };
    sized!(size, ret_op)
}

/// PUSH of a register or an immediate.
#[inline(always)]
fn push_op<S: Place, const N: usize>(m: &mut Machine, op: &Op) -> Flow {
    let v = S::read::<8>(m, op, 0)?;
    push_n::<N>(m, v & size_mask(N))
}

/// The function for PUSH of a register or an immediate.
pub fn push(op: &mut Op, f0: Form) -> Option<Exec> {
    let size = stack_size(&op.insn);
    match f0 {
        Form::Reg(_, s) if s == size => sized!(size, push_op::<Reg0>),
        Form::Imm => {
            op.imm = op.insn.immediate(0);
            sized!(size, push_op::<Imm>)
        }
        _ => None,
    }
}

/// POP to a register: read the top of the stack, move RSP, then write the
/// register (so POP RSP loads the popped value).
#[inline(always)]
fn pop_op<const N: usize>(m: &mut Machine, op: &Op) -> Flow {
    let rsp = m.cpu.gpr[4];
    let v = m.read_fast::<N>(SegReg::Ss, rsp & m.sp_mask())?;
    m.set_sp(rsp.wrapping_add(N as u64));
    m.write_gpr_sized(op.reg0(), N, v);
    Ok(())
}

/// The function for POP to a register.
pub fn pop(op: &mut Op, f0: Form) -> Option<Exec> {
    let size = stack_size(&op.insn);
    match f0 {
        Form::Reg(_, s) if s == size => sized!(size, pop_op),
        _ => None,
    }
}
