//! x87 state for the x87 groups: an initial FPU state with values at the
//! edges of the extended format, and windows filled with floating-point and
//! integer patterns for memory operands.

use super::Gen;
use crate::layout;
use crate::seq::default_fpu;

impl Gen {
    /// An 80-bit value: zeros, infinities, quiet and signalling NaNs, the
    /// indefinite, denormals and pseudo-denormals, unnormals, the smallest
    /// and largest normals, small integers, and random normals.
    pub(super) fn f80(&mut self) -> [u8; 10] {
        let sign = (self.rng.chance(50) as u16) << 15;
        let j = 1u64 << 63;
        let r = self.rng.next_u64();
        let (exp, mant): (u16, u64) = match self.rng.below(16) {
            0 => (0, 0),
            1 => (0x7fff, j),                                 // infinity
            2 => (0x7fff, j | 1 << 62 | (r >> 2)),            // quiet NaN
            3 => (0x7fff, j | ((r >> 2) | 1)),                // signalling NaN
            4 => (0x7fff, j | 1 << 62),                       // indefinite (with sign)
            5 => (0, (r >> 1) | 1),                           // denormal
            6 => (0, j | (r >> 1)),                           // pseudo-denormal
            7 => (1 + self.rng.below(0x7ffe) as u16, r >> 1), // unnormal
            8 => (1, j | (r >> 1)),                           // smallest normals
            9 => (0x7ffe, j | (r >> 1)),                      // largest normals
            10 => {
                // A small integer.
                let n = 1 + self.rng.below(1000);
                let lz = n.leading_zeros();
                (0x3fff + 63 - lz as u16, n << lz)
            }
            11 => (0x3fff, j), // 1.0
            _ => (0x3fff - 64 + self.rng.below(128) as u16, j | (r >> 1)),
        };
        let mut b = [0u8; 10];
        b[..8].copy_from_slice(&mant.to_le_bytes());
        b[8..].copy_from_slice(&(exp | sign).to_le_bytes());
        b
    }

    /// A 64-bit double pattern.
    fn f64_bits(&mut self) -> u64 {
        let sign = (self.rng.chance(50) as u64) << 63;
        let r = self.rng.next_u64() & ((1 << 52) - 1);
        sign | match self.rng.below(10) {
            0 => 0,
            1 => 0x7ff << 52,
            2 => 0x7ff << 52 | 1 << 51 | r,
            3 => 0x7ff << 52 | (r >> 1 | 1),
            4 => r,
            5 => 0x3ff << 52,
            _ => (0x3ff - 40 + self.rng.below(80)) << 52 | r,
        }
    }

    /// A 32-bit float pattern.
    fn f32_bits(&mut self) -> u32 {
        let sign = (self.rng.chance(50) as u32) << 31;
        let r = self.rng.next_u64() as u32 & ((1 << 23) - 1);
        sign | match self.rng.below(10) {
            0 => 0,
            1 => 0xff << 23,
            2 => 0xff << 23 | 1 << 22 | r,
            3 => 0xff << 23 | (r >> 1 | 1),
            4 => r,
            5 => 0x7f << 23,
            _ => (0x7f - 20 + self.rng.below(40) as u32) << 23 | r,
        }
    }

    /// Windows filled with floating-point and integer patterns.
    pub(super) fn x87_scratch(&mut self) -> Vec<u8> {
        let mut v = Vec::with_capacity(layout::WINDOW_BYTES as usize + 16);
        while v.len() < layout::WINDOW_BYTES as usize {
            match self.rng.below(5) {
                0 => v.extend_from_slice(&self.f80()),
                1 => {
                    let x = self.f64_bits();
                    v.extend_from_slice(&x.to_le_bytes());
                }
                2 => {
                    let x = self.f32_bits();
                    v.extend_from_slice(&x.to_le_bytes());
                }
                3 => {
                    let bits = self.rng.pick(&[16, 32, 64]);
                    let x = self.rng.value(bits);
                    v.extend_from_slice(&x.to_le_bytes()[..bits as usize / 8]);
                }
                _ => {
                    // Packed BCD: nine bytes of digits and a sign byte.
                    for _ in 0..9 {
                        let d = self.rng.below(100) as u8;
                        let b = if self.rng.chance(95) {
                            ((d / 10) << 4) | (d % 10)
                        } else {
                            d
                        };
                        v.push(b);
                    }
                    v.push(if self.rng.chance(50) { 0x80 } else { 0 });
                }
            }
        }
        v.truncate(layout::WINDOW_BYTES as usize);
        v
    }

    /// An FXSAVE64 image: random rounding and precision control, exceptions
    /// masked mostly, random TOP, condition codes and tags, edge values in
    /// the registers, MXCSR at its reset value.
    pub(super) fn x87_fpu(&mut self) -> Vec<u8> {
        let mut img = default_fpu();
        let masks = if self.rng.chance(80) {
            0x3f
        } else {
            self.rng.below(64) as u16
        };
        let pc = self.rng.pick(&[0u16, 2, 3, 3, 3]);
        let rc = self.rng.below(4) as u16;
        let fcw = 0x40 | masks | pc << 8 | rc << 10;
        let mut fsw = (self.rng.below(8) as u16) << 11;
        for b in [8, 9, 10, 14] {
            if self.rng.chance(50) {
                fsw |= 1 << b;
            }
        }
        if self.rng.chance(5) {
            // A pending exception: the next waiting instruction raises #MF
            // if it is unmasked.
            let e = 1 << self.rng.below(6);
            fsw |= e;
            if e & !masks & 0x3f != 0 {
                fsw |= 0x80;
            }
        }
        let ftw = self.rng.next_u64() as u8;
        img[0..2].copy_from_slice(&fcw.to_le_bytes());
        img[2..4].copy_from_slice(&fsw.to_le_bytes());
        img[4] = ftw;
        for k in 0..8 {
            let v = self.f80();
            img[32 + 16 * k..32 + 16 * k + 10].copy_from_slice(&v);
        }
        img
    }
}
