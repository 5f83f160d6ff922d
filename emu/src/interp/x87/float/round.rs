//! Rounding an exact (or sticky) result to a destination format: the x87
//! registers under precision control, or single/double precision for stores
//! (SDM Vol. 1 4.8.4 "Rounding", 4.9.1.4-4.9.1.6 and 8.5.4-8.5.6 for the
//! overflow, underflow and precision responses).

use super::{exc, Env, Fx, Rc, BIAS_ADJUST, F80};

/// A binary interchange format the FPU rounds to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// Exponent bias.
    pub bias: i32,
    /// The all-ones biased exponent (infinities, NaNs).
    pub emax: i32,
    /// Significand bits, integer bit included.
    pub p: u32,
}

/// Double extended precision (64-bit significand).
pub const EXTENDED: Format = Format {
    bias: 16383,
    emax: 0x7fff,
    p: 64,
};
/// Double precision.
pub const DOUBLE: Format = Format {
    bias: 1023,
    emax: 0x7ff,
    p: 53,
};
/// Single precision.
pub const SINGLE: Format = Format {
    bias: 127,
    emax: 0xff,
    p: 24,
};

/// A rounded result: sign, biased exponent (0 for denormals and zero,
/// `emax` for infinity) and the significand left-aligned in 64 bits with the
/// integer bit (if any) in bit 63.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rounded {
    /// Sign.
    pub sign: bool,
    /// Biased exponent.
    pub bexp: i32,
    /// Significand, left-aligned.
    pub sig: u64,
}

impl Rounded {
    /// As an 80-bit value (the exponent must fit 15 bits).
    pub fn to_f80(self) -> F80 {
        F80::new(self.sign, self.bexp as u16, self.sig)
    }
}

/// Drops the low `drop` bits of `sig` (any amount) and rounds the rest by
/// `rc`: (kept value, inexact, incremented).
#[inline]
fn round_off(sig: u128, drop: u32, sign: bool, rc: Rc) -> (u128, bool, bool) {
    let (keep, inexact, above, half) = if drop == 0 {
        (sig, false, false, false)
    } else if drop < 128 {
        let rem = sig & ((1u128 << drop) - 1);
        let h = 1u128 << (drop - 1);
        (sig >> drop, rem != 0, rem > h, rem == h)
    } else if drop == 128 {
        let h = 1u128 << 127;
        (0, sig != 0, sig > h, sig == h)
    } else {
        (0, sig != 0, false, false)
    };
    let inc = match rc {
        Rc::Nearest => above || (half && keep & 1 == 1),
        Rc::Down => sign && inexact,
        Rc::Up => !sign && inexact,
        Rc::Zero => false,
    };
    (keep + inc as u128, inexact, inc)
}

/// True if rounding a masked overflow goes to infinity (otherwise to the
/// largest finite value), SDM Vol. 1 table 4-10 / 4.9.1.4.
pub fn overflow_to_inf(sign: bool, rc: Rc) -> bool {
    match rc {
        Rc::Nearest => true,
        Rc::Down => sign,
        Rc::Up => !sign,
        Rc::Zero => false,
    }
}

/// Rounds `sign * sig / 2^127 * 2^e` (`sig` normalized: bit 127 set; bits
/// below the destination are exact or sticky) to format `fmt` (whose `p` is
/// the precision control's for a register destination).
///
/// `adjust` selects the unmasked overflow/underflow response of a register
/// destination (the exponent biased by 24576, SDM Vol. 1 8.5.4/8.5.5); a
/// memory destination passes `false` and gets the masked result with the
/// flags, and does not store it if the exception is unmasked.
pub fn round(
    sign: bool,
    e: i32,
    sig: u128,
    fmt: Format,
    env: Env,
    adjust: bool,
    fx: &mut Fx,
) -> Rounded {
    debug_assert!(sig >> 127 == 1);
    let p = fmt.p;
    let drop = 128 - p;
    let bexp = e + fmt.bias;
    // Rounding with an unbounded exponent.
    let (k, inexact, inc) = round_off(sig, drop, sign, env.rc);
    let (k, bexp_r) = if k >> p != 0 {
        (k >> 1, bexp + 1)
    } else {
        (k, bexp)
    };
    if bexp_r >= fmt.emax {
        // Overflow (SDM Vol. 1 4.9.1.4).
        if adjust && env.unmasked(exc::OE) {
            if bexp_r - BIAS_ADJUST >= fmt.emax {
                // Beyond the reach of the bias adjustment (only FSCALE gets
                // there): infinity, whatever the rounding mode.
                fx.raise(exc::OE | exc::PE);
                fx.up = true;
                return Rounded {
                    sign,
                    bexp: fmt.emax,
                    sig: 1 << 63,
                };
            }
            fx.raise(exc::OE);
            if inexact {
                fx.raise(exc::PE);
            }
            fx.up = inc;
            return Rounded {
                sign,
                bexp: bexp_r - BIAS_ADJUST,
                sig: (k as u64) << (64 - p),
            };
        }
        fx.raise(exc::OE | exc::PE);
        let inf = overflow_to_inf(sign, env.rc);
        fx.up = inf;
        return if inf {
            Rounded {
                sign,
                bexp: fmt.emax,
                // The explicit integer bit exists in the register format only.
                sig: if fmt.emax == EXTENDED.emax {
                    1 << 63
                } else {
                    0
                },
            }
        } else {
            Rounded {
                sign,
                bexp: fmt.emax - 1,
                sig: u64::MAX << (64 - p),
            }
        };
    }
    if bexp_r >= 1 {
        if inexact {
            fx.raise(exc::PE);
        }
        fx.up = inc;
        return Rounded {
            sign,
            bexp: bexp_r,
            sig: (k as u64) << (64 - p),
        };
    }
    // Tiny after rounding (SDM Vol. 1 4.9.1.5).
    if env.unmasked(exc::UE) {
        fx.raise(exc::UE);
        if adjust && bexp_r + BIAS_ADJUST < 1 {
            // Beyond the reach of the bias adjustment (only FSCALE gets
            // there): zero, whatever the rounding mode.
            fx.raise(exc::PE);
            fx.up = false;
            return Rounded {
                sign,
                bexp: 0,
                sig: 0,
            };
        }
        if adjust {
            if inexact {
                fx.raise(exc::PE);
            }
            fx.up = inc;
            return Rounded {
                sign,
                bexp: bexp_r + BIAS_ADJUST,
                sig: (k as u64) << (64 - p),
            };
        }
    }
    // Masked response: denormalize, then round at the same bit position.
    let shift = (1 - bexp) as u32;
    let (k, inexact, inc) = round_off(sig, drop.saturating_add(shift), sign, env.rc);
    if inexact {
        fx.raise(exc::UE | exc::PE);
    }
    fx.up = inc;
    let normal = k >> (p - 1) != 0;
    Rounded {
        sign,
        bexp: normal as i32,
        sig: (k as u64) << (64 - p),
    }
}

