//! The transcendental instructions F2XM1, FYL2X, FYL2XP1, FSIN, FCOS,
//! FSINCOS, FPTAN and FPATAN, computed in [`Bf`] (128-bit significands) and
//! rounded once to 64 bits, so results are correctly rounded except within
//! about 2^-60 ulp of a rounding boundary: inside the "within 1 ulp" the SDM
//! states (Vol. 1 8.3.10, "Transcendental Instruction Accuracy").
//!
//! FSIN, FCOS, FSINCOS and FPTAN reduce their argument with the 66-bit
//! approximation of pi the x87 FPU uses (Vol. 1 8.3.8, "Approximation of
//! Pi"), exactly, so large arguments give the hardware's result rather than
//! the true sine; arguments of magnitude 2^63 and above are out of range
//! (C2 = 1, operand unchanged).

use super::arith::{propagate_nan, propagate_nan1};
use super::big::Bf;
use super::kernels::*;
use super::{exc, Env, Fx, F80};
use core::cmp::Ordering;
use core::ops::{Add, Div, Mul, Neg, Sub};

/// Validates a one-operand trigonometric argument: returns the result for
/// special operands, or `None` for a finite value to compute.
fn trig_special(a: F80, zero: impl Fn(F80) -> F80, fx: &mut Fx) -> Option<F80> {
    if a.is_unsupported() || a.is_inf() {
        fx.raise(exc::IE);
        return Some(F80::INDEFINITE);
    }
    if a.is_nan() {
        return Some(propagate_nan1(a, fx));
    }
    if a.is_zero() {
        return Some(zero(a));
    }
    if a.is_denormal() {
        fx.raise(exc::DE);
    }
    None
}

/// True if |a| >= 2^63: FSIN/FCOS/FSINCOS/FPTAN leave the operand and set
/// C2 (SDM Vol. 2A FSIN "Source operand is out of range").
pub fn out_of_range(a: F80) -> bool {
    a.exp() != 0x7fff && a.exp() >= 0x3fff + 63 && a.sig & super::J != 0
}

/// FSIN: `None` if out of range.
pub fn sin(a: F80, env: Env, fx: &mut Fx) -> Option<F80> {
    if let Some(r) = trig_special(a, |z| z, fx) {
        return Some(r);
    }
    if out_of_range(a) {
        return None;
    }
    let (k, r) = reduce(a);
    let (cs, cc) = sin_cos_corr(r);
    Some(quadrant_sin(a.sign(), k, r, cs, cc, env, fx))
}

fn quadrant_sin(neg_x: bool, k: u32, r: Bf, cs: Bf, cc: Bf, env: Env, fx: &mut Fx) -> F80 {
    match k {
        0 | 2 => {
            let neg = r.neg ^ (k == 2) ^ neg_x;
            signed(
                neg,
                |e, f| round_sum(r.abs(), cs.with_neg(cs.neg ^ r.neg), e, f),
                env,
                fx,
            )
        }
        _ => {
            let neg = (k == 3) ^ neg_x;
            signed(neg, |e, f| round_sum(Bf::ONE, cc, e, f), env, fx)
        }
    }
}

fn quadrant_cos(k: u32, r: Bf, cs: Bf, cc: Bf, env: Env, fx: &mut Fx) -> F80 {
    match k {
        0 | 2 => {
            let neg = k == 2;
            signed(neg, |e, f| round_sum(Bf::ONE, cc, e, f), env, fx)
        }
        _ => {
            // cos(P + r) = -sin r; cos(3P + r) = sin r.
            let neg = r.neg ^ (k == 1);
            signed(
                neg,
                |e, f| round_sum(r.abs(), cs.with_neg(cs.neg ^ r.neg), e, f),
                env,
                fx,
            )
        }
    }
}

/// FCOS: `None` if out of range.
pub fn cos(a: F80, env: Env, fx: &mut Fx) -> Option<F80> {
    if let Some(r) = trig_special(a, |_| F80::ONE, fx) {
        return Some(r);
    }
    if out_of_range(a) {
        return None;
    }
    let (k, r) = reduce(a);
    let (cs, cc) = sin_cos_corr(r);
    Some(quadrant_cos(k, r, cs, cc, env, fx))
}

