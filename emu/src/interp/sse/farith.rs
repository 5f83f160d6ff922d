//! SIMD floating-point arithmetic (SDM Vol. 2 ADDPS..SUBSD, MULPS..DIVSD,
//! SQRTPS..SQRTSD, MINPS..MAXSD, ADDSUBPS/PD, HADDPS..HSUBPD, RCPPS..RSQRTSS,
//! ROUNDPS..ROUNDSD, DPPS, DPPD).
//!
//! Packed forms compute every lane, then [`Machine::mxcsr_commit`] decides
//! whether the instruction completes (SDM Vol. 1 11.5.1); scalar forms keep
//! the destination's upper lanes.

use super::fp::{self, approx, flag, mxcsr, Env, Format, Rounding, F32, F64};
use super::lanes::{d, from_d, from_q, q};
use super::operands::{sse_check, xmm_n, Mem};
use crate::event::Flow;
use crate::machine::Machine;
use iced_x86::Instruction;

/// Packed single (4 × binary32).
pub const PS: u8 = 0;
/// Packed double (2 × binary64).
pub const PD: u8 = 1;
/// Scalar single (the low binary32).
pub const SS: u8 = 2;
/// Scalar double (the low binary64).
pub const SD: u8 = 3;

/// A two-source lane operation, generic over the format.
pub trait BinOp {
    /// One lane.
    fn op<F: Format>(env: &mut Env, a: u64, b: u64) -> u64;
}

/// The MXCSR state in which host IEEE arithmetic gives exactly our result
/// and raises nothing new for normal operands with a normal result: round
/// to nearest, and precision masked with PE already set (so inexactness no
/// longer matters).
#[inline(always)]
fn fast_env(mx: u32) -> bool {
    const PM: u32 = flag::PE << mxcsr::MASK_SHIFT;
    mx & (3 << mxcsr::RC_SHIFT | PM | flag::PE) == PM | flag::PE
}

/// True for a normal (nonzero, finite, not denormal) encoding.
#[inline(always)]
fn normal<F: Format>(x: u64) -> bool {
    let e = x & F::EXP_MASK;
    e != 0 && e != F::EXP_MASK
}

/// True for a normal or zero encoding.
#[inline(always)]
fn normal_or_zero<F: Format>(x: u64) -> bool {
    x & F::EXP_MASK != F::EXP_MASK && (x & F::EXP_MASK != 0 || x & F::FRAC_MASK == 0)
}

/// The host computes `f` on two binary32 or binary64 encodings in round to
/// nearest (IEEE 754 arithmetic on every host Rust supports).
#[inline(always)]
fn host<F: Format>(a: u64, b: u64, f32op: fn(f32, f32) -> f32, f64op: fn(f64, f64) -> f64) -> u64 {
    if F::WIDTH == 32 {
        f32op(f32::from_bits(a as u32), f32::from_bits(b as u32)).to_bits() as u64
    } else {
        f64op(f64::from_bits(a), f64::from_bits(b)).to_bits()
    }
}

/// The fast path: normal-or-zero operands whose host result is normal, or
/// an exact zero (when `zero_ok`). Otherwise `None` and the soft core runs.
#[inline(always)]
fn fast<F: Format>(
    env: &Env,
    a: u64,
    b: u64,
    f32op: fn(f32, f32) -> f32,
    f64op: fn(f64, f64) -> f64,
    zero_ok: impl Fn(u64, u64) -> bool,
) -> Option<u64> {
    if !env.fast || !normal_or_zero::<F>(a) || !normal_or_zero::<F>(b) {
        return None;
    }
    let r = host::<F>(a, b, f32op, f64op);
    if normal::<F>(r) || (r & !F::SIGN == 0 && zero_ok(a, b)) {
        Some(r)
    } else {
        None
    }
}

/// ADD.
#[derive(Debug)]
pub enum Add {}
impl BinOp for Add {
    #[inline(always)]
    fn op<F: Format>(env: &mut Env, a: u64, b: u64) -> u64 {
        // x + y is an exact zero only by cancellation or from two zeros.
        fast::<F>(env, a, b, |x, y| x + y, |x, y| x + y, |_, _| true)
            .unwrap_or_else(|| fp::add::<F>(env, a, b))
    }
}

/// SUB.
#[derive(Debug)]
pub enum Sub {}
impl BinOp for Sub {
    #[inline(always)]
    fn op<F: Format>(env: &mut Env, a: u64, b: u64) -> u64 {
        fast::<F>(env, a, b, |x, y| x - y, |x, y| x - y, |_, _| true)
            .unwrap_or_else(|| fp::sub::<F>(env, a, b))
    }
}

/// MUL.
#[derive(Debug)]
pub enum Mul {}
impl BinOp for Mul {
    #[inline(always)]
    fn op<F: Format>(env: &mut Env, a: u64, b: u64) -> u64 {
        // A zero product of nonzero normals is an underflow.
        let zero_ok = |a: u64, b: u64| a & !F::SIGN == 0 || b & !F::SIGN == 0;
        fast::<F>(env, a, b, |x, y| x * y, |x, y| x * y, zero_ok)
            .unwrap_or_else(|| fp::mul::<F>(env, a, b))
    }
}

