//! The SIMD floating-point core: IEEE 754 binary32/binary64 arithmetic with the
//! x86 rules of MXCSR (SDM Vol. 1 4.8, 4.9, 10.2.3 and 11.5).
//!
//! Everything here is integer arithmetic on the encodings, so results and
//! flags are bit-identical on every host. The x86 specifics:
//!
//! - rounding control (RC), flush-to-zero (FTZ, only while underflow is
//!   masked) and denormals-are-zero (DAZ: denormal sources read as signed zeros
//!   and raise no DE) (Vol. 1 10.2.3.3, 10.2.3.4);
//! - tininess is detected after rounding; a masked underflow is reported only
//!   when the result is also inexact, an unmasked one whenever the result is
//!   tiny (Vol. 1 4.9.1.5 "Numeric underflow exception (#U)");
//! - NaN propagation takes the first source operand's NaN when there is one,
//!   quieted, else the second's; invalid operations give the default "QNaN
//!   floating-point indefinite" (Vol. 1 4.8.3.5 table 4-7 "Rules for handling
//!   NaNs", 4.8.3.7 "QNaN floating-point indefinite");
//! - a denormal operand raises DE unless a NaN, an invalid operation or a
//!   division by zero takes precedence (Vol. 1 4.9.2 "Floating-point exception
//!   priority").

mod arith;
mod cmp;
mod cvt;
mod round;

pub mod approx;

pub use arith::{add, div, mul, sqrt, sub};
pub use cmp::{compare, max, min, Relation};
pub use cvt::{f32_to_f64, f64_to_f32, from_int, round_to_integral, to_int};
pub use round::round_pack;

/// MXCSR exception flag bits (SDM Vol. 1 10.2.3, figure 10-3).
pub mod flag {
    /// Invalid operation.
    pub const IE: u32 = 1 << 0;
    /// Denormal operand.
    pub const DE: u32 = 1 << 1;
    /// Divide-by-zero.
    pub const ZE: u32 = 1 << 2;
    /// Overflow.
    pub const OE: u32 = 1 << 3;
    /// Underflow.
    pub const UE: u32 = 1 << 4;
    /// Precision (inexact result).
    pub const PE: u32 = 1 << 5;
    /// The pre-computation exceptions (SDM Vol. 1 11.5.2).
    pub const PRE: u32 = IE | DE | ZE;
    /// All six flags.
    pub const ALL: u32 = 0x3f;
}

/// MXCSR control bits (SDM Vol. 1 10.2.3).
pub mod mxcsr {
    /// Denormals are zeros.
    pub const DAZ: u32 = 1 << 6;
    /// The six exception masks, bits 7-12 (IM DM ZM OM UM PM).
    pub const MASK_SHIFT: u32 = 7;
    /// Rounding control, bits 13-14.
    pub const RC_SHIFT: u32 = 13;
    /// Flush to zero.
    pub const FTZ: u32 = 1 << 15;
    /// The bits LDMXCSR may set: MXCSR_MASK with DAZ supported (SDM Vol. 1
    /// 11.6.6 "Guidelines for writing to the MXCSR register"), the one value
    /// FXSAVE also stores and FXRSTOR checks.
    pub const WRITABLE: u32 = crate::interp::x87::fxsave::MXCSR_MASK;
    /// The value after reset and FNINIT-independent initialization.
    pub const RESET: u32 = 0x1f80;
}

/// A rounding mode (SDM Vol. 1 4.8.4, table 4-8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// Round to nearest, ties to even.
    Nearest,
    /// Round down, toward minus infinity.
    Down,
    /// Round up, toward plus infinity.
    Up,
    /// Round toward zero (truncate).
    Zero,
}

impl Rounding {
    /// The mode a 2-bit RC field encodes.
    #[inline]
    pub const fn from_rc(rc: u32) -> Self {
        match rc & 3 {
            0 => Rounding::Nearest,
            1 => Rounding::Down,
            2 => Rounding::Up,
            _ => Rounding::Zero,
        }
    }
}

