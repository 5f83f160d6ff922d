//! Conversions (SDM Vol. 2 CVTPI2PS..CVTTSD2SI): between binary32 and
//! binary64, from signed integers (rounded under MXCSR), to signed integers
//! (rounded under MXCSR, or truncated by the CVTT forms; NaN, infinity and
//! out-of-range give the integer indefinite with IE).

use super::fp::{self, Env, Rounding, F32, F64};
use super::lanes::{d, from_d, from_q, q};
use super::operands::{mm_n, sse_check, sse_mmx_check, xmm_n, Mem};
use crate::event::{Event, Flow};
use crate::machine::Machine;
use iced_x86::{Instruction, OpKind};

const LO64: u128 = u64::MAX as u128;
const LO32: u128 = u32::MAX as u128;

/// Reads source operand 1 (XMM or memory of the instruction's size), runs
/// `f` under MXCSR, commits the flags, and returns the result to store.
#[inline(always)]
fn convert<T>(
    m: &mut Machine,
    i: &Instruction,
    f: impl FnOnce(&mut Env, u128) -> T,
) -> Result<T, Event> {
    sse_check(m)?;
    let src = m.xmm_src(i, 1, Mem::Aligned)?;
    let mut env = m.fp_env();
    let r = f(&mut env, src);
    m.mxcsr_commit(&env)?;
    Ok(r)
}

/// Replaces the bits of `mask` in destination XMM register (operand 0).
#[inline(always)]
fn merge(m: &mut Machine, i: &Instruction, mask: u128, v: u128) {
    let x = &mut m.cpu.fpu.xmm[xmm_n(i.op0_register())];
    *x = (*x & !mask) | (v & mask);
}

/// CVTSS2SD: the low single to the low double.
pub fn cvtss2sd(m: &mut Machine, i: &Instruction) -> Flow {
    let r = convert(m, i, |e, s| fp::f32_to_f64(e, s as u32 as u64))?;
    merge(m, i, LO64, r as u128);
    Ok(())
}

/// CVTSD2SS: the low double to the low single.
pub fn cvtsd2ss(m: &mut Machine, i: &Instruction) -> Flow {
    let r = convert(m, i, |e, s| fp::f64_to_f32(e, s as u64))?;
    merge(m, i, LO32, r as u128);
    Ok(())
}

/// CVTPS2PD: the two low singles to doubles.
pub fn cvtps2pd(m: &mut Machine, i: &Instruction) -> Flow {
    let r = convert(m, i, |e, s| {
        let v = d(s);
        let r0 = fp::f32_to_f64(e, v[0] as u64);
        from_q([r0, fp::f32_to_f64(e, v[1] as u64)])
    })?;
    merge(m, i, u128::MAX, r);
    Ok(())
}

/// CVTPD2PS: two doubles to the low singles; the upper half zeroed.
pub fn cvtpd2ps(m: &mut Machine, i: &Instruction) -> Flow {
    let r = convert(m, i, |e, s| {
        let v = q(s);
        let r0 = fp::f64_to_f32(e, v[0]) as u32;
        from_d([r0, fp::f64_to_f32(e, v[1]) as u32, 0, 0])
    })?;
    merge(m, i, u128::MAX, r);
    Ok(())
}

/// CVTDQ2PS: four doublewords to singles.
pub fn cvtdq2ps(m: &mut Machine, i: &Instruction) -> Flow {
    let r = convert(m, i, |e, s| {
        let v = d(s);
        from_d(core::array::from_fn(|k| {
            fp::from_int::<F32>(e, v[k] as i32 as i64) as u32
        }))
    })?;
    merge(m, i, u128::MAX, r);
    Ok(())
}

/// CVTDQ2PD: the two low doublewords to doubles (exact).
pub fn cvtdq2pd(m: &mut Machine, i: &Instruction) -> Flow {
    let r = convert(m, i, |e, s| {
        let v = d(s);
        let r0 = fp::from_int::<F64>(e, v[0] as i32 as i64);
        from_q([r0, fp::from_int::<F64>(e, v[1] as i32 as i64)])
    })?;
    merge(m, i, u128::MAX, r);
    Ok(())
}

/// The rounding of a conversion to integer: MXCSR's, or toward zero.
#[inline(always)]
fn rc(e: &Env, truncate: bool) -> Rounding {
    if truncate {
        Rounding::Zero
    } else {
        e.rc
    }
}

/// CVTPS2DQ and CVTTPS2DQ.
pub fn cvtps2dq<const T: bool>(m: &mut Machine, i: &Instruction) -> Flow {
    let r = convert(m, i, |e, s| {
        let v = d(s);
        let r = rc(e, T);
        from_d(core::array::from_fn(|k| {
            fp::to_int::<F32>(e, v[k] as u64, 32, r) as u32
        }))
    })?;
    merge(m, i, u128::MAX, r);
    Ok(())
}

