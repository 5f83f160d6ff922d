//! Wide integer and wide floating-point helpers: a 256-bit unsigned integer
//! for exact square roots and remainders, and [`Bf`], a binary float with a
//! 128-bit significand for the transcendental functions (about 125 correct
//! bits per operation, well beyond the 64 the results are rounded to).

use core::cmp::Ordering;
use core::ops::{Add, Div, Mul, Neg, Shl, Shr, Sub};

macro_rules! binop {
    ($ty:ty, $tr:ident, $m:ident, $imp:ident, $rhs:ty) => {
        impl $tr<$rhs> for $ty {
            type Output = $ty;
            #[inline]
            fn $m(self, o: $rhs) -> $ty {
                self.$imp(o)
            }
        }
    };
}

binop!(U256, Shl, shl, shl_impl, u32);
binop!(U256, Shr, shr, shr_impl, u32);
binop!(U256, Add, add, add_impl, U256);
binop!(U256, Sub, sub, sub_impl, U256);
binop!(Bf, Add, add, add_impl, Bf);
binop!(Bf, Sub, sub, sub_impl, Bf);
binop!(Bf, Mul, mul, mul_impl, Bf);
binop!(Bf, Div, div, div_impl, Bf);

impl Neg for Bf {
    type Output = Bf;
    #[inline]
    fn neg(self) -> Bf {
        self.neg_impl()
    }
}

/// A 256-bit unsigned integer: `hi * 2^128 + lo`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct U256 {
    /// High 128 bits.
    pub hi: u128,
    /// Low 128 bits.
    pub lo: u128,
}

impl PartialOrd for U256 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for U256 {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.hi, self.lo).cmp(&(other.hi, other.lo))
    }
}

impl U256 {
    /// Zero.
    pub const ZERO: U256 = U256 { hi: 0, lo: 0 };

    /// From a 128-bit value.
    pub const fn from_u128(v: u128) -> Self {
        Self { hi: 0, lo: v }
    }

    /// Shift left (bits shifted out are lost).
    fn shl_impl(self, n: u32) -> Self {
        match n {
            0 => self,
            1..=127 => Self {
                hi: (self.hi << n) | (self.lo >> (128 - n)),
                lo: self.lo << n,
            },
            128..=255 => Self {
                hi: self.lo << (n - 128),
                lo: 0,
            },
            _ => Self::ZERO,
        }
    }

    /// Logical shift right.
    fn shr_impl(self, n: u32) -> Self {
        match n {
            0 => self,
            1..=127 => Self {
                hi: self.hi >> n,
                lo: (self.lo >> n) | (self.hi << (128 - n)),
            },
            128..=255 => Self {
                hi: 0,
                lo: self.hi >> (n - 128),
            },
            _ => Self::ZERO,
        }
    }

    /// Wrapping addition.
    fn add_impl(self, o: Self) -> Self {
        let (lo, c) = self.lo.overflowing_add(o.lo);
        Self {
            hi: self.hi.wrapping_add(o.hi).wrapping_add(c as u128),
            lo,
        }
    }

    /// Wrapping subtraction.
    fn sub_impl(self, o: Self) -> Self {
        let (lo, b) = self.lo.overflowing_sub(o.lo);
        Self {
            hi: self.hi.wrapping_sub(o.hi).wrapping_sub(b as u128),
            lo,
        }
    }

    /// True if zero.
    pub fn is_zero(self) -> bool {
        self.hi == 0 && self.lo == 0
    }

    /// Leading zero bits.
    pub fn leading_zeros(self) -> u32 {
        if self.hi != 0 {
            self.hi.leading_zeros()
        } else {
            128 + self.lo.leading_zeros()
        }
    }

    /// The full product of two 128-bit values.
    pub fn mul128(a: u128, b: u128) -> Self {
        let (a1, a0) = (a >> 64, a & u64::MAX as u128);
        let (b1, b0) = (b >> 64, b & u64::MAX as u128);
        let p00 = a0 * b0;
        let p01 = a0 * b1;
        let p10 = a1 * b0;
        let p11 = a1 * b1;
        let mid = (p00 >> 64) + (p01 & u64::MAX as u128) + (p10 & u64::MAX as u128);
        let lo = (p00 & u64::MAX as u128) | (mid << 64);
        let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
        Self { hi, lo }
    }

