//! The SSE4.2 string and text instructions PCMPESTRI, PCMPESTRM, PCMPISTRI,
//! PCMPISTRM (SDM Vol. 2B 4.1 "Imm8 control byte operation for PCMPESTRI /
//! PCMPESTRM / PCMPISTRI / PCMPISTRM" and the instruction entries). The
//! memory operand need not be aligned.

use super::operands::{sse_check, xmm_n, Mem};
use crate::event::Flow;
use crate::machine::Machine;
use iced_x86::{Instruction, Register};
use mmu::Rflags;

/// The imm8 controls of one instruction (SDM Vol. 2B 4.1.1-4.1.6).
#[derive(Clone, Copy, Debug)]
struct Control {
    /// Words (8 elements) instead of bytes (16).
    words: bool,
    /// Signed elements.
    signed: bool,
    /// Aggregation: 0 equal any, 1 ranges, 2 equal each, 3 equal ordered.
    agg: u8,
    /// Polarity: 0 positive, 1 negative, 2 masked positive, 3 masked negative.
    polarity: u8,
}

impl Control {
    fn new(imm: u8) -> Self {
        Self {
            words: imm & 1 != 0,
            signed: imm & 2 != 0,
            agg: (imm >> 2) & 3,
            polarity: (imm >> 4) & 3,
        }
    }

    fn n(self) -> usize {
        if self.words {
            8
        } else {
            16
        }
    }

    /// Element `k` of `v`, sign- or zero-extended.
    fn elem(self, v: u128, k: usize) -> i32 {
        match (self.words, self.signed) {
            (false, false) => (v >> (8 * k)) as u8 as i32,
            (false, true) => (v >> (8 * k)) as u8 as i8 as i32,
            (true, false) => (v >> (16 * k)) as u16 as i32,
            (true, true) => (v >> (16 * k)) as u16 as i16 as i32,
        }
    }

    /// The implicit length: the index of the first zero element, or n.
    fn implicit_len(self, v: u128) -> usize {
        (0..self.n())
            .find(|&k| self.elem(v, k) == 0)
            .unwrap_or(self.n())
    }

    /// An explicit length register: its absolute value, saturated to n.
    fn explicit_len(self, raw: i64) -> usize {
        raw.unsigned_abs().min(self.n() as u64) as usize
    }
}

/// IntRes2 (SDM 4.1.4-4.1.5): the aggregation of the element comparisons of
/// `a` (first operand, length `la`) against `b` (second, length `lb`),
/// then the polarity.
fn int_res2(c: Control, a: u128, la: usize, b: u128, lb: usize) -> u32 {
    let n = c.n();
    let ea = |k: usize| c.elem(a, k);
    let eb = |k: usize| c.elem(b, k);
    let mut res1 = 0u32;
    for j in 0..n {
        let bit = match c.agg {
            // Equal any: b[j] is one of a's valid elements.
            0 => j < lb && (0..la).any(|i| ea(i) == eb(j)),
            // Ranges: b[j] lies in one of a's (low, high) pairs.
            1 => j < lb && (0..la / 2).any(|p| ea(2 * p) <= eb(j) && eb(j) <= ea(2 * p + 1)),
            // Equal each: both invalid is a match, one invalid a mismatch.
            2 => match (j < la, j < lb) {
                (true, true) => ea(j) == eb(j),
                (false, false) => true,
                _ => false,
            },
            // Equal ordered: a (as a substring) starts at b[j]; an invalid
            // a element matches anything, an invalid b element only that.
            _ => (0..n - j).all(|k| k >= la || (j + k < lb && ea(k) == eb(j + k))),
        };
        res1 |= (bit as u32) << j;
    }
    let all = (1u32 << n) - 1;
    let valid_b = (1u32 << lb) - 1;
    match c.polarity {
        1 => !res1 & all,
        3 => res1 ^ valid_b,
        _ => res1,
    }
}

