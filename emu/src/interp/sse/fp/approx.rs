//! RCPPS/RCPSS and RSQRTPS/RSQRTSS: the approximate reciprocal and
//! reciprocal square root (SDM Vol. 2 "RCPPS", "RSQRTPS").
//!
//! The SDM bounds only the relative error (1.5 × 2^-12); the exact bits are
//! the implementation's. Intel's are a table lookup on the top fraction bits
//! (11 for RCP; 10 plus the exponent's parity for RSQRT) yielding a 12-bit
//! fraction that is the round-to-nearest value of the function at the
//! midpoint of the input interval, `1.yyyyyyyyyyy1` (Bochs, `sse_rcp.cc`,
//! documents the same construction). The tables are computed here from
//! that rule with exact integer arithmetic, not stored. MXCSR plays no part
//! and no flags are raised; denormal inputs read as zeros, tiny results
//! flush to zero.

use super::{class, Class, Format, F32};

/// The 13-bit significand (leading one at bit 12) of `2 / m` for the input
/// significand interval `idx` of 2048: `round(2^25 / (4097 + 2·idx))`.
#[inline]
fn rcp_sig(idx: u64) -> u64 {
    let d = 4097 + 2 * idx;
    let n = 1u64 << 25;
    // Round to nearest; no ties since d is odd.
    (2 * n + d) / (2 * d)
}

/// The 13-bit significand of `2^13 / √m`, m = `scale · (1 + (2·idx+1)/2048)`
/// with scale 1 (odd biased exponent) or 2 (even): `round(√(N / D))` with
/// D = 2049 + 2·idx and N = 2^37 or 2^36.
#[inline]
fn rsqrt_sig(idx: u64, even_exp: bool) -> u64 {
    let d = 2049 + 2 * idx;
    let n: u64 = if even_exp { 1 << 36 } else { 1 << 37 };
    let mut r = ((n / d) as f64).sqrt() as u64;
    // Correct the estimate to ⌊√(n/d)⌋ exactly.
    while r * r * d > n {
        r -= 1;
    }
    while (r + 1) * (r + 1) * d <= n {
        r += 1;
    }
    // Round up iff (r + ½)² < n/d, i.e. (2r+1)²·d < 4n (never equal: d odd).
    r + (((2 * r + 1) * (2 * r + 1) * d) < 4 * n) as u64
}

/// RCPSS on one binary32 encoding.
pub fn rcp(x: u64) -> u64 {
    let s = x & F32::SIGN;
    match class::<F32>(x) {
        Class::Zero | Class::Denormal => s | F32::EXP_MASK,
        Class::Inf => s,
        Class::QNan | Class::SNan => x | F32::QUIET,
        Class::Normal => {
            let e = ((x & F32::EXP_MASK) >> F32::FRAC) as i32;
            let er = 2 * F32::BIAS - 1 - e;
            if er <= 0 {
                return s;
            }
            let frac = (rcp_sig((x & F32::FRAC_MASK) >> 12) & 0xfff) << 11;
            s | (er as u64) << F32::FRAC | frac
        }
    }
}

/// RSQRTSS on one binary32 encoding.
pub fn rsqrt(x: u64) -> u64 {
    let s = x & F32::SIGN;
    match class::<F32>(x) {
        Class::Zero | Class::Denormal => s | F32::EXP_MASK,
        Class::Inf if s == 0 => 0,
        Class::QNan | Class::SNan => x | F32::QUIET,
        Class::Inf => F32::INDEFINITE,
        Class::Normal if s != 0 => F32::INDEFINITE,
        Class::Normal => {
            let e = ((x & F32::EXP_MASK) >> F32::FRAC) as i32;
            let er = 0x7e - ((e - 0x7f) >> 1);
            let sig = rsqrt_sig((x & F32::FRAC_MASK) >> 13, e & 1 == 0);
            (er as u64) << F32::FRAC | (sig & 0xfff) << 11
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spot values of Intel's tables (as Bochs lists them: the 12-bit
    /// fraction shifted left by 3) and well-known results.
    #[test]
    fn table_entries() {
        assert_eq!((rcp_sig(0) & 0xfff) << 3, 0x7ff0);
        assert_eq!((rcp_sig(1) & 0xfff) << 3, 0x7fd0);
        assert_eq!((rcp_sig(16) & 0xfff) << 3, 0x7df8);
        assert_eq!((rcp_sig(2047) & 0xfff) << 3, 0x0008);
        assert_eq!((rsqrt_sig(0, true) & 0xfff) << 3, 0x34f8);
        assert_eq!((rsqrt_sig(1, true) & 0xfff) << 3, 0x34e0);
        assert_eq!((rsqrt_sig(0, false) & 0xfff) << 3, 0x7ff0);
        assert_eq!((rsqrt_sig(13, false) & 0xfff) << 3, 0x7e58);
        assert_eq!((rsqrt_sig(1023, true) & 0xfff) << 3, 0x0008);
        // RCPSS(1.0) = 0.999755859375 on Intel processors.
        assert_eq!(rcp(0x3f80_0000), 0x3f7f_f000);
    }

    #[test]
    fn specials() {
        assert_eq!(rcp(0x8000_0000), 0xff80_0000);
        assert_eq!(rcp(0x0000_0001), 0x7f80_0000);
        assert_eq!(rcp(0xff80_0000), 0x8000_0000);
        assert_eq!(rcp(0x7f00_0000), 0, "tiny results flush to zero");
        assert_eq!(rcp(0x7f80_0001), 0x7fc0_0001);
        assert_eq!(rsqrt(0x8000_0000), 0xff80_0000);
        assert_eq!(rsqrt(0xbf80_0000), 0xffc0_0000);
        assert_eq!(rsqrt(0x7f80_0000), 0);
        assert_eq!(rsqrt(0xff80_0000), 0xffc0_0000);
    }

    /// The SDM's error bound holds for every input significand.
    #[test]
    fn error_bound() {
        for f in (0..1u64 << 23).step_by(97) {
            for e in [126u64, 127, 128, 129] {
                let x = e << 23 | f;
                let xv = f32::from_bits(x as u32) as f64;
                let r = f32::from_bits(rcp(x) as u32) as f64;
                assert!((r * xv - 1.0).abs() <= 1.5 / 4096.0, "rcp {x:#x}");
                let q = f32::from_bits(rsqrt(x) as u32) as f64;
                assert!((q * xv.sqrt() - 1.0).abs() <= 1.5 / 4096.0, "rsqrt {x:#x}");
            }
        }
    }
}
