//! Conversions between the formats and to and from integers (SDM Vol. 2
//! CVT*; Vol. 1 4.8.3.7 NaN conversions, 4.8.4 rounding, 11.5.2.1 "integer
//! indefinite"), and rounding to an integral value (ROUNDPS..ROUNDSD).

use super::round::round_shift;
use super::*;

/// binary32 → binary64 (CVTSS2SD, CVTPS2PD): exact; IE for an SNaN, which is
/// quieted with its payload kept; DE for a denormal.
pub fn f32_to_f64(env: &mut Env, a: u64) -> u64 {
    let a = daz::<F32>(env, a);
    let s = if sign::<F32>(a) { F64::SIGN } else { 0 };
    match class::<F32>(a) {
        Class::Zero => s,
        Class::Inf => s | F64::EXP_MASK,
        Class::QNan | Class::SNan => {
            if is_snan::<F32>(a) {
                env.raise(flag::IE);
            }
            s | F64::EXP_MASK | F64::QUIET | ((a & F32::FRAC_MASK) << (F64::FRAC - F32::FRAC))
        }
        Class::Denormal | Class::Normal => {
            if is_denormal::<F32>(a) {
                env.raise(flag::DE);
            }
            let u = unpack::<F32>(a);
            let e = (u.exp + F32::FRAC as i32 + F64::BIAS) as u64;
            s | (e << F64::FRAC) | ((u.sig & F32::FRAC_MASK) << (F64::FRAC - F32::FRAC))
        }
    }
}

/// binary64 → binary32 (CVTSD2SS, CVTPD2PS): rounded under MXCSR; an NaN
/// keeps the top of its payload and is quieted (IE for an SNaN).
pub fn f64_to_f32(env: &mut Env, a: u64) -> u64 {
    let a = daz::<F64>(env, a);
    let s = if sign::<F64>(a) { F32::SIGN } else { 0 };
    match class::<F64>(a) {
        Class::Zero => s,
        Class::Inf => s | F32::EXP_MASK,
        Class::QNan | Class::SNan => {
            if is_snan::<F64>(a) {
                env.raise(flag::IE);
            }
            s | F32::EXP_MASK | F32::QUIET | ((a & F64::FRAC_MASK) >> (F64::FRAC - F32::FRAC))
        }
        Class::Denormal | Class::Normal => {
            if is_denormal::<F64>(a) {
                env.raise(flag::DE);
            }
            let u = unpack::<F64>(a);
            round_pack::<F32>(env, u.sign, u.sig as u128, u.exp)
        }
    }
}

/// A signed integer → `F` (CVTSI2SS, CVTDQ2PS, ...): rounded under MXCSR
/// (only PE can arise).
pub fn from_int<F: Format>(env: &mut Env, v: i64) -> u64 {
    if v == 0 {
        return 0;
    }
    round_pack::<F>(env, v < 0, v.unsigned_abs() as u128, 0)
}

/// `F` → a signed integer of `bits` (32 or 64) bits, rounded with `rc`
/// (MXCSR's for CVT*, toward zero for CVTT*). NaNs, infinities and values out
/// of range give the "integer indefinite" (the most negative integer) with
/// IE; otherwise PE if inexact (SDM Vol. 1 4.2.2 "Floating-point data types",
/// integer indefinite; 11.5.2.1 "Invalid operation exception (#I)"; Vol.
/// 2 CVTSS2SI). Returns the value zero-extended from `bits`.
pub fn to_int<F: Format>(env: &mut Env, a: u64, bits: u32, rc: Rounding) -> u64 {
    let a = daz::<F>(env, a);
    let indefinite = 1u64 << (bits - 1);
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    };
    match class::<F>(a) {
        Class::Zero => return 0,
        Class::Inf | Class::QNan | Class::SNan => {
            env.raise(flag::IE);
            return indefinite;
        }
        Class::Denormal | Class::Normal => {}
    }
    let u = unpack::<F>(a);
    let (mag, inexact) = if u.exp >= 0 {
        if u.exp >= 64 {
            env.raise(flag::IE);
            return indefinite;
        }
        ((u.sig as u128) << u.exp, false)
    } else {
        round_shift(u.sig as u128, (-u.exp) as u32, u.sign, rc)
    };
    let limit = if u.sign {
        1u128 << (bits - 1)
    } else {
        (1u128 << (bits - 1)) - 1
    };
    if mag > limit {
        env.raise(flag::IE);
        return indefinite;
    }
    if inexact {
        env.raise(flag::PE);
    }
    let v = mag as u64;
    (if u.sign { v.wrapping_neg() } else { v }) & mask
}

/// Rounds to an integral value in `F` with `rc` (ROUNDPS..ROUNDSD, SDM Vol. 2
/// "ROUNDPS"): IE and a quieted NaN for an SNaN; PE when inexact unless
/// `suppress_pe` (imm8 bit 3). No DE is reported.
pub fn round_to_integral<F: Format>(env: &mut Env, a: u64, rc: Rounding, suppress_pe: bool) -> u64 {
    let a = daz::<F>(env, a);
    match class::<F>(a) {
        Class::QNan | Class::SNan => return propagate_nan::<F>(env, a, a),
        Class::Zero | Class::Inf => return a,
        Class::Denormal | Class::Normal => {}
    }
    let u = unpack::<F>(a);
    if u.exp >= 0 {
        return a;
    }
    let (q, inexact) = round_shift(u.sig as u128, (-u.exp) as u32, u.sign, rc);
    if inexact && !suppress_pe {
        env.raise(flag::PE);
    }
    if q == 0 {
        return zero::<F>(u.sign);
    }
    // q has at most FRAC + 1 bits: exact.
    let mut exact = Env::new(mxcsr::RESET);
    round_pack::<F>(&mut exact, u.sign, q, 0)
}