/// The shared body: reads the operands and lengths, computes IntRes2, sets
/// the flags (CF: IntRes2 ≠ 0; ZF: the second operand is shorter than n; SF:
/// the first is; OF: IntRes2[0]; AF, PF cleared), and hands IntRes2 and the
/// controls to `out`.
fn pcmpstr(
    m: &mut Machine,
    i: &Instruction,
    explicit: bool,
    out: impl FnOnce(&mut Machine, u32, Control, u8),
) -> Flow {
    sse_check(m)?;
    let b = m.xmm_src(i, 1, Mem::Unaligned)?;
    let a = m.cpu.fpu.xmm[xmm_n(i.op0_register())];
    let imm = i.immediate8();
    let c = Control::new(imm);
    let (la, lb) = if explicit {
        let wide = matches!(
            i.code(),
            iced_x86::Code::Pcmpestri64_xmm_xmmm128_imm8
                | iced_x86::Code::Pcmpestrm64_xmm_xmmm128_imm8
        );
        let (ra, rd) = (m.cpu.gpr[0], m.cpu.gpr[2]);
        let (ra, rd) = if wide {
            (ra as i64, rd as i64)
        } else {
            (ra as i32 as i64, rd as i32 as i64)
        };
        (c.explicit_len(ra), c.explicit_len(rd))
    } else {
        (c.implicit_len(a), c.implicit_len(b))
    };
    let r = int_res2(c, a, la, b, lb);
    let n = c.n();
    let mut f = 0;
    if r != 0 {
        f |= Rflags::CF.bits();
    }
    if lb < n {
        f |= Rflags::ZF.bits();
    }
    if la < n {
        f |= Rflags::SF.bits();
    }
    if r & 1 != 0 {
        f |= Rflags::OF.bits();
    }
    m.cpu.flags.set_status(f);
    out(m, r, c, imm);
    Ok(())
}

/// PCMPxSTRI: ECX = the least (imm8[6] = 0) or most significant set bit of
/// IntRes2, or n if none.
fn index_out(m: &mut Machine, r: u32, c: Control, imm: u8) {
    let n = c.n() as u64;
    let idx = if r == 0 {
        n
    } else if imm & 0x40 != 0 {
        31 - r.leading_zeros() as u64
    } else {
        r.trailing_zeros() as u64
    };
    m.write_gpr(Register::ECX, idx);
}

/// PCMPxSTRM: XMM0 = IntRes2 as bits (imm8[6] = 0), or expanded to an
/// element mask.
fn mask_out(m: &mut Machine, r: u32, c: Control, imm: u8) {
    let v = if imm & 0x40 == 0 {
        r as u128
    } else {
        let eb = if c.words { 16 } else { 8 };
        (0..c.n()).fold(0u128, |acc, k| {
            if r >> k & 1 != 0 {
                acc | (u128::MAX >> (128 - eb)) << (k * eb)
            } else {
                acc
            }
        })
    };
    m.cpu.fpu.xmm[0] = v;
}

/// PCMPESTRI.
pub fn pcmpestri(m: &mut Machine, i: &Instruction) -> Flow {
    pcmpstr(m, i, true, index_out)
}

/// PCMPESTRM.
pub fn pcmpestrm(m: &mut Machine, i: &Instruction) -> Flow {
    pcmpstr(m, i, true, mask_out)
}

/// PCMPISTRI.
pub fn pcmpistri(m: &mut Machine, i: &Instruction) -> Flow {
    pcmpstr(m, i, false, index_out)
}

/// PCMPISTRM.
pub fn pcmpistrm(m: &mut Machine, i: &Instruction) -> Flow {
    pcmpstr(m, i, false, mask_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &[u8]) -> u128 {
        let mut b = [0u8; 16];
        b[..s.len()].copy_from_slice(s);
        u128::from_le_bytes(b)
    }

    #[test]
    fn aggregations() {
        let c = Control::new(0x00); // unsigned bytes, equal any
        let set = bytes(b"aeiou");
        let s = bytes(b"hello world");
        let r = int_res2(c, set, 5, s, 11);
        assert_eq!(r, 0b000_1001_0010);
        let c = Control::new(0x04); // ranges
        let r = int_res2(c, bytes(b"az"), 2, bytes(b"aZ0z"), 4);
        assert_eq!(r, 0b1001);
        let c = Control::new(0x0c); // equal ordered
        let r = int_res2(c, bytes(b"lo"), 2, s, 11);
        assert_eq!(r, 1 << 3);
        let c = Control::new(0x08); // equal each, negative masked
        let r = int_res2(
            Control { polarity: 3, ..c },
            bytes(b"abc"),
            3,
            bytes(b"abd"),
            3,
        );
        // Past the valid elements both are invalid: a match, left as is.
        assert_eq!(r, 0xfffc);
    }
}
