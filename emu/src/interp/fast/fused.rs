//! Fused operations: a flag-setting register operation (INC, DEC, ADD,
//! SUB, CMP, TEST, AND, OR, XOR on registers or a register and an
//! immediate) and the Jcc after it, the pair that ends most loops, run as
//! one function.
//!
//! A fused operation stands for the last two instructions of a block of
//! pure operations (`CodeCache::insert` appends it after them); the run
//! loop takes it instead of the pair when it runs the whole block
//! (`Machine::run_fused_ops`). It does what the two operations do in
//! order, with the Jcc's next RIP already in `next_rip` (the first
//! instruction does not read it). A Jcc whose target would fault (SDM
//! Vol. 2A Jcc: #GP for a non-canonical target in 64-bit mode, beyond the
//! CS limit otherwise) is declined before anything is done: the function
//! returns [`Raised`] without parking an event, and the loop runs the pair
//! unfused, so faults are the reference path's.

use super::alu::{self, Binary};
use super::operands::{Imm, Place, Reg1};
use super::{cond, Exec, Op, Raised, Step};
use crate::interp::{arith, control};
use crate::machine::Machine;
use iced_x86::{Mnemonic, OpKind};

/// The first instruction of a fused pair.
pub trait Head {
    /// Runs it as its own operation does.
    fn exec(m: &mut Machine, op: &Op) -> crate::event::Flow;
}

/// A two-operand ALU operation on [`Op::r0`] and `S`.
pub struct AluHead<A, S, const N: usize>(core::marker::PhantomData<(A, S)>);
impl<A: Binary, S: Place, const N: usize> Head for AluHead<A, S, N> {
    #[inline(always)]
    fn exec(m: &mut Machine, op: &Op) -> crate::event::Flow {
        alu::alu::<A, super::operands::Reg0, S, N>(m, op)
    }
}

/// INC or DEC of [`Op::r0`].
pub struct IncDecHead<const DEC: bool, const N: usize>;
impl<const DEC: bool, const N: usize> Head for IncDecHead<DEC, N> {
    #[inline(always)]
    fn exec(m: &mut Machine, op: &Op) -> crate::event::Flow {
        alu::incdec::<super::operands::Reg0, DEC, N>(m, op)
    }
}

/// The pair: the Jcc's target is [`Op::disp`] from the Jcc's next RIP
/// (in `next_rip`), wrapped with [`Op::amask`].
#[inline(always)]
fn fused<H: Head, const CC: u8>(m: &mut Machine, op: &Op) -> Step {
    let t = op.disp.wrapping_add(m.next_rip) & op.amask;
    if !m.near_target_ok(t) {
        return Err(Raised);
    }
    if let Err(e) = H::exec(m, op) {
        return Err(m.park(e));
    }
    if cond::<CC>(m) {
        m.next_rip = t;
    }
    Ok(())
}

/// `fused::<H, CC>` for the condition code of `cc`.
fn by_cc<H: Head>(cc: iced_x86::ConditionCode) -> Option<Exec> {
    use iced_x86::ConditionCode as C;
    Some(match cc {
        C::o => fused::<H, 1> as Exec,
        C::no => fused::<H, 2>,
        C::b => fused::<H, 3>,
        C::ae => fused::<H, 4>,
        C::e => fused::<H, 5>,
        C::ne => fused::<H, 6>,
        C::be => fused::<H, 7>,
        C::a => fused::<H, 8>,
        C::s => fused::<H, 9>,
        C::ns => fused::<H, 10>,
        C::p => fused::<H, 11>,
        C::np => fused::<H, 12>,
        C::l => fused::<H, 13>,
        C::ge => fused::<H, 14>,
        C::le => fused::<H, 15>,
        C::g => fused::<H, 16>,
        _ => return None,
    })
}

/// The ALU head of size `N` with source `S`.
fn alu_head<S: Place, const N: usize>(x: &Op, cc: iced_x86::ConditionCode) -> Option<Exec> {
    let h = x.handler;
    let is = |f: crate::interp::Handler| std::ptr::fn_addr_eq(h, f);
    match x.insn.mnemonic() {
        Mnemonic::Add if is(arith::add) => by_cc::<AluHead<alu::Add, S, N>>(cc),
        Mnemonic::Sub if is(arith::sub) => by_cc::<AluHead<alu::Sub, S, N>>(cc),
        Mnemonic::Cmp if is(arith::cmp) => by_cc::<AluHead<alu::Cmp, S, N>>(cc),
        Mnemonic::Test if is(arith::test) => by_cc::<AluHead<alu::Test, S, N>>(cc),
        Mnemonic::And if is(arith::and) => by_cc::<AluHead<alu::And, S, N>>(cc),
        Mnemonic::Or if is(arith::or) => by_cc::<AluHead<alu::Or, S, N>>(cc),
        Mnemonic::Xor if is(arith::xor) => by_cc::<AluHead<alu::Xor, S, N>>(cc),
        _ => None,
    }
}

/// The head function of size `N` for `x`.
fn head<const N: usize>(x: &Op, cc: iced_x86::ConditionCode) -> Option<Exec> {
    let i = &x.insn;
    let h = x.handler;
    match (i.mnemonic(), i.op_count()) {
        (Mnemonic::Inc, 1) if std::ptr::fn_addr_eq(h, arith::inc as crate::interp::Handler) => {
            by_cc::<IncDecHead<false, N>>(cc)
        }
        (Mnemonic::Dec, 1) if std::ptr::fn_addr_eq(h, arith::dec as crate::interp::Handler) => {
            by_cc::<IncDecHead<true, N>>(cc)
        }
        (_, 2) if i.op1_kind() == OpKind::Register => alu_head::<Reg1, N>(x, cc),
        (_, 2) => alu_head::<Imm, N>(x, cc),
        _ => None,
    }
}

/// The fused operation for `x` followed by the Jcc `j`, both specialized
/// and pure, if `x` is one of the heads above on a 32- or 64-bit register:
/// `x` with the pair's length and cost, the Jcc's offset in
/// [`Op::disp`] and its target mask in [`Op::amask`].
pub fn fuse(x: &Op, j: &Op) -> Option<Op> {
    if !(x.is_pure()
        && j.is_pure()
        && std::ptr::fn_addr_eq(j.handler, control::jcc as crate::interp::Handler))
    {
        return None;
    }
    let i = &x.insn;
    if i.op_count() == 0 || i.op0_kind() != OpKind::Register {
        return None;
    }
    // Register forms only (the register source of the same size, or an
    // immediate already masked into `imm` by `compile`).
    let size = super::gpr(i.op0_register())?.1;
    if i.op_count() == 2 {
        match i.op1_kind() {
            OpKind::Register => {
                if super::gpr(i.op1_register())?.1 != size {
                    return None;
                }
            }
            OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64 => {}
            _ => return None,
        }
    }
    let cc = j.insn.condition_code();
    let exec = match size {
        4 => head::<4>(x, cc)?,
        8 => head::<8>(x, cc)?,
        _ => return None,
    };
    Some(Op {
        exec,
        disp: j.imm,
        amask: j.amask,
        len: x.len + j.len,
        cost: x.cost + j.cost,
        ..*x
    })
}
