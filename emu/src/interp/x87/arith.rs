//! Basic arithmetic: FADD, FSUB, FSUBR, FMUL, FDIV, FDIVR (with their P and
//! FI forms), FSQRT, FABS, FCHS, FRNDINT, FSCALE, FXTRACT, FPREM, FPREM1
//! (SDM Vol. 1 8.3.5-8.3.6; Vol. 2A entries).

use super::float::{arith as fa, convert, exc, rem, Env, Fx, F80};
use super::state::{prologue, report, stack_overflow, stack_underflow, sw, update_pointers};
use super::{read_operand, st_index};
use crate::event::{Event, Flow};
use crate::machine::Machine;
use iced_x86::{Instruction, MemorySize, Mnemonic, OpKind};

/// The two-operand operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Subr,
    Mul,
    Div,
    Divr,
}

impl BinOp {
    fn apply(self, a: F80, b: F80, env: Env, fx: &mut Fx) -> F80 {
        match self {
            BinOp::Add => fa::add(a, b, env, fx),
            BinOp::Sub => fa::sub(a, b, env, fx),
            BinOp::Subr => fa::sub(b, a, env, fx),
            BinOp::Mul => fa::mul(a, b, env, fx),
            BinOp::Div => fa::div(a, b, env, fx),
            BinOp::Divr => fa::div(b, a, env, fx),
        }
    }
}

/// Reads a memory source operand of an arithmetic or compare instruction and
/// widens it (single/double real, word/dword integer), keeping an SNaN
/// signaling and reporting a denormal single/double as #D in `fx`.
pub(super) fn read_mem_source(m: &mut Machine, i: &Instruction, fx: &mut Fx) -> Result<F80, Event> {
    let raw = read_operand(m, i)?;
    Ok(match i.memory_size() {
        MemorySize::Float32 => convert::from_f32(raw as u32, fx),
        MemorySize::Float64 => convert::from_f64(raw, fx),
        MemorySize::Int16 => convert::from_i64(raw as u16 as i16 as i64),
        MemorySize::Int32 => convert::from_i64(raw as u32 as i32 as i64),
        MemorySize::Int64 => convert::from_i64(raw as i64),
        _ => return Err(Event::ud()),
    })
}

/// The shared body of FADD..FDIVR: `ST(dst) = ST(dst) op src`, popping for
/// the P forms.
fn binary(m: &mut Machine, i: &Instruction, op: BinOp) -> Flow {
    prologue(m, true)?;
    let mut fx = Fx::default();
    let (dst, src) = if i.op_count() == 1 && i.op_kind(0) == OpKind::Memory {
        (0, None)
    } else {
        (st_index(i, 0), Some(st_index(i, 1)))
    };
    let mem = match src {
        None => Some(read_mem_source(m, i, &mut fx)?),
        Some(_) => None,
    };
    update_pointers(m, i);
    let pop = matches!(
        i.mnemonic(),
        Mnemonic::Faddp
            | Mnemonic::Fsubp
            | Mnemonic::Fsubrp
            | Mnemonic::Fmulp
            | Mnemonic::Fdivp
            | Mnemonic::Fdivrp
    );
    let fpu = &m.cpu.fpu;
    if fpu.is_empty(dst) || src.is_some_and(|s| fpu.is_empty(s)) {
        stack_underflow(m, i, Some(dst), pop);
        return Ok(());
    }
    let a = fpu.read_st(dst);
    let b = match (src, mem) {
        (Some(s), _) => fpu.read_st(s),
        (None, Some(v)) => v,
        (None, None) => unreachable!("a source exists"),
    };
    let mut fx = super::compare::discard_conversion_denormal(a, b, fx);
    let r = op.apply(a, b, fpu.env(), &mut fx);
    if report(m, i, fx, false) {
        m.cpu.fpu.write_st(dst, r);
        if pop {
            m.cpu.fpu.pop();
        }
    }
    Ok(())
}

/// FADD, FADDP, FIADD.
pub fn fadd(m: &mut Machine, i: &Instruction) -> Flow {
    binary(m, i, BinOp::Add)
}
/// FSUB, FSUBP, FISUB.
pub fn fsub(m: &mut Machine, i: &Instruction) -> Flow {
    binary(m, i, BinOp::Sub)
}
/// FSUBR, FSUBRP, FISUBR.
pub fn fsubr(m: &mut Machine, i: &Instruction) -> Flow {
    binary(m, i, BinOp::Subr)
}
/// FMUL, FMULP, FIMUL.
pub fn fmul(m: &mut Machine, i: &Instruction) -> Flow {
    binary(m, i, BinOp::Mul)
}
/// FDIV, FDIVP, FIDIV.
pub fn fdiv(m: &mut Machine, i: &Instruction) -> Flow {
    binary(m, i, BinOp::Div)
}
/// FDIVR, FDIVRP, FIDIVR.
pub fn fdivr(m: &mut Machine, i: &Instruction) -> Flow {
    binary(m, i, BinOp::Divr)
}

