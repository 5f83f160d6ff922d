//! The SIMD groups: MMX, SSE, SSE2, SSE3, SSSE3, SSE4.1, SSE4.2 and
//! PCLMULQDQ, every legacy-encoded form nestemu's model advertises, drawn by
//! CPUID feature rather than by mnemonic. The initial state puts
//! floating-point edge values (zeros, infinities, quiet and signalling NaNs,
//! denormals, near-overflow magnitudes) and integer patterns in the XMM and
//! MMX registers and the windows, and a random MXCSR: rounding control, FTZ,
//! DAZ, sticky flags, and now and then unmasked exceptions (CR4.OSXMMEXCPT is
//! set, so those raise #XM). Whole FXSAVE images are compared, MXCSR and the
//! XMM registers included.

use super::Gen;
use crate::seq::default_fpu;
use iced_x86::{Code, CpuidFeature as C, Mnemonic, Register};

/// The SIMD groups.
pub const SSE_GROUPS: &[&str] = &["mmx", "sse", "sse2", "sse3", "sse4"];

/// The CPUID features whose forms make up SIMD group `g` (empty for any
/// other group).
pub(super) fn features(g: &str) -> &'static [C] {
    match g {
        "mmx" => &[C::MMX],
        "sse" => &[C::SSE],
        "sse2" => &[C::SSE2],
        "sse3" => &[C::SSE3, C::SSSE3],
        "sse4" => &[C::SSE4_1, C::SSE4_2, C::PCLMULQDQ],
        _ => &[],
    }
}

/// Forms left out of the SIMD groups, and why.
pub(super) fn excluded(code: Code) -> bool {
    matches!(
        code.mnemonic(),
        // Ring 0 only (#UD at CPL 3 on both), and waits.
        Mnemonic::Monitor | Mnemonic::Mwait
        // An implicit DS:[RDI] destination the generator does not aim.
        | Mnemonic::Maskmovq | Mnemonic::Maskmovdqu
        // Approximations whose last bits are the implementation's choice
        // (SDM Vol. 2: relative error at most 1.5 * 2^-12); nestemu's own
        // tests check the bound.
        | Mnemonic::Rcpps | Mnemonic::Rcpss | Mnemonic::Rsqrtps | Mnemonic::Rsqrtss
    )
}

/// XMM0..XMM15.
pub(super) fn xmm(n: usize) -> Register {
    Register::values()
        .nth(Register::XMM0 as usize + n)
        .expect("an XMM register")
}

/// MM0..MM7.
pub(super) fn mm(n: usize) -> Register {
    Register::values()
        .nth(Register::MM0 as usize + n)
        .expect("an MMX register")
}

impl Gen {
    /// A 128-bit register value: four singles, two doubles or integers, at
    /// the edges often.
    fn xmm_value(&mut self) -> [u8; 16] {
        let mut v = [0u8; 16];
        match self.rng.below(4) {
            0 => {
                for k in 0..4 {
                    let x = self.f32_bits();
                    v[4 * k..4 * k + 4].copy_from_slice(&x.to_le_bytes());
                }
            }
            1 => {
                for k in 0..2 {
                    let x = self.f64_bits();
                    v[8 * k..8 * k + 8].copy_from_slice(&x.to_le_bytes());
                }
            }
            2 => {
                for k in 0..2 {
                    let bits = self.rng.pick(&[8, 16, 32, 64]);
                    let x = self.rng.value(bits);
                    // Integer lanes of that width, repeated.
                    let w = bits as usize / 8;
                    for j in 0..8 / w {
                        v[8 * k + w * j..8 * k + w * (j + 1)]
                            .copy_from_slice(&x.to_le_bytes()[..w]);
                    }
                }
            }
            _ => {
                v[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
                v[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes());
            }
        }
        v
    }

    /// A random MXCSR: rounding control, FTZ and DAZ at random, sticky
    /// flags sometimes, exceptions masked mostly.
    pub(super) fn mxcsr(&mut self) -> u32 {
        let masks = if self.rng.chance(80) {
            0x1f80
        } else {
            (self.rng.below(64) as u32) << 7
        };
        let mut m = masks | (self.rng.below(4) as u32) << 13;
        if self.rng.chance(20) {
            m |= 1 << 15; // FTZ
        }
        if self.rng.chance(20) {
            m |= 1 << 6; // DAZ
        }
        if self.rng.chance(30) {
            m |= self.rng.below(64) as u32;
        }
        m
    }

    /// An FXSAVE64 image for the SIMD groups: the x87 part at its reset
    /// state, MMX registers with integer or packed patterns (tags empty:
    /// the first MMX instruction makes them valid), XMM registers with edge
    /// values, and a random MXCSR.
    pub(super) fn sse_fpu(&mut self) -> Vec<u8> {
        let mut img = default_fpu();
        let mxcsr = self.mxcsr();
        img[24..28].copy_from_slice(&mxcsr.to_le_bytes());
        for k in 0..8 {
            let v = self.xmm_value();
            img[32 + 16 * k..32 + 16 * k + 8].copy_from_slice(&v[..8]);
        }
        for k in 0..16 {
            let v = self.xmm_value();
            img[160 + 16 * k..160 + 16 * k + 16].copy_from_slice(&v);
        }
        img
    }

    /// Windows filled with single, double and integer patterns.
    pub(super) fn sse_scratch(&mut self) -> Vec<u8> {
        let n = crate::layout::WINDOW_BYTES as usize;
        let mut v = Vec::with_capacity(n + 16);
        while v.len() < n {
            let x = self.xmm_value();
            v.extend_from_slice(&x);
        }
        v.truncate(n);
        v
    }
}
