//! The basic arithmetic: add, subtract, multiply, divide, square root and
//! compare, each exactly rounded (SDM Vol. 1 8.3.5 and the Vol. 2 entries
//! FADD, FSUB, FMUL, FDIV, FSQRT, FCOM; special operands per their
//! "FADD/FADDP/FIADD Results" etc. tables).

use super::big::U256;
use super::round::norm_round_reg;
use super::{exc, Class, Env, Fx, Rc, F80};
use core::cmp::Ordering;
use core::ops::Shl;

/// The NaN result of an operation with NaN operands (SDM Vol. 1 table 4-7,
/// x87 column): an SNaN raises #IA and is made quiet; of a QNaN and an SNaN
/// the QNaN is delivered; of two NaNs of the same kind, the one with the
/// larger significand (on a tie, the one with the smaller sign-and-exponent
/// word, i.e. the positive one).
pub fn propagate_nan(a: F80, b: F80, fx: &mut Fx) -> F80 {
    let (an, bn) = (a.is_nan(), b.is_nan());
    if a.is_snan() || b.is_snan() {
        fx.raise(exc::IE);
    }
    match (an, bn) {
        (true, false) => a.quiet(),
        (false, true) => b.quiet(),
        _ => {
            let (aq, bq) = (!a.is_snan(), !b.is_snan());
            if aq != bq {
                return if aq { a } else { b.quiet() }.quiet();
            }
            let (a, b) = (a.quiet(), b.quiet());
            match a.sig.cmp(&b.sig) {
                Ordering::Less => b,
                Ordering::Greater => a,
                Ordering::Equal => {
                    if a.se < b.se {
                        a
                    } else {
                        b
                    }
                }
            }
        }
    }
}

/// The NaN result of a one-operand operation on a NaN.
pub fn propagate_nan1(a: F80, fx: &mut Fx) -> F80 {
    if a.is_snan() {
        fx.raise(exc::IE);
    }
    a.quiet()
}

/// Checks two operands for unsupported encodings and NaNs: returns the result
/// if one decides it.
#[inline]
pub fn check_nan2(a: F80, b: F80, fx: &mut Fx) -> Option<F80> {
    if a.is_unsupported() || b.is_unsupported() {
        fx.raise(exc::IE);
        return Some(F80::INDEFINITE);
    }
    if a.is_nan() || b.is_nan() {
        return Some(propagate_nan(a, b, fx));
    }
    None
}

/// Raises #D if either operand is a denormal.
#[inline]
fn denormal_check(a: F80, b: F80, fx: &mut Fx) {
    if a.is_denormal() || b.is_denormal() {
        fx.raise(exc::DE);
    }
}

/// The sign of an exact zero sum of operands of opposite signs (SDM Vol. 1
/// 4.8.3.x table "FADD results": +0 except when rounding down).
#[inline]
fn zero_sum_sign(rc: Rc) -> bool {
    rc == Rc::Down
}

/// a + b.
pub fn add(a: F80, b: F80, env: Env, fx: &mut Fx) -> F80 {
    if let Some(r) = check_nan2(a, b, fx) {
        return r;
    }
    let (ai, bi) = (a.is_inf(), b.is_inf());
    if ai || bi {
        if ai && bi && a.sign() != b.sign() {
            fx.raise(exc::IE);
            return F80::INDEFINITE;
        }
        denormal_check(a, b, fx);
        return if ai { a } else { b };
    }
    denormal_check(a, b, fx);
    let (az, bz) = (a.is_zero(), b.is_zero());
    if az && bz {
        let sign = if a.sign() == b.sign() {
            a.sign()
        } else {
            zero_sum_sign(env.rc)
        };
        return F80::ZERO.with_sign(sign);
    }
    if az || bz {
        // x + 0 = x, rounded to the precision control.
        let x = if az { b } else { a }.unpack();
        return norm_round_reg(x.sign, x.exp, (x.sig as u128) << 64, env, fx);
    }
    let (mut x, mut y) = (a.unpack(), b.unpack());
    if (x.exp, x.sig) < (y.exp, y.sig) {
        core::mem::swap(&mut x, &mut y);
    }
    // |x| >= |y|. Significands at bit 125, two bits of headroom.
    let mx = (x.sig as u128) << 62;
    let d = (x.exp - y.exp) as u32;
    let my0 = (y.sig as u128) << 62;
    let my = if d >= 127 {
        (my0 != 0) as u128
    } else if d > 0 {
        (my0 >> d) | ((my0 & ((1u128 << d) - 1) != 0) as u128)
    } else {
        my0
    };
    let sum = if x.sign == y.sign { mx + my } else { mx - my };
    if sum == 0 {
        return F80::ZERO.with_sign(zero_sum_sign(env.rc));
    }
    norm_round_reg(x.sign, x.exp + 2, sum, env, fx)
}