/// CVTPD2DQ and CVTTPD2DQ: two doubles to the low doublewords; the upper
/// half zeroed.
pub fn cvtpd2dq<const T: bool>(m: &mut Machine, i: &Instruction) -> Flow {
    let r = convert(m, i, |e, s| {
        let v = q(s);
        let r = rc(e, T);
        let r0 = fp::to_int::<F64>(e, v[0], 32, r) as u32;
        from_d([r0, fp::to_int::<F64>(e, v[1], 32, r) as u32, 0, 0])
    })?;
    merge(m, i, u128::MAX, r);
    Ok(())
}

/// CVTSI2SS and CVTSI2SD (`DOUBLE`): a signed 32- or 64-bit integer from a
/// general register or memory into the low lane.
pub fn cvtsi2s<const DOUBLE: bool>(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let (v, size) = if i.op_kind(1) == OpKind::Register {
        let r = i.op1_register();
        (m.read_gpr(r), r.size())
    } else {
        let s = i.memory_size().size();
        (m.read_mem_op(i, s)?, s)
    };
    let v = if size == 4 {
        v as u32 as i32 as i64
    } else {
        v as i64
    };
    let mut env = m.fp_env();
    let r = if DOUBLE {
        fp::from_int::<F64>(&mut env, v)
    } else {
        fp::from_int::<F32>(&mut env, v)
    };
    m.mxcsr_commit(&env)?;
    merge(m, i, if DOUBLE { LO64 } else { LO32 }, r as u128);
    Ok(())
}

/// CVTSS2SI, CVTTSS2SI, CVTSD2SI, CVTTSD2SI: the low lane to a signed
/// integer in a 32- or 64-bit general register.
pub fn cvts2si<const DOUBLE: bool, const T: bool>(m: &mut Machine, i: &Instruction) -> Flow {
    let dst = i.op0_register();
    let bits = dst.size() as u32 * 8;
    let r = convert(m, i, |e, s| {
        let r = rc(e, T);
        if DOUBLE {
            fp::to_int::<F64>(e, s as u64, bits, r)
        } else {
            fp::to_int::<F32>(e, s as u32 as u64, bits, r)
        }
    })?;
    m.write_gpr(dst, r);
    Ok(())
}

/// CVTPI2PS, CVTPI2PD: two doublewords of an MMX register or m64 to the
/// low singles (rounded under MXCSR) or to doubles (exact: nothing to
/// raise). Only the register form touches the MMX state.
pub fn cvtpi2p<const DOUBLE: bool>(m: &mut Machine, i: &Instruction) -> Flow {
    let mmx = i.op_kind(1) == OpKind::Register;
    let src = if mmx {
        sse_mmx_check(m)?;
        m.mm(mm_n(i.op1_register()))
    } else {
        sse_check(m)?;
        m.read_mem_op(i, 8)?
    };
    let mut env = m.fp_env();
    let v = [src as u32 as i32 as i64, (src >> 32) as u32 as i32 as i64];
    let (mask, r) = if DOUBLE {
        (
            u128::MAX,
            from_q(v.map(|v| fp::from_int::<F64>(&mut env, v))),
        )
    } else {
        let [r0, r1] = v.map(|v| fp::from_int::<F32>(&mut env, v));
        (LO64, (r1 << 32 | r0) as u128)
    };
    if mmx {
        m.mmx_enter();
    }
    m.mxcsr_commit(&env)?;
    merge(m, i, mask, r);
    Ok(())
}

/// CVTPS2PI, CVTTPS2PI: the two low singles to doublewords in an MMX
/// register.
pub fn cvtps2pi<const T: bool>(m: &mut Machine, i: &Instruction) -> Flow {
    sse_mmx_check(m)?;
    let src = m.xmm_src(i, 1, Mem::Aligned)?;
    let mut env = m.fp_env();
    let r = rc(&env, T);
    let v = d(src);
    let r0 = fp::to_int::<F32>(&mut env, v[0] as u64, 32, r);
    let r1 = fp::to_int::<F32>(&mut env, v[1] as u64, 32, r);
    m.mmx_enter();
    m.mxcsr_commit(&env)?;
    m.set_mm(mm_n(i.op0_register()), r1 << 32 | r0);
    Ok(())
}

/// CVTPD2PI, CVTTPD2PI: two doubles (xmm/m128) to doublewords in an MMX
/// register.
pub fn cvtpd2pi<const T: bool>(m: &mut Machine, i: &Instruction) -> Flow {
    sse_mmx_check(m)?;
    let src = m.xmm_src(i, 1, Mem::Aligned)?;
    let mut env = m.fp_env();
    let r = rc(&env, T);
    let v = q(src);
    let r0 = fp::to_int::<F64>(&mut env, v[0], 32, r);
    let r1 = fp::to_int::<F64>(&mut env, v[1], 32, r);
    m.mmx_enter();
    m.mxcsr_commit(&env)?;
    m.set_mm(mm_n(i.op0_register()), r1 << 32 | r0);
    Ok(())
}
