//! Conversions between the register format and the memory formats (single,
//! double, word/dword/qword integers, packed BCD), rounding to an integral
//! value, and the exponent operations FSCALE and FXTRACT (SDM Vol. 1 4.2,
//! 4.7, 8.2, 8.3.3-8.3.4; Vol. 2A FLD, FST, FILD, FIST, FISTTP, FBLD,
//! FBSTP, FRNDINT, FSCALE, FXTRACT).

use super::arith::propagate_nan;
use super::round::{self, round_reg, Format, DOUBLE, SINGLE};
use super::{exc, Env, Fx, Rc, F80, J, QUIET};

/// An exact integer.
pub fn from_i64(v: i64) -> F80 {
    from_u64(v < 0, v.unsigned_abs())
}

/// An exact signed magnitude.
pub fn from_u64(sign: bool, mag: u64) -> F80 {
    if mag == 0 {
        return F80::ZERO.with_sign(sign);
    }
    let lz = mag.leading_zeros();
    F80::new(sign, (0x3fff + 63 - lz) as u16, mag << lz)
}

/// Widens a single- or double-precision value exactly (SDM Vol. 1 4.2.2).
/// A denormal source raises #D; an SNaN stays signaling (the caller decides:
/// FLD raises #IA and quiets it, arithmetic propagates it).
fn widen(bits: u64, fmt: Format, fx: &mut Fx) -> F80 {
    let frac_bits = fmt.p - 1;
    let sign = bits >> (frac_bits + ebits(fmt)) & 1 != 0;
    let e = ((bits >> frac_bits) & fmt.emax as u64) as i32;
    let frac = bits & ((1u64 << frac_bits) - 1);
    let sig = frac << (63 - frac_bits);
    if e == fmt.emax {
        return F80::new(sign, 0x7fff, J | sig);
    }
    if e == 0 {
        if frac == 0 {
            return F80::ZERO.with_sign(sign);
        }
        fx.raise(exc::DE);
        let lz = sig.leading_zeros();
        let exp = 1 - fmt.bias + 16383 - lz as i32;
        return F80::new(sign, exp as u16, sig << lz);
    }
    F80::new(sign, (e - fmt.bias + 16383) as u16, J | sig)
}

fn ebits(fmt: Format) -> u32 {
    fmt.emax.count_ones()
}

/// A single-precision operand of an arithmetic instruction.
pub fn from_f32(bits: u32, fx: &mut Fx) -> F80 {
    widen(bits as u64, SINGLE, fx)
}

/// A double-precision operand of an arithmetic instruction.
pub fn from_f64(bits: u64, fx: &mut Fx) -> F80 {
    widen(bits, DOUBLE, fx)
}

/// FLD m32fp/m64fp: an SNaN source raises #IA and loads quiet.
pub fn load(v: F80, fx: &mut Fx) -> F80 {
    if v.is_snan() {
        fx.raise(exc::IE);
        return v.quiet();
    }
    v
}

/// Narrows to single or double precision for FST/FSTP (rounding by RC, never
/// by PC). Returns the bits; the caller must not store them if an unmasked
/// invalid, overflow or underflow exception was raised.
fn narrow(a: F80, fmt: Format, env: Env, fx: &mut Fx) -> u64 {
    let frac_bits = fmt.p - 1;
    let sign_bit = (a.sign() as u64) << (frac_bits + ebits(fmt));
    let inf = sign_bit | ((fmt.emax as u64) << frac_bits);
    let indefinite = (1u64 << (frac_bits + ebits(fmt))) | inf | (1u64 << (frac_bits - 1));
    if a.is_unsupported() {
        fx.raise(exc::IE);
        return indefinite;
    }
    if a.is_nan() {
        if a.is_snan() {
            fx.raise(exc::IE);
        }
        let frac = ((a.sig | QUIET) << 1) >> (64 - frac_bits);
        return inf | frac;
    }
    if a.is_inf() {
        return inf;
    }
    if a.is_zero() {
        return sign_bit;
    }
    // A denormal source does not raise #D on a store (SDM Vol. 2A FST:
    // #IS, #IA, #U, #O, #P only).
    let u = a.unpack();
    let r = round::round(u.sign, u.exp, (u.sig as u128) << 64, fmt, env, false, fx);
    let frac = (r.sig << 1) >> (64 - frac_bits);
    sign_bit | ((r.bexp as u64) << frac_bits) | frac
}

