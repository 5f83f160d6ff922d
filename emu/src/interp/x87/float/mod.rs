//! Double extended-precision floating point as the x87 FPU computes it, in
//! integer arithmetic only, so every host gives the same bits (DESIGN.md
//! principle 1).
//!
//! The format is SDM Vol. 1 4.2.2 / 8.2: sign, 15-bit biased exponent and a
//! 64-bit significand with an explicit integer bit J. The encodings the x87 FPU
//! does not support (unnormals, pseudo-NaNs, pseudo-infinities; SDM Vol. 1
//! 8.2.2, table 8-3) are invalid operands; pseudo-denormals (exponent 0, J = 1)
//! are supported as denormals.
//!
//! Operations follow the IEEE 754 rules as the x87 FPU applies them:
//! precision control (24/53/64-bit significands with the full exponent range,
//! SDM Vol. 1 8.1.5.2), the four rounding modes, tininess detected after
//! rounding (Vol. 1 4.9.1.5), the masked and unmasked responses of table 4-10
//! (unmasked overflow and underflow deliver the result with its exponent
//! biased by 24576, Vol. 1 8.5.4 and 8.5.5), the x87 NaN rules of table 4-7,
//! and C1 reporting whether the significand was rounded up (Vol. 1 8.1.3.3).
//! A ported reference was not used: `rustc_apfloat` has the format but neither
//! precision control, the denormal-operand exception, the C1 round-up bit nor
//! the x87 NaN and unsupported-encoding rules.

pub mod arith;
pub mod big;
pub mod convert;
mod kernels;
#[cfg(test)]
mod proptests;
pub mod rem;
pub mod round;
pub mod trans;

/// Exception flag bits, in the positions of the status word (SDM Vol. 1
/// 8.1.3.1) and of the control word's masks (8.1.5.1).
pub mod exc {
    /// Invalid operation (#I).
    pub const IE: u8 = 0x01;
    /// Denormal operand (#D).
    pub const DE: u8 = 0x02;
    /// Divide by zero (#Z).
    pub const ZE: u8 = 0x04;
    /// Numeric overflow (#O).
    pub const OE: u8 = 0x08;
    /// Numeric underflow (#U).
    pub const UE: u8 = 0x10;
    /// Inexact result / precision (#P).
    pub const PE: u8 = 0x20;
    /// All six.
    pub const ALL: u8 = 0x3f;
}

/// The exponent bias adjustment of the unmasked overflow and underflow
/// responses for a register destination (SDM Vol. 1 8.5.4, 8.5.5: 24576).
pub const BIAS_ADJUST: i32 = 0x6000;

/// Rounding control (FCW.RC, SDM Vol. 1 table 4-8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rc {
    /// Round to nearest, ties to even.
    Nearest,
    /// Round down, toward negative infinity.
    Down,
    /// Round up, toward positive infinity.
    Up,
    /// Round toward zero (truncate).
    Zero,
}

impl Rc {
    /// From the two RC bits.
    pub const fn from_bits(b: u16) -> Self {
        match b & 3 {
            0 => Rc::Nearest,
            1 => Rc::Down,
            2 => Rc::Up,
            _ => Rc::Zero,
        }
    }
}

/// The significand width a result is rounded to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pc {
    /// 24 bits.
    Single,
    /// 53 bits.
    Double,
    /// 64 bits.
    Extended,
}

impl Pc {
    /// From FCW.PC (SDM Vol. 1 table 8-2). The reserved encoding 01B behaves
    /// as 64 bits, as it does on Intel processors (and in Bochs).
    pub const fn from_bits(b: u16) -> Self {
        match b & 3 {
            0 => Pc::Single,
            2 => Pc::Double,
            _ => Pc::Extended,
        }
    }

    /// Significand bits.
    pub const fn bits(self) -> u32 {
        match self {
            Pc::Single => 24,
            Pc::Double => 53,
            Pc::Extended => 64,
        }
    }
}

/// What an operation needs from the control word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Env {
    /// Rounding control.
    pub rc: Rc,
    /// Precision control (only the basic arithmetic and FSQRT honour it).
    pub pc: Pc,
    /// Exception masks: a set bit masks the exception.
    pub masks: u8,
}

impl Env {
    /// From the x87 control word.
    pub const fn from_fcw(fcw: u16) -> Self {
        Self {
            rc: Rc::from_bits(fcw >> 10),
            pc: Pc::from_bits(fcw >> 8),
            masks: (fcw as u8) & exc::ALL,
        }
    }

    /// The same environment rounding to 64 bits.
    pub const fn extended(self) -> Self {
        Self {
            pc: Pc::Extended,
            ..self
        }
    }

    /// True if exception `e` is unmasked.
    pub const fn unmasked(self, e: u8) -> bool {
        self.masks & e == 0
    }
}

/// Exceptions raised by an operation, and whether its result was rounded up
/// in magnitude (reported in C1, SDM Vol. 1 8.1.3.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fx {
    /// Exception flags ([`exc`]).
    pub flags: u8,
    /// The significand was incremented by rounding.
    pub up: bool,
}