/// FSINCOS: (sin, cos), `None` if out of range. The flags of both roundings
/// are merged; C1 reports the cosine's rounding (the value left in ST(0)).
pub fn sincos(a: F80, env: Env, fx: &mut Fx) -> Option<(F80, F80)> {
    if a.is_unsupported() || a.is_inf() || a.is_nan() {
        let mut f2 = *fx;
        let s = sin(a, env, fx)?;
        let _ = cos(a, env, &mut f2);
        return Some((s, s));
    }
    if a.is_zero() {
        return Some((a, F80::ONE));
    }
    if out_of_range(a) {
        return None;
    }
    if a.is_denormal() {
        fx.raise(exc::DE);
    }
    let (k, r) = reduce(a);
    let (cs, cc) = sin_cos_corr(r);
    let mut fs = Fx::default();
    let s = quadrant_sin(a.sign(), k, r, cs, cc, env, &mut fs);
    let mut fc = Fx::default();
    let c = quadrant_cos(k, r, cs, cc, env, &mut fc);
    fx.flags |= fs.flags | fc.flags;
    fx.up = fc.up;
    Some((s, c))
}

/// FPTAN: tan(a), `None` if out of range.
pub fn tan(a: F80, env: Env, fx: &mut Fx) -> Option<F80> {
    if let Some(r) = trig_special(a, |z| z, fx) {
        return Some(r);
    }
    if out_of_range(a) {
        return None;
    }
    let (k, r) = reduce(a);
    let (cs, cc) = sin_cos_corr(r);
    let neg_x = a.sign();
    if k & 1 == 0 {
        // tan r = r + (cs - r*cc) / (1 + cc).
        let c = cs.sub(r.mul(cc)).div(Bf::ONE.add(cc));
        let neg = r.neg ^ neg_x;
        let (rr, cc2) = (r.abs(), c.with_neg(c.neg ^ r.neg));
        return Some(signed(neg, |e, f| round_sum(rr, cc2, e, f), env, fx));
    }
    // tan(P + r) = -cos r / sin r.
    let s = r.add(cs);
    let c = Bf::ONE.add(cc);
    let v = c.div(s).neg();
    let v = if neg_x { v.neg() } else { v };
    Some(signed(
        v.neg,
        |e, f| round_bf(v.abs(), false, e, f),
        env,
        fx,
    ))
}

/// F2XM1: 2^x - 1 (SDM Vol. 2A F2XM1). The architecture defines it for
/// -1 <= x <= +1 only; for |x| >= 1 processors (and Bochs) return x itself,
/// except -1, which gives -1/2, with #P raised.
pub fn f2xm1(a: F80, env: Env, fx: &mut Fx) -> F80 {
    if a.is_unsupported() {
        fx.raise(exc::IE);
        return F80::INDEFINITE;
    }
    if a.is_nan() {
        return propagate_nan1(a, fx);
    }
    if a.is_inf() {
        return if a.sign() { F80::ONE.neg() } else { a };
    }
    if a.is_zero() {
        return a;
    }
    if a.is_denormal() {
        fx.raise(exc::DE);
    }
    fx.raise(exc::PE);
    if a.exp() >= 0x3fff {
        return if a == F80::ONE.neg() {
            F80::new(true, 0x3ffe, super::J)
        } else {
            a
        };
    }
    let v = expm1(Bf::from_f80(a).mul(LN2));
    signed(v.neg, |e, f| round_bf(v.abs(), false, e, f), env, fx)
}