/// FST m32fp.
pub fn to_f32(a: F80, env: Env, fx: &mut Fx) -> u32 {
    narrow(a, SINGLE, env, fx) as u32
}

/// FST m64fp.
pub fn to_f64(a: F80, env: Env, fx: &mut Fx) -> u64 {
    narrow(a, DOUBLE, env, fx)
}

/// Rounds a finite value to an integer by `rc`: (magnitude, inexact, rounded
/// up). Magnitudes of 2^64 and more saturate to `u128` range (the exponent
/// is at most 16383, so callers check the range first via `None`).
pub fn round_to_integer(a: F80, rc: Rc) -> Option<(u128, bool, bool)> {
    if a.is_zero() {
        return Some((0, false, false));
    }
    let u = a.unpack();
    if u.exp >= 63 {
        if u.exp >= 127 {
            return None;
        }
        return Some(((u.sig as u128) << (u.exp - 63), false, false));
    }
    // value = sig * 2^(exp - 63); drop 63 - exp fraction bits.
    let drop = (63 - u.exp) as u32;
    let sig = u.sig as u128;
    let (keep, rem_nz, above, half) = if drop >= 66 {
        (0u128, true, false, false)
    } else {
        let rem = sig & ((1u128 << drop) - 1);
        let h = 1u128 << (drop - 1);
        (sig >> drop, rem != 0, rem > h, rem == h)
    };
    let inc = match rc {
        Rc::Nearest => above || (half && keep & 1 == 1),
        Rc::Down => u.sign && rem_nz,
        Rc::Up => !u.sign && rem_nz,
        Rc::Zero => false,
    };
    Some((keep + inc as u128, rem_nz, inc))
}

/// FIST/FISTP (by RC) and FISTTP (`truncate`) to a `bits`-bit integer.
/// Out-of-range values, NaNs, infinities and unsupported encodings raise #IA
/// and give the integer indefinite (the most negative integer, SDM Vol. 1
/// 4.2.1.2). Precision and C1 are reported only for in-range results.
pub fn to_int(a: F80, bits: u32, truncate: bool, env: Env, fx: &mut Fx) -> u64 {
    let indefinite = 1u64 << (bits - 1);
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    if a.is_unsupported() || a.is_nan() || a.is_inf() {
        fx.raise(exc::IE);
        return indefinite;
    }
    let rc = if truncate { Rc::Zero } else { env.rc };
    let Some((mag, inexact, up)) = round_to_integer(a, rc) else {
        fx.raise(exc::IE);
        return indefinite;
    };
    let limit = if a.sign() {
        1u128 << (bits - 1)
    } else {
        (1u128 << (bits - 1)) - 1
    };
    if mag > limit {
        fx.raise(exc::IE);
        return indefinite;
    }
    if inexact {
        fx.raise(exc::PE);
        fx.up = up;
    }
    let v = if a.sign() {
        (mag as u64).wrapping_neg()
    } else {
        mag as u64
    };
    v & mask
}

/// FRNDINT: rounds to an integral value by RC (SDM Vol. 2A FRNDINT).
pub fn round_int(a: F80, env: Env, fx: &mut Fx) -> F80 {
    if a.is_unsupported() {
        fx.raise(exc::IE);
        return F80::INDEFINITE;
    }
    if a.is_nan() {
        return super::arith::propagate_nan1(a, fx);
    }
    if a.is_inf() || a.is_zero() {
        return a;
    }
    if a.is_denormal() {
        fx.raise(exc::DE);
    }
    let u = a.unpack();
    if u.exp >= 63 {
        return a;
    }
    let (mag, inexact, up) = round_to_integer(a, env.rc).expect("below 2^63");
    if inexact {
        fx.raise(exc::PE);
        fx.up = up;
    }
    if mag == 0 {
        return F80::ZERO.with_sign(a.sign());
    }
    if mag >> 64 != 0 {
        return F80::new(a.sign(), (0x3fff + 64) as u16, J);
    }
    from_u64(a.sign(), mag as u64)
}

/// FBLD: an 18-digit packed BCD integer (SDM Vol. 1 4.7). Digits above 9 are
/// undefined by the architecture; they are taken at face value here.
pub fn from_bcd(b: &[u8; 10]) -> F80 {
    let mut v: u64 = 0;
    for k in (0..9).rev() {
        v = v * 100 + (b[k] >> 4) as u64 * 10 + (b[k] & 0xf) as u64;
    }
    from_u64(b[9] & 0x80 != 0, v)
}