impl Fx {
    /// Raises exceptions.
    #[inline]
    pub fn raise(&mut self, f: u8) {
        self.flags |= f;
    }
}

/// An 80-bit double extended-precision value as stored in a register or in
/// memory: bits 0-63 significand, 64-78 exponent, 79 sign.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct F80 {
    /// Significand, integer bit J in bit 63.
    pub sig: u64,
    /// Sign (bit 15) and biased exponent (bits 0-14).
    pub se: u16,
}

impl core::fmt::Debug for F80 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:04x}:{:016x}", self.se, self.sig)
    }
}

/// The class of an 80-bit encoding (SDM Vol. 1 table 8-3 and FXAM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// +0 or -0.
    Zero,
    /// Exponent 0, J = 0, fraction non-zero.
    Denormal,
    /// Exponent 0, J = 1 (a supported operand, treated like a denormal).
    PseudoDenormal,
    /// Exponent 1..7FFEH, J = 1.
    Normal,
    /// Exponent 7FFFH, significand 8000_0000_0000_0000H.
    Infinity,
    /// Quiet NaN: exponent 7FFFH, J = 1, bit 62 = 1.
    QNan,
    /// Signaling NaN: exponent 7FFFH, J = 1, bit 62 = 0, fraction non-zero.
    SNan,
    /// Unnormal, pseudo-NaN or pseudo-infinity: exponent non-zero, J = 0.
    Unsupported,
}

/// Bit 63: the explicit integer bit.
pub const J: u64 = 1 << 63;
/// Bit 62: the quiet bit of a NaN.
pub const QUIET: u64 = 1 << 62;
/// The exponent bias.
pub const BIAS: i32 = 16383;
/// Biased exponent of infinities and NaNs.
pub const EXP_MAX: u16 = 0x7fff;

impl F80 {
    /// +0.
    pub const ZERO: F80 = F80::new(false, 0, 0);
    /// +1.
    pub const ONE: F80 = F80::new(false, 0x3fff, J);
    /// +infinity.
    pub const INF: F80 = F80::new(false, EXP_MAX, J);
    /// The real indefinite QNaN (SDM Vol. 1 table 8-3... 4.8.3.7): negative,
    /// significand C000_0000_0000_0000H.
    pub const INDEFINITE: F80 = F80::new(true, EXP_MAX, J | QUIET);

    /// Builds a value from sign, biased exponent and significand.
    #[inline]
    pub const fn new(sign: bool, exp: u16, sig: u64) -> Self {
        Self {
            sig,
            se: ((sign as u16) << 15) | (exp & 0x7fff),
        }
    }

    /// The sign bit.
    #[inline]
    pub const fn sign(self) -> bool {
        self.se & 0x8000 != 0
    }

    /// The biased exponent.
    #[inline]
    pub const fn exp(self) -> u16 {
        self.se & 0x7fff
    }

    /// The same value with the given sign.
    #[inline]
    pub const fn with_sign(self, sign: bool) -> Self {
        Self {
            sig: self.sig,
            se: (self.se & 0x7fff) | ((sign as u16) << 15),
        }
    }

    /// The value negated.
    #[inline]
    pub const fn neg(self) -> Self {
        Self {
            sig: self.sig,
            se: self.se ^ 0x8000,
        }
    }

    /// The value with the sign cleared.
    #[inline]
    pub const fn abs(self) -> Self {
        Self {
            sig: self.sig,
            se: self.se & 0x7fff,
        }
    }

    /// From the 10-byte memory image.
    pub fn from_bytes(b: &[u8; 10]) -> Self {
        let mut s = [0u8; 8];
        s.copy_from_slice(&b[..8]);
        Self {
            sig: u64::from_le_bytes(s),
            se: u16::from_le_bytes([b[8], b[9]]),
        }
    }

    /// The 10-byte memory image.
    pub fn to_bytes(self) -> [u8; 10] {
        let mut b = [0u8; 10];
        b[..8].copy_from_slice(&self.sig.to_le_bytes());
        b[8..].copy_from_slice(&self.se.to_le_bytes());
        b
    }

    /// Classifies the encoding.
    pub const fn class(self) -> Class {
        let e = self.exp();
        if e == 0 {
            return if self.sig == 0 {
                Class::Zero
            } else if self.sig & J != 0 {
                Class::PseudoDenormal
            } else {
                Class::Denormal
            };
        }
        if self.sig & J == 0 {
            return Class::Unsupported;
        }
        if e == EXP_MAX {
            return if self.sig << 1 == 0 {
                Class::Infinity
            } else if self.sig & QUIET != 0 {
                Class::QNan
            } else {
                Class::SNan
            };
        }
        Class::Normal
    }

    /// True for an unsupported encoding.
    #[inline]
    pub const fn is_unsupported(self) -> bool {
        self.exp() != 0 && self.sig & J == 0
    }