/// A one-operand operation on ST(0) that writes ST(0).
fn unary(m: &mut Machine, i: &Instruction, f: impl FnOnce(F80, Env, &mut Fx) -> F80) -> Flow {
    prologue(m, true)?;
    update_pointers(m, i);
    if m.cpu.fpu.is_empty(0) {
        stack_underflow(m, i, Some(0), false);
        return Ok(());
    }
    let mut fx = Fx::default();
    let r = f(m.cpu.fpu.read_st(0), m.cpu.fpu.env(), &mut fx);
    if report(m, i, fx, false) {
        m.cpu.fpu.write_st(0, r);
    }
    Ok(())
}

/// FSQRT (honours precision control).
pub fn fsqrt(m: &mut Machine, i: &Instruction) -> Flow {
    unary(m, i, fa::sqrt)
}

/// FABS: clears the sign; no exceptions but stack underflow.
pub fn fabs(m: &mut Machine, i: &Instruction) -> Flow {
    unary(m, i, |a, _, _| a.abs())
}

/// FCHS: complements the sign.
pub fn fchs(m: &mut Machine, i: &Instruction) -> Flow {
    unary(m, i, |a, _, _| a.neg())
}

/// FRNDINT: rounds to an integral value by RC (never by PC).
pub fn frndint(m: &mut Machine, i: &Instruction) -> Flow {
    unary(m, i, convert::round_int)
}

/// An operation on ST(0) and ST(1) that writes ST(0).
fn with_st1(
    m: &mut Machine,
    i: &Instruction,
    f: impl FnOnce(F80, F80, Env, &mut Fx) -> F80,
) -> Flow {
    prologue(m, true)?;
    update_pointers(m, i);
    if m.cpu.fpu.is_empty(0) || m.cpu.fpu.is_empty(1) {
        stack_underflow(m, i, Some(0), false);
        return Ok(());
    }
    let mut fx = Fx::default();
    let (a, b) = (m.cpu.fpu.read_st(0), m.cpu.fpu.read_st(1));
    let r = f(a, b, m.cpu.fpu.env(), &mut fx);
    if report(m, i, fx, false) {
        m.cpu.fpu.write_st(0, r);
    }
    Ok(())
}

/// FSCALE: ST(0) * 2^trunc(ST(1)).
pub fn fscale(m: &mut Machine, i: &Instruction) -> Flow {
    with_st1(m, i, convert::scale)
}

/// FXTRACT: ST(0) becomes the exponent, then the significand is pushed
/// (SDM Vol. 2A FXTRACT).
pub fn fxtract(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    update_pointers(m, i);
    if m.cpu.fpu.is_empty(0) {
        stack_overflow_both(m, i, false);
        return Ok(());
    }
    if !m.cpu.fpu.is_empty(7) {
        stack_overflow_both(m, i, true);
        return Ok(());
    }
    let mut fx = Fx::default();
    let (e, s) = convert::extract(m.cpu.fpu.read_st(0), &mut fx);
    if report(m, i, fx, false) {
        m.cpu.fpu.write_st(0, e);
        m.cpu.fpu.push(s);
    }
    Ok(())
}

/// The stack fault of an instruction that replaces ST(0) and pushes
/// (FXTRACT, FSINCOS, FPTAN): masked, both results are the real indefinite.
pub(super) fn stack_overflow_both(m: &mut Machine, i: &Instruction, overflow: bool) -> bool {
    if overflow {
        let masked = m.cpu.fpu.fcw as u8 & exc::IE != 0;
        if masked {
            m.cpu.fpu.write_st(0, F80::INDEFINITE);
        }
        stack_overflow(m, i)
    } else {
        let masked = stack_underflow(m, i, Some(0), false);
        if masked {
            m.cpu.fpu.push(F80::INDEFINITE);
        }
        masked
    }
}

/// FPREM and FPREM1 (SDM Vol. 2A): the partial remainder in ST(0), the low
/// quotient bits in C0 (Q2), C3 (Q1) and C1 (Q0), C2 set when incomplete.
fn remainder(m: &mut Machine, i: &Instruction, nearest: bool) -> Flow {
    prologue(m, true)?;
    update_pointers(m, i);
    m.cpu.fpu.fsw &= !(sw::C1 | sw::C2);
    if m.cpu.fpu.is_empty(0) || m.cpu.fpu.is_empty(1) {
        stack_underflow(m, i, Some(0), false);
        return Ok(());
    }
    let mut fx = Fx::default();
    let (a, b) = (m.cpu.fpu.read_st(0), m.cpu.fpu.read_st(1));
    let r = rem::remainder(a, b, nearest, m.cpu.fpu.env(), &mut fx);
    if report(m, i, fx, false) {
        if r.valid {
            let cc = match r.quotient {
                None => sw::C2,
                Some(q) => {
                    (if q & 1 != 0 { sw::C1 } else { 0 })
                        | (if q & 2 != 0 { sw::C3 } else { 0 })
                        | (if q & 4 != 0 { sw::C0 } else { 0 })
                }
            };
            m.cpu.fpu.set_cc(cc);
        }
        m.cpu.fpu.write_st(0, r.value);
    }
    Ok(())
}

/// FPREM: truncating quotient.
pub fn fprem(m: &mut Machine, i: &Instruction) -> Flow {
    remainder(m, i, false)
}

/// FPREM1: IEEE remainder (nearest quotient).
pub fn fprem1(m: &mut Machine, i: &Instruction) -> Flow {
    remainder(m, i, true)
}