/// a - b.
pub fn sub(a: F80, b: F80, env: Env, fx: &mut Fx) -> F80 {
    if let Some(r) = check_nan2(a, b, fx) {
        return r;
    }
    add(a, b.neg(), env, fx)
}

/// a * b.
pub fn mul(a: F80, b: F80, env: Env, fx: &mut Fx) -> F80 {
    if let Some(r) = check_nan2(a, b, fx) {
        return r;
    }
    let sign = a.sign() != b.sign();
    let (ai, bi, az, bz) = (a.is_inf(), b.is_inf(), a.is_zero(), b.is_zero());
    if ai || bi {
        if az || bz {
            fx.raise(exc::IE);
            return F80::INDEFINITE;
        }
        denormal_check(a, b, fx);
        return F80::INF.with_sign(sign);
    }
    denormal_check(a, b, fx);
    if az || bz {
        return F80::ZERO.with_sign(sign);
    }
    let (x, y) = (a.unpack(), b.unpack());
    let p = (x.sig as u128) * (y.sig as u128);
    norm_round_reg(sign, x.exp + y.exp + 1, p, env, fx)
}

/// a / b.
pub fn div(a: F80, b: F80, env: Env, fx: &mut Fx) -> F80 {
    if let Some(r) = check_nan2(a, b, fx) {
        return r;
    }
    let sign = a.sign() != b.sign();
    let (ai, bi, az, bz) = (a.is_inf(), b.is_inf(), a.is_zero(), b.is_zero());
    if (ai && bi) || (az && bz) {
        fx.raise(exc::IE);
        return F80::INDEFINITE;
    }
    if ai {
        denormal_check(a, b, fx);
        return F80::INF.with_sign(sign);
    }
    if bi {
        denormal_check(a, b, fx);
        return F80::ZERO.with_sign(sign);
    }
    if bz {
        denormal_check(a, b, fx);
        fx.raise(exc::ZE);
        return F80::INF.with_sign(sign);
    }
    denormal_check(a, b, fx);
    if az {
        return F80::ZERO.with_sign(sign);
    }
    let (x, y) = (a.unpack(), b.unpack());
    let (q, e) = div_sig(x.sig, y.sig);
    norm_round_reg(sign, x.exp - y.exp + e, q, env, fx)
}

/// The quotient of two normalized significands as a 128-bit value with its
/// leading bit at 127, a sticky bit in bit 0, and the exponent offset: the
/// quotient is `q / 2^127 * 2^e`.
pub fn div_sig(a: u64, b: u64) -> (u128, i32) {
    let (num, e) = if a >= b {
        ((a as u128) << 63, 0)
    } else {
        ((a as u128) << 64, -1)
    };
    let b = b as u128;
    let q1 = num / b;
    let r1 = num % b;
    let q2 = (r1 << 64) / b;
    let r2 = (r1 << 64) % b;
    ((q1 << 64) | q2 | (r2 != 0) as u128, e)
}

/// sqrt(a).
pub fn sqrt(a: F80, env: Env, fx: &mut Fx) -> F80 {
    match a.class() {
        Class::Unsupported => {
            fx.raise(exc::IE);
            F80::INDEFINITE
        }
        Class::QNan | Class::SNan => propagate_nan1(a, fx),
        Class::Zero => a,
        Class::Infinity if !a.sign() => a,
        _ if a.sign() => {
            fx.raise(exc::IE);
            F80::INDEFINITE
        }
        Class::Denormal | Class::PseudoDenormal | Class::Normal => {
            if a.is_denormal() {
                fx.raise(exc::DE);
            }
            let x = a.unpack();
            let (r, sticky, e) = sqrt_sig(x.sig, x.exp);
            norm_round_reg(false, e, r | sticky as u128, env, fx)
        }
        Class::Infinity => unreachable!("negative infinity handled above"),
    }
}

/// The square root of `sig / 2^63 * 2^exp`: (root with its leading bit at
/// 127, inexact, exponent), value `root / 2^127 * 2^e`.
pub fn sqrt_sig(sig: u64, exp: i32) -> (u128, bool, i32) {
    // value = sig * 2^(exp - 63); radicand sig * 2^s with exp - 63 - s even.
    let e = exp - 63;
    let s = if e.rem_euclid(2) == 0 { 192 } else { 191 };
    let n = U256::from_u128(sig as u128).shl(s);
    let (r, exact) = n.isqrt();
    let scale = (e - s as i32) / 2;
    (r, !exact, scale + 127)
}

/// The result of comparing two values (SDM Vol. 2A FCOM table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// a > b.
    Greater,
    /// a < b.
    Less,
    /// a = b.
    Equal,
    /// At least one is a NaN or unsupported.
    Unordered,
}