    /// Floor of the square root (at most 128 bits) and whether it is exact.
    pub fn isqrt(self) -> (u128, bool) {
        // Digit-by-digit (restoring) square root, two radicand bits a step.
        let mut rem = U256::ZERO;
        let mut root: u128 = 0;
        for k in (0..128).rev() {
            let two = self.shr(2 * k).lo & 3;
            rem = rem.shl(2).add(U256::from_u128(two));
            // trial = 4 * root + 1, compared with the remainder.
            let trial = U256::from_u128(root).shl(2).add(U256::from_u128(1));
            root <<= 1;
            if rem >= trial {
                rem = rem.sub(trial);
                root |= 1;
            }
        }
        (root, rem.is_zero())
    }

    /// Divides by a 128-bit value: (quotient, remainder). The quotient must fit
    /// 128 bits (`hi < d`).
    pub fn div_rem(self, d: u128) -> (u128, u128) {
        debug_assert!(self.hi < d);
        let mut r = self.hi;
        let mut q: u128 = 0;
        for k in (0..128).rev() {
            let bit = (self.lo >> k) & 1;
            let carry = r >> 127;
            r = (r << 1) | bit;
            q <<= 1;
            if carry != 0 || r >= d {
                r = r.wrapping_sub(d);
                q |= 1;
            }
        }
        (q, r)
    }
}

/// A binary floating-point number with a 128-bit significand and a wide
/// exponent: `(-1)^neg * m / 2^127 * 2^exp`, `m` normalized (bit 127 set) or
/// zero. Arithmetic truncates; each operation is accurate to a few units of
/// 2^-127 relative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bf {
    /// Sign.
    pub neg: bool,
    /// Exponent of the leading bit.
    pub exp: i32,
    /// Significand.
    pub m: u128,
}

impl Bf {
    /// Zero.
    pub const ZERO: Bf = Bf {
        neg: false,
        exp: 0,
        m: 0,
    };
    /// One.
    pub const ONE: Bf = Bf {
        neg: false,
        exp: 0,
        m: 1 << 127,
    };

    /// Normalizes `m / 2^127 * 2^exp`.
    pub fn new(neg: bool, exp: i32, m: u128) -> Self {
        if m == 0 {
            return Self::ZERO;
        }
        let lz = m.leading_zeros();
        Self {
            neg,
            exp: exp - lz as i32,
            m: m << lz,
        }
    }

    /// A small integer.
    pub fn from_u64(v: u64) -> Self {
        Self::new(false, 127, v as u128)
    }

    /// A finite 80-bit value (any supported encoding).
    pub fn from_f80(v: super::F80) -> Self {
        if v.is_zero() {
            return Self::ZERO.with_neg(v.sign());
        }
        let u = v.unpack();
        Self::new(u.sign, u.exp, (u.sig as u128) << 64)
    }

    /// True for zero.
    pub fn is_zero(self) -> bool {
        self.m == 0
    }

    /// With the given sign.
    pub fn with_neg(self, neg: bool) -> Self {
        Self { neg, ..self }
    }

    /// Negated.
    fn neg_impl(self) -> Self {
        Self {
            neg: !self.neg,
            ..self
        }
    }

    /// Absolute value.
    pub fn abs(self) -> Self {
        self.with_neg(false)
    }

    /// Multiplied by 2^n.
    pub fn scale(self, n: i32) -> Self {
        if self.m == 0 {
            return self;
        }
        Self {
            exp: self.exp + n,
            ..self
        }
    }

    /// Product.
    fn mul_impl(self, o: Self) -> Self {
        if self.m == 0 || o.m == 0 {
            return Self::ZERO;
        }
        let p = U256::mul128(self.m, o.m);
        // p in [2^254, 2^256).
        let (m, e) = if p.hi >> 127 != 0 {
            (p.hi, 1)
        } else {
            (p.shl(1).hi, 0)
        };
        Self {
            neg: self.neg != o.neg,
            exp: self.exp + o.exp + e,
            m,
        }
    }

    /// Quotient.
    fn div_impl(self, o: Self) -> Self {
        debug_assert!(o.m != 0);
        if self.m == 0 {
            return Self::ZERO;
        }
        // (m_a * 2^127) / m_b in (2^126, 2^128).
        let (q, _) = U256 { hi: 0, lo: self.m }.shl(127).div_rem_wide(o.m);
        Self::new(self.neg != o.neg, self.exp - o.exp, q)
    }

