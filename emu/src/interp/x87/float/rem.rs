//! FPREM and FPREM1: exact partial remainders (SDM Vol. 2A FPREM, FPREM1;
//! Vol. 1 8.3.10 "partial remainder").

use super::arith::propagate_nan;
use super::round::round_reg;
use super::{exc, Env, Fx, F80};

/// The outcome of a remainder step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remainder {
    /// The new ST(0).
    pub value: F80,
    /// `Some(q)` with the low quotient bits when the reduction is complete,
    /// `None` when partial (C2 = 1), and the condition codes are left alone
    /// when the result is a NaN or invalid (`valid == false`).
    pub quotient: Option<u64>,
    /// False if the result is a NaN from an invalid or NaN operand.
    pub valid: bool,
}

/// The number of quotient bits one partial step reduces by, N in the SDM's
/// "N is an implementation-dependent number between 32 and 63": N = 32 +
/// (D mod 32), as Intel processors (and Bochs) do.
fn partial_n(d: i32) -> i32 {
    (d & 31) | 32
}

/// ST(0) rem ST(1): truncating quotient (FPREM, `nearest == false`) or
/// round-to-nearest-even quotient (FPREM1).
pub fn remainder(a: F80, b: F80, nearest: bool, env: Env, fx: &mut Fx) -> Remainder {
    let invalid = |fx: &mut Fx| {
        fx.raise(exc::IE);
        Remainder {
            value: F80::INDEFINITE,
            quotient: None,
            valid: false,
        }
    };
    if a.is_unsupported() || b.is_unsupported() {
        return invalid(fx);
    }
    if a.is_nan() || b.is_nan() {
        return Remainder {
            value: propagate_nan(a, b, fx),
            quotient: None,
            valid: false,
        };
    }
    if a.is_inf() || b.is_zero() {
        return invalid(fx);
    }
    let done = |value: F80| Remainder {
        value,
        quotient: Some(0),
        valid: true,
    };
    let env = env.extended();
    // A result equal to the dividend is delivered through the rounding, so
    // a tiny one meets the unmasked underflow response.
    let pass = |a: F80, fx: &mut Fx| {
        let u = a.unpack();
        done(round_reg(u.sign, u.exp, (u.sig as u128) << 64, env, fx))
    };
    if b.is_inf() {
        if a.is_denormal() {
            fx.raise(exc::DE);
        }
        return if a.is_zero() { done(a) } else { pass(a, fx) };
    }
    if a.is_denormal() || b.is_denormal() {
        fx.raise(exc::DE);
    }
    if a.is_zero() {
        return done(a);
    }
    let (x, y) = (a.unpack(), b.unpack());
    let d = x.exp - y.exp;
    if d >= 64 {
        let n = partial_n(d);
        let num = (x.sig as u128) << n;
        let r = num % y.sig as u128;
        let value = if r == 0 {
            F80::ZERO.with_sign(x.sign)
        } else {
            let lz = r.leading_zeros();
            round_reg(x.sign, x.exp - n + 64 - lz as i32, r << lz, env, fx)
        };
        return Remainder {
            value,
            quotient: None,
            valid: true,
        };
    }
    if d < -1 {
        return pass(a, fx);
    }
    // Exact: A = sig_a * 2^(d+1), B = sig_b * 2, both in units of
    // 2^(exp_b - 64).
    let big_a = (x.sig as u128) << (d + 1);
    let big_b = (y.sig as u128) << 1;
    let mut q = big_a / big_b;
    let mut r = big_a % big_b;
    let mut sign = x.sign;
    if nearest {
        let half = big_b >> 1;
        if r > half || (r == half && q & 1 == 1) {
            q += 1;
            r = big_b - r;
            sign = !sign;
        }
    }
    let value = if r == 0 {
        F80::ZERO.with_sign(x.sign)
    } else {
        let lz = r.leading_zeros();
        // r / 2^127 * 2^e == r * 2^(exp_b - 64) with r shifted by lz.
        round_reg(sign, y.exp - 64 + 127 - lz as i32, r << lz, env, fx)
    };
    Remainder {
        value,
        quotient: Some(q as u64),
        valid: true,
    }
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
    fn small_remainders() {
        let mut fx = Fx::default();
        let r = remainder(from_i64(17), from_i64(5), false, ENV, &mut fx);
        assert_eq!(r.value, from_i64(2));
        assert_eq!(r.quotient, Some(3));
        let r = remainder(from_i64(17), from_i64(5), true, ENV, &mut fx);
        assert_eq!(r.value, from_i64(2));
        let r = remainder(from_i64(18), from_i64(5), true, ENV, &mut fx);
        assert_eq!(r.value, from_i64(-2));
        assert_eq!(r.quotient, Some(4));
        let r = remainder(from_i64(-7), from_i64(2), true, ENV, &mut fx);
        assert_eq!(
            r.value,
            from_i64(1),
            "-7 = -4 * 2 + 1: tie to even quotient"
        );
        assert_eq!(fx.flags, 0);
    }

    #[test]
    fn partial_remainder() {
        let mut fx = Fx::default();
        let big = F80::new(false, 0x3fff + 100, 0xc000_0000_0000_0001);
        let r = remainder(big, from_i64(3), false, ENV, &mut fx);
        assert_eq!(r.quotient, None);
        assert!(r.valid);
        assert!(r.value.exp() < big.exp());
    }
}