/// The packed BCD integer indefinite (SDM Vol. 1 table 4-x).
pub const BCD_INDEFINITE: [u8; 10] = [0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff];

/// FBSTP: rounds by RC and stores 18 BCD digits; out of range (|x| >= 10^18),
/// NaN, infinity or unsupported raises #IA and gives the BCD indefinite.
pub fn to_bcd(a: F80, env: Env, fx: &mut Fx) -> [u8; 10] {
    if a.is_unsupported() || a.is_nan() || a.is_inf() {
        fx.raise(exc::IE);
        return BCD_INDEFINITE;
    }
    let Some((mag, inexact, up)) = round_to_integer(a, env.rc) else {
        fx.raise(exc::IE);
        return BCD_INDEFINITE;
    };
    if mag >= 1_000_000_000_000_000_000 {
        fx.raise(exc::IE);
        return BCD_INDEFINITE;
    }
    if inexact {
        fx.raise(exc::PE);
        fx.up = up;
    }
    let mut out = [0u8; 10];
    let mut v = mag as u64;
    for byte in out.iter_mut().take(9) {
        let lo = (v % 10) as u8;
        v /= 10;
        let hi = (v % 10) as u8;
        v /= 10;
        *byte = (hi << 4) | lo;
    }
    out[9] = if a.sign() { 0x80 } else { 0 };
    out
}

/// A constant of FLD1/FLDPI/...: the 66-bit internal value rounded to 64
/// bits by RC (SDM Vol. 2A "FLD1/FLDL2T/FLDL2E/FLDPI/FLDLG2/FLDLN2/FLDZ",
/// IA-32 Architecture Compatibility: rounding per RC).
pub fn constant(c: super::consts::Const, rc: Rc) -> F80 {
    let (exp, sig, extra) = c;
    let round_bit = extra & 2 != 0;
    let sticky = extra & 1 != 0;
    let up = match rc {
        Rc::Nearest => round_bit && (sticky || sig & 1 == 1),
        Rc::Up => round_bit || sticky,
        Rc::Down | Rc::Zero => false,
    };
    F80::new(false, exp, sig + up as u64)
}

/// FSCALE: `a * 2^trunc(b)` (SDM Vol. 2A FSCALE and its results table).
pub fn scale(a: F80, b: F80, env: Env, fx: &mut Fx) -> F80 {
    if a.is_unsupported() || b.is_unsupported() {
        fx.raise(exc::IE);
        return F80::INDEFINITE;
    }
    if a.is_nan() || b.is_nan() {
        return propagate_nan(a, b, fx);
    }
    let env = env.extended();
    if a.is_inf() {
        if b.is_inf() && b.sign() {
            fx.raise(exc::IE);
            return F80::INDEFINITE;
        }
        if b.is_denormal() {
            fx.raise(exc::DE);
        }
        return a;
    }
    if b.is_inf() {
        if a.is_zero() {
            if !b.sign() {
                fx.raise(exc::IE);
                return F80::INDEFINITE;
            }
            return a;
        }
        if a.is_denormal() {
            fx.raise(exc::DE);
        }
        return if b.sign() {
            F80::ZERO.with_sign(a.sign())
        } else {
            F80::INF.with_sign(a.sign())
        };
    }
    if a.is_denormal() || b.is_denormal() {
        fx.raise(exc::DE);
    }
    if a.is_zero() {
        return a;
    }
    let ua = a.unpack();
    // trunc(b), clamped: anything beyond the exponent range scales the same.
    let n: i32 = if b.is_zero() {
        0
    } else {
        let ub = b.unpack();
        if ub.exp < 0 {
            0
        } else if ub.exp > 30 {
            if ub.sign {
                -0x1_0000
            } else {
                0x1_0000
            }
        } else {
            let m = (ub.sig >> (63 - ub.exp)) as i32;
            if ub.sign {
                -m
            } else {
                m
            }
        }
    };
    round_reg(ua.sign, ua.exp + n, (ua.sig as u128) << 64, env, fx)
}