/// Rounds to an x87 register under precision control `env.pc` (the
/// arithmetic instructions and FSQRT).
pub fn round_reg(sign: bool, e: i32, sig: u128, env: Env, fx: &mut Fx) -> F80 {
    let fmt = Format {
        p: env.pc.bits(),
        ..EXTENDED
    };
    round(sign, e, sig, fmt, env, true, fx).to_f80()
}

/// Normalizes a non-zero `sig` (value `sig / 2^127 * 2^e`) and rounds it to a
/// register.
pub fn norm_round_reg(sign: bool, e: i32, sig: u128, env: Env, fx: &mut Fx) -> F80 {
    let lz = sig.leading_zeros();
    round_reg(sign, e - lz as i32, sig << lz, env, fx)
}

#[cfg(test)]
mod tests {
    use super::super::{Pc, J};
    use super::*;

    fn env(rc: Rc, pc: Pc) -> Env {
        Env {
            rc,
            pc,
            masks: exc::ALL,
        }
    }

    #[test]
    fn nearest_even_ties() {
        let mut fx = Fx::default();
        // 1 + 2^-64 exactly: a tie, rounds to even (down).
        let s = (1u128 << 127) | (1u128 << 63);
        let r = round_reg(false, 0, s, env(Rc::Nearest, Pc::Extended), &mut fx);
        assert_eq!(r, F80::ONE);
        assert_eq!(fx.flags, exc::PE);
        assert!(!fx.up);
        // 1 + 2^-63 + 2^-64: a tie, rounds to even (up).
        let s = (1u128 << 127) | (3u128 << 63);
        let mut fx = Fx::default();
        let r = round_reg(false, 0, s, env(Rc::Nearest, Pc::Extended), &mut fx);
        assert_eq!(r, F80::new(false, 0x3fff, J | 2));
        assert!(fx.up);
    }

    #[test]
    fn precision_control() {
        let mut fx = Fx::default();
        let s = u128::MAX;
        let r = round_reg(false, 0, s, env(Rc::Zero, Pc::Single), &mut fx);
        assert_eq!(r, F80::new(false, 0x3fff, 0xffff_ff00_0000_0000));
        let r = round_reg(false, 0, s, env(Rc::Up, Pc::Double), &mut fx);
        assert_eq!(r, F80::new(false, 0x4000, J));
    }

    #[test]
    fn overflow_and_underflow() {
        let mut fx = Fx::default();
        let r = round_reg(true, 16384, 1 << 127, env(Rc::Zero, Pc::Extended), &mut fx);
        assert_eq!(r, F80::new(true, 0x7ffe, u64::MAX));
        assert_eq!(fx.flags, exc::OE | exc::PE);
        let mut fx = Fx::default();
        // 2^-16383 * 1.5: denormal 0x6000..., exact.
        let r = round_reg(
            false,
            -16383,
            3 << 126,
            env(Rc::Nearest, Pc::Extended),
            &mut fx,
        );
        assert_eq!(r, F80::new(false, 0, 0x6000_0000_0000_0000));
        assert_eq!(fx.flags, 0);
        // Unmasked underflow: biased result, flagged even when exact.
        let mut fx = Fx::default();
        let e = Env {
            masks: exc::ALL & !exc::UE,
            ..env(Rc::Nearest, Pc::Extended)
        };
        let r = round_reg(false, -16383, 3 << 126, e, &mut fx);
        assert_eq!(r, F80::new(false, 0x6000, 0xc000_0000_0000_0000));
        assert_eq!(fx.flags, exc::UE);
    }
}
