//! The transcendental instructions F2XM1, FYL2X, FYL2XP1, FSIN, FCOS,
//! FSINCOS, FPTAN, FPATAN (SDM Vol. 1 8.3.9-8.3.10; Vol. 2A entries). The
//! mathematics lives in [`super::float::trans`]; results are rounded to 64
//! bits whatever the precision control.

use super::arith::stack_overflow_both;
use super::float::{trans, Env, Fx, F80};
use super::state::{prologue, report, stack_underflow, sw, update_pointers};
use crate::event::Flow;
use crate::machine::Machine;
use iced_x86::Instruction;

/// F2XM1: ST(0) = 2^ST(0) - 1.
pub fn f2xm1(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    update_pointers(m, i);
    if m.cpu.fpu.is_empty(0) {
        stack_underflow(m, i, Some(0), false);
        return Ok(());
    }
    let mut fx = Fx::default();
    let r = trans::f2xm1(m.cpu.fpu.read_st(0), m.cpu.fpu.env(), &mut fx);
    if report(m, i, fx, false) {
        m.cpu.fpu.write_st(0, r);
    }
    Ok(())
}

/// The shared body of FYL2X, FYL2XP1 and FPATAN: ST(1) = f(ST(0), ST(1)),
/// then pop.
fn binary_pop(m: &mut Machine, i: &Instruction, f: fn(F80, F80, Env, &mut Fx) -> F80) -> Flow {
    prologue(m, true)?;
    update_pointers(m, i);
    if m.cpu.fpu.is_empty(0) || m.cpu.fpu.is_empty(1) {
        stack_underflow(m, i, Some(1), true);
        return Ok(());
    }
    let mut fx = Fx::default();
    let (x, y) = (m.cpu.fpu.read_st(0), m.cpu.fpu.read_st(1));
    let r = f(x, y, m.cpu.fpu.env(), &mut fx);
    if report(m, i, fx, false) {
        m.cpu.fpu.write_st(1, r);
        m.cpu.fpu.pop();
    }
    Ok(())
}

/// FYL2X: ST(1) = ST(1) * log2(ST(0)), pop.
pub fn fyl2x(m: &mut Machine, i: &Instruction) -> Flow {
    binary_pop(m, i, trans::fyl2x)
}

/// FYL2XP1: ST(1) = ST(1) * log2(ST(0) + 1), pop.
pub fn fyl2xp1(m: &mut Machine, i: &Instruction) -> Flow {
    binary_pop(m, i, trans::fyl2xp1)
}

/// FPATAN: ST(1) = atan(ST(1) / ST(0)) in the right quadrant, pop.
pub fn fpatan(m: &mut Machine, i: &Instruction) -> Flow {
    binary_pop(m, i, |x, y, env, fx| trans::atan2(y, x, env, fx))
}

/// FSIN and FCOS: C2 = 1 and ST(0) unchanged for |ST(0)| >= 2^63.
fn sin_cos(m: &mut Machine, i: &Instruction, f: fn(F80, Env, &mut Fx) -> Option<F80>) -> Flow {
    prologue(m, true)?;
    update_pointers(m, i);
    m.cpu.fpu.fsw &= !(sw::C1 | sw::C2);
    if m.cpu.fpu.is_empty(0) {
        stack_underflow(m, i, Some(0), false);
        return Ok(());
    }
    let mut fx = Fx::default();
    match f(m.cpu.fpu.read_st(0), m.cpu.fpu.env(), &mut fx) {
        None => m.cpu.fpu.fsw |= sw::C2,
        Some(r) => {
            if report(m, i, fx, false) {
                m.cpu.fpu.write_st(0, r);
            }
        }
    }
    Ok(())
}

/// FSIN.
pub fn fsin(m: &mut Machine, i: &Instruction) -> Flow {
    sin_cos(m, i, trans::sin)
}

/// FCOS.
pub fn fcos(m: &mut Machine, i: &Instruction) -> Flow {
    sin_cos(m, i, trans::cos)
}

/// FSINCOS: ST(0) = sin, then push cos (SDM Vol. 2A FSINCOS).
pub fn fsincos(m: &mut Machine, i: &Instruction) -> Flow {
    push_pair(m, i, trans::sincos)
}

/// FPTAN: ST(0) = tan, then push 1.0 (SDM Vol. 2A FPTAN).
pub fn fptan(m: &mut Machine, i: &Instruction) -> Flow {
    push_pair(m, i, |a, env, fx| {
        trans::tan(a, env, fx).map(|t| if t.is_nan() { (t, t) } else { (t, F80::ONE) })
    })
}

/// The shared body of FSINCOS and FPTAN: replace ST(0) and push.
fn push_pair(
    m: &mut Machine,
    i: &Instruction,
    f: impl FnOnce(F80, Env, &mut Fx) -> Option<(F80, F80)>,
) -> Flow {
    prologue(m, true)?;
    update_pointers(m, i);
    m.cpu.fpu.fsw &= !(sw::C1 | sw::C2);
    if m.cpu.fpu.is_empty(0) {
        stack_overflow_both(m, i, false);
        return Ok(());
    }
    if !m.cpu.fpu.is_empty(7) {
        stack_overflow_both(m, i, true);
        return Ok(());
    }
    let mut fx = Fx::default();
    match f(m.cpu.fpu.read_st(0), m.cpu.fpu.env(), &mut fx) {
        None => m.cpu.fpu.fsw |= sw::C2,
        Some((a, b)) => {
            if report(m, i, fx, false) {
                m.cpu.fpu.write_st(0, a);
                m.cpu.fpu.push(b);
            }
        }
    }
    Ok(())
}