/// FXTRACT: (exponent as a value, significand with exponent 0) of `a`
/// (SDM Vol. 2A FXTRACT). Zero raises #Z and gives -infinity and the zero.
pub fn extract(a: F80, fx: &mut Fx) -> (F80, F80) {
    if a.is_unsupported() {
        fx.raise(exc::IE);
        return (F80::INDEFINITE, F80::INDEFINITE);
    }
    if a.is_nan() {
        let q = super::arith::propagate_nan1(a, fx);
        return (q, q);
    }
    if a.is_inf() {
        return (F80::INF, a);
    }
    if a.is_zero() {
        fx.raise(exc::ZE);
        return (F80::INF.neg(), a);
    }
    if a.is_denormal() {
        fx.raise(exc::DE);
    }
    let u = a.unpack();
    let sig = F80::new(u.sign, 0x3fff, u.sig);
    (from_i64(u.exp as i64), sig)
}

#[cfg(test)]
mod tests {
    use super::super::Pc;
    use super::*;

    const ENV: Env = Env {
        rc: Rc::Nearest,
        pc: Pc::Extended,
        masks: exc::ALL,
    };

    #[test]
    fn widen_and_narrow() {
        let mut fx = Fx::default();
        for bits in [
            0x3f80_0000u32,
            0xc049_0fdb,
            0x0000_0001,
            0x7f80_0000,
            0x807f_ffff,
        ] {
            let x = from_f32(bits, &mut fx);
            assert_eq!(to_f32(x, ENV, &mut fx), bits, "{bits:#x}");
        }
        for bits in [
            0x3ff0_0000_0000_0000u64,
            0x0000_0000_0000_0001,
            0xfff0_0000_0000_0000,
        ] {
            let x = from_f64(bits, &mut fx);
            assert_eq!(to_f64(x, ENV, &mut fx), bits, "{bits:#x}");
        }
        assert_eq!(from_f32(0x3f80_0000, &mut fx), F80::ONE);
        let mut fx = Fx::default();
        let snan = from_f32(0x7f80_0001, &mut fx);
        assert!(snan.is_snan());
        assert_eq!(to_f32(load(snan, &mut fx), ENV, &mut fx), 0x7fc0_0001);
        assert_eq!(fx.flags, exc::IE);
    }

    #[test]
    fn integers() {
        let mut fx = Fx::default();
        assert_eq!(to_int(from_i64(-32768), 16, false, ENV, &mut fx), 0x8000);
        assert_eq!(fx.flags, 0);
        assert_eq!(to_int(from_i64(32768), 16, false, ENV, &mut fx), 0x8000);
        assert_eq!(fx.flags, exc::IE);
        let mut fx = Fx::default();
        let two_and_half = F80::new(false, 0x4000, 0xa000_0000_0000_0000);
        assert_eq!(to_int(two_and_half, 32, false, ENV, &mut fx), 2);
        assert_eq!(to_int(two_and_half, 32, true, ENV, &mut fx), 2);
        let up = Env { rc: Rc::Up, ..ENV };
        assert_eq!(
            to_int(two_and_half.neg(), 64, false, up, &mut fx),
            (-2i64) as u64
        );
        assert_eq!(fx.flags, exc::PE);
    }

    #[test]
    fn bcd_round_trip() {
        let mut fx = Fx::default();
        let b = [0x89, 0x67, 0x45, 0x23, 0x01, 0, 0, 0, 0x99, 0x80];
        let v = from_bcd(&b);
        assert_eq!(v, from_i64(-990_000_000_123_456_789));
        assert_eq!(to_bcd(v, ENV, &mut fx), b);
        assert_eq!(
            to_bcd(from_i64(1_000_000_000_000_000_000), ENV, &mut fx),
            BCD_INDEFINITE
        );
    }

    #[test]
    fn constants_round_by_rc() {
        use super::super::consts::PI;
        assert_eq!(constant(PI, Rc::Nearest).sig, 0xc90f_daa2_2168_c235);
        assert_eq!(constant(PI, Rc::Down).sig, 0xc90f_daa2_2168_c234);
        assert_eq!(constant(PI, Rc::Up).sig, 0xc90f_daa2_2168_c235);
    }

    #[test]
    fn scale_and_extract() {
        let mut fx = Fx::default();
        assert_eq!(scale(from_i64(3), from_i64(4), ENV, &mut fx), from_i64(48));
        assert_eq!(scale(from_i64(48), from_i64(-4), ENV, &mut fx), from_i64(3));
        let (e, s) = extract(from_i64(48), &mut fx);
        assert_eq!(e, from_i64(5));
        assert_eq!(s, F80::new(false, 0x3fff, 0xc000_0000_0000_0000));
        assert_eq!(fx.flags, 0);
    }
}