    /// True for a NaN (quiet or signaling, J = 1).
    #[inline]
    pub const fn is_nan(self) -> bool {
        self.exp() == EXP_MAX && self.sig & J != 0 && self.sig << 1 != 0
    }

    /// True for a signaling NaN.
    #[inline]
    pub const fn is_snan(self) -> bool {
        self.is_nan() && self.sig & QUIET == 0
    }

    /// True for an infinity.
    #[inline]
    pub const fn is_inf(self) -> bool {
        self.exp() == EXP_MAX && self.sig == J
    }

    /// True for a zero.
    #[inline]
    pub const fn is_zero(self) -> bool {
        self.exp() == 0 && self.sig == 0
    }

    /// True for a denormal or pseudo-denormal.
    #[inline]
    pub const fn is_denormal(self) -> bool {
        self.exp() == 0 && self.sig != 0
    }

    /// The NaN made quiet.
    #[inline]
    pub const fn quiet(self) -> Self {
        Self {
            sig: self.sig | QUIET,
            se: self.se,
        }
    }

    /// A finite non-zero supported value as sign, unbiased exponent of the
    /// leading bit and normalized significand (bit 63 set).
    #[inline]
    pub(crate) fn unpack(self) -> Unpacked {
        let e = self.exp() as i32;
        if e == 0 {
            // Denormals and pseudo-denormals use the exponent of 1 (SDM Vol. 1
            // 8.2.2: a pseudo-denormal is read as if it were normalized).
            let lz = self.sig.leading_zeros();
            Unpacked {
                sign: self.sign(),
                exp: 1 - BIAS - lz as i32,
                sig: self.sig << lz,
            }
        } else {
            Unpacked {
                sign: self.sign(),
                exp: e - BIAS,
                sig: self.sig,
            }
        }
    }

    /// The tag of a non-empty register holding this value (SDM Vol. 1 8.1.7):
    /// 0 valid, 1 zero, 2 special (NaN, infinity, denormal, unsupported).
    pub const fn tag(self) -> u16 {
        match self.class() {
            Class::Zero => 1,
            Class::Normal => 0,
            _ => 2,
        }
    }
}

/// A finite, non-zero value: `sig / 2^63 * 2^exp`, `sig` normalized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Unpacked {
    pub sign: bool,
    pub exp: i32,
    pub sig: u64,
}

/// The constants FLDPI, FLDL2T, FLDL2E, FLDLG2, FLDLN2 load: the 66-bit
/// significand the FPU holds internally (64 bits and the next two), so each
/// rounding mode can round it (SDM Vol. 1 8.3.8 and the FLD1/FLDL2T/... entry
/// of Vol. 2A: "rounded per RC").
pub mod consts {
    /// (biased exponent, 64-bit truncated significand, next bits as a 2-bit
    /// value in the top of a byte: bit 1 = round bit, bit 0 = sticky).
    pub type Const = (u16, u64, u8);
    /// pi.
    pub const PI: Const = (0x4000, 0xc90f_daa2_2168_c234, 0b11);
    /// log2(10).
    pub const L2T: Const = (0x4000, 0xd49a_784b_cd1b_8afe, 0b01);
    /// log2(e).
    pub const L2E: Const = (0x3fff, 0xb8aa_3b29_5c17_f0bb, 0b11);
    /// log10(2).
    pub const LG2: Const = (0x3ffd, 0x9a20_9a84_fbcf_f798, 0b11);
    /// ln(2).
    pub const LN2: Const = (0x3ffe, 0xb172_17f7_d1cf_79ab, 0b11);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(F80::ZERO.class(), Class::Zero);
        assert_eq!(F80::ONE.class(), Class::Normal);
        assert_eq!(F80::INF.class(), Class::Infinity);
        assert_eq!(F80::INDEFINITE.class(), Class::QNan);
        assert_eq!(F80::new(false, EXP_MAX, J | 1).class(), Class::SNan);
        assert_eq!(F80::new(false, EXP_MAX, 1).class(), Class::Unsupported);
        assert_eq!(F80::new(false, EXP_MAX, 0).class(), Class::Unsupported);
        assert_eq!(F80::new(false, 5, 1).class(), Class::Unsupported);
        assert_eq!(F80::new(true, 0, 1).class(), Class::Denormal);
        assert_eq!(F80::new(true, 0, J).class(), Class::PseudoDenormal);
    }

    #[test]
    fn unpack_denormals() {
        let d = F80::new(false, 0, 1).unpack();
        assert_eq!((d.exp, d.sig), (1 - BIAS - 63, J));
        let p = F80::new(false, 0, J).unpack();
        let n = F80::new(false, 1, J).unpack();
        assert_eq!(p, n, "a pseudo-denormal reads as the smallest normal");
    }

    #[test]
    fn bytes_round_trip() {
        let v = F80::new(true, 0x1234, 0x8765_4321_0fed_cba9);
        assert_eq!(F80::from_bytes(&v.to_bytes()), v);
    }
}
