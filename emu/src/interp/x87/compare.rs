//! Comparison and classification: FCOM, FCOMP, FCOMPP, FUCOM, FUCOMP,
//! FUCOMPP, FICOM, FICOMP, FCOMI, FCOMIP, FUCOMI, FUCOMIP, FTST, FXAM
//! (SDM Vol. 1 8.3.7 and 8.1.3.x; Vol. 2A entries).

use super::arith::read_mem_source;
use super::float::arith::{compare, Relation};
use super::float::{Class, Fx, F80};
use super::st_index;
use super::state::{amd_rules, prologue, report, stack_fault_flags, sw, update_pointers};
use crate::event::Flow;
use crate::machine::Machine;
use iced_x86::{Instruction, Mnemonic, OpKind};
use mmu::Rflags;

/// C3, C2, C0 for a comparison result (SDM Vol. 2A FCOM table).
fn cc_of(r: Relation) -> u16 {
    match r {
        Relation::Greater => 0,
        Relation::Less => sw::C0,
        Relation::Equal => sw::C3,
        Relation::Unordered => sw::C3 | sw::C2 | sw::C0,
    }
}

/// ZF, PF, CF for a comparison result (SDM Vol. 2A FCOMI table); OF, SF
/// and AF are cleared.
fn eflags_of(r: Relation) -> u64 {
    let (zf, pf, cf) = (Rflags::ZF.bits(), Rflags::PF.bits(), Rflags::CF.bits());
    match r {
        Relation::Greater => 0,
        Relation::Less => cf,
        Relation::Equal => zf,
        Relation::Unordered => zf | pf | cf,
    }
}

/// How many registers a compare pops.
fn pops(i: &Instruction) -> usize {
    match i.mnemonic() {
        Mnemonic::Fcompp | Mnemonic::Fucompp => 2,
        Mnemonic::Fcomp
        | Mnemonic::Fucomp
        | Mnemonic::Ficomp
        | Mnemonic::Fcomip
        | Mnemonic::Fucomip => 1,
        _ => 0,
    }
}

fn pop_n(m: &mut Machine, n: usize) {
    for _ in 0..n {
        m.cpu.fpu.pop();
    }
}

/// FCOM/FCOMP/FCOMPP/FUCOM*/FICOM*: compare ST(0) with the source and set
/// C3, C2, C0 (C1 = 0).
pub fn fcom(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    let mut fx = Fx::default();
    let mem = if i.op_count() >= 1 && i.op_kind(0) == OpKind::Memory {
        Some(read_mem_source(m, i, &mut fx)?)
    } else {
        None
    };
    update_pointers(m, i);
    let quiet = matches!(
        i.mnemonic(),
        Mnemonic::Fucom | Mnemonic::Fucomp | Mnemonic::Fucompp
    );
    let src = match i.op_count() {
        2 => st_index(i, 1),
        _ => 1,
    };
    let n = pops(i);
    let f = &m.cpu.fpu;
    if f.is_empty(0) || (mem.is_none() && f.is_empty(src)) {
        let masked = stack_fault_flags(m, i, false);
        m.cpu.fpu.set_cc(sw::C3 | sw::C2 | sw::C0);
        if masked {
            pop_n(m, n);
        }
        return Ok(());
    }
    let a = f.read_st(0);
    let b = mem.unwrap_or_else(|| f.read_st(src));
    let mut fx = discard_conversion_denormal(a, b, fx);
    let r = compare(a, b, quiet, &mut fx);
    // The condition codes are written even when an unmasked #IA or #D
    // suppresses the pop.
    let pop = report(m, i, fx, false);
    m.cpu.fpu.set_cc(cc_of(r) | (m.cpu.fpu.fsw & sw::C1));
    if pop {
        pop_n(m, n);
    }
    Ok(())
}

/// Drops a #D the widening of a memory operand raised when the comparison
/// or arithmetic never looks at it: a NaN or unsupported operand decides
/// first (the denormal check follows the NaN checks, SDM Vol. 1 4.9.2).
pub(super) fn discard_conversion_denormal(a: F80, b: F80, fx: Fx) -> Fx {
    let nan = |v: F80| v.is_nan() || v.is_unsupported();
    if nan(a) || nan(b) {
        Fx {
            flags: fx.flags & !super::float::exc::DE,
            ..fx
        }
    } else {
        fx
    }
}

/// FCOMI/FCOMIP/FUCOMI/FUCOMIP: compare ST(0) with ST(i) into EFLAGS.
///
/// EFLAGS are written even when an unmasked #IA or #D suppresses the pop
/// (as processors do, and as Bochs models them; the SDM's pseudocode writes
/// them only for a masked #IA). C1 is set to 0 (SDM Vol. 2A FCOMI, "FPU
/// Flags Affected") on Intel; AMD processors leave C1 as it was unless the
/// stack underflows, where it is 0 as for every underflow (APM Vol. 5 FCOMI
/// lists C1 only for the stack fault; the hardware differential test shows
/// C1 = 1 kept through ordered, unordered, #IA and #D comparisons).
pub fn fcomi(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    update_pointers(m, i);
    let quiet = matches!(i.mnemonic(), Mnemonic::Fucomi | Mnemonic::Fucomip);
    let src = st_index(i, 1);
    let n = pops(i);
    let f = &m.cpu.fpu;
    if f.is_empty(0) || f.is_empty(src) {
        let masked = stack_fault_flags(m, i, false);
        m.cpu.flags.set_status(eflags_of(Relation::Unordered));
        if masked {
            pop_n(m, n);
        }
        return Ok(());
    }
    let mut fx = Fx::default();
    let r = compare(f.read_st(0), f.read_st(src), quiet, &mut fx);
    let c1 = m.cpu.fpu.fsw & sw::C1;
    let pop = report(m, i, fx, false);
    if amd_rules(m) {
        m.cpu.fpu.fsw |= c1;
    }
    m.cpu.flags.set_status(eflags_of(r));
    if pop {
        pop_n(m, n);
    }
    Ok(())
}

/// FTST: compare ST(0) with 0.0.
pub fn ftst(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    update_pointers(m, i);
    if m.cpu.fpu.is_empty(0) {
        stack_fault_flags(m, i, false);
        m.cpu.fpu.set_cc(sw::C3 | sw::C2 | sw::C0);
        return Ok(());
    }
    let mut fx = Fx::default();
    let r = compare(m.cpu.fpu.read_st(0), F80::ZERO, false, &mut fx);
    report(m, i, fx, false);
    m.cpu.fpu.set_cc(cc_of(r) | (m.cpu.fpu.fsw & sw::C1));
    Ok(())
}

/// FXAM: classify ST(0) into C3, C2, C0 and its sign into C1 (SDM Vol. 2A
/// FXAM table). An empty register reports "empty" and the sign of whatever
/// it holds.
pub fn fxam(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    update_pointers(m, i);
    let f = &m.cpu.fpu;
    let v = f.read_st(0);
    let class = if f.is_empty(0) {
        sw::C3 | sw::C0
    } else {
        match v.class() {
            Class::Unsupported => 0,
            Class::QNan | Class::SNan => sw::C0,
            Class::Normal => sw::C2,
            Class::Infinity => sw::C2 | sw::C0,
            Class::Zero => sw::C3,
            Class::Denormal | Class::PseudoDenormal => sw::C3 | sw::C2,
        }
    };
    let c1 = if v.sign() { sw::C1 } else { 0 };
    m.cpu.fpu.set_cc(class | c1);
    Ok(())
}
