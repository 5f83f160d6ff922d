//! The numerical kernels of the transcendental instructions: constants to
//! 128 bits, series for sin/cos, atan, ln(1 + x) and e^x - 1 in [`Bf`],
//! the exact argument reduction by the FPU's 66-bit pi, and the final
//! rounding (including "exact value plus tiny correction" results, which
//! must still round the right way in every mode).

use super::big::{Bf, U256};
use super::round::round_reg;
use super::{Env, Fx, F80};
use core::cmp::Ordering;
use core::ops::{Add, Div, Mul, Neg, Shl, Shr, Sub};

/// pi to 128 bits (truncated).
pub(super) const PI: Bf = Bf {
    neg: false,
    exp: 1,
    m: 0xc90f_daa2_2168_c234_c4c6_628b_80dc_1cd1,
};
/// ln 2 to 128 bits (truncated).
pub(super) const LN2: Bf = Bf {
    neg: false,
    exp: -1,
    m: 0xb172_17f7_d1cf_79ab_c9e3_b398_03f2_f6af,
};
/// log2 e to 128 bits (truncated).
pub(super) const LOG2E: Bf = Bf {
    neg: false,
    exp: 0,
    m: 0xb8aa_3b29_5c17_f0bb_be87_fed0_691d_3e88,
};
/// The x87 FPU's 66-bit pi as an integer: pi ~= PI66 / 2^64.
pub(super) const PI66: u128 = 0x3_243f_6a88_85a3_08d3;

/// Rounds an approximation (never exactly representable unless `exact`) to
/// a register with 64-bit precision.
pub(super) fn round_bf(v: Bf, exact: bool, env: Env, fx: &mut Fx) -> F80 {
    if v.is_zero() {
        return F80::ZERO.with_sign(v.neg);
    }
    round_reg(v.neg, v.exp, v.m | (!exact) as u128, env.extended(), fx)
}

/// Rounds `base + c` where `base` is exact and `c` an approximation with
/// |c| < |base|, keeping `c` to 256 bits below `base`'s leading bit (and its
/// sign as a sticky bit beyond), so a result that is `base` nudged by a
/// tiny amount still rounds the right way.
pub(super) fn round_sum(base: Bf, c: Bf, env: Env, fx: &mut Fx) -> F80 {
    if c.is_zero() {
        return round_bf(base, true, env, fx);
    }
    debug_assert!(base.cmp_abs(c) == Ordering::Greater);
    let b = U256 { hi: base.m, lo: 0 }.shr(1);
    let shift = (base.exp - c.exp) as u32;
    let cw = U256 { hi: c.m, lo: 0 }.shr(1);
    let cs = cw.shr(shift.min(256));
    // The approximation of c always has bits beyond 128; treat them sticky.
    let sticky = true;
    let s = if base.neg == c.neg {
        b.add(cs)
    } else {
        b.sub(cs).sub(U256::from_u128(sticky as u128))
    };
    let lz = s.leading_zeros();
    let n = s.shl(lz);
    let sig = n.hi | (n.lo != 0 || sticky) as u128;
    round_reg(base.neg, base.exp + 1 - lz as i32, sig, env.extended(), fx)
}

/// Sums a series whose terms come from `next(k, previous)`, starting from
/// `first`, until terms no longer matter at 2^-135 of the first term.
pub(super) fn series(first: Bf, mut next: impl FnMut(u64, Bf) -> Bf) -> Bf {
    let mut sum = first;
    let mut term = first;
    let limit = first.exp - 135;
    for k in 1..200 {
        term = next(k, term);
        if term.is_zero() || term.exp < limit {
            break;
        }
        sum = sum.add(term);
    }
    sum
}

pub(super) fn div_n(v: Bf, n: u64) -> Bf {
    v.div(Bf::from_u64(n))
}

/// sin(r) - r and cos(r) - 1 for |r| <= pi/4.
pub(super) fn sin_cos_corr(r: Bf) -> (Bf, Bf) {
    if r.is_zero() {
        return (Bf::ZERO, Bf::ZERO);
    }
    let r2 = r.mul(r);
    let s = series(div_n(r2.mul(r), 6).neg(), |k, t| {
        div_n(t.mul(r2), (2 * k + 2) * (2 * k + 3)).neg()
    });
    let c = series(div_n(r2, 2).neg(), |k, t| {
        div_n(t.mul(r2), (2 * k + 1) * (2 * k + 2)).neg()
    });
    (s, c)
}