/// Compares `a` with `b`. `quiet` (FUCOM, FUCOMI) raises #IA only for SNaNs
/// and unsupported encodings; otherwise (FCOM, FCOMI, FTST, FICOM) any NaN
/// raises it.
pub fn compare(a: F80, b: F80, quiet: bool, fx: &mut Fx) -> Relation {
    if a.is_unsupported() || b.is_unsupported() {
        fx.raise(exc::IE);
        return Relation::Unordered;
    }
    if a.is_nan() || b.is_nan() {
        if !quiet || a.is_snan() || b.is_snan() {
            fx.raise(exc::IE);
        }
        return Relation::Unordered;
    }
    denormal_check(a, b, fx);
    Relation::from(compare_ordered(a, b))
}

impl From<Ordering> for Relation {
    fn from(o: Ordering) -> Self {
        match o {
            Ordering::Less => Relation::Less,
            Ordering::Equal => Relation::Equal,
            Ordering::Greater => Relation::Greater,
        }
    }
}

/// Total order of two supported non-NaN values (zeros equal).
pub fn compare_ordered(a: F80, b: F80) -> Ordering {
    let key = |v: F80| -> (i8, i32, u64) {
        if v.is_zero() {
            return (0, 0, 0);
        }
        let s = if v.sign() { -1 } else { 1 };
        if v.is_inf() {
            return (s * 2, 0, 0);
        }
        let u = v.unpack();
        (s, u.exp, u.sig)
    };
    let (ka, kb) = (key(a), key(b));
    if ka.0 != kb.0 {
        return ka.0.cmp(&kb.0);
    }
    let mag = (ka.1, ka.2).cmp(&(kb.1, kb.2));
    if ka.0 < 0 {
        mag.reverse()
    } else {
        mag
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Pc, J};
    use super::*;

    const ENV: Env = Env {
        rc: Rc::Nearest,
        pc: Pc::Extended,
        masks: exc::ALL,
    };

    fn f(x: i64) -> F80 {
        super::super::convert::from_i64(x)
    }

    #[test]
    fn small_integers() {
        let mut fx = Fx::default();
        assert_eq!(add(f(2), f(3), ENV, &mut fx), f(5));
        assert_eq!(sub(f(2), f(3), ENV, &mut fx), f(-1));
        assert_eq!(mul(f(-7), f(6), ENV, &mut fx), f(-42));
        assert_eq!(div(f(42), f(-6), ENV, &mut fx), f(-7));
        assert_eq!(sqrt(f(144), ENV, &mut fx), f(12));
        assert_eq!(fx.flags, 0);
        assert_eq!(sub(f(5), f(5), ENV, &mut fx), F80::ZERO);
        let down = Env {
            rc: Rc::Down,
            ..ENV
        };
        assert_eq!(sub(f(5), f(5), down, &mut fx), F80::ZERO.neg());
    }

    #[test]
    fn one_third() {
        let mut fx = Fx::default();
        let r = div(f(1), f(3), ENV, &mut fx);
        assert_eq!(r, F80::new(false, 0x3ffd, 0xaaaa_aaaa_aaaa_aaab));
        assert_eq!(fx.flags, exc::PE);
        assert!(fx.up);
    }

    #[test]
    fn sqrt_two() {
        let mut fx = Fx::default();
        let r = sqrt(f(2), ENV, &mut fx);
        assert_eq!(r, F80::new(false, 0x3fff, 0xb504_f333_f9de_6484));
        assert!(!fx.up);
    }

    #[test]
    fn nan_rules() {
        let mut fx = Fx::default();
        let q1 = F80::new(false, 0x7fff, J | (1 << 62) | 1);
        let q2 = F80::new(true, 0x7fff, J | (1 << 62) | 2);
        let s3 = F80::new(false, 0x7fff, J | 3);
        assert_eq!(add(q1, q2, ENV, &mut fx), q2);
        assert_eq!(fx.flags, 0);
        assert_eq!(add(s3, q1, ENV, &mut fx), q1);
        assert_eq!(fx.flags, exc::IE);
        assert_eq!(mul(s3, f(1), ENV, &mut fx), s3.quiet());
    }

    #[test]
    fn ordering() {
        assert_eq!(compare_ordered(f(-2), f(-3)), Ordering::Greater);
        assert_eq!(compare_ordered(F80::ZERO.neg(), F80::ZERO), Ordering::Equal);
        assert_eq!(compare_ordered(F80::INF.neg(), f(-3)), Ordering::Less);
        let den = F80::new(false, 0, 1);
        assert_eq!(compare_ordered(den, F80::ZERO), Ordering::Greater);
        let pseudo = F80::new(false, 0, J);
        let min = F80::new(false, 1, J);
        assert_eq!(compare_ordered(pseudo, min), Ordering::Equal);
    }
}
