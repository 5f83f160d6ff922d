//! SIMD floating-point comparisons (SDM Vol. 2 CMPPS, CMPPD, CMPSS, CMPSD,
//! COMISS, COMISD, UCOMISS, UCOMISD).

use super::farith::{fp_instr, lanes};
use super::fp::{self, Env, Format, Relation, F32, F64};
use super::operands::{sse_check, xmm_n, Mem};
use crate::event::Flow;
use crate::machine::Machine;
use iced_x86::Instruction;
use mmu::Rflags;

/// Evaluates legacy predicate `p` (imm8[2:0], SDM Vol. 2A "CMPPS", table
/// "Comparison predicate for CMPPD and CMPPS instructions"): EQ, LT, LE, UNORD, NEQ, NLT,
/// NLE, ORD. LT, LE, NLT and NLE signal on QNaNs.
#[inline(always)]
fn predicate<F: Format>(env: &mut Env, a: u64, b: u64, p: u32) -> u64 {
    let quiet = matches!(p, 0 | 3 | 4 | 7);
    let r = fp::compare::<F>(env, a, b, quiet);
    let t = match p {
        0 => r == Relation::Equal,
        1 => r == Relation::Less,
        2 => matches!(r, Relation::Less | Relation::Equal),
        3 => r == Relation::Unordered,
        4 => r != Relation::Equal,
        5 => r != Relation::Less,
        6 => !matches!(r, Relation::Less | Relation::Equal),
        _ => r != Relation::Unordered,
    };
    if t {
        u64::MAX >> (64 - F::WIDTH)
    } else {
        0
    }
}

/// CMPPS, CMPPD, CMPSS, CMPSD (the SSE2 compare): all-ones or zero per lane.
pub fn cmp<const S: u8>(m: &mut Machine, i: &Instruction) -> Flow {
    let p = i.immediate8() as u32 & 7;
    fp_instr::<S>(m, i, |env, a, b| {
        lanes::<S>(
            env,
            a,
            b,
            |e, x, y| predicate::<F32>(e, x, y, p),
            |e, x, y| predicate::<F64>(e, x, y, p),
        )
    })
}

/// COMISS/COMISD (`QUIET = false`: QNaNs signal) and UCOMISS/UCOMISD: ZF, PF,
/// CF from the unordered/less/equal outcome; OF, SF, AF cleared. Nothing
/// changes if the comparison raises an unmasked exception.
pub fn comis<const DOUBLE: bool, const QUIET: bool>(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let b = m.xmm_src(i, 1, Mem::Aligned)?;
    let a = m.cpu.fpu.xmm[xmm_n(i.op0_register())];
    let mut env = m.fp_env();
    let r = if DOUBLE {
        fp::compare::<F64>(&mut env, a as u64, b as u64, QUIET)
    } else {
        fp::compare::<F32>(&mut env, a as u32 as u64, b as u32 as u64, QUIET)
    };
    m.mxcsr_commit(&env)?;
    let (zf, pf, cf) = (Rflags::ZF.bits(), Rflags::PF.bits(), Rflags::CF.bits());
    m.cpu.flags.set_status(match r {
        Relation::Unordered => zf | pf | cf,
        Relation::Less => cf,
        Relation::Equal => zf,
        Relation::Greater => 0,
    });
    Ok(())
}