/// y * log2(x) with the special values of FYL2X (SDM Vol. 2A FYL2X table):
/// `x` is ST(0), `y` is ST(1). Every result but the exact special ones
/// reports #P, as processors do.
pub fn fyl2x(x: F80, y: F80, env: Env, fx: &mut Fx) -> F80 {
    if x.is_unsupported() || y.is_unsupported() {
        fx.raise(exc::IE);
        return F80::INDEFINITE;
    }
    if x.is_nan() || y.is_nan() {
        return propagate_nan(y, x, fx);
    }
    let invalid = |fx: &mut Fx| {
        fx.raise(exc::IE);
        F80::INDEFINITE
    };
    let below_one = x.exp() < 0x3fff;
    let is_one = x == F80::ONE;
    if x.is_inf() {
        if x.sign() {
            return invalid(fx);
        }
        if y.is_zero() {
            return invalid(fx);
        }
        if y.is_denormal() {
            fx.raise(exc::DE);
        }
        return F80::INF.with_sign(y.sign());
    }
    if y.is_inf() {
        if x.sign() && !x.is_zero() {
            return invalid(fx);
        }
        if x.is_denormal() {
            fx.raise(exc::DE);
        }
        if below_one {
            return F80::INF.with_sign(!y.sign());
        }
        if is_one {
            return invalid(fx);
        }
        return F80::INF.with_sign(y.sign());
    }
    if x.is_zero() {
        if y.is_zero() {
            return invalid(fx);
        }
        fx.raise(exc::ZE);
        return F80::INF.with_sign(!y.sign());
    }
    if x.sign() {
        return invalid(fx);
    }
    if x.is_denormal() {
        fx.raise(exc::DE);
    }
    if y.is_zero() {
        return F80::ZERO.with_sign(y.sign() ^ below_one);
    }
    if y.is_denormal() {
        fx.raise(exc::DE);
    }
    if is_one {
        return F80::ZERO.with_sign(y.sign());
    }
    fx.raise(exc::PE);
    let (e, frac) = log2_parts(Bf::from_f80(x));
    let l = Bf::new(e < 0, 127, e.unsigned_abs() as u128).add(frac);
    let v = Bf::from_f80(y).mul(l);
    let exact = frac.is_zero();
    let r = signed(v.neg, |en, f| round_bf(v.abs(), exact, en, f), env, fx);
    if exact && r.is_denormal() && !env.unmasked(exc::UE) {
        // An exact tiny product still counts as inexact (#P is always
        // reported), so the masked underflow is reported too.
        fx.raise(exc::UE);
    }
    r
}

/// y * log2(x + 1) (FYL2XP1; defined for |x| < 1 - sqrt(2)/2): `x` is
/// ST(0), `y` ST(1). Outside the range processors compute on regardless;
/// for x <= -1 they return x.
pub fn fyl2xp1(x: F80, y: F80, env: Env, fx: &mut Fx) -> F80 {
    if x.is_unsupported() || y.is_unsupported() {
        fx.raise(exc::IE);
        return F80::INDEFINITE;
    }
    if x.is_nan() || y.is_nan() {
        return propagate_nan(y, x, fx);
    }
    let invalid = |fx: &mut Fx| {
        fx.raise(exc::IE);
        F80::INDEFINITE
    };
    let sign = x.sign() ^ y.sign();
    if x.is_inf() {
        if x.sign() || y.is_zero() {
            return invalid(fx);
        }
        if y.is_denormal() {
            fx.raise(exc::DE);
        }
        return F80::INF.with_sign(y.sign());
    }
    if y.is_inf() {
        if x.is_zero() {
            return invalid(fx);
        }
        if x.is_denormal() {
            fx.raise(exc::DE);
        }
        return F80::INF.with_sign(sign);
    }
    if x.is_zero() {
        if y.is_denormal() {
            fx.raise(exc::DE);
        }
        return F80::ZERO.with_sign(sign);
    }
    if x.is_denormal() {
        fx.raise(exc::DE);
    }
    if y.is_zero() {
        return F80::ZERO.with_sign(sign);
    }
    if y.is_denormal() {
        fx.raise(exc::DE);
    }
    fx.raise(exc::PE);
    if x.sign() && x.exp() >= 0x3fff {
        return x;
    }
    let xb = Bf::from_f80(x);
    let l = if xb.exp < -1 {
        ln1p(xb).mul(LOG2E)
    } else {
        // Outside the architectural range: log2 of 1 + x (exact in Bf).
        log2(Bf::ONE.add(xb))
    };
    let v = Bf::from_f80(y).mul(l);
    signed(v.neg, |en, f| round_bf(v.abs(), false, en, f), env, fx)
}