    /// Sum.
    fn add_impl(self, o: Self) -> Self {
        if self.m == 0 {
            return o;
        }
        if o.m == 0 {
            return self;
        }
        let (x, y) = if (self.exp, self.m) >= (o.exp, o.m) {
            (self, o)
        } else {
            (o, self)
        };
        let d = (x.exp - y.exp) as u32;
        // Two guard bits below the 128.
        let xm = U256 { hi: x.m, lo: 0 }.shr(2);
        let ym = U256 { hi: y.m, lo: 0 }.shr(2 + d.min(300));
        let s = if x.neg == y.neg {
            xm.add(ym)
        } else {
            xm.sub(ym)
        };
        if s.is_zero() {
            return Self::ZERO;
        }
        let lz = s.leading_zeros();
        let n = s.shl(lz);
        Self {
            neg: x.neg,
            exp: x.exp + 2 - lz as i32,
            m: n.hi,
        }
    }

    /// Difference.
    fn sub_impl(self, o: Self) -> Self {
        self.add_impl(o.neg_impl())
    }

    /// Square root of a non-negative value.
    pub fn sqrt(self) -> Self {
        if self.m == 0 {
            return Self::ZERO;
        }
        // value = m * 2^(exp - 127); radicand m * 2^s with exp - 127 - s even.
        let e = self.exp - 127;
        let s = if e.rem_euclid(2) == 0 { 128 } else { 127 };
        let (r, _) = U256::from_u128(self.m).shl(s).isqrt();
        Self::new(false, (e - s as i32) / 2 + 127, r)
    }

    /// Compares magnitudes.
    pub fn cmp_abs(self, o: Self) -> Ordering {
        match (self.m == 0, o.m == 0) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            _ => (self.exp, self.m).cmp(&(o.exp, o.m)),
        }
    }

    /// The integer part of a non-negative value below 2^127, truncated.
    pub fn trunc_u128(self) -> u128 {
        if self.m == 0 || self.exp < 0 {
            return 0;
        }
        self.m >> (127 - self.exp.min(127) as u32)
    }
}

impl U256 {
    /// Divides by a normalized 128-bit divisor where the quotient fits 128
    /// bits: (quotient, remainder).
    pub fn div_rem_wide(self, d: u128) -> (u128, u128) {
        self.div_rem(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul128_matches_u128_for_small() {
        let p = U256::mul128(u64::MAX as u128, u64::MAX as u128);
        assert_eq!(p.hi, 0);
        assert_eq!(p.lo, (u64::MAX as u128) * (u64::MAX as u128));
        let p = U256::mul128(u128::MAX, u128::MAX);
        assert_eq!(p.hi, u128::MAX - 1);
        assert_eq!(p.lo, 1);
    }

    #[test]
    fn isqrt_exact_and_floor() {
        let (r, e) = U256::from_u128(144).isqrt();
        assert_eq!((r, e), (12, true));
        let (r, e) = U256::from_u128(143).isqrt();
        assert_eq!((r, e), (11, false));
        let big = U256::mul128(u128::MAX, u128::MAX);
        assert_eq!(big.isqrt(), (u128::MAX, true));
        assert_eq!(big.sub(U256::from_u128(1)).isqrt(), (u128::MAX - 1, false));
    }

    #[test]
    fn div_rem_wide() {
        let n = U256 { hi: 1, lo: 0 };
        let (q, r) = n.div_rem(3);
        assert_eq!(q, u128::MAX / 3);
        assert_eq!(r, 1);
    }

    #[test]
    fn bf_arith() {
        let three = Bf::from_u64(3);
        let third = Bf::ONE.div(three);
        let one = third.mul(three);
        // Truncating arithmetic: within 2 units of 2^-127.
        let err = Bf::ONE.sub(one);
        assert!(err.is_zero() || err.exp <= -126, "{err:?}");
        let two = Bf::from_u64(2);
        let r = two.sqrt();
        let back = r.mul(r);
        let err = two.sub(back);
        assert!(err.is_zero() || err.exp <= -124, "{err:?}");
        assert_eq!(Bf::from_u64(7).sub(Bf::from_u64(7)), Bf::ZERO);
        assert_eq!(Bf::from_u64(7).trunc_u128(), 7);
    }
}