/// atan(t) - t for 0 <= t <= 1/8.
pub(super) fn atan_corr(t: Bf) -> Bf {
    if t.is_zero() {
        return Bf::ZERO;
    }
    let t2 = t.mul(t);
    let mut pow = t;
    let mut k = 0u64;
    series(div_n(t2.mul(t), 3).neg(), |_, _| {
        k += 1;
        pow = pow.mul(t2);
        let p = pow.mul(t2);
        let term = div_n(p, 2 * k + 3);
        if k % 2 == 1 {
            term
        } else {
            term.neg()
        }
    })
}

/// atan(t) for 0 <= t <= 1 as a plain approximation.
pub(super) fn atan_full(t: Bf) -> Bf {
    // atan(t) = 2 atan(t / (1 + sqrt(1 + t^2))) until t <= 1/8.
    let mut t = t;
    let mut doublings = 0;
    while t.exp >= -3 && !t.is_zero() {
        let d = Bf::ONE.add(Bf::ONE.add(t.mul(t)).sqrt());
        t = t.div(d);
        doublings += 1;
    }
    t.add(atan_corr(t)).scale(doublings)
}

/// ln(1 + z) for |z| < 1/2, z given as a value.
pub(super) fn ln1p(z: Bf) -> Bf {
    if z.is_zero() {
        return Bf::ZERO;
    }
    // ln(1 + z) = 2 atanh(z / (2 + z)).
    let t = z.div(Bf::from_u64(2).add(z));
    let t2 = t.mul(t);
    let mut pow = t;
    let mut k = 0u64;
    let s = series(t, |_, _| {
        k += 1;
        pow = pow.mul(t2);
        div_n(pow, 2 * k + 1)
    });
    s.scale(1)
}

/// log2(v) for finite v > 0: (integer part, fractional part as a value).
pub(super) fn log2_parts(v: Bf) -> (i32, Bf) {
    // v = m * 2^e with m in [sqrt(2)/2, sqrt(2)).
    const SQRT2: u128 = 0xb504_f333_f9de_6484_597d_89b3_754a_be9f;
    let (e, m_exp) = if v.m > SQRT2 {
        (v.exp + 1, -1)
    } else {
        (v.exp, 0)
    };
    let m = Bf::new(false, m_exp, v.m);
    let z = m.sub(Bf::ONE);
    (e, ln1p(z).mul(LOG2E))
}

/// log2(v) for finite v > 0 as one value.
pub(super) fn log2(v: Bf) -> Bf {
    let (e, frac) = log2_parts(v);
    Bf::new(e < 0, 127, e.unsigned_abs() as u128).add(frac)
}

pub(super) fn pi_times(num: u64, den_log2: i32) -> Bf {
    PI.mul(Bf::from_u64(num)).scale(-den_log2)
}

/// Reduces |x| < 2^63 by the 66-bit pi / 2: (quadrant k mod 4, remainder r
/// with |r| <= pi/4 (about), exact).
pub(super) fn reduce(x: F80) -> (u32, Bf) {
    let u = x.unpack();
    if u.exp < -1 {
        return (0, Bf::from_f80(x.abs()));
    }
    // |x| in units of 2^-65: sig * 2^(exp - 63 + 65).
    let xu = U256::from_u128(u.sig as u128).shl((u.exp + 2) as u32);
    // pi66 / 2 in units of 2^-65 is PI66 itself.
    let num = xu.shl(1).add(U256::from_u128(PI66));
    let (k, _) = num.div_rem(2 * PI66);
    // r = x - k * P (may be negative).
    let kp = U256::mul128(k, PI66);
    let (neg, mag) = if xu >= kp {
        (false, xu.sub(kp))
    } else {
        (true, kp.sub(xu))
    };
    debug_assert!(mag.hi == 0);
    let r = Bf::new(neg, 127 - 65, mag.lo);
    ((k & 3) as u32, r)
}

/// Rounds with the sign applied first, so directed rounding sees the sign of
/// the final result.
pub(super) fn signed(neg: bool, f: impl FnOnce(Env, &mut Fx) -> F80, env: Env, fx: &mut Fx) -> F80 {
    // Rounding is symmetric except for RC up/down: round the magnitude with
    // the mode mirrored for negative results.
    let mirrored = if neg {
        Env {
            rc: match env.rc {
                super::Rc::Up => super::Rc::Down,
                super::Rc::Down => super::Rc::Up,
                rc => rc,
            },
            ..env
        }
    } else {
        env
    };
    f(mirrored, fx).with_sign(neg)
}

/// e^y - 1 for |y| < 1.
pub(super) fn expm1(y: Bf) -> Bf {
    series(y, |k, t| div_n(t.mul(y), k + 1))
}