/// The MXCSR controls one instruction runs under, and the flags it raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Env {
    /// Rounding.
    pub rc: Rounding,
    /// Denormal sources read as zeros.
    pub daz: bool,
    /// Tiny results flush to zero (while underflow is masked).
    pub ftz: bool,
    /// Underflow is masked.
    pub um: bool,
    /// Overflow is masked.
    pub om: bool,
    /// Flags raised so far by the current stage (MXCSR bit positions).
    pub flags: u32,
    /// Flags of the stages already completed, for instructions that run in
    /// dependent stages (DPPS, DPPD).
    pub done: u32,
    /// Host arithmetic may stand in for the soft core on normal operands
    /// (set by the instruction layer when MXCSR allows it).
    pub fast: bool,
}

impl Env {
    /// The environment an MXCSR value sets up, with no flags raised.
    #[inline]
    pub const fn new(mxcsr: u32) -> Self {
        Self {
            rc: Rounding::from_rc(mxcsr >> mxcsr::RC_SHIFT),
            daz: mxcsr & mxcsr::DAZ != 0,
            ftz: mxcsr & mxcsr::FTZ != 0,
            um: mxcsr & (flag::UE << mxcsr::MASK_SHIFT) != 0,
            om: mxcsr & (flag::OE << mxcsr::MASK_SHIFT) != 0,
            flags: 0,
            done: 0,
            fast: false,
        }
    }

    /// Raises flags.
    #[inline(always)]
    pub fn raise(&mut self, f: u32) {
        self.flags |= f;
    }
}

/// An IEEE binary interchange format (SDM Vol. 1 4.2.2, table 4-3).
pub trait Format: Copy {
    /// Total width in bits.
    const WIDTH: u32;
    /// Stored fraction bits (precision minus one).
    const FRAC: u32;
    /// Exponent bias.
    const BIAS: i32;
    /// The sign bit.
    const SIGN: u64 = 1 << (Self::WIDTH - 1);
    /// The exponent field mask.
    const EXP_MASK: u64 = (Self::SIGN - 1) & !Self::FRAC_MASK;
    /// The fraction field mask.
    const FRAC_MASK: u64 = (1 << Self::FRAC) - 1;
    /// The quiet bit of a NaN (the fraction's top bit).
    const QUIET: u64 = 1 << (Self::FRAC - 1);
    /// The default NaN, "QNaN floating-point indefinite" (SDM Vol. 1 table 4-3).
    const INDEFINITE: u64 = Self::SIGN | Self::EXP_MASK | Self::QUIET;
    /// Largest finite magnitude.
    const MAX: u64 = Self::EXP_MASK - 1;
    /// Exponent of the smallest normal number.
    const EMIN: i32 = 1 - Self::BIAS;
    /// Exponent of the largest finite number.
    const EMAX: i32 = Self::BIAS;
}

/// binary32, "single precision".
#[derive(Clone, Copy, Debug)]
pub enum F32 {}
/// binary64, "double precision".
#[derive(Clone, Copy, Debug)]
pub enum F64 {}

impl Format for F32 {
    const WIDTH: u32 = 32;
    const FRAC: u32 = 23;
    const BIAS: i32 = 127;
}

impl Format for F64 {
    const WIDTH: u32 = 64;
    const FRAC: u32 = 52;
    const BIAS: i32 = 1023;
}

/// The class of an encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// +0 or -0.
    Zero,
    /// A denormal (subnormal) number.
    Denormal,
    /// A normal number.
    Normal,
    /// An infinity.
    Inf,
    /// A quiet NaN.
    QNan,
    /// A signaling NaN.
    SNan,
}

/// Classifies an encoding.
#[inline(always)]
pub fn class<F: Format>(x: u64) -> Class {
    let e = x & F::EXP_MASK;
    let f = x & F::FRAC_MASK;
    if e == 0 {
        if f == 0 {
            Class::Zero
        } else {
            Class::Denormal
        }
    } else if e == F::EXP_MASK {
        if f == 0 {
            Class::Inf
        } else if f & F::QUIET != 0 {
            Class::QNan
        } else {
            Class::SNan
        }
    } else {
        Class::Normal
    }
}