/// DIV.
#[derive(Debug)]
pub enum Div {}
impl BinOp for Div {
    #[inline(always)]
    fn op<F: Format>(env: &mut Env, a: u64, b: u64) -> u64 {
        if b & !F::SIGN == 0 {
            return fp::div::<F>(env, a, b);
        }
        let zero_ok = |a: u64, _| a & !F::SIGN == 0;
        fast::<F>(env, a, b, |x, y| x / y, |x, y| x / y, zero_ok)
            .unwrap_or_else(|| fp::div::<F>(env, a, b))
    }
}

/// MIN.
#[derive(Debug)]
pub enum Min {}
impl BinOp for Min {
    #[inline(always)]
    fn op<F: Format>(env: &mut Env, a: u64, b: u64) -> u64 {
        fp::min::<F>(env, a, b)
    }
}

/// MAX.
#[derive(Debug)]
pub enum Max {}
impl BinOp for Max {
    #[inline(always)]
    fn op<F: Format>(env: &mut Env, a: u64, b: u64) -> u64 {
        fp::max::<F>(env, a, b)
    }
}

/// SQRT (of the second operand; the first is ignored).
#[derive(Debug)]
pub enum Sqrt {}
impl BinOp for Sqrt {
    #[inline(always)]
    fn op<F: Format>(env: &mut Env, _: u64, b: u64) -> u64 {
        if env.fast && normal::<F>(b) && b & F::SIGN == 0 {
            return if F::WIDTH == 32 {
                f32::from_bits(b as u32).sqrt().to_bits() as u64
            } else {
                f64::from_bits(b).sqrt().to_bits()
            };
        }
        fp::sqrt::<F>(env, b)
    }
}

/// Applies a lane function to the lanes of shape `S`; scalar shapes keep
/// the destination's upper bits.
#[inline(always)]
pub fn lanes<const S: u8>(
    env: &mut Env,
    dst: u128,
    src: u128,
    f32op: impl Fn(&mut Env, u64, u64) -> u64,
    f64op: impl Fn(&mut Env, u64, u64) -> u64,
) -> u128 {
    match S {
        PS => {
            let (a, b) = (d(dst), d(src));
            from_d(core::array::from_fn(|k| {
                f32op(env, a[k] as u64, b[k] as u64) as u32
            }))
        }
        PD => {
            let (a, b) = (q(dst), q(src));
            let r0 = f64op(env, a[0], b[0]);
            from_q([r0, f64op(env, a[1], b[1])])
        }
        SS => {
            (dst & !(u32::MAX as u128)) | f32op(env, dst as u32 as u64, src as u32 as u64) as u128
        }
        _ => (dst & !(u64::MAX as u128)) | f64op(env, dst as u64, src as u64) as u128,
    }
}

/// The common body: read, compute under MXCSR, commit, write.
#[inline(always)]
pub fn fp_instr<const S: u8>(
    m: &mut Machine,
    i: &Instruction,
    f: impl FnOnce(&mut Env, u128, u128) -> u128,
) -> Flow {
    sse_check(m)?;
    let src = m.xmm_src(i, 1, Mem::Aligned)?;
    let dn = xmm_n(i.op0_register());
    let mut env = staged_env(m);
    let r = f(&mut env, m.cpu.fpu.xmm[dn], src);
    m.mxcsr_commit(&env)?;
    m.cpu.fpu.xmm[dn] = r;
    Ok(())
}

/// A lane-wise binary operation in shape `S`.
pub fn arith<O: BinOp, const S: u8>(m: &mut Machine, i: &Instruction) -> Flow {
    fp_instr::<S>(m, i, |env, a, b| {
        lanes::<S>(env, a, b, O::op::<F32>, O::op::<F64>)
    })
}

/// ADDSUBPS: odd lanes add, even lanes subtract.
pub fn addsubps(m: &mut Machine, i: &Instruction) -> Flow {
    fp_instr::<PS>(m, i, |env, a, b| {
        let (x, y) = (d(a), d(b));
        from_d(core::array::from_fn(|k| {
            if k & 1 == 0 {
                Sub::op::<F32>(env, x[k] as u64, y[k] as u64) as u32
            } else {
                Add::op::<F32>(env, x[k] as u64, y[k] as u64) as u32
            }
        }))
    })
}

/// ADDSUBPD.
pub fn addsubpd(m: &mut Machine, i: &Instruction) -> Flow {
    fp_instr::<PD>(m, i, |env, a, b| {
        let (x, y) = (q(a), q(b));
        from_q([
            Sub::op::<F64>(env, x[0], y[0]),
            Add::op::<F64>(env, x[1], y[1]),
        ])
    })
}