/// FPATAN: atan2(y, x) with `y` = ST(1), `x` = ST(0) (SDM Vol. 2A FPATAN
/// table).
pub fn atan2(y: F80, x: F80, env: Env, fx: &mut Fx) -> F80 {
    if x.is_unsupported() || y.is_unsupported() {
        fx.raise(exc::IE);
        return F80::INDEFINITE;
    }
    if x.is_nan() || y.is_nan() {
        return propagate_nan(y, x, fx);
    }
    if x.is_denormal() || y.is_denormal() {
        fx.raise(exc::DE);
    }
    let neg = y.sign();
    let xneg = x.sign();
    let konst = |num: u64, den: i32, fx: &mut Fx| {
        signed(
            neg,
            |e, f| round_bf(pi_times(num, den), false, e, f),
            env,
            fx,
        )
    };
    if y.is_zero() {
        return if xneg { konst(1, 0, fx) } else { y };
    }
    if y.is_inf() {
        return if x.is_inf() {
            if xneg {
                konst(3, 2, fx)
            } else {
                konst(1, 2, fx)
            }
        } else {
            konst(1, 1, fx)
        };
    }
    if x.is_zero() {
        return konst(1, 1, fx);
    }
    if x.is_inf() {
        return if xneg {
            konst(1, 0, fx)
        } else {
            F80::ZERO.with_sign(neg)
        };
    }
    let (ya, xa) = (Bf::from_f80(y.abs()), Bf::from_f80(x.abs()));
    let v = match ya.cmp_abs(xa) {
        Ordering::Equal => pi_times(1, 2),
        Ordering::Less => {
            let t = ya.div(xa);
            if !xneg && t.exp < -3 {
                // Small angles: keep t exact-relative for the rounding.
                let c = atan_corr(t);
                return signed(neg, |e, f| round_sum(t, c, e, f), env, fx);
            }
            atan_full(t)
        }
        Ordering::Greater => pi_times(1, 1).sub(atan_full(xa.div(ya))),
    };
    let v = if xneg { PI.sub(v) } else { v };
    signed(neg, |e, f| round_bf(v, false, e, f), env, fx)
}

#[cfg(test)]
mod tests {
    use super::super::convert::from_i64;
    use super::super::{Pc, Rc};
    use super::*;

    const ENV: Env = Env {
        rc: Rc::Nearest,
        pc: Pc::Extended,
        masks: exc::ALL,
    };

    #[test]
    fn constants_agree_with_series() {
        // pi = 16 atan(1/5) - 4 atan(1/239).
        let a5 = atan_full(Bf::ONE.div(Bf::from_u64(5)));
        let a239 = atan_full(Bf::ONE.div(Bf::from_u64(239)));
        let pi = a5.scale(4).sub(a239.scale(2));
        let err = pi.sub(PI);
        assert!(err.is_zero() || err.exp < -120, "{err:?}");
        // ln 2 = ln1p(1/2) - ln1p(-1/4) - ... use ln(2) = -ln(1/2) = -ln1p(-1/2)
        let ln2 = ln1p(Bf::ONE.scale(-1).neg()).neg();
        let err = ln2.sub(LN2);
        assert!(err.is_zero() || err.exp < -120, "{err:?}");
        let one = LN2.mul(LOG2E);
        let err = one.sub(Bf::ONE);
        assert!(err.is_zero() || err.exp < -120, "{err:?}");
    }