/// True for any NaN.
#[inline(always)]
pub fn is_nan<F: Format>(x: u64) -> bool {
    x & F::EXP_MASK == F::EXP_MASK && x & F::FRAC_MASK != 0
}

/// True for a signaling NaN.
#[inline(always)]
pub fn is_snan<F: Format>(x: u64) -> bool {
    is_nan::<F>(x) && x & F::QUIET == 0
}

/// True for a denormal.
#[inline(always)]
pub fn is_denormal<F: Format>(x: u64) -> bool {
    x & F::EXP_MASK == 0 && x & F::FRAC_MASK != 0
}

/// True for an infinity.
#[inline(always)]
pub fn is_inf<F: Format>(x: u64) -> bool {
    x & !F::SIGN == F::EXP_MASK
}

/// True for +0 or -0.
#[inline(always)]
pub fn is_zero<F: Format>(x: u64) -> bool {
    x & !F::SIGN == 0
}

/// The sign bit.
#[inline(always)]
pub fn sign<F: Format>(x: u64) -> bool {
    x & F::SIGN != 0
}

/// Applies DAZ to a source operand: a denormal becomes a zero of its sign.
#[inline(always)]
pub fn daz<F: Format>(env: &Env, x: u64) -> u64 {
    if env.daz && is_denormal::<F>(x) {
        x & F::SIGN
    } else {
        x
    }
}

/// The quiet form of a NaN.
#[inline(always)]
pub fn quiet<F: Format>(x: u64) -> u64 {
    x | F::QUIET
}

/// NaN propagation for two sources of which at least one is a NaN: IE for a
/// signaling NaN; the first source's NaN if it is one, else the second's,
/// quieted (SDM Vol. 1 table 4-7, "SSE/SSE2/SSE3 ... instructions").
#[inline]
pub fn propagate_nan<F: Format>(env: &mut Env, a: u64, b: u64) -> u64 {
    if is_snan::<F>(a) || is_snan::<F>(b) {
        env.raise(flag::IE);
    }
    if is_nan::<F>(a) {
        quiet::<F>(a)
    } else {
        quiet::<F>(b)
    }
}

/// A finite nonzero number as `(-1)^sign × sig × 2^exp` with `sig` normalized
/// so its leading one is at bit `F::FRAC`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unpacked {
    /// Sign.
    pub sign: bool,
    /// Exponent of the significand's least significant bit.
    pub exp: i32,
    /// Significand, leading one at bit `F::FRAC`.
    pub sig: u64,
}

/// Unpacks a finite nonzero encoding (normal or denormal).
#[inline(always)]
pub fn unpack<F: Format>(x: u64) -> Unpacked {
    let sign = sign::<F>(x);
    let e = ((x & F::EXP_MASK) >> F::FRAC) as i32;
    let f = x & F::FRAC_MASK;
    if e == 0 {
        // Denormal: normalize.
        let shift = f.leading_zeros() as i32 - (63 - F::FRAC as i32);
        Unpacked {
            sign,
            exp: F::EMIN - F::FRAC as i32 - shift,
            sig: f << shift,
        }
    } else {
        Unpacked {
            sign,
            exp: e - F::BIAS - F::FRAC as i32,
            sig: f | (1 << F::FRAC),
        }
    }
}

/// Packs a signed infinity.
#[inline(always)]
pub fn inf<F: Format>(sign: bool) -> u64 {
    if sign {
        F::SIGN | F::EXP_MASK
    } else {
        F::EXP_MASK
    }
}

/// Packs a signed zero.
#[inline(always)]
pub fn zero<F: Format>(sign: bool) -> u64 {
    if sign {
        F::SIGN
    } else {
        0
    }
}

#[cfg(test)]
mod tests;
