//! Rounding an exact intermediate to a format (SDM Vol. 1 4.8.4 "Rounding",
//! 4.9.1.4 "Numeric overflow", 4.9.1.5 "Numeric underflow", 10.2.3.3
//! "Flush-to-zero").

use super::{flag, zero, Env, Format, Rounding};

/// Bit position the intermediate significand is normalized to before
/// rounding: far above both formats' precision, so every rounding position
/// has at least two bits below it and the sticky bit never reaches it.
const NORM: i32 = 100;

/// Shifts `sig` right by `n` bits and rounds the result to an integer under
/// `rc` for a number of sign `sign`. Returns the rounded value and whether
/// any nonzero bit was dropped.
#[inline(always)]
pub(super) fn round_shift(sig: u128, n: u32, sign: bool, rc: Rounding) -> (u128, bool) {
    if n == 0 {
        return (sig, false);
    }
    // `sig` is below 2^127, so a shift of 127 already leaves less than half.
    let n = n.min(127);
    let q = sig >> n;
    let rem = sig & ((1u128 << n) - 1);
    if rem == 0 {
        return (q, false);
    }
    let half = 1u128 << (n - 1);
    let up = match rc {
        Rounding::Nearest => rem > half || (rem == half && q & 1 == 1),
        Rounding::Zero => false,
        Rounding::Up => !sign,
        Rounding::Down => sign,
    };
    (q + up as u128, true)
}

/// Shifts right, OR-ing every dropped bit into the result's least
/// significant bit ("jamming"), so later rounding still sees inexactness.
#[inline(always)]
pub(super) fn shr_jam(x: u128, n: u32) -> u128 {
    if n == 0 {
        x
    } else if n >= 128 {
        (x != 0) as u128
    } else {
        (x >> n) | ((x & ((1u128 << n) - 1)) != 0) as u128
    }
}

/// The result of an overflow under `rc` (SDM Vol. 1 table 4-11, "Numeric
/// overflow thresholds"; 4.9.1.4): infinity, or the largest finite number of
/// the sign when the mode rounds toward zero for that sign.
#[inline]
fn overflow_result<F: Format>(sign: bool, rc: Rounding) -> u64 {
    let to_max = match rc {
        Rounding::Nearest => false,
        Rounding::Zero => true,
        Rounding::Up => sign,
        Rounding::Down => !sign,
    };
    let mag = if to_max { F::MAX } else { F::EXP_MASK };
    mag | if sign { F::SIGN } else { 0 }
}

/// Rounds `(-1)^sign × sig × 2^exp` to `F` under `env`. `sig` is an exact
/// value or carries a sticky bit in its least significant bit with at least
/// two bits between it and every rounding position (as [`shr_jam`] leaves
/// it); it must be nonzero and below 2^127.
///
/// Raises OE (PE too when the rounded result is inexact or overflow is
/// masked), UE (when tiny after rounding: masked, only if also inexact;
/// unmasked, always) and PE. With FTZ and underflow masked a tiny result
/// becomes a signed zero with UE and PE. Results that raise an unmasked
/// overflow or underflow are never written by the caller, so their value is
/// unspecified here.
pub fn round_pack<F: Format>(env: &mut Env, sign: bool, mut sig: u128, mut exp: i32) -> u64 {
    debug_assert!(sig != 0 && sig < (1 << 127));
    let msb = 127 - sig.leading_zeros() as i32;
    if msb < NORM {
        sig <<= NORM - msb;
        exp -= NORM - msb;
    } else if msb > NORM {
        sig = shr_jam(sig, (msb - NORM) as u32);
        exp += msb - NORM;
    }
    let p = F::FRAC as i32 + 1;
    // Round to the format's precision with an unbounded exponent.
    let drop = (NORM + 1 - p) as u32;
    let (mut r, inexact) = round_shift(sig, drop, sign, env.rc);
    let mut e = exp + NORM; // exponent of the leading bit
    if r >> p != 0 {
        r >>= 1;
        e += 1;
    }
    if e > F::EMAX {
        env.raise(flag::OE);
        if inexact || env.om {
            env.raise(flag::PE);
        }
        return overflow_result::<F>(sign, env.rc);
    }
    let s = if sign { F::SIGN } else { 0 };
    if e >= F::EMIN {
        if inexact {
            env.raise(flag::PE);
        }
        let biased = (e + F::BIAS) as u64;
        return s | (biased << F::FRAC) | (r as u64 & F::FRAC_MASK);
    }
    // Tiny (after rounding).
    if !env.um {
        env.raise(flag::UE);
        if inexact {
            env.raise(flag::PE);
        }
        return s;
    }
    if env.ftz {
        env.raise(flag::UE | flag::PE);
        return zero::<F>(sign);
    }
    // Denormalize: the least significant bit is worth 2^(EMIN - FRAC).
    let lsb = F::EMIN - F::FRAC as i32;
    let n = (lsb - exp) as u32;
    let (d, inexact) = round_shift(sig, n, sign, env.rc);
    if inexact {
        env.raise(flag::UE | flag::PE);
    }
    // A carry into bit FRAC yields the smallest normal, which the same
    // encoding arithmetic produces.
    s | d as u64
}