    #[test]
    fn exact_special_values() {
        let mut fx = Fx::default();
        assert_eq!(fyl2x(from_i64(8), from_i64(3), ENV, &mut fx), from_i64(9));
        assert_eq!(f2xm1(F80::ONE, ENV, &mut fx), F80::ONE);
        assert_eq!(fx.flags, exc::PE, "processors report #P even when exact");
        let mut fx = Fx::default();
        assert_eq!(fyl2x(F80::ONE, from_i64(3), ENV, &mut fx), F80::ZERO);
        assert_eq!(fx.flags, 0);
        assert_eq!(sin(F80::ZERO.neg(), ENV, &mut fx), Some(F80::ZERO.neg()));
        assert_eq!(cos(F80::ZERO, ENV, &mut fx), Some(F80::ONE));
    }

    #[test]
    fn known_values() {
        let mut fx = Fx::default();
        // sin(1), cos(1), atan(1) = pi/4, log2(10), 2^0.5 - 1.
        let s = sin(F80::ONE, ENV, &mut fx).unwrap();
        assert_eq!(s, F80::new(false, 0x3ffe, 0xd76a_a478_4867_7021));
        let c = cos(F80::ONE, ENV, &mut fx).unwrap();
        assert_eq!(c, F80::new(false, 0x3ffe, 0x8a51_407d_a834_5c92));
        let q = atan2(F80::ONE, F80::ONE, ENV, &mut fx);
        assert_eq!(q, F80::new(false, 0x3ffe, 0xc90f_daa2_2168_c235));
        let l = fyl2x(from_i64(10), F80::ONE, ENV, &mut fx);
        assert_eq!(l, F80::new(false, 0x4000, 0xd49a_784b_cd1b_8afe));
        let half = F80::new(false, 0x3ffe, 1 << 63);
        let e = f2xm1(half, ENV, &mut fx);
        assert_eq!(e, F80::new(false, 0x3ffd, 0xd413_cccf_e779_9211));
        assert_eq!(fx.flags, exc::PE);
    }

    #[test]
    fn tiny_sine_rounds_toward_zero_when_truncating() {
        let tiny = F80::new(false, 0x3fff - 100, 0x8000_0000_0000_0000);
        let mut fx = Fx::default();
        assert_eq!(sin(tiny, ENV, &mut fx), Some(tiny));
        let rz = Env {
            rc: Rc::Zero,
            ..ENV
        };
        let r = sin(tiny, rz, &mut fx).unwrap();
        assert_eq!(r, F80::new(false, 0x3fff - 101, u64::MAX));
        assert_eq!(fx.flags, exc::PE);
    }

    fn parse(t: &str) -> F80 {
        let (se, sig) = t.split_once(':').expect("SSSS:MMMM");
        F80 {
            se: u16::from_str_radix(se, 16).expect("hex"),
            sig: u64::from_str_radix(sig, 16).expect("hex"),
        }
    }

    /// Correctly rounded results from mpmath at 400 bits (golden_trans.py):
    /// the kernels must reproduce every one of them exactly.
    #[test]
    fn golden_vectors() {
        let mut bad = Vec::new();
        for line in include_str!("golden_trans.txt").lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            let mut fx = Fx::default();
            let a = parse(w[1]);
            let (got, want) = match w[0] {
                "fsin" => (sin(a, ENV, &mut fx).unwrap(), parse(w[2])),
                "fcos" => (cos(a, ENV, &mut fx).unwrap(), parse(w[2])),
                "fptan" => (tan(a, ENV, &mut fx).unwrap(), parse(w[2])),
                "f2xm1" => (f2xm1(a, ENV, &mut fx), parse(w[2])),
                "fyl2x" => (fyl2x(a, parse(w[2]), ENV, &mut fx), parse(w[3])),
                "fyl2xp1" => (fyl2xp1(a, parse(w[2]), ENV, &mut fx), parse(w[3])),
                "fpatan" => (atan2(parse(w[2]), a, ENV, &mut fx), parse(w[3])),
                other => panic!("unknown {other}"),
            };
            if got != want {
                bad.push(format!("{line}: got {got:?}"));
            }
        }
        assert!(bad.is_empty(), "{} wrong:\n{}", bad.len(), bad.join("\n"));
    }
}
