//! Bitwise logic, integer comparisons and shifts (SDM Vol. 2 PAND, PANDN, POR,
//! PXOR, ANDPS..XORPD, PCMPEQ*/PCMPGT*, PSLL*/PSRL*/PSRA*, PSLLDQ/PSRLDQ,
//! PTEST).

use super::int::{vec_binop, vec_ops};
use super::lanes::*;
use super::operands::{mm_n, mmx_check, sse_check, xmm_n, Mem};
use crate::event::Flow;
use crate::machine::Machine;
use iced_x86::{Instruction, OpKind};
use mmu::Rflags;

/// All ones where `c`.
#[inline(always)]
fn ones<T: From<u8> + core::ops::Not<Output = T>>(c: bool) -> T {
    if c {
        !T::from(0)
    } else {
        T::from(0)
    }
}

vec_ops! {
    /// PAND, ANDPS, ANDPD.
    and = |a, b, _| a & b;
    /// PANDN, ANDNPS, ANDNPD: `!dst & src`.
    andn = |a, b, _| !a & b;
    /// POR, ORPS, ORPD.
    or = |a, b, _| a | b;
    /// PXOR, XORPS, XORPD.
    xor = |a, b, _| a ^ b;
    /// PCMPEQB.
    pcmpeqb = |a, b, _| map_b(a, b, |x, y| ones(x == y));
    /// PCMPEQW.
    pcmpeqw = |a, b, _| map_w(a, b, |x, y| ones(x == y));
    /// PCMPEQD.
    pcmpeqd = |a, b, _| map_d(a, b, |x, y| ones(x == y));
    /// PCMPEQQ.
    pcmpeqq = |a, b, _| map_q(a, b, |x, y| ones(x == y));
    /// PCMPGTB (signed).
    pcmpgtb = |a, b, _| map_b(a, b, |x, y| ones((x as i8) > (y as i8)));
    /// PCMPGTW (signed).
    pcmpgtw = |a, b, _| map_w(a, b, |x, y| ones((x as i16) > (y as i16)));
    /// PCMPGTD (signed).
    pcmpgtd = |a, b, _| map_d(a, b, |x, y| ones((x as i32) > (y as i32)));
    /// PCMPGTQ (signed).
    pcmpgtq = |a, b, _| map_q(a, b, |x, y| ones((x as i64) > (y as i64)));
}

/// The kinds of element shift.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shift {
    Left,
    Logical,
    Arith,
}

/// Shifts every `bits`-bit lane of `v` by `count` (all 64 bits of it count:
/// beyond the lane width, logical shifts give 0 and arithmetic ones the sign).
#[inline(always)]
fn shift_lanes(v: u128, bits: u32, count: u64, kind: Shift) -> u128 {
    let c = count.min(bits as u64) as u32;
    let lane = |x: u64| -> u64 {
        match kind {
            Shift::Left => x.checked_shl(c).unwrap_or(0),
            Shift::Logical => x.checked_shr(c).unwrap_or(0),
            Shift::Arith => {
                let s = (x << (64 - bits)) as i64 >> (64 - bits);
                (s >> c.min(63)) as u64
            }
        }
    };
    match bits {
        16 => map_w(v, 0, |x, _| lane(x as u64) as u16),
        32 => map_d(v, 0, |x, _| lane(x as u64) as u32),
        _ => map_q(v, 0, |x, _| if c >= 64 { 0 } else { lane(x) }),
    }
}

/// A shift instruction: the count is imm8, or the low 64 bits of the source
/// register or memory operand.
#[inline(always)]
fn shift(m: &mut Machine, i: &Instruction, bits: u32, kind: Shift) -> Flow {
    if i.op_kind(1) == OpKind::Immediate8 {
        let count = i.immediate8() as u64;
        let r0 = i.op0_register();
        if r0.is_mm() {
            mmx_check(m)?;
            let d = mm_n(r0);
            let r = shift_lanes(m.mm(d) as u128, bits, count, kind) as u64;
            m.mmx_enter();
            m.set_mm(d, r);
        } else {
            sse_check(m)?;
            let d = xmm_n(r0);
            m.cpu.fpu.xmm[d] = shift_lanes(m.cpu.fpu.xmm[d], bits, count, kind);
        }
        return Ok(());
    }
    vec_binop(m, i, |a, b, _| shift_lanes(a, bits, b as u64, kind))
}

macro_rules! shifts {
    ($( $(#[$doc:meta])* $name:ident = $bits:literal, $kind:ident; )*) => {
        $(
            $(#[$doc])*
            pub fn $name(m: &mut Machine, i: &Instruction) -> Flow {
                shift(m, i, $bits, Shift::$kind)
            }
        )*
    };
}

shifts! {
    /// PSLLW.
    psllw = 16, Left;
    /// PSLLD.
    pslld = 32, Left;
    /// PSLLQ.
    psllq = 64, Left;
    /// PSRLW.
    psrlw = 16, Logical;
    /// PSRLD.
    psrld = 32, Logical;
    /// PSRLQ.
    psrlq = 64, Logical;
    /// PSRAW.
    psraw = 16, Arith;
    /// PSRAD.
    psrad = 32, Arith;
}

/// PSLLDQ: shifts the whole register left by imm8 bytes (16 or more: zero).
pub fn pslldq(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let d = xmm_n(i.op0_register());
    let n = i.immediate8() as u32;
    m.cpu.fpu.xmm[d] = m.cpu.fpu.xmm[d].checked_shl(n * 8).unwrap_or(0);
    Ok(())
}

/// PSRLDQ: shifts the whole register right by imm8 bytes.
pub fn psrldq(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let d = xmm_n(i.op0_register());
    let n = i.immediate8() as u32;
    m.cpu.fpu.xmm[d] = m.cpu.fpu.xmm[d].checked_shr(n * 8).unwrap_or(0);
    Ok(())
}

/// PTEST: ZF = (src AND dst) = 0, CF = (src AND NOT dst) = 0; AF, OF, PF,
/// SF cleared.
pub fn ptest(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let src = m.xmm_src(i, 1, Mem::Aligned)?;
    let dst = m.cpu.fpu.xmm[xmm_n(i.op0_register())];
    let mut f = 0;
    if src & dst == 0 {
        f |= Rflags::ZF.bits();
    }
    if src & !dst == 0 {
        f |= Rflags::CF.bits();
    }
    m.cpu.flags.set_status(f);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_counts() {
        let v = from_w([0x8001, 1, 2, 3, 4, 5, 6, 0xffff]);
        assert_eq!(w(shift_lanes(v, 16, 1, Shift::Left))[0], 0x0002);
        assert_eq!(w(shift_lanes(v, 16, 16, Shift::Left))[7], 0);
        assert_eq!(w(shift_lanes(v, 16, 1 << 40, Shift::Arith))[0], 0xffff);
        assert_eq!(w(shift_lanes(v, 16, 15, Shift::Arith))[1], 0);
        assert_eq!(w(shift_lanes(v, 16, 3, Shift::Logical))[0], 0x1000);
        let q = from_q([u64::MAX, 1]);
        assert_eq!(shift_lanes(q, 64, 64, Shift::Logical), 0);
        assert_eq!(shift_lanes(q, 64, 63, Shift::Logical), 1);
    }
}