/// HADDPS/HSUBPS: adjacent pairs of the destination, then of the source.
pub fn hps<O: BinOp>(m: &mut Machine, i: &Instruction) -> Flow {
    fp_instr::<PS>(m, i, |env, a, b| {
        let (x, y) = (d(a), d(b));
        let mut p = |u: u32, v: u32| O::op::<F32>(env, u as u64, v as u64) as u32;
        let r0 = p(x[0], x[1]);
        let r1 = p(x[2], x[3]);
        let r2 = p(y[0], y[1]);
        let r3 = p(y[2], y[3]);
        from_d([r0, r1, r2, r3])
    })
}

/// HADDPD/HSUBPD.
pub fn hpd<O: BinOp>(m: &mut Machine, i: &Instruction) -> Flow {
    fp_instr::<PD>(m, i, |env, a, b| {
        let (x, y) = (q(a), q(b));
        let r0 = O::op::<F64>(env, x[0], x[1]);
        let r1 = O::op::<F64>(env, y[0], y[1]);
        from_q([r0, r1])
    })
}

/// RCPPS/RCPSS (`RSQRT = false`) and RSQRTPS/RSQRTSS: no MXCSR involvement.
pub fn rcp_rsqrt<const S: u8, const RSQRT: bool>(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let src = m.xmm_src(i, 1, Mem::Aligned)?;
    let dn = xmm_n(i.op0_register());
    let f = |_: &mut Env, _, b| {
        if RSQRT {
            approx::rsqrt(b)
        } else {
            approx::rcp(b)
        }
    };
    let mut env = m.fp_env();
    m.cpu.fpu.xmm[dn] = lanes::<S>(&mut env, m.cpu.fpu.xmm[dn], src, f, f);
    Ok(())
}

/// ROUNDPS..ROUNDSD: imm8[1:0] is the rounding mode unless imm8[2] selects
/// MXCSR.RC; imm8[3] suppresses the precision exception.
pub fn round<const S: u8>(m: &mut Machine, i: &Instruction) -> Flow {
    let imm = i.immediate8() as u32;
    fp_instr::<S>(m, i, |env, a, b| {
        let rc = if imm & 4 != 0 {
            env.rc
        } else {
            Rounding::from_rc(imm)
        };
        let quiet = imm & 8 != 0;
        lanes::<S>(
            env,
            a,
            b,
            |e, _, y| fp::round_to_integral::<F32>(e, y, rc, quiet),
            |e, _, y| fp::round_to_integral::<F64>(e, y, rc, quiet),
        )
    })
}

/// The environment of a staged instruction, with the fast path decided.
#[inline(always)]
fn staged_env(m: &Machine) -> Env {
    let mx = m.cpu.fpu.mxcsr;
    let mut env = Env::new(mx);
    env.fast = fast_env(mx);
    env
}

/// DPPS: products of the lanes imm8[7:4] selects (others +0.0), summed as
/// (p0 + p1) + (p2 + p3) with a rounding after each step, broadcast to the
/// lanes imm8[3:0] selects (others +0.0) (SDM Vol. 2 "DPPS", DP_primitive).
/// The multiplications, the pairwise sums and the final sum are dependent
/// stages: an unmasked exception in one stops the instruction there, with
/// the flags of the earlier stages recorded in full (as the hardware does).
pub fn dpps(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let imm = i.immediate8() as u32;
    let y = d(m.xmm_src(i, 1, Mem::Aligned)?);
    let dn = xmm_n(i.op0_register());
    let x = d(m.cpu.fpu.xmm[dn]);
    let mut env = staged_env(m);
    let p: [u64; 4] = core::array::from_fn(|k| {
        if imm >> (4 + k) & 1 != 0 {
            Mul::op::<F32>(&mut env, x[k] as u64, y[k] as u64)
        } else {
            0
        }
    });
    m.mxcsr_stage(&mut env)?;
    let s01 = Add::op::<F32>(&mut env, p[0], p[1]);
    let s23 = Add::op::<F32>(&mut env, p[2], p[3]);
    m.mxcsr_stage(&mut env)?;
    let s = Add::op::<F32>(&mut env, s01, s23) as u32;
    m.mxcsr_commit(&env)?;
    m.cpu.fpu.xmm[dn] = from_d(core::array::from_fn(
        |k| if imm >> k & 1 != 0 { s } else { 0 },
    ));
    Ok(())
}

/// DPPD: as DPPS with two lanes (imm8[5:4] and imm8[1:0]) and one sum.
pub fn dppd(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let imm = i.immediate8() as u32;
    let y = q(m.xmm_src(i, 1, Mem::Aligned)?);
    let dn = xmm_n(i.op0_register());
    let x = q(m.cpu.fpu.xmm[dn]);
    let mut env = staged_env(m);
    let p: [u64; 2] = core::array::from_fn(|k| {
        if imm >> (4 + k) & 1 != 0 {
            Mul::op::<F64>(&mut env, x[k], y[k])
        } else {
            0
        }
    });
    m.mxcsr_stage(&mut env)?;
    let s = Add::op::<F64>(&mut env, p[0], p[1]);
    m.mxcsr_commit(&env)?;
    m.cpu.fpu.xmm[dn] = from_q(core::array::from_fn(
        |k| if imm >> k & 1 != 0 { s } else { 0 },
    ));
    Ok(())
}
